// SPDX-License-Identifier: Apache-2.0
// The peers actor in virtual time (CAF's test coordinator): that it carries
// out what its dial policy (`peering::dialer`, unit-tested on its own in
// tests/unit/peering) decides, against real messages and CAF timers. Around
// it stand doubles: a membership actor that lists members and forwards the
// member events a test gives it, a transport that records dials and lets
// the test answer them later (or never), connections and streams that
// record what the control stream carries, and a subscriber that records
// peer_up / peer_unreachable / peer_down with the virtual time they came.
#include "mycorrizal/cluster/peers.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/wire/frame.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include "support/actor_system.hpp"
#include "support/virtual_clock.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <chrono>
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
using test::advance_to;
using test::clock_mode;
using test::since;
using test::virtual_now;
using test::virtual_time_point;

using peers_handle = peers_actor;

// -- doubles ------------------------------------------------------------------

/// The membership actor as the peers actor sees it.
struct membership_feed {
  /// The answer to `subscribe_atom`.
  std::vector<gossip::member> listed;
  /// Who subscribed (the peers actor).
  caf::actor subscriber;
  int subscribes = 0;
};

caf::behavior membership_double(caf::event_based_actor* self,
                                const std::shared_ptr<membership_feed>& feed) {
  return {
    [=](subscribe_atom, caf::actor& who) {
      feed->subscriber = who;
      ++feed->subscribes;
      return feed->listed;
    },
    // The test's events go out from here, as the real actor's would.
    [=](gossip::member_event& ev) {
      if (feed->subscriber) {
        self->send(feed->subscriber, std::move(ev));
      }
    },
  };
}

/// One `dial_atom` request the transport got.
struct dial_request {
  virtual_time_point at;
  ip_endpoint to;
  std::string name;
  caf::timespan deadline;
  caf::response_promise answer;
};

struct transport_log {
  std::vector<dial_request> dials;
};

/// The test tells the transport double to answer dial `i`.
using answer_atom = caf::atom_constant<caf::atom("tanswer")>;

/// Records dials; answers them (or not) when the test says so. A promise
/// is delivered from inside its actor: under the test coordinator, a
/// delivery from the test's own code finds no execution context and
/// crashes CAF 0.17.
caf::behavior transport_double(caf::event_based_actor* self,
                               const std::shared_ptr<transport_log>& log) {
  return {
    [=](dial_atom, ip_endpoint& to, std::string& name,
        caf::timespan deadline) -> caf::result<connection_info> {
      auto rp = self->make_response_promise();
      log->dials.push_back(
        dial_request{self->clock().now(), to, std::move(name), deadline, rp});
      return rp;
    },
    [=](answer_atom, uint64_t i, connection_info& info) {
      log->dials.at(i).answer.deliver(std::move(info));
    },
    [=](answer_atom, uint64_t i, caf::error& err) {
      log->dials.at(i).answer.deliver(std::move(err));
    },
  };
}

/// What a connection and its streams were asked to do.
struct connection_log {
  /// The first frame of every stream opened on it, and its consumer.
  std::vector<wire::owned_frame> opened;
  caf::actor consumer;
  /// The streams it handed out.
  std::vector<stream_actor> streams;
  /// Frames written on its streams, in order.
  std::vector<wire::owned_frame> written;
  /// The reasons of `close_atom`s.
  std::vector<std::string> closes;
};

caf::behavior stream_double(caf::event_based_actor*,
                            const std::shared_ptr<connection_log>& log) {
  return {
    [=](write_atom, wire::owned_frame& f) {
      log->written.push_back(std::move(f));
    },
    [=](write_atom, std::vector<wire::owned_frame>& fs) {
      for (auto& f : fs) {
        log->written.push_back(std::move(f));
      }
    },
  };
}

