#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The node's HTTP endpoints (--http) checked by the real clients they are
for. Each test runs mycorrizal-node processes (--profile local, --cache
storage, --console, one development CA in a shared --data-dir) on loopback
addresses of their own, gossip and HTTP on ports the kernel picks.

* test_promtool_and_prometheus_scrape: three nodes; every node's /metrics
  passes `promtool check metrics` and shows 3 alive members and every
  scrape part up; a Prometheus server scraping the three nodes every
  second sees all targets up, and `sum(mycorrizal_cache_hits_total)` rises
  above its value before 20 gets of a key (bucket `web`, RF 2) through the
  nodes' consoles.
* test_status_page_in_chromium: three nodes; headless Chromium
  (--no-sandbox: its sandbox refuses to run as root) loads the status page (/), whose
  script fetches /status and fills the members table: the dumped DOM
  lists the three nodes as alive, the summary "3 of 3 members alive" and
  no error, while the static HTML names none of them (so the script ran).
* test_token: one node with --http-token-file: /metrics, /status, / and
  /ready answer 401 (with a WWW-Authenticate header) without the token,
  with a wrong one or without "Bearer "; 200 with `Authorization: Bearer
  TOKEN` (and / with ?token=TOKEN); /health answers 200 without it.

Nodes use 127.0.0.91-93 (Prometheus), 127.0.0.94-96 (Chromium) and
127.0.0.97 (token), so the tests can run beside each other and beside the
other system tests. No root, no namespaces; Python 3 stdlib only. Tests
never sleep for an answer: they poll a condition until a deadline and, on
failure, print what they saw and the nodes' last lines. Nodes get SIGTERM
at the end (their exit status must be 0), SIGKILL if they do not exit, and
SIGKILL if this script dies (parent-death signal).

Usage:
    test_http.py --bin <build>/tools/mycorrizal-node [--keep-logs DIR] \\
        [HttpTests.test_token ...]

