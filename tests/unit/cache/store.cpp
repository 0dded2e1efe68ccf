// SPDX-License-Identifier: Apache-2.0
// One bucket's store: LRU by count and by bytes, TTL (lazy and active) in
// virtual time, last writer wins, tombstones and their horizon, limits.
#include "mycorrizal/cache/store.hpp"

#include "mycorrizal/cache/placement.hpp"
#include "mycorrizal/errc.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::cache;

namespace {

constexpr int64_t t0 = 1'700'000'000'000; // Unix ms

bytes val(std::string_view s) {
  bytes out;
  for (char c : s) {
    out.push_back(static_cast<std::byte>(c));
  }
  return out;
}

std::string text(std::span<const std::byte> b) {
  std::string out;
  for (auto c : b) {
    out.push_back(static_cast<char>(c));
  }
  return out;
}

version v(int64_t ms, uint32_t counter = 0, uint64_t node = 1) {
  return version{ms, counter, node};
}

/// Puts and expects it applied; returns what was evicted.
std::vector<removed> put(store& s, std::string_view key, std::string_view value,
                         version ver, int64_t expires = no_expiry,
                         int64_t now = t0) {
  std::vector<removed> out;
  auto r = s.put(key, val(value), ver, expires, now, out);
  EXPECT_TRUE(r) << to_string(r.error());
  if (r) {
    EXPECT_EQ(*r, apply_result::applied) << key;
  }
  return out;
}

std::string get(store& s, std::string_view key, int64_t now = t0) {
  auto e = s.get(key, now);
  return e ? text(e->value) : std::string{"<miss>"};
}

TEST(cache_store, the_least_recently_used_entry_goes_first_by_count) {
  store s{store_config{3, 0}};
  put(s, "a", "1", v(t0 + 1));
  put(s, "b", "2", v(t0 + 2));
  put(s, "c", "3", v(t0 + 3));
  EXPECT_EQ(get(s, "a"), "1"); // a is now the most recently used
  auto out = put(s, "d", "4", v(t0 + 4));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "b");
  EXPECT_EQ(out[0].ver, v(t0 + 2));
  EXPECT_EQ(out[0].reason, removed::why::evicted);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(get(s, "b"), "<miss>");
  EXPECT_EQ(get(s, "a"), "1");
  EXPECT_EQ(get(s, "c"), "3");
  EXPECT_EQ(get(s, "d"), "4");
  EXPECT_EQ(s.stats().evictions, 1u);
}

TEST(cache_store, bytes_are_accounted_per_entry_and_bound_the_store) {
  const size_t one = 1 + 10 + entry_overhead(); // key "k" + 10-byte value
  store s{store_config{0, 3 * one}};
  put(s, "a", "0123456789", v(t0 + 1));
  EXPECT_EQ(s.bytes_used(), one);
  put(s, "b", "0123456789", v(t0 + 2));
  put(s, "c", "0123456789", v(t0 + 3));
  EXPECT_EQ(s.bytes_used(), 3 * one);
  EXPECT_TRUE(put(s, "a", "0123456789", v(t0 + 4)).empty()) << "a rewrite";
  EXPECT_EQ(s.bytes_used(), 3 * one);
  // One byte more than fits: the least recently used (b) goes.
  auto out = put(s, "d", "01234567890", v(t0 + 5));
  ASSERT_EQ(out.size(), 2u) << "b and c must go to fit 1 more byte";
  EXPECT_EQ(out[0].key, "b");
  EXPECT_EQ(out[1].key, "c");
  EXPECT_LE(s.bytes_used(), 3 * one);
  // A value that shrinks gives its bytes back.
  put(s, "d", "", v(t0 + 6));
  EXPECT_EQ(s.bytes_used(), one + (1 + 0 + entry_overhead()));
}

TEST(cache_store,
     an_entry_larger_than_the_store_is_refused_and_evicts_nothing) {
  const size_t one = 1 + 10 + entry_overhead();
  store s{store_config{0, 2 * one}};
  put(s, "a", "0123456789", v(t0 + 1));
  std::vector<removed> out;
  auto r = s.put("big", bytes(2 * one), v(t0 + 2), no_expiry, t0, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::too_large) << to_string(r.error());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(get(s, "a"), "0123456789");
  // Keys and values above the documented limits.
  auto k = s.put(std::string(max_key_size + 1, 'k'), val("x"), v(t0 + 3),
                 no_expiry, t0, out);
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code(), errc::too_large);
  store unbounded{store_config{}};
  auto big = unbounded.put("k", bytes(max_value_size + 1), v(t0 + 4), no_expiry,
                           t0, out);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), errc::too_large);
}