caf::behavior connection_double(caf::event_based_actor* self,
                                const std::shared_ptr<connection_log>& log) {
  return {
    [=](open_atom, wire::owned_frame& first, caf::actor& consumer) {
      log->opened.push_back(std::move(first));
      log->consumer = consumer;
      // Linked: it ends with the connection at the end of the test.
      auto stream = caf::actor_cast<stream_actor>(
        self->spawn<caf::linked>(stream_double, log));
      log->streams.push_back(stream);
      return stream;
    },
    [=](close_atom, uint64_t, std::string& why) {
      log->closes.push_back(std::move(why));
    },
  };
}

/// What a subscriber of the peers actor got, in order.
struct peer_events {
  std::vector<peer_info> initial;
  bool subscribed = false;
  std::vector<peer_up> ups;
  std::vector<peer_down> downs;
  std::vector<peer_unreachable> unreachables;
  /// Every event as "+t kind name detail", for checks of order and for
  /// failure messages.
  std::vector<std::string> order;

  std::string describe() const {
    std::string out = "events:";
    for (const auto& s : order) {
      out += "\n  " + s;
    }
    return out;
  }
};

/// A connection double and its log.
struct test_connection {
  connection_actor actor;
  std::shared_ptr<connection_log> log;
};

// -- fixture ------------------------------------------------------------------

class peers_virtual_time : public testing::Test {
protected:
  peers_virtual_time() : env_(clock_mode::virtual_time) {
    opts_.dial_timeout = 5s;
    opts_.backoff_min = 100ms;
    opts_.backoff_max = 10s;
    opts_.dial_wait = 1s;
    opts_.seed = 7;
  }

  /// A Mycorrizal member on 127.0.0.<host>: gossip port 7946, QUIC port
  /// 9000 + host in its meta (`gossip::node_meta`).
  static gossip::member member(const std::string& name, uint8_t host,
                               uint32_t incarnation = 1) {
    gossip::member m;
    m.name = name;
    m.address = ip_endpoint::v4(127, 0, 0, host, 7946);
    gossip::node_meta meta;
    meta.quic_port = static_cast<uint16_t>(9000 + host);
    auto bytes = gossip::encode_node_meta(meta);
    EXPECT_TRUE(bytes);
    m.meta = *bytes;
    m.incarnation = incarnation;
    m.state = gossip::node_state::alive;
    return m;
  }

  static ip_endpoint quic_of(uint8_t host) {
    return ip_endpoint::v4(127, 0, 0, host, static_cast<uint16_t>(9000 + host));
  }

  /// Starts the peers actor named `self_name` with a membership that lists
  /// `members`, subscribes a recorder, then hands it the transport (which
  /// makes it subscribe to membership and start dialing).
  void start(const std::string& self_name,
             std::vector<gossip::member> members) {
    feed_ = std::make_shared<membership_feed>();
    feed_->listed = std::move(members);
    membership_ = env_.keep(env_.sys().spawn(membership_double, feed_));
    transport_log_ = std::make_shared<transport_log>();
    transport_ = env_.keep(env_.sys().spawn(transport_double, transport_log_));
    opts_.name = self_name;
    // The double speaks the part of membership_actor the peers actor uses.
    opts_.membership = caf::actor_cast<membership_actor>(membership_);
    auto spawned = spawn_peers(env_.sys(), opts_);
    ASSERT_TRUE(spawned) << to_string(spawned.error());
    peers_ = *spawned;
    env_.keep(caf::actor_cast<caf::actor>(peers_));
    events_ = std::make_shared<peer_events>();
    auto peers = peers_;
    auto events = events_;
    auto& env = env_;
    auto t0 = virtual_now(env_);
    env_.keep(env_.sys().spawn([=, &env](caf::event_based_actor* self) {
      auto stamp = [=, &env](const std::string& what) {
        events->order.push_back(since(t0, virtual_now(env)) + " " + what);
      };
      self
        ->request(peers, caf::infinite, subscribe_atom::value,
                  caf::actor_cast<caf::actor>(self))
        .then(
          [=](std::vector<peer_info>& now) {
            events->initial = std::move(now);
            events->subscribed = true;
          },
          [=](caf::error& e) {
            stamp("subscribe failed: " + to_string(from_caf_error(e)));
          });
      return caf::behavior{
        [=](peer_up& up) {
          stamp("up " + up.peer.name + (up.peer.incoming ? " in" : " out"));
          events->ups.push_back(std::move(up));
        },
        [=](peer_unreachable& un) {
          stamp("unreachable " + un.name + " " + to_string(un.reason));
          events->unreachables.push_back(std::move(un));
        },
        [=](peer_down& dn) {
          stamp("down " + dn.name + " " + to_string(dn.reason));
          events->downs.push_back(std::move(dn));
        },
      };
    }));
    env_.run();
    ASSERT_TRUE(events_->subscribed) << events_->describe();
    t0_ = virtual_now(env_);
    caf::anon_send(peers_, set_transport_atom::value,
                   caf::actor_cast<transport_actor>(transport_));
    env_.run();
    ASSERT_EQ(feed_->subscribes, 1) << "peers did not follow membership";
  }

