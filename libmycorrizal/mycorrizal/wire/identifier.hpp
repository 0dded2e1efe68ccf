// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/errc.hpp"

#include <cstddef>
#include <string_view>

namespace mycorrizal::wire {

/// Checks that `text` is valid UTF-8 (shortest form, no surrogates, at most
/// U+10FFFF) and holds no control characters (C0, DEL, C1). Identifiers end
/// up in logs, metric labels and status output, where control characters
/// would forge lines.
bool valid_utf8_printable(std::string_view text) noexcept;

/// Checks an application id, stream name or node name: at most `max_length`
/// bytes, non-empty unless `allow_empty`, and `valid_utf8_printable`.
/// @returns `errc::none` or `errc::invalid_identifier`.
errc check_identifier(std::string_view text, size_t max_length,
                      bool allow_empty) noexcept;

} // namespace mycorrizal::wire
