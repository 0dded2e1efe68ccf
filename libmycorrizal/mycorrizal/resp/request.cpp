// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/resp/request.hpp"

#include "mycorrizal/config_check.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

#if defined(__SANITIZE_ADDRESS__)
#  define MYCORRIZAL_RESP_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define MYCORRIZAL_RESP_ASAN 1
#  endif
#endif
#ifdef MYCORRIZAL_RESP_ASAN
#  include <sanitizer/asan_interface.h>
#endif

namespace mycorrizal::resp {

namespace {

/// Under AddressSanitizer, the buffer's bytes past the input are poisoned:
/// reading beyond what arrived is reported like a read past an allocation
/// (the fuzz target relies on it). Freeing poisoned memory is fine: the
/// allocator re-poisons the whole block.
void poison(const char* first, [[maybe_unused]] size_t n) noexcept {
#ifdef MYCORRIZAL_RESP_ASAN
  if (first != nullptr && n > 0) {
    ASAN_POISON_MEMORY_REGION(first, n);
  }
#else
  static_cast<void>(first);
#endif
}

void unpoison(const char* first, [[maybe_unused]] size_t n) noexcept {
#ifdef MYCORRIZAL_RESP_ASAN
  if (first != nullptr && n > 0) {
    ASAN_UNPOISON_MEMORY_REGION(first, n);
  }
#else
  static_cast<void>(first);
#endif
}

/// Smallest buffer the parser allocates.
constexpr size_t min_allocation = 512;

/// Argument slots kept between commands; more are released.
constexpr size_t retained_args = 1024;

/// Longest decimal number Redis's string2ll reads (LONG_STR_SIZE - 1).
constexpr size_t max_number_length = 20;

/// Parses a strict decimal integer as Redis's string2ll does: an optional
/// `-`, then `0` alone or digits without a leading zero, no other bytes,
/// fewer than 21 characters, no overflow. `-0` is not a number.
bool parse_integer(const char* s, size_t n, int64_t& out) noexcept {
  if (n == 0 || n > max_number_length) {
    return false;
  }
  if (n == 1 && s[0] == '0') {
    out = 0;
    return true;
  }
  size_t i = 0;
  bool negative = s[0] == '-';
  if (negative) {
    ++i;
  }
  if (i == n || s[i] < '1' || s[i] > '9') {
    return false;
  }
  uint64_t value = 0;
  constexpr uint64_t max_u64 = std::numeric_limits<uint64_t>::max();
  for (; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    auto digit = static_cast<uint64_t>(s[i] - '0');
    if (value > max_u64 / 10 || value * 10 > max_u64 - digit) {
      return false;
    }
    value = value * 10 + digit;
  }
  constexpr auto max_i64
    = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (negative) {
    if (value > max_i64 + 1) {
      return false;
    }
    // Two's complement: -value, also for INT64_MIN.
    out = static_cast<int64_t>(~value + 1);
  } else {
    if (value > max_i64) {
      return false;
    }
    out = static_cast<int64_t>(value);
  }
  return true;
}

/// isspace() in the C locale.
constexpr bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f'
         || c == '\r';
}

constexpr bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
         || (c >= 'A' && c <= 'F');
}

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return c - 'A' + 10;
}