A test whose external tool (promtool and prometheus, or chromium) is
missing is skipped; the script exits 77 when every selected test was
skipped.
"""

import argparse
import ctypes
import html.parser
import json
import os
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
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True

CONFIG = {"bin": None, "keep": None}

# Exit status when every selected test was skipped (ctest SKIP_RETURN_CODE).
SKIP = 77

# Generous on 2 loaded cores (and for sanitized builds).
START_TIMEOUT = 30.0     # a process prints its "HTTP on" / "ready" line
FORM_TIMEOUT = 60.0      # every /status shows 3 alive members
PROM_TIMEOUT = 60.0      # Prometheus up, all targets up, the query rises
PAGE_TIMEOUT = 90.0      # Chromium's DOM shows the members
STOP_TIMEOUT = 30.0      # a node exits after SIGTERM
GETS = 20

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: SIGKILL to the child when this process dies, even by
    SIGKILL (a ctest timeout), so nothing outlives the test."""
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
    """A child process whose stdout and stderr lines are kept with their
    arrival times; stdin is a pipe when `stdin` is true."""

    def __init__(self, name, argv, cwd, stdin=False):
        self.name = name
        self.argv = list(argv)
        self.lock = threading.Lock()
        self.lines = []      # (t, stream, text)
        self.t0 = now()
        self.expect_exit = False
        self.termed = False
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent, start_new_session=True)
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

    def find(self, rx, stream="out", since=0):
        """The first match of `rx` (re.search) in a line from index
        `since` on: (index, match) or None."""
        with self.lock:
            for i in range(since, len(self.lines)):
                _, s, text = self.lines[i]
                if stream is None or s == stream:
                    m = rx.search(text)
                    if m:
                        return i, m
        return None

    def text(self, stream=None):
        with self.lock:
            return "\n".join(t for _, s, t in self.lines
                             if stream is None or s == stream)

    def tail(self, n=25):
        with self.lock:
            last = self.lines[-n:]
        status = "running" if self.running() else "exited %s" % (
            self.proc.returncode,)
        out = ["--- %s (%s, pid %d), last %d lines:" % (
            self.name, status, self.proc.pid, len(last))]
        for t, s, text in last:
            out.append("  %8.3f %s %s" % (t - self.t0, s, text))
        return "\n".join(out)

    def term(self):
        """SIGTERM, once."""
        self.expect_exit = True
        if self.running() and not self.termed:
            self.termed = True
            self._add("lab", "--- SIGTERM")
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to `timeout` s, then SIGKILL. @returns the exit
        status, or None if it had to be killed. Idempotent."""
        self.term()
        killed = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._add("lab", "--- SIGKILL (no exit %d s after SIGTERM)"
                      % timeout)
            killed = True
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return None if killed else self.proc.returncode

    def dump(self, path):
        with self.lock, open(path, "w") as f:
            for t, s, text in self.lines:
                f.write("%8.3f %s %s\n" % (t - self.t0, s, text))


_HTTP_ON = re.compile(r"^\[([^\]]+)\] HTTP on (\S+)$")
_READY = re.compile(r"^\[([^\]]+)\] ready: gossip (\S+?),")


class Node(Proc):
    """A mycorrizal-node process with --http (and --console)."""

    def __init__(self, name, ip, work, seeds=(), extra=()):
        self.ip = ip
        argv = [CONFIG["bin"], "--name", name, "--gossip", ip + ":0",
                "--profile", "local", "--data-dir",
                os.path.join(work, "certs"), "--log-level", "warn",
                "--cache", "storage", "--console", "--http", ip + ":0"]
        for s in seeds:
            argv += ["--seed", s]
        super().__init__(name, argv + list(extra), work, stdin=True)
        self.cmd_lock = threading.Lock()
        self._http = None
        self._gossip = None

    def _line(self, rx, what):
        def fn():
            hit = self.find(rx)
            return (hit is not None and hit[1].group(1) == self.name,
                    "no %s line yet" % what)
        wait_until(fn, START_TIMEOUT, "%s prints its %s line" % (
            self.name, what), [self])
        return self.find(rx)[1].group(2)

    @property
    def http(self):
        """HOST:PORT of its HTTP server (from its 'HTTP on' line)."""
        if self._http is None:
            self._http = self._line(_HTTP_ON, "'HTTP on'")
        return self._http

    @property
    def gossip(self):
        """HOST:PORT of its gossip socket (from its 'ready' line)."""
        if self._gossip is None:
            self._gossip = self._line(_READY, "'ready'")
        return self._gossip

    def url(self, path):
        return "http://%s%s" % (self.http, path)

    def console(self, line, timeout=30):
        """Sends a console command; @returns its answer (after ' -> ')."""
        prefix = "[%s] %s -> " % (self.name, line)
        with self.cmd_lock:
            with self.lock:
                seen = len(self.lines)
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
            deadline = now() + timeout
            while True:
                with self.lock:
                    for _, s, text in self.lines[seen:]:
                        if s == "out" and text.startswith(prefix):
                            return text[len(prefix):]
                if now() >= deadline or not self.running():
                    raise AssertionError(failure_text(
                        "%s: no answer to '%s' within %d s" % (
                            self.name, line, timeout), "", [self]))
                time.sleep(0.02)


def failure_text(headline, detail, procs, lines=25):
    out = [headline, "  seen: " + (detail or "-")]
    for p in procs:
        out.append(p.tail(lines))
    return "\n".join(out)


def wait_until(fn, timeout, what, procs=(), poll=0.1):
    """Polls `fn` (returning (ok, detail)) until it holds or `timeout`
    seconds passed; @returns the seconds it took. A process of `procs`
    that exited fails the wait at once. On failure: AssertionError with
    the last detail and the processes' last lines."""
    t0 = now()
    deadline = t0 + timeout
    while True:
        try:
            ok, detail = fn()
        except Exception as e:  # a request that failed this time
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        if ok:
            return now() - t0
        for p in procs:
            if not p.expect_exit and not p.running():
                raise AssertionError(failure_text(
                    "%s exited (status %s) while waiting for: %s" % (
                        p.name, p.proc.returncode, what), detail, procs,
                    lines=40))
        if now() >= deadline:
            raise AssertionError(failure_text(
                "timed out after %.0f s waiting for: %s" % (timeout, what),
                detail, procs))
        time.sleep(poll)


