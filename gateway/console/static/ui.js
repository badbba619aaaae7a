// Shared pieces of every screen: errors with their AURORA code, loading, pagination, badges,
// times, dialogs, notices and the live-stream indicator.
import { api } from "./api.js";
import { html, store, useCallback, useEffect, useRef, useState, useStore } from "./lib.js";

/** Where a validation problem is (`["body", "steps", 2, "with"]` → `steps[2].with`). */
function problemPath(loc) {
  const parts = (Array.isArray(loc) ? loc : []).filter((p, i) => !(i === 0 && (p === "body" || p === "query")));
  return parts.reduce((text, p) => (typeof p === "number" ? `${text}[${p}]` : text ? `${text}.${p}` : String(p)), "");
}

/** An error's detail as text: a validation detail (`[{loc, msg}]`, AURORA-4220 and -4221) one
 * problem a line with where it is, anything else as JSON. */
function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length && detail.every((p) => p && typeof p === "object" && "msg" in p)) {
    return detail.map((p) => `• ${problemPath(p.loc) ? `${problemPath(p.loc)}: ` : ""}${p.msg}`).join("\n");
  }
  return JSON.stringify(detail, null, 2);
}

/** An error as the API gave it: its AURORA code, message, detail and request id. */
export function ErrorBox({ error, onDismiss }) {
  if (!error) return null;
  const detail = error.detail;
  return html`<div class="error" role="alert">
    <strong class="code">${error.code || "Error"}</strong> <span>${error.message}</span>
    ${detail != null && html`<pre class="detail">${detailText(detail)}</pre>`}
    ${error.requestId && html`<small class="muted"> request ${error.requestId}</small>`}
    ${onDismiss && html` <button type="button" class="link" onClick=${onDismiss}>dismiss</button>`}
  </div>`;
}

/** `useLoad(() => api(...), [deps])`: `{data, error, loading, reload, setData}`. The first
 * load starts while the component first renders (not an effect later, a frame or more), the
 * next ones when `deps` change. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const alive = useRef(true);
  const run = (loader) => {
    const mine = ++generation.current;
    loader().then(
      (data) => alive.current && mine === generation.current && setState({ data, error: null, loading: false }),
      (error) => alive.current && mine === generation.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  };
  const kicked = useRef(false);
  if (!kicked.current) {
    kicked.current = true;
    run(load);
  }
  const reload = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    run(load);
  }, deps);
  const mounted = useRef(false);
  useEffect(() => {
    if (mounted.current) reload(); // `deps` changed (the first load started with the render)
    mounted.current = true;
  }, [reload]);
  useEffect(() => () => {
    alive.current = false;
  }, []);
  const setData = useCallback((update) => {
    setState((s) => ({ ...s, data: typeof update === "function" ? update(s.data) : update }));
  }, []);
  return { ...state, reload, setData };
}

/** A page of the list route `path` (`limit` items): `useLoad`'s state with `offset`, `setOffset`
 * and `show(offset)`, which shows that page, loaded again when it is the one on screen (after
 * an item was added, say). */
export function usePage(path, limit) {
  const [offset, setOffset] = useState(0);
  const list = useLoad(() => api("GET", path, { query: { limit, offset } }), [path, limit, offset]);
  const show = (next) => (next === offset ? list.reload() : setOffset(next));
  return { ...list, offset, setOffset, show };
}

