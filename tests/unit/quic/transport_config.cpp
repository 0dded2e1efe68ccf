// SPDX-License-Identifier: Apache-2.0
// Suite quic.transport_config: LAN defaults and validation.
#include "mycorrizal/quic/transport_config.hpp"

#include <gtest/gtest.h>

#include <tuple>
#include <utility>

using namespace mycorrizal;
using namespace mycorrizal::quic;
using namespace std::chrono_literals;

TEST(quic_transport_config, lan_defaults_are_valid) {
  auto tc = transport_config::lan_defaults();
  EXPECT_TRUE(tc.validate());
  EXPECT_EQ(tc.initial_rtt, 10ms);
  EXPECT_EQ(tc.max_udp_payload, 1452u);
  EXPECT_GE(tc.max_streams, 100u);
  EXPECT_LE(tc.max_streams, 1000u);
  EXPECT_EQ(tc.alpn, "mycorrizal/1");
}

TEST(quic_transport_config, unreachable_timeout_is_off_or_within_bounds) {
  transport_config tc;
  EXPECT_EQ(tc.unreachable_timeout, 5s);
  for (auto [value, ok] :
       {std::pair{duration::zero(), true}, std::pair{duration{100ms}, true},
        std::pair{duration{99ms}, false}, std::pair{duration{29s}, true},
        std::pair{duration{30s}, false}, std::pair{duration{-1ms}, false}}) {
    tc.unreachable_timeout = value;
    EXPECT_EQ(static_cast<bool>(tc.validate()), ok)
      << std::chrono::duration_cast<std::chrono::milliseconds>(value).count()
      << " ms";
  }
}

TEST(quic_transport_config, every_bad_field_is_named) {
  transport_config tc;
  tc.max_udp_payload = 1000;
  tc.cid_length = 4;
  tc.keep_alive = tc.idle_timeout;
  tc.unreachable_timeout = tc.idle_timeout;
  tc.max_stream_window = tc.stream_window - 1;
  tc.bulk_in_flight = (size_t{1} << 30) + 1;
  auto r = tc.validate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_config);
  const auto& text = r.error().context();
  EXPECT_NE(text.find("quic.max_udp_payload"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.cid_length"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.keep_alive"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.unreachable_timeout"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.max_stream_window"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.bulk_in_flight"), std::string::npos) << text;
}

TEST(quic_transport_config, loopback_peers_get_large_packets_at_once) {
  transport_config tc;
  auto v4 = ip_endpoint::v4(127, 0, 0, 7, 4000);
  auto v6 = *ip_endpoint::parse("[::1]:4000");
  auto lan = ip_endpoint::v4(10, 1, 2, 3, 4000);
  // The route allows less than the configured 65527: the route wins.
  auto x = tc.for_peer(v4, 65'507);
  EXPECT_EQ(x.max_udp_payload, 65'507u);
  EXPECT_TRUE(x.fixed_udp_payload);
  // One write stays about as many bytes as 64 LAN-sized datagrams.
  EXPECT_EQ(x.max_datagrams_per_write, 1u);
  EXPECT_TRUE(x.validate());
  EXPECT_EQ(tc.for_peer(v6, 65'488).max_udp_payload, 65'488u);
  auto mid = tc.for_peer(v4, 9000);
  EXPECT_EQ(mid.max_udp_payload, 9000u);
  EXPECT_EQ(mid.max_datagrams_per_write, 64u * 1452u / 9000u);
  // Any other peer, a disabled setting, or a route no larger than the LAN
  // size: the configuration unchanged.
  for (auto [peer, route, setting] :
       {std::tuple{lan, size_t{65'507}, size_t{65'527}},
        std::tuple{v4, size_t{65'507}, size_t{0}},
        std::tuple{v4, size_t{1400}, size_t{65'527}}}) {
    transport_config c;
    c.loopback_udp_payload = setting;
    auto y = c.for_peer(peer, route);
    EXPECT_EQ(y.max_udp_payload, 1452u) << peer.to_string() << " " << route;
    EXPECT_FALSE(y.fixed_udp_payload);
    EXPECT_EQ(y.max_datagrams_per_write, 64u);
  }
}

TEST(quic_transport_config, loopback_udp_payload_is_zero_or_a_packet_size) {
  for (size_t ok : {size_t{0}, size_t{1200}, size_t{65'527}}) {
    transport_config tc;
    tc.loopback_udp_payload = ok;
    EXPECT_TRUE(tc.validate()) << ok;
  }
  for (size_t bad : {size_t{1}, size_t{1199}, size_t{65'528}}) {
    transport_config tc;
    tc.loopback_udp_payload = bad;
    auto r = tc.validate();
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().context().find("quic.loopback_udp_payload"),
              std::string::npos)
      << r.error().context();
  }
}
