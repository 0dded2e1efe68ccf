// SPDX-License-Identifier: Apache-2.0
// Writes (or checks) the wire_decode fuzz target's seed corpus.

#include "mycorrizal/wire/encoder.hpp"
#include "mycorrizal/wire/frame.hpp"

#include "corpus_tool.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

/// Usage: `make_wire_corpus <dir>` writes one file per seed into `<dir>`;
/// `make_wire_corpus --check <dir>` exits non-zero if a file in `<dir>`
/// differs from what this program would write. Every seed is a stream the
/// real encoder produced, behind the two-byte prefix wire_decode.cpp reads
/// (mode, param; see its comment for the layout).
namespace {

using namespace mycorrizal;
using namespace mycorrizal::wire;
using byte_vec = std::vector<std::byte>;

// Mode bits, as wire_decode.cpp reads them.
constexpr uint8_t peer_opened = 0;
constexpr uint8_t application_reply = 1;
constexpr uint8_t control_reply = 2;
constexpr uint8_t small_limits = 4;
constexpr uint8_t split_whole = 0 << 3;
constexpr uint8_t split_fixed = 1 << 3;
constexpr uint8_t split_bytes = 2 << 3;
constexpr uint8_t split_explicit = 3 << 3;

using fuzz::seed;

bytes_view as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

/// Starts a seed: mode, param and (explicit split only) chunk lengths.
byte_vec prefix(uint8_t mode, uint8_t param, std::vector<uint8_t> chunks = {}) {
  byte_vec out{std::byte{mode}, std::byte{param}};
  for (auto n : chunks) {
    out.push_back(std::byte{n});
  }
  return out;
}

bool ok = true;

void put(byte_vec& out, const frame& x) {
  if (auto res = append(out, x); !res) {
    std::fprintf(stderr, "make_wire_corpus: cannot encode %s: %s\n",
                 std::string{to_string(type_of(x))}.c_str(),
                 to_string(res.error()).c_str());
    ok = false;
  }
}

seed make(std::string name, byte_vec head, std::vector<frame> frames) {
  for (auto& x : frames) {
    put(head, x);
  }
  return {std::move(name), std::move(head)};
}

std::vector<seed> seeds() {
  auto hello_text = as_bytes("hello");
  // Embedded NULs: a string_view with an explicit size.
  auto caf_blob = as_bytes(std::string_view{"\x01\x00\x00\x00\x02\x03*", 7});
  auto error_text = as_bytes("deadline exceeded");
  auto big = byte_vec(300, std::byte{0x5a});
  hello node_a{1, 1, 7, 0x3, "node-a.example"};
  stream_init init{1, "kv", "events"};
  std::vector<seed> out;
  // One frame of each type, in the state the decoder expects it.
  out.push_back(
    make("stream_init", prefix(peer_opened | split_whole, 0), {init}));
  out.push_back(make("stream_init_utf8", prefix(peer_opened | split_bytes, 0),
                     {stream_init{1, "caf\xc3\xa9-\xe6\x97\xa5", ""}}));
  out.push_back(make("data", prefix(application_reply | split_fixed, 6),
                     {data{0, hello_text}}));
  out.push_back(make("data_caf", prefix(application_reply | split_bytes, 0),
                     {data{flag_caf_message, caf_blob}}));
  out.push_back(make("request",
                     prefix(application_reply | split_explicit, 2, {3, 9}),
                     {request{42, 1500, 0, hello_text}}));
  out.push_back(make("response_ok", prefix(application_reply | split_whole, 0),
                     {response{42, errc::none, flag_caf_message, caf_blob}}));
  out.push_back(make("response_error",
                     prefix(application_reply | split_fixed, 0),
                     {response{43, errc::timeout, 0, error_text}}));
  // A status this build does not know: decodes as errc::remote_error.
  out.push_back(make("response_unknown_status",
                     prefix(application_reply | split_whole, 0),
                     {response{44, static_cast<errc>(200), 0, error_text}}));
  out.push_back(make("stream_error", prefix(peer_opened | split_whole, 0),
                     {stream_error{errc::unknown_application, "no kv"}}));
  out.push_back(
    make("hello", prefix(control_reply | split_fixed, 4), {node_a}));
  out.push_back(make("apps", prefix(control_reply | split_whole, 0),
                     {node_a, apps{{"kv", "chat", "metrics"}}}));
  // Multi-frame streams.
  out.push_back(make(
    "app_stream", prefix(peer_opened | split_explicit, 3, {5, 0, 20}),
    {init, data{0, hello_text}, request{1, 250, flag_caf_message, caf_blob},
     response{9, errc::none, 0, hello_text}}));
  out.push_back(make("app_stream_small",
                     prefix(peer_opened | small_limits | split_fixed, 99),
                     {init, data{0, big}, request{2, 0, 0, big},
                      stream_error{errc::shutting_down, "bye"}}));
  out.push_back(make("reply_stream",
                     prefix(application_reply | split_fixed, 16),
                     {data{0, {}}, request{3, 10, 0, {}},
                      response{3, errc::no_handler, 0, error_text},
                      stream_error{errc::queue_full, ""}}));
  out.push_back(
    make("control_stream", prefix(peer_opened | split_explicit, 2, {7, 30}),
         {hello{1, 3, 1, ~uint64_t{0}, "node-b"}, apps{{"kv", "chat"}}, apps{},
          apps{{"kv"}}, stream_error{errc::connection_lost, "closing"}}));
  // A stream that stops in the middle of its last frame.
  auto cut = make("app_stream_truncated", prefix(peer_opened | split_whole, 0),
                  {init, data{0, hello_text}, data{0, hello_text}});
  cut.bytes.resize(cut.bytes.size() - 3);
  out.push_back(std::move(cut));
  return out;
}

} // namespace

int main(int argc, char** argv) {
  auto all = seeds();
  if (!ok) {
    return 1;
  }
  return mycorrizal::fuzz::corpus_main(argc, argv, all);
}
