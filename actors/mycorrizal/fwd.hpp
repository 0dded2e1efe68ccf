// SPDX-License-Identifier: Apache-2.0
// Forward declarations of Mycorrizal's public types, for headers that only
// name them (STYLE.md: include what you use, declare what you name).
#pragma once

#include <cstdint>

namespace mycorrizal {

// -- the facade (node.hpp) ----------------------------------------------------

class node;
struct node_config;
struct app_callbacks;

// -- core values (libmycorrizal) ----------------------------------------------

class ip_endpoint;
class error;

// -- cluster/ -----------------------------------------------------------------

enum class key_op : uint8_t;
struct membership_counters;
struct membership_options;
struct membership_handle;
struct peer_info;
struct peer_up;
struct peer_unreachable;
struct peer_down;
struct peers_stats;
struct peers_options;

// -- transport/ ---------------------------------------------------------------

struct transport_options;
struct transport_handle;
struct connection_info;
struct connection_up;
struct connection_down;
struct stream_accepted;
struct stream_frames;
struct stream_end;
struct stream_drained;
struct stream_stats;
struct transport_stats;

// -- apps/ --------------------------------------------------------------------

struct raw_bytes;
struct app_message;
struct app_request;
struct app_options;
struct app_stream_stats;
struct app_stats;
struct router_options;

// mycel/
struct cache_options;
struct bucket_info;
struct bucket_stats;
struct cache_op;
struct cache_op_batch;
struct cache_op_batch_reply;

namespace cache::proto {
struct bucket_options;
struct op_request;
struct op_reply;
struct scan_reply;
} // namespace cache::proto

namespace gossip {

struct member;
struct member_event;

} // namespace gossip

namespace net {

class reactor;
class udp_filter;
struct reactor_config;
struct udp_batch;
struct tcp_accepted;
struct tcp_connected;
struct tcp_received;
struct tcp_eof;
struct tcp_closed;

} // namespace net

namespace detail {

// Local-only messages between the actors of one subsystem.
struct membership_init;
struct transport_init;
struct connection_args;
struct routed_datagrams;
struct connection_routes;
struct connection_named;
struct handshake_failed;
struct stream_input;
struct stream_taken;
struct stream_gone;
struct stream_released;
struct stream_output;
struct stream_consumed;
struct stream_abort;
struct channel_connect;
struct channel_lost;
struct channel_handler;
struct channel_send;
struct channel_request;
struct channel_close;

} // namespace detail

} // namespace mycorrizal
