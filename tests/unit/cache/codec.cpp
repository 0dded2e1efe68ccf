// SPDX-License-Identifier: Apache-2.0
// The Mycel protocol codec: byte layouts checked by hand, round trips of
// every message kind, and bad input (truncation at every byte, trailing
// bytes, unknown kinds and versions, bad enums and flags, lengths and
// counts the input cannot hold, oversized keys, bad bucket names).
#include "mycorrizal/cache/codec.hpp"

#include "mycorrizal/cache/store.hpp"

#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <limits>

using namespace mycorrizal;
using namespace mycorrizal::cache;
using namespace mycorrizal::cache::proto;
using mycorrizal::test::bytes_of;
using mycorrizal::test::hex;

namespace {

const version ver1{1764770000000, 3, 0x1234'5678'9abc'def0};

std::vector<message> samples() {
  record live{"user:1", bytes_of("alice"), ver1, 1764770060000,
              record_kind::value};
  record gone{"user:2", {}, ver1, 0, record_kind::tombstone};
  record evicted{"user:3", {}, ver1, 0, record_kind::dropped};
  return {
    op_request{op_code::put,
               "sessions",
               "user:1",
               bytes_of("alice"),
               1764770060000,
               only_if_absent | return_previous,
               0,
               {}},
    op_request{op_code::incr,
               "counters",
               "hits",
               {},
               0,
               0,
               std::numeric_limits<int64_t>::min(),
               {}},
    op_request{op_code::cas, "s", "k", bytes_of("v"), -1, keep_ttl,
               std::numeric_limits<int64_t>::max(), ver1},
    op_reply{errc::version_mismatch, "newer", true, bytes_of("x"), ver1, 5,
             -42},
    entries{"sessions", 270, transfer::repair, true, {live, gone, evicted}},
    entries{"sessions", 0, transfer::replicate, false, {}},
    digests{"sessions", {{0, ~uint64_t{0}, 12}, {270, 1, 0}}},
    versions{"sessions", 17, {{"user:1", ver1}, {"", version{}}}},
    versions_reply{{live, gone}, {"user:9", ""}},
    buckets{{bucket_def{"sessions",
                        bucket_options{271, 3, ack_mode::primary, 60000, 1000,
                                       uint64_t{1} << 40},
                        ver1, false},
             bucket_def{"old", bucket_options{}, ver1, true}}},
    scan_request{"sessions", 271, 100},
    scan_reply{errc::none, {"a", "b"}, 12},
    replicas{"sessions", {{270, live}, {0, gone}, {3, evicted}}},
    replicas{"sessions", {}},
    op_batch{
      {op_request{
         op_code::put, "sessions", "user:1", bytes_of("alice"), 0, 0, 0, {}},
       op_request{op_code::get, "sessions", "", {}, 0, 0, 0, {}}}},
    op_batch{},
    op_replies{
      {op_reply{}, op_reply{errc::no_owner, "not mine", false, {}, {}, 0, 0}}},
    op_replies{},
  };
}

TEST(cache_codec, a_get_is_laid_out_as_documented) {
  // version 1, kind op_request (1), op get (1), bucket "b", key "k", empty
  // value, expiry 0, flags 0, delta 0, version (0, 0, 0).
  auto got = encode(op_request{op_code::get, "b", "k", {}, 0, 0, 0, {}});
  EXPECT_EQ(hex(got),
            hex(test::bytes({0x01, 0x01, 0x01, 0x01, 0x62, 0x01, 0x6b, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x00})));
}

TEST(cache_codec, varints_are_leb128_and_signed_ones_zigzag) {
  // scan_request (kind 8): partition 300 = ac 02, count 10.
  auto got = encode(scan_request{"b", 300, 10});
  EXPECT_EQ(hex(got),
            hex(test::bytes({0x01, 0x08, 0x01, 0x62, 0xac, 0x02, 0x0a})));
  // incr with delta -5: zigzag 9; expiry 64: zigzag 128 = 80 01.
  auto incr = encode(op_request{op_code::incr, "b", "k", {}, 64, 0, -5, {}});
  EXPECT_EQ(hex(incr),
            hex(test::bytes({0x01, 0x01, 0x06, 0x01, 0x62, 0x01, 0x6b, 0x00,
                             0x80, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00})));
}

TEST(cache_codec, replicas_are_laid_out_as_documented) {
  // version 1, kind replicas (10), bucket "b", 2 writes: partition 300
  // (ac 02), a value record ("k", version (1, 2, 3), kind 0, value "v",
  // expiry 0); partition 0, a tombstone ("", version (0, 0, 0), kind 1).
  auto got = encode(replicas{
    "b",
    {{300, record{"k", bytes_of("v"), version{1, 2, 3}, 0, record_kind::value}},
     {0, record{"", {}, version{}, 0, record_kind::tombstone}}}});
  EXPECT_EQ(hex(got),
            hex(test::bytes({0x01, 0x0a, 0x01, 0x62, 0x02, 0xac, 0x02, 0x01,
                             0x6b, 0x02, 0x02, 0x03, 0x00, 0x01, 0x76, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x01})));
  // op_batch (11) of one get; op_replies (12) of none.
  auto batch
    = encode(op_batch{{op_request{op_code::get, "b", "k", {}, 0, 0, 0, {}}}});
  EXPECT_EQ(hex(batch),
            hex(test::bytes({0x01, 0x0b, 0x01, 0x01, 0x01, 0x62, 0x01, 0x6b,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})));
  EXPECT_EQ(hex(encode(op_replies{})), hex(test::bytes({0x01, 0x0c, 0x00})));
}

TEST(cache_codec, every_kind_round_trips) {
  for (auto& m : samples()) {
    auto wire = encode(m);
    auto back = decode(wire);
    ASSERT_TRUE(back) << m.index() << ": " << to_string(back.error());
    EXPECT_TRUE(*back == m) << "kind index " << m.index();
  }
}

TEST(cache_codec, every_truncation_is_an_error_never_a_crash) {
  for (auto& m : samples()) {
    auto wire = encode(m);
    for (size_t n = 0; n < wire.size(); ++n) {
      auto got = decode(std::span{wire}.first(n));
      ASSERT_FALSE(got) << "kind index " << m.index() << " cut at " << n
                        << " of " << wire.size() << " decoded";
      // Cut short, or a count the bytes left cannot hold.
      auto code = got.error().code();
      EXPECT_TRUE(code == errc::malformed_frame
                  || code == errc::too_many_entries)
        << to_string(got.error());
    }
  }
}

TEST(cache_codec, trailing_bytes_are_refused) {
  auto wire = encode(scan_request{"b", 1, 1});
  wire.push_back(std::byte{0});
  auto got = decode(wire);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), errc::malformed_frame);
  EXPECT_NE(got.error().context().find("1 bytes after"), std::string::npos)
    << to_string(got.error());
}

