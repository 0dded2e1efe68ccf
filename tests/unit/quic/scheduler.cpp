// SPDX-License-Identifier: Apache-2.0
// Suite quic.scheduler: the send queue and the bulk/light policy of a QUIC
// connection, with plain numbers and literal times (no ngtcp2).
#include "mycorrizal/quic/scheduler.hpp"

#include "mycorrizal/quic/transport_config.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::quic;
using namespace std::chrono_literals;

namespace {

constexpr size_t max_len = 1200;
constexpr uint64_t light = 1000;           // bytes: a small message
constexpr uint64_t heavy = 1024 * 1024;    // bytes: a bulk transfer
const time_point t0 = time_point{} + 100s; // any origin works

// Streams' send sides as the connection would report them.
struct fixture {
  scheduler sched;
  std::map<int64_t, stream_backlog> streams;

  explicit fixture(scheduler_config cfg = {}) : sched(cfg) {
    // nop
  }

  // Gives `n` more bytes to stream `sid` and queues it.
  void give(int64_t sid, uint64_t n) {
    auto& b = streams[sid];
    b.unsent += n;
    b.end += n;
    b.pending = b.unsent > 0;
    sched.enqueue(sid);
  }

  // `n` of the stream's bytes went into a packet.
  void sent(int64_t sid, uint64_t n) {
    auto& b = streams[sid];
    b.unsent -= std::min(n, b.unsent);
    b.pending = b.unsent > 0;
  }

  std::optional<int64_t> next(time_point now, path_state path = {}) {
    return sched.next(now, path, max_len, [this](int64_t sid) {
      auto i = streams.find(sid);
      return i != streams.end() ? i->second : stream_backlog{};
    });
  }

  // Picks, "writes" one packet of up to `max_len` bytes and rotates, as
  // connection::write does.
  std::optional<int64_t> write_one(time_point now, path_state path = {}) {
    auto sid = next(now, path);
    if (sid) {
      sent(*sid, max_len);
      sched.rotate(*sid, streams[*sid].pending ? stream_turn::again
                                               : stream_turn::done);
    }
    return sid;
  }

  std::vector<int64_t> queue() const {
    return {sched.queue().begin(), sched.queue().end()};
  }
};

// A path with `in_flight` bytes out and plenty of window, BDP unknown.
path_state busy(uint64_t in_flight, uint64_t cwnd = 10 * 1024 * 1024) {
  return path_state{cwnd, in_flight, 0ns, 0};
}

} // namespace

// -- queue order --------------------------------------------------------------

TEST(quic_scheduler, streams_take_turns_one_packet_each) {
  fixture f;
  f.give(0, 3 * max_len);
  f.give(4, 3 * max_len);
  f.give(8, 3 * max_len);
  std::vector<int64_t> order;
  while (auto sid = f.write_one(t0)) {
    order.push_back(*sid);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{0, 4, 8, 0, 4, 8, 0, 4, 8}));
  EXPECT_TRUE(f.sched.queue().empty());
}

TEST(quic_scheduler, the_picked_stream_stays_at_the_front_until_rotate) {
  fixture f;
  f.give(0, light);
  f.give(4, light);
  EXPECT_EQ(f.next(t0), 0);
  // WRITE_MORE: the packet has room and the connection asks again before
  // rotating; the same stream is picked.
  EXPECT_EQ(f.next(t0), 0);
  f.sched.rotate(4, stream_turn::again); // not at the front: no effect
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{0, 4}));
  f.sched.rotate(0, stream_turn::again);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4, 0}));
}

TEST(quic_scheduler, a_stream_is_queued_once) {
  fixture f;
  f.give(0, light);
  f.give(0, light);
  f.give(4, light);
  f.give(0, light);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{0, 4}));
}

TEST(quic_scheduler, finished_and_removed_streams_leave_the_queue) {
  fixture f;
  f.give(0, light);
  f.give(4, light);
  f.give(8, light);
  f.sent(0, light); // nothing pending any more
  f.sched.remove(4);
  f.streams.erase(4); // closed
  EXPECT_EQ(f.next(t0), 8);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{8}));
  // Stream 0 was taken off, so new bytes queue it again.
  f.give(0, light);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{8, 0}));
}

