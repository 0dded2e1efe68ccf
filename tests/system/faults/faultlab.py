# SPDX-License-Identifier: Apache-2.0
"""faultlab: real Mycorrizal (and Go memberlist) nodes in a network
namespace of their own, and the faults a test injects between them.

A `Lab` creates a network namespace (`ip netns add`), brings its loopback
up and starts node processes inside it (`ip netns exec`), every node on its
own 127.0.0.x address of that namespace's `lo`. Faults are iptables rules
*inside that namespace only*, in a chain of the lab's own (`MCZFAULT`,
jumped to from INPUT): a partition between two groups, a one-way drop,
random loss (`-m statistic`), a flapping link; processes are paused
(SIGSTOP/SIGCONT), killed (SIGKILL) and restarted. Leaving the `with`
block (also on an exception, Ctrl-C, SIGTERM, or at interpreter exit)
kills every process of the lab and deletes the namespace, which takes its
rules and addresses with it. Nothing outside the namespace is touched.

Nodes print lines (`[name] member dead: n4`, ...); a reader thread per
stream stores them with their arrival time (`time.monotonic()`) and keeps
the node's view: every other member's latest state and which QUIC
connections are up. Tests never sleep for an answer: `wait_until(cond,
timeout)` polls a condition until a deadline and, on failure, raises an
`AssertionError` with the condition's current state and the relevant
nodes' last lines; `hold(seconds, forbidden)` keeps a fault for a time on
the clock while checking that forbidden things do not happen.

Needs root (network namespaces, iptables) and Linux; Python 3 stdlib only.
"""

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

GOSSIP_PORT = 7946
QUIC_PORT = 7947
# gopeer k runs as uid GOPEER_UID_BASE + k (no passwd entry needed).
GOPEER_UID_BASE = 61000
CHAIN = "MCZFAULT"
NS_PREFIX = "mczf-"

# Exit status of a test that cannot run here (ctest SKIP_RETURN_CODE).
SKIP = 77

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies, even by
    SIGKILL (a ctest timeout), so no node outlives the test. `ip netns
    exec` execs the node in place, and the setting survives exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # pragma: no cover - best effort
        pass


def now():
    return time.monotonic()


class SkipLab(Exception):
    """The lab cannot run on this machine (not root, no ip/iptables, no
    namespaces); the message says why."""


def _run(argv, check=True, timeout=20):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv),
                                                  p.returncode,
                                                  p.stderr.strip()))
    return p


def preflight():
    """Raises SkipLab with the reason when labs cannot run here."""
    if not sys.platform.startswith("linux"):
        raise SkipLab("needs Linux network namespaces")
    if os.geteuid() != 0:
        raise SkipLab("needs root (network namespaces and iptables); CI "
                      "runs these tests as root")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise SkipLab("'%s' not found (apt-get install iproute2 "
                          "iptables)" % tool)
    name = "%sprobe-%d" % (NS_PREFIX, os.getpid())
    try:
        p = _run(["ip", "netns", "add", name], check=False)
        if p.returncode != 0:
            raise SkipLab("cannot create a network namespace: %s"
                          % p.stderr.strip())
        p = _run(["ip", "netns", "exec", name, "iptables", "-w", "-L",
                  "INPUT", "-n"], check=False)
        if p.returncode != 0:
            raise SkipLab("iptables does not work in a network namespace: "
                          "%s" % p.stderr.strip())
    finally:
        _run(["ip", "netns", "del", name], check=False)


def _reap_stale_namespaces():
    """Deletes namespaces an earlier lab left behind when its process was
    killed with SIGKILL (their name holds the owner's pid, which is gone).
    Only our own prefix; only owners that no longer exist."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for ns in names:
        m = re.match(re.escape(NS_PREFIX) + r"(?:probe-)?(\d+)-", ns + "-")
        if not m:
            continue
        owner = int(m.group(1))
        if owner == os.getpid() or os.path.exists("/proc/%d" % owner):
            continue
        _kill_namespace_processes(ns)
        _run(["ip", "netns", "del", ns], check=False)


def _reap_stale_work_dirs():
    """Deletes work dirs (mczf-<pid>-<label>.XXXX in the temp dir) of labs
    whose process is gone."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for d in names:
        m = re.match(re.escape(NS_PREFIX) + r"(\d+)-[^.]+\.", d)
        if not m:
            continue
        owner = int(m.group(1))
        if owner == os.getpid() or os.path.exists("/proc/%d" % owner):
            continue
        shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)


