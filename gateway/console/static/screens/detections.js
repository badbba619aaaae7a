// Detections: the Sigma rules with their metrics, and a rule's page: its fields and Sigma,
// enabling and editing it, its runs (run now as a preview or a backfill), analysts' feedback and
// its suppressions.
import { api, can } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status, Tabs,
  Time, clip, duration, fromLocalInput, fullTime, notify, num, toLocalInput, useAction, useLoad,
  usePage,
} from "../ui.js";

const LEVELS = ["informational", "low", "medium", "high", "critical"];
const VERDICTS = [
  { value: "true_positive", label: "True positive", hint: "the rule caught real malicious activity" },
  { value: "false_positive", label: "False positive", hint: "the rule fired on activity it should not match" },
  { value: "benign", label: "Benign", hint: "the match was real but expected or harmless" },
];
const RUN_WINDOWS = [
  { value: "1h", label: "Last hour", seconds: 3600 },
  { value: "24h", label: "Last 24 hours", seconds: 86400 },
  { value: "7d", label: "Last 7 days", seconds: 7 * 86400 },
  { value: "30d", label: "Last 30 days", seconds: 30 * 86400 },
  { value: "custom", label: "Custom…" },
];
const SUPPRESS_FOR = [
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "1 day" },
  { value: "604800", label: "7 days" },
  { value: "2592000", label: "30 days" },
  { value: "until", label: "Until a date…" },
];
const RULES_PAGE = 25;
const CHILD_PAGE = 20;
const SAMPLE_PAGE = 20;
const LIST_KEYS = ["q", "enabled", "level", "technique", "offset"];

// -- helpers ------------------------------------------------------------------------------------

const pct = (p) => (p == null ? "—" : `${Math.round(p * 1000) / 10}%`);
const ruleHref = (id, tab = "") => `#/detections/${encodeURIComponent(id)}${tab ? `/${tab}` : ""}`;

/** A link to the SIEM search showing one log event (by id, in a window around its time). */
function eventHref(event) {
  const at = new Date(event.timestamp).getTime();
  const query = new URLSearchParams({
    q: `id:"${event.id}"`,
    range: "custom",
    since: new Date(at - 60_000).toISOString(),
    until: new Date(at + 60_000).toISOString(),
  });
  return `#/siem?${query}`;
}

/** `#/detections?...`, empty filters left out. */
function listHref(filters) {
  const out = new URLSearchParams();
  for (const key of LIST_KEYS) {
    const value = filters[key];
    if (value != null && value !== "" && !(key === "offset" && Number(value) === 0)) out.set(key, String(value));
  }
  const text = out.toString();
  return `#/detections${text ? `?${text}` : ""}`;
}

function Enabled({ value }) {
  return html`<${Badge} value=${value ? "enabled" : "disabled"} kind="status" />`;
}

/** There is no route for one rule: its title (from the metrics) narrows the list to find it,
 * and a walk over the list's pages finds one whose title the metrics do not know yet. */
async function loadRule(ruleId) {
  const metrics = await api("GET", "/detections/metrics");
  const known = metrics.rules.find((r) => r.rule_id === ruleId);
  if (known) {
    const page = await api("GET", "/detections/rules", { query: { q: known.title.slice(0, 200), limit: 500 } });
    const rule = page.items.find((r) => r.id === ruleId);
    if (rule) return { rule, metrics: known };
  }
  for (let offset = 0; ; offset += 500) {
    const page = await api("GET", "/detections/rules", { query: { limit: 500, offset } });
    const rule = page.items.find((r) => r.id === ruleId);
    if (rule) return { rule, metrics: known || null };
    if (offset + page.items.length >= page.total || !page.items.length) break;
  }
  const missing = new Error(`Detection rule '${ruleId}' not found`);
  missing.code = "AURORA-4040";
  missing.detail = { rule_id: ruleId };
  throw missing;
}

// -- the screen ---------------------------------------------------------------------------------

export default function Detections({ params, query }) {
  if (params[0]) return html`<${RulePage} key=${params[0]} ruleId=${params[0]} tab=${params[1] || "overview"} query=${query} />`;
  return html`<${RuleList} query=${query} />`;
}

// -- the list -----------------------------------------------------------------------------------

