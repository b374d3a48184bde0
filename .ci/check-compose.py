#!/usr/bin/env python3
"""Static checks of docker-compose.yml, Dockerfile and .dockerignore.

CI machines have no Docker engine, so the container files cannot be built or
started there. This script checks what they must say instead, with PyYAML
(`python3 -m pip install pyyaml`) and no Docker:

  * docker-compose.yml: services `postgres` and `rolekeeper`; postgres has a
    `pg_isready` health check; rolekeeper is built from this directory, waits
    for postgres with `condition: service_healthy`, has a `rolekeeper health`
    health check, a restart policy and a stop_grace_period longer than the
    server's drain timeout, sets the required ROLEKEEPER_*
    variables (the HS256 secret as a required `${ROLEKEEPER_HS256_SECRET:?...}`
    variable, never a literal), uses only known ROLEKEEPER_* names, and
    publishes ports on 127.0.0.1 only.
  * Dockerfile: multi-stage (`FROM ... AS builder`), `cargo build --release
    --locked`, a runtime stage that copies from the builder, runs as a
    non-root user, and has ENTRYPOINT ["rolekeeper"] / CMD ["serve"].
  * .dockerignore keeps databases and development keys out of the context.

Usage: python3 .ci/check-compose.py [REPO_DIR]   (default: this script's ..)
Exits 0 when every check passes, 1 with one line per failure otherwise.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("check-compose: PyYAML is missing: python3 -m pip install pyyaml")

# The names API.md fixes (Operations surface) plus the extra `serve` settings
# the README documents; known_env() adds every `env = "ROLEKEEPER_..."` that
# src/config.rs declares. A ROLEKEEPER_* name in the compose file outside that
# set is almost certainly a typo (the server would silently ignore it).
KNOWN_ENV = {
    "ROLEKEEPER_LISTEN",
    "ROLEKEEPER_DATABASE_URL",
    "ROLEKEEPER_METRICS_LISTEN",
    "ROLEKEEPER_LOG_FORMAT",
    "ROLEKEEPER_HS256_SECRET",
    "ROLEKEEPER_HS256_SECRET_FILE",
    "ROLEKEEPER_JWT_KEYS",
    "ROLEKEEPER_JWT_ISSUER",
    "ROLEKEEPER_JWT_AUDIENCE",
    "ROLEKEEPER_TLS_CERT",
    "ROLEKEEPER_TLS_KEY",
    "ROLEKEEPER_TLS_CLIENT_CA",
    "ROLEKEEPER_WORKERS",
    "ROLEKEEPER_OPERATION_RETENTION",
    "ROLEKEEPER_MAX_WAIT",
}



def known_env(root: Path) -> set[str]:
    config = root / "src" / "config.rs"
    declared: set[str] = set()
    if config.is_file():
        declared = set(re.findall(r'env\s*=\s*"(ROLEKEEPER_[A-Z0-9_]+)"', config.read_text(encoding="utf-8")))
    return KNOWN_ENV | declared


def seconds(text: str) -> float | None:
    """`90`, `90s`, `1m30s`, `2h`, `500ms` (compose and rolekeeper durations) in seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def default_drain(root: Path) -> str:
    """`serve`'s default ROLEKEEPER_DRAIN_TIMEOUT, from src/config.rs (else 30s)."""
    config = root / "src" / "config.rs"
    if config.is_file():
        m = re.search(
            r'env\s*=\s*"ROLEKEEPER_DRAIN_TIMEOUT"\s*,\s*default_value\s*=\s*"([^"]+)"',
            config.read_text(encoding="utf-8"),
        )
        if m:
            return m.group(1)
    return "30s"

GRPC_PORT = 50051
METRICS_PORT = 9464


class Checker:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
        return ok


