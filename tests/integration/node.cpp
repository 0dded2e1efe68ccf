// SPDX-License-Identifier: Apache-2.0
// Nodes in one actor system on 127.0.0.x with real sockets: formation,
// messaging, request/response (raw and typed), errors, remote death watch,
// restart, isolation between applications, and a stop that leaves nothing.
#include "mycorrizal/node.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include "support/eventually.hpp"
#include "support/test_pki.hpp"

#include <caf/all.hpp>

#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

/// A typed message of the tests (registered for serialization).
struct point {
  int32_t x = 0;
  int32_t y = 0;
  std::string label;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("test_point"), p.x, p.y, p.label);
}

/// A typed message no node registers.
struct unregistered {
  int32_t v = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, unregistered& u) {
  return f(caf::meta::type_name("test_unregistered"), u.v);
}

std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Collects what a handler received, for the test thread to inspect.
struct inbox {
  std::mutex mtx;
  std::vector<app_message> messages;
  std::vector<point> points;

  size_t size() {
    std::lock_guard<std::mutex> guard{mtx};
    return messages.size();
  }

  std::vector<app_message> copy() {
    std::lock_guard<std::mutex> guard{mtx};
    return messages;
  }
};

/// A handler: records messages, answers raw requests with "<name>:<payload>",
/// doubles points, fails on "fail", never answers "hang".
caf::behavior recorder(caf::event_based_actor* self, std::string name,
                       std::shared_ptr<inbox> box) {
  return {
    [=](const app_message& m) {
      std::lock_guard<std::mutex> guard{box->mtx};
      box->messages.push_back(m);
    },
    [=](const app_request& r) -> caf::result<raw_bytes> {
      auto t = text(r.payload);
      if (t == "fail") {
        return make_caf_error(error{errc::invalid_config, "asked to fail"});
      }
      if (t == "hang") {
        // A promise nobody fulfils: the request is never answered.
        return self->make_response_promise();
      }
      return raw_bytes{bytes(name + ":" + t)};
    },
    [=](point& p) {
      {
        std::lock_guard<std::mutex> guard{box->mtx};
        box->points.push_back(p);
      }
      return point{p.x * 2, p.y * 2, name};
    },
    [=](const std::string& s) {
      // Answers a typed one-way message by sending back to its sender (the
      // handle of the remote node's application).
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 point{static_cast<int32_t>(s.size()), 0, "echo:" + s});
    },
  };
}

