// The alert queue: a page of alerts from the API, kept live by /ws/alerts (new alerts appear at
// the top, changed ones in place, repeats of one fingerprint folded under the first), filters,
// keyboard triage (j/k to move, Enter to open, a to acknowledge), promote to a case or link to
// one, and an investigation dispatched from the alert.
import { api, can, session } from "../api.js";
import { html, useEffect, useMemo, useRef, useState } from "../lib.js";
import { useStream } from "../stream.js";
import {
  Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, StreamStatus,
  Time, go, investigate, notify, useAction, useLoad,
} from "../ui.js";

const STATUSES = ["new", "acknowledged", "in_progress", "resolved", "false_positive", "duplicate"];
/** The triage workflow as the platform enforces it (it answers AURORA-4220 otherwise): which
 * statuses an alert may go to from each, so that only those buttons are offered. */
const NEXT = {
  new: ["acknowledged", "in_progress", "false_positive", "duplicate"],
  acknowledged: ["in_progress", "resolved", "false_positive", "duplicate"],
  in_progress: ["resolved", "false_positive", "duplicate"],
  resolved: ["in_progress"],
  false_positive: ["in_progress"],
  duplicate: ["in_progress"],
};
const SEVERITIES = ["critical", "high", "medium", "low", "informational"];
const SORTS = { "-created_at": "newest first", created_at: "oldest first", "-severity": "severity", "-last_seen": "last seen", "-occurrences": "most repeated" };
const LIMIT = 50;
const FILTERS = ["status", "severity", "source", "assignee", "tag"];

function matches(alert, filters) {
  if (filters.status && alert.status !== filters.status) return false;
  if (filters.severity && alert.severity !== filters.severity) return false;
  if (filters.source && alert.source !== filters.source) return false;
  if (filters.assignee && alert.assignee !== filters.assignee) return false;
  if (filters.tag && !(alert.tags || []).includes(filters.tag)) return false;
  return true;
}

/** Rows of the page with repeats of one fingerprint folded under the first. */
function fold(items, open) {
  const groups = new Map();
  for (const alert of items) {
    const group = groups.get(alert.fingerprint);
    if (group) group.more.push(alert);
    else groups.set(alert.fingerprint, { first: alert, more: [] });
  }
  const rows = [];
  for (const group of groups.values()) {
    rows.push({ alert: group.first, folded: group.more.length, fingerprint: group.first.fingerprint });
    if (open.has(group.first.fingerprint)) for (const alert of group.more) rows.push({ alert, child: true });
  }
  return rows;
}

