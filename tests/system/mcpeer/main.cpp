// SPDX-License-Identifier: Apache-2.0
// mcpeer: a Mycorrizal membership node that speaks the system tests' JSON
// line protocol (tests/system/README.md), so the same tests and benchmarks
// drive it and the Go memberlist peer side by side.
#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/all.hpp>

#include <nlohmann/json.hpp>
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace mycorrizal;
using json = nlohmann::json;

namespace {

using line_atom = caf::atom_constant<caf::atom("line")>;
using eof_atom = caf::atom_constant<caf::atom("eof")>;
using signal_atom = caf::atom_constant<caf::atom("signal")>;

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

std::string text_of(const gossip::byte_buffer& b) {
  std::string s(b.size(), '\0');
  std::transform(b.begin(), b.end(), s.begin(), [](std::byte c) {
    return static_cast<char>(c);
  });
  return s;
}

std::string state_name(gossip::node_state s) {
  switch (s) {
    case gossip::node_state::alive: return "alive";
    case gossip::node_state::suspect: return "suspect";
    case gossip::node_state::dead: return "dead";
    case gossip::node_state::left: return "left";
  }
  return "unknown";
}

json member_json(const gossip::member& m) {
  return {{"name", m.name},
          {"addr", m.address.address_string()},
          {"port", m.address.port()},
          {"state", state_name(m.state)},
          {"incarnation", m.incarnation},
          {"meta", text_of(m.meta)}};
}

struct flags {
  std::string name;
  std::string bind = "127.0.0.1";
  int port = 0;
  std::string profile = "lan";
  std::string key;
  std::string meta;
  std::string join;
  int probe_interval_ms = 0;
  int probe_timeout_ms = 0;
  int gossip_interval_ms = 0;
  int push_pull_interval_ms = 0;
  int suspicion_mult = 0;
  bool verbose = true;
};

/// Go's flag syntax: -name=value, -name value, --name; booleans alone.
flags parse_flags(int argc, char** argv) {
  flags f;
  std::map<std::string, std::string*> strings{
    {"name", &f.name}, {"bind", &f.bind}, {"profile", &f.profile},
    {"key", &f.key},   {"meta", &f.meta}, {"join", &f.join},
  };
  std::map<std::string, int*> ints{
    {"port", &f.port},
    {"probe-interval-ms", &f.probe_interval_ms},
    {"probe-timeout-ms", &f.probe_timeout_ms},
    {"gossip-interval-ms", &f.gossip_interval_ms},
    {"push-pull-interval-ms", &f.push_pull_interval_ms},
    {"suspicion-mult", &f.suspicion_mult},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "-help" || arg == "--help") {
      std::cout << "usage: mcpeer -name NAME [-bind IP] [-port N] [-profile "
                   "lan|wan|local] [-key HEX] [-meta TEXT] [-join "
                   "HOST:PORT,...]\n"
                   "A Mycorrizal membership node speaking the JSON line "
                   "protocol of tests/system/README.md.\n";
      std::exit(0);
    }
    auto body = arg;
    while (body.starts_with('-')) {
      body.erase(0, 1);
    }
    std::string value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
      has_value = true;
    }
    if (body == "verbose") {
      f.verbose = !has_value || value == "true" || value == "1";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        fatal("flag needs an argument: -" + body);
      }
      value = argv[++i];
    }
    if (auto s = strings.find(body); s != strings.end()) {
      *s->second = value;
    } else if (auto n = ints.find(body); n != ints.end()) {
      try {
        *n->second = std::stoi(value);
      } catch (const std::exception&) {
        fatal("invalid value for -" + body + ": " + value);
      }
    } else {
      fatal("flag provided but not defined: -" + body);
    }
  }
  if (f.name.empty()) {
    fatal("-name is required");
  }
  return f;
}

expected<std::string> parse_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) {
    return unexpected{error{errc::invalid_config, "odd-length hex key"}};
  }
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + i, "%2x", &v) != 1) {
      return unexpected{error{errc::invalid_config, "invalid hex key"}};
    }
    out.push_back(static_cast<char>(v));
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    auto next = s.find(sep, pos);
    auto part = s.substr(pos, next - pos);
    if (!part.empty()) {
      out.push_back(part);
    }
    if (next == std::string::npos) {
      break;
    }
    pos = next + 1;
  }
  return out;
}

