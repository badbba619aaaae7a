// Cases: the list, and one case with its observables, evidence (upload, custody chain, ledger
// and its verification), tasks, comments and timeline; editable where the user may write, with
// the optimistic `version` the API checks.
import { api, can } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Time,
  investigate, notify, useAction, useLoad,
} from "../ui.js";

const STATUSES = ["open", "in_progress", "resolved", "closed"];
const SEVERITIES = ["critical", "high", "medium", "low", "informational"];
const TLPS = ["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED"];
const PAPS = ["PAP:CLEAR", "PAP:GREEN", "PAP:AMBER", "PAP:RED"];
const TASK_STATUSES = ["todo", "in_progress", "done", "cancelled"];
const OBSERVABLE_TYPES = ["ip", "domain", "url", "email", "hostname", "sha256", "sha1", "md5", "filename", "user", "registry"];
const TABS = [["observables", "Observables"], ["evidence", "Evidence"], ["tasks", "Tasks"], ["comments", "Comments"], ["timeline", "Timeline"]];
const LIMIT = 50;
const ITEMS = 100;

const casePath = (id, rest = "") => `/cases/${encodeURIComponent(id)}${rest}`;

function NewCase({ onClose }) {
  const [create, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { title: form.get("title"), severity: form.get("severity") };
    if (form.get("description")) body.description = form.get("description");
    const created = await api("POST", "/cases", { body });
    notify(`Case ${created.id} opened`, "good");
    location.hash = `#/cases/${encodeURIComponent(created.id)}`;
  });
  return html`<form onSubmit=${create}>
    <${ErrorBox} error=${error} />
    <${Field} label="Title"><input name="title" required maxlength="500" /><//>
    <${Field} label="Severity"><select name="severity">${SEVERITIES.map((s) => html`<option value=${s} selected=${s === "medium"}>${s}</option>`)}</select><//>
    <${Field} label="Description"><textarea name="description" maxlength="50000"></textarea><//>
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>Open the case</button><button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function List({ query }) {
  const [filters, setFilters] = useState({ status: query.status || null, severity: null, assignee: null, tag: null });
  const [offset, setOffset] = useState(0);
  const [creating, setCreating] = useState(false);
  const list = useLoad(() => api("GET", "/cases", { query: { ...filters, limit: LIMIT, offset } }), [JSON.stringify(filters), offset]);
  const set = (key) => (value) => {
    setFilters((f) => ({ ...f, [key]: value }));
    setOffset(0);
  };
  return html`<div>
    <div class="toolbar"><h1>Cases</h1><span class="spacer"></span>
      ${can("cases:write") && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New case</button>`}</div>
    <form class="toolbar" role="search" aria-label="Filter cases" onSubmit=${(e) => e.preventDefault()}>
      <${Field} label="Status"><${Select} name="status" value=${filters.status} options=${STATUSES} onChange=${set("status")} /><//>
      <${Field} label="Severity"><${Select} name="severity" value=${filters.severity} options=${SEVERITIES} onChange=${set("severity")} /><//>
      <${Field} label="Assignee"><input name="assignee" maxlength="64" onChange=${(e) => set("assignee")(e.currentTarget.value.trim() || null)} /><//>
      <${Field} label="Tag"><input name="tag" maxlength="64" onChange=${(e) => set("tag")(e.currentTarget.value.trim() || null)} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </form>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} />`}
    ${list.data?.items.length === 0 && html`<${Empty}>No cases match.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Cases">
      <thead><tr><th>Id</th><th>Title</th><th>Severity</th><th>Status</th><th>TLP</th><th>Assignee</th><th>Updated</th></tr></thead>
      <tbody>${list.data.items.map((c) => html`<tr key=${c.id}>
        <td><a href=${`#/cases/${encodeURIComponent(c.id)}`}>${c.id}</a></td><td class="title">${c.title}</td>
        <td><${Severity} value=${c.severity} /></td><td><${Status} value=${c.status} /></td><td>${c.tlp}</td>
        <td>${c.assignee || "—"}</td><td><${Time} value=${c.updated_at} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
    <${Dialog} title="New case" open=${creating} onClose=${() => setCreating(false)}><${NewCase} onClose=${() => setCreating(false)} /><//>
  </div>`;
}

function Header({ detail, onChanged, writable }) {
  const [save, busy, error] = useAction(async (change) => {
    try {
      onChanged(await api("PATCH", casePath(detail.id), { body: { ...change, version: detail.version } }));
    } catch (err) {
      if (err.code === "AURORA-4090") {
        onChanged(null);
        err.message = `${err.message}: someone changed this case first; it has been reloaded`;
      }
      throw err;
    }
  });
  const edit = (key, options) => html`<select aria-label=${key} disabled=${!writable || busy} value=${detail[key]}
      onChange=${(e) => save({ [key]: e.currentTarget.value })}>${options.map((o) => html`<option value=${o}>${o.replaceAll("_", " ")}</option>`)}</select>`;
  return html`<section class="panel" aria-labelledby="case-title">
    <div class="toolbar"><h1 id="case-title">${detail.title}</h1><span class="mono">${detail.id}</span><span class="spacer"></span>
      ${can("investigations:write") && html`<button type="button" onClick=${() => investigate({ case_id: detail.id })}>Investigate this case</button>`}</div>
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <${Field} label="Status">${edit("status", STATUSES)}<//>
      <${Field} label="Severity">${edit("severity", SEVERITIES)}<//>
      <${Field} label="TLP">${edit("tlp", TLPS)}<//>
      <${Field} label="PAP">${edit("pap", PAPS)}<//>
      <${Field} label="Assignee"><input value=${detail.assignee || ""} maxlength="64" disabled=${!writable || busy}
        onChange=${(e) => e.currentTarget.value.trim() && save({ assignee: e.currentTarget.value.trim() })} /><//>
    </div>
    ${detail.description && html`<p>${detail.description}</p>`}
    <p>${detail.tags.map((t) => html`<span class="tag">${t}</span>`)} <span class="muted">opened by ${detail.created_by} <${Time} value=${detail.created_at} /></span></p>
    <h2>Alerts (${detail.alerts.length})</h2>
    ${detail.alerts.length === 0 ? html`<p class="muted">No alert linked.</p>` : html`<ul>${detail.alerts.map((a) => html`<li>
      <a href=${`#/alerts?focus=${encodeURIComponent(a.id)}`}>${a.id}</a> <${Severity} value=${a.severity} /> <${Status} value=${a.status} /> ${a.title}</li>`)}</ul>`}
  </section>`;
}

function Observables({ id, writable }) {
  const [offset, setOffset] = useState(0);
  const list = useLoad(() => api("GET", casePath(id, "/observables"), { query: { limit: ITEMS, offset } }), [id, offset]);
  const [add, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const form = new FormData(target);
    await api("POST", casePath(id, "/observables"), {
      body: { type: form.get("type"), value: form.get("value"), ioc: form.get("ioc") === "on", sighted: form.get("sighted") === "on", description: form.get("description") || null, on_duplicate: "merge" },
    });
    target.reset();
    list.reload();
  });
  return html`<div>
    ${writable && html`<form class="toolbar" onSubmit=${add} aria-label="Add an observable">
      <${Field} label="Type"><input name="type" required maxlength="32" list="observable-types" />
        <datalist id="observable-types">${OBSERVABLE_TYPES.map((t) => html`<option value=${t} />`)}</datalist><//>
      <${Field} label="Value"><input name="value" required maxlength="2048" /><//>
      <${Field} label="Description"><input name="description" maxlength="10000" /><//>
      <label><input type="checkbox" name="ioc" /> IOC</label><label><input type="checkbox" name="sighted" /> sighted</label>
      <button type="submit" disabled=${busy}>Add</button></form>`}
    <${ErrorBox} error=${error || list.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No observables.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Observables">
      <thead><tr><th>Type</th><th>Value</th><th>IOC</th><th>Sighted</th><th>Seen in other cases</th><th>Added</th></tr></thead>
      <tbody>${list.data.items.map((o) => html`<tr key=${o.id}><td>${o.type}</td><td class="mono">${o.value}</td><td>${o.ioc ? "yes" : ""}</td><td>${o.sighted ? "yes" : ""}</td>
        <td>${(o.similar_cases || []).map((c) => html`<a href=${`#/cases/${encodeURIComponent(c.id || c)}`}>${c.id || c}</a> `)}</td><td><${Time} value=${o.created_at} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
  </div>`;
}

function Custody({ id, evidence }) {
  const custody = useLoad(() => api("GET", casePath(id, `/evidence/${encodeURIComponent(evidence.id)}/custody`)), [evidence.id]);
  const ledger = useLoad(() => api("GET", casePath(id, `/evidence/${encodeURIComponent(evidence.id)}/ledger`)), [evidence.id]);
  const v = ledger.data?.verification;
  return html`<div>
    <${ErrorBox} error=${custody.error || ledger.error} />
    ${v && html`<p role="status" id="ledger-verification" class=${v.valid ? "chain-ok" : "chain-bad"}>${v.valid
      ? `✔ Ledger verified: ${v.entries} entr${v.entries === 1 ? "y" : "ies"} chained and signed, head ${String(v.head).slice(0, 16)}…${v.blob_intact === false ? "" : v.blob_intact ? ", the stored file matches its SHA-256" : ""}.`
      : `✘ Ledger broken${v.broken_at != null ? ` at entry ${v.broken_at}` : ""}: ${v.reason || "it does not verify"}${v.blob_intact === false ? "; the stored file no longer matches its SHA-256" : ""}.`}</p>`}
    <h3>Custody chain</h3>
    ${custody.data && html`<ol>${custody.data.events.map((e) => html`<li><strong>${e.action}</strong> by ${e.actor} <${Time} value=${e.at} />: ${e.reason}</li>`)}</ol>`}
    <h3>Ledger</h3>
    ${ledger.data && html`<div class="table-wrap"><table aria-label="Ledger">
      <thead><tr><th>#</th><th>Action</th><th>Actor</th><th>At</th><th>Previous</th><th>Hash</th><th>Key</th></tr></thead>
      <tbody>${ledger.data.entries.map((e) => html`<tr key=${e.sequence} class=${v?.broken_at === e.sequence ? "selected" : ""}><td>${e.sequence}</td><td>${e.action}</td><td>${e.actor}</td><td><${Time} value=${e.at} /></td>
        <td class="mono" title=${e.previous_hash}>${String(e.previous_hash).slice(0, 12)}…</td><td class="mono" title=${e.hash}>${String(e.hash).slice(0, 12)}…</td><td class="mono">${e.key_id || "—"}</td></tr>`)}</tbody></table></div>`}
  </div>`;
}

function Evidence({ id, writable }) {
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState(null);
  const list = useLoad(() => api("GET", casePath(id, "/evidence"), { query: { limit: ITEMS, offset } }), [id, offset]);
  const [upload, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const form = new FormData(target);
    // Text fields first, then the file, as the API reads them (streamed to storage).
    const sent = new FormData();
    for (const key of ["description", "reason"]) if (form.get(key)) sent.append(key, form.get(key));
    sent.append("file", form.get("file"));
    const added = await api("POST", casePath(id, "/evidence"), { form: sent });
    notify(`${added.name} added (SHA-256 ${added.sha256.slice(0, 16)}…)`, "good");
    target.reset();
    list.reload();
  });
  return html`<div>
    ${writable && html`<form class="toolbar" onSubmit=${upload} aria-label="Add evidence">
      <${Field} label="File"><input type="file" name="file" required /><//>
      <${Field} label="Reason" hint="why it was collected (kept in the custody chain)"><input name="reason" required maxlength="2000" /><//>
      <${Field} label="Description"><input name="description" maxlength="10000" /><//>
      <button type="submit" disabled=${busy}>${busy ? "Uploading…" : "Upload"}</button></form>`}
    <${ErrorBox} error=${error || list.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No evidence.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Evidence">
      <thead><tr><th>Name</th><th>Type</th><th>Size</th><th>SHA-256</th><th>By</th><th>Added</th><th></th></tr></thead>
      <tbody>${list.data.items.map((e) => html`<tr key=${e.id} class=${open === e.id ? "selected" : ""}><td>${e.name}${e.purged_at ? html` <span class="badge">purged</span>` : ""}</td><td>${e.content_type}</td>
        <td>${e.size.toLocaleString()} B</td><td class="mono" title=${e.sha256}>${e.sha256.slice(0, 16)}…</td><td>${e.created_by}</td><td><${Time} value=${e.created_at} /></td>
        <td><button type="button" class="small" aria-expanded=${open === e.id} onClick=${() => setOpen(open === e.id ? null : e.id)}>Custody and ledger</button></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
    ${open && list.data?.items.some((e) => e.id === open) && html`<section class="panel" aria-label="Custody and ledger"><${Custody} id=${id} evidence=${list.data.items.find((e) => e.id === open)} /></section>`}
  </div>`;
}

function Tasks({ id, writable }) {
  const [offset, setOffset] = useState(0);
  const list = useLoad(() => api("GET", casePath(id, "/tasks"), { query: { limit: ITEMS, offset } }), [id, offset]);
  const [act, busy, error] = useAction(async (kind, value, task) => {
    if (kind === "add") {
      value.preventDefault();
      const target = value.currentTarget;
      const form = new FormData(target);
      await api("POST", casePath(id, "/tasks"), { body: { title: form.get("title"), assignee: form.get("assignee") || null } });
      target.reset();
    } else {
      await api("PATCH", casePath(id, `/tasks/${encodeURIComponent(task.id)}`), { body: { status: value, version: task.version } });
    }
    list.reload();
  });
  return html`<div>
    ${writable && html`<form class="toolbar" onSubmit=${(e) => act("add", e)} aria-label="Add a task">
      <${Field} label="Task"><input name="title" required maxlength="500" /><//>
      <${Field} label="Assignee"><input name="assignee" maxlength="64" /><//>
      <button type="submit" disabled=${busy}>Add</button></form>`}
    <${ErrorBox} error=${error || list.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No tasks.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Tasks">
      <thead><tr><th>Task</th><th>Status</th><th>Assignee</th><th>Due</th><th>Updated</th></tr></thead>
      <tbody>${list.data.items.map((t) => html`<tr key=${t.id}><td>${t.title}</td>
        <td>${writable ? html`<select aria-label=${`Status of ${t.title}`} value=${t.status} disabled=${busy} onChange=${(e) => act("status", e.currentTarget.value, t)}>
          ${TASK_STATUSES.map((s) => html`<option value=${s}>${s.replace("_", " ")}</option>`)}</select>` : html`<${Status} value=${t.status} />`}</td>
        <td>${t.assignee || "—"}</td><td><${Time} value=${t.due_date} /></td><td><${Time} value=${t.updated_at} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
  </div>`;
}

function Comments({ id, writable }) {
  const [offset, setOffset] = useState(0);
  const list = useLoad(() => api("GET", casePath(id, "/comments"), { query: { limit: ITEMS, offset } }), [id, offset]);
  const [add, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    await api("POST", casePath(id, "/comments"), { body: { body: new FormData(target).get("body") } });
    target.reset();
    list.reload();
  });
  return html`<div>
    <${ErrorBox} error=${error || list.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No comments yet.<//>`}
    ${list.data?.items.map((c) => html`<article class="card" key=${c.id}><header><strong>${c.author}</strong> <${Time} value=${c.created_at} /></header><p>${c.body}</p></article>`)}
    <${Pager} page=${list.data} onChange=${setOffset} />
    ${writable && html`<form onSubmit=${add} aria-label="Add a comment"><${Field} label="Comment"><textarea name="body" required maxlength="20000"></textarea><//>
      <button type="submit" disabled=${busy}>Comment</button></form>`}
  </div>`;
}

function Timeline({ entries }) {
  const [offset, setOffset] = useState(0);
  const shown = [...entries].reverse();
  if (shown.length === 0) return html`<${Empty}>Nothing recorded yet.<//>`;
  return html`<div><div class="table-wrap"><table aria-label="Timeline">
    <thead><tr><th>When</th><th>Who</th><th>What</th><th>On</th><th>Changes</th></tr></thead>
    <tbody>${shown.slice(offset, offset + LIMIT).map((e) => html`<tr key=${e.id}><td><${Time} value=${e.created_at} /></td><td>${e.actor}</td><td>${e.action.replaceAll("_", " ")}</td>
      <td class="mono">${e.target_id || ""}</td><td>${Object.keys(e.changes || {}).length ? html`<details><summary>${Object.keys(e.changes).join(", ")}</summary><${Json} value=${e.changes} /></details>` : ""}</td></tr>`)}</tbody>
  </table></div><${Pager} total=${shown.length} limit=${LIMIT} offset=${offset} onChange=${setOffset} /></div>`;
}

function Detail({ id, tab }) {
  const found = useLoad(() => api("GET", casePath(id)), [id]);
  const writable = can("cases:write");
  if (found.error && !found.data) return html`<${ErrorBox} error=${found.error} />`;
  if (!found.data) return html`<${Loading} what="Loading the case" />`;
  const current = TABS.some(([key]) => key === tab) ? tab : "observables";
  return html`<div>
    <p><a href="#/cases">All cases</a></p>
    <${Header} detail=${found.data} onChanged=${found.reload} writable=${writable} />
    <nav class="tabs" aria-label="Case sections">${TABS.map(([key, label]) => html`<a href=${`#/cases/${encodeURIComponent(id)}?tab=${key}`} aria-current=${current === key ? "page" : undefined}>${label}</a>`)}</nav>
    ${current === "observables" && html`<${Observables} id=${id} writable=${writable} />`}
    ${current === "evidence" && html`<${Evidence} id=${id} writable=${writable} />`}
    ${current === "tasks" && html`<${Tasks} id=${id} writable=${writable} />`}
    ${current === "comments" && html`<${Comments} id=${id} writable=${writable} />`}
    ${current === "timeline" && html`<${Timeline} entries=${found.data.timeline} />`}
  </div>`;
}

export default function Cases({ params, query }) {
  return params[0] ? html`<${Detail} id=${params[0]} tab=${query.tab} />` : html`<${List} query=${query} />`;
}
