// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the Mycel protocol decoder (cache/codec.hpp) under arbitrary
// bytes. Checks, besides "no crash, no sanitizer report": a decoded message
// re-encodes to bytes that decode to the same message, no longer than the
// input (the decoder accepts nothing the encoder would not write more
// compactly), and every error is one of the documented codes.
#include "mycorrizal/cache/codec.hpp"

#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

using namespace mycorrizal;
using namespace mycorrizal::cache;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> in{reinterpret_cast<const std::byte*>(data), size};
  auto msg = proto::decode(in);
  if (!msg) {
    auto code = msg.error().code();
    FUZZ_CHECK(
      code == errc::unsupported_version || code == errc::unknown_frame_type
      || code == errc::malformed_frame || code == errc::too_large
      || code == errc::invalid_identifier || code == errc::too_many_entries);
    return 0;
  }
  auto again = proto::encode(*msg);
  FUZZ_CHECK(again.size() <= size);
  auto back = proto::decode(again);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(*back == *msg);
  return 0;
}
