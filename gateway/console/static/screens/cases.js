// Cases: the list (filters and sort kept in the address, pages, a new case), and one case: its
// header (status along the workflow, severity, TLP, PAP and assignee edited with the optimistic
// `version` the API checks), its alerts, and tabs for its observables, evidence (uploaded as
// multipart, its custody chain, and its ledger as the server verified it), tasks, comments and
// timeline.
import { api, can } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import {
  Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Tabs, Time,
  clip, fromLocalInput, fullTime, go, hashWith, investigate, notify, num, useAction, useLoad,
  usePage,
} from "../ui.js";

const LIMIT = 50;
const ITEM_LIMIT = 50;
const TIMELINE_PAGE = 50;
const STATUSES = ["open", "in_progress", "resolved", "closed"];
/** The case workflow as the platform enforces it (AURORA-4220 otherwise). */
const NEXT_STATUS = {
  open: ["in_progress", "resolved", "closed"],
  in_progress: ["open", "resolved", "closed"],
  resolved: ["in_progress", "closed"],
  closed: ["in_progress"],
};
const NEXT_TASK_STATUS = {
  todo: ["in_progress", "done", "cancelled"],
  in_progress: ["todo", "done", "cancelled"],
  done: ["in_progress"],
  cancelled: ["todo"],
};
const SEVERITIES = ["critical", "high", "medium", "low", "informational"];
const TLPS = ["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED"];
const PAPS = ["PAP:CLEAR", "PAP:GREEN", "PAP:AMBER", "PAP:RED"];
const SORTS = {
  "-created_at": "newest first",
  created_at: "oldest first",
  "-updated_at": "recently changed",
  "-severity": "most severe first",
  severity: "least severe first",
  status: "status",
  title: "title A–Z",
};
const OBSERVABLE_TYPES = [
  "ip", "domain", "url", "email", "md5", "sha1", "sha256", "sha512", "hash", "cve", "host", "user",
  "filename", "asn", "mac", "registry_key", "attack_technique", "user_agent", "process",
];
const TABS = [
  ["observables", "Observables"],
  ["evidence", "Evidence"],
  ["tasks", "Tasks"],
  ["comments", "Comments"],
  ["timeline", "Timeline"],
];

const enc = encodeURIComponent;
const casePath = (id, rest = "") => `/cases/${enc(id)}${rest}`;
const caseHref = (id, tab) => `#/cases/${enc(id)}${tab ? `?tab=${enc(tab)}` : ""}`;
const words = (text) => String(text || "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
const listHref = (params) => hashWith("#/cases", params);

/** The page on which an item just added (the lists are oldest first) appears. */
const lastPage = (total, limit) => Math.max(0, Math.floor(total / limit) * limit);

/** A text field's value while it is typed, reset when `value` (what is applied) changes. */
function useDraft(value) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return [draft, setDraft];
}

// --- the list ---------------------------------------------------------------------------------

function NewCase({ onClose }) {
  const [create, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = {
      title: form.get("title").trim(),
      severity: form.get("severity"),
      tlp: form.get("tlp"),
      pap: form.get("pap"),
      tags: words(form.get("tags")),
    };
    if (form.get("description").trim()) body.description = form.get("description");
    if (form.get("assignee").trim()) body.assignee = form.get("assignee").trim();
    const created = await api("POST", "/cases", { body });
    notify(`Case ${created.id} opened`, "good");
    onClose();
    go(caseHref(created.id));
  });
  return html`<form onSubmit=${create} aria-label="New case">
    <${Field} label="Title"><input name="title" required maxlength="500" autofocus /><//>
    <${Field} label="Description" hint="optional"><textarea name="description" maxlength="50000" rows="4"></textarea><//>
    <div class="toolbar">
      <${Field} label="Severity"><select name="severity">${SEVERITIES.map((s) => html`<option value=${s} selected=${s === "medium"}>${s}</option>`)}</select><//>
      <${Field} label="TLP"><select name="tlp">${TLPS.map((t) => html`<option value=${t} selected=${t === "TLP:AMBER"}>${t}</option>`)}</select><//>
      <${Field} label="PAP"><select name="pap">${PAPS.map((p) => html`<option value=${p} selected=${p === "PAP:AMBER"}>${p}</option>`)}</select><//>
    </div>
    <${Field} label="Assignee" hint="optional: a username"><input name="assignee" maxlength="64" autocomplete="off" /><//>
    <${Field} label="Tags" hint="separated by commas or spaces"><input name="tags" maxlength="2000" autocomplete="off" /><//>
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Opening…" : "Open the case"}</button>
      <button type="button" onClick=${onClose}>Cancel</button>
    </div>
  </form>`;
}

