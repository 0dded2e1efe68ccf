// SPDX-License-Identifier: Apache-2.0
// mycorrizal: the command line of a Mycorrizal cluster. It talks to one
// node's HTTP API (mycorrizal-node --http, docs/http.md): members, status,
// the cache, the keyring of every member, and a graceful leave. Tables for
// people, --json for scripts, exit codes scripts can rely on (docs/cli.md).
#include "mycorrizal/base64.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;

// -- exit codes (docs/cli.md; the --help footer lists them) ------------------

constexpr int exit_ok = 0;
constexpr int exit_node_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr int exit_not_found = 4;

constexpr const char* default_addr = "127.0.0.1:8080";

/// Everything the flags say.
struct flags {
  std::string addr = default_addr;
  std::string token_file;
  bool json_out = false;
  double timeout = 30;
  std::string bucket;
  std::string key;
  std::optional<std::string> value;
  std::string value_file;
  double ttl = 0;
  std::string keyring_key;
};

/// The outcome of one HTTP call.
struct answer {
  /// 0 when the node could not be reached.
  int status = 0;
  std::string body;
  std::string content_type;
  httplib::Headers headers;
  /// Why the node could not be reached.
  std::string transport_error;
};

int say_error(const std::string& text) {
  std::fprintf(stderr, "mycorrizal: %s\n", text.c_str());
  return exit_node_error;
}

/// The node's HTTP address and token, and a client for them.
class api {
public:
  api(const flags& f, std::string host, int port, std::string token)
      : f_(f), host_(std::move(host)), port_(port), token_(std::move(token)) {
    // nop
  }

  answer call(const std::string& method, const std::string& path,
              const std::string& body = {},
              const std::string& content_type = {}) const {
    httplib::Client cli{host_, port_};
    auto secs = static_cast<time_t>(f_.timeout);
    auto usecs
      = static_cast<time_t>((f_.timeout - static_cast<double>(secs)) * 1e6);
    cli.set_connection_timeout(std::min<time_t>(secs, 5), usecs);
    cli.set_read_timeout(secs, usecs);
    cli.set_write_timeout(secs, usecs);
    httplib::Headers headers;
    if (!token_.empty()) {
      headers.emplace("Authorization", "Bearer " + token_);
    }
    httplib::Result res{nullptr, httplib::Error::Unknown};
    if (method == "GET") {
      res = cli.Get(path.c_str(), headers);
    } else if (method == "PUT") {
      res = cli.Put(path.c_str(), headers, body, content_type.c_str());
    } else if (method == "POST") {
      res = cli.Post(path.c_str(), headers, body, content_type.c_str());
    } else {
      res = cli.Delete(path.c_str(), headers);
    }
    answer out;
    if (!res) {
      out.transport_error = httplib::to_string(res.error());
      return out;
    }
    out.status = res->status;
    out.body = res->body;
    out.content_type = res->get_header_value("Content-Type");
    out.headers = res->headers;
    return out;
  }

  std::string where() const {
    return fmt::format("{}:{}", host_, port_);
  }

private:
  const flags& f_;
  std::string host_;
  int port_;
  std::string token_;
};

/// Percent-encodes everything but RFC 3986's unreserved characters, so
/// that any bucket or key (binary, '/', '?', spaces) is one path segment.
std::string encode_segment(const std::string& in) {
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

/// Parses HOST:PORT (an `http://` prefix is allowed; no port means 8080).
bool parse_addr(std::string text, std::string& host, int& port) {
  if (text.starts_with("http://")) {
    text.erase(0, 7);
  }
  while (!text.empty() && text.back() == '/') {
    text.pop_back();
  }
  if (text.empty()) {
    return false;
  }
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    host = text;
    port = 8080;
    return true;
  }
  host = text.substr(0, colon);
  auto p = text.substr(colon + 1);
  if (host.empty() || p.empty() || p.size() > 5
      || !std::all_of(p.begin(), p.end(), [](char c) {
           return c >= '0' && c <= '9';
         })) {
    return false;
  }
  port = std::stoi(p);
  return port > 0 && port < 65536;
}

/// The error text of a non-2xx answer.
std::string error_text(const answer& a) {
  auto j = json::parse(a.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")
      && j["error"].is_string()) {
    return j["error"].get<std::string>();
  }
  auto text = a.body;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text.empty() ? fmt::format("HTTP {}", a.status) : text;
}

