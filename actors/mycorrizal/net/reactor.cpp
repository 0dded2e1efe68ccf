// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/net/reactor.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

// The loop, in short: one thread blocks in epoll_wait over an eventfd (the
// command queue's doorbell), the UDP sockets, the TCP listeners and the TCP
// connections, with a timeout taken from a min-heap of deadlines. Public
// functions create sockets on the caller's thread (so that bind errors come
// back synchronously), enter them in a registry that the send path reads,
// and post a command that makes the loop take them over. The registry holds
// UDP sockets by shared_ptr: a descriptor is closed only after the last
// concurrent sendto on it has returned, so a racing close can never make a
// send hit a reused descriptor number.
//
// Resource ids carry their kind in the low two bits, which is also what the
// loop stores in epoll_event::data: 0 is the eventfd, 1 a UDP socket, 2 a
// listener, 3 a connection.

namespace mycorrizal::net {

// -- ids ----------------------------------------------------------------------

std::string to_string(udp_socket_id x) {
  return fmt::format("udp#{}", static_cast<uint64_t>(x) >> 2);
}

std::string to_string(tcp_listener_id x) {
  return fmt::format("tcp-listener#{}", static_cast<uint64_t>(x) >> 2);
}

std::string to_string(tcp_conn_id x) {
  return fmt::format("tcp#{}", static_cast<uint64_t>(x) >> 2);
}

// -- option validation --------------------------------------------------------

namespace {

error bad_field(std::string_view field, std::string_view what) {
  return error{errc::invalid_config, fmt::format("{}: {}", field, what)};
}

} // namespace

void udp_filter::block(const ip_endpoint& from) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (std::find(blocked_.begin(), blocked_.end(), from) == blocked_.end()) {
    blocked_.push_back(from);
  }
}

void udp_filter::unblock(const ip_endpoint& from) {
  std::lock_guard<std::mutex> guard{mtx_};
  blocked_.erase(std::remove(blocked_.begin(), blocked_.end(), from),
                 blocked_.end());
}

bool udp_filter::blocks(const ip_endpoint& from) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return std::find(blocked_.begin(), blocked_.end(), from) != blocked_.end();
}

expected<void> udp_options::validate() const {
  if (max_datagram_size == 0 || max_datagram_size > 65535) {
    return unexpected{
      bad_field("udp.max_datagram_size",
                fmt::format("must be in 1..65535, got {}", max_datagram_size))};
  }
  if (batch_size == 0 || batch_size > 1024) {
    return unexpected{bad_field(
      "udp.batch_size", fmt::format("must be in 1..1024, got {}", batch_size))};
  }
  if (receive_buffer > INT_MAX / 2 || send_buffer > INT_MAX / 2) {
    return unexpected{
      bad_field("udp.receive_buffer/send_buffer", "must be below 1 GiB")};
  }
  if (reorder_every_nth != 0 && reorder_max_hold.count() <= 0) {
    return unexpected{
      bad_field("udp.reorder_max_hold", "must be positive with reordering")};
  }
  return {};
}

expected<void> tcp_options::validate() const {
  if (deadline.count() < 0) {
    return unexpected{bad_field("tcp.deadline", "must not be negative")};
  }
  if (idle_timeout.count() < 0) {
    return unexpected{bad_field("tcp.idle_timeout", "must not be negative")};
  }
  if (max_write_queue == 0) {
    return unexpected{bad_field("tcp.max_write_queue", "must be at least 1")};
  }
  if (read_chunk == 0 || read_chunk > (size_t{16} << 20)) {
    return unexpected{
      bad_field("tcp.read_chunk",
                fmt::format("must be in 1..16 MiB, got {}", read_chunk))};
  }
  if (max_connections == 0) {
    return unexpected{bad_field("tcp.max_connections", "must be at least 1")};
  }
  if (backlog < 0) {
    return unexpected{bad_field("tcp.backlog", "must not be negative")};
  }
  return {};
}

expected<void> reactor_config::validate() const {
  if (max_batches_per_wakeup == 0) {
    return unexpected{
      bad_field("reactor.max_batches_per_wakeup", "must be at least 1")};
  }
  if (max_accepts_per_wakeup == 0) {
    return unexpected{
      bad_field("reactor.max_accepts_per_wakeup", "must be at least 1")};
  }
  return {};
}

namespace {

// -- system helpers -----------------------------------------------------------

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

constexpr auto no_time = time_point::max();

/// The loop thread's name (at most 15 characters).
constexpr const char* thread_name = "mcz.reactor";

constexpr uint64_t tag_event = 0;
constexpr uint64_t tag_udp = 1;
constexpr uint64_t tag_listener = 2;
constexpr uint64_t tag_conn = 3;

constexpr uint64_t tag_of(uint64_t id) noexcept {
  return id & 3U;
}

std::string system_message(int err) {
  if (err == ECONNREFUSED) {
    return "connection refused";
  }
  return std::system_category().message(err);
}

/// A system call failed: `connection_lost` with `"<what>: <strerror>"`.
error sys_error(std::string_view what, int err) {
  return error{errc::connection_lost,
               fmt::format("{}: {}", what, system_message(err))};
}

/// An owned file descriptor.
class unique_fd {
public:
  unique_fd() noexcept = default;

  explicit unique_fd(int fd) noexcept : fd_(fd) {
    // nop
  }

  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
    // nop
  }

  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset(std::exchange(other.fd_, -1));
    }
    return *this;
  }

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  ~unique_fd() {
    reset();
  }

  int get() const noexcept {
    return fd_;
  }

  explicit operator bool() const noexcept {
    return fd_ >= 0;
  }

  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

int family_of(const ip_endpoint& ep) noexcept {
  return ep.is_v4() ? AF_INET : AF_INET6;
}

/// Fills `out` with `ep` for a socket of `family`. An IPv4 endpoint becomes
/// IPv4-mapped on an IPv6 socket; an IPv6 one cannot go to an IPv4 socket.
bool to_sockaddr(const ip_endpoint& ep, int family, sockaddr_storage& out,
                 socklen_t& len) noexcept {
  std::memset(&out, 0, sizeof(out));
  const auto& b = ep.bytes();
  if (family == AF_INET) {
    if (!ep.is_v4()) {
      return false;
    }
    auto* sa = reinterpret_cast<sockaddr_in*>(&out);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(ep.port());
    std::memcpy(&sa->sin_addr, b.data() + 12, 4);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* sa = reinterpret_cast<sockaddr_in6*>(&out);
  sa->sin6_family = AF_INET6;
  sa->sin6_port = htons(ep.port());
  std::memcpy(&sa->sin6_addr, b.data(), 16);
  len = sizeof(sockaddr_in6);
  return true;
}

ip_endpoint from_sockaddr(const sockaddr_storage& ss) noexcept {
  if (ss.ss_family == AF_INET) {
    const auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
    auto addr = ntohl(sa->sin_addr.s_addr);
    return ip_endpoint::v4(static_cast<uint8_t>(addr >> 24),
                           static_cast<uint8_t>(addr >> 16),
                           static_cast<uint8_t>(addr >> 8),
                           static_cast<uint8_t>(addr), ntohs(sa->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
    auto bytes = std::span{reinterpret_cast<const std::byte*>(&sa->sin6_addr),
                           16};
    if (auto ep = ip_endpoint::from_bytes(bytes, ntohs(sa->sin6_port))) {
      return *ep;
    }
  }
  return ip_endpoint{};
}

/// A non-blocking, close-on-exec socket of `type` for `family`; `what`
/// names it in errors ("udp", "tcp").
expected<unique_fd> open_socket(int family, int type, std::string_view what) {
  unique_fd fd{::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!fd) {
    return unexpected{sys_error(fmt::format("socket({})", what), errno)};
  }
  return fd;
}

/// Binds `fd`, a socket of `family`, to `at`.
expected<void> bind_socket(int fd, int family, const ip_endpoint& at,
                           std::string_view what) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  to_sockaddr(at, family, ss, len);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return unexpected{
      sys_error(fmt::format("bind {} {}", what, to_string(at)), errno)};
  }
  return {};
}

ip_endpoint local_endpoint(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ip_endpoint{};
  }
  return from_sockaddr(ss);
}

int socket_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    return errno;
  }
  return err;
}

bool set_int_option(int fd, int level, int name, int value) noexcept {
  return ::setsockopt(fd, level, name, &value, sizeof(value)) == 0;
}

int get_int_option(int fd, int level, int name) noexcept {
  int value = 0;
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, level, name, &value, &len) != 0) {
    return -1;
  }
  return value;
}

/// Raises a socket buffer to `wanted` bytes. `SO_RCVBUF` is capped by
/// `net.core.rmem_max`; when the result falls short, `SO_RCVBUFFORCE`
/// (CAP_NET_ADMIN only) is tried too. Returns what getsockopt reports.
size_t raise_buffer(int fd, int name, int force_name, size_t wanted) noexcept {
  if (wanted > 0) {
    auto value = static_cast<int>(wanted);
    set_int_option(fd, SOL_SOCKET, name, value);
    // Linux reports twice the requested size (bookkeeping overhead).
    if (get_int_option(fd, SOL_SOCKET, name) / 2 < value) {
      set_int_option(fd, SOL_SOCKET, force_name, value);
    }
  }
  auto granted = get_int_option(fd, SOL_SOCKET, name);
  return granted < 0 ? 0 : static_cast<size_t>(granted);
}

std::string ms_text(std::chrono::milliseconds x) {
  return fmt::format("{} ms", x.count());
}

// -- counters -----------------------------------------------------------------

using counter = std::atomic<uint64_t>;

