// SPDX-License-Identifier: Apache-2.0
// The dial policy core: who dials a pair, the dial_wait fallback, backoff
// with jitter, duplicates, unreachable, stopped and gone members, leaving.
// Virtual time; jitter comes from an injected function so deadlines are
// exact.
#include "mycorrizal/peering/dialer.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/peering/from_gossip.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::peering;
using namespace std::chrono_literals;

namespace {

const time_point t0 = time_point{} + 1000s;

ip_endpoint host(uint8_t n, uint16_t port = 7946) {
  return ip_endpoint::v4(127, 0, 0, n, port);
}

member_update alive(const std::string& name, uint8_t n, uint16_t quic = 9000,
                    uint32_t incarnation = 1) {
  return member_update{member_change::alive, name, host(n), quic, incarnation};
}

member_update gone(member_change change, const std::string& name, uint8_t n,
                   uint32_t incarnation = 1) {
  return member_update{change, name, host(n), 9000, incarnation};
}

/// A dialer named `name` with backoff 100 ms..1 s, dial_wait 1 s, and a
/// jitter draw that the test sets (`u`, default 0.5: redial factor 1.0,
/// wait factor 1.25).
struct fixture {
  explicit fixture(std::string name, duration backoff_max = 1s) {
    dialer_config cfg;
    cfg.name = std::move(name);
    cfg.backoff_min = 100ms;
    cfg.backoff_max = backoff_max;
    cfg.dial_wait = 1s;
    cfg.random = [u = u] {
      return *u;
    };
    cfg.log = [l = lines](log_level, std::string_view text) {
      l->emplace_back(text);
    };
    EXPECT_TRUE(cfg.validate());
    core = std::make_unique<dialer>(std::move(cfg));
  }

  /// Takes the commands out of the core.
  std::vector<command> take() {
    auto out = std::move(core->commands());
    core->commands().clear();
    return out;
  }

  const peer& get(const std::string& name) {
    auto* p = core->find(name);
    EXPECT_NE(p, nullptr) << name;
    static const peer none;
    return p != nullptr ? *p : none;
  }

  std::shared_ptr<double> u = std::make_shared<double>(0.5);
  std::shared_ptr<std::vector<std::string>> lines
    = std::make_shared<std::vector<std::string>>();
  std::unique_ptr<dialer> core;
};

template <class T>
const T& as(const command& c) {
  static const T none{};
  auto* x = std::get_if<T>(&c);
  EXPECT_NE(x, nullptr) << "command #" << c.index();
  return x != nullptr ? *x : none;
}

/// Exactly one command, a dial of `peer` at `address`.
void expect_dial(const std::vector<command>& cs, const std::string& peer,
                 const ip_endpoint& address) {
  ASSERT_EQ(cs.size(), 1u);
  auto& d = as<dial>(cs[0]);
  EXPECT_EQ(d.peer, peer);
  EXPECT_EQ(d.address, address);
}

connection_up up(connection_id id, const std::string& peer, bool incoming,
                 uint8_t n = 2) {
  return connection_up{id, peer, host(n, incoming ? 40000 : 9000), incoming};
}

} // namespace

// -- who dials ----------------------------------------------------------------

TEST(peering_dialer, the_smaller_name_of_a_pair_dials) {
  EXPECT_TRUE(dials_first("a", "b"));
  EXPECT_FALSE(dials_first("b", "a"));
  EXPECT_FALSE(dials_first("a", "a"));
  EXPECT_TRUE(dials_first("node-10", "node-9")); // byte order, not numeric
}

TEST(peering_dialer, the_smaller_name_dials_an_alive_member_at_once) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2, 9002), t0);
  expect_dial(f.take(), "b", host(2, 9002));
  EXPECT_TRUE(f.get("b").alive);
  EXPECT_TRUE(f.get("b").dialing);
  EXPECT_EQ(f.core->stats().dials, 1u);
  EXPECT_EQ(f.core->next_deadline(), never);
  // More gossip about it while the dial is in flight: no second dial.
  f.core->on_member(alive("b", 2, 9002), t0 + 10ms);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->stats().dials, 1u);
}

