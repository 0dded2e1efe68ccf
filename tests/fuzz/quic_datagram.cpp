// SPDX-License-Identifier: Apache-2.0
// Fuzz target: arbitrary datagrams into a QUIC server endpoint (routing,
// Version Negotiation, accept) and into a client connection that waits for
// its server's first flight. Input: a sequence of [u16 length][bytes]
// datagrams; the first byte picks which side receives each one.
//
// Both sides first exchange their real first flights (the client's Initial
// reaches the server; the server's reply reaches the client when bit 1 of the
// first byte is set), then the fuzzed datagrams follow.
//
// Checks, besides "no crash, no sanitizer report": the endpoint counts every
// datagram it got; nobody is authenticated (the client's Finished never
// reaches the server, so neither side can complete); the routing table is
// empty once no connection is left.
#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/endpoint.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

quic::random_bytes seeded(uint64_t seed) {
  auto gen = std::make_shared<std::mt19937_64>(seed);
  return [gen](std::span<std::byte> out) {
    for (auto& b : out) {
      b = static_cast<std::byte>((*gen)() & 0xff);
    }
  };
}

template <class T>
T must(expected<T> x) {
  if (!x) {
    std::abort();
  }
  return std::move(*x);
}

struct fixture {
  quic::credentials server;
  quic::credentials client;

  static const fixture& get() {
    static const fixture f = [] {
      auto rng = seeded(7);
      auto now = std::chrono::system_clock::now();
      auto ca = must(quic::make_ca({"Fuzz CA", now - 1h, 24h * 365}, rng));
      auto a = must(quic::make_node_cert(ca, {"node-a", now - 1h, 24h}, rng));
      auto b = must(quic::make_node_cert(ca, {"node-b", now - 1h, 24h}, rng));
      return fixture{
        must(
          quic::credentials::from_pem(ca.cert_pem, b.cert_pem, b.key_pem, now)),
        must(
          quic::credentials::from_pem(ca.cert_pem, a.cert_pem, a.key_pem, now)),
      };
    }();
    return f;
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& fx = fixture::get();
  auto server_addr = ip_endpoint::v4(127, 0, 0, 2, 4433);
  auto client_addr = ip_endpoint::v4(127, 0, 0, 1, 5000);
  quic::endpoint_params sp;
  sp.rng = seeded(1);
  sp.local = server_addr;
  sp.max_connections = 4;
  auto server = must(quic::endpoint::make(fx.server, sp));
  quic::endpoint_params cp;
  cp.rng = seeded(2);
  cp.local = client_addr;
  cp.accept = false;
  auto client = must(quic::endpoint::make(fx.client, cp));
  auto now = quic::time_point{} + 1h;
  auto wall = std::chrono::system_clock::now();
  must(client.connect(server_addr, "node-b", now, wall));
  std::vector<std::byte> buf(64 * 1452);
  std::vector<quic::outgoing_datagram> out;
  client.write(now, buf, out);
  // The real first flights, so that the fuzzed datagrams meet a server
  // connection in its handshake and a client that heard its server.
  uint64_t to_server = 0;
  for (auto& d : out) {
    server.handle_datagram(client_addr, d.bytes, now, wall);
    ++to_server;
  }
  std::vector<std::byte> buf2(64 * 1452);
  out.clear();
  server.write(now, buf2, out);
  if (size > 0 && (data[0] & 2) != 0) {
    for (auto& d : out) {
      client.handle_datagram(server_addr, d.bytes, now, wall);
    }
  }
  size_t pos = 0;
  while (pos + 3 <= size) {
    bool to_client = (data[pos] & 1) != 0;
    size_t len = (size_t{data[pos + 1]} << 8) | data[pos + 2];
    pos += 3;
    len = std::min(len, size - pos);
    auto dgram = std::span<const std::byte>{
      reinterpret_cast<const std::byte*>(data + pos), len};
    pos += len;
    now += 3ms;
    if (to_client) {
      client.handle_datagram(server_addr, dgram, now, wall);
    } else {
      server.handle_datagram(client_addr, dgram, now, wall);
      ++to_server;
    }
    out.clear();
    server.write(now, buf, out);
    out.clear();
    client.write(now, buf, out);
    server.on_timeout(now);
    client.on_timeout(now);
  }
  if (server.stats().datagrams_received != to_server) {
    std::abort();
  }
  // The server never got the client's Finished: nobody is authenticated.
  for (auto& ev : server.events()) {
    if (std::holds_alternative<quic::handshake_completed>(ev.what)) {
      std::abort();
    }
  }
  for (auto& ev : client.events()) {
    if (std::holds_alternative<quic::handshake_completed>(ev.what)) {
      std::abort();
    }
  }
  if (server.size() == 0 && server.routes() != 0) {
    std::abort();
  }
  return 0;
}
