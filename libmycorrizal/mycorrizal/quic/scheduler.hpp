// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/quic/fwd.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

/// Which stream of a QUIC connection writes the next packet, and whether a
/// bulk transfer must leave room to small messages. Pure: plain numbers in
/// (congestion window, bytes in flight, minimum RTT, delivery rate, each
/// stream's backlog, `now`), a stream id out; no ngtcp2.
///
/// Streams with something to send wait in one queue and take turns, one
/// packet each (round robin). A stream with more than `heavy_backlog` bytes
/// not yet in packets is *heavy* (a bulk transfer); any other stream that
/// writes is *light* (a request, a control message). While a stream other
/// than a heavy one wrote light within its window (below), the heavy one is
/// *held back*: it fills a packet only when
/// - the packet keeps its in-flight bytes within `bulk_in_flight`, or
///   within twice the path's bandwidth-delay product (delivery rate ×
///   minimum RTT) when that is more, so that a long path stays full
///   (`bulk_room`): a small message queues behind what is in flight, in
///   queues on the way and in the peer's socket and decryption;
/// - and it leaves the last `max_len + latency_reserve` bytes of the
///   congestion window free, so that a small message leaves at once
///   instead of waiting for the bulk's acknowledgements (ngtcp2 writes a
///   packet while any window is left, so the packet's own size is part of
///   the reserve).
/// With nothing in flight it always may, so neither rule can stall it. A
/// held-back stream yields its turn and stays in the queue.
///
/// A light write holds heavy streams back for a window that follows how
/// often its stream writes: `light_window_gaps` times the gap between the
/// stream's last two new writes (writes with bytes added since the one
/// before), within [`light_window_min`, `light_window_max`]. A stream that
/// writes often (a request stream) is covered between its writes; bulk runs
/// free again soon after it stops; one that writes seldom (every 200 ms) is
/// covered from its second write on. A stream's first light write holds the
/// minimum: that is all a one-off write (a control message) costs the bulk.
/// A stream's own light writes never hold it back.
namespace mycorrizal::quic {

/// Tunables of a `scheduler`. `latency_reserve` and `bulk_in_flight` come
/// from `transport_config` (see there); the others are fixed in production
/// and set only by tests.
struct scheduler_config {
  /// Congestion window bytes a held-back heavy stream leaves free beyond
  /// one packet. 0 turns this rule off.
  size_t latency_reserve = 4096;

  /// Bytes in flight a held-back heavy stream keeps at most (or twice the
  /// BDP when more). 0 turns this rule off. With both rules off no stream
  /// is ever held back.
  size_t bulk_in_flight = size_t{64} * 1024;

  /// A stream with more bytes than this not yet in packets is heavy.
  uint64_t heavy_backlog = uint64_t{64} * 1024;

  /// The window a light write holds heavy streams back:
  /// clamp(light_window_gaps × gap between the stream's last two new
  /// writes, light_window_min, light_window_max); light_window_min for its
  /// first one.
  duration light_window_min = std::chrono::milliseconds{20};
  duration light_window_max = std::chrono::seconds{1};
  int light_window_gaps = 8;
};

/// The congestion state a held-back heavy stream is weighed against
/// (ngtcp2's `ngtcp2_conn_stat`, in plain numbers).
struct path_state {
  /// Congestion window (bytes).
  uint64_t cwnd = 0;
  /// Bytes in flight.
  uint64_t bytes_in_flight = 0;
  /// Minimum RTT; zero while unknown.
  duration min_rtt{};
  /// Delivery rate (bytes per second); zero while unknown.
  uint64_t delivery_rate = 0;
};

/// What the scheduler needs to know of a stream's send side.
struct stream_backlog {
  /// Bytes given to the stream and not yet in packets.
  uint64_t unsent = 0;
  /// Bytes ever given to the stream (its end offset): a write is a new
  /// message when this grew since the stream's last light write.
  uint64_t end = 0;
  /// Whether the stream has bytes or a FIN to send. An unknown stream has
  /// not.
  bool pending = false;
};

/// What became of the stream that wrote (see `scheduler::rotate`).
enum class stream_turn : uint8_t {
  /// It has more to send: to the back of the queue.
  again,
  /// Flow control stops it: parked until `unblock`.
  blocked,
  /// Nothing left to send (or the stream is gone): off the queue.
  done,
};

/// The send queue and bulk/light policy of one connection. Not thread-safe;
/// allocates only when a stream is first queued, never per packet.
class scheduler {
public:
  explicit scheduler(scheduler_config cfg = {}) noexcept : cfg_(cfg) {
    // nop
  }

  // -- queue -----------------------------------------------------------------

  /// Queues stream `sid` at the back unless it is queued or blocked
  /// already. Call when it has something to send (`pending`).
  void enqueue(int64_t sid);

