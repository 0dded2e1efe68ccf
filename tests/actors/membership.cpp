// SPDX-License-Identifier: Apache-2.0
// The membership actor in virtual time (CAF's test coordinator), with its
// real reactor and sockets, against a memberlist peer that the test plays
// itself: probe rounds, suspicion and death at the times the profile gives,
// member events in order, leaves.
//
// The test coordinator is not thread-safe, and the reactor's thread hands
// inbound datagrams to the actor with `anon_send`. So the reactor is never
// started here: the actor binds its sockets and sends through it (UDP sends
// run on the caller's thread, which is the test's), but nothing is ever
// read from its sockets. Everything the actor receives, the test injects as
// the `net::udp_batch` the reactor would deliver. The fake member "fake"
// is a plain non-blocking UDP socket on 127.0.0.1: the actor's datagrams to
// it are read there, decoded with the gossip codec, and answered (or not)
// by injecting acks. Nothing uses TCP: TCP pings, periodic push/pull and
// reconnects are off, and nobody joins a seed.
#include "mycorrizal/cluster/membership.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/gossip/messages.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/net/events.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include "support/actor_system.hpp"
#include "support/virtual_clock.hpp"

#include <caf/all.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

namespace mycorrizal {
namespace {

using test::actor_system;
using test::clock_mode;
using test::since;
using test::virtual_now;
using test::virtual_time_point;

using membership_actor_handle = membership_actor;

constexpr std::string_view fake_name = "fake";

std::string kind_name(const gossip::packet_message& m) {
  static constexpr std::array<const char*, 8> names{
    "ping", "indirect_ping", "ack", "nack", "suspect", "alive", "dead", "user"};
  return names.at(m.index());
}

/// A datagram the fake member received, decoded.
struct heard {
  virtual_time_point at;
  gossip::packet_message msg;
};

/// A member event as a subscriber got it.
struct seen_event {
  virtual_time_point at;
  gossip::member_event_kind kind;
  std::string name;
  uint32_t incarnation = 0;
};

struct subscription {
  bool answered = false;
  std::vector<gossip::member> initial;
  std::vector<seen_event> events;

  std::vector<gossip::member_event_kind> kinds_of(std::string_view name) const {
    std::vector<gossip::member_event_kind> out;
    for (const auto& e : events) {
      if (e.name == name) {
        out.push_back(e.kind);
      }
    }
    return out;
  }

  /// The time of the `n`-th (from 0) event of `kind` about `name`.
  std::optional<virtual_time_point> time_of(gossip::member_event_kind kind,
                                            std::string_view name,
                                            size_t n = 0) const {
    for (const auto& e : events) {
      if (e.kind == kind && e.name == name && n-- == 0) {
        return e.at;
      }
    }
    return std::nullopt;
  }
};

class membership_virtual_time : public testing::Test {
protected:
  membership_virtual_time() : env_(clock_mode::virtual_time) {
    reactor_ = std::make_shared<net::reactor>();
    // The fake member's socket.
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0)
      << std::strerror(errno);
    socklen_t len = sizeof(sa);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    fake_ = ip_endpoint::v4(127, 0, 0, 1, ntohs(sa.sin_port));

    cfg_ = gossip::membership_config::lan_defaults();
    cfg_.name = "me";
    // No TCP: the reactor's thread would deliver its events.
    cfg_.disable_tcp_pings = true;
    cfg_.push_pull_interval = duration::zero();
    cfg_.reconnect_interval = duration::zero();
    membership_options opts;
    opts.gossip = cfg_;
    opts.bind = ip_endpoint::v4(127, 0, 0, 1, 0);
    opts.reactor = reactor_;
    opts.own_thread = false; // the test coordinator runs it
    auto spawned = spawn_membership(env_.sys(), std::move(opts));
    EXPECT_TRUE(spawned) << to_string(spawned.error());
    if (spawned) {
      actor_ = spawned->actor;
      local_ = spawned->local;
      env_.keep(caf::actor_cast<caf::actor>(actor_));
    }
    env_.run();
    t0_ = virtual_now(env_);
  }

