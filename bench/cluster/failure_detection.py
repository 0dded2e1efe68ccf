#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Failure-detection benchmark: kill -9 -> "dead", Go memberlist vs Mycorrizal.

For each kind of node (go = HashiCorp memberlist 0.2.2 through gopeer,
mycorrizal = mcpeer) and each trial, this starts a fresh 3-node cluster on
its own 127.x.y.{1,2,3} addresses (b and c join a), waits until every node
has a "join" event for every other, kills one node with SIGKILL (rotating
which one), and records for each survivor:

* kill -> "leave" with state "dead" (from the event's "t" field, Unix ns,
  and the kill time taken right before kill(2));
* kill -> "suspect" (mcpeer only: gopeer prints no suspect events);
* per trial, kill -> the first suspicion in the cluster, which is always
  a survivor's own failed probe: mcpeer's first "suspect" event, or for
  gopeer the first "Suspect <victim> has failed" line of its log (stderr,
  local time). This splits kill -> dead into probing and suspicion.

False positives: any "leave" about a node that was not killed, any "dead"
in a trial other than for the victim, any "suspect" of a live node
(mcpeer), counted over the whole trial (start to the last survivor's
report). A trial where a survivor does not report the victim within
--deadline seconds counts as a miss.

With --mixed, it also runs trials of mixed clusters, alternating
g0 g1 m2 (the Mycorrizal node joins via a Go seed) and g0 m1 m2, rotating
the victim, and reports kill -> dead by (victim kind, survivor kind).

Between convergence and the kill it pauses a random 1-3 s (--settle), so
the kill lands at a random phase of the probe tickers; without it Go's
results cluster at two values (the kill always came at the same phase).

The peers speak the line protocol of tests/system/README.md. Build them with

    cmake --build <build> --target gopeer mcpeer

Usage:

    bench/cluster/failure_detection.py \\
        --gopeer <build>/tests/system/bin/gopeer \\
        --mcpeer <build>/tests/system/mcpeer \\
        --trials 10 --profile lan [--mixed] [--out results.md]

    # quicker, DefaultLocalConfig-like timing:
    bench/cluster/failure_detection.py ... --trials 5 --profile local

Options: --kinds go,mycorrizal (default both), --deadline 60 (s per trial),
--subnet 40 (first 127.<subnet>.x.y used; each run uses a few subnets),
--verbose (print every trial's events).

Output: a markdown report on stdout (and in --out): per kind, the median,
min, max and mean of kill -> dead over all survivors of all trials, the
same for kill -> suspect (Mycorrizal), false positives and misses, and the
ratio Mycorrizal median / Go median. The goal: Mycorrizal's median no worse
than Go's (ratio <= 1.0). Reference (memberlist-wire.md §9.13): Go, LAN,
3 nodes: kill -> dead 5.1-7.8 s, median 5.47 s; local profile 4.3-5.3 s.

Stdlib only; needs Python 3.8+ and Linux (127/8 answers on every address).
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Peer:
    """One peer process: JSON lines from stdout collected by a thread."""

    def __init__(self, kind, program, name, bind, profile, join=None,
                 verbose=False):
        self.kind = kind
        self.name = name
        argv = [program, "-name=" + name, "-bind=" + bind, "-port=0",
                "-profile=" + profile, "-verbose=%s" % str(verbose).lower()]
        if join:
            argv.append("-join=" + join)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.events = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                ev = {"ev": "unparsed", "raw": raw.decode(errors="replace")}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, pred, deadline):
        """First event satisfying pred, or None at the monotonic deadline."""
        with self.cond:
            i = 0
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(left)

    def find(self, ev, node):
        with self.cond:
            return [e for e in self.events
                    if e.get("ev") == ev and e.get("node") == node]

    def all_events(self):
        with self.cond:
            return list(self.events)

    def address(self, ready):
        return "%s:%d" % (ready["addr"], ready["port"])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.stderr.close()

    def go_suspect_times(self, node):
        """Unix ns of gopeer's "Suspect <node> has failed" log lines (its
        own failed probes; memberlist logs in local time)."""
        self.stderr.seek(0)
        out = []
        needle = "memberlist: Suspect %s has failed" % node
        for line in self.stderr.read().decode(errors="replace").splitlines():
            if needle not in line:
                continue
            parts = line.split()
            # "<name> 2026/11/21 18:47:47.662081 [INFO] memberlist: ..."
            try:
                stamp = parts[1] + " " + parts[2]
                whole, frac = stamp.split(".")
                sec = time.mktime(time.strptime(whole, "%Y/%m/%d %H:%M:%S"))
                out.append(int(sec) * 10**9 + int(frac.ljust(9, "0")[:9]))
            except (IndexError, ValueError):
                continue
        return out

    def describe(self):
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").splitlines()[-15:]
        lines = [json.dumps(e) for e in self.all_events()]
        return "--- %s (%s)\n%s\n--- stderr tail\n%s" % (
            self.name, self.kind, "\n".join(lines), "\n".join(tail))


