// SPDX-License-Identifier: Apache-2.0
// Internal: the channel actor (one per peer, application and stream) and
// the counters it shares with the router. Not installed.
#pragma once

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/metrics/registry.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/local_actor.hpp>
#include <caf/timestamp.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mycorrizal::detail {

/// Counters of one (application, stream), shared by its channels (which
/// count) and the router (which reports). Relaxed atomics: they are
/// statistics, read while written.
struct stream_counters {
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> messages_in{0};
  std::atomic<uint64_t> messages_out{0};
  std::atomic<uint64_t> requests_out{0};
  std::atomic<uint64_t> requests_failed{0};
  std::atomic<uint64_t> failed_sends{0};
  std::atomic<uint64_t> late_responses{0};
  /// Requests of ours that failed, by `errc` value.
  std::array<std::atomic<uint64_t>, 256> request_errors{};
  /// Seconds from a request's start to its end (answer, error or timeout).
  metrics::histogram request_latency{app_stream_stats::latency_bounds()};
  /// Nanoseconds since the epoch of the system clock.
  std::atomic<int64_t> last_active{0};
  caf::timestamp created = caf::make_timestamp();

  void add(std::atomic<uint64_t>& x, uint64_t n = 1) noexcept {
    x.fetch_add(n, std::memory_order_relaxed);
  }

  void touch() noexcept {
    last_active.store(caf::make_timestamp().time_since_epoch().count(),
                      std::memory_order_relaxed);
  }

  app_stream_stats snapshot(std::string name) const;
};

/// Where a channel's messages go and how it reaches its peer.
struct channel_options {
  /// Our node and the peer's.
  std::string self_name;
  std::string peer;
  std::string application;
  std::string stream;
  /// Receives what the peer sends on this stream (may be invalid: then
  /// requests are answered with `no_handler`).
  caf::actor handler;
  app_options options;
  std::shared_ptr<stream_counters> counters;
  /// An outgoing channel opens its QUIC stream on this connection when it
  /// has something to send (invalid: wait for `channel_connect`).
  connection_actor connection;
  /// An inbound channel serves the QUIC stream the peer opened.
  stream_actor accepted;
  /// Without a connection: the peer is unreachable (see `channel_lost`).
  std::optional<error> unreachable;
};

/// Router → outgoing channel: the connection to its peer is up.
struct channel_connect {
  connection_actor connection;
};

/// Router → channel: the connection broke while the peer lives.
struct channel_lost {
  error reason;
  /// It stopped answering (`peer_unreachable`): until the next
  /// `channel_connect`, what is sent fails at once with `reason` instead of
  /// waiting for a redial that cannot succeed while the path is broken.
  bool unreachable = false;
};

/// Router → channel: a new handler for what the peer sends.
struct channel_handler {
  caf::actor handler;
};

/// Router → channel: a raw-bytes message (reply: `caf::unit` once
/// buffered, or the error).
struct channel_send {
  std::vector<std::byte> payload;
};

/// Router → channel: a raw-bytes request (reply: the handler's bytes).
struct channel_request {
  std::vector<std::byte> payload;
  caf::timespan timeout;
};

/// Router → channel: close the QUIC stream and quit (reason `normal`);
/// pending requests fail with `reason`.
struct channel_close {
  error reason;
};

/// Spawns a channel linked to `parent` (the router). Outgoing channels are
/// remote handles: they quit only when told (the node is down, the stream
/// or application closed, the node stops). Inbound channels quit when their
/// QUIC stream ends.
caf::actor spawn_channel(caf::local_actor* parent, channel_options opts);

} // namespace mycorrizal::detail
