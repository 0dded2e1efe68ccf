#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""redis-benchmark against redis-server 7.0, one mycorrizal-node and a
3-node cluster, in one run (issue 17's yardstick).

    bench/resp/redis_benchmark.py --bin build/release/tools/mycorrizal-node \
        [--requests 1000000] [--clients 50] [--size 64]

For each target and for pipelines of 1 and 16 it runs
`redis-benchmark -t set,get -d SIZE -c CLIENTS -n REQUESTS [-P 16] --csv`
and reports requests/s, p50 and p99 (from redis-benchmark's CSV), and the
CPU the server processes used per operation (utime + stime from /proc,
before and after). The cluster is three mycorrizal-node processes on
127.0.0.101-103 storing db0 with Mycel's defaults (RF 2, ack all); its
clients are spread over the nodes: three redis-benchmark processes at once,
each with a third of the clients and requests against one node, whose
rates add up and whose p99 is the worst of the three.

Prints a Markdown table (ratios against redis-server in the same run) and
the JSON of every measurement.
"""
import argparse
import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_port(host, port, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("%s:%d does not answer PING" % (host, port))


def wait_set(host, port, deadline_s=60):
    """Waits until a SET succeeds (the cluster's db0 bucket has owners)."""
    deadline = time.monotonic() + deadline_s
    last = b""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nprobe\r\n$1\r\nx\r\n")
                last = s.recv(256)
                if last.startswith(b"+OK"):
                    return
        except OSError as e:
            last = str(e).encode()
        time.sleep(0.2)
    raise RuntimeError("%s:%d: SET never succeeded: %r" % (host, port, last))


def run_benchmark(targets, clients, requests, size, pipeline):
    """Runs one redis-benchmark per target at once; returns per-test rows."""
    procs = []
    n = len(targets)
    for host, port in targets:
        cmd = ["redis-benchmark", "-h", host, "-p", str(port), "-t", "set,get",
               "-d", str(size), "-c", str(max(1, clients // n)),
               "-n", str(requests // n), "--csv"]
        if pipeline > 1:
            cmd += ["-P", str(pipeline)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True))
    results = {}
    for p in procs:
        out, _ = p.communicate(timeout=3600)
        for row in csv.DictReader(io.StringIO(out)):
            t = row["test"]
            r = results.setdefault(t, {"rps": 0.0, "p50_ms": 0.0,
                                       "p99_ms": 0.0})
            r["rps"] += float(row["rps"])
            r["p50_ms"] = max(r["p50_ms"], float(row["p50_latency_ms"]))
            r["p99_ms"] = max(r["p99_ms"], float(row["p99_latency_ms"]))
    return results


def measure(name, pids, targets, args):
    out = {}
    for pipeline in (1, 16):
        before = sum(cpu_seconds(p) for p in pids)
        rows = run_benchmark(targets, args.clients, args.requests, args.size,
                             pipeline)
        cpu = sum(cpu_seconds(p) for p in pids) - before
        ops = 2 * (args.requests // len(targets)) * len(targets)
        for test, r in rows.items():
            r["cpu_us_per_op"] = cpu / ops * 1e6  # SET and GET together
            out["%s P%d" % (test, pipeline)] = r
        print("  %s P%d: %s" % (name, pipeline, json.dumps(rows)),
              file=sys.stderr, flush=True)
    return out


def start_node(binary, work, logs, name, host, seed):
    """Starts a mycorrizal-node serving RESP on host; returns (proc,
    (host, port)). Its output goes to WORK/NAME.log (file kept in logs)."""
    rport = free_port(host)
    log = open(os.path.join(work, name + ".log"), "w")
    logs.append(log)
    cmd = [binary, "--name", name, "--gossip", host + ":7946",
           "--profile", "local", "--data-dir",
           os.path.join(work, "certs"), "--log-level", "warn",
           "--resp", "%s:%d" % (host, rport)]
    if seed:
        cmd += ["--seed", seed]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return p, (host, rport)


def start_cluster(binary, work, logs):
    """Three nodes on 127.0.0.101-103 (db0 with Mycel's defaults: RF 2, ack
    all), each answering SET; returns [(proc, (host, port))]."""
    nodes = [start_node(binary, work, logs, "bench-1", "127.0.0.101", None)]
    for i in (2, 3):
        nodes.append(start_node(binary, work, logs, "bench-%d" % i,
                                "127.0.0.10%d" % i, "127.0.0.101:7946"))
    try:
        for _, t in nodes:
            wait_port(*t)
        for _, t in nodes:
            wait_set(*t)
    except BaseException:
        stop([p for p, _ in nodes])
        raise
    return nodes


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print("%s not found (apt-get install redis-server redis-tools)"
                  % tool, file=sys.stderr)
            return 2
    work = tempfile.mkdtemp(prefix="resp-bench-")
    results = {}
    logs = []
    try:
        # redis-server
        port = free_port("127.0.0.1")
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port("127.0.0.1", port)
            results["redis-server"] = measure(
                "redis-server", [redis.pid], [("127.0.0.1", port)], args)
        finally:
            stop([redis])

        # one node
        p, target = start_node(args.bin, work, logs, "bench-solo",
                               "127.0.0.100", None)
        try:
            wait_port(*target)
            wait_set(*target)
            results["one node"] = measure("one node", [p.pid], [target], args)
        finally:
            stop([p])

        # three nodes, RF 2, ack all
        nodes = start_cluster(args.bin, work, logs)
        try:
            results["3 nodes"] = measure(
                "3 nodes", [p.pid for p, _ in nodes], [t for _, t in nodes],
                args)
        finally:
            stop([p for p, _ in nodes])
    finally:
        for log in logs:
            log.close()
        shutil.rmtree(work, ignore_errors=True)

    base = results["redis-server"]
    print("| target | test | requests/s | × redis | p50 ms | p99 ms | "
          "p99 × redis | CPU µs/op |")
    print("|---|---|---|---|---|---|---|---|")
    for target, rows in results.items():
        for test, r in rows.items():
            b = base[test]
            print("| %s | %s | %.0f | %.2f | %.3f | %.3f | %.2f | %.1f |"
                  % (target, test, r["rps"], r["rps"] / b["rps"], r["p50_ms"],
                     r["p99_ms"], r["p99_ms"] / b["p99_ms"]
                     if b["p99_ms"] > 0 else 0, r["cpu_us_per_op"]))
    print()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
