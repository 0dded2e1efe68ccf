// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/wire/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

/// Frames that own their bytes, for handing frames between actors: decoded
/// frames (`frame`) are views into a decoder's buffer and expire with its
/// next call. `to_owned` copies a frame out; `view` gives a `frame` that
/// points into an owned one (valid while it lives, unchanged).
namespace mycorrizal::wire {

struct owned_stream_init {
  uint8_t version = protocol_version_max;
  std::string application;
  std::string stream;
  friend bool operator==(const owned_stream_init&, const owned_stream_init&)
    = default;
};

struct owned_data {
  uint8_t flags = 0;
  std::vector<std::byte> payload;
  friend bool operator==(const owned_data&, const owned_data&) = default;
};

struct owned_request {
  uint64_t id = 0;
  uint32_t timeout_ms = 0;
  uint8_t flags = 0;
  std::vector<std::byte> payload;
  friend bool operator==(const owned_request&, const owned_request&) = default;
};

struct owned_response {
  uint64_t id = 0;
  errc status = errc::none;
  uint8_t flags = 0;
  std::vector<std::byte> payload;
  friend bool operator==(const owned_response&, const owned_response&)
    = default;
};

struct owned_stream_error {
  errc code = errc::malformed_frame;
  std::string message;
  friend bool operator==(const owned_stream_error&, const owned_stream_error&)
    = default;
};

struct owned_hello {
  uint8_t version_min = protocol_version_min;
  uint8_t version_max = protocol_version_max;
  uint64_t incarnation = 0;
  uint64_t capabilities = 0;
  std::string node_name;
  friend bool operator==(const owned_hello&, const owned_hello&) = default;
};

struct owned_apps {
  std::vector<std::string> applications;
  friend bool operator==(const owned_apps&, const owned_apps&) = default;
};

/// A frame with its own storage; the alternatives are in `frame`'s order.
using owned_frame
  = std::variant<owned_stream_init, owned_data, owned_request, owned_response,
                 owned_stream_error, owned_hello, owned_apps>;

/// Copies a decoded frame.
owned_frame to_owned(const frame& x);

/// Copies a decoded DATA, REQUEST or RESPONSE frame, except its payload:
/// that becomes `payload`, which must hold the same bytes (no copy).
owned_frame to_owned(const frame& x, std::vector<std::byte>&& payload);

/// A view of `x` (strings and payloads point into `x`).
frame view(const owned_frame& x);

/// The type of the frame `x` holds.
frame_type type_of(const owned_frame& x) noexcept;

/// Bytes the frame takes on the wire (header included), or 0 when it cannot
/// be encoded.
size_t wire_size(const owned_frame& x) noexcept;

} // namespace mycorrizal::wire
