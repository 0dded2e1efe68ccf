// SPDX-License-Identifier: Apache-2.0
// The node's Redis front door: the Redis protocol over TCP, answered from
// Mycel.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/tls_stream.hpp"
#include "mycorrizal/resp/request.hpp"

#include <caf/actor.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

/// `resp_server` serves a node's cache to Redis clients (docs/resp.md):
/// one listener actor on the node's reactor, and one actor per client
/// connection that parses its requests (`resp::request_parser`), runs each
/// command against Mycel (every node serves every key: the cache forwards
/// to the key's owners) and writes the replies in request order, also
/// when a pipeline's operations finish out of order.
///
/// Bounds: at most `max_clients` connections (beyond: Redis's "max number
/// of clients reached" and close); a client's requests are parsed with
/// Redis's limits; at most `max_pipeline` commands of one client run at
/// once, and its reads pause while that many wait (TCP flow control stops
/// the client, not the node's memory); replies a client does not read
/// queue up to `max_output_buffer` bytes, then the client is closed (Redis:
/// client-output-buffer-limit).
///
/// Database `n` (`SELECT n`, 0 by default) is the bucket `db<n>`, created
/// with default options on first use.
namespace mycorrizal {

class node;

struct resp_options {
  /// Where to listen; port 0 picks a free one.
  ip_endpoint bind = ip_endpoint::v4(127, 0, 0, 1, 6379);
  /// `requirepass`: empty for none.
  std::string password;
  /// Client connections at once (Redis's maxclients is 10000).
  size_t max_clients = 10'000;
  /// Commands of one client in flight at once.
  size_t max_pipeline = 1024;
  /// Reply bytes queued for one client before it is closed.
  size_t max_output_buffer = size_t{64} << 20;
  /// `databases`: SELECT takes 0 to databases - 1.
  uint32_t databases = 16;
  /// How long one cache operation may take.
  caf::timespan op_timeout = std::chrono::seconds{5};
  /// The parser's limits (Redis's by default).
  resp::request_limits limits = resp::request_limits::defaults();
  /// TLS for every client (`redis-cli --tls`): the node's certificate, and
  /// the CA bundle that client certificates must be signed by. None: plain
  /// TCP.
  std::optional<quic::credentials> tls;
  /// Redis's `tls-auth-clients`: whether clients must show a certificate
  /// (`required`, Redis's default), may (`optional`) or need not (`none`).
  quic::client_auth tls_auth = quic::client_auth::required;

  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

class resp_server {
public:
  /// Listens and starts serving `n`'s cache.
  /// @returns `errc::invalid_config` for bad options or a node without a
  ///          cache; `errc::connection_lost` when the address cannot be
  ///          bound; `errc::shutting_down` for a stopped node.
  static expected<std::unique_ptr<resp_server>> start(std::shared_ptr<node> n,
                                                      resp_options opts);

  resp_server(const resp_server&) = delete;
  resp_server& operator=(const resp_server&) = delete;

  /// Calls `stop`.
  ~resp_server();

  /// The bound address (with the real port).
  ip_endpoint local() const noexcept;

  /// Stops listening and closes every client connection. Idempotent.
  void stop();

private:
  struct impl;

  explicit resp_server(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_;
};

} // namespace mycorrizal
