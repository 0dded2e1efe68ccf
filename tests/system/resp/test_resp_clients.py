#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Redis front door (--resp) used by real clients and abused by bad
ones, against real mycorrizal-node processes.

ClusterClients: three nodes (127.0.0.100-102, --resp and --http on each,
the two others joining the first) and Debian's redis-server on 127.0.0.103
as the yardstick for error texts:

* test_redis_py_pipeline_across_nodes: python3-redis pipelines 10,000 SETs
  of distinct keys with binary values (\\x00 \\r\\n \\xff) through node A
  and reads all of them back through nodes B and C: every value equal.
* test_resp3_types: HELLO 3 on raw sockets to a node and to redis-server:
  GET (hit and miss), SET, MGET, INCR answer with the RESP3 types and the
  same bytes; through python3-redis too if it speaks RESP3 (5.0+).
* test_redis_cli_set_get: `redis-cli -h -p SET k v` then `GET k` through
  another node.
* test_redis_cli_pipe_mass_insert: `redis-cli --pipe` inserts 20,000 keys
  ("errors: 0, replies: 20000"); a sample checked with MGET on the others.
* test_garbage_*, test_bulk_length_over_512mb: bad bytes get the same
  protocol error bytes as redis-server 7.0 gives, and the connection is
  closed.
* test_declared_512mb_bulk_never_sent: a 512 MB bulk header and 32 MB of
  it: the node's RSS stays < +100 MB; the node's end of the connection
  goes once the client closes.
* test_half_request_then_close: the node keeps serving; the half SET did
  not happen.
* test_client_never_reads: GETs of a 100 KB value in a tight loop (1 GB
  of replies asked for), no reads: the node closes the client or stops
  reading it, its RSS grows less than max_output_buffer (64 MiB) + 1024
  (max_pipeline) replies + 48 MB (~212 MB), and PINGs of other clients
  are answered in < 1 s meanwhile.
* test_fin_after_commands: commands, then shutdown(SHUT_WR): every reply,
  then EOF.
* test_max_clients: skipped unless mycorrizal-node has a max-clients flag.

After each bad input, a fresh connection's PING must answer PONG.

TlsClients: one node on 127.0.0.107 with --resp-tls and certificates from
mycorrizal-certs: redis-cli --tls and python3-redis (ssl=True) with a client
certificate; without one, with one of another CA, plain RESP: refused, and
the node goes on serving.

AuthClients: one node on 127.0.0.104 with --requirepass-file, and
redis-server with the same requirepass on 127.0.0.105: NOAUTH before AUTH,
WRONGPASS for a wrong password (the same bytes as redis-server), python3-
redis's AuthenticationError, `redis-cli -a`.

