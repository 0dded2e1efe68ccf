// SPDX-License-Identifier: Apache-2.0
// Suite quic.connection: two connection cores back to back in virtual time.
#include "mycorrizal/quic/connection.hpp"

#include "support/quic_harness.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <numeric>

using namespace mycorrizal;
using namespace mycorrizal::quic;
using namespace mycorrizal::quic::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::byte> bytes_of(std::string_view text) {
  auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> out(n);
  uint32_t x = seed;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return out;
}

std::string text_of(const std::vector<std::byte>& data) {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

/// Pair of node-a (client) and node-b (server) with the cluster CA.
pair make_pair(const transport_config& tc = {}) {
  return pair{certs().creds(certs().node_a), certs().creds(certs().node_b), tc,
              tc};
}

/// Makes the server echo every stream: data back, FIN back.
void echo_on_server(pair& p) {
  p.on_event = [&p](side s, event& ev) {
    if (s != side::server) {
      return;
    }
    if (auto* d = std::get_if<stream_data>(&ev)) {
      auto sent = p.server->send(d->stream_id, d->data, d->fin);
      ASSERT_TRUE(sent) << to_string(sent.error());
      ASSERT_EQ(*sent, d->data.size());
    }
  };
}

/// Collects each stream's received bytes on a side.
struct collector {
  std::map<int64_t, std::vector<std::byte>> data;
  std::map<int64_t, bool> fin;

  void add(const stream_data& d) {
    auto& v = data[d.stream_id];
    v.insert(v.end(), d.data.begin(), d.data.end());
    if (d.fin) {
      fin[d.stream_id] = true;
    }
  }
};

bool handshake(pair& p) {
  return p.run_until(
    [&] {
      return p.handshaken(side::client) && p.handshaken(side::server);
    },
    5s);
}

// Calls `push` now and on every stream_writable of the client, collects
// what the server receives, and runs until the FIN of `sid` (or `stop`, or
// `limit`). @returns whether the FIN or `stop` came.
bool push_until_fin(
  pair& p, int64_t sid, collector& got, const std::function<void()>& push,
  const std::function<bool()>& stop =
    [] {
      return false;
    },
  duration limit = 60s) {
  p.on_event = [&](side s, event& ev) {
    if (s == side::server) {
      if (auto* d = std::get_if<stream_data>(&ev)) {
        got.add(*d);
      }
    } else if (std::holds_alternative<stream_writable>(ev)) {
      push();
    }
  };
  push();
  return p.run_until(
    [&] {
      return got.fin[sid] || stop();
    },
    limit);
}

/// Sends `data` on a new client stream with FIN, refilling as the send
/// buffer frees, and collects what the server receives.
void transfer(pair& p, const std::vector<std::byte>& data, collector& got,
              duration limit = 120s) {
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid) << to_string(sid.error());
  size_t offset = 0;
  auto push = [&] {
    while (offset < data.size()) {
      auto rest = bytes_view{data}.subspan(offset);
      auto n = p.client->send(*sid, rest, true);
      ASSERT_TRUE(n) << to_string(n.error());
      offset += *n;
      if (*n < rest.size()) {
        break;
      }
    }
  };
  ASSERT_TRUE(push_until_fin(
    p, *sid, got, push,
    [] {
      return false;
    },
    limit))
    << "received " << got.data[*sid].size() << " of " << data.size();
  ASSERT_EQ(got.data[*sid].size(), data.size());
  EXPECT_TRUE(got.data[*sid] == data) << "bytes differ";
}

} // namespace

TEST(quic_connection, handshake_authenticates_both_sides_and_echoes) {
  auto p = make_pair();
  EXPECT_FALSE(p.client->authenticated());
  EXPECT_EQ(p.client->peer_name(), "");
  // The client's TLS handshake completes before the server has judged the
  // client certificate: the client must not report the peer yet then.
  ASSERT_TRUE(handshake(p));
  EXPECT_TRUE(p.client->authenticated());
  EXPECT_TRUE(p.server->authenticated());
  EXPECT_EQ(p.client->peer_name(), "node-b");
  EXPECT_EQ(p.server->peer_name(), "node-a");
  EXPECT_EQ(p.client->state(), connection_state::established);
  EXPECT_TRUE(std::get<handshake_completed>(p.client_events.front()).peer_name
              == "node-b");
  // Virtual time: a LAN handshake takes a few RTTs, not the pacing delay.
  echo_on_server(p);
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid);
  auto msg = bytes_of("hello, mycorrizal");
  auto sent = p.client->send(*sid, msg, true);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, msg.size());
  collector got;
  auto server_opened = false;
  auto user = p.on_event;
  p.on_event = [&](side s, event& ev) {
    user(s, ev);
    if (s == side::client) {
      if (auto* d = std::get_if<stream_data>(&ev)) {
        got.add(*d);
      }
    } else if (std::holds_alternative<stream_opened>(ev)) {
      server_opened = true;
    }
  };
  ASSERT_TRUE(p.run_until(
    [&] {
      return got.fin[*sid];
    },
    5s));
  EXPECT_TRUE(server_opened);
  EXPECT_EQ(text_of(got.data[*sid]), "hello, mycorrizal");
  // Both directions finished: the stream closes on both sides.
  auto closed_on = [&](const std::vector<event>& evs) {
    return std::any_of(evs.begin(), evs.end(), [&](const event& ev) {
      auto* c = std::get_if<stream_closed>(&ev);
      return c && c->stream_id == *sid && !c->app_error_code;
    });
  };
  ASSERT_TRUE(p.run_until([&] {
    return closed_on(p.client_events) && closed_on(p.server_events);
  }));
  auto st = p.client->stats();
  EXPECT_GT(st.datagrams_sent, 0u);
  EXPECT_GT(st.datagrams_received, 0u);
  EXPECT_GT(st.bytes_sent, st.datagrams_sent);
  EXPECT_GT(st.cwnd, 0u);
  EXPECT_GT(st.smoothed_rtt.count(), 0);
  EXPECT_EQ(st.datagrams_dropped, 0u);
  EXPECT_EQ(p.client->routing_ids().size() >= 1, true);
}

