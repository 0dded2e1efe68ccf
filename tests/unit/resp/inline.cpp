// SPDX-License-Identifier: Apache-2.0
// Inline commands: line endings, blank lines, and the quoting rules of
// Redis's sdssplitargs. Each case was sent to redis-server 7.0.15 as
// `EVAL "return ARGV" 0 <case>\r\n`, whose reply lists the arguments as
// Redis split them.
#include "mycorrizal/resp/request.hpp"

#include "feed.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::resp;
using namespace std::string_literals;
using namespace mycorrizal::test::resp;

namespace {

struct split_case {
  std::string line;
  /// The arguments after `EVAL "return ARGV" 0`; nullopt: unbalanced quotes.
  std::optional<args> want;
};

std::vector<split_case> split_cases() {
  auto bad = std::nullopt;
  return {
    {"a b  c", args{"a", "b", "c"}},
    {"  a\t\tb  ", args{"a", "b"}},
    {"\"a b\" c", args{"a b", "c"}},
    {R"("\x41\x4a\x4G\x" x)", args{"AJx4Gx", "x"}},
    {R"("\n\r\t\b\a\\\"\z")", args{"\n\r\t\b\a\\\"z"}},
    {R"('a\'b' 'c\nd')", args{"a'b", "c\\nd"}},
    {"'it''s'", bad},
    {"\"a\"b", bad},
    {"\"a\" b\"", bad},
    {"x\"y z\"w", bad},
    {"x\"y z\" w", args{"xy z", "w"}},
    {"x'y z' w", args{"xy z", "w"}},
    {"\"\" ''", args{"", ""}},
    {"\"abc", bad},
    {"'abc", bad},
    {R"("abc\")", bad},
    {R"('abc\')", bad},
    {R"("\xff\x00")", args{"\xff\0"s}},
    {"a\vb \fc", args{"a\vb", "c"}},
    {"\v\fa", args{"a"}},
    {"\"a\"\vb", args{"a", "b"}},
    {"'a'\fb", args{"a", "b"}},
    {"a\rb", args{"a", "b"}},
    {"\"a\"\rb", args{"a", "b"}},
    {"\"\x01\xff\"", args{"\x01\xff"}},
    {"\"a\rb\"", args{"a\rb"}},
    {"a\"b\"c", bad},
    {"\"a\\", bad},
  };
}

} // namespace

TEST(resp_inline, arguments_split_like_sdssplitargs) {
  for (auto& c : split_cases()) {
    auto input = "EVAL \"return ARGV\" 0 " + c.line + "\r\n";
    auto got = feed(input);
    if (!c.want) {
      EXPECT_EQ(got, fails_with(protocol_error::unbalanced_quotes))
        << "case: " << c.line;
      continue;
    }
    args want{"EVAL", "return ARGV", "0"};
    want.insert(want.end(), c.want->begin(), c.want->end());
    EXPECT_EQ(got, commands({want})) << "case: " << c.line;
    EXPECT_EQ(feed_bytewise(input), got) << "case: " << c.line;
  }
}

TEST(resp_inline, a_command_is_marked_inline) {
  request_parser p;
  ASSERT_TRUE(p.append("PING\r\n"));
  auto cmd = p.next();
  ASSERT_TRUE(cmd && *cmd);
  EXPECT_EQ((*cmd)->form, request_form::inline_line);
  EXPECT_EQ((*cmd)->to_strings(), (args{"PING"}));
}

TEST(resp_inline, a_bare_newline_ends_a_line) {
  // redis-server answers "PING\nPING\n" with two +PONG.
  EXPECT_EQ(feed("PING\nPING\n"), commands({{"PING"}, {"PING"}}));
}

TEST(resp_inline, blank_lines_are_no_command) {
  // redis-server answers "\r\n\n   \r\nPING\r\n" with one +PONG.
  EXPECT_EQ(feed("\r\n\n   \r\nPING\r\n"), commands({{"PING"}}));
}

TEST(resp_inline, a_carriage_return_inside_a_line_separates) {
  // redis-server: "ECHO a\rb\r\n" has three arguments (wrong number of
  // arguments for 'echo'); only the `\r` before the `\n` ends the line.
  EXPECT_EQ(feed("ECHO a\rb\r\n"), commands({{"ECHO", "a", "b"}}));
  EXPECT_EQ(feed("ECHO a\r\r\n"), commands({{"ECHO", "a"}}));
}

TEST(resp_inline, a_line_starting_with_a_star_is_multibulk) {
  EXPECT_EQ(feed(" *1\r\n"), commands({{"*1"}}));
  EXPECT_EQ(feed("*1 PING\r\n"),
            fails_with(protocol_error::invalid_multibulk_length));
}

TEST(resp_inline, quoted_arguments_are_unescaped_in_place) {
  // Unescaping never needs more bytes than the source: the arguments view
  // the parser's buffer.
  request_parser p;
  std::string input = R"(SET "k\x00ey" 'it\'s' "\"q\"")"
                      "\r\n";
  auto space = p.prepare(input.size());
  input.copy(space.data(), input.size());
  ASSERT_TRUE(p.commit(input.size()));
  auto cmd = p.next();
  ASSERT_TRUE(cmd && *cmd);
  EXPECT_EQ((*cmd)->to_strings(), (args{"SET", "k\0ey"s, "it's", "\"q\""}));
  for (auto arg : (*cmd)->args) {
    EXPECT_GE(arg.data(), space.data());
    EXPECT_LE(arg.data() + arg.size(), space.data() + input.size());
  }
}
