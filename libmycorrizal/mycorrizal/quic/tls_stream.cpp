// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/tls_stream.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/quic/internal/credentials_state.hpp"
#include "mycorrizal/quic/internal/gnutls.hpp"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace mycorrizal::quic {

struct tls_stream::impl {
  std::shared_ptr<const detail::credentials_state> creds;
  internal::session_ptr session;
  bool server = false;
  client_auth auth = client_auth::required;
  wall_time now;
  std::string expected_name;
  /// Network bytes not yet read by GnuTLS, and those it wrote.
  std::string in;
  size_t in_pos = 0;
  std::string out;
  /// Application bytes sent before the handshake finished.
  std::string pending;
  bool done = false;
  bool dead = false;
  bool closed = false;
  bool peer_closed = false;
  std::string peer;
  std::string verify_failure;

  static ssize_t push(gnutls_transport_ptr_t p, const void* data, size_t size) {
    auto* self = static_cast<impl*>(p);
    self->out.append(static_cast<const char*>(data), size);
    return static_cast<ssize_t>(size);
  }

  static ssize_t pull(gnutls_transport_ptr_t p, void* data, size_t size) {
    auto* self = static_cast<impl*>(p);
    auto left = self->in.size() - self->in_pos;
    if (left == 0) {
      gnutls_transport_set_errno(self->session.get(), EAGAIN);
      return -1;
    }
    auto n = std::min(left, size);
    std::memcpy(data, self->in.data() + self->in_pos, n);
    self->in_pos += n;
    return static_cast<ssize_t>(n);
  }

  static int pull_timeout(gnutls_transport_ptr_t p, unsigned /*ms*/) {
    auto* self = static_cast<impl*>(p);
    return self->in.size() > self->in_pos ? 1 : 0;
  }

  static int verify_cb(gnutls_session_t sess) {
    auto* self = static_cast<impl*>(gnutls_session_get_ptr(sess));
    unsigned n = 0;
    if (self->server && self->auth == client_auth::optional
        && gnutls_certificate_get_peers(sess, &n) == nullptr) {
      return 0; // none sent, none needed
    }
    std::string cn;
    auto why = internal::verify_peer_certificate(sess, self->now, cn);
    if (why.empty() && !self->server && !self->expected_name.empty()
        && cn != self->expected_name) {
      why = fmt::format("server name mismatch: expected '{}', the "
                        "certificate says '{}'",
                        self->expected_name, cn);
    }
    if (!why.empty()) {
      self->verify_failure = std::move(why);
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    self->peer = std::move(cn);
    return 0;
  }

  expected<void> fail(errc code, int rc) {
    dead = true;
    auto text = !verify_failure.empty() ? verify_failure
                                        : internal::gnutls_text(rc);
    if (code == errc::connection_lost) {
      // Tell the peer why (an alert), if GnuTLS has one for it.
      gnutls_alert_send_appropriate(session.get(), rc);
    }
    return unexpected{error{code, "TLS: " + text}};
  }

  expected<void> flush_pending() {
    if (pending.empty()) {
      return {};
    }
    auto data = std::exchange(pending, std::string{});
    return write(data);
  }

  expected<void> write(std::string_view data) {
    while (!data.empty()) {
      auto rc = gnutls_record_send(session.get(), data.data(), data.size());
      if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        continue; // the push never blocks: GnuTLS retries its own record
      }
      if (rc < 0) {
        return fail(errc::connection_lost, static_cast<int>(rc));
      }
      data.remove_prefix(static_cast<size_t>(rc));
    }
    return {};
  }
};

namespace {

expected<std::unique_ptr<tls_stream::impl>> make_impl(const credentials& creds,
                                                      bool server) {
  auto x = std::make_unique<tls_stream::impl>();
  x->creds = creds.state();
  x->server = server;
  gnutls_session_t raw = nullptr;
  auto flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK;
  if (auto rc = gnutls_init(&raw, flags); rc < 0) {
    return unexpected{
      error{errc::invalid_config, "TLS: " + internal::gnutls_text(rc)}};
  }
  x->session.reset(raw);
  if (auto rc = gnutls_set_default_priority(raw); rc < 0) {
    return unexpected{
      error{errc::invalid_config, "TLS: " + internal::gnutls_text(rc)}};
  }
  if (auto rc = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE,
                                       x->creds->cred.get());
      rc < 0) {
    return unexpected{
      error{errc::invalid_config, "TLS: " + internal::gnutls_text(rc)}};
  }
  gnutls_transport_set_ptr(raw, x.get());
  gnutls_transport_set_push_function(raw, &tls_stream::impl::push);
  gnutls_transport_set_pull_function(raw, &tls_stream::impl::pull);
  gnutls_transport_set_pull_timeout_function(raw,
                                             &tls_stream::impl::pull_timeout);
  gnutls_session_set_ptr(raw, x.get());
  return x;
}

} // namespace