def _kill_namespace_processes(ns):
    p = _run(["ip", "netns", "pids", ns], check=False)
    for tok in p.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


# -- conditions ---------------------------------------------------------------


class Cond:
    """A condition over the nodes' views: `fn()` returns (ok, detail).
    `what` names it in failure messages; `nodes` are the nodes whose last
    lines a failure shows."""

    def __init__(self, what, nodes, fn):
        self.what = what
        self.nodes = list(nodes)
        self.fn = fn

    def check(self):
        return self.fn()

    def __call__(self):
        return self.fn()[0]

    def __and__(self, other):
        return all_of(self, other)


def all_of(*conds):
    def fn():
        bad = []
        for c in conds:
            ok, detail = c.check()
            if not ok:
                bad.append("%s: %s" % (c.what, detail))
        return (not bad, "; ".join(bad))
    nodes = []
    for c in conds:
        for n in c.nodes:
            if n not in nodes:
                nodes.append(n)
    return Cond(" and ".join(c.what for c in conds), nodes, fn)


def sees(node, member, state):
    """`node`'s latest view of `member` is `state` (alive, suspect, dead,
    left)."""
    mname = getattr(member, "name", member)

    def fn():
        got = node.state_of(mname)
        return (got == state, "%s sees %s as %s" % (node.name, mname, got))
    return Cond("%s sees %s %s" % (node.name, mname, state), [node], fn)


def sees_all(observers, members, state):
    """Every observer sees every member (other than itself) as `state`."""
    observers = list(observers)
    members = list(members)

    def fn():
        bad = []
        for o in observers:
            view = o.view()
            for m in members:
                mname = getattr(m, "name", m)
                if mname == o.name:
                    continue
                if view.get(mname) != state:
                    bad.append("%s->%s=%s" % (o.name, mname, view.get(mname)))
        return (not bad, "not yet: " + ", ".join(bad))
    names = ",".join(o.name for o in observers)
    mnames = ",".join(getattr(m, "name", m) for m in members)
    return Cond("{%s} see {%s} %s" % (names, mnames, state), observers, fn)


def one_cluster(nodes):
    """Every node sees every other one alive."""
    c = sees_all(nodes, nodes, "alive")
    c.what = "one cluster {%s}" % ",".join(n.name for n in nodes)
    return c


def full_mesh(nodes):
    """Every pair of Mycorrizal nodes has a QUIC connection up (as both
    ends report it)."""
    nodes = [n for n in nodes if n.mycorrizal]

    def fn():
        bad = []
        for a in nodes:
            for b in nodes:
                if a is not b and not a.conn_up(b.name):
                    bad.append("%s->%s" % (a.name, b.name))
        return (not bad, "no connection: " + ", ".join(bad))
    return Cond("full QUIC mesh {%s}" % ",".join(n.name for n in nodes),
                nodes, fn)


def requests_flow(a, b, since):
    """`a` printed a "request to b: answered" line after `since`."""
    def fn():
        t = a.last_answered.get(b.name)
        return (t is not None and t > since,
                "last answer from %s at %s (need > %s)" % (
                    b.name, a.lab.rel(t), a.lab.rel(since)))
    return Cond("requests %s -> %s answered" % (a.name, b.name), [a, b], fn)


def line_at(node, regex, since=0.0):
    """`node` printed a line matching `regex` (re.search) after `since`."""
    rx = re.compile(regex)

    def fn():
        hit = node.find(rx, since)
        return (hit is not None, "no line /%s/ since %s" % (
            regex, node.lab.rel(since)))
    return Cond("%s printed /%s/" % (node.name, regex), [node], fn)


def any_of(*conds):
    def fn():
        details = []
        for c in conds:
            ok, d = c.check()
            if ok:
                return True, ""
            details.append(d)
        return False, " | ".join(details)
    nodes = []
    for c in conds:
        nodes += [n for n in c.nodes if n not in nodes]
    return Cond(" or ".join(c.what for c in conds), nodes, fn)


def process_exited(node):
    def fn():
        code = node.proc.poll() if node.proc else None
        return (code is not None, "still running (pid %s)" % (
            node.proc.pid if node.proc else None))
    return Cond("%s exited" % node.name, [node], fn)


class WaitTimeout(AssertionError):
    pass


