// SPDX-License-Identifier: Apache-2.0
// Tests of identifier validation: UTF-8 and printable characters only.
#include "mycorrizal/wire/identifier.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace mycorrizal;
using mycorrizal::wire::check_identifier;
using mycorrizal::wire::valid_utf8_printable;

TEST(wire_identifier, accepts_printable_utf8) {
  EXPECT_TRUE(valid_utf8_printable("SYSTEM-MYCEL"));
  EXPECT_TRUE(valid_utf8_printable("bucket:sessions"));
  EXPECT_TRUE(valid_utf8_printable("caf\xc3\xa9"));      // é
  EXPECT_TRUE(valid_utf8_printable("\xe2\x82\xac"));     // €
  EXPECT_TRUE(valid_utf8_printable("\xf0\x9f\x8d\x84")); // mushroom
  EXPECT_TRUE(valid_utf8_printable("\xf4\x8f\xbf\xbf")); // U+10FFFF
  EXPECT_TRUE(valid_utf8_printable(""));
}

TEST(wire_identifier, rejects_bad_utf8) {
  EXPECT_FALSE(valid_utf8_printable("\x80"));             // lone continuation
  EXPECT_FALSE(valid_utf8_printable("\xc3"));             // truncated
  EXPECT_FALSE(valid_utf8_printable("\xe2\x82"));         // truncated
  EXPECT_FALSE(valid_utf8_printable("\xc0\xaf"));         // overlong '/'
  EXPECT_FALSE(valid_utf8_printable("\xe0\x80\xaf"));     // overlong
  EXPECT_FALSE(valid_utf8_printable("\xf0\x80\x80\xaf")); // overlong
  EXPECT_FALSE(valid_utf8_printable("\xed\xa0\x80"));     // surrogate
  EXPECT_FALSE(valid_utf8_printable("\xf4\x90\x80\x80")); // > U+10FFFF
  EXPECT_FALSE(valid_utf8_printable("\xf8\x88\x80\x80\x80")); // 5-byte form
  EXPECT_FALSE(valid_utf8_printable("\xff"));
  EXPECT_FALSE(valid_utf8_printable("a\xc3(b")); // bad continuation
}

TEST(wire_identifier, rejects_control_characters) {
  EXPECT_FALSE(valid_utf8_printable(std::string{"a\0b", 3}));
  EXPECT_FALSE(valid_utf8_printable("line\nbreak"));
  EXPECT_FALSE(valid_utf8_printable("tab\there"));
  EXPECT_FALSE(valid_utf8_printable("\x7f"));
  EXPECT_FALSE(valid_utf8_printable("\xc2\x85")); // NEL (C1)
  EXPECT_TRUE(valid_utf8_printable("\xc2\xa0"));  // NBSP is fine
}

TEST(wire_identifier, checks_length_and_emptiness) {
  EXPECT_EQ(check_identifier("app", 3, false), errc::none);
  EXPECT_EQ(check_identifier("app!", 3, false), errc::invalid_identifier);
  EXPECT_EQ(check_identifier("", 3, false), errc::invalid_identifier);
  EXPECT_EQ(check_identifier("", 3, true), errc::none);
}
