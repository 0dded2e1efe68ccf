// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/wire/frame.hpp"
#include "mycorrizal/wire/limits.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace mycorrizal::wire {

/// How a stream's first frame must look, from the reader's point of view.
enum class stream_start : uint8_t {
  /// A stream the peer opened: STREAM_INIT (an application stream) or HELLO
  /// (the control stream), or STREAM_ERROR.
  peer_opened,
  /// The reverse direction of an application stream we opened: DATA,
  /// REQUEST, RESPONSE or STREAM_ERROR right away (the opener's STREAM_INIT
  /// named the application for both directions).
  application_reply,
  /// The reverse direction of the control stream we opened: HELLO first.
  control_reply,
};

/// What the stream turned out to be once its first frame arrived.
enum class stream_kind : uint8_t { unknown, application, control, closed };

/// An incremental decoder for one direction of one stream. Feed it bytes as
/// they arrive, split at any point; it hands out one frame per call.
///
/// A frame that lies whole in the input is returned as views into the input
/// (no copy). Otherwise the decoder buffers the frame's bytes, never more
/// than `header_size + max_frame_size` and never ahead of what arrived, and
/// returns views into that buffer. Either way the views stay valid until the
/// next call on the decoder (and, for input views, as long as the input).
/// The payload of a buffered DATA, REQUEST or RESPONSE frame of
/// `separate_payload_min` bytes or more is collected in a vector of its
/// own, which `take` hands over without copying it.
///
/// Errors are sticky: once a call failed, framing is lost and every later
/// call returns the same error. The stream should then be answered with
/// STREAM_ERROR and closed.
class decoder {
public:
  /// A frame, "need more input", or an error.
  using result = expected<std::optional<frame>>;

  explicit decoder(limits lim = limits::defaults(),
                   stream_start start = stream_start::peer_opened);

  /// Decodes the next frame, advancing `input` past the bytes it used.
  /// @returns a frame; `std::nullopt` once all of `input` is used up with no
  ///   complete frame; or one of `errc::frame_too_large`,
  ///   `errc::unknown_frame_type`, `errc::malformed_frame`,
  ///   `errc::invalid_identifier`, `errc::unsupported_version`,
  ///   `errc::unexpected_frame`, `errc::too_many_entries`.
  result next(bytes_view& input);

  /// Owns the frame the last `next` returned (`x`): a copy, except for a
  /// payload collected in a vector of its own, which moves out.
  owned_frame take(const frame& x);

  /// Reports whether the stream may end here (the peer sent FIN).
  /// @returns `errc::truncated_frame` if a frame was begun but not finished,
  ///   or the sticky error of an earlier call.
  expected<void> finish() const;

  /// What the stream's first frame made of it.
  stream_kind kind() const noexcept;

  /// The version the stream uses: STREAM_INIT's, or for the control stream
  /// the highest both HELLO ranges share; 0 before the first frame.
  uint8_t version() const noexcept {
    return version_;
  }

  /// Bytes held for a frame not yet complete.
  size_t buffered() const noexcept {
    return consumed_ ? 0 : buf_.size() + payload_.size();
  }

  /// Payloads from this size on are collected apart from their frame.
  static constexpr size_t separate_payload_min = size_t{64} << 10;

  /// Frames decoded so far.
  uint64_t frames() const noexcept {
    return frames_;
  }

private:
  enum class state : uint8_t {
    expect_init,
    expect_hello,
    application,
    control,
    closed,
    failed,
  };

  struct header {
    frame_type type;
    uint8_t flags;
    uint32_t length;
  };

  expected<header> check_header(const std::byte* p);
  result parse(const header& hdr, bytes_view body);
  void set_failed(errc code);
  result fail(errc code);

  /// Capacity of `buf_` kept between frames; a larger one is released.
  static constexpr size_t retained_buffer = size_t{64} << 10;

  /// Bytes of `pending_`'s body that go to `buf_` (after the header); the
  /// rest go to `payload_` when `split_`.
  size_t prefix_length() const noexcept;

  limits limits_;
  state state_;
  uint8_t version_ = 0;
  bool consumed_ = false;
  header pending_{};
  errc error_ = errc::none;
  uint64_t frames_ = 0;
  std::vector<std::byte> buf_;
  /// The current frame's payload is collected in `payload_`, not `buf_`.
  bool split_ = false;
  std::vector<std::byte> payload_;
};

} // namespace mycorrizal::wire
