// SPDX-License-Identifier: Apache-2.0
// The atoms of Mycorrizal's actor interfaces, and the local-only message
// types more than one interface uses.
#pragma once

#include "mycorrizal/endpoint.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

namespace mycorrizal {

// -- membership ---------------------------------------------------------------

using join_atom = caf::atom_constant<caf::atom("join")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using members_atom = caf::atom_constant<caf::atom("members")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using keyop_atom = caf::atom_constant<caf::atom("keyop")>;
using keys_atom = caf::atom_constant<caf::atom("keys")>;
using local_atom = caf::atom_constant<caf::atom("local")>;

// -- transport ----------------------------------------------------------------

using dial_atom = caf::atom_constant<caf::atom("dial")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using reset_atom = caf::atom_constant<caf::atom("reset")>;
using connections_atom = caf::atom_constant<caf::atom("conns")>;

// -- peers --------------------------------------------------------------------

using nodes_atom = caf::atom_constant<caf::atom("nodes")>;
using apps_atom = caf::atom_constant<caf::atom("apps")>;

// -- everyone -----------------------------------------------------------------

using stats_atom = caf::atom_constant<caf::atom("stats")>;

} // namespace mycorrizal

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycorrizal::ip_endpoint)
