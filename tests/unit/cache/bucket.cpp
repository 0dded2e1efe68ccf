// SPDX-License-Identifier: Apache-2.0
// One bucket over a cluster of bucket cores in one process, in virtual
// time: the operations' semantics at the primary (Redis's where they have
// one), replication to the other owners, last writer wins after a split,
// hand-off on join, crash and leave, anti-entropy after a lost message,
// evictions and expiries reaching replicas as drops, and a scan.
#include "mycorrizal/cache/bucket.hpp"

#include "mycorrizal/errc.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::cache;

namespace {

constexpr int64_t start_ms = 1'700'000'000'000;

bytes text_bytes(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string as_text(const bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

proto::op_request op(proto::op_code code, std::string key,
                     std::string value = {}, uint8_t flags = 0) {
  proto::op_request r;
  r.op = code;
  r.bucket = "b";
  r.key = std::move(key);
  r.value = text_bytes(value);
  r.flags = flags;
  return r;
}

/// Bucket cores of one bucket on several nodes; records travel at once
/// unless a link is cut.
class cluster {
public:
  explicit cluster(proto::bucket_options opts) : opts_(opts) {
    // nop
  }

  void add(const std::string& name) {
    nodes_[name] = std::make_unique<bucket_core>(name, "b", opts_);
  }

  bucket_core& at(const std::string& name) {
    return *nodes_.at(name);
  }

  /// Gives every node the storage members; returns the plans.
  std::map<std::string, handoff_plan> view(std::vector<std::string> members,
                                           const std::string& leaving = {}) {
    std::map<std::string, handoff_plan> plans;
    for (auto& [name, core] : nodes_) {
      plans[name] = core->set_members(members, leaving);
    }
    return plans;
  }

  /// Runs a hand-off plan to its end: sends, then drops.
  void hand_off(const std::map<std::string, handoff_plan>& plans) {
    for (auto& [name, plan] : plans) {
      for (auto& t : plan.send) {
        for (auto& batch : at(name).export_partition(
               t.partition, proto::transfer::handoff, 4096)) {
          at(t.to).apply(batch.records, now);
        }
      }
    }
    for (auto& [name, plan] : plans) {
      for (auto p : plan.drop) {
        at(name).drop_partition(p);
      }
    }
  }

  /// Runs `x` at the primary of its key and delivers its replication.
  proto::op_reply run(const proto::op_request& x) {
    auto p = any().partition_of(x.key);
    auto& primary = at(any().owners_of(p).front());
    auto res = primary.execute(x, now);
    deliver(res.out);
    return res.reply;
  }

  void deliver(const std::vector<replication>& out) {
    for (auto& r : out) {
      for (auto& to : r.to) {
        if (cut_.count(to) == 0) {
          auto more = at(to).apply({r.rec}, now);
          deliver(more.out);
        }
      }
    }
  }

  /// Reads `key` at its primary.
  std::string get(const std::string& key) {
    auto p = any().partition_of(key);
    auto r = at(any().owners_of(p).front())
               .execute(op(proto::op_code::get, key), now);
    return r.reply.found ? as_text(r.reply.value) : "<miss>";
  }

  /// Whether every owner of every partition holds the same records.
  std::string divergence() {
    std::string out;
    auto& v = any().view();
    for (uint32_t p = 0; p < v.partitions(); ++p) {
      std::optional<partition_digest> first;
      for (auto& o : v.owners_of(p)) {
        auto d = at(o).data().digest(p);
        if (!first) {
          first = d;
        } else if (*first != d) {
          out += " p" + std::to_string(p);
        }
      }
    }
    return out;
  }

  bucket_core& any() {
    return *nodes_.begin()->second;
  }

  std::set<std::string> cut_;
  int64_t now = start_ms;

private:
  proto::bucket_options opts_;
  std::map<std::string, std::unique_ptr<bucket_core>> nodes_;
};

proto::bucket_options options(uint32_t rf = 2, uint32_t partitions = 31) {
  proto::bucket_options o;
  o.rf = rf;
  o.partitions = partitions;
  return o;
}

/// A single node that owns everything.
struct solo {
  bucket_core core{"a", "b", options(1, 7)};
  int64_t now = start_ms;

  solo() {
    core.set_members({"a"});
  }

  proto::op_reply run(proto::op_request x) {
    return core.execute(x, now).reply;
  }
};

TEST(cache_bucket, put_get_and_the_conditions_of_a_put) {
  solo s;
  EXPECT_FALSE(s.run(op(proto::op_code::get, "k")).found);
  EXPECT_EQ(s.run(op(proto::op_code::put, "k", "v1")).number, 1);
  auto got = s.run(op(proto::op_code::get, "k"));
  ASSERT_TRUE(got.found);
  EXPECT_EQ(as_text(got.value), "v1");
  // NX on a present key: not written.
  EXPECT_EQ(
    s.run(op(proto::op_code::put, "k", "v2", proto::only_if_absent)).number, 0);
  // XX on an absent key: not written.
  EXPECT_EQ(
    s.run(op(proto::op_code::put, "j", "v", proto::only_if_present)).number, 0);
  EXPECT_FALSE(s.run(op(proto::op_code::get, "j")).found);
  // GET: the previous value comes back.
  auto prev = s.run(op(proto::op_code::put, "k", "v3", proto::return_previous));
  EXPECT_TRUE(prev.found);
  EXPECT_EQ(as_text(prev.value), "v1");
  EXPECT_EQ(as_text(s.run(op(proto::op_code::get, "k")).value), "v3");
}

TEST(cache_bucket, ttls_default_keep_expire_and_persist) {
  auto o = options(1, 7);
  o.default_ttl_ms = 1000;
  bucket_core core{"a", "b", o};
  core.set_members({"a"});
  auto now = start_ms;
  core.execute(op(proto::op_code::put, "k", "v"), now);
  auto ttl = core.execute(op(proto::op_code::ttl, "k"), now).reply;
  EXPECT_EQ(ttl.expires_ms, now + 1000) << "the bucket's default TTL";
  // An explicit expiry wins; KEEPTTL keeps it across a put.
  auto with = op(proto::op_code::put, "k", "v2");
  with.expires_ms = now + 5000;
  core.execute(with, now);
  core.execute(op(proto::op_code::put, "k", "v3", proto::keep_ttl), now);
  EXPECT_EQ(core.execute(op(proto::op_code::ttl, "k"), now).reply.expires_ms,
            now + 5000);
  // PERSIST (expire 0), then EXPIRE in the past deletes.
  auto persist = op(proto::op_code::expire, "k");
  EXPECT_EQ(core.execute(persist, now).reply.number, 1);
  EXPECT_EQ(core.execute(op(proto::op_code::ttl, "k"), now).reply.expires_ms,
            no_expiry);
  auto past = op(proto::op_code::expire, "k");
  past.expires_ms = now - 1;
  EXPECT_EQ(core.execute(past, now).reply.number, 1);
  EXPECT_FALSE(core.execute(op(proto::op_code::get, "k"), now).reply.found);
  EXPECT_EQ(core.execute(persist, now).reply.number, 0) << "no such key";
  // A default TTL runs out in virtual time.
  core.execute(op(proto::op_code::put, "t", "v"), now);
  EXPECT_TRUE(
    core.execute(op(proto::op_code::get, "t"), now + 999).reply.found);
  EXPECT_FALSE(
    core.execute(op(proto::op_code::get, "t"), now + 1000).reply.found);
}

TEST(cache_bucket, delete_counts_what_it_removed) {
  solo s;
  EXPECT_EQ(s.run(op(proto::op_code::del, "k")).number, 0);
  s.run(op(proto::op_code::put, "k", "v"));
  EXPECT_EQ(s.run(op(proto::op_code::del, "k")).number, 1);
  EXPECT_FALSE(s.run(op(proto::op_code::get, "k")).found);
  EXPECT_EQ(s.core.data().tombstones(), 1u);
}

TEST(cache_bucket, incr_follows_redis) {
  solo s;
  auto by = [&](int64_t d) {
    auto x = op(proto::op_code::incr, "n");
    x.delta = d;
    return s.run(x);
  };
  EXPECT_EQ(by(5).number, 5) << "an absent key counts from 0";
  EXPECT_EQ(by(-7).number, -2);
  EXPECT_EQ(as_text(s.run(op(proto::op_code::get, "n")).value), "-2");
  s.run(op(proto::op_code::put, "n", " 1"));
  EXPECT_EQ(by(1).status, errc::wrong_type) << "spaces are no integer";
  for (const char* text : {"007", "-0", "+1", "-", "1.0", ""}) {
    s.run(op(proto::op_code::put, "n", text));
    EXPECT_EQ(by(1).status, errc::wrong_type)
      << "'" << text << "' is no integer to Redis (string2ll)";
  }
  s.run(op(proto::op_code::put, "n", "0"));
  EXPECT_EQ(by(1).number, 1);
  s.run(op(proto::op_code::put, "n", "-10"));
  EXPECT_EQ(by(1).number, -9);
  s.run(op(proto::op_code::put, "n", "9223372036854775807"));
  auto over = by(1);
  EXPECT_EQ(over.status, errc::wrong_type);
  EXPECT_NE(over.message.find("overflow"), std::string::npos);
  EXPECT_EQ(as_text(s.run(op(proto::op_code::get, "n")).value),
            "9223372036854775807")
    << "a failed incr changes nothing";
}

TEST(cache_bucket, compare_and_set_takes_the_version_it_names) {
  solo s;
  auto cas = op(proto::op_code::cas, "k", "first");
  EXPECT_EQ(s.run(cas).number, 1) << "the empty version: only if absent";
  auto again = s.run(cas);
  EXPECT_EQ(again.status, errc::version_mismatch);
  auto held = s.run(op(proto::op_code::get, "k")).ver;
  EXPECT_EQ(again.ver, held);
  auto next = op(proto::op_code::cas, "k", "second");
  next.expected = held;
  EXPECT_EQ(s.run(next).number, 1);
  EXPECT_EQ(s.run(next).status, errc::version_mismatch) << "only once";
  EXPECT_EQ(as_text(s.run(op(proto::op_code::get, "k")).value), "second");
}

TEST(cache_bucket, del_and_expire_with_a_version_change_only_that_version) {
  solo s;
  s.run(op(proto::op_code::put, "k", "v1"));
  auto v1 = s.run(op(proto::op_code::get, "k")).ver;
  s.run(op(proto::op_code::put, "k", "v2"));
  auto v2 = s.run(op(proto::op_code::get, "k")).ver;
  auto del = op(proto::op_code::del, "k");
  del.flags = proto::only_if_version;
  del.expected = v1;
  auto stale = s.run(del);
  EXPECT_EQ(stale.status, errc::version_mismatch);
  EXPECT_EQ(stale.ver, v2) << "the answer names the version held";
  EXPECT_EQ(as_text(s.run(op(proto::op_code::get, "k")).value), "v2");
  auto exp = op(proto::op_code::expire, "k");
  exp.flags = proto::only_if_version;
  exp.expected = v1;
  exp.expires_ms = s.now + 100'000;
  EXPECT_EQ(s.run(exp).status, errc::version_mismatch);
  EXPECT_EQ(s.run(op(proto::op_code::ttl, "k")).expires_ms, no_expiry);
  exp.expected = v2;
  EXPECT_EQ(s.run(exp).number, 1);
  auto v3 = s.run(op(proto::op_code::ttl, "k")).ver;
  del.expected = v3;
  EXPECT_EQ(s.run(del).number, 1);
  EXPECT_FALSE(s.run(op(proto::op_code::get, "k")).found);
  del.expected = {};
  EXPECT_EQ(s.run(del).status, errc::none)
    << "the empty version: only if absent, and absent deletes nothing";
  EXPECT_EQ(s.run(del).number, 0);
}

TEST(cache_bucket, a_too_large_value_is_refused_and_changes_nothing) {
  solo s;
  s.run(op(proto::op_code::put, "k", "small"));
  auto big = op(proto::op_code::put, "k");
  big.value.resize(max_value_size + 1);
  EXPECT_EQ(s.run(big).status, errc::too_large);
  EXPECT_EQ(as_text(s.run(op(proto::op_code::get, "k")).value), "small");
}

TEST(cache_bucket, writes_reach_every_owner_and_no_one_else) {
  cluster c{options(2)};
  std::vector<std::string> names{"a", "b", "c", "d"};
  for (auto& n : names) {
    c.add(n);
  }
  c.view(names);
  for (int i = 0; i < 200; ++i) {
    c.run(op(proto::op_code::put, "k" + std::to_string(i), "v"));
  }
  for (int i = 0; i < 50; ++i) {
    c.run(op(proto::op_code::del, "k" + std::to_string(i)));
  }
  EXPECT_EQ(c.divergence(), "");
  size_t live = 0;
  for (auto& n : names) {
    auto& core = c.at(n);
    live += core.data().size();
    for (uint32_t p = 0; p < 31; ++p) {
      if (!core.owns(p)) {
        EXPECT_EQ(core.data().digest(p).count, 0u) << n << " p" << p;
      }
    }
  }
  EXPECT_EQ(live, 150u * 2) << "RF copies of every live key";
}

TEST(cache_bucket, after_a_split_the_later_write_wins_everywhere) {
  cluster c{options(2, 7)};
  c.add("a");
  c.add("b");
  c.view({"a", "b"});
  c.run(op(proto::op_code::put, "k", "before"));
  // Split: each side sees only itself and takes writes as primary.
  c.cut_ = {"a", "b"};
  c.at("a").set_members({"a"});
  c.at("b").set_members({"b"});
  auto wa = c.at("a").execute(op(proto::op_code::put, "k", "from-a"), c.now);
  c.now += 5;
  auto wb = c.at("b").execute(op(proto::op_code::put, "k", "from-b"), c.now);
  ASSERT_LT(wa.reply.ver, wb.reply.ver);
  // Heal: anti-entropy exchanges versions; the later write wins on both.
  c.cut_.clear();
  c.view({"a", "b"});
  auto p = c.at("a").partition_of("k");
  auto answer = c.at("b").answer(c.at("a").versions_of(p));
  c.at("a").apply(answer.records, c.now);
  c.at("b").apply(c.at("a").records_of(answer.wanted), c.now);
  EXPECT_EQ(c.divergence(), "");
  for (auto* n : {"a", "b"}) {
    auto r = c.at(n).execute(op(proto::op_code::get, "k"), c.now).reply;
    EXPECT_EQ(as_text(r.value), "from-b") << n;
  }
}

TEST(cache_bucket, a_joiner_gets_its_partitions_and_the_old_copies_go) {
  cluster c{options(2)};
  std::vector<std::string> names{"a", "b", "c"};
  for (auto& n : names) {
    c.add(n);
  }
  c.view(names);
  for (int i = 0; i < 300; ++i) {
    c.run(op(proto::op_code::put, "k" + std::to_string(i),
             "v" + std::to_string(i)));
  }
  c.add("d");
  names.push_back("d");
  c.hand_off(c.view(names));
  EXPECT_EQ(c.divergence(), "");
  size_t live = 0;
  for (auto& n : names) {
    live += c.at(n).data().size();
  }
  EXPECT_EQ(live, 300u * 2) << "RF copies, and no stale ones left";
  EXPECT_GT(c.at("d").data().size(), 0u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(c.get("k" + std::to_string(i)), "v" + std::to_string(i));
  }
}

TEST(cache_bucket, after_a_crash_every_key_is_back_on_rf_nodes) {
  cluster c{options(2)};
  std::vector<std::string> names{"a", "b", "c", "d", "e"};
  for (auto& n : names) {
    c.add(n);
  }
  c.view(names);
  for (int i = 0; i < 300; ++i) {
    c.run(op(proto::op_code::put, "k" + std::to_string(i), "v"));
  }
  // c crashes: it sends nothing, its data is gone.
  names.erase(names.begin() + 2);
  auto plans = c.view(names);
  plans.erase("c");
  c.hand_off(plans);
  EXPECT_EQ(c.divergence(), "");
  size_t live = 0;
  for (auto& n : names) {
    live += c.at(n).data().size();
  }
  EXPECT_EQ(live, 300u * 2);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(c.get("k" + std::to_string(i)), "v");
  }
}

TEST(cache_bucket, a_leaving_node_drains_before_it_goes) {
  cluster c{options(2)};
  std::vector<std::string> names{"a", "b", "c"};
  for (auto& n : names) {
    c.add(n);
  }
  c.view(names);
  for (int i = 0; i < 100; ++i) {
    c.run(op(proto::op_code::put, "k" + std::to_string(i), "v"));
  }
  names.pop_back();
  c.hand_off(c.view(names, "c"));
  EXPECT_EQ(c.at("c").data().size(), 0u) << "c dropped what it drained";
  EXPECT_EQ(c.at("a").data().size() + c.at("b").data().size(), 200u);
}

TEST(cache_bucket, anti_entropy_repairs_a_lost_replication) {
  cluster c{options(2)};
  std::vector<std::string> names{"a", "b", "c"};
  for (auto& n : names) {
    c.add(n);
  }
  c.view(names);
  for (int i = 0; i < 100; ++i) {
    c.run(op(proto::op_code::put, "k" + std::to_string(i), "v"));
  }
  // One write whose replication is lost.
  auto p = c.any().partition_of("lost");
  auto owners = c.any().owners_of(p);
  c.cut_ = {owners[1]};
  c.run(op(proto::op_code::put, "lost", "v"));
  c.cut_.clear();
  EXPECT_NE(c.divergence(), "");
  // The primary compares digests with the replica, then versions.
  auto& primary = c.at(owners[0]);
  auto& replica = c.at(owners[1]);
  std::vector<uint32_t> shared;
  for (uint32_t q = 0; q < 31; ++q) {
    if (primary.owns(q) && replica.owns(q)) {
      shared.push_back(q);
    }
  }
  auto mine = primary.digests(shared);
  auto theirs = replica.digests(shared);
  std::vector<uint32_t> differ;
  for (size_t i = 0; i < shared.size(); ++i) {
    if (mine.parts[i] != theirs.parts[i]) {
      differ.push_back(shared[i]);
    }
  }
  ASSERT_EQ(differ, std::vector<uint32_t>{p}) << "exactly the one partition";
  auto answer = replica.answer(primary.versions_of(p));
  EXPECT_TRUE(answer.records.empty());
  EXPECT_EQ(answer.wanted, std::vector<std::string>{"lost"});
  replica.apply(primary.records_of(answer.wanted), c.now);
  EXPECT_EQ(c.divergence(), "");
}

TEST(cache_bucket, evictions_and_expiries_at_the_primary_reach_replicas) {
  auto o = options(2, 1);
  o.max_entries = 10;
  cluster c{o};
  c.add("a");
  c.add("b");
  c.view({"a", "b"});
  for (int i = 0; i < 30; ++i) {
    c.run(op(proto::op_code::put, "k" + std::to_string(i), "v"));
  }
  EXPECT_EQ(c.divergence(), "");
  EXPECT_EQ(c.at("a").data().size(), 10u);
  EXPECT_EQ(c.at("b").data().size(), 10u);
  EXPECT_EQ(c.at("b").data().tombstones(), 0u) << "drops leave no tombstone";
  auto ttl = op(proto::op_code::put, "t", "v");
  ttl.expires_ms = c.now + 100;
  c.run(ttl);
  auto& primary = c.at(c.any().owners_of(0).front());
  c.deliver(primary.on_time(c.now + 100, 100));
  EXPECT_EQ(c.divergence(), "");
}

TEST(cache_bucket, a_scan_over_the_primaries_sees_every_key_once) {
  cluster c{options(2)};
  std::vector<std::string> names{"a", "b", "c"};
  for (auto& n : names) {
    c.add(n);
  }
  c.view(names);
  std::set<std::string> keys;
  for (int i = 0; i < 500; ++i) {
    keys.insert("k" + std::to_string(i));
    c.run(op(proto::op_code::put, "k" + std::to_string(i), "v"));
  }
  c.run(op(proto::op_code::del, "k7"));
  keys.erase("k7");
  std::multiset<std::string> seen;
  uint32_t cursor = 0;
  int calls = 0;
  while (cursor < 31) {
    auto& primary = c.at(c.any().owners_of(cursor).front());
    auto r = primary.scan(cursor, 40, c.now);
    ASSERT_GT(r.next, cursor);
    seen.insert(r.keys.begin(), r.keys.end());
    cursor = r.next;
    ++calls;
  }
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), keys);
  EXPECT_EQ(seen.size(), keys.size()) << "a key came twice";
  EXPECT_LT(calls, 31) << "consecutive partitions of one primary batch up";
}