TEST(quic_connection, thousand_streams_on_one_connection) {
  auto p = make_pair();
  ASSERT_TRUE(handshake(p));
  echo_on_server(p);
  auto user = p.on_event;
  collector got;
  p.on_event = [&](side s, event& ev) {
    user(s, ev);
    if (s == side::client) {
      if (auto* d = std::get_if<stream_data>(&ev)) {
        got.add(*d);
      }
    }
  };
  std::vector<int64_t> ids;
  for (int i = 0; i < 1000; ++i) {
    auto sid = p.client->open_stream();
    ASSERT_TRUE(sid) << i << ": " << to_string(sid.error());
    auto msg = bytes_of("message " + std::to_string(i));
    ASSERT_EQ(*p.client->send(*sid, msg, true), msg.size());
    ids.push_back(*sid);
  }
  // The 1001st exceeds the server's limit of concurrent streams.
  auto extra = p.client->open_stream();
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error(), errc::queue_full);
  ASSERT_TRUE(p.run_until(
    [&] {
      return got.fin.size() == ids.size();
    },
    30s))
    << got.fin.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(text_of(got.data[ids[i]]), "message " + std::to_string(i));
  }
  // Closed streams give room for new ones.
  ASSERT_TRUE(p.run_until(
    [&] {
      return p.client->open_stream().has_value();
    },
    5s));
}

TEST(quic_connection, megabytes_arrive_intact) {
  auto p = make_pair();
  ASSERT_TRUE(handshake(p));
  auto data = pattern(8 << 20, 1);
  collector got;
  transfer(p, data, got);
  auto st = p.client->stats();
  EXPECT_GT(st.bytes_sent, data.size());
  EXPECT_EQ(st.lost_packets, 0u);
}

TEST(quic_connection, loss_and_reordering_still_deliver_intact) {
  auto p = make_pair();
  p.to_server.drop_every = 20;
  p.to_client.drop_every = 20;
  p.to_server.reorder = true;
  p.to_client.reorder = true;
  ASSERT_TRUE(handshake(p));
  auto data = pattern(3 << 20, 2);
  collector got;
  transfer(p, data, got);
  EXPECT_GT(p.client->stats().lost_packets, 0u);
}

TEST(quic_connection, garbage_and_truncated_datagrams_are_dropped) {
  auto p = make_pair();
  ASSERT_TRUE(handshake(p));
  std::vector<std::byte> last;
  // Capture a real datagram to truncate.
  std::vector<std::byte> buf(size_t{1500} * 64);
  std::vector<std::span<const std::byte>> out;
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid);
  ASSERT_TRUE(p.client->send(*sid, bytes_of("ping"), false));
  ASSERT_GT(p.client->write(p.now, buf, out), 0u);
  std::vector<std::byte> real(out[0].begin(), out[0].end());
  auto noise = pattern(1200, 3);
  for (side s : {side::client, side::server}) {
    p.inject(s, {});
    p.inject(s, noise);
    p.inject(s, std::vector<std::byte>(noise.begin(), noise.begin() + 5));
    p.inject(s, std::vector<std::byte>(real.begin(), real.begin() + 20));
    p.inject(s, std::vector<std::byte>(real.begin(), real.end() - 1));
    auto flipped = real;
    flipped[flipped.size() / 2] ^= std::byte{0x55};
    p.inject(s, flipped);
    // A long-header Initial with random payload.
    auto initial = noise;
    initial[0] = std::byte{0xc3};
    initial[1] = std::byte{0};
    initial[2] = std::byte{0};
    initial[3] = std::byte{0};
    initial[4] = std::byte{1};
    p.inject(s, initial);
  }
  EXPECT_FALSE(p.closed(side::client));
  EXPECT_FALSE(p.closed(side::server));
  EXPECT_GE(p.client->stats().datagrams_dropped, 3u);
  EXPECT_GE(p.server->stats().datagrams_dropped, 3u);
  // Still serving: an echo round trip works.
  auto data = pattern(100000, 4);
  collector got;
  transfer(p, data, got);
  EXPECT_EQ(p.client->state(), connection_state::established);
}

TEST(quic_connection, idle_timeout_closes_when_the_peer_vanishes) {
  transport_config tc;
  tc.idle_timeout = 3s;
  tc.keep_alive = 1s;
  tc.unreachable_timeout = duration::zero(); // the idle timeout's turn
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  // Keep-alive keeps a quiet but present peer connected.
  p.run_for(20s);
  EXPECT_FALSE(p.closed(side::client));
  EXPECT_FALSE(p.closed(side::server));
  // Now the server vanishes: nothing is delivered any more either way.
  p.to_client.deliver = false;
  p.to_server.deliver = false;
  auto start = p.now;
  ASSERT_TRUE(p.run_until(
    [&] {
      return p.closed(side::client) && p.closed(side::server);
    },
    30s));
  EXPECT_LE(p.now - start, 10s);
  for (side s : {side::client, side::server}) {
    auto c = *p.closed(s);
    EXPECT_EQ(c.reason, errc::timeout);
    EXPECT_NE(c.reason.context().find("idle timeout"), std::string::npos)
      << c.reason.context();
    EXPECT_TRUE(p.get(s).finished());
  }
}

