// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/quic/fwd.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

/// Routing of received datagrams to QUIC connections by destination
/// connection id, shared by the sans-I/O `endpoint` (which owns its
/// connections) and the `transport` actor (whose connections are actors).
/// Pure: no sockets, no clock, no connection objects.
namespace mycorrizal::quic {

/// Endpoint-local handle of a connection (never reused).
using connection_id = uint64_t;

/// What to do with one received datagram.
enum class route_action : uint8_t {
  /// Hand it to connection `id`.
  deliver,
  /// A client Initial for no known connection: start a server connection
  /// from it (the owner decides whether it has room).
  accept,
  /// An unsupported QUIC version: send `reply` (Version Negotiation) back.
  reply,
  /// Not for us: drop and count it (`why` says which check failed).
  drop,
};

/// The router's verdict on one datagram.
struct route_result {
  route_action action = route_action::drop;
  /// `deliver`: the connection.
  connection_id id = 0;
  /// `accept`: the client's destination id, which the new connection must
  /// be reachable by at once (the client repeats it until it hears back).
  std::vector<std::byte> dcid;
  /// `reply`: the datagram to send back to the sender.
  std::vector<std::byte> reply;
  /// `drop`: a short reason for logs.
  std::string_view why;
};

/// A routing table from connection ids to connections.
class cid_router {
public:
  /// `cid_length` is the length of our connection ids (short headers carry
  /// no length); `accept` says whether client Initials start connections.
  cid_router(size_t cid_length, bool accept) noexcept
      : cid_length_(cid_length), accept_(accept) {
    // nop
  }

  /// Decides what to do with `data`. Version Negotiation is answered only
  /// for datagrams of at least 1200 bytes (a client's first flight), so a
  /// spoofed small datagram never makes us send more than we got.
  /// `rng` supplies the first byte of a Version Negotiation packet.
  route_result classify(bytes_view data, const random_bytes& rng) const;

  /// Makes `ids` the routes of connection `id` (replacing its old ones).
  /// An id already routed to another connection is taken over.
  void set_routes(connection_id id,
                  std::span<const std::vector<std::byte>> ids);

  /// Adds one route to connection `id`.
  void add_route(connection_id id, bytes_view cid);

  /// Removes every route of connection `id`.
  void remove(connection_id id);

  /// Number of routes.
  size_t size() const noexcept {
    return table_.size();
  }

private:
  using key = std::string;

  static key key_of(bytes_view x);

  size_t cid_length_;
  bool accept_;
  std::unordered_map<key, connection_id> table_;
  std::unordered_map<connection_id, std::vector<key>> by_conn_;
};

} // namespace mycorrizal::quic
