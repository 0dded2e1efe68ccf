// SPDX-License-Identifier: Apache-2.0
// The node's HTTP front door: metrics, health, status and the status page.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"

#include <caf/timespan.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

/// `http_server` serves one node over HTTP/1.1 (cpp-httplib, a thread pool
/// of its own; the handlers use the node's blocking facade):
///
/// | path | answer |
/// |---|---|
/// | `GET /metrics` | Prometheus text format 0.0.4 (`node::metrics_text`) |
/// | `GET /health` | 200 `ok` while the node runs; 503 once it failed or
/// stopped (liveness: restart it) | | `GET /ready` | 200 `ready` once the first
/// join finished and while the node serves; 503 before and after (readiness:
/// send it traffic) | | `GET /status` | JSON: the node, members, connections
/// with RTT, applications, buckets with owners and sizes (docs/http.md) | |
/// `GET /` | the status page: one self-contained HTML document that fetches
/// `/status` every 2 s |
///
/// The API under `/v1/` (JSON; docs/http.md) is what the `mycorrizal` CLI
/// talks to: members, status, the cache (get, put, delete, buckets,
/// stats), the keyring on every member (`node::keyring_*`) and a graceful
/// leave.
///
/// With a token, every path but `/health` wants `Authorization: Bearer
/// <token>` (401 with `WWW-Authenticate: Bearer` otherwise); the status
/// page takes it as `/?token=...` and sends it on with its requests.
/// Requests are bounded (8 KiB of headers, 64 KiB of body, 10 s to read),
/// so a slow or hostile client costs one pool thread for at most that long.
namespace mycorrizal {

class node;

struct http_options {
  /// Where to listen; port 0 picks a free one. Loopback by default: the
  /// status and the metrics describe the cluster to whoever asks.
  ip_endpoint bind = ip_endpoint::v4(127, 0, 0, 1, 0);
  /// Empty: no authentication.
  std::string token;
  /// Requests served at once.
  size_t threads = 4;
  /// How long a request waits for each of the node's actors.
  caf::timespan node_wait = std::chrono::seconds{2};
  /// How long a keyring operation waits for every member's answer.
  caf::timespan keyring_wait = std::chrono::seconds{5};
  /// Called once, after the reply to `POST /v1/leave` was written, on the
  /// thread that served it. Empty: the server calls `node::stop` itself
  /// there. A process that should exit after the leave (mycorrizal-node)
  /// wakes its main thread here, which stops the node.
  std::function<void()> on_leave;

  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

class http_server {
public:
  /// Binds and starts serving `n`.
  /// @returns `errc::invalid_config` for bad options;
  ///          `errc::connection_lost` when the address cannot be bound.
  static expected<std::unique_ptr<http_server>> start(std::shared_ptr<node> n,
                                                      http_options opts);

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Calls `stop`.
  ~http_server();

  /// The bound address (with the real port).
  ip_endpoint local() const noexcept;

  /// Stops accepting, ends the connections and joins the threads.
  /// Idempotent.
  void stop();

private:
  struct impl;

  explicit http_server(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_;
};

/// The status page (HTML with its script and style inline).
const std::string& status_page_html();

} // namespace mycorrizal
