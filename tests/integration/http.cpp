// SPDX-License-Identifier: Apache-2.0
// The HTTP front door (serve/http.hpp) of a live two-node cluster in one
// process, asked with a real HTTP client over loopback: /health, /ready,
// /metrics (text format checked line by line, a host's own family, a cache
// counter rising), /status (both members, the bucket), the status page, the
// bearer token, bad options, a port in use, and a stopped node.
#include "mycorrizal/serve/http.hpp"

#include "mycorrizal/base64.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/node.hpp"

#include "support/eventually.hpp"
#include "support/test_pki.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <future>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

class http_test : public ::testing::Test {
protected:
  void SetUp() override {
    add_error_category(cfg_);
    cfg_.set("scheduler.max-threads", 4);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  void TearDown() override {
    servers_.clear();
    for (auto& n : nodes_) {
      n->stop();
    }
    nodes_.clear();
    sys_.reset();
  }

  std::shared_ptr<node> start(const std::string& name, uint8_t host,
                              const node* seed,
                              const std::vector<std::byte>& gossip_key = {}) {
    auto cfg = node_config::local(name);
    if (!gossip_key.empty()) {
      EXPECT_TRUE(cfg.gossip.keys.install(gossip_key));
    }
    cfg.credentials = test::test_pki::get().credentials(name);
    cfg.gossip_bind = ip_endpoint::v4(127, 0, 0, host, 0);
    cfg.quic_bind = ip_endpoint::v4(127, 0, 0, host, 0);
    if (seed != nullptr) {
      cfg.seeds.push_back(seed->gossip_endpoint().to_string());
    }
    cache_options co;
    co.op_timeout = 2s;
    cfg.cache = co;
    auto n = node::start(*sys_, std::move(cfg));
    if (!n) {
      ADD_FAILURE() << to_string(n.error());
      throw std::runtime_error("cannot start " + name);
    }
    nodes_.push_back(*n);
    return *n;
  }

  http_server& serve(std::shared_ptr<node> n, http_options opts = {}) {
    auto s = http_server::start(std::move(n), std::move(opts));
    if (!s) {
      ADD_FAILURE() << to_string(s.error());
      throw std::runtime_error("cannot serve");
    }
    servers_.push_back(std::move(*s));
    return *servers_.back();
  }

  static httplib::Client client(const http_server& s) {
    httplib::Client c{s.local().address_string(), s.local().port()};
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(10, 0);
    return c;
  }

  /// GET `path`: (status, body); status -1 when no answer came.
  static std::pair<int, std::string> get(const http_server& s,
                                         const std::string& path,
                                         const httplib::Headers& headers = {}) {
    auto c = client(s);
    auto res = c.Get(path, headers);
    if (!res) {
      return {-1, httplib::to_string(res.error())};
    }
    return {res->status, res->body};
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::vector<std::shared_ptr<node>> nodes_;
  std::vector<std::unique_ptr<http_server>> servers_;
};

/// Checks the Prometheus text format 0.0.4 as a scraper reads it: every
/// line a comment (`# HELP`, `# TYPE`) or a sample `name{labels} value`;
/// each family's TYPE comes once and before its samples; sample names
/// belong to a declared family (histograms with `_bucket`, `_sum`,
/// `_count`); no series twice. Returns the samples by series, or an error
/// message naming the first offending line.
std::map<std::string, double> parse_exposition(const std::string& text,
                                               std::string& problem) {
  static const std::regex sample_re{
    R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*)?\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$)"};
  static const std::regex type_re{
    R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)"};
  std::map<std::string, std::string> types;
  std::set<std::string> seen_samples_of;
  std::map<std::string, double> out;
  std::istringstream in{text};
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    std::smatch m;
    if (line.starts_with("# HELP ")) {
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      if (!std::regex_match(line, m, type_re)) {
        problem = "line " + std::to_string(no) + ": bad TYPE: " + line;
        return {};
      }
      if (!types.emplace(m[1], m[2]).second) {
        problem = "line " + std::to_string(no) + ": second TYPE: " + line;
        return {};
      }
      continue;
    }
    if (!std::regex_match(line, m, sample_re)) {
      problem = "line " + std::to_string(no) + ": not a sample: " + line;
      return {};
    }
    std::string name = m[1];
    std::string family = name;
    if (!types.contains(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (name.ends_with(suffix)) {
          auto base = name.substr(0, name.size() - std::strlen(suffix));
          if (types.contains(base) && types[base] == "histogram") {
            family = base;
          }
        }
      }
    }
    if (!types.contains(family)) {
      problem = "line " + std::to_string(no) + ": no TYPE before: " + line;
      return {};
    }
    auto series = name + std::string{m[2]};
    if (!out.emplace(series, std::stod(m[7])).second) {
      problem = "line " + std::to_string(no) + ": series twice: " + line;
      return {};
    }
  }
  return out;
}