def is_ev(ev, node=None):
    return lambda e: e.get("ev") == ev and (node is None
                                            or e.get("node") == node)


class TrialError(Exception):
    pass


def run_trial(programs, kinds, trial, profile, subnet, deadline_s,
              verbose, settle):
    """One fresh cluster of len(kinds) nodes; kill node trial % n.

    Returns a dict with the victim, per-survivor latencies and false
    positives. Raises TrialError if the cluster does not form."""
    n = len(kinds)
    names = ["%s%d" % (k[0], i) for i, k in enumerate(kinds)]
    peers = []
    try:
        start = time.monotonic()
        seed_addr = None
        for i, kind in enumerate(kinds):
            bind = "127.%d.%d.%d" % (subnet, trial % 250 + 1, i + 1)
            p = Peer(kind, programs[kind], names[i], bind, profile,
                     join=seed_addr)
            peers.append(p)
            ready = p.wait(lambda e: e.get("ev") in ("ready", "fatal"),
                           time.monotonic() + 15)
            if ready is None or ready.get("ev") != "ready":
                raise TrialError("%s not ready\n%s" % (names[i],
                                                       p.describe()))
            if seed_addr is None:
                seed_addr = p.address(ready)
            elif ready.get("joined", 0) != 1:
                raise TrialError("%s did not join: %s" % (names[i], ready))
        formed_by = time.monotonic() + 20
        for p in peers:
            for other in names:
                if p.wait(is_ev("join", other), formed_by) is None:
                    raise TrialError("%s never saw %s join\n%s" % (
                        p.name, other, p.describe()))
        formed_ms = (time.monotonic() - start) * 1e3
        # A random pause, so the kill lands at a random phase of the
        # probers' tickers (both kinds get the same distribution).
        time.sleep(random.uniform(*settle))

        victim = peers[trial % n]
        survivors = [p for p in peers if p is not victim]
        kill_ns = time.time_ns()
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        deadline = time.monotonic() + deadline_s
        result = {"trial": trial, "victim": victim.name,
                  "victim_kind": victim.kind, "formed_ms": formed_ms,
                  "reports": [], "false_positives": [], "misses": 0}
        for p in survivors:
            ev = p.wait(is_ev("leave", victim.name), deadline)
            rep = {"survivor": p.name, "kind": p.kind, "dead_ms": None,
                   "suspect_ms": None, "state": None}
            if ev is None:
                result["misses"] += 1
            else:
                rep["state"] = ev.get("state")
                if ev.get("state") == "dead":
                    rep["dead_ms"] = (ev["t"] - kill_ns) / 1e6
                else:
                    result["false_positives"].append(
                        "%s reported %s as %s" % (p.name, victim.name,
                                                  ev.get("state")))
            sus = p.find("suspect", victim.name)
            if sus:
                rep["suspect_ms"] = (sus[0]["t"] - kill_ns) / 1e6
            elif p.kind == "go":
                own = [t for t in p.go_suspect_times(victim.name)
                       if t >= kill_ns]
                if own:
                    rep["own_suspect_ms"] = (own[0] - kill_ns) / 1e6
            result["reports"].append(rep)
        # The first suspicion anywhere in the cluster: always a survivor's
        # own failed probe. Go: from its log; Mycorrizal: suspect events.
        firsts = [v for rep in result["reports"]
                  for v in (rep.get("suspect_ms"), rep.get("own_suspect_ms"))
                  if v is not None]
        result["first_suspect_ms"] = min(firsts) if firsts else None
        for p in survivors:
            for e in p.all_events():
                kind = e.get("ev")
                node = e.get("node")
                if kind in ("leave", "suspect") and node != victim.name:
                    result["false_positives"].append(
                        "%s: %s" % (p.name, json.dumps(e)))
        if verbose:
            print("trial %d: %s" % (trial, json.dumps(result)),
                  file=sys.stderr)
        return result
    finally:
        for p in peers:
            p.stop()


