// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/wire/frame.hpp"

#include <cstddef>
#include <span>
#include <vector>

/// Encoding never allocates: the caller owns the buffers. Large payloads need
/// not be copied: `encode_prefix` writes everything that precedes the payload
/// (at most `max_prefix_size` bytes), and the caller sends the payload after
/// it from its own memory (scatter/gather, as `ngtcp2_conn_writev_stream`
/// takes it). The encoder refuses to produce anything a decoder would reject
/// on structural grounds; the receiver's configurable limits (frame size,
/// identifier size below 255, number of applications) are the sender's
/// runtime's to respect.
namespace mycorrizal::wire {

/// The largest prefix any frame has (REQUEST: header + id + timeout).
inline constexpr size_t max_prefix_size = header_size + 8 + 4;

/// Number of bytes `encode` writes for `x`.
/// @returns `errc::frame_too_large` if the body exceeds the u32 length.
expected<size_t> encoded_size(const frame& x) noexcept;

/// Writes `x` to the start of `out`.
/// @returns the number of bytes written, or one of:
///   `errc::buffer_too_small` (nothing usable was written),
///   `errc::invalid_identifier` (id empty, too long, not printable UTF-8),
///   `errc::unsupported_version` (a version or range that is 0 or inverted),
///   `errc::malformed_frame` (unknown flags; a status of `errc::none` in
///     STREAM_ERROR; `flag_caf_message` with an error status; the same
///     application twice in APPS),
///   `errc::too_many_entries` (more than 65535 applications),
///   `errc::frame_too_large` (body larger than 4 GiB - 1).
expected<size_t> encode(const frame& x, std::span<std::byte> out) noexcept;

/// Writes the header and fixed fields of a DATA, REQUEST or RESPONSE frame,
/// i.e. all of it but the payload, which the caller sends right after.
/// Other frame types have no trailing payload: use `encode`.
/// @returns the prefix length, or the errors of `encode`, or
///   `errc::unexpected_frame` for a frame type without payload.
expected<size_t> encode_prefix(const frame& x,
                               std::span<std::byte> out) noexcept;

/// Appends `x` to `out`, growing it as needed.
/// @returns the errors of `encode` except `buffer_too_small`.
expected<void> append(std::vector<std::byte>& out, const frame& x);

} // namespace mycorrizal::wire
