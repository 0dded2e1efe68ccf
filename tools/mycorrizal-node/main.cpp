// SPDX-License-Identifier: Apache-2.0
// mycorrizal-node: one Mycorrizal node as a process. It starts a node in
// its own CAF actor system, prints a status line once the first join
// attempt is done, prints membership and connection changes, optionally
// runs the example application `demo` (--demo), serves HTTP (--http:
// metrics, health, status), and runs until SIGINT or
// SIGTERM, when it leaves the cluster and exits 0.
#include "mycorrizal/base64.hpp"
#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/cert_files.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/serve/http.hpp"
#include "mycorrizal/serve/resp.hpp"

#include "console.hpp"
#include "demo.hpp"

#include <caf/all.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace mycorrizal;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

/// The default gossip port (memberlist's).
constexpr uint16_t default_gossip_port = 7946;

/// Everything the flags say.
struct flags {
  std::string name;
  std::string gossip = "127.0.0.1:7946";
  std::string quic;
  std::string advertise;
  std::vector<std::string> seeds;
  std::string ca;
  std::string cert;
  std::string key;
  std::string data_dir = "./mycorrizal-data";
  std::string log_level = "info";
  std::string gossip_key;
  std::string profile = "lan";
  /// Seconds; negative: the profile's value.
  double reconnect_interval = -1;
  bool demo = false;
  std::string cache = "storage";
  bool console = false;
  std::string http;
  std::string http_token_file;
  std::string resp;
  std::string requirepass_file;
  bool resp_tls = false;
  std::string resp_tls_auth_clients = "yes";
  size_t resp_max_clients = 10'000;
  size_t threads = 0;
  bool caf_scheduler_defaults = false;
  std::string io_thread_actors = "all";
  int malloc_tcache = 256;
};

int usage(const std::string& text) {
  std::fprintf(stderr, "mycorrizal-node: %s\nRun with --help for usage.\n",
               text.c_str());
  return exit_usage;
}

int fail(const std::string& text) {
  std::fprintf(stderr, "mycorrizal-node: %s\n", text.c_str());
  return exit_failure;
}

/// The first line of `file`, for the flag `flag`.
expected<std::string> first_line(const std::string& flag,
                                 const std::string& file) {
  std::ifstream in{file};
  std::string line;
  std::getline(in, line);
  if (!in || line.empty()) {
    return unexpected{error{errc::invalid_config,
                            flag + ": nothing on the first line of " + file}};
  }
  return line;
}

/// The Redis front door's options from `--resp` and `--requirepass-file`.
expected<resp_options> resp_options_of(const flags& f) {
  resp_options out;
  auto ep = ip_endpoint::parse(f.resp, 6379);
  if (!ep) {
    return unexpected{
      error{errc::invalid_config, "--resp: " + to_string(ep.error())}};
  }
  out.bind = *ep;
  if (!f.requirepass_file.empty()) {
    auto pass = first_line("--requirepass-file", f.requirepass_file);
    if (!pass) {
      return unexpected{pass.error()};
    }
    out.password = std::move(*pass);
  }
  out.max_clients = f.resp_max_clients;
  const auto& auth = f.resp_tls_auth_clients;
  if (auth == "yes") {
    out.tls_auth = quic::client_auth::required;
  } else if (auth == "optional") {
    out.tls_auth = quic::client_auth::optional;
  } else if (auth == "no") {
    out.tls_auth = quic::client_auth::none;
  } else {
    return unexpected{
      error{errc::invalid_config, "--resp-tls-auth-clients: '" + auth
                                    + "' is none of yes, optional, no"}};
  }
  if (auto ok = out.validate(); !ok) {
    return unexpected{ok.error()};
  }
  return out;
}

/// Set by the HTTP server after it answered `POST /v1/leave`.
std::atomic<bool> leave_requested{false};

/// The HTTP server's options from `--http` and `--http-token-file`.
expected<http_options> http_options_of(const flags& f) {
  http_options out;
  auto ep = ip_endpoint::parse(f.http, 0);
  if (!ep) {
    return unexpected{
      error{errc::invalid_config, "--http: " + to_string(ep.error())}};
  }
  out.bind = *ep;
  // POST /v1/leave: the main thread stops the node and the process exits 0.
  out.on_leave = [] {
    leave_requested = true;
  };
  if (!f.http_token_file.empty()) {
    auto token = first_line("--http-token-file", f.http_token_file);
    if (!token) {
      return unexpected{token.error()};
    }
    out.token = std::move(*token);
  }
  if (auto ok = out.validate(); !ok) {
    return unexpected{ok.error()};
  }
  return out;
}

