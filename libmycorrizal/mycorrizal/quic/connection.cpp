// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/connection.hpp"

#include "mycorrizal/quic/internal/credentials_state.hpp"
#include "mycorrizal/quic/internal/gnutls.hpp"
#include "mycorrizal/quic/scheduler.hpp"

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <limits>
#include <unordered_map>

namespace mycorrizal::quic {

std::string_view to_string(handshake_failure x) noexcept {
  switch (x) {
    case handshake_failure::none: return "none";
    case handshake_failure::peer_certificate: return "peer_certificate";
    case handshake_failure::no_certificate: return "no_certificate";
    case handshake_failure::alpn: return "alpn";
    case handshake_failure::refused_by_peer: return "refused_by_peer";
    case handshake_failure::timeout: return "timeout";
    case handshake_failure::tls: return "tls";
    case handshake_failure::protocol: return "protocol";
    case handshake_failure::closed: return "closed";
  }
  return "unknown";
}

namespace {

using namespace std::chrono_literals;

constexpr size_t chunk_limit = size_t{64} * 1024;
constexpr size_t max_vecs = 16;

/// The max_ack_delay we announce (transport parameter); see `impl::start`.
constexpr std::chrono::nanoseconds ack_delay{1000};

// Stream data events of one stream grow up to this size before a new one
// starts.
constexpr size_t coalesce_limit = size_t{256} * 1024;

// TLS 1.3 only, AEADs ngtcp2 supports, ECDHE groups with fast paths.
constexpr const char* tls_priority
  = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

/// The parsed priority string, shared by every session of the process
/// (parsing it per connection costs 8 KiB and a parse; a priority cache is
/// read-only after `gnutls_priority_init`).
struct shared_priority {
  gnutls_priority_t cache = nullptr;
  int rc = 0;

  shared_priority() {
    const char* err_pos = nullptr;
    rc = gnutls_priority_init(&cache, tls_priority, &err_pos);
  }

  ~shared_priority() {
    if (cache != nullptr) {
      gnutls_priority_deinit(cache);
    }
  }

  shared_priority(const shared_priority&) = delete;
  shared_priority& operator=(const shared_priority&) = delete;

  static const shared_priority& get() {
    static const shared_priority instance;
    return instance;
  }
};

ngtcp2_tstamp to_ts(time_point t) noexcept {
  return static_cast<ngtcp2_tstamp>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch())
      .count());
}

time_point from_ts(ngtcp2_tstamp ts) noexcept {
  if (ts == std::numeric_limits<ngtcp2_tstamp>::max()) {
    return time_point::max();
  }
  return time_point{std::chrono::duration_cast<time_point::duration>(
    std::chrono::nanoseconds{static_cast<int64_t>(ts)})};
}

std::string seconds_text(duration d) {
  return fmt::format("{:.3f} s", std::chrono::duration<double>(d).count());
}

