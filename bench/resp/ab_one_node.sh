#!/usr/bin/env bash
# Alternating A/B of mycorrizal-node binaries under redis-benchmark, with
# redis-server 7.0 in the same run as the baseline.
#
#   bench/resp/ab_one_node.sh [-r ROUNDS] [-P PIPELINE] [-n REQUESTS] BIN...
#
# For each round and each server (redis-server, then every BIN in order):
# start it alone on 127.0.0.1, warm up with 50,000 requests, then
# `redis-benchmark -t set,get -d 64 -c 50 -n REQUESTS -P PIPELINE --csv`,
# and print requests/s, p50 and p99 (ms) of SET and GET and the server's
# CPU (utime + stime from /proc/<pid>/stat) per operation. Machines drift
# by a fifth over an hour: compare only figures of the same run.
set -euo pipefail
rounds=3 pipeline=16 requests=400000
while getopts "r:P:n:h" o; do
  case $o in
    r) rounds=$OPTARG ;;
    P) pipeline=$OPTARG ;;
    n) requests=$OPTARG ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
for b in "$@"; do
  [ -x "$b" ] || { echo "not executable: $b" >&2; exit 2; }
done
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing (tools/setup.sh)" >&2; exit 2; }
tick=$(getconf CLK_TCK)
port=7611

run_one() { # label, command...
  local label=$1; shift
  local work; work=$(mktemp -d)
  "$@" --dir "$work" >"$work/log" 2>&1 &
  local pid=$!
  local i
  for i in $(seq 200); do
    redis-cli -p $port ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-benchmark -p $port -t set,get -d 64 -c 50 -n 50000 -P "$pipeline" -q >/dev/null 2>&1
  local t0 t1 out
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(redis-benchmark -p $port -t set,get -d 64 -c 50 -n "$requests" -P "$pipeline" --csv 2>/dev/null)
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$work"
  echo "$out" | awk -F, -v label="$label" -v ticks=$((t1 - t0)) -v hz="$tick" -v n="$requests" '
    NR > 1 { gsub(/"/, ""); printf "%s %s %.0f/s p50 %s p99 %s; ", (NR == 2 ? label ":" : ""), $1, $2, $5, $7 }
    END { printf "CPU %.2f us/op\n", ticks * 1e6 / hz / (2 * n) }'
}

node_cmd() { # bin --dir DIR
  local bin=$1 dir=$3
  exec "$bin" --name ab --gossip 127.0.0.1:0 --profile local --data-dir "$dir/certs" \
    --log-level warn --resp 127.0.0.1:$port
}

echo "P$pipeline, $requests requests, 50 clients, 64 B values, $rounds rounds"
for r in $(seq "$rounds"); do
  run_one "redis-server" redis-server --port $port --bind 127.0.0.1 --save "" --appendonly no
  for b in "$@"; do
    run_one "$b" node_cmd "$b"
  done
done
