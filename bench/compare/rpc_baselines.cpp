// SPDX-License-Identifier: Apache-2.0
// rpc_baselines: what cross-node request/response and messaging in
// Mycorrizal's node runtime will be compared against, measured in one run
// on 127.0.0.1:
//
//   rpc_baselines [--requests N] [--messages M] [--repeat R] [--warmup W]
//                 [--ack-every K] [--window B] [--workers T]
//                 [--park-at-once] [--io-on-workers] [--no-caf] [--no-tcp]
//                 [--no-mycorrizal]
//
// Two baselines:
// - "caf_middleman": CAF 0.17's own remote actors (caf::io middleman, BASP
//   over TCP). The server actor lives in a child process forked at start,
//   before any thread exists, with its own actor_system: it publishes the
//   actor on 127.0.0.1 with an ephemeral port and sends the port back
//   through a pipe. A separate process, as between real nodes: its own
//   node id, heap and threads, and its CPU time can be read apart from the
//   client's. The parent runs a second actor_system, `remote_actor`s the
//   server once and keeps that connection for the whole run. Both systems
//   use `--workers` scheduler threads (and with `--park-at-once` the
//   settings mycorrizal-node gives its own scheduler: idle workers park
//   at once, no 50 us polling). CAF sets TCP_NODELAY on BASP
//   sockets. The measuring clients are event-based actors; the main thread
//   waits on a std::future for their result.
// - "raw_tcp": plain POSIX sockets, blocking, TCP_NODELAY, one thread per
//   side (the server on a std::thread, the client on the main thread), a
//   4-byte little-endian length before every payload, a new connection per
//   measurement.
//
// Measurements (one output line each; every repetition is reported):
// - rtt_64B: N sequential request/response round trips with a 64-byte
//   payload echoed back, after W unmeasured ones on the same connection.
//   CAF: `request(server, std::vector<char>(64))`, the server returns the
//   vector; the next request leaves from the response handler. TCP: write
//   one frame, read the echoed frame. Each round trip is timed with
//   steady_clock; p50, p99 and mean in microseconds.
// - oneway_1KiB: M one-way messages of 1 KiB, as fast as the sender can
//   go, with a window: the receiver acknowledges the cumulative count every
//   K messages, the sender keeps at most B*K messages unacknowledged (so
//   no mailbox or buffer grows without bound). Timed from the first send to
//   the answer to a final "done" that the receiver handles after the last
//   message (its count is checked against M). CAF: `send(server, data_atom,
//   std::vector<char>(1024))`, acks are `(ack_atom, count)` messages. TCP:
//   one send() per framed message, acks are 8-byte counts on the same
//   connection, the final one flagged. A warm-up of min(M, B*K) messages
//   runs first.
// cpu_us_per_rtt / cpu_us_per_msg: CPU time (user + system) of both ends
// over the measured part divided by N or M: for raw_tcp this process; for
// caf_middleman this process plus the server child.
// After each repetition a '#' line gives the CPU other processes of the
// machine used meanwhile (a busy machine makes the numbers noisy).
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/transport/transport.hpp"

#include "common.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace mycorrizal::bench;

namespace {

constexpr size_t rtt_payload = 64;
constexpr size_t oneway_payload = 1024;

struct rpc_options {
  size_t requests = 20'000;
  size_t warmup = 1'000;
  size_t messages = 200'000;
  size_t ack_every = 1'000;
  size_t window = 8;
  size_t repeat = 1;
  size_t workers = 2;
  /// Both actor systems (CAF's and the nodes') park idle workers at once
  /// and wake them every 50 ms, as `mycorrizal-node` configures its own
  /// (docs/operations.md); CAF's defaults otherwise.
  bool park_at_once = false;
  /// The nodes run every actor on the scheduler, none on their I/O
  /// thread (`node_config::io_thread_runs = none`).
  bool io_on_workers = false;
  bool run_caf = true;
  bool run_tcp = true;
  bool run_mycorrizal = true;
  /// Head-of-line part: round trips of app 2 alone and while app 1 sends
  /// `hol_size`-byte requests (`hol_window` in flight).
  bool run_hol = true;
  size_t hol_requests = 2'000;
  size_t hol_size = size_t{10} << 20;
  size_t hol_window = 2;
  /// Bulk rate cap in MB/s (0: as fast as `hol_window` allows).
  size_t hol_rate = 0;
  /// Bulk request payloads built before the bulk starts; the pump copies
  /// its payload for each request after these are used up.
  size_t hol_prebuilt = 0;
  /// A control: the bulk sender copies its payload at `hol_rate` but sends
  /// nothing (the round trips beside the sender's CPU use alone).
  bool hol_copy_only = false;
  /// Congestion control of both Mycorrizal nodes (the default otherwise).
  std::optional<mycorrizal::quic::congestion_control> cc;
  /// `transport.loopback_udp_payload` of both nodes (the default otherwise;
  /// 0: loopback peers get the LAN-sized packets of any other peer).
  std::optional<size_t> loopback_payload;
  /// `transport.latency_reserve` of both nodes (the default otherwise).
  std::optional<size_t> latency_reserve;
  /// `transport.bulk_in_flight` of both nodes (the default otherwise).
  std::optional<size_t> bulk_in_flight;

  uint64_t window_msgs() const {
    return static_cast<uint64_t>(window) * ack_every;
  }
  uint64_t oneway_warmup() const {
    return std::min<uint64_t>(messages, window_msgs());
  }
};

/// What one measurement produced.
struct measurement {
  std::vector<double> rtt_us; ///< One sample per round trip (rtt only).
  /// Of each round trip through `rpc_server`: request and response one-way
  /// delays (client send → server receive → client receive).
  std::vector<double> request_us;
  std::vector<double> response_us;
  double seconds = 0;     ///< Wall time of the measured part.
  size_t n = 0;           ///< Round trips or messages measured.
  double cpu_seconds = 0; ///< CPU of both ends over the measured part.
};

/// CPU seconds of both ends of a baseline so far.
using cpu_probe = std::function<double()>;

[[noreturn]] void usage(const char* msg, int rc = 1) {
  std::fprintf(
    rc == 0 ? stdout : stderr,
    "%s\nusage: rpc_baselines [--requests N] [--messages M] [--repeat R]\n"
    "  [--warmup W] [--ack-every K] [--window B] [--workers T] "
    "[--park-at-once] [--io-on-workers]\n"
    "  [--no-caf] [--no-tcp] [--no-mycorrizal] [--cc cubic|reno|bbr|bbr2]\n"
    "  [--loopback-payload BYTES (0: off)] [--latency-reserve BYTES (0: off)]\n"
    "  [--bulk-in-flight BYTES (0: off)]\n"
    "  [--no-hol] [--hol-requests N] [--hol-size BYTES] [--hol-window K]\n"
    "  [--hol-rate MB/s (0: unlimited)] [--hol-prebuilt N]\n"
    "  [--hol-copy-only (needs --hol-rate)]\n"
    "defaults: --requests 20000 --messages 200000 --repeat 1 --warmup 1000\n"
    "  --ack-every 1000 --window 8 --workers 2 --hol-requests 2000\n"
    "  --hol-size 10485760 --hol-window 2\n",
    msg);
  std::exit(rc);
}

size_t to_size(const char* s) {
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0' || errno != 0 || s[0] == '-') {
    usage("not a number");
  }
  return static_cast<size_t>(v);
}

