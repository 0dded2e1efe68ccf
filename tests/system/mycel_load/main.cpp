// SPDX-License-Identifier: Apache-2.0
// mycel-load: a Mycel client for process tests. It joins a cluster as a
// client-only member (it stores nothing), creates a bucket, and on command
// runs concurrent writers and readers over a fixed set of keys, writing
// every operation with its outcome to a history file that a checker reads
// (tests/system/faults/test_mycel.py).
//
// Each key has one writer, and a writer's writes are sequential, so each
// key's writes carry increasing sequence numbers: the value of a key is
// "SEQ:" plus padding. History lines (one per operation, flushed as they
// end):
//   W KEY SEQ START_NS END_NS ok|<errc>   a put of SEQ
//   R KEY SEQ|- START_NS END_NS ok|<errc> a get (- : not found)
// Commands on stdin: `start`, `stop`, `final FILE` (reads every key and
// writes "KEY SEQ|-" lines to FILE), `quit`. JSON lines on stdout.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/all.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace mycorrizal;
using json = nlohmann::json;

namespace {

int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::mutex out_mtx;

void emit(json j) {
  j["t"] = unix_ns();
  std::lock_guard<std::mutex> guard{out_mtx};
  std::cout << j.dump() << '\n' << std::flush;
}

[[noreturn]] void fatal(const std::string& what) {
  emit({{"ev", "fatal"}, {"error", what}});
  std::exit(1);
}

struct flags {
  std::string name = "load";
  std::string gossip = "127.0.0.1:0";
  std::string quic;
  std::vector<std::string> seeds;
  std::string data_dir = "./mycorrizal-data";
  std::string bucket = "load";
  std::string history = "history.txt";
  std::string ack = "all";
  int keys = 1000;
  int writers = 16;
  int rf = 2;
  int value_bytes = 100;
  /// Reads per write, per writer (0: writes only).
  int reads = 1;
};

flags parse(int argc, char** argv) {
  flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    std::string key = a.substr(0, eq);
    std::string val;
    if (eq != std::string::npos) {
      val = a.substr(eq + 1);
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fatal("flag " + a + " needs a value");
    }
    auto num = [&] {
      int x = 0;
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), x);
      if (ec != std::errc{} || p != val.data() + val.size() || x < 0) {
        fatal("flag " + key + ": not a number: " + val);
      }
      return x;
    };
    if (key == "--name") {
      f.name = val;
    } else if (key == "--gossip") {
      f.gossip = val;
    } else if (key == "--quic") {
      f.quic = val;
    } else if (key == "--seed") {
      f.seeds.push_back(val);
    } else if (key == "--data-dir") {
      f.data_dir = val;
    } else if (key == "--bucket") {
      f.bucket = val;
    } else if (key == "--history") {
      f.history = val;
    } else if (key == "--ack") {
      f.ack = val;
    } else if (key == "--keys") {
      f.keys = num();
    } else if (key == "--writers") {
      f.writers = num();
    } else if (key == "--rf") {
      f.rf = num();
    } else if (key == "--value-bytes") {
      f.value_bytes = num();
    } else if (key == "--reads") {
      f.reads = num();
    } else {
      fatal("unknown flag " + key);
    }
  }
  if (f.keys < 1 || f.writers < 1 || f.writers > f.keys
      || (f.ack != "all" && f.ack != "primary")) {
    fatal("bad flags: need keys >= writers >= 1, ack all|primary");
  }
  return f;
}

std::string code_of(const error& e) {
  return std::string{to_string(e.code())};
}

/// The history file: lines appended by every writer.
class history {
public:
  explicit history(const std::string& path)
      : out_(std::fopen(path.c_str(), "w")) {
    if (out_ == nullptr) {
      fatal("cannot write " + path);
    }
  }
  ~history() {
    std::fclose(out_);
  }
  history(const history&) = delete;
  history& operator=(const history&) = delete;

