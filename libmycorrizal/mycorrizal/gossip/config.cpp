// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/config.hpp"

#include "mycorrizal/config_check.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"

namespace mycorrizal::gossip {

using namespace std::chrono_literals;

membership_config membership_config::lan_defaults() {
  return membership_config{};
}

membership_config membership_config::wan_defaults() {
  auto cfg = lan_defaults();
  cfg.tcp_timeout = 30s;
  cfg.suspicion_mult = 6;
  cfg.push_pull_interval = 60s;
  cfg.probe_timeout = 3s;
  cfg.probe_interval = 5s;
  cfg.gossip_nodes = 4;
  cfg.gossip_interval = 500ms;
  cfg.gossip_to_the_dead_time = 60s;
  return cfg;
}

membership_config membership_config::local_defaults() {
  auto cfg = lan_defaults();
  cfg.tcp_timeout = 1s;
  cfg.indirect_checks = 1;
  cfg.retransmit_mult = 2;
  cfg.suspicion_mult = 3;
  cfg.push_pull_interval = 15s;
  cfg.probe_timeout = 200ms;
  cfg.probe_interval = 1s;
  cfg.gossip_interval = 100ms;
  cfg.gossip_to_the_dead_time = 15s;
  cfg.reconnect_interval = 5s;
  return cfg;
}

expected<membership_config> profile_defaults(std::string_view profile) {
  if (profile == "lan") {
    return membership_config::lan_defaults();
  }
  if (profile == "wan") {
    return membership_config::wan_defaults();
  }
  if (profile == "local") {
    return membership_config::local_defaults();
  }
  return unexpected{error{errc::invalid_config,
                          fmt::format("gossip profile '{}' (expected lan, wan "
                                      "or local)",
                                      profile)}};
}

expected<void> membership_config::validate() const {
  config_check check{"gossip"};
  auto positive = [&check](std::string_view field, duration d) {
    check.require(field, d > duration::zero(), "must be positive");
  };
  check.require("name", !name.empty(), "must not be empty");
  check.require("name", name.size() <= 255, "must be at most 255 bytes");
  check.require("meta", meta.size() <= meta_max_size,
                fmt::format("must be at most {} bytes, got {}", meta_max_size,
                            meta.size()));
  check.in_range("protocol_version", protocol_version, protocol_version_min,
                 protocol_version_max);
  positive("tcp_timeout", tcp_timeout);
  check.in_range("indirect_checks", indirect_checks, 0, 16);
  check.in_range("retransmit_mult", retransmit_mult, 1, 64);
  check.in_range("suspicion_mult", suspicion_mult, 1, 64);
  check.in_range("suspicion_max_timeout_mult", suspicion_max_timeout_mult, 1,
                 64);
  check.require("push_pull_interval", push_pull_interval >= duration::zero(),
                "must not be negative");
  positive("probe_timeout", probe_timeout);
  positive("probe_interval", probe_interval);
  check.require("probe_timeout", probe_timeout <= probe_interval,
                "must not exceed probe_interval");
  check.in_range("awareness_max_multiplier", awareness_max_multiplier, 1, 64);
  check.in_range("gossip_nodes", gossip_nodes, 0, 64);
  positive("gossip_interval", gossip_interval);
  check.require("gossip_to_the_dead_time",
                gossip_to_the_dead_time >= duration::zero(),
                "must not be negative");
  check.in_range("udp_buffer_size", udp_buffer_size, size_t{512},
                 size_t{65507});
  check.require("reconnect_interval", reconnect_interval >= duration::zero(),
                "must not be negative");
  check.require("reconnect_timeout", reconnect_timeout >= duration::zero(),
                "must not be negative");
  check.require("dead_node_reclaim_time",
                dead_node_reclaim_time >= duration::zero(),
                "must not be negative");
  check.require("label", label.size() <= 255, "must be at most 255 bytes");
  return std::move(check).result();
}

} // namespace mycorrizal::gossip