// The peer with the longer setting times out after the shorter one (the
// negotiated value), and says so.
TEST(quic_connection, idle_timeout_reports_the_negotiated_value) {
  transport_config client_tc;
  client_tc.idle_timeout = 2s;
  client_tc.keep_alive = duration::zero();
  client_tc.unreachable_timeout = duration::zero();
  transport_config server_tc;
  server_tc.idle_timeout = 30s;
  server_tc.keep_alive = duration::zero();
  pair p{certs().creds(certs().node_a), certs().creds(certs().node_b),
         client_tc, server_tc};
  ASSERT_TRUE(handshake(p));
  p.to_client.deliver = false;
  p.to_server.deliver = false;
  auto start = p.now;
  ASSERT_TRUE(p.run_until_closed(side::server, 40s));
  EXPECT_LE(p.now - start, 3s);
  auto c = *p.closed(side::server);
  EXPECT_EQ(c.reason, errc::timeout);
  EXPECT_NE(c.reason.context().find("2.000 s"), std::string::npos)
    << c.reason.context();
}

// -- reachability -------------------------------------------------------------

namespace {

/// How late past its deadline an unreachable report may come: the harness
/// runs timers at their deadline, so only rounding.
constexpr auto unreachable_slack = 10ms;

/// Sends `text` on a new client stream.
void client_sends(pair& p, std::string_view text) {
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid) << to_string(sid.error());
  auto n = p.client->send(*sid, bytes_of(text));
  ASSERT_TRUE(n) << to_string(n.error());
}

/// Whether `s` reported an unreachable close.
bool unreachable(const pair& p, side s) {
  auto c = p.closed(s);
  return c && c->unreachable;
}

std::string describe(const pair& p, side s) {
  auto c = p.closed(s);
  if (!c) {
    return "open";
  }
  return fmt::format("closed{}{}: {}", c->by_peer ? " by peer" : "",
                     c->unreachable ? " (unreachable)" : "",
                     to_string(c->reason));
}

} // namespace

// The server's packets to the client are lost (a one-way fault): the client
// sends a request, hears nothing back, and reports the server unreachable
// after unreachable_timeout, not before; the server, which still hears the
// client, learns it from the client's CONNECTION_CLOSE: its own packets do
// not arrive, so for it the client is unreachable too.
TEST(quic_connection, one_way_loss_is_reported_unreachable_in_time) {
  transport_config tc; // LAN: idle 30 s, keep-alive 10 s, unreachable 5 s
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  p.run_for(100ms);
  p.to_client.deliver = false;
  auto start = p.now;
  client_sends(p, "request");
  ASSERT_TRUE(p.run_until_closed(side::client, 30s))
    << "client " << describe(p, side::client);
  auto took = p.now - start;
  std::printf("one-way loss with a request in flight: unreachable after "
              "%.3f s\n",
              std::chrono::duration<double>(took).count());
  EXPECT_GE(took, tc.unreachable_timeout) << describe(p, side::client);
  EXPECT_LE(took, tc.unreachable_timeout + unreachable_slack);
  auto c = *p.closed(side::client);
  EXPECT_TRUE(c.unreachable);
  EXPECT_FALSE(c.by_peer);
  EXPECT_EQ(c.reason, errc::connection_lost);
  EXPECT_NE(c.reason.context().find("peer unreachable: nothing received for "
                                    "5000 ms"),
            std::string::npos)
    << c.reason.context();
  EXPECT_EQ(p.client->state(), connection_state::closing);
  ASSERT_TRUE(p.run_until_closed(side::server, 1s))
    << "server " << describe(p, side::server);
  auto s = *p.closed(side::server);
  EXPECT_TRUE(s.by_peer);
  EXPECT_TRUE(s.unreachable) << to_string(s.reason);
  EXPECT_EQ(s.reason, errc::connection_lost);
}

// A quiet connection between two reachable peers lives on: keep-alive PINGs
// are acknowledged, and only our ack-eliciting packets start the clock.
TEST(quic_connection, an_idle_healthy_connection_is_never_unreachable) {
  transport_config tc;
  tc.idle_timeout = 3s;
  tc.keep_alive = 1s;
  tc.unreachable_timeout = 100ms;
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  p.run_for(120s);
  EXPECT_FALSE(p.closed(side::client)) << describe(p, side::client);
  EXPECT_FALSE(p.closed(side::server)) << describe(p, side::server);
  // LAN settings, for several keep-alive periods.
  auto q = make_pair();
  ASSERT_TRUE(handshake(q));
  q.run_for(300s);
  EXPECT_FALSE(q.closed(side::client)) << describe(q, side::client);
  EXPECT_FALSE(q.closed(side::server)) << describe(q, side::server);
}

// With nothing to send, the one-way fault shows once the keep-alive PING
// goes unanswered: within keep_alive + unreachable_timeout.
TEST(quic_connection, an_idle_one_way_loss_is_found_after_the_keep_alive) {
  transport_config tc;
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  p.run_for(1s);
  p.to_client.deliver = false;
  auto start = p.now;
  ASSERT_TRUE(p.run_until_closed(side::client, 60s))
    << "client " << describe(p, side::client);
  auto took = p.now - start;
  std::printf("one-way loss on an idle connection: unreachable after "
              "%.3f s\n",
              std::chrono::duration<double>(took).count());
  EXPECT_TRUE(unreachable(p, side::client)) << describe(p, side::client);
  EXPECT_GE(took, tc.unreachable_timeout);
  EXPECT_LE(took, tc.keep_alive + tc.unreachable_timeout + unreachable_slack);
}

// 0 turns the check off: the same fault lasts until the idle timeout.
TEST(quic_connection, unreachable_timeout_zero_turns_the_check_off) {
  transport_config tc;
  tc.idle_timeout = 3s;
  tc.keep_alive = 1s;
  tc.unreachable_timeout = duration::zero();
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  p.to_client.deliver = false;
  auto start = p.now;
  client_sends(p, "request");
  ASSERT_TRUE(p.run_until_closed(side::client, 30s));
  auto c = *p.closed(side::client);
  EXPECT_FALSE(c.unreachable);
  EXPECT_EQ(c.reason, errc::timeout) << to_string(c.reason);
  EXPECT_GE(p.now - start, tc.idle_timeout - 1s);
}

