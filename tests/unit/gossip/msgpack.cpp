// SPDX-License-Identifier: Apache-2.0
// The msgpack subset: Go's output formats and the input variants Go accepts.
#include "mycorrizal/gossip/msgpack.hpp"

#include "hex.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace mycorrizal::gossip::msgpack;
using mycorrizal::test::bytes;
using mycorrizal::test::from_hex;
using mycorrizal::test::hex;

TEST(gossip_msgpack, uint_smallest_unsigned_form) {
  auto enc = [](uint64_t x) {
    byte_buffer out;
    write_uint(out, x);
    return hex(out);
  };
  EXPECT_EQ(enc(0), "00");
  EXPECT_EQ(enc(127), "7f");
  EXPECT_EQ(enc(200), "ccc8");
  EXPECT_EQ(enc(21002), "cd520a");
  EXPECT_EQ(enc(70000), "ce00011170");
  EXPECT_EQ(enc(uint64_t{1} << 40), "cf0000010000000000");
}

TEST(gossip_msgpack, int_like_debian_codec) {
  auto enc = [](int64_t x) {
    byte_buffer out;
    write_int(out, x);
    return hex(out);
  };
  EXPECT_EQ(enc(200), "ccc8"); // D-codec: unsigned form for int >= 0
  EXPECT_EQ(enc(-1), "ff");
  EXPECT_EQ(enc(-33), "d0df");
  EXPECT_EQ(enc(-200), "d1ff38");
}

TEST(gossip_msgpack, raw_never_str8_or_bin) {
  byte_buffer out;
  ASSERT_TRUE(write_str(out, std::string(31, 'x')));
  EXPECT_EQ(hex(out).substr(0, 2), "bf");
  out.clear();
  ASSERT_TRUE(write_str(out, std::string(40, 'x')));
  EXPECT_EQ(hex(out).substr(0, 6), "da0028");
  out.clear();
  ASSERT_TRUE(write_str(out, std::string(70000, 'x')));
  EXPECT_EQ(hex(out).substr(0, 10), "db00011170");
}

TEST(gossip_msgpack, map_headers) {
  byte_buffer out;
  write_map_header(out, 3);
  write_map_header(out, 16);
  write_map_header(out, 70000);
  EXPECT_EQ(hex(out), "83de0010df00011170");
}

TEST(gossip_msgpack, reads_every_integer_width) {
  for (auto h : {"05", "cc05", "cd0005", "ce00000005", "cf0000000000000005",
                 "d005", "d10005", "d200000005", "d30000000000000005"}) {
    auto in = from_hex(h);
    reader r{in};
    auto x = r.read_uint(UINT16_MAX);
    ASSERT_TRUE(x) << h;
    EXPECT_EQ(*x, 5u) << h;
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(gossip_msgpack, rejects_negative_and_overflow) {
  for (auto h : {"ff", "d0ff", "d1ff38", "d3ffffffffffffffff"}) {
    auto in = from_hex(h);
    reader r{in};
    auto x = r.read_uint();
    ASSERT_FALSE(x) << h;
    EXPECT_EQ(x.error(), errc::malformed_frame);
  }
  auto in = from_hex("ce00011170"); // 70000 into a uint16
  reader r{in};
  auto x = r.read_uint(UINT16_MAX);
  ASSERT_FALSE(x);
  EXPECT_EQ(x.error(), errc::malformed_frame);
}

TEST(gossip_msgpack, signed_reads) {
  auto in = from_hex("d1ff38d200000100cfffffffffffffffff");
  reader r{in};
  EXPECT_EQ(*r.read_int(), -200);
  EXPECT_EQ(*r.read_int(), 256);
  auto big = r.read_int(); // above INT64_MAX
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(), errc::malformed_frame);
}

TEST(gossip_msgpack, reads_every_string_format) {
  for (auto h : {"a3616263", "d903616263", "da0003616263", "db00000003616263",
                 "c403616263", "c50003616263", "c600000003616263"}) {
    auto in = from_hex(h);
    reader r{in};
    auto x = r.read_raw();
    ASSERT_TRUE(x) << h;
    EXPECT_EQ(hex(*x), "616263") << h;
  }
  auto nil = from_hex("c0");
  reader r{nil};
  auto x = r.read_raw_or_nil();
  ASSERT_TRUE(x);
  EXPECT_FALSE(x->has_value());
}

TEST(gossip_msgpack, bools_and_ints_as_bools) {
  auto in = from_hex("c3c20100");
  reader r{in};
  EXPECT_TRUE(*r.read_bool());
  EXPECT_FALSE(*r.read_bool());
  EXPECT_TRUE(*r.read_bool());
  EXPECT_FALSE(*r.read_bool());
  auto str = from_hex("a0");
  reader s{str};
  EXPECT_EQ(s.read_bool().error(), errc::malformed_frame);
}

TEST(gossip_msgpack, lengths_checked_against_input) {
  for (auto h : {"a5616263", "da0100", "db7fffffff00", "c4", "df7fffffff",
                 "dd7fffffff", "de00", "cd00", "cf00000000"}) {
    auto in = from_hex(h);
    reader r{in};
    auto res = r.skip();
    ASSERT_FALSE(res) << h;
    EXPECT_EQ(res.error(), errc::truncated_frame) << h;
  }
}

TEST(gossip_msgpack, skip_is_depth_bounded) {
  byte_buffer deep(100, std::byte{0x91}); // [[[[...]]]]
  deep.push_back(std::byte{0x00});
  reader r{deep};
  auto res = r.skip();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), errc::malformed_frame);
  auto ok = from_hex("82a16191c0a162cb3ff0000000000000"); // {a:[nil], b:1.0}
  reader s{ok};
  EXPECT_TRUE(s.skip());
  EXPECT_EQ(s.remaining(), 0u);
  auto reserved = from_hex("c1");
  reader t{reserved};
  EXPECT_EQ(t.skip().error(), errc::malformed_frame);
}
