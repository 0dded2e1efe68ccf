// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>

/// Big-endian loads and stores on raw bytes (no alignment assumed).
namespace mycorrizal::wire::detail {

inline uint8_t load_u8(const std::byte* p) noexcept {
  return static_cast<uint8_t>(*p);
}

inline uint16_t load_u16(const std::byte* p) noexcept {
  return static_cast<uint16_t>((load_u8(p) << 8) | load_u8(p + 1));
}

inline uint32_t load_u32(const std::byte* p) noexcept {
  return (uint32_t{load_u8(p)} << 24) | (uint32_t{load_u8(p + 1)} << 16)
         | (uint32_t{load_u8(p + 2)} << 8) | uint32_t{load_u8(p + 3)};
}

inline uint64_t load_u64(const std::byte* p) noexcept {
  return (uint64_t{load_u32(p)} << 32) | load_u32(p + 4);
}

inline std::byte* store_u8(std::byte* p, uint8_t x) noexcept {
  *p = static_cast<std::byte>(x);
  return p + 1;
}

inline std::byte* store_u16(std::byte* p, uint16_t x) noexcept {
  p = store_u8(p, static_cast<uint8_t>(x >> 8));
  return store_u8(p, static_cast<uint8_t>(x));
}

inline std::byte* store_u32(std::byte* p, uint32_t x) noexcept {
  p = store_u16(p, static_cast<uint16_t>(x >> 16));
  return store_u16(p, static_cast<uint16_t>(x));
}

inline std::byte* store_u64(std::byte* p, uint64_t x) noexcept {
  p = store_u32(p, static_cast<uint32_t>(x >> 32));
  return store_u32(p, static_cast<uint32_t>(x));
}

} // namespace mycorrizal::wire::detail
