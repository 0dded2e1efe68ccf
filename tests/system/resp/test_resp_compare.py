#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Redis front door answers as redis-server 7.0 does, byte for byte.

Starts Debian's redis-server and one mycorrizal-node with --resp on
loopback, sends the same command sequences to both over raw sockets (RESP2
multibulk, inline commands, pipelines, RESP3 after HELLO 3), reads exactly
one reply per command with a RESP reader, and compares the bytes, errors
included. Replies that carry server identity (HELLO's map: version, id) are
left out of the sequences. A few checks run on the node alone, where it
must differ (Mycel's value limit) or where Redis has nothing to race (a
RENAME against SETs of its source).

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
import threading
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
    "strings_more": [
        ["DEL", "a1", "a2", "f1", "r1", "g1", "ms1", "ms2", "ms3", "ms4",
         "nof", "s1"],
        ["APPEND", "a1", "hello"], ["APPEND", "a1", " world"], ["GET", "a1"],
        ["STRLEN", "a1"], ["STRLEN", "nokey"], ["APPEND", "a2", ""],
        ["EXISTS", "a2"], ["GET", "a2"], ["APPEND", "a1"],
        ["GETRANGE", "a1", "0", "4"], ["GETRANGE", "a1", "-5", "-1"],
        ["GETRANGE", "a1", "6", "100"], ["GETRANGE", "a1", "-100", "2"],
        ["GETRANGE", "a1", "5", "2"], ["GETRANGE", "a1", "-1", "-5"],
        ["GETRANGE", "nokey", "0", "1"], ["GETRANGE", "a1", "x", "1"],
        ["GETRANGE", "a1", "0"], ["GETRANGE", "a2", "0", "-1"],
        ["SETRANGE", "r1", "5", "xy"], ["GET", "r1"],
        ["SETRANGE", "r1", "0", "ab"], ["GET", "r1"],
        ["SETRANGE", "r1", "1", ""], ["SETRANGE", "nokey2", "3", ""],
        ["EXISTS", "nokey2"], ["SETRANGE", "r1", "-1", "a"],
        ["SETRANGE", "r1", "536870911", "ab"], ["SETRANGE", "r1", "x", "a"],
        ["SET", "f1", "10.5"], ["INCRBYFLOAT", "f1", "0.1"],
        ["INCRBYFLOAT", "f1", "-5"], ["INCRBYFLOAT", "f1", "1e3"],
        ["INCRBYFLOAT", "f1", "abc"], ["INCRBYFLOAT", "f1", " 1"],
        ["INCRBYFLOAT", "f1", "inf"], ["INCRBYFLOAT", "nof", "3"],
        ["INCRBYFLOAT", "nof", "-3"], ["GET", "nof"], ["SET", "f1", "abc"],
        ["INCRBYFLOAT", "f1", "1"], ["SET", "f1", "5.0e3"],
        ["INCRBYFLOAT", "f1", "2.0e2"], ["INCRBYFLOAT", "f1", "0x10"],
        ["INCRBYFLOAT", "f1", "1.5", "x"], ["INCRBYFLOAT", "f1", ""],
        ["SET", "g1", "v"], ["GETDEL", "g1"], ["GETDEL", "g1"],
        ["EXISTS", "g1"], ["GETDEL", "g1", "x"],
        ["SET", "g1", "v"], ["GETEX", "g1"], ["TTL", "g1"],
        ["GETEX", "g1", "EX", "100"], ["TTL", "g1"],
        ["GETEX", "g1", "PERSIST"], ["TTL", "g1"], ["GETEX", "g1", "EX", "0"],
        ["GETEX", "g1", "EX", "x"], ["GETEX", "nokey", "EX", "0"],
        ["GETEX", "g1", "EX", "10", "PX", "100"],
        ["GETEX", "g1", "EX", "10", "EX", "20"], ["TTL", "g1"],
        ["GETEX", "g1", "PERSIST", "EX", "10"], ["GETEX", "g1", "NX"],
        ["GETEX", "g1", "PX"], ["GETEX", "g1", "PXAT", "1"], ["EXISTS", "g1"],
        ["MSET", "ms1", "a", "ms2", "b"], ["MGET", "ms1", "ms2"],
        ["MSET", "ms1"], ["MSET", "ms1", "a", "ms2"],
        ["MSETNX", "ms2", "x", "ms3", "y"], ["GET", "ms3"],
        ["MSETNX", "ms3", "y", "ms4", "z"], ["MGET", "ms3", "ms4"],
        ["MSETNX", "ms1"],
        ["SET", "s1", "v", "EX", "10", "EX", "20"], ["TTL", "s1"],
        ["SET", "s1", "v", "PX", "100", "EX", "20"],
        ["SET", "s1", "v", "NX", "NX"], ["SET", "s1", "v", "GET", "GET"],
        ["DEL", "a1", "a2", "f1", "r1", "g1", "ms1", "ms2", "ms3", "ms4",
         "nof", "s1"],
    ],
    "expiry_more": [
        ["DEL", "e1", "e2"], ["SET", "e1", "v"], ["TYPE", "e1"],
        ["TYPE", "nokey"], ["TYPE"],
        ["EXPIRE", "e1", "100", "NX"], ["EXPIRE", "e1", "200", "NX"],
        ["TTL", "e1"], ["EXPIRE", "e1", "50", "GT"],
        ["EXPIRE", "e1", "500", "GT"], ["TTL", "e1"],
        ["EXPIRE", "e1", "600", "LT"], ["EXPIRE", "e1", "60", "LT"],
        ["TTL", "e1"], ["EXPIRE", "e1", "70", "XX"], ["TTL", "e1"],
        ["PERSIST", "e1"], ["EXPIRE", "e1", "70", "XX"],
        ["EXPIRE", "e1", "70", "GT"], ["EXPIRE", "e1", "70", "LT"],
        ["TTL", "e1"], ["PERSIST", "e1"],
        ["EXPIRE", "e1", "10", "NX", "XX"], ["EXPIRE", "e1", "10", "GT", "LT"],
        ["EXPIRE", "e1", "10", "FOO"], ["EXPIRE", "nokey", "10", "NX"],
        ["EXPIRE", "e1", "x", "NX"], ["EXPIRE", "e1", "10", "nx", "nx"],
        ["EXPIRE", "e1", "5", "XX", "GT"], ["EXPIRE", "e1", "100", "XX", "GT"],
        ["TTL", "e1"], ["PERSIST", "e1"],
        ["EXPIRETIME", "e1"], ["PEXPIRETIME", "e1"], ["EXPIRETIME", "nokey"],
        ["PEXPIRETIME", "nokey"],
        ["EXPIREAT", "e1", "4102444800"], ["EXPIRETIME", "e1"],
        ["PEXPIREAT", "e1", "4102444800123"], ["PEXPIRETIME", "e1"],
        ["EXPIRETIME", "e1"], ["EXPIREAT", "e1", "4102444801", "LT"],
        ["EXPIREAT", "e1", "4102444801", "GT"], ["EXPIRETIME", "e1"],
        ["EXPIREAT", "e1", "100"], ["EXISTS", "e1"],
        ["SET", "e2", "v"], ["PEXPIREAT", "e2", "-5"], ["EXISTS", "e2"],
        ["EXPIREAT", "e2", "x"], ["EXPIREAT", "e2", "9223372036854775807"],
        ["PEXPIREAT", "e2", "9223372036854775807"],
    ],
    "server": [
        ["CONFIG", "GET", "databases"], ["CONFIG", "GET", "maxmemory"],
        ["CONFIG", "GET", "nosuchparam"], ["CONFIG", "GET"],
        ["CONFIG", "FOO"], ["CONFIG", "GET", "appendonly"],
        ["COMMAND", "FOO"], ["COMMAND", "COUNT", "x"],
        ["COMMAND", "INFO", "nosuchcmd"], ["CLIENT", "INFO", "x"],
        ["CLIENT", "SETNAME", "before-reset"], ["SELECT", "3"],
        ["RESET"], ["CLIENT", "GETNAME"], ["TIME", "x"], ["INFO", "nosuch"],
        ["CLIENT", "LIST", "TYPE", "bogus"], ["CLIENT", "LIST", "ID", "x"],
        ["CLIENT", "LIST", "ID", "99999"], ["CLIENT", "LIST", "FOO"],
        ["DBSIZE", "x"], ["RANDOMKEY", "x"], ["KEYS"], ["SCAN"],
        ["FLUSHDB", "x"], ["FLUSHDB", "ASYNC", "x"], ["FLUSHALL", "x"],
        ["SCAN", "x"], ["SCAN", "-1x"], ["SCAN", " 0"],
        ["SCAN", "0", "COUNT", "0"], ["SCAN", "0", "COUNT", "x"],
        ["SCAN", "0", "FOO", "1"], ["SCAN", "0", "MATCH"],
    ],
    # Found by a differential fuzz against redis-server (session 33).
    "fuzz_findings": [
        ["DEL", "z1", "z2"],
        # A key named twice in MSETNX gets its last value.
        ["MSETNX", "z1", "1", "z1", "2"], ["GET", "z1"],
        ["MSETNX", "z2", "a", "z1", "b"], ["GET", "z2"],
        # EXPIRETIME rounds without overflowing near INT64_MAX.
        ["PEXPIREAT", "z1", "9223372036854775806"], ["EXPIRETIME", "z1"],
        ["PEXPIREAT", "z1", "9223372036854775308"], ["EXPIRETIME", "z1"],
        ["PEXPIREAT", "z1", "9223372036854775307"], ["EXPIRETIME", "z1"],
        # Quoted arguments end at a NUL byte (C's %s); CR/LF at the end of
        # an error are dropped, inside it they become spaces.
        ["EXPIRE", "z1", "100", "NX", b"\x00\r\n\xff"],
        ["EXPIRE", "z1", "100", b"FOO\n"], ["EXPIRE", "z1", "100", b"F\rO"],
        ["EXPIRE", "z1", "100", b"\nFOO"],
        [b"\x00ab", "abc", "-3"], ["NOSUCH", "-", "+5", b"\x00\r\n\xff"],
        ["nosuch", b"a\x00" + b"z" * 100, "b" * 100],
        ["CLIENT", b"x\x00y"], ["CONFIG", b"\x00"],
        ["HELLO", "2", b"op\x00t"],
        ["DEL", "z1", "z2"],
    ],
    # Found by a second differential fuzz (keyspace, connection, server
    # commands; session 33).
    "fuzz_findings_2": [
        ["SELECT", "2147483648"], ["SELECT", "-2147483649"],
        ["SELECT", "9223372036854775807"], ["SELECT", "-1"],
        ["HELLO", "2", "SETNAME", "a b"], ["CLIENT", "GETNAME"],
        ["HELLO", "2", "SETNAME", b"\xff"],
        ["HELLO", "3", "SETNAME", "ok", "FOO"], ["CLIENT", "GETNAME"],
        ["RANDOMKEY"],
        ["HELLO", "2", "AUTH", "foo", "bar", "FOO"],
        ["HELLO", "2", "SETNAME", "a b", "AUTH", "foo", "bar"],
        ["CLIENT", "LIST", "TYPE", "slave"], ["CLIENT", "LIST", "ID", "0"],
        ["CLIENT", "LIST", "ID", "-5"], ["CLIENT", "LIST", "ID", "x"],
        ["CLIENT", "LIST", "TYPE", "master", "ID", "5"],
        ["CLIENT", "LIST", "TYPE"],
        ["CONFIG", "GET", "DATABASES"], ["CONFIG", "GET", "Databases", "x"],
        # Not `CONFIG GET databases\0x`: Redis 7.0 hashes the whole name
        # but compares it as a C string, so it answers `databases` only
        # when the seeded hash puts both in one bucket (CI saw it once).
        ["CONFIG", "GET", "p\\ort"], ["CONFIG", "GET", b"databases\x00*"],
        ["CONFIG", "GET", "databases", "DATABASES"],
        ["CONFIG", "RESETSTAT", "x"], ["CONFIG", "REWRITE", "x"],
        ["CONFIG", "SET"], ["CONFIG", "SET", "x"],
        ["COMMAND", "LIST", "x"], ["COMMAND", "LIST", "FILTERBY", "FOO", "x"],
        ["COMMAND", "LIST", "FILTERBY", "MODULE", "x"],
        ["COMMAND", "LIST", "FILTERBY", "PATTERN", "nosuch*"],
        ["COMMAND", "LIST", "FILTERBY", "PATTERN"],
        ["SET", "a" * 1001, "v"], ["KEYS", "*a" * 1001], ["KEYS", "*a" * 1000],
        ["DEL", "a" * 1001],
        ["COMMAND", "INFO", "echo", "select", "hello", "auth", "reset"],
    ],
    # RENAME, RENAMENX, COPY and MOVE: values, expiries carried over (TTL
    # in seconds compares equal), missing sources, a key onto itself, NX
    # refusals, REPLACE, DB and its bad values, wrong arity.
    "rename_copy_move": [
        ["DEL", "rn1", "rn2", "rn3", "rn4", "rn5", "rn6", "rn7", "",
         b"bin\x00k", b"bin\x00k2"],
        ["SET", "rn1", "a"], ["RENAME", "rn1", "rn2"], ["GET", "rn1"],
        ["GET", "rn2"], ["EXISTS", "rn1"],
        ["RENAME", "nokey", "rn3"], ["RENAMENX", "nokey", "rn3"],
        ["RENAME", "nokey", "nokey"], ["RENAMENX", "nokey", "nokey"],
        ["RENAME", "rn2", "rn2"], ["RENAMENX", "rn2", "rn2"], ["GET", "rn2"],
        ["SET", "rn3", "b"], ["RENAMENX", "rn2", "rn3"], ["GET", "rn2"],
        ["GET", "rn3"], ["RENAMENX", "rn2", "rn1"], ["GET", "rn1"],
        ["EXISTS", "rn2"], ["RENAME", "rn1", "rn3"], ["GET", "rn3"],
        ["EXISTS", "rn1"],
        ["SET", "rn1", "t", "EX", "100"], ["RENAME", "rn1", "rn2"],
        ["TTL", "rn2"], ["TTL", "rn1"], ["GET", "rn2"],
        ["SET", "rn1", "x"], ["EXPIRE", "rn3", "100"],
        ["RENAME", "rn1", "rn3"], ["TTL", "rn3"], ["GET", "rn3"],
        ["SET", "rn4", "y", "PX", "200000"], ["RENAMENX", "rn4", "rn5"],
        ["TTL", "rn5"], ["EXISTS", "rn4"],
        ["SET", b"bin\x00k", b"\x00\xff\r\n"],
        ["RENAME", b"bin\x00k", b"bin\x00k2"], ["GET", b"bin\x00k2"],
        ["EXISTS", b"bin\x00k"],
        ["SET", "rn6", ""], ["RENAME", "rn6", "rn7"], ["GET", "rn7"],
        ["EXISTS", "rn6"], ["RENAME", "rn7", ""], ["GET", ""],
        ["RENAME", "rn1"], ["RENAME", "rn1", "rn2", "rn3"], ["RENAMENX", "a"],
        ["DEL", "cp1", "cp2", "cp3", "cp4", "cp5"],
        ["SET", "cp1", "v"], ["COPY", "cp1", "cp2"], ["GET", "cp2"],
        ["GET", "cp1"], ["COPY", "cp1", "cp2"], ["SET", "cp1", "w"],
        ["COPY", "cp1", "cp2", "REPLACE"], ["GET", "cp2"],
        ["COPY", "cp1", "cp1"], ["COPY", "nokey", "cp3"],
        ["COPY", "nokey", "nokey"], ["COPY", "nokey", "cp2", "REPLACE"],
        ["GET", "cp2"], ["COPY", "cp1", "cp2", "FOO"],
        ["COPY", "cp1", "cp2", "DB"], ["COPY", "cp1", "cp2", "DB", "x"],
        ["COPY", "cp1", "cp2", "DB", "16"], ["COPY", "cp1", "cp2", "DB", "-1"],
        ["COPY", "cp1", "cp2", "DB", "2147483648"],
        ["COPY", "cp1", "cp2", "DB", "1.5"], ["COPY", "cp1", "cp2", "DB", "0"],
        ["COPY", "cp1", "cp1", "DB", "0"], ["COPY", "cp1", "cp1", "DB", "1"],
        ["COPY", "cp1", "cp1", "DB", "1"],
        ["COPY", "cp1", "cp1", "DB", "1", "REPLACE"],
        ["COPY", "cp1", "cp2", "DB", "x", "FOO"],
        ["COPY", "cp1", "cp2", "FOO", "DB", "x"],
        ["COPY", "cp1", "cp2", "replace", "db", "1"],
        ["COPY", "cp1", "cp2", "DB", "1", "DB", "0"],
        ["SET", "cp3", "t", "EX", "100"], ["COPY", "cp3", "cp4"],
        ["TTL", "cp4"], ["TTL", "cp3"], ["SET", "cp5", "x"],
        ["COPY", "cp5", "cp4", "REPLACE"], ["TTL", "cp4"], ["GET", "cp4"],
        ["COPY", "cp1"],
        ["SELECT", "1"], ["GET", "cp1"], ["GET", "cp2"], ["TTL", "cp1"],
        ["DEL", "cp1", "cp2", "mv1", "mv2", "mv3"], ["SELECT", "0"],
        ["DEL", "mv1", "mv2", "mv3"],
        ["SET", "mv1", "m", "EX", "100"], ["MOVE", "mv1", "1"],
        ["EXISTS", "mv1"], ["MOVE", "mv1", "1"], ["SELECT", "1"],
        ["GET", "mv1"], ["TTL", "mv1"], ["MOVE", "mv1", "1"],
        ["MOVE", "mv1", "0"], ["EXISTS", "mv1"], ["SELECT", "0"],
        ["GET", "mv1"], ["TTL", "mv1"],
        ["SET", "mv2", "a"], ["SELECT", "1"], ["SET", "mv2", "b"],
        ["SELECT", "0"], ["MOVE", "mv2", "1"], ["GET", "mv2"],
        ["MOVE", "mv2", "x"], ["MOVE", "mv2", "16"], ["MOVE", "mv2", "-1"],
        ["MOVE", "mv2", "9999999999"], ["MOVE", "nokey", "x"],
        ["MOVE", "nokey", "0"], ["MOVE", "mv2"], ["MOVE", "mv2", "1", "2"],
        ["SET", "mv3", "plain"], ["MOVE", "mv3", "2"], ["SELECT", "2"],
        ["TTL", "mv3"], ["GET", "mv3"], ["DEL", "mv3"], ["SELECT", "1"],
        ["DEL", "mv2"], ["SELECT", "0"],
        ["DEL", "rn1", "rn2", "rn3", "rn4", "rn5", "rn6", "rn7", "",
         b"bin\x00k", b"bin\x00k2", "cp1", "cp2", "cp3", "cp4", "cp5",
         "mv1", "mv2", "mv3"],
    ],
    # MULTI, EXEC and DISCARD: queued replies, EXEC's array (errors of
    # commands that ran inside it, SELECT taking effect for those after
    # it), refusals that abort the transaction, nesting, RESET.
    "transactions": [
        ["DEL", "tx1", "tx2"], ["MULTI"], ["SET", "tx1", "a"], ["INCR", "tx2"],
        ["GET", "tx1"], ["APPEND", "tx1", "b"], ["GETRANGE", "tx1", "0", "0"],
        ["EXEC"], ["GET", "tx1"], ["EXEC"], ["DISCARD"], ["MULTI"],
        ["MULTI"], ["SET", "tx1", "z"], ["DISCARD"], ["GET", "tx1"],
        ["MULTI"], ["SET", "tx1"], ["SET", "tx1", "q"], ["EXEC"],
        ["GET", "tx1"], ["MULTI"], ["NOSUCH"], ["EXEC"], ["MULTI"],
        ["EXEC"], ["MULTI"], ["INCR", "tx1"], ["GET", "tx1"], ["EXEC"],
        ["MULTI"], ["SELECT", "1"], ["SET", "tx3", "1"], ["SELECT", "0"],
        ["EXEC"], ["EXISTS", "tx3"], ["SELECT", "1"], ["GET", "tx3"],
        ["DEL", "tx3"], ["SELECT", "0"], ["MULTI"], ["PING"],
        ["ECHO", "x"], ["MGET", "tx1", "tx2"], ["SET", "tx2", "5", "XX"],
        ["SETRANGE", "tx2", "1", "0"], ["INCRBY", "tx2", "3"],
        ["MSETNX", "tx4", "1", "tx1", "2"], ["EXEC"], ["MULTI"],
        ["MULTI"], ["EXEC"], ["MULTI"], ["EXEC", "x"], ["EXEC"],
        ["MULTI"], ["DISCARD", "x"], ["DISCARD"], ["MULTI"], ["RESET"],
        ["EXEC"], ["MULTI"], ["WATCH", "tx1"], ["SET", "tx1", "w"],
        ["UNWATCH"], ["EXEC"], ["GET", "tx1"], ["UNWATCH"], ["UNWATCH", "x"],
        ["DEL", "tx1", "tx2", "tx4"],
    ],
    # GETBIT, SETBIT, BITCOUNT and BITPOS: offsets and bit values good and
    # bad, missing keys (which answer before other arguments are looked
    # at), empty and binary values, negative and huge ranges, BYTE and BIT.
    "bits": [
        ["DEL", "b1", "b2", "b3", "b4", "b5", "bb", "bc", "be", "bl", "bp",
         "bo", "bi"],
        ["GETBIT", "nokey", "0"], ["GETBIT", "nokey", "4294967295"],
        ["GETBIT", "nokey", "4294967296"], ["GETBIT", "nokey", "-1"],
        ["GETBIT", "nokey", "x"], ["GETBIT", "nokey", "1.5"],
        ["GETBIT", "nokey", "01"], ["GETBIT", "nokey"],
        ["SET", "b1", "`"], ["GETBIT", "b1", "0"], ["GETBIT", "b1", "1"],
        ["GETBIT", "b1", "2"], ["GETBIT", "b1", "3"], ["GETBIT", "b1", "7"],
        ["GETBIT", "b1", "8"], ["GETBIT", "b1", "4294967295"],
        ["SETBIT", "b1", "7", "1"], ["GET", "b1"], ["SETBIT", "b1", "7", "1"],
        ["SETBIT", "b1", "7", "0"], ["GET", "b1"],
        ["SETBIT", "b1", "100", "1"], ["GET", "b1"], ["STRLEN", "b1"],
        ["SETBIT", "b2", "0", "1"], ["GET", "b2"],
        ["SETBIT", "b2", "0", "2"], ["SETBIT", "b2", "0", "-1"],
        ["SETBIT", "b2", "0", "x"], ["SETBIT", "b2", "0", "01"],
        ["SETBIT", "b2", "0", " 1"], ["SETBIT", "b2", "-1", "1"],
        ["SETBIT", "b2", "4294967296", "1"], ["SETBIT", "b2", "x", "x"],
        ["SETBIT", "b2", "0"], ["SETBIT", "b2", "0", "1", "1"],
        ["SET", "b3", "x", "EX", "100"], ["SETBIT", "b3", "1", "1"],
        ["TTL", "b3"], ["GET", "b3"], ["SETBIT", "b3", "20", "0"],
        ["TTL", "b3"], ["GET", "b3"],
        ["SETBIT", "b4", "15", "0"], ["GET", "b4"], ["EXISTS", "b4"],
        ["SETBIT", "b5", "100000", "1"], ["STRLEN", "b5"],
        ["GETBIT", "b5", "100000"], ["GETBIT", "b5", "99999"],
        ["BITCOUNT", "b5"], ["BITPOS", "b5", "1"], ["BITPOS", "b5", "0"],
        ["BITPOS", "b5", "1", "-1"], ["BITPOS", "b5", "0", "12500", "-1"],
        ["SET", "bb", b"\x00\xff\x0f\xf0\r\n"], ["GETBIT", "bb", "8"],
        ["GETBIT", "bb", "7"], ["BITCOUNT", "bb"],
        ["BITCOUNT", "bb", "1", "2"], ["BITPOS", "bb", "1"],
        ["BITPOS", "bb", "0", "1"], ["BITPOS", "bb", "1", "2", "2"],
        ["BITPOS", "bb", "0", "20", "30", "BIT"],
        ["SET", "bc", "foobar"], ["BITCOUNT", "bc"],
        ["BITCOUNT", "bc", "0", "0"], ["BITCOUNT", "bc", "1", "1"],
        ["BITCOUNT", "bc", "1", "-2"], ["BITCOUNT", "bc", "-1", "-1"],
        ["BITCOUNT", "bc", "-2", "-1"], ["BITCOUNT", "bc", "-100", "100"],
        ["BITCOUNT", "bc", "5", "1"], ["BITCOUNT", "bc", "-1", "-2"],
        ["BITCOUNT", "bc", "-1", "-2", "FOO"],
        ["BITCOUNT", "bc", "0", "-1", "FOO"], ["BITCOUNT", "bc", "0"],
        ["BITCOUNT", "bc", "0", "1", "BIT", "x"], ["BITCOUNT", "bc", "x", "1"],
        ["BITCOUNT", "bc", "0", "x"], ["BITCOUNT", "bc", "5", "30", "BIT"],
        ["BITCOUNT", "bc", "5", "30", "bit"],
        ["BITCOUNT", "bc", "0", "5", "BYTE"],
        ["BITCOUNT", "bc", "-5", "-1", "BIT"],
        ["BITCOUNT", "bc", "1", "1", "BIT"], ["BITCOUNT", "bc", "9", "9", "BIT"],
        ["BITCOUNT", "bc", "3", "10", "BIT"],
        ["BITCOUNT", "bc", "-100", "-1", "BIT"],
        ["BITCOUNT", "bc", "0", "1000", "BIT"],
        ["BITCOUNT", "bc", "47", "47", "BIT"],
        ["BITCOUNT", "bc", "48", "100", "BIT"],
        ["BITCOUNT", "bc", "-9223372036854775808", "9223372036854775807",
         "BIT"],
        ["BITCOUNT", "bc", "0", "9223372036854775807", "BIT"],
        ["BITCOUNT", "bc", "9223372036854775807", "0"],
        ["BITCOUNT", "nokey"], ["BITCOUNT", "nokey", "x"],
        ["BITCOUNT", "nokey", "0", "1", "FOO", "x"], ["BITCOUNT"],
        ["SET", "be", ""], ["BITCOUNT", "be"], ["BITCOUNT", "be", "0", "-1"],
        ["BITCOUNT", "be", "0", "-1", "BIT"], ["BITPOS", "be", "0"],
        ["BITPOS", "be", "1"], ["BITPOS", "be", "0", "0"],
        ["BITPOS", "be", "0", "0", "-1", "BIT"], ["GETBIT", "be", "0"],
        ["SETBIT", "be", "0", "0"], ["STRLEN", "be"],
        ["SET", "bl", b"\xff" * 50 + b"\x00" * 50 + b"\x01"],
        ["BITCOUNT", "bl"], ["BITCOUNT", "bl", "3", "90"],
        ["BITCOUNT", "bl", "17", "700", "BIT"], ["BITPOS", "bl", "0"],
        ["BITPOS", "bl", "1", "50"], ["BITPOS", "bl", "1", "50", "-2"],
        ["BITPOS", "bl", "0", "10", "60"], ["BITPOS", "bl", "1", "-60", "-1"],
        ["BITPOS", "bl", "0", "3", "-1", "BIT"],
        ["BITPOS", "bl", "1", "403", "900", "BIT"],
        ["SET", "bp", b"\xff\xf0\x00"], ["BITPOS", "bp", "0"],
        ["BITPOS", "bp", "1"], ["BITPOS", "bp", "1", "2"],
        ["BITPOS", "bp", "0", "2"], ["BITPOS", "bp", "0", "0", "1"],
        ["BITPOS", "bp", "0", "0", "0"], ["BITPOS", "bp", "0", "0"],
        ["BITPOS", "bp", "0", "3", "20", "BIT"],
        ["BITPOS", "bp", "1", "9", "11", "BIT"],
        ["BITPOS", "bp", "1", "12", "15", "BIT"],
        ["BITPOS", "bp", "0", "12", "15", "BIT"],
        ["BITPOS", "bp", "1", "7", "7", "BIT"],
        ["BITPOS", "bp", "0", "-3", "-1", "BIT"],
        ["BITPOS", "bp", "1", "-12", "-1", "BIT"],
        ["BITPOS", "bp", "0", "5", "3", "BIT"],
        ["BITPOS", "bp", "1", "0", "100", "BIT"],
        ["BITPOS", "bp", "0", "1", "2", "BYTE"],
        ["BITPOS", "bp", "1", "-9223372036854775808", "9223372036854775807"],
        ["BITPOS", "bp", "0", "9223372036854775807"],
        ["BITPOS", "bp", "2"], ["BITPOS", "bp", "x"], ["BITPOS", "bp", "-1"],
        ["BITPOS", "nokey", "2"], ["BITPOS", "nokey", "0"],
        ["BITPOS", "nokey", "1"], ["BITPOS", "nokey", "0", "x"],
        ["BITPOS", "bp", "1", "x"], ["BITPOS", "bp", "1", "0", "x"],
        ["BITPOS", "bp", "1", "0", "x", "FOO"],
        ["BITPOS", "bp", "1", "0", "1", "FOO"],
        ["BITPOS", "bp", "1", "0", "1", "BIT", "x"],
        ["BITPOS", "bp", "1", "x", "1", "FOO"], ["BITPOS", "bp"],
        ["SET", "bo", b"\xff\xff\xff"], ["BITPOS", "bo", "0"],
        ["BITPOS", "bo", "0", "0", "-1"], ["BITPOS", "bo", "0", "1"],
        ["BITPOS", "bo", "0", "0", "-1", "BIT"],
        ["BITPOS", "bo", "1", "5", "20", "BIT"], ["BITPOS", "bo", "0", "3"],
        ["SET", "bi", "123"], ["GETBIT", "bi", "2"], ["BITCOUNT", "bi"],
        ["BITPOS", "bi", "0"], ["SETBIT", "bi", "6", "0"], ["GET", "bi"],
        ["DEL", "b1", "b2", "b3", "b4", "b5", "bb", "bc", "be", "bl", "bp",
         "bo", "bi"],
    ],
    "memory": [
        ["SET", "mem1", "hello"], ["MEMORY"], ["MEMORY", "USAGE"],
        ["MEMORY", "USAGE", "nokey"], ["MEMORY", "USAGE", "mem1", "SAMPLES"],
        ["MEMORY", "USAGE", "mem1", "SAMPLES", "x"],
        ["MEMORY", "USAGE", "mem1", "SAMPLES", "-1"],
        ["MEMORY", "USAGE", "mem1", "FOO"],
        ["MEMORY", "USAGE", "nokey", "SAMPLES", "0"], ["MEMORY", "FOO"],
        ["MEMORY", "HELP", "x"], ["DEL", "mem1"],
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
        # Commands without tips or key specifications: all of it the same
        # (empty ones are sets in RESP3).
        ["COMMAND", "INFO", "echo", "select", "hello", "auth", "reset"],
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
        try:
            cls.node = cls.start_node(nport)
        except BaseException:
            # tearDownClass does not run after a failed setUpClass.
            cls.redis.terminate()
            cls.redis.wait()
            for f in cls.files:
                f.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.servers = [Server("redis-server", "127.0.0.1", rport, cls.redis),
                       Server("mycorrizal-node", HOST_NODE, nport, cls.node)]

    @classmethod
    def start_node(cls, nport):
        return subprocess.Popen(
            [CONFIG["bin"], "--name", "resp-cmp", "--gossip", HOST_NODE + ":0",
             "--profile", "local", "--data-dir", os.path.join(cls.tmp, "d"),
             "--resp", "%s:%d" % (HOST_NODE, nport)],
            stdout=cls.files[1], stderr=cls.files[2])

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

    def test_strings_more(self):
        self.compare("strings_more")

    def test_expiry_more(self):
        self.compare("expiry_more")

    def test_server(self):
        self.compare("server")

    def test_fuzz_findings(self):
        self.compare("fuzz_findings")

    def test_client_info_has_redis_fields(self):
        """CLIENT INFO and CLIENT LIST lines name Redis 7.0's fields in
        Redis's order (values differ: ids, ports, ages, buffers)."""
        def names(reply):
            # A bulk string: $<n>\r\n<line>\n\r\n
            line = reply.split(b"\r\n", 1)[1].split(b"\n", 1)[0]
            return [f.split(b"=", 1)[0] for f in line.split(b" ")]

        def both(server):
            sock, reader = server.connect()
            try:
                sock.sendall(encode(["CLIENT", "INFO"]))
                info = names(reader.reply())
                sock.sendall(encode(["CLIENT", "ID"]))
                cid = reader.reply().strip()[1:]
                # Its own line only: other tests' clients may come and go.
                sock.sendall(encode(["CLIENT", "LIST", "ID", cid]))
                return info, names(reader.reply())
            finally:
                sock.close()
        redis, node = (both(s) for s in self.servers)
        self.assertEqual(node[0], redis[0], "CLIENT INFO: field names differ")
        self.assertEqual(node[1], redis[1], "CLIENT LIST: field names differ")

    def info(self, server, *args):
        sock, reader = server.connect()
        try:
            sock.sendall(encode(["INFO", *args]))
            reply = reader.reply()
        finally:
            sock.close()
        return reply.split(b"\r\n", 1)[1].decode()

    def test_info_sections(self):
        """INFO picks Redis 7.0's sections for every choice of arguments,
        in Redis's order; the sections a node answers the same way (not
        Redis replication, not Redis Cluster) name the same fields."""
        def headers(text):
            return [x for x in text.split("\r\n") if x.startswith("# ")]

        def fields(text):
            return [x.split(":", 1)[0] for x in text.split("\r\n")
                    if x and not x.startswith("#")]
        for args in ([], ["all"], ["default"], ["everything"], ["cpu", "all"],
                     ["commandstats"], ["errorstats"], ["cpu", "sentinel"],
                     ["persistence"], ["replication"], ["CLUSTER"],
                     ["server", "Clients"], ["nosuch"], ["default", "cpu"],
                     ["default", "commandstats"], ["latencystats"],
                     ["modules"], ["module_list"], ["keyspace", "server"]):
            got = [headers(self.info(s, *args)) for s in self.servers]
            self.assertEqual(got[1], got[0], "INFO %s: sections differ" % args)
        for section in ("replication", "cluster"):
            got = [fields(self.info(s, section)) for s in self.servers]
            self.assertEqual(got[1], got[0], "INFO %s: fields differ" % section)

    def test_info_commandstats_and_errorstats_count_alike(self):
        """The same commands move INFO commandstats' calls, rejected_calls
        and failed_calls and INFO errorstats' counts by the same amounts on
        both servers."""
        def stats(server):
            out = {}
            for line in self.info(server, "commandstats", "errorstats").split(
                    "\r\n"):
                if line.startswith("cmdstat_"):
                    name, rest = line[len("cmdstat_"):].split(":", 1)
                    kv = dict(x.split("=") for x in rest.split(","))
                    for k in ("calls", "rejected_calls", "failed_calls"):
                        out[(name, k)] = int(kv[k])
                    self.assertRegex(
                        rest, r"^calls=\d+,usec=\d+,usec_per_call=\d+\.\d\d,"
                        r"rejected_calls=\d+,failed_calls=\d+$")
                elif line.startswith("errorstat_"):
                    name, rest = line[len("errorstat_"):].split(":", 1)
                    out[("error", name)] = int(rest.split("=")[1])
            return out
        seq = [["SET", "cs1", "x"], ["GET", "cs1"], ["GET"], ["GET", "a", "b"],
               ["INCR", "cs1"], ["INCR", "cs2"], ["SET", "cs1", "1", "FOO"],
               ["NOSUCHCMD"], ["DEL", "cs1", "cs2"], ["STRLEN", "cs1"]]
        deltas = []
        for server in self.servers:
            before = stats(server)
            run_sequence(server, seq)
            after = stats(server)
            deltas.append({k: v - before.get(k, 0) for k, v in after.items()
                           if k[0] in ("set", "get", "incr", "del", "strlen",
                                       "error")
                           and v != before.get(k, 0)})
        self.assertEqual(deltas[1], deltas[0], "counts moved differently")

    def test_info_keyspace_hits_and_misses_count_alike(self):
        """Read commands' lookups move INFO keyspace_hits and
        keyspace_misses by the same amounts on both servers; writes do
        not move them."""
        def counts(server):
            kv = dict(line.split(":", 1) for line in
                      self.info(server, "stats").split("\r\n")
                      if ":" in line)
            return int(kv["keyspace_hits"]), int(kv["keyspace_misses"])
        seq = [["SET", "kh1", "abc"], ["DEL", "kh2"], ["GET", "kh1"],
               ["GET", "kh2"], ["MGET", "kh1", "kh2", "kh1"],
               ["EXISTS", "kh1", "kh2"], ["STRLEN", "kh1"],
               ["STRLEN", "kh2"], ["GETRANGE", "kh1", "0", "1"],
               ["TYPE", "kh2"], ["TTL", "kh1"], ["PTTL", "kh2"],
               ["EXPIRETIME", "kh1"], ["GETBIT", "kh1", "3"],
               ["BITCOUNT", "kh2"], ["BITPOS", "kh1", "1"],
               ["INCR", "kh3"], ["APPEND", "kh1", "d"], ["DEL", "kh3"]]
        deltas = []
        for server in self.servers:
            before = counts(server)
            run_sequence(server, seq)
            after = counts(server)
            deltas.append((after[0] - before[0], after[1] - before[1]))
        self.assertEqual(deltas[1], deltas[0],
                         "(hits, misses) moved differently")
        self.assertGreater(deltas[0][0], 5)

    def test_config_resetstat_restarts_info_counts(self):
        """CONFIG RESETSTAT empties INFO errorstats and restarts
        commandstats on both servers alike."""
        got = []
        for server in self.servers:
            run_sequence(server, [["GET"], ["GET", "rs1"], ["NOSUCH"],
                                  ["CONFIG", "RESETSTAT"]])
            errors = self.info(server, "errorstats")
            run_sequence(server, [["GET", "rs1"], ["GET", "rs1", "x"]])
            get = [line.split(":", 1)[1].split(",")
                   for line in self.info(server, "commandstats").split("\r\n")
                   if line.startswith("cmdstat_get:")]
            got.append((errors, [[f for f in line if not f.startswith("usec")]
                                 for line in get]))
        self.assertEqual(got[0][0].strip(), "# Errorstats")
        self.assertEqual(got[0][1], [["calls=1", "rejected_calls=1",
                                      "failed_calls=0"]])
        self.assertEqual(got[1], got[0])

    def test_transactions(self):
        self.compare("transactions")

    def test_rename_copy_move(self):
        self.compare("rename_copy_move")

    def test_bits(self):
        self.compare("bits")

    def test_setbit_past_mycel_limit(self):
        """Redis grows a string to 512 MB for SETBIT at offset 2^32 - 1; a
        Mycel value stops at its limit (as SETRANGE's), refused before it
        is built. The node alone."""
        sock, reader = self.servers[1].connect()
        try:
            sock.sendall(encode(["SETBIT", "big", "4294967295", "1"]))
            reply = reader.reply()
            sock.sendall(encode(["EXISTS", "big"]))
            exists = reader.reply()
        finally:
            sock.close()
        self.assertTrue(reply.startswith(b"-ERR mycel: too_large"), reply)
        self.assertEqual(exists, b":0\r\n")

    def test_rename_never_loses_a_write(self):
        """RENAMEs racing SETs of their sources, on two connections of the
        node: each new value ends up in the source (written after the
        rename read it: the delete is skipped, the old value is in the
        destination) or in the destination (written before). The node
        alone; no sleeps, the race is what the pipelines make."""
        n = 300
        src = ["race:s%d" % i for i in range(n)]
        dst = ["race:d%d" % i for i in range(n)]

        def pipeline(cmds):
            sock, reader = self.servers[1].connect()
            try:
                sock.sendall(b"".join(encode(c) for c in cmds))
                return [reader.reply() for _ in cmds]
            finally:
                sock.close()

        pipeline([["DEL"] + src + dst] + [["SET", k, "old"] for k in src])
        out = {}
        threads = [
            threading.Thread(target=lambda: out.__setitem__(
                "rename", pipeline([["RENAME", s, d]
                                    for s, d in zip(src, dst)]))),
            threading.Thread(target=lambda: out.__setitem__(
                "set", pipeline([["SET", k, "new"] for k in src]))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(set(out["rename"]), {b"+OK\r\n"})
        self.assertEqual(set(out["set"]), {b"+OK\r\n"})
        got = pipeline([["MGET", s, d] for s, d in zip(src, dst)])
        allowed = {b"*2\r\n$-1\r\n$3\r\nnew\r\n",
                   b"*2\r\n$3\r\nnew\r\n$3\r\nold\r\n"}
        bad = [(s, r) for s, r in zip(src, got) if r not in allowed]
        self.assertFalse(bad, bad[:5])
        pipeline([["DEL"] + src + dst])

    def test_memory(self):
        self.compare("memory")

    def test_fuzz_findings_2(self):
        self.compare("fuzz_findings_2")

    def test_keyspace(self):
        """SCAN, KEYS, DBSIZE, RANDOMKEY, FLUSHDB and FLUSHALL on database
        5; key lists compared as sets (their order is the server's own)."""
        keys = ["k1", "k2", "user:1", "user:22", "user:333", "h[a]llo",
                "hallo", "x\x00y", ""]
        results = []
        for server in self.servers:
            sock, reader = server.connect()
            try:
                def call(*args):
                    sock.sendall(encode(list(args)))
                    return reader.reply()

                def keys_of(reply):
                    # An array of bulk strings, decoded.
                    out, rest = [], reply
                    head, rest = rest.split(b"\r\n", 1)
                    for _ in range(int(head[1:])):
                        n, rest = rest.split(b"\r\n", 1)
                        size = int(n[1:])
                        out.append(rest[:size])
                        rest = rest[size + 2:]
                    return sorted(out)

                def scan_all(*opts):
                    cursor, seen, calls = b"0", [], 0
                    while True:
                        sock.sendall(encode(["SCAN", cursor] + list(opts)))
                        r = reader.reply()
                        head, rest = r.split(b"\r\n", 1)
                        n, rest = rest.split(b"\r\n", 1)
                        cursor = rest[:int(n[1:])]
                        seen += keys_of(rest[int(n[1:]) + 2:])
                        calls += 1
                        if cursor == b"0" or calls > 10000:
                            return sorted(set(seen))

                got = {}
                got["select"] = call("SELECT", "5")
                got["flush"] = call("FLUSHDB")
                got["empty_dbsize"] = call("DBSIZE")
                got["empty_random"] = call("RANDOMKEY")
                got["empty_keys"] = call("KEYS", "*")
                got["empty_scan"] = call("SCAN", "0")
                for k in keys:
                    call("SET", k, "v")
                call("SET", "with-ttl", "v", "EX", "100")
                got["dbsize"] = call("DBSIZE")
                for pattern in ["*", "user:*", "user:?", "h[a]llo",
                                "h\\[a\\]llo", "*[0-9]", "x*", "[^u]*",
                                "nomatch*"]:
                    got["keys " + pattern] = keys_of(call("KEYS", pattern))
                got["scan"] = scan_all()
                got["scan count"] = scan_all("COUNT", "2")
                got["scan match"] = scan_all("MATCH", "user:*", "COUNT", "3")
                got["scan type string"] = scan_all("TYPE", "string")
                got["scan type hash"] = scan_all("TYPE", "hash")
                r = call("RANDOMKEY")
                got["random is a key"] = r.split(b"\r\n")[1] in [
                    k.encode() for k in keys + ["with-ttl"]] or r == (
                        b"$0\r\n\r\n")
                got["select 6"] = call("SELECT", "6")
                call("SET", "other", "v")
                got["flushdb 6"] = call("FLUSHDB", "ASYNC")
                got["dbsize 6"] = call("DBSIZE")
                got["select 5"] = call("SELECT", "5")
                got["dbsize 5 kept"] = call("DBSIZE")
                got["flushall"] = call("FLUSHALL", "SYNC")
                got["dbsize after flushall"] = call("DBSIZE")
                got["keys after flushall"] = call("KEYS", "*")
                got["set after flushall"] = call("SET", "k1", "again")
                got["get after flushall"] = call("GET", "k1")
                call("FLUSHALL")
            finally:
                sock.close()
            results.append(got)
        diffs = ["%s:\n  redis-server:    %r\n  mycorrizal-node: %r"
                 % (k, results[0][k], results[1].get(k))
                 for k in results[0] if results[0][k] != results[1].get(k)]
        self.assertFalse(diffs, "\n".join(diffs))

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
