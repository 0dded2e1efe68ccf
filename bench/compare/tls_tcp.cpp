// SPDX-License-Identifier: Apache-2.0
#include "tls_tcp.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace mycorrizal::bench {

namespace {

// The priority string of Mycorrizal's QUIC connections (quic/connection.cpp),
// so that both protocols negotiate the same cipher suite and group.
constexpr const char* tls_priority
  = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "quic_vs_tls: TLS/TCP: %s\n", what.c_str());
  std::exit(2);
}

void check(int rc, const char* what) {
  if (rc < 0) {
    die(std::string{what} + ": " + gnutls_strerror(rc));
  }
}

void check_sys(int rc, const char* what) {
  if (rc < 0) {
    die(std::string{what} + ": " + std::strerror(errno));
  }
}

gnutls_datum_t datum(const std::string& s) {
  return {reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())),
          static_cast<unsigned>(s.size())};
}

/// Trust the CA, present `own`.
class tls_creds {
public:
  tls_creds(const pki& p, const quic::cert_and_key& own) {
    check(gnutls_certificate_allocate_credentials(&cred_), "allocate creds");
    auto ca = datum(p.ca.cert_pem);
    check(gnutls_certificate_set_x509_trust_mem(cred_, &ca,
                                                GNUTLS_X509_FMT_PEM),
          "set trust");
    auto cert = datum(own.cert_pem);
    auto key = datum(own.key_pem);
    check(gnutls_certificate_set_x509_key_mem(cred_, &cert, &key,
                                              GNUTLS_X509_FMT_PEM),
          "set key");
  }
  tls_creds(const tls_creds&) = delete;
  tls_creds& operator=(const tls_creds&) = delete;
  ~tls_creds() {
    gnutls_certificate_free_credentials(cred_);
  }
  gnutls_certificate_credentials_t get() const {
    return cred_;
  }

private:
  gnutls_certificate_credentials_t cred_ = nullptr;
};

/// One TLS session over one TCP socket (owns both).
class tls_session {
public:
  tls_session(int fd, bool server, const tls_creds& creds) : fd_(fd) {
    check(gnutls_init(&s_, server ? GNUTLS_SERVER : GNUTLS_CLIENT), "init");
    const char* err = nullptr;
    check(gnutls_priority_set_direct(s_, tls_priority, &err), "priority");
    check(gnutls_credentials_set(s_, GNUTLS_CRD_CERTIFICATE, creds.get()),
          "credentials");
    if (server) {
      gnutls_certificate_server_set_request(s_, GNUTLS_CERT_REQUIRE);
      gnutls_session_set_verify_cert(s_, nullptr, 0);
    } else {
      check(gnutls_server_name_set(s_, GNUTLS_NAME_DNS, "node-b", 6), "sni");
      gnutls_session_set_verify_cert(s_, "node-b", 0);
    }
    gnutls_transport_set_int(s_, fd_);
    gnutls_handshake_set_timeout(s_, GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT);
  }
  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;
  ~tls_session() {
    gnutls_deinit(s_);
    ::close(fd_);
  }

  void handshake() {
    int rc;
    do {
      rc = gnutls_handshake(s_);
    } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
    check(rc, "handshake");
  }

  /// Sends all of `data` (records of at most 16 KiB).
  void send_all(const std::byte* data, size_t len) {
    while (len > 0) {
      auto n = gnutls_record_send(s_, data, len);
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        continue;
      }
      check(static_cast<int>(n), "record_send");
      data += n;
      len -= static_cast<size_t>(n);
    }
  }

  /// Reads one record's worth; 0 at EOF.
  size_t recv_some(std::byte* buf, size_t len) {
    for (;;) {
      auto n = gnutls_record_recv(s_, buf, len);
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        continue;
      }
      if (n == GNUTLS_E_PREMATURE_TERMINATION) {
        return 0;
      }
      check(static_cast<int>(n), "record_recv");
      return static_cast<size_t>(n);
    }
  }

  /// Bytes GnuTLS has decrypted and not yet handed out.
  size_t pending() const {
    return gnutls_record_check_pending(s_);
  }

  int fd() const {
    return fd_;
  }

  void cork() {
    gnutls_record_cork(s_);
  }

  void uncork() {
    int rc;
    do {
      rc = gnutls_record_uncork(s_, GNUTLS_RECORD_WAIT);
    } while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
    check(rc, "uncork");
  }

  std::string description() const {
    auto* d = gnutls_session_get_desc(s_);
    std::string r = d != nullptr ? d : "";
    gnutls_free(d);
    return r;
  }

private:
  int fd_;
  gnutls_session_t s_ = nullptr;
};

void no_delay(int fd) {
  int one = 1;
  check_sys(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)),
            "TCP_NODELAY");
}

