// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"

#include <cstdint>
#include <functional>
#include <string_view>

/// Cores never log globally (STYLE.md §G): a core that has something to say
/// takes a `log_sink` in its config, the way ngtcp2 takes `log_printf`. The
/// owning actor hands in a sink that forwards to the module's spdlog logger
/// (`mycorrizal::log::core_sink`); tests hand in a sink that records.
namespace mycorrizal {

/// Severity of a log line, from most to least verbose; `off` disables.
enum class log_level : uint8_t { trace, debug, info, warn, error, off };

/// Returns "trace", "debug", "info", "warn", "error" or "off".
std::string_view to_string(log_level x) noexcept;

/// Parses the names `to_string` returns (and "warning").
/// @returns `errc::invalid_config` naming the text for anything else.
expected<log_level> parse_log_level(std::string_view text);

/// Receives a core's log lines. An empty sink discards them.
using log_sink = std::function<void(log_level, std::string_view message)>;

} // namespace mycorrizal