function RuleList({ query }) {
  const filters = {
    q: query.q || "",
    enabled: query.enabled === "true" || query.enabled === "false" ? query.enabled : "",
    level: LEVELS.includes(query.level) ? query.level : "",
    technique: query.technique || "",
    offset: Math.max(0, Number.parseInt(query.offset, 10) || 0),
  };
  const key = listHref(filters);
  const rules = useLoad(
    () =>
      api("GET", "/detections/rules", {
        query: {
          limit: RULES_PAGE,
          offset: filters.offset,
          q: filters.q,
          enabled: filters.enabled,
          level: filters.level,
          technique: filters.technique,
        },
      }),
    [key],
  );
  const metrics = useLoad(() => api("GET", "/detections/metrics"), []);
  const [creating, setCreating] = useState(false);
  const byRule = new Map((metrics.data?.rules || []).map((m) => [m.rule_id, m]));
  const go = (change) => {
    location.hash = listHref({ ...filters, offset: 0, ...change });
  };
  const [toggle, toggling, toggleError, clearToggle] = useAction(async (rule) => {
    await api("PATCH", `/detections/rules/${encodeURIComponent(rule.id)}`, {
      body: { enabled: !rule.enabled, version: rule.version },
    });
    notify(`Rule “${rule.title}” ${rule.enabled ? "disabled" : "enabled"}.`, "good");
    rules.reload();
    metrics.reload();
  });
  const items = rules.data?.items || [];
  const writer = can("siem:write");
  return html`<h1>Detections</h1>
    <${MetricsSummary} metrics=${metrics} />
    <${Filters} key=${key} filters=${filters} onApply=${go} />
    <div class="toolbar">
      <h2>Rules</h2>
      ${rules.data && html`<span class="count">${num(rules.data.total)} matching</span>`}
      <span class="spacer"></span>
      <button type="button" onClick=${() => { rules.reload(); metrics.reload(); }} disabled=${rules.loading}>Refresh</button>
      ${writer && html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New rule…</button>`}
    </div>
    <${ErrorBox} error=${rules.error} />
    <${ErrorBox} error=${toggleError} onDismiss=${clearToggle} />
    ${rules.loading && !rules.data && html`<${Loading} what="Loading rules" />`}
    ${rules.data && !items.length && html`<${Empty}>No rules match these filters.<//>`}
    ${items.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr>
        <th scope="col">Rule</th><th scope="col">Level</th><th scope="col">State</th><th scope="col">Techniques</th>
        <th scope="col">Runs</th><th scope="col">Matches</th><th scope="col">Alerts</th><th scope="col">Precision</th>
        <th scope="col">Last run</th>${writer && html`<th scope="col">Actions</th>`}
      </tr></thead>
      <tbody>
        ${items.map((rule) => {
          const m = byRule.get(rule.id);
          return html`<tr key=${rule.id}>
            <td class="title"><a href=${ruleHref(rule.id)}>${rule.title}</a>
              ${rule.warnings?.length > 0 && html` <span class="badge status-pending" title=${rule.warnings.join("\n")}>${rule.warnings.length} warning${rule.warnings.length > 1 ? "s" : ""}</span>`}
              ${m?.last_error && html`<br /><small class="chain-bad" title=${m.last_error}>last run failed: ${clip(m.last_error, 80)}</small>`}</td>
            <td><${Severity} value=${rule.severity} /></td>
            <td><${Enabled} value=${rule.enabled} /></td>
            <td>${rule.techniques.map((t) => html`<span class="tag">${t}</span>`)}</td>
            <td>${num(m?.runs)}${m?.failed_runs ? html` <small class="chain-bad">(${m.failed_runs} failed)</small>` : ""}</td>
            <td>${num(m?.matches)}</td>
            <td>${num(m?.alerts)}</td>
            <td>${pct(m?.precision)}</td>
            <td><${Time} value=${rule.last_run_at} /></td>
            ${writer &&
            html`<td class="actions"><button type="button" class="small" disabled=${toggling}
              aria-label=${`${rule.enabled ? "Disable" : "Enable"} rule ${rule.title}`}
              onClick=${() => toggle(rule)}>${rule.enabled ? "Disable" : "Enable"}</button></td>`}
          </tr>`;
        })}
      </tbody>
    </table></div>`}
    <${Pager} total=${rules.data?.total} limit=${RULES_PAGE} offset=${filters.offset}
      onChange=${(offset) => { location.hash = listHref({ ...filters, offset }); }} />
    <${Dialog} title="New detection rule" open=${creating} onClose=${() => setCreating(false)}>
      <${RuleForm} onCancel=${() => setCreating(false)}
        onSaved=${(rule) => {
          setCreating(false);
          notify(`Rule “${rule.title}” created.`, "good");
          location.hash = ruleHref(rule.id);
        }} />
    <//>`;
}