/// Handles what every command does with an answer that is not a success:
/// @returns the exit code, or nothing for a 2xx answer.
std::optional<int> failed(const api& node, const answer& a, const flags& f) {
  if (a.status == 0) {
    std::fprintf(stderr, "mycorrizal: cannot reach the node at %s: %s\n",
                 node.where().c_str(), a.transport_error.c_str());
    return exit_unreachable;
  }
  if (a.status >= 200 && a.status < 300) {
    return std::nullopt;
  }
  if (f.json_out && a.content_type.starts_with("application/json")) {
    std::fputs(a.body.c_str(), stdout);
  }
  std::fprintf(stderr, "mycorrizal: %s (HTTP %d from %s)\n",
               error_text(a).c_str(), a.status, node.where().c_str());
  return exit_node_error;
}

/// Parses a JSON answer; prints it with --json.
std::optional<json> parsed(const answer& a, const flags& f) {
  auto j = json::parse(a.body, nullptr, false);
  if (j.is_discarded()) {
    say_error("the node answered no JSON: " + a.body.substr(0, 200));
    return std::nullopt;
  }
  if (f.json_out) {
    std::fputs((j.dump(2) + "\n").c_str(), stdout);
  }
  return j;
}

// -- tables -----------------------------------------------------------------

/// A left-aligned table with a header row, columns two spaces apart.
class table {
public:
  explicit table(std::vector<std::string> header) {
    rows_.push_back(std::move(header));
  }

  void add(std::vector<std::string> row) {
    rows_.push_back(std::move(row));
  }

  void print() const {
    std::vector<size_t> width;
    for (const auto& r : rows_) {
      width.resize(std::max(width.size(), r.size()));
      for (size_t i = 0; i < r.size(); ++i) {
        width[i] = std::max(width[i], r[i].size());
      }
    }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) {
          line.append(width[i] - r[i].size() + 2, ' ');
        }
      }
      std::puts(line.c_str());
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

/// A JSON value as table text ("-" for absent).
std::string cell(const json& j, const char* field) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) {
    return "-";
  }
  const auto& v = j[field];
  if (v.is_string()) {
    return v.get<std::string>();
  }
  if (v.is_boolean()) {
    return v.get<bool>() ? "yes" : "no";
  }
  if (v.is_number_float()) {
    return fmt::format("{:.2f}", v.get<double>());
  }
  return v.dump();
}

std::string joined(const json& arr) {
  std::string out;
  if (!arr.is_array()) {
    return "-";
  }
  for (const auto& x : arr) {
    if (!out.empty()) {
      out += ",";
    }
    out += x.is_string() ? x.get<std::string>() : x.dump();
  }
  return out.empty() ? "-" : out;
}

/// The members, sorted by name.
void members_table(const json& members) {
  std::vector<json> sorted(members.begin(), members.end());
  std::sort(sorted.begin(), sorted.end(), [](const json& a, const json& b) {
    return a.value("name", "") < b.value("name", "");
  });
  table t{{"NAME", "ADDRESS", "STATE", "INCARNATION", "QUIC_PORT", "ROLES"}};
  for (const auto& m : sorted) {
    std::string roles = "-";
    if (m.contains("roles")) {
      roles = (m["roles"].get<int>() & 1) != 0 ? "storage" : "client";
    }
    t.add({cell(m, "name"), cell(m, "address"), cell(m, "state"),
           cell(m, "incarnation"), cell(m, "quic_port"), roles});
  }
  t.print();
}

// -- commands ---------------------------------------------------------------

int cmd_members(const api& node, const flags& f) {
  auto a = node.call("GET", "/v1/members");
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (!f.json_out) {
    members_table((*j)["members"]);
  }
  return exit_ok;
}

