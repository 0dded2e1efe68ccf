// SPDX-License-Identifier: Apache-2.0
// The GnuTLS side of `quic::credentials`. Internal: never installed.
#pragma once

#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/internal/gnutls.hpp"

#include <chrono>
#include <string>

namespace mycorrizal::quic::detail {

struct credentials_state {
  /// Trust (CA bundle) plus own certificate and key; peer verification with
  /// time checks disabled (the connection checks validity against its
  /// injected wall time).
  internal::cred_ptr cred;
  /// The own certificate's CN.
  std::string node_name;
  bool has_certificate = false;
  std::chrono::system_clock::time_point not_after;
};

} // namespace mycorrizal::quic::detail