function MetricsSummary({ metrics }) {
  const [allTechniques, setAllTechniques] = useState(false);
  if (metrics.error) return html`<${ErrorBox} error=${metrics.error} />`;
  if (!metrics.data) return html`<${Loading} what="Loading metrics" />`;
  const { totals, attack_coverage: coverage, rules } = metrics.data;
  const failing = rules.filter((r) => r.last_error).length;
  const judged = rules.filter((r) => r.precision != null);
  const meanPrecision = judged.length ? judged.reduce((s, r) => s + r.precision, 0) / judged.length : null;
  const techniques = allTechniques ? coverage.techniques : coverage.techniques.slice(0, 24);
  return html`<section class="panel" aria-labelledby="det-metrics">
    <h2 id="det-metrics">Metrics</h2>
    <dl class="props">
      <dt>Rules</dt><dd>${num(totals.rules)} (${num(totals.enabled)} enabled)</dd>
      <dt>Runs</dt><dd>${num(totals.runs)}${failing ? html` · <span class="chain-bad">${failing} rule${failing > 1 ? "s" : ""} whose last failed run is unresolved</span>` : ""}</dd>
      <dt>Alerts raised</dt><dd>${num(totals.alerts)}</dd>
      <dt>Mean precision</dt><dd>${pct(meanPrecision)} <small class="muted">(over ${judged.length} rule${judged.length === 1 ? "" : "s"} with verdicts)</small></dd>
      <dt>ATT&CK coverage</dt>
      <dd>${num(coverage.count)} technique${coverage.count === 1 ? "" : "s"} covered by enabled rules
        ${techniques.length > 0 && html`<br />${techniques.map(
          (t) => html`<a class="tag" href=${listHref({ technique: t })} title=${`Rules detecting ${t}`}>${t}</a>`,
        )}`}
        ${coverage.techniques.length > 24 &&
        html` <button type="button" class="link" aria-expanded=${allTechniques ? "true" : "false"}
          onClick=${() => setAllTechniques(!allTechniques)}>${allTechniques ? "fewer" : `all ${coverage.techniques.length}`}</button>`}</dd>
    </dl>
  </section>`;
}

function Filters({ filters, onApply }) {
  const [form, setForm] = useState(filters);
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const submit = (e) => {
    e.preventDefault();
    onApply({ q: form.q.trim(), enabled: form.enabled, level: form.level, technique: form.technique.trim() });
  };
  return html`<form class="toolbar" role="search" aria-label="Filter rules" onSubmit=${submit}>
    <label class="field"><span>Title contains</span>
      <input type="search" value=${form.q} onInput=${set("q")} maxlength="200" /></label>
    <label class="field"><span>State</span>
      <select value=${form.enabled} onChange=${set("enabled")}>
        <option value="">any</option><option value="true">enabled</option><option value="false">disabled</option>
      </select></label>
    <label class="field"><span>Level</span>
      <${Select} name="level" label="Level" value=${form.level} options=${LEVELS}
        onChange=${(v) => setForm((f) => ({ ...f, level: v || "" }))} /></label>
    <label class="field"><span>ATT&CK technique</span>
      <input value=${form.technique} onInput=${set("technique")} maxlength="16" placeholder="T1059" size="10" /></label>
    <button type="submit" class="primary">Filter</button>
    <button type="button" onClick=${() => { setForm({ q: "", enabled: "", level: "", technique: "" }); onApply({ q: "", enabled: "", level: "", technique: "" }); }}>Clear</button>
  </form>`;
}