// A peer that is silent for less than the timeout (a pause: it neither
// reads nor sends for a while, data in flight towards it) is not reported,
// and what was sent meanwhile arrives.
TEST(quic_connection, a_pause_shorter_than_the_timeout_is_not_reported) {
  transport_config tc;
  tc.idle_timeout = 10s;
  tc.keep_alive = 1s;
  tc.unreachable_timeout = 2s;
  auto p = make_pair(tc);
  collector got;
  p.on_event = [&](side s, event& ev) {
    if (s == side::server) {
      if (auto* d = std::get_if<stream_data>(&ev)) {
        got.add(*d);
      }
    }
  };
  ASSERT_TRUE(handshake(p));
  for (int round = 0; round < 3; ++round) {
    p.to_client.hold_until = p.now + 1900ms;
    p.to_server.hold_until = p.now + 1900ms;
    client_sends(p, "during the pause");
    p.run_for(5s);
    EXPECT_FALSE(p.closed(side::client))
      << "round " << round << ": " << describe(p, side::client);
    EXPECT_FALSE(p.closed(side::server))
      << "round " << round << ": " << describe(p, side::server);
  }
  size_t bytes = 0;
  for (auto& [sid, data] : got.data) {
    bytes += data.size();
  }
  EXPECT_EQ(bytes, 3 * std::string_view{"during the pause"}.size());
}

TEST(quic_connection, graceful_close_reports_on_both_sides) {
  auto p = make_pair();
  ASSERT_TRUE(handshake(p));
  p.client->close(42, "shutting down", p.now);
  EXPECT_EQ(p.client->close_reason(), errc::shutting_down);
  ASSERT_TRUE(p.run_until_closed(side::client, 1s));
  auto c = p.closed(side::client);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, errc::shutting_down);
  EXPECT_NE(c->reason.context().find("42: shutting down"), std::string::npos)
    << c->reason.context();
  EXPECT_FALSE(c->by_peer);
  ASSERT_TRUE(p.run_until_closed(side::server, 5s));
  auto s = *p.closed(side::server);
  EXPECT_TRUE(s.by_peer);
  EXPECT_EQ(s.reason, errc::connection_lost);
  EXPECT_EQ(p.server->state(), connection_state::draining);
  EXPECT_EQ(p.client->state(), connection_state::closing);
  // Both are kept ~3 PTO, then finished.
  ASSERT_TRUE(p.run_until(
    [&] {
      return p.client->finished() && p.server->finished();
    },
    5s));
  EXPECT_FALSE(p.client->send(0, bytes_of("x")));
}

// -- rejections ---------------------------------------------------------------

namespace {

struct rejection {
  std::optional<connection_closed> client;
  std::optional<connection_closed> server;
  bool client_handshaken = false;
  bool server_handshaken = false;
};

rejection run_rejection(pair& p) {
  p.run_until(
    [&] {
      return p.closed(side::client) && (!p.server || p.closed(side::server));
    },
    15s);
  return {p.closed(side::client),
          p.server ? p.closed(side::server) : std::nullopt,
          p.handshaken(side::client), p.handshaken(side::server)};
}

void expect_context(const std::optional<connection_closed>& c,
                    std::string_view part) {
  ASSERT_TRUE(c) << "no closed event";
  if (std::getenv("MYCORRIZAL_SHOW_REASONS") != nullptr) {
    std::cout << "  reason: " << to_string(c->reason) << '\n';
  }
  EXPECT_NE(c->reason.context().find(part), std::string::npos)
    << c->reason.context();
}

} // namespace

TEST(quic_connection, client_from_a_foreign_ca_is_rejected) {
  pair p{certs().creds(certs().foreign_a, certs().foreign_ca),
         certs().creds(certs().node_b)};
  // The client trusts only its own (foreign) CA: it rejects the server too;
  // give it a bundle with both to test the server's check alone.
  auto both = certs().ca.cert_pem + certs().foreign_ca.cert_pem;
  auto creds = credentials::from_pem(both, certs().foreign_a.cert_pem,
                                     certs().foreign_a.key_pem,
                                     std::chrono::system_clock::now());
  ASSERT_TRUE(creds);
  pair q{*creds, certs().creds(certs().node_b)};
  auto r = run_rejection(q);
  EXPECT_FALSE(r.client_handshaken);
  EXPECT_FALSE(r.server_handshaken);
  expect_context(r.server, "not signed by our cluster CA");
  expect_context(r.server, "CN=node-a");
  expect_context(r.client, "rejected our certificate");
  // And the client trusting only the foreign CA rejects the server.
  auto r2 = run_rejection(p);
  EXPECT_FALSE(r2.client_handshaken);
  expect_context(r2.client, "not signed by our cluster CA");
  expect_context(r2.client, "CN=node-b");
  expect_context(r2.server, "peer closed");
}

TEST(quic_connection, expired_client_certificate_is_rejected) {
  pair p{certs().creds(certs().expired_a), certs().creds(certs().node_b)};
  auto r = run_rejection(p);
  EXPECT_FALSE(r.client_handshaken);
  EXPECT_FALSE(r.server_handshaken);
  expect_context(r.server, "expired at");
  expect_context(r.client, "rejected our certificate");
}

TEST(quic_connection, client_without_certificate_is_rejected) {
  auto anon = credentials::trust_only(certs().ca.cert_pem);
  ASSERT_TRUE(anon);
  pair p{*anon, certs().creds(certs().node_b)};
  auto r = run_rejection(p);
  EXPECT_FALSE(r.client_handshaken);
  EXPECT_FALSE(r.server_handshaken);
  expect_context(r.server, "sent no certificate");
  expect_context(r.client, "rejected our certificate");
}

