#!/usr/bin/env bash
# Lints proto/ with buf (rules in buf.yaml at the repository root).
#
# buf comes from the npm registry (the @bufbuild/buf package ships the
# prebuilt binary inside the package), installed into a throwaway prefix so
# nothing is added to the repository or to package.json. Set BUF=/path/to/buf
# to use an existing binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION="${BUF_VERSION:-1.75.0}"

if [[ -z "${BUF:-}" ]]; then
  prefix="$(mktemp -d)"
  trap 'rm -rf "$prefix"' EXIT
  npm install --silent --no-save --no-audit --no-fund --prefix "$prefix" \
    "@bufbuild/buf@${BUF_VERSION}" >/dev/null
  BUF="$prefix/node_modules/.bin/buf"
fi

echo "buf $("$BUF" --version)"
"$BUF" lint
echo "buf lint: no findings"
