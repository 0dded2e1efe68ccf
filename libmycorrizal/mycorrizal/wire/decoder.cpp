// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/wire/decoder.hpp"

#include "mycorrizal/wire/detail/bytes.hpp"
#include "mycorrizal/wire/identifier.hpp"

#include <algorithm>
#include <string_view>

namespace mycorrizal::wire {

namespace {

using namespace detail;

// Flags each frame type may carry; any other bit is malformed.
constexpr uint8_t flags_mask(frame_type t) noexcept {
  switch (t) {
    case frame_type::data:
    case frame_type::request:
    case frame_type::response: return flag_caf_message;
    default: return 0;
  }
}

bool known_type(uint8_t t) noexcept {
  switch (static_cast<frame_type>(t)) {
    case frame_type::stream_init:
    case frame_type::data:
    case frame_type::request:
    case frame_type::response:
    case frame_type::stream_error:
    case frame_type::hello:
    case frame_type::apps: return true;
  }
  return false;
}

// Maps a status byte from the wire to an errc; unknown codes become
// remote_error (a newer peer may know more codes than we do).
errc status_from_wire(uint8_t code) noexcept {
  return errc_from_code(code).value_or(errc::remote_error);
}

// A bounds-checked reader over a frame body. Every read fails once the body
// is exhausted; `done()` checks that nothing is left over.
class reader {
public:
  explicit reader(bytes_view body)
      : pos_(body.data()), end_(pos_ + body.size()) {
    // nop
  }

  bool u8(uint8_t& x) noexcept {
    if (left() < 1) {
      return false;
    }
    x = load_u8(pos_++);
    return true;
  }

  bool u16(uint16_t& x) noexcept {
    if (left() < 2) {
      return false;
    }
    x = load_u16(pos_);
    pos_ += 2;
    return true;
  }

  bool u32(uint32_t& x) noexcept {
    if (left() < 4) {
      return false;
    }
    x = load_u32(pos_);
    pos_ += 4;
    return true;
  }

  bool u64(uint64_t& x) noexcept {
    if (left() < 8) {
      return false;
    }
    x = load_u64(pos_);
    pos_ += 8;
    return true;
  }

  // Reads a u8-length-prefixed string.
  bool id(std::string_view& x) noexcept {
    uint8_t len = 0;
    if (!u8(len) || left() < len) {
      return false;
    }
    x = std::string_view{reinterpret_cast<const char*>(pos_), len};
    pos_ += len;
    return true;
  }

  bytes_view rest() noexcept {
    bytes_view result{pos_, left()};
    pos_ = end_;
    return result;
  }

  std::string_view rest_text() noexcept {
    auto r = rest();
    return {reinterpret_cast<const char*>(r.data()), r.size()};
  }

  bool done() const noexcept {
    return pos_ == end_;
  }

private:
  size_t left() const noexcept {
    return static_cast<size_t>(end_ - pos_);
  }

