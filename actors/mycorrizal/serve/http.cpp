// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/http.hpp"

#include "mycorrizal/base64.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace mycorrizal {

namespace {

using json = nlohmann::json;

constexpr std::string_view http_component = "http";

/// Bounds of one request (see the header).
constexpr size_t max_body = size_t{64} << 10;
constexpr time_t read_timeout_s = 10;
/// How long a PUT that created its bucket retries while the other owners
/// do not know the bucket yet, and the pause between tries.
constexpr auto create_wait = std::chrono::seconds{5};
constexpr auto create_retry = std::chrono::milliseconds{20};

std::string_view state_name(gossip::node_state s) {
  switch (s) {
    case gossip::node_state::alive: return "alive";
    case gossip::node_state::suspect: return "suspect";
    case gossip::node_state::dead: return "dead";
    case gossip::node_state::left: return "left";
  }
  return "unknown";
}

double ms(duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

/// Constant-time comparison, so that the token cannot be guessed byte by
/// byte from response times.
bool same_secret(std::string_view x, std::string_view y) {
  if (x.size() != y.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff |= static_cast<unsigned char>(x[i] ^ y[i]);
  }
  return diff == 0;
}

json member_json(const gossip::member& m) {
  json j = {
    {"name", m.name},
    {"address", to_string(m.address)},
    {"state", state_name(m.state)},
    {"incarnation", m.incarnation},
  };
  auto meta = gossip::decode_node_meta(m.meta);
  if (meta && *meta && (*meta)->quic_port != 0) {
    j["quic_port"] = (*meta)->quic_port;
    j["roles"] = (*meta)->roles;
  }
  return j;
}

json status_json(node& n, const node_snapshot& snap) {
  json out;
  out["node"] = {
    {"name", n.name()},
    {"gossip", to_string(n.gossip_endpoint())},
    {"quic", to_string(n.quic_endpoint())},
    {"ready", n.ready()},
  };
  if (snap.health_score) {
    out["node"]["health_score"] = *snap.health_score;
  }
  if (auto f = n.failure()) {
    out["node"]["failure"] = to_string(*f);
  }
  auto members = json::array();
  if (snap.members) {
    for (const auto& m : *snap.members) {
      members.push_back(member_json(m));
    }
  }
  out["members"] = std::move(members);
  auto conns = json::array();
  if (snap.connections) {
    for (const auto& c : *snap.connections) {
      conns.push_back({
        {"peer", c.peer_name},
        {"remote", to_string(c.remote)},
        {"incoming", c.incoming},
        {"rtt_ms", ms(c.stats.smoothed_rtt)},
        {"min_rtt_ms", ms(c.stats.min_rtt)},
        {"cwnd", c.stats.cwnd},
        {"bytes_sent", c.stats.bytes_sent},
        {"bytes_received", c.stats.bytes_received},
        {"lost_packets", c.stats.lost_packets},
      });
    }
  }
  out["connections"] = std::move(conns);
  auto peers = json::array();
  if (snap.peer_list) {
    for (const auto& p : *snap.peer_list) {
      peers.push_back({
        {"name", p.name},
        {"connected", static_cast<bool>(p.connection)},
        {"unreachable", p.unreachable},
        {"applications", p.apps},
      });
    }
  }
  out["peers"] = std::move(peers);
  auto apps = json::array();
  if (snap.apps) {
    for (const auto& a : *snap.apps) {
      auto streams = json::array();
      for (const auto& s : a.streams) {
        streams.push_back({
          {"name", s.name},
          {"bytes_in", s.bytes_in},
          {"bytes_out", s.bytes_out},
          {"messages_in", s.messages_in},
          {"messages_out", s.messages_out},
          {"requests_out", s.requests_out},
          {"requests_failed", s.requests_failed},
          {"failed_sends", s.failed_sends},
          {"peers", s.active_nodes},
        });
      }
      apps.push_back({{"name", a.application}, {"streams", streams}});
    }
  }
  out["applications"] = std::move(apps);
  auto buckets = json::array();
  if (snap.bucket_infos) {
    for (const auto& b : *snap.bucket_infos) {
      json j = {
        {"name", b.name},
        {"partitions", b.options.partitions},
        {"rf", b.options.rf},
        {"owners",
         snap.cache_members ? *snap.cache_members : std::vector<std::string>{}},
      };
      if (snap.buckets) {
        for (const auto& s : *snap.buckets) {
          if (s.name == b.name) {
            j["entries"] = s.entries;
            j["bytes"] = s.bytes;
            j["partitions_owned"] = s.partitions_owned;
            j["partitions_primary"] = s.partitions_primary;
            j["hits"] = s.hits;
            j["misses"] = s.misses;
          }
        }
      }
      buckets.push_back(std::move(j));
    }
  }
  out["buckets"] = std::move(buckets);
  return out;
}

// -- the API under /v1/ -------------------------------------------------------

/// The HTTP status for an error of the node: 400 for bad input, 404 for
/// what does not exist, 503 when the cluster cannot answer now.
int http_status_of(errc c) {
  switch (c) {
    case errc::invalid_config:
    case errc::invalid_identifier:
    case errc::too_large:
    case errc::wrong_type:
    case errc::bucket_exists: return 400;
    case errc::unknown_bucket:
    case errc::unknown_application: return 404;
    case errc::timeout:
    case errc::node_down:
    case errc::connection_lost:
    case errc::no_owner:
    case errc::queue_full:
    case errc::shutting_down: return 503;
    default: return 500;
  }
}

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(2) + "\n", "application/json");
}