int cmd_status(const api& node, const flags& f) {
  auto a = node.call("GET", "/v1/status");
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (f.json_out) {
    return exit_ok;
  }
  const auto& n = (*j)["node"];
  std::printf("node %s: gossip %s, QUIC %s, ready %s, health score %s\n",
              cell(n, "name").c_str(), cell(n, "gossip").c_str(),
              cell(n, "quic").c_str(), cell(n, "ready").c_str(),
              cell(n, "health_score").c_str());
  if (n.contains("failure")) {
    std::printf("FAILED: %s\n", cell(n, "failure").c_str());
  }
  std::puts("\nMembers:");
  members_table((*j)["members"]);
  std::map<std::string, json> conns;
  for (const auto& c : (*j)["connections"]) {
    conns[c.value("peer", "")] = c;
  }
  std::puts("\nPeers:");
  table peers{
    {"NAME", "CONNECTED", "RTT_MS", "MIN_RTT_MS", "LOST", "APPLICATIONS"}};
  for (const auto& p : (*j)["peers"]) {
    auto c = conns.find(p.value("name", ""));
    json conn = c != conns.end() ? c->second : json::object();
    peers.add({cell(p, "name"), cell(p, "connected"), cell(conn, "rtt_ms"),
               cell(conn, "min_rtt_ms"), cell(conn, "lost_packets"),
               joined(p["applications"])});
  }
  peers.print();
  std::puts("\nApplications:");
  table apps{{"NAME", "STREAM", "MESSAGES_IN", "MESSAGES_OUT", "REQUESTS_OUT",
              "FAILED", "PEERS"}};
  for (const auto& app : (*j)["applications"]) {
    for (const auto& s : app["streams"]) {
      auto stream = s.value("name", "");
      apps.add({cell(app, "name"), stream.empty() ? "(default)" : stream,
                cell(s, "messages_in"), cell(s, "messages_out"),
                cell(s, "requests_out"), cell(s, "requests_failed"),
                joined(s["peers"])});
    }
  }
  apps.print();
  std::puts("\nBuckets:");
  table buckets{{"NAME", "PARTITIONS", "RF", "ENTRIES", "BYTES", "OWNED",
                 "PRIMARY", "HITS", "MISSES", "OWNERS"}};
  for (const auto& b : (*j)["buckets"]) {
    buckets.add({cell(b, "name"), cell(b, "partitions"), cell(b, "rf"),
                 cell(b, "entries"), cell(b, "bytes"),
                 cell(b, "partitions_owned"), cell(b, "partitions_primary"),
                 cell(b, "hits"), cell(b, "misses"), joined(b["owners"])});
  }
  buckets.print();
  return exit_ok;
}

std::string entry_path(const flags& f) {
  return "/v1/cache/" + encode_segment(f.bucket) + "/" + encode_segment(f.key);
}

/// Whether `a` is the node's "no such key" answer.
bool key_not_found(const answer& a) {
  if (a.status != 404) {
    return false;
  }
  auto j = json::parse(a.body, nullptr, false);
  return !j.is_discarded() && j.is_object()
         && j.value("code", "") == "key_not_found";
}

bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

int cmd_cache_get(const api& node, const flags& f) {
  auto a = node.call("GET", entry_path(f));
  if (key_not_found(a)) {
    std::fprintf(stderr, "mycorrizal: %s\n", error_text(a).c_str());
    return exit_not_found;
  }
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  if (f.json_out) {
    json out = {{"bucket", f.bucket}, {"key", f.key}};
    std::vector<std::byte> bytes(a.body.size());
    std::transform(a.body.begin(), a.body.end(), bytes.begin(), [](char c) {
      return static_cast<std::byte>(c);
    });
    out["value_base64"] = mycorrizal::encode_base64(bytes);
    if (valid_utf8(a.body)) {
      out["value"] = a.body;
    }
    auto exp = a.headers.find("X-Mycorrizal-Expires-Ms");
    out["expires_ms"] = exp != a.headers.end() ? std::stoll(exp->second) : 0;
    std::fputs((out.dump(2) + "\n").c_str(), stdout);
    return exit_ok;
  }
  // The bytes as stored: nothing added, so that binary values survive.
  std::fwrite(a.body.data(), 1, a.body.size(), stdout);
  std::fflush(stdout);
  return exit_ok;
}

int cmd_cache_put(const api& node, const flags& f) {
  std::string value;
  if (!f.value_file.empty()) {
    std::ifstream in{f.value_file, std::ios::binary};
    if (!in) {
      std::fprintf(stderr, "mycorrizal: cannot read %s\n",
                   f.value_file.c_str());
      return exit_usage;
    }
    value.assign(std::istreambuf_iterator<char>{in}, {});
  } else if (f.value && *f.value != "-") {
    value = *f.value;
  } else {
    std::ostringstream buf;
    buf << std::cin.rdbuf();
    value = buf.str();
  }
  auto path = entry_path(f);
  if (f.ttl > 0) {
    path += fmt::format("?ttl={}", f.ttl);
  }
  auto a = node.call("PUT", path, value, "application/octet-stream");
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (!f.json_out) {
    std::puts(j->value("bucket_created", false)
                ? fmt::format("OK (bucket '{}' created)", f.bucket).c_str()
                : "OK");
  }
  return exit_ok;
}

