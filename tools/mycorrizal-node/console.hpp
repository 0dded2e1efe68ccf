// SPDX-License-Identifier: Apache-2.0
// mycorrizal-node --console: cache commands read from stdin, one per line,
// answered on stdout (for the demo, scripts and process tests).
#pragma once

#include "mycorrizal/node.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace mycorrizal::tools {

/// What `help` prints.
extern const char* console_help;

/// Runs one console command on `n`: the answer line (without the node
/// prefix). Never throws; bad commands answer `error: ...`.
std::string run_console_command(node& n, std::string_view line);

/// Reads commands from stdin on a thread of its own until EOF or `stop`.
class console {
public:
  explicit console(std::shared_ptr<node> n);
  ~console();
  console(const console&) = delete;
  console& operator=(const console&) = delete;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace mycorrizal::tools
