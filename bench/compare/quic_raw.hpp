// SPDX-License-Identifier: Apache-2.0
// QUIC without the actors: two `quic::endpoint` cores, each driven by its own
// thread over a plain non-blocking UDP socket (poll, recvmmsg, sendmmsg).
// Separates the cost of QUIC (ngtcp2 + GnuTLS + the cores) from the cost of
// the actors around it.
#pragma once

#include "common.hpp"

namespace mycorrizal::bench {

/// Runs the raw-core cases `opts` selects and adds their rows to `out`.
void run_raw(const options& opts, const pki& certs, report& out);

} // namespace mycorrizal::bench
