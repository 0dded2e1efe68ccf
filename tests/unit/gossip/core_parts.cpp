// SPDX-License-Identifier: Apache-2.0
// The membership core's parts: timing formulas (memberlist-wire.md §9.7,
// §10.1, §10.4, with the values of its tables), awareness, the broadcast
// queue, presets and Mycorrizal's node meta.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/broadcast_queue.hpp"
#include "mycorrizal/gossip/config.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/gossip/timing.hpp"

#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <chrono>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace std::chrono_literals;

namespace {

TEST(gossip_timing, suspicion_timeout_matches_memberlist_tables) {
  // LAN: mult 4, PI 1 s.
  EXPECT_EQ(suspicion_timeout(4, 3, 1s), 4s);
  EXPECT_EQ(suspicion_timeout(4, 10, 1s), 4s);
  EXPECT_EQ(suspicion_timeout(4, 100, 1s), 8s);
  EXPECT_EQ(suspicion_timeout(4, 1000, 1s), 12s);
  // n = 0 and 1 clamp to a scale of 1.
  EXPECT_EQ(suspicion_timeout(4, 0, 1s), 4s);
  // log10(50) = 1.69897 -> truncated to 1.698.
  EXPECT_EQ(suspicion_timeout(4, 50, 1s), 6792ms);
  // Local: mult 3; WAN: mult 6, PI 5 s.
  EXPECT_EQ(suspicion_timeout(3, 3, 1s), 3s);
  EXPECT_EQ(suspicion_timeout(6, 3, 5s), 30s);
}

TEST(gossip_timing, suspicion_remaining_shrinks_with_confirmations) {
  // LAN n = 4..9: min 4 s, max 24 s, k = 2 -> 24 / 11.38 / 4 s.
  EXPECT_EQ(suspicion_remaining(0, 2, 4s, 24s, 0s), 24s);
  EXPECT_EQ(suspicion_remaining(1, 2, 4s, 24s, 0s), 11381ms);
  EXPECT_EQ(suspicion_remaining(2, 2, 4s, 24s, 0s), 4s);
  // Elapsed time is subtracted and may make it negative.
  EXPECT_EQ(suspicion_remaining(2, 2, 4s, 24s, 5s), -1s);
  // k = 0: always the minimum.
  EXPECT_EQ(suspicion_remaining(0, 0, 4s, 24s, 1s), 3s);
  // Local n = 3: min 3, max 18, k = 1 -> one confirmation gives 3 s.
  EXPECT_EQ(suspicion_remaining(1, 1, 3s, 18s, 0s), 3s);
}

TEST(gossip_timing, retransmit_limit_uses_ceil_log10) {
  EXPECT_EQ(retransmit_limit(4, 1), 4);
  EXPECT_EQ(retransmit_limit(4, 9), 4);
  EXPECT_EQ(retransmit_limit(4, 10), 8);
  EXPECT_EQ(retransmit_limit(4, 99), 8);
  EXPECT_EQ(retransmit_limit(4, 100), 12);
  EXPECT_EQ(retransmit_limit(2, 3), 2);
  EXPECT_EQ(retransmit_limit(2, 999), 6);
}

TEST(gossip_timing, push_pull_interval_scales_above_32) {
  EXPECT_EQ(push_pull_scale(30s, 1), 30s);
  EXPECT_EQ(push_pull_scale(30s, 32), 30s);
  EXPECT_EQ(push_pull_scale(30s, 33), 60s);
  EXPECT_EQ(push_pull_scale(30s, 64), 60s);
  EXPECT_EQ(push_pull_scale(30s, 65), 90s);
  EXPECT_EQ(push_pull_scale(30s, 256), 120s);
}

TEST(gossip_timing, awareness_is_clamped) {
  awareness a{8};
  EXPECT_EQ(a.score(), 0);
  a.apply_delta(-1);
  EXPECT_EQ(a.score(), 0);
  a.apply_delta(3);
  EXPECT_EQ(a.scale(1s), 4s);
  a.apply_delta(100);
  EXPECT_EQ(a.score(), 7);
  EXPECT_EQ(a.scale(1s), 8s);
}

using mycorrizal::test::bytes_of;

TEST(gossip_broadcasts, newer_broadcast_about_a_node_replaces_the_old) {
  broadcast_queue q;
  int invalidated = 0;
  q.queue("a", bytes_of("old"), [&](bool sent) {
    invalidated += sent ? 0 : 1;
  });
  q.queue("a", bytes_of("new"));
  q.queue("b", bytes_of("bee"));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(invalidated, 1);
  auto got = q.take(2, 1000, 4);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(std::find(got.begin(), got.end(), bytes_of("new")) != got.end());
  EXPECT_TRUE(std::find(got.begin(), got.end(), bytes_of("old")) == got.end());
}

TEST(gossip_broadcasts, transmit_limit_and_order) {
  broadcast_queue q;
  int finished = 0;
  q.queue("small", bytes_of("s"), [&](bool sent) {
    finished += sent ? 1 : 0;
  });
  q.queue("large", bytes_of("llllllllll"));
  // Budget for one: the larger one goes first among equally fresh ones.
  auto first = q.take(2, 12, 2);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0], bytes_of("llllllllll"));
  // Now "small" has fewer transmissions: it goes first.
  auto second = q.take(2, 12, 2);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0], bytes_of("s"));
  // Both were sent once; the third and fourth take finish them.
  q.take(2, 100, 2);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(finished, 1);
  EXPECT_TRUE(q.take(2, 100, 2).empty());
}