# -- HTTP ---------------------------------------------------------------------


def http_get(url, headers=None, timeout=10):
    """@returns (status, headers, body as str); HTTP errors are answers
    too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        return e.code, e.headers, body


def get_json(url, timeout=10):
    status, _, body = http_get(url, timeout=timeout)
    if status != 200:
        raise RuntimeError("%s: HTTP %d: %s" % (url, status, body[:200]))
    return json.loads(body)


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def run_group(argv, timeout, cwd):
    """Runs `argv` in a process group of its own; on timeout kills the
    whole group (a browser's helpers too) and raises TimeoutExpired.
    @returns a CompletedProcess with text stdout and stderr."""
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         preexec_fn=_die_with_parent)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # helpers left behind
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def samples(text, name):
    """{labels text: value} of metric `name` in a Prometheus text body."""
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            out[m.group(2) or ""] = float(m.group(3))
    return out


class TableRows(html.parser.HTMLParser):
    """The rows (lists of cell texts) of the <table id=...> in a DOM."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id = table_id
        self.depth = 0       # > 0 inside the table
        self.found = False
        self.rows = []
        self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            if self.depth:
                self.depth += 1
            elif dict(attrs).get("id") == self.table_id:
                self.depth = 1
                self.found = True
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            if self.rows:
                self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.depth and self.cell is not None:
            self.cell.append(data)


def table_rows(dom, table_id):
    p = TableRows(table_id)
    p.feed(dom)
    p.close()
    return p.found, p.rows


# -- the tests ----------------------------------------------------------------


class HttpTests(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="mczhttp-%s." % (
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

    def need(self, *tools):
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            self.skipTest("not found: %s" % ", ".join(missing))

    # -- the cluster ------------------------------------------------------

    def start_cluster(self, names, ips):
        """Starts names[0] alone, the others with it as their seed, and
        waits until every node's /status shows all of them alive."""
        t0 = now()
        first = Node(names[0], ips[0], self.work)
        self.procs.append(first)
        seed = first.gossip
        nodes = [first]
        for name, ip in zip(names[1:], ips[1:]):
            n = Node(name, ip, self.work, seeds=[seed])
            self.procs.append(n)
            nodes.append(n)
        for n in nodes:
            n.http  # noqa: B018 - waits for the 'HTTP on' line
        want = sorted(names)

        def formed():
            seen = {}
            ok = True
            for n in nodes:
                s = get_json(n.url("/status"))
                alive = sorted(m["name"] for m in s["members"]
                               if m["state"] == "alive")
                seen[n.name] = ["%s=%s" % (m["name"], m["state"])
                                for m in s["members"]]
                ok = ok and alive == want and s["node"]["name"] == n.name
            return ok, json.dumps(seen)
        wait_until(formed, FORM_TIMEOUT, "every /status shows %s alive"
                   % ", ".join(want), nodes)
        say("formed in %.1f s: %s (HTTP %s)" % (
            now() - t0, ", ".join(names),
            ", ".join(n.http for n in nodes)))
        return nodes

    def stop_nodes(self, nodes):
        """SIGTERM to every node, then each must exit 0."""
        for n in nodes:
            n.term()
        for n in nodes:
            rc = n.stop()
            self.assertEqual(rc, 0, failure_text(
                "%s: exit status %s after SIGTERM" % (n.name, rc), "", [n]))

    # -- a: promtool and Prometheus ---------------------------------------

    def start_prometheus(self, nodes):
        """Prometheus scraping `nodes` every second on a free port;
        @returns (proc, base url). A port taken between picking and
        binding gets one more try with another port."""
        cfg = os.path.join(self.work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: mycorrizal\n"
                    "    static_configs:\n"
                    "      - targets: [%s]\n"
                    % ", ".join('"%s"' % n.http for n in nodes))
        for attempt in (1, 2):
            port = free_port()
            data = os.path.join(self.work, "prometheus-data-%d" % attempt)
            p = Proc("prometheus", [
                "prometheus", "--config.file=" + cfg,
                "--storage.tsdb.path=" + data,
                "--web.listen-address=127.0.0.1:%d" % port],
                self.work)
            self.procs.append(p)
            base = "http://127.0.0.1:%d" % port
            exited = []

            def ready():
                if not p.running():
                    exited.append(p.proc.returncode)
                    return True, ""
                status, _, body = http_get(base + "/-/ready", timeout=5)
                return status == 200, "/-/ready: %d %s" % (
                    status, body.strip()[:100])
            wait_until(ready, PROM_TIMEOUT, "Prometheus ready on %s" % base,
                       [])
            if not exited:
                return p, base
            p.stop()
            if attempt == 1 and "address already in use" in p.text("err"):
                say("port %d was taken; Prometheus once more" % port)
                continue
            raise AssertionError(failure_text(
                "Prometheus exited with status %s" % exited[0], "", [p], 40))

    def query(self, base, expr):
        """The value of an instant query's single sample, or None when the
        result is empty."""
        url = base + "/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr})
        r = get_json(url)
        if r.get("status") != "success":
            raise RuntimeError("query %s: %s" % (expr, r))
        res = r["data"]["result"]
        if not res:
            return None
        return float(res[0]["value"][1])

    def test_promtool_and_prometheus_scrape(self):
        """promtool accepts every node's /metrics; Prometheus scrapes the
        three nodes and sees the cache hits rise after gets."""
        self.need("promtool", "prometheus")
        names = ["http-n1", "http-n2", "http-n3"]
        nodes = self.start_cluster(
            names, ["127.0.0.91", "127.0.0.92", "127.0.0.93"])

        for n in nodes:
            status, hdrs, body = http_get(n.url("/metrics"))
            self.assertEqual(status, 200, "%s /metrics: %s" % (n.name, body))
            self.assertTrue(hdrs.get("Content-Type", "").startswith(
                "text/plain; version=0.0.4"), hdrs.get("Content-Type"))
            p = subprocess.run(["promtool", "check", "metrics"], input=body,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, "promtool check metrics on "
                             "%s's /metrics (status %d):\n%s" % (
                                 n.name, p.returncode, p.stdout))
            if p.stdout.strip():
                say("promtool on %s's /metrics: %s" % (n.name,
                                                       p.stdout.strip()))
            alive = samples(body, "mycorrizal_members").get(
                '{state="alive"}')
            self.assertEqual(alive, 3.0, "%s: mycorrizal_members"
                             '{state="alive"} is %s' % (n.name, alive))
            parts = samples(body, "mycorrizal_scrape_part_up")
            self.assertTrue(parts, "%s: no mycorrizal_scrape_part_up" %
                            n.name)
            down = {k: v for k, v in parts.items() if v != 1.0}
            self.assertFalse(down, "%s: scrape parts not up: %s" % (
                n.name, down))
        say("promtool check metrics: ok on %s" % ", ".join(names))

        prom, base = self.start_prometheus(nodes)
        want = sorted(n.http for n in nodes)

        def targets_up():
            r = get_json(base + "/api/v1/targets?state=active")
            seen = {}
            for t in r["data"]["activeTargets"]:
                inst = t["labels"].get("instance", t.get("scrapeUrl"))
                seen[inst] = (t["health"], t.get("lastError", ""))
            ok = sorted(seen) == want and all(
                h == "up" for h, _ in seen.values())
            return ok, json.dumps(seen)
        took = wait_until(targets_up, PROM_TIMEOUT,
                          "Prometheus: targets %s all up" % want,
                          nodes + [prom])
        say("Prometheus on %s: all 3 targets up after %.1f s" % (base, took))

        first = nodes[0]
        self.assertEqual(first.console("mkbucket web rf=2"), "created")

        def bucket_known():
            seen = {n.name: n.console("buckets") for n in nodes}
            return all("web (rf 2" in v for v in seen.values()), str(seen)
        wait_until(bucket_known, FORM_TIMEOUT, "every node knows bucket web",
                   nodes)
        self.assertEqual(first.console("put web k v"), "OK")

        # The value before the gets: once Prometheus has scraped bucket
        # web's series from every node.
        def web_scraped():
            c = self.query(base, 'count(mycorrizal_cache_hits_total'
                           '{bucket="web"})')
            return c == len(nodes), "%s series of bucket web" % c
        wait_until(web_scraped, PROM_TIMEOUT, "Prometheus has bucket web's "
                   "mycorrizal_cache_hits_total from every node",
                   nodes + [prom])
        before = self.query(base, "sum(mycorrizal_cache_hits_total)")
        say("sum(mycorrizal_cache_hits_total) before the gets: %s" % before)
        self.assertIsNotNone(before)
        for i in range(GETS):
            n = nodes[i % len(nodes)]
            self.assertEqual(n.console("get web k"), '"v"',
                             "get %d through %s" % (i + 1, n.name))
        seen = []

        def rose():
            v = self.query(base, "sum(mycorrizal_cache_hits_total)")
            seen.append(v)
            return (v is not None and v > 0 and v > before,
                    "value %s (before the gets: %s)" % (v, before))
        took = wait_until(rose, PROM_TIMEOUT,
                          "sum(mycorrizal_cache_hits_total) rises above %s"
                          % before, nodes + [prom])
        hits = sum(sum(v for k, v in samples(
            http_get(n.url("/metrics"))[2],
            "mycorrizal_cache_hits_total").items()
            if 'bucket="web"' in k) for n in nodes)
        say("sum(mycorrizal_cache_hits_total) rose to %s %.1f s after %d "
            "gets (the nodes' /metrics now: %s)" % (seen[-1], took, GETS,
                                                    hits))
        self.assertGreaterEqual(hits, GETS, "the nodes' hits on web")
        prom.stop()
        self.stop_nodes(nodes)

    # -- b: the status page in Chromium -----------------------------------

    def test_status_page_in_chromium(self):
        """Headless Chromium renders the status page; its script fills
        the members table with the three nodes, alive."""
        self.need("chromium")
        names = ["page-n1", "page-n2", "page-n3"]
        nodes = self.start_cluster(
            names, ["127.0.0.94", "127.0.0.95", "127.0.0.96"])
        url = nodes[0].url("/")

        status, hdrs, static = http_get(url)
        self.assertEqual(status, 200, static)
        self.assertTrue(hdrs.get("Content-Type", "").startswith("text/html"),
                        hdrs.get("Content-Type"))
        self.assertIn('<table id="members">', static)
        for name in names:
            self.assertNotIn(name, static, "the static page names %s" % name)

        profile = os.path.join(self.work, "chromium-profile")
        argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=" + profile,
                "--virtual-time-budget=10000", "--dump-dom", url]
        runs = []

        def rendered():
            t0 = now()
            p = run_group(argv, 60, self.work)
            found, rows = table_rows(p.stdout, "members")
            runs.append((now() - t0, p.returncode))
            alive = {r[0] for r in rows[1:] if len(r) >= 2
                     and r[1] == "alive"}
            summary = re.search(r'<span[^>]*id="summary"[^>]*>([^<]*)<',
                                p.stdout)
            error = re.search(r'<span[^>]*id="error"[^>]*>([^<]*)<',
                              p.stdout)
            summary = summary.group(1) if summary else None
            error = error.group(1) if error else None
            ok = p.returncode == 0 and found and all(
                n in alive for n in names) and error == "" and \
                summary is not None and summary.startswith(
                    "%d of %d members alive" % (len(names), len(names)))
            detail = ("chromium status %d, members table %s: %s; summary "
                      "%r, error %r" % (p.returncode,
                                        "found" if found else "missing",
                                        rows, summary, error))
            if p.returncode != 0 or not found:
                detail += "\n  stderr: " + p.stderr.strip()[-2000:]
            return ok, detail
        took = wait_until(rendered, PAGE_TIMEOUT,
                          "Chromium's DOM of %s lists %s alive" % (
                              url, ", ".join(names)), nodes, poll=1.0)
        say("Chromium rendered the members table in %.1f s (%d run(s): %s)"
            % (took, len(runs), ", ".join("%.1f s, status %d" % r
                                          for r in runs)))
        self.stop_nodes(nodes)

    # -- c: the bearer token ----------------------------------------------

    def test_token(self):
        """--http-token-file: 401 without (or with a wrong) token, 200
        with it; /health needs none."""
        token = "s3cret-%d" % os.getpid()
        path = os.path.join(self.work, "token")
        with open(path, "w") as f:
            f.write(token + "\n")
        n = Node("tok-n1", "127.0.0.97", self.work,
                 extra=["--http-token-file", path])
        self.procs.append(n)
        n.gossip  # noqa: B018 - waits until it is ready
        good = {"Authorization": "Bearer " + token}
        bad = {"Authorization": "Bearer not-" + token}

        for p in ("/metrics", "/status", "/", "/ready"):
            for headers, what in ((None, "no token"), (bad, "a wrong token"),
                                  ({"Authorization": token}, "no 'Bearer'")):
                status, hdrs, body = http_get(n.url(p), headers)
                self.assertEqual(status, 401, "%s with %s: %d %s" % (
                    p, what, status, body[:200]))
                self.assertTrue(hdrs.get("WWW-Authenticate", "").startswith(
                    "Bearer"), "%s: WWW-Authenticate %r" % (
                        p, hdrs.get("WWW-Authenticate")))
                self.assertNotIn("mycorrizal_", body)
        status, _, body = http_get(n.url("/metrics"), good)
        self.assertEqual(status, 200, body[:200])
        self.assertIn("mycorrizal_members", body)
        status, _, body = http_get(n.url("/status"), good)
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(json.loads(body)["node"]["name"], "tok-n1")
        status, _, body = http_get(n.url("/"), good)
        self.assertEqual(status, 200, body[:200])
        status, _, body = http_get(n.url("/?token=" + token))
        self.assertEqual(status, 200, body[:200])
        status, _, body = http_get(n.url("/?token=not-" + token))
        self.assertEqual(status, 401, body[:200])
        status, _, body = http_get(n.url("/health"))
        self.assertEqual(status, 200, "/health without a token: %s" % body)
        self.assertEqual(body.strip(), "ok")
        status, _, body = http_get(n.url("/health"), bad)
        self.assertEqual(status, 200, "/health, wrong token: %s" % body)
        say("token: 401 without it on /metrics, /status, /, /ready; 200 "
            "with it; /health open")
        self.stop_nodes([n])


class Result(unittest.TextTestResult):
    def addFailure(self, test, err):
        super().addFailure(test, err)
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print(self._exc_info_to_string(err, test), flush=True)


def _on_signal(signum, frame):
    # SIGTERM (ctest's timeout) or SIGHUP: run the cleanups.
    raise SystemExit(128 + signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="mycorrizal-node binary")
    ap.add_argument("--keep-logs", help="write every process's lines to "
                    "DIR/<test>/<name>.log")
    ap.add_argument("tests", nargs="*", help="e.g. HttpTests.test_token")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        print("error: not executable: %s" % args.bin, file=sys.stderr)
        return 2
    CONFIG["bin"] = os.path.abspath(args.bin)
    CONFIG["keep"] = os.path.abspath(args.keep_logs) if args.keep_logs \
        else None
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    loader = unittest.TestLoader()
    if args.tests:
        suite = loader.loadTestsFromNames(args.tests, sys.modules[__name__])
    else:
        suite = loader.loadTestsFromTestCase(HttpTests)
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