def environment(service: dict) -> dict[str, str]:
    """A service's `environment`, list or mapping form, as a dict."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            name, _, value = str(item).partition("=")
            out[name] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def healthcheck_argv(service: dict) -> list[str] | None:
    """The health check command as an argv, or None if absent/disabled."""
    hc = service.get("healthcheck")
    if not isinstance(hc, dict) or hc.get("disable"):
        return None
    test = hc.get("test")
    if isinstance(test, str):
        return shlex.split(test)
    if isinstance(test, list) and test:
        kind, rest = str(test[0]), [str(t) for t in test[1:]]
        if kind == "CMD":
            return rest
        if kind == "CMD-SHELL":
            return shlex.split(" ".join(rest))
    return None


def published_ports(service: dict, c: Checker, name: str) -> list[tuple[str, str]]:
    """(host_ip, container_port) of every published port."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):  # long syntax
            out.append((str(port.get("host_ip", "")), str(port.get("target", ""))))
            continue
        if not c.check(
            isinstance(port, str),
            f"docker-compose.yml: services.{name}.ports entry {port!r} must be a "
            "quoted string (YAML 1.1 reads some unquoted a:b as base-60 numbers)",
        ):
            continue
        parts = port.rsplit("/", 1)[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append((host_ip, parts[-1]))
    return out


def check_compose(root: Path, c: Checker) -> None:
    path = root / "docker-compose.yml"
    if not c.check(path.is_file(), f"{path.name} is missing"):
        return
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        c.check(False, f"docker-compose.yml is not valid YAML: {err}")
        return
    if not c.check(isinstance(doc, dict), "docker-compose.yml: top level is not a mapping"):
        return
    services = doc.get("services") or {}
    for name in ("postgres", "rolekeeper"):
        c.check(name in services, f"docker-compose.yml: service `{name}` is missing")
    pg = services.get("postgres") or {}
    rk = services.get("rolekeeper") or {}

    # postgres
    if pg:
        c.check(
            str(pg.get("image", "")).startswith("postgres:15"),
            f"docker-compose.yml: services.postgres.image should be postgres:15, is {pg.get('image')!r}",
        )
        pg_env = environment(pg)
        c.check(
            "POSTGRES_PASSWORD" in pg_env,
            "docker-compose.yml: services.postgres.environment needs POSTGRES_PASSWORD",
        )
        argv = healthcheck_argv(pg)
        c.check(
            argv is not None and "pg_isready" in argv,
            "docker-compose.yml: services.postgres.healthcheck must run pg_isready",
        )
        for host_ip, port in published_ports(pg, c, "postgres"):
            c.check(
                host_ip in ("127.0.0.1", "::1", "[::1]"),
                f"docker-compose.yml: services.postgres publishes {port} on {host_ip or 'all interfaces'}; use 127.0.0.1",
            )

    if not rk:
        return

    # rolekeeper: build, dependency, health, restart
    build = rk.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    c.check(
        context in (".", "./"),
        "docker-compose.yml: services.rolekeeper.build must build this directory (context `.`)",
    )
    deps = rk.get("depends_on")
    c.check(
        isinstance(deps, dict)
        and isinstance(deps.get("postgres"), dict)
        and deps["postgres"].get("condition") == "service_healthy",
        "docker-compose.yml: services.rolekeeper.depends_on.postgres.condition must be service_healthy",
    )
    argv = healthcheck_argv(rk)
    c.check(
        argv is not None and len(argv) >= 2 and argv[0].endswith("rolekeeper") and argv[1] == "health",
        "docker-compose.yml: services.rolekeeper.healthcheck must run `rolekeeper health ...`, "
        f"runs {argv!r}",
    )
    if argv and "--addr" in argv[:-1]:
        addr = argv[argv.index("--addr") + 1]
        c.check(
            addr.endswith(f":{GRPC_PORT}"),
            f"docker-compose.yml: rolekeeper health check probes {addr}, not port {GRPC_PORT}",
        )
    c.check(
        rk.get("restart") in ("always", "unless-stopped", "on-failure")
        or str(rk.get("restart", "")).startswith("on-failure:"),
        "docker-compose.yml: services.rolekeeper.restart must be a restart policy "
        "(unless-stopped, always or on-failure)",
    )

    # rolekeeper: time to drain on SIGTERM before Docker's SIGKILL
    env = environment(rk)
    drain = seconds(env.get("ROLEKEEPER_DRAIN_TIMEOUT") or default_drain(root))
    grace = seconds(str(rk.get("stop_grace_period", "10s")))
    c.check(
        drain is not None and grace is not None and grace > drain,
        f"docker-compose.yml: services.rolekeeper.stop_grace_period ({grace}s) must exceed "
        f"ROLEKEEPER_DRAIN_TIMEOUT ({drain}s), or Docker kills it mid-drain",
    )

    # rolekeeper: environment
    url = env.get("ROLEKEEPER_DATABASE_URL", "")
    c.check(
        re.match(r"^postgres(ql)?://[^@]+@postgres(:5432)?/\w+", url) is not None,
        "docker-compose.yml: ROLEKEEPER_DATABASE_URL must be postgres://USER:PASS@postgres:5432/DB, "
        f"is {url!r}",
    )
    secret = env.get("ROLEKEEPER_HS256_SECRET", "")
    c.check(
        re.fullmatch(r"\$\{ROLEKEEPER_HS256_SECRET:\?[^}]+\}", secret) is not None,
        "docker-compose.yml: ROLEKEEPER_HS256_SECRET must be the required variable "
        "`${ROLEKEEPER_HS256_SECRET:?message}` (never a literal secret), "
        f"is {secret!r}",
    )
    c.check(
        env.get("ROLEKEEPER_LISTEN") == f"0.0.0.0:{GRPC_PORT}",
        f"docker-compose.yml: ROLEKEEPER_LISTEN must be 0.0.0.0:{GRPC_PORT}, is {env.get('ROLEKEEPER_LISTEN')!r}",
    )
    c.check(
        env.get("ROLEKEEPER_METRICS_LISTEN") == f"0.0.0.0:{METRICS_PORT}",
        f"docker-compose.yml: ROLEKEEPER_METRICS_LISTEN must be 0.0.0.0:{METRICS_PORT}, "
        f"is {env.get('ROLEKEEPER_METRICS_LISTEN')!r}",
    )
    known = known_env(root)
    for name in sorted(env):
        if name.startswith("ROLEKEEPER_"):
            c.check(
                name in known,
                f"docker-compose.yml: unknown variable {name} (not in API.md nor in "
                "src/config.rs; a typo?)",
            )

    # rolekeeper: ports, loopback only
    ports = published_ports(rk, c, "rolekeeper")
    for host_ip, port in ports:
        c.check(
            host_ip in ("127.0.0.1", "::1", "[::1]"),
            f"docker-compose.yml: services.rolekeeper publishes {port} on "
            f"{host_ip or 'all interfaces'}; publish on 127.0.0.1 only",
        )
    targets = {port for _, port in ports}
    for port in (GRPC_PORT, METRICS_PORT):
        c.check(
            str(port) in targets,
            f"docker-compose.yml: services.rolekeeper should publish port {port}",
        )


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are ignored by Docker
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def check_dockerfile(root: Path, c: Checker) -> None:
    path = root / "Dockerfile"
    if not c.check(path.is_file(), "Dockerfile is missing"):
        return
    instructions = dockerfile_instructions(path.read_text(encoding="utf-8"))
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []  # (image, alias, body)
    for word, args in instructions:
        if word == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", args, re.IGNORECASE)
            image, alias = (m.group(1), (m.group(2) or "").lower()) if m else (args, "")
            stages.append((image, alias, []))
        elif stages:
            stages[-1][2].append((word, args))
    if not c.check(len(stages) >= 2, f"Dockerfile must be multi-stage, has {len(stages)} FROM"):
        return
    builders = [s for s in stages if s[1] == "builder"]
    if not c.check(bool(builders), "Dockerfile needs a `FROM ... AS builder` stage"):
        return
    builder = builders[0]
    c.check(
        builder[0].startswith("rust:"),
        f"Dockerfile: the builder stage should start FROM a rust image, is {builder[0]}",
    )
    runs = " ".join(args for word, args in builder[2] if word == "RUN")
    c.check(
        re.search(r"cargo build\b[^&;]*--release", runs) is not None and "--locked" in runs,
        "Dockerfile: the builder must run `cargo build --release --locked`",
    )

    final = stages[-1]
    body = final[2]
    c.check(final[1] != "builder", "Dockerfile: the last stage must be the runtime, not the builder")
    c.check(
        any(w == "COPY" and re.search(r"--from=builder\b", a, re.IGNORECASE) for w, a in body),
        "Dockerfile: the runtime stage must COPY --from=builder",
    )
    users = [a.split(":")[0] for w, a in body if w == "USER"]
    c.check(
        bool(users) and users[-1] not in ("root", "0"),
        "Dockerfile: the runtime stage must switch to a non-root USER",
    )
    entry = [exec_form(a) for w, a in body if w == "ENTRYPOINT"]
    c.check(
        bool(entry) and entry[-1] == ["rolekeeper"],
        f'Dockerfile: ENTRYPOINT must be ["rolekeeper"] (exec form, so SIGTERM reaches it), is {entry[-1:] or None}',
    )
    cmd = [exec_form(a) for w, a in body if w == "CMD"]
    c.check(bool(cmd) and cmd[-1] == ["serve"], f'Dockerfile: CMD must be ["serve"], is {cmd[-1:] or None}')
    exposed = {p.split("/")[0] for w, a in body if w == "EXPOSE" for p in a.split()}
    for port in (GRPC_PORT, METRICS_PORT):
        c.check(str(port) in exposed, f"Dockerfile: the runtime stage must EXPOSE {port}")
    env_text = " ".join(a for w, a in body if w == "ENV")
    c.check(
        re.search(rf"\bROLEKEEPER_LISTEN[= ]0\.0\.0\.0:{GRPC_PORT}\b", env_text) is not None,
        f"Dockerfile: the runtime stage must set ENV ROLEKEEPER_LISTEN=0.0.0.0:{GRPC_PORT}",
    )


def check_dockerignore(root: Path, c: Checker) -> None:
    path = root / ".dockerignore"
    if not c.check(path.is_file(), ".dockerignore is missing"):
        return
    lines = {
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    allowlist = "*" in lines
    c.check(
        allowlist or bool({"target", "/target", "target/"} & lines),
        ".dockerignore must exclude target/",
    )
    for pattern in ("rolekeeper-dev.key", "*.db"):
        c.check(
            any(line.endswith(pattern) for line in lines),
            f".dockerignore must exclude {pattern}",
        )


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    c = Checker()
    check_compose(root, c)
    check_dockerfile(root, c)
    check_dockerignore(root, c)
    for failure in c.failures:
        print(f"FAIL {failure}")
    print(f"check-compose: {c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