rpc_options parse(int argc, char** argv) {
  rpc_options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a{argv[i]};
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        usage("missing value");
      }
      return argv[++i];
    };
    if (a == "--requests") {
      o.requests = to_size(next());
    } else if (a == "--messages") {
      o.messages = to_size(next());
    } else if (a == "--repeat") {
      o.repeat = to_size(next());
    } else if (a == "--warmup") {
      o.warmup = to_size(next());
    } else if (a == "--ack-every") {
      o.ack_every = to_size(next());
    } else if (a == "--window") {
      o.window = to_size(next());
    } else if (a == "--workers") {
      o.workers = to_size(next());
    } else if (a == "--park-at-once") {
      o.park_at_once = true;
    } else if (a == "--io-on-workers") {
      o.io_on_workers = true;
    } else if (a == "--no-caf") {
      o.run_caf = false;
    } else if (a == "--no-tcp") {
      o.run_tcp = false;
    } else if (a == "--no-mycorrizal") {
      o.run_mycorrizal = false;
    } else if (a == "--no-hol") {
      o.run_hol = false;
    } else if (a == "--hol-requests") {
      o.hol_requests = to_size(next());
    } else if (a == "--hol-size") {
      o.hol_size = to_size(next());
    } else if (a == "--hol-window") {
      o.hol_window = to_size(next());
    } else if (a == "--hol-rate") {
      o.hol_rate = to_size(next());
    } else if (a == "--hol-prebuilt") {
      o.hol_prebuilt = to_size(next());
    } else if (a == "--hol-copy-only") {
      o.hol_copy_only = true;
    } else if (a == "--cc") {
      using mycorrizal::quic::congestion_control;
      std::string_view v{next()};
      if (v == "cubic") {
        o.cc = congestion_control::cubic;
      } else if (v == "reno") {
        o.cc = congestion_control::reno;
      } else if (v == "bbr") {
        o.cc = congestion_control::bbr;
      } else if (v == "bbr2") {
        o.cc = congestion_control::bbr2;
      } else {
        usage("--cc: cubic, reno, bbr or bbr2");
      }
    } else if (a == "--loopback-payload") {
      o.loopback_payload = to_size(next());
    } else if (a == "--latency-reserve") {
      o.latency_reserve = to_size(next());
    } else if (a == "--bulk-in-flight") {
      o.bulk_in_flight = to_size(next());
    } else if (a == "-h" || a == "--help") {
      usage("rpc_baselines: CAF remote actors and raw TCP on 127.0.0.1", 0);
    } else {
      usage("unknown option");
    }
  }
  if (o.requests == 0 || o.messages == 0 || o.repeat == 0 || o.ack_every == 0
      || o.window == 0 || o.workers == 0 || o.hol_requests == 0
      || o.hol_size == 0 || o.hol_window == 0) {
    usage("counts must be positive (--warmup may be 0)");
  }
  if (o.hol_copy_only && o.hol_rate == 0) {
    usage("--hol-copy-only needs --hol-rate: it copies at that rate");
  }
  return o;
}

[[noreturn]] void fail_sys(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// ---------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------

/// Owns a file descriptor.
class fd_guard {
public:
  fd_guard() = default;
  explicit fd_guard(int fd) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  fd_guard& operator=(fd_guard&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~fd_guard() {
    reset();
  }
  int get() const {
    return fd_;
  }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

private:
  int fd_ = -1;
};

void set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    fail_sys("setsockopt TCP_NODELAY");
  }
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/// A listening socket on 127.0.0.1 with an ephemeral port.
fd_guard listen_loopback(uint16_t& port) {
  fd_guard fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (fd.get() < 0) {
    fail_sys("socket");
  }
  auto sa = loopback(0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    fail_sys("bind");
  }
  if (::listen(fd.get(), 16) != 0) {
    fail_sys("listen");
  }
  socklen_t len = sizeof(sa);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    fail_sys("getsockname");
  }
  port = ntohs(sa.sin_port);
  return fd;
}

fd_guard connect_loopback(uint16_t port) {
  fd_guard fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (fd.get() < 0) {
    fail_sys("socket");
  }
  auto sa = loopback(port);
  int rc = 0;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    fail_sys("connect");
  }
  set_nodelay(fd.get());
  return fd;
}

fd_guard accept_one(int listener) {
  int fd = -1;
  do {
    fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    fail_sys("accept");
  }
  fd_guard out{fd};
  set_nodelay(fd);
  return out;
}

void write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    auto n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail_sys("send");
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
}