int cmd_cache_del(const api& node, const flags& f) {
  auto a = node.call("DELETE", entry_path(f));
  if (key_not_found(a)) {
    std::fprintf(stderr, "mycorrizal: %s\n", error_text(a).c_str());
    return exit_not_found;
  }
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  if (!parsed(a, f)) {
    return exit_node_error;
  }
  if (!f.json_out) {
    std::puts("deleted");
  }
  return exit_ok;
}

int cmd_cache_buckets(const api& node, const flags& f) {
  auto a = node.call("GET", "/v1/cache");
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (!f.json_out) {
    table t{{"NAME", "PARTITIONS", "RF", "ACK", "DEFAULT_TTL_MS", "MAX_ENTRIES",
             "MAX_BYTES"}};
    for (const auto& b : (*j)["buckets"]) {
      t.add({cell(b, "name"), cell(b, "partitions"), cell(b, "rf"),
             cell(b, "ack"), cell(b, "default_ttl_ms"), cell(b, "max_entries"),
             cell(b, "max_bytes")});
    }
    t.print();
  }
  return exit_ok;
}

int cmd_cache_stats(const api& node, const flags& f) {
  auto a = node.call("GET", "/v1/cache-stats");
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (!f.json_out) {
    table t{{"BUCKET", "ENTRIES", "BYTES", "HITS", "MISSES", "EVICTIONS",
             "EXPIRATIONS", "OWNED", "PRIMARY"}};
    for (const auto& b : (*j)["buckets"]) {
      t.add({cell(b, "name"), cell(b, "entries"), cell(b, "bytes"),
             cell(b, "hits"), cell(b, "misses"), cell(b, "evictions"),
             cell(b, "expirations"), cell(b, "partitions_owned"),
             cell(b, "partitions_primary")});
    }
    std::printf("Cache of %s (this node's copies):\n",
                cell(*j, "node").c_str());
    t.print();
  }
  return exit_ok;
}

/// Prints the members a keyring operation failed on (stderr).
void print_failures(const json& j) {
  for (const auto& x : j.value("failed", json::array())) {
    std::fprintf(stderr, "  %s: %s\n", cell(x, "node").c_str(),
                 cell(x, "error").c_str());
  }
}

int cmd_keyring_list(const api& node, const flags& f) {
  auto a = node.call("GET", "/v1/keyring");
  if (a.status == 500 && a.content_type.starts_with("application/json")) {
    // Some members failed: what the others hold still counts.
    auto j = json::parse(a.body, nullptr, false);
    if (!j.is_discarded()) {
      if (f.json_out) {
        std::fputs((j.dump(2) + "\n").c_str(), stdout);
      }
      std::fprintf(stderr, "mycorrizal: %s:\n", error_text(a).c_str());
      print_failures(j);
    }
    if (j.is_discarded() || f.json_out) {
      return exit_node_error;
    }
  } else if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = f.json_out ? std::optional<json>{json::parse(a.body, nullptr, false)}
                      : parsed(a, f);
  if (!j || j->is_discarded()) {
    return exit_node_error;
  }
  if (f.json_out) {
    std::fputs((j->dump(2) + "\n").c_str(), stdout);
    return exit_ok;
  }
  auto total = j->value("members", 0);
  table t{{"KEY", "MEMBERS", "PRIMARY"}};
  for (const auto& k : (*j)["keys"]) {
    t.add({cell(k, "key"), fmt::format("{}/{}", k.value("members", 0), total),
           fmt::format("{}", k.value("primary", 0))});
  }
  t.print();
  return a.status == 200 ? exit_ok : exit_node_error;
}

int cmd_keyring_op(const api& node, const flags& f, const std::string& op) {
  json body = {{"op", op}, {"key", f.keyring_key}};
  auto a = node.call("POST", "/v1/keyring", body.dump(), "application/json");
  if (a.status == 500 && a.content_type.starts_with("application/json")) {
    auto j = json::parse(a.body, nullptr, false);
    if (!j.is_discarded()) {
      if (f.json_out) {
        std::fputs((j.dump(2) + "\n").c_str(), stdout);
      }
      std::fprintf(stderr, "mycorrizal: %s:\n", error_text(a).c_str());
      print_failures(j);
      return exit_node_error;
    }
  }
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (!f.json_out) {
    std::printf("%s: done on all %d members\n", op.c_str(),
                j->value("members", 0));
  }
  return exit_ok;
}

