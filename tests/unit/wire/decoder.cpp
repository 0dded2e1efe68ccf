// SPDX-License-Identifier: Apache-2.0
// Tests of the incremental frame decoder: every split point, every malformed
// input, the stream state machine and the memory bound.
#include "mycorrizal/wire/decoder.hpp"

#include "mycorrizal/wire/encoder.hpp"

#include "frame_eq.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <type_traits>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::wire;
using mycorrizal::test::as_bytes;
using mycorrizal::test::bytes;
using mycorrizal::test::hex;

namespace {

// A decoded frame with its views copied out, so it outlives the decoder call
// (views into the decoder's buffer expire with its next call).
struct owned {
  frame x;
  std::vector<std::byte> payload;
  std::deque<std::string> strings; // stable addresses for the views

  // Copies would keep views into the original: move only.
  owned(frame f) : x(std::move(f)) {
    // nop
  }
  owned(owned&&) = default;
  owned(const owned&) = delete;
  owned& operator=(const owned&) = delete;
};

owned own(const frame& x) {
  owned result{x};
  auto keep = [&](std::string_view& str) {
    str = result.strings.emplace_back(str);
  };
  std::visit(
    [&](auto& f) {
      using type = std::decay_t<decltype(f)>;
      if constexpr (requires { f.payload; }) {
        result.payload.assign(f.payload.begin(), f.payload.end());
        f.payload = result.payload;
      } else if constexpr (std::is_same_v<type, stream_init>) {
        keep(f.application);
        keep(f.stream);
      } else if constexpr (std::is_same_v<type, stream_error>) {
        keep(f.message);
      } else if constexpr (std::is_same_v<type, hello>) {
        keep(f.node_name);
      } else {
        for (auto& id : f.applications) {
          keep(id);
        }
      }
    },
    result.x);
  return result;
}

struct run_result {
  std::deque<owned> frames;
  errc error = errc::none;
  size_t max_buffered = 0;
};

// Feeds `input` to a decoder in pieces cut at `cuts` (ascending offsets).
run_result run(bytes_view input, const std::vector<size_t>& cuts,
               stream_start start = stream_start::peer_opened,
               limits lim = limits::defaults()) {
  decoder dec{lim, start};
  run_result result;
  size_t from = 0;
  auto feed = [&](bytes_view piece) {
    while (true) {
      auto r = dec.next(piece);
      result.max_buffered = std::max(result.max_buffered, dec.buffered());
      if (!r) {
        result.error = r.error().code();
        return false;
      }
      if (!r->has_value()) {
        EXPECT_TRUE(piece.empty());
        return true;
      }
      result.frames.emplace_back(own(**r));
    }
  };
  for (auto cut : cuts) {
    if (!feed(input.subspan(from, cut - from))) {
      return result;
    }
    from = cut;
  }
  if (feed(input.subspan(from)) && result.error == errc::none) {
    if (auto fin = dec.finish(); !fin) {
      result.error = fin.error().code();
    }
  }
  return result;
}

errc error_of(const std::vector<std::byte>& input,
              stream_start start = stream_start::peer_opened,
              limits lim = limits::defaults()) {
  return run(input, {}, start, lim).error;
}

void add(std::vector<std::byte>& out, const frame& x) {
  auto r = append(out, x);
  ASSERT_TRUE(r) << to_string(r.error());
}

// An application stream: init, then one frame of each kind.
std::vector<std::byte> app_stream(std::vector<frame>& frames) {
  static const std::string big(3000, 'b');
  frames = {
    stream_init{1, "chat", "room:1"},
    data{0, as_bytes("hello")},
    request{1, 500, flag_caf_message, as_bytes("question?")},
    data{0, as_bytes(big)},
    response{1, errc::none, 0, as_bytes("answer")},
    response{2, errc::unknown_application, 0, as_bytes("no such app")},
    data{0, {}},
    stream_error{errc::shutting_down, "bye"},
  };
  std::vector<std::byte> out;
  for (auto& x : frames) {
    add(out, x);
  }
  return out;
}

} // namespace

// -- splitting
// ------------------------------------------------------------------