/// Splits the inline line [first, last) into arguments the way Redis's
/// sdssplitargs does, unescaping in place: an argument never needs more
/// bytes than its source, so the writer never overtakes the reader. The line
/// holds no NUL (the line search stops at one), so its end plays the part
/// of sdssplitargs' terminating NUL. Appends the arguments to `out`.
/// @returns false on unbalanced quotes or a closing quote followed by
///   something other than a blank.
bool split_inline(char* first, char* last, std::vector<std::string_view>& out) {
  auto at = [last](const char* p) noexcept {
    return p < last ? *p : '\0';
  };
  char* p = first; // reads
  char* w = first; // writes, never ahead of p
  for (;;) {
    while (p < last && is_blank(*p)) {
      ++p;
    }
    if (p == last) {
      return true;
    }
    char* arg = w;
    enum class quoting { none, dq, sq } mode = quoting::none;
    for (bool done = false; !done;) {
      char c = at(p);
      if (mode == quoting::dq) {
        if (c == '\\' && at(p + 1) == 'x' && is_hex(at(p + 2))
            && is_hex(at(p + 3))) {
          *w++ = static_cast<char>(hex_value(p[2]) * 16 + hex_value(p[3]));
          p += 3;
        } else if (c == '\\' && at(p + 1) != '\0') {
          ++p;
          switch (*p) {
            case 'n': *w++ = '\n'; break;
            case 'r': *w++ = '\r'; break;
            case 't': *w++ = '\t'; break;
            case 'b': *w++ = '\b'; break;
            case 'a': *w++ = '\a'; break;
            default: *w++ = *p; break;
          }
        } else if (c == '"') {
          if (at(p + 1) != '\0' && !is_blank(at(p + 1))) {
            return false;
          }
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          *w++ = c;
        }
      } else if (mode == quoting::sq) {
        if (c == '\\' && at(p + 1) == '\'') {
          ++p;
          *w++ = '\'';
        } else if (c == '\'') {
          if (at(p + 1) != '\0' && !is_blank(at(p + 1))) {
            return false;
          }
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          *w++ = c;
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case '\0': done = true; break;
          case '"': mode = quoting::dq; break;
          case '\'': mode = quoting::sq; break;
          default: *w++ = c; break;
        }
      }
      if (p < last) {
        ++p;
      }
    }
    out.emplace_back(arg, static_cast<size_t>(w - arg));
  }
}

request_parser::result need_more() {
  return std::optional<command>{};
}

request_parser::result found(command x) {
  return std::optional<command>{x};
}

} // namespace

// -- protocol errors ----------------------------------------------------------

std::string protocol_error::expected_dollar(char got) {
  std::string result = "Protocol error: expected '$', got '";
  result += got == '\r' || got == '\n' ? ' ' : got;
  result += '\'';
  return result;
}

// -- limits and commands ------------------------------------------------------

expected<void> request_limits::validate() const {
  constexpr auto max_i64 = std::numeric_limits<int64_t>::max();
  config_check check{"resp"};
  check.in_range("max_bulk_length", max_bulk_length, int64_t{1} << 20, max_i64);
  check.in_range("max_multibulk_length", max_multibulk_length, int64_t{1},
                 max_i64);
  check.in_range("max_inline_size", max_inline_size, size_t{1},
                 size_t{1} << 30);
  check.require("max_query_buffer",
                max_query_buffer == 0
                  || (max_query_buffer >= (size_t{1} << 20)
                      && max_query_buffer <= static_cast<size_t>(max_i64)),
                "must be 0 or in [1048576, 9223372036854775807]");
  check.in_range("max_unauthenticated_multibulk_length",
                 max_unauthenticated_multibulk_length, int64_t{0}, max_i64);
  check.in_range("max_unauthenticated_bulk_length",
                 max_unauthenticated_bulk_length, int64_t{0}, max_i64);
  return std::move(check).result();
}

std::vector<std::string> command::to_strings() const {
  std::vector<std::string> result;
  result.reserve(args.size());
  for (auto arg : args) {
    result.emplace_back(arg);
  }
  return result;
}

// -- request_parser -----------------------------------------------------------

request_parser::request_parser(request_limits limits) : limits_(limits) {
  // nop
}

std::span<char> request_parser::prepare(size_t n) {
  if (state_ == state::idle) {
    begin_ = pos_; // the last command's bytes are consumed
  }
  size_t held = size_ - begin_;
  if (held == 0) {
    size_ = begin_ = pos_ = scan_ = 0;
  }
  if (cap_ > retained_capacity && cap_ > 3 * (held + n)) {
    // Much more than needed, e.g. after a large bulk string: shrink.
    reallocate(growth_target(held, n));
  } else if (cap_ - size_ < n) {
    if (held + n <= cap_ && begin_ >= held) {
      // Moving costs at most what was consumed since the last move.
      compact();
    } else {
      reallocate(growth_target(held, n));
    }
  }
  unpoison(data_.get() + size_, cap_ - size_);
  return {data_.get() + size_, cap_ - size_};
}

