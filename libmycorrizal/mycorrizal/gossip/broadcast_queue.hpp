// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/gossip/fwd.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

/// memberlist's TransmitLimitedQueue (memberlist-wire.md §10.1): encoded
/// messages waiting to be piggybacked, each sent a limited number of times.
namespace mycorrizal::gossip {

class broadcast_queue {
public:
  /// Called once per broadcast when it leaves the queue: `true` after it
  /// was sent its full retransmit limit, `false` when a newer broadcast
  /// about the same node replaced it or the queue was cleared.
  using finished_fn = std::function<void(bool transmitted)>;

  /// Queues `msg` (a complete message with its type byte) about node
  /// `name`, replacing any queued broadcast about the same node.
  void queue(std::string name, byte_buffer msg, finished_fn on_finish = {});

  /// Takes broadcasts for one packet: each costs `overhead + size` bytes of
  /// `limit`. Order: fewest transmissions first, then the largest that
  /// still fits, then the newest. Each taken broadcast counts one
  /// transmission; those reaching `transmit_limit` leave the queue.
  std::vector<byte_buffer> take(size_t overhead, size_t limit,
                                int transmit_limit);

  /// Drops broadcasts beyond `max_retained`, the most transmitted first
  /// (memberlist's Prune).
  void prune(size_t max_retained);

  /// Drops every broadcast (their callbacks get `false`).
  void clear();

  size_t size() const noexcept {
    return items_.size();
  }

  bool empty() const noexcept {
    return items_.empty();
  }

private:
  struct item {
    std::string name;
    byte_buffer msg;
    finished_fn on_finish;
    int transmits = 0;
    uint64_t id = 0;
  };

  /// Send order: fewest transmissions, then largest, then newest.
  struct order {
    bool operator()(const item& x, const item& y) const noexcept {
      if (x.transmits != y.transmits) {
        return x.transmits < y.transmits;
      }
      if (x.msg.size() != y.msg.size()) {
        return x.msg.size() > y.msg.size();
      }
      return x.id > y.id;
    }
  };

  using item_set = std::set<item, order>;

  item_set items_;
  std::unordered_map<std::string, item_set::iterator> by_name_;
  /// Message sizes queued (size -> count), so `take` stops scanning once
  /// not even the smallest fits.
  std::map<size_t, size_t> sizes_;
  uint64_t next_id_ = 0;

  /// Drops one message of `size` from `sizes_`.
  void forget_size(size_t size);

  /// Removes `i` and returns its callback.
  finished_fn erase(item_set::iterator i);
};

} // namespace mycorrizal::gossip
