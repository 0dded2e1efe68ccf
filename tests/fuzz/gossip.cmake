# SPDX-License-Identifier: Apache-2.0
# gossip_decode_fuzz: the memberlist decoders (packet, stream, LZW, AES-GCM)
# under arbitrary bytes; include() this from tests/fuzz/CMakeLists.txt.
add_executable(gossip_decode_fuzz ${CMAKE_CURRENT_LIST_DIR}/gossip_decode.cpp)
target_link_libraries(gossip_decode_fuzz PRIVATE mycorrizal::core)
target_link_options(gossip_decode_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(gossip_decode_fuzz)

set(gossip_fuzz_dir ${CMAKE_CURRENT_BINARY_DIR}/gossip_decode)
add_test(NAME fuzz.gossip_decode
  COMMAND sh -c [[rm -rf "$1" && mkdir -p "$1/corpus" "$1/artifacts" &&
exec "$0" -runs=300000 -max_total_time=45 -max_len=4096 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$1/artifacts/" "$1/corpus"]]
          $<TARGET_FILE:gossip_decode_fuzz> ${gossip_fuzz_dir})
set_tests_properties(fuzz.gossip_decode PROPERTIES LABELS fuzz TIMEOUT 120)

# gossip_membership_fuzz: the SWIM core driven by arbitrary operation scripts.
add_executable(gossip_membership_fuzz
               ${CMAKE_CURRENT_LIST_DIR}/gossip_membership.cpp)
target_link_libraries(gossip_membership_fuzz PRIVATE mycorrizal::core)
target_link_options(gossip_membership_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(gossip_membership_fuzz)

set(membership_fuzz_dir ${CMAKE_CURRENT_BINARY_DIR}/gossip_membership)
add_test(NAME fuzz.gossip_membership
  COMMAND sh -c [[rm -rf "$1" && mkdir -p "$1/corpus" "$1/artifacts" &&
exec "$0" -runs=100000 -max_total_time=40 -max_len=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$1/artifacts/" "$1/corpus"]]
          $<TARGET_FILE:gossip_membership_fuzz> ${membership_fuzz_dir})
set_tests_properties(fuzz.gossip_membership PROPERTIES LABELS fuzz
                     TIMEOUT 120)
