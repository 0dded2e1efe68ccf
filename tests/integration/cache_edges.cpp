// SPDX-License-Identifier: Apache-2.0
// Mycel's API edges and bad inputs, across nodes in one actor system on
// 127.0.0.x with real sockets: unknown buckets, the registry (same and
// other options, bad names and options, drop, re-create, a late joiner),
// the key and value limits, full buckets, missing keys and conditional
// writes, TTLs, batches and scans, typed values, bucket handles for actor
// code, compare-and-set versions, malformed frames from a peer, a node that
// stops, client members, and a primary that crashes or cannot be reached.
#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/mycel/internal/bucket.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include "support/eventually.hpp"
#include "support/test_pki.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

// Names here carry an `edge_` prefix: this file shares unity batches with
// the other integration tests (cache.cpp defines `bytes_of`, `make_op`...).

namespace edge_proto = mycorrizal::cache::proto;

using edge_clock = std::chrono::steady_clock;

/// Each attempt of a remote operation (cache_options::op_timeout).
constexpr auto edge_op_timeout = std::chrono::seconds{2};

std::vector<std::byte> edge_bytes(const std::string& s) {
  std::vector<std::byte> out(s.size());
  if (!s.empty()) {
    std::memcpy(out.data(), s.data(), s.size());
  }
  return out;
}

std::string edge_text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

double edge_secs(edge_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

int64_t edge_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string edge_join(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs) {
    out += out.empty() ? "" : ", ";
    out += x;
  }
  return "[" + out + "]";
}

/// "ok" or the error.
template <class T>
std::string edge_show(const expected<T>& r) {
  return r ? std::string{"ok"} : to_string(r.error());
}

/// The error code of a result (errc::none when it succeeded).
template <class T>
errc edge_code(const expected<T>& r) {
  return r ? errc::none : r.error().code();
}

cache_op edge_cache_op(edge_proto::op_code code, std::string bucket,
                       std::string key, std::string value = {}) {
  cache_op x;
  x.bucket = std::move(bucket);
  x.op.op = code;
  x.op.bucket = x.bucket;
  x.op.key = std::move(key);
  x.op.value = edge_bytes(value);
  return x;
}

using edge_owners_pred = std::function<bool(const std::vector<std::string>&)>;

edge_owners_pred edge_primary_is(std::string name) {
  return [name](const std::vector<std::string>& owners) {
    return !owners.empty() && owners.front() == name;
  };
}

edge_owners_pred edge_owners_are(std::vector<std::string> names) {
  return [names](const std::vector<std::string>& owners) {
    return owners == names;
  };
}

/// The stats of `bucket` in a `cache_stats` answer.
std::optional<bucket_stats>
edge_stats_of(const expected<std::vector<bucket_stats>>& all,
              const std::string& bucket) {
  if (!all) {
    return std::nullopt;
  }
  for (const auto& s : *all) {
    if (s.name == bucket) {
      return s;
    }
  }
  return std::nullopt;
}

class cache_edges : public ::testing::Test {
protected:
  void SetUp() override {
    add_error_category(cfg_);
    cfg_.set("scheduler.max-threads", 4);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  void TearDown() override {
    for (auto& entry : nodes_) {
      entry.second->stop();
    }
    nodes_.clear();
    sys_.reset();
  }

  node_config config(const std::string& name, uint8_t host, const node* seed,
                     bool storage = true) {
    auto cfg = node_config::local(name);
    cfg.credentials = test::test_pki::get().credentials(name);
    cfg.gossip_bind = ip_endpoint::v4(127, 0, 0, host, 0);
    cfg.quic_bind = ip_endpoint::v4(127, 0, 0, host, 0);
    if (seed != nullptr) {
      cfg.seeds.push_back(seed->gossip_endpoint().to_string());
    }
    cache_options co;
    co.storage = storage;
    co.op_timeout = op_timeout_;
    co.anti_entropy_interval = 1s;
    cfg.cache = co;
    cfg.facade_timeout = facade_timeout_;
    return cfg;
  }

  node& start(node_config cfg) {
    auto name = cfg.name;
    auto n = node::start(*sys_, std::move(cfg));
    if (!n) {
      ADD_FAILURE() << to_string(n.error());
      throw std::runtime_error("cannot start " + name);
    }
    nodes_[name] = *n;
    return **n;
  }

  node& start(const std::string& name, uint8_t host, const node* seed,
              bool storage = true) {
    return start(config(name, host, seed, storage));
  }

  /// Asks the cache actor of `n`; an error comes back as `error`.
  template <class T, class... Ts>
  expected<T> ask(node& n, Ts&&... xs) {
    caf::scoped_actor self{*sys_};
    std::optional<expected<T>> out;
    self->request(n.cache(), 10s, std::forward<Ts>(xs)...)
      .receive(
        [&](T& x) {
          out.emplace(std::move(x));
        },
        [&](caf::error& e) {
          out.emplace(unexpected{from_caf_error(e)});
        });
    return std::move(*out);
  }

  /// Sends `payload` from the router of `from` to the application "mycel"
  /// of node `to` on `stream`, as a bucket does.
  expected<std::vector<std::byte>>
  raw_request(node& from, const std::string& to, std::vector<std::byte> payload,
              const std::string& stream) {
    caf::scoped_actor self{*sys_};
    std::optional<expected<std::vector<std::byte>>> out;
    self
      ->request(from.router(), 10s, request_atom::value, to,
                std::string{"mycel"}, raw_bytes{std::move(payload)},
                caf::timespan{edge_op_timeout}, stream)
      .receive(
        [&](raw_bytes& answer) {
          out.emplace(std::move(answer.data));
        },
        [&](caf::error& e) {
          out.emplace(unexpected{from_caf_error(e)});
        });
    return std::move(*out);
  }

  /// The stream `kind` ("o:", "r:" or "h:") of `bucket` at `n`: the one of
  /// its running incarnation (the stream names carry a tag of it).
  std::string stream_of(node& n, const std::string& kind,
                        const std::string& bucket) {
    caf::scoped_actor self{*sys_};
    std::vector<std::string> found;
    self
      ->request(n.router(), 10s, list_streams_atom::value, std::string{"mycel"})
      .receive(
        [&](std::vector<std::string>& names) {
          for (auto& x : names) {
            if (x.rfind(kind + bucket + "#", 0) == 0) {
              found.push_back(x);
            }
          }
        },
        [&](caf::error& e) {
          ADD_FAILURE() << to_string(e);
        });
    EXPECT_EQ(found.size(), 1u) << n.name() << ": " << kind << bucket;
    return found.empty() ? kind + bucket : found.front();
  }

  /// Waits until every node of `ns` lists `bucket`.
  void wait_bucket(std::initializer_list<node*> ns, const std::string& bucket) {
    for (auto* n : ns) {
      std::vector<std::string> seen;
      ASSERT_TRUE(test::eventually(
        [&] {
          auto l = n->buckets();
          if (!l) {
            return false;
          }
          seen.clear();
          for (auto& b : *l) {
            seen.push_back(b.name);
          }
          return std::find(seen.begin(), seen.end(), bucket) != seen.end();
        },
        20s))
        << n->name() << " lists " << edge_join(seen);
    }
  }

  /// Waits until every node of `ns` places partitions on `storage` (sorted).
  void wait_members(std::initializer_list<node*> ns,
                    const std::vector<std::string>& storage) {
    for (auto* n : ns) {
      std::vector<std::string> seen;
      ASSERT_TRUE(test::eventually(
        [&] {
          auto m = n->cache_members();
          if (m) {
            seen = *m;
          }
          return seen == storage;
        },
        20s))
        << n->name() << " places on " << edge_join(seen) << ", not on "
        << edge_join(storage);
    }
  }

  /// Waits until a put from each node of `ns` is read back by every other
  /// (keys "probe-...": tests that list keys leave them out).
  void wait_serving(std::initializer_list<node*> ns,
                    const std::string& bucket) {
    int round = 0;
    std::string last;
    ASSERT_TRUE(test::eventually(
      [&] {
        ++round;
        for (auto* n : ns) {
          auto key = "probe-" + n->name() + "-" + std::to_string(round);
          auto put = n->put(bucket, key, edge_bytes("x"));
          if (!put) {
            last = n->name() + " put " + key + ": " + edge_show(put);
            return false;
          }
          for (auto* m : ns) {
            auto got = m->get(bucket, key);
            if (!got || !*got) {
              last = m->name() + " get " + key + ": "
                     + (got ? std::string{"missing"} : edge_show(got));
              return false;
            }
          }
        }
        return true;
      },
      30s))
      << "last: " << last;
  }

  /// A key `prefix` + 8 digits whose owners (in the view of `n`) satisfy
  /// `want`.
  std::string find_key(node& n, const std::string& bucket,
                       const std::string& prefix,
                       const edge_owners_pred& want) {
    std::vector<std::string> last;
    for (int i = 0; i < 100000; ++i) {
      char digits[16];
      std::snprintf(digits, sizeof(digits), "%08d", i);
      auto key = prefix + digits;
      auto owners = n.owners(bucket, key);
      if (!owners) {
        ADD_FAILURE() << "owners in " << bucket << ": " << edge_show(owners);
        return key;
      }
      if (want(*owners)) {
        return key;
      }
      last = std::move(*owners);
    }
    ADD_FAILURE() << "no key of a " << prefix.size()
                  << "-byte prefix has the owners wanted; last "
                  << edge_join(last);
    return prefix;
  }

  /// The stats of `bucket` on `n` (fails the test if there are none).
  bucket_stats stats(node& n, const std::string& bucket) {
    auto all = n.cache_stats();
    auto s = edge_stats_of(all, bucket);
    if (!s) {
      ADD_FAILURE() << n.name() << " has no stats of " << bucket << ": "
                    << edge_show(all);
      return {};
    }
    return *s;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::map<std::string, std::shared_ptr<node>> nodes_;
  /// For the nodes `config` makes (a test may change them first).
  caf::timespan op_timeout_ = edge_op_timeout;
  caf::timespan facade_timeout_ = std::chrono::seconds{10};
};

// -- 1. unknown buckets -------------------------------------------------------

TEST_F(cache_edges, an_unknown_bucket_is_an_error_of_the_facade_and_the_actor) {
  auto& a = start("node-a", 1, nullptr);
  ASSERT_TRUE(a.create_bucket("known"));
  wait_bucket({&a}, "known");
  ASSERT_TRUE(a.put("known", "k", edge_bytes("v")));
  const std::string nope = "nope";
  auto value = edge_bytes("v");
  auto unknown = [&](const auto& r, const char* what) {
    ASSERT_FALSE(r) << what << " on an unknown bucket succeeded";
    EXPECT_EQ(r.error().code(), errc::unknown_bucket)
      << what << ": " << to_string(r.error());
  };
  // The facade.
  unknown(a.get(nope, "k"), "get");
  unknown(a.put(nope, "k", value), "put");
  unknown(a.del(nope, "k"), "del");
  unknown(a.expire(nope, "k", 10s), "expire");
  unknown(a.persist(nope, "k"), "persist");
  unknown(a.expires_at(nope, "k"), "expires_at");
  unknown(a.incr(nope, "k"), "incr");
  unknown(a.compare_and_set(nope, "k", cache::version{}, value), "cas");
  unknown(a.get_many(nope, {"k", "l"}), "get_many");
  unknown(a.put_many(nope, {{"k", value}, {"l", value}}), "put_many");
  unknown(a.scan(nope, 0), "scan");
  unknown(a.keys(nope), "keys");
  unknown(a.owners(nope, "k"), "owners");
  unknown(a.bucket(nope), "bucket");
  unknown(a.put_as(nope, "k", std::string{"x"}), "put_as");
  unknown(a.get_as<std::string>(nope, "k"), "get_as");
  edge_proto::op_request op;
  op.op = edge_proto::op_code::get;
  op.key = "k";
  auto fut = a.execute_async(nope, op);
  ASSERT_EQ(fut.wait_for(15s), std::future_status::ready);
  unknown(fut.get(), "execute_async");
  // The cache actor.
  unknown(ask<edge_proto::op_reply>(a, edge_cache_op(edge_proto::op_code::get,
                                                     nope, "k")),
          "cache_op get");
  unknown(ask<edge_proto::op_reply>(a, edge_cache_op(edge_proto::op_code::put,
                                                     nope, "k", "v")),
          "cache_op put");
  unknown(ask<edge_proto::scan_reply>(a, scan_atom::value, nope, uint32_t{0},
                                      uint32_t{10}),
          "scan_atom");
  unknown(ask<std::vector<std::string>>(a, owners_atom::value, nope,
                                        std::string{"k"}),
          "owners_atom");
  unknown(ask<bucket_handle>(a, bucket_atom::value, nope), "bucket_atom");
  // Dropping what does not exist is no error: it did not exist.
  auto dropped = a.drop_bucket(nope);
  ASSERT_TRUE(dropped) << edge_show(dropped);
  EXPECT_FALSE(*dropped);
  // The known bucket still answers.
  auto got = a.get("known", "k");
  ASSERT_TRUE(got) << edge_show(got);
  ASSERT_TRUE(*got);
  EXPECT_EQ(edge_text((*got)->value), "v");
  // A node without a cache answers unknown_application.
  auto cfg = config("node-n", 2, nullptr);
  cfg.cache.reset();
  auto& n = start(std::move(cfg));
  auto none = n.get("known", "k");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), errc::unknown_application)
    << to_string(none.error());
  auto no_buckets = n.create_bucket("known");
  ASSERT_FALSE(no_buckets);
  EXPECT_EQ(no_buckets.error().code(), errc::unknown_application);
}

