// SPDX-License-Identifier: Apache-2.0
// Mycel across nodes in one actor system on 127.0.0.x with real sockets:
// the registry reaching every node (also a late joiner), put/get/delete
// from any node, a missing key, errors, 3 nodes x 100 concurrent incr, CAS
// races, an owner that stops while its data stays readable.
#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/cache/codec.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include "support/eventually.hpp"
#include "support/test_pki.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

using cache::proto::op_code;
using cache::proto::op_reply;
using cache::proto::op_request;

std::vector<std::byte> bytes_of(const std::string& s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string as_text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

cache_op make_op(op_code code, std::string bucket, std::string key,
                 std::string value = {}) {
  cache_op x;
  x.bucket = std::move(bucket);
  x.op.op = code;
  x.op.bucket = x.bucket;
  x.op.key = std::move(key);
  x.op.value = bytes_of(value);
  return x;
}

class cache_test : public ::testing::Test {
protected:
  void SetUp() override {
    add_error_category(cfg_);
    cfg_.set("scheduler.max-threads", 4);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  void TearDown() override {
    for (auto& [name, n] : nodes_) {
      n->stop();
    }
    nodes_.clear();
    sys_.reset();
  }

  node& start(const std::string& name, uint8_t host, const node* seed,
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
    co.op_timeout = 2s;
    co.anti_entropy_interval = 1s;
    cfg.cache = co;
    auto n = node::start(*sys_, std::move(cfg));
    if (!n) {
      ADD_FAILURE() << to_string(n.error());
      throw std::runtime_error("cannot start " + name);
    }
    nodes_[name] = *n;
    return **n;
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

  expected<op_reply> run(node& n, cache_op x) {
    return ask<op_reply>(n, std::move(x));
  }

  /// Waits until every node of `ns` lists `bucket`.
  void wait_bucket(std::initializer_list<node*> ns, const std::string& bucket) {
    for (auto* n : ns) {
      std::vector<bucket_info> last;
      ASSERT_TRUE(test::eventually(
        [&] {
          auto l = ask<std::vector<bucket_info>>(*n, list_buckets_atom::value);
          if (l) {
            last = *l;
          }
          for (auto& b : last) {
            if (b.name == bucket) {
              return true;
            }
          }
          return false;
        },
        20s))
        << n->name() << " lists " << last.size() << " buckets";
    }
  }

  /// Waits until every node places partitions on all of `ns` (the same
  /// view everywhere), and a put from each node is read back by every
  /// other.
  void wait_storage(std::initializer_list<node*> ns, const std::string& b) {
    std::vector<std::string> all;
    for (auto* n : ns) {
      all.push_back(n->name());
    }
    std::sort(all.begin(), all.end());
    for (auto* n : ns) {
      std::vector<std::string> seen;
      ASSERT_TRUE(test::eventually(
        [&] {
          auto m = ask<std::vector<std::string>>(*n, members_atom::value);
          if (m) {
            seen = *m;
          }
          return seen == all;
        },
        20s))
        << n->name() << " places on " << seen.size() << " members";
    }
    int round = 0;
    ASSERT_TRUE(test::eventually(
      [&] {
        ++round;
        for (auto* n : ns) {
          auto key = "probe-" + n->name() + "-" + std::to_string(round);
          if (!run(*n, make_op(op_code::put, b, key, "x"))) {
            return false;
          }
          for (auto* m : ns) {
            auto r = run(*m, make_op(op_code::get, b, key));
            if (!r || !r->found) {
              return false;
            }
          }
        }
        return true;
      },
      30s));
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::map<std::string, std::shared_ptr<node>> nodes_;
};

TEST_F(cache_test, a_bucket_created_anywhere_is_known_everywhere) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  auto created = ask<bool>(b, create_bucket_atom::value, std::string{"s"},
                           bucket_options{});
  ASSERT_TRUE(created) << to_string(created.error());
  EXPECT_TRUE(*created);
  wait_bucket({&a, &b, &c}, "s");
  // The same options again: fine, nothing new; others: bucket_exists.
  auto again = ask<bool>(a, create_bucket_atom::value, std::string{"s"},
                         bucket_options{});
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto other = bucket_options{};
  other.rf = 3;
  auto clash = ask<bool>(c, create_bucket_atom::value, std::string{"s"}, other);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code(), errc::bucket_exists);
  EXPECT_NE(clash.error().context().find("rf 2"), std::string::npos)
    << to_string(clash.error());
  // A node that joins later learns the registry.
  auto& d = start("node-d", 4, &a);
  wait_bucket({&d}, "s");
  // Unknown buckets and bad names are errors.
  auto unknown = run(a, make_op(op_code::get, "nope", "k"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), errc::unknown_bucket);
  auto bad = ask<bool>(a, create_bucket_atom::value, std::string{"a\nb"},
                       bucket_options{});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), errc::invalid_identifier);
}

