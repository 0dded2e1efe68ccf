// SPDX-License-Identifier: Apache-2.0
// Test helper: a child process with line I/O and captured stderr.
#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace mycorrizal::test {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

int check(int result, const char* what) {
  if (result < 0) {
    throw_errno(errno, what);
  }
  return result;
}

/// Milliseconds until `deadline` for poll(), rounded up, never negative.
int poll_timeout(process::clock::time_point deadline) {
  auto left = deadline - process::clock::now();
  if (left <= process::clock::duration::zero()) {
    return 0;
  }
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 60'000));
}

exit_status decode(int wstatus) {
  if (WIFEXITED(wstatus)) {
    return exit_status::code(WEXITSTATUS(wstatus));
  }
  return exit_status::signal(WTERMSIG(wstatus));
}

/// The environment for the child: ours, with `extra` added or replaced.
std::vector<std::string>
make_env(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> result;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    std::string_view entry{*p};
    auto name = entry.substr(0, entry.find('='));
    auto replaced = std::any_of(extra.begin(), extra.end(),
                                [&](const auto& kv) {
                                  return kv.first == name;
                                });
    if (!replaced) {
      result.emplace_back(entry);
    }
  }
  for (const auto& [name, value] : extra) {
    auto& entry = result.emplace_back(name);
    entry += '=';
    entry += value;
  }
  return result;
}

std::vector<char*> c_strings(std::vector<std::string>& strs) {
  std::vector<char*> result;
  result.reserve(strs.size() + 1);
  for (auto& str : strs) {
    result.push_back(str.data());
  }
  result.push_back(nullptr);
  return result;
}

/// In the child after fork(): only async-signal-safe calls until exec.
[[noreturn]] void exec_child(int stdin_fd, int stdout_fd, int stderr_fd,
                             int error_fd, pid_t parent, char* const* argv,
                             char* const* envp) {
  auto fail = [error_fd](int err) {
    auto n = write(error_fd, &err, sizeof(err));
    static_cast<void>(n);
    _exit(127);
  };
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fail(errno);
  }
  if (getppid() != parent) {
    _exit(127); // The parent died before prctl took effect.
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  // dup2 clears O_CLOEXEC on the new descriptor; every other descriptor of
  // ours has it set.
  if (dup2(stdin_fd, STDIN_FILENO) < 0 || dup2(stdout_fd, STDOUT_FILENO) < 0
      || dup2(stderr_fd, STDERR_FILENO) < 0) {
    fail(errno);
  }
  // Descriptors opened elsewhere in the test process without O_CLOEXEC must
  // not leak into the child either; the error pipe is O_CLOEXEC already.
  syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
  execve(argv[0], argv, envp);
  fail(errno);
  _exit(127);
}

} // namespace

std::string to_string(const exit_status& status) {
  if (status.exited) {
    return "exit " + std::to_string(status.value);
  }
  return "signal " + std::to_string(status.value) + " ("
         + strsignal(status.value) + ")";
}

process::process(process_options options)
    : label_(options.label.empty() && !options.argv.empty() ? options.argv[0]
                                                            : options.label) {
  if (options.argv.empty()) {
    throw std::invalid_argument("process: empty argv");
  }
  auto env_strings = make_env(options.env);
  auto argv = c_strings(options.argv);
  auto envp = c_strings(env_strings);

  std::array<int, 2> in{-1, -1};
  std::array<int, 2> out{-1, -1};
  std::array<int, 2> err_pipe{-1, -1};
  int err_file = -1;
  auto close_all = [&] {
    for (int fd :
         {in[0], in[1], out[0], out[1], err_pipe[0], err_pipe[1], err_file}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  };
  try {
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in.data()),
          "socketpair");
    check(pipe2(out.data(), O_CLOEXEC), "pipe2");
    check(pipe2(err_pipe.data(), O_CLOEXEC), "pipe2");
    err_file = check(memfd_create("stderr", MFD_CLOEXEC), "memfd_create");
    check(fcntl(out[0], F_SETFL, O_NONBLOCK), "fcntl");
  } catch (...) {
    close_all();
    throw;
  }
  auto parent = getpid();
  auto child = fork();
  if (child < 0) {
    auto err = errno;
    close_all();
    throw_errno(err, "fork");
  }
  if (child == 0) {
    exec_child(in[1], out[1], err_file, err_pipe[1], parent, argv.data(),
               envp.data());
  }
  pid_ = child;
  ::close(in[1]);
  ::close(out[1]);
  ::close(err_pipe[1]);
  stdin_fd_ = in[0];
  stdout_fd_ = out[0];
  stderr_fd_ = err_file;
  // The error pipe closes on a successful exec; otherwise it carries errno.
  int exec_errno = 0;
  ssize_t n = 0;
  do {
    n = read(err_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n > 0) {
    int wstatus = 0;
    while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
      // retry
    }
    pid_ = -1;
    close_fd(stdin_fd_);
    close_fd(stdout_fd_);
    close_fd(stderr_fd_);
    throw_errno(exec_errno, "cannot start " + options.argv[0]);
  }
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  // pidfd_ < 0 (old kernel, seccomp): wait() falls back to polling.
}

process::~process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int wstatus = 0;
    while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
      // retry
    }
  }
  close_fd(stdin_fd_);
  close_fd(stdout_fd_);
  close_fd(stderr_fd_);
  close_fd(pidfd_);
}

