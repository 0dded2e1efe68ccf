// SPDX-License-Identifier: Apache-2.0
// Labels (memberlist upstream v0.3.0+, memberlist-wire.md §6.5): the
// header, its check on receipt, and its place in the GCM additional data.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/messages.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/gossip/stream.hpp"

#include <gtest/gtest.h>

using namespace mycorrizal;
using namespace mycorrizal::gossip;

namespace {

byte_buffer ping_bytes() {
  ping p;
  p.seq_no = 7;
  p.node = "n";
  return *encode_message(p);
}

keyring ring_of(std::byte fill) {
  keyring k;
  EXPECT_TRUE(k.install(byte_buffer(32, fill)));
  return k;
}

TEST(gossip_labels, header_layout_and_split) {
  auto msg = ping_bytes();
  auto labelled = add_label("prod", msg);
  ASSERT_TRUE(labelled);
  ASSERT_EQ(labelled->size(), msg.size() + 6);
  EXPECT_EQ(std::to_integer<int>((*labelled)[0]), 244);
  EXPECT_EQ(std::to_integer<int>((*labelled)[1]), 4);
  EXPECT_EQ(static_cast<char>((*labelled)[2]), 'p');
  auto split = split_label(*labelled);
  ASSERT_TRUE(split);
  EXPECT_EQ(split->first, "prod");
  EXPECT_TRUE(std::equal(split->second.begin(), split->second.end(),
                         msg.begin(), msg.end()));
  // No label: nothing added.
  EXPECT_EQ(*add_label("", msg), msg);
  EXPECT_EQ(add_label(std::string(256, 'x'), msg).error().code(),
            errc::too_large);
  // Cut-off and empty labels are errors.
  for (auto bad :
       {byte_buffer{std::byte{244}}, byte_buffer{std::byte{244}, std::byte{0}},
        byte_buffer{std::byte{244}, std::byte{5}, std::byte{'a'}}}) {
    EXPECT_FALSE(split_label(bad));
  }
}

TEST(gossip_labels, packets_must_carry_our_label) {
  auto msg = ping_bytes();
  auto labelled = *add_label("prod", msg);
  packet_options opts;
  opts.label = "prod";
  EXPECT_TRUE(unwrap_packet(labelled, opts));
  // Unlabelled, or another label: dropped.
  EXPECT_FALSE(unwrap_packet(msg, opts));
  opts.label = "test";
  EXPECT_FALSE(unwrap_packet(labelled, opts));
  // Without a label of our own, labelled packets are refused too...
  opts.label = {};
  EXPECT_FALSE(unwrap_packet(labelled, opts));
  // ...unless the check is skipped.
  opts.skip_inbound_label_check = true;
  EXPECT_TRUE(unwrap_packet(labelled, opts));
}

TEST(gossip_labels, label_is_authenticated_when_encrypted) {
  auto ring = ring_of(std::byte{1});
  auto msg = ping_bytes();
  auto enc = *encrypt_packet(msg, ring, 1, gcm_nonce{}, "prod");
  auto good = *add_label("prod", enc);
  packet_options opts;
  opts.keys = &ring;
  opts.label = "prod";
  auto ok = unwrap_packet(good, opts);
  ASSERT_TRUE(ok) << to_string(ok.error());
  EXPECT_EQ(ok->messages.size(), 1u);
  // The same ciphertext under another label fails authentication even
  // when the label check is skipped.
  auto forged = *add_label("test", enc);
  opts.skip_inbound_label_check = true;
  EXPECT_FALSE(unwrap_packet(forged, opts));
}

TEST(gossip_labels, streams_carry_the_label_once_and_authenticate_it) {
  auto ring = ring_of(std::byte{2});
  auto msg = ping_bytes();
  stream_send_options send;
  send.keys = &ring;
  send.label = "prod";
  auto framed = frame_stream(msg, send);
  ASSERT_TRUE(framed);
  EXPECT_EQ(std::to_integer<int>((*framed)[0]), 244);
  stream_options recv;
  recv.keys = &ring;
  recv.label = "prod";
  auto got = decode_stream(*framed, recv);
  ASSERT_TRUE(got) << to_string(got.error());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->consumed, framed->size());
  EXPECT_TRUE(std::holds_alternative<gossip::ping>((*got)->message));
  // A prefix asks for more.
  auto part = decode_stream(bytes_view{*framed}.first(3), recv);
  ASSERT_TRUE(part);
  EXPECT_FALSE(part->has_value());
  // Another label: refused; a relabelled stream fails authentication.
  recv.label = "test";
  EXPECT_FALSE(decode_stream(*framed, recv));
  recv.skip_inbound_label_check = true;
  byte_buffer relabelled{std::byte{244}, std::byte{4},   std::byte{'t'},
                         std::byte{'e'}, std::byte{'s'}, std::byte{'t'}};
  relabelled.insert(relabelled.end(), framed->begin() + 6, framed->end());
  EXPECT_FALSE(decode_stream(relabelled, recv));
  // Plaintext labelled stream.
  stream_send_options plain;
  plain.compress = false;
  plain.label = "prod";
  auto p = frame_stream(msg, plain);
  stream_options precv;
  precv.label = "prod";
  auto pg = decode_stream(*p, precv);
  ASSERT_TRUE(pg && pg->has_value());
  EXPECT_EQ((*pg)->consumed, p->size());
}

} // namespace
