// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the wire decoder under any bytes and any split points.

#include "mycorrizal/wire/decoder.hpp"
#include "mycorrizal/wire/encoder.hpp"
#include "mycorrizal/wire/frame.hpp"
#include "mycorrizal/wire/limits.hpp"

#include "fuzz_check.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <variant>
#include <vector>

/// Input layout (tests/fuzz/make_wire_corpus.cpp writes the same):
///
///   byte 0   mode: bits 0-1 the decoder's `stream_start` (0 and 3:
///            peer_opened, 1: application_reply, 2: control_reply); bit 2
///            the limits (0: defaults, 1: small); bits 3-4 the split
///            strategy (0: whole input in one call, 1: chunks of
///            `param + 1` bytes, 2: one byte per call, 3: explicit).
///   byte 1   param.
///   ...      explicit strategy only: `param & 15` chunk lengths, one byte
///            each; the rest of the stream is the last chunk.
///   rest     the stream.
///
/// Each chunk is copied into its own heap block so that ASan catches a read
/// past its end. Checked for every run:
/// - the split run and a run over the whole stream agree on where every
///   frame ends, on the error, and on `finish()`;
/// - a decoded frame re-encodes (`encode`, `encode_prefix`, `append`) to
///   exactly its bytes on the wire, except that an unknown status code comes
///   back as `errc::remote_error`;
/// - the re-encoded frame decodes, with a fresh decoder in the state the
///   frame needs, to an equal frame;
/// - `std::nullopt` means the input was used up; errors are sticky;
///   `finish()` succeeds right after every frame, and at the end exactly
///   when the stream ends on a frame boundary;
///   `kind()`, `version()` and `buffered()` stay consistent.
namespace {

using namespace mycorrizal;
using namespace mycorrizal::wire;

using byte_vec = std::vector<std::byte>;

struct fuzz_input {
  stream_start start = stream_start::peer_opened;
  limits lim;
  /// Chunk lengths; their sum is `stream.size()`.
  std::vector<size_t> chunks;
  bytes_view stream;
};

fuzz_input parse_input(const uint8_t* data, size_t size) {
  auto* bytes = reinterpret_cast<const std::byte*>(data);
  fuzz_input in;
  uint8_t mode = size > 0 ? data[0] : 0;
  uint8_t param = size > 1 ? data[1] : 0;
  size_t pos = std::min<size_t>(size, 2);
  switch (mode & 3) {
    case 1: in.start = stream_start::application_reply; break;
    case 2: in.start = stream_start::control_reply; break;
    default: in.start = stream_start::peer_opened; break;
  }
  in.lim = (mode & 4) != 0 ? limits::small() : limits::defaults();
  std::vector<size_t> explicit_lengths;
  auto strategy = (mode >> 3) & 3;
  if (strategy == 3) {
    size_t count = param & 15u;
    for (size_t i = 0; i < count && pos < size; ++i) {
      explicit_lengths.push_back(data[pos++]);
    }
  }
  in.stream = bytes_view{bytes + pos, size - pos};
  size_t left = in.stream.size();
  auto add = [&](size_t n) {
    n = std::min(n, left);
    in.chunks.push_back(n);
    left -= n;
  };
  switch (strategy) {
    case 0: add(left); break;
    case 1:
    case 2: {
      size_t step = strategy == 1 ? size_t{param} + 1 : 1;
      while (left > 0) {
        add(step);
      }
      break;
    }
    default:
      for (auto n : explicit_lengths) {
        add(n); // zero-length chunks are fed too
      }
      add(left);
      break;
  }
  return in;
}

// -- frame comparison --------------------------------------------------------

bool same_bytes(bytes_view x, bytes_view y) {
  return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin());
}

bool same(const data& x, const data& y) {
  return x.flags == y.flags && same_bytes(x.payload, y.payload);
}

bool same(const request& x, const request& y) {
  return x.id == y.id && x.timeout_ms == y.timeout_ms && x.flags == y.flags
         && same_bytes(x.payload, y.payload);
}

bool same(const response& x, const response& y) {
  return x.id == y.id && x.status == y.status && x.flags == y.flags
         && same_bytes(x.payload, y.payload);
}

template <class T>
bool same(const T& x, const T& y) {
  return x == y;
}

bool same(const frame& x, const frame& y) {
  if (x.index() != y.index()) {
    return false;
  }
  return std::visit(
    [&y](const auto& lhs) {
      using type = std::decay_t<decltype(lhs)>;
      return same(lhs, std::get<type>(y));
    },
    x);
}