TEST(wire_decoder, decodes_a_stream_in_one_piece) {
  std::vector<frame> frames;
  auto buf = app_stream(frames);
  auto res = run(buf, {});
  ASSERT_EQ(res.error, errc::none);
  ASSERT_EQ(res.frames.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(res.frames[i].x, frames[i]) << "frame " << i;
  }
  // Whole frames in the input are not copied.
  EXPECT_EQ(res.max_buffered, 0u);
}

TEST(wire_decoder, every_single_split_point) {
  std::vector<frame> frames;
  auto buf = app_stream(frames);
  for (size_t cut = 0; cut <= buf.size(); ++cut) {
    auto res = run(buf, {cut});
    ASSERT_EQ(res.error, errc::none) << "cut at " << cut;
    ASSERT_EQ(res.frames.size(), frames.size()) << "cut at " << cut;
    for (size_t i = 0; i < frames.size(); ++i) {
      ASSERT_EQ(res.frames[i].x, frames[i])
        << "cut at " << cut << ", frame " << i;
    }
  }
}

TEST(wire_decoder, every_pair_of_split_points_in_the_control_stream) {
  std::vector<std::byte> buf;
  add(buf, hello{1, 1, 7, 3, "node-a"});
  add(buf, apps{{"chat", "kv"}});
  add(buf, apps{{"chat"}});
  for (size_t a = 0; a <= buf.size(); ++a) {
    for (size_t b = a; b <= buf.size(); ++b) {
      auto res = run(buf, {a, b});
      ASSERT_EQ(res.error, errc::none) << a << "," << b;
      ASSERT_EQ(res.frames.size(), 3u) << a << "," << b;
      EXPECT_EQ(res.frames[0].x, (frame{hello{1, 1, 7, 3, "node-a"}}));
    }
  }
}

TEST(wire_decoder, byte_by_byte) {
  std::vector<frame> frames;
  auto buf = app_stream(frames);
  std::vector<size_t> cuts;
  for (size_t i = 1; i < buf.size(); ++i) {
    cuts.push_back(i);
  }
  auto res = run(buf, cuts);
  ASSERT_EQ(res.error, errc::none);
  ASSERT_EQ(res.frames.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(res.frames[i].x, frames[i]) << "frame " << i;
  }
  // The buffer never holds more than the largest frame.
  EXPECT_LE(res.max_buffered, header_size + 3000);
}

// -- truncation and limits
// ----------------------------------------------------------

TEST(wire_decoder, truncated_stream_is_reported_at_finish) {
  std::vector<frame> frames;
  auto buf = app_stream(frames);
  for (size_t len : {size_t{1}, size_t{5}, size_t{6}, size_t{10}}) {
    std::vector<std::byte> cut(buf.begin(), buf.begin() + len);
    EXPECT_EQ(error_of(cut), errc::truncated_frame) << len;
  }
  // A stream that ends between frames is fine.
  auto first_size = *encoded_size(frames[0]);
  std::vector<std::byte> first(buf.begin(), buf.begin() + first_size);
  EXPECT_EQ(error_of(first), errc::none);
}

TEST(wire_decoder, oversized_length_fails_on_the_header_alone) {
  // DATA claiming 16 MiB + 1 on the default limits: rejected as soon as the
  // 6 header bytes are in, with nothing allocated for the body.
  auto hdr = bytes({0x02, 0x00, 0x01, 0x00, 0x00, 0x01});
  decoder dec{limits::defaults(), stream_start::application_reply};
  bytes_view in{hdr};
  auto r = dec.next(in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::frame_too_large);
  EXPECT_EQ(dec.buffered(), 0u);
  // Split header: same verdict once the length is complete.
  decoder dec2{limits::defaults(), stream_start::application_reply};
  bytes_view part1{hdr.data(), 4};
  bytes_view part2{hdr.data() + 4, 2};
  auto r1 = dec2.next(part1);
  ASSERT_TRUE(r1);
  EXPECT_FALSE(r1->has_value());
  auto r2 = dec2.next(part2);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error(), errc::frame_too_large);
  // The largest allowed frame passes the header check.
  auto small = limits::small();
  auto ok = bytes({0x02, 0x00, 0x00, 0x01, 0x00, 0x00}); // 64 KiB
  decoder dec3{small, stream_start::application_reply};
  bytes_view in3{ok};
  auto r3 = dec3.next(in3);
  ASSERT_TRUE(r3);
  EXPECT_EQ(dec3.finish().error(), errc::truncated_frame);
  auto too_big = bytes({0x02, 0x00, 0x00, 0x01, 0x00, 0x01});
  EXPECT_EQ(error_of(too_big, stream_start::application_reply, small),
            errc::frame_too_large);
}

