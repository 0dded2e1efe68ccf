// SPDX-License-Identifier: Apache-2.0
// Hybrid-clock versions: total order, monotonic when the wall clock stalls
// or goes back, remote versions taken in, a wrong remote clock refused.
#include "mycorrizal/cache/version.hpp"

#include <gtest/gtest.h>

using namespace mycorrizal::cache;

namespace {

TEST(cache_version, orders_by_wall_time_then_counter_then_node) {
  EXPECT_LT((version{10, 5, 9}), (version{11, 0, 1}));
  EXPECT_LT((version{10, 1, 9}), (version{10, 2, 1}));
  EXPECT_LT((version{10, 1, 1}), (version{10, 1, 2}));
  EXPECT_EQ((version{10, 1, 1}), (version{10, 1, 1}));
  EXPECT_TRUE(version{}.empty());
  EXPECT_LT(version{}, (version{1, 0, 1}));
}

TEST(cache_version, node_ids_are_stable_and_never_zero) {
  EXPECT_EQ(node_id("node-a"), node_id("node-a"));
  EXPECT_NE(node_id("node-a"), node_id("node-b"));
  EXPECT_NE(node_id(""), 0u);
}

TEST(cache_version, the_clock_never_repeats_or_goes_back) {
  hybrid_clock c{7};
  auto a = c.next(1000);
  EXPECT_EQ(a, (version{1000, 0, 7}));
  auto b = c.next(1000); // same millisecond
  EXPECT_EQ(b, (version{1000, 1, 7}));
  auto d = c.next(990); // the wall clock went back
  EXPECT_EQ(d, (version{1000, 2, 7}));
  auto e = c.next(1001);
  EXPECT_EQ(e, (version{1001, 0, 7}));
  EXPECT_LT(a, b);
  EXPECT_LT(b, d);
  EXPECT_LT(d, e);
}

TEST(cache_version, observed_versions_order_before_later_local_ones) {
  hybrid_clock c{7};
  c.next(1000);
  // Another node is 500 ms ahead (within the drift bound).
  EXPECT_TRUE(c.observe(version{1500, 3, 9}, 1001));
  auto v = c.next(1002);
  EXPECT_GT(v, (version{1500, 3, 9}));
  EXPECT_EQ(v, (version{1500, 4, 7}));
  // An older remote version changes nothing.
  EXPECT_TRUE(c.observe(version{900, 50, 9}, 1003));
  EXPECT_EQ(c.next(1003), (version{1500, 5, 7}));
}

TEST(cache_version, a_remote_clock_too_far_ahead_is_refused) {
  hybrid_clock c{7, 60'000};
  c.next(1000);
  EXPECT_FALSE(c.observe(version{1000 + 60'001, 0, 9}, 1000));
  EXPECT_EQ(c.last(), (version{1000, 0, 7}));
  EXPECT_TRUE(c.observe(version{1000 + 60'000, 0, 9}, 1000));
  EXPECT_EQ(c.last().wall_ms, 61'000);
}

} // namespace
