// SPDX-License-Identifier: Apache-2.0
// Test helpers for the RESP request parser: feed input in given pieces and
// collect what comes out (commands copied out of the parser's buffer, the
// error, what stays buffered).
#pragma once

#include "mycorrizal/resp/request.hpp"

#include <algorithm>
#include <cstddef>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mycorrizal::test::resp {

using args = std::vector<std::string>;

/// Everything a parser produced for one input.
struct outcome {
  std::vector<args> commands;
  /// errc::none if no error.
  errc code = errc::none;
  std::string error_text;
  size_t buffered = 0;

  friend bool operator==(const outcome&, const outcome&) = default;

  friend std::ostream& operator<<(std::ostream& out, const outcome& x) {
    out << "{" << x.commands.size() << " commands:";
    for (auto& cmd : x.commands) {
      out << " [";
      for (size_t i = 0; i < cmd.size(); ++i) {
        out << (i > 0 ? " " : "") << '"' << cmd[i] << '"';
      }
      out << "]";
    }
    out << "; error " << to_string(x.code) << " '" << x.error_text
        << "'; buffered " << x.buffered << "}";
    return out;
  }
};

/// Takes every complete command out of `p`; records an error.
inline void drain(mycorrizal::resp::request_parser& p, outcome& out) {
  for (;;) {
    auto cmd = p.next();
    if (!cmd) {
      out.code = cmd.error().code();
      out.error_text = cmd.error().context();
      return;
    }
    if (!*cmd) {
      return;
    }
    out.commands.push_back((*cmd)->to_strings());
  }
}

/// Feeds `input` cut at the (ascending) positions `cuts`, draining the
/// parser after each piece, as a server does after each read.
inline outcome feed_cut(std::string_view input, std::span<const size_t> cuts,
                        mycorrizal::resp::request_limits limits = {}) {
  mycorrizal::resp::request_parser p{limits};
  outcome out;
  size_t from = 0;
  auto piece = [&](size_t to) {
    if (out.code != errc::none) {
      return;
    }
    if (auto ok = p.append(input.substr(from, to - from)); !ok) {
      out.code = ok.error().code();
      out.error_text = ok.error().context();
    } else {
      drain(p, out);
    }
    from = to;
  };
  for (auto cut : cuts) {
    piece(std::min(cut, input.size()));
  }
  piece(input.size());
  out.buffered = p.buffered();
  return out;
}

/// Feeds `input` in one piece.
inline outcome feed(std::string_view input,
                    mycorrizal::resp::request_limits limits = {}) {
  return feed_cut(input, {}, limits);
}

/// Feeds `input` one byte at a time.
inline outcome feed_bytewise(std::string_view input,
                             mycorrizal::resp::request_limits limits = {}) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < input.size(); ++i) {
    cuts.push_back(i);
  }
  return feed_cut(input, cuts, limits);
}

/// An outcome with the given commands, no error and nothing buffered.
inline outcome commands(std::vector<args> xs) {
  return outcome{std::move(xs), errc::none, {}, 0};
}

/// An outcome that ends in a protocol error after the given commands.
inline outcome fails_with(std::string_view text,
                          std::vector<args> before = {}) {
  return outcome{std::move(before), errc::malformed_frame, std::string{text},
                 0};
}

/// An outcome that waits for more input with `buffered` bytes held.
inline outcome waiting(size_t buffered, std::vector<args> before = {}) {
  return outcome{std::move(before), errc::none, {}, buffered};
}

/// Builds a multibulk request from its arguments.
inline std::string multibulk(const args& xs) {
  std::string out = "*" + std::to_string(xs.size()) + "\r\n";
  for (auto& x : xs) {
    out += "$" + std::to_string(x.size()) + "\r\n";
    out += x;
    out += "\r\n";
  }
  return out;
}

} // namespace mycorrizal::test::resp