TEST(wire_decoder, buffer_grows_only_with_arrived_bytes) {
  // A header announcing 1 MiB followed by 10 bytes must not make the decoder
  // hold anywhere near 1 MiB.
  auto buf = bytes({0x02, 0x00, 0x00, 0x10, 0x00, 0x00});
  buf.resize(buf.size() + 10, std::byte{1});
  decoder dec{limits::defaults(), stream_start::application_reply};
  bytes_view in{buf.data(), 3};
  ASSERT_TRUE(dec.next(in));
  bytes_view rest{buf.data() + 3, buf.size() - 3};
  auto r = dec.next(rest);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(dec.buffered(), 16u);
}

// -- malformed input
// ------------------------------------------------------------------

TEST(wire_decoder, unknown_frame_type) {
  EXPECT_EQ(error_of(bytes({0x7e, 0, 0, 0, 0, 0})), errc::unknown_frame_type);
  EXPECT_EQ(error_of(bytes({0x00, 0, 0, 0, 0, 0})), errc::unknown_frame_type);
  EXPECT_EQ(error_of(bytes({0xff, 0, 0, 0, 0, 0})), errc::unknown_frame_type);
}

TEST(wire_decoder, flags_outside_the_types_mask) {
  EXPECT_EQ(error_of(bytes({0x02, 0x02, 0, 0, 0, 0}),
                     stream_start::application_reply),
            errc::malformed_frame);
  EXPECT_EQ(error_of(bytes({0x01, 0x01, 0, 0, 0, 3, 1, 1, 'a', 0})),
            errc::malformed_frame);
}

TEST(wire_decoder, bodies_that_do_not_fit_their_type) {
  auto app = stream_start::application_reply;
  // STREAM_INIT: id length beyond the body; missing stream name; extra byte.
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 3, 1, 5, 'a'})),
            errc::malformed_frame);
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 3, 1, 1, 'a'})),
            errc::malformed_frame);
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 5, 1, 1, 'a', 0, 9})),
            errc::malformed_frame);
  // REQUEST shorter than id + timeout.
  EXPECT_EQ(
    error_of(bytes({0x03, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}),
             app),
    errc::malformed_frame);
  // RESPONSE without status; error status with the CAF flag.
  EXPECT_EQ(error_of(bytes({0x04, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1}), app),
            errc::malformed_frame);
  EXPECT_EQ(error_of(bytes({0x04, 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 64}),
                     app),
            errc::malformed_frame);
  // STREAM_ERROR with no code, or code 0.
  EXPECT_EQ(error_of(bytes({0x05, 0, 0, 0, 0, 0})), errc::malformed_frame);
  EXPECT_EQ(error_of(bytes({0x05, 0, 0, 0, 0, 1, 0})), errc::malformed_frame);
  // HELLO: short; inverted range; zero minimum.
  EXPECT_EQ(error_of(bytes({0x10, 0, 0, 0, 0, 2, 1, 1})),
            errc::malformed_frame);
  auto hello_with = [](int lo, int hi) {
    return bytes({0x10, 0, 0, 0, 0, 20, lo, hi, 0, 0, 0, 0, 0,
                  0,    0, 0, 0, 0, 0,  0,  0,  0, 0, 0, 1, 'n'});
  };
  EXPECT_EQ(error_of(hello_with(1, 1)), errc::none);
  EXPECT_EQ(error_of(hello_with(2, 1)), errc::malformed_frame);
  EXPECT_EQ(error_of(hello_with(0, 1)), errc::malformed_frame);
}

