// SPDX-License-Identifier: Apache-2.0
#include "console.hpp"

#include "demo.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

namespace mycorrizal::tools {

const char* console_help
  = "commands: mkbucket NAME [rf=N] [partitions=N] [ack=all|primary] "
    "[ttl=MS] [max-entries=N] [max-bytes=N] | rmbucket NAME | buckets | "
    "put BUCKET KEY VALUE [ttl=MS] [nx|xx] | get BUCKET KEY | "
    "del BUCKET KEY | incr BUCKET KEY [DELTA] | expire BUCKET KEY MS | "
    "ttl BUCKET KEY | owners BUCKET KEY | keys BUCKET | stats | members | "
    "help";

namespace {

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
      ++i;
    }
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') {
      ++j;
    }
    if (j > i) {
      out.push_back(line.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

template <class T>
std::optional<T> number(std::string_view s) {
  T x{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (ec != std::errc{} || p != s.data() + s.size()) {
    return std::nullopt;
  }
  return x;
}

/// A value as redis-cli shows one: quoted, non-printable bytes escaped.
std::string quoted(const std::vector<std::byte>& v) {
  std::string out = "\"";
  for (auto b : v) {
    auto c = static_cast<unsigned char>(b);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out + "\"";
}

std::vector<std::byte> bytes_of(std::string_view s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string failed(const error& e) {
  return "error: " + to_string(e);
}

std::string list(const std::vector<std::string>& xs) {
  return xs.empty() ? std::string{"(none)"}
                    : fmt::format("{}", fmt::join(xs, ", "));
}

/// `key=value` options after the positional words.
struct options {
  std::vector<std::pair<std::string_view, std::string_view>> kv;
  std::vector<std::string_view> flags;
};

options options_of(const std::vector<std::string_view>& w, size_t from) {
  options out;
  for (size_t i = from; i < w.size(); ++i) {
    auto eq = w[i].find('=');
    if (eq == std::string_view::npos) {
      out.flags.push_back(w[i]);
    } else {
      out.kv.emplace_back(w[i].substr(0, eq), w[i].substr(eq + 1));
    }
  }
  return out;
}

std::string mkbucket(node& n, const std::vector<std::string_view>& w) {
  if (w.size() < 2) {
    return "error: usage: mkbucket NAME [rf=N] [partitions=N] "
           "[ack=all|primary] [ttl=MS] [max-entries=N] [max-bytes=N]";
  }
  bucket_options o;
  auto opts = options_of(w, 2);
  if (!opts.flags.empty()) {
    return fmt::format("error: unknown option '{}'", opts.flags.front());
  }
  for (auto [k, v] : opts.kv) {
    bool ok = true;
    if (k == "rf") {
      auto x = number<uint32_t>(v);
      ok = x.has_value();
      o.rf = x.value_or(0);
    } else if (k == "partitions") {
      auto x = number<uint32_t>(v);
      ok = x.has_value();
      o.partitions = x.value_or(0);
    } else if (k == "ack") {
      ok = v == "all" || v == "primary";
      o.ack = v == "primary" ? cache::proto::ack_mode::primary
                             : cache::proto::ack_mode::all;
    } else if (k == "ttl") {
      auto x = number<int64_t>(v);
      ok = x.has_value();
      o.default_ttl_ms = x.value_or(0);
    } else if (k == "max-entries") {
      auto x = number<uint64_t>(v);
      ok = x.has_value();
      o.max_entries = x.value_or(0);
    } else if (k == "max-bytes") {
      auto x = number<uint64_t>(v);
      ok = x.has_value();
      o.max_bytes = x.value_or(0);
    } else {
      return fmt::format("error: unknown option '{}'", k);
    }
    if (!ok) {
      return fmt::format("error: bad value '{}' for {}", v, k);
    }
  }
  auto r = n.create_bucket(std::string{w[1]}, o);
  if (!r) {
    return failed(r.error());
  }
  return *r ? "created" : "exists (same options)";
}

std::string put(node& n, const std::vector<std::string_view>& w) {
  if (w.size() < 4) {
    return "error: usage: put BUCKET KEY VALUE [ttl=MS] [nx|xx]";
  }
  put_options po;
  auto opts = options_of(w, 4);
  for (auto f : opts.flags) {
    if (f == "nx") {
      po.only_if_absent = true;
    } else if (f == "xx") {
      po.only_if_present = true;
    } else {
      return fmt::format("error: unknown option '{}'", f);
    }
  }
  for (auto [k, v] : opts.kv) {
    auto ms = number<int64_t>(v);
    if (k != "ttl" || !ms || *ms <= 0) {
      return fmt::format("error: bad option '{}={}'", k, v);
    }
    po.ttl = std::chrono::milliseconds{*ms};
  }
  auto r = n.put(std::string{w[1]}, std::string{w[2]}, bytes_of(w[3]), po);
  if (!r) {
    return failed(r.error());
  }
  return *r ? "OK" : "(not written: condition)";
}

std::string stats(node& n) {
  auto r = n.cache_stats();
  if (!r) {
    return failed(r.error());
  }
  std::vector<std::string> parts;
  for (auto& s : *r) {
    parts.push_back(fmt::format(
      "{}: {} entries, {} bytes, {} hits, {} misses, {} evictions, {} "
      "expirations, {} partitions owned ({} primary), hand-offs {} sent {} "
      "received {} abandoned, {} repairs",
      s.name, s.entries, s.bytes, s.hits, s.misses, s.evictions, s.expirations,
      s.partitions_owned, s.partitions_primary, s.handoffs_sent,
      s.handoffs_received, s.handoffs_abandoned, s.repairs));
  }
  return parts.empty() ? std::string{"(no buckets)"}
                       : fmt::format("{}", fmt::join(parts, "; "));
}

} // namespace

std::string run_console_command(node& n, std::string_view line) {
  auto w = words_of(line);
  if (w.empty()) {
    return "error: empty command";
  }
  auto cmd = w[0];
  auto need = [&](size_t k, const char* usage) -> std::optional<std::string> {
    if (w.size() != k) {
      return std::string{"error: usage: "} + usage;
    }
    return std::nullopt;
  };
  if (cmd == "help") {
    return console_help;
  }
  if (cmd == "mkbucket") {
    return mkbucket(n, w);
  }
  if (cmd == "rmbucket") {
    if (auto u = need(2, "rmbucket NAME")) {
      return *u;
    }
    auto r = n.drop_bucket(std::string{w[1]});
    return !r ? failed(r.error()) : (*r ? "dropped" : "(no such bucket)");
  }
  if (cmd == "buckets") {
    auto r = n.buckets();
    if (!r) {
      return failed(r.error());
    }
    std::vector<std::string> names;
    for (auto& b : *r) {
      names.push_back(fmt::format(
        "{} (rf {}, {} partitions, ack {})", b.name, b.options.rf,
        b.options.partitions,
        b.options.ack == cache::proto::ack_mode::all ? "all" : "primary"));
    }
    return list(names);
  }
  if (cmd == "put") {
    return put(n, w);
  }
  if (cmd == "get") {
    if (auto u = need(3, "get BUCKET KEY")) {
      return *u;
    }
    auto r = n.get(std::string{w[1]}, std::string{w[2]});
    return !r ? failed(r.error()) : (*r ? quoted((*r)->value) : "(nil)");
  }
  if (cmd == "del") {
    if (auto u = need(3, "del BUCKET KEY")) {
      return *u;
    }
    auto r = n.del(std::string{w[1]}, std::string{w[2]});
    return !r ? failed(r.error()) : (*r ? "(deleted)" : "(no such key)");
  }
  if (cmd == "incr") {
    if (w.size() != 3 && w.size() != 4) {
      return "error: usage: incr BUCKET KEY [DELTA]";
    }
    int64_t delta = 1;
    if (w.size() == 4) {
      auto d = number<int64_t>(w[3]);
      if (!d) {
        return "error: DELTA is no 64-bit integer";
      }
      delta = *d;
    }
    auto r = n.incr(std::string{w[1]}, std::string{w[2]}, delta);
    return !r ? failed(r.error()) : std::to_string(*r);
  }
  if (cmd == "expire") {
    if (auto u = need(4, "expire BUCKET KEY MS")) {
      return *u;
    }
    auto ms = number<int64_t>(w[3]);
    if (!ms) {
      return "error: MS is no 64-bit integer";
    }
    auto r = n.expire(std::string{w[1]}, std::string{w[2]},
                      std::chrono::milliseconds{*ms});
    return !r ? failed(r.error()) : (*r ? "(set)" : "(no such key)");
  }
  if (cmd == "ttl") {
    if (auto u = need(3, "ttl BUCKET KEY")) {
      return *u;
    }
    auto r = n.expires_at(std::string{w[1]}, std::string{w[2]});
    if (!r) {
      return failed(r.error());
    }
    if (!*r) {
      return "(no such key)";
    }
    if (**r == 0) {
      return "(no expiry)";
    }
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    return fmt::format("{} ms", std::max<int64_t>(**r - now, 0));
  }
  if (cmd == "owners") {
    if (auto u = need(3, "owners BUCKET KEY")) {
      return *u;
    }
    auto r = n.owners(std::string{w[1]}, std::string{w[2]});
    return !r ? failed(r.error()) : list(*r);
  }
  if (cmd == "keys") {
    if (auto u = need(2, "keys BUCKET")) {
      return *u;
    }
    auto r = n.keys(std::string{w[1]});
    return !r ? failed(r.error()) : list(*r);
  }
  if (cmd == "stats") {
    return stats(n);
  }
  if (cmd == "members") {
    auto r = n.cache_members();
    return !r ? failed(r.error()) : list(*r);
  }
  return fmt::format("error: unknown command '{}' (try 'help')", cmd);
}

struct console::impl {
  std::shared_ptr<node> n;
  std::atomic<bool> stop{false};
  std::thread reader;

  void run() {
    std::string buf;
    char chunk[4096];
    while (!stop.load()) {
      pollfd pfd{STDIN_FILENO, POLLIN, 0};
      auto rc = ::poll(&pfd, 1, 100);
      if (rc <= 0) {
        continue;
      }
      auto got = ::read(STDIN_FILENO, chunk, sizeof(chunk));
      if (got <= 0) {
        return; // EOF or error: no more commands
      }
      buf.append(chunk, static_cast<size_t>(got));
      size_t nl = 0;
      while ((nl = buf.find('\n')) != std::string::npos) {
        auto line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        if (line.empty()) {
          continue;
        }
        say(n->name(),
            fmt::format("{} -> {}", line, run_console_command(*n, line)));
      }
    }
  }
};

console::console(std::shared_ptr<node> n) : impl_(std::make_unique<impl>()) {
  impl_->n = std::move(n);
  impl_->reader = std::thread{[this] {
    impl_->run();
  }};
}

console::~console() {
  impl_->stop = true;
  impl_->reader.join();
}

} // namespace mycorrizal::tools
