// SPDX-License-Identifier: Apache-2.0
// Mycorrizal's QUIC as users get it: `spawn_transport` over `net::reactor`,
// connection and stream actors (actors/mycorrizal/transport.hpp).
#pragma once

#include "common.hpp"

namespace mycorrizal::bench {

/// Runs the actor cases `opts` selects and adds their rows to `out`.
void run_actors(const options& opts, const pki& certs, report& out);

} // namespace mycorrizal::bench
