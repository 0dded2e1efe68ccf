// SPDX-License-Identifier: Apache-2.0
// Hand-off and repair planning: what a node sends where when the owners of
// partitions change, and what two owners exchange to repair a partition.
#pragma once

#include "mycorrizal/cache/codec.hpp"
#include "mycorrizal/cache/placement.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::cache {

/// One partition to copy to one node.
struct transfer_task {
  uint32_t partition = 0;
  std::string to;

  friend bool operator==(const transfer_task&, const transfer_task&) = default;
};

/// What one node does when a bucket's placement changes from `before` to
/// `after` (the same bucket and partition count).
///
/// For each partition whose owners changed, every new owner that was no
/// owner before (it lacks the data) gets one copy: from an old owner that
/// loses the partition and is still a member (a joiner takes over from the
/// owner it displaces; a leaving node drains to its successor), else from
/// the first surviving old owner (after a crash). An old owner that loses
/// the partition drops its copy only once its own copies have been
/// acknowledged, so that every write acknowledged before the change stays
/// on RF nodes throughout.
struct handoff_plan {
  /// Copies this node sends, by partition.
  std::vector<transfer_task> send;
  /// Partitions this node loses: drop each once its sends (if any) are done.
  std::vector<uint32_t> drop;
  /// Partitions this node gains, with a source to copy them from.
  std::vector<uint32_t> receive;
  /// Partitions this node gains that no surviving old owner holds (every
  /// old owner is gone): their data is lost, counted, never waited for.
  /// Not in a first view (`before` without members): nothing was held.
  std::vector<uint32_t> orphaned;

  bool empty() const noexcept {
    return send.empty() && drop.empty() && receive.empty() && orphaned.empty();
  }
};

/// The plan of `self`. `before` holds the members of the old view (dead
/// ones included: they were owners); a member of `before` missing from
/// `after` counts as gone, except `leaving` (a member that drains before it
/// goes: it still sends).
handoff_plan plan_handoff(const placement& before, const placement& after,
                          std::string_view self, std::string_view leaving = {});

/// What one owner does after comparing a partition's keys and versions
/// with another owner's (`proto::versions`).
struct repair_plan {
  /// Keys to send: the other owner lacks them or holds an older version.
  std::vector<std::string> send;
  /// Keys to ask for: the other owner holds a newer version.
  std::vector<std::string> want;
};

/// Compares `mine` with `theirs` (each a partition's keys with versions;
/// any order, each key at most once).
repair_plan plan_repair(std::vector<proto::key_version> mine,
                        std::vector<proto::key_version> theirs);

} // namespace mycorrizal::cache
