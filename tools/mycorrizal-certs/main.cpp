// SPDX-License-Identifier: Apache-2.0
// mycorrizal-certs: the cluster's certificates. `ca` creates a CA, `node`
// issues a node certificate signed by it, `show` prints a certificate.
// Everything goes through mycorrizal::quic (GnuTLS API, no shell-out).
#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/runtime/cert_files.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;
using namespace mycorrizal;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

int fail(const std::string& text) {
  std::fprintf(stderr, "mycorrizal-certs: %s\n", text.c_str());
  return exit_failure;
}

std::chrono::seconds days(int n) {
  return std::chrono::hours{24} * n;
}

int run_ca(const std::string& out, const std::string& cn, int n_days,
           bool force) {
  auto ca = certs::create_ca(out, cn, days(n_days), force);
  if (!ca) {
    return fail(to_string(ca.error()));
  }
  fs::path dir{out};
  std::printf("wrote %s (certificate) and %s (private key, mode 0600)\n",
              (dir / "ca.pem").c_str(), (dir / "ca.key").c_str());
  return 0;
}

int run_node(const std::string& ca_dir, const std::string& name,
             const std::string& out, int n_days, bool force) {
  auto node = certs::create_node(ca_dir, name, out, days(n_days), force);
  if (!node) {
    return fail(to_string(node.error()));
  }
  fs::path dir{out};
  std::printf("wrote %s (certificate), %s (private key, mode 0600) and %s\n",
              (dir / (name + ".pem")).c_str(), (dir / (name + ".key")).c_str(),
              (dir / "ca.pem").c_str());
  return 0;
}

int run_show(const std::string& file) {
  auto pem = quic::read_file(file);
  if (!pem) {
    return fail(to_string(pem.error()));
  }
  auto info = quic::inspect(*pem);
  if (!info) {
    return fail(fmt::format("{}: {}", file, to_string(info.error())));
  }
  std::fputs(quic::to_string(*info).c_str(), stdout);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Creates and inspects the certificates of a Mycorrizal "
               "cluster: one CA, and one certificate per node whose CN (and "
               "SAN dNSName) is the node name. Keys are ECDSA P-256; key "
               "files are written with mode 0600.",
               "mycorrizal-certs"};
  app.require_subcommand(1);

  std::string ca_out;
  std::string ca_cn = "Mycorrizal CA";
  int ca_days = 3650;
  bool ca_force = false;
  auto* ca = app.add_subcommand(
    "ca", "Create a CA: writes DIR/ca.pem and DIR/ca.key (self-signed, "
          "valid from 5 minutes ago)");
  ca->add_option("--out", ca_out, "Directory to write to (created if missing)")
    ->required();
  ca->add_option("--cn", ca_cn, "Common name of the CA")->capture_default_str();
  ca->add_option("--days", ca_days, "Validity in days")
    ->capture_default_str()
    ->check(CLI::Range(1, 36500));
  ca->add_flag("--force", ca_force, "Replace existing files");

  std::string node_ca;
  std::string node_name;
  std::string node_out;
  int node_days = 365;
  bool node_force = false;
  auto* node = app.add_subcommand(
    "node", "Issue a node certificate signed by the CA in --ca: writes "
            "OUT/NAME.pem, OUT/NAME.key and a copy of the CA certificate "
            "OUT/ca.pem (valid from 5 minutes ago; TLS server and client)");
  node->add_option("--ca", node_ca, "Directory holding ca.pem and ca.key")
    ->required();
  node
    ->add_option("--name", node_name,
                 "Node name: CN and SAN DNS name (A-Z a-z 0-9 . - _, at "
                 "most 64)")
    ->required();
  node
    ->add_option("--out", node_out,
                 "Directory to write to (created if missing)")
    ->required();
  node->add_option("--days", node_days, "Validity in days")
    ->capture_default_str()
    ->check(CLI::Range(1, 36500));
  node->add_flag("--force", node_force, "Replace existing files");

  std::string show_file;
  auto* show = app.add_subcommand(
    "show", "Print a PEM certificate: subject CN, issuer, SANs, validity, "
            "key type, purposes, SHA-256 fingerprint");
  show->add_option("FILE", show_file, "PEM certificate file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    // Subcommand help arrives as CallForHelp too; anything else is misuse.
    std::fprintf(stderr, "mycorrizal-certs: %s\nRun with --help for usage.\n",
                 e.what());
    return exit_usage;
  }
  if (ca->parsed()) {
    return run_ca(ca_out, ca_cn, ca_days, ca_force);
  }
  if (node->parsed()) {
    return run_node(node_ca, node_name, node_out, node_days, node_force);
  }
  return run_show(show_file);
}