def wait_until(cond, timeout, describe=None, poll=0.05):
    """Polls `cond` until it holds or `timeout` seconds passed. @returns the
    time (monotonic) it was first seen to hold. On timeout raises
    WaitTimeout with `describe` (or the condition's name), the condition's
    state and the last lines of the nodes it is about. A node of the lab
    that exited unexpectedly fails the wait at once."""
    deadline = now() + timeout
    labs = {id(n.lab): n.lab for n in cond.nodes}
    while True:
        ok, detail = cond.check()
        if ok:
            return now()
        for lab in labs.values():
            lab.check_processes()
        if now() >= deadline:
            raise WaitTimeout(_failure_text(
                "timed out after %.1f s waiting for: %s" % (
                    timeout, describe or cond.what), detail, cond.nodes))
        time.sleep(poll)


def _failure_text(headline, detail, nodes, lines=25):
    out = [headline, "  state: " + (detail or "-")]
    for n in nodes:
        out.append(n.tail(lines))
    return "\n".join(out)


def hold(seconds, forbidden=(), lab=None, describe="holding a fault"):
    """Waits `seconds` on the clock (a fault that must last that long)
    while checking the `forbidden` conditions: the first one that holds
    fails at once with its state and the nodes' last lines."""
    end = now() + seconds
    labs = {}
    for c in forbidden:
        for n in c.nodes:
            labs[id(n.lab)] = n.lab
    if lab is not None:
        labs[id(lab)] = lab
    while True:
        for c in forbidden:
            ok, detail = c.check()
            if ok:
                raise AssertionError(_failure_text(
                    "%s: forbidden: %s" % (describe, c.what), detail,
                    c.nodes))
        for lb in labs.values():
            lb.check_processes()
        left = end - now()
        if left <= 0:
            return
        time.sleep(min(0.1, left))


# -- nodes --------------------------------------------------------------------

_PREFIX = re.compile(r"^\[([^\]]+)\] (.*)$")
_EVENTS = [
    (re.compile(r"^member joined: (\S+)"), "alive"),
    (re.compile(r"^member alive again: (\S+)$"), "alive"),
    (re.compile(r"^member suspect: (\S+)$"), "suspect"),
    (re.compile(r"^member dead: (\S+)$"), "dead"),
    (re.compile(r"^member left: (\S+)$"), "left"),
]
_MEMBERS = re.compile(r"^members: (.*)$")
_CONNECTED = re.compile(r"^connected to (\S+) over QUIC")
_DOWN = re.compile(r"^connection to (\S+) down \((.*)\)$")
_UNREACHABLE = re.compile(r"^connection to (\S+) unreachable(?: \((.*)\))?$")
_ANSWERED = re.compile(r"^request to (\S+): answered ")
_FAILED = re.compile(r"^request to (\S+) failed: (.*)$")


