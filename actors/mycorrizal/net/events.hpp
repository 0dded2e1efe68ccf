// SPDX-License-Identifier: Apache-2.0
// The messages the reactor sends to the actors that own its sockets.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/type_ids.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

/// The reactor (`mycorrizal/net/reactor.hpp`) reports everything that happens
/// on a socket to the socket's owner actor with `caf::anon_send`, one message
/// per event (one per `recvmmsg` batch for UDP). The messages are plain
/// copyable structs for local messaging only: they are whitelisted with
/// `CAF_ALLOW_UNSAFE_MESSAGE_TYPE` in type_ids.hpp (PLATFORM.md §2.4), not
/// serializable.
///
/// An owner matches them by type:
/// ~~~
/// [=](net::udp_batch& b) { for (auto& d : b.datagrams) core.handle(d.from,
/// d.data); },
/// [=](net::tcp_received& x) { ... },
/// [=](net::tcp_closed& x) { if (x.reason) { ... } },
/// ~~~
namespace mycorrizal::net {

// -- resource ids -------------------------------------------------------------

/// Names a UDP socket of one reactor. Ids are never reused by a reactor.
enum class udp_socket_id : uint64_t {};

/// Names a TCP listening socket of one reactor. Ids are never reused.
enum class tcp_listener_id : uint64_t {};

/// Names a TCP connection (accepted or dialed) of one reactor. Ids are never
/// reused, so a late message about a closed connection cannot be mistaken
/// for a newer one.
enum class tcp_conn_id : uint64_t {};

/// Renders an id as `udp#<n>`, `tcp-listener#<n>` or `tcp#<n>`.
std::string to_string(udp_socket_id x);
std::string to_string(tcp_listener_id x);
std::string to_string(tcp_conn_id x);

// -- UDP ----------------------------------------------------------------------

/// One received datagram, or (only on sockets with `udp_options::gro`)
/// several datagrams of one sender that the kernel coalesced.
struct udp_datagram {
  /// The sender.
  ip_endpoint from;

  /// The payload, exactly as received (may be empty).
  std::vector<std::byte> data;

  /// 0: `data` is one datagram. Otherwise `data` holds datagrams of
  /// `segment` bytes each, back to back, the last one possibly shorter
  /// (UDP_GRO); `for_each_datagram` walks them.
  size_t segment = 0;
};

/// Calls `f(std::span<const std::byte>)` for each datagram `d` holds.
template <class F>
void for_each_datagram(const udp_datagram& d, F&& f) {
  std::span<const std::byte> all{d.data};
  if (d.segment == 0 || d.segment >= all.size()) {
    f(all);
    return;
  }
  for (size_t off = 0; off < all.size(); off += d.segment) {
    f(all.subspan(off, std::min(d.segment, all.size() - off)));
  }
}

/// The datagrams one `recvmmsg` call returned on `socket`, in arrival order
/// (after fault injection, see `udp_options`). Never empty.
struct udp_batch {
  udp_socket_id socket{};
  std::vector<udp_datagram> datagrams;
};

// -- TCP ----------------------------------------------------------------------

/// A listener accepted connection `conn` from `peer`. The connection belongs
/// to the listener's owner, which receives all further events for it.
struct tcp_accepted {
  tcp_listener_id listener{};
  tcp_conn_id conn{};
  ip_endpoint peer;
  ip_endpoint local;
};

/// A connection started with `reactor::connect_tcp` is established.
struct tcp_connected {
  tcp_conn_id conn{};
  ip_endpoint peer;
  ip_endpoint local;
};

/// Bytes read from `conn`, in order. A stream has no message boundaries: one
/// message from the peer may arrive as several `tcp_received`.
struct tcp_received {
  tcp_conn_id conn{};
  std::vector<std::byte> data;
};

/// The peer of `conn` shut down its write side (orderly FIN) while ours is
/// still open. Only sent when the connection's `tcp_options::close_on_eof`
/// is false; the owner may go on writing and ends with `close_tcp` or
/// `shutdown_tcp_write`.
struct tcp_eof {
  tcp_conn_id conn{};
};

/// `conn` is closed and its id is dead: the last message about it, sent
/// exactly once per connection (unless its owner died first). `reason` is:
/// - `errc::none`: orderly end: the peer's EOF (with `close_on_eof`), both
///   sides shut down, or the owner's `close_tcp`;
/// - `errc::connection_lost`: refused, reset, or another socket error (the
///   context says which, e.g. `"connect to 127.0.0.1:9: connection
///   refused"`);
/// - `errc::timeout`: the connect timeout, the exchange deadline or the idle
///   timeout passed;
/// - `errc::too_large`: the peer sent more than `max_received_bytes`;
/// - `errc::shutting_down`: the reactor stopped.
struct tcp_closed {
  tcp_conn_id conn{};
  error reason;
};

} // namespace mycorrizal::net
