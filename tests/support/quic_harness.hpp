// SPDX-License-Identifier: Apache-2.0
// Test support for the QUIC cores: certificates made at test time, and two
// connection cores wired back to back in virtual time (no sockets).
#pragma once

#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/connection.hpp"
#include "mycorrizal/quic/credentials.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace mycorrizal::quic::test {

using namespace std::chrono_literals;

/// A seeded random source.
inline random_bytes seeded_rng(uint64_t seed) {
  auto gen = std::make_shared<std::mt19937_64>(seed);
  return [gen](std::span<std::byte> out) {
    for (auto& b : out) {
      b = static_cast<std::byte>((*gen)() & 0xff);
    }
  };
}

/// Certificates for the tests, made once per process.
struct pki {
  cert_and_key ca;
  cert_and_key node_a;
  cert_and_key node_b;
  cert_and_key node_c;
  cert_and_key foreign_ca;
  cert_and_key foreign_a; ///< "node-a", signed by foreign_ca.
  cert_and_key expired_a; ///< "node-a", expired ten days ago.
  cert_and_key future_a;  ///< "node-a", valid from tomorrow.

  static const pki& get();

  credentials creds(const cert_and_key& node, const cert_and_key& trust) const;
  credentials creds(const cert_and_key& node) const {
    return creds(node, ca);
  }
};

/// The test certificates (made once per process).
inline const pki& certs() {
  return pki::get();
}

/// Which connection of a pair.
enum class side { client, server };

/// Delivery rules for one direction.
struct link_rules {
  /// Drop every n-th datagram (0: none).
  size_t drop_every = 0;
  /// Delay every other datagram by an extra 300 us (swaps neighbours).
  bool reorder = false;
  /// Deliver at all (false: the peer vanished).
  bool deliver = true;
  /// Datagrams sent before this time arrive no earlier than this time plus
  /// the delay, in order (a paused peer: they wait in a socket buffer).
  time_point hold_until{};
  /// A bottleneck of this many bytes per second (0: none): datagrams leave
  /// one after the other and queue while the link is busy.
  double rate = 0;
};

/// A client and a server connection core, passing datagrams in virtual time
/// with a fixed one-way delay.
class pair {
public:
  pair(const credentials& client_creds, credentials server_creds,
       transport_config client_tc = {}, transport_config server_tc = {},
       std::string expected_name = "node-b");

  /// The current virtual time.
  time_point now;

  std::optional<connection> client;
  std::optional<connection> server;

  /// Everything each side reported so far.
  std::vector<event> client_events;
  std::vector<event> server_events;

  link_rules to_server;
  link_rules to_client;

  /// One-way delay.
  duration delay = 200us;

  /// Called for every event as it happens (before it is stored).
  std::function<void(side, event&)> on_event;

  /// Consume received stream data at once (extend windows).
  bool auto_consume = true;

  /// Runs until `done()` or until `limit` of virtual time passed.
  /// @returns whether `done()` became true.
  bool run_until(const std::function<bool()>& done,
                 duration limit = std::chrono::seconds{60});

  /// Runs for `d` of virtual time.
  void run_for(duration d);

  /// Feeds raw bytes to a side as if they arrived from its peer.
  void inject(side to, std::vector<std::byte> bytes);

  /// First closed event of a side, if any.
  std::optional<connection_closed> closed(side s) const;

  /// Runs until side `s` reported its close, `limit` at most.
  /// @returns whether it did.
  bool run_until_closed(side s, duration limit = std::chrono::seconds{60});

  /// Whether a side reported handshake_completed.
  bool handshaken(side s) const;

  connection& get(side s) {
    return s == side::client ? *client : *server;
  }

  /// Datagrams passed in each direction (including dropped ones).
  size_t sent_to_server = 0;
  size_t sent_to_client = 0;

private:
  void flush(side from);
  bool step(time_point limit);
  void drain_events(side s);

  credentials server_creds_;
  transport_config server_tc_;
  std::multimap<time_point, std::vector<std::byte>> in_flight_[2];
  /// When each direction's bottleneck is free again (`link_rules::rate`).
  time_point link_free_[2];
  std::vector<std::byte> buffer_;
  std::vector<std::span<const std::byte>> out_;
};

} // namespace mycorrizal::quic::test
