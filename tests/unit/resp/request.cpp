// SPDX-License-Identifier: Apache-2.0
// The RESP request parser: multibulk requests, Redis 7.0's limits and error
// texts, the parser's independence of how the input is split, the query
// buffer limit and the memory bound. Every expected behaviour here was
// checked against redis-server 7.0.15 or read in its source (networking.c:
// processMultibulkBuffer, processInlineBuffer, readQueryFromClient).
#include "mycorrizal/resp/request.hpp"

#include "feed.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::resp;
using namespace std::string_literals;
using namespace mycorrizal::test::resp;

namespace {

constexpr size_t kib64 = size_t{64} << 10;

/// Checks that feeding `input` whole, byte by byte and split in two at
/// every position all give `want`.
void expect_any_split(const std::string& input, const outcome& want,
                      request_limits limits = {}) {
  EXPECT_EQ(feed(input, limits), want) << "whole";
  EXPECT_EQ(feed_bytewise(input, limits), want) << "byte by byte";
  for (size_t i = 0; i <= input.size(); ++i) {
    std::vector<size_t> cut{i};
    ASSERT_EQ(feed_cut(input, cut, limits), want) << "cut at " << i;
  }
}

} // namespace

// -- multibulk ----------------------------------------------------------------

TEST(resp_request, a_multibulk_command_is_parsed) {
  request_parser p;
  ASSERT_TRUE(p.append("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"));
  auto cmd = p.next();
  ASSERT_TRUE(cmd);
  ASSERT_TRUE(*cmd);
  EXPECT_EQ((*cmd)->form, request_form::multibulk);
  EXPECT_EQ((*cmd)->to_strings(), (args{"SET", "k", "hello"}));
  auto none = p.next();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(resp_request, bulk_strings_are_binary_safe) {
  args xs{"SET", "k", "a\r\nb\0c\xff"s, "", "$3\r\n"};
  EXPECT_EQ(feed(multibulk(xs)), commands({xs}));
}

TEST(resp_request, arguments_view_the_bytes_as_they_arrived) {
  // No copy: the arguments point into the space prepare() handed out.
  request_parser p;
  std::string input = multibulk({"GET", "key"});
  auto space = p.prepare(input.size());
  std::memcpy(space.data(), input.data(), input.size());
  ASSERT_TRUE(p.commit(input.size()));
  auto cmd = p.next();
  ASSERT_TRUE(cmd && *cmd);
  for (auto arg : (*cmd)->args) {
    EXPECT_GE(arg.data(), space.data());
    EXPECT_LE(arg.data() + arg.size(), space.data() + input.size());
  }
}

TEST(resp_request, counts_of_zero_or_less_are_no_command) {
  // redis-server answers "*0\r\n*-1\r\n*-5\r\nPING\r\n" with one +PONG.
  EXPECT_EQ(feed("*0\r\n*-1\r\n*-5\r\nPING\r\n"), commands({{"PING"}}));
}

TEST(resp_request, the_bytes_after_a_payload_are_not_checked) {
  // Redis skips the two bytes after a bulk string's payload, and the byte
  // after a count line's `\r`, without looking at them: redis-server
  // answers both of these with +PONG per PING.
  EXPECT_EQ(feed("*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n"),
            commands({{"PING"}, {"PING"}}));
  EXPECT_EQ(feed("*1\rX$4\r\nPING\r\n"), commands({{"PING"}}));
}

TEST(resp_request, counts_are_strict_decimal) {
  for (auto input : {"*\r\n", "*+1\r\n", "*01\r\n", "*-0\r\n", "*x\r\n",
                     "* 1\r\n", "*1 \r\n"}) {
    EXPECT_EQ(feed(input), fails_with(protocol_error::invalid_multibulk_length))
      << input;
  }
  for (auto input : {"*1\r\n$\r\n", "*1\r\n$+1\r\n", "*1\r\n$01\r\n",
                     "*1\r\n$-0\r\n", "*1\r\n$000000000000000000004\r\n"}) {
    EXPECT_EQ(feed(input), fails_with(protocol_error::invalid_bulk_length))
      << input;
  }
}

TEST(resp_request, a_count_up_to_int_max_is_accepted) {
  // Redis 7.0 dropped Redis 6's limit of 1024 * 1024 arguments: the count
  // must only fit an int. The parser then waits for the arguments.
  for (std::string input : {"*1048577\r\n", "*2147483647\r\n"}) {
    EXPECT_EQ(feed(input), waiting(input.size())) << input;
  }
  EXPECT_EQ(feed("*2147483648\r\n"),
            fails_with(protocol_error::invalid_multibulk_length));
  EXPECT_EQ(feed("*9223372036854775808\r\n"),
            fails_with(protocol_error::invalid_multibulk_length));
}

TEST(resp_request, bulk_lengths_are_bounded_by_proto_max_bulk_len) {
  std::string max = "*1\r\n$536870912\r\n";
  EXPECT_EQ(feed(max), waiting(max.size()));
  EXPECT_EQ(feed("*1\r\n$536870913\r\n"),
            fails_with(protocol_error::invalid_bulk_length));
  EXPECT_EQ(feed("*1\r\n$-1\r\n"),
            fails_with(protocol_error::invalid_bulk_length));
  request_limits small;
  small.max_bulk_length = 3;
  EXPECT_EQ(feed(multibulk({"abc"}), small), commands({{"abc"}}));
  EXPECT_EQ(feed(multibulk({"abcd"}), small),
            fails_with(protocol_error::invalid_bulk_length));
}

TEST(resp_request, a_bulk_string_needs_its_dollar) {
  // Redis maps `\r` and `\n` in the error to spaces; other bytes go as
  // they are.
  EXPECT_EQ(feed("*1\r\nx4\r\n"),
            fails_with("Protocol error: expected '$', got 'x'"));
  EXPECT_EQ(feed("*1\r\n\r\n"),
            fails_with("Protocol error: expected '$', got ' '"));
  EXPECT_EQ(feed("*1\r\n\nab\r\n"),
            fails_with("Protocol error: expected '$', got ' '"));
  EXPECT_EQ(feed("*1\r\n\x01\r\n"),
            fails_with("Protocol error: expected '$', got '\x01'"));
  EXPECT_EQ(protocol_error::expected_dollar('x'),
            "Protocol error: expected '$', got 'x'");
  // The check waits for the whole line.
  EXPECT_EQ(feed("*1\r\nx"), waiting(5));
  EXPECT_EQ(feed("*1\r\nx4\r"), waiting(7));
}

// -- line limits --------------------------------------------------------------

TEST(resp_request, an_inline_request_without_newline_fails_past_64_kib) {
  // redis-server: 65536 bytes without a newline wait; 65537 fail.
  std::string line(kib64, 'A');
  EXPECT_EQ(feed(line), waiting(kib64));
  EXPECT_EQ(feed(line + "A"), fails_with(protocol_error::too_big_inline));
  // 65536 bytes and then "\n" are a command (redis-server: unknown command
  // 'AAA...'); 65536 bytes, "\r" and then "\n" fail (redis-server, the
  // "\n" sent apart), because 65537 bytes without a newline were pending.
  EXPECT_EQ(feed_cut(line + "\n", std::vector<size_t>{kib64}),
            commands({{line}}));
  EXPECT_EQ(feed_cut(line + "\r\n", std::vector<size_t>{kib64 + 1}),
            fails_with(protocol_error::too_big_inline));
  // The parser decides so however the bytes arrive.
  EXPECT_EQ(feed(line + "\r\n"), fails_with(protocol_error::too_big_inline));
  EXPECT_EQ(feed(line.substr(1) + "\r\n"), commands({{line.substr(1)}}));
}

TEST(resp_request, a_nul_hides_the_end_of_an_inline_line) {
  // Redis looks for the newline with strchr, which stops at a NUL: the
  // request never completes (redis-server does not answer) and fails once
  // more than 64 KiB are pending.
  std::string input = "PING\0\r\nPING\r\n"s;
  EXPECT_EQ(feed(input), waiting(input.size()));
  std::string more(kib64 + 1 - input.size(), 'A');
  EXPECT_EQ(feed(input + more), fails_with(protocol_error::too_big_inline));
  EXPECT_EQ(feed_cut(input + more, std::vector<size_t>{input.size()}),
            fails_with(protocol_error::too_big_inline));
}

TEST(resp_request, a_count_line_fails_past_64_kib) {
  // redis-server: "*" and 65535 digits wait, "*" and 65536 digits fail.
  std::string digits(kib64 - 1, '1');
  EXPECT_EQ(feed("*" + digits), waiting(kib64));
  EXPECT_EQ(feed("*" + digits + "1"),
            fails_with(protocol_error::too_big_mbulk_count));
}

TEST(resp_request, a_bulk_count_line_fails_past_64_kib) {
  // redis-server: "$" and 65535 digits wait, and 65536 fail; also when the
  // line does not even start with '$' (the '$' is checked on a whole line).
  std::string digits(kib64 - 1, '1');
  EXPECT_EQ(feed("*1\r\n$" + digits), waiting(4 + kib64));
  EXPECT_EQ(feed("*1\r\n$" + digits + "1"),
            fails_with(protocol_error::too_big_bulk_count));
  EXPECT_EQ(feed("*1\r\nx" + digits + "1"),
            fails_with(protocol_error::too_big_bulk_count));
  // A NUL hides the line's end here too (redis-server does not answer).
  EXPECT_EQ(feed("*1\r\n\0\r\n"s), waiting(7));
}

TEST(resp_request, the_line_limit_is_configurable) {
  request_limits small;
  small.max_inline_size = 8;
  EXPECT_EQ(feed("12345678\n", small), commands({{"12345678"}}));
  EXPECT_EQ(feed("123456789\n", small),
            fails_with(protocol_error::too_big_inline));
  EXPECT_EQ(feed("*1234567\r\n", small), waiting(10));
  EXPECT_EQ(feed("*12345678\r\n", small),
            fails_with(protocol_error::too_big_mbulk_count));
  EXPECT_EQ(feed("*1\r\n$1234567\r\n", small), waiting(14));
  EXPECT_EQ(feed("*1\r\n$12345678\r\n", small),
            fails_with(protocol_error::too_big_bulk_count));
}

// -- authentication -----------------------------------------------------------

TEST(resp_request, unauthenticated_clients_send_short_requests) {
  // redis-server with requirepass, before AUTH: *10 waits, *11 fails;
  // $16384 waits, $16385 fails; $-1 and *x fail as always.
  auto with_auth = [](std::string_view input) {
    request_parser p;
    p.auth_required(true);
    outcome out;
    if (p.append(input)) {
      drain(p, out);
    }
    out.buffered = p.buffered();
    return out;
  };
  EXPECT_EQ(with_auth("*10\r\n"), waiting(5));
  EXPECT_EQ(with_auth("*11\r\n"),
            fails_with(protocol_error::unauthenticated_multibulk_length));
  EXPECT_EQ(with_auth("*1\r\n$16384\r\n"), waiting(12));
  EXPECT_EQ(with_auth("*1\r\n$16385\r\n"),
            fails_with(protocol_error::unauthenticated_bulk_length));
  EXPECT_EQ(with_auth("*1\r\n$-1\r\n"),
            fails_with(protocol_error::invalid_bulk_length));
  EXPECT_EQ(with_auth("*x\r\n"),
            fails_with(protocol_error::invalid_multibulk_length));
}

TEST(resp_request, auth_takes_effect_before_the_next_command_is_parsed) {
  // redis-server: AUTH and a pipelined *11 command in one write: +OK, and
  // the *11 command is parsed as an authenticated one.
  request_parser p;
  p.auth_required(true);
  std::string input = multibulk({"AUTH", "secret"}) + "*11\r\n$4\r\nPING\r\n";
  ASSERT_TRUE(p.append(input));
  auto cmd = p.next();
  ASSERT_TRUE(cmd && *cmd);
  EXPECT_EQ((*cmd)->to_strings(), (args{"AUTH", "secret"}));
  p.auth_required(false);
  auto more = p.next();
  ASSERT_TRUE(more);
  EXPECT_FALSE(*more);
}

// -- query buffer limit -------------------------------------------------------

TEST(resp_request, the_query_buffer_limit_counts_what_redis_counts) {
  request_limits limits;
  limits.max_query_buffer = size_t{1} << 20; // the least Redis allows
  ASSERT_TRUE(limits.validate());
  // redis-server with client-query-buffer-limit 1mb: a 2000000-byte bulk
  // string closes the connection (no reply) once 1200000 bytes of it are
  // pending...
  std::string head = "*1\r\n$2000000\r\n";
  std::string big = head + std::string(1'200'000, 'A');
  auto out = feed_cut(
    big, std::vector<size_t>{head.size(), head.size() + 600'000}, limits);
  EXPECT_EQ(out.code, errc::too_large);
  EXPECT_EQ(out.error_text, query_buffer_exceeded);
  // ... but a command of three arguments, 1200001 bytes in all, runs: the
  // arguments already parsed do not count.
  std::string a(600'000, 'A');
  std::string input = multibulk({a, a, "x"});
  size_t first = input.find("$600000", 5) + 9;
  size_t second = input.find("$1\r\n") + 4;
  auto ok = feed_cut(input, std::vector<size_t>{first, second}, limits);
  EXPECT_EQ(ok, commands({{a, a, "x"}}));
}

TEST(resp_request, query_buffer_length_starts_at_the_element_being_parsed) {
  request_parser p;
  ASSERT_TRUE(p.append("*2\r\n$3\r\nfoo\r\n$3\r\nba"));
  auto cmd = p.next();
  ASSERT_TRUE(cmd);
  EXPECT_FALSE(*cmd);
  EXPECT_EQ(p.buffered(), 19u);
  EXPECT_EQ(p.query_buffer_length(), 2u);
}

// -- errors are final ---------------------------------------------------------

TEST(resp_request, an_error_is_final) {
  request_parser p;
  ASSERT_TRUE(p.append("PING\r\n*1\r\n$x\r\nPING\r\n"));
  auto ping = p.next();
  ASSERT_TRUE(ping && *ping);
  EXPECT_EQ((*ping)->to_strings(), (args{"PING"}));
  for (int i = 0; i < 2; ++i) {
    auto cmd = p.next();
    ASSERT_FALSE(cmd);
    EXPECT_EQ(cmd.error().code(), errc::malformed_frame);
    EXPECT_EQ(cmd.error().context(), protocol_error::invalid_bulk_length);
  }
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.buffered(), 0u);
  auto again = p.append("PING\r\n");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().context(), protocol_error::invalid_bulk_length);
  EXPECT_EQ(p.buffered(), 0u);
}

// -- splits -------------------------------------------------------------------

TEST(resp_request, every_split_of_a_pipeline_gives_the_same_commands) {
  std::string input = multibulk({"SET", "key", "a\r\nb\0c"s}) + "PING\r\n"
                      + "*0\r\n" + "  \r\n" + "ECHO \"x y\" 'z'\n" + "*-1\r\n"
                      + multibulk({"GET", ""}) + "\n"
                      + multibulk({"DEL", "k1", "k2"});
  auto want = commands({{"SET", "key", "a\r\nb\0c"s},
                        {"PING"},
                        {"ECHO", "x y", "z"},
                        {"GET", ""},
                        {"DEL", "k1", "k2"}});
  expect_any_split(input, want);
  // Every split in three, too.
  for (size_t i = 0; i <= input.size(); ++i) {
    for (size_t j = i; j <= input.size(); ++j) {
      std::vector<size_t> cuts{i, j};
      ASSERT_EQ(feed_cut(input, cuts), want) << "cuts " << i << ", " << j;
    }
  }
}

TEST(resp_request, every_split_gives_the_same_error) {
  auto before = multibulk({"PING"}) + "ECHO a\r\n";
  std::vector<args> ok{{"PING"}, {"ECHO", "a"}};
  expect_any_split(before + "*1\r\n$-1\r\n",
                   fails_with(protocol_error::invalid_bulk_length, ok));
  expect_any_split(before + "*1\r\n:1\r\n",
                   fails_with("Protocol error: expected '$', got ':'", ok));
  expect_any_split(before + "*1x\r\n",
                   fails_with(protocol_error::invalid_multibulk_length, ok));
  expect_any_split(before + "SET \"a\"b\r\n",
                   fails_with(protocol_error::unbalanced_quotes, ok));
  request_limits small;
  small.max_inline_size = 16;
  expect_any_split(before + std::string(17, 'x'),
                   fails_with(protocol_error::too_big_inline, ok), small);
  expect_any_split(before + "*" + std::string(16, '1'),
                   fails_with(protocol_error::too_big_mbulk_count, ok), small);
  expect_any_split(before + "*1\r\n$" + std::string(16, '1'),
                   fails_with(protocol_error::too_big_bulk_count, ok), small);
  expect_any_split(before + "GET\0 a\r\n"s + std::string(9, 'x'),
                   fails_with(protocol_error::too_big_inline, ok), small);
}

TEST(resp_request, every_split_leaves_the_same_bytes_buffered) {
  auto input = multibulk({"GET", "k"}) + "*2\r\n$3\r\nGET\r\n$1";
  expect_any_split(input, waiting(15, {{"GET", "k"}}));
}

// -- memory -------------------------------------------------------------------

TEST(resp_request, an_announced_bulk_string_reserves_nothing) {
  request_parser p;
  std::string head = "*1\r\n$536870912\r\n";
  ASSERT_TRUE(p.append(head));
  ASSERT_TRUE(p.next());
  ASSERT_TRUE(p.append(std::string(1024, 'x')));
  auto cmd = p.next();
  ASSERT_TRUE(cmd);
  EXPECT_FALSE(*cmd);
  EXPECT_EQ(p.buffered(), head.size() + 1024);
  EXPECT_EQ(p.query_buffer_length(), 1024u);
  EXPECT_LE(p.capacity(), request_parser::retained_capacity);
  // The buffer grows with what arrives, by a bounded factor.
  constexpr size_t chunk = 16 * 1024;
  for (int i = 0; i < 512; ++i) { // 8 MiB
    auto space = p.prepare(chunk);
    ASSERT_GE(space.size(), chunk);
    EXPECT_LE(p.capacity(), 3 * (p.buffered() + chunk));
    std::memset(space.data(), 'x', chunk);
    ASSERT_TRUE(p.commit(chunk));
    ASSERT_TRUE(p.next());
  }
  EXPECT_EQ(p.buffered(), head.size() + 1024 + 512 * chunk);
}

TEST(resp_request, the_buffer_stops_at_the_end_of_a_bulk_string) {
  // 1000000 payload bytes and "\r\n" in pieces of 1000 (1000002 is not a
  // multiple: the last piece is 2 bytes): the buffer never grows past the
  // end of the command, and the next read releases it.
  request_parser p;
  std::string head = "*1\r\n$1000000\r\n";
  ASSERT_TRUE(p.append(head));
  std::string piece(1000, 'y');
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(p.append(piece));
    auto cmd = p.next();
    ASSERT_TRUE(cmd);
    ASSERT_FALSE(*cmd);
  }
  ASSERT_TRUE(p.append("\r\n"));
  EXPECT_LE(p.capacity(), head.size() + 1'000'002);
  auto cmd = p.next();
  ASSERT_TRUE(cmd && *cmd);
  ASSERT_EQ((*cmd)->args.size(), 1u);
  EXPECT_EQ((*cmd)->args[0].size(), 1'000'000u);
  auto space = p.prepare(16 * 1024);
  EXPECT_GE(space.size(), 16u * 1024);
  EXPECT_LE(p.capacity(), request_parser::retained_capacity);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(resp_request, a_pipeline_is_parsed_in_place_without_growing) {
  // A steady stream of small commands in 4 KiB reads reuses one buffer.
  request_parser p;
  std::string cmd = multibulk({"SET", "key", std::string(100, 'v')});
  std::string stream;
  while (stream.size() < (size_t{1} << 20)) {
    stream += cmd;
  }
  size_t seen = 0;
  for (size_t at = 0; at < stream.size(); at += 4096) {
    ASSERT_TRUE(p.append(std::string_view{stream}.substr(at, 4096)));
    for (;;) {
      auto next = p.next();
      ASSERT_TRUE(next);
      if (!*next) {
        break;
      }
      ++seen;
    }
    EXPECT_LE(p.capacity(), request_parser::retained_capacity);
  }
  EXPECT_EQ(seen, stream.size() / cmd.size());
}

// -- limits -------------------------------------------------------------------

TEST(resp_request, the_defaults_are_redis_defaults) {
  auto x = request_limits::defaults();
  EXPECT_EQ(x.max_bulk_length, 512 * 1024 * 1024);
  EXPECT_EQ(x.max_multibulk_length, 2147483647);
  EXPECT_EQ(x.max_inline_size, 64u * 1024);
  EXPECT_EQ(x.max_query_buffer, size_t{1} << 30);
  EXPECT_EQ(x.max_unauthenticated_multibulk_length, 10);
  EXPECT_EQ(x.max_unauthenticated_bulk_length, 16384);
  EXPECT_TRUE(x.validate());
}

TEST(resp_request, limits_out_of_range_are_named) {
  request_limits x;
  x.max_bulk_length = 1000;
  x.max_query_buffer = 1000;
  x.max_inline_size = 0;
  auto res = x.validate();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code(), errc::invalid_config);
  auto& text = res.error().context();
  EXPECT_NE(text.find("resp.max_bulk_length"), std::string::npos) << text;
  EXPECT_NE(text.find("resp.max_query_buffer"), std::string::npos) << text;
  EXPECT_NE(text.find("resp.max_inline_size"), std::string::npos) << text;
  x = request_limits{};
  x.max_query_buffer = 0; // no limit
  EXPECT_TRUE(x.validate());
}
