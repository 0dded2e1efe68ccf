// SPDX-License-Identifier: Apache-2.0
// Option validation of the reactor, its UDP sockets and TCP connections,
// and the UDP fault-injection filter.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/net/internal/reactor_impl.hpp"
#include "mycorrizal/net/reactor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <string_view>

namespace mycorrizal::net {

// -- option validation --------------------------------------------------------

namespace detail {

error bad_field(std::string_view field, std::string_view what) {
  return error{errc::invalid_config, fmt::format("{}: {}", field, what)};
}

} // namespace detail

void udp_filter::block(const ip_endpoint& from) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (std::find(blocked_.begin(), blocked_.end(), from) == blocked_.end()) {
    blocked_.push_back(from);
  }
}

void udp_filter::unblock(const ip_endpoint& from) {
  std::lock_guard<std::mutex> guard{mtx_};
  blocked_.erase(std::remove(blocked_.begin(), blocked_.end(), from),
                 blocked_.end());
}

bool udp_filter::blocks(const ip_endpoint& from) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return std::find(blocked_.begin(), blocked_.end(), from) != blocked_.end();
}

expected<void> udp_options::validate() const {
  if (max_datagram_size == 0 || max_datagram_size > 65535) {
    return unexpected{
      bad_field("udp.max_datagram_size",
                fmt::format("must be in 1..65535, got {}", max_datagram_size))};
  }
  if (batch_size == 0 || batch_size > 1024) {
    return unexpected{bad_field(
      "udp.batch_size", fmt::format("must be in 1..1024, got {}", batch_size))};
  }
  if (receive_buffer > INT_MAX / 2 || send_buffer > INT_MAX / 2) {
    return unexpected{
      bad_field("udp.receive_buffer/send_buffer", "must be below 1 GiB")};
  }
  if (reorder_every_nth != 0 && reorder_max_hold.count() <= 0) {
    return unexpected{
      bad_field("udp.reorder_max_hold", "must be positive with reordering")};
  }
  return {};
}

expected<void> tcp_options::validate() const {
  if (deadline.count() < 0) {
    return unexpected{bad_field("tcp.deadline", "must not be negative")};
  }
  if (idle_timeout.count() < 0) {
    return unexpected{bad_field("tcp.idle_timeout", "must not be negative")};
  }
  if (max_write_queue == 0) {
    return unexpected{bad_field("tcp.max_write_queue", "must be at least 1")};
  }
  if (read_chunk == 0 || read_chunk > (size_t{16} << 20)) {
    return unexpected{
      bad_field("tcp.read_chunk",
                fmt::format("must be in 1..16 MiB, got {}", read_chunk))};
  }
  if (max_connections == 0) {
    return unexpected{bad_field("tcp.max_connections", "must be at least 1")};
  }
  if (backlog < 0) {
    return unexpected{bad_field("tcp.backlog", "must not be negative")};
  }
  return {};
}

expected<void> reactor_config::validate() const {
  if (max_batches_per_wakeup == 0) {
    return unexpected{
      bad_field("reactor.max_batches_per_wakeup", "must be at least 1")};
  }
  if (max_accepts_per_wakeup == 0) {
    return unexpected{
      bad_field("reactor.max_accepts_per_wakeup", "must be at least 1")};
  }
  if (max_hosted == 0 || max_hosted > 4096) {
    return unexpected{bad_field("reactor.max_hosted", "must be 1..4096")};
  }
  if (hosted_budget.count() <= 0) {
    return unexpected{bad_field("reactor.hosted_budget", "must be positive")};
  }
  if (hosted_throughput == 0) {
    return unexpected{
      bad_field("reactor.hosted_throughput", "must be at least 1")};
  }
  return {};
}

} // namespace mycorrizal::net