std::string render(const caf::error& e) {
  auto x = from_caf_error(e);
  return x.context().empty() ? std::string{to_string(x.code())} : x.context();
}

} // namespace

int main(int argc, char** argv) {
  auto f = parse_flags(argc, argv);
  // Signals are taken by one thread with sigwait; block them everywhere.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  log::config lc = f.verbose ? log::config::verbose() : log::config::defaults();
  if (auto ok = log::apply(lc); !ok) {
    fatal(to_string(ok.error()));
  }

  membership_options opts;
  auto profile = gossip::profile_defaults(f.profile);
  if (!profile) {
    fatal(to_string(profile.error()));
  }
  opts.gossip = std::move(*profile);
  using std::chrono::milliseconds;
  if (f.probe_interval_ms > 0) {
    opts.gossip.probe_interval = milliseconds{f.probe_interval_ms};
  }
  if (f.probe_timeout_ms > 0) {
    opts.gossip.probe_timeout = milliseconds{f.probe_timeout_ms};
  }
  if (f.gossip_interval_ms > 0) {
    opts.gossip.gossip_interval = milliseconds{f.gossip_interval_ms};
  }
  if (f.push_pull_interval_ms > 0) {
    opts.gossip.push_pull_interval = milliseconds{f.push_pull_interval_ms};
  }
  if (f.suspicion_mult > 0) {
    opts.gossip.suspicion_mult = f.suspicion_mult;
  }
  opts.gossip.name = f.name;
  for (char c : f.meta) {
    opts.gossip.meta.push_back(static_cast<std::byte>(c));
  }
  if (!f.key.empty()) {
    auto key = parse_hex(f.key);
    if (!key) {
      fatal(to_string(key.error()));
    }
    gossip::byte_buffer k;
    for (char c : *key) {
      k.push_back(static_cast<std::byte>(c));
    }
    if (auto ok = opts.gossip.keys.install(k); !ok) {
      fatal(to_string(ok.error()));
    }
  }
  auto bind = ip_endpoint::parse(f.bind, static_cast<uint16_t>(f.port));
  if (!bind) {
    fatal(to_string(bind.error()));
  }
  opts.bind = *bind;

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto reactor = std::make_shared<net::reactor>();
  if (auto ok = reactor->start(); !ok) {
    fatal(to_string(ok.error()));
  }
  opts.reactor = reactor;
  auto handle = spawn_membership(sys, std::move(opts));
  if (!handle) {
    fatal(to_string(handle.error()));
  }
  auto ms = handle->actor;

  int exit_code = 0;
  {
    caf::scoped_actor self{sys};
    auto timeout = std::chrono::seconds{30};
    // Subscribe first; the snapshot stands for NotifyJoin of who is there.
    self->request(ms, timeout, subscribe_atom::value, caf::actor{self})
      .receive(
        [&](std::vector<gossip::member>& now) {
          for (auto& m : now) {
            if (m.state == gossip::node_state::alive) {
              emit({{"ev", "join"},
                    {"node", m.name},
                    {"addr", m.address.address_string()},
                    {"port", m.address.port()},
                    {"meta", text_of(m.meta)}});
            }
          }
        },
        [&](caf::error& e) {
          fatal("subscribe: " + render(e));
        });
    json ready{{"ev", "ready"},
               {"name", f.name},
               {"addr", handle->local.address_string()},
               {"port", handle->local.port()},
               {"profile", f.profile},
               {"encrypted", !f.key.empty()},
               {"pid", static_cast<int64_t>(getpid())},
               {"states", "node_table"}};
    if (!f.join.empty()) {
      self->request(ms, timeout, join_atom::value, split(f.join, ','))
        .receive(
          [&](uint64_t n) {
            ready["joined"] = n;
          },
          [&](caf::error& e) {
            ready["joined"] = 0;
            ready["join_error"] = render(e);
          });
    }
    emit(ready);

    // stdin lines and signals arrive as messages.
    caf::actor me = self;
    std::thread reader{[me] {
      std::string line;
      while (std::getline(std::cin, line)) {
        caf::anon_send(me, line_atom::value, line);
      }
      caf::anon_send(me, eof_atom::value);
    }};
    reader.detach();
    std::thread waiter{[me, sigs] {
      int sig = 0;
      if (sigwait(&sigs, &sig) == 0) {
        caf::anon_send(me, signal_atom::value, sig);
      }
    }};
    waiter.detach();

    bool running = true;
    auto leave = [&](caf::timespan t) -> std::optional<std::string> {
      std::optional<std::string> err;
      self->request(ms, t + std::chrono::seconds{5}, leave_atom::value, t)
        .receive([] {},
                 [&](caf::error& e) {
                   err = render(e);
                 });
      return err;
    };
    while (running) {
      self->receive(
        [&](gossip::member_event& e) {
          const auto& m = e.who;
          json j{{"node", m.name},
                 {"addr", m.address.address_string()},
                 {"port", m.address.port()}};
          switch (e.kind) {
            case gossip::member_event_kind::joined:
              j["ev"] = "join";
              j["meta"] = text_of(m.meta);
              break;
            case gossip::member_event_kind::updated:
              j["ev"] = "update";
              j["meta"] = text_of(m.meta);
              break;
            case gossip::member_event_kind::dead:
              j["ev"] = "leave";
              j["state"] = "dead";
              break;
            case gossip::member_event_kind::left:
              j["ev"] = "leave";
              j["state"] = "left";
              break;
            case gossip::member_event_kind::suspect: j["ev"] = "suspect"; break;
            case gossip::member_event_kind::alive_again:
              j["ev"] = "alive";
              break;
          }
          emit(j);
        },
        [&](line_atom, const std::string& raw) {
          auto line = raw;
          while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
            line.pop_back();
          }
          if (line.empty()) {
            return;
          }
          auto sp = line.find(' ');
          auto cmd = line.substr(0, sp);
          auto arg = sp == std::string::npos ? std::string{}
                                             : line.substr(sp + 1);
          json reply{{"ev", "reply"}, {"cmd", cmd}};
          auto on_error = [&](caf::error& e) {
            reply["error"] = render(e);
          };
          if (cmd == "members") {
            self->request(ms, timeout, members_atom::value)
              .receive(
                [&](std::vector<gossip::member>& all) {
                  auto arr = json::array();
                  for (auto& m : all) {
                    arr.push_back(member_json(m));
                  }
                  reply["members"] = arr;
                },
                on_error);
          } else if (cmd == "join") {
            self->request(ms, timeout, join_atom::value, split(arg, ','))
              .receive(
                [&](uint64_t n) {
                  reply["joined"] = n;
                },
                on_error);
          } else if (cmd == "meta") {
            self->request(ms, timeout, update_atom::value, arg)
              .receive(
                [&] {
                  reply["ok"] = true;
                },
                on_error);
          } else if (cmd == "leave") {
            auto ms_timeout = arg.empty() ? 5000 : std::atoi(arg.c_str());
            if (auto err = leave(std::chrono::milliseconds{ms_timeout})) {
              reply["error"] = *err;
            } else {
              reply["ok"] = true;
            }
          } else if (cmd == "health") {
            self->request(ms, timeout, health_atom::value)
              .receive(
                [&](int score) {
                  reply["score"] = score;
                },
                on_error);
          } else if (cmd == "stats") {
            // Mycorrizal only: the core's counters.
            self->request(ms, timeout, stats_atom::value)
              .receive(
                [&](membership_counters& c) {
                  reply["packets_in"] = c.core.packets_in;
                  reply["packets_dropped"] = c.core.packets_dropped;
                  reply["messages_dropped"] = c.core.messages_dropped;
                  reply["streams_in"] = c.core.streams_in;
                  reply["streams_failed"] = c.core.streams_failed;
                  reply["probes"] = c.core.probes;
                  reply["probes_failed"] = c.core.probes_failed;
                  reply["refutations"] = c.core.refutations;
                  reply["send_errors"] = c.send_errors;
                  reply["tcp_errors"] = c.tcp_errors;
                },
                on_error);
          } else if (cmd == "shutdown") {
            reply["ok"] = true;
            running = false;
          } else {
            reply["error"] = "unknown command";
          }
          emit(reply);
        },
        [&](eof_atom) {
          running = false;
        },
        [&](signal_atom, int) {
          std::ignore = leave(std::chrono::seconds{2});
          running = false;
        });
    }
  }
  caf::anon_send_exit(ms, caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
  reactor->stop();
  std::cout << std::flush;
  // Threads blocked in getline/sigwait are detached; leave without
  // unwinding them.
  std::_Exit(exit_code);
}
