// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/time.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

/// Request correlation for cross-node request/response (DESIGN.md §4): a
/// requester sends REQUEST frames with ids from its `pending` table and
/// matches RESPONSE frames against it. Every entry has a deadline, so an
/// answer that never comes cannot keep an entry (and whatever waits on it)
/// alive forever: the owner expires entries at `next_deadline()` and fails
/// them with `errc::timeout`, fails all of them when the connection or node
/// is gone, and drops (and counts) responses that come too late.
/// Pure: the owner passes `now`.
namespace mycorrizal::rpc {

/// Counters of a `pending` table.
struct pending_stats {
  uint64_t added = 0;
  /// Answered in time (`take` found the entry).
  uint64_t completed = 0;
  /// Removed by `expire`.
  uint64_t expired = 0;
  /// Responses for no pending entry: too late, duplicated or made up.
  uint64_t late = 0;
  /// `add` refused at the limit.
  uint64_t refused = 0;
  /// Removed by `take_all`.
  uint64_t abandoned = 0;
};

/// Outstanding requests of one requester, each holding a `T` (e.g. the CAF
/// response promise to fulfil) and a deadline.
template <class T>
class pending {
public:
  /// At most `limit` requests at once (at least 1).
  explicit pending(size_t limit) : limit_(std::max<size_t>(limit, 1)) {
    // nop
  }

  /// Registers a request that must be answered by `deadline`.
  /// @returns its id: never 0, increasing, never reused by this table;
  ///          `errc::queue_full` when `limit` requests are pending.
  expected<uint64_t> add(T value, time_point deadline) {
    if (by_id_.size() >= limit_) {
      ++stats_.refused;
      return unexpected{
        error{errc::queue_full,
              "too many pending requests (" + std::to_string(limit_) + ")"}};
    }
    auto id = next_id_++;
    by_id_.emplace(id, entry{std::move(value), deadline});
    by_deadline_.emplace(deadline, id);
    ++stats_.added;
    return id;
  }

  /// The response for `id` arrived: takes its entry.
  /// @returns `std::nullopt` (and counts it as late) when `id` is not
  ///          pending: expired, answered before, or never issued.
  std::optional<T> take(uint64_t id) {
    auto i = by_id_.find(id);
    if (i == by_id_.end()) {
      ++stats_.late;
      return std::nullopt;
    }
    by_deadline_.erase({i->second.deadline, id});
    auto value = std::move(i->second.value);
    by_id_.erase(i);
    ++stats_.completed;
    return value;
  }

  /// Removes every entry due at `now` (deadline <= now), earliest first.
  std::vector<std::pair<uint64_t, T>> expire(time_point now) {
    std::vector<std::pair<uint64_t, T>> out;
    while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
      auto id = by_deadline_.begin()->second;
      by_deadline_.erase(by_deadline_.begin());
      auto i = by_id_.find(id);
      out.emplace_back(id, std::move(i->second.value));
      by_id_.erase(i);
      ++stats_.expired;
    }
    return out;
  }

  /// Removes every entry (the peer is gone), in id order.
  std::vector<std::pair<uint64_t, T>> take_all() {
    std::vector<std::pair<uint64_t, T>> out;
    out.reserve(by_id_.size());
    for (auto& [id, e] : by_id_) {
      out.emplace_back(id, std::move(e.value));
    }
    stats_.abandoned += by_id_.size();
    by_id_.clear();
    by_deadline_.clear();
    return out;
  }

  /// The earliest deadline (`never` when nothing is pending).
  time_point next_deadline() const noexcept {
    return by_deadline_.empty() ? never : by_deadline_.begin()->first;
  }

  size_t size() const noexcept {
    return by_id_.size();
  }

  bool empty() const noexcept {
    return by_id_.empty();
  }

  const pending_stats& stats() const noexcept {
    return stats_;
  }

private:
  struct entry {
    T value;
    time_point deadline;
  };

  size_t limit_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, entry> by_id_;
  std::set<std::pair<time_point, uint64_t>> by_deadline_;
  pending_stats stats_;
};

/// The budget a REQUEST frame carries (`wire::request::timeout_ms`): the
/// time left until `deadline`, in whole milliseconds, rounded up so that a
/// live request never says 0 ("no budget given"), and capped at the u32
/// range. A deadline already passed gives 1.
inline uint32_t budget_ms(time_point deadline, time_point now) noexcept {
  if (deadline == never) {
    return 0;
  }
  if (deadline <= now) {
    return 1;
  }
  auto left = deadline - now;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  constexpr auto cap = std::numeric_limits<uint32_t>::max();
  return ms >= static_cast<int64_t>(cap) ? cap : static_cast<uint32_t>(ms);
}

} // namespace mycorrizal::rpc
