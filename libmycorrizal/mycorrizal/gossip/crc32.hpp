// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/gossip/fwd.hpp"

#include <cstdint>

namespace mycorrizal::gossip {

/// CRC-32 (IEEE 802.3 / zlib polynomial, reflected, init and final xor
/// 0xffffffff) as Go's `crc32.ChecksumIEEE`, table-driven.
/// `crc32_ieee("123456789") == 0xcbf43926`.
uint32_t crc32_ieee(bytes_view data) noexcept;

} // namespace mycorrizal::gossip