TEST(quic_scheduler, a_blocked_stream_waits_until_unblocked) {
  fixture f;
  f.give(0, 3 * max_len);
  f.give(4, 3 * max_len);
  ASSERT_EQ(f.next(t0), 0);
  f.sent(0, max_len);
  f.sched.rotate(0, stream_turn::blocked);
  EXPECT_TRUE(f.sched.is_blocked(0));
  f.give(0, light); // new bytes do not queue a parked stream
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4}));
  EXPECT_FALSE(f.sched.unblock(4)); // not parked
  EXPECT_TRUE(f.sched.unblock(0));
  EXPECT_FALSE(f.sched.is_blocked(0));
  f.sched.enqueue(0);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4, 0}));
}

TEST(quic_scheduler, unblock_if_queues_the_ready_streams_with_data) {
  fixture f;
  for (int64_t sid : {0, 4, 8}) {
    f.give(sid, 3 * max_len);
    ASSERT_EQ(f.next(t0), sid);
    f.sched.rotate(sid, stream_turn::blocked);
  }
  EXPECT_EQ(f.sched.blocked().size(), 3u);
  f.sent(8, 3 * max_len); // nothing left: unparked but not queued
  f.sched.unblock_if(
    [](int64_t sid) {
      return sid != 4;
    },
    [&f](int64_t sid) {
      return f.streams[sid];
    });
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{0}));
  EXPECT_FALSE(f.sched.is_blocked(0));
  EXPECT_TRUE(f.sched.is_blocked(4));
  EXPECT_FALSE(f.sched.is_blocked(8));
}

TEST(quic_scheduler, drop_takes_the_front_stream_off) {
  fixture f;
  f.give(0, light);
  f.give(4, light);
  ASSERT_EQ(f.next(t0), 0);
  f.sched.drop(0);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4}));
  f.sched.enqueue(0); // marked not queued: may be queued again
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4, 0}));
}

// -- light and heavy ----------------------------------------------------------

TEST(quic_scheduler, a_stream_is_not_held_back_by_its_own_light_writes) {
  fixture f;
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0); // a light write of stream 0
  f.give(0, heavy);              // now a bulk transfer on the same stream
  EXPECT_FALSE(f.sched.heavy_held_back(0, t0 + 1ms));
  EXPECT_EQ(f.next(t0 + 1ms, busy(1024 * 1024, 1024 * 1024)), 0);
}

TEST(quic_scheduler, a_heavy_stream_is_held_back_after_another_wrote_light) {
  fixture f;
  f.give(4, heavy);
  f.give(0, light);
  // The heavy stream runs free: nobody wrote light yet.
  EXPECT_FALSE(f.sched.heavy_held_back(4, t0));
  ASSERT_EQ(f.write_one(t0, busy(1024 * 1024)), 4);
  ASSERT_EQ(f.write_one(t0), 0); // light write at t0
  EXPECT_TRUE(f.sched.heavy_held_back(4, t0 + 1ms));
  EXPECT_FALSE(f.sched.heavy_held_back(0, t0 + 1ms));
  // In flight beyond bulk_in_flight: it yields and stays queued.
  EXPECT_EQ(f.next(t0 + 1ms, busy(100 * 1024)), std::nullopt);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4}));
  // Within it: it writes.
  EXPECT_EQ(f.next(t0 + 1ms, busy(10 * 1024)), 4);
}

TEST(quic_scheduler, a_held_back_stream_yields_its_turn_to_the_next) {
  fixture f;
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0); // light write: holds heavy ones back
  f.give(4, heavy);
  f.give(8, heavy);
  f.give(0, light);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{4, 8, 0}));
  EXPECT_EQ(f.next(t0 + 1ms, busy(100 * 1024)), 0);
  EXPECT_EQ(f.queue(), (std::vector<int64_t>{0, 4, 8}));
}

TEST(quic_scheduler, the_latest_light_write_of_another_stream_is_kept) {
  fixture f;
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  // Stream 4 writes light itself, then turns heavy: stream 0's write still
  // holds it back, though stream 4 wrote last.
  f.give(4, light);
  ASSERT_EQ(f.write_one(t0 + 1ms), 4);
  f.give(4, heavy);
  EXPECT_TRUE(f.sched.others_light(4, t0 + 2ms));
  EXPECT_TRUE(f.sched.heavy_held_back(4, t0 + 2ms));
  EXPECT_EQ(f.next(t0 + 2ms, busy(100 * 1024)), std::nullopt);
}