TEST(gossip_broadcasts, respects_the_byte_budget) {
  broadcast_queue q;
  for (int i = 0; i < 50; ++i) {
    q.queue(std::to_string(i), byte_buffer(100, std::byte{1}));
  }
  auto got = q.take(2, 1000, 4);
  EXPECT_EQ(got.size(), 9u); // 9 * 102 <= 1000 < 10 * 102
  q.prune(10);
  EXPECT_EQ(q.size(), 10u);
}

TEST(gossip_config, presets_equal_memberlist_defaults) {
  auto lan = membership_config::lan_defaults();
  EXPECT_EQ(lan.probe_interval, 1s);
  EXPECT_EQ(lan.probe_timeout, 500ms);
  EXPECT_EQ(lan.suspicion_mult, 4);
  EXPECT_EQ(lan.gossip_interval, 200ms);
  EXPECT_EQ(lan.push_pull_interval, 30s);
  EXPECT_EQ(lan.udp_buffer_size, 1400u);
  auto wan = membership_config::wan_defaults();
  EXPECT_EQ(wan.probe_interval, 5s);
  EXPECT_EQ(wan.probe_timeout, 3s);
  EXPECT_EQ(wan.suspicion_mult, 6);
  EXPECT_EQ(wan.gossip_nodes, 4);
  EXPECT_EQ(wan.tcp_timeout, 30s);
  auto local = membership_config::local_defaults();
  EXPECT_EQ(local.indirect_checks, 1);
  EXPECT_EQ(local.retransmit_mult, 2);
  EXPECT_EQ(local.suspicion_mult, 3);
  EXPECT_EQ(local.probe_timeout, 200ms);
  EXPECT_EQ(local.gossip_interval, 100ms);
  EXPECT_EQ(local.gossip_to_the_dead_time, 15s);
  ASSERT_TRUE(profile_defaults("wan"));
  EXPECT_EQ(profile_defaults("wan")->probe_interval, 5s);
  EXPECT_FALSE(profile_defaults("fast"));
}

TEST(gossip_config, validate_names_bad_fields) {
  auto cfg = membership_config::lan_defaults();
  cfg.meta = byte_buffer(513);
  cfg.probe_timeout = 2s;
  cfg.protocol_version = 6;
  auto r = cfg.validate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_config);
  for (auto field : {"gossip.name", "gossip.meta", "gossip.probe_timeout",
                     "gossip.protocol_version"}) {
    EXPECT_NE(r.error().context().find(field), std::string::npos)
      << field << " missing in: " << r.error().context();
  }
}