TEST(wire_decoder, apps_frames_are_checked) {
  auto hello_bytes = bytes({0x10, 0, 0, 0, 0, 20, 1, 1, 0, 0, 0, 0, 0,
                            0,    0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 1, 'n'});
  auto with = [&](std::vector<std::byte> tail) {
    auto buf = hello_bytes;
    buf.insert(buf.end(), tail.begin(), tail.end());
    return error_of(buf);
  };
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 5, 0, 1, 2, 'a', 'b'})), errc::none);
  // Count larger than the entries present (and than the body could hold).
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 5, 0, 2, 2, 'a', 'b'})),
            errc::malformed_frame);
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 2, 0x03, 0xff})),
            errc::malformed_frame);
  // Leftover bytes after the last entry.
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 6, 0, 1, 2, 'a', 'b', 'c'})),
            errc::malformed_frame);
  // Duplicate entry.
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 8, 0, 2, 2, 'a', 'b', 2, 'a', 'b'})),
            errc::malformed_frame);
  // Empty id, id with a control character.
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 6, 0, 2, 0, 2, 'a', 'b'})),
            errc::invalid_identifier);
  EXPECT_EQ(with(bytes({0x11, 0, 0, 0, 0, 5, 0, 1, 2, 'a', 0x07})),
            errc::invalid_identifier);
  // More applications than the limit allows.
  auto lim = limits::defaults();
  lim.max_applications = 1;
  auto buf = hello_bytes;
  auto tail = bytes({0x11, 0, 0, 0, 0, 6, 0, 2, 1, 'a', 1, 'b'});
  buf.insert(buf.end(), tail.begin(), tail.end());
  EXPECT_EQ(error_of(buf, stream_start::peer_opened, lim),
            errc::too_many_entries);
}

TEST(wire_decoder, bad_identifiers) {
  // Empty application id.
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 3, 1, 0, 0})),
            errc::invalid_identifier);
  // Invalid UTF-8 in the application id (lone continuation byte).
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 4, 1, 1, 0x80, 0})),
            errc::invalid_identifier);
  // Overlong encoding in the stream name.
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 6, 1, 1, 'a', 2, 0xc0, 0xaf})),
            errc::invalid_identifier);
  // Newline in a node name.
  EXPECT_EQ(error_of(bytes({0x10, 0, 0, 0, 0, 21, 1, 1, 0, 0, 0, 0,   0,   0,
                            0,    0, 0, 0, 0, 0,  0, 0, 0, 0, 2, 'a', '\n'})),
            errc::invalid_identifier);
  // Longer than the configured identifier limit.
  auto lim = limits::defaults();
  lim.max_identifier_size = 2;
  EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 6, 1, 3, 'a', 'b', 'c', 0}),
                     stream_start::peer_opened, lim),
            errc::invalid_identifier);
}

// -- versions
// ---------------------------------------------------------------------------

TEST(wire_decoder, stream_init_version_outside_range) {
  for (int v : {0, 2, 255}) {
    EXPECT_EQ(error_of(bytes({0x01, 0, 0, 0, 0, 4, v, 1, 'a', 0})),
              errc::unsupported_version)
      << v;
  }
  decoder dec;
  auto ok = bytes({0x01, 0, 0, 0, 0, 4, 1, 1, 'a', 0});
  bytes_view in{ok};
  ASSERT_TRUE(dec.next(in));
  EXPECT_EQ(dec.version(), 1);
  EXPECT_EQ(dec.kind(), stream_kind::application);
}

TEST(wire_decoder, hello_range_must_overlap) {
  auto hello_with = [](int lo, int hi) {
    return bytes({0x10, 0, 0, 0, 0, 20, lo, hi, 0, 0, 0, 0, 0,
                  0,    0, 0, 0, 0, 0,  0,  0,  0, 0, 0, 1, 'n'});
  };
  EXPECT_EQ(error_of(hello_with(2, 9)), errc::unsupported_version);
  decoder dec;
  auto buf = hello_with(1, 9);
  bytes_view in{buf};
  ASSERT_TRUE(dec.next(in));
  EXPECT_EQ(dec.version(), protocol_version_max);
  EXPECT_EQ(dec.kind(), stream_kind::control);
}

// -- state machine
// ------------------------------------------------------------------------