// -- 2. the registry ----------------------------------------------------------

TEST_F(cache_edges, the_registry_refuses_clashes_and_bad_input_and_drops) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  bucket_options opts;
  opts.partitions = 64;
  opts.rf = 2;
  opts.max_entries = 1000;
  auto created = b.create_bucket("reg", opts);
  ASSERT_TRUE(created) << edge_show(created);
  EXPECT_TRUE(*created);
  wait_bucket({&a, &b, &c}, "reg");
  // The same options again, from anywhere: nothing new.
  for (auto* n : {&a, &b, &c}) {
    auto again = n->create_bucket("reg", opts);
    ASSERT_TRUE(again) << n->name() << ": " << edge_show(again);
    EXPECT_FALSE(*again) << n->name();
  }
  // Other options: bucket_exists, naming the options it has.
  auto fewer = opts;
  fewer.max_entries = 5;
  auto clash = c.create_bucket("reg", fewer);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code(), errc::bucket_exists)
    << to_string(clash.error());
  EXPECT_NE(clash.error().context().find("max entries 1000"), std::string::npos)
    << to_string(clash.error());
  EXPECT_NE(clash.error().context().find("64 partitions"), std::string::npos)
    << to_string(clash.error());
  auto primary_ack = opts;
  primary_ack.ack = edge_proto::ack_mode::primary;
  auto clash2 = a.create_bucket("reg", primary_ack);
  ASSERT_FALSE(clash2);
  EXPECT_EQ(clash2.error().code(), errc::bucket_exists);
  // Every node lists it with the options of the create.
  for (auto* n : {&a, &b, &c}) {
    auto list = n->buckets();
    ASSERT_TRUE(list) << edge_show(list);
    auto i = std::find_if(list->begin(), list->end(), [](const auto& x) {
      return x.name == "reg";
    });
    ASSERT_NE(i, list->end());
    EXPECT_EQ(i->options, opts) << n->name();
  }
  // Bad names and options.
  for (const auto& name :
       {std::string{}, std::string(254, 'n'), std::string{"a\tb"},
        std::string{"a\nb"}, std::string{"\xff\xfe"}}) {
    auto bad = a.create_bucket(name);
    ASSERT_FALSE(bad) << "a bucket named '" << name << "' (" << name.size()
                      << " bytes)";
    EXPECT_EQ(bad.error().code(), errc::invalid_identifier)
      << to_string(bad.error());
  }
  struct bad_options {
    const char* field;
    bucket_options opts;
  };
  std::vector<bad_options> bads;
  bads.push_back({"rf", bucket_options{}});
  bads.back().opts.rf = 0;
  bads.push_back({"rf", bucket_options{}});
  bads.back().opts.rf = edge_proto::max_rf + 1;
  bads.push_back({"partitions", bucket_options{}});
  bads.back().opts.partitions = 0;
  bads.push_back({"partitions", bucket_options{}});
  bads.back().opts.partitions = edge_proto::max_partitions + 1;
  bads.push_back({"default ttl", bucket_options{}});
  bads.back().opts.default_ttl_ms = -1;
  for (auto& x : bads) {
    auto bad = a.create_bucket("bad-options", x.opts);
    ASSERT_FALSE(bad) << x.field;
    EXPECT_EQ(bad.error().code(), errc::invalid_config)
      << to_string(bad.error());
    EXPECT_NE(bad.error().context().find(x.field), std::string::npos)
      << to_string(bad.error());
  }
  auto listed = a.buckets();
  ASSERT_TRUE(listed);
  for (auto& x : *listed) {
    EXPECT_NE(x.name, "bad-options");
  }
  // The longest name (its stream names are 255 bytes) works across nodes.
  const std::string longest(edge_proto::max_bucket_name, 'L');
  auto made = a.create_bucket(longest, opts);
  ASSERT_TRUE(made) << edge_show(made);
  EXPECT_TRUE(*made);
  wait_bucket({&a, &b, &c}, longest);
  wait_serving({&a, &b, &c}, longest);
  auto far = find_key(a, longest, "far-", [](const auto& o) {
    return !o.empty() && o.front() != "node-a";
  });
  ASSERT_TRUE(a.put(longest, far, edge_bytes("long")));
  for (auto* n : {&a, &b, &c}) {
    auto got = n->get(longest, far);
    ASSERT_TRUE(got) << n->name() << ": " << edge_show(got);
    ASSERT_TRUE(*got) << n->name();
    EXPECT_EQ(edge_text((*got)->value), "long");
  }
  // A drop reaches every node: the bucket is unknown everywhere.
  ASSERT_TRUE(a.create_bucket("gone"));
  wait_bucket({&a, &b, &c}, "gone");
  auto drop = c.drop_bucket("gone");
  ASSERT_TRUE(drop) << edge_show(drop);
  EXPECT_TRUE(*drop);
  auto drop_again = c.drop_bucket("gone");
  ASSERT_TRUE(drop_again) << edge_show(drop_again);
  EXPECT_FALSE(*drop_again);
  for (auto* n : {&a, &b, &c}) {
    std::string seen;
    ASSERT_TRUE(test::eventually(
      [&] {
        // Not a get while the drop travels: an operation in flight when
        // its bucket goes is never answered (see the DISABLED test below).
        auto l = n->buckets();
        seen = "buckets " + edge_show(l);
        return l && std::none_of(l->begin(), l->end(), [](const auto& x) {
                 return x.name == "gone";
               });
      },
      20s))
      << n->name() << " still knows the dropped bucket: " << seen;
    auto got = n->get("gone", "k");
    ASSERT_FALSE(got) << n->name() << " served a dropped bucket";
    EXPECT_EQ(got.error().code(), errc::unknown_bucket)
      << to_string(got.error());
  }
  // A node that joins later learns the registry, the drop included.
  auto& d = start("node-d", 4, &a);
  wait_bucket({&d}, "reg");
  wait_bucket({&d}, longest);
  auto d_list = d.buckets();
  ASSERT_TRUE(d_list);
  for (auto& x : *d_list) {
    EXPECT_NE(x.name, "gone") << "the late joiner revived a dropped bucket";
  }
  auto d_gone = d.get("gone", "k");
  ASSERT_FALSE(d_gone);
  EXPECT_EQ(d_gone.error().code(), errc::unknown_bucket);
  wait_members({&a, &b, &c, &d}, {"node-a", "node-b", "node-c", "node-d"});
  wait_serving({&a, &b, &c, &d}, "reg");
  // A dropped name can be created again, with other options.
  bucket_options again_opts;
  again_opts.partitions = 16;
  again_opts.rf = 1;
  auto recreated = d.create_bucket("gone", again_opts);
  ASSERT_TRUE(recreated) << edge_show(recreated);
  EXPECT_TRUE(*recreated);
  for (auto* n : {&a, &b, &c, &d}) {
    std::string seen;
    ASSERT_TRUE(test::eventually(
      [&] {
        auto l = n->buckets();
        if (!l) {
          return false;
        }
        for (auto& x : *l) {
          if (x.name == "gone") {
            seen = "rf " + std::to_string(x.options.rf) + ", "
                   + std::to_string(x.options.partitions) + " partitions";
            return x.options == again_opts;
          }
        }
        return false;
      },
      20s))
      << n->name() << " lists the re-created bucket as: " << seen;
  }
  wait_serving({&a, &b, &c, &d}, "gone");
}

// -- 3. limits ----------------------------------------------------------------

TEST_F(cache_edges, keys_and_values_above_the_limits_are_too_large) {
  // A 16 MiB value crosses loopback QUIC in seconds: long timeouts here, so
  // that this test checks the limits, not the throughput (printed).
  op_timeout_ = 20s;
  facade_timeout_ = 30s;
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("lim"));
  wait_bucket({&a, &b}, "lim");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "lim");
  const auto digits = size_t{8}; // of find_key
  for (const std::string primary : {"node-a", "node-b"}) {
    SCOPED_TRACE("primary " + primary + ", written from node-a");
    // A key of exactly the limit is stored and read everywhere.
    auto at_limit = find_key(a, "lim",
                             std::string(cache::max_key_size - digits, 'k'),
                             edge_primary_is(primary));
    ASSERT_EQ(at_limit.size(), cache::max_key_size);
    auto put = a.put("lim", at_limit, edge_bytes("key at the limit"));
    ASSERT_TRUE(put) << edge_show(put);
    for (auto* n : {&a, &b}) {
      auto got = n->get("lim", at_limit);
      ASSERT_TRUE(got) << n->name() << ": " << edge_show(got);
      ASSERT_TRUE(*got) << n->name();
      EXPECT_EQ(edge_text((*got)->value), "key at the limit");
    }
    // One byte more: too_large, from the store (primary here) or from the
    // codec of the primary (forwarded).
    auto over = find_key(a, "lim",
                         std::string(cache::max_key_size + 1 - digits, 'o'),
                         edge_primary_is(primary));
    ASSERT_EQ(over.size(), cache::max_key_size + 1);
    auto refused = a.put("lim", over, edge_bytes("v"));
    ASSERT_FALSE(refused) << "a key of " << over.size() << " bytes";
    EXPECT_EQ(refused.error().code(), errc::too_large)
      << to_string(refused.error());
    // A value one byte over the limit: too_large.
    auto vkey = find_key(a, "lim", "vmax-", edge_primary_is(primary));
    std::vector<std::byte> over_value(cache::max_value_size + 1,
                                      std::byte{'o'});
    auto t0 = edge_clock::now();
    auto too_big = a.put("lim", vkey, over_value);
    ASSERT_FALSE(too_big) << "a value of " << over_value.size() << " bytes";
    EXPECT_EQ(too_big.error().code(), errc::too_large)
      << to_string(too_big.error());
    EXPECT_LT(edge_clock::now() - t0, 5s);
    auto none = b.get("lim", vkey);
    ASSERT_TRUE(none) << edge_show(none);
    EXPECT_FALSE(*none) << "a refused value was stored";
  }
  // A value of exactly the limit, through the longest path: node-a
  // forwards it to its primary node-b, which replicates it to node-a;
  // node-a reads it from node-b.
  auto vkey = find_key(a, "lim", "vmax-", edge_primary_is("node-b"));
  std::vector<std::byte> big(cache::max_value_size);
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<std::byte>(i * 131 + 7);
  }
  auto t0 = edge_clock::now();
  auto put_big = a.put("lim", vkey, big);
  auto put_took = edge_clock::now() - t0;
  ASSERT_TRUE(put_big) << edge_show(put_big) << " after " << edge_secs(put_took)
                       << " s";
  for (auto* n : {&b, &a}) {
    auto t1 = edge_clock::now();
    auto got = n->get("lim", vkey);
    auto took = edge_clock::now() - t1;
    ASSERT_TRUE(got) << n->name() << ": " << edge_show(got);
    ASSERT_TRUE(*got) << n->name();
    EXPECT_EQ((*got)->value.size(), big.size()) << n->name();
    EXPECT_TRUE((*got)->value == big) << n->name() << " read other bytes";
    std::printf("get of a %zu-byte value on %s: %.3f s\n", big.size(),
                n->name().c_str(), edge_secs(took));
  }
  std::printf("put of a %zu-byte value forwarded and replicated: %.3f s\n",
              big.size(), edge_secs(put_took));
  // The bucket still serves small entries from both nodes; no frame was
  // malformed (an oversized key is refused by the codec as too_large).
  wait_serving({&a, &b}, "lim");
  EXPECT_EQ(stats(a, "lim").malformed, 0u);
}

