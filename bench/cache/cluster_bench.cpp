// SPDX-License-Identifier: Apache-2.0
// cluster_bench: Mycel across real processes on 127.0.0.x, against the node
// runtime's plain request/response measured in the same run.
//
//   cluster_bench [--part ops|recovery|all] [--callers C] [--ops N]
//                 [--keys K] [--value-size B] [--entries E] [--repeat R]
//                 [--workers T]
//
// This process is a client-only member ("bench": it stores nothing, so
// every operation crosses the network, as the baseline does). The storage
// members are copies of this program started with `--child` (their own
// processes, actor systems and QUIC endpoints on 127.0.0.2, .3, ...), each
// a node with a storage cache and an application `cbench` that echoes a
// request ('e'), sinks one ('b': answers its size) or reports its cache
// ('s': entries, members, hand-offs). A child stops when its stdin closes;
// the recovery part kills one with SIGKILL.
//
// ops (3 storage members, RF 2): C callers (event-based actors), each with
// one operation in flight, N operations in all per case, latency of each:
//   rr          `request_atom` through the router to a member's `cbench`,
//               B bytes echoed: one round trip, the baseline
//   get         get of one of K keys (filled before) at its primary
//   put/primary put of B bytes, ack `primary` (the replica is written after
//               the answer)
//   put/all     put of B bytes, ack `all` (the answer waits for the replica)
// Operations go to the bucket's handle (`bucket_atom`), as actor code does.
//
// recovery (5 storage members, RF 2, ack all): E entries of B bytes are put
// (C callers), the copies settle at 2E; then the baseline, the transport's
// bulk rate (256 KiB requests to one member's sink, 4 in flight, 256 MiB),
// then one member is killed with SIGKILL. Reported: when the others' views
// dropped it (failure detection), when the copies were back at 2E (the RF
// restored everywhere), the copies re-created, and their bytes (key +
// value) per second of the transfer phase against the bulk rate.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"

#include "../compare/common.hpp"

#include <caf/all.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace mycorrizal;
using namespace std::chrono_literals;
using mycorrizal::bench::clock_type;
using mycorrizal::bench::summary;

namespace {

constexpr const char* app = "cbench";

struct flags {
  std::string part = "all";
  size_t callers = 50;
  size_t ops = 20'000;
  size_t keys = 10'000;
  size_t value_size = 100;
  size_t entries = 1'000'000;
  size_t repeat = 3;
  size_t workers = 2;
  /// Log levels of every node (`log::parse_spec`), children included.
  std::string log = "warn";
  // --child
  std::string child;
  std::string host;
  std::string seed;
  std::string data_dir;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(
    stderr,
    "%s\nusage: cluster_bench [--part ops|recovery|all] [--callers C]\n"
    "  [--ops N] [--keys K] [--value-size B] [--entries E] [--repeat R]\n"
    "  [--workers T] [--log SPEC]\n",
    why);
  std::exit(2);
}

size_t number(const char* s) {
  size_t v = 0;
  auto [p, ec] = std::from_chars(s, s + std::strlen(s), v);
  if (ec != std::errc{} || *p != '\0') {
    usage("not a number");
  }
  return v;
}

flags parse(int argc, char** argv) {
  flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        usage(("missing value of " + a).c_str());
      }
      return argv[++i];
    };
    if (a == "--part") {
      f.part = next();
    } else if (a == "--callers") {
      f.callers = number(next());
    } else if (a == "--ops") {
      f.ops = number(next());
    } else if (a == "--keys") {
      f.keys = number(next());
    } else if (a == "--value-size") {
      f.value_size = number(next());
    } else if (a == "--entries") {
      f.entries = number(next());
    } else if (a == "--repeat") {
      f.repeat = number(next());
    } else if (a == "--workers") {
      f.workers = number(next());
    } else if (a == "--log") {
      f.log = next();
    } else if (a == "--child") {
      f.child = next();
    } else if (a == "--host") {
      f.host = next();
    } else if (a == "--seed") {
      f.seed = next();
    } else if (a == "--data-dir") {
      f.data_dir = next();
    } else if (a == "-h" || a == "--help") {
      usage("cluster_bench: Mycel's operations and recovery, measured");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (f.part != "ops" && f.part != "recovery" && f.part != "all") {
    usage("--part is ops, recovery or all");
  }
  if (f.callers == 0 || f.ops == 0 || f.keys == 0 || f.repeat == 0) {
    usage("counts must be positive");
  }
  return f;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "cluster_bench: %s\n", what.c_str());
  std::exit(1);
}

