// Network: the attacks the detectors found (filters kept in the address, pages; one attack's
// evidence, events and responses, promoted to a case, answered with a response playbook, or
// handed to the network specialist), the specialist's findings, the sensors' telemetry, the
// ATT&CK coverage the enabled rules and detectors give, and the detectors' health.
import { api, can } from "../api.js";
import { html, useEffect, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Tabs,
  Time, clip, duration, fromLocalInput, fullTime, go, notify, num, toLocalInput, useAction,
  useLoad,
} from "../ui.js";

const LIMIT = 25;
const SEVERITIES = ["critical", "high", "medium", "low", "informational"];
const DETECTORS = ["port_scan", "host_scan", "brute_force", "beaconing", "volume_spike", "ddos", "exfiltration", "dns_tunnelling", "dga"];
const ATTACK_STATUSES = ["open", "promoted", "responded", "dismissed"];
const ATTACK_SORTS = {
  "-last_seen": "seen most recently",
  "-first_seen": "started most recently",
  "-severity": "most severe first",
  "-confidence": "most confident first",
  "-created_at": "newest first",
};
const FINDING_SORTS = { "-created_at": "newest first", "-severity": "most severe first", "-confidence": "most confident first" };
const WINDOWS = { 3600: "last hour", 21600: "last 6 hours", 86400: "last 24 hours", 604800: "last 7 days" };
const LOOKBACKS = { 3600: "1 hour", 86400: "24 hours", 604800: "7 days", 2592000: "30 days" };
const DEFAULT_PLAYBOOK = "network-attack-response";
const SECTIONS = [
  { id: "attacks", label: "Attacks", href: "#/network" },
  { id: "findings", label: "Findings", href: "#/network/findings" },
  { id: "telemetry", label: "Telemetry", href: "#/network/telemetry" },
  { id: "coverage", label: "Coverage", href: "#/network/coverage" },
  { id: "status", label: "Detectors and status", href: "#/network/status" },
];

const enc = encodeURIComponent;
const attackHref = (id) => `#/network/attacks/${enc(id)}`;
const list = (text) => String(text || "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
const percent = (x) => (x == null ? "—" : `${Math.round(Number(x) * 100)}%`);
const rate = (x) => (x == null ? "—" : `${Number(x).toLocaleString(undefined, { maximumFractionDigits: 2 })}/s`);
const offsetOf = (query) => Math.max(0, Number.parseInt(query.offset, 10) || 0);

/** `base` with the non-empty `params` as its hash query. */
function href(base, params) {
  const kept = Object.entries(params).filter(([, v]) => v != null && v !== "" && v !== 0);
  const search = new URLSearchParams(kept).toString();
  return search ? `${base}?${search}` : base;
}


/** `{name: count}` as tags, each a link when `link` is given. */
function Counts({ counts, link }) {
  const entries = Object.entries(counts || {});
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return entries.map(([name, n]) => (link
    ? html`<a class="tag" href=${link(name)}>${name.replaceAll("_", " ")}: ${num(n)}</a>`
    : html`<span class="tag">${name.replaceAll("_", " ")}: ${num(n)}</span>`));
}

/** A text field's value while it is typed, reset when `value` (what is applied) changes. */
function useDraft(value) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return [draft, setDraft];
}

// --- attacks ------------------------------------------------------------------------------------

