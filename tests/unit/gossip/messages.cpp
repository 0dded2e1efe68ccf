// SPDX-License-Identifier: Apache-2.0
// Message structs: Go's exact bytes (memberlist-wire.md §4.4) and the
// decoding variants Go accepts (§3.3).
#include "mycorrizal/gossip/messages.hpp"

#include "mycorrizal/gossip/msgpack.hpp"
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

byte_buffer lo() {
  return from_hex("7f000001");
}

} // namespace

TEST(gossip_messages, ping_bytes) {
  ping x{1, "n3", lo(), 21000, "n1"};
  auto enc = encode_message(x);
  ASSERT_TRUE(enc);
  EXPECT_EQ(hex(*enc),
            "0085a44e6f6465a26e33a55365714e6f01aa536f7572636541646472"
            "a47f000001aa536f757263654e6f6465a26e31aa536f7572636550"
            "6f7274cd5208");
}

TEST(gossip_messages, ping_omits_empty_fields) {
  auto enc = encode_message(ping{7, "n2", {}, 0, ""});
  ASSERT_TRUE(enc);
  EXPECT_EQ(hex(*enc), "0082a44e6f6465a26e32a55365714e6f07");
}

TEST(gossip_messages, ack_nil_payload_and_nack) {
  EXPECT_EQ(hex(*encode_message(ack{1, std::nullopt})),
            "0282a75061796c6f6164c0a55365714e6f01");
  EXPECT_EQ(hex(*encode_message(ack{1, byte_buffer{}})),
            "0282a75061796c6f6164a0a55365714e6f01");
  EXPECT_EQ(hex(*encode_message(nack{4})), "0b81a55365714e6f04");
}

TEST(gossip_messages, alive_bytes_and_vsn_guard) {
  alive x{1, "n3", lo(), 21002, text_bytes("role=test"), default_vsn()};
  auto enc = encode_message(x);
  ASSERT_TRUE(enc);
  EXPECT_EQ(hex(*enc), "0486a441646472a47f000001ab496e6361726e6174696f6e01a44d"
                       "657461a9726f6c653d74657374a44e6f6465a26e33a4506f7274cd"
                       "520aa356736ea6010502000000");
  x.vsn = {1, 5, 2}; // would crash a Debian node
  auto bad = encode_message(x);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), errc::malformed_frame);
  EXPECT_EQ(bad.error().context(), "alive.Vsn: must have 6 entries, has 3");
}

TEST(gossip_messages, every_type_round_trips) {
  std::vector<packet_message> msgs{
    ping{9, "a", lo(), 1, "b"},
    indirect_ping{4, lo(), 21002, "n3", true, lo(), 21001, "n2"},
    ack{3, text_bytes("pl")},
    nack{2},
    suspect{5, "n", "f"},
    alive{6, std::string(40, 'n'), from_hex("fd000000000000000000000000000002"),
          7, std::nullopt, default_vsn()},
    dead{7, "n", "n"},
    user_msg{text_bytes("hello")},
  };
  for (const auto& m : msgs) {
    auto enc = encode_packet_message(m);
    ASSERT_TRUE(enc);
    auto dec = decode_packet_message(*enc);
    ASSERT_TRUE(dec) << hex(*enc);
    EXPECT_EQ(*dec, m) << hex(*enc);
  }
  // A 40-byte name is `da 00 28`, never str8.
  auto enc = encode_packet_message(msgs[5]);
  EXPECT_NE(hex(*enc).find("a44e6f6465da0028"), std::string::npos);
}

TEST(gossip_messages, decode_accepts_go_variants) {
  // map16, keys out of order, an unknown key, str8/bin8 strings, Vsn as an
  // array, a signed Port, Incarnation as u64.
  byte_buffer m{std::byte{0x04}};
  auto add = [&](const char* h) {
    auto b = from_hex(h);
    m.insert(m.end(), b.begin(), b.end());
  };
  add("de0007");
  add("a356736e"
      "96010502000000");
  add("a4506f7274"
      "d1520a");
  add("a441646472"
      "c4047f000001");
  add("a545787472"
      "61"
      "92c0c3");
  add("a44e6f6465"
      "d9026e33");
  add("ab496e6361726e6174696f6e"
      "cf0000000000000002");
  add("a44d657461"
      "c0");
  auto x = decode_packet_message(m);
  ASSERT_TRUE(x) << to_string(x.error());
  auto a = std::get<alive>(*x);
  EXPECT_EQ(a.node, "n3");
  EXPECT_EQ(a.port, 21002);
  EXPECT_EQ(a.incarnation, 2u);
  EXPECT_EQ(hex(a.addr), "7f000001");
  EXPECT_EQ(a.vsn, default_vsn());
  EXPECT_FALSE(a.meta.has_value());
}

