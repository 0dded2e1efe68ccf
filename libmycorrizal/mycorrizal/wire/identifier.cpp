// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/wire/identifier.hpp"

#include <cstdint>

namespace mycorrizal::wire {

bool valid_utf8_printable(std::string_view text) noexcept {
  auto* p = reinterpret_cast<const uint8_t*>(text.data());
  auto* end = p + text.size();
  while (p < end) {
    uint8_t b0 = *p;
    if (b0 < 0x80) {
      if (b0 < 0x20 || b0 == 0x7f) {
        return false;
      }
      ++p;
      continue;
    }
    size_t len;
    uint32_t cp;
    uint32_t min;
    if ((b0 & 0xe0) == 0xc0) {
      len = 2, cp = b0 & 0x1fu, min = 0x80;
    } else if ((b0 & 0xf0) == 0xe0) {
      len = 3, cp = b0 & 0x0fu, min = 0x800;
    } else if ((b0 & 0xf8) == 0xf0) {
      len = 4, cp = b0 & 0x07u, min = 0x10000;
    } else {
      return false; // continuation byte or 0xf8..0xff as a lead byte
    }
    if (static_cast<size_t>(end - p) < len) {
      return false;
    }
    for (size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)
        || (cp >= 0x80 && cp <= 0x9f)) {
      return false;
    }
    p += len;
  }
  return true;
}

errc check_identifier(std::string_view text, size_t max_length,
                      bool allow_empty) noexcept {
  if (text.size() > max_length || (text.empty() && !allow_empty)
      || !valid_utf8_printable(text)) {
    return errc::invalid_identifier;
  }
  return errc::none;
}

} // namespace mycorrizal::wire
