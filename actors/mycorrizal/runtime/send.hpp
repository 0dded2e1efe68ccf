// SPDX-License-Identifier: Apache-2.0
// Sending from a typed actor to a dynamically typed one.
#pragma once

#include <caf/actor.hpp>
#include <caf/execution_unit.hpp>
#include <caf/local_actor.hpp>
#include <caf/message_id.hpp>

#include <utility>

namespace mycorrizal {

/// Sends `xs...` from `self` to `dest`, which is dynamically typed (a
/// channel, a subscriber, a connection). CAF 0.17's `send()` refuses that
/// pairing at compile time when `self` is typed, and `anon_send()` loses
/// the sender and the execution context: the receiver is then scheduled
/// through the scheduler's shared queue instead of the sending worker's own,
/// which costs latency on the message paths. This is what `send()` does,
/// without the static check.
template <class... Ts>
void send_untyped(caf::local_actor* self, const caf::actor& dest, Ts&&... xs) {
  static_assert(sizeof...(Ts) > 0, "no message to send");
  if (dest) {
    dest->eq_impl(caf::make_message_id(), self->ctrl(), self->context(),
                  std::forward<Ts>(xs)...);
  }
}

/// Sends `xs...` to `dest` without a sender, as `caf::anon_send` does, but
/// lets `host` schedule the receiver: the reactor's loop passes itself, so
/// that what it reads runs on its thread while it has time (see
/// `net::reactor_config::host`). A null `host` is `anon_send`.
template <class... Ts>
void send_hosted(caf::execution_unit* host, const caf::actor& dest,
                 Ts&&... xs) {
  static_assert(sizeof...(Ts) > 0, "no message to send");
  if (dest) {
    dest->eq_impl(caf::make_message_id(), nullptr, host,
                  std::forward<Ts>(xs)...);
  }
}

} // namespace mycorrizal