/// Turns the flags into a node configuration (without the credentials
/// files, which `main` reads).
/// @returns nothing, with `why` set, for bad flags.
std::optional<node_config> make_config(const flags& f, std::string& why) {
  if (auto ok = quic::validate_node_name(f.name); !ok) {
    why = "--name: " + to_string(ok.error());
    return std::nullopt;
  }
  auto cfg = f.profile == "local" ? node_config::local(f.name) : node_config{};
  cfg.io_thread_runs = f.io_thread_actors == "all"
                         ? node_config::io_thread_actors::all
                       : f.io_thread_actors == "own"
                         ? node_config::io_thread_actors::own
                         : node_config::io_thread_actors::none;
  cfg.name = f.name;
  auto gossip = ip_endpoint::parse(f.gossip, default_gossip_port);
  if (!gossip) {
    why = "--gossip: " + to_string(gossip.error());
    return std::nullopt;
  }
  cfg.gossip_bind = *gossip;
  if (f.quic.empty()) {
    cfg.quic_bind = *gossip;
    cfg.quic_bind.port(0);
  } else {
    auto quic = ip_endpoint::parse(f.quic, 0);
    if (!quic) {
      why = "--quic: " + to_string(quic.error());
      return std::nullopt;
    }
    cfg.quic_bind = *quic;
  }
  if (!f.advertise.empty()) {
    auto adv = ip_endpoint::parse(f.advertise, 0);
    if (!adv) {
      why = "--advertise: " + to_string(adv.error());
      return std::nullopt;
    }
    cfg.gossip_advertise = *adv;
  }
  for (const auto& s : f.seeds) {
    auto seed = ip_endpoint::parse(s, default_gossip_port);
    if (!seed) {
      why = "--seed: " + to_string(seed.error());
      return std::nullopt;
    }
    cfg.seeds.push_back(seed->to_string());
  }
  auto given = !f.ca.empty() + !f.cert.empty() + !f.key.empty();
  if (given != 0 && given != 3) {
    why = "--ca, --cert and --key go together: give all three, or none for "
          "development mode (--data-dir)";
    return std::nullopt;
  }
  if (given == 0 && f.data_dir.empty()) {
    why = "--data-dir: must not be empty in development mode";
    return std::nullopt;
  }
  cfg.data_dir = f.data_dir;
  if (f.reconnect_interval >= 0) {
    cfg.gossip.reconnect_interval = std::chrono::duration_cast<duration>(
      std::chrono::duration<double>{f.reconnect_interval});
  }
  if (!f.gossip_key.empty()) {
    auto key = decode_base64(f.gossip_key);
    if (!key) {
      why = "--gossip-key: not valid base64";
      return std::nullopt;
    }
    if (auto ok = cfg.gossip.keys.install(*key); !ok) {
      why = fmt::format("--gossip-key: {} bytes; need 16, 24 or 32 "
                        "(AES-128/192/256)",
                        key->size());
      return std::nullopt;
    }
  }
  if (f.cache != "off") {
    cache_options co;
    co.storage = f.cache == "storage";
    cfg.cache = co;
  }
  return cfg;
}

std::string status_line(node& n, const flags& f) {
  std::string seeds;
  if (f.seeds.empty()) {
    seeds = "no seeds: a cluster of its own until others join";
  } else if (n.seeds_joined() == 0) {
    seeds = fmt::format("none of {} seeds answered: running alone until "
                        "another node joins",
                        f.seeds.size());
  } else {
    seeds = fmt::format("joined via {} of {} seeds", n.seeds_joined(),
                        f.seeds.size());
  }
  std::string certs;
  if (f.ca.empty()) {
    std::error_code ec;
    auto dir = std::filesystem::absolute(f.data_dir, ec);
    certs = "dev-mode certificates in " + (ec ? f.data_dir : dir.string());
  } else {
    certs = "certificate " + f.cert;
  }
  return fmt::format("ready: gossip {}, QUIC {}; {}; profile {}, {}, gossip "
                     "{}{}",
                     n.gossip_endpoint().to_string(),
                     n.quic_endpoint().to_string(), seeds, f.profile, certs,
                     f.gossip_key.empty() ? "unencrypted" : "encrypted",
                     f.demo ? "; running the demo application" : "");
}