TEST(wire_decoder, frames_out_of_place) {
  std::vector<std::byte> init, dat, hel, ap, err;
  add(init, stream_init{1, "a", ""});
  add(dat, data{0, as_bytes("x")});
  add(hel, hello{1, 1, 0, 0, "n"});
  add(ap, apps{{"a"}});
  add(err, stream_error{errc::shutting_down, ""});
  auto cat = [](std::initializer_list<std::vector<std::byte>> parts) {
    std::vector<std::byte> out;
    for (auto& p : parts) {
      out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  };
  using enum stream_start;
  // A peer-opened stream must begin with STREAM_INIT or HELLO.
  EXPECT_EQ(error_of(dat), errc::unexpected_frame);
  EXPECT_EQ(error_of(ap), errc::unexpected_frame);
  // No second init, no control frames on an application stream.
  EXPECT_EQ(error_of(cat({init, init})), errc::unexpected_frame);
  EXPECT_EQ(error_of(cat({init, dat, hel})), errc::unexpected_frame);
  EXPECT_EQ(error_of(cat({init, ap})), errc::unexpected_frame);
  // No application frames on the control stream, no second HELLO.
  EXPECT_EQ(error_of(cat({hel, dat})), errc::unexpected_frame);
  EXPECT_EQ(error_of(cat({hel, hel})), errc::unexpected_frame);
  // The reverse direction of our application stream has no STREAM_INIT.
  EXPECT_EQ(error_of(cat({init}), application_reply), errc::unexpected_frame);
  EXPECT_EQ(error_of(cat({dat, dat}), application_reply), errc::none);
  // The reverse direction of our control stream begins with HELLO.
  EXPECT_EQ(error_of(ap, control_reply), errc::unexpected_frame);
  EXPECT_EQ(error_of(cat({hel, ap}), control_reply), errc::none);
  // STREAM_ERROR may come first (a refusal) and ends the stream.
  EXPECT_EQ(error_of(err), errc::none);
  EXPECT_EQ(error_of(cat({init, dat, err})), errc::none);
  EXPECT_EQ(error_of(cat({init, err, dat})), errc::unexpected_frame);
  EXPECT_EQ(error_of(cat({err, init})), errc::unexpected_frame);
}

TEST(wire_decoder, errors_are_sticky) {
  auto bad = bytes({0x7e, 0, 0, 0, 0, 0});
  std::vector<std::byte> good;
  add(good, stream_init{1, "a", ""});
  decoder dec;
  bytes_view in{bad};
  EXPECT_EQ(dec.next(in).error(), errc::unknown_frame_type);
  bytes_view in2{good};
  EXPECT_EQ(dec.next(in2).error(), errc::unknown_frame_type);
  EXPECT_EQ(dec.finish().error(), errc::unknown_frame_type);
}

TEST(wire_decoder, unknown_status_codes_become_remote_error) {
  auto buf = bytes({0x04, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 5, 200, 'x'});
  auto res = run(buf, {}, stream_start::application_reply);
  ASSERT_EQ(res.error, errc::none);
  ASSERT_EQ(res.frames.size(), 1u);
  auto& r = std::get<response>(res.frames[0].x);
  EXPECT_EQ(r.id, 5u);
  EXPECT_EQ(r.status, errc::remote_error);
  auto err = bytes({0x05, 0, 0, 0, 0, 1, 250});
  auto res2 = run(err, {});
  ASSERT_EQ(res2.frames.size(), 1u);
  EXPECT_EQ(std::get<stream_error>(res2.frames[0].x).code, errc::remote_error);
}

// -- large payloads: collected apart and handed over without a copy ----------

namespace {

// A payload of `n` bytes whose every byte depends on its position.
std::vector<std::byte> pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<std::byte>((i * 131 + i / 251) & 0xff);
  }
  return out;
}

// An application stream (init, then `frames`) fed in `piece`-byte pieces;
// every frame is taken with `decoder::take`. Records whether each payload
// came out as the very buffer the frame's view pointed into.
struct taken {
  std::vector<owned_frame> frames;
  std::vector<bool> moved;
  size_t max_buffered = 0;
  errc error = errc::none;
};

