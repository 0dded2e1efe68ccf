// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/endpoint.hpp"

#include "mycorrizal/errc.hpp"

#include <gtest/gtest.h>

#include <unordered_set>

using mycorrizal::errc;
using mycorrizal::ip_endpoint;

namespace {

TEST(endpoint, parses_ipv4_with_and_without_port) {
  auto a = ip_endpoint::parse("127.0.0.3:7946");
  ASSERT_TRUE(a) << a.error().context();
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->port(), 7946);
  EXPECT_EQ(a->to_string(), "127.0.0.3:7946");
  EXPECT_EQ(*a, ip_endpoint::v4(127, 0, 0, 3, 7946));
  auto b = ip_endpoint::parse("10.1.2.3", 99);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->to_string(), "10.1.2.3:99");
  ASSERT_EQ(a->wire_bytes().size(), 4u);
  EXPECT_EQ(std::to_integer<int>(a->wire_bytes()[0]), 127);
  EXPECT_EQ(std::to_integer<int>(a->wire_bytes()[3]), 3);
}

TEST(endpoint, parses_ipv6_forms) {
  auto a = ip_endpoint::parse("[::1]:5000");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->is_v4());
  EXPECT_EQ(a->to_string(), "[::1]:5000");
  EXPECT_EQ(a->wire_bytes().size(), 16u);
  auto b = ip_endpoint::parse("fe80:0:0:0:1:2:0:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->address_string(), "fe80::1:2:0:0");
  // IPv4-mapped text is the same endpoint as the dotted form.
  auto c = ip_endpoint::parse("[::ffff:1.2.3.4]:7");
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, ip_endpoint::v4(1, 2, 3, 4, 7));
  EXPECT_EQ(c->to_string(), "1.2.3.4:7");
}

TEST(endpoint, from_bytes_accepts_4_or_16) {
  std::array<std::byte, 4> v4{std::byte{192}, std::byte{168}, std::byte{0},
                              std::byte{1}};
  auto a = ip_endpoint::from_bytes(v4, 1);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->to_string(), "192.168.0.1:1");
  std::array<std::byte, 16> mapped{};
  mapped[10] = mapped[11] = std::byte{0xff};
  mapped[12] = std::byte{192};
  mapped[13] = std::byte{168};
  mapped[15] = std::byte{1};
  auto b = ip_endpoint::from_bytes(mapped, 1);
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, *b);
  std::array<std::byte, 5> bad{};
  auto c = ip_endpoint::from_bytes(bad, 1);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::malformed_frame);
}

TEST(endpoint, rejects_malformed_text) {
  for (auto text :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:", "1.2.3.4:65536",
        "1.2.3.4:x", "[::1", "[::1]x", ":::", "1::2::3", "12345::", "a.b.c.d",
        "1:2:3:4:5:6:7:8:9"}) {
    auto r = ip_endpoint::parse(text);
    EXPECT_FALSE(r) << "accepted '" << text << "' as " << r->to_string();
    if (!r) {
      EXPECT_EQ(r.error().code(), errc::invalid_config);
    }
  }
}

TEST(endpoint, hashes_and_orders) {
  std::unordered_set<ip_endpoint> set;
  set.insert(ip_endpoint::v4(127, 0, 0, 1, 1));
  set.insert(ip_endpoint::v4(127, 0, 0, 1, 1));
  set.insert(ip_endpoint::v4(127, 0, 0, 1, 2));
  EXPECT_EQ(set.size(), 2u);
  EXPECT_LT(ip_endpoint::v4(127, 0, 0, 1, 1), ip_endpoint::v4(127, 0, 0, 1, 2));
}

TEST(endpoint, loopback_is_127_slash_8_and_v6_one) {
  EXPECT_TRUE(ip_endpoint::v4(127, 0, 0, 1, 1).is_loopback());
  EXPECT_TRUE(ip_endpoint::v4(127, 200, 3, 4, 0).is_loopback());
  EXPECT_TRUE(ip_endpoint::parse("[::1]:9")->is_loopback());
  EXPECT_TRUE(ip_endpoint::parse("[::ffff:127.0.0.2]:9")->is_loopback());
  EXPECT_FALSE(ip_endpoint::v4(126, 255, 255, 255, 1).is_loopback());
  EXPECT_FALSE(ip_endpoint::v4(10, 0, 0, 1, 1).is_loopback());
  EXPECT_FALSE(ip_endpoint::parse("[::2]:9")->is_loopback());
  EXPECT_FALSE(ip_endpoint::parse("[::]:9")->is_loopback());
  EXPECT_FALSE(ip_endpoint::parse("[fe80::1]:9")->is_loopback());
}

} // namespace