class node_test : public ::testing::Test {
protected:
  void SetUp() override {
    add_error_category(cfg_);
    cfg_.add_message_type<point>("test_point");
    cfg_.set("scheduler.max-threads", 4);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  void TearDown() override {
    for (auto& [name, n] : nodes_) {
      n->stop();
    }
    nodes_.clear();
    sys_.reset();
  }

  node_config config(const std::string& name, uint8_t host,
                     uint16_t gossip_port = 0, uint16_t quic_port = 0) {
    auto cfg = node_config::local(name);
    cfg.credentials = test::test_pki::get().credentials(name);
    cfg.gossip_bind = ip_endpoint::v4(127, 0, 0, host, gossip_port);
    cfg.quic_bind = ip_endpoint::v4(127, 0, 0, host, quic_port);
    return cfg;
  }

  node& start(node_config cfg) {
    auto name = cfg.name;
    auto n = node::start(*sys_, std::move(cfg));
    EXPECT_TRUE(n) << (n ? "" : to_string(n.error()));
    if (!n) {
      throw std::runtime_error("cannot start " + name);
    }
    auto& ref = **n;
    nodes_[name] = *n;
    return ref;
  }

  /// Starts `name` on 127.0.0.<host>, joining `seed` (if any).
  node& start(const std::string& name, uint8_t host, const node* seed) {
    auto cfg = config(name, host);
    if (seed != nullptr) {
      cfg.seeds.push_back(seed->gossip_endpoint().to_string());
    }
    return start(std::move(cfg));
  }

  /// Waits until every node has a connection to every other one.
  void wait_mesh(std::initializer_list<node*> ns) {
    for (auto* n : ns) {
      std::vector<peer_info> last;
      bool ok = test::eventually(
        [&] {
          auto c = n->connections();
          if (!c) {
            return false;
          }
          last = *c;
          size_t up = 0;
          for (auto& p : last) {
            up += (p.connection && p.version > 0) ? 1 : 0;
          }
          return up == ns.size() - 1;
        },
        20s);
      std::string seen;
      for (auto& p : last) {
        seen += p.name + (p.connection ? "(up) " : "(down) ");
      }
      ASSERT_TRUE(ok) << n->name() << " sees: " << seen;
    }
  }

  /// Waits until `n` knows that each of `others` runs `app`.
  void wait_app(node& n, const std::string& app,
                std::vector<std::string> others) {
    std::sort(others.begin(), others.end());
    std::vector<std::string> last;
    ASSERT_TRUE(test::eventually(
      [&] {
        auto x = n.nodes(app);
        if (x) {
          last = *x;
          std::sort(last.begin(), last.end());
        }
        return last == others;
      },
      20s))
      << n.name() << " lists " << last.size() << " nodes for " << app;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::map<std::string, std::shared_ptr<node>> nodes_;
};

// -- formation
// -----------------------------------------------------------------

TEST_F(node_test, three_nodes_form_a_full_mesh_and_signal_ready) {
  auto& a = start("node-a", 1, nullptr);
  EXPECT_TRUE(a.wait_ready(5s)) << "a node without seeds is ready at once";
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  EXPECT_TRUE(b.wait_ready(10s));
  EXPECT_TRUE(c.wait_ready(10s));
  EXPECT_EQ(b.seeds_joined(), 1u);
  wait_mesh({&a, &b, &c});
  auto members = a.members();
  ASSERT_TRUE(members);
  EXPECT_EQ(members->size(), 3u);
}

TEST_F(node_test, ready_comes_once_also_when_no_seed_answers) {
  auto cfg = config("node-lonely", 1);
  // A gossip port nobody listens on.
  cfg.seeds.push_back("127.0.0.9:9");
  auto& n = start(std::move(cfg));
  EXPECT_TRUE(n.wait_ready(20s));
  EXPECT_EQ(n.seeds_joined(), 0u);
  n.stop();
  n.stop(); // idempotent
  EXPECT_TRUE(n.stopped());
  auto r = n.nodes("x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::shutting_down);
}

TEST_F(node_test, a_node_started_before_its_seed_joins_once_the_seed_is_up) {
  // node-late's seed is a fixed address where nothing runs yet: its first
  // join fails (ready, alone), then it retries until the seed answers.
  auto seed_addr = ip_endpoint::v4(127, 0, 0, 14, 17946);
  auto cfg = config("node-late", 13);
  cfg.seeds.push_back(seed_addr.to_string());
  auto& late = start(std::move(cfg));
  ASSERT_TRUE(late.wait_ready(20s));
  EXPECT_EQ(late.seeds_joined(), 0u);
  auto& seed = start(config("node-seed", 14, 17946));
  wait_mesh({&late, &seed});
  auto m = seed.members();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size(), 2u);
}

TEST_F(node_test, bad_configuration_is_refused_with_the_field) {
  auto cfg = node_config::local("bad name!");
  cfg.data_dir = "/tmp/unused";
  auto n = node::start(*sys_, cfg);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code(), errc::invalid_identifier);
  auto cfg2 = config("node-x", 1);
  cfg2.credentials = test::test_pki::get().credentials("node-y");
  auto n2 = node::start(*sys_, cfg2);
  ASSERT_FALSE(n2);
  EXPECT_EQ(n2.error().code(), errc::invalid_config);
  EXPECT_NE(n2.error().context().find("node-y"), std::string::npos);
}

// -- messaging
// -----------------------------------------------------------------

TEST_F(node_test, send_and_broadcast_reach_the_others_and_not_ourselves) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  std::map<std::string, std::shared_ptr<inbox>> boxes;
  for (auto* n : {&a, &b, &c}) {
    auto box = std::make_shared<inbox>();
    boxes[n->name()] = box;
    ASSERT_TRUE(n->register_app("chat", sys_->spawn(recorder, n->name(), box)));
  }
  wait_app(a, "chat", {"node-b", "node-c"});
  auto reached = a.broadcast("chat", bytes("hello all"));
  ASSERT_TRUE(reached) << to_string(reached.error());
  EXPECT_EQ(*reached, (std::vector<std::string>{"node-b", "node-c"}));
  for (auto name : {"node-b", "node-c"}) {
    ASSERT_TRUE(test::eventually(
      [&] {
        return boxes[name]->size() == 1;
      },
      10s))
      << name << " got " << boxes[name]->size();
    auto m = boxes[name]->copy().front();
    EXPECT_EQ(m.node, "node-a");
    EXPECT_EQ(m.application, "chat");
    EXPECT_EQ(m.stream, "");
    EXPECT_EQ(text(m.payload), "hello all");
  }
  // Point to point, b -> a: a gets exactly that one (its own broadcast
  // never came back to it).
  wait_app(b, "chat", {"node-a", "node-c"});
  ASSERT_TRUE(b.send("chat", {"node-a"}, bytes("to a")));
  ASSERT_TRUE(test::eventually(
    [&] {
      return boxes["node-a"]->size() == 1;
    },
    10s));
  auto got = boxes["node-a"]->copy();
  EXPECT_EQ(text(got.front().payload), "to a");
  EXPECT_EQ(got.front().node, "node-b");
  auto stats = a.stats();
  ASSERT_TRUE(stats);
  ASSERT_FALSE(stats->empty());
  EXPECT_EQ(stats->front().application, "chat");
  EXPECT_EQ(stats->front().streams.front().messages_out, 2u);
  EXPECT_EQ(stats->front().streams.front().messages_in, 1u);
}