// -- re-encoding -------------------------------------------------------------

bool has_payload(const frame& x) {
  auto t = type_of(x);
  return t == frame_type::data || t == frame_type::request
         || t == frame_type::response;
}

/// Offset of the status byte for frames whose status maps unknown codes to
/// `errc::remote_error`, or 0.
size_t status_offset(const frame& x) {
  if (auto* r = std::get_if<response>(&x)) {
    return r->status == errc::remote_error ? header_size + 8 : 0;
  }
  if (auto* e = std::get_if<stream_error>(&x)) {
    return e->code == errc::remote_error ? header_size : 0;
  }
  return 0;
}

/// Checks that `encode` reproduces `wire`, the frame's bytes in the stream.
void check_canonical(const frame& x, bytes_view wire, const byte_vec& out) {
  FUZZ_CHECK(out.size() == wire.size());
  auto status_at = status_offset(x);
  for (size_t i = 0; i < out.size(); ++i) {
    if (i == status_at && i != 0) {
      auto code = std::to_integer<uint8_t>(wire[i]);
      FUZZ_CHECK(code == static_cast<uint8_t>(errc::remote_error)
                 || !errc_from_code(code).has_value());
      FUZZ_CHECK(out[i] == static_cast<std::byte>(errc::remote_error));
      continue;
    }
    FUZZ_CHECK(out[i] == wire[i]);
  }
}

/// Decodes `bytes` with a fresh decoder in the state `x` needs and checks
/// that the result equals `x`.
void check_round_trip(const frame& x, const byte_vec& bytes,
                      const limits& lim) {
  auto start = stream_start::peer_opened;
  byte_vec stream;
  switch (type_of(x)) {
    case frame_type::data:
    case frame_type::request:
    case frame_type::response:
    case frame_type::stream_error:
      start = stream_start::application_reply;
      break;
    case frame_type::apps: {
      // APPS only follows a HELLO on the control stream.
      start = stream_start::control_reply;
      auto res = append(stream, frame{hello{1, 1, 0, 0, "fuzz"}});
      FUZZ_CHECK(res.has_value());
      break;
    }
    default: break;
  }
  auto prefix = stream.size();
  stream.insert(stream.end(), bytes.begin(), bytes.end());
  // An exact-size heap copy, so that ASan sees reads past the end.
  auto copy = std::make_unique<std::byte[]>(stream.size());
  std::copy(stream.begin(), stream.end(), copy.get());
  bytes_view input{copy.get(), stream.size()};
  decoder dec{lim, start};
  if (prefix > 0) {
    auto first = dec.next(input);
    FUZZ_CHECK(first.has_value() && first->has_value());
    FUZZ_CHECK(type_of(**first) == frame_type::hello);
  }
  auto res = dec.next(input);
  FUZZ_CHECK(res.has_value() && res->has_value());
  FUZZ_CHECK(input.empty());
  FUZZ_CHECK(same(x, **res));
  FUZZ_CHECK(dec.finish().has_value());
}

/// Runs every encoder entry point on `x`, which the decoder produced from
/// `wire`.
void check_frame(const frame& x, bytes_view wire, const limits& lim) {
  auto size = encoded_size(x);
  FUZZ_CHECK(size.has_value() && *size == wire.size());
  byte_vec out(*size);
  auto written = encode(x, out);
  FUZZ_CHECK(written.has_value() && *written == *size);
  check_canonical(x, wire, out);
  // One byte short must fail cleanly.
  byte_vec short_out(*size - 1);
  auto too_small = encode(x, short_out);
  FUZZ_CHECK(!too_small.has_value()
             && too_small.error() == errc::buffer_too_small);
  // The scatter/gather prefix is everything but the payload.
  byte_vec prefix_out(max_prefix_size);
  auto prefix = encode_prefix(x, prefix_out);
  if (has_payload(x)) {
    FUZZ_CHECK(prefix.has_value());
    FUZZ_CHECK(*prefix + payload_of(x).size() == *size);
    FUZZ_CHECK(
      std::equal(out.begin(), out.begin() + *prefix, prefix_out.begin()));
  } else {
    FUZZ_CHECK(!prefix.has_value() && prefix.error() == errc::unexpected_frame);
  }
  byte_vec appended{std::byte{0xee}};
  FUZZ_CHECK(append(appended, x).has_value());
  FUZZ_CHECK(appended.size() == 1 + out.size());
  FUZZ_CHECK(std::equal(out.begin(), out.end(), appended.begin() + 1));
  check_round_trip(x, out, lim);
}

