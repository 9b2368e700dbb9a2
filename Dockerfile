# syntax=docker/dockerfile:1
#
# Tessera server image.
#   docker build -t tessera .
#   docker run -p 8080:8080 -e TESSERA__JWT__SECRET=… -e TESSERA__SESSION__REFRESH_TOKEN_KEY=… \
#     -e TESSERA__MFA__ENCRYPTION_KEY=… \
#     -e TESSERA__DATABASE__URL=postgres://… -e TESSERA__REDIS__URL=redis://… tessera
# See docs/deploy.md. Needs BuildKit (the default builder since Docker 23) for the cache mounts.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# The whole workspace (entity, migration, bench are members; .dockerignore drops target/ and .git).
COPY . .
# The registry and target/ live in BuildKit cache mounts, so a rebuild after a
# source change recompiles only Tessera's own crates. target/ is not part of the
# layer, hence the copy out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin tessera \
 && cp target/release/tessera /usr/local/bin/tessera

# glibc runtime (the server calls malloc_trim) matching the builder's Debian release.
FROM debian:bookworm-slim
# ca-certificates only (TLS to PostgreSQL/Redis); tracks Debian's security updates unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tessera \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin tessera

# The binary reads config/default.toml + config/$TESSERA_ENV.toml relative to
# its working directory. /app/data is where the default SQLite URL
# (sqlite://data/tessera.db) writes: mount a volume there for a single
# SQLite instance; with PostgreSQL it stays empty.
WORKDIR /app
COPY --from=builder /usr/local/bin/tessera /app/tessera
COPY config/ /app/config/
RUN mkdir /app/data && chown 10001:10001 /app/data

# production refuses to start without TESSERA__JWT__SECRET,
# TESSERA__SESSION__REFRESH_TOKEN_KEY and TESSERA__MFA__ENCRYPTION_KEY (32+
# random bytes each): pass them at run time.
ENV TESSERA_ENV=production \
    TESSERA__SERVER__BIND=0.0.0.0:8080 \
    TESSERA__METRICS__BIND=0.0.0.0:9464

USER 10001:10001
# 8080: the API and /health/*. 9464: Prometheus /metrics; publish it only to
# the network your Prometheus scrapes from, never to the public.
EXPOSE 8080 9464

# No HEALTHCHECK: the image has no HTTP client (curl/wget) and the binary has
# no health subcommand. Let the orchestrator probe GET /health/live (liveness)
# and GET /health/ready (readiness: 503 while the database or Redis is down).

# SIGTERM: stop accepting, finish in-flight requests, exit within 10 s.
# Give the container at least 15 s (docker stop -t 15, stop_grace_period: 15s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/tessera"]
CMD ["serve"]
