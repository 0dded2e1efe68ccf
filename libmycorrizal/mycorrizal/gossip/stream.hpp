// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"
#include "mycorrizal/gossip/keyring.hpp"
#include "mycorrizal/gossip/messages.hpp"

#include <cstddef>
#include <optional>
#include <string_view>
#include <variant>

/// TCP stream framing (memberlist-wire.md §6.3, §7): one message per
/// direction and connection. Plaintext: `type | body` with no length prefix
/// (boundaries follow from msgpack and the header counts), optionally as
/// `09 | compress{…}` around it. Encrypted: `0a | u32 length | payload`,
/// where the 5 header bytes are the GCM additional data and the plaintext
/// is a (usually compressed) stream message.
namespace mycorrizal::gossip {

/// Bounds for reading one stream message (memberlist upstream's limits).
struct stream_limits {
  /// Encrypted payload length (memberlist `maxPushStateBytes`).
  size_t max_encrypted = size_t{20} << 20;
  size_t max_decompressed = size_t{40} << 20;
  /// push/pull `Nodes`.
  size_t max_nodes = size_t{1} << 20;
  /// push/pull `UserStateLen`.
  size_t max_user_state = size_t{20} << 20;
  /// user message `UserMsgLen`.
  size_t max_user_msg = size_t{20} << 20;
};

/// How to read a stream.
struct stream_options {
  /// Require and decrypt encrypted streams when set and not empty.
  const keyring* keys = nullptr;
  /// With keys: refuse plaintext streams (memberlist's default).
  bool verify_incoming = true;
  stream_limits limits;
  /// Our cluster label (upstream only): the stream must start with exactly
  /// this label header (none when empty); it is part of the GCM additional
  /// data of an encrypted stream.
  std::string_view label;
  /// Accept streams whatever their label.
  bool skip_inbound_label_check = false;
};

/// The messages a stream carries; `user_msg` has the header form here.
using stream_message = std::variant<ping, ack, push_pull, user_msg, err_resp>;

/// One decoded stream message.
struct decoded_stream {
  stream_message message;
  /// Input bytes it used.
  size_t consumed = 0;
  bool encrypted = false;
  bool compressed = false;
};

/// Decodes the stream message at the start of `input` (everything received
/// so far on the connection).
/// @returns the message; `std::nullopt` if `input` ends before the message
///   does (read more and call again with all bytes); or
///   `errc::malformed_frame` (bad layout, no key authenticates, encryption
///   expected but missing or present but not configured, negative counts),
///   `errc::frame_too_large` (a length or count above the limits),
///   `errc::too_many_entries` (`Nodes` above the limit),
///   `errc::unknown_frame_type`, `errc::unsupported_version`.
expected<std::optional<decoded_stream>>
decode_stream(bytes_view input, const stream_options& opts = {});

/// Encodes a stream message in plaintext, uncompressed (type + body; for
/// `user_msg` the `UserMsgLen` header form).
expected<byte_buffer> encode_stream_message(const stream_message& msg);

/// How to send a stream message.
struct stream_send_options {
  /// Compress (memberlist compresses every stream message by default, even
  /// when that makes it larger).
  bool compress = true;
  /// Encrypt with the primary key when set and not empty.
  const keyring* keys = nullptr;
  uint8_t encryption_version = 1;
  gcm_nonce nonce{};
  /// Sent as a label header first, and authenticated when encrypting.
  std::string_view label;
};

/// Wraps an encoded stream message: compress, then encrypt.
expected<byte_buffer> frame_stream(bytes_view message,
                                   const stream_send_options& opts);

/// Builds `0a | u32 len | encrypted payload` with the 5 header bytes (and
/// the label, if any) as GCM additional data.
/// @returns `errc::invalid_config` for an empty ring, or the errors of
///   `encrypt_payload`.
expected<byte_buffer> encrypt_stream(bytes_view plaintext, const keyring& ring,
                                     uint8_t version, const gcm_nonce& nonce,
                                     std::string_view label = {});

} // namespace mycorrizal::gossip