TEST(cache_bucket, one_export_pass_equals_one_export_per_partition) {
  solo s;
  for (int i = 0; i < 400; ++i) {
    s.run(op(proto::op_code::put, "k" + std::to_string(i),
             std::string(static_cast<size_t>(i % 50), 'v')));
  }
  s.run(op(proto::op_code::del, "k3")); // a tombstone travels too
  auto keys_of = [](const std::vector<proto::entries>& batches) {
    std::multiset<std::string> out;
    for (auto& b : batches) {
      for (auto& r : b.records) {
        out.insert(r.key
                   + (r.kind == proto::record_kind::tombstone ? "-" : ""));
      }
    }
    return out;
  };
  // Partitions 0..6, one twice, and one the bucket does not have.
  std::vector<uint32_t> parts{0, 2, 3, 5, 6, 2, 9};
  auto all = s.core.export_partitions(parts, proto::transfer::handoff, 512);
  EXPECT_EQ(all.size(), 6u);
  size_t records = 0;
  for (uint32_t p : {0u, 2u, 3u, 5u, 6u}) {
    auto one = s.core.export_partition(p, proto::transfer::handoff, 512);
    ASSERT_EQ(all.count(p), 1u) << p;
    EXPECT_EQ(keys_of(all[p]), keys_of(one)) << "partition " << p;
    EXPECT_EQ(all[p].size(), one.size()) << "batches of partition " << p;
    for (size_t i = 0; i < all[p].size(); ++i) {
      EXPECT_EQ(all[p][i].partition, p);
      EXPECT_EQ(all[p][i].last, i + 1 == all[p].size());
    }
    records += keys_of(one).size();
  }
  EXPECT_GT(records, 200u) << "5 of 7 partitions hold most keys";
  // The unknown partition: one empty last batch, as export_partition says.
  ASSERT_EQ(all[9].size(), 1u);
  EXPECT_TRUE(all[9][0].records.empty());
  EXPECT_TRUE(all[9][0].last);
  // One drop pass takes what a drop per partition would.
  auto before = s.core.data().size();
  auto dropped = s.core.drop_partitions({0, 2, 2, 9});
  size_t expected = keys_of(all[0]).size() + keys_of(all[2]).size();
  EXPECT_EQ(dropped, expected);
  EXPECT_LE(s.core.data().size(), before - (expected - 1));
  EXPECT_EQ(s.core.data().digest(0).count, 0u);
  EXPECT_EQ(s.core.data().digest(2).count, 0u);
  EXPECT_GT(s.core.data().digest(3).count, 0u);
}

} // namespace