/** Create a rule (no `rule`) or edit one's Sigma and schedule (with its version). */
function RuleForm({ rule, onSaved, onCancel }) {
  const [form, setForm] = useState({
    sigma: rule?.sigma || "",
    enabled: rule ? rule.enabled : false,
    interval_seconds: rule?.interval_seconds ?? 300,
    lookback_seconds: rule?.lookback_seconds ?? "",
  });
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const [save, busy, error] = useAction(async () => {
    const body = { sigma: form.sigma, interval_seconds: Number(form.interval_seconds) };
    if (form.lookback_seconds !== "" && form.lookback_seconds != null) body.lookback_seconds = Number(form.lookback_seconds);
    let saved;
    if (rule) {
      if (body.sigma === rule.sigma) delete body.sigma;
      saved = await api("PATCH", `/detections/rules/${encodeURIComponent(rule.id)}`, { body: { ...body, version: rule.version } });
    } else {
      saved = await api("POST", "/detections/rules", { body: { ...body, enabled: Boolean(form.enabled) } });
    }
    onSaved(saved);
  });
  const submit = (e) => {
    e.preventDefault();
    save();
  };
  return html`<form onSubmit=${submit}>
    <${Field} label="Sigma rule (YAML)" hint="A correlation rule may carry the rules it correlates.">
      <textarea class="mono" rows="16" value=${form.sigma} onInput=${set("sigma")} required maxlength="262144"></textarea>
    <//>
    <div class="toolbar">
      <${Field} label="Interval (seconds)" hint="60 to 86,400: how often it runs.">
        <input type="number" min="60" max="86400" step="1" value=${form.interval_seconds} onInput=${set("interval_seconds")} required />
      <//>
      <${Field} label="Lookback (seconds)" hint="60 to 2,592,000; empty: the interval plus a minute.">
        <input type="number" min="60" max="2592000" step="1" value=${form.lookback_seconds} onInput=${set("lookback_seconds")} required=${Boolean(rule)} />
      <//>
    </div>
    ${!rule &&
    html`<label><input type="checkbox" checked=${form.enabled} onChange=${(e) => setForm((f) => ({ ...f, enabled: e.currentTarget.checked }))} />
      Enable it now (it runs on its schedule and raises alerts)</label>`}
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Saving…" : rule ? "Save" : "Create rule"}</button>
      <button type="button" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

// -- one rule -----------------------------------------------------------------------------------

function RulePage({ ruleId, tab, query }) {
  const found = useLoad(() => loadRule(ruleId), [ruleId]);
  const [editing, setEditing] = useState(false);
  const [toggle, toggling, toggleError, clearToggle] = useAction(async (rule) => {
    const saved = await api("PATCH", `/detections/rules/${encodeURIComponent(rule.id)}`, {
      body: { enabled: !rule.enabled, version: rule.version },
    });
    found.setData((d) => ({ ...d, rule: saved }));
    notify(`Rule ${saved.enabled ? "enabled: it runs on its schedule" : "disabled"}.`, "good");
  });
  const rule = found.data?.rule;
  const m = found.data?.metrics;
  const writer = can("siem:write");
  const tabs = [
    { id: "overview", label: "Overview", href: ruleHref(ruleId) },
    { id: "runs", label: "Runs", href: ruleHref(ruleId, "runs") },
    { id: "feedback", label: "Feedback", href: ruleHref(ruleId, "feedback") },
    { id: "suppressions", label: "Suppressions", href: ruleHref(ruleId, "suppressions") },
  ];
  return html`<p><a href="#/detections">‹ Detections</a></p>
    ${found.loading && !rule && html`<${Loading} what="Loading the rule" />`}
    <${ErrorBox} error=${found.error} />
    ${rule &&
    html`<div class="toolbar">
        <h1>${rule.title}</h1>
        <${Severity} value=${rule.severity} />
        <${Enabled} value=${rule.enabled} />
        <span class="spacer"></span>
        ${writer &&
        html`<button type="button" class=${rule.enabled ? "" : "good"} disabled=${toggling} onClick=${() => toggle(rule)}>
            ${toggling ? "Saving…" : rule.enabled ? "Disable" : "Enable"}</button>
          <button type="button" onClick=${() => setEditing(true)}>Edit…</button>`}
        <button type="button" onClick=${found.reload} disabled=${found.loading}>Reload</button>
      </div>
      <${ErrorBox} error=${toggleError} onDismiss=${clearToggle} />
      ${toggleError?.code === "AURORA-4090" && html`<p class="notice warn">Someone changed the rule first: reload it and try again.</p>`}
      <${Tabs} current=${tab} items=${tabs} label="Rule views" />
      ${tab === "runs"
        ? html`<${Runs} rule=${rule} onRan=${found.reload} />`
        : tab === "feedback"
          ? html`<${Feedback} rule=${rule} metrics=${m} query=${query} />`
          : tab === "suppressions"
            ? html`<${Suppressions} rule=${rule} />`
            : html`<${Overview} rule=${rule} metrics=${m} />`}
      <${Dialog} title=${`Edit ${rule.title}`} open=${editing} onClose=${() => setEditing(false)}>
        <${RuleForm} rule=${rule} onCancel=${() => setEditing(false)}
          onSaved=${(saved) => {
            setEditing(false);
            found.setData((d) => ({ ...d, rule: saved }));
            notify("Rule saved.", "good");
          }} />
      <//>`}`;
}

function Overview({ rule, metrics: m }) {
  return html`${rule.warnings.length > 0 &&
    html`<div class="notice warn" role="note"><strong>Warnings</strong><ul>${rule.warnings.map((w) => html`<li>${w}</li>`)}</ul></div>`}
    <div class="grid2">
      <section class="panel" aria-labelledby="rule-fields">
        <h2 id="rule-fields">Rule</h2>
        <dl class="props">
          <dt>Id</dt><dd class="mono">${rule.id}</dd>
          ${rule.sigma_id && html`<dt>Sigma id</dt><dd class="mono">${rule.sigma_id}</dd>`}
          ${rule.description && html`<dt>Description</dt><dd>${rule.description}</dd>`}
          <dt>Level</dt><dd>${rule.level || "—"} (severity <${Severity} value=${rule.severity} />)</dd>
          <dt>Sigma status</dt><dd>${rule.status || "—"}</dd>
          <dt>Condition</dt><dd class="mono">${rule.condition}</dd>
          <dt>Log source</dt><dd>${Object.entries(rule.logsource || {}).map(([k, v]) => html`<span class="tag">${k}: ${String(v)}</span>`)}</dd>
          <dt>Techniques</dt><dd>${rule.techniques.length ? rule.techniques.map((t) => html`<span class="tag">${t}</span>`) : "—"}</dd>
          <dt>Tags</dt><dd>${rule.tags.length ? rule.tags.map((t) => html`<span class="tag">${t}</span>`) : "—"}</dd>
          <dt>Schedule</dt><dd>every ${duration(rule.interval_seconds)}, searching back ${duration(rule.lookback_seconds)}</dd>
          <dt>Next run</dt><dd>${rule.enabled ? html`<${Time} value=${rule.next_run_at} />` : html`<span class="muted">not scheduled (disabled)</span>`}</dd>
          <dt>Last run</dt><dd><${Time} value=${rule.last_run_at} /></dd>
          <dt>Created</dt><dd>${rule.created_by}, <${Time} value=${rule.created_at} /></dd>
          <dt>Updated</dt><dd><${Time} value=${rule.updated_at} /> (version ${rule.version})</dd>
        </dl>
        ${rule.correlation && html`<h3>Correlation</h3><${Json} value=${rule.correlation} />`}
      </section>
      <section class="panel" aria-labelledby="rule-metrics">
        <h2 id="rule-metrics">Metrics</h2>
        ${m
          ? html`<dl class="props">
              <dt>Runs</dt><dd>${num(m.runs)} (${num(m.failed_runs)} failed)</dd>
              <dt>Matches</dt><dd>${num(m.matches)}</dd>
              <dt>Alerts</dt><dd>${num(m.alerts)}</dd>
              <dt>Suppressed</dt><dd>${num(m.suppressed)}</dd>
              <dt>Feedback</dt><dd>${num(m.feedback.true_positive)} true positive, ${num(m.feedback.false_positive)} false positive, ${num(m.feedback.benign)} benign</dd>
              <dt>Precision</dt><dd>${pct(m.precision)}</dd>
              <dt>Mean duration</dt><dd>${m.mean_duration_ms == null ? "—" : `${num(Math.round(m.mean_duration_ms))} ms`}</dd>
              ${m.last_error && html`<dt>Last failure</dt><dd class="chain-bad">${m.last_error}</dd>`}
            </dl>`
          : html`<${Empty}>No metrics for this rule yet.<//>`}
      </section>
    </div>
    <section class="panel" aria-labelledby="rule-sigma">
      <h2 id="rule-sigma">Sigma</h2>
      <pre class="json">${rule.sigma}</pre>
    </section>`;
}

// -- runs ---------------------------------------------------------------------------------------

function Runs({ rule, onRan }) {
  const runs = usePage(`/detections/rules/${encodeURIComponent(rule.id)}/runs`, CHILD_PAGE);
  const [result, setResult] = useState(null);
  const [open, setOpen] = useState(null);
  const items = runs.data?.items || [];
  return html`${can("siem:write") &&
    html`<${RunForm} rule=${rule} onResult=${(run) => {
      setResult(run);
      runs.show(0);
      onRan?.();
    }} />`}
    ${result && html`<${RunResult} run=${result} title="This run" />`}
    <section aria-labelledby="rule-runs">
      <div class="toolbar">
        <h2 id="rule-runs">Runs</h2>
        <span class="spacer"></span>
        <button type="button" onClick=${runs.reload} disabled=${runs.loading}>Refresh</button>
      </div>
      <${ErrorBox} error=${runs.error} />
      ${runs.loading && !runs.data && html`<${Loading} />`}
      ${runs.data && !items.length && html`<${Empty}>This rule has not run yet.<//>`}
      ${items.length > 0 &&
      html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">Started</th><th scope="col">Kind</th><th scope="col">Window</th><th scope="col">Status</th>
          <th scope="col">Matches</th><th scope="col">Alerts</th><th scope="col">Suppressed</th><th scope="col">Seen before</th>
          <th scope="col">Duration</th><th scope="col">By</th><th scope="col">Details</th></tr></thead>
        <tbody>
          ${items.map(
            (run) => html`<tr key=${run.id} class=${open?.id === run.id ? "selected" : ""}>
              <td><${Time} value=${run.started_at} /></td>
              <td><${Badge} value=${run.kind} /></td>
              <td><small>${fullTime(run.window_start)} –<br />${fullTime(run.window_end)}</small></td>
              <td><${Status} value=${run.status} />${run.error && html`<br /><small class="chain-bad">${clip(run.error, 100)}</small>`}</td>
              <td>${num(run.matches)}</td><td>${num(run.alerts)}</td><td>${num(run.suppressed)}</td><td>${num(run.already_seen)}</td>
              <td>${run.duration_ms == null ? "—" : `${num(Math.round(run.duration_ms))} ms`}</td>
              <td>${run.requested_by}</td>
              <td class="actions"><button type="button" class="small" aria-pressed=${open?.id === run.id ? "true" : "false"}
                onClick=${() => setOpen(open?.id === run.id ? null : run)}>${open?.id === run.id ? "Hide" : "Show"}</button></td>
            </tr>`,
          )}
        </tbody>
      </table></div>`}
      <${Pager} page=${runs.data} onChange=${runs.setOffset} />
      ${open && html`<${RunResult} key=${open.id} run=${open} title=${`Run of ${fullTime(open.started_at)}`} />`}
    </section>`;
}

function RunForm({ rule, onResult }) {
  const [form, setForm] = useState({ window: "24h", start: "", end: "", mode: "preview" });
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const [run, busy, error] = useAction(async () => {
    let start;
    let end;
    if (form.window === "custom") {
      start = fromLocalInput(form.start);
      end = fromLocalInput(form.end) || new Date().toISOString();
      if (!start) {
        const err = new Error("Give the window's start.");
        err.code = "CONSOLE";
        throw err;
      }
    } else {
      const seconds = RUN_WINDOWS.find((w) => w.value === form.window).seconds;
      end = new Date().toISOString();
      start = new Date(Date.now() - seconds * 1000).toISOString();
    }
    const result = await api("POST", `/detections/rules/${encodeURIComponent(rule.id)}/run`, {
      body: { start, end, mode: form.mode },
    });
    notify(
      `${form.mode === "preview" ? "Preview" : "Backfill"}: ${num(result.matches)} match${result.matches === 1 ? "" : "es"}` +
        (form.mode === "backfill" ? `, ${num(result.alerts)} alert${result.alerts === 1 ? "" : "s"} raised` : "") +
        ".",
      result.status === "failed" ? "warn" : "good",
    );
    onResult(result);
  });
  const submit = (e) => {
    e.preventDefault();
    run();
  };
  return html`<form class="panel" aria-labelledby="rule-run-now" onSubmit=${submit}>
    <h2 id="rule-run-now">Run now</h2>
    <div class="toolbar">
      <label class="field"><span>Window</span>
        <select value=${form.window} onChange=${set("window")}>
          ${RUN_WINDOWS.map((w) => html`<option value=${w.value}>${w.label}</option>`)}
        </select></label>
      ${form.window === "custom" &&
      html`<label class="field"><span>Start</span><input type="datetime-local" value=${form.start} onInput=${set("start")} required /></label>
        <label class="field"><span>End (empty: now)</span><input type="datetime-local" value=${form.end} onInput=${set("end")} /></label>`}
      <fieldset class="toolbar">
        <legend>Mode</legend>
        <label><input type="radio" name="run-mode" value="preview" checked=${form.mode === "preview"} onChange=${set("mode")} />
          Preview <small class="muted">(raises nothing)</small></label>
        <label><input type="radio" name="run-mode" value="backfill" checked=${form.mode === "backfill"} onChange=${set("mode")} />
          Backfill <small class="muted">(raises alerts, never twice for one event)</small></label>
      </fieldset>
      <button type="submit" class=${form.mode === "backfill" ? "danger" : "primary"} disabled=${busy}>
        ${busy ? "Running…" : form.mode === "backfill" ? "Run backfill" : "Preview"}</button>
    </div>
    <${ErrorBox} error=${error} />
  </form>`;
}

function RunResult({ run, title }) {
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState(null);
  const sample = run.sample || [];
  return html`<section class="panel" aria-label=${title}>
    <h3>${title}: <${Status} value=${run.status} /> <${Badge} value=${run.kind} /></h3>
    <dl class="props">
      <dt>Window</dt><dd>${fullTime(run.window_start)} – ${fullTime(run.window_end)}</dd>
      <dt>Matches</dt><dd>${num(run.matches)}</dd>
      <dt>Alerts raised</dt><dd>${num(run.alerts)} (${num(run.suppressed)} suppressed, ${num(run.already_seen)} seen before)</dd>
      <dt>Duration</dt><dd>${run.duration_ms == null ? "—" : `${num(Math.round(run.duration_ms))} ms`}</dd>
      ${run.error && html`<dt>Error</dt><dd class="chain-bad">${run.error}</dd>`}
    </dl>
    ${!sample.length && html`<p class="muted">No sample events.</p>`}
    ${sample.length > 0 &&
    html`<h4>Sample events (${sample.length}${sample.length < run.matches ? ` of ${num(run.matches)}` : ""})</h4>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">Time</th><th scope="col">Source</th><th scope="col">Host</th><th scope="col">Event</th><th scope="col">Open</th></tr></thead>
        <tbody>
          ${sample.slice(offset, offset + SAMPLE_PAGE).map(
            (ev, i) => html`<tr key=${ev.id || i} class=${open === ev ? "selected" : ""}>
              <td><${Time} value=${ev.timestamp} /></td>
              <td>${ev.source || "—"}</td>
              <td>${ev["host.name"] || "—"}</td>
              <td class="title mono">${clip(ev["event.action"] || ev["process.command_line"] || ev.raw || JSON.stringify(ev), 140)}</td>
              <td class="actions">
                <button type="button" class="small" aria-pressed=${open === ev ? "true" : "false"} onClick=${() => setOpen(open === ev ? null : ev)}>JSON</button>
                ${ev.id && ev.timestamp && html` <a class="button small" href=${eventHref(ev)}>In SIEM</a>`}
              </td>
            </tr>`,
          )}
        </tbody>
      </table></div>
      <${Pager} total=${sample.length} limit=${SAMPLE_PAGE} offset=${offset} onChange=${setOffset} />
      ${open && html`<${Json} value=${open} />`}`}
  </section>`;
}

// -- feedback -----------------------------------------------------------------------------------

function Feedback({ rule, metrics: m, query }) {
  const list = usePage(`/detections/rules/${encodeURIComponent(rule.id)}/feedback`, CHILD_PAGE);
  const items = list.data?.items || [];
  return html`<div class="grid2">
    <section aria-labelledby="rule-feedback">
      <div class="toolbar">
        <h2 id="rule-feedback">Feedback</h2>
        ${m && html`<span class="count">precision ${pct(m.precision)} · ${num(m.feedback.true_positive)} TP · ${num(m.feedback.false_positive)} FP · ${num(m.feedback.benign)} benign</span>`}
        <span class="spacer"></span>
        <button type="button" onClick=${list.reload} disabled=${list.loading}>Refresh</button>
      </div>
      <${ErrorBox} error=${list.error} />
      ${list.loading && !list.data && html`<${Loading} />`}
      ${list.data && !items.length && html`<${Empty}>No feedback on this rule yet.<//>`}
      ${items.length > 0 &&
      html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">When</th><th scope="col">Verdict</th><th scope="col">Comment</th><th scope="col">Alert</th><th scope="col">Log event</th><th scope="col">By</th></tr></thead>
        <tbody>
          ${items.map(
            (f) => html`<tr key=${f.id}>
              <td><${Time} value=${f.created_at} /></td>
              <td><${Badge} value=${f.verdict} kind="status" /></td>
              <td class="title">${f.comment || html`<span class="muted">—</span>`}</td>
              <td>${f.alert_id ? html`<a href=${`#/alerts/${encodeURIComponent(f.alert_id)}`}>${f.alert_id}</a>` : "—"}</td>
              <td class="mono">${f.log_id ? html`<a href=${`#/siem?${new URLSearchParams({ q: `id:"${f.log_id}"`, range: "30d" })}`}>${clip(f.log_id, 13)}</a>` : "—"}</td>
              <td>${f.created_by}</td>
            </tr>`,
          )}
        </tbody>
      </table></div>`}
      <${Pager} page=${list.data} onChange=${list.setOffset} />
    </section>
    ${can("siem:write") &&
    html`<${FeedbackForm} rule=${rule} query=${query} onSaved=${() => {
      list.show(0);
    }} />`}
  </div>`;
}

function FeedbackForm({ rule, query, onSaved }) {
  const blank = { verdict: "", comment: "", alert_id: query.alert_id || "", log_id: query.log_id || "" };
  const [form, setForm] = useState(blank);
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const [send, busy, error] = useAction(async () => {
    const body = { verdict: form.verdict };
    if (form.comment.trim()) body.comment = form.comment.trim();
    if (form.alert_id.trim()) body.alert_id = form.alert_id.trim();
    if (form.log_id.trim()) body.log_id = form.log_id.trim();
    await api("POST", `/detections/rules/${encodeURIComponent(rule.id)}/feedback`, { body });
    notify("Feedback recorded.", "good");
    setForm({ verdict: "", comment: "", alert_id: "", log_id: "" });
    onSaved();
  });
  const submit = (e) => {
    e.preventDefault();
    send();
  };
  return html`<form class="panel" aria-labelledby="rule-feedback-new" onSubmit=${submit}>
    <h2 id="rule-feedback-new">Give feedback</h2>
    <fieldset>
      <legend>Verdict</legend>
      ${VERDICTS.map(
        (v) => html`<label><input type="radio" name="verdict" value=${v.value} required
          checked=${form.verdict === v.value} onChange=${set("verdict")} /> ${v.label} <small class="muted">— ${v.hint}</small></label><br />`,
      )}
    </fieldset>
    <${Field} label="Comment"><textarea value=${form.comment} onInput=${set("comment")} maxlength="4000"></textarea><//>
    <div class="toolbar">
      <${Field} label="Alert id (optional)"><input value=${form.alert_id} onInput=${set("alert_id")} maxlength="32" size="18" /><//>
      <${Field} label="Log event id (optional)"><input value=${form.log_id} onInput=${set("log_id")} maxlength="36" size="36" class="mono" /><//>
    </div>
    <${ErrorBox} error=${error} />
    <button type="submit" class="primary" disabled=${busy || !form.verdict}>${busy ? "Sending…" : "Submit feedback"}</button>
  </form>`;
}

// -- suppressions -------------------------------------------------------------------------------

function Suppressions({ rule }) {
  const list = usePage(`/detections/rules/${encodeURIComponent(rule.id)}/suppressions`, CHILD_PAGE);
  const items = list.data?.items || [];
  return html`<div class="grid2">
    <section aria-labelledby="rule-suppressions">
      <div class="toolbar">
        <h2 id="rule-suppressions">Suppressions</h2>
        <span class="muted">Events holding all of a suppression's values raise no alert until it expires.</span>
        <span class="spacer"></span>
        <button type="button" onClick=${list.reload} disabled=${list.loading}>Refresh</button>
      </div>
      <${ErrorBox} error=${list.error} />
      ${list.loading && !list.data && html`<${Loading} />`}
      ${list.data && !items.length && html`<${Empty}>No suppressions on this rule.<//>`}
      ${items.length > 0 &&
      html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">Match</th><th scope="col">Reason</th><th scope="col">State</th><th scope="col">Expires</th><th scope="col">Hits</th><th scope="col">By</th></tr></thead>
        <tbody>
          ${items.map(
            (s) => html`<tr key=${s.id}>
              <td>${Object.entries(s.match).map(([k, v]) => html`<span class="tag mono">${k} = ${v}</span>`)}</td>
              <td class="title">${s.reason}</td>
              <td><${Badge} value=${s.active ? "active" : "expired"} kind="status" /></td>
              <td><${Time} value=${s.expires_at} /></td>
              <td>${num(s.hits)}</td>
              <td>${s.created_by}, <${Time} value=${s.created_at} /></td>
            </tr>`,
          )}
        </tbody>
      </table></div>`}
      <${Pager} page=${list.data} onChange=${list.setOffset} />
    </section>
    ${can("siem:write") &&
    html`<${SuppressionForm} rule=${rule} onSaved=${() => {
      list.show(0);
    }} />`}
  </div>`;
}

function SuppressionForm({ rule, onSaved }) {
  const [pairs, setPairs] = useState([{ field: "", value: "" }]);
  const [reason, setReason] = useState("");
  const [span, setSpan] = useState("86400");
  const [until, setUntil] = useState("");
  const setPair = (index, name) => (e) => {
    const value = e.currentTarget.value;
    setPairs((list) => list.map((p, i) => (i === index ? { ...p, [name]: value } : p)));
  };
  const [save, busy, error] = useAction(async () => {
    const match = {};
    for (const p of pairs) if (p.field.trim()) match[p.field.trim()] = p.value;
    const body = { match, reason: reason.trim() };
    if (span === "until") body.until = fromLocalInput(until);
    else body.duration_seconds = Number(span);
    await api("POST", `/detections/rules/${encodeURIComponent(rule.id)}/suppressions`, { body });
    notify("Suppression created.", "good");
    setPairs([{ field: "", value: "" }]);
    setReason("");
    onSaved();
  });
  const submit = (e) => {
    e.preventDefault();
    save();
  };
  const minUntil = toLocalInput(new Date(Date.now() + 60_000).toISOString());
  return html`<form class="panel" aria-labelledby="rule-suppression-new" onSubmit=${submit}>
    <h2 id="rule-suppression-new">Suppress</h2>
    <fieldset>
      <legend>Match (all of these values; ECS names such as host.name, or original field names)</legend>
      ${pairs.map(
        (p, i) => html`<div class="toolbar" key=${i}>
          <label class="field"><span>Field ${i + 1}</span>
            <input value=${p.field} onInput=${setPair(i, "field")} maxlength="128" required=${i === 0} class="mono" size="18" /></label>
          <label class="field"><span>Value ${i + 1}</span>
            <input value=${p.value} onInput=${setPair(i, "value")} maxlength="4096" class="mono" size="22" /></label>
          ${pairs.length > 1 &&
          html`<button type="button" class="small" aria-label=${`Remove field ${i + 1}`}
            onClick=${() => setPairs((list) => list.filter((_, j) => j !== i))}>Remove</button>`}
        </div>`,
      )}
      <button type="button" class="small" disabled=${pairs.length >= 20} onClick=${() => setPairs((list) => [...list, { field: "", value: "" }])}>Add a field</button>
    </fieldset>
    <${Field} label="Reason"><textarea value=${reason} onInput=${(e) => setReason(e.currentTarget.value)} required maxlength="2000"></textarea><//>
    <div class="toolbar">
      <${Field} label="For">
        <select value=${span} onChange=${(e) => setSpan(e.currentTarget.value)}>
          ${SUPPRESS_FOR.map((s) => html`<option value=${s.value}>${s.label}</option>`)}
        </select>
      <//>
      ${span === "until" &&
      html`<${Field} label="Until"><input type="datetime-local" min=${minUntil} value=${until} onInput=${(e) => setUntil(e.currentTarget.value)} required /><//>`}
    </div>
    <${ErrorBox} error=${error} />
    <button type="submit" class="primary" disabled=${busy}>${busy ? "Saving…" : "Create suppression"}</button>
  </form>`;
}
