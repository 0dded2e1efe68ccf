// SPDX-License-Identifier: Apache-2.0
// Tests of mycorrizal::expected.
#include "mycorrizal/expected.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

using namespace mycorrizal;

namespace {

expected<int> parse_digit(char c) {
  if (c < '0' || c > '9') {
    return unexpected{
      error{errc::malformed_frame, std::string{"not a digit: "} + c}};
  }
  return c - '0';
}

expected<void> check_positive(int x) {
  if (x <= 0) {
    return errc::invalid_config;
  }
  return {};
}

} // namespace

TEST(expected, holds_a_value) {
  auto x = parse_digit('7');
  ASSERT_TRUE(x);
  EXPECT_TRUE(x.has_value());
  EXPECT_EQ(*x, 7);
  EXPECT_EQ(x.value_or(1), 7);
}

TEST(expected, holds_an_error_with_context) {
  auto x = parse_digit('x');
  ASSERT_FALSE(x);
  EXPECT_EQ(x.error().code(), errc::malformed_frame);
  EXPECT_EQ(x.error().context(), "not a digit: x");
  EXPECT_EQ(x.value_or(-1), -1);
}

TEST(expected, converts_from_errc) {
  expected<std::string> x = errc::timeout;
  ASSERT_FALSE(x);
  EXPECT_EQ(x.error(), errc::timeout);
}

TEST(expected, void_specialization) {
  EXPECT_TRUE(check_positive(1));
  auto r = check_positive(0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_config);
}

TEST(expected, move_only_values) {
  expected<std::unique_ptr<int>> x{std::make_unique<int>(5)};
  ASSERT_TRUE(x);
  auto p = std::move(x).value();
  EXPECT_EQ(*p, 5);
}
