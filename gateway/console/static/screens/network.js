// Network: attacks the detectors found (filters, pages; one attack's evidence and events,
// promoted to a case or answered with a playbook), the agent's findings, the sensors' telemetry
// and the ATT&CK coverage the enabled rules and detectors give.
import { api, can } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Tabs, Time,
  notify, num, useAction, useLoad,
} from "../ui.js";

const LIMIT = 25;
const SEVERITIES = ["critical", "high", "medium", "low", "informational"];
const SECTIONS = [
  { id: "attacks", label: "Attacks", href: "#/network" },
  { id: "findings", label: "Findings", href: "#/network/findings" },
  { id: "telemetry", label: "Telemetry", href: "#/network/telemetry" },
  { id: "coverage", label: "Coverage", href: "#/network/coverage" },
];
const lines = (text) => String(text || "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

function Attacks() {
  const [offset, setOffset] = useState(0);
  const [filters, setFilters] = useState({ severity: null, ongoing: null, source_ip: null });
  const list = useLoad(() => api("GET", "/network-attacks", { query: { ...filters, limit: LIMIT, offset } }), [offset, JSON.stringify(filters)]);
  const set = (key) => (value) => { setFilters((f) => ({ ...f, [key]: value })); setOffset(0); };
  return html`<div>
    <form class="toolbar" role="search" aria-label="Filter attacks" onSubmit=${(e) => e.preventDefault()}>
      <${Field} label="Severity"><${Select} name="severity" value=${filters.severity} options=${SEVERITIES} onChange=${set("severity")} /><//>
      <${Field} label="Ongoing"><${Select} name="ongoing" value=${filters.ongoing} options=${["true", "false"]} onChange=${set("ongoing")} /><//>
      <${Field} label="Source address"><input maxlength="64" onChange=${(e) => set("source_ip")(e.currentTarget.value.trim() || null)} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </form>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} />`}
    ${list.data?.items.length === 0 && html`<${Empty}>No attacks found in the telemetry.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Network attacks">
      <thead><tr><th>Attack</th><th>Severity</th><th>Source</th><th>Targets</th><th>Techniques</th><th>Last seen</th></tr></thead>
      <tbody>${list.data.items.map((a) => html`<tr key=${a.id}>
        <td><a href=${`#/network/attacks/${encodeURIComponent(a.id)}`}>${a.title}</a> <span class="muted">${a.detector}</span>${a.ongoing ? html` <${Badge} value="ongoing" />` : ""}${a.case_id ? html` <a href=${`#/cases/${encodeURIComponent(a.case_id)}`}>${a.case_id}</a>` : ""}</td>
        <td><${Severity} value=${a.severity} /> ${Math.round(a.confidence * 100)}%</td><td class="mono">${a.source_ip || "—"}</td>
        <td class="mono">${[...a.destination_ips.slice(0, 3), ...a.domains.slice(0, 2)].join(", ")}${a.destination_ports.length ? ` :${a.destination_ports.slice(0, 5).join(",")}` : ""}</td>
        <td>${a.techniques.map((t) => html`<span class="tag">${t}</span>`)}</td><td><${Time} value=${a.last_seen} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
  </div>`;
}

function Attack({ id }) {
  const found = useLoad(() => api("GET", `/network-attacks/${encodeURIComponent(id)}`), [id]);
  const [dialog, setDialog] = useState(null);
  const [promote, promoting, promoteError] = useAction(async (event) => {
    event.preventDefault();
    const title = new FormData(event.currentTarget).get("title");
    const done = await api("POST", `/network-attacks/${encodeURIComponent(id)}/case`, { body: title ? { title } : {} });
    notify(`Case ${done.case_id} opened (${done.observables_added} observables)`, "good");
    location.hash = `#/cases/${encodeURIComponent(done.case_id)}`;
  });
  const [dispatch, dispatching, dispatchError] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { reason: form.get("reason") || null };
    if (form.get("block")) body.block = lines(form.get("block"));
    if (form.get("isolate")) body.isolate = lines(form.get("isolate"));
    const done = await api("POST", `/network-attacks/${encodeURIComponent(id)}/dispatch`, { body });
    notify(`Execution ${done.execution_id} of ${done.playbook_id}: ${done.status} (${done.mode})`, "good");
    setDialog(null);
    found.reload();
  });
  if (found.error && !found.data) return html`<${ErrorBox} error=${found.error} />`;
  if (!found.data) return html`<${Loading} />`;
  const a = found.data;
  return html`<div>
    <p><a href="#/network">All attacks</a></p>
    <div class="toolbar"><h2>${a.title}</h2><${Severity} value=${a.severity} /><${Status} value=${a.status} /><span class="spacer"></span>
      ${can("network:write") && html`${!a.case_id && html`<button type="button" onClick=${() => setDialog("case")}>Promote to case…</button>`}
        <button type="button" class="danger" onClick=${() => setDialog("dispatch")}>Respond…</button>`}</div>
    <dl class="props panel">
      <dt>Detector</dt><dd>${a.detector}, confidence ${Math.round(a.confidence * 100)}%, ${num(a.detections)} detection(s)</dd>
      <dt>Source</dt><dd class="mono">${a.source_ip || "—"}</dd>
      <dt>Targets</dt><dd class="mono">${[...a.destination_ips, ...a.domains].join(", ") || "—"} ${a.destination_ports.length ? `ports ${a.destination_ports.join(", ")}` : ""}</dd>
      <dt>Techniques</dt><dd>${a.techniques.map((t) => html`<span class="tag">${t}</span>`)}</dd>
      <dt>Seen</dt><dd><${Time} value=${a.first_seen} /> to <${Time} value=${a.last_seen} />${a.ongoing ? " (ongoing)" : ""}</dd>
      <dt>Case</dt><dd>${a.case_id ? html`<a href=${`#/cases/${encodeURIComponent(a.case_id)}`}>${a.case_id}</a>` : "—"}</dd>
      ${a.query && html`<dt>Query</dt><dd><a class="mono" href=${`#/siem?${new URLSearchParams({ q: a.query })}`}>${a.query}</a></dd>`}
    </dl>
    <h3>Evidence</h3><${Json} value=${a.evidence} />
    ${(a.responses || []).length > 0 && html`<h3>Responses</h3><${Json} value=${a.responses} />`}
    <h3>Events (${(a.events || []).length})</h3>
    ${(a.events || []).length > 0 && html`<details><summary>show</summary><${Json} value=${a.events} /></details>`}
    <${Dialog} title="Promote to a case" open=${dialog === "case"} onClose=${() => setDialog(null)}>
      <form onSubmit=${promote}><${Field} label="Case title"><input name="title" maxlength="500" value=${a.title} /><//>
        <${ErrorBox} error=${promoteError} /><button type="submit" class="primary" disabled=${promoting}>Open the case</button></form>
    <//>
    <${Dialog} title="Respond to the attack" open=${dialog === "dispatch"} onClose=${() => setDialog(null)}>
      <form onSubmit=${dispatch}>
        <p>Runs the network response playbook: its steps pass the guardrails, the platform's mode and human approval like every response.</p>
        <${Field} label="Block" hint="addresses or domains, by default the attack's source"><textarea name="block" rows="2">${a.source_ip || ""}</textarea><//>
        <${Field} label="Isolate" hint="hosts to isolate, if any"><textarea name="isolate" rows="2"></textarea><//>
        <${Field} label="Reason"><input name="reason" maxlength="1000" /><//>
        <${ErrorBox} error=${dispatchError} /><button type="submit" class="danger" disabled=${dispatching}>Respond</button></form>
    <//>
  </div>`;
}

