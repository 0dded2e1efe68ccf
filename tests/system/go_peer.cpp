// SPDX-License-Identifier: Apache-2.0
// System smoke tests with real HashiCorp memberlist (Debian 0.2.2) processes.
//
// Each test starts Go peers (tests/system/gopeer) on its own 127.0.0.x
// addresses with port 0, reads their JSON lines and drives them over stdin
// (protocol: tests/system/README.md). Nothing sleeps: every step waits for a
// line with a deadline, and a failure shows every line each peer printed plus
// the tail of its memberlist log.
//
// Profiles: "local" (DefaultLocalConfig: 1 s probes, 100 ms gossip) wherever
// only the outcome matters; the crash test uses "lan" (DefaultLANConfig) so
// its kill -> dead time is comparable with memberlist-wire.md §9.13.

#include "line_peer.hpp"
#include "support/process.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#ifndef MYCORRIZAL_GOPEER_PATH
#  error "MYCORRIZAL_GOPEER_PATH must name the gopeer binary"
#endif

using namespace std::chrono_literals;
using mycorrizal::test::cluster_key;
using mycorrizal::test::in;
using mycorrizal::test::json_result;
using mycorrizal::test::line_peer;
using mycorrizal::test::names_in_state;
using mycorrizal::test::peer_options;
using mycorrizal::test::unix_now_ns;
using mycorrizal::test::wrong_key;

namespace {

using clock_type = line_peer::clock;

/// Options for a peer named `name` bound to `bind`; the rest as given.
peer_options opts(std::string name, std::string bind,
                  std::vector<std::string> join = {}, std::string key = {},
                  std::string profile = "local") {
  peer_options result;
  result.name = std::move(name);
  result.bind = std::move(bind);
  result.join = std::move(join);
  result.key = std::move(key);
  result.profile = std::move(profile);
  return result;
}

class go_peer : public ::testing::Test {
protected:
  /// Starts a peer and waits for its ready line; nullptr (with a recorded
  /// failure) if it does not get ready.
  line_peer* start(peer_options options) {
    auto peer = std::make_unique<line_peer>(MYCORRIZAL_GOPEER_PATH,
                                            std::move(options));
    auto ready = peer->wait_ready(in(10s));
    if (!ready) {
      ADD_FAILURE() << ready.error;
      return nullptr;
    }
    peers_.push_back(std::move(peer));
    return peers_.back().get();
  }

  /// Starts three peers a, b, c on 127.0.0.<base+1..3>; b and c join a.
  /// Returns false (with failures recorded) unless each sees the two others
  /// within the deadline.
  bool form_cluster(int base, const std::string& profile,
                    const std::string& key = {}) {
    auto ip = [base](int i) {
      return "127.0.0." + std::to_string(base + i);
    };
    auto started = clock_type::now();
    a_ = start(opts("a", ip(1), {}, key, profile));
    if (a_ == nullptr) {
      return false;
    }
    b_ = start(opts("b", ip(2), {a_->address()}, key, profile));
    c_ = start(opts("c", ip(3), {a_->address()}, key, profile));
    if (b_ == nullptr || c_ == nullptr) {
      return false;
    }
    for (auto* p : {b_, c_}) {
      if (p->ready().value("joined", 0) != 1) {
        ADD_FAILURE() << p->name() << " did not join: " << p->ready().dump();
        return false;
      }
    }
    auto deadline = in(15s);
    for (auto* p : {a_, b_, c_}) {
      for (auto* other : {a_, b_, c_}) {
        if (other == p) {
          continue;
        }
        auto ev = p->wait_event("join", other->name(), deadline);
        if (!ev) {
          ADD_FAILURE() << ev.error;
          return false;
        }
      }
    }
    auto took = std::chrono::duration<double>(clock_type::now() - started);
    std::printf("[ info ] %s cluster of 3 formed in %.3f s (incl. start)\n",
                profile.c_str(), took.count());
    return true;
  }

  void TearDown() override {
    if (HasFailure()) {
      for (auto& p : peers_) {
        std::printf("%s", p->proc().describe().c_str());
      }
    }
  }

