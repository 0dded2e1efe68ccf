// SPDX-License-Identifier: Apache-2.0
// Base64 (RFC 4648, standard alphabet) for keys and values in text formats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// Gossip keys are written in base64 (`consul keygen`, memberlist); the HTTP
/// API and the CLI carry keys and binary values that way.
namespace mycorrizal {

/// Encodes `in` with `=` padding.
inline std::string encode_base64(const std::byte* in, size_t size) {
  static constexpr std::string_view alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    auto v = (std::to_integer<uint32_t>(in[i]) << 16)
             | (std::to_integer<uint32_t>(in[i + 1]) << 8)
             | std::to_integer<uint32_t>(in[i + 2]);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  if (size - i == 1) {
    auto v = std::to_integer<uint32_t>(in[i]) << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out += "==";
  } else if (size - i == 2) {
    auto v = (std::to_integer<uint32_t>(in[i]) << 16)
             | (std::to_integer<uint32_t>(in[i + 1]) << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

inline std::string encode_base64(const std::vector<std::byte>& in) {
  return encode_base64(in.data(), in.size());
}

/// Decodes standard base64 (`A-Z a-z 0-9 + /`), with or without `=`
/// padding.
/// @returns nothing for any other character, a bad length, misplaced
///          padding, or non-zero trailing bits (a non-canonical encoding).
inline std::optional<std::vector<std::byte>>
decode_base64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    if (c == '+') {
      return 62;
    }
    if (c == '/') {
      return 63;
    }
    return -1;
  };
  size_t pad = 0;
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
    ++pad;
  }
  if (pad > 2 || (pad > 0 && (in.size() + pad) % 4 != 0)
      || in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::vector<std::byte> out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    auto v = value(c);
    if (v < 0) {
      return std::nullopt;
    }
    acc = ((acc << 6) | static_cast<uint32_t>(v)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::byte>((acc >> bits) & 0xff));
    }
  }
  if ((acc & ((uint32_t{1} << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

} // namespace mycorrizal