std::vector<std::byte> bytes_of(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string text_of(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string key_of(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key:%010zu", i);
  return buf;
}

caf::actor_system_config& setup(caf::actor_system_config& cfg, size_t workers) {
  cfg.set("scheduler.max-threads", workers);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  add_error_category(cfg);
  return cfg;
}

node_config config_of(const std::string& name, const std::string& host,
                      const std::string& data_dir, bool storage) {
  auto cfg = node_config::local(name);
  auto ep = ip_endpoint::parse(host + ":0");
  if (!ep) {
    fail("bad host " + host);
  }
  cfg.gossip_bind = *ep;
  cfg.quic_bind = *ep;
  cfg.data_dir = data_dir;
  cache_options co;
  co.storage = storage;
  cfg.cache = co;
  return cfg;
}

// -- a storage member (--child) -----------------------------------------------

/// A member's `cbench` handler: 'e' echoes, 'b' answers the size, 's'
/// answers "ENTRIES MEMBERS HANDOFFS_SENT HANDOFFS_RECEIVED" of its cache
/// (asked without blocking a scheduler thread).
caf::behavior member_app(caf::event_based_actor* self, cache_actor cache) {
  return {
    [=](const app_request& r) -> caf::result<raw_bytes> {
      if (r.payload.empty()) {
        return make_caf_error(
          error{errc::unexpected_frame, "an empty request"});
      }
      switch (static_cast<char>(r.payload[0])) {
        case 'e': return raw_bytes{r.payload};
        case 'b': return raw_bytes{bytes_of(std::to_string(r.payload.size()))};
        case 's': break;
        default:
          return make_caf_error(
            error{errc::unexpected_frame, "an unknown command"});
      }
      auto rp = self->make_response_promise<raw_bytes>();
      self->request(cache, 10s, stats_atom::value)
        .then(
          [=](std::vector<bucket_stats>& st) mutable {
            uint64_t entries = 0;
            uint64_t sent = 0;
            uint64_t received = 0;
            for (auto& b : st) {
              entries += b.entries;
              sent += b.handoffs_sent;
              received += b.handoffs_received;
            }
            self->request(cache, 10s, members_atom::value)
              .then(
                [=](std::vector<std::string>& m) mutable {
                  rp.deliver(raw_bytes{bytes_of(std::to_string(entries) + " "
                                                + std::to_string(m.size()) + " "
                                                + std::to_string(sent) + " "
                                                + std::to_string(received))});
                },
                [=](caf::error& e) mutable {
                  rp.deliver(e);
                });
          },
          [=](caf::error& e) mutable {
            rp.deliver(e);
          });
      return rp;
    },
    [](const app_message&) {},
  };
}

int child_main(const flags& f) {
  caf::actor_system_config cfg;
  caf::actor_system sys{setup(cfg, f.workers)};
  auto nc = config_of(f.child, f.host, f.data_dir, true);
  nc.seeds.push_back(f.seed);
  auto started = node::start(sys, nc);
  if (!started) {
    fail(f.child + ": " + to_string(started.error()));
  }
  auto n = *started;
  auto handler = sys.spawn(member_app, n->cache());
  if (auto ok = n->register_app(app, handler); !ok) {
    fail(f.child + ": " + to_string(ok.error()));
  }
  std::printf("ready\n");
  std::fflush(stdout);
  // Serve until the parent closes our stdin (or kills us).
  char buf[64];
  while (::read(0, buf, sizeof(buf)) > 0) {
  }
  n->stop();
  caf::anon_send_exit(handler, caf::exit_reason::user_shutdown);
  return 0;
}

/// A storage member process.
class member {
public:
  member(const std::string& self_exe, const std::string& name,
         const std::string& host, const std::string& seed,
         const std::string& data_dir, const flags& f)
      : name_(name) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      fail("pipe2: " + std::string{std::strerror(errno)});
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<std::string> args{self_exe,
                                  "--child",
                                  name,
                                  "--host",
                                  host,
                                  "--seed",
                                  seed,
                                  "--data-dir",
                                  data_dir,
                                  "--workers",
                                  std::to_string(f.workers),
                                  "--log",
                                  f.log};
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    if (int rc = posix_spawn(&pid_, self_exe.c_str(), &fa, nullptr, argv.data(),
                             environ);
        rc != 0) {
      fail("posix_spawn: " + std::string{std::strerror(rc)});
    }
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    // The child's "ready" line (it exits on failure: EOF).
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n') {
      line += c;
    }
    ::close(out[0]);
    if (line != "ready") {
      fail(name + " did not start");
    }
  }
  member(const member&) = delete;
  member& operator=(const member&) = delete;
  ~member() {
    stop();
  }

  const std::string& name() const {
    return name_;
  }

  /// Closes its stdin (a graceful stop) and waits for it.
  void stop() {
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
    reap();
  }

  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
    }
    stop();
  }

