#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Heal benchmark: how fast a split cluster becomes one again, failure
detection under loss, and how fast a one-way fault is reported.

Real mycorrizal-node processes in a network namespace of their own, faults
as iptables rules inside it (tests/system/faults/faultlab.py; needs root).
Three sections, all in one run (so the machine state is the same):

heal    For each size N (default 5 and 20) and trial: a fresh cluster of N
        nodes (LAN profile, nodes 1-3 the seeds of all), cut roughly in
        half ({1..N/2} | {N/2+1..N}) until both sides see the other dead,
        held `--hold` s (30) from the cut, then healed. Measured from the
        heal: one cluster (every node sees every other alive), and a full
        QUIC mesh (every pair reports "connected to ... over QUIC" and no
        later "down"). Also the time from the cut until both sides saw
        the other dead. `--reconnect-interval` (default: the profile's,
        30 s with lan) bounds the heal.
detect  One cluster of `--fd-size` nodes (5); `--fd-trials` trials per
        condition, alternating loss-free and `--loss` (5 %) random loss
        on all traffic: a random pause of 1-3 s (so the kill lands at a
        random phase of the probe cycle), kill -9 of one node (rotating,
        never a seed), time until every survivor printed "member dead",
        the victim restarted and the cluster re-formed (loss removed)
        before the next trial. Deaths of other nodes are counted as false
        positives.
oneway  One cluster of 5 nodes running the demo (requests every second);
        `--oneway-trials` times: drop n4 -> n1, time until n1 or n4
        reports "connection to ... unreachable", heal, wait until
        requests between them are answered again.

Usage (as root):

    bench/cluster/heal.py --node <build>/tools/mycorrizal-node \\
        [--sizes 5,20] [--trials 3] [--hold 30] [--reconnect-interval S] \\
        [--fd-trials 6] [--loss 0.05] [--oneway-trials 3] \\
        [--only heal,detect,oneway] [--json out.json] [--keep-logs DIR]

It prints one line per trial, a table of medians (min-max), and a last
line `JSON {...}` with every measurement. Exit status 1 if a trial failed
(its reason is printed), 77 if it cannot run here (not root).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "system",
                                "faults"))

import faultlab as fl  # noqa: E402
from faultlab import (Lab, all_of, any_of, hold, line_at,  # noqa: E402
                      one_cluster, full_mesh, requests_flow, sees_all,
                      wait_until)


def note(text):
    print(text, flush=True)


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs),
            "max": max(xs)}


def fmt(s):
    if s is None:
        return "-"
    return "%.2f (%.2f-%.2f, n=%d)" % (s["median"], s["min"], s["max"],
                                       s["n"])


def node_flags(args):
    flags = []
    if args.reconnect_interval is not None:
        flags += ["--reconnect-interval", "%g" % args.reconnect_interval]
    return flags


def make_lab(args, label):
    keep = None
    if args.keep_logs:
        keep = os.path.join(args.keep_logs, label)
    return Lab(args.node, keep_dir=keep, label=label)


def form(lab, nodes, timeout):
    t0 = fl.now()
    wait_until(all_of(one_cluster(nodes), full_mesh(nodes)), timeout,
               "the cluster forms")
    return fl.now() - t0


# -- heal ---------------------------------------------------------------------


def heal_trial(args, n, trial):
    with make_lab(args, "heal-n%d-t%d" % (n, trial)) as lab:
        nodes = lab.start_cluster(n, profile=args.profile,
                                  extra_flags=node_flags(args),
                                  demo=args.demo)
        formed = form(lab, nodes, args.deadline)
        half = n // 2
        a, b = nodes[:half], nodes[half:]
        lab.partition(a, b)
        cut = fl.now()
        wait_until(all_of(sees_all(a, b, "dead"), sees_all(b, a, "dead")),
                   args.deadline, "both sides see the other dead")
        split = fl.now() - cut
        hold(max(0.0, args.hold - (fl.now() - cut)), [], lab, "the cut")
        healed = lab.heal()
        t_one = wait_until(one_cluster(nodes), args.deadline,
                           "one cluster after the heal")
        t_mesh = wait_until(full_mesh(nodes), args.deadline,
                            "a full QUIC mesh after the heal")
        r = {"n": n, "trial": trial, "formed_s": formed, "split_s": split,
             "held_s": healed - cut, "one_cluster_s": t_one - healed,
             "full_mesh_s": t_mesh - healed}
        note("  heal n=%d trial=%d: formed %.2f s, split %.2f s, held "
             "%.1f s; after the heal: one cluster %.2f s, full mesh %.2f s"
             % (n, trial, formed, split, r["held_s"], r["one_cluster_s"],
                r["full_mesh_s"]))
        return r


