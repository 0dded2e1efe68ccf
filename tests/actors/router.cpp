// SPDX-License-Identifier: Apache-2.0
// The router actor in virtual time (CAF's test coordinator): applications,
// remote handles, requests through it, and what a peer's going down or
// becoming unreachable does to them. The peers actor is played by a small
// actor that answers the router's questions from a table the test edits;
// the QUIC side by support/transport_doubles.hpp.
#include "mycorrizal/apps/router.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include "support/actor_system.hpp"
#include "support/transport_doubles.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace mycorrizal {
namespace {

using test::actor_system;
using test::bytes_of;
using test::clock_mode;
using test::connection_side;
using test::stream_side;
using test::wire_log;

/// What the peers actor knows, and what the router told it.
struct peers_table {
  std::vector<peer_info> up;
  std::vector<std::vector<std::string>> announced;
};

caf::behavior peers_side(caf::event_based_actor*,
                         std::shared_ptr<peers_table> t) {
  return {
    [=](subscribe_atom, caf::actor&) {
      return t->up;
    },
    [=](connections_atom) {
      return t->up;
    },
    [=](nodes_atom, const std::string& app) {
      std::vector<std::string> out;
      for (auto& p : t->up) {
        if (std::find(p.apps.begin(), p.apps.end(), app) != p.apps.end()) {
          out.push_back(p.name);
        }
      }
      return out;
    },
    [=](apps_atom, std::vector<std::string>& apps) {
      t->announced.push_back(apps);
    },
  };
}

/// The outcome of one call.
template <class T>
struct outcome {
  std::vector<T> values;
  std::vector<error> errors;

  size_t count() const {
    return values.size() + errors.size();
  }

  std::string describe() const {
    std::string out = std::to_string(values.size()) + " values, errors:";
    for (auto& e : errors) {
      out += " [" + to_string(e) + "]";
    }
    return out;
  }
};

class router_virtual_time : public testing::Test {
protected:
  router_virtual_time() : env_(clock_mode::virtual_time) {
    log_ = std::make_shared<wire_log>();
    stream_ = env_.keep(env_.sys().spawn(stream_side, log_));
    conn_ = env_.keep(env_.sys().spawn(connection_side, stream_, log_));
    table_ = std::make_shared<peers_table>();
    table_->up.push_back(peer("node-b", {"kv"}));
    peers_ = env_.keep(env_.sys().spawn(peers_side, table_));
    router_ = spawn_router(
      env_.sys(),
      router_options{"node-a", caf::actor_cast<peers_actor>(peers_)});
    env_.keep(caf::actor_cast<caf::actor>(router_));
    env_.run();
  }

  peer_info peer(std::string name, std::vector<std::string> apps) {
    peer_info p;
    p.name = std::move(name);
    p.connection = conn_;
    p.apps = std::move(apps);
    return p;
  }

  /// Runs `f(self, out)` in an actor of its own; `out` collects the answer.
  template <class T, class F>
  std::shared_ptr<outcome<T>> call(F f) {
    auto out = std::make_shared<outcome<T>>();
    auto on_error = [out](caf::error& e) {
      out->errors.push_back(from_caf_error(e));
    };
    env_.keep(env_.sys().spawn([=](caf::event_based_actor* self) {
      f(self, out, on_error);
      return caf::behavior{[](caf::unit_t) {}};
    }));
    env_.run();
    return out;
  }

  std::shared_ptr<outcome<std::vector<std::byte>>>
  request(std::string node, caf::timespan timeout) {
    auto r = router_;
    return call<std::vector<std::byte>>(
      [=](auto* self, auto out, auto on_error) {
        self
          ->request(r, caf::infinite, request_atom::value, node,
                    std::string{"kv"}, raw_bytes{bytes_of("get k")}, timeout,
                    std::string{})
          .then(
            [out](raw_bytes& v) {
              out->values.push_back(v.data);
            },
            on_error);
      });
  }

  std::shared_ptr<outcome<bool>> send(std::string node) {
    auto r = router_;
    return call<bool>([=](auto* self, auto out, auto on_error) {
      self
        ->request(r, caf::infinite, send_atom::value, std::string{"kv"},
                  std::vector<std::string>{node},
                  raw_bytes{bytes_of("put k v")}, std::string{})
        .then(
          [out] {
            out->values.push_back(true);
          },
          on_error);
    });
  }

