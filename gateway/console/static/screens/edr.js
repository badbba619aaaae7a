// EDR: the platform's statistics and connectors, the endpoint inventory (filters and sort kept
// in the address, pages), one endpoint with its alerts, cases and actions, and containment
// (isolate, release, scan) confirmed with a reason; what the platform made of the request is
// said plainly: recorded (dry run), proposed (monitor), carried out, or waiting for a human on
// the Approvals screen.
import { api, can, mode } from "../api.js";
import { html, useEffect, useState, useStore } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Time,
  fullTime, go, hashWith, notify, num, useAction, useLoad,
} from "../ui.js";

const LIMIT = 50;
const ACTIONS_PAGE = 10;
const STATES = ["online", "offline", "isolating", "isolated", "releasing", "unknown"];
const SOURCES = ["connector", "telemetry"];
const SORTS = {
  hostname: "host name A–Z",
  "-hostname": "host name Z–A",
  "-last_seen": "seen most recently",
  last_seen: "seen least recently",
  state: "state",
  "-first_seen": "newest first",
};
const ACTIONS = {
  isolate: {
    label: "Isolate",
    verb: "cut the endpoint off the network (its EDR agent keeps its own channel)",
    danger: true,
  },
  unisolate: { label: "Release", verb: "give the endpoint its network back" },
  scan: { label: "Scan", verb: "run the EDR's scan on the endpoint" },
};
const MODES = {
  dry_run: "The platform is in dry-run mode: the request will only be recorded; nothing is sent to the EDR.",
  monitor: "The platform is in monitor mode: the request will be proposed for review, not carried out.",
  active: "The platform is in active mode: the request is carried out through the endpoint's EDR connector, unless the guardrail policy holds it for a human or denies it.",
};

const enc = encodeURIComponent;
const endpointHref = (id) => `#/edr/${enc(id)}`;
const listHref = (params) => hashWith("#/edr", params);

/** A key that makes a repeated submission (a double click, a retry after a timeout) the same
 * request, answered with the first one's outcome. */
function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** `{name: count}` as tags, each a link to the list filtered by it when `link` is given. */
function Counts({ counts, link }) {
  const entries = Object.entries(counts || {});
  if (entries.length === 0) return html`<span class="muted">—</span>`;
  return entries.map(([name, n]) => (link
    ? html`<a class="tag" href=${link(name)}>${name.replaceAll("_", " ")}: ${num(n)}</a>`
    : html`<span class="tag">${name.replaceAll("_", " ")}: ${num(n)}</span>`));
}

function Stats() {
  const stats = useLoad(() => api("GET", "/edr/stats"), []);
  if (stats.error && !stats.data) return html`<${ErrorBox} error=${stats.error} />`;
  if (!stats.data) return html`<${Loading} what="Loading EDR statistics" />`;
  const s = stats.data;
  const connectors = s.connectors || [];
  return html`<section class="panel" aria-labelledby="edr-stats">
    <div class="toolbar"><h2 id="edr-stats">Overview</h2><span class="spacer"></span>
      <span class="muted">Inventory refreshed <${Time} value=${s.last_refresh} /></span>
      <button type="button" class="small" onClick=${stats.reload}>Refresh</button></div>
    <div class="grid2">
      <dl class="props">
        <dt>Endpoints</dt><dd><strong>${num(s.endpoints_total)}</strong></dd>
        <dt>By state</dt><dd><${Counts} counts=${s.endpoints_by_state} link=${(state) => listHref({ state })} /></dd>
        <dt>By source</dt><dd><${Counts} counts=${s.endpoints_by_source} link=${(source) => listHref({ source })} /></dd>
        <dt>By connector</dt><dd><${Counts} counts=${s.endpoints_by_connector} link=${(connector) => (connector === "none" ? listHref({ source: "telemetry" }) : listHref({ connector }))} /></dd>
      </dl>
      <dl class="props">
        <dt>Actions</dt><dd><strong>${num(s.actions_total)}</strong></dd>
        <dt>By status</dt><dd><${Counts} counts=${s.actions_by_status} /></dd>
        <dt>By action</dt><dd><${Counts} counts=${s.actions_by_action} /></dd>
      </dl>
    </div>
    <h3>Connectors</h3>
    ${connectors.length === 0
      ? html`<p class="muted">No EDR connector is configured: endpoints come from the hosts seen in logs, and containment can be recorded or proposed but not carried out.</p>`
      : html`<div class="table-wrap"><table aria-label="EDR connectors">
        <thead><tr><th>Connector</th><th>Product</th><th>Endpoints</th><th>Last refresh</th><th>Health</th></tr></thead>
        <tbody>${connectors.map((c) => html`<tr key=${c.name}>
          <td><a href=${listHref({ connector: c.name })}>${c.name}</a></td><td>${c.product}</td><td>${num(c.endpoints)}</td>
          <td><${Time} value=${c.last_refresh} /></td>
          <td>${c.error ? html`<span class="chain-bad">✘ ${c.error}</span>` : html`<span class="chain-ok">✔ healthy</span>`}</td>
        </tr>`)}</tbody>
      </table></div>`}
  </section>`;
}