// -- decoding ----------------------------------------------------------------

/// What a decoder made of a stream.
struct outcome {
  /// Stream offset just past each decoded frame.
  std::vector<size_t> frame_ends;
  /// The first error, or `errc::none`.
  errc error = errc::none;
  /// The result of `finish()`.
  errc finish = errc::none;

  friend bool operator==(const outcome&, const outcome&) = default;
};

/// Checks the decoder's state after it returned `x`.
void check_state(const decoder& dec, const frame& x, const limits& lim) {
  switch (type_of(x)) {
    case frame_type::stream_init:
      FUZZ_CHECK(dec.kind() == stream_kind::application);
      FUZZ_CHECK(dec.version() == std::get<stream_init>(x).version);
      break;
    case frame_type::hello: {
      auto& h = std::get<hello>(x);
      FUZZ_CHECK(dec.kind() == stream_kind::control);
      FUZZ_CHECK(dec.version()
                 == negotiate_version(lim.version_min, lim.version_max,
                                      h.version_min, h.version_max));
      FUZZ_CHECK(dec.version() != 0);
      break;
    }
    case frame_type::stream_error:
      FUZZ_CHECK(dec.kind() == stream_kind::closed);
      break;
    case frame_type::apps:
      FUZZ_CHECK(dec.kind() == stream_kind::control);
      break;
    default: FUZZ_CHECK(dec.kind() == stream_kind::application); break;
  }
}

/// Feeds `stream` to a decoder in `chunks`; with `deep`, checks every frame.
outcome run(const fuzz_input& in, const std::vector<size_t>& chunks,
            bool deep) {
  outcome result;
  decoder dec{in.lim, in.start};
  size_t offset = 0; // stream offset of the current chunk
  for (auto len : chunks) {
    auto chunk = std::make_unique<std::byte[]>(len);
    if (len > 0) {
      std::memcpy(chunk.get(), in.stream.data() + offset, len);
    }
    bytes_view input{chunk.get(), len};
    for (;;) {
      auto res = dec.next(input);
      if (!res) {
        result.error = res.error().code();
        FUZZ_CHECK(result.error != errc::none);
        // Sticky: the same error again, whatever follows.
        auto again = dec.next(input);
        FUZZ_CHECK(!again && again.error().code() == result.error);
        auto fin = dec.finish();
        FUZZ_CHECK(!fin && fin.error().code() == result.error);
        result.finish = result.error;
        return result;
      }
      FUZZ_CHECK(dec.buffered() <= header_size + in.lim.max_frame_size);
      if (!*res) {
        FUZZ_CHECK(input.empty());
        break;
      }
      auto end = offset + (len - input.size());
      auto begin = result.frame_ends.empty() ? 0 : result.frame_ends.back();
      FUZZ_CHECK(end > begin && end - begin >= header_size);
      result.frame_ends.push_back(end);
      FUZZ_CHECK(dec.frames() == result.frame_ends.size());
      // The decoder never reads past a frame: the stream may end here.
      FUZZ_CHECK(dec.buffered() == 0 && dec.finish().has_value());
      if (deep) {
        check_state(dec, **res, in.lim);
        check_frame(**res, in.stream.subspan(begin, end - begin), in.lim);
        // Owning the frame keeps every field (a separately collected
        // payload moves, the rest is copied).
        auto owned = dec.take(**res);
        FUZZ_CHECK(owned == to_owned(**res));
      }
    }
    offset += len;
  }
  FUZZ_CHECK(offset == in.stream.size());
  auto fin = dec.finish();
  result.finish = fin ? errc::none : fin.error().code();
  auto last = result.frame_ends.empty() ? 0 : result.frame_ends.back();
  if (last == in.stream.size()) {
    FUZZ_CHECK(fin.has_value() && dec.buffered() == 0);
  } else {
    FUZZ_CHECK(result.finish == errc::truncated_frame);
    FUZZ_CHECK(dec.buffered() == in.stream.size() - last);
  }
  return result;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = parse_input(data, size);
  auto split = run(in, in.chunks, true);
  if (in.chunks.size() != 1) {
    // The fast path (whole frames in the input) and the buffered path must
    // agree on everything.
    std::vector<size_t> whole{in.stream.size()};
    auto reference = run(in, whole, false);
    FUZZ_CHECK(split == reference);
  }
  return 0;
}