TEST(cache_codec, unknown_versions_and_kinds_are_named) {
  auto other = decode(test::bytes({0x02, 0x01}));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), errc::unsupported_version);
  auto kind = decode(test::bytes({0x01, 0x63}));
  ASSERT_FALSE(kind);
  EXPECT_EQ(kind.error().code(), errc::unknown_frame_type);
  EXPECT_NE(kind.error().context().find("99"), std::string::npos);
}

TEST(cache_codec, bad_enums_and_flags_are_malformed) {
  // op code 9, unknown.
  auto op = decode(test::bytes({0x01, 0x01, 0x09, 0x01, 0x62, 0x01, 0x6b, 0x00,
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));
  ASSERT_FALSE(op);
  EXPECT_EQ(op.error().code(), errc::malformed_frame);
  // flags 0x20, outside the mask.
  auto flags = decode(test::bytes({0x01, 0x01, 0x01, 0x01, 0x62, 0x01, 0x6b,
                                   0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00}));
  ASSERT_FALSE(flags);
  EXPECT_EQ(flags.error().code(), errc::malformed_frame);
  // A reply whose status names no errc.
  auto reply = encode(op_reply{});
  reply[2] = std::byte{200};
  auto status = decode(reply);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), errc::malformed_frame);
  // A record kind of 3 (a tombstone record ends with its kind).
  auto e = encode(entries{"b",
                          0,
                          transfer::handoff,
                          false,
                          {record{"k", {}, ver1, 0, record_kind::tombstone}}});
  e.back() = std::byte{3};
  auto tomb = decode(e);
  ASSERT_FALSE(tomb);
  EXPECT_EQ(tomb.error().code(), errc::malformed_frame);
}

TEST(cache_codec, a_varint_longer_than_64_bits_is_malformed) {
  // scan_request with a partition of ten continuation bytes.
  auto got = decode(test::bytes({0x01, 0x08, 0x01, 0x62, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01}));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), errc::malformed_frame);
}

TEST(cache_codec, lengths_and_counts_must_fit_the_input) {
  // A bucket name of 100 bytes with 1 byte left.
  auto name = decode(test::bytes({0x01, 0x08, 0x64, 0x62}));
  ASSERT_FALSE(name);
  EXPECT_EQ(name.error().code(), errc::malformed_frame);
  // versions_reply claiming 2^32 records in 1 byte: refused before any
  // allocation.
  auto many
    = decode(test::bytes({0x01, 0x06, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00}));
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code(), errc::too_many_entries);
  // An op_batch of 2 operations in 21 bytes (an operation takes 11 at
  // least), and replicas of 4 writes in 23 bytes (6 at least each).
  auto ops = test::bytes({0x01, 0x0b, 0x02});
  ops.resize(ops.size() + 21);
  auto batch = decode(ops);
  ASSERT_FALSE(batch);
  EXPECT_EQ(batch.error().code(), errc::too_many_entries);
  auto writes = test::bytes({0x01, 0x0a, 0x01, 0x62, 0x04});
  writes.resize(writes.size() + 23);
  auto reps = decode(writes);
  ASSERT_FALSE(reps);
  EXPECT_EQ(reps.error().code(), errc::too_many_entries);
}

TEST(cache_codec, keys_above_the_limit_are_too_large) {
  std::string key(max_key_size + 1, 'k');
  auto wire = encode(op_request{op_code::get, "b", key, {}, 0, 0, 0, {}});
  auto got = decode(wire);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), errc::too_large);
  std::string ok_key(max_key_size, 'k');
  EXPECT_TRUE(
    decode(encode(op_request{op_code::get, "b", ok_key, {}, 0, 0, 0, {}})));
}

TEST(cache_codec, bucket_names_are_checked) {
  EXPECT_TRUE(check_bucket_name("sessions"));
  EXPECT_FALSE(check_bucket_name(""));
  EXPECT_TRUE(check_bucket_name(std::string(253, 'b')));
  EXPECT_FALSE(check_bucket_name(std::string(254, 'b')));
  EXPECT_FALSE(check_bucket_name("a\nb"));
  auto wire = encode(scan_request{"a\x01", 0, 1});
  auto got = decode(wire);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), errc::invalid_identifier);
}

TEST(cache_codec, bucket_options_are_validated) {
  EXPECT_TRUE(validate(bucket_options{}));
  auto bad = validate(bucket_options{0, 9, ack_mode::all, -1, 0, 0});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), errc::invalid_config);
  for (auto* field : {"partitions", "rf", "default ttl"}) {
    EXPECT_NE(bad.error().context().find(field), std::string::npos)
      << field << " not named in " << bad.error().context();
  }
}

} // namespace
