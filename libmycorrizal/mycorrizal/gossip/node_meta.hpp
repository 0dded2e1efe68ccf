// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"

#include <cstdint>
#include <optional>

/// Mycorrizal's part of a member's memberlist `Meta` (at most 512 bytes):
/// where its QUIC transport listens and which Mycorrizal protocol versions
/// it speaks. A member whose meta does not start with the magic is a plain
/// memberlist member (membership only).
///
/// Layout (docs/protocol.md, "Gossip metadata"):
/// `'m' 'z' | format u8 (1) | TLV*` where each TLV is `tag u8 | len u8 |
/// value`. Tags: 1 = QUIC port (u16 BE), 2 = protocol range (min u8, max
/// u8), 3 = application bytes, 4 = roles (u8 bits, `node_role`). Readers skip
/// unknown tags and extra bytes in known ones, so later formats can add fields
/// without breaking old nodes.
namespace mycorrizal::gossip {

/// What a node offers the cluster besides membership and transport.
enum node_role : uint8_t {
  /// It stores cache (Mycel) partitions; nodes without it are cache clients
  /// only (Hazelcast's lite members).
  cache_storage = 1,
};

struct node_meta {
  /// The UDP port of the node's QUIC endpoint; 0 = no transport.
  uint16_t quic_port = 0;
  /// Mycorrizal wire protocol versions the node speaks.
  uint8_t protocol_min = 1;
  uint8_t protocol_max = 1;
  /// Free-form bytes for the host application.
  byte_buffer app;
  /// `node_role` bits (0: none; then the TLV is left out).
  uint8_t roles = 0;

  bool operator==(const node_meta&) const = default;
};

/// The current format number.
inline constexpr uint8_t node_meta_format = 1;

/// Encodes `x`.
/// @returns `errc::too_large` if the result would exceed 512 bytes.
expected<byte_buffer> encode_node_meta(const node_meta& x);

/// Reads a member's meta.
/// @returns `std::nullopt` for meta that is not Mycorrizal's (a plain
///   memberlist member), or `errc::malformed_frame` for Mycorrizal meta
///   that is cut off or has an impossible value (e.g. min > max).
expected<std::optional<node_meta>> decode_node_meta(bytes_view meta);

} // namespace mycorrizal::gossip