/** Runs an action, keeping its error and whether it is running: `[run, busy, error, clear]`. */
export function useAction(action) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (...args) => {
    setBusy(true);
    setError(null);
    try {
      return await action(...args);
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return [run, busy, error, () => setError(null)];
}

export function Loading({ what = "Loading" }) {
  return html`<p class="muted" aria-live="polite">${what}…</p>`;
}

/** Offset pagination over `total` items; given the API's `page` (`{total, limit, offset}`),
 * it shows the page that is on screen, not the one being fetched. */
export function Pager({ page, total = page?.total, limit = page?.limit, offset = page?.offset, onChange }) {
  if (total == null) return null;
  const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const from = total ? offset + 1 : 0;
  const to = Math.min(total, offset + limit);
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${offset <= 0} onClick=${() => onChange(0)}>« First</button>
    <button type="button" disabled=${offset <= 0} onClick=${() => onChange(Math.max(0, offset - limit))}>‹ Previous</button>
    <span aria-live="polite">${from.toLocaleString()}–${to.toLocaleString()} of ${total.toLocaleString()}</span>
    <button type="button" disabled=${offset >= last} onClick=${() => onChange(offset + limit)}>Next ›</button>
    <button type="button" disabled=${offset >= last} onClick=${() => onChange(last)}>Last »</button>
  </nav>`;
}

export function Badge({ value, kind = "" }) {
  if (value == null || value === "") return null;
  return html`<span class=${`badge ${kind} ${kind}-${String(value).replace(/[^a-z0-9_-]/gi, "")}`}>${String(value).replaceAll("_", " ")}</span>`;
}

export const Severity = ({ value }) => html`<${Badge} value=${value} kind="sev" />`;
export const Status = ({ value }) => html`<${Badge} value=${value} kind="status" />`;

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function ago(when, now = Date.now()) {
  const seconds = Math.round((new Date(when).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return RELATIVE.format(seconds, "second");
  if (abs < 3600) return RELATIVE.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return RELATIVE.format(Math.round(seconds / 3600), "hour");
  return RELATIVE.format(Math.round(seconds / 86400), "day");
}

/** A time: relative, with the exact time in its tooltip. */
export function Time({ value }) {
  if (!value) return html`<span class="muted">—</span>`;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return html`<span>${String(value)}</span>`;
  return html`<time datetime=${date.toISOString()} title=${date.toLocaleString()}>${ago(date)}</time>`;
}

/** A modal dialog (the browser's own, so focus stays inside and Escape closes it). */
export function Dialog({ title, open, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-label=${title} onClose=${onClose} onCancel=${onClose}>
    <header><h2>${title}</h2><button type="button" class="link" aria-label="Close" onClick=${onClose}>✕</button></header>
    ${open && children}
  </dialog>`;
}

/** A labelled form field. */
export function Field({ label, children, hint }) {
  return html`<label class="field"><span>${label}</span>${children}${hint && html`<small class="muted">${hint}</small>`}</label>`;
}

export function Select({ value, options, onChange, name, blank = "any", label }) {
  return html`<select name=${name} value=${value ?? ""} aria-label=${label || name}
    onChange=${(e) => onChange(e.currentTarget.value || null)}>
    ${blank != null && html`<option value="">${blank}</option>`}
    ${options.map((o) => html`<option value=${o}>${String(o).replaceAll("_", " ")}</option>`)}
  </select>`;
}

export function Json({ value }) {
  return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
}

/** Transient notices, read out by screen readers. */
export const notices = store([]);
let noticeId = 0;

export function notify(text, kind = "info") {
  const id = ++noticeId;
  notices.set((list) => [...list.slice(-4), { id, text, kind }]);
  setTimeout(() => notices.set((list) => list.filter((n) => n.id !== id)), 6000);
}

export function Notices() {
  const list = useStore(notices);
  return html`<div class="notices" role="status" aria-live="polite">
    ${list.map((n) => html`<div key=${n.id} class=${`notice ${n.kind}`}>${n.text}</div>`)}
  </div>`;
}

/** Where a live stream stands: live, reconnecting (and when), events dropped, outages. */
export function StreamStatus({ status, label = "live" }) {
  const [, tick] = useState(0);
  useEffect(() => {
    if (status.state !== "reconnecting") return undefined;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [status.state]);
  const wait = status.retryAt ? Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000)) : 0;
  const text = {
    connecting: "connecting…",
    live: label,
    reconnecting: `reconnecting${wait ? ` in ${wait}s` : "…"} (attempt ${status.attempt})`,
    forbidden: `closed: ${status.error?.code || "AURORA-4030"} ${status.error?.message || ""}`,
    ended: "session ended",
  }[status.state];
  return html`<span class=${`stream stream-${status.state}`} role="status" data-stream-state=${status.state}>
    <span class="dot" aria-hidden="true"></span>${text}
    ${status.dropped > 0 && html` <span class="gap" title="The server dropped events this page was too slow to take">· ${status.dropped} dropped</span>`}
    ${status.outages > 0 && html` <span class="gap" title="Disconnected; what was missed was reloaded">· ${status.outages} outage${status.outages > 1 ? "s" : ""}</span>`}
  </span>`;
}

/** The seconds left until `until`, updated each second. */
export function Countdown({ until }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = Math.max(0, Math.round((new Date(until).getTime() - now) / 1000));
  const text = left >= 60 ? `${Math.floor(left / 60)}m ${String(left % 60).padStart(2, "0")}s` : `${left}s`;
  return html`<span class=${left < 60 ? "countdown urgent" : "countdown"} role="timer">${left ? `${text} left` : "expired"}</span>`;
}

/** What the investigation screen is asked to dispatch next: it opens the thought stream
 * first, so that no thought of the new investigation is missed, then sends it. */
export const pendingDispatch = store(null);

/** Dispatch an investigation of `subject` (`{alert_id}`, `{case_id}` or `{text}`) from the
 * investigation screen, which then shows it. */
export function investigate(subject) {
  pendingDispatch.set(subject);
  location.hash = "#/investigations/new";
}

export function go(hash) {
  location.hash = hash;
}

export function Empty({ children }) {
  return html`<p class="empty muted">${children}</p>`;
}

/** Section links (`items`: `{id, label, href}`), the current one marked for assistive tech. */
export function Tabs({ current, items, label }) {
  return html`<nav class="tabs" aria-label=${label}>
    ${items.map((t) => html`<a href=${t.href} aria-current=${current === t.id ? "page" : undefined}>${t.label}</a>`)}
  </nav>`;
}

/** A number as the reader's locale writes it ("—" for none). */
export const num = (n) => (n == null ? "—" : Number(n).toLocaleString());

/** A time in full, in the reader's locale ("—" for none). */
export const fullTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

/** `text` cut to `length` characters, with an ellipsis when it was cut. */
export function clip(text, length = 160) {
  const s = String(text ?? "");
  return s.length > length ? `${s.slice(0, length - 1)}…` : s;
}

/** Seconds in the largest whole unit (d, h, min, s). */
export function duration(seconds) {
  if (seconds == null) return "—";
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** An ISO time as a `datetime-local` input's value, in the reader's time zone. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A `datetime-local` input's value as an ISO time in UTC (null when empty or invalid). */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** `base` (`#/cases`) with `params` as its query, empty ones (and a zero offset) left out. */
export function hashWith(base, params) {
  const kept = Object.entries(params).filter(([, v]) => v != null && v !== "" && v !== 0);
  const search = new URLSearchParams(kept).toString();
  return search ? `${base}?${search}` : base;
}
