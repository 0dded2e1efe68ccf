// SPDX-License-Identifier: Apache-2.0
// Mycel, the replicated cache: the per-node `cache` actor and what actor
// code sends it (docs/cache.md).
#pragma once

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/cache/codec.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/metrics/registry.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

/// A node runs one `cache` actor. It registers the application `mycel`
/// with the router, keeps the cluster-wide registry of buckets, follows the
/// membership to know the storage members (those whose gossip metadata
/// carries `gossip::cache_storage`), and runs one `bucket` actor per
/// bucket. Each bucket talks to its peers on three named streams of
/// `mycel`: `o:<bucket>` (operations forwarded to a primary), `r:<bucket>`
/// (replication, never waits, so an operation waiting for its replicas
/// cannot block the acknowledgements it waits for) and `h:<bucket>`
/// (hand-off and repair, so a rebalancing bucket never delays reads).
namespace mycorrizal {

using bucket_options = cache::proto::bucket_options;

/// Settings of a node's cache.
struct cache_options {
  /// Store partitions (false: a client only, like Hazelcast's lite
  /// members; it still creates buckets and runs operations).
  bool storage = true;
  /// How long one attempt of a remote operation waits.
  caf::timespan op_timeout = std::chrono::seconds{5};
  /// How often a primary compares digests with the other owners.
  caf::timespan anti_entropy_interval = std::chrono::seconds{30};
  /// Bytes of records per hand-off message.
  size_t handoff_batch_bytes = size_t{256} * 1024;
  /// Attempts of one hand-off before it is abandoned (counted).
  int handoff_attempts = 5;
  /// How long a delete's tombstone is kept.
  caf::timespan tombstone_lifetime = std::chrono::minutes{10};
  /// Entries one active-expiry step removes at most.
  size_t expiry_budget = 500;
  /// How long a graceful stop waits for this node's copies to reach their
  /// new owners before it leaves (`node::stop`).
  caf::timespan drain_timeout = std::chrono::seconds{30};

  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

/// A bucket in the registry.
struct bucket_info {
  std::string name;
  bucket_options options;
};

/// Counters of one bucket on one node.
struct bucket_stats {
  std::string name;
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t tombstones = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t expirations = 0;
  /// Partitions this node owns, and of those it is the primary of.
  uint64_t partitions_owned = 0;
  uint64_t partitions_primary = 0;
  uint64_t handoffs_sent = 0;
  uint64_t handoffs_received = 0;
  /// Hand-offs given up after `handoff_attempts` (or whose target left).
  uint64_t handoffs_abandoned = 0;
  /// Partitions gained with no old owner left to copy them from.
  uint64_t partitions_orphaned = 0;
  /// Records repaired by anti-entropy (sent and received).
  uint64_t repairs = 0;
  /// Cache messages from peers that did not decode (dropped).
  uint64_t malformed = 0;
  /// Encoded bytes of hand-off batches sent (and acknowledged), and of
  /// those received for partitions this node owns.
  uint64_t handoff_bytes_sent = 0;
  uint64_t handoff_bytes_received = 0;
  /// Operations this node sent to their owners, and the requests that
  /// carried them (a round's operations for one owner travel in one).
  uint64_t ops_forwarded = 0;
  uint64_t forward_requests = 0;
  /// Records this node sent to other owners as replication (writes, drops
  /// of evicted keys), and the requests that carried them.
  uint64_t records_replicated = 0;
  uint64_t replication_requests = 0;
  /// Seconds from a local caller's operation to its answer (its result or
  /// its error), over `latency_bounds()`, by operation; only operations
  /// that ran at least once.
  std::vector<std::pair<cache::proto::op_code, metrics::histogram::snapshot>>
    op_latency;

