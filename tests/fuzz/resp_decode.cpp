// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the RESP request parser (resp/request.hpp) under any
// bytes and any split points.

#include "mycorrizal/resp/reply.hpp"
#include "mycorrizal/resp/request.hpp"

#include "fuzz_check.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// Input layout (the seeds in corpus/resp_decode follow it):
///
///   byte 0   options: bits 0-1 the line limit `max_inline_size` (0: 64 KiB,
///            Redis's; 1: 16; 2: 4; 3: 1); bit 2 `auth_required`; bits 3-4
///            `max_bulk_length` (0: 512 MiB, Redis's; 1: 0; 2: 5; 3: 64);
///            bits 5-7 the number k of chunk bytes that follow.
///   k bytes  chunk lengths (each byte b is a chunk of b + 1 bytes), used in
///            turn until the stream is used up; none: the stream in one
///            piece.
///   rest     the stream a client sends.
///
/// The stream is fed three times, in one piece, in the chunks, and one byte
/// at a time, draining every command after each piece as a server does.
/// Checked, besides "no crash, no sanitizer report" (the parser poisons its
/// buffer past the input, so ASan sees any read beyond what arrived):
/// - the three runs give the same commands, the same error and the same
///   bytes left buffered;
/// - every error is `malformed_frame` with one of Redis's texts, and sticks;
/// - a command has at least one argument; its arguments written as a RESP2
///   array of bulk strings (which is the multibulk request form) parse
///   back to the same arguments;
/// - after each piece, the buffer holds no more than what arrived and its
///   capacity stays within `max(retained_capacity, 3 * buffered())`.
namespace {

using namespace mycorrizal;
using namespace mycorrizal::resp;

using args = std::vector<std::string>;

struct outcome {
  std::vector<args> commands;
  errc code = errc::none;
  std::string text;
  size_t buffered = 0;

  friend bool operator==(const outcome&, const outcome&) = default;
};

bool known_error_text(const std::string& text) {
  for (auto known :
       {protocol_error::too_big_inline, protocol_error::unbalanced_quotes,
        protocol_error::too_big_mbulk_count,
        protocol_error::invalid_multibulk_length,
        protocol_error::unauthenticated_multibulk_length,
        protocol_error::too_big_bulk_count, protocol_error::invalid_bulk_length,
        protocol_error::unauthenticated_bulk_length}) {
    if (text == known) {
      return true;
    }
  }
  std::string_view prefix = "Protocol error: expected '$', got '";
  return text.size() == prefix.size() + 2 && text.starts_with(prefix)
         && text.back() == '\'' && text[prefix.size()] != '\r'
         && text[prefix.size()] != '\n' && text[prefix.size()] != '$'
         && text[prefix.size()] != '\0';
}

void check_round_trip(const args& xs) {
  reply_writer w{protocol_version::resp2};
  w.array(xs.size());
  for (auto& x : xs) {
    w.bulk_string(x);
  }
  request_parser p; // Redis's limits: inline arguments may be long
  FUZZ_CHECK(p.append(w.buffer()).has_value());
  auto cmd = p.next();
  FUZZ_CHECK(cmd.has_value() && cmd->has_value());
  FUZZ_CHECK((*cmd)->form == request_form::multibulk);
  FUZZ_CHECK((*cmd)->to_strings() == xs);
  auto none = p.next();
  FUZZ_CHECK(none.has_value() && !none->has_value());
  FUZZ_CHECK(p.buffered() == 0);
}

/// Feeds `stream` in pieces of the lengths `chunk(i)` returns.
template <class Chunk>
outcome run(std::string_view stream, const request_limits& limits,
            bool auth_required, Chunk chunk) {
  request_parser p{limits};
  p.auth_required(auth_required);
  outcome out;
  size_t arrived = 0;
  for (size_t i = 0; arrived < stream.size(); ++i) {
    auto n = std::min(chunk(i), stream.size() - arrived);
    auto ok = p.append(stream.substr(arrived, n));
    arrived += n;
    // The query buffer limit (1 GiB) is out of reach.
    FUZZ_CHECK(ok.has_value() || out.code != errc::none);
    if (out.code != errc::none) {
      FUZZ_CHECK(!ok.has_value() && ok.error().context() == out.text);
      continue;
    }
    FUZZ_CHECK(p.buffered() <= arrived);
    FUZZ_CHECK(p.capacity() <= std::max(request_parser::retained_capacity,
                                        3 * p.buffered()));
    for (;;) {
      auto cmd = p.next();
      if (!cmd) {
        out.code = cmd.error().code();
        out.text = cmd.error().context();
        FUZZ_CHECK(out.code == errc::malformed_frame);
        FUZZ_CHECK(known_error_text(out.text));
        FUZZ_CHECK(p.failed());
        auto again = p.next();
        FUZZ_CHECK(!again.has_value() && again.error().code() == out.code
                   && again.error().context() == out.text);
        break;
      }
      if (!cmd->has_value()) {
        break;
      }
      auto xs = (*cmd)->to_strings();
      FUZZ_CHECK(!xs.empty());
      out.commands.push_back(std::move(xs));
    }
  }
  out.buffered = p.buffered();
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  auto options = data[0];
  request_limits limits;
  constexpr size_t line_limits[] = {size_t{64} << 10, 16, 4, 1};
  constexpr int64_t bulk_limits[] = {int64_t{512} << 20, 0, 5, 64};
  limits.max_inline_size = line_limits[options & 3];
  bool auth_required = (options & 4) != 0;
  limits.max_bulk_length = bulk_limits[(options >> 3) & 3];
  size_t k = std::min<size_t>(options >> 5, size - 1);
  std::vector<size_t> chunks;
  for (size_t i = 0; i < k; ++i) {
    chunks.push_back(size_t{data[1 + i]} + 1);
  }
  std::string_view stream{reinterpret_cast<const char*>(data) + 1 + k,
                          size - 1 - k};

  auto whole = run(stream, limits, auth_required, [&](size_t) {
    return stream.size();
  });
  auto bytewise = run(stream, limits, auth_required, [](size_t) {
    return size_t{1};
  });
  FUZZ_CHECK(whole == bytewise);
  if (!chunks.empty()) {
    auto split = run(stream, limits, auth_required, [&](size_t i) {
      return chunks[i % chunks.size()];
    });
    FUZZ_CHECK(whole == split);
  }
  for (auto& xs : whole.commands) {
    check_round_trip(xs);
  }
  return 0;
}
