// SPDX-License-Identifier: Apache-2.0
// Micro-benchmarks of the wire codec's DATA frames, against memcpy.

#include "mycorrizal/wire/decoder.hpp"
#include "mycorrizal/wire/encoder.hpp"
#include "mycorrizal/wire/frame.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

/// Every case reports bytes/s of *payload* (SetBytesProcessed), so dividing a
/// codec case's bytes/s by `bm_memcpy` of the same size gives the share of
/// memcpy throughput directly (see bench/README.md).
///
/// - bm_memcpy/N: memcpy of N bytes between two hot buffers (the baseline),
///   laid out the same way in every run.
/// - bm_encode/N: `encode` of a DATA frame with an N-byte payload into a
///   caller buffer (header + payload copy).
/// - bm_encode_prefix/N: `encode_prefix` of the same frame: the 6-byte header
///   only; the payload would go out by scatter/gather, uncopied.
/// - bm_decode_contiguous/N: decode every frame of a ~256 KiB buffer of
///   back-to-back DATA frames (the zero-copy fast path), reading each
///   payload's size, first and last byte.
/// - bm_decode_chunked/N: the same buffer fed in 1200-byte chunks (one QUIC
///   packet's worth), so frames that straddle a chunk go through the
///   decoder's buffer (the copy path).
namespace {

using namespace mycorrizal;
using namespace mycorrizal::wire;

/// Size of the frame stream each decode iteration walks through.
constexpr size_t stream_target = 256 * 1024;

/// Chunk size of the chunked decode: about one QUIC packet's payload.
constexpr size_t chunk_size = 1200;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "wire_bench: %s\n", what);
  std::abort();
}

std::vector<std::byte> make_payload(size_t n) {
  std::vector<std::byte> x(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = static_cast<std::byte>(i * 131 + 7);
  }
  return x;
}

size_t frames_per_stream(size_t payload) {
  return std::max<size_t>(4, stream_target / (header_size + payload));
}

/// `count` DATA frames with `payload`-byte payloads, back to back.
std::vector<std::byte> make_stream(size_t payload, size_t count) {
  auto body = make_payload(payload);
  std::vector<std::byte> out;
  out.reserve(count * (header_size + payload));
  for (size_t i = 0; i < count; ++i) {
    if (!append(out, frame{data{0, body}})) {
      die("append failed");
    }
  }
  return out;
}

void set_bytes(benchmark::State& state, size_t per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations())
                          * static_cast<int64_t>(per_iteration));
}

/// Reads what a consumer of a decoded DATA frame would at least read: its
/// size and its first and last byte.
struct payload_sink {
  size_t bytes = 0;
  unsigned touch = 0;
  size_t frames = 0;

  void consume(const expected<std::optional<frame>>& res) {
    if (!res || !*res) {
      die("decoder did not return a frame");
    }
    auto* x = std::get_if<data>(&**res);
    if (x == nullptr || x->payload.empty()) {
      die("decoder returned something else than DATA");
    }
    bytes += x->payload.size();
    touch += std::to_integer<unsigned>(x->payload.front())
             + std::to_integer<unsigned>(x->payload.back());
    ++frames;
  }
};

// -- baseline ----------------------------------------------------------------