TEST(peering_dialer, members_without_a_quic_port_and_ourselves_are_not_dialed) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2, 0), t0);
  f.core->on_member(alive("a", 1, 9000), t0);
  EXPECT_TRUE(f.take().empty());
  EXPECT_TRUE(f.core->peers().empty());
  EXPECT_EQ(f.core->next_deadline(), never);
}

// -- the dial_wait fallback ---------------------------------------------------

TEST(peering_dialer, the_larger_name_waits_dial_wait_then_dials_itself) {
  fixture f{"b"};
  *f.u = 0.5; // wait = 1 s * (1 + 0.5 * 0.5) = 1.25 s
  f.core->on_member(alive("a", 1, 9001), t0);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->next_deadline(), t0 + 1250ms);
  EXPECT_FALSE(f.get("a").fallback);
  // Gossip again while waiting: the wait is not restarted.
  f.core->on_member(alive("a", 1, 9001), t0 + 500ms);
  EXPECT_EQ(f.core->next_deadline(), t0 + 1250ms);
  f.core->on_timeout(t0 + 1249ms);
  EXPECT_TRUE(f.take().empty());
  f.core->on_timeout(t0 + 1250ms);
  expect_dial(f.take(), "a", host(1, 9001));
  EXPECT_TRUE(f.get("a").fallback);
  EXPECT_EQ(f.core->next_deadline(), never);
  ASSERT_EQ(f.lines->size(), 1u);
  EXPECT_EQ(f.lines->at(0), "a did not dial us within 1000 ms: dialing it");
}

TEST(peering_dialer, the_wait_lasts_between_one_and_one_and_a_half_dial_wait) {
  for (double u : {0.0, 0.25, 0.999}) {
    fixture f{"b"};
    *f.u = u;
    f.core->on_member(alive("a", 1), t0);
    auto wait = f.core->next_deadline() - t0;
    EXPECT_NEAR(static_cast<double>(wait.count()), (1.0 + u * 0.5) * 1e9, 1e3)
      << "u = " << u;
  }
}

TEST(peering_dialer, a_connection_from_the_smaller_name_ends_the_wait) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1), t0);
  ASSERT_NE(f.core->next_deadline(), never);
  f.core->on_connection_up(up(7, "a", true, 1), t0 + 200ms);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  auto& u = as<publish_up>(cs[0]);
  EXPECT_EQ(u.name, "a");
  EXPECT_EQ(u.id, 7u);
  EXPECT_TRUE(u.incoming);
  EXPECT_EQ(u.gossip, host(1));
  EXPECT_EQ(u.quic, host(1, 9000));
  EXPECT_EQ(f.core->next_deadline(), never);
  f.core->on_timeout(t0 + 5s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->stats().dials, 0u);
}

TEST(peering_dialer, the_wait_expiring_for_a_dead_member_dials_nothing) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1), t0);
  f.core->on_member(gone(member_change::dead, "a", 1), t0 + 100ms);
  f.take();
  EXPECT_EQ(f.core->next_deadline(), never);
  f.core->on_timeout(t0 + 5s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->stats().dials, 0u);
}

// -- backoff ------------------------------------------------------------------

TEST(peering_dialer, failed_dials_back_off_exponentially_up_to_the_cap) {
  // backoff 100 ms .. 1 s; u = 0: factor 0.75, the low end of the jitter.
  fixture f{"a"};
  *f.u = 0.0;
  f.core->on_member(alive("b", 2), t0);
  expect_dial(f.take(), "b", host(2, 9000));
  auto now = t0;
  // failures: 1 -> 200 ms, 2 -> 400, 3 -> 800, 4.. -> 1000 (cap); x 0.75.
  std::vector<duration> expected{150ms, 300ms, 600ms, 750ms, 750ms, 750ms};
  for (size_t n = 0; n < expected.size(); ++n) {
    now += 20ms;
    f.core->on_dial_failed("b", now);
    EXPECT_TRUE(f.take().empty());
    EXPECT_EQ(f.get("b").failures, static_cast<int>(n + 1));
    ASSERT_EQ(f.core->next_deadline(), now + expected[n]) << "failure " << n;
    f.core->on_timeout(now + expected[n] - 1ns);
    EXPECT_TRUE(f.take().empty());
    now += expected[n];
    f.core->on_timeout(now);
    expect_dial(f.take(), "b", host(2, 9000));
  }
  EXPECT_EQ(f.core->stats().dial_failures, expected.size());
  EXPECT_EQ(f.core->stats().dials, expected.size() + 1);
}

