// SPDX-License-Identifier: Apache-2.0
// The reactor's TCP part: listen, accept, connect with deadlines, reads,
// the bounded write queue, shutdown and close.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/net/internal/reactor_impl.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/send.hpp>

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

namespace mycorrizal::net {

// -- impl: caller side (TCP) --------------------------------------------------

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

size_t
reactor::impl::write_direct(tcp_shared& s,
                            std::span<const std::span<const std::byte>> parts) {
  constexpr size_t max_iov = 64;
  std::array<iovec, max_iov> iov;
  size_t count = 0;
  for (auto p : parts) {
    if (count == max_iov) {
      break; // the rest waits for the loop
    }
    if (!p.empty()) {
      // sendmsg does not write through iov_base.
      iov[count].iov_base = const_cast<std::byte*>(p.data());
      iov[count].iov_len = p.size();
      ++count;
    }
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  for (;;) {
    auto n = ::sendmsg(s.direct_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      auto written = static_cast<size_t>(n);
      bump(tcp_total_.bytes_out, written);
      s.direct_bytes.fetch_add(written, std::memory_order_relaxed);
      return written;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return 0;
  }
}

expected<void>
reactor::impl::write_tcp(uint64_t id,
                         std::span<const std::span<const std::byte>> parts,
                         std::vector<std::byte>* owned) {
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
  size_t n = 0;
  for (auto p : parts) {
    n += p.size();
  }
  if (n == 0) {
    return {};
  }
  // Held until the bytes are queued: writes from other threads keep their
  // order, and the loop cannot close the socket under a direct write.
  std::lock_guard direct{s->direct_mutex};
  // The limit first: a refused write leaves nothing on the wire either.
  auto cur = s->queued.load(std::memory_order_relaxed);
  if (n > s->max_queue || cur > s->max_queue - n) {
    bump(tcp_total_.queue_full);
    return unexpected{
      error{errc::queue_full,
            fmt::format("{}: {} bytes queued, {} more exceed the limit of {}",
                        to_string(tcp_conn_id{id}), cur, n, s->max_queue)}};
  }
  size_t written = 0;
  if (s->direct_fd >= 0 && cur == 0) {
    written = write_direct(*s, parts);
    if (written == n) {
      return {};
    }
    // The kernel took part or nothing (a full buffer, or an error that
    // the loop reports when it tries): the rest waits for the loop.
  }
  std::vector<std::byte> rest;
  if (owned != nullptr) {
    // One part, the caller's buffer: taken.
    rest = std::move(*owned);
    rest.erase(rest.begin(),
               rest.begin() + static_cast<std::ptrdiff_t>(written));
  } else {
    rest.reserve(n - written);
    auto skip = written;
    for (auto p : parts) {
      if (skip >= p.size()) {
        skip -= p.size();
        continue;
      }
      rest.insert(rest.end(), p.begin() + static_cast<std::ptrdiff_t>(skip),
                  p.end());
      skip = 0;
    }
  }
  n = rest.size();
  // Only the loop takes from `queued` meanwhile: the limit still holds.
  s->queued.fetch_add(n, std::memory_order_relaxed);
  if (!post(cmd_write{id, std::move(rest)})) {
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

// -- impl: loop side (TCP) ----------------------------------------------------

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

expected<void> reactor::impl::read_tcp(uint64_t id, bool on,
                                       const caf::actor& owner) {
  if (stopped()) {
    return unexpected{stopped_error()};
  }
  if (!find_tcp(id)) {
    return unexpected{unknown_conn(id)};
  }
  if (owner) {
    watch(owner);
  }
  if (!post(cmd_read_control{id, on, owner})) {
    return unexpected{stopped_error()};
  }
  return {};
}

void reactor::impl::handle(cmd_read_control& cmd) {
  auto i = conns_.find(cmd.id);
  if (i == conns_.end()) {
    return;
  }
  auto& c = i->second;
  if (cmd.owner) {
    c.owner = std::move(cmd.owner);
  }
  c.reading = cmd.reading;
  if (c.state == conn_state::open) {
    update_interest(c);
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
    allow_direct(c);
    c.started = now;
    c.last_activity = now;
    if (c.opts.deadline.count() > 0) {
      c.deadline = now + c.opts.deadline;
    }
    c.reading = !l.opts.start_paused;
    c.interest = c.reading ? static_cast<uint32_t>(EPOLLIN) : 0U;
    {
      std::unique_lock guard{registry_mutex_};
      tcp_registry_.emplace(id, shared);
    }
    ++l.open_conns;
    bump(open_conns_);
    bump(tcp_total_.accepted);
    deliver(c.owner, tcp_accepted{tcp_listener_id{l.id}, tcp_conn_id{id}, peer,
                                  local_endpoint(c.fd.get())});
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
    if (!c.read_eof && c.reading) {
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

void reactor::impl::allow_direct(conn_entry& c) {
  std::lock_guard direct{c.shared->direct_mutex};
  c.shared->direct_fd = c.fd.get();
}

void reactor::impl::close_conn(conn_entry& c, error reason, bool notify) {
  epoll_del(c.fd.get());
  c.shared->write_closed.store(true, std::memory_order_release);
  {
    // No direct write runs when the socket closes below (conns_.erase).
    std::lock_guard direct{c.shared->direct_mutex};
    c.shared->direct_fd = -1;
  }
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
    deliver(c.owner, tcp_closed{tcp_conn_id{c.id}, std::move(reason)});
  }
  conns_.erase(c.id);
}

bool reactor::impl::on_connected(conn_entry& c) {
  c.state = conn_state::open;
  allow_direct(c);
  c.last_activity = clock_type::now();
  bump(tcp_total_.connects);
  deliver(c.owner,
          tcp_connected{tcp_conn_id{c.id}, c.peer, local_endpoint(c.fd.get())});
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
  if (!c.reading && !c.read_eof && (events & (EPOLLHUP | EPOLLERR)) != 0) {
    // Paused: the bytes stay unread, the peer reset the connection.
    auto err = socket_error(c.fd.get());
    close_conn(c, sys_error(fmt::format("connection to {}", to_string(c.peer)),
                            err == 0 ? ECONNRESET : err));
    return;
  }
  if (c.reading && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0
      && !c.read_eof) {
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
      deliver(c.owner, tcp_received{tcp_conn_id{c.id},
                                    std::vector<std::byte>(
                                      tcp_buf_.data(), tcp_buf_.data() + len)});
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
      deliver(c.owner, tcp_eof{tcp_conn_id{c.id}});
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

} // namespace mycorrizal::net
