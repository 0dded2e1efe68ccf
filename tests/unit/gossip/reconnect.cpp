// SPDX-License-Identifier: Apache-2.0
// Reconnect in simulated networks (virtual time, seeded): failed members and
// seeds are retried every reconnect_interval, so partitions of any shape
// heal by themselves once the network does; a member that left during a
// partition ends as left on both sides; failed members are forgotten after
// reconnect_timeout.
#include "mycorrizal/gossip/membership.hpp"

#include "support/gossip_sim.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <numeric>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace std::chrono_literals;
using mycorrizal::test::gossip_sim;

namespace {

double secs(duration d) {
  return std::chrono::duration<double>(d).count();
}

std::vector<size_t> range(size_t from, size_t to) {
  std::vector<size_t> out(to - from);
  std::iota(out.begin(), out.end(), from);
  return out;
}

/// Every node of `a` holds every node of `b` as dead (or has reaped it),
/// and the other way round.
bool split(gossip_sim& sim, const std::vector<size_t>& a,
           const std::vector<size_t>& b) {
  auto sees_dead = [&](size_t x, size_t y) {
    auto* m = sim.core(x).find(sim.name(y));
    return m == nullptr || m->state == node_state::dead
           || m->state == node_state::left;
  };
  for (auto x : a) {
    for (auto y : b) {
      if (!sees_dead(x, y) || !sees_dead(y, x)) {
        return false;
      }
    }
  }
  return true;
}

struct heal_result {
  bool healed = false;
  duration split_after{};
  duration heal_after{};
};

/// Forms `n` nodes, cuts `a` from `b`, holds the cut `hold` after both
/// sides saw the split, heals and runs until all are alive everywhere.
heal_result
partition_and_heal(gossip_sim& sim, size_t n, const membership_config& cfg,
                   const std::vector<size_t>& a, const std::vector<size_t>& b,
                   duration hold, duration limit) {
  heal_result out;
  sim.add_nodes(n, cfg, 7);
  EXPECT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    60s))
    << sim.describe_all();
  sim.partition(a, b);
  auto cut = sim.now();
  if (!sim.run_until(
        [&] {
          return split(sim, a, b);
        },
        120s)) {
    ADD_FAILURE() << "the sides never saw each other dead\n"
                  << sim.describe_all();
    return out;
  }
  out.split_after = sim.now() - cut;
  sim.run_for(hold);
  sim.heal();
  auto healed_at = sim.now();
  out.healed = sim.run_until(
    [&] {
      return sim.all_alive();
    },
    limit);
  out.heal_after = sim.now() - healed_at;
  return out;
}

TEST(gossip_reconnect, partition_of_three_and_two_heals_within_one_interval) {
  // The case: {n1,n2,n3} | {n4,n5}, LAN profile, held 30 s.
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    gossip_sim sim{{.seed = seed}};
    auto cfg = membership_config::lan_defaults();
    auto r = partition_and_heal(sim, 5, cfg, {0, 1, 2}, {3, 4}, 30s,
                                cfg.reconnect_interval + 10s);
    EXPECT_TRUE(r.healed) << "seed " << seed << ": still split "
                          << secs(r.heal_after) << " s after the heal\n"
                          << sim.describe_all();
    std::printf("seed %llu: split seen after %.1f s, one cluster %.1f s "
                "after the heal (reconnect interval %.0f s)\n",
                static_cast<unsigned long long>(seed), secs(r.split_after),
                secs(r.heal_after), secs(cfg.reconnect_interval));
  }
}

TEST(gossip_reconnect, long_partition_heals_after_both_sides_reaped) {
  // Held past gossip_to_the_dead_time: each side has forgotten the other's
  // members; only the remembered failed members lead back.
  gossip_sim sim{{.seed = 11}};
  auto cfg = membership_config::lan_defaults();
  auto r = partition_and_heal(sim, 10, cfg, range(0, 5), range(5, 10), 120s,
                              cfg.reconnect_interval + 10s);
  EXPECT_TRUE(r.healed) << sim.describe_all();
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_TRUE(sim.core(i).failed_members().empty())
      << sim.name(i) << " still retries "
      << sim.core(i).failed_members().front().name;
  }
}

