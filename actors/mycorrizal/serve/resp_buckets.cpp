// SPDX-License-Identifier: Apache-2.0
// Bucket administration over the Redis protocol: MYCEL.BUCKET (create with
// options, drop, list, info) and MYCEL.USE (a connection on a named
// bucket), named as Redis modules name their commands.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/serve/resp_internal.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <string>
#include <vector>

namespace mycorrizal::resp::detail {

namespace {

void reply_error(const async_reply& out, const caf::error& err) {
  auto e = from_caf_error(err);
  auto text = e == errc::bucket_exists || e == errc::invalid_config
                  || e == errc::invalid_identifier
                ? "ERR " + e.context()
                : error_text(e);
  out.finish([&](reply_writer& w) {
    w.error(text);
  });
}

/// Parses CREATE's options from argument `i`; the error text, or empty.
std::string parse_options(const context& c, size_t i, bucket_options& o) {
  for (; i < c.argc(); i += 2) {
    auto opt = lower(c.arg(i));
    if (i + 1 >= c.argc()) {
      return std::string{syntax_error};
    }
    auto value = c.arg(i + 1);
    if (opt == "ack") {
      if (iequals(value, "all")) {
        o.ack = cache::proto::ack_mode::all;
      } else if (iequals(value, "primary")) {
        o.ack = cache::proto::ack_mode::primary;
      } else {
        return "ERR ACK is ALL or PRIMARY";
      }
      continue;
    }
    int64_t n = 0;
    if (!parse_ll(value, n) || n < 0) {
      return std::string{not_an_integer};
    }
    if (opt == "rf") {
      o.rf = static_cast<uint32_t>(std::min<int64_t>(n, UINT32_MAX));
    } else if (opt == "partitions") {
      o.partitions = static_cast<uint32_t>(std::min<int64_t>(n, UINT32_MAX));
    } else if (opt == "ttl") {
      o.default_ttl_ms = n;
    } else if (opt == "maxentries") {
      o.max_entries = static_cast<uint64_t>(n);
    } else if (opt == "maxbytes") {
      o.max_bytes = static_cast<uint64_t>(n);
    } else {
      return std::string{syntax_error};
    }
  }
  return {};
}

void write_options(reply_writer& w, const std::string& name,
                   const bucket_options& o) {
  w.map(7);
  w.bulk_string("name").bulk_string(name);
  w.bulk_string("rf").integer(o.rf);
  w.bulk_string("partitions").integer(o.partitions);
  w.bulk_string("ack").bulk_string(
    o.ack == cache::proto::ack_mode::all ? "all" : "primary");
  w.bulk_string("ttl").integer(o.default_ttl_ms);
  w.bulk_string("maxentries").integer(static_cast<int64_t>(o.max_entries));
  w.bulk_string("maxbytes").integer(static_cast<int64_t>(o.max_bytes));
}

} // namespace

void cmd_mycel_bucket(const context& c) {
  auto sub = lower(c.arg(1));
  auto* self = c.env.self;
  auto cache = c.env.cache;
  auto timeout = c.env.timeout;
  async_reply out{c};
  if (sub == "create" && c.argc() >= 3) {
    bucket_options o;
    if (auto bad = parse_options(c, 3, o); !bad.empty()) {
      c.error(bad);
      return;
    }
    self
      ->request(cache, timeout, create_bucket_atom::value,
                std::string{c.arg(2)}, o)
      .then(
        [out](bool created) {
          out.finish([created](reply_writer& w) {
            w.integer(created ? 1 : 0);
          });
        },
        [out](caf::error& err) {
          reply_error(out, err);
        });
  } else if (sub == "drop" && c.argc() == 3) {
    self
      ->request(cache, timeout, drop_bucket_atom::value, std::string{c.arg(2)})
      .then(
        [out](bool existed) {
          out.finish([existed](reply_writer& w) {
            w.integer(existed ? 1 : 0);
          });
        },
        [out](caf::error& err) {
          reply_error(out, err);
        });
  } else if ((sub == "list" && c.argc() == 2)
             || (sub == "info" && c.argc() == 3)) {
    std::string name = sub == "info" ? std::string{c.arg(2)} : std::string{};
    self->request(cache, timeout, list_buckets_atom::value)
      .then(
        [out, name](std::vector<bucket_info>& all) {
          out.finish([&](reply_writer& w) {
            if (name.empty()) {
              w.array(all.size());
              for (auto& b : all) {
                w.bulk_string(b.name);
              }
              return;
            }
            for (auto& b : all) {
              if (b.name == name) {
                write_options(w, b.name, b.options);
                return;
              }
            }
            w.null();
          });
        },
        [out](caf::error& err) {
          reply_error(out, err);
        });
  } else if (sub == "help" && c.argc() == 2) {
    c.reply([](reply_writer& w) {
      constexpr std::string_view create
        = "CREATE <name> [RF <n>] [PARTITIONS <n>] [ACK ALL|PRIMARY] "
          "[TTL <ms>] [MAXENTRIES <n>] [MAXBYTES <n>]";
      constexpr std::string_view create_text
        = "    Create a bucket cluster-wide: 1, or 0 if it exists with "
          "these options.";
      constexpr std::string_view lines[]
        = {"MYCEL.BUCKET <subcommand> [<arg> ...]. Subcommands are:",
           create,
           create_text,
           "DROP <name>",
           "    Drop a bucket cluster-wide: 1, or 0 if there was none.",
           "LIST",
           "    The buckets' names.",
           "INFO <name>",
           "    A bucket's options, or nil.",
           "HELP",
           "    Print this help."};
      w.array(std::size(lines));
      for (auto l : lines) {
        w.simple_string(l);
      }
    });
  } else if (sub == "create" || sub == "drop" || sub == "list" || sub == "info"
             || sub == "help") {
    c.error(fmt::format(
      "ERR wrong number of arguments for 'mycel.bucket|{}' command", sub));
  } else {
    c.error(fmt::format("ERR unknown subcommand '{}'. Try MYCEL.BUCKET HELP.",
                        c_string(c.arg(1)).substr(0, 128)));
  }
}

void cmd_mycel_use(const context& c) {
  auto name = std::string{c.arg(1)};
  if (auto ok = cache::proto::check_bucket_name(name); !ok) {
    c.error("ERR " + ok.error().context());
    return;
  }
  auto& session = c.s;
  session.bucket = name;
  c.reply([](reply_writer& w) {
    w.simple_string("OK");
  });
}

} // namespace mycorrizal::resp::detail
