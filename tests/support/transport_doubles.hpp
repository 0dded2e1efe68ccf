// SPDX-License-Identifier: Apache-2.0
// The QUIC side of an application channel, for actor tests in virtual time:
// a connection that opens streams and a stream that takes every write and
// records it. They speak the protocol of the transport actors
// (transport/transport.hpp) and nothing more.
#pragma once

#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/type_ids.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include "support/bytes.hpp"

#include <caf/event_based_actor.hpp>

#include <cstddef>
#include <memory>
#include <string_view>
#include <variant>
#include <vector>

namespace mycorrizal::test {

/// What the stream side saw.
struct wire_log {
  std::vector<wire::owned_frame> written;
  int opens = 0;
  int closes = 0;
  int resets = 0;

  std::vector<wire::owned_request> requests() const {
    std::vector<wire::owned_request> out;
    for (auto& f : written) {
      if (auto* r = std::get_if<wire::owned_request>(&f)) {
        out.push_back(*r);
      }
    }
    return out;
  }
};

/// A stream that takes every write.
inline stream_actor::behavior_type stream_side(stream_actor::pointer,
                                               std::shared_ptr<wire_log> log) {
  return {
    [=](write_atom, wire::owned_frame& f) {
      log->written.push_back(std::move(f));
    },
    [=](write_atom, std::vector<wire::owned_frame>& fs) {
      log->written.insert(log->written.end(), fs.begin(), fs.end());
    },
    [=](write_atom, const shared_frames& frames) {
      log->written.insert(log->written.end(), frames->begin(), frames->end());
    },
    [=](close_atom) {
      ++log->closes;
    },
    [=](reset_atom, uint64_t) {
      ++log->resets;
    },
    [=](stats_atom) {
      return stream_stats{};
    },
  };
}

/// A connection whose every open hands out `stream`.
inline connection_actor::behavior_type
connection_side(connection_actor::pointer, stream_actor stream,
                std::shared_ptr<wire_log> log) {
  return {
    [=](open_atom, wire::owned_frame&, caf::actor&) {
      ++log->opens;
      return stream;
    },
    [=](close_atom, uint64_t, std::string&) {
      // Channels never close their connection.
    },
    [=](stats_atom) {
      return connection_info{};
    },
  };
}

} // namespace mycorrizal::test
