// SPDX-License-Identifier: Apache-2.0
// The node's I/O reactor: one epoll thread that owns the node's sockets.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/net/events.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

/// The reactor is one thread ("mcz.reactor") running an epoll loop over the
/// sockets of a node: the gossip UDP socket and TCP listener, the short TCP
/// exchanges of push/pull, and the QUIC UDP socket. It is not an actor; it
/// hands what it reads to the *owner* actor of each socket as a message
/// without a sender (messages in `net/events.hpp`), the way CAF 0.17's
/// multiplexer feeds brokers, but with full socket control (`recvmmsg`
/// batches, buffer sizes, the sender's address). With
/// `reactor_config::host` set, the loop is also a CAF execution unit: the
/// owners it feeds, and the actors they send to, run on its thread after
/// each round of I/O, within a time budget per round (the rest goes to
/// the scheduler), as the multiplexer runs brokers.
///
/// Threading:
/// - Every public member function is thread-safe; actors call them from CAF
///   worker threads. Calls that the loop must act on go through a
///   mutex-protected command queue and an eventfd wake-up.
/// - UDP sends do not go through the loop: `send_udp` and `send_udp_many`
///   call `sendto`/`sendmmsg` on the caller's thread (the kernel serializes
///   them), and report `EAGAIN` as `errc::queue_full`.
/// - TCP writes go straight to the socket on the caller's thread while the
///   connection is open and nothing of it is queued, as far as the kernel
///   takes them (a reply wakes no loop); the rest is queued (bounded per
///   connection) and written by the loop, in order. The loop closes a
///   socket only under the connection's lock that direct writes hold.
///
/// Lifetime:
/// - `start()` spawns the thread; `stop()` (idempotent; also run by the
///   destructor) wakes and joins it, sends `tcp_closed{shutting_down}` for
///   every open connection, and closes every socket. Stop the reactor before
///   the `caf::actor_system` of its owners goes away: it holds strong handles
///   to the owners (as CAF's multiplexer does for brokers), which would keep
///   `~actor_system` waiting.
/// - Resources can be opened before `start()`; the loop serves them once it
///   runs. After `stop()` every call fails with `errc::shutting_down`.
/// - When an owner actor terminates, the reactor closes everything it owned
///   (it attaches a functor to the owner). Owners should still close what
///   they no longer need.
///
/// Every TCP connection has a deadline (memberlist's TCPTimeout: the whole
/// exchange is bounded), so none lives forever by accident.
namespace mycorrizal::net {

// -- options ------------------------------------------------------------------

/// Fault injection (tests) that changes while a socket runs: datagrams from
/// blocked senders are dropped on receipt and counted as fault drops, e.g.
/// to cut one direction of a QUIC connection on loopback. Thread-safe:
/// the test and the reactor share one (`udp_options::filter`).
class udp_filter {
public:
  /// Drops what `from` sends from now on.
  void block(const ip_endpoint& from);

  /// Lets `from` through again.
  void unblock(const ip_endpoint& from);

  /// Whether datagrams from `from` are dropped.
  bool blocks(const ip_endpoint& from) const;

private:
  mutable std::mutex mtx_;
  std::vector<ip_endpoint> blocked_;
};

/// Places a socket's datagrams at their actors on the reactor's thread,
/// before the rest go to the socket's owner: an owner that only routes
/// datagrams on (the QUIC transport to its connections) costs each batch
/// one actor hop less. Shared by the owner (which keeps its routes) and
/// the reactor (`udp_options::demux`).
class udp_demux {
public:
  virtual ~udp_demux() = default;

  /// Sends on what it can place of `batch` and removes it from
  /// `batch.datagrams`; the rest goes to the owner, in order. Runs on the
  /// reactor's thread: must not block for long.
  /// `host` is the loop when it runs owners (pass it to `send_hosted`),
  /// else null.
  virtual void take(udp_batch& batch, caf::execution_unit* host) = 0;
};

/// Options of one UDP socket.
struct udp_options {
  /// Requested `SO_RCVBUF` in bytes (the kernel caps it at
  /// `net.core.rmem_max` and doubles it; the granted value is reported).
  /// 0 keeps the system default.
  size_t receive_buffer = size_t{4} << 20;