/// What `run_until_signal` returns for a leave over HTTP.
constexpr int leave_over_http = -1;

/// Waits for SIGINT or SIGTERM (blocked in every thread), for a leave over
/// HTTP or for the node to fail; prints the status line once the node is
/// ready. @returns the signal, `leave_over_http`, or 0 when the node failed.
int run_until_signal(node& n, const flags& f, const sigset_t& sigs) {
  bool printed = false;
  for (;;) {
    timespec ts{0, 100'000'000};
    auto sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig > 0) {
      return sig;
    }
    if (leave_requested.load()) {
      return leave_over_http;
    }
    if (auto why = n.failure()) {
      tools::say(f.name, "failed: " + to_string(*why));
      return 0;
    }
    if (!printed && n.ready()) {
      printed = true;
      tools::say(f.name, status_line(n, f));
    }
  }
}

} // namespace

/// glibc reads its malloc tunables from the environment at start only:
/// with `tcache` chunks per size wanted and not yet set, sets them and
/// runs this program again (same process, same arguments). Goes on as it
/// is when the exec fails.
void tune_malloc(int tcache, char** argv) {
  if (tcache <= 0) {
    return;
  }
  constexpr std::string_view key = "glibc.malloc.tcache_count";
  const char* now = std::getenv("GLIBC_TUNABLES");
  std::string tunables = now != nullptr ? now : "";
  if (tunables.find(key) != std::string::npos) {
    return; // set by the user, or by us before the exec
  }
  if (!tunables.empty()) {
    tunables += ':';
  }
  tunables += fmt::format("{}={}", key, tcache);
  if (::setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) {
    return;
  }
  ::execv("/proc/self/exe", argv);
  // Still here: not re-executed; the default cache it is.
  if (now != nullptr) {
    ::setenv("GLIBC_TUNABLES", now, 1);
  } else {
    ::unsetenv("GLIBC_TUNABLES");
  }
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  flags f;
  CLI::App app{
    "Runs one Mycorrizal node: gossip membership (HashiCorp memberlist "
    "protocol, UDP and TCP on one port) and QUIC with mutual TLS between "
    "nodes. It prints a status line once its first join attempt is done, "
    "then membership and connection changes as '[NAME] ...' lines on "
    "stdout (logs go to stderr), and runs until SIGINT or SIGTERM, when it "
    "leaves the cluster and exits 0. Exit status: 1 if the node cannot "
    "start or fails while running (a part of it ended: it prints "
    "'[NAME] failed: ...'), 2 for bad flags.",
    "mycorrizal-node"};
  app
    .add_option("--name", f.name,
                "Node name, unique in the cluster; it is the CN of the "
                "node's certificate (A-Z a-z 0-9 . - _, at most 64)")
    ->type_name("NAME")
    ->required();
  app
    .add_option("--gossip", f.gossip,
                "HOST:PORT to bind for gossip (UDP and TCP); port 0 picks a "
                "free one, no port means 7946")
    ->type_name("HOST:PORT")
    ->capture_default_str();
  app
    .add_option("--quic", f.quic,
                "HOST:PORT to bind for QUIC (UDP); default: the gossip host "
                "and port 0 (any free port). The port is announced in the "
                "membership metadata")
    ->type_name("HOST:PORT");
  app
    .add_option("--advertise", f.advertise,
                "HOST[:PORT] other nodes dial for gossip, and the host they "
                "dial for QUIC (default: the gossip address; no port means "
                "the bound gossip port)")
    ->type_name("HOST[:PORT]");
  app
    .add_option("--seed", f.seeds,
                "HOST[:PORT] of a node to join (port 7946 if none); "
                "repeatable, or comma-separated. None: start alone")
    ->type_name("HOST[:PORT]")
    ->delimiter(',');
  app
    .add_option("--ca", f.ca, "PEM file of the cluster CA (with --cert, --key)")
    ->type_name("FILE");
  app
    .add_option("--cert", f.cert,
                "PEM file of this node's certificate, CN = --name (with "
                "--ca, --key; mycorrizal-certs makes them)")
    ->type_name("FILE");
  app
    .add_option("--key", f.key,
                "PEM file of this node's private key (with --ca, --cert)")
    ->type_name("FILE");
  app
    .add_option("--data-dir", f.data_dir,
                "Development mode (without --ca/--cert/--key): creates a CA "
                "in DIR on first use and a certificate for --name signed by "
                "it; nodes sharing DIR trust each other. Not for production: "
                "the CA key sits next to the node keys")
    ->type_name("DIR")
    ->capture_default_str();
  app
    .add_option("--log-level", f.log_level,
                "Log level on stderr: trace, debug, info, warn, error or off; "
                "also per component, e.g. 'warn,gossip=debug' (components: "
                "node, gossip, quic, peers, apps, reactor, mycel)")
    ->type_name("LEVEL")
    ->capture_default_str();
  app
    .add_option("--gossip-key", f.gossip_key,
                "Encrypt gossip with this base64 key of 16, 24 or 32 bytes "
                "(AES-128/192/256-GCM, memberlist's keyring; e.g. from "
                "'head -c 32 /dev/urandom | base64'); every node needs it")
    ->type_name("BASE64");
  app
    .add_option("--profile", f.profile,
                "Timing profile: 'lan' (memberlist's LAN defaults) or "
                "'local' (one machine: fast failure detection, short QUIC "
                "idle timeout and redial backoff)")
    ->type_name("PROFILE")
    ->check(CLI::IsMember({"lan", "local"}))
    ->capture_default_str();
  app
    .add_option("--reconnect-interval", f.reconnect_interval,
                "Seconds between attempts to reach failed members (and the "
                "seeds while a member is failed), so that the cluster heals "
                "after a partition; 0 turns it off. Default: the profile's "
                "(lan 30, local 5)")
    ->type_name("SECONDS")
    ->check(CLI::Range(0.0, 86400.0));
  app.add_flag("--demo", f.demo,
               "Run the example application 'demo': every second broadcast "
               "'hello #N' to the peers running it and send each a typed "
               "request, keep one slow request (answered after 2 s) in "
               "flight per peer, watch the peers' remote handles and print "
               "what happens");
  app
    .add_option("--cache", f.cache,
                "Mycel, the replicated cache: 'storage' (this node holds "
                "partitions of every bucket), 'client' (it runs operations "
                "and holds nothing, like Hazelcast's lite members) or 'off'. "
                "A stop by SIGINT or SIGTERM first hands this node's copies "
                "to their new owners")
    ->type_name("MODE")
    ->check(CLI::IsMember({"storage", "client", "off"}))
    ->capture_default_str();
  app.add_flag("--console", f.console,
               "Read cache commands from stdin, one per line, and print each "
               "answer as '[NAME] COMMAND -> ANSWER' ('help' lists them: "
               "mkbucket, put, get, del, incr, owners, keys, stats, ...)");
  app
    .add_option(
      "--http", f.http,
      "Serve HTTP on HOST:PORT (port 0 picks one; the stdout line "
      "'[NAME] HTTP on ...' names it): /metrics (Prometheus), /health, "
      "/ready, /status (JSON), / (the status page) and the API under "
      "/v1/ that the 'mycorrizal' CLI uses (POST /v1/leave makes this "
      "process leave the cluster and exit 0). Off unless given; keep it "
      "on loopback or set --http-token-file")
    ->type_name("HOST:PORT");
  app
    .add_option("--http-token-file", f.http_token_file,
                "A file whose first line is the bearer token every HTTP path "
                "but /health then requires")
    ->type_name("FILE")
    ->check(CLI::ExistingFile);
  app
    .add_option("--resp", f.resp,
                "Serve the cache over the Redis protocol on HOST[:PORT] (port "
                "6379 if none; 0 picks one; the stdout line '[NAME] Redis "
                "protocol on ...' names it): redis-cli and Redis clients "
                "reach every key from any node; database n is the bucket "
                "'db<n>' (docs/resp.md). Needs the cache")
    ->type_name("HOST[:PORT]");
  app
    .add_option("--requirepass-file", f.requirepass_file,
                "A file whose first line is the password Redis clients must "
                "give with AUTH (Redis's requirepass)")
    ->type_name("FILE")
    ->check(CLI::ExistingFile);
  app.add_flag("--resp-tls", f.resp_tls,
               "Redis clients speak TLS (redis-cli --tls --cacert CA): the "
               "node's certificate (--ca/--cert/--key, or the dev-mode ones "
               "in --data-dir) serves them, and client certificates must be "
               "signed by the cluster CA");
  app
    .add_option("--resp-tls-auth-clients", f.resp_tls_auth_clients,
                "Redis's tls-auth-clients: yes (a client certificate is "
                "required; the default), optional, or no")
    ->type_name("yes|optional|no");
  app
    .add_option("--resp-max-clients", f.resp_max_clients,
                "Redis's maxclients: connections beyond it get '-ERR max "
                "number of clients reached' (default 10000)")
    ->type_name("N");
  app
    .add_option("--threads", f.threads,
                "Scheduler threads running the node's actors (CAF's "
                "scheduler.max-threads; default: the number of cores, at "
                "least 2; CAF's own default would be at least 4, and more "
                "threads than cores cost throughput and latency: "
                "docs/operations.md)")
    ->type_name("N")
    ->check(CLI::Range(1, 256));
  app
    .add_option("--io-thread-actors", f.io_thread_actors,
                "Which actors the I/O thread runs between its rounds of I/O "
                "instead of waking a scheduler thread for every read: all "
                "(those it feeds, Redis and QUIC connections and streams, "
                "and every actor they send to: buckets, handlers), own (the "
                "node's own actors only) or none; beyond 5 ms a round the "
                "work goes to the scheduler threads (docs/operations.md)")
    ->type_name("all|own|none")
    ->capture_default_str()
    ->check(CLI::IsMember({"all", "own", "none"}));
  app
    .add_option("--malloc-tcache", f.malloc_tcache,
                "Chunks glibc's malloc keeps per size in each thread's cache "
                "(glibc.malloc.tcache_count; glibc's default is 7). Actors "
                "free on one scheduler thread what another allocated, and "
                "7 overflow into the shared arena's locks: 256 serves "
                "redis-benchmark -P 16 about a fifth faster "
                "(docs/operations.md). The node restarts itself once at "
                "start with it set in GLIBC_TUNABLES, unless that already "
                "names it; 0 leaves glibc's default")
    ->type_name("N")
    ->capture_default_str()
    ->check(CLI::Range(0, 65535));
  app.add_flag("--caf-scheduler-defaults", f.caf_scheduler_defaults,
               "Leave CAF's scheduler settings as CAF sets them (its thread "
               "count and idle polling), as a host that embeds a node "
               "without configuring CAF runs it: for measurements "
               "(bench/idle/idle_cpu.py); overrides --threads");
  app.footer("Example, three nodes on one machine:\n"
             "  mycorrizal-node --name n1 --gossip 127.0.0.1:7946 "
             "--profile local --demo\n"
             "  mycorrizal-node --name n2 --gossip 127.0.0.2:7946 "
             "--seed 127.0.0.1 --profile local --demo\n"
             "  mycorrizal-node --name n3 --gossip 127.0.0.3:7946 "
             "--seed 127.0.0.1 --profile local --demo");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  tune_malloc(f.malloc_tcache, argv);
  auto lc = log::parse_spec(f.log_level);
  if (!lc) {
    return usage("--log-level: " + to_string(lc.error()));
  }
  lc->pattern = "[" + f.name + "] %H:%M:%S.%e %l %n: %v";
  std::string why;
  auto cfg = make_config(f, why);
  if (!cfg) {
    return usage(why);
  }
  if (auto ok = log::apply(*lc); !ok) {
    return usage("--log-level: " + to_string(ok.error()));
  }
  // Files that cannot be read or do not fit are a start failure (exit 1),
  // not a usage error.
  if (!f.ca.empty()) {
    auto creds = quic::credentials::from_files(
      f.ca, f.cert, f.key, std::chrono::system_clock::now());
    if (!creds) {
      return fail(
        fmt::format("cannot start {}: {}", f.name, to_string(creds.error())));
    }
    cfg->credentials = std::move(*creds);
  } else if (f.resp_tls) {
    // Development mode: the same certificate the node makes for itself.
    auto creds = certs::dev_credentials(f.data_dir, f.name);
    if (!creds) {
      return fail(
        fmt::format("cannot start {}: {}", f.name, to_string(creds.error())));
    }
    cfg->credentials = std::move(*creds);
  }
  // The Redis front door's TLS serves with the node's own identity.
  std::optional<quic::credentials> resp_credentials = cfg->credentials;
  // Signals are taken with sigtimedwait in this thread: block them in every
  // thread, before the actor system starts its threads.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  caf::actor_system_config sys_cfg;
  add_error_category(sys_cfg);
  tools::add_demo_types(sys_cfg);
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  auto threads = f.threads;
  if (threads == 0) {
    threads = std::max(size_t{2}, size_t{std::thread::hardware_concurrency()});
  }
  if (!f.caf_scheduler_defaults) {
    sys_cfg.set("scheduler.max-threads", threads);
  }
  // An idle worker parks on its condition variable at once instead of
  // polling 500 times in 50 us sleeps first (CAF's moderate phase: about
  // 3,000 wake-ups and 4-5 % of a core per second for an idle node), and
  // wakes every 50 ms to steal instead of every 10 ms. Work from outside
  // the scheduler (the reactor, timers) still wakes a parked worker at
  // once. docs/operations.md has the measurements.
  if (!f.caf_scheduler_defaults) {
    sys_cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
    sys_cfg.set("work-stealing.relaxed-sleep-duration",
                caf::timespan{std::chrono::milliseconds{50}});
  }
  caf::actor_system sys{sys_cfg};
  auto started = node::start(sys, std::move(*cfg));
  if (!started) {
    return fail(
      fmt::format("cannot start {}: {}", f.name, to_string(started.error())));
  }
  auto n = std::move(*started);
  std::vector<caf::actor> ours;
  ours.push_back(
    tools::spawn_watcher(sys, f.name, n->membership(), n->peers()));
  int rc = 0;
  if (f.demo) {
    tools::demo_options opts;
    opts.name = f.name;
    opts.router = n->router();
    auto demo = tools::spawn_demo(sys, opts);
    ours.push_back(demo);
    if (auto ok = n->register_app(opts.app, demo); !ok) {
      rc = fail(fmt::format("cannot register the demo application: {}",
                            to_string(ok.error())));
    }
  }
  std::unique_ptr<http_server> http;
  if (rc == 0 && !f.http.empty()) {
    auto opts = http_options_of(f);
    if (!opts) {
      rc = fail(to_string(opts.error()));
    } else if (auto srv = http_server::start(n, std::move(*opts)); !srv) {
      rc = fail(fmt::format("cannot serve HTTP: {}", to_string(srv.error())));
    } else {
      http = std::move(*srv);
      tools::say(f.name, fmt::format("HTTP on {}", to_string(http->local())));
    }
  }
  std::unique_ptr<resp_server> resp;
  if (rc == 0 && !f.resp.empty()) {
    auto opts = resp_options_of(f);
    if (!opts) {
      rc = fail(to_string(opts.error()));
    } else if (f.cache == "off") {
      rc = fail("--resp needs the cache (--cache storage or client)");
    } else if (f.resp_tls && !(opts->tls = resp_credentials)) {
      rc = fail("--resp-tls: the node has no certificate");
    } else if (auto srv = resp_server::start(n, std::move(*opts)); !srv) {
      rc = fail(fmt::format("cannot serve the Redis protocol: {}",
                            to_string(srv.error())));
    } else {
      resp = std::move(*srv);
      tools::say(f.name,
                 fmt::format("Redis protocol on {}", to_string(resp->local())));
    }
  }
  std::optional<tools::console> console;
  if (rc == 0 && f.console) {
    if (f.cache == "off") {
      rc = fail("--console needs the cache (--cache storage or client)");
    } else {
      console.emplace(n);
    }
  }
  if (rc == 0) {
    auto sig = run_until_signal(*n, f, sigs);
    if (sig == 0) {
      rc = 1;
    } else {
      tools::say(f.name, fmt::format("stopping ({}): leaving the cluster",
                                     sig == leave_over_http ? "leave over HTTP"
                                     : sig == SIGINT        ? "SIGINT"
                                                            : "SIGTERM"));
    }
  }
  {
    caf::scoped_actor self{sys};
    for (auto& a : ours) {
      self->send_exit(a, caf::exit_reason::user_shutdown);
    }
    for (auto& a : ours) {
      self->wait_for(a);
    }
  }
  ours.clear();
  console.reset();
  if (resp) {
    resp->stop();
  }
  if (http) {
    http->stop();
  }
  n->stop();
  n.reset();
  if (rc == 0) {
    tools::say(f.name, "stopped");
  }
  return rc;
}