// The documented limits (docs/cache.md, "Limits") are a key of 64 KiB and a
// value of 16 MiB - 1 KiB, each on its own. Both inside their limits, an
// entry must be stored everywhere, or refused everywhere: never acknowledged
// as failed while the primary keeps it.
//
// Regression: the store checked key and value apart, so a 1 KiB key with
// the largest value was stored at the primary but could never be
// replicated (the message limit is 16 MiB - 64); key and value together
// are now limited too.
TEST_F(cache_edges, a_key_and_a_value_within_their_limits_fit_together) {
  op_timeout_ = 20s;
  facade_timeout_ = 30s;
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("lim"));
  wait_bucket({&a, &b}, "lim");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "lim");
  std::vector<std::byte> big(cache::max_value_size, std::byte{'v'});
  for (const std::string primary : {"node-a", "node-b"}) {
    SCOPED_TRACE("primary " + primary + ", written from node-a");
    auto key = find_key(a, "lim", std::string(1024, 'k'),
                        edge_primary_is(primary));
    auto put = a.put("lim", key, big);
    std::vector<std::string> holders;
    for (auto* n : {&a, &b}) {
      auto got = n->get("lim", key);
      ASSERT_TRUE(got) << n->name() << ": " << edge_show(got);
      if (*got) {
        holders.push_back(n->name());
      }
    }
    std::string held;
    for (auto* n : {&a, &b}) {
      held += " " + n->name() + " holds "
              + std::to_string(stats(*n, "lim").bytes) + " bytes;";
    }
    if (put) {
      EXPECT_EQ(holders, (std::vector<std::string>{"node-a", "node-b"}))
        << "acknowledged, but served by " << edge_join(holders) << ";" << held;
    } else {
      EXPECT_TRUE(holders.empty())
        << "refused (" << to_string(put.error()) << "), yet served by "
        << edge_join(holders) << ";" << held;
    }
  }
}

// -- 4. full buckets ----------------------------------------------------------

TEST_F(cache_edges, a_full_bucket_evicts_the_least_recent_and_refuses_giants) {
  auto& a = start("node-a", 1, nullptr);
  // max_entries: the least recently used entry goes (a read counts).
  bucket_options lru;
  lru.rf = 1;
  lru.partitions = 8;
  lru.max_entries = 3;
  ASSERT_TRUE(a.create_bucket("lru", lru));
  wait_bucket({&a}, "lru");
  for (const auto* k : {"k1", "k2", "k3"}) {
    ASSERT_TRUE(a.put("lru", k, edge_bytes(k)));
  }
  ASSERT_TRUE(a.get("lru", "k1")); // k2 is now the least recent
  ASSERT_TRUE(a.put("lru", "k4", edge_bytes("k4")));
  std::map<std::string, bool> present;
  for (const auto* k : {"k1", "k2", "k3", "k4"}) {
    auto got = a.get("lru", k);
    ASSERT_TRUE(got) << edge_show(got);
    present[k] = got->has_value();
  }
  EXPECT_TRUE(present["k1"]);
  EXPECT_FALSE(present["k2"]) << "the least recently used entry stayed";
  EXPECT_TRUE(present["k3"]);
  EXPECT_TRUE(present["k4"]);
  auto s = stats(a, "lru");
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.evictions, 1u);
  // max_bytes: room for two entries of a 1-byte key and a 10-byte value.
  const auto cost = cache::entry_overhead() + 1 + 10;
  bucket_options tiny;
  tiny.rf = 1;
  tiny.partitions = 8;
  tiny.max_bytes = 2 * cost;
  ASSERT_TRUE(a.create_bucket("tiny", tiny));
  wait_bucket({&a}, "tiny");
  for (const auto* k : {"a", "b", "c"}) {
    auto put = a.put("tiny", k, edge_bytes("0123456789"));
    ASSERT_TRUE(put) << k << ": " << edge_show(put);
  }
  auto t = stats(a, "tiny");
  EXPECT_EQ(t.entries, 2u);
  EXPECT_EQ(t.evictions, 1u);
  EXPECT_LE(t.bytes, tiny.max_bytes);
  auto gone = a.get("tiny", "a");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone) << "the first entry was not evicted";
  // An entry larger than max_bytes on its own is refused with too_large
  // (docs/cache.md, "Eviction"), and evicts nothing.
  auto giant = a.put("tiny", "d", std::vector<std::byte>(2 * cost));
  ASSERT_FALSE(giant) << "an entry above max_bytes was stored";
  EXPECT_EQ(giant.error().code(), errc::too_large) << to_string(giant.error());
  EXPECT_NE(giant.error().context().find("exceeds the bucket"),
            std::string::npos)
    << to_string(giant.error());
  auto after = stats(a, "tiny");
  EXPECT_EQ(after.entries, 2u);
  EXPECT_EQ(after.evictions, 1u);
  for (const auto* k : {"b", "c"}) {
    auto got = a.get("tiny", k);
    ASSERT_TRUE(got);
    EXPECT_TRUE(*got) << k << " went for an entry that was refused";
  }
  auto missing = a.get("tiny", "d");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
  // max_bytes below one entry's bookkeeping: every write is refused, also
  // incr (it writes a value too).
  bucket_options none;
  none.rf = 1;
  none.partitions = 8;
  none.max_bytes = 1;
  ASSERT_TRUE(a.create_bucket("none", none));
  wait_bucket({&a}, "none");
  auto refused = a.put("none", "x", {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::too_large);
  auto incr = a.incr("none", "n");
  ASSERT_FALSE(incr) << "incr stored " << *incr;
  EXPECT_EQ(incr.error().code(), errc::too_large);
  EXPECT_EQ(stats(a, "none").entries, 0u);
  // The full bucket still takes entries that fit.
  ASSERT_TRUE(a.put("tiny", "e", edge_bytes("0123456789")));
  auto e = a.get("tiny", "e");
  ASSERT_TRUE(e);
  EXPECT_TRUE(*e);
}

// -- 5. missing keys and conditions -------------------------------------------

TEST_F(cache_edges, missing_keys_and_conditional_writes) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("m"));
  wait_bucket({&a, &b}, "m");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "m");
  for (const std::string primary : {"node-a", "node-b"}) {
    SCOPED_TRACE("primary " + primary + ", asked from node-a");
    auto key = find_key(a, "m", "absent-", edge_primary_is(primary));
    auto got = a.get("m", key);
    ASSERT_TRUE(got) << edge_show(got);
    EXPECT_FALSE(*got);
    auto del = a.del("m", key);
    ASSERT_TRUE(del) << edge_show(del);
    EXPECT_FALSE(*del);
    auto exp = a.expire("m", key, 10s);
    ASSERT_TRUE(exp) << edge_show(exp);
    EXPECT_FALSE(*exp);
    auto per = a.persist("m", key);
    ASSERT_TRUE(per) << edge_show(per);
    EXPECT_FALSE(*per);
    auto at = a.expires_at("m", key);
    ASSERT_TRUE(at) << edge_show(at);
    EXPECT_FALSE(*at);
    auto typed = a.get_as<std::string>("m", key);
    ASSERT_TRUE(typed) << edge_show(typed);
    EXPECT_FALSE(*typed);
    // only_if_present on a missing key writes nothing.
    put_options xx;
    xx.only_if_present = true;
    auto xx_put = a.put("m", key, edge_bytes("xx"), xx);
    ASSERT_TRUE(xx_put) << edge_show(xx_put);
    EXPECT_FALSE(*xx_put);
    auto still = b.get("m", key);
    ASSERT_TRUE(still);
    EXPECT_FALSE(*still);
    // only_if_absent writes once.
    put_options nx;
    nx.only_if_absent = true;
    auto nx_put = a.put("m", key, edge_bytes("first"), nx);
    ASSERT_TRUE(nx_put) << edge_show(nx_put);
    EXPECT_TRUE(*nx_put);
    auto nx_again = b.put("m", key, edge_bytes("second"), nx);
    ASSERT_TRUE(nx_again) << edge_show(nx_again);
    EXPECT_FALSE(*nx_again);
    auto first = b.get("m", key);
    ASSERT_TRUE(first);
    ASSERT_TRUE(*first);
    EXPECT_EQ(edge_text((*first)->value), "first");
    auto xx_again = b.put("m", key, edge_bytes("third"), xx);
    ASSERT_TRUE(xx_again);
    EXPECT_TRUE(*xx_again);
    auto third = a.get("m", key);
    ASSERT_TRUE(third);
    ASSERT_TRUE(*third);
    EXPECT_EQ(edge_text((*third)->value), "third");
    // Deleted: gone, and a second delete finds nothing.
    auto del1 = b.del("m", key);
    ASSERT_TRUE(del1);
    EXPECT_TRUE(*del1);
    auto del2 = a.del("m", key);
    ASSERT_TRUE(del2);
    EXPECT_FALSE(*del2);
    auto after = a.get("m", key);
    ASSERT_TRUE(after);
    EXPECT_FALSE(*after);
    // incr: an absent key counts as 0; not an integer, or an overflow, is
    // wrong_type and changes nothing.
    auto ctr = find_key(a, "m", "ctr-", edge_primary_is(primary));
    auto five = a.incr("m", ctr, 5);
    ASSERT_TRUE(five) << edge_show(five);
    EXPECT_EQ(*five, 5);
    auto minus = b.incr("m", ctr, -7);
    ASSERT_TRUE(minus);
    EXPECT_EQ(*minus, -2);
    ASSERT_TRUE(a.put("m", ctr, edge_bytes("12abc")));
    auto not_int = a.incr("m", ctr);
    ASSERT_FALSE(not_int) << "incr of 12abc gave " << *not_int;
    EXPECT_EQ(not_int.error().code(), errc::wrong_type);
    ASSERT_TRUE(
      a.put("m", ctr,
            edge_bytes(std::to_string(std::numeric_limits<int64_t>::max()))));
    auto overflow = a.incr("m", ctr);
    ASSERT_FALSE(overflow) << "incr of INT64_MAX gave " << *overflow;
    EXPECT_EQ(overflow.error().code(), errc::wrong_type);
    auto kept = b.get("m", ctr);
    ASSERT_TRUE(kept);
    ASSERT_TRUE(*kept);
    EXPECT_EQ(edge_text((*kept)->value),
              std::to_string(std::numeric_limits<int64_t>::max()));
  }
  // Contradicting put options are refused before anything is sent.
  put_options both;
  both.only_if_absent = true;
  both.only_if_present = true;
  auto r1 = a.put("m", "k", edge_bytes("v"), both);
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().code(), errc::invalid_config);
  put_options keep;
  keep.keep_ttl = true;
  keep.ttl = 1s;
  auto r2 = a.put("m", "k", edge_bytes("v"), keep);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code(), errc::invalid_config);
  put_options negative;
  negative.ttl = -1s;
  auto r3 = a.put("m", "k", edge_bytes("v"), negative);
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().code(), errc::invalid_config);
  auto none = a.get("m", "k");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

// -- 6. TTLs ------------------------------------------------------------------