TEST_F(node_test, three_apps_with_a_hundred_messages_each_stay_apart) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  std::vector<std::string> apps{"app-1", "app-2", "app-3"};
  std::map<std::string, std::shared_ptr<inbox>> boxes;
  for (auto& app : apps) {
    boxes[app] = std::make_shared<inbox>();
    ASSERT_TRUE(b.register_app(app, sys_->spawn(recorder, "b", boxes[app])));
  }
  for (auto& app : apps) {
    wait_app(a, app, {"node-b"});
  }
  // Interleaved, from several threads at once.
  std::vector<std::thread> senders;
  for (auto& app : apps) {
    senders.emplace_back([&, app] {
      for (int i = 0; i < 100; ++i) {
        EXPECT_TRUE(
          a.send(app, {"node-b"}, bytes(app + "#" + std::to_string(i))));
      }
    });
  }
  for (auto& t : senders) {
    t.join();
  }
  for (auto& app : apps) {
    ASSERT_TRUE(test::eventually(
      [&] {
        return boxes[app]->size() == 100;
      },
      10s))
      << app << " got " << boxes[app]->size();
    auto got = boxes[app]->copy();
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(text(got[static_cast<size_t>(i)].payload),
                app + "#" + std::to_string(i))
        << "in order, and only this application's";
      EXPECT_EQ(got[static_cast<size_t>(i)].application, app);
    }
  }
}

TEST_F(node_test, named_streams_have_their_own_handler_and_stats) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto app_box = std::make_shared<inbox>();
  auto stream_box = std::make_shared<inbox>();
  ASSERT_TRUE(b.register_app("mycel", sys_->spawn(recorder, "b", app_box)));
  ASSERT_TRUE(b.create_stream("mycel", "bucket:users",
                              sys_->spawn(recorder, "b", stream_box)));
  auto list = b.list_streams("mycel");
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, std::vector<std::string>{"bucket:users"});
  wait_app(a, "mycel", {"node-b"});
  ASSERT_TRUE(a.send("mycel", {"node-b"}, bytes("default")));
  ASSERT_TRUE(a.send("mycel", {"node-b"}, bytes("users"), "bucket:users"));
  ASSERT_TRUE(test::eventually(
    [&] {
      return app_box->size() == 1 && stream_box->size() == 1;
    },
    10s));
  EXPECT_EQ(text(app_box->copy().front().payload), "default");
  auto m = stream_box->copy().front();
  EXPECT_EQ(text(m.payload), "users");
  EXPECT_EQ(m.stream, "bucket:users");
  auto reply = a.request("node-b", "mycel", bytes("q"), 5s, "bucket:users");
  ASSERT_TRUE(reply) << to_string(reply.error());
  EXPECT_EQ(text(*reply), "b:q");
  auto stats = b.stats();
  ASSERT_TRUE(stats);
  bool found = false;
  for (auto& s : stats->front().streams) {
    if (s.name == "bucket:users") {
      found = true;
      EXPECT_EQ(s.messages_in, 2u);
      EXPECT_EQ(s.active_nodes, std::vector<std::string>{"node-a"});
      EXPECT_GE(s.last_active, s.created);
    }
  }
  EXPECT_TRUE(found);
  ASSERT_TRUE(b.close_stream("mycel", "bucket:users"));
  list = b.list_streams("mycel");
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());
}

// -- request / response
// --------------------------------------------------------

TEST_F(node_test, a_thousand_concurrent_requests_are_all_answered) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(b.register_app("calc", sys_->spawn(recorder, "b",
                                                 std::make_shared<inbox>())));
  wait_app(a, "calc", {"node-b"});
  std::vector<std::future<expected<std::vector<std::byte>>>> futures;
  for (int i = 0; i < 1000; ++i) {
    futures.push_back(
      a.request_async("node-b", "calc", bytes(std::to_string(i)), 20s));
  }
  int ok = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = futures[static_cast<size_t>(i)].get();
    ASSERT_TRUE(r) << i << ": " << to_string(r.error());
    EXPECT_EQ(text(*r), "b:" + std::to_string(i));
    ok += text(*r) == "b:" + std::to_string(i) ? 1 : 0;
  }
  EXPECT_EQ(ok, 1000);
}

