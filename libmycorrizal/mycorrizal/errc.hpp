// SPDX-License-Identifier: Apache-2.0
// Mycorrizal: the one error enum of the project.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

/// Mycorrizal reports every failure as one `errc` value, optionally with a
/// human-readable context. The numeric values are part of the wire protocol
/// (a RESPONSE frame carries them, docs/protocol.md §5) and of the CAF error
/// category "mycorrizal": never renumber or reuse a value, only append.
namespace mycorrizal {

enum class errc : uint8_t {
  /// No error. Never sent as an error on the wire.
  none = 0,

  // -- wire codec (1..31) ---------------------------------------------------

  /// A frame's declared body length exceeds the configured maximum.
  frame_too_large = 1,
  /// The frame type byte names no frame this version knows.
  unknown_frame_type = 2,
  /// A frame's body does not match its type's layout (fields missing, bytes
  /// left over, flags outside the type's mask, bad status code).
  malformed_frame = 3,
  /// An application id, stream name or node name is empty where it must not
  /// be, too long, not valid UTF-8, or contains control characters.
  invalid_identifier = 4,
  /// The peer's protocol version (or version range) does not overlap ours.
  unsupported_version = 5,
  /// A well-formed frame arrived where the stream's state does not allow it
  /// (e.g. DATA before STREAM_INIT, a second HELLO).
  unexpected_frame = 6,
  /// The stream ended in the middle of a frame.
  truncated_frame = 7,
  /// The caller's output buffer is too small for the encoded frame.
  buffer_too_small = 8,
  /// A frame holds more entries than the limit allows (e.g. applications).
  too_many_entries = 9,
  /// A checksum over received bytes does not match (memberlist hasCrc).
  checksum_mismatch = 10,
  /// No installed key authenticates an encrypted payload (wrong key, or the
  /// bytes were tampered with).
  decrypt_failed = 11,
  /// Framing layers (compound, compress, encryption) nest deeper than the
  /// limit allows.
  nesting_too_deep = 12,
  /// One side encrypts and the other does not (or requires it and got
  /// plaintext).
  encryption_mismatch = 13,
  /// Compressed data is invalid or expands beyond its limit.
  decompress_failed = 14,

  // -- configuration (32..47) -----------------------------------------------

  /// A configuration field is out of range or inconsistent; the error's
  /// context names the field.
  invalid_config = 32,

  // -- runtime (64..) -------------------------------------------------------

  /// A request got no answer within its timeout.
  timeout = 64,
  /// The target node died or left the cluster.
  node_down = 65,
  /// The connection to a node that is still alive broke.
  connection_lost = 66,
  /// The target node runs no application with this id.
  unknown_application = 67,
  /// The application exists but has no handler for this kind of message.
  no_handler = 68,
  /// The remote handler answered with an error; the context carries its text.
  remote_error = 69,
  /// A message exceeds the size a peer or the local configuration accepts.
  too_large = 70,
  /// A bounded queue is full; the message was not queued.
  queue_full = 71,
  /// The node is stopping and accepts no new work.
  shutting_down = 72,
  /// A CAF message holds a type that is not registered for serialization
  /// (`add_message_type`) on the sending or the receiving node, a type that
  /// cannot cross nodes (actor handles...), or too many nested messages.
  not_serializable = 73,

  // -- cache (Mycel) ----------------------------------------------------------

  /// No bucket of this name exists in the cluster.
  unknown_bucket = 74,
  /// A bucket of this name exists with other options; the context names
  /// them.
  bucket_exists = 75,
  /// No storage member is alive to own the key's partition.
  no_owner = 76,
  /// A compare-and-set named a version the key no longer (or never) held.
  version_mismatch = 77,
  /// The value is not what the operation needs (an increment of a value
  /// that is no decimal 64-bit integer, or one that would overflow).
  wrong_type = 78,
};

/// Returns the enumerator's name, e.g. `"frame_too_large"`, or `"unknown"`
/// for a value outside the enum.
std::string_view to_string(errc x) noexcept;

/// Converts a number received from the network into an `errc` if it names an
/// enumerator, `std::nullopt` otherwise.
std::optional<errc> errc_from_code(uint8_t code) noexcept;

} // namespace mycorrizal