  /// The upper bounds (seconds) of `op_latency`'s buckets.
  static std::span<const double> latency_bounds();
};

/// One operation on one bucket, as actor code sends it to the `cache`
/// actor (or to a bucket handle); the answer is a `cache::proto::op_reply`
/// (see `cache::bucket_core::execute` for what its fields mean), or an
/// error: `unknown_bucket`, `no_owner`, `timeout`, `node_down`,
/// `connection_lost`, `too_large`, `wrong_type`, `version_mismatch`,
/// `shutting_down`.
struct cache_op {
  std::string bucket;
  cache::proto::op_request op;
};

/// Operations on one bucket in one message, for a bucket handle: a client
/// that has several at once (a pipeline, MGET) pays for one message and one
/// answer instead of one each. They run in order, each as its `cache_op`
/// would; `ops[i].bucket` is ignored.
struct cache_op_batch {
  /// Shared, not copied: the sender keeps them for a retry after an
  /// error, the bucket reads them where they are. Null: none.
  std::shared_ptr<const std::vector<cache::proto::op_request>> ops;
  /// The bucket, for the `cache` actor (a handle ignores it).
  std::string bucket;
  /// Room for the answers: an empty vector whose capacity the reply's
  /// `replies` takes over (a caller passes back what an earlier reply
  /// brought; a round of 16 answers is a large allocation for glibc, which
  /// consolidates its fast bins before each).
  std::vector<cache::proto::op_reply> room;
};

/// One reply per operation of a `cache_op_batch`, in order; an operation
/// that failed has its error in `status` and `message` (errors a
/// `cache_op` would get as its error).
struct cache_op_batch_reply {
  std::vector<cache::proto::op_reply> replies;
};

/// A bucket as actor code holds it (`bucket_atom` to the `cache` actor,
/// or `node::bucket`): the bucket's own actor on this node, so that an
/// operation skips the `cache` actor's registry lookup. It runs each
/// operation where it belongs (here if this node is the key's primary,
/// else at its owners) and answers as the `cache` actor does; `bucket` of
/// a `cache_op` sent to it is ignored. When the bucket is dropped, the
/// operations it had taken end as they took effect (a write it applied as
/// done, one at another owner with that owner's answer), every request
/// after at once with `errc::unknown_bucket`; the handle ends, with a down
/// message to its
/// monitors, `op_timeout` after the drop (or when the node stops: then
/// operations it had taken end with `unknown_bucket`). Requests to an
/// ended handle fail at once with `caf::sec::request_receiver_down`.
using bucket_handle = caf::typed_actor<
  caf::replies_to<cache_op>::with<cache::proto::op_reply>,
  caf::replies_to<cache_op_batch>::with<cache_op_batch_reply>,
  /// The keys of partitions [cursor, cursor + count), and the next cursor
  /// (the partition count when done).
  caf::replies_to<scan_atom, uint32_t,
                  uint32_t>::with<cache::proto::scan_reply>,
  caf::replies_to<stats_atom>::with<bucket_stats>,
  /// The owners of a key in this node's view, primary first.
  caf::replies_to<owners_atom, std::string>::with<std::vector<std::string>>>;

/// The `cache` actor.
using cache_actor = caf::typed_actor<
  /// Creates a bucket cluster-wide: true if created, false if it existed
  /// with the same options; `bucket_exists` if with others.
  caf::replies_to<create_bucket_atom, std::string, bucket_options>::with<bool>,
  /// Drops a bucket cluster-wide: whether it existed.
  caf::replies_to<drop_bucket_atom, std::string>::with<bool>,
  caf::replies_to<list_buckets_atom>::with<std::vector<bucket_info>>,
  caf::replies_to<cache_op>::with<cache::proto::op_reply>,
  /// Operations on the bucket `bucket` as its handle takes them: all of
  /// them fail with `unknown_bucket` if there is none (none runs), else
  /// the bucket runs them all.
  caf::replies_to<cache_op_batch>::with<cache_op_batch_reply>,
  /// The bucket's handle; `unknown_bucket` if there is none.
  caf::replies_to<bucket_atom, std::string>::with<bucket_handle>,
  /// Scans a bucket: the keys of partitions [cursor, next), and next (the
  /// partition count when done).
  caf::replies_to<scan_atom, std::string, uint32_t,
                  uint32_t>::with<cache::proto::scan_reply>,
  caf::replies_to<stats_atom>::with<std::vector<bucket_stats>>,
  /// The storage members this node places partitions on, sorted. Nodes
  /// whose lists differ (a change still spreading) may each act as a
  /// partition's primary: incr and cas are atomic only at one primary.
  caf::replies_to<members_atom>::with<std::vector<std::string>>,
  /// The owners of a key of a bucket in this node's view, primary first.
  caf::replies_to<owners_atom, std::string,
                  std::string>::with<std::vector<std::string>>,
  /// Stops storing: places every partition on the other storage members,
  /// hands this node's copies to their new owners, and answers once they
  /// took them, with the number of partitions whose hand-off failed (0:
  /// all went). Announcing the change (the gossip roles) and leaving
  /// afterwards are the caller's part (`node::stop` does both).
  caf::replies_to<drain_atom>::with<uint64_t>,
  /// From the membership subscription.
  caf::reacts_to<gossip::member_event>,
  /// The registry from peers (default stream of `mycel`).
  caf::replies_to<app_request>::with<raw_bytes>, caf::reacts_to<app_message>>;

/// What the cache actor needs.
struct cache_actor_options {
  /// Our node name.
  std::string name;
  cache_options options;
  membership_actor membership;
  router_actor router;
};

/// Spawns the cache actor: it subscribes to the membership and registers
/// `mycel` with the router.
/// @returns `errc::invalid_config` for bad options.
expected<cache_actor> spawn_cache(caf::actor_system& sys,
                                  cache_actor_options opts);

} // namespace mycorrizal