TEST_F(http_test, serves_health_ready_metrics_status_and_the_page) {
  auto a = start("http-a", 1, nullptr);
  auto b = start("http-b", 2, a.get());
  auto& s = serve(a);
  ASSERT_NE(s.local().port(), 0);

  EXPECT_EQ(get(s, "/health"), std::make_pair(200, std::string{"ok\n"}));
  EXPECT_EQ(get(s, "/ready"), std::make_pair(200, std::string{"ready\n"}));

  // /status: both members alive, once gossip has carried b to a.
  nlohmann::json status;
  ASSERT_TRUE(test::eventually(
    [&] {
      auto [code, body] = get(s, "/status");
      if (code != 200) {
        return false;
      }
      status = nlohmann::json::parse(body);
      int alive = 0;
      for (const auto& m : status["members"]) {
        alive += m["state"] == "alive" ? 1 : 0;
      }
      return alive == 2 && status["peers"].size() == 1;
    },
    20s))
    << status.dump(2);
  EXPECT_EQ(status["node"]["name"], "http-a");
  EXPECT_EQ(status["node"]["ready"], true);
  std::set<std::string> names;
  for (const auto& m : status["members"]) {
    names.insert(m["name"]);
    EXPECT_GE(m["incarnation"].get<int>(), 0);
  }
  EXPECT_EQ(names, (std::set<std::string>{"http-a", "http-b"}));

  // A bucket and traffic: the status lists it, and the hit counter rises.
  ASSERT_TRUE(a->create_bucket("web"));
  std::vector<std::byte> v{std::byte{'x'}};
  ASSERT_TRUE(test::eventually(
    [&] {
      return a->put("web", "k", v).has_value();
    },
    20s));
  ASSERT_TRUE(a->get("web", "k"));
  auto [code, text] = get(s, "/metrics");
  ASSERT_EQ(code, 200);
  std::string problem;
  auto samples = parse_exposition(text, problem);
  ASSERT_TRUE(problem.empty()) << problem << "\n" << text;
  EXPECT_EQ(samples["mycorrizal_members{state=\"alive\"}"], 2) << text;
  EXPECT_EQ(samples["mycorrizal_scrape_part_up{part=\"membership\"}"], 1);
  EXPECT_EQ(samples["mycorrizal_scrape_part_up{part=\"cache\"}"], 1);
  // b joined by a push/pull with a.
  EXPECT_GE(samples["mycorrizal_gossip_push_pulls_total"], 1) << text;
  // The get ran at whichever node is the key's primary: the sum of both.
  auto hits = [&](const http_server& srv) {
    std::string p;
    auto m = parse_exposition(get(srv, "/metrics").second, p);
    return m["mycorrizal_cache_hits_total{bucket=\"web\"}"];
  };
  auto& sb = serve(b);
  double before = hits(s) + hits(sb);
  EXPECT_GE(before, 1);
  ASSERT_TRUE(b->get("web", "k"));
  EXPECT_TRUE(test::eventually(
    [&] {
      return hits(s) + hits(sb) > before;
    },
    10s));

  auto [scode, sbody] = get(s, "/status");
  ASSERT_EQ(scode, 200);
  auto st = nlohmann::json::parse(sbody);
  ASSERT_EQ(st["buckets"].size(), 1u) << st.dump(2);
  EXPECT_EQ(st["buckets"][0]["name"], "web");
  EXPECT_EQ(st["buckets"][0]["owners"].size(), 2u) << st.dump(2);

  // The connection to b with the figures its connection actor keeps.
  nlohmann::json conns;
  EXPECT_TRUE(test::eventually(
    [&] {
      auto [c, body] = get(s, "/status");
      if (c != 200) {
        return false;
      }
      conns = nlohmann::json::parse(body)["connections"];
      return conns.size() == 1 && conns[0]["bytes_sent"].get<double>() > 0
             && conns[0]["rtt_ms"].get<double>() > 0;
    },
    20s))
    << conns.dump(2);
  EXPECT_EQ(conns[0]["peer"], "http-b") << conns.dump(2);

  auto [pcode, page] = get(s, "/");
  EXPECT_EQ(pcode, 200);
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>")) << page.substr(0, 100);
  // Self-contained: no asset from elsewhere.
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("href=\"http"), std::string::npos);

  EXPECT_EQ(get(s, "/nope").first, 404);
}

