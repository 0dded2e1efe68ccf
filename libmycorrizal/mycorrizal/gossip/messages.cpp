// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/messages.hpp"

#include "mycorrizal/gossip/msgpack.hpp"

#include <array>
#include <limits>
#include <string_view>

namespace mycorrizal::gossip {

namespace {

using namespace std::literals;
using namespace msgpack;

// Collects the first error of a sequence of writes.
class map_out {
public:
  map_out(byte_buffer& out, uint32_t n) : out_(out) {
    write_map_header(out_, n);
  }

  map_out& str(std::string_view key, std::string_view val) {
    put_key(key);
    keep(write_str(out_, val));
    return *this;
  }

  map_out& raw(std::string_view key, bytes_view val) {
    put_key(key);
    keep(write_raw(out_, val));
    return *this;
  }

  map_out& opt_raw(std::string_view key,
                   const std::optional<byte_buffer>& val) {
    if (val) {
      return raw(key, *val);
    }
    put_key(key);
    write_nil(out_);
    return *this;
  }

  map_out& vsn(std::string_view key, const std::vector<uint8_t>& val) {
    if (val.size() != 6) {
      err_ = errc::malformed_frame;
      return *this;
    }
    return raw(key, std::as_bytes(std::span{val}));
  }

  map_out& uint(std::string_view key, uint64_t val) {
    put_key(key);
    write_uint(out_, val);
    return *this;
  }

  map_out& sint(std::string_view key, int64_t val) {
    put_key(key);
    write_int(out_, val);
    return *this;
  }

  map_out& boolean(std::string_view key, bool val) {
    put_key(key);
    write_bool(out_, val);
    return *this;
  }

  expected<void> done() const {
    if (err_ != errc::none) {
      return err_;
    }
    return {};
  }

private:
  void put_key(std::string_view key) {
    keep(write_str(out_, key));
  }

  void keep(const expected<void>& res) {
    if (!res && err_ == errc::none) {
      err_ = res.error().code();
    }
  }

