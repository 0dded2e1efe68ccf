// SPDX-License-Identifier: Apache-2.0
// TLS over a byte stream (TCP) with a node's identity: the Redis front
// door's `--resp-tls`. Pure: bytes in, bytes out, the time injected.
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/quic/credentials.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace mycorrizal::quic {

/// Whether a TLS server asks its clients for certificates (Redis's
/// `tls-auth-clients`).
enum class client_auth {
  /// No client certificate is asked for.
  none,
  /// Asked for; one that is sent must verify.
  optional,
  /// Required, and must verify (Redis's default).
  required,
};

/// One TLS session over a stream (TLS 1.2 or 1.3, GnuTLS's default
/// priorities), driven by the bytes its owner moves: `receive` takes what
/// came from the network and gives back the application's bytes;
/// `send` takes the application's bytes; `take_output` gives what must go
/// to the network (handshake, records, alerts, close_notify). Certificates
/// are verified against the credentials' CA bundle, and their validity
/// against the time given at creation.
class tls_stream {
public:
  using wall_time = std::chrono::system_clock::time_point;

  /// A server with `creds`' certificate (it must have one).
  /// @returns `errc::invalid_config` for credentials without certificate
  ///          or when GnuTLS fails to set up.
  static expected<tls_stream> server(const credentials& creds, client_auth auth,
                                     wall_time now);

  /// A client that trusts `creds`' CA bundle and presents its certificate
  /// if it has one; `server_name` (if not empty) must be the server
  /// certificate's CN.
  static expected<tls_stream> client(const credentials& creds, wall_time now,
                                     std::string server_name = {});

  tls_stream(tls_stream&&) noexcept;
  tls_stream& operator=(tls_stream&&) noexcept;
  ~tls_stream();

  /// Takes bytes from the network; appends the application bytes they
  /// complete to `plain`.
  /// @returns `errc::connection_lost` (the handshake failed or the peer's
  ///          certificate was refused: the context says why) or
  ///          `errc::decrypt_failed` (a bad record). The session is then
  ///          dead: send `take_output()` (an alert) and close.
  expected<void> receive(std::span<const std::byte> in, std::string& plain);

  /// Encrypts `plain` into the output (queued until the handshake is done).
  /// @returns `errc::connection_lost` when the session is dead or closed.
  expected<void> send(std::string_view plain);

  /// Appends a close_notify to the output; later sends fail.
  void close();

  /// The bytes for the network since the last call.
  std::string take_output();

  bool handshake_done() const noexcept;

  /// The peer sent close_notify.
  bool peer_closed() const noexcept;

  /// The CN of the peer's verified certificate ("" without one).
  const std::string& peer_name() const noexcept;

  /// Opaque (tls_stream.cpp).
  struct impl;

private:
  explicit tls_stream(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_;
};

} // namespace mycorrizal::quic
