// SPDX-License-Identifier: Apache-2.0
// The reactor's loop: epoll over the eventfd and every socket, the command
// queue, the timers, the thread's start and stop, teardown, and the public
// functions (which forward to the impl). UDP is in udp.cpp, TCP in
// tcp.cpp; what they share is in internal/reactor_impl.hpp.
#include "mycorrizal/net/reactor.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/net/internal/reactor_impl.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/local_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/send.hpp>

#include <fmt/format.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

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

namespace {

/// The loop thread's name (at most 15 characters).
constexpr const char* thread_name = "mcz.reactor";

std::string ms_text(std::chrono::milliseconds x) {
  return fmt::format("{} ms", x.count());
}

} // namespace

// -- impl: caller side --------------------------------------------------------

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
  if (cfg_.host != nullptr && unit_ == nullptr) {
    unit_ = loop_unit::make(cfg_);
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

namespace detail {

namespace {

/// The unit whose loop runs on this thread, if any.
thread_local const loop_unit* this_threads_unit = nullptr;

} // namespace

loop_unit* loop_unit::make(const reactor_config& cfg) {
  static std::mutex mtx;
  static std::vector<std::unique_ptr<loop_unit>> all;
  std::lock_guard guard{mtx};
  all.emplace_back(new loop_unit(cfg));
  return all.back().get();
}

loop_unit::loop_unit(const reactor_config& cfg)
    : caf::execution_unit(cfg.host), max_hosted_(cfg.max_hosted),
      throughput_(cfg.hosted_throughput), budget_(cfg.hosted_budget),
      prefix_(cfg.hosted_prefix) {
  // nop
}

void loop_unit::enter() noexcept {
  this_threads_unit = this;
}

void loop_unit::leave() {
  this_threads_unit = nullptr;
  hand_off_all();
}

bool loop_unit::hosts(caf::resumable* ptr) const {
  if (prefix_.empty()) {
    return true;
  }
  const auto* a = dynamic_cast<const caf::local_actor*>(ptr);
  return a != nullptr && std::string_view{a->name()}.starts_with(prefix_);
}

void loop_unit::hand_off_all() {
  for (auto* job : hosted_) {
    system().scheduler().enqueue(job);
  }
  hosted_.clear();
}

void loop_unit::exec_later(caf::resumable* ptr) {
  if (this_threads_unit == this && !shedding_ && hosted_.size() < max_hosted_
      && hosts(ptr)) {
    hosted_.push_back(ptr);
    return;
  }
  system().scheduler().enqueue(ptr);
}

void loop_unit::run() {
  shedding_ = false;
  if (hosted_.empty()) {
    return;
  }
  auto start = clock_type::now();
  auto until = start + budget_;
  auto poll_at = start + poll_interval;
  // In passes: what waited when a pass began, then what that scheduled (a
  // request crosses several actors, one hop a pass), until the queue is
  // empty or the loop should look at its sockets again.
  for (;;) {
    for (auto n = hosted_.size(); n > 0 && !hosted_.empty(); --n) {
      auto* job = hosted_.front();
      hosted_.pop_front();
      switch (job->resume(this, throughput_)) {
        case caf::resumable::resume_later:
          // Its turn ended with messages left: behind the others.
          hosted_.push_back(job);
          break;
        case caf::resumable::done:
        case caf::resumable::awaiting_message:
        case caf::resumable::shutdown_execution_unit:
          intrusive_ptr_release(job);
          break;
      }
      if (clock_type::now() >= until) {
        shedding_ = true;
        hand_off_all();
        return;
      }
    }
    if (hosted_.empty() || clock_type::now() >= poll_at) {
      return;
    }
  }
}

} // namespace detail

void reactor::impl::run() {
  pthread_setname_np(pthread_self(), thread_name);
  if (unit_ != nullptr) {
    unit_->enter();
    // The actors it runs sleep to deadlines tens of microseconds away
    // (`wake_at`); Linux's default timer slack (50 µs) would stretch them.
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  }
  std::vector<epoll_event> events(128);
  drain_commands();
  while (!stop_requested_.load(std::memory_order_acquire)) {
    auto n = wait_events(events);
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
    auto now = clock_type::now();
    run_timers(now);
    run_wakes(now);
    if (unit_ != nullptr) {
      unit_->run();
    }
  }
  if (unit_ != nullptr) {
    unit_->leave();
  }
  hand_wakes_to_clock();
}

int reactor::impl::wait_events(std::vector<epoll_event>& events) {
  auto* data = events.data();
  auto size = static_cast<int>(events.size());
  auto now = clock_type::now();
  auto ms = unit_ == nullptr || unit_->idle() ? next_timeout_ms(now) : 0;
  if (ms == 0 || wakes_.empty()) {
    return ::epoll_wait(epoll_fd_.get(), data, size, ms);
  }
  // A wake is pending: sleep until it with the kernel's precision.
  auto wait = std::max(wakes_.front().when - now, clock_type::duration{0});
  if (ms > 0) {
    wait = std::min<clock_type::duration>(wait, std::chrono::milliseconds{ms});
  }
  if (have_pwait2_) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
    auto n = ::epoll_pwait2(epoll_fd_.get(), data, size, &ts, nullptr);
    if (n >= 0 || errno != ENOSYS) {
      return n;
    }
    have_pwait2_ = false; // Linux before 5.11
  }
  auto coarse = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return ::epoll_wait(epoll_fd_.get(), data, size,
                      static_cast<int>(std::min<int64_t>(coarse, INT_MAX)));
}