TEST_F(node_test, messages_larger_than_every_window_and_queue_arrive_whole) {
  // 12 MiB: above the stream window (1 MiB), the stream actor's queue
  // (8 MiB), a handle's queue (8 MiB) and the unanswered-delivery budget
  // (4 MiB), below max_message_size. Each must still go through whole.
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto box = std::make_shared<inbox>();
  ASSERT_TRUE(b.register_app("bulk", sys_->spawn(recorder, "b", box)));
  wait_app(a, "bulk", {"node-b"});
  std::vector<std::byte> big(size_t{12} << 20);
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<std::byte>((i * 131) >> 7);
  }
  ASSERT_TRUE(a.send("bulk", {"node-b"}, big));
  ASSERT_TRUE(test::eventually(
    [&] {
      return box->size() == 1;
    },
    30s))
    << "messages received: " << box->size();
  auto got = box->copy();
  EXPECT_EQ(got[0].node, "node-a");
  EXPECT_TRUE(got[0].payload == big)
    << "received " << got[0].payload.size() << " bytes of " << big.size();
  // A request of the same size, answered with "b:" + the payload.
  auto r = a.request("node-b", "bulk", big, 30s);
  ASSERT_TRUE(r) << to_string(r.error());
  ASSERT_EQ(r->size(), big.size() + 2);
  EXPECT_EQ(text({r->begin(), r->begin() + 2}), "b:");
  EXPECT_TRUE(std::equal(r->begin() + 2, r->end(), big.begin()));
}

TEST_F(node_test, typed_messages_through_a_remote_handle) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto a_box = std::make_shared<inbox>();
  auto b_box = std::make_shared<inbox>();
  ASSERT_TRUE(a.register_app("geo", sys_->spawn(recorder, "a", a_box)));
  ASSERT_TRUE(b.register_app("geo", sys_->spawn(recorder, "b", b_box)));
  wait_app(a, "geo", {"node-b"});
  auto handle = a.remote("node-b", "geo");
  ASSERT_TRUE(handle) << to_string(handle.error());
  caf::scoped_actor self{*sys_};
  // A typed request: the remote handler's reply comes back typed.
  bool answered = false;
  self->request(*handle, 5s, point{3, 4, "p"})
    .receive(
      [&](point& p) {
        answered = true;
        EXPECT_EQ(p.x, 6);
        EXPECT_EQ(p.y, 8);
        EXPECT_EQ(p.label, "b");
      },
      [&](caf::error& e) {
        ADD_FAILURE() << to_string(from_caf_error(e));
      });
  EXPECT_TRUE(answered);
  // A typed one-way message; b's handler answers to its sender, which is
  // b's handle for a: the answer reaches a's handler.
  self->send(*handle, std::string{"ping"});
  ASSERT_TRUE(test::eventually(
    [&] {
      std::lock_guard<std::mutex> guard{a_box->mtx};
      return a_box->points.size() == 1;
    },
    10s));
  {
    std::lock_guard<std::mutex> guard{a_box->mtx};
    EXPECT_EQ(a_box->points.front().label, "echo:ping");
    EXPECT_EQ(a_box->points.front().x, 4);
  }
  // A type nobody registered cannot travel: a clear error, nothing sent.
  self->request(*handle, 5s, unregistered{1})
    .receive(
      [&](caf::message&) {
        ADD_FAILURE() << "unexpected answer";
      },
      [&](caf::error& e) {
        EXPECT_EQ(from_caf_error(e).code(), errc::not_serializable)
          << to_string(from_caf_error(e));
      });
  // The same handle, typed: what it takes and answers is checked when this
  // test compiles (a `point` request answered with a `point`).
  using geo_actor = caf::typed_actor<caf::replies_to<point>::with<point>,
                                     caf::reacts_to<std::string>>;
  auto typed = a.remote_as<geo_actor>("node-b", "geo");
  ASSERT_TRUE(typed) << to_string(typed.error());
  bool typed_answered = false;
  self->request(*typed, 5s, point{1, 2, "q"})
    .receive(
      [&](point& p) {
        typed_answered = true;
        EXPECT_EQ(p.x, 2);
        EXPECT_EQ(p.label, "b");
      },
      [&](caf::error& e) {
        ADD_FAILURE() << to_string(from_caf_error(e));
      });
  EXPECT_TRUE(typed_answered);
  // Not a member: the same error as `remote`.
  auto nobody = a.remote_as<geo_actor>("node-z", "geo");
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().code(), errc::node_down)
    << to_string(nobody.error());
  // A message the remote handler has no case for.
  self->request(*handle, 5s, 1.5)
    .receive(
      [&](caf::message&) {
        ADD_FAILURE() << "unexpected answer";
      },
      [&](caf::error& e) {
        EXPECT_EQ(from_caf_error(e).code(), errc::no_handler)
          << to_string(from_caf_error(e));
      });
}

