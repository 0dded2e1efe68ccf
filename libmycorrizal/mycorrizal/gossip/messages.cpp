// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/messages.hpp"

#include "mycorrizal/gossip/msgpack.hpp"

#include <fmt/format.h>

#include <array>
#include <limits>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

// Each message struct is described once, by a table of its fields
// (`describe` below): Go name, member, and whether Go omits it when empty.
// The table lists the fields in Go declaration order, which is the order of
// the array form go-msgpack also accepts; the encoder writes the map keys
// sorted, as Go does, in an order computed from the table at compile time.
// How a field is written and read follows from its C++ type:
// - uint8_t, uint16_t, uint32_t: written in the smallest unsigned form;
//   read from any integer in [0, max of the type];
// - int64_t: written as go-msgpack writes an `int`; read from any integer
//   that fits;
// - bool: written as a bool; read from a bool or an integer;
// - std::string, byte_buffer: written as raw; read from raw, str, bin or
//   nil (empty);
// - std::optional<byte_buffer>: written as raw, or nil when absent; read
//   likewise;
// - std::vector<uint8_t> (`Vsn`): written as raw of exactly 6 bytes (an
//   error otherwise); read from raw or an array of integers in [0, 255];
// - node_state: written as an int; read from any integer in [0, 255].
namespace mycorrizal::gossip {

namespace {

using namespace msgpack;

// -- field descriptions -------------------------------------------------------

/// Whether a field is in the map when it is empty or zero.
enum class presence : uint8_t {
  always,
  /// Go's `omitempty`: left out when empty or zero.
  omit_empty,
};

constexpr auto omit_empty = presence::omit_empty;

/// One field of message struct `T`: its Go name (the map key) and member.
template <class T, class M>
struct field_desc {
  std::string_view name;
  M T::*member;
  presence when;
};

template <class T, class M>
constexpr field_desc<T, M>
field(std::string_view name, M T::*member, presence when = presence::always) {
  return {name, member, when};
}

/// A message struct: its name (for error texts) and its fields in Go
/// declaration order.
template <class... Fields>
struct message_desc {
  std::string_view name;
  std::tuple<Fields...> fields;
};

template <class T, class... Ms>
constexpr auto message(std::string_view name, field_desc<T, Ms>... fields) {
  return message_desc<field_desc<T, Ms>...>{name, {fields...}};
}

template <class T>
struct tag {};

// The messages, each field once, in Go declaration order.
// clang-format off
constexpr auto describe(tag<ping>) {
  return message<ping>("ping",
                       field("SeqNo", &ping::seq_no),
                       field("Node", &ping::node),
                       field("SourceAddr", &ping::source_addr, omit_empty),
                       field("SourcePort", &ping::source_port, omit_empty),
                       field("SourceNode", &ping::source_node, omit_empty));
}

constexpr auto describe(tag<indirect_ping>) {
  using x = indirect_ping;
  return message<x>("indirect_ping",
                    field("SeqNo", &x::seq_no),
                    field("Target", &x::target),
                    field("Port", &x::port),
                    field("Node", &x::node),
                    field("Nack", &x::nack),
                    field("SourceAddr", &x::source_addr, omit_empty),
                    field("SourcePort", &x::source_port, omit_empty),
                    field("SourceNode", &x::source_node, omit_empty));
}

constexpr auto describe(tag<ack>) {
  return message<ack>("ack",
                      field("SeqNo", &ack::seq_no),
                      field("Payload", &ack::payload));
}

constexpr auto describe(tag<nack>) {
  return message<nack>("nack",
                       field("SeqNo", &nack::seq_no));
}

constexpr auto describe(tag<err_resp>) {
  return message<err_resp>("err",
                           field("Error", &err_resp::error));
}

constexpr auto describe(tag<suspect>) {
  return message<suspect>("suspect",
                          field("Incarnation", &suspect::incarnation),
                          field("Node", &suspect::node),
                          field("From", &suspect::from));
}

constexpr auto describe(tag<alive>) {
  return message<alive>("alive",
                        field("Incarnation", &alive::incarnation),
                        field("Node", &alive::node),
                        field("Addr", &alive::addr),
                        field("Port", &alive::port),
                        field("Meta", &alive::meta),
                        field("Vsn", &alive::vsn));
}

constexpr auto describe(tag<dead>) {
  return message<dead>("dead",
                       field("Incarnation", &dead::incarnation),
                       field("Node", &dead::node),
                       field("From", &dead::from));
}

constexpr auto describe(tag<push_pull_header>) {
  using x = push_pull_header;
  return message<x>("push_pull",
                    field("Nodes", &x::nodes),
                    field("UserStateLen", &x::user_state_len),
                    field("Join", &x::join));
}

constexpr auto describe(tag<push_node_state>) {
  using x = push_node_state;
  return message<x>("push_node_state",
                    field("Name", &x::name),
                    field("Addr", &x::addr),
                    field("Port", &x::port),
                    field("Meta", &x::meta),
                    field("Incarnation", &x::incarnation),
                    field("State", &x::state),
                    field("Vsn", &x::vsn));
}

constexpr auto describe(tag<user_msg_header>) {
  using x = user_msg_header;
  return message<x>("user",
                    field("UserMsgLen", &x::user_msg_len));
}

constexpr auto describe(tag<compress_msg>) {
  return message<compress_msg>("compress",
                               field("Algo", &compress_msg::algo),
                               field("Buf", &compress_msg::buf));
}
// clang-format on

/// The description of `T`.
template <class T>
inline constexpr auto desc_of = describe(tag<T>{});

template <class T>
inline constexpr size_t field_count
  = std::tuple_size_v<decltype(desc_of<T>.fields)>;

/// The Go names in declaration order (the array form).
template <class T>
inline constexpr auto decl_of = std::apply(
  [](const auto&... f) {
    return std::array<std::string_view, sizeof...(f)>{f.name...};
  },
  desc_of<T>.fields);

/// Field indexes in the order Go writes the map: sorted by name.
template <class T>
inline constexpr auto key_order_of = [] {
  const auto& names = decl_of<T>;
  std::array<size_t, field_count<T>> order{};
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
  }
  for (size_t i = 1; i < order.size(); ++i) {
    for (size_t j = i; j > 0 && names[order[j]] < names[order[j - 1]]; --j) {
      std::swap(order[j], order[j - 1]);
    }
  }
  return order;
}();

// -- encoding a field ---------------------------------------------------------

// Go's "empty value" for `omitempty`.
template <class M>
bool is_empty(const M& x) {
  if constexpr (requires { x.empty(); }) {
    return x.empty();
  } else if constexpr (requires { x.has_value(); }) {
    return !x.has_value() || x->empty();
  } else {
    return x == M{};
  }
}

/// Writes a map of fields, keeping the first error.
class map_writer {
public:
  map_writer(byte_buffer& out, uint32_t n, std::string_view message)
      : out_(out), message_(message) {
    write_map_header(out_, n);
  }

