// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/node_metrics.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace mycorrizal {

namespace {

using metrics::label;

double seconds(duration d) {
  return std::chrono::duration<double>(d).count();
}

/// One counter per field, all of one struct, without labels.
struct counter_field {
  std::string_view name;
  std::string_view help;
  uint64_t value;
};

void counters(metrics::collector_sink& out,
              std::initializer_list<counter_field> fields,
              std::span<const label> labels = {}) {
  for (const auto& f : fields) {
    out.counter(f.name, f.help, labels, f.value);
  }
}

void report_membership(const node_snapshot& snap,
                       metrics::collector_sink& out) {
  if (snap.members) {
    std::array<uint64_t, 4> by_state{};
    for (const auto& m : *snap.members) {
      auto i = static_cast<size_t>(m.state);
      if (i < by_state.size()) {
        ++by_state[i];
      }
    }
    constexpr std::array<std::string_view, 4> names{"alive", "suspect", "dead",
                                                    "left"};
    for (size_t i = 0; i < names.size(); ++i) {
      std::array<label, 1> l{label{"state", std::string{names[i]}}};
      out.gauge("mycorrizal_members",
                "Members in this node's view, by state (itself included).", l,
                static_cast<double>(by_state[i]));
    }
  }
  if (snap.health_score) {
    out.gauge("mycorrizal_gossip_health_score",
              "Lifeguard's local health score: 0 is healthy; higher values "
              "stretch probe timeouts.",
              *snap.health_score);
  }
  if (!snap.membership) {
    return;
  }
  const auto& c = snap.membership->core;
  counters(
    out,
    {
      {"mycorrizal_gossip_packets_received_total", "Gossip datagrams received.",
       c.packets_in},
      {"mycorrizal_gossip_received_bytes_total",
       "Gossip datagram bytes received.", c.bytes_in},
      {"mycorrizal_gossip_packets_sent_total", "Gossip datagrams sent.",
       c.packets_out},
      {"mycorrizal_gossip_sent_bytes_total", "Gossip datagram bytes sent.",
       c.bytes_out},
      {"mycorrizal_gossip_packets_dropped_total",
       "Gossip datagrams dropped whole: wrong key, bad CRC, malformed framing.",
       c.packets_dropped},
      {"mycorrizal_gossip_messages_dropped_total",
       "Gossip messages that did not decode or were refused.",
       c.messages_dropped},
      {"mycorrizal_gossip_streams_accepted_total",
       "Gossip TCP exchanges (push/pull, TCP pings) accepted.", c.streams_in},
      {"mycorrizal_gossip_streams_failed_total",
       "Gossip TCP exchanges that failed.", c.streams_failed},
      {"mycorrizal_gossip_probes_total", "Failure-detector probes started.",
       c.probes},
      {"mycorrizal_gossip_probes_failed_total",
       "Probes that got no ack, directly or indirectly.", c.probes_failed},
      {"mycorrizal_gossip_indirect_probes_total",
       "Indirect probes asked of other members.", c.indirect_probes},
      {"mycorrizal_gossip_tcp_fallback_acks_total",
       "Probes answered only over the TCP fallback.", c.tcp_fallback_ok},
      {"mycorrizal_gossip_refutations_total",
       "Suspicions of this node that it refuted.", c.refutations},
      {"mycorrizal_gossip_suspicions_total",
       "Members this node started suspecting.", c.suspicions},
      {"mycorrizal_gossip_deaths_declared_total",
       "Members this node declared dead.", c.deaths_declared},
      {"mycorrizal_gossip_push_pulls_total",
       "Full state exchanges (push/pull) completed.", c.push_pulls},
      {"mycorrizal_gossip_reconnects_total",
       "Push/pull attempts with failed members and seeds.", c.reconnects},
      {"mycorrizal_gossip_reconnects_answered_total",
       "Reconnect attempts that got an answer.", c.reconnects_ok},
      {"mycorrizal_gossip_send_errors_total",
       "Gossip datagrams the socket refused to send.",
       snap.membership->send_errors},
      {"mycorrizal_gossip_tcp_errors_total",
       "Gossip TCP exchanges that broke before a reply.",
       snap.membership->tcp_errors},
    });
  constexpr std::array<std::string_view,
                       gossip::membership_stats::message_types>
    types{"ping",    "indirect_ping", "ack",      "suspect", "alive",
          "dead",    "push_pull",     "compound", "user",    "compress",
          "encrypt", "nack",          "has_crc",  "err"};
  for (size_t t = 0; t < types.size(); ++t) {
    if (c.messages_in[t] + c.messages_out[t] == 0) {
      continue;
    }
    std::array<label, 2> in{label{"type", std::string{types[t]}},
                            label{"direction", "received"}};
    std::array<label, 2> sent{label{"type", std::string{types[t]}},
                              label{"direction", "sent"}};
    constexpr std::string_view help
      = "Gossip messages in datagrams by type (compound parts one by one).";
    constexpr std::string_view bytes_help
      = "Bytes of gossip messages in datagrams by type.";
    out.counter("mycorrizal_gossip_messages_total", help, in, c.messages_in[t]);
    out.counter("mycorrizal_gossip_messages_total", help, sent,
                c.messages_out[t]);
    out.counter("mycorrizal_gossip_message_bytes_total", bytes_help, in,
                c.message_bytes_in[t]);
    out.counter("mycorrizal_gossip_message_bytes_total", bytes_help, sent,
                c.message_bytes_out[t]);
  }
}

void report_transport(const node_snapshot& snap, metrics::collector_sink& out) {
  if (snap.transport) {
    const auto& t = *snap.transport;
    counters(
      out,
      {
        {"mycorrizal_quic_udp_datagrams_received_total",
         "UDP datagrams received on the QUIC socket.", t.udp.datagrams_in},
        {"mycorrizal_quic_udp_received_bytes_total",
         "UDP payload bytes received on the QUIC socket.", t.udp.bytes_in},
        {"mycorrizal_quic_udp_datagrams_sent_total",
         "UDP datagrams sent on the QUIC socket.", t.udp.datagrams_out},
        {"mycorrizal_quic_udp_sent_bytes_total",
         "UDP payload bytes sent on the QUIC socket.", t.udp.bytes_out},
        {"mycorrizal_quic_udp_receive_errors_total",
         "Receive errors on the QUIC socket.", t.udp.receive_errors},
        {"mycorrizal_quic_udp_send_errors_total",
         "Datagrams the QUIC socket failed to send.", t.udp.send_errors},
        {"mycorrizal_quic_udp_truncated_total",
         "Datagrams longer than the receive limit, dropped.", t.udp.truncated},
        {"mycorrizal_quic_datagrams_dropped_total",
         "Datagrams no connection took (no route, not QUIC).",
         t.datagrams_dropped},
        {"mycorrizal_quic_version_negotiations_sent_total",
         "Version negotiation packets sent.", t.version_negotiations_sent},
        {"mycorrizal_quic_connections_ended_total", "QUIC connections ended.",
         t.connections_ended},
      });
    std::array<label, 1> in{label{"direction", "incoming"}};
    std::array<label, 1> outgoing{label{"direction", "outgoing"}};
    constexpr std::string_view conn_help
      = "QUIC connections accepted (incoming) or dialed (outgoing).";
    out.counter("mycorrizal_quic_connections_total", conn_help, in,
                t.connections_accepted);
    out.counter("mycorrizal_quic_connections_total", conn_help, outgoing,
                t.connections_dialed);
    out.gauge("mycorrizal_quic_connections_open", "QUIC connections open.",
              static_cast<double>(t.connections_open));
    constexpr std::string_view hs_help
      = "QUIC handshakes by outcome: completed, or the reason it failed.";
    std::array<label, 1> ok{label{"outcome", "completed"}};
    out.counter("mycorrizal_quic_handshakes_total", hs_help, ok,
                t.handshakes_completed);
    for (size_t i = 1; i < t.handshakes_failed.size(); ++i) {
      std::array<label, 1> why{
        label{"outcome",
              std::string{to_string(static_cast<quic::handshake_failure>(i))}}};
      out.counter("mycorrizal_quic_handshakes_total", hs_help, why,
                  t.handshakes_failed[i]);
    }
  }
  if (!snap.connections) {
    return;
  }
  // One series per peer: two connections to one peer (a duplicate being
  // closed) add up their counters; the gauges are the first one's.
  std::map<std::string, quic::connection_stats> by_peer;
  for (const auto& c : *snap.connections) {
    if (c.peer_name.empty()) {
      continue; // not yet authenticated
    }
    auto [i, added] = by_peer.emplace(c.peer_name, c.stats);
    if (!added) {
      i->second.bytes_sent += c.stats.bytes_sent;
      i->second.bytes_received += c.stats.bytes_received;
      i->second.datagrams_sent += c.stats.datagrams_sent;
      i->second.datagrams_received += c.stats.datagrams_received;
      i->second.lost_packets += c.stats.lost_packets;
      i->second.datagrams_dropped += c.stats.datagrams_dropped;
    }
  }
  for (const auto& [peer, s] : by_peer) {
    std::array<label, 1> l{label{"peer", peer}};
    out.gauge("mycorrizal_quic_rtt_seconds",
              "Smoothed round-trip time of the connection to a peer.", l,
              seconds(s.smoothed_rtt));
    out.gauge("mycorrizal_quic_min_rtt_seconds",
              "Smallest round-trip time seen on the connection to a peer.", l,
              seconds(s.min_rtt));
    out.gauge("mycorrizal_quic_congestion_window_bytes",
              "Congestion window of the connection to a peer.", l,
              static_cast<double>(s.cwnd));
    out.gauge("mycorrizal_quic_bytes_in_flight",
              "Bytes sent to a peer and not yet acknowledged.", l,
              static_cast<double>(s.bytes_in_flight));
    out.counter("mycorrizal_quic_peer_sent_bytes_total",
                "UDP payload bytes sent to a peer.", l, s.bytes_sent);
    out.counter("mycorrizal_quic_peer_received_bytes_total",
                "UDP payload bytes received from a peer.", l, s.bytes_received);
    out.counter("mycorrizal_quic_peer_datagrams_sent_total",
                "Datagrams sent to a peer.", l, s.datagrams_sent);
    out.counter("mycorrizal_quic_peer_datagrams_received_total",
                "Datagrams received from a peer.", l, s.datagrams_received);
    out.counter("mycorrizal_quic_packets_lost_total",
                "Packets with stream data to a peer declared lost (and "
                "retransmitted).",
                l, s.lost_packets);
  }
}

void report_peers(const node_snapshot& snap, metrics::collector_sink& out) {
  if (!snap.peers) {
    return;
  }
  const auto& p = *snap.peers;
  counters(out,
           {
             {"mycorrizal_peer_dials_total", "QUIC dials to members.", p.dials},
             {"mycorrizal_peer_dial_failures_total",
              "Dials that failed (refused, timed out, certificate refused).",
              p.dial_failures},
             {"mycorrizal_peer_duplicates_closed_total",
              "Second connections between one pair of nodes, closed.",
              p.duplicates_closed},
             {"mycorrizal_peer_refused_total",
              "Connections refused: not a member, stale incarnation, self.",
              p.refused},
             {"mycorrizal_peer_ups_total",
              "Connections to members that came up.", p.ups},
             {"mycorrizal_peer_downs_total",
              "Connections to members that ended.", p.downs},
             {"mycorrizal_peer_unreachable_total",
              "Connections that stopped answering while the member was alive.",
              p.unreachable},
           });
}

void report_apps(const node_snapshot& snap, metrics::collector_sink& out) {
  if (!snap.apps) {
    return;
  }
  for (const auto& a : *snap.apps) {
    for (const auto& s : a.streams) {
      std::array<label, 2> l{label{"app", a.application},
                             label{"stream", s.name}};
      counters(
        out,
        {
          {"mycorrizal_app_received_bytes_total",
           "Payload bytes an application's stream received.", s.bytes_in},
          {"mycorrizal_app_sent_bytes_total",
           "Payload bytes an application's stream sent.", s.bytes_out},
          {"mycorrizal_app_messages_received_total",
           "Messages an application's stream received.", s.messages_in},
          {"mycorrizal_app_messages_sent_total",
           "Messages an application's stream sent.", s.messages_out},
          {"mycorrizal_app_requests_total",
           "Requests an application's stream sent to peers.", s.requests_out},
          {"mycorrizal_app_requests_failed_total",
           "Requests that ended in an error or a timeout.", s.requests_failed},
          {"mycorrizal_app_failed_sends_total",
           "Messages that could not be sent (queue full, no connection, too "
           "large, refused).",
           s.failed_sends},
          {"mycorrizal_app_late_responses_total",
           "Responses that came after their request had ended.",
           s.late_responses},
        },
        l);
      out.histogram("mycorrizal_app_request_duration_seconds",
                    "Seconds from a request's start to its answer, error or "
                    "timeout.",
                    l, app_stream_stats::latency_bounds(), s.request_latency);
      for (const auto& [code, n] : s.request_errors) {
        std::array<label, 3> le{label{"app", a.application},
                                label{"stream", s.name},
                                label{"errc", std::string{to_string(code)}}};
        out.counter("mycorrizal_app_request_errors_total",
                    "Requests that failed, by error code (timeout, node_down, "
                    "remote_error, ...).",
                    le, n);
      }
      out.gauge("mycorrizal_app_stream_peers",
                "Peers with a live QUIC stream for an application's stream.", l,
                static_cast<double>(s.active_nodes.size()));
    }
  }
}

void report_cache(const node_snapshot& snap, metrics::collector_sink& out) {
  if (!snap.buckets) {
    return;
  }
  for (const auto& b : *snap.buckets) {
    std::array<label, 1> l{label{"bucket", b.name}};
    out.gauge("mycorrizal_cache_entries",
              "Entries this node stores for a bucket (copies included).", l,
              static_cast<double>(b.entries));
    out.gauge("mycorrizal_cache_bytes",
              "Bytes of keys and values this node stores for a bucket.", l,
              static_cast<double>(b.bytes));
    out.gauge("mycorrizal_cache_tombstones",
              "Deletions this node remembers for a bucket.", l,
              static_cast<double>(b.tombstones));
    out.gauge("mycorrizal_cache_partitions_owned",
              "Partitions of a bucket this node owns a copy of.", l,
              static_cast<double>(b.partitions_owned));
    out.gauge("mycorrizal_cache_partitions_primary",
              "Partitions of a bucket this node is the primary of.", l,
              static_cast<double>(b.partitions_primary));
    counters(
      out,
      {
        {"mycorrizal_cache_hits_total", "Reads that found their key.", b.hits},
        {"mycorrizal_cache_partitions_orphaned_total",
         "Partitions this node came to own with no earlier owner left to "
         "hand them over (a bucket's creation counts all it owns).",
         b.partitions_orphaned},
        {"mycorrizal_cache_misses_total", "Reads that did not find their key.",
         b.misses},
        {"mycorrizal_cache_evictions_total",
         "Entries evicted by the LRU limit.", b.evictions},
        {"mycorrizal_cache_expirations_total", "Entries expired by their TTL.",
         b.expirations},
        {"mycorrizal_cache_handoff_partitions_sent_total",
         "Partitions handed off to new owners.", b.handoffs_sent},
        {"mycorrizal_cache_handoff_partitions_received_total",
         "Partitions received in hand-offs.", b.handoffs_received},
        {"mycorrizal_cache_handoff_partitions_abandoned_total",
         "Hand-offs given up after retries (anti-entropy repairs them).",
         b.handoffs_abandoned},
        {"mycorrizal_cache_repairs_total",
         "Partitions anti-entropy found different and repaired.", b.repairs},
        {"mycorrizal_cache_malformed_total",
         "Peer messages refused as malformed.", b.malformed},
        {"mycorrizal_cache_handoff_sent_bytes_total",
         "Encoded bytes of hand-off batches sent and acknowledged.",
         b.handoff_bytes_sent},
        {"mycorrizal_cache_handoff_received_bytes_total",
         "Encoded bytes of hand-off batches received.",
         b.handoff_bytes_received},
        {"mycorrizal_cache_forwarded_operations_total",
         "Operations sent to the owners of their keys.", b.ops_forwarded},
        {"mycorrizal_cache_forward_requests_total",
         "Requests that carried forwarded operations (one per owner and "
         "round).",
         b.forward_requests},
        {"mycorrizal_cache_replicated_records_total",
         "Records sent to the other owners of their keys (writes, drops).",
         b.records_replicated},
        {"mycorrizal_cache_replication_requests_total",
         "Requests that carried replicated records (one per owner and "
         "round).",
         b.replication_requests},
      },
      l);
    for (const auto& [op, lat] : b.op_latency) {
      std::array<label, 2> lo{label{"bucket", b.name},
                              label{"op", std::string{to_string(op)}}};
      out.histogram("mycorrizal_cache_operation_duration_seconds",
                    "Seconds from a local caller's operation (any front door "
                    "or handle on this node) to its answer.",
                    lo, bucket_stats::latency_bounds(), lat);
    }
  }
}

} // namespace

void report_node(const node_snapshot& snap, metrics::collector_sink& out) {
  constexpr std::string_view up_help
    = "Whether a part of the node answered for this exposition.";
  auto up = [&](std::string_view part, bool ok) {
    std::array<label, 1> l{label{"part", std::string{part}}};
    out.gauge("mycorrizal_scrape_part_up", up_help, l, ok ? 1 : 0);
  };
  up("membership", snap.members && snap.membership && snap.health_score);
  up("transport", snap.transport && snap.connections);
  up("peers", snap.peers.has_value());
  up("router", snap.apps.has_value());
  if (snap.has_cache) {
    up("cache", snap.buckets.has_value());
  }
  report_membership(snap, out);
  report_transport(snap, out);
  report_peers(snap, out);
  report_apps(snap, out);
  report_cache(snap, out);
}

} // namespace mycorrizal