TEST(gossip_node_meta, round_trip_and_plain_members) {
  node_meta m;
  m.quic_port = 4433;
  m.protocol_min = 1;
  m.protocol_max = 3;
  m.app = bytes_of("zone=a");
  auto enc = encode_node_meta(m);
  ASSERT_TRUE(enc);
  // 'm' 'z' 01 | 01 02 11 51 | 02 02 01 03 | 03 06 "zone=a"
  EXPECT_EQ(enc->size(), 3u + 4 + 4 + 8);
  EXPECT_EQ(std::to_integer<int>((*enc)[5]), 0x11);
  EXPECT_EQ(std::to_integer<int>((*enc)[6]), 0x51);
  auto dec = decode_node_meta(*enc);
  ASSERT_TRUE(dec);
  ASSERT_TRUE(dec->has_value());
  EXPECT_EQ(**dec, m);
  // A Go member's free-form meta is simply not ours.
  auto plain = decode_node_meta(bytes_of("role=web"));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->has_value());
  auto empty = decode_node_meta({});
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->has_value());
}

TEST(gossip_node_meta, roles_travel_only_when_set) {
  node_meta m;
  m.quic_port = 4433;
  auto plain = *encode_node_meta(m);
  // No roles: the bytes of earlier versions, no tag 4.
  EXPECT_EQ(plain.size(), 3u + 4 + 4);
  m.roles = cache_storage;
  auto enc = *encode_node_meta(m);
  // ... | 04 01 01
  ASSERT_EQ(enc.size(), plain.size() + 3);
  EXPECT_EQ(std::to_integer<int>(enc[11]), 4);
  EXPECT_EQ(std::to_integer<int>(enc[12]), 1);
  EXPECT_EQ(std::to_integer<int>(enc[13]), 1);
  auto dec = decode_node_meta(enc);
  ASSERT_TRUE(dec);
  EXPECT_EQ(dec->value().roles, cache_storage);
  EXPECT_EQ(decode_node_meta(plain)->value().roles, 0);
  // A role bit this version does not know is kept; an empty value is bad.
  enc[13] = std::byte{0x81};
  EXPECT_EQ(decode_node_meta(enc)->value().roles, 0x81);
  auto empty = plain;
  for (auto b : {0x04, 0x00}) {
    empty.push_back(static_cast<std::byte>(b));
  }
  EXPECT_FALSE(decode_node_meta(empty));
}

TEST(gossip_node_meta, later_formats_and_bad_input) {
  node_meta m;
  m.quic_port = 1;
  auto enc = *encode_node_meta(m);
  // An unknown tag from a later format is skipped.
  auto later = enc;
  for (auto b : {0x09, 0x02, 0xaa, 0xbb}) {
    later.push_back(static_cast<std::byte>(b));
  }
  auto dec = decode_node_meta(later);
  ASSERT_TRUE(dec);
  EXPECT_EQ(dec->value().quic_port, 1);
  // Cut-off TLVs and impossible ranges are errors.
  // (Cuts at 7 and 11 end between TLVs and are valid shorter metas.)
  for (size_t cut : {4, 5, 6, 8, 9, 10}) {
    byte_buffer part(enc.begin(), enc.begin() + static_cast<long>(cut));
    auto r = decode_node_meta(part);
    EXPECT_FALSE(r) << "accepted a prefix of " << cut << " bytes";
  }
  auto bad = enc;
  bad[9] = std::byte{9}; // min 9 > max 1
  EXPECT_FALSE(decode_node_meta(bad));
  node_meta big;
  big.app = byte_buffer(300);
  EXPECT_EQ(encode_node_meta(big).error().code(), errc::too_large);
}

} // namespace