TEST_F(cache_edges, ttls_expire_persist_and_report_their_deadline) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("ttl"));
  wait_bucket({&a, &b}, "ttl");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "ttl");
  constexpr auto ttl = 1500ms;
  constexpr int64_t ttl_ms = 1500;
  auto kept = find_key(a, "ttl", "kept-", edge_primary_is("node-b"));
  auto lapsed = find_key(a, "ttl", "lapsed-", edge_primary_is("node-b"));
  auto local = find_key(a, "ttl", "local-", edge_primary_is("node-a"));
  auto later = find_key(a, "ttl", "later-", edge_primary_is("node-b"));
  put_options with_ttl;
  with_ttl.ttl = ttl;
  // `kept` first: its deadline is before that of `lapsed`.
  auto before = edge_unix_ms();
  ASSERT_TRUE(a.put("ttl", kept, edge_bytes("kept"), with_ttl));
  auto lapsed_from = edge_unix_ms();
  ASSERT_TRUE(a.put("ttl", lapsed, edge_bytes("lapsed"), with_ttl));
  ASSERT_TRUE(a.put("ttl", local, edge_bytes("local"), with_ttl));
  auto after = edge_unix_ms();
  // expires_at reports the deadline on every node, and get carries it.
  for (auto* n : {&a, &b}) {
    auto at = n->expires_at("ttl", lapsed);
    ASSERT_TRUE(at) << edge_show(at);
    if (!*at) {
      // Only acceptable once the TTL passed (a very slow machine).
      EXPECT_GE(edge_unix_ms(), lapsed_from + ttl_ms)
        << n->name() << " lost a key before its TTL";
      continue;
    }
    EXPECT_GE(**at, lapsed_from + ttl_ms) << n->name();
    EXPECT_LE(**at, after + ttl_ms) << n->name();
    auto got = n->get("ttl", lapsed);
    ASSERT_TRUE(got);
    if (*got) {
      EXPECT_EQ((*got)->expires_ms, **at);
    }
  }
  // persist removes the TTL; expire sets one on a key without.
  auto per = b.persist("ttl", kept);
  ASSERT_TRUE(per) << edge_show(per);
  ASSERT_TRUE(*per) << "persist found no key (TTL passed already?)";
  auto none = a.expires_at("ttl", kept);
  ASSERT_TRUE(none);
  ASSERT_TRUE(*none);
  EXPECT_EQ(**none, 0) << "persist left a deadline";
  ASSERT_TRUE(a.put("ttl", later, edge_bytes("later")));
  auto no_deadline = a.expires_at("ttl", later);
  ASSERT_TRUE(no_deadline);
  ASSERT_TRUE(*no_deadline);
  EXPECT_EQ(**no_deadline, 0);
  auto set_from = edge_unix_ms();
  auto exp = a.expire("ttl", later, ttl);
  ASSERT_TRUE(exp) << edge_show(exp);
  EXPECT_TRUE(*exp);
  auto deadline = b.expires_at("ttl", later);
  ASSERT_TRUE(deadline);
  ASSERT_TRUE(*deadline);
  EXPECT_GE(**deadline, set_from + ttl_ms);
  EXPECT_LE(**deadline, edge_unix_ms() + ttl_ms);
  // The keys with a TTL go, on every node; the persisted one stays.
  for (const auto& k : {lapsed, local, later}) {
    for (auto* n : {&a, &b}) {
      std::string seen;
      ASSERT_TRUE(test::eventually(
        [&] {
          auto got = n->get("ttl", k);
          seen = edge_show(got);
          return got && !*got;
        },
        10s))
        << k << " still on " << n->name() << " " << edge_unix_ms() - before
        << " ms after its put with a " << ttl_ms << " ms TTL: " << seen;
    }
  }
  EXPECT_GE(edge_unix_ms(), lapsed_from + ttl_ms) << "expired early";
  for (auto* n : {&a, &b}) {
    auto got = n->get("ttl", kept);
    ASSERT_TRUE(got) << edge_show(got);
    ASSERT_TRUE(*got) << "the persisted key expired on " << n->name();
    EXPECT_EQ((*got)->expires_ms, 0);
  }
  // Active expiry takes them out of memory (not only out of reads).
  for (auto* n : {&a, &b}) {
    ASSERT_TRUE(test::eventually(
      [&] {
        return stats(*n, "ttl").expirations >= 1;
      },
      10s))
      << n->name() << " counted no expiry";
  }
  // An expiry at or before now deletes.
  auto now_del = a.expire("ttl", kept, 0s);
  ASSERT_TRUE(now_del);
  EXPECT_TRUE(*now_del);
  auto deleted = b.get("ttl", kept);
  ASSERT_TRUE(deleted);
  EXPECT_FALSE(*deleted);
  // A bucket's default TTL applies to a put that names none.
  bucket_options dttl;
  dttl.default_ttl_ms = 60'000;
  ASSERT_TRUE(a.create_bucket("dttl", dttl));
  wait_bucket({&a, &b}, "dttl");
  wait_serving({&a, &b}, "dttl");
  auto from = edge_unix_ms();
  ASSERT_TRUE(b.put("dttl", "k", edge_bytes("v")));
  auto dat = a.expires_at("dttl", "k");
  ASSERT_TRUE(dat);
  ASSERT_TRUE(*dat);
  // The bucket takes "now" from its actor clock, offset at its start and
  // truncated to milliseconds (bucket.cpp, wall_now): up to a few ms behind
  // the system clock the facade reads.
  EXPECT_GE(**dat, from + 60'000 - 5);
  EXPECT_LE(**dat, edge_unix_ms() + 60'000);
  // keep_ttl keeps it across a new value.
  put_options keep;
  keep.keep_ttl = true;
  ASSERT_TRUE(a.put("dttl", "k", edge_bytes("w"), keep));
  auto kept_at = b.expires_at("dttl", "k");
  ASSERT_TRUE(kept_at);
  ASSERT_TRUE(*kept_at);
  EXPECT_EQ(**kept_at, **dat);
}

// node.hpp: persist "Removes the key's expiry: whether the key existed and
// had one" (Redis's PERSIST answers 0 for a key without a TTL).
//
// Regression: persist answered true, and wrote a new version, for any
// present key.
TEST_F(cache_edges, persist_of_a_key_without_a_ttl_returns_false) {
  auto& a = start("node-a", 1, nullptr);
  ASSERT_TRUE(a.create_bucket("p"));
  wait_bucket({&a}, "p");
  ASSERT_TRUE(a.put("p", "k", edge_bytes("v")));
  auto before = a.get("p", "k");
  ASSERT_TRUE(before);
  ASSERT_TRUE(*before);
  auto per = a.persist("p", "k");
  ASSERT_TRUE(per) << edge_show(per);
  EXPECT_FALSE(*per) << "persist of a key without a TTL answered true";
  auto after = a.get("p", "k");
  ASSERT_TRUE(after);
  ASSERT_TRUE(*after);
  EXPECT_EQ((*after)->ver, (*before)->ver)
    << "persist of a key without a TTL wrote a new version";
}

// -- 7. batches, scans and keys -----------------------------------------------

TEST_F(cache_edges, batches_and_scans_cover_every_key_across_three_nodes) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  bucket_options opts;
  opts.partitions = 61;
  ASSERT_TRUE(a.create_bucket("many", opts));
  wait_bucket({&a, &b, &c}, "many");
  wait_members({&a, &b, &c}, {"node-a", "node-b", "node-c"});
  wait_serving({&a, &b, &c}, "many");
  std::vector<std::pair<std::string, std::vector<std::byte>>> pairs;
  std::vector<std::string> written;
  for (int i = 0; i < 120; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "key-%03d", i);
    pairs.emplace_back(key, edge_bytes("val-" + std::to_string(i)));
    written.emplace_back(key);
  }
  auto put = a.put_many("many", pairs);
  ASSERT_TRUE(put) << edge_show(put);
  auto no_probes = [](std::vector<std::string> ks) {
    ks.erase(std::remove_if(ks.begin(), ks.end(),
                            [](const std::string& k) {
                              return k.rfind("probe-", 0) == 0;
                            }),
             ks.end());
    std::sort(ks.begin(), ks.end());
    return ks;
  };
  // keys() on the other nodes lists every key once.
  for (auto* n : {&b, &c}) {
    auto ks = n->keys("many");
    ASSERT_TRUE(ks) << n->name() << ": " << edge_show(ks);
    auto listed = no_probes(*ks);
    EXPECT_EQ(listed, written) << n->name() << " lists " << listed.size()
                               << " of " << written.size() << " keys";
  }
  // get_many keeps the order, with nothing for a missing key.
  std::vector<std::string> asked = written;
  asked.insert(asked.begin() + 60, "missing");
  auto many = c.get_many("many", asked);
  ASSERT_TRUE(many) << edge_show(many);
  ASSERT_EQ(many->size(), asked.size());
  for (size_t i = 0; i < asked.size(); ++i) {
    if (i == 60) {
      EXPECT_FALSE((*many)[i]) << "a value for a missing key";
      continue;
    }
    auto idx = i < 60 ? i : i - 1;
    ASSERT_TRUE((*many)[i]) << asked[i] << " missing";
    EXPECT_EQ(edge_text((*many)[i]->value), "val-" + std::to_string(idx));
  }
  // Empty batches are fine.
  auto empty_get = b.get_many("many", {});
  ASSERT_TRUE(empty_get) << edge_show(empty_get);
  EXPECT_TRUE(empty_get->empty());
  auto empty_put = b.put_many("many", {});
  EXPECT_TRUE(empty_put) << edge_show(empty_put);
  // A scan step by step (count 0 and 1) visits each partition once and
  // finds the same keys; past the end it is done at once.
  for (uint32_t count : {0u, 1u, 1000u}) {
    std::vector<std::string> scanned;
    uint32_t cursor = 0;
    int steps = 0;
    while (cursor < opts.partitions) {
      auto step = b.scan("many", cursor, count);
      ASSERT_TRUE(step) << "cursor " << cursor << ": " << edge_show(step);
      ASSERT_GT(step->next, cursor) << "a scan step did not move on";
      ASSERT_LE(step->next, opts.partitions);
      scanned.insert(scanned.end(), step->keys.begin(), step->keys.end());
      cursor = step->next;
      ++steps;
    }
    EXPECT_EQ(no_probes(scanned), written) << "count " << count;
    if (count == 0) {
      EXPECT_EQ(steps, static_cast<int>(opts.partitions));
    }
  }
  for (uint32_t past : {opts.partitions, opts.partitions + 1, 1000000u}) {
    auto end = c.scan("many", past, 10);
    ASSERT_TRUE(end) << edge_show(end);
    EXPECT_TRUE(end->keys.empty());
    EXPECT_EQ(end->next, opts.partitions);
  }
  // put_many's first error names its key; the others are stored.
  auto bad_key = std::string(cache::max_key_size + 1, 'x');
  std::vector<std::pair<std::string, std::vector<std::byte>>> mixed{
    {"fine-1", edge_bytes("1")},
    {bad_key, edge_bytes("2")},
    {"fine-2", edge_bytes("3")}};
  auto mixed_put = c.put_many("many", mixed);
  ASSERT_FALSE(mixed_put);
  EXPECT_EQ(mixed_put.error().code(), errc::too_large)
    << to_string(mixed_put.error());
  EXPECT_NE(mixed_put.error().context().find("xxxxxxxx"), std::string::npos)
    << "the error does not name its key";
  auto fine = a.get_many("many", {"fine-1", "fine-2"});
  ASSERT_TRUE(fine) << edge_show(fine);
  EXPECT_TRUE((*fine)[0]);
  EXPECT_TRUE((*fine)[1]);
}

// -- 8. typed values ----------------------------------------------------------

TEST_F(cache_edges, typed_values_round_trip_and_other_types_are_wrong_type) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("typed"));
  wait_bucket({&a, &b}, "typed");
  wait_serving({&a, &b}, "typed");
  const std::string s = "hello, typed world";
  const std::vector<int32_t> v{1, -2, 3, std::numeric_limits<int32_t>::min()};
  const std::map<std::string, int64_t> m{{"one", 1}, {"big", int64_t{1} << 40}};
  const int64_t i = -1234567890123;
  auto p1 = a.put_as("typed", "s", s);
  ASSERT_TRUE(p1) << edge_show(p1);
  EXPECT_TRUE(*p1);
  ASSERT_TRUE(a.put_as("typed", "v", v));
  ASSERT_TRUE(a.put_as("typed", "m", m));
  ASSERT_TRUE(a.put_as("typed", "i", i));
  ASSERT_TRUE(a.put_as("typed", "empty", std::string{}));
  // Read back on the other node.
  auto gs = b.get_as<std::string>("typed", "s");
  ASSERT_TRUE(gs) << edge_show(gs);
  ASSERT_TRUE(*gs);
  EXPECT_EQ(**gs, s);
  auto gv = b.get_as<std::vector<int32_t>>("typed", "v");
  ASSERT_TRUE(gv) << edge_show(gv);
  ASSERT_TRUE(*gv);
  EXPECT_EQ(**gv, v);
  auto gm = b.get_as<std::map<std::string, int64_t>>("typed", "m");
  ASSERT_TRUE(gm) << edge_show(gm);
  ASSERT_TRUE(*gm);
  EXPECT_EQ(**gm, m);
  auto gi = b.get_as<int64_t>("typed", "i");
  ASSERT_TRUE(gi) << edge_show(gi);
  ASSERT_TRUE(*gi);
  EXPECT_EQ(**gi, i);
  auto ge = b.get_as<std::string>("typed", "empty");
  ASSERT_TRUE(ge) << edge_show(ge);
  ASSERT_TRUE(*ge);
  EXPECT_EQ(**ge, "");
  // Bytes that are no value of the asked type: wrong_type.
  ASSERT_TRUE(a.put("typed", "raw", edge_bytes("hello")));
  auto wrong = [&](const auto& r, const char* what) {
    ASSERT_FALSE(r) << what << " decoded";
    EXPECT_EQ(r.error().code(), errc::wrong_type)
      << what << ": " << to_string(r.error());
  };
  wrong(b.get_as<std::vector<int32_t>>("typed", "s"), "a string as vector");
  wrong(b.get_as<std::string>("typed", "v"), "a vector as string");
  wrong(b.get_as<int32_t>("typed", "i"), "an int64 as int32");
  wrong(b.get_as<int64_t>("typed", "s"), "a string as int64");
  wrong(b.get_as<std::string>("typed", "raw"), "raw bytes as string");
  wrong(b.get_as<std::map<std::string, int64_t>>("typed", "v"),
        "a vector as map");
  // A typed put takes the put options.
  put_options nx;
  nx.only_if_absent = true;
  auto again = a.put_as("typed", "s", std::string{"other"}, nx);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto same = b.get_as<std::string>("typed", "s");
  ASSERT_TRUE(same);
  ASSERT_TRUE(*same);
  EXPECT_EQ(**same, s);
}

// -- 9. bucket handles --------------------------------------------------------

