// SPDX-License-Identifier: Apache-2.0
// Redis's glob patterns. The expectations follow redis-server 7.0's KEYS
// (util.c stringmatchlen); tests/system/resp compares KEYS and SCAN MATCH
// with a live redis-server as well.
#include "mycorrizal/resp/glob.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using mycorrizal::resp::glob_match;

TEST(resp_glob, stars_and_question_marks) {
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("h?llo", "hello"));
  EXPECT_TRUE(glob_match("h?llo", "hallo"));
  EXPECT_FALSE(glob_match("h?llo", "hllo"));
  EXPECT_TRUE(glob_match("h*llo", "hllo"));
  EXPECT_TRUE(glob_match("h*llo", "heeeello"));
  EXPECT_TRUE(glob_match("user:*:name", "user:42:name"));
  EXPECT_FALSE(glob_match("user:*:name", "user:42:mail"));
  EXPECT_TRUE(glob_match("a**b***", "aXXb"));
  EXPECT_TRUE(glob_match("*a*b*c*", "xxaxxbxxcxx"));
  EXPECT_FALSE(glob_match("*a*b*c*", "xxaxxcxxbxx"));
  EXPECT_FALSE(glob_match("abc", "abcd"));
  EXPECT_FALSE(glob_match("abcd", "abc"));
}

TEST(resp_glob, classes_ranges_and_negation) {
  EXPECT_TRUE(glob_match("h[ae]llo", "hello"));
  EXPECT_TRUE(glob_match("h[ae]llo", "hallo"));
  EXPECT_FALSE(glob_match("h[ae]llo", "hillo"));
  EXPECT_TRUE(glob_match("h[^e]llo", "hallo"));
  EXPECT_FALSE(glob_match("h[^e]llo", "hello"));
  EXPECT_TRUE(glob_match("h[a-b]llo", "hbllo"));
  EXPECT_FALSE(glob_match("h[a-b]llo", "hcllo"));
  EXPECT_TRUE(glob_match("h[b-a]llo", "hallo")) << "a reversed range";
  EXPECT_FALSE(glob_match("[]a]", "a"))
    << "`]` right after `[` closes an empty class, which nothing matches";
  EXPECT_FALSE(glob_match("[]", "a")) << "an empty class matches nothing";
  EXPECT_TRUE(glob_match("[^]", "a")) << "its negation matches anything";
  EXPECT_TRUE(glob_match("[abc", "b")) << "an unclosed class takes the rest";
  EXPECT_FALSE(glob_match("[abc", "bc"));
  EXPECT_TRUE(glob_match("x[a-]", "x_"))
    << "as in Redis, `a-]` is the range from `]` to `a`, and the class stays "
       "open";
  EXPECT_FALSE(glob_match("x[a-]", "x-"));
}

TEST(resp_glob, escapes) {
  EXPECT_TRUE(glob_match("a\\*b", "a*b"));
  EXPECT_FALSE(glob_match("a\\*b", "axb"));
  EXPECT_TRUE(glob_match("a\\?", "a?"));
  EXPECT_FALSE(glob_match("a\\?", "ab"));
  EXPECT_TRUE(glob_match("[\\]]", "]"));
  EXPECT_TRUE(glob_match("[\\-]", "-"));
  EXPECT_TRUE(glob_match("a\\", "a\\")) << "a trailing backslash is itself";
}

TEST(resp_glob, empty_strings) {
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("*", ""))
    << "Redis: an empty key matches only the empty pattern (KEYS * works by "
       "a short cut before matching)";
  EXPECT_FALSE(glob_match("", "a"));
}

TEST(resp_glob, binary_bytes_and_nocase) {
  EXPECT_TRUE(glob_match(std::string("a\0*", 3), std::string("a\0zz", 4)));
  EXPECT_TRUE(glob_match("\xff?", "\xff\x01"));
  EXPECT_TRUE(glob_match("MAX*", "maxmemory", true));
  EXPECT_FALSE(glob_match("MAX*", "maxmemory", false));
}

TEST(resp_glob, more_than_a_thousand_star_runs_match_nothing) {
  // redis-server 7.0.15: KEYS with "*a" x 1001 does not find "a" x 1001
  // (its matcher's nesting limit), with "*a" x 1000 it finds "a" x 1000.
  auto repeat = [](std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      out += s;
    }
    return out;
  };
  EXPECT_TRUE(glob_match(repeat("*a", 1000), repeat("a", 1000)));
  EXPECT_FALSE(glob_match(repeat("*a", 1001), repeat("a", 1001)));
  EXPECT_FALSE(glob_match(repeat("**a", 1001), repeat("a", 1001)))
    << "consecutive stars are one run";
  // A last run is not a level: it takes the rest at once.
  EXPECT_TRUE(glob_match(repeat("*a", 1000) + "*", repeat("a", 1000) + "b"));
  // Escaped stars are not runs.
  EXPECT_TRUE(glob_match(repeat("\\*", 1001), repeat("*", 1001)));
}

TEST(resp_glob, no_pattern_is_exponential) {
  // Redis 7.0's recursive matcher needed a nesting limit (CVE-2022-36021)
  // for patterns like this; the backtracking here is linear per star.
  std::string pattern;
  for (int i = 0; i < 64; ++i) {
    pattern += "*a";
  }
  pattern += "b";
  std::string text(4096, 'a');
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob_match(pattern, text));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds{5});
}