private:
  void reap() {
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
  }

  std::string name_;
  pid_t pid_ = -1;
  int stdin_ = -1;
};

// -- the measuring side
// ---------------------------------------------------------

enum class kind { rr, get, put };

struct job {
  kind what = kind::rr;
  bucket_handle bucket;
  router_actor router;
  std::vector<std::string> members;
  size_t ops = 0;
  size_t keys = 0;
  size_t value_size = 0;
  /// Keys first, first + stride, ... instead of random ones (a fill).
  bool sequential = false;
  size_t first = 0;
  size_t stride = 1;
};

struct caller_result {
  std::vector<double> lat_us;
  size_t errors = 0;
  std::string first_error;
  /// Keys whose operation failed (a sequential job's only).
  std::vector<size_t> failed;
};

struct caller_state {
  job j;
  size_t left = 0;
  size_t done = 0;
  std::minstd_rand rng;
  caller_result result;
  std::shared_ptr<std::promise<caller_result>> out;
};

void issue(caf::stateful_actor<caller_state>* self);

void finished_one(caf::stateful_actor<caller_state>* self,
                  clock_type::time_point t0, const caf::error* err,
                  size_t key) {
  auto& st = self->state;
  st.result.lat_us.push_back(bench::micros(t0, clock_type::now()));
  if (err != nullptr) {
    if (st.j.sequential) {
      st.result.failed.push_back(key);
    }
    if (st.result.errors++ == 0) {
      st.result.first_error = to_string(from_caf_error(*err));
    }
  }
  if (--st.left == 0) {
    st.out->set_value(std::move(st.result));
    self->quit();
    return;
  }
  issue(self);
}

void issue(caf::stateful_actor<caller_state>* self) {
  auto& st = self->state;
  auto t0 = clock_type::now();
  auto index = st.j.sequential ? st.j.first + st.done * st.j.stride
                               : st.rng() % st.j.keys;
  auto key = key_of(index);
  auto on_error = [self, t0, index](caf::error& e) {
    finished_one(self, t0, &e, index);
  };
  switch (st.j.what) {
    case kind::rr: {
      std::vector<std::byte> payload(st.j.value_size, std::byte{'x'});
      payload[0] = std::byte{'e'};
      const auto& to = st.j.members[st.done++ % st.j.members.size()];
      self
        ->request(st.j.router, 10s, request_atom::value, to, std::string{app},
                  raw_bytes{std::move(payload)}, caf::timespan{10s},
                  std::string{})
        .then(
          [self, t0, index](raw_bytes&) {
            finished_one(self, t0, nullptr, index);
          },
          on_error);
      return;
    }
    case kind::get:
    case kind::put: {
      cache_op x;
      x.op.key = std::move(key);
      ++st.done;
      if (st.j.what == kind::put) {
        x.op.op = cache::proto::op_code::put;
        x.op.value.assign(st.j.value_size, std::byte{'v'});
      } else {
        x.op.op = cache::proto::op_code::get;
      }
      self->request(st.j.bucket, 10s, std::move(x))
        .then(
          [self, t0, index](cache::proto::op_reply&) {
            finished_one(self, t0, nullptr, index);
          },
          on_error);
      return;
    }
  }
}

caf::behavior caller(caf::stateful_actor<caller_state>* self, job j,
                     uint32_t seed,
                     std::shared_ptr<std::promise<caller_result>> out) {
  auto& st = self->state;
  st.j = std::move(j);
  st.left = st.j.ops;
  st.rng.seed(seed);
  st.out = std::move(out);
  st.result.lat_us.reserve(st.left);
  if (st.left == 0) {
    st.out->set_value(std::move(st.result));
    self->quit();
    return {};
  }
  issue(self);
  return {
    [](const std::string&) {},
  };
}

