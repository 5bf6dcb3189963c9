# sqrl-server in a container.
#
#   docker build -t sqrl-server .
#   docker run -d --name sqrl -p 8080:8080 -v sqrl-data:/var/lib/sqrl \
#       -e SQRL_PUBLIC_ORIGIN=https://login.example.com \
#       -e SQRL_TRUSTED_PROXIES=172.17.0.1 sqrl-server
#
# Every setting is a SQRL_* variable (or a flag after the image name; see
# `docker run --rm sqrl-server --help`). The public origin is the address
# browsers use: without it the service answers only Host 127.0.0.1:8080.

# --- Build: the locked dependency set, release profile ---
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sqrl-server \
 && install -D -m 0755 target/release/sqrl-server /out/sqrl-server

# --- Run: a small Debian with the binary and CA roots, nothing else ---
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sqrl \
        --shell /usr/sbin/nologin sqrl \
 && install -d -o sqrl -g sqrl -m 0700 /var/lib/sqrl
COPY --from=build /out/sqrl-server /usr/local/bin/sqrl-server

# Listen on every interface of the container; keep the SQLite database (and
# its WAL files) in the volume. For PostgreSQL, set SQRL_DB to its URL.
ENV SQRL_BIND=0.0.0.0:8080 \
    SQRL_DB=/var/lib/sqrl/sqrl.db
VOLUME /var/lib/sqrl
WORKDIR /var/lib/sqrl
EXPOSE 8080
USER sqrl:sqrl

# /healthz answers 200 while the database does, whatever the Host header.
# The slim image has no HTTP client, so bash (always present in Debian)
# speaks HTTP/1.0 over /dev/tcp. With built-in TLS (SQRL_TLS_CERT), replace
# this check: it speaks plain HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["/usr/local/bin/sqrl-server"]
