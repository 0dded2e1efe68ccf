// SPDX-License-Identifier: Apache-2.0
// Tests of the frame encoder: exact bytes per docs/protocol.md, round trips
// of every frame type, and the encoder's refusals.
#include "mycorrizal/wire/decoder.hpp"
#include "mycorrizal/wire/encoder.hpp"

#include "frame_eq.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::wire;
using mycorrizal::test::as_bytes;
using mycorrizal::test::bytes;
using mycorrizal::test::hex;

namespace {

std::vector<std::byte> encoded(const frame& x) {
  std::vector<std::byte> out;
  auto r = append(out, x);
  EXPECT_TRUE(r) << to_string(r.error());
  return out;
}

// Decodes exactly one frame from `buf`, which must be used up.
frame decode_one(const std::vector<std::byte>& buf, stream_start start) {
  decoder dec{limits::defaults(), start};
  bytes_view in{buf};
  auto r = dec.next(in);
  EXPECT_TRUE(r) << to_string(r.error()) << " for " << hex(buf);
  EXPECT_TRUE(r && r->has_value()) << hex(buf);
  EXPECT_TRUE(in.empty());
  EXPECT_TRUE(dec.finish());
  return (r && *r) ? **r : frame{};
}

} // namespace

// -- exact bytes, written from docs/protocol.md by hand ---------------------

TEST(wire_codec, stream_init_bytes) {
  auto expected_bytes = bytes({0x01, 0x00, 0, 0, 0, 9, // header: len 9
                               0x01,                   // version 1
                               3, 'k', 'v', 's',       // application
                               3, 'b', '/', '1'});     // stream
  EXPECT_EQ(hex(encoded(stream_init{1, "kvs", "b/1"})), hex(expected_bytes));
}

TEST(wire_codec, data_bytes) {
  std::string payload = "hi!";
  EXPECT_EQ(hex(encoded(data{flag_caf_message, as_bytes(payload)})),
            hex(bytes({0x02, 0x01, 0, 0, 0, 3, 'h', 'i', '!'})));
}

TEST(wire_codec, request_bytes) {
  std::string payload = "q";
  auto x = request{0x0102030405060708, 250, 0, as_bytes(payload)};
  EXPECT_EQ(hex(encoded(x)), hex(bytes({0x03, 0x00, 0, 0, 0, 13, // header
                                        1, 2, 3, 4, 5, 6, 7, 8,  // id
                                        0, 0, 0, 250,            // timeout_ms
                                        'q'})));
}

TEST(wire_codec, response_bytes) {
  std::string text = "no";
  auto x = response{7, errc::no_handler, 0, as_bytes(text)};
  EXPECT_EQ(hex(encoded(x)), hex(bytes({0x04, 0x00, 0, 0, 0, 11, // header
                                        0, 0, 0, 0, 0, 0, 0, 7,  // id
                                        68,                      // no_handler
                                        'n', 'o'})));
}

TEST(wire_codec, stream_error_bytes) {
  EXPECT_EQ(hex(encoded(stream_error{errc::unknown_application, "x"})),
            hex(bytes({0x05, 0x00, 0, 0, 0, 2, 67, 'x'})));
}

TEST(wire_codec, hello_bytes) {
  auto x = hello{1, 3, 0x10, 0x8000000000000001, "n1"};
  EXPECT_EQ(hex(encoded(x)),
            hex(bytes({0x10, 0x00, 0,  0, 0, 21,          // header
                       1,    3,                           // version range
                       0,    0,    0,  0, 0, 0,  0, 0x10, // incarnation
                       0x80, 0,    0,  0, 0, 0,  0, 1,    // capabilities
                       2,    'n',  '1'})));
}

TEST(wire_codec, apps_bytes) {
  EXPECT_EQ(hex(encoded(apps{{"a", "bc"}})),
            hex(bytes({0x11, 0x00, 0, 0, 0, 7, 0, 2, 1, 'a', 2, 'b', 'c'})));
  EXPECT_EQ(hex(encoded(apps{})), hex(bytes({0x11, 0x00, 0, 0, 0, 2, 0, 0})));
}

// -- round trips --------------------------------------------------------------

TEST(wire_codec, every_frame_type_round_trips) {
  std::string big(70000, 'z');
  std::string name255(255, 'n');
  struct item {
    frame x;
    stream_start start;
  };
  std::vector<item> items{
    {stream_init{1, "SYSTEM-MYCEL", ""}, stream_start::peer_opened},
    {stream_init{1, name255, name255}, stream_start::peer_opened},
    {stream_init{1, "caf\xc3\xa9", "bucket:sessions"},
     stream_start::peer_opened},
    {data{0, {}}, stream_start::application_reply},
    {data{flag_caf_message, as_bytes(big)}, stream_start::application_reply},
    {request{~uint64_t{0}, 0, 0, {}}, stream_start::application_reply},
    {request{42, 200, flag_caf_message, as_bytes("ping")},
     stream_start::application_reply},
    {response{42, errc::none, flag_caf_message, as_bytes("pong")},
     stream_start::application_reply},
    {response{43, errc::timeout, 0, as_bytes("slow handler")},
     stream_start::application_reply},
    {stream_error{errc::unsupported_version, "we speak 1..1"},
     stream_start::peer_opened},
    {stream_error{errc::malformed_frame, ""}, stream_start::application_reply},
    {hello{1, 1, 0, 0, "node-a"}, stream_start::peer_opened},
    {hello{1, 200, ~uint64_t{0}, ~uint64_t{0}, name255},
     stream_start::control_reply},
  };
  for (auto& [x, start] : items) {
    auto buf = encoded(x);
    auto size = encoded_size(x);
    ASSERT_TRUE(size);
    EXPECT_EQ(*size, buf.size());
    EXPECT_EQ(decode_one(buf, start), x) << hex(buf);
  }
  // APPS needs a preceding HELLO on the control stream.
  for (auto& x : {apps{}, apps{{"a"}}, apps{{"SYSTEM-MYCEL", "chat", "kv"}}}) {
    auto buf = encoded(hello{1, 1, 1, 0, "n"});
    auto tail = encoded(x);
    buf.insert(buf.end(), tail.begin(), tail.end());
    decoder dec;
    bytes_view in{buf};
    ASSERT_TRUE(dec.next(in));
    auto r = dec.next(in);
    ASSERT_TRUE(r && *r);
    EXPECT_EQ(**r, frame{x});
  }
}

