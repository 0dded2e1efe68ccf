// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/resp/glob.hpp"

#include <cstddef>

namespace mycorrizal::resp {

namespace {

/// How many runs of `*` a pattern may have before its last one.
constexpr size_t max_star_runs = 1000;

char fold(char c, bool nocase) noexcept {
  if (nocase && c >= 'A' && c <= 'Z') {
    return static_cast<char>(c - 'A' + 'a');
  }
  return c;
}

/// Matches the one-byte element of `p` at `j` (not `*`) against `c`; sets
/// `next` to the position after the element.
bool element_matches(std::string_view p, size_t j, char c, bool nocase,
                     size_t& next) noexcept {
  auto eq = [nocase](char a, char b) {
    return fold(a, nocase) == fold(b, nocase);
  };
  switch (p[j]) {
    case '?': next = j + 1; return true;
    case '\\':
      if (j + 1 < p.size()) {
        next = j + 2;
        return eq(p[j + 1], c);
      }
      next = j + 1;
      return eq('\\', c);
    case '[': {
      size_t k = j + 1;
      bool negate = k < p.size() && p[k] == '^';
      if (negate) {
        ++k;
      }
      bool hit = false;
      while (k < p.size() && p[k] != ']') {
        if (p[k] == '\\' && k + 1 < p.size()) {
          hit = hit || p[k + 1] == c;
          k += 2;
        } else if (k + 2 < p.size() && p[k + 1] == '-') {
          auto lo = fold(p[k], nocase);
          auto hi = fold(p[k + 2], nocase);
          if (lo > hi) {
            std::swap(lo, hi);
          }
          auto x = fold(c, nocase);
          hit = hit || (x >= lo && x <= hi);
          k += 3;
        } else {
          hit = hit || eq(p[k], c);
          ++k;
        }
      }
      // Past the `]`, or the end of an unclosed class.
      next = k < p.size() ? k + 1 : k;
      return negate ? !hit : hit;
    }
    default: next = j + 1; return eq(p[j], c);
  }
}

} // namespace

bool glob_match(std::string_view pattern, std::string_view text,
                bool nocase) noexcept {
  if (text.empty()) {
    return pattern.empty();
  }
  size_t i = 0;
  size_t j = 0;
  // The last `*` seen and the text position it was last tried at.
  size_t star = std::string_view::npos;
  size_t star_i = 0;
  // Runs of `*` passed so far (each a level of recursion in Redis's
  // matcher, which gives up past 1000: its guard against abusive
  // patterns, CVE-2022-36021).
  size_t runs = 0;
  while (i < text.size()) {
    if (j < pattern.size() && pattern[j] == '*') {
      while (j < pattern.size() && pattern[j] == '*') {
        ++j;
      }
      if (j == pattern.size()) {
        return true; // a final `*` takes the rest
      }
      if (++runs > max_star_runs) {
        return false; // (backtracking never comes back to an earlier run)
      }
      star = j;
      star_i = i;
      continue;
    }
    size_t next = 0;
    if (j < pattern.size()
        && element_matches(pattern, j, text[i], nocase, next)) {
      j = next;
      ++i;
      continue;
    }
    if (star == std::string_view::npos) {
      return false;
    }
    // Let the last `*` take one more byte and try again from there.
    j = star;
    i = ++star_i;
  }
  while (j < pattern.size() && pattern[j] == '*') {
    ++j;
  }
  return j == pattern.size();
}

} // namespace mycorrizal::resp
