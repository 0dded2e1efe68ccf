// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

/// memberlist's messages (memberlist-wire.md §2, §4): one struct per Go
/// struct, fields in Go declaration order, named after the Go fields in
/// snake_case. On the wire each is a type byte plus a msgpack map with the
/// exact Go field names as keys, sorted, strings and byte slices as raw.
///
/// Go's `[]byte` fields that Go sends as `nil` in practice (`Meta`,
/// `Payload`) are `std::optional`: `nil` (`c0`) and empty (`a0`) differ on
/// the wire. Other byte fields are written as raw even when empty.
namespace mycorrizal::gossip {

/// The first byte of every message (memberlist-wire.md §2). Append-only.
enum class message_type : uint8_t {
  ping = 0,
  indirect_ping = 1,
  ack = 2,
  suspect = 3,
  alive = 4,
  dead = 5,
  push_pull = 6,
  compound = 7,
  user = 8,
  compress = 9,
  encrypt = 10,
  nack = 11,
  has_crc = 12,
  err = 13,
  has_label = 244,
};

/// Node states in push/pull entries. Other values are kept as received.
enum class node_state : uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

/// The `Vsn` array Go sends by default: [PMin 1, PMax 5, PCur 2, 0, 0, 0].
std::vector<uint8_t> default_vsn();

/// Direct probe (type 0), UDP or the TCP fallback ping.
struct ping {
  uint32_t seq_no = 0;
  /// The intended target's name.
  std::string node;
  /// Omitted from the map when empty.
  byte_buffer source_addr;
  /// Omitted from the map when 0.
  uint16_t source_port = 0;
  /// Omitted from the map when empty.
  std::string source_node;

  bool operator==(const ping&) const = default;
};

/// Request to probe `node` on the requester's behalf (type 1).
struct indirect_ping {
  uint32_t seq_no = 0;
  byte_buffer target;
  uint16_t port = 0;
  std::string node;
  bool nack = false;
  byte_buffer source_addr;
  uint16_t source_port = 0;
  std::string source_node;

  bool operator==(const indirect_ping&) const = default;
};

/// Answer to a ping (type 2).
struct ack {
  uint32_t seq_no = 0;
  std::optional<byte_buffer> payload;

  bool operator==(const ack&) const = default;
};

/// Negative answer of a relay (type 11).
struct nack {
  uint32_t seq_no = 0;

  bool operator==(const nack&) const = default;
};

/// Error reply on a TCP stream (type 13).
struct err_resp {
  std::string error;

  bool operator==(const err_resp&) const = default;
};

/// `from` suspects `node` at `incarnation` (type 3).
struct suspect {
  uint32_t incarnation = 0;
  std::string node;
  std::string from;

  bool operator==(const suspect&) const = default;
};

/// `node` is alive (type 4).
struct alive {
  uint32_t incarnation = 0;
  std::string node;
  /// 4 or 16 bytes.
  byte_buffer addr;
  uint16_t port = 0;
  std::optional<byte_buffer> meta;
  /// Exactly 6 entries when encoding (fewer crash Debian's memberlist).
  std::vector<uint8_t> vsn;

  bool operator==(const alive&) const = default;
};

/// `node` is dead, or left when `from == node` (type 5).
struct dead {
  uint32_t incarnation = 0;
  std::string node;
  std::string from;

  bool operator==(const dead&) const = default;
};

/// The map after a push/pull type byte.
struct push_pull_header {
  int64_t nodes = 0;
  int64_t user_state_len = 0;
  bool join = false;

  bool operator==(const push_pull_header&) const = default;
};

/// One node entry of a push/pull (note: `Name`, not `Node`).
struct push_node_state {
  std::string name;
  byte_buffer addr;
  uint16_t port = 0;
  std::optional<byte_buffer> meta;
  uint32_t incarnation = 0;
  node_state state = node_state::alive;
  /// Exactly 6 entries when encoding.
  std::vector<uint8_t> vsn;

  bool operator==(const push_node_state&) const = default;
};

/// A whole push/pull message: header, entries, then raw user state.
struct push_pull {
  bool join = false;
  std::vector<push_node_state> nodes;
  byte_buffer user_state;

  bool operator==(const push_pull&) const = default;
};

/// The map after a user type byte on a TCP stream.
struct user_msg_header {
  int64_t user_msg_len = 0;

