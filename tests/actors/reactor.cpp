// SPDX-License-Identifier: Apache-2.0
// Tests for mycorrizal/reactor.hpp: real sockets on 127.0.0.1, a real
// caf::actor_system, owner actors that record what the reactor sends them.
#include "mycorrizal/net/reactor.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/net/events.hpp"
#include "mycorrizal/runtime/send.hpp"

#include "support/eventually.hpp"

#include <caf/all.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

namespace net = mycorrizal::net;
using mycorrizal::errc;
using mycorrizal::ip_endpoint;

namespace {

// -- helpers ------------------------------------------------------------------

using bytes = std::vector<std::byte>;

bytes text(std::string_view str) {
  bytes result;
  for (auto c : str) {
    result.push_back(static_cast<std::byte>(c));
  }
  return result;
}

std::string as_text(const bytes& xs) {
  std::string result;
  for (auto b : xs) {
    result.push_back(static_cast<char>(b));
  }
  return result;
}

/// A payload of `size` bytes whose first 4 bytes carry `seq` (when it fits)
/// and whose other bytes follow a pattern derived from `seq`.
bytes seq_payload(uint32_t seq, size_t size) {
  bytes result(size);
  for (size_t i = 0; i < size; ++i) {
    result[i] = static_cast<std::byte>((size_t{seq} * 31 + i * 7) & 0xff);
  }
  for (size_t i = 0; i < 4 && i < size; ++i) {
    result[i] = static_cast<std::byte>((seq >> (8 * i)) & 0xff);
  }
  return result;
}

uint32_t seq_of(const bytes& xs) {
  uint32_t result = 0;
  for (size_t i = 0; i < 4 && i < xs.size(); ++i) {
    result |= static_cast<uint32_t>(xs[i]) << (8 * i);
  }
  return result;
}

ip_endpoint localhost(uint16_t port = 0) {
  return ip_endpoint::v4(127, 0, 0, 1, port);
}

size_t count_dir(const char* path) {
  size_t n = 0;
  for ([[maybe_unused]] auto& entry :
       std::filesystem::directory_iterator{path}) {
    ++n;
  }
  return n;
}

size_t open_fds() {
  return count_dir("/proc/self/fd");
}

size_t thread_count() {
  return count_dir("/proc/self/task");
}

bool has_thread_named(std::string_view name) {
  for (auto& entry : std::filesystem::directory_iterator{"/proc/self/task"}) {
    std::ifstream in{entry.path() / "comm"};
    std::string comm;
    std::getline(in, comm);
    if (comm == name) {
      return true;
    }
  }
  return false;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  return mycorrizal::test::eventually(pred, timeout);
}

// -- raw sockets the reactor does not own -------------------------------------

/// A plain blocking socket for the peer side of a test.
class raw_socket {
public:
  raw_socket() : fd_(-1) {
    // nop
  }

  explicit raw_socket(int type)
      : fd_(::socket(AF_INET, type | SOCK_CLOEXEC, 0)) {
    // nop
  }

  raw_socket(raw_socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
    // nop
  }

  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;
  raw_socket& operator=(raw_socket&&) = delete;

  ~raw_socket() {
    close();
  }

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  /// Takes ownership of `fd` (closing what it held).
  void adopt(int fd) {
    close();
    fd_ = fd;
  }

  int fd() const {
    return fd_;
  }

  /// Binds to 127.0.0.1:0 and returns the port.
  uint16_t bind_localhost() {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      return 0;
    }
    socklen_t len = sizeof(sa);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    return ntohs(sa.sin_port);
  }

  bool connect_localhost(uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  }

private:
  int fd_;
};

/// A TCP port on 127.0.0.1 whose listener never accepts and whose accept
/// queue is full (backlog 0 plus one established connection), so the kernel
/// drops further SYNs: a connect to it neither succeeds nor fails.
struct blackhole {
  raw_socket listener{SOCK_STREAM};
  raw_socket filler{SOCK_STREAM};
  uint16_t port = 0;

  blackhole() {
    port = listener.bind_localhost();
    ::listen(listener.fd(), 0);
    filler.connect_localhost(port);
  }
};

// -- the recording owner ------------------------------------------------------

using tcp_event
  = std::variant<net::tcp_accepted, net::tcp_connected, net::tcp_received,
                 net::tcp_eof, net::tcp_closed>;

std::string describe(const tcp_event& x) {
  return std::visit(
    [](const auto& ev) -> std::string {
      using type = std::decay_t<decltype(ev)>;
      if constexpr (std::is_same_v<type, net::tcp_accepted>) {
        return fmt::format("accepted({}, {}, {})", to_string(ev.listener),
                           to_string(ev.conn), to_string(ev.peer));
      } else if constexpr (std::is_same_v<type, net::tcp_connected>) {
        return fmt::format("connected({}, {})", to_string(ev.conn),
                           to_string(ev.peer));
      } else if constexpr (std::is_same_v<type, net::tcp_received>) {
        return fmt::format("received({}, \"{}\")", to_string(ev.conn),
                           as_text(ev.data));
      } else if constexpr (std::is_same_v<type, net::tcp_eof>) {
        return fmt::format("eof({})", to_string(ev.conn));
      } else {
        return fmt::format("closed({}, {})", to_string(ev.conn),
                           ev.reason ? to_string(ev.reason)
                                     : std::string{"none"});
      }
    },
    x);
}

/// What one owner actor received, readable from the test thread.
class event_log {
public:
  void add(net::udp_batch&& x) {
    std::lock_guard guard{mtx_};
    batch_sizes_.push_back(x.datagrams.size());
    for (auto& d : x.datagrams) {
      datagrams_.push_back(std::move(d));
    }
    cv_.notify_all();
  }

  void add(tcp_event&& x) {
    std::lock_guard guard{mtx_};
    tcp_.push_back(std::move(x));
    cv_.notify_all();
  }

  /// Notes how many datagrams had arrived when a mark arrived.
  void mark() {
    std::lock_guard guard{mtx_};
    marks_.push_back(datagrams_.size());
    cv_.notify_all();
  }

  /// Waits for the first mark; returns the datagram count it saw.
  std::optional<size_t> wait_mark(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock guard{mtx_};
    if (!cv_.wait_for(guard, timeout, [this] {
          return !marks_.empty();
        })) {
      return std::nullopt;
    }
    return marks_.front();
  }

  /// Waits until `pred(datagrams, tcp_events)` holds.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, timeout, [&] {
      return pred(datagrams_, tcp_);
    });
  }

  bool wait_datagrams(size_t n, std::chrono::milliseconds timeout = 10s) {
    return wait(
      [n](const auto& ds, const auto&) {
        return ds.size() >= n;
      },
      timeout);
  }

  /// Waits for a TCP event of type `T` (for `conn`, if given).
  template <class T>
  std::optional<T> wait_for(std::optional<net::tcp_conn_id> conn = {},
                            std::chrono::milliseconds timeout = 10s) {
    std::optional<T> result;
    wait(
      [&](const auto&, const auto& evs) {
        for (auto& ev : evs) {
          if (auto* x = std::get_if<T>(&ev)) {
            if (!conn || x->conn == *conn) {
              result = *x;
              return true;
            }
          }
        }
        return false;
      },
      timeout);
    return result;
  }

  /// All bytes received on `conn` so far.
  std::string received_text(net::tcp_conn_id conn) {
    std::lock_guard guard{mtx_};
    std::string result;
    for (auto& ev : tcp_) {
      if (auto* x = std::get_if<net::tcp_received>(&ev); x && x->conn == conn) {
        result += as_text(x->data);
      }
    }
    return result;
  }

  std::vector<net::udp_datagram> datagrams() {
    std::lock_guard guard{mtx_};
    return datagrams_;
  }

  size_t datagram_count() {
    std::lock_guard guard{mtx_};
    return datagrams_.size();
  }

  std::vector<size_t> batch_sizes() {
    std::lock_guard guard{mtx_};
    return batch_sizes_;
  }

  std::vector<tcp_event> tcp_events() {
    std::lock_guard guard{mtx_};
    return tcp_;
  }

  /// Everything seen, for failure messages.
  std::string describe_all() {
    std::lock_guard guard{mtx_};
    std::string result = fmt::format("{} datagram(s) in {} batch(es)",
                                     datagrams_.size(), batch_sizes_.size());
    if (!datagrams_.empty()) {
      result += ", seqs:";
      size_t shown = 0;
      for (auto& d : datagrams_) {
        if (++shown > 40) {
          result += " ...";
          break;
        }
        result += fmt::format(" {}", seq_of(d.data));
      }
    }
    result += fmt::format("; {} tcp event(s):", tcp_.size());
    for (auto& ev : tcp_) {
      result += " " + describe(ev);
    }
    return result;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<net::udp_datagram> datagrams_;
  std::vector<size_t> batch_sizes_;
  std::vector<tcp_event> tcp_;
  std::vector<size_t> marks_;
};

using mark_atom = caf::atom_constant<caf::atom("mark")>;

/// An owner that records everything into `log`.
caf::behavior recorder(caf::event_based_actor*,
                       const std::shared_ptr<event_log>& log) {
  return {
    [log](net::udp_batch& x) {
      log->add(std::move(x));
    },
    [log](net::tcp_accepted& x) {
      log->add(tcp_event{x});
    },
    [log](net::tcp_connected& x) {
      log->add(tcp_event{x});
    },
    [log](net::tcp_received& x) {
      log->add(tcp_event{std::move(x)});
    },
    [log](net::tcp_eof& x) {
      log->add(tcp_event{x});
    },
    [log](net::tcp_closed& x) {
      log->add(tcp_event{std::move(x)});
    },
    [log](mark_atom) {
      log->mark();
    },
  };
}

/// An owner that sends every datagram back to its sender.
caf::behavior udp_echo(caf::event_based_actor*, net::reactor* r) {
  return {
    [r](net::udp_batch& x) {
      for (auto& d : x.datagrams) {
        auto ok = r->send_udp(x.socket, d.from, d.data);
        static_cast<void>(ok);
      }
    },
  };
}

/// An owner that only counts datagrams (throughput runs).
struct udp_count {
  std::atomic<uint64_t> datagrams{0};
  std::atomic<uint64_t> batches{0};
};

caf::behavior udp_counter(caf::event_based_actor*,
                          const std::shared_ptr<udp_count>& count) {
  return {
    [count](net::udp_batch& x) {
      count->batches.fetch_add(1);
      count->datagrams.fetch_add(x.datagrams.size());
    },
  };
}

// -- fixture ------------------------------------------------------------------

class reactor_fixture : public testing::Test {
protected:
  reactor_fixture() {
    cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }

