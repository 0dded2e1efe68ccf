# SPDX-License-Identifier: Apache-2.0
# Compiler options for our own targets: warnings and sanitizers.

# Warnings apply to our targets only (vendor headers are SYSTEM includes).
function(mycorrizal_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
                         -Wimplicit-fallthrough)
  if(MYCORRIZAL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(MYCORRIZAL_SANITIZE STREQUAL "address")
  # -fno-sanitize=null: CAF 0.17.6's init_fun_factory binds a null reference on
  # every function-based spawn (PLATFORM.md §2.10); everything else stays on.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize=null
                      -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(MYCORRIZAL_SANITIZE STREQUAL "thread")
  if(NOT MYCORRIZAL_CORE_ONLY)
    message(FATAL_ERROR "TSan needs MYCORRIZAL_CORE_ONLY=ON: Debian's CAF is "
                        "not TSan-instrumented (PLATFORM.md §2.10)")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT MYCORRIZAL_SANITIZE STREQUAL "")
  message(FATAL_ERROR "MYCORRIZAL_SANITIZE must be empty, 'address' or 'thread'")
endif()

# libFuzzer build (clang only): instrument everything for coverage, link the
# fuzz targets themselves with -fsanitize=fuzzer (tests/fuzz).
if(MYCORRIZAL_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MYCORRIZAL_BUILD_FUZZ needs clang++ (libFuzzer)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