  ~membership_virtual_time() override {
    // Drops the reactor's handles on the actor before the system ends.
    reactor_->stop();
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  membership_virtual_time(const membership_virtual_time&) = delete;
  membership_virtual_time& operator=(const membership_virtual_time&) = delete;

  /// Subscribes a recorder of member events.
  std::shared_ptr<subscription> subscribe() {
    auto sub = std::make_shared<subscription>();
    auto target = actor_;
    auto& env = env_;
    env_.keep(env_.sys().spawn([=, &env](caf::event_based_actor* self) {
      self
        ->request(target, caf::infinite, subscribe_atom::value,
                  caf::actor_cast<caf::actor>(self))
        .then(
          [=](std::vector<gossip::member>& members) {
            sub->initial = std::move(members);
            sub->answered = true;
          },
          [=](caf::error& e) {
            ADD_FAILURE() << "subscribe: " << to_string(from_caf_error(e));
          });
      return caf::behavior{
        [=, &env](gossip::member_event& ev) {
          sub->events.push_back(seen_event{virtual_now(env), ev.kind,
                                           ev.who.name, ev.who.incarnation});
        },
      };
    }));
    env_.run();
    EXPECT_TRUE(sub->answered);
    return sub;
  }

  /// Hands the actor `msg` from the fake member, as the reactor would.
  template <class T>
  void inject(const T& msg) {
    auto bytes = gossip::encode_message(msg);
    ASSERT_TRUE(bytes) << to_string(bytes.error());
    net::udp_batch batch;
    batch.datagrams.push_back(net::udp_datagram{fake_, std::move(*bytes), 0});
    // The reactor's events are not part of membership_actor (they are the
    // actor's private extension): send as the reactor does, untyped.
    caf::anon_send(caf::actor_cast<caf::actor>(actor_), std::move(batch));
    env_.run();
  }

  /// The fake member's alive at `incarnation`.
  gossip::alive fake_alive(uint32_t incarnation,
                           std::optional<gossip::byte_buffer> meta = {}) {
    gossip::alive a;
    a.incarnation = incarnation;
    a.node = std::string{fake_name};
    auto w = fake_.wire_bytes();
    a.addr.assign(w.begin(), w.end());
    a.port = fake_.port();
    a.meta = std::move(meta);
    a.vsn = gossip::default_vsn();
    return a;
  }

  /// Reads everything the actor sent to the fake member, and answers its
  /// pings while `responsive_`.
  void pump() {
    for (;;) {
      std::array<std::byte, 65536> buf{};
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      auto n = ::recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                          reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) {
        ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK)
          << std::strerror(errno);
        break;
      }
      EXPECT_EQ(ntohs(from.sin_port), local_.port()) << "not from the actor";
      gossip::bytes_view bytes{buf.data(), static_cast<size_t>(n)};
      auto packet = gossip::unwrap_packet(bytes);
      ASSERT_TRUE(packet) << to_string(packet.error());
      std::vector<uint32_t> to_ack;
      for (auto& m : packet->messages) {
        auto msg = gossip::decode_packet_message(m);
        ASSERT_TRUE(msg) << to_string(msg.error());
        if (auto* p = std::get_if<gossip::ping>(&*msg);
            p != nullptr && p->node == fake_name && responsive_) {
          to_ack.push_back(p->seq_no);
        }
        heard_.push_back(heard{virtual_now(env_), std::move(*msg)});
      }
      for (auto seq : to_ack) {
        inject(gossip::ack{seq, std::nullopt});
        ++acks_;
      }
    }
  }

  void advance_to(virtual_time_point t) {
    test::advance_to(env_, t, [this] {
      pump();
    });
  }

  /// The pings to the fake member, with their times.
  std::vector<std::pair<virtual_time_point, gossip::ping>> pings() const {
    std::vector<std::pair<virtual_time_point, gossip::ping>> out;
    for (const auto& h : heard_) {
      if (auto* p = std::get_if<gossip::ping>(&h.msg);
          p != nullptr && p->node == fake_name) {
        out.emplace_back(h.at, *p);
      }
    }
    return out;
  }

  template <class T>
  std::vector<T> heard_of() const {
    std::vector<T> out;
    for (const auto& h : heard_) {
      if (auto* x = std::get_if<T>(&h.msg)) {
        out.push_back(*x);
      }
    }
    return out;
  }