TEST_F(cache_edges,
       a_bucket_handle_serves_actor_code_and_ends_with_its_bucket) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("h"));
  wait_bucket({&a, &b}, "h");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "h");
  auto remote_key = find_key(a, "h", "remote-", edge_primary_is("node-b"));
  auto local_key = find_key(a, "h", "local-", edge_primary_is("node-a"));
  ASSERT_TRUE(b.put("h", remote_key, edge_bytes("b wrote remote")));
  ASSERT_TRUE(b.put("h", local_key, edge_bytes("b wrote local")));
  // The facade's handle and the cache actor's are the bucket's actor.
  auto handle = a.bucket("h");
  ASSERT_TRUE(handle) << edge_show(handle);
  auto via_cache = ask<bucket_handle>(a, bucket_atom::value, std::string{"h"});
  ASSERT_TRUE(via_cache) << edge_show(via_cache);
  EXPECT_EQ(handle->address(), via_cache->address());
  auto h = *handle;
  // Actor code: an event-based actor asks the handle, with no bucket name.
  auto from_actor = [&](edge_proto::op_code code, const std::string& key,
                        const std::string& value = {}) {
    using result = expected<edge_proto::op_reply>;
    auto done = std::make_shared<std::promise<result>>();
    auto fut = done->get_future();
    auto x = edge_cache_op(code, "", key, value);
    sys_->spawn([h, x, done](caf::event_based_actor* self) {
      self->request(h, 10s, x).then(
        [done](edge_proto::op_reply& r) {
          done->set_value(std::move(r));
        },
        [done](caf::error& e) {
          done->set_value(unexpected{from_caf_error(e)});
        });
    });
    if (fut.wait_for(15s) != std::future_status::ready) {
      return result{unexpected{error{errc::timeout, "the handle hung"}}};
    }
    return fut.get();
  };
  for (const auto& [key, want] :
       std::vector<std::pair<std::string, std::string>>{
         {remote_key, "b wrote remote"}, {local_key, "b wrote local"}}) {
    auto got = from_actor(edge_proto::op_code::get, key);
    ASSERT_TRUE(got) << key << ": " << edge_show(got);
    ASSERT_TRUE(got->found) << key;
    EXPECT_EQ(edge_text(got->value), want);
  }
  auto put = from_actor(edge_proto::op_code::put, remote_key, "via handle");
  ASSERT_TRUE(put) << edge_show(put);
  auto seen = b.get("h", remote_key);
  ASSERT_TRUE(seen);
  ASSERT_TRUE(*seen);
  EXPECT_EQ(edge_text((*seen)->value), "via handle");
  auto missing = from_actor(edge_proto::op_code::get, "absent");
  ASSERT_TRUE(missing) << edge_show(missing);
  EXPECT_FALSE(missing->found);
  // Its other messages: stats, owners, scan.
  caf::scoped_actor asker{*sys_};
  asker->request(h, 10s, stats_atom::value)
    .receive(
      [&](bucket_stats& s) {
        EXPECT_EQ(s.name, "h");
        EXPECT_GT(s.partitions_owned, 0u);
      },
      [&](caf::error& e) {
        ADD_FAILURE() << "stats: " << to_string(from_caf_error(e));
      });
  auto owners = a.owners("h", remote_key);
  ASSERT_TRUE(owners);
  asker->request(h, 10s, owners_atom::value, remote_key)
    .receive(
      [&](std::vector<std::string>& o) {
        EXPECT_EQ(o, *owners);
      },
      [&](caf::error& e) {
        ADD_FAILURE() << "owners: " << to_string(from_caf_error(e));
      });
  asker->request(h, 10s, scan_atom::value, uint32_t{1000000}, uint32_t{10})
    .receive(
      [&](edge_proto::scan_reply& r) {
        EXPECT_TRUE(r.keys.empty());
        EXPECT_EQ(r.next, bucket_options{}.partitions);
      },
      [&](caf::error& e) {
        ADD_FAILURE() << "scan: " << to_string(from_caf_error(e));
      });
  // node-b drops the bucket: the handle on node-a goes down.
  caf::scoped_actor mon{*sys_};
  mon->monitor(h);
  auto dropped = b.drop_bucket("h");
  ASSERT_TRUE(dropped) << edge_show(dropped);
  EXPECT_TRUE(*dropped);
  auto t0 = edge_clock::now();
  std::optional<caf::down_msg> down;
  mon->receive(
    [&](caf::down_msg& d) {
      down = std::move(d);
    },
    caf::after(20s) >> [] {});
  ASSERT_TRUE(down) << "the handle still runs 20 s after the drop";
  EXPECT_EQ(down->source, h.address());
  std::printf("the handle went down %.3f s after the drop\n",
              edge_secs(edge_clock::now() - t0));
  // Requests to it fail at once (request_receiver_down), never hang.
  auto t1 = edge_clock::now();
  auto after = from_actor(edge_proto::op_code::get, remote_key);
  ASSERT_FALSE(after) << "a dropped bucket's handle answered";
  EXPECT_EQ(after.error().code(), errc::node_down) << to_string(after.error());
  EXPECT_LT(edge_clock::now() - t1, 5s); // the request timeout is 10 s
  auto gone = a.bucket("h");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), errc::unknown_bucket);
}

// An operation the bucket took must be answered also when the bucket goes
// away under it, as requests to the ended handle are (at once, with an
// error): never left to the caller's own timeout. Regression: the bucket
// actor ended with its callers' promises undelivered (CAF 0.17 sends no
// error for them), so a put waiting for a replica's acknowledgement waited
// for the facade's 10 s.
TEST_F(cache_edges, an_operation_in_flight_when_its_bucket_is_dropped_ends) {
  auto filter = std::make_shared<net::udp_filter>();
  auto cfg_a = config("node-a", 1, nullptr);
  cfg_a.quic_filter = filter;
  auto& a = start(std::move(cfg_a));
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("d"));
  wait_bucket({&a, &b}, "d");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "d");
  // A put at its primary node-a waits for node-b's acknowledgement, which
  // node-a's filter drops.
  auto key = find_key(a, "d", "inflight-", edge_primary_is("node-a"));
  auto entries = stats(a, "d").entries;
  filter->block(b.quic_endpoint());
  edge_proto::op_request op;
  op.op = edge_proto::op_code::put;
  op.key = key;
  op.value = edge_bytes("v");
  auto t0 = edge_clock::now();
  auto fut = a.execute_async("d", op);
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(a, "d").entries > entries;
    },
    5s))
    << "the put did not reach node-a's bucket";
  auto dropped = a.drop_bucket("d");
  ASSERT_TRUE(dropped) << edge_show(dropped);
  EXPECT_TRUE(*dropped);
  const auto bound = edge_op_timeout + 1s;
  auto status = fut.wait_until(t0 + bound);
  auto r = fut.get();
  auto took = edge_clock::now() - t0;
  std::printf("the put in flight during the drop ended after %.3f s: %s\n",
              edge_secs(took), edge_show(r).c_str());
  EXPECT_EQ(status, std::future_status::ready)
    << "the put was still pending " << edge_secs(bound)
    << " s after it began; it ended after " << edge_secs(took)
    << " s with: " << edge_show(r);
  filter->unblock(b.quic_endpoint());
}

/// Sends `batch` to `h` from an event-based actor (no timeout of its
/// own): the future holds the answer or the error.
std::future<expected<cache_op_batch_reply>>
edge_ask_batch(caf::actor_system& sys, const bucket_handle& h,
               const cache_op_batch& batch) {
  using result = expected<cache_op_batch_reply>;
  auto done = std::make_shared<std::promise<result>>();
  auto fut = done->get_future();
  sys.spawn([h, batch, done](caf::event_based_actor* self) {
    self->request(h, caf::infinite, batch)
      .then(
        [done](cache_op_batch_reply& r) {
          done->set_value(std::move(r));
        },
        [done](caf::error& e) {
          done->set_value(unexpected{from_caf_error(e)});
        });
  });
  return fut;
}

// A batch (cache_op_batch, what the Redis front door sends for a
// pipeline) runs its operations in order, each as its own cache_op would,
// and answers each: one that fails has its error in its reply and does not
// fail the others.
TEST_F(cache_edges, a_batch_through_a_handle_answers_each_operation_in_order) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("bt"));
  wait_bucket({&a, &b}, "bt");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "bt");
  auto remote_key = find_key(a, "bt", "remote-", edge_primary_is("node-b"));
  auto local_key = find_key(a, "bt", "local-", edge_primary_is("node-a"));
  ASSERT_TRUE(b.put("bt", local_key, edge_bytes("b wrote local")));
  auto handle = a.bucket("bt");
  ASSERT_TRUE(handle) << edge_show(handle);
  auto h = *handle;
  auto run = [&](const cache_op_batch& batch) {
    auto fut = edge_ask_batch(*sys_, h, batch);
    if (fut.wait_for(15s) != std::future_status::ready) {
      return expected<cache_op_batch_reply>{
        unexpected{error{errc::timeout, "the handle hung"}}};
    }
    return fut.get();
  };
  auto op = [](edge_proto::op_code code, std::string key,
               std::string value = {}) {
    // The bucket name is the handle's: left empty on purpose.
    return edge_cache_op(code, "", std::move(key), std::move(value)).op;
  };
  std::string too_long(cache::max_key_size + 1, 'x');
  cache_op_batch batch;
  batch.ops = std::make_shared<std::vector<edge_proto::op_request>>(
    std::vector<edge_proto::op_request>{
      op(edge_proto::op_code::put, remote_key, "one"),
      op(edge_proto::op_code::get, remote_key),
      op(edge_proto::op_code::put, too_long, "refused"),
      op(edge_proto::op_code::put, remote_key, "two"),
      op(edge_proto::op_code::get, remote_key),
      op(edge_proto::op_code::get, local_key),
      op(edge_proto::op_code::get, "absent"),
    });
  // Every operation of a batch is timed (by the batch: from its start to
  // its answer).
  auto timed = [&](edge_proto::op_code code) -> uint64_t {
    for (const auto& [c, hist] : stats(a, "bt").op_latency) {
      if (c == code) {
        return hist.count();
      }
    }
    return 0;
  };
  auto gets_before = timed(edge_proto::op_code::get);
  auto puts_before = timed(edge_proto::op_code::put);
  auto got = run(batch);
  ASSERT_TRUE(got) << edge_show(got);
  auto& r = got->replies;
  ASSERT_EQ(r.size(), batch.ops->size());
  EXPECT_EQ(timed(edge_proto::op_code::get) - gets_before, 4u);
  EXPECT_EQ(timed(edge_proto::op_code::put) - puts_before, 3u);
  auto status = [&](size_t i) {
    return std::string{to_string(r[i].status)} + " " + r[i].message;
  };
  EXPECT_EQ(r[0].status, errc::none) << status(0);
  EXPECT_EQ(r[1].status, errc::none) << status(1);
  EXPECT_TRUE(r[1].found);
  EXPECT_EQ(edge_text(r[1].value), "one") << "a get saw its batch's put";
  EXPECT_EQ(r[2].status, errc::too_large) << status(2);
  EXPECT_EQ(r[3].status, errc::none) << status(3);
  EXPECT_EQ(edge_text(r[4].value), "two") << "a later put of the batch";
  EXPECT_TRUE(r[5].found);
  EXPECT_EQ(edge_text(r[5].value), "b wrote local");
  EXPECT_EQ(r[6].status, errc::none) << status(6);
  EXPECT_FALSE(r[6].found);
  auto seen = b.get("bt", remote_key);
  ASSERT_TRUE(seen);
  ASSERT_TRUE(*seen);
  EXPECT_EQ(edge_text((*seen)->value), "two");
  // An empty batch: an empty answer.
  auto empty = run(cache_op_batch{});
  ASSERT_TRUE(empty) << edge_show(empty);
  EXPECT_TRUE(empty->replies.empty());
  // The bucket dropped: a batch to its handle fails at once, never hangs.
  ASSERT_TRUE(b.drop_bucket("bt"));
  caf::scoped_actor mon{*sys_};
  mon->monitor(h);
  bool down = false;
  mon->receive(
    [&](caf::down_msg&) {
      down = true;
    },
    caf::after(20s) >> [] {});
  ASSERT_TRUE(down) << "the handle still runs 20 s after the drop";
  auto t0 = edge_clock::now();
  auto after = run(batch);
  ASSERT_FALSE(after) << "a dropped bucket's handle answered a batch";
  EXPECT_LT(edge_clock::now() - t0, 5s) << to_string(after.error());
}

