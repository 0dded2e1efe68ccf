// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/crc32.hpp"

#include <array>

namespace mycorrizal::gossip {

namespace {

constexpr std::array<uint32_t, 256> make_table() noexcept {
  std::array<uint32_t, 256> result{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1) ? (0xedb88320u ^ (c >> 1)) : (c >> 1);
    }
    result[i] = c;
  }
  return result;
}

constexpr auto table = make_table();

} // namespace

uint32_t crc32_ieee(bytes_view data) noexcept {
  uint32_t c = 0xffffffffu;
  for (auto b : data) {
    c = table[(c ^ static_cast<uint8_t>(b)) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xffffffffu;
}

} // namespace mycorrizal::gossip
