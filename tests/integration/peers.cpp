// SPDX-License-Identifier: Apache-2.0
// The peers actor with real membership and QUIC transports on 127.0.0.x:
// a full mesh of exactly one connection per pair, the dial rule, loss of a
// member, a restart at a new port, and a member named like ourselves.
#include "mycorrizal/cluster/peers.hpp"

#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/cluster/stack.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include "support/eventually.hpp"
#include "support/test_pki.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

/// One node: its reactor, membership, transport and peers actor.
struct node {
  std::string name;
  std::shared_ptr<net::reactor> reactor;
  membership_handle membership;
  /// With `blind`: the lone membership the peers actor follows instead.
  membership_handle blind;
  transport_handle transport;
  peers_actor peers;
  bool stopped = false;
};

class peers_test : public ::testing::Test {
protected:
  void SetUp() override {
    cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  void TearDown() override {
    for (auto& [name, n] : nodes_) {
      stop(*n);
    }
    sys_->await_all_actors_done();
    nodes_.clear();
    sys_.reset();
  }

  /// Starts `name` on 127.0.0.<host>: membership first (its meta names the
  /// QUIC port once the transport is bound), then peers, then the
  /// transport with peers as its handler.
  /// With `blind`, its peers actor follows a second membership that joins
  /// nobody: it never hears of another member through gossip.
  node& start(const std::string& name, uint8_t host, uint16_t gossip_port = 0,
              uint16_t quic_port = 0, bool blind = false) {
    auto n = std::make_unique<node>();
    n->name = name;
    n->reactor = std::make_shared<net::reactor>();
    EXPECT_TRUE(n->reactor->start());
    cluster_stack_options so;
    so.membership.gossip = gossip::membership_config::local_defaults();
    so.membership.gossip.name = name;
    so.membership.bind = ip_endpoint::v4(127, 0, 0, host, gossip_port);
    so.membership.reactor = n->reactor;
    so.peers.name = name;
    if (blind) {
      membership_options lone;
      lone.gossip = gossip::membership_config::local_defaults();
      lone.gossip.name = name;
      lone.bind = ip_endpoint::v4(127, 0, 0, host, 0);
      lone.reactor = n->reactor;
      auto b = spawn_membership(*sys_, std::move(lone));
      EXPECT_TRUE(b) << to_string(b.error());
      n->blind = *b;
      so.peers.membership = n->blind.actor;
    }
    so.peers.backoff_min = 50ms;
    so.peers.backoff_max = 500ms;
    so.peers.dial_timeout = 2s;
    so.transport.credentials = test::test_pki::get().credentials(name);
    so.transport.bind = ip_endpoint::v4(127, 0, 0, host, quic_port);
    so.transport.transport.idle_timeout = 3s;
    so.transport.transport.keep_alive = 1s;
    so.transport.transport.unreachable_timeout = 2s;
    auto stack = start_cluster_stack(*sys_, std::move(so));
    EXPECT_TRUE(stack) << to_string(stack.error());
    n->membership = stack->membership;
    n->peers = stack->peers;
    n->transport = stack->transport;
    auto& ref = *n;
    nodes_[name] = std::move(n);
    return ref;
  }

  /// Sets the QUIC port `n`'s gossip meta announces.
  bool gossip_quic_port(const node& n, uint16_t port) {
    gossip::node_meta meta;
    meta.quic_port = port;
    auto bytes = gossip::encode_node_meta(meta);
    EXPECT_TRUE(bytes);
    return bytes
           && ask_unit(n.membership.actor, update_atom::value,
                       std::string(reinterpret_cast<const char*>(bytes->data()),
                                   bytes->size()));
  }

  /// Starts `n` again under its name, host and ports (as a restarted daemon
  /// does; memberlist refuses a dead name at another address until it is
  /// reaped); `n` is gone then.
  node& restart(node& n, uint8_t host) {
    auto name = n.name;
    auto gossip_port = n.membership.local.port();
    auto quic_port = n.transport.local.port();
    nodes_.erase(name);
    return start(name, host, gossip_port, quic_port);
  }

  /// Closes a node's sockets first (to the others it vanished without a
  /// word: no CONNECTION_CLOSE, no leave), then stops its actors.
  void vanish(node& n) {
    n.reactor->stop();
    stop(n);
  }

  /// Stops a node's actors, then its reactor.
  void stop(node& n) {
    if (n.stopped) {
      return;
    }
    n.stopped = true;
    stop_cluster_stack(*sys_, {n.membership, n.peers, n.transport});
    if (n.blind.actor) {
      caf::anon_send_exit(n.blind.actor, caf::exit_reason::user_shutdown);
      caf::scoped_actor self{*sys_};
      self->wait_for(n.blind.actor);
    }
    n.reactor->stop();
  }

  template <class Handle, class... Ts>
  bool ask_unit(const Handle& dest, Ts&&... xs) {
    bool ok = false;
    caf::scoped_actor self{*sys_};
    self->request(dest, 5s, std::forward<Ts>(xs)...)
      .receive(
        [&] {
          ok = true;
        },
        [&](caf::error& e) {
          ADD_FAILURE() << to_string(from_caf_error(e));
        });
    return ok;
  }

  void join(const node& n, const node& seed) {
    caf::scoped_actor self{*sys_};
    self
      ->request(n.membership.actor, 5s, join_atom::value,
                std::vector<std::string>{seed.membership.local.to_string()})
      .receive([](uint64_t) {},
               [&](caf::error& e) {
                 ADD_FAILURE() << "join: " << to_string(from_caf_error(e));
               });
  }

  std::vector<peer_info> peers_of(const node& n) {
    std::vector<peer_info> out;
    caf::scoped_actor self{*sys_};
    self->request(n.peers, 5s, connections_atom::value)
      .receive(
        [&](std::vector<peer_info>& xs) {
          out = std::move(xs);
        },
        [](caf::error&) {});
    return out;
  }

  /// The names `n` has a connection to.
  std::set<std::string> connected(const node& n) {
    std::set<std::string> out;
    for (auto& p : peers_of(n)) {
      if (p.connection) {
        out.insert(p.name);
      }
    }
    return out;
  }

  /// Waits until every node of `ns` is connected to exactly the others.
  bool full_mesh(std::initializer_list<const node*> ns,
                 std::chrono::seconds within = 15s) {
    return test::eventually(
      [&] {
        for (auto* n : ns) {
          std::set<std::string> others;
          for (auto* o : ns) {
            if (o != n) {
              others.insert(o->name);
            }
          }
          if (connected(*n) != others) {
            return false;
          }
        }
        return true;
      },
      within);
  }

  std::vector<connection_info> connections_of(const node& n) {
    std::vector<connection_info> out;
    caf::scoped_actor self{*sys_};
    self->request(n.transport.actor, 5s, connections_atom::value)
      .receive(
        [&](std::vector<connection_info>& xs) {
          out = std::move(xs);
        },
        [](caf::error&) {});
    return out;
  }

  peers_stats stats(const node& n) {
    peers_stats out;
    caf::scoped_actor self{*sys_};
    self->request(n.peers, 5s, stats_atom::value)
      .receive(
        [&](peers_stats& s) {
          out = s;
        },
        [](caf::error&) {});
    return out;
  }

  std::string describe(const node& n) {
    std::string out = n.name + ": peers";
    for (auto& p : peers_of(n)) {
      out += " [" + p.name + (p.connection ? " up" : " down")
             + (p.incoming ? " in" : " out") + " " + p.quic.to_string() + "]";
    }
    auto s = stats(n);
    out += "; transport connections " + std::to_string(connections_of(n).size())
           + "; dials " + std::to_string(s.dials) + ", failures "
           + std::to_string(s.dial_failures) + ", duplicates closed "
           + std::to_string(s.duplicates_closed) + ", refused "
           + std::to_string(s.refused);
    return out;
  }

  std::string describe_all() {
    std::string out;
    for (auto& [name, n] : nodes_) {
      if (!n->stopped) {
        out += describe(*n) + "\n";
      }
    }
    return out;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::map<std::string, std::unique_ptr<node>> nodes_;
};

TEST_F(peers_test, three_nodes_form_a_full_mesh_of_one_connection_per_pair) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  auto& c = start("node-c", 3);
  join(b, a);
  join(c, a);
  ASSERT_TRUE(full_mesh({&a, &b, &c})) << describe_all();
  // Exactly one QUIC connection per pair: two per transport, and both ends
  // agree who dialed (the smaller name, or the larger one after dial_wait
  // when the smaller's gossip was late: a loaded CI run saw that).
  for (auto* n : {&a, &b, &c}) {
    EXPECT_TRUE(test::eventually(
      [&] {
        return connections_of(*n).size() == 2;
      },
      5s))
      << describe_all();
    for (auto& p : peers_of(*n)) {
      for (auto& q : peers_of(*nodes_.at(p.name))) {
        if (q.name == n->name) {
          EXPECT_NE(p.incoming, q.incoming)
            << n->name << " <-> " << p.name << "\n"
            << describe_all();
        }
      }
    }
    EXPECT_EQ(stats(*n).refused, 0u) << describe_all();
  }
}

TEST_F(peers_test, a_vanished_member_is_dropped_and_a_restart_reconnects) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  auto& c = start("node-c", 3);
  join(b, a);
  join(c, a);
  ASSERT_TRUE(full_mesh({&a, &b, &c})) << describe_all();
  // node-b's sockets close without a word: membership declares it dead, and
  // the others drop it (no connection, no redial).
  vanish(b);
  auto listed = [&](node& n, const std::string& who) {
    auto ps = peers_of(n);
    return std::any_of(ps.begin(), ps.end(), [&](const peer_info& p) {
      return p.name == who;
    });
  };
  ASSERT_TRUE(test::eventually(
    [&] {
      return !listed(a, "node-b") && !listed(c, "node-b")
             && connected(a) == std::set<std::string>{"node-c"}
             && connected(c) == std::set<std::string>{"node-a"};
    },
    30s))
    << describe_all();
  // node-b comes back under the same name and addresses: it refutes its
  // death and everyone reconnects.
  auto& b2 = restart(b, 2);
  join(b2, a);
  ASSERT_TRUE(test::eventually(
    [&] {
      return connected(a).count("node-b") == 1
             && connected(c).count("node-b") == 1 && connected(b2).size() == 2;
    },
    20s))
    << describe_all();
}