TEST(gossip_reconnect, isolated_node_and_three_way_split_heal) {
  // One node cut from all others, and at the same time the rest cut in
  // two: three islands that must become one again.
  gossip_sim sim{{.seed = 21}};
  auto cfg = membership_config::local_defaults();
  sim.add_nodes(7, cfg, 7);
  ASSERT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    60s));
  sim.partition({0}, range(1, 7));
  sim.partition({1, 2, 3}, {4, 5, 6});
  ASSERT_TRUE(sim.run_until(
    [&] {
      return split(sim, {0}, range(1, 7)) && split(sim, {1, 2, 3}, {4, 5, 6});
    },
    120s))
    << sim.describe_all();
  sim.run_for(20s);
  sim.heal();
  auto healed_at = sim.now();
  EXPECT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    cfg.reconnect_interval + 10s))
    << sim.describe_all();
  std::printf("three islands: one cluster %.1f s after the heal "
              "(reconnect interval %.0f s)\n",
              secs(sim.now() - healed_at), secs(cfg.reconnect_interval));
}

TEST(gossip_reconnect, nodes_that_never_reconnect_are_merged_by_ours) {
  // Go memberlist nodes do not reconnect (reconnect_interval 0 stands in
  // for them). Our nodes' push/pulls carry their state across, also when
  // one side holds only such nodes.
  for (bool ours_on_both_sides : {true, false}) {
    gossip_sim sim{{.seed = 17}};
    auto ours = membership_config::lan_defaults();
    auto go_like = ours;
    go_like.reconnect_interval = duration::zero();
    // Side a: 0, 1 (ours), 2 (go-like); side b: 3 (ours or go-like), 4
    // (go-like).
    for (size_t i = 0; i < 5; ++i) {
      bool is_ours = i < 2 || (i == 3 && ours_on_both_sides);
      sim.add_node(is_ours ? ours : go_like);
    }
    for (size_t i = 1; i < 5; ++i) {
      sim.join(i, {0});
    }
    ASSERT_TRUE(sim.run_until(
      [&] {
        return sim.all_alive();
      },
      60s));
    sim.partition({0, 1, 2}, {3, 4});
    ASSERT_TRUE(sim.run_until(
      [&] {
        return split(sim, {0, 1, 2}, {3, 4});
      },
      120s))
      << sim.describe_all();
    sim.run_for(30s);
    sim.heal();
    auto healed_at = sim.now();
    EXPECT_TRUE(sim.run_until(
      [&] {
        return sim.all_alive();
      },
      ours.reconnect_interval + 10s))
      << (ours_on_both_sides ? "ours on both sides\n" : "b is go-like only\n")
      << sim.describe_all();
    std::printf("with nodes that never reconnect (%s): one cluster %.1f s "
                "after the heal\n",
                ours_on_both_sides ? "ours on both sides" : "b go-like only",
                secs(sim.now() - healed_at));
  }
}

TEST(gossip_reconnect, without_reconnect_the_halves_stay_apart) {
  // The defect this guards against: memberlist alone never heals.
  gossip_sim sim{{.seed = 3}};
  auto cfg = membership_config::lan_defaults();
  cfg.reconnect_interval = duration::zero();
  auto r = partition_and_heal(sim, 5, cfg, {0, 1, 2}, {3, 4}, 30s, 300s);
  EXPECT_FALSE(r.healed);
  EXPECT_TRUE(split(sim, {0, 1, 2}, {3, 4})) << sim.describe_all();
}

TEST(gossip_reconnect, leave_during_a_partition_stays_left) {
  for (duration hold : {10s, 90s}) {
    gossip_sim sim{{.seed = 8}};
    auto cfg = membership_config::lan_defaults();
    sim.add_nodes(5, cfg, 7);
    ASSERT_TRUE(sim.run_until(
      [&] {
        return sim.all_alive();
      },
      60s));
    std::vector<size_t> a{0, 1, 2};
    std::vector<size_t> b{3, 4};
    sim.partition(a, b);
    ASSERT_TRUE(sim.run_until(
      [&] {
        return split(sim, a, b);
      },
      120s))
      << sim.describe_all();
    auto gone = sim.name(4);
    sim.leave(4, 5s);
    ASSERT_TRUE(sim.run_until(
      [&] {
        return sim.crashed(4);
      },
      10s));
    // With 90 s, node 3 reaps the left member before the heal: only its
    // remembered leave can tell the other side.
    sim.run_for(hold);
    auto left_at = sim.now();
    sim.heal();
    ASSERT_TRUE(sim.run_until(
      [&] {
        return sim.all_alive();
      },
      cfg.reconnect_interval + 10s))
      << "hold " << secs(hold) << " s\n"
      << sim.describe_all();
    auto ended_left = [&] {
      for (auto i : a) {
        auto* m = sim.core(i).find(gone);
        if (m != nullptr && m->state != node_state::left) {
          return false;
        }
        for (const auto& f : sim.core(i).failed_members()) {
          if (f.name == gone) {
            return false;
          }
        }
      }
      return true;
    };
    EXPECT_TRUE(sim.run_until(ended_left, 30s))
      << "hold " << secs(hold) << " s: " << gone
      << " is still failed on the other side\n"
      << sim.describe_all();
    for (const auto& e : sim.events()) {
      if (e.at >= left_at && e.event.who.name == gone) {
        EXPECT_NE(e.event.kind, member_event_kind::joined)
          << sim.name(e.observer) << " saw the member that left come back";
      }
    }
  }
}

