#!/usr/bin/env bash
# Several sqrl-server instances on one PostgreSQL database behind nginx, as
# deploy/nginx-cluster.conf describes: for trying the multi-instance setup and
# for benchmarks. Runs until Ctrl-C (or SIGTERM), then stops everything.
#
#   sqrl-server/tools/cluster.sh --db postgres://postgres@127.0.0.1:5432/test \
#       [--instances 3] [--listen 127.0.0.1:8080] [--binary target/release/sqrl-server] \
#       [--cpus 0] [-- extra sqrl-server flags]
#
# Prints the instances' PIDs and the nginx address. --cpus pins the instances
# (taskset list), leaving other cores to a load generator.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

instances=3
listen=127.0.0.1:8080
binary=target/release/sqrl-server
db=
cpus=
while [ $# -gt 0 ]; do
  case "$1" in
    --instances) instances="$2"; shift 2 ;;
    --listen) listen="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --db) db="$2"; shift 2 ;;
    --cpus) cpus="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$db" ] || { echo "--db postgres://... is required" >&2; exit 2; }
[ -x "$binary" ] || { echo "no server binary at $binary (cargo build --release -p sqrl-server)" >&2; exit 2; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx not found: run .ci/install-server-tools" >&2; exit 2; }

root=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT INT TERM

pin=()
[ -n "$cpus" ] && pin=(taskset -c "$cpus")
upstreams=""
for i in $(seq 1 "$instances"); do
  port=$((18080 + i))
  "${pin[@]}" "$binary" --db "$db" --bind "127.0.0.1:$port" \
    --public-origin "http://$listen" --trusted-proxies 127.0.0.1/32 "$@" \
    >"$root/instance-$i.log" 2>&1 &
  pids+=($!)
  upstreams+="        server 127.0.0.1:$port max_fails=1 fail_timeout=10s;"$'\n'
done
# nginx marks an instance that refuses a connection as down for a while:
# start it only once every instance answers.
for i in $(seq 1 "$instances"); do
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$((18080 + i))/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"
config="$(cat "$here/deploy/nginx-cluster.conf")"
config="${config//@USER@/$user}"
config="${config//@ROOT@/$root}"
config="${config//@LISTEN@/$listen}"
config="${config//@UPSTREAMS@/$upstreams}"
printf '%s\n' "$config" >"$root/nginx.conf"
"$nginx" -c "$root/nginx.conf" -p "$root" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://$listen/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "instances: ${pids[*]:0:$instances}"
echo "nginx: ${pids[$instances]} on http://$listen (logs in $root)"
wait -n "${pids[@]}" || true
echo "a process ended; stopping the cluster" >&2