TEST_F(cache_test, an_older_create_with_the_same_options_keeps_the_data) {
  // Two clients on two nodes create one name at once (FLUSHDB and a first
  // write to the database elsewhere, say): the older create wins on every
  // node, and a node that made the newer one takes the older when it
  // hears of it. With the same options it is the same bucket: what was
  // written meanwhile stays. (It used to be replaced by an empty one.)
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  bucket_options o;
  o.rf = 1; // every key in one place: nothing would repair a loss
  ASSERT_TRUE(ask<bool>(a, create_bucket_atom::value, std::string{"s"}, o));
  wait_bucket({&a, &b}, "s");
  wait_storage({&a, &b}, "s");
  constexpr int keys = 100;
  for (int i = 0; i < keys; ++i) {
    auto r = run(a, make_op(op_code::put, "s", "k" + std::to_string(i),
                            "v" + std::to_string(i)));
    ASSERT_TRUE(r) << to_string(r.error());
  }
  // The other create, older than ours, reaches both nodes as a peer's
  // registry push does.
  cache::proto::bucket_def older;
  older.name = "s";
  older.options = o;
  older.ver = cache::version{1, 0, cache::node_id("node-c")};
  auto payload = cache::proto::encode(cache::proto::buckets{{older}});
  for (auto* n : {&a, &b}) {
    caf::scoped_actor self{*sys_};
    bool taken = false;
    self
      ->request(caf::actor_cast<caf::actor>(n->cache()), 10s,
                app_request{"node-c", "mycel", "", payload, 0s})
      .receive(
        [&](raw_bytes&) {
          taken = true;
        },
        [&](caf::error& e) {
          ADD_FAILURE() << to_string(e);
        });
    ASSERT_TRUE(taken) << n->name();
  }
  for (auto* n : {&a, &b}) {
    int missing = 0;
    for (int i = 0; i < keys; ++i) {
      auto r = run(*n, make_op(op_code::get, "s", "k" + std::to_string(i)));
      ASSERT_TRUE(r) << to_string(r.error());
      if (!r->found) {
        ++missing;
      } else {
        EXPECT_EQ(as_text(r->value), "v" + std::to_string(i));
      }
    }
    EXPECT_EQ(missing, 0) << "read through " << n->name();
  }
}

TEST_F(cache_test, put_on_one_node_is_read_on_every_node) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  ASSERT_TRUE(ask<bool>(a, create_bucket_atom::value, std::string{"s"},
                        bucket_options{}));
  wait_bucket({&a, &b, &c}, "s");
  wait_storage({&a, &b, &c}, "s");
  for (int i = 0; i < 50; ++i) {
    auto r = run(a, make_op(op_code::put, "s", "k" + std::to_string(i),
                            "v" + std::to_string(i)));
    ASSERT_TRUE(r) << to_string(r.error());
  }
  for (auto* n : {&a, &b, &c}) {
    for (int i = 0; i < 50; ++i) {
      auto r = run(*n, make_op(op_code::get, "s", "k" + std::to_string(i)));
      ASSERT_TRUE(r) << to_string(r.error());
      ASSERT_TRUE(r->found) << n->name() << " misses k" << i;
      EXPECT_EQ(as_text(r->value), "v" + std::to_string(i));
    }
  }
  // Missing keys and deletes.
  auto missing = run(b, make_op(op_code::get, "s", "absent"));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->found);
  auto del = run(c, make_op(op_code::del, "s", "k1"));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->number, 1);
  auto gone = run(a, make_op(op_code::get, "s", "k1"));
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->found);
}