TEST(gossip_messages, wrong_case_keys_decode_as_zero) {
  // Go: "accepted" but every field zero.
  auto m = from_hex("0382a46e6f6465a26e33a466726f6da26e32");
  auto x = decode_packet_message(m);
  ASSERT_TRUE(x);
  EXPECT_EQ(std::get<suspect>(*x), suspect{});
}

TEST(gossip_messages, struct_as_array_is_positional) {
  // suspect declared as {Incarnation, Node, From}.
  auto m = from_hex("0393"
                    "05"
                    "a26e33"
                    "a26e32");
  auto x = decode_packet_message(m);
  ASSERT_TRUE(x);
  EXPECT_EQ(std::get<suspect>(*x), (suspect{5, "n3", "n2"}));
}

TEST(gossip_messages, rejects_wrong_types_and_truncation) {
  struct bad_case {
    const char* hex;
    errc code;
  };
  for (auto c : std::vector<bad_case>{
         {"0381ab496e6361726e6174696f6e ff", errc::malformed_frame},   // -1
         {"0381ab496e6361726e6174696f6e a131", errc::malformed_frame}, // str
         {"0481a4506f7274ce00011170", errc::malformed_frame}, // Port 70000
         {"0481a44e6f646501", errc::malformed_frame},         // int as string
         {"0485a44e6f6465", errc::malformed_frame},           // truncated
         {"0481a44e6f6465a5616263", errc::malformed_frame},   // short string
         {"04c3", errc::malformed_frame},                     // not a map
         {"0e80", errc::unknown_frame_type},
         {"0680", errc::unknown_frame_type}, // push/pull is TCP only
         {"0c00000000", errc::unknown_frame_type},
         {"", errc::malformed_frame},
       }) {
    auto in = from_hex([&] {
      std::string s = c.hex;
      std::erase(s, ' ');
      return s;
    }());
    auto x = decode_packet_message(in);
    ASSERT_FALSE(x) << c.hex;
    EXPECT_EQ(x.error(), c.code) << c.hex << ": " << to_string(x.error());
  }
}

TEST(gossip_messages, a_bad_field_is_named_in_the_error) {
  struct bad_case {
    const char* hex;
    const char* context;
  };
  for (auto c : std::vector<bad_case>{
         {"0481a4506f7274ce00011170", "alive.Port: must be an integer in "
                                      "[0, 65535]"},
         {"0481a44e6f646501", "alive.Node: must be a string"},
         {"0481a356736ec3", "alive.Vsn: must be a string or an array of "
                            "integers in [0, 255]"},
         {"0381ab496e6361726e6174696f6eff", "suspect.Incarnation: must be an "
                                            "integer in [0, 4294967295]"},
         {"0281a75061796c6f616401", "ack.Payload: must be a string or nil"},
         {"0181a44e61636ba131", "indirect_ping.Nack: must be a bool or an "
                                "integer"},
       }) {
    auto x = decode_packet_message(from_hex(c.hex));
    ASSERT_FALSE(x) << c.hex;
    EXPECT_EQ(x.error(), errc::malformed_frame) << c.hex;
    EXPECT_EQ(x.error().context(), c.context) << c.hex;
  }
  // Truncation inside a field stays a truncation (a TCP stream waits for
  // more): the datagram decoder reports it as such.
  auto x = decode_packet_message(from_hex("0481a44e6f6465a5616263"));
  ASSERT_FALSE(x);
  EXPECT_EQ(x.error().context(), "message truncated");
}

TEST(gossip_messages, push_pull_entries_and_header_round_trip) {
  push_node_state n{"n1",         lo(), 7946, std::nullopt, 3, node_state::left,
                    default_vsn()};
  byte_buffer out;
  ASSERT_TRUE(append_body(out, n));
  EXPECT_EQ(hex(out), "87a441646472a47f000001ab496e6361726e6174696f6e03a44d"
                      "657461c0a44e616d65a26e31a4506f7274cd1f0aa5537461746503"
                      "a356736ea6010502000000");
  auto back = decode_body<push_node_state>(out);
  ASSERT_TRUE(back) << to_string(back.error());
  EXPECT_EQ(*back, n);
  // States beyond the four known ones are kept as received.
  n.state = static_cast<node_state>(9);
  out.clear();
  ASSERT_TRUE(append_body(out, n));
  EXPECT_EQ(decode_body<push_node_state>(out)->state, n.state);
  push_pull_header h{2, -1, true};
  out.clear();
  ASSERT_TRUE(append_body(out, h));
  EXPECT_EQ(hex(out),
            "83a44a6f696ec3a54e6f64657302ac5573657253746174654c656eff");
  EXPECT_EQ(*decode_body<push_pull_header>(out), h);
}