struct udp_counters {
  counter datagrams_in{0};
  counter bytes_in{0};
  counter datagrams_out{0};
  counter bytes_out{0};
  counter receive_errors{0};
  counter send_errors{0};
  counter fault_drops{0};
  counter fault_reorders{0};
  counter truncated{0};
  counter batches{0};

  udp_stats snapshot() const noexcept {
    auto get = [](const counter& x) {
      return x.load(std::memory_order_relaxed);
    };
    udp_stats r;
    r.datagrams_in = get(datagrams_in);
    r.bytes_in = get(bytes_in);
    r.datagrams_out = get(datagrams_out);
    r.bytes_out = get(bytes_out);
    r.receive_errors = get(receive_errors);
    r.send_errors = get(send_errors);
    r.fault_drops = get(fault_drops);
    r.fault_reorders = get(fault_reorders);
    r.truncated = get(truncated);
    r.batches = get(batches);
    return r;
  }
};

using udp_field = counter udp_counters::*;

struct tcp_counters {
  counter accepted{0};
  counter rejected{0};
  counter connects{0};
  counter connect_failures{0};
  counter timeouts{0};
  counter bytes_in{0};
  counter bytes_out{0};
  counter queue_full{0};
  counter errors{0};
};

void bump(counter& x, uint64_t n = 1) noexcept {
  x.fetch_add(n, std::memory_order_relaxed);
}

// -- state shared between callers and the loop --------------------------------

/// A UDP socket as the send path sees it. The descriptor closes when the
/// last reference goes away.
struct udp_shared {
  unique_fd fd;
  int family = AF_INET;
  /// `udp_options::gso` was asked for and the kernel did not refuse it yet.
  std::atomic<bool> gso{false};
  udp_counters counters;
};

#ifndef UDP_SEGMENT
#  define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#  define UDP_GRO 104
#endif

/// Most segments the kernel takes in one GSO send (UDP_MAX_SEGMENTS).
constexpr size_t max_gso_segments = 64;

/// Largest UDP payload of one GSO send (one IPv4 packet before segmenting).
constexpr size_t max_gso_bytes = 65507;

/// Control buffer for one received datagram's UDP_GRO segment size.
constexpr size_t udp_control_size = CMSG_SPACE(sizeof(int)) + 16;

/// A TCP connection as `write_tcp` sees it.
struct tcp_shared {
  explicit tcp_shared(size_t limit) : max_queue(limit) {
    // nop
  }

  /// Bytes accepted by `write_tcp` and not yet handed to the kernel.
  std::atomic<size_t> queued{0};

  /// Set by `shutdown_tcp_write` / `close_tcp` and when the loop closes the
  /// connection; later writes fail.
  std::atomic<bool> write_closed{false};

  const size_t max_queue;
};

// -- commands -----------------------------------------------------------------

struct cmd_add_udp {
  uint64_t id;
  std::shared_ptr<udp_shared> socket;
  caf::actor owner;
  udp_options opts;
};

struct cmd_close_udp {
  uint64_t id;
};

struct cmd_add_listener {
  uint64_t id;
  unique_fd fd;
  caf::actor owner;
  tcp_options opts;
  ip_endpoint local;
};

struct cmd_close_listener {
  uint64_t id;
};

struct cmd_connect {
  uint64_t id;
  unique_fd fd;
  caf::actor owner;
  tcp_options opts;
  std::shared_ptr<tcp_shared> shared;
  ip_endpoint peer;
  int connect_errno; // 0, EINPROGRESS, or the failure
  std::chrono::milliseconds timeout;
  time_point started;
};

struct cmd_write {
  uint64_t id;
  std::vector<std::byte> data;
};

struct cmd_shutdown_write {
  uint64_t id;
};

struct cmd_close_conn {
  uint64_t id;
  close_mode mode;
};

struct cmd_owner_down {
  caf::actor_addr owner;
};

using command
  = std::variant<cmd_add_udp, cmd_close_udp, cmd_add_listener,
                 cmd_close_listener, cmd_connect, cmd_write, cmd_shutdown_write,
                 cmd_close_conn, cmd_owner_down>;

// -- loop-side state ----------------------------------------------------------

struct udp_entry {
  uint64_t id = 0;
  std::shared_ptr<udp_shared> socket;
  caf::actor owner;
  udp_options opts;
  uint64_t rx_seq = 0;   // intact datagrams received (drop_every_nth)
  uint64_t pass_seq = 0; // datagrams that survived dropping (reorder)
  std::optional<udp_datagram> held;
  time_point held_since;
  time_point timer = no_time; // pending heap entry, if any
};

struct listener_entry {
  uint64_t id = 0;
  unique_fd fd;
  caf::actor owner;
  tcp_options opts;
  ip_endpoint local;
  size_t open_conns = 0;
  bool paused = false;
};

enum class conn_state : uint8_t { connecting, open };

struct conn_entry {
  uint64_t id = 0;
  unique_fd fd;
  caf::actor owner;
  tcp_options opts;
  std::shared_ptr<tcp_shared> shared;
  uint64_t listener = 0; // 0 for dialed connections
  ip_endpoint peer;
  conn_state state = conn_state::open;
  bool read_eof = false;
  bool shut_requested = false;
  bool shut_done = false;
  bool close_requested = false;
  std::deque<std::vector<std::byte>> out;
  size_t out_offset = 0; // bytes of out.front() already written
  uint64_t received = 0;
  uint32_t interest = 0; // registered epoll events
  std::chrono::milliseconds connect_timeout{0};
  time_point started;
  time_point connect_deadline = no_time;
  time_point deadline = no_time;
  time_point last_activity;
  time_point timer = no_time;
};

struct timer_entry {
  time_point when;
  uint64_t id;

  friend bool operator>(const timer_entry& x, const timer_entry& y) noexcept {
    return x.when > y.when;
  }
};

} // namespace

// -- impl ---------------------------------------------------------------------

class reactor::impl : public std::enable_shared_from_this<reactor::impl> {
public:
  explicit impl(reactor_config cfg) : cfg_(cfg) {
    // nop
  }

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  ~impl() {
    // The reactor's destructor stopped us; if a functor's temporary
    // reference made us outlive it, everything is closed already.
  }

  // -- lifecycle --------------------------------------------------------------

  expected<void> start();
  void stop();

  bool running() const noexcept {
    return state_.load(std::memory_order_acquire) == run_state::running;
  }

  // -- API --------------------------------------------------------------------

  expected<udp_socket> open_udp(const ip_endpoint& bind,
                                const caf::actor& owner,
                                const udp_options& opts);
  expected<void> send_udp(uint64_t id, const ip_endpoint& to,
                          std::span<const std::byte> data);
  expected<size_t> send_udp_gso(udp_shared& s,
                                std::span<const udp_send_item> items);

  expected<size_t> send_udp_many(uint64_t id,
                                 std::span<const udp_send_item> items);
  expected<void> close_udp(uint64_t id);
  expected<tcp_listener> listen_tcp(const ip_endpoint& bind,
                                    const caf::actor& owner,
                                    const tcp_options& opts);
  expected<void> close_tcp_listener(uint64_t id);
  expected<tcp_conn_id>
  connect_tcp(const ip_endpoint& to, const caf::actor& owner,
              std::chrono::milliseconds timeout, const tcp_options& opts);
  expected<void> write_tcp(uint64_t id, std::vector<std::byte>&& data);
  expected<void> shutdown_tcp_write(uint64_t id);
  expected<void> close_tcp(uint64_t id, close_mode mode);
  reactor_stats stats() const noexcept;
  expected<udp_stats> stats(uint64_t id) const;

private:
  enum class run_state : uint8_t { idle, running, stopped };

  // -- caller side ------------------------------------------------------------

  uint64_t next_id(uint64_t tag) noexcept {
    return (next_id_.fetch_add(1, std::memory_order_relaxed) << 2) | tag;
  }

  bool stopped() const noexcept {
    return state_.load(std::memory_order_acquire) == run_state::stopped;
  }

  static error stopped_error() {
    return error{errc::shutting_down, "reactor stopped"};
  }

  /// What every call that opens a socket for `owner` checks first; `kind`
  /// ("udp" or "tcp") prefixes the field name in errors.
  template <class Options>
  expected<void> check_open(const Options& opts, const caf::actor& owner,
                            std::string_view kind) const {
    if (stopped()) {
      return unexpected{stopped_error()};
    }
    if (auto ok = opts.validate(); !ok) {
      return ok;
    }
    if (!owner) {
      return unexpected{
        bad_field(fmt::format("{}.owner", kind), "must be a valid actor")};
    }
    return {};
  }

  /// Posts `cmd` unless stopped; runs `registry_update` under the same lock
  /// so that a stop cannot slip in between. Returns false when stopped.
  /// Takes the command's alternative type, not a `command`: no temporary
  /// variant in the callers (GCC 12 warns about those, falsely).
  template <class Cmd, class F>
  bool post(Cmd&& cmd, F registry_update);

  template <class Cmd>
  bool post(Cmd&& cmd) {
    return post(std::forward<Cmd>(cmd), [] {});
  }

  /// Makes sure that `owner`'s death closes its resources.
  void watch(const caf::actor& owner);

  /// Called by the functor attached to a dead owner.
  void owner_down(const caf::actor_addr& addr);

  std::shared_ptr<udp_shared> find_udp(uint64_t id) const;
  std::shared_ptr<tcp_shared> find_tcp(uint64_t id) const;

  /// Rings the eventfd; requires mutex_.
  void wake() noexcept;

  // -- loop side --------------------------------------------------------------