TEST(quic_scheduler, nothing_in_flight_always_lets_a_heavy_stream_send) {
  scheduler_config cfg;
  cfg.bulk_in_flight = 1; // no packet ever fits
  cfg.latency_reserve = 1024 * 1024;
  fixture f{cfg};
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  f.give(4, heavy);
  ASSERT_TRUE(f.sched.heavy_held_back(4, t0));
  EXPECT_TRUE(f.sched.window_lets_heavy(busy(0, 0), max_len));
  EXPECT_EQ(f.next(t0, busy(0, 0)), 4);
  EXPECT_FALSE(f.sched.window_lets_heavy(busy(1, 0), max_len));
}

TEST(quic_scheduler, with_both_rules_off_nothing_is_held_back) {
  scheduler_config cfg;
  cfg.bulk_in_flight = 0;
  cfg.latency_reserve = 0;
  fixture f{cfg};
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  f.give(4, heavy);
  EXPECT_TRUE(f.sched.others_light(4, t0));
  EXPECT_FALSE(f.sched.heavy_held_back(4, t0));
  EXPECT_EQ(f.next(t0, busy(10 * 1024 * 1024, 10 * 1024 * 1024)), 4);
}

TEST(quic_scheduler, the_latency_reserve_leaves_a_packet_and_the_reserve) {
  scheduler_config cfg;
  cfg.bulk_in_flight = 0; // only the reserve rule
  cfg.latency_reserve = 4096;
  scheduler s{cfg};
  uint64_t cwnd = 100'000;
  uint64_t edge = cwnd - max_len - 4096;
  EXPECT_TRUE(s.window_lets_heavy(busy(edge, cwnd), max_len));
  EXPECT_FALSE(s.window_lets_heavy(busy(edge + 1, cwnd), max_len));
  // More in flight than the window (it shrank after a loss).
  EXPECT_FALSE(s.window_lets_heavy(busy(cwnd + 1, cwnd), max_len));
  cfg.latency_reserve = 0;
  scheduler off{cfg};
  EXPECT_TRUE(off.window_lets_heavy(busy(cwnd + 1, cwnd), max_len));
}

TEST(quic_scheduler, the_bulk_limit_counts_the_packet) {
  scheduler_config cfg;
  cfg.latency_reserve = 0; // only the bulk rule
  cfg.bulk_in_flight = 64 * 1024;
  scheduler s{cfg};
  uint64_t edge = 64 * 1024 - max_len;
  EXPECT_TRUE(s.bulk_room(busy(edge), max_len));
  EXPECT_TRUE(s.window_lets_heavy(busy(edge), max_len));
  EXPECT_FALSE(s.bulk_room(busy(edge + 1), max_len));
  EXPECT_FALSE(s.window_lets_heavy(busy(edge + 1), max_len));
}

TEST(quic_scheduler, the_bulk_limit_widens_to_twice_the_bdp) {
  scheduler s;
  auto bulk = s.config().bulk_in_flight;
  // 100 MB/s × 10 ms = 1 MB: the limit is 2 MB.
  path_state long_path{10'000'000, 0, 10ms, 100'000'000};
  EXPECT_EQ(s.bulk_limit(long_path), 2'000'000u);
  long_path.bytes_in_flight = 2'000'000 - max_len;
  EXPECT_TRUE(s.bulk_room(long_path, max_len));
  long_path.bytes_in_flight += 1;
  EXPECT_FALSE(s.bulk_room(long_path, max_len));
  // A short path: twice the BDP is less than bulk_in_flight, which holds.
  EXPECT_EQ(s.bulk_limit(path_state{0, 0, 100us, 100'000'000}), bulk);
  // Unknown RTT or rate: bulk_in_flight.
  EXPECT_EQ(s.bulk_limit(path_state{0, 0, 0ns, 100'000'000}), bulk);
  EXPECT_EQ(s.bulk_limit(path_state{0, 0, 10ms, 0}), bulk);
  // A product beyond 64 bits before the division does not overflow (it is
  // computed in double: exact to about 1e-15).
  path_state huge{0, 0, 1000s, 100'000'000'000};
  EXPECT_NEAR(static_cast<double>(s.bulk_limit(huge)), 2e14, 1e2);
}

TEST(quic_scheduler, the_light_window_follows_the_gap_between_writes) {
  fixture f;
  auto cfg = f.sched.config();
  // First write: the minimum.
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  EXPECT_EQ(f.sched.light_window(0), cfg.light_window_min);
  // 1 ms later: 8 ms, clamped up to 20 ms.
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 1ms), 0);
  EXPECT_EQ(f.sched.light_window(0), 20ms);
  // 10 ms later: 80 ms.
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 11ms), 0);
  EXPECT_EQ(f.sched.light_window(0), 80ms);
  // 200 ms later: 1.6 s, clamped down to 1 s.
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 211ms), 0);
  EXPECT_EQ(f.sched.light_window(0), cfg.light_window_max);
}