TEST(peering_dialer, the_upper_end_of_the_jitter_is_a_quarter_above_the_base) {
  fixture f{"a"};
  *f.u = 0.999;
  f.core->on_member(alive("b", 2), t0);
  f.take();
  f.core->on_dial_failed("b", t0);
  // 200 ms * (0.75 + 0.999 * 0.5) = 249.9 ms
  auto wait = f.core->next_deadline() - t0;
  EXPECT_NEAR(static_cast<double>(wait.count()), 249.9e6, 1e3);
  EXPECT_LT(wait, 250ms);
}

TEST(peering_dialer, the_backoff_exponent_stops_at_20_failures) {
  // A cap far above 100 ms * 2^20 shows the exponent's own limit.
  fixture f{"a", 1000000s};
  *f.u = 0.5;
  f.core->on_member(alive("b", 2), t0);
  f.take();
  auto now = t0;
  for (int n = 1; n <= 23; ++n) {
    f.core->on_dial_failed("b", now);
    auto wait = f.core->next_deadline() - now;
    auto base = 100ms * (int64_t{1} << std::min(n, 20));
    EXPECT_EQ(wait, base) << "failure " << n;
    now += wait;
    f.core->on_timeout(now);
    f.take();
  }
}

TEST(peering_dialer, the_seeded_jitter_stays_within_a_quarter_of_the_base) {
  // The default generator: every draw within [0.75, 1.25) x base, spread.
  dialer_config cfg;
  cfg.name = "a";
  cfg.backoff_min = 100ms;
  cfg.backoff_max = 100ms;
  cfg.seed = 42;
  dialer d{cfg};
  d.on_member(alive("b", 2), t0);
  std::set<duration> seen;
  auto now = t0;
  for (int n = 0; n < 200; ++n) {
    d.on_dial_failed("b", now);
    auto wait = d.next_deadline() - now;
    EXPECT_GE(wait, 75ms);
    EXPECT_LT(wait, 125ms);
    seen.insert(wait);
    now += wait;
    d.on_timeout(now);
  }
  EXPECT_GT(seen.size(), 150u);
  // The same seed draws the same delays; another seed others.
  auto first = [&](uint64_t seed) {
    auto c = cfg;
    c.seed = seed;
    dialer x{c};
    x.on_member(alive("b", 2), t0);
    x.on_dial_failed("b", t0);
    return x.next_deadline();
  };
  EXPECT_EQ(first(42), first(42));
  EXPECT_NE(first(42), first(43));
}

TEST(peering_dialer, a_connection_up_resets_the_backoff) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.take();
  f.core->on_dial_failed("b", t0);
  f.core->on_timeout(t0 + 200ms);
  f.core->on_dial_failed("b", t0 + 300ms); // 2 failures: 400 ms next
  EXPECT_EQ(f.core->next_deadline(), t0 + 700ms);
  f.take();
  f.core->on_timeout(t0 + 700ms);
  f.core->on_dial_succeeded("b", t0 + 710ms);
  f.core->on_connection_up(up(1, "b", false), t0 + 710ms);
  EXPECT_EQ(f.get("b").failures, 0);
  EXPECT_FALSE(f.get("b").dialing);
  EXPECT_EQ(f.core->next_deadline(), never);
  f.take();
  // Lost: the first redial is back at backoff_min.
  f.core->on_connection_down(1, error{errc::connection_lost, "idle"}, false,
                             t0 + 2s);
  f.take();
  f.core->on_dial_failed("b", t0 + 2s);
  EXPECT_EQ(f.core->next_deadline(), t0 + 2s + 200ms);
}

// -- redial after failure -----------------------------------------------------

