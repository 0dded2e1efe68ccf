// SPDX-License-Identifier: Apache-2.0
// TCP stream framing (memberlist-wire.md §6.3, §7).
#include "mycorrizal/gossip/stream.hpp"

#include "mycorrizal/gossip/packet.hpp"

#include "hex.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using mycorrizal::test::from_hex;
using mycorrizal::test::hex;
using mycorrizal::test::text_bytes;

namespace {

push_pull sample_push_pull() {
  push_pull x;
  x.join = true;
  x.nodes.push_back({"n3", from_hex("7f000001"), 21002, text_bytes("role=test"),
                     1, node_state::alive, default_vsn()});
  x.nodes.push_back({"n4", from_hex("7f000002"), 21003, std::nullopt, 4,
                     node_state::left, default_vsn()});
  x.user_state = text_bytes("hello-state");
  return x;
}

keyring ring32() {
  keyring ring;
  EXPECT_TRUE(ring.install(byte_buffer(32, std::byte{5})));
  return ring;
}

} // namespace

TEST(gossip_stream, push_pull_bytes) {
  push_pull x;
  x.join = true;
  x.nodes.push_back({"n3", from_hex("7f000001"), 21002, text_bytes("role=test"),
                     1, node_state::alive, default_vsn()});
  auto enc = encode_stream_message(x);
  ASSERT_TRUE(enc);
  EXPECT_EQ(hex(*enc),
            "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656e0087a441"
            "646472a47f000001ab496e6361726e6174696f6e01a44d657461a9726f6c653d"
            "74657374a44e616d65a26e33a4506f7274cd520aa5537461746500a356736ea6"
            "010502000000");
}

TEST(gossip_stream, every_message_all_framings_incrementally) {
  auto ring = ring32();
  std::vector<stream_message> msgs{
    ping{3, "n1", from_hex("7f000001"), 7946, "n2"}, ack{3, std::nullopt},
    sample_push_pull(), user_msg{text_bytes("reliable")},
    err_resp{"Encryption is configured but remote state is not encrypted"}};
  for (const auto& m : msgs) {
    auto plain = encode_stream_message(m);
    ASSERT_TRUE(plain);
    for (int mode = 0; mode < 4; ++mode) {
      stream_send_options send;
      send.compress = mode & 1;
      send.keys = (mode & 2) ? &ring : nullptr;
      send.encryption_version = static_cast<uint8_t>(mode & 1);
      send.nonce.fill(std::byte{9});
      auto framed = frame_stream(*plain, send);
      ASSERT_TRUE(framed);
      stream_options opts;
      opts.keys = send.keys;
      // Byte by byte: every prefix asks for more.
      for (size_t n = 0; n < framed->size(); ++n) {
        auto part = decode_stream(bytes_view{*framed}.first(n), opts);
        ASSERT_TRUE(part) << mode << "/" << n << ": "
                          << to_string(part.error());
        ASSERT_FALSE(part->has_value()) << mode << "/" << n;
      }
      // Trailing bytes (the next read) are not consumed.
      auto more = *framed;
      more.push_back(std::byte{0x42});
      auto res = decode_stream(more, opts);
      ASSERT_TRUE(res) << to_string(res.error());
      ASSERT_TRUE(res->has_value());
      EXPECT_EQ((*res)->consumed, framed->size());
      EXPECT_EQ((*res)->message, m);
      EXPECT_EQ((*res)->compressed, send.compress);
      EXPECT_EQ((*res)->encrypted, send.keys != nullptr);
    }
  }
}

TEST(gossip_stream, encryption_mismatch) {
  auto ring = ring32();
  auto plain = *encode_stream_message(ping{1, "x", {}, 0, ""});
  stream_options with_keys;
  with_keys.keys = &ring;
  EXPECT_EQ(decode_stream(plain, with_keys).error(), errc::encryption_mismatch);
  with_keys.verify_incoming = false;
  EXPECT_TRUE(decode_stream(plain, with_keys));
  auto enc = *encrypt_stream(plain, ring, 1, gcm_nonce{});
  EXPECT_EQ(decode_stream(enc, {}).error(), errc::encryption_mismatch);
  // Wrong key.
  keyring other;
  ASSERT_TRUE(other.install(byte_buffer(16, std::byte{1})));
  stream_options wrong;
  wrong.keys = &other;
  EXPECT_EQ(decode_stream(enc, wrong).error(), errc::decrypt_failed);
  // The 5-byte header is authenticated: a different length field (with the
  // bytes to match) no longer verifies.
  auto tampered = enc;
  tampered.push_back(std::byte{0});
  tampered[4] = static_cast<std::byte>(static_cast<uint8_t>(tampered[4]) + 1);
  EXPECT_EQ(decode_stream(tampered, with_keys).error(), errc::decrypt_failed);
}

TEST(gossip_stream, limits_and_garbage) {
  stream_options opts;
  opts.limits.max_nodes = 1;
  opts.limits.max_user_state = 4;
  auto pp = *encode_stream_message(sample_push_pull());
  EXPECT_EQ(decode_stream(pp, opts).error(), errc::too_many_entries);
  opts.limits.max_nodes = 10;
  EXPECT_EQ(decode_stream(pp, opts).error(), errc::frame_too_large);
  // Encrypted length above the limit is refused before reading it.
  auto ring = ring32();
  stream_options enc_opts;
  enc_opts.keys = &ring;
  EXPECT_EQ(decode_stream(from_hex("0a7fffffff"), enc_opts).error(),
            errc::frame_too_large);
  // Negative counts (as upstream's int encoding allows).
  EXPECT_EQ(
    decode_stream(from_hex("0683a44a6f696ec3a54e6f646573ffac5573657253746174"
                           "654c656e00"),
                  {})
      .error(),
    errc::malformed_frame);
  EXPECT_EQ(decode_stream(from_hex("0381a4466f6f00"), {}).error(),
            errc::unknown_frame_type);
  EXPECT_EQ(decode_stream(from_hex("0e80"), {}).error(),
            errc::unknown_frame_type);
  // A compressed stream must be whole once the compress map is.
  auto inner = *encode_stream_message(sample_push_pull());
  inner.resize(inner.size() - 3);
  auto z = *compress_message(inner);
  EXPECT_EQ(decode_stream(z, {}).error(), errc::malformed_frame);
  // Compressed type 9 inside 9 is not a stream message.
  auto zz = *compress_message(*compress_message(from_hex("0080")));
  EXPECT_EQ(decode_stream(zz, {}).error(), errc::unknown_frame_type);
}
