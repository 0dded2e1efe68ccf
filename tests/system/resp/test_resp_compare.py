#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Redis front door answers as redis-server 7.0 does, byte for byte.

Starts Debian's redis-server and one mycorrizal-node with --resp on
loopback, sends the same command sequences to both over raw sockets (RESP2
multibulk, inline commands, pipelines, RESP3 after HELLO 3), reads exactly
one reply per command with a RESP reader, and compares the bytes, errors
included. Replies that carry server identity (HELLO's map: version, id) are
left out of the sequences.

Usage:
    test_resp_compare.py --bin <build>/tools/mycorrizal-node [--keep-logs DIR]

Exits 77 (skipped) without redis-server.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

CONFIG = {"bin": None, "keep": None}

HOST_NODE = "127.0.0.88"


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    """Reads whole RESP2/RESP3 replies from a socket, returning raw bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; buffered %r" % self.buf)
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

    def _reply_end(self, pos):
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
                after = self._reply_end(after)
            return after
        raise ValueError("not a reply at %d: %r" % (pos, self.buf[pos:]))

    def reply(self):
        end = self._reply_end(0)
        r, self.buf = self.buf[:end], self.buf[end:]
        return r


class Server:
    def __init__(self, name, host, port, proc):
        self.name, self.host, self.port, self.proc = name, host, port, proc

    def connect(self):
        deadline = time.monotonic() + 30
        while True:
            try:
                s = socket.create_connection((self.host, self.port), timeout=10)
                return s, Reader(s)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


# Sequences: each a list of commands run on one fresh connection, in order.
# A command is a list of arguments, or bytes sent as they are (inline).
SEQUENCES = {
    "connection": [
        ["PING"], ["ping", "hello"], ["PING", "a", "b"], ["ECHO", "x y"],
        ["ECHO"], ["echo", ""], ["SELECT", "0"], ["SELECT", "16"],
        ["SELECT", "-1"], ["SELECT", "x"], ["SELECT", "1"],
        ["CLIENT", "SETNAME", "bad name"], ["CLIENT", "SETNAME", "good"],
        ["CLIENT", "GETNAME"], ["client", "nosuch"], ["CLIENT", "SETNAME"],
        ["AUTH", "x"], ["AUTH", "u", "p"],
        ["HELLO", "4"], ["HELLO", "x"],
        ["NOSUCHCOMMAND"], ["nosuch", "a", "b c", ""], ["nosuch", "x" * 200],
        ["GET"], ["SET", "k"], ["TTL"],
    ],
    "strings": [
        ["DEL", "s1", "s2", "n1"],
        ["GET", "s1"], ["SET", "s1", "v1"], ["GET", "s1"],
        ["SET", "s1", "v2", "NX"], ["SET", "s1", "v2", "XX"], ["GET", "s1"],
        ["SET", "s2", "v", "XX"], ["SET", "s1", "v3", "NX", "GET"],
        ["SET", "s1", "v3", "XX", "GET"], ["SET", "s2", "w", "GET"],
        ["SET", "s1", "v", "NX", "XX"], ["SET", "s1", "v", "EX"],
        ["SET", "s1", "v", "EX", "0"], ["SET", "s1", "v", "EX", "-5"],
        ["SET", "s1", "v", "EX", "x"], ["SET", "s1", "v", "PX", "1.5"],
        ["SET", "s1", "v", "EX", "10", "PX", "100"],
        ["SET", "s1", "v", "KEEPTTL", "EX", "10"],
        ["SET", "s1", "v", "EX", "9223372036854775807"],
        ["SET", "s1", "v", "FOO"],
        ["SET", "s1", "v", "EX", "100"], ["TTL", "s1"],
        ["SET", "s1", "w", "KEEPTTL"], ["TTL", "s1"], ["GET", "s1"],
        ["SET", "s1", "w"], ["TTL", "s1"],
        ["SET", "s1", "v", "PXAT", "1"], ["GET", "s1"],
        ["SETNX", "s1", "a"], ["SETNX", "s1", "b"], ["GET", "s1"],
        ["SETEX", "s2", "100", "x"], ["TTL", "s2"], ["SETEX", "s2", "0", "x"],
        ["SETEX", "s2", "x", "x"], ["PSETEX", "s2", "100000", "y"],
        ["PSETEX", "s2", "-1", "y"], ["GET", "s2"],
        ["GETSET", "s2", "z"], ["GETSET", "nokey", "z"], ["TTL", "s2"],
        ["SET", "bin", b"\x00\r\n\xff"], ["GET", "bin"],
        ["SET", "empty", ""], ["GET", "empty"],
        ["DEL", "s1", "s2", "bin", "empty", "nokey"],
    ],
    "numbers": [
        ["DEL", "n1", "n2"],
        ["INCR", "n1"], ["INCR", "n1"], ["DECR", "n1"], ["INCRBY", "n1", "10"],
        ["DECRBY", "n1", "3"], ["INCRBY", "n1", "x"], ["INCRBY", "n1", "1.5"],
        ["DECRBY", "n1", "-9223372036854775808"],
        ["SET", "n2", "9223372036854775807"], ["INCR", "n2"],
        ["SET", "n2", "-9223372036854775808"], ["DECR", "n2"],
        ["SET", "n2", "abc"], ["INCR", "n2"], ["SET", "n2", " 1"],
        ["INCR", "n2"], ["SET", "n2", "007"], ["INCR", "n2"],
        ["INCRBY", "n1", "+1"], ["GET", "n1"],
        ["DEL", "n1", "n2"],
    ],
    "keys": [
        ["DEL", "k1", "k2", "k3"],
        ["SET", "k1", "a"], ["SET", "k2", "b"],
        ["EXISTS", "k1", "k2", "k3", "k1"], ["MGET", "k1", "k3", "k2"],
        ["TTL", "k1"], ["PTTL", "k3"], ["TTL", "k3"],
        ["EXPIRE", "k1", "100"], ["TTL", "k1"], ["PERSIST", "k1"],
        ["PERSIST", "k1"], ["TTL", "k1"], ["PERSIST", "k3"],
        ["EXPIRE", "k3", "10"], ["EXPIRE", "k1", "x"],
        ["EXPIRE", "k1", "9223372036854775807"],
        ["PEXPIRE", "k2", "100000"], ["EXPIRE", "k2", "0"], ["GET", "k2"],
        ["EXPIRE", "k1", "-1"], ["EXISTS", "k1"],
        ["SET", "k1", "a"], ["UNLINK", "k1", "k1"], ["DEL", "k1"],
    ],
    "inline_and_pipeline": [
        b"PING\r\n", b"set in1 'a b'\r\n", b"GET in1\r\n", b"  \r\n",
        b'ECHO "x\\ty"\n', b"DEL in1\r\n",
    ],
    "resp3": [
        ["HELLO", "3", "SETNAME", "r3"],
        ["GET", "nokey3"], ["SET", "r3k", "v"], ["GET", "r3k"],
        ["MGET", "r3k", "nokey3"], ["CLIENT", "GETNAME"], ["INCR", "r3k"],
        ["NOSUCH"], ["DEL", "r3k"],
    ],
}


def run_sequence(server, seq, skip_first_reply=False):
    sock, reader = server.connect()
    try:
        out = []
        # Pipelined: everything first, then the replies.
        payload = b"".join(c if isinstance(c, bytes) else encode(c)
                           for c in seq)
        sock.sendall(payload)
        n = len(seq)
        if seq and isinstance(seq[0], bytes):
            # Inline commands: the blank line gets no reply.
            n = sum(1 for c in seq if not (isinstance(c, bytes)
                                           and c.strip() == b""))
        for i in range(n):
            out.append(reader.reply())
        if skip_first_reply:
            out = out[1:]
        return out
    finally:
        sock.close()


class RespCompare(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="resp-compare-")
        rport = free_port("127.0.0.1")
        cls.files = [open(os.path.join(cls.tmp, n), "w")
                     for n in ("redis.log", "node.out", "node.err")]
        cls.redis = subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", cls.tmp],
            stdout=cls.files[0], stderr=subprocess.STDOUT)
        nport = free_port(HOST_NODE)
        cls.node = subprocess.Popen(
            [CONFIG["bin"], "--name", "resp-cmp", "--gossip", HOST_NODE + ":0",
             "--profile", "local", "--data-dir", os.path.join(cls.tmp, "d"),
             "--resp", "%s:%d" % (HOST_NODE, nport)],
            stdout=cls.files[1], stderr=cls.files[2])
        cls.servers = [Server("redis-server", "127.0.0.1", rport, cls.redis),
                       Server("mycorrizal-node", HOST_NODE, nport, cls.node)]

    @classmethod
    def tearDownClass(cls):
        for p in (cls.redis, cls.node):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in cls.files:
            f.close()
        if CONFIG["keep"]:
            shutil.copytree(cls.tmp, CONFIG["keep"], dirs_exist_ok=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def compare(self, name):
        seq = SEQUENCES[name]
        skip = name == "resp3"  # HELLO's map names the server
        got = [run_sequence(s, seq, skip) for s in self.servers]
        commands = seq[1:] if skip else [c for c in seq if not (
            isinstance(c, bytes) and c.strip() == b"")]
        diffs = []
        for cmd, a, b in zip(commands, got[0], got[1]):
            if a != b:
                diffs.append("%r:\n  redis-server:    %r\n  mycorrizal-node: %r"
                             % (cmd, a, b))
        self.assertEqual(len(got[0]), len(got[1]))
        self.assertFalse(diffs, "%d of %d replies differ:\n%s"
                         % (len(diffs), len(commands), "\n".join(diffs)))

    def test_connection(self):
        self.compare("connection")

    def test_strings(self):
        self.compare("strings")

    def test_numbers(self):
        self.compare("numbers")

    def test_keys(self):
        self.compare("keys")

    def test_inline_and_pipeline(self):
        self.compare("inline_and_pipeline")

    def test_resp3(self):
        self.compare("resp3")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--keep-logs")
    ap.add_argument("tests", nargs="*")
    args = ap.parse_args()
    CONFIG["bin"] = args.bin
    CONFIG["keep"] = args.keep_logs
    if shutil.which("redis-server") is None:
        print("redis-server not found: skipped")
        return 77
    argv = [sys.argv[0]] + args.tests
    prog = unittest.main(argv=argv, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