bool reactor::impl::on_loop_thread() const noexcept {
  return unit_ != nullptr && this_threads_unit == unit_;
}

bool reactor::impl::wake_at(time_point when, const caf::actor& to,
                            caf::message msg) {
  if (!on_loop_thread() || !to) {
    return false;
  }
  wakes_.push_back(wake_entry{when, wake_seq_++, to.address(), std::move(msg)});
  std::push_heap(wakes_.begin(), wakes_.end(), std::greater<>{});
  return true;
}

void reactor::impl::run_wakes(time_point now) {
  while (!wakes_.empty() && wakes_.front().when <= now) {
    std::pop_heap(wakes_.begin(), wakes_.end(), std::greater<>{});
    auto w = std::move(wakes_.back());
    wakes_.pop_back();
    if (auto to = caf::actor_cast<caf::strong_actor_ptr>(w.to)) {
      to->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                            std::move(w.msg)),
                  unit_);
    }
  }
}

void reactor::impl::hand_wakes_to_clock() {
  if (cfg_.host == nullptr) {
    return;
  }
  auto& clock = cfg_.host->clock();
  for (auto& w : wakes_) {
    if (auto to = caf::actor_cast<caf::strong_actor_ptr>(w.to)) {
      clock.schedule_message(w.when, std::move(to),
                             caf::make_mailbox_element(nullptr,
                                                       caf::make_message_id(),
                                                       {}, std::move(w.msg)));
    }
  }
  wakes_.clear();
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
          // Writes that went around the loop count as activity too.
          auto direct = c.shared->direct_bytes.load(std::memory_order_relaxed);
          if (direct != c.direct_seen) {
            c.direct_seen = direct;
            c.last_activity = now;
          }
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
      deliver(x->owner,
              tcp_closed{tcp_conn_id{x->id},
                         error{errc::shutting_down, "reactor stopped"}});
    } else if (auto* d = std::get_if<cmd_drain_udp>(&cmd)) {
      deliver(d->owner, std::move(d->done));
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

reactor::reactor(reactor_config cfg)
    : impl_(std::make_shared<impl>(std::move(cfg))) {
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

expected<void> reactor::drain_udp(udp_socket_id id, caf::message done) {
  return impl_->drain_udp(static_cast<uint64_t>(id), std::move(done));
}

bool reactor::wake_at(std::chrono::steady_clock::time_point when,
                      const caf::actor& to, caf::message msg) {
  return impl_->wake_at(when, to, std::move(msg));
}

bool reactor::on_loop_thread() const noexcept {
  return impl_->on_loop_thread();
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
  std::span<const std::byte> one[] = {data};
  return impl_->write_tcp(static_cast<uint64_t>(conn), one, nullptr);
}

expected<void> reactor::write_tcp(tcp_conn_id conn,
                                  std::vector<std::byte>&& data) {
  std::span<const std::byte> one[] = {data};
  return impl_->write_tcp(static_cast<uint64_t>(conn), one, &data);
}

expected<void>
reactor::write_tcp(tcp_conn_id conn,
                   std::span<const std::span<const std::byte>> parts) {
  return impl_->write_tcp(static_cast<uint64_t>(conn), parts, nullptr);
}

expected<void> reactor::shutdown_tcp_write(tcp_conn_id conn) {
  return impl_->shutdown_tcp_write(static_cast<uint64_t>(conn));
}

expected<void> reactor::close_tcp(tcp_conn_id conn, close_mode mode) {
  return impl_->close_tcp(static_cast<uint64_t>(conn), mode);
}

expected<void> reactor::read_tcp(tcp_conn_id conn, bool on,
                                 const caf::actor& new_owner) {
  return impl_->read_tcp(static_cast<uint64_t>(conn), on, new_owner);
}

reactor_stats reactor::stats() const noexcept {
  return impl_->stats();
}

expected<udp_stats> reactor::stats(udp_socket_id id) const {
  return impl_->stats(static_cast<uint64_t>(id));
}

} // namespace mycorrizal::net
