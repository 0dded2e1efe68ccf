// SPDX-License-Identifier: Apache-2.0
// The membership actor over real sockets: several nodes in one process on
// 127.0.0.x, one reactor, one CAF system. Waits are on conditions with
// deadlines; failures print each node's table.
#include "mycorrizal/cluster/membership.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include "support/eventually.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <thread>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

class membership_test : public ::testing::Test {
protected:
  void SetUp() override {
    // The system keeps a reference to its config: it must outlive it.
    cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    reactor_ = std::make_shared<net::reactor>();
    ASSERT_TRUE(reactor_->start());
  }

  void TearDown() override {
    for (auto& n : nodes_) {
      caf::anon_send_exit(n.actor, caf::exit_reason::user_shutdown);
    }
    nodes_.clear();
    sys_->await_all_actors_done();
    reactor_->stop();
    sys_.reset();
  }

  /// Starts node `name` on 127.0.0.<host> with the local profile.
  membership_handle start(const std::string& name, uint8_t host,
                          const std::string& key = {}) {
    membership_options opts;
    opts.gossip = gossip::membership_config::local_defaults();
    opts.gossip.name = name;
    if (!key.empty()) {
      gossip::byte_buffer k;
      for (char c : key) {
        k.push_back(static_cast<std::byte>(c));
      }
      EXPECT_TRUE(opts.gossip.keys.install(k));
    }
    opts.bind = ip_endpoint::v4(127, 0, 0, host, 0);
    opts.reactor = reactor_;
    auto h = spawn_membership(*sys_, std::move(opts));
    EXPECT_TRUE(h) << to_string(h.error());
    nodes_.push_back(*h);
    return *h;
  }

  std::vector<gossip::member> members(const membership_actor& a) {
    std::vector<gossip::member> out;
    caf::scoped_actor self{*sys_};
    self->request(a, 5s, members_atom::value)
      .receive(
        [&](std::vector<gossip::member>& m) {
          out = std::move(m);
        },
        [&](caf::error&) {});
    return out;
  }

  std::optional<gossip::node_state> state_of(const membership_actor& a,
                                             const std::string& name) {
    for (auto& m : members(a)) {
      if (m.name == name) {
        return m.state;
      }
    }
    return std::nullopt;
  }

  std::string describe(const membership_actor& a) {
    std::string out;
    for (auto& m : members(a)) {
      out += m.name + "=" + std::to_string(static_cast<int>(m.state)) + " ";
    }
    return out;
  }

  bool eventually(const std::function<bool()>& pred,
                  clock_type::duration limit) {
    return test::eventually(pred, limit);
  }