  template <class T, class M>
  void put(const field_desc<T, M>& f, const T& x) {
    const M& val = x.*f.member;
    if (f.when == presence::omit_empty && is_empty(val)) {
      return;
    }
    if constexpr (std::is_same_v<M, std::vector<uint8_t>>) {
      // Debian's memberlist crashes on fewer entries; never send them.
      if (val.size() != 6) {
        fail(error{errc::malformed_frame,
                   fmt::format("{}.{}: must have 6 entries, has {}", message_,
                               f.name, val.size())});
        return;
      }
    }
    keep(write_str(out_, f.name), f.name);
    keep(put_value(val), f.name);
  }

  expected<void> done() && {
    if (err_) {
      return unexpected{std::move(err_)};
    }
    return {};
  }

private:
  template <class Int>
  expected<void> put_value(Int x) requires std::is_unsigned_v<Int> {
    write_uint(out_, x);
    return {};
  }

  expected<void> put_value(int64_t x) {
    write_int(out_, x);
    return {};
  }

  expected<void> put_value(bool x) {
    write_bool(out_, x);
    return {};
  }

  expected<void> put_value(node_state x) {
    write_int(out_, static_cast<int64_t>(x));
    return {};
  }

  expected<void> put_value(const std::string& x) {
    return write_str(out_, x);
  }

