// SPDX-License-Identifier: Apache-2.0
#include "quic_actors.hpp"

#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/transport/transport.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mycorrizal::bench {

namespace {

using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "quic_vs_tls: QUIC actors: %s\n", what.c_str());
  std::exit(2);
}

std::string render(const caf::error& e) {
  return to_string(from_caf_error(e));
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           clock_type::now().time_since_epoch())
    .count();
}

time_point from_ns(int64_t ns) {
  return time_point{std::chrono::nanoseconds{ns}};
}

/// What the consumers and handlers of one transport saw.
struct sink_state {
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> deliveries{0};
  std::atomic<uint64_t> streams_accepted{0};
  std::atomic<uint64_t> streams_ended{0};
  std::atomic<uint64_t> conns_up{0};
  std::atomic<uint64_t> conns_down{0};
  /// DATA frames that complete a test (0: none); `done_at` is set once.
  std::atomic<uint64_t> target_frames{0};
  std::atomic<bool> done{false};
  std::atomic<int64_t> done_at{0};
  /// One consumer for every stream (memory test) instead of one each.
  std::atomic<bool> shared_consumer{false};
  caf::actor shared;
  std::mutex mtx;
  std::string last_error;

  void error(const std::string& what) {
    std::lock_guard<std::mutex> guard{mtx};
    last_error = what;
  }
};

caf::behavior consumer(caf::event_based_actor* self,
                       std::shared_ptr<sink_state> st) {
  self->set_default_handler(caf::drop);
  return {
    [=](stream_frames& x) {
      uint64_t n = 0;
      uint64_t b = 0;
      for (auto& f : x.frames) {
        if (auto* d = std::get_if<wire::owned_data>(&f)) {
          ++n;
          b += d->payload.size();
        }
      }
      st->deliveries++;
      st->bytes += b;
      auto total = st->frames.fetch_add(n) + n;
      auto target = st->target_frames.load();
      if (target > 0 && total >= target && !st->done.exchange(true)) {
        st->done_at = now_ns();
      }
    },
    [=](stream_end& x) {
      st->streams_ended++;
      if (x.reason) {
        st->error("stream_end: " + to_string(x.reason));
      }
    },
  };
}

caf::behavior handler(caf::event_based_actor* self,
                      std::shared_ptr<sink_state> st) {
  self->set_default_handler(caf::drop);
  st->shared = self->spawn<caf::linked>(consumer, st);
  return {
    [=](connection_up&) {
      st->conns_up++;
    },
    [=](connection_down& x) {
      st->conns_down++;
      if (x.reason && x.reason.code() != errc::shutting_down) {
        st->error("connection_down: " + to_string(x.reason));
      }
    },
    [=](stream_accepted&) -> caf::actor {
      st->streams_accepted++;
      if (st->shared_consumer) {
        return st->shared;
      }
      return self->spawn<caf::linked>(consumer, st);
    },
  };
}

/// The result of one writer.
struct writer_result {
  std::atomic<bool> finished{false};
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> queue_full{0};
  std::mutex mtx;
  std::string error;
};

struct writer_args {
  caf::actor stream;
  size_t payload = 0;
  uint64_t count = 0;
  size_t outstanding = 16;
  /// Frames per write request (1: `write_atom, owned_frame`).
  size_t batch = 1;
  std::shared_ptr<writer_result> result;
};

struct writer_state {
  writer_args args;
  wire::owned_frame proto;
  uint64_t issued = 0;
  uint64_t acked = 0;
  size_t in_flight = 0;
  /// A write was refused with `queue_full`: issue nothing until the
  /// stream says `stream_drained`.
  bool waiting = false;
};

using writer_actor = caf::stateful_actor<writer_state>;

void fill(writer_actor* self);

void on_written(writer_actor* self, uint64_t n) {
  auto& st = self->state;
  st.in_flight--;
  st.acked += n;
  if (st.acked == st.args.count) {
    st.args.result->finished = true;
    self->quit();
    return;
  }
  fill(self);
}

void on_refused(writer_actor* self, uint64_t n, caf::error& e) {
  auto& st = self->state;
  st.in_flight--;
  auto err = from_caf_error(e);
  if (err.code() == errc::queue_full) {
    st.issued -= n;
    st.args.result->queue_full++;
    st.waiting = true;
    return;
  }
  {
    std::lock_guard<std::mutex> guard{st.args.result->mtx};
    st.args.result->error = to_string(err);
  }
  st.args.result->failed = true;
  self->quit();
}

