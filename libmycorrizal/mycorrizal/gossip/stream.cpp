// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/stream.hpp"

#include "mycorrizal/gossip/lzw.hpp"
#include "mycorrizal/gossip/msgpack.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/wire/detail/bytes.hpp"

#include <fmt/format.h>

namespace mycorrizal::gossip {

namespace {

using wire::detail::load_u32;

// Marks "ran out of input" so that the caller can wait for more bytes.
struct need_more {};

template <class T>
using step = expected<std::variant<T, need_more>>;

// Parses a leaf stream message with `r` positioned after the type byte.
// When `complete`, running out of input is malformed; otherwise it means
// "need more".
step<stream_message> read_leaf(message_type type, msgpack::reader& r,
                               const stream_limits& lim, bool complete) {
  auto fail = [complete](const error& e) -> step<stream_message> {
    if (e.code() == errc::truncated_frame) {
      if (complete) {
        return unexpected{
          error{errc::malformed_frame, "stream message truncated"}};
      }
      return std::variant<stream_message, need_more>{need_more{}};
    }
    return unexpected{e};
  };
  auto ok = [](stream_message x) -> step<stream_message> {
    return std::variant<stream_message, need_more>{std::move(x)};
  };
  switch (type) {
    case message_type::ping: {
      auto x = read_body<ping>(r);
      return x ? ok(std::move(*x)) : fail(x.error());
    }
    case message_type::ack: {
      auto x = read_body<ack>(r);
      return x ? ok(std::move(*x)) : fail(x.error());
    }
    case message_type::err: {
      auto x = read_body<err_resp>(r);
      return x ? ok(std::move(*x)) : fail(x.error());
    }
    case message_type::user: {
      auto hdr = read_body<user_msg_header>(r);
      if (!hdr) {
        return fail(hdr.error());
      }
      if (hdr->user_msg_len < 0) {
        return unexpected{error{errc::malformed_frame, "negative UserMsgLen"}};
      }
      if (static_cast<uint64_t>(hdr->user_msg_len) > lim.max_user_msg) {
        return errc::frame_too_large;
      }
      auto data = r.take(static_cast<size_t>(hdr->user_msg_len));
      if (!data) {
        return fail(data.error());
      }
      return ok(user_msg{byte_buffer(data->begin(), data->end())});
    }
    case message_type::push_pull: {
      auto hdr = read_body<push_pull_header>(r);
      if (!hdr) {
        return fail(hdr.error());
      }
      if (hdr->nodes < 0 || hdr->user_state_len < 0) {
        return unexpected{
          error{errc::malformed_frame, "negative push/pull count"}};
      }
      if (static_cast<uint64_t>(hdr->nodes) > lim.max_nodes) {
        return errc::too_many_entries;
      }
      if (static_cast<uint64_t>(hdr->user_state_len) > lim.max_user_state) {
        return errc::frame_too_large;
      }
      push_pull x;
      x.join = hdr->join;
      // Each entry takes at least one byte: never reserve beyond the input.
      x.nodes.reserve(std::min(static_cast<size_t>(hdr->nodes), r.remaining()));
      for (int64_t i = 0; i < hdr->nodes; ++i) {
        auto node = read_body<push_node_state>(r);
        if (!node) {
          return fail(node.error());
        }
        x.nodes.push_back(std::move(*node));
      }
      auto data = r.take(static_cast<size_t>(hdr->user_state_len));
      if (!data) {
        return fail(data.error());
      }
      x.user_state.assign(data->begin(), data->end());
      return ok(std::move(x));
    }
    default: return errc::unknown_frame_type;
  }
}

// Parses a plaintext stream message (maybe compressed) from `input`.
step<decoded_stream> read_plain(bytes_view input, const stream_limits& lim,
                                bool complete) {
  auto more = []() -> step<decoded_stream> {
    return std::variant<decoded_stream, need_more>{need_more{}};
  };
  if (input.empty()) {
    if (complete) {
      return unexpected{error{errc::malformed_frame, "empty stream message"}};
    }
    return more();
  }
  auto type = static_cast<message_type>(input[0]);
  msgpack::reader r{input.subspan(1)};
  decoded_stream result;
  if (type == message_type::compress) {
    auto c = read_body<compress_msg>(r);
    if (!c) {
      if (c.error().code() == errc::truncated_frame && !complete) {
        return more();
      }
      if (c.error().code() == errc::truncated_frame) {
        return unexpected{error{errc::malformed_frame, "compress: truncated"}};
      }
      return unexpected{c.error()};
    }
    if (c->algo != 0) {
      return unexpected{
        error{errc::unsupported_version, "compress: unknown algorithm"}};
    }
    auto plain = lzw_decompress(c->buf, lim.max_decompressed);
    if (!plain) {
      return unexpected{plain.error()};
    }
    if (plain->empty()) {
      return unexpected{error{errc::malformed_frame, "empty stream message"}};
    }
    msgpack::reader inner{bytes_view{*plain}.subspan(1)};
    auto leaf = read_leaf(static_cast<message_type>((*plain)[0]), inner, lim,
                          true);
    if (!leaf) {
      return unexpected{leaf.error()};
    }
    result.message = std::get<stream_message>(std::move(*leaf));
    result.compressed = true;
  } else {
    auto leaf = read_leaf(type, r, lim, complete);
    if (!leaf) {
      return unexpected{leaf.error()};
    }
    if (std::holds_alternative<need_more>(*leaf)) {
      return more();
    }
    result.message = std::get<stream_message>(std::move(*leaf));
  }
  result.consumed = 1 + r.position();
  return std::variant<decoded_stream, need_more>{std::move(result)};
}

} // namespace

namespace {

expected<std::optional<decoded_stream>>
decode_unlabelled(bytes_view input, const stream_options& opts,
                  std::string_view label);

} // namespace

expected<std::optional<decoded_stream>>
decode_stream(bytes_view input, const stream_options& opts) {
  if (input.empty()) {
    return std::optional<decoded_stream>{};
  }
  // A label header (upstream memberlist) comes once, first.
  size_t label_size = 0;
  std::string_view label;
  if (static_cast<message_type>(input[0]) == message_type::has_label) {
    if (input.size() < 2) {
      return std::optional<decoded_stream>{};
    }
    auto len = std::to_integer<size_t>(input[1]);
    if (len == 0) {
      return unexpected{error{errc::malformed_frame, "empty label"}};
    }
    if (input.size() < 2 + len) {
      return std::optional<decoded_stream>{};
    }
    label = std::string_view{reinterpret_cast<const char*>(input.data() + 2),
                             len};
    label_size = 2 + len;
  }
  if (!opts.skip_inbound_label_check && label != opts.label) {
    return unexpected{error{errc::malformed_frame,
                            fmt::format("label '{}' where '{}' was expected",
                                        label, opts.label)}};
  }
  auto res = decode_unlabelled(input.subspan(label_size), opts, label);
  if (res && res->has_value()) {
    (*res)->consumed += label_size;
  }
  return res;
}

namespace {

expected<std::optional<decoded_stream>>
decode_unlabelled(bytes_view input, const stream_options& opts,
                  std::string_view label) {
  if (input.empty()) {
    return std::optional<decoded_stream>{};
  }
  bool have_keys = opts.keys != nullptr && !opts.keys->empty();
  if (static_cast<message_type>(input[0]) == message_type::encrypt) {
    if (!have_keys) {
      return unexpected{error{errc::encryption_mismatch,
                              "remote state is encrypted and "
                              "encryption is not configured"}};
    }
    if (input.size() < 5) {
      return std::optional<decoded_stream>{};
    }
    size_t len = load_u32(input.data() + 1);
    if (len > opts.limits.max_encrypted) {
      return errc::frame_too_large;
    }
    if (input.size() - 5 < len) {
      return std::optional<decoded_stream>{};
    }
    byte_buffer aad(input.begin(), input.begin() + 5);
    for (char c : label) {
      aad.push_back(static_cast<std::byte>(c));
    }
    auto plain = decrypt_payload(*opts.keys, input.subspan(5, len), aad);
    if (!plain) {
      return unexpected{plain.error()};
    }
    auto res = read_plain(*plain, opts.limits, true);
    if (!res) {
      return unexpected{res.error()};
    }
    auto result = std::get<decoded_stream>(std::move(*res));
    result.consumed = 5 + len;
    result.encrypted = true;
    return std::optional<decoded_stream>{std::move(result)};
  }
  if (have_keys && opts.verify_incoming) {
    return unexpected{error{errc::encryption_mismatch,
                            "encryption is configured but "
                            "remote state is not encrypted"}};
  }
  auto res = read_plain(input, opts.limits, false);
  if (!res) {
    return unexpected{res.error()};
  }
  if (std::holds_alternative<need_more>(*res)) {
    return std::optional<decoded_stream>{};
  }
  return std::optional<decoded_stream>{
    std::get<decoded_stream>(std::move(*res))};
}

} // namespace

expected<byte_buffer> encode_stream_message(const stream_message& msg) {
  return std::visit(
    [](const auto& x) -> expected<byte_buffer> {
      using type = std::decay_t<decltype(x)>;
      byte_buffer out;
      if constexpr (std::is_same_v<type, user_msg>) {
        out.push_back(static_cast<std::byte>(message_type::user));
        user_msg_header hdr{static_cast<int64_t>(x.payload.size())};
        if (auto res = append_body(out, hdr); !res) {
          return unexpected{res.error()};
        }
        out.insert(out.end(), x.payload.begin(), x.payload.end());
      } else {
        if (auto res = append_message(out, x); !res) {
          return unexpected{res.error()};
        }
      }
      return out;
    },
    msg);
}

expected<byte_buffer> encrypt_stream(bytes_view plaintext, const keyring& ring,
                                     uint8_t version, const gcm_nonce& nonce,
                                     std::string_view label) {
  if (ring.empty()) {
    return unexpected{error{errc::invalid_config, "keyring is empty"}};
  }
  if (version > 1) {
    return errc::unsupported_version;
  }
  auto len = encrypted_size(version, plaintext.size());
  if (len > UINT32_MAX) {
    return errc::frame_too_large;
  }
  byte_buffer out(5);
  out[0] = static_cast<std::byte>(message_type::encrypt);
  wire::detail::store_u32(out.data() + 1, static_cast<uint32_t>(len));
  byte_buffer aad(out.begin(), out.end());
  for (char c : label) {
    aad.push_back(static_cast<std::byte>(c));
  }
  if (auto res = encrypt_payload(out, version, ring.primary(), nonce, plaintext,
                                 aad);
      !res) {
    return unexpected{res.error()};
  }
  return out;
}

expected<byte_buffer> frame_stream(bytes_view message,
                                   const stream_send_options& opts) {
  byte_buffer buf;
  if (opts.compress) {
    auto c = compress_message(message);
    if (!c) {
      return unexpected{c.error()};
    }
    buf = std::move(*c);
    message = buf;
  }
  byte_buffer body;
  if (opts.keys != nullptr && !opts.keys->empty()) {
    auto enc = encrypt_stream(message, *opts.keys, opts.encryption_version,
                              opts.nonce, opts.label);
    if (!enc) {
      return enc;
    }
    body = std::move(*enc);
  } else {
    body.assign(message.begin(), message.end());
  }
  if (opts.label.empty()) {
    return body;
  }
  return add_label(opts.label, body);
}

} // namespace mycorrizal::gossip
