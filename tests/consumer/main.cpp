// SPDX-License-Identifier: Apache-2.0
// An outside program built against an installed Mycorrizal: uses the core
// (wire codec), the actors library (CAF error mapping, logging) and CAF.
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/wire/decoder.hpp"
#include "mycorrizal/wire/encoder.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <vector>

int main() {
  using namespace mycorrizal;
  // Core: a frame survives encode and decode.
  std::vector<std::byte> buf;
  if (!wire::append(buf, wire::stream_init{1, "consumer", ""})) {
    std::puts("consumer: encode failed");
    return 1;
  }
  wire::decoder dec;
  wire::bytes_view in{buf};
  auto frame = dec.next(in);
  if (!frame || !*frame
      || std::get<wire::stream_init>(**frame).application != "consumer") {
    std::puts("consumer: decode failed");
    return 1;
  }
  // Actors library: an errc travels through a CAF request.
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  add_error_category(cfg);
  caf::actor_system sys{cfg};
  auto server = sys.spawn([]() -> caf::behavior {
    return {[](int) -> caf::result<int> {
      return make_caf_error(error{errc::node_down, "n2 left"});
    }};
  });
  bool ok = false;
  {
    caf::scoped_actor self{sys};
    self->request(server, std::chrono::seconds(5), 1)
      .receive([](int) {},
               [&](caf::error& err) {
                 ok = from_caf_error(err).code() == errc::node_down;
               });
  }
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  MYCORRIZAL_LOG_INFO("consumer", "request failed as expected: {}", ok);
  std::puts(ok ? "consumer: ok" : "consumer: wrong error");
  return ok ? 0 : 1;
}