Tests poll conditions until deadlines and, on failure, print what they saw
and the nodes' last lines. python3-redis is Debian's (tools/setup.sh); if
the running interpreter (e.g. pyenv's) does not see it, Debian's
dist-packages directory is appended to sys.path. Tests needing it or
redis-cli are skipped without them.

Usage:
    test_resp_clients.py --bin <build>/tools/mycorrizal-node \\
        [--keep-logs DIR] [ClusterClients.test_fin_after_commands ...]

Exits 77 (skipped) without redis-server.
"""

import argparse
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True

try:
    import redis  # noqa: F401
except ImportError:
    # Debian's python3-redis lives where /usr/bin/python3 looks; another
    # interpreter of the same version (pyenv's) can use it too.
    _deb = "/usr/lib/python3/dist-packages"
    if os.path.isdir(os.path.join(_deb, "redis")) and _deb not in sys.path:
        sys.path.append(_deb)
    try:
        import redis  # noqa: F401
    except ImportError:
        redis = None

CONFIG = {"bin": None, "keep": None}
SKIP = 77

CLUSTER_IPS = ["127.0.0.100", "127.0.0.101", "127.0.0.102"]
REDIS_IP = "127.0.0.103"
AUTH_IP = "127.0.0.104"
AUTH_REDIS_IP = "127.0.0.105"
MAXCLI_IP = "127.0.0.106"
TLS_IP = "127.0.0.107"

START_TIMEOUT = 30.0
FORM_TIMEOUT = 45.0
STOP_TIMEOUT = 20.0
MB = 1 << 20

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # pragma: no cover - best effort
        pass


def now():
    return time.monotonic()


def say(text):
    print(text, flush=True)


# -- processes ----------------------------------------------------------------


class Proc:
    """A child process whose output lines are kept with their times."""

    def __init__(self, name, argv, cwd):
        self.name = name
        self.argv = list(argv)
        self.lock = threading.Lock()
        self.lines = []
        self.t0 = now()
        self.expect_exit = False
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent, start_new_session=True)
        self.pid = self.proc.pid
        self._add("lab", "--- start: " + " ".join(self.argv))
        self._threads = []
        for stream, pipe in (("out", self.proc.stdout),
                             ("err", self.proc.stderr)):
            t = threading.Thread(target=self._reader, args=(stream, pipe),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _reader(self, stream, pipe):
        for raw in iter(pipe.readline, b""):
            self._add(stream, raw.decode(errors="replace").rstrip("\n"))
        pipe.close()

    def _add(self, stream, text):
        with self.lock:
            self.lines.append((now(), stream, text))

    def running(self):
        return self.proc.poll() is None

    def find(self, rx, stream="out"):
        with self.lock:
            for _, s, text in self.lines:
                if stream is None or s == stream:
                    m = rx.search(text)
                    if m:
                        return m
        return None

    def tail(self, n=25):
        with self.lock:
            last = self.lines[-n:]
        status = "running" if self.running() else "exited %s" % (
            self.proc.returncode,)
        out = ["--- %s (%s, pid %d), last %d lines:" % (
            self.name, status, self.pid, len(last))]
        for t, s, text in last:
            out.append("  %8.3f %s %s" % (t - self.t0, s, text))
        return "\n".join(out)

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Idempotent."""
        self.expect_exit = True
        if self.running():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._add("lab", "--- SIGKILL")
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)
        return self.proc.returncode

    def dump(self, path):
        with self.lock, open(path, "w") as f:
            for t, s, text in self.lines:
                f.write("%8.3f %s %s\n" % (t - self.t0, s, text))

    # /proc/<pid>/status figures, in bytes
    def status_kb(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    def rss(self):
        return self.status_kb("VmRSS")


def failure_text(headline, detail, procs, lines=25):
    out = [headline, "  seen: " + (detail or "-")]
    for p in procs:
        out.append(p.tail(lines))
    return "\n".join(out)


def wait_until(fn, timeout, what, procs=(), poll=0.05):
    """Polls fn() -> (ok, detail) until ok or the deadline."""
    t0 = now()
    deadline = t0 + timeout
    while True:
        try:
            ok, detail = fn()
        except Exception as e:
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        if ok:
            return now() - t0
        for p in procs:
            if not p.expect_exit and not p.running():
                raise AssertionError(failure_text(
                    "%s exited (status %s) while waiting for: %s" % (
                        p.name, p.proc.returncode, what), detail, procs, 40))
        if now() >= deadline:
            raise AssertionError(failure_text(
                "timed out after %.0f s waiting for: %s" % (timeout, what),
                detail, procs))
        time.sleep(poll)


_RESP_ON = re.compile(r"^\[([^\]]+)\] Redis protocol on (\S+):(\d+)$")
_HTTP_ON = re.compile(r"^\[([^\]]+)\] HTTP on (\S+)$")
_READY = re.compile(r"^\[([^\]]+)\] ready: gossip (\S+?),")


class Node(Proc):
    def __init__(self, name, ip, work, seeds=(), extra=()):
        self.ip = ip
        argv = [CONFIG["bin"], "--name", name, "--gossip", ip + ":0",
                "--profile", "local", "--data-dir",
                os.path.join(work, "certs"), "--log-level", "warn",
                "--cache", "storage", "--http", ip + ":0",
                "--resp", ip + ":0"]
        for s in seeds:
            argv += ["--seed", s]
        super().__init__(name, argv + list(extra), work)
        self.port = None
        self.http = None
        self.gossip = None

    def wait_started(self):
        def fn():
            r, h, g = (self.find(_RESP_ON), self.find(_HTTP_ON),
                       self.find(_READY))
            return (r and h and g) is not None, "resp %s http %s ready %s" % (
                bool(r), bool(h), bool(g))
        wait_until(fn, START_TIMEOUT, "%s prints its Redis, HTTP and ready "
                   "lines" % self.name, [self])
        self.port = int(self.find(_RESP_ON).group(3))
        self.http = self.find(_HTTP_ON).group(2)
        self.gossip = self.find(_READY).group(2)
        return self

    def status(self):
        with urllib.request.urlopen("http://%s/status" % self.http,
                                    timeout=5) as r:
            return json.loads(r.read())


class RedisServer(Proc):
    def __init__(self, ip, work, extra=()):
        self.ip = ip
        self.port = free_port(ip)
        d = os.path.join(work, "redis-%s" % ip)
        os.makedirs(d, exist_ok=True)
        super().__init__("redis-server@" + ip, [
            "redis-server", "--port", str(self.port), "--bind", ip,
            "--save", "", "--appendonly", "no", "--dir", d] + list(extra),
            work)

    def wait_started(self):
        def fn():
            s = socket.create_connection((self.ip, self.port), timeout=2)
            s.close()
            return True, ""
        wait_until(fn, START_TIMEOUT, "%s accepts" % self.name, [self])
        return self


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- the protocol -------------------------------------------------------------


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Reader:
    """Whole RESP2/RESP3 replies from a socket, as raw bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed; buffered %r" % self.buf[:200])
        self.buf += chunk

    def _line(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i
            self._fill()

    def _need(self, n):
        while len(self.buf) < n:
            self._fill()

    def _end(self, pos):
        self._need(pos + 1)
        t = self.buf[pos:pos + 1]
        end = self._line(pos)
        head = self.buf[pos + 1:end]
        after = end + 2
        if t in (b"+", b"-", b":", b"_", b",", b"#", b"("):
            return after
        if t in (b"$", b"=", b"!"):
            n = int(head)
            if n < 0:
                return after
            self._need(after + n + 2)
            return after + n + 2
        if t in (b"*", b"~", b">", b"%"):
            n = int(head)
            if n < 0:
                return after
            if t == b"%":
                n *= 2
            for _ in range(n):
                after = self._end(after)
            return after
        raise ValueError("not a reply at %d: %r" % (pos, self.buf[pos:][:200]))

    def reply(self):
        end = self._end(0)
        r, self.buf = self.buf[:end], self.buf[end:]
        return r

    def until_eof(self, timeout):
        """Everything up to EOF; raises socket.timeout if none comes."""
        self.sock.settimeout(timeout)
        out = self.buf
        self.buf = b""
        while True:
            c = self.sock.recv(1 << 20)
            if not c:
                return out
            out += c


def connect(host, port, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, Reader(s)


def exchange_until_close(host, port, data, timeout=10):
    """Sends `data`, @returns what comes back up to EOF (or
    b'...<no EOF within N s>' when the connection stays open)."""
    s, r = connect(host, port)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            return b"<send: %s>" % type(e).__name__.encode()
        try:
            return r.until_eof(timeout)
        except socket.timeout:
            return r.buf + b"<no EOF within %d s>" % timeout
        except ConnectionResetError:
            return b"<reset>"
    finally:
        s.close()


# -- TCP states from /proc/net/tcp --------------------------------------------

_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV",
               "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
               "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK",
               "0A": "LISTEN", "0B": "CLOSING"}


def _hexaddr(ip, port):
    return "%08X:%04X" % (int.from_bytes(socket.inet_aton(ip), "little"),
                          port)


def server_side_state(server, client_addr):
    """The state of the server's end of the connection from
    `client_addr` (ip, port), or None when it is gone."""
    local = _hexaddr(server[0], server[1])
    remote = _hexaddr(client_addr[0], client_addr[1])
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == local and parts[2] == remote:
                return _TCP_STATES.get(parts[3], parts[3])
    return None


# -- the tests ----------------------------------------------------------------


def need_redis_py(test):
    if redis is None:
        test.skipTest("python3-redis is not installed (tools/setup.sh "
                      "installs it: apt-get install python3-redis)")


def need_tool(test, tool):
    if shutil.which(tool) is None:
        test.skipTest("%s not found (redis-tools)" % tool)


class Base(unittest.TestCase):
    procs = []

    @classmethod
    def _cleanup_class(cls):
        for p in reversed(cls.procs):
            p.stop()
        if CONFIG["keep"]:
            d = os.path.join(CONFIG["keep"], cls.__name__)
            os.makedirs(d, exist_ok=True)
            for p in cls.procs:
                p.dump(os.path.join(d, "%s.log" % p.name))
        shutil.rmtree(cls.work, ignore_errors=True)

    def nodes_tail(self):
        return "\n".join(p.tail(15) for p in self.procs)

    def assert_serves(self, node, after):
        """A fresh connection's PING answers PONG; the node runs."""
        self.assertTrue(node.running(), failure_text(
            "%s died after %s" % (node.name, after), "", [node], 40))
        s, r = connect(node.ip, node.port, timeout=5)
        try:
            t0 = now()
            s.sendall(encode("PING"))
            got = r.reply()
            took = now() - t0
        finally:
            s.close()
        self.assertEqual(got, b"+PONG\r\n", failure_text(
            "%s: PING after %s" % (node.name, after), repr(got), [node]))
        return took


class ClusterClients(Base):

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="resp-clients-")
        cls.procs = []
        try:
            t0 = now()
            a = Node("rc-a", CLUSTER_IPS[0], cls.work)
            cls.procs.append(a)
            a.wait_started()
            for name, ip in (("rc-b", CLUSTER_IPS[1]),
                             ("rc-c", CLUSTER_IPS[2])):
                cls.procs.append(Node(name, ip, cls.work, seeds=[a.gossip]))
            cls.redis = RedisServer(REDIS_IP, cls.work)
            cls.procs.append(cls.redis)
            cls.nodes = [p for p in cls.procs if isinstance(p, Node)]
            for n in cls.nodes:
                n.wait_started()
            cls.redis.wait_started()
            want = sorted(n.name for n in cls.nodes)

            def formed():
                seen = {}
                ok = True
                for n in cls.nodes:
                    s = n.status()
                    alive = sorted(m["name"] for m in s["members"]
                                   if m["state"] == "alive")
                    seen[n.name] = alive
                    ok = ok and alive == want
                return ok, json.dumps(seen)
            wait_until(formed, FORM_TIMEOUT, "every node sees %s alive"
                       % want, cls.nodes)
            say("cluster formed in %.1f s: %s" % (now() - t0, ", ".join(
                "%s resp %s:%d" % (n.name, n.ip, n.port) for n in cls.nodes)))
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cleanup_class()

    @property
    def a(self):
        return self.nodes[0]

    # -- clients ----------------------------------------------------------

    def test_redis_py_pipeline_across_nodes(self):
        need_redis_py(self)
        n = 10_000
        keys = ["pipe:%05d" % i for i in range(n)]
        values = [b"\x00\r\n\xff" + b"%d" % i + b"\r\n" + bytes([i % 256])
                  + b"\x00" for i in range(n)]
        clients = [redis.Redis(host=x.ip, port=x.port, socket_timeout=60)
                   for x in self.nodes]
        try:
            t0 = now()
            p = clients[0].pipeline(transaction=False)
            for k, v in zip(keys, values):
                p.set(k, v)
            res = p.execute()
            t_set = now() - t0
            bad = [(keys[i], r) for i, r in enumerate(res) if r is not True]
            self.assertEqual(len(res), n)
            self.assertFalse(bad, "SETs through %s not OK (%d): %r" % (
                self.a.name, len(bad), bad[:10]))
            for c, node in zip(clients[1:], self.nodes[1:]):
                t0 = now()
                p = c.pipeline(transaction=False)
                for k in keys:
                    p.get(k)
                got = p.execute()
                took = now() - t0
                self.assertEqual(len(got), n)
                diff = [(keys[i], values[i], g) for i, g in enumerate(got)
                        if g != values[i]]
                self.assertFalse(diff, "%s: %d of %d values differ, e.g. "
                                 "(key, wrote, read): %r\n%s" % (
                                     node.name, len(diff), n, diff[:5],
                                     self.nodes_tail()))
                say("%d SETs through %s in %.2f s; %d GETs through %s in "
                    "%.2f s, all equal" % (n, self.a.name, t_set, n,
                                           node.name, took))
        finally:
            for c in clients:
                c.close()

    def test_rename_copy_move_across_owners(self):
        """RENAME, COPY and MOVE between keys that live on different
        owners, through one node, read back through another: values and
        TTLs arrive, sources go (RENAME, MOVE) or stay (COPY)."""
        need_redis_py(self)
        a = redis.Redis(host=self.a.ip, port=self.a.port, socket_timeout=30)
        c = redis.Redis(host=self.nodes[2].ip, port=self.nodes[2].port,
                        socket_timeout=30)
        c1 = redis.Redis(host=self.nodes[2].ip, port=self.nodes[2].port,
                         db=1, socket_timeout=30)
        n = 60
        try:
            src = ["rcm:src:%d" % i for i in range(n)]
            for i, k in enumerate(src):
                a.set(k, b"v\x00%d" % i, ex=1000 if i % 2 else None)
            for i, k in enumerate(src):
                if i % 3 == 0:
                    self.assertTrue(a.rename(k, "rcm:ren:%d" % i))
                elif i % 3 == 1:
                    self.assertTrue(a.copy(k, "rcm:cpy:%d" % i))
                else:
                    self.assertTrue(a.move(k, 1))

            def check():
                bad = []
                for i, k in enumerate(src):
                    want = b"v\x00%d" % i
                    if i % 3 == 0:
                        dst, gone = ("rcm:ren:%d" % i, c), True
                    elif i % 3 == 1:
                        dst, gone = ("rcm:cpy:%d" % i, c), False
                    else:
                        dst, gone = (k, c1), True
                    name, conn = dst
                    got = conn.get(name)
                    ttl = conn.ttl(name)
                    src_there = c.exists(k) == 1
                    if (got != want or (ttl > 0) != bool(i % 2)
                            or src_there == gone):
                        bad.append((i, got, ttl, src_there))
                return not bad, "%d of %d differ, e.g. %r" % (
                    len(bad), n, bad[:4])
            wait_until(check, 15, "renamed, copied and moved keys read "
                       "through %s" % self.nodes[2].name, self.nodes)
        finally:
            for x in (a, c, c1):
                x.close()

    def test_redis_py_transactional_pipeline(self):
        """redis-py's default pipeline wraps its commands in MULTI/EXEC:
        the replies come back as EXEC's array, in order, errors of single
        commands included, and the writes are seen from another node."""
        need_redis_py(self)
        a = redis.Redis(host=self.a.ip, port=self.a.port, socket_timeout=30)
        b = redis.Redis(host=self.nodes[2].ip, port=self.nodes[2].port,
                        socket_timeout=30)
        try:
            a.delete("tx:n", "tx:s", "tx:x")
            p = a.pipeline()  # transaction=True
            for i in range(200):
                p.incr("tx:n")
            p.set("tx:s", b"\x00bin\r\n")
            p.append("tx:s", b"!")
            p.get("tx:s")
            p.set("tx:x", "not a number")
            p.incr("tx:x")
            p.get("tx:x")
            got = p.execute(raise_on_error=False)
            self.assertEqual(got[:200], list(range(1, 201)))
            self.assertEqual(got[200:203], [True, 7, b"\x00bin\r\n!"])
            self.assertIs(got[203], True)
            self.assertIsInstance(got[204], redis.exceptions.ResponseError)
            self.assertEqual(got[205], b"not a number")
            wait_until(lambda: (b.get("tx:n") == b"200",
                                "tx:n on %s: %r" % (self.nodes[2].name,
                                                    b.get("tx:n"))),
                       10, "the transaction's writes seen from another node",
                       self.nodes)
            # A command refused while queued aborts the whole transaction.
            p = a.pipeline()
            p.set("tx:n", 1)
            p.execute_command("GET")  # wrong arity: refused when queued
            with self.assertRaises(redis.exceptions.ResponseError) as e:
                p.execute()
            self.assertIn("wrong number of arguments", str(e.exception))
            self.assertEqual(a.get("tx:n"), b"200", "an aborted "
                             "transaction's SET took effect")
        finally:
            a.close()
            b.close()

    def test_resp3_types(self):
        """HELLO 3: the node's replies have the RESP3 types and redis-
        server's bytes."""
        seq = [("SET", "r3:k", "v\x00"), ("GET", "r3:k"),
               ("GET", "r3:missing"), ("MGET", "r3:k", "r3:missing"),
               ("DEL", "r3:n"), ("INCR", "r3:n"), ("INCRBY", "r3:n", "41"),
               ("GET", "r3:n"), ("SET", "r3:k", "w", "GET"),
               ("DEL", "r3:k", "r3:n")]
        expected = [b"+OK\r\n", b"$2\r\nv\x00\r\n", b"_\r\n",
                    b"*2\r\n$2\r\nv\x00\r\n_\r\n", None, b":1\r\n",
                    b":42\r\n", b"$2\r\n42\r\n", b"$2\r\nv\x00\r\n",
                    b":2\r\n"]

        def run(host, port):
            s, r = connect(host, port)
            with s:
                s.sendall(encode("HELLO", "3"))
                hello = r.reply()
                self.assertTrue(hello.startswith(b"%"), "HELLO 3 on %s:%d: "
                                "%r" % (host, port, hello[:200]))
                s.sendall(b"".join(encode(*c) for c in seq))
                return [r.reply() for _ in seq]
        srv = run(self.redis.ip, self.redis.port)
        got = run(self.a.ip, self.a.port)
        for cmd, e, g, w in zip(seq, expected, got, srv):
            self.assertEqual(g, w, "%r: redis-server %r, mycorrizal-node "
                             "%r" % (cmd, w, g))
            if e is not None:
                self.assertEqual(g, e, "%r" % (cmd,))

        # A value written through A, read through B on RESP3.
        s, r = connect(self.a.ip, self.a.port)
        with s:
            s.sendall(encode("HELLO", "3") + encode("SET", "r3:x", "1"))
            r.reply()
            self.assertEqual(r.reply(), b"+OK\r\n")
        s, r = connect(self.nodes[1].ip, self.nodes[1].port)
        with s:
            s.sendall(encode("HELLO", "3") + encode("INCR", "r3:x")
                      + encode("MGET", "r3:x", "r3:none")
                      + encode("DEL", "r3:x"))
            r.reply()
            self.assertEqual([r.reply() for _ in range(3)],
                             [b":2\r\n", b"*2\r\n$1\r\n2\r\n_\r\n", b":1\r\n"])

        if redis is None:
            say("RESP3 through python3-redis: skipped (not installed)")
            return
        try:
            c = redis.Redis(host=self.a.ip, port=self.a.port, protocol=3)
        except TypeError:
            say("RESP3 through python3-redis %s: not supported (protocol= "
                "needs 5.0); checked on raw sockets only" % redis.__version__)
            return
        with c:
            self.assertIs(c.set("r3:py", b"\xff\x00"), True)
            self.assertEqual(c.get("r3:py"), b"\xff\x00")
            self.assertIsNone(c.get("r3:py-missing"))
            self.assertEqual(c.mget("r3:py", "r3:py-missing"),
                             [b"\xff\x00", None])
            self.assertEqual(c.incr("r3:pyn"), 1)
            self.assertIsInstance(c.incr("r3:pyn"), int)
            c.delete("r3:py", "r3:pyn")
        say("RESP3 through python3-redis %s: typed answers" %
            redis.__version__)

    def redis_cli(self, node, *args, stdin=None, timeout=60):
        need_tool(self, "redis-cli")
        p = subprocess.run(["redis-cli", "-h", node.ip, "-p", str(node.port)]
                           + list(args), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p

    def test_memory_usage_and_used_memory(self):
        """MEMORY USAGE (what redis-cli --memkeys asks): the bytes an owner
        counts for the entry; INFO's used_memory (redis-cli --stat,
        exporters): the allocator's bytes in use."""
        c = redis.Redis(host=self.a.ip, port=self.a.port)
        c.set("mem:k", b"v" * 1000)
        usage = c.memory_usage("mem:k")
        self.assertIsInstance(usage, int)
        self.assertGreaterEqual(usage, len("mem:k") + 1000)
        self.assertLess(usage, len("mem:k") + 1000 + 1024)
        self.assertIsNone(c.memory_usage("mem:missing"))
        # Through another node: the same count (each owner counts alike).
        other = redis.Redis(host=self.nodes[1].ip, port=self.nodes[1].port)
        self.assertEqual(other.memory_usage("mem:k"), usage)
        info = c.info("memory")
        self.assertGreater(info["used_memory"], 0)
        self.assertGreaterEqual(info["used_memory_rss"], 0)
        c.delete("mem:k")

    def test_time_has_microseconds(self):
        """TIME: the wall clock's seconds and microseconds (not whole
        milliseconds), as redis-server gives them."""
        c = redis.Redis(host=self.a.ip, port=self.a.port)
        seen = []
        for _ in range(20):
            before = time.time()
            sec, usec = c.time()
            after = time.time()
            seen.append((sec, usec))
            t = sec + usec / 1e6
            self.assertTrue(0 <= usec < 1000000, seen)
            # The node's clock is the machine's; 1 s of slack for the
            # actor clock's anchor.
            self.assertLess(abs(t - (before + after) / 2), 1.0, seen)
        self.assertTrue(any(usec % 1000 != 0 for _, usec in seen),
                        "every microsecond count is a whole millisecond: %r"
                        % seen)

    def test_bucket_administration(self):
        """MYCEL.BUCKET creates a bucket cluster-wide through one node;
        the others list and describe it, MYCEL.USE reaches it from any
        node, DROP removes it everywhere."""
        a, b, c = self.nodes

        def call(node, *args):
            s, r = connect(node.ip, node.port)
            with s:
                s.sendall(b"".join(encode(*x) for x in args))
                return [r.reply() for _ in args]

        got = call(a, ("MYCEL.BUCKET", "CREATE", "admin-b", "RF", "3",
                       "PARTITIONS", "61", "ACK", "ALL", "TTL", "600000"),
                   ("MYCEL.BUCKET", "CREATE", "admin-b", "RF", "2"),
                   ("MYCEL.BUCKET", "CREATE", "admin-c", "RF", "x"),
                   ("MYCEL.BUCKET", "NOSUCH"))
        self.assertEqual(got[0], b":1\r\n", got)
        self.assertTrue(got[1].startswith(b"-ERR bucket admin-b exists"), got)
        self.assertEqual(got[2], b"-ERR value is not an integer or out of "
                         b"range\r\n", got)
        self.assertTrue(got[3].startswith(b"-ERR unknown subcommand"), got)

        def listed(node, want):
            def fn():
                names = call(node, ("MYCEL.BUCKET", "LIST"))[0]
                return (b"admin-b" in names) == want, names
            return fn
        for n in (b, c):
            wait_until(listed(n, True), 20, "%s lists admin-b" % n.name,
                       self.nodes)
        info = call(c, ("MYCEL.BUCKET", "INFO", "admin-b"))[0]
        for part in (b"$2\r\nrf\r\n:3\r\n", b"$10\r\npartitions\r\n:61",
                     b"$3\r\nttl\r\n:600000"):
            self.assertIn(part, info)
        got = call(b, ("MYCEL.USE", "admin-b"), ("SET", "k", "v"),
                   ("TTL", "k"), ("SELECT", "0"), ("EXISTS", "k"))
        self.assertEqual(got[:2], [b"+OK\r\n", b"+OK\r\n"], got)
        self.assertIn(got[2], (b":600\r\n", b":599\r\n"),
                      "the bucket's default TTL: %r" % got)
        self.assertEqual(got[4], b":0\r\n", "db0 is another bucket")
        got = call(c, ("MYCEL.USE", "admin-b"), ("GET", "k"))
        self.assertEqual(got[1], b"$1\r\nv\r\n", got)
        self.assertEqual(call(a, ("MYCEL.BUCKET", "DROP", "admin-b"))[0],
                         b":1\r\n")
        for n in (b, c):
            wait_until(listed(n, False), 20, "%s forgets admin-b" % n.name,
                       self.nodes)

    def test_flushdb_is_in_force_on_every_node_once_it_answers(self):
        """FLUSHDB's +OK on one node means that no node serves the old
        data: a write through one node, FLUSHDB through a second, then at
        once a read and a SETNX through the third see an empty database,
        as one redis-server would. (The drop used to reach the other nodes
        after the reply: they still answered from the dropped bucket.)"""
        conns = [connect(n.ip, n.port, timeout=60) for n in self.nodes]

        def call(k, *args):
            s, r = conns[k]
            s.sendall(b"".join(encode(*x) for x in args))
            return [r.reply() for _ in args]

        try:
            for k in range(3):
                self.assertEqual(call(k, ("SELECT", "9")), [b"+OK\r\n"])
            seen = []
            for i in range(30):
                key = "flushed:%d" % i
                a, b, c = i % 3, (i + 1) % 3, (i + 2) % 3
                got = (call(a, ("SET", key, "v%d" % i)),
                       call(b, ("FLUSHDB",)),
                       call(c, ("GET", key), ("SETNX", key, "new"),
                            ("GET", key)))
                seen.append(got)
                self.assertEqual(got[:2], ([b"+OK\r\n"], [b"+OK\r\n"]),
                                 seen)
                self.assertEqual(got[2], [b"$-1\r\n", b":1\r\n",
                                          b"$3\r\nnew\r\n"],
                                 "round %d (set on %s, flushed on %s, read on"
                                 " %s): %r" % (i, self.nodes[a].name,
                                               self.nodes[b].name,
                                               self.nodes[c].name, seen[-3:]))
        finally:
            for s, _ in conns:
                s.close()

    def test_pipelined_writes_while_flushdb_drops_the_bucket(self):
        """FLUSHDB drops the database's bucket while another client's
        pipelined SETs are on their way to it: what the database holds
        afterwards is only keys of those SETs with their own values (an
        operation that reached the ended bucket, here or at a remote owner,
        goes again, and it is the operation that was sent), and every SET
        answers +OK."""
        db, rounds, n = 7, 6, 600
        writer, wr = connect(self.a.ip, self.a.port, timeout=60)
        flusher, fr = connect(self.a.ip, self.a.port, timeout=60)
        try:
            for s, r in ((writer, wr), (flusher, fr)):
                s.sendall(encode("SELECT", db))
                self.assertEqual(r.reply(), b"+OK\r\n")
            for rnd in range(rounds):
                keys = ["flush:%d:%04d" % (rnd, i) for i in range(n)]
                vals = ["v%d:%04d:%s" % (rnd, i, "x" * (i % 50))
                        for i in range(n)]
                cmds = [encode("SET", k, v) for k, v in zip(keys, vals)]
                # Half of the pipeline, the drop, the other half: batches
                # are in flight on both sides of it.
                writer.sendall(b"".join(cmds[:n // 2]))
                flusher.sendall(encode("FLUSHDB"))
                writer.sendall(b"".join(cmds[n // 2:]))
                got = [wr.reply() for _ in range(n)]
                self.assertEqual(fr.reply(), b"+OK\r\n")
                bad = [(keys[i], g) for i, g in enumerate(got)
                       if g != b"+OK\r\n"]
                self.assertFalse(bad, "round %d: SETs not OK (%d): %r\n%s"
                                 % (rnd, len(bad), bad[:5],
                                    self.nodes_tail()))
                writer.sendall(b"".join(encode("GET", k) for k in keys))
                read = [wr.reply() for _ in keys]
                wrong = [(keys[i], vals[i], g) for i, g in enumerate(read)
                         if g != b"$-1\r\n" and g != b"$%d\r\n%s\r\n" % (
                             len(vals[i]), vals[i].encode())]
                self.assertFalse(wrong, "round %d: %d keys hold another "
                                 "value, e.g. (key, wrote, read): %r" % (
                                     rnd, len(wrong), wrong[:5]))
                writer.sendall(encode("KEYS", "*"))
                listed = wr.reply().split(b"\r\n")[:-1][2::2]
                mine = set(k.encode() for k in keys)
                strays = [k for k in listed if k not in mine]
                self.assertFalse(strays, "round %d: keys nobody wrote after "
                                 "the drop: %r" % (rnd, strays[:10]))
        finally:
            writer.close()
            flusher.close()

    def test_a_connection_keeps_its_order_when_its_bucket_is_dropped(self):
        """A connection whose database's bucket another client drops
        (MYCEL.BUCKET DROP) gets it back with the defaults on its next
        commands, and its pipelined commands take effect in the order it
        sent them: the first ones meet the ended bucket and go again, and
        those behind them wait for them. (Each used to go again on its own
        and end with unknown_bucket; the GETs could pass the SETs.)"""
        db = 12
        user, ur = connect(self.a.ip, self.a.port, timeout=60)
        admin, ar = connect(self.nodes[1].ip, self.nodes[1].port, timeout=60)
        try:
            user.sendall(encode("SELECT", db) + encode("SET", "before", "1"))
            self.assertEqual([ur.reply(), ur.reply()], [b"+OK\r\n"] * 2)
            for rnd in range(2):
                admin.sendall(encode("MYCEL.BUCKET", "DROP", "db%d" % db))
                self.assertEqual(ar.reply(), b":1\r\n", self.nodes_tail())
                first = [("SET", "k", "v1"), ("GET", "k"), ("INCR", "n")]
                then = [("SET", "k", "v2"), ("INCR", "n"), ("GET", "k"),
                        ("GET", "before"), ("DEL", "k", "n")]
                # In two writes: two reads, two rounds for the node.
                user.sendall(b"".join(encode(*c) for c in first))
                user.sendall(b"".join(encode(*c) for c in then))
                t0 = now()
                got = [ur.reply() for _ in first + then]
                say("round %d took %.2f s" % (rnd, now() - t0))
                self.assertEqual(got, [b"+OK\r\n", b"$2\r\nv1\r\n",
                                       b":1\r\n", b"+OK\r\n", b":2\r\n",
                                       b"$2\r\nv2\r\n", b"$-1\r\n",
                                       b":2\r\n"],
                                 "round %d\n%s" % (rnd, self.nodes_tail()))
        finally:
            user.close()
            admin.close()

    def test_pipelined_incrs_meeting_a_flushdb_count_once(self):
        """A pipeline of INCRs that a FLUSHDB through another node meets
        half-way: every INCR takes effect at most once. Per key the
        answered counts rise by at most the INCRs sent between them, or
        start again (at most the INCRs since) once, at the flush; an error
        (the INCR met the dropped bucket) may or may not have counted.
        (The new bucket used to take the old one's streams: an INCR the
        old one had forwarded counted there, and again when the client's
        node sent it a second time: 60 INCRs on a new key answered 61 to
        120 in about 1 trial of 13.)"""
        db, trials, keys, per_key = 13, 40, 5, 40
        rnd = random.Random(13)
        flusher, fr = connect(self.nodes[1].ip, self.nodes[1].port,
                              timeout=60)
        bad, errors, flushed_mid, first_error = [], 0, 0, None
        try:
            flusher.sendall(encode("SELECT", db))
            self.assertEqual(fr.reply(), b"+OK\r\n")
            for t in range(trials):
                node = self.nodes[(t % 2) * 2]  # rc-a or rc-c
                user, ur = connect(node.ip, node.port, timeout=60)
                with user:
                    user.sendall(encode("SELECT", db))
                    self.assertEqual(ur.reply(), b"+OK\r\n")
                    names = ["once:%d:%d" % (t, k) for k in range(keys)]
                    order = [names[i % keys] for i in range(keys * per_key)]
                    cmds = [encode("INCR", k) for k in order]
                    # Half, the flush through another node, the rest: the
                    # flush meets batches on their way.
                    half = len(cmds) // 2
                    user.sendall(b"".join(cmds[:half]))
                    flusher.sendall(encode("FLUSHDB"))
                    threading.Event().wait(rnd.uniform(0, 0.004))
                    user.sendall(b"".join(cmds[half:]))
                    got = [ur.reply() for _ in order]
                    self.assertEqual(fr.reply(), b"+OK\r\n")
                sent = {k: 0 for k in names}
                last = {k: (0, 0) for k in names}  # (value, INCRs sent)
                restarted = {k: False for k in names}
                for k, g in zip(order, got):
                    sent[k] += 1
                    if g.startswith(b"-"):
                        errors += 1
                        first_error = first_error or g
                        continue
                    v = int(g[1:])
                    pv, ps = last[k]
                    if pv < v <= pv + (sent[k] - ps):
                        pass
                    elif not restarted[k] and 1 <= v <= sent[k] - ps:
                        restarted[k] = True
                        flushed_mid += 1
                    else:
                        bad.append((t, k, "INCR #%d answered %d after %d "
                                    "at #%d" % (sent[k], v, pv, ps)))
                    last[k] = (v, sent[k])
        finally:
            flusher.close()
        say("%d trials of %d pipelined INCRs with a FLUSHDB: %d restarts "
            "seen, %d errors (%r)" % (trials, keys * per_key, flushed_mid,
                                      errors, first_error))
        self.assertFalse(bad, "INCRs counted more than once: %r\n%s"
                         % (bad[:10], self.nodes_tail()))

    def test_redis_cli_set_get(self):
        p = self.redis_cli(self.a, "SET", "cli:k", "hello world")
        self.assertEqual((p.returncode, p.stdout), (0, b"OK\n"), p)
        p = self.redis_cli(self.nodes[2], "GET", "cli:k")
        self.assertEqual((p.returncode, p.stdout), (0, b"hello world\n"), p)
        p = self.redis_cli(self.nodes[1], "GET", "cli:nokey")
        self.assertEqual((p.returncode, p.stdout), (0, b"\n"), p)
        p = self.redis_cli(self.nodes[1], "INCR", "cli:k")
        self.assertEqual(p.stdout, b"ERR value is not an integer or out of "
                         b"range\n\n", p)

    def test_redis_cli_pipe_mass_insert(self):
        n = 20_000
        data = b"".join(encode("SET", "mass:%05d" % i, "v%d\r\n\x00" % i)
                        for i in range(n))
        # redis-cli gives up when no reply came for --pipe-timeout (30 s by
        # default) after it sent everything. The unoptimised ASan build
        # takes 20-25 s for these 20,000 writes on 2 cores (the release
        # build 1.3 s), more on a slower machine: the limit here is ours.
        limit = 300 if os.environ.get("ASAN_OPTIONS") is not None else 90
        t0 = now()
        p = self.redis_cli(self.a, "--pipe", "--pipe-timeout", str(limit),
                           stdin=data, timeout=limit + 30)
        took = now() - t0
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "redis-cli --pipe: status %d\n%s"
                         "\n%s" % (p.returncode, out, p.stderr))
        self.assertIn("errors: 0, replies: %d" % n, out,
                      "redis-cli --pipe said:\n%s\n%s\n%s" % (
                          out, p.stderr.decode(errors="replace"),
                          self.nodes_tail()))
        say("redis-cli --pipe: %d keys in %.2f s" % (n, took))
        rnd = random.Random(5)
        sample = sorted(rnd.sample(range(n), 200))
        for node in self.nodes[1:]:
            c_s, c_r = connect(node.ip, node.port)
            with c_s:
                c_s.sendall(encode("MGET", *["mass:%05d" % i
                                             for i in sample]))
                got = c_r.reply()
            want = b"*%d\r\n" % len(sample) + b"".join(
                b"$%d\r\n%s\r\n" % (len(v), v) for v in
                (b"v%d\r\n\x00" % i for i in sample))
            self.assertEqual(got, want, "MGET of %d sampled keys through %s"
                             % (len(sample), node.name))

    # -- bad input --------------------------------------------------------

    def compare_garbage(self, name, data):
        want = exchange_until_close(self.redis.ip, self.redis.port, data)
        got = exchange_until_close(self.a.ip, self.a.port, data)
        say("%s: redis-server %r, mycorrizal-node %r" % (
            name, want[:100], got[:100]))
        self.assertTrue(want.startswith(b"-ERR Protocol error: "),
                        "redis-server answered %r" % want[:200])
        self.assertEqual(got, want, failure_text(
            "%s (%d bytes, %r...): replies differ" % (name, len(data),
                                                      data[:40]),
            "redis-server %r\n  mycorrizal-node %r" % (want[:300], got[:300]),
            [self.a]))
        self.assert_serves(self.a, name)

    def test_garbage_multibulk(self):
        self.compare_garbage("*abc", b"*abc\r\n")

    def test_garbage_random_binary(self):
        rnd = random.Random(1234)
        raw = bytes(rnd.randrange(256) for _ in range(100_000))
        # Random bytes without a line end: Redis's "too big inline request".
        # 70,000 bytes: over Redis's 64 KiB inline limit, and all of them
        # read before it answers (more would make its close a reset).
        inline = b"\x01" + raw.replace(b"\n", b"")[1:70_000]
        self.compare_garbage("random inline (no LF)", inline)
        # A multibulk count that is random bytes.
        # (No NUL: Redis looks for the CR with strchr and would wait.)
        cnt = bytes(b for b in raw[:300] if b not in b"\r\n\x00")
        self.compare_garbage("random multibulk count",
                             b"*" + cnt + b"\r\n")
        # A bulk length that is random bytes.
        self.compare_garbage("random bulk length",
                             b"*2\r\n$" + cnt + b"\r\n")
        # A random byte where '$' belongs.
        self.compare_garbage("no '$'", b"*1\r\n" + bytes([rnd.choice(
            [b for b in range(33, 127) if b != ord("$")])]) + b"\r\n")
        # (No NUL: Redis finds the line end with strchr.)
        self.compare_garbage("unbalanced quotes",
                             b'SET "a' + cnt[:50] + b'\r\n')

    def test_bulk_length_over_512mb(self):
        self.compare_garbage("$536870913", b"*1\r\n$536870913\r\n")

    def rss_watch(self, node):
        """A thread sampling `node`'s VmRSS every 20 ms; @returns
        (stop(), samples)."""
        samples = []
        halt = threading.Event()

        def run():
            while not halt.is_set():
                try:
                    samples.append(node.rss())
                except (OSError, KeyError):
                    return
                halt.wait(0.02)
        t = threading.Thread(target=run, daemon=True)
        t.start()

        def stop():
            halt.set()
            t.join()
            return max(samples) if samples else 0
        return stop, samples

    def test_declared_512mb_bulk_never_sent(self):
        node = self.a
        base = node.rss()
        hwm0 = node.status_kb("VmHWM")
        vm0 = node.status_kb("VmSize")
        stop, _ = self.rss_watch(node)
        s, _ = connect(node.ip, node.port)
        client = s.getsockname()
        sent = 0
        try:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$6\r\nbig512\r\n"
                      b"$536870912\r\n")
            chunk = b"\xab" * MB
            # 32 MB: more than the socket buffers, so the node must read
            # most of it.
            for _ in range(32):
                s.sendall(chunk)
                sent += len(chunk)
            state = server_side_state((node.ip, node.port), client)
            peak = stop()
            hwm1 = node.status_kb("VmHWM")
            if hwm1 > hwm0:
                peak = max(peak, hwm1)
            vm1 = node.status_kb("VmSize")
        finally:
            stop()
            s.close()
        say("declared 512 MB bulk, sent %d MB: RSS %.1f MB -> peak %.1f MB "
            "(+%.1f MB); VmSize +%.1f MB; the node's end %s" % (
                sent // MB, base / MB, peak / MB, (peak - base) / MB,
                (vm1 - vm0) / MB, state))
        self.assertEqual(state, "ESTABLISHED")
        # What came, in the input buffer and on its way there, and the
        # allocator's slack; not the 512 MB declared.
        bound = 100 * MB
        if os.environ.get("ASAN_OPTIONS") is not None:
            # AddressSanitizer keeps freed memory in its quarantine (256 MB
            # by default) before reusing it: every read's chunk and every
            # input buffer the bulk outgrew (1 + 2 + ... + 32 MB) stay
            # mapped, and one shadow byte per 8 bytes of it. On a 2-vCPU
            # Xeon: +134 to +142 MB over three runs (release: +35 MB).
            bound += min(256 * MB, 2 * sent) + bound // 8
        self.assertLess(peak - base, bound, failure_text(
            "RSS grew by %.1f MB (at most %.0f) for a 512 MB bulk of which "
            "%d MB came" % ((peak - base) / MB, bound / MB, sent // MB), "",
            [node]))

        def gone():
            st = server_side_state((node.ip, node.port), client)
            return st in (None, "LAST_ACK", "CLOSE"), "node's end: %s" % st
        took = wait_until(gone, 10, "the node closes its end after the "
                          "client closed", [node])
        say("the node's end closed %.2f s after the client's close" % took)
        self.assert_serves(node, "a never-finished 512 MB bulk")
        c, r = connect(node.ip, node.port)
        with c:
            c.sendall(encode("GET", "big512"))
            self.assertEqual(r.reply(), b"$-1\r\n")

    def test_half_request_then_close(self):
        node = self.a
        for data in (b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc",
                     b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n",
                     b"*3\r\n$3\r\nSE", b"SET half inline-without-end"):
            s, _ = connect(node.ip, node.port)
            client = s.getsockname()
            s.sendall(data)
            s.close()

            def gone():
                st = server_side_state((node.ip, node.port), client)
                return st in (None, "LAST_ACK", "CLOSE"), "node's end: %s" % st
            wait_until(gone, 10, "the node closes its end after %r" % data,
                       [node])
            self.assert_serves(node, "half a request %r" % data)
        c, r = connect(node.ip, node.port)
        with c:
            c.sendall(encode("EXISTS", "half"))
            self.assertEqual(r.reply(), b":0\r\n")

    def test_fin_after_commands(self):
        node = self.nodes[1]
        cmds = [encode("SET", "fin:k", "v1"), encode("GET", "fin:k"),
                encode("INCR", "fin:n"), encode("DEL", "fin:n")]
        cmds += [encode("ECHO", "e%d" % i) for i in range(500)]
        cmds += [encode("GET", "fin:k"), encode("DEL", "fin:k")]
        s, r = connect(node.ip, node.port)
        with s:
            s.sendall(b"".join(cmds))
            s.shutdown(socket.SHUT_WR)
            got = []
            try:
                for _ in cmds:
                    got.append(r.reply())
            except (EOFError, socket.timeout, ConnectionResetError) as e:
                self.fail(failure_text(
                    "after FIN: %d of %d replies, then %s: %s" % (
                        len(got), len(cmds), type(e).__name__, e),
                    repr(got[-3:]), [node]))
            try:
                rest = r.until_eof(10)
            except socket.timeout:
                self.fail("no EOF within 10 s after the replies")
        want = [b"+OK\r\n", b"$2\r\nv1\r\n", b":1\r\n", b":1\r\n"] + [
            b"$%d\r\ne%d\r\n" % (len(b"e%d" % i), i) for i in range(500)] + [
            b"$2\r\nv1\r\n", b":1\r\n"]
        self.assertEqual(got, want)
        self.assertEqual(rest, b"", "bytes after the last reply")
        self.assert_serves(node, "a FIN after the commands")

    def test_commands_after_quit_are_not_run(self):
        """As Redis (its quit.tcl): QUIT answers OK and the connection
        closes; what the client pipelined after it is not run."""
        node = self.nodes[1]
        # Values a read takes whole: with more still on its way when the
        # node closes, TCP answers it with a reset, which may cost the
        # client the OK it had not read yet (so with Redis too).
        for n, value in ((1, b"bar"), (2, b"x" * 1024), (3, b"y" * 16_000)):
            key = "quit:%d" % n
            data = (encode("QUIT") + encode("SET", key, value)
                    + encode("INCR", key + ":n"))
            got = exchange_until_close(node.ip, node.port, data)
            self.assertEqual(got, b"+OK\r\n", failure_text(
                "QUIT then SET (%d-byte value) in one write" % len(value),
                repr(got[:200]), [node]))
            c, r = connect(node.ip, node.port)
            with c:
                c.sendall(encode("EXISTS", key, key + ":n"))
                self.assertEqual(r.reply(), b":0\r\n",
                                 "a command after QUIT ran (%d-byte value)"
                                 % len(value))

    def test_client_never_reads(self):
        node = self.a
        value = bytes(random.Random(9).randrange(256) for _ in range(100_000))
        c, r = connect(node.ip, node.port)
        with c:
            c.sendall(encode("SET", "slow:big", value))
            self.assertEqual(r.reply(), b"+OK\r\n")
        base = node.rss()
        hwm0 = node.status_kb("VmHWM")
        others = {p.name: p.rss() for p in self.nodes[1:]}
        stop, samples = self.rss_watch(node)

        # Other clients: a fresh connection's PING every 100 ms.
        pings = []
        halt = threading.Event()

        def pinger():
            while not halt.is_set():
                t0 = now()
                try:
                    s, rd = connect(node.ip, node.port, timeout=5)
                    with s:
                        s.sendall(encode("PING"))
                        got = rd.reply()
                except Exception as e:
                    got = repr(e).encode()
                pings.append((now() - t0, got))
                halt.wait(0.1)
        pt = threading.Thread(target=pinger, daemon=True)
        pt.start()

        get = encode("GET", "slow:big") * 50
        s, _ = connect(node.ip, node.port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(0.2)
        gets = 0
        outcome = None
        stalled_since = None
        t0 = now()
        limit = 1 << 30  # reply bytes asked for: 1 GB
        try:
            while outcome is None:
                if now() - t0 > 40:
                    outcome = "still open and reading after 40 s"
                    break
                if gets * len(value) >= limit:
                    # Asked for 1 GB: the node must close or stop reading.
                    if stalled_since is None:
                        stalled_since = now()
                try:
                    n = s.send(get if gets * len(value) < limit else b"")
                    if n == 0 and gets * len(value) >= limit:
                        # Nothing more to send: see whether the node
                        # closes it (output limit).
                        st = server_side_state((node.ip, node.port),
                                               s.getsockname())
                        if st is None or st not in ("ESTABLISHED",):
                            outcome = "closed by the node (%s)" % st
                        elif now() - stalled_since > 10:
                            outcome = ("1 GB of replies asked for, the "
                                       "node neither closed nor paused")
                        else:
                            time.sleep(0.05)
                        continue
                    gets += n // len(encode("GET", "slow:big"))
                    stalled_since = None
                except socket.timeout:
                    if stalled_since is None:
                        stalled_since = now()
                    elif now() - stalled_since > 3:
                        outcome = "the node stopped reading (send blocked " \
                                  "for 3 s)"
                except (ConnectionResetError, BrokenPipeError) as e:
                    outcome = "closed by the node (%s)" % type(e).__name__
            # Meanwhile others are served.
            took = self.assert_serves(node, "a client that does not read")
        finally:
            halt.set()
            pt.join()
            peak = stop()
            s.close()
        hwm1 = node.status_kb("VmHWM")
        if hwm1 > hwm0:
            peak = max(peak, hwm1)
        others_after = {p.name: p.rss() for p in self.nodes[1:]}
        asked = gets * len(value)
        worst = max(pings) if pings else (0, b"")
        report = ("client never reads: %d GETs (%.0f MB of replies asked "
                  "for) in %.1f s, outcome: %s; RSS %.1f MB -> peak %.1f MB "
                  "(+%.1f MB, %d samples); others %s -> %s; %d PINGs, "
                  "slowest %.3f s (%r); last PING %.3f s" % (
                      gets, asked / MB, now() - t0, outcome, base / MB,
                      peak / MB, (peak - base) / MB, len(samples),
                      {k: "%.0f MB" % (v / MB) for k, v in others.items()},
                      {k: "%.0f MB" % (v / MB)
                       for k, v in others_after.items()},
                      len(pings), worst[0], worst[1], took))
        say(report)
        self.assertTrue(outcome.startswith("closed") or
                        outcome.startswith("the node stopped"), report)
        # The node's documented bounds for one client: max_output_buffer
        # (64 MiB) of queued replies, plus max_pipeline (1024) replies of
        # 100 KB in flight, plus 96 MB for copies and the allocator (glibc
        # keeps an arena per thread that allocates: the workers and the
        # reactor). The peak measured on 2 cores was +115 to +162 MB with
        # 4 CAF workers, whether 128 MB or 4 GB of replies were asked for;
        # with a read's operations sent as one batch and 2 parked workers,
        # +104 to +224 MB over five runs (ASan build, 4 workers: +392 to
        # +402 MB). It must not depend on what was asked for.
        bound = 64 * MB + 1024 * len(value) + 96 * MB
        if os.environ.get("ASAN_OPTIONS") is not None:
            # AddressSanitizer keeps freed memory in its quarantine (256 MB
            # by default) before reusing it, and maps one shadow byte per 8
            # bytes of what the node holds.
            bound += 256 * MB + bound // 8
        self.assertLess(peak - base, bound, failure_text(
            "RSS grew by more than %.0f MB: %s" % (bound / MB, report), "",
            [node]))
        bad = [p for p in pings if p[1] != b"+PONG\r\n" or p[0] >= 1.0]
        self.assertTrue(pings, report)
        self.assertFalse(bad, "PINGs not answered PONG within 1 s: %r\n%s"
                         % (bad[:10], report))
        self.assert_serves(node, "a client that does not read")

    def test_malloc_cache_is_set_once_and_can_be_left(self):
        """mycorrizal-node runs itself again once with glibc's per-thread
        cache raised (docs/operations.md): the process it runs as has the
        variable and the pid it was started with; --malloc-tcache 0 leaves
        the environment alone."""
        def tunables(pid):
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            return [e for e in env if e.startswith(b"GLIBC_TUNABLES=")]
        self.assertEqual(tunables(self.a.pid),
                         [b"GLIBC_TUNABLES=glibc.malloc.tcache_count=256"],
                         "node %s (pid %d)" % (self.a.name, self.a.pid))
        work = tempfile.mkdtemp(prefix="resp-tcache-")
        node = Node("rc-tcache", MAXCLI_IP, work,
                    extra=["--malloc-tcache", "0"])
        try:
            node.wait_started()
            self.assertEqual(tunables(node.pid), [])
            s, r = connect(node.ip, node.port)
            with s:
                s.sendall(encode("PING"))
                self.assertEqual(r.reply(), b"+PONG\r\n")
        finally:
            node.stop()
            shutil.rmtree(work, ignore_errors=True)

    def test_max_clients(self):
        p = subprocess.run([CONFIG["bin"], "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        m = re.search(r"(--[\w-]*max-?clients?[\w-]*)", p.stdout)
        if not m:
            self.skipTest("mycorrizal-node has no flag for the Redis front "
                          "door's max_clients (--help); resp_options::"
                          "max_clients is 10000 and not settable")
        flag = m.group(1)
        work = tempfile.mkdtemp(prefix="resp-maxcli-")
        node = Node("rc-max", MAXCLI_IP, work, extra=[flag, "3"])
        socks = []
        try:
            node.wait_started()
            for _ in range(3):
                s, r = connect(node.ip, node.port)
                socks.append(s)
                s.sendall(encode("PING"))
                self.assertEqual(r.reply(), b"+PONG\r\n")
            got = exchange_until_close(node.ip, node.port, encode("PING"))
            self.assertEqual(got, b"-ERR max number of clients reached\r\n")
            socks.pop().close()

            def again():
                s, r = connect(node.ip, node.port)
                with s:
                    s.sendall(encode("PING"))
                    g = r.reply()
                return g == b"+PONG\r\n", repr(g)
            wait_until(again, 10, "a client gets in after one left", [node])
        finally:
            for s in socks:
                s.close()
            node.stop()
            shutil.rmtree(work, ignore_errors=True)


class AuthClients(Base):
    PASSWORD = "s3cr3t pass"

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="resp-auth-")
        cls.procs = []
        try:
            pw = os.path.join(cls.work, "pass")
            with open(pw, "w") as f:
                f.write(cls.PASSWORD + "\n")
            cls.node = Node("rc-auth", AUTH_IP, cls.work,
                            extra=["--requirepass-file", pw])
            cls.procs.append(cls.node)
            cls.redis = RedisServer(AUTH_REDIS_IP, cls.work,
                                    ["--requirepass", cls.PASSWORD])
            cls.procs.append(cls.redis)
            cls.node.wait_started()
            cls.redis.wait_started()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cleanup_class()

    def test_auth_raw(self):
        seq = [("GET", "a"), ("SET", "a", "1"), ("PING",),
               ("AUTH", "wrong"), ("AUTH", "default", "wrong"),
               ("AUTH", "nosuchuser", self.PASSWORD), ("GET", "a"),
               ("AUTH", self.PASSWORD), ("SET", "a", "1"), ("GET", "a"),
               ("AUTH", "wrong"), ("GET", "a"),
               ("AUTH", "default", self.PASSWORD), ("DEL", "a")]
        noauth = b"-NOAUTH Authentication required.\r\n"
        wrong = (b"-WRONGPASS invalid username-password pair or user is "
                 b"disabled.\r\n")
        want = [noauth, noauth, noauth, wrong, wrong, wrong, noauth,
                b"+OK\r\n", b"+OK\r\n", b"$1\r\n1\r\n", wrong,
                b"$1\r\n1\r\n", b"+OK\r\n", b":1\r\n"]

        def run(srv):
            s, r = connect(srv.ip, srv.port)
            with s:
                s.sendall(b"".join(encode(*c) for c in seq))
                return [r.reply() for _ in seq]
        ref = run(self.redis)
        got = run(self.node)
        for c, w, x, g in zip(seq, want, ref, got):
            self.assertEqual(x, w, "redis-server: %r -> %r" % (c, x))
            self.assertEqual(g, w, "%r: expected %r, got %r (redis-server "
                             "%r)" % (c, w, g, x))
        self.assertTrue(self.node.running())

    def test_auth_redis_py(self):
        need_redis_py(self)
        def wrong(srv):
            c = redis.Redis(host=srv.ip, port=srv.port, password="wrong",
                            socket_timeout=10)
            try:
                c.ping()
            except redis.exceptions.RedisError as e:
                return type(e), str(e)
            finally:
                c.close()
            return None, "PING passed"
        got, ref = wrong(self.node), wrong(self.redis)
        # python3-redis maps WRONGPASS to AuthenticationError from 4.4 on;
        # Debian 12's 4.3.4 raises ResponseError (for redis-server too).
        parser = getattr(redis.connection, "BaseParser", None)
        maps = "WRONGPASS" in getattr(parser, "EXCEPTION_CLASSES", {})
        self.assertEqual(got, ref, "a wrong password: python3-redis %s "
                         "raised %r for mycorrizal-node, %r for redis-server"
                         % (redis.__version__, got, ref))
        self.assertEqual(got[1], "WRONGPASS invalid username-password pair "
                         "or user is disabled.")
        want = (redis.exceptions.AuthenticationError if maps
                else redis.exceptions.ResponseError)
        self.assertTrue(issubclass(got[0], want), got)
        say("a wrong password: python3-redis %s raises %s(%r), as for "
            "redis-server" % (redis.__version__, got[0].__name__, got[1]))
        c = redis.Redis(host=self.node.ip, port=self.node.port,
                        socket_timeout=10)
        with self.assertRaises(redis.exceptions.AuthenticationError) as cm:
            c.get("x")
        self.assertIn("Authentication required", str(cm.exception))
        c.close()
        c = redis.Redis(host=self.node.ip, port=self.node.port,
                        password=self.PASSWORD, socket_timeout=10)
        with c:
            self.assertIs(c.ping(), True)
            self.assertIs(c.set("py:a", b"\x00\xff"), True)
            self.assertEqual(c.get("py:a"), b"\x00\xff")
            self.assertEqual(c.delete("py:a"), 1)

    def test_auth_redis_cli(self):
        need_tool(self, "redis-cli")
        base = ["redis-cli", "-h", self.node.ip, "-p", str(self.node.port)]

        def run(*args):
            return subprocess.run(base + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=30)
        p = run("GET", "cli")
        self.assertEqual(p.stdout, b"NOAUTH Authentication required.\n\n", p)
        p = run("-a", "wrong", "--no-auth-warning", "GET", "cli")
        self.assertIn(b"WRONGPASS invalid username-password pair or user is "
                      b"disabled.", p.stdout + p.stderr, p)
        p = run("-a", self.PASSWORD, "--no-auth-warning", "SET", "cli", "v")
        self.assertEqual((p.returncode, p.stdout), (0, b"OK\n"), p)
        p = run("-a", self.PASSWORD, "--no-auth-warning", "GET", "cli")
        self.assertEqual((p.returncode, p.stdout), (0, b"v\n"), p)
        p = run("--user", "default", "--pass", self.PASSWORD,
                "--no-auth-warning", "DEL", "cli")
        self.assertEqual((p.returncode, p.stdout), (0, b"1\n"), p)


class TlsClients(Base):
    """--resp-tls with certificates from mycorrizal-certs: redis-cli --tls
    and python3-redis over TLS with a client certificate; without one, with
    one of another CA, and plain RESP on the TLS port, each refused while
    the node goes on serving."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="resp-tls-")
        cls.procs = []
        try:
            certs = os.path.join(os.path.dirname(CONFIG["bin"]),
                                 "mycorrizal-certs")
            d = cls.work

            def run(*args):
                subprocess.run([certs] + list(args), check=True,
                               stdout=subprocess.DEVNULL, timeout=60)
            run("ca", "--out", os.path.join(d, "ca"))
            run("node", "--ca", os.path.join(d, "ca"), "--name", "rc-tls",
                "--out", os.path.join(d, "node"))
            run("node", "--ca", os.path.join(d, "ca"), "--name", "app-client",
                "--out", os.path.join(d, "client"))
            run("ca", "--out", os.path.join(d, "other-ca"), "--cn", "Other")
            run("node", "--ca", os.path.join(d, "other-ca"), "--name",
                "intruder", "--out", os.path.join(d, "intruder"))
            cls.ca = os.path.join(d, "ca", "ca.pem")
            cls.cert = os.path.join(d, "client", "app-client.pem")
            cls.key = os.path.join(d, "client", "app-client.key")
            cls.bad_cert = os.path.join(d, "intruder", "intruder.pem")
            cls.bad_key = os.path.join(d, "intruder", "intruder.key")
            cls.node = Node("rc-tls", TLS_IP, cls.work, extra=[
                "--ca", cls.ca, "--cert", os.path.join(d, "node", "rc-tls.pem"),
                "--key", os.path.join(d, "node", "rc-tls.key"),
                "--resp-tls"])
            cls.procs.append(cls.node)
            cls.node.wait_started()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cleanup_class()

    def cli(self, *args, cert=True, bad=False):
        base = ["redis-cli", "-h", self.node.ip, "-p", str(self.node.port),
                "--tls", "--cacert", self.ca]
        if cert:
            base += ["--cert", self.bad_cert if bad else self.cert,
                     "--key", self.bad_key if bad else self.key]
        return subprocess.run(base + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30)

    def assert_tls_serves(self, after):
        self.assertTrue(self.node.running(), failure_text(
            "%s died after %s" % (self.node.name, after), "", [self.node], 40))
        p = self.cli("PING")
        self.assertEqual((p.returncode, p.stdout), (0, b"PONG\n"),
                         failure_text("PING over TLS after %s" % after,
                                      repr(p), [self.node]))

    def test_redis_cli_tls(self):
        need_tool(self, "redis-cli")
        p = self.cli("SET", "tls-key", "tls value")
        self.assertEqual((p.returncode, p.stdout), (0, b"OK\n"), p)
        p = self.cli("GET", "tls-key")
        self.assertEqual((p.returncode, p.stdout), (0, b"tls value\n"), p)
        p = self.cli("CLIENT", "INFO")
        self.assertIn(b"laddr=" + self.node.ip.encode(), p.stdout, p)

    def test_redis_cli_without_certificate_is_refused(self):
        need_tool(self, "redis-cli")
        p = self.cli("PING", cert=False)
        self.assertNotIn(b"PONG", p.stdout, p)
        self.assert_tls_serves("a client without certificate")

    def test_certificate_of_another_ca_is_refused(self):
        need_tool(self, "redis-cli")
        p = self.cli("PING", bad=True)
        self.assertNotIn(b"PONG", p.stdout, p)
        self.assert_tls_serves("a certificate of another CA")

    def test_plain_resp_on_the_tls_port_is_closed(self):
        got = exchange_until_close(self.node.ip, self.node.port,
                                   encode("PING"), timeout=10)
        self.assertNotIn(b"PONG", got)
        self.assertNotIn(b"<no EOF", got, "the node closes it")
        self.assert_tls_serves("plain RESP on the TLS port")

    def test_redis_py_over_tls_with_binary_values(self):
        need_redis_py(self)
        c = redis.Redis(host=self.node.ip, port=self.node.port, ssl=True,
                        ssl_ca_certs=self.ca, ssl_certfile=self.cert,
                        ssl_keyfile=self.key, socket_timeout=10)
        try:
            pipe = c.pipeline(transaction=False)
            values = {("tls:%d" % i).encode(): bytes([i % 256]) * (i * 37 % 5000)
                      + b"\x00\r\n\xff" for i in range(2000)}
            for k, v in values.items():
                pipe.set(k, v)
            self.assertTrue(all(pipe.execute()))
            got = c.mget(list(values))
            self.assertEqual(got, list(values.values()))
        finally:
            c.close()


class Result(unittest.TextTestResult):
    def addFailure(self, test, err):
        super().addFailure(test, err)
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print(self._exc_info_to_string(err, test), flush=True)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="mycorrizal-node binary")
    ap.add_argument("--keep-logs", help="write every process's lines to "
                    "DIR/<class>/<name>.log")
    ap.add_argument("tests", nargs="*",
                    help="e.g. ClusterClients.test_fin_after_commands")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        print("error: not executable: %s" % args.bin, file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None:
        print("redis-server not found: skipped")
        return SKIP
    CONFIG["bin"] = os.path.abspath(args.bin)
    CONFIG["keep"] = os.path.abspath(args.keep_logs) if args.keep_logs \
        else None
    if redis is None:
        print("python3-redis not found: its tests are skipped (tools/"
              "setup.sh installs it)", flush=True)
    else:
        print("python3-redis %s from %s" % (redis.__version__,
                                            os.path.dirname(redis.__file__)),
              flush=True)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    loader = unittest.TestLoader()
    if args.tests:
        suite = loader.loadTestsFromNames(args.tests, sys.modules[__name__])
    else:
        suite = unittest.TestSuite([
            loader.loadTestsFromTestCase(ClusterClients),
            loader.loadTestsFromTestCase(AuthClients)])
    t0 = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                     resultclass=Result).run(suite)
    print("total %.1f s" % (time.monotonic() - t0), flush=True)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
