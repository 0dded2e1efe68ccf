// SPDX-License-Identifier: Apache-2.0
// Redis's glob-style patterns (KEYS, SCAN MATCH, CONFIG GET).
#pragma once

#include <string_view>

namespace mycorrizal::resp {

/// Whether `text` matches `pattern` as Redis 7.0's stringmatchlen decides:
/// `*` any run of bytes, `?` one byte, `[abc]`, `[^abc]`, `[a-z]` (a
/// reversed range counts as written the other way round), `\x` the byte x
/// itself, inside and outside a class; an unclosed class takes the rest of
/// the pattern. Like Redis, an empty `text` matches only an empty
/// pattern (KEYS and SCAN treat a lone `*` as "everything" before
/// matching), and like Redis 7.0.15 a pattern with more than 1000 runs of
/// `*` before its last one matches nothing. Runs in O(|pattern| * |text|)
/// without recursion, so no pattern can make it exponential.
bool glob_match(std::string_view pattern, std::string_view text,
                bool nocase = false) noexcept;

} // namespace mycorrizal::resp
