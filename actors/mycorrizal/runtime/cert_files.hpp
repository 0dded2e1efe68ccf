// SPDX-License-Identifier: Apache-2.0
// Certificate files: a cluster CA and node certificates on disk, and the
// development mode that creates them in a data directory.
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/credentials.hpp"

#include <chrono>
#include <string>

/// Files are PEM: `ca.pem` / `ca.key` for the CA, `<name>.pem` /
/// `<name>.key` for a node. Private keys are written with mode 0600.
namespace mycorrizal::certs {

/// Writes `text` to `path` with `mode`; refuses to replace an existing file
/// unless `force`.
/// @returns `errc::invalid_config` saying which path failed and why.
expected<void> write_file(const std::string& path, const std::string& text,
                          unsigned mode, bool force);

/// Creates a CA in `dir` (`ca.pem`, `ca.key`).
expected<quic::cert_and_key>
create_ca(const std::string& dir, const std::string& common_name,
          std::chrono::seconds validity, bool force);

/// Issues `<name>.pem` / `<name>.key` in `out_dir`, signed by the CA in
/// `ca_dir`, and puts a copy of `ca.pem` next to them.
expected<quic::cert_and_key>
create_node(const std::string& ca_dir, const std::string& name,
            const std::string& out_dir, std::chrono::seconds validity,
            bool force);

/// Development mode: the credentials of node `name` from `data_dir`,
/// creating the directory, a CA (shared by every node that uses the same
/// directory, so local nodes trust each other) and the node's certificate
/// when they do not exist yet. Safe when several processes start at once
/// (an exclusive lock on `data_dir/.lock`). Not for production: the CA key
/// sits next to the nodes' keys.
expected<quic::credentials> dev_credentials(const std::string& data_dir,
                                            const std::string& name);

} // namespace mycorrizal::certs
