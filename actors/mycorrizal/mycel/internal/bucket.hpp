// SPDX-License-Identifier: Apache-2.0
// The bucket actor: one bucket on one node (not installed; the cache actor
// spawns it).
#pragma once

#include "mycorrizal/mycel/cache.hpp"

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <string>
#include <vector>

namespace mycorrizal::detail {

/// One bucket on one node: owns a `cache::bucket_core`, runs operations
/// as the primary (replicating to the other owners), forwards them to the
/// primary otherwise, serves its peers on its three streams, hands
/// partitions off when the view changes, expires entries and runs
/// anti-entropy.
using bucket_actor = caf::typed_actor<
  caf::replies_to<cache_op>::with<cache::proto::op_reply>,
  caf::replies_to<cache_op_batch>::with<cache_op_batch_reply>,
  caf::replies_to<scan_atom, uint32_t,
                  uint32_t>::with<cache::proto::scan_reply>,
  /// Peers' messages on `o:`, `r:` and `h:` of the bucket.
  caf::replies_to<app_request>::with<raw_bytes>,
  /// The storage members now, and a member that drains before it goes.
  caf::reacts_to<view_atom, std::vector<std::string>, std::string>,
  caf::replies_to<stats_atom>::with<bucket_stats>,
  /// The owners of a key in our view, primary first.
  caf::replies_to<owners_atom, std::string>::with<std::vector<std::string>>,
  /// After a view without us: answers once every copy we hold went to its
  /// new owners, with the partitions whose hand-off failed (0: all went).
  caf::replies_to<drain_atom>::with<uint64_t>,
  /// The bucket was dropped: a write it applied and waits to replicate
  /// is answered as done at once (it took effect before the drop), one it
  /// forwarded gets its primary's answer, and every request that reaches
  /// it from now on ends with `unknown_bucket`, until the cache actor ends
  /// it (after `op_timeout`, so that what peers sent before they heard of
  /// the drop gets that answer too rather than a closed stream).
  caf::reacts_to<drop_bucket_atom>,
  /// The bucket's definition changed to one with the same options (a
  /// create that won over ours): its messages to peers go on the streams
  /// of this tag (`stream_tag`) from now on.
  caf::reacts_to<retag_atom, std::string>>;

struct bucket_actor_options {
  /// Our node name.
  std::string self;
  std::string name;
  /// The names of its streams (`stream_tag`).
  std::string tag;
  bucket_options options;
  cache_options cache;
  router_actor router;
  /// Whether we store partitions (else we only forward).
  bool storage = true;
};

bucket_actor spawn_bucket(caf::actor_system& sys, bucket_actor_options opts);

/// What names one incarnation of a bucket (its definition, by version)
/// in its stream names: the bucket's name (a hash of it where it is long:
/// stream names have 255 bytes), `#`, and a hash of the version. A bucket
/// dropped and created again (FLUSHDB) talks on other streams than the one
/// before it, so that nothing a peer's old bucket sends (an operation, a
/// replication, a hand-off) reaches the new one.
std::string stream_tag(const std::string& bucket, const cache::version& ver);

/// The names of a bucket's streams, by `stream_tag`.
inline std::string ops_stream(const std::string& tag) {
  return "o:" + tag;
}
inline std::string replication_stream(const std::string& tag) {
  return "r:" + tag;
}
inline std::string handoff_stream(const std::string& tag) {
  return "h:" + tag;
}

} // namespace mycorrizal::detail