/// `{"error": text, "code": name}` with `status`.
void reply_error(httplib::Response& res, int status, std::string_view code,
                 const std::string& text) {
  reply_json(res, status, json{{"error", text}, {"code", std::string{code}}});
}

void reply_error(httplib::Response& res, const error& e) {
  auto text = e.context().empty() ? std::string{to_string(e.code())}
                                  : e.context();
  reply_error(res, http_status_of(e.code()), to_string(e.code()), text);
}

/// The `ttl` parameter (seconds, > 0, fractions allowed); zero when absent.
/// @returns false for a bad value.
bool parse_ttl(const httplib::Request& req, caf::timespan& ttl) {
  if (!req.has_param("ttl")) {
    ttl = caf::timespan{0};
    return true;
  }
  auto text = req.get_param_value("ttl");
  double secs = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(),
                                   secs);
  if (ec != std::errc{} || end != text.data() + text.size()
      || !std::isfinite(secs) || secs <= 0 || secs > 1e9) {
    return false;
  }
  ttl = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>{secs});
  return ttl > caf::timespan{0};
}

json bucket_info_json(const bucket_info& b) {
  return {
    {"name", b.name},
    {"partitions", b.options.partitions},
    {"rf", b.options.rf},
    {"ack", b.options.ack == cache::proto::ack_mode::all ? "all" : "primary"},
    {"default_ttl_ms", b.options.default_ttl_ms},
    {"max_entries", b.options.max_entries},
    {"max_bytes", b.options.max_bytes},
  };
}

json bucket_stats_json(const bucket_stats& s) {
  return {
    {"name", s.name},
    {"entries", s.entries},
    {"bytes", s.bytes},
    {"tombstones", s.tombstones},
    {"hits", s.hits},
    {"misses", s.misses},
    {"evictions", s.evictions},
    {"expirations", s.expirations},
    {"partitions_owned", s.partitions_owned},
    {"partitions_primary", s.partitions_primary},
    {"handoffs_sent", s.handoffs_sent},
    {"handoffs_received", s.handoffs_received},
    {"handoffs_abandoned", s.handoffs_abandoned},
    {"partitions_orphaned", s.partitions_orphaned},
    {"repairs", s.repairs},
    {"malformed", s.malformed},
  };
}