  /// What the fake heard and what the subscriber saw, in time order.
  std::string timeline(const subscription* sub = nullptr) const {
    std::string out = "timeline (from the actor's start):";
    size_t e = 0;
    auto flush_events = [&](std::optional<virtual_time_point> until) {
      while (sub != nullptr && e < sub->events.size()
             && (!until || sub->events[e].at <= *until)) {
        const auto& ev = sub->events[e++];
        out += "\n  " + since(t0_, ev.at) + "  event "
               + std::string{gossip::to_string(ev.kind)} + " " + ev.name + " @"
               + std::to_string(ev.incarnation);
      }
    };
    for (const auto& h : heard_) {
      flush_events(h.at);
      out += "\n  " + since(t0_, h.at) + "  fake heard " + kind_name(h.msg);
      if (auto* p = std::get_if<gossip::ping>(&h.msg)) {
        out += " #" + std::to_string(p->seq_no) + " for " + p->node;
      } else if (auto* s = std::get_if<gossip::suspect>(&h.msg)) {
        out += " " + s->node + " from " + s->from;
      } else if (auto* a = std::get_if<gossip::alive>(&h.msg)) {
        out += " " + a->node + " @" + std::to_string(a->incarnation);
      } else if (auto* d = std::get_if<gossip::dead>(&h.msg)) {
        out += " " + d->node + " from " + d->from;
      }
    }
    flush_events(std::nullopt);
    return out;
  }

  /// Asks the actor and returns its answer (fails the test if none).
  template <class T, class... Ts>
  T ask(Ts... xs) {
    auto answer = env_.ask<T>(actor_, xs...);
    EXPECT_TRUE(answer) << "no answer: " << to_string(answer.error());
    return answer ? std::move(*answer) : T{};
  }

  std::optional<gossip::member> member_named(std::string_view name) {
    for (auto& m : ask<std::vector<gossip::member>>(members_atom::value)) {
      if (m.name == name) {
        return m;
      }
    }
    return std::nullopt;
  }

  actor_system env_;
  std::shared_ptr<net::reactor> reactor_;
  gossip::membership_config cfg_;
  membership_actor_handle actor_;
  ip_endpoint local_;
  int fd_ = -1;
  ip_endpoint fake_;
  bool responsive_ = true;
  size_t acks_ = 0;
  std::vector<heard> heard_;
  virtual_time_point t0_;
};

using kind = gossip::member_event_kind;

TEST_F(membership_virtual_time, a_member_that_answers_stays_alive) {
  auto sub = subscribe();
  inject(fake_alive(1));
  ASSERT_EQ(sub->kinds_of(fake_name), std::vector<kind>{kind::joined})
    << timeline(sub.get());
  advance_to(t0_ + 60s);
  auto ps = pings();
  // Probes start on the ticks of the probe interval. With two members a
  // tick now and then finds only ourselves before the node list wraps and
  // probes nobody (memberlist's probe loop does the same), so probes are
  // one or two intervals apart: at least 29 in 60 s.
  ASSERT_GE(ps.size(), 29u) << timeline(sub.get());
  EXPECT_LT(ps.front().first, t0_ + 2 * cfg_.probe_interval)
    << timeline(sub.get());
  for (size_t i = 1; i < ps.size(); ++i) {
    auto gap = ps[i].first - ps[i - 1].first;
    ASSERT_TRUE(gap == cfg_.probe_interval || gap == 2 * cfg_.probe_interval)
      << "probe " << i << " " << since(ps[i - 1].first, ps[i].first)
      << " after the one before\n"
      << timeline(sub.get());
    EXPECT_GT(ps[i].second.seq_no, ps[i - 1].second.seq_no);
  }
  EXPECT_EQ(acks_, ps.size());
  EXPECT_EQ(sub->kinds_of(fake_name), std::vector<kind>{kind::joined})
    << timeline(sub.get());
  EXPECT_TRUE(heard_of<gossip::suspect>().empty()) << timeline(sub.get());
  auto stats = ask<membership_counters>(stats_atom::value);
  EXPECT_EQ(stats.core.probes, ps.size());
  EXPECT_EQ(stats.core.probes_failed, 0u);
  EXPECT_EQ(stats.send_errors, 0u);
  EXPECT_EQ(ask<int>(health_atom::value), 0);
  auto m = member_named(fake_name);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state, gossip::node_state::alive);
  EXPECT_EQ(m->address, fake_);
}

