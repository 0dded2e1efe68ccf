#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# System test: the demo cluster's scenario (tools/demo.sh) with real
# mycorrizal-node processes: formation, broadcast, typed requests, SIGKILL
# of node-3 (a failed pending request and a node_down down-message at both
# survivors), restart under the same name, SIGTERM of all. demo.sh waits on
# each step with a deadline; this script then checks the nodes' logs.
#
# Usage: demo_cluster.sh MYCORRIZAL_NODE DEMO_SH
# Environment: DEMO_ADDRESSES (default 127.0.0.71,127.0.0.72,127.0.0.73),
# DEMO_GOSSIP_PORT (17946), DEMO_QUIC_PORT (17947): addresses and ports no
# other test uses.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 MYCORRIZAL_NODE DEMO_SH" >&2
  exit 2
fi
bin=$1
demo=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/mycorrizal-demo-test.XXXXXX")
out="$work/demo.out"
failures=0

finish() {
  local rc=$?
  if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; then
    echo "--- demo.sh output:"
    cat "$out" 2>/dev/null || true
    for n in node-1 node-2 node-3; do
      echo "--- $work/$n.log (last 60 lines):"
      tail -n 60 "$work/$n.log" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
  if [ "$failures" -ne 0 ] && [ "$rc" -eq 0 ]; then
    rc=1
  fi
  exit "$rc"
}
trap finish EXIT

check() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what"
    failures=$((failures + 1))
  fi
}

# count FILE REGEX: the number of lines matching REGEX (grep -E).
count() { grep -c -E -- "$2" "$1" || true; }

at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }
exactly() { [ "$(count "$1" "$2")" -eq "$3" ]; }

echo "running $demo --bin $bin --quiet"
rc=0
bash "$demo" --bin "$bin" --quiet --work-dir "$work" \
  --addresses "${DEMO_ADDRESSES:-127.0.0.71,127.0.0.72,127.0.0.73}" \
  --gossip-port "${DEMO_GOSSIP_PORT:-17946}" \
  --quic-port "${DEMO_QUIC_PORT:-17947}" >"$out" 2>&1 || rc=$?
check "demo.sh exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "demo.sh reached its end" grep -q 'Done: all three nodes left' "$out"

n1="$work/node-1.log"
n2="$work/node-2.log"
n3="$work/node-3.log"

# Formation and messaging.
for f in "$n1" "$n2" "$n3"; do
  n=$(basename "$f" .log)
  check "$n printed its status line" at_least "$f" "^\[$n\] ready: gossip " 1
  check "$n got broadcasts from both others" \
    bash -c "grep -qE '^\[$n\] got \"hello #[0-9]+\" from ' '$f' &&
             [ \$(grep -E '^\[$n\] got \"hello #[0-9]+\" from ' '$f' |
                  sed -E 's/.* from //' | sort -u | wc -l) -eq 2 ]"
  check "$n got typed answers" at_least "$f" \
    "^\[$n\] request to node-[123]: answered \"pong from node-[123] \(count [0-9]+\)\" in [0-9]+ (us|ms)$" 2
  check "$n got slow answers" at_least "$f" \
    "^\[$n\] slow request to node-[123]: answered \"slow pong from " 1
done

# The SIGKILL of node-3, seen by the survivors.
for f in "$n1" "$n2"; do
  n=$(basename "$f" .log)
  check "$n: a pending request to node-3 failed" at_least "$f" \
    "^\[$n\] slow request to node-3 failed after [0-9]+ (us|ms): (node_down|connection_lost|timeout): " 1
  check "$n: the down-message of node-3's handle (node_down)" at_least "$f" \
    "^\[$n\] down-message: node-3's handle ended \(node_down: " 1
  check "$n: membership declared node-3 dead" at_least "$f" \
    "^\[$n\] member dead: node-3$" 1
  # The first sighting is a join event, or the member list the watcher
  # prints when it subscribes (node-3 may join before it does); the
  # restart is always a join event after the death.
  check "$n: saw node-3 before its death" \
    bash -c "sed -n '1,/member dead: node-3\$/p' '$f' |
             grep -qE '^\[$n\] (member joined: node-3 |members: (.*, )?node-3(,|\$))'"
  check "$n: node-3 joined again after its death (restart)" \
    bash -c "sed -n '/member dead: node-3\$/,\$p' '$f' |
             grep -qE '^\[$n\] member joined: node-3 '"
  check "$n: answers from node-3 after the restart" \
    bash -c "sed -n '/down-message: node-3/,\$p' '$f' |
             grep -qE '^\[$n\] request to node-3: answered '"
  # At the end all three stop at once: one that left before this one did
  # is a legitimate down-message ("node-1 left"); any other is not.
  check "$n: no down-message for another node, except for its leave" \
    bash -c "! grep -E \"^\\[$n\\] down-message: node-[12]'s handle\" '$f' |
             grep -qvE \"\\(node_down: node-[12] left\\)\$\""
done

# node-3 ran twice; every node stopped cleanly on SIGTERM exactly once.
check "node-3 printed two status lines (start, restart)" \
  exactly "$n3" '^\[node-3\] ready: gossip ' 2
for f in "$n1" "$n2" "$n3"; do
  n=$(basename "$f" .log)
  check "$n stopped on SIGTERM" exactly "$f" "^\[$n\] stopped$" 1
  check "$n logged no errors" exactly "$f" \
    "^\[$n\] [0-9:.]+ (error|critical) " 0
done

echo "$failures failed checks"
[ "$failures" -eq 0 ]
