// SPDX-License-Identifier: Apache-2.0
// Fuzz target: arbitrary bytes into a TLS server session over a stream (the
// Redis front door's --resp-tls), split into reads at points the input
// chooses, before or after a real client's first flight. Input: byte 0
// picks the client authentication mode and whether the real ClientHello
// goes first; then [u16 length][bytes] chunks.
//
// Checks, besides "no crash, no sanitizer report": no application bytes
// come out (nobody completes a handshake without the client's Finished);
// once `receive` failed, it keeps failing and `send` does too.
#include "mycorrizal/quic/tls_stream.hpp"

#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/credentials.hpp"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

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
      auto rng = seeded(11);
      auto now = std::chrono::system_clock::now();
      auto ca = must(quic::make_ca({"Fuzz CA", now - 1h, 24h * 365}, rng));
      auto s = must(quic::make_node_cert(ca, {"server", now - 1h, 24h}, rng));
      auto c = must(quic::make_node_cert(ca, {"client", now - 1h, 24h}, rng));
      return fixture{
        must(
          quic::credentials::from_pem(ca.cert_pem, s.cert_pem, s.key_pem, now)),
        must(
          quic::credentials::from_pem(ca.cert_pem, c.cert_pem, c.key_pem, now)),
      };
    }();
    return f;
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const auto& fx = fixture::get();
  auto wall = std::chrono::system_clock::now();
  auto mode = data[0] % 3 == 0   ? quic::client_auth::required
              : data[0] % 3 == 1 ? quic::client_auth::optional
                                 : quic::client_auth::none;
  auto server = must(quic::tls_stream::server(fx.server, mode, wall));
  std::string plain;
  bool failed = false;
  auto feed = [&](const std::byte* p, size_t n) {
    auto ok = server.receive({p, n}, plain);
    if (failed && ok) {
      std::abort(); // a dead session came back
    }
    failed = failed || !ok;
    static_cast<void>(server.take_output());
  };
  if ((data[0] & 0x80) != 0) {
    auto client = must(quic::tls_stream::client(fx.client, wall, "server"));
    auto hello = client.take_output();
    feed(reinterpret_cast<const std::byte*>(hello.data()), hello.size());
  }
  size_t i = 1;
  while (i + 2 <= size) {
    size_t n = (static_cast<size_t>(data[i]) << 8) | data[i + 1];
    i += 2;
    n = std::min(n, size - i);
    feed(reinterpret_cast<const std::byte*>(data + i), n);
    i += n;
  }
  if (!plain.empty()) {
    std::abort(); // application data without a finished handshake
  }
  if (failed && server.send("x")) {
    std::abort();
  }
  return 0;
}
