// SPDX-License-Identifier: Apache-2.0
// mycorrizal-node's actors: a watcher that prints membership and connection
// changes, and the example application `demo` (`--demo`).
#pragma once

#include "mycorrizal/apps/router.hpp"
#include "mycorrizal/interfaces.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

/// The `demo` application shows the runtime with real actor mechanisms, in
/// lines prefixed with the node name:
///
/// - it asks the router every `interval` which peers run `demo`
///   (`nodes_atom`), gets a remote handle for each new one (`remote_atom`)
///   and `monitor`s it: when the peer dies or leaves, the handle quits with
///   `node_down` and a `down_msg` arrives (printed as `down-message`);
/// - every `interval` it broadcasts `hello #N` as raw bytes (`broadcast_atom`;
///   the peers' handlers get an `app_message`) and sends a typed request
///   (`demo_ping`, a CAF message serialized to the peer) to each handle,
///   printing the answer and its round-trip time;
/// - it keeps one *slow* request per peer in flight, which the peer answers
///   after `slow_delay` from a response promise: when a peer is killed, the
///   pending one visibly fails (`connection_lost` or `node_down`).
///
/// The handler side answers `demo_ping` with a `std::string`, and raw-bytes
/// requests (`app_request`) with the same text as bytes.
namespace mycorrizal::tools {

/// The demo's typed request; every node registers it
/// (`add_demo_types`), so it travels as a CAF message.
struct demo_ping {
  std::string from;
  uint64_t seq = 0;
  /// Answered after `demo_options::slow_delay` instead of at once.
  bool slow = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, demo_ping& x) {
  return f(caf::meta::type_name("demo_ping"), x.from, x.seq, x.slow);
}

/// Registers the demo's message types for serialization (every node must,
/// before the actor system exists).
void add_demo_types(caf::actor_system_config& cfg);

/// Prints `[name] text` as one line on stdout (thread-safe, flushed).
void say(std::string_view name, std::string_view text);

/// Spawns an actor that prints membership events (`membership` actor) and
/// QUIC connections going up and down (`peers` actor) until it is told to
/// exit.
caf::actor spawn_watcher(caf::actor_system& sys, std::string name,
                         membership_actor membership, peers_actor peers);

/// How to run the demo application.
struct demo_options {
  /// Our node name.
  std::string name;
  /// The node's router (`node::router()`).
  router_actor router;
  /// The application id.
  std::string app = "demo";
  /// Broadcast and request period.
  caf::timespan interval = std::chrono::seconds{1};
  /// Time a fast request may take.
  caf::timespan request_timeout = std::chrono::seconds{2};
  /// How long the handler holds a slow request before it answers.
  caf::timespan slow_delay = std::chrono::seconds{2};
  /// Time a slow request may take.
  caf::timespan slow_timeout = std::chrono::seconds{20};
};

/// Spawns the demo actor: it is both the application's handler (register
/// it with `node::register_app(opts.app, actor)`) and the driver that
/// broadcasts and requests. It re-arms a timer: send it an exit before the
/// actor system ends.
caf::actor spawn_demo(caf::actor_system& sys, demo_options opts);

} // namespace mycorrizal::tools
