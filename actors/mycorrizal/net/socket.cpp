// SPDX-License-Identifier: Apache-2.0
// Descriptor and address helpers that the UDP and the TCP parts share.
#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/net/internal/reactor_impl.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace mycorrizal::net::detail {

// -- system helpers -----------------------------------------------------------

std::string system_message(int err) {
  if (err == ECONNREFUSED) {
    return "connection refused";
  }
  return std::system_category().message(err);
}

error sys_error(std::string_view what, int err) {
  return error{errc::connection_lost,
               fmt::format("{}: {}", what, system_message(err))};
}

int family_of(const ip_endpoint& ep) noexcept {
  return ep.is_v4() ? AF_INET : AF_INET6;
}

bool to_sockaddr(const ip_endpoint& ep, int family, sockaddr_storage& out,
                 socklen_t& len) noexcept {
  std::memset(&out, 0, sizeof(out));
  const auto& b = ep.bytes();
  if (family == AF_INET) {
    if (!ep.is_v4()) {
      return false;
    }
    auto* sa = reinterpret_cast<sockaddr_in*>(&out);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(ep.port());
    std::memcpy(&sa->sin_addr, b.data() + 12, 4);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* sa = reinterpret_cast<sockaddr_in6*>(&out);
  sa->sin6_family = AF_INET6;
  sa->sin6_port = htons(ep.port());
  std::memcpy(&sa->sin6_addr, b.data(), 16);
  len = sizeof(sockaddr_in6);
  return true;
}

ip_endpoint from_sockaddr(const sockaddr_storage& ss) noexcept {
  if (ss.ss_family == AF_INET) {
    const auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
    auto addr = ntohl(sa->sin_addr.s_addr);
    return ip_endpoint::v4(static_cast<uint8_t>(addr >> 24),
                           static_cast<uint8_t>(addr >> 16),
                           static_cast<uint8_t>(addr >> 8),
                           static_cast<uint8_t>(addr), ntohs(sa->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
    auto bytes = std::span{reinterpret_cast<const std::byte*>(&sa->sin6_addr),
                           16};
    if (auto ep = ip_endpoint::from_bytes(bytes, ntohs(sa->sin6_port))) {
      return *ep;
    }
  }
  return ip_endpoint{};
}

expected<unique_fd> open_socket(int family, int type, std::string_view what) {
  unique_fd fd{::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!fd) {
    return unexpected{sys_error(fmt::format("socket({})", what), errno)};
  }
  return fd;
}

expected<void> bind_socket(int fd, int family, const ip_endpoint& at,
                           std::string_view what) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  to_sockaddr(at, family, ss, len);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return unexpected{
      sys_error(fmt::format("bind {} {}", what, to_string(at)), errno)};
  }
  return {};
}

ip_endpoint local_endpoint(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ip_endpoint{};
  }
  return from_sockaddr(ss);
}

int socket_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    return errno;
  }
  return err;
}

bool set_int_option(int fd, int level, int name, int value) noexcept {
  return ::setsockopt(fd, level, name, &value, sizeof(value)) == 0;
}

namespace {

int get_int_option(int fd, int level, int name) noexcept {
  int value = 0;
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, level, name, &value, &len) != 0) {
    return -1;
  }
  return value;
}

} // namespace

size_t raise_buffer(int fd, int name, int force_name, size_t wanted) noexcept {
  if (wanted > 0) {
    auto value = static_cast<int>(wanted);
    set_int_option(fd, SOL_SOCKET, name, value);
    // Linux reports twice the requested size (bookkeeping overhead).
    if (get_int_option(fd, SOL_SOCKET, name) / 2 < value) {
      set_int_option(fd, SOL_SOCKET, force_name, value);
    }
  }
  auto granted = get_int_option(fd, SOL_SOCKET, name);
  return granted < 0 ? 0 : static_cast<size_t>(granted);
}

} // namespace mycorrizal::net::detail
