// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string_view>

namespace mycorrizal::quic {

/// A read-only view of datagram or stream bytes.
using bytes_view = std::span<const std::byte>;

/// Monotonic time as the caller's clock reports it (`now` parameters). The
/// cores never read a clock themselves.
using time_point = std::chrono::steady_clock::time_point;

/// Durations in the QUIC cores (ngtcp2 counts nanoseconds).
using duration = std::chrono::nanoseconds;

/// Wall-clock time, for certificate validity.
using wall_time = std::chrono::system_clock::time_point;

/// Fills its argument with random bytes (connection ids, reset tokens,
/// serial numbers). Tests pass a seeded generator; nodes a CSPRNG.
using random_bytes = std::function<void(std::span<std::byte>)>;

/// The one application protocol Mycorrizal speaks over QUIC.
inline constexpr std::string_view alpn_v1 = "mycorrizal/1";

class credentials;
class connection;
struct transport_config;
struct connection_stats;

} // namespace mycorrizal::quic
