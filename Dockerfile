# syntax=docker/dockerfile:1
#
# wablast: one image, one binary. The command picks the role:
#   docker run ... wablast all        (default: api + projector + engine)
#   docker run ... wablast api | projector | engine | migrate | ...
# See docker-compose.yml for a full set-up with NATS and PostgreSQL.

# ---- console ----------------------------------------------------------------
# The web console (console/): built here, embedded into the binary below
# (api/build.rs reads console/dist).
FROM node:20-bookworm-slim AS console
WORKDIR /console
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY console/ ./
RUN npm run build

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# SQL migrations (migrations/sql) are embedded at compile time; no database is
# reachable during the build, so sqlx must never try to connect to one.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

# The whole workspace (see .dockerignore for what is left out), and the
# console's build from its stage.
COPY . .
COPY --from=console /console/dist console/dist

# Cache mounts keep the crates.io downloads and the compiled dependencies
# between builds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked -p wablast \
    && install -m 0755 target/release/wablast /usr/local/bin/wablast

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: TLS to NATS/PostgreSQL/WhatsApp/webhooks; curl: HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 wablast \
    && useradd --system --uid 10001 --gid wablast --home-dir /var/lib/wablast \
        --shell /usr/sbin/nologin wablast \
    && mkdir -p /var/lib/wablast \
    && chown wablast:wablast /var/lib/wablast

COPY --from=builder /usr/local/bin/wablast /usr/local/bin/wablast

ENV WABLAST_LISTEN=0.0.0.0:8080 \
    WABLAST_DATA_DIR=/var/lib/wablast

USER wablast
WORKDIR /var/lib/wablast
VOLUME ["/var/lib/wablast"]
EXPOSE 8080

# Only `all` and `api` serve HTTP: docker-compose.yml disables this check for
# the other roles. The port follows WABLAST_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${WABLAST_LISTEN##*:}/healthz" >/dev/null || exit 1

ENTRYPOINT ["wablast"]
CMD ["all"]