TEST(quic_connection, wrong_alpn_is_rejected) {
  transport_config other;
  other.alpn = "other/1";
  pair p{
    certs().creds(certs().node_a), certs().creds(certs().node_b), other, {}};
  auto r = run_rejection(p);
  EXPECT_FALSE(r.client_handshaken);
  EXPECT_FALSE(r.server_handshaken);
  ASSERT_TRUE(r.server);
  EXPECT_EQ(r.server->reason, errc::unsupported_version);
  expect_context(r.server, "ALPN mismatch");
  expect_context(r.client, "closed the connection during the handshake");
}

TEST(quic_connection, unexpected_server_name_is_rejected) {
  pair p{certs().creds(certs().node_a),
         certs().creds(certs().node_c),
         {},
         {},
         "node-b"};
  auto r = run_rejection(p);
  EXPECT_FALSE(r.client_handshaken);
  EXPECT_FALSE(r.server_handshaken);
  expect_context(r.client, "expected 'node-b', the certificate says 'node-c'");
  expect_context(r.server, "peer closed");
  EXPECT_EQ(p.client->peer_name(), "");
}

TEST(quic_connection, invalid_parameters_are_refused) {
  connection_params params;
  params.rng = seeded_rng(1);
  params.transport.cid_length = 2;
  auto c = connection::connect(certs().creds(certs().node_a), params,
                               time_point{});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), errc::invalid_config);
  params.transport.cid_length = 16;
  params.rng = nullptr;
  c = connection::connect(certs().creds(certs().node_a), params, time_point{});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().context().find("rng"), std::string::npos);
  params.rng = seeded_rng(1);
  auto s = connection::accept(certs().creds(certs().node_b), params,
                              bytes_of("not quic"), time_point{});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), errc::malformed_frame);
}

namespace {

// Chunks handed over by move: taken whole when they fit, otherwise not at
// all (left intact) until stream_writable says there is room; the bytes
// arrive in order.
TEST(quic_connection, moved_chunks_are_taken_whole_or_not_at_all) {
  transport_config tc;
  tc.stream_send_buffer = 256 * 1024;
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid) << to_string(sid.error());
  std::deque<std::vector<std::byte>> chunks;
  std::vector<std::byte> expected;
  for (int i = 0; i < 64; ++i) {
    std::vector<std::byte> c(48 * 1024 + static_cast<size_t>(i));
    for (size_t k = 0; k < c.size(); ++k) {
      c[k] = static_cast<std::byte>((k * 7 + static_cast<size_t>(i)) & 0xff);
    }
    expected.insert(expected.end(), c.begin(), c.end());
    chunks.push_back(std::move(c));
  }
  size_t refusals = 0;
  auto push = [&] {
    while (!chunks.empty()) {
      auto size = chunks.front().size();
      auto copy = chunks.front();
      bool last = chunks.size() == 1;
      auto n = p.client->send(*sid, std::move(chunks.front()), last);
      ASSERT_TRUE(n) << to_string(n.error());
      if (*n == 0) {
        // Refused: untouched, and only because it does not fit now.
        ASSERT_EQ(chunks.front(), copy);
        ASSERT_LT(p.client->send_capacity(*sid), size);
        ++refusals;
        return;
      }
      ASSERT_EQ(*n, size) << "a moved chunk was taken in part";
      chunks.pop_front();
    }
  };
  collector got;
  ASSERT_TRUE(push_until_fin(p, *sid, got, push))
    << "received " << got.data[*sid].size() << " of " << expected.size() << ", "
    << chunks.size() << " chunks left";
  EXPECT_GT(refusals, 0u) << "the buffer never filled: the test proves little";
  EXPECT_TRUE(got.data[*sid] == expected) << "bytes differ";
}

// Fills the window from a heavy stream without delivering anything (no
// acknowledgements come back), then queues a small message on a light
// stream. @returns (window left after the heavy stream stopped, datagrams
// the small message's write produced).
std::pair<uint64_t, size_t> fill_then_send_small(size_t reserve,
                                                 bool light_first) {
  transport_config tc;
  tc.latency_reserve = reserve;
  auto p = make_pair(tc);
  EXPECT_TRUE(handshake(p));
  p.run_for(20ms); // acknowledgements of the handshake settle
  auto heavy = p.client->open_stream();
  auto light = p.client->open_stream();
  EXPECT_TRUE(heavy && light);
  std::vector<std::byte> buf(size_t{65536} * 4);
  std::vector<std::span<const std::byte>> out;
  auto now = p.now;
  auto write = [&] {
    out.clear();
    return p.client->write(now, buf, out);
  };
  if (light_first) {
    EXPECT_TRUE(p.client->send(*light, bytes_of("hello"), false));
    EXPECT_GT(write(), 0u);
  }
  EXPECT_TRUE(p.client->send(*heavy, pattern(size_t{1} << 20, 9), false));
  // Write in 20 us steps (pacing spreads the packets) until the heavy
  // stream stops for good: 200 steps without a datagram.
  for (int idle = 0; idle < 200;) {
    now += 20us;
    idle = write() > 0 ? 0 : idle + 1;
  }
  auto st = p.client->stats();
  EXPECT_GT(st.bytes_in_flight, 0u);
  uint64_t left = st.cwnd > st.bytes_in_flight ? st.cwnd - st.bytes_in_flight
                                               : 0;
  EXPECT_TRUE(p.client->send(*light, bytes_of("a small request"), false));
  size_t small = 0;
  for (int i = 0; i < 5 && small == 0; ++i) {
    now += 20us;
    small = write();
  }
  return {left, small};
}

