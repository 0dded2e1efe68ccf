// SPDX-License-Identifier: Apache-2.0
// Writes (or checks) the cache_codec fuzz target's seed corpus: one message
// of every kind, as the real encoder writes it.
#include "mycorrizal/cache/codec.hpp"

#include "corpus_tool.hpp"

#include <string>
#include <vector>

namespace {

using namespace mycorrizal::cache;
using namespace mycorrizal::cache::proto;
using mycorrizal::fuzz::seed;

bytes text(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::vector<seed> seeds() {
  version v{1764770000000, 3, 0x1234'5678'9abc'def0};
  record live{"user:1", text("alice"), v, 1764770060000, record_kind::value};
  record gone{"user:2", {}, v, 0, record_kind::tombstone};
  record evicted{"user:3", {}, v, 0, record_kind::dropped};
  std::vector<std::pair<std::string, message>> all{
    {"op_get", op_request{op_code::get, "sessions", "user:1", {}, 0, 0, 0, {}}},
    {"op_put", op_request{op_code::put,
                          "sessions",
                          "user:1",
                          text("alice"),
                          1764770060000,
                          only_if_absent | return_previous,
                          0,
                          {}}},
    {"op_incr",
     op_request{op_code::incr, "counters", "hits", {}, 0, 0, -5, {}}},
    {"op_cas",
     op_request{op_code::cas, "sessions", "user:1", text("bob"), 0, 0, 0, v}},
    {"op_reply", op_reply{mycorrizal::errc::none, "", true, text("alice"), v,
                          1764770060000, 42}},
    {"op_reply_error", op_reply{mycorrizal::errc::version_mismatch,
                                "user:1 holds a newer version",
                                false,
                                {},
                                v,
                                0,
                                0}},
    {"entries",
     entries{"sessions", 17, transfer::handoff, true, {live, gone, evicted}}},
    {"digests", digests{"sessions", {{0, 0xfeed, 12}, {270, 1, 1}}}},
    {"versions", versions{"sessions", 17, {{"user:1", v}, {"user:2", v}}}},
    {"versions_reply", versions_reply{{live}, {"user:2"}}},
    {"buckets", buckets{{bucket_def{"sessions",
                                    bucket_options{271, 2, ack_mode::all, 60000,
                                                   1000, 1 << 20},
                                    v, false},
                         bucket_def{"old", bucket_options{}, v, true}}}},
    {"scan_request", scan_request{"sessions", 5, 100}},
    {"scan_reply", scan_reply{mycorrizal::errc::none, {"user:1", "user:3"}, 6}},
    {"replicas", replicas{"sessions", {{17, live}, {200, gone}, {3, evicted}}}},
    {"op_batch",
     op_batch{
       {op_request{
          op_code::put, "sessions", "user:1", text("alice"), 0, 0, 0, {}},
        op_request{op_code::get, "sessions", "user:2", {}, 0, 0, 0, {}}}}},
    {"op_replies",
     op_replies{
       {op_reply{mycorrizal::errc::none, "", true, text("alice"), v, 0, 0},
        op_reply{
          mycorrizal::errc::no_owner, "not mine", false, {}, {}, 0, 0}}}},
  };
  std::vector<seed> out;
  for (auto& [name, msg] : all) {
    out.push_back(seed{name, encode(msg)});
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  return mycorrizal::fuzz::corpus_main(argc, argv, seeds());
}
