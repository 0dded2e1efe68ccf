// SPDX-License-Identifier: Apache-2.0
// The RESP reply writer: the bytes of every type in RESP2 and RESP3. The
// expected bytes are redis-server 7.0.15's replies (read off the socket
// after HELLO 2 or HELLO 3) to ZSCORE, GET, BLPOP, HGETALL, SMEMBERS,
// SUBSCRIBE and Lua scripts returning big_number, verbatim_string, double,
// booleans, err and ok tables.
#include "mycorrizal/resp/reply.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace mycorrizal::resp;
using namespace std::string_literals;

namespace {

/// What `write` produces in `version`.
std::string reply_bytes(protocol_version version,
                        const std::function<void(reply_writer&)>& write) {
  reply_writer w{version};
  write(w);
  return w.take();
}

std::string resp2(const std::function<void(reply_writer&)>& write) {
  return reply_bytes(protocol_version::resp2, write);
}

std::string resp3(const std::function<void(reply_writer&)>& write) {
  return reply_bytes(protocol_version::resp3, write);
}

struct double_case {
  double x;
  std::string text;
};

std::vector<double_case> double_cases() {
  auto inf = std::numeric_limits<double>::infinity();
  auto nan = std::numeric_limits<double>::quiet_NaN();
  return {
    {0.1, "0.10000000000000001"},
    {1, "1"},
    {1e20, "1e+20"},
    {inf, "inf"},
    {-inf, "-inf"},
    {2.5, "2.5"},
    {1e-5, "1.0000000000000001e-05"},
    {123456789012345678.0, "1.2345678901234568e+17"},
    {0, "0"},
    {3, "3"},
    {std::copysign(nan, 1.0), "nan"},
    {std::copysign(nan, -1.0), "-nan"},
  };
}

} // namespace

TEST(resp_reply, simple_types_are_the_same_in_both_versions) {
  for (auto version : {protocol_version::resp2, protocol_version::resp3}) {
    auto bytes = [version](const std::function<void(reply_writer&)>& f) {
      return reply_bytes(version, f);
    };
    EXPECT_EQ(bytes([](auto& w) {
                w.simple_string("OK");
              }),
              "+OK\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.error("ERR syntax error");
              }),
              "-ERR syntax error\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.integer(0);
              }),
              ":0\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.integer(-42);
              }),
              ":-42\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.integer(std::numeric_limits<int64_t>::min());
              }),
              ":-9223372036854775808\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.bulk_string("hello");
              }),
              "$5\r\nhello\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.bulk_string("");
              }),
              "$0\r\n\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.bulk_string("a\r\n\0b"s);
              }),
              "$5\r\na\r\n\0b\r\n"s);
    EXPECT_EQ(bytes([](auto& w) {
                w.bulk_integer(-17);
              }),
              "$3\r\n-17\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.array(2).bulk_string("f").bulk_string("v");
              }),
              "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    EXPECT_EQ(bytes([](auto& w) {
                w.array(0);
              }),
              "*0\r\n");
  }
}

TEST(resp_reply, bulk_strings_take_bytes) {
  std::vector<std::byte> value{std::byte{'a'}, std::byte{0}, std::byte{0xff}};
  EXPECT_EQ(resp2([&](auto& w) {
              w.bulk_string(value);
            }),
            "$3\r\na\0\xff\r\n"s);
}

TEST(resp_reply, line_breaks_in_one_line_types_become_spaces) {
  // redis-server: a Lua {err='WRONGTYPE x\r\ny'} is -WRONGTYPE x  y, and
  // {ok='a\r\nb'} is +a  b.
  EXPECT_EQ(resp2([](auto& w) {
              w.error("WRONGTYPE x\r\ny");
            }),
            "-WRONGTYPE x  y\r\n");
  EXPECT_EQ(resp2([](auto& w) {
              w.simple_string("a\r\nb");
            }),
            "+a  b\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.big_number("1\r\n2");
            }),
            "(1  2\r\n");
}

