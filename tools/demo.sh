#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo cluster: three mycorrizal-node processes on 127.0.0.1..3 running
# the example application and Mycel, the replicated cache, one killed with
# SIGKILL and restarted.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: tools/demo.sh [options]

Runs a Mycorrizal cluster of three nodes on this machine and narrates it:
  1. builds mycorrizal-node (Release, into build/demo; installs the Debian
     packages with tools/setup.sh first if some are missing);
  2. starts node-1, node-2 and node-3 on 127.0.0.1, .2 and .3 (gossip port
     7946, QUIC port 7947, development-mode certificates from one CA in a
     temporary directory), each running the example application 'demo';
  3. waits until every node sees the other two, then shows a broadcast and
     a request round trip;
  4. creates the cache bucket 'demo' (RF 2) on node-1, puts a value on
     node-1 under a key node-3 owns, and reads it on node-2, printing the
     key's owners;
  5. kills node-3 with SIGKILL and waits until node-1 and node-2 report a
     failed pending request and the down-message of node-3's remote handle,
     and the value is still read on node-2;
  6. restarts node-3 with the same name and ports and waits until it is
     back, requests to it are answered again, and the key has two owners
     again (printed), node-3 among them, holding its copy again;
  7. stops the three nodes with SIGTERM and removes the temporary files.
Each step has a deadline; the script exits 0 when all happened, and
non-zero naming the step that did not (with the nodes' last lines).
The nodes' own lines start with [node-N]; the narration with '==>'. The
cache commands go to each node's console (mycorrizal-node --console) through
a FIFO in the work directory.

Options:
  --bin PATH         use this mycorrizal-node binary: no set-up, no build
  --build-dir DIR    where to build (default: build/demo)
  --addresses A,B,C  the three nodes' IPv4 addresses
                     (default: 127.0.0.1,127.0.0.2,127.0.0.3)
  --gossip-port N    gossip port of every node (default: 7946)
  --quic-port N      QUIC port of every node (default: 7947)
  --work-dir DIR     keep certificates and the nodes' logs (node-N.log) in
                     DIR instead of a temporary directory removed at exit
  --timeout S        deadline of each step in seconds (default: 30)
  --quiet            show only the narration and the lines it points at,
                     not every line of the nodes
  --help             this text

Environment:
  JOBS               parallel build jobs (default: number of cores)
USAGE
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=""
build_dir="$root/build/demo"
addresses="127.0.0.1,127.0.0.2,127.0.0.3"
gossip_port=7946
quic_port=7947
work_dir=""
step_timeout=30
quiet=0

need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then
    echo "demo.sh: $1 needs a value (see --help)" >&2
    exit 2
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --bin) need_value "$@"; bin=$2; shift 2 ;;
    --build-dir) need_value "$@"; build_dir=$2; shift 2 ;;
    --addresses) need_value "$@"; addresses=$2; shift 2 ;;
    --gossip-port) need_value "$@"; gossip_port=$2; shift 2 ;;
    --quic-port) need_value "$@"; quic_port=$2; shift 2 ;;
    --work-dir) need_value "$@"; work_dir=$2; shift 2 ;;
    --timeout) need_value "$@"; step_timeout=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

