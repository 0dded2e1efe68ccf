// SPDX-License-Identifier: Apache-2.0
// Internal: CAF messages as the payload of DATA, REQUEST and RESPONSE frames
// (flag_caf_message). Not installed.
#pragma once

#include "mycorrizal/expected.hpp"

#include <caf/actor_system.hpp>
#include <caf/message.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace mycorrizal::detail {

/// A short rendering of a message for error texts (at most 80 characters).
std::string describe_message(const caf::message& msg);

/// Serializes `msg` with CAF's binary serializer.
/// @returns `errc::not_serializable` when an element's type is not
///          registered with `add_message_type` (CAF 0.17's serializer would
///          skip it silently).
expected<std::vector<std::byte>> encode_caf_message(caf::actor_system& sys,
                                                    caf::message& msg);

/// Deserializes a payload a peer sent.
/// @returns `errc::not_serializable` for bytes that are not exactly one
///          message of registered types: malformed, truncated, trailing
///          bytes, or a type this node does not know (CAF 0.17's
///          deserializer reports none of these; it yields an empty message).
expected<caf::message> decode_caf_message(caf::actor_system& sys,
                                          const std::vector<std::byte>& bytes);

} // namespace mycorrizal::detail
