// SPDX-License-Identifier: Apache-2.0
// A node's state as Prometheus metrics: what its actors report when asked.
#pragma once

#include "mycorrizal/metrics/registry.hpp"
#include "mycorrizal/serve/node_snapshot.hpp"

/// `node::metrics_text` asks each actor of the node for its counters at
/// exposition time (`node::snapshot`), and `report_node` writes them as
/// metric families. Nothing
/// on an actor's hot path changes for metrics that already are counters in
/// its state. A part that did not answer in time is left out and reported
/// by `mycorrizal_scrape_part_up{part=...} 0`.
///
/// docs/metrics.md lists every family.
namespace mycorrizal {

/// Writes `snap` as metric families into `out`.
void report_node(const node_snapshot& snap, metrics::collector_sink& out);

} // namespace mycorrizal
