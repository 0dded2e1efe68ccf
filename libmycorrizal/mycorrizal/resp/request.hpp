// SPDX-License-Identifier: Apache-2.0
// The Redis protocol, client side of the wire: what a client sends to a RESP
// server, and the incremental parser that turns it into commands.
#pragma once

#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// A Redis client sends commands in one of two forms (redis.io, "RESP
/// protocol spec", and Redis 7.0's networking.c, which is our yardstick):
///
/// - **multibulk**: `*<n>\r\n` followed by n bulk strings `$<len>\r\n<len
///   bytes>\r\n`; binary-safe. A count of zero or less (`*0`, `*-1`) is no
///   command and is skipped.
/// - **inline**: any line that does not start with `*`, ended by `\n` (a
///   `\r` before it is dropped), split into arguments like `sdssplitargs`:
///   blanks separate arguments; `"double quotes"` understand `\n \r \t \b \a
///   \\ \" \xHH` (any other escaped character stands for itself); `'single
///   quotes'` understand `\'` only; a closing quote must be followed by a
///   blank or the end of the line; quotes may open inside an argument
///   (`a"b c"` is `ab c`). A line of blanks is no command and is skipped.
///
/// Redis's quirks, kept on purpose so that we accept what Redis accepts:
/// the two bytes after a bulk string's payload and the byte after the `\r`
/// of a count line are skipped unchecked (`$4\r\nPINGxx` is PING); a NUL
/// byte before the end of an inline line or of a count line hides the
/// line's end, so the request never completes and fails once it outgrows
/// the line limit (with "too big inline request", "too big mbulk count
/// string" or "too big bulk count string"); numbers are strict decimal (no
/// `+`, no leading zeros, no `-0`, fewer than 21 characters).
///
/// Redis checks line lengths once per socket read, so its verdict on a long
/// line depends on how the bytes arrive. The parser decides as Redis does
/// when every byte arrives on its own, which makes its results independent
/// of the split: it accepts a request only if Redis accepts it however its
/// bytes arrive. Concretely, an inline request fails unless its `\n` is
/// among its first `max_inline_size + 1` bytes, a count line unless its `\r`
/// is. (A Redis that reads a 70000-byte inline line at once runs it; a count
/// line that long gets "invalid multibulk length" there and "too big mbulk
/// count string" here.)
namespace mycorrizal::resp {

/// The texts of the protocol errors, exactly as Redis 7.0 words them. A
/// server answers a parse error with `-ERR <text>\r\n` and then closes the
/// connection (Redis: CLIENT_CLOSE_AFTER_REPLY).
namespace protocol_error {

inline constexpr std::string_view too_big_inline
  = "Protocol error: too big inline request";
inline constexpr std::string_view unbalanced_quotes
  = "Protocol error: unbalanced quotes in request";
inline constexpr std::string_view too_big_mbulk_count
  = "Protocol error: too big mbulk count string";
inline constexpr std::string_view invalid_multibulk_length
  = "Protocol error: invalid multibulk length";
inline constexpr std::string_view unauthenticated_multibulk_length
  = "Protocol error: unauthenticated multibulk length";
inline constexpr std::string_view too_big_bulk_count
  = "Protocol error: too big bulk count string";
inline constexpr std::string_view invalid_bulk_length
  = "Protocol error: invalid bulk length";
inline constexpr std::string_view unauthenticated_bulk_length
  = "Protocol error: unauthenticated bulk length";

/// "Protocol error: expected '$', got '<c>'", with `\r` and `\n` shown as a
/// space (Redis maps them so that the error line stays one line).
std::string expected_dollar(char got);

} // namespace protocol_error

/// The context of the error a parser reports once its client's query buffer
/// outgrew `max_query_buffer` (Redis logs these words and closes the
/// connection without a reply).
inline constexpr std::string_view query_buffer_exceeded
  = "Closing client that reached max query buffer length";

/// What the parser accepts. The defaults are Redis 7.0's.
struct request_limits {
  /// proto-max-bulk-len: longest bulk string of a multibulk request.
  /// Range: [1 MiB, INT64_MAX] (Redis's).
  int64_t max_bulk_length = int64_t{512} << 20;
  /// Most arguments of a multibulk request (Redis 7.0: INT_MAX; Redis 6
  /// had 1024 * 1024). Range: [1, INT64_MAX].
  int64_t max_multibulk_length = 2147483647;
  /// PROTO_INLINE_MAX_SIZE: longest inline request, and longest count line
  /// (`*<n>` or `$<len>`), in bytes. Fixed in Redis. Range: [1, 1 GiB].
  size_t max_inline_size = size_t{64} << 10;
  /// client-query-buffer-limit: most bytes a client may have pending, as
  /// Redis counts its query buffer (from the start of the argument or line
  /// being parsed; the finished arguments of an unfinished command do not
  /// count). Checked after every append, as Redis checks after every read.
  /// 0 disables the check. Range: 0 or [1 MiB, INT64_MAX] (Redis's).
  size_t max_query_buffer = size_t{1} << 30;
  /// Most arguments of a multibulk request while authentication is
  /// required (Redis: 10).
  int64_t max_unauthenticated_multibulk_length = 10;
  /// Longest bulk string while authentication is required (Redis: 16384).
  int64_t max_unauthenticated_bulk_length = 16384;

