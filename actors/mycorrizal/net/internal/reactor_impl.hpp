// SPDX-License-Identifier: Apache-2.0
// Internal: the reactor's implementation class and what its parts share.
// Not installed; see net/reactor.hpp. The parts, one concern each:
// - net/reactor.cpp: the loop (epoll, eventfd wake-up, command queue,
//   timers, thread start and stop, teardown) and the public forwarding;
// - net/udp.cpp: UDP open, send (sendto, sendmmsg, GSO), receive batches
//   (recvmmsg, GRO, fault injection), close;
// - net/tcp.cpp: TCP listen, accept, connect, read, write queue, close;
// - net/socket.cpp: descriptor and address helpers both use (sockaddr
//   conversion, socket options, errno -> error);
// - net/options.cpp: option validation and `udp_filter`.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/net/events.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/send.hpp"

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/execution_unit.hpp>
#include <caf/message.hpp>
#include <caf/resumable.hpp>

#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

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

// What the parts share lives in `detail` (it was file-local before the
// split); the using-directive below lets them name it unqualified, as an
// unnamed namespace did. Only net/*.cpp include this header.
namespace mycorrizal::net::detail {

// -- clock and resource ids ---------------------------------------------------

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

inline constexpr auto no_time = time_point::max();

inline constexpr uint64_t tag_event = 0;
inline constexpr uint64_t tag_udp = 1;
inline constexpr uint64_t tag_listener = 2;
inline constexpr uint64_t tag_conn = 3;

constexpr uint64_t tag_of(uint64_t id) noexcept {
  return id & 3U;
}

// -- system helpers (net/socket.cpp) ------------------------------------------

std::string system_message(int err);

/// A system call failed: `connection_lost` with `"<what>: <strerror>"`.
error sys_error(std::string_view what, int err);

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

int family_of(const ip_endpoint& ep) noexcept;

/// Fills `out` with `ep` for a socket of `family`. An IPv4 endpoint becomes
/// IPv4-mapped on an IPv6 socket; an IPv6 one cannot go to an IPv4 socket.
bool to_sockaddr(const ip_endpoint& ep, int family, sockaddr_storage& out,
                 socklen_t& len) noexcept;

ip_endpoint from_sockaddr(const sockaddr_storage& ss) noexcept;

/// A non-blocking, close-on-exec socket of `type` for `family`; `what`
/// names it in errors ("udp", "tcp").
expected<unique_fd> open_socket(int family, int type, std::string_view what);

/// Binds `fd`, a socket of `family`, to `at`.
expected<void> bind_socket(int fd, int family, const ip_endpoint& at,
                           std::string_view what);

ip_endpoint local_endpoint(int fd) noexcept;

int socket_error(int fd) noexcept;

bool set_int_option(int fd, int level, int name, int value) noexcept;

/// Raises a socket buffer to `wanted` bytes. `SO_RCVBUF` is capped by
/// `net.core.rmem_max`; when the result falls short, `SO_RCVBUFFORCE`
/// (CAP_NET_ADMIN only) is tried too. Returns what getsockopt reports.
size_t raise_buffer(int fd, int name, int force_name, size_t wanted) noexcept;

/// `errc::invalid_config` with `"<field>: <what>"` (net/options.cpp).
error bad_field(std::string_view field, std::string_view what);

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

inline void bump(counter& x, uint64_t n = 1) noexcept {
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
  /// Who gets the datagrams (weak: the loop's entry holds the handle).
  caf::actor_addr owner;
};

/// Control buffer for one received datagram's UDP_GRO segment size.
inline constexpr size_t udp_control_size = CMSG_SPACE(sizeof(int)) + 16;

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

  /// Direct writes: with nothing queued, `write_tcp` hands its bytes to the
  /// kernel on the caller's thread instead of waking the loop for them (a
  /// reply costs one wake-up less). The socket while the connection is
  /// open, -1 otherwise; the loop takes `direct_mutex` before it closes it.
  std::mutex direct_mutex;
  int direct_fd = -1;

  /// Bytes written directly: activity for the loop's idle timer.
  std::atomic<uint64_t> direct_bytes{0};
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

struct cmd_read_control {
  uint64_t id;
  bool reading;
  caf::actor owner; // null: keep the owner
};

struct cmd_drain_udp {
  uint64_t id;
  caf::actor owner;
  caf::message done;
};

using command = std::variant<cmd_add_udp, cmd_close_udp, cmd_add_listener,
                             cmd_close_listener, cmd_connect, cmd_write,
                             cmd_shutdown_write, cmd_close_conn, cmd_owner_down,
                             cmd_drain_udp, cmd_read_control>;

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
  /// Off while the owner paused reading (`read_tcp`).
  bool reading = true;
  std::deque<std::vector<std::byte>> out;
  size_t out_offset = 0; // bytes of out.front() already written
  uint64_t received = 0;
  uint64_t direct_seen = 0; // shared->direct_bytes at the last idle check
  uint32_t interest = 0;    // registered epoll events
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

/// A message for an actor the loop runs, due at `when` (`reactor::wake_at`).
struct wake_entry {
  time_point when;
  uint64_t seq; // FIFO among equal times
  caf::actor_addr to;
  caf::message msg;

  friend bool operator>(const wake_entry& x, const wake_entry& y) noexcept {
    return x.when != y.when ? x.when > y.when : x.seq > y.seq;
  }
};

// -- the loop as a CAF execution unit -----------------------------------------

/// Runs actors on a reactor's thread (`reactor_config::host`), as CAF 0.17's
/// multiplexer runs brokers. CAF hands an actor's messages to the execution
/// unit it ran on last when another actor answers it through a response
/// promise, from any thread and at any time later: so a unit outlives its
/// reactor, and is never freed (`make` keeps every unit in a process-wide
/// list; a few hundred bytes per reactor ever started). Once its loop
/// ended, or called from any other thread, it hands jobs to the scheduler.
class loop_unit final : public caf::execution_unit {
public:
  /// A unit for a loop of `cfg` (whose `host` is set).
  static loop_unit* make(const reactor_config& cfg);

