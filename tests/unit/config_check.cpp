// SPDX-License-Identifier: Apache-2.0
// Tests of config validation: every bad field is named in the error.
#include "mycorrizal/config_check.hpp"

#include "mycorrizal/log_sink.hpp"
#include "mycorrizal/wire/limits.hpp"

#include <gtest/gtest.h>

using namespace mycorrizal;

TEST(config_check, passes_when_all_fields_are_good) {
  config_check check{"x"};
  check.in_range("a", 5, 1, 10).require("b", true, "must hold");
  EXPECT_TRUE(std::move(check).result());
}

TEST(config_check, names_every_bad_field) {
  config_check check{"x"};
  check.in_range("a", 0, 1, 10).require("b", false, "must hold");
  auto r = std::move(check).result();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_config);
  EXPECT_EQ(r.error().context(),
            "x.a: must be in [1, 10], got 0; x.b: must hold");
}

TEST(wire_limits, presets_are_valid) {
  EXPECT_TRUE(wire::limits::defaults().validate());
  EXPECT_TRUE(wire::limits::small().validate());
}

TEST(wire_limits, validation_names_the_bad_field) {
  auto lim = wire::limits::defaults();
  lim.max_frame_size = 10;
  auto r = lim.validate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().context(),
            "wire.max_frame_size: must be in [64, 1073741824], got 10");
  lim = wire::limits::defaults();
  lim.max_identifier_size = 256;
  lim.version_min = 0;
  r = lim.validate();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context().find("wire.max_identifier_size"),
            std::string::npos)
    << r.error().context();
  EXPECT_NE(r.error().context().find("wire.version_min"), std::string::npos)
    << r.error().context();
}

TEST(log_level, parses_names_and_rejects_others) {
  EXPECT_EQ(*parse_log_level("debug"), log_level::debug);
  EXPECT_EQ(*parse_log_level("warning"), log_level::warn);
  EXPECT_EQ(*parse_log_level("off"), log_level::off);
  auto r = parse_log_level("loud");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_config);
  EXPECT_NE(r.error().context().find("'loud'"), std::string::npos);
}