  /// Requested `SO_SNDBUF` in bytes, like `receive_buffer`.
  size_t send_buffer = size_t{4} << 20;

  /// Largest datagram received intact; longer ones are dropped and counted
  /// as truncated. At most 65535.
  size_t max_datagram_size = 65535;

  /// Datagrams per `recvmmsg` call, i.e. the largest `udp_batch`. 1..1024.
  size_t batch_size = 32;

  /// `send_udp_many` sends runs of datagrams to one destination that lie
  /// back to back in memory, all of one size but the last, as one
  /// generic-segmentation send (`UDP_SEGMENT`, up to 64 datagrams): one
  /// system call and one trip through the stack instead of one per
  /// datagram. Falls back to plain sends where the kernel refuses it.
  bool gso = false;

  /// Lets the kernel coalesce received datagrams of one sender (`UDP_GRO`).
  /// The owner gets them in one `udp_datagram` with `segment` set (walk it
  /// with `for_each_datagram`); with fault injection on they are cut apart
  /// so that drops and reorders count single datagrams. Ignored where
  /// unsupported.
  bool gro = false;

  /// Sets `SO_REUSEADDR` before binding.
  bool reuse_address = false;

  /// For an IPv6 bind address: accept IPv6 only (`IPV6_V6ONLY`). Off: an
  /// `[::]` socket also serves IPv4 (as IPv4-mapped addresses).
  bool v6_only = false;

  /// Fault injection (tests): drop every n-th received datagram (counting
  /// all received datagrams of this socket from 1). 0 = off.
  uint32_t drop_every_nth = 0;

  /// Fault injection (tests): hold back every n-th datagram that survived
  /// `drop_every_nth` and deliver it right after the next one, e.g. n=3
  /// gives 1 2 4 3 5 7 6 8 ... 0 = off.
  uint32_t reorder_every_nth = 0;

  /// A held-back datagram is delivered alone if no next one arrives within
  /// this time.
  std::chrono::milliseconds reorder_max_hold{100};

  /// Fault injection (tests): drops datagrams from the senders it blocks,
  /// before `drop_every_nth` counts them. Null = off.
  std::shared_ptr<udp_filter> filter;

  /// Takes the datagrams it can place before the owner gets the rest.
  /// Null = everything goes to the owner.
  std::shared_ptr<udp_demux> demux;