TEST_F(membership_virtual_time, a_silent_member_is_suspect_then_dead_on_time) {
  auto sub = subscribe();
  inject(fake_alive(1));
  advance_to(t0_ + 5s);
  ASSERT_GE(acks_, 2u) << timeline(sub.get());
  auto last_answered = pings().back().first;
  responsive_ = false;
  advance_to(t0_ + 30s);

  // The first unanswered probe comes one or two probe ticks later (see
  // a_member_that_answers_stays_alive).
  auto ps = pings();
  auto first_silent = acks_;
  ASSERT_GT(ps.size(), first_silent) << timeline(sub.get());
  auto probe_at = ps[first_silent].first;
  EXPECT_TRUE(probe_at == last_answered + cfg_.probe_interval
              || probe_at == last_answered + 2 * cfg_.probe_interval)
    << timeline(sub.get());

  // Suspect when the probe's interval is over (health 0: not stretched),
  // not already at the probe timeout; no relay could be asked.
  auto suspect_at = sub->time_of(kind::suspect, fake_name);
  ASSERT_TRUE(suspect_at) << timeline(sub.get());
  EXPECT_EQ(*suspect_at, probe_at + cfg_.probe_interval)
    << "expected the unanswered probe + probe_interval ("
    << since(t0_, probe_at + cfg_.probe_interval) << ")\n"
    << timeline(sub.get());
  EXPECT_GT(*suspect_at, probe_at + cfg_.probe_timeout);
  // So within three probe intervals of the last answer.
  EXPECT_GT(*suspect_at, last_answered + cfg_.probe_interval);
  EXPECT_LE(*suspect_at, last_answered + 3 * cfg_.probe_interval);

  // Dead after the suspicion timeout: with n = 2 members the minimum
  // (suspicion_mult * max(1, log10 2) * probe_interval), since no
  // confirmations can be expected (k = 0).
  auto dead_at = sub->time_of(kind::dead, fake_name);
  ASSERT_TRUE(dead_at) << timeline(sub.get());
  auto suspicion = cfg_.suspicion_mult * cfg_.probe_interval;
  EXPECT_EQ(*dead_at, *suspect_at + suspicion)
    << "expected suspect + " << cfg_.suspicion_mult << " x probe_interval ("
    << since(t0_, *suspect_at + suspicion) << ")\n"
    << timeline(sub.get());

  // Meanwhile the fake was told it is suspected, so that it could refute.
  bool accused = false;
  for (auto& s : heard_of<gossip::suspect>()) {
    accused = accused || (s.node == fake_name && s.from == "me");
  }
  EXPECT_TRUE(accused) << timeline(sub.get());
  auto m = member_named(fake_name);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state, gossip::node_state::dead);
  EXPECT_EQ(ask<membership_counters>(stats_atom::value).core.deaths_declared,
            1u);
}