  reactor_fixture(const reactor_fixture&) = delete;
  reactor_fixture& operator=(const reactor_fixture&) = delete;

  ~reactor_fixture() override {
    // Stop the reactors first: they hold the owners, and ~actor_system waits
    // for every actor (PLATFORM.md §2.7).
    for (auto& r : reactors_) {
      r->stop();
    }
    reactors_.clear();
    for (auto& a : spawned_) {
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
    spawned_.clear();
    sys_.reset();
  }

  std::shared_ptr<net::reactor> make_reactor(bool start = true) {
    auto r = std::make_shared<net::reactor>();
    if (start) {
      auto ok = r->start();
      EXPECT_TRUE(ok.has_value());
    }
    reactors_.push_back(r);
    return r;
  }

  /// Spawns a recording owner; returns its handle and log.
  std::pair<caf::actor, std::shared_ptr<event_log>> make_owner() {
    auto log = std::make_shared<event_log>();
    auto a = sys_->spawn(recorder, log);
    spawned_.push_back(a);
    return {a, log};
  }

  template <class... Ts>
  caf::actor spawn(Ts&&... xs) {
    auto a = sys_->spawn(std::forward<Ts>(xs)...);
    spawned_.push_back(a);
    return a;
  }

  /// Kills `a` and waits until it is gone.
  void kill_and_wait(const caf::actor& a) {
    caf::scoped_actor self{*sys_};
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::kill);
    bool down = false;
    self->receive(
      [&](const caf::down_msg&) {
        down = true;
      },
      caf::after(10s) >> [] {});
    ASSERT_TRUE(down) << "owner did not terminate";
  }

  /// Sends `count` datagrams of `size` bytes (sequence numbers 0..count-1)
  /// from `from` to `to`, at most `window` ahead of what `delivered()`
  /// reports, so that loopback never overflows the receive buffer.
  template <class Delivered>
  void send_windowed(net::reactor& r, net::udp_socket_id from,
                     const ip_endpoint& to, uint32_t count, size_t size,
                     Delivered delivered, uint32_t window = 2048) {
    constexpr uint32_t chunk = 256;
    std::vector<bytes> payloads;
    std::vector<net::udp_send_item> items;
    uint32_t next = 0;
    while (next < count) {
      ASSERT_TRUE(eventually([&] {
        return next < delivered() + window;
      }))
        << "receiver stalled at " << delivered() << " of " << next;
      auto n = std::min(chunk, count - next);
      payloads.clear();
      items.clear();
      for (uint32_t i = 0; i < n; ++i) {
        payloads.push_back(seq_payload(next + i, size));
      }
      for (auto& p : payloads) {
        items.push_back(net::udp_send_item{to, p});
      }
      size_t sent = 0;
      while (sent < items.size()) {
        auto res = r.send_udp_many(
          from, std::span{items}.subspan(sent, items.size() - sent));
        if (!res) {
          ASSERT_EQ(res.error().code(), errc::queue_full)
            << to_string(res.error());
          std::this_thread::yield();
          continue;
        }
        sent += *res;
      }
      next += n;
    }
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::vector<std::shared_ptr<net::reactor>> reactors_;
  std::vector<caf::actor> spawned_;
};

// -- UDP ----------------------------------------------------------------------

class reactor_udp : public reactor_fixture {
protected:
  /// 300 datagrams sent with GSO and received with GRO (dropping every
  /// `drop`-th when not 0) arrive intact and in order.
  void gso_and_gro_round_trip(uint32_t drop);
};

TEST_F(reactor_udp, echo_between_two_reactors) {
  auto ra = make_reactor();
  auto rb = make_reactor();
  auto [owner, log] = make_owner();
  auto echo = spawn(udp_echo, rb.get());
  auto sa = ra->open_udp(localhost(), owner);
  auto sb = rb->open_udp(localhost(), echo);
  ASSERT_TRUE(sa.has_value()) << to_string(sa.error());
  ASSERT_TRUE(sb.has_value()) << to_string(sb.error());
  EXPECT_NE(sa->local.port(), 0);
  EXPECT_EQ(sa->local.address_string(), "127.0.0.1");
  EXPECT_GT(sa->receive_buffer, size_t{200'000}) << "SO_RCVBUF not raised";
  EXPECT_GT(sa->send_buffer, size_t{200'000}) << "SO_SNDBUF not raised";
  ASSERT_TRUE(ra->send_udp(sa->id, sb->local, text("hello")).has_value());
  ASSERT_TRUE(log->wait_datagrams(1)) << log->describe_all();
  auto ds = log->datagrams();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(as_text(ds[0].data), "hello");
  EXPECT_EQ(ds[0].from, sb->local);
  auto a = ra->stats();
  auto b = rb->stats();
  EXPECT_EQ(a.udp.datagrams_out, 1u);
  EXPECT_EQ(a.udp.bytes_out, 5u);
  EXPECT_EQ(a.udp.datagrams_in, 1u);
  EXPECT_EQ(b.udp.datagrams_in, 1u);
  EXPECT_EQ(b.udp.datagrams_out, 1u);
  EXPECT_EQ(a.open_udp_sockets, 1u);
  auto per_socket = ra->stats(sa->id);
  ASSERT_TRUE(per_socket.has_value());
  EXPECT_EQ(per_socket->datagrams_in, 1u);
  EXPECT_EQ(per_socket->batches, 1u);
}

TEST_F(reactor_udp, ten_thousand_datagrams_arrive_in_batches) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  auto rx = r->open_udp(localhost(), owner);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  constexpr uint32_t n = 10'000;
  auto start = std::chrono::steady_clock::now();
  send_windowed(*r, tx->id, rx->local, n, 100, [l = log] {
    return l->datagram_count();
  });
  ASSERT_TRUE(log->wait_datagrams(n)) << log->describe_all();
  auto elapsed = std::chrono::steady_clock::now() - start;
  auto ds = log->datagrams();
  ASSERT_EQ(ds.size(), n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSERT_EQ(seq_of(ds[i].data), i) << "at index " << i;
    ASSERT_EQ(ds[i].data, seq_payload(i, 100)) << "at index " << i;
    ASSERT_EQ(ds[i].from, tx->local);
  }
  auto sizes = log->batch_sizes();
  auto largest = *std::max_element(sizes.begin(), sizes.end());
  EXPECT_GT(largest, 1u) << "no batching seen";
  EXPECT_LE(largest, 32u);
  auto st = r->stats(rx->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->datagrams_in, n);
  EXPECT_EQ(st->bytes_in, uint64_t{n} * 100);
  EXPECT_EQ(st->batches, sizes.size());
  EXPECT_EQ(st->receive_errors, 0u);
  EXPECT_EQ(st->truncated, 0u);
  auto tx_st = r->stats(tx->id);
  ASSERT_TRUE(tx_st.has_value());
  EXPECT_EQ(tx_st->datagrams_out, n);
  auto secs = std::chrono::duration<double>(elapsed).count();
  std::cout << fmt::format("[ info ] {} datagrams in {} batches (largest {}), "
                           "{:.0f} datagrams/s\n",
                           n, sizes.size(), largest, n / secs);
}

TEST_F(reactor_udp, drain_hands_over_what_waited_before_the_reply) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto rx = r->open_udp(localhost(), owner);
  ASSERT_TRUE(rx.has_value()) << to_string(rx.error());
  // More than one wakeup reads (8 batches of 32): without the drain, the
  // reply would overtake most of them. Sized to fit the receive buffer
  // (a small datagram costs about 1 KiB of it).
  auto n = std::min<size_t>(1500, rx->receive_buffer / 2048);
  ASSERT_GT(n, size_t{600}) << "receive buffer " << rx->receive_buffer;
  raw_socket tx{SOCK_DGRAM};
  ASSERT_NE(tx.bind_localhost(), 0);
  ASSERT_TRUE(tx.connect_localhost(rx->local.port()));
  for (size_t i = 0; i < n; ++i) {
    auto p = seq_payload(static_cast<uint32_t>(i), 64);
    ASSERT_EQ(::send(tx.fd(), p.data(), p.size(), 0), 64) << "at " << i;
  }
  ASSERT_TRUE(
    r->drain_udp(rx->id, caf::make_message(mark_atom::value)).has_value());
  auto seen = log->wait_mark();
  ASSERT_TRUE(seen.has_value()) << "no reply; " << log->describe_all();
  EXPECT_EQ(*seen, n) << log->describe_all();
  auto st = r->stats(rx->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->datagrams_in, n) << "datagrams lost in the kernel";
}

/// Takes the datagrams with an even sequence number and sends them, as a
/// batch of their own, to `to`.
class even_taker final : public net::udp_demux {
public:
  explicit even_taker(caf::actor to) : to_(std::move(to)) {
    // nop
  }

  void take(net::udp_batch& batch, caf::execution_unit* host) override {
    net::udp_batch mine;
    mine.socket = batch.socket;
    auto& ds = batch.datagrams;
    auto odd = std::stable_partition(ds.begin(), ds.end(), [](const auto& d) {
      return seq_of(d.data) % 2 == 0;
    });
    std::move(ds.begin(), odd, std::back_inserter(mine.datagrams));
    ds.erase(ds.begin(), odd);
    if (!mine.datagrams.empty()) {
      mycorrizal::send_hosted(host, to_, std::move(mine));
    }
  }

private:
  caf::actor to_;
};

TEST_F(reactor_udp, a_demux_takes_its_datagrams_and_the_owner_gets_the_rest) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [taker, taken] = make_owner();
  net::udp_options opts;
  opts.demux = std::make_shared<even_taker>(taker);
  auto rx = r->open_udp(localhost(), owner, opts);
  ASSERT_TRUE(rx.has_value()) << to_string(rx.error());
  raw_socket tx{SOCK_DGRAM};
  ASSERT_NE(tx.bind_localhost(), 0);
  ASSERT_TRUE(tx.connect_localhost(rx->local.port()));
  constexpr uint32_t n = 600;
  for (uint32_t i = 0; i < n; ++i) {
    auto p = seq_payload(i, 64);
    ASSERT_EQ(::send(tx.fd(), p.data(), p.size(), 0), 64) << "at " << i;
  }
  ASSERT_TRUE(eventually([&] {
    return log->datagrams().size() + taken->datagrams().size() >= n;
  }))
    << "owner " << log->datagrams().size() << ", demux "
    << taken->datagrams().size() << " of " << n;
  // Each in order, each with its own half.
  auto check = [&](const std::shared_ptr<event_log>& l, uint32_t first) {
    auto ds = l->datagrams();
    ASSERT_EQ(ds.size(), n / 2);
    for (uint32_t i = 0; i < n / 2; ++i) {
      ASSERT_EQ(seq_of(ds[i].data), first + 2 * i) << "at index " << i;
    }
  };
  check(taken, 0);
  check(log, 1);
  auto st = r->stats(rx->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->datagrams_in, n);
}

TEST_F(reactor_udp, drain_errors) {
  auto idle = make_reactor(false);
  auto [owner, log] = make_owner();
  auto s = idle->open_udp(localhost(), owner);
  ASSERT_TRUE(s.has_value()) << to_string(s.error());
  auto not_running = idle->drain_udp(s->id,
                                     caf::make_message(mark_atom::value));
  ASSERT_FALSE(not_running.has_value());
  EXPECT_EQ(not_running.error().code(), errc::shutting_down);
  auto r = make_reactor();
  auto unknown = r->drain_udp(s->id, caf::make_message(mark_atom::value));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code(), errc::connection_lost)
    << to_string(unknown.error());
  auto t = r->open_udp(localhost(), owner);
  ASSERT_TRUE(t.has_value());
  ASSERT_TRUE(r->close_udp(t->id).has_value());
  auto closed = r->drain_udp(t->id, caf::make_message(mark_atom::value));
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code(), errc::connection_lost);
  r->stop();
  auto stopped = r->drain_udp(t->id, caf::make_message(mark_atom::value));
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error().code(), errc::shutting_down);
  EXPECT_FALSE(log->wait_mark(50ms).has_value()) << "a refused drain replied";
}

