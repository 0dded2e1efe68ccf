// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cache/store.hpp"

#include "mycorrizal/cache/hash.hpp"
#include "mycorrizal/cache/placement.hpp"
#include "mycorrizal/config_check.hpp"
#include "mycorrizal/errc.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace mycorrizal::cache {

namespace {

/// Bytes a heap allocation of `n` bytes takes from glibc malloc: 8 bytes
/// of header, rounded up to 16, at least 32.
constexpr size_t malloc_size(size_t n) noexcept {
  auto total = (n + 8 + 15) & ~size_t{15};
  return total < 32 ? 32 : total;
}

error too_large(std::string what) {
  return error{errc::too_large, std::move(what)};
}

} // namespace

expected<void> store_config::validate() const {
  config_check check{"cache.store"};
  check.require("tombstone_ms", tombstone_ms > 0, "must be positive");
  check.require("partitions", partitions >= 1 && partitions <= 65536,
                "must be in [1, 65536]");
  return std::move(check).result();
}

size_t entry_overhead() noexcept {
  // unordered_map node: next pointer, the pair, the cached hash; one
  // bucket slot per node at load factor 1; the LRU list node (two links
  // and the iterator).
  constexpr size_t map_node
    = sizeof(void*) + sizeof(std::string) + sizeof(bytes) + sizeof(version)
      + sizeof(int64_t) * 2 + sizeof(bool) + sizeof(void*) + sizeof(size_t);
  constexpr size_t list_node = 3 * sizeof(void*);
  return malloc_size(map_node) + sizeof(void*) + malloc_size(list_node);
}

size_t store::cost(std::string_view key, size_t value_size) noexcept {
  return key.size() + value_size + entry_overhead();
}

namespace {

/// `record_hash` from `hash64(key, v.node)`, which a write that replaces
/// a version of the same node computes once for both.
uint64_t record_hash_of(uint64_t key_hash, const version& v,
                        bool tombstone) noexcept {
  auto h = key_hash;
  h ^= mix64(static_cast<uint64_t>(v.wall_ms) * 0x9e3779b97f4a7c15ULL
             + v.counter);
  return tombstone ? mix64(h ^ 0x5bd1e9955bd1e995ULL) : h;
}

} // namespace

uint64_t record_hash(std::string_view key, const version& v,
                     bool tombstone) noexcept {
  return record_hash_of(hash64(key, v.node), v, tombstone);
}

store::store(store_config cfg) : cfg_(cfg) {
  parts_.resize(std::max<uint32_t>(cfg_.partitions, 1));
}

void store::account(map_type::const_iterator i, int sign) noexcept {
  account(i, sign, hash64(i->first, i->second.ver.node));
}

void store::account(map_type::const_iterator i, int sign,
                    uint64_t node_key_hash) noexcept {
  auto& p = parts_[i->second.partition];
  auto h = record_hash_of(node_key_hash, i->second.ver, i->second.tombstone);
  if (sign > 0) {
    p.digest += h;
    ++p.count;
  } else {
    p.digest -= h;
    --p.count;
  }
}

std::optional<entry_view> store::get(std::string_view key, int64_t now_ms) {
  auto i = map_.find(key);
  if (i == map_.end() || i->second.tombstone) {
    ++stats_.misses;
    return std::nullopt;
  }
  if (expired(i->second, now_ms)) {
    ++stats_.misses;
    ++stats_.expirations;
    drop(i);
    return std::nullopt;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, i->second.lru);
  const auto& r = i->second;
  return entry_view{i->first, r.value, r.ver, r.expires_ms};
}

std::optional<entry_view> store::peek(std::string_view key,
                                      int64_t now_ms) const {
  auto i = map_.find(key);
  if (i == map_.end() || i->second.tombstone || expired(i->second, now_ms)) {
    return std::nullopt;
  }
  const auto& r = i->second;
  return entry_view{i->first, r.value, r.ver, r.expires_ms};
}

version store::version_of(std::string_view key) const {
  auto i = map_.find(key);
  return i == map_.end() ? version{} : i->second.ver;
}

