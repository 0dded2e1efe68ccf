#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Mycel's process tests (issue 16): five mycorrizal-node processes storing
a bucket (RF 2, ack all) in a network namespace of their own (faultlab.py),
and mycel-load, a client-only member, writing and reading under load while
owners crash (kill -9), restart under their name, join and leave (SIGTERM).

Every operation is written to a history with its outcome; at the end the
load client reads every key, and the checker asserts that no acknowledged
write is missing or older in that final state: for each key, the final
sequence number is at least the last acknowledged one, and no larger than
the last one attempted. Reads that returned less than what was acknowledged
before they started are counted and printed (stale reads), not failed:
Mycel is AP (docs/cache.md).

Usage:
    test_mycel.py --bin <build>/tools/mycorrizal-node \\
        --load <build>/tests/system/mycel-load [--keep-logs DIR] \\
        [MycelTests.test_kill_owners_under_load ...]

Needs root; exits 77 (skipped) without it.
"""

import argparse
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultlab as fl  # noqa: E402
from faultlab import Cond, Lab, all_of, one_cluster, sees_all, wait_until  # noqa: E402

CONFIG = {"bin": None, "load": None, "keep": None}

KEYS = 1000
RF = 2
# Formation, failure detection and restoring the RF on 2 loaded cores
# (sanitized builds are several times slower).
FORM_TIMEOUT = 90.0
DEAD_TIMEOUT = 60.0
RF_TIMEOUT = 120.0
# Acknowledged writes to see between two steps: the load must be running.
PROGRESS = 300


def say(text):
    print(text, flush=True)


def check_history(history, final):
    """@returns (report dict, problems list)."""
    acked = {}       # key -> highest acknowledged seq
    attempted = {}   # key -> highest attempted seq
    acks = {}        # key -> [(end_ns, seq)] of acknowledged writes
    reads = []       # (key, seen or None, start_ns)
    writes = writes_ok = 0
    with open(history) as f:
        for line in f:
            p = line.split()
            if len(p) != 6:
                continue  # the last line of a killed writer may be torn
            kind, key, seq, t0, t1, outcome = p
            if kind == "W":
                writes += 1
                s = int(seq)
                attempted[key] = max(attempted.get(key, 0), s)
                if outcome == "ok":
                    writes_ok += 1
                    acked[key] = max(acked.get(key, 0), s)
                    acks.setdefault(key, []).append((int(t1), s))
            elif kind == "R" and outcome == "ok":
                reads.append((key, None if seq == "-" else seq, int(t0)))
    final_state = {}
    with open(final) as f:
        for line in f:
            key, value = line.split()
            final_state[key] = value
    problems = []
    for key, a in sorted(acked.items()):
        v = final_state.get(key)
        if v is None or v == "-":
            problems.append("%s: acknowledged seq %d, final state: missing"
                            % (key, a))
        elif v.startswith("error:"):
            problems.append("%s: acknowledged seq %d, final read %s"
                            % (key, a, v))
        elif v == "?" or int(v) > attempted[key]:
            problems.append("%s: final value %s was never written" % (key, v))
        elif int(v) < a:
            problems.append("%s: acknowledged seq %d, final state has the "
                            "older %s" % (key, a, v))
    stale = 0
    for key, seen, t0 in reads:
        before = [s for end, s in acks.get(key, []) if end < t0]
        if before and (seen is None or seen == "?" or int(seen) < max(before)):
            stale += 1
    report = {"writes": writes, "writes_ok": writes_ok, "reads": len(reads),
              "stale_reads": stale, "keys_acked": len(acked),
              "keys_final": sum(1 for v in final_state.values()
                                if v != "-" and not v.startswith("error"))}
    return report, problems


class MycelTests(unittest.TestCase):

    def lab(self, label):
        keep = None
        if CONFIG["keep"]:
            keep = os.path.join(CONFIG["keep"], self._testMethodName)
        return Lab(CONFIG["bin"], keep_dir=keep, label=label)

    def start_nodes(self, lab, names, seeds):
        return [lab.start_node(name, lab.ip_of(k), seeds, profile="local",
                               extra_flags=["--cache", "storage",
                                            "--console"],
                               demo=False)
                for name, k in names]

    def form(self, nodes):
        t0 = fl.now()
        wait_until(one_cluster(nodes), FORM_TIMEOUT,
                   "the cluster forms (everyone sees everyone alive)")
        say("formed in %.1f s: %s" % (fl.now() - t0,
                                      ", ".join(n.name for n in nodes)))

    def storage_agrees(self, nodes, load):
        """Every storage node's cache places partitions on exactly
        `nodes`."""
        want = ", ".join(sorted(n.name for n in nodes))

        def fn():
            seen = {n.name: n.console("members") for n in nodes}
            bad = {k: v for k, v in seen.items() if v != want}
            return not bad, "want %s; differing: %s" % (want, bad)
        return Cond("every cache places on %s" % want, nodes, fn)

    def rf_restored(self, nodes):
        """The copies on `nodes` add up to RF per key."""
        def fn():
            total = 0
            per = {}
            for n in nodes:
                answer = n.console("stats")
                if not answer.startswith("load: "):
                    return False, "%s: %s" % (n.name, answer)
                entries = int(answer.split()[1])
                per[n.name] = entries
                total += entries
            return total == RF * KEYS, "copies %d of %d: %s" % (
                total, RF * KEYS, per)
        return Cond("RF %d restored (%d copies)" % (RF, RF * KEYS), nodes, fn)

    def progressing(self, load):
        """At least PROGRESS more acknowledged writes than now."""
        start = load.command("progress", "progress")["writes_ok"]

        def fn():
            p = load.command("progress", "progress")
            return p["writes_ok"] >= start + PROGRESS, "writes %s" % p
        return Cond("the load acknowledges %d more writes" % PROGRESS,
                    [load], fn)

    def finish(self, lab, load):
        stopped = load.command("stop", "stopped", timeout=60)
        final = os.path.join(lab.work, "final.txt")
        f = load.command("final " + final, "final", timeout=180)
        report, problems = check_history(load.history, final)
        report["final_read_errors"] = f["read_errors"]
        say("history: %s" % report)
        say("load: %s" % stopped)
        if problems:
            self.fail("%d acknowledged writes lost or older:\n  %s" % (
                len(problems), "\n  ".join(problems[:30])))
        self.assertEqual(report["keys_acked"], KEYS,
                         "every key got an acknowledged write")

    def test_kill_owners_under_load(self):
        """kill -9 one owner under load, wait until the RF is restored,
        kill -9 another, restart the first under its name: no acknowledged
        write lost."""
        with self.lab("mycel-kill") as lab:
            names = [("m%d" % k, k) for k in range(1, 6)]
            seeds = ["%s:%d" % (lab.ip_of(k), fl.GOSSIP_PORT)
                     for k in (1, 2)]
            nodes = self.start_nodes(lab, names, seeds)
            self.form(nodes)
            load = lab.start_load("load", lab.ip_of(20), CONFIG["load"],
                                  seeds, ["--keys", str(KEYS), "--rf",
                                          str(RF), "--writers", "16"])
            wait_until(self.storage_agrees(nodes, load), FORM_TIMEOUT)
            load.command("bucket", "bucket")
            load.command("start", "started")
            wait_until(self.rf_restored(nodes) & self.progressing(load),
                       RF_TIMEOUT)

            first = nodes[1]
            t0 = fl.now()
            first.kill9()
            say("killed %s (kill -9) under load" % first.name)
            rest = [n for n in nodes if n is not first]
            wait_until(sees_all(rest, [first], "dead"), DEAD_TIMEOUT)
            wait_until(self.rf_restored(rest), RF_TIMEOUT)
            say("RF restored %.1f s after the kill" % (fl.now() - t0))
            wait_until(self.progressing(load), RF_TIMEOUT)

            second = rest[2]
            t0 = fl.now()
            second.kill9()
            say("killed %s (kill -9) under load" % second.name)
            rest = [n for n in rest if n is not second]
            wait_until(sees_all(rest, [second], "dead"), DEAD_TIMEOUT)
            wait_until(self.rf_restored(rest), RF_TIMEOUT)
            say("RF restored %.1f s after the second kill" % (fl.now() - t0))

            lab.restart(first)
            say("restarted %s under its name" % first.name)
            back = rest + [first]
            wait_until(one_cluster(back), FORM_TIMEOUT)
            wait_until(self.storage_agrees(back, load), FORM_TIMEOUT)
            wait_until(self.rf_restored(back) & self.progressing(load),
                       RF_TIMEOUT)
            self.finish(lab, load)

    def test_grow_and_shrink_under_load(self):
        """Grow 3 -> 5, then shrink 5 -> 3 by SIGTERM, under load: no
        acknowledged write lost, and each step ends with RF copies."""
        with self.lab("mycel-grow") as lab:
            seeds = ["%s:%d" % (lab.ip_of(k), fl.GOSSIP_PORT)
                     for k in (1, 2)]
            nodes = self.start_nodes(lab, [("m%d" % k, k) for k in (1, 2, 3)],
                                     seeds)
            self.form(nodes)
            load = lab.start_load("load", lab.ip_of(20), CONFIG["load"],
                                  seeds, ["--keys", str(KEYS), "--rf",
                                          str(RF), "--writers", "16"])
            wait_until(self.storage_agrees(nodes, load), FORM_TIMEOUT)
            load.command("bucket", "bucket")
            load.command("start", "started")
            wait_until(self.rf_restored(nodes) & self.progressing(load),
                       RF_TIMEOUT)

            for k in (4, 5):
                t0 = fl.now()
                nodes += self.start_nodes(lab, [("m%d" % k, k)], seeds)
                wait_until(one_cluster(nodes), FORM_TIMEOUT)
                wait_until(self.storage_agrees(nodes, load), FORM_TIMEOUT)
                wait_until(self.rf_restored(nodes) & self.progressing(load),
                           RF_TIMEOUT)
                say("grew to %d nodes; RF restored in %.1f s"
                    % (len(nodes), fl.now() - t0))

            for leaving in (nodes[0], nodes[3]):
                t0 = fl.now()
                rc = leaving.stop(timeout=60)
                self.assertEqual(rc, 0, "%s exit status" % leaving.name)
                nodes = [n for n in nodes if n is not leaving]
                say("%s left (SIGTERM, drained) in %.1f s" % (
                    leaving.name, fl.now() - t0))
                wait_until(self.storage_agrees(nodes, load), FORM_TIMEOUT)
                wait_until(self.rf_restored(nodes) & self.progressing(load),
                           RF_TIMEOUT)
            self.finish(lab, load)


class Result(unittest.TextTestResult):
    def addFailure(self, test, err):
        super().addFailure(test, err)
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print(self._exc_info_to_string(err, test), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="mycorrizal-node binary")
    ap.add_argument("--load", required=True, help="mycel-load binary")
    ap.add_argument("--keep-logs", help="write every process's lines here")
    ap.add_argument("tests", nargs="*",
                    help="e.g. MycelTests.test_kill_owners_under_load")
    args = ap.parse_args()
    try:
        fl.preflight()
    except fl.SkipLab as e:
        print("SKIPPED: %s" % e, flush=True)
        return fl.SKIP
    for b in (args.bin, args.load):
        if not os.access(b, os.X_OK):
            print("error: not executable: %s" % b, file=sys.stderr)
            return 2
    CONFIG["bin"] = os.path.abspath(args.bin)
    CONFIG["load"] = os.path.abspath(args.load)
    CONFIG["keep"] = args.keep_logs
    loader = unittest.TestLoader()
    if args.tests:
        suite = loader.loadTestsFromNames(args.tests, sys.modules[__name__])
    else:
        suite = loader.loadTestsFromTestCase(MycelTests)
    t0 = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                     resultclass=Result).run(suite)
    print("total %.1f s" % (time.monotonic() - t0), flush=True)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        return fl.SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
