// EDR: the endpoint inventory (filters, pages), the platform's statistics and connectors, one
// endpoint with its recent alerts, cases and actions, and containment (isolate, release, scan)
// with a reason, confirmed first; what the mode made of it is said (recorded, proposed, done,
// or waiting for a human on the Approvals screen).
import { api, can } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Time,
  notify, num, useAction, useLoad,
} from "../ui.js";

const LIMIT = 50;
const STATES = ["online", "offline", "isolated", "isolating", "releasing", "unknown"];
const ACTIONS = {
  isolate: { label: "Isolate", verb: "cut the endpoint off the network (its EDR keeps talking to it)" },
  unisolate: { label: "Release", verb: "give the endpoint its network back" },
  scan: { label: "Scan", verb: "run the EDR's scan on the endpoint" },
};

function Stats() {
  const stats = useLoad(() => api("GET", "/edr/stats"), []);
  if (stats.error) return html`<${ErrorBox} error=${stats.error} />`;
  if (!stats.data) return null;
  const s = stats.data;
  const pairs = (object) => Object.entries(object || {}).map(([k, v]) => `${k} ${num(v)}`).join(" · ") || "—";
  return html`<section class="panel" aria-label="EDR statistics"><dl class="props">
    <dt>Endpoints</dt><dd>${num(s.endpoints_total)}: ${pairs(s.endpoints_by_state)}</dd>
    <dt>By source</dt><dd>${pairs(s.endpoints_by_source)}</dd>
    <dt>Actions</dt><dd>${num(s.actions_total)}: ${pairs(s.actions_by_status)}</dd>
    <dt>Connectors</dt><dd>${(s.connectors || []).map((c) => html`<span class="tag">${c.name || c.id || JSON.stringify(c)}${c.healthy === false ? " (unhealthy)" : ""}</span>`)}</dd>
    <dt>Inventory refreshed</dt><dd><${Time} value=${s.last_refresh} /></dd>
  </dl></section>`;
}