  /// Sends `kind` about `m` through the membership double.
  void gossip_event(gossip::member_event_kind kind, gossip::member m) {
    if (kind == gossip::member_event_kind::dead) {
      m.state = gossip::node_state::dead;
    } else if (kind == gossip::member_event_kind::left) {
      m.state = gossip::node_state::left;
    }
    caf::anon_send(membership_, gossip::member_event{kind, std::move(m)});
    env_.run();
  }

  test_connection connection() {
    auto log = std::make_shared<connection_log>();
    auto actor = env_.keep(env_.sys().spawn(connection_double, log));
    // The double speaks the part of connection_actor the peers actor uses.
    return {caf::actor_cast<connection_actor>(actor), log};
  }

  /// Dial `i` succeeds with `conn`: the transport tells its handler and
  /// answers the dial, as the real one does.
  void dial_succeeds(size_t i, const test_connection& conn) {
    ASSERT_LT(i, dials().size());
    auto& d = dials()[i];
    connection_info info{conn.actor, d.name, d.to, false, {}};
    caf::anon_send(peers_, connection_up{info});
    caf::anon_send(transport_, answer_atom::value, uint64_t{i}, info);
    env_.run();
  }

  void dial_fails(size_t i) {
    ASSERT_LT(i, dials().size());
    auto& d = dials()[i];
    caf::anon_send(transport_, answer_atom::value, uint64_t{i},
                   make_caf_error(error{errc::connection_lost,
                                        "connect to " + d.to.to_string()
                                          + ": connection refused"}));
    env_.run();
  }

  /// `name` dialed us: `conn` comes up as an incoming connection.
  void incoming(const std::string& name, uint8_t host,
                const test_connection& conn) {
    caf::anon_send(
      peers_,
      connection_up{connection_info{
        conn.actor, name, ip_endpoint::v4(127, 0, 0, host, 40000), true, {}}});
    env_.run();
  }

  /// Asks the peers actor and returns its answer (fails the test if none).
  template <class T, class... Ts>
  T ask(Ts... xs) {
    auto answer = env_.ask<T>(peers_, xs...);
    EXPECT_TRUE(answer) << "no answer: " << to_string(answer.error());
    return answer ? std::move(*answer) : T{};
  }

  peers_stats stats() {
    return ask<peers_stats>(stats_atom::value);
  }

  std::optional<peer_info> connection_of(const std::string& name) {
    for (auto& p : ask<std::vector<peer_info>>(connections_atom::value)) {
      if (p.name == name) {
        return p;
      }
    }
    return std::nullopt;
  }

  std::vector<dial_request>& dials() {
    return transport_log_->dials;
  }

  /// The dials so far, for failure messages.
  std::string describe_dials() {
    std::string out = "dials:";
    for (auto& d : dials()) {
      out += "\n  " + since(t0_, d.at) + " " + d.name + " at "
             + d.to.to_string();
    }
    return out;
  }

