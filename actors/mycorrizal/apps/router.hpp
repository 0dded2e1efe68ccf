// SPDX-License-Identifier: Apache-2.0
// The router actor: application id -> local handler, remote handles per
// (node, application, stream), and the streams peers open.
#pragma once

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace mycorrizal {

/// The router's interface (`router_actor`, interfaces.hpp). Arguments come
/// in the order of the `node` facade's calls: who, application, what, then
/// the stream (the default stream is the empty name).
///
/// | message | reply |
/// |---|---|
/// | `register_atom, app, handler, app_options` | nothing; errors
///   `invalid_identifier`, `invalid_config` (bad options, or already
///   registered) |
/// | `unregister_atom, app` | nothing; its streams close |
/// | `create_stream_atom, app, stream, handler` | nothing; the handler (if
///   valid) receives that stream's messages instead of the application's |
/// | `close_stream_atom, app, stream` | nothing; its QUIC streams to every
///   peer close |
/// | `list_streams_atom, app` | the named streams |
/// | `remote_atom, node, app, stream` | the remote handle; `node_down` for
///   a node that is not an alive Mycorrizal member |
/// | `send_atom, app, nodes, payload, stream` | nothing once queued for
///   every node; else the first error (every node is tried) |
/// | `broadcast_atom, app, payload, stream` | the nodes it was queued for
///   (every peer running the application) |
/// | `request_atom, node, app, payload, timeout, stream` | the handler's
///   reply |
/// | `nodes_atom, app` | the peers running it |
/// | `stats_atom` | counters per application and stream |
///
/// From the peers actor: `set_peers_atom` (who to follow), the peer events
/// it publishes, and `stream_accepted` for the application streams peers
/// open (answered with the channel actor that serves the stream).

/// How to start a router.
struct router_options {
  /// Our node name.
  std::string name;
  /// The peers actor: connections, `nodes_atom`, APPS. May come later as
  /// `set_peers_atom`.
  peers_actor peers;
};

/// Spawns the router. Give it to the peers actor as `streams`; create the
/// router first, then send it `(set_peers_atom, peers)` once the peers
/// actor exists.
router_actor spawn_router(caf::actor_system& sys, router_options opts);

} // namespace mycorrizal
