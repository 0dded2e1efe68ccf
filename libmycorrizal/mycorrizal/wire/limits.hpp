// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/wire/frame.hpp"

#include <cstddef>
#include <cstdint>

namespace mycorrizal::wire {

/// Hard limits the decoder enforces on peer input. Exceeding one is an error
/// (never an allocation beyond the limit, never undefined behaviour).
struct limits {
  /// Largest accepted frame body in bytes. Bounds the decoder's buffer.
  /// Range: [64, 1 GiB].
  uint32_t max_frame_size = 16u << 20;
  /// Longest accepted application id, stream name or node name in bytes.
  /// Range: [1, 255] (the wire carries a u8 length).
  uint32_t max_identifier_size = 255;
  /// Most applications one APPS frame may list. Range: [1, 65535].
  uint32_t max_applications = 1024;
  /// Lowest protocol version we speak. Range: [1, protocol_version_max].
  uint8_t version_min = protocol_version_min;
  /// Highest protocol version we speak. Range: [version_min,
  /// protocol_version_max].
  uint8_t version_max = protocol_version_max;

  /// The defaults for a LAN cluster (the values above).
  static limits defaults() noexcept {
    return {};
  }

  /// Limits for tests and constrained embedders: 64 KiB frames, 64-byte
  /// identifiers, 64 applications.
  static limits small() noexcept {
    limits x;
    x.max_frame_size = 64u << 10;
    x.max_identifier_size = 64;
    x.max_applications = 64;
    return x;
  }

  /// @returns `errc::invalid_config` naming every field out of range.
  expected<void> validate() const;
};

} // namespace mycorrizal::wire
