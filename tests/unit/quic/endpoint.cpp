// SPDX-License-Identifier: Apache-2.0
// Suite quic.endpoint: CID routing, accept, Version Negotiation, removal
// after the closing/draining period; endpoints wired in virtual time.
#include "mycorrizal/quic/endpoint.hpp"

#include "support/quic_harness.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace mycorrizal;
using namespace mycorrizal::quic;
using namespace mycorrizal::quic::test;
using namespace std::chrono_literals;

namespace {

const ip_endpoint server_ep = ip_endpoint::v4(10, 0, 0, 9, 7946);

/// A server endpoint and N client endpoints on a lossless network.
struct net {
  time_point now = time_point{} + 1000s;
  std::map<ip_endpoint, endpoint> eps;
  std::multimap<time_point, std::pair<ip_endpoint, outgoing_datagram>> queue;
  std::vector<std::vector<std::byte>> storage;
  std::map<ip_endpoint, std::vector<endpoint_event>> seen;
  std::vector<std::byte> buffer = std::vector<std::byte>(size_t{64} * 1500);

  void add(const ip_endpoint& at, const cert_and_key& node, bool accept,
           uint64_t seed) {
    endpoint_params p;
    p.rng = seeded_rng(seed);
    p.local = at;
    p.accept = accept;
    auto ep = endpoint::make(pki::get().creds(node), p);
    ASSERT_TRUE(ep);
    eps.emplace(at, std::move(*ep));
  }

  endpoint& at(const ip_endpoint& x) {
    return eps.at(x);
  }

  void flush() {
    for (auto& [addr, ep] : eps) {
      std::vector<outgoing_datagram> out;
      ep.write(now, buffer, out);
      for (auto& d : out) {
        storage.emplace_back(d.bytes.begin(), d.bytes.end());
        queue.emplace(now + 100us,
                      std::make_pair(addr,
                                     outgoing_datagram{d.to, storage.back()}));
      }
      for (auto& ev : ep.events()) {
        if (auto* sd = std::get_if<stream_data>(&ev.what)) {
          if (auto* c = ep.find(ev.id)) {
            c->consume(sd->stream_id, sd->data.size());
          }
        }
        seen[addr].push_back(std::move(ev));
      }
      ep.events().clear();
    }
  }

  bool run_until(const std::function<bool()>& done, duration limit) {
    auto end = now + limit;
    while (!done()) {
      flush();
      auto next = time_point::max();
      if (!queue.empty()) {
        next = queue.begin()->first;
      }
      for (auto& [addr, ep] : eps) {
        next = std::min(next, ep.next_deadline());
      }
      if (next > end) {
        now = end;
        return done();
      }
      now = std::max(now, next);
      while (!queue.empty() && queue.begin()->first <= now) {
        auto [from, d] = queue.begin()->second;
        queue.erase(queue.begin());
        if (auto i = eps.find(d.to); i != eps.end()) {
          i->second.handle_datagram(from, d.bytes, now,
                                    std::chrono::system_clock::now());
        }
      }
      for (auto& [addr, ep] : eps) {
        if (ep.next_deadline() <= now) {
          ep.on_timeout(now);
        }
      }
    }
    return true;
  }

  size_t count_handshakes(const ip_endpoint& addr) {
    size_t n = 0;
    for (auto& ev : seen[addr]) {
      n += std::holds_alternative<handshake_completed>(ev.what) ? 1 : 0;
    }
    return n;
  }
};

} // namespace

TEST(quic_endpoint, routes_several_clients_and_removes_closed_ones) {
  net n;
  n.add(server_ep, pki::get().node_b, true, 100);
  std::vector<ip_endpoint> clients;
  for (uint8_t i = 1; i <= 5; ++i) {
    auto addr = ip_endpoint::v4(10, 0, 1, i, 40000);
    n.add(addr, pki::get().node_a, false, 200 + i);
    auto id = n.at(addr).connect(server_ep, "node-b", n.now,
                                 std::chrono::system_clock::now());
    ASSERT_TRUE(id) << to_string(id.error());
    clients.push_back(addr);
  }
  ASSERT_TRUE(n.run_until(
    [&] {
      if (n.count_handshakes(server_ep) != 5) {
        return false;
      }
      for (auto& c : clients) {
        if (n.count_handshakes(c) != 1) {
          return false;
        }
      }
      return true;
    },
    5s));
  auto& server = n.at(server_ep);
  EXPECT_EQ(server.size(), 5u);
  EXPECT_EQ(server.stats().connections_accepted, 5u);
  // Each connection has more than one route (original DCID, SCID, ids from
  // NEW_CONNECTION_ID).
  EXPECT_GT(server.routes(), 5u);
  // Every client closes; the server keeps them ~3 PTO, then removes them.
  for (auto& c : clients) {
    auto* conn = n.at(c).find(1);
    ASSERT_NE(conn, nullptr);
    conn->close(0, "bye", n.now);
  }
  ASSERT_TRUE(n.run_until(
    [&] {
      return server.size() == 0 && n.at(clients[0]).size() == 0;
    },
    5s));
  EXPECT_EQ(server.routes(), 0u);
  EXPECT_EQ(server.stats().connections_removed, 5u);
}

TEST(quic_endpoint, unknown_version_gets_version_negotiation) {
  net n;
  n.add(server_ep, pki::get().node_b, true, 100);
  std::vector<std::byte> pkt(1200);
  pkt[0] = std::byte{0xc0};
  // Version 0x1a2a3a4a (reserved for negotiation tests).
  pkt[1] = std::byte{0x1a};
  pkt[2] = std::byte{0x2a};
  pkt[3] = std::byte{0x3a};
  pkt[4] = std::byte{0x4a};
  pkt[5] = std::byte{8};
  for (int i = 0; i < 8; ++i) {
    pkt[6 + i] = std::byte{0x11};
  }
  pkt[14] = std::byte{8};
  for (int i = 0; i < 8; ++i) {
    pkt[15 + i] = std::byte{0x22};
  }
  auto from = ip_endpoint::v4(10, 0, 1, 1, 40000);
  auto& server = n.at(server_ep);
  server.handle_datagram(from, pkt, n.now, std::chrono::system_clock::now());
  std::vector<outgoing_datagram> out;
  ASSERT_EQ(server.write(n.now, n.buffer, out), 1u);
  EXPECT_EQ(out[0].to, from);
  EXPECT_EQ(server.stats().version_negotiations_sent, 1u);
  // Version 0 marks Version Negotiation; the DCID echoes the client's SCID.
  EXPECT_EQ(out[0].bytes[1], std::byte{0});
  EXPECT_EQ(out[0].bytes[4], std::byte{0});
  EXPECT_EQ(out[0].bytes[5], std::byte{8});
  EXPECT_EQ(out[0].bytes[6], std::byte{0x22});
  EXPECT_EQ(server.size(), 0u);
  // Garbage and non-Initial short packets are dropped and counted.
  server.handle_datagram(from, std::vector<std::byte>(50), n.now,
                         std::chrono::system_clock::now());
  server.handle_datagram(from, {}, n.now, std::chrono::system_clock::now());
  EXPECT_EQ(server.stats().datagrams_dropped, 2u);
  EXPECT_EQ(server.size(), 0u);
}
