// SPDX-License-Identifier: Apache-2.0
// UDP framing: CRC-32, compound, LZW compress, and unwrap_packet's refusals.
#include "mycorrizal/gossip/crc32.hpp"
#include "mycorrizal/gossip/lzw.hpp"
#include "mycorrizal/gossip/packet.hpp"

#include "hex.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using mycorrizal::test::as_bytes;
using mycorrizal::test::from_hex;
using mycorrizal::test::hex;
using mycorrizal::test::text_bytes;

namespace {

byte_buffer random_bytes(size_t n, uint64_t seed, int alphabet = 256) {
  std::mt19937_64 rng{seed};
  byte_buffer out(n);
  for (auto& b : out) {
    b = static_cast<std::byte>(rng() % alphabet);
  }
  return out;
}

byte_buffer suspect_msg() {
  return from_hex("0383a446726f6da26e32ab496e6361726e6174696f6e01a44e6f6465a2"
                  "6e33");
}

} // namespace

TEST(gossip_crc32, check_values) {
  EXPECT_EQ(crc32_ieee(as_bytes("123456789")), 0xcbf43926u);
  EXPECT_EQ(crc32_ieee({}), 0u);
  // memberlist-wire.md §4.4: suspect with CRC 99d26752.
  EXPECT_EQ(crc32_ieee(suspect_msg()), 0x99d26752u);
  EXPECT_EQ(hex(add_crc(suspect_msg())).substr(0, 10), "0c99d26752");
}

TEST(gossip_framing, crc_mismatch_rejected) {
  auto framed = add_crc(suspect_msg());
  framed.back() ^= std::byte{1};
  auto res = unwrap_packet(framed);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), errc::checksum_mismatch);
  EXPECT_EQ(res.error().context(), "hasCrc: checksum mismatch");
}

TEST(gossip_framing, crc_only_at_the_outside) {
  auto inner = add_crc(suspect_msg());
  auto compound = make_compound(std::vector<byte_buffer>{inner});
  ASSERT_TRUE(compound);
  auto res = unwrap_packet(*compound);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->messages.size(), 1u);
  // The nested type 12 is a leaf nobody handles.
  EXPECT_EQ(decode_packet_message(res->messages[0]).error(),
            errc::unknown_frame_type);
}

TEST(gossip_framing, compound_layout_and_split) {
  std::vector<byte_buffer> parts{from_hex("0b81a55365714e6f04"), suspect_msg()};
  auto c = make_compound(parts);
  ASSERT_TRUE(c);
  EXPECT_EQ(hex(*c).substr(0, 12), "07020009001f");
  auto split = split_compound(*c);
  ASSERT_TRUE(split);
  ASSERT_EQ(split->parts.size(), 2u);
  EXPECT_EQ(hex(split->parts[1]), hex(parts[1]));
  EXPECT_EQ(split->truncated, 0u);
}

TEST(gossip_framing, compound_refusals) {
  EXPECT_EQ(make_compound(std::vector<byte_buffer>{}).error(),
            errc::too_many_entries);
  EXPECT_EQ(make_compound(std::vector<byte_buffer>(128, suspect_msg())).error(),
            errc::too_many_entries);
  EXPECT_EQ(make_compound(std::vector<byte_buffer>{byte_buffer{}}).error(),
            errc::malformed_frame);
  EXPECT_EQ(make_compound(std::vector<byte_buffer>{byte_buffer(70000)}).error(),
            errc::frame_too_large);
}

TEST(gossip_framing, truncated_and_empty_parts_are_dropped) {
  // Go crashes on `07 01 00 00`; we drop the empty part.
  auto empty = from_hex("07010000");
  auto res = unwrap_packet(empty);
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->messages.empty());
  EXPECT_EQ(res->dropped, 1u);
  // Second part claims 200 bytes: the first is kept, the second dropped.
  auto trunc = from_hex("0702000900c80b81a55365714e6f04ffff");
  res = unwrap_packet(trunc);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->messages.size(), 1u);
  EXPECT_EQ(res->dropped, 1u);
  // Cut-off length table.
  for (auto h : {"07", "0702000900"}) {
    auto bad = unwrap_packet(from_hex(h));
    ASSERT_FALSE(bad) << h;
    EXPECT_EQ(bad.error(), errc::malformed_frame);
  }
  EXPECT_EQ(unwrap_packet({}).error(), errc::malformed_frame);
}