  expected<void> put_value(const byte_buffer& x) {
    return write_raw(out_, x);
  }

  expected<void> put_value(const std::optional<byte_buffer>& x) {
    if (!x) {
      write_nil(out_);
      return {};
    }
    return write_raw(out_, *x);
  }

  expected<void> put_value(const std::vector<uint8_t>& x) {
    return write_raw(out_, std::as_bytes(std::span{x}));
  }

  void keep(const expected<void>& res, std::string_view name) {
    if (!res) {
      fail(
        error{res.error().code(), fmt::format("{}.{}: {}", message_, name,
                                              to_string(res.error().code()))});
    }
  }

  void fail(error e) {
    if (!err_) {
      err_ = std::move(e);
    }
  }

  byte_buffer& out_;
  std::string_view message_;
  error err_;
};

/// Appends the msgpack map of `x`: the fields Go writes, keys sorted.
template <class T>
expected<void> append_fields(byte_buffer& out, const T& x) {
  const auto& fields = desc_of<T>.fields;
  uint32_t n = std::apply(
    [&x](const auto&... f) {
      return (
        0u + ...
        + (f.when == presence::omit_empty && is_empty(x.*f.member) ? 0u : 1u));
    },
    fields);
  map_writer w{out, n, desc_of<T>.name};
  [&]<size_t... I>(std::index_sequence<I...>) {
    (w.put(std::get<key_order_of<T>[I]>(fields), x), ...);
  }
  (std::make_index_sequence<field_count<T>>{});
  return std::move(w).done();
}

// -- decoding a field ---------------------------------------------------------

// What a field of each type must be, for error texts.
template <class Int>
std::string expectation(const Int*) requires std::is_unsigned_v<Int> {
  return fmt::format("an integer in [0, {}]",
                     uint64_t{std::numeric_limits<Int>::max()});
}

std::string expectation(const int64_t*) {
  return "an integer that fits 64 bits";
}

std::string expectation(const bool*) {
  return "a bool or an integer";
}

std::string expectation(const node_state*) {
  return "an integer in [0, 255]";
}

std::string expectation(const std::string*) {
  return "a string";
}

std::string expectation(const byte_buffer*) {
  return "a string";
}

std::string expectation(const std::optional<byte_buffer>*) {
  return "a string or nil";
}

std::string expectation(const std::vector<uint8_t>*) {
  return "a string or an array of integers in [0, 255]";
}

template <class Int>
expected<void> get_value(reader& r, Int& x) requires std::is_unsigned_v<Int> {
  auto v = r.read_uint(std::numeric_limits<Int>::max());
  if (!v) {
    return unexpected{v.error()};
  }
  x = static_cast<Int>(*v);
  return {};
}

expected<void> get_value(reader& r, int64_t& x) {
  auto v = r.read_int();
  if (!v) {
    return unexpected{v.error()};
  }
  x = *v;
  return {};
}

expected<void> get_value(reader& r, bool& x) {
  auto v = r.read_bool();
  if (!v) {
    return unexpected{v.error()};
  }
  x = *v;
  return {};
}

// Other values than the four known states are kept as received.
expected<void> get_value(reader& r, node_state& x) {
  auto v = r.read_uint(UINT8_MAX);
  if (!v) {
    return unexpected{v.error()};
  }
  x = static_cast<node_state>(*v);
  return {};
}

expected<void> get_value(reader& r, std::string& x) {
  auto v = r.read_raw();
  if (!v) {
    return unexpected{v.error()};
  }
  x.assign(reinterpret_cast<const char*>(v->data()), v->size());
  return {};
}

expected<void> get_value(reader& r, byte_buffer& x) {
  auto v = r.read_raw();
  if (!v) {
    return unexpected{v.error()};
  }
  x.assign(v->begin(), v->end());
  return {};
}

expected<void> get_value(reader& r, std::optional<byte_buffer>& x) {
  auto v = r.read_raw_or_nil();
  if (!v) {
    return unexpected{v.error()};
  }
  if (*v) {
    x.emplace((*v)->begin(), (*v)->end());
  } else {
    x.reset();
  }
  return {};
}

// `Vsn` is a []uint8: Go sends raw bytes but also accepts an array of ints.
expected<void> get_value(reader& r, std::vector<uint8_t>& x) {
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
    return {};
  }
  auto v = r.read_raw();
  if (!v) {
    return unexpected{v.error()};
  }
  for (auto b : *v) {
    x.push_back(static_cast<uint8_t>(b));
  }
  return {};
}

