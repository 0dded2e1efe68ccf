// SPDX-License-Identifier: Apache-2.0
// The status page: one HTML document, its style and script inline (no
// external assets), that renders `/status` and refreshes itself.
#include "mycorrizal/serve/http.hpp"

#include <string>

namespace mycorrizal {

namespace {

constexpr const char* page = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mycorrizal</title>
<style>
  :root { --fg: #1d232a; --muted: #66707a; --line: #dde2e6; --ok: #1f8f4e;
          --warn: #b7791f; --bad: #c53030; --bg: #f7f8f9; }
  body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg);
         background: var(--bg); margin: 0; }
  header { background: #23313f; color: #fff; padding: 12px 20px;
           display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: #c8d1da; }
  main { padding: 16px 20px; display: grid; gap: 16px;
         grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
  section { background: #fff; border: 1px solid var(--line);
            border-radius: 6px; padding: 10px 14px; }
  h2 { font-size: 15px; margin: 4px 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px 4px 0;
           border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .state { font-weight: 600; }
  .alive { color: var(--ok); } .suspect { color: var(--warn); }
  .dead, .failed { color: var(--bad); } .left { color: var(--muted); }
  .empty { color: var(--muted); font-style: italic; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1 id="title">Mycorrizal</h1>
  <span class="meta" id="summary">loading…</span>
  <span class="meta" id="updated"></span>
  <span id="error"></span>
</header>
<main>
  <section><h2>Members</h2><table id="members"></table></section>
  <section><h2>Connections</h2><table id="connections"></table></section>
  <section><h2>Applications</h2><table id="applications"></table></section>
  <section><h2>Buckets</h2><table id="buckets"></table></section>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(id, heads, rows, empty) {
  const table = document.getElementById(id);
  table.replaceChildren();
  if (rows.length === 0) {
    const tr = table.insertRow();
    const td = cell(empty, "empty");
    td.colSpan = heads.length;
    tr.appendChild(td);
    return;
  }
  const head = table.createTHead().insertRow();
  for (const h of heads) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of r) tr.appendChild(c);
  }
}

function bytes(n) {
  if (n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function render(s) {
  document.getElementById("title").textContent = "Mycorrizal · " + s.node.name;
  const alive = s.members.filter(m => m.state === "alive").length;
  let summary = alive + " of " + s.members.length + " members alive";
  if (s.node.health_score !== undefined)
    summary += " · health score " + s.node.health_score;
  summary += s.node.ready ? " · ready" : " · not ready";
  if (s.node.failure) summary += " · FAILED: " + s.node.failure;
  document.getElementById("summary").textContent = summary;
  fill("members", ["name", "state", "address", "incarnation", "kind"],
       s.members.map(m => [
         cell(m.name), cell(m.state, "state " + m.state), cell(m.address),
         cell(m.incarnation, "num"),
         cell(m.quic_port ? "mycorrizal" : "gossip only")]),
       "no members");
  fill("connections", ["peer", "remote", "dir", "RTT ms", "sent", "received",
                       "lost"],
       s.connections.map(c => [
         cell(c.peer), cell(c.remote), cell(c.incoming ? "in" : "out"),
         cell(c.rtt_ms.toFixed(2), "num"), cell(bytes(c.bytes_sent), "num"),
         cell(bytes(c.bytes_received), "num"), cell(c.lost_packets, "num")]),
       "no connections");
  const streams = [];
  for (const a of s.applications)
    for (const st of a.streams)
      streams.push([cell(a.name), cell(st.name || "(default)"),
                    cell(st.messages_in, "num"), cell(st.messages_out, "num"),
                    cell(st.requests_failed, "num"),
                    cell(st.peers.join(", "))]);
  fill("applications", ["application", "stream", "msgs in", "msgs out",
                        "failed requests", "peers"],
       streams, "no applications");
  fill("buckets", ["bucket", "RF", "partitions", "entries here", "bytes here",
                   "primary for", "owners"],
       s.buckets.map(b => [
         cell(b.name), cell(b.rf, "num"), cell(b.partitions, "num"),
         cell(b.entries ?? "", "num"), cell(bytes(b.bytes), "num"),
         cell(b.partitions_primary ?? "", "num"), cell(b.owners.join(", "))]),
       "no buckets");
}

async function refresh() {
  try {
    const res = await fetch("status", { headers, cache: "no-store" });
    if (!res.ok) throw new Error("status: HTTP " + res.status);
    render(await res.json());
    document.getElementById("error").textContent = "";
    document.getElementById("updated").textContent =
      "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("error").textContent = String(e.message || e);
  }
}

refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";

} // namespace

const std::string& status_page_html() {
  static const std::string html{page};
  return html;
}

} // namespace mycorrizal
