#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Formation benchmark: N mycorrizal-node processes until a full QUIC mesh,
and their memory when idle.

For each N (default 5, 10, 20) and each trial, this starts N processes of
`mycorrizal-node` at once on 127.<subnet>.0.1 .. 127.<subnet>.0.N (node 1
alone, every other node with node 1 as its seed), with certificates made
beforehand by `mycorrizal-certs` (so key generation is not timed), and
reads their stdout. A node has formed when it printed
"connected to <peer> over QUIC" for every other node (and no later
"connection to <peer> down" undid one). The time reported is from the
start of the first process to the moment the last node formed, and its
median over the nodes.

Then, with the cluster formed and idle, it samples each node's VmRSS
(/proc/<pid>/status) every 0.5 s until two samples of the whole cluster
agree within 2 % (at most 10 s), and reports the median RSS per node.
A single node alone, measured the same way, is the baseline: the RSS a
peer adds is (RSS at N - RSS alone) / (N - 1).

Usage:

    bench/cluster/formation.py --node <build>/tools/mycorrizal-node \\
        --certs <build>/tools/mycorrizal-certs [--sizes 5,10,20] \\
        [--trials 3] [--subnet 90] [--deadline 60] [--profile local]

The nodes run with `--log-level warn` (their stderr goes to a file in the
scratch directory, printed if a trial fails).
"""

import argparse
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CONNECTED = re.compile(r"^\[([^\]]+)\] connected to (\S+) over QUIC")
DOWN = re.compile(r"^\[([^\]]+)\] connection to (\S+) down")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def make_certs(certs_tool, workdir, names):
    ca = os.path.join(workdir, "ca")
    subprocess.run([certs_tool, "ca", "--out", ca], check=True,
                   stdout=subprocess.DEVNULL)
    for n in names:
        subprocess.run([certs_tool, "node", "--ca", ca, "--name", n,
                        "--out", os.path.join(workdir, n)], check=True,
                       stdout=subprocess.DEVNULL)


class Cluster:
    def __init__(self, args, workdir, n, subnet, port):
        self.args = args
        self.workdir = workdir
        self.n = n
        self.names = [f"f{i + 1}" for i in range(n)]
        self.hosts = [f"127.{subnet}.0.{i + 1}" for i in range(n)]
        self.port = port
        self.procs = []
        self.peers = {name: set() for name in self.names}
        self.formed_at = {}
        self.connected_at = {name: {} for name in self.names}
        self.buffers = {}
        self.t0 = 0.0

    def start(self):
        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        for i, (name, host) in enumerate(zip(self.names, self.hosts)):
            d = os.path.join(self.workdir, name)
            cmd = [self.args.node, "--name", name,
                   "--gossip", f"{host}:{self.port}",
                   "--quic", f"{host}:{self.port + 1}",
                   "--ca", os.path.join(d, "ca.pem"),
                   "--cert", os.path.join(d, f"{name}.pem"),
                   "--key", os.path.join(d, f"{name}.key"),
                   "--profile", self.args.profile,
                   "--log-level", self.args.node_log_level]
            if i > 0:
                cmd += ["--seed", f"{self.hosts[0]}:{self.port}"]
            err = open(os.path.join(self.workdir, f"{name}.stderr"), "w")
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
            err.close()
            os.set_blocking(p.stdout.fileno(), False)
            sel.register(p.stdout, selectors.EVENT_READ, name)
            self.buffers[name] = b""
            self.procs.append(p)
        self.sel = sel
        self.t0 = t0
        return t0

    def pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            name = key.data
            try:
                chunk = os.read(key.fileobj.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fileobj)
                continue
            self.buffers[name] += chunk
            *lines, self.buffers[name] = self.buffers[name].split(b"\n")
            now = time.monotonic()
            for raw in lines:
                line = raw.decode(errors="replace")
                m = CONNECTED.match(line)
                if m and m.group(1) == name:
                    self.peers[name].add(m.group(2))
                    self.connected_at[name][m.group(2)] = now - self.t0
                m = DOWN.match(line)
                if m and m.group(1) == name:
                    self.peers[name].discard(m.group(2))
                    self.formed_at.pop(name, None)
                if (name not in self.formed_at
                        and len(self.peers[name]) == self.n - 1):
                    self.formed_at[name] = now

    def wait_formed(self, t0, deadline):
        while len(self.formed_at) < self.n:
            if time.monotonic() - t0 > deadline:
                missing = {n: sorted(set(self.names) - {n} - self.peers[n])
                           for n in self.names if n not in self.formed_at}
                raise RuntimeError(f"no full mesh in {deadline} s; missing "
                                   f"peers: {missing}")
            for p, name in zip(self.procs, self.names):
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}")
            self.pump(0.05)
        return [self.formed_at[n] - t0 for n in self.names]

    def settled_rss(self):
        """Median VmRSS over the nodes once two samples agree within 2 %."""
        last = None
        end = time.monotonic() + 10
        while True:
            self.pump(0.5)
            cur = [rss_kib(p.pid) for p in self.procs]
            if None in cur:
                raise RuntimeError("a node exited while idle")
            if last is not None:
                a, b = sum(last), sum(cur)
                if abs(a - b) <= 0.02 * b or time.monotonic() > end:
                    return statistics.median(cur), max(cur)
            last = cur

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def explain_slow(c, times, slow):
    """For every node formed after `slow` seconds: when it got each of its
    late peers, and its stderr."""
    for name, t in zip(c.names, times):
        if t <= slow:
            continue
        late = sorted((at, peer) for peer, at in c.connected_at[name].items()
                      if at > slow)
        print(f"# slow: {name} formed at {t:.3f} s; late peers: "
              + ", ".join(f"{p}@{at:.3f}" for at, p in late), file=sys.stderr)
        # What the node logged about its late peers.
        path = os.path.join(c.workdir, f"{name}.stderr")
        peers = [p for _, p in late]
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                lines = [ln.rstrip() for ln in f
                         if any(f"{p} " in ln or f"'{p}'" in ln
                                or f"{p}:" in ln for p in peers)]
            for ln in lines[:60]:
                print(f"#   {ln}", file=sys.stderr)


def dump_stderr(workdir, names):
    for n in names:
        path = os.path.join(workdir, f"{n}.stderr")
        if os.path.exists(path):
            with open(path) as f:
                tail = f.read()[-2000:]
            if tail.strip():
                print(f"--- {n} stderr (tail)\n{tail}", file=sys.stderr)


def run(args):
    sizes = [int(x) for x in args.sizes.split(",")]
    workdir = tempfile.mkdtemp(prefix="mcz-formation.")
    try:
        make_certs(args.certs, workdir, [f"f{i + 1}" for i in range(max(sizes))])
        print(f"# formation: mycorrizal-node, profile {args.profile}, "
              f"{args.trials} trials per size, {os.cpu_count()} CPUs")
        # Baseline: one node alone, idle.
        c = Cluster(args, workdir, 1, args.subnet, args.port)
        try:
            t0 = c.start()
            c.wait_formed(t0, args.deadline)
            alone, _ = c.settled_rss()
        finally:
            c.stop()
        print(f"alone rss_kib={alone}")
        for n in sizes:
            last_all, median_all, rss_all, rss_max = [], [], [], []
            for trial in range(args.trials):
                subnet = args.subnet + 1 + (trial % 50)
                c = Cluster(args, workdir, n, subnet, args.port)
                try:
                    t0 = c.start()
                    times = c.wait_formed(t0, args.deadline)
                    if args.slow > 0 and max(times) > args.slow:
                        explain_slow(c, times, args.slow)
                    rss, top = c.settled_rss()
                except Exception:
                    dump_stderr(workdir, c.names)
                    raise
                finally:
                    c.stop()
                last_all.append(max(times))
                median_all.append(statistics.median(times))
                rss_all.append(rss)
                rss_max.append(top)
                print(f"  n={n} trial={trial + 1} full_mesh_s={max(times):.3f} "
                      f"median_node_s={statistics.median(times):.3f} "
                      f"rss_kib_median={rss} rss_kib_max={top}")
            rss = statistics.median(rss_all)
            per_peer = (rss - alone) / (n - 1) if n > 1 else 0
            print(f"n={n} full_mesh_s_median={statistics.median(last_all):.3f} "
                  f"[{min(last_all):.3f}-{max(last_all):.3f}] "
                  f"node_formed_s_median={statistics.median(median_all):.3f} "
                  f"rss_kib_per_node={rss:.0f} "
                  f"rss_kib_per_peer={per_peer:.0f}")
            sys.stdout.flush()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", required=True, help="mycorrizal-node binary")
    ap.add_argument("--certs", required=True, help="mycorrizal-certs binary")
    ap.add_argument("--sizes", default="5,10,20")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--subnet", type=int, default=90,
                    help="second octet of the 127.x.0.y addresses")
    ap.add_argument("--port", type=int, default=7946,
                    help="gossip port (QUIC uses the next one)")
    ap.add_argument("--deadline", type=float, default=60)
    ap.add_argument("--profile", default="local", choices=["local", "lan"])
    ap.add_argument("--node-log-level", default="warn",
                    help="the nodes' --log-level (their stderr)")
    ap.add_argument("--slow", type=float, default=0,
                    help="explain trials slower than this many seconds: "
                         "late peers and the late nodes' stderr")
    args = ap.parse_args()
    try:
        run(args)
    except RuntimeError as e:
        print(f"formation: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