  const std::byte* pos_;
  const std::byte* end_;
};

} // namespace

decoder::decoder(limits lim, stream_start start) : limits_(lim) {
  switch (start) {
    case stream_start::peer_opened: state_ = state::expect_init; break;
    case stream_start::application_reply: state_ = state::application; break;
    case stream_start::control_reply: state_ = state::expect_hello; break;
  }
}

stream_kind decoder::kind() const noexcept {
  switch (state_) {
    case state::application: return stream_kind::application;
    case state::control: return stream_kind::control;
    case state::closed: return stream_kind::closed;
    default: return stream_kind::unknown;
  }
}

void decoder::set_failed(errc code) {
  state_ = state::failed;
  error_ = code;
}

decoder::result decoder::fail(errc code) {
  set_failed(code);
  return code;
}

expected<decoder::header> decoder::check_header(const std::byte* p) {
  auto type = load_u8(p);
  auto flags = load_u8(p + 1);
  auto length = load_u32(p + 2);
  if (!known_type(type)) {
    set_failed(errc::unknown_frame_type);
    return errc::unknown_frame_type;
  }
  auto t = static_cast<frame_type>(type);
  if ((flags & ~flags_mask(t)) != 0) {
    set_failed(errc::malformed_frame);
    return errc::malformed_frame;
  }
  if (length > limits_.max_frame_size) {
    set_failed(errc::frame_too_large);
    return errc::frame_too_large;
  }
  return header{t, flags, length};
}

decoder::result decoder::next(bytes_view& input) {
  if (state_ == state::failed) {
    return unexpected{error_};
  }
  if (consumed_) {
    // The previous frame came out of buf_; its views expired with this call.
    // A large frame's buffer is not kept for the life of the stream.
    if (buf_.capacity() > retained_buffer) {
      buf_ = std::vector<std::byte>{};
    } else {
      buf_.clear();
    }
    payload_ = std::vector<std::byte>{};
    split_ = false;
    consumed_ = false;
  }
  // Fast path: a whole frame in the input and nothing buffered.
  if (buf_.empty() && input.size() >= header_size) {
    auto hdr = check_header(input.data());
    if (!hdr) {
      return unexpected{std::move(hdr).error()};
    }
    if (input.size() - header_size >= hdr->length) {
      auto body = input.subspan(header_size, hdr->length);
      input = input.subspan(header_size + hdr->length);
      return parse(*hdr, body);
    }
  }
  // Slow path: collect the header, then the body, in buf_ (a large payload
  // in payload_).
  if (buf_.size() < header_size) {
    auto piece = input.first(std::min(header_size - buf_.size(), input.size()));
    buf_.insert(buf_.end(), piece.begin(), piece.end());
    input = input.subspan(piece.size());
    if (buf_.size() < header_size) {
      return std::optional<frame>{};
    }
    auto hdr = check_header(buf_.data());
    if (!hdr) {
      return unexpected{std::move(hdr).error()};
    }
    pending_ = *hdr;
    auto prefix = prefix_length();
    split_ = prefix < pending_.length;
    // One allocation for the whole frame (check_header bounded its length)
    // instead of a growing buffer that copies it again at each doubling.
    buf_.reserve(header_size + prefix);
    if (split_) {
      payload_.reserve(pending_.length - prefix);
    }
  }
  auto collect = [&input](std::vector<std::byte>& into, size_t wanted) {
    auto piece = input.first(std::min(wanted, input.size()));
    into.insert(into.end(), piece.begin(), piece.end());
    input = input.subspan(piece.size());
    return piece.size() == wanted;
  };
  auto prefix_end = header_size + prefix_length();
  if (!collect(buf_, prefix_end - buf_.size())) {
    return std::optional<frame>{};
  }
  if (split_
      && !collect(payload_, pending_.length - (prefix_end - header_size)
                              - payload_.size())) {
    return std::optional<frame>{};
  }
  consumed_ = true;
  auto f = parse(pending_, bytes_view{buf_}.subspan(header_size));
  if (split_ && f && *f) {
    // parse saw the body without its payload: point the frame at it.
    std::visit(
      [this](auto& x) {
        if constexpr (requires { x.payload = bytes_view{}; }) {
          x.payload = bytes_view{payload_};
        }
      },
      **f);
  }
  return f;
}

size_t decoder::prefix_length() const noexcept {
  // The fields before the payload: REQUEST id and timeout, RESPONSE id and
  // status (wire format, docs/protocol.md).
  size_t prefix = 0;
  switch (pending_.type) {
    case frame_type::data: prefix = 0; break;
    case frame_type::request: prefix = 8 + 4; break;
    case frame_type::response: prefix = 8 + 1; break;
    default: return pending_.length;
  }
  if (pending_.length < prefix + separate_payload_min) {
    return pending_.length;
  }
  return prefix;
}

owned_frame decoder::take(const frame& x) {
  if (consumed_ && split_ && payload_of(x).data() == payload_.data()) {
    split_ = false;
    return to_owned(x, std::move(payload_));
  }
  return to_owned(x);
}

decoder::result decoder::parse(const header& hdr, bytes_view body) {
  // Frames are built in place in the result: this is the hot path.
  auto make = [](auto&& x) {
    return result{std::in_place, std::in_place, std::forward<decltype(x)>(x)};
  };
  reader in{body};
  auto id_ok = [this](std::string_view id, bool allow_empty) {
    return check_identifier(id, limits_.max_identifier_size, allow_empty)
           == errc::none;
  };
  // Order check first: a well-formed frame in the wrong place is
  // `unexpected_frame` whatever its body holds.
  bool allowed = false;
  switch (state_) {
    case state::expect_init:
      allowed = hdr.type == frame_type::stream_init
                || hdr.type == frame_type::hello
                || hdr.type == frame_type::stream_error;
      break;
    case state::expect_hello:
      allowed = hdr.type == frame_type::hello
                || hdr.type == frame_type::stream_error;
      break;
    case state::application:
      allowed = hdr.type == frame_type::data || hdr.type == frame_type::request
                || hdr.type == frame_type::response
                || hdr.type == frame_type::stream_error;
      break;
    case state::control:
      allowed = hdr.type == frame_type::apps
                || hdr.type == frame_type::stream_error;
      break;
    case state::closed:
    case state::failed: break;
  }
  if (!allowed) {
    return fail(errc::unexpected_frame);
  }
  ++frames_;
  switch (hdr.type) {
    case frame_type::stream_init: {
      stream_init x;
      if (!in.u8(x.version) || !in.id(x.application) || !in.id(x.stream)
          || !in.done()) {
        return fail(errc::malformed_frame);
      }
      if (x.version < limits_.version_min || x.version > limits_.version_max) {
        return fail(errc::unsupported_version);
      }
      if (!id_ok(x.application, false) || !id_ok(x.stream, true)) {
        return fail(errc::invalid_identifier);
      }
      version_ = x.version;
      state_ = state::application;
      return make(x);
    }
    case frame_type::data: return make(data{hdr.flags, in.rest()});
    case frame_type::request: {
      request x;
      x.flags = hdr.flags;
      if (!in.u64(x.id) || !in.u32(x.timeout_ms)) {
        return fail(errc::malformed_frame);
      }
      x.payload = in.rest();
      return make(x);
    }
    case frame_type::response: {
      response x;
      x.flags = hdr.flags;
      uint8_t status = 0;
      if (!in.u64(x.id) || !in.u8(status)) {
        return fail(errc::malformed_frame);
      }
      x.status = status == 0 ? errc::none : status_from_wire(status);
      if (x.status != errc::none && (x.flags & flag_caf_message)) {
        return fail(errc::malformed_frame);
      }
      x.payload = in.rest();
      return make(x);
    }
    case frame_type::stream_error: {
      uint8_t code = 0;
      if (!in.u8(code) || code == 0) {
        return fail(errc::malformed_frame);
      }
      stream_error x{status_from_wire(code), in.rest_text()};
      state_ = state::closed;
      return make(x);
    }
    case frame_type::hello: {
      hello x;
      if (!in.u8(x.version_min) || !in.u8(x.version_max)
          || !in.u64(x.incarnation) || !in.u64(x.capabilities)
          || !in.id(x.node_name) || !in.done()) {
        return fail(errc::malformed_frame);
      }
      if (x.version_min == 0 || x.version_min > x.version_max) {
        return fail(errc::malformed_frame);
      }
      auto v = negotiate_version(limits_.version_min, limits_.version_max,
                                 x.version_min, x.version_max);
      if (v == 0) {
        return fail(errc::unsupported_version);
      }
      if (!id_ok(x.node_name, false)) {
        return fail(errc::invalid_identifier);
      }
      version_ = v;
      state_ = state::control;
      return make(x);
    }
    case frame_type::apps: {
      uint16_t count = 0;
      if (!in.u16(count)) {
        return fail(errc::malformed_frame);
      }
      if (count > limits_.max_applications) {
        return fail(errc::too_many_entries);
      }
      // Each entry takes at least two bytes: refuse a count the body cannot
      // hold before reserving memory for it.
      if (count > (body.size() - 2) / 2) {
        return fail(errc::malformed_frame);
      }
      apps x;
      x.applications.reserve(count);
      for (uint16_t i = 0; i < count; ++i) {
        std::string_view id;
        if (!in.id(id)) {
          return fail(errc::malformed_frame);
        }
        if (!id_ok(id, false)) {
          return fail(errc::invalid_identifier);
        }
        x.applications.push_back(id);
      }
      if (!in.done()) {
        return fail(errc::malformed_frame);
      }
      // A set: the same id twice is malformed.
      auto sorted = x.applications;
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
        return fail(errc::malformed_frame);
      }
      return make(std::move(x));
    }
  }
  return fail(errc::unknown_frame_type); // unreachable: type was checked
}

expected<void> decoder::finish() const {
  if (state_ == state::failed) {
    return unexpected{error_};
  }
  if (!consumed_ && (!buf_.empty() || !payload_.empty())) {
    return errc::truncated_frame;
  }
  return {};
}

} // namespace mycorrizal::wire
