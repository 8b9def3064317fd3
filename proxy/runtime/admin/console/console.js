"use strict";
// The console's behaviour: log in with an admin token (kept in sessionStorage), then poll the admin API.
// Data is always written with textContent, never as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = "mcp-sidecar-admin-token";
  let can = [];

  async function api(path, options = {}) {
    const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY), ...(options.headers || {}) };
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401) { logout("Your credential was refused."); throw new Error("401"); }
    return { status: response.status, body: await response.json().catch(() => ({})) };
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function tile(label, value, cls) {
    const node = el("div", label, "tile");
    node.prepend(el("b", value === null || value === undefined ? "–" : value, cls));
    return node;
  }

  async function overview() {
    const { body } = await api("/console/api/overview");
    const recent = body.recent || {};
    const m = body.metrics || {};
    const latency = recent.latency_ms || {};
    const tiles = [
      tile("ready", body.ready ? "yes" : "no", body.ready ? "ok" : "bad"),
      tile("upstream restarts", m.mcp_sidecar_upstream_restarts_total || 0),
      tile("calls / min", recent.per_minute), tile("error rate", recent.error_rate),
      tile("denied", recent.denied), tile("limited", recent.limited),
      tile("cache hit ratio", recent.cache_hit_ratio), tile("p50 ms", latency.p50), tile("p95 ms", latency.p95),
      tile("policy revision", recent.policy_revision),
    ];
    $("overview").replaceChildren(...tiles);
    // Every readiness check as /readyz reports it: upstream state, policy revision and reload errors, stores.
    const checks = Object.entries(body.checks).map(([name, check]) => {
      const row = el("li", null, check.ok ? "" : "bad");
      row.append(el("b", `${name} ${check.ok ? "ok" : "NOT OK"}: `), el("span", check.detail));
      return row;
    });
    $("checks").replaceChildren(...checks);
  }

  function approvalCard(item) {
    const card = el("div", null, "card");
    card.dataset.testid = "approval";
    card.dataset.id = item.id;
    card.append(el("div", `${item.principal} → ${item.target || item.method}`, ""));
    card.append(el("div", `waiting since ${item.created}, until ${item.expires} · id ${item.id}`, "muted"));
    if (item.reasons && item.reasons.length) card.append(el("div", "why: " + item.reasons.join("; ")));
    const args = el("pre", item.arguments_shown === "none" ? "(arguments hidden)"
      : JSON.stringify(item.arguments, null, 2));
    args.dataset.testid = "arguments";
    card.append(args);
    if (item.annotations) card.append(el("div", "annotations: " + JSON.stringify(item.annotations), "muted"));
    if (can.includes("approver")) {
      const actions = el("div", null, "actions");
      const note = el("input");
      note.placeholder = "note (optional)";
      const decide = (verdict) => async () => {
        const { status, body } = await api(`/approvals/${item.id}/${verdict}`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ arguments_hash: item.arguments_hash, note: note.value }),
        });
        if (document.activeElement) document.activeElement.blur();
        if (status !== 200) alert(body.error || "HTTP " + status);
        approvals().catch(() => {});
      };
      const approve = el("button", "Approve");
      approve.onclick = decide("approve");
      const deny = el("button", "Deny");
      deny.onclick = decide("deny");
      actions.append(note, approve, deny);
      card.append(actions);
    }
    return card;
  }

  async function approvals() {
    const { status, body } = await api("/approvals");
    const box = $("approvals");
    if (status !== 200) { box.replaceChildren(el("p", body.error || "HTTP " + status, "error")); return; }
    $("pending-count").textContent = body.pending.length;
    const open = document.activeElement && box.contains(document.activeElement);
    if (open) return; // do not replace a card while someone types a note
    box.replaceChildren(...(body.pending.length ? body.pending.map(approvalCard)
      : [el("p", "None waiting.", "muted")]));
  }

  async function calls() {
    const query = new URLSearchParams(new FormData($("filters")));
    const { body } = await api("/console/api/calls?" + query);
    const rows = (body.calls || []).map((call) => {
      const row = el("tr");
      row.dataset.testid = "call";
      const when = call.ts || new Date(call.time * 1000).toISOString();
      for (const value of [when, call.principal, call.method, call.target, call.outcome, call.approver,
        call.latency_ms]) row.append(el("td", value));
      return row;
    });
    $("calls").tBodies[0].replaceChildren(...rows);
  }

  async function tools() {
    const { body } = await api("/console/api/tools");
    const head = $("tools").tHead.rows[0];
    while (head.cells.length > 5) head.deleteCell(-1);
    if (body.pinned) head.append(el("th", "pin"));
    for (const role of body.roles || []) head.append(el("th", "role " + role));
    const rows = (body.tools || []).map((tool) => {
      const row = el("tr");
      const a = tool.annotations;
      const name = el("td", tool.name);
      name.title = tool.description || "";
      row.append(name);
      for (const hint of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"]) {
        row.append(el("td", a[hint] ? "yes" : "no"));
      }
      if (body.pinned) {
        const pin = el("td", tool.pin.status, tool.pin.status === "pinned" ? "ok" : "bad");
        pin.title = tool.pin.summary;
        row.append(pin);
      }
      for (const role of body.roles || []) row.append(el("td", tool.roles[role] ? "may call" : "hidden"));
      return row;
    });
    $("tools").tBodies[0].replaceChildren(...rows);
  }

  let timers = [];
  function every(ms, fn) { fn().catch(() => {}); timers.push(setInterval(() => fn().catch(() => {}), ms)); }

  async function start() {
    const { status, body } = await api("/console/api/me");
    if (status !== 200) { logout(body.error || "HTTP " + status); return; }
    can = body.can;
    $("who").textContent = `${body.name} (${body.permission})`;
    $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
    every(2000, overview); every(1000, approvals); every(1000, calls); every(15000, tools);
  }

  function logout(message) {
    sessionStorage.removeItem(KEY);
    timers.forEach(clearInterval); timers = [];
    $("login").hidden = false; $("app").hidden = true; $("logout").hidden = true; $("who").textContent = "";
    $("login-error").textContent = message || "";
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    start().catch(() => {});
  });
  $("logout").onclick = () => logout();
  $("filters").addEventListener("input", () => calls().catch(() => {}));
  if (sessionStorage.getItem(KEY)) start().catch(() => {});
})();
