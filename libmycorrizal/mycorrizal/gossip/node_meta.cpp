// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/node_meta.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/gossip/config.hpp"

#include <fmt/format.h>

namespace mycorrizal::gossip {

namespace {

constexpr std::byte magic0{'m'};
constexpr std::byte magic1{'z'};

enum class meta_tag : uint8_t {
  quic_port = 1,
  protocol = 2,
  app = 3,
  roles = 4
};

void put_tlv(byte_buffer& out, meta_tag tag, bytes_view value) {
  out.push_back(static_cast<std::byte>(tag));
  out.push_back(static_cast<std::byte>(value.size()));
  out.insert(out.end(), value.begin(), value.end());
}

unexpected<error> bad_meta(std::string what) {
  return unexpected{
    error{errc::malformed_frame, fmt::format("node meta: {}", what)}};
}

} // namespace

expected<byte_buffer> encode_node_meta(const node_meta& x) {
  if (x.app.size() > 255) {
    return unexpected{
      error{errc::too_large,
            fmt::format("node meta: {} application bytes (at most 255)",
                        x.app.size())}};
  }
  byte_buffer out{magic0, magic1, std::byte{node_meta_format}};
  std::byte port[2]{static_cast<std::byte>(x.quic_port >> 8),
                    static_cast<std::byte>(x.quic_port & 0xff)};
  put_tlv(out, meta_tag::quic_port, port);
  std::byte range[2]{std::byte{x.protocol_min}, std::byte{x.protocol_max}};
  put_tlv(out, meta_tag::protocol, range);
  if (!x.app.empty()) {
    put_tlv(out, meta_tag::app, x.app);
  }
  if (x.roles != 0) {
    std::byte roles[1]{std::byte{x.roles}};
    put_tlv(out, meta_tag::roles, roles);
  }
  if (out.size() > meta_max_size) {
    return unexpected{error{errc::too_large, "node meta above 512 bytes"}};
  }
  return out;
}

expected<std::optional<node_meta>> decode_node_meta(bytes_view meta) {
  if (meta.size() < 3 || meta[0] != magic0 || meta[1] != magic1) {
    return std::optional<node_meta>{};
  }
  if (meta[2] == std::byte{0}) {
    return bad_meta("format 0");
  }
  node_meta x;
  bool have_port = false;
  size_t pos = 3;
  while (pos < meta.size()) {
    if (meta.size() - pos < 2) {
      return bad_meta("TLV header cut off");
    }
    auto tag = std::to_integer<uint8_t>(meta[pos]);
    auto len = std::to_integer<size_t>(meta[pos + 1]);
    pos += 2;
    if (meta.size() - pos < len) {
      return bad_meta(fmt::format("tag {} value cut off", tag));
    }
    auto value = meta.subspan(pos, len);
    pos += len;
    switch (static_cast<meta_tag>(tag)) {
      case meta_tag::quic_port:
        if (len < 2) {
          return bad_meta("QUIC port shorter than 2 bytes");
        }
        x.quic_port
          = static_cast<uint16_t>(std::to_integer<unsigned>(value[0]) << 8
                                  | std::to_integer<unsigned>(value[1]));
        have_port = true;
        break;
      case meta_tag::protocol:
        if (len < 2) {
          return bad_meta("protocol range shorter than 2 bytes");
        }
        x.protocol_min = std::to_integer<uint8_t>(value[0]);
        x.protocol_max = std::to_integer<uint8_t>(value[1]);
        if (x.protocol_min == 0 || x.protocol_min > x.protocol_max) {
          return bad_meta(fmt::format("protocol range [{}, {}]", x.protocol_min,
                                      x.protocol_max));
        }
        break;
      case meta_tag::app: x.app.assign(value.begin(), value.end()); break;
      case meta_tag::roles:
        if (len < 1) {
          return bad_meta("roles shorter than 1 byte");
        }
        // Bits this version does not know are kept: a later node's roles.
        x.roles = std::to_integer<uint8_t>(value[0]);
        break;
      default:
        // A later format's field: skip it.
        break;
    }
  }
  if (!have_port) {
    return bad_meta("no QUIC port");
  }
  return std::optional<node_meta>{std::move(x)};
}

} // namespace mycorrizal::gossip