TEST_F(peers_test, a_member_that_stops_is_down_at_once_and_not_redialed) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  join(b, a);
  ASSERT_TRUE(full_mesh({&a, &b})) << describe_all();
  caf::scoped_actor sub{*sys_};
  sub->request(a.peers, 5s, subscribe_atom::value, caf::actor{sub})
    .receive([](std::vector<peer_info>&) {},
             [](caf::error& e) {
               ADD_FAILURE() << "subscribe: " << to_string(from_caf_error(e));
             });
  auto dials = stats(a).dials;
  // node-b stops without leaving the gossip: its connections close with
  // shutting_down, which alone must tell node-a that it is gone.
  stop(b);
  std::optional<peer_down> down;
  std::vector<std::string> seen;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!down && std::chrono::steady_clock::now() < deadline) {
    sub->receive(
      [&](peer_down& d) {
        seen.push_back("down " + d.name + ": " + to_string(d.reason));
        if (d.name == "node-b") {
          down = std::move(d);
        }
      },
      [&](peer_up& u) {
        seen.push_back("up " + u.peer.name);
      },
      caf::after(deadline - std::chrono::steady_clock::now()) >> [] {});
  }
  auto text = [&] {
    std::string out;
    for (auto& x : seen) {
      out += "\n  " + x;
    }
    return out + "\n" + describe_all();
  };
  ASSERT_TRUE(down) << "no peer_down for node-b in 10 s; saw:" << text();
  EXPECT_EQ(down->reason.code(), errc::node_down) << text();
  EXPECT_NE(down->reason.context().find("shutting down"), std::string::npos)
    << text();
  // Gossip declares it dead later (no leave came); until then node-a must
  // not have dialed it again although gossip still calls it alive.
  auto gossip_state = [&] {
    std::string out = "absent";
    caf::scoped_actor self{*sys_};
    self->request(a.membership.actor, 5s, members_atom::value)
      .receive(
        [&](std::vector<gossip::member>& ms) {
          for (auto& m : ms) {
            if (m.name == "node-b") {
              static constexpr const char* names[] = {"alive", "suspect",
                                                      "dead", "left"};
              out = names[static_cast<size_t>(m.state) & 3];
            }
          }
        },
        [](caf::error&) {});
    return out;
  };
  EXPECT_EQ(gossip_state(), "alive") << "gossip was quicker than the close";
  ASSERT_TRUE(test::eventually(
    [&] {
      auto now = gossip_state();
      return now == "dead" || now == "absent";
    },
    30s))
    << "node-b is " << gossip_state() << " to node-a\n"
    << describe_all();
  EXPECT_EQ(stats(a).dials, dials) << describe_all();
  // Restarted under the same name and addresses, it is connected again.
  auto& b2 = restart(b, 2);
  join(b2, a);
  ASSERT_TRUE(test::eventually(
    [&] {
      return connected(a).count("node-b") == 1 && connected(b2).size() == 1;
    },
    20s))
    << describe_all();
}