# -- failure detection --------------------------------------------------------


def detect_section(args, rng):
    results = []
    with make_lab(args, "detect") as lab:
        nodes = lab.start_cluster(args.fd_size, profile=args.profile,
                                  extra_flags=node_flags(args),
                                  demo=args.demo)
        form(lab, nodes, args.deadline)
        victims = nodes[3:] or nodes[1:]
        for trial in range(args.fd_trials * 2):
            lossy = trial % 2 == 1
            victim = victims[(trial // 2) % len(victims)]
            survivors = [x for x in nodes if x is not victim]
            hold(rng.uniform(1.0, 3.0), [], lab, "random phase")
            if lossy:
                lab.loss(args.loss)
            start = fl.now()
            victim.kill9()
            wait_until(sees_all(survivors, [victim], "dead"), args.deadline,
                       "every survivor sees %s dead" % victim.name)
            per = []
            false_pos = []
            for s in survivors:
                for t, m, st in s.events("dead", since=start):
                    if m == victim.name:
                        per.append(t - start)
                        break
                false_pos += ["%s: %s" % (s.name, m)
                              for t, m, st in s.events("dead", since=start)
                              if m != victim.name]
            dropped = lab.dropped() if lossy else 0
            lab.heal()
            r = {"loss": args.loss if lossy else 0.0, "trial": trial // 2,
                 "victim": victim.name, "first_dead_s": min(per),
                 "all_dead_s": max(per), "per_survivor_s": per,
                 "false_positives": false_pos, "dropped": dropped}
            results.append(r)
            note("  detect loss=%g trial=%d: kill -9 %s -> first dead %.2f "
                 "s, all dead %.2f s%s%s" % (
                     r["loss"], r["trial"], victim.name, r["first_dead_s"],
                     r["all_dead_s"],
                     ", %d packets dropped" % dropped if lossy else "",
                     ", FALSE POSITIVES %s" % false_pos if false_pos
                     else ""))
            lab.restart(victim)
            form(lab, nodes, args.deadline)
    return results


# -- one-way ------------------------------------------------------------------


def oneway_section(args):
    results = []
    with make_lab(args, "oneway") as lab:
        nodes = lab.start_cluster(5, profile=args.profile,
                                  extra_flags=node_flags(args), demo=True)
        n1, n4 = nodes[0], nodes[3]
        form(lab, nodes, args.deadline)
        for trial in range(args.oneway_trials):
            wait_until(all_of(requests_flow(n1, n4, fl.now() - 0.5),
                              requests_flow(n4, n1, fl.now() - 0.5)),
                       args.deadline, "requests n1<->n4 answered")
            cut = fl.now()
            lab.one_way(n4, n1)
            t = wait_until(any_of(
                line_at(n1, r"^\[n1\] connection to n4 unreachable", cut),
                line_at(n4, r"^\[n4\] connection to n1 unreachable", cut)),
                args.deadline, "n1<->n4 reported unreachable")
            deaths = sum(len(x.events("dead", since=cut)) for x in nodes)
            healed = lab.heal()
            t2 = wait_until(all_of(full_mesh(nodes),
                                   requests_flow(n1, n4, healed),
                                   requests_flow(n4, n1, healed)),
                            args.deadline, "requests n1<->n4 answered "
                            "after the heal")
            r = {"trial": trial, "unreachable_s": t - cut,
                 "answered_after_heal_s": t2 - healed, "deaths": deaths}
            results.append(r)
            note("  oneway trial=%d: unreachable after %.2f s, answered "
                 "again %.2f s after the heal, deaths %d" % (
                     trial, r["unreachable_s"], r["answered_after_heal_s"],
                     deaths))
    return results


# -- main ---------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--node", required=True, help="mycorrizal-node binary")
    ap.add_argument("--sizes", default="5,20")
    ap.add_argument("--trials", type=int, default=3,
                    help="heal trials per size")
    ap.add_argument("--hold", type=float, default=30.0,
                    help="seconds the partition lasts (from the cut)")
    ap.add_argument("--reconnect-interval", type=float, default=None,
                    help="the nodes' --reconnect-interval (default: the "
                    "profile's; lan 30 s)")
    ap.add_argument("--profile", default="lan", choices=["lan", "local"])
    ap.add_argument("--demo", action="store_true",
                    help="run the demo application in heal and detect "
                    "(oneway always does)")
    ap.add_argument("--fd-size", type=int, default=5)
    ap.add_argument("--fd-trials", type=int, default=6,
                    help="failure-detection trials per condition")
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--oneway-trials", type=int, default=3)
    ap.add_argument("--only", default="heal,detect,oneway")
    ap.add_argument("--deadline", type=float, default=120.0,
                    help="seconds any single wait may take")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the JSON here")
    ap.add_argument("--keep-logs", help="write every node's lines here")
    args = ap.parse_args()
    try:
        fl.preflight()
    except fl.SkipLab as e:
        note("heal.py cannot run here: %s" % e)
        return fl.SKIP
    args.node = os.path.abspath(args.node)
    rng = random.Random(args.seed)
    only = set(args.only.split(","))
    out = {"bench": "heal", "profile": args.profile,
           "reconnect_interval": args.reconnect_interval,
           "hold_s": args.hold, "cpus": os.cpu_count(), "heal": [],
           "detect": [], "oneway": [], "errors": []}
    note("# heal.py: profile %s, reconnect interval %s, hold %.0f s, %d "
         "CPUs" % (args.profile, "default" if args.reconnect_interval is None
                   else "%g s" % args.reconnect_interval, args.hold,
                   os.cpu_count()))
    t_start = time.monotonic()

    def attempt(section, fn, *a):
        try:
            return fn(*a)
        except (AssertionError, RuntimeError) as e:
            out["errors"].append("%s: %s" % (section, str(e).splitlines()[0]))
            note("  %s FAILED: %s" % (section, e))
            return None

    if "heal" in only:
        for n in [int(x) for x in args.sizes.split(",")]:
            for trial in range(args.trials):
                r = attempt("heal n=%d trial=%d" % (n, trial), heal_trial,
                            args, n, trial)
                if r:
                    out["heal"].append(r)
    if "detect" in only:
        out["detect"] = attempt("detect", detect_section, args, rng) or []
    if "oneway" in only:
        out["oneway"] = attempt("oneway", oneway_section, args) or []

    rows = []
    for n in sorted({r["n"] for r in out["heal"]}):
        rs = [r for r in out["heal"] if r["n"] == n]
        rows.append(("heal n=%d: split (cut -> both sides dead)" % n,
                     summary([r["split_s"] for r in rs])))
        rows.append(("heal n=%d: heal -> one cluster" % n,
                     summary([r["one_cluster_s"] for r in rs])))
        rows.append(("heal n=%d: heal -> full QUIC mesh" % n,
                     summary([r["full_mesh_s"] for r in rs])))
    for loss in sorted({r["loss"] for r in out["detect"]}):
        rs = [r for r in out["detect"] if r["loss"] == loss]
        fps = sum(len(r["false_positives"]) for r in rs)
        label = "detect n=%d loss %g%%" % (args.fd_size, loss * 100)
        rows.append((label + ": kill -9 -> first dead",
                     summary([r["first_dead_s"] for r in rs])))
        rows.append((label + ": kill -9 -> all dead (false pos. %d)" % fps,
                     summary([r["all_dead_s"] for r in rs])))
    if out["oneway"]:
        rows.append(("one-way n4->n1: cut -> unreachable reported",
                     summary([r["unreachable_s"] for r in out["oneway"]])))
        rows.append(("one-way: heal -> requests answered",
                     summary([r["answered_after_heal_s"]
                              for r in out["oneway"]])))
    out["summary"] = {label: s for label, s in rows}
    out["wall_s"] = time.monotonic() - t_start
    note("")
    note("| measurement | seconds: median (min-max, n) |")
    note("|---|---|")
    for label, s in rows:
        note("| %s | %s |" % (label, fmt(s)))
    for e in out["errors"]:
        note("- error: %s" % e)
    line = json.dumps(out, sort_keys=True)
    note("JSON " + line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