TEST(cache_store, ttl_expires_lazily_on_read_and_actively_on_time) {
  store s{store_config{}};
  put(s, "short", "x", v(t0 + 1), t0 + 100);
  put(s, "long", "y", v(t0 + 2), t0 + 5000);
  put(s, "forever", "z", v(t0 + 3));
  EXPECT_EQ(s.next_deadline_ms(), t0 + 100);
  EXPECT_EQ(get(s, "short", t0 + 99), "x");
  EXPECT_FALSE(s.peek("short", t0 + 100)) << "expired at its expiry time";
  EXPECT_EQ(get(s, "short", t0 + 100), "<miss>"); // lazy: removed on read
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.next_deadline_ms(), t0 + 5000);
  std::vector<removed> out;
  s.on_time(t0 + 4999, 100, out);
  EXPECT_TRUE(out.empty());
  s.on_time(t0 + 5000, 100, out); // active: nobody read it
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "long");
  EXPECT_EQ(out[0].reason, removed::why::expired);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.next_deadline_ms(), no_expiry);
  EXPECT_EQ(s.stats().expirations, 2u);
  EXPECT_EQ(s.bytes_used(), 7 + 1 + entry_overhead()); // "forever" + "z"
}

TEST(cache_store, active_expiry_works_in_bounded_steps) {
  store s{store_config{}};
  for (int i = 0; i < 10; ++i) {
    put(s, "k" + std::to_string(i), "v", v(t0 + i), t0 + 10);
  }
  std::vector<removed> out;
  s.on_time(t0 + 10, 4, out);
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(s.size(), 6u);
  EXPECT_EQ(s.next_deadline_ms(), t0 + 10) << "more is due";
  s.on_time(t0 + 10, 100, out);
  EXPECT_EQ(out.size(), 10u);
  EXPECT_EQ(s.size(), 0u);
}

TEST(cache_store, the_later_version_wins_in_any_arrival_order) {
  store a{store_config{}};
  store b{store_config{}};
  // Two concurrent writes of one key, seen in opposite orders.
  auto w1 = v(t0 + 5, 0, 1);
  auto w2 = v(t0 + 5, 0, 2); // same ms: the node id decides
  put(a, "k", "one", w1);
  std::vector<removed> out;
  EXPECT_EQ(*a.put("k", val("two"), w2, no_expiry, t0, out),
            apply_result::applied);
  put(b, "k", "two", w2);
  EXPECT_EQ(*b.put("k", val("one"), w1, no_expiry, t0, out),
            apply_result::stale);
  EXPECT_EQ(get(a, "k"), "two");
  EXPECT_EQ(get(b, "k"), "two");
  EXPECT_EQ(a.version_of("k"), w2);
  EXPECT_EQ(b.version_of("k"), w2);
  // The same version again changes nothing.
  EXPECT_EQ(*b.put("k", val("other"), w2, no_expiry, t0, out),
            apply_result::stale);
  EXPECT_EQ(get(b, "k"), "two");
  EXPECT_EQ(b.stats().stale_writes, 2u);
}