TEST_F(peers_test, a_member_that_leaves_does_not_dial_again) {
  // node-a (the smaller name, the dialer) leaves the gossip as a stopping
  // node does. node-b closes its connection on the leave; node-a, whose
  // view still has node-b alive, must not dial it again.
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  join(b, a);
  ASSERT_TRUE(full_mesh({&a, &b})) << describe_all();
  auto before = stats(a);
  ASSERT_TRUE(
    ask_unit(a.membership.actor, leave_atom::value, caf::timespan{500ms}));
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(a).downs > before.downs;
    },
    15s))
    << "node-a's connection to node-b did not close after its leave\n"
    << describe_all();
  // The stats request queues behind the connection_down that raised downs:
  // a redial would already have been counted.
  auto after = stats(a);
  EXPECT_EQ(after.dials, before.dials) << describe_all();
  EXPECT_TRUE(connected(a).empty()) << describe_all();
  EXPECT_TRUE(connected(b).empty()) << describe_all();
}

TEST_F(peers_test, the_larger_name_dials_when_the_smaller_does_not_know_it) {
  // node-a would dial (smaller name), but its peers actor never hears of
  // node-b: node-b waits dial_wait (1 s), then dials node-a itself.
  auto& a = start("node-a", 1, 0, 0, true);
  auto& b = start("node-b", 2);
  auto t0 = std::chrono::steady_clock::now();
  join(b, a);
  ASSERT_TRUE(test::eventually(
    [&] {
      return connected(b).count("node-a") == 1
             && connected(a).count("node-b") == 1;
    },
    10s))
    << describe_all();
  auto waited = std::chrono::steady_clock::now() - t0;
  std::printf("connected after %.3f s\n",
              std::chrono::duration<double>(waited).count());
  EXPECT_EQ(stats(a).dials, 0u) << describe_all();
  EXPECT_GE(stats(b).dials, 1u) << describe_all();
  // It waited for node-a first.
  EXPECT_GE(waited, 1s);
}

