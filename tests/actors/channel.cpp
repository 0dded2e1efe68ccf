// SPDX-License-Identifier: Apache-2.0
// The channel actor in virtual time (CAF's test coordinator): request
// deadlines, late responses, a node that goes down, an unreachable peer.
// The channel's QUIC side is played by the actors of
// support/transport_doubles.hpp, which record what the channel wrote.
#include "mycorrizal/apps/internal/channel.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/transport/transport.hpp"

#include "support/actor_system.hpp"
#include "support/transport_doubles.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

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

/// Stands in for the router: the channel's parent (it is spawned linked, so
/// the parent's exit at the end of a test stops it).
caf::behavior parent(caf::event_based_actor* self, detail::channel_options opts,
                     std::shared_ptr<caf::actor> out) {
  *out = detail::spawn_channel(self, std::move(opts));
  return {
    [](caf::unit_t) {},
  };
}

/// One request's answers (there must be exactly one).
struct answers {
  std::vector<std::vector<std::byte>> values;
  std::vector<error> errors;

  size_t count() const {
    return values.size() + errors.size();
  }
};

caf::behavior requester(caf::event_based_actor* self, caf::actor channel,
                        std::vector<std::byte> payload, caf::timespan timeout,
                        std::shared_ptr<answers> out) {
  self
    ->request(channel, caf::infinite,
              detail::channel_request{std::move(payload), timeout})
    .then(
      [=](raw_bytes& v) {
        out->values.push_back(v.data);
      },
      [=](caf::error& e) {
        out->errors.push_back(from_caf_error(e));
      });
  return {
    [](caf::unit_t) {},
  };
}

caf::behavior watcher(caf::event_based_actor* self, caf::actor target,
                      std::shared_ptr<std::optional<caf::error>> out) {
  self->monitor(target);
  self->set_down_handler([=](caf::down_msg& msg) {
    *out = msg.reason;
  });
  return {
    [](caf::unit_t) {},
  };
}

std::string describe(const answers& a) {
  std::string out = std::to_string(a.values.size()) + " values, errors:";
  for (auto& e : a.errors) {
    out += " [" + to_string(e) + "]";
  }
  return out;
}

class channel_virtual_time : public testing::Test {
protected:
  channel_virtual_time() : env_(clock_mode::virtual_time) {
    log_ = std::make_shared<wire_log>();
    stream_ = env_.keep(env_.sys().spawn(stream_side, log_));
    conn_ = env_.keep(env_.sys().spawn(connection_side, stream_, log_));
    counters_ = std::make_shared<detail::stream_counters>();
    detail::channel_options opts;
    opts.self_name = "node-a";
    opts.peer = "node-b";
    opts.application = "kv";
    opts.counters = counters_;
    opts.connection = conn_;
    auto out = std::make_shared<caf::actor>();
    parent_ = env_.keep(env_.sys().spawn(parent, std::move(opts), out));
    env_.run();
    channel_ = *out;
  }

  std::shared_ptr<answers> request(std::string_view payload,
                                   caf::timespan timeout) {
    auto out = std::make_shared<answers>();
    env_.keep(
      env_.sys().spawn(requester, channel_, bytes_of(payload), timeout, out));
    env_.run();
    return out;
  }

  /// A `slow_handler` (keeping its promises in `held`) behind the channel,
  /// whose stream is open, and the peer's REQUEST `id` with budget
  /// `timeout_ms` delivered to it.
  caf::actor
  serve_peer_request(std::shared_ptr<std::vector<caf::response_promise>> held,
                     uint64_t id, uint32_t timeout_ms,
                     std::string_view payload);

  /// The peer's RESPONSE to request `id`, arriving on the stream.
  void respond(uint64_t id, std::string_view payload) {
    wire::owned_response r;
    r.id = id;
    r.payload = bytes_of(payload);
    caf::anon_send(channel_, stream_frames{stream_, {wire::owned_frame{r}}});
    env_.run();
  }

  actor_system env_;
  std::shared_ptr<wire_log> log_;
  std::shared_ptr<detail::stream_counters> counters_;
  stream_actor stream_;
  connection_actor conn_;
  caf::actor parent_;
  caf::actor channel_;
};

TEST_F(channel_virtual_time, a_request_times_out_at_its_deadline_not_before) {
  auto a = request("get k", 5s);
  auto reqs = log_->requests();
  ASSERT_EQ(reqs.size(), 1u) << "the REQUEST frame was not written";
  EXPECT_EQ(log_->opens, 1);
  // The budget travels with the request.
  EXPECT_EQ(reqs[0].timeout_ms, 5000u);
  env_.advance(4999ms);
  EXPECT_EQ(a->count(), 0u) << describe(*a);
  env_.advance(1ms);
  ASSERT_EQ(a->count(), 1u) << describe(*a);
  ASSERT_EQ(a->errors.size(), 1u) << describe(*a);
  EXPECT_EQ(a->errors[0].code(), errc::timeout) << to_string(a->errors[0]);
  EXPECT_EQ(counters_->requests_failed.load(), 1u);
}