  void advance_to(virtual_time_point t) {
    test::advance_to(env_, t);
  }

  actor_system env_;
  peers_options opts_;
  std::shared_ptr<membership_feed> feed_;
  std::shared_ptr<transport_log> transport_log_;
  std::shared_ptr<peer_events> events_;
  caf::actor membership_;
  caf::actor transport_;
  peers_handle peers_;
  /// When the peers actor got its transport.
  virtual_time_point t0_;
};

/// `base` × `factor`, as the dialer's jitter computes it.
caf::timespan scaled(caf::timespan base, double factor) {
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double, std::nano>(static_cast<double>(base.count())
                                             * factor));
}

// -- tests --------------------------------------------------------------------

TEST_F(peers_virtual_time, the_smaller_name_dials_at_once_and_says_hello) {
  auto plain = member("plain", 9);
  plain.meta.clear(); // a plain memberlist node: membership only
  start("node-a", {member("node-a", 1, 3), member("node-b", 2), plain});
  ASSERT_EQ(dials().size(), 1u) << describe_dials();
  EXPECT_EQ(dials()[0].at, t0_) << describe_dials();
  EXPECT_EQ(dials()[0].name, "node-b");
  EXPECT_EQ(dials()[0].to, quic_of(2)) << "the QUIC port of its meta";
  EXPECT_EQ(dials()[0].deadline, opts_.dial_timeout);

  auto conn = connection();
  dial_succeeds(0, conn);
  ASSERT_EQ(events_->ups.size(), 1u) << events_->describe();
  auto& up = events_->ups[0].peer;
  EXPECT_EQ(up.name, "node-b");
  EXPECT_EQ(up.connection, conn.actor);
  EXPECT_FALSE(up.incoming);
  EXPECT_EQ(up.quic, quic_of(2));
  EXPECT_EQ(up.gossip, ip_endpoint::v4(127, 0, 0, 2, 7946));

  // The dialer opens the control stream with HELLO (our name and the
  // incarnation membership lists for us), then APPS.
  ASSERT_EQ(conn.log->opened.size(), 1u);
  auto* hello = std::get_if<wire::owned_hello>(&conn.log->opened[0]);
  ASSERT_NE(hello, nullptr) << "the control stream does not start with HELLO";
  EXPECT_EQ(hello->node_name, "node-a");
  EXPECT_EQ(hello->incarnation, 3u);
  EXPECT_EQ(conn.log->consumer, caf::actor_cast<caf::actor>(peers_));
  ASSERT_EQ(conn.log->written.size(), 1u);
  EXPECT_EQ(conn.log->written[0], wire::owned_frame{wire::owned_apps{}});

  // Our applications change: APPS again, sorted.
  caf::anon_send(peers_, apps_atom::value,
                 std::vector<std::string>{"kv", "chat"});
  env_.run();
  ASSERT_EQ(conn.log->written.size(), 2u);
  EXPECT_EQ(conn.log->written[1],
            (wire::owned_frame{wire::owned_apps{{"chat", "kv"}}}));

  // The peer's HELLO and APPS on the control stream: it runs "kv".
  ASSERT_EQ(conn.log->streams.size(), 1u);
  caf::anon_send(peers_,
                 stream_frames{conn.log->streams[0],
                               {wire::owned_hello{wire::protocol_version_min,
                                                  wire::protocol_version_max, 1,
                                                  0, "node-b"},
                                wire::owned_apps{{"kv"}}}});
  env_.run();
  EXPECT_EQ(ask<std::vector<std::string>>(nodes_atom::value, std::string{"kv"}),
            std::vector<std::string>{"node-b"});
  EXPECT_TRUE(
    ask<std::vector<std::string>>(nodes_atom::value, std::string{"chat"})
      .empty());

  // Nobody else is dialed, ever: not ourselves, not the plain member.
  advance_to(t0_ + 60s);
  EXPECT_EQ(dials().size(), 1u) << describe_dials();
}