expected<void> request_parser::commit(size_t n) {
  if (state_ == state::failed) {
    return unexpected{error_};
  }
  assert(n <= cap_ - size_);
  size_ += std::min(n, cap_ - size_);
  poison(data_.get() + size_, cap_ - size_);
  if (limits_.max_query_buffer != 0
      && query_buffer_length() > limits_.max_query_buffer) {
    static_cast<void>(
      fail(errc::too_large, std::string{query_buffer_exceeded}));
    return unexpected{error_};
  }
  return {};
}

expected<void> request_parser::append(std::string_view bytes) {
  if (state_ == state::failed) {
    return unexpected{error_};
  }
  auto space = prepare(bytes.size());
  if (!bytes.empty()) {
    std::memcpy(space.data(), bytes.data(), bytes.size());
  }
  return commit(bytes.size());
}

request_parser::result request_parser::next() {
  for (;;) {
    switch (state_) {
      case state::failed: return unexpected{error_};
      case state::idle: {
        begin_ = pos_;
        if (views_.capacity() > retained_args) {
          views_ = {};
        }
        if (args_.capacity() > retained_args) {
          args_ = {};
        }
        if (pos_ == size_) {
          return need_more();
        }
        scan_ = pos_;
        stuck_ = false;
        state_ = data_[pos_] == '*' ? state::count_line : state::inline_line;
        break;
      }
      case state::inline_line: {
        switch (find_line_end('\n')) {
          case scan::more: return need_more();
          case scan::too_big:
            return fail(errc::malformed_frame,
                        std::string{protocol_error::too_big_inline});
          case scan::found: break;
        }
        size_t newline = scan_;
        size_t end = newline;
        if (end > pos_ && data_[end - 1] == '\r') {
          --end;
        }
        views_.clear();
        if (!split_inline(data_.get() + pos_, data_.get() + end, views_)) {
          return fail(errc::malformed_frame,
                      std::string{protocol_error::unbalanced_quotes});
        }
        pos_ = newline + 1;
        state_ = state::idle;
        if (!views_.empty()) {
          return found(command{views_, request_form::inline_line});
        }
        break; // a blank line: no command
      }
      case state::count_line: {
        switch (find_line_end('\r')) {
          case scan::more: return need_more();
          case scan::too_big:
            return fail(errc::malformed_frame,
                        std::string{protocol_error::too_big_mbulk_count});
          case scan::found: break;
        }
        size_t cr = scan_;
        if (cr + 1 >= size_) {
          return need_more(); // the byte after `\r` (unchecked) is missing
        }
        int64_t count = 0;
        if (!parse_integer(data_.get() + pos_ + 1, cr - pos_ - 1, count)
            || count > limits_.max_multibulk_length) {
          return fail(errc::malformed_frame,
                      std::string{protocol_error::invalid_multibulk_length});
        }
        if (auth_required_
            && count > limits_.max_unauthenticated_multibulk_length) {
          return fail(
            errc::malformed_frame,
            std::string{protocol_error::unauthenticated_multibulk_length});
        }
        pos_ = cr + 2;
        if (count <= 0) {
          state_ = state::idle; // `*0`, `*-1`: no command
          break;
        }
        remaining_ = count;
        args_.clear();
        scan_ = pos_;
        stuck_ = false;
        state_ = state::bulk_line;
        break;
      }
      case state::bulk_line: {
        switch (find_line_end('\r')) {
          case scan::more: return need_more();
          case scan::too_big:
            return fail(errc::malformed_frame,
                        std::string{protocol_error::too_big_bulk_count});
          case scan::found: break;
        }
        size_t cr = scan_;
        if (cr + 1 >= size_) {
          return need_more();
        }
        if (data_[pos_] != '$') {
          return fail(errc::malformed_frame,
                      protocol_error::expected_dollar(data_[pos_]));
        }
        int64_t length = 0;
        if (!parse_integer(data_.get() + pos_ + 1, cr - pos_ - 1, length)
            || length < 0 || length > limits_.max_bulk_length) {
          return fail(errc::malformed_frame,
                      std::string{protocol_error::invalid_bulk_length});
        }
        if (auth_required_
            && length > limits_.max_unauthenticated_bulk_length) {
          return fail(errc::malformed_frame,
                      std::string{protocol_error::unauthenticated_bulk_length});
        }
        pos_ = cr + 2;
        bulk_length_ = length;
        state_ = state::bulk_body;
        break;
      }
      case state::bulk_body: {
        // The payload and two bytes Redis skips without looking at them.
        auto need = static_cast<size_t>(bulk_length_) + 2;
        if (size_ - pos_ < need) {
          return need_more();
        }
        args_.emplace_back(pos_ - begin_, static_cast<size_t>(bulk_length_));
        pos_ += need;
        if (--remaining_ > 0) {
          scan_ = pos_;
          stuck_ = false;
          state_ = state::bulk_line;
          break;
        }
        publish_args();
        state_ = state::idle;
        return found(command{views_, request_form::multibulk});
      }
    }
  }
}