void process::close_fd(int& fd) noexcept {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

bool process::write_line(std::string_view line) {
  if (stdin_fd_ < 0) {
    return false;
  }
  std::string data{line};
  data += '\n';
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = send(stdin_fd_, data.data() + done, data.size() - done,
                  MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void process::close_stdin() {
  close_fd(stdin_fd_);
}

bool process::fill(clock::time_point deadline) {
  // Reads until at least one more complete line is in `lines_`, EOF, or the
  // deadline. Returns true if lines_ grew or EOF was reached.
  auto before = lines_.size();
  while (stdout_fd_ >= 0) {
    std::array<char, 4096> chunk{};
    auto n = read(stdout_fd_, chunk.data(), chunk.size());
    if (n > 0) {
      buffer_.append(chunk.data(), static_cast<std::size_t>(n));
      std::size_t pos = 0;
      for (auto nl = buffer_.find('\n'); nl != std::string::npos;
           nl = buffer_.find('\n', pos)) {
        lines_.emplace_back(buffer_, pos, nl - pos);
        pos = nl + 1;
      }
      buffer_.erase(0, pos);
      continue; // Drain what is there before returning.
    }
    if (n == 0) {
      if (!buffer_.empty()) {
        lines_.push_back(std::move(buffer_));
        buffer_.clear();
      }
      close_fd(stdout_fd_);
      return true;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      close_fd(stdout_fd_);
      return true;
    }
    if (lines_.size() > before) {
      return true;
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    auto timeout = poll_timeout(deadline);
    auto ready = poll(&pfd, 1, timeout);
    if (ready == 0 && clock::now() >= deadline) {
      return false;
    }
  }
  return lines_.size() > before;
}

std::pair<process::read_status, std::string>
process::read_line(clock::time_point deadline) {
  for (;;) {
    if (next_unread_ < lines_.size()) {
      return {read_status::line, lines_[next_unread_++]};
    }
    if (stdout_fd_ < 0) {
      return {read_status::eof, {}};
    }
    if (!fill(deadline) && clock::now() >= deadline) {
      return {read_status::timeout, {}};
    }
  }
}

process::wait_result
process::wait_for_line(const std::function<bool(std::string_view)>& pred,
                       clock::time_point deadline, std::size_t from) {
  auto start = clock::now();
  for (auto i = from;; ++i) {
    while (i >= lines_.size()) {
      if (stdout_fd_ < 0) {
        return {std::nullopt, 0,
                label_ + ": stdout closed before a matching line\n"
                  + describe()};
      }
      if (!fill(deadline) && clock::now() >= deadline) {
        auto waited = std::chrono::duration<double>(clock::now() - start);
        return {std::nullopt, 0,
                label_ + ": no matching line within "
                  + std::to_string(waited.count()) + " s\n" + describe()};
      }
    }
    if (pred(lines_[i])) {
      return {lines_[i], i, {}};
    }
  }
}

std::string process::stderr_text() const {
  std::string result;
  if (stderr_fd_ < 0) {
    return result;
  }
  struct stat st {};
  if (fstat(stderr_fd_, &st) != 0 || st.st_size <= 0) {
    return result;
  }
  result.resize(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < result.size()) {
    auto n = pread(stderr_fd_, result.data() + done, result.size() - done,
                   static_cast<off_t>(done));
    if (n <= 0) {
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  result.resize(done);
  return result;
}

std::string process::stderr_tail(std::size_t max_lines) const {
  auto text = stderr_text();
  auto pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') {
    --pos;
  }
  for (std::size_t count = 0; pos > 0; --pos) {
    if (text[pos - 1] == '\n' && ++count == max_lines) {
      break;
    }
  }
  return text.substr(pos);
}

std::string process::describe() const {
  std::string result = "--- " + label_ + " (pid " + std::to_string(pid_);
  if (status_) {
    result += ", " + to_string(*status_);
  }
  result += ") stdout, " + std::to_string(lines_.size()) + " lines:\n";
  for (const auto& line : lines_) {
    result += "  " + line + "\n";
  }
  if (!buffer_.empty()) {
    result += "  (unterminated) " + buffer_ + "\n";
  }
  result += "--- " + label_ + " stderr (tail):\n" + stderr_tail();
  if (!result.empty() && result.back() != '\n') {
    result += '\n';
  }
  return result;
}

void process::signal(int sig) {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, sig);
  }
}

bool process::try_reap() {
  int wstatus = 0;
  auto r = waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) {
    status_ = decode(wstatus);
    close_fd(pidfd_);
    return true;
  }
  return false;
}

std::optional<exit_status> process::wait(clock::time_point deadline) {
  if (status_ || pid_ <= 0) {
    return status_;
  }
  for (;;) {
    if (try_reap()) {
      return status_;
    }
    if (clock::now() >= deadline) {
      return std::nullopt;
    }
    if (pidfd_ >= 0) {
      pollfd pfd{pidfd_, POLLIN, 0};
      poll(&pfd, 1, poll_timeout(deadline));
    } else {
      // No pidfd: poll the child's state every 10 ms until the deadline.
      pollfd none{-1, 0, 0};
      poll(&none, 1, std::min(10, poll_timeout(deadline)));
    }
  }
}

} // namespace mycorrizal::test