// Converts an ip_endpoint into a sockaddr ngtcp2 can compare.
socklen_t to_sockaddr(const ip_endpoint& ep, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof(out));
  if (ep.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(ep.port());
    std::memcpy(&sin->sin_addr, ep.bytes().data() + 12, 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(ep.port());
  std::memcpy(&sin6->sin6_addr, ep.bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

std::string alert_text(uint8_t alert) {
  const char* name
    = gnutls_alert_get_strname(static_cast<gnutls_alert_description_t>(alert));
  return fmt::format("TLS alert {} ({})", alert, name ? name : "unknown");
}

struct conn_deleter {
  void operator()(ngtcp2_conn* c) const noexcept {
    ngtcp2_conn_del(c);
  }
};

using conn_ptr = std::unique_ptr<ngtcp2_conn, conn_deleter>;

} // namespace

// -- impl ---------------------------------------------------------------------

struct connection::impl {
  // -- member types -----------------------------------------------------------

  struct stream_state {
    /// Bytes not yet acknowledged; chunks.front() starts at `base`.
    std::deque<std::vector<std::byte>> chunks;
    uint64_t base = 0;
    /// Offset up to which ngtcp2 holds (references) our bytes.
    uint64_t sent = 0;
    /// Offset after the last byte given to `send`.
    uint64_t end = 0;
    bool fin_requested = false;
    bool fin_sent = false;
    bool want_writable = false;
    bool local = false;

    bool pending() const noexcept {
      return sent < end || (fin_requested && !fin_sent);
    }

    /// What the scheduler weighs: bytes not yet given to ngtcp2.
    stream_backlog backlog() const noexcept {
      return stream_backlog{end - sent, end, pending()};
    }

    size_t buffered() const noexcept {
      return static_cast<size_t>(end - base);
    }
  };

  // -- state ------------------------------------------------------------------

  bool server = false;
  connection_params params;
  std::shared_ptr<const detail::credentials_state> creds;
  internal::session_ptr session;
  conn_ptr conn;
  ngtcp2_crypto_conn_ref conn_ref{};
  sockaddr_storage local_sa{};
  sockaddr_storage remote_sa{};
  socklen_t local_len = 0;
  socklen_t remote_len = 0;
  connection_state state = connection_state::handshaking;
  bool authenticated = false;
  std::string verified_name;
  std::string peer_name;
  /// Set by our certificate check when it rejects the peer.
  std::string verify_failure;
  /// Why the handshake failed, when the failing path knows better than
  /// the close reason's code (see `report_closed`).
  handshake_failure hs_failure = handshake_failure::none;
  error close_reason;
  std::vector<event> events;
  std::unordered_map<int64_t, stream_state> streams;
  /// Which stream writes next, and the latency reserve and bulk limit
  /// (`transport_config::latency_reserve`, `bulk_in_flight`).
  scheduler sched;
  std::vector<std::byte> close_packet;
  bool close_pending = false;
  time_point close_end = time_point::max();
  time_point last_close_sent{};
  connection_stats counters;
  uint64_t lost_closed = 0;
  std::vector<std::vector<std::byte>> ids;
  uint64_t ids_epoch = 0;
  /// Reachability (`transport_config::unreachable_timeout`): when the
  /// earliest ack-eliciting packet after the last one received left, and
  /// ngtcp2's time of the latest ack-eliciting packet as it was when we
  /// last received one (a later value means a packet left since).
  std::optional<time_point> stalled_since;
  ngtcp2_tstamp tx_at_receive = std::numeric_limits<ngtcp2_tstamp>::max();

  // -- helpers ----------------------------------------------------------------

  void log(log_level lvl, std::string_view text) const {
    if (params.log) {
      params.log(lvl, text);
    }
  }

  static impl* from(void* user_data) noexcept {
    return static_cast<impl*>(user_data);
  }

  ngtcp2_path path() noexcept {
    return ngtcp2_path{
      {reinterpret_cast<ngtcp2_sockaddr*>(&local_sa), local_len},
      {reinterpret_cast<ngtcp2_sockaddr*>(&remote_sa), remote_len},
      nullptr};
  }

  void fill_random(uint8_t* dest, size_t len) {
    params.rng(std::span<std::byte>{reinterpret_cast<std::byte*>(dest), len});
  }

  void add_id(const uint8_t* data, size_t len) {
    auto* p = reinterpret_cast<const std::byte*>(data);
    ids.emplace_back(p, p + len);
    ++ids_epoch;
  }

  void remove_id(const uint8_t* data, size_t len) {
    auto* p = reinterpret_cast<const std::byte*>(data);
    std::vector<std::byte> key(p, p + len);
    ids.erase(std::remove(ids.begin(), ids.end(), key), ids.end());
    ++ids_epoch;
  }

  /// What the scheduler weighs a held-back bulk stream against.
  path_state path_now() const noexcept {
    ngtcp2_conn_stat cs{};
    ngtcp2_conn_get_conn_stat(conn.get(), &cs);
    path_state p;
    p.cwnd = cs.cwnd;
    p.bytes_in_flight = cs.bytes_in_flight;
    if (cs.min_rtt != UINT64_MAX) {
      p.min_rtt = duration{static_cast<duration::rep>(cs.min_rtt)};
    }
    p.delivery_rate = cs.delivery_rate_sec;
    return p;
  }

  /// A stream's backlog for the scheduler (none for an unknown stream).
  stream_backlog backlog_of(int64_t sid) const noexcept {
    auto i = streams.find(sid);
    return i != streams.end() ? i->second.backlog() : stream_backlog{};
  }

  /// Bytes `send` may still buffer on `st`.
  size_t room(const stream_state& st) const noexcept {
    auto limit = params.transport.stream_send_buffer;
    return st.buffered() < limit ? limit - st.buffered() : 0;
  }

  /// The stream `send` may append to, or why not.
  expected<stream_state*> sendable(int64_t stream_id);

  bool closed_or_closing() const noexcept {
    return state == connection_state::closing
           || state == connection_state::draining
           || state == connection_state::finished;
  }

  void report_closed(error reason, bool by_peer, bool unreachable = false) {
    if (close_reason) {
      return;
    }
    close_reason = reason;
    auto hs = handshake_failure::none;
    if (!authenticated) {
      hs = hs_failure;
      if (hs == handshake_failure::none) {
        switch (reason.code()) {
          case errc::shutting_down: hs = handshake_failure::closed; break;
          case errc::timeout: hs = handshake_failure::timeout; break;
          case errc::unsupported_version: hs = handshake_failure::alpn; break;
          default: hs = handshake_failure::protocol; break;
        }
      }
      if (unreachable) {
        hs = handshake_failure::timeout;
      }
    }
    // Debug: the owner reports the event with the peer's name and address
    // (the connection actor logs it at info).
    log(log_level::debug,
        fmt::format("connection closed{}: {}", by_peer ? " by peer" : "",
                    to_string(reason)));
    events.emplace_back(
      connection_closed{std::move(reason), by_peer, unreachable, hs});
  }

  // -- reachability -----------------------------------------------------------

  /// ngtcp2's time of the latest ack-eliciting 1-RTT packet sent
  /// (RFC 9002's time_of_last_ack_eliciting_packet; ACK-only packets leave
  /// it alone), UINT64_MAX before the first.
  ngtcp2_tstamp last_ack_eliciting_tx() const noexcept {
    ngtcp2_conn_stat cs{};
    ngtcp2_conn_get_conn_stat(conn.get(), &cs);
    return cs.last_tx_pkt_ts[NGTCP2_PKTNS_ID_APPLICATION];
  }

  /// A packet of the peer was processed: it is reachable.
  void on_received() {
    stalled_since.reset();
    tx_at_receive = last_ack_eliciting_tx();
  }

  /// After a write: starts the unreachable clock if an ack-eliciting packet
  /// left since the last packet received.
  void note_sent() {
    if (state != connection_state::established
        || params.transport.unreachable_timeout.count() == 0 || stalled_since) {
      return;
    }
    auto tx = last_ack_eliciting_tx();
    if (tx != std::numeric_limits<ngtcp2_tstamp>::max()
        && tx != tx_at_receive) {
      stalled_since = from_ts(tx);
    }
  }

  /// When the connection counts as unreachable (max: not running).
  time_point unreachable_deadline() const noexcept {
    if (state != connection_state::established || !stalled_since
        || params.transport.unreachable_timeout.count() == 0) {
      return time_point::max();
    }
    return *stalled_since + params.transport.unreachable_timeout;
  }

  /// Closes an unreachable connection: our CONNECTION_CLOSE tells a peer
  /// that still hears us.
  void declare_unreachable(time_point now) {
    auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(
                    now - *stalled_since)
                    .count();
    auto text = fmt::format("peer unreachable: nothing received for {} ms "
                            "with packets in flight",
                            silent);
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    ngtcp2_connection_close_error_set_application_error(
      &ccerr, static_cast<uint64_t>(errc::connection_lost),
      reinterpret_cast<const uint8_t*>(text.data()), text.size());
    stalled_since.reset();
    // ccerr points into `text` until the close packet is written.
    enter_closing(now, ccerr, error{errc::connection_lost, text}, true);
  }

  duration pto() const noexcept {
    return duration{static_cast<int64_t>(ngtcp2_conn_get_pto(conn.get()))};
  }

  void enter_draining(time_point now, error reason, bool unreachable = false) {
    report_closed(std::move(reason), true, unreachable);
    state = connection_state::draining;
    close_end = now + 3 * pto();
    close_pending = false;
  }

  void enter_finished(error reason, bool by_peer) {
    report_closed(std::move(reason), by_peer);
    state = connection_state::finished;
    close_end = time_point::max();
    close_pending = false;
  }

  // Writes our CONNECTION_CLOSE and enters the closing period.
  void enter_closing(time_point now, ngtcp2_connection_close_error& ccerr,
                     error reason, bool unreachable = false) {
    report_closed(std::move(reason), false, unreachable);
    if (closed_or_closing()) {
      return;
    }
    close_packet.resize(params.transport.max_udp_payload);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    auto n = ngtcp2_conn_write_connection_close(
      conn.get(), &ps.path, &pi,
      reinterpret_cast<uint8_t*>(close_packet.data()), close_packet.size(),
      &ccerr, to_ts(now));
    if (n <= 0) {
      // Nothing can be sent (e.g. no keys yet): done at once.
      close_packet.clear();
      state = connection_state::finished;
      close_end = time_point::max();
      return;
    }
    close_packet.resize(static_cast<size_t>(n));
    close_pending = true;
    state = connection_state::closing;
    close_end = now + 3 * pto();
  }

  void close_with_liberr(time_point now, int rv, error reason) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    if (rv == NGTCP2_ERR_CRYPTO) {
      ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &ccerr, ngtcp2_conn_get_tls_alert(conn.get()), nullptr, 0);
    } else {
      ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv,
                                                               nullptr, 0);
    }
    enter_closing(now, ccerr, std::move(reason));
  }

  // Explains a failure of our own TLS stack (NGTCP2_ERR_CRYPTO).
  error crypto_failure() {
    auto alert = ngtcp2_conn_get_tls_alert(conn.get());
    if (!verify_failure.empty()) {
      hs_failure = handshake_failure::peer_certificate;
      return error{errc::connection_lost,
                   fmt::format("authentication failed: {}", verify_failure)};
    }
    hs_failure = handshake_failure::tls;
    if (alert == GNUTLS_A_NO_APPLICATION_PROTOCOL) {
      hs_failure = handshake_failure::alpn;
      return error{errc::unsupported_version,
                   fmt::format("ALPN mismatch: the peer does not offer '{}' "
                               "({})",
                               params.transport.alpn, alert_text(alert))};
    }
    if (alert == GNUTLS_A_CERTIFICATE_REQUIRED) {
      hs_failure = handshake_failure::no_certificate;
      return error{errc::connection_lost,
                   fmt::format("authentication failed: the peer sent no "
                               "certificate ({})",
                               alert_text(alert))};
    }
    return error{errc::connection_lost,
                 fmt::format("TLS handshake failed: {}", alert_text(alert))};
  }

  /// The peer closed because it stopped hearing us (`declare_unreachable`
  /// on its side: application error connection_lost, phrase "peer
  /// unreachable: ..."). Our packets do not reach it, so the path is
  /// broken for us too: the far side of a one-way fault learns it here.
  bool peer_found_us_unreachable() const {
    if (state == connection_state::handshaking) {
      return false;
    }
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    ngtcp2_conn_get_connection_close_error(conn.get(), &ccerr);
    constexpr std::string_view prefix = "peer unreachable";
    return ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
           && ccerr.error_code == static_cast<uint64_t>(errc::connection_lost)
           && ccerr.reason != nullptr && ccerr.reasonlen >= prefix.size()
           && std::string_view{reinterpret_cast<const char*>(ccerr.reason),
                               prefix.size()}
                == prefix;
  }

  // Explains why the peer closed.
  error peer_closed() const {
    if (state == connection_state::handshaking) {
      bool tls_done = ngtcp2_conn_get_handshake_completed(conn.get()) != 0;
      if (!server && tls_done) {
        return error{errc::connection_lost,
                     "the server closed the connection after our TLS "
                     "handshake completed but before confirming it: it "
                     "rejected our certificate (foreign CA, expired, no "
                     "certificate) or failed its own checks"};
      }
      return error{errc::connection_lost,
                   "the peer closed the connection during the handshake: it "
                   "rejected our certificate, our name or our ALPN, or we "
                   "rejected it"};
    }
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    ngtcp2_conn_get_connection_close_error(conn.get(), &ccerr);
    std::string phrase;
    if (ccerr.reason != nullptr && ccerr.reasonlen > 0) {
      // Printable ASCII only: the phrase is the peer's, untrusted.
      auto n = std::min<size_t>(ccerr.reasonlen, 200);
      for (size_t i = 0; i < n; ++i) {
        auto c = static_cast<char>(ccerr.reason[i]);
        phrase += (c >= 0x20 && c < 0x7f) ? c : '?';
      }
    }
    if (ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
      if (ccerr.error_code == static_cast<uint64_t>(errc::shutting_down)) {
        return error{errc::node_down,
                     fmt::format("the peer is shutting down ({})", phrase)};
      }
      return error{errc::connection_lost,
                   fmt::format("the peer closed the connection (application "
                               "error {}: {})",
                               ccerr.error_code, phrase)};
    }
    return error{errc::connection_lost,
                 fmt::format("the peer closed the connection (transport "
                             "error {:#x}: {})",
                             ccerr.error_code, phrase)};
  }

  // -- TLS --------------------------------------------------------------------

  // Our certificate check, run by GnuTLS when the peer's certificate arrives.
  static int verify_cb(gnutls_session_t sess) {
    auto* ref
      = static_cast<ngtcp2_crypto_conn_ref*>(gnutls_session_get_ptr(sess));
    auto* self = static_cast<impl*>(ref->user_data);
    auto why = self->verify_peer(sess);
    if (!why.empty()) {
      self->verify_failure = std::move(why);
      self->log(log_level::warn,
                "peer certificate rejected: " + self->verify_failure);
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    return 0;
  }

  std::string verify_peer(gnutls_session_t sess) {
    std::string cn;
    if (auto why = internal::verify_peer_certificate(sess, params.wall_now, cn);
        !why.empty()) {
      return why;
    }
    if (cn.empty()) {
      return "the peer's certificate has an empty CN (no node name)";
    }
    if (!server && !params.expected_peer_name.empty()
        && cn != params.expected_peer_name) {
      return fmt::format("peer name mismatch: expected '{}', the "
                         "certificate says '{}'",
                         params.expected_peer_name, cn);
    }
    verified_name = cn;
    return {};
  }

  /// A connection of either role with its parameters, addresses and TLS
  /// session set up; `start` then creates the ngtcp2 side.
  static expected<std::unique_ptr<impl>>
  make(bool server, const credentials& creds, connection_params params) {
    auto ptr = std::make_unique<impl>();
    auto& self = *ptr;
    self.server = server;
    self.params = std::move(params);
    scheduler_config sc;
    sc.latency_reserve = self.params.transport.latency_reserve;
    sc.bulk_in_flight = self.params.transport.bulk_in_flight;
    self.sched = scheduler{sc};
    self.creds = creds.state();
    self.local_len = to_sockaddr(self.params.local, self.local_sa);
    self.remote_len = to_sockaddr(self.params.remote, self.remote_sa);
    if (auto ok = self.setup_tls(); !ok) {
      return unexpected{ok.error()};
    }
    return ptr;
  }

  expected<void> setup_tls() {
    gnutls_session_t raw = nullptr;
    unsigned flags = server ? GNUTLS_SERVER : GNUTLS_CLIENT;
    if (auto rc = gnutls_init(&raw, flags); rc < 0) {
      return unexpected{error{errc::invalid_config,
                              "gnutls_init: " + internal::gnutls_text(rc)}};
    }
    session.reset(raw);
    const auto& prio = shared_priority::get();
    if (prio.rc < 0) {
      return unexpected{
        error{errc::invalid_config,
              "gnutls_priority_init: " + internal::gnutls_text(prio.rc)}};
    }
    if (auto rc = gnutls_priority_set(raw, prio.cache); rc < 0) {
      return unexpected{
        error{errc::invalid_config,
              "gnutls_priority_set: " + internal::gnutls_text(rc)}};
    }
    auto rc = server ? ngtcp2_crypto_gnutls_configure_server_session(raw)
                     : ngtcp2_crypto_gnutls_configure_client_session(raw);
    if (rc != 0) {
      return unexpected{
        error{errc::invalid_config, "ngtcp2_crypto_gnutls_configure_session"}};
    }
    conn_ref.get_conn = [](ngtcp2_crypto_conn_ref* ref) {
      return static_cast<impl*>(ref->user_data)->conn.get();
    };
    conn_ref.user_data = this;
    gnutls_session_set_ptr(raw, &conn_ref);
    if (auto r = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE,
                                        creds->cred.get());
        r < 0) {
      return unexpected{
        error{errc::invalid_config,
              "gnutls_credentials_set: " + internal::gnutls_text(r)}};
    }
    auto alpn = internal::as_datum(params.transport.alpn);
    if (auto r = gnutls_alpn_set_protocols(raw, &alpn, 1,
                                           GNUTLS_ALPN_MANDATORY);
        r < 0) {
      return unexpected{
        error{errc::invalid_config,
              "gnutls_alpn_set_protocols: " + internal::gnutls_text(r)}};
    }
    if (server) {
      gnutls_certificate_server_set_request(raw, GNUTLS_CERT_REQUIRE);
      // Do not advertise the CA list: a client with a foreign certificate
      // then still sends it and gets a precise rejection ("issuer is
      // unknown") instead of a bare certificate_required (PLATFORM §3.7).
      gnutls_certificate_send_x509_rdn_sequence(raw, 1);
    } else if (!params.expected_peer_name.empty()) {
      gnutls_server_name_set(raw, GNUTLS_NAME_DNS,
                             params.expected_peer_name.data(),
                             params.expected_peer_name.size());
    }
    gnutls_session_set_verify_function(raw, &impl::verify_cb);
    return {};
  }

  // -- ngtcp2 setup -----------------------------------------------------------

  static ngtcp2_callbacks callbacks(bool is_server) {
    ngtcp2_callbacks cb{};
    if (is_server) {
      cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
      cb.client_initial = ngtcp2_crypto_client_initial_cb;
      cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = [](uint8_t* dest, size_t len, const ngtcp2_rand_ctx* ctx) {
      static_cast<impl*>(ctx->native_handle)->fill_random(dest, len);
    };
    cb.get_new_connection_id = [](ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token,
                                  size_t cidlen, void* ud) -> int {
      auto* self = from(ud);
      self->fill_random(cid->data, cidlen);
      cid->datalen = cidlen;
      self->fill_random(token, NGTCP2_STATELESS_RESET_TOKENLEN);
      self->add_id(cid->data, cid->datalen);
      return 0;
    };
    cb.remove_connection_id = [](ngtcp2_conn*, const ngtcp2_cid* cid,
                                 void* ud) -> int {
      from(ud)->remove_id(cid->data, cid->datalen);
      return 0;
    };
    cb.handshake_completed = [](ngtcp2_conn*, void* ud) -> int {
      return from(ud)->on_handshake_completed();
    };
    cb.handshake_confirmed = [](ngtcp2_conn*, void* ud) -> int {
      return from(ud)->on_handshake_confirmed();
    };
    cb.stream_open = [](ngtcp2_conn*, int64_t sid, void* ud) -> int {
      auto* self = from(ud);
      self->streams.try_emplace(sid);
      self->events.emplace_back(stream_opened{sid});
      return 0;
    };
    cb.recv_stream_data = [](ngtcp2_conn* c, uint32_t flags, int64_t sid,
                             uint64_t, const uint8_t* data, size_t len,
                             void* ud, void*) -> int {
      auto* self = from(ud);
      // The connection's window reopens as soon as bytes arrive; only the
      // stream's window waits for the consumer (`consume`). A consumer that
      // stalls then holds at most its stream's window and never shuts the
      // other streams of the connection out (no head-of-line blocking
      // across streams). Memory stays bounded by streams x stream window.
      ngtcp2_conn_extend_max_offset(c, len);
      auto* p = reinterpret_cast<const std::byte*>(data);
      bool fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
      // Consecutive data of one stream (a burst of packets the owner feeds
      // in one go) joins the previous event: one buffer, not one per packet.
      if (!self->events.empty()) {
        if (auto* last = std::get_if<stream_data>(&self->events.back());
            last != nullptr && last->stream_id == sid && !last->fin
            && last->data.size() < coalesce_limit) {
          last->data.insert(last->data.end(), p, p + len);
          last->fin = fin;
          return 0;
        }
      }
      self->events.emplace_back(
        stream_data{sid, std::vector<std::byte>(p, p + len), fin});
      return 0;
    };
    cb.acked_stream_data_offset = [](ngtcp2_conn*, int64_t sid, uint64_t offset,
                                     uint64_t len, void* ud, void*) -> int {
      from(ud)->on_acked(sid, offset + len);
      return 0;
    };
    cb.stream_close = [](ngtcp2_conn* c, uint32_t flags, int64_t sid,
                         uint64_t code, void* ud, void*) -> int {
      auto* self = from(ud);
      self->lost_closed += ngtcp2_conn_get_stream_loss_count(c, sid);
      std::optional<uint64_t> app;
      if ((flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0) {
        app = code;
      }
      self->streams.erase(sid);
      self->sched.remove(sid);
      // ngtcp2 does not raise the peer's stream limit by itself: a closed
      // peer stream makes room for one more.
      if (!ngtcp2_conn_is_local_stream(c, sid)) {
        ngtcp2_conn_extend_max_streams_bidi(c, 1);
      }
      self->events.emplace_back(stream_closed{sid, app});
      return 0;
    };
    cb.extend_max_stream_data = [](ngtcp2_conn*, int64_t sid, uint64_t,
                                   void* ud, void*) -> int {
      from(ud)->unblock(sid);
      return 0;
    };
    return cb;
  }

  int on_handshake_completed() {
    const char* want = params.transport.alpn.c_str();
    gnutls_datum_t got{nullptr, 0};
    if (gnutls_alpn_get_selected_protocol(session.get(), &got) < 0
        || std::string_view{reinterpret_cast<const char*>(got.data), got.size}
             != want) {
      verify_failure = "no ALPN or a different one was negotiated";
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    if (verified_name.empty()) {
      verify_failure = "handshake completed without a verified peer "
                       "certificate";
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    if (server) {
      authenticate();
    }
    return 0;
  }

  int on_handshake_confirmed() {
    if (!server && !authenticated) {
      authenticate();
    }
    return 0;
  }

  void authenticate() {
    authenticated = true;
    peer_name = verified_name;
    state = connection_state::established;
    log(log_level::debug, "peer authenticated: " + peer_name);
    events.emplace_back(handshake_completed{peer_name});
  }

  expected<void> start(const ngtcp2_cid* dcid, const ngtcp2_cid* scid,
                       const ngtcp2_cid* original_dcid, uint32_t version,
                       time_point now) {
    const auto& tc = params.transport;
    ngtcp2_settings s;
    ngtcp2_settings_default(&s);
    s.initial_ts = to_ts(now);
    s.initial_rtt = static_cast<ngtcp2_duration>(tc.initial_rtt.count());
    s.max_tx_udp_payload_size = tc.max_udp_payload;
    s.no_tx_udp_payload_size_shaping = tc.fixed_udp_payload ? 1 : 0;
    s.max_window = tc.max_connection_window;
    s.max_stream_window = tc.max_stream_window;
    s.handshake_timeout
      = static_cast<ngtcp2_duration>(tc.handshake_timeout.count());
    s.rand_ctx.native_handle = this;
    switch (tc.cc) {
      case congestion_control::reno: s.cc_algo = NGTCP2_CC_ALGO_RENO; break;
      case congestion_control::cubic: s.cc_algo = NGTCP2_CC_ALGO_CUBIC; break;
      case congestion_control::bbr: s.cc_algo = NGTCP2_CC_ALGO_BBR; break;
      case congestion_control::bbr2: s.cc_algo = NGTCP2_CC_ALGO_BBR2; break;
    }
    ngtcp2_transport_params p;
    ngtcp2_transport_params_default(&p);
    p.initial_max_stream_data_bidi_local = tc.stream_window;
    p.initial_max_stream_data_bidi_remote = tc.stream_window;
    p.initial_max_stream_data_uni = 0;
    p.initial_max_data = tc.connection_window;
    p.initial_max_streams_bidi = tc.max_streams;
    p.initial_max_streams_uni = 0;
    p.max_idle_timeout = static_cast<ngtcp2_duration>(tc.idle_timeout.count());
    p.disable_active_migration = 1;
    // ngtcp2 0.12 puts an ACK into a packet only once min(max_ack_delay,
    // smoothed RTT / 8) has passed since the packet it acknowledges came
    // in; an answer written sooner leaves without it, and the ACK follows
    // in a packet of its own (two datagrams each way per request). With
    // the delay at 1 us the answer carries it; the connection actor holds
    // its write after reading a request until the end of the loop's round
    // (connection_actor.cpp, `process`), so it is not sent on its own at
    // once either. A peer's probe timeout counts at least 1 ms of timer
    // granularity (RFC 9002 6.2.1), so its timers hardly shorten.
    p.max_ack_delay = ack_delay.count();
    if (original_dcid != nullptr) {
      p.original_dcid = *original_dcid; // required on a server (0.12)
    }
    auto cb = callbacks(server);
    auto pth = path();
    ngtcp2_conn* raw = nullptr;
    int rv = server ? ngtcp2_conn_server_new(&raw, dcid, scid, &pth, version,
                                             &cb, &s, &p, nullptr, this)
                    : ngtcp2_conn_client_new(&raw, dcid, scid, &pth, version,
                                             &cb, &s, &p, nullptr, this);
    if (rv != 0) {
      return unexpected{
        error{errc::invalid_config,
              fmt::format("ngtcp2_conn_{}_new: {}",
                          server ? "server" : "client", ngtcp2_strerror(rv))}};
    }
    conn.reset(raw);
    ngtcp2_conn_set_tls_native_handle(raw, session.get());
    if (tc.keep_alive.count() > 0) {
      ngtcp2_conn_set_keep_alive_timeout(
        raw, static_cast<ngtcp2_duration>(tc.keep_alive.count()));
    }
    add_id(scid->data, scid->datalen);
    if (original_dcid != nullptr) {
      add_id(original_dcid->data, original_dcid->datalen);
    }
    return {};
  }

  // -- streams ----------------------------------------------------------------

  void enqueue(int64_t sid, const stream_state& st) {
    if (st.pending()) {
      sched.enqueue(sid);
    }
  }

  void unblock(int64_t sid) {
    auto i = streams.find(sid);
    if (i != streams.end() && sched.unblock(sid)) {
      enqueue(sid, i->second);
    }
  }

  void on_acked(int64_t sid, uint64_t upto) {
    auto i = streams.find(sid);
    if (i == streams.end()) {
      return;
    }
    auto& st = i->second;
    while (!st.chunks.empty() && st.base + st.chunks.front().size() <= upto) {
      auto& front = st.chunks.front();
      st.base += front.size();
      if (front.size() >= released_chunk_min) {
        events.emplace_back(send_chunk_released{sid, std::move(front)});
      }
      st.chunks.pop_front();
    }
    if (st.want_writable
        && st.buffered() < params.transport.stream_send_buffer) {
      st.want_writable = false;
      events.emplace_back(stream_writable{sid});
    }
  }

  // Collects up to max_vecs views of st's bytes from `sent` on.
  size_t gather(stream_state& st, std::array<ngtcp2_vec, max_vecs>& vecs,
                uint64_t& total) {
    size_t n = 0;
    total = 0;
    uint64_t off = st.base;
    for (auto& chunk : st.chunks) {
      uint64_t chunk_end = off + chunk.size();
      if (chunk_end > st.sent) {
        auto skip = st.sent > off ? st.sent - off : 0;
        vecs[n].base = reinterpret_cast<uint8_t*>(chunk.data() + skip);
        vecs[n].len = static_cast<size_t>(chunk.size() - skip);
        total += vecs[n].len;
        if (++n == max_vecs) {
          break;
        }
      }
      off = chunk_end;
    }
    return n;
  }

  // -- packets ----------------------------------------------------------------

  void handle(const ip_endpoint& from, bytes_view data, time_point now) {
    counters.datagrams_received++;
    counters.bytes_received += data.size();
    if (state == connection_state::finished) {
      counters.datagrams_dropped++;
      return;
    }
    if (state == connection_state::draining) {
      return;
    }
    if (state == connection_state::closing) {
      // Repeat our CONNECTION_CLOSE, at most once per PTO.
      if (now >= last_close_sent + pto()) {
        close_pending = true;
      }
      return;
    }
    // Cheap sanity check first: garbage without a QUIC header is dropped
    // and counted here.
    ngtcp2_version_cid vc;
    if (data.empty()
        || ngtcp2_pkt_decode_version_cid(
             &vc, reinterpret_cast<const uint8_t*>(data.data()), data.size(),
             params.transport.cid_length)
             != 0) {
      counters.datagrams_dropped++;
      return;
    }
    sockaddr_storage from_sa{};
    auto from_len = to_sockaddr(from, from_sa);
    ngtcp2_path pth{{reinterpret_cast<ngtcp2_sockaddr*>(&local_sa), local_len},
                    {reinterpret_cast<ngtcp2_sockaddr*>(&from_sa), from_len},
                    nullptr};
    ngtcp2_pkt_info pi{};
    auto rv = ngtcp2_conn_read_pkt(
      conn.get(), &pth, &pi, reinterpret_cast<const uint8_t*>(data.data()),
      data.size(), to_ts(now));
    if (rv == 0) {
      on_received();
      return;
    }
    switch (rv) {
      case NGTCP2_ERR_DRAINING:
        if (state == connection_state::handshaking) {
          hs_failure = handshake_failure::refused_by_peer;
        }
        enter_draining(now, peer_closed(), peer_found_us_unreachable());
        return;
      case NGTCP2_ERR_DISCARD_PKT: counters.datagrams_dropped++; return;
      case NGTCP2_ERR_CRYPTO:
        close_with_liberr(now, rv, crypto_failure());
        return;
      case NGTCP2_ERR_DROP_CONN:
      case NGTCP2_ERR_RETRY:
        enter_finished(
          error{errc::connection_lost,
                fmt::format("connection dropped: {}", ngtcp2_strerror(rv))},
          false);
        return;
      case NGTCP2_ERR_CALLBACK_FAILURE:
        if (!verify_failure.empty()) {
          hs_failure = handshake_failure::peer_certificate;
        }
        close_with_liberr(now, NGTCP2_ERR_PROTO,
                          error{errc::connection_lost,
                                "authentication failed: " + verify_failure});
        return;
      default:
        if (!ngtcp2_err_is_fatal(rv) && rv != NGTCP2_ERR_PROTO
            && rv != NGTCP2_ERR_FLOW_CONTROL && rv != NGTCP2_ERR_FINAL_SIZE
            && rv != NGTCP2_ERR_STREAM_STATE && rv != NGTCP2_ERR_STREAM_LIMIT
            && rv != NGTCP2_ERR_TRANSPORT_PARAM
            && rv != NGTCP2_ERR_FRAME_ENCODING) {
          counters.datagrams_dropped++;
          return;
        }
        close_with_liberr(
          now, rv,
          error{errc::connection_lost,
                fmt::format("QUIC protocol error: {}", ngtcp2_strerror(rv))});
        return;
    }
  }

  void timeout(time_point now) {
    if (state == connection_state::finished) {
      return;
    }
    if (state == connection_state::closing
        || state == connection_state::draining) {
      if (now >= close_end) {
        state = connection_state::finished;
        close_end = time_point::max();
        close_pending = false;
      }
      return;
    }
    if (now >= unreachable_deadline()) {
      declare_unreachable(now);
      return;
    }
    auto rv = ngtcp2_conn_handle_expiry(conn.get(), to_ts(now));
    if (rv == 0) {
      return;
    }
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
      // The negotiated timeout is the smaller of both sides' (RFC 9000
      // §10.1); 0 from the peer means it sets none.
      auto idle = params.transport.idle_timeout;
      if (const auto* remote
          = ngtcp2_conn_get_remote_transport_params(conn.get());
          remote != nullptr && remote->max_idle_timeout > 0) {
        idle = std::min(idle, duration{remote->max_idle_timeout});
      }
      enter_finished(error{errc::timeout,
                           fmt::format("idle timeout: nothing heard from the "
                                       "peer for {}",
                                       seconds_text(idle))},
                     false);
      return;
    }
    if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      enter_finished(
        error{errc::timeout,
              fmt::format("handshake timeout: not completed "
                          "within {}",
                          seconds_text(params.transport.handshake_timeout))},
        false);
      return;
    }
    close_with_liberr(
      now, rv,
      error{errc::connection_lost,
            fmt::format("timer handling failed: {}", ngtcp2_strerror(rv))});
  }

  size_t write(time_point now, std::span<std::byte> buffer,
               std::vector<std::span<const std::byte>>& out) {
    auto emit = [&](std::span<const std::byte> bytes) {
      counters.datagrams_sent++;
      counters.bytes_sent += bytes.size();
      counters.largest_datagram_sent
        = std::max<uint64_t>(counters.largest_datagram_sent, bytes.size());
      out.push_back(bytes);
    };
    if (state == connection_state::finished
        || state == connection_state::draining) {
      return 0;
    }
    if (state == connection_state::closing) {
      if (!close_pending || buffer.size() < close_packet.size()) {
        return 0;
      }
      close_pending = false;
      last_close_sent = now;
      std::memcpy(buffer.data(), close_packet.data(), close_packet.size());
      emit(buffer.first(close_packet.size()));
      return 1;
    }
    auto ts = to_ts(now);
    // Streams that were blocked by flow control may go again.
    if (!sched.blocked().empty()
        && ngtcp2_conn_get_max_data_left(conn.get()) > 0) {
      sched.unblock_if(
        [this](int64_t sid) {
          return ngtcp2_conn_get_max_stream_data_left(conn.get(), sid) > 0;
        },
        [this](int64_t sid) {
          return backlog_of(sid);
        });
    }
    size_t max_len
      = std::min<size_t>(ngtcp2_conn_get_max_tx_udp_payload_size(conn.get()),
                         params.transport.max_udp_payload);
    size_t count = 0;
    size_t used = 0;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    std::array<ngtcp2_vec, max_vecs> vecs{};
    while (count < params.transport.max_datagrams_per_write
           && buffer.size() - used >= std::min<size_t>(max_len, 1200)) {
      auto dest_len = std::min(max_len, buffer.size() - used);
      auto* dest = reinterpret_cast<uint8_t*>(buffer.data() + used);
      // Pick the next stream with something to send.
      int64_t sid = -1;
      stream_state* st = nullptr;
      if (auto picked = sched.next(
            now, max_len,
            [this](int64_t id) {
              return backlog_of(id);
            },
            [this] {
              return path_now();
            })) {
        sid = *picked;
        st = &streams.find(sid)->second;
      }
      ngtcp2_ssize ndatalen = -1;
      ngtcp2_ssize nwrite = 0;
      uint32_t flags = 0;
      uint64_t total = 0;
      if (st != nullptr) {
        auto nvec = gather(*st, vecs, total);
        flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (st->fin_requested && st->sent + total == st->end) {
          flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        nwrite = ngtcp2_conn_writev_stream(conn.get(), &ps.path, &pi, dest,
                                           dest_len, &ndatalen, flags, sid,
                                           vecs.data(), nvec, ts);
      } else {
        nwrite = ngtcp2_conn_writev_stream(conn.get(), &ps.path, &pi, dest,
                                           dest_len, &ndatalen, 0, -1, nullptr,
                                           0, ts);
      }
      if (st != nullptr && ndatalen >= 0) {
        // The stream may be gone if a callback closed it.
        auto i = streams.find(sid);
        if (i != streams.end()) {
          auto& s = i->second;
          s.sent += static_cast<uint64_t>(ndatalen);
          if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) != 0
              && static_cast<uint64_t>(ndatalen) == total) {
            s.fin_sent = true;
          }
        }
      }
      if (nwrite < 0) {
        if (nwrite == NGTCP2_ERR_WRITE_MORE) {
          // The packet has room left: the stream gave all it could.
          rotate(sid, false);
          continue;
        }
        if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
          rotate(sid, true);
          continue;
        }
        if (nwrite == NGTCP2_ERR_STREAM_SHUT_WR
            || nwrite == NGTCP2_ERR_STREAM_NOT_FOUND) {
          drop_from_queue(sid);
          continue;
        }
        close_with_liberr(
          now, static_cast<int>(nwrite),
          error{errc::connection_lost,
                fmt::format("writing a packet failed: {}",
                            ngtcp2_strerror(static_cast<int>(nwrite)))});
        break;
      }
      if (nwrite == 0) {
        break;
      }
      if (st != nullptr) {
        rotate(sid, false);
      }
      emit(std::span<const std::byte>{buffer.data() + used,
                                      static_cast<size_t>(nwrite)});
      used += static_cast<size_t>(nwrite);
      ++count;
    }
    ngtcp2_conn_update_pkt_tx_time(conn.get(), ts);
    note_sent();
    if (state == connection_state::closing && close_pending
        && buffer.size() - used >= close_packet.size()) {
      close_pending = false;
      last_close_sent = now;
      std::memcpy(buffer.data() + used, close_packet.data(),
                  close_packet.size());
      emit(
        std::span<const std::byte>{buffer.data() + used, close_packet.size()});
      ++count;
    }
    return count;
  }

  // Moves the front stream to the back (if it still has data) or off the
  // queue; `now_blocked` parks it until flow control allows more.
  void rotate(int64_t sid, bool now_blocked) {
    sched.rotate(sid, turn_after_write(sid, now_blocked));
  }

  stream_turn turn_after_write(int64_t sid, bool now_blocked) const noexcept {
    auto i = streams.find(sid);
    if (i == streams.end()) {
      return stream_turn::done;
    }
    if (now_blocked) {
      return stream_turn::blocked;
    }
    const auto& st = i->second;
    if (!st.pending()) {
      return stream_turn::done;
    }
    // WRITE_MORE or a full packet with bytes left: flow control may be the
    // limit; check before requeueing to avoid spinning.
    if (st.sent < st.end
        && (ngtcp2_conn_get_max_stream_data_left(conn.get(), sid) == 0
            || ngtcp2_conn_get_max_data_left(conn.get()) == 0)) {
      return stream_turn::blocked;
    }
    return stream_turn::again;
  }

  void drop_from_queue(int64_t sid) {
    sched.drop(sid);
    if (auto i = streams.find(sid); i != streams.end()) {
      i->second.fin_requested = false;
      i->second.sent = i->second.end;
    }
  }
};