/// Reads exactly `len` bytes (socket or pipe); false on end of stream before
/// the first byte.
bool read_exact(int fd, char* data, size_t len) {
  size_t got = 0;
  while (got < len) {
    auto n = ::read(fd, data + got, len - got);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail_sys("read");
    }
    if (n == 0) {
      if (got == 0) {
        return false;
      }
      throw std::runtime_error("connection closed mid-read");
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

void put_u32(char* out, uint32_t x) {
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((x >> (8 * i)) & 0xff);
  }
}

uint32_t get_u32(const char* in) {
  uint32_t x = 0;
  for (int i = 0; i < 4; ++i) {
    x |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return x;
}

/// A 4-byte length and the payload, filled with a recognisable pattern.
/// Writes `t` (steady_clock ticks) into bytes `at`..`at + 7` of `x`.
void stamp(std::vector<char>& x, size_t at, time_point t = clock_type::now()) {
  if (x.size() >= at + 8) {
    int64_t ticks = t.time_since_epoch().count();
    std::memcpy(x.data() + at, &ticks, sizeof(ticks));
  }
}

time_point stamp_of(const std::vector<char>& x, size_t at) {
  int64_t ticks = 0;
  if (x.size() >= at + 8) {
    std::memcpy(&ticks, x.data() + at, sizeof(ticks));
  }
  return time_point{clock_type::duration{ticks}};
}

std::vector<char> make_frame(size_t payload) {
  std::vector<char> f(4 + payload);
  put_u32(f.data(), static_cast<uint32_t>(payload));
  for (size_t i = 0; i < payload; ++i) {
    f[4 + i] = static_cast<char>('a' + i % 26);
  }
  return f;
}

/// Reads length-prefixed frames through a 64 KiB buffer (few recv calls when
/// many small frames are queued).
class frame_reader {
public:
  explicit frame_reader(int fd) : fd_(fd), buf_(64 * 1024) {}

  /// The next frame's payload, valid until the next call; false at the end
  /// of the stream.
  bool next(std::string_view& payload) {
    if (!fill(4)) {
      return false;
    }
    auto len = get_u32(buf_.data() + begin_);
    if (len > (1u << 20)) {
      throw std::runtime_error("frame too large");
    }
    if (!fill(4 + size_t{len})) {
      throw std::runtime_error("connection closed mid-frame");
    }
    payload = {buf_.data() + begin_ + 4, len};
    begin_ += 4 + size_t{len};
    return true;
  }

private:
  /// At least `n` buffered bytes; false on end of stream.
  bool fill(size_t n) {
    if (end_ - begin_ >= n) {
      return true;
    }
    if (begin_ + n > buf_.size()) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (n > buf_.size()) {
        buf_.resize(n);
      }
    }
    while (end_ - begin_ < n) {
      auto got = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
      if (got < 0) {
        if (errno == EINTR) {
          continue;
        }
        fail_sys("recv");
      }
      if (got == 0) {
        return false;
      }
      end_ += static_cast<size_t>(got);
    }
    return true;
  }

  int fd_;
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

/// Runs `server(listening fd)` on a thread and `client(port)` here. The
/// client closes its connection when done (or throws), which ends the
/// server; errors of either side are rethrown after the join.
template <class Server, class Client>
void with_tcp_server(Server server, Client client) {
  uint16_t port = 0;
  auto listener = listen_loopback(port);
  std::exception_ptr server_error;
  std::thread th{[&] {
    try {
      server(listener.get());
    } catch (...) {
      server_error = std::current_exception();
    }
  }};
  std::exception_ptr client_error;
  try {
    client(port);
  } catch (...) {
    client_error = std::current_exception();
    // Unblock a server still waiting in accept().
    ::shutdown(listener.get(), SHUT_RDWR);
  }
  th.join();
  if (client_error) {
    std::rethrow_exception(client_error);
  }
  if (server_error) {
    std::rethrow_exception(server_error);
  }
}

measurement tcp_rtt(const rpc_options& opts, const cpu_probe& cpu) {
  measurement m;
  with_tcp_server(
    [](int listener) {
      auto conn = accept_one(listener);
      frame_reader in{conn.get()};
      std::string_view p;
      std::vector<char> out;
      while (in.next(p)) {
        out.resize(4 + p.size());
        put_u32(out.data(), static_cast<uint32_t>(p.size()));
        std::memcpy(out.data() + 4, p.data(), p.size());
        write_all(conn.get(), out.data(), out.size());
      }
    },
    [&](uint16_t port) {
      auto conn = connect_loopback(port);
      auto frame = make_frame(rtt_payload);
      frame_reader in{conn.get()};
      std::string_view p;
      auto one = [&] {
        write_all(conn.get(), frame.data(), frame.size());
        if (!in.next(p) || p.size() != rtt_payload
            || std::memcmp(p.data(), frame.data() + 4, rtt_payload) != 0) {
          throw std::runtime_error("raw_tcp: bad echo");
        }
      };
      for (size_t i = 0; i < opts.warmup; ++i) {
        one();
      }
      m.rtt_us.reserve(opts.requests);
      auto cpu0 = cpu();
      auto t0 = clock_type::now();
      for (size_t i = 0; i < opts.requests; ++i) {
        auto a = clock_type::now();
        one();
        m.rtt_us.push_back(micros(a, clock_type::now()));
      }
      m.seconds = seconds(t0, clock_type::now());
      m.cpu_seconds = cpu() - cpu0;
      m.n = opts.requests;
    });
  return m;
}

/// The final ack of a phase has this bit set.
constexpr uint64_t final_flag = uint64_t{1} << 63;

measurement tcp_oneway(const rpc_options& opts, const cpu_probe& cpu) {
  measurement m;
  const uint64_t ack_every = opts.ack_every;
  with_tcp_server(
    [ack_every](int listener) {
      auto conn = accept_one(listener);
      frame_reader in{conn.get()};
      std::string_view p;
      uint64_t count = 0;
      uint64_t check = 0;
      auto ack = [&](uint64_t value) {
        char b[8];
        for (int i = 0; i < 8; ++i) {
          b[i] = static_cast<char>((value >> (8 * i)) & 0xff);
        }
        write_all(conn.get(), b, sizeof(b));
      };
      while (in.next(p)) {
        if (p.empty()) {
          // End of a phase: the final count, then start over.
          ack(count | final_flag);
          count = 0;
          continue;
        }
        // Touch the payload so that the receive is not just a count.
        check += static_cast<unsigned char>(p.front())
                 + static_cast<unsigned char>(p.back());
        if (++count % ack_every == 0) {
          ack(count);
        }
      }
      if (check == 0) {
        throw std::runtime_error("raw_tcp: no payload received");
      }
    },
    [&](uint16_t port) {
      auto conn = connect_loopback(port);
      auto frame = make_frame(oneway_payload);
      const char end_marker[4] = {0, 0, 0, 0};
      auto read_ack = [&] {
        char b[8];
        if (!read_exact(conn.get(), b, sizeof(b))) {
          throw std::runtime_error("raw_tcp: connection closed");
        }
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
          v |= static_cast<uint64_t>(static_cast<unsigned char>(b[i]))
               << (8 * i);
        }
        return v;
      };
      auto phase = [&](uint64_t total) {
        uint64_t sent = 0;
        uint64_t acked = 0;
        while (sent < total) {
          while (sent - acked >= opts.window_msgs()) {
            auto v = read_ack();
            if ((v & final_flag) != 0) {
              throw std::runtime_error("raw_tcp: unexpected final ack");
            }
            acked = std::max(acked, v);
          }
          write_all(conn.get(), frame.data(), frame.size());
          ++sent;
        }
        write_all(conn.get(), end_marker, sizeof(end_marker));
        for (;;) {
          auto v = read_ack();
          if ((v & final_flag) != 0) {
            if ((v & ~final_flag) != total) {
              throw std::runtime_error("raw_tcp: receiver lost messages");
            }
            return;
          }
        }
      };
      phase(opts.oneway_warmup());
      auto cpu0 = cpu();
      auto t0 = clock_type::now();
      phase(opts.messages);
      m.seconds = seconds(t0, clock_type::now());
      m.cpu_seconds = cpu() - cpu0;
      m.n = opts.messages;
    });
  return m;
}

// ---------------------------------------------------------------------------
// CAF middleman
// ---------------------------------------------------------------------------

using reset_atom = caf::atom_constant<caf::atom("rb_reset")>;
using data_atom = caf::atom_constant<caf::atom("rb_data")>;
using ack_atom = caf::atom_constant<caf::atom("rb_ack")>;
using done_atom = caf::atom_constant<caf::atom("rb_done")>;

/// Generous: only there so that a dead peer ends the run with an error
/// instead of a hang (the clients also monitor the server).
constexpr auto request_timeout = std::chrono::seconds(60);

/// The scheduler settings of every actor system in this program, CAF's
/// and the nodes' alike.
void set_scheduler(caf::actor_system_config& cfg, const rpc_options& opts) {
  cfg.set("scheduler.max-threads", opts.workers);
  if (opts.park_at_once) {
    cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
    cfg.set("work-stealing.relaxed-sleep-duration",
            caf::timespan{std::chrono::milliseconds{50}});
  }
}

caf::actor_system_config& setup(caf::actor_system_config& cfg,
                                const rpc_options& opts) {
  set_scheduler(cfg, opts);
  cfg.load<caf::io::middleman>();
  return cfg;
}

struct server_state {
  uint64_t count = 0;
  uint64_t ack_every = 1;
  uint64_t check = 0;
};

/// The remote actor: echoes 64-byte requests, counts one-way messages and
/// acknowledges every `ack_every` of them to the sender.
caf::behavior rpc_server(caf::stateful_actor<server_state>* self) {
  return {
    [](std::vector<char>& x) {
      // Bytes 8..15: when the request arrived (steady_clock is the same
      // clock in both processes), for the one-way delays of a round trip.
      stamp(x, 8);
      return x;
    },
    [self](reset_atom, uint64_t ack_every) {
      self->state.count = 0;
      self->state.ack_every = std::max<uint64_t>(ack_every, 1);
    },
    [self](data_atom, const std::vector<char>& x) {
      auto& st = self->state;
      if (!x.empty()) {
        st.check += static_cast<unsigned char>(x.front())
                    + static_cast<unsigned char>(x.back());
      }
      if (++st.count % st.ack_every == 0) {
        self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                   ack_atom::value, st.count);
      }
    },
    [self](done_atom) {
      return self->state.count;
    },
  };
}

