// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/endpoint.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace mycorrizal {

namespace {

constexpr std::array<std::byte, 12> v4_prefix{
  std::byte{0}, std::byte{0}, std::byte{0},    std::byte{0},
  std::byte{0}, std::byte{0}, std::byte{0},    std::byte{0},
  std::byte{0}, std::byte{0}, std::byte{0xff}, std::byte{0xff}};

bool parse_port(std::string_view s, uint16_t& out) {
  if (s.empty() || s.size() > 5) {
    return false;
  }
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v > 65535) {
    return false;
  }
  out = static_cast<uint16_t>(v);
  return true;
}

bool parse_v4(std::string_view s, std::array<uint8_t, 4>& out) {
  size_t part = 0;
  while (part < 4) {
    auto dot = s.find('.');
    auto piece = part < 3 ? s.substr(0, dot) : s;
    if (part < 3 && dot == std::string_view::npos) {
      return false;
    }
    if (piece.empty() || piece.size() > 3) {
      return false;
    }
    unsigned v = 0;
    auto [p, ec] = std::from_chars(piece.data(), piece.data() + piece.size(),
                                   v);
    if (ec != std::errc{} || p != piece.data() + piece.size() || v > 255) {
      return false;
    }
    out[part] = static_cast<uint8_t>(v);
    ++part;
    if (part < 4) {
      s.remove_prefix(dot + 1);
    }
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// RFC 4291 text form, with "::" and an optional trailing dotted IPv4 part.
bool parse_v6(std::string_view s, std::array<std::byte, 16>& out) {
  std::array<uint16_t, 8> groups{};
  size_t n = 0;
  int gap = -1;
  if (s.starts_with("::")) {
    gap = 0;
    s.remove_prefix(2);
  }
  while (!s.empty()) {
    if (n >= 8) {
      return false;
    }
    auto colon = s.find(':');
    auto piece = s.substr(0, colon);
    if (piece.find('.') != std::string_view::npos) {
      std::array<uint8_t, 4> v4{};
      if (colon != std::string_view::npos || n > 6 || !parse_v4(piece, v4)) {
        return false;
      }
      groups[n++] = static_cast<uint16_t>(v4[0] << 8 | v4[1]);
      groups[n++] = static_cast<uint16_t>(v4[2] << 8 | v4[3]);
      s = {};
      break;
    }
    if (piece.empty() || piece.size() > 4) {
      return false;
    }
    unsigned v = 0;
    for (char c : piece) {
      int h = hex_value(c);
      if (h < 0) {
        return false;
      }
      v = v * 16 + static_cast<unsigned>(h);
    }
    groups[n++] = static_cast<uint16_t>(v);
    if (colon == std::string_view::npos) {
      s = {};
    } else {
      s.remove_prefix(colon + 1);
      if (s.starts_with(":")) {
        if (gap >= 0) {
          return false;
        }
        gap = static_cast<int>(n);
        s.remove_prefix(1);
      } else if (s.empty()) {
        return false;
      }
    }
  }
  std::array<uint16_t, 8> full{};
  if (gap < 0) {
    if (n != 8) {
      return false;
    }
    full = groups;
  } else {
    if (n > 7) {
      return false;
    }
    auto g = static_cast<size_t>(gap);
    std::copy_n(groups.begin(), g, full.begin());
    std::copy(groups.begin() + static_cast<std::ptrdiff_t>(g),
              groups.begin() + static_cast<std::ptrdiff_t>(n),
              full.end() - static_cast<std::ptrdiff_t>(n - g));
  }
  for (size_t i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::byte>(full[i] >> 8);
    out[2 * i + 1] = static_cast<std::byte>(full[i] & 0xff);
  }
  return true;
}

} // namespace

ip_endpoint ip_endpoint::v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                            uint16_t port) noexcept {
  ip_endpoint x;
  std::copy(v4_prefix.begin(), v4_prefix.end(), x.bytes_.begin());
  x.bytes_[12] = std::byte{a};
  x.bytes_[13] = std::byte{b};
  x.bytes_[14] = std::byte{c};
  x.bytes_[15] = std::byte{d};
  x.port_ = port;
  return x;
}