TEST_F(peers_test, a_member_that_does_not_answer_is_redialed_with_backoff) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  // Both gossip a QUIC port nobody listens on: node-a (the smaller name,
  // so the dialer) keeps trying, with growing delays; node-b, tired of
  // waiting, fails to dial node-a as well.
  for (auto* n : {&a, &b}) {
    // discard: nothing answers QUIC there
    ASSERT_TRUE(gossip_quic_port(*n, 9));
  }
  join(b, a);
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(a).dial_failures >= 2;
    },
    20s))
    << describe_all();
  EXPECT_TRUE(connected(a).empty()) << describe_all();
  // Fixing the meta lets the next redial through.
  for (auto* n : {&a, &b}) {
    ASSERT_TRUE(gossip_quic_port(*n, n->transport.local.port()));
  }
  ASSERT_TRUE(test::eventually(
    [&] {
      return connected(a) == std::set<std::string>{"node-b"}
             && connected(b) == std::set<std::string>{"node-a"};
    },
    20s))
    << describe_all();
}

} // namespace

namespace {

TEST_F(peers_test, a_connection_to_ourselves_is_refused) {
  auto& a = start("node-a", 1);
  // Our own transport dials our own endpoint with our own name: the TLS
  // handshake succeeds (the certificate is ours), the peers actor refuses.
  caf::scoped_actor self{*sys_};
  self
    ->request(a.transport.actor, 5s, dial_atom::value, a.transport.local,
              std::string{"node-a"}, caf::timespan{2s})
    .receive([](connection_info&) {}, [](caf::error&) {});
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(a).refused >= 1 && connections_of(a).empty();
    },
    10s))
    << describe_all();
  EXPECT_TRUE(connected(a).empty()) << describe_all();
}