/// A keyring report: the members asked, the failures, and for a list each
/// key with the number of members that hold it and use it as primary.
json keyring_json(const keyring_report& r, bool list) {
  json out = {{"members", r.replies.size()}};
  auto failed = json::array();
  for (const auto& m : r.replies) {
    if (m.failure) {
      failed.push_back({{"node", m.node},
                        {"error", m.failure->context().empty()
                                    ? std::string{to_string(m.failure->code())}
                                    : m.failure->context()},
                        {"code", to_string(m.failure->code())}});
    }
  }
  out["failed"] = std::move(failed);
  if (list) {
    // key -> (holders, primary holders), in the order first seen.
    std::vector<std::string> order;
    std::map<std::string, std::pair<size_t, size_t>> counts;
    for (const auto& m : r.replies) {
      for (size_t i = 0; i < m.keys.size(); ++i) {
        auto k = encode_base64(m.keys[i]);
        auto [it, added] = counts.try_emplace(k, 0, 0);
        if (added) {
          order.push_back(k);
        }
        ++it->second.first;
        if (i == 0) {
          ++it->second.second;
        }
      }
    }
    auto keys = json::array();
    for (const auto& k : order) {
      keys.push_back({{"key", k},
                      {"members", counts[k].first},
                      {"primary", counts[k].second}});
    }
    out["keys"] = std::move(keys);
  }
  return out;
}

bool is_api(const httplib::Request& req) {
  return req.path.starts_with("/v1/") || req.path == "/v1";
}

} // namespace

expected<void> http_options::validate() const {
  if (threads == 0 || threads > 256) {
    return unexpected{
      error{errc::invalid_config,
            fmt::format("http.threads: must be 1..256, got {}", threads)}};
  }
  if (node_wait <= caf::timespan::zero()) {
    return unexpected{
      error{errc::invalid_config, "http.node_wait: must be positive"}};
  }
  if (keyring_wait <= caf::timespan::zero()) {
    return unexpected{
      error{errc::invalid_config, "http.keyring_wait: must be positive"}};
  }
  for (auto c : token) {
    if (c <= ' ' || c == 0x7f) {
      return unexpected{error{errc::invalid_config,
                              "http.token: no spaces or control characters"}};
    }
  }
  return {};
}

struct http_server::impl {
  std::shared_ptr<node> n;
  http_options opts;
  httplib::Server server;
  ip_endpoint local;
  std::thread thread;
  /// Set when the listening loop returned (also when it failed at once).
  std::atomic<bool> loop_done{false};
  std::mutex stop_mtx;
  bool stopped = false;
  /// Set by the first `POST /v1/leave`.
  std::atomic<bool> leaving{false};

  /// Whether `req` may see `path` (always for /health).
  bool allowed(const httplib::Request& req) const {
    if (opts.token.empty() || req.path == "/health") {
      return true;
    }
    auto auth = req.get_header_value("Authorization");
    constexpr std::string_view bearer = "Bearer ";
    if (auth.size() > bearer.size() && auth.starts_with(bearer)) {
      return same_secret(std::string_view{auth}.substr(bearer.size()),
                         opts.token);
    }
    if (req.path == "/" && req.has_param("token")) {
      return same_secret(req.get_param_value("token"), opts.token);
    }
    return false;
  }

