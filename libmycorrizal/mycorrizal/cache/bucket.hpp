// SPDX-License-Identifier: Apache-2.0
// One bucket on one node, without actors or sockets: the operations'
// semantics at the primary, replicas applying records, the placement view
// and what it means for hand-off, digests and repair. The bucket actor
// (actors/mycorrizal/mycel) owns one and does the I/O.
#pragma once

#include "mycorrizal/cache/codec.hpp"
#include "mycorrizal/cache/placement.hpp"
#include "mycorrizal/cache/plan.hpp"
#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/cache/version.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::cache {

/// A record for the other owners of its partition.
struct replication {
  uint32_t partition = 0;
  /// The owners to send it to (never ourselves).
  std::vector<std::string> to;
  proto::record rec;
};

/// What an operation did.
struct op_result {
  proto::op_reply reply;
  /// Records for the other owners: the write itself, and drops of what the
  /// write evicted (in partitions we are the primary of). None for a
  /// partition without other owners (one storage member, RF 1).
  std::vector<replication> out;
};

/// Counters beyond the store's.
struct bucket_counters {
  uint64_t writes = 0;
  uint64_t records_applied = 0;
  uint64_t records_stale = 0;
  uint64_t partitions_dropped = 0;
};

class bucket_core {
public:
  /// `self`: this node's name (its versions carry `node_id(self)`).
  /// `opts` must be valid (`proto::validate`).
  bucket_core(std::string self, std::string name,
              const proto::bucket_options& opts,
              int64_t tombstone_ms = int64_t{10} * 60 * 1000);

  const std::string& name() const noexcept {
    return name_;
  }

  const proto::bucket_options& options() const noexcept {
    return opts_;
  }

  // -- placement --------------------------------------------------------------

  /// Takes the storage members now (ourselves included when we store);
  /// `leaving` is a member that drains before it goes (it may be us).
  /// @returns our hand-off plan from the previous view to this one.
  handoff_plan set_members(std::vector<std::string> members,
                           std::string_view leaving = {});

  const placement& view() const noexcept {
    return view_;
  }

  uint32_t partition_of(std::string_view key) const noexcept;

  /// The owners of `partition`, primary first (empty: no storage member).
  const std::vector<std::string>& owners_of(uint32_t partition) const {
    return view_.owners_of(partition);
  }

  bool owns(uint32_t partition) const;
  bool is_primary(uint32_t partition) const;

  // -- operations -------------------------------------------------------------

  /// Runs `op` here. Writes (put, del, expire, incr, cas) must run at the
  /// partition's primary (the caller checks `is_primary`): they get a new
  /// version and come back as records for the other owners. Reads (get,
  /// ttl) may run at any owner.
  ///
  /// Replies: `found` and `value`/`ver`/`expires_ms` of the key (get, ttl)
  /// or of its previous value (put with `return_previous`); `number` is 1
  /// when a put, del, expire or cas changed the key and 0 when its
  /// condition did not hold (only_if_absent, only_if_present, an absent
  /// key), and the new value of incr. Errors: `too_large`, `wrong_type`
  /// (incr of a value that is no decimal 64-bit integer, or an overflow),
  /// `version_mismatch` (cas; `ver` is the version the key holds).
  op_result execute(const proto::op_request& op, int64_t now_ms);

  /// `execute` for a caller that already knows the key's partition
  /// (`partition_of(op.key)`): the key is hashed once per operation.
  op_result execute(const proto::op_request& op, int64_t now_ms,
                    uint32_t partition);

  // -- records from other owners ----------------------------------------------

  /// What applying records did.
  struct applied {
    /// Records that changed something here (the others were stale).
    size_t changed = 0;
    /// Drops of what they evicted in partitions we are the primary of.
    std::vector<replication> out;
  };

  /// Applies records (replication, hand-off, repair): last writer wins,
  /// tombstones, drops. Takes their versions into our clock.
  applied apply(const std::vector<proto::record>& records, int64_t now_ms);

  // -- time -------------------------------------------------------------------

  /// Active expiry (at most `budget` entries). Expiries in partitions we are
  /// the primary of come back as drops for the other owners.
  std::vector<replication> on_time(int64_t now_ms, size_t budget);

  /// When `on_time` has work next, or `no_expiry`.
  int64_t next_deadline_ms() const {
    return store_.next_deadline_ms();
  }

  // -- hand-off and repair ----------------------------------------------------

  /// Every record of `partition`, in batches of about `batch_bytes` (the
  /// last batch has `last` set; an empty partition is one empty last
  /// batch).
  std::vector<proto::entries> export_partition(uint32_t partition,
                                               proto::transfer why,
                                               size_t batch_bytes) const;

  /// `export_partition` of each of `partitions` in one pass over the
  /// store (a pass per partition costs the whole store each time: 20 s to
  /// re-replicate a fifth of 1M entries).
  std::map<uint32_t, std::vector<proto::entries>>
  export_partitions(const std::vector<uint32_t>& partitions,
                    proto::transfer why, size_t batch_bytes) const;

  /// Forgets `partition` (we no longer own it).
  size_t drop_partition(uint32_t partition);
  /// Forgets `partitions` in one pass over the store.
  size_t drop_partitions(const std::vector<uint32_t>& partitions);

  /// Our digests of `partitions`.
  proto::digests digests(const std::vector<uint32_t>& partitions) const;

  /// Every key of `partition` with its version.
  proto::versions versions_of(uint32_t partition) const;

  /// Answers another owner's `versions`: the records it lacks or holds
  /// older, and the keys we want from it.
  proto::versions_reply answer(const proto::versions& theirs) const;

  /// Our records of `keys` (those we hold, as values or tombstones).
  std::vector<proto::record>
  records_of(const std::vector<std::string>& keys) const;

  // -- introspection ----------------------------------------------------------

  const store& data() const noexcept {
    return store_;
  }

  const bucket_counters& counters() const noexcept {
    return counters_;
  }

  /// Scan: up to about `count` live keys from partition `from` on (whole
  /// partitions), and the partition to continue from.
  proto::scan_reply scan(uint32_t from, uint32_t count, int64_t now_ms) const;

private:
  /// The other owners of `partition`.
  std::vector<std::string> others(uint32_t partition) const;
  /// Adds the record `make()` builds for the other owners of `partition`
  /// to `out`; without other owners builds nothing (no copies of the key
  /// and value to throw away).
  template <class Make>
  void replicate(std::vector<replication>& out, uint32_t partition,
                 Make&& make) const;

  /// Adds drops of evicted keys (in our primary partitions) to `out`.
  void evictions(std::vector<removed>& gone, std::vector<replication>& out);

  op_result put(const proto::op_request& op, int64_t now_ms, uint32_t p);
  op_result incr(const proto::op_request& op, int64_t now_ms, uint32_t p);

  std::string self_;
  std::string name_;
  proto::bucket_options opts_;
  hybrid_clock clock_;
  store store_;
  placement view_;
  bucket_counters counters_;
};

} // namespace mycorrizal::cache
