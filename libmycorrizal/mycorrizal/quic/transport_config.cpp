// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/transport_config.hpp"

#include "mycorrizal/config_check.hpp"
#include "mycorrizal/endpoint.hpp"

#include <algorithm>

namespace mycorrizal::quic {

transport_config transport_config::lan_defaults() {
  return transport_config{};
}

transport_config transport_config::for_peer(const ip_endpoint& peer,
                                            size_t route_payload) const {
  auto out = *this;
  auto payload = std::min(loopback_udp_payload, route_payload);
  if (loopback_udp_payload == 0 || !peer.is_loopback()
      || payload <= max_udp_payload) {
    return out;
  }
  out.max_udp_payload = payload;
  out.fixed_udp_payload = true;
  out.max_datagrams_per_write
    = std::max<size_t>(1, max_datagrams_per_write * max_udp_payload / payload);
  return out;
}

expected<void> transport_config::validate() const {
  using std::chrono::milliseconds;
  config_check check{"quic"};
  auto ms = [](duration d) {
    return std::chrono::duration_cast<milliseconds>(d).count();
  };
  check.in_range<int64_t>("initial_rtt_ms", ms(initial_rtt), 1, 10'000);
  check.in_range<size_t>("max_udp_payload", max_udp_payload, 1200, 65527);
  check.require("loopback_udp_payload",
                loopback_udp_payload == 0
                  || (loopback_udp_payload >= 1200
                      && loopback_udp_payload <= 65527),
                "must be 0 (off) or in 1200..65527");
  check.in_range<uint64_t>("stream_window", stream_window, 1024,
                           uint64_t{1} << 30);
  check.require("max_stream_window", max_stream_window >= stream_window,
                "must be at least stream_window");
  check.in_range<uint64_t>("connection_window", connection_window, 1024,
                           uint64_t{1} << 32);
  check.require("connection_window", connection_window >= stream_window,
                "must be at least stream_window");
  check.require("max_connection_window",
                max_connection_window >= connection_window,
                "must be at least connection_window");
  check.in_range<uint64_t>("max_streams", max_streams, 1, 100'000);
  check.in_range<size_t>("stream_send_buffer", stream_send_buffer, 1024,
                         size_t{1} << 30);
  check.in_range<int64_t>("idle_timeout_ms", ms(idle_timeout), 100, 3'600'000);
  check.require("keep_alive",
                keep_alive.count() >= 0 && keep_alive < idle_timeout,
                "must be 0 (off) or below idle_timeout");
  check.require("unreachable_timeout",
                unreachable_timeout.count() == 0
                  || (unreachable_timeout >= milliseconds{100}
                      && unreachable_timeout < idle_timeout),
                "must be 0 (off), or at least 100 ms and below "
                "idle_timeout");
  check.in_range<int64_t>("handshake_timeout_ms", ms(handshake_timeout), 100,
                          600'000);
  check.in_range<size_t>("latency_reserve", latency_reserve, 0,
                         size_t{16} << 20);
  check.in_range<size_t>("bulk_in_flight", bulk_in_flight, 0, size_t{1} << 30);
  check.in_range<size_t>("cid_length", cid_length, 8, 20);
  check.in_range<size_t>("max_datagrams_per_write", max_datagrams_per_write, 1,
                         1024);
  check.require("alpn", !alpn.empty() && alpn.size() <= 255,
                "must be 1..255 bytes");
  return std::move(check).result();
}

} // namespace mycorrizal::quic
