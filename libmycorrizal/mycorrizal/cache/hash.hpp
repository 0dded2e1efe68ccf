// SPDX-License-Identifier: Apache-2.0
// Stable 64-bit hashing for placement and node ids: the same bytes give
// the same number on every node, every build and every run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mycorrizal::cache {

/// splitmix64's finalizer: spreads every input bit over the whole word.
constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/// FNV-1a over `s`, finalized with `mix64` (FNV alone is weak in its low
/// bits, which the partition modulo and the rendezvous order use).
constexpr uint64_t hash64(std::string_view s, uint64_t seed = 0) noexcept {
  uint64_t h = 0xcbf29ce484222325ULL ^ mix64(seed);
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return mix64(h);
}

} // namespace mycorrizal::cache