TEST_F(node_test, request_errors_are_clear) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(b.register_app("calc", sys_->spawn(recorder, "b",
                                                 std::make_shared<inbox>())));
  ASSERT_TRUE(b.register_app("silent", app_callbacks{}));
  wait_app(a, "calc", {"node-b"});
  // Timeout: not before 200 ms, and well before 2 s.
  auto t0 = std::chrono::steady_clock::now();
  auto r = a.request("node-b", "calc", bytes("hang"), 200ms);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::timeout) << to_string(r.error());
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 2s);
  // The handler's error, with its text.
  r = a.request("node-b", "calc", bytes("fail"), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_config);
  EXPECT_NE(r.error().context().find("asked to fail"), std::string::npos)
    << to_string(r.error());
  // An application without a request handler.
  r = a.request("node-b", "silent", bytes("x"), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::no_handler) << to_string(r.error());
  // An application the node does not run.
  r = a.request("node-b", "nope", bytes("x"), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::unknown_application)
    << to_string(r.error());
  EXPECT_NE(r.error().context().find("nope"), std::string::npos);
  // A node that is not a member.
  r = a.request("node-zz", "calc", bytes("x"), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::node_down) << to_string(r.error());
  // Too large.
  app_options small;
  small.max_message_size = 1024;
  ASSERT_TRUE(a.register_app(
    "tiny", sys_->spawn(recorder, "a", std::make_shared<inbox>()), small));
  auto big = a.remote("node-b", "tiny");
  ASSERT_TRUE(big);
  caf::scoped_actor self{*sys_};
  self->request(*big, 5s, std::string(4096, 'x'))
    .receive(
      [&](caf::message&) {
        ADD_FAILURE() << "unexpected answer";
      },
      [&](caf::error& e) {
        EXPECT_EQ(from_caf_error(e).code(), errc::too_large)
          << to_string(from_caf_error(e));
      });
  // After all that, the application still answers.
  r = a.request("node-b", "calc", bytes("ok"), 5s);
  ASSERT_TRUE(r) << to_string(r.error());
  EXPECT_EQ(text(*r), "b:ok");
}

// A handler that ends with requests in its mailbox: they, and those that
// reach the node before its router has unregistered the application, end
// as requests to an application the node does not run.
TEST_F(node_test, requests_to_a_handler_that_ended_end_unknown_application) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  // Takes one request, then ends without answering it.
  auto brittle = sys_->spawn([](caf::event_based_actor* self) {
    return caf::behavior{
      [=](const app_request&) -> caf::result<raw_bytes> {
        self->quit();
        return self->make_response_promise<raw_bytes>();
      },
    };
  });
  ASSERT_TRUE(b.register_app("brittle", brittle));
  wait_app(a, "brittle", {"node-b"});
  // Sent together, so that most wait in the handler's mailbox when it ends.
  std::vector<std::future<expected<std::vector<std::byte>>>> futs;
  for (int i = 0; i < 16; ++i) {
    futs.push_back(
      a.request_async("node-b", "brittle", bytes("r" + std::to_string(i)), 2s));
  }
  int gone = 0;
  std::map<std::string, int> seen;
  for (auto& f : futs) {
    auto r = f.get();
    ASSERT_FALSE(r) << "a request was answered";
    ++seen[std::string{to_string(r.error().code())}];
    if (r.error().code() == errc::unknown_application) {
      ++gone;
      continue;
    }
    // Only the request the handler took and never answered may time out.
    EXPECT_EQ(r.error().code(), errc::timeout) << to_string(r.error());
  }
  std::string what;
  for (auto& [code, n] : seen) {
    what += " " + code + " x" + std::to_string(n);
  }
  EXPECT_GE(gone, 15) << "seen:" << what;
  // The node still serves its other applications.
  ASSERT_TRUE(b.register_app("calc", sys_->spawn(recorder, "b",
                                                 std::make_shared<inbox>())));
  wait_app(a, "calc", {"node-b"});
  auto r = a.request("node-b", "calc", bytes("ok"), 5s);
  ASSERT_TRUE(r) << to_string(r.error());
}

// -- failure
// -------------------------------------------------------------------