tls_stream::tls_stream(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

tls_stream::tls_stream(tls_stream&&) noexcept = default;
tls_stream& tls_stream::operator=(tls_stream&&) noexcept = default;
tls_stream::~tls_stream() = default;

expected<tls_stream> tls_stream::server(const credentials& creds,
                                        client_auth auth, wall_time now) {
  if (!creds.has_certificate()) {
    return unexpected{
      error{errc::invalid_config, "TLS: a server needs a certificate and key"}};
  }
  auto x = make_impl(creds, true);
  if (!x) {
    return unexpected{x.error()};
  }
  auto& s = **x;
  s.auth = auth;
  s.now = now;
  gnutls_certificate_server_set_request(
    s.session.get(), auth == client_auth::required   ? GNUTLS_CERT_REQUIRE
                     : auth == client_auth::optional ? GNUTLS_CERT_REQUEST
                                                     : GNUTLS_CERT_IGNORE);
  if (auth != client_auth::none) {
    gnutls_session_set_verify_function(s.session.get(), &impl::verify_cb);
    // Without the list of our CAs a client sends the certificate it has
    // (GnuTLS clients would otherwise send none when its issuer is not
    // ours, and be refused for lacking one instead of for the real
    // reason); the CA names stay private too.
    gnutls_certificate_send_x509_rdn_sequence(s.session.get(), 1);
  }
  return tls_stream{std::move(*x)};
}

expected<tls_stream> tls_stream::client(const credentials& creds, wall_time now,
                                        std::string server_name) {
  auto x = make_impl(creds, false);
  if (!x) {
    return unexpected{x.error()};
  }
  auto& s = **x;
  s.now = now;
  s.expected_name = std::move(server_name);
  gnutls_session_set_verify_function(s.session.get(), &impl::verify_cb);
  // The client speaks first.
  auto rc = gnutls_handshake(s.session.get());
  if (rc < 0 && rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED) {
    return unexpected{
      error{errc::connection_lost, "TLS: " + internal::gnutls_text(rc)}};
  }
  return tls_stream{std::move(*x)};
}

expected<void> tls_stream::receive(std::span<const std::byte> in,
                                   std::string& plain) {
  auto& s = *impl_;
  if (s.dead) {
    return unexpected{error{errc::connection_lost, "TLS: the session failed"}};
  }
  s.in.append(reinterpret_cast<const char*>(in.data()), in.size());
  if (!s.done) {
    auto rc = gnutls_handshake(s.session.get());
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
      s.in.erase(0, s.in_pos);
      s.in_pos = 0;
      return {};
    }
    if (rc < 0) {
      return s.fail(errc::connection_lost, rc);
    }
    s.done = true;
    if (auto ok = s.flush_pending(); !ok) {
      return ok;
    }
  }
  std::array<char, 16384> buf{};
  for (;;) {
    auto rc = gnutls_record_recv(s.session.get(), buf.data(), buf.size());
    if (rc > 0) {
      plain.append(buf.data(), static_cast<size_t>(rc));
      continue;
    }
    if (rc == 0) {
      s.peer_closed = true;
      break;
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
      break;
    }
    if (rc == GNUTLS_E_REHANDSHAKE) {
      // TLS 1.2 renegotiation: refused, as Redis (OpenSSL) does by default.
      gnutls_alert_send(s.session.get(), GNUTLS_AL_WARNING,
                        GNUTLS_A_NO_RENEGOTIATION);
      continue;
    }
    if (gnutls_error_is_fatal(static_cast<int>(rc)) == 0) {
      continue; // a warning alert
    }
    return s.fail(errc::decrypt_failed, static_cast<int>(rc));
  }
  s.in.erase(0, s.in_pos);
  s.in_pos = 0;
  return {};
}

expected<void> tls_stream::send(std::string_view plain) {
  auto& s = *impl_;
  if (s.dead || s.closed) {
    return unexpected{error{errc::connection_lost, "TLS: the session ended"}};
  }
  if (!s.done) {
    s.pending.append(plain);
    return {};
  }
  return s.write(plain);
}

void tls_stream::close() {
  auto& s = *impl_;
  if (s.closed || s.dead) {
    return;
  }
  s.closed = true;
  if (s.done) {
    gnutls_bye(s.session.get(), GNUTLS_SHUT_WR);
  }
}

std::string tls_stream::take_output() {
  return std::exchange(impl_->out, std::string{});
}

bool tls_stream::handshake_done() const noexcept {
  return impl_->done;
}

bool tls_stream::peer_closed() const noexcept {
  return impl_->peer_closed;
}

const std::string& tls_stream::peer_name() const noexcept {
  return impl_->peer;
}

} // namespace mycorrizal::quic
