# SPDX-License-Identifier: Apache-2.0
# quic_datagram_fuzz: arbitrary datagrams into a QUIC server endpoint and a
# handshaking client (router, Version Negotiation, accept, ngtcp2 decoding);
# include() this from tests/fuzz/CMakeLists.txt.
add_executable(quic_datagram_fuzz ${CMAKE_CURRENT_LIST_DIR}/quic_datagram.cpp)
target_link_libraries(quic_datagram_fuzz PRIVATE mycorrizal::core)
target_link_options(quic_datagram_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(quic_datagram_fuzz)

set(quic_fuzz_dir ${CMAKE_CURRENT_BINARY_DIR}/quic_datagram)
add_test(NAME fuzz.quic_datagram
  COMMAND sh -c [[rm -rf "$1" && mkdir -p "$1/corpus" "$1/artifacts" &&
exec "$0" -runs=200000 -max_total_time=30 -max_len=8192 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$1/artifacts/" "$1/corpus"]]
          $<TARGET_FILE:quic_datagram_fuzz> ${quic_fuzz_dir})
set_tests_properties(fuzz.quic_datagram PROPERTIES LABELS fuzz TIMEOUT 120)