TEST(peering_dialer, a_lost_connection_is_redialed_by_the_smaller_name) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.take();
  f.core->on_dial_succeeded("b", t0 + 5ms);
  f.core->on_connection_up(up(1, "b", false), t0 + 5ms);
  f.take();
  f.core->on_connection_down(1, error{errc::connection_lost, "idle timeout"},
                             false, t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 2u);
  auto& down = as<publish_down>(cs[0]);
  EXPECT_EQ(down.peer, "b");
  EXPECT_EQ(down.reason.code(), errc::connection_lost);
  EXPECT_EQ(down.reason.context(),
            "connection lost: "
              + to_string(error{errc::connection_lost, "idle timeout"}));
  auto& d = as<dial>(cs[1]);
  EXPECT_EQ(d.peer, "b");
  EXPECT_EQ(d.address, host(2, 9000));
  // A backup redial is armed at backoff_min; it dials nothing while that
  // dial is in flight.
  EXPECT_EQ(f.core->next_deadline(), t0 + 1s + 100ms);
  f.core->on_timeout(t0 + 1s + 100ms);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->next_deadline(), never);
  EXPECT_EQ(f.core->stats().dials, 2u);
  EXPECT_EQ(f.core->stats().downs, 1u);
  EXPECT_EQ(f.core->stats().ups, 1u);
}

TEST(peering_dialer, after_a_lost_connection_the_larger_name_waits_again) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1), t0);
  f.core->on_connection_up(up(3, "a", true, 1), t0 + 10ms);
  f.take();
  f.core->on_connection_down(3, error{errc::connection_lost}, false, t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(as<publish_down>(cs[0]).reason.code(), errc::connection_lost);
  EXPECT_EQ(f.core->next_deadline(), t0 + 1s + 1250ms);
  f.core->on_timeout(t0 + 1s + 1250ms);
  expect_dial(f.take(), "a", host(1, 9000));
}

TEST(peering_dialer, a_fallback_dialer_redials_with_backoff_too) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1), t0);
  f.core->on_timeout(t0 + 1250ms);
  f.take();
  f.core->on_dial_failed("a", t0 + 1300ms);
  EXPECT_EQ(f.core->next_deadline(), t0 + 1300ms + 200ms);
  f.core->on_timeout(t0 + 1500ms);
  expect_dial(f.take(), "a", host(1, 9000));
}

TEST(peering_dialer, a_dial_failing_after_the_member_died_is_not_retried) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_member(gone(member_change::dead, "b", 2), t0 + 1ms);
  f.take();
  f.core->on_dial_failed("b", t0 + 5s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->next_deadline(), never);
  EXPECT_EQ(f.core->stats().dial_failures, 1u);
}

// -- duplicates ---------------------------------------------------------------

TEST(peering_dialer, both_sides_keep_the_connection_the_smaller_name_dialed) {
  // Connection X was dialed by "a", Y by "b" (its fallback). Each side sees
  // them come up in either order; both must keep X.
  const connection_id x_at_a = 11;
  const connection_id y_at_a = 12;
  const connection_id x_at_b = 21;
  const connection_id y_at_b = 22;
  for (bool x_first : {true, false}) {
    SCOPED_TRACE(x_first ? "X first" : "Y first");
    fixture a{"a"};
    a.core->on_member(alive("b", 2), t0);
    a.take();
    auto ax = up(x_at_a, "b", false, 2); // a dialed X
    auto ay = up(y_at_a, "b", true, 2);  // b dialed Y
    a.core->on_connection_up(x_first ? ax : ay, t0 + 1ms);
    a.take();
    a.core->on_connection_up(x_first ? ay : ax, t0 + 2ms);
    auto ca = a.take();
    EXPECT_EQ(a.get("b").connection, x_at_a);
    EXPECT_FALSE(a.get("b").incoming);
    ASSERT_GE(ca.size(), 1u);
    auto& close_a = as<close_connection>(ca[0]);
    EXPECT_EQ(close_a.id, y_at_a);
    EXPECT_EQ(close_a.reason, close_reason::duplicate);
    // A new kept connection is announced; a refused one is not.
    ASSERT_EQ(ca.size(), x_first ? 1u : 2u);
    if (!x_first) {
      EXPECT_EQ(as<publish_up>(ca[1]).id, x_at_a);
    }
    EXPECT_EQ(a.core->stats().duplicates_closed, 1u);

    fixture b{"b"};
    b.core->on_member(alive("a", 1), t0);
    b.take();
    auto bx = up(x_at_b, "a", true, 1);  // a dialed X
    auto by = up(y_at_b, "a", false, 1); // b dialed Y
    b.core->on_connection_up(x_first ? bx : by, t0 + 1ms);
    b.take();
    b.core->on_connection_up(x_first ? by : bx, t0 + 2ms);
    auto cb = b.take();
    EXPECT_EQ(b.get("a").connection, x_at_b);
    EXPECT_TRUE(b.get("a").incoming);
    ASSERT_GE(cb.size(), 1u);
    EXPECT_EQ(as<close_connection>(cb[0]).id, y_at_b);
    ASSERT_EQ(cb.size(), x_first ? 1u : 2u);
    EXPECT_EQ(b.core->stats().duplicates_closed, 1u);
  }
}

