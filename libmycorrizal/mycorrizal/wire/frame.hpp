// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/errc.hpp"
#include "mycorrizal/wire/fwd.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

/// Frames on Mycorrizal's QUIC streams (docs/protocol.md is the byte-level
/// specification; keep the two in step).
///
/// Every frame starts with a 6-byte header that is the same in every protocol
/// version: `type:u8 flags:u8 length:u32be`, followed by `length` bytes of
/// body. An application stream opens with STREAM_INIT (protocol version,
/// application id, stream name) and then carries DATA, REQUEST and RESPONSE
/// frames in both directions. The connection's control stream opens with
/// HELLO in each direction and then carries APPS updates. STREAM_ERROR
/// refuses or abandons a stream with an `errc` and a reason; nothing follows
/// it. Integers are big-endian; strings are UTF-8 with a u8 length prefix.
///
/// Decoded frames are views: their strings and payloads point into the input
/// (or the decoder's buffer) and are valid until the decoder's next call.
namespace mycorrizal::wire {

/// The frame types. The numeric values are on the wire.
enum class frame_type : uint8_t {
  stream_init = 0x01,
  data = 0x02,
  request = 0x03,
  response = 0x04,
  stream_error = 0x05,
  hello = 0x10,
  apps = 0x11,
};

/// Returns the type's name in upper case as docs/protocol.md writes it.
std::string_view to_string(frame_type x) noexcept;

/// Size of the frame header: type, flags, u32 body length.
inline constexpr size_t header_size = 6;

/// Flag of DATA, REQUEST and RESPONSE: the payload is a CAF message in CAF's
/// binary serialization rather than raw bytes.
inline constexpr uint8_t flag_caf_message = 0x01;

/// The protocol versions this build speaks (HELLO range, STREAM_INIT byte).
inline constexpr uint8_t protocol_version_min = 1;
inline constexpr uint8_t protocol_version_max = 1;

/// Identifiers (application ids, stream names, node names) carry a u8 length.
inline constexpr size_t identifier_size_limit = 255;

/// Opens an application stream.
struct stream_init {
  /// Protocol version the opener uses on this stream.
  uint8_t version = protocol_version_max;
  /// Application id: 1..255 bytes of printable UTF-8.
  std::string_view application;
  /// Stream name: empty for the application's default stream.
  std::string_view stream;
  friend bool operator==(const stream_init&, const stream_init&) = default;
};

/// A one-way message.
struct data {
  uint8_t flags = 0;
  bytes_view payload;
};

/// A request; the peer answers with a RESPONSE carrying the same id.
struct request {
  /// Chosen by the requester, unique among its pending requests on the
  /// connection.
  uint64_t id = 0;
  /// The requester's remaining time budget in milliseconds (0: none given);
  /// a responder may drop work whose budget ran out.
  uint32_t timeout_ms = 0;
  uint8_t flags = 0;
  bytes_view payload;
};

/// The answer to a request.
struct response {
  uint64_t id = 0;
  /// `errc::none` for success; then `payload` is the reply. Otherwise the
  /// payload is a UTF-8 error text. A status code this build does not know
  /// decodes as `errc::remote_error`.
  errc status = errc::none;
  /// `flag_caf_message` is allowed only with `status == errc::none`.
  uint8_t flags = 0;
  bytes_view payload;
};

/// Refuses (as the first frame in the reverse direction) or abandons a
/// stream. Terminal: nothing follows it.
struct stream_error {
  /// Never `errc::none`.
  errc code = errc::malformed_frame;
  std::string_view message;
  friend bool operator==(const stream_error&, const stream_error&) = default;
};

/// First frame of each direction of the control stream.
struct hello {
  uint8_t version_min = protocol_version_min;
  uint8_t version_max = protocol_version_max;
  /// The sender's membership incarnation.
  uint64_t incarnation = 0;
  /// Feature bits; unknown bits are ignored by the receiver.
  uint64_t capabilities = 0;
  /// The sender's node name (equals its certificate's CN).
  std::string_view node_name;
  friend bool operator==(const hello&, const hello&) = default;
};

/// The complete set of applications the sender has registered; each APPS
/// frame replaces the previous set.
struct apps {
  std::vector<std::string_view> applications;
  friend bool operator==(const apps&, const apps&) = default;
};

using frame = std::variant<stream_init, data, request, response, stream_error,
                           hello, apps>;

/// Returns the type of the frame `x` holds.
frame_type type_of(const frame& x) noexcept;

/// Returns the payload of a DATA, REQUEST or RESPONSE frame; empty for the
/// other types.
bytes_view payload_of(const frame& x) noexcept;

/// Picks the highest version both ranges contain, or returns 0 (no version)
/// when the ranges do not overlap.
uint8_t negotiate_version(uint8_t our_min, uint8_t our_max, uint8_t their_min,
                          uint8_t their_max) noexcept;

} // namespace mycorrizal::wire
