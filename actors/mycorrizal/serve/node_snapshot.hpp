// SPDX-License-Identifier: Apache-2.0
// What a node's actors report about themselves at one moment.
#pragma once

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/mycel/cache.hpp"
#include "mycorrizal/transport/transport.hpp"

#include <optional>
#include <string>
#include <vector>

namespace mycorrizal {

/// What the node's actors answered when asked (`node::snapshot`), for the
/// metrics and the status page; an empty field: that actor did not answer
/// in time.
struct node_snapshot {
  std::optional<std::vector<gossip::member>> members;
  std::optional<int> health_score;
  std::optional<membership_counters> membership;
  std::optional<transport_stats> transport;
  std::optional<std::vector<connection_info>> connections;
  std::optional<peers_stats> peers;
  std::optional<std::vector<app_stats>> apps;
  /// Buckets (nothing when the node runs no cache: `has_cache` false).
  bool has_cache = false;
  std::optional<std::vector<bucket_stats>> buckets;
  std::optional<std::vector<bucket_info>> bucket_infos;
  /// The storage members partitions are placed on.
  std::optional<std::vector<std::string>> cache_members;
  /// Peers and the applications they announced.
  std::optional<std::vector<peer_info>> peer_list;
};

} // namespace mycorrizal
