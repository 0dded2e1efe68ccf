// SPDX-License-Identifier: Apache-2.0
// The Redis protocol, server side of the wire: encoding replies in RESP2 or
// RESP3.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

/// Every reply is a type byte, a payload and `\r\n`; aggregates announce
/// their element count and the elements follow. RESP2 knows simple strings
/// `+`, errors `-`, integers `:`, bulk strings `$` (binary-safe; `$-1` is
/// null) and arrays `*` (`*-1` is a null array). RESP3 (a connection
/// switches with `HELLO 3`) adds null `_`, doubles `,`, booleans `#`, big
/// numbers `(`, verbatim strings `=`, maps `%`, sets `~` and pushes `>`.
///
/// The writer takes the RESP3 view of a reply and writes what Redis 7.0
/// writes for it in the connection's version (networking.c, addReply*):
///
/// | call                | RESP3                   | RESP2                   |
/// |---------------------|-------------------------|-------------------------|
/// | `null()`            | `_`                     | `$-1` (null bulk)       |
/// | `null_array()`      | `_`                     | `*-1`                   |
/// | `map(n)`            | `%n`                    | `*2n` (keys and values) |
/// | `set(n)`            | `~n`                    | `*n`                    |
/// | `push(n)`           | `>n`                    | `*n` (as pub/sub does)  |
/// | `double_value(d)`   | `,<d>`                  | bulk string `<d>`       |
/// | `boolean(b)`        | `#t` / `#f`             | `:1` / `:0`             |
/// | `big_number(s)`     | `(s`                    | bulk string `s`         |
/// | `verbatim(s, fmt)`  | `=<n>` `fmt:s`          | bulk string `s`         |
///
/// Doubles are written as C's `%.17g` (Redis 7.0: `0.1` is
/// `0.10000000000000001`, `1.0` is `1`, `1e20` is `1e+20`), infinities as
/// `inf` and `-inf`, NaN as `nan` or `-nan` (glibc's printf, by sign bit).
namespace mycorrizal::resp {

/// The protocol a connection speaks.
enum class protocol_version : uint8_t {
  resp2 = 2,
  resp3 = 3,
};

/// Appends replies to a byte buffer it owns, in the connection's protocol
/// version. Numbers are formatted with `std::to_chars`; nothing allocates
/// but the buffer's growth.
///
/// Simple strings, errors and big numbers are one line on the wire: `\r`
/// and `\n` in them are written as spaces (as Redis does for errors), so
/// that no argument can break the framing. Bulk and verbatim strings are
/// binary-safe.
///
/// Every call returns the writer, so that replies chain:
/// `w.array(2).bulk_string("a").integer(1);`.
class reply_writer {
public:
  explicit reply_writer(protocol_version version = protocol_version::resp2)
      : version_(version) {
    // nop
  }

  /// Writes into `buffer`, emptied first: its room serves again (a
  /// server that keeps the buffer of a reply it sent writes the next
  /// reply without allocating).
  reply_writer(protocol_version version, std::string buffer)
      : version_(version), buf_(std::move(buffer)) {
    buf_.clear();
  }

  // -- properties -------------------------------------------------------------

  protocol_version version() const noexcept {
    return version_;
  }

  /// Switches the protocol (HELLO); replies already written stay as they are.
  void version(protocol_version x) noexcept {
    version_ = x;
  }

  /// The bytes written so far. The caller sends them and erases what was
  /// sent.
  std::string& buffer() noexcept {
    return buf_;
  }

  const std::string& buffer() const noexcept {
    return buf_;
  }

  /// Moves the bytes out, leaving the buffer empty.
  std::string take() noexcept {
    return std::exchange(buf_, std::string{});
  }

  // -- RESP2 types ------------------------------------------------------------

  /// `+<text>\r\n`, e.g. `simple_string("OK")`.
  reply_writer& simple_string(std::string_view text);

  /// `-<text>\r\n`. The text starts with the error code: `error("ERR syntax
  /// error")`, `error("WRONGTYPE Operation against a key holding the wrong
  /// kind of value")`. CR and LF at either end of `text` are left out and
  /// those inside become spaces, as Redis does with the arguments its
  /// errors quote.
  reply_writer& error(std::string_view text);

  /// `:<x>\r\n`.
  reply_writer& integer(int64_t x);

  /// `$<n>\r\n<bytes>\r\n`.
  reply_writer& bulk_string(std::string_view bytes);

  reply_writer& bulk_string(std::span<const std::byte> bytes);

  /// A bulk string holding `x` in decimal (Redis's addReplyBulkLongLong).
  reply_writer& bulk_integer(int64_t x);

  /// `*<n>\r\n`; the n elements follow.
  reply_writer& array(size_t n);

  // -- RESP3 types, written as RESP2 when the connection speaks RESP2 ---------

  /// The null reply (RESP2: a null bulk string).
  reply_writer& null();

  /// The null reply where RESP2 has a null array (e.g. a BLPOP timeout).
  reply_writer& null_array();

  /// A map of n pairs; the 2n keys and values follow, alternating.
  reply_writer& map(size_t n);

  /// A set of n elements; the elements follow.
  reply_writer& set(size_t n);

  /// An out-of-band push of n elements (pub/sub messages, invalidations);
  /// the elements follow.
  reply_writer& push(size_t n);

  /// A double (RESP2: a bulk string).
  reply_writer& double_value(double x);

  /// A boolean (RESP2: the integer 1 or 0).
  reply_writer& boolean(bool x);

  /// A big number given in decimal, e.g. `"3492890328409238509324850943850"`
  /// (RESP2: a bulk string).
  reply_writer& big_number(std::string_view digits);

  /// A verbatim string: `=<n+4>\r\n<fmt>:<text>\r\n`, where `fmt` is the
  /// first three characters of `format` padded with spaces (`txt` for plain
  /// text, `mkd` for markdown). RESP2: a bulk string of `text`.
  reply_writer& verbatim(std::string_view text,
                         std::string_view format = "txt");

private:
  bool resp3() const noexcept {
    return version_ == protocol_version::resp3;
  }

  /// `<prefix><n>\r\n`.
  void header(char prefix, int64_t n);

  /// `<prefix><text>\r\n`, with `\r` and `\n` in `text` as spaces.
  void line(char prefix, std::string_view text);

  protocol_version version_;
  std::string buf_;
};

} // namespace mycorrizal::resp
