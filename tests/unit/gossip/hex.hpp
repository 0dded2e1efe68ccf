// SPDX-License-Identifier: Apache-2.0
// Test helpers for the gossip tests: hex decoding, byte views of strings.
#pragma once

#include "support/bytes.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::test {

/// Decodes lower- or upper-case hex; throws on odd length or bad digits.
inline std::vector<std::byte> from_hex(std::string_view str) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    throw std::invalid_argument("bad hex digit");
  };
  if (str.size() % 2 != 0) {
    throw std::invalid_argument("odd hex length");
  }
  std::vector<std::byte> result;
  result.reserve(str.size() / 2);
  for (size_t i = 0; i < str.size(); i += 2) {
    result.push_back(
      static_cast<std::byte>(digit(str[i]) * 16 + digit(str[i + 1])));
  }
  return result;
}

/// The bytes of a string literal, as an owned vector.
inline std::vector<std::byte> text_bytes(std::string_view str) {
  auto v = as_bytes(str);
  return {v.begin(), v.end()};
}

} // namespace mycorrizal::test