TEST_F(peers_virtual_time, the_larger_name_waits_dial_wait_then_dials) {
  // node-b is smaller (it should dial us), node-x larger (we dial it).
  start("node-m",
        {member("node-m", 1), member("node-b", 2), member("node-x", 3)});
  ASSERT_EQ(dials().size(), 1u) << describe_dials();
  EXPECT_EQ(dials()[0].name, "node-x");
  EXPECT_EQ(dials()[0].at, t0_);

  // node-b gets dial_wait plus up to 50 % to dial us.
  advance_to(t0_ + opts_.dial_wait - 1ns);
  EXPECT_EQ(dials().size(), 1u) << "dialed before dial_wait\n"
                                << describe_dials();
  advance_to(t0_ + scaled(opts_.dial_wait, 1.5));
  ASSERT_EQ(dials().size(), 2u) << "no dial within 1.5 x dial_wait\n"
                                << describe_dials();
  EXPECT_EQ(dials()[1].name, "node-b");
  EXPECT_EQ(dials()[1].to, quic_of(2));
  EXPECT_GE(dials()[1].at, t0_ + opts_.dial_wait) << describe_dials();
  EXPECT_LT(dials()[1].at, t0_ + scaled(opts_.dial_wait, 1.5))
    << describe_dials();
  auto conn = connection();
  dial_succeeds(1, conn);
  ASSERT_EQ(events_->ups.size(), 1u) << events_->describe();
  EXPECT_EQ(events_->ups[0].peer.name, "node-b");
}

TEST_F(peers_virtual_time, an_incoming_connection_ends_the_wait) {
  start("node-m", {member("node-m", 1), member("node-b", 2)});
  EXPECT_TRUE(dials().empty()) << describe_dials();
  advance_to(t0_ + opts_.dial_wait / 2);
  auto conn = connection();
  incoming("node-b", 2, conn);
  ASSERT_EQ(events_->ups.size(), 1u) << events_->describe();
  EXPECT_TRUE(events_->ups[0].peer.incoming);
  EXPECT_EQ(events_->ups[0].peer.connection, conn.actor);
  // The dialer's side opens the control stream, not ours.
  EXPECT_TRUE(conn.log->opened.empty());
  advance_to(t0_ + 10 * opts_.dial_wait);
  EXPECT_TRUE(dials().empty()) << describe_dials();
}

TEST_F(peers_virtual_time, a_failed_dial_backs_off_while_alive_not_when_dead) {
  start("node-a", {member("node-b", 2)});
  ASSERT_EQ(dials().size(), 1u) << describe_dials();
  // The k-th failure in a row waits backoff_min * 2^k, +-25 %.
  for (int k = 1; k <= 3; ++k) {
    auto failed_at = virtual_now(env_);
    dial_fails(dials().size() - 1);
    auto base = opts_.backoff_min * (int64_t{1} << k);
    auto lo = failed_at + scaled(base, 0.75);
    auto hi = failed_at + scaled(base, 1.25);
    advance_to(lo - 1ns);
    ASSERT_EQ(dials().size(), static_cast<size_t>(k))
      << "redial " << k << " before " << since(t0_, lo) << "\n"
      << describe_dials();
    advance_to(hi);
    ASSERT_EQ(dials().size(), static_cast<size_t>(k + 1))
      << "no redial " << k << " in [" << since(t0_, lo) << ", "
      << since(t0_, hi) << ")\n"
      << describe_dials();
    EXPECT_LT(dials().back().at, hi) << describe_dials();
    EXPECT_EQ(dials().back().to, quic_of(2));
  }
  // A fourth failure schedules another redial; the member dies first.
  dial_fails(3);
  EXPECT_TRUE(events_->downs.empty()) << events_->describe();
  gossip_event(gossip::member_event_kind::dead, member("node-b", 2));
  ASSERT_EQ(events_->downs.size(), 1u) << events_->describe();
  EXPECT_EQ(events_->downs[0].name, "node-b");
  EXPECT_EQ(events_->downs[0].reason.code(), errc::node_down)
    << to_string(events_->downs[0].reason);
  advance_to(virtual_now(env_) + 60s);
  EXPECT_EQ(dials().size(), 4u) << "redialed a dead member\n"
                                << describe_dials();
  auto s = stats();
  EXPECT_EQ(s.dials, 4u);
  EXPECT_EQ(s.dial_failures, 4u);
}