  /// The API under /v1/ (docs/http.md).
  void api_routes() {
    server.Get("/v1/status",
               [this](const httplib::Request&, httplib::Response& res) {
                 auto snap = n->snapshot(opts.node_wait);
                 reply_json(res, 200, status_json(*n, snap));
               });
    server.Get("/v1/members", [this](const httplib::Request&,
                                     httplib::Response& res) {
      auto ms = n->members();
      if (!ms) {
        reply_error(res, 503, to_string(ms.error().code()),
                    "the membership did not answer: " + to_string(ms.error()));
        return;
      }
      auto members = json::array();
      for (const auto& m : *ms) {
        members.push_back(member_json(m));
      }
      reply_json(res, 200,
                 json{{"node", n->name()}, {"members", std::move(members)}});
    });
    server.Get("/v1/cache",
               [this](const httplib::Request&, httplib::Response& res) {
                 auto bs = n->buckets();
                 if (!bs) {
                   reply_error(res, bs.error());
                   return;
                 }
                 auto out = json::array();
                 for (const auto& b : *bs) {
                   out.push_back(bucket_info_json(b));
                 }
                 reply_json(res, 200, json{{"buckets", std::move(out)}});
               });
    server.Get("/v1/cache-stats", [this](const httplib::Request&,
                                         httplib::Response& res) {
      auto st = n->cache_stats();
      if (!st) {
        reply_error(res, st.error());
        return;
      }
      auto out = json::array();
      for (const auto& b : *st) {
        out.push_back(bucket_stats_json(b));
      }
      reply_json(res, 200,
                 json{{"node", n->name()}, {"buckets", std::move(out)}});
    });
    constexpr auto entry_path = R"(/v1/cache/([^/]+)/(.+))";
    server.Get(entry_path, [this](const httplib::Request& req,
                                  httplib::Response& res) {
      const auto bucket = req.matches[1].str();
      const auto key = req.matches[2].str();
      auto got = n->get(bucket, key);
      if (!got) {
        reply_error(res, got.error());
        return;
      }
      if (!*got) {
        reply_error(res, 404, "key_not_found",
                    "no key '" + key + "' in bucket '" + bucket + "'");
        return;
      }
      const auto& e = **got;
      res.set_header("Cache-Control", "no-store");
      res.set_header("X-Mycorrizal-Expires-Ms", std::to_string(e.expires_ms));
      std::string body(e.value.size(), '\0');
      std::transform(e.value.begin(), e.value.end(), body.begin(),
                     [](std::byte b) {
                       return static_cast<char>(b);
                     });
      res.set_content(body, "application/octet-stream");
    });
    server.Put(entry_path, [this](const httplib::Request& req,
                                  httplib::Response& res) {
      const auto bucket = req.matches[1].str();
      const auto key = req.matches[2].str();
      put_options po;
      if (!parse_ttl(req, po.ttl)) {
        reply_error(res, 400, "invalid_config",
                    "ttl: want seconds > 0, got '" + req.get_param_value("ttl")
                      + "'");
        return;
      }
      std::vector<std::byte> value(req.body.size());
      std::transform(req.body.begin(), req.body.end(), value.begin(),
                     [](char c) {
                       return static_cast<std::byte>(c);
                     });
      auto ok = n->put(bucket, key, value, po);
      bool created = false;
      if (!ok && ok.error().code() == errc::unknown_bucket) {
        // A bucket comes into being with its first write (default
        // options), as an Olric DMap does.
        if (auto made = n->create_bucket(bucket); !made) {
          reply_error(res, made.error());
          return;
        }
        created = true;
        // The other owners learn of the bucket a moment later; until
        // they do, a replica refuses the write with `unknown_bucket`.
        auto& clock = n->system().clock();
        auto deadline = clock.now() + create_wait;
        ok = n->put(bucket, key, value, po);
        while (!ok && ok.error().code() == errc::unknown_bucket
               && clock.now() < deadline) {
          std::this_thread::sleep_for(create_retry);
          ok = n->put(bucket, key, value, po);
        }
      }
      if (!ok) {
        reply_error(res, ok.error());
        return;
      }
      reply_json(res, 200, json{{"written", *ok}, {"bucket_created", created}});
    });
    server.Delete(entry_path, [this](const httplib::Request& req,
                                     httplib::Response& res) {
      const auto bucket = req.matches[1].str();
      const auto key = req.matches[2].str();
      auto ok = n->del(bucket, key);
      if (!ok) {
        reply_error(res, ok.error());
        return;
      }
      if (!*ok) {
        reply_error(res, 404, "key_not_found",
                    "no key '" + key + "' in bucket '" + bucket + "'");
        return;
      }
      reply_json(res, 200, json{{"deleted", true}});
    });
    server.Get("/v1/keyring",
               [this](const httplib::Request&, httplib::Response& res) {
                 auto r = n->keyring_list(opts.keyring_wait);
                 if (!r) {
                   reply_error(res, r.error());
                   return;
                 }
                 auto body = keyring_json(*r, true);
                 if (auto failed = r->failed(); failed > 0) {
                   body["error"] = fmt::format("{} of {} members failed",
                                               failed, r->replies.size());
                   reply_json(res, 500, body);
                   return;
                 }
                 reply_json(res, 200, body);
               });
    server.Post("/v1/keyring", [this](const httplib::Request& req,
                                      httplib::Response& res) {
      auto body = json::parse(req.body, nullptr, false);
      if (body.is_discarded() || !body.is_object() || !body.contains("op")
          || !body["op"].is_string() || !body.contains("key")
          || !body["key"].is_string()) {
        reply_error(res, 400, "invalid_config",
                    R"(want a JSON object {"op": "install"|"use"|"remove", )"
                    R"("key": "<base64>"})");
        return;
      }
      auto op = body["op"].get<std::string>();
      auto key = decode_base64(body["key"].get<std::string>());
      if (!key) {
        reply_error(res, 400, "invalid_config", "key: not valid base64");
        return;
      }
      expected<keyring_report> r = unexpected{error{errc::invalid_config}};
      if (op == "install") {
        r = n->keyring_install(*key, opts.keyring_wait);
      } else if (op == "use") {
        r = n->keyring_use(*key, opts.keyring_wait);
      } else if (op == "remove") {
        r = n->keyring_remove(*key, opts.keyring_wait);
      } else {
        reply_error(res, 400, "invalid_config",
                    "op: want install, use or remove, got '" + op + "'");
        return;
      }
      if (!r) {
        reply_error(res, r.error());
        return;
      }
      auto out = keyring_json(*r, false);
      out["op"] = op;
      if (auto failed = r->failed(); failed > 0) {
        out["error"] = fmt::format("{} failed on {} of {} members", op, failed,
                                   r->replies.size());
        reply_json(res, 500, out);
        return;
      }
      reply_json(res, 200, out);
    });
    server.Post("/v1/leave", [this](const httplib::Request&,
                                    httplib::Response& res) {
      if (n->stopped() || leaving.exchange(true)) {
        reply_error(res, 503, "shutting_down",
                    n->name() + " is already leaving");
        return;
      }
      auto text = json{{"node", n->name()}, {"leaving", true}}.dump(2) + "\n";
      res.set_header("Cache-Control", "no-store");
      // The leave starts once the reply is written (the releaser runs when
      // httplib is done with the response), so the caller gets its answer.
      auto size = text.size();
      res.set_content_provider(
        size, "application/json",
        [text = std::move(text)](size_t offset, size_t length,
                                 httplib::DataSink& sink) {
          sink.write(text.data() + offset, length);
          return true;
        },
        [this](bool) {
          MYCORRIZAL_LOG_INFO(http_component, "{}: leaving (POST /v1/leave)",
                              n->name());
          if (opts.on_leave) {
            opts.on_leave();
          } else {
            n->stop();
          }
        });
    });
  }