TEST(peering_dialer, the_down_of_a_closed_duplicate_changes_nothing) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_connection_up(up(1, "b", false), t0 + 1ms);
  f.core->on_connection_up(up(2, "b", true), t0 + 2ms);
  f.take();
  EXPECT_EQ(f.core->holder(2), nullptr);
  ASSERT_NE(f.core->holder(1), nullptr);
  EXPECT_EQ(*f.core->holder(1), "b");
  f.core->on_connection_down(2, error{errc::shutting_down}, false, t0 + 3ms);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.get("b").connection, 1u);
  EXPECT_EQ(f.core->stats().downs, 0u);
}

TEST(peering_dialer, a_connection_to_ourselves_is_closed_and_counted) {
  fixture f{"a"};
  f.core->on_connection_up(up(5, "a", true, 1), t0);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  auto& c = as<close_connection>(cs[0]);
  EXPECT_EQ(c.id, 5u);
  EXPECT_EQ(c.reason, close_reason::self);
  EXPECT_EQ(to_string(c.reason), "connection to self");
  EXPECT_EQ(f.core->stats().refused, 1u);
  EXPECT_EQ(f.core->stats().ups, 0u);
  EXPECT_TRUE(f.core->peers().empty());
}

TEST(peering_dialer, a_connection_from_an_unknown_member_takes_its_address) {
  fixture f{"b"};
  f.core->on_connection_up(connection_up{4, "a", host(1, 41000), true}, t0);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(as<publish_up>(cs[0]).quic, host(1, 41000));
  EXPECT_FALSE(f.get("a").alive);
  // Gossip then tells the same QUIC endpoint (a QUIC connection comes from
  // the peer's endpoint): the connection stays.
  f.core->on_member(alive("a", 1, 41000), t0 + 1ms);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.get("a").connection, 4u);
  EXPECT_EQ(f.get("a").quic, host(1, 41000));
}

// -- restarts -----------------------------------------------------------------

TEST(peering_dialer, a_member_back_at_another_address_replaces_its_connection) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2, 9002), t0);
  f.core->on_dial_succeeded("b", t0 + 1ms);
  f.core->on_connection_up(connection_up{1, "b", host(2, 9002), false},
                           t0 + 1ms);
  f.take();
  // Same endpoint again: nothing.
  f.core->on_member(alive("b", 2, 9002, 2), t0 + 1s);
  EXPECT_TRUE(f.take().empty());
  // Restarted at another QUIC port.
  f.core->on_member(alive("b", 2, 9102, 3), t0 + 2s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 3u);
  auto& c = as<close_connection>(cs[0]);
  EXPECT_EQ(c.id, 1u);
  EXPECT_EQ(c.reason, close_reason::stale);
  auto& d = as<publish_down>(cs[1]);
  EXPECT_EQ(d.reason.code(), errc::connection_lost);
  EXPECT_EQ(d.reason.context(), "replaced after a restart");
  auto& dl = as<dial>(cs[2]);
  EXPECT_EQ(dl.address, host(2, 9102));
  EXPECT_EQ(f.core->stats().downs, 1u);
}

// -- unreachable --------------------------------------------------------------

