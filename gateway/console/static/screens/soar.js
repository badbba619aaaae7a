// SOAR: playbooks (enable or disable, their steps, inputs and versions, run with typed inputs,
// a new one or a new version from YAML with every validation problem listed), their executions
// step by step (filtered, followed while they run), and the automation rules that start them
// (made from a form, enabled, disabled, deleted).
import { api, can } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Status, Tabs, Time, clip,
  fromLocalInput, fullTime, go, notify, num, toLocalInput, useAction, useLoad,
} from "../ui.js";

const LIMIT = 25;
const EXECUTION_STATUSES = ["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"];
const ACTIVE = new Set(["queued", "running", "awaiting_approval"]);
const TRIGGERS = ["alert.created", "alert.updated", "detection.matched", "investigation.finished", "network.attack"];
const OPS = {
  eq: "equals",
  ne: "does not equal",
  in: "is one of",
  not_in: "is none of",
  contains: "contains",
  gte: "is at least",
  lte: "is at most",
  exists: "exists",
  matches: "matches (regex)",
};
const ACTION_TYPES = {
  run_playbook: "Run a playbook",
  dispatch_investigation: "Dispatch an investigation",
  assign: "Assign the alert",
  tag: "Tag the alert",
  promote_to_case: "Promote the alert to a case",
};
const PRIORITIES = ["low", "normal", "high", "urgent"];
const SECTIONS = [
  { id: "playbooks", label: "Playbooks", href: "#/soar" },
  { id: "executions", label: "Executions", href: "#/soar/executions" },
  { id: "rules", label: "Automation rules", href: "#/soar/rules" },
];
const TEMPLATE = [
  "id: my-playbook",
  "name: My playbook",
  "description: What the playbook does, and when to run it.",
  "inputs:",
  "  alert_id: {type: string, required: true, description: The alert to work on}",
  "steps:",
  "  - id: alert",
  "    uses: alert.get",
  "    with:",
  "      alert_id: \"${{ inputs.alert_id }}\"",
  "  - id: enrich",
  "    uses: intel.enrich",
  "    if: \"length(steps.alert.output.indicators) > `0`\"",
  "    with:",
  "      alert_id: \"${{ inputs.alert_id }}\"",
  "      indicators: \"${{ steps.alert.output.indicators }}\"",
  "",
].join("\n");

const enc = encodeURIComponent;
const playbookHref = (id) => `#/soar/playbooks/${enc(id)}`;

/** `base` with the non-empty `params` as its hash query. */
function href(base, params) {
  const kept = Object.entries(params).filter(([, v]) => v != null && v !== "" && v !== 0);
  const search = new URLSearchParams(kept).toString();
  return search ? `${base}?${search}` : base;
}

