// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/log_sink.hpp"

#include <string>

namespace mycorrizal {

std::string_view to_string(log_level x) noexcept {
  switch (x) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
    case log_level::off: return "off";
  }
  return "off";
}

expected<log_level> parse_log_level(std::string_view text) {
  for (auto lvl : {log_level::trace, log_level::debug, log_level::info,
                   log_level::warn, log_level::error, log_level::off}) {
    if (text == to_string(lvl)) {
      return lvl;
    }
  }
  if (text == "warning") {
    return log_level::warn;
  }
  std::string msg = "unknown log level '";
  msg += text;
  msg += "' (expected trace, debug, info, warn, error or off)";
  return unexpected{error{errc::invalid_config, std::move(msg)}};
}

} // namespace mycorrizal