TEST(wire_codec, prefix_plus_payload_equals_whole_frame) {
  std::string payload(1000, 'p');
  for (frame x : {frame{data{0, as_bytes(payload)}},
                  frame{request{9, 100, 0, as_bytes(payload)}},
                  frame{response{9, errc::none, 0, as_bytes(payload)}}}) {
    std::array<std::byte, max_prefix_size> prefix{};
    auto n = encode_prefix(x, prefix);
    ASSERT_TRUE(n);
    std::vector<std::byte> joined(prefix.begin(), prefix.begin() + *n);
    auto p = as_bytes(payload);
    joined.insert(joined.end(), p.begin(), p.end());
    EXPECT_EQ(hex(joined), hex(encoded(x)));
  }
  std::array<std::byte, max_prefix_size> prefix{};
  EXPECT_EQ(encode_prefix(hello{1, 1, 0, 0, "n"}, prefix).error(),
            errc::unexpected_frame);
}

// -- refusals -----------------------------------------------------------------

TEST(wire_codec, refuses_small_buffers_without_writing_past_them) {
  std::string payload = "0123456789";
  frame x = data{0, as_bytes(payload)};
  auto size = *encoded_size(x);
  std::vector<std::byte> buf(size + 4, std::byte{0xee});
  for (size_t n = 0; n < size; ++n) {
    auto r = encode(x, std::span{buf}.first(n));
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error(), errc::buffer_too_small);
  }
  EXPECT_EQ(*encode(x, std::span{buf}.first(size)), size);
  for (size_t i = size; i < buf.size(); ++i) {
    EXPECT_EQ(buf[i], std::byte{0xee}) << "wrote past the buffer at " << i;
  }
}

TEST(wire_codec, refuses_what_a_decoder_would_reject) {
  std::array<std::byte, 1024> buf{};
  std::string long_id(256, 'a');
  auto code = [&](const frame& x) {
    auto r = encode(x, buf);
    return r ? errc::none : r.error().code();
  };
  EXPECT_EQ(code(stream_init{1, "", ""}), errc::invalid_identifier);
  EXPECT_EQ(code(stream_init{1, long_id, ""}), errc::invalid_identifier);
  EXPECT_EQ(code(stream_init{1, "a", long_id}), errc::invalid_identifier);
  EXPECT_EQ(code(stream_init{1, "a\nb", ""}), errc::invalid_identifier);
  EXPECT_EQ(code(stream_init{0, "a", ""}), errc::unsupported_version);
  EXPECT_EQ(code(data{0x02, {}}), errc::malformed_frame);
  EXPECT_EQ(code(request{1, 0, 0x80, {}}), errc::malformed_frame);
  EXPECT_EQ(code(response{1, errc::timeout, flag_caf_message, {}}),
            errc::malformed_frame);
  EXPECT_EQ(code(stream_error{errc::none, ""}), errc::malformed_frame);
  EXPECT_EQ(code(hello{2, 1, 0, 0, "n"}), errc::unsupported_version);
  EXPECT_EQ(code(hello{0, 1, 0, 0, "n"}), errc::unsupported_version);
  EXPECT_EQ(code(hello{1, 1, 0, 0, ""}), errc::invalid_identifier);
  EXPECT_EQ(code(apps{{"a", ""}}), errc::invalid_identifier);
  EXPECT_EQ(code(apps{{"a", "b", "a"}}), errc::malformed_frame);
  apps many;
  std::vector<std::string> names(65536, "x");
  for (auto& n : names) {
    many.applications.push_back(n);
  }
  EXPECT_EQ(code(many), errc::too_many_entries);
}

TEST(wire_codec, refuses_bodies_beyond_four_gib) {
  // A span that claims 4 GiB; never dereferenced because the size check
  // comes first.
  static const std::byte anchor{};
  bytes_view huge{&anchor, size_t{1} << 32};
  std::array<std::byte, 64> buf{};
  EXPECT_EQ(encoded_size(data{0, huge}).error(), errc::frame_too_large);
  EXPECT_EQ(encode(data{0, huge}, buf).error(), errc::frame_too_large);
}

TEST(wire_codec, version_negotiation_picks_highest_common) {
  EXPECT_EQ(negotiate_version(1, 1, 1, 1), 1);
  EXPECT_EQ(negotiate_version(1, 3, 2, 5), 3);
  EXPECT_EQ(negotiate_version(2, 5, 1, 3), 3);
  EXPECT_EQ(negotiate_version(1, 1, 2, 3), 0);
  EXPECT_EQ(negotiate_version(4, 5, 1, 3), 0);
}