TEST_F(channel_virtual_time, the_application_limit_caps_a_longer_timeout) {
  // app_options::request_timeout (30 s by default) bounds what a caller asks.
  auto a = request("get k", 1h);
  env_.advance(29s);
  EXPECT_EQ(a->count(), 0u) << describe(*a);
  env_.advance(1s);
  ASSERT_EQ(a->errors.size(), 1u) << describe(*a);
  EXPECT_EQ(a->errors[0].code(), errc::timeout);
}

TEST_F(channel_virtual_time, a_response_in_time_answers_once) {
  auto a = request("get k", 5s);
  auto reqs = log_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  env_.advance(2s);
  respond(reqs[0].id, "v1");
  ASSERT_EQ(a->values.size(), 1u) << describe(*a);
  EXPECT_EQ(a->values[0], bytes_of("v1"));
  // Its deadline passing later changes nothing.
  env_.advance(10s);
  EXPECT_EQ(a->count(), 1u) << describe(*a);
  EXPECT_EQ(counters_->late_responses.load(), 0u);
}

TEST_F(channel_virtual_time, a_late_response_is_counted_and_dropped) {
  auto a = request("get k", 1s);
  auto reqs = log_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  env_.advance(1s);
  ASSERT_EQ(a->errors.size(), 1u) << describe(*a);
  respond(reqs[0].id, "too late");
  EXPECT_EQ(a->count(), 1u) << describe(*a);
  EXPECT_EQ(counters_->late_responses.load(), 1u);
  // The channel still serves new requests.
  auto b = request("get k2", 1s);
  auto again = log_->requests();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_NE(again[1].id, again[0].id) << "a request id was reused";
  respond(again[1].id, "v2");
  ASSERT_EQ(b->values.size(), 1u) << describe(*b);
}

TEST_F(channel_virtual_time, each_request_keeps_its_own_deadline) {
  auto slow = request("a", 10s);
  auto fast = request("b", 2s);
  env_.advance(2s);
  EXPECT_EQ(fast->errors.size(), 1u) << describe(*fast);
  EXPECT_EQ(slow->count(), 0u) << describe(*slow);
  env_.advance(8s);
  EXPECT_EQ(slow->errors.size(), 1u) << describe(*slow);
}

TEST_F(channel_virtual_time, node_down_fails_pending_requests_and_ends_it) {
  auto down = std::make_shared<std::optional<caf::error>>();
  env_.keep(env_.sys().spawn(watcher, channel_, down));
  env_.run();
  auto a = request("get k", 30s);
  auto b = request("get j", 30s);
  caf::anon_send(channel_,
                 detail::channel_close{error{errc::node_down, "node-b died"}});
  env_.run();
  for (auto* x : {a.get(), b.get()}) {
    ASSERT_EQ(x->errors.size(), 1u) << describe(*x);
    EXPECT_EQ(x->errors[0], (error{errc::node_down, "node-b died"}));
  }
  ASSERT_TRUE(down->has_value()) << "the channel did not quit";
  EXPECT_EQ(log_->closes, 1) << "its QUIC stream was not closed";
  // No timer of the failed requests fires later.
  env_.advance(60s);
  EXPECT_EQ(a->count(), 1u);
}

TEST_F(channel_virtual_time, an_unreachable_peer_fails_requests_at_once) {
  auto pending = request("get k", 30s);
  caf::anon_send(channel_,
                 detail::channel_lost{
                   error{errc::connection_lost, "node-b unreachable"}, true});
  env_.run();
  ASSERT_EQ(pending->errors.size(), 1u) << describe(*pending);
  EXPECT_EQ(pending->errors[0].code(), errc::connection_lost);
  // Without waiting for any timeout.
  auto now = request("get k", 30s);
  ASSERT_EQ(now->errors.size(), 1u) << describe(*now);
  EXPECT_EQ(now->errors[0].code(), errc::connection_lost);
  // A new connection ends it: the next request goes out on a new stream.
  caf::anon_send(channel_, detail::channel_connect{conn_});
  env_.run();
  auto later = request("get k", 30s);
  EXPECT_EQ(later->count(), 0u) << describe(*later);
  EXPECT_EQ(log_->opens, 2);
  auto reqs = log_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  respond(reqs.back().id, "v");
  EXPECT_EQ(later->values.size(), 1u) << describe(*later);
}

TEST_F(channel_virtual_time, a_stream_that_times_out_loses_its_requests) {
  auto a = request("get k", 30s);
  caf::anon_send(channel_,
                 stream_end{stream_, error{errc::timeout, "idle timeout"}});
  env_.run();
  ASSERT_EQ(a->errors.size(), 1u) << describe(*a);
  EXPECT_EQ(a->errors[0].code(), errc::connection_lost)
    << to_string(a->errors[0]);
}