TEST_F(reactor_udp, datagram_sizes_from_0_to_65507) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  auto rx = r->open_udp(localhost(), owner);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  std::vector<size_t> sizes{0,    1,    2,     3,     4,     5,     7,    8,
                            100,  512,  1199,  1200,  1452,  1472,  1500, 4096,
                            8192, 9000, 16384, 32768, 65000, 65506, 65507};
  for (size_t s = 1; s <= 65507; s += 4099) {
    sizes.push_back(s);
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto payload = seq_payload(static_cast<uint32_t>(i), sizes[i]);
    auto ok = r->send_udp(tx->id, rx->local, payload);
    ASSERT_TRUE(ok.has_value()) << sizes[i] << ": " << to_string(ok.error());
    // One at a time: keeps the receive buffer far from full.
    ASSERT_TRUE(log->wait_datagrams(i + 1)) << log->describe_all();
  }
  auto ds = log->datagrams();
  ASSERT_EQ(ds.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto expected = seq_payload(static_cast<uint32_t>(i), sizes[i]);
    EXPECT_EQ(ds[i].data.size(), sizes[i]);
    EXPECT_TRUE(ds[i].data == expected) << "size " << sizes[i];
  }
  // Beyond the IPv4 maximum.
  auto too_big = r->send_udp(tx->id, rx->local, bytes(65508));
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code(), errc::too_large)
    << to_string(too_big.error());
  auto st = r->stats(tx->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->send_errors, 1u);
}

TEST(reactor_route, max_udp_payload_to_a_loopback_peer_follows_lo_mtu) {
  // The interface's MTU as sysfs reports it, independent of IP_MTU.
  std::ifstream in{"/sys/class/net/lo/mtu"};
  size_t mtu = 0;
  ASSERT_TRUE(in >> mtu) << "no /sys/class/net/lo/mtu";
  auto v4 = net::max_udp_payload_to(ip_endpoint::v4(127, 0, 0, 9, 7000));
  ASSERT_TRUE(v4) << to_string(v4.error());
  EXPECT_EQ(*v4, std::min<size_t>(mtu - 28, 65'507)) << "lo mtu " << mtu;
  if (auto v6 = net::max_udp_payload_to(*ip_endpoint::parse("[::1]:7000"))) {
    EXPECT_EQ(*v6, std::min<size_t>(mtu - 48, 65'527)) << "lo mtu " << mtu;
  } else {
    std::printf("no IPv6 loopback route here: %s\n",
                to_string(v6.error()).c_str());
  }
}

TEST_F(reactor_udp, a_datagram_of_the_route_payload_leaves_one_more_does_not) {
  auto limit = net::max_udp_payload_to(ip_endpoint::v4(127, 0, 0, 1, 9));
  ASSERT_TRUE(limit) << to_string(limit.error());
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  auto rx = r->open_udp(localhost(), owner);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  auto ok = r->send_udp(tx->id, rx->local, bytes(*limit));
  EXPECT_TRUE(ok.has_value()) << *limit << ": " << to_string(ok.error());
  ASSERT_TRUE(log->wait_datagrams(1)) << log->describe_all();
  EXPECT_EQ(log->datagrams()[0].data.size(), *limit);
  EXPECT_FALSE(r->send_udp(tx->id, rx->local, bytes(*limit + 1)).has_value());
}

TEST_F(reactor_udp, longer_datagrams_are_counted_as_truncated) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  net::udp_options opts;
  opts.max_datagram_size = 1000;
  auto rx = r->open_udp(localhost(), owner, opts);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  ASSERT_TRUE(r->send_udp(tx->id, rx->local, seq_payload(1, 2000)));
  ASSERT_TRUE(r->send_udp(tx->id, rx->local, seq_payload(2, 1000)));
  ASSERT_TRUE(log->wait_datagrams(1)) << log->describe_all();
  ASSERT_TRUE(eventually([&] {
    return r->stats().udp.truncated == 1;
  }));
  auto ds = log->datagrams();
  ASSERT_EQ(ds.size(), 1u) << log->describe_all();
  EXPECT_EQ(seq_of(ds[0].data), 2u);
  EXPECT_EQ(ds[0].data.size(), 1000u);
}

TEST_F(reactor_udp, drop_every_20th_drops_exactly_those) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  net::udp_options opts;
  opts.drop_every_nth = 20;
  auto rx = r->open_udp(localhost(), owner, opts);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  constexpr uint32_t n = 1000;
  send_windowed(*r, tx->id, rx->local, n, 64, [rr = r, id = rx->id] {
    return static_cast<size_t>(rr->stats(id)->datagrams_in);
  });
  ASSERT_TRUE(log->wait_datagrams(n - n / 20)) << log->describe_all();
  auto ds = log->datagrams();
  ASSERT_EQ(ds.size(), n - n / 20);
  std::vector<uint32_t> expected;
  for (uint32_t i = 0; i < n; ++i) {
    if ((i + 1) % 20 != 0) {
      expected.push_back(i);
    }
  }
  std::vector<uint32_t> seen;
  seen.reserve(ds.size());
  for (auto& d : ds) {
    seen.push_back(seq_of(d.data));
  }
  EXPECT_EQ(seen, expected);
  auto st = r->stats(rx->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->fault_drops, n / 20);
  EXPECT_EQ(st->datagrams_in, n);
}

// GSO sends runs of back-to-back datagrams as one send, GRO receives
// coalesced ones: the owner must still see each datagram, intact, in order,
// with fault injection per datagram.
void reactor_udp::gso_and_gro_round_trip(uint32_t drop) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  net::udp_options rx_opts;
  rx_opts.gro = true;
  rx_opts.drop_every_nth = drop;
  net::udp_options tx_opts;
  tx_opts.gso = true;
  auto rx = r->open_udp(localhost(), owner, rx_opts);
  auto tx = r->open_udp(localhost(), sink, tx_opts);
  ASSERT_TRUE(rx && tx);
  // 300 datagrams of 1452 bytes back to back (a run ends with a shorter
  // one every 40), sent in windows so the receive buffer never overflows.
  constexpr uint32_t n = 300;
  constexpr size_t size = 1452;
  std::vector<std::byte> buf;
  std::vector<size_t> sizes;
  for (uint32_t i = 0; i < n; ++i) {
    auto len = (i % 40 == 39) ? size_t{700} : size;
    auto p = seq_payload(i, len);
    buf.insert(buf.end(), p.begin(), p.end());
    sizes.push_back(len);
  }
  std::vector<net::udp_send_item> items;
  size_t off = 0;
  for (uint32_t i = 0; i < n; ++i) {
    items.push_back(
      {rx->local, std::span<const std::byte>{buf}.subspan(off, sizes[i])});
    off += sizes[i];
  }
  size_t sent = 0;
  while (sent < items.size()) {
    auto window = std::min<size_t>(60, items.size() - sent);
    auto k = r->send_udp_many(
      tx->id, std::span<const net::udp_send_item>{items}.subspan(sent, window));
    ASSERT_TRUE(k) << to_string(k.error());
    sent += *k;
    ASSERT_TRUE(eventually([&] {
      return r->stats(rx->id)->datagrams_in >= sent;
    }))
      << "received " << r->stats(rx->id)->datagrams_in << " of " << sent;
  }
  // Coalesced datagrams arrive as one entry with `segment` set.
  auto flat = [&] {
    std::vector<bytes> out;
    for (auto& d : log->datagrams()) {
      net::for_each_datagram(d, [&](std::span<const std::byte> piece) {
        out.emplace_back(piece.begin(), piece.end());
      });
    }
    return out;
  };
  auto dropped = drop == 0 ? 0 : n / drop;
  ASSERT_TRUE(eventually([&] {
    return flat().size() == n - dropped;
  }))
    << "got " << flat().size() << " of " << n - dropped;
  auto ds = flat();
  size_t k = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (drop != 0 && (i + 1) % drop == 0) {
      continue;
    }
    ASSERT_EQ(seq_of(ds[k]), i) << "at " << k;
    ASSERT_EQ(ds[k], seq_payload(i, sizes[i])) << "datagram " << i;
    ++k;
  }
  auto tx_stats = r->stats(tx->id);
  ASSERT_TRUE(tx_stats.has_value());
  EXPECT_EQ(tx_stats->datagrams_out, n);
  EXPECT_EQ(tx_stats->bytes_out, buf.size());
  EXPECT_EQ(r->stats(rx->id)->fault_drops, dropped);
  EXPECT_EQ(r->stats(rx->id)->datagrams_in, n);
  if (drop == 0) {
    // GSO runs reach a GRO socket on loopback in one piece.
    auto all = log->datagrams();
    auto coalesced = std::count_if(all.begin(), all.end(), [](const auto& d) {
      return d.segment != 0;
    });
    EXPECT_GT(coalesced, 0) << "no coalesced datagram among " << all.size();
  }
}

TEST_F(reactor_udp, gso_and_gro_keep_every_datagram_intact_and_in_order) {
  gso_and_gro_round_trip(0);
}

TEST_F(reactor_udp, gro_with_fault_injection_drops_single_datagrams) {
  gso_and_gro_round_trip(50);
}