function Findings() {
  const [offset, setOffset] = useState(0);
  const list = useLoad(() => api("GET", "/network-security/findings", { query: { limit: LIMIT, offset } }), [offset]);
  const status = useLoad(() => api("GET", "/network-security/status"), []);
  const [analyze, busy, error] = useAction(async () => {
    const finding = await api("POST", "/network-security/analyze", { body: {} });
    notify(`Finding ${finding.id}: ${finding.summary}`, "good");
    list.reload();
  });
  return html`<div>
    ${status.data && html`<section class="panel"><h3>Status</h3><${Json} value=${status.data} /></section>`}
    <div class="toolbar"><span class="spacer"></span>${can("network:write") && html`<button type="button" disabled=${busy} onClick=${analyze}>${busy ? "Analysing…" : "Analyse the last hour"}</button>`}</div>
    <${ErrorBox} error=${error || list.error || status.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No findings yet.<//>`}
    ${list.data?.items.map((f) => html`<article class="card" key=${f.id}><header><strong class="mono">${f.id}</strong> <${Severity} value=${f.severity} /> <${Status} value=${f.status} />
      <span class="muted">${f.requested_by}, <${Time} value=${f.created_at} /></span></header>
      <p>${f.summary}</p>${f.techniques.map((t) => html`<span class="tag">${t}</span>`)}
      ${f.attack_id && html` <a href=${`#/network/attacks/${encodeURIComponent(f.attack_id)}`}>${f.attack_id}</a>`}
      <details><summary>finding</summary><${Json} value=${f.finding} /></details></article>`)}
    <${Pager} page=${list.data} onChange=${setOffset} />
  </div>`;
}

function Telemetry() {
  const status = useLoad(() => api("GET", "/network-telemetry/status"), []);
  const [offset, setOffset] = useState(0);
  if (status.error) return html`<${ErrorBox} error=${status.error} />`;
  if (!status.data) return html`<${Loading} />`;
  const t = status.data.totals;
  const sensors = status.data.sensors || [];
  return html`<div>
    <p>${num(t.sensors)} sensor(s): ${num(t.active)} active, ${num(t.silent)} silent, ${num(t.never_seen)} never seen; ${num(t.events)} event(s) in the last ${Math.round(status.data.window_seconds / 60)} min,
      ${num(Math.round(t.events_per_second_5m * 10) / 10)} ev/s over 5 min.</p>
    ${sensors.length === 0 ? html`<${Empty}>No sensors configured or seen.<//>` : html`<div class="table-wrap"><table aria-label="Sensors">
      <thead><tr><th>Sensor</th><th>State</th><th>Format</th><th>Events</th><th>Last event</th></tr></thead>
      <tbody>${sensors.slice(offset, offset + LIMIT).map((s) => html`<tr key=${s.sensor}><td>${s.sensor}${s.description ? html`<div class="muted">${s.description}</div>` : ""}</td>
        <td><${Status} value=${s.state} />${s.gaps_total ? html` <span class="count">${s.gaps_total} gap(s)</span>` : ""}</td><td>${s.format || "—"}</td>
        <td>${num(s.events)}</td><td><${Time} value=${s.last_seen} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} total=${sensors.length} limit=${LIMIT} offset=${offset} onChange=${setOffset} />
  </div>`;
}

function Coverage() {
  const coverage = useLoad(() => api("GET", "/network-telemetry/coverage"), []);
  const [offset, setOffset] = useState(0);
  if (coverage.error) return html`<${ErrorBox} error=${coverage.error} />`;
  if (!coverage.data) return html`<${Loading} />`;
  const c = coverage.data;
  return html`<div>
    <p>${num(c.totals.covered)} of ${num(c.totals.techniques)} technique(s) covered with telemetry flowing; ${num(c.totals.no_telemetry)} covered by rules whose data is not arriving.
      Rules ${num(c.totals.rules_flowing)}/${num(c.totals.rules)} and detectors ${num(c.totals.detectors_flowing)}/${num(c.totals.detectors)} have their data.
      ${" "}<span class="muted">ATT&CK ${c.attack_version || "?"}; sources ${c.sources_enabled.join(", ") || "none"}.</span></p>
    <div class="table-wrap"><table aria-label="ATT&CK coverage">
      <thead><tr><th>Technique</th><th>Tactics</th><th>State</th><th>Covered by</th></tr></thead>
      <tbody>${c.techniques.slice(offset, offset + LIMIT).map((t) => html`<tr key=${t.id}><td><span class="mono">${t.id}</span> ${t.name}</td><td>${t.tactics.join(", ")}</td>
        <td><${Status} value=${t.state} /></td><td>${t.sources.map((s) => html`<span class=${s.telemetry_flowing ? "tag" : "tag muted"} title=${s.telemetry_flowing ? "its data arrives" : "its data is not arriving"}>${s.kind}: ${s.name || s.id}</span>`)}</td></tr>`)}</tbody></table></div>
    <${Pager} total=${c.techniques.length} limit=${LIMIT} offset=${offset} onChange=${setOffset} />
  </div>`;
}

export default function Network({ params }) {
  const [section, id] = params;
  const current = SECTIONS.some((s) => s.id === section) ? section : "attacks";
  return html`<div>
    <h1>Network</h1>
    <${Tabs} current=${current} items=${SECTIONS} label="Network sections" />
    ${section === "attacks" && id ? html`<${Attack} id=${id} />`
      : current === "findings" ? html`<${Findings} />`
      : current === "telemetry" ? html`<${Telemetry} />`
      : current === "coverage" ? html`<${Coverage} />`
      : html`<${Attacks} />`}
  </div>`;
}
