// SOAR: playbooks (enable, read their steps and versions, execute with inputs, add one from
// YAML), their executions step by step, and the automation rules that start them.
import { api, can } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Status, Tabs, Time,
  notify, useAction, useLoad,
} from "../ui.js";

const LIMIT = 25;
const EXECUTION_STATUSES = ["queued", "running", "awaiting_approval", "completed", "failed", "cancelled", "unknown"];
const TRIGGERS = ["alert.created", "alert.updated", "detection.matched", "investigation.finished", "network.attack"];
const RULE_EXAMPLE = JSON.stringify(
  {
    name: "Investigate critical EDR alerts",
    trigger: "alert.created",
    conditions: [{ field: "severity", op: "eq", value: "critical" }],
    actions: [{ type: "dispatch_investigation", priority: "high" }],
  },
  null,
  2,
);
const SECTIONS = [
  { id: "playbooks", label: "Playbooks", href: "#/soar" },
  { id: "executions", label: "Executions", href: "#/soar/executions" },
  { id: "rules", label: "Automation rules", href: "#/soar/rules" },
];

function Playbooks() {
  const [offset, setOffset] = useState(0);
  const [search, setSearch] = useState("");
  const [adding, setAdding] = useState(false);
  const list = useLoad(() => api("GET", "/soar/playbooks", { query: { limit: LIMIT, offset, search } }), [offset, search]);
  const writable = can("soar:write");
  const [toggle, busy, error] = useAction(async (playbook) => {
    await api("POST", `/soar/playbooks/${encodeURIComponent(playbook.id)}/toggle`, { body: { enabled: !playbook.enabled } });
    list.reload();
  });
  return html`<div>
    <div class="toolbar">
      <${Field} label="Search"><input type="search" value=${search} maxlength="200" onChange=${(e) => { setSearch(e.currentTarget.value.trim()); setOffset(0); }} /><//>
      <span class="spacer"></span>
      ${writable && html`<button type="button" class="primary" onClick=${() => setAdding(true)}>Add a playbook…</button>`}
    </div>
    <${ErrorBox} error=${error || list.error} />
    ${list.loading && !list.data && html`<${Loading} />`}
    ${list.data?.items.length === 0 && html`<${Empty}>No playbooks match.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Playbooks">
      <thead><tr><th>Playbook</th><th>Steps</th><th>Version</th><th>Enabled</th><th>Updated</th></tr></thead>
      <tbody>${list.data.items.map((p) => html`<tr key=${p.id}>
        <td><a href=${`#/soar/playbooks/${encodeURIComponent(p.id)}`}>${p.name}</a> <span class="mono muted">${p.id}</span>${p.builtin ? html` <${Badge} value="built-in" />` : ""}
          ${p.description && html`<div class="muted">${p.description}</div>`}</td>
        <td>${p.steps}</td><td>${p.version}</td>
        <td>${writable ? html`<button type="button" class="small" aria-pressed=${p.enabled} disabled=${busy} onClick=${() => toggle(p)}>${p.enabled ? "Enabled" : "Disabled"}</button>` : p.enabled ? "yes" : "no"}</td>
        <td>${p.updated_by}, <${Time} value=${p.updated_at} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
    <${Dialog} title="Add a playbook" open=${adding} onClose=${() => setAdding(false)}>
      <${AddPlaybook} onDone=${(created) => { setAdding(false); list.reload(); location.hash = `#/soar/playbooks/${encodeURIComponent(created.id)}`; }} />
    <//>
  </div>`;
}

function AddPlaybook({ onDone }) {
  const [add, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const yaml = new FormData(event.currentTarget).get("yaml");
    const created = await api("POST", "/soar/playbooks", { text: yaml, contentType: "application/yaml" });
    notify(`Playbook ${created.id} version ${created.version} saved`, "good");
    onDone(created);
  });
  return html`<form onSubmit=${add}>
    <p class="muted">The playbook's definition in YAML (id, name, inputs, steps), as the README's SOAR section describes; a known id saves a new version.</p>
    <${Field} label="YAML"><textarea name="yaml" class="mono" rows="16" required spellcheck="false"></textarea><//>
    <${ErrorBox} error=${error} />
    <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>Validate and save</button></div>
  </form>`;
}

/** Inputs of a playbook as form fields, typed as its definition declares them. */
function Execute({ playbook, onDone }) {
  const inputs = Object.entries(playbook.inputs || {});
  const [run, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const given = {};
    for (const [name, spec] of inputs) {
      const raw = form.get(name);
      if (raw === null || raw === "") continue;
      given[name] = spec?.type === "integer" || spec?.type === "number" ? Number(raw)
        : spec?.type === "boolean" ? raw === "on"
        : spec?.type === "array" || spec?.type === "object" ? JSON.parse(raw) : raw;
    }
    const accepted = await api("POST", `/soar/playbooks/${encodeURIComponent(playbook.id)}/execute`, { body: { inputs: given } });
    notify(`Execution ${accepted.id} ${accepted.status} (${accepted.mode})`, "good");
    onDone(accepted);
  });
  return html`<form onSubmit=${run}>
    ${inputs.length === 0 && html`<p class="muted">This playbook takes no inputs.</p>`}
    ${inputs.map(([name, spec]) => html`<${Field} label=${`${name}${spec?.required ? " (required)" : ""}`} hint=${[spec?.type, spec?.description].filter(Boolean).join(": ")}>
      ${spec?.type === "boolean" ? html`<input type="checkbox" name=${name} />`
        : spec?.type === "array" || spec?.type === "object" ? html`<textarea name=${name} class="mono" placeholder="JSON"></textarea>`
        : html`<input name=${name} required=${Boolean(spec?.required)} type=${spec?.type === "integer" || spec?.type === "number" ? "number" : "text"} />`}<//>`)}
    <${ErrorBox} error=${error} />
    <button type="submit" class="primary" disabled=${busy}>Execute</button>
  </form>`;
}

function Playbook({ id }) {
  const found = useLoad(() => api("GET", `/soar/playbooks/${encodeURIComponent(id)}`), [id]);
  const [running, setRunning] = useState(false);
  if (found.error && !found.data) return html`<${ErrorBox} error=${found.error} />`;
  if (!found.data) return html`<${Loading} />`;
  const p = found.data;
  const steps = p.definition?.steps || [];
  return html`<div>
    <p><a href="#/soar">All playbooks</a></p>
    <div class="toolbar"><h2>${p.name}</h2><span class="mono muted">${p.id} v${p.version}</span>${p.enabled ? "" : html`<${Badge} value="disabled" />`}<span class="spacer"></span>
      ${can("soar:write") && html`<button type="button" class="primary" disabled=${!p.enabled} onClick=${() => setRunning(true)}>Execute…</button>`}</div>
    ${p.description && html`<p>${p.description}</p>`}
    <h3>Steps (${steps.length})</h3>
    <ol>${steps.map((s) => html`<li><strong class="mono">${s.id}</strong> uses <span class="tag">${s.uses}</span>${s.if ? html` <span class="muted">if ${s.if}</span>` : ""}
      ${s.with && html`<details><summary>with</summary><${Json} value=${s.with} /></details>`}</li>`)}</ol>
    <h3>Versions</h3>
    <ul>${(p.versions || []).map((v) => html`<li>v${v.version ?? v} ${v.created_by ? `by ${v.created_by}` : ""} ${v.created_at ? html`<${Time} value=${v.created_at} />` : ""}</li>`)}</ul>
    <h3>Executions</h3>
    <${Executions} playbookId=${p.id} />
    <${Dialog} title=${`Execute ${p.name}`} open=${running} onClose=${() => setRunning(false)}>
      <${Execute} playbook=${p} onDone=${() => { setRunning(false); found.reload(); }} />
    <//>
  </div>`;
}

function Executions({ playbookId = null }) {
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState(null);
  const [open, setOpen] = useState(null);
  const list = useLoad(() => api("GET", "/soar/executions", { query: { limit: LIMIT, offset, status, playbook_id: playbookId } }), [offset, status, playbookId]);
  return html`<div>
    <div class="toolbar"><${Field} label="Status"><${Select} name="status" value=${status} options=${EXECUTION_STATUSES} onChange=${(v) => { setStatus(v); setOffset(0); }} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button></div>
    <${ErrorBox} error=${list.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No executions.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Executions">
      <thead><tr><th>Execution</th><th>Playbook</th><th>Status</th><th>Mode</th><th>By</th><th>Started</th><th>Finished</th></tr></thead>
      <tbody>${list.data.items.map((x) => html`<tr key=${x.id} class=${open === x.id ? "selected" : ""}>
        <td><button type="button" class="link" aria-expanded=${open === x.id} onClick=${() => setOpen(open === x.id ? null : x.id)}>${x.id}</button></td>
        <td><a href=${`#/soar/playbooks/${encodeURIComponent(x.playbook_id)}`}>${x.playbook_id}</a> v${x.playbook_version}</td>
        <td><${Status} value=${x.status} />${x.error && html`<div class="muted">${x.error}</div>`}</td><td>${x.mode}</td><td>${x.requested_by}</td>
        <td><${Time} value=${x.started_at || x.created_at} /></td><td><${Time} value=${x.finished_at} /></td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
    ${open && list.data?.items.some((x) => x.id === open) && html`<${Steps} execution=${list.data.items.find((x) => x.id === open)} />`}
  </div>`;
}

function Steps({ execution }) {
  return html`<section class="panel" aria-label=${`Steps of ${execution.id}`}>
    <h3>Steps of ${execution.id}</h3>
    ${execution.status === "awaiting_approval" && html`<p class="notice warn">A step waits for a human: decide it on the <a href="#/approvals">Approvals</a> screen.</p>`}
    <div class="table-wrap"><table aria-label="Steps">
      <thead><tr><th>Step</th><th>Status</th><th>Attempts</th><th>Output</th></tr></thead>
      <tbody>${(execution.steps || []).map((s, n) => html`<tr key=${n}><td class="mono">${s.step_id || s.id}</td><td><${Status} value=${s.status} /></td><td>${s.attempts ?? ""}</td>
        <td>${s.error ? html`<span class="muted">${typeof s.error === "string" ? s.error : `${s.error.code}: ${s.error.message}`}</span>` : s.output ? html`<details><summary>output</summary><${Json} value=${s.output} /></details>` : ""}</td></tr>`)}</tbody>
    </table></div>
    <details><summary>Inputs and trigger</summary><${Json} value=${{ inputs: execution.inputs, trigger: execution.trigger }} /></details>
  </section>`;
}

function Rules() {
  const [offset, setOffset] = useState(0);
  const [trigger, setTrigger] = useState(null);
  const [adding, setAdding] = useState(false);
  const list = useLoad(() => api("GET", "/soar/rules", { query: { limit: LIMIT, offset, trigger } }), [offset, trigger]);
  const writable = can("soar:write");
  const [act, busy, error] = useAction(async (kind, rule) => {
    if (kind === "toggle") await api("POST", `/soar/rules/${encodeURIComponent(rule.id)}/toggle`);
    if (kind === "delete") await api("DELETE", `/soar/rules/${encodeURIComponent(rule.id)}`);
    list.reload();
  });
  const [create, creating, createError] = useAction(async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(new FormData(event.currentTarget).get("rule"));
    } catch (err) {
      throw { code: "AURORA-4220", message: `The rule is not JSON: ${err.message}` };
    }
    await api("POST", "/soar/rules", { body });
    setAdding(false);
    list.reload();
  });
  return html`<div>
    <div class="toolbar"><${Field} label="Trigger"><${Select} name="trigger" value=${trigger} options=${TRIGGERS} onChange=${(v) => { setTrigger(v); setOffset(0); }} /><//>
      <span class="spacer"></span>${writable && html`<button type="button" class="primary" onClick=${() => setAdding(true)}>New rule…</button>`}</div>
    <${ErrorBox} error=${error || list.error} />
    ${list.data?.items.length === 0 && html`<${Empty}>No automation rules.<//>`}
    ${list.data?.items.map((r) => html`<article class="card" key=${r.id}>
      <header><strong>${r.name}</strong> <span class="tag">${r.trigger}</span> <${Badge} value=${r.enabled ? "enabled" : "disabled"} kind="status" /><span class="spacer"></span>
        ${writable && html`<button type="button" class="small" disabled=${busy} onClick=${() => act("toggle", r)}>${r.enabled ? "Disable" : "Enable"}</button>
          <button type="button" class="small danger" disabled=${busy} onClick=${() => confirm(`Delete the rule ${r.name}?`) && act("delete", r)}>Delete</button>`}</header>
      ${r.description && html`<p>${r.description}</p>`}
      <details><summary>conditions and actions</summary><${Json} value=${{ conditions: r.conditions, actions: r.actions, max_per_minute: r.max_per_minute, max_depth: r.max_depth }} /></details>
    </article>`)}
    <${Pager} page=${list.data} onChange=${setOffset} />
    <${Dialog} title="New automation rule" open=${adding} onClose=${() => setAdding(false)}>
      <form onSubmit=${create}>
        <p class="muted">The rule as the API takes it: a trigger, conditions that must all hold, and the actions to take in order.</p>
        <${Field} label="Rule (JSON)"><textarea name="rule" class="mono" rows="14" required spellcheck="false">${RULE_EXAMPLE}</textarea><//>
        <${ErrorBox} error=${createError} />
        <button type="submit" class="primary" disabled=${creating}>Create</button>
      </form>
    <//>
  </div>`;
}

export default function Soar({ params }) {
  const [section, id] = params;
  const current = section === "executions" || section === "rules" ? section : "playbooks";
  return html`<div>
    <h1>SOAR</h1>
    <${Tabs} current=${current} items=${SECTIONS} label="SOAR sections" />
    ${section === "playbooks" && id ? html`<${Playbook} id=${id} />`
      : current === "executions" ? html`<${Executions} />`
      : current === "rules" ? html`<${Rules} />`
      : html`<${Playbooks} />`}
  </div>`;
}