TEST_F(peers_virtual_time, a_dead_or_left_member_is_closed_and_node_down) {
  start("node-a", {member("node-b", 2), member("node-c", 3)});
  ASSERT_EQ(dials().size(), 2u) << describe_dials();
  auto b = connection();
  auto c = connection();
  dial_succeeds(0, dials()[0].name == "node-b" ? b : c);
  dial_succeeds(1, dials()[1].name == "node-b" ? b : c);
  ASSERT_EQ(events_->ups.size(), 2u) << events_->describe();

  gossip_event(gossip::member_event_kind::dead, member("node-b", 2));
  EXPECT_EQ(b.log->closes, std::vector<std::string>{"member dead"});
  gossip_event(gossip::member_event_kind::left, member("node-c", 3));
  EXPECT_EQ(c.log->closes, std::vector<std::string>{"member left"});
  ASSERT_EQ(events_->downs.size(), 2u) << events_->describe();
  EXPECT_EQ(events_->downs[0].name, "node-b");
  EXPECT_EQ(events_->downs[0].reason.code(), errc::node_down);
  EXPECT_EQ(events_->downs[1].name, "node-c");
  EXPECT_EQ(events_->downs[1].reason.code(), errc::node_down);

  // The closed connections end as connections do: nothing more follows.
  for (auto* x : {&b, &c}) {
    caf::anon_send(peers_,
                   connection_down{x->actor,
                                   x == &b ? "node-b" : "node-c",
                                   {},
                                   false,
                                   error{errc::connection_lost, "closed"},
                                   false});
  }
  env_.run();
  advance_to(virtual_now(env_) + 60s);
  EXPECT_EQ(events_->downs.size(), 2u) << events_->describe();
  EXPECT_EQ(dials().size(), 2u) << describe_dials();
  EXPECT_FALSE(connection_of("node-b")) << "a dead member is listed";
  EXPECT_FALSE(connection_of("node-c")) << "a left member is listed";
}

TEST_F(peers_virtual_time, an_unreachable_connection_is_reported_and_redialed) {
  start("node-a", {member("node-b", 2)});
  auto first = connection();
  dial_succeeds(0, first);
  ASSERT_EQ(events_->ups.size(), 1u) << events_->describe();
  advance_to(t0_ + 30s);

  auto lost_at = virtual_now(env_);
  error why{errc::connection_lost,
            "peer unreachable: nothing received for 5000 ms"};
  caf::anon_send(peers_, connection_down{first.actor, "node-b", quic_of(2),
                                         false, why, true});
  env_.run();
  // peer_unreachable first, with the connection's reason, then peer_down.
  ASSERT_EQ(events_->order.size(), 3u) << events_->describe();
  ASSERT_EQ(events_->unreachables.size(), 1u) << events_->describe();
  EXPECT_EQ(events_->unreachables[0].name, "node-b");
  EXPECT_EQ(events_->unreachables[0].reason, why);
  EXPECT_NE(events_->order[1].find("unreachable node-b"), std::string::npos)
    << events_->describe();
  EXPECT_NE(events_->order[2].find("down node-b"), std::string::npos)
    << events_->describe();
  ASSERT_EQ(events_->downs.size(), 1u);
  EXPECT_EQ(events_->downs[0].reason.code(), errc::connection_lost);
  auto listed = connection_of("node-b");
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->unreachable);
  EXPECT_FALSE(listed->connection);

  // The member is alive: the redial goes out at once.
  ASSERT_EQ(dials().size(), 2u) << describe_dials();
  EXPECT_EQ(dials()[1].at, lost_at) << describe_dials();
  auto second = connection();
  dial_succeeds(1, second);
  ASSERT_EQ(events_->ups.size(), 2u) << events_->describe();
  EXPECT_EQ(events_->ups[1].peer.connection, second.actor);
  EXPECT_FALSE(events_->ups[1].peer.unreachable);
  listed = connection_of("node-b");
  ASSERT_TRUE(listed);
  EXPECT_FALSE(listed->unreachable);
  EXPECT_EQ(listed->connection, second.actor);
  EXPECT_EQ(second.log->opened.size(), 1u) << "no control stream";
  EXPECT_EQ(stats().unreachable, 1u);
}