  caf::actor remote(std::string node) {
    auto r = router_;
    auto got = call<caf::actor>([=](auto* self, auto out, auto on_error) {
      self
        ->request(r, caf::infinite, remote_atom::value, node, std::string{"kv"},
                  std::string{})
        .then(
          [out](caf::actor& h) {
            out->values.push_back(h);
          },
          on_error);
    });
    EXPECT_EQ(got->values.size(), 1u) << got->describe();
    return got->values.empty() ? caf::actor{} : got->values[0];
  }

  void tell(peer_down msg) {
    caf::anon_send(router_, std::move(msg));
    env_.run();
  }

  actor_system env_;
  std::shared_ptr<wire_log> log_;
  std::shared_ptr<peers_table> table_;
  stream_actor stream_;
  connection_actor conn_;
  caf::actor peers_;
  router_actor router_;
};

TEST_F(router_virtual_time, registering_announces_the_application) {
  auto handler = env_.keep(env_.sys().spawn([] {
    return caf::behavior{[](caf::unit_t) {}};
  }));
  auto r = router_;
  auto done = call<bool>([=](auto* self, auto out, auto on_error) {
    self
      ->request(r, caf::infinite, register_atom::value, std::string{"chat"},
                handler, app_options{})
      .then(
        [out] {
          out->values.push_back(true);
        },
        on_error);
  });
  ASSERT_EQ(done->values.size(), 1u) << done->describe();
  ASSERT_FALSE(table_->announced.empty());
  EXPECT_EQ(table_->announced.back(), std::vector<std::string>{"chat"});
}

TEST_F(router_virtual_time, a_request_goes_out_and_times_out_on_time) {
  auto a = request("node-b", 3s);
  auto reqs = log_->requests();
  ASSERT_EQ(reqs.size(), 1u) << "no REQUEST frame on node-b's stream";
  EXPECT_EQ(reqs[0].payload, bytes_of("get k"));
  env_.advance(2999ms);
  EXPECT_EQ(a->count(), 0u) << a->describe();
  env_.advance(1ms);
  ASSERT_EQ(a->errors.size(), 1u) << a->describe();
  EXPECT_EQ(a->errors[0].code(), errc::timeout);
}

TEST_F(router_virtual_time, a_node_that_is_no_member_is_node_down_at_once) {
  auto a = request("node-z", 30s);
  ASSERT_EQ(a->errors.size(), 1u) << a->describe();
  EXPECT_EQ(a->errors[0].code(), errc::node_down) << to_string(a->errors[0]);
  EXPECT_TRUE(log_->requests().empty());
}

TEST_F(router_virtual_time, node_down_ends_remote_handles_and_requests) {
  auto handle = remote("node-b");
  ASSERT_TRUE(handle);
  auto down = std::make_shared<std::optional<caf::error>>();
  env_.keep(env_.sys().spawn([=](caf::event_based_actor* self) {
    self->monitor(handle);
    self->set_down_handler([=](caf::down_msg& msg) {
      *down = msg.reason;
    });
    return caf::behavior{[](caf::unit_t) {}};
  }));
  env_.run();
  auto a = request("node-b", 30s);
  ASSERT_EQ(a->count(), 0u) << a->describe();
  table_->up.clear();
  tell(peer_down{"node-b", error{errc::node_down, "node-b left"}});
  ASSERT_EQ(a->errors.size(), 1u) << a->describe();
  EXPECT_EQ(a->errors[0].code(), errc::node_down) << to_string(a->errors[0]);
  ASSERT_TRUE(down->has_value()) << "the remote handle did not quit";
  EXPECT_EQ(from_caf_error(**down).code(), errc::node_down);
  // No timer of the ended request fires later.
  env_.advance(60s);
  EXPECT_EQ(a->count(), 1u) << a->describe();
}

TEST_F(router_virtual_time, an_unreachable_peer_fails_sends_until_it_is_back) {
  auto ok = send("node-b");
  ASSERT_EQ(ok->values.size(), 1u) << ok->describe();
  caf::anon_send(router_,
                 peer_unreachable{"node-b", error{errc::connection_lost,
                                                  "no answer for 5 s"}});
  tell(peer_down{"node-b", error{errc::connection_lost, "unreachable"}});
  auto failed = send("node-b");
  ASSERT_EQ(failed->errors.size(), 1u) << failed->describe();
  EXPECT_EQ(failed->errors[0].code(), errc::connection_lost);
  // A connection is up again: sends go out.
  caf::anon_send(router_, peer_up{peer("node-b", {"kv"})});
  env_.run();
  auto written = log_->written.size();
  auto again = send("node-b");
  ASSERT_EQ(again->values.size(), 1u) << again->describe();
  EXPECT_GT(log_->written.size(), written);
}

} // namespace
} // namespace mycorrizal