int cmd_leave(const api& node, const flags& f) {
  auto a = node.call("POST", "/v1/leave");
  if (auto rc = failed(node, a, f)) {
    return *rc;
  }
  auto j = parsed(a, f);
  if (!j) {
    return exit_node_error;
  }
  if (!f.json_out) {
    std::printf("%s is leaving the cluster\n", cell(*j, "node").c_str());
  }
  return exit_ok;
}

/// The first line of `file`.
std::optional<std::string> first_line(const std::string& file) {
  std::ifstream in{file};
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.pop_back();
  }
  if (!in || line.empty()) {
    return std::nullopt;
  }
  return line;
}

constexpr const char* exit_codes_text
  = "Exit status:\n"
    "  0  success\n"
    "  1  the node answered with an error (HTTP 4xx/5xx: a bad request, a\n"
    "     wrong token, an unknown bucket, the cluster cannot answer, a\n"
    "     keyring operation that failed on some members, ...)\n"
    "  2  usage error (bad command line)\n"
    "  3  the node cannot be reached (connection refused, timeout)\n"
    "  4  'cache get' or 'cache del' of a key that does not exist (nothing\n"
    "     is printed on stdout)\n";

} // namespace

int main(int argc, char** argv) {
  flags f;
  CLI::App app{"Talks to a Mycorrizal node's HTTP API (mycorrizal-node "
               "--http): cluster members, the node's status, the "
               "replicated cache, the gossip keyring of every member, and "
               "a graceful leave. Tables for people, --json for scripts.",
               "mycorrizal"};
  app.fallthrough();
  app.require_subcommand(1);
  app
    .add_option("--http-addr", f.addr,
                "HOST:PORT of the node's HTTP server (mycorrizal-node "
                "--http)")
    ->type_name("HOST:PORT")
    ->envname("MYCORRIZAL_HTTP_ADDR")
    ->capture_default_str();
  app
    .add_option("--token-file", f.token_file,
                "File whose first line is the node's bearer token "
                "(mycorrizal-node --http-token-file)")
    ->type_name("FILE")
    ->envname("MYCORRIZAL_HTTP_TOKEN_FILE");
  app.add_flag("--json", f.json_out,
               "Print the node's answer as JSON (for scripts) instead of "
               "tables");
  app
    .add_option("--timeout", f.timeout, "Seconds to wait for the node's answer")
    ->type_name("SECONDS")
    ->check(CLI::Range(0.1, 3600.0))
    ->capture_default_str();
  app.footer(std::string{exit_codes_text}
             + "\nEnvironment: MYCORRIZAL_HTTP_ADDR, "
               "MYCORRIZAL_HTTP_TOKEN_FILE.\nExamples:\n"
               "  mycorrizal --http-addr 127.0.0.1:9464 members\n"
               "  mycorrizal cache put web greeting hello --ttl 60\n"
               "  mycorrizal --json keyring list");

  auto* members = app.add_subcommand(
    "members", "List the members the node sees: name, gossip address, state "
               "(alive, suspect, dead, left), incarnation, QUIC port, role");
  auto* status = app.add_subcommand(
    "status", "The node's status: health score, members, peers with "
              "connection RTT, applications and their streams, buckets");
  auto* cache = app.add_subcommand(
    "cache", "The replicated cache (Mycel): get, put, del, buckets, stats");
  cache->require_subcommand(1);
  auto* get = cache->add_subcommand(
    "get", "Write KEY's value in BUCKET to stdout, byte for byte (nothing "
           "added); exit 4 and nothing on stdout if there is no such key. "
           "--json: {bucket, key, value_base64, value (when UTF-8), "
           "expires_ms}");
  get->add_option("bucket", f.bucket, "Bucket")->required();
  get->add_option("key", f.key, "Key")->required();
  get->footer(exit_codes_text);
  auto* put = cache->add_subcommand(
    "put", "Store VALUE (or the bytes of --file, or stdin when VALUE is "
           "absent or '-') under KEY in BUCKET; the bucket is created with "
           "default options if it does not exist");
  put->add_option("bucket", f.bucket, "Bucket")->required();
  put->add_option("key", f.key, "Key")->required();
  put->add_option("value", f.value, "Value (text)");
  put->add_option("--file", f.value_file, "Read the value from FILE")
    ->type_name("FILE");
  put
    ->add_option("--ttl", f.ttl,
                 "Time to live in seconds (default: the bucket's)")
    ->type_name("SECONDS")
    ->check(CLI::PositiveNumber);
  put->footer(exit_codes_text);
  auto* del = cache->add_subcommand(
    "del", "Delete KEY from BUCKET; exit 4 if there is no such key");
  del->add_option("bucket", f.bucket, "Bucket")->required();
  del->add_option("key", f.key, "Key")->required();
  del->footer(exit_codes_text);
  auto* buckets = cache->add_subcommand("buckets",
                                        "List the buckets and their options");
  auto* stats = cache->add_subcommand(
    "stats", "This node's counters per bucket: entries, bytes, hits, "
             "misses, evictions, partitions owned");
  auto* keyring = app.add_subcommand(
    "keyring", "The gossip encryption keyring, on every Mycorrizal member "
               "at once (like 'serf keys'): list, install, use, remove. A "
               "rotation: install NEW, use NEW, remove OLD");
  keyring->require_subcommand(1);
  auto* klist = keyring->add_subcommand(
    "list", "Every key and how many members hold it (and use it as "
            "primary); exit 1 if some member did not answer");
  auto* kinstall = keyring->add_subcommand(
    "install", "Add KEY to every member's keyring (it decrypts at once, "
               "encrypts once used); exit 1 if it failed on some member");
  auto* kuse = keyring->add_subcommand(
    "use", "Make the installed KEY every member's primary key (the one "
           "gossip is encrypted with); exit 1 if it failed on some member");
  auto* kremove = keyring->add_subcommand(
    "remove", "Remove KEY from every member's keyring; refused (exit 1) "
              "for the key in use");
  for (auto* sub : {kinstall, kuse, kremove}) {
    sub
      ->add_option("key", f.keyring_key,
                   "Base64 key of 16, 24 or 32 bytes (e.g. from 'head -c "
                   "32 /dev/urandom | base64')")
      ->required();
    sub->footer(exit_codes_text);
  }
  auto* leave = app.add_subcommand(
    "leave", "Make the node leave the cluster gracefully and stop "
             "(mycorrizal-node then exits 0); the others see it as 'left'");
  for (auto* sub :
       {members, status, cache, buckets, stats, keyring, klist, leave}) {
    sub->footer(exit_codes_text);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return exit_ok;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return exit_ok;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "mycorrizal: %s\nRun with --help for usage.\n",
                 e.what());
    return exit_usage;
  }
  std::string host;
  int port = 0;
  if (!parse_addr(f.addr, host, port)) {
    std::fprintf(stderr, "mycorrizal: --http-addr: want HOST:PORT, got '%s'\n",
                 f.addr.c_str());
    return exit_usage;
  }
  std::string token;
  if (!f.token_file.empty()) {
    auto t = first_line(f.token_file);
    if (!t) {
      std::fprintf(stderr,
                   "mycorrizal: --token-file: nothing on the first line of "
                   "%s\n",
                   f.token_file.c_str());
      return exit_usage;
    }
    token = std::move(*t);
  }
  api node{f, host, port, token};
  if (*members) {
    return cmd_members(node, f);
  }
  if (*status) {
    return cmd_status(node, f);
  }
  if (*get) {
    return cmd_cache_get(node, f);
  }
  if (*put) {
    return cmd_cache_put(node, f);
  }
  if (*del) {
    return cmd_cache_del(node, f);
  }
  if (*buckets) {
    return cmd_cache_buckets(node, f);
  }
  if (*stats) {
    return cmd_cache_stats(node, f);
  }
  if (*klist) {
    return cmd_keyring_list(node, f);
  }
  if (*kinstall) {
    return cmd_keyring_op(node, f, "install");
  }
  if (*kuse) {
    return cmd_keyring_op(node, f, "use");
  }
  if (*kremove) {
    return cmd_keyring_op(node, f, "remove");
  }
  if (*leave) {
    return cmd_leave(node, f);
  }
  std::fprintf(stderr, "mycorrizal: no command\nRun with --help for usage.\n");
  return exit_usage;
}