/// A listening socket on 127.0.0.1, ephemeral port.
class listener {
public:
  listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    check_sys(fd_, "socket");
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check_sys(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), "bind");
    check_sys(listen(fd_, 1024), "listen");
    socklen_t len = sizeof(sa);
    check_sys(getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len),
              "getsockname");
    port_ = ntohs(sa.sin_port);
  }
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  ~listener() {
    ::close(fd_);
  }
  int accept_one() {
    int fd;
    do {
      fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    check_sys(fd, "accept");
    no_delay(fd);
    return fd;
  }
  uint16_t port() const {
    return port_;
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check_sys(fd, "socket");
  no_delay(fd);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  check_sys(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)),
            "connect");
  return fd;
}

/// Context of one test: creds of both sides and a listener.
struct fixture {
  tls_creds server_creds;
  tls_creds client_creds;
  listener lst;
  fixture(const pki& p) : server_creds(p, p.server), client_creds(p, p.client) {
    // nop
  }
  std::unique_ptr<tls_session> accept_session() {
    auto s = std::make_unique<tls_session>(lst.accept_one(), true,
                                           server_creds);
    s->handshake();
    return s;
  }
  std::unique_ptr<tls_session> dial_session() {
    auto s = std::make_unique<tls_session>(connect_to(lst.port()), false,
                                           client_creds);
    s->handshake();
    return s;
  }
};

const std::byte ack_byte{'k'};

// -- handshake
// -----------------------------------------------------------------

void handshake_test(const options& opts, const pki& p, report& out) {
  fixture fx{p};
  size_t n = opts.handshakes;
  std::thread server{[&] {
    for (size_t i = 0; i < n + 1; ++i) {
      auto s = fx.accept_session();
      // Tells the client it was accepted (the server has verified its
      // certificate), as QUIC's HANDSHAKE_DONE does.
      s->send_all(&ack_byte, 1);
    }
  }};
  std::vector<double> hs;
  std::vector<double> auth;
  std::string desc;
  for (size_t i = 0; i < n + 1; ++i) { // +1: warm-up, not counted
    auto t0 = clock_type::now();
    auto s = std::make_unique<tls_session>(connect_to(fx.lst.port()), false,
                                           fx.client_creds);
    s->handshake();
    auto t1 = clock_type::now();
    std::byte b{};
    if (s->recv_some(&b, 1) != 1 || b != ack_byte) {
      die("handshake test: no confirmation byte");
    }
    auto t2 = clock_type::now();
    if (i == 0) {
      desc = s->description();
      continue;
    }
    hs.push_back(micros(t0, t1));
    auth.push_back(micros(t0, t2));
  }
  server.join();
  auto a = summary::of(auth);
  auto h = summary::of(hs);
  const std::string test = "handshake";
  out.add(test, "TLS/TCP", "median us", a.median,
          "connect + mTLS handshake + server's first byte");
  out.add(test, "TLS/TCP", "p99 us", a.p99);
  out.add(test, "TLS/TCP", "client done median us", h.median,
          "client's gnutls_handshake returned (server not yet done)");
  out.add(test, "TLS/TCP", "client done p99 us", h.p99);
  out.notes.push_back("TLS/TCP session: " + desc);
}

// -- bulk
// ------------------------------------------------------------------------

void bulk_test(const options& opts, const pki& p, report& out) {
  fixture fx{p};
  const size_t total = opts.bulk_bytes;
  time_point last{};
  std::thread server{[&] {
    auto s = fx.accept_session();
    std::vector<std::byte> buf(size_t{64} << 10);
    size_t got = 0;
    while (got < total) {
      auto n = s->recv_some(buf.data(), buf.size());
      if (n == 0) {
        die("bulk: early EOF");
      }
      got += n;
    }
    last = clock_type::now();
    s->send_all(&ack_byte, 1);
    std::byte b{};
    s->recv_some(&b, 1); // wait for the client to close
  }};
  auto s = fx.dial_session();
  std::vector<std::byte> src(opts.bulk_chunk);
  random_fill(src);
  auto cpu0 = cpu_seconds();
  auto t0 = clock_type::now();
  size_t sent = 0;
  while (sent < total) {
    auto n = std::min(src.size(), total - sent);
    s->send_all(src.data(), n);
    sent += n;
  }
  std::byte b{};
  if (s->recv_some(&b, 1) != 1) {
    die("bulk: no ack");
  }
  auto cpu = cpu_seconds() - cpu0;
  s.reset();
  server.join();
  auto secs = seconds(t0, last);
  out.add("bulk", "TLS/TCP", "MB/s", static_cast<double>(total) / secs / 1e6,
          std::to_string(opts.bulk_chunk >> 10)
            + " KiB writes, 16 KiB records");
  out.add("bulk", "TLS/TCP", "CPU s/GB",
          cpu / (static_cast<double>(total) / 1e9), "both ends");
}

