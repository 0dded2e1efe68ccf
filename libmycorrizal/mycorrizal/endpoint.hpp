// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

/// An IP address and port, the way the cores name a peer. Pure: no socket
/// headers; the actors convert to and from `sockaddr`.
namespace mycorrizal {

/// IPv4 or IPv6 address plus port. IPv4 is stored as IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`), so one representation compares and hashes for both.
class ip_endpoint {
public:
  using bytes_type = std::array<std::byte, 16>;

  /// `[::]:0`.
  constexpr ip_endpoint() noexcept = default;

  /// IPv4 `a.b.c.d:port`.
  static ip_endpoint v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                        uint16_t port) noexcept;

  /// From 4 (IPv4) or 16 (IPv6, IPv4-mapped allowed) address bytes, as
  /// memberlist's `Addr` fields carry them.
  /// @returns `errc::malformed_frame` for any other length.
  static expected<ip_endpoint> from_bytes(std::span<const std::byte> addr,
                                          uint16_t port);

  /// Parses `a.b.c.d:port`, `[v6]:port`, or an address without port (then
  /// `default_port`).
  /// @returns `errc::invalid_config` naming the text when it is not one.
  static expected<ip_endpoint> parse(std::string_view text,
                                     uint16_t default_port = 0);

  /// The 16 address bytes (IPv4-mapped for IPv4).
  constexpr const bytes_type& bytes() const noexcept {
    return bytes_;
  }

  /// The address as it goes on memberlist's wire: 4 bytes for IPv4, else 16.
  /// The view points into this object: not callable on a temporary.
  std::span<const std::byte> wire_bytes() const& noexcept;
  std::span<const std::byte> wire_bytes() const&& = delete;

  bool is_v4() const noexcept;

  /// 127.0.0.0/8 or ::1: an address of this host's loopback interface.
  bool is_loopback() const noexcept;

  /// 0.0.0.0 or `::`: a wildcard, not an address one can send from.
  bool is_unspecified() const noexcept;

  constexpr uint16_t port() const noexcept {
    return port_;
  }

  void port(uint16_t x) noexcept {
    port_ = x;
  }

  /// `a.b.c.d:port` or `[v6]:port`.
  std::string to_string() const;

  /// The address alone, without port.
  std::string address_string() const;

  auto operator<=>(const ip_endpoint&) const = default;

private:
  bytes_type bytes_{};
  uint16_t port_ = 0;
};

std::string to_string(const ip_endpoint& x);

} // namespace mycorrizal

template <>
struct std::hash<mycorrizal::ip_endpoint> {
  size_t operator()(const mycorrizal::ip_endpoint& x) const noexcept;
};