TEST_F(http_test, scrape_has_latencies_errors_handshakes_and_gossip_types) {
  auto a = start("http-a", 1, nullptr);
  auto b = start("http-b", 2, a.get());
  auto& s = serve(a);
  // An application on both nodes that answers, and one only `a` has.
  app_callbacks echo;
  echo.on_request = [](const app_request& r) -> app_reply {
    return r.payload;
  };
  ASSERT_TRUE(a->register_app("echo", echo));
  ASSERT_TRUE(b->register_app("echo", echo));
  ASSERT_TRUE(a->register_app("lonely", app_callbacks{}));
  std::vector<std::byte> ping{std::byte{'p'}};
  ASSERT_TRUE(test::eventually(
    [&] {
      return a->request("http-b", "echo", ping, 2s).has_value();
    },
    20s));
  for (int i = 0; i < 4; ++i) {
    auto r = a->request("http-b", "echo", ping, 2s);
    ASSERT_TRUE(r) << to_string(r.error());
  }
  auto refused = a->request("http-b", "lonely", ping, 2s);
  ASSERT_FALSE(refused);
  std::printf("request to an application http-b lacks: %s\n",
              to_string(refused.error()).c_str());
  ASSERT_TRUE(a->create_bucket("lat"));
  std::vector<std::byte> v{std::byte{'x'}};
  ASSERT_TRUE(test::eventually(
    [&] {
      return a->put("lat", "k", v).has_value();
    },
    20s));
  ASSERT_TRUE(a->get("lat", "k"));
  ASSERT_TRUE(a->get("lat", "absent"));

  std::map<std::string, double> m;
  std::string text;
  auto scrape = [&] {
    text = get(s, "/metrics").second;
    std::string problem;
    m = parse_exposition(text, problem);
    EXPECT_TRUE(problem.empty()) << problem;
  };
  // Probes run once a second: wait for a ping and its ack each way.
  EXPECT_TRUE(test::eventually(
    [&] {
      scrape();
      return m[R"(mycorrizal_gossip_messages_total{type="ping",direction="sent"})"]
               >= 1
             && m[R"(mycorrizal_gossip_messages_total{type="ack",direction="received"})"]
                  >= 1;
    },
    20s))
    << text;
  EXPECT_GT(
    m[R"(mycorrizal_gossip_message_bytes_total{type="ping",direction="sent"})"],
    m[R"(mycorrizal_gossip_messages_total{type="ping",direction="sent"})"]);

  // Requests: five answered, one failed by its code; all in the histogram.
  const std::string echo_l = R"(app="echo",stream="")";
  EXPECT_GE(m["mycorrizal_app_request_duration_seconds_count{" + echo_l + "}"],
            5)
    << text;
  EXPECT_GT(m["mycorrizal_app_request_duration_seconds_sum{" + echo_l + "}"],
            0);
  EXPECT_EQ(m["mycorrizal_app_request_duration_seconds_bucket{" + echo_l
              + R"(,le="+Inf"})"],
            m["mycorrizal_app_request_duration_seconds_count{" + echo_l + "}"]);
  std::string lonely_err
    = R"(mycorrizal_app_request_errors_total{app="lonely",stream="",errc=")";
  lonely_err += to_string(refused.error().code());
  lonely_err += "\"}";
  EXPECT_EQ(m[lonely_err], 1) << lonely_err << "\n" << text;
  EXPECT_EQ(
    m[R"(mycorrizal_app_requests_failed_total{app="lonely",stream=""})"], 1);

  // The cache's operations, timed where they were asked (a).
  EXPECT_GE(
    m[R"(mycorrizal_cache_operation_duration_seconds_count{bucket="lat",op="get"})"],
    2)
    << text;
  EXPECT_GE(
    m[R"(mycorrizal_cache_operation_duration_seconds_count{bucket="lat",op="put"})"],
    1);
  EXPECT_TRUE(
    m.contains(R"(mycorrizal_cache_handoff_sent_bytes_total{bucket="lat"})"));

  // The connection between a and b: one handshake completed here, none
  // failed.
  EXPECT_GE(m[R"(mycorrizal_quic_handshakes_total{outcome="completed"})"], 1)
    << text;
  EXPECT_EQ(
    m[R"(mycorrizal_quic_handshakes_total{outcome="peer_certificate"})"], 0);
  EXPECT_TRUE(
    m.contains(R"(mycorrizal_quic_handshakes_total{outcome="timeout"})"));
}

