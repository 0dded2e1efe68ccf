// SPDX-License-Identifier: Apache-2.0
// Every atom of Mycorrizal's actor interfaces, and every type its actors
// pass in messages, declared in one place.
#pragma once

#include "mycorrizal/fwd.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <cstddef>
#include <memory>
#include <vector>

/// CAF 0.17 identifies a message's types at run time; types that are only
/// ever sent between actors of one process need no serializer and are
/// declared with `CAF_ALLOW_UNSAFE_MESSAGE_TYPE` (PLATFORM.md §2.4). Those
/// declarations are template specializations: they name a type, so its
/// forward declaration (`fwd.hpp`) suffices, and they must precede the
/// first message that carries the type — every header that defines a
/// message type includes this one. Types that cross the network (CAF
/// payloads of applications) are the host's, registered with
/// `add_message_type`.
namespace mycorrizal {

// -- membership ---------------------------------------------------------------

using join_atom = caf::atom_constant<caf::atom("join")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using members_atom = caf::atom_constant<caf::atom("members")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using keyop_atom = caf::atom_constant<caf::atom("keyop")>;
using keys_atom = caf::atom_constant<caf::atom("keys")>;
using local_atom = caf::atom_constant<caf::atom("local")>;

// -- transport ----------------------------------------------------------------

using dial_atom = caf::atom_constant<caf::atom("dial")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using reset_atom = caf::atom_constant<caf::atom("reset")>;
using connections_atom = caf::atom_constant<caf::atom("conns")>;

// -- peers --------------------------------------------------------------------

using nodes_atom = caf::atom_constant<caf::atom("nodes")>;
using apps_atom = caf::atom_constant<caf::atom("apps")>;
using set_transport_atom = caf::atom_constant<caf::atom("settrans")>;

// -- applications (the router) ------------------------------------------------

using register_atom = caf::atom_constant<caf::atom("register")>;
using unregister_atom = caf::atom_constant<caf::atom("unregister")>;
using create_stream_atom = caf::atom_constant<caf::atom("mkstream")>;
using close_stream_atom = caf::atom_constant<caf::atom("rmstream")>;
using list_streams_atom = caf::atom_constant<caf::atom("lsstreams")>;
using remote_atom = caf::atom_constant<caf::atom("remote")>;
using send_atom = caf::atom_constant<caf::atom("send")>;
using broadcast_atom = caf::atom_constant<caf::atom("broadcast")>;
using request_atom = caf::atom_constant<caf::atom("request")>;
using set_peers_atom = caf::atom_constant<caf::atom("setpeers")>;

// -- the cache (mycel) --------------------------------------------------------

using create_bucket_atom = caf::atom_constant<caf::atom("mkbucket")>;
using drop_bucket_atom = caf::atom_constant<caf::atom("rmbucket")>;
using list_buckets_atom = caf::atom_constant<caf::atom("lsbuckets")>;
using scan_atom = caf::atom_constant<caf::atom("scan")>;
using view_atom = caf::atom_constant<caf::atom("view")>;
using owners_atom = caf::atom_constant<caf::atom("owners")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using bucket_atom = caf::atom_constant<caf::atom("bucket")>;
using retag_atom = caf::atom_constant<caf::atom("retag")>;

// -- everyone -----------------------------------------------------------------

using stats_atom = caf::atom_constant<caf::atom("stats")>;

// -- an actor's messages to itself (timers and start-up) ----------------------

using init_atom = caf::atom_constant<caf::atom("init")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using drained_atom = caf::atom_constant<caf::atom("drained")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using pump_atom = caf::atom_constant<caf::atom("pump")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using dial_timeout_atom = caf::atom_constant<caf::atom("dialtmo")>;
using retry_join_atom = caf::atom_constant<caf::atom("rejoin")>;
using repair_atom = caf::atom_constant<caf::atom("repair")>;
using handoff_atom = caf::atom_constant<caf::atom("handoff")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;

// -- types of local-only messages ---------------------------------------------

namespace detail {

using connection_args_ptr = std::shared_ptr<connection_args>;
using membership_init_ptr = std::shared_ptr<membership_init>;
using transport_init_ptr = std::shared_ptr<transport_init>;

} // namespace detail

/// The frames of one stream write, shared by every peer of a broadcast.
using shared_frames = std::shared_ptr<std::vector<wire::owned_frame>>;

} // namespace mycorrizal

// Public messages (what hosts receive from subscriptions and queries).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::raw_bytes)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::ip_endpoint)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::key_op)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::membership_counters)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::gossip::member_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::gossip::member>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::peer_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::peer_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::peer_up)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::peer_unreachable)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::peer_down)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::peers_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::app_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::app_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::app_options)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::app_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::app_stats>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::connection_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::connection_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::connection_up)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::connection_down)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::stream_accepted)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::stream_frames)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::stream_end)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::stream_drained)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::stream_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::transport_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::wire::owned_frame)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::wire::owned_frame>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::shared_frames)

// The cache.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache::proto::bucket_options)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache::proto::op_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache::proto::op_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache::proto::scan_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache_op)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache_op_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::cache_op_batch_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::bucket_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::bucket_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::bucket_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<mycorrizal::bucket_stats>)

// The reactor's events.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::net::udp_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::net::tcp_accepted)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::net::tcp_connected)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::net::tcp_received)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::net::tcp_eof)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::net::tcp_closed)

// Between the actors of one subsystem.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::membership_init_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::transport_init_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::connection_args_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::routed_datagrams)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::connection_routes)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::connection_named)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::handshake_failed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_input)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_taken)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_gone)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_released)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_output)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_consumed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::stream_abort)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::channel_connect)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::channel_lost)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::channel_handler)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::channel_send)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::channel_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::detail::channel_close)