function Attacks({ query }) {
  const filters = {
    detector: DETECTORS.includes(query.detector) ? query.detector : null,
    severity: SEVERITIES.includes(query.severity) ? query.severity : null,
    status: ATTACK_STATUSES.includes(query.status) ? query.status : null,
    ongoing: query.ongoing === "true" || query.ongoing === "false" ? query.ongoing : null,
    source_ip: query.source_ip || null,
    technique: query.technique || null,
  };
  const sort = ATTACK_SORTS[query.sort] ? query.sort : "-last_seen";
  const offset = offsetOf(query);
  const key = JSON.stringify([filters, sort, offset]);
  const page = useLoad(() => api("GET", "/network-attacks", { query: { ...filters, sort, limit: LIMIT, offset } }), [key]);
  const change = (update) => go(href("#/network", { ...filters, sort: sort === "-last_seen" ? null : sort, offset: 0, ...update }));
  const [source, setSource] = useDraft(filters.source_ip || "");
  const [technique, setTechnique] = useDraft(filters.technique || "");
  const items = page.data?.items || [];
  const filtered = Object.values(filters).some(Boolean);
  return html`<div>
    <form class="toolbar" role="search" aria-label="Filter attacks"
      onSubmit=${(e) => {
        e.preventDefault();
        change({ source_ip: source.trim() || null, technique: technique.trim().toUpperCase() || null });
      }}>
      <${Field} label="Source address"><input name="source_ip" maxlength="64" value=${source} onInput=${(e) => setSource(e.currentTarget.value)} autocomplete="off" size="16" /><//>
      <${Field} label="Technique"><input name="technique" maxlength="9" value=${technique} onInput=${(e) => setTechnique(e.currentTarget.value)} placeholder="T1046" autocomplete="off" size="8" /><//>
      <button type="submit">Apply</button>
      <${Field} label="Detector"><${Select} name="detector" label="Detector" value=${filters.detector} options=${DETECTORS} onChange=${(v) => change({ detector: v })} /><//>
      <${Field} label="At least"><${Select} name="severity" label="At least" value=${filters.severity} options=${SEVERITIES} onChange=${(v) => change({ severity: v })} /><//>
      <${Field} label="Status"><${Select} name="status" label="Status" value=${filters.status} options=${ATTACK_STATUSES} onChange=${(v) => change({ status: v })} /><//>
      <${Field} label="Ongoing"><${Select} name="ongoing" label="Ongoing" value=${filters.ongoing} options=${["true", "false"]} onChange=${(v) => change({ ongoing: v })} /><//>
      <${Field} label="Sort"><select name="sort" value=${sort} onChange=${(e) => change({ sort: e.currentTarget.value === "-last_seen" ? null : e.currentTarget.value })}>
        ${Object.entries(ATTACK_SORTS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
      ${filtered && html`<a class="button" href="#/network">Clear filters</a>`}
      <button type="button" onClick=${page.reload}>Refresh</button>
    </form>
    <${ErrorBox} error=${page.error} />
    ${page.loading && !page.data && html`<${Loading} what="Loading attacks" />`}
    ${page.data && items.length === 0 && html`<${Empty}>${filtered ? "No attack matches these filters." : "No attacks found in the network telemetry."}<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Network attacks" aria-busy=${page.loading}>
      <thead><tr><th>Attack</th><th>Severity</th><th>Source</th><th>Targets</th><th>Techniques</th><th>Status</th><th>Last seen</th></tr></thead>
      <tbody>${items.map((a) => html`<tr key=${a.id}>
        <td class="title"><a href=${attackHref(a.id)}>${a.title}</a> <span class="mono muted">${a.id}</span>
          <div class="muted">${a.detector.replaceAll("_", " ")}, ${num(a.detections)} detection(s)</div></td>
        <td><${Severity} value=${a.severity} /> <span class="count">${percent(a.confidence)}</span></td>
        <td class="mono">${a.source_ip || "—"}</td>
        <td class="mono">${clip([...a.destination_ips.slice(0, 3), ...a.domains.slice(0, 2)].join(", "), 80) || "—"}${a.destination_ports.length ? html`<div class="muted">ports ${clip(a.destination_ports.slice(0, 8).join(", "), 60)}</div>` : ""}</td>
        <td>${a.techniques.map((t) => html`<span class="tag">${t}</span>`)}</td>
        <td><${Status} value=${a.status} />${a.ongoing ? html` <${Badge} value="ongoing" />` : ""}
          ${a.case_id && html`<div><a href=${`#/cases/${enc(a.case_id)}`}>${a.case_id}</a></div>`}</td>
        <td><${Time} value=${a.last_seen} /></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${page.data} onChange=${(next) => change({ offset: next })} />
  </div>`;
}

function Promote({ attack, onClose }) {
  const [promote, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { title: form.get("title").trim() || null, severity: form.get("severity") || null, tags: list(form.get("tags")) };
    if (form.get("assignee").trim()) body.assignee = form.get("assignee").trim();
    if (form.get("description").trim()) body.description = form.get("description");
    const done = await api("POST", `/network-attacks/${enc(attack.id)}/case`, { body });
    notify(`Case ${done.case_id} opened from ${attack.id}: ${done.observables_added} observable(s)${done.observables_skipped.length ? `, ${done.observables_skipped.length} skipped` : ""}`, "good");
    onClose();
    go(`#/cases/${enc(done.case_id)}`);
  });
  return html`<form onSubmit=${promote} aria-label="Promote to a case">
    <p class="muted">The case gets the attack's addresses and domains as observables.</p>
    <${Field} label="Case title"><input name="title" maxlength="500" defaultValue=${attack.title} required /><//>
    <${Field} label="Severity"><select name="severity">${SEVERITIES.map((s) => html`<option value=${s} selected=${s === attack.severity}>${s}</option>`)}</select><//>
    <${Field} label="Assignee" hint="optional"><input name="assignee" maxlength="64" autocomplete="off" /><//>
    <${Field} label="Tags" hint="optional, separated by commas"><input name="tags" maxlength="1000" defaultValue=${["network", attack.detector.replaceAll("_", "-")].join(", ")} /><//>
    <${Field} label="Description" hint="optional"><textarea name="description" maxlength="50000" rows="3"></textarea><//>
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>${busy ? "Opening…" : "Open the case"}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function Respond({ attack, onClose, onDone }) {
  const [playbook, setPlaybook] = useState(DEFAULT_PLAYBOOK);
  const [choose, setChoose] = useState(false);
  const [dispatched, setDispatched] = useState(null);
  const playbooks = useLoad(() => api("GET", "/soar/playbooks", { query: { enabled: true, limit: 500 } }), []);
  const [dispatch, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { playbook_id: playbook };
    if (form.get("reason")?.trim()) body.reason = form.get("reason").trim();
    if (playbook === DEFAULT_PLAYBOOK) {
      if (choose) {
        body.block = list(form.get("block"));
        body.isolate = list(form.get("isolate"));
      }
    } else if (form.get("inputs")?.trim()) {
      try {
        body.inputs = JSON.parse(form.get("inputs"));
      } catch (err) {
        throw { code: "CONSOLE", message: `The inputs are not JSON: ${err.message}` };
      }
    }
    const done = await api("POST", `/network-attacks/${enc(attack.id)}/dispatch`, { body });
    setDispatched(done);
    onDone(done);
  });
  if (dispatched) {
    return html`<div role="status">
      <p class="notice good">Execution <strong class="mono">${dispatched.execution_id}</strong> of ${dispatched.playbook_id} is
        ${" "}<strong>${dispatched.status.replaceAll("_", " ")}</strong> in <strong>${dispatched.mode.replaceAll("_", " ")}</strong> mode.
        ${dispatched.mode === "dry_run" ? " In dry run its response steps are recorded, not carried out." : ""}
        ${dispatched.mode === "monitor" ? " In monitor mode its response steps are proposed, not carried out." : ""}
        ${dispatched.mode === "active" ? " Steps the guardrail policy holds wait on the Approvals screen." : ""}</p>
      ${(dispatched.inputs?.block || dispatched.inputs?.isolate) && html`<dl class="props">
        <dt>Block</dt><dd class="mono">${(dispatched.inputs.block || []).join(", ") || "—"}</dd>
        <dt>Isolate</dt><dd class="mono">${(dispatched.inputs.isolate || []).join(", ") || "—"}</dd></dl>`}
      <div class="toolbar">
        <a class="button" href=${href("#/soar/executions", { playbook_id: dispatched.playbook_id, open: dispatched.execution_id })} onClick=${onClose}>Follow the execution</a>
        <a class="button" href="#/approvals" onClick=${onClose}>Approvals</a>
        <button type="button" onClick=${onClose}>Close</button>
      </div>
    </div>`;
  }
  const ids = (playbooks.data?.items || []).map((p) => p.id);
  return html`<form onSubmit=${dispatch} aria-label="Respond to the attack">
    <p>A response runs as a SOAR playbook: its steps pass the guardrails, the platform's mode and human approval like every response.</p>
    <${Field} label="Playbook"><select value=${playbook} onChange=${(e) => setPlaybook(e.currentTarget.value)}>
      ${[...new Set([DEFAULT_PLAYBOOK, ...ids])].map((id) => html`<option value=${id}>${id}</option>`)}</select><//>
    ${playbook === DEFAULT_PLAYBOOK ? html`
      <label><input type="checkbox" checked=${!choose} onChange=${(e) => setChoose(!e.currentTarget.checked)} />
        ${" "}Let the platform choose: the outside party is blocked, an inside host the detection says is compromised is isolated</label>
      ${choose && html`<${Field} label="Block" hint="addresses or domains, separated by commas or spaces"><textarea name="block" rows="2" defaultValue=${attack.source_ip || ""}></textarea><//>
        <${Field} label="Isolate" hint="hosts, separated by commas or spaces"><textarea name="isolate" rows="2"></textarea><//>`}`
      : html`<${Field} label="Inputs" hint="JSON; attack_id is added"><textarea name="inputs" class="mono" rows="4" spellcheck="false" placeholder="{}"></textarea><//>`}
    <${Field} label="Reason" hint="optional: shown to approvers"><input name="reason" maxlength="1000" /><//>
    <${ErrorBox} error=${playbooks.error} />
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="submit" class="danger" disabled=${busy}>${busy ? "Dispatching…" : "Respond"}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

const EVENTS_PAGE = 20;

function Events({ events }) {
  const [offset, setOffset] = useState(0);
  if (events.length === 0) return html`<p class="muted">The store no longer holds the events behind this attack (retention).</p>`;
  const what = (e) => e["event.action"] || e["dns.question.name"] || e["url.full"] || e["event.category"] || e.format || "";
  const end = (ip, port) => (ip ? `${ip}${port != null ? `:${port}` : ""}` : "—");
  return html`<div>
    <div class="table-wrap"><table aria-label="Events">
      <thead><tr><th>Time</th><th>Source</th><th>Destination</th><th>What</th><th>Event</th></tr></thead>
      <tbody>${events.slice(offset, offset + EVENTS_PAGE).map((e, n) => html`<tr key=${e.id || n}>
        <td>${fullTime(e.timestamp)}</td>
        <td class="mono">${end(e["source.ip"], e["source.port"])}</td>
        <td class="mono">${end(e["destination.ip"], e["destination.port"])}</td>
        <td>${clip(what(e), 100)}</td>
        <td><details><summary>fields</summary><${Json} value=${e} /></details></td>
      </tr>`)}</tbody>
    </table></div>
    <${Pager} total=${events.length} limit=${EVENTS_PAGE} offset=${offset} onChange=${setOffset} />
  </div>`;
}

function Attack({ id }) {
  const found = useLoad(() => api("GET", `/network-attacks/${enc(id)}`), [id]);
  const [dialog, setDialog] = useState(null);
  const writable = can("network:write");
  const [analyse, analysing, analyseError, clearAnalyse] = useAction(async () => {
    const finding = await api("POST", "/network-security/analyze", { body: { attack_id: id } });
    notify(`Finding ${finding.id}: ${clip(finding.summary, 120)}`, finding.status === "failed" ? "warn" : "good");
    go(href("#/network/findings", { attack_id: id }));
  });
  if (found.error && !found.data) return html`<div><p><a href="#/network">← All attacks</a></p><${ErrorBox} error=${found.error} /></div>`;
  if (!found.data) return html`<${Loading} what="Loading the attack" />`;
  const a = found.data;
  const siem = a.query && href("#/siem", {
    q: a.query,
    range: "custom",
    since: toLocalInput(new Date(new Date(a.first_seen).getTime() - 60_000).toISOString()),
    until: toLocalInput(new Date(new Date(a.last_seen).getTime() + 120_000).toISOString()),
  });
  return html`<div>
    <p><a href="#/network">← All attacks</a></p>
    <div class="toolbar">
      <h2>${a.title}</h2><${Severity} value=${a.severity} /><${Status} value=${a.status} />${a.ongoing ? html`<${Badge} value="ongoing" />` : ""}
      <span class="mono muted">${a.id}</span>
      <span class="spacer"></span>
      <button type="button" onClick=${found.reload}>Refresh</button>
      ${writable && html`${!a.case_id && html`<button type="button" onClick=${() => setDialog("case")}>Promote to a case…</button>`}
        <button type="button" disabled=${analysing} onClick=${() => analyse()}>${analysing ? "Analysing…" : "Analyse with the network specialist"}</button>
        <button type="button" class="danger" onClick=${() => setDialog("respond")}>Respond…</button>`}
    </div>
    <${ErrorBox} error=${analyseError} onDismiss=${clearAnalyse} />
    <${ErrorBox} error=${found.error} />
    <dl class="props panel">
      <dt>Detector</dt><dd>${a.detector.replaceAll("_", " ")}: confidence ${percent(a.confidence)}, ${num(a.detections)} detection(s)</dd>
      <dt>Source</dt><dd class="mono">${a.source_ip || "—"}</dd>
      <dt>Targets</dt><dd class="mono">${[...a.destination_ips, ...a.domains].join(", ") || "—"}</dd>
      <dt>Ports</dt><dd class="mono">${a.destination_ports.length ? `${clip(a.destination_ports.join(", "), 400)} (${num(a.destination_ports.length)})` : "—"}</dd>
      <dt>Techniques</dt><dd>${a.techniques.length ? a.techniques.map((t) => html`<a class="tag" href=${href("#/network", { technique: t })}>${t}</a>`) : "—"}</dd>
      <dt>Seen</dt><dd>${fullTime(a.first_seen)} to ${fullTime(a.last_seen)}${a.ongoing ? " (ongoing)" : ""}</dd>
      <dt>Case</dt><dd>${a.case_id ? html`<a href=${`#/cases/${enc(a.case_id)}`}>${a.case_id}</a>` : "none"}</dd>
      ${a.query && html`<dt>Query</dt><dd><code>${a.query}</code> <a href=${siem}>search these logs</a></dd>`}
      <dt>Findings</dt><dd><a href=${href("#/network/findings", { attack_id: a.id })}>the network specialist's findings on it</a></dd>
    </dl>
    <h3>Responses (${(a.responses || []).length})</h3>
    ${(a.responses || []).length === 0 ? html`<p class="muted">No response dispatched yet.</p>` : html`<div class="table-wrap"><table aria-label="Responses">
      <thead><tr><th>Execution</th><th>Playbook</th><th>By</th><th>When</th></tr></thead>
      <tbody>${a.responses.map((r, n) => html`<tr key=${r.execution_id || n}>
        <td><a class="mono" href=${href("#/soar/executions", { playbook_id: r.playbook_id, open: r.execution_id })}>${r.execution_id}</a></td>
        <td><a href=${`#/soar/playbooks/${enc(r.playbook_id)}`}>${r.playbook_id}</a></td><td>${r.by}</td><td>${fullTime(r.at)}</td></tr>`)}</tbody>
    </table></div>`}
    <h3>Evidence</h3>
    <${Json} value=${a.evidence} />
    <h3>Events (${num((a.events || []).length)} of ${num((a.event_ids || []).length)})</h3>
    <${Events} events=${a.events || []} />
    <${Dialog} title=${`Promote ${a.id} to a case`} open=${dialog === "case"} onClose=${() => setDialog(null)}>
      <${Promote} attack=${a} onClose=${() => setDialog(null)} />
    <//>
    <${Dialog} title=${`Respond to ${a.id}`} open=${dialog === "respond"} onClose=${() => setDialog(null)}>
      <${Respond} attack=${a} onClose=${() => setDialog(null)} onDone=${() => found.reload()} />
    <//>
  </div>`;
}

// --- findings -----------------------------------------------------------------------------------

function Analyse({ onClose, onDone }) {
  const now = Date.now();
  const [analyse, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = {};
    for (const name of ["query", "sensor", "attack_id"]) if (form.get(name)?.trim()) body[name] = form.get(name).trim();
    const start = fromLocalInput(form.get("start"));
    const end = fromLocalInput(form.get("end"));
    if (start) body.start = start;
    if (end) body.end = end;
    const finding = await api("POST", "/network-security/analyze", { body });
    notify(`Finding ${finding.id}: ${clip(finding.summary, 120)}`, finding.status === "failed" ? "warn" : "good");
    onDone(finding);
  });
  return html`<form onSubmit=${analyse} aria-label="Analyse network telemetry">
    <p class="muted">The network specialist reads a window of the stored telemetry (narrowed by a search, a sensor or an attack's events) and writes a finding.</p>
    <div class="toolbar">
      <${Field} label="From"><input type="datetime-local" name="start" defaultValue=${toLocalInput(new Date(now - 3600_000).toISOString())} /><//>
      <${Field} label="To"><input type="datetime-local" name="end" defaultValue=${toLocalInput(new Date(now).toISOString())} /><//>
    </div>
    <${Field} label="Search" hint="optional, in the SIEM's search language"><input name="query" maxlength="8192" class="mono" placeholder="destination.port:22" /><//>
    <div class="toolbar">
      <${Field} label="Sensor" hint="optional"><input name="sensor" maxlength="128" autocomplete="off" /><//>
      <${Field} label="Attack" hint="optional: its events"><input name="attack_id" maxlength="32" autocomplete="off" /><//>
    </div>
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>${busy ? "Analysing…" : "Analyse"}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function Findings({ query }) {
  const filters = {
    severity: SEVERITIES.includes(query.severity) ? query.severity : null,
    status: query.status === "succeeded" || query.status === "failed" ? query.status : null,
    technique: query.technique || null,
    attack_id: query.attack_id || null,
  };
  const sort = FINDING_SORTS[query.sort] ? query.sort : "-created_at";
  const offset = offsetOf(query);
  const [analysing, setAnalysing] = useState(false);
  const [open, setOpen] = useState(null);
  const key = JSON.stringify([filters, sort, offset]);
  const page = useLoad(() => api("GET", "/network-security/findings", { query: { ...filters, sort, limit: LIMIT, offset } }), [key]);
  const change = (update) => go(href("#/network/findings", { ...filters, sort: sort === "-created_at" ? null : sort, offset: 0, ...update }));
  const [technique, setTechnique] = useDraft(filters.technique || "");
  const [attackId, setAttackId] = useDraft(filters.attack_id || "");
  const items = page.data?.items || [];
  const filtered = Object.values(filters).some(Boolean);
  return html`<div>
    <form class="toolbar" role="search" aria-label="Filter findings"
      onSubmit=${(e) => {
        e.preventDefault();
        change({ technique: technique.trim().toUpperCase() || null, attack_id: attackId.trim() || null });
      }}>
      <${Field} label="Technique"><input name="technique" maxlength="9" value=${technique} onInput=${(e) => setTechnique(e.currentTarget.value)} placeholder="T1071" size="8" autocomplete="off" /><//>
      <${Field} label="Attack"><input name="attack_id" maxlength="32" value=${attackId} onInput=${(e) => setAttackId(e.currentTarget.value)} size="14" autocomplete="off" /><//>
      <button type="submit">Apply</button>
      <${Field} label="At least"><${Select} name="severity" label="At least" value=${filters.severity} options=${SEVERITIES} onChange=${(v) => change({ severity: v })} /><//>
      <${Field} label="Status"><${Select} name="status" label="Status" value=${filters.status} options=${["succeeded", "failed"]} onChange=${(v) => change({ status: v })} /><//>
      <${Field} label="Sort"><select name="sort" value=${sort} onChange=${(e) => change({ sort: e.currentTarget.value === "-created_at" ? null : e.currentTarget.value })}>
        ${Object.entries(FINDING_SORTS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
      ${filtered && html`<a class="button" href="#/network/findings">Clear filters</a>`}
      <button type="button" onClick=${page.reload}>Refresh</button>
      <span class="spacer"></span>
      ${can("network:write") && html`<button type="button" class="primary" onClick=${() => setAnalysing(true)}>Analyse…</button>`}
    </form>
    <${ErrorBox} error=${page.error} />
    ${page.loading && !page.data && html`<${Loading} what="Loading findings" />`}
    ${page.data && items.length === 0 && html`<${Empty}>${filtered ? "No finding matches these filters." : "No findings yet: the network specialist writes one for each analysis."}<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Findings" aria-busy=${page.loading}>
      <thead><tr><th>Finding</th><th>Severity</th><th>Summary</th><th>Techniques</th><th>Window</th><th>By</th></tr></thead>
      <tbody>${items.map((f) => html`<tr key=${f.id} class=${open === f.id ? "selected" : ""}>
        <td><button type="button" class="link mono" aria-expanded=${open === f.id} onClick=${() => setOpen(open === f.id ? null : f.id)}>${f.id}</button>
          <div><${Status} value=${f.status} /></div></td>
        <td><${Severity} value=${f.severity} /> <span class="count">${percent(f.confidence)}</span></td>
        <td class="title">${f.summary}${f.error && html`<div class="chain-bad">${f.error}</div>`}
          ${f.attack_id && html`<div>on <a href=${attackHref(f.attack_id)}>${f.attack_id}</a></div>`}
          ${open === f.id && html`<details open><summary>The finding in full (${Math.round(f.duration_ms)} ms)</summary><${Json} value=${{ scope: f.scope, finding: f.finding }} /></details>`}</td>
        <td>${f.techniques.map((t) => html`<span class="tag">${t}</span>`)}</td>
        <td>${f.window_start ? html`${fullTime(f.window_start)}<div class="muted">to ${fullTime(f.window_end)}</div>` : html`<span class="muted">records given</span>`}</td>
        <td>${f.requested_by}<div class="muted"><${Time} value=${f.created_at} /></div></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${page.data} onChange=${(next) => change({ offset: next })} />
    <${Dialog} title="Analyse network telemetry" open=${analysing} onClose=${() => setAnalysing(false)}>
      <${Analyse} onClose=${() => setAnalysing(false)} onDone=${(f) => { setAnalysing(false); setOpen(f.id); page.reload(); }} />
    <//>
  </div>`;
}

// --- telemetry ----------------------------------------------------------------------------------

function Telemetry({ query }) {
  const span = WINDOWS[query.window] ? Number(query.window) : 3600;
  const [offset, setOffset] = useState(0);
  const status = useLoad(() => api("GET", "/network-telemetry/status", { query: { window_seconds: span } }), [span]);
  const control = html`<div class="toolbar">
    <${Field} label="Window"><select value=${String(span)} onChange=${(e) => go(href("#/network/telemetry", { window: e.currentTarget.value === "3600" ? null : e.currentTarget.value }))}>
      ${Object.entries(WINDOWS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
    <button type="button" onClick=${status.reload}>Refresh</button>
  </div>`;
  if (status.error && !status.data) return html`<div>${control}<${ErrorBox} error=${status.error} /></div>`;
  if (!status.data) return html`<div>${control}<${Loading} what="Loading telemetry status" /></div>`;
  const t = status.data.totals;
  const sensors = status.data.sensors || [];
  return html`<div>
    ${control}
    <section class="panel" aria-label="Telemetry totals">
      <dl class="props">
        <dt>Sensors</dt><dd>${num(t.sensors)}: <span class="chain-ok">${num(t.active)} active</span>, <span class=${t.silent ? "chain-bad" : ""}>${num(t.silent)} silent</span>, ${num(t.never_seen)} never seen</dd>
        <dt>Events</dt><dd>${num(t.events)} since ${fullTime(status.data.window_start)}; ${rate(t.events_per_second_5m)} over 5 min, ${rate(t.events_per_second_1h)} over the hour</dd>
        <dt>By format</dt><dd><${Counts} counts=${t.by_format} /></dd>
      </dl>
    </section>
    ${sensors.length === 0 ? html`<${Empty}>No sensor is configured or has sent telemetry.<//>` : html`<div class="table-wrap"><table aria-label="Sensors">
      <thead><tr><th>Sensor</th><th>State</th><th>Format</th><th>Events</th><th>Rate (5 min / 1 h)</th><th>Last event</th><th>Gaps</th></tr></thead>
      <tbody>${sensors.slice(offset, offset + LIMIT).map((s) => html`<tr key=${s.sensor}>
        <td class="title"><span class="mono">${s.sensor}</span>${s.description && html`<div class="muted">${s.description}</div>`}
          <div class="muted">named by ${s.named_by}${s.configured ? ", configured" : ""}${s.enabled ? "" : ", disabled"}</div></td>
        <td><${Status} value=${s.state} />${s.silent && s.state !== "never_seen" ? html`<div class="muted">silent ${duration(s.silence_seconds)}+</div>` : ""}</td>
        <td>${s.format || "—"}</td>
        <td>${num(s.events)}</td>
        <td>${rate(s.events_per_second_5m)} / ${rate(s.events_per_second_1h)}</td>
        <td>${s.last_seen ? html`${fullTime(s.last_seen)}<div class="muted"><${Time} value=${s.last_seen} /></div>` : html`<span class="muted">never</span>`}</td>
        <td>${s.gaps_total === 0 ? html`<span class="muted">none</span>` : html`<details><summary>${num(s.gaps_total)} gap(s)${(s.gaps || []).some((g) => g.open) ? ", one open" : ""}</summary>
          <ul class="plain">${(s.gaps || []).map((g) => html`<li>${fullTime(g.start)} to ${g.open ? "now" : fullTime(g.end)} (${duration(g.seconds)})</li>`)}</ul></details>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} total=${sensors.length} limit=${LIMIT} offset=${offset} onChange=${setOffset} />
  </div>`;
}

// --- coverage -----------------------------------------------------------------------------------

function Coverage({ query }) {
  const lookback = LOOKBACKS[query.lookback] ? Number(query.lookback) : 86400;
  const state = query.state === "covered" || query.state === "no_telemetry" ? query.state : null;
  const [search, setSearch] = useState("");
  const [offset, setOffset] = useState(0);
  const coverage = useLoad(() => api("GET", "/network-telemetry/coverage", { query: { lookback_seconds: lookback } }), [lookback]);
  const change = (update) => {
    setOffset(0);
    go(href("#/network/coverage", { lookback: lookback === 86400 ? null : lookback, state, ...update }));
  };
  const control = html`<form class="toolbar" role="search" aria-label="Filter techniques" onSubmit=${(e) => e.preventDefault()}>
    <${Field} label="Telemetry seen within"><select value=${String(lookback)} onChange=${(e) => change({ lookback: e.currentTarget.value === "86400" ? null : e.currentTarget.value })}>
      ${Object.entries(LOOKBACKS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
    <${Field} label="State"><${Select} name="state" label="State" value=${state} options=${["covered", "no_telemetry"]} onChange=${(v) => change({ state: v })} /><//>
    <${Field} label="Technique or tactic"><input type="search" value=${search} maxlength="100" onInput=${(e) => { setSearch(e.currentTarget.value); setOffset(0); }} /><//>
    <button type="button" onClick=${coverage.reload}>Refresh</button>
  </form>`;
  if (coverage.error && !coverage.data) return html`<div>${control}<${ErrorBox} error=${coverage.error} /></div>`;
  if (!coverage.data) return html`<div>${control}<${Loading} what="Loading ATT&CK coverage" /></div>`;
  const c = coverage.data;
  const needle = search.trim().toLowerCase();
  const techniques = (c.techniques || []).filter((t) => (!state || t.state === state)
    && (!needle || `${t.id} ${t.name} ${t.tactics.join(" ")}`.toLowerCase().includes(needle)));
  return html`<div>
    ${control}
    <section class="panel" aria-label="Coverage summary">
      <dl class="props">
        <dt>Techniques</dt><dd><strong class="chain-ok">${num(c.totals.covered)} covered</strong> with their telemetry flowing, <span class=${c.totals.no_telemetry ? "chain-bad" : ""}>${num(c.totals.no_telemetry)} covered by rules or detectors whose data is not arriving</span>; ${num(c.totals.techniques)} in all</dd>
        <dt>Rules</dt><dd>${num(c.totals.rules_flowing)} of ${num(c.totals.rules)} have their data</dd>
        <dt>Detectors</dt><dd>${num(c.totals.detectors_flowing)} of ${num(c.totals.detectors)} have their data</dd>
        <dt>Sources enabled</dt><dd>${(c.sources_enabled || []).length ? c.sources_enabled.map((s) => html`<span class="tag">${s}</span>`) : "none"}</dd>
        <dt>ATT&CK</dt><dd>${c.attack_version ? `version ${c.attack_version}` : "version unknown"}; computed ${fullTime(c.generated_at)}</dd>
      </dl>
    </section>
    ${techniques.length === 0 ? html`<${Empty}>No technique matches.<//>` : html`<div class="table-wrap"><table aria-label="ATT&CK coverage">
      <thead><tr><th>Technique</th><th>Tactics</th><th>State</th><th>Covered by</th></tr></thead>
      <tbody>${techniques.slice(offset, offset + LIMIT).map((t) => html`<tr key=${t.id}>
        <td class="title">${t.url ? html`<a class="mono" href=${t.url} target="_blank" rel="noopener noreferrer">${t.id}</a>` : html`<span class="mono">${t.id}</span>`} ${t.name}</td>
        <td>${t.tactics.map((x) => html`<span class="tag">${x}</span>`)}</td>
        <td><${Status} value=${t.state} /></td>
        <td><ul class="plain">${t.sources.map((s) => html`<li>${s.telemetry_flowing ? html`<span class="chain-ok">✔</span>` : html`<span class="chain-bad">✘</span>`}
          ${" "}${s.kind} <strong>${s.name || s.id}</strong> <span class="muted">(${s.telemetry}: ${s.telemetry_flowing ? `${num(s.events)} event(s)` : "no data arriving"})</span></li>`)}</ul></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} total=${techniques.length} limit=${LIMIT} offset=${offset} onChange=${setOffset} />
  </div>`;
}

// --- status -------------------------------------------------------------------------------------

function SecurityStatus() {
  const status = useLoad(() => api("GET", "/network-security/status"), []);
  if (status.error && !status.data) return html`<${ErrorBox} error=${status.error} />`;
  if (!status.data) return html`<${Loading} what="Loading the detectors' status" />`;
  const { scheduler = {}, detectors = [], attacks = {}, findings = {}, agent = {} } = status.data;
  return html`<div>
    <div class="toolbar"><span class="spacer"></span><button type="button" onClick=${status.reload}>Refresh</button></div>
    <div class="grid3">
      <section class="panel" aria-labelledby="status-scheduler"><h3 id="status-scheduler">Detection schedule</h3><dl class="props">
        <dt>Schedule</dt><dd>${scheduler.enabled ? `every ${duration(scheduler.interval_seconds)}` : html`<span class="chain-bad">off</span>`}</dd>
        <dt>Running</dt><dd>${scheduler.running ? "yes" : "no"}</dd>
        <dt>Last cycle</dt><dd>${scheduler.last_cycle_at ? html`<${Time} value=${scheduler.last_cycle_at} />, ${num(Math.round(scheduler.last_cycle_ms))} ms, ${num(scheduler.last_cycle_windows)} window(s)` : "none yet"}</dd>
        <dt>Next cycle</dt><dd>${scheduler.next_cycle_at ? fullTime(scheduler.next_cycle_at) : "—"}</dd>
      </dl></section>
      <section class="panel" aria-labelledby="status-attacks"><h3 id="status-attacks">Attacks</h3><dl class="props">
        <dt>Total</dt><dd><a href="#/network">${num(attacks.total)}</a>, <a href=${href("#/network", { ongoing: "true" })}>${num(attacks.ongoing)} ongoing</a></dd>
        <dt>By status</dt><dd><${Counts} counts=${attacks.by_status} link=${(s) => href("#/network", { status: s })} /></dd>
        <dt>By severity</dt><dd><${Counts} counts=${attacks.by_severity} /></dd>
      </dl></section>
      <section class="panel" aria-labelledby="status-findings"><h3 id="status-findings">Network specialist</h3><dl class="props">
        <dt>Agent</dt><dd>${agent.name || "—"}${agent.circuit ? html` <${Badge} value=${`circuit ${agent.circuit}`} />` : ""}</dd>
        <dt>Findings</dt><dd><a href="#/network/findings">${num(findings.total)}</a>: <${Counts} counts=${findings.by_status} link=${(s) => href("#/network/findings", { status: s })} /></dd>
        <dt>Latest</dt><dd>${findings.last_at ? html`<${Time} value=${findings.last_at} />` : "none yet"}</dd>
      </dl></section>
    </div>
    <h3>Detectors</h3>
    ${detectors.length === 0 ? html`<${Empty}>No detector is enabled.<//>` : html`<div class="table-wrap"><table aria-label="Detectors">
      <thead><tr><th>Detector</th><th>Health</th><th>Last run</th><th>Runs</th><th>Attacks</th><th>Last window</th></tr></thead>
      <tbody>${detectors.map((d) => html`<tr key=${d.detector}>
        <td><a href=${href("#/network", { detector: d.detector })}>${d.detector.replaceAll("_", " ")}</a>${d.enabled ? "" : html` <${Badge} value="disabled" />`}</td>
        <td>${d.healthy ? html`<span class="chain-ok">✔ healthy</span>` : html`<span class="chain-bad">✘ failing</span>`}
          ${d.last_error && html`<div class="muted">${clip(d.last_error, 160)}</div>`}</td>
        <td>${d.last_started_at ? html`<${Time} value=${d.last_started_at} />` : "never"}${d.last_status ? html` <${Status} value=${d.last_status} />` : ""}
          ${d.last_duration_ms != null && html`<div class="muted">${num(Math.round(d.last_duration_ms))} ms, ${num(d.last_candidates)} candidate(s)</div>`}</td>
        <td>${num(d.runs)}${d.failures ? html`, <span class="chain-bad">${num(d.failures)} failed</span>` : ""}</td>
        <td>${num(d.attacks_opened)} opened, ${num(d.attacks_updated)} updated</td>
        <td>${d.last_window_end ? fullTime(d.last_window_end) : "—"}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </div>`;
}

export default function Network({ params, query }) {
  const [section, id] = params;
  const current = SECTIONS.some((s) => s.id === section) ? section : "attacks";
  return html`<div>
    <h1>Network</h1>
    <${Tabs} current=${section === "attacks" && id ? "attacks" : current} items=${SECTIONS} label="Network sections" />
    ${section === "attacks" && id ? html`<${Attack} key=${id} id=${id} />`
      : current === "findings" ? html`<${Findings} query=${query} />`
      : current === "telemetry" ? html`<${Telemetry} query=${query} />`
      : current === "coverage" ? html`<${Coverage} query=${query} />`
      : current === "status" ? html`<${SecurityStatus} />`
      : html`<${Attacks} query=${query} />`}
  </div>`;
}
