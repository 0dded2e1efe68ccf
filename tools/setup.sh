#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian 12 package Mycorrizal needs to build, test and benchmark.
# Idempotent: installs only what is missing, and refreshes the package lists only then.
# Nothing is downloaded from outside Debian's archive.
set -euo pipefail

packages=(
  # toolchain
  build-essential g++ clang clang-format clang-tidy libclang-rt-14-dev cmake ninja-build pkg-config git
  python3
  # runtime dependencies (PLATFORM.md §0, §8)
  libcaf-dev libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev gnutls-bin
  libspdlog-dev libfmt-dev libmsgpack-cxx-dev libcli11-dev nlohmann-json3-dev
  libcpp-httplib-dev
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # the Redis yardstick: redis-server, redis-cli and redis-benchmark, and the
  # Python client (bench/cache, the RESP front door's tests)
  redis-server redis-tools python3-redis
  # the HTTP front door's tests: promtool and a Prometheus server that
  # scrapes a cluster, headless Chromium for the status page
  prometheus chromium
  # system tests: a real HashiCorp memberlist peer built offline from Debian's Go sources
  # (PLATFORM.md §8), and network namespaces for partition and loss tests
  golang-go golang-github-hashicorp-memberlist-dev iproute2 iptables
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