TEST_F(cache_test, concurrent_increments_from_three_nodes_add_up) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  ASSERT_TRUE(ask<bool>(a, create_bucket_atom::value, std::string{"n"},
                        bucket_options{}));
  wait_bucket({&a, &b, &c}, "n");
  wait_storage({&a, &b, &c}, "n");
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<caf::actor> clients;
  for (auto* n : {&a, &b, &c}) {
    auto target = n->cache();
    clients.push_back(
      sys_->spawn([=, &ok, &failed](caf::event_based_actor* self) {
        for (int i = 0; i < 100; ++i) {
          auto x = make_op(op_code::incr, "n", "counter");
          x.op.delta = 1;
          self->request(target, 10s, std::move(x))
            .then(
              [&ok](op_reply&) {
                ++ok;
              },
              [&failed](caf::error&) {
                ++failed;
              });
        }
      }));
  }
  ASSERT_TRUE(test::eventually(
    [&] {
      return ok + failed == 300;
    },
    30s))
    << ok << " answered, " << failed << " failed";
  EXPECT_EQ(failed, 0);
  auto r = run(b, make_op(op_code::get, "n", "counter"));
  ASSERT_TRUE(r);
  EXPECT_EQ(as_text(r->value), "300");
}

TEST_F(cache_test, of_racing_compare_and_sets_exactly_one_wins) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  ASSERT_TRUE(ask<bool>(a, create_bucket_atom::value, std::string{"s"},
                        bucket_options{}));
  wait_bucket({&a, &b, &c}, "s");
  wait_storage({&a, &b, &c}, "s");
  auto first = run(a, make_op(op_code::put, "s", "k", "v0"));
  ASSERT_TRUE(first);
  auto held = run(a, make_op(op_code::get, "s", "k"));
  ASSERT_TRUE(held);
  std::atomic<int> won{0};
  std::atomic<int> lost{0};
  std::atomic<int> other{0};
  for (auto* n : {&a, &b, &c}) {
    auto target = n->cache();
    auto ver = held->ver;
    auto name = n->name();
    sys_->spawn([=, &won, &lost, &other](caf::event_based_actor* self) {
      auto x = make_op(op_code::cas, "s", "k", "from-" + name);
      x.op.expected = ver;
      self->request(target, 10s, std::move(x))
        .then(
          [&won](op_reply&) {
            ++won;
          },
          [&lost, &other](caf::error& e) {
            if (from_caf_error(e) == errc::version_mismatch) {
              ++lost;
            } else {
              ++other;
            }
          });
    });
  }
  ASSERT_TRUE(test::eventually(
    [&] {
      return won + lost + other == 3;
    },
    20s));
  EXPECT_EQ(won, 1);
  EXPECT_EQ(lost, 2);
  EXPECT_EQ(other, 0);
}

TEST_F(cache_test, an_owner_that_stops_leaves_its_data_readable) {
  auto& a = start("node-a", 1, nullptr);
  auto& b = start("node-b", 2, &a);
  auto& c = start("node-c", 3, &a);
  ASSERT_TRUE(ask<bool>(a, create_bucket_atom::value, std::string{"s"},
                        bucket_options{}));
  wait_bucket({&a, &b, &c}, "s");
  wait_storage({&a, &b, &c}, "s");
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(run(a, make_op(op_code::put, "s", "k" + std::to_string(i),
                               "v" + std::to_string(i))));
  }
  nodes_.at("node-c")->stop();
  for (auto* n : {&a, &b}) {
    for (int i = 0; i < 100; ++i) {
      expected<op_reply> r = unexpected{error{errc::timeout}};
      ASSERT_TRUE(test::eventually(
        [&] {
          r = run(*n, make_op(op_code::get, "s", "k" + std::to_string(i)));
          return r && r->found;
        },
        20s))
        << n->name() << " k" << i << ": "
        << (r ? "missing" : to_string(r.error()));
      EXPECT_EQ(as_text(r->value), "v" + std::to_string(i));
    }
  }
}

} // namespace