TEST(peering_dialer,
     an_alive_member_whose_connection_stops_answering_is_unreachable) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1), t0);
  f.core->on_connection_up(up(3, "a", true, 1), t0 + 1ms);
  f.take();
  error why{errc::connection_lost, "peer unreachable: nothing received"};
  f.core->on_connection_down(3, why, true, t0 + 5s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 2u);
  auto& u = as<publish_unreachable>(cs[0]);
  EXPECT_EQ(u.peer, "a");
  EXPECT_EQ(u.reason, why);
  EXPECT_EQ(as<publish_down>(cs[1]).reason.code(), errc::connection_lost);
  EXPECT_TRUE(f.get("a").unreachable);
  EXPECT_TRUE(f.get("a").alive);
  EXPECT_EQ(f.core->stats().unreachable, 1u);
  ASSERT_EQ(f.lines->size(), 1u);
  EXPECT_EQ(f.lines->at(0),
            "a unreachable: peer unreachable: nothing received");
  // A new connection clears it.
  f.core->on_connection_up(up(4, "a", true, 1), t0 + 6s);
  EXPECT_FALSE(f.get("a").unreachable);
  ASSERT_EQ(f.lines->size(), 2u);
  EXPECT_EQ(f.lines->at(1), "a reachable again");
}

TEST(peering_dialer, death_clears_unreachable) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_connection_up(up(1, "b", false), t0 + 1ms);
  f.core->on_connection_down(1, error{errc::connection_lost}, true, t0 + 5s);
  EXPECT_TRUE(f.get("b").unreachable);
  f.core->on_member(gone(member_change::dead, "b", 2), t0 + 6s);
  EXPECT_FALSE(f.get("b").unreachable);
  EXPECT_FALSE(f.get("b").alive);
}

TEST(peering_dialer, an_unreachable_connection_of_a_non_member_is_just_down) {
  fixture f{"b"};
  f.core->on_connection_up(up(9, "a", true, 1), t0);
  f.take();
  f.core->on_connection_down(9, error{errc::connection_lost}, true, t0 + 5s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(as<publish_down>(cs[0]).peer, "a");
  EXPECT_FALSE(f.get("a").unreachable);
  EXPECT_EQ(f.core->stats().unreachable, 0u);
  EXPECT_EQ(f.core->next_deadline(), never);
}

// -- members gone -------------------------------------------------------------

TEST(peering_dialer, a_dead_member_is_closed_and_reported_once) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_connection_up(up(1, "b", false), t0 + 1ms);
  f.take();
  f.core->on_member(gone(member_change::dead, "b", 2), t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 2u);
  auto& c = as<close_connection>(cs[0]);
  EXPECT_EQ(c.id, 1u);
  EXPECT_EQ(c.reason, close_reason::member_dead);
  auto& d = as<publish_down>(cs[1]);
  EXPECT_EQ(d.reason.code(), errc::node_down);
  EXPECT_EQ(d.reason.context(), "b is dead");
  EXPECT_EQ(f.get("b").connection, no_connection);
  // Told again: nothing more.
  f.core->on_member(gone(member_change::dead, "b", 2), t0 + 2s);
  EXPECT_TRUE(f.take().empty());
  // Its connection's down arrives after the close: nothing either.
  f.core->on_connection_down(1, error{errc::shutting_down}, false, t0 + 2s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->stats().downs, 1u);
}

TEST(peering_dialer, a_member_that_leaves_without_a_connection_is_reported) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1), t0); // waiting for a's dial
  f.take();
  f.core->on_member(gone(member_change::left, "a", 1), t0 + 100ms);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  auto& d = as<publish_down>(cs[0]);
  EXPECT_EQ(d.reason.code(), errc::node_down);
  EXPECT_EQ(d.reason.context(), "a left");
  EXPECT_EQ(f.core->next_deadline(), never);
  // A member never seen alive that is reported dead: nothing to say.
  f.core->on_member(gone(member_change::dead, "c", 3), t0 + 200ms);
  EXPECT_TRUE(f.take().empty());
}

TEST(peering_dialer, a_left_member_connection_is_closed_as_left) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_connection_up(up(1, "b", false), t0 + 1ms);
  f.take();
  f.core->on_member(gone(member_change::left, "b", 2), t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(as<close_connection>(cs[0]).reason, close_reason::member_left);
  EXPECT_EQ(to_string(close_reason::member_left), "member left");
}

TEST(peering_dialer, death_cancels_a_scheduled_redial) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_dial_failed("b", t0 + 1ms);
  ASSERT_NE(f.core->next_deadline(), never);
  f.core->on_member(gone(member_change::dead, "b", 2), t0 + 2ms);
  EXPECT_EQ(f.core->next_deadline(), never);
  f.take();
  f.core->on_timeout(t0 + 10s);
  EXPECT_TRUE(f.take().empty());
}

// -- stopped peers ------------------------------------------------------------

