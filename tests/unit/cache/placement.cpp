// SPDX-License-Identifier: Apache-2.0
// Rendezvous placement: deterministic, balanced, and a membership change
// moves only the partitions it must (about RF/N of them).
#include "mycorrizal/cache/placement.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace mycorrizal::cache;

namespace {

std::vector<std::string> names(int n, int first = 1) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) {
    out.push_back("node-" + std::to_string(i));
  }
  return out;
}

TEST(cache_placement, keys_spread_over_every_partition) {
  std::vector<int> hits(default_partitions);
  for (int i = 0; i < 100'000; ++i) {
    ++hits[partition_of("key:" + std::to_string(i), default_partitions)];
  }
  auto [lo, hi] = std::minmax_element(hits.begin(), hits.end());
  // 369 per partition on average; a uniform hash stays within ±25 %.
  EXPECT_GT(*lo, 369 * 3 / 4) << "min " << *lo << " max " << *hi;
  EXPECT_LT(*hi, 369 * 5 / 4) << "min " << *lo << " max " << *hi;
  EXPECT_EQ(partition_of("x", 1), 0u);
}

TEST(cache_placement, owners_do_not_depend_on_the_order_of_members) {
  auto m = names(5);
  auto r = m;
  std::reverse(r.begin(), r.end());
  r.push_back("node-3"); // a duplicate counts once
  for (uint32_t p = 0; p < 50; ++p) {
    EXPECT_EQ(owners(m, "b", p, 2), owners(r, "b", p, 2)) << p;
    auto o = owners(m, "b", p, 2);
    ASSERT_EQ(o.size(), 2u);
    EXPECT_NE(o[0], o[1]);
  }
  EXPECT_EQ(owners(names(1), "b", 0, 3).size(), 1u) << "fewer members than RF";
  EXPECT_TRUE(owners({}, "b", 0, 2).empty());
}

TEST(cache_placement, partitions_and_primaries_are_balanced) {
  for (int n : {3, 5, 10}) {
    placement pl{"orders", default_partitions, 2, names(n)};
    std::map<std::string, int> owned;
    std::map<std::string, int> primary;
    for (uint32_t p = 0; p < pl.partitions(); ++p) {
      ++primary[pl.primary_of(p)];
      for (const auto& o : pl.owners_of(p)) {
        ++owned[o];
      }
    }
    double mean_owned = 2.0 * default_partitions / n;
    double mean_primary = 1.0 * default_partitions / n;
    for (const auto& m : names(n)) {
      // Rendezvous hashing spreads binomially: within ±35 % at these sizes.
      EXPECT_NEAR(owned[m], mean_owned, 0.35 * mean_owned) << n << " " << m;
      EXPECT_NEAR(primary[m], mean_primary, 0.45 * mean_primary)
        << n << " " << m;
    }
  }
}

TEST(cache_placement, a_joining_member_takes_its_share_and_nothing_else_moves) {
  const size_t rf = 2;
  placement before{"orders", default_partitions, rf, names(5)};
  placement after{"orders", default_partitions, rf, names(6)};
  auto changed = before.changed(after);
  for (auto p : changed) {
    const auto& o = after.owners_of(p);
    // Every change is the new member entering; the others keep their
    // relative order.
    EXPECT_NE(std::find(o.begin(), o.end(), "node-6"), o.end()) << p;
  }
  // It owns about RF·P/N partitions, and exactly those changed.
  EXPECT_EQ(changed, after.owned_by("node-6"));
  double expected = rf * default_partitions / 6.0;
  EXPECT_NEAR(static_cast<double>(changed.size()), expected, 0.35 * expected);
  std::printf("join 5 -> 6: %zu of %u partitions changed owners (RF*P/N = "
              "%.0f)\n",
              changed.size(), default_partitions, expected);
}

TEST(cache_placement, a_leaving_member_moves_only_what_it_owned) {
  const size_t rf = 2;
  placement before{"orders", default_partitions, rf, names(5)};
  auto rest = names(5);
  rest.erase(std::find(rest.begin(), rest.end(), "node-3"));
  placement after{"orders", default_partitions, rf, rest};
  EXPECT_EQ(before.changed(after), before.owned_by("node-3"));
  // Its partitions spread over all the others, not onto one neighbour.
  std::set<std::string> takers;
  for (auto p : before.owned_by("node-3")) {
    for (const auto& o : after.owners_of(p)) {
      const auto& old = before.owners_of(p);
      if (std::find(old.begin(), old.end(), o) == old.end()) {
        takers.insert(o);
      }
    }
  }
  EXPECT_EQ(takers.size(), 4u);
}

TEST(cache_placement, buckets_are_placed_independently) {
  placement a{"a", default_partitions, 1, names(5)};
  placement b{"b", default_partitions, 1, names(5)};
  int same = 0;
  for (uint32_t p = 0; p < default_partitions; ++p) {
    same += a.primary_of(p) == b.primary_of(p) ? 1 : 0;
  }
  // Independent placements agree on about 1 in 5 partitions.
  EXPECT_LT(same, default_partitions / 3) << same;
}

} // namespace