TEST(quic_scheduler, more_packets_of_the_same_message_keep_the_window) {
  fixture f;
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 10ms), 0); // gap 10 ms: 80 ms
  ASSERT_EQ(f.sched.light_window(0), 80ms);
  // A message of several packets: its later packets add no bytes, so they
  // neither count as a gap nor start one.
  f.give(0, 3 * max_len);
  ASSERT_EQ(f.write_one(t0 + 50ms), 0); // gap 40 ms: 320 ms
  ASSERT_EQ(f.write_one(t0 + 51ms), 0);
  ASSERT_EQ(f.write_one(t0 + 52ms), 0);
  EXPECT_EQ(f.sched.light_window(0), 320ms);
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 60ms), 0); // gap from 50 ms: 80 ms
  EXPECT_EQ(f.sched.light_window(0), 80ms);
}

TEST(quic_scheduler, a_light_write_holds_heavy_ones_back_for_its_window) {
  fixture f;
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 5ms), 0); // window 40 ms from t0 + 5 ms
  EXPECT_TRUE(f.sched.heavy_held_back(4, t0 + 45ms));
  EXPECT_FALSE(f.sched.heavy_held_back(4, t0 + 45ms + 1ns));
  // A one-off write holds only the minimum.
  fixture g;
  g.give(8, light);
  ASSERT_EQ(g.write_one(t0), 8);
  EXPECT_TRUE(g.sched.heavy_held_back(4, t0 + 20ms));
  EXPECT_FALSE(g.sched.heavy_held_back(4, t0 + 21ms));
}

TEST(quic_scheduler, the_window_clamp_follows_the_config) {
  scheduler_config cfg;
  cfg.light_window_min = 1ms;
  cfg.light_window_max = 5ms;
  cfg.light_window_gaps = 2;
  fixture f{cfg};
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  EXPECT_EQ(f.sched.light_window(0), 1ms);
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 2ms), 0);
  EXPECT_EQ(f.sched.light_window(0), 4ms);
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 12ms), 0);
  EXPECT_EQ(f.sched.light_window(0), 5ms);
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0 + 12ms + 100us), 0);
  EXPECT_EQ(f.sched.light_window(0), 1ms);
}

TEST(quic_scheduler, heavy_means_more_than_the_heavy_backlog_unsent) {
  fixture f;
  f.give(0, light);
  ASSERT_EQ(f.write_one(t0), 0);
  auto limit = f.sched.config().heavy_backlog;
  f.give(4, limit); // exactly the limit: still light
  EXPECT_EQ(f.next(t0, busy(1024 * 1024)), 4);
  f.give(4, 1); // one more byte: heavy, held back
  EXPECT_EQ(f.next(t0, busy(1024 * 1024)), std::nullopt);
}

TEST(quic_scheduler, the_defaults_are_the_transport_defaults) {
  transport_config tc;
  scheduler_config sc;
  EXPECT_EQ(sc.latency_reserve, tc.latency_reserve);
  EXPECT_EQ(sc.bulk_in_flight, tc.bulk_in_flight);
}

TEST(quic_scheduler, the_path_is_asked_only_for_a_held_back_stream) {
  fixture f;
  f.give(4, heavy);
  f.give(8, heavy);
  int asked = 0;
  auto path_of = [&asked] {
    ++asked;
    return busy(1024 * 1024);
  };
  auto backlog_of = [&f](int64_t sid) {
    return f.streams[sid];
  };
  // Nobody wrote light: nothing is held back, the path is not needed.
  EXPECT_EQ(f.sched.next(t0, max_len, backlog_of, path_of), 4);
  EXPECT_EQ(asked, 0);
  f.give(0, light);
  f.sched.rotate(4, stream_turn::again); // queue: 8, 0, 4
  f.sched.rotate(8, stream_turn::again); // queue: 0, 4, 8
  ASSERT_EQ(f.write_one(t0), 0);         // light write
  // Both heavy streams are held back: one question for the packet.
  EXPECT_EQ(f.sched.next(t0, max_len, backlog_of, path_of), std::nullopt);
  EXPECT_EQ(asked, 1);
}