// A round travels as one message per owner: the operations of a batch that
// one owner runs go to it in one op_batch, and what a primary replicates
// in a round leaves in one replicas message per other owner; each
// operation is still answered on its own, every copy holds its write, and
// an operation above a round's message budget travels alone.
TEST_F(cache_edges, a_round_travels_as_one_message_per_owner) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("rd")); // RF 2: both nodes hold every key
  wait_bucket({&a, &b}, "rd");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "rd");
  constexpr size_t n = 12;
  std::vector<edge_proto::op_request> ops;
  for (size_t i = 0; i < n; ++i) {
    auto at_b = find_key(a, "rd", "b" + std::to_string(i) + "-",
                         edge_primary_is("node-b"));
    auto at_a = find_key(a, "rd", "a" + std::to_string(i) + "-",
                         edge_primary_is("node-a"));
    ops.push_back(
      edge_cache_op(edge_proto::op_code::put, "", at_b, "forwarded").op);
    ops.push_back(
      edge_cache_op(edge_proto::op_code::put, "", at_a, "replicated").op);
  }
  auto big_key = find_key(a, "rd", "big-", edge_primary_is("node-b"));
  ops.push_back(edge_cache_op(edge_proto::op_code::put, "", big_key,
                              std::string(40 * 1024, 'x'))
                  .op);
  auto handle = a.bucket("rd");
  ASSERT_TRUE(handle) << edge_show(handle);
  auto a0 = stats(a, "rd");
  auto b0 = stats(b, "rd");
  cache_op_batch batch;
  batch.ops = std::make_shared<std::vector<edge_proto::op_request>>(ops);
  auto fut = edge_ask_batch(*sys_, *handle, batch);
  ASSERT_EQ(fut.wait_for(15s), std::future_status::ready) << "the batch hung";
  auto got = fut.get();
  ASSERT_TRUE(got) << edge_show(got);
  ASSERT_EQ(got->replies.size(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(got->replies[i].status, errc::none)
      << ops[i].key << ": " << got->replies[i].message;
  }
  // Ack all: answered once the other owner took each write, so the counts
  // are final.
  auto a1 = stats(a, "rd");
  auto b1 = stats(b, "rd");
  EXPECT_EQ(a1.ops_forwarded - a0.ops_forwarded, n + 1);
  EXPECT_EQ(a1.forward_requests - a0.forward_requests, 2u)
    << "the small operations for node-b in one request, the big one alone";
  EXPECT_EQ(a1.records_replicated - a0.records_replicated, n);
  EXPECT_EQ(a1.replication_requests - a0.replication_requests, 1u)
    << "node-a's writes of the round to node-b in one request";
  EXPECT_EQ(b1.records_replicated - b0.records_replicated, n + 1);
  EXPECT_EQ(b1.replication_requests - b0.replication_requests, 2u)
    << "node-b's writes of node-a's op_batch in one request, the big one "
       "(sent alone) alone";
  EXPECT_EQ(a1.entries - a0.entries, 2 * n + 1);
  EXPECT_EQ(b1.entries - b0.entries, 2 * n + 1);
  for (const auto& op : ops) {
    for (auto* x : {&a, &b}) {
      auto v = x->get("rd", op.key);
      ASSERT_TRUE(v) << edge_show(v);
      ASSERT_TRUE(*v) << op.key << " missing at " << x->name();
      EXPECT_EQ((*v)->value, op.value) << op.key << " at " << x->name();
    }
  }
}

// A peer's op_batch: each operation is answered as if it came alone, in
// order (a read sees the batch's earlier write); one whose key the node
// does not own is answered no_owner, not failed as a whole. A bad batch,
// and replicas naming a partition the bucket does not have, are refused.
TEST_F(cache_edges, a_peers_op_batch_answers_each_operation_on_its_own) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  bucket_options opts;
  opts.partitions = 64;
  ASSERT_TRUE(a.create_bucket("pb", opts));
  wait_bucket({&a, &b, &c}, "pb");
  wait_members({&a, &b, &c}, {"node-a", "node-b", "node-c"});
  wait_serving({&a, &b, &c}, "pb");
  auto mine = find_key(a, "pb", "mine-", edge_primary_is("node-b"));
  auto other = find_key(a, "pb", "other-",
                        edge_owners_are({"node-a", "node-c"}));
  auto op = [](edge_proto::op_code code, const std::string& key,
               const std::string& value = {}) {
    return edge_cache_op(code, "pb", key, value).op;
  };
  edge_proto::op_batch batch;
  batch.ops = {op(edge_proto::op_code::put, mine, "one"),
               op(edge_proto::op_code::get, mine),
               op(edge_proto::op_code::put, other, "not here"),
               op(edge_proto::op_code::get, "pb-absent")};
  auto ops_s = stream_of(b, "o:", "pb");
  auto r = raw_request(a, "node-b", edge_proto::encode(batch), ops_s);
  ASSERT_TRUE(r) << edge_show(r);
  auto msg = edge_proto::decode(*r);
  ASSERT_TRUE(msg) << to_string(msg.error());
  auto* replies = std::get_if<edge_proto::op_replies>(&*msg);
  ASSERT_NE(replies, nullptr) << "answered with message " << msg->index();
  ASSERT_EQ(replies->replies.size(), batch.ops.size());
  auto& rs = replies->replies;
  EXPECT_EQ(rs[0].status, errc::none) << rs[0].message;
  EXPECT_EQ(rs[1].status, errc::none) << rs[1].message;
  EXPECT_TRUE(rs[1].found);
  EXPECT_EQ(edge_text(rs[1].value), "one") << "a get saw its batch's put";
  EXPECT_EQ(rs[2].status, errc::no_owner) << rs[2].message;
  // "pb-absent" may or may not be node-b's: absent, or not owned.
  EXPECT_TRUE(rs[3].status == errc::no_owner
              || (rs[3].status == errc::none && !rs[3].found))
    << to_string(rs[3].status) << " " << rs[3].message;
  auto stored = c.get("pb", other);
  ASSERT_TRUE(stored) << edge_show(stored);
  EXPECT_FALSE(*stored) << "node-b wrote a key it does not own";
  // An empty batch: an empty answer.
  auto none = raw_request(a, "node-b",
                          edge_proto::encode(edge_proto::op_batch{}), ops_s);
  ASSERT_TRUE(none) << edge_show(none);
  auto empty = edge_proto::decode(*none);
  ASSERT_TRUE(empty);
  auto* no_replies = std::get_if<edge_proto::op_replies>(&*empty);
  ASSERT_NE(no_replies, nullptr);
  EXPECT_TRUE(no_replies->replies.empty());
  // Bad input: a truncated batch, and replicas of a partition out of range.
  auto before = stats(b, "pb").malformed;
  auto cut = edge_proto::encode(batch);
  cut.pop_back();
  auto bad = raw_request(a, "node-b", cut, ops_s);
  ASSERT_FALSE(bad) << "a truncated op_batch was answered";
  EXPECT_EQ(bad.error().code(), errc::malformed_frame)
    << to_string(bad.error());
  edge_proto::replicas oob;
  oob.bucket = "pb";
  oob.writes.push_back(
    {opts.partitions, edge_proto::record{"k",
                                         edge_bytes("v"),
                                         {edge_unix_ms(), 0, 1},
                                         0,
                                         edge_proto::record_kind::value}});
  auto refused = raw_request(a, "node-b", edge_proto::encode(oob),
                             stream_of(b, "r:", "pb"));
  ASSERT_FALSE(refused) << "replicas of partition " << opts.partitions << " of "
                        << opts.partitions << " were taken";
  EXPECT_EQ(refused.error().code(), errc::malformed_frame)
    << to_string(refused.error());
  EXPECT_TRUE(test::eventually(
    [&] {
      return stats(b, "pb").malformed >= before + 2;
    },
    5s));
  EXPECT_FALSE(b.failure()) << to_string(*b.failure());
  ASSERT_TRUE(a.put("pb", mine, edge_bytes("still serving")));
}

// A batch whose put waits for a replica when the bucket is dropped is
// answered at the drop, the put as done (it took effect before the drop;
// the replica's copy goes with the replica's drop), not left to the
// caller's timeout. (It used to answer unknown_bucket: the front door then
// sent again what had taken effect.)
TEST_F(cache_edges, a_batch_in_flight_when_its_bucket_is_dropped_ends) {
  auto filter = std::make_shared<net::udp_filter>();
  auto cfg_a = config("node-a", 1, nullptr);
  cfg_a.quic_filter = filter;
  auto& a = start(std::move(cfg_a));
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("bd"));
  wait_bucket({&a, &b}, "bd");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "bd");
  auto key = find_key(a, "bd", "inflight-", edge_primary_is("node-a"));
  auto handle = a.bucket("bd");
  ASSERT_TRUE(handle) << edge_show(handle);
  auto h = *handle;
  auto entries = stats(a, "bd").entries;
  filter->block(b.quic_endpoint());
  auto ops = std::make_shared<std::vector<edge_proto::op_request>>(2);
  (*ops)[0].op = edge_proto::op_code::get;
  (*ops)[0].key = "absent";
  (*ops)[1].op = edge_proto::op_code::put;
  (*ops)[1].key = key;
  (*ops)[1].value = edge_bytes("v");
  cache_op_batch batch{ops, {}, {}};
  auto t0 = edge_clock::now();
  auto fut = edge_ask_batch(*sys_, h, batch);
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(a, "bd").entries > entries;
    },
    5s))
    << "the put did not reach node-a's bucket";
  ASSERT_TRUE(a.drop_bucket("bd"));
  const auto bound = edge_op_timeout + 1s;
  auto ready = fut.wait_until(t0 + bound);
  filter->unblock(b.quic_endpoint());
  ASSERT_EQ(ready, std::future_status::ready)
    << "the batch was still pending " << edge_secs(bound) << " s after it "
    << "began";
  auto r = fut.get();
  std::printf("the batch in flight during the drop ended after %.3f s: %s\n",
              edge_secs(edge_clock::now() - t0), edge_show(r).c_str());
  ASSERT_TRUE(r) << edge_show(r);
  ASSERT_EQ(r->replies.size(), 2u);
  EXPECT_EQ(r->replies[0].status, errc::none) << r->replies[0].message;
  EXPECT_EQ(r->replies[1].status, errc::none) << r->replies[1].message;
}

// A peer's write that waits at its primary for a replica when the primary
// drops the bucket ends at the drop as done (it took effect there before
// the drop), not with the stream closing under it (connection_lost: the
// caller could not tell whether it ran); what the peer sends after the drop
// ends with unknown_bucket (which callers retry at a bucket of the name
// that replaced it).
TEST_F(cache_edges, a_peers_operation_at_a_dropped_bucket_ends) {
  auto& a = start("node-a", 1, nullptr);
  auto filter = std::make_shared<net::udp_filter>();
  auto cfg_b = config("node-b", 2, &a);
  cfg_b.quic_filter = filter;
  auto& b = start(std::move(cfg_b));
  auto& c = start("node-c", 3, &a);
  ASSERT_TRUE(a.create_bucket("pd"));
  wait_bucket({&a, &b, &c}, "pd");
  wait_members({&a, &b, &c}, {"node-a", "node-b", "node-c"});
  wait_serving({&a, &b, &c}, "pd");
  // node-b is the key's primary and waits for node-c's acknowledgement,
  // which node-b's filter drops.
  auto key = find_key(a, "pd", "peer-", edge_owners_are({"node-b", "node-c"}));
  auto entries = stats(b, "pd").entries;
  auto ops_pd = stream_of(b, "o:", "pd");
  filter->block(c.quic_endpoint());
  edge_proto::op_request op;
  op.op = edge_proto::op_code::put;
  op.bucket = "pd";
  op.key = key;
  op.value = edge_bytes("v");
  auto t0 = edge_clock::now();
  auto fut = std::async(std::launch::async, [&] {
    return raw_request(a, "node-b", edge_proto::encode(op), ops_pd);
  });
  ASSERT_TRUE(test::eventually(
    [&] {
      return stats(b, "pd").entries > entries;
    },
    5s))
    << "the put did not reach node-b's bucket";
  auto dropped = b.drop_bucket("pd");
  ASSERT_TRUE(dropped) << edge_show(dropped);
  auto r = fut.get();
  filter->unblock(c.quic_endpoint());
  std::printf("the peer's put ended after %.3f s: %s\n",
              edge_secs(edge_clock::now() - t0), edge_show(r).c_str());
  ASSERT_TRUE(r) << edge_show(r);
  auto answer = edge_proto::decode(*r);
  ASSERT_TRUE(answer) << to_string(answer.error());
  auto* reply = std::get_if<edge_proto::op_reply>(&*answer);
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->status, errc::none) << reply->message;
  EXPECT_LT(edge_clock::now() - t0, edge_op_timeout)
    << "the put waited for its replica's timeout";
  // What a peer sends after the drop gets unknown_bucket.
  auto late = raw_request(a, "node-b", edge_proto::encode(op), ops_pd);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), errc::unknown_bucket)
    << to_string(late.error());
}

// -- 10. compare-and-set ------------------------------------------------------