TEST(resp_reply, line_breaks_at_the_ends_of_an_error_are_left_out) {
  // redis-server: EXPIRE k 100 "FOO\n" is -ERR Unsupported option FOO
  // (addReplyErrorFormat trims CR and LF at both ends first).
  EXPECT_EQ(resp2([](auto& w) {
              w.error("ERR Unsupported option FOO\n");
            }),
            "-ERR Unsupported option FOO\r\n");
  EXPECT_EQ(resp2([](auto& w) {
              w.error("\r\nERR a\nb\r\n\r");
            }),
            "-ERR a b\r\n");
  EXPECT_EQ(resp2([](auto& w) {
              w.error("\r\n");
            }),
            "-\r\n");
}

TEST(resp_reply, null) {
  // GET of a missing key; BLPOP timing out.
  EXPECT_EQ(resp2([](auto& w) {
              w.null();
            }),
            "$-1\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.null();
            }),
            "_\r\n");
  EXPECT_EQ(resp2([](auto& w) {
              w.null_array();
            }),
            "*-1\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.null_array();
            }),
            "_\r\n");
}

TEST(resp_reply, map_set_and_push) {
  // HGETALL of {f: v}; SMEMBERS of {m}; the first SUBSCRIBE reply.
  auto map = [](reply_writer& w) {
    w.map(1).bulk_string("f").bulk_string("v");
  };
  EXPECT_EQ(resp2(map), "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
  EXPECT_EQ(resp3(map), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
  auto set = [](reply_writer& w) {
    w.set(1).bulk_string("m");
  };
  EXPECT_EQ(resp2(set), "*1\r\n$1\r\nm\r\n");
  EXPECT_EQ(resp3(set), "~1\r\n$1\r\nm\r\n");
  auto push = [](reply_writer& w) {
    w.push(3).bulk_string("subscribe").bulk_string("ch").integer(1);
  };
  EXPECT_EQ(resp2(push), "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
  EXPECT_EQ(resp3(push), ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
}

TEST(resp_reply, doubles_are_written_as_percent_17g) {
  // ZSCORE of members scored 0.1, 1, 1e20, inf, -inf, 2.5, 1e-5,
  // 123456789012345678 and -0.0 (stored as 0); Lua {double=3}, {double=0/0}
  // (-nan on x86) and {double=-(0/0)}.
  for (auto& c : double_cases()) {
    EXPECT_EQ(resp2([&](auto& w) {
                w.double_value(c.x);
              }),
              "$" + std::to_string(c.text.size()) + "\r\n" + c.text + "\r\n")
      << c.text;
    EXPECT_EQ(resp3([&](auto& w) {
                w.double_value(c.x);
              }),
              "," + c.text + "\r\n")
      << c.text;
  }
}

TEST(resp_reply, booleans) {
  // Lua true and false.
  EXPECT_EQ(resp2([](auto& w) {
              w.boolean(true);
            }),
            ":1\r\n");
  EXPECT_EQ(resp2([](auto& w) {
              w.boolean(false);
            }),
            ":0\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.boolean(true);
            }),
            "#t\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.boolean(false);
            }),
            "#f\r\n");
}

TEST(resp_reply, big_numbers) {
  // Lua {big_number='-1234'}.
  EXPECT_EQ(resp2([](auto& w) {
              w.big_number("-1234");
            }),
            "$5\r\n-1234\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.big_number("-1234");
            }),
            "(-1234\r\n");
}

TEST(resp_reply, verbatim_strings) {
  // Lua {verbatim_string={format='md', string='hi'}}: the format is padded
  // to three characters.
  EXPECT_EQ(resp2([](auto& w) {
              w.verbatim("hi", "md");
            }),
            "$2\r\nhi\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.verbatim("hi", "md");
            }),
            "=6\r\nmd :hi\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.verbatim("a\r\nb");
            }),
            "=8\r\ntxt:a\r\nb\r\n");
  EXPECT_EQ(resp3([](auto& w) {
              w.verbatim("", "markdown");
            }),
            "=4\r\nmar:\r\n");
}

TEST(resp_reply, the_version_switches_between_replies) {
  reply_writer w;
  EXPECT_EQ(w.version(), protocol_version::resp2);
  w.null();
  w.version(protocol_version::resp3);
  w.null();
  EXPECT_EQ(w.buffer(), "$-1\r\n_\r\n");
  EXPECT_EQ(w.take(), "$-1\r\n_\r\n");
  EXPECT_TRUE(w.buffer().empty());
  w.buffer() += "+already\r\n";
  w.simple_string("OK");
  EXPECT_EQ(w.buffer(), "+already\r\n+OK\r\n");
}
