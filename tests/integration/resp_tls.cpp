// SPDX-License-Identifier: Apache-2.0
// The Redis front door with TLS (resp_options::tls) on a live node, over a
// real TCP socket on loopback, the client side driven by a tls_stream:
// commands with a client certificate; without one (refused when required,
// taken when optional); a certificate of another CA; plain RESP on the TLS
// port; after each refusal the node still serves.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/quic/tls_stream.hpp"
#include "mycorrizal/serve/resp.hpp"

#include "support/test_pki.hpp"

#include <caf/all.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

using namespace mycorrizal;
using namespace std::chrono_literals;

namespace {

/// A blocking TCP client with a deadline per read.
class tcp_client {
public:
  explicit tcp_client(const ip_endpoint& to) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(to.port());
    inet_pton(AF_INET, to.address_string().c_str(), &sa.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa))
                 == 0;
  }

  tcp_client(const tcp_client&) = delete;
  tcp_client& operator=(const tcp_client&) = delete;

  ~tcp_client() {
    ::close(fd_);
  }

  bool connected() const {
    return connected_;
  }

  void send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + off, bytes.size() - off,
                      MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
  }

  /// What arrives within `limit`; `closed` set on EOF or reset.
  std::string receive(std::chrono::milliseconds limit, bool& closed) {
    pollfd p{fd_, POLLIN, 0};
    closed = false;
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
      return {};
    }
    char buf[65536];
    auto n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed = true;
      return {};
    }
    return std::string(buf, static_cast<size_t>(n));
  }

private:
  int fd_ = -1;
  bool connected_ = false;
};

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// A TLS session over a tcp_client; `call` sends a request and waits for
/// `want` bytes of application data, or the end.
struct tls_client {
  tcp_client tcp;
  quic::tls_stream tls;
  std::string plain;
  bool closed = false;
  std::string error;

  /// Pumps until `done()` or the deadline or the end.
  template <class Pred>
  void pump(Pred done, std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    tcp.send(tls.take_output());
    while (!done() && !closed && error.empty()
           && std::chrono::steady_clock::now() < deadline) {
      bool eof = false;
      auto in = tcp.receive(100ms, eof);
      if (eof) {
        closed = true;
        break;
      }
      if (in.empty()) {
        continue;
      }
      if (auto ok = tls.receive(bytes_of(in), plain); !ok) {
        error = ok.error().context();
      }
      tcp.send(tls.take_output());
    }
  }

  std::string call(const std::string& request, size_t reply_size) {
    plain.clear();
    EXPECT_TRUE(tls.send(request));
    pump([&] {
      return plain.size() >= reply_size;
    });
    return plain;
  }
};

std::unique_ptr<tls_client> connect_tls(const ip_endpoint& to,
                                        const quic::credentials& creds) {
  auto t = quic::tls_stream::client(creds, std::chrono::system_clock::now());
  if (!t) {
    ADD_FAILURE() << t.error().context();
    return nullptr;
  }
  return std::unique_ptr<tls_client>(
    new tls_client{tcp_client{to}, std::move(*t), {}, false, {}});
}

class resp_tls_test : public ::testing::Test {
protected:
  void SetUp() override {
    add_error_category(cfg_);
    cfg_.set("scheduler.max-threads", 4);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    auto cfg = node_config::local("tls-node");
    cfg.credentials = test::test_pki::get().credentials("tls-node");
    cfg.gossip_bind = ip_endpoint::v4(127, 0, 0, 61, 0);
    cfg.quic_bind = ip_endpoint::v4(127, 0, 0, 61, 0);
    cfg.cache = cache_options{};
    auto n = mycorrizal::node::start(*sys_, std::move(cfg));
    ASSERT_TRUE(n) << to_string(n.error());
    node_ = *n;
  }

  void TearDown() override {
    server_.reset();
    if (node_) {
      node_->stop();
    }
    node_.reset();
    sys_.reset();
  }