// Bulk data leaves `latency_reserve` of the congestion window to streams
// without a backlog, once such a stream was active: a small message then
// leaves at once instead of waiting for the bulk's acknowledgements.
TEST(quic_connection, bulk_leaves_the_latency_reserve_to_small_messages) {
  {
    SCOPED_TRACE("reserve 4096, a light stream was active");
    auto [left, small] = fill_then_send_small(4096, true);
    EXPECT_GE(left, 4096u);
    EXPECT_GT(small, 0u) << "the small message waited for the bulk";
  }
  {
    SCOPED_TRACE("reserve 0: the bulk fills the window");
    auto [left, small] = fill_then_send_small(0, true);
    EXPECT_LT(left, 4096u);
    EXPECT_EQ(small, 0u) << "the window was not full: the test proves little";
  }
  {
    SCOPED_TRACE("reserve 4096, no light stream active yet");
    auto [left, small] = fill_then_send_small(4096, false);
    EXPECT_LT(left, 4096u);
  }
}

// A moved chunk larger than the whole send buffer is taken whole (no copy
// in pieces), but only when nothing else is buffered on the stream; small
// chunks queued behind it wait for room as usual.
TEST(quic_connection, a_moved_chunk_larger_than_the_buffer_is_taken_whole) {
  transport_config tc;
  tc.stream_send_buffer = 64 * 1024;
  auto p = make_pair(tc);
  ASSERT_TRUE(handshake(p));
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid) << to_string(sid.error());
  std::deque<std::vector<std::byte>> chunks;
  std::vector<std::byte> expected;
  for (int i = 0; i < 12; ++i) {
    // Alternating 300 KiB + i and 1 KiB + i chunks.
    size_t size = (i % 2 == 0 ? 300 * 1024 : 1024) + static_cast<size_t>(i);
    std::vector<std::byte> c(size);
    for (size_t k = 0; k < c.size(); ++k) {
      c[k] = static_cast<std::byte>((k * 13 + static_cast<size_t>(i)) & 0xff);
    }
    expected.insert(expected.end(), c.begin(), c.end());
    chunks.push_back(std::move(c));
  }
  size_t big_taken = 0;
  size_t big_refused = 0;
  std::string failure;
  auto push = [&] {
    while (!chunks.empty() && failure.empty()) {
      auto size = chunks.front().size();
      auto before = p.client->send_capacity(*sid);
      auto copy = chunks.front();
      bool last = chunks.size() == 1;
      auto n = p.client->send(*sid, std::move(chunks.front()), last);
      if (!n) {
        failure = to_string(n.error());
        return;
      }
      if (*n == 0) {
        if (chunks.front() != copy) {
          failure = "a refused chunk was changed";
        }
        if (size > tc.stream_send_buffer) {
          ++big_refused;
          if (before == tc.stream_send_buffer) {
            failure = "a large chunk was refused on an empty buffer";
          }
        }
        return;
      }
      if (*n != size) {
        failure = "a moved chunk was taken in part: " + std::to_string(*n)
                  + " of " + std::to_string(size);
        return;
      }
      if (size > tc.stream_send_buffer) {
        ++big_taken;
        if (before != tc.stream_send_buffer) {
          failure = "a large chunk was taken beside buffered bytes";
        }
      }
      chunks.pop_front();
    }
  };
  collector got;
  ASSERT_TRUE(push_until_fin(p, *sid, got, push,
                             [&] {
                               return !failure.empty();
                             }))
    << "received " << got.data[*sid].size() << " of " << expected.size() << ", "
    << chunks.size() << " chunks left";
  ASSERT_EQ(failure, "");
  EXPECT_EQ(big_taken, 6u);
  EXPECT_GT(big_refused, 0u) << "no large chunk waited: the test proves little";
  EXPECT_TRUE(got.data[*sid] == expected) << "bytes differ";
}

// A large chunk goes back to its owner once the peer acknowledged it (the
// owner chooses where the free happens), as the same buffer, never before
// the peer received its bytes; small chunks are freed inside the core.
TEST(quic_connection, acknowledged_large_chunks_come_back_to_the_owner) {
  auto p = make_pair();
  ASSERT_TRUE(handshake(p));
  auto sid = p.client->open_stream();
  ASSERT_TRUE(sid) << to_string(sid.error());
  struct sent_chunk {
    const std::byte* storage = nullptr;
    size_t size = 0;
    /// The stream offset just past the chunk.
    size_t end = 0;
  };
  std::vector<sent_chunk> large;
  std::vector<std::byte> expected;
  std::deque<std::vector<std::byte>> chunks;
  for (size_t i = 0; i < 8; ++i) {
    // released_chunk_min exactly, 1 KiB, 1 MiB + i, and one byte short of
    // released_chunk_min (freed inside the core).
    size_t size = std::array<size_t, 4>{released_chunk_min, 1024,
                                        (size_t{1} << 20) + i,
                                        released_chunk_min - 1}[i % 4];
    auto c = pattern(size, static_cast<uint32_t>(i));
    expected.insert(expected.end(), c.begin(), c.end());
    if (size >= released_chunk_min) {
      large.push_back({c.data(), size, expected.size()});
    }
    chunks.push_back(std::move(c));
  }
  collector got;
  std::vector<std::string> problems;
  std::vector<const std::byte*> released;
  p.on_event = [&](side s, event& ev) {
    if (s == side::server) {
      if (auto* d = std::get_if<stream_data>(&ev)) {
        got.add(*d);
      }
      return;
    }
    auto* r = std::get_if<send_chunk_released>(&ev);
    if (r == nullptr) {
      return;
    }
    auto k = std::find_if(large.begin(), large.end(), [&](const auto& c) {
      return c.storage == r->data.data();
    });
    if (r->stream_id != *sid || k == large.end()) {
      problems.push_back(fmt::format(
        "released a buffer that is not one of the large chunks moved in: "
        "stream {} (sent on {}), {} bytes at {}",
        r->stream_id, *sid, r->data.size(),
        static_cast<const void*>(r->data.data())));
      return;
    }
    if (r->data.size() != k->size) {
      problems.push_back("released chunk changed size");
    }
    if (got.data[*sid].size() < k->end) {
      problems.push_back("released a chunk ending at " + std::to_string(k->end)
                         + " when the server had "
                         + std::to_string(got.data[*sid].size()));
    }
    auto start = expected.begin() + static_cast<ptrdiff_t>(k->end - k->size);
    if (!std::equal(r->data.begin(), r->data.end(), start)) {
      problems.push_back("released chunk's bytes differ");
    }
    released.push_back(r->data.data());
  };
  while (!chunks.empty()) {
    bool last = chunks.size() == 1;
    auto n = p.client->send(*sid, std::move(chunks.front()), last);
    ASSERT_TRUE(n) << to_string(n.error());
    if (*n > 0) {
      chunks.pop_front();
      continue;
    }
    ASSERT_TRUE(p.run_until(
      [&] {
        return p.client->send_capacity(*sid) >= chunks.front().size();
      },
      10s))
      << "the send buffer never freed";
  }
  ASSERT_TRUE(p.run_until(
    [&] {
      return released.size() == large.size() || !problems.empty();
    },
    30s))
    << "released " << released.size() << " of " << large.size()
    << " large chunks; server received " << got.data[*sid].size() << " of "
    << expected.size();
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_TRUE(got.data[*sid] == expected) << "bytes differ";
}

} // namespace