TEST_F(membership_virtual_time, subscribers_get_member_events_in_order) {
  auto sub = subscribe();
  ASSERT_EQ(sub->initial.size(), 1u);
  EXPECT_EQ(sub->initial[0].name, "me");
  EXPECT_EQ(sub->initial[0].state, gossip::node_state::alive);

  inject(fake_alive(1));
  advance_to(t0_ + 3s);
  gossip::byte_buffer meta{std::byte{'v'}, std::byte{'2'}};
  inject(fake_alive(2, meta));
  advance_to(t0_ + 6s);
  responsive_ = false;
  // Suspected; the fake refutes with a higher incarnation and answers again.
  auto refuted = false;
  for (int i = 0; i < 100 && !refuted; ++i) {
    advance_to(virtual_now(env_) + 100ms);
    if (sub->time_of(kind::suspect, fake_name)) {
      responsive_ = true;
      inject(fake_alive(3, meta));
      refuted = true;
    }
  }
  ASSERT_TRUE(refuted) << timeline(sub.get());
  advance_to(virtual_now(env_) + 5s);
  // Silent for good: suspect again, then dead (well before the dead
  // member is reaped, gossip_to_the_dead_time later).
  responsive_ = false;
  advance_to(virtual_now(env_) + 20s);

  auto expected = std::vector<kind>{kind::joined,  kind::updated,
                                    kind::suspect, kind::alive_again,
                                    kind::suspect, kind::dead};
  EXPECT_EQ(sub->kinds_of(fake_name), expected) << timeline(sub.get());
  std::vector<uint32_t> incarnations;
  for (auto& e : sub->events) {
    if (e.name == fake_name) {
      incarnations.push_back(e.incarnation);
    }
  }
  EXPECT_EQ(incarnations, (std::vector<uint32_t>{1, 2, 2, 3, 3, 3}))
    << timeline(sub.get());
  // A subscriber that comes now gets the table, then only what follows.
  auto late = subscribe();
  auto listed = std::find_if(late->initial.begin(), late->initial.end(),
                             [](const gossip::member& m) {
                               return m.name == fake_name;
                             });
  ASSERT_NE(listed, late->initial.end());
  EXPECT_EQ(listed->state, gossip::node_state::dead);
  EXPECT_TRUE(late->events.empty()) << timeline(late.get());
}

TEST_F(membership_virtual_time, a_member_that_leaves_is_published_as_left) {
  auto sub = subscribe();
  inject(fake_alive(1));
  advance_to(t0_ + 3s);
  inject(gossip::dead{1, std::string{fake_name}, std::string{fake_name}});
  auto left_at = virtual_now(env_);
  EXPECT_EQ(sub->kinds_of(fake_name),
            (std::vector<kind>{kind::joined, kind::left}))
    << timeline(sub.get());
  auto m = member_named(fake_name);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state, gossip::node_state::left);
  // No probe goes to a member that left.
  advance_to(left_at + 20s);
  for (auto& [at, p] : pings()) {
    EXPECT_LE(at, left_at) << timeline(sub.get());
  }
  EXPECT_EQ(sub->kinds_of(fake_name),
            (std::vector<kind>{kind::joined, kind::left}))
    << timeline(sub.get());
}

TEST_F(membership_virtual_time, our_leave_tells_the_member_and_is_published) {
  auto sub = subscribe();
  inject(fake_alive(1));
  advance_to(t0_ + 3s);
  auto done = std::make_shared<std::optional<virtual_time_point>>();
  auto failed = std::make_shared<std::string>();
  auto target = actor_;
  auto& env = env_;
  auto timeout = caf::timespan{5s};
  env_.keep(env_.sys().spawn([=, &env](caf::event_based_actor* self) {
    self->request(target, caf::infinite, leave_atom::value, timeout)
      .then(
        [=, &env]() {
          *done = virtual_now(env);
        },
        [=](caf::error& e) {
          *failed = to_string(from_caf_error(e));
        });
    return caf::behavior{[](const caf::unit_t&) {}};
  }));
  env_.run();
  pump();
  auto asked_at = virtual_now(env_);
  // At once: the subscriber sees us leave, and the live member is told
  // directly (dead about us, from us).
  EXPECT_EQ(sub->kinds_of("me"), std::vector<kind>{kind::left})
    << timeline(sub.get());
  auto told = [&] {
    size_t n = 0;
    for (auto& d : heard_of<gossip::dead>()) {
      n += d.node == "me" && d.from == "me" ? 1 : 0;
    }
    return n;
  };
  EXPECT_EQ(told(), 1u) << timeline(sub.get());
  // The leave completes once gossiped its retransmit limit, before the
  // timeout.
  advance_to(asked_at + timeout);
  ASSERT_TRUE(done->has_value())
    << "leave did not complete: " << *failed << "\n"
    << timeline(sub.get());
  EXPECT_LT(**done, asked_at + timeout);
  EXPECT_GT(told(), 1u) << "the leave was not gossiped\n"
                        << timeline(sub.get());
  auto me = member_named("me");
  ASSERT_TRUE(me);
  EXPECT_EQ(me->state, gossip::node_state::left);
}

} // namespace
} // namespace mycorrizal