/// Returns once the parent closed the control pipe (or died).
void wait_for_parent(int ctl_fd) {
  char c = 0;
  for (;;) {
    auto n = ::read(ctl_fd, &c, 1);
    if (n > 0 || (n < 0 && errno == EINTR)) {
      continue;
    }
    break;
  }
}

/// The child process: publish the server, report the port, serve until the
/// parent closes the control pipe (or dies).
[[noreturn]] void caf_server_main(int port_fd, int ctl_fd,
                                  const rpc_options& opts) {
  int rc = 0;
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{setup(cfg, opts)};
    auto server = sys.spawn(rpc_server);
    auto port = sys.middleman().publish(server, 0, "127.0.0.1", true);
    uint16_t p = 0;
    if (port) {
      p = *port;
    } else {
      std::fprintf(stderr, "rpc_baselines: publish failed: %s\n",
                   sys.render(port.error()).c_str());
      rc = 1;
    }
    if (::write(port_fd, &p, sizeof(p)) != static_cast<ssize_t>(sizeof(p))) {
      rc = 1;
    }
    ::close(port_fd);
    if (rc == 0) {
      wait_for_parent(ctl_fd);
    }
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  }
  std::fflush(nullptr);
  ::_exit(rc);
}

/// The write ends of every server's control pipe that this process holds.
/// A child forked later inherits them and must close them, or an earlier
/// server would never see its pipe close while the later one lives.
std::vector<int>& control_fds() {
  static std::vector<int> fds;
  return fds;
}

/// A server child process, from fork until its exit: `child(port_fd,
/// ctl_fd)` runs in the child (it reports a port and serves until the
/// control pipe closes).
class caf_server_process {
public:
  template <class Child>
  caf_server_process(const char* what, Child child) {
    int port_pipe[2];
    int ctl_pipe[2];
    if (::pipe2(port_pipe, O_CLOEXEC) != 0
        || ::pipe2(ctl_pipe, O_CLOEXEC) != 0) {
      fail_sys("pipe2");
    }
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) {
      fail_sys("fork");
    }
    if (pid_ == 0) {
      ::close(port_pipe[0]);
      ::close(ctl_pipe[1]);
      for (auto fd : control_fds()) {
        ::close(fd);
      }
      child(port_pipe[1], ctl_pipe[0]);
    }
    ::close(port_pipe[1]);
    ::close(ctl_pipe[0]);
    ctl_ = fd_guard{ctl_pipe[1]};
    control_fds().push_back(ctl_pipe[1]);
    fd_guard port_in{port_pipe[0]};
    if (!read_exact(port_in.get(), reinterpret_cast<char*>(&port_),
                    sizeof(port_))
        || port_ == 0) {
      stop();
      throw std::runtime_error(std::string{what}
                               + ": the server process failed");
    }
  }
  caf_server_process(const caf_server_process&) = delete;
  caf_server_process& operator=(const caf_server_process&) = delete;
  ~caf_server_process() {
    stop();
  }

  uint16_t port() const {
    return port_;
  }

  /// CPU seconds the child used so far.
  double cpu() const {
    return pid_ > 0 ? process_cpu_seconds(pid_) : 0;
  }

  /// Closes the control pipe and waits for the child to exit.
  void stop() {
    if (ctl_.get() >= 0) {
      auto& fds = control_fds();
      fds.erase(std::remove(fds.begin(), fds.end(), ctl_.get()), fds.end());
    }
    ctl_.reset();
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr,
                     "rpc_baselines: server process ended badly "
                     "(status %d)\n",
                     status);
      }
      pid_ = -1;
    }
  }

private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  fd_guard ctl_;
};

/// What a measuring client actor hands back to the main thread.
struct caf_result {
  std::vector<double> rtt_us;
  std::vector<double> request_us;
  std::vector<double> response_us;
  double seconds = 0;
  std::string error;
};

using result_promise = std::shared_ptr<std::promise<caf_result>>;

/// The state both measuring clients share.
struct client_base {
  caf::actor server;
  result_promise result;
  bool finished = false;
};

template <class State>
void finish(caf::stateful_actor<State>* self, caf_result r) {
  auto& st = self->state;
  if (!st.finished) {
    st.finished = true;
    st.result->set_value(std::move(r));
  }
  self->quit();
}

template <class State>
void finish_error(caf::stateful_actor<State>* self, const std::string& what) {
  caf_result r;
  r.error = what;
  finish(self, std::move(r));
}

template <class State>
void watch_server(caf::stateful_actor<State>* self) {
  self->monitor(self->state.server);
  self->set_down_handler([self](caf::down_msg& dm) {
    finish_error(self, "server down: " + self->system().render(dm.reason));
  });
}

struct rtt_state : client_base {
  std::vector<char> payload;
  size_t total = 0;
  size_t done = 0;
  time_point sent_at;
  time_point start;
  std::vector<double> samples;
  std::vector<double> request_us;
  std::vector<double> response_us;
};

void rtt_step(caf::stateful_actor<rtt_state>* self) {
  auto& st = self->state;
  if (st.done == st.total) {
    caf_result r;
    r.seconds = seconds(st.start, clock_type::now());
    r.rtt_us = std::move(st.samples);
    r.request_us = std::move(st.request_us);
    r.response_us = std::move(st.response_us);
    finish(self, std::move(r));
    return;
  }
  st.sent_at = clock_type::now();
  stamp(st.payload, 0, st.sent_at);
  self->request(st.server, request_timeout, st.payload)
    .then(
      [self](const std::vector<char>& echo) {
        auto now = clock_type::now();
        auto& s = self->state;
        // The echo is the request with the server's stamp in bytes 8..15.
        if (echo.size() != s.payload.size()
            || !std::equal(echo.begin(), echo.begin() + 8, s.payload.begin())
            || !std::equal(echo.begin() + 16, echo.end(),
                           s.payload.begin() + 16)) {
          finish_error(self, "bad echo");
          return;
        }
        auto arrived = stamp_of(echo, 8);
        s.samples.push_back(micros(s.sent_at, now));
        s.request_us.push_back(micros(s.sent_at, arrived));
        s.response_us.push_back(micros(arrived, now));
        ++s.done;
        rtt_step(self);
      },
      [self](caf::error& e) {
        finish_error(self, "request: " + self->system().render(e));
      });
}