TEST_F(node_test, node_down_reaches_watchers_and_a_restart_resumes) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto cfg_c = config("node-c", 3);
  cfg_c.seeds.push_back(a.gossip_endpoint().to_string());
  auto& c = start(cfg_c);
  for (auto* n : {&a, &b, &c}) {
    ASSERT_TRUE(n->register_app(
      "calc", sys_->spawn(recorder, n->name(), std::make_shared<inbox>())));
  }
  wait_app(a, "calc", {"node-b", "node-c"});
  auto handle = a.remote("node-c", "calc");
  ASSERT_TRUE(handle);
  // A watcher with a pending request to c.
  auto down = std::make_shared<std::promise<error>>();
  auto watching = std::make_shared<std::promise<void>>();
  sys_->spawn([=](caf::event_based_actor* self) {
    self->monitor(*handle);
    self->set_down_handler([=](caf::down_msg& m) {
      down->set_value(from_caf_error(m.reason));
      self->quit();
    });
    // The handle works before c goes.
    self->request(*handle, 30s, point{1, 1, "before"})
      .then(
        [=](point&) {
          watching->set_value();
        },
        [=](caf::error& e) {
          ADD_FAILURE() << to_string(from_caf_error(e));
          watching->set_value();
        });
    return caf::behavior{[](int) {}};
  });
  ASSERT_EQ(watching->get_future().wait_for(10s), std::future_status::ready);
  // A request stays pending ("hang" is never answered) when c goes.
  auto pending = a.request_async("node-c", "calc", bytes("hang"), 30s);
  c.stop();
  auto d = down->get_future();
  ASSERT_EQ(d.wait_for(10s), std::future_status::ready);
  auto why = d.get();
  EXPECT_EQ(why.code(), errc::node_down) << to_string(why);
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  auto r = pending.get();
  ASSERT_FALSE(r);
  // Whichever a learns first: c's leave (node_down) or the close of its
  // connection (connection_lost); never a hang.
  EXPECT_TRUE(r.error().code() == errc::node_down
              || r.error().code() == errc::connection_lost)
    << to_string(r.error());
  // Restart c with the same name and addresses: messages resume.
  cfg_c.gossip_bind = c.gossip_endpoint();
  cfg_c.quic_bind = c.quic_endpoint();
  nodes_.erase("node-c");
  auto& c2 = start(cfg_c);
  ASSERT_TRUE(c2.register_app("calc", sys_->spawn(recorder, "c2",
                                                  std::make_shared<inbox>())));
  expected<std::vector<std::byte>> again = unexpected{error{errc::timeout}};
  ASSERT_TRUE(test::eventually(
    [&] {
      again = a.request("node-c", "calc", bytes("back"), 1s);
      return static_cast<bool>(again);
    },
    30s))
    << to_string(again.error());
  EXPECT_EQ(text(*again), "c2:back");
  // A new handle works; the old one stays dead.
  auto handle2 = a.remote("node-c", "calc");
  ASSERT_TRUE(handle2);
  EXPECT_NE(*handle2, *handle);
}

