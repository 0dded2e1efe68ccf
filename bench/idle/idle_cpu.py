#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Idle cost of a node: CPU per thread and wake-ups per second.

Two `mycorrizal-node` processes form a cluster (127.<subnet>.0.1 and .2,
certificates made beforehand by `mycorrizal-certs`, `--profile lan` unless
told otherwise) and then send nothing. Once both printed "connected to
<peer> over QUIC" and a settling time passed, the script reads every
thread's utime + stime (/proc/<pid>/task/<tid>/stat, clock ticks) and its
voluntary + involuntary context switches (/proc/<pid>/task/<tid>/status)
at the start and at the end of a window (default 60 s), and reports per
thread and in total: % of one core, and wake-ups (context switches) per
second.

Each setting is one pair of nodes; the settings run one after the other
in the same invocation:

  node     mycorrizal-node's own scheduler settings
  caf      `--caf-scheduler-defaults`: CAF's defaults, as a host that
           embeds a node without configuring CAF would run it
  floor-node, floor-caf
           the floor: `caf_idle_floor` (an actor system with nothing of
           ours in it) with the node's settings or CAF's defaults, one
           process per row (needs --floor)

Usage:

    bench/idle/idle_cpu.py --node <build>/tools/mycorrizal-node \\
        --certs <build>/tools/mycorrizal-certs [--window 60] \\
        [--settle 5] [--settings node,caf] [--profile lan] [--subnet 93] \\
        [--floor <build>/bench/caf_idle_floor]
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))

from formation import CONNECTED, make_certs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def threads(pid):
    """{tid: (name, cpu ticks, context switches)} of a live process."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/stat") as f:
                stat = f.read()
            with open(f"{base}/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        # The name sits in parentheses and may hold spaces.
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        switches = 0
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches",
                                "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
        out[int(tid)] = (name, ticks, switches)
    return out


def run_pair(args, workdir, setting, names, hosts):
    procs = []
    logs = []
    try:
        if setting.startswith("floor-"):
            log = os.path.join(workdir, f"{setting}.out")
            logs.append(log)
            out = open(log, "w")
            cmd = [args.floor]
            if setting == "floor-node":
                cmd.append("--node-settings")
            procs.append(subprocess.Popen(cmd, stdout=out,
                                          stderr=subprocess.STDOUT))
            out.close()
            names = ["floor"]
        for i, (name, host) in enumerate(zip(names, hosts)):
            if setting.startswith("floor-"):
                break
            d = os.path.join(workdir, name)
            cmd = [args.node, "--name", name,
                   "--gossip", f"{host}:{args.port}",
                   "--quic", f"{host}:{args.port + 1}",
                   "--ca", os.path.join(d, "ca.pem"),
                   "--cert", os.path.join(d, f"{name}.pem"),
                   "--key", os.path.join(d, f"{name}.key"),
                   "--profile", args.profile, "--log-level", "warn"]
            if setting == "caf":
                cmd.append("--caf-scheduler-defaults")
            if i > 0:
                cmd += ["--seed", f"{hosts[0]}:{args.port}"]
            log = os.path.join(workdir, f"{setting}-{name}.out")
            logs.append(log)
            out = open(log, "w")
            procs.append(subprocess.Popen(cmd, stdout=out,
                                          stderr=subprocess.STDOUT))
            out.close()
        # Formed: each node printed that it is connected to the other.
        deadline = time.monotonic() + 30
        while True:
            done = 0
            for name, log in zip(names, logs):
                with open(log, errors="replace") as f:
                    for line in f:
                        m = CONNECTED.match(line)
                        if (m and m.group(1) == name) or line == "ready\n":
                            done += 1
                            break
            if done == len(names):
                break
            for p, log in zip(procs, logs):
                if p.poll() is not None:
                    raise RuntimeError(f"a node exited with {p.returncode}: "
                                       + open(log).read()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "no cluster in 30 s; what the nodes printed:\n"
                    + "\n".join(open(x).read()[-2000:] for x in logs))
            time.sleep(0.05)
        time.sleep(args.settle)  # let joining traffic (push/pull) pass
        before = [threads(p.pid) for p in procs]
        t0 = time.monotonic()
        time.sleep(args.window)
        after = [threads(p.pid) for p in procs]
        elapsed = time.monotonic() - t0
        for p, log in zip(procs, logs):
            if p.poll() is not None:
                raise RuntimeError(f"a node exited while idle: "
                                   + open(log).read()[-2000:])
        result = []
        for b, a in zip(before, after):
            per = collections.OrderedDict()
            for tid, (name, ticks, sw) in sorted(a.items()):
                t0_ticks, sw0 = (b[tid][1], b[tid][2]) if tid in b else (0, 0)
                cpu = (ticks - t0_ticks) / TICK / elapsed * 100
                wake = (sw - sw0) / elapsed
                per[f"{name}[{tid}]"] = (cpu, wake)
            result.append(per)
        return result, elapsed
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--node", required=True)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--settings", default="node,caf")
    ap.add_argument("--profile", default="lan")
    ap.add_argument("--subnet", type=int, default=93)
    ap.add_argument("--port", type=int, default=7946)
    ap.add_argument("--floor", help="caf_idle_floor, for the floor-* settings")
    ap.add_argument("--threads", action="store_true",
                    help="print every thread, not only the totals")
    args = ap.parse_args()
    names = ["i1", "i2"]
    hosts = [f"127.{args.subnet}.0.{i + 1}" for i in range(len(names))]
    workdir = tempfile.mkdtemp(prefix="mycorrizal-idle-")
    try:
        make_certs(args.certs, workdir, names)
        print(f"# idle cost, two nodes (--profile {args.profile}), "
              f"{args.window:.0f} s window after {args.settle:.0f} s")
        print("| setting | node | % of a core | wake-ups/s | busiest threads "
              "(% / wake-ups/s) |")
        print("|---|---|---|---|---|")
        for setting in args.settings.split(","):
            result, _ = run_pair(args, workdir, setting, names, hosts)
            rows = ["floor"] if setting.startswith("floor-") else names
            for name, per in zip(rows, result):
                cpu = sum(c for c, _ in per.values())
                wake = sum(w for _, w in per.values())
                top = sorted(per.items(), key=lambda kv: -kv[1][0])[:4]
                desc = ", ".join(f"{k.split('[')[0]} {c:.2f}/{w:.0f}"
                                 for k, (c, w) in top)
                print(f"| {setting} | {name} | {cpu:.2f} | {wake:.0f} | "
                      f"{desc} |", flush=True)
                if args.threads:
                    for k, (c, w) in per.items():
                        print(f"|   | {k} | {c:.3f} | {w:.1f} | |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
