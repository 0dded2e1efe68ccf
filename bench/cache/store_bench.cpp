// SPDX-License-Identifier: Apache-2.0
// store_bench: Mycel's store core against a plain
// std::unordered_map<std::string, std::string> holding the same entries, in
// the same process: put and get ops/s, and heap bytes per entry beyond the
// key and value (glibc mallinfo2, which counts the allocator's headers).
//
//   store_bench [--entries N] [--value-size B] [--json]
//
// Keys are "key:%010u" (14 bytes) and values B bytes (default 100); gets
// read every key once in a shuffled order. bench/cache/store_vs_redis.py
// runs this and redis-server with the same keys and values.
#include "mycorrizal/cache/store.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using namespace mycorrizal::cache;
using clock_type = std::chrono::steady_clock;

size_t heap_in_use() {
  auto mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

std::string key_of(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key:%010u", i);
  return buf;
}

struct result {
  double put_ns = 0;
  double get_ns = 0;
  double bytes_per_entry = 0;
};

template <class Put, class Get>
result run(size_t n, size_t value_size, const std::vector<uint32_t>& order,
           Put&& put, Get&& get) {
  result r;
  std::string value(value_size, 'v');
  auto heap0 = heap_in_use();
  auto t0 = clock_type::now();
  for (uint32_t i = 0; i < n; ++i) {
    put(key_of(i), value);
  }
  auto t1 = clock_type::now();
  auto heap1 = heap_in_use();
  size_t found = 0;
  auto t2 = clock_type::now();
  for (auto i : order) {
    found += get(key_of(i)) ? 1 : 0;
  }
  auto t3 = clock_type::now();
  if (found != n) {
    std::fprintf(stderr, "store_bench: found %zu of %zu\n", found, n);
    std::exit(1);
  }
  auto ns = [](auto d) {
    return std::chrono::duration<double, std::nano>(d).count();
  };
  r.put_ns = ns(t1 - t0) / static_cast<double>(n);
  r.get_ns = ns(t3 - t2) / static_cast<double>(n);
  // Beyond the key and value bytes themselves.
  r.bytes_per_entry = static_cast<double>(heap1 - heap0)
                        / static_cast<double>(n)
                      - static_cast<double>(14 + value_size);
  return r;
}

} // namespace

int main(int argc, char** argv) {
  size_t n = 1'000'000;
  size_t value_size = 100;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--entries") == 0 && i + 1 < argc) {
      n = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--value-size") == 0 && i + 1 < argc) {
      value_size = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else {
      std::fprintf(stderr, "usage: store_bench [--entries N] [--value-size B] "
                           "[--json]\n");
      return 2;
    }
  }
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i) {
    order[i] = i;
  }
  std::shuffle(order.begin(), order.end(), std::mt19937{42});
  constexpr int64_t now = 1'700'000'000'000;
  result base;
  {
    std::unordered_map<std::string, std::string> m;
    base = run(
      n, value_size, order,
      [&](std::string k, const std::string& v) {
        m.emplace(std::move(k), v);
      },
      [&](const std::string& k) {
        return m.find(k) != m.end();
      });
  }
  result mine;
  size_t accounted = 0;
  {
    store_config cfg;
    cfg.partitions = 271;
    store s{cfg};
    std::vector<removed> out;
    uint32_t counter = 0;
    mine = run(
      n, value_size, order,
      [&](const std::string& k, const std::string& v) {
        bytes b(reinterpret_cast<const std::byte*>(v.data()),
                reinterpret_cast<const std::byte*>(v.data()) + v.size());
        auto r = s.put(k, std::move(b), version{now, ++counter, 1}, no_expiry,
                       now, out);
        if (!r) {
          std::exit(1);
        }
      },
      [&](const std::string& k) {
        return s.get(k, now).has_value();
      });
    accounted = s.bytes_used();
  }
  double accounted_overhead = static_cast<double>(accounted)
                                / static_cast<double>(n)
                              - static_cast<double>(14 + value_size);
  if (json) {
    std::printf("{\"entries\": %zu, \"value_size\": %zu, "
                "\"map\": {\"put_ns\": %.1f, \"get_ns\": %.1f, "
                "\"overhead\": %.1f}, "
                "\"store\": {\"put_ns\": %.1f, \"get_ns\": %.1f, "
                "\"overhead\": %.1f, \"accounted_overhead\": %.1f}}\n",
                n, value_size, base.put_ns, base.get_ns, base.bytes_per_entry,
                mine.put_ns, mine.get_ns, mine.bytes_per_entry,
                accounted_overhead);
    return 0;
  }
  std::printf("%zu entries, 14-byte keys, %zu-byte values\n", n, value_size);
  std::printf("%-28s %10s %10s %14s\n", "", "put ns/op", "get ns/op",
              "overhead B/entry");
  std::printf("%-28s %10.1f %10.1f %14.1f\n", "unordered_map<string,string>",
              base.put_ns, base.get_ns, base.bytes_per_entry);
  std::printf("%-28s %10.1f %10.1f %14.1f\n", "cache::store", mine.put_ns,
              mine.get_ns, mine.bytes_per_entry);
  std::printf("store / map: put %.2fx, get %.2fx the time; overhead %.2fx\n",
              mine.put_ns / base.put_ns, mine.get_ns / base.get_ns,
              mine.bytes_per_entry / base.bytes_per_entry);
  std::printf("the store's own accounting: %.1f B/entry of overhead "
              "(entry_overhead() = %zu)\n",
              accounted_overhead, entry_overhead());
  return 0;
}