// node-b's QUIC packets to node-a are lost (a one-way fault; gossip is
// untouched, so both stay alive members). node-a reports node-b unreachable
// within unreachable_timeout (2 s in the local profile), fails the pending
// requests with connection_lost long before their timeout, lists node-b as
// unreachable, and connects again once the fault is gone.
TEST_F(node_test, a_one_way_fault_is_reported_unreachable_and_heals) {
  auto filter = std::make_shared<net::udp_filter>();
  auto cfg_a = config("node-a", 1);
  cfg_a.quic_filter = filter;
  auto unreachable_timeout = cfg_a.transport.unreachable_timeout;
  ASSERT_EQ(unreachable_timeout, 2s);
  auto& a = start(cfg_a);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(b.register_app("calc", sys_->spawn(recorder, "b",
                                                 std::make_shared<inbox>())));
  wait_mesh({&a, &b});
  wait_app(a, "calc", {"node-b"});
  auto first = a.request("node-b", "calc", bytes("ok"), 5s);
  ASSERT_TRUE(first) << to_string(first.error());
  caf::scoped_actor sub{*sys_};
  sub->request(a.peers(), 5s, subscribe_atom::value, caf::actor{sub})
    .receive([](std::vector<peer_info>&) {},
             [](caf::error& e) {
               ADD_FAILURE() << "subscribe: " << to_string(from_caf_error(e));
             });
  std::vector<std::string> seen;
  auto seen_text = [&] {
    std::string out;
    for (auto& x : seen) {
      out += "\n  " + x;
    }
    return out;
  };
  // A request that is never answered is in flight; then the fault starts,
  // and another request leaves into it.
  auto timeout = 20s;
  auto hanging = a.request_async("node-b", "calc", bytes("hang"), timeout);
  auto t0 = std::chrono::steady_clock::now();
  filter->block(b.quic_endpoint());
  auto lost = a.request_async("node-b", "calc", bytes("lost"), timeout);
  std::optional<peer_unreachable> report;
  std::optional<std::chrono::steady_clock::duration> report_after;
  bool down_after_report = false;
  auto deadline = t0 + unreachable_timeout + 5s;
  while (!down_after_report && std::chrono::steady_clock::now() < deadline) {
    sub->receive(
      [&](peer_unreachable& u) {
        seen.push_back("unreachable " + u.name + ": " + to_string(u.reason));
        if (u.name == "node-b" && !report) {
          report = std::move(u);
          report_after = std::chrono::steady_clock::now() - t0;
        }
      },
      [&](peer_down& d) {
        seen.push_back("down " + d.name + ": " + to_string(d.reason));
        if (d.name == "node-b" && report) {
          down_after_report = true;
          EXPECT_EQ(d.reason.code(), errc::connection_lost) << seen_text();
        }
      },
      [&](peer_up& u) {
        seen.push_back("up " + u.peer.name);
      },
      caf::after(std::chrono::duration_cast<caf::timespan>(
        deadline - std::chrono::steady_clock::now()))
        >> [] {});
  }
  ASSERT_TRUE(report) << "no peer_unreachable for node-b within "
                      << "unreachable_timeout + 5 s; saw:" << seen_text();
  auto secs = std::chrono::duration<double>(*report_after).count();
  std::printf("peer_unreachable %.3f s after the fault started: %s\n", secs,
              to_string(report->reason).c_str());
  EXPECT_LE(*report_after, unreachable_timeout + 1s) << seen_text();
  EXPECT_EQ(report->reason.code(), errc::connection_lost);
  EXPECT_NE(report->reason.context().find("peer unreachable"),
            std::string::npos)
    << to_string(report->reason);
  EXPECT_TRUE(down_after_report)
    << "no peer_down after peer_unreachable:" << seen_text();
  // Both requests end with connection_lost, long before their timeout.
  for (auto* f : {&hanging, &lost}) {
    ASSERT_EQ(f->wait_for(5s), std::future_status::ready)
      << "a request still pending 5 s after peer_unreachable";
    auto r = f->get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), errc::connection_lost) << to_string(r.error());
  }
  auto failed_after = std::chrono::steady_clock::now() - t0;
  std::printf("pending requests failed within %.3f s of the fault (timeout "
              "%lld s)\n",
              std::chrono::duration<double>(failed_after).count(),
              static_cast<long long>(timeout.count()));
  EXPECT_LT(failed_after, timeout / 2);
  // Membership still sees node-b alive; connections() says unreachable.
  auto members = a.members();
  ASSERT_TRUE(members);
  for (auto& m : *members) {
    if (m.name == "node-b") {
      EXPECT_NE(m.state, gossip::node_state::dead);
      EXPECT_NE(m.state, gossip::node_state::left);
    }
  }
  auto describe_peers = [&] {
    std::string out;
    if (auto c = a.connections()) {
      for (auto& p : *c) {
        out += "\n  " + p.name + (p.connection ? " up" : " down")
               + (p.unreachable ? " unreachable" : "");
      }
    }
    return out;
  };
  auto peer_b = [&]() -> std::optional<peer_info> {
    if (auto c = a.connections()) {
      for (auto& p : *c) {
        if (p.name == "node-b") {
          return p;
        }
      }
    }
    return std::nullopt;
  };
  auto now_b = peer_b();
  ASSERT_TRUE(now_b) << "node-b not listed:" << describe_peers();
  EXPECT_TRUE(now_b->unreachable) << describe_peers();
  EXPECT_FALSE(now_b->connection) << describe_peers();
  // While node-b is unreachable, a new request fails at once instead of
  // waiting (up to its timeout) for a redial the fault keeps failing.
  auto t1 = std::chrono::steady_clock::now();
  auto fast = a.request("node-b", "calc", bytes("fast"), 10s);
  auto fast_after = std::chrono::steady_clock::now() - t1;
  ASSERT_FALSE(fast) << "answered through a one-way fault?";
  EXPECT_EQ(fast.error().code(), errc::connection_lost)
    << to_string(fast.error());
  EXPECT_NE(fast.error().context().find("unreachable"), std::string::npos)
    << to_string(fast.error());
  EXPECT_LT(fast_after, 1s)
    << "took " << std::chrono::duration<double>(fast_after).count()
    << " s: " << to_string(fast.error());
  // The fault ends: the redial connects, the flag clears, requests work.
  filter->unblock(b.quic_endpoint());
  ASSERT_TRUE(test::eventually(
    [&] {
      auto p = peer_b();
      return p && p->connection && p->version > 0 && !p->unreachable;
    },
    20s))
    << "no connection to node-b 20 s after the fault ended:"
    << describe_peers();
  expected<std::vector<std::byte>> again = unexpected{error{errc::timeout}};
  ASSERT_TRUE(test::eventually(
    [&] {
      again = a.request("node-b", "calc", bytes("back"), 1s);
      return static_cast<bool>(again);
    },
    10s))
    << to_string(again.error());
  EXPECT_EQ(text(*again), "b:back");
}

TEST_F(node_test, an_untrusted_node_exchanges_no_data) {
  auto& a = start("node-a", 1, nullptr);
  auto cfg = config("node-evil", 2);
  auto& pki = test::test_pki::get();
  cfg.credentials
    = test::test_pki::load(pki.foreign_node("node-evil"),
                           pki.ca().cert_pem + pki.foreign_ca().cert_pem);
  cfg.seeds.push_back(a.gossip_endpoint().to_string());
  auto& evil = start(std::move(cfg));
  ASSERT_TRUE(evil.register_app(
    "calc", sys_->spawn(recorder, "evil", std::make_shared<inbox>())));
  // Gossip lets it in as a member (membership is not authenticated by the
  // certificate), but no QUIC connection ever comes up.
  ASSERT_TRUE(test::eventually(
    [&] {
      auto m = a.members();
      return m && m->size() == 2;
    },
    10s));
  auto r = a.request("node-evil", "calc", bytes("x"), 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::timeout) << to_string(r.error());
  auto conns = a.connections();
  ASSERT_TRUE(conns);
  for (auto& p : *conns) {
    EXPECT_FALSE(p.connection) << p.name;
  }
  auto stats = a.stats();
  ASSERT_TRUE(stats);
}

