// The admin's overview: agents, API tokens and subscriptions with their delivery
// health, read from the API when the dialog opens. Every value goes in as text.

import { el, longTime } from "./view.js";

export async function renderAdmin(api) {
  const [agents, tokens, subscriptions] = await Promise.all([
    api("GET", "/api/v1/agents/?page_size=100"),
    api("GET", "/api/v1/tokens/?page_size=100"),
    api("GET", "/api/v1/subscriptions/?page_size=100"),
  ]);
  fill("admin-agents", ["Agent", "Role", "State"], agents.results.map((a) => [
    a.display_name || a.username, a.role, a.disabled ? "Disabled" : a.is_available ? "Available" : "Away",
  ]));
  fill("admin-tokens", ["Token", "Role", "Scopes", "Last used"], tokens.results.map((t) => [
    t.name, t.role, t.scopes.join(", "), t.last_used_at ? longTime(t.last_used_at) : "Never",
  ]));
  fill("admin-subscriptions", ["URL", "Events", "Health"], subscriptions.results.map((s) => [
    s.url, s.events.join(", "), health(s),
  ]));
}

function health(subscription) {
  if (subscription.disabled_reason) return `Disabled: ${subscription.disabled_reason}`;
  if (subscription.paused) return "Paused";
  if (subscription.failing_since) {
    return `Failing since ${longTime(subscription.failing_since)}: ${subscription.last_error}`;
  }
  return "Delivering";
}

function fill(id, columns, rows) {
  const where = document.getElementById(id);
  if (!rows.length) {
    where.replaceChildren(el("p", { className: "muted", text: "None yet." }));
    return;
  }
  const head = el("tr", {}, ...columns.map((name) => el("th", { scope: "col", text: name })));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((cell) => el("td", { text: cell }))));
  where.replaceChildren(el("table", { className: "admin-table" },
    el("thead", {}, head), el("tbody", {}, ...body)));
}