  void routes() {
    server.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (allowed(req)) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        res.set_header("WWW-Authenticate", "Bearer realm=\"mycorrizal\"");
        if (is_api(req)) {
          reply_error(res, 401, "unauthorized",
                      "unauthorized: give Authorization: Bearer <token>");
        } else {
          res.status = 401;
          res.set_content("unauthorized\n", "text/plain; charset=utf-8");
        }
        return httplib::Server::HandlerResponse::Handled;
      });
    server.Get("/metrics",
               [this](const httplib::Request&, httplib::Response& res) {
                 res.set_content(n->metrics_text(opts.node_wait),
                                 "text/plain; version=0.0.4; charset=utf-8");
               });
    server.Get("/health",
               [this](const httplib::Request&, httplib::Response& res) {
                 if (auto f = n->failure()) {
                   res.status = 503;
                   res.set_content("failed: " + to_string(*f) + "\n",
                                   "text/plain; charset=utf-8");
                 } else if (n->stopped()) {
                   res.status = 503;
                   res.set_content("stopped\n", "text/plain; charset=utf-8");
                 } else {
                   res.set_content("ok\n", "text/plain; charset=utf-8");
                 }
               });
    server.Get("/ready",
               [this](const httplib::Request&, httplib::Response& res) {
                 if (n->ready() && !n->stopped() && !n->failure()) {
                   res.set_content("ready\n", "text/plain; charset=utf-8");
                 } else {
                   res.status = 503;
                   res.set_content("not ready\n", "text/plain; charset=utf-8");
                 }
               });
    server.Get("/status", [this](const httplib::Request&,
                                 httplib::Response& res) {
      auto snap = n->snapshot(opts.node_wait);
      res.set_header("Cache-Control", "no-store");
      res.set_content(status_json(*n, snap).dump(2) + "\n", "application/json");
    });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(status_page_html(), "text/html; charset=utf-8");
    });
    api_routes();
    server.set_error_handler(
      [](const httplib::Request& req, httplib::Response& res) {
        if (res.body.empty() && is_api(req)) {
          reply_error(res, res.status,
                      res.status == 404 ? "not_found" : "http_error",
                      res.status == 404
                        ? "no such path: " + req.method + " " + req.path
                        : fmt::format("error {}", res.status));
        } else if (res.body.empty()) {
          res.set_content(res.status == 404
                            ? "not found\n"
                            : fmt::format("error {}\n", res.status),
                          "text/plain; charset=utf-8");
        }
      });
    server.set_exception_handler([](const httplib::Request&,
                                    httplib::Response& res,
                                    std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(std::move(ep));
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        // keep the generic text
      }
      res.status = 500;
      res.set_content(what + "\n", "text/plain; charset=utf-8");
    });
  }
};