function CaseList({ query, user }) {
  const writable = can("cases:write");
  const filters = {
    status: STATUSES.includes(query.status) ? query.status : null,
    severity: SEVERITIES.includes(query.severity) ? query.severity : null,
    assignee: query.assignee || null,
    tag: query.tag || null,
  };
  const sort = SORTS[query.sort] ? query.sort : "-created_at";
  const offset = Math.max(0, Number.parseInt(query.offset, 10) || 0);
  const [creating, setCreating] = useState(false);
  const key = JSON.stringify([filters, sort, offset]);
  const list = useLoad(() => api("GET", "/cases", { query: { ...filters, sort, limit: LIMIT, offset } }), [key]);
  const change = (update) => go(listHref({ ...filters, sort: sort === "-created_at" ? null : sort, offset: 0, ...update }));
  const [assignee, setAssignee] = useDraft(filters.assignee || "");
  const [tag, setTag] = useDraft(filters.tag || "");
  const applyText = (event) => {
    event.preventDefault();
    change({ assignee: assignee.trim() || null, tag: tag.trim() || null });
  };
  const items = list.data?.items || [];
  const filtered = Object.values(filters).some(Boolean);
  return html`<div>
    <div class="toolbar">
      <h1>Cases</h1>
      ${list.data && html`<span class="count">${num(list.data.total)} ${filtered ? "matching" : "in all"}</span>`}
      <span class="spacer"></span>
      ${writable && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New case</button>`}
    </div>
    <form class="toolbar" role="search" aria-label="Filter cases" onSubmit=${applyText}>
      <${Field} label="Status"><${Select} name="status" label="Status" value=${filters.status} options=${STATUSES} onChange=${(v) => change({ status: v })} /><//>
      <${Field} label="Severity"><${Select} name="severity" label="Severity" value=${filters.severity} options=${SEVERITIES} onChange=${(v) => change({ severity: v })} /><//>
      <${Field} label="Assignee"><input name="assignee" maxlength="64" value=${assignee} onInput=${(e) => setAssignee(e.currentTarget.value)} autocomplete="off" /><//>
      <${Field} label="Tag"><input name="tag" maxlength="64" value=${tag} onInput=${(e) => setTag(e.currentTarget.value)} autocomplete="off" /><//>
      <button type="submit">Apply</button>
      ${user?.username && html`<button type="button" aria-pressed=${filters.assignee === user.username}
        onClick=${() => change({ assignee: filters.assignee === user.username ? null : user.username })}>Assigned to me</button>`}
      <${Field} label="Sort"><select name="sort" value=${sort} aria-label="Sort" onChange=${(e) => change({ sort: e.currentTarget.value === "-created_at" ? null : e.currentTarget.value })}>
        ${Object.entries(SORTS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
      ${filtered && html`<a class="button" href=${listHref({ sort: sort === "-created_at" ? null : sort })}>Clear filters</a>`}
      <button type="button" onClick=${list.reload}>Refresh</button>
    </form>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading cases" />`}
    ${list.data && items.length === 0 && html`<${Empty}>${filtered ? "No case matches these filters." : "No cases yet."}<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Cases" aria-busy=${list.loading}>
      <thead><tr><th>Case</th><th>Title</th><th>Severity</th><th>Status</th><th>TLP / PAP</th><th>Assignee</th><th>Tags</th><th>Updated</th></tr></thead>
      <tbody>${items.map((c) => html`<tr key=${c.id}>
        <td class="mono">${c.id}</td>
        <td class="title"><a href=${caseHref(c.id)}>${c.title}</a></td>
        <td><${Severity} value=${c.severity} /></td>
        <td><${Status} value=${c.status} /></td>
        <td><span class="tag">${c.tlp}</span><span class="tag">${c.pap}</span></td>
        <td>${c.assignee || html`<span class="muted">unassigned</span>`}</td>
        <td>${(c.tags || []).map((t) => html`<a class="tag" href=${listHref({ ...filters, tag: t })}>${t}</a>`)}</td>
        <td><${Time} value=${c.updated_at} /></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${(next) => go(listHref({ ...filters, sort: sort === "-created_at" ? null : sort, offset: next }))} />
    <${Dialog} title="New case" open=${creating} onClose=${() => setCreating(false)}>
      <${NewCase} onClose=${() => setCreating(false)} />
    <//>
  </div>`;
}

// --- one case: the header -----------------------------------------------------------------------

/** The notice after AURORA-4090: the case (or task) was changed by someone else first. */
function Conflict({ what, onDismiss }) {
  return html`<p class="notice warn" role="alert">Someone else changed this ${what} after you loaded it. It has been reloaded
    with their change: check it, then make yours again. <button type="button" class="link" onClick=${onDismiss}>dismiss</button></p>`;
}

function EditDetails({ detail, save, error, onClose }) {
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    const done = await save({
      title: form.get("title").trim(),
      description: form.get("description"),
      tags: words(form.get("tags")),
    });
    setBusy(false);
    if (done) onClose();
  };
  return html`<form onSubmit=${submit} aria-label="Edit the case">
    <${Field} label="Title"><input name="title" required maxlength="500" defaultValue=${detail.title} /><//>
    <${Field} label="Description"><textarea name="description" maxlength="50000" rows="6" defaultValue=${detail.description || ""}></textarea><//>
    <${Field} label="Tags" hint="separated by commas or spaces"><input name="tags" maxlength="2000" defaultValue=${(detail.tags || []).join(", ")} /><//>
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>Save</button><button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function DeleteCase({ detail, onClose }) {
  const [remove, busy, error] = useAction(async () => {
    await api("DELETE", casePath(detail.id));
    notify(`Case ${detail.id} deleted`, "good");
    onClose();
    go("#/cases");
  });
  return html`<div>
    <p>Delete <strong>${detail.id}</strong> “${detail.title}”? It disappears from every list and read; it stays stored for the record.</p>
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="button" class="danger" disabled=${busy} onClick=${() => remove()}>Delete the case</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </div>`;
}

function Header({ detail, shown, writable, user, save, saving, saveError, clearError, conflict, clearConflict }) {
  const [dialog, setDialog] = useState(null);
  const [assignee, setAssignee] = useDraft(detail.assignee || "");
  const statuses = [detail.status, ...(NEXT_STATUS[detail.status] || [])];
  const select = (name, label, value, options, shown = (o) => o.replaceAll("_", " ")) => html`<${Field} label=${label}>
    <select name=${name} value=${value} disabled=${!writable || saving}
      onChange=${(e) => e.currentTarget.value !== value && save({ [name]: e.currentTarget.value })}>
      ${options.map((o) => html`<option value=${o}>${shown(o)}</option>`)}
    </select><//>`;
  const assign = (event) => {
    event.preventDefault();
    const value = assignee.trim();
    if (value !== (detail.assignee || "")) save({ assignee: value || null });
  };
  return html`<section class="panel" aria-labelledby="case-title">
    <div class="toolbar">
      <h1 id="case-title">${detail.title}</h1>
      <span class="mono muted">${detail.id}</span>
      <${Severity} value=${detail.severity} /><${Status} value=${detail.status} />
      <span class="spacer"></span>
      ${can("investigations:write") && html`<button type="button" class="primary" onClick=${() => investigate({ case_id: detail.id })}>Investigate this case</button>`}
      ${writable && html`<button type="button" onClick=${() => setDialog("edit")}>Edit title, description, tags…</button>
        <button type="button" class="danger" onClick=${() => setDialog("delete")}>Delete…</button>`}
    </div>
    ${conflict && html`<${Conflict} what="case" onDismiss=${clearConflict} />`}
    <${ErrorBox} error=${saveError} onDismiss=${clearError} />
    <div class="toolbar" aria-busy=${saving}>
      ${select("status", "Status", shown.status, statuses)}
      ${select("severity", "Severity", shown.severity, SEVERITIES)}
      ${select("tlp", "TLP", shown.tlp, TLPS, (o) => o)}
      ${select("pap", "PAP", shown.pap, PAPS, (o) => o)}
      <form class="toolbar" onSubmit=${assign} aria-label="Assignee">
        <${Field} label="Assignee"><input name="assignee" maxlength="64" value=${assignee} onInput=${(e) => setAssignee(e.currentTarget.value)} disabled=${!writable || saving} placeholder="unassigned" autocomplete="off" /><//>
        ${writable && html`<button type="submit" disabled=${saving}>Assign</button>
          ${user?.username && detail.assignee !== user.username && html`<button type="button" disabled=${saving} onClick=${() => save({ assignee: user.username })}>Assign to me</button>`}
          ${detail.assignee && html`<button type="button" disabled=${saving} onClick=${() => save({ assignee: null })}>Unassign</button>`}`}
      </form>
    </div>
    ${detail.description && html`<pre class="chat-text">${detail.description}</pre>`}
    <dl class="props">
      <dt>Tags</dt><dd>${detail.tags.length ? detail.tags.map((t) => html`<a class="tag" href=${listHref({ tag: t })}>${t}</a>`) : "—"}</dd>
      <dt>Opened</dt><dd>by ${detail.created_by}, ${fullTime(detail.created_at)}</dd>
      <dt>Changed</dt><dd><${Time} value=${detail.updated_at} /> (version ${detail.version})</dd>
      ${detail.closed_at && html`<dt>Ended</dt><dd>${fullTime(detail.closed_at)}</dd>`}
    </dl>
    <h2>Linked alerts (${detail.alerts.length})</h2>
    ${detail.alerts.length === 0
      ? html`<p class="muted">No alert was promoted to or linked with this case.</p>`
      : html`<ul class="plain" aria-label="Linked alerts">${detail.alerts.map((a) => html`<li key=${a.id}>
          <a class="mono" href=${`#/alerts?focus=${enc(a.id)}`}>${a.id}</a> <${Severity} value=${a.severity} /> <${Status} value=${a.status} /> ${a.title}</li>`)}</ul>`}
    <${Dialog} title=${`Edit ${detail.id}`} open=${dialog === "edit"} onClose=${() => setDialog(null)}>
      <${EditDetails} detail=${detail} save=${save} error=${saveError} onClose=${() => setDialog(null)} />
    <//>
    <${Dialog} title=${`Delete ${detail.id}?`} open=${dialog === "delete"} onClose=${() => setDialog(null)}>
      <${DeleteCase} detail=${detail} onClose=${() => setDialog(null)} />
    <//>
  </section>`;
}

// --- observables --------------------------------------------------------------------------------

function Observables({ caseId, writable }) {
  const list = usePage(casePath(caseId, "/observables"), ITEM_LIMIT);
  const [add, busy, error, clear] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const form = new FormData(target);
    const body = {
      type: form.get("type").trim(),
      value: form.get("value").trim(),
      ioc: form.get("ioc") === "on",
      sighted: form.get("sighted") === "on",
      tags: words(form.get("tags")),
      on_duplicate: form.get("merge") === "on" ? "merge" : "reject",
    };
    if (form.get("description").trim()) body.description = form.get("description");
    const saved = await api("POST", casePath(caseId, "/observables"), { body });
    notify(`Observable ${saved.type} ${clip(saved.value, 60)} saved`, "good");
    target.reset();
    list.show(lastPage(list.data?.total ?? 0, ITEM_LIMIT));
  });
  const items = list.data?.items || [];
  return html`<div>
    ${writable && html`<form class="toolbar" onSubmit=${add} aria-label="Add an observable">
      <${Field} label="Type"><input name="type" required maxlength="32" list="observable-types" autocomplete="off" size="12" /><//>
      <datalist id="observable-types">${OBSERVABLE_TYPES.map((t) => html`<option value=${t}></option>`)}</datalist>
      <${Field} label="Value"><input name="value" required maxlength="2048" autocomplete="off" size="28" /><//>
      <${Field} label="Description"><input name="description" maxlength="10000" autocomplete="off" /><//>
      <${Field} label="Tags"><input name="tags" maxlength="1000" autocomplete="off" size="12" /><//>
      <label><input type="checkbox" name="ioc" /> IOC</label>
      <label><input type="checkbox" name="sighted" /> Sighted</label>
      <label><input type="checkbox" name="merge" defaultChecked /> Merge a repeat</label>
      <button type="submit" disabled=${busy}>Add</button>
    </form>`}
    <${ErrorBox} error=${error} onDismiss=${clear} />
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading observables" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No observables on this case.<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Observables" aria-busy=${list.loading}>
      <thead><tr><th>Type</th><th>Value</th><th>IOC</th><th>Sighted</th><th>Tags</th><th>Also in</th><th>Added</th></tr></thead>
      <tbody>${items.map((o) => html`<tr key=${o.id}>
        <td>${o.type}${o.subtype ? html` <span class="muted">(${o.subtype})</span>` : ""}</td>
        <td class="title"><span class="mono">${o.value}</span>${o.description && html`<div class="muted">${o.description}</div>`}</td>
        <td>${o.ioc ? html`<span class="badge verdict-malicious">IOC</span>` : html`<span class="muted">no</span>`}</td>
        <td>${o.sighted ? html`<span class="badge verdict-suspicious">sighted</span>` : html`<span class="muted">no</span>`}</td>
        <td>${(o.tags || []).map((t) => html`<span class="tag">${t}</span>`)}</td>
        <td>${(o.similar_cases || []).length === 0 ? html`<span class="muted">—</span>`
          : o.similar_cases.map((c) => html`<a class="tag" href=${caseHref(c.id)} title=${c.title}>${c.id}</a>`)}</td>
        <td>${o.created_by}, <${Time} value=${o.created_at} /></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${list.setOffset} />
  </div>`;
}

// --- evidence -----------------------------------------------------------------------------------

function bytes(n) {
  if (n == null) return "—";
  if (n < 1024) return `${num(n)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toLocaleString(undefined, { maximumFractionDigits: 1 })} ${units[unit]}`;
}

const short = (hash) => (hash ? `${String(hash).slice(0, 12)}…` : "—");

/** The focus goes to a panel's heading when it opens, so a keyboard user lands on it. */
function useFocusOnOpen(key) {
  const ref = useRef(null);
  useEffect(() => {
    ref.current?.focus();
  }, [key]);
  return ref;
}

function CustodyView({ caseId, item, onClose }) {
  const custody = useLoad(() => api("GET", casePath(caseId, `/evidence/${enc(item.id)}/custody`)), [item.id]);
  const heading = useFocusOnOpen(item.id);
  const events = custody.data?.events || [];
  return html`<section class="panel" aria-labelledby="custody-title" id="evidence-panel">
    <div class="toolbar"><h3 id="custody-title" tabindex="-1" ref=${heading}>Custody chain of ${item.name}</h3>
      <span class="spacer"></span><button type="button" onClick=${custody.reload}>Reload</button><button type="button" onClick=${onClose}>Close</button></div>
    <p class="muted">Who handled the evidence, when and why; every view of the chain or the ledger is itself recorded in it. SHA-256 <span class="mono">${item.sha256}</span>.</p>
    <${ErrorBox} error=${custody.error} />
    ${custody.loading && !custody.data && html`<${Loading} what="Loading the custody chain" />`}
    ${custody.data && events.length === 0 && html`<${Empty}>No custody events.<//>`}
    ${events.length > 0 && html`<div class="table-wrap"><table aria-label="Custody events">
      <thead><tr><th>#</th><th>Action</th><th>By</th><th>When</th><th>Reason</th><th>Details</th></tr></thead>
      <tbody>${events.map((e) => html`<tr key=${e.sequence}>
        <td>${e.sequence}</td><td>${e.action.replaceAll("_", " ")}</td><td>${e.actor}</td><td>${fullTime(e.at)}</td><td>${e.reason}</td>
        <td>${Object.keys(e.details || {}).length ? html`<details><summary>details</summary><${Json} value=${e.details} /></details>` : ""}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

/** The server's verification of a ledger, as a clear verified / broken verdict. */
function Verification({ v }) {
  const blob = v.blob_intact === true ? "the stored file still hashes to the evidence's SHA-256"
    : v.blob_intact === false ? "the stored file NO LONGER matches the evidence's SHA-256"
    : "the stored file was purged (its content cannot be checked)";
  if (v.valid) {
    return html`<div class="notice good" role="status" id="ledger-verification">
      <strong class="chain-ok">✔ Ledger verified</strong>: ${num(v.entries)} of ${num(v.expected_entries)} expected entr${v.expected_entries === 1 ? "y" : "ies"} chained and sealed${v.legacy_entries ? ` (${num(v.legacy_entries)} legacy, plain SHA-256)` : ""}; ${blob}.
      <div class="muted">Head <span class="mono">${v.head}</span></div>
    </div>`;
  }
  return html`<div class="error" role="alert" id="ledger-verification">
    <strong class="chain-bad">✘ Ledger broken</strong>${v.broken_at != null ? ` at entry ${v.broken_at}` : ""}: ${v.reason || "it does not verify"}.
    <div>${num(v.entries)} entr${v.entries === 1 ? "y" : "ies"} verified of ${num(v.expected_entries)} expected; ${blob}.</div>
    <div class="muted">Head <span class="mono">${v.head || "—"}</span></div>
  </div>`;
}

function LedgerView({ caseId, item, onClose }) {
  const ledger = useLoad(() => api("GET", casePath(caseId, `/evidence/${enc(item.id)}/ledger`)), [item.id]);
  const heading = useFocusOnOpen(item.id);
  const v = ledger.data?.verification;
  const entries = ledger.data?.entries || [];
  return html`<section class="panel" aria-labelledby="ledger-title" id="evidence-panel">
    <div class="toolbar"><h3 id="ledger-title" tabindex="-1" ref=${heading}>Ledger of ${item.name}</h3>
      <span class="spacer"></span><button type="button" disabled=${ledger.loading} onClick=${ledger.reload}>Verify again</button><button type="button" onClick=${onClose}>Close</button></div>
    <p class="muted">Each entry seals the one before it with the ledger key; the server checks the chain, its length and head, and the stored file. SHA-256 <span class="mono">${ledger.data?.sha256 || item.sha256}</span>.</p>
    <${ErrorBox} error=${ledger.error} />
    ${ledger.loading && !ledger.data && html`<${Loading} what="Verifying the ledger" />`}
    ${v && html`<${Verification} v=${v} />`}
    ${entries.length > 0 && html`<div class="table-wrap"><table aria-label="Ledger entries">
      <thead><tr><th>#</th><th>Action</th><th>By</th><th>When</th><th>Reason</th><th>Previous</th><th>Hash</th><th>Key</th></tr></thead>
      <tbody>${entries.map((e) => {
        const broken = v && !v.valid && v.broken_at === e.sequence;
        return html`<tr key=${e.sequence} class=${broken ? "selected" : ""}>
          <td>${e.sequence}${broken ? html` <strong class="chain-bad">✘ breaks here</strong>` : ""}</td>
          <td>${e.action.replaceAll("_", " ")}</td><td>${e.actor}</td><td>${fullTime(e.at)}</td><td>${e.reason}</td>
          <td class="mono" title=${e.previous_hash}>${short(e.previous_hash)}</td>
          <td class="mono" title=${e.hash}>${short(e.hash)}</td>
          <td class="mono">${e.key_id || html`<span class="muted">legacy</span>`}</td>
        </tr>`;
      })}</tbody>
    </table></div>
    <details><summary>Entries in full (hashes, digests, details)</summary><${Json} value=${entries} /></details>`}
  </section>`;
}

function Evidence({ caseId, writable }) {
  const [open, setOpen] = useState(null); // {id, view: "custody" | "ledger"}
  const [phase, setPhase] = useState(null);
  const list = usePage(casePath(caseId, "/evidence"), ITEM_LIMIT);
  const [upload, busy, error, clear] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const form = new FormData(target);
    const file = form.get("file");
    if (!(file instanceof File) || !file.name) throw { code: "CONSOLE", message: "Choose a file to add." };
    try {
      setPhase(`Uploading ${file.name} (${bytes(file.size)})…`);
      // Multipart, text fields first and the file last, as the API reads it: the browser
      // streams the file and the server writes it to storage as it arrives (no copy of a large
      // file in the page's memory, none in the request as base64).
      const sent = new FormData();
      sent.append("reason", form.get("reason").trim());
      if (form.get("description").trim()) sent.append("description", form.get("description"));
      sent.append("content_type", file.type || "application/octet-stream");
      sent.append("file", file, file.name);
      const added = await api("POST", casePath(caseId, "/evidence"), { form: sent });
      notify(`${added.name} added: SHA-256 ${short(added.sha256)} (${bytes(added.size)})`, "good");
      target.reset();
      list.show(lastPage(list.data?.total ?? 0, ITEM_LIMIT));
    } finally {
      setPhase(null);
    }
  });
  const items = list.data?.items || [];
  const current = open && items.find((e) => e.id === open.id);
  const toggle = (item, view) => setOpen(open?.id === item.id && open.view === view ? null : { id: item.id, view });
  return html`<div>
    ${writable && html`<form class="toolbar" onSubmit=${upload} aria-label="Add evidence">
      <${Field} label="File"><input type="file" name="file" required /><//>
      <${Field} label="Reason" hint="why it was collected: the first entry of its custody chain"><input name="reason" required maxlength="2000" size="32" /><//>
      <${Field} label="Description"><input name="description" maxlength="10000" /><//>
      <button type="submit" disabled=${busy}>${busy ? "Adding…" : "Add evidence"}</button>
      ${phase && html`<span class="muted" role="status">${phase}</span>`}
    </form>`}
    <${ErrorBox} error=${error} onDismiss=${clear} />
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading evidence" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No evidence on this case.<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Evidence" aria-busy=${list.loading}>
      <thead><tr><th>Name</th><th>Type</th><th>Size</th><th>SHA-256</th><th>Ledger</th><th>Added</th><th>Chain of custody</th></tr></thead>
      <tbody>${items.map((e) => html`<tr key=${e.id} class=${open?.id === e.id ? "selected" : ""}>
        <td class="title">${e.name}${e.purged_at ? html` <span class="badge">purged <${Time} value=${e.purged_at} /></span>` : ""}
          ${e.description && html`<div class="muted">${e.description}</div>`}</td>
        <td>${e.content_type}</td>
        <td>${bytes(e.size)}</td>
        <td class="mono" title=${e.sha256}>${short(e.sha256)}</td>
        <td>${num(e.ledger_length)} entr${e.ledger_length === 1 ? "y" : "ies"}</td>
        <td>${e.created_by}, <${Time} value=${e.created_at} /></td>
        <td class="actions">
          <button type="button" class="small" aria-expanded=${open?.id === e.id && open.view === "custody"} aria-controls="evidence-panel"
            onClick=${() => toggle(e, "custody")}>Custody</button>
          <button type="button" class="small" aria-expanded=${open?.id === e.id && open.view === "ledger"} aria-controls="evidence-panel"
            onClick=${() => toggle(e, "ledger")}>Ledger</button>
        </td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${(next) => { setOpen(null); list.setOffset(next); }} />
    ${current && open.view === "custody" && html`<${CustodyView} key=${`c${current.id}`} caseId=${caseId} item=${current} onClose=${() => setOpen(null)} />`}
    ${current && open.view === "ledger" && html`<${LedgerView} key=${`l${current.id}`} caseId=${caseId} item=${current} onClose=${() => setOpen(null)} />`}
  </div>`;
}

// --- tasks --------------------------------------------------------------------------------------

function Tasks({ caseId, writable, user }) {
  const [conflict, setConflict] = useState(false);
  const list = usePage(casePath(caseId, "/tasks"), ITEM_LIMIT);
  const [add, adding, addError, clearAdd] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const form = new FormData(target);
    const body = { title: form.get("title").trim() };
    if (form.get("assignee").trim()) body.assignee = form.get("assignee").trim();
    if (form.get("description").trim()) body.description = form.get("description");
    const due = fromLocalInput(form.get("due_date"));
    if (due) body.due_date = due;
    const task = await api("POST", casePath(caseId, "/tasks"), { body });
    notify(`Task “${clip(task.title, 60)}” added`, "good");
    target.reset();
    list.show(lastPage(list.data?.total ?? 0, ITEM_LIMIT));
  });
  const [update, updating, updateError, clearUpdate] = useAction(async (task, change) => {
    setConflict(false);
    list.setData((page) => page && { ...page, items: page.items.map((t) => (t.id === task.id ? { ...t, ...change } : t)) });
    try {
      const saved = await api("PATCH", casePath(caseId, `/tasks/${enc(task.id)}`), { body: { ...change, version: task.version } });
      list.setData((page) => page && { ...page, items: page.items.map((t) => (t.id === saved.id ? saved : t)) });
    } catch (err) {
      if (err.code === "AURORA-4090") setConflict(true);
      list.reload();
      throw err;
    }
  });
  const items = list.data?.items || [];
  return html`<div>
    ${writable && html`<form class="toolbar" onSubmit=${add} aria-label="Add a task">
      <${Field} label="Task"><input name="title" required maxlength="500" size="32" /><//>
      <${Field} label="Assignee"><input name="assignee" maxlength="64" autocomplete="off" size="12" /><//>
      <${Field} label="Due"><input name="due_date" type="datetime-local" /><//>
      <${Field} label="Description"><input name="description" maxlength="20000" /><//>
      <button type="submit" disabled=${adding}>Add task</button>
    </form>`}
    <${ErrorBox} error=${addError} onDismiss=${clearAdd} />
    ${conflict && html`<${Conflict} what="task" onDismiss=${() => setConflict(false)} />`}
    <${ErrorBox} error=${updateError} onDismiss=${clearUpdate} />
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading tasks" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No tasks on this case.<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Tasks" aria-busy=${list.loading || updating}>
      <thead><tr><th>Task</th><th>Status</th><th>Assignee</th><th>Due</th><th>Created</th><th>Changed</th></tr></thead>
      <tbody>${items.map((t) => html`<tr key=${t.id}>
        <td class="title">${t.title}${t.description && html`<div class="muted">${t.description}</div>`}</td>
        <td>${writable
          ? html`<select aria-label=${`Status of ${t.title}`} value=${t.status} disabled=${updating}
              onChange=${(e) => e.currentTarget.value !== t.status && update(t, { status: e.currentTarget.value })}>
              ${[t.status, ...(NEXT_TASK_STATUS[t.status] || [])]
                .map((s) => html`<option value=${s}>${s.replaceAll("_", " ")}</option>`)}</select>`
          : html`<${Status} value=${t.status} />`}</td>
        <td>${t.assignee || html`<span class="muted">—</span>`}
          ${writable && user?.username && t.assignee !== user.username && html` <button type="button" class="link small" disabled=${updating}
            onClick=${() => update(t, { assignee: user.username })} aria-label=${`Take ${t.title}`}>take</button>`}</td>
        <td>${t.due_date ? fullTime(t.due_date) : html`<span class="muted">—</span>`}</td>
        <td>${t.created_by}, <${Time} value=${t.created_at} /></td>
        <td><${Time} value=${t.updated_at} /></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${list.setOffset} />
  </div>`;
}

// --- comments -----------------------------------------------------------------------------------

function Comments({ caseId, writable }) {
  const list = usePage(casePath(caseId, "/comments"), ITEM_LIMIT);
  const [add, busy, error, clear] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    await api("POST", casePath(caseId, "/comments"), { body: { body: new FormData(target).get("body") } });
    target.reset();
    list.show(lastPage(list.data?.total ?? 0, ITEM_LIMIT));
  });
  const items = list.data?.items || [];
  return html`<div>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading comments" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No comments yet.<//>`}
    ${items.map((c) => html`<article class="card" key=${c.id} aria-label=${`Comment by ${c.author}`}>
      <header><strong>${c.author}</strong> <${Time} value=${c.created_at} /></header>
      <pre class="chat-text">${c.body}</pre>
    </article>`)}
    <${Pager} page=${list.data} onChange=${list.setOffset} />
    ${writable && html`<form onSubmit=${add} aria-label="Add a comment">
      <${Field} label="Comment"><textarea name="body" required maxlength="50000" rows="4"
        onKeyDown=${(e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form.requestSubmit(); }}></textarea><//>
      <${ErrorBox} error=${error} onDismiss=${clear} />
      <div class="toolbar"><button type="submit" disabled=${busy}>${busy ? "Posting…" : "Comment"}</button><span class="muted">Ctrl+Enter posts.</span></div>
    </form>`}
  </div>`;
}

// --- timeline -----------------------------------------------------------------------------------

function changeText(key, value) {
  if (value && typeof value === "object" && !Array.isArray(value) && ("old" in value || "new" in value)) {
    const shown = (v) => (v == null || v === "" ? "—" : Array.isArray(v) ? v.join(", ") || "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
    return `${key}: ${shown(value.old)} → ${shown(value.new)}`;
  }
  return `${key}: ${value == null ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value)}`;
}

function Timeline({ entries }) {
  const [offset, setOffset] = useState(0);
  if (entries.length === 0) return html`<${Empty}>Nothing recorded yet.<//>`;
  return html`<div>
    <p class="muted">Newest first; the case's latest ${num(entries.length)} entries.</p>
    <div class="table-wrap"><table aria-label="Timeline">
      <thead><tr><th>When</th><th>Who</th><th>What</th><th>On</th><th>Changes</th></tr></thead>
      <tbody>${entries.slice(offset, offset + TIMELINE_PAGE).map((e) => {
        const changes = Object.entries(e.changes || {});
        return html`<tr key=${e.id}>
          <td>${fullTime(e.created_at)}</td><td>${e.actor}</td><td>${e.action.replaceAll(/[._]/g, " ")}</td>
          <td class="mono">${e.target_id ? (e.action.startsWith("alert.") ? html`<a href=${`#/alerts?focus=${enc(e.target_id)}`}>${e.target_id}</a>` : e.target_id) : ""}</td>
          <td>${changes.length === 0 ? "" : changes.length <= 4 && changes.every(([, v]) => JSON.stringify(v ?? null).length < 200)
            ? html`<ul class="plain">${changes.map(([k, v]) => html`<li>${changeText(k, v)}</li>`)}</ul>`
            : html`<details><summary>${changes.map(([k]) => k).join(", ")}</summary><${Json} value=${e.changes} /></details>`}</td>
        </tr>`;
      })}</tbody>
    </table></div>
    <${Pager} total=${entries.length} limit=${TIMELINE_PAGE} offset=${offset} onChange=${setOffset} />
  </div>`;
}

// --- one case -----------------------------------------------------------------------------------

function CaseView({ id, tab, user }) {
  const found = useLoad(() => api("GET", casePath(id)), [id]);
  const writable = can("cases:write");
  const [conflict, setConflict] = useState(false);
  const [pending, setPending] = useState(null);
  const [save, saving, saveError, clearError] = useAction(async (change) => {
    setConflict(false);
    setPending(change);
    const detail = found.data;
    try {
      const saved = await api("PATCH", casePath(id), { body: { ...change, version: detail.version } });
      found.setData((d) => d && { ...d, ...saved });
      found.reload(); // the timeline has the change now
      return true;
    } catch (err) {
      if (err.code === "AURORA-4090") {
        setConflict(true);
        found.reload();
      }
      throw err;
    } finally {
      setPending(null);
    }
  });
  if (found.error && !found.data) {
    return html`<div><p><a href="#/cases">← All cases</a></p><h1>Case ${id}</h1><${ErrorBox} error=${found.error} /></div>`;
  }
  if (!found.data) return html`<div><h1>Case ${id}</h1><${Loading} what="Loading the case" /></div>`;
  const detail = found.data;
  const current = TABS.some(([key]) => key === tab) ? tab : "observables";
  return html`<div>
    <p><a href="#/cases">← All cases</a></p>
    <${Header} detail=${detail} shown=${{ ...detail, ...pending }} writable=${writable} user=${user} save=${save} saving=${saving}
      saveError=${saveError} clearError=${clearError} conflict=${conflict} clearConflict=${() => setConflict(false)} />
    ${found.error && html`<${ErrorBox} error=${found.error} />`}
    <${Tabs} current=${current} label="Case sections"
      items=${TABS.map(([key, label]) => ({ id: key, label: key === "timeline" ? `${label} (${detail.timeline.length})` : label, href: caseHref(id, key) }))} />
    ${current === "observables" && html`<${Observables} caseId=${id} writable=${writable} />`}
    ${current === "evidence" && html`<${Evidence} caseId=${id} writable=${writable} />`}
    ${current === "tasks" && html`<${Tasks} caseId=${id} writable=${writable} user=${user} />`}
    ${current === "comments" && html`<${Comments} caseId=${id} writable=${writable} />`}
    ${current === "timeline" && html`<${Timeline} entries=${detail.timeline} />`}
  </div>`;
}

export default function Cases({ params, query, user }) {
  return params[0]
    ? html`<${CaseView} key=${params[0]} id=${params[0]} tab=${query.tab} user=${user} />`
    : html`<${CaseList} query=${query} user=${user} />`;
}