// -- connection ---------------------------------------------------------------

connection::connection(std::unique_ptr<impl> ptr) noexcept
    : impl_(std::move(ptr)) {
  // nop
}

connection::connection(connection&&) noexcept = default;

connection& connection::operator=(connection&&) noexcept = default;

connection::~connection() = default;

namespace {

expected<void> check_params(const credentials& creds,
                            const connection_params& params) {
  if (auto ok = params.transport.validate(); !ok) {
    return ok;
  }
  if (!params.rng) {
    return unexpected{
      error{errc::invalid_config, "quic.rng: a random source is required"}};
  }
  if (!creds.state()) {
    return unexpected{
      error{errc::invalid_config, "quic: credentials are not loaded"}};
  }
  return {};
}

} // namespace

expected<connection> connection::connect(const credentials& creds,
                                         connection_params params,
                                         time_point now) {
  if (auto ok = check_params(creds, params); !ok) {
    return unexpected{ok.error()};
  }
  auto made = impl::make(false, creds, std::move(params));
  if (!made) {
    return unexpected{made.error()};
  }
  auto ptr = std::move(*made);
  auto& self = *ptr;
  ngtcp2_cid dcid;
  ngtcp2_cid scid;
  dcid.datalen = self.params.transport.cid_length;
  scid.datalen = self.params.transport.cid_length;
  self.fill_random(dcid.data, dcid.datalen);
  self.fill_random(scid.data, scid.datalen);
  if (auto ok = self.start(&dcid, &scid, nullptr, NGTCP2_PROTO_VER_V1, now);
      !ok) {
    return unexpected{ok.error()};
  }
  return connection{std::move(ptr)};
}