  /// Picks the stream that writes the next packet of at most `max_len`
  /// bytes, or none. Streams that are gone, have nothing pending or are
  /// blocked leave the queue; held-back heavy ones (see the module comment)
  /// move to the back. The picked stream stays at the front until
  /// `rotate`; a light pick counts as a light write at `now`.
  /// `backlog_of(int64_t sid)` returns the stream's `stream_backlog`;
  /// `path_of()` returns the `path_state`, and is asked at most once, only
  /// when a heavy stream is held back.
  template <class BacklogOf, class PathOf>
  std::optional<int64_t> next(time_point now, size_t max_len,
                              BacklogOf&& backlog_of, PathOf&& path_of) {
    size_t passed = 0;
    // The same for every held-back stream of this packet.
    std::optional<bool> window_lets;
    auto heavy_may_write = [&](int64_t sid) {
      if (!heavy_held_back(sid, now)) {
        return true;
      }
      if (!window_lets) {
        window_lets = window_lets_heavy(path_of(), max_len);
      }
      return *window_lets;
    };
    while (!queue_.empty()) {
      auto sid = queue_.front();
      auto i = entries_.find(sid);
      if (i == entries_.end()) {
        queue_.pop_front();
        continue;
      }
      auto& e = i->second;
      stream_backlog b = backlog_of(sid);
      if (!b.pending || e.blocked) {
        e.queued = false;
        queue_.pop_front();
        continue;
      }
      bool heavy = b.unsent > cfg_.heavy_backlog;
      if (heavy && !heavy_may_write(sid)) {
        // Leaves the reserve to the others; it goes again on the next
        // write, when acknowledgements have freed the window.
        if (++passed > queue_.size()) {
          return std::nullopt;
        }
        queue_.push_back(sid);
        queue_.pop_front();
        continue;
      }
      if (!heavy) {
        note_light_write(sid, e, b.end, now);
      }
      return sid;
    }
    return std::nullopt;
  }

  /// Like the other overload, with the path state at hand.
  template <class BacklogOf>
  std::optional<int64_t> next(time_point now, const path_state& path,
                              size_t max_len, BacklogOf&& backlog_of) {
    return next(now, max_len, std::forward<BacklogOf>(backlog_of),
                [&path]() -> const path_state& {
                  return path;
                });
  }

  /// After stream `sid` wrote (or tried to): when it is at the front, takes
  /// it off and queues it again at the back (`again`), parks it until
  /// `unblock` (`blocked`) or leaves it off (`done`). Else does nothing.
  void rotate(int64_t sid, stream_turn turn);

  /// Takes stream `sid` off the front of the queue if it is there, and
  /// marks it not queued (its sending side ended).
  void drop(int64_t sid);

  /// Flow control lets parked stream `sid` send again.
  /// @returns whether it was parked (the caller then queues it with
  ///   `enqueue` if it has something to send).
  bool unblock(int64_t sid);

  /// Unparks every parked stream for which `ready(sid)` says flow control
  /// lets it send, and queues those that `backlog_of(sid)` says have
  /// something pending, in the order of the parked set.
  template <class Ready, class BacklogOf>
  void unblock_if(Ready&& ready, BacklogOf&& backlog_of) {
    for (auto j = blocked_.begin(); j != blocked_.end();) {
      auto sid = *j;
      if (!ready(sid)) {
        ++j;
        continue;
      }
      j = blocked_.erase(j);
      if (auto i = entries_.find(sid); i != entries_.end()) {
        i->second.blocked = false;
      }
      if (backlog_of(sid).pending) {
        enqueue(sid);
      }
    }
  }

  /// Forgets stream `sid` (it closed).
  void remove(int64_t sid);

  // -- policy ----------------------------------------------------------------

  /// Whether a stream other than `sid` wrote light within its window.
  bool others_light(int64_t sid, time_point now) const noexcept;

  /// Whether heavy stream `sid` is held back: a rule is on and another
  /// stream wrote light within its window.
  bool heavy_held_back(int64_t sid, time_point now) const noexcept;

  /// Whether a held-back heavy stream may fill a packet of `max_len` bytes
  /// now (both rules of the module comment; always with nothing in flight).
  bool window_lets_heavy(const path_state& path, size_t max_len) const noexcept;

  /// Whether a packet of `max_len` bytes keeps the bytes in flight within
  /// the bulk limit: `bulk_in_flight`, or twice the BDP when more.
  bool bulk_room(const path_state& path, size_t max_len) const noexcept;

  /// The bulk limit: `bulk_in_flight`, or twice the BDP when more.
  uint64_t bulk_limit(const path_state& path) const noexcept;

  // -- observers -------------------------------------------------------------

  /// Streams in the queue, in order (gone or finished ones leave it lazily).
  const std::deque<int64_t>& queue() const noexcept {
    return queue_;
  }

  /// Parked streams.
  const std::unordered_set<int64_t>& blocked() const noexcept {
    return blocked_;
  }

  /// Whether stream `sid` is parked.
  bool is_blocked(int64_t sid) const noexcept;

  /// How long stream `sid`'s light writes hold heavy streams back now
  /// (`light_window_min` for an unknown stream).
  duration light_window(int64_t sid) const noexcept;

  const scheduler_config& config() const noexcept {
    return cfg_;
  }

private:
  struct entry {
    bool queued = false;
    bool blocked = false;
    /// Its latest new light write: when, and the stream's end then.
    std::optional<time_point> light_at;
    uint64_t light_end = 0;
    /// How long its light writes hold heavy streams back.
    duration light_window{};
  };

  /// A light write: which stream, when, and for how long it holds heavy
  /// streams back.
  struct light_write {
    int64_t stream_id = -1;
    time_point at{};
    duration window{};
  };

  void note_light_write(int64_t sid, entry& e, uint64_t end, time_point now);

  entry& entry_of(int64_t sid);

  scheduler_config cfg_;
  std::deque<int64_t> queue_;
  std::unordered_set<int64_t> blocked_;
  std::unordered_map<int64_t, entry> entries_;
  /// The latest light write, and the latest one of another stream before
  /// it: together they tell whether any stream but a given one wrote light
  /// recently.
  std::optional<light_write> last_light_;
  std::optional<light_write> other_light_;
};

} // namespace mycorrizal::quic