function PromoteDialog({ alert, onClose, onDone }) {
  const [promote, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = {};
    if (form.get("title")) body.title = form.get("title");
    if (form.get("assignee")) body.assignee = form.get("assignee");
    const result = await api("POST", `/alerts/${encodeURIComponent(alert.id)}/promote`, { body });
    onDone(result.alert);
    notify(`Case ${result.case_id} opened from ${alert.id} (${result.observables_added} observables)`, "good");
    go(`#/cases/${encodeURIComponent(result.case_id)}`);
  });
  return html`<form onSubmit=${promote} id="promote-form">
    <${ErrorBox} error=${error} />
    <${Field} label="Case title"><input name="title" maxlength="500" value=${alert.title} /><//>
    <${Field} label="Assignee" hint="optional"><input name="assignee" maxlength="64" /><//>
    <div><button type="submit" class="primary" disabled=${busy}>Open the case</button> <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function LinkDialog({ alert, onClose, onDone }) {
  const [link, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const caseId = new FormData(event.currentTarget).get("case_id").trim();
    const result = await api("POST", `/alerts/${encodeURIComponent(alert.id)}/case-link`, { body: { case_id: caseId } });
    onDone(result.alert);
    notify(`${alert.id} linked to case ${result.case_id}`, "good");
    onClose();
  });
  return html`<form onSubmit=${link}>
    <${ErrorBox} error=${error} />
    <${Field} label="Case id"><input name="case_id" required maxlength="32" autofocus /><//>
    <div><button type="submit" class="primary" disabled=${busy}>Link</button> <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function Detail({ alert, onChanged, writable }) {
  const me = session.get()?.user?.username;
  const [dialog, setDialog] = useState(null);
  const [act, busy, error, clear] = useAction(async (kind, value) => {
    const path = `/alerts/${encodeURIComponent(alert.id)}`;
    let changed;
    if (kind === "acknowledge") changed = await api("POST", `${path}/acknowledge`);
    else if (kind === "status") changed = await api("PATCH", path, { body: { status: value, version: alert.version } });
    else if (kind === "assign") changed = await api("PATCH", path, { body: { assignee: value, version: alert.version } });
    else if (kind === "investigate") return investigate({ alert_id: alert.id });
    onChanged(changed);
    return changed;
  });
  useEffect(clear, [alert.id]);
  const failed = error?.code === "AURORA-4090" ? { ...error, message: `${error.message}: someone changed this alert first; it has been reloaded` } : error;
  useEffect(() => {
    if (error?.code === "AURORA-4090") api("GET", `/alerts/${encodeURIComponent(alert.id)}`).then(onChanged, () => {});
  }, [error]);
  return html`<section class="panel" aria-labelledby="alert-title" id="alert-detail">
    <h2 id="alert-title" tabindex="-1">${alert.title}</h2>
    <p><${Severity} value=${alert.severity} /> <${Status} value=${alert.status} /> <span class="mono">${alert.id}</span>
      ${alert.occurrences > 1 && html` <span class="count">seen ${alert.occurrences}×</span>`}</p>
    <${ErrorBox} error=${failed} />
    ${writable && html`<div class="toolbar" role="group" aria-label="Triage">
      <button type="button" disabled=${busy || alert.status !== "new"} onClick=${() => act("acknowledge")}>Acknowledge</button>
      ${[["in_progress", ["resolved", "false_positive", "duplicate"].includes(alert.status) ? "Reopen" : "In progress"],
        ["resolved", "Resolve"], ["false_positive", "False positive"], ["duplicate", "Duplicate"]].map(([status, label]) => html`<button
        type="button" disabled=${busy || !(NEXT[alert.status] || []).includes(status)} onClick=${() => act("status", status)}>${label}</button>`)}
      ${alert.assignee === me
        ? html`<button type="button" disabled=${busy} onClick=${() => act("assign", null)}>Unassign</button>`
        : html`<button type="button" disabled=${busy} onClick=${() => act("assign", me)}>Assign to me</button>`}
    </div>
    <div class="toolbar" role="group" aria-label="Escalate">
      ${alert.case_id
        ? html`<a class="button" href=${`#/cases/${encodeURIComponent(alert.case_id)}`}>Open case ${alert.case_id}</a>`
        : html`<button type="button" class="primary" onClick=${() => setDialog("promote")}>Promote to case</button>
            <button type="button" onClick=${() => setDialog("link")}>Link to a case</button>`}
      ${can("investigations:write") && html`<button type="button" disabled=${busy} onClick=${() => act("investigate")}>Investigate</button>`}
    </div>`}
    <dl class="props">
      <dt>Source</dt><dd>${alert.source}</dd>
      <dt>Rule</dt><dd class="mono">${alert.rule_id || "—"}</dd>
      <dt>Assignee</dt><dd>${alert.assignee || "—"}</dd>
      <dt>First seen</dt><dd><${Time} value=${alert.first_seen} /></dd>
      <dt>Last seen</dt><dd><${Time} value=${alert.last_seen} /></dd>
      <dt>Tags</dt><dd>${(alert.tags || []).map((t) => html`<span class="tag">${t}</span>`)}</dd>
      <dt>Case</dt><dd>${alert.case_id ? html`<a href=${`#/cases/${encodeURIComponent(alert.case_id)}`}>${alert.case_id}</a>` : "—"}</dd>
      <dt>Fingerprint</dt><dd class="mono">${alert.fingerprint}</dd>
    </dl>
    ${alert.description && html`<h3>Description</h3><p>${alert.description}</p>`}
    ${alert.entities?.length > 0 && html`<h3>Entities</h3><ul>${alert.entities.map((e) => html`<li><span class="mono">${e.type}</span> ${e.value}</li>`)}</ul>`}
    ${alert.raw && html`<details><summary>Raw event</summary><${Json} value=${alert.raw} /></details>`}
    <${Dialog} title=${`Promote ${alert.id} to a case`} open=${dialog === "promote"} onClose=${() => setDialog(null)}>
      <${PromoteDialog} alert=${alert} onClose=${() => setDialog(null)} onDone=${onChanged} />
    <//>
    <${Dialog} title=${`Link ${alert.id} to a case`} open=${dialog === "link"} onClose=${() => setDialog(null)}>
      <${LinkDialog} alert=${alert} onClose=${() => setDialog(null)} onDone=${onChanged} />
    <//>
  </section>`;
}

