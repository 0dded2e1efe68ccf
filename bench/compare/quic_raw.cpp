// SPDX-License-Identifier: Apache-2.0
#include "quic_raw.hpp"

#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/endpoint.hpp"
#include "mycorrizal/wire/encoder.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mycorrizal::bench {

namespace {

using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "quic_vs_tls: QUIC core: %s\n", what.c_str());
  std::exit(2);
}

sockaddr_in to_sockaddr(const ip_endpoint& ep) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  std::memcpy(&sa.sin_addr, ep.bytes().data() + 12, 4);
  sa.sin_port = htons(ep.port());
  return sa;
}

ip_endpoint from_sockaddr(const sockaddr_in& sa) {
  auto* b = reinterpret_cast<const uint8_t*>(&sa.sin_addr);
  return ip_endpoint::v4(b[0], b[1], b[2], b[3], ntohs(sa.sin_port));
}

quic::credentials load(const pki& p, const quic::cert_and_key& own) {
  auto c = quic::credentials::from_pem(p.ca.cert_pem, own.cert_pem, own.key_pem,
                                       std::chrono::system_clock::now());
  if (!c) {
    die("credentials: " + to_string(c.error()));
  }
  return std::move(*c);
}

/// One endpoint core on one UDP socket, driven by whoever calls `poll_once`.
class raw_node {
public:
  using handler = std::function<void(quic::endpoint_event&)>;