  void add(const std::string& line) {
    std::lock_guard<std::mutex> guard{mtx_};
    std::fputs(line.c_str(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
  }

private:
  std::mutex mtx_;
  std::FILE* out_;
};

std::string key_name(int k) {
  return "key-" + std::to_string(k);
}

std::vector<std::byte> value_of(uint64_t seq, int size) {
  auto text = std::to_string(seq) + ":";
  text.resize(std::max<size_t>(text.size(), static_cast<size_t>(size)), 'x');
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

/// The sequence number of a value, or "?" for a value we did not write.
std::string seq_of(const std::vector<std::byte>& v) {
  std::string s(v.size(), '\0');
  std::memcpy(s.data(), v.data(), v.size());
  auto colon = s.find(':');
  if (colon == std::string::npos || colon == 0) {
    return "?";
  }
  return s.substr(0, colon);
}

struct totals {
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> writes_ok{0};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> reads_ok{0};
};

void writer(node& n, const flags& f, int w, history& h, totals& t,
            std::atomic<bool>& stop, std::map<int, uint64_t>& seqs) {
  std::minstd_rand rng{static_cast<uint32_t>(w + 1)};
  std::vector<int> mine;
  for (int k = w; k < f.keys; k += f.writers) {
    mine.push_back(k);
  }
  size_t next = 0;
  while (!stop.load()) {
    int k = mine[next++ % mine.size()];
    auto key = key_name(k);
    auto seq = ++seqs[k];
    auto t0 = unix_ns();
    auto r = n.put(f.bucket, key, value_of(seq, f.value_bytes));
    auto t1 = unix_ns();
    ++t.writes;
    t.writes_ok += r ? 1 : 0;
    h.add("W " + key + " " + std::to_string(seq) + " " + std::to_string(t0)
          + " " + std::to_string(t1) + " " + (r ? "ok" : code_of(r.error())));
    for (int i = 0; i < f.reads && !stop.load(); ++i) {
      auto rk = key_name(mine[rng() % mine.size()]);
      auto r0 = unix_ns();
      auto got = n.get(f.bucket, rk);
      auto r1 = unix_ns();
      ++t.reads;
      t.reads_ok += got ? 1 : 0;
      std::string seen = "-";
      if (got && *got) {
        seen = seq_of((*got)->value);
      }
      h.add("R " + rk + " " + seen + " " + std::to_string(r0) + " "
            + std::to_string(r1) + " " + (got ? "ok" : code_of(got.error())));
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto f = parse(argc, argv);
  auto lc = log::config::quiet();
  lc.pattern = "[" + f.name + "] %H:%M:%S.%e %l %n: %v";
  if (auto ok = log::apply(lc); !ok) {
    fatal(to_string(ok.error()));
  }
  caf::actor_system_config sys_cfg;
  add_error_category(sys_cfg);
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{sys_cfg};
  auto cfg = node_config::local(f.name);
  auto gossip = ip_endpoint::parse(f.gossip, 0);
  if (!gossip) {
    fatal("--gossip: " + to_string(gossip.error()));
  }
  cfg.gossip_bind = *gossip;
  if (f.quic.empty()) {
    cfg.quic_bind = *gossip;
    cfg.quic_bind.port(0);
  } else {
    auto quic = ip_endpoint::parse(f.quic, 0);
    if (!quic) {
      fatal("--quic: " + to_string(quic.error()));
    }
    cfg.quic_bind = *quic;
  }
  cfg.seeds = f.seeds;
  cfg.data_dir = f.data_dir;
  cache_options co;
  co.storage = false;
  cfg.cache = co;
  auto started = node::start(sys, std::move(cfg));
  if (!started) {
    fatal("cannot start: " + to_string(started.error()));
  }
  auto n = *started;
  if (!n->wait_ready(std::chrono::seconds{30})) {
    fatal("not ready after 30 s");
  }
  emit({{"ev", "ready"}, {"seeds_joined", n->seeds_joined()}});
  history h{f.history};
  totals t;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  std::vector<std::map<int, uint64_t>> seqs(static_cast<size_t>(f.writers));
  auto halt = [&] {
    stop = true;
    for (auto& th : threads) {
      th.join();
    }
    threads.clear();
    stop = false;
  };
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "bucket") {
      bucket_options o;
      o.rf = static_cast<uint32_t>(f.rf);
      o.ack = f.ack == "all" ? cache::proto::ack_mode::all
                             : cache::proto::ack_mode::primary;
      auto r = n->create_bucket(f.bucket, o);
      if (!r) {
        emit({{"ev", "error"}, {"cmd", line}, {"error", to_string(r.error())}});
      } else {
        emit({{"ev", "bucket"}, {"created", *r}});
      }
    } else if (line == "start") {
      if (threads.empty()) {
        for (int w = 0; w < f.writers; ++w) {
          threads.emplace_back([&, w] {
            writer(*n, f, w, h, t, stop, seqs[static_cast<size_t>(w)]);
          });
        }
      }
      emit({{"ev", "started"}, {"writers", f.writers}});
    } else if (line == "progress") {
      emit({{"ev", "progress"},
            {"writes", t.writes.load()},
            {"writes_ok", t.writes_ok.load()},
            {"reads", t.reads.load()},
            {"reads_ok", t.reads_ok.load()}});
    } else if (line == "stop") {
      halt();
      emit({{"ev", "stopped"},
            {"writes", t.writes.load()},
            {"writes_ok", t.writes_ok.load()},
            {"reads", t.reads.load()},
            {"reads_ok", t.reads_ok.load()}});
    } else if (line.rfind("final ", 0) == 0) {
      halt();
      std::ofstream out{line.substr(6)};
      uint64_t errors = 0;
      uint64_t found = 0;
      for (int k = 0; k < f.keys; ++k) {
        auto key = key_name(k);
        // A read that fails is tried again: the final state is what the
        // cluster holds, not whether one read went through.
        expected<std::optional<cache_entry>> got = unexpected{error{}};
        for (int attempt = 0; attempt < 20; ++attempt) {
          got = n->get(f.bucket, key);
          if (got) {
            break;
          }
          ++errors;
        }
        if (!got) {
          out << key << " error:" << code_of(got.error()) << '\n';
        } else if (*got) {
          ++found;
          out << key << ' ' << seq_of((*got)->value) << '\n';
        } else {
          out << key << " -\n";
        }
      }
      out.close();
      emit({{"ev", "final"}, {"found", found}, {"read_errors", errors}});
    } else if (line == "owners") {
      json o = json::object();
      for (int k = 0; k < f.keys; ++k) {
        auto r = n->owners(f.bucket, key_name(k));
        o[key_name(k)] = r ? json(*r) : json(to_string(r.error()));
      }
      emit({{"ev", "owners"}, {"owners", o}});
    } else if (line == "quit") {
      break;
    } else if (!line.empty()) {
      emit({{"ev", "error"}, {"cmd", line}, {"error", "unknown command"}});
    }
  }
  halt();
  n->stop();
  emit({{"ev", "bye"}});
  return 0;
}