TEST_F(reactor_udp, reorder_every_3rd_swaps_with_the_next) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  net::udp_options opts;
  opts.reorder_every_nth = 3;
  opts.reorder_max_hold = 100ms;
  auto rx = r->open_udp(localhost(), owner, opts);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  // The 12th datagram has no successor: the hold timer releases it.
  auto start = std::chrono::steady_clock::now();
  send_windowed(*r, tx->id, rx->local, 12, 16, [l = log] {
    return l->datagram_count();
  });
  ASSERT_TRUE(log->wait_datagrams(12)) << log->describe_all();
  auto elapsed = std::chrono::steady_clock::now() - start;
  std::vector<uint32_t> seen;
  for (auto& d : log->datagrams()) {
    seen.push_back(seq_of(d.data));
  }
  std::vector<uint32_t> expected{0, 1, 3, 2, 4, 6, 5, 7, 9, 8, 10, 11};
  EXPECT_EQ(seen, expected) << log->describe_all();
  EXPECT_GE(elapsed, 100ms) << "the last datagram was not held";
  auto st = r->stats(rx->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->fault_reorders, 3u);
}

TEST_F(reactor_udp, sending_to_a_closed_port_does_not_break_the_socket) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto echo = spawn(udp_echo, r.get());
  auto sock = r->open_udp(localhost(), owner);
  auto peer = r->open_udp(localhost(), echo);
  ASSERT_TRUE(sock && peer);
  uint16_t closed_port = 0;
  {
    raw_socket probe{SOCK_DGRAM};
    closed_port = probe.bind_localhost();
  }
  ASSERT_NE(closed_port, 0);
  for (uint32_t i = 0; i < 10; ++i) {
    auto ok = r->send_udp(sock->id, localhost(closed_port), seq_payload(i, 8));
    EXPECT_TRUE(ok.has_value()) << to_string(ok.error());
  }
  ASSERT_TRUE(r->send_udp(sock->id, peer->local, seq_payload(42, 8)));
  ASSERT_TRUE(log->wait_datagrams(1)) << log->describe_all();
  EXPECT_EQ(seq_of(log->datagrams()[0].data), 42u);
  auto st = r->stats(sock->id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->receive_errors, 0u);
  EXPECT_EQ(st->send_errors, 0u);
}

TEST_F(reactor_udp, ipv6_loopback) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto any6 = ip_endpoint::parse("[::1]:0");
  ASSERT_TRUE(any6.has_value());
  auto sock = r->open_udp(*any6, owner);
  if (!sock) {
    GTEST_SKIP() << "no IPv6 loopback: " << to_string(sock.error());
  }
  EXPECT_FALSE(sock->local.is_v4());
  EXPECT_NE(sock->local.port(), 0);
  ASSERT_TRUE(r->send_udp(sock->id, sock->local, text("six")));
  ASSERT_TRUE(log->wait_datagrams(1)) << log->describe_all();
  auto ds = log->datagrams();
  EXPECT_EQ(as_text(ds[0].data), "six");
  EXPECT_EQ(ds[0].from, sock->local);
}

TEST_F(reactor_udp, errors_of_the_send_path) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto sock = r->open_udp(localhost(), owner);
  ASSERT_TRUE(sock.has_value());
  // IPv6 destination from an IPv4 socket.
  auto v6 = ip_endpoint::parse("[::1]:9");
  ASSERT_TRUE(v6.has_value());
  auto wrong = r->send_udp(sock->id, *v6, text("x"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), errc::connection_lost);
  // A closed socket.
  ASSERT_TRUE(r->close_udp(sock->id).has_value());
  auto closed = r->send_udp(sock->id, localhost(9), text("x"));
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code(), errc::connection_lost)
    << to_string(closed.error());
  EXPECT_FALSE(r->close_udp(sock->id).has_value());
  EXPECT_FALSE(r->stats(sock->id).has_value());
  EXPECT_TRUE(eventually([&] {
    return r->stats().open_udp_sockets == 0;
  }));
  // Binding a port in use.
  auto a = r->open_udp(localhost(), owner);
  ASSERT_TRUE(a.has_value());
  auto b = r->open_udp(a->local, owner);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code(), errc::connection_lost);
  EXPECT_NE(b.error().context().find("bind"), std::string::npos)
    << to_string(b.error());
  // Bad options.
  net::udp_options bad;
  bad.batch_size = 0;
  auto c = r->open_udp(localhost(), owner, bad);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), errc::invalid_config);
  auto d = r->open_udp(localhost(), caf::actor{});
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), errc::invalid_config);
}

TEST_F(reactor_udp, throughput_report) {
  // Not a pass/fail benchmark: prints what the batch path delivers on
  // loopback with 1200-byte datagrams (QUIC-sized).
  auto r = make_reactor();
  auto count = std::make_shared<udp_count>();
  auto counter_actor = spawn(udp_counter, count);
  auto [sink, sink_log] = make_owner();
  auto rx = r->open_udp(localhost(), counter_actor);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  constexpr uint32_t n = 200'000;
  auto start = std::chrono::steady_clock::now();
  send_windowed(*r, tx->id, rx->local, n, 1200, [count] {
    return count->datagrams.load();
  });
  ASSERT_TRUE(eventually([&] {
    return count->datagrams.load() == n;
  }))
    << count->datagrams.load() << " of " << n;
  auto secs
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
        .count();
  std::cout << fmt::format(
    "[ info ] {} x 1200 B through recvmmsg -> anon_send: {:.0f} datagrams/s "
    "({:.0f} MB/s), {:.1f} datagrams per batch\n",
    n, n / secs, n * 1200.0 / secs / 1e6,
    static_cast<double>(n) / static_cast<double>(count->batches.load()));
}

// -- TCP ----------------------------------------------------------------------

class reactor_tcp : public reactor_fixture {
protected:
  /// A reactor client connected to a plain listener of the test's; `peer`
  /// is the accepted socket once `accept_peer` ran.
  struct raw_peer {
    std::shared_ptr<net::reactor> r;
    net::tcp_conn_id conn{};
    std::shared_ptr<event_log> log;
    raw_socket listener{SOCK_STREAM};
    raw_socket peer;
  };

  /// Connects a new reactor's client to a raw listener with `opts` and
  /// waits for tcp_connected; accepts the peer's side if `accept_peer`.
  void connect_to_raw(raw_peer& out, const net::tcp_options& opts,
                      bool accept_peer = true) {
    out.r = make_reactor();
    auto [client, client_log] = make_owner();
    out.log = client_log;
    auto port = out.listener.bind_localhost();
    ASSERT_EQ(::listen(out.listener.fd(), 4), 0);
    auto conn = out.r->connect_tcp(localhost(port), client, 5s, opts);
    ASSERT_TRUE(conn.has_value());
    out.conn = *conn;
    ASSERT_TRUE(out.log->wait_for<net::tcp_connected>(out.conn))
      << out.log->describe_all();
    if (accept_peer) {
      out.peer.adopt(::accept(out.listener.fd(), nullptr, nullptr));
      ASSERT_GE(out.peer.fd(), 0);
    }
  }
};

TEST_F(reactor_tcp, request_reply_half_close_and_eof) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  auto [client, client_log] = make_owner();
  auto listener = r->listen_tcp(localhost(), server);
  ASSERT_TRUE(listener.has_value()) << to_string(listener.error());
  EXPECT_NE(listener->local.port(), 0);
  auto conn = r->connect_tcp(listener->local, client, 5s);
  ASSERT_TRUE(conn.has_value()) << to_string(conn.error());
  // Writes may be queued before the connection is up.
  ASSERT_TRUE(r->write_tcp(*conn, text("ping")));
  auto connected = client_log->wait_for<net::tcp_connected>(*conn);
  ASSERT_TRUE(connected) << client_log->describe_all();
  EXPECT_EQ(connected->peer, listener->local);
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted) << server_log->describe_all();
  EXPECT_EQ(accepted->listener, listener->id);
  EXPECT_EQ(accepted->peer, connected->local);
  auto sconn = accepted->conn;
  ASSERT_TRUE(eventually([&, l = server_log] {
    return l->received_text(sconn) == "ping";
  }))
    << server_log->describe_all();
  ASSERT_TRUE(r->write_tcp(sconn, text("pong")));
  ASSERT_TRUE(r->shutdown_tcp_write(sconn));
  // Writing after the half-close fails.
  auto late = r->write_tcp(sconn, text("late"));
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code(), errc::connection_lost);
  // The client reads the reply, then EOF: with close_on_eof it closes.
  auto closed = client_log->wait_for<net::tcp_closed>(*conn);
  ASSERT_TRUE(closed) << client_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::none) << to_string(closed->reason);
  EXPECT_EQ(client_log->received_text(*conn), "pong");
  // The server then sees the client's FIN and closes too.
  auto sclosed = server_log->wait_for<net::tcp_closed>(sconn);
  ASSERT_TRUE(sclosed) << server_log->describe_all();
  EXPECT_EQ(sclosed->reason.code(), errc::none) << to_string(sclosed->reason);
  // Exactly one tcp_closed per connection, and it comes last.
  for (auto* l : {client_log.get(), server_log.get()}) {
    auto evs = l->tcp_events();
    ASSERT_FALSE(evs.empty());
    EXPECT_TRUE(std::holds_alternative<net::tcp_closed>(evs.back()))
      << l->describe_all();
    EXPECT_EQ(std::count_if(evs.begin(), evs.end(),
                            [](const tcp_event& ev) {
                              return std::holds_alternative<net::tcp_closed>(
                                ev);
                            }),
              1)
      << l->describe_all();
  }
  EXPECT_TRUE(eventually([&] {
    return r->stats().open_tcp_connections == 0;
  }));
  auto st = r->stats();
  EXPECT_EQ(st.tcp.accepted, 1u);
  EXPECT_EQ(st.tcp.connects, 1u);
  EXPECT_EQ(st.tcp.bytes_in, 8u);
  EXPECT_EQ(st.tcp.bytes_out, 8u);
  // The id is dead now.
  EXPECT_FALSE(r->write_tcp(*conn, text("x")).has_value());
  EXPECT_FALSE(r->close_tcp(*conn).has_value());
}

