// SIEM: search the log store with the query language over a time window, a histogram of the
// window (a bar narrows the search to its bucket), an event's detail, promoting an event to a
// detection rule, the log sources, and saved hunts (create, edit, run, their results).
import { api, can } from "../api.js";
import { html, useRef, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Tabs,
  Time, clip, duration, fromLocalInput, fullTime, investigate, notify, num, toLocalInput,
  useAction, useLoad,
} from "../ui.js";

const RANGES = [
  { value: "15m", label: "Last 15 minutes", seconds: 15 * 60 },
  { value: "1h", label: "Last hour", seconds: 3600 },
  { value: "24h", label: "Last 24 hours", seconds: 86400 },
  { value: "7d", label: "Last 7 days", seconds: 7 * 86400 },
  { value: "30d", label: "Last 30 days", seconds: 30 * 86400 },
  { value: "custom", label: "Custom…" },
];
const DEFAULT_RANGE = "24h";
const FORMATS = ["windows", "zeek", "suricata", "netflow", "syslog", "cef", "json"];
const LIMITS = [25, 50, 100, 200, 500];
const DEFAULT_LIMIT = 50;
const LEVELS = ["informational", "low", "medium", "high", "critical"];
const MAX_PROMOTE_FIELDS = 20;
/** Fields an event always has that a rule cannot usefully match on. */
const NOT_MATCHABLE = new Set(["id", "raw", "fields", "timestamp", "ingested_at"]);
/** The normalised fields shown first in an event's detail, when it has them. */
const KEY_FIELDS = [
  "timestamp",
  "source",
  "format",
  "event.code",
  "event.category",
  "event.action",
  "event.outcome",
  "host.name",
  "user.name",
  "process.name",
  "process.command_line",
  "process.parent.name",
  "source.ip",
  "source.port",
  "destination.ip",
  "destination.port",
  "dns.question.name",
  "url.full",
];
const SUMMARY_FIELDS = ["process.command_line", "dns.question.name", "url.full", "event.action"];
const QUERY_HELP =
  'Lucene-like: process.name:powershell.exe AND NOT user.name:svc_*, event.code:(4624 OR 4625), ' +
  'destination.port:>=1024, source.ip:10.0.0.0/8, field:* (present), "a phrase" (anywhere).';

// -- small helpers ------------------------------------------------------------------------------


function bytes(n) {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}


function summary(event) {
  for (const name of SUMMARY_FIELDS) if (event[name]) return String(event[name]);
  return String(event.raw ?? "");
}

/** The search the hash's query string names, defaults filled in. */
function specOf(query) {
  const range = RANGES.some((r) => r.value === query.range) ? query.range : DEFAULT_RANGE;
  const limit = LIMITS.includes(Number(query.limit)) ? Number(query.limit) : DEFAULT_LIMIT;
  return {
    q: query.q || "",
    range,
    since: query.since || "",
    until: query.until || "",
    source: query.source || "",
    host: query.host || "",
    format: query.format || "",
    sort: query.sort === "timestamp" ? "timestamp" : "-timestamp",
    limit,
  };
}

/** `#/siem?...` for a search, defaults left out. */
function searchHash(spec) {
  const out = new URLSearchParams();
  if (spec.q) out.set("q", spec.q);
  if (spec.range && spec.range !== DEFAULT_RANGE) out.set("range", spec.range);
  if (spec.range === "custom") {
    if (spec.since) out.set("since", spec.since);
    if (spec.until) out.set("until", spec.until);
  }
  for (const name of ["source", "host", "format"]) if (spec[name]) out.set(name, spec[name]);
  if (spec.sort === "timestamp") out.set("sort", "timestamp");
  if (spec.limit && Number(spec.limit) !== DEFAULT_LIMIT) out.set("limit", String(spec.limit));
  const text = out.toString();
  return `#/siem${text ? `?${text}` : ""}`;
}