  /// Called on the loop's thread: from now on jobs scheduled there wait
  /// for `run()` (up to `max_hosted` of them).
  void enter() noexcept;

  /// Called on the loop's thread as it ends: what waits, and whatever is
  /// scheduled from here on, goes to the scheduler.
  void leave();

  /// Whether jobs wait for `run()`.
  bool idle() const noexcept {
    return hosted_.empty();
  }

  /// Resumes what waits, then what that schedules, in passes until
  /// nothing waits or `poll_interval` has passed (the loop looks at its
  /// sockets between rounds, not between the hops of one request); for at
  /// most `hosted_budget`: what is left then, and what the rest of the
  /// round schedules, goes to the scheduler.
  void run();

  /// How long `run()` goes on with new work before the loop polls again.
  static constexpr std::chrono::microseconds poll_interval{100};

  void exec_later(caf::resumable* ptr) override;

private:
  explicit loop_unit(const reactor_config& cfg);

  /// Whether `ptr` may run on the loop's thread (`hosted_prefix`).
  bool hosts(caf::resumable* ptr) const;

  /// Moves every waiting job to the scheduler.
  void hand_off_all();

  const size_t max_hosted_;
  const size_t throughput_;
  const std::chrono::microseconds budget_;
  const std::string prefix_;
  std::deque<caf::resumable*> hosted_; // each holds a reference
  bool shedding_ = false;
};

} // namespace mycorrizal::net::detail

namespace mycorrizal::net {

using namespace detail;

// -- impl ---------------------------------------------------------------------

class reactor::impl : public std::enable_shared_from_this<reactor::impl> {
public:
  explicit impl(reactor_config cfg) : cfg_(std::move(cfg)) {
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
  expected<void> drain_udp(uint64_t id, caf::message done);
  bool wake_at(time_point when, const caf::actor& to, caf::message msg);
  bool on_loop_thread() const noexcept;
  expected<tcp_listener> listen_tcp(const ip_endpoint& bind,
                                    const caf::actor& owner,
                                    const tcp_options& opts);
  expected<void> close_tcp_listener(uint64_t id);
  expected<tcp_conn_id>
  connect_tcp(const ip_endpoint& to, const caf::actor& owner,
              std::chrono::milliseconds timeout, const tcp_options& opts);
  /// Writes `parts` in order, as one write. `owned`: with one part, the
  /// caller's buffer holding it, taken if some of it must wait for the
  /// loop (else what waits is copied).
  expected<void> write_tcp(uint64_t id,
                           std::span<const std::span<const std::byte>> parts,
                           std::vector<std::byte>* owned);
  /// Hands `parts` to `s.direct_fd` on the caller's thread (`direct_mutex`
  /// held), at most 64 of them; @returns the bytes the kernel took.
  size_t write_direct(tcp_shared& s,
                      std::span<const std::span<const std::byte>> parts);
  expected<void> shutdown_tcp_write(uint64_t id);
  expected<void> close_tcp(uint64_t id, close_mode mode);
  expected<void> read_tcp(uint64_t id, bool on, const caf::actor& owner);
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

  /// The loop as the execution unit for what it sends its owners; null
  /// when it does not host them.
  caf::execution_unit* host() noexcept {
    return unit_;
  }

  /// Sends `xs...` to `owner` from the loop (see `host()`).
  template <class... Ts>
  void deliver(const caf::actor& owner, Ts&&... xs) {
    send_hosted(host(), owner, std::forward<Ts>(xs)...);
  }
  void handle(cmd_add_udp& cmd);
  void handle(cmd_close_udp& cmd);
  void handle(cmd_add_listener& cmd);
  void handle(cmd_close_listener& cmd);
  void handle(cmd_connect& cmd);
  void handle(cmd_write& cmd);
  /// Lets `write_tcp` write to `c`'s socket itself (it is open).
  void allow_direct(conn_entry& c);
  void handle(cmd_shutdown_write& cmd);
  void handle(cmd_close_conn& cmd);
  void handle(cmd_owner_down& cmd);
  void handle(cmd_drain_udp& cmd);
  void handle(cmd_read_control& cmd);

  /// Reads up to `max_batches_per_wakeup` batches; returns whether the
  /// socket had nothing more (or failed).
  bool on_udp_readable(udp_entry& e);
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
  /// Sends the `wakes_` that are due.
  void run_wakes(time_point now);
  /// Waits for events: until the next timer or wake, or not at all while
  /// hosted jobs wait (`epoll_pwait2`; `epoll_wait` where the kernel lacks
  /// it).
  int wait_events(std::vector<epoll_event>& events);
  /// Hands what `wakes_` holds to CAF's clock (the loop ends).
  void hand_wakes_to_clock();
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
  std::vector<wake_entry> wakes_; // a min-heap (std::greater)
  uint64_t wake_seq_ = 0;
  bool have_pwait2_ = true;
  std::vector<std::byte> udp_buf_;
  std::vector<mmsghdr> udp_msgs_;
  std::vector<iovec> udp_iov_;
  std::vector<sockaddr_storage> udp_addrs_;
  std::vector<std::array<char, udp_control_size>> udp_ctrl_;
  std::vector<std::byte> tcp_buf_;
  loop_unit* unit_ = nullptr; // never freed, see loop_unit
};

// -- impl: posting commands (all parts) ---------------------------------------

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

} // namespace mycorrizal::net
