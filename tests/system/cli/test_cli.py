#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The `mycorrizal` CLI against live mycorrizal-node processes (--http,
--profile local, --cache storage, one development CA in a shared
--data-dir, gossip and HTTP on ports the kernel picks).

* test_cluster: three nodes on 127.0.0.141-143 with gossip encryption
  (--gossip-key). `members --json` on every node shows the three alive;
  `status` (table and JSON); `cache put/get/del` round trips through
  different nodes, with text, a binary value (all 256 byte values, from
  --file and from stdin) and a key with '/', ' ' and '?'; `cache get` and
  `cache del` of a missing key exit 4 with nothing on stdout; `cache
  buckets` and `cache stats`. A key rotation with `keyring install`, `use`
  and `remove` while a watcher polls every node's /v1/members: every
  observation shows all three alive, during the rotation and after it
  until every node has run 10 more probes under the new key alone;
  `keyring list` counts holders and primaries at each step; removing the
  key in use is refused by every member (exit 1). Finally `leave` on one
  node: exit 0, its process exits 0 and the others see it as `left`.
* test_errors_and_help: one node on 127.0.0.144 with --http-token-file:
  exit 1 without the token or with a wrong one, 0 with it (also from
  MYCORRIZAL_HTTP_ADDR and MYCORRIZAL_HTTP_TOKEN_FILE); exit 2 for usage
  errors; exit 3 for an address nobody listens on; `--help` exits 0 for the
  program and every subcommand.

Waits poll a condition until a deadline (never a fixed sleep) and, on
failure, print what they saw and the nodes' last lines. The helpers
(processes, waits) come from ../http/test_http.py. Python 3 stdlib only.

Usage:
    test_cli.py --node-bin <build>/tools/mycorrizal-node \\
        --cli-bin <build>/tools/mycorrizal [CliTests.test_cluster ...]