TEST_F(reactor_tcp, reply_after_the_peer_half_closed) {
  // The server keeps writing after the client's FIN (close_on_eof = false).
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  auto [client, client_log] = make_owner();
  net::tcp_options server_opts;
  server_opts.close_on_eof = false;
  auto listener = r->listen_tcp(localhost(), server, server_opts);
  ASSERT_TRUE(listener.has_value());
  auto conn = r->connect_tcp(listener->local, client, 5s);
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE(r->write_tcp(*conn, text("request")));
  ASSERT_TRUE(r->shutdown_tcp_write(*conn));
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted) << server_log->describe_all();
  auto eof = server_log->wait_for<net::tcp_eof>(accepted->conn);
  ASSERT_TRUE(eof) << server_log->describe_all();
  EXPECT_EQ(server_log->received_text(accepted->conn), "request");
  ASSERT_TRUE(r->write_tcp(accepted->conn, text("response")));
  ASSERT_TRUE(r->close_tcp(accepted->conn));
  auto closed = client_log->wait_for<net::tcp_closed>(*conn);
  ASSERT_TRUE(closed) << client_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::none) << to_string(closed->reason);
  EXPECT_EQ(client_log->received_text(*conn), "response");
  auto sclosed = server_log->wait_for<net::tcp_closed>(accepted->conn);
  ASSERT_TRUE(sclosed) << server_log->describe_all();
  EXPECT_EQ(sclosed->reason.code(), errc::none);
}

TEST_F(reactor_tcp, connect_to_a_closed_port_is_refused) {
  auto r = make_reactor();
  auto [client, client_log] = make_owner();
  // Bound but not listening: the kernel answers SYN with RST.
  raw_socket closed{SOCK_STREAM};
  auto port = closed.bind_localhost();
  ASSERT_NE(port, 0);
  auto conn = r->connect_tcp(localhost(port), client, 5s);
  ASSERT_TRUE(conn.has_value());
  auto closed_ev = client_log->wait_for<net::tcp_closed>(*conn);
  ASSERT_TRUE(closed_ev) << client_log->describe_all();
  EXPECT_EQ(closed_ev->reason.code(), errc::connection_lost);
  EXPECT_NE(closed_ev->reason.context().find("connection refused"),
            std::string::npos)
    << to_string(closed_ev->reason);
  EXPECT_FALSE(client_log->wait_for<net::tcp_connected>(*conn, 0ms));
  EXPECT_EQ(r->stats().tcp.connect_failures, 1u);
}

TEST_F(reactor_tcp, connect_leaves_from_the_source_address) {
  // Without a source the kernel picks the host's default (127.0.0.1 on
  // loopback); with one, the peer sees that address.
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  auto [client, client_log] = make_owner();
  auto listener = r->listen_tcp(localhost(), server);
  ASSERT_TRUE(listener.has_value()) << to_string(listener.error());
  net::tcp_options opts;
  opts.source = ip_endpoint::v4(127, 0, 0, 57, 4242);
  auto conn = r->connect_tcp(listener->local, client, 5s, opts);
  ASSERT_TRUE(conn.has_value()) << to_string(conn.error());
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted) << server_log->describe_all();
  EXPECT_EQ(accepted->peer.address_string(), "127.0.0.57");
  // The port is the kernel's choice, not the source's.
  EXPECT_NE(accepted->peer.port(), 4242);
  auto connected = client_log->wait_for<net::tcp_connected>(*conn);
  ASSERT_TRUE(connected) << client_log->describe_all();
  EXPECT_EQ(connected->local, accepted->peer);
  // A wildcard source is the same as none.
  opts.source = ip_endpoint::v4(0, 0, 0, 0, 0);
  auto any = r->connect_tcp(listener->local, client, 5s, opts);
  ASSERT_TRUE(any.has_value()) << to_string(any.error());
  auto second = client_log->wait_for<net::tcp_connected>(*any);
  ASSERT_TRUE(second) << client_log->describe_all();
  EXPECT_EQ(second->local.address_string(), "127.0.0.1");
}

TEST_F(reactor_tcp, a_source_address_not_on_this_host_is_an_error) {
  auto r = make_reactor();
  auto [client, client_log] = make_owner();
  net::tcp_options opts;
  // TEST-NET-1 (RFC 5737): never assigned to a host; nothing is sent.
  opts.source = ip_endpoint::v4(192, 0, 2, 1, 0);
  auto conn = r->connect_tcp(localhost(9), client, 5s, opts);
  ASSERT_FALSE(conn.has_value());
  EXPECT_EQ(conn.error().code(), errc::connection_lost)
    << to_string(conn.error());
  EXPECT_NE(conn.error().context().find("192.0.2.1"), std::string::npos)
    << to_string(conn.error());
  // An IPv6 source cannot reach an IPv4 peer.
  opts.source = *ip_endpoint::parse("[::1]:0");
  auto mixed = r->connect_tcp(localhost(9), client, 5s, opts);
  ASSERT_FALSE(mixed.has_value());
  EXPECT_EQ(mixed.error().code(), errc::invalid_config)
    << to_string(mixed.error());
}

TEST_F(reactor_tcp, connect_timeout) {
  auto r = make_reactor();
  auto [client, client_log] = make_owner();
  blackhole hole;
  ASSERT_NE(hole.port, 0);
  auto start = std::chrono::steady_clock::now();
  auto conn = r->connect_tcp(localhost(hole.port), client, 300ms);
  ASSERT_TRUE(conn.has_value());
  auto closed = client_log->wait_for<net::tcp_closed>(*conn);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(closed) << client_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::timeout) << to_string(closed->reason);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 3s);
  auto st = r->stats().tcp;
  EXPECT_EQ(st.timeouts, 1u);
  EXPECT_EQ(st.connect_failures, 1u);
}

TEST_F(reactor_tcp, exchange_deadline_closes_a_silent_connection) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  net::tcp_options opts;
  opts.deadline = 300ms;
  auto listener = r->listen_tcp(localhost(), server, opts);
  ASSERT_TRUE(listener.has_value());
  raw_socket peer{SOCK_STREAM};
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted) << server_log->describe_all();
  auto closed = server_log->wait_for<net::tcp_closed>(accepted->conn);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(closed) << server_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::timeout) << to_string(closed->reason);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 3s);
  // The peer sees the close.
  char buf[1];
  EXPECT_EQ(::read(peer.fd(), buf, 1), 0);
}

TEST_F(reactor_tcp, idle_timeout_restarts_with_traffic) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  net::tcp_options opts;
  opts.deadline = 0ms;
  opts.idle_timeout = 500ms;
  auto listener = r->listen_tcp(localhost(), server, opts);
  ASSERT_TRUE(listener.has_value());
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted) << server_log->describe_all();
  // Traffic every 100 ms keeps it open beyond the idle timeout.
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(::write(peer.fd(), "x", 1), 1);
    EXPECT_FALSE(server_log->wait_for<net::tcp_closed>(accepted->conn, 100ms))
      << server_log->describe_all();
  }
  auto closed = server_log->wait_for<net::tcp_closed>(accepted->conn);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(closed) << server_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::timeout) << to_string(closed->reason);
  EXPECT_GE(elapsed, 600ms);
  EXPECT_EQ(server_log->received_text(accepted->conn), "xxxxxx");
}

TEST_F(reactor_tcp, write_queue_limit_reports_queue_full) {
  auto r = make_reactor();
  auto [client, client_log] = make_owner();
  // The connection stays in progress, so nothing drains the queue.
  blackhole hole;
  net::tcp_options opts;
  opts.max_write_queue = size_t{256} * 1024;
  auto conn = r->connect_tcp(localhost(hole.port), client, 10s, opts);
  ASSERT_TRUE(conn.has_value());
  auto too_big = r->write_tcp(*conn, bytes(size_t{256} * 1024 + 1));
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code(), errc::queue_full);
  ASSERT_TRUE(r->write_tcp(*conn, bytes(size_t{200} * 1024)));
  ASSERT_TRUE(r->write_tcp(*conn, bytes(size_t{56} * 1024)));
  auto full = r->write_tcp(*conn, bytes(1));
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code(), errc::queue_full) << to_string(full.error());
  EXPECT_EQ(r->stats().tcp.queue_full, 2u);
  ASSERT_TRUE(r->close_tcp(*conn, net::close_mode::abort));
  auto closed = client_log->wait_for<net::tcp_closed>(*conn);
  ASSERT_TRUE(closed) << client_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::none);
}

TEST_F(reactor_tcp, write_queue_fills_against_a_peer_that_never_reads) {
  net::tcp_options opts;
  opts.max_write_queue = 1 << 20;
  raw_peer x;
  ASSERT_NO_FATAL_FAILURE(connect_to_raw(x, opts, false));
  // Kernel buffers take a few MiB; then the queue must fill up.
  size_t written = 0;
  bool full = false;
  ASSERT_TRUE(eventually([&] {
    auto res = x.r->write_tcp(x.conn, bytes(size_t{64} * 1024));
    if (res) {
      written += size_t{64} * 1024;
      return written > (size_t{256} << 20);
    }
    full = res.error().code() == errc::queue_full;
    return true;
  }))
    << "wrote " << written;
  EXPECT_TRUE(full) << "wrote " << written << " bytes without queue_full";
}

TEST_F(reactor_tcp, max_connections_rejects_the_excess) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  net::tcp_options opts;
  opts.max_connections = 2;
  auto listener = r->listen_tcp(localhost(), server, opts);
  ASSERT_TRUE(listener.has_value());
  std::vector<raw_socket> peers;
  for (int i = 0; i < 2; ++i) {
    peers.emplace_back(SOCK_STREAM);
    ASSERT_TRUE(peers.back().connect_localhost(listener->local.port()));
  }
  ASSERT_TRUE(server_log->wait([](const auto&, const auto& evs) {
    return evs.size() >= 2;
  }))
    << server_log->describe_all();
  raw_socket third{SOCK_STREAM};
  ASSERT_TRUE(third.connect_localhost(listener->local.port()));
  ASSERT_TRUE(eventually([&] {
    return r->stats().tcp.rejected == 1;
  }));
  char buf[1];
  EXPECT_LE(::read(third.fd(), buf, 1), 0) << "the third was not closed";
  EXPECT_EQ(r->stats().tcp.accepted, 2u);
  EXPECT_EQ(server_log->tcp_events().size(), 2u) << server_log->describe_all();
  // Closing one makes room again.
  peers[0].close();
  ASSERT_TRUE(eventually([&] {
    return r->stats().open_tcp_connections == 1;
  }));
  raw_socket fourth{SOCK_STREAM};
  ASSERT_TRUE(fourth.connect_localhost(listener->local.port()));
  ASSERT_TRUE(eventually([&] {
    return r->stats().tcp.accepted == 3;
  }));
  ASSERT_TRUE(r->close_tcp_listener(listener->id).has_value());
  EXPECT_FALSE(r->close_tcp_listener(listener->id).has_value());
  EXPECT_TRUE(eventually([&] {
    return r->stats().open_tcp_listeners == 0;
  }));
  // Accepted connections outlive their listener.
  EXPECT_EQ(r->stats().open_tcp_connections, 2u);
}

