// SPDX-License-Identifier: Apache-2.0
#include "support/test_pki.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <span>

namespace mycorrizal::test {

namespace {

using namespace std::chrono_literals;

quic::cert_and_key must(expected<quic::cert_and_key> x, const char* what) {
  if (!x) {
    std::fprintf(stderr, "test_pki: cannot make %s: %s\n", what,
                 to_string(x.error()).c_str());
    std::abort();
  }
  return std::move(*x);
}

quic::random_bytes seeded_rng(uint64_t seed) {
  auto gen = std::make_shared<std::mt19937_64>(seed);
  return [gen](std::span<std::byte> out) {
    for (auto& b : out) {
      b = static_cast<std::byte>((*gen)() & 0xff);
    }
  };
}

} // namespace

test_pki& test_pki::get() {
  static test_pki instance;
  return instance;
}

test_pki::test_pki() : rng_(seeded_rng(4242)) {
  auto start = std::chrono::system_clock::now() - 1h;
  ca_ = must(quic::make_ca({"Mycorrizal Test CA", start, 24h * 365}, rng_),
             "the cluster CA");
  foreign_ca_ = must(quic::make_ca({"Foreign Test CA", start, 24h * 365}, rng_),
                     "the foreign CA");
}

const quic::cert_and_key&
test_pki::issue(std::map<std::string, quic::cert_and_key>& cache,
                const quic::cert_and_key& ca, const std::string& name,
                bool expired) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = cache.find(name); i != cache.end()) {
    return i->second;
  }
  auto now = std::chrono::system_clock::now();
  quic::node_options opts;
  opts.name = name;
  if (expired) {
    opts.not_before = now - 24h * 20;
    opts.validity = 24h * 10;
  } else {
    opts.not_before = now - 1h;
    opts.validity = 24h * 30;
  }
  auto made = must(quic::make_node_cert(ca, opts, rng_), name.c_str());
  return cache.emplace(name, std::move(made)).first->second;
}

const quic::cert_and_key& test_pki::node(const std::string& name) {
  return issue(nodes_, ca_, name, false);
}

const quic::cert_and_key& test_pki::foreign_node(const std::string& name) {
  return issue(foreign_nodes_, foreign_ca_, name, false);
}

const quic::cert_and_key& test_pki::expired_node(const std::string& name) {
  return issue(expired_nodes_, ca_, name, true);
}

quic::credentials test_pki::credentials(const std::string& name) {
  return load(node(name), ca_);
}

quic::credentials test_pki::load(const quic::cert_and_key& cert,
                                 const std::string& ca_bundle_pem) {
  auto info = quic::inspect(cert.cert_pem);
  auto when = info ? info->not_before + 1s : std::chrono::system_clock::now();
  auto c = quic::credentials::from_pem(ca_bundle_pem, cert.cert_pem,
                                       cert.key_pem, when);
  if (!c) {
    std::fprintf(stderr, "test_pki: cannot load credentials: %s\n",
                 to_string(c.error()).c_str());
    std::abort();
  }
  return std::move(*c);
}

quic::credentials test_pki::trust_only() const {
  auto c = quic::credentials::trust_only(ca_.cert_pem);
  if (!c) {
    std::fprintf(stderr, "test_pki: cannot load the CA: %s\n",
                 to_string(c.error()).c_str());
    std::abort();
  }
  return std::move(*c);
}

} // namespace mycorrizal::test
