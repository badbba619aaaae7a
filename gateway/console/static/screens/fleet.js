// Fleet: the six specialist agents (their cards: urls, version, backend, prompt versions,
// tools), their recent tool calls with a live tail, and the health of the inference backend and
// the MCP server.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { useStream } from "../stream.js";
import {
  Empty, ErrorBox, Json, Loading, Pager, StreamStatus, Time, clip, num, useLoad,
} from "../ui.js";

/** The specialists (there is no route listing agents: each is asked for its tools). */
const AGENTS = [
  { id: "threat_intel", label: "Threat intel" },
  { id: "malware", label: "Malware" },
  { id: "network", label: "Network" },
  { id: "hunter", label: "Hunter" },
  { id: "endpoint", label: "Endpoint" },
  { id: "responder", label: "Responder" },
];
const NOT_CONFIGURED = "AURORA-4043";
const CALLS_PAGE = 25;
const TAIL_PAGE = 10;
const TAIL_KEEP = 500;

const ms = (n) => (n == null ? "—" : `${num(Math.round(Number(n) * 10) / 10)} ms`);
const agentHref = (id) => `#/fleet/${encodeURIComponent(id)}`;
const labelOf = (id) => AGENTS.find((a) => a.id === id)?.label || id;

function Health({ ok, yes, no }) {
  return html`<span class=${ok ? "chain-ok" : "chain-bad"}>${ok ? "● " : "○ "}${ok ? yes : no}</span>`;
}

/** An agent's state from its tools call: ok, not configured (AURORA-4043) or unreachable. */
function AgentState({ tools }) {
  if (tools.loading && !tools.data && !tools.error) return html`<span class="muted">asking…</span>`;
  if (tools.error?.code === NOT_CONFIGURED) return html`<span class="badge">not configured</span>`;
  if (tools.error) return html`<${Health} ok=${false} no=${`unreachable (${tools.error.code})`} />`;
  return html`<${Health} ok=${true} yes="answering" />`;
}

