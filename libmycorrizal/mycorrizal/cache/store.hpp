// SPDX-License-Identifier: Apache-2.0
// One bucket's entries on one node: LRU by count and bytes, absolute TTL,
// last-writer-wins by version, tombstones for deletes.
#pragma once

#include "mycorrizal/cache/version.hpp"
#include "mycorrizal/expected.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mycorrizal::cache {

/// Bytes of a value.
using bytes = std::vector<std::byte>;

/// Times are wall-clock Unix milliseconds, passed in by the caller: an
/// entry's expiry travels with it to other nodes, so it must mean the same
/// instant everywhere (clock skew shortens or lengthens a TTL by the skew;
/// docs/cache.md).
inline constexpr int64_t no_expiry = 0;

/// The documented limits of a key, a value, and the two together: a record
/// travels whole in one message (replication, hand-off, repair) of at most
/// 16 MiB - 64 bytes, with at most ~320 bytes of its own (a 253-byte bucket
/// name, the version, expiry and lengths).
inline constexpr size_t max_key_size = size_t{64} * 1024;
inline constexpr size_t max_value_size = (size_t{16} << 20) - 1024;
inline constexpr size_t max_record_size = (size_t{16} << 20) - 512;

/// Settings of one bucket's store.
struct store_config {
  /// Live entries this node keeps at most (0: no limit); the least
  /// recently used go first.
  size_t max_entries = 0;
  /// Bytes this node keeps at most (0: no limit), counted as key bytes +
  /// value bytes + `entry_overhead` per entry.
  size_t max_bytes = 0;
  /// How long a tombstone (a delete) is kept, so that an older write that
  /// arrives late cannot bring the key back. Longer than any hand-off or
  /// repair round may take.
  int64_t tombstone_ms = int64_t{10} * 60 * 1000;
  /// The bucket's partition count (`partition_of`): the store keeps a
  /// digest per partition and hands records out by partition.
  uint32_t partitions = 1;

  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

/// What one entry costs beyond its key and value bytes: the hash table
/// node, its bucket slot, the LRU list node and their allocator headers.
/// `store_bench` measures it against the allocator's own count.
size_t entry_overhead() noexcept;

/// A live entry.
struct entry_view {
  std::string_view key;
  std::span<const std::byte> value;
  version ver;
  int64_t expires_ms = no_expiry;
};

/// A key that left the store without a delete from a client: evicted
/// (LRU) or expired. On the primary these become deletes for the replicas.
struct removed {
  enum class why : uint8_t { evicted, expired };
  std::string key;
  version ver;
  why reason = why::evicted;
};

/// A record of any kind: a live value or a tombstone, as hand-off and
/// repair send it.
struct record_view {
  std::string_view key;
  std::span<const std::byte> value;
  version ver;
  int64_t expires_ms = no_expiry;
  bool tombstone = false;
  uint32_t partition = 0;
};

/// A partition's digest: the sum of `record_hash` over its records (live
/// values and tombstones) and their count. Two owners holding the same
/// records have the same digest, whatever order the writes came in.
struct partition_digest {
  uint64_t digest = 0;
  uint64_t count = 0;

  friend bool operator==(const partition_digest&, const partition_digest&)
    = default;
};

/// A record's contribution to its partition's digest.
uint64_t record_hash(std::string_view key, const version& v,
                     bool tombstone) noexcept;

/// What a write did.
enum class apply_result : uint8_t {
  /// Stored (the key was absent, older, or a tombstone older than it).
  applied,
  /// Not stored: the key holds this version or a newer one (value or
  /// tombstone). Last writer wins.
  stale,
};

/// Counters of one store.
struct store_stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t expirations = 0;
  uint64_t stale_writes = 0;
  uint64_t tombstones_collected = 0;
};

/// One bucket's entries on one node. Not thread-safe: one actor owns it.
class store {
public:
  explicit store(store_config cfg);

  store(const store&) = delete;
  store& operator=(const store&) = delete;
  // Moves keep the views of the LRU list and the indices valid: the map's
  // nodes, holding the keys, move along.
  store(store&&) noexcept = default;
  store& operator=(store&&) noexcept = default;
  ~store() = default;

  // -- reads ------------------------------------------------------------------

  /// The live entry of `key` (counted as a hit, made most recently used),
  /// or nothing (a miss): absent, deleted, or expired at `now_ms` (then
  /// removed on the way).
  std::optional<entry_view> get(std::string_view key, int64_t now_ms);

  /// Like `get`, without counting or touching the LRU order, and without
  /// removing an expired entry.
  std::optional<entry_view> peek(std::string_view key, int64_t now_ms) const;

  /// The version `key` holds: its value's, its tombstone's, or empty.
  version version_of(std::string_view key) const;

  /// The record of `key` as held: a value (also an expired one not yet
  /// removed) or a tombstone; nothing when the key is unknown.
  std::optional<record_view> lookup(std::string_view key) const;

  // -- writes (last writer wins) ----------------------------------------------

  /// Stores `value` under `key` with version `v`, expiring at `expires_ms`
  /// (`no_expiry`: never), unless the key holds `v` or newer. Entries
  /// evicted to make room are appended to `out`.
  /// @returns `errc::too_large` for a key or value above the limits, or an
  ///   entry that alone exceeds `max_bytes` (nothing else is evicted then).
  expected<apply_result> put(std::string_view key, bytes value, version v,
                             int64_t expires_ms, int64_t now_ms,
                             std::vector<removed>& out);