void fill(writer_actor* self) {
  auto& st = self->state;
  if (st.waiting) {
    return;
  }
  while (st.in_flight < st.args.outstanding && st.issued < st.args.count) {
    auto n = std::min<uint64_t>(st.args.batch, st.args.count - st.issued);
    st.issued += n;
    st.in_flight++;
    auto ok = [=]() {
      on_written(self, n);
    };
    auto fail = [=](caf::error& e) {
      on_refused(self, n, e);
    };
    if (st.args.batch == 1) {
      self->request(st.args.stream, caf::infinite, write_atom::value, st.proto)
        .then(ok, fail);
    } else {
      std::vector<wire::owned_frame> fs(n, st.proto);
      self
        ->request(st.args.stream, caf::infinite, write_atom::value,
                  std::move(fs))
        .then(ok, fail);
    }
  }
}

caf::behavior writer(writer_actor* self, writer_args args) {
  auto& st = self->state;
  st.args = std::move(args);
  wire::owned_data d;
  d.payload.resize(st.args.payload);
  random_fill(d.payload);
  st.proto = std::move(d);
  fill(self);
  return {
    [=](stream_drained&) {
      self->state.waiting = false;
      fill(self);
    },
  };
}

/// An actor system with two transports (server "node-b", client "node-a"),
/// each with its own reactor, as two nodes would have.
class world {
public:
  world(const options& opts, const pki& p) {
    cfg_.set("scheduler.max-threads", opts.workers);
    add_error_category(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    server_sink = std::make_shared<sink_state>();
    client_sink = std::make_shared<sink_state>();
    server = start(p, p.server, server_sink, true, server_reactor_,
                   server_handler_);
    client = start(p, p.client, client_sink, false, client_reactor_,
                   client_handler_);
  }

  world(const world&) = delete;
  world& operator=(const world&) = delete;

  ~world() {
    {
      caf::scoped_actor self{*sys_};
      for (auto* t : {&client, &server}) {
        self->monitor(t->actor);
        caf::anon_send_exit(t->actor, caf::exit_reason::user_shutdown);
      }
      for (int i = 0; i < 2; ++i) {
        self->receive([](const caf::down_msg&) {},
                      caf::after(10s) >>
                        [] {
                          std::fprintf(stderr,
                                       "quic_vs_tls: a transport did not stop "
                                       "within 10 s\n");
                        });
      }
    }
    client_reactor_->stop();
    server_reactor_->stop();
    caf::anon_send_exit(client_handler_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(server_handler_, caf::exit_reason::user_shutdown);
    client_sink->shared = nullptr;
    server_sink->shared = nullptr;
    client = {};
    server = {};
    sys_.reset();
  }

  caf::actor_system& sys() {
    return *sys_;
  }

  /// Dials the server; returns the connection actor.
  connection_actor dial(caf::scoped_actor& self) {
    connection_actor conn;
    self
      ->request(client.actor, 30s, dial_atom::value, server.local,
                std::string{"node-b"}, caf::timespan{10s})
      .receive(
        [&](connection_info& info) {
          conn = info.connection;
        },
        [&](caf::error& e) {
          die("dial: " + render(e));
        });
    return conn;
  }

  /// Opens a stream on `conn` whose reverse direction goes to `consumer`.
  caf::actor open(caf::scoped_actor& self, const connection_actor& conn,
                  const caf::actor& consumer, const std::string& name) {
    caf::actor stream;
    wire::owned_frame first = wire::owned_stream_init{1, "bench", name};
    self->request(conn, 30s, open_atom::value, std::move(first), consumer)
      .receive(
        [&](stream_actor& s) {
          stream = caf::actor_cast<caf::actor>(s);
        },
        [&](caf::error& e) {
          die("open: " + render(e));
        });
    return stream;
  }

  void close(caf::scoped_actor& self, const connection_actor& conn) {
    self
      ->request(conn, 10s, close_atom::value, uint64_t{0}, std::string{"done"})
      .receive([] {},
               [&](caf::error& e) {
                 die("close: " + render(e));
               });
  }

  std::string connection_stats(caf::scoped_actor& self,
                               const connection_actor& conn) {
    std::string out;
    self->request(conn, 10s, stats_atom::value)
      .receive(
        [&](connection_info& info) {
          auto& s = info.stats;
          out = "datagrams sent " + std::to_string(s.datagrams_sent)
                + ", received " + std::to_string(s.datagrams_received)
                + ", lost packets " + std::to_string(s.lost_packets) + ", cwnd "
                + std::to_string(s.cwnd / 1024) + " KiB, srtt "
                + std::to_string(s.smoothed_rtt.count() / 1000) + " us";
        },
        [&](caf::error& e) {
          out = "stats: " + render(e);
        });
    return out;
  }

  std::string transport_stats_text(caf::scoped_actor& self,
                                   const transport_actor& t) {
    std::string out;
    self->request(t, 10s, stats_atom::value)
      .receive(
        [&](mycorrizal::transport_stats& s) {
          out = "udp in " + std::to_string(s.udp.datagrams_in) + " in "
                + std::to_string(s.udp.batches) + " batches, out "
                + std::to_string(s.udp.datagrams_out) + ", send errors "
                + std::to_string(s.udp.send_errors) + ", receive errors "
                + std::to_string(s.udp.receive_errors) + ", dropped "
                + std::to_string(s.datagrams_dropped);
        },
        [&](caf::error& e) {
          out = "stats: " + render(e);
        });
    return out;
  }

  transport_handle server;
  transport_handle client;
  std::shared_ptr<sink_state> server_sink;
  std::shared_ptr<sink_state> client_sink;

  caf::actor client_consumer() const {
    return client_sink->shared;
  }

private:
  transport_handle start(const pki& p, const quic::cert_and_key& own,
                         const std::shared_ptr<sink_state>& sink, bool accept,
                         std::shared_ptr<net::reactor>& reactor,
                         caf::actor& hdl) {
    reactor = std::make_shared<net::reactor>();
    if (auto ok = reactor->start(); !ok) {
      die("reactor: " + to_string(ok.error()));
    }
    hdl = sys_->spawn(handler, sink);
    auto creds = quic::credentials::from_pem(p.ca.cert_pem, own.cert_pem,
                                             own.key_pem,
                                             std::chrono::system_clock::now());
    if (!creds) {
      die("credentials: " + to_string(creds.error()));
    }
    transport_options topts;
    topts.credentials = std::move(*creds);
    topts.accept = accept;
    topts.handler = caf::actor_cast<transport_handler_actor>(hdl);
    topts.reactor = reactor;
    auto t = spawn_transport(*sys_, std::move(topts));
    if (!t) {
      die("spawn_transport: " + to_string(t.error()));
    }
    return *t;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<net::reactor> server_reactor_;
  std::shared_ptr<net::reactor> client_reactor_;
  caf::actor server_handler_;
  caf::actor client_handler_;
};

const std::string variant = "QUIC actors";

/// `prefix` and `i` as a stream name (appending, not `"x" + to_string`:
/// g++ 12 -O3 warns about the latter with a false -Wrestrict).
std::string stream_name(char prefix, size_t i) {
  std::string name(1, prefix);
  name.append(std::to_string(i));
  return name;
}

/// Waits until the server sink is done or a writer failed.
time_point await_done(world& w,
                      const std::vector<std::shared_ptr<writer_result>>& rs,
                      std::chrono::seconds limit) {
  auto end = clock_type::now() + limit;
  while (!w.server_sink->done.load()) {
    for (auto& r : rs) {
      if (r->failed) {
        std::lock_guard<std::mutex> guard{r->mtx};
        die("write: " + r->error);
      }
    }
    if (clock_type::now() > end) {
      std::lock_guard<std::mutex> guard{w.server_sink->mtx};
      die("timeout: " + std::to_string(w.server_sink->frames.load()) + " of "
          + std::to_string(w.server_sink->target_frames.load())
          + " frames arrived; last error: " + w.server_sink->last_error);
    }
    std::this_thread::sleep_for(1ms);
  }
  return from_ns(w.server_sink->done_at.load());
}

void handshake_test(const options& opts, const pki& p, report& out) {
  world w{opts, p};
  caf::scoped_actor self{w.sys()};
  std::vector<double> samples;
  for (size_t i = 0; i < opts.handshakes + 1; ++i) { // +1: warm-up
    auto t0 = clock_type::now();
    auto conn = w.dial(self);
    auto t1 = clock_type::now();
    if (i > 0) {
      samples.push_back(micros(t0, t1));
    }
    w.close(self, conn);
  }
  auto s = summary::of(samples);
  out.add("handshake", variant, "median us", s.median,
          "dial request to connection_info (client authenticated)");
  out.add("handshake", variant, "p99 us", s.p99);
}

struct flow_result {
  double seconds = 0;
  double cpu = 0;
  std::string threads;
  uint64_t queue_full = 0;
  std::string conn_stats;
  std::string server_stats;
  std::string client_stats;
  uint64_t deliveries = 0;
};

/// `streams` writers, each sending `per_stream` frames of `payload` bytes on
/// its own stream of one connection.
flow_result flow(const options& opts, const pki& p, size_t streams,
                 uint64_t per_stream, size_t payload, size_t batch) {
  world w{opts, p};
  caf::scoped_actor self{w.sys()};
  auto conn = w.dial(self);
  std::vector<caf::actor> ss;
  for (size_t i = 0; i < streams; ++i) {
    ss.push_back(w.open(self, conn, w.client_consumer(), stream_name('s', i)));
  }
  w.server_sink->target_frames = per_stream * streams;
  std::vector<std::shared_ptr<writer_result>> results;
  auto threads0 = thread_sample::now();
  auto cpu0 = cpu_seconds();
  auto t0 = clock_type::now();
  for (auto& s : ss) {
    auto r = std::make_shared<writer_result>();
    results.push_back(r);
    w.sys().spawn(writer, writer_args{s, payload, per_stream, opts.outstanding,
                                      batch, r});
  }
  auto t1 = await_done(w, results, 600s);
  if (auto got = w.server_sink->bytes.load(),
      want = static_cast<uint64_t>(per_stream * streams * payload);
      got != want) {
    die("received " + std::to_string(got) + " payload bytes, expected "
        + std::to_string(want));
  }
  flow_result fr;
  fr.cpu = cpu_seconds() - cpu0;
  fr.threads = thread_sample::diff(threads0, thread_sample::now());
  fr.seconds = seconds(t0, t1);
  for (auto& r : results) {
    fr.queue_full += r->queue_full;
  }
  fr.conn_stats = w.connection_stats(self, conn);
  fr.server_stats = w.transport_stats_text(self, w.server.actor);
  fr.client_stats = w.transport_stats_text(self, w.client.actor);
  fr.deliveries = w.server_sink->deliveries;
  return fr;
}

void bulk_test(const options& opts, const pki& p, report& out) {
  auto count = opts.bulk_bytes / opts.bulk_chunk;
  auto fr = flow(opts, p, 1, count, opts.bulk_chunk, 1);
  auto bytes = static_cast<double>(count * opts.bulk_chunk);
  out.add("bulk", variant, "MB/s", bytes / fr.seconds / 1e6,
          std::to_string(opts.bulk_chunk >> 10) + " KiB DATA frames, "
            + std::to_string(opts.outstanding) + " writes outstanding; "
            + std::to_string(fr.queue_full) + " queue_full retries");
  out.add("bulk", variant, "CPU s/GB", fr.cpu / (bytes / 1e9), "both ends");
  out.notes.push_back("QUIC actors bulk threads: " + fr.threads);
  out.notes.push_back(
    "QUIC actors bulk: connection " + fr.conn_stats + "; client transport "
    + fr.client_stats + "; server transport " + fr.server_stats
    + "; deliveries to the consumer " + std::to_string(fr.deliveries));
}

void message_test(const options& opts, const pki& p, report& out) {
  const std::string one = "1 KiB msgs, 1 stream";
  auto fr = flow(opts, p, 1, opts.msgs, opts.msg_size, 1);
  out.add(one, variant, "msgs/s", static_cast<double>(opts.msgs) / fr.seconds,
          "one write request per DATA frame, "
            + std::to_string(opts.outstanding) + " outstanding; "
            + std::to_string(fr.queue_full) + " queue_full retries");
  out.add(one, variant, "CPU us/msg",
          fr.cpu * 1e6 / static_cast<double>(opts.msgs), "both ends");
  out.notes.push_back("QUIC actors 1 KiB x1 threads: " + fr.threads);
  out.notes.push_back("QUIC actors 1 KiB x1: connection " + fr.conn_stats
                      + "; deliveries " + std::to_string(fr.deliveries));
  const size_t batch = 16;
  auto fb = flow(opts, p, 1, opts.msgs, opts.msg_size, batch);
  out.add(one, variant + " batched", "msgs/s",
          static_cast<double>(opts.msgs) / fb.seconds,
          "write requests of " + std::to_string(batch) + " frames");
  out.add(one, variant + " batched", "CPU us/msg",
          fb.cpu * 1e6 / static_cast<double>(opts.msgs), "both ends");
  const std::string par = "1 KiB msgs, " + std::to_string(opts.parallel_streams)
                          + " streams";
  auto per = opts.msgs / opts.parallel_streams;
  auto fp = flow(opts, p, opts.parallel_streams, per, opts.msg_size, 1);
  out.add(par, variant, "msgs/s",
          static_cast<double>(per * opts.parallel_streams) / fp.seconds,
          "aggregate, one connection, one writer per stream; "
            + std::to_string(fp.queue_full) + " queue_full retries");
  out.add(par, variant, "CPU us/msg",
          fp.cpu * 1e6 / static_cast<double>(per * opts.parallel_streams),
          "both ends");
  out.notes.push_back("QUIC actors 1 KiB x"
                      + std::to_string(opts.parallel_streams)
                      + " threads: " + fp.threads);
  out.notes.push_back("QUIC actors 1 KiB x"
                      + std::to_string(opts.parallel_streams) + ": connection "
                      + fp.conn_stats);
}

void memory_test(const options& opts, const pki& p, report& out) {
  world w{opts, p};
  w.server_sink->shared_consumer = true;
  caf::scoped_actor self{w.sys()};
  {
    auto warm = w.dial(self);
    auto s = w.open(self, warm, w.client_consumer(), "warm-up");
    std::this_thread::sleep_for(50ms);
    w.close(self, warm);
    std::this_thread::sleep_for(200ms);
  }
  auto base_up = w.server_sink->conns_up.load();
  auto before = mem_probe::baseline();
  const size_t n = opts.idle_connections;
  std::vector<connection_actor> conns;
  for (size_t i = 0; i < n; ++i) {
    conns.push_back(w.dial(self));
  }
  auto end = clock_type::now() + 30s;
  while (w.server_sink->conns_up.load() < base_up + n) {
    if (clock_type::now() > end) {
      die("memory: server saw too few connections");
    }
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(200ms);
  auto after = mem_probe::now();
  auto per = [](size_t a, size_t b, size_t k) {
    return (static_cast<double>(b) - static_cast<double>(a))
           / static_cast<double>(k) / 1024.0;
  };
  const std::string ct = "idle connection (both ends)";
  out.add(ct, variant, "RSS KiB", per(before.rss, after.rss, n),
          std::to_string(n) + " connections from one client transport");
  out.add(ct, variant, "heap KiB", per(before.heap, after.heap, n));
  const size_t m = opts.idle_streams;
  auto base_streams = w.server_sink->streams_accepted.load();
  before = mem_probe::baseline();
  std::vector<caf::actor> streams;
  for (size_t i = 0; i < m; ++i) {
    streams.push_back(
      w.open(self, conns[0], w.client_consumer(), stream_name('i', i)));
  }
  end = clock_type::now() + 30s;
  while (w.server_sink->streams_accepted.load() < base_streams + m) {
    if (clock_type::now() > end) {
      die(
        "memory: server accepted "
        + std::to_string(w.server_sink->streams_accepted.load() - base_streams)
        + " of " + std::to_string(m) + " streams");
    }
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(200ms);
  after = mem_probe::now();
  const std::string st = "idle stream (both ends)";
  out.add(st, variant, "RSS KiB", per(before.rss, after.rss, m),
          std::to_string(m) + " streams on one connection, STREAM_INIT sent");
  out.add(st, variant, "heap KiB", per(before.heap, after.heap, m));
}

} // namespace

void run_actors(const options& opts, const pki& certs, report& out) {
  if (opts.wants("hs")) {
    progress(opts, "QUIC actors handshakes");
    handshake_test(opts, certs, out);
  }
  if (opts.wants("bulk")) {
    progress(opts, "QUIC actors bulk");
    bulk_test(opts, certs, out);
  }
  if (opts.wants("msg")) {
    progress(opts, "QUIC actors messages");
    message_test(opts, certs, out);
  }
  if (opts.wants("mem")) {
    progress(opts, "QUIC actors memory");
    memory_test(opts, certs, out);
  }
}

} // namespace mycorrizal::bench
