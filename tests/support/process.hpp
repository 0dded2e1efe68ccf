// SPDX-License-Identifier: Apache-2.0
// Test helper: a child process with line I/O and captured stderr.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mycorrizal::test {

/// How a child process ended.
struct exit_status {
  /// True if the child called exit(); false if a signal killed it.
  bool exited = false;
  /// The exit code if `exited`, otherwise the signal number.
  int value = 0;

  static exit_status code(int value) {
    return {true, value};
  }

  static exit_status signal(int value) {
    return {false, value};
  }

  friend bool operator==(const exit_status&, const exit_status&) = default;
};

/// Renders an exit status as "exit 0" or "signal 9 (Killed)".
std::string to_string(const exit_status& status);

/// Parameters of `process`.
struct process_options {
  /// Program and arguments. `argv[0]` must be a path (it is not looked up in
  /// PATH).
  std::vector<std::string> argv;
  /// Environment additions; an entry replaces a variable of the same name
  /// inherited from the test process.
  std::vector<std::pair<std::string, std::string>> env;
  /// Name used in failure messages; defaults to argv[0].
  std::string label;
};

/// A child process for system tests.
///
/// - stdin is a socket (writes never raise SIGPIPE): `write_line`,
///   `close_stdin`.
/// - stdout is a pipe, read line by line with deadlines. Every line read is
///   kept in `lines()`, so a wait can match a line that arrived during an
///   earlier wait.
/// - stderr goes to an anonymous in-memory file, readable at any time with
///   `stderr_text()` for failure messages. The child never blocks on it.
/// - The child gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the test
///   process; the destructor kills it with SIGKILL and reaps it. All
///   descriptors are O_CLOEXEC; the child inherits only 0, 1 and 2.
///
/// Not thread-safe: one test thread drives one process.
class process {
public:
  using clock = std::chrono::steady_clock;

  /// Result of `read_line`.
  enum class read_status { line, timeout, eof };

  /// Result of `wait_for_line`: the matching line, or a failure message.
  struct wait_result {
    /// The matching line; empty if none matched before the deadline or EOF.
    std::optional<std::string> line;
    /// Index of the line in `lines()` if it matched.
    std::size_t index = 0;
    /// Why nothing matched, with every stdout line seen so far and the tail
    /// of stderr.
    std::string error;

    explicit operator bool() const noexcept {
      return line.has_value();
    }
  };

  /// Starts the child. Throws `std::system_error` if it cannot be started
  /// (including exec failures, which are reported by the child).
  explicit process(process_options options);

  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Kills (SIGKILL) and reaps the child if it is still running.
  ~process();

  /// The child's process id.
  pid_t pid() const noexcept {
    return pid_;
  }

  /// The label used in messages.
  const std::string& label() const noexcept {
    return label_;
  }

  // -- stdin ------------------------------------------------------------------

  /// Writes `line` plus a newline. Returns false if the child closed stdin
  /// or stdin was already closed here.
  bool write_line(std::string_view line);

  /// Closes the child's stdin (it reads EOF).
  void close_stdin();

  // -- stdout -----------------------------------------------------------------

  /// Reads the next line not read yet (without the newline), waiting until
  /// `deadline`. At EOF a trailing unterminated line is returned first.
  std::pair<read_status, std::string> read_line(clock::time_point deadline);

  /// Returns the first line at index `from` or later in `lines()` that
  /// satisfies `pred`, reading more lines until `deadline` if needed.
  wait_result wait_for_line(const std::function<bool(std::string_view)>& pred,
                            clock::time_point deadline, std::size_t from = 0);

  /// Every stdout line read so far, in order.
  const std::vector<std::string>& lines() const noexcept {
    return lines_;
  }

  /// True once stdout reached EOF.
  bool stdout_closed() const noexcept {
    return stdout_fd_ < 0;
  }

  // -- stderr -----------------------------------------------------------------

  /// Everything the child wrote to stderr so far.
  std::string stderr_text() const;

  /// The last `max_lines` lines of stderr.
  std::string stderr_tail(std::size_t max_lines = 40) const;

  /// A report for failure messages: stdout lines seen plus the stderr tail.
  std::string describe() const;

  // -- lifetime ---------------------------------------------------------------

  /// Sends `sig` to the child unless it has been reaped.
  void signal(int sig);

  /// Waits until the child exits or `deadline` passes. Returns the status,
  /// or nothing on timeout. After the first success it returns the same
  /// status again.
  std::optional<exit_status> wait(clock::time_point deadline);

  /// The status if the child has been reaped.
  std::optional<exit_status> status() const noexcept {
    return status_;
  }

private:
  bool fill(clock::time_point deadline);
  bool try_reap();
  void close_fd(int& fd) noexcept;

  std::string label_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int pidfd_ = -1;
  std::string buffer_;
  std::size_t next_unread_ = 0;
  std::vector<std::string> lines_;
  std::optional<exit_status> status_;
};

} // namespace mycorrizal::test
