// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/http.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace mycorrizal {

namespace {

using json = nlohmann::json;

constexpr std::string_view component = "http";

/// Bounds of one request (see the header).
constexpr size_t max_body = size_t{64} << 10;
constexpr time_t read_timeout_s = 10;

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
      members.push_back(std::move(j));
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

  void routes() {
    server.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (allowed(req)) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"mycorrizal\"");
        res.set_content("unauthorized\n", "text/plain; charset=utf-8");
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
    server.set_error_handler(
      [](const httplib::Request&, httplib::Response& res) {
        if (res.body.empty()) {
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
  MYCORRIZAL_LOG_INFO(component, "HTTP on {} (metrics, health, status{})",
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