  /// `gso`: send runs of equal-sized datagrams with one `UDP_SEGMENT`
  /// sendmsg and receive with `UDP_GRO`, as the reactor does for the
  /// transport actors by default.
  raw_node(const pki& p, const quic::cert_and_key& own, bool accept, bool gso,
           handler on_event)
      : gso_(gso), on_event_(std::move(on_event)) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      die("socket");
    }
    int buf = 4 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (gso_) {
      int one = 1;
      if (setsockopt(fd_, SOL_UDP, UDP_GRO, &one, sizeof(one)) != 0) {
        die("UDP_GRO");
      }
    }
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      die("bind");
    }
    socklen_t len = sizeof(sa);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    local = from_sockaddr(sa);
    quic::endpoint_params params;
    params.transport = quic::transport_config::lan_defaults();
    params.rng = [](std::span<std::byte> out) {
      random_fill(out);
    };
    params.local = local;
    params.accept = accept;
    auto ep = quic::endpoint::make(load(p, own), std::move(params));
    if (!ep) {
      die("endpoint: " + to_string(ep.error()));
    }
    ep_ = std::make_unique<quic::endpoint>(std::move(*ep));
    txbuf_.resize(size_t{512} << 10);
    slot_ = gso_ ? size_t{65536} : size_t{2048};
    rxbuf_.resize(batch * slot_);
  }

  raw_node(const raw_node&) = delete;
  raw_node& operator=(const raw_node&) = delete;

  ~raw_node() {
    ::close(fd_);
  }

  quic::endpoint& ep() {
    return *ep_;
  }

  /// Sends what the cores have, waits until a datagram arrives, the next
  /// deadline passes or `max_wait` is over, handles all of it, dispatches
  /// events, and sends again.
  void poll_once(std::chrono::nanoseconds max_wait) {
    flush();
    auto now = clock_type::now();
    auto deadline = ep_->next_deadline();
    auto wait = max_wait;
    if (deadline != quic::time_point::max()) {
      wait = std::min(wait, std::max(std::chrono::nanoseconds{0},
                                     std::chrono::nanoseconds{deadline - now}));
    }
    pollfd pfd{fd_, POLLIN, 0};
    timespec ts{static_cast<time_t>(wait.count() / 1'000'000'000),
                static_cast<long>(wait.count() % 1'000'000'000)};
    if (ppoll(&pfd, 1, &ts, nullptr) > 0) {
      receive();
    }
    now = clock_type::now();
    if (ep_->next_deadline() <= now) {
      ep_->on_timeout(now);
    }
    dispatch();
    flush();
  }

  uint64_t send_drops = 0;
  ip_endpoint local;

private:
  static constexpr size_t batch = 64;

  void receive() {
    mmsghdr msgs[batch];
    iovec iov[batch];
    sockaddr_in from[batch];
    alignas(cmsghdr) char ctrl[batch][CMSG_SPACE(sizeof(int))];
    for (int round = 0; round < 8; ++round) {
      for (size_t i = 0; i < batch; ++i) {
        iov[i] = {rxbuf_.data() + i * slot_, slot_};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        if (gso_) {
          msgs[i].msg_hdr.msg_control = ctrl[i];
          msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i]);
        }
      }
      int n = recvmmsg(fd_, msgs, batch, 0, nullptr);
      if (n <= 0) {
        return;
      }
      auto now = clock_type::now();
      auto wall = std::chrono::system_clock::now();
      for (int i = 0; i < n; ++i) {
        auto* data = rxbuf_.data() + static_cast<size_t>(i) * slot_;
        size_t len = msgs[i].msg_len;
        size_t seg = len;
        if (gso_) {
          for (auto* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != nullptr;
               c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
              int v = 0;
              std::memcpy(&v, CMSG_DATA(c), sizeof(v));
              seg = v > 0 ? static_cast<size_t>(v) : len;
            }
          }
        }
        auto peer = from_sockaddr(from[i]);
        for (size_t off = 0; off < len; off += seg) {
          ep_->handle_datagram(peer, {data + off, std::min(seg, len - off)},
                               now, wall);
        }
      }
      dispatch();
      if (static_cast<size_t>(n) < batch) {
        return;
      }
    }
  }

  void dispatch() {
    // Handlers may call into connections, which may add events.
    auto& evs = ep_->events();
    for (size_t i = 0; i < evs.size(); ++i) {
      auto ev = std::move(evs[i]);
      on_event_(ev);
    }
    evs.clear();
  }

  void flush() {
    for (int round = 0; round < 16; ++round) {
      out_.clear();
      auto n = ep_->write(clock_type::now(), txbuf_, out_);
      if (n == 0) {
        return;
      }
      send_all();
      dispatch();
    }
  }

  void send_all() {
    // One message per datagram, or with GSO per run of back-to-back
    // datagrams to one peer, all of the first one's size but the last.
    struct run {
      size_t first;
      size_t count;
      size_t bytes;
    };
    std::vector<run> runs;
    for (size_t i = 0; i < out_.size(); ++i) {
      if (gso_ && !runs.empty()) {
        auto& r = runs.back();
        auto& head = out_[r.first];
        auto& prev = out_[r.first + r.count - 1];
        auto& cur = out_[i];
        bool ok = cur.to == head.to
                  && cur.bytes.data() == prev.bytes.data() + prev.bytes.size()
                  && prev.bytes.size() == head.bytes.size()
                  && cur.bytes.size() <= head.bytes.size() && r.count < 64
                  && r.bytes + cur.bytes.size() <= 65507; // IPv4 UDP limit
        if (ok) {
          r.count++;
          r.bytes += cur.bytes.size();
          continue;
        }
      }
      runs.push_back({i, 1, out_[i].bytes.size()});
    }
    std::vector<mmsghdr> msgs(runs.size());
    std::vector<iovec> iov(runs.size());
    std::vector<sockaddr_in> to(runs.size());
    struct ctrl_buf {
      alignas(cmsghdr) char data[CMSG_SPACE(sizeof(uint16_t))];
    };
    std::vector<ctrl_buf> ctrl(runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
      auto& head = out_[runs[i].first];
      to[i] = to_sockaddr(head.to);
      iov[i] = {const_cast<std::byte*>(head.bytes.data()), runs[i].bytes};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &to[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(to[i]);
      if (runs[i].count > 1) {
        msgs[i].msg_hdr.msg_control = ctrl[i].data;
        msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].data);
        auto* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        auto seg = static_cast<uint16_t>(head.bytes.size());
        std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
      }
    }
    size_t done = 0;
    while (done < msgs.size()) {
      int n = sendmmsg(fd_, msgs.data() + done,
                       static_cast<unsigned>(msgs.size() - done), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == ENOBUFS) {
          pollfd pfd{fd_, POLLOUT, 0};
          poll(&pfd, 1, 10);
          continue;
        }
        send_drops += msgs.size() - done;
        return;
      }
      done += static_cast<size_t>(n);
    }
  }

  int fd_ = -1;
  bool gso_ = false;
  size_t slot_ = 2048;
  handler on_event_;
  std::unique_ptr<quic::endpoint> ep_;
  std::vector<std::byte> txbuf_;
  std::vector<std::byte> rxbuf_;
  std::vector<quic::outgoing_datagram> out_;
};

/// The server side: a node on its own thread, consuming everything.
class raw_server {
public:
  raw_server(const pki& p, bool gso)
      : node_(p, p.server, true, gso, [this](quic::endpoint_event& ev) {
          on_event(ev);
        }) {
    // nop
  }

  raw_server(const raw_server&) = delete;
  raw_server& operator=(const raw_server&) = delete;

