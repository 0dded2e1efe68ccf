// SPDX-License-Identifier: Apache-2.0
// Applications: what a handler receives, options, statistics, and the
// router actor that connects local handlers with their peers.
#pragma once

#include "mycorrizal/errc.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/metrics/registry.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/timespan.hpp>
#include <caf/timestamp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

/// An **application** is an id (e.g. `"chat"`, `"mycel"`) that nodes
/// register with a handler actor. Nodes exchange messages per application
/// and per **stream** of it (the default stream has the empty name; named
/// streams are created with `create_stream_atom`): every (peer,
/// application, stream) gets its own QUIC stream, so a bulk transfer on one
/// never delays another.
///
/// ### What a handler receives
/// - `app_message` for a one-way message with a raw-bytes payload; its
///   reply (if any) is ignored.
/// - `app_request` for a request with a raw-bytes payload; reply with
///   `raw_bytes` (or an error, which the requester gets as
///   `errc::remote_error` carrying its text, or the same `errc` when it is
///   a Mycorrizal error).
/// - A CAF message (any types registered with `add_message_type` on both
///   sides), exactly as the remote sender sent it to its remote handle. Its
///   sender (`current_sender()`) is a handle for (that node, application,
///   stream): sending to it sends back. Reply to a request by returning a
///   value, like to any local request.
///
/// Delivery is at most once and in order per (sender node, receiver node,
/// application, stream). The handler's mailbox is bounded by QUIC flow
/// control: a stream delivers the next messages only once the handler has
/// processed the earlier ones (up to the stream's `max_unacked_bytes`), so a
/// handler that blocks stalls only its own streams; the senders see
/// `errc::queue_full` when their queue is full.
///
/// ### Remote handles
/// `remote_atom` gives a `caf::actor` for (node, application, stream). Any
/// message sent to it goes to the remote handler (serialized with CAF's
/// binary serializer); a request to it is answered by the remote handler's
/// reply, or fails with an `errc` (see below). When the node dies or leaves
/// the handle quits with reason `errc::node_down`, so monitors get a
/// `down_msg` and its pending requests fail with `node_down`. When the
/// connection breaks while the node lives, its pending requests fail with
/// `errc::connection_lost` and the handle carries on over the next
/// connection. A request that gets no answer fails with `errc::timeout`
/// (the handle waits at most `app_options::request_timeout`; a requester's
/// own shorter timeout ends it earlier). No request ever hangs.
///
/// ### Errors a sender or requester sees
/// `timeout`, `node_down`, `connection_lost`, `unknown_application` (the
/// peer runs no such application or stream), `no_handler` (the peer's
/// handler has no case for the message), `remote_error` (the handler
/// answered with an error; the context is its text), `too_large` (payload
/// above `app_options::max_message_size`), `queue_full`, `shutting_down`,
/// `not_serializable` (a message type not registered for serialization).
namespace mycorrizal {

/// Raw bytes in a message: the payload of the router's `send_atom`,
/// `broadcast_atom` and `request_atom`, and the answer to an `app_request`
/// and to `request_atom`. A type of its own: declaring
/// `std::vector<std::byte>` a local-only message type (CAF 0.17's
/// `CAF_ALLOW_UNSAFE_MESSAGE_TYPE`) would claim that standard type for every
/// program that includes Mycorrizal's headers.
struct raw_bytes {
  std::vector<std::byte> data;
};

/// A one-way message with a raw-bytes payload.
struct app_message {
  /// The sending node.
  std::string node;
  std::string application;
  /// The stream it came on ("" is the default stream).
  std::string stream;
  std::vector<std::byte> payload;
};

/// A request with a raw-bytes payload; reply `raw_bytes`.
struct app_request {
  std::string node;
  std::string application;
  std::string stream;
  std::vector<std::byte> payload;
  /// Time the requester still waits (0: none given); later replies are lost.
  caf::timespan budget{0};
};

/// Per-application settings.
struct app_options {
  /// Named streams the application may have at once, created locally or
  /// opened by one peer. Range: [0, 100000].
  size_t max_streams = 64;

  /// Refuse named streams from peers (and creating them locally).
  bool default_stream_only = false;

  /// Largest payload sent or accepted per message. Range: [1, 16 MiB - 64].
  size_t max_message_size = (size_t{16} << 20) - 64;

  /// Bytes a (peer, stream) handle queues while it waits for its
  /// connection or for room in its QUIC stream; a one-way message beyond
  /// that is dropped (counted in `failed_sends`, logged), a request fails
  /// with `queue_full`. An empty queue takes any message up to
  /// `max_message_size`. Range: [1 KiB, 1 GiB].
  size_t max_connecting_bytes = size_t{8} << 20;

  /// Requests a (peer, stream) handle has in flight at once; more fail with
  /// `queue_full`. Range: [1, 1000000].
  size_t max_pending_requests = 65536;

  /// The longest a request waits for its answer (the requester's own
  /// timeout may be shorter), and the time a handler gets for a request
  /// that carries no budget. Range: [1 ms, 1 h].
  caf::timespan request_timeout = std::chrono::seconds{30};

  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

/// Counters of one stream of an application (all peers together).
struct app_stream_stats {
  /// The upper bounds (seconds) of `request_latency`'s buckets.
  static std::span<const double> latency_bounds();

  /// "" for the default stream.
  std::string name;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t messages_in = 0;
  uint64_t messages_out = 0;
  /// Requests sent and the answers that came back as errors or timeouts.
  uint64_t requests_out = 0;
  uint64_t requests_failed = 0;
  /// Messages that could not be sent (queue full, no connection, refused
  /// by the peer, too large, not serializable).
  uint64_t failed_sends = 0;
  /// Answers that came after their request had ended (dropped).
  uint64_t late_responses = 0;
  /// `requests_failed` by error code, codes that occurred only, by code.
  std::vector<std::pair<errc, uint64_t>> request_errors;
  /// Seconds from a request's start to its end (answer, error or
  /// timeout), over `latency_bounds()`.
  metrics::histogram::snapshot request_latency;
  caf::timestamp created;
  /// Last message in or out (`created` until then).
  caf::timestamp last_active;
  /// Peers with a live QUIC stream for it now, sorted.
  std::vector<std::string> active_nodes;
};

/// Counters of an application: its streams, default stream first.
struct app_stats {
  std::string application;
  std::vector<app_stream_stats> streams;
};

} // namespace mycorrizal