  std::vector<std::unique_ptr<line_peer>> peers_;
  line_peer* a_ = nullptr;
  line_peer* b_ = nullptr;
  line_peer* c_ = nullptr;
};

} // namespace

TEST_F(go_peer, three_peers_form_a_cluster) {
  ASSERT_TRUE(form_cluster(10, "local"));
  for (auto* p : {a_, b_, c_}) {
    auto reply = p->request("members", in(5s));
    ASSERT_TRUE(reply) << reply.error;
    EXPECT_EQ(names_in_state(*reply, "alive"),
              (std::set<std::string>{"a", "b", "c"}))
      << p->name() << ": " << reply->dump();
    for (const auto& m : reply->at("members")) {
      EXPECT_TRUE(m.at("incarnation").is_number()) << m.dump();
      EXPECT_TRUE(m.at("port").is_number()) << m.dump();
    }
  }
  auto health = a_->request("health", in(5s));
  ASSERT_TRUE(health) << health.error;
  EXPECT_TRUE(health->at("score").is_number()) << health->dump();
  auto unknown = a_->request("frobnicate now", in(5s));
  ASSERT_TRUE(unknown) << unknown.error;
  EXPECT_EQ(unknown->value("error", ""), "unknown command");
}

TEST_F(go_peer, killed_peer_is_reported_dead) {
  ASSERT_TRUE(form_cluster(20, "lan"));
  auto killed_at = unix_now_ns();
  c_->proc().signal(SIGKILL);
  auto status = c_->proc().wait(in(5s));
  ASSERT_TRUE(status.has_value()) << "c did not die";
  EXPECT_EQ(*status, mycorrizal::test::exit_status::signal(SIGKILL));

  // LAN, n = 3: suspected after 1-4 s, dead 4 s later (k = 0).
  auto deadline = in(20s);
  for (auto* p : {a_, b_}) {
    auto ev = p->wait_event("leave", "c", deadline);
    ASSERT_TRUE(ev) << ev.error;
    EXPECT_EQ(ev->value("state", ""), "dead") << ev->dump();
    auto ms = static_cast<double>(ev->at("t").get<std::int64_t>() - killed_at)
              / 1e6;
    std::printf("[ info ] kill -9 c -> %s reports dead: %.0f ms\n",
                p->name().c_str(), ms);
    RecordProperty(p->name() + "_kill_to_dead_ms", static_cast<int>(ms));
    EXPECT_LT(ms, 20'000.0);
    auto reply = p->request("members", in(5s));
    ASSERT_TRUE(reply) << reply.error;
    EXPECT_EQ(names_in_state(*reply, "dead"), std::set<std::string>{"c"})
      << reply->dump();
  }
}

TEST_F(go_peer, graceful_leave_is_reported_left) {
  ASSERT_TRUE(form_cluster(30, "local"));
  auto left = c_->request("leave 2000", in(5s));
  ASSERT_TRUE(left) << left.error;
  EXPECT_EQ(left->value("ok", false), true) << left->dump();
  auto bye = c_->request("shutdown", in(5s));
  ASSERT_TRUE(bye) << bye.error;
  auto status = c_->proc().wait(in(5s));
  ASSERT_TRUE(status.has_value()) << "c did not exit";
  EXPECT_EQ(*status, mycorrizal::test::exit_status::code(0));

  auto deadline = in(10s);
  for (auto* p : {a_, b_}) {
    auto ev = p->wait_event("leave", "c", deadline);
    ASSERT_TRUE(ev) << ev.error;
    EXPECT_EQ(ev->value("state", ""), "left") << ev->dump();
    auto reply = p->request("members", in(5s));
    ASSERT_TRUE(reply) << reply.error;
    EXPECT_EQ(names_in_state(*reply, "left"), std::set<std::string>{"c"})
      << reply->dump();
  }
}

TEST_F(go_peer, meta_update_is_seen_by_the_others) {
  auto a_options = opts("a", "127.0.0.41");
  a_options.meta = "a-v1";
  a_ = start(a_options);
  ASSERT_NE(a_, nullptr);
  auto b_options = opts("b", "127.0.0.42", {a_->address()});
  b_options.meta = "b-v1";
  b_ = start(b_options);
  ASSERT_NE(b_, nullptr);
  c_ = start(opts("c", "127.0.0.43", {a_->address()}));
  ASSERT_NE(c_, nullptr);
  for (auto* p : {a_, c_}) {
    auto joined = p->wait_event("join", "b", in(15s));
    ASSERT_TRUE(joined) << joined.error;
    EXPECT_EQ(joined->value("meta", ""), "b-v1") << joined->dump();
  }
  auto from = std::vector<std::size_t>{a_->proc().lines().size(),
                                       c_->proc().lines().size()};
  auto reply = b_->request("meta b-v2 with spaces", in(10s));
  ASSERT_TRUE(reply) << reply.error;
  EXPECT_EQ(reply->value("ok", false), true) << reply->dump();
  auto deadline = in(10s);
  for (auto [p, index] : {std::pair{a_, from[0]}, std::pair{c_, from[1]}}) {
    auto ev = p->wait_event("update", "b", deadline, index);
    ASSERT_TRUE(ev) << ev.error;
    EXPECT_EQ(ev->value("meta", ""), "b-v2 with spaces") << ev->dump();
  }
}

TEST_F(go_peer, encrypted_cluster_rejects_wrong_and_missing_key) {
  a_ = start(opts("a", "127.0.0.51", {}, cluster_key));
  ASSERT_NE(a_, nullptr);
  EXPECT_EQ(a_->ready().value("encrypted", false), true);
  b_ = start(opts("b", "127.0.0.52", {a_->address()}, cluster_key));
  ASSERT_NE(b_, nullptr);
  ASSERT_EQ(b_->ready().value("joined", 0), 1) << b_->ready().dump();

  // Both outsiders try to join a with a synchronous push/pull (TCP); a cannot
  // decrypt (or refuses plaintext) and closes the stream, so the join fails.
  auto* wrong
    = start(opts("x-wrong-key", "127.0.0.54", {a_->address()}, wrong_key));
  ASSERT_NE(wrong, nullptr);
  auto* plain = start(opts("x-no-key", "127.0.0.55", {a_->address()}));
  ASSERT_NE(plain, nullptr);
  // The errors name the key problem, not some other failure (0.2.2 texts).
  for (auto [x, why] : {std::pair{wrong, "could decrypt"},
                        std::pair{plain, "encryption is not configured"}}) {
    EXPECT_EQ(x->ready().value("joined", -1), 0) << x->ready().dump();
    EXPECT_NE(x->ready().value("join_error", "").find(why), std::string::npos)
      << x->ready().dump();
  }

  // Positive control after the failed attempts: c with the right key joins a,
  // and b learns of c through gossip. The outsiders had as long to show up.
  c_ = start(opts("c", "127.0.0.53", {a_->address()}, cluster_key));
  ASSERT_NE(c_, nullptr);
  for (auto* p : {a_, b_}) {
    auto ev = p->wait_event("join", "c", in(15s));
    ASSERT_TRUE(ev) << ev.error;
  }
  for (auto* p : {a_, b_, c_}) {
    auto reply = p->request("members", in(5s));
    ASSERT_TRUE(reply) << reply.error;
    // Every entry of the node table, whatever its state, is a, b or c.
    EXPECT_EQ(reply->at("members").size(), 3U) << reply->dump();
    EXPECT_EQ(names_in_state(*reply, "alive"),
              (std::set<std::string>{"a", "b", "c"}))
      << p->name() << ": " << reply->dump();
    for (const auto& ev : p->events("join")) {
      EXPECT_EQ(ev.value("node", "").rfind("x-", 0), std::string::npos)
        << p->name() << " saw an outsider: " << ev.dump();
    }
  }
  for (auto* x : {wrong, plain}) {
    auto reply = x->request("members", in(5s));
    ASSERT_TRUE(reply) << reply.error;
    EXPECT_EQ(reply->at("members").size(), 1U) << reply->dump();
  }
}