  expected<uint64_t> join(const membership_actor& a,
                          std::vector<std::string> seeds) {
    expected<uint64_t> out{unexpected{error{errc::timeout, "no reply"}}};
    caf::scoped_actor self{*sys_};
    self->request(a, 10s, join_atom::value, std::move(seeds))
      .receive(
        [&](uint64_t n) {
          out = n;
        },
        [&](caf::error& e) {
          out = unexpected{from_caf_error(e)};
        });
    return out;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<net::reactor> reactor_;
  std::vector<membership_handle> nodes_;
};

TEST_F(membership_test, three_nodes_join_and_see_each_other) {
  auto a = start("a", 51);
  auto b = start("b", 52);
  auto c = start("c", 53);
  ASSERT_EQ(join(b.actor, {a.local.to_string()}).value_or(0), 1u);
  ASSERT_EQ(join(c.actor, {b.local.to_string()}).value_or(0), 1u);
  auto all_alive = [&] {
    for (auto* n : {&a, &b, &c}) {
      for (auto name : {"a", "b", "c"}) {
        if (state_of(n->actor, name) != gossip::node_state::alive) {
          return false;
        }
      }
    }
    return true;
  };
  // a hears of c by gossip, which may spend the local profile's few
  // transmissions of "c is alive" (b's and c's own) on packets to b and c;
  // then by its push/pull with either (every 15 s), as in memberlist. A
  // loaded CI machine once left a without c for 10 s.
  EXPECT_TRUE(eventually(all_alive, 25s))
    << describe(a.actor) << "| " << describe(c.actor);
}

TEST_F(membership_test, subscribers_get_events_and_a_stopped_node_dies) {
  auto a = start("a", 54);
  auto b = start("b", 55);
  auto c = start("c", 56);
  caf::scoped_actor sub{*sys_};
  std::vector<gossip::member> snapshot;
  sub->request(a.actor, 5s, subscribe_atom::value, caf::actor{sub})
    .receive(
      [&](std::vector<gossip::member>& m) {
        snapshot = m;
      },
      [&](caf::error& e) {
        FAIL() << to_string(from_caf_error(e));
      });
  ASSERT_EQ(snapshot.size(), 1u);
  ASSERT_TRUE(join(b.actor, {a.local.to_string()}));
  ASSERT_TRUE(join(c.actor, {a.local.to_string()}));
  std::set<std::string> joined;
  auto deadline = clock_type::now() + 10s;
  while (joined.size() < 2 && clock_type::now() < deadline) {
    sub->receive(
      [&](gossip::member_event& e) {
        if (e.kind == gossip::member_event_kind::joined) {
          joined.insert(e.who.name);
        }
      },
      caf::after(1s) >> [] {});
  }
  ASSERT_EQ(joined, (std::set<std::string>{"b", "c"}));
  // b hears of c from a: by gossip, which may spend the local profile's
  // few transmissions of "c is alive" on a's packets to c itself, else by
  // its push/pull with a (every 15 s). As memberlist, b ignores suspicion
  // and death of a member it never heard of, so c dies after that (CI
  // once killed it before b knew it, and b never saw it dead).
  ASSERT_TRUE(eventually(
    [&] {
      return state_of(b.actor, "c") == gossip::node_state::alive;
    },
    20s))
    << describe(b.actor);
  // A crash (no leave) is found by probing: dead within memberlist's
  // bound for the local profile (1 s probes, 3 s..18 s suspicion).
  caf::anon_send_exit(c.actor, caf::exit_reason::kill);
  auto t0 = clock_type::now();
  bool dead = false;
  deadline = t0 + 25s;
  while (!dead && clock_type::now() < deadline) {
    sub->receive(
      [&](gossip::member_event& e) {
        dead = dead
               || (e.kind == gossip::member_event_kind::dead
                   && e.who.name == "c");
      },
      caf::after(1s) >> [] {});
  }
  ASSERT_TRUE(dead) << describe(a.actor);
  std::printf("stopped node reported dead after %.2f s\n",
              std::chrono::duration<double>(clock_type::now() - t0).count());
  EXPECT_TRUE(eventually(
    [&] {
      return state_of(b.actor, "c") == gossip::node_state::dead;
    },
    5s))
    << describe(b.actor);
}

TEST_F(membership_test, leave_completes_and_is_seen_as_left) {
  auto a = start("a", 57);
  auto b = start("b", 58);
  ASSERT_TRUE(join(b.actor, {a.local.to_string()}));
  ASSERT_TRUE(eventually(
    [&] {
      return state_of(a.actor, "b") == gossip::node_state::alive;
    },
    5s));
  caf::scoped_actor self{*sys_};
  bool done = false;
  self->request(b.actor, 10s, leave_atom::value, caf::timespan{3s})
    .receive(
      [&] {
        done = true;
      },
      [&](caf::error& e) {
        FAIL() << to_string(from_caf_error(e));
      });
  EXPECT_TRUE(done);
  EXPECT_TRUE(eventually(
    [&] {
      return state_of(a.actor, "b") == gossip::node_state::left;
    },
    5s))
    << describe(a.actor);
  // After leaving, meta updates are refused.
  self->request(b.actor, 5s, update_atom::value, std::string{"x"})
    .receive(
      [] {
        FAIL() << "update after leave succeeded";
      },
      [&](caf::error& e) {
        EXPECT_EQ(from_caf_error(e).code(), errc::shutting_down);
      });
}

TEST_F(membership_test, meta_update_reaches_the_other_node) {
  auto a = start("a", 59);
  auto b = start("b", 60);
  ASSERT_TRUE(join(b.actor, {a.local.to_string()}));
  caf::scoped_actor self{*sys_};
  self->request(b.actor, 5s, update_atom::value, std::string{"zone=b"})
    .receive([] {},
             [&](caf::error& e) {
               FAIL() << to_string(from_caf_error(e));
             });
  auto meta_seen = [&] {
    for (auto& m : members(a.actor)) {
      if (m.name == "b" && m.meta.size() == 6) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(eventually(meta_seen, 5s));
  self->request(b.actor, 5s, update_atom::value, std::string(600, 'x'))
    .receive(
      [] {
        FAIL() << "oversized meta accepted";
      },
      [&](caf::error& e) {
        EXPECT_EQ(from_caf_error(e).code(), errc::too_large);
      });
}

TEST_F(membership_test, join_errors_name_the_seed) {
  auto a = start("a", 61);
  // A port where nobody listens: connection refused at once.
  auto r = join(a.actor, {"127.0.0.61:1"});
  ASSERT_FALSE(r);
  const auto& e = r.error();
  EXPECT_EQ(e.code(), errc::connection_lost);
  EXPECT_NE(e.context().find("127.0.0.61:1"), std::string::npos) << e.context();
  auto bad = join(a.actor, {"not-an-address"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), errc::invalid_config);
}

TEST_F(membership_test, keyed_nodes_form_and_a_wrong_key_is_refused) {
  std::string key(32, 'k');
  auto a = start("a", 62, key);
  auto b = start("b", 63, key);
  auto c = start("c", 64, std::string(32, 'x'));
  ASSERT_EQ(join(b.actor, {a.local.to_string()}).value_or(0), 1u);
  auto r = join(c.actor, {a.local.to_string()});
  EXPECT_FALSE(r);
  EXPECT_TRUE(eventually(
    [&] {
      return state_of(a.actor, "b") == gossip::node_state::alive;
    },
    5s));
  EXPECT_EQ(state_of(a.actor, "c"), std::nullopt);
  // Keyring operations: rotation without downtime.
  caf::scoped_actor self{*sys_};
  std::string next(16, 'n');
  for (auto* n : {&a, &b}) {
    self->request(n->actor, 5s, keyop_atom::value, key_op::install, next)
      .receive([] {},
               [&](caf::error& e) {
                 FAIL() << to_string(from_caf_error(e));
               });
  }
  for (auto* n : {&a, &b}) {
    self->request(n->actor, 5s, keyop_atom::value, key_op::use, next)
      .receive([] {},
               [&](caf::error& e) {
                 FAIL() << to_string(from_caf_error(e));
               });
  }
  self->request(a.actor, 5s, keyop_atom::value, key_op::remove, next)
    .receive(
      [] {
        FAIL() << "removed the primary key";
      },
      [&](caf::error& e) {
        EXPECT_EQ(from_caf_error(e).code(), errc::invalid_config);
      });
  self
    ->request(a.actor, 5s, keyop_atom::value, key_op::install,
              std::string{"short"})
    .receive(
      [] {
        FAIL() << "accepted a 5-byte key";
      },
      [](caf::error&) {});
  std::vector<std::string> keys;
  self->request(a.actor, 5s, keys_atom::value)
    .receive(
      [&](std::vector<std::string>& k) {
        keys = k;
      },
      [](caf::error&) {});
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], next);
  // Still one cluster after the rotation.
  auto b_alive_for_a = [&] {
    return state_of(a.actor, "b") == gossip::node_state::alive;
  };
  EXPECT_TRUE(b_alive_for_a());
}

TEST_F(membership_test, garbage_on_the_port_is_dropped_and_counted) {
  auto a = start("a", 65);
  auto b = start("b", 66);
  ASSERT_TRUE(join(b.actor, {a.local.to_string()}));
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(a.local.port());
  to.sin_addr.s_addr = htonl(0x7f000041); // 127.0.0.65
  std::mt19937 rng{1};
  for (int i = 0; i < 200; ++i) {
    std::vector<unsigned char> junk(static_cast<size_t>(rng() % 1400));
    for (auto& x : junk) {
      x = static_cast<unsigned char>(rng());
    }
    ::sendto(fd, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr*>(&to),
             sizeof(to));
  }
  ::close(fd);
  caf::scoped_actor self{*sys_};
  auto dropped = [&] {
    uint64_t n = 0;
    self->request(a.actor, 5s, stats_atom::value)
      .receive(
        [&](membership_counters& c) {
          n = c.core.packets_dropped + c.core.messages_dropped;
        },
        [](caf::error&) {});
    return n;
  };
  EXPECT_TRUE(eventually(
    [&] {
      return dropped() >= 200;
    },
    5s))
    << dropped();
  EXPECT_EQ(state_of(a.actor, "b"), gossip::node_state::alive);
  EXPECT_EQ(members(a.actor).size(), 2u);
}

TEST_F(membership_test, stopping_closes_every_socket) {
  auto a = start("a", 67);
  auto b = start("b", 68);
  ASSERT_TRUE(join(b.actor, {a.local.to_string()}));
  EXPECT_GE(reactor_->stats().open_udp_sockets, 2u);
  for (auto& n : nodes_) {
    caf::anon_send_exit(n.actor, caf::exit_reason::user_shutdown);
  }
  nodes_.clear();
  sys_->await_all_actors_done();
  EXPECT_TRUE(eventually(
    [&] {
      auto s = reactor_->stats();
      return s.open_udp_sockets == 0 && s.open_tcp_listeners == 0
             && s.open_tcp_connections == 0;
    },
    5s));
  // The port is free again.
  auto again = start("a2", 67);
  EXPECT_NE(again.actor, caf::actor{});
}

TEST_F(membership_test, binding_a_taken_port_fails_cleanly) {
  auto a = start("a", 69);
  membership_options opts;
  opts.gossip = gossip::membership_config::local_defaults();
  opts.gossip.name = "dup";
  opts.bind = a.local;
  opts.reactor = reactor_;
  auto h = spawn_membership(*sys_, std::move(opts));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), errc::connection_lost);
  membership_options bad;
  bad.reactor = reactor_;
  auto nameless = spawn_membership(*sys_, std::move(bad));
  ASSERT_FALSE(nameless);
  EXPECT_EQ(nameless.error().code(), errc::invalid_config);
}

} // namespace