  byte_buffer& out_;
  errc err_ = errc::none;
};

// -- field readers ------------------------------------------------------------

template <class Int>
expected<bool> get_uint(reader& r, Int& x) {
  auto v = r.read_uint(std::numeric_limits<Int>::max());
  if (!v) {
    return unexpected{v.error()};
  }
  x = static_cast<Int>(*v);
  return true;
}

expected<bool> get_int(reader& r, int64_t& x) {
  auto v = r.read_int();
  if (!v) {
    return unexpected{v.error()};
  }
  x = *v;
  return true;
}

expected<bool> get_bool(reader& r, bool& x) {
  auto v = r.read_bool();
  if (!v) {
    return unexpected{v.error()};
  }
  x = *v;
  return true;
}

expected<bool> get_str(reader& r, std::string& x) {
  auto v = r.read_raw();
  if (!v) {
    return unexpected{v.error()};
  }
  x.assign(reinterpret_cast<const char*>(v->data()), v->size());
  return true;
}

expected<bool> get_bytes(reader& r, byte_buffer& x) {
  auto v = r.read_raw();
  if (!v) {
    return unexpected{v.error()};
  }
  x.assign(v->begin(), v->end());
  return true;
}

expected<bool> get_opt_bytes(reader& r, std::optional<byte_buffer>& x) {
  auto v = r.read_raw_or_nil();
  if (!v) {
    return unexpected{v.error()};
  }
  if (*v) {
    x.emplace((*v)->begin(), (*v)->end());
  } else {
    x.reset();
  }
  return true;
}

// `Vsn` is a []uint8: Go sends raw bytes but also accepts an array of ints.
expected<bool> get_vsn(reader& r, std::vector<uint8_t>& x) {
  auto k = r.peek();
  if (!k) {
    return unexpected{k.error()};
  }
  x.clear();
  if (*k == value_kind::array) {
    auto n = r.read_array_header();
    if (!n) {
      return unexpected{n.error()};
    }
    for (uint32_t i = 0; i < *n; ++i) {
      auto v = r.read_uint(UINT8_MAX);
      if (!v) {
        return unexpected{v.error()};
      }
      x.push_back(static_cast<uint8_t>(*v));
    }
    return true;
  }
  auto v = r.read_raw();
  if (!v) {
    return unexpected{v.error()};
  }
  for (auto b : *v) {
    x.push_back(static_cast<uint8_t>(b));
  }
  return true;
}

// Go declaration orders (used only when a struct arrives as an array).
constexpr std::array ping_decl{"SeqNo"sv, "Node"sv, "SourceAddr"sv,
                               "SourcePort"sv, "SourceNode"sv};
constexpr std::array indirect_ping_decl{"SeqNo"sv,      "Target"sv,
                                        "Port"sv,       "Node"sv,
                                        "Nack"sv,       "SourceAddr"sv,
                                        "SourcePort"sv, "SourceNode"sv};
constexpr std::array ack_decl{"SeqNo"sv, "Payload"sv};
constexpr std::array nack_decl{"SeqNo"sv};
constexpr std::array err_decl{"Error"sv};
constexpr std::array suspect_decl{"Incarnation"sv, "Node"sv, "From"sv};
constexpr std::array alive_decl{"Incarnation"sv, "Node"sv, "Addr"sv,
                                "Port"sv,        "Meta"sv, "Vsn"sv};
constexpr std::array push_pull_header_decl{"Nodes"sv, "UserStateLen"sv,
                                           "Join"sv};
constexpr std::array push_node_state_decl{
  "Name"sv, "Addr"sv, "Port"sv, "Meta"sv, "Incarnation"sv, "State"sv, "Vsn"sv};
constexpr std::array user_msg_header_decl{"UserMsgLen"sv};
constexpr std::array compress_decl{"Algo"sv, "Buf"sv};

} // namespace

std::vector<uint8_t> default_vsn() {
  return {1, 5, 2, 0, 0, 0};
}

// -- encoding -----------------------------------------------------------------

expected<void> append_body(byte_buffer& out, const ping& x) {
  uint32_t n = 2 + (x.source_addr.empty() ? 0 : 1)
               + (x.source_node.empty() ? 0 : 1) + (x.source_port ? 1 : 0);
  map_out m{out, n};
  m.str("Node", x.node).uint("SeqNo", x.seq_no);
  if (!x.source_addr.empty()) {
    m.raw("SourceAddr", x.source_addr);
  }
  if (!x.source_node.empty()) {
    m.str("SourceNode", x.source_node);
  }
  if (x.source_port != 0) {
    m.uint("SourcePort", x.source_port);
  }
  return m.done();
}

expected<void> append_body(byte_buffer& out, const indirect_ping& x) {
  uint32_t n = 5 + (x.source_addr.empty() ? 0 : 1)
               + (x.source_node.empty() ? 0 : 1) + (x.source_port ? 1 : 0);
  map_out m{out, n};
  m.boolean("Nack", x.nack)
    .str("Node", x.node)
    .uint("Port", x.port)
    .uint("SeqNo", x.seq_no);
  if (!x.source_addr.empty()) {
    m.raw("SourceAddr", x.source_addr);
  }
  if (!x.source_node.empty()) {
    m.str("SourceNode", x.source_node);
  }
  if (x.source_port != 0) {
    m.uint("SourcePort", x.source_port);
  }
  m.raw("Target", x.target);
  return m.done();
}

expected<void> append_body(byte_buffer& out, const ack& x) {
  return map_out{out, 2}
    .opt_raw("Payload", x.payload)
    .uint("SeqNo", x.seq_no)
    .done();
}

expected<void> append_body(byte_buffer& out, const nack& x) {
  return map_out{out, 1}.uint("SeqNo", x.seq_no).done();
}

expected<void> append_body(byte_buffer& out, const err_resp& x) {
  return map_out{out, 1}.str("Error", x.error).done();
}

expected<void> append_body(byte_buffer& out, const suspect& x) {
  return map_out{out, 3}
    .str("From", x.from)
    .uint("Incarnation", x.incarnation)
    .str("Node", x.node)
    .done();
}

expected<void> append_body(byte_buffer& out, const alive& x) {
  return map_out{out, 6}
    .raw("Addr", x.addr)
    .uint("Incarnation", x.incarnation)
    .opt_raw("Meta", x.meta)
    .str("Node", x.node)
    .uint("Port", x.port)
    .vsn("Vsn", x.vsn)
    .done();
}

expected<void> append_body(byte_buffer& out, const dead& x) {
  return map_out{out, 3}
    .str("From", x.from)
    .uint("Incarnation", x.incarnation)
    .str("Node", x.node)
    .done();
}

expected<void> append_body(byte_buffer& out, const push_pull_header& x) {
  return map_out{out, 3}
    .boolean("Join", x.join)
    .sint("Nodes", x.nodes)
    .sint("UserStateLen", x.user_state_len)
    .done();
}

expected<void> append_body(byte_buffer& out, const push_node_state& x) {
  return map_out{out, 7}
    .raw("Addr", x.addr)
    .uint("Incarnation", x.incarnation)
    .opt_raw("Meta", x.meta)
    .str("Name", x.name)
    .uint("Port", x.port)
    .sint("State", static_cast<int64_t>(x.state))
    .vsn("Vsn", x.vsn)
    .done();
}

expected<void> append_body(byte_buffer& out, const user_msg_header& x) {
  return map_out{out, 1}.sint("UserMsgLen", x.user_msg_len).done();
}

expected<void> append_body(byte_buffer& out, const compress_msg& x) {
  return map_out{out, 2}.uint("Algo", x.algo).raw("Buf", x.buf).done();
}

message_type type_of(const ping&) noexcept {
  return message_type::ping;
}

message_type type_of(const indirect_ping&) noexcept {
  return message_type::indirect_ping;
}

message_type type_of(const ack&) noexcept {
  return message_type::ack;
}

message_type type_of(const nack&) noexcept {
  return message_type::nack;
}

message_type type_of(const err_resp&) noexcept {
  return message_type::err;
}

message_type type_of(const suspect&) noexcept {
  return message_type::suspect;
}

message_type type_of(const alive&) noexcept {
  return message_type::alive;
}

message_type type_of(const dead&) noexcept {
  return message_type::dead;
}

message_type type_of(const compress_msg&) noexcept {
  return message_type::compress;
}

expected<void> append_message(byte_buffer& out, const push_pull& x) {
  out.push_back(static_cast<std::byte>(message_type::push_pull));
  push_pull_header hdr{static_cast<int64_t>(x.nodes.size()),
                       static_cast<int64_t>(x.user_state.size()), x.join};
  if (auto res = append_body(out, hdr); !res) {
    return res;
  }
  for (const auto& node : x.nodes) {
    if (auto res = append_body(out, node); !res) {
      return res;
    }
  }
  out.insert(out.end(), x.user_state.begin(), x.user_state.end());
  return {};
}

// -- decoding -----------------------------------------------------------------

template <>
expected<ping> read_body<ping>(reader& r) {
  ping x;
  auto res = read_struct(
    r, ping_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "SeqNo") {
        return get_uint(in, x.seq_no);
      }
      if (k == "Node") {
        return get_str(in, x.node);
      }
      if (k == "SourceAddr") {
        return get_bytes(in, x.source_addr);
      }
      if (k == "SourcePort") {
        return get_uint(in, x.source_port);
      }
      if (k == "SourceNode") {
        return get_str(in, x.source_node);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<indirect_ping> read_body<indirect_ping>(reader& r) {
  indirect_ping x;
  auto res
    = read_struct(r, indirect_ping_decl,
                  [&x](std::string_view k, reader& in) -> expected<bool> {
                    if (k == "SeqNo") {
                      return get_uint(in, x.seq_no);
                    }
                    if (k == "Target") {
                      return get_bytes(in, x.target);
                    }
                    if (k == "Port") {
                      return get_uint(in, x.port);
                    }
                    if (k == "Node") {
                      return get_str(in, x.node);
                    }
                    if (k == "Nack") {
                      return get_bool(in, x.nack);
                    }
                    if (k == "SourceAddr") {
                      return get_bytes(in, x.source_addr);
                    }
                    if (k == "SourcePort") {
                      return get_uint(in, x.source_port);
                    }
                    if (k == "SourceNode") {
                      return get_str(in, x.source_node);
                    }
                    return false;
                  });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<ack> read_body<ack>(reader& r) {
  ack x;
  auto res = read_struct(
    r, ack_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "SeqNo") {
        return get_uint(in, x.seq_no);
      }
      if (k == "Payload") {
        return get_opt_bytes(in, x.payload);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<nack> read_body<nack>(reader& r) {
  nack x;
  auto res = read_struct(
    r, nack_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "SeqNo") {
        return get_uint(in, x.seq_no);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<err_resp> read_body<err_resp>(reader& r) {
  err_resp x;
  auto res = read_struct(
    r, err_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "Error") {
        return get_str(in, x.error);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

namespace {

// suspect and dead share their layout.
template <class T>
expected<T> read_accusation(reader& r) {
  T x;
  auto res = read_struct(
    r, suspect_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "Incarnation") {
        return get_uint(in, x.incarnation);
      }
      if (k == "Node") {
        return get_str(in, x.node);
      }
      if (k == "From") {
        return get_str(in, x.from);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

} // namespace

template <>
expected<suspect> read_body<suspect>(reader& r) {
  return read_accusation<suspect>(r);
}

template <>
expected<dead> read_body<dead>(reader& r) {
  return read_accusation<dead>(r);
}

template <>
expected<alive> read_body<alive>(reader& r) {
  alive x;
  auto res = read_struct(
    r, alive_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "Incarnation") {
        return get_uint(in, x.incarnation);
      }
      if (k == "Node") {
        return get_str(in, x.node);
      }
      if (k == "Addr") {
        return get_bytes(in, x.addr);
      }
      if (k == "Port") {
        return get_uint(in, x.port);
      }
      if (k == "Meta") {
        return get_opt_bytes(in, x.meta);
      }
      if (k == "Vsn") {
        return get_vsn(in, x.vsn);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<push_pull_header> read_body<push_pull_header>(reader& r) {
  push_pull_header x;
  auto res
    = read_struct(r, push_pull_header_decl,
                  [&x](std::string_view k, reader& in) -> expected<bool> {
                    if (k == "Nodes") {
                      return get_int(in, x.nodes);
                    }
                    if (k == "UserStateLen") {
                      return get_int(in, x.user_state_len);
                    }
                    if (k == "Join") {
                      return get_bool(in, x.join);
                    }
                    return false;
                  });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<push_node_state> read_body<push_node_state>(reader& r) {
  push_node_state x;
  auto res
    = read_struct(r, push_node_state_decl,
                  [&x](std::string_view k, reader& in) -> expected<bool> {
                    if (k == "Name") {
                      return get_str(in, x.name);
                    }
                    if (k == "Addr") {
                      return get_bytes(in, x.addr);
                    }
                    if (k == "Port") {
                      return get_uint(in, x.port);
                    }
                    if (k == "Meta") {
                      return get_opt_bytes(in, x.meta);
                    }
                    if (k == "Incarnation") {
                      return get_uint(in, x.incarnation);
                    }
                    if (k == "State") {
                      uint8_t st = 0;
                      auto got = get_uint(in, st);
                      x.state = static_cast<node_state>(st);
                      return got;
                    }
                    if (k == "Vsn") {
                      return get_vsn(in, x.vsn);
                    }
                    return false;
                  });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<user_msg_header> read_body<user_msg_header>(reader& r) {
  user_msg_header x;
  auto res
    = read_struct(r, user_msg_header_decl,
                  [&x](std::string_view k, reader& in) -> expected<bool> {
                    if (k == "UserMsgLen") {
                      return get_int(in, x.user_msg_len);
                    }
                    return false;
                  });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <>
expected<compress_msg> read_body<compress_msg>(reader& r) {
  compress_msg x;
  auto res = read_struct(
    r, compress_decl, [&x](std::string_view k, reader& in) -> expected<bool> {
      if (k == "Algo") {
        return get_uint(in, x.algo);
      }
      if (k == "Buf") {
        return get_bytes(in, x.buf);
      }
      return false;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

template <class T>
expected<T> decode_body(bytes_view body) {
  reader r{body};
  return read_body<T>(r);
}

template expected<ping> decode_body<ping>(bytes_view);
template expected<indirect_ping> decode_body<indirect_ping>(bytes_view);
template expected<ack> decode_body<ack>(bytes_view);
template expected<nack> decode_body<nack>(bytes_view);
template expected<err_resp> decode_body<err_resp>(bytes_view);
template expected<suspect> decode_body<suspect>(bytes_view);
template expected<alive> decode_body<alive>(bytes_view);
template expected<dead> decode_body<dead>(bytes_view);
template expected<push_pull_header> decode_body<push_pull_header>(bytes_view);
template expected<push_node_state> decode_body<push_node_state>(bytes_view);
template expected<user_msg_header> decode_body<user_msg_header>(bytes_view);
template expected<compress_msg> decode_body<compress_msg>(bytes_view);

} // namespace mycorrizal::gossip