class Proc:
    """What Node and GoPeer share: the process, its lines, signals."""

    mycorrizal = False

    def __init__(self, lab, name, ip):
        self.lab = lab
        self.name = name
        self.ip = ip
        self.proc = None
        self.lock = threading.RLock()
        self.lines = []          # (t, stream, text), every run
        self.runs = 0
        self.expect_exit = False
        self.paused = False
        self.stopped_at = None
        self._threads = []

    @property
    def gossip(self):
        return "%s:%d" % (self.ip, GOSSIP_PORT)

    def _spawn(self, argv, stdin=False):
        self.runs += 1
        self.expect_exit = False
        self.paused = False
        self.reset_view()
        self._add(now(), "lab", "--- start #%d: %s" % (self.runs,
                                                       " ".join(argv)))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.ns] + argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent, start_new_session=True,
            cwd=self.lab.work)
        self._threads = []
        for stream, pipe in (("out", self.proc.stdout),
                             ("err", self.proc.stderr)):
            t = threading.Thread(target=self._reader, args=(stream, pipe,
                                                            self.runs),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _reader(self, stream, pipe, run):
        for raw in iter(pipe.readline, b""):
            text = raw.decode(errors="replace").rstrip("\n")
            t = now()
            with self.lock:
                self._add(t, stream, text)
                if stream == "out" and run == self.runs:
                    self.on_line(t, text)
        pipe.close()

    def _add(self, t, stream, text):
        with self.lock:
            self.lines.append((t, stream, text))

    def reset_view(self):
        pass

    def on_line(self, t, text):
        pass

    # -- signals ----------------------------------------------------------

    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True
        self._add(now(), "lab", "--- SIGSTOP")

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False
        self._add(now(), "lab", "--- SIGCONT")

    def kill9(self):
        """SIGKILL (a crash); waits for the process to end."""
        self.expect_exit = True
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.stopped_at = now()
        self._add(self.stopped_at, "lab", "--- SIGKILL")
        self._join_readers()

    def stop(self, timeout=20):
        """SIGTERM (a graceful leave); waits up to `timeout` s for the exit
        and @returns the exit status."""
        self.expect_exit = True
        self.stopped_at = now()
        self._add(self.stopped_at, "lab", "--- SIGTERM")
        if self.paused and self.running():
            self.resume()
        if self.running():
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(_failure_text(
                "%s did not exit within %d s of SIGTERM" % (self.name,
                                                           timeout),
                "", [self]))
        self._join_readers()
        return rc

    def _join_readers(self):
        for t in self._threads:
            t.join(timeout=5)

    def _force_kill(self):
        self.expect_exit = True
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    # -- lines ------------------------------------------------------------

    def find(self, rx, since=0.0, stream="out"):
        """The first line after `since` matching `rx` (re.search):
        (t, text) or None."""
        with self.lock:
            for t, s, text in self.lines:
                if t > since and (stream is None or s == stream) \
                        and rx.search(text):
                    return (t, text)
        return None

    def find_all(self, rx, since=0.0, stream="out"):
        with self.lock:
            return [(t, text) for t, s, text in self.lines
                    if t > since and (stream is None or s == stream)
                    and rx.search(text)]

    def tail(self, n=25):
        with self.lock:
            last = self.lines[-n:]
        status = "running" if self.running() else "exited %s" % (
            self.proc.returncode if self.proc else "-")
        out = ["--- %s (%s, pid %s), last %d lines:" % (
            self.name, status, self.proc.pid if self.proc else "-",
            len(last))]
        for t, s, text in last:
            out.append("  %8s %s %s" % (self.lab.rel(t), s, text))
        return "\n".join(out)

    def dump(self, path):
        with self.lock, open(path, "w") as f:
            for t, s, text in self.lines:
                f.write("%s %s %s\n" % (self.lab.rel(t), s, text))


class Node(Proc):
    """A mycorrizal-node process and its view of the cluster, from its
    '[name] ...' lines."""

    mycorrizal = True

    def __init__(self, lab, name, ip, seeds, profile, extra_flags, demo,
                 log_level):
        super().__init__(lab, name, ip)
        self.seeds = list(seeds)
        self.profile = profile
        self.extra_flags = list(extra_flags)
        self.demo = demo
        self.log_level = log_level

    def argv(self):
        a = [self.lab.node_bin, "--name", self.name,
             "--gossip", self.gossip,
             "--quic", "%s:%d" % (self.ip, QUIC_PORT),
             "--data-dir", os.path.join(self.lab.work, "certs"),
             "--profile", self.profile,
             "--log-level", self.log_level]
        for s in self.seeds:
            a += ["--seed", s]
        if self.demo:
            a.append("--demo")
        return a + self.extra_flags

    def start(self):
        console = "--console" in self.extra_flags
        self._spawn(self.argv(), stdin=console)
        self.cmd_lock = threading.Lock()
        return self

    def console(self, line, timeout=20):
        """Sends a command to the node's console (--console in
        extra_flags); @returns its answer (the text after ' -> ')."""
        prefix = "[%s] %s -> " % (self.name, line)
        with self.cmd_lock:
            with self.lock:
                seen = len(self.lines)
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
            deadline = now() + timeout
            while True:
                with self.lock:
                    for _, stream, text in self.lines[seen:]:
                        if stream == "out" and text.startswith(prefix):
                            return text[len(prefix):]
                if now() >= deadline or not self.running():
                    raise AssertionError(_failure_text(
                        "%s: no answer to '%s' within %d s" % (
                            self.name, line, timeout), "", [self]))
                time.sleep(0.02)

    def reset_view(self):
        with self.lock:
            self.states = {}          # member -> latest state
            self.conns = {}           # peer -> True (up) / False
            self.unreachable = {}     # peer -> t of the last report
            self.member_events = []   # (t, member, state)
            self.conn_events = []     # (t, peer, "up"/"down"/"unreachable", why)
            self.last_answered = {}   # peer -> t
            self.failures = []        # (t, peer, reason)
            self.ready_at = None

    def on_line(self, t, text):
        m = _PREFIX.match(text)
        if not m or m.group(1) != self.name:
            return
        body = m.group(2)
        if body.startswith("request to "):
            r = _ANSWERED.match(body)
            if r:
                self.last_answered[r.group(1)] = t
                return
            r = _FAILED.match(body)
            if r:
                self.failures.append((t, r.group(1), r.group(2)))
            return
        if body.startswith("member"):
            r = _MEMBERS.match(body)
            if r:
                for x in r.group(1).split(", "):
                    x = x.strip()
                    if x and x not in self.states:
                        self.states[x] = "alive"
                        self.member_events.append((t, x, "alive"))
                return
            for rx, state in _EVENTS:
                r = rx.match(body)
                if r:
                    self.states[r.group(1)] = state
                    self.member_events.append((t, r.group(1), state))
                    return
            return
        if body.startswith("connect"):
            r = _CONNECTED.match(body)
            if r:
                self.conns[r.group(1)] = True
                self.unreachable.pop(r.group(1), None)
                self.conn_events.append((t, r.group(1), "up", ""))
                return
            r = _DOWN.match(body)
            if r:
                self.conns[r.group(1)] = False
                self.conn_events.append((t, r.group(1), "down", r.group(2)))
                return
            r = _UNREACHABLE.match(body)
            if r:
                self.unreachable[r.group(1)] = t
                self.conn_events.append((t, r.group(1), "unreachable",
                                         r.group(2) or ""))
            return
        if body.startswith("ready: "):
            self.ready_at = t

    # -- the view ---------------------------------------------------------

    def view(self):
        with self.lock:
            return dict(self.states)

    def state_of(self, member):
        with self.lock:
            return self.states.get(member)

    def conn_up(self, peer):
        with self.lock:
            return self.conns.get(peer, False)

    def events(self, state=None, member=None, since=0.0):
        with self.lock:
            return [(t, m, s) for t, m, s in self.member_events
                    if t > since and (state is None or s == state)
                    and (member is None or m == member)]


class GoPeer(Proc):
    """The Go memberlist peer (tests/system/gopeer): JSON lines out,
    commands in (tests/system/README.md)."""

    def __init__(self, lab, name, ip, join, profile, extra_flags):
        super().__init__(lab, name, ip)
        self.join = list(join)
        self.profile = profile
        self.extra_flags = list(extra_flags)
        self.cmd_lock = threading.Lock()
        self._cache = (0.0, {})

    @property
    def uid(self):
        """Its own uid: memberlist dials TCP without binding its address,
        so on lo the kernel picks the *destination* as the source address
        and a rule on addresses alone would not stop it; the lab marks its
        packets by owner (mangle OUTPUT -m owner) and drops them by mark
        on INPUT (dropping on OUTPUT would make sendto fail with EPERM,
        which memberlist does not treat as a failed probe)."""
        return GOPEER_UID_BASE + int(self.ip.rsplit(".", 1)[1])

    def argv(self):
        # setpriv execs in place (the pid stays the gopeer's); changing the
        # uid clears the parent-death signal, so it sets it again.
        a = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.uid,
             "--clear-groups", "--pdeathsig=KILL", "--",
             self.lab._gopeer_copy, "-name=" + self.name, "-bind=" + self.ip,
             "-port=%d" % GOSSIP_PORT, "-profile=" + self.profile,
             "-verbose=false"]
        if self.join:
            a.append("-join=" + ",".join(self.join))
        return a + self.extra_flags

    def start(self):
        self._spawn(self.argv(), stdin=True)
        return self

    def reset_view(self):
        with self.lock:
            self.states = {}
            self.member_events = []
            self.replies = []
            self.ready = None

    def on_line(self, t, text):
        try:
            ev = json.loads(text)
        except ValueError:
            return
        kind = ev.get("ev")
        if kind == "join" and ev.get("node") != self.name:
            self.states[ev["node"]] = "alive"
            self.member_events.append((t, ev["node"], "alive"))
        elif kind == "leave":
            st = ev.get("state", "dead")
            self.states[ev["node"]] = st
            self.member_events.append((t, ev["node"], st))
        elif kind == "reply":
            self.replies.append(ev)
        elif kind == "ready":
            self.ready = ev

    def command(self, line, timeout=10):
        """Sends a command; @returns its reply (a dict)."""
        with self.cmd_lock:
            with self.lock:
                seen = len(self.replies)
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
            deadline = now() + timeout
            while True:
                with self.lock:
                    if len(self.replies) > seen:
                        return self.replies[seen]
                if now() >= deadline or not self.running():
                    raise AssertionError(_failure_text(
                        "%s: no reply to '%s' within %d s" % (
                            self.name, line, timeout), "", [self]))
                time.sleep(0.02)

    def members(self):
        """{name: state} from the `members` command (its real node
        table, without itself)."""
        r = self.command("members")
        return {m["name"]: m["state"] for m in r.get("members", [])
                if m["name"] != self.name}

    def view(self):
        """The `members` table, asked at most every 0.5 s (the event view
        while paused or stopped)."""
        t, cached = self._cache
        if self.paused or not self.running():
            with self.lock:
                return dict(self.states)
        if now() - t >= 0.5:
            cached = self.members()
            self._cache = (now(), cached)
        return dict(cached)

    def state_of(self, member):
        return self.view().get(member)

    def conn_up(self, peer):
        return False

    def events(self, state=None, member=None, since=0.0):
        with self.lock:
            return [(t, m, s) for t, m, s in self.member_events
                    if t > since and (state is None or s == state)
                    and (member is None or m == member)]