TEST_F(http_test, host_families_appear_in_the_scrape) {
  auto a = start("http-host", 3, nullptr);
  auto fam = a->metrics_registry().add_counter(
    "myapp_orders_total", "Orders the host took.", {"kind"});
  ASSERT_TRUE(fam);
  (*fam)->with({"web"})->inc(41);
  (*fam)->with({"web"})->inc();
  auto& s = serve(a);
  auto [code, text] = get(s, "/metrics");
  ASSERT_EQ(code, 200);
  std::string problem;
  auto samples = parse_exposition(text, problem);
  ASSERT_TRUE(problem.empty()) << problem;
  EXPECT_EQ(samples["myapp_orders_total{kind=\"web\"}"], 42) << text;
  // The same text without HTTP, for hosts that serve their own.
  EXPECT_NE(a->metrics_text().find("myapp_orders_total{kind=\"web\"} 42"),
            std::string::npos);
}

TEST_F(http_test, a_token_guards_every_path_but_health) {
  auto a = start("http-token", 4, nullptr);
  http_options opts;
  opts.token = "s3cret-token";
  auto& s = serve(a, opts);
  httplib::Headers good{{"Authorization", "Bearer s3cret-token"}};
  httplib::Headers bad{{"Authorization", "Bearer s3cret-tokem"}};
  httplib::Headers basic{{"Authorization", "Basic czNjcmV0LXRva2Vu"}};
  for (const char* path : {"/metrics", "/ready", "/status", "/"}) {
    SCOPED_TRACE(path);
    auto c = client(s);
    auto res = c.Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    EXPECT_TRUE(res->get_header_value("WWW-Authenticate").starts_with("Bearer"))
      << res->get_header_value("WWW-Authenticate");
    EXPECT_EQ(get(s, path, bad).first, 401);
    EXPECT_EQ(get(s, path, basic).first, 401);
    EXPECT_EQ(get(s, path, good).first, 200);
  }
  EXPECT_EQ(get(s, "/health").first, 200);
  // The page takes the token as a query parameter (a browser cannot set
  // headers on the first load); the API does not.
  EXPECT_EQ(get(s, "/?token=s3cret-token").first, 200);
  EXPECT_EQ(get(s, "/?token=wrong").first, 401);
  EXPECT_EQ(get(s, "/metrics?token=s3cret-token").first, 401);
}

TEST_F(http_test, bad_options_and_a_port_in_use_are_errors) {
  auto a = start("http-bad", 5, nullptr);
  http_options zero;
  zero.threads = 0;
  auto r1 = http_server::start(a, zero);
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error(), errc::invalid_config);
  http_options spaced;
  spaced.token = "two words";
  auto r2 = http_server::start(a, spaced);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error(), errc::invalid_config);
  auto r3 = http_server::start(nullptr, {});
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error(), errc::invalid_config);

  auto& s = serve(a);
  http_options same;
  same.bind = s.local();
  auto r4 = http_server::start(a, same);
  ASSERT_FALSE(r4);
  EXPECT_EQ(r4.error(), errc::connection_lost) << to_string(r4.error());
  // The first server still serves.
  EXPECT_EQ(get(s, "/health").first, 200);
}

