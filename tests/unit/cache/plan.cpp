// SPDX-License-Identifier: Apache-2.0
// Hand-off planning over whole clusters (every node's plan together: each
// new owner gets exactly one copy, from the right node, and only moved
// partitions appear) and repair planning from two owners' key versions.
#include "mycorrizal/cache/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace mycorrizal::cache;

namespace {

std::vector<std::string> names(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back("node-" + std::to_string(i));
  }
  return out;
}

bool has(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

/// Every node's plan, for the nodes of both views.
std::map<std::string, handoff_plan> plans(const placement& before,
                                          const placement& after,
                                          const std::string& leaving = {}) {
  std::set<std::string> all(before.members().begin(), before.members().end());
  all.insert(after.members().begin(), after.members().end());
  std::map<std::string, handoff_plan> out;
  for (auto& n : all) {
    out[n] = plan_handoff(before, after, n, leaving);
  }
  return out;
}

/// Checks what holds for every change: a new owner of a moved partition
/// receives it from exactly one sender, which held it; nothing else moves;
/// old owners that lose a partition drop it.
void check_common(const placement& before, const placement& after,
                  const std::map<std::string, handoff_plan>& ps,
                  const std::string& leaving = {}) {
  auto changed = after.changed(before);
  std::set<uint32_t> moved(changed.begin(), changed.end());
  std::map<std::pair<uint32_t, std::string>, std::vector<std::string>> copies;
  for (auto& [node, plan] : ps) {
    for (auto& t : plan.send) {
      EXPECT_TRUE(moved.count(t.partition)) << node << " sends " << t.partition;
      EXPECT_TRUE(has(before.owners_of(t.partition), node))
        << node << " sends partition " << t.partition << " it did not own";
      EXPECT_TRUE(has(after.members(), node) || node == leaving)
        << node << " is gone but sends";
      copies[{t.partition, t.to}].push_back(node);
    }
    for (auto p : plan.drop) {
      EXPECT_TRUE(has(before.owners_of(p), node));
      EXPECT_FALSE(has(after.owners_of(p), node));
    }
    for (auto p : plan.receive) {
      EXPECT_TRUE(moved.count(p));
      EXPECT_TRUE(has(after.owners_of(p), node));
      EXPECT_FALSE(has(before.owners_of(p), node));
    }
  }
  for (auto p : moved) {
    for (auto& n : after.owners_of(p)) {
      if (has(before.owners_of(p), n)) {
        EXPECT_EQ(copies.count({p, n}), 0u) << n << " already held " << p;
        continue;
      }
      auto& rx = ps.at(n);
      bool receives = std::count(rx.receive.begin(), rx.receive.end(), p) == 1;
      bool orphaned = std::count(rx.orphaned.begin(), rx.orphaned.end(), p)
                      == 1;
      EXPECT_NE(receives, orphaned) << n << " partition " << p;
      auto it = copies.find({p, n});
      size_t senders = it == copies.end() ? 0 : it->second.size();
      EXPECT_EQ(senders, receives ? 1u : 0u)
        << "partition " << p << " to " << n << ": " << senders << " senders";
    }
  }
}

TEST(cache_handoff, a_joiner_takes_each_partition_from_the_owner_it_displaces) {
  auto members = names(5);
  placement before{"b", 271, 2, members};
  members.push_back("node-new");
  placement after{"b", 271, 2, members};
  auto ps = plans(before, after);
  check_common(before, after, ps);
  // Only the joiner receives; every copy comes from the displaced owner,
  // which then drops it.
  size_t copies = 0;
  for (auto& [node, plan] : ps) {
    if (node != "node-new") {
      EXPECT_TRUE(plan.receive.empty()) << node;
    }
    for (auto& t : plan.send) {
      ++copies;
      EXPECT_EQ(t.to, "node-new");
      EXPECT_FALSE(has(after.owners_of(t.partition), node));
      EXPECT_EQ(std::count(plan.drop.begin(), plan.drop.end(), t.partition), 1);
    }
  }
  EXPECT_EQ(copies, ps["node-new"].receive.size());
  EXPECT_EQ(copies, after.owned_by("node-new").size());
  EXPECT_TRUE(ps["node-new"].orphaned.empty());
}

TEST(cache_handoff, after_a_crash_the_surviving_owner_restores_the_rf) {
  auto members = names(5);
  placement before{"b", 271, 2, members};
  members.erase(members.begin() + 2); // node-2 crashed
  placement after{"b", 271, 2, members};
  auto ps = plans(before, after);
  check_common(before, after, ps);
  EXPECT_TRUE(ps["node-2"].send.empty()) << "a dead node cannot send";
  size_t restored = 0;
  for (auto& [node, plan] : ps) {
    for (auto& t : plan.send) {
      // The sender keeps its copy: it is the survivor of the old pair.
      EXPECT_TRUE(has(after.owners_of(t.partition), node));
      ++restored;
    }
  }
  EXPECT_EQ(restored, before.owned_by("node-2").size());
  for (uint32_t p = 0; p < after.partitions(); ++p) {
    EXPECT_EQ(after.owners_of(p).size(), 2u);
  }
}

TEST(cache_handoff, a_leaving_node_drains_everything_it_owned) {
  auto members = names(5);
  placement before{"b", 271, 3, members};
  members.erase(members.begin() + 4);
  placement after{"b", 271, 3, members};
  auto ps = plans(before, after, "node-4");
  check_common(before, after, ps, "node-4");
  auto& leaver = ps["node-4"];
  EXPECT_EQ(leaver.send.size(), before.owned_by("node-4").size());
  EXPECT_EQ(leaver.drop.size(), before.owned_by("node-4").size());
  for (auto& [node, plan] : ps) {
    if (node != "node-4") {
      EXPECT_TRUE(plan.send.empty()) << node << " sends on another's leave";
    }
  }
}

TEST(cache_handoff, partitions_whose_owners_all_died_are_orphaned) {
  placement before{"b", 64, 2, {"a", "b", "c", "d"}};
  placement after{"b", 64, 2, {"c", "d"}}; // a and b crashed together
  auto ps = plans(before, after);
  check_common(before, after, ps);
  size_t lost = 0;
  for (uint32_t p = 0; p < 64; ++p) {
    auto& o = before.owners_of(p);
    if (has(o, "a") && has(o, "b")) {
      ++lost;
      for (auto& n : after.owners_of(p)) {
        auto& orph = ps[n].orphaned;
        EXPECT_EQ(std::count(orph.begin(), orph.end(), p), 1) << n << " " << p;
      }
    }
  }
  EXPECT_GT(lost, 0u) << "the example should lose a partition";
}

TEST(cache_handoff, a_first_view_plans_nothing_and_orphans_nothing) {
  // A bucket just created (or just made on a node that joins): its view
  // goes from no members to the cluster. Nothing was held, so nothing is
  // received and nothing counted as lost (the orphaned counter used to
  // count every partition of every new bucket).
  placement none{"b", 271, 2, {}};
  placement all{"b", 271, 2, names(4)};
  for (auto& n : names(4)) {
    auto plan = plan_handoff(none, all, n);
    EXPECT_TRUE(plan.empty())
      << n << ": " << plan.orphaned.size() << " orphaned, "
      << plan.receive.size() << " to receive";
  }
}

TEST(cache_handoff, an_unchanged_view_plans_nothing) {
  placement a{"b", 271, 2, names(4)};
  placement b{"b", 271, 2, names(4)};
  for (auto& n : names(4)) {
    EXPECT_TRUE(plan_handoff(a, b, n).empty()) << n;
  }
}

TEST(cache_repair, each_side_sends_what_the_other_lacks_or_holds_older) {
  version v1{100, 0, 1};
  version v2{200, 0, 1};
  std::vector<proto::key_version> mine{{"a", v1}, {"b", v2}, {"c", v1}};
  std::vector<proto::key_version> theirs{
    {"d", v1}, {"c", v2}, {"b", v1}, {"e", v2}};
  auto plan = plan_repair(mine, theirs);
  EXPECT_EQ(plan.send, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(plan.want, (std::vector<std::string>{"c", "d", "e"}));
  // Symmetric: the other side's plan is the mirror image.
  auto other = plan_repair(theirs, mine);
  EXPECT_EQ(other.send, plan.want);
  EXPECT_EQ(other.want, plan.send);
  // Equal sets plan nothing.
  auto same = plan_repair(mine, mine);
  EXPECT_TRUE(same.send.empty());
  EXPECT_TRUE(same.want.empty());
}

} // namespace