  bool operator==(const user_msg_header&) const = default;
};

/// A user message: raw bytes after the type byte (UDP), or after a
/// `user_msg_header` (TCP).
struct user_msg {
  byte_buffer payload;

  bool operator==(const user_msg&) const = default;
};

/// The map after a compress type byte.
struct compress_msg {
  /// 0 = LZW, the only algorithm.
  uint8_t algo = 0;
  byte_buffer buf;

  bool operator==(const compress_msg&) const = default;
};

// -- encoding ---------------------------------------------------------------

/// Appends the msgpack map of a message (no type byte), as Go writes it.
/// @returns `errc::malformed_frame` for a `vsn` that does not have exactly 6
///   entries, `errc::frame_too_large` for a field above 4 GiB; the context
///   names the field ("alive.Vsn: must have 6 entries, has 3").
expected<void> append_body(byte_buffer& out, const ping& x);
expected<void> append_body(byte_buffer& out, const indirect_ping& x);
expected<void> append_body(byte_buffer& out, const ack& x);
expected<void> append_body(byte_buffer& out, const nack& x);
expected<void> append_body(byte_buffer& out, const err_resp& x);
expected<void> append_body(byte_buffer& out, const suspect& x);
expected<void> append_body(byte_buffer& out, const alive& x);
expected<void> append_body(byte_buffer& out, const dead& x);
expected<void> append_body(byte_buffer& out, const push_pull_header& x);
expected<void> append_body(byte_buffer& out, const push_node_state& x);
expected<void> append_body(byte_buffer& out, const user_msg_header& x);
expected<void> append_body(byte_buffer& out, const compress_msg& x);

/// The type byte of each message struct.
message_type type_of(const ping&) noexcept;
message_type type_of(const indirect_ping&) noexcept;
message_type type_of(const ack&) noexcept;
message_type type_of(const nack&) noexcept;
message_type type_of(const err_resp&) noexcept;
message_type type_of(const suspect&) noexcept;
message_type type_of(const alive&) noexcept;
message_type type_of(const dead&) noexcept;
message_type type_of(const compress_msg&) noexcept;

/// Appends a complete message: type byte + msgpack map. (For push/pull and
/// user messages see `append_packet_user` and stream.hpp.)
template <class T>
expected<void> append_message(byte_buffer& out, const T& x) {
  out.push_back(static_cast<std::byte>(type_of(x)));
  return append_body(out, x);
}

/// Encodes a complete message into a new buffer.
template <class T>
expected<byte_buffer> encode_message(const T& x) {
  byte_buffer out;
  if (auto res = append_message(out, x); !res) {
    return unexpected{res.error()};
  }
  return out;
}

/// Appends a push/pull message: type 6, header, entries, user state.
expected<void> append_message(byte_buffer& out, const push_pull& x);

// -- decoding ---------------------------------------------------------------

/// Reads one message body (the msgpack value after the type byte) the way
/// go-msgpack does (see msgpack.hpp). Instantiated for every struct above
/// except `push_pull` and `user_msg`.
/// @returns `errc::truncated_frame` if the input ends inside the value,
///   `errc::malformed_frame` for a wrong type, a negative or too large
///   integer, or values nested too deep. A field of the wrong type or range
///   is named in the context with what it must be ("alive.Port: must be an
///   integer in [0, 65535]").
template <class T>
expected<T> read_body(msgpack::reader& r);

template <>
expected<ping> read_body<ping>(msgpack::reader& r);
template <>
expected<indirect_ping> read_body<indirect_ping>(msgpack::reader& r);
template <>
expected<ack> read_body<ack>(msgpack::reader& r);
template <>
expected<nack> read_body<nack>(msgpack::reader& r);
template <>
expected<err_resp> read_body<err_resp>(msgpack::reader& r);
template <>
expected<suspect> read_body<suspect>(msgpack::reader& r);
template <>
expected<alive> read_body<alive>(msgpack::reader& r);
template <>
expected<dead> read_body<dead>(msgpack::reader& r);
template <>
expected<push_pull_header> read_body<push_pull_header>(msgpack::reader& r);
template <>
expected<push_node_state> read_body<push_node_state>(msgpack::reader& r);
template <>
expected<user_msg_header> read_body<user_msg_header>(msgpack::reader& r);
template <>
expected<compress_msg> read_body<compress_msg>(msgpack::reader& r);

/// Decodes one body from `body`; trailing bytes are ignored, as Go does.
template <class T>
expected<T> decode_body(bytes_view body);

} // namespace mycorrizal::gossip
