// SPDX-License-Identifier: Apache-2.0
// Maps mycorrizal::errc into caf::error (category "mycorrizal") and back.
#pragma once

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <cstdint>
#include <string>
#include <utility>

/// Makes `mycorrizal::errc` a CAF 0.17.6 error code enum, so that handlers
/// can `return caf::make_error(errc::node_down, "n2 died");` and a
/// `caf::error` can be assigned or compared with an `errc`.
///
/// This is what `CAF_ERROR_CODE_ENUM(mycorrizal::errc, "mycorrizal")` from
/// `caf/error.hpp` expands to, written out on purpose: CAF 0.17.6 has a
/// second, 1-argument `CAF_ERROR_CODE_ENUM` in `caf/is_error_code_enum.hpp`
/// (not included by `caf/all.hpp`) that silently replaces the first one when
/// included later and only sets a trait 0.17.6 never reads. Do not use the
/// macro for `errc` as well: that would be a redefinition.
namespace caf::detail {

template <>
struct error_factory<mycorrizal::errc> {
  static constexpr bool specialized = true;

  /// The category atom: exactly 10 characters, CAF 0.17's atom limit.
  static constexpr atom_value category = atom("mycorrizal");

  template <class... Ts>
  static message context(Ts&&... xs) {
    return make_message(std::forward<Ts>(xs)...);
  }
};

} // namespace caf::detail

namespace mycorrizal {

/// The CAF error category of `errc`.
constexpr caf::atom_value errc_category = caf::atom("mycorrizal");

/// Converts `x` into a `caf::error` of category "mycorrizal" whose context
/// is the context text (no context when the text is empty). `errc::none`
/// becomes `caf::none`.
caf::error make_caf_error(const error& x);

/// Converts a `caf::error` back:
/// - `caf::none` → `errc::none`;
/// - category "mycorrizal" → its `errc`; the context is the text if the
///   error's context is one string, empty if there is none, and CAF's
///   rendering of the context message otherwise (e.g. `(42, "x")`). A code
///   this version does not know → `errc::remote_error`, with a context
///   naming the code (CAF itself turns code 0 into `caf::none`);
/// - `caf::sec::request_timeout` → `errc::timeout`;
/// - `caf::sec::unexpected_message` → `errc::no_handler`;
/// - anything else (other `sec` values such as `request_receiver_down`,
///   `exit_reason`s, other categories) → `errc::remote_error` with CAF's
///   rendering as context, e.g. `system_error(request_receiver_down)`.
error from_caf_error(const caf::error& x);

/// Renders an error of category "mycorrizal" as `mycorrizal::<enumerator>`,
/// followed by its context message when there is one:
/// `mycorrizal::node_down("n2 died")`. Unknown codes render as
/// `mycorrizal::code_<n>`.
std::string render_caf_error(uint8_t code, const caf::message& context);

/// Registers `render_caf_error` for category "mycorrizal", so that
/// `actor_system::render` prints our errors readably. Call it on the config
/// before constructing the `actor_system`.
void add_error_category(caf::actor_system_config& cfg);

} // namespace mycorrizal