expected<connection> connection::accept(const credentials& creds,
                                        connection_params params,
                                        bytes_view first, time_point now) {
  if (auto ok = check_params(creds, params); !ok) {
    return unexpected{ok.error()};
  }
  if (!creds.has_certificate()) {
    return unexpected{
      error{errc::invalid_config, "quic: a server needs its own certificate"}};
  }
  ngtcp2_pkt_hd hd;
  if (first.empty()
      || ngtcp2_accept(&hd, reinterpret_cast<const uint8_t*>(first.data()),
                       first.size())
           != 0) {
    return unexpected{error{errc::malformed_frame,
                            "quic: the datagram is not a client Initial"}};
  }
  auto made = impl::make(true, creds, std::move(params));
  if (!made) {
    return unexpected{made.error()};
  }
  auto ptr = std::move(*made);
  auto& self = *ptr;
  ngtcp2_cid scid;
  scid.datalen = self.params.transport.cid_length;
  self.fill_random(scid.data, scid.datalen);
  if (auto ok = self.start(&hd.scid, &scid, &hd.dcid, hd.version, now); !ok) {
    return unexpected{ok.error()};
  }
  connection result{std::move(ptr)};
  result.handle_datagram(result.impl_->params.remote, first, now);
  return result;
}

void connection::handle_datagram(const ip_endpoint& from, bytes_view data,
                                 time_point now) {
  impl_->handle(from, data, now);
}