  /// Checks every field.
  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

/// Options of one TCP connection, or of every connection a listener accepts.
struct tcp_options {
  /// The whole exchange must end within this time after the connection was
  /// accepted or `connect_tcp` was called; then it is closed with
  /// `errc::timeout`. Zero means no deadline (long-lived connections only).
  std::chrono::milliseconds deadline{10'000};

  /// Closed with `errc::timeout` after this long without reading or writing
  /// a byte. Zero = off.
  std::chrono::milliseconds idle_timeout{0};

  /// Bytes `write_tcp` may queue on one connection and the loop has not yet
  /// handed to the kernel; a write that would exceed it fails with
  /// `errc::queue_full`. At least 1.
  size_t max_write_queue = size_t{1} << 20;

  /// The connection is closed with `errc::too_large` once the peer has sent
  /// more than this many bytes in total. 0 = unlimited.
  size_t max_received_bytes = 0;

  /// Bytes per `read` call, i.e. the largest `tcp_received`. 1..16 MiB.
  size_t read_chunk = size_t{64} << 10;

  /// On the peer's EOF: true closes the connection (after flushing pending
  /// writes) and reports `tcp_closed{none}`; false reports `tcp_eof` and
  /// keeps the connection open for writing.
  bool close_on_eof = true;

  /// Sets `TCP_NODELAY` (short request/reply exchanges want it).
  bool no_delay = true;

  /// `connect_tcp` only: the connection leaves from this address (its port
  /// is ignored; the kernel picks one), so that firewall rules and
  /// multi-homed hosts see the node's own address rather than the host's
  /// default route. Unset, or a wildcard: the kernel picks the source.
  std::optional<ip_endpoint> source;

  /// Listeners only: connections open at once; beyond it a new connection
  /// is accepted and closed at once, and counted in `tcp_stats::rejected`.
  size_t max_connections = 256;

  /// Listeners only: the `listen` backlog.
  int backlog = 128;

  /// Listeners only: an accepted connection reads nothing until its owner
  /// calls `read_tcp(conn, true, ...)`, so that the listener's owner can
  /// hand it to an actor of its own before a byte is delivered.
  bool start_paused = false;

  /// Checks every field.
  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

/// Options of the reactor itself.
struct reactor_config {
  /// `recvmmsg` calls per ready UDP socket per loop iteration before the
  /// loop serves other sockets (fairness; level-triggered epoll comes back).
  size_t max_batches_per_wakeup = 8;

  /// `accept` calls per ready listener per loop iteration.
  size_t max_accepts_per_wakeup = 64;

  /// The actor system of the sockets' owners, to run them on the loop's
  /// thread, as CAF 0.17's multiplexer runs its brokers: what the loop
  /// reads for an owner is then handled by the loop itself after that
  /// round's I/O, and so is what the owner sends on (and what that sends
  /// on), instead of each read waking a scheduler worker; on few cores
  /// that wake-up is the largest cost of a short request. Beyond
  /// `hosted_budget` per round, or `max_hosted` waiting jobs, work goes to
  /// the scheduler, so that a busy loop spreads it to the workers.
  /// Detached and blocking actors keep their own threads. Null: every
  /// owner runs on the scheduler (messages sent as `caf::anon_send`).
  caf::actor_system* host = nullptr;

  /// Only actors whose name (`caf::local_actor::name()`, a stateful
  /// actor's `State::name`) starts with it run on the loop's thread; the
  /// others (a host's handlers, which may block or compute for long) go
  /// to the scheduler, as CAF's multiplexer runs only brokers. Empty:
  /// every actor.
  std::string hosted_prefix = "mycorrizal.";

  /// Jobs (actors with messages) that may wait for the loop's thread;
  /// beyond it they go to the scheduler. 1..4096.
  size_t max_hosted = 1024;

  /// Messages an actor handles per turn on the loop's thread.
  size_t hosted_throughput = 64;

  /// Time the loop spends running actors between two looks at its
  /// sockets; what waits beyond it goes to the scheduler. Bounds what
  /// busy actors add to the latency of everything else the loop serves
  /// (one actor's turn is not cut short).
  std::chrono::microseconds hosted_budget{5000};

  /// Checks every field.
  /// @returns `errc::invalid_config` naming the bad field.
  expected<void> validate() const;
};

// -- results and counters -----------------------------------------------------

/// An open UDP socket, as `open_udp` reports it.
struct udp_socket {
  udp_socket_id id{};

  /// The bound address, with the real port when 0 was asked for.
  ip_endpoint local;

  /// `SO_RCVBUF` / `SO_SNDBUF` as the kernel granted them.
  size_t receive_buffer = 0;
  size_t send_buffer = 0;
};

/// One datagram for `send_udp_many`. `data` must stay valid for the call.
struct udp_send_item {
  ip_endpoint to;
  std::span<const std::byte> data;
};

/// An open TCP listener, as `listen_tcp` reports it.
struct tcp_listener {
  tcp_listener_id id{};

  /// The bound address, with the real port when 0 was asked for.
  ip_endpoint local;
};

/// How `close_tcp` ends a connection.
enum class close_mode : uint8_t {
  /// Write what is queued, then close (bounded by the deadline).
  flush,
  /// Close at once and discard queued bytes.
  abort,
};

/// UDP counters (one socket's, or the sum over a reactor's sockets).
struct udp_stats {
  /// Datagrams and payload bytes received (before fault injection; not
  /// counting truncated ones).
  uint64_t datagrams_in = 0;
  uint64_t bytes_in = 0;

  /// Datagrams and payload bytes the kernel accepted for sending.
  uint64_t datagrams_out = 0;
  uint64_t bytes_out = 0;

  /// `recvmmsg` failures other than `EAGAIN`.
  uint64_t receive_errors = 0;

  /// Failed sends (each datagram a failed call did not send counts once).
  uint64_t send_errors = 0;

  /// Datagrams dropped by `drop_every_nth` or `filter`.
  uint64_t fault_drops = 0;

  /// Datagrams held back and delivered late by `reorder_every_nth`.
  uint64_t fault_reorders = 0;

  /// Datagrams longer than `max_datagram_size`, dropped (`MSG_TRUNC`).
  uint64_t truncated = 0;

  /// Batches read and handed on (to `udp_options::demux`, and to the
  /// owner as `udp_batch` messages what it left).
  uint64_t batches = 0;
};

/// TCP counters of a reactor.
struct tcp_stats {
  uint64_t accepted = 0;
  /// Accepted and closed at once because of `max_connections`.
  uint64_t rejected = 0;
  uint64_t connects = 0;
  /// `connect_tcp` attempts that ended in `tcp_closed` before connecting.
  uint64_t connect_failures = 0;
  /// Connections closed by a connect timeout, deadline or idle timeout.
  uint64_t timeouts = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  /// `write_tcp` calls refused with `errc::queue_full`.
  uint64_t queue_full = 0;
  /// Connections closed by a socket error.
  uint64_t errors = 0;
};

/// Counters and gauges of a reactor, all read without locking.
struct reactor_stats {
  udp_stats udp;
  tcp_stats tcp;
  /// Currently open resources.
  uint64_t open_udp_sockets = 0;
  uint64_t open_tcp_listeners = 0;
  uint64_t open_tcp_connections = 0;
  /// Loop iterations (`epoll_wait` returns).
  uint64_t wakeups = 0;
};

// -- the reactor --------------------------------------------------------------

/// The node's I/O thread; see the namespace comment above.
class reactor {
public:
  // -- constructors, destructors, and assignment operators --------------------

  /// A stopped reactor; call `start()`. An invalid `cfg` makes `start()`
  /// fail with `errc::invalid_config`.
  explicit reactor(reactor_config cfg = {});

  /// Calls `stop()`.
  ~reactor();

  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  // -- lifecycle --------------------------------------------------------------

  /// Creates the epoll and eventfd descriptors and spawns the loop thread.
  /// Idempotent while running.
  /// @returns `errc::shutting_down` after `stop()`; `errc::invalid_config`
  ///          for a bad config; `errc::connection_lost` (with the system
  ///          error) when a descriptor or the thread cannot be created.
  expected<void> start();

  /// Stops the loop and joins it, reports `tcp_closed{shutting_down}` for
  /// every open connection and closes every socket. Idempotent; safe from
  /// any thread except the loop itself, concurrently too.
  void stop();

  /// Returns whether the loop runs.
  bool running() const noexcept;

  // -- UDP --------------------------------------------------------------------

  /// Opens a non-blocking UDP socket bound to `bind` (port 0: an ephemeral
  /// port), IPv4 or IPv6 by the address, whose datagrams go to `owner` as
  /// `udp_batch` messages.
  /// @returns the socket's id, bound address and granted buffer sizes;
  ///          `errc::invalid_config` for bad options or an invalid owner;
  ///          `errc::connection_lost` when a system call fails (the context
  ///          names it and the error, e.g. `"bind 127.0.0.1:7946: Address
  ///          already in use"`); `errc::shutting_down` after `stop()`.
  expected<udp_socket> open_udp(const ip_endpoint& bind,
                                const caf::actor& owner,
                                const udp_options& opts = {});

  /// Sends one datagram from socket `id` to `to`, on the caller's thread.
  /// @returns `errc::queue_full` when the socket buffer is full (`EAGAIN`,
  ///          `ENOBUFS`); `errc::too_large` for a datagram the socket cannot
  ///          send (`EMSGSIZE`); `errc::connection_lost` for an unknown or
  ///          closed socket, an address of the wrong family, or another
  ///          send error (context: `strerror`); `errc::shutting_down` after
  ///          `stop()`.
  expected<void> send_udp(udp_socket_id id, const ip_endpoint& to,
                          std::span<const std::byte> data);

  /// Sends `items` from socket `id` with `sendmmsg`, on the caller's thread.
  /// @returns how many items (a prefix) were sent, which is less than
  ///          `items.size()` when the kernel stopped early; the errors of
  ///          `send_udp` when not even the first item was sent.
  expected<size_t> send_udp_many(udp_socket_id id,
                                 std::span<const udp_send_item> items);

  /// Closes socket `id`: sends fail at once; the loop stops reading it and
  /// the descriptor closes once no send is running on it. Batches already
  /// sent to the owner still arrive.
  /// @returns `errc::connection_lost` for an unknown id;
  ///          `errc::shutting_down` after `stop()`.
  expected<void> close_udp(udp_socket_id id);

  /// Reads what socket `id` has received so far, hands it to the socket's
  /// owner, then sends `done` to the owner. The loop sends both, so the
  /// owner gets every datagram that waited in the socket when the loop ran
  /// this ahead of `done`: an owner that did not run for a while (a
  /// stopped process, a starved machine) looks at what others sent it
  /// meanwhile before it judges a timeout. At most 16 rounds of
  /// `max_batches_per_wakeup` batches are read first.
  /// `done` is sent once the loop took the request, also when the socket
  /// closed or the reactor stopped meanwhile.
  /// @returns `errc::connection_lost` for an unknown or closed socket;
  ///          `errc::shutting_down` when the loop does not run (before
  ///          `start()` or after `stop()`); then nothing is sent.
  expected<void> drain_udp(udp_socket_id id, caf::message done);

  // -- timers for the actors the loop runs
  // -------------------------------------

  /// For an actor that runs on this loop's thread (`reactor_config::host`),
  /// called there: sends `msg` to `to` at `when` (the steady clock), from
  /// the loop, so that it runs there too. The loop sleeps until the
  /// earliest such time with microsecond precision (`epoll_pwait2`): a
  /// deadline tens of microseconds away (QUIC's ACK delay, pacing) costs
  /// neither rounds of the loop spent polling nor a wake-up of CAF's clock
  /// thread. Holds `to` weakly: nothing is sent to an actor that is gone.
  /// What is pending when the loop ends goes to CAF's clock.
  /// @returns false, scheduling nothing, when called from any other thread
  ///          or when the loop does not host actors.
  bool wake_at(std::chrono::steady_clock::time_point when, const caf::actor& to,
               caf::message msg);

  /// True on the loop's thread while it hosts actors: where `wake_at`
  /// accepts a message (ask first to avoid building one it would refuse).
  bool on_loop_thread() const noexcept;

  // -- TCP --------------------------------------------------------------------

  /// Opens a listening TCP socket on `bind` (`SO_REUSEADDR`; port 0 picks
  /// one). Each accepted connection is reported to `owner` as
  /// `tcp_accepted`, then `tcp_received` / `tcp_eof` / `tcp_closed`; `opts`
  /// apply to each accepted connection.
  /// @returns the listener's id and bound address; the errors of
  ///          `open_udp`.
  expected<tcp_listener> listen_tcp(const ip_endpoint& bind,
                                    const caf::actor& owner,
                                    const tcp_options& opts = {});

  /// Closes listener `id`. Connections it accepted stay open.
  /// @returns `errc::connection_lost` for an unknown id;
  ///          `errc::shutting_down` after `stop()`.
  expected<void> close_tcp_listener(tcp_listener_id id);

  /// Starts connecting to `to` and returns the connection's id at once.
  /// Later `owner` receives `tcp_connected` or `tcp_closed`: refused →
  /// `errc::connection_lost` ("connection refused"), nothing within
  /// `timeout` → `errc::timeout`. Writes may be queued before the
  /// connection is up. `opts.deadline` bounds the whole exchange, counted
  /// from this call.
  /// @returns `errc::invalid_config` for bad options, an invalid owner or a
  ///          zero timeout; `errc::connection_lost` when the socket cannot
  ///          be created; `errc::shutting_down` after `stop()`.
  expected<tcp_conn_id>
  connect_tcp(const ip_endpoint& to, const caf::actor& owner,
              std::chrono::milliseconds timeout, const tcp_options& opts = {});

  /// Writes `data` on `conn`: on the caller's thread when nothing else is
  /// queued and the socket takes it all, else queued for the loop (what
  /// must wait is copied).
  /// @returns `errc::queue_full` when the connection's queue would exceed
  ///          `max_write_queue` (nothing is queued); `errc::connection_lost`
  ///          for an unknown or closed connection or one whose write side
  ///          is shut down; `errc::shutting_down` after `stop()`.
  expected<void> write_tcp(tcp_conn_id conn, std::span<const std::byte> data);

  /// Like the other overload, but takes the buffer instead of copying
  /// what must wait.
  expected<void> write_tcp(tcp_conn_id conn, std::vector<std::byte>&& data);

  /// Like the other overloads, for bytes in several buffers written in
  /// order as one write (one `sendmsg` when it goes directly); what must
  /// wait is copied.
  expected<void> write_tcp(tcp_conn_id conn,
                           std::span<const std::span<const std::byte>> parts);

  /// Shuts down the write side of `conn` (FIN) once the queued bytes are
  /// written; reading goes on. Later writes fail.
  /// @returns the errors of `close_tcp`.
  expected<void> shutdown_tcp_write(tcp_conn_id conn);

  /// Closes `conn`, after writing what is queued (`close_mode::flush`) or
  /// at once (`close_mode::abort`, which resets the connection). The owner
  /// gets `tcp_closed{none}` when it is done.
  /// @returns `errc::connection_lost` for an unknown or already closed
  ///          connection; `errc::shutting_down` after `stop()`.
  expected<void> close_tcp(tcp_conn_id conn,
                           close_mode mode = close_mode::flush);

  /// Pauses (`on` false) or resumes (`on` true) reading from `conn`. While
  /// paused the reactor reads nothing: the kernel's receive buffer fills
  /// and TCP's flow control stops the peer, so an owner that falls behind
  /// bounds what it holds (a Redis client pipelining faster than the node
  /// answers). Writing goes on. A peer that resets a paused connection
  /// ends it with `tcp_closed{connection_lost}`; a FIN is seen once
  /// reading resumes.
  ///
  /// With `new_owner`, every later event of `conn` goes to it (and the
  /// reactor closes `conn` when it dies), e.g. a listener's owner handing
  /// an accepted connection to an actor of its own: with
  /// `tcp_options::start_paused` nothing was delivered before, so the new
  /// owner gets the whole stream.
  /// @returns `errc::connection_lost` for an unknown or closed connection;
  ///          `errc::shutting_down` after `stop()`.
  expected<void> read_tcp(tcp_conn_id conn, bool on,
                          const caf::actor& new_owner = {});

  // -- observers --------------------------------------------------------------

  /// The counters of all sockets, including closed ones.
  reactor_stats stats() const noexcept;

  /// The counters of one open UDP socket.
  /// @returns `errc::connection_lost` for an unknown or closed socket.
  expected<udp_stats> stats(udp_socket_id id) const;

private:
  class impl;

  // Shared so that the functors attached to owner actors can hold a weak
  // reference that outlives neither the loop nor the reactor's sockets.
  std::shared_ptr<impl> impl_;
};

/// The largest UDP payload the kernel's route to `to` carries in one
/// unfragmented IP packet: the route's MTU (`IP_MTU` / `IPV6_MTU` of a
/// socket connected to `to`; no packet is sent) less the IP and UDP headers,
/// and at most what one IP packet can hold. For a loopback peer this is the
/// whole path; for any other peer only the first hop.
/// @returns `errc::connection_lost` naming the system call when the kernel
/// has no route to `to`.
expected<size_t> max_udp_payload_to(const ip_endpoint& to);

} // namespace mycorrizal::net