export default function Alerts({ query }) {
  const [filters, setFilters] = useState(() => Object.fromEntries(FILTERS.map((f) => [f, query[f] || null])));
  const [sort, setSort] = useState("-created_at");
  const [offset, setOffset] = useState(0);
  const [selected, setSelected] = useState(query.focus || null);
  const [open, setOpen] = useState(() => new Set());
  const [waiting, setWaiting] = useState(0);
  const [fresh, setFresh] = useState(() => new Set());
  const writable = can("alerts:write");
  const list = useLoad(
    () => api("GET", "/alerts", { query: { ...filters, sort, limit: LIMIT, offset } }),
    [JSON.stringify(filters), sort, offset],
  );
  const focused = useLoad(
    () => (selected && !list.data?.items.some((a) => a.id === selected) ? api("GET", `/alerts/${encodeURIComponent(selected)}`) : Promise.resolve(null)),
    [selected],
  );
  const live = offset === 0 && sort === "-created_at";
  const [status] = useStream("/ws/alerts", {}, {
    onMessage(message) {
      if (message.type !== "created" && message.type !== "updated") return;
      const alert = message.alert;
      list.setData((page) => {
        if (!page) return page;
        const at = page.items.findIndex((a) => a.id === alert.id);
        if (at >= 0) {
          const items = page.items.slice();
          items[at] = { ...items[at], ...alert };
          return { ...page, items };
        }
        if (message.type !== "created" || !matches(alert, filters)) return page;
        if (!live) {
          setWaiting((n) => n + 1);
          return page;
        }
        setFresh((s) => new Set(s).add(alert.id));
        return { ...page, items: [alert, ...page.items].slice(0, LIMIT), total: page.total + 1 };
      });
    },
    onResume() {
      // Events sent while disconnected are gone: show the queue as it is now.
      list.reload();
    },
  });
  useEffect(() => setWaiting(0), [list.data === null, offset, sort, JSON.stringify(filters)]);
  const items = list.data?.items || [];
  const rows = useMemo(() => fold(items, open), [items, open]);
  const current = items.find((a) => a.id === selected) || focused.data;
  const table = useRef(null);

  const replace = (alert) => {
    if (!alert) return;
    list.setData((page) => page && { ...page, items: page.items.map((a) => (a.id === alert.id ? alert : a)) });
    if (focused.data?.id === alert.id) focused.setData(alert);
  };
  const setFilter = (key) => (value) => {
    setFilters((f) => ({ ...f, [key]: value }));
    setOffset(0);
  };
  const move = (step) => {
    const visible = rows.map((r) => r.alert.id);
    const at = visible.indexOf(selected);
    const next = visible[Math.max(0, Math.min(visible.length - 1, at + step))];
    if (next) {
      setSelected(next);
      table.current?.querySelector(`[data-alert-id="${CSS.escape(next)}"]`)?.focus();
    }
  };
  const onKey = async (event) => {
    if (event.target.closest("input, select, textarea, dialog")) return;
    if (event.key === "j" || event.key === "ArrowDown") { event.preventDefault(); move(1); }
    else if (event.key === "k" || event.key === "ArrowUp") { event.preventDefault(); move(-1); }
    else if (event.key === "Enter" && selected && event.target.matches("tr")) {
      // To the alert's detail (its title), from where Tab reaches its actions. The default is
      // prevented, or the key would also press the button that has the focus next.
      event.preventDefault();
      document.getElementById("alert-title")?.focus();
    }
    else if (event.key === "a" && writable && current?.status === "new") {
      try {
        replace(await api("POST", `/alerts/${encodeURIComponent(current.id)}/acknowledge`));
      } catch (err) {
        notify(`${err.code}: ${err.message}`, "warn");
      }
    }
  };
  const toggleFold = (fingerprint) => setOpen((s) => {
    const next = new Set(s);
    if (next.has(fingerprint)) next.delete(fingerprint);
    else next.add(fingerprint);
    return next;
  });

  return html`<div onKeyDown=${onKey}>
    <div class="toolbar">
      <h1>Alert queue</h1>
      <span class="spacer"></span>
      <${StreamStatus} status=${status} label=${live ? "live" : "live (new alerts counted)"} />
    </div>
    <form class="toolbar" role="search" aria-label="Filter alerts" onSubmit=${(e) => e.preventDefault()}>
      <${Field} label="Status"><${Select} name="status" value=${filters.status} options=${STATUSES} onChange=${setFilter("status")} /><//>
      <${Field} label="Severity"><${Select} name="severity" value=${filters.severity} options=${SEVERITIES} onChange=${setFilter("severity")} /><//>
      <${Field} label="Source"><input name="source" value=${filters.source || ""} maxlength="100" onChange=${(e) => setFilter("source")(e.currentTarget.value.trim() || null)} /><//>
      <${Field} label="Assignee"><input name="assignee" value=${filters.assignee || ""} maxlength="64" onChange=${(e) => setFilter("assignee")(e.currentTarget.value.trim() || null)} /><//>
      <${Field} label="Tag"><input name="tag" value=${filters.tag || ""} maxlength="64" onChange=${(e) => setFilter("tag")(e.currentTarget.value.trim() || null)} /><//>
      <${Field} label="Sort"><select name="sort" value=${sort} onChange=${(e) => { setSort(e.currentTarget.value); setOffset(0); }}>
        ${Object.entries(SORTS).map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select><//>
      <button type="button" onClick=${() => list.reload()}>Refresh</button>
    </form>
    ${waiting > 0 && html`<div class="banner" role="status">${waiting} new alert${waiting > 1 ? "s" : ""} arrived.
      <button type="button" onClick=${() => { setSort("-created_at"); setOffset(0); list.reload(); }}>Show newest</button></div>`}
    <${ErrorBox} error=${list.error} />
    <div class="grid2">
      <div>
        ${list.loading && !list.data && html`<${Loading} what="Loading alerts" />`}
        ${list.data && items.length === 0 && html`<${Empty}>No alerts match.<//>`}
        ${items.length > 0 && html`<div class="table-wrap"><table ref=${table} aria-label="Alerts" id="alert-table" aria-busy=${list.loading}>
          <thead><tr><th>Severity</th><th>Title</th><th>Source</th><th>Status</th><th>Seen</th><th>Created</th></tr></thead>
          <tbody>${rows.map(({ alert, folded, child, fingerprint }) => html`<tr key=${alert.id} data-alert-id=${alert.id}
              class=${[alert.id === selected && "selected", fresh.has(alert.id) && "fresh"].filter(Boolean).join(" ")}
              tabindex="0" aria-selected=${alert.id === selected} onFocus=${() => setSelected(alert.id)} onClick=${() => setSelected(alert.id)}>
            <td><${Severity} value=${alert.severity} /></td>
            <td class="title">${child ? "↳ " : ""}${alert.title}
              ${folded > 0 && html` <button type="button" class="link small" aria-expanded=${open.has(fingerprint)}
                onClick=${(e) => { e.stopPropagation(); toggleFold(fingerprint); }}>+${folded} alike</button>`}</td>
            <td>${alert.source}</td>
            <td><${Status} value=${alert.status} />${alert.case_id && html` <span class="count">${alert.case_id}</span>`}</td>
            <td>${alert.occurrences > 1 ? html`<span class="count">${alert.occurrences}×</span>` : ""}</td>
            <td><${Time} value=${alert.created_at} /></td>
          </tr>`)}</tbody>
        </table></div>`}
        <${Pager} page=${list.data} onChange=${setOffset} />
        <p class="muted">Keys: <span class="kbd">j</span>/<span class="kbd">k</span> move, <span class="kbd">Enter</span> to the alert${writable ? html`, <span class="kbd">a</span> acknowledge` : ""}.</p>
      </div>
      <div>${current ? html`<${Detail} alert=${current} onChanged=${replace} writable=${writable} />` : html`<p class="muted panel">Select an alert to see it and act on it.</p>`}</div>
    </div>
  </div>`;
}