  void run();
  void drain_commands();
  void handle(cmd_add_udp& cmd);
  void handle(cmd_close_udp& cmd);
  void handle(cmd_add_listener& cmd);
  void handle(cmd_close_listener& cmd);
  void handle(cmd_connect& cmd);
  void handle(cmd_write& cmd);
  void handle(cmd_shutdown_write& cmd);
  void handle(cmd_close_conn& cmd);
  void handle(cmd_owner_down& cmd);

  void on_udp_readable(udp_entry& e);
  void deliver_udp(udp_entry& e, udp_batch&& batch);
  void on_accept(listener_entry& l);
  void on_conn_event(conn_entry& c, uint32_t events);
  /// Each of these returns false when it closed (and destroyed) `c`.
  bool on_connected(conn_entry& c);
  bool do_read(conn_entry& c);
  bool do_write(conn_entry& c);
  void close_conn(conn_entry& c, error reason, bool notify = true);
  void close_listener(listener_entry& l);
  void close_udp_entry(udp_entry& e);
  void update_interest(conn_entry& c);
  void arm(uint64_t id, time_point& slot, time_point when);
  void run_timers(time_point now);
  int next_timeout_ms(time_point now) const;
  void teardown();

  bool epoll_add(int fd, uint64_t id, uint32_t events) noexcept;
  void epoll_del(int fd) noexcept;

  void count_udp(udp_shared& s, udp_field field, uint64_t n = 1) noexcept {
    bump(s.counters.*field, n);
    bump(udp_total_.*field, n);
  }

  void ensure_udp_scratch(size_t batch, size_t max_size);

  /// One received datagram: counters, fault injection, into `out`.
  void take_datagram(udp_entry& e, udp_batch& out, const ip_endpoint& from,
                     const std::byte* first, size_t len, time_point now);

  // -- configuration and lifecycle --------------------------------------------

  const reactor_config cfg_;
  std::atomic<run_state> state_{run_state::idle};
  std::atomic<bool> stop_requested_{false};
  std::mutex stop_mutex_; // serializes stop()
  std::thread thread_;
  unique_fd epoll_fd_;
  unique_fd event_fd_;
  std::atomic<uint64_t> next_id_{1};

  // -- guarded by mutex_ ------------------------------------------------------

  std::mutex mutex_;
  std::vector<command> commands_;
  bool wake_pending_ = false;
  std::set<caf::actor_addr> watched_;

  // -- registry (registry_mutex_; taken after mutex_, never before) ----------

  mutable std::shared_mutex registry_mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<udp_shared>> udp_registry_;
  std::unordered_map<uint64_t, std::shared_ptr<tcp_shared>> tcp_registry_;
  std::unordered_set<uint64_t> listener_registry_;

  // -- counters ---------------------------------------------------------------

  udp_counters udp_total_;
  tcp_counters tcp_total_;
  counter open_udp_{0};
  counter open_listeners_{0};
  counter open_conns_{0};
  counter wakeups_{0};

  // -- owned by the loop thread (or by stop() once the loop is gone) ----------

  std::unordered_map<uint64_t, udp_entry> udp_;
  std::unordered_map<uint64_t, listener_entry> listeners_;
  std::unordered_map<uint64_t, conn_entry> conns_;
  std::priority_queue<timer_entry, std::vector<timer_entry>,
                      std::greater<timer_entry>>
    timers_;
  std::vector<std::byte> udp_buf_;
  std::vector<mmsghdr> udp_msgs_;
  std::vector<iovec> udp_iov_;
  std::vector<sockaddr_storage> udp_addrs_;
  std::vector<std::array<char, udp_control_size>> udp_ctrl_;
  std::vector<std::byte> tcp_buf_;
};

// -- impl: caller side --------------------------------------------------------

template <class Cmd, class F>
bool reactor::impl::post(Cmd&& cmd, F registry_update) {
  std::lock_guard guard{mutex_};
  if (stopped()) {
    return false;
  }
  registry_update();
  commands_.emplace_back(std::in_place_type<std::decay_t<Cmd>>,
                         std::forward<Cmd>(cmd));
  if (!wake_pending_) {
    wake_pending_ = true;
    wake();
  }
  return true;
}

void reactor::impl::wake() noexcept {
  // Called with mutex_ held, which also guards event_fd_. Before start()
  // there is no descriptor: the loop drains the queue when it begins.
  if (event_fd_) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_fd_.get(), &one, sizeof(one));
  }
}

void reactor::impl::watch(const caf::actor& owner) {
  {
    std::lock_guard guard{mutex_};
    if (!watched_.insert(owner.address()).second) {
      return;
    }
  }
  // Outside the lock: for a dead owner CAF runs the functor right away.
  std::weak_ptr<impl> weak = weak_from_this();
  auto addr = owner.address();
  caf::actor_cast<caf::abstract_actor*>(owner)->attach_functor([weak, addr]() {
    if (auto self = weak.lock()) {
      self->owner_down(addr);
    }
  });
}

void reactor::impl::owner_down(const caf::actor_addr& addr) {
  {
    std::lock_guard guard{mutex_};
    watched_.erase(addr);
  }
  post(cmd_owner_down{addr});
}

std::shared_ptr<udp_shared> reactor::impl::find_udp(uint64_t id) const {
  std::shared_lock guard{registry_mutex_};
  auto i = udp_registry_.find(id);
  return i == udp_registry_.end() ? nullptr : i->second;
}

std::shared_ptr<tcp_shared> reactor::impl::find_tcp(uint64_t id) const {
  std::shared_lock guard{registry_mutex_};
  auto i = tcp_registry_.find(id);
  return i == tcp_registry_.end() ? nullptr : i->second;
}

expected<void> reactor::impl::start() {
  std::lock_guard stop_guard{stop_mutex_};
  auto st = state_.load();
  if (st == run_state::stopped) {
    return unexpected{stopped_error()};
  }
  if (st == run_state::running) {
    return {};
  }
  if (auto ok = cfg_.validate(); !ok) {
    return unexpected{ok.error()};
  }
  unique_fd ep{::epoll_create1(EPOLL_CLOEXEC)};
  if (!ep) {
    return unexpected{sys_error("epoll_create1", errno)};
  }
  unique_fd ev{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  if (!ev) {
    return unexpected{sys_error("eventfd", errno)};
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = tag_event;
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ev.get(), &event) != 0) {
    return unexpected{sys_error("epoll_ctl(eventfd)", errno)};
  }
  epoll_fd_ = std::move(ep);
  {
    std::lock_guard guard{mutex_};
    event_fd_ = std::move(ev);
  }
  try {
    thread_ = std::thread{[this] {
      run();
    }};
  } catch (const std::system_error& ex) {
    return unexpected{
      error{errc::connection_lost, fmt::format("thread: {}", ex.what())}};
  }
  // Named here as well as in run(), so that the name is set when start()
  // returns.
  pthread_setname_np(thread_.native_handle(), thread_name);
  state_.store(run_state::running, std::memory_order_release);
  MYCORRIZAL_LOG_DEBUG("reactor", "started");
  return {};
}

void reactor::impl::stop() {
  std::lock_guard stop_guard{stop_mutex_};
  {
    std::lock_guard guard{mutex_};
    if (state_.load() == run_state::stopped) {
      return;
    }
    state_.store(run_state::stopped, std::memory_order_release);
  }
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      // Cannot join ourselves; the loop sees the flag and tears down.
      MYCORRIZAL_LOG_ERROR("reactor", "stop() called on the reactor thread");
      stop_requested_.store(true, std::memory_order_release);
      thread_.detach();
      return;
    }
    stop_requested_.store(true, std::memory_order_release);
    {
      std::lock_guard guard{mutex_};
      wake();
    }
    thread_.join();
  }
  teardown();
  MYCORRIZAL_LOG_DEBUG("reactor", "stopped");
}

expected<udp_socket> reactor::impl::open_udp(const ip_endpoint& bind,
                                             const caf::actor& owner,
                                             const udp_options& opts) {
  if (auto ok = check_open(opts, owner, "udp"); !ok) {
    return unexpected{ok.error()};
  }
  auto family = family_of(bind);
  auto sock = open_socket(family, SOCK_DGRAM, "udp");
  if (!sock) {
    return unexpected{sock.error()};
  }
  auto fd = std::move(*sock);
  if (opts.reuse_address) {
    set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  }
  if (family == AF_INET6) {
    set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, opts.v6_only ? 1 : 0);
  }
  udp_socket result;
  result.receive_buffer = raise_buffer(fd.get(), SO_RCVBUF, SO_RCVBUFFORCE,
                                       opts.receive_buffer);
  result.send_buffer = raise_buffer(fd.get(), SO_SNDBUF, SO_SNDBUFFORCE,
                                    opts.send_buffer);
  if (auto ok = bind_socket(fd.get(), family, bind, "udp"); !ok) {
    return unexpected{ok.error()};
  }
  result.local = local_endpoint(fd.get());
  auto id = next_id(tag_udp);
  result.id = udp_socket_id{id};
  if (opts.gro) {
    // Best effort: without UDP_GRO the kernel hands datagrams over singly.
    set_int_option(fd.get(), SOL_UDP, UDP_GRO, 1);
  }
  auto shared = std::make_shared<udp_shared>();
  shared->fd = std::move(fd);
  shared->family = family;
  shared->gso.store(opts.gso, std::memory_order_relaxed);
  auto posted = post(cmd_add_udp{id, shared, owner, opts}, [&] {
    std::unique_lock guard{registry_mutex_};
    udp_registry_.emplace(id, shared);
    bump(open_udp_);
  });
  if (!posted) {
    return unexpected{stopped_error()};
  }
  watch(owner);
  MYCORRIZAL_LOG_DEBUG("reactor", "{} bound to {} (rcvbuf {}, sndbuf {})",
                       to_string(result.id), to_string(result.local),
                       result.receive_buffer, result.send_buffer);
  return result;
}

