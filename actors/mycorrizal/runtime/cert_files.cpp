// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/runtime/cert_files.hpp"

#include "mycorrizal/errc.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>

namespace mycorrizal::certs {

namespace {

namespace fs = std::filesystem;

// Certificates start a few minutes in the past, so that a peer whose clock
// is slightly behind already accepts them.
constexpr auto backdate = std::chrono::minutes{5};

void random_fill(std::span<std::byte> out) {
  static std::random_device dev; // /dev/urandom on Linux
  for (auto& b : out) {
    b = static_cast<std::byte>(dev() & 0xff);
  }
}

unexpected<error> fail(std::string text) {
  return unexpected{error{errc::invalid_config, std::move(text)}};
}

expected<void> make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return fail(fmt::format("cannot create directory '{}': {}", dir.string(),
                            ec.message()));
  }
  return {};
}

} // namespace

expected<void> write_file(const std::string& path, const std::string& text,
                          unsigned mode, bool force) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  int fd = ::open(path.c_str(), flags, static_cast<mode_t>(mode));
  if (fd < 0) {
    auto code = errno;
    return fail(
      code == EEXIST
        ? fmt::format("'{}' exists; use --force to replace it", path)
        : fmt::format("cannot create '{}': {}", path, std::strerror(code)));
  }
  // The mode of open() applies only to new files; enforce it either way.
  bool ok = ::fchmod(fd, static_cast<mode_t>(mode)) == 0;
  size_t done = 0;
  while (ok && done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  auto code = errno;
  if (::close(fd) != 0) {
    ok = false;
  }
  if (!ok) {
    return fail(
      fmt::format("cannot write '{}': {}", path, std::strerror(code)));
  }
  return {};
}

expected<quic::cert_and_key>
create_ca(const std::string& dir, const std::string& common_name,
          std::chrono::seconds validity, bool force) {
  quic::ca_options opts;
  opts.common_name = common_name;
  opts.not_before = std::chrono::system_clock::now() - backdate;
  opts.validity = validity;
  auto ca = quic::make_ca(opts, random_fill);
  if (!ca) {
    return unexpected{ca.error()};
  }
  fs::path d{dir};
  if (auto ok = make_dir(d); !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = write_file((d / "ca.key").string(), ca->key_pem, 0600, force);
      !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = write_file((d / "ca.pem").string(), ca->cert_pem, 0644, force);
      !ok) {
    return unexpected{ok.error()};
  }
  return ca;
}

expected<quic::cert_and_key>
create_node(const std::string& ca_dir, const std::string& name,
            const std::string& out_dir, std::chrono::seconds validity,
            bool force) {
  if (auto ok = quic::validate_node_name(name); !ok) {
    return unexpected{ok.error()};
  }
  fs::path cdir{ca_dir};
  auto cert = quic::read_file((cdir / "ca.pem").string());
  if (!cert) {
    return unexpected{cert.error()};
  }
  auto key = quic::read_file((cdir / "ca.key").string());
  if (!key) {
    return unexpected{key.error()};
  }
  quic::node_options opts;
  opts.name = name;
  opts.not_before = std::chrono::system_clock::now() - backdate;
  opts.validity = validity;
  auto node = quic::make_node_cert({*cert, *key}, opts, random_fill);
  if (!node) {
    return unexpected{node.error()};
  }
  fs::path dir{out_dir};
  if (auto ok = make_dir(dir); !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = write_file((dir / (name + ".key")).string(), node->key_pem,
                           0600, force);
      !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = write_file((dir / (name + ".pem")).string(), node->cert_pem,
                           0644, force);
      !ok) {
    return unexpected{ok.error()};
  }
  // The node needs the CA certificate (not its key) next to its own.
  auto ca_copy = dir / "ca.pem";
  std::error_code ec;
  if (!fs::equivalent(ca_copy, cdir / "ca.pem", ec)) {
    auto existing = quic::read_file(ca_copy.string());
    if (!existing || *existing != *cert) {
      if (auto ok = write_file(ca_copy.string(), *cert, 0644, force); !ok) {
        return unexpected{ok.error()};
      }
    }
  }
  return node;
}

expected<quic::credentials> dev_credentials(const std::string& data_dir,
                                            const std::string& name) {
  if (auto ok = quic::validate_node_name(name); !ok) {
    return unexpected{ok.error()};
  }
  fs::path dir{data_dir};
  if (auto ok = make_dir(dir); !ok) {
    return unexpected{ok.error()};
  }
  auto lock_path = (dir / ".lock").string();
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) {
    return fail(
      fmt::format("cannot open '{}': {}", lock_path, std::strerror(errno)));
  }
  while (::flock(lock, LOCK_EX) != 0) {
    if (errno != EINTR) {
      auto code = errno;
      ::close(lock);
      return fail(
        fmt::format("cannot lock '{}': {}", lock_path, std::strerror(code)));
    }
  }
  auto result = [&]() -> expected<quic::credentials> {
    std::error_code ec;
    constexpr auto ten_years = std::chrono::hours{24 * 3650};
    if (!fs::exists(dir / "ca.pem", ec)) {
      auto ca = create_ca(data_dir, "Mycorrizal development CA", ten_years,
                          false);
      if (!ca) {
        return unexpected{ca.error()};
      }
    }
    if (!fs::exists(dir / (name + ".pem"), ec)) {
      auto node = create_node(data_dir, name, data_dir, ten_years, false);
      if (!node) {
        return unexpected{node.error()};
      }
    }
    return quic::credentials::from_files((dir / "ca.pem").string(),
                                         (dir / (name + ".pem")).string(),
                                         (dir / (name + ".key")).string(),
                                         std::chrono::system_clock::now());
  }();
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return result;
}

} // namespace mycorrizal::certs