  ~raw_server() {
    stop();
  }

  void start() {
    thread_ = std::thread{[this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        node_.poll_once(2ms);
      }
    }};
  }

  void stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
  }

  ip_endpoint local() const {
    return node_.local;
  }

  /// Set before `start`: the byte count that completes a transfer.
  uint64_t target_bytes = 0;
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<bool> done{false};
  time_point done_at{};
  std::atomic<uint64_t> up{0};
  std::atomic<uint64_t> streams{0};

private:
  void on_event(quic::endpoint_event& ev) {
    if (std::holds_alternative<quic::handshake_completed>(ev.what)) {
      up++;
    } else if (std::holds_alternative<quic::stream_opened>(ev.what)) {
      streams++;
    } else if (auto* d = std::get_if<quic::stream_data>(&ev.what)) {
      if (auto* c = node_.ep().find(ev.id)) {
        c->consume(d->stream_id, d->data.size());
      }
      auto total = bytes_in.fetch_add(d->data.size()) + d->data.size();
      if (target_bytes > 0 && total >= target_bytes
          && !done.load(std::memory_order_relaxed)) {
        done_at = clock_type::now();
        done = true;
      }
    }
  }

  raw_node node_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// The client side, driven by the calling thread.
class raw_client {
public:
  raw_client(const pki& p, bool gso)
      : node_(p, p.client, false, gso, [this](quic::endpoint_event& ev) {
          on_event(ev);
        }) {
    // nop
  }

  raw_node& node() {
    return node_;
  }

  quic::connection_id dial(const ip_endpoint& to) {
    auto id = node_.ep().connect(to, "node-b", clock_type::now(),
                                 std::chrono::system_clock::now());
    if (!id) {
      die("connect: " + to_string(id.error()));
    }
    return *id;
  }

  /// Polls until `pred` holds (dies after 30 s).
  template <class Pred>
  void until(Pred pred) {
    auto limit = clock_type::now() + 30s;
    while (!pred()) {
      if (clock_type::now() > limit) {
        die("timeout");
      }
      node_.poll_once(5ms);
    }
  }

  quic::connection& conn(quic::connection_id id) {
    auto* c = node_.ep().find(id);
    if (c == nullptr) {
      die("connection vanished");
    }
    return *c;
  }

  std::set<quic::connection_id> up;

private:
  void on_event(quic::endpoint_event& ev) {
    if (std::holds_alternative<quic::handshake_completed>(ev.what)) {
      up.insert(ev.id);
    } else if (auto* c = std::get_if<quic::connection_closed>(&ev.what)) {
      if (!up.contains(ev.id)) {
        die("handshake failed: " + to_string(c->reason));
      }
    }
  }

  raw_node node_;
};

const std::string variant = "QUIC core";

void handshake_test(const options& opts, const pki& p, report& out) {
  raw_server server{p, false};
  server.start();
  raw_client client{p, false};
  std::vector<double> samples;
  for (size_t i = 0; i < opts.handshakes + 1; ++i) { // +1: warm-up
    auto t0 = clock_type::now();
    auto id = client.dial(server.local());
    client.until([&] {
      return client.up.contains(id);
    });
    auto t1 = clock_type::now();
    if (i > 0) {
      samples.push_back(micros(t0, t1));
    }
    client.conn(id).close(0, "done", clock_type::now());
  }
  // Let the closes go out.
  auto end = clock_type::now() + 20ms;
  client.until([&] {
    return clock_type::now() >= end;
  });
  auto s = summary::of(samples);
  out.add("handshake", variant, "median us", s.median,
          "connect() to handshake confirmed (client authenticated)");
  out.add("handshake", variant, "p99 us", s.p99);
}