struct run_result {
  double seconds = 0;
  size_t ops = 0;
  size_t errors = 0;
  std::string first_error;
  std::vector<size_t> failed;
  summary lat;
};

/// `total` operations of `base` by `callers` callers in parallel.
run_result run(caf::actor_system& sys, const job& base, size_t callers,
               size_t total) {
  std::vector<std::future<caller_result>> futs;
  auto t0 = clock_type::now();
  for (size_t i = 0; i < callers; ++i) {
    auto j = base;
    j.ops = total / callers + (i < total % callers ? 1 : 0);
    j.first = i;
    j.stride = callers;
    auto p = std::make_shared<std::promise<caller_result>>();
    futs.push_back(p->get_future());
    sys.spawn(caller, std::move(j), static_cast<uint32_t>(i * 7919 + 1), p);
  }
  std::vector<double> all;
  run_result out;
  for (auto& f : futs) {
    auto r = f.get();
    all.insert(all.end(), r.lat_us.begin(), r.lat_us.end());
    out.errors += r.errors;
    out.failed.insert(out.failed.end(), r.failed.begin(), r.failed.end());
    if (out.first_error.empty()) {
      out.first_error = r.first_error;
    }
  }
  out.seconds = bench::seconds(t0, clock_type::now());
  out.ops = all.size();
  out.lat = summary::of(std::move(all));
  return out;
}

/// Waits for `pred` (setup, never measured), at most `limit`.
template <class Pred>
void wait_for(const std::string& what, Pred pred,
              std::chrono::seconds limit = 60s) {
  auto deadline = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() > deadline) {
      fail("timed out waiting for " + what);
    }
    std::this_thread::sleep_for(20ms);
  }
}

struct cluster {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<node> self;
  caf::actor handler;
  std::vector<std::unique_ptr<member>> members;
  std::string data_dir;

  cluster(const std::string& exe, size_t n, const flags& f) {
    char tmpl[] = "/tmp/cluster_bench.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      fail("mkdtemp");
    }
    data_dir = tmpl;
    sys = std::make_unique<caf::actor_system>(setup(cfg, f.workers));
    auto started
      = node::start(*sys, config_of("bench", "127.0.0.1", data_dir, false));
    if (!started) {
      fail("bench: " + to_string(started.error()));
    }
    self = *started;
    // Requests leave through an application registered here too.
    handler = sys->spawn(member_app, self->cache());
    if (auto ok = self->register_app(app, handler); !ok) {
      fail("bench: " + to_string(ok.error()));
    }
    auto seed = self->gossip_endpoint().to_string();
    for (size_t i = 0; i < n; ++i) {
      members.push_back(std::make_unique<member>(
        exe, "s" + std::to_string(i + 1), "127.0.0." + std::to_string(i + 2),
        seed, data_dir, f));
    }
    wait_for("every member's cache and application", [&] {
      auto m = self->cache_members();
      auto a = self->nodes(app);
      return m && m->size() == n && a && a->size() == n;
    });
  }

  ~cluster() {
    members.clear();
    self->stop();
    caf::anon_send_exit(handler, caf::exit_reason::user_shutdown);
    self.reset();
    sys.reset();
    std::error_code ec;
    std::filesystem::remove_all(data_dir, ec);
  }

  /// A member's 's' report: entries, members, hand-offs sent, received.
  std::optional<std::array<uint64_t, 4>> report(const std::string& who) {
    auto r = self->request(who, app, bytes_of("s"), 5s);
    if (!r) {
      return std::nullopt;
    }
    std::array<uint64_t, 4> v{};
    auto text = text_of(*r);
    if (std::sscanf(text.c_str(), "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3])
        != 4) {
      return std::nullopt;
    }
    return v;
  }

  bucket_handle bucket(const std::string& name, cache::proto::ack_mode ack) {
    bucket_options bo;
    bo.rf = 2;
    bo.ack = ack;
    if (auto ok = self->create_bucket(name, bo); !ok) {
      fail("create " + name + ": " + to_string(ok.error()));
    }
    auto h = self->bucket(name);
    if (!h) {
      fail("handle " + name + ": " + to_string(h.error()));
    }
    // Every member knows it (a put from here lands, whoever the primary).
    wait_for("bucket " + name + " everywhere", [&] {
      for (size_t i = 0; i < 64; ++i) {
        if (!self->put(name, "probe:" + std::to_string(i), bytes_of("x"))) {
          return false;
        }
      }
      return true;
    });
    return *h;
  }
};