void connection::on_timeout(time_point now) {
  impl_->timeout(now);
}

size_t connection::write(time_point now, std::span<std::byte> buffer,
                         std::vector<std::span<const std::byte>>& out) {
  return impl_->write(now, buffer, out);
}

time_point connection::next_deadline() const noexcept {
  switch (impl_->state) {
    case connection_state::finished: return time_point::max();
    case connection_state::closing:
    case connection_state::draining: return impl_->close_end;
    default:
      return std::min(from_ts(ngtcp2_conn_get_expiry(impl_->conn.get())),
                      impl_->unreachable_deadline());
  }
}

std::vector<event>& connection::events() noexcept {
  return impl_->events;
}

expected<int64_t> connection::open_stream() {
  auto& self = *impl_;
  if (self.state != connection_state::established) {
    return unexpected{error{
      errc::shutting_down, fmt::format("cannot open a stream: connection is {}",
                                       to_string(self.state))}};
  }
  int64_t sid = -1;
  auto rv = ngtcp2_conn_open_bidi_stream(self.conn.get(), &sid, nullptr);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    return unexpected{error{errc::queue_full,
                            "cannot open a stream: the peer's stream limit "
                            "is reached"}};
  }
  if (rv != 0) {
    return unexpected{
      error{errc::connection_lost,
            fmt::format("cannot open a stream: {}", ngtcp2_strerror(rv))}};
  }
  self.streams.try_emplace(sid).first->second.local = true;
  return sid;
}

