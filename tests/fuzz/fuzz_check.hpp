// SPDX-License-Identifier: Apache-2.0
// The fuzz targets' assertion: prints the failed condition and traps, so
// that libFuzzer records the input (also in builds with NDEBUG).
#pragma once

#include <cstdio>

#define FUZZ_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                  \
      __builtin_trap();                                                     \
    }                                                                       \
  } while (false)
