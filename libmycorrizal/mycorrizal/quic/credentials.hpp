// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/quic/fwd.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

/// A node's TLS identity for the QUIC transport: the cluster CA bundle it
/// trusts, its own certificate and private key (PEM). A node's name is the
/// common name (CN) of its certificate. Everything is validated when loaded,
/// so that a bad file is reported at startup with a precise reason instead of
/// as a failed handshake later.
namespace mycorrizal::quic {

namespace detail {

/// Opaque: the GnuTLS credentials shared by every connection of a node.
struct credentials_state;

} // namespace detail

/// CA bundle + node certificate + key, loaded and checked. Cheap to copy
/// (shared, immutable state); connections keep the state alive.
class credentials {
public:
  using wall_time = std::chrono::system_clock::time_point;

  /// Loads PEM text. `now` is the wall-clock time the certificate's validity
  /// is checked against. Checks, in order: the CA bundle parses and holds
  /// only CA certificates; the node certificate parses; the key parses and
  /// belongs to the certificate; the certificate is valid at `now`; its CN is
  /// not empty; it is signed by a CA of the bundle.
  /// @returns `errc::invalid_config` whose context says which check failed
  ///          and on which input.
  static expected<credentials>
  from_pem(std::string_view ca_pem, std::string_view cert_pem,
           std::string_view key_pem, wall_time now);

  /// Like `from_pem`, reading the three files first.
  /// @returns `errc::invalid_config` naming the path of a file that cannot
  ///          be read, or any `from_pem` error (prefixed with the path).
  static expected<credentials>
  from_files(const std::string& ca_file, const std::string& cert_file,
             const std::string& key_file, wall_time now);

  /// Trusts `ca_pem` but presents no certificate. A server rejects a client
  /// without certificate; this exists for tests and diagnostics.
  /// @returns `errc::invalid_config` when the bundle is invalid.
  static expected<credentials> trust_only(std::string_view ca_pem);

  /// The node name: CN of the own certificate ("" for `trust_only`).
  const std::string& node_name() const noexcept;

  /// Whether an own certificate is present.
  bool has_certificate() const noexcept;

  /// End of the own certificate's validity (epoch for `trust_only`).
  wall_time not_after() const noexcept;

  /// The shared state connections use.
  const std::shared_ptr<const detail::credentials_state>&
  state() const noexcept {
    return state_;
  }

private:
  explicit credentials(std::shared_ptr<const detail::credentials_state> st)
      : state_(std::move(st)) {
    // nop
  }

  std::shared_ptr<const detail::credentials_state> state_;
};

/// Reads a whole file.
/// @returns `errc::invalid_config` naming `path` and the OS reason.
expected<std::string> read_file(const std::string& path);

} // namespace mycorrizal::quic
