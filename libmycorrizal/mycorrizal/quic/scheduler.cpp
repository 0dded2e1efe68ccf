// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/scheduler.hpp"

#include <algorithm>

namespace mycorrizal::quic {

// -- queue --------------------------------------------------------------------

scheduler::entry& scheduler::entry_of(int64_t sid) {
  auto [i, added] = entries_.try_emplace(sid);
  if (added) {
    i->second.light_window = cfg_.light_window_min;
  }
  return i->second;
}

void scheduler::enqueue(int64_t sid) {
  auto& e = entry_of(sid);
  if (!e.queued && !e.blocked) {
    e.queued = true;
    queue_.push_back(sid);
  }
}

void scheduler::rotate(int64_t sid, stream_turn turn) {
  if (queue_.empty() || queue_.front() != sid) {
    return;
  }
  queue_.pop_front();
  auto i = entries_.find(sid);
  if (i == entries_.end()) {
    return;
  }
  auto& e = i->second;
  e.queued = false;
  switch (turn) {
    case stream_turn::again: enqueue(sid); break;
    case stream_turn::blocked:
      e.blocked = true;
      blocked_.insert(sid);
      break;
    case stream_turn::done: break;
  }
}

void scheduler::drop(int64_t sid) {
  if (!queue_.empty() && queue_.front() == sid) {
    queue_.pop_front();
  }
  if (auto i = entries_.find(sid); i != entries_.end()) {
    i->second.queued = false;
  }
}

bool scheduler::unblock(int64_t sid) {
  auto i = entries_.find(sid);
  if (i == entries_.end() || !i->second.blocked) {
    return false;
  }
  i->second.blocked = false;
  blocked_.erase(sid);
  return true;
}

void scheduler::remove(int64_t sid) {
  entries_.erase(sid);
  blocked_.erase(sid);
}

// -- policy -------------------------------------------------------------------

void scheduler::note_light_write(int64_t sid, entry& e, uint64_t end,
                                 time_point now) {
  if (end > e.light_end) {
    // New bytes since the last one: a new message, not the next packet of
    // the same one or a retry.
    if (e.light_at) {
      e.light_window
        = std::clamp<duration>(cfg_.light_window_gaps * (now - *e.light_at),
                               cfg_.light_window_min, cfg_.light_window_max);
    }
    e.light_at = now;
    e.light_end = end;
  }
  if (last_light_ && last_light_->stream_id != sid) {
    other_light_ = last_light_;
  }
  last_light_ = light_write{sid, now, e.light_window};
}

bool scheduler::others_light(int64_t sid, time_point now) const noexcept {
  auto recent = [&](const std::optional<light_write>& w) {
    return w && w->stream_id != sid && now - w->at <= w->window;
  };
  return recent(last_light_) || recent(other_light_);
}

bool scheduler::heavy_held_back(int64_t sid, time_point now) const noexcept {
  return (cfg_.latency_reserve != 0 || cfg_.bulk_in_flight != 0)
         && others_light(sid, now);
}

bool scheduler::window_lets_heavy(const path_state& path,
                                  size_t max_len) const noexcept {
  if (path.bytes_in_flight == 0) {
    return true;
  }
  if (cfg_.bulk_in_flight != 0 && !bulk_room(path, max_len)) {
    return false;
  }
  auto reserve = cfg_.latency_reserve;
  return reserve == 0
         || (path.cwnd >= path.bytes_in_flight
             && path.cwnd - path.bytes_in_flight >= max_len + reserve);
}

uint64_t scheduler::bulk_limit(const path_state& path) const noexcept {
  uint64_t limit = cfg_.bulk_in_flight;
  if (path.min_rtt.count() > 0 && path.delivery_rate > 0) {
    // bytes/s × ns; in double, as the product can exceed 64 bits.
    auto bdp = static_cast<uint64_t>(static_cast<double>(path.delivery_rate)
                                     * static_cast<double>(path.min_rtt.count())
                                     / 1e9);
    limit = std::max(limit, 2 * bdp);
  }
  return limit;
}

bool scheduler::bulk_room(const path_state& path,
                          size_t max_len) const noexcept {
  return path.bytes_in_flight + max_len <= bulk_limit(path);
}

// -- observers ----------------------------------------------------------------

bool scheduler::is_blocked(int64_t sid) const noexcept {
  auto i = entries_.find(sid);
  return i != entries_.end() && i->second.blocked;
}

duration scheduler::light_window(int64_t sid) const noexcept {
  auto i = entries_.find(sid);
  return i != entries_.end() ? i->second.light_window : cfg_.light_window_min;
}

} // namespace mycorrizal::quic