const bool = (text) => (text === "true" ? true : text === "false" ? false : null);
const ms = (n) => (n == null ? "—" : n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} s`);

/** A text field's value while it is typed, reset when `value` (what is applied) changes. */
function useDraft(value) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return [draft, setDraft];
}

// --- playbooks ----------------------------------------------------------------------------------

function Playbooks({ query }) {
  const search = query.search || null;
  const enabled = query.enabled === "true" || query.enabled === "false" ? query.enabled : null;
  const builtin = query.builtin === "true" || query.builtin === "false" ? query.builtin : null;
  const offset = Math.max(0, Number.parseInt(query.offset, 10) || 0);
  const [dialog, setDialog] = useState(null); // "add" | {execute: playbook}
  const writable = can("soar:write");
  const key = JSON.stringify([search, enabled, builtin, offset]);
  const list = useLoad(() => api("GET", "/soar/playbooks", { query: { search, enabled, builtin, limit: LIMIT, offset } }), [key]);
  const change = (update) => go(href("#/soar", { search, enabled, builtin, ...update, offset: update.offset || 0 }));
  const [text, setText] = useDraft(search || "");
  const [toggle, toggling, toggleError, clearToggle] = useAction(async (playbook) => {
    const put = (item) => list.setData((page) => page && { ...page, items: page.items.map((p) => (p.id === item.id ? item : p)) });
    put({ ...playbook, enabled: !playbook.enabled }); // at once; the server's answer follows
    let saved;
    try {
      saved = await api("POST", `/soar/playbooks/${enc(playbook.id)}/toggle`, { body: { enabled: !playbook.enabled } });
    } catch (err) {
      put(playbook);
      throw err;
    }
    put(saved);
    notify(`${saved.name} ${saved.enabled ? "enabled" : "disabled"}`, "good");
  });
  const items = list.data?.items || [];
  return html`<div>
    <form class="toolbar" role="search" aria-label="Filter playbooks"
      onSubmit=${(e) => { e.preventDefault(); change({ search: text.trim() || null }); }}>
      <${Field} label="Search"><input type="search" name="search" maxlength="200" value=${text} onInput=${(e) => setText(e.currentTarget.value)} placeholder="id, name or description" /><//>
      <button type="submit">Search</button>
      <${Field} label="Enabled"><${Select} name="enabled" label="Enabled" value=${enabled} options=${["true", "false"]} onChange=${(v) => change({ enabled: v })} /><//>
      <${Field} label="Built-in"><${Select} name="builtin" label="Built-in" value=${builtin} options=${["true", "false"]} onChange=${(v) => change({ builtin: v })} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
      <span class="spacer"></span>
      ${writable && html`<button type="button" class="primary" onClick=${() => setDialog("add")}>New playbook from YAML…</button>`}
    </form>
    <${ErrorBox} error=${toggleError} onDismiss=${clearToggle} />
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading playbooks" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No playbook matches.<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Playbooks" aria-busy=${list.loading}>
      <thead><tr><th>Playbook</th><th>Steps</th><th>Inputs</th><th>Version</th><th>State</th><th>Updated</th><th>Actions</th></tr></thead>
      <tbody>${items.map((p) => html`<tr key=${p.id}>
        <td class="title"><a href=${playbookHref(p.id)}>${p.name}</a> <span class="mono muted">${p.id}</span>${p.builtin ? html` <${Badge} value="built-in" />` : ""}
          ${p.description && html`<div class="muted">${clip(p.description, 140)}</div>`}</td>
        <td>${num(p.steps)}</td>
        <td>${Object.keys(p.inputs || {}).map((name) => html`<span class="tag">${name}</span>`)}</td>
        <td>v${p.version}</td>
        <td>${writable
          ? html`<label><input type="checkbox" checked=${p.enabled} disabled=${toggling} aria-label=${`${p.name} enabled`}
              onChange=${() => toggle(p)} />\u00a0enabled</label>`
          : html`<${Badge} value=${p.enabled ? "enabled" : "disabled"} kind="status" />`}</td>
        <td>${p.updated_by}, <${Time} value=${p.updated_at} /></td>
        <td class="actions">${writable && html`<button type="button" class="small" disabled=${!p.enabled}
          title=${p.enabled ? "" : "Enable it first"} onClick=${() => setDialog({ execute: p })}>Execute…</button>`}
          <a class="button small" href=${href("#/soar/executions", { playbook_id: p.id })}>Executions</a></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${(next) => change({ offset: next })} />
    <${Dialog} title="New playbook from YAML" open=${dialog === "add"} onClose=${() => setDialog(null)}>
      <${Definition} onDone=${(saved) => { setDialog(null); list.reload(); go(playbookHref(saved.id)); }} onClose=${() => setDialog(null)} />
    <//>
    <${Dialog} title=${dialog?.execute ? `Execute ${dialog.execute.name}` : "Execute"} open=${Boolean(dialog?.execute)} onClose=${() => setDialog(null)}>
      ${dialog?.execute && html`<${Execute} playbook=${dialog.execute} onClose=${() => setDialog(null)} />`}
    <//>
  </div>`;
}

/** A playbook's definition as text, validated and saved by the server: a new playbook, or the
 * next version of the one with its id. */
function Definition({ initial = TEMPLATE, initialFormat = "application/yaml", onDone, onClose }) {
  const [text, setText] = useState(initial);
  const [format, setFormat] = useState(initialFormat);
  const [readError, setReadError] = useState(null);
  const [save, busy, error, clear] = useAction(async (event) => {
    event.preventDefault();
    const saved = await api("POST", "/soar/playbooks", { text, contentType: format });
    notify(`Playbook ${saved.id} saved: version ${saved.version}`, "good");
    onDone(saved);
  });
  const load = (event) => {
    const file = event.currentTarget.files?.[0];
    if (!file) return;
    setReadError(null);
    const reader = new FileReader();
    reader.onload = () => {
      setText(String(reader.result || ""));
      if (/\.json$/i.test(file.name)) setFormat("application/json");
      else if (/\.ya?ml$/i.test(file.name)) setFormat("application/yaml");
    };
    reader.onerror = () => setReadError({ code: "CONSOLE", message: `${file.name} could not be read: ${reader.error?.message || "unknown error"}` });
    reader.readAsText(file);
  };
  return html`<form onSubmit=${save} aria-label="Playbook definition">
    <p class="muted">A playbook names its <span class="mono">id</span> (a slug), <span class="mono">name</span>, typed <span class="mono">inputs</span>
      and <span class="mono">steps</span>; each step <span class="mono">uses</span> a step kind <span class="mono">with</span> parameters,
      where <span class="mono">${"${{ … }}"}</span> holds a JMESPath expression. An id that exists already gets a new version. The server checks it all and names every problem.</p>
    <div class="toolbar">
      <${Field} label="Format"><select value=${format} onChange=${(e) => setFormat(e.currentTarget.value)}>
        <option value="application/yaml">YAML</option><option value="application/json">JSON</option></select><//>
      <${Field} label="Load from a file" hint="optional: replaces the text below"><input type="file" accept=".yaml,.yml,.json,application/yaml,application/json,text/yaml" onChange=${load} /><//>
    </div>
    <${ErrorBox} error=${readError} />
    <${Field} label="Definition"><textarea class="mono" rows="18" required spellcheck="false" maxlength="262144"
      value=${text} onInput=${(e) => setText(e.currentTarget.value)}></textarea><//>
    <${ErrorBox} error=${error} onDismiss=${clear} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>${busy ? "Validating…" : "Validate and save"}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

/** The inputs of a playbook as typed fields; what the server accepted, with a link to follow it. */
function Execute({ playbook, onClose, onDone }) {
  const inputs = Object.entries(playbook.inputs || {});
  const [accepted, setAccepted] = useState(null);
  const [run, busy, error, clear] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const given = {};
    for (const [name, spec] of inputs) {
      const type = spec?.type || "string";
      const raw = form.get(name);
      if (type === "boolean") {
        if (raw !== "") given[name] = raw === "true";
        continue;
      }
      if (raw === null || String(raw).trim() === "") continue;
      if (type === "integer" || type === "number") given[name] = Number(raw);
      else if (type === "object" || type === "array") {
        try {
          given[name] = JSON.parse(raw);
        } catch (err) {
          throw { code: "CONSOLE", message: `The input ${name} is not JSON: ${err.message}` };
        }
      } else given[name] = String(raw);
    }
    const result = await api("POST", `/soar/playbooks/${enc(playbook.id)}/execute`, { body: { inputs: given } });
    setAccepted(result);
    onDone?.(result);
  });
  if (accepted) {
    return html`<div role="status">
      <p class="notice good">Execution <strong class="mono">${accepted.id}</strong> of ${accepted.playbook_id} v${accepted.playbook_version}
        is <strong>${accepted.status.replaceAll("_", " ")}</strong> in <strong>${accepted.mode.replaceAll("_", " ")}</strong> mode.
        ${accepted.mode === "dry_run" ? " In dry run its response steps are recorded, not carried out." : ""}
        ${accepted.mode === "monitor" ? " In monitor mode its response steps are proposed, not carried out." : ""}</p>
      <div class="toolbar"><a class="button" href=${href("#/soar/executions", { playbook_id: accepted.playbook_id, open: accepted.id })} onClick=${onClose}>Follow the execution</a>
        <button type="button" onClick=${onClose}>Close</button></div>
    </div>`;
  }
  return html`<form onSubmit=${run} aria-label=${`Inputs of ${playbook.name}`}>
    ${inputs.length === 0 && html`<p class="muted">This playbook takes no inputs.</p>`}
    ${inputs.map(([name, spec]) => {
      const type = spec?.type || "string";
      const hint = [type, spec?.description, spec?.default != null ? `default ${JSON.stringify(spec.default)}` : null].filter(Boolean).join(" · ");
      const label = `${name}${spec?.required ? " (required)" : ""}`;
      if (type === "boolean") {
        return html`<${Field} label=${label} hint=${hint}><select name=${name} required=${Boolean(spec?.required)}>
          <option value="">${spec?.default != null ? `default (${spec.default})` : "not given"}</option><option value="true">true</option><option value="false">false</option></select><//>`;
      }
      if (type === "object" || type === "array") {
        return html`<${Field} label=${label} hint=${`${hint} · JSON`}><textarea name=${name} class="mono" rows="3" required=${Boolean(spec?.required)} spellcheck="false"
          placeholder=${spec?.default != null ? JSON.stringify(spec.default) : type === "array" ? "[]" : "{}"}></textarea><//>`;
      }
      return html`<${Field} label=${label} hint=${hint}><input name=${name} required=${Boolean(spec?.required)}
        type=${type === "integer" || type === "number" ? "number" : "text"} step=${type === "number" ? "any" : type === "integer" ? "1" : undefined}
        placeholder=${spec?.default != null ? String(spec.default) : ""} autocomplete="off" /><//>`;
    })}
    <p class="muted">The run follows the platform's mode: response steps are recorded in dry run, proposed in monitor mode, and carried out in active mode (or held for a human when the guardrail policy says so).</p>
    <${ErrorBox} error=${error} onDismiss=${clear} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>${busy ? "Queueing…" : "Execute"}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function Playbook({ id }) {
  const found = useLoad(() => api("GET", `/soar/playbooks/${enc(id)}`), [id]);
  const [dialog, setDialog] = useState(null);
  const writable = can("soar:write");
  const [toggle, toggling, toggleError, clearToggle] = useAction(async () => {
    const saved = await api("POST", `/soar/playbooks/${enc(id)}/toggle`, { body: { enabled: !found.data.enabled } });
    found.setData((p) => p && { ...p, ...saved });
    notify(`${saved.name} ${saved.enabled ? "enabled" : "disabled"}`, "good");
  });
  if (found.error && !found.data) return html`<div><p><a href="#/soar">← All playbooks</a></p><${ErrorBox} error=${found.error} /></div>`;
  if (!found.data) return html`<${Loading} what="Loading the playbook" />`;
  const p = found.data;
  const steps = p.definition?.steps || [];
  const inputs = Object.entries(p.definition?.inputs || p.inputs || {});
  const counts = Object.entries(p.executions || {});
  return html`<div>
    <p><a href="#/soar">← All playbooks</a></p>
    <div class="toolbar">
      <h2>${p.name}</h2><span class="mono muted">${p.id} v${p.version}</span>
      ${p.builtin ? html`<${Badge} value="built-in" />` : ""}<${Badge} value=${p.enabled ? "enabled" : "disabled"} kind="status" />
      <span class="spacer"></span>
      ${writable && html`<button type="button" disabled=${toggling} onClick=${() => toggle()}>${p.enabled ? "Disable" : "Enable"}</button>
        <button type="button" class="primary" disabled=${!p.enabled} onClick=${() => setDialog("execute")}>Execute…</button>
        <button type="button" onClick=${() => setDialog("version")}>New version…</button>`}
    </div>
    <${ErrorBox} error=${toggleError} onDismiss=${clearToggle} />
    ${!p.enabled && writable && html`<p class="notice warn">This playbook is disabled: enable it to execute it (rules that name it skip it meanwhile).</p>`}
    ${p.description && html`<p>${p.description}</p>`}
    <dl class="props panel">
      <dt>Created</dt><dd>by ${p.created_by}, ${fullTime(p.created_at)}</dd>
      <dt>Updated</dt><dd>by ${p.updated_by}, ${fullTime(p.updated_at)}</dd>
      <dt>Executions</dt><dd>${counts.length === 0 ? "none yet" : counts.map(([status, n]) => html`<a class="tag" href=${href("#/soar/executions", { playbook_id: p.id, status })}>${status.replaceAll("_", " ")}: ${num(n)}</a>`)}</dd>
    </dl>
    <h3>Inputs (${inputs.length})</h3>
    ${inputs.length === 0 ? html`<p class="muted">None.</p>` : html`<div class="table-wrap"><table aria-label="Inputs">
      <thead><tr><th>Name</th><th>Type</th><th>Required</th><th>Default</th><th>Description</th></tr></thead>
      <tbody>${inputs.map(([name, spec]) => html`<tr key=${name}><td class="mono">${name}</td><td>${spec?.type || "string"}</td><td>${spec?.required ? "yes" : "no"}</td>
        <td class="mono">${spec?.default != null ? JSON.stringify(spec.default) : "—"}</td><td>${spec?.description || ""}</td></tr>`)}</tbody>
    </table></div>`}
    <h3>Steps (${steps.length})</h3>
    <div class="table-wrap"><table aria-label="Steps">
      <thead><tr><th>#</th><th>Step</th><th>Uses</th><th>Runs</th><th>On error</th><th>Parameters</th></tr></thead>
      <tbody>${steps.map((s, n) => html`<tr key=${s.id}>
        <td>${n + 1}</td>
        <td><span class="mono">${s.id}</span>${s.name && html`<div class="muted">${s.name}</div>`}</td>
        <td><span class="tag">${s.uses}</span></td>
        <td>${s.if ? html`<div>if <code>${s.if}</code></div>` : ""}${s.foreach ? html`<div>for each <code>${s.foreach}</code></div>` : ""}${!s.if && !s.foreach ? "always" : ""}
          <div class="muted">timeout ${s.timeout ?? 30} s${s.retries ? `, ${s.retries} retr${s.retries === 1 ? "y" : "ies"}` : ""}</div></td>
        <td>${s.on_error || "stop"}</td>
        <td>${s.with && Object.keys(s.with).length ? html`<details><summary>${Object.keys(s.with).join(", ")}</summary><${Json} value=${s.with} /></details>` : html`<span class="muted">—</span>`}</td>
      </tr>`)}</tbody>
    </table></div>
    <h3>Versions</h3>
    ${(p.versions || []).length === 0 ? html`<p class="muted">None recorded.</p>` : html`<ul class="plain">${[...p.versions].reverse().map((v) => html`<li key=${v.version}>
      v${v.version} <span class="muted">(${v.media})</span> by ${v.created_by}, ${fullTime(v.created_at)}</li>`)}</ul>`}
    <h3>Executions of this playbook</h3>
    <${Executions} query=${{}} playbookId=${p.id} embedded=${true} />
    <${Dialog} title=${`Execute ${p.name}`} open=${dialog === "execute"} onClose=${() => setDialog(null)}>
      <${Execute} playbook=${{ ...p, inputs: Object.fromEntries(inputs) }} onClose=${() => setDialog(null)} onDone=${() => found.reload()} />
    <//>
    <${Dialog} title=${`New version of ${p.id}`} open=${dialog === "version"} onClose=${() => setDialog(null)}>
      <${Definition} initial=${`${JSON.stringify(p.definition, null, 2)}\n`} initialFormat="application/json"
        onDone=${() => { setDialog(null); found.reload(); }} onClose=${() => setDialog(null)} />
    <//>
  </div>`;
}

// --- executions ---------------------------------------------------------------------------------

function StepError({ error }) {
  if (!error) return null;
  if (typeof error === "string") return html`<div class="chain-bad">${error}</div>`;
  return html`<div class="chain-bad">${error.code ? html`<span class="mono">${error.code}</span> ` : ""}${error.message || error.reason || JSON.stringify(error)}</div>`;
}

function Steps({ execution }) {
  const heading = useRef(null);
  useEffect(() => {
    heading.current?.focus();
  }, [execution.id]);
  const steps = execution.steps || [];
  return html`<section class="panel" aria-labelledby="execution-title" id="execution-steps">
    <h3 id="execution-title" tabindex="-1" ref=${heading}>Execution ${execution.id}: ${execution.playbook_id} v${execution.playbook_version}</h3>
    ${execution.status === "awaiting_approval" && html`<p class="notice warn">A step waits for a human decision: decide it on the <a href="#/approvals">Approvals</a> screen.</p>`}
    ${execution.error && html`<p class="error">${execution.error}</p>`}
    <dl class="props">
      <dt>Status</dt><dd><${Status} value=${execution.status} /> in ${execution.mode.replaceAll("_", " ")} mode, attempt ${execution.attempts}</dd>
      <dt>Requested</dt><dd>by ${execution.requested_by}, ${fullTime(execution.created_at)}${execution.depth ? ` (automation depth ${execution.depth})` : ""}</dd>
      <dt>Ran</dt><dd>${execution.started_at ? fullTime(execution.started_at) : "not yet"}${execution.finished_at ? ` to ${fullTime(execution.finished_at)}` : ""}</dd>
    </dl>
    ${steps.length === 0 ? html`<p class="muted">No step has run yet.</p>` : html`<div class="table-wrap"><table aria-label="Steps run">
      <thead><tr><th>#</th><th>Step</th><th>Uses</th><th>Status</th><th>Attempts</th><th>Took</th><th>Started</th><th>Result</th></tr></thead>
      <tbody>${steps.map((s) => html`<tr key=${s.key}>
        <td>${s.position + 1}${s.item != null ? html`<span class="muted"> · item ${s.item}</span>` : ""}</td>
        <td class="mono">${s.step_id}</td><td><span class="tag">${s.uses}</span></td>
        <td><${Status} value=${s.status} />${s.status === "awaiting_approval" ? html` <a href="#/approvals">decide</a>` : ""}</td>
        <td>${s.attempts}</td><td>${ms(s.duration_ms)}</td><td>${fullTime(s.started_at)}</td>
        <td><${StepError} error=${s.error} />
          ${s.guardrail && html`<div class="muted">guardrail: ${s.guardrail.decision || s.guardrail.outcome || ""}${s.guardrail.mode ? ` (${s.guardrail.mode})` : ""}</div>`}
          ${(s.inputs != null || s.output != null || s.guardrail) && html`<details><summary>inputs and output</summary><${Json} value=${{ inputs: s.inputs, output: s.output, guardrail: s.guardrail }} /></details>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <details><summary>Inputs and trigger</summary><${Json} value=${{ inputs: execution.inputs, trigger: execution.trigger }} /></details>
  </section>`;
}

/** Executions, newest first: filtered from the address (or by `playbookId` when embedded in a
 * playbook), refreshed while one on the page is still running. */
function Executions({ query, playbookId = null, embedded = false }) {
  const [local, setLocal] = useState({ status: null, offset: 0, open: null });
  const state = embedded
    ? { playbook_id: playbookId, since: null, until: null, ...local }
    : {
        playbook_id: query.playbook_id || null,
        status: EXECUTION_STATUSES.includes(query.status) ? query.status : null,
        since: query.since || null,
        until: query.until || null,
        offset: Math.max(0, Number.parseInt(query.offset, 10) || 0),
        open: query.open || null,
      };
  const change = (update) => {
    if (embedded) setLocal((s) => ({ ...s, offset: 0, ...update }));
    else go(href("#/soar/executions", { ...state, offset: 0, open: null, ...update }));
  };
  const [follow, setFollow] = useState(true);
  const [playbookText, setPlaybookText] = useDraft(state.playbook_id || "");
  const [since, setSince] = useDraft(toLocalInput(state.since));
  const [until, setUntil] = useDraft(toLocalInput(state.until));
  const key = JSON.stringify([state.playbook_id, state.status, state.since, state.until, state.offset]);
  const list = useLoad(() => api("GET", "/soar/executions", {
    query: { playbook_id: state.playbook_id, status: state.status, since: state.since, until: state.until, limit: LIMIT, offset: state.offset },
  }), [key]);
  const items = list.data?.items || [];
  const running = items.some((x) => ACTIVE.has(x.status));
  useEffect(() => {
    if (!follow || !running) return undefined;
    const timer = setInterval(() => list.reload(), 3000);
    return () => clearInterval(timer);
  }, [follow, running, list.reload]);
  const opened = items.find((x) => x.id === state.open);
  const open = (id) => change({ open: state.open === id ? null : id, offset: state.offset });
  return html`<div>
    ${!embedded && html`<form class="toolbar" role="search" aria-label="Filter executions"
      onSubmit=${(e) => {
        e.preventDefault();
        change({ playbook_id: playbookText.trim() || null, since: fromLocalInput(since), until: fromLocalInput(until) });
      }}>
      <${Field} label="Playbook id"><input name="playbook_id" maxlength="64" value=${playbookText} onInput=${(e) => setPlaybookText(e.currentTarget.value)} autocomplete="off" /><//>
      <${Field} label="Queued from"><input type="datetime-local" name="since" value=${since} onInput=${(e) => setSince(e.currentTarget.value)} /><//>
      <${Field} label="Queued before"><input type="datetime-local" name="until" value=${until} onInput=${(e) => setUntil(e.currentTarget.value)} /><//>
      <button type="submit">Apply</button>
      <${Field} label="Status"><${Select} name="status" label="Status" value=${state.status} options=${EXECUTION_STATUSES} onChange=${(v) => change({ status: v })} /><//>
      ${(state.playbook_id || state.status || state.since || state.until) && html`<a class="button" href="#/soar/executions">Clear filters</a>`}
      <button type="button" onClick=${list.reload}>Refresh</button>
      <label><input type="checkbox" checked=${follow} onChange=${(e) => setFollow(e.currentTarget.checked)} /> Follow running executions</label>
    </form>`}
    ${embedded && html`<div class="toolbar">
      <${Field} label="Status"><${Select} name="status" label="Status" value=${state.status} options=${EXECUTION_STATUSES} onChange=${(v) => change({ status: v })} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
      <a class="button" href=${href("#/soar/executions", { playbook_id: playbookId })}>All its executions</a>
    </div>`}
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading executions" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No executions${state.playbook_id || state.status ? " match" : " yet"}.<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Executions" aria-busy=${list.loading}>
      <thead><tr><th>Execution</th><th>Playbook</th><th>Status</th><th>Mode</th><th>Steps</th><th>By</th><th>Queued</th><th>Finished</th></tr></thead>
      <tbody>${items.map((x) => html`<tr key=${x.id} class=${state.open === x.id ? "selected" : ""}>
        <td><button type="button" class="link mono" aria-expanded=${state.open === x.id} aria-controls="execution-steps" onClick=${() => open(x.id)}>${x.id}</button></td>
        <td><a href=${playbookHref(x.playbook_id)}>${x.playbook_id}</a> v${x.playbook_version}</td>
        <td><${Status} value=${x.status} />${x.status === "awaiting_approval" ? html` <a href="#/approvals">decide</a>` : ""}
          ${x.error && html`<div class="muted">${clip(x.error, 120)}</div>`}</td>
        <td>${x.mode.replaceAll("_", " ")}</td>
        <td>${num((x.steps || []).length)}</td>
        <td>${x.requested_by}${x.trigger?.kind && x.trigger.kind !== "manual" ? html` <span class="muted">(${x.trigger.kind})</span>` : ""}</td>
        <td><${Time} value=${x.created_at} /></td><td><${Time} value=${x.finished_at} /></td>
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${(next) => change({ offset: next })} />
    ${opened && html`<${Steps} key=${opened.id} execution=${opened} />`}
    ${state.open && list.data && !opened && html`<p class="muted">Execution ${state.open} is not on this page.</p>`}
  </div>`;
}

// --- automation rules ---------------------------------------------------------------------------

/** A condition's value as typed: a list for in/not_in, true/false for exists, JSON scalars
 * (numbers, true, false, null, "quoted text") as such, any other text as text. */
function conditionValue(op, raw) {
  const text = String(raw ?? "").trim();
  if (op === "exists") return text !== "false";
  if (op === "in" || op === "not_in") {
    if (text.startsWith("[")) {
      try {
        return JSON.parse(text);
      } catch {
        // not JSON: the comma-separated form below
      }
    }
    return text.split(",").map((s) => s.trim()).filter(Boolean);
  }
  if (op === "matches") return text;
  if (/^(-?\d+(\.\d+)?|true|false|null|".*")$/.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

const describeValue = (v) => (Array.isArray(v) ? v.map((x) => JSON.stringify(x)).join(", ") : JSON.stringify(v));
const describeAction = (a) => {
  switch (a.type) {
    case "run_playbook": return `run ${a.playbook_id}${a.inputs && Object.keys(a.inputs).length ? ` with ${Object.keys(a.inputs).join(", ")}` : ""}`;
    case "dispatch_investigation": return `investigate (${a.priority || "normal"} priority)`;
    case "assign": return `assign to ${a.assignee}`;
    case "tag": return `tag ${(a.tags || []).join(", ")}`;
    case "promote_to_case": return "promote to a case";
    default: return JSON.stringify(a);
  }
};

let rowId = 0;
const newCondition = () => ({ key: ++rowId, field: "severity", op: "eq", value: "critical" });
const newAction = () => ({ key: ++rowId, type: "dispatch_investigation", priority: "normal", playbook_id: "", inputs: "", assignee: "", tags: "" });

function NewRule({ onDone, onClose }) {
  const playbooks = useLoad(() => api("GET", "/soar/playbooks", { query: { limit: 500 } }), []);
  const [conditions, setConditions] = useState(() => [newCondition()]);
  const [actions, setActions] = useState(() => [newAction()]);
  const edit = (setter, key, change) => setter((rows) => rows.map((r) => (r.key === key ? { ...r, ...change } : r)));
  const [create, busy, error, clear] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = {
      name: form.get("name").trim(),
      trigger: form.get("trigger"),
      enabled: form.get("enabled") === "on",
      max_per_minute: Number(form.get("max_per_minute")),
      max_depth: Number(form.get("max_depth")),
      conditions: conditions.filter((c) => c.field.trim()).map((c) => ({ field: c.field.trim(), op: c.op, value: conditionValue(c.op, c.value) })),
      actions: actions.map((a, n) => {
        if (a.type === "run_playbook") {
          let inputs = {};
          if (a.inputs.trim()) {
            try {
              inputs = JSON.parse(a.inputs);
            } catch (err) {
              throw { code: "CONSOLE", message: `Action ${n + 1}: the inputs are not JSON: ${err.message}` };
            }
          }
          return { type: a.type, playbook_id: a.playbook_id, inputs };
        }
        if (a.type === "dispatch_investigation") return { type: a.type, priority: a.priority };
        if (a.type === "assign") return { type: a.type, assignee: a.assignee.trim() };
        if (a.type === "tag") return { type: a.type, tags: a.tags.split(/[\s,]+/).filter(Boolean) };
        return { type: a.type };
      }),
    };
    if (form.get("description").trim()) body.description = form.get("description");
    const rule = await api("POST", "/soar/rules", { body });
    notify(`Rule ${rule.name} created${rule.enabled ? "" : " (disabled)"}`, "good");
    onDone(rule);
  });
  const ids = (playbooks.data?.items || []).map((p) => p.id);
  return html`<form onSubmit=${create} aria-label="New automation rule">
    <${Field} label="Name"><input name="name" required maxlength="200" autofocus /><//>
    <${Field} label="Description" hint="optional"><input name="description" maxlength="5000" /><//>
    <div class="toolbar">
      <${Field} label="When"><select name="trigger">${TRIGGERS.map((t) => html`<option value=${t}>${t}</option>`)}</select><//>
      <${Field} label="At most per minute"><input name="max_per_minute" type="number" min="1" max="10000" defaultValue="60" required /><//>
      <${Field} label="Loop depth" hint="automation firings deep"><input name="max_depth" type="number" min="0" max="10" defaultValue="2" required /><//>
      <label><input type="checkbox" name="enabled" defaultChecked /> Enabled</label>
    </div>
    <fieldset><legend>If all of these hold (none: every event)</legend>
      ${conditions.map((c, n) => html`<div class="toolbar" key=${c.key}>
        <${Field} label=${`Field ${n + 1}`}><input value=${c.field} maxlength="300" required placeholder="severity, entities.0.value…"
          onInput=${(e) => edit(setConditions, c.key, { field: e.currentTarget.value })} /><//>
        <${Field} label="Test"><select value=${c.op} onChange=${(e) => edit(setConditions, c.key, { op: e.currentTarget.value })}>
          ${Object.entries(OPS).map(([op, label]) => html`<option value=${op}>${label}</option>`)}</select><//>
        ${c.op === "exists"
          ? html`<${Field} label="Value"><select value=${c.value === "false" ? "false" : "true"} onChange=${(e) => edit(setConditions, c.key, { value: e.currentTarget.value })}>
              <option value="true">yes</option><option value="false">no</option></select><//>`
          : html`<${Field} label="Value" hint=${c.op === "in" || c.op === "not_in" ? "comma-separated, or a JSON list" : c.op === "matches" ? "a regular expression" : "text; numbers, true/false as such"}>
              <input value=${c.value} maxlength="1000" onInput=${(e) => edit(setConditions, c.key, { value: e.currentTarget.value })} /><//>`}
        <button type="button" class="small" aria-label=${`Remove condition ${n + 1}`} onClick=${() => setConditions((rows) => rows.filter((r) => r.key !== c.key))}>Remove</button>
      </div>`)}
      <button type="button" class="small" disabled=${conditions.length >= 20} onClick=${() => setConditions((rows) => [...rows, { ...newCondition(), field: "", value: "" }])}>Add a condition</button>
    </fieldset>
    <fieldset><legend>Then, in order</legend>
      ${actions.map((a, n) => html`<div class="toolbar" key=${a.key}>
        <${Field} label=${`Action ${n + 1}`}><select value=${a.type} onChange=${(e) => edit(setActions, a.key, { type: e.currentTarget.value })}>
          ${Object.entries(ACTION_TYPES).map(([type, label]) => html`<option value=${type}>${label}</option>`)}</select><//>
        ${a.type === "run_playbook" && html`<${Field} label="Playbook"><select value=${a.playbook_id} required onChange=${(e) => edit(setActions, a.key, { playbook_id: e.currentTarget.value })}>
            <option value="">choose…</option>${ids.map((id) => html`<option value=${id}>${id}</option>`)}</select><//>
          <${Field} label="Inputs" hint=${"JSON; ${{ event.id }} reads the event"}><input class="mono" value=${a.inputs} placeholder=${"{\"alert_id\": \"${{ event.id }}\"}"} size="36"
            onInput=${(e) => edit(setActions, a.key, { inputs: e.currentTarget.value })} /><//>`}
        ${a.type === "dispatch_investigation" && html`<${Field} label="Priority"><select value=${a.priority} onChange=${(e) => edit(setActions, a.key, { priority: e.currentTarget.value })}>
          ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}</select><//>`}
        ${a.type === "assign" && html`<${Field} label="Assignee"><input value=${a.assignee} required maxlength="64" onInput=${(e) => edit(setActions, a.key, { assignee: e.currentTarget.value })} /><//>`}
        ${a.type === "tag" && html`<${Field} label="Tags" hint="separated by commas"><input value=${a.tags} required maxlength="1000" onInput=${(e) => edit(setActions, a.key, { tags: e.currentTarget.value })} /><//>`}
        <button type="button" class="small" disabled=${actions.length <= 1} aria-label=${`Remove action ${n + 1}`} onClick=${() => setActions((rows) => rows.filter((r) => r.key !== a.key))}>Remove</button>
      </div>`)}
      <button type="button" class="small" disabled=${actions.length >= 10} onClick=${() => setActions((rows) => [...rows, newAction()])}>Add an action</button>
    </fieldset>
    <${ErrorBox} error=${playbooks.error} />
    <${ErrorBox} error=${error} onDismiss=${clear} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>${busy ? "Creating…" : "Create the rule"}</button>
      <button type="button" onClick=${onClose}>Cancel</button></div>
  </form>`;
}

function Rules({ query }) {
  const trigger = TRIGGERS.includes(query.trigger) ? query.trigger : null;
  const enabled = query.enabled === "true" || query.enabled === "false" ? query.enabled : null;
  const offset = Math.max(0, Number.parseInt(query.offset, 10) || 0);
  const [dialog, setDialog] = useState(null); // "new" | {delete: rule}
  const writable = can("soar:write");
  const key = JSON.stringify([trigger, enabled, offset]);
  const list = useLoad(() => api("GET", "/soar/rules", { query: { trigger, enabled, limit: LIMIT, offset } }), [key]);
  const change = (update) => go(href("#/soar/rules", { trigger, enabled, offset: 0, ...update }));
  const [act, busy, error, clear] = useAction(async (kind, rule) => {
    if (kind === "toggle") {
      const put = (item) => list.setData((page) => page && { ...page, items: page.items.map((r) => (r.id === item.id ? item : r)) });
      put({ ...rule, enabled: !rule.enabled }); // at once; the server's answer follows
      let saved;
      try {
        saved = await api("POST", `/soar/rules/${enc(rule.id)}/toggle`);
      } catch (err) {
        put(rule);
        throw err;
      }
      put(saved);
      notify(`Rule ${saved.name} ${saved.enabled ? "enabled" : "disabled"}`, "good");
    } else if (kind === "delete") {
      await api("DELETE", `/soar/rules/${enc(rule.id)}`);
      setDialog(null);
      notify(`Rule ${rule.name} deleted`, "good");
      list.reload();
    }
  });
  const items = list.data?.items || [];
  return html`<div>
    <div class="toolbar">
      <${Field} label="Trigger"><${Select} name="trigger" label="Trigger" value=${trigger} options=${TRIGGERS} onChange=${(v) => change({ trigger: v })} /><//>
      <${Field} label="Enabled"><${Select} name="enabled" label="Enabled" value=${enabled} options=${["true", "false"]} onChange=${(v) => change({ enabled: v })} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
      <span class="spacer"></span>
      ${writable && html`<button type="button" class="primary" onClick=${() => setDialog("new")}>New rule…</button>`}
    </div>
    <${ErrorBox} error=${dialog?.delete ? null : error} onDismiss=${clear} />
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading automation rules" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No automation rules${trigger || enabled ? " match" : " yet"}.<//>`}
    ${items.length > 0 && html`<div class="table-wrap"><table aria-label="Automation rules" aria-busy=${list.loading}>
      <thead><tr><th>Rule</th><th>When</th><th>If</th><th>Then</th><th>Activity</th><th>State</th>${writable && html`<th>Actions</th>`}</tr></thead>
      <tbody>${items.map((r) => html`<tr key=${r.id}>
        <td class="title"><strong>${r.name}</strong> <span class="mono muted">${r.id}</span>${r.description && html`<div class="muted">${r.description}</div>`}
          <div class="muted">by ${r.created_by}, <${Time} value=${r.created_at} /></div></td>
        <td><span class="tag">${r.trigger}</span></td>
        <td>${r.conditions.length === 0 ? html`<span class="muted">every event</span>` : html`<ul class="plain">${r.conditions.map((c) => html`<li><span class="mono">${c.field}</span> ${OPS[c.op] || c.op}${c.op === "exists" ? (c.value === false ? " (no)" : "") : html` <span class="mono">${describeValue(c.value)}</span>`}</li>`)}</ul>`}</td>
        <td><ol>${r.actions.map((a) => html`<li>${a.type === "run_playbook" ? html`run <a href=${playbookHref(a.playbook_id)}>${a.playbook_id}</a>` : describeAction(a)}</li>`)}</ol>
          <div class="muted">at most ${num(r.max_per_minute)}/min, depth ${r.max_depth}</div></td>
        <td>fired ${num(r.fired)}${r.failed ? html`, <span class="chain-bad">failed ${num(r.failed)}</span>` : ""}${r.skipped_rate ? `, ${num(r.skipped_rate)} over the rate` : ""}${r.skipped_loop ? `, ${num(r.skipped_loop)} loops stopped` : ""}
          <div class="muted">last <${Time} value=${r.last_fired_at} /></div></td>
        <td>${writable
          ? html`<label><input type="checkbox" checked=${r.enabled} disabled=${busy} aria-label=${`${r.name} enabled`} onChange=${() => act("toggle", r)} />\u00a0enabled</label>`
          : html`<${Badge} value=${r.enabled ? "enabled" : "disabled"} kind="status" />`}</td>
        ${writable && html`<td class="actions">
          <button type="button" class="small danger" disabled=${busy} onClick=${() => { clear(); setDialog({ delete: r }); }}>Delete…</button></td>`}
      </tr>`)}</tbody>
    </table></div>`}
    <${Pager} page=${list.data} onChange=${(next) => change({ offset: next })} />
    <${Dialog} title="New automation rule" open=${dialog === "new"} onClose=${() => setDialog(null)}>
      <${NewRule} onDone=${() => { setDialog(null); list.reload(); }} onClose=${() => setDialog(null)} />
    <//>
    <${Dialog} title="Delete the rule?" open=${Boolean(dialog?.delete)} onClose=${() => setDialog(null)}>
      ${dialog?.delete && html`<div>
        <p>Delete <strong>${dialog.delete.name}</strong>? It stops acting on ${dialog.delete.trigger} events at once.</p>
        <${ErrorBox} error=${error} onDismiss=${clear} />
        <div class="toolbar"><button type="button" class="danger" disabled=${busy} onClick=${() => act("delete", dialog.delete)}>Delete the rule</button>
          <button type="button" onClick=${() => setDialog(null)}>Cancel</button></div>
      </div>`}
    <//>
  </div>`;
}

export default function Soar({ params, query }) {
  const [section, id] = params;
  const current = section === "executions" || section === "rules" ? section : "playbooks";
  return html`<div>
    <h1>SOAR</h1>
    <${Tabs} current=${current} items=${SECTIONS} label="SOAR sections" />
    ${section === "playbooks" && id ? html`<${Playbook} key=${id} id=${id} />`
      : current === "executions" ? html`<${Executions} query=${query} />`
      : current === "rules" ? html`<${Rules} query=${query} />`
      : html`<${Playbooks} query=${query} />`}
  </div>`;
}