/// Reads field `f` of `x`. A value of the wrong type or range fails with a
/// text naming the field and what it must be; running out of input stays a
/// bare `errc::truncated_frame` (stream decoding then waits for more).
template <class T, class M>
expected<bool> get_field(reader& r, const field_desc<T, M>& f, T& x) {
  auto res = get_value(r, x.*f.member);
  if (!res) {
    const auto& e = res.error();
    if (e.code() == errc::truncated_frame) {
      return unexpected{e};
    }
    return unexpected{error{
      e.code(), fmt::format("{}.{}: must be {}", desc_of<T>.name, f.name,
                            expectation(static_cast<const M*>(nullptr)))}};
  }
  return true;
}

/// Reads the struct `x` as go-msgpack does (see `read_struct`).
template <class T>
expected<T> read_fields(reader& r) {
  T x;
  auto res = read_struct(
    r, decl_of<T>, [&x](std::string_view key, reader& in) -> expected<bool> {
      expected<bool> used = false;
      std::apply(
        [&](const auto&... f) {
          (void)((key == f.name ? (used = get_field(in, f, x), true) : false)
                 || ...);
        },
        desc_of<T>.fields);
      return used;
    });
  if (!res) {
    return unexpected{res.error()};
  }
  return x;
}

} // namespace

std::vector<uint8_t> default_vsn() {
  return {1, 5, 2, 0, 0, 0};
}

// -- encoding -----------------------------------------------------------------

expected<void> append_body(byte_buffer& out, const ping& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const indirect_ping& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const ack& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const nack& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const err_resp& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const suspect& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const alive& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const dead& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const push_pull_header& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const push_node_state& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const user_msg_header& x) {
  return append_fields(out, x);
}

expected<void> append_body(byte_buffer& out, const compress_msg& x) {
  return append_fields(out, x);
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
  return read_fields<ping>(r);
}

template <>
expected<indirect_ping> read_body<indirect_ping>(reader& r) {
  return read_fields<indirect_ping>(r);
}

template <>
expected<ack> read_body<ack>(reader& r) {
  return read_fields<ack>(r);
}

template <>
expected<nack> read_body<nack>(reader& r) {
  return read_fields<nack>(r);
}

template <>
expected<err_resp> read_body<err_resp>(reader& r) {
  return read_fields<err_resp>(r);
}

template <>
expected<suspect> read_body<suspect>(reader& r) {
  return read_fields<suspect>(r);
}

template <>
expected<alive> read_body<alive>(reader& r) {
  return read_fields<alive>(r);
}

template <>
expected<dead> read_body<dead>(reader& r) {
  return read_fields<dead>(r);
}

template <>
expected<push_pull_header> read_body<push_pull_header>(reader& r) {
  return read_fields<push_pull_header>(r);
}

template <>
expected<push_node_state> read_body<push_node_state>(reader& r) {
  return read_fields<push_node_state>(r);
}

template <>
expected<user_msg_header> read_body<user_msg_header>(reader& r) {
  return read_fields<user_msg_header>(r);
}

template <>
expected<compress_msg> read_body<compress_msg>(reader& r) {
  return read_fields<compress_msg>(r);
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