class LoadClient(Proc):
    """mycel-load (tests/system/mycel_load): a client-only Mycel member
    writing a history of its operations; JSON lines out, commands in."""

    def __init__(self, lab, name, ip, binary, seeds, extra_flags):
        super().__init__(lab, name, ip)
        self.binary = binary
        self.seeds = list(seeds)
        self.extra_flags = list(extra_flags)
        self.cmd_lock = threading.Lock()
        self.history = os.path.join(lab.work, "%s.history" % name)

    def argv(self):
        a = [self.binary, "--name", self.name, "--gossip", self.gossip,
             "--quic", "%s:%d" % (self.ip, QUIC_PORT),
             "--data-dir", os.path.join(self.lab.work, "certs"),
             "--history", self.history]
        for x in self.seeds:
            a += ["--seed", x]
        return a + self.extra_flags

    def start(self):
        self._spawn(self.argv(), stdin=True)
        return self

    def reset_view(self):
        with self.lock:
            self.events_seen = []

    def on_line(self, t, text):
        try:
            ev = json.loads(text)
        except ValueError:
            return
        self.events_seen.append(ev)

    def command(self, line, ev, timeout=30):
        """Sends a command; @returns the next JSON line of kind `ev` (an
        `error` or `fatal` line fails)."""
        with self.cmd_lock:
            with self.lock:
                seen = len(self.events_seen)
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
            deadline = now() + timeout
            while True:
                with self.lock:
                    for e in self.events_seen[seen:]:
                        if e.get("ev") == ev:
                            return e
                        if e.get("ev") in ("error", "fatal"):
                            raise AssertionError(_failure_text(
                                "%s: '%s' failed: %s" % (self.name, line, e),
                                "", [self]))
                if now() >= deadline or not self.running():
                    raise AssertionError(_failure_text(
                        "%s: no '%s' answer to '%s' within %d s" % (
                            self.name, ev, line, timeout), "", [self]))
                time.sleep(0.02)

    def view(self):
        return {}

    def state_of(self, member):
        return None

    def conn_up(self, peer):
        return False

    def events(self, state=None, member=None, since=0.0):
        return []


