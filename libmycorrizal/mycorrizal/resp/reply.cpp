// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/resp/reply.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

namespace mycorrizal::resp {

namespace {

/// Formats `x` as C's `%.17g` does (what Redis 7.0's addReplyDouble
/// writes), returning the length written into `buf`.
size_t format_double(char (&buf)[32], double x) noexcept {
  std::string_view text;
  if (std::isnan(x)) {
    text = std::signbit(x) ? "-nan" : "nan";
  } else if (std::isinf(x)) {
    text = x > 0 ? "inf" : "-inf";
  } else {
    auto res = std::to_chars(buf, buf + sizeof(buf), x,
                             std::chars_format::general, 17);
    return static_cast<size_t>(res.ptr - buf);
  }
  text.copy(buf, text.size());
  return text.size();
}

} // namespace

// -- RESP2 types --------------------------------------------------------------

reply_writer& reply_writer::simple_string(std::string_view text) {
  line('+', text);
  return *this;
}

reply_writer& reply_writer::error(std::string_view text) {
  // As Redis's addReplyErrorFormat: CR and LF at either end go, those
  // inside become spaces (`line`).
  auto first = text.find_first_not_of("\r\n");
  if (first == std::string_view::npos) {
    text = {};
  } else {
    text = text.substr(first, text.find_last_not_of("\r\n") - first + 1);
  }
  line('-', text);
  return *this;
}

reply_writer& reply_writer::integer(int64_t x) {
  header(':', x);
  return *this;
}

reply_writer& reply_writer::bulk_string(std::string_view bytes) {
  // `$<len>\r\n<bytes>\r\n` in one allocation, not one per append (the
  // buffer still grows geometrically: reserve doubles when it must grow).
  buf_.reserve(buf_.size() + bytes.size() + 25);
  header('$', static_cast<int64_t>(bytes.size()));
  buf_.append(bytes);
  buf_.append("\r\n", 2);
  return *this;
}

reply_writer& reply_writer::bulk_string(std::span<const std::byte> bytes) {
  return bulk_string(std::string_view{
    reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

reply_writer& reply_writer::bulk_integer(int64_t x) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), x);
  return bulk_string(std::string_view{buf, static_cast<size_t>(res.ptr - buf)});
}

reply_writer& reply_writer::array(size_t n) {
  header('*', static_cast<int64_t>(n));
  return *this;
}

// -- RESP3 types --------------------------------------------------------------

reply_writer& reply_writer::null() {
  if (resp3()) {
    buf_.append("_\r\n", 3);
  } else {
    buf_.append("$-1\r\n", 5);
  }
  return *this;
}

reply_writer& reply_writer::null_array() {
  if (resp3()) {
    buf_.append("_\r\n", 3);
  } else {
    buf_.append("*-1\r\n", 5);
  }
  return *this;
}

reply_writer& reply_writer::map(size_t n) {
  if (resp3()) {
    header('%', static_cast<int64_t>(n));
  } else {
    header('*', static_cast<int64_t>(2 * n));
  }
  return *this;
}

reply_writer& reply_writer::set(size_t n) {
  header(resp3() ? '~' : '*', static_cast<int64_t>(n));
  return *this;
}

reply_writer& reply_writer::push(size_t n) {
  header(resp3() ? '>' : '*', static_cast<int64_t>(n));
  return *this;
}

reply_writer& reply_writer::double_value(double x) {
  char buf[32];
  auto n = format_double(buf, x);
  std::string_view text{buf, n};
  if (!resp3()) {
    return bulk_string(text);
  }
  buf_ += ',';
  buf_.append(text);
  buf_.append("\r\n", 2);
  return *this;
}

reply_writer& reply_writer::boolean(bool x) {
  if (resp3()) {
    buf_.append(x ? "#t\r\n" : "#f\r\n", 4);
  } else {
    buf_.append(x ? ":1\r\n" : ":0\r\n", 4);
  }
  return *this;
}

reply_writer& reply_writer::big_number(std::string_view digits) {
  if (resp3()) {
    line('(', digits);
    return *this;
  }
  return bulk_string(digits);
}

reply_writer& reply_writer::verbatim(std::string_view text,
                                     std::string_view format) {
  if (!resp3()) {
    return bulk_string(text);
  }
  header('=', static_cast<int64_t>(text.size() + 4));
  for (size_t i = 0; i < 3; ++i) {
    buf_ += i < format.size() ? format[i] : ' ';
  }
  buf_ += ':';
  buf_.append(text);
  buf_.append("\r\n", 2);
  return *this;
}

// -- private ------------------------------------------------------------------

void reply_writer::header(char prefix, int64_t n) {
  char buf[24];
  buf[0] = prefix;
  auto res = std::to_chars(buf + 1, buf + sizeof(buf) - 2, n);
  res.ptr[0] = '\r';
  res.ptr[1] = '\n';
  buf_.append(buf, static_cast<size_t>(res.ptr + 2 - buf));
}

void reply_writer::line(char prefix, std::string_view text) {
  auto start = buf_.size() + 1;
  buf_ += prefix;
  buf_.append(text);
  if (text.find_first_of("\r\n") != std::string_view::npos) {
    for (auto i = start; i < buf_.size(); ++i) {
      if (buf_[i] == '\r' || buf_[i] == '\n') {
        buf_[i] = ' ';
      }
    }
  }
  buf_.append("\r\n", 2);
}

} // namespace mycorrizal::resp