/// memcpy speed depends on where source and destination sit (alignment, 4K
/// aliasing), and heap addresses change from run to run. The baseline
/// therefore copies between two 64-byte aligned buffers whose distance is
/// 2 KiB off a multiple of 4 KiB: the same, favourable layout every run.
void bm_memcpy(benchmark::State& state) {
  auto n = static_cast<size_t>(state.range(0));
  auto gap = (n + 4095) / 4096 * 4096 + 2048;
  std::vector<std::byte> storage(64 + gap + n);
  auto addr = reinterpret_cast<uintptr_t>(storage.data());
  auto* src = storage.data() + (64 - addr % 64) % 64;
  auto* dst = src + gap;
  auto payload = make_payload(n);
  std::memcpy(src, payload.data(), n);
  for (auto _ : state) {
    benchmark::DoNotOptimize(src);
    std::memcpy(dst, src, n);
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

// -- encode ------------------------------------------------------------------

void bm_encode(benchmark::State& state) {
  auto n = static_cast<size_t>(state.range(0));
  auto payload = make_payload(n);
  std::vector<std::byte> out(header_size + n);
  for (auto _ : state) {
    benchmark::DoNotOptimize(payload.data());
    auto res = encode(frame{data{0, payload}}, out);
    if (!res) {
      die("encode failed");
    }
    benchmark::DoNotOptimize(*res);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

void bm_encode_prefix(benchmark::State& state) {
  auto n = static_cast<size_t>(state.range(0));
  auto payload = make_payload(n);
  std::vector<std::byte> out(max_prefix_size);
  for (auto _ : state) {
    benchmark::DoNotOptimize(payload.data());
    auto res = encode_prefix(frame{data{0, payload}}, out);
    if (!res) {
      die("encode_prefix failed");
    }
    benchmark::DoNotOptimize(*res);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

// -- decode ------------------------------------------------------------------

void bm_decode_contiguous(benchmark::State& state) {
  auto n = static_cast<size_t>(state.range(0));
  auto count = frames_per_stream(n);
  auto stream = make_stream(n, count);
  decoder dec{limits::defaults(), stream_start::application_reply};
  for (auto _ : state) {
    payload_sink sink;
    bytes_view input{stream};
    for (size_t i = 0; i < count; ++i) {
      sink.consume(dec.next(input));
    }
    if (!input.empty() || sink.bytes != n * count) {
      die("decode_contiguous lost bytes");
    }
    benchmark::DoNotOptimize(sink.touch);
  }
  state.counters["frames"] = static_cast<double>(count);
  set_bytes(state, n * count);
}

void bm_decode_chunked(benchmark::State& state) {
  auto n = static_cast<size_t>(state.range(0));
  auto count = frames_per_stream(n);
  auto stream = make_stream(n, count);
  decoder dec{limits::defaults(), stream_start::application_reply};
  for (auto _ : state) {
    payload_sink sink;
    for (size_t off = 0; off < stream.size(); off += chunk_size) {
      auto len = std::min(chunk_size, stream.size() - off);
      auto input = bytes_view{stream}.subspan(off, len);
      while (!input.empty()) {
        auto res = dec.next(input);
        if (res && !*res) {
          break; // chunk used up inside a frame: buffered
        }
        sink.consume(res);
      }
    }
    if (sink.frames != count || sink.bytes != n * count
        || dec.buffered() != 0) {
      die("decode_chunked lost bytes");
    }
    benchmark::DoNotOptimize(sink.touch);
  }
  state.counters["frames"] = static_cast<double>(count);
  set_bytes(state, n * count);
}

// -- statistics --------------------------------------------------------------

double median_of(std::vector<double> xs) {
  if (xs.empty()) {
    return 0;
  }
  auto mid = xs.begin() + static_cast<std::ptrdiff_t>(xs.size() / 2);
  std::nth_element(xs.begin(), mid, xs.end());
  if (xs.size() % 2 == 1) {
    return *mid;
  }
  auto lower = *std::max_element(xs.begin(), mid);
  return (lower + *mid) / 2;
}

/// Median absolute deviation over the repetitions (STYLE.md §H).
double mad_of(const std::vector<double>& xs) {
  auto m = median_of(xs);
  std::vector<double> dev;
  dev.reserve(xs.size());
  for (auto x : xs) {
    dev.push_back(std::fabs(x - m));
  }
  return median_of(std::move(dev));
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Arg(64)->Arg(1024)->Arg(64 * 1024);
  b->ComputeStatistics("mad", mad_of);
}

} // namespace

BENCHMARK(bm_memcpy)->Apply(sizes);
BENCHMARK(bm_encode)->Apply(sizes);
BENCHMARK(bm_encode_prefix)->Apply(sizes);
BENCHMARK(bm_decode_contiguous)->Apply(sizes);
BENCHMARK(bm_decode_chunked)->Apply(sizes);