expected<connection::impl::stream_state*>
connection::impl::sendable(int64_t stream_id) {
  if (state != connection_state::established) {
    return unexpected{
      error{errc::shutting_down,
            fmt::format("cannot send: connection is {}", to_string(state))}};
  }
  auto i = streams.find(stream_id);
  if (i == streams.end()) {
    return unexpected{
      error{errc::unexpected_frame,
            fmt::format("stream {} does not exist", stream_id)}};
  }
  if (i->second.fin_requested) {
    return unexpected{
      error{errc::unexpected_frame,
            fmt::format("stream {} is already finished", stream_id)}};
  }
  return &i->second;
}

expected<size_t> connection::send(int64_t stream_id,
                                  std::vector<std::byte>&& data, bool fin) {
  auto& self = *impl_;
  auto sp = self.sendable(stream_id);
  if (!sp) {
    return unexpected{std::move(sp).error()};
  }
  auto& st = **sp;
  if (data.empty()) {
    return send(stream_id, bytes_view{data}, fin);
  }
  if (data.size() > self.params.transport.stream_send_buffer) {
    // Larger than the whole buffer: it is kept whole once the stream has
    // nothing else buffered. Its memory exists already; copying it in
    // buffer-sized pieces instead cost milliseconds of memcpy per piece in
    // the connection's actor, which every other stream waits for.
    if (st.buffered() > 0) {
      st.want_writable = true;
      return size_t{0};
    }
  } else if (data.size() > self.room(st)) {
    // It will fit once acknowledgements free room: take nothing now (a
    // partial copy would defeat the point) and report stream_writable then.
    st.want_writable = true;
    return size_t{0};
  }
  auto n = data.size();
  st.chunks.push_back(std::move(data));
  st.end += n;
  if (fin) {
    st.fin_requested = true;
  }
  self.enqueue(stream_id, st);
  return n;
}