TEST_F(cache_edges, compare_and_set_returns_the_version_it_stored) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  ASSERT_TRUE(a.create_bucket("cas"));
  wait_bucket({&a, &b}, "cas");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "cas");
  for (const std::string primary : {"node-a", "node-b"}) {
    SCOPED_TRACE("primary " + primary + ", from node-a");
    auto key = find_key(a, "cas", "cas-", edge_primary_is(primary));
    // The empty version: only if absent.
    auto v1 = a.compare_and_set("cas", key, cache::version{}, edge_bytes("1"));
    ASSERT_TRUE(v1) << edge_show(v1);
    EXPECT_FALSE(v1->empty());
    auto held = b.get("cas", key);
    ASSERT_TRUE(held);
    ASSERT_TRUE(*held);
    EXPECT_EQ((*held)->ver, *v1)
      << "cas returned " << cache::to_string(*v1) << ", the key holds "
      << cache::to_string((*held)->ver);
    auto absent_again = a.compare_and_set("cas", key, cache::version{},
                                          edge_bytes("x"));
    ASSERT_FALSE(absent_again);
    EXPECT_EQ(absent_again.error().code(), errc::version_mismatch);
    // The returned version is good for the next one.
    auto v2 = a.compare_and_set("cas", key, *v1, edge_bytes("2"));
    ASSERT_TRUE(v2) << edge_show(v2);
    EXPECT_GT(*v2, *v1);
    // The old version loses, naming the version the key holds.
    auto stale = b.compare_and_set("cas", key, *v1, edge_bytes("stale"));
    ASSERT_FALSE(stale) << "a cas with an old version won";
    EXPECT_EQ(stale.error().code(), errc::version_mismatch)
      << to_string(stale.error());
    EXPECT_NE(stale.error().context().find(cache::to_string(*v2)),
              std::string::npos)
      << to_string(stale.error()) << " does not name " << cache::to_string(*v2);
    auto now = a.get("cas", key);
    ASSERT_TRUE(now);
    ASSERT_TRUE(*now);
    EXPECT_EQ(edge_text((*now)->value), "2");
    EXPECT_EQ((*now)->ver, *v2);
    // A version from the future, or of a deleted key, loses too.
    auto future = *v2;
    future.counter += 1;
    auto ahead = a.compare_and_set("cas", key, future, edge_bytes("f"));
    ASSERT_FALSE(ahead);
    EXPECT_EQ(ahead.error().code(), errc::version_mismatch);
    ASSERT_TRUE(a.del("cas", key));
    auto deleted = a.compare_and_set("cas", key, *v2, edge_bytes("d"));
    ASSERT_FALSE(deleted);
    EXPECT_EQ(deleted.error().code(), errc::version_mismatch);
    auto recreate = b.compare_and_set("cas", key, cache::version{},
                                      edge_bytes("3"));
    ASSERT_TRUE(recreate) << edge_show(recreate);
    EXPECT_GT(*recreate, *v2);
  }
}

// -- 11. malformed frames from a peer -----------------------------------------

TEST_F(cache_edges, malformed_cache_frames_get_an_error_and_are_counted) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  bucket_options opts;
  opts.partitions = 64;
  ASSERT_TRUE(a.create_bucket("s", opts));
  wait_bucket({&a, &b}, "s");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "s");
  auto before = stats(b, "s").malformed;
  auto ops_s = stream_of(b, "o:", "s");
  auto replication_s = stream_of(b, "r:", "s");
  auto handoff_s = stream_of(b, "h:", "s");
  auto encoded = [](const edge_proto::message& m) {
    return edge_proto::encode(m);
  };
  edge_proto::op_request op;
  op.op = edge_proto::op_code::put;
  op.bucket = "s";
  op.key = "k";
  op.value = edge_bytes("v");
  auto truncated = encoded(op);
  truncated.pop_back();
  auto trailing = encoded(op);
  trailing.push_back(std::byte{0});
  struct bad_frame {
    const char* what;
    std::vector<std::byte> payload;
    std::string stream;
    errc want;
  };
  std::vector<bad_frame> frames{
    {"garbage",
     {std::byte{0xde}, std::byte{0xad}, std::byte{0xbe}},
     ops_s,
     errc::unsupported_version},
    {"an unknown kind",
     {std::byte{1}, std::byte{0x7f}},
     ops_s,
     errc::unknown_frame_type},
    {"nothing", {}, ops_s, errc::malformed_frame},
    {"a truncated op_request", truncated, ops_s, errc::malformed_frame},
    {"an op_request with a trailing byte", trailing, ops_s,
     errc::malformed_frame},
    {"an op_reply", encoded(edge_proto::op_reply{}), ops_s,
     errc::unexpected_frame},
    {"garbage on the replication stream",
     {std::byte{0xff}},
     replication_s,
     errc::malformed_frame},
    {"garbage on the hand-off stream",
     {std::byte{2}, std::byte{3}},
     handoff_s,
     errc::unsupported_version},
  };
  for (auto& f : frames) {
    auto t0 = edge_clock::now();
    auto r = raw_request(a, "node-b", f.payload, f.stream);
    auto took = edge_clock::now() - t0;
    ASSERT_FALSE(r) << f.what << " was answered with " << r->size() << " bytes";
    EXPECT_EQ(r.error().code(), f.want)
      << f.what << ": " << to_string(r.error());
    EXPECT_LT(took, edge_op_timeout) << f.what << " took " << edge_secs(took)
                                     << " s: " << to_string(r.error());
  }
  // node-b counted each of them.
  uint64_t now = 0;
  EXPECT_TRUE(test::eventually(
    [&] {
      now = stats(b, "s").malformed;
      return now >= before + frames.size();
    },
    5s))
    << "malformed went from " << before << " to " << now << " after "
    << frames.size() << " bad frames";
  EXPECT_EQ(now, before + frames.size());
  // Garbage on the registry's stream (the cache actor) is refused too.
  auto reg = raw_request(a, "node-b", {std::byte{9}, std::byte{9}}, "");
  ASSERT_FALSE(reg);
  EXPECT_EQ(reg.error().code(), errc::unsupported_version)
    << to_string(reg.error());
  // node-b keeps serving, as primary and as forwarder.
  EXPECT_FALSE(b.failure()) << to_string(*b.failure());
  auto at_b = find_key(a, "s", "after-", edge_primary_is("node-b"));
  auto at_a = find_key(a, "s", "after-", edge_primary_is("node-a"));
  for (const auto& key : {at_a, at_b}) {
    ASSERT_TRUE(a.put("s", key, edge_bytes("still")));
    ASSERT_TRUE(b.put("s", key + "-b", edge_bytes("serving")));
    for (auto* n : {&a, &b}) {
      auto got = n->get("s", key);
      ASSERT_TRUE(got) << edge_show(got);
      ASSERT_TRUE(*got);
      EXPECT_EQ(edge_text((*got)->value), "still");
      auto got_b = n->get("s", key + "-b");
      ASSERT_TRUE(got_b) << edge_show(got_b);
      ASSERT_TRUE(*got_b);
    }
  }
  wait_serving({&a, &b}, "s");
}

// A frame that decodes, but names a partition the bucket does not have
// (the codec bounds partitions by max_partitions, not by the bucket's
// count), must be refused like any other bad frame: the node keeps running.
//
// Regression: placement::owners_of threw std::out_of_range on such a
// frame, which ended the bucket actor and with it the whole node.
TEST_F(cache_edges, a_frame_naming_a_partition_out_of_range_is_refused) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  bucket_options opts;
  opts.partitions = 64;
  ASSERT_TRUE(a.create_bucket("s", opts));
  wait_bucket({&a, &b}, "s");
  wait_members({&a, &b}, {"node-a", "node-b"});
  wait_serving({&a, &b}, "s");
  struct oob_frame {
    const char* what;
    edge_proto::transfer why;
    std::string stream;
  };
  for (auto& f :
       std::vector<oob_frame>{{"replicate", edge_proto::transfer::replicate,
                               stream_of(b, "r:", "s")},
                              {"hand-off", edge_proto::transfer::handoff,
                               stream_of(b, "h:", "s")}}) {
    edge_proto::entries e;
    e.bucket = "s";
    e.partition = opts.partitions; // one past the last
    e.why = f.why;
    e.last = true;
    auto r = raw_request(a, "node-b", edge_proto::encode(e), f.stream);
    if (r) {
      auto msg = edge_proto::decode(*r);
      ASSERT_TRUE(msg) << f.what << ": answered with bytes that do not "
                       << "decode";
      auto* reply = std::get_if<edge_proto::op_reply>(&*msg);
      ASSERT_NE(reply, nullptr) << f.what;
      EXPECT_NE(reply->status, errc::none)
        << f.what << ": partition " << e.partition << " of " << opts.partitions
        << " was taken";
    }
    EXPECT_FALSE(b.failure())
      << f.what << " stopped node-b: " << to_string(*b.failure());
    auto key = find_key(a, "s", "alive-", edge_primary_is("node-b"));
    auto put = a.put("s", key, edge_bytes("v"));
    ASSERT_TRUE(put) << f.what << ", then a put at node-b: " << edge_show(put);
    auto got = b.get("s", key);
    ASSERT_TRUE(got) << edge_show(got);
    EXPECT_TRUE(*got);
  }
}

// -- 12. a stopping node, client members --------------------------------------

TEST_F(cache_edges, a_stopping_node_answers_shutting_down_and_never_hangs) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  ASSERT_TRUE(a.create_bucket("s"));
  wait_bucket({&a, &b, &c}, "s");
  wait_members({&a, &b, &c}, {"node-a", "node-b", "node-c"});
  wait_serving({&a, &b, &c}, "s");
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.put("s", "c-" + std::to_string(i),
                      edge_bytes("v" + std::to_string(i))));
  }
  auto handle = c.bucket("s");
  ASSERT_TRUE(handle) << edge_show(handle);
  caf::scoped_actor mon{*sys_};
  mon->monitor(*handle);
  // node-c stops in another thread while this one keeps calling it.
  auto cn = nodes_.at("node-c");
  std::atomic<bool> stop_done{false};
  auto t_stop = edge_clock::now();
  std::thread stopper{[&] {
    cn->stop();
    stop_done = true;
  }};
  int calls = 0;
  int ok = 0;
  int refused = 0;
  std::map<std::string, int> other;
  edge_clock::duration slowest{};
  while (!stop_done) {
    bool was_stopped = c.stopped();
    auto t0 = edge_clock::now();
    auto key = "c-" + std::to_string(calls % 20);
    auto r = calls % 2 == 0 ? edge_code(c.get("s", key))
                            : edge_code(c.put("s", key, edge_bytes("w")));
    slowest = std::max(slowest, edge_clock::now() - t0);
    ++calls;
    if (r == errc::none) {
      EXPECT_FALSE(was_stopped) << "a call succeeded after stop began";
      ++ok;
    } else if (r == errc::shutting_down) {
      ++refused;
      // Refusals are immediate: let the stopping node's threads run.
      std::this_thread::yield();
    } else {
      ++other[std::string{to_string(r)}];
    }
  }
  stopper.join();
  auto stop_took = edge_clock::now() - t_stop;
  std::string others;
  for (auto& [what, n] : other) {
    others += " " + what + " x" + std::to_string(n);
  }
  std::printf("during a %.3f s stop: %d calls, %d ok, %d shutting_down, "
              "others:%s; slowest %.3f s\n",
              edge_secs(stop_took), calls, ok, refused,
              others.empty() ? " none" : others.c_str(), edge_secs(slowest));
  EXPECT_GT(refused, 0) << "no call was refused while the node stopped";
  EXPECT_TRUE(other.empty()) << "unexpected errors:" << others;
  EXPECT_LT(slowest, edge_op_timeout + 1s);
  // After the stop every facade call is refused at once.
  auto t0 = edge_clock::now();
  auto value = edge_bytes("v");
  auto refuse = [&](const auto& r, const char* what) {
    ASSERT_FALSE(r) << what << " on a stopped node succeeded";
    EXPECT_EQ(r.error().code(), errc::shutting_down)
      << what << ": " << to_string(r.error());
  };
  refuse(c.get("s", "c-1"), "get");
  refuse(c.put("s", "c-1", value), "put");
  refuse(c.del("s", "c-1"), "del");
  refuse(c.expire("s", "c-1", 1s), "expire");
  refuse(c.persist("s", "c-1"), "persist");
  refuse(c.expires_at("s", "c-1"), "expires_at");
  refuse(c.incr("s", "n"), "incr");
  refuse(c.compare_and_set("s", "c-1", cache::version{}, value), "cas");
  refuse(c.get_many("s", {"c-1", "c-2"}), "get_many");
  refuse(c.put_many("s", {{"c-1", value}}), "put_many");
  refuse(c.scan("s", 0), "scan");
  refuse(c.keys("s"), "keys");
  refuse(c.owners("s", "c-1"), "owners");
  refuse(c.bucket("s"), "bucket");
  refuse(c.create_bucket("t"), "create_bucket");
  refuse(c.drop_bucket("s"), "drop_bucket");
  refuse(c.buckets(), "buckets");
  refuse(c.cache_stats(), "cache_stats");
  refuse(c.cache_members(), "cache_members");
  refuse(c.put_as("s", "c-1", std::string{"x"}), "put_as");
  edge_proto::op_request op;
  op.key = "c-1";
  auto fut = c.execute_async("s", op);
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  refuse(fut.get(), "execute_async");
  EXPECT_LT(edge_clock::now() - t0, 5s); // far below any timeout
  // Its bucket's handle went down with it; a request to it fails at once.
  std::optional<caf::down_msg> down;
  mon->receive(
    [&](caf::down_msg& d) {
      down = std::move(d);
    },
    caf::after(10s) >> [] {});
  ASSERT_TRUE(down) << "the handle outlived its node";
  auto t1 = edge_clock::now();
  auto handle_error = errc::none;
  mon
    ->request(*handle, 10s, edge_cache_op(edge_proto::op_code::get, "s", "c-1"))
    .receive(
      [&](edge_proto::op_reply&) {
        ADD_FAILURE() << "the handle of a stopped node answered";
      },
      [&](caf::error& e) {
        handle_error = from_caf_error(e).code();
      });
  EXPECT_EQ(handle_error, errc::node_down);
  EXPECT_LT(edge_clock::now() - t1, 5s); // the request timeout is 10 s
  // A graceful stop is no failure; the others serve what node-c wrote.
  EXPECT_FALSE(c.failure()) << to_string(*c.failure());
  for (auto* n : {&a, &b}) {
    for (int i = 0; i < 20; ++i) {
      auto key = "c-" + std::to_string(i);
      std::string seen;
      ASSERT_TRUE(test::eventually(
        [&] {
          auto got = n->get("s", key);
          seen = got ? (*got ? edge_text((*got)->value) : "missing")
                     : edge_show(got);
          return got && *got;
        },
        20s))
        << n->name() << " " << key << ": " << seen;
    }
  }
}

