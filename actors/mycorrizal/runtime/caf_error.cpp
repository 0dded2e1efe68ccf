// SPDX-License-Identifier: Apache-2.0
// Maps mycorrizal::errc into caf::error (category "mycorrizal") and back.
#include "mycorrizal/runtime/caf_error.hpp"

#include <caf/sec.hpp>

#include <string_view>

namespace mycorrizal {

namespace {

static_assert(caf::detail::error_factory<errc>::specialized);
static_assert(caf::detail::error_factory<errc>::category == errc_category);

std::string context_text(const caf::message& ctx) {
  if (ctx.empty()) {
    return {};
  }
  if (ctx.match_elements<std::string>()) {
    return ctx.get_as<std::string>(0);
  }
  return caf::to_string(ctx);
}

} // namespace

caf::error make_caf_error(const error& x) {
  if (!x) {
    return caf::none;
  }
  if (x.context().empty()) {
    return caf::make_error(x.code());
  }
  return caf::make_error(x.code(), x.context());
}

error from_caf_error(const caf::error& x) {
  if (!x) {
    return {};
  }
  if (x.category() == errc_category) {
    if (auto code = errc_from_code(x.code()); code && *code != errc::none) {
      return {*code, context_text(x.context())};
    }
    std::string text = "unknown mycorrizal error code ";
    text += std::to_string(x.code());
    if (auto ctx = context_text(x.context()); !ctx.empty()) {
      text += ": ";
      text += ctx;
    }
    return {errc::remote_error, std::move(text)};
  }
  if (x == caf::sec::request_timeout) {
    return errc::timeout;
  }
  if (x == caf::sec::request_receiver_down) {
    // A remote handle that quit (its node is down) before it took the
    // request.
    return {errc::node_down, "the receiver had ended"};
  }
  if (x == caf::sec::unexpected_message) {
    return {errc::no_handler, caf::to_string(x)};
  }
  return {errc::remote_error, caf::to_string(x)};
}

std::string render_caf_error(uint8_t code, const caf::message& context) {
  std::string result = "mycorrizal::";
  if (auto x = errc_from_code(code)) {
    result += to_string(*x);
  } else {
    result += "code_";
    result += std::to_string(code);
  }
  if (!context.empty()) {
    result += caf::to_string(context);
  }
  return result;
}

void add_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(errc_category, [](uint8_t code, caf::atom_value,
                                           const caf::message& context) {
    return render_caf_error(code, context);
  });
}

} // namespace mycorrizal