/// `total` sequential round trips; the samples go to `result`.
caf::behavior rtt_client(caf::stateful_actor<rtt_state>* self,
                         caf::actor server, size_t total,
                         result_promise result) {
  auto& st = self->state;
  st.server = std::move(server);
  st.result = std::move(result);
  st.payload = make_frame(rtt_payload);
  st.payload.erase(st.payload.begin(), st.payload.begin() + 4);
  st.total = total;
  st.samples.reserve(total);
  watch_server(self);
  st.start = clock_type::now();
  rtt_step(self);
  return {
    [](ack_atom, uint64_t) {},
  };
}

struct oneway_state : client_base {
  std::vector<char> payload;
  uint64_t total = 0;
  uint64_t window_msgs = 0;
  uint64_t sent = 0;
  uint64_t acked = 0;
  bool flushing = false;
  time_point start;
};

/// Sends while the window has room; after the last message, asks for the
/// final count.
void oneway_pump(caf::stateful_actor<oneway_state>* self) {
  auto& st = self->state;
  while (st.sent < st.total && st.sent - st.acked < st.window_msgs) {
    self->send(st.server, data_atom::value, st.payload);
    ++st.sent;
  }
  if (st.sent == st.total && !st.flushing) {
    st.flushing = true;
    self->request(st.server, request_timeout, done_atom::value)
      .then(
        [self](uint64_t count) {
          auto now = clock_type::now();
          auto& s = self->state;
          if (count != s.total) {
            finish_error(self, "receiver counted " + std::to_string(count)
                                 + " of " + std::to_string(s.total));
            return;
          }
          caf_result r;
          r.seconds = seconds(s.start, now);
          finish(self, std::move(r));
        },
        [self](caf::error& e) {
          finish_error(self, "done: " + self->system().render(e));
        });
  }
}

/// `total` one-way 1 KiB messages with an ack every `ack_every` and at most
/// `window_msgs` unacknowledged; the time goes to `result`.
caf::behavior oneway_client(caf::stateful_actor<oneway_state>* self,
                            caf::actor server, uint64_t total,
                            uint64_t ack_every, uint64_t window_msgs,
                            result_promise result) {
  auto& st = self->state;
  st.server = std::move(server);
  st.result = std::move(result);
  st.payload = make_frame(oneway_payload);
  st.payload.erase(st.payload.begin(), st.payload.begin() + 4);
  st.total = total;
  st.window_msgs = window_msgs;
  watch_server(self);
  self->request(st.server, request_timeout, reset_atom::value, ack_every)
    .then(
      [self]() {
        self->state.start = clock_type::now();
        oneway_pump(self);
      },
      [self](caf::error& e) {
        finish_error(self, "reset: " + self->system().render(e));
      });
  return {
    [self](ack_atom, uint64_t count) {
      auto& s = self->state;
      s.acked = std::max(s.acked, count);
      oneway_pump(self);
    },
  };
}

/// Runs the measuring clients against `server` (a remote actor of either
/// variant) in `sys`.
struct actor_bench {
  const char* variant;
  caf::actor_system& sys;
  caf::actor server;
  /// Called with every measuring client right after its spawn.
  std::function<void(const caf::actor&)> spawned;

  measurement rtt(const rpc_options& opts, const cpu_probe& cpu) {
    if (opts.warmup > 0) {
      run(rtt_client, opts.warmup);
    }
    auto cpu0 = cpu();
    auto r = run(rtt_client, opts.requests);
    measurement m;
    m.cpu_seconds = cpu() - cpu0;
    m.rtt_us = std::move(r.rtt_us);
    m.request_us = std::move(r.request_us);
    m.response_us = std::move(r.response_us);
    m.seconds = r.seconds;
    m.n = opts.requests;
    return m;
  }

  measurement oneway(const rpc_options& opts, const cpu_probe& cpu) {
    run(oneway_client, opts.oneway_warmup(), uint64_t{opts.ack_every},
        opts.window_msgs());
    auto cpu0 = cpu();
    auto r = run(oneway_client, uint64_t{opts.messages},
                 uint64_t{opts.ack_every}, opts.window_msgs());
    measurement m;
    m.cpu_seconds = cpu() - cpu0;
    m.seconds = r.seconds;
    m.n = opts.messages;
    return m;
  }

  /// Spawns a measuring client and waits for its result.
  template <class Fun, class... Ts>
  caf_result run(Fun fun, Ts... xs) {
    auto p = std::make_shared<std::promise<caf_result>>();
    auto f = p->get_future();
    auto client = sys.spawn(fun, server, xs..., std::move(p));
    if (spawned) {
      spawned(client);
    }
    auto r = f.get();
    if (!r.error.empty()) {
      throw std::runtime_error(std::string{variant} + ": " + r.error);
    }
    return r;
  }
};

/// The client side: an actor_system with the middleman and a proxy of the
/// server actor, one BASP connection for the whole run.
class caf_client {
public:
  caf_client(uint16_t port, const rpc_options& opts) : sys_(setup(cfg_, opts)) {
    auto remote = sys_.middleman().remote_actor("127.0.0.1", port);
    if (!remote) {
      throw std::runtime_error("caf_middleman: remote_actor: "
                               + sys_.render(remote.error()));
    }
    bench_.server = std::move(*remote);
  }

  actor_bench& bench() {
    return bench_;
  }

private:
  caf::actor_system_config cfg_;
  caf::actor_system sys_;
  actor_bench bench_{"caf_middleman", sys_, {}, {}};
};

// ---------------------------------------------------------------------------
// Mycorrizal
// ---------------------------------------------------------------------------

/// The application both nodes run.
constexpr const char* bench_app = "rpcbench";
/// The bulk application of the head-of-line part (its own QUIC stream).
constexpr const char* bulk_app = "rpcbulk";

/// bench-b's handler of `bulk_app`: answers each request with its size.
caf::behavior bulk_sink(caf::event_based_actor*) {
  return {
    [](const mycorrizal::app_request& r) {
      auto n = static_cast<uint64_t>(r.payload.size());
      std::vector<std::byte> out(sizeof(n));
      std::memcpy(out.data(), &n, sizeof(n));
      return mycorrizal::raw_bytes{std::move(out)};
    },
    [](const mycorrizal::app_message&) {},
  };
}

using bulk_stop_atom = caf::atom_constant<caf::atom("rb_bstop")>;
using bulk_bytes_atom = caf::atom_constant<caf::atom("rb_bbytes")>;
using bulk_tick_atom = caf::atom_constant<caf::atom("rb_btick")>;

struct bulk_state {
  mycorrizal::router_actor router;
  std::vector<std::byte> payload;
  /// Copies of `payload` built before the start, each sent (moved) once.
  std::vector<std::vector<std::byte>> prebuilt;
  /// Requests whose payload the pump copied while the bulk ran.
  uint64_t copied = 0;
  /// Copy the payload at `rate` without sending it (a control).
  bool copy_only = false;
  size_t window = 1;
  /// Bytes per second the pump may start (0: no cap), and bytes started.
  double rate = 0;
  uint64_t started = 0;
  bool tick_pending = false;
  size_t in_flight = 0;
  bool stopping = false;
  uint64_t bytes = 0;
  time_point start;
  std::string error;
  caf::response_promise stopped;
};