expected<ip_endpoint> ip_endpoint::from_bytes(std::span<const std::byte> addr,
                                              uint16_t port) {
  ip_endpoint x;
  x.port_ = port;
  if (addr.size() == 4) {
    std::copy(v4_prefix.begin(), v4_prefix.end(), x.bytes_.begin());
    std::copy(addr.begin(), addr.end(), x.bytes_.begin() + 12);
    return x;
  }
  if (addr.size() == 16) {
    std::copy(addr.begin(), addr.end(), x.bytes_.begin());
    return x;
  }
  return unexpected{
    error{errc::malformed_frame,
          fmt::format("IP address of {} bytes (need 4 or 16)", addr.size())}};
}

expected<ip_endpoint> ip_endpoint::parse(std::string_view text,
                                         uint16_t default_port) {
  auto fail = [&] {
    return unexpected{
      error{errc::invalid_config,
            fmt::format("'{}' is not an IP address with optional port", text)}};
  };
  ip_endpoint x;
  x.port_ = default_port;
  std::string_view host = text;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      return fail();
    }
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':' || !parse_port(rest.substr(1), x.port_)) {
        return fail();
      }
    }
    if (!parse_v6(host, x.bytes_)) {
      return fail();
    }
    return x;
  }
  if (std::count(text.begin(), text.end(), ':') > 1) {
    if (!parse_v6(text, x.bytes_)) {
      return fail();
    }
    return x;
  }
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    if (!parse_port(text.substr(colon + 1), x.port_)) {
      return fail();
    }
  }
  std::array<uint8_t, 4> v4{};
  if (!parse_v4(host, v4)) {
    return fail();
  }
  return ip_endpoint::v4(v4[0], v4[1], v4[2], v4[3], x.port_);
}

bool ip_endpoint::is_v4() const noexcept {
  return std::equal(v4_prefix.begin(), v4_prefix.end(), bytes_.begin());
}

bool ip_endpoint::is_loopback() const noexcept {
  if (is_v4()) {
    return bytes_[12] == std::byte{127};
  }
  bytes_type v6_loopback{};
  v6_loopback[15] = std::byte{1};
  return bytes_ == v6_loopback;
}

bool ip_endpoint::is_unspecified() const noexcept {
  auto addr = wire_bytes();
  return std::all_of(addr.begin(), addr.end(), [](std::byte b) {
    return b == std::byte{0};
  });
}

std::span<const std::byte> ip_endpoint::wire_bytes() const& noexcept {
  if (is_v4()) {
    return std::span<const std::byte>{bytes_}.subspan(12);
  }
  return bytes_;
}

std::string ip_endpoint::address_string() const {
  if (is_v4()) {
    return fmt::format("{}.{}.{}.{}", std::to_integer<int>(bytes_[12]),
                       std::to_integer<int>(bytes_[13]),
                       std::to_integer<int>(bytes_[14]),
                       std::to_integer<int>(bytes_[15]));
  }
  // Longest run of zero groups (>= 2) becomes "::".
  std::array<unsigned, 8> g{};
  for (size_t i = 0; i < 8; ++i) {
    g[i] = std::to_integer<unsigned>(bytes_[2 * i]) << 8
           | std::to_integer<unsigned>(bytes_[2 * i + 1]);
  }
  size_t best = 8;
  size_t best_len = 0;
  for (size_t i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < 8 && g[j] == 0) {
      ++j;
    }
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) {
    best = 8;
  }
  std::string out;
  for (size_t i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') {
      out += ':';
    }
    out += fmt::format("{:x}", g[i]);
  }
  return out;
}

std::string ip_endpoint::to_string() const {
  if (is_v4()) {
    return fmt::format("{}:{}", address_string(), port_);
  }
  return fmt::format("[{}]:{}", address_string(), port_);
}

std::string to_string(const ip_endpoint& x) {
  return x.to_string();
}

} // namespace mycorrizal

size_t std::hash<mycorrizal::ip_endpoint>::operator()(
  const mycorrizal::ip_endpoint& x) const noexcept {
  // FNV-1a over the address bytes and the port.
  uint64_t h = 1469598103934665603ULL;
  for (auto b : x.bytes()) {
    h = (h ^ std::to_integer<uint64_t>(b)) * 1099511628211ULL;
  }
  h = (h ^ x.port()) * 1099511628211ULL;
  return static_cast<size_t>(h);
}
