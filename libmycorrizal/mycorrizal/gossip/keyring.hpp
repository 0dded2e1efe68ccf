// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

/// memberlist's encryption (memberlist-wire.md §6): AES-GCM with a 12-byte
/// nonce and 16-byte tag; the key length (16, 24, 32) picks AES-128/192/256.
/// Payload layout: `vsn | nonce | ciphertext | tag`. Version 0 pads the
/// plaintext with PKCS7 to 16 bytes; version 1 does not. Nonces come from
/// the caller: this module reads no random device.
namespace mycorrizal::gossip {

inline constexpr size_t gcm_nonce_size = 12;
inline constexpr size_t gcm_tag_size = 16;

/// A GCM nonce; must never repeat under one key.
using gcm_nonce = std::array<std::byte, gcm_nonce_size>;

/// The keys of a cluster. The primary key (the first) encrypts; decryption
/// tries every key, primary first (memberlist's `Keyring`).
class keyring {
public:
  keyring() = default;

  /// Checks that `key` is 16, 24 or 32 bytes long.
  /// @returns `errc::invalid_config` otherwise.
  static expected<void> validate_key(bytes_view key);

  /// Adds `key`; it becomes the primary key if the ring was empty. Adding an
  /// installed key does nothing.
  /// @returns `errc::invalid_config` for a bad key length.
  expected<void> install(bytes_view key);

  /// Makes the installed `key` the primary key.
  /// @returns `errc::invalid_config` if `key` is not installed.
  expected<void> use(bytes_view key);

  /// Removes `key`.
  /// @returns `errc::invalid_config` for the primary key (as memberlist
  ///   refuses it) or a key that is not installed.
  expected<void> remove(bytes_view key);

  /// The primary key; empty if the ring is empty.
  bytes_view primary() const noexcept;

  /// All keys, primary first.
  const std::vector<byte_buffer>& keys() const noexcept {
    return keys_;
  }

  bool empty() const noexcept {
    return keys_.empty();
  }

private:
  std::vector<byte_buffer> keys_;
};

/// The size of an encrypted payload for `plaintext_size` bytes: 29 bytes of
/// overhead for version 1, up to 45 for version 0 (padding).
size_t encrypted_size(uint8_t version, size_t plaintext_size) noexcept;

/// Appends `vsn | nonce | AES-GCM(plaintext [+ PKCS7 if vsn 0]) | tag` to
/// `out`, with `aad` as additional authenticated data.
/// @returns `errc::unsupported_version` for a version above 1,
///   `errc::invalid_config` for a bad key length.
expected<void> encrypt_payload(byte_buffer& out, uint8_t version,
                               bytes_view key, const gcm_nonce& nonce,
                               bytes_view plaintext, bytes_view aad);

/// Decrypts a payload with each key of `ring` in turn (primary first) and
/// strips version 0's padding.
/// @returns `errc::unsupported_version` for a version byte above 1,
///   `errc::invalid_config` for an empty ring, `errc::malformed_frame` for a
///   payload below the version's minimum size (29 / 45 bytes), when no key
///   authenticates it, or for bad padding.
expected<byte_buffer> decrypt_payload(const keyring& ring, bytes_view payload,
                                      bytes_view aad);

} // namespace mycorrizal::gossip