namespace {

error send_error(int err, const ip_endpoint& to, size_t size) {
  switch (err) {
    case EAGAIN:
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK:
#endif
    case ENOBUFS:
      return error{errc::queue_full,
                   fmt::format("send to {}: socket buffer full",
                               to_string(to))};
    case EMSGSIZE:
      return error{errc::too_large,
                   fmt::format("send {} bytes to {}: {}", size, to_string(to),
                               system_message(err))};
    default: return sys_error(fmt::format("send to {}", to_string(to)), err);
  }
}

error unknown_udp(uint64_t id) {
  return error{errc::connection_lost,
               fmt::format("unknown or closed {}",
                           to_string(udp_socket_id{id}))};
}

error wrong_family(const ip_endpoint& to) {
  return error{errc::connection_lost,
               fmt::format("cannot send to {} from an IPv4 socket",
                           to_string(to))};
}

} // namespace

expected<void> reactor::impl::send_udp(uint64_t id, const ip_endpoint& to,
                                       std::span<const std::byte> data) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  auto s = find_udp(id);
  if (!s) {
    return unexpected{unknown_udp(id)};
  }
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!to_sockaddr(to, s->family, ss, len)) {
    count_udp(*s, &udp_counters::send_errors);
    return unexpected{wrong_family(to)};
  }
  for (;;) {
    auto n = ::sendto(s->fd.get(), data.data(), data.size(),
                      MSG_DONTWAIT | MSG_NOSIGNAL,
                      reinterpret_cast<const sockaddr*>(&ss), len);
    if (n >= 0) {
      count_udp(*s, &udp_counters::datagrams_out);
      count_udp(*s, &udp_counters::bytes_out, static_cast<uint64_t>(n));
      return {};
    }
    if (errno == EINTR) {
      continue;
    }
    auto err = errno;
    count_udp(*s, &udp_counters::send_errors);
    return unexpected{send_error(err, to, data.size())};
  }
}

expected<size_t>
reactor::impl::send_udp_many(uint64_t id,
                             std::span<const udp_send_item> items) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  auto s = find_udp(id);
  if (!s) {
    return unexpected{unknown_udp(id)};
  }
  if (s->gso.load(std::memory_order_relaxed)) {
    auto sent = send_udp_gso(*s, items);
    if (sent || sent.error().code() != errc::invalid_config) {
      return sent;
    }
    // The kernel refused GSO (no UDP_SEGMENT): plain sends from now on.
    s->gso.store(false, std::memory_order_relaxed);
  }
  constexpr size_t max_chunk = 1024; // UIO_MAXIOV
  thread_local std::vector<mmsghdr> msgs;
  thread_local std::vector<iovec> iov;
  thread_local std::vector<sockaddr_storage> addrs;
  size_t total = 0;
  while (total < items.size()) {
    auto chunk = items.subspan(total,
                               std::min(max_chunk, items.size() - total));
    msgs.assign(chunk.size(), mmsghdr{});
    iov.resize(chunk.size());
    addrs.resize(chunk.size());
    for (size_t i = 0; i < chunk.size(); ++i) {
      socklen_t len = 0;
      if (!to_sockaddr(chunk[i].to, s->family, addrs[i], len)) {
        if (total + i == 0) {
          count_udp(*s, &udp_counters::send_errors);
          return unexpected{wrong_family(chunk[i].to)};
        }
        chunk = chunk.first(i);
        break;
      }
      // sendmmsg does not write through iov_base.
      iov[i].iov_base = const_cast<std::byte*>(chunk[i].data.data());
      iov[i].iov_len = chunk[i].data.size();
      auto& hdr = msgs[i].msg_hdr;
      hdr.msg_name = &addrs[i];
      hdr.msg_namelen = len;
      hdr.msg_iov = &iov[i];
      hdr.msg_iovlen = 1;
    }
    if (chunk.empty()) {
      break;
    }
    auto n = ::sendmmsg(s->fd.get(), msgs.data(),
                        static_cast<unsigned>(chunk.size()),
                        MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      auto err = errno;
      if (total == 0) {
        count_udp(*s, &udp_counters::send_errors);
        return unexpected{send_error(err, chunk[0].to, chunk[0].data.size())};
      }
      break;
    }
    uint64_t bytes = 0;
    for (int i = 0; i < n; ++i) {
      bytes += msgs[static_cast<size_t>(i)].msg_len;
    }
    count_udp(*s, &udp_counters::datagrams_out, static_cast<uint64_t>(n));
    count_udp(*s, &udp_counters::bytes_out, bytes);
    total += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < chunk.size()) {
      break;
    }
  }
  return total;
}

expected<size_t>
reactor::impl::send_udp_gso(udp_shared& s,
                            std::span<const udp_send_item> items) {
  // Runs of datagrams to one destination that lie back to back in memory,
  // all of one size but the last, leave as one sendmsg with UDP_SEGMENT: the
  // kernel cuts them apart again (in the NIC, or in software on loopback).
  struct run {
    size_t first = 0;
    size_t count = 0;
    size_t bytes = 0;
  };
  thread_local std::vector<run> runs;
  thread_local std::vector<mmsghdr> msgs;
  thread_local std::vector<iovec> iov;
  thread_local std::vector<sockaddr_storage> addrs;
  thread_local std::vector<std::array<char, udp_control_size>> controls;
  runs.clear();
  for (size_t i = 0; i < items.size();) {
    run r{i, 1, items[i].data.size()};
    auto seg = items[i].data.size();
    while (i + r.count < items.size() && r.count < max_gso_segments) {
      const auto& prev = items[i + r.count - 1];
      const auto& next = items[i + r.count];
      bool joins = next.to == prev.to
                   && next.data.data() == prev.data.data() + prev.data.size()
                   && prev.data.size() == seg && next.data.size() <= seg
                   && next.data.size() > 0
                   && r.bytes + next.data.size() <= max_gso_bytes;
      if (!joins) {
        break;
      }
      r.bytes += next.data.size();
      ++r.count;
      if (next.data.size() < seg) {
        break; // a shorter datagram ends a run
      }
    }
    runs.push_back(r);
    i += r.count;
  }
  msgs.assign(runs.size(), mmsghdr{});
  iov.resize(runs.size());
  addrs.resize(runs.size());
  controls.resize(runs.size());
  for (size_t k = 0; k < runs.size(); ++k) {
    const auto& r = runs[k];
    const auto& head = items[r.first];
    socklen_t len = 0;
    if (!to_sockaddr(head.to, s.family, addrs[k], len)) {
      if (k == 0) {
        count_udp(s, &udp_counters::send_errors);
        return unexpected{wrong_family(head.to)};
      }
      runs.resize(k);
      msgs.resize(k);
      break;
    }
    iov[k].iov_base = const_cast<std::byte*>(head.data.data());
    iov[k].iov_len = r.bytes;
    auto& hdr = msgs[k].msg_hdr;
    hdr.msg_name = &addrs[k];
    hdr.msg_namelen = len;
    hdr.msg_iov = &iov[k];
    hdr.msg_iovlen = 1;
    if (r.count > 1) {
      hdr.msg_control = controls[k].data();
      hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      auto* cm = CMSG_FIRSTHDR(&hdr);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      auto seg = static_cast<uint16_t>(head.data.size());
      std::memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    }
  }
  size_t done_runs = 0;
  size_t done_items = 0;
  while (done_runs < runs.size()) {
    auto n = ::sendmmsg(s.fd.get(), msgs.data() + done_runs,
                        static_cast<unsigned>(runs.size() - done_runs),
                        MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      auto err = errno;
      if (err == EINTR) {
        continue;
      }
      if (done_items == 0 && (err == EIO || err == EINVAL || err == ENOPROTOOPT)
          && runs[0].count > 1) {
        return unexpected{error{errc::invalid_config, "GSO refused"}};
      }
      if (done_items == 0) {
        count_udp(s, &udp_counters::send_errors);
        return unexpected{send_error(err, items[0].to, items[0].data.size())};
      }
      break;
    }
    for (int j = 0; j < n; ++j) {
      const auto& r = runs[done_runs + static_cast<size_t>(j)];
      count_udp(s, &udp_counters::datagrams_out, r.count);
      count_udp(s, &udp_counters::bytes_out, r.bytes);
      done_items += r.count;
    }
    done_runs += static_cast<size_t>(n);
    if (n == 0) {
      break;
    }
  }
  return done_items;
}

expected<void> reactor::impl::close_udp(uint64_t id) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  bool known = false;
  auto posted = post(cmd_close_udp{id}, [&] {
    std::unique_lock guard{registry_mutex_};
    known = udp_registry_.erase(id) > 0;
  });
  if (!posted) {
    return unexpected{stopped_error()};
  }
  if (!known) {
    return unexpected{unknown_udp(id)};
  }
  return {};
}

expected<tcp_listener> reactor::impl::listen_tcp(const ip_endpoint& bind,
                                                 const caf::actor& owner,
                                                 const tcp_options& opts) {
  if (auto ok = check_open(opts, owner, "tcp"); !ok) {
    return unexpected{ok.error()};
  }
  auto family = family_of(bind);
  auto sock = open_socket(family, SOCK_STREAM, "tcp");
  if (!sock) {
    return unexpected{sock.error()};
  }
  auto fd = std::move(*sock);
  set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (auto ok = bind_socket(fd.get(), family, bind, "tcp"); !ok) {
    return unexpected{ok.error()};
  }
  if (::listen(fd.get(), opts.backlog) != 0) {
    return unexpected{
      sys_error(fmt::format("listen tcp {}", to_string(bind)), errno)};
  }
  tcp_listener result;
  result.local = local_endpoint(fd.get());
  auto id = next_id(tag_listener);
  result.id = tcp_listener_id{id};
  auto posted
    = post(cmd_add_listener{id, std::move(fd), owner, opts, result.local}, [&] {
        std::unique_lock guard{registry_mutex_};
        listener_registry_.insert(id);
        bump(open_listeners_);
      });
  if (!posted) {
    return unexpected{stopped_error()};
  }
  watch(owner);
  MYCORRIZAL_LOG_DEBUG("reactor", "{} listening on {}", to_string(result.id),
                       to_string(result.local));
  return result;
}

