# SPDX-License-Identifier: Apache-2.0
# gossip_decode_fuzz: the memberlist decoders (packet, stream, LZW, AES-GCM)
# under arbitrary bytes; include() this from tests/fuzz/CMakeLists.txt.
add_executable(gossip_decode_fuzz ${CMAKE_CURRENT_LIST_DIR}/gossip_decode.cpp)
target_link_libraries(gossip_decode_fuzz PRIVATE mycorrizal::core)
target_link_options(gossip_decode_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(gossip_decode_fuzz)

mycorrizal_fuzz_run(gossip_decode gossip_decode_fuzz 300000 45 4096)

# gossip_membership_fuzz: the SWIM core driven by arbitrary operation scripts.
add_executable(gossip_membership_fuzz
               ${CMAKE_CURRENT_LIST_DIR}/gossip_membership.cpp)
target_link_libraries(gossip_membership_fuzz PRIVATE mycorrizal::core)
target_link_options(gossip_membership_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(gossip_membership_fuzz)

mycorrizal_fuzz_run(gossip_membership gossip_membership_fuzz 100000 40 2048)
