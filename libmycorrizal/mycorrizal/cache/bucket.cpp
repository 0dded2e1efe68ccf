// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cache/bucket.hpp"

#include "mycorrizal/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace mycorrizal::cache {

namespace {

store_config config_of(const proto::bucket_options& opts,
                       int64_t tombstone_ms) {
  store_config cfg;
  cfg.max_entries = static_cast<size_t>(opts.max_entries);
  cfg.max_bytes = static_cast<size_t>(opts.max_bytes);
  cfg.tombstone_ms = tombstone_ms;
  cfg.partitions = opts.partitions;
  return cfg;
}

proto::record to_record(const record_view& r) {
  proto::record out;
  out.key = std::string{r.key};
  out.ver = r.ver;
  if (r.tombstone) {
    out.kind = proto::record_kind::tombstone;
  } else {
    out.value.assign(r.value.begin(), r.value.end());
    out.expires_ms = r.expires_ms;
  }
  return out;
}

proto::op_reply failure(errc code, std::string what) {
  proto::op_reply r;
  r.status = code;
  r.message = std::move(what);
  return r;
}

/// Redis's rule for INCR (string2ll): the value is a decimal 64-bit
/// integer, written without spaces, a plus sign or leading zeros ("007" and
/// "-0" are no numbers; "0" is).
std::optional<int64_t> parse_integer(std::span<const std::byte> value) {
  std::string_view text{reinterpret_cast<const char*>(value.data()),
                        value.size()};
  if (text.empty() || text.size() > 20) {
    return std::nullopt;
  }
  if (text != "0") {
    size_t first = text[0] == '-' ? 1 : 0;
    if (first == text.size() || text[first] < '1' || text[first] > '9') {
      return std::nullopt;
    }
  }
  int64_t x = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return x;
}

bytes decimal(int64_t x) {
  auto text = std::to_string(x);
  auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

} // namespace

bucket_core::bucket_core(std::string self, std::string name,
                         const proto::bucket_options& opts,
                         int64_t tombstone_ms)
    : self_(std::move(self)), name_(std::move(name)), opts_(opts),
      clock_(node_id(self_)), store_(config_of(opts, tombstone_ms)),
      view_(name_, opts.partitions, opts.rf, {}) {
  // nop
}

// -- placement ----------------------------------------------------------------

handoff_plan bucket_core::set_members(std::vector<std::string> members,
                                      std::string_view leaving) {
  placement next{name_, opts_.partitions, opts_.rf, std::move(members)};
  auto plan = plan_handoff(view_, next, self_, leaving);
  view_ = std::move(next);
  return plan;
}

uint32_t bucket_core::partition_of(std::string_view key) const noexcept {
  return cache::partition_of(key, opts_.partitions);
}

bool bucket_core::owns(uint32_t partition) const {
  const auto& o = view_.owners_of(partition);
  return std::find(o.begin(), o.end(), self_) != o.end();
}

bool bucket_core::is_primary(uint32_t partition) const {
  const auto& o = view_.owners_of(partition);
  return !o.empty() && o.front() == self_;
}

std::vector<std::string> bucket_core::others(uint32_t partition) const {
  std::vector<std::string> out;
  for (const auto& o : view_.owners_of(partition)) {
    if (o != self_) {
      out.push_back(o);
    }
  }
  return out;
}

template <class Make>
void bucket_core::replicate(std::vector<replication>& out, uint32_t partition,
                            Make&& make) const {
  auto to = others(partition);
  if (!to.empty()) {
    out.push_back(replication{partition, std::move(to), make()});
  }
}

void bucket_core::evictions(std::vector<removed>& gone,
                            std::vector<replication>& out) {
  for (auto& g : gone) {
    auto p = partition_of(g.key);
    if (!is_primary(p)) {
      continue; // a replica's own memory pressure stays local
    }
    replicate(out, p, [&] {
      proto::record rec;
      rec.key = std::move(g.key);
      rec.ver = g.ver;
      rec.kind = proto::record_kind::dropped;
      return rec;
    });
  }
  gone.clear();
}

// -- operations ---------------------------------------------------------------

op_result bucket_core::execute(const proto::op_request& op, int64_t now_ms) {
  return execute(op, now_ms, partition_of(op.key));
}

op_result bucket_core::execute(const proto::op_request& op, int64_t now_ms,
                               uint32_t p) {
  op_result res;
  auto& reply = res.reply;
  switch (op.op) {
    case proto::op_code::get: {
      if (auto e = store_.get(op.key, now_ms)) {
        reply.found = true;
        reply.value.assign(e->value.begin(), e->value.end());
        reply.ver = e->ver;
        reply.expires_ms = e->expires_ms;
      }
      return res;
    }
    case proto::op_code::ttl: {
      if (auto e = store_.peek(op.key, now_ms)) {
        reply.found = true;
        reply.ver = e->ver;
        reply.expires_ms = e->expires_ms;
      }
      return res;
    }
    case proto::op_code::put: return put(op, now_ms, p);
    case proto::op_code::cas: {
      auto cur = store_.peek(op.key, now_ms);
      auto held = cur ? cur->ver : version{};
      if (held != op.expected) {
        reply = failure(errc::version_mismatch,
                        fmt::format("{} holds version {}", op.key,
                                    cur ? to_string(held) : "none (absent)"));
        reply.found = cur.has_value();
        reply.ver = held;
        return res;
      }
      auto plain = op;
      plain.flags &= proto::keep_ttl | proto::return_previous;
      return put(plain, now_ms, p);
    }
    case proto::op_code::incr: return incr(op, now_ms, p);
    default: break;
  }
  if ((op.flags & proto::only_if_version) != 0
      && (op.op == proto::op_code::del || op.op == proto::op_code::expire)) {
    auto cur = store_.peek(op.key, now_ms);
    auto held = cur ? cur->ver : version{};
    if (held != op.expected) {
      reply = failure(errc::version_mismatch,
                      fmt::format("{} holds version {}", op.key,
                                  cur ? to_string(held) : "none (absent)"));
      reply.found = cur.has_value();
      reply.ver = held;
      return res;
    }
  }
  switch (op.op) {
    case proto::op_code::del: {
      if (!store_.peek(op.key, now_ms)) {
        return res; // number 0: nothing deleted
      }
      auto ver = clock_.next(now_ms);
      store_.erase(op.key, ver, now_ms);
      ++counters_.writes;
      reply.number = 1;
      reply.ver = ver;
      replicate(res.out, p, [&] {
        return proto::record{op.key, {}, ver, 0, proto::record_kind::tombstone};
      });
      return res;
    }
    case proto::op_code::expire: {
      auto cur = store_.peek(op.key, now_ms);
      if (!cur) {
        return res; // number 0: no such key
      }
      if (op.expires_ms == no_expiry && cur->expires_ms == no_expiry) {
        return res; // number 0: persist of a key without a TTL (Redis)
      }
      auto ver = clock_.next(now_ms);
      ++counters_.writes;
      reply.number = 1;
      reply.ver = ver;
      if (op.expires_ms != no_expiry && op.expires_ms <= now_ms) {
        // An expiry in the past deletes (Redis's EXPIRE with a negative
        // time, PEXPIREAT before now).
        store_.erase(op.key, ver, now_ms);
        replicate(res.out, p, [&] {
          return proto::record{
            op.key, {}, ver, 0, proto::record_kind::tombstone};
        });
        return res;
      }
      replicate(res.out, p, [&] {
        return proto::record{op.key,
                             bytes(cur->value.begin(), cur->value.end()), ver,
                             op.expires_ms, proto::record_kind::value};
      });
      store_.set_expiry(op.key, op.expires_ms, ver, now_ms);
      reply.expires_ms = op.expires_ms;
      return res;
    }
    default: break;
  }
  reply = failure(errc::malformed_frame, "unknown operation");
  return res;
}

op_result bucket_core::put(const proto::op_request& op, int64_t now_ms,
                           uint32_t p) {
  op_result res;
  auto& reply = res.reply;
  auto cur = store_.peek(op.key, now_ms);
  if ((op.flags & proto::return_previous) != 0 && cur) {
    reply.found = true;
    reply.value.assign(cur->value.begin(), cur->value.end());
    reply.ver = cur->ver;
    reply.expires_ms = cur->expires_ms;
  }
  if (((op.flags & proto::only_if_absent) != 0 && cur)
      || ((op.flags & proto::only_if_present) != 0 && !cur)) {
    return res; // number 0: the condition did not hold
  }
  int64_t expires = no_expiry;
  if ((op.flags & proto::keep_ttl) != 0 && cur) {
    expires = cur->expires_ms;
  } else if (op.expires_ms != no_expiry) {
    expires = op.expires_ms;
  } else if (opts_.default_ttl_ms > 0) {
    expires = now_ms + opts_.default_ttl_ms;
  }
  auto ver = clock_.next(now_ms);
  std::vector<removed> gone;
  auto r = store_.put(op.key, op.value, ver, expires, now_ms, gone);
  if (!r) {
    reply = failure(r.error().code(), r.error().context());
    return res;
  }
  ++counters_.writes;
  reply.number = 1;
  if ((op.flags & proto::return_previous) == 0) {
    reply.ver = ver;
    reply.expires_ms = expires;
  }
  replicate(res.out, p, [&] {
    return proto::record{op.key, op.value, ver, expires,
                         proto::record_kind::value};
  });
  evictions(gone, res.out);
  return res;
}

op_result bucket_core::incr(const proto::op_request& op, int64_t now_ms,
                            uint32_t p) {
  op_result res;
  auto cur = store_.peek(op.key, now_ms);
  int64_t x = 0;
  int64_t expires = no_expiry;
  if (cur) {
    auto parsed = parse_integer(cur->value);
    if (!parsed) {
      res.reply = failure(errc::wrong_type,
                          "value is not an integer or out of range");
      return res;
    }
    x = *parsed;
    expires = cur->expires_ms; // INCR keeps the TTL
  } else if (opts_.default_ttl_ms > 0) {
    expires = now_ms + opts_.default_ttl_ms;
  }
  int64_t sum = 0;
  if (__builtin_add_overflow(x, op.delta, &sum)) {
    res.reply = failure(errc::wrong_type,
                        "increment or decrement would overflow");
    return res;
  }
  auto ver = clock_.next(now_ms);
  auto value = decimal(sum);
  std::vector<removed> gone;
  auto r = store_.put(op.key, value, ver, expires, now_ms, gone);
  if (!r) {
    res.reply = failure(r.error().code(), r.error().context());
    return res;
  }
  ++counters_.writes;
  res.reply.number = sum;
  res.reply.ver = ver;
  res.reply.expires_ms = expires;
  replicate(res.out, p, [&] {
    return proto::record{op.key, std::move(value), ver, expires,
                         proto::record_kind::value};
  });
  evictions(gone, res.out);
  return res;
}

// -- records from other owners ------------------------------------------------

bucket_core::applied
bucket_core::apply(const std::vector<proto::record>& records, int64_t now_ms) {
  applied out;
  std::vector<removed> gone;
  for (const auto& rec : records) {
    clock_.observe(rec.ver, now_ms);
    bool changed = false;
    switch (rec.kind) {
      case proto::record_kind::value: {
        auto r = store_.put(rec.key, rec.value, rec.ver, rec.expires_ms, now_ms,
                            gone);
        changed = r && *r == apply_result::applied;
        break;
      }
      case proto::record_kind::tombstone:
        changed = store_.erase(rec.key, rec.ver, now_ms)
                  == apply_result::applied;
        break;
      case proto::record_kind::dropped:
        changed = store_.drop_if_not_newer(rec.key, rec.ver);
        break;
    }
    if (changed) {
      ++out.changed;
      ++counters_.records_applied;
    } else {
      ++counters_.records_stale;
    }
  }
  evictions(gone, out.out);
  return out;
}

// -- time ---------------------------------------------------------------------

std::vector<replication> bucket_core::on_time(int64_t now_ms, size_t budget) {
  std::vector<removed> gone;
  store_.on_time(now_ms, budget, gone);
  std::vector<replication> out;
  evictions(gone, out);
  return out;
}

// -- hand-off and repair ------------------------------------------------------

std::vector<proto::entries>
bucket_core::export_partition(uint32_t partition, proto::transfer why,
                              size_t batch_bytes) const {
  return std::move(export_partitions({partition}, why, batch_bytes)[partition]);
}

std::map<uint32_t, std::vector<proto::entries>>
bucket_core::export_partitions(const std::vector<uint32_t>& partitions,
                               proto::transfer why, size_t batch_bytes) const {
  struct building {
    std::vector<proto::entries> batches;
    size_t bytes_in_batch = 0;
  };
  std::map<uint32_t, building> out;
  std::vector<building*> of(view().partitions(), nullptr);
  auto fresh = [&](uint32_t p, building& b) {
    proto::entries e;
    e.bucket = name_;
    e.partition = p;
    e.why = why;
    b.batches.push_back(std::move(e));
    b.bytes_in_batch = 0;
  };
  for (auto p : partitions) {
    if (out.count(p) != 0) {
      continue;
    }
    auto& b = out[p];
    fresh(p, b);
    if (p < of.size()) {
      of[p] = &b;
    }
  }
  store_.for_each_record(
    [&](uint32_t p) {
      return p < of.size() && of[p] != nullptr;
    },
    [&](const record_view& r) {
      auto& b = *of[r.partition];
      auto size = r.key.size() + r.value.size() + 32;
      if (b.bytes_in_batch > 0 && b.bytes_in_batch + size > batch_bytes) {
        fresh(r.partition, b);
      }
      b.batches.back().records.push_back(to_record(r));
      b.bytes_in_batch += size;
    });
  std::map<uint32_t, std::vector<proto::entries>> result;
  for (auto& [p, b] : out) {
    b.batches.back().last = true;
    result.emplace(p, std::move(b.batches));
  }
  return result;
}

size_t bucket_core::drop_partition(uint32_t partition) {
  return drop_partitions({partition});
}

size_t bucket_core::drop_partitions(const std::vector<uint32_t>& partitions) {
  std::vector<bool> gone(view().partitions(), false);
  for (auto p : partitions) {
    if (p < gone.size() && !gone[p]) {
      gone[p] = true;
      ++counters_.partitions_dropped;
    }
  }
  return store_.drop_partitions([&](uint32_t p) {
    return p < gone.size() && gone[p];
  });
}

proto::digests
bucket_core::digests(const std::vector<uint32_t>& partitions) const {
  proto::digests out;
  out.bucket = name_;
  for (auto p : partitions) {
    auto d = store_.digest(p);
    out.parts.push_back(proto::digest_entry{p, d.digest, d.count});
  }
  return out;
}

proto::versions bucket_core::versions_of(uint32_t partition) const {
  proto::versions out;
  out.bucket = name_;
  out.partition = partition;
  store_.for_each_record(
    [partition](uint32_t p) {
      return p == partition;
    },
    [&](const record_view& r) {
      out.keys.push_back(proto::key_version{std::string{r.key}, r.ver});
    });
  return out;
}

proto::versions_reply bucket_core::answer(const proto::versions& theirs) const {
  auto plan = plan_repair(versions_of(theirs.partition).keys, theirs.keys);
  proto::versions_reply out;
  out.records = records_of(plan.send);
  out.wanted = std::move(plan.want);
  return out;
}

std::vector<proto::record>
bucket_core::records_of(const std::vector<std::string>& keys) const {
  std::vector<proto::record> out;
  for (const auto& k : keys) {
    if (auto r = store_.lookup(k)) {
      out.push_back(to_record(*r));
    }
  }
  return out;
}

proto::scan_reply bucket_core::scan(uint32_t from, uint32_t count,
                                    int64_t now_ms) const {
  proto::scan_reply out;
  // Whole partitions from `from` on while we are their primary, until
  // about `count` records (the digests count them) are in.
  uint32_t to = from;
  uint64_t records = 0;
  while (to < opts_.partitions && (to == from || is_primary(to))
         && (to == from || records < count)) {
    records += store_.digest(to).count;
    ++to;
  }
  store_.for_each_record(
    [&](uint32_t p) {
      return p >= from && p < to;
    },
    [&](const record_view& r) {
      auto expired = r.expires_ms != no_expiry && r.expires_ms <= now_ms;
      if (!r.tombstone && !expired) {
        out.keys.emplace_back(r.key);
      }
    });
  std::sort(out.keys.begin(), out.keys.end());
  out.next = to;
  return out;
}

} // namespace mycorrizal::cache
