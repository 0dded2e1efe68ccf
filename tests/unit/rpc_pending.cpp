// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/rpc/pending.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

const time_point t0 = time_point{} + 1h;

TEST(rpc_pending, ids_are_unique_increasing_and_never_zero) {
  rpc::pending<int> p{100};
  std::set<uint64_t> seen;
  uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    auto id = p.add(i, t0 + 1s);
    ASSERT_TRUE(id) << to_string(id.error());
    EXPECT_NE(*id, 0u);
    EXPECT_GT(*id, last);
    last = *id;
    seen.insert(*id);
    // Taking an entry never makes its id come back.
    if (i % 2 == 0) {
      ASSERT_TRUE(p.take(*id).has_value());
    }
  }
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_EQ(p.size(), 25u);
}

TEST(rpc_pending, a_response_is_taken_once_and_late_ones_are_counted) {
  rpc::pending<std::string> p{10};
  auto id = p.add("first", t0 + 1s);
  ASSERT_TRUE(id);
  auto got = p.take(*id);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, "first");
  EXPECT_FALSE(p.take(*id).has_value()) << "answered twice";
  EXPECT_FALSE(p.take(12345).has_value()) << "never issued";
  EXPECT_EQ(p.stats().completed, 1u);
  EXPECT_EQ(p.stats().late, 2u);
  EXPECT_TRUE(p.empty());
}

TEST(rpc_pending, expiry_takes_exactly_the_due_entries_earliest_first) {
  rpc::pending<int> p{10};
  auto a = p.add(1, t0 + 300ms);
  auto b = p.add(2, t0 + 100ms);
  auto c = p.add(3, t0 + 200ms);
  auto d = p.add(4, t0 + 200ms);
  ASSERT_TRUE(a && b && c && d);
  EXPECT_EQ(p.next_deadline(), t0 + 100ms);
  EXPECT_TRUE(p.expire(t0 + 99ms).empty());
  auto due = p.expire(t0 + 200ms);
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(due[0].first, *b);
  EXPECT_EQ(due[0].second, 2);
  // Equal deadlines leave in id order.
  EXPECT_EQ(due[1].first, *c);
  EXPECT_EQ(due[2].first, *d);
  EXPECT_EQ(p.next_deadline(), t0 + 300ms);
  // An expired request's response is late.
  EXPECT_FALSE(p.take(*b).has_value());
  EXPECT_EQ(p.stats().late, 1u);
  EXPECT_EQ(p.stats().expired, 3u);
  // The last one is still answerable.
  EXPECT_EQ(p.take(*a), std::optional<int>{1});
  EXPECT_EQ(p.next_deadline(), never);
}

TEST(rpc_pending, the_limit_refuses_with_queue_full_until_room_frees) {
  rpc::pending<int> p{3};
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = p.add(i, t0 + 1s);
    ASSERT_TRUE(id);
    ids.push_back(*id);
  }
  auto refused = p.add(99, t0 + 1s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::queue_full);
  EXPECT_EQ(p.stats().refused, 1u);
  ASSERT_TRUE(p.take(ids[1]).has_value());
  EXPECT_TRUE(p.add(4, t0 + 1s));
}

TEST(rpc_pending, take_all_empties_the_table_for_a_peer_that_is_gone) {
  rpc::pending<std::unique_ptr<int>> p{10};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(p.add(std::make_unique<int>(i), t0 + std::chrono::seconds{i}));
  }
  auto all = p.take_all();
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(*all[i].second, static_cast<int>(i));
  }
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.next_deadline(), never);
  EXPECT_TRUE(p.expire(t0 + 1h).empty());
  EXPECT_EQ(p.stats().abandoned, 5u);
}

TEST(rpc_pending, the_budget_is_rounded_up_and_never_zero_for_a_live_request) {
  EXPECT_EQ(rpc::budget_ms(t0 + 200ms, t0), 200u);
  EXPECT_EQ(rpc::budget_ms(t0 + 1us, t0), 1u);
  EXPECT_EQ(rpc::budget_ms(t0 + 1500us, t0), 2u);
  EXPECT_EQ(rpc::budget_ms(t0, t0), 1u);
  EXPECT_EQ(rpc::budget_ms(t0 - 1s, t0), 1u);
  EXPECT_EQ(rpc::budget_ms(never, t0), 0u);
  EXPECT_EQ(rpc::budget_ms(t0 + std::chrono::hours{24 * 100}, t0),
            std::numeric_limits<uint32_t>::max());
}

} // namespace
