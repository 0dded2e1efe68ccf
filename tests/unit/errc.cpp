// SPDX-License-Identifier: Apache-2.0
// Tests of mycorrizal::errc and mycorrizal::error.
#include "mycorrizal/errc.hpp"

#include "mycorrizal/error.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

using namespace mycorrizal;

TEST(errc, every_code_has_a_unique_name_and_converts_back) {
  std::set<std::string_view> names;
  int known = 0;
  for (int code = 0; code < 256; ++code) {
    auto x = errc_from_code(static_cast<uint8_t>(code));
    if (!x) {
      EXPECT_EQ(to_string(static_cast<errc>(code)), "unknown") << code;
      continue;
    }
    ++known;
    EXPECT_EQ(static_cast<int>(*x), code);
    auto name = to_string(*x);
    EXPECT_NE(name, "unknown") << code;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
  }
  // 31 enumerators today; a new value must get a name (this count changes
  // with the enum, deliberately).
  EXPECT_EQ(known, 31);
}

TEST(errc, wire_values_are_stable) {
  // These numbers travel in RESPONSE and STREAM_ERROR frames
  // (docs/protocol.md §5): they must never change.
  EXPECT_EQ(static_cast<int>(errc::frame_too_large), 1);
  EXPECT_EQ(static_cast<int>(errc::unsupported_version), 5);
  EXPECT_EQ(static_cast<int>(errc::invalid_config), 32);
  EXPECT_EQ(static_cast<int>(errc::timeout), 64);
  EXPECT_EQ(static_cast<int>(errc::node_down), 65);
  EXPECT_EQ(static_cast<int>(errc::unknown_application), 67);
  EXPECT_EQ(static_cast<int>(errc::shutting_down), 72);
  EXPECT_EQ(static_cast<int>(errc::not_serializable), 73);
  EXPECT_EQ(static_cast<int>(errc::unknown_bucket), 74);
  EXPECT_EQ(static_cast<int>(errc::version_mismatch), 77);
}

TEST(error, renders_code_and_context) {
  EXPECT_EQ(to_string(error{errc::timeout}), "timeout");
  EXPECT_EQ(to_string(error{errc::invalid_config, "wire.x: bad"}),
            "invalid_config: wire.x: bad");
  EXPECT_FALSE(error{});
  EXPECT_TRUE(error{errc::queue_full});
  EXPECT_TRUE(error{errc::queue_full} == errc::queue_full);
}
