// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace mycorrizal::gossip {

/// A read-only view of wire bytes.
using bytes_view = std::span<const std::byte>;

/// Owned wire bytes.
using byte_buffer = std::vector<std::byte>;

struct ping;
struct indirect_ping;
struct ack;
struct nack;
struct err_resp;
struct suspect;
struct alive;
struct dead;
struct push_pull_header;
struct push_node_state;
struct push_pull;
struct user_msg_header;
struct user_msg;
struct compress_msg;
class keyring;

namespace msgpack {

class reader;

} // namespace msgpack

} // namespace mycorrizal::gossip