TEST(peering_dialer, a_stopped_peer_is_revived_only_by_a_higher_incarnation) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2, 9000, 4), t0);
  f.core->on_dial_succeeded("b", t0 + 1ms);
  f.core->on_connection_up(up(1, "b", false), t0 + 1ms);
  f.take();
  f.core->on_connection_down(1, error{errc::node_down, "stopping"}, false,
                             t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  auto& d = as<publish_down>(cs[0]);
  EXPECT_EQ(d.reason.code(), errc::node_down);
  EXPECT_EQ(d.reason.context(), "b left: stopping");
  EXPECT_FALSE(f.get("b").alive);
  EXPECT_EQ(f.get("b").stopped_at, std::optional<uint32_t>{4});
  EXPECT_EQ(f.core->next_deadline(), never);
  // Late gossip of the same incarnation (alive, suspect): still stopped.
  f.core->on_member(alive("b", 2, 9000, 4), t0 + 2s);
  f.core->on_member(alive("b", 2, 9000, 3), t0 + 2s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_FALSE(f.get("b").alive);
  f.core->on_timeout(t0 + 60s);
  EXPECT_TRUE(f.take().empty());
  // Its restart refutes its death with a higher incarnation.
  f.core->on_member(alive("b", 2, 9000, 5), t0 + 70s);
  expect_dial(f.take(), "b", host(2, 9000));
  EXPECT_TRUE(f.get("b").alive);
  EXPECT_FALSE(f.get("b").stopped_at);
}

TEST(peering_dialer,
     a_stopped_peer_that_the_larger_name_waited_for_is_not_waited_for) {
  fixture f{"b"};
  f.core->on_member(alive("a", 1, 9000, 2), t0);
  f.core->on_connection_up(up(3, "a", true, 1), t0 + 1ms);
  f.take();
  f.core->on_connection_down(3, error{errc::node_down}, true, t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u); // node_down wins over unreachable
  EXPECT_EQ(as<publish_down>(cs[0]).reason.code(), errc::node_down);
  EXPECT_EQ(f.core->stats().unreachable, 0u);
  EXPECT_EQ(f.core->next_deadline(), never);
}

// -- leaving ------------------------------------------------------------------

TEST(peering_dialer, after_our_leave_nothing_is_dialed) {
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.core->on_member(alive("z", 9), t0);
  f.core->on_connection_up(up(1, "b", false), t0 + 1ms);
  f.take();
  f.core->on_dial_failed("z", t0 + 2ms); // a redial of z is armed
  f.core->on_member(gone(member_change::left, "a", 1), t0 + 1s);
  EXPECT_TRUE(f.core->leaving());
  EXPECT_TRUE(f.take().empty());
  // b closes on our leave: reported, not redialed.
  f.core->on_connection_down(1, error{errc::connection_lost}, false,
                             t0 + 1100ms);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(as<publish_down>(cs[0]).peer, "b");
  // Timers that still run dial nothing; new members neither.
  f.core->on_timeout(t0 + 60s);
  f.core->on_member(alive("c", 3), t0 + 61s);
  f.core->on_timeout(t0 + 120s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->stats().dials, 2u); // b and z before the leave
}

TEST(peering_dialer, a_peer_closing_on_our_leave_is_not_redialed_before_it) {
  // The peer saw our leave and closed before our own membership told us:
  // no dial at once; the backup redial finds us leaving and dials nothing.
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.take();
  f.core->on_dial_succeeded("b", t0 + 5ms);
  f.core->on_connection_up(up(1, "b", false), t0 + 5ms);
  f.take();
  f.core->on_connection_down(
    1,
    error{errc::connection_lost, "the peer closed the connection (application "
                                 "error 0x0: member left)"},
    false, t0 + 1s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(as<publish_down>(cs[0]).peer, "b");
  f.core->on_member(gone(member_change::left, "a", 1), t0 + 1s + 1ms);
  f.core->on_timeout(t0 + 2s);
  EXPECT_TRUE(f.take().empty());
  EXPECT_EQ(f.core->stats().dials, 1u);
}

TEST(peering_dialer, a_peer_closing_on_stale_news_of_our_leave_is_redialed) {
  // We did not leave (the peer's news was stale): the backup redial
  // reconnects.
  fixture f{"a"};
  f.core->on_member(alive("b", 2), t0);
  f.take();
  f.core->on_dial_succeeded("b", t0 + 5ms);
  f.core->on_connection_up(up(1, "b", false), t0 + 5ms);
  f.take();
  f.core->on_connection_down(1, error{errc::connection_lost, "member left"},
                             false, t0 + 1s);
  f.take();
  ASSERT_NE(f.core->next_deadline(), never);
  f.core->on_timeout(f.core->next_deadline());
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(as<dial>(cs[0]).peer, "b");
}

TEST(peering_dialer, another_member_leaving_does_not_stop_us) {
  fixture f{"a"};
  f.core->on_member(gone(member_change::left, "x", 7), t0);
  EXPECT_FALSE(f.core->leaving());
  f.core->on_member(alive("b", 2), t0);
  expect_dial(f.take(), "b", host(2, 9000));
}

// -- timers -------------------------------------------------------------------

TEST(peering_dialer, due_timers_run_earliest_first) {
  fixture f{"m"};
  // "a" and "b" are smaller: m waits for them; "x" is larger: m dials it.
  *f.u = 0.0; // wait 1 s
  f.core->on_member(alive("b", 2), t0);
  *f.u = 0.5; // wait 1.25 s, but armed earlier
  f.core->on_member(alive("a", 1), t0 - 300ms);
  f.core->on_member(alive("x", 9), t0);
  f.take();
  *f.u = 0.0;
  f.core->on_dial_failed("x", t0 + 100ms); // redial at t0 + 250 ms
  EXPECT_EQ(f.core->next_deadline(), t0 + 250ms);
  f.core->on_timeout(t0 + 5s);
  auto cs = f.take();
  ASSERT_EQ(cs.size(), 3u);
  EXPECT_EQ(as<dial>(cs[0]).peer, "x"); // t0 + 250 ms
  EXPECT_EQ(as<dial>(cs[1]).peer, "a"); // t0 + 950 ms
  EXPECT_EQ(as<dial>(cs[2]).peer, "b"); // t0 + 1 s
  EXPECT_EQ(f.core->next_deadline(), never);
}

// -- config and gossip input --------------------------------------------------

TEST(peering_dialer, the_config_is_validated) {
  dialer_config cfg;
  EXPECT_EQ(cfg.validate().error().context(), "peers.name: required");
  cfg.name = "a";
  EXPECT_TRUE(cfg.validate());
  cfg.backoff_min = duration::zero();
  EXPECT_EQ(cfg.validate().error().code(), errc::invalid_config);
  cfg.backoff_min = 2s;
  cfg.backoff_max = 1s;
  EXPECT_EQ(cfg.validate().error().context(),
            "peers.backoff_min/max: need 0 < min <= max");
  cfg.backoff_max = 2s;
  cfg.dial_wait = -1ms;
  EXPECT_FALSE(cfg.validate());
}

TEST(peering_dialer, gossip_members_map_to_updates) {
  gossip::member m;
  m.name = "b";
  m.address = host(2);
  m.incarnation = 7;
  gossip::node_meta meta;
  meta.quic_port = 9443;
  m.meta = *gossip::encode_node_meta(meta);
  auto u = from_gossip(gossip::member_event_kind::suspect, m);
  EXPECT_EQ(u.change, member_change::alive);
  EXPECT_EQ(u.name, "b");
  EXPECT_EQ(u.address, host(2));
  EXPECT_EQ(u.quic_port, 9443);
  EXPECT_EQ(u.incarnation, 7u);
  EXPECT_EQ(from_gossip(gossip::member_event_kind::dead, m).change,
            member_change::dead);
  EXPECT_EQ(from_gossip(gossip::member_event_kind::left, m).change,
            member_change::left);
  EXPECT_EQ(from_gossip(gossip::member_event_kind::alive_again, m).change,
            member_change::alive);
  // A plain memberlist member, and malformed Mycorrizal meta: no QUIC port.
  m.meta = {std::byte{'x'}};
  EXPECT_EQ(from_gossip(gossip::member_event_kind::joined, m).quic_port, 0);
  m.meta = {std::byte{'m'}, std::byte{'z'}};
  EXPECT_EQ(from_gossip(gossip::member_event_kind::joined, m).quic_port, 0);
}
