// SPDX-License-Identifier: Apache-2.0
// The reactor's UDP part: open, send on the caller's thread (sendto,
// sendmmsg, GSO runs), receive batches on the loop (recvmmsg, GRO, fault
// injection), close, and the route MTU.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/net/internal/reactor_impl.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <utility>
#include <vector>

#ifndef UDP_SEGMENT
#  define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#  define UDP_GRO 104
#endif

namespace mycorrizal::net {

namespace {

/// Most segments the kernel takes in one GSO send (UDP_MAX_SEGMENTS).
constexpr size_t max_gso_segments = 64;

/// Largest UDP payload of one GSO send (one IPv4 packet before segmenting).
constexpr size_t max_gso_bytes = 65507;

} // namespace

// -- impl: caller side (UDP) --------------------------------------------------

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
  shared->owner = owner.address();
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

expected<void> reactor::impl::drain_udp(uint64_t id, caf::message done) {
  if (!running()) {
    return unexpected{error{errc::shutting_down, "reactor not running"}};
  }
  auto sock = find_udp(id);
  if (!sock) {
    return unexpected{unknown_udp(id)};
  }
  auto owner = caf::actor_cast<caf::actor>(sock->owner);
  if (!owner) {
    return unexpected{unknown_udp(id)};
  }
  if (!post(cmd_drain_udp{id, std::move(owner), std::move(done)}, [] {})) {
    return unexpected{stopped_error()};
  }
  return {};
}

expected<udp_stats> reactor::impl::stats(uint64_t id) const {
  auto s = find_udp(id);
  if (!s) {
    return unexpected{unknown_udp(id)};
  }
  return s->counters.snapshot();
}

// -- impl: loop side (UDP) ----------------------------------------------------

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

void reactor::impl::handle(cmd_drain_udp& cmd) {
  if (auto i = udp_.find(cmd.id); i != udp_.end()) {
    // Bounded: a sender that keeps the socket full cannot hold the loop.
    constexpr size_t max_rounds = 16;
    for (size_t round = 0; round < max_rounds; ++round) {
      if (on_udp_readable(i->second)) {
        break;
      }
    }
  }
  deliver(cmd.owner, std::move(cmd.done));
}

// -- UDP receive path ---------------------------------------------------------

void reactor::impl::deliver_udp(udp_entry& e, udp_batch&& batch) {
  count_udp(*e.socket, &udp_counters::batches);
  if (e.opts.demux) {
    e.opts.demux->take(batch, host());
    if (batch.datagrams.empty()) {
      return;
    }
  }
  deliver(e.owner, std::move(batch));
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

bool reactor::impl::on_udp_readable(udp_entry& e) {
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
        return true;
      }
      if (err == EINTR) {
        continue;
      }
      count_udp(counters, &udp_counters::receive_errors);
      MYCORRIZAL_LOG_WARN_RL("reactor", 10, "recvmmsg on {}: {}",
                             to_string(udp_socket_id{e.id}),
                             system_message(err));
      return true;
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
      return true; // drained
    }
  }
  return false;
}

// -- route MTU ----------------------------------------------------------------

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