TEST_F(cache_edges, a_client_member_runs_operations_but_owns_no_partition) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a, false);
  bucket_options opts;
  opts.partitions = 32;
  auto made = c.create_bucket("cl", opts);
  ASSERT_TRUE(made) << "a client creates buckets: " << edge_show(made);
  EXPECT_TRUE(*made);
  wait_bucket({&a, &b, &c}, "cl");
  wait_members({&a, &b, &c}, {"node-a", "node-b"});
  wait_serving({&a, &b, &c}, "cl");
  std::vector<std::string> written;
  for (int i = 0; i < 40; ++i) {
    auto key = "client-" + std::to_string(i);
    auto put = c.put("cl", key, edge_bytes("v" + std::to_string(i)));
    ASSERT_TRUE(put) << key << ": " << edge_show(put);
    written.push_back(key);
    auto owners = c.owners("cl", key);
    ASSERT_TRUE(owners);
    EXPECT_EQ(owners->size(), 2u) << key << ": " << edge_join(*owners);
    EXPECT_EQ(std::count(owners->begin(), owners->end(), "node-c"), 0)
      << "the client owns " << key;
  }
  std::sort(written.begin(), written.end());
  for (auto* n : {&a, &b, &c}) {
    for (int i = 0; i < 40; ++i) {
      auto got = n->get("cl", "client-" + std::to_string(i));
      ASSERT_TRUE(got) << n->name() << ": " << edge_show(got);
      ASSERT_TRUE(*got) << n->name() << " client-" << i;
      EXPECT_EQ(edge_text((*got)->value), "v" + std::to_string(i));
    }
  }
  // Scans, incr and cas from the client.
  auto ks = c.keys("cl");
  ASSERT_TRUE(ks) << edge_show(ks);
  std::vector<std::string> listed;
  for (auto& k : *ks) {
    if (k.rfind("client-", 0) == 0) {
      listed.push_back(k);
    }
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, written);
  auto one = c.incr("cl", "ctr");
  ASSERT_TRUE(one) << edge_show(one);
  EXPECT_EQ(*one, 1);
  auto v = c.compare_and_set("cl", "cas", cache::version{}, edge_bytes("x"));
  ASSERT_TRUE(v) << edge_show(v);
  // The client holds nothing; the storage members hold everything.
  auto sc = stats(c, "cl");
  EXPECT_EQ(sc.partitions_owned, 0u);
  EXPECT_EQ(sc.partitions_primary, 0u);
  EXPECT_EQ(sc.entries, 0u);
  uint64_t primaries = 0;
  for (auto* n : {&a, &b}) {
    auto s = stats(*n, "cl");
    EXPECT_EQ(s.partitions_owned, opts.partitions) << n->name();
    EXPECT_GE(s.entries, written.size()) << n->name();
    primaries += s.partitions_primary;
  }
  EXPECT_EQ(primaries, opts.partitions);
}

// -- 13. a primary that crashes or cannot be reached --------------------------

TEST_F(cache_edges, operations_on_a_crashed_primary_end_within_the_op_timeout) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  bucket_options opts;
  opts.partitions = 64;
  ASSERT_TRUE(a.create_bucket("k", opts));
  wait_bucket({&a, &b, &c}, "k");
  wait_members({&a, &b, &c}, {"node-a", "node-b", "node-c"});
  wait_serving({&a, &b, &c}, "k");
  // Keys whose primary is node-c and whose other owner is node-b (so that
  // node-a only forwards), written before the crash.
  std::vector<std::string> keys;
  for (int j = 0; j < 6; ++j) {
    keys.push_back(find_key(a, "k", "crash-" + std::to_string(j) + "-",
                            edge_owners_are({"node-c", "node-b"})));
    ASSERT_TRUE(a.put("k", keys.back(), edge_bytes("before")));
  }
  // node-c crashes: every actor of it is killed (no leave, no drain).
  caf::anon_send_exit(c.root(), caf::exit_reason::kill);
  auto t_kill = edge_clock::now();
  const auto write_bound = edge_op_timeout + 1s;
  const auto read_bound = 2 * edge_op_timeout + 1s;
  edge_clock::duration slowest_write{};
  edge_clock::duration slowest_read{};
  std::map<std::string, int> errors;
  int rounds = 0;
  bool recovered = false;
  auto run_all = [&](bool write, int round, edge_clock::duration bound,
                     edge_clock::duration& slowest, int& succeeded,
                     bool& fresh) {
    std::vector<std::future<expected<edge_proto::op_reply>>> futs;
    auto t0 = edge_clock::now();
    for (const auto& key : keys) {
      edge_proto::op_request op;
      op.op = write ? edge_proto::op_code::put : edge_proto::op_code::get;
      op.key = key;
      if (write) {
        op.value = edge_bytes("after-" + std::to_string(round));
      }
      futs.push_back(a.execute_async("k", op));
    }
    succeeded = 0;
    fresh = true;
    for (size_t i = 0; i < futs.size(); ++i) {
      if (futs[i].wait_until(t0 + bound) != std::future_status::ready) {
        ADD_FAILURE() << (write ? "a put of " : "a get of ") << keys[i]
                      << " still pending " << edge_secs(bound)
                      << " s after it began (round " << round << ")";
        futs[i].wait();
      }
      slowest = std::max(slowest, edge_clock::now() - t0);
      auto r = futs[i].get();
      if (r) {
        ++succeeded;
        if (!write
            && (!r->found
                || edge_text(r->value) != "after-" + std::to_string(round))) {
          fresh = false;
        }
        continue;
      }
      fresh = false;
      auto code = r.error().code();
      ++errors[std::string{to_string(code)}];
      // unknown_application: the request reached node-c after its bucket
      // was killed and before its channels were.
      EXPECT_TRUE(code == errc::timeout || code == errc::node_down
                  || code == errc::connection_lost || code == errc::no_owner
                  || code == errc::unknown_application)
        << (write ? "put " : "get ") << keys[i] << ": " << to_string(r.error());
    }
  };
  int reads_ok_first = -1;
  // One round: every key written, then read. Rounds go on (paced by
  // test::eventually) until node-a's view dropped node-c and all succeed.
  recovered = test::eventually(
    [&] {
      ++rounds;
      int writes_ok = 0;
      int reads_ok = 0;
      bool unused = false;
      bool fresh = false;
      run_all(true, rounds, write_bound, slowest_write, writes_ok, unused);
      run_all(false, rounds, read_bound, slowest_read, reads_ok, fresh);
      if (rounds == 1) {
        reads_ok_first = reads_ok;
      }
      return writes_ok == static_cast<int>(keys.size()) && fresh;
    },
    40s);
  auto took = edge_clock::now() - t_kill;
  std::string seen;
  for (auto& [what, n] : errors) {
    seen += " " + what + " x" + std::to_string(n);
  }
  std::printf("after the crash: %d rounds, recovered in %.3f s; slowest put "
              "%.3f s, slowest get %.3f s; errors:%s\n",
              rounds, edge_secs(took), edge_secs(slowest_write),
              edge_secs(slowest_read), seen.empty() ? " none" : seen.c_str());
  // Reads find the surviving owner at once (within the op timeout of the
  // dead primary), writes end within one op timeout, and once node-a's view
  // drops node-c the writes go to the new primary.
  EXPECT_EQ(reads_ok_first, static_cast<int>(keys.size()))
    << "reads failed before the view changed although node-b holds them";
  EXPECT_TRUE(recovered) << "writes still fail " << edge_secs(took)
                         << " s after the crash; errors:" << seen;
  for (const auto& key : keys) {
    auto got = b.get("k", key);
    ASSERT_TRUE(got) << edge_show(got);
    ASSERT_TRUE(*got);
    EXPECT_EQ(edge_text((*got)->value), "after-" + std::to_string(rounds));
  }
}

TEST_F(cache_edges, operations_on_an_unreachable_primary_end_within_bounds) {
  auto filter = std::make_shared<net::udp_filter>();
  auto cfg_a = config("node-a", 1, nullptr);
  cfg_a.quic_filter = filter;
  auto& a = start(std::move(cfg_a));
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  bucket_options opts;
  opts.partitions = 64;
  ASSERT_TRUE(a.create_bucket("u", opts));
  wait_bucket({&a, &b, &c}, "u");
  wait_members({&a, &b, &c}, {"node-a", "node-b", "node-c"});
  wait_serving({&a, &b, &c}, "u");
  auto read_key = find_key(a, "u", "read-",
                           edge_owners_are({"node-c", "node-b"}));
  auto write_key = find_key(a, "u", "write-",
                            edge_owners_are({"node-c", "node-b"}));
  auto via_b = find_key(a, "u", "via-b-",
                        edge_owners_are({"node-b", "node-c"}));
  ASSERT_TRUE(a.put("u", read_key, edge_bytes("readable")));
  // node-a drops what node-c sends over QUIC (gossip is untouched: node-c
  // stays an alive member and the primary of its partitions).
  filter->block(c.quic_endpoint());
  auto timed = [&](auto&& f, edge_clock::duration& took) {
    auto t0 = edge_clock::now();
    auto r = f();
    took = edge_clock::now() - t0;
    return r;
  };
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("attempt " + std::to_string(i));
    edge_clock::duration took{};
    auto put = timed(
      [&] {
        return a.put("u", write_key, edge_bytes("w"));
      },
      took);
    ASSERT_FALSE(put) << "a put through a one-way fault was acknowledged";
    EXPECT_TRUE(put.error().code() == errc::timeout
                || put.error().code() == errc::connection_lost)
      << to_string(put.error());
    EXPECT_LT(took, edge_op_timeout + 1s)
      << "put took " << edge_secs(took) << " s: " << to_string(put.error());
    auto got = timed(
      [&] {
        return a.get("u", read_key);
      },
      took);
    ASSERT_TRUE(got) << "a read did not fall back to node-b: "
                     << edge_show(got);
    ASSERT_TRUE(*got);
    EXPECT_EQ(edge_text((*got)->value), "readable");
    EXPECT_LT(took, 2 * edge_op_timeout + 1s)
      << "get took " << edge_secs(took) << " s";
    // Keys whose primary is reachable are not affected.
    auto fine = timed(
      [&] {
        return a.put("u", via_b, edge_bytes("fine"));
      },
      took);
    EXPECT_TRUE(fine) << edge_show(fine);
    EXPECT_LT(took, edge_op_timeout); // the unreachable take longer
    std::printf("attempt %d: put %s, get %s\n", i,
                to_string(put.error()).c_str(), edge_show(got).c_str());
  }
  // The fault ends: writes reach node-c again.
  filter->unblock(c.quic_endpoint());
  std::string last;
  ASSERT_TRUE(test::eventually(
    [&] {
      auto put = a.put("u", write_key, edge_bytes("healed"));
      last = edge_show(put);
      return put.has_value();
    },
    20s))
    << "writes to node-c still fail after the fault ended: " << last;
  auto healed = c.get("u", write_key);
  ASSERT_TRUE(healed) << edge_show(healed);
  ASSERT_TRUE(*healed);
  EXPECT_EQ(edge_text((*healed)->value), "healed");
}

} // namespace