function Endpoints({ query }) {
  const filters = {
    state: STATES.includes(query.state) ? query.state : null,
    source: SOURCES.includes(query.source) ? query.source : null,
    connector: query.connector || null,
    search: query.search || null,
  };
  const sort = SORTS[query.sort] ? query.sort : "hostname";
  const offset = Math.max(0, Number.parseInt(query.offset, 10) || 0);
  const key = JSON.stringify([filters, sort, offset]);
  const list = useLoad(() => api("GET", "/edr/endpoints", { query: { ...filters, sort, limit: LIMIT, offset } }), [key]);
  const change = (update) => go(listHref({ ...filters, sort: sort === "hostname" ? null : sort, offset: 0, ...update }));
  const [search, setSearch] = useDraft(filters.search || "");
  const [connector, setConnector] = useDraft(filters.connector || "");
  const items = list.data?.items || [];
  const filtered = Object.values(filters).some(Boolean);
  return html`<div>
    <${Stats} />
    <h2>Endpoints ${list.data && html`<span class="count">${num(list.data.total)} ${filtered ? "matching" : "in all"}</span>`}</h2>
    <form class="toolbar" role="search" aria-label="Filter endpoints"
      onSubmit=${(e) => {
        e.preventDefault();
        change({ search: search.trim() || null, connector: connector.trim() || null });
      }}>
      <${Field} label="Host or address"><input type="search" name="search" maxlength="255" value=${search} onInput=${(e) => setSearch(e.currentTarget.value)} placeholder="name, FQDN or IP" /><//>
      <${Field} label="Connector"><input name="connector" maxlength="64" value=${connector} onInput=${(e) => setConnector(e.currentTarget.value)} autocomplete="off" size="12" /><//>
      <button type="submit">Search</button>
      <${Field} label="State"><${Select} name="state" label="State" value=${filters.state} options=${STATES} onChange=${(v) => change({ state: v })} /><//>
      <${Field} label="Source"><${Select} name="source" label="Source" value=${filters.source} options=${SOURCES} onChange=${(v) => change({ source: v })} /><//>
      <${Field} label="Sort"><select name="sort" value=${sort} onChange=${(e) => change({ sort: e.currentTarget.value === "hostname" ? null : e.currentTarget.value })}>
        ${Object.entries(SORTS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
      ${filtered && html`<a class="button" href=${listHref({ sort: sort === "hostname" ? null : sort })}>Clear filters</a>`}
      <button type="button" onClick=${list.reload}>Refresh</button>
    </form>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading endpoints" />`}
    ${list.data && items.length === 0 && html`<${Empty}>${filtered ? "No endpoint matches these filters." : "No endpoints known yet: they come from the EDR connectors and from the hosts seen in logs."}<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Endpoints" aria-busy=${list.loading}>
      <thead><tr><th>Host</th><th>State</th><th>Addresses</th><th>OS</th><th>Source</th><th>Log events</th><th>Last seen</th></tr></thead>
      <tbody>${items.map((e) => html`<tr key=${e.id}>
        <td class="title"><a href=${endpointHref(e.id)}>${e.hostname}</a>${e.fqdn && e.fqdn !== e.hostname ? html`<div class="muted">${e.fqdn}</div>` : ""}</td>
        <td><${Status} value=${e.state} /></td>
        <td class="mono">${(e.ips || []).slice(0, 3).join(", ")}${(e.ips || []).length > 3 ? ` +${e.ips.length - 3}` : ""}</td>
        <td>${e.os || html`<span class="muted">—</span>`}</td>
        <td>${e.source}${e.connector ? html` <${Badge} value=${e.connector} />` : ""}</td>
        <td>${num(e.log_events)}</td>
        <td><${Time} value=${e.last_seen || e.logs_last_seen} /></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${(next) => change({ offset: next })} />
  </div>`;
}

/** A text field's value while it is typed, reset when `value` (what is applied) changes. */
function useDraft(value) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return [draft, setDraft];
}

// --- one endpoint -------------------------------------------------------------------------------

function Confirm({ endpoint, action, onClose, onDone }) {
  const current = useStore(mode);
  const [key] = useState(idempotencyKey);
  const spec = ACTIONS[action];
  const [send, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { reason: form.get("reason").trim(), idempotency_key: key };
    if (form.get("comment").trim()) body.comment = form.get("comment").trim();
    const result = await api("POST", `/edr/endpoints/${enc(endpoint.id)}/${action}`, { body });
    onDone(result);
  });
  return html`<form onSubmit=${send} aria-label=${`${spec.label} ${endpoint.hostname}`}>
    <p>This will ${spec.verb}: <strong>${endpoint.hostname}</strong>${endpoint.ips?.length ? html` <span class="mono">(${endpoint.ips.join(", ")})</span>` : ""},
      ${endpoint.connector ? ` managed by ${endpoint.connector}.` : " which no EDR connector manages."}</p>
    <p class=${current === "active" ? "notice warn" : "notice"}>${MODES[current] || "The platform's mode decides what happens: recorded in dry run, proposed in monitor mode, carried out in active mode."}</p>
    <${Field} label="Reason" hint="kept with the action and shown to whoever approves it"><textarea name="reason" required maxlength="2000" rows="2" autofocus></textarea><//>
    <${Field} label="Comment" hint="optional"><input name="comment" maxlength="1000" /><//>
    <${ErrorBox} error=${error} />
    ${error?.code === "AURORA-4031" && html`<p class="muted">The guardrail policy refused it; the refusal is recorded with the endpoint's actions.</p>`}
    <div class="toolbar">
      <button type="submit" class=${spec.danger ? "danger" : "primary"} disabled=${busy}>${busy ? "Sending…" : `${spec.label} ${endpoint.hostname}`}</button>
      <button type="button" onClick=${onClose}>Cancel</button>
    </div>
  </form>`;
}

/** What the platform made of a containment request. */
function Outcome({ result, onDismiss }) {
  const a = result.action;
  const label = ACTIONS[a.action]?.label || a.action;
  const says = {
    recorded: ["notice", "Recorded only", "the platform is in dry-run mode, so nothing was sent to the EDR."],
    proposed: ["notice", "Proposed", "in monitor mode the action is proposed for review, not carried out."],
    awaiting_approval: ["notice warn", "Waiting for a human", "the guardrail policy wants an approval before it is carried out."],
    requested: ["notice", "Requested", `sent to ${a.connector || "the EDR"}; it is being carried out.`],
    executed: ["notice good", "Sent", `${a.connector || "the EDR"} took the request; its completion is checked on the next refresh.`],
    succeeded: ["notice good", "Done", `${a.connector || "the EDR"} carried it out.`],
    failed: ["error", "Failed", a.detail?.error?.message || a.detail?.error || a.detail?.message || "the EDR reported a failure."],
    denied: ["error", "Denied", "the guardrail policy refused it."],
    expired: ["error", "Expired", "nobody approved it in time."],
    unknown: ["notice warn", "Unknown", "the EDR did not say whether it was carried out; check the endpoint's state."],
  }[a.status] || ["notice", a.status.replaceAll("_", " "), ""];
  const [kind, title, text] = says;
  const reasons = a.guardrail?.reasons || [];
  return html`<div class=${kind} role="status" id="edr-outcome">
    <strong>${label} ${a.hostname}: ${title}</strong>${text ? ` — ${typeof text === "string" ? text : JSON.stringify(text)}` : ""}
    ${a.status === "awaiting_approval" && html` <a href="#/approvals">Decide it on the Approvals screen</a> (request <span class="mono">${a.id}</span>).`}
    ${result.replayed && html`<div class="muted">This repeated an earlier request; its outcome is shown, and nothing was sent twice.</div>`}
    <div class="muted">Action <span class="mono">${a.id}</span> in ${a.mode.replaceAll("_", " ")} mode${a.guardrail?.decision ? `; guardrail: ${a.guardrail.decision.replaceAll("_", " ")}` : ""}${reasons.length ? ` (${reasons.join("; ")})` : ""}.</div>
    <button type="button" class="link" onClick=${onDismiss}>dismiss</button>
  </div>`;
}

function ActionsTable({ actions }) {
  const [offset, setOffset] = useState(0);
  if (actions.length === 0) return html`<p class="muted">No containment was requested for this endpoint.</p>`;
  return html`<div>
    <div class="table-wrap"><table aria-label="Containment actions">
      <thead><tr><th>Action</th><th>Status</th><th>Mode</th><th>Requested by</th><th>Reason</th><th>When</th><th>Guardrail</th></tr></thead>
      <tbody>${actions.slice(offset, offset + ACTIONS_PAGE).map((a) => html`<tr key=${a.id}>
        <td>${ACTIONS[a.action]?.label || a.action} <span class="mono muted">${a.id}</span></td>
        <td><${Status} value=${a.status} />${a.status === "awaiting_approval" ? html` <a href="#/approvals">decide</a>` : ""}</td>
        <td>${a.mode.replaceAll("_", " ")}</td>
        <td>${a.requested_by}${a.approved_by ? html`<div class="muted">approved by ${a.approved_by}</div>` : ""}</td>
        <td>${a.reason}${a.detail?.comment && a.detail.comment !== a.reason ? html`<div class="muted">${a.detail.comment}</div>` : ""}</td>
        <td>${fullTime(a.created_at)}${a.finished_at ? html`<div class="muted">finished <${Time} value=${a.finished_at} /></div>` : ""}</td>
        <td>${a.guardrail ? html`<details><summary>${(a.guardrail.decision || "").replaceAll("_", " ") || "verdict"}</summary>
          <${Json} value=${a.guardrail} /></details>` : html`<span class="muted">—</span>`}</td>
      </tr>`)}</tbody>
    </table></div>
    <${Pager} total=${actions.length} limit=${ACTIONS_PAGE} offset=${offset} onChange=${setOffset} />
  </div>`;
}

function Endpoint({ id }) {
  const found = useLoad(() => api("GET", `/edr/endpoints/${enc(id)}`), [id]);
  const [action, setAction] = useState(null);
  const [outcome, setOutcome] = useState(null);
  const writable = can("edr:write");
  if (found.error && !found.data) return html`<div><p><a href="#/edr">← All endpoints</a></p><${ErrorBox} error=${found.error} /></div>`;
  if (!found.data) return html`<${Loading} what="Loading the endpoint" />`;
  const e = found.data;
  const alerts = e.recent_alerts || [];
  const cases = e.cases || [];
  return html`<div>
    <p><a href="#/edr">← All endpoints</a></p>
    <div class="toolbar">
      <h2>${e.hostname}</h2><${Status} value=${e.state} /><span class="mono muted">${e.id}</span>
      <span class="spacer"></span>
      <button type="button" onClick=${found.reload}>Refresh</button>
      ${writable && Object.entries(ACTIONS).map(([key, a]) => html`<button type="button" class=${a.danger ? "danger" : ""}
        onClick=${() => setAction(key)}>${a.label}…</button>`)}
    </div>
    ${outcome && html`<${Outcome} result=${outcome} onDismiss=${() => setOutcome(null)} />`}
    <${ErrorBox} error=${found.error} />
    <dl class="props panel">
      <dt>FQDN</dt><dd>${e.fqdn || "—"}</dd>
      <dt>Addresses</dt><dd class="mono">${(e.ips || []).join(", ") || "—"}</dd>
      <dt>OS</dt><dd>${e.os || "—"}</dd>
      <dt>Source</dt><dd>${e.source}${e.connector ? ` through ${e.connector}` : ""}${e.native_id ? html` <span class="mono muted">(${e.native_id})</span>` : ""}</dd>
      <dt>Seen</dt><dd>first ${fullTime(e.first_seen)}; last by its EDR ${e.last_seen ? fullTime(e.last_seen) : "never"}</dd>
      <dt>In the logs</dt><dd>${num(e.log_events)} event(s), last ${e.logs_last_seen ? fullTime(e.logs_last_seen) : "never"}</dd>
    </dl>
    <div class="grid2">
      <section aria-labelledby="endpoint-alerts">
        <h3 id="endpoint-alerts">Recent alerts (${alerts.length})</h3>
        ${alerts.length === 0 ? html`<p class="muted">No alert names this endpoint.</p>` : html`<div class="table-wrap"><table aria-label="Recent alerts">
          <thead><tr><th>Alert</th><th>Severity</th><th>Status</th><th>Last seen</th></tr></thead>
          <tbody>${alerts.map((a) => html`<tr key=${a.id}><td class="title"><a href=${`#/alerts?focus=${enc(a.id)}`}>${a.title}</a> <span class="mono muted">${a.id}</span></td>
            <td><${Severity} value=${a.severity} /></td><td><${Status} value=${a.status} /></td><td><${Time} value=${a.last_seen} /></td></tr>`)}</tbody>
        </table></div>`}
      </section>
      <section aria-labelledby="endpoint-cases">
        <h3 id="endpoint-cases">Cases (${cases.length})</h3>
        ${cases.length === 0 ? html`<p class="muted">No case holds it as an observable.</p>` : html`<div class="table-wrap"><table aria-label="Cases">
          <thead><tr><th>Case</th><th>Severity</th><th>Status</th><th>As</th></tr></thead>
          <tbody>${cases.map((c) => html`<tr key=${c.id}><td class="title"><a href=${`#/cases/${enc(c.id)}`}>${c.title}</a> <span class="mono muted">${c.id}</span></td>
            <td><${Severity} value=${c.severity} /></td><td><${Status} value=${c.status} /></td><td class="mono">${c.observable}</td></tr>`)}</tbody>
        </table></div>`}
      </section>
    </div>
    <h3>Containment actions</h3>
    <${ActionsTable} actions=${e.recent_actions || []} />
    ${Object.keys(e.details || {}).length > 0 && html`<details><summary>What the connector reports</summary><${Json} value=${e.details} /></details>`}
    <${Dialog} title=${action ? `${ACTIONS[action].label} ${e.hostname}?` : "Confirm"} open=${Boolean(action)} onClose=${() => setAction(null)}>
      ${action && html`<${Confirm} endpoint=${e} action=${action} onClose=${() => setAction(null)}
        onDone=${(result) => {
          setAction(null);
          setOutcome(result);
          found.setData((d) => d && { ...d, ...result.endpoint, recent_actions: [result.action, ...(d.recent_actions || []).filter((x) => x.id !== result.action.id)] });
          notify(`${ACTIONS[result.action.action]?.label || result.action.action} ${result.action.hostname}: ${result.action.status.replaceAll("_", " ")}`, result.action.status === "failed" ? "warn" : "good");
          found.reload();
        }} />`}
    <//>
  </div>`;
}

export default function Edr({ params, query }) {
  return html`<div>
    <h1>EDR</h1>
    ${params[0] ? html`<${Endpoint} key=${params[0]} id=${params[0]} />` : html`<${Endpoints} query=${query} />`}
  </div>`;
}
