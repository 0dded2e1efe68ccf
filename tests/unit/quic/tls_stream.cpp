// SPDX-License-Identifier: Apache-2.0
// Suite quic_tls_stream: TLS over a byte stream with a node's identity, two
// sessions wired back to back in memory (the Redis front door's TLS).
#include "mycorrizal/quic/tls_stream.hpp"

#include "mycorrizal/errc.hpp"

#include "support/quic_harness.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>

using namespace mycorrizal;
using namespace mycorrizal::quic;

namespace {

using test::certs;

auto now() {
  return std::chrono::system_clock::now();
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// Moves output between the two until neither has any; collects what
/// each side's application received. Returns the first error.
struct pair {
  tls_stream client;
  tls_stream server;
  std::string at_client;
  std::string at_server;
  std::optional<error> client_error;
  std::optional<error> server_error;

  void pump() {
    for (int round = 0; round < 20; ++round) {
      auto c = client.take_output();
      auto s = server.take_output();
      if (c.empty() && s.empty()) {
        return;
      }
      if (!c.empty() && !server_error) {
        if (auto ok = server.receive(bytes_of(c), at_server); !ok) {
          server_error = ok.error();
        }
      }
      if (!s.empty() && !client_error) {
        if (auto ok = client.receive(bytes_of(s), at_client); !ok) {
          client_error = ok.error();
        }
      }
    }
  }
};

pair make_pair(const credentials& client_creds, client_auth auth,
               std::string name = {}) {
  auto s = tls_stream::server(certs().creds(certs().node_a), auth, now());
  EXPECT_TRUE(s) << (s ? "" : s.error().context());
  auto c = tls_stream::client(client_creds, now(), std::move(name));
  EXPECT_TRUE(c) << (c ? "" : c.error().context());
  return pair{std::move(*c), std::move(*s), {}, {}, {}, {}};
}

} // namespace

TEST(quic_tls_stream, mutual_handshake_then_data_both_ways) {
  auto p = make_pair(certs().creds(certs().node_b), client_auth::required,
                     "node-a");
  ASSERT_TRUE(p.client.send("PING\r\n"))
    << "sends before the handshake are queued";
  p.pump();
  ASSERT_FALSE(p.client_error) << p.client_error->context();
  ASSERT_FALSE(p.server_error) << p.server_error->context();
  EXPECT_TRUE(p.client.handshake_done());
  EXPECT_TRUE(p.server.handshake_done());
  EXPECT_EQ(p.server.peer_name(), "node-b");
  EXPECT_EQ(p.client.peer_name(), "node-a");
  EXPECT_EQ(p.at_server, "PING\r\n");
  std::string big(100'000, 'x');
  ASSERT_TRUE(p.server.send(big));
  p.pump();
  EXPECT_EQ(p.at_client, big) << "records reassemble across many reads";
  p.client.close();
  p.pump();
  EXPECT_TRUE(p.server.peer_closed());
  EXPECT_FALSE(p.client.send("late"));
}

TEST(quic_tls_stream, a_client_without_certificate_is_refused_when_required) {
  auto anon = credentials::trust_only(certs().ca.cert_pem);
  ASSERT_TRUE(anon);
  auto p = make_pair(*anon, client_auth::required);
  p.pump();
  ASSERT_TRUE(p.server_error);
  EXPECT_EQ(p.server_error->code(), errc::connection_lost);
  EXPECT_NE(p.server_error->context().find("Certificate is required"),
            std::string::npos)
    << p.server_error->context();
  EXPECT_FALSE(p.server.send("x")) << "the session is dead";
}

TEST(quic_tls_stream, optional_and_none_take_a_client_without_certificate) {
  for (auto auth : {client_auth::optional, client_auth::none}) {
    auto anon = credentials::trust_only(certs().ca.cert_pem);
    ASSERT_TRUE(anon);
    auto p = make_pair(*anon, auth);
    ASSERT_TRUE(p.client.send("hi"));
    p.pump();
    EXPECT_FALSE(p.server_error)
      << (p.server_error ? p.server_error->context() : "");
    EXPECT_EQ(p.at_server, "hi");
    EXPECT_EQ(p.server.peer_name(), "");
  }
}

TEST(quic_tls_stream, a_certificate_of_another_ca_is_refused_with_the_reason) {
  // The client trusts both CAs (so that it takes the server's
  // certificate); its own is signed by the foreign one.
  auto& k = certs();
  auto foreign = credentials::from_pem(k.ca.cert_pem + k.foreign_ca.cert_pem,
                                       k.foreign_a.cert_pem,
                                       k.foreign_a.key_pem, now());
  ASSERT_TRUE(foreign) << foreign.error().context();
  auto p = make_pair(*foreign, client_auth::optional);
  p.pump();
  ASSERT_TRUE(p.server_error);
  EXPECT_NE(p.server_error->context().find("not signed by our cluster CA"),
            std::string::npos)
    << p.server_error->context();
}

TEST(quic_tls_stream, the_client_checks_the_server_name) {
  auto p = make_pair(certs().creds(certs().node_b), client_auth::required,
                     "node-c");
  p.pump();
  ASSERT_TRUE(p.client_error);
  EXPECT_NE(p.client_error->context().find("name mismatch"), std::string::npos)
    << p.client_error->context();
}

TEST(quic_tls_stream, garbage_instead_of_a_handshake_is_an_error) {
  auto s = tls_stream::server(certs().creds(certs().node_a),
                              client_auth::required, now());
  ASSERT_TRUE(s);
  std::string plain;
  auto ok = s->receive(bytes_of("*1\r\n$4\r\nPING\r\n"), plain);
  ASSERT_FALSE(ok) << "plain RESP on a TLS port";
  EXPECT_EQ(ok.error().code(), errc::connection_lost);
  EXPECT_TRUE(plain.empty());
  EXPECT_FALSE(s->receive(bytes_of("more"), plain)) << "and stays dead";
}