function Props({ value }) {
  const entries = Object.entries(value || {});
  if (!entries.length) return html`<span class="muted">—</span>`;
  return html`<dl class="props">
    ${entries.map(
      ([k, v]) => html`<dt>${k}</dt><dd class="mono">${v !== null && typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>`,
    )}
  </dl>`;
}

export default function Fleet({ params, query }) {
  if (params[0]) return html`<${AgentPage} key=${params[0]} agent=${params[0]} query=${query} />`;
  return html`<h1>Fleet</h1>
    <div class="grid2">
      <${InferencePanel} />
      <${McpPanel} />
    </div>
    <h2>Agents</h2>
    <div class="grid3">${AGENTS.map((a) => html`<${AgentCard} key=${a.id} agent=${a.id} />`)}</div>`;
}

// -- services -----------------------------------------------------------------------------------

function InferencePanel() {
  const status = useLoad(() => api("GET", "/inference/status"), []);
  const s = status.data;
  return html`<section class="panel" aria-labelledby="fleet-inference">
    <div class="toolbar">
      <h2 id="fleet-inference">Inference</h2>
      ${s && html`<${Health} ok=${s.reachable && s.model_served} yes="serving"
        no=${s.backend === "none" ? "none configured" : s.reachable ? "model not served" : "unreachable"} />`}
      <span class="spacer"></span>
      <button type="button" onClick=${status.reload} disabled=${status.loading}>${status.loading ? "Checking…" : "Check again"}</button>
    </div>
    <${ErrorBox} error=${status.error} />
    ${status.loading && !s && html`<${Loading} what="Asking the inference backend" />`}
    ${s &&
    html`<dl class="props">
        <dt>Backend</dt><dd>${s.backend}</dd>
        <dt>Base URL</dt><dd class="mono">${s.base_url || "—"}</dd>
        <dt>Model</dt><dd class="mono">${s.model || "—"} ${s.model && html`<small class="muted">(${s.model_served ? "served" : "not among the served models"})</small>`}</dd>
        <dt>Reachable</dt><dd><${Health} ok=${s.reachable} yes="yes" no="no" /></dd>
        <dt>Latency</dt><dd>${ms(s.latency_ms)}</dd>
        <dt>Served models</dt><dd>${s.models.length ? s.models.map((m) => html`<span class="tag mono">${m}</span>`) : "—"}</dd>
      </dl>
      ${s.detail && html`<p class="muted">${s.detail}</p>`}`}
  </section>`;
}

function McpPanel() {
  const health = useLoad(() => api("GET", "/mcp/health"), []);
  const h = health.data;
  return html`<section class="panel" aria-labelledby="fleet-mcp">
    <div class="toolbar">
      <h2 id="fleet-mcp">MCP server</h2>
      ${h && html`<${Health} ok=${h.status === "ok"} yes="ok" no="down" />`}
      <span class="spacer"></span>
      <button type="button" onClick=${health.reload} disabled=${health.loading}>${health.loading ? "Checking…" : "Check again"}</button>
    </div>
    <${ErrorBox} error=${health.error} />
    ${health.loading && !h && html`<${Loading} what="Asking the MCP server" />`}
    ${h &&
    html`<dl class="props">
        <dt>URL</dt><dd class="mono">${h.url}</dd>
        <dt>Server</dt><dd>${h.server_name || "—"} ${h.server_version && html`<small class="muted">${h.server_version}</small>`}</dd>
        <dt>Latency</dt><dd>${ms(h.latency_ms)}</dd>
        <dt>Tools</dt>
        <dd>${h.tools?.length
          ? html`<details><summary>${h.tools.length} tool${h.tools.length === 1 ? "" : "s"}</summary>
              ${h.tools.map((t) => html`<span class="tag mono">${t}</span>`)}</details>`
          : "—"}</dd>
      </dl>
      ${h.detail && html`<p class="muted">${h.detail}</p>`}`}
  </section>`;
}

// -- the agents' cards --------------------------------------------------------------------------

function AgentCard({ agent }) {
  const tools = useLoad(() => api("GET", `/agents/${encodeURIComponent(agent)}/tools`), [agent]);
  const calls = useLoad(() => api("GET", `/agents/${encodeURIComponent(agent)}/tool-calls`, { query: { limit: 3 } }), [agent]);
  const card = tools.data;
  const missing = tools.error?.code === NOT_CONFIGURED;
  return html`<article class="card" aria-labelledby=${`agent-${agent}`}>
    <header>
      <h3 id=${`agent-${agent}`}><a href=${agentHref(agent)}>${labelOf(agent)}</a></h3>
      <code class="mono muted">${agent}</code>
      <${AgentState} tools=${tools} />
    </header>
    ${missing
      ? html`<p class="muted">Not configured on this platform (${NOT_CONFIGURED}: ${tools.error.message}).</p>`
      : html`<${ErrorBox} error=${tools.error} />`}
    ${card &&
    html`<p>${card.description || html`<span class="muted">No description.</span>`}</p>
      <dl class="props">
        <dt>Version</dt><dd>${card.version || "—"}</dd>
        <dt>URLs</dt><dd class="mono">${card.urls.length ? card.urls.map((u) => html`<div>${u}</div>`) : "—"}</dd>
        <dt>Backend</dt><dd>${Object.entries(card.backend).map(([k, v]) => html`<span class="tag">${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}</span>`)}</dd>
        <dt>Prompts</dt><dd>${Object.keys(card.prompt_versions).length
          ? Object.entries(card.prompt_versions).map(([k, v]) => html`<span class="tag">${k} ${v}</span>`)
          : "—"}</dd>
        <dt>Tools</dt><dd>${card.tools.length}</dd>
      </dl>`}
    ${!missing &&
    html`<h4>Recent tool calls ${calls.data && html`<span class="count">(${num(calls.data.total)} in all)</span>`}</h4>
      ${!missing && calls.error && html`<${ErrorBox} error=${calls.error} />`}
      ${calls.data && !calls.data.items.length && html`<p class="muted">None recorded.</p>`}
      ${calls.data?.items.length > 0 &&
      html`<ul>
        ${calls.data.items.map(
          (c) => html`<li key=${c.id}><code>${c.tool}</code> <${Time} value=${c.created_at} /> · ${ms(c.duration_ms)}</li>`,
        )}
      </ul>`}`}
    <p><a href=${agentHref(agent)} aria-label=${`${labelOf(agent)}: tools, tool calls and live tail`}>Tools, calls and live tail ›</a></p>
  </article>`;
}

// -- one agent ----------------------------------------------------------------------------------

function AgentPage({ agent, query }) {
  const tools = useLoad(() => api("GET", `/agents/${encodeURIComponent(agent)}/tools`), [agent]);
  const [filters, setFilters] = useState({ tool: query.tool || "", investigation_id: query.investigation_id || "" });
  const [nonce, setNonce] = useState(0);
  const card = tools.data;
  const missing = tools.error?.code === NOT_CONFIGURED;
  // The calls and the live tail wait for the agent's answer: an unknown agent has neither.
  const settled = Boolean(card || tools.error);
  return html`<p><a href="#/fleet">‹ Fleet</a></p>
    <div class="toolbar">
      <h1>${labelOf(agent)} <code class="mono muted">${agent}</code></h1>
      <${AgentState} tools=${tools} />
      <span class="spacer"></span>
      <button type="button" onClick=${tools.reload} disabled=${tools.loading}>Ask again</button>
    </div>
    ${missing
      ? html`<div class="notice warn" role="status"><strong>Not configured.</strong> This platform has no agent
          <code>${agent}</code> (${NOT_CONFIGURED}: ${tools.error.message}).</div>`
      : html`<${ErrorBox} error=${tools.error} />`}
    ${tools.loading && !card && !tools.error && html`<${Loading} what="Asking the agent for its card" />`}
    ${card && html`<${AgentInfo} card=${card} />`}
    ${settled && !missing &&
    html`<${LiveTail} agent=${agent} investigationId=${filters.investigation_id} onResume=${() => setNonce((n) => n + 1)} />
      <${ToolCalls} agent=${agent} filters=${filters} onFilters=${setFilters} nonce=${nonce} toolNames=${(card?.tools || []).map((t) => t.name)} />`}`;
}

function AgentInfo({ card }) {
  const [offset, setOffset] = useState(0);
  return html`<div class="grid2">
      <section class="panel" aria-labelledby="agent-card">
        <h2 id="agent-card">Card</h2>
        <p>${card.description || html`<span class="muted">No description.</span>`}</p>
        <dl class="props">
          <dt>Version</dt><dd>${card.version || "—"}</dd>
          <dt>URLs</dt><dd class="mono">${card.urls.length ? card.urls.map((u) => html`<div>${u}</div>`) : "—"}</dd>
        </dl>
      </section>
      <section class="panel" aria-labelledby="agent-backend">
        <h2 id="agent-backend">Backend and prompts</h2>
        <h3>Backend</h3>
        <${Props} value=${card.backend} />
        <h3>Prompt versions</h3>
        <${Props} value=${card.prompt_versions} />
      </section>
    </div>
    <section aria-labelledby="agent-tools">
      <h2 id="agent-tools">Tools <span class="count">(${card.tools.length})</span></h2>
      ${!card.tools.length && html`<${Empty}>This agent offers no tools.<//>`}
      ${card.tools.length > 0 &&
      html`<div class="table-wrap"><table>
          <thead><tr><th scope="col">Tool</th><th scope="col">Description</th><th scope="col">Parameters</th><th scope="col">Result</th></tr></thead>
          <tbody>
            ${card.tools.slice(offset, offset + CALLS_PAGE).map(
              (t) => html`<tr key=${t.name}>
                <td class="mono">${t.name}</td>
                <td class="title">${t.description || html`<span class="muted">—</span>`}</td>
                <td>${t.params_schema ? html`<details><summary>schema</summary><${Json} value=${t.params_schema} /></details>` : "—"}</td>
                <td>${t.result_schema ? html`<details><summary>schema</summary><${Json} value=${t.result_schema} /></details>` : "—"}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>
        <${Pager} total=${card.tools.length} limit=${CALLS_PAGE} offset=${offset} onChange=${setOffset} />`}
    </section>`;
}

function ToolCalls({ agent, filters, onFilters, nonce, toolNames }) {
  const [offset, setOffset] = useState(0);
  const [form, setForm] = useState(filters);
  const [open, setOpen] = useState(null);
  const calls = useLoad(
    () =>
      api("GET", `/agents/${encodeURIComponent(agent)}/tool-calls`, {
        query: { limit: CALLS_PAGE, offset, tool: filters.tool, investigation_id: filters.investigation_id },
      }),
    [agent, offset, filters.tool, filters.investigation_id, nonce],
  );
  const submit = (e) => {
    e.preventDefault();
    setOffset(0);
    onFilters({ tool: form.tool.trim(), investigation_id: form.investigation_id.trim() });
  };
  const items = calls.data?.items || [];
  return html`<section aria-labelledby="agent-calls">
    <div class="toolbar">
      <h2 id="agent-calls">Tool calls</h2>
      ${calls.data && html`<span class="count">${num(calls.data.total)} recorded</span>`}
      <span class="spacer"></span>
      <button type="button" onClick=${calls.reload} disabled=${calls.loading}>Refresh</button>
    </div>
    <form class="toolbar" role="search" aria-label="Filter tool calls" onSubmit=${submit}>
      <label class="field"><span>Tool</span>
        <input list="agent-tool-names" value=${form.tool} maxlength="128" size="16"
          onInput=${(e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, tool: v })); }} />
        <datalist id="agent-tool-names">${toolNames.map((n) => html`<option value=${n} />`)}</datalist></label>
      <label class="field"><span>Investigation</span>
        <input value=${form.investigation_id} maxlength="128" size="16"
          onInput=${(e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, investigation_id: v })); }} /></label>
      <button type="submit">Filter</button>
    </form>
    <${ErrorBox} error=${calls.error} />
    ${calls.loading && !calls.data && html`<${Loading} />`}
    ${calls.data && !items.length && html`<${Empty}>No tool calls recorded${filters.tool || filters.investigation_id ? " for these filters" : ""}.<//>`}
    ${items.length > 0 && html`<${CallTable} items=${items} open=${open} onOpen=${setOpen} />`}
    <${Pager} total=${calls.data?.total} limit=${CALLS_PAGE} offset=${offset} onChange=${setOffset} />
  </section>`;
}

/** Tool calls as rows; `open` (a call's key) shows its arguments in full. */
function CallTable({ items, open, onOpen, fresh, clock = false }) {
  return html`<div class="table-wrap"><table>
    <thead><tr><th scope="col">When</th><th scope="col">Tool</th><th scope="col">Investigation</th><th scope="col">Result</th><th scope="col">Took</th><th scope="col">Arguments</th></tr></thead>
    <tbody>
      ${items.map((c) => {
        const key = c.key ?? c.id;
        const shown = open === key;
        return html`<tr key=${key} class=${[shown ? "selected" : "", fresh?.has(key) ? "fresh" : ""].join(" ").trim()}>
          <td>${clock ? html`<${Clock} value=${c.at || c.created_at} />` : html`<${Time} value=${c.created_at || c.at} />`}</td>
          <td class="mono">${c.tool}</td>
          <td>${c.investigation_id
            ? html`<a href=${`#/investigations/${encodeURIComponent(c.investigation_id)}`}>${clip(c.investigation_id, 24)}</a>`
            : html`<span class="muted">—</span>`}</td>
          <td class="title">${clip(c.result_summary, 160)}</td>
          <td>${ms(c.duration_ms)}</td>
          <td class="actions">
            <button type="button" class="small" aria-expanded=${shown ? "true" : "false"} onClick=${() => onOpen(shown ? null : key)}>
              ${shown ? "Hide" : "Show"}</button>
            ${shown && html`<${Json} value=${c.arguments || {}} />`}
          </td>
        </tr>`;
      })}
    </tbody>
  </table></div>`;
}

/** A time of day (the live tail's rows are all recent), the full time in its tooltip. */
function Clock({ value }) {
  const date = new Date(value || Date.now());
  if (Number.isNaN(date.getTime())) return html`<span>${String(value)}</span>`;
  return html`<time datetime=${date.toISOString()} title=${date.toLocaleString()}>${date.toLocaleTimeString()}</time>`;
}

let tailSeq = 0;

function LiveTail({ agent, investigationId, onResume }) {
  const [calls, setCalls] = useState([]);
  const [fresh, setFresh] = useState(() => new Set());
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState(null);
  const [error, setError] = useState(null);
  const [status] = useStream(
    `/ws/agents/${encodeURIComponent(agent)}/tool-calls`,
    investigationId ? { investigation_id: investigationId } : {},
    {
      onMessage: (message) => {
        if (message?.type === "error") setError(message.error);
        if (message?.type !== "tool_call") return;
        const key = `live-${++tailSeq}`;
        setCalls((list) => [{ ...message, key }, ...list].slice(0, TAIL_KEEP));
        setFresh((set) => new Set([...set, key].slice(-50)));
      },
      onResume,
    },
    `${agent}|${investigationId || ""}`,
  );
  return html`<section aria-labelledby="agent-tail">
    <div class="toolbar">
      <h2 id="agent-tail">Live tool calls</h2>
      <${StreamStatus} status=${status} label="live" />
      <span class="spacer"></span>
      <span class="count">${num(calls.length)} since this page opened${calls.length >= TAIL_KEEP ? ` (the newest ${TAIL_KEEP} kept)` : ""}</span>
      <button type="button" disabled=${!calls.length} onClick=${() => { setCalls([]); setOffset(0); }}>Clear</button>
    </div>
    ${investigationId && html`<p class="muted">Only the calls of investigation <code>${investigationId}</code>.</p>`}
    <${ErrorBox} error=${error} onDismiss=${() => setError(null)} />
    ${!calls.length && html`<${Empty}>Waiting for this agent's next tool call…<//>`}
    ${calls.length > 0 &&
    html`<${CallTable} items=${calls.slice(offset, offset + TAIL_PAGE)} open=${open} onOpen=${setOpen} fresh=${fresh} clock=${true} />
      <${Pager} total=${calls.length} limit=${TAIL_PAGE} offset=${offset} onChange=${setOffset} />`}
  </section>`;
}