/** The absolute window of a search, fixed when it runs: `{start, end}` as ISO times. */
function windowOf(spec) {
  const now = Date.now();
  if (spec.range === "custom") {
    const end = spec.until ? new Date(spec.until).getTime() : now;
    const start = spec.since ? new Date(spec.since).getTime() : end - 86400 * 1000;
    return { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
  }
  const seconds = RANGES.find((r) => r.value === spec.range)?.seconds ?? 86400;
  return { start: new Date(now - seconds * 1000).toISOString(), end: new Date(now).toISOString() };
}

/** The histogram's bars: every bucket of the window, empty ones included (the store only
 * reports buckets that hold events, aligned on multiples of `bucket_seconds` since the epoch). */
function buckets(stats, win) {
  const step = (stats?.window?.bucket_seconds || 60) * 1000;
  const reported = (stats?.over_time || [])
    .filter((b) => b.at)
    .map((b) => ({ at: new Date(b.at).getTime(), events: b.events }));
  const start = new Date(stats?.window?.start || win.start).getTime();
  const end = new Date(stats?.window?.end || win.end).getTime();
  const filled = [];
  for (let t = Math.floor(start / step) * step; t < end && filled.length < 2000; t += step) {
    filled.push({ at: t, events: 0 });
  }
  const byTime = new Map(filled.map((b) => [b.at, b]));
  const aligned = reported.every((b) => byTime.has(b.at));
  const list = aligned ? filled : reported;
  if (aligned) for (const b of reported) byTime.get(b.at).events = b.events;
  return list.map((b) => ({
    ...b,
    from: new Date(Math.max(b.at, start)).toISOString(),
    to: new Date(Math.min(b.at + step, end)).toISOString(),
  }));
}

/** A link to the SIEM search showing one event (by id, in a window around its time). */
function eventHash(event) {
  const at = new Date(event.timestamp).getTime();
  const spec = {
    q: `id:"${event.id}"`,
    range: "custom",
    since: new Date(at - 60_000).toISOString(),
    until: new Date(at + 60_000).toISOString(),
  };
  return searchHash(spec);
}

// -- the screen ---------------------------------------------------------------------------------

export default function Siem({ params, query }) {
  const tab = params[0] || "search";
  const tabs = [
    { id: "search", label: "Search", href: "#/siem" },
    { id: "sources", label: "Sources", href: "#/siem/sources" },
    { id: "hunts", label: "Hunts", href: "#/siem/hunts" },
  ];
  let body;
  if (tab === "sources") body = html`<${Sources} />`;
  else if (tab === "hunts") body = html`<${Hunts} huntId=${params[1] || null} />`;
  else body = html`<${SearchView} query=${query} />`;
  return html`<h1>SIEM</h1>
    <${Tabs} current=${tab} items=${tabs} label="SIEM views" />
    ${body}`;
}

// -- search -------------------------------------------------------------------------------------

function SearchView({ query }) {
  const spec = specOf(query);
  const key = searchHash(spec);
  const [nonce, setNonce] = useState(0);
  const sources = useLoad(() => api("GET", "/siem/sources"), []);
  const run = (next) => {
    const hash = searchHash(next);
    if (location.hash === hash) setNonce((n) => n + 1);
    else location.hash = hash;
  };
  return html`<${SearchForm} key=${key} spec=${spec} sources=${sources.data?.items || []} onSubmit=${run} />
    <${Results} key=${`${key}#${nonce}`} spec=${spec} onRun=${run} />`;
}

function SearchForm({ spec, sources, onSubmit }) {
  const [form, setForm] = useState({
    ...spec,
    since: toLocalInput(spec.since),
    until: toLocalInput(spec.until),
  });
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const submit = (e) => {
    e.preventDefault();
    const next = { ...form, since: fromLocalInput(form.since) || "", until: fromLocalInput(form.until) || "" };
    if (next.range === "custom" && !next.since && !next.until) {
      // A custom window with no bounds: start from the last 24 hours, made explicit.
      next.since = new Date(Date.now() - 86400 * 1000).toISOString();
    }
    onSubmit(next);
  };
  const clear = () => onSubmit({ ...specOf({}) });
  return html`<form class="panel" role="search" aria-label="Search the logs" onSubmit=${submit}>
    <div class="toolbar">
      <label class="field"><span>Query</span>
        <input name="q" type="search" value=${form.q} onInput=${set("q")} maxlength="4096" size="60"
          placeholder='process.name:powershell.exe AND NOT user.name:svc_*' aria-describedby="siem-query-help" />
      </label>
      <label class="field"><span>Time range</span>
        <select name="range" value=${form.range} onChange=${set("range")}>
          ${RANGES.map((r) => html`<option value=${r.value}>${r.label}</option>`)}
        </select>
      </label>
      ${form.range === "custom" &&
      html`<label class="field"><span>Since</span>
          <input type="datetime-local" name="since" value=${form.since} onInput=${set("since")} /></label>
        <label class="field"><span>Until</span>
          <input type="datetime-local" name="until" value=${form.until} onInput=${set("until")} /></label>`}
      <button type="submit" class="primary">Search</button>
    </div>
    <div class="toolbar">
      <label class="field"><span>Source</span>
        <input name="source" list="siem-sources" value=${form.source} onInput=${set("source")} maxlength="64" size="16" />
        <datalist id="siem-sources">${sources.map((s) => html`<option value=${s.source} />`)}</datalist>
      </label>
      <label class="field"><span>Host</span>
        <input name="host" value=${form.host} onInput=${set("host")} maxlength="255" size="16" /></label>
      <label class="field"><span>Format</span>
        <${Select} name="format" label="Format" value=${form.format} options=${FORMATS}
          onChange=${(v) => setForm((f) => ({ ...f, format: v || "" }))} /></label>
      <label class="field"><span>Order</span>
        <select name="sort" value=${form.sort} onChange=${set("sort")}>
          <option value="-timestamp">newest first</option>
          <option value="timestamp">oldest first</option>
        </select></label>
      <label class="field"><span>Per page</span>
        <select name="limit" value=${String(form.limit)} onChange=${set("limit")}>
          ${LIMITS.map((n) => html`<option value=${String(n)}>${n}</option>`)}
        </select></label>
      <span class="spacer"></span>
      <button type="button" onClick=${clear}>Reset</button>
    </div>
    <details><summary>Query language</summary><p id="siem-query-help" class="muted">${QUERY_HELP}</p></details>
  </form>`;
}

function Results({ spec, onRun }) {
  const [win] = useState(() => windowOf(spec));
  const [page, setPage] = useState({ cursor: null, stack: [] });
  const [selected, setSelected] = useState(null);
  const search = useLoad(
    () =>
      api("GET", "/siem/logs", {
        query: {
          q: spec.q || undefined,
          start: win.start,
          end: win.end,
          source: spec.source,
          host: spec.host,
          format: spec.format,
          sort: spec.sort,
          limit: spec.limit,
          cursor: page.cursor,
        },
      }),
    [page.cursor],
  );
  const stats = useLoad(() => api("GET", "/siem/stats", { query: { start: win.start, end: win.end } }), []);
  const narrow = (from, to) => onRun({ ...spec, range: "custom", since: from, until: to });
  const next = () => setPage((p) => ({ cursor: search.data.next_cursor, stack: [...p.stack, p.cursor] }));
  const previous = () =>
    setPage((p) => ({ cursor: p.stack[p.stack.length - 1] ?? null, stack: p.stack.slice(0, -1) }));
  const first = () => setPage({ cursor: null, stack: [] });
  const items = search.data?.items || [];
  const pageNo = page.stack.length + 1;
  return html`<section class="panel" aria-labelledby="siem-histogram">
      <div class="toolbar">
        <h2 id="siem-histogram">Events over time</h2>
        <span class="count">${fullTime(win.start)} – ${fullTime(win.end)}</span>
        <span class="spacer"></span>
        <button type="button" onClick=${() => onRun(spec)} title="Run the search again (a relative range moves to now)">Refresh</button>
      </div>
      <${ErrorBox} error=${stats.error} />
      ${stats.loading && !stats.data && html`<${Loading} what="Counting events" />`}
      ${stats.data && html`<${StatsLine} stats=${stats.data} />
        <${Histogram} stats=${stats.data} win=${win} onNarrow=${narrow} />`}
    </section>
    <div class="grid2">
      <section aria-labelledby="siem-results">
        <div class="toolbar">
          <h2 id="siem-results">Events</h2>
          ${search.data && html`<span class="count" aria-live="polite">page ${pageNo} · ${items.length} event${items.length === 1 ? "" : "s"} · took ${num(search.data.took_ms)} ms</span>`}
        </div>
        <${ErrorBox} error=${search.error} />
        ${search.loading && html`<${Loading} what="Searching" />`}
        ${search.data && !items.length && html`<${Empty}>No events match this search in this window.<//>`}
        ${items.length > 0 && html`<${EventTable} items=${items} selected=${selected} onSelect=${setSelected} />`}
        <nav class="pager" aria-label="Result pages">
          <button type="button" disabled=${!page.stack.length || search.loading} onClick=${first}>« First</button>
          <button type="button" disabled=${!page.stack.length || search.loading} onClick=${previous}>‹ Previous</button>
          <span>page ${pageNo}</span>
          <button type="button" disabled=${!search.data?.next_cursor || search.loading} onClick=${next}>Next page ›</button>
        </nav>
      </section>
      <section aria-labelledby="siem-event">
        <h2 id="siem-event">Event</h2>
        ${selected
          ? html`<${EventDetail} key=${selected.id} event=${selected} onClose=${() => setSelected(null)} />`
          : html`<${Empty}>Choose an event's “Details” to see it here.<//>`}
      </section>
    </div>`;
}

function StatsLine({ stats }) {
  const rate = stats.ingest_rate || {};
  const storage = stats.storage || {};
  return html`<p class="count">
    ${num(stats.events_in_window)} events in the window · ${num(stats.events_total)} stored ·
    ingest ${num(rate.last_minute_per_second)}/s (last minute), ${num(rate.last_hour_per_second)}/s (last hour) ·
    ${bytes(storage.bytes_on_disk)} on disk, ${num(storage.parts)} parts, kept ${num(storage.retention_days)} days ·
    ${stats.window?.bucket_seconds ? `bars of ${Math.round(stats.window.bucket_seconds / 60)} min` : ""}
    ${stats.by_source?.length > 0 && html` · by source: ${stats.by_source.slice(0, 6).map((s) => html`<span class="tag">${s.source} ${num(s.events)}</span>`)}`}
  </p>`;
}

/** Bars of the window's buckets: one tab stop, arrow keys move between bars, Enter or a click
 * narrows the search to a bar's bucket. Heights are set through the CSSOM (no inline styles
 * under the page's CSP). */
function Histogram({ stats, win, onNarrow }) {
  const list = buckets(stats, win);
  const max = Math.max(1, ...list.map((b) => b.events));
  const [active, setActive] = useState(() => Math.max(0, list.findIndex((b) => b.events > 0)));
  const bars = useRef([]);
  if (!list.length) return html`<${Empty}>No buckets in this window.<//>`;
  const move = (e, index) => {
    const to = {
      ArrowLeft: index - 1,
      ArrowRight: index + 1,
      Home: 0,
      End: list.length - 1,
    }[e.key];
    if (to == null) return;
    e.preventDefault();
    const target = Math.max(0, Math.min(list.length - 1, to));
    setActive(target);
    bars.current[target]?.focus();
  };
  return html`<div class="histogram" role="group" aria-label="Events over time: a bar narrows the search to its time (arrow keys move between bars)">
      ${list.map((b, index) => {
        const pct = b.events ? Math.max(2, (b.events / max) * 100) : 0;
        const label = `${num(b.events)} event${b.events === 1 ? "" : "s"}, ${fullTime(b.from)} – ${fullTime(b.to)}`;
        return html`<button type="button" class="bar" key=${b.at} title=${label} aria-label=${label}
          tabindex=${index === active ? "0" : "-1"}
          ref=${(el) => {
            bars.current[index] = el;
            if (el) el.style.setProperty("height", `${pct}%`);
          }}
          onFocus=${() => setActive(index)} onKeyDown=${(e) => move(e, index)}
          onClick=${() => onNarrow(b.from, b.to)}></button>`;
      })}
    </div>
    <p class="count"><span>${fullTime(list[0].from)}</span> → <span>${fullTime(list[list.length - 1].to)}</span> · tallest bar ${num(max)} events</p>`;
}

function EventTable({ items, selected, onSelect }) {
  return html`<div class="table-wrap"><table aria-label="Events (Details shows one beside the list)">
    <thead><tr><th scope="col">Time</th><th scope="col">Source</th><th scope="col">Host</th><th scope="col">Event</th><th scope="col">Detail</th></tr></thead>
    <tbody>
      ${items.map(
        (ev) => html`<tr key=${ev.id} class=${selected?.id === ev.id ? "selected" : ""}>
          <td><${Time} value=${ev.timestamp} /></td>
          <td>${ev.source}<br /><small class="muted">${ev.format}</small></td>
          <td>${ev["host.name"] || html`<span class="muted">—</span>`}</td>
          <td class="title mono">${clip(summary(ev))}</td>
          <td class="actions"><button type="button" class="small" aria-pressed=${selected?.id === ev.id ? "true" : "false"}
            aria-label=${`Details of the event at ${fullTime(ev.timestamp)}`} onClick=${() => onSelect(ev)}>Details</button></td>
        </tr>`,
      )}
    </tbody>
  </table></div>`;
}

function EventDetail({ event, onClose }) {
  const [promoting, setPromoting] = useState(false);
  const [created, setCreated] = useState(null);
  const [startInvestigation, investigating, investigateError] = useAction(() =>
    investigate({ text: `SIEM log event ${event.id}:\n${JSON.stringify(event).slice(0, 90_000)}` }),
  );
  const shown = KEY_FIELDS.filter((name) => event[name] != null && event[name] !== "");
  const rest = Object.keys(event)
    .filter((name) => !KEY_FIELDS.includes(name) && !["raw", "fields", "id"].includes(name))
    .sort();
  const original = Object.entries(event.fields || {});
  return html`<div class="panel">
    <div class="toolbar">
      <code class="mono">${event.id}</code>
      <span class="spacer"></span>
      ${can("siem:write") && html`<button type="button" class="primary" onClick=${() => setPromoting(true)}>Promote to rule…</button>`}
      ${can("investigations:write") &&
      html`<button type="button" disabled=${investigating} onClick=${() => startInvestigation()}>${investigating ? "Dispatching…" : "Investigate"}</button>`}
      <a class="button" href=${eventHash(event)} title="A link to this event">Link</a>
      <button type="button" class="link" onClick=${onClose}>Close</button>
    </div>
    <${ErrorBox} error=${investigateError} />
    ${created &&
    html`<p class="notice good" role="status">Rule <a href=${`#/detections/${encodeURIComponent(created.id)}`}>${created.title}</a>
      <${Severity} value=${created.severity} />
      created (disabled: review and enable it on its page).
      ${created.warnings?.length > 0 && html` Warnings: ${created.warnings.join("; ")}`}</p>`}
    <dl class="props">
      <dt>Time</dt><dd>${fullTime(event.timestamp)} <small class="muted">(ingested ${fullTime(event.ingested_at)})</small></dd>
      ${shown.filter((n) => n !== "timestamp").map((name) => html`<dt>${name}</dt><dd class="mono">${String(event[name])}</dd>`)}
      ${rest.filter((n) => n !== "ingested_at").map((name) => html`<dt>${name}</dt><dd class="mono">${String(event[name])}</dd>`)}
    </dl>
    <h3>Raw</h3>
    <pre class="json">${event.raw}</pre>
    ${original.length > 0 &&
    html`<details><summary>Original fields (${original.length})</summary>
      <dl class="props">${original.map(([k, v]) => html`<dt>${k}</dt><dd class="mono">${String(v)}</dd>`)}</dl>
    </details>`}
    <details open><summary>The whole event (JSON)</summary><${Json} value=${event} /></details>
    <${PromoteDialog} event=${event} open=${promoting} onClose=${() => setPromoting(false)}
      onCreated=${(rule) => {
        setPromoting(false);
        setCreated(rule);
        notify(`Rule “${rule.title}” drafted from the event (disabled).`, "good");
      }} />
  </div>`;
}

/** The fields of an event a rule may match on: normalised ones, then original ones. */
function matchable(event) {
  const normalised = Object.keys(event)
    .filter((name) => !NOT_MATCHABLE.has(name) && event[name] != null && event[name] !== "")
    .map((name) => ({ name, value: String(event[name]), kind: "normalised" }));
  const seen = new Set(normalised.map((f) => f.name));
  const original = Object.entries(event.fields || {})
    .filter(([name, value]) => !seen.has(name) && value != null && value !== "")
    .map(([name, value]) => ({ name, value: String(value), kind: "original" }));
  return [...normalised, ...original];
}

function PromoteDialog({ event, open, onClose, onCreated }) {
  return html`<${Dialog} title="Promote the event to a detection rule" open=${open} onClose=${onClose}>
    <${PromoteForm} event=${event} onCreated=${onCreated} onCancel=${onClose} />
  <//>`;
}

function PromoteForm({ event, onCreated, onCancel }) {
  const fields = matchable(event);
  const [chosen, setChosen] = useState(() =>
    new Set(fields.filter((f) => ["event.code", "process.name", "event.action"].includes(f.name)).map((f) => f.name)),
  );
  const [title, setTitle] = useState("");
  const [level, setLevel] = useState("medium");
  const [description, setDescription] = useState("");
  const [promote, busy, error] = useAction(async () => {
    const body = { fields: [...chosen], level };
    if (title.trim()) body.title = title.trim();
    if (description.trim()) body.description = description.trim();
    const rule = await api("POST", `/siem/logs/${encodeURIComponent(event.id)}/promote`, { body });
    onCreated(rule);
  });
  const toggle = (name) =>
    setChosen((set) => {
      const next = new Set(set);
      if (next.has(name)) next.delete(name);
      else if (next.size < MAX_PROMOTE_FIELDS) next.add(name);
      return next;
    });
  const submit = (e) => {
    e.preventDefault();
    promote();
  };
  return html`<form onSubmit=${submit}>
    <p class="muted">The rule matches the chosen fields' values exactly. It is saved disabled, as
      Sigma you can edit before enabling it.</p>
    <fieldset>
      <legend>Fields to match (${chosen.size} of at most ${MAX_PROMOTE_FIELDS})</legend>
      ${!fields.length && html`<${Empty}>This event has no field a rule can match on.<//>`}
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">Match</th><th scope="col">Field</th><th scope="col">Value</th></tr></thead>
        <tbody>
          ${fields.map(
            (f) => html`<tr key=${f.name}>
              <td><input type="checkbox" id=${`promote-${f.name}`} checked=${chosen.has(f.name)}
                disabled=${!chosen.has(f.name) && chosen.size >= MAX_PROMOTE_FIELDS} onChange=${() => toggle(f.name)} /></td>
              <td><label for=${`promote-${f.name}`} class="mono">${f.name}</label>${f.kind === "original" && html` <small class="muted">original</small>`}</td>
              <td class="title mono">${clip(f.value, 120)}</td>
            </tr>`,
          )}
        </tbody>
      </table></div>
    </fieldset>
    <${Field} label="Title" hint="Optional: by default it names the matched values.">
      <input value=${title} onInput=${(e) => setTitle(e.currentTarget.value)} maxlength="500" />
    <//>
    <${Field} label="Level">
      <${Select} name="level" label="Level" value=${level} options=${LEVELS} blank=${null} onChange=${(v) => setLevel(v || "medium")} />
    <//>
    <${Field} label="Description" hint="Optional.">
      <textarea value=${description} onInput=${(e) => setDescription(e.currentTarget.value)} maxlength="20000"></textarea>
    <//>
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <button type="submit" class="primary" disabled=${busy || !chosen.size}>${busy ? "Creating…" : "Create rule"}</button>
      <button type="button" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

// -- sources ------------------------------------------------------------------------------------

const SOURCES_PAGE = 25;

function Sources() {
  const sources = useLoad(() => api("GET", "/siem/sources"), []);
  const [offset, setOffset] = useState(0);
  const items = sources.data?.items || [];
  return html`<section aria-labelledby="siem-sources-title">
    <div class="toolbar">
      <h2 id="siem-sources-title">Log sources</h2>
      <span class="spacer"></span>
      <button type="button" onClick=${sources.reload} disabled=${sources.loading}>Refresh</button>
    </div>
    <${ErrorBox} error=${sources.error} />
    ${sources.loading && !sources.data && html`<${Loading} />`}
    ${sources.data && !items.length && html`<${Empty}>No events have been ingested yet.<//>`}
    ${items.length > 0 &&
    html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">Source</th><th scope="col">Formats</th><th scope="col">Events</th>
          <th scope="col">First event</th><th scope="col">Last event</th><th scope="col">Last ingested</th><th scope="col">Search</th></tr></thead>
        <tbody>
          ${items.slice(offset, offset + SOURCES_PAGE).map(
            (s) => html`<tr key=${s.source}>
              <td class="mono">${s.source}</td>
              <td>${s.formats.map((f) => html`<span class="tag">${f}</span>`)}</td>
              <td>${num(s.events)}</td>
              <td><${Time} value=${s.first_event_at} /></td>
              <td><${Time} value=${s.last_event_at} /></td>
              <td><${Time} value=${s.last_ingested_at} /></td>
              <td class="actions"><a href=${searchHash({ ...specOf({}), source: s.source })} aria-label=${`Search the events of ${s.source}`}>Search</a></td>
            </tr>`,
          )}
        </tbody>
      </table></div>
      <${Pager} total=${items.length} limit=${SOURCES_PAGE} offset=${offset} onChange=${setOffset} />`}
  </section>`;
}

// -- hunts --------------------------------------------------------------------------------------

const HUNTS_PAGE = 20;
const RESULTS_PAGE = 25;

function Hunts({ huntId }) {
  const [offset, setOffset] = useState(0);
  const hunts = useLoad(() => api("GET", "/siem/hunts", { query: { limit: HUNTS_PAGE, offset } }), [offset]);
  const [editing, setEditing] = useState(null); // null, "new" or a hunt
  const [runs, setRuns] = useState({}); // hunt id -> its last run here
  const [runHunt, running, runError] = useAction(async (hunt) => {
    const run = await api("POST", `/siem/hunts/${encodeURIComponent(hunt.id)}/run`, { body: {} });
    setRuns((r) => ({ ...r, [hunt.id]: run }));
    notify(`Hunt “${hunt.name}”: ${num(run.matches)} match${run.matches === 1 ? "" : "es"} (${run.status}).`);
    location.hash = `#/siem/hunts/${encodeURIComponent(hunt.id)}`;
    hunts.reload();
    return run;
  });
  const writer = can("siem:write");
  const items = hunts.data?.items || [];
  const shown = huntId ? runs[huntId] : null;
  const shownHunt = huntId ? items.find((h) => h.id === huntId) : null;
  return html`<section aria-labelledby="siem-hunts-title">
    <div class="toolbar">
      <h2 id="siem-hunts-title">Hunts</h2>
      <span class="muted">Saved searches (the query language or Sigma), run over their lookback.</span>
      <span class="spacer"></span>
      <button type="button" onClick=${hunts.reload} disabled=${hunts.loading}>Refresh</button>
      ${writer && html`<button type="button" class="primary" onClick=${() => setEditing("new")}>New hunt…</button>`}
    </div>
    <${ErrorBox} error=${hunts.error} />
    <${ErrorBox} error=${runError} />
    ${hunts.loading && !hunts.data && html`<${Loading} />`}
    ${hunts.data && !items.length && html`<${Empty}>No hunts yet.<//>`}
    ${items.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Query</th><th scope="col">Lookback</th>
        <th scope="col">Last run</th><th scope="col">By</th><th scope="col">Actions</th></tr></thead>
      <tbody>
        ${items.map(
          (h) => html`<tr key=${h.id} class=${h.id === huntId ? "selected" : ""}>
            <td>${h.name}${h.description && html`<br /><small class="muted">${clip(h.description, 120)}</small>`}</td>
            <td><${Badge} value=${h.kind} /></td>
            <td class="title mono">${clip(h.query, 140)}</td>
            <td>${duration(h.lookback_seconds)}</td>
            <td>${h.last_run
              ? html`<${Status} value=${h.last_run.status} /> ${num(h.last_run.matches)} · <${Time} value=${h.last_run.started_at} />`
              : html`<span class="muted">never</span>`}</td>
            <td>${h.created_by}</td>
            <td class="actions">
              ${writer && html`<button type="button" class="small primary" disabled=${running} onClick=${() => runHunt(h)}
                aria-label=${`Run hunt ${h.name}`}>Run</button> `}
              ${writer && html`<button type="button" class="small" onClick=${() => setEditing(h)} aria-label=${`Edit hunt ${h.name}`}>Edit</button> `}
              ${h.kind === "query" && html`<a class="button small" href=${searchHash({ ...specOf({}), q: h.query, range: lookbackRange(h.lookback_seconds) })}
                aria-label=${`Open hunt ${h.name} in the search`}>Search</a>`}
            </td>
          </tr>`,
        )}
      </tbody>
    </table></div>`}
    <${Pager} total=${hunts.data?.total} limit=${HUNTS_PAGE} offset=${offset} onChange=${setOffset} />
    ${running && html`<${Loading} what="Running the hunt" />`}
    ${shown && html`<${HuntRun} run=${shown} hunt=${shownHunt} />`}
    ${huntId && !shown && !running &&
    html`<p class="muted">Run this hunt to see its results here (a run's results are shown by the run that made them).</p>`}
    <${Dialog} title=${editing === "new" ? "New hunt" : `Edit hunt ${editing?.name || ""}`} open=${editing != null} onClose=${() => setEditing(null)}>
      <${HuntForm} hunt=${editing === "new" ? null : editing} onCancel=${() => setEditing(null)}
        onSaved=${(saved) => {
          setEditing(null);
          notify(`Hunt “${saved.name}” saved.`, "good");
          hunts.reload();
        }} />
    <//>
  </section>`;
}

function lookbackRange(seconds) {
  return RANGES.find((r) => r.seconds === seconds)?.value || "7d";
}

function HuntForm({ hunt, onSaved, onCancel }) {
  const [form, setForm] = useState({
    name: hunt?.name || "",
    description: hunt?.description || "",
    kind: hunt?.kind || "query",
    query: hunt?.query || "",
    lookback_seconds: hunt?.lookback_seconds || 86400,
  });
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const [save, busy, error] = useAction(async () => {
    const body = {
      name: form.name.trim(),
      description: form.description.trim() || null,
      kind: form.kind,
      query: form.query,
      lookback_seconds: Number(form.lookback_seconds),
    };
    const saved = hunt
      ? await api("PATCH", `/siem/hunts/${encodeURIComponent(hunt.id)}`, { body: { ...body, version: hunt.version } })
      : await api("POST", "/siem/hunts", { body });
    onSaved(saved);
  });
  const submit = (e) => {
    e.preventDefault();
    save();
  };
  return html`<form onSubmit=${submit}>
    <${Field} label="Name"><input value=${form.name} onInput=${set("name")} required maxlength="200" /><//>
    <${Field} label="Description"><textarea value=${form.description} onInput=${set("description")} maxlength="20000"></textarea><//>
    <${Field} label="Kind">
      <select value=${form.kind} onChange=${set("kind")}>
        <option value="query">query language</option>
        <option value="sigma">Sigma rule (YAML)</option>
      </select>
    <//>
    <${Field} label=${form.kind === "sigma" ? "Sigma rule" : "Query"} hint=${form.kind === "sigma" ? "" : QUERY_HELP}>
      <textarea class="mono" rows="8" value=${form.query} onInput=${set("query")} required maxlength="262144"></textarea>
    <//>
    <${Field} label="Lookback (seconds)" hint="From 60 seconds to 366 days: what a run searches back from now.">
      <input type="number" min="60" max="31622400" step="1" value=${form.lookback_seconds} onInput=${set("lookback_seconds")} required />
    <//>
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Saving…" : hunt ? "Save" : "Create hunt"}</button>
      <button type="button" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

function HuntRun({ run, hunt }) {
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState(null);
  const results = run.results || [];
  return html`<section class="panel" aria-labelledby="siem-hunt-run">
    <h2 id="siem-hunt-run">Run of ${hunt ? `“${hunt.name}”` : "the hunt"}</h2>
    <dl class="props">
      <dt>Status</dt><dd><${Status} value=${run.status} /></dd>
      <dt>Matches</dt><dd>${num(run.matches)}${results.length < run.matches ? ` (the first ${num(results.length)} shown)` : ""}</dd>
      <dt>Window</dt><dd>${fullTime(run.window_start)} – ${fullTime(run.window_end)}</dd>
      <dt>Duration</dt><dd>${run.duration_ms == null ? "—" : `${num(run.duration_ms)} ms`}</dd>
      <dt>By</dt><dd>${run.requested_by}, <${Time} value=${run.started_at} /></dd>
      ${run.error && html`<dt>Error</dt><dd class="error">${run.error}</dd>`}
    </dl>
    ${results.length > 0 &&
    html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">Time</th><th scope="col">Source</th><th scope="col">Host</th><th scope="col">Event</th><th scope="col">Open</th></tr></thead>
        <tbody>
          ${results.slice(offset, offset + RESULTS_PAGE).map(
            (ev, i) => html`<tr key=${ev.id || i} class=${open === ev ? "selected" : ""}>
              <td><${Time} value=${ev.timestamp} /></td>
              <td>${ev.source}</td>
              <td>${ev["host.name"] || "—"}</td>
              <td class="title mono">${clip(summary(ev))}</td>
              <td class="actions">
                <button type="button" class="small" aria-pressed=${open === ev ? "true" : "false"} onClick=${() => setOpen(open === ev ? null : ev)}>JSON</button>
                ${ev.id && ev.timestamp && html` <a class="button small" href=${eventHash(ev)}>In search</a>`}
              </td>
            </tr>`,
          )}
        </tbody>
      </table></div>
      <${Pager} total=${results.length} limit=${RESULTS_PAGE} offset=${offset} onChange=${setOffset} />
      ${open && html`<${Json} value=${open} />`}`}
  </section>`;
}
