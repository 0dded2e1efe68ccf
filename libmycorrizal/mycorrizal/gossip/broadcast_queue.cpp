// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/broadcast_queue.hpp"

#include <iterator>

namespace mycorrizal::gossip {

void broadcast_queue::forget_size(size_t size) {
  if (auto s = sizes_.find(size); --s->second == 0) {
    sizes_.erase(s);
  }
}

broadcast_queue::finished_fn broadcast_queue::erase(item_set::iterator i) {
  by_name_.erase(i->name);
  forget_size(i->msg.size());
  auto node = items_.extract(i);
  return std::move(node.value().on_finish);
}

void broadcast_queue::queue(std::string name, byte_buffer msg,
                            finished_fn on_finish) {
  finished_fn replaced;
  if (auto i = by_name_.find(name); i != by_name_.end()) {
    replaced = erase(i->second);
  }
  item x{std::move(name), std::move(msg), std::move(on_finish), 0, next_id_++};
  auto key = x.name;
  ++sizes_[x.msg.size()];
  auto [pos, ok] = items_.insert(std::move(x));
  by_name_.emplace(std::move(key), pos);
  if (replaced) {
    replaced(false);
  }
}

std::vector<byte_buffer> broadcast_queue::take(size_t overhead, size_t limit,
                                               int transmit_limit) {
  std::vector<byte_buffer> out;
  std::vector<item_set::iterator> taken;
  size_t used = 0;
  if (items_.empty()) {
    return out;
  }
  auto smallest = overhead + sizes_.begin()->first;
  for (auto i = items_.begin(); i != items_.end(); ++i) {
    if (limit - used < smallest) {
      break;
    }
    auto cost = overhead + i->msg.size();
    if (used + cost > limit) {
      continue;
    }
    used += cost;
    out.push_back(i->msg);
    taken.push_back(i);
  }
  // Count the transmission: re-insert with the new count, or finish.
  std::vector<finished_fn> callbacks;
  for (auto i : taken) {
    auto node = items_.extract(i);
    auto& x = node.value();
    if (++x.transmits >= transmit_limit) {
      by_name_.erase(x.name);
      forget_size(x.msg.size());
      if (x.on_finish) {
        callbacks.push_back(std::move(x.on_finish));
      }
      continue;
    }
    auto key = x.name;
    auto res = items_.insert(std::move(node));
    by_name_[key] = res.position;
  }
  for (auto& f : callbacks) {
    f(true);
  }
  return out;
}

void broadcast_queue::prune(size_t max_retained) {
  std::vector<finished_fn> callbacks;
  while (items_.size() > max_retained) {
    // The most transmitted (and, among those, the oldest) go first.
    auto last = std::prev(items_.end());
    if (auto f = erase(last)) {
      callbacks.push_back(std::move(f));
    }
  }
  for (auto& f : callbacks) {
    f(false);
  }
}

void broadcast_queue::clear() {
  std::vector<finished_fn> callbacks;
  for (auto& x : items_) {
    if (x.on_finish) {
      callbacks.push_back(x.on_finish);
    }
  }
  items_.clear();
  by_name_.clear();
  sizes_.clear();
  for (auto& f : callbacks) {
    f(false);
  }
}

} // namespace mycorrizal::gossip