expected<size_t> connection::send(int64_t stream_id, bytes_view data,
                                  bool fin) {
  auto& self = *impl_;
  auto sp = self.sendable(stream_id);
  if (!sp) {
    return unexpected{std::move(sp).error()};
  }
  auto& st = **sp;
  auto n = std::min(self.room(st), data.size());
  size_t done = 0;
  while (done < n) {
    // Append to the last chunk only if ngtcp2 holds none of its bytes yet
    // (appending may move it).
    bool can_append = false;
    if (!st.chunks.empty()) {
      auto& last = st.chunks.back();
      auto last_start = st.end - last.size();
      can_append = last_start >= st.sent && last.size() < chunk_limit;
    }
    if (!can_append) {
      st.chunks.emplace_back();
      st.chunks.back().reserve(std::min(chunk_limit, n - done));
    }
    auto& last = st.chunks.back();
    auto take = std::min(n - done, chunk_limit - last.size());
    last.insert(last.end(), data.begin() + static_cast<ptrdiff_t>(done),
                data.begin() + static_cast<ptrdiff_t>(done + take));
    done += take;
    st.end += take;
  }
  if (n < data.size()) {
    st.want_writable = true;
  } else if (fin) {
    st.fin_requested = true;
  }
  self.enqueue(stream_id, st);
  return n;
}