namespace {

struct beside_bulk {
  duration small_wait{};
  double bulk_bytes_per_s = 0;
  uint64_t max_in_flight = 0;
};

struct bottleneck {
  size_t payload = 65527; // route-sized, as to a loopback peer
  duration delay = 20us;
  double rate = 500e6;
  duration warmup = 20ms;
  duration measure = 40ms;
};

// A handshaken client with a bulk stream and a light one over `path`.
struct bulk_beside_light {
  pair p;
  std::optional<int64_t> heavy;
  std::optional<int64_t> light;
  // The bulk's content does not matter here: a chunk taken in part is not
  // sent again.
  std::vector<std::byte> chunk = pattern(size_t{1} << 20, 3);

  bulk_beside_light(const bottleneck& path, size_t bulk_in_flight)
      : p(make_pair([&] {
          transport_config tc;
          tc.max_udp_payload = path.payload;
          tc.fixed_udp_payload = true;
          tc.bulk_in_flight = bulk_in_flight;
          return tc;
        }())) {
    p.delay = path.delay;
    p.to_server.rate = path.rate;
    p.to_client.rate = path.rate;
    EXPECT_TRUE(handshake(p));
    heavy = to_optional(p.client->open_stream());
    light = to_optional(p.client->open_stream());
    EXPECT_TRUE(heavy && light);
  }

  static std::optional<int64_t> to_optional(expected<int64_t> x) {
    return x ? std::optional<int64_t>{*x} : std::nullopt;
  }

  bool ok() const {
    return heavy && light;
  }

  // Fills the bulk stream's send buffer.
  void push() {
    for (;;) {
      auto n = p.client->send(*heavy, chunk, false);
      if (!n || *n < chunk.size()) {
        EXPECT_TRUE(n);
        return;
      }
    }
  }
};

// A bulk transfer over a bottleneck with a light stream active (a small
// write every millisecond throughout); after `warmup` a small message on
// it. Measures the small
// message's one-way time and the bulk's rate over `measure`. With
// `own_light` the light writes are the bulk stream's own (no small
// message: it would queue behind the bulk on its own stream).
beside_bulk small_beside_bulk(size_t bulk_in_flight, const bottleneck& path,
                              bool own_light = false) {
  beside_bulk out;
  bulk_beside_light b{path, bulk_in_flight};
  if (!b.ok()) {
    return out;
  }
  auto& p = b.p;
  auto heavy = b.heavy;
  auto light = b.light;
  EXPECT_TRUE(
    p.client->send(own_light ? *heavy : *light, bytes_of("hello"), false));
  p.run_for(1ms);
  auto push = [&] {
    b.push();
  };
  uint64_t bulk_received = 0;
  std::optional<time_point> small_arrived;
  p.on_event = [&](side s, event& ev) {
    if (s == side::server) {
      if (auto* d = std::get_if<stream_data>(&ev)) {
        if (d->stream_id == *heavy) {
          bulk_received += d->data.size();
        } else if (text_of(d->data).find("small") != std::string::npos) {
          small_arrived = p.now;
        }
      }
    } else if (std::holds_alternative<stream_writable>(ev)) {
      push();
    }
  };
  auto sample = [&] {
    out.max_in_flight = std::max(out.max_in_flight,
                                 p.client->stats().bytes_in_flight);
  };
  // Runs until `end` with a small write every millisecond.
  auto run_ticking = [&](time_point end) {
    while (p.now < end) {
      EXPECT_TRUE(
        p.client->send(own_light ? *heavy : *light, bytes_of("tick"), false));
      auto until = std::min<time_point>(p.now + 1ms, end);
      p.run_until(
        [&] {
          sample();
          return false;
        },
        until - p.now);
    }
  };
  push();
  run_ticking(p.now + path.warmup);
  out.max_in_flight = 0;
  auto t0 = p.now;
  auto bytes0 = bulk_received;
  if (!own_light) {
    EXPECT_TRUE(p.client->send(*light, bytes_of("a small request"), false));
    EXPECT_TRUE(p.run_until(
      [&] {
        sample();
        return small_arrived.has_value();
      },
      1s));
  }
  if (small_arrived) {
    out.small_wait = *small_arrived - t0;
  }
  run_ticking(t0 + path.measure);
  out.bulk_bytes_per_s = static_cast<double>(bulk_received - bytes0)
                         / std::chrono::duration<double>(p.now - t0).count();
  return out;
}

std::string describe(const beside_bulk& limited, const beside_bulk& unlimited) {
  auto us = [](duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  };
  return fmt::format(
    "limited: wait {} us, bulk {:.1f} MB/s, max in flight {}; unlimited: "
    "wait {} us, bulk {:.1f} MB/s, max in flight {}",
    us(limited.small_wait), limited.bulk_bytes_per_s / 1e6,
    limited.max_in_flight, us(unlimited.small_wait),
    unlimited.bulk_bytes_per_s / 1e6, unlimited.max_in_flight);
}

} // namespace