// -- private ------------------------------------------------------------------

request_parser::scan request_parser::find_line_end(char term) {
  // Redis searches with strchr, which stops at a NUL, and fails a line once
  // more than max_inline_size bytes are pending without its end found. When
  // bytes arrive one by one, that is: the end must be among the line's
  // first max_inline_size + 1 bytes, before any NUL.
  auto max = limits_.max_inline_size;
  size_t limit = size_ - pos_ > max ? pos_ + max + 1 : size_;
  if (!stuck_ && scan_ < limit) {
    const char* first = data_.get() + scan_;
    size_t length = limit - scan_;
    auto* hit = static_cast<const char*>(std::memchr(first, term, length));
    size_t upto = hit ? static_cast<size_t>(hit - first) : length;
    if (std::memchr(first, '\0', upto) != nullptr) {
      stuck_ = true; // the line's end stays hidden for good
    } else if (hit) {
      scan_ += upto;
      return scan::found;
    } else {
      scan_ = limit;
    }
  }
  return size_ - pos_ > max ? scan::too_big : scan::more;
}

request_parser::result request_parser::fail(errc code, std::string text) {
  state_ = state::failed;
  error_ = error{code, std::move(text)};
  // Nothing is parsed any more: release the memory.
  data_.reset();
  size_ = cap_ = begin_ = pos_ = scan_ = 0;
  args_ = {};
  views_ = {};
  return unexpected{error_};
}

size_t request_parser::growth_target(size_t held, size_t n) const noexcept {
  size_t target = held + held / 2;
  if (state_ == state::bulk_body) {
    // Not past the end of the bulk string being received.
    auto end = pos_ - begin_ + static_cast<size_t>(bulk_length_) + 2;
    target = std::min(target, end);
  }
  return std::max({target, held + n, min_allocation});
}

void request_parser::reallocate(size_t new_cap) {
  size_t held = size_ - begin_;
  assert(new_cap >= held);
  std::unique_ptr<char[]> fresh{new char[new_cap]};
  if (held > 0) {
    std::memcpy(fresh.get(), data_.get() + begin_, held);
  }
  data_ = std::move(fresh);
  cap_ = new_cap;
  pos_ -= begin_;
  scan_ = scan_ >= begin_ ? scan_ - begin_ : 0;
  size_ = held;
  begin_ = 0;
  poison(data_.get() + size_, cap_ - size_);
}

void request_parser::compact() {
  size_t held = size_ - begin_;
  if (begin_ == 0) {
    return;
  }
  if (held > 0) {
    std::memmove(data_.get(), data_.get() + begin_, held);
  }
  pos_ -= begin_;
  scan_ = scan_ >= begin_ ? scan_ - begin_ : 0;
  size_ = held;
  begin_ = 0;
  poison(data_.get() + size_, cap_ - size_);
}

void request_parser::publish_args() {
  views_.clear();
  views_.reserve(args_.size());
  const char* base = data_.get() + begin_;
  for (auto [offset, length] : args_) {
    views_.emplace_back(base + offset, length);
  }
}

} // namespace mycorrizal::resp