  /// Deletes `key` as of version `v`: leaves a tombstone (kept for
  /// `tombstone_ms`) unless the key holds `v` or newer.
  apply_result erase(std::string_view key, version v, int64_t now_ms);

  /// Removes `key` without a tombstone if it holds `v` or older: the
  /// primary evicted or expired it, and a replica follows. Returns whether
  /// something was removed.
  bool drop_if_not_newer(std::string_view key, version v);

  /// Sets a live entry's expiry (`no_expiry`: persist) as version `v`.
  /// Returns false when the key is not live at `now_ms`; `stale` semantics
  /// as `put` otherwise (the new version must be newer).
  std::optional<apply_result> set_expiry(std::string_view key,
                                         int64_t expires_ms, version v,
                                         int64_t now_ms);

  // -- time -------------------------------------------------------------------

  /// Removes entries expired at `now_ms` (at most `budget`; appended to
  /// `out`) and tombstones older than the horizon. Active expiry: what no
  /// read touches still leaves memory on time.
  void on_time(int64_t now_ms, size_t budget, std::vector<removed>& out);

  /// When `on_time` has work next (an expiry or a tombstone to collect),
  /// or `no_expiry`.
  int64_t next_deadline_ms() const;

  // -- partitions -------------------------------------------------------------

  /// The digest of `partition` (records not yet collected count, also
  /// expired ones; `on_time` removes those on every owner alike).
  partition_digest digest(uint32_t partition) const {
    return partition < parts_.size() ? parts_[partition] : partition_digest{};
  }

  /// Calls `f(record_view)` for every record (live or tombstone) of the
  /// partitions for which `want(partition)` is true, in no particular
  /// order, without touching the LRU order.
  template <class Pred, class F>
  void for_each_record(Pred&& want, F&& f) const {
    for (const auto& [key, r] : map_) {
      if (want(r.partition)) {
        f(record_view{key, r.value, r.ver, r.expires_ms, r.tombstone,
                      r.partition});
      }
    }
  }

  /// Removes every record (no tombstones left behind) of the partitions
  /// for which `drop(partition)` is true: this node no longer owns them.
  /// @returns the number of records removed.
  template <class Pred>
  size_t drop_partitions(Pred&& drop) {
    size_t n = 0;
    for (auto i = map_.begin(); i != map_.end();) {
      auto next = std::next(i);
      if (drop(i->second.partition)) {
        remove(i);
        ++n;
      }
      i = next;
    }
    return n;
  }

  // -- introspection ----------------------------------------------------------

  /// Live entries (tombstones excluded).
  size_t size() const noexcept {
    return lru_.size();
  }

  /// Tombstones kept.
  size_t tombstones() const noexcept {
    return tombstones_.size();
  }

  /// Bytes accounted to live entries.
  size_t bytes_used() const noexcept {
    return bytes_;
  }

  const store_stats& stats() const noexcept {
    return stats_;
  }

  const store_config& config() const noexcept {
    return cfg_;
  }

  /// Calls `f(entry_view)` for every live entry at `now_ms` (in no
  /// particular order), without touching the LRU order.
  template <class F>
  void for_each(int64_t now_ms, F&& f) const {
    for (const auto& [key, e] : map_) {
      if (!e.tombstone && !expired(e, now_ms)) {
        f(entry_view{key, e.value, e.ver, e.expires_ms});
      }
    }
  }

private:
  /// Lets `find` take a `std::string_view` without building a string.
  struct key_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  /// Keys (views of the map's own keys), most recently used first.
  using lru_list = std::list<std::string_view>;

  struct record {
    bytes value;
    version ver;
    int64_t expires_ms = no_expiry;
    /// A delete: `value` is empty, the record is not in the LRU list; it
    /// goes at `collect_ms`.
    bool tombstone = false;
    uint32_t partition = 0;
    int64_t collect_ms = 0;
    /// Its place in the LRU list (live records only).
    lru_list::iterator lru;
  };

  using map_type
    = std::unordered_map<std::string, record, key_hash, std::equal_to<>>;

  static bool expired(const record& r, int64_t now_ms) noexcept {
    return r.expires_ms != no_expiry && r.expires_ms <= now_ms;
  }

  static size_t cost(std::string_view key, size_t value_size) noexcept;

  /// Drops a live record entirely (no tombstone).
  void drop(map_type::iterator i);

  /// Removes any record (live or tombstone) without a trace.
  void remove(map_type::iterator i);

  /// Adds (`sign` +1) or takes away (-1) a record's share of its
  /// partition's digest.
  void account(map_type::const_iterator i, int sign) noexcept;
  /// As above, with `hash64(key, ver.node)` of the entry already computed.
  void account(map_type::const_iterator i, int sign,
               uint64_t node_key_hash) noexcept;

  /// Turns a live record into a tombstone (or stores a new one).
  void make_tombstone(map_type::iterator i, version v, int64_t now_ms);

  void index_expiry(map_type::iterator i);
  void unindex_expiry(map_type::iterator i);

  store_config cfg_;
  map_type map_;
  lru_list lru_;
  /// (expires_ms, key) of live entries with a TTL.
  std::set<std::pair<int64_t, std::string_view>> expiry_;
  /// (collect_ms, key) of tombstones.
  std::set<std::pair<int64_t, std::string_view>> tombstones_;
  size_t bytes_ = 0;
  store_stats stats_;
  std::vector<partition_digest> parts_;
};

} // namespace mycorrizal::cache