// While small messages are about, bulk streams keep `bulk_in_flight` (or
// twice the path's BDP) in flight instead of the whole congestion window:
// a small message queues behind less at the bottleneck.
TEST(quic_connection, small_messages_beside_bulk_wait_behind_little) {
  bottleneck path; // 500 MB/s, 40 us round trip, 64 KB packets
  auto limited = small_beside_bulk(64 * 1024, path);
  auto unlimited = small_beside_bulk(0, path);
  auto seen = describe(limited, unlimited);
  EXPECT_GT(unlimited.small_wait, 500us)
    << "the bottleneck held no queue: the test proves little; " << seen;
  EXPECT_LT(limited.small_wait * 2, unlimited.small_wait) << seen;
  EXPECT_LT(limited.max_in_flight, unlimited.max_in_flight / 2) << seen;
  // The price: with one 64 KB packet in flight (131 us on this link) the
  // link idles while its acknowledgement travels back, about 30 % here.
  EXPECT_GT(limited.bulk_bytes_per_s, 0.6 * path.rate) << seen;
  EXPECT_GT(unlimited.bulk_bytes_per_s, 0.9 * path.rate) << seen;
  // A stream's own small writes (a sender of many small messages that
  // falls behind now and then) do not hold it back.
  auto own = small_beside_bulk(64 * 1024, path, true);
  EXPECT_GT(own.max_in_flight, limited.max_in_flight * 2)
    << "own light writes: max in flight " << own.max_in_flight << "; " << seen;
  EXPECT_GT(own.bulk_bytes_per_s, 0.9 * path.rate)
    << "own light writes: " << own.bulk_bytes_per_s / 1e6 << " MB/s";
}

namespace {

/// The largest number of bytes in flight of a bulk transfer in two spans
/// after a light stream's last small write: [5, 15) ms (what was in flight
/// before the write has drained by then) and [40, 80) ms.
struct after_light {
  uint64_t soon = 0;
  uint64_t later = 0;
};

// `writes` small writes on a light stream, `gap` apart, while a bulk
// transfer runs over a 500 MB/s link with 64 KB packets.
after_light bulk_after_light(int writes, duration gap) {
  after_light out;
  bulk_beside_light b{bottleneck{}, transport_config{}.bulk_in_flight};
  if (!b.ok()) {
    return out;
  }
  auto& p = b.p;
  auto light = b.light;
  auto push = [&] {
    b.push();
  };
  p.on_event = [&](side s, event& ev) {
    if (s == side::client && std::holds_alternative<stream_writable>(ev)) {
      push();
    }
  };
  push();
  p.run_for(5ms);
  for (int i = 0; i < writes; ++i) {
    EXPECT_TRUE(p.client->send(*light, bytes_of("small"), false));
    p.run_for(i + 1 < writes ? gap : duration::zero());
  }
  auto last = p.now;
  auto max_until = [&](duration until) {
    uint64_t max = 0;
    p.run_until(
      [&] {
        max = std::max(max, p.client->stats().bytes_in_flight);
        return false;
      },
      last + until - p.now);
    return max;
  };
  p.run_for(last + 5ms - p.now);
  out.soon = max_until(15ms);
  p.run_for(last + 40ms - p.now);
  out.later = max_until(80ms);
  return out;
}

} // namespace

// How long small messages hold bulk back follows how often they come: a
// request stream that wrote every 500 us is covered between its writes,
// and once it stops the bulk runs free within tens of milliseconds; one
// that writes every 200 ms holds the bulk back from write to write; a
// single small write (a control message) only briefly.
TEST(quic_connection, the_bulk_limit_follows_how_often_small_writes_come) {
  auto frequent = bulk_after_light(20, 500us);
  auto sparse = bulk_after_light(3, 200ms);
  auto single = bulk_after_light(1, 0us);
  auto seen = fmt::format(
    "max in flight 5-15 ms / 40-80 ms after the last small write: every "
    "500 us: {} / {}; every 200 ms: {} / {}; one write: {} / {}",
    frequent.soon, frequent.later, sparse.soon, sparse.later, single.soon,
    single.later);
  // Held back right after the last write: one 64 KB packet in flight, or
  // two while the first one's acknowledgement is on its way.
  for (auto* x : {&frequent, &sparse, &single}) {
    EXPECT_LE(x->soon, 2 * 65527u) << seen;
  }
  // Later: free again after frequent writes and after a single one (20 ms
  // after them), still held when the writes come every 200 ms.
  EXPECT_GT(frequent.later, 4 * 65527u) << seen;
  EXPECT_GT(single.later, 4 * 65527u) << seen;
  EXPECT_LE(sparse.later, 2 * 65527u) << seen;
}

// On a long path twice the bandwidth-delay product is far more than
// `bulk_in_flight`: the limit grows with it and the bulk keeps its rate.
TEST(quic_connection, the_bulk_limit_grows_with_a_long_path) {
  bottleneck path;
  path.payload = 1452;
  path.delay = 5ms; // 10 ms round trip, BDP 1 MB at 100 MB/s
  path.rate = 100e6;
  path.warmup = 300ms;
  path.measure = 200ms;
  auto limited = small_beside_bulk(64 * 1024, path);
  auto unlimited = small_beside_bulk(0, path);
  auto seen = describe(limited, unlimited);
  EXPECT_GT(limited.max_in_flight, 8 * 64 * 1024u) << seen;
  EXPECT_GT(limited.bulk_bytes_per_s, 0.8 * unlimited.bulk_bytes_per_s) << seen;
}
