// SPDX-License-Identifier: Apache-2.0
// The limits of each QUIC stream actor (a field of `node_config`).
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/wire/limits.hpp"

#include <cstddef>

namespace mycorrizal {

/// Limits of each stream actor.
struct stream_options {
  /// Encoded bytes a stream queues for sending (not yet taken by QUIC);
  /// a write beyond it fails with `errc::queue_full`. An empty queue takes
  /// any write, so a frame larger than this still goes. 8 MiB.
  size_t max_queued_bytes = size_t{8} << 20;

  /// Bytes handed to the connection actor and not yet accepted by QUIC, per
  /// stream (a second, small buffer between the actors). 1 MiB.
  size_t max_in_flight_bytes = size_t{1} << 20;

  /// Decoded bytes delivered to the consumer and not yet answered; beyond
  /// it the stream stops reading and the peer's window stays shut. 4 MiB.
  size_t max_unacked_bytes = size_t{4} << 20;

  /// Frames per `stream_frames` delivery at most.
  size_t max_frames_per_delivery = 256;

  /// Limits of the frames we accept (the peer's limits for what we send are
  /// assumed equal).
  wire::limits limits = wire::limits::defaults();

  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

} // namespace mycorrizal