void print(const std::string& name, const run_result& r, double base_ops,
           double base_p50) {
  auto ops = static_cast<double>(r.ops) / r.seconds;
  std::printf("%-12s %10.0f ops/s  p50 %7.0f us  p99 %7.0f us  "
              "ops %5.2fx rr  p50 %5.2fx rr  errors %zu%s%s\n",
              name.c_str(), ops, r.lat.median, r.lat.p99,
              base_ops > 0 ? ops / base_ops : 1.0,
              base_p50 > 0 ? r.lat.median / base_p50 : 1.0, r.errors,
              r.errors ? " first: " : "", r.first_error.c_str());
  std::fflush(stdout);
}

void ops_part(const std::string& exe, const flags& f) {
  std::printf("# ops: 3 storage members (processes), RF 2, client-only "
              "caller node, %zu callers, %zu ops per case, %zu keys, %zu-byte "
              "values, %zu repetitions\n",
              f.callers, f.ops, f.keys, f.value_size, f.repeat);
  cluster c{exe, 3, f};
  job base;
  base.router = c.self->router();
  for (auto& m : c.members) {
    base.members.push_back(m->name());
  }
  base.keys = f.keys;
  base.value_size = f.value_size;
  auto all = c.bucket("all", cache::proto::ack_mode::all);
  auto primary = c.bucket("primary", cache::proto::ack_mode::primary);
  // Fill every key of both buckets (gets then find their value).
  for (auto b : {all, primary}) {
    auto fill = base;
    fill.what = kind::put;
    fill.bucket = b;
    fill.sequential = true;
    run(*c.sys, fill, f.callers, f.keys);
  }
  // Warm-up of each case, unmeasured.
  for (int k = 0; k < 4; ++k) {
    auto w = base;
    w.what = k == 0 ? kind::rr : (k == 1 ? kind::get : kind::put);
    w.bucket = k == 3 ? primary : all;
    run(*c.sys, w, f.callers, std::min<size_t>(f.ops, 2000));
  }
  for (size_t rep = 0; rep < f.repeat; ++rep) {
    std::printf("# repetition %zu\n", rep + 1);
    auto rr = base;
    rr.what = kind::rr;
    auto r0 = run(*c.sys, rr, f.callers, f.ops);
    auto base_ops = static_cast<double>(r0.ops) / r0.seconds;
    print("rr", r0, 0, 0);
    auto g = base;
    g.what = kind::get;
    g.bucket = all;
    print("get", run(*c.sys, g, f.callers, f.ops), base_ops, r0.lat.median);
    auto pp = base;
    pp.what = kind::put;
    pp.bucket = primary;
    print("put/primary", run(*c.sys, pp, f.callers, f.ops), base_ops,
          r0.lat.median);
    auto pa = base;
    pa.what = kind::put;
    pa.bucket = all;
    print("put/all", run(*c.sys, pa, f.callers, f.ops), base_ops,
          r0.lat.median);
  }
}

/// The transport's bulk rate from this node to `to`: bytes/s.
double bulk_rate(cluster& c, const std::string& to) {
  constexpr size_t chunk = size_t{256} << 10;
  constexpr size_t total = size_t{256} << 20;
  constexpr size_t window = 4;
  auto run_once = [&](size_t bytes) {
    std::vector<std::future<expected<std::vector<std::byte>>>> inflight;
    auto t0 = clock_type::now();
    for (size_t sent = 0; sent < bytes; sent += chunk) {
      if (inflight.size() == window) {
        if (!inflight.front().get()) {
          fail("bulk request failed");
        }
        inflight.erase(inflight.begin());
      }
      std::vector<std::byte> payload(chunk, std::byte{'z'});
      payload[0] = std::byte{'b'};
      inflight.push_back(
        c.self->request_async(to, app, std::move(payload), caf::timespan{30s}));
    }
    for (auto& x : inflight) {
      if (!x.get()) {
        fail("bulk request failed");
      }
    }
    return static_cast<double>(bytes) / bench::seconds(t0, clock_type::now());
  };
  run_once(total / 8); // warm-up
  return run_once(total);
}