TEST(gossip_framing, nesting_limit) {
  byte_buffer msg = suspect_msg();
  for (int i = 0; i < 4; ++i) {
    msg = *make_compound(std::vector<byte_buffer>{msg});
  }
  EXPECT_TRUE(unwrap_packet(msg));
  msg = *make_compound(std::vector<byte_buffer>{msg});
  auto res = unwrap_packet(msg);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), errc::nesting_too_deep);
  // Compress counts as a layer too.
  byte_buffer z = suspect_msg();
  for (int i = 0; i < 5; ++i) {
    z = *compress_message(z);
  }
  EXPECT_EQ(unwrap_packet(z).error(), errc::nesting_too_deep);
}

TEST(gossip_framing, compress_round_trip_through_unwrap) {
  std::vector<byte_buffer> parts(3, suspect_msg());
  auto c = compress_message(*make_compound(parts));
  ASSERT_TRUE(c);
  auto res = unwrap_packet(add_crc(*c));
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->had_crc);
  ASSERT_EQ(res->messages.size(), 3u);
  EXPECT_EQ(hex(res->messages[2]), hex(suspect_msg()));
}

TEST(gossip_framing, compress_refusals) {
  // Algo 1.
  auto bad_algo = from_hex("0982a4416c676f01a3427566a0");
  EXPECT_EQ(unwrap_packet(bad_algo).error(), errc::unsupported_version);
  // Truncated compress map.
  EXPECT_EQ(unwrap_packet(from_hex("0982a4416c676f00a3427566da00ff")).error(),
            errc::malformed_frame);
  // LZW garbage: code 0x1ff before it exists.
  EXPECT_EQ(unwrap_packet(from_hex("0982a4416c676f00a3427566a2ffff")).error(),
            errc::decompress_failed);
  // A bomb: 1 MiB of zeros exceeds a 64 KiB budget.
  auto bomb = compress_message(byte_buffer(1 << 20));
  ASSERT_TRUE(bomb);
  EXPECT_LT(bomb->size(), 20000u);
  packet_options opts;
  opts.limits.max_decompressed = 1 << 16;
  EXPECT_EQ(unwrap_packet(*bomb, opts).error(), errc::frame_too_large);
}

TEST(gossip_lzw, known_go_output) {
  // Go: lzw.NewWriter(LSB, 8) of "TOBEORNOTTOBEORTOBEORNOT".
  auto out = lzw_compress(as_bytes("TOBEORNOTTOBEORTOBEORNOT"));
  auto back = lzw_decompress(out, 1000);
  ASSERT_TRUE(back);
  EXPECT_EQ(hex(*back), hex(as_bytes("TOBEORNOTTOBEORTOBEORNOT")));
  // Empty input is clear + EOF: 0x100, 0x101 in 9 bits.
  EXPECT_EQ(hex(lzw_compress({})), "000302");
}

TEST(gossip_lzw, round_trips_with_table_resets) {
  for (auto [n, alphabet] : std::vector<std::pair<size_t, int>>{{1, 256},
                                                                {2, 256},
                                                                {1000, 4},
                                                                {100000, 256},
                                                                {300000, 3},
                                                                {200000, 40}}) {
    auto in = random_bytes(n, n * 31 + alphabet, alphabet);
    auto z = lzw_compress(in);
    auto back = lzw_decompress(z, n);
    ASSERT_TRUE(back) << n;
    EXPECT_TRUE(*back == in) << n << "/" << alphabet;
    // One byte less than needed trips the cap.
    auto capped = lzw_decompress(z, n - 1);
    ASSERT_FALSE(capped);
    EXPECT_EQ(capped.error(), errc::frame_too_large);
  }
}

TEST(gossip_lzw, garbage_rejected) {
  // Missing EOF code.
  auto z = lzw_compress(as_bytes("hello hello hello"));
  ASSERT_GT(z.size(), 2u);
  EXPECT_EQ(lzw_decompress(bytes_view{z}.first(z.size() - 2), 1000).error(),
            errc::decompress_failed);
  EXPECT_EQ(lzw_decompress({}, 1000).error(), errc::decompress_failed);
  // Random input never crashes.
  for (uint64_t seed = 0; seed < 200; ++seed) {
    auto junk = random_bytes(64, seed);
    auto res = lzw_decompress(junk, 4096);
    if (!res) {
      EXPECT_TRUE(res.error() == errc::decompress_failed
                  || res.error() == errc::frame_too_large);
    }
  }
}