void bulk_test(const options& opts, const pki& p, report& out, bool gso) {
  const std::string name = gso ? "QUIC core GSO" : "QUIC core";
  raw_server server{p, gso};
  server.target_bytes = opts.bulk_bytes;
  server.start();
  raw_client client{p, gso};
  auto id = client.dial(server.local());
  client.until([&] {
    return client.up.contains(id);
  });
  auto sid = client.conn(id).open_stream();
  if (!sid) {
    die("open_stream: " + to_string(sid.error()));
  }
  std::vector<std::byte> src(opts.bulk_chunk);
  random_fill(src);
  const size_t total = opts.bulk_bytes;
  size_t sent = 0;
  auto threads0 = thread_sample::now();
  auto cpu0 = cpu_seconds();
  auto t0 = clock_type::now();
  auto limit = t0 + 120s;
  while (!server.done.load()) {
    auto& c = client.conn(id);
    while (sent < total) {
      auto off = sent % src.size();
      auto n = std::min(src.size() - off, total - sent);
      auto k = c.send(*sid, {src.data() + off, n}, sent + n == total);
      if (!k) {
        die("send: " + to_string(k.error()));
      }
      if (*k == 0) {
        break;
      }
      sent += *k;
    }
    client.node().poll_once(5ms);
    if (clock_type::now() > limit) {
      die("bulk: timeout");
    }
  }
  auto cpu = cpu_seconds() - cpu0;
  auto threads = thread_sample::diff(threads0, thread_sample::now());
  auto secs = seconds(t0, server.done_at);
  auto st = client.conn(id).stats();
  server.stop();
  out.add("bulk", name, "MB/s", static_cast<double>(total) / secs / 1e6,
          "stream bytes, no framing; lost packets "
            + std::to_string(st.lost_packets) + ", datagrams sent "
            + std::to_string(st.datagrams_sent));
  out.add("bulk", name, "CPU s/GB", cpu / (static_cast<double>(total) / 1e9),
          "both ends");
  out.notes.push_back(name + " bulk threads: " + threads);
}

void memory_test(const options& opts, const pki& p, report& out) {
  raw_server server{p, false};
  server.start();
  raw_client client{p, false};
  // Warm-up: one connection, closed.
  {
    auto id = client.dial(server.local());
    client.until([&] {
      return client.up.contains(id);
    });
    client.conn(id).close(0, "warm-up", clock_type::now());
    auto end = clock_type::now() + 100ms;
    client.until([&] {
      return clock_type::now() >= end;
    });
  }
  auto base_up = server.up.load();
  auto before = mem_probe::baseline();
  const size_t n = opts.idle_connections;
  std::vector<quic::connection_id> ids;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(client.dial(server.local()));
  }
  client.until([&] {
    return std::all_of(ids.begin(), ids.end(),
                       [&](auto id) {
                         return client.up.contains(id);
                       })
           && server.up.load() >= base_up + n;
  });
  auto settle = clock_type::now() + 100ms;
  client.until([&] {
    return clock_type::now() >= settle;
  });
  auto after = mem_probe::now();
  auto per = [](size_t a, size_t b, size_t k) {
    return (static_cast<double>(b) - static_cast<double>(a))
           / static_cast<double>(k) / 1024.0;
  };
  const std::string ct = "idle connection (both ends)";
  out.add(ct, variant, "RSS KiB", per(before.rss, after.rss, n),
          std::to_string(n) + " connections, one client endpoint");
  out.add(ct, variant, "heap KiB", per(before.heap, after.heap, n));
  // Streams on the first connection: each carries a STREAM_INIT frame.
  std::vector<std::byte> init;
  if (!wire::append(init, wire::stream_init{1, "bench", "idle"})) {
    die("encode STREAM_INIT");
  }
  const size_t m = opts.idle_streams;
  auto base_streams = server.streams.load();
  before = mem_probe::baseline();
  size_t opened = 0;
  while (opened < m) {
    auto sid = client.conn(ids[0]).open_stream();
    if (!sid) {
      // The peer's limit: wait for more credit.
      client.node().poll_once(1ms);
      continue;
    }
    auto k = client.conn(ids[0]).send(*sid, init, false);
    if (!k || *k != init.size()) {
      die("stream send");
    }
    ++opened;
    if (opened % 64 == 0) {
      client.node().poll_once(0ms);
    }
  }
  client.until([&] {
    return server.streams.load() >= base_streams + m;
  });
  settle = clock_type::now() + 100ms;
  client.until([&] {
    return clock_type::now() >= settle;
  });
  after = mem_probe::now();
  const std::string st = "idle stream (both ends)";
  out.add(st, variant, "RSS KiB", per(before.rss, after.rss, m),
          std::to_string(m) + " streams on one connection, STREAM_INIT sent");
  out.add(st, variant, "heap KiB", per(before.heap, after.heap, m));
  server.stop();
}

} // namespace

void run_raw(const options& opts, const pki& certs, report& out) {
  if (opts.wants("hs")) {
    progress(opts, "QUIC core handshakes");
    handshake_test(opts, certs, out);
  }
  if (opts.wants("bulk")) {
    progress(opts, "QUIC core bulk");
    bulk_test(opts, certs, out, false);
    bulk_test(opts, certs, out, true);
  }
  if (opts.wants("mem")) {
    progress(opts, "QUIC core memory");
    memory_test(opts, certs, out);
  }
}

} // namespace mycorrizal::bench