void recovery_part(const std::string& exe, const flags& f) {
  std::printf("# recovery: 5 storage members (processes), RF 2, ack all, "
              "%zu entries of %zu bytes, %zu callers fill\n",
              f.entries, f.value_size, f.callers);
  cluster c{exe, 5, f};
  auto rec = c.bucket("rec", cache::proto::ack_mode::all);
  // The probes of `bucket` are in there too: remove them from the count.
  for (size_t i = 0; i < 64; ++i) {
    (void)c.self->del("rec", "probe:" + std::to_string(i));
  }
  job fill;
  fill.router = c.self->router();
  fill.what = kind::put;
  fill.bucket = rec;
  fill.value_size = f.value_size;
  // Every key once: caller i writes keys i, i + callers, ...
  fill.sequential = true;
  auto t0 = clock_type::now();
  auto filled = run(*c.sys, fill, f.callers, f.entries);
  auto errors = filled.errors;
  // Puts that failed (timeouts of an overloaded machine) again, one by one.
  std::vector<std::byte> value(f.value_size, std::byte{'v'});
  for (auto k : filled.failed) {
    if (!c.self->put("rec", key_of(k), value)) {
      fail("the fill failed twice for " + key_of(k));
    }
  }
  auto fill_s = bench::seconds(t0, clock_type::now());
  std::printf("filled %zu entries in %.1f s (%.0f puts/s, %zu errors, "
              "put again)\n",
              f.entries, fill_s, static_cast<double>(f.entries) / fill_s,
              errors);
  auto copies = [&](const std::vector<std::string>& who) -> uint64_t {
    uint64_t sum = 0;
    for (auto& w : who) {
      auto r = c.report(w);
      if (!r) {
        return 0;
      }
      sum += (*r)[0];
    }
    return sum;
  };
  std::vector<std::string> names;
  for (auto& m : c.members) {
    names.push_back(m->name());
  }
  wait_for(
    "2E copies before the kill",
    [&] {
      return copies(names) == 2 * f.entries;
    },
    120s);
  auto victim_report = c.report(names.back());
  uint64_t victim_entries = victim_report ? (*victim_report)[0] : 0;
  auto rate = bulk_rate(c, names.front());
  std::printf("transport bulk: %.1f MB/s (256 KiB requests, 4 in flight, "
              "to %s)\n",
              rate / 1e6, names.front().c_str());
  // Kill the last member.
  names.pop_back();
  auto k0 = clock_type::now();
  c.members.back()->kill();
  double detected = -1;
  double restored = -1;
  auto deadline = k0 + 300s;
  while (clock_type::now() < deadline) {
    auto now = bench::seconds(k0, clock_type::now());
    if (detected < 0) {
      bool all_dropped = true;
      for (auto& w : names) {
        auto r = c.report(w);
        all_dropped = all_dropped && r && (*r)[1] == names.size();
      }
      if (all_dropped) {
        detected = now;
      }
    }
    if (detected >= 0 && copies(names) == 2 * f.entries) {
      restored = bench::seconds(k0, clock_type::now());
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  if (restored < 0) {
    std::printf("RF not restored within 300 s (copies %lu of %zu)\n",
                static_cast<unsigned long>(copies(names)), 2 * f.entries);
    return;
  }
  auto bytes = static_cast<double>(victim_entries)
               * static_cast<double>(f.value_size + key_of(0).size());
  auto transfer = restored - detected;
  std::printf("killed %s holding %lu copies; every view dropped it after "
              "%.2f s; RF restored everywhere after %.2f s (transfer phase "
              "%.2f s)\n",
              c.members.back()->name().c_str(),
              static_cast<unsigned long>(victim_entries), detected, restored,
              transfer);
  std::printf("hand-off: %.1f MB/s of keys and values = %.3fx the transport "
              "bulk rate\n",
              bytes / transfer / 1e6, bytes / transfer / rate);
}

} // namespace

int main(int argc, char** argv) {
  auto f = parse(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  auto spec = log::parse_spec(f.log);
  if (!spec || !log::apply(*spec)) {
    usage("bad --log spec");
  }
  if (!f.child.empty()) {
    return child_main(f);
  }
  auto exe = std::filesystem::read_symlink("/proc/self/exe").string();
  try {
    if (f.part == "ops" || f.part == "all") {
      ops_part(exe, f);
    }
    if (f.part == "recovery" || f.part == "all") {
      recovery_part(exe, f);
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return 0;
}
