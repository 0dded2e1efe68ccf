// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"
#include "mycorrizal/gossip/keyring.hpp"
#include "mycorrizal/gossip/messages.hpp"

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

/// UDP packet framing (memberlist-wire.md §5, §6.2): a datagram is an
/// optional encryption envelope around an optional outer hasCrc (type 12)
/// around a message, where compound (type 7) and compress (type 9) may nest.
namespace mycorrizal::gossip {

/// Bounds for unwrapping one datagram.
struct packet_limits {
  /// How deep compound and compress may nest (memberlist: unbounded).
  size_t max_depth = 4;
  /// Total bytes all compress layers of one datagram may produce.
  size_t max_decompressed = size_t{1} << 20;
  /// Leaf messages per datagram.
  size_t max_messages = 1024;
};

/// How to read a datagram.
struct packet_options {
  /// Decrypt with these keys when set and not empty.
  const keyring* keys = nullptr;
  /// With keys: drop what does not decrypt (true, memberlist's default) or
  /// read it as plaintext (false).
  bool verify_incoming = true;
  packet_limits limits;
  /// Our cluster label (memberlist upstream's `Label`, not in Debian's
  /// 0.2.2): a datagram must carry exactly this label (none when empty),
  /// which is also the GCM additional data.
  std::string_view label;
  /// Accept datagrams whatever their label (upstream's
  /// SkipInboundLabelCheck).
  bool skip_inbound_label_check = false;
};

/// The leaf messages of one datagram, in order, each starting with its type.
struct unwrapped_packet {
  std::vector<byte_buffer> messages;
  /// Compound parts dropped: beyond the end of their buffer (memberlist
  /// "truncated"), or empty (which crashes Debian's memberlist).
  size_t dropped = 0;
  bool encrypted = false;
  bool had_crc = false;
};

/// The messages that travel in datagrams. `user_msg` is the raw form.
using packet_message = std::variant<ping, indirect_ping, ack, nack, suspect,
                                    alive, dead, user_msg>;

/// Checks and strips a label header (type 244), decrypts (if keys are
/// set), checks and strips an outer hasCrc, and
/// splits compound and compress layers into leaf messages.
/// @returns `errc::malformed_frame` (no key authenticates, bad CRC, bad
///   compound or compress layout, LZW errors, an empty datagram, nesting
///   beyond `max_depth`), `errc::unsupported_version` (encryption version
///   above 1, compress algorithm other than 0), `errc::frame_too_large`
///   (decompressed size above the limit), `errc::too_many_entries`.
expected<unwrapped_packet> unwrap_packet(bytes_view datagram,
                                         const packet_options& opts = {});

/// Decodes one leaf message (type byte + body).
/// @returns `errc::unknown_frame_type` for types that are not leaves of a
///   datagram, or the errors of `decode_body`.
expected<packet_message> decode_packet_message(bytes_view msg);

/// Encodes one leaf message (type byte + body).
expected<byte_buffer> encode_packet_message(const packet_message& msg);

// -- the individual layers --------------------------------------------------

/// The parts of a compound message.
struct compound_parts {
  std::vector<bytes_view> parts;
  /// Parts whose declared length runs past the end of the buffer.
  size_t truncated = 0;
};

/// Splits `msg` (starting with type 7). Views point into `msg`.
/// @returns `errc::malformed_frame` if the count or the length table is
///   cut off.
expected<compound_parts> split_compound(bytes_view msg);

/// Builds `07 | N | lengths | parts`.
/// @returns `errc::too_many_entries` for no parts or more than 127 (Debian
///   mis-parses 128 and more), `errc::malformed_frame` for an empty part,
///   `errc::frame_too_large` for a part above 65535 bytes.
expected<byte_buffer> make_compound(std::span<const byte_buffer> parts);

/// Builds `0c | CRC-32(msg) | msg`.
byte_buffer add_crc(bytes_view msg);

/// Checks `msg` (starting with type 12, at least 5 bytes) and returns the
/// message it protects (a view into `msg`).
/// @returns `errc::malformed_frame` on a mismatch or a short input.
expected<bytes_view> strip_crc(bytes_view msg);

/// Builds `09 | {Algo: 0, Buf: LZW(msg)}`.
expected<byte_buffer> compress_message(bytes_view msg);

/// Decompresses `msg` (starting with type 9), producing at most `max_size`.
/// @returns the errors of `decode_body` and `lzw_decompress`, and
///   `errc::unsupported_version` for an algorithm other than LZW.
expected<byte_buffer> decompress_message(bytes_view msg, size_t max_size);

/// Encrypts a whole datagram with the primary key; the additional data is
/// the label (empty without one, as Debian's memberlist does).
/// @returns `errc::invalid_config` for an empty ring, or the errors of
///   `encrypt_payload`.
expected<byte_buffer> encrypt_packet(bytes_view plaintext, const keyring& ring,
                                     uint8_t version, const gcm_nonce& nonce,
                                     std::string_view label = {});

/// Puts `f4 | len | label` in front of `packet` (nothing for an empty
/// label).
/// @returns `errc::too_large` for a label above 255 bytes.
expected<byte_buffer> add_label(std::string_view label, bytes_view packet);

/// Splits a label header off `packet`: the label (empty if there is none)
/// and the rest.
/// @returns `errc::malformed_frame` for a cut-off header or an empty label.
expected<std::pair<std::string_view, bytes_view>>
split_label(bytes_view packet);

} // namespace mycorrizal::gossip
