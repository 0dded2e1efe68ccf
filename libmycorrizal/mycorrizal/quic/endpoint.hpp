// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/log_sink.hpp"
#include "mycorrizal/quic/cid_router.hpp"
#include "mycorrizal/quic/connection.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/fwd.hpp"
#include "mycorrizal/quic/transport_config.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

/// The QUIC endpoint of one UDP socket, sans-I/O: routes received datagrams
/// to connections by destination connection id (the client's original DCID
/// on a server, our initial SCID, every id issued by NEW_CONNECTION_ID;
/// routes disappear when ngtcp2 retires an id or the connection ends),
/// accepts new connections from client Initials, answers unknown QUIC
/// versions with Version Negotiation, and keeps a closed connection for its
/// closing/draining period (3 x PTO, inside `connection`) before dropping
/// it. Datagrams for no known connection that are not Initials are dropped
/// and counted (no stateless reset: we keep no reset secret yet).
namespace mycorrizal::quic {

/// What an endpoint needs.
struct endpoint_params {
  /// For every connection of this endpoint; `cid_length` is the routing key
  /// length.
  transport_config transport;
  /// Randomness for all connections. Required.
  random_bytes rng;
  /// Optional diagnostics sink.
  log_sink log;
  /// The local socket address.
  ip_endpoint local;
  /// Accept connections from clients.
  bool accept = true;
  /// Connections at most; Initials beyond it are dropped.
  size_t max_connections = 4096;
};

/// A connection event, tagged with the connection.
struct endpoint_event {
  connection_id id = 0;
  event what;
};

/// A datagram to send: its destination and bytes (viewing the caller's
/// buffer).
struct outgoing_datagram {
  ip_endpoint to;
  std::span<const std::byte> bytes;
};

/// Endpoint counters.
struct endpoint_stats {
  uint64_t datagrams_received = 0;
  /// Not QUIC, no route and not an Initial, or refused Initial.
  uint64_t datagrams_dropped = 0;
  uint64_t version_negotiations_sent = 0;
  uint64_t connections_accepted = 0;
  /// Finished connections removed.
  uint64_t connections_removed = 0;
};

/// One UDP socket's QUIC endpoint. Move-only.
class endpoint {
public:
  /// @returns `errc::invalid_config` for a bad transport config or missing
  ///          rng.
  static expected<endpoint> make(credentials creds, endpoint_params params);

  endpoint(endpoint&&) noexcept;
  endpoint& operator=(endpoint&&) noexcept;
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;
  ~endpoint();

  /// Starts a client connection to `remote`, optionally requiring the
  /// server's name. `wall_now` is the time certificates are checked against.
  /// @returns the new connection's id, or the `connection::connect` error.
  expected<connection_id> connect(const ip_endpoint& remote,
                                  std::string expected_peer_name,
                                  time_point now, wall_time wall_now);

  /// Routes one received datagram (or accepts, or answers with Version
  /// Negotiation, or drops and counts it).
  void handle_datagram(const ip_endpoint& from, bytes_view data, time_point now,
                       wall_time wall_now);

  /// Runs due timers of all connections; removes finished ones.
  void on_timeout(time_point now);

  /// Collects datagrams to send from every connection into `buffer`.
  /// @returns the number appended to `out`.
  size_t write(time_point now, std::span<std::byte> buffer,
               std::vector<outgoing_datagram>& out);

  /// The earliest deadline of all connections.
  time_point next_deadline() const;

  /// Events of all connections since the owner last cleared the vector.
  std::vector<endpoint_event>& events() noexcept;

  /// The connection with this id, if it still exists.
  connection* find(connection_id id) noexcept;

  /// Live connections (including closing/draining ones).
  size_t size() const noexcept;

  /// Routing table entries (for tests and stats).
  size_t routes() const noexcept;

  const endpoint_stats& stats() const noexcept;

private:
  struct state;

  explicit endpoint(std::unique_ptr<state> st) noexcept;

  std::unique_ptr<state> st_;
};

} // namespace mycorrizal::quic
