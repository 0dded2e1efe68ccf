#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Alternating A/B of mycorrizal-node binaries as a 3-node cluster under
redis-benchmark.

    bench/resp/ab_cluster.py [--rounds 3] [--pipeline 16]
        [--requests 300000] BIN...

For each round and each BIN in order: start three nodes as
redis_benchmark.py does (127.0.0.101-103, db0 with RF 2, ack all), then
three redis-benchmark processes at once, one per node, each with a third of
50 clients and of REQUESTS (`-t set,get -d 64 -P PIPELINE --csv`); print
the summed requests/s, the worst p99 (ms) of SET and GET, and the CPU of
the three nodes per operation (µs, SET and GET together, utime + stime
from /proc). The order of the binaries alternates from round to round.
Machines drift: compare only figures of the same run.
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import redis_benchmark as rb  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--requests", type=int, default=300_000)
    ap.add_argument("--clients", type=int, default=50)
    args = ap.parse_args()
    for b in args.bins:
        if not os.access(b, os.X_OK):
            print("not executable: %s" % b, file=sys.stderr)
            return 2
    if shutil.which("redis-benchmark") is None:
        print("redis-benchmark missing (tools/setup.sh)", file=sys.stderr)
        return 2
    print("| round | binary | SET/s | GET/s | SET p99 ms | GET p99 ms "
          "| CPU µs/op |")
    print("|---|---|---|---|---|---|---|")
    for r in range(args.rounds):
        order = list(enumerate(args.bins))
        if r % 2 == 1:
            order.reverse()
        for i, binary in order:
            work = tempfile.mkdtemp(prefix="resp-ab-")
            logs = []
            try:
                nodes = rb.start_cluster(binary, work, logs)
                try:
                    pids = [p.pid for p, _ in nodes]
                    before = sum(rb.cpu_seconds(p) for p in pids)
                    rows = rb.run_benchmark([t for _, t in nodes],
                                            args.clients, args.requests, 64,
                                            args.pipeline)
                    cpu = sum(rb.cpu_seconds(p) for p in pids) - before
                finally:
                    rb.stop([p for p, _ in nodes])
            finally:
                for log in logs:
                    log.close()
                shutil.rmtree(work, ignore_errors=True)
            ops = 2 * (args.requests // 3) * 3
            s, g = rows.get("SET", {}), rows.get("GET", {})
            print("| %d | %d %s | %.0f | %.0f | %.3f | %.3f | %.1f |" % (
                r + 1, i + 1, binary, s.get("rps", 0), g.get("rps", 0),
                s.get("p99_ms", 0), g.get("p99_ms", 0), cpu / ops * 1e6),
                flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