TEST_F(http_test, a_stopped_node_is_neither_healthy_nor_ready) {
  auto a = start("http-stop", 6, nullptr);
  auto& s = serve(a);
  EXPECT_EQ(get(s, "/ready").first, 200);
  a->stop();
  EXPECT_EQ(get(s, "/health").first, 503);
  EXPECT_EQ(get(s, "/ready").first, 503);
  // The scrape still answers: every part of the node is down.
  auto [code, text] = get(s, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_NE(text.find("mycorrizal_scrape_part_up{part=\"membership\"} 0"),
            std::string::npos)
    << text;
  s.stop();
  s.stop(); // idempotent
  EXPECT_EQ(get(s, "/health").first, -1);
}

// -- the API under /v1/ (the CLI's) ------------------------------------------

/// A call's status and body; status -1 when no answer came.
struct reply {
  int status = -1;
  std::string body;
  std::string expires;

  nlohmann::json json() const {
    return nlohmann::json::parse(body, nullptr, false);
  }
};

reply call(const http_server& s, const std::string& method,
           const std::string& path, const std::string& body = {},
           const httplib::Headers& headers = {}) {
  httplib::Client c{s.local().address_string(), s.local().port()};
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(20, 0);
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "GET") {
    res = c.Get(path.c_str(), headers);
  } else if (method == "PUT") {
    res = c.Put(path.c_str(), headers, body, "application/octet-stream");
  } else if (method == "POST") {
    res = c.Post(path.c_str(), headers, body, "application/json");
  } else {
    res = c.Delete(path.c_str(), headers);
  }
  if (!res) {
    return {-1, httplib::to_string(res.error()), {}};
  }
  return {res->status, res->body,
          res->get_header_value("X-Mycorrizal-Expires-Ms")};
}