TEST_F(peers_virtual_time, when_both_dial_the_smaller_names_connection_stays) {
  // We are node-m: node-x's connection is the one we dial, node-b's the
  // one node-b dials.
  start("node-m", {member("node-b", 2), member("node-x", 3)});
  ASSERT_EQ(dials().size(), 1u) << describe_dials();
  // node-x dialed too (after its wait); ours answers later.
  auto x_in = connection();
  incoming("node-x", 3, x_in);
  auto x_out = connection();
  dial_succeeds(0, x_out);
  EXPECT_EQ(x_in.log->closes, std::vector<std::string>{"duplicate connection"});
  EXPECT_TRUE(x_out.log->closes.empty());
  auto x = connection_of("node-x");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->connection, x_out.actor);
  EXPECT_FALSE(x->incoming);

  // We dial node-b after the wait; its own dial arrives after ours.
  advance_to(t0_ + scaled(opts_.dial_wait, 1.5));
  ASSERT_EQ(dials().size(), 2u) << describe_dials();
  auto b_out = connection();
  dial_succeeds(1, b_out);
  auto b_in = connection();
  incoming("node-b", 2, b_in);
  EXPECT_EQ(b_out.log->closes,
            std::vector<std::string>{"duplicate connection"});
  EXPECT_TRUE(b_in.log->closes.empty());
  auto b = connection_of("node-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->connection, b_in.actor);
  EXPECT_TRUE(b->incoming);

  EXPECT_EQ(stats().duplicates_closed, 2u);
  // A replaced connection is no peer_down: the peer stayed connected.
  EXPECT_TRUE(events_->downs.empty()) << events_->describe();
}

TEST_F(peers_virtual_time, a_dial_without_answer_fails_after_dial_timeout) {
  start("node-a", {member("node-b", 2)});
  ASSERT_EQ(dials().size(), 1u);
  EXPECT_EQ(dials()[0].deadline, opts_.dial_timeout);
  // The transport never answers. The peers actor waits for the transport's
  // own `timeout` reply (due at dial_timeout) one second longer, then
  // counts the dial as failed.
  auto failed_at = t0_ + opts_.dial_timeout + 1s;
  advance_to(failed_at - 1ns);
  EXPECT_EQ(stats().dial_failures, 0u);
  advance_to(failed_at);
  EXPECT_EQ(stats().dial_failures, 1u)
    << "not counted as failed at " << since(t0_, failed_at);
  // And redials as after any failure (the first: 2 x backoff_min +-25 %).
  advance_to(failed_at + scaled(2 * opts_.backoff_min, 1.25));
  ASSERT_EQ(dials().size(), 2u) << describe_dials();
  EXPECT_GE(dials()[1].at, failed_at + scaled(2 * opts_.backoff_min, 0.75))
    << describe_dials();
  auto conn = connection();
  dial_succeeds(1, conn);
  ASSERT_EQ(events_->ups.size(), 1u) << events_->describe();
  EXPECT_EQ(events_->ups[0].peer.connection, conn.actor);
}

} // namespace
} // namespace mycorrizal
