// SPDX-License-Identifier: Apache-2.0
// Test helpers: byte vectors from integer lists, hex dumps for failure output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::test {

/// Builds a byte vector from small integers: `bytes({0x01, 0x00, ...})`.
inline std::vector<std::byte> bytes(std::initializer_list<int> xs) {
  std::vector<std::byte> result;
  result.reserve(xs.size());
  for (auto x : xs) {
    result.push_back(static_cast<std::byte>(x));
  }
  return result;
}

/// The characters of `str` as bytes.
inline std::vector<std::byte> bytes_of(std::string_view str) {
  auto* p = reinterpret_cast<const std::byte*>(str.data());
  return {p, p + str.size()};
}

/// Appends the characters of `str` to `out`.
inline void append_text(std::vector<std::byte>& out, std::string_view str) {
  for (auto c : str) {
    out.push_back(static_cast<std::byte>(c));
  }
}

/// Views a string's characters as bytes.
inline std::span<const std::byte> as_bytes(std::string_view str) {
  return {reinterpret_cast<const std::byte*>(str.data()), str.size()};
}

/// Renders bytes as lower-case hex, for failure messages.
inline std::string hex(std::span<const std::byte> xs) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result;
  for (auto b : xs) {
    auto v = static_cast<uint8_t>(b);
    result += digits[v >> 4];
    result += digits[v & 0x0f];
  }
  return result;
}

} // namespace mycorrizal::test