// -- isolation
// -----------------------------------------------------------------

TEST_F(node_test, a_blocked_handler_does_not_stop_another_application) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  // App 1's handler blocks its own thread until released.
  auto release = std::make_shared<std::promise<void>>();
  auto released = release->get_future().share();
  auto got = std::make_shared<std::atomic<int>>(0);
  auto blocker = sys_->spawn<caf::detached>([=](caf::event_based_actor*) {
    return caf::behavior{[=](const app_message&) {
      released.wait();
      ++*got;
    }};
  });
  ASSERT_TRUE(b.register_app("bulk", blocker));
  ASSERT_TRUE(b.register_app("calc", sys_->spawn(recorder, "b",
                                                 std::make_shared<inbox>())));
  wait_app(a, "bulk", {"node-b"});
  wait_app(a, "calc", {"node-b"});
  // 16 MiB for app 1, more than its stream takes while the handler blocks.
  int sent = 0;
  for (int i = 0; i < 64; ++i) {
    if (a.send("bulk", {"node-b"}, std::vector<std::byte>(256 << 10))) {
      ++sent;
    }
  }
  EXPECT_GT(sent, 0);
  // App 2 still answers while app 1 is stuck.
  for (int i = 0; i < 20; ++i) {
    auto r = a.request("node-b", "calc", bytes(std::to_string(i)), 5s);
    ASSERT_TRUE(r) << i << ": " << to_string(r.error());
    EXPECT_EQ(text(*r), "b:" + std::to_string(i));
  }
  release->set_value();
  ASSERT_TRUE(test::eventually(
    [&] {
      return got->load() == sent;
    },
    30s))
    << "got " << got->load() << " of " << sent;
}

// -- stop
// ------------------------------------------------------------------------

size_t count_dir(const char* path) {
  size_t n = 0;
  if (auto* d = ::opendir(path)) {
    while (::readdir(d) != nullptr) {
      ++n;
    }
    ::closedir(d);
  }
  return n;
}

/// This process's threads: id and name.
std::map<std::string, std::string> thread_names() {
  std::map<std::string, std::string> out;
  if (auto* d = ::opendir("/proc/self/task")) {
    while (auto* e = ::readdir(d)) {
      std::string id = e->d_name;
      if (id == "." || id == "..") {
        continue;
      }
      std::ifstream comm{"/proc/self/task/" + id + "/comm"};
      std::string name;
      std::getline(comm, name);
      out.emplace(id, name);
    }
    ::closedir(d);
  }
  return out;
}

TEST_F(node_test, stop_leaves_no_actor_thread_or_socket) {
  // Warm-up: the first node makes the process-wide certificates and
  // GnuTLS state.
  {
    auto& w = start("node-w", 4, nullptr);
    w.stop();
    nodes_.clear();
  }
  auto actors0 = sys_->registry().running();
  auto threads0 = thread_names();
  auto fds0 = count_dir("/proc/self/fd");
  {
    auto& a = start("node-a", 1, nullptr);
    auto& b = start("node-b", 2, &a);
    ASSERT_TRUE(b.register_app("calc", app_callbacks{nullptr, [](auto& r) {
                                                       return app_reply{
                                                         r.payload};
                                                     }}));
    wait_app(a, "calc", {"node-b"});
    auto r = a.request("node-b", "calc", bytes("x"), 5s);
    ASSERT_TRUE(r);
    EXPECT_GT(sys_->registry().running(), actors0);
    b.stop();
    a.stop();
    nodes_.clear();
  }
  size_t actors = 0;
  EXPECT_TRUE(test::eventually(
    [&] {
      actors = sys_->registry().running();
      return actors == actors0;
    },
    10s))
    << actors << " actors running, " << actors0 << " before";
  // No thread the nodes started is left. The membership actor's own thread
  // (caf::detached) ends just after the actor does; threads that were
  // there before may have ended meanwhile (the warm-up node's).
  std::string left;
  EXPECT_TRUE(test::eventually(
    [&] {
      left.clear();
      for (const auto& [id, name] : thread_names()) {
        if (threads0.count(id) == 0) {
          left += " " + name + "[" + id + "]";
        }
      }
      return left.empty();
    },
    10s))
    << "threads left:" << left;
  EXPECT_EQ(count_dir("/proc/self/fd"), fds0);
}

} // namespace
