// SPDX-License-Identifier: Apache-2.0
// The typed interfaces of Mycorrizal's actors, against forward declarations,
// so that a header can name an actor without including its subsystem.
#pragma once

#include "mycorrizal/fwd.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

/// Each alias is the protocol of one actor: a message its interface does not
/// list fails to compile at the sender (CAF 0.17's typed actors), and so
/// does a handler that answers with the wrong type. What each message means
/// is documented with the actor (the header named above each alias). The
/// messages an actor sends itself (timers, start-up) and those of the
/// reactor are not part of the interface; each actor extends its own
/// interface with them privately.
///
/// Dynamically typed (`caf::actor`) stay: a stream's consumer and a
/// subscriber (any actor of the host), and channels, which are remote
/// handles that carry the application's own messages.
namespace mycorrizal {

/// The membership actor (cluster/membership.hpp).
using membership_actor = caf::typed_actor<
  caf::replies_to<join_atom, std::vector<std::string>>::with<uint64_t>,
  caf::reacts_to<leave_atom, caf::timespan>,
  caf::replies_to<members_atom>::with<std::vector<gossip::member>>,
  caf::reacts_to<update_atom, std::string>,
  caf::replies_to<subscribe_atom,
                  caf::actor>::with<std::vector<gossip::member>>,
  caf::reacts_to<unsub_atom, caf::actor>,
  caf::replies_to<health_atom>::with<int>,
  caf::reacts_to<keyop_atom, key_op, std::string>,
  caf::replies_to<keys_atom>::with<std::vector<std::string>>,
  caf::replies_to<stats_atom>::with<membership_counters>,
  caf::replies_to<local_atom>::with<ip_endpoint>>;

/// A QUIC stream actor (transport/transport.hpp): writes, the end of our
/// side, a reset, counters. A writer refused with `queue_full` later gets
/// `stream_drained`, so writes carry their sender.
using stream_actor
  = caf::typed_actor<caf::reacts_to<write_atom, wire::owned_frame>,
                     caf::reacts_to<write_atom, std::vector<wire::owned_frame>>,
                     caf::reacts_to<write_atom, shared_frames>,
                     caf::reacts_to<close_atom>,
                     caf::reacts_to<reset_atom, uint64_t>,
                     caf::replies_to<stats_atom>::with<stream_stats>>;

/// A QUIC connection actor (transport/transport.hpp): opens streams,
/// closes, counters. The consumer of a stream is any actor.
using connection_actor = caf::typed_actor<
  caf::replies_to<open_atom, wire::owned_frame, caf::actor>::with<stream_actor>,
  caf::reacts_to<close_atom, uint64_t, std::string>,
  caf::replies_to<stats_atom>::with<connection_info>>;

/// Names the consumer of a stream a peer opened (transport/transport.hpp):
/// the peers actor hands application streams to one (the router).
using stream_acceptor_actor
  = caf::typed_actor<caf::replies_to<stream_accepted>::with<caf::actor>>;

/// What every connection of a transport reports to the transport's handler
/// (transport/transport.hpp).
using transport_handler_actor
  = stream_acceptor_actor::extend<caf::reacts_to<connection_up>,
                                  caf::reacts_to<connection_down>>;

/// The QUIC transport actor (transport/transport.hpp).
using transport_actor = caf::typed_actor<
  caf::replies_to<dial_atom, ip_endpoint, std::string,
                  caf::timespan>::with<connection_info>,
  caf::replies_to<stats_atom>::with<transport_stats>,
  caf::replies_to<connections_atom>::with<std::vector<connection_info>>>;

/// The peers actor (cluster/peers.hpp): the transport's handler, a
/// subscriber of the membership and the consumer of the control streams.
using peers_actor = transport_handler_actor::extend<
  caf::reacts_to<set_transport_atom, transport_actor>,
  caf::reacts_to<gossip::member_event>, caf::reacts_to<stream_frames>,
  caf::reacts_to<stream_end>,
  caf::replies_to<connections_atom>::with<std::vector<peer_info>>,
  caf::replies_to<subscribe_atom, caf::actor>::with<std::vector<peer_info>>,
  caf::replies_to<nodes_atom, std::string>::with<std::vector<std::string>>,
  caf::reacts_to<apps_atom, std::vector<std::string>>,
  caf::replies_to<stats_atom>::with<peers_stats>>;

/// The router of applications (apps/router.hpp). Arguments come in the
/// order of the `node` facade's calls: who, application, what, then the
/// stream (the default stream is the empty name).
using router_actor = caf::typed_actor<
  caf::reacts_to<register_atom, std::string, caf::actor, app_options>,
  caf::reacts_to<unregister_atom, std::string>,
  caf::reacts_to<create_stream_atom, std::string, std::string, caf::actor>,
  caf::reacts_to<close_stream_atom, std::string, std::string>,
  caf::replies_to<list_streams_atom,
                  std::string>::with<std::vector<std::string>>,
  caf::replies_to<remote_atom, std::string, std::string,
                  std::string>::with<caf::actor>,
  caf::reacts_to<send_atom, std::string, std::vector<std::string>, raw_bytes,
                 std::string>,
  caf::replies_to<broadcast_atom, std::string, raw_bytes,
                  std::string>::with<std::vector<std::string>>,
  caf::replies_to<request_atom, std::string, std::string, raw_bytes,
                  caf::timespan, std::string>::with<raw_bytes>,
  caf::replies_to<nodes_atom, std::string>::with<std::vector<std::string>>,
  caf::replies_to<stats_atom>::with<std::vector<app_stats>>,
  caf::reacts_to<set_peers_atom, peers_actor>, caf::reacts_to<peer_up>,
  caf::reacts_to<peer_down>, caf::reacts_to<peer_unreachable>,
  caf::replies_to<stream_accepted>::with<caf::actor>>;

} // namespace mycorrizal