TEST_F(reactor_tcp, received_bytes_limit) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  net::tcp_options opts;
  opts.max_received_bytes = 10;
  auto listener = r->listen_tcp(localhost(), server, opts);
  ASSERT_TRUE(listener.has_value());
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  ASSERT_EQ(::write(peer.fd(), "0123456789abcdefghij", 20), 20);
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted);
  auto closed = server_log->wait_for<net::tcp_closed>(accepted->conn);
  ASSERT_TRUE(closed) << server_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::too_large);
}

/// Sets `fd` non-blocking.
void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

TEST_F(reactor_tcp, start_paused_hands_the_whole_stream_to_a_new_owner) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  auto [handler, handler_log] = make_owner();
  net::tcp_options opts;
  opts.start_paused = true;
  auto listener = r->listen_tcp(localhost(), server, opts);
  ASSERT_TRUE(listener.has_value());
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  ASSERT_EQ(::write(peer.fd(), "hello ", 6), 6);
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted) << server_log->describe_all();
  // Unpaused, the listener's owner would get "hello " right after the
  // accept; the hand-over below comes later and still gets every byte.
  ASSERT_TRUE(r->read_tcp(accepted->conn, true, handler));
  ASSERT_EQ(::write(peer.fd(), "world", 5), 5);
  auto conn = accepted->conn;
  ASSERT_TRUE(eventually([&, l = handler_log] {
    return l->received_text(conn) == "hello world";
  }))
    << handler_log->describe_all();
  EXPECT_EQ(server_log->received_text(conn), "") << server_log->describe_all();
  // Writing is the new owner's, and so is the end.
  ASSERT_TRUE(r->write_tcp(conn, text("bye")));
  char buf[8] = {};
  ASSERT_EQ(::read(peer.fd(), buf, 3), 3);
  EXPECT_EQ(std::string_view(buf, 3), "bye");
  peer.close();
  ASSERT_TRUE(handler_log->wait_for<net::tcp_closed>(conn))
    << handler_log->describe_all();
  EXPECT_FALSE(server_log->wait_for<net::tcp_closed>(conn, 0ms));
}

TEST_F(reactor_tcp,
       paused_reading_stops_the_sender_and_resuming_loses_nothing) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  auto listener = r->listen_tcp(localhost(), server);
  ASSERT_TRUE(listener.has_value());
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted);
  auto conn = accepted->conn;
  ASSERT_EQ(::write(peer.fd(), "x", 1), 1);
  ASSERT_TRUE(eventually([&, l = server_log] {
    return l->received_text(conn) == "x";
  }));
  ASSERT_TRUE(r->read_tcp(conn, false));
  // The pause is a command to the loop: once the answer to a command
  // queued after it came, the loop has taken it (a write would not tell:
  // it goes to the socket without the loop).
  auto marker = r->open_udp(localhost(), server);
  ASSERT_TRUE(marker.has_value());
  ASSERT_TRUE(r->drain_udp(marker->id, caf::make_message(mark_atom::value)));
  ASSERT_TRUE(server_log->wait_mark().has_value())
    << server_log->describe_all();
  size_t before = server_log->received_text(conn).size();
  // The peer writes until its kernel says no more: the reactor reads
  // nothing, so the buffers fill. Unpaused it would read everything and
  // 256 MiB would go through.
  set_nonblocking(peer.fd());
  std::string chunk(64 * 1024, 'y');
  size_t sent = 0;
  bool blocked = false;
  ASSERT_TRUE(eventually(
    [&] {
      auto n = ::write(peer.fd(), chunk.data(), chunk.size());
      if (n > 0) {
        sent += static_cast<size_t>(n);
        return sent > (size_t{256} << 20);
      }
      blocked = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      return blocked;
    },
    20s))
    << "sent " << sent;
  ASSERT_TRUE(blocked) << "sent " << sent << " bytes into a paused connection";
  EXPECT_EQ(server_log->received_text(conn).size(), before);
  ASSERT_TRUE(r->read_tcp(conn, true));
  ASSERT_TRUE(eventually(
    [&, l = server_log] {
      return l->received_text(conn).size() == 1 + sent;
    },
    20s))
    << "received " << server_log->received_text(conn).size() << " of "
    << 1 + sent;
}

TEST_F(reactor_tcp, a_reset_while_paused_ends_the_connection) {
  auto r = make_reactor();
  auto [server, server_log] = make_owner();
  net::tcp_options opts;
  opts.start_paused = true;
  auto listener = r->listen_tcp(localhost(), server, opts);
  ASSERT_TRUE(listener.has_value());
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  ASSERT_EQ(::write(peer.fd(), "unread", 6), 6);
  auto accepted = server_log->wait_for<net::tcp_accepted>();
  ASSERT_TRUE(accepted);
  linger lg{1, 0};
  ::setsockopt(peer.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  peer.close(); // RST
  auto closed = server_log->wait_for<net::tcp_closed>(accepted->conn);
  ASSERT_TRUE(closed) << server_log->describe_all();
  EXPECT_EQ(closed->reason.code(), errc::connection_lost)
    << to_string(closed->reason);
  EXPECT_EQ(server_log->received_text(accepted->conn), "");
  auto late = r->read_tcp(accepted->conn, true);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), errc::connection_lost);
}

// Writes go to the socket on the caller's thread while nothing is queued,
// and through the loop once the kernel's buffer is full. Two threads write
// numbered records of many sizes at a peer that reads late: every record
// arrives whole, each thread's in order, whichever path each took.
TEST_F(reactor_tcp, direct_and_queued_writes_keep_every_record_whole) {
  net::tcp_options opts;
  opts.deadline = 0ms;
  opts.max_write_queue = size_t{64} << 20;
  raw_peer x;
  ASSERT_NO_FATAL_FAILURE(connect_to_raw(x, opts));
  // Record: thread (1 byte), sequence (4), length (4), then `length` bytes
  // of (thread + sequence) mod 251.
  constexpr uint32_t per_thread = 400;
  auto writer = [&](uint8_t thread, std::atomic<size_t>& failures) {
    for (uint32_t seq = 0; seq < per_thread; ++seq) {
      uint32_t len = (seq * 7919u) % 40000u; // 0 .. 40 KB, many sizes
      bytes rec(9 + len);
      rec[0] = std::byte{thread};
      std::memcpy(rec.data() + 1, &seq, 4);
      std::memcpy(rec.data() + 5, &len, 4);
      std::fill(rec.begin() + 9, rec.end(),
                static_cast<std::byte>((thread + seq) % 251));
      // As a span (copied when it must wait), taken, or gathered from
      // three pieces (header, and the body in two).
      mycorrizal::expected<void> ok;
      if (seq % 3 == 0) {
        ok = x.r->write_tcp(x.conn, std::span{rec});
      } else if (seq % 3 == 1) {
        ok = x.r->write_tcp(x.conn, std::move(rec));
      } else {
        std::span<const std::byte> all{rec};
        auto half = 9 + len / 2;
        std::span<const std::byte> parts[]
          = {all.first(9), all.subspan(9, half - 9), all.subspan(half)};
        ok = x.r->write_tcp(x.conn, parts);
      }
      if (!ok) {
        ++failures;
      }
    }
  };
  // The peer reads while they write, in small reads: the socket's buffer
  // is full at times (writes queue) and drains at others (direct writes
  // resume while the loop may still hold bytes).
  std::vector<std::byte> got;
  std::array<uint32_t, 3> next{0, 0, 0};
  uint32_t records = 0;
  std::string problem;
  size_t at = 0;
  auto parse = [&] {
    while (problem.empty() && got.size() - at >= 9) {
      auto thread = std::to_integer<uint8_t>(got[at]);
      uint32_t seq = 0;
      uint32_t len = 0;
      std::memcpy(&seq, got.data() + at + 1, 4);
      std::memcpy(&len, got.data() + at + 5, 4);
      if (got.size() - at < 9 + size_t{len}) {
        return;
      }
      if (thread < 1 || thread > 2 || seq != next[thread]) {
        problem = fmt::format("record {} at byte {}: thread {} seq {}, "
                              "expected seq {}",
                              records, at, thread, seq,
                              thread <= 2 ? next[thread] : 0);
        return;
      }
      auto fill = static_cast<std::byte>((thread + seq) % 251);
      if (!std::all_of(got.begin() + static_cast<std::ptrdiff_t>(at + 9),
                       got.begin() + static_cast<std::ptrdiff_t>(at + 9 + len),
                       [&](std::byte b) {
                         return b == fill;
                       })) {
        problem = fmt::format("record {} (thread {} seq {}) corrupted", records,
                              thread, seq);
        return;
      }
      ++next[thread];
      ++records;
      at += 9 + len;
    }
  };
  timeval limit{30, 0}; // a blocking read that waits longer fails the test
  ASSERT_EQ(::setsockopt(x.peer.fd(), SOL_SOCKET, SO_RCVTIMEO, &limit,
                         sizeof(limit)),
            0);
  std::thread reader{[&] {
    std::array<char, 4096> buf;
    while (problem.empty() && records < 2 * per_thread) {
      auto n = ::read(x.peer.fd(), buf.data(), buf.size());
      if (n <= 0) {
        problem = fmt::format("read ended ({}) after {} records", n, records);
        return;
      }
      auto* p = reinterpret_cast<const std::byte*>(buf.data());
      got.insert(got.end(), p, p + n);
      parse();
    }
  }};
  std::atomic<size_t> failures{0};
  std::thread a{writer, uint8_t{1}, std::ref(failures)};
  std::thread b{writer, uint8_t{2}, std::ref(failures)};
  a.join();
  b.join();
  reader.join();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_EQ(problem, "");
  EXPECT_EQ(records, 2 * per_thread);
  EXPECT_EQ(at, got.size()) << "bytes after the last record";
}

// A write over the limit is refused whole on an open connection too: not
// a byte of it reaches the peer.
TEST_F(reactor_tcp, a_refused_write_puts_nothing_on_the_wire) {
  net::tcp_options opts;
  opts.max_write_queue = size_t{64} * 1024;
  raw_peer x;
  ASSERT_NO_FATAL_FAILURE(connect_to_raw(x, opts));
  auto too_big = x.r->write_tcp(x.conn, bytes(size_t{64} * 1024 + 1));
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code(), errc::queue_full);
  ASSERT_TRUE(x.r->write_tcp(x.conn, text("ok")));
  ASSERT_TRUE(x.r->close_tcp(x.conn, net::close_mode::flush));
  std::string got;
  std::array<char, 4096> buf;
  for (;;) {
    auto n = ::read(x.peer.fd(), buf.data(), buf.size());
    if (n <= 0) {
      break;
    }
    got.append(buf.data(), static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "ok");
}