IFS=, read -r -a ips <<<"$addresses"
if [ ${#ips[@]} -ne 3 ]; then
  echo "demo.sh: --addresses needs three addresses, got '$addresses'" >&2
  exit 2
fi
for p in "$gossip_port" "$quic_port" "$step_timeout"; do
  if ! [[ $p =~ ^[0-9]+$ ]] || [ "$p" -eq 0 ]; then
    echo "demo.sh: '$p' is not a positive number (see --help)" >&2
    exit 2
  fi
done

# -- output -------------------------------------------------------------------

start_ns=$(date +%s%N)
bold=""
plain=""
if [ -t 1 ]; then
  bold=$(printf '\033[1m')
  plain=$(printf '\033[0m')
fi

elapsed() {
  local ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
  printf '%d.%d s' $((ms / 1000)) $(((ms % 1000) / 100))
}

say() { printf '%s==> [%s] %s%s\n' "$bold" "$(elapsed)" "$*" "$plain"; }
show() { printf '    | %s\n' "$*"; }

# -- set-up and build -----------------------------------------------------------

if [ -z "$bin" ]; then
  say "Preparing: Debian packages and a Release build of mycorrizal-node"
  packages=(cmake ninja-build g++ pkg-config libcaf-dev libngtcp2-dev
            libngtcp2-crypto-gnutls-dev libgnutls28-dev libspdlog-dev
            libfmt-dev libmsgpack-cxx-dev libcli11-dev)
  missing=0
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q '^install ok installed$'; then
      missing=1
    fi
  done
  if [ "$missing" -eq 1 ]; then
    bash "$root/tools/setup.sh"
  fi
  mkdir -p "$build_dir"
  if ! cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DMYCORRIZAL_BUILD_TESTS=OFF -DMYCORRIZAL_BUILD_BENCH=OFF \
       -DMYCORRIZAL_BUILD_TOOLS=ON >"$build_dir.configure.log" 2>&1; then
    cat "$build_dir.configure.log"
    echo "demo.sh: configuring the build failed" >&2
    exit 1
  fi
  ninja -C "$build_dir" -j "${JOBS:-$(nproc)}" mycorrizal-node
  bin="$build_dir/tools/mycorrizal-node"
fi
if [ ! -x "$bin" ]; then
  echo "demo.sh: '$bin' is not an executable" >&2
  exit 2
fi

# -- the cluster ----------------------------------------------------------------

keep_work_dir=1
if [ -z "$work_dir" ]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/mycorrizal-demo.XXXXXX")
  keep_work_dir=0
fi
mkdir -p "$work_dir"
rm -f "$work_dir"/node-[123].log "$work_dir"/node-[123].in

names=(node-1 node-2 node-3)
pids=(0 0 0)
tail_pid=0
finished=0

cleanup() {
  local rc=$? i
  set +e
  # Nodes still running (a failed step, Ctrl-C): SIGTERM, then SIGKILL
  # after 5 s.
  local left=()
  for i in 0 1 2; do
    if [ "${pids[$i]}" -ne 0 ] && kill -0 "${pids[$i]}" 2>/dev/null; then
      kill -TERM "${pids[$i]}" 2>/dev/null
      left+=("${pids[$i]}")
    fi
  done
  local until=$(( $(date +%s) + 5 )) p
  for p in "${left[@]+"${left[@]}"}"; do
    while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do
      sleep 0.1
    done
    { kill -KILL "$p"; wait "$p"; } 2>/dev/null
  done
  if [ "$tail_pid" -ne 0 ]; then
    kill "$tail_pid" 2>/dev/null
    wait "$tail_pid" 2>/dev/null
  fi
  if [ "$finished" -eq 0 ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] \
     && [ "$rc" -ne 143 ]; then
    for i in 0 1 2; do
      local log="$work_dir/${names[$i]}.log"
      if [ -f "$log" ]; then
        echo "--- last lines of ${names[$i]} ($log):"
        tail -n 15 "$log"
      fi
    done
  fi
  if [ "$keep_work_dir" -eq 0 ]; then
    rm -rf "$work_dir"
  else
    echo "demo.sh: certificates and logs kept in $work_dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  printf '%sdemo.sh: FAILED after %s: %s%s\n' "$bold" "$(elapsed)" "$*" \
    "$plain" >&2
  exit 1
}

log_of() { echo "$work_dir/${names[$1]}.log"; }
lines_of() { wc -l <"$(log_of "$1")"; }

start_node() {
  local i=$1 j
  local seeds=()
  for j in 0 1 2; do
    if [ "$j" -ne "$i" ]; then
      seeds+=(--seed "${ips[$j]}:$gossip_port")
    fi
  done
  local fifo="$work_dir/${names[$i]}.in"
  if [ ! -p "$fifo" ]; then
    mkfifo "$fifo"
  fi
  # The console reads its commands from the FIFO, opened read-write so
  # that it never sees an end of file between two commands.
  "$bin" --name "${names[$i]}" --gossip "${ips[$i]}:$gossip_port" \
    --quic "${ips[$i]}:$quic_port" "${seeds[@]}" \
    --data-dir "$work_dir/certs" --profile local --log-level warn --demo \
    --cache storage --console <>"$fifo" >>"$(log_of "$i")" 2>&1 &
  pids[i]=$!
}

# command NODE LINE: sends LINE to NODE's console and waits for its answer,
# which it leaves in $found (the answer after '-> ').
answer=""
command() {
  local i=$1 line=$2
  local from=$(( $(lines_of "$i") + 1 ))
  printf '%s\n' "$line" >"$work_dir/${names[$i]}.in"
  local re="^\[${names[$i]}\] $(sed -e 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$line") -> "
  wait_line "$i" "$from" "$re" "the answer of ${names[$i]} to '$line'"
  answer=${found#*" -> "}
}

# Fails when a node that should run has exited.
check_alive() {
  local i
  for i in 0 1 2; do
    if [ "${pids[$i]}" -ne 0 ] && ! kill -0 "${pids[$i]}" 2>/dev/null; then
      local rc=0
      wait "${pids[$i]}" || rc=$?
      pids[i]=0
      fail "${names[$i]} exited unexpectedly (status $rc)"
    fi
  done
}

deadline=0
set_deadline() { deadline=$(( $(date +%s) + step_timeout )); }

# wait_line NODE FROM REGEX WHAT: waits (until the step's deadline) for the
# first line of NODE's log at or after line FROM that matches REGEX (grep
# -E); prints it into $found; fails naming WHAT.
found=""
wait_line() {
  local i=$1 from=$2 re=$3 what=$4
  while :; do
    # (|| true: grep -m 1 may end the pipe before tail is done.)
    found=$(tail -n +"$from" "$(log_of "$i")" | grep -m 1 -E -- "$re" || true)
    if [ -n "$found" ]; then
      return 0
    fi
    check_alive
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail "no sign of $what within ${step_timeout} s" \
        "(waited for /$re/ in $(log_of "$i") from line $from)"
    fi
    sleep 0.2
  done
}

say "Starting node-1, node-2, node-3 on ${ips[0]}, ${ips[1]}, ${ips[2]}" \
  "(gossip port $gossip_port, QUIC port $quic_port; certificates and logs" \
  "in $work_dir)"
for i in 0 1 2; do
  : >"$(log_of "$i")"
done
if [ "$quiet" -eq 0 ]; then
  tail -q -n +1 -F "$(log_of 0)" "$(log_of 1)" "$(log_of 2)" 2>/dev/null &
  tail_pid=$!
fi
for i in 0 1 2; do
  start_node "$i"
done

# 1. Full mesh: each node has a remote handle for the other two.
set_deadline
for i in 0 1 2; do
  others=()
  for j in 0 1 2; do
    if [ "$j" -ne "$i" ]; then others+=("${names[$j]}"); fi
  done
  wait_line "$i" 1 "^\[${names[$i]}\] peers running demo: ${others[0]}, ${others[1]}\$" \
    "${names[$i]} seeing the other two nodes"
done
say "Full mesh: every node runs 'demo' and sees the other two"

# 2. A broadcast from node-1 and its arrival at node-2 and node-3.
set_deadline
wait_line 0 1 '^\[node-1\] broadcast "hello #[0-9]+" reached node-2, node-3$' \
  "a broadcast from node-1"
line=$found
hello=$(sed -E 's/.*"(hello #[0-9]+)".*/\1/' <<<"$line")
say "node-1 broadcasts \"$hello\" as raw bytes to every peer running 'demo':"
show "$line"
for i in 1 2; do
  wait_line "$i" 1 "^\[${names[$i]}\] got \"$hello\" from node-1\$" \
    "${names[$i]} receiving \"$hello\""
  show "$found"
done

# 3. Request round trips: a typed CAF request, and a slow one.
set_deadline
wait_line 0 1 '^\[node-1\] request to node-3: answered ' \
  "an answered request from node-1 to node-3"
say "node-1 sends node-3 a typed request (demo_ping, a CAF message) through" \
  "its remote handle:"
show "$found"
wait_line 0 1 '^\[node-1\] slow request to node-3: answered ' \
  "an answered slow request from node-1 to node-3"
say "node-3 answers slow requests after 2 s from a response promise; one is" \
  "always in flight:"
show "$found"
# node-3 is killed next: its own first slow request must have come back
# too (the test checks every node got slow answers; a slow node-3 starts
# its first one later than node-1).
wait_line 2 1 '^\[node-3\] slow request to node-[12]: answered ' \
  "an answered slow request from node-3"

# 4. The cache: a bucket, a value put on node-1 and read on node-2.
set_deadline
command 0 "mkbucket demo rf=2"
say "node-1 creates the cache bucket 'demo' (RF 2); every node learns of it:"
show "$found"
key=""
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
  command 0 "owners demo greeting-$k"
  if [[ $answer == *node-3* ]]; then
    key="greeting-$k"
    break
  fi
done
if [ -z "$key" ]; then
  fail "no key of greeting-1..12 has node-3 among its owners"
fi
owners_before=$answer
command 0 "put demo $key hello-from-node-1"
if [ "$answer" != "OK" ]; then
  fail "node-1 could not put $key: $answer"
fi
say "node-1 puts $key (owners: $owners_before); the write is acknowledged" \
  "once both owners have it:"
show "$found"
command 1 "get demo $key"
if [ "$answer" != '"hello-from-node-1"' ]; then
  fail "node-2 read $key as $answer"
fi
say "node-2 reads it (from the key's primary):"
show "$found"

# 5. SIGKILL node-3: the survivors see a failed request and a down-message.
from1=$(( $(lines_of 0) + 1 ))
from2=$(( $(lines_of 1) + 1 ))
say "Killing node-3 with SIGKILL (pid ${pids[2]}): no goodbye, its pending" \
  "requests must fail"
# (Grouped: bash's "Killed" job notice goes to /dev/null.)
{ kill -KILL "${pids[2]}"; wait "${pids[2]}"; } 2>/dev/null || true
pids[2]=0
set_deadline
for i in 0 1; do
  from=$from1
  if [ "$i" -eq 1 ]; then from=$from2; fi
  wait_line "$i" "$from" "^\[${names[$i]}\] slow request to node-3 failed" \
    "${names[$i]} seeing its pending request to node-3 fail"
  say "${names[$i]}: the pending slow request to node-3 failed:"
  show "$found"
  wait_line "$i" "$from" "^\[${names[$i]}\] down-message: node-3's handle ended \(node_down" \
    "the down-message of node-3's handle at ${names[$i]}"
  say "${names[$i]}: membership declared node-3 dead; its monitored remote" \
    "handle quit with node_down:"
  show "$found"
done
command 1 "get demo $key"
if [ "$answer" != '"hello-from-node-1"' ]; then
  fail "after node-3's crash node-2 read $key as $answer"
fi
say "node-3 held $key and crashed; node-2 still reads it from the other owner:"
show "$found"
command 1 "owners demo $key"
say "Owners of $key now: $answer (the new owner gets its copy by hand-off)"

# 6. Restart node-3 with the same name and ports: it rejoins.
from1=$(( $(lines_of 0) + 1 ))
from2=$(( $(lines_of 1) + 1 ))
from3=$(( $(lines_of 2) + 1 ))
say "Restarting node-3 with the same name, address and ports"
start_node 2
set_deadline
wait_line 2 "$from3" '^\[node-3\] peers running demo: node-1, node-2$' \
  "the restarted node-3 seeing node-1 and node-2"
show "$found"
for i in 0 1; do
  from=$from1
  if [ "$i" -eq 1 ]; then from=$from2; fi
  wait_line "$i" "$from" "^\[${names[$i]}\] request to node-3: answered " \
    "${names[$i]} getting answers from the restarted node-3"
  show "$found"
done
wait_line 2 "$from3" '^\[node-3\] got "hello #[0-9]+" from node-1$' \
  "the restarted node-3 receiving broadcasts from node-1"
show "$found"
say "node-3 is back: it rejoined under its old name, and messages flow again"
set_deadline
while :; do
  command 0 "owners demo $key"
  if [ "$answer" = "$owners_before" ]; then
    break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    fail "the owners of $key did not become $owners_before again (now: $answer)"
  fi
  sleep 0.2
done
say "Owners of $key: $answer again, as before the crash"
# The bucket holds one key: node-3's one entry is its copy of it.
while :; do
  command 2 "stats"
  if [[ $answer =~ ^demo:\ 1\ entries ]]; then
    break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    fail "the restarted node-3 holds no copy of $key: $answer"
  fi
  sleep 0.2
done
say "node-3 got its copy of $key back by hand-off (its bucket counters):"
show "$found"
command 2 "get demo $key"
if [ "$answer" != '"hello-from-node-1"' ]; then
  fail "the restarted node-3 read $key as $answer"
fi
show "$found"

# 7. Stop everything with SIGTERM: each node leaves and exits 0.
say "Stopping the three nodes with SIGTERM"
for i in 0 1 2; do
  kill -TERM "${pids[$i]}"
done
set_deadline
for i in 0 1 2; do
  while kill -0 "${pids[$i]}" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail "${names[$i]} did not exit within ${step_timeout} s of SIGTERM"
    fi
    sleep 0.1
  done
  rc=0
  wait "${pids[$i]}" || rc=$?
  pids[i]=0
  if [ "$rc" -ne 0 ]; then
    fail "${names[$i]} exited with status $rc after SIGTERM"
  fi
done
if [ "$tail_pid" -ne 0 ]; then
  # Let tail print the nodes' last lines before it goes.
  sleep 0.3
fi
say "Done: all three nodes left the cluster and exited 0"
finished=1
