// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/errc.hpp"

namespace mycorrizal {

std::string_view to_string(errc x) noexcept {
  switch (x) {
    case errc::none: return "none";
    case errc::frame_too_large: return "frame_too_large";
    case errc::unknown_frame_type: return "unknown_frame_type";
    case errc::malformed_frame: return "malformed_frame";
    case errc::invalid_identifier: return "invalid_identifier";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unexpected_frame: return "unexpected_frame";
    case errc::truncated_frame: return "truncated_frame";
    case errc::buffer_too_small: return "buffer_too_small";
    case errc::too_many_entries: return "too_many_entries";
    case errc::checksum_mismatch: return "checksum_mismatch";
    case errc::decrypt_failed: return "decrypt_failed";
    case errc::nesting_too_deep: return "nesting_too_deep";
    case errc::encryption_mismatch: return "encryption_mismatch";
    case errc::decompress_failed: return "decompress_failed";
    case errc::invalid_config: return "invalid_config";
    case errc::timeout: return "timeout";
    case errc::node_down: return "node_down";
    case errc::connection_lost: return "connection_lost";
    case errc::unknown_application: return "unknown_application";
    case errc::no_handler: return "no_handler";
    case errc::remote_error: return "remote_error";
    case errc::too_large: return "too_large";
    case errc::queue_full: return "queue_full";
    case errc::shutting_down: return "shutting_down";
    case errc::not_serializable: return "not_serializable";
    case errc::unknown_bucket: return "unknown_bucket";
    case errc::bucket_exists: return "bucket_exists";
    case errc::no_owner: return "no_owner";
    case errc::version_mismatch: return "version_mismatch";
    case errc::wrong_type: return "wrong_type";
  }
  return "unknown";
}

std::optional<errc> errc_from_code(uint8_t code) noexcept {
  auto x = static_cast<errc>(code);
  if (to_string(x) == "unknown") {
    return std::nullopt;
  }
  return x;
}

} // namespace mycorrizal
