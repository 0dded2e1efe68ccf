// SPDX-License-Identifier: Apache-2.0
// Internal: the messages between the transport, connection and stream
// actors, and how they are spawned. Not installed; see transport.hpp.
#pragma once

#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/quic/cid_router.hpp"
#include "mycorrizal/quic/connection.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace mycorrizal::detail {

/// The UDP socket a transport and its connections share. The last holder
/// closes it, so a connection that outlives its transport can still send
/// its CONNECTION_CLOSE.
class shared_socket {
public:
  shared_socket(std::shared_ptr<net::reactor> r, net::udp_socket_id id,
                ip_endpoint local)
      : reactor_(std::move(r)), id_(id), local_(local) {
    // nop
  }

  ~shared_socket() {
    std::ignore = reactor_->close_udp(id_);
  }

  shared_socket(const shared_socket&) = delete;
  shared_socket& operator=(const shared_socket&) = delete;

  net::reactor& reactor() const noexcept {
    return *reactor_;
  }

  net::udp_socket_id id() const noexcept {
    return id_;
  }

  const ip_endpoint& local() const noexcept {
    return local_;
  }

private:
  std::shared_ptr<net::reactor> reactor_;
  net::udp_socket_id id_;
  ip_endpoint local_;
};

using socket_ptr = std::shared_ptr<shared_socket>;

// -- transport <-> connection -------------------------------------------------

/// What a connection actor starts with (the core is made by the transport,
/// so that it can route to it before the actor runs).
struct connection_args {
  quic::connection_id id = 0;
  std::optional<quic::connection> core;
  socket_ptr socket;
  ip_endpoint remote;
  bool incoming = false;
  stream_options streams;
  quic::transport_config transport;
  caf::actor transport_actor;
  transport_handler_actor handler;
  /// A dial: answered with `connection_info` once the peer is
  /// authenticated, or with the error that ended the attempt.
  std::optional<caf::response_promise> dial;
  caf::timespan dial_deadline{};
};

/// Datagrams the transport routed to one connection.
struct routed_datagrams {
  std::vector<net::udp_datagram> datagrams;
};

/// A connection's routing ids changed (sent before any datagram that could
/// make the peer use a new id leaves).
struct connection_routes {
  quic::connection_id id = 0;
  std::vector<std::vector<std::byte>> ids;
};

/// A connection authenticated its peer (for `connections_atom`).
struct connection_named {
  quic::connection_id id = 0;
  std::string peer_name;
};

/// Connection → transport: it closed before its handshake completed.
struct handshake_failed {
  quic::handshake_failure reason = quic::handshake_failure::protocol;
};

/// Spawns a connection actor (monitored by the transport).
caf::actor spawn_connection(caf::local_actor* transport,
                            connection_args_ptr args);

// -- connection <-> stream ----------------------------------------------------

/// How a stream actor starts.
struct stream_args {
  int64_t stream_id = -1;
  caf::actor connection;
  std::string peer_name;
  stream_options options;
  /// We opened it: the first frame we send, and who consumes the peer's
  /// frames. Otherwise the peer opened it and `handler` names the consumer.
  std::optional<wire::owned_frame> first;
  caf::actor consumer;
  transport_handler_actor handler;
};

/// Spawns a stream actor.
caf::actor spawn_stream(caf::local_actor* connection, stream_args args);

/// connection -> stream: bytes the peer sent, in order (the pieces of one
/// round, not copied together).
struct stream_input {
  std::vector<std::vector<std::byte>> chunks;
  bool fin = false;
};

/// connection -> stream: QUIC took `n` more bytes of what the stream handed
/// over; `fin` once it took the end of the stream too.
struct stream_taken {
  size_t n = 0;
  bool fin = false;
};

/// connection -> stream: a large chunk of the stream's output that the
/// peer acknowledged, for the stream to free. Freeing 10 MiB takes the
/// kernel 0.4-1.2 ms; inside the connection actor every other stream of
/// the connection would wait for it, so the stream that sent it pays.
struct stream_released {
  std::vector<std::byte> data;
};

/// connection -> stream: the stream is over (both sides finished, reset, or
/// the connection closed).
struct stream_gone {
  error reason;
};

/// stream -> connection: bytes to send (and maybe the end of our side).
struct stream_output {
  int64_t stream_id = -1;
  std::vector<std::byte> data;
  bool fin = false;
};

/// stream -> connection: the consumer took `n` bytes.
struct stream_consumed {
  int64_t stream_id = -1;
  size_t n = 0;
};

/// stream -> connection: reset the stream with an application error code.
struct stream_abort {
  int64_t stream_id = -1;
  uint64_t code = 0;
};

} // namespace mycorrizal::detail