function ActionDialog({ endpoint, action, onClose, onDone }) {
  const [send, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const result = await api("POST", `/edr/endpoints/${encodeURIComponent(endpoint.id)}/${action}`, {
      body: { reason: form.get("reason"), comment: form.get("comment") || null, idempotency_key: crypto.randomUUID?.() },
    });
    const status = result.action.status;
    notify(`${ACTIONS[action].label} ${endpoint.hostname}: ${status.replaceAll("_", " ")} (${result.action.mode})`, status === "failed" ? "warn" : "good");
    onDone(result);
  });
  return html`<form onSubmit=${send}>
    <p>This will ${ACTIONS[action].verb}: <strong>${endpoint.hostname}</strong>${endpoint.ips?.length ? ` (${endpoint.ips.join(", ")})` : ""}.
      In dry run it is only recorded, in monitor proposed, in active carried out (or held for a human when the guardrail policy says so).</p>
    <${Field} label="Reason" hint="kept with the action and shown to approvers"><input name="reason" required maxlength="2000" autofocus /><//>
    <${Field} label="Comment"><input name="comment" maxlength="1000" /><//>
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="submit" class=${action === "isolate" ? "danger" : "primary"} disabled=${busy}>${ACTIONS[action].label}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function Endpoint({ id }) {
  const found = useLoad(() => api("GET", `/edr/endpoints/${encodeURIComponent(id)}`), [id]);
  const [action, setAction] = useState(null);
  const [last, setLast] = useState(null);
  if (found.error && !found.data) return html`<${ErrorBox} error=${found.error} />`;
  if (!found.data) return html`<${Loading} />`;
  const e = found.data;
  return html`<div>
    <p><a href="#/edr">All endpoints</a></p>
    <div class="toolbar"><h2>${e.hostname}</h2><${Status} value=${e.state} /><span class="mono muted">${e.id}</span><span class="spacer"></span>
      ${can("edr:write") && Object.entries(ACTIONS).map(([key, a]) => html`<button type="button" class=${key === "isolate" ? "danger" : ""} onClick=${() => setAction(key)}>${a.label}…</button>`)}</div>
    ${last && html`<p class=${`notice ${last.action.status === "failed" ? "warn" : "good"}`} role="status">${ACTIONS[last.action.action]?.label || last.action.action}: ${last.action.status.replaceAll("_", " ")} in ${last.action.mode} mode${last.replayed ? " (already requested: the earlier request's outcome)" : ""}.
      ${last.action.status === "awaiting_approval" && html` <a href="#/approvals">Decide it on the Approvals screen</a>.`}</p>`}
    <dl class="props panel">
      <dt>FQDN</dt><dd>${e.fqdn || "—"}</dd><dt>Addresses</dt><dd class="mono">${(e.ips || []).join(", ") || "—"}</dd>
      <dt>OS</dt><dd>${e.os || "—"}</dd><dt>Source</dt><dd>${e.source}${e.connector ? ` via ${e.connector}` : ""}</dd>
      <dt>Last seen</dt><dd><${Time} value=${e.last_seen} /></dd><dt>Logs</dt><dd>${num(e.log_events)} event(s), last <${Time} value=${e.logs_last_seen} /></dd>
    </dl>
    <h3>Recent alerts</h3>
    ${(e.recent_alerts || []).length === 0 ? html`<p class="muted">None.</p>` : html`<ul>${e.recent_alerts.map((a) => html`<li><a href=${`#/alerts?focus=${encodeURIComponent(a.id)}`}>${a.id}</a> <${Severity} value=${a.severity} /> ${a.title}</li>`)}</ul>`}
    <h3>Cases</h3>
    ${(e.cases || []).length === 0 ? html`<p class="muted">None.</p>` : html`<ul>${e.cases.map((c) => html`<li><a href=${`#/cases/${encodeURIComponent(c.id)}`}>${c.id}</a> ${c.title || ""}</li>`)}</ul>`}
    <h3>Actions</h3>
    ${(e.recent_actions || []).length === 0 ? html`<p class="muted">None.</p>` : html`<div class="table-wrap"><table aria-label="Actions">
      <thead><tr><th>Action</th><th>Status</th><th>Mode</th><th>By</th><th>Reason</th><th>When</th></tr></thead>
      <tbody>${e.recent_actions.map((a) => html`<tr key=${a.id}><td>${a.action}</td><td><${Status} value=${a.status} /></td><td>${a.mode}</td><td>${a.requested_by}${a.approved_by ? `, approved by ${a.approved_by}` : ""}</td><td>${a.reason}</td><td><${Time} value=${a.created_at} /></td></tr>`)}</tbody></table></div>`}
    <details><summary>Connector details</summary><${Json} value=${e.details} /></details>
    <${Dialog} title=${action ? `${ACTIONS[action].label} ${e.hostname}?` : ""} open=${Boolean(action)} onClose=${() => setAction(null)}>
      ${action && html`<${ActionDialog} endpoint=${e} action=${action} onClose=${() => setAction(null)} onDone=${(r) => { setAction(null); setLast(r); found.reload(); }} />`}
    <//>
  </div>`;
}

function Endpoints() {
  const [offset, setOffset] = useState(0);
  const [filters, setFilters] = useState({ state: null, search: null });
  const list = useLoad(() => api("GET", "/edr/endpoints", { query: { ...filters, limit: LIMIT, offset } }), [offset, JSON.stringify(filters)]);
  const set = (key) => (value) => { setFilters((f) => ({ ...f, [key]: value })); setOffset(0); };
  return html`<div>
    <${Stats} />
    <form class="toolbar" role="search" aria-label="Filter endpoints" onSubmit=${(e) => e.preventDefault()}>
      <${Field} label="State"><${Select} name="state" value=${filters.state} options=${STATES} onChange=${set("state")} /><//>
      <${Field} label="Host or address"><input type="search" maxlength="255" onChange=${(e) => set("search")(e.currentTarget.value.trim() || null)} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </form>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} />`}
    ${list.data?.items.length === 0 && html`<${Empty}>No endpoints known: they come from the EDR connectors and from the hosts seen in logs.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Endpoints">
      <thead><tr><th>Host</th><th>State</th><th>Addresses</th><th>OS</th><th>Source</th><th>Last seen</th></tr></thead>
      <tbody>${list.data.items.map((e) => html`<tr key=${e.id}><td><a href=${`#/edr/${encodeURIComponent(e.id)}`}>${e.hostname}</a></td><td><${Status} value=${e.state} /></td>
        <td class="mono">${(e.ips || []).slice(0, 3).join(", ")}</td><td>${e.os || "—"}</td><td>${e.source}${e.connector ? html` <${Badge} value=${e.connector} />` : ""}</td><td><${Time} value=${e.last_seen} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
  </div>`;
}

export default function Edr({ params }) {
  return html`<div><h1>EDR</h1>${params[0] ? html`<${Endpoint} id=${params[0]} />` : html`<${Endpoints} />`}</div>`;
}