http_server::http_server(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

http_server::~http_server() {
  stop();
}

expected<std::unique_ptr<http_server>>
http_server::start(std::shared_ptr<node> n, http_options opts) {
  if (auto ok = opts.validate(); !ok) {
    return unexpected{ok.error()};
  }
  if (!n) {
    return unexpected{error{errc::invalid_config, "http: no node"}};
  }
  auto x = std::make_unique<impl>();
  x->n = std::move(n);
  x->opts = std::move(opts);
  auto threads = x->opts.threads;
  x->server.new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  // httplib's default sets SO_REUSEPORT: a second server on the same port
  // would bind too and the kernel would split the connections between
  // them. SO_REUSEADDR only: a port in use is an error; a restart can
  // bind while old connections sit in TIME_WAIT.
  x->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  x->server.set_payload_max_length(max_body);
  x->server.set_read_timeout(read_timeout_s, 0);
  x->server.set_write_timeout(read_timeout_s, 0);
  x->server.set_keep_alive_timeout(5);
  x->routes();
  auto host = x->opts.bind.address_string();
  int port = x->opts.bind.port();
  if (port == 0) {
    port = x->server.bind_to_any_port(host);
    if (port < 0) {
      port = 0;
    }
  } else if (!x->server.bind_to_port(host, port)) {
    port = 0;
  }
  if (port == 0) {
    return unexpected{
      error{errc::connection_lost,
            fmt::format("http: cannot bind {}: {}", to_string(x->opts.bind),
                        std::system_category().message(errno))}};
  }
  x->local = x->opts.bind;
  x->local.port(static_cast<uint16_t>(port));
  auto* raw = x.get();
  x->thread = std::thread{[raw] {
    raw->server.listen_after_bind();
    raw->loop_done = true;
  }};
  // httplib's stop() does nothing before the loop runs: a stop that came
  // first would leave the thread listening and its join hanging.
  while (!x->server.is_running() && !x->loop_done) {
    std::this_thread::yield();
  }
  if (x->loop_done) {
    x->thread.join();
    return unexpected{
      error{errc::connection_lost,
            fmt::format("http: cannot listen on {}", to_string(x->local))}};
  }
  MYCORRIZAL_LOG_INFO(http_component, "HTTP on {} (metrics, health, status{})",
                      to_string(x->local),
                      x->opts.token.empty() ? "" : "; bearer token required");
  return std::unique_ptr<http_server>{new http_server{std::move(x)}};
}

ip_endpoint http_server::local() const noexcept {
  return impl_->local;
}

void http_server::stop() {
  std::lock_guard guard{impl_->stop_mtx};
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

} // namespace mycorrizal