TEST_F(http_test, api_members_and_the_cache_with_binary_values) {
  auto a = start("api-a", 40, nullptr);
  auto b = start("api-b", 41, a.get());
  auto& sa = serve(a);
  auto& sb = serve(b);
  nlohmann::json seen;
  ASSERT_TRUE(test::eventually(
    [&] {
      auto r = call(sb, "GET", "/v1/members");
      seen = r.json();
      if (r.status != 200 || !seen.contains("members")) {
        return false;
      }
      size_t alive = 0;
      for (const auto& m : seen["members"]) {
        alive += m["state"] == "alive" ? 1 : 0;
      }
      return alive == 2;
    },
    20s))
    << seen.dump();
  EXPECT_EQ(seen["node"], "api-b");
  auto st = call(sa, "GET", "/v1/status").json();
  EXPECT_EQ(st["node"]["name"], "api-a");
  // A binary value with a NUL and a key with '/', ' ' and '?' (encoded).
  std::string value{"a\0b\xff\n", 5};
  auto put = call(sa, "PUT", "/v1/cache/web/k%2F1%20%3F?ttl=60", value);
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.json()["bucket_created"], true);
  auto got = call(sb, "GET", "/v1/cache/web/k%2F1%20%3F");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.body, value);
  EXPECT_GT(std::stoll(got.expires), 0);
  auto missing = call(sb, "GET", "/v1/cache/web/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json()["code"], "key_not_found") << missing.body;
  auto no_bucket = call(sb, "GET", "/v1/cache/nobucket/k");
  EXPECT_EQ(no_bucket.status, 404);
  EXPECT_EQ(no_bucket.json()["code"], "unknown_bucket") << no_bucket.body;
  EXPECT_EQ(call(sa, "PUT", "/v1/cache/web/k?ttl=soon", "v").status, 400);
  auto buckets = call(sb, "GET", "/v1/cache").json();
  ASSERT_EQ(buckets["buckets"].size(), 1u) << buckets.dump();
  EXPECT_EQ(buckets["buckets"][0]["name"], "web");
  auto stats = call(sa, "GET", "/v1/cache-stats");
  EXPECT_EQ(stats.status, 200);
  EXPECT_EQ(stats.json()["buckets"][0]["name"], "web") << stats.body;
  EXPECT_EQ(call(sb, "DELETE", "/v1/cache/web/k%2F1%20%3F").status, 200);
  EXPECT_EQ(call(sb, "DELETE", "/v1/cache/web/k%2F1%20%3F").status, 404);
  EXPECT_EQ(call(sa, "GET", "/v1/cache/web/k%2F1%20%3F").status, 404);
  auto unknown = call(sa, "GET", "/v1/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.json()["code"], "not_found") << unknown.body;
}

TEST_F(http_test, api_keyring_rotation_on_every_member) {
  std::vector<std::byte> k1(32, std::byte{1});
  std::vector<std::byte> k2(16, std::byte{2});
  auto a = start("key-a", 42, nullptr, k1);
  auto b = start("key-b", 43, a.get(), k1);
  auto c = start("key-c", 44, a.get(), k1);
  http_options opts;
  opts.token = "tok";
  auto& s = serve(b, opts);
  httplib::Headers auth{{"Authorization", "Bearer tok"}};
  EXPECT_EQ(call(s, "GET", "/v1/keyring").status, 401);
  EXPECT_EQ(call(s, "GET", "/v1/keyring").json()["code"], "unauthorized");
  // Every member must be a peer of b before the fan-out can reach it.
  nlohmann::json seen;
  ASSERT_TRUE(test::eventually(
    [&] {
      auto r = call(s, "GET", "/v1/keyring", {}, auth);
      seen = r.json();
      return r.status == 200 && seen["members"] == 3;
    },
    20s))
    << seen.dump();
  ASSERT_EQ(seen["keys"].size(), 1u) << seen.dump();
  EXPECT_EQ(seen["keys"][0]["key"], encode_base64(k1));
  EXPECT_EQ(seen["keys"][0]["members"], 3);
  EXPECT_EQ(seen["keys"][0]["primary"], 3);
  auto op = [&](const std::string& what, const std::vector<std::byte>& key) {
    nlohmann::json body{{"op", what}, {"key", encode_base64(key)}};
    return call(s, "POST", "/v1/keyring", body.dump(), auth);
  };
  auto r = op("install", k2);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["members"], 3);
  EXPECT_TRUE(r.json()["failed"].empty());
  ASSERT_EQ(op("use", k2).status, 200);
  // The key in use cannot go: every member refuses.
  auto refused = op("remove", k2);
  EXPECT_EQ(refused.status, 500);
  EXPECT_EQ(refused.json()["failed"].size(), 3u) << refused.body;
  ASSERT_EQ(op("remove", k1).status, 200);
  auto list = call(s, "GET", "/v1/keyring", {}, auth).json();
  ASSERT_EQ(list["keys"].size(), 1u) << list.dump();
  EXPECT_EQ(list["keys"][0]["key"], encode_base64(k2));
  EXPECT_EQ(list["keys"][0]["primary"], 3);
  for (auto* n : {a.get(), b.get(), c.get()}) {
    auto keys = n->keyring_list();
    ASSERT_TRUE(keys) << to_string(keys.error());
    EXPECT_EQ(keys->failed(), 0u);
  }
  // Bad input is the caller's error, before anything is sent.
  EXPECT_EQ(op("install", std::vector<std::byte>(7, std::byte{3})).status, 400);
  EXPECT_EQ(op("rotate", k2).status, 400);
  EXPECT_EQ(call(s, "POST", "/v1/keyring", "{\"op\":\"use\",\"key\":\"%%\"}",
                 auth)
              .status,
            400);
  EXPECT_EQ(call(s, "POST", "/v1/keyring", "not json", auth).status, 400);
  // Still one cluster under the new key.
  ASSERT_TRUE(test::eventually(
    [&] {
      auto ms = a->members();
      return ms && std::count_if(ms->begin(), ms->end(), [](const auto& m) {
                     return m.state == gossip::node_state::alive;
                   }) == 3;
    },
    10s));
}

TEST_F(http_test, api_leave_answers_then_leaves) {
  auto a = start("leave-a", 45, nullptr);
  auto b = start("leave-b", 46, a.get());
  auto left = std::make_shared<std::promise<void>>();
  auto fut = left->get_future();
  http_options opts;
  opts.on_leave = [left] {
    left->set_value();
  };
  auto& s = serve(b, opts);
  auto r = call(s, "POST", "/v1/leave");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["node"], "leave-b");
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(call(s, "POST", "/v1/leave").status, 503);
  // Without a hook the server stops the node itself.
  auto& sa = serve(a);
  EXPECT_EQ(call(sa, "POST", "/v1/leave").status, 200);
  EXPECT_TRUE(test::eventually(
    [&] {
      return a->stopped();
    },
    10s));
}

} // namespace
