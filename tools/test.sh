#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mycorrizal's whole test run: set-up, lint, every build flavour, every tier.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: tools/test.sh [--quick] [--help]

Installs what is missing (tools/setup.sh), then builds and tests Mycorrizal:
  1. lint     clang-format check of every C++ file
  2. release  RelWithDebInfo (g++, line tables only): libraries, tools, tests, check_headers,
              and the benchmarks (built so that they keep compiling, never
              run: they are not tests); ctest tiers unit, actors,
              integration, system
  3. asan     ASan+UBSan build of everything but the benchmarks, every tier
  4. tsan     TSan build of the pure cores (no CAF), unit tier but the
              single-threaded gossip simulations
  5. fuzz     clang + libFuzzer: each fuzz target for a bounded number of runs
  6. tidy     clang-tidy on our sources (compile database of the release build)
It ends with one line 'N passed, N failed' over all ctest runs, and exits
non-zero if anything failed.

Options:
  --quick   release build and its tests only (for a fast local loop)
  --help    this text

Environment:
  BUILD_ROOT  where the build trees go (default: ./build)
  JOBS        parallel build jobs (default: number of cores)
USAGE
}

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_root=${BUILD_ROOT:-$root/build}
jobs=${JOBS:-$(nproc)}
passed=0
failed=0
failures=()
failed_logs=()
start=$(date +%s)

step() { printf '\n=== %s (%ds)\n' "$*" "$(( $(date +%s) - start ))"; }

# Runs ctest in build dir $1 with extra args; adds its counts to the totals.
run_ctest() {
  local dir=$1; shift
  local log="$dir/ctest.log"
  local rc=0
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" 2>&1 | tee "$log" || rc=$?
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then
    if grep -q 'No tests were found' "$log"; then
      failures+=("$(basename "$dir"): no tests found"); failed=$((failed + 1))
    elif [ "$rc" -ne 0 ]; then
      failures+=("$(basename "$dir"): ctest failed ($rc)"); failed=$((failed + 1))
    fi
    return
  fi
  local f n
  f=$(sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  n=$(sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
  passed=$((passed + n - f))
  failed=$((failed + f))
  if [ "$f" -ne 0 ]; then
    failures+=("$(basename "$dir"): $f failed"); failed_logs+=("$log")
  fi
}

# Prints the last lines each failed test of ctest log $1 printed, so that a
# CI log cut to its end still shows why.
failed_output() {
  awk -v keep=60 '
    function flush() {
      if (!grab) return
      s = n > keep ? n - keep : 0
      if (s > 0) printf "    [... %d lines]\n", s
      for (i = s; i < n; i++) print "    " buf[i % keep]
      grab = 0
    }
    /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / {
      flush()
      if ($0 ~ /\*\*\*|Failed|BAD_COMMAND|Timeout|Exception/) {
        print "--- " $0; grab = 1; n = 0
      }
      next
    }
    /^ *Start +[0-9]+: / || /^The following tests FAILED/ { flush(); next }
    grab { buf[n % keep] = $0; n++ }
    END { flush() }
  ' "$1"
}

configure_build() {
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
  ninja -C "$dir" -j "$jobs"
}

step "setup"
bash "$root/tools/setup.sh"
mkdir -p "$build_root"

if [ "$quick" -eq 0 ]; then
  step "lint: clang-format"
  mapfile -t sources < <(git ls-files -- '*.cpp' '*.hpp')
  if ! clang-format --dry-run -Werror "${sources[@]}"; then
    failures+=("clang-format"); failed=$((failed + 1))
  fi
fi

step "release build"
# -g1 (line tables): backtraces keep file and line; full debug info would
# cost a sixth of the compile time (peers.cpp: 36 s with -g, 30 s with -g1).
configure_build "$build_root/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  -DMYCORRIZAL_BUILD_TESTS=ON -DMYCORRIZAL_BUILD_TOOLS=ON \
  -DMYCORRIZAL_BUILD_BENCH=ON
ninja -C "$build_root/release" -j "$jobs" check_headers
step "release benchmarks (built, never run)"
ninja -C "$build_root/release" -j "$jobs" benchmarks
step "release tests"
run_ctest "$build_root/release"

if [ "$quick" -eq 0 ]; then
  step "asan+ubsan build"
  # -g1 as in the release build: sanitizer reports keep file and line, and
  # the build is a sixth shorter than with full debug info.
  configure_build "$build_root/asan" -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_CXX_FLAGS_DEBUG=-g1" \
    -DMYCORRIZAL_SANITIZE=address -DMYCORRIZAL_BUILD_BENCH=OFF
  step "asan+ubsan tests"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$build_root/asan"

  step "tsan build (pure cores)"
  configure_build "$build_root/tsan" -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_CXX_FLAGS_DEBUG=-g1" \
    -DMYCORRIZAL_SANITIZE=thread -DMYCORRIZAL_CORE_ONLY=ON
  step "tsan tests"
  # Not the gossip simulations: they drive many membership cores on one
  # thread in virtual time, so TSan has no second thread to check them
  # against, and under it they took 320 s of the tier (213 s for one).
  # The release and ASan tiers run them.
  TSAN_OPTIONS=halt_on_error=1 run_ctest "$build_root/tsan" -L unit \
    -E '^gossip_simulation\.'

  step "fuzz build (clang + libFuzzer)"
  CXX=clang++ configure_build "$build_root/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMYCORRIZAL_BUILD_FUZZ=ON -DMYCORRIZAL_BUILD_TESTS=OFF \
    -DMYCORRIZAL_CORE_ONLY=ON -DMYCORRIZAL_BUILD_BENCH=OFF
  step "fuzz runs"
  run_ctest "$build_root/fuzz" -L fuzz

  step "lint: clang-tidy"
  mapfile -t tidy_sources < <(git ls-files -- 'libmycorrizal/*.cpp' 'actors/*.cpp' 'tools/*.cpp')
  if ! run-clang-tidy -quiet -j "$jobs" -p "$build_root/release" "${tidy_sources[@]}" \
       >"$build_root/tidy.log" 2>&1; then
    grep -E 'error:|warning:' "$build_root/tidy.log" | sort -u | head -n 50
    failures+=("clang-tidy"); failed=$((failed + 1))
  fi
fi

step "summary"
for log in "${failed_logs[@]+"${failed_logs[@]}"}"; do
  echo "what the failed tests of $log printed (the end of each):"
  failed_output "$log"
done
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "took $(( $(date +%s) - start ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