// -- messages
// ----------------------------------------------------------------------

/// Counts length-prefixed messages in a byte stream.
struct prefix_counter {
  size_t header_have = 0;
  uint8_t header[4] = {};
  size_t body_left = 0;
  uint64_t messages = 0;

  void feed(const std::byte* p, size_t n) {
    while (n > 0) {
      if (body_left > 0) {
        auto k = std::min(body_left, n);
        body_left -= k;
        p += k;
        n -= k;
        if (body_left == 0) {
          ++messages;
        }
        continue;
      }
      header[header_have++] = static_cast<uint8_t>(*p++);
      --n;
      if (header_have == 4) {
        header_have = 0;
        body_left = (size_t{header[0]} << 24) | (size_t{header[1]} << 16)
                    | (size_t{header[2]} << 8) | size_t{header[3]};
        if (body_left == 0) {
          ++messages;
        }
      }
    }
  }
};

/// Messages per second and CPU microseconds per message (both ends).
struct rate {
  double per_second = 0;
  double cpu_us = 0;
};

/// `batch`: messages per uncork (1 = one record and one send per message).
rate message_rate(const options& opts, const pki& p, size_t batch) {
  fixture fx{p};
  const size_t count = opts.msgs;
  time_point last{};
  std::thread server{[&] {
    auto s = fx.accept_session();
    std::vector<std::byte> buf(size_t{64} << 10);
    prefix_counter pc;
    while (pc.messages < count) {
      auto n = s->recv_some(buf.data(), buf.size());
      if (n == 0) {
        die("messages: early EOF");
      }
      pc.feed(buf.data(), n);
    }
    last = clock_type::now();
    s->send_all(&ack_byte, 1);
    std::byte b{};
    s->recv_some(&b, 1);
  }};
  auto s = fx.dial_session();
  std::vector<std::byte> msg(4 + opts.msg_size);
  random_fill(msg);
  auto len = static_cast<uint32_t>(opts.msg_size);
  msg[0] = std::byte(len >> 24);
  msg[1] = std::byte(len >> 16);
  msg[2] = std::byte(len >> 8);
  msg[3] = std::byte(len);
  auto cpu0 = cpu_seconds();
  auto t0 = clock_type::now();
  for (size_t i = 0; i < count; ++i) {
    if (batch > 1 && i % batch == 0) {
      s->cork();
    }
    s->send_all(msg.data(), msg.size());
    if (batch > 1 && (i % batch == batch - 1 || i + 1 == count)) {
      s->uncork();
    }
  }
  std::byte b{};
  if (s->recv_some(&b, 1) != 1) {
    die("messages: no ack");
  }
  auto cpu = cpu_seconds() - cpu0;
  s.reset();
  server.join();
  auto n = static_cast<double>(count);
  return {n / seconds(t0, last), cpu * 1e6 / n};
}