def summary(values):
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values),
            "min": min(values), "max": max(values),
            "mean": statistics.mean(values)}


def fmt_row(label, s):
    if s is None:
        return "| %s | 0 | - | - | - | - |" % label
    return "| %s | %d | %.0f | %.0f | %.0f | %.0f |" % (
        label, s["n"], s["median"], s["min"], s["max"], s["mean"])


HEADER = ["| series | n | median ms | min ms | max ms | mean ms |",
          "|---|---|---|---|---|---|"]


def run_series(label, programs, kinds, args, subnet, out):
    """kinds: one list of kinds, or a list of them used in turn."""
    results = []
    errors = []
    for trial in range(args.trials):
        trial_kinds = kinds[trial % len(kinds)] if isinstance(
            kinds[0], list) else kinds
        try:
            r = run_trial(programs, trial_kinds, trial, args.profile, subnet,
                          args.deadline, args.verbose, args.settle)
            results.append(r)
            deads = ", ".join(
                "%s %s" % (rep["survivor"],
                           "%.0f" % rep["dead_ms"]
                           if rep["dead_ms"] is not None else "MISS")
                for rep in r["reports"])
            print("  %s trial %d: kill %s -> dead: %s%s" % (
                label, trial, r["victim"], deads,
                "  FALSE POSITIVES: %s" % r["false_positives"]
                if r["false_positives"] else ""), file=sys.stderr)
        except TrialError as e:
            errors.append("trial %d: %s" % (trial, e))
            print("  %s trial %d: ERROR %s" % (label, trial, e),
                  file=sys.stderr)
    return results, errors


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gopeer", required=True)
    ap.add_argument("--mcpeer", required=True)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--profile", default="lan",
                    choices=["lan", "local", "wan"])
    ap.add_argument("--kinds", default="go,mycorrizal")
    ap.add_argument("--mixed", action="store_true",
                    help="also run 2 Go + 1 Mycorrizal clusters")
    ap.add_argument("--deadline", type=float, default=60.0)
    ap.add_argument("--subnet", type=int, default=40)
    ap.add_argument("--settle", type=float, nargs=2, default=[1.0, 3.0],
                    metavar=("MIN", "MAX"),
                    help="random pause (s) between convergence and the "
                    "kill (default 1 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    random.seed(args.seed)
    programs = {"go": args.gopeer, "mycorrizal": args.mcpeer}
    for k, path in programs.items():
        if not os.access(path, os.X_OK):
            ap.error("%s peer not executable: %s" % (k, path))

    lines = ["# Failure detection: kill -9 -> dead (3 nodes, profile %s, "
             "%d trials)" % (args.profile, args.trials), ""]
    medians = {}
    all_errors = []
    subnet = args.subnet
    for kind in args.kinds.split(","):
        kind = kind.strip()
        print("%s: %d trials, profile %s" % (kind, args.trials,
                                              args.profile), file=sys.stderr)
        results, errors = run_series(kind, programs, [kind] * 3, args,
                                     subnet, lines)
        subnet += 1
        all_errors += errors
        dead = [rep["dead_ms"] for r in results for rep in r["reports"]
                if rep["dead_ms"] is not None]
        sus = [rep["suspect_ms"] for r in results for rep in r["reports"]
               if rep["suspect_ms"] is not None]
        first_sus = [r["first_suspect_ms"] for r in results
                     if r.get("first_suspect_ms") is not None]
        first_dead = [min(rep["dead_ms"] for rep in r["reports"]
                          if rep["dead_ms"] is not None)
                      for r in results
                      if any(rep["dead_ms"] is not None
                             for rep in r["reports"])]
        sus_to_dead = [rep["dead_ms"] - rep["suspect_ms"]
                       for r in results for rep in r["reports"]
                       if rep["dead_ms"] is not None
                       and rep["suspect_ms"] is not None]
        fps = [fp for r in results for fp in r["false_positives"]]
        misses = sum(r["misses"] for r in results)
        s = summary(dead)
        if s:
            medians[kind] = s["median"]
        lines.append("## %s" % kind)
        lines.append("")
        lines += HEADER
        lines.append(fmt_row("kill -> dead (all survivors)", s))
        lines.append(fmt_row("kill -> first dead report (per trial)",
                             summary(first_dead)))
        lines.append(fmt_row("kill -> first suspicion (per trial)",
                             summary(first_sus)))
        if kind == "mycorrizal":
            lines.append(fmt_row("kill -> suspect", summary(sus)))
            lines.append(fmt_row("suspect -> dead", summary(sus_to_dead)))
        lines.append("")
        lines.append("trials: %d ok, %d errors; misses: %d; false "
                     "positives: %d" % (len(results), len(errors), misses,
                                        len(fps)))
        for fp in fps:
            lines.append("- false positive: %s" % fp)
        lines.append("")
        lines.append("raw kill -> dead (ms), per trial: " + "; ".join(
            "%s: %s" % (r["victim"], ", ".join(
                "%s=%s" % (rep["survivor"], "%.0f" % rep["dead_ms"]
                           if rep["dead_ms"] is not None else "miss")
                for rep in r["reports"]))
            for r in results))
        lines.append("")

    if args.mixed:
        # Alternating g0 g1 m2 and g0 m1 m2 clusters; the victim rotates.
        kinds = [["go", "go", "mycorrizal"], ["go", "mycorrizal",
                                               "mycorrizal"]]
        print("mixed (g0 g1 m2 / g0 m1 m2): %d trials" % args.trials,
              file=sys.stderr)
        results, errors = run_series("mixed", programs, kinds, args, subnet,
                                     lines)
        all_errors += errors
        lines.append("## mixed: 2 Go + 1 Mycorrizal and 1 Go + 2 "
                     "Mycorrizal, alternating (victim rotates)")
        lines.append("")
        lines += HEADER
        for vk in ("go", "mycorrizal"):
            for sk in ("go", "mycorrizal"):
                vals = [rep["dead_ms"] for r in results
                        for rep in r["reports"]
                        if r["victim_kind"] == vk and rep["kind"] == sk
                        and rep["dead_ms"] is not None]
                lines.append(fmt_row("%s killed, seen by %s" % (vk, sk),
                                     summary(vals)))
        fps = [fp for r in results for fp in r["false_positives"]]
        lines.append("")
        lines.append("trials: %d ok, %d errors; misses: %d; false "
                     "positives: %d" % (len(results), len(errors),
                                        sum(r["misses"] for r in results),
                                        len(fps)))
        for fp in fps:
            lines.append("- false positive: %s" % fp)
        lines.append("")

    if "go" in medians and "mycorrizal" in medians:
        ratio = medians["mycorrizal"] / medians["go"]
        lines.append("**ratio Mycorrizal median / Go median: %.3f** (%s)" % (
            ratio, "target met: no worse than Go" if ratio <= 1.0
            else "target missed: Mycorrizal is slower"))
        lines.append("")
    for e in all_errors:
        lines.append("- error: %s" % e.splitlines()[0])
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 1 if all_errors else 0


if __name__ == "__main__":
    sys.exit(main())
