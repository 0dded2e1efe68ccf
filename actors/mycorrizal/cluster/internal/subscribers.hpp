// SPDX-License-Identifier: Apache-2.0
// Internal: the subscribers of an actor's events. Not installed.
#pragma once

#include "mycorrizal/runtime/send.hpp"

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>

#include <algorithm>
#include <vector>

namespace mycorrizal::detail {

/// Actors that get an actor's events, each once. The owner monitors them
/// (`add`) and forgets one when its down message comes (`remove`).
class subscriber_list {
public:
  /// Adds `who` (once) and monitors it.
  template <class Self>
  void add(Self* self, const caf::actor& who) {
    if (std::find(actors_.begin(), actors_.end(), who) == actors_.end()) {
      self->monitor(who);
      actors_.push_back(who);
    }
  }

  /// Forgets `who` (after its down message, or on unsubscribe).
  void remove(const caf::actor_addr& who) {
    actors_.erase(std::remove_if(actors_.begin(), actors_.end(),
                                 [&](const caf::actor& a) {
                                   return a.address() == who;
                                 }),
                  actors_.end());
  }

  /// Sends `msg` to every subscriber (any actors, so untyped; see
  /// `send_untyped`). Nobody answers events.
  template <class T>
  void publish(caf::local_actor* self, const T& msg) const {
    for (const auto& a : actors_) {
      send_untyped(self, a, msg);
    }
  }

private:
  std::vector<caf::actor> actors_;
};

} // namespace mycorrizal::detail
