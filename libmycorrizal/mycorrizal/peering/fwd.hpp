// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>

namespace mycorrizal::peering {

/// Names one QUIC connection for the dialer; the owner picks the values
/// (the peers actor uses the connection actor's id). 0 means none.
using connection_id = uint64_t;

/// No connection.
inline constexpr connection_id no_connection = 0;

enum class member_change : uint8_t;
enum class close_reason : uint8_t;
struct member_update;
struct connection_up;
struct dialer_config;
struct dialer_stats;
struct peer;
struct dial;
struct close_connection;
struct publish_up;
struct publish_down;
struct publish_unreachable;
class dialer;

} // namespace mycorrizal::peering
