// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/packet.hpp"

#include "mycorrizal/gossip/crc32.hpp"
#include "mycorrizal/gossip/lzw.hpp"
#include "mycorrizal/gossip/msgpack.hpp"
#include "mycorrizal/wire/detail/bytes.hpp"

#include <fmt/format.h>

namespace mycorrizal::gossip {

namespace {

using wire::detail::load_u16;
using wire::detail::load_u32;

message_type type_byte(bytes_view msg) noexcept {
  return static_cast<message_type>(msg[0]);
}

// Walks compound and compress layers, collecting leaves.
class unwrapper {
public:
  unwrapper(const packet_limits& lim, unwrapped_packet& out)
      : lim_(lim), out_(out), budget_(lim.max_decompressed) {
    // nop
  }

  expected<void> walk(bytes_view msg, size_t depth) {
    if (msg.empty()) {
      ++out_.dropped;
      return {};
    }
    switch (type_byte(msg)) {
      case message_type::compound: {
        if (depth >= lim_.max_depth) {
          return unexpected{
            error{errc::nesting_too_deep, "layers nested too deep"}};
        }
        auto parts = split_compound(msg);
        if (!parts) {
          return unexpected{parts.error()};
        }
        out_.dropped += parts->truncated;
        for (auto part : parts->parts) {
          if (auto res = walk(part, depth + 1); !res) {
            return res;
          }
        }
        return {};
      }
      case message_type::compress: {
        if (depth >= lim_.max_depth) {
          return unexpected{
            error{errc::nesting_too_deep, "layers nested too deep"}};
        }
        auto plain = decompress_message(msg, budget_);
        if (!plain) {
          return unexpected{plain.error()};
        }
        budget_ -= plain->size();
        return walk(*plain, depth + 1);
      }
      default:
        if (out_.messages.size() >= lim_.max_messages) {
          return errc::too_many_entries;
        }
        out_.messages.emplace_back(msg.begin(), msg.end());
        return {};
    }
  }

private:
  const packet_limits& lim_;
  unwrapped_packet& out_;
  size_t budget_;
};

template <class T>
expected<packet_message> decode_as(bytes_view body) {
  auto x = decode_body<T>(body);
  if (!x) {
    return unexpected{x.error()};
  }
  return packet_message{std::move(*x)};
}

} // namespace

expected<compound_parts> split_compound(bytes_view msg) {
  if (msg.size() < 2) {
    return unexpected{
      error{errc::malformed_frame, "compound: missing part count"}};
  }
  size_t n = static_cast<uint8_t>(msg[1]);
  auto rest = msg.subspan(2);
  if (rest.size() < 2 * n) {
    return unexpected{
      error{errc::malformed_frame, "compound: truncated length table"}};
  }
  compound_parts result;
  auto lengths = rest.first(2 * n);
  rest = rest.subspan(2 * n);
  for (size_t i = 0; i < n; ++i) {
    size_t len = load_u16(lengths.data() + 2 * i);
    if (rest.size() < len) {
      result.truncated = n - i;
      break;
    }
    result.parts.push_back(rest.first(len));
    rest = rest.subspan(len);
  }
  return result;
}

expected<byte_buffer> make_compound(std::span<const byte_buffer> parts) {
  if (parts.empty() || parts.size() > 127) {
    return errc::too_many_entries;
  }
  byte_buffer out;
  out.push_back(static_cast<std::byte>(message_type::compound));
  out.push_back(static_cast<std::byte>(parts.size()));
  for (const auto& part : parts) {
    if (part.empty()) {
      return unexpected{error{errc::malformed_frame, "compound: empty part"}};
    }
    if (part.size() > UINT16_MAX) {
      return errc::frame_too_large;
    }
    out.push_back(static_cast<std::byte>(part.size() >> 8));
    out.push_back(static_cast<std::byte>(part.size() & 0xff));
  }
  for (const auto& part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

byte_buffer add_crc(bytes_view msg) {
  byte_buffer out;
  out.reserve(msg.size() + 5);
  out.push_back(static_cast<std::byte>(message_type::has_crc));
  auto crc = crc32_ieee(msg);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::byte>((crc >> shift) & 0xff));
  }
  out.insert(out.end(), msg.begin(), msg.end());
  return out;
}

expected<bytes_view> strip_crc(bytes_view msg) {
  if (msg.size() < 5 || type_byte(msg) != message_type::has_crc) {
    return unexpected{error{errc::malformed_frame, "hasCrc: too short"}};
  }
  auto inner = msg.subspan(5);
  if (load_u32(msg.data() + 1) != crc32_ieee(inner)) {
    return unexpected{
      error{errc::checksum_mismatch, "hasCrc: checksum mismatch"}};
  }
  return inner;
}

expected<byte_buffer> compress_message(bytes_view msg) {
  compress_msg c{0, lzw_compress(msg)};
  return encode_message(c);
}

expected<byte_buffer> decompress_message(bytes_view msg, size_t max_size) {
  if (msg.empty() || type_byte(msg) != message_type::compress) {
    return unexpected{error{errc::malformed_frame, "compress: wrong type"}};
  }
  msgpack::reader r{msg.subspan(1)};
  // Read the map by hand to keep `Buf` as a view (no copy before LZW).
  bytes_view buf;
  uint64_t algo = 0;
  static constexpr std::string_view decl[] = {"Algo", "Buf"};
  auto res = msgpack::read_struct(
    r, decl, [&](std::string_view k, msgpack::reader& in) -> expected<bool> {
      if (k == "Algo") {
        auto v = in.read_uint(UINT8_MAX);
        if (!v) {
          return unexpected{v.error()};
        }
        algo = *v;
        return true;
      }
      if (k == "Buf") {
        auto v = in.read_raw();
        if (!v) {
          return unexpected{v.error()};
        }
        buf = *v;
        return true;
      }
      return false;
    });
  if (!res) {
    return res.error().code() == errc::truncated_frame
             ? unexpected{error{errc::malformed_frame, "compress: truncated"}}
             : unexpected{res.error()};
  }
  if (algo != 0) {
    return unexpected{
      error{errc::unsupported_version, "compress: unknown algorithm"}};
  }
  return lzw_decompress(buf, max_size);
}

expected<byte_buffer> add_label(std::string_view label, bytes_view packet) {
  if (label.size() > 255) {
    return unexpected{error{errc::too_large, "label above 255 bytes"}};
  }
  byte_buffer out;
  if (!label.empty()) {
    out.reserve(2 + label.size() + packet.size());
    out.push_back(static_cast<std::byte>(message_type::has_label));
    out.push_back(static_cast<std::byte>(label.size()));
    for (char c : label) {
      out.push_back(static_cast<std::byte>(c));
    }
  }
  out.insert(out.end(), packet.begin(), packet.end());
  return out;
}

expected<std::pair<std::string_view, bytes_view>>
split_label(bytes_view packet) {
  if (packet.empty() || type_byte(packet) != message_type::has_label) {
    return std::make_pair(std::string_view{}, packet);
  }
  if (packet.size() < 2) {
    return unexpected{error{errc::malformed_frame, "label header cut off"}};
  }
  auto len = std::to_integer<size_t>(packet[1]);
  if (len == 0) {
    return unexpected{error{errc::malformed_frame, "empty label"}};
  }
  if (packet.size() < 2 + len) {
    return unexpected{error{errc::malformed_frame, "label cut off"}};
  }
  std::string_view label{reinterpret_cast<const char*>(packet.data() + 2), len};
  return std::make_pair(label, packet.subspan(2 + len));
}

expected<byte_buffer> encrypt_packet(bytes_view plaintext, const keyring& ring,
                                     uint8_t version, const gcm_nonce& nonce,
                                     std::string_view label) {
  if (ring.empty()) {
    return unexpected{error{errc::invalid_config, "keyring is empty"}};
  }
  byte_buffer out;
  bytes_view aad{reinterpret_cast<const std::byte*>(label.data()),
                 label.size()};
  if (auto res = encrypt_payload(out, version, ring.primary(), nonce, plaintext,
                                 aad);
      !res) {
    return unexpected{res.error()};
  }
  return out;
}

expected<unwrapped_packet> unwrap_packet(bytes_view datagram,
                                         const packet_options& opts) {
  unwrapped_packet result;
  auto labelled = split_label(datagram);
  if (!labelled) {
    return unexpected{labelled.error()};
  }
  auto [label, rest] = *labelled;
  if (!opts.skip_inbound_label_check && label != opts.label) {
    return unexpected{error{errc::malformed_frame,
                            fmt::format("label '{}' where '{}' was expected",
                                        label, opts.label)}};
  }
  datagram = rest;
  byte_buffer plain;
  if (opts.keys != nullptr && !opts.keys->empty()) {
    bytes_view aad{reinterpret_cast<const std::byte*>(label.data()),
                   label.size()};
    auto dec = decrypt_payload(*opts.keys, datagram, aad);
    if (dec) {
      plain = std::move(*dec);
      datagram = plain;
      result.encrypted = true;
    } else if (opts.verify_incoming) {
      return unexpected{dec.error()};
    }
  }
  if (datagram.empty()) {
    return unexpected{error{errc::malformed_frame, "empty packet"}};
  }
  if (datagram.size() >= 5 && type_byte(datagram) == message_type::has_crc) {
    auto inner = strip_crc(datagram);
    if (!inner) {
      return unexpected{inner.error()};
    }
    datagram = *inner;
    result.had_crc = true;
  }
  unwrapper walker{opts.limits, result};
  if (auto res = walker.walk(datagram, 0); !res) {
    return unexpected{res.error()};
  }
  return result;
}

expected<packet_message> decode_packet_message(bytes_view msg) {
  if (msg.empty()) {
    return unexpected{error{errc::malformed_frame, "empty message"}};
  }
  auto body = msg.subspan(1);
  expected<packet_message> result = errc::unknown_frame_type;
  switch (type_byte(msg)) {
    case message_type::ping: result = decode_as<ping>(body); break;
    case message_type::indirect_ping:
      result = decode_as<indirect_ping>(body);
      break;
    case message_type::ack: result = decode_as<ack>(body); break;
    case message_type::nack: result = decode_as<nack>(body); break;
    case message_type::suspect: result = decode_as<suspect>(body); break;
    case message_type::alive: result = decode_as<alive>(body); break;
    case message_type::dead: result = decode_as<dead>(body); break;
    case message_type::user:
      result = packet_message{user_msg{byte_buffer(body.begin(), body.end())}};
      break;
    default: break;
  }
  // Inside a datagram there is nothing more to wait for.
  if (!result && result.error().code() == errc::truncated_frame) {
    return unexpected{error{errc::malformed_frame, "message truncated"}};
  }
  return result;
}

expected<byte_buffer> encode_packet_message(const packet_message& msg) {
  return std::visit(
    [](const auto& x) -> expected<byte_buffer> {
      using type = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<type, user_msg>) {
        byte_buffer out;
        out.push_back(static_cast<std::byte>(message_type::user));
        out.insert(out.end(), x.payload.begin(), x.payload.end());
        return out;
      } else {
        return encode_message(x);
      }
    },
    msg);
}

} // namespace mycorrizal::gossip
