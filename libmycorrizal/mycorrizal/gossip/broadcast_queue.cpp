// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/broadcast_queue.hpp"

#include <algorithm>
#include <numeric>
#include <tuple>

namespace mycorrizal::gossip {

void broadcast_queue::queue(std::string name, byte_buffer msg,
                            finished_fn on_finish) {
  item x{std::move(name), std::move(msg), std::move(on_finish), 0, next_id_++};
  if (auto i = by_name_.find(x.name); i != by_name_.end()) {
    auto old = std::move(items_[i->second].on_finish);
    items_[i->second] = std::move(x);
    if (old) {
      old(false);
    }
    return;
  }
  by_name_.emplace(x.name, items_.size());
  items_.push_back(std::move(x));
}

void broadcast_queue::erase_at(size_t index) {
  by_name_.erase(items_[index].name);
  if (index + 1 != items_.size()) {
    items_[index] = std::move(items_.back());
    by_name_[items_[index].name] = index;
  }
  items_.pop_back();
}

std::vector<byte_buffer> broadcast_queue::take(size_t overhead, size_t limit,
                                               int transmit_limit) {
  std::vector<byte_buffer> out;
  if (items_.empty()) {
    return out;
  }
  std::vector<size_t> order(items_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) {
    const auto& x = items_[a];
    const auto& y = items_[b];
    return std::make_tuple(x.transmits, y.msg.size(), y.id)
           < std::make_tuple(y.transmits, x.msg.size(), x.id);
  });
  size_t used = 0;
  std::vector<size_t> finished;
  for (auto index : order) {
    auto& x = items_[index];
    auto cost = overhead + x.msg.size();
    if (used + cost > limit) {
      continue;
    }
    used += cost;
    out.push_back(x.msg);
    if (++x.transmits >= transmit_limit) {
      finished.push_back(index);
    }
    if (limit - used <= overhead) {
      break;
    }
  }
  // Erase from the back so earlier indexes stay valid.
  std::sort(finished.rbegin(), finished.rend());
  std::vector<finished_fn> callbacks;
  for (auto index : finished) {
    if (items_[index].on_finish) {
      callbacks.push_back(std::move(items_[index].on_finish));
    }
    erase_at(index);
  }
  for (auto& f : callbacks) {
    f(true);
  }
  return out;
}

void broadcast_queue::prune(size_t max_retained) {
  if (items_.size() <= max_retained) {
    return;
  }
  std::vector<size_t> order(items_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) {
    return std::make_tuple(items_[a].transmits, items_[a].id)
           > std::make_tuple(items_[b].transmits, items_[b].id);
  });
  order.resize(items_.size() - max_retained);
  std::sort(order.rbegin(), order.rend());
  std::vector<finished_fn> callbacks;
  for (auto index : order) {
    if (items_[index].on_finish) {
      callbacks.push_back(std::move(items_[index].on_finish));
    }
    erase_at(index);
  }
  for (auto& f : callbacks) {
    f(false);
  }
}

void broadcast_queue::clear() {
  std::vector<finished_fn> callbacks;
  for (auto& x : items_) {
    if (x.on_finish) {
      callbacks.push_back(std::move(x.on_finish));
    }
  }
  items_.clear();
  by_name_.clear();
  for (auto& f : callbacks) {
    f(false);
  }
}

} // namespace mycorrizal::gossip