std::optional<record_view> store::lookup(std::string_view key) const {
  auto i = map_.find(key);
  if (i == map_.end()) {
    return std::nullopt;
  }
  const auto& r = i->second;
  return record_view{i->first,     r.value,     r.ver,
                     r.expires_ms, r.tombstone, r.partition};
}

expected<apply_result> store::put(std::string_view key, bytes value, version v,
                                  int64_t expires_ms, int64_t now_ms,
                                  std::vector<removed>& out) {
  if (key.size() > max_key_size) {
    return unexpected{too_large(fmt::format(
      "a {}-byte key exceeds the {}-byte limit", key.size(), max_key_size))};
  }
  if (value.size() > max_value_size) {
    return unexpected{
      too_large(fmt::format("a {}-byte value exceeds the {}-byte limit",
                            value.size(), max_value_size))};
  }
  if (key.size() + value.size() > max_record_size) {
    // A record travels whole in one message (replication, hand-off,
    // repair): key and value together must fit in it.
    return unexpected{too_large(fmt::format(
      "a {}-byte key and a {}-byte value exceed the {}-byte limit of the two "
      "together",
      key.size(), value.size(), max_record_size))};
  }
  auto need = cost(key, value.size());
  if (cfg_.max_bytes != 0 && need > cfg_.max_bytes) {
    return unexpected{too_large(fmt::format(
      "an entry of {} bytes (key, value and {} bytes of bookkeeping) exceeds "
      "the bucket's {} bytes per node",
      need, entry_overhead(), cfg_.max_bytes))};
  }
  auto i = map_.find(key);
  if (expires_ms != no_expiry && expires_ms <= now_ms) {
    // Expired on arrival (a late replica write, a past absolute expiry):
    // the key is gone as of `v`.
    if (i != map_.end() && !(i->second.ver < v)) {
      ++stats_.stale_writes;
      return apply_result::stale;
    }
    if (i != map_.end()) {
      remove(i);
    }
    return apply_result::applied;
  }
  // hash64(key, node) for the digest, once when the new version and the
  // one it replaces come from the same node (as a primary's writes do).
  uint64_t node_key_hash = 0;
  if (i != map_.end()) {
    auto& r = i->second;
    if (!(r.ver < v)) {
      ++stats_.stale_writes;
      return apply_result::stale;
    }
    node_key_hash = hash64(key, r.ver.node);
    account(i, -1, node_key_hash);
    if (r.ver.node != v.node) {
      node_key_hash = hash64(key, v.node);
    }
    if (r.tombstone) {
      tombstones_.erase({r.collect_ms, i->first});
      r.tombstone = false;
      lru_.push_front(i->first);
      r.lru = lru_.begin();
    } else {
      bytes_ -= cost(key, r.value.size());
      unindex_expiry(i);
      lru_.splice(lru_.begin(), lru_, r.lru);
    }
    r.value = std::move(value);
    r.ver = v;
    r.expires_ms = expires_ms;
  } else {
    i = map_.emplace(std::string{key}, record{}).first;
    auto& r = i->second;
    r.partition = partition_of(key, cfg_.partitions);
    r.value = std::move(value);
    r.ver = v;
    r.expires_ms = expires_ms;
    lru_.push_front(i->first);
    r.lru = lru_.begin();
    node_key_hash = hash64(key, v.node);
  }
  bytes_ += need;
  index_expiry(i);
  account(i, +1, node_key_hash);
  // Make room: least recently used first, never the entry just written
  // (it alone fits, checked above).
  auto over = [&] {
    return (cfg_.max_entries != 0 && lru_.size() > cfg_.max_entries)
           || (cfg_.max_bytes != 0 && bytes_ > cfg_.max_bytes);
  };
  while (over() && lru_.size() > 1) {
    auto victim = map_.find(lru_.back());
    ++stats_.evictions;
    out.push_back(
      removed{victim->first, victim->second.ver, removed::why::evicted});
    drop(victim);
  }
  return apply_result::applied;
}