"""

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "http"))
import test_http as lab  # noqa: E402  (Proc, wait_until, failure_text)

CONFIG = {"node": None, "cli": None, "keep": None}

START_TIMEOUT = 30.0
FORM_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PROBES_AFTER = 10

# The CLI's documented exit codes (docs/cli.md).
OK, NODE_ERROR, USAGE, UNREACHABLE, NOT_FOUND = 0, 1, 2, 3, 4


class Node(lab.Proc):
    """A mycorrizal-node process with --http."""

    def __init__(self, name, ip, work, seeds=(), extra=()):
        self.ip = ip
        argv = [CONFIG["node"], "--name", name, "--gossip", ip + ":0",
                "--profile", "local", "--data-dir",
                os.path.join(work, "certs"), "--log-level", "warn",
                "--cache", "storage", "--http", ip + ":0"]
        for s in seeds:
            argv += ["--seed", s]
        super().__init__(name, argv + list(extra), work)
        self._http = None
        self._gossip = None

    def _line(self, rx, what):
        def fn():
            hit = self.find(rx)
            return (hit is not None and hit[1].group(1) == self.name,
                    "no %s line yet" % what)
        lab.wait_until(fn, START_TIMEOUT, "%s prints its %s line" % (
            self.name, what), [self])
        return self.find(rx)[1].group(2)

    @property
    def http(self):
        if self._http is None:
            self._http = self._line(lab._HTTP_ON, "'HTTP on'")
        return self._http

    @property
    def gossip(self):
        if self._gossip is None:
            self._gossip = self._line(lab._READY, "'ready'")
        return self._gossip


def run_cli(args, addr=None, stdin=None, env=None, timeout=CLI_TIMEOUT):
    """Runs the CLI; @returns a CompletedProcess with bytes stdout and
    stderr."""
    argv = [CONFIG["cli"]]
    if addr is not None:
        argv += ["--http-addr", addr]
    argv += list(args)
    full_env = dict(os.environ)
    full_env.pop("MYCORRIZAL_HTTP_ADDR", None)
    full_env.pop("MYCORRIZAL_HTTP_TOKEN_FILE", None)
    full_env.update(env or {})
    return subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout,
                          env=full_env)


def shown(p):
    return "%s -> exit %d\n  stdout: %r\n  stderr: %r" % (
        " ".join(p.args[1:]), p.returncode, p.stdout[:2000],
        p.stderr[:2000])


def http_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


_PROBES = re.compile(r"^mycorrizal_gossip_probes_total(\{[^}]*\})?\s+(\S+)",
                     re.M)


def probes(node):
    with urllib.request.urlopen("http://%s/metrics" % node.http,
                                timeout=10) as r:
        text = r.read().decode()
    return sum(float(m.group(2)) for m in _PROBES.finditer(text))


class Watcher:
    """Polls every node's /v1/members until stopped and keeps every
    observation in which a node did not see all of `names` alive."""

    def __init__(self, nodes, names):
        self.nodes = nodes
        self.names = sorted(names)
        self.bad = []
        self.rounds = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for n in self.nodes:
                try:
                    j = http_json("http://%s/v1/members" % n.http, timeout=5)
                except Exception as e:  # noqa: BLE001 - kept and reported
                    self.errors.append("%s: %s" % (n.name, e))
                    continue
                states = {m["name"]: m["state"] for m in j["members"]}
                alive = sorted(k for k, v in states.items() if v == "alive")
                if alive != self.names:
                    self.bad.append((time.monotonic(), n.name, states))
            self.rounds += 1
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


class CliTests(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mczcli-%s." % (
            self._testMethodName,))
        self.procs = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for p in reversed(self.procs):
            p.stop()
        if CONFIG["keep"]:
            d = os.path.join(CONFIG["keep"], self._testMethodName)
            os.makedirs(d, exist_ok=True)
            for p in self.procs:
                p.dump(os.path.join(d, "%s.log" % p.name))
        shutil.rmtree(self.work, ignore_errors=True)

    def cli(self, node, *args, stdin=None, want=OK):
        """Runs the CLI against `node`; asserts its exit status."""
        p = run_cli(args, addr=node.http, stdin=stdin)
        self.assertEqual(p.returncode, want, lab.failure_text(
            "mycorrizal %s: exit %d, wanted %d" % (
                " ".join(args), p.returncode, want), shown(p), self.procs))
        return p

    def cli_json(self, node, *args):
        p = self.cli(node, "--json", *args)
        return json.loads(p.stdout.decode())

    # -- a: the cluster ---------------------------------------------------

    def start_cluster(self, names, ips, key):
        t0 = time.monotonic()
        extra = ["--gossip-key", key]
        first = Node(names[0], ips[0], self.work, extra=extra)
        self.procs.append(first)
        nodes = [first]
        for name, ip in zip(names[1:], ips[1:]):
            n = Node(name, ip, self.work, seeds=[first.gossip], extra=extra)
            self.procs.append(n)
            nodes.append(n)
        want = sorted(names)

        def formed():
            seen = {}
            ok = True
            for n in nodes:
                p = run_cli(["--json", "members"], addr=n.http)
                if p.returncode != 0:
                    return False, shown(p)
                j = json.loads(p.stdout.decode())
                alive = sorted(m["name"] for m in j["members"]
                               if m["state"] == "alive")
                seen[n.name] = alive
                ok = ok and alive == want and j["node"] == n.name
            return ok, json.dumps(seen)
        lab.wait_until(formed, FORM_TIMEOUT, "`mycorrizal members` on "
                       "every node shows %s alive" % ", ".join(want), nodes)
        lab.say("formed in %.1f s: %s" % (time.monotonic() - t0,
                                          ", ".join(n.http for n in nodes)))
        return nodes

    def keyring(self, node):
        """`keyring list --json`: {key: (members, primary)}."""
        j = self.cli_json(node, "keyring", "list")
        self.assertEqual(j["members"], 3, j)
        self.assertEqual(j["failed"], [], j)
        return {k["key"]: (k["members"], k["primary"]) for k in j["keys"]}

    def test_cluster(self):
        k1 = base64.b64encode(os.urandom(32)).decode()
        k2 = base64.b64encode(os.urandom(32)).decode()
        names = ["cli-n1", "cli-n2", "cli-n3"]
        n1, n2, n3 = nodes = self.start_cluster(
            names, ["127.0.0.141", "127.0.0.142", "127.0.0.143"], k1)

        # members: the table names every node.
        out = self.cli(n1, "members").stdout.decode()
        for name in names:
            self.assertRegex(out, r"(?m)^%s\s+127\.0\.0\.\d+:\d+\s+alive"
                             % name, out)

        # status: table and JSON.
        out = self.cli(n2, "status").stdout.decode()
        self.assertIn("node cli-n2:", out)
        self.assertIn("health score", out)
        for part in ("Members:", "Peers:", "Applications:", "Buckets:"):
            self.assertIn(part, out)
        st = self.cli_json(n2, "status")
        self.assertEqual(st["node"]["name"], "cli-n2")
        self.assertIn("health_score", st["node"])
        self.assertIn("mycorrizal.keyring",
                      [a["name"] for a in st["applications"]])

        # cache: text, binary (file and stdin), odd keys, missing keys.
        self.assertIn(b"created", self.cli(n1, "cache", "put", "web",
                                           "greeting", "hello").stdout)
        got = self.cli(n2, "cache", "get", "web", "greeting")
        self.assertEqual(got.stdout, b"hello")
        blob = bytes(range(256)) * 4
        path = os.path.join(self.work, "blob")
        with open(path, "wb") as f:
            f.write(blob)
        odd = "dir/a b?c"
        self.cli(n3, "cache", "put", "web", odd, "--file", path, "--ttl",
                 "600")
        self.assertEqual(self.cli(n1, "cache", "get", "web", odd).stdout,
                         blob)
        self.cli(n2, "cache", "put", "web", "stdin", stdin=blob[::-1])
        self.assertEqual(self.cli(n3, "cache", "get", "web",
                                  "stdin").stdout, blob[::-1])
        j = self.cli_json(n1, "cache", "get", "web", odd)
        self.assertEqual(base64.b64decode(j["value_base64"]), blob)
        self.assertGreater(j["expires_ms"], 0)
        self.assertNotIn("value", j)  # not UTF-8
        missing = self.cli(n3, "cache", "get", "web", "nope", want=NOT_FOUND)
        self.assertEqual(missing.stdout, b"")
        missing = self.cli(n3, "--json", "cache", "get", "web", "nope",
                           want=NOT_FOUND)
        self.assertEqual(missing.stdout, b"")
        self.cli(n1, "cache", "get", "nobucket", "k", want=NODE_ERROR)
        bk = self.cli_json(n2, "cache", "buckets")
        self.assertEqual([b["name"] for b in bk["buckets"]], ["web"], bk)
        self.assertIn(b"web", self.cli(n2, "cache", "buckets").stdout)
        stats = self.cli_json(n1, "cache", "stats")
        self.assertEqual([b["name"] for b in stats["buckets"]], ["web"])
        self.assertIn(b"ENTRIES", self.cli(n1, "cache", "stats").stdout)
        self.assertEqual(self.cli(n2, "cache", "del", "web",
                                  "greeting").stdout, b"deleted\n")
        self.cli(n1, "cache", "get", "web", "greeting", want=NOT_FOUND)
        self.cli(n3, "cache", "del", "web", "greeting", want=NOT_FOUND)
        lab.say("cache: put/get/del through every node, binary values, "
                "missing keys exit 4")

        # The key rotation, watched.
        self.assertEqual(self.keyring(n1), {k1: (3, 3)})
        watch = Watcher(nodes, names)
        self.addCleanup(watch.stop)
        try:
            self.assertIn(b"install: done on all 3 members",
                          self.cli(n2, "keyring", "install", k2).stdout)
            self.assertEqual(self.keyring(n3), {k1: (3, 3), k2: (3, 0)})
            self.cli(n3, "keyring", "use", k2)
            self.assertEqual(self.keyring(n1), {k1: (3, 0), k2: (3, 3)})
            self.cli(n1, "keyring", "remove", k1)
            self.assertEqual(self.keyring(n2), {k2: (3, 3)})
            refused = self.cli(n2, "keyring", "remove", k2, want=NODE_ERROR)
            self.assertIn(b"failed on 3 of 3 members", refused.stderr)
            self.assertIn(b"primary key", refused.stderr)
            self.assertEqual(self.keyring(n3), {k2: (3, 3)})
            lab.say("rotation done: %d watcher rounds so far" % watch.rounds)
            # After the rotation: every node runs PROBES_AFTER more probes,
            # now under the new key alone, while the watcher keeps looking.
            base = {n.name: probes(n) for n in nodes}

            def probed():
                now = {n.name: probes(n) for n in nodes}
                return (all(now[k] - base[k] >= PROBES_AFTER for k in now),
                        "probes since the rotation: %s" % {
                            k: now[k] - base[k] for k in now})
            lab.wait_until(probed, FORM_TIMEOUT, "every node ran %d probes "
                           "under the new key" % PROBES_AFTER, nodes)
        finally:
            watch.stop()
        self.assertGreater(watch.rounds, 0, watch.errors)
        self.assertEqual(watch.bad, [], lab.failure_text(
            "a node did not see all 3 alive during or after the rotation",
            "%d bad observations of %d rounds, first: %s" % (
                len(watch.bad), watch.rounds, watch.bad[:5]), nodes))
        lab.say("rotation: all 3 alive on every node in all %d rounds "
                "(%d request errors)" % (watch.rounds, len(watch.errors)))
        self.assertEqual(self.cli(n3, "cache", "get", "web", odd).stdout,
                         blob)

        # leave: n3 answers, leaves and exits 0; the others see it left.
        self.assertIn(b"cli-n3 is leaving",
                      self.cli(n3, "leave").stdout)
        n3.expect_exit = True
        try:
            rc = n3.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        self.assertEqual(rc, 0, lab.failure_text(
            "cli-n3 after `leave`: exit status %s" % rc, "", [n3]))

        def left():
            seen = {}
            for n in (n1, n2):
                j = self.cli_json(n, "members")
                seen[n.name] = {m["name"]: m["state"] for m in j["members"]}
            return all(s.get("cli-n3") == "left" and
                       s.get("cli-n1") == "alive" and
                       s.get("cli-n2") == "alive"
                       for s in seen.values()), json.dumps(seen)
        lab.wait_until(left, FORM_TIMEOUT, "cli-n1 and cli-n2 see cli-n3 "
                       "as left", [n1, n2])
        self.cli(n3, "members", want=UNREACHABLE)
        for n in (n1, n2):
            n.term()
        for n in (n1, n2):
            rc = n.stop()
            self.assertEqual(rc, 0, lab.failure_text(
                "%s: exit status %s after SIGTERM" % (n.name, rc), "", [n]))

    # -- b: errors, exit codes and help -----------------------------------

    def test_errors_and_help(self):
        token = "cli-token-%d" % os.getpid()
        good = os.path.join(self.work, "token")
        with open(good, "w") as f:
            f.write(token + "\n")
        bad = os.path.join(self.work, "wrong")
        with open(bad, "w") as f:
            f.write("not-" + token + "\n")
        n = Node("cli-tok", "127.0.0.144", self.work,
                 extra=["--http-token-file", good])
        self.procs.append(n)
        n.gossip  # noqa: B018 - waits until it is ready

        p = run_cli(["members"], addr=n.http)
        self.assertEqual(p.returncode, NODE_ERROR, shown(p))
        self.assertIn(b"unauthorized", p.stderr)
        self.assertEqual(p.stdout, b"")
        p = run_cli(["--token-file", bad, "members"], addr=n.http)
        self.assertEqual(p.returncode, NODE_ERROR, shown(p))
        self.assertIn(b"HTTP 401", p.stderr)
        p = run_cli(["--token-file", good, "--json", "members"],
                    addr=n.http)
        self.assertEqual(p.returncode, OK, shown(p))
        self.assertEqual(json.loads(p.stdout)["node"], "cli-tok")
        p = run_cli(["members"], env={"MYCORRIZAL_HTTP_ADDR": n.http,
                                      "MYCORRIZAL_HTTP_TOKEN_FILE": good})
        self.assertEqual(p.returncode, OK, shown(p))
        self.assertIn(b"cli-tok", p.stdout)
        lab.say("token: exit 1 without or with a wrong token, 0 with it")

        for args in (["frobnicate"], [], ["cache"], ["cache", "get", "web"],
                     ["keyring", "install"], ["--timeout", "x", "members"],
                     ["--http-addr", "nohost:99999", "members"]):
            p = run_cli(args, addr=None if "--http-addr" in args else n.http)
            self.assertEqual(p.returncode, USAGE, shown(p))
            self.assertEqual(p.stdout, b"", shown(p))
        port = lab.free_port("127.0.0.144")
        p = run_cli(["--token-file", good, "members"],
                    addr="127.0.0.144:%d" % port)
        self.assertEqual(p.returncode, UNREACHABLE, shown(p))
        self.assertIn(b"cannot reach", p.stderr)
        # A bad key is the caller's error, answered by the node (exit 1).
        p = run_cli(["--token-file", good, "keyring", "install", "abc"],
                    addr=n.http)
        self.assertEqual(p.returncode, NODE_ERROR, shown(p))
        lab.say("usage errors exit 2, an unreachable node 3")

        for sub in ([], ["members"], ["status"], ["cache"],
                    ["cache", "get"], ["cache", "put"], ["cache", "del"],
                    ["cache", "buckets"], ["cache", "stats"], ["keyring"],
                    ["keyring", "list"], ["keyring", "install"],
                    ["keyring", "use"], ["keyring", "remove"], ["leave"]):
            p = run_cli(sub + ["--help"])
            self.assertEqual(p.returncode, OK, shown(p))
            self.assertIn(b"Usage: mycorrizal", p.stdout, shown(p))
            if sub:
                self.assertIn((" ".join(sub)).encode(), p.stdout, shown(p))
        lab.say("--help: exit 0 for the program and every subcommand")
        rc = n.stop()
        self.assertEqual(rc, 0, lab.failure_text(
            "cli-tok: exit status %s after SIGTERM" % rc, "", [n]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node-bin", required=True,
                    help="mycorrizal-node binary")
    ap.add_argument("--cli-bin", required=True, help="mycorrizal binary")
    ap.add_argument("--keep-logs", help="write every process's lines to "
                    "DIR/<test>/<name>.log")
    ap.add_argument("tests", nargs="*", help="e.g. CliTests.test_cluster")
    args = ap.parse_args()
    for b in (args.node_bin, args.cli_bin):
        if not os.access(b, os.X_OK):
            print("error: not executable: %s" % b, file=sys.stderr)
            return 2
    CONFIG["node"] = os.path.abspath(args.node_bin)
    CONFIG["cli"] = os.path.abspath(args.cli_bin)
    CONFIG["keep"] = os.path.abspath(args.keep_logs) if args.keep_logs \
        else None
    lab.CONFIG["bin"] = CONFIG["node"]
    for s in (lab.signal.SIGTERM, lab.signal.SIGHUP):
        lab.signal.signal(s, lab._on_signal)
    loader = unittest.TestLoader()
    if args.tests:
        suite = loader.loadTestsFromNames(args.tests, sys.modules[__name__])
    else:
        suite = loader.loadTestsFromTestCase(CliTests)
    t0 = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                     resultclass=lab.Result).run(suite)
    print("total %.1f s" % (time.monotonic() - t0), flush=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