  /// Redis's defaults (the values above).
  static request_limits defaults() noexcept {
    return {};
  }

  /// @returns `errc::invalid_config` naming every field out of range.
  expected<void> validate() const;
};

/// How a command was written.
enum class request_form : uint8_t {
  /// `*<n>\r\n$<len>\r\n...`
  multibulk,
  /// A text line.
  inline_line,
};

/// One complete command. Its arguments view the parser's buffer (no copy):
/// they stay valid until the next call of a non-const member of the parser
/// that returned them. Never empty; arguments may be empty and may hold any
/// bytes.
struct command {
  std::span<const std::string_view> args;
  request_form form = request_form::multibulk;

  /// Copies the arguments.
  std::vector<std::string> to_strings() const;
};

/// Parses what one client sends, as redis-server does: bytes go in as they
/// arrive from the socket, split anywhere, and complete commands come out
/// one by one.
///
/// A server's read loop:
/// ~~~
/// auto space = parser.prepare(16 * 1024);      // read straight into it
/// auto n = ::read(fd, space.data(), space.size());
/// if (auto ok = parser.commit(n); !ok) { close(); }   // query buffer limit
/// for (;;) {
///   auto cmd = parser.next();
///   if (!cmd) { reply("-ERR " + cmd.error().context()); close_after_reply(); }
///   if (!*cmd) { break; }                      // needs more bytes
///   execute((*cmd)->args);                     // views into the buffer
/// }
/// ~~~
/// Parsing is lazy: `next` parses only up to the end of the command it
/// returns, so a command that changes how the rest is parsed (AUTH, which
/// lifts the unauthenticated limits) takes effect before the next one is
/// parsed, as in Redis.
///
/// Memory: the parser holds the bytes that arrived and were not consumed,
/// in one buffer that grows only as bytes arrive (an announced bulk length
/// reserves nothing: `$536870912\r\n` costs its 13 bytes). After `prepare(n)`
/// the buffer's capacity is at most `max(retained_capacity, 3 * (buffered()
/// + n))`, and it never grows past the end of a bulk string being received
/// unless more bytes are prepared.
///
/// Errors are sticky: after a protocol error the parser is dead (Redis
/// replies with the error and closes the connection) and every later call
/// returns the same error.
class request_parser {
public:
  /// A command, "need more bytes", or a protocol error.
  using result = expected<std::optional<command>>;

  /// Capacity the buffer keeps while it is empty; a larger one is released.
  static constexpr size_t retained_capacity = size_t{16} << 10;

  explicit request_parser(request_limits limits = request_limits::defaults());

  request_parser(request_parser&&) noexcept = default;
  request_parser& operator=(request_parser&&) noexcept = default;
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;
  ~request_parser() = default;