TEST(gossip_reconnect, failed_members_are_retried_until_the_timeout) {
  gossip_sim sim{{.seed = 5}};
  auto cfg = membership_config::local_defaults();
  cfg.reconnect_timeout = 60s;
  sim.add_nodes(4, cfg, 7);
  ASSERT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    60s));
  sim.crash(3);
  auto dead_everywhere = [&] {
    for (size_t i = 0; i < 3; ++i) {
      auto f = sim.core(i).failed_members();
      if (f.size() != 1 || f.front().name != sim.name(3)) {
        return false;
      }
    }
    return true;
  };
  ASSERT_TRUE(sim.run_until(dead_everywhere, 60s)) << sim.describe_all();
  // Reaped from the table after gossip_to_the_dead_time, still retried.
  sim.run_for(cfg.gossip_to_the_dead_time + 2s);
  EXPECT_EQ(sim.core(0).find(sim.name(3)), nullptr);
  auto before = sim.core(0).stats().reconnects;
  sim.run_for(3 * cfg.reconnect_interval);
  auto during = sim.core(0).stats().reconnects - before;
  EXPECT_GE(during, 2u) << "a failed member is retried once an interval";
  EXPECT_EQ(sim.core(0).stats().reconnects_ok, 0u);
  // After reconnect_timeout it is forgotten and no longer retried.
  sim.run_for(cfg.reconnect_timeout);
  EXPECT_TRUE(sim.core(0).failed_members().empty());
  before = sim.core(0).stats().reconnects;
  sim.run_for(3 * cfg.reconnect_interval);
  EXPECT_EQ(sim.core(0).stats().reconnects, before);
}

TEST(gossip_reconnect, seeds_bring_back_a_node_that_forgot_everyone) {
  // Node 3 joined through node 0 and is cut off from all others for longer
  // than reconnect_timeout: both sides forget the failed members. Fewer
  // members are up than before, so node 3 keeps retrying its seed.
  gossip_sim sim{{.seed = 12}};
  auto cfg = membership_config::local_defaults();
  cfg.reconnect_timeout = 20s;
  for (int i = 0; i < 4; ++i) {
    sim.add_node(cfg);
  }
  sim.join(1, {0});
  sim.join(2, {0});
  sim.join(3, {0});
  ASSERT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    60s));
  sim.partition({3}, {0, 1, 2});
  ASSERT_TRUE(sim.run_until(
    [&] {
      return split(sim, {3}, {0, 1, 2});
    },
    60s))
    << sim.describe_all();
  sim.run_for(cfg.reconnect_timeout + 2 * cfg.reconnect_interval);
  ASSERT_TRUE(sim.core(3).failed_members().empty()) << sim.describe_all();
  ASSERT_TRUE(sim.core(0).failed_members().empty()) << sim.describe_all();
  sim.heal();
  auto healed_at = sim.now();
  EXPECT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    cfg.reconnect_interval + 5s))
    << sim.describe_all();
  std::printf("forgotten node back through its seed %.1f s after the heal\n",
              secs(sim.now() - healed_at));
}

TEST(gossip_reconnect, a_restarted_name_is_no_longer_failed) {
  // A crashed member comes back under the same name (a new process,
  // incarnation 1, same address): it joins, refutes the old verdict and is
  // dropped from the failed list everywhere.
  gossip_sim sim{{.seed = 6}};
  auto cfg = membership_config::local_defaults();
  sim.add_nodes(4, cfg, 7);
  ASSERT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    60s));
  sim.crash(2);
  ASSERT_TRUE(sim.run_until(
    [&] {
      return sim.core(0).failed_members().size() == 1
             && sim.core(1).failed_members().size() == 1;
    },
    60s));
  sim.restart(2);
  sim.join(2, {0});
  ASSERT_TRUE(sim.run_until(
    [&] {
      return sim.all_alive();
    },
    30s))
    << sim.describe_all();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(sim.core(i).failed_members().empty()) << sim.name(i);
  }
}

} // namespace