void bulk_fill(caf::stateful_actor<bulk_state>* self);

/// Sends `size`-byte raw requests to bench-b's `bulk_app`, `window` in
/// flight, until asked to stop; the stop's reply is "<bytes> <seconds>
/// <copied>" (or the first error). The first `prebuilt` requests take a
/// payload built before the start; the others copy one while the bulk
/// runs, as an application producing fresh data would. With `copy_only`
/// it copies the payload at `rate_mbps` and sends nothing.
caf::behavior bulk_pump(caf::stateful_actor<bulk_state>* self,
                        mycorrizal::router_actor router, size_t size,
                        size_t window, size_t rate_mbps, size_t prebuilt,
                        bool copy_only) {
  auto& st = self->state;
  st.copy_only = copy_only;
  st.router = std::move(router);
  st.payload.assign(size, std::byte{0x5a});
  st.prebuilt.assign(prebuilt, st.payload);
  st.window = window;
  st.rate = static_cast<double>(rate_mbps) * 1e6;
  st.start = clock_type::now();
  bulk_fill(self);
  return {
    [self](bulk_stop_atom) -> caf::result<std::string> {
      auto& s = self->state;
      s.stopping = true;
      s.stopped = self->make_response_promise();
      bulk_fill(self);
      return s.stopped;
    },
    [self](bulk_bytes_atom) {
      return self->state.bytes;
    },
    [self](bulk_tick_atom) {
      self->state.tick_pending = false;
      bulk_fill(self);
    },
  };
}

void bulk_fill(caf::stateful_actor<bulk_state>* self) {
  auto& st = self->state;
  if (st.stopping) {
    if (st.in_flight == 0 && st.stopped.pending()) {
      st.stopped.deliver(
        st.error.empty()
          ? std::to_string(st.bytes) + " "
              + std::to_string(seconds(st.start, clock_type::now())) + " "
              + std::to_string(st.copied)
          : st.error);
    }
    return;
  }
  while (st.in_flight < st.window && st.error.empty()) {
    if (st.rate > 0) {
      // The next request may start once the cap allows its bytes.
      auto due = st.start
                 + std::chrono::duration_cast<clock_type::duration>(
                   std::chrono::duration<double>(static_cast<double>(st.started)
                                                 / st.rate));
      auto now = clock_type::now();
      if (due > now) {
        if (!st.tick_pending) {
          st.tick_pending = true;
          self->delayed_send(self, due - now, bulk_tick_atom::value);
        }
        return;
      }
    }
    st.started += st.payload.size();
    if (st.copy_only) {
      // What producing the payload costs, as below, then dropped.
      std::vector<std::byte> copy = st.payload;
      asm volatile("" : : "r"(copy.data()) : "memory");
      ++st.copied;
      st.bytes += copy.size();
      continue;
    }
    ++st.in_flight;
    std::vector<std::byte> payload;
    if (st.prebuilt.empty()) {
      payload = st.payload;
      ++st.copied;
    } else {
      payload = std::move(st.prebuilt.back());
      st.prebuilt.pop_back();
    }
    caf::timespan budget = request_timeout;
    self
      ->request(st.router, request_timeout, mycorrizal::request_atom::value,
                std::string{"bench-b"}, std::string{bulk_app},
                mycorrizal::raw_bytes{std::move(payload)}, budget,
                std::string{})
      .then(
        [self](const mycorrizal::raw_bytes& bytes) {
          const auto& reply = bytes.data;
          auto& s = self->state;
          --s.in_flight;
          uint64_t n = 0;
          if (reply.size() == sizeof(n)) {
            std::memcpy(&n, reply.data(), sizeof(n));
          }
          if (n != s.payload.size()) {
            s.error = "bulk: the sink saw " + std::to_string(n) + " bytes";
          } else {
            s.bytes += n;
          }
          bulk_fill(self);
        },
        [self](caf::error& e) {
          auto& s = self->state;
          --s.in_flight;
          s.error = "bulk: " + self->system().render(e);
          bulk_fill(self);
        });
  }
}

caf::actor_system_config& setup_node(caf::actor_system_config& cfg,
                                     const rpc_options& opts) {
  set_scheduler(cfg, opts);
  mycorrizal::add_error_category(cfg);
  return cfg;
}

mycorrizal::node_config node_config(const std::string& name,
                                    const std::string& data_dir,
                                    const rpc_options& opts) {
  auto cfg = mycorrizal::node_config::local(name);
  if (opts.io_on_workers) {
    cfg.io_thread_runs = mycorrizal::node_config::io_thread_actors::none;
  }
  if (opts.cc) {
    cfg.transport.cc = *opts.cc;
  }
  if (opts.bulk_in_flight) {
    cfg.transport.bulk_in_flight = *opts.bulk_in_flight;
  }
  if (opts.latency_reserve) {
    cfg.transport.latency_reserve = *opts.latency_reserve;
  }
  if (opts.loopback_payload) {
    cfg.transport.loopback_udp_payload = *opts.loopback_payload;
  }
  cfg.data_dir = data_dir;
  cfg.gossip_bind = mycorrizal::ip_endpoint::v4(127, 0, 0, 1, 0);
  cfg.quic_bind = mycorrizal::ip_endpoint::v4(127, 0, 0, 1, 0);
  return cfg;
}

/// The window of one-way messages (8 × 1000 × 1 KiB by default) is queued
/// whole while the stream opens: room for it, as CAF's middleman buffers
/// without limit.
mycorrizal::app_options bench_app_options() {
  mycorrizal::app_options o;
  o.max_connecting_bytes = size_t{64} << 20;
  return o;
}

/// The child process: node "bench-b" with `rpc_server` as the handler of
/// the application; reports its gossip port.
[[noreturn]] void mycorrizal_server_main(int port_fd, int ctl_fd,
                                         const rpc_options& opts,
                                         const std::string& data_dir) {
  int rc = 0;
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{setup_node(cfg, opts)};
    auto n = mycorrizal::node::start(sys,
                                     node_config("bench-b", data_dir, opts));
    uint16_t p = 0;
    if (!n) {
      std::fprintf(stderr, "rpc_baselines: node: %s\n",
                   to_string(n.error()).c_str());
    } else if (auto ok = (*n)->register_app(bench_app, sys.spawn(rpc_server),
                                            bench_app_options());
               !ok) {
      std::fprintf(stderr, "rpc_baselines: register: %s\n",
                   to_string(ok.error()).c_str());
    } else if (auto bulk = (*n)->register_app(bulk_app, sys.spawn(bulk_sink),
                                              bench_app_options());
               !bulk) {
      std::fprintf(stderr, "rpc_baselines: register: %s\n",
                   to_string(bulk.error()).c_str());
    } else {
      p = (*n)->gossip_endpoint().port();
    }
    rc = p == 0 ? 1 : 0;
    if (::write(port_fd, &p, sizeof(p)) != static_cast<ssize_t>(sizeof(p))) {
      rc = 1;
    }
    ::close(port_fd);
    if (rc == 0) {
      wait_for_parent(ctl_fd);
    }
    if (n) {
      (*n)->stop();
    }
  }
  std::fflush(nullptr);
  ::_exit(rc);
}

