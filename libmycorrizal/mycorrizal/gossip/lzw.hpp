// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"

#include <cstddef>

/// LZW exactly as Go's `compress/lzw` with LSB bit order and 8-bit literals
/// (memberlist-wire.md §5.4): codes 0-255 literals, 256 clear, 257 end of
/// data, first table entry 258; widths 9 to 12 bits; the writer sends a
/// clear code first and again when code 4095 is assigned, and ends with the
/// end-of-data code and zero padding. `lzw_compress` output is
/// byte-identical to Go's writer.
namespace mycorrizal::gossip {

/// Compresses `input`.
byte_buffer lzw_compress(bytes_view input);

/// Decompresses `input`, refusing to produce more than `max_size` bytes.
/// Bytes after the end-of-data code are ignored (as Go does).
/// @returns `errc::frame_too_large` once the output would exceed
///   `max_size`, `errc::malformed_frame` for an invalid code or a stream
///   without end-of-data code.
expected<byte_buffer> lzw_decompress(bytes_view input, size_t max_size);

} // namespace mycorrizal::gossip