TEST(cache_store, a_delete_leaves_a_tombstone_that_older_writes_cannot_pass) {
  store s{store_config{0, 0, 60'000}};
  put(s, "k", "one", v(t0 + 1));
  EXPECT_EQ(s.erase("k", v(t0 + 2), t0), apply_result::applied);
  EXPECT_EQ(get(s, "k"), "<miss>");
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.tombstones(), 1u);
  EXPECT_EQ(s.bytes_used(), 0u);
  std::vector<removed> out;
  // A write older than the delete arrives late (a replica was behind).
  EXPECT_EQ(*s.put("k", val("late"), v(t0 + 1, 5), no_expiry, t0, out),
            apply_result::stale);
  EXPECT_EQ(get(s, "k"), "<miss>");
  // A newer write brings the key back.
  put(s, "k", "two", v(t0 + 3));
  EXPECT_EQ(get(s, "k"), "two");
  EXPECT_EQ(s.tombstones(), 0u);
  // A delete older than the value is stale.
  EXPECT_EQ(s.erase("k", v(t0 + 2, 9), t0), apply_result::stale);
  EXPECT_EQ(get(s, "k"), "two");
}

TEST(cache_store, a_delete_of_an_absent_key_blocks_older_writes_too) {
  store s{store_config{0, 0, 60'000}};
  EXPECT_EQ(s.erase("k", v(t0 + 10), t0), apply_result::applied);
  std::vector<removed> out;
  EXPECT_EQ(*s.put("k", val("old"), v(t0 + 9), no_expiry, t0, out),
            apply_result::stale);
  EXPECT_EQ(get(s, "k"), "<miss>");
  // An empty version deletes nothing and leaves nothing behind.
  EXPECT_EQ(s.erase("other", version{}, t0), apply_result::stale);
  EXPECT_EQ(s.tombstones(), 1u);
}

TEST(cache_store, tombstones_are_collected_after_their_horizon) {
  store s{store_config{0, 0, 1000}};
  put(s, "k", "one", v(t0 + 1));
  s.erase("k", v(t0 + 2), t0);
  EXPECT_EQ(s.next_deadline_ms(), t0 + 1000);
  std::vector<removed> out;
  s.on_time(t0 + 999, 10, out);
  EXPECT_EQ(s.tombstones(), 1u);
  s.on_time(t0 + 1000, 10, out);
  EXPECT_EQ(s.tombstones(), 0u);
  EXPECT_TRUE(out.empty()) << "collecting a tombstone removes no entry";
  EXPECT_EQ(s.stats().tombstones_collected, 1u);
  EXPECT_EQ(s.version_of("k"), version{});
}

TEST(cache_store, expiry_can_be_set_and_removed_on_a_live_entry) {
  store s{store_config{}};
  put(s, "k", "x", v(t0 + 1));
  EXPECT_EQ(s.set_expiry("k", t0 + 50, v(t0 + 2), t0),
            std::optional{apply_result::applied});
  EXPECT_EQ(s.next_deadline_ms(), t0 + 50);
  EXPECT_EQ(s.set_expiry("k", no_expiry, v(t0 + 3), t0),
            std::optional{apply_result::applied}); // persist
  EXPECT_EQ(s.next_deadline_ms(), no_expiry);
  EXPECT_EQ(get(s, "k", t0 + 100), "x");
  EXPECT_EQ(s.set_expiry("absent", t0 + 50, v(t0 + 4), t0), std::nullopt);
  EXPECT_EQ(s.set_expiry("k", t0 + 50, v(t0 + 1), t0),
            std::optional{apply_result::stale});
}

TEST(cache_store, hits_and_misses_are_counted) {
  store s{store_config{}};
  put(s, "k", "x", v(t0 + 1));
  get(s, "k");
  get(s, "k");
  get(s, "nope");
  EXPECT_EQ(s.stats().hits, 2u);
  EXPECT_EQ(s.stats().misses, 1u);
  // peek counts nothing.
  EXPECT_TRUE(s.peek("k", t0));
  EXPECT_EQ(s.stats().hits, 2u);
}

/// The digest of `p` recomputed from the records the store hands out.
partition_digest recomputed(const store& s, uint32_t p) {
  partition_digest d;
  s.for_each_record(
    [p](uint32_t x) {
      return x == p;
    },
    [&](const record_view& r) {
      d.digest += record_hash(r.key, r.ver, r.tombstone);
      ++d.count;
    });
  return d;
}

store_config partitioned(uint32_t partitions, size_t max_entries = 0) {
  store_config cfg;
  cfg.partitions = partitions;
  cfg.max_entries = max_entries;
  return cfg;
}

TEST(cache_store, equal_records_give_equal_digests_in_any_write_order) {
  store a{partitioned(8)};
  store b{partitioned(8)};
  std::vector<removed> out;
  for (int i = 0; i < 50; ++i) {
    auto key = "k" + std::to_string(i);
    ASSERT_TRUE(a.put(key, val("x"), v(t0 + i), no_expiry, t0, out));
  }
  // b sees the writes backwards, with older versions of some keys first
  // and a delete that a later write overrides.
  for (int i = 49; i >= 0; --i) {
    auto key = "k" + std::to_string(i);
    if (i % 7 == 0) {
      b.erase(key, v(t0 + i - 1), t0);
      ASSERT_TRUE(b.put(key, val("old"), v(t0 + i - 2), no_expiry, t0, out));
    }
    ASSERT_TRUE(b.put(key, val("x"), v(t0 + i), no_expiry, t0, out));
  }
  for (uint32_t p = 0; p < 8; ++p) {
    EXPECT_EQ(a.digest(p), b.digest(p)) << "partition " << p;
  }
}

TEST(cache_store, a_single_differing_entry_shows_in_its_partition_only) {
  store a{partitioned(16)};
  store b{partitioned(16)};
  std::vector<removed> out;
  for (int i = 0; i < 200; ++i) {
    auto key = "k" + std::to_string(i);
    ASSERT_TRUE(a.put(key, val("x"), v(t0 + 1), no_expiry, t0, out));
    ASSERT_TRUE(b.put(key, val("x"), v(t0 + 1), no_expiry, t0, out));
  }
  // One newer version on a.
  ASSERT_TRUE(a.put("k42", val("y"), v(t0 + 2), no_expiry, t0, out));
  auto p42 = partition_of("k42", 16);
  for (uint32_t p = 0; p < 16; ++p) {
    if (p == p42) {
      EXPECT_NE(a.digest(p), b.digest(p));
      EXPECT_EQ(a.digest(p).count, b.digest(p).count);
    } else {
      EXPECT_EQ(a.digest(p), b.digest(p)) << "partition " << p;
    }
  }
  // A tombstone differs from the value it replaced, and from no record.
  b.erase("k42", v(t0 + 2), t0);
  EXPECT_NE(a.digest(p42), b.digest(p42));
  store c{partitioned(16)};
  c.erase("k42", v(t0 + 2), t0);
  EXPECT_EQ(c.digest(p42).count, 1u);
  EXPECT_NE(c.digest(p42), store{partitioned(16)}.digest(p42));
}

TEST(cache_store, digests_follow_every_change) {
  // Random puts, deletes, expiry changes, evictions, expiry and tombstone
  // collection: the kept digests always equal the recomputed ones.
  store s{partitioned(5, 40)};
  std::vector<removed> out;
  uint64_t x = 12345;
  auto next = [&] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x >> 33;
  };
  int64_t now = t0;
  for (int step = 0; step < 3000; ++step) {
    now += static_cast<int64_t>(next() % 50);
    auto key = "k" + std::to_string(next() % 80);
    // Writers differ: a write replaces another node's version or its own
    // (the digest's key hash is per node).
    auto ver = v(now, static_cast<uint32_t>(step), 1 + next() % 3);
    switch (next() % 6) {
      case 0:
      case 1: {
        int64_t exp = next() % 3 == 0 ? now + static_cast<int64_t>(next() % 500)
                                      : no_expiry;
        ASSERT_TRUE(s.put(key, val("value"), ver, exp, now, out));
        break;
      }
      case 2: s.erase(key, ver, now); break;
      case 3: s.set_expiry(key, now + 100, ver, now); break;
      case 4: s.drop_if_not_newer(key, ver); break;
      default: s.on_time(now, 3, out); break;
    }
    if (step % 97 == 0) {
      s.on_time(now + 700'000, 1000, out); // collects tombstones too
    }
    for (uint32_t p = 0; p < 5; ++p) {
      ASSERT_EQ(s.digest(p), recomputed(s, p))
        << "partition " << p << " after step " << step;
    }
  }
}

TEST(cache_store, partitions_are_dropped_whole_and_alone) {
  store s{partitioned(4)};
  std::vector<removed> out;
  for (int i = 0; i < 100; ++i) {
    auto key = "k" + std::to_string(i);
    ASSERT_TRUE(s.put(key, val("x"), v(t0 + 1), no_expiry, t0, out));
  }
  s.erase("k1", v(t0 + 2), t0);
  auto target = partition_of("k1", 4);
  auto other = (target + 1) % 4;
  auto kept = s.digest(other);
  auto n = s.drop_partitions([&](uint32_t p) {
    return p == target;
  });
  EXPECT_GT(n, 0u);
  EXPECT_EQ(s.digest(target), partition_digest{});
  EXPECT_EQ(recomputed(s, target), partition_digest{});
  EXPECT_EQ(s.digest(other), kept);
  // n counts k1's tombstone; k1's value is gone already.
  EXPECT_EQ(s.size() + n, 100u);
  EXPECT_EQ(s.tombstones(), 0u) << "the tombstone of k1 went with it";
}

TEST(cache_store, a_drop_from_the_primary_removes_only_older_or_equal) {
  store s{partitioned(1)};
  put(s, "k", "v", v(t0 + 5));
  EXPECT_FALSE(s.drop_if_not_newer("k", v(t0 + 4)));
  EXPECT_EQ(get(s, "k"), "v");
  EXPECT_TRUE(s.drop_if_not_newer("k", v(t0 + 5)));
  EXPECT_EQ(get(s, "k"), "<miss>");
  EXPECT_EQ(s.tombstones(), 0u);
  EXPECT_FALSE(s.drop_if_not_newer("absent", v(t0)));
}

TEST(cache_store, a_write_that_arrives_expired_removes_the_older_value) {
  store s{partitioned(1)};
  put(s, "k", "v", v(t0 + 1));
  std::vector<removed> out;
  auto r = s.put("k", val("late"), v(t0 + 2), t0 + 10, t0 + 20, out);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, apply_result::applied);
  EXPECT_EQ(get(s, "k", t0 + 20), "<miss>");
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.bytes_used(), 0u);
  // An older expired write is stale and leaves a newer value alone.
  put(s, "j", "new", v(t0 + 9));
  auto stale = s.put("j", val("old"), v(t0 + 3), t0 + 10, t0 + 20, out);
  ASSERT_TRUE(stale);
  EXPECT_EQ(*stale, apply_result::stale);
  EXPECT_EQ(get(s, "j", t0 + 20), "new");
}

} // namespace