  // -- input ------------------------------------------------------------------

  /// Returns writable space for at least `n` more bytes at the end of the
  /// buffer (more if the buffer has it); `commit` adds what was written.
  /// Invalidates the views of the last command.
  std::span<char> prepare(size_t n);

  /// Adds the first `n` bytes of the space `prepare` returned (at most its
  /// size) to the input.
  /// @returns the parser's error if it failed before (the bytes are
  ///   dropped), or `errc::too_large` if the pending input now exceeds
  ///   `max_query_buffer` (close the connection without a reply).
  expected<void> commit(size_t n);

  /// Copies `bytes` into the input: `prepare`, copy, `commit`.
  expected<void> append(std::string_view bytes);

  // -- output -----------------------------------------------------------------

  /// Parses the next command.
  /// @returns a command; `std::nullopt` when the input holds no complete
  ///   command yet; or `errc::malformed_frame` with one of the
  ///   `protocol_error` texts as context; or the sticky error of an earlier
  ///   call (also `errc::too_large` from `commit`).
  result next();

  // -- properties -------------------------------------------------------------

  /// Whether the client still has to authenticate: while it does, longer
  /// requests fail with the "unauthenticated" errors. Off by default; a
  /// server turns it on for a new connection when a password is set and off
  /// once AUTH or HELLO succeeded.
  bool auth_required() const noexcept {
    return auth_required_;
  }

  void auth_required(bool x) noexcept {
    auth_required_ = x;
  }

  /// Bytes held and not consumed: the unfinished command's and what
  /// follows it.
  size_t buffered() const noexcept {
    return size_ - (state_ == state::idle ? pos_ : begin_);
  }

  /// Bytes pending as Redis counts its query buffer: from the start of the
  /// argument or line being parsed to the end of the input.
  size_t query_buffer_length() const noexcept {
    return size_ - pos_;
  }

  /// Bytes allocated for the buffer.
  size_t capacity() const noexcept {
    return cap_;
  }

  /// Whether the parser failed (and is dead).
  bool failed() const noexcept {
    return state_ == state::failed;
  }

  const request_limits& limits() const noexcept {
    return limits_;
  }

private:
  enum class state : uint8_t {
    /// Between commands.
    idle,
    /// In an inline line, looking for its `\n`.
    inline_line,
    /// In `*<n>\r`, looking for its `\r`.
    count_line,
    /// In `$<len>\r`, looking for its `\r`.
    bulk_line,
    /// In a bulk string's payload and its two trailing bytes.
    bulk_body,
    /// Dead after an error.
    failed,
  };

  enum class scan : uint8_t { found, more, too_big };

  /// Looks for `term` in the line that starts at `pos_`; on `found`,
  /// `scan_` is its position.
  scan find_line_end(char term);

  /// Records `code` with `text` as the sticky error and returns it.
  result fail(errc code, std::string text);

  /// Moves the unconsumed bytes into a buffer of `new_cap` bytes.
  void reallocate(size_t new_cap);

  /// The capacity to grow to for `n` more bytes.
  size_t growth_target(size_t held, size_t n) const noexcept;

  /// Moves the unconsumed bytes to the front of the buffer.
  void compact();

  /// Builds `views_` from `args_`.
  void publish_args();

  request_limits limits_;
  bool auth_required_ = false;
  state state_ = state::idle;
  /// The last line search found a NUL before the line's end.
  bool stuck_ = false;

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t cap_ = 0;
  /// Start of the command being parsed (or just returned).
  size_t begin_ = 0;
  /// Start of the element (line, or bulk payload) being parsed.
  size_t pos_ = 0;
  /// Where the line search goes on.
  size_t scan_ = 0;
  /// Arguments still to come, and the announced length of the current one.
  int64_t remaining_ = 0;
  int64_t bulk_length_ = 0;
  /// The finished arguments of the current multibulk command, as (offset
  /// from `begin_`, length).
  std::vector<std::pair<size_t, size_t>> args_;
  std::vector<std::string_view> views_;
  error error_;
};

} // namespace mycorrizal::resp
