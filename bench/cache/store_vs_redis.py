#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Memory and speed of Mycel's store core against a plain unordered_map and
redis-server, with the same keys and values, in one run.

    bench/cache/store_vs_redis.py --store-bench build/release/bench/store_bench \
        [--entries 1000000] [--value-size 100]

store_bench measures the store and the map in its own process (heap bytes
per entry from mallinfo2, beyond key and value). Here a private
redis-server (no persistence, 127.0.0.1, a free port) takes the same
entries through pipelined SETs; its overhead per key is the growth of
INFO memory's used_memory, divided by the keys, minus key and value bytes.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_overhead(entries, value_size):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="store_vs_redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    sys.exit("redis-server did not start")
                time.sleep(0.05)
        version = r.info("server")["redis_version"]
        before = r.info("memory")["used_memory"]
        value = b"v" * value_size
        t0 = time.monotonic()
        pipe = r.pipeline(transaction=False)
        for i in range(entries):
            pipe.set("key:%010u" % i, value)
            if i % 10000 == 9999:
                pipe.execute()
        pipe.execute()
        elapsed = time.monotonic() - t0
        after = r.info("memory")["used_memory"]
        assert r.dbsize() == entries, r.dbsize()
        per_key = (after - before) / entries - (14 + value_size)
        return {"version": version, "overhead": per_key,
                "load_s": elapsed}
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store-bench", required=True)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    args = ap.parse_args()
    out = subprocess.run(
        [args.store_bench, "--entries", str(args.entries), "--value-size",
         str(args.value_size), "--json"],
        check=True, capture_output=True, text=True).stdout
    core = json.loads(out)
    red = redis_overhead(args.entries, args.value_size)
    m, s = core["map"], core["store"]
    print(f"{args.entries} entries, 14-byte keys, {args.value_size}-byte "
          f"values; overhead = bytes per entry beyond key and value")
    print(f"| | put ns/op | get ns/op | overhead B/entry |")
    print(f"|---|---:|---:|---:|")
    print(f"| unordered_map<string,string> (baseline) | {m['put_ns']:.0f} | "
          f"{m['get_ns']:.0f} | {m['overhead']:.0f} |")
    print(f"| cache::store | {s['put_ns']:.0f} | {s['get_ns']:.0f} | "
          f"{s['overhead']:.0f} |")
    print(f"| redis-server {red['version']} (used_memory) | | | "
          f"{red['overhead']:.0f} |")
    print()
    print(f"store/map: put {s['put_ns'] / m['put_ns']:.2f}x, get "
          f"{s['get_ns'] / m['get_ns']:.2f}x the time, overhead "
          f"{s['overhead'] / m['overhead']:.2f}x; store/redis overhead "
          f"{s['overhead'] / red['overhead']:.2f}x; the store accounts "
          f"{s['accounted_overhead']:.0f} B/entry of overhead")


if __name__ == "__main__":
    main()
