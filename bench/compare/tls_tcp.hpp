// SPDX-License-Identifier: Apache-2.0
// The baseline: GnuTLS TLS 1.3 over TCP on loopback, mutual certificate
// authentication with the same certificates as QUIC, both ends in this
// process (the server on its own thread, blocking sockets).
#pragma once

#include "common.hpp"

namespace mycorrizal::bench {

/// Runs the TLS/TCP cases `opts` selects and adds their rows to `out`.
void run_tls(const options& opts, const pki& certs, report& out);

} // namespace mycorrizal::bench