# -- the lab ------------------------------------------------------------------


class Lab:
    """A network namespace with nodes in it. Use as a context manager."""

    _count = 0
    _live = []
    _hooks_installed = False

    def __init__(self, node_bin, gopeer_bin=None, keep_dir=None,
                 label="lab"):
        Lab._count += 1
        self.ns = "%s%d-%d" % (NS_PREFIX, os.getpid(), Lab._count)
        self.node_bin = node_bin
        self.gopeer_bin = gopeer_bin
        self.label = label
        self.keep_dir = keep_dir
        self.work = None
        self.nodes = []
        self.t0 = now()
        self._closed = False
        self._flaps = []
        self._stop_flaps = threading.Event()
        self._ipt_lock = threading.Lock()
        self.rules = []
        self._gopeer_copy = None
        self._marked = set()

    # -- life cycle -------------------------------------------------------

    def __enter__(self):
        preflight()
        _install_hooks()
        _reap_stale_namespaces()
        _reap_stale_work_dirs()
        self.work = tempfile.mkdtemp(prefix="%s%d-%s." % (
            NS_PREFIX, os.getpid(), self.label))
        Lab._live.append(self)
        _run(["ip", "netns", "add", self.ns])
        try:
            self.ns_run(["ip", "link", "set", "lo", "up"])
            self.ipt(["-N", CHAIN])
            self.ipt(["-I", "INPUT", "-j", CHAIN])
        except Exception:
            self.close()
            raise
        self.t0 = now()
        return self

    def __exit__(self, *exc):
        self.close(failed=exc[0] is not None)
        return False

    def close(self, failed=False):
        """Kills every process of the lab and deletes the namespace (with
        its rules). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_flaps.set()
        for t in self._flaps:
            t.join(timeout=5)
        for n in self.nodes:
            n._force_kill()
        try:
            _kill_namespace_processes(self.ns)
            _run(["ip", "netns", "del", self.ns], check=False)
            if self.keep_dir and self.work:
                os.makedirs(self.keep_dir, exist_ok=True)
                for n in self.nodes:
                    n.dump(os.path.join(self.keep_dir, "%s-%s.log" % (
                        self.label, n.name)))
        finally:
            if self.work:
                shutil.rmtree(self.work, ignore_errors=True)
            if self in Lab._live:
                Lab._live.remove(self)

    def rel(self, t):
        return "-" if t is None else "%.3f" % (t - self.t0)

    def ns_run(self, argv, check=True):
        return _run(["ip", "netns", "exec", self.ns] + argv, check=check)

    def ipt(self, args, check=True):
        with self._ipt_lock:
            return self.ns_run(["iptables", "-w"] + args, check=check)

    # -- processes --------------------------------------------------------

    def ip_of(self, k):
        return "127.0.0.%d" % k

    def start_node(self, name, ip, seeds=(), profile="lan", extra_flags=(),
                   demo=True, log_level="warn"):
        """Starts mycorrizal-node `name` on ip:7946 (QUIC ip:7947); seeds
        are nodes or "host:port" strings."""
        seeds = [s.gossip if isinstance(s, Proc) else s for s in seeds]
        n = Node(self, name, ip, seeds, profile, extra_flags, demo,
                 log_level)
        self.nodes.append(n)
        return n.start()

    def start_load(self, name, ip, binary, seeds=(), extra_flags=(),
                   ready_timeout=60):
        """Starts mycel-load `name` on ip:7946 and waits until it joined."""
        seeds = [s.gossip if isinstance(s, Proc) else s for s in seeds]
        c = LoadClient(self, name, ip, binary, seeds, extra_flags)
        self.nodes.append(c)
        c.start()
        wait_until(Cond("%s ready" % name, [c], lambda: (
            any(e.get("ev") == "ready" for e in c.events_seen),
            "no ready line")), ready_timeout)
        return c

    def start_gopeer(self, name, ip, join=(), profile="lan",
                     extra_flags=(), ready_timeout=20):
        if not self.gopeer_bin:
            raise RuntimeError("no gopeer binary given")
        join = [s.gossip if isinstance(s, Proc) else s for s in join]
        g = GoPeer(self, name, ip, join, profile, extra_flags)
        self._prepare_gopeer(g)
        self.nodes.append(g)
        g.start()
        wait_until(Cond("%s ready" % name, [g],
                        lambda: (g.ready is not None, "no ready line")),
                   ready_timeout)
        return g

    def _prepare_gopeer(self, g):
        """gopeer runs under its own uid (GoPeer.uid): a copy of the binary
        it can execute (the build tree may sit in a private home), and a
        mangle rule that marks its packets with its uid, once."""
        if self._gopeer_copy is None:
            d = os.path.join(self.work, "bin")
            os.makedirs(d, exist_ok=True)
            os.chmod(self.work, 0o711)
            os.chmod(d, 0o755)
            self._gopeer_copy = os.path.join(d, "gopeer")
            shutil.copy2(self.gopeer_bin, self._gopeer_copy)
            os.chmod(self._gopeer_copy, 0o755)
        if g.uid not in self._marked:
            self.ipt(["-t", "mangle", "-A", "OUTPUT", "-m", "owner",
                      "--uid-owner", str(g.uid), "-j", "MARK", "--set-mark",
                      str(g.uid)])
            self._marked.add(g.uid)

    def start_cluster(self, count, profile="lan", extra_flags=(),
                      seeds=3, first=1, prefix="n", demo=True):
        """Starts nodes prefix1..prefixN on 127.0.0.first.. ; each gets
        the first `seeds` nodes (other than itself) as seeds."""
        ips = [self.ip_of(first + i) for i in range(count)]
        seed_ips = ["%s:%d" % (ip, GOSSIP_PORT) for ip in ips[:seeds]]
        out = []
        for i in range(count):
            name = "%s%d" % (prefix, first + i)
            mine = [s for s in seed_ips if not s.startswith(ips[i] + ":")]
            out.append(self.start_node(name, ips[i], mine, profile,
                                       extra_flags, demo))
        return out

    def restart(self, node):
        """Starts a stopped or killed node again, same name and address."""
        if node.running():
            raise RuntimeError("%s is still running" % node.name)
        node.start()
        return node

    def check_processes(self):
        """Fails when a process of the lab exited that should run."""
        for n in self.nodes:
            if n.proc is not None and not n.expect_exit \
                    and n.proc.poll() is not None:
                n.expect_exit = True   # report it once
                n._join_readers()
                raise AssertionError(_failure_text(
                    "%s exited unexpectedly with status %s" % (
                        n.name, n.proc.returncode), "", [n], lines=40))

    # -- faults -----------------------------------------------------------

    def _ips(self, group):
        return [g.ip if isinstance(g, Proc) else g for g in group]

    def _gopeer_at(self, ip):
        for n in self.nodes:
            if isinstance(n, GoPeer) and n.ip == ip:
                return n
        return None

    def _add_rule(self, spec):
        self.ipt(["-A", CHAIN] + spec)
        self.rules.append(spec)

    def _drop(self, src, dst, action=("-j", "DROP")):
        """Drops src -> dst on INPUT, silently (a sender gets no error, as
        on a real network): by addresses, which covers every sender that
        binds its address (Mycorrizal's UDP, QUIC and TCP, memberlist's
        UDP), and for a gopeer sender also by the mark its uid's packets
        get (its TCP, whose source address the kernel picks)."""
        self._add_rule(["-s", src, "-d", dst] + list(action))
        g = self._gopeer_at(src)
        if g is not None:
            self._add_rule(["-m", "mark", "--mark", str(g.uid), "-d", dst]
                           + list(action))

    def partition(self, group_a, group_b):
        """Drops all traffic between the two groups, both directions."""
        for a in self._ips(group_a):
            for b in self._ips(group_b):
                self._drop(a, b)
                self._drop(b, a)

    def one_way(self, src, dst):
        """Drops what `src` sends to `dst` (not the other way)."""
        s, d = self._ips([src, dst])
        self._drop(s, d)

    def loss(self, probability, between=None):
        """Drops each packet with `probability`: all traffic in the
        namespace, or only between two groups ((A, B), both ways)."""
        stat = ["-m", "statistic", "--mode", "random", "--probability",
                "%.4f" % probability, "-j", "DROP"]
        if between is None:
            self._add_rule(stat)
            return
        for a in self._ips(between[0]):
            for b in self._ips(between[1]):
                self._drop(a, b, stat)
                self._drop(b, a, stat)

    def flap(self, a, b, period, duration):
        """A background thread that cuts the link a<->b for `period` s,
        restores it for `period` s, and so on, for `duration` s at most
        (or until heal/close). @returns the thread."""
        ia, ib = self._ips([a, b])
        specs = [["-s", ia, "-d", ib, "-j", "DROP"],
                 ["-s", ib, "-d", ia, "-j", "DROP"]]
        stop = self._stop_flaps
        end = now() + duration

        def run():
            cut = False
            try:
                while not stop.is_set() and now() < end:
                    for s in specs:
                        self.ipt(["-A" if not cut else "-D", CHAIN] + s,
                                 check=False)
                    cut = not cut
                    stop.wait(min(period, max(0.0, end - now())))
            finally:
                if cut:
                    for s in specs:
                        self.ipt(["-D", CHAIN] + s, check=False)
        t = threading.Thread(target=run, daemon=True)
        self._flaps.append(t)
        t.start()
        return t

    def dropped(self):
        """Packets dropped so far by the lab's rules in place (iptables
        counters; a rule removed by heal() or a flapping link takes its
        count with it)."""
        total = 0
        p = self.ipt(["-L", CHAIN, "-v", "-n", "-x"])
        for line in p.stdout.splitlines():
            f = line.split()
            if len(f) > 2 and f[0].isdigit() and f[2] == "DROP":
                total += int(f[0])
        return total

    def heal(self):
        """Removes every rule the lab added (stops flapping links).
        @returns the time (monotonic) the network healed."""
        self._stop_flaps.set()
        for t in self._flaps:
            t.join(timeout=10)
        self._flaps = []
        self._stop_flaps = threading.Event()
        self.ipt(["-F", CHAIN])
        self.rules = []
        return now()

    # -- reporting --------------------------------------------------------

    def log(self, text):
        print("[%8.3f %s] %s" % (now() - self.t0, self.label, text),
              flush=True)


def _close_all():
    for lab in list(Lab._live):
        try:
            lab.close()
        except Exception:
            pass


def _on_signal(signum, frame):
    # Turn SIGTERM/SIGHUP into an exception so every finally (and
    # Lab.__exit__) runs; atexit closes what is left.
    raise SystemExit(128 + signum)


def _install_hooks():
    if Lab._hooks_installed:
        return
    Lab._hooks_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _on_signal)