/// `conns` connections, one record per message, the client writing them
/// round-robin from one thread, the server reading them with poll.
rate parallel_rate(const options& opts, const pki& p, size_t conns) {
  fixture fx{p};
  const size_t per = opts.msgs / conns;
  const uint64_t count = per * conns;
  time_point last{};
  std::thread server{[&] {
    std::vector<std::unique_ptr<tls_session>> ss;
    for (size_t i = 0; i < conns; ++i) {
      ss.push_back(fx.accept_session());
    }
    std::vector<prefix_counter> pcs(conns);
    std::vector<std::byte> buf(size_t{64} << 10);
    std::vector<pollfd> pfds(conns);
    uint64_t total = 0;
    while (total < count) {
      for (size_t i = 0; i < conns; ++i) {
        pfds[i] = {ss[i]->fd(), POLLIN, 0};
      }
      bool buffered = false;
      for (auto& s : ss) {
        buffered = buffered || s->pending() > 0;
      }
      if (!buffered && poll(pfds.data(), pfds.size(), 10'000) <= 0) {
        die("parallel: poll");
      }
      for (size_t i = 0; i < conns; ++i) {
        if ((pfds[i].revents & POLLIN) == 0 && ss[i]->pending() == 0) {
          continue;
        }
        auto n = ss[i]->recv_some(buf.data(), buf.size());
        if (n == 0) {
          die("parallel: early EOF");
        }
        auto before = pcs[i].messages;
        pcs[i].feed(buf.data(), n);
        total += pcs[i].messages - before;
      }
    }
    last = clock_type::now();
    for (auto& s : ss) {
      s->send_all(&ack_byte, 1);
    }
    for (auto& s : ss) {
      std::byte b{};
      s->recv_some(&b, 1);
    }
  }};
  std::vector<std::unique_ptr<tls_session>> cs;
  for (size_t i = 0; i < conns; ++i) {
    cs.push_back(fx.dial_session());
  }
  std::vector<std::byte> msg(4 + opts.msg_size);
  random_fill(msg);
  auto len = static_cast<uint32_t>(opts.msg_size);
  msg[0] = std::byte(len >> 24);
  msg[1] = std::byte(len >> 16);
  msg[2] = std::byte(len >> 8);
  msg[3] = std::byte(len);
  auto cpu0 = cpu_seconds();
  auto t0 = clock_type::now();
  for (size_t i = 0; i < per; ++i) {
    for (auto& c : cs) {
      c->send_all(msg.data(), msg.size());
    }
  }
  for (auto& c : cs) {
    std::byte b{};
    if (c->recv_some(&b, 1) != 1) {
      die("parallel: no ack");
    }
  }
  auto cpu = cpu_seconds() - cpu0;
  cs.clear();
  server.join();
  auto n = static_cast<double>(count);
  return {n / seconds(t0, last), cpu * 1e6 / n};
}

void message_test(const options& opts, const pki& p, report& out) {
  const std::string test = "1 KiB msgs, 1 stream";
  auto per_record = message_rate(opts, p, 1);
  out.add(test, "TLS/TCP", "msgs/s", per_record.per_second,
          "4-byte length prefix; one record_send (record + send) per message");
  out.add(test, "TLS/TCP", "CPU us/msg", per_record.cpu_us, "both ends");
  size_t batch = (size_t{16} << 10) / (opts.msg_size + 4);
  if (batch < 2) {
    batch = 2;
  }
  auto corked = message_rate(opts, p, batch);
  out.add(test, "TLS/TCP corked", "msgs/s", corked.per_second,
          "gnutls_record_cork, uncork every " + std::to_string(batch)
            + " messages (~16 KiB records)");
  out.add(test, "TLS/TCP corked", "CPU us/msg", corked.cpu_us, "both ends");
  auto k = opts.parallel_streams;
  const std::string par = "1 KiB msgs, " + std::to_string(k) + " streams";
  auto r = parallel_rate(opts, p, k);
  out.add(par, "TLS/TCP", "msgs/s", r.per_second,
          std::to_string(k)
            + " TLS connections (TCP has no streams), one "
              "record per message, one writer thread round-robin");
  out.add(par, "TLS/TCP", "CPU us/msg", r.cpu_us, "both ends");
}

// -- memory
// -------------------------------------------------------------------------

void memory_test(const options& opts, const pki& p, report& out) {
  fixture fx{p};
  const size_t n = opts.idle_connections;
  std::promise<void> server_ready;
  std::promise<void> release;
  auto release_f = release.get_future();
  std::thread server{[&] {
    std::vector<std::unique_ptr<tls_session>> sessions;
    for (size_t i = 0; i < n + 1; ++i) {
      sessions.push_back(fx.accept_session());
      sessions.back()->send_all(&ack_byte, 1);
      if (i == 0) {
        // Warm-up connection: freed before the first probe.
        sessions.clear();
      }
    }
    server_ready.set_value();
    release_f.wait();
  }};
  {
    auto warm = fx.dial_session();
    std::byte b{};
    warm->recv_some(&b, 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto before = mem_probe::baseline();
  std::vector<std::unique_ptr<tls_session>> clients;
  for (size_t i = 0; i < n; ++i) {
    clients.push_back(fx.dial_session());
    std::byte b{};
    clients.back()->recv_some(&b, 1);
  }
  server_ready.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto after = mem_probe::now();
  release.set_value();
  server.join();
  clients.clear();
  auto per = [&](size_t a, size_t b) {
    return (static_cast<double>(b) - static_cast<double>(a))
           / static_cast<double>(n) / 1024.0;
  };
  const std::string test = "idle connection (both ends)";
  out.add(test, "TLS/TCP", "RSS KiB", per(before.rss, after.rss),
          std::to_string(n)
            + " connections; kernel socket buffers not counted");
  out.add(test, "TLS/TCP", "heap KiB", per(before.heap, after.heap));
}

} // namespace

void run_tls(const options& opts, const pki& certs, report& out) {
  if (opts.wants("hs")) {
    progress(opts, "TLS/TCP handshakes");
    handshake_test(opts, certs, out);
  }
  if (opts.wants("bulk")) {
    progress(opts, "TLS/TCP bulk");
    bulk_test(opts, certs, out);
  }
  if (opts.wants("msg")) {
    progress(opts, "TLS/TCP messages");
    message_test(opts, certs, out);
  }
  if (opts.wants("mem")) {
    progress(opts, "TLS/TCP memory");
    memory_test(opts, certs, out);
  }
}

} // namespace mycorrizal::bench