taken feed_and_take(const std::vector<frame>& frames, size_t piece) {
  std::vector<std::byte> input;
  add(input, stream_init{1, "bulk", ""});
  for (auto& x : frames) {
    add(input, x);
  }
  decoder dec;
  taken out;
  bytes_view rest{input};
  while (!rest.empty()) {
    auto chunk = rest.first(std::min(piece, rest.size()));
    rest = rest.subspan(chunk.size());
    while (true) {
      auto r = dec.next(chunk);
      out.max_buffered = std::max(out.max_buffered, dec.buffered());
      if (!r) {
        out.error = r.error().code();
        return out;
      }
      if (!*r) {
        break;
      }
      auto seen = payload_of(**r).data();
      auto f = dec.take(**r);
      auto got = payload_of(view(f));
      out.moved.push_back(!got.empty() && got.data() == seen);
      out.frames.push_back(std::move(f));
    }
  }
  if (auto fin = dec.finish(); !fin) {
    out.error = fin.error().code();
  }
  return out;
}

} // namespace

TEST(wire_decoder, large_payloads_move_out_whole_in_every_frame_type) {
  auto big = pattern(size_t{1} << 20);
  auto text = std::string(100'000, 'e');
  std::vector<frame> frames{
    data{0, big},
    request{7, 250, flag_caf_message, big},
    response{7, errc::none, 0, big},
    response{8, errc::remote_error, 0, as_bytes(text)},
  };
  // 1200: one QUIC packet; 65'527: a loopback datagram; 7: odd splits.
  for (size_t piece : {size_t{7}, size_t{1200}, size_t{65'527}}) {
    auto got = feed_and_take(frames, piece);
    ASSERT_EQ(got.error, errc::none) << "piece " << piece;
    ASSERT_EQ(got.frames.size(), frames.size() + 1) << "piece " << piece;
    for (size_t i = 0; i < frames.size(); ++i) {
      EXPECT_TRUE(view(got.frames[i + 1]) == frames[i])
        << "frame " << i << ", piece " << piece;
      // Every payload here is collected apart: it must move, not copy.
      EXPECT_TRUE(got.moved[i + 1]) << "frame " << i << ", piece " << piece;
    }
    // Never more buffered than one frame (header + body).
    EXPECT_LE(got.max_buffered, header_size + 12 + big.size());
  }
}

TEST(wire_decoder, payloads_below_the_threshold_and_whole_frames_are_copied) {
  auto small = pattern(decoder::separate_payload_min - 1);
  auto big = pattern(decoder::separate_payload_min);
  // Split in two: the small payload is buffered with its frame and copied;
  // the one at the threshold is collected apart and moves.
  auto got = feed_and_take({data{0, small}, data{0, big}}, 40'000);
  ASSERT_EQ(got.error, errc::none);
  ASSERT_EQ(got.frames.size(), 3u);
  EXPECT_TRUE(view(got.frames[1]) == frame(data{0, small}));
  EXPECT_TRUE(view(got.frames[2]) == frame(data{0, big}));
  EXPECT_FALSE(got.moved[1]);
  EXPECT_TRUE(got.moved[2]);
  // In one piece the frame is decoded from the input: `take` copies.
  auto whole = feed_and_take({data{0, big}}, size_t{1} << 30);
  ASSERT_EQ(whole.error, errc::none);
  ASSERT_EQ(whole.frames.size(), 2u);
  EXPECT_TRUE(view(whole.frames[1]) == frame(data{0, big}));
  EXPECT_FALSE(whole.moved[1]);
}

TEST(wire_decoder, a_large_payload_cut_short_is_a_truncated_frame) {
  std::vector<std::byte> input;
  add(input, stream_init{1, "bulk", ""});
  auto init_size = input.size();
  add(input, request{1, 0, 0, pattern(size_t{200} << 10)});
  input.resize(input.size() - 1);
  auto r = run(input, {1000, 70'000});
  EXPECT_EQ(r.error, errc::truncated_frame);
  EXPECT_EQ(r.frames.size(), 1u);
  // Every byte of the unfinished frame counts as buffered: header, the
  // fields before the payload and the payload so far.
  EXPECT_EQ(r.max_buffered, input.size() - init_size);
}

TEST(wire_decoder, a_large_frame_out_of_place_fails_once_complete) {
  // DATA on a stream the peer opened must follow STREAM_INIT.
  std::vector<std::byte> input;
  add(input, data{0, pattern(size_t{100} << 10)});
  EXPECT_EQ(run(input, {10, 5000}).error, errc::unexpected_frame);
}