// -- lifecycle ----------------------------------------------------------------

using reactor_lifecycle = reactor_fixture;

TEST_F(reactor_lifecycle, start_and_stop_are_idempotent) {
  auto threads = thread_count();
  auto fds = open_fds();
  {
    net::reactor r;
    EXPECT_FALSE(r.running());
    ASSERT_TRUE(r.start().has_value());
    ASSERT_TRUE(r.start().has_value());
    EXPECT_TRUE(r.running());
    EXPECT_EQ(thread_count(), threads + 1);
    EXPECT_TRUE(has_thread_named("mcz.reactor"));
    r.stop();
    r.stop();
    EXPECT_FALSE(r.running());
    EXPECT_TRUE(eventually([&] {
      return thread_count() == threads;
    }))
      << thread_count() << " threads, " << threads << " before";
    EXPECT_EQ(open_fds(), fds);
    auto again = r.start();
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code(), errc::shutting_down);
    auto [owner, log] = make_owner();
    auto sock = r.open_udp(localhost(), owner);
    ASSERT_FALSE(sock.has_value());
    EXPECT_EQ(sock.error().code(), errc::shutting_down);
    EXPECT_EQ(
      r.send_udp(net::udp_socket_id{5}, localhost(9), text("x")).error().code(),
      errc::shutting_down);
  }
  {
    // Never started: stop and destruction are fine too.
    net::reactor r;
    r.stop();
  }
  {
    // Destructor stops.
    net::reactor r;
    ASSERT_TRUE(r.start().has_value());
  }
  EXPECT_TRUE(eventually([&] {
    return thread_count() == threads;
  }))
    << thread_count() << " threads, " << threads << " before";
  EXPECT_EQ(open_fds(), fds);
}

TEST_F(reactor_lifecycle, concurrent_stops) {
  auto r = make_reactor();
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      r->stop();
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_FALSE(r->running());
}

TEST_F(reactor_lifecycle, stop_closes_every_socket_and_connection) {
  auto threads = thread_count();
  auto fds = open_fds();
  auto [owner, log] = make_owner();
  auto [client, client_log] = make_owner();
  {
    auto r = std::make_shared<net::reactor>();
    ASSERT_TRUE(r->start().has_value());
    auto u1 = r->open_udp(localhost(), owner);
    auto u2 = r->open_udp(localhost(), owner);
    auto listener = r->listen_tcp(localhost(), owner);
    ASSERT_TRUE(u1 && u2 && listener);
    auto conn = r->connect_tcp(listener->local, client, 5s);
    ASSERT_TRUE(conn.has_value());
    ASSERT_TRUE(client_log->wait_for<net::tcp_connected>(*conn));
    auto accepted = log->wait_for<net::tcp_accepted>();
    ASSERT_TRUE(accepted);
    // And a connection still in progress, with queued bytes.
    blackhole hole;
    auto pending = r->connect_tcp(localhost(hole.port), client, 10s);
    ASSERT_TRUE(pending.has_value());
    ASSERT_TRUE(r->write_tcp(*pending, text("queued")));
    ASSERT_TRUE(eventually([&] {
      return r->stats().open_tcp_connections == 3;
    }));
    EXPECT_GT(open_fds(), fds + 6);
    r->stop();
    EXPECT_EQ(r->stats().open_tcp_connections, 0u);
    EXPECT_EQ(r->stats().open_udp_sockets, 0u);
    EXPECT_EQ(r->stats().open_tcp_listeners, 0u);
    // Every connection ends with tcp_closed{shutting_down}.
    for (auto id : {*conn, *pending}) {
      auto closed = client_log->wait_for<net::tcp_closed>(id);
      ASSERT_TRUE(closed) << client_log->describe_all();
      EXPECT_EQ(closed->reason.code(), errc::shutting_down);
    }
    auto sclosed = log->wait_for<net::tcp_closed>(accepted->conn);
    ASSERT_TRUE(sclosed) << log->describe_all();
    EXPECT_EQ(sclosed->reason.code(), errc::shutting_down);
    EXPECT_TRUE(eventually([&] {
      return thread_count() == threads;
    }))
      << thread_count() << " threads, " << threads << " before";
    EXPECT_FALSE(r->write_tcp(*conn, text("x")).has_value());
  }
  EXPECT_EQ(open_fds(), fds);
  EXPECT_TRUE(eventually([&] {
    return thread_count() == threads;
  }))
    << thread_count() << " threads, " << threads << " before";
}

TEST_F(reactor_lifecycle, resources_opened_before_start_are_served) {
  auto r = make_reactor(false);
  auto [owner, log] = make_owner();
  auto [sink, sink_log] = make_owner();
  auto rx = r->open_udp(localhost(), owner);
  auto tx = r->open_udp(localhost(), sink);
  ASSERT_TRUE(rx && tx);
  ASSERT_TRUE(r->send_udp(tx->id, rx->local, text("early")));
  ASSERT_TRUE(r->start().has_value());
  ASSERT_TRUE(log->wait_datagrams(1)) << log->describe_all();
  EXPECT_EQ(as_text(log->datagrams()[0].data), "early");
}

TEST_F(reactor_lifecycle, stop_after_the_owner_died) {
  auto fds = open_fds();
  auto [owner, log] = make_owner();
  auto r = std::make_shared<net::reactor>();
  ASSERT_TRUE(r->start().has_value());
  auto sock = r->open_udp(localhost(), owner);
  auto listener = r->listen_tcp(localhost(), owner);
  ASSERT_TRUE(sock && listener);
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  ASSERT_TRUE(log->wait_for<net::tcp_accepted>());
  kill_and_wait(owner);
  // Data for the dead owner is dropped without harm (the reactor may have
  // reset the connection already, then this send fails).
  static_cast<void>(::send(peer.fd(), "x", 1, MSG_NOSIGNAL));
  r->stop();
  r.reset();
  peer.close();
  EXPECT_EQ(open_fds(), fds);
}

TEST_F(reactor_lifecycle, owner_death_closes_its_resources) {
  auto r = make_reactor();
  auto [owner, log] = make_owner();
  auto [other, other_log] = make_owner();
  auto sock = r->open_udp(localhost(), owner);
  auto listener = r->listen_tcp(localhost(), owner);
  auto kept = r->open_udp(localhost(), other);
  ASSERT_TRUE(sock && listener && kept);
  raw_socket peer{SOCK_STREAM};
  ASSERT_TRUE(peer.connect_localhost(listener->local.port()));
  ASSERT_TRUE(log->wait_for<net::tcp_accepted>());
  EXPECT_EQ(r->stats().open_udp_sockets, 2u);
  kill_and_wait(owner);
  ASSERT_TRUE(eventually([&] {
    auto st = r->stats();
    return st.open_udp_sockets == 1 && st.open_tcp_listeners == 0
           && st.open_tcp_connections == 0;
  }))
    << "open udp " << r->stats().open_udp_sockets << ", listeners "
    << r->stats().open_tcp_listeners << ", connections "
    << r->stats().open_tcp_connections;
  EXPECT_FALSE(r->send_udp(sock->id, kept->local, text("x")).has_value());
  EXPECT_TRUE(r->send_udp(kept->id, kept->local, text("x")).has_value());
  // The peer of the aborted connection sees it end.
  char buf[1];
  EXPECT_LE(::read(peer.fd(), buf, 1), 0);
  // Opening for a dead owner closes again at once.
  auto late = r->open_udp(localhost(), owner);
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(eventually([&] {
    return r->stats().open_udp_sockets == 1;
  }));
}

// -- actors on the loop's thread ----------------------------------------------

std::string current_thread_name() {
  std::array<char, 16> buf{};
  pthread_getname_np(pthread_self(), buf.data(), buf.size());
  return std::string{buf.data()};
}

/// Which thread each actor ran on, by the actor's name.
class thread_log {
public:
  void add(const std::string& who) {
    std::lock_guard guard{mtx_};
    seen_.emplace_back(who, current_thread_name());
    cv_.notify_all();
  }

  bool wait(size_t n) {
    std::unique_lock guard{mtx_};
    return cv_.wait_for(guard, 10s, [&] {
      return seen_.size() >= n;
    });
  }

  /// The thread `who` ran on first; empty if it did not run.
  std::string thread_of(const std::string& who) {
    std::lock_guard guard{mtx_};
    for (auto& [name, thread] : seen_) {
      if (name == who) {
        return thread;
      }
    }
    return {};
  }

  std::string describe() {
    std::lock_guard guard{mtx_};
    std::string out;
    for (auto& [name, thread] : seen_) {
      out += name + " ran on " + thread + "; ";
    }
    return out.empty() ? "nothing ran" : out;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::string>> seen_;
};

caf::behavior named_target(caf::event_based_actor*,
                           std::shared_ptr<thread_log> log, std::string name) {
  return {
    [=](const std::string&) {
      log->add(name);
    },
  };
}

/// Records where it runs for each batch, keeps its thread busy for `spin`,
/// then sends a note to every target.
caf::behavior
busy_owner(caf::event_based_actor* self, std::shared_ptr<thread_log> log,
           std::chrono::microseconds spin, std::vector<caf::actor> targets) {
  return {
    [=](net::udp_batch&) {
      log->add("owner");
      auto until = std::chrono::steady_clock::now() + spin;
      while (std::chrono::steady_clock::now() < until) {
        // busy, as a long computation would be
      }
      for (auto& t : targets) {
        self->send(t, std::string{"note"});
      }
    },
  };
}

/// Answers "hold" with a promise that the test delivers.
caf::behavior
promise_keeper(caf::event_based_actor* self,
               std::shared_ptr<std::optional<caf::response_promise>> slot,
               std::shared_ptr<std::mutex> mtx) {
  return {
    [=](const std::string&) -> caf::result<std::string> {
      auto rp = self->make_response_promise();
      std::lock_guard guard{*mtx};
      *slot = rp;
      return caf::delegated<std::string>{};
    },
  };
}

struct named_state {
  static inline const char* name = "mycorrizal.test";
};

/// `named_target` with a name of the node's own actors.
caf::behavior own_target(caf::stateful_actor<named_state>*,
                         std::shared_ptr<thread_log> log, std::string name) {
  return {
    [=](const std::string&) {
      log->add(name);
    },
  };
}

class reactor_hosting : public reactor_fixture {
protected:
  /// A reactor that hosts every actor (the tests' actors are not named
  /// "mycorrizal.*"), unless `cfg` says otherwise.
  std::shared_ptr<net::reactor> make_hosting(net::reactor_config cfg = {},
                                             bool every_actor = true) {
    cfg.host = sys_.get();
    if (every_actor) {
      cfg.hosted_prefix.clear();
    }
    auto r = std::make_shared<net::reactor>(cfg);
    EXPECT_TRUE(r->start().has_value());
    reactors_.push_back(r);
    return r;
  }