apply_result store::erase(std::string_view key, version v, int64_t now_ms) {
  auto i = map_.find(key);
  if (i == map_.end()) {
    if (v.empty()) {
      // An empty version deletes nothing.
      ++stats_.stale_writes;
      return apply_result::stale;
    }
    i = map_.emplace(std::string{key}, record{}).first;
    auto& r = i->second;
    r.tombstone = true;
    r.partition = partition_of(key, cfg_.partitions);
    r.ver = v;
    r.collect_ms = now_ms + cfg_.tombstone_ms;
    tombstones_.emplace(r.collect_ms, i->first);
    account(i, +1);
    return apply_result::applied;
  }
  if (!(i->second.ver < v)) {
    ++stats_.stale_writes;
    return apply_result::stale;
  }
  account(i, -1);
  make_tombstone(i, v, now_ms);
  account(i, +1);
  return apply_result::applied;
}

bool store::drop_if_not_newer(std::string_view key, version v) {
  auto i = map_.find(key);
  if (i == map_.end() || v < i->second.ver) {
    return false;
  }
  remove(i);
  return true;
}

std::optional<apply_result> store::set_expiry(std::string_view key,
                                              int64_t expires_ms, version v,
                                              int64_t now_ms) {
  auto i = map_.find(key);
  if (i == map_.end() || i->second.tombstone || expired(i->second, now_ms)) {
    return std::nullopt;
  }
  auto& r = i->second;
  if (!(r.ver < v)) {
    ++stats_.stale_writes;
    return apply_result::stale;
  }
  account(i, -1);
  unindex_expiry(i);
  r.expires_ms = expires_ms;
  r.ver = v;
  index_expiry(i);
  account(i, +1);
  return apply_result::applied;
}

void store::on_time(int64_t now_ms, size_t budget, std::vector<removed>& out) {
  while (budget > 0 && !expiry_.empty() && expiry_.begin()->first <= now_ms) {
    auto i = map_.find(expiry_.begin()->second);
    ++stats_.expirations;
    out.push_back(removed{i->first, i->second.ver, removed::why::expired});
    drop(i);
    --budget;
  }
  while (!tombstones_.empty() && tombstones_.begin()->first <= now_ms) {
    auto i = map_.find(tombstones_.begin()->second);
    tombstones_.erase(tombstones_.begin());
    account(i, -1);
    map_.erase(i);
    ++stats_.tombstones_collected;
  }
}

int64_t store::next_deadline_ms() const {
  int64_t next = no_expiry;
  auto earlier = [&](int64_t t) {
    if (next == no_expiry || t < next) {
      next = t;
    }
  };
  if (!expiry_.empty()) {
    earlier(expiry_.begin()->first);
  }
  if (!tombstones_.empty()) {
    earlier(tombstones_.begin()->first);
  }
  return next;
}

void store::drop(map_type::iterator i) {
  auto& r = i->second;
  account(i, -1);
  unindex_expiry(i);
  bytes_ -= cost(i->first, r.value.size());
  lru_.erase(r.lru);
  map_.erase(i);
}

void store::remove(map_type::iterator i) {
  if (i->second.tombstone) {
    tombstones_.erase({i->second.collect_ms, i->first});
    account(i, -1);
    map_.erase(i);
  } else {
    drop(i);
  }
}

void store::make_tombstone(map_type::iterator i, version v, int64_t now_ms) {
  auto& r = i->second;
  if (r.tombstone) {
    tombstones_.erase({r.collect_ms, i->first});
  } else {
    unindex_expiry(i);
    bytes_ -= cost(i->first, r.value.size());
    lru_.erase(r.lru);
    r.tombstone = true;
    r.value = bytes{};
    r.expires_ms = no_expiry;
  }
  r.ver = v;
  r.collect_ms = now_ms + cfg_.tombstone_ms;
  tombstones_.emplace(r.collect_ms, i->first);
}

void store::index_expiry(map_type::iterator i) {
  if (i->second.expires_ms != no_expiry) {
    expiry_.emplace(i->second.expires_ms, i->first);
  }
}

void store::unindex_expiry(map_type::iterator i) {
  if (i->second.expires_ms != no_expiry) {
    expiry_.erase({i->second.expires_ms, i->first});
  }
}

} // namespace mycorrizal::cache