void connection::consume(int64_t stream_id, size_t n) {
  auto& self = *impl_;
  if (self.closed_or_closing() || n == 0) {
    return;
  }
  ngtcp2_conn_extend_max_stream_offset(self.conn.get(), stream_id, n);
}

expected<void> connection::reset_stream(int64_t stream_id,
                                        uint64_t app_error_code) {
  auto& self = *impl_;
  if (self.closed_or_closing()) {
    return unexpected{error{errc::shutting_down, "connection is closed"}};
  }
  auto i = self.streams.find(stream_id);
  if (i == self.streams.end()) {
    return unexpected{
      error{errc::unexpected_frame,
            fmt::format("stream {} does not exist", stream_id)}};
  }
  i->second.fin_requested = false;
  i->second.sent = i->second.end;
  auto rv = ngtcp2_conn_shutdown_stream(self.conn.get(), stream_id,
                                        app_error_code);
  if (rv != 0) {
    return unexpected{error{errc::unexpected_frame,
                            fmt::format("resetting stream {}: {}", stream_id,
                                        ngtcp2_strerror(rv))}};
  }
  return {};
}

size_t connection::send_capacity(int64_t stream_id) const noexcept {
  auto i = impl_->streams.find(stream_id);
  if (i == impl_->streams.end() || i->second.fin_requested) {
    return 0;
  }
  return impl_->room(i->second);
}

void connection::close(uint64_t app_error_code, std::string_view reason,
                       time_point now) {
  auto& self = *impl_;
  if (self.closed_or_closing()) {
    return;
  }
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default(&ccerr);
  ngtcp2_connection_close_error_set_application_error(
    &ccerr, app_error_code, reinterpret_cast<const uint8_t*>(reason.data()),
    reason.size());
  self.enter_closing(now, ccerr,
                     error{errc::shutting_down,
                           fmt::format("closed locally with application "
                                       "error {}: {}",
                                       app_error_code, reason)});
}

connection_state connection::state() const noexcept {
  return impl_->state;
}

bool connection::authenticated() const noexcept {
  return impl_->authenticated;
}

const std::string& connection::peer_name() const noexcept {
  return impl_->peer_name;
}

const error& connection::close_reason() const noexcept {
  return impl_->close_reason;
}

bool connection::is_server() const noexcept {
  return impl_->server;
}

connection_stats connection::stats() const {
  auto& self = *impl_;
  auto result = self.counters;
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(self.conn.get(), &st);
  result.smoothed_rtt = duration{static_cast<int64_t>(st.smoothed_rtt)};
  result.min_rtt = duration{static_cast<int64_t>(st.min_rtt)};
  result.latest_rtt = duration{static_cast<int64_t>(st.latest_rtt)};
  result.rttvar = duration{static_cast<int64_t>(st.rttvar)};
  result.cwnd = st.cwnd;
  result.bytes_in_flight = st.bytes_in_flight;
  result.pto = self.pto();
  result.lost_packets = self.lost_closed;
  for (const auto& kv : self.streams) {
    result.lost_packets += ngtcp2_conn_get_stream_loss_count(self.conn.get(),
                                                             kv.first);
  }
  return result;
}

std::vector<std::vector<std::byte>> connection::routing_ids() const {
  return impl_->ids;
}

uint64_t connection::routing_epoch() const noexcept {
  return impl_->ids_epoch;
}

std::string_view to_string(connection_state x) noexcept {
  switch (x) {
    case connection_state::handshaking: return "handshaking";
    case connection_state::established: return "established";
    case connection_state::closing: return "closing";
    case connection_state::draining: return "draining";
    case connection_state::finished: return "finished";
  }
  return "unknown";
}

} // namespace mycorrizal::quic
