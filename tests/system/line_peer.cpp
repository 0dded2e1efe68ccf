// SPDX-License-Identifier: Apache-2.0
// System tests: drives a peer process that speaks the JSON line protocol.
#include "line_peer.hpp"

#include <utility>

namespace mycorrizal::test {

nlohmann::json parse_line(std::string_view line) {
  return nlohmann::json::parse(line, nullptr, false);
}

std::int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::vector<std::string> peer_argv(const std::string& program,
                                   const peer_options& options) {
  std::vector<std::string> argv{program, "-name=" + options.name,
                                "-bind=" + options.bind, "-port=0",
                                "-profile=" + options.profile};
  if (!options.key.empty()) {
    argv.push_back("-key=" + options.key);
  }
  if (!options.meta.empty()) {
    argv.push_back("-meta=" + options.meta);
  }
  if (!options.join.empty()) {
    std::string list;
    for (const auto& addr : options.join) {
      list += (list.empty() ? "" : ",") + addr;
    }
    argv.push_back("-join=" + list);
  }
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  return argv;
}

namespace {

process_options make_process_options(const std::string& program,
                                     const peer_options& options) {
  process_options result;
  result.argv = peer_argv(program, options);
  result.label = options.name;
  return result;
}

bool field_is(const nlohmann::json& j, const char* key, std::string_view want) {
  if (!j.is_object()) {
    return false;
  }
  auto i = j.find(key);
  return i != j.end() && i->is_string()
         && i->get_ref<const std::string&>() == want;
}

} // namespace

line_peer::line_peer(const std::string& program, peer_options options)
    : options_(std::move(options)),
      proc_(make_process_options(program, options_)) {
  // nop
}

json_result line_peer::wait_ready(clock::time_point deadline) {
  auto r = proc_.wait_for_line(
    [](std::string_view line) {
      auto j = parse_line(line);
      return field_is(j, "ev", "ready") || field_is(j, "ev", "fatal");
    },
    deadline);
  if (!r) {
    return {std::nullopt, 0, r.error};
  }
  auto j = parse_line(*r.line);
  if (field_is(j, "ev", "fatal")) {
    return {std::nullopt, r.index,
            options_.name + ": peer failed to start\n" + proc_.describe()};
  }
  ready_ = j;
  return {std::move(j), r.index, {}};
}

std::string line_peer::address() const {
  if (!ready_.is_object()) {
    return {};
  }
  return ready_.value("addr", std::string{}) + ":"
         + std::to_string(ready_.value("port", 0));
}

json_result line_peer::request(std::string_view command,
                               clock::time_point deadline) {
  if (!proc_.write_line(command)) {
    return {std::nullopt, 0,
            options_.name + ": cannot write '" + std::string{command}
              + "' to stdin\n" + proc_.describe()};
  }
  ++pending_replies_;
  auto is_reply = [](std::string_view line) {
    return field_is(parse_line(line), "ev", "reply");
  };
  // Replies come in order: skip those of earlier commands that timed out.
  while (pending_replies_ > 0) {
    auto r = proc_.wait_for_line(is_reply, deadline, reply_cursor_);
    if (!r) {
      return {std::nullopt, 0,
              options_.name + ": no reply to '" + std::string{command} + "'\n"
                + r.error};
    }
    reply_cursor_ = r.index + 1;
    if (--pending_replies_ == 0) {
      auto j = parse_line(*r.line);
      auto word = command.substr(0, command.find(' '));
      if (!field_is(j, "cmd", word)) {
        return {std::nullopt, r.index,
                options_.name + ": reply to '" + std::string{command}
                  + "' names another command: " + *r.line};
      }
      return {std::move(j), r.index, {}};
    }
  }
  return {std::nullopt, 0, "unreachable"};
}

json_result line_peer::wait_event(std::string_view ev, std::string_view node,
                                  clock::time_point deadline,
                                  std::size_t from) {
  auto r = proc_.wait_for_line(
    [ev, node](std::string_view line) {
      auto j = parse_line(line);
      return field_is(j, "ev", ev)
             && (node.empty() || field_is(j, "node", node));
    },
    deadline, from);
  if (!r) {
    return {std::nullopt, 0,
            options_.name + ": no '" + std::string{ev} + "' event"
              + (node.empty() ? std::string{}
                              : " for '" + std::string{node} + "'")
              + "\n" + r.error};
  }
  return {parse_line(*r.line), r.index, {}};
}

std::vector<nlohmann::json> line_peer::events(std::string_view ev) const {
  std::vector<nlohmann::json> result;
  for (const auto& line : proc_.lines()) {
    auto j = parse_line(line);
    if (field_is(j, "ev", ev)) {
      result.push_back(std::move(j));
    }
  }
  return result;
}

std::set<std::string> names_in_state(const nlohmann::json& reply,
                                     const std::string& state) {
  std::set<std::string> result;
  for (const auto& m : reply.at("members")) {
    if (m.value("state", "") == state) {
      result.insert(m.value("name", ""));
    }
  }
  return result;
}

} // namespace mycorrizal::test
