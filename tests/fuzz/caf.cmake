# SPDX-License-Identifier: Apache-2.0
# caf_payload_fuzz: CAF message payloads a peer may send (flag_caf_message)
# through detail::decode_caf_message; include() this from
# tests/fuzz/CMakeLists.txt. The fuzz build is core-only, so the target
# compiles the one actors-layer file it tests and links Debian's CAF
# directly (not instrumented: coverage comes from our side only).
include(mycorrizal_caf)
add_executable(caf_payload_fuzz ${CMAKE_CURRENT_LIST_DIR}/caf_payload.cpp
               ${PROJECT_SOURCE_DIR}/actors/mycorrizal/apps/caf_payload.cpp)
target_include_directories(caf_payload_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/actors)
target_link_libraries(caf_payload_fuzz PRIVATE mycorrizal::core CAF::core)
target_link_options(caf_payload_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(caf_payload_fuzz)

# Seeds: inputs that once failed (infinite-double: a decoded +inf hung
# CAF 0.17's serializer when encoded again).
mycorrizal_fuzz_run(caf_payload caf_payload_fuzz 300000 30 4096
                    ${CMAKE_CURRENT_LIST_DIR}/corpus/caf_payload)
