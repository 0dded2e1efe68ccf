# SPDX-License-Identifier: Apache-2.0
# quic_datagram_fuzz: arbitrary datagrams into a QUIC server endpoint and a
# handshaking client (router, Version Negotiation, accept, ngtcp2 decoding);
# include() this from tests/fuzz/CMakeLists.txt.
add_executable(quic_datagram_fuzz ${CMAKE_CURRENT_LIST_DIR}/quic_datagram.cpp)
target_link_libraries(quic_datagram_fuzz PRIVATE mycorrizal::core)
target_link_options(quic_datagram_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(quic_datagram_fuzz)

mycorrizal_fuzz_run(quic_datagram quic_datagram_fuzz 200000 30 8192)

# tls_stream_fuzz: arbitrary bytes into a TLS server session over a stream
# (the Redis front door's TLS), with or without a real ClientHello first.
add_executable(tls_stream_fuzz ${CMAKE_CURRENT_LIST_DIR}/tls_stream.cpp)
target_link_libraries(tls_stream_fuzz PRIVATE mycorrizal::core)
target_link_options(tls_stream_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(tls_stream_fuzz)

mycorrizal_fuzz_run(tls_stream tls_stream_fuzz 100000 20 8192)
