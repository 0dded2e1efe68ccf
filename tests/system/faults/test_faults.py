#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fault tests (issue 19, "a split cluster heals"): real mycorrizal-node
processes (and Go memberlist peers) in a network namespace of their own,
with partitions, one-way drops, random loss, pauses, crashes and graceful
leaves injected by faultlab.py.

Usage:
    test_faults.py --bin <build>/tools/mycorrizal-node \\
        [--gopeer <build>/tests/system/bin/gopeer] [--keep-logs DIR] \\
        [FaultTests.test_partition_heal ...]

Needs root (network namespaces, iptables); without it every test is
skipped and the exit status is 77 (ctest SKIP_RETURN_CODE). The exit
status is also 77 when every selected test was skipped (e.g. the gopeer
test without --gopeer). Each test prints what it measured; a failure
prints the condition's state and the nodes' last lines.
"""

import argparse
import os
import re
import sys
import time
import unittest

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultlab as fl  # noqa: E402
from faultlab import (Lab, all_of, any_of, hold, line_at,  # noqa: E402
                      one_cluster, full_mesh, requests_flow, sees_all,
                      wait_until, Cond)

CONFIG = {"bin": None, "gopeer": None, "keep": None}

# LAN defaults, as a user runs them.
RECONNECT_LAN = 30.0
# Slack on top of the reconnect interval for the cluster to converge.
HEAL_SLACK = 20.0
# How long a fault is held.
HOLD = 30.0
# Formation of a fresh cluster (ASan builds on 2 cores are slow).
FORM_TIMEOUT = 60.0
# Failure detection with the LAN profile: a side of two nodes has few
# confirmations, so suspicion runs close to its maximum (6 x 4 s).
DEAD_TIMEOUT = 45.0


def say(text):
    print(text, flush=True)


class FaultTests(unittest.TestCase):

    def lab(self, label):
        keep = None
        if CONFIG["keep"]:
            keep = os.path.join(CONFIG["keep"], self._testMethodName)
        return Lab(CONFIG["bin"], CONFIG["gopeer"], keep_dir=keep,
                   label=label)

    def form(self, lab, nodes, timeout=FORM_TIMEOUT):
        t0 = fl.now()
        wait_until(all_of(one_cluster(nodes), full_mesh(nodes)), timeout,
                   "the cluster forms (everyone alive, full QUIC mesh)")
        lab.log("formed in %.1f s: %s" % (fl.now() - t0,
                                          ", ".join(n.name for n in nodes)))

    def no_lines(self, nodes, regex, what, since=0.0):
        """Forbidden: a line matching regex at any of the nodes."""
        rx = re.compile(regex)

        def fn():
            for n in nodes:
                hit = n.find(rx, since)
                if hit:
                    return True, "%s at %s: %s" % (
                        n.name, n.lab.rel(hit[0]), hit[1])
            return False, ""
        return Cond(what, nodes, fn)

    def assert_no_lines(self, nodes, regex, what, since=0.0):
        c = self.no_lines(nodes, regex, what, since)
        ok, detail = c.check()
        if ok:
            self.fail(fl._failure_text("unexpected: %s" % what, detail,
                                       c.nodes))

    def split_dead(self, lab, side_a, side_b, since):
        """Waits until each side sees the other dead; @returns seconds."""
        wait_until(all_of(sees_all(side_a, side_b, "dead"),
                          sees_all(side_b, side_a, "dead")),
                   DEAD_TIMEOUT, "each side of the partition sees the "
                   "other dead")
        took = fl.now() - since
        lab.log("both sides see the other dead %.1f s after the cut"
                % took)
        return took

    def no_merge(self, side_a, side_b):
        """Forbidden while the cut lasts: a node sees one across it alive
        (a leak through the rules would heal the cluster early)."""
        def fn():
            for x, others in ((side_a, side_b), (side_b, side_a)):
                for o in x:
                    view = o.view()
                    for m in others:
                        if view.get(m.name) == "alive":
                            return True, "%s sees %s alive" % (o.name,
                                                                m.name)
            return False, ""
        return Cond("a node sees one across the cut alive",
                    list(side_a) + list(side_b), fn)

    def heal_and_measure(self, lab, nodes, healed_at, budget):
        t_cluster = wait_until(one_cluster(nodes),
                               budget - (fl.now() - healed_at),
                               "one cluster again within %.0f s of the heal"
                               % budget)
        t_mesh = wait_until(full_mesh(nodes),
                            budget - (fl.now() - healed_at),
                            "a full QUIC mesh again within %.0f s of the "
                            "heal" % budget)
        lab.log("HEAL: one cluster %.1f s, full QUIC mesh %.1f s after the "
                "heal (budget %.0f s)" % (t_cluster - healed_at,
                                          t_mesh - healed_at, budget))
        return t_cluster - healed_at, t_mesh - healed_at

    # -- 1 --------------------------------------------------------------------

    def test_partition_heal(self):
        """{n1,n2,n3} | {n4,n5} for 30 s with the LAN defaults: each side
        declares the other dead, requests across fail without hanging; after
        the heal one cluster and a full QUIC mesh within the reconnect
        interval + 20 s, and requests flow between n1 and n5 again."""
        with self.lab("partition") as lab:
            nodes = lab.start_cluster(5)
            n1, n2, n3, n4, n5 = nodes
            self.form(lab, nodes)
            a, b = [n1, n2, n3], [n4, n5]
            cut = fl.now()
            lab.partition(a, b)
            lab.log("partition {n1,n2,n3} | {n4,n5}")
            # Requests across the cut end with an error (a timeout of the
            # demo's 2 s, or node_down once the peer is dead), not a hang.
            wait_until(all_of(line_at(n1, r"^\[n1\] request to n5 failed: ",
                                      cut),
                              line_at(n5, r"^\[n5\] request to n1 failed: ",
                                      cut)),
                       15, "requests across the cut fail")
            self.split_dead(lab, a, b, cut)
            hold(HOLD - (fl.now() - cut), [self.no_merge(a, b)], lab,
                 "the partition lasts %.0f s" % HOLD)
            healed = lab.heal()
            lab.log("healed the network after %.1f s" % (healed - cut))
            self.heal_and_measure(lab, nodes, healed,
                                  RECONNECT_LAN + HEAL_SLACK)
            t = wait_until(all_of(requests_flow(n1, n5, healed),
                                  requests_flow(n5, n1, healed)),
                           RECONNECT_LAN + HEAL_SLACK
                           - (fl.now() - healed),
                           "requests answered between n1 and n5 again")
            lab.log("HEAL: requests n1<->n5 answered %.1f s after the heal"
                    % (t - healed))

    # -- 2 --------------------------------------------------------------------

    def test_partition_heal_with_go(self):
        """Four Mycorrizal nodes, two on each side of the cut, and a Go
        memberlist node on each side ({n1,n2,g1} | {n3,n4,g2}), LAN
        profile, cut for 30 s: Go memberlist never reconnects,
        so our nodes must merge both gopeers back; the gopeers' own tables
        (`members`) must show everyone alive."""
        if not CONFIG["gopeer"] or not os.access(CONFIG["gopeer"], os.X_OK):
            self.skipTest("no gopeer binary (--gopeer; needs go and "
                          "golang-github-hashicorp-memberlist-dev)")
        with self.lab("go") as lab:
            n1 = lab.start_node("n1", lab.ip_of(1), [lab.ip_of(2) + ":7946"])
            n2 = lab.start_node("n2", lab.ip_of(2), [n1])
            n3 = lab.start_node("n3", lab.ip_of(3), [n1, n2])
            n4 = lab.start_node("n4", lab.ip_of(4), [n1, n2])
            ours = [n1, n2, n3, n4]
            self.form(lab, ours)
            g1 = lab.start_gopeer("g1", lab.ip_of(11), join=[n1])
            g2 = lab.start_gopeer("g2", lab.ip_of(12), join=[n3])
            everyone = ours + [g1, g2]
            self.form(lab, everyone)
            a, b = [n1, n2, g1], [n3, n4, g2]
            cut = fl.now()
            lab.partition(a, b)
            lab.log("partition {n1,n2,g1} | {n3,n4,g2}")
            self.split_dead(lab, a, b, cut)
            hold(HOLD - (fl.now() - cut), [self.no_merge(a, b)], lab,
                 "the partition lasts %.0f s" % HOLD)
            healed = lab.heal()
            lab.log("healed the network after %.1f s" % (healed - cut))
            self.heal_and_measure(lab, everyone, healed,
                                  RECONNECT_LAN + HEAL_SLACK)
            for g in (g1, g2):
                lab.log("%s members: %s" % (g.name, g.members()))
            t = wait_until(all_of(requests_flow(n1, n4, healed),
                                  requests_flow(n4, n1, healed)),
                           RECONNECT_LAN + HEAL_SLACK
                           - (fl.now() - healed),
                           "requests answered between n1 and n4 again")
            lab.log("HEAL: requests n1<->n4 answered %.1f s after the heal"
                    % (t - healed))

    # -- 3 --------------------------------------------------------------------

    def test_one_way_drop(self):
        """n4 -> n1 dropped for 30 s: membership keeps both alive (indirect
        probes get through); the QUIC connection is reported unreachable
        within 10 s; requests between n1 and n4 then fail fast instead of
        running into their timeout; after the heal the connection is up
        and requests are answered again."""
        with self.lab("oneway") as lab:
            nodes = lab.start_cluster(5)
            n1, n2, n3, n4, n5 = nodes
            self.form(lab, nodes)
            cut = fl.now()
            lab.one_way(n4, n1)
            lab.log("dropping n4 -> n1")
            no_death = self.no_lines(nodes, r"^\[\S+\] member dead: ",
                                     "a member declared dead", cut)
            unreach = any_of(
                line_at(n4, r"^\[n4\] connection to n1 unreachable", cut),
                line_at(n1, r"^\[n1\] connection to n4 unreachable", cut))
            try:
                t_unreach = wait_until(unreach, 10, "the QUIC connection "
                                       "n1<->n4 reported unreachable "
                                       "within 10 s")
            finally:
                # Deaths would explain a missing report: check them first.
                ok, detail = no_death.check()
                if ok:
                    self.fail(fl._failure_text("a member declared dead "
                                               "during a one-way drop",
                                               detail, nodes))
            lab.log("ONE-WAY: unreachable reported %.1f s after the cut"
                    % (t_unreach - cut))
            # Requests between them now end with an error other than the
            # request timeout (connection_lost, no connection) at both
            # ends, and none runs into its 2 s timeout any more: a request
            # sent after the report that timed out ends >= 2 s after it,
            # so timeouts are forbidden from the report + 4.5 s on. These
            # checks are collected (not fatal at once) so that a failure
            # still shows how the heal went.
            problems = []

            def failed_fast(node, peer):
                rx = re.compile(r"^\[%s\] request to %s failed: (?!timeout)"
                                % (node.name, peer.name))
                return Cond("%s: a request to %s fails fast" % (
                    node.name, peer.name), [node],
                    lambda: (node.find(rx, t_unreach) is not None,
                             "only timeouts (or nothing) since the report"))
            try:
                wait_until(all_of(failed_fast(n1, n4), failed_fast(n4, n1)),
                           10, "requests between n1 and n4 fail fast after "
                           "the unreachable report")
            except AssertionError as e:
                problems.append(str(e))
            hold(HOLD - (fl.now() - cut), [no_death], lab,
                 "the one-way drop lasts %.0f s" % HOLD)
            for a, b in ((n1, n4), (n4, n1)):
                late = [(t, r) for t, p, r in list(a.failures)
                        if p == b.name and t > t_unreach + 4.5
                        and r.startswith("timeout")]
                if late:
                    problems.append(
                        "%s: %d requests to %s ran into their timeout after "
                        "the unreachable report (+4.5 s), first at %s: %s"
                        % (a.name, len(late), b.name, lab.rel(late[0][0]),
                           late[0][1]))
            healed = lab.heal()
            lab.log("healed after %.1f s" % (healed - cut))
            try:
                t = wait_until(all_of(full_mesh(nodes),
                                      requests_flow(n1, n4, healed),
                                      requests_flow(n4, n1, healed)),
                               40, "connection n1<->n4 up and requests "
                               "answered again after the heal")
                lab.log("ONE-WAY: requests n1<->n4 answered %.1f s after "
                        "the heal" % (t - healed))
            except AssertionError as e:
                problems.append(str(e))
            self.assert_no_lines(nodes, r"^\[\S+\] member dead: ",
                                 "a member declared dead", cut)
            if problems:
                self.fail("\n\n".join(problems))

    # -- 4 --------------------------------------------------------------------

    def test_loss_no_false_deaths(self):
        """5 % random loss on all traffic for 60 s: nobody is declared
        dead."""
        with self.lab("loss") as lab:
            nodes = lab.start_cluster(5)
            self.form(lab, nodes)
            start = fl.now()
            lab.loss(0.05)
            lab.log("5 % loss on all traffic")
            no_death = self.no_lines(nodes, r"^\[\S+\] member dead: ",
                                     "a member declared dead under 5 % "
                                     "loss", start)
            hold(60, [no_death], lab, "60 s of 5 % loss")
            dropped = lab.dropped()
            lab.heal()
            suspects = sum(len(n.events("suspect", since=start))
                           for n in nodes)
            lab.log("LOSS: %d packets dropped, %d suspicions, 0 deaths"
                    % (dropped, suspects))
            self.assertGreater(dropped, 0, "the loss rule dropped nothing")
            wait_until(one_cluster(nodes), 20, "everyone alive after the "
                       "loss ends")

    # -- 5 --------------------------------------------------------------------

    def test_pause_nobody_else_suspected(self):
        """n3 paused (SIGSTOP) for 2 s ten times: nobody suspects anyone
        other than n3, nobody dies."""
        with self.lab("pause") as lab:
            nodes = lab.start_cluster(5)
            n3 = nodes[2]
            others = [n for n in nodes if n is not n3]
            self.form(lab, nodes)
            start = fl.now()
            bad_suspect = self.no_lines(
                nodes, r"^\[\S+\] member suspect: (?!n3$)",
                "a member other than n3 suspected", start)
            no_death = self.no_lines(nodes, r"^\[\S+\] member dead: ",
                                     "a member declared dead", start)
            for i in range(10):
                n3.pause()
                hold(2.0, [bad_suspect, no_death], lab,
                     "pause %d of n3" % (i + 1))
                resumed = fl.now()
                n3.resume()
                # Alive everywhere, and n3 ran again: each other node got
                # an answer from it after the resume (a state line alone
                # may predate the pause).
                wait_until(all_of(sees_all(others, [n3], "alive"),
                                  sees_all([n3], others, "alive"),
                                  *(requests_flow(o, n3, resumed)
                                    for o in others)),
                           30, "n3 alive everywhere and answering after "
                           "pause %d" % (i + 1))
                ok, detail = bad_suspect.check()
                if ok:
                    self.fail(fl._failure_text("a member other than n3 "
                                               "suspected", detail, nodes))
            self.assert_no_lines(nodes, r"^\[\S+\] member dead: ",
                                 "a member declared dead", start)
            s3 = sum(len(n.events("suspect", "n3", start)) for n in others)
            lab.log("PAUSE: 10 pauses of 2 s; n3 suspected %d times, "
                    "nobody else, no deaths" % s3)

    # -- 6 --------------------------------------------------------------------

    def test_leave_during_partition_stays_left(self):
        """n5 leaves gracefully while cut off from {n1,n2,n3}: after the
        heal the cluster re-forms with n4, every remaining node ends with
        n5 left (a dead member that turns out to have left), and n5 is
        never seen alive again."""
        with self.lab("leave") as lab:
            nodes = lab.start_cluster(5)
            n1, n2, n3, n4, n5 = nodes
            rest = [n1, n2, n3, n4]
            self.form(lab, nodes)
            cut = fl.now()
            lab.partition([n1, n2, n3], [n4, n5])
            lab.log("partition {n1,n2,n3} | {n4,n5}")
            wait_until(sees_all([n1], [n4, n5], "dead"), DEAD_TIMEOUT,
                       "n1 sees n4 and n5 dead")
            lab.log("n1 sees n4, n5 dead %.1f s after the cut"
                    % (fl.now() - cut))
            rc = n5.stop()
            left_at = n5.stopped_at
            lab.log("n5 stopped (SIGTERM), exit status %s" % rc)
            self.assertEqual(rc, 0, "n5's exit status after SIGTERM")
            wait_until(sees_all([n4], [n5], "left"), 10,
                       "n4 (same side) sees n5 left")
            healed = lab.heal()
            lab.log("healed after %.1f s" % (healed - cut))
            budget = RECONNECT_LAN + HEAL_SLACK
            back = self.no_lines(
                rest, r"^\[\S+\] member (joined|alive again): n5\b",
                "n5 seen alive again after its leave", left_at)
            t = wait_until(all_of(one_cluster(rest), full_mesh(rest),
                                  sees_all(rest, [n5], "left")),
                           budget, "the cluster re-forms with n4 and "
                           "everyone holds n5 as left")
            lab.log("LEAVE: re-formed with n5 left everywhere %.1f s after "
                    "the heal" % (t - healed))
            for n in (n1, n2, n3):
                self.assertIsNotNone(
                    n.find(re.compile(
                        r"^\[%s\] member left: n5$" % n.name), healed - 1),
                    "%s printed 'member left: n5'" % n.name)
            # n5 must stay left: watch a little longer (one push/pull
            # round of the heal is over by now; a stale alive would show).
            hold(5, [back], lab, "n5 stays left")


class Result(unittest.TextTestResult):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get(
        "MYCORRIZAL_NODE", "/tmp/mycz-bin/mycorrizal-node"),
        help="mycorrizal-node binary")
    ap.add_argument("--gopeer", default=os.environ.get("MYCORRIZAL_GOPEER"),
                    help="gopeer binary (the Go test is skipped without)")
    ap.add_argument("--keep-logs", help="write every node's lines here")
    ap.add_argument("tests", nargs="*",
                    help="e.g. FaultTests.test_partition_heal (default: all)")
    args = ap.parse_args()
    try:
        fl.preflight()
    except fl.SkipLab as e:
        print("SKIPPED: %s" % e, flush=True)
        return fl.SKIP
    if not os.access(args.bin, os.X_OK):
        print("error: mycorrizal-node binary not executable: %s" % args.bin,
              file=sys.stderr)
        return 2
    CONFIG["bin"] = os.path.abspath(args.bin)
    CONFIG["gopeer"] = os.path.abspath(args.gopeer) if args.gopeer else None
    CONFIG["keep"] = args.keep_logs
    loader = unittest.TestLoader()
    if args.tests:
        suite = loader.loadTestsFromNames(args.tests,
                                          sys.modules[__name__])
    else:
        suite = loader.loadTestsFromTestCase(FaultTests)
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
