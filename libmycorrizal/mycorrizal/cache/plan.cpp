// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cache/plan.hpp"

#include <algorithm>

namespace mycorrizal::cache {

namespace {

bool contains(const std::vector<std::string>& xs, std::string_view x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

} // namespace

handoff_plan plan_handoff(const placement& before, const placement& after,
                          std::string_view self, std::string_view leaving) {
  handoff_plan out;
  auto alive = [&](std::string_view m) {
    return m == leaving || contains(after.members(), m);
  };
  for (auto p : after.changed(before)) {
    const auto& olds = before.owners_of(p);
    const auto& news = after.owners_of(p);
    if (olds.empty()) {
      // The bucket's first view (it was just created, or this node just
      // made it): nobody held the partition, nothing is lost or owed.
      continue;
    }
    // Owners that lose p and can still send it, in the old order.
    std::vector<std::string> losers;
    for (const auto& o : olds) {
      if (!contains(news, o) && alive(o)) {
        losers.push_back(o);
      }
    }
    // The first surviving old owner that keeps p.
    const std::string* keeper = nullptr;
    for (const auto& o : olds) {
      if (contains(news, o) && alive(o)) {
        keeper = &o;
        break;
      }
    }
    size_t next_loser = 0;
    for (const auto& n : news) {
      if (contains(olds, n)) {
        continue; // holds p already
      }
      const std::string* from = nullptr;
      if (next_loser < losers.size()) {
        from = &losers[next_loser++];
      } else if (keeper != nullptr) {
        from = keeper;
      } else if (!losers.empty()) {
        from = &losers.front();
      }
      if (n == self) {
        if (from != nullptr) {
          out.receive.push_back(p);
        } else {
          out.orphaned.push_back(p);
        }
      } else if (from != nullptr && *from == self) {
        out.send.push_back(transfer_task{p, n});
      }
    }
    if (contains(olds, self) && !contains(news, self)) {
      out.drop.push_back(p);
    }
  }
  return out;
}

repair_plan plan_repair(std::vector<proto::key_version> mine,
                        std::vector<proto::key_version> theirs) {
  auto by_key = [](const proto::key_version& a, const proto::key_version& b) {
    return a.key < b.key;
  };
  std::sort(mine.begin(), mine.end(), by_key);
  std::sort(theirs.begin(), theirs.end(), by_key);
  repair_plan out;
  auto i = mine.begin();
  auto j = theirs.begin();
  while (i != mine.end() || j != theirs.end()) {
    if (j == theirs.end() || (i != mine.end() && i->key < j->key)) {
      out.send.push_back(std::move(i->key));
      ++i;
    } else if (i == mine.end() || j->key < i->key) {
      out.want.push_back(std::move(j->key));
      ++j;
    } else {
      if (j->ver < i->ver) {
        out.send.push_back(std::move(i->key));
      } else if (i->ver < j->ver) {
        out.want.push_back(std::move(j->key));
      }
      ++i;
      ++j;
    }
  }
  return out;
}

} // namespace mycorrizal::cache