expected<void> reactor::impl::close_tcp_listener(uint64_t id) {
  bool known = false;
  auto posted = post(cmd_close_listener{id}, [&] {
    std::unique_lock guard{registry_mutex_};
    known = listener_registry_.erase(id) > 0;
  });
  if (!posted) {
    return unexpected{stopped_error()};
  }
  if (!known) {
    return unexpected{error{errc::connection_lost,
                            fmt::format("unknown or closed {}",
                                        to_string(tcp_listener_id{id}))}};
  }
  return {};
}

expected<tcp_conn_id>
reactor::impl::connect_tcp(const ip_endpoint& to, const caf::actor& owner,
                           std::chrono::milliseconds timeout,
                           const tcp_options& opts) {
  if (auto ok = check_open(opts, owner, "tcp"); !ok) {
    return unexpected{ok.error()};
  }
  if (timeout.count() <= 0) {
    return unexpected{bad_field("tcp.connect_timeout", "must be positive")};
  }
  auto started = clock_type::now();
  auto family = family_of(to);
  auto sock = open_socket(family, SOCK_STREAM, "tcp");
  if (!sock) {
    return unexpected{sock.error()};
  }
  auto fd = std::move(*sock);
  if (opts.no_delay) {
    set_int_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1);
  }
  if (opts.source && !opts.source->is_unspecified()) {
    auto from = *opts.source;
    from.port(0);
    sockaddr_storage src{};
    socklen_t src_len = 0;
    if (family_of(from) != family || !to_sockaddr(from, family, src, src_len)) {
      return unexpected{
        bad_field("tcp.source", fmt::format("{} cannot reach {}",
                                            to_string(from), to_string(to)))};
    }
    // The port is chosen at connect time, per destination: binding first
    // would take one from the ephemeral range for every address.
    set_int_option(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&src), src_len) != 0) {
      return unexpected{
        sys_error(fmt::format("bind tcp source {}", to_string(from)), errno)};
    }
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  to_sockaddr(to, family, ss, len);
  int err = 0;
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINTR) {
      err = errno;
      break;
    }
  }
  auto id = next_id(tag_conn);
  auto shared = std::make_shared<tcp_shared>(opts.max_write_queue);
  auto posted = post(cmd_connect{id, std::move(fd), owner, opts, shared, to,
                                 err, timeout, started},
                     [&] {
                       std::unique_lock guard{registry_mutex_};
                       tcp_registry_.emplace(id, shared);
                     });
  if (!posted) {
    return unexpected{stopped_error()};
  }
  watch(owner);
  return tcp_conn_id{id};
}

namespace {

error unknown_conn(uint64_t id) {
  return error{errc::connection_lost,
               fmt::format("unknown or closed {}", to_string(tcp_conn_id{id}))};
}

} // namespace

expected<void> reactor::impl::write_tcp(uint64_t id,
                                        std::vector<std::byte>&& data) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  auto s = find_tcp(id);
  if (!s) {
    return unexpected{unknown_conn(id)};
  }
  if (s->write_closed.load(std::memory_order_acquire)) {
    return unexpected{
      error{errc::connection_lost, fmt::format("{}: write side is shut down",
                                               to_string(tcp_conn_id{id}))}};
  }
  auto n = data.size();
  if (n == 0) {
    return {};
  }
  auto cur = s->queued.load(std::memory_order_relaxed);
  do {
    if (n > s->max_queue || cur > s->max_queue - n) {
      bump(tcp_total_.queue_full);
      return unexpected{
        error{errc::queue_full,
              fmt::format("{}: {} bytes queued, {} more exceed the limit of {}",
                          to_string(tcp_conn_id{id}), cur, n, s->max_queue)}};
    }
  } while (
    !s->queued.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
  if (!post(cmd_write{id, std::move(data)})) {
    s->queued.fetch_sub(n, std::memory_order_relaxed);
    return unexpected{stopped_error()};
  }
  return {};
}

expected<void> reactor::impl::shutdown_tcp_write(uint64_t id) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  auto s = find_tcp(id);
  if (!s) {
    return unexpected{unknown_conn(id)};
  }
  s->write_closed.store(true, std::memory_order_release);
  if (!post(cmd_shutdown_write{id})) {
    return unexpected{stopped_error()};
  }
  return {};
}

expected<void> reactor::impl::close_tcp(uint64_t id, close_mode mode) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  auto s = find_tcp(id);
  if (!s) {
    return unexpected{unknown_conn(id)};
  }
  s->write_closed.store(true, std::memory_order_release);
  if (!post(cmd_close_conn{id, mode})) {
    return unexpected{stopped_error()};
  }
  return {};
}

reactor_stats reactor::impl::stats() const noexcept {
  auto get = [](const counter& x) {
    return x.load(std::memory_order_relaxed);
  };
  reactor_stats r;
  r.udp = udp_total_.snapshot();
  r.tcp.accepted = get(tcp_total_.accepted);
  r.tcp.rejected = get(tcp_total_.rejected);
  r.tcp.connects = get(tcp_total_.connects);
  r.tcp.connect_failures = get(tcp_total_.connect_failures);
  r.tcp.timeouts = get(tcp_total_.timeouts);
  r.tcp.bytes_in = get(tcp_total_.bytes_in);
  r.tcp.bytes_out = get(tcp_total_.bytes_out);
  r.tcp.queue_full = get(tcp_total_.queue_full);
  r.tcp.errors = get(tcp_total_.errors);
  r.open_udp_sockets = get(open_udp_);
  r.open_tcp_listeners = get(open_listeners_);
  r.open_tcp_connections = get(open_conns_);
  r.wakeups = get(wakeups_);
  return r;
}

expected<udp_stats> reactor::impl::stats(uint64_t id) const {
  auto s = find_udp(id);
  if (!s) {
    return unexpected{unknown_udp(id)};
  }
  return s->counters.snapshot();
}

// -- impl: loop side ----------------------------------------------------------

bool reactor::impl::epoll_add(int fd, uint64_t id, uint32_t events) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  return ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

void reactor::impl::epoll_del(int fd) noexcept {
  if (epoll_fd_ && fd >= 0) {
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  }
}

void reactor::impl::arm(uint64_t id, time_point& slot, time_point when) {
  if (when == no_time || when >= slot) {
    // A pending entry fires no later; it re-arms when it finds nothing due.
    return;
  }
  slot = when;
  timers_.push(timer_entry{when, id});
}

