// SPDX-License-Identifier: Apache-2.0
// Suite quic.transport_config: LAN defaults and validation.
#include "mycorrizal/quic/transport_config.hpp"

#include <gtest/gtest.h>

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

TEST(quic_transport_config, every_bad_field_is_named) {
  transport_config tc;
  tc.max_udp_payload = 1000;
  tc.cid_length = 4;
  tc.keep_alive = tc.idle_timeout;
  tc.max_stream_window = tc.stream_window - 1;
  auto r = tc.validate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_config);
  const auto& text = r.error().context();
  EXPECT_NE(text.find("quic.max_udp_payload"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.cid_length"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.keep_alive"), std::string::npos) << text;
  EXPECT_NE(text.find("quic.max_stream_window"), std::string::npos) << text;
}