  /// Sends one datagram to a socket of `r` owned by `owner`.
  void poke(net::reactor& r, const caf::actor& owner) {
    auto rx = r.open_udp(localhost(), owner);
    ASSERT_TRUE(rx.has_value()) << to_string(rx.error());
    raw_socket tx{SOCK_DGRAM};
    ASSERT_NE(tx.bind_localhost(), 0);
    ASSERT_TRUE(tx.connect_localhost(rx->local.port()));
    ASSERT_EQ(::send(tx.fd(), "x", 1, 0), 1);
  }

  /// Pokes `owner` until its handler logged "scheduled" (a wake the loop
  /// took). The loop runs an owner that is idle; one still starting on a
  /// CAF worker (a loaded machine) gets its batch there, where `wake_at`
  /// refuses (a loaded machine once showed nothing in 10 s).
  void poke_until_scheduled(net::reactor& r, const caf::actor& owner,
                            thread_log& log) {
    ASSERT_TRUE(eventually([&] {
      poke(r, owner);
      return eventually(
        [&] {
          return !log.thread_of("scheduled").empty();
        },
        500ms);
    }))
      << log.describe();
  }
};

TEST_F(reactor_hosting, an_owner_and_what_it_sends_to_run_on_the_loops_thread) {
  auto log = std::make_shared<thread_log>();
  auto target = spawn(named_target, log, std::string{"target"});
  auto owner = spawn(busy_owner, log, std::chrono::microseconds{0},
                     std::vector<caf::actor>{target});
  auto r = make_hosting();
  poke(*r, owner);
  ASSERT_TRUE(log->wait(2)) << log->describe();
  EXPECT_EQ(log->thread_of("owner"), "mcz.reactor") << log->describe();
  EXPECT_EQ(log->thread_of("target"), "mcz.reactor") << log->describe();
}

TEST_F(reactor_hosting, only_actors_with_the_hosted_prefix_run_there) {
  auto log = std::make_shared<thread_log>();
  auto own = spawn(own_target, log, std::string{"own"});
  auto foreign = spawn(named_target, log, std::string{"foreign"});
  auto owner = spawn(busy_owner, log, std::chrono::microseconds{0},
                     std::vector<caf::actor>{own, foreign});
  auto r = make_hosting({}, false);
  poke(*r, owner);
  ASSERT_TRUE(log->wait(3)) << log->describe();
  // The owner is a test actor too: the loop hands it to the scheduler.
  EXPECT_NE(log->thread_of("owner"), "mcz.reactor") << log->describe();
  EXPECT_NE(log->thread_of("foreign"), "mcz.reactor") << log->describe();
  EXPECT_FALSE(log->thread_of("foreign").empty()) << log->describe();
}

TEST_F(reactor_hosting, an_own_actor_runs_there_when_the_loop_sends_to_it) {
  auto log = std::make_shared<thread_log>();
  auto own = spawn(own_target, log, std::string{"own"});
  auto r = make_hosting({}, false);
  // The socket's owner and the actor it sends to are both named as the
  // node's own actors are.
  auto relay
    = spawn([=](caf::stateful_actor<named_state>* self) -> caf::behavior {
        return {
          [=](net::udp_batch&) {
            log->add("relay");
            self->send(own, std::string{"note"});
          },
        };
      });
  poke(*r, relay);
  ASSERT_TRUE(log->wait(2)) << log->describe();
  EXPECT_EQ(log->thread_of("relay"), "mcz.reactor") << log->describe();
  EXPECT_EQ(log->thread_of("own"), "mcz.reactor") << log->describe();
}

TEST_F(reactor_hosting, without_a_host_owners_run_on_the_scheduler) {
  auto log = std::make_shared<thread_log>();
  auto target = spawn(named_target, log, std::string{"target"});
  auto owner = spawn(busy_owner, log, std::chrono::microseconds{0},
                     std::vector<caf::actor>{target});
  auto r = make_reactor();
  poke(*r, owner);
  ASSERT_TRUE(log->wait(2)) << log->describe();
  EXPECT_NE(log->thread_of("owner"), "mcz.reactor") << log->describe();
  EXPECT_NE(log->thread_of("target"), "mcz.reactor") << log->describe();
}

TEST_F(reactor_hosting,
       a_turn_beyond_the_budget_hands_the_rest_to_the_scheduler) {
  net::reactor_config cfg;
  cfg.hosted_budget = std::chrono::microseconds{1000};
  auto log = std::make_shared<thread_log>();
  auto target = spawn(named_target, log, std::string{"target"});
  auto owner = spawn(busy_owner, log, std::chrono::microseconds{5000},
                     std::vector<caf::actor>{target});
  auto r = make_hosting(cfg);
  poke(*r, owner);
  ASSERT_TRUE(log->wait(2)) << log->describe();
  EXPECT_EQ(log->thread_of("owner"), "mcz.reactor") << log->describe();
  EXPECT_NE(log->thread_of("target"), "mcz.reactor") << log->describe();
  EXPECT_FALSE(log->thread_of("target").empty()) << log->describe();
}

TEST_F(reactor_hosting, jobs_beyond_max_hosted_go_to_the_scheduler) {
  net::reactor_config cfg;
  cfg.max_hosted = 1;
  auto log = std::make_shared<thread_log>();
  auto first = spawn(named_target, log, std::string{"first"});
  auto second = spawn(named_target, log, std::string{"second"});
  auto owner = spawn(busy_owner, log, std::chrono::microseconds{0},
                     std::vector<caf::actor>{first, second});
  auto r = make_hosting(cfg);
  poke(*r, owner);
  ASSERT_TRUE(log->wait(3)) << log->describe();
  EXPECT_EQ(log->thread_of("first"), "mcz.reactor") << log->describe();
  EXPECT_NE(log->thread_of("second"), "mcz.reactor") << log->describe();
}

TEST_F(reactor_hosting,
       a_response_delivered_after_the_reactor_is_gone_arrives) {
  // CAF delivers a response promise through the execution unit its owner
  // ran on last, whenever it is delivered: here the loop of a reactor that
  // no longer exists.
  auto log = std::make_shared<thread_log>();
  auto slot = std::make_shared<std::optional<caf::response_promise>>();
  auto mtx = std::make_shared<std::mutex>();
  auto keeper = spawn(promise_keeper, slot, mtx);
  auto asker = spawn([=](caf::event_based_actor* self) -> caf::behavior {
    return {
      [=](net::udp_batch&) {
        log->add("asker");
        self->request(keeper, 30s, std::string{"hold"})
          .then([=](const std::string& answer) {
            log->add("answer " + answer);
          });
      },
    };
  });
  {
    auto r = make_hosting();
    poke(*r, asker);
    ASSERT_TRUE(eventually([&] {
      std::lock_guard guard{*mtx};
      return slot->has_value();
    }))
      << log->describe();
    EXPECT_EQ(log->thread_of("asker"), "mcz.reactor") << log->describe();
    r->stop();
    reactors_.clear();
  }
  {
    std::lock_guard guard{*mtx};
    (*slot)->deliver(std::string{"late"});
  }
  ASSERT_TRUE(log->wait(2)) << log->describe();
  EXPECT_NE(log->thread_of("answer late"), "") << log->describe();
}

TEST_F(reactor_hosting, a_wake_from_the_loop_arrives_there_and_not_early) {
  auto log = std::make_shared<thread_log>();
  auto r = make_hosting();
  std::weak_ptr<net::reactor> weak = r;
  using clock = std::chrono::steady_clock;
  auto due = std::make_shared<std::atomic<int64_t>>(0);
  auto late_by = std::make_shared<std::atomic<int64_t>>(-1);
  auto owner = spawn([=](caf::event_based_actor* self) -> caf::behavior {
    return {
      [=](net::udp_batch&) {
        auto when = clock::now() + std::chrono::microseconds{300};
        auto loop = weak.lock();
        if (loop && loop->on_loop_thread()
            && loop->wake_at(when, caf::actor_cast<caf::actor>(self),
                             caf::make_message(std::string{"wake"}))) {
          // The first wake taken is the first due (another poke's may
          // follow it).
          int64_t unset = 0;
          due->compare_exchange_strong(unset, when.time_since_epoch().count());
          log->add("scheduled");
        }
      },
      [=](const std::string&) {
        int64_t unset = -1;
        late_by->compare_exchange_strong(
          unset, clock::now().time_since_epoch().count() - due->load());
        log->add("woken");
      },
    };
  });
  // Not from another thread: the caller is told to use CAF's clock.
  EXPECT_FALSE(r->on_loop_thread());
  EXPECT_FALSE(r->wake_at(clock::now(), owner, caf::make_message(1)));
  poke_until_scheduled(*r, owner, *log);
  ASSERT_TRUE(eventually([&] {
    return !log->thread_of("woken").empty();
  }))
    << log->describe();
  EXPECT_EQ(log->thread_of("woken"), "mcz.reactor") << log->describe();
  EXPECT_GE(late_by->load(), 0)
    << "woken " << -late_by->load() << " ns before the time asked for";
}

TEST_F(reactor_hosting, wakes_pending_when_the_loop_ends_go_to_cafs_clock) {
  auto log = std::make_shared<thread_log>();
  auto r = make_hosting();
  std::weak_ptr<net::reactor> weak = r;
  auto owner = spawn([=](caf::event_based_actor* self) -> caf::behavior {
    return {
      [=](net::udp_batch&) {
        auto loop = weak.lock();
        auto when = std::chrono::steady_clock::now() + 200ms;
        if (loop
            && loop->wake_at(when, caf::actor_cast<caf::actor>(self),
                             caf::make_message(std::string{"wake"}))) {
          log->add("scheduled");
        }
      },
      [=](const std::string&) {
        log->add("woken");
      },
    };
  });
  poke_until_scheduled(*r, owner, *log);
  r->stop();
  reactors_.clear();
  r.reset();
  ASSERT_TRUE(eventually([&] {
    return !log->thread_of("woken").empty();
  }))
    << log->describe();
  EXPECT_NE(log->thread_of("woken"), "mcz.reactor") << log->describe();
}

} // namespace