int reactor::impl::next_timeout_ms(time_point now) const {
  if (timers_.empty()) {
    return -1;
  }
  auto when = timers_.top().when;
  if (when <= now) {
    return 0;
  }
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

void reactor::impl::run() {
  pthread_setname_np(pthread_self(), thread_name);
  std::vector<epoll_event> events(128);
  drain_commands();
  while (!stop_requested_.load(std::memory_order_acquire)) {
    auto timeout = next_timeout_ms(clock_type::now());
    auto n = ::epoll_wait(epoll_fd_.get(), events.data(),
                          static_cast<int>(events.size()), timeout);
    bump(wakeups_);
    if (n < 0) {
      if (errno != EINTR) {
        MYCORRIZAL_LOG_ERROR_RL("reactor", 1, "epoll_wait: {}",
                                system_message(errno));
      }
      continue;
    }
    for (int i = 0; i < n; ++i) {
      auto& ev = events[static_cast<size_t>(i)];
      auto id = ev.data.u64;
      switch (tag_of(id)) {
        case tag_event: {
          uint64_t value = 0;
          [[maybe_unused]] auto r = ::read(event_fd_.get(), &value,
                                           sizeof(value));
          drain_commands();
          break;
        }
        case tag_udp:
          if (auto j = udp_.find(id); j != udp_.end()) {
            on_udp_readable(j->second);
          }
          break;
        case tag_listener:
          if (auto j = listeners_.find(id); j != listeners_.end()) {
            on_accept(j->second);
          }
          break;
        default:
          if (auto j = conns_.find(id); j != conns_.end()) {
            on_conn_event(j->second, ev.events);
          }
          break;
      }
    }
    run_timers(clock_type::now());
  }
}

void reactor::impl::drain_commands() {
  std::vector<command> cmds;
  {
    std::lock_guard guard{mutex_};
    cmds.swap(commands_);
    wake_pending_ = false;
  }
  for (auto& cmd : cmds) {
    std::visit(
      [this](auto& x) {
        handle(x);
      },
      cmd);
  }
}

void reactor::impl::ensure_udp_scratch(size_t batch, size_t max_size) {
  if (udp_msgs_.size() < batch) {
    udp_msgs_.resize(batch);
    udp_iov_.resize(batch);
    udp_addrs_.resize(batch);
    udp_ctrl_.resize(batch);
  }
  if (udp_buf_.size() < batch * max_size) {
    udp_buf_.resize(batch * max_size);
  }
}

void reactor::impl::handle(cmd_add_udp& cmd) {
  auto fd = cmd.socket->fd.get();
  ensure_udp_scratch(cmd.opts.batch_size, cmd.opts.max_datagram_size);
  udp_entry e;
  e.id = cmd.id;
  e.socket = std::move(cmd.socket);
  e.owner = std::move(cmd.owner);
  e.opts = cmd.opts;
  if (!epoll_add(fd, cmd.id, EPOLLIN)) {
    MYCORRIZAL_LOG_ERROR("reactor", "epoll_ctl({}): {}",
                         to_string(udp_socket_id{cmd.id}),
                         system_message(errno));
  }
  udp_.emplace(cmd.id, std::move(e));
}

void reactor::impl::close_udp_entry(udp_entry& e) {
  epoll_del(e.socket->fd.get());
  {
    std::unique_lock guard{registry_mutex_};
    udp_registry_.erase(e.id);
  }
  open_udp_.fetch_sub(1, std::memory_order_relaxed);
  MYCORRIZAL_LOG_DEBUG("reactor", "{} closed", to_string(udp_socket_id{e.id}));
  udp_.erase(e.id);
}

void reactor::impl::handle(cmd_close_udp& cmd) {
  if (auto i = udp_.find(cmd.id); i != udp_.end()) {
    close_udp_entry(i->second);
  }
}

void reactor::impl::handle(cmd_add_listener& cmd) {
  listener_entry l;
  l.id = cmd.id;
  l.fd = std::move(cmd.fd);
  l.owner = std::move(cmd.owner);
  l.opts = cmd.opts;
  l.local = cmd.local;
  if (tcp_buf_.size() < l.opts.read_chunk) {
    tcp_buf_.resize(l.opts.read_chunk);
  }
  if (!epoll_add(l.fd.get(), l.id, EPOLLIN)) {
    MYCORRIZAL_LOG_ERROR("reactor", "epoll_ctl({}): {}",
                         to_string(tcp_listener_id{l.id}),
                         system_message(errno));
  }
  listeners_.emplace(cmd.id, std::move(l));
}

void reactor::impl::close_listener(listener_entry& l) {
  epoll_del(l.fd.get());
  {
    std::unique_lock guard{registry_mutex_};
    listener_registry_.erase(l.id);
  }
  open_listeners_.fetch_sub(1, std::memory_order_relaxed);
  MYCORRIZAL_LOG_DEBUG("reactor", "{} closed",
                       to_string(tcp_listener_id{l.id}));
  listeners_.erase(l.id);
}

void reactor::impl::handle(cmd_close_listener& cmd) {
  if (auto i = listeners_.find(cmd.id); i != listeners_.end()) {
    close_listener(i->second);
  }
}

void reactor::impl::handle(cmd_connect& cmd) {
  if (tcp_buf_.size() < cmd.opts.read_chunk) {
    tcp_buf_.resize(cmd.opts.read_chunk);
  }
  auto [i, added] = conns_.emplace(cmd.id, conn_entry{});
  auto& c = i->second;
  c.id = cmd.id;
  c.fd = std::move(cmd.fd);
  c.owner = std::move(cmd.owner);
  c.opts = cmd.opts;
  c.shared = std::move(cmd.shared);
  c.peer = cmd.peer;
  c.state = conn_state::connecting;
  c.started = cmd.started;
  c.last_activity = cmd.started;
  c.connect_timeout = cmd.timeout;
  c.connect_deadline = cmd.started + cmd.timeout;
  if (c.opts.deadline.count() > 0) {
    c.deadline = cmd.started + c.opts.deadline;
  }
  bump(open_conns_);
  if (cmd.connect_errno != 0 && cmd.connect_errno != EINPROGRESS) {
    bump(tcp_total_.connect_failures);
    close_conn(c, sys_error(fmt::format("connect to {}", to_string(c.peer)),
                            cmd.connect_errno));
    return;
  }
  // Writable (or an error) once the handshake ends; also when it already
  // succeeded, so tcp_connected always comes from the loop.
  c.interest = EPOLLOUT;
  if (!epoll_add(c.fd.get(), c.id, c.interest)) {
    bump(tcp_total_.connect_failures);
    close_conn(c, sys_error("epoll_ctl", errno));
    return;
  }
  arm(c.id, c.timer, std::min(c.connect_deadline, c.deadline));
}

void reactor::impl::handle(cmd_write& cmd) {
  auto i = conns_.find(cmd.id);
  if (i == conns_.end()) {
    return;
  }
  auto& c = i->second;
  c.out.emplace_back(std::move(cmd.data));
  if (c.state == conn_state::open) {
    do_write(c);
  }
}

void reactor::impl::handle(cmd_shutdown_write& cmd) {
  auto i = conns_.find(cmd.id);
  if (i == conns_.end()) {
    return;
  }
  auto& c = i->second;
  c.shut_requested = true;
  if (c.state == conn_state::open) {
    do_write(c);
  }
}

void reactor::impl::handle(cmd_close_conn& cmd) {
  auto i = conns_.find(cmd.id);
  if (i == conns_.end()) {
    return;
  }
  auto& c = i->second;
  if (cmd.mode == close_mode::abort) {
    // SO_LINGER 0: close sends RST and drops unsent bytes.
    linger lg{1, 0};
    ::setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close_conn(c, error{});
    return;
  }
  c.close_requested = true;
  if (c.state == conn_state::open) {
    do_write(c);
  } else if (c.out.empty()) {
    close_conn(c, error{});
  }
}

void reactor::impl::handle(cmd_owner_down& cmd) {
  std::vector<uint64_t> ids;
  for (auto& [id, e] : udp_) {
    if (e.owner.address() == cmd.owner) {
      ids.push_back(id);
    }
  }
  for (auto& [id, l] : listeners_) {
    if (l.owner.address() == cmd.owner) {
      ids.push_back(id);
    }
  }
  for (auto& [id, c] : conns_) {
    if (c.owner.address() == cmd.owner) {
      ids.push_back(id);
    }
  }
  if (!ids.empty()) {
    MYCORRIZAL_LOG_DEBUG("reactor",
                         "owner {} is down: closing its {} resource(s)",
                         cmd.owner.id(), ids.size());
  }
  for (auto id : ids) {
    switch (tag_of(id)) {
      case tag_udp: close_udp_entry(udp_.at(id)); break;
      case tag_listener: close_listener(listeners_.at(id)); break;
      default: {
        auto& c = conns_.at(id);
        linger lg{1, 0};
        ::setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close_conn(c, error{}, false);
        break;
      }
    }
  }
}

// -- UDP receive path ---------------------------------------------------------

void reactor::impl::deliver_udp(udp_entry& e, udp_batch&& batch) {
  count_udp(*e.socket, &udp_counters::batches);
  caf::anon_send(e.owner, std::move(batch));
}

void reactor::impl::take_datagram(udp_entry& e, udp_batch& out,
                                  const ip_endpoint& from,
                                  const std::byte* first, size_t len,
                                  time_point now) {
  auto& counters = *e.socket;
  count_udp(counters, &udp_counters::datagrams_in);
  count_udp(counters, &udp_counters::bytes_in, len);
  if (e.opts.filter && e.opts.filter->blocks(from)) {
    count_udp(counters, &udp_counters::fault_drops);
    return;
  }
  ++e.rx_seq;
  if (e.opts.drop_every_nth != 0 && e.rx_seq % e.opts.drop_every_nth == 0) {
    count_udp(counters, &udp_counters::fault_drops);
    return;
  }
  udp_datagram d{from, std::vector<std::byte>(first, first + len)};
  ++e.pass_seq;
  if (e.held) {
    out.datagrams.emplace_back(std::move(d));
    out.datagrams.emplace_back(std::move(*e.held));
    e.held.reset();
    count_udp(counters, &udp_counters::fault_reorders);
  } else if (e.opts.reorder_every_nth != 0
             && e.pass_seq % e.opts.reorder_every_nth == 0) {
    e.held = std::move(d);
    e.held_since = now;
    arm(e.id, e.timer, now + e.opts.reorder_max_hold);
  } else {
    out.datagrams.emplace_back(std::move(d));
  }
}

void reactor::impl::on_udp_readable(udp_entry& e) {
  const auto batch = e.opts.batch_size;
  const auto cap = e.opts.max_datagram_size;
  const auto fd = e.socket->fd.get();
  auto& counters = *e.socket;
  for (size_t round = 0; round < cfg_.max_batches_per_wakeup; ++round) {
    for (size_t i = 0; i < batch; ++i) {
      udp_iov_[i].iov_base = udp_buf_.data() + i * cap;
      udp_iov_[i].iov_len = cap;
      auto& hdr = udp_msgs_[i].msg_hdr;
      hdr = msghdr{};
      hdr.msg_name = &udp_addrs_[i];
      hdr.msg_namelen = sizeof(sockaddr_storage);
      hdr.msg_iov = &udp_iov_[i];
      hdr.msg_iovlen = 1;
      if (e.opts.gro) {
        hdr.msg_control = udp_ctrl_[i].data();
        hdr.msg_controllen = udp_ctrl_[i].size();
      }
      udp_msgs_[i].msg_len = 0;
    }
    auto n = ::recvmmsg(fd, udp_msgs_.data(), static_cast<unsigned>(batch),
                        MSG_DONTWAIT, nullptr);
    if (n < 0) {
      auto err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        return;
      }
      if (err == EINTR) {
        continue;
      }
      count_udp(counters, &udp_counters::receive_errors);
      MYCORRIZAL_LOG_WARN_RL("reactor", 10, "recvmmsg on {}: {}",
                             to_string(udp_socket_id{e.id}),
                             system_message(err));
      return;
    }
    udp_batch out;
    out.socket = udp_socket_id{e.id};
    out.datagrams.reserve(static_cast<size_t>(n) + 1);
    auto now = clock_type::now();
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      const auto& hdr = udp_msgs_[i].msg_hdr;
      if ((hdr.msg_flags & MSG_TRUNC) != 0) {
        count_udp(counters, &udp_counters::truncated);
        MYCORRIZAL_LOG_WARN_RL("reactor", 10,
                               "{}: dropped a datagram from {} longer than "
                               "max_datagram_size {}",
                               to_string(udp_socket_id{e.id}),
                               to_string(from_sockaddr(udp_addrs_[i])), cap);
        continue;
      }
      // With UDP_GRO the kernel may hand over several datagrams of one
      // sender at once, all of `segment` bytes but the last.
      size_t len = udp_msgs_[i].msg_len;
      size_t segment = len;
      if (e.opts.gro) {
        for (auto* cm = CMSG_FIRSTHDR(const_cast<msghdr*>(&hdr)); cm != nullptr;
             cm = CMSG_NXTHDR(const_cast<msghdr*>(&hdr), cm)) {
          if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
            int seg = 0;
            std::memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
            if (seg > 0) {
              segment = static_cast<size_t>(seg);
            }
          }
        }
      }
      auto from = from_sockaddr(udp_addrs_[i]);
      const auto* base = udp_buf_.data() + i * cap;
      if (segment < len && e.opts.drop_every_nth == 0
          && e.opts.reorder_every_nth == 0 && !e.opts.filter && !e.held) {
        // Coalesced and no fault injection: one buffer for all of them.
        auto count = (len + segment - 1) / segment;
        count_udp(counters, &udp_counters::datagrams_in, count);
        count_udp(counters, &udp_counters::bytes_in, len);
        e.rx_seq += count;
        e.pass_seq += count;
        out.datagrams.push_back(udp_datagram{
          from, std::vector<std::byte>(base, base + len), segment});
        continue;
      }
      if (len == 0) {
        take_datagram(e, out, from, base, 0, now);
      }
      for (size_t off = 0; off < len; off += segment) {
        take_datagram(e, out, from, base + off, std::min(segment, len - off),
                      now);
      }
    }
    if (!out.datagrams.empty()) {
      deliver_udp(e, std::move(out));
    }
    if (static_cast<size_t>(n) < batch) {
      return; // drained
    }
  }
}