/// A connection we are closing: every open fails as the transport fails it
/// then.
connection_actor::behavior_type closing_connection(connection_actor::pointer) {
  auto closed = [] {
    return make_caf_error(error{errc::shutting_down,
                                "closed locally with application error 0: "
                                "member left"});
  };
  return {
    [=](open_atom, wire::owned_frame&,
        caf::actor&) -> caf::result<stream_actor> {
      return closed();
    },
    [](close_atom, uint64_t, std::string&) {},
    [](stats_atom) {
      return connection_info{};
    },
  };
}

using release_atom = caf::atom_constant<caf::atom("release")>;

/// A handler that answers nothing until told (`release_atom`): it keeps the
/// promises of the requests it gets.
caf::behavior
slow_handler(caf::event_based_actor* self,
             std::shared_ptr<std::vector<caf::response_promise>> held) {
  return {
    [=](app_request&) {
      held->push_back(self->make_response_promise());
      return held->back();
    },
    [=](release_atom, raw_bytes& reply) {
      for (auto& rp : *held) {
        rp.deliver(reply);
      }
    },
  };
}

/// The RESPONSE frames the channel wrote.
std::vector<wire::owned_response> responses(const wire_log& log) {
  std::vector<wire::owned_response> out;
  for (auto& f : log.written) {
    if (auto* r = std::get_if<wire::owned_response>(&f)) {
      out.push_back(*r);
    }
  }
  return out;
}

caf::actor channel_virtual_time::serve_peer_request(
  std::shared_ptr<std::vector<caf::response_promise>> held, uint64_t id,
  uint32_t timeout_ms, std::string_view payload) {
  auto handler = env_.keep(env_.sys().spawn(slow_handler, std::move(held)));
  caf::anon_send(channel_, detail::channel_handler{handler});
  request("open the stream", 30s);
  wire::owned_request r;
  r.id = id;
  r.timeout_ms = timeout_ms;
  r.payload = bytes_of(payload);
  caf::anon_send(channel_, stream_frames{stream_, {wire::owned_frame{r}}});
  env_.run();
  return handler;
}

// The peer's budget (timeout_ms) bounds our handler: at the deadline the
// peer gets a timeout, not before, and the handler's late answer is
// dropped instead of answering twice.
TEST_F(channel_virtual_time, a_peer_request_gets_a_timeout_at_its_budget) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  auto handler = serve_peer_request(held, 77, 200, "slow work");
  ASSERT_EQ(held->size(), 1u) << "the handler did not get the request";
  env_.advance(199ms);
  EXPECT_TRUE(responses(*log_).empty()) << "answered before the budget";
  env_.advance(1ms);
  auto rs = responses(*log_);
  ASSERT_EQ(rs.size(), 1u) << "no answer at the budget";
  EXPECT_EQ(rs[0].id, 77u);
  EXPECT_EQ(rs[0].status, errc::timeout);
  std::string text(reinterpret_cast<const char*>(rs[0].payload.data()),
                   rs[0].payload.size());
  EXPECT_NE(text.find("did not answer in time"), std::string::npos) << text;
  caf::anon_send(handler, release_atom::value, raw_bytes{bytes_of("too late")});
  env_.run();
  EXPECT_EQ(responses(*log_).size(), 1u) << "the late answer went out too";
}

// In time, the handler's answer is the one RESPONSE.
TEST_F(channel_virtual_time, a_peer_request_answered_in_time_answers_once) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  auto handler = serve_peer_request(held, 78, 200, "quick work");
  ASSERT_EQ(held->size(), 1u) << "the handler did not get the request";
  env_.advance(150ms);
  caf::anon_send(handler, release_atom::value, raw_bytes{bytes_of("done")});
  env_.run();
  env_.advance(1s);
  auto rs = responses(*log_);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].id, 78u);
  EXPECT_EQ(rs[0].status, errc::none);
  EXPECT_EQ(rs[0].payload, bytes_of("done"));
}

// We close the connection when the member leaves; a request that meets the
// closing connection is not failed with our own shutting_down but waits for
// the router's word, which names the cause (here node_down).
TEST_F(channel_virtual_time,
       a_connection_we_close_leaves_the_cause_to_the_router) {
  auto closing = env_.keep(env_.sys().spawn(closing_connection));
  caf::anon_send(channel_, detail::channel_connect{closing});
  env_.run();
  auto a = request("hang", 30s);
  EXPECT_EQ(a->count(), 0u) << describe(*a);
  caf::anon_send(channel_,
                 detail::channel_close{error{errc::node_down, "node-b left"}});
  env_.run();
  ASSERT_EQ(a->errors.size(), 1u) << describe(*a);
  EXPECT_EQ(a->errors[0].code(), errc::node_down) << to_string(a->errors[0]);
}

} // namespace
} // namespace mycorrizal
