// SPDX-License-Identifier: Apache-2.0
// System tests: drives a peer process that speaks the JSON line protocol.
#pragma once

#include "support/process.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::test {

/// Flags of a peer (tests/system/README.md, "Command line").
struct peer_options {
  std::string name;
  /// IP to bind and advertise, e.g. "127.0.0.11".
  std::string bind = "127.0.0.1";
  /// "lan", "wan" or "local".
  std::string profile = "local";
  /// Hex AES key; empty for no encryption.
  std::string key;
  std::string meta;
  /// host:port addresses to join at start.
  std::vector<std::string> join;
  /// Further flags passed as they are.
  std::vector<std::string> extra_args;
};

/// A parsed JSON line, or why there is none.
struct json_result {
  std::optional<nlohmann::json> value;
  /// Index of the line in the process's `lines()`.
  std::size_t index = 0;
  std::string error;

  explicit operator bool() const noexcept {
    return value.has_value();
  }

  const nlohmann::json& operator*() const {
    return *value;
  }

  const nlohmann::json* operator->() const {
    return &*value;
  }
};

/// Parses one line; a discarded (invalid) value if it is not JSON.
nlohmann::json parse_line(std::string_view line);

/// Unix time in nanoseconds, the unit of the "t" field.
std::int64_t unix_now_ns();

/// A running peer process and its line protocol.
class line_peer {
public:
  using clock = process::clock;

  /// Starts `program` with the flags from `options`.
  line_peer(const std::string& program, peer_options options);

  /// Waits for the "ready" line (or a "fatal" one, which fails).
  json_result wait_ready(clock::time_point deadline);

  /// The "ready" line; only valid after `wait_ready` succeeded.
  const nlohmann::json& ready() const noexcept {
    return ready_;
  }

  const std::string& name() const noexcept {
    return options_.name;
  }

  /// "addr:port" from the ready line, for -join and the join command.
  std::string address() const;

  /// Sends one command and waits for its reply (the next "reply" line not
  /// consumed yet; replies come in command order).
  json_result request(std::string_view command, clock::time_point deadline);

  /// Waits for a line at index `from` or later with "ev" == `ev` and, if
  /// `node` is not empty, "node" == `node`.
  json_result wait_event(std::string_view ev, std::string_view node,
                         clock::time_point deadline, std::size_t from = 0);

  /// Every line whose "ev" is `ev`, parsed.
  std::vector<nlohmann::json> events(std::string_view ev) const;

  process& proc() noexcept {
    return proc_;
  }

private:
  peer_options options_;
  process proc_;
  nlohmann::json ready_;
  std::size_t reply_cursor_ = 0;
  std::size_t pending_replies_ = 0;
};

/// Builds the argv for a peer (exposed for tests of other implementations).
std::vector<std::string> peer_argv(const std::string& program,
                                   const peer_options& options);

/// The time `d` from now on the peers' clock: a deadline.
inline std::chrono::steady_clock::time_point
in(std::chrono::steady_clock::duration d) {
  return std::chrono::steady_clock::now() + d;
}

// AES-256 keys as hex: the cluster key and a wrong one.
inline constexpr const char* cluster_key
  = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
inline constexpr const char* wrong_key
  = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a090807060504030201000";

/// Names that a peer's "members" reply lists in `state`.
std::set<std::string> names_in_state(const nlohmann::json& reply,
                                     const std::string& state);

} // namespace mycorrizal::test