TEST_F(peers_test, when_both_dial_the_connection_of_the_smaller_name_stays) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  join(b, a);
  ASSERT_TRUE(full_mesh({&a, &b})) << describe_all();
  auto kept = peers_of(a).front().connection;
  // node-b dials too, against the rule (as a node with another view would).
  caf::scoped_actor self{*sys_};
  self
    ->request(b.transport.actor, 5s, dial_atom::value, a.transport.local,
              std::string{"node-a"}, caf::timespan{2s})
    .receive([](connection_info&) {}, [](caf::error&) {});
  // The side that learns of the second connection first closes it; the
  // other may see it end before its peers actor took it in (a clean CI run
  // saw node-b count none), so the two counts add up to at least one.
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(a).duplicates_closed + stats(b).duplicates_closed >= 1
             && connections_of(a).size() == 1 && connections_of(b).size() == 1;
    },
    10s))
    << describe_all();
  // node-a kept the connection it dialed.
  auto ps = peers_of(a);
  ASSERT_EQ(ps.size(), 1u) << describe_all();
  EXPECT_EQ(ps.front().connection, kept) << describe_all();
  EXPECT_FALSE(ps.front().incoming) << describe_all();
}

} // namespace

namespace {

TEST_F(peers_test, the_control_stream_tells_which_peers_run_an_application) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  auto& c = start("node-c", 3);
  auto set_apps = [&](node& n, std::vector<std::string> apps) {
    ASSERT_TRUE(ask_unit(n.peers, apps_atom::value, std::move(apps)));
  };
  set_apps(a, {"chat"});
  set_apps(b, {"kv", "chat"});
  set_apps(c, {"kv"});
  join(b, a);
  join(c, a);
  auto nodes = [&](node& n, const std::string& app) {
    std::vector<std::string> out;
    caf::scoped_actor self{*sys_};
    self->request(n.peers, 5s, nodes_atom::value, app)
      .receive(
        [&](std::vector<std::string>& xs) {
          out = std::move(xs);
        },
        [](caf::error&) {});
    return std::set<std::string>(out.begin(), out.end());
  };
  using names = std::set<std::string>;
  ASSERT_TRUE(test::eventually(
    [&] {
      return nodes(a, "kv") == names{"node-b", "node-c"}
             && nodes(a, "chat") == names{"node-b"}
             && nodes(c, "chat") == names{"node-a", "node-b"}
             && nodes(b, "kv") == names{"node-c"} && nodes(b, "nope").empty();
    },
    15s))
    << describe_all();
  // Every peer agreed on protocol version 1 in its HELLO.
  for (auto* n : {&a, &b, &c}) {
    for (auto& p : peers_of(*n)) {
      EXPECT_EQ(p.version, 1) << n->name << " <-> " << p.name;
    }
  }
  // A change reaches everyone.
  set_apps(b, {"kv"});
  ASSERT_TRUE(test::eventually(
    [&] {
      return nodes(a, "chat").empty() && nodes(c, "chat") == names{"node-a"};
    },
    10s))
    << describe_all();
}

TEST_F(peers_test, a_stream_for_an_unknown_application_is_refused) {
  auto& a = start("node-a", 1);
  auto& b = start("node-b", 2);
  join(b, a);
  ASSERT_TRUE(full_mesh({&a, &b})) << describe_all();
  auto conn = peers_of(a).front().connection;
  // node-b has no streams actor: every application is unknown there.
  caf::scoped_actor self{*sys_};
  stream_actor stream;
  self
    ->request(conn, 5s, open_atom::value,
              wire::owned_frame{wire::owned_stream_init{1, "kv", ""}},
              caf::actor{self})
    .receive(
      [&](stream_actor& s) {
        stream = s;
      },
      [](caf::error& e) {
        ADD_FAILURE() << to_string(from_caf_error(e));
      });
  ASSERT_TRUE(stream);
  error reason;
  bool ended = false;
  self->receive_while([&] {
    return !ended;
  })([&](stream_frames&) {},
     [&](stream_end& e) {
       reason = e.reason;
       ended = true;
     },
     caf::after(std::chrono::seconds{10}) >>
       [&] {
         ended = true;
       });
  // Refused in words: STREAM_ERROR with the code and the reason.
  EXPECT_EQ(reason.code(), errc::unknown_application) << to_string(reason);
  EXPECT_NE(reason.context().find("no application 'kv' on node-b"),
            std::string::npos)
    << to_string(reason);
  // The connection itself is unharmed.
  EXPECT_EQ(connected(a), std::set<std::string>{"node-b"}) << describe_all();
}

} // namespace
