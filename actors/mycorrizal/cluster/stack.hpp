// SPDX-License-Identifier: Apache-2.0
// One node's cluster layer, wired: membership, peers and the QUIC transport.
#pragma once

#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/transport/transport.hpp"

#include <caf/actor_system.hpp>
#include <caf/timespan.hpp>

#include <chrono>

namespace mycorrizal {

/// How to start the cluster layer. `node::start` fills this from its
/// `node_config`; tests and benchmarks that need the layer without the
/// facade fill it themselves, so that everyone wires it the same way.
struct cluster_stack_options {
  /// The membership (gossip config with `name`, bind, reactor). Required.
  membership_options membership;
  /// The peers actor's name and timers; `membership` and `streams` are
  /// filled in below unless set (a test may let peers follow another
  /// membership actor).
  peers_options peers;
  /// The QUIC transport (credentials, config, bind). `handler` is the peers
  /// actor and `reactor` the membership's.
  transport_options transport;
  /// Names the consumer of each application stream (the router). Optional.
  stream_acceptor_actor streams;
  /// `gossip::node_role` bits announced in the gossip metadata.
  uint8_t roles = 0;
  /// How long the start may wait for the membership to take the QUIC port
  /// into its metadata.
  caf::timespan wait = std::chrono::seconds{5};
};

/// A started cluster layer.
struct cluster_stack {
  membership_handle membership;
  peers_actor peers;
  transport_handle transport;
};

/// Starts the membership, then the peers actor (following it), then the
/// transport (peers is its handler), announces the transport's QUIC port in
/// the membership's metadata (`gossip::node_meta`), and lets the peers
/// actor start dialing. When a step fails, what was started is stopped
/// again before this returns.
/// @returns the errors of `spawn_membership`, `spawn_peers` and
///   `spawn_transport`; `errc::timeout` when the metadata was not set in
///   time.
expected<cluster_stack> start_cluster_stack(caf::actor_system& sys,
                                            cluster_stack_options opts);

/// Stops the actors of `stack` and waits until they are gone (does not
/// leave the cluster first: see `leave_atom`).
void stop_cluster_stack(caf::actor_system& sys, const cluster_stack& stack);

} // namespace mycorrizal