// -- TCP ----------------------------------------------------------------------

void reactor::impl::on_accept(listener_entry& l) {
  for (size_t k = 0; k < cfg_.max_accepts_per_wakeup; ++k) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    unique_fd fd{::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC)};
    if (!fd) {
      auto err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        return;
      }
      if (err == EINTR || err == ECONNABORTED) {
        continue;
      }
      MYCORRIZAL_LOG_WARN_RL("reactor", 1, "accept on {}: {}",
                             to_string(tcp_listener_id{l.id}),
                             system_message(err));
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Level-triggered epoll would spin: pause the listener briefly.
        epoll_del(l.fd.get());
        l.paused = true;
        timers_.push(timer_entry{
          clock_type::now() + std::chrono::milliseconds{100}, l.id});
      }
      return;
    }
    auto peer = from_sockaddr(ss);
    if (l.open_conns >= l.opts.max_connections) {
      bump(tcp_total_.rejected);
      MYCORRIZAL_LOG_WARN_RL("reactor", 1,
                             "{}: rejected {}: {} connections open (limit)",
                             to_string(tcp_listener_id{l.id}), to_string(peer),
                             l.open_conns);
      continue; // fd closes here
    }
    if (l.opts.no_delay) {
      set_int_option(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1);
    }
    auto id = next_id(tag_conn);
    auto now = clock_type::now();
    auto shared = std::make_shared<tcp_shared>(l.opts.max_write_queue);
    auto [i, added] = conns_.emplace(id, conn_entry{});
    auto& c = i->second;
    c.id = id;
    c.fd = std::move(fd);
    c.owner = l.owner;
    c.opts = l.opts;
    c.shared = shared;
    c.listener = l.id;
    c.peer = peer;
    c.state = conn_state::open;
    c.started = now;
    c.last_activity = now;
    if (c.opts.deadline.count() > 0) {
      c.deadline = now + c.opts.deadline;
    }
    c.interest = EPOLLIN;
    {
      std::unique_lock guard{registry_mutex_};
      tcp_registry_.emplace(id, shared);
    }
    ++l.open_conns;
    bump(open_conns_);
    bump(tcp_total_.accepted);
    caf::anon_send(c.owner, tcp_accepted{tcp_listener_id{l.id}, tcp_conn_id{id},
                                         peer, local_endpoint(c.fd.get())});
    if (!epoll_add(c.fd.get(), id, c.interest)) {
      close_conn(c, sys_error("epoll_ctl", errno));
      continue;
    }
    auto idle = c.opts.idle_timeout.count() > 0 ? now + c.opts.idle_timeout
                                                : no_time;
    arm(id, c.timer, std::min(c.deadline, idle));
  }
}

void reactor::impl::update_interest(conn_entry& c) {
  uint32_t want = 0;
  if (c.state == conn_state::connecting) {
    want = EPOLLOUT;
  } else {
    if (!c.read_eof) {
      want |= EPOLLIN;
    }
    if (!c.out.empty()) {
      want |= EPOLLOUT;
    }
  }
  if (want != c.interest) {
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    c.interest = want;
  }
}

void reactor::impl::close_conn(conn_entry& c, error reason, bool notify) {
  epoll_del(c.fd.get());
  c.shared->write_closed.store(true, std::memory_order_release);
  {
    std::unique_lock guard{registry_mutex_};
    tcp_registry_.erase(c.id);
  }
  if (c.listener != 0) {
    if (auto i = listeners_.find(c.listener); i != listeners_.end()) {
      --i->second.open_conns;
    }
  }
  if (reason == errc::timeout) {
    bump(tcp_total_.timeouts);
  } else if (reason == errc::connection_lost) {
    bump(tcp_total_.errors);
  }
  open_conns_.fetch_sub(1, std::memory_order_relaxed);
  MYCORRIZAL_LOG_DEBUG("reactor", "{} with {} closed: {}",
                       to_string(tcp_conn_id{c.id}), to_string(c.peer),
                       reason ? to_string(reason) : std::string{"orderly"});
  if (notify) {
    caf::anon_send(c.owner, tcp_closed{tcp_conn_id{c.id}, std::move(reason)});
  }
  conns_.erase(c.id);
}

bool reactor::impl::on_connected(conn_entry& c) {
  c.state = conn_state::open;
  c.last_activity = clock_type::now();
  bump(tcp_total_.connects);
  caf::anon_send(c.owner, tcp_connected{tcp_conn_id{c.id}, c.peer,
                                        local_endpoint(c.fd.get())});
  if (c.opts.idle_timeout.count() > 0) {
    arm(c.id, c.timer, c.last_activity + c.opts.idle_timeout);
  }
  return do_write(c);
}

void reactor::impl::on_conn_event(conn_entry& c, uint32_t events) {
  if (c.state == conn_state::connecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
      return;
    }
    if (auto err = socket_error(c.fd.get()); err != 0) {
      bump(tcp_total_.connect_failures);
      close_conn(c, sys_error(fmt::format("connect to {}", to_string(c.peer)),
                              err));
      return;
    }
    if (!on_connected(c)) {
      return;
    }
    events &= ~static_cast<uint32_t>(EPOLLOUT); // just wrote
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0 && !c.read_eof) {
    if (!do_read(c)) {
      return;
    }
  } else if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
    // Reading is over (EOF seen); an error or hang-up means writing is
    // over too, and level-triggered epoll would report it again and again.
    auto err = socket_error(c.fd.get());
    close_conn(c, sys_error(fmt::format("connection to {}", to_string(c.peer)),
                            err == 0 ? EPIPE : err));
    return;
  }
  if ((events & EPOLLOUT) != 0) {
    do_write(c);
  }
}

bool reactor::impl::do_read(conn_entry& c) {
  const auto chunk = c.opts.read_chunk;
  for (int round = 0; round < 16; ++round) {
    auto n = ::read(c.fd.get(), tcp_buf_.data(), chunk);
    if (n > 0) {
      auto len = static_cast<size_t>(n);
      bump(tcp_total_.bytes_in, len);
      c.received += len;
      c.last_activity = clock_type::now();
      if (c.opts.max_received_bytes != 0
          && c.received > c.opts.max_received_bytes) {
        close_conn(c, error{errc::too_large,
                            fmt::format("{} sent more than {} bytes",
                                        to_string(c.peer),
                                        c.opts.max_received_bytes)});
        return false;
      }
      caf::anon_send(
        c.owner, tcp_received{tcp_conn_id{c.id},
                              std::vector<std::byte>(tcp_buf_.data(),
                                                     tcp_buf_.data() + len)});
      if (len < chunk) {
        return true; // most likely drained; epoll tells us otherwise
      }
      continue;
    }
    if (n == 0) {
      c.read_eof = true;
      if (c.opts.close_on_eof) {
        c.close_requested = true;
        return do_write(c);
      }
      if (c.shut_done) {
        close_conn(c, error{});
        return false;
      }
      caf::anon_send(c.owner, tcp_eof{tcp_conn_id{c.id}});
      update_interest(c);
      return true;
    }
    auto err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return true;
    }
    if (err == EINTR) {
      continue;
    }
    close_conn(c,
               sys_error(fmt::format("read from {}", to_string(c.peer)), err));
    return false;
  }
  return true;
}