  ip_endpoint serve(quic::client_auth auth) {
    resp_options opts;
    opts.bind = ip_endpoint::v4(127, 0, 0, 61, 0);
    opts.tls = test::test_pki::get().credentials("tls-node");
    opts.tls_auth = auth;
    auto s = resp_server::start(node_, std::move(opts));
    EXPECT_TRUE(s) << (s ? "" : to_string(s.error()));
    server_ = std::move(*s);
    return server_->local();
  }

  /// A client with a cluster certificate gets PONG.
  void expect_served(const ip_endpoint& at) {
    auto c = connect_tls(at, test::test_pki::get().credentials("client-ok"));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->call("PING\r\n", 7), "+PONG\r\n")
      << "error: " << c->error << ", closed: " << c->closed;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<mycorrizal::node> node_;
  std::unique_ptr<resp_server> server_;
};

} // namespace

TEST_F(resp_tls_test, commands_over_tls_with_a_client_certificate) {
  auto at = serve(quic::client_auth::required);
  auto c = connect_tls(at, test::test_pki::get().credentials("client-a"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->call("SET k \"v w\"\r\n", 5), "+OK\r\n") << c->error;
  EXPECT_EQ(c->call("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 9), "$3\r\nv w\r\n")
    << c->error;
  EXPECT_EQ(c->tls.peer_name(), "tls-node");
  std::string pipeline;
  std::string want;
  for (int i = 0; i < 200; ++i) {
    pipeline += "INCR n\r\n";
    want += ":" + std::to_string(i + 1) + "\r\n";
  }
  EXPECT_EQ(c->call(pipeline, want.size()), want)
    << "a pipeline in many records";
  EXPECT_EQ(c->call("QUIT\r\n", 5), "+OK\r\n");
  c->pump(
    [] {
      return false;
    },
    5s);
  EXPECT_TRUE(c->closed || c->tls.peer_closed())
    << "QUIT ends the session (close_notify, then the connection)";
}

TEST_F(resp_tls_test, a_client_without_certificate_is_refused_when_required) {
  auto at = serve(quic::client_auth::required);
  auto c = connect_tls(at, test::test_pki::get().trust_only());
  ASSERT_TRUE(c);
  c->call("PING\r\n", 7);
  EXPECT_TRUE(c->plain.empty()) << "no reply: " << c->plain;
  EXPECT_TRUE(c->closed || !c->error.empty())
    << "the node ends the session (an alert, then the connection)";
  expect_served(at);
}

TEST_F(resp_tls_test, optional_takes_a_client_without_certificate) {
  auto at = serve(quic::client_auth::optional);
  auto c = connect_tls(at, test::test_pki::get().trust_only());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->call("PING\r\n", 7), "+PONG\r\n") << c->error;
}

TEST_F(resp_tls_test, a_certificate_of_another_ca_is_refused) {
  auto at = serve(quic::client_auth::optional);
  auto& pki = test::test_pki::get();
  // It trusts our CA too, so that the refusal is the node's.
  auto foreign
    = test::test_pki::load(pki.foreign_node("intruder"),
                           pki.ca().cert_pem + pki.foreign_ca().cert_pem);
  auto c = connect_tls(at, foreign);
  ASSERT_TRUE(c);
  c->call("PING\r\n", 7);
  EXPECT_TRUE(c->plain.empty()) << "no reply: " << c->plain;
  EXPECT_TRUE(c->closed || !c->error.empty());
  expect_served(at);
}

TEST_F(resp_tls_test, plain_resp_on_the_tls_port_is_closed) {
  auto at = serve(quic::client_auth::required);
  tcp_client raw{at};
  ASSERT_TRUE(raw.connected());
  raw.send("PING\r\n");
  bool closed = false;
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    got += raw.receive(100ms, closed);
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.find("PONG"), std::string::npos)
    << "no plain reply, at most an alert";
  expect_served(at);
}
