# rolekeeper container image: `docker build -t rolekeeper .`
# (or `docker compose up --build`, see docs/containers.md).
#
# Two stages: a Rust toolchain image builds the release binary, a slim Debian
# image of the same release (bookworm, so the same glibc) runs it as a
# non-root user. Protos are compiled by build.rs with the pure-Rust protox
# compiler, so the builder needs no protoc. Everything TLS-related is rustls
# and SQLite is bundled, so the runtime image needs no OpenSSL or libsqlite3.

############################################################################
# builder
############################################################################
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# 1. Dependencies only, in their own layer: it is rebuilt when Cargo.toml or
#    Cargo.lock change, not on every source edit. Stub sources (and a stub
#    build script, so the build-dependencies protox and tonic-prost-build are
#    compiled here too) stand in for the real ones.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > build.rs \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin rolekeeper \
    && rm -rf build.rs src

# 2. The real sources. `touch` makes sure cargo sees them as newer than the
#    stub artifacts of step 1 (COPY keeps the build context's mtimes).
COPY build.rs ./
COPY proto ./proto
COPY src ./src
RUN touch build.rs src/main.rs src/lib.rs \
    && cargo build --release --locked --bin rolekeeper \
    && install -D -m 0755 target/release/rolekeeper /out/rolekeeper

############################################################################
# runtime
############################################################################
FROM debian:bookworm-slim AS runtime

# Unpinned on purpose: Debian replaces ca-certificates in place with security
# updates, so a pinned version would stop building.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid (handy for volume ownership and for
# Kubernetes `runAsNonRoot`). Its home is the working directory, so the
# default SQLite database (when ROLEKEEPER_DATABASE_URL is not set) is
# writable.
RUN groupadd --system --gid 10001 rolekeeper \
    && useradd --system --uid 10001 --gid rolekeeper \
        --home-dir /var/lib/rolekeeper --create-home --shell /usr/sbin/nologin \
        rolekeeper

COPY --from=builder /out/rolekeeper /usr/local/bin/rolekeeper

USER 10001:10001
WORKDIR /var/lib/rolekeeper

# Listen on all interfaces inside the container; publish the ports as you
# need them (docker-compose.yml publishes them on 127.0.0.1 only). A
# non-loopback listener needs an auth key (ROLEKEEPER_HS256_SECRET,
# ROLEKEEPER_HS256_SECRET_FILE or ROLEKEEPER_JWT_KEYS): without one the server
# is in development mode and refuses to start.
ENV ROLEKEEPER_LISTEN=0.0.0.0:50051 \
    ROLEKEEPER_METRICS_LISTEN=0.0.0.0:9464

# 50051: gRPC (incl. grpc.health.v1 and reflection); 9464: Prometheus /metrics.
EXPOSE 50051 9464

# rolekeeper is PID 1 and handles SIGTERM itself: it stops accepting, drains
# in-flight RPCs and running operations, then exits 0.
STOPSIGNAL SIGTERM

# The health check lives in docker-compose.yml (`rolekeeper health`, a gRPC
# health client built into the binary), so the image needs no curl or
# grpc_health_probe.
ENTRYPOINT ["rolekeeper"]
CMD ["serve"]