bool reactor::impl::do_write(conn_entry& c) {
  constexpr size_t max_iov = 64;
  std::array<iovec, max_iov> iov;
  while (!c.out.empty()) {
    size_t count = 0;
    for (auto i = c.out.begin(); i != c.out.end() && count < max_iov; ++i) {
      auto offset = count == 0 ? c.out_offset : 0;
      iov[count].iov_base = i->data() + offset;
      iov[count].iov_len = i->size() - offset;
      ++count;
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    auto n = ::sendmsg(c.fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      auto err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        break;
      }
      if (err == EINTR) {
        continue;
      }
      close_conn(c,
                 sys_error(fmt::format("write to {}", to_string(c.peer)), err));
      return false;
    }
    auto written = static_cast<size_t>(n);
    bump(tcp_total_.bytes_out, written);
    c.shared->queued.fetch_sub(written, std::memory_order_relaxed);
    c.last_activity = clock_type::now();
    while (written > 0) {
      auto left = c.out.front().size() - c.out_offset;
      if (written >= left) {
        written -= left;
        c.out.pop_front();
        c.out_offset = 0;
      } else {
        c.out_offset += written;
        written = 0;
      }
    }
  }
  if (c.out.empty()) {
    if (c.close_requested) {
      close_conn(c, error{});
      return false;
    }
    if (c.shut_requested && !c.shut_done) {
      ::shutdown(c.fd.get(), SHUT_WR);
      c.shut_done = true;
      if (c.read_eof) {
        close_conn(c, error{});
        return false;
      }
    }
  }
  update_interest(c);
  return true;
}

// -- timers -------------------------------------------------------------------

void reactor::impl::run_timers(time_point now) {
  while (!timers_.empty() && timers_.top().when <= now) {
    auto t = timers_.top();
    timers_.pop();
    switch (tag_of(t.id)) {
      case tag_udp: {
        auto i = udp_.find(t.id);
        if (i == udp_.end() || i->second.timer != t.when) {
          break;
        }
        auto& e = i->second;
        e.timer = no_time;
        if (!e.held) {
          break;
        }
        if (e.held_since + e.opts.reorder_max_hold <= now) {
          udp_batch out;
          out.socket = udp_socket_id{e.id};
          out.datagrams.emplace_back(std::move(*e.held));
          e.held.reset();
          deliver_udp(e, std::move(out));
        } else {
          arm(e.id, e.timer, e.held_since + e.opts.reorder_max_hold);
        }
        break;
      }
      case tag_listener: {
        auto i = listeners_.find(t.id);
        if (i != listeners_.end() && i->second.paused) {
          i->second.paused = false;
          epoll_add(i->second.fd.get(), t.id, EPOLLIN);
        }
        break;
      }
      case tag_conn: {
        auto i = conns_.find(t.id);
        if (i == conns_.end() || i->second.timer != t.when) {
          break;
        }
        auto& c = i->second;
        c.timer = no_time;
        auto connecting = c.state == conn_state::connecting;
        if (connecting && c.connect_deadline <= now) {
          bump(tcp_total_.connect_failures);
          close_conn(c, error{errc::timeout,
                              fmt::format("connect to {}: no answer within {}",
                                          to_string(c.peer),
                                          ms_text(c.connect_timeout))});
          break;
        }
        if (c.deadline <= now) {
          close_conn(c, error{errc::timeout,
                              fmt::format("exchange with {} exceeded its "
                                          "deadline of {}",
                                          to_string(c.peer),
                                          ms_text(c.opts.deadline))});
          break;
        }
        auto idle = no_time;
        if (!connecting && c.opts.idle_timeout.count() > 0) {
          idle = c.last_activity + c.opts.idle_timeout;
          if (idle <= now) {
            close_conn(c, error{errc::timeout,
                                fmt::format("{} idle for {}", to_string(c.peer),
                                            ms_text(c.opts.idle_timeout))});
            break;
          }
        }
        auto next = std::min(c.deadline, idle);
        if (connecting) {
          next = std::min(next, c.connect_deadline);
        }
        arm(c.id, c.timer, next);
        break;
      }
      default: break;
    }
  }
}

// -- teardown -----------------------------------------------------------------

void reactor::impl::teardown() {
  // Runs after the loop thread is gone (or never ran); no command can be
  // added any more because the state is `stopped`.
  std::vector<command> cmds;
  {
    std::lock_guard guard{mutex_};
    cmds.swap(commands_);
    watched_.clear();
  }
  for (auto& cmd : cmds) {
    if (auto* x = std::get_if<cmd_connect>(&cmd)) {
      caf::anon_send(x->owner,
                     tcp_closed{tcp_conn_id{x->id},
                                error{errc::shutting_down, "reactor stopped"}});
    } else if (std::holds_alternative<cmd_add_udp>(cmd)) {
      open_udp_.fetch_sub(1, std::memory_order_relaxed);
    } else if (std::holds_alternative<cmd_add_listener>(cmd)) {
      open_listeners_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  cmds.clear(); // closes the descriptors they carry
  std::vector<uint64_t> ids;
  ids.reserve(conns_.size());
  for (auto& [id, c] : conns_) {
    ids.push_back(id);
  }
  for (auto id : ids) {
    close_conn(conns_.at(id), error{errc::shutting_down, "reactor stopped"});
  }
  while (!listeners_.empty()) {
    close_listener(listeners_.begin()->second);
  }
  while (!udp_.empty()) {
    close_udp_entry(udp_.begin()->second);
  }
  {
    std::unique_lock guard{registry_mutex_};
    udp_registry_.clear();
    tcp_registry_.clear();
    listener_registry_.clear();
  }
  timers_ = {};
  udp_buf_ = {};
  tcp_buf_ = {};
  {
    std::lock_guard guard{mutex_};
    event_fd_.reset();
  }
  epoll_fd_.reset();
}

// -- reactor ------------------------------------------------------------------

reactor::reactor(reactor_config cfg) : impl_(std::make_shared<impl>(cfg)) {
  // nop
}

reactor::~reactor() {
  impl_->stop();
}

expected<void> reactor::start() {
  return impl_->start();
}

void reactor::stop() {
  impl_->stop();
}

bool reactor::running() const noexcept {
  return impl_->running();
}

expected<udp_socket> reactor::open_udp(const ip_endpoint& bind,
                                       const caf::actor& owner,
                                       const udp_options& opts) {
  return impl_->open_udp(bind, owner, opts);
}

expected<void> reactor::send_udp(udp_socket_id id, const ip_endpoint& to,
                                 std::span<const std::byte> data) {
  return impl_->send_udp(static_cast<uint64_t>(id), to, data);
}

expected<size_t> reactor::send_udp_many(udp_socket_id id,
                                        std::span<const udp_send_item> items) {
  return impl_->send_udp_many(static_cast<uint64_t>(id), items);
}

expected<void> reactor::close_udp(udp_socket_id id) {
  return impl_->close_udp(static_cast<uint64_t>(id));
}

expected<tcp_listener> reactor::listen_tcp(const ip_endpoint& bind,
                                           const caf::actor& owner,
                                           const tcp_options& opts) {
  return impl_->listen_tcp(bind, owner, opts);
}

expected<void> reactor::close_tcp_listener(tcp_listener_id id) {
  return impl_->close_tcp_listener(static_cast<uint64_t>(id));
}

expected<tcp_conn_id> reactor::connect_tcp(const ip_endpoint& to,
                                           const caf::actor& owner,
                                           std::chrono::milliseconds timeout,
                                           const tcp_options& opts) {
  return impl_->connect_tcp(to, owner, timeout, opts);
}

expected<void> reactor::write_tcp(tcp_conn_id conn,
                                  std::span<const std::byte> data) {
  return impl_->write_tcp(static_cast<uint64_t>(conn),
                          std::vector<std::byte>(data.begin(), data.end()));
}

expected<void> reactor::write_tcp(tcp_conn_id conn,
                                  std::vector<std::byte>&& data) {
  return impl_->write_tcp(static_cast<uint64_t>(conn), std::move(data));
}

expected<void> reactor::shutdown_tcp_write(tcp_conn_id conn) {
  return impl_->shutdown_tcp_write(static_cast<uint64_t>(conn));
}

expected<void> reactor::close_tcp(tcp_conn_id conn, close_mode mode) {
  return impl_->close_tcp(static_cast<uint64_t>(conn), mode);
}

reactor_stats reactor::stats() const noexcept {
  return impl_->stats();
}

expected<udp_stats> reactor::stats(udp_socket_id id) const {
  return impl_->stats(static_cast<uint64_t>(id));
}

} // namespace mycorrizal::net

namespace mycorrizal::net {

expected<size_t> max_udp_payload_to(const ip_endpoint& to) {
  auto family = to.is_v4() ? AF_INET : AF_INET6;
  auto fd = open_socket(family, SOCK_DGRAM, "udp");
  if (!fd) {
    return unexpected{fd.error()};
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  to_sockaddr(to, family, ss, len);
  if (::connect(fd->get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return unexpected{
      sys_error(fmt::format("connect udp {}", to_string(to)), errno)};
  }
  int mtu = 0;
  socklen_t mtu_len = sizeof(mtu);
  auto level = family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
  auto name = family == AF_INET ? IP_MTU : IPV6_MTU;
  if (::getsockopt(fd->get(), level, name, &mtu, &mtu_len) != 0) {
    return unexpected{
      sys_error(fmt::format("route MTU to {}", to_string(to)), errno)};
  }
  // IPv4: the 20-byte header counts towards both the MTU and the 16-bit
  // total length; IPv6: the 40-byte header counts towards the MTU only.
  constexpr size_t udp_header = 8;
  auto ip_header = family == AF_INET ? size_t{20} : size_t{40};
  auto by_mtu = static_cast<size_t>(std::max(mtu, 0));
  by_mtu = by_mtu > ip_header + udp_header ? by_mtu - ip_header - udp_header
                                           : 0;
  auto by_length = family == AF_INET ? size_t{65535} - ip_header - udp_header
                                     : size_t{65535} - udp_header;
  return std::min(by_mtu, by_length);
}

} // namespace mycorrizal::net