/// Forwards the server's acknowledgements (which reach our node's handler
/// of the application) to the measuring client of the moment.
caf::behavior ack_relay(caf::event_based_actor* self) {
  auto target = std::make_shared<caf::actor>();
  return {
    [target](caf::actor& client) {
      *target = std::move(client);
    },
    [self, target](ack_atom, uint64_t count) {
      self->send(*target, ack_atom::value, count);
    },
  };
}

/// The client side: node "bench-a" joined to "bench-b"; the server is
/// `bench-b`'s remote handle for the application (QUIC, mutual TLS).
class mycorrizal_client {
public:
  mycorrizal_client(uint16_t gossip_port, const rpc_options& opts,
                    const std::string& data_dir)
      : sys_(setup_node(cfg_, opts)) {
    auto cfg = node_config("bench-a", data_dir, opts);
    cfg.seeds.push_back("127.0.0.1:" + std::to_string(gossip_port));
    auto n = mycorrizal::node::start(sys_, cfg);
    if (!n) {
      throw std::runtime_error("mycorrizal: " + to_string(n.error()));
    }
    node_ = *n;
    relay_ = sys_.spawn(ack_relay);
    if (auto ok = node_->register_app(bench_app, relay_, bench_app_options());
        !ok) {
      throw std::runtime_error("mycorrizal: " + to_string(ok.error()));
    }
    if (auto ok = node_->register_app(bulk_app, relay_, bench_app_options());
        !ok) {
      throw std::runtime_error("mycorrizal: " + to_string(ok.error()));
    }
    // Until bench-b's control stream announced the application (a
    // condition with a deadline; setup, not measured).
    auto deadline = clock_type::now() + std::chrono::seconds{30};
    for (;;) {
      auto ns = node_->nodes(bench_app);
      auto bulk_ns = node_->nodes(bulk_app);
      if (ns && std::find(ns->begin(), ns->end(), "bench-b") != ns->end()
          && bulk_ns
          && std::find(bulk_ns->begin(), bulk_ns->end(), "bench-b")
               != bulk_ns->end()) {
        break;
      }
      if (clock_type::now() > deadline) {
        throw std::runtime_error("mycorrizal: bench-b not connected in 30 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    auto handle = node_->remote("bench-b", bench_app);
    if (!handle) {
      throw std::runtime_error("mycorrizal: " + to_string(handle.error()));
    }
    bench_.server = *handle;
    bench_.spawned = [this](const caf::actor& client) {
      caf::anon_send(relay_, client);
    };
  }

  ~mycorrizal_client() {
    node_->stop();
    caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown);
  }

  /// Round trips of `bench_app` alone, then while `bulk_app` (another
  /// QUIC stream of the same connection) carries `hol_size`-byte requests.
  struct hol_result {
    measurement alone;
    measurement loaded;
    double bulk_bytes = 0;
    double bulk_seconds = 0;
    /// Bulk requests whose payload was copied while the bulk ran.
    double copied = 0;
  };

  hol_result hol(const rpc_options& opts, const cpu_probe& cpu) {
    auto rounds = opts;
    rounds.requests = opts.hol_requests;
    rounds.warmup = std::min<size_t>(opts.warmup, 200);
    hol_result out;
    out.alone = bench_.rtt(rounds, cpu);
    auto pump = sys_.spawn(bulk_pump, node_->router(), opts.hol_size,
                           opts.hol_window, opts.hol_rate, opts.hol_prebuilt,
                           opts.hol_copy_only);
    // The bulk flows before the round trips start: wait until the first
    // request was answered (setup, with a deadline).
    auto deadline = clock_type::now() + std::chrono::seconds{60};
    caf::scoped_actor probe{sys_};
    for (;;) {
      uint64_t done = 0;
      probe->request(pump, std::chrono::seconds{10}, bulk_bytes_atom::value)
        .receive(
          [&](uint64_t n) {
            done = n;
          },
          [](const caf::error&) {});
      if (done > 0) {
        break;
      }
      if (clock_type::now() > deadline) {
        std::string why = "no answer";
        probe->request(pump, std::chrono::seconds{70}, bulk_stop_atom::value)
          .receive(
            [&](const std::string& x) {
              why = x;
            },
            [](const caf::error&) {});
        caf::anon_send_exit(pump, caf::exit_reason::user_shutdown);
        throw std::runtime_error("hol: no bulk reply in 60 s: " + why);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    rounds.warmup = 0;
    out.loaded = bench_.rtt(rounds, cpu);
    caf::scoped_actor self{sys_};
    std::string summary;
    self->request(pump, std::chrono::seconds{120}, bulk_stop_atom::value)
      .receive(
        [&](const std::string& x) {
          summary = x;
        },
        [&](const caf::error& e) {
          summary = sys_.render(e);
        });
    caf::anon_send_exit(pump, caf::exit_reason::user_shutdown);
    if (std::sscanf(summary.c_str(), "%lf %lf %lf", &out.bulk_bytes,
                    &out.bulk_seconds, &out.copied)
          != 3
        || out.bulk_bytes <= 0) {
      throw std::runtime_error("hol: " + summary);
    }
    return out;
  }

  /// One line about the QUIC connection to bench-b (congestion window,
  /// RTT, datagrams, losses): what explains a number.
  std::string quic_summary() {
    auto peers = node_->connections();
    if (!peers) {
      return "no connections: " + to_string(peers.error());
    }
    for (auto& p : *peers) {
      if (p.name != "bench-b" || !p.connection) {
        continue;
      }
      caf::scoped_actor self{sys_};
      std::string out = "no stats";
      self
        ->request(p.connection, std::chrono::seconds{5},
                  mycorrizal::stats_atom::value)
        .receive(
          [&](const mycorrizal::connection_info& info) {
            const auto& s = info.stats;
            auto us = [](mycorrizal::duration d) {
              return std::chrono::duration_cast<std::chrono::microseconds>(d)
                .count();
            };
            out = "cwnd=" + std::to_string(s.cwnd)
                  + " srtt_us=" + std::to_string(us(s.smoothed_rtt))
                  + " min_rtt_us=" + std::to_string(us(s.min_rtt))
                  + " datagrams_sent=" + std::to_string(s.datagrams_sent)
                  + " datagrams_received="
                  + std::to_string(s.datagrams_received)
                  + " bytes_sent=" + std::to_string(s.bytes_sent)
                  + " lost_packets=" + std::to_string(s.lost_packets);
          },
          [&](const caf::error& e) {
            out = "stats: " + sys_.render(e);
          });
      return out;
    }
    return "no connection to bench-b";
  }

  mycorrizal_client(const mycorrizal_client&) = delete;
  mycorrizal_client& operator=(const mycorrizal_client&) = delete;

  actor_bench& bench() {
    return bench_;
  }

private:
  caf::actor_system_config cfg_;
  caf::actor_system sys_;
  std::shared_ptr<mycorrizal::node> node_;
  caf::actor relay_;
  actor_bench bench_{"mycorrizal", sys_, {}, {}};
};

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

void print_rtt(const char* variant, const measurement& m) {
  auto s = summary::of(m.rtt_us);
  std::printf("%s rtt_64B p50_us=%.1f p99_us=%.1f mean_us=%.1f n=%zu "
              "cpu_us_per_rtt=%.1f\n",
              variant, s.median, s.p99, s.mean, s.n,
              m.cpu_seconds * 1e6 / static_cast<double>(m.n));
  std::fflush(stdout);
}

void print_hol(const char* variant, const measurement& alone,
               const measurement& loaded, double bulk_bytes,
               double bulk_seconds, size_t bulk_size, double copied) {
  auto a = summary::of(alone.rtt_us);
  auto l = summary::of(loaded.rtt_us);
  std::printf("%s hol_rtt_64B alone_p50_us=%.1f alone_p99_us=%.1f "
              "loaded_p50_us=%.1f loaded_p99_us=%.1f p99_ratio=%.2f "
              "bulk_MBps=%.1f bulk_message_B=%zu bulk_copied=%.0f n=%zu\n",
              variant, a.median, a.p99, l.median, l.p99, l.p99 / a.p99,
              bulk_bytes / bulk_seconds / 1e6, bulk_size, copied, l.n);
  // Where the time went: the request travels with the bulk, the response
  // against it.
  for (auto* m : {&alone, &loaded}) {
    auto q = summary::of(m->request_us);
    auto r = summary::of(m->response_us);
    std::printf("# %s hol %s: request one-way p50/p99 %.1f/%.1f us, "
                "response one-way p50/p99 %.1f/%.1f us\n",
                variant, m == &alone ? "alone" : "loaded", q.median, q.p99,
                r.median, r.p99);
  }
  std::fflush(stdout);
}

void print_oneway(const char* variant, const measurement& m) {
  std::printf("%s oneway_1KiB msgs_per_s=%.0f n=%zu cpu_us_per_msg=%.2f\n",
              variant, static_cast<double>(m.n) / m.seconds, m.n,
              m.cpu_seconds * 1e6 / static_cast<double>(m.n));
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  auto opts = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    // Fork the CAF server first, while this process has no threads.
    std::unique_ptr<caf_server_process> server_proc;
    std::unique_ptr<caf_server_process> node_proc;
    // Both nodes make their certificates in one development-mode directory
    // (one CA), removed at the end.
    char dir_template[] = "/tmp/rpc_baselines.XXXXXX";
    std::string data_dir;
    if (opts.run_mycorrizal) {
      if (::mkdtemp(dir_template) == nullptr) {
        fail_sys("mkdtemp");
      }
      data_dir = dir_template;
    }
    if (opts.run_caf) {
      server_proc = std::make_unique<caf_server_process>(
        "caf_middleman", [&](int port_fd, int ctl_fd) {
          caf_server_main(port_fd, ctl_fd, opts);
        });
    }
    if (opts.run_mycorrizal) {
      node_proc = std::make_unique<caf_server_process>(
        "mycorrizal", [&](int port_fd, int ctl_fd) {
          mycorrizal_server_main(port_fd, ctl_fd, opts, data_dir);
        });
    }
    std::unique_ptr<caf_client> client;
    std::unique_ptr<mycorrizal_client> node_client;
    if (server_proc) {
      client = std::make_unique<caf_client>(server_proc->port(), opts);
    }
    if (node_proc) {
      node_client = std::make_unique<mycorrizal_client>(node_proc->port(), opts,
                                                        data_dir);
    }
    cpu_probe node_cpu = [&] {
      return cpu_seconds() + (node_proc ? node_proc->cpu() : 0.0);
    };
    cpu_probe tcp_cpu = [] {
      return cpu_seconds();
    };
    cpu_probe caf_cpu = [&] {
      return cpu_seconds() + (server_proc ? server_proc->cpu() : 0.0);
    };
    std::printf("# rpc_baselines: 127.0.0.1, rtt payload %zu B, one-way "
                "payload %zu B, requests %zu (+%zu warm-up), messages %zu "
                "(+%llu warm-up), ack every %zu, window %zu batches, CAF "
                "workers %zu%s%s\n",
                rtt_payload, oneway_payload, opts.requests, opts.warmup,
                opts.messages,
                static_cast<unsigned long long>(opts.oneway_warmup()),
                opts.ack_every, opts.window, opts.workers,
                opts.park_at_once ? " (parking at once)" : "",
                opts.run_caf ? ", CAF server in child process" : "");
    std::fflush(stdout);
    for (size_t rep = 0; rep < opts.repeat; ++rep) {
      auto m0 = machine_cpu::now();
      auto own0 = cpu_seconds();
      auto child0 = (server_proc ? server_proc->cpu() : 0.0)
                    + (node_proc ? node_proc->cpu() : 0.0);
      auto w0 = clock_type::now();
      // Round trips of both variants, then one-way of both, so that a burst
      // of load on the machine tends to hit both.
      if (opts.run_tcp) {
        print_rtt("raw_tcp", tcp_rtt(opts, tcp_cpu));
      }
      if (client) {
        print_rtt("caf_middleman", client->bench().rtt(opts, caf_cpu));
      }
      if (node_client) {
        print_rtt("mycorrizal", node_client->bench().rtt(opts, node_cpu));
      }
      if (opts.run_tcp) {
        print_oneway("raw_tcp", tcp_oneway(opts, tcp_cpu));
      }
      if (client) {
        print_oneway("caf_middleman", client->bench().oneway(opts, caf_cpu));
      }
      if (node_client) {
        print_oneway("mycorrizal", node_client->bench().oneway(opts, node_cpu));
        std::printf("# mycorrizal quic (bench-a → bench-b, totals): %s\n",
                    node_client->quic_summary().c_str());
      }
      if (node_client && opts.run_hol) {
        auto h = node_client->hol(opts, node_cpu);
        print_hol(opts.hol_copy_only ? "mycorrizal_copy_only" : "mycorrizal",
                  h.alone, h.loaded, h.bulk_bytes, h.bulk_seconds,
                  opts.hol_size, h.copied);
      }
      auto wall = seconds(w0, clock_type::now());
      auto m1 = machine_cpu::now();
      auto ours = (cpu_seconds() - own0)
                  + ((server_proc ? server_proc->cpu() : 0.0)
                     + (node_proc ? node_proc->cpu() : 0.0) - child0);
      auto others = std::max(0.0, (m1.busy - m0.busy) - ours);
      std::printf("# repeat %zu/%zu: %.1f s wall, this program %.2f cores, "
                  "other processes %.2f cores, steal %.2f cores (of %u)\n",
                  rep + 1, opts.repeat, wall, ours / wall, others / wall,
                  (m1.steal - m0.steal) / wall,
                  std::thread::hardware_concurrency());
      std::fflush(stdout);
    }
    client.reset();
    server_proc.reset();
    node_client.reset();
    node_proc.reset();
    if (!data_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir, ec);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rpc_baselines: %s\n", e.what());
    return 2;
  }
  return 0;
}
