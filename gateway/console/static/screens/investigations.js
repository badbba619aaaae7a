// Investigations: the list, a dispatch form (from an alert, a case or free text), and one
// investigation as it runs: the agents' thoughts live, its approvals, and its receipt (verdict,
// techniques with the evidence behind each, actions with their guardrail decisions, and the
// tool-call chain recomputed here in the browser).
import { api, can } from "../api.js";
import { canVerify, verifyChain } from "../chain.js";
import { html, useEffect, useRef, useState, useStore } from "../lib.js";
import { useStream } from "../stream.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Select, Severity, Status,
  StreamStatus, Time, pendingDispatch, useAction, useLoad,
} from "../ui.js";
import { ApprovalCard, useApprovals } from "./approvals.js";

const LIMIT = 50;
const MAX_THOUGHTS = 2000;
const RECENT_THOUGHTS = 300;
const STATUSES = ["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"];
const FINISHED = new Set(["completed", "failed", "cancelled"]);

function List({ query }) {
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState(query.status || null);
  const list = useLoad(
    () => api("GET", "/investigations", { query: { status, limit: LIMIT, offset, alert_id: query.alert_id, case_id: query.case_id } }),
    [offset, status, query.alert_id, query.case_id],
  );
  return html`<div>
    <div class="toolbar"><h1>Investigations</h1><span class="spacer"></span>
      ${can("investigations:write") && html`<a class="button primary" href="#/investigations/new">New investigation</a>`}</div>
    <div class="toolbar">
      <${Field} label="Status"><${Select} name="status" value=${status} options=${STATUSES} onChange=${(v) => { setStatus(v); setOffset(0); }} /><//>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </div>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} />`}
    ${list.data?.items.length === 0 && html`<${Empty}>No investigations yet.<//>`}
    ${list.data?.items.length > 0 && html`<div class="table-wrap"><table aria-label="Investigations">
      <thead><tr><th>Id</th><th>Status</th><th>Priority</th><th>Subject</th><th>By</th><th>Created</th><th>Finished</th></tr></thead>
      <tbody>${list.data.items.map((i) => html`<tr key=${i.id}>
        <td><a href=${`#/investigations/${encodeURIComponent(i.id)}`}>${i.id}</a></td>
        <td><${Status} value=${i.status} /></td><td>${i.priority}</td>
        <td>${i.alert_id ? html`alert <a href=${`#/alerts?focus=${encodeURIComponent(i.alert_id)}`}>${i.alert_id}</a>` : ""}
            ${i.case_id ? html`case <a href=${`#/cases/${encodeURIComponent(i.case_id)}`}>${i.case_id}</a>` : ""}</td>
        <td>${i.requested_by}</td><td><${Time} value=${i.created_at} /></td><td><${Time} value=${i.finished_at} /></td>
      </tr>`)}</tbody></table></div>`}
    <${Pager} page=${list.data} onChange=${setOffset} />
  </div>`;
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

function DispatchForm({ onDispatch, busy, error, streamLive }) {
  const [kind, setKind] = useState("text");
  const submit = (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const subject = { priority: form.get("priority") };
    if (kind === "alert") subject.alert_id = form.get("alert_id").trim();
    else if (kind === "case") subject.case_id = form.get("case_id").trim();
    else {
      if (form.get("text").trim()) subject.text = form.get("text");
      subject.hosts = lines(form.get("hosts"));
      subject.command_lines = lines(form.get("command_lines"));
    }
    onDispatch(subject);
  };
  return html`<form class="panel" id="dispatch" onSubmit=${submit} aria-label="Dispatch an investigation">
    <h1>New investigation</h1>
    <fieldset class="toolbar"><legend>Investigate</legend>
      ${[["text", "free text"], ["alert", "an alert"], ["case", "a case"]].map(([value, label]) => html`<label>
        <input type="radio" name="kind" value=${value} checked=${kind === value} onChange=${() => setKind(value)} /> ${label}</label>`)}
    </fieldset>
    ${kind === "alert" && html`<${Field} label="Alert id"><input name="alert_id" required maxlength="32" /><//>`}
    ${kind === "case" && html`<${Field} label="Case id"><input name="case_id" required maxlength="32" /><//>`}
    ${kind === "text" && html`
      <${Field} label="What to investigate" hint="an alert's text, a report, indicators: the agents extract what they can"><textarea name="text" maxlength="100000" rows="6"></textarea><//>
      <div class="grid2">
        <${Field} label="Hosts" hint="one per line"><textarea name="hosts" rows="2"></textarea><//>
        <${Field} label="Command lines" hint="one per line"><textarea name="command_lines" rows="2"></textarea><//>
      </div>`}
    <${Field} label="Priority"><select name="priority">${["normal", "high", "urgent", "low"].map((p) => html`<option value=${p}>${p}</option>`)}</select><//>
    <${ErrorBox} error=${error} />
    <p><button type="submit" class="primary" disabled=${busy || !streamLive}>${busy ? "Dispatching…" : "Dispatch"}</button>
      ${!streamLive && html` <span class="muted">waiting for the thought stream…</span>`}</p>
  </form>`;
}

/** An event's time (epoch seconds or ISO 8601) in milliseconds, or null. */
function millis(at) {
  if (typeof at === "number") return at * 1000;
  const parsed = Date.parse(at);
  return Number.isNaN(parsed) ? null : parsed;
}

function Thoughts({ thoughts, status, title = "Agents' thoughts", all = false }) {
  const box = useRef(null);
  const [follow, setFollow] = useState(true);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [thoughts.length, follow]);
  const start = thoughts.map((t) => millis(t.at)).find((at) => at != null);
  return html`<section aria-labelledby="thoughts-title">
    <div class="toolbar"><h2 id="thoughts-title">${title}</h2><span class="spacer"></span>
      <label><input type="checkbox" checked=${follow} onChange=${(e) => setFollow(e.currentTarget.checked)} /> follow</label>
      <${StreamStatus} status=${status} /></div>
    <div class="thoughts" ref=${box} role="log" aria-live="polite" aria-label="Agents' thoughts" id="thoughts">
      ${thoughts.length === 0 && html`<div class="muted">No thoughts yet: they appear here as the agents work.</div>`}
      ${thoughts.map((t, n) => (t.type === "gap"
        ? html`<div class="line gapline" key=${n}>… ${t.dropped} thought(s) dropped: this page fell behind</div>`
        : html`<div class="line thought" key=${n}><span class="muted">+${start != null && millis(t.at) != null ? ((millis(t.at) - start) / 1000).toFixed(2) : "0.00"}s</span>
          <span class="agent">${t.agent}</span><span class="step">${t.step || ""}</span><span>${all && html`<a href=${`#/investigations/${encodeURIComponent(t.investigation_id)}`}>${t.investigation_id}</a> `}${t.text}</span></div>`))}
    </div>
  </section>`;
}

function ChainCheck({ receipt }) {
  const [result, setResult] = useState(null);
  const [failure, setFailure] = useState(null);
  const run = async () => {
    setFailure(null);
    try {
      setResult(await verifyChain(receipt));
    } catch (err) {
      setFailure({ code: "CONSOLE", message: `The chain could not be computed: ${err.message}` });
    }
  };
  useEffect(() => setResult(null), [receipt]);
  const calls = receipt.tool_calls || [];
  const broken = result?.links.find((l) => !l.ok);
  return html`<section aria-labelledby="chain-title">
    <div class="toolbar"><h3 id="chain-title">Tool calls (${calls.length})</h3><span class="spacer"></span>
      ${canVerify()
        ? html`<button type="button" id="verify-chain" onClick=${run}>Verify the chain in this browser</button>`
        : html`<span class="muted">Verifying needs a secure context (HTTPS or localhost).</span>`}</div>
    <${ErrorBox} error=${failure} />
    ${result && html`<p id="chain-result" role="status" class=${result.ok ? "chain-ok" : "chain-bad"}>${result.ok
      ? `✔ Chain verified: ${calls.length} tool call(s) recomputed with SHA-256; the last link matches the receipt (${result.last.slice(0, 16)}…).`
      : broken
        ? `✘ The chain breaks at tool call ${broken.index + 1}: the record was changed after it was chained.`
        : `✘ The last link ${result.last.slice(0, 16)}… does not match the receipt's ${String(result.recorded).slice(0, 16)}….`}</p>`}
    ${calls.length > 0 && html`<div class="table-wrap"><table aria-label="Tool calls">
      <thead><tr><th>#</th><th>Agent</th><th>Tool</th><th>Summary</th><th>Chain</th></tr></thead>
      <tbody>${calls.map((c, n) => html`<tr key=${n} class=${result && !result.links[n]?.ok ? "selected" : ""}>
        <td>${n + 1}</td><td>${c.agent}</td><td class="mono">${c.tool}</td><td>${c.summary}</td>
        <td class="mono" title=${c.chain}>${String(c.chain).slice(0, 12)}…${result ? (result.links[n]?.ok ? " ✔" : " ✘") : ""}</td></tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

function Receipt({ receipt }) {
  const actions = receipt.actions || [];
  return html`<section class="panel" aria-labelledby="receipt-title" id="receipt">
    <h2 id="receipt-title">Receipt</h2>
    <p class="verdict"><${Badge} value=${receipt.verdict} kind="verdict" /> <${Severity} value=${receipt.severity} />
      ${" "}confidence ${Math.round((receipt.confidence || 0) * 100)}%
      ${receipt.degraded && html` <${Badge} value="degraded" />`}
      ${receipt.latency_ms != null && html` <span class="muted">in ${Math.round(receipt.latency_ms)} ms</span>`}
      <span class="muted"> · planner ${receipt.planner?.kind || "builtin"}</span></p>
    <h3>Techniques (${(receipt.techniques || []).length})</h3>
    ${(receipt.techniques || []).length === 0 && html`<p class="muted">No ATT&CK technique observed.</p>`}
    ${(receipt.techniques || []).map((t) => html`<details class="card" key=${t.id}>
      <summary><strong class="mono">${t.id}</strong> named by ${t.agents.join(", ")}</summary>
      ${t.support.map((s) => html`<div><p><strong>${s.agent}</strong>: ${s.summary}</p>
        <ul>${s.evidence.map((e) => html`<li><span class="tag">${e.kind}</span> <span class="mono">${e.ref}</span> ${e.summary}</li>`)}</ul></div>`)}
    </details>`)}
    <h3>Actions (${actions.length})</h3>
    ${actions.length === 0 && html`<p class="muted">No response action proposed.</p>`}
    ${actions.length > 0 && html`<div class="table-wrap"><table aria-label="Response actions">
      <thead><tr><th>Action</th><th>Target</th><th>Impact</th><th>Guardrail</th><th>Status</th><th>Decision</th></tr></thead>
      <tbody>${actions.map((a) => html`<tr key=${a.key}>
        <td>${a.action}</td><td class="mono">${a.target}</td><td>${a.impact || "—"}</td>
        <td>${a.guardrail?.decision} → ${a.guardrail?.outcome} <span class="muted">(${a.guardrail?.mode})</span>
          ${(a.guardrail?.reasons || []).length > 0 && html`<details><summary>why</summary><ul>${a.guardrail.reasons.map((r) => html`<li>${r}</li>`)}</ul></details>`}</td>
        <td><${Status} value=${a.status} />${a.error && html`<div class="muted">${a.error.code}: ${a.error.message}</div>`}</td>
        <td>${a.approval ? `${a.approval.decision}${a.approval.by ? ` by ${a.approval.by}` : ""}${a.approval.comment ? `: ${a.approval.comment}` : ""}` : "—"}</td>
      </tr>`)}</tbody></table></div>`}
    <h3>Findings (${(receipt.findings || []).length})</h3>
    ${(receipt.findings || []).map((f, n) => html`<details class="card" key=${n}>
      <summary><strong>${f.agent}</strong> <${Severity} value=${f.severity} /> ${f.summary}</summary><${Json} value=${f} /></details>`)}
    ${((receipt.failures || []).length > 0 || (receipt.errors || []).length > 0) && html`<h3>Failures and errors</h3>
      <ul>${[...(receipt.failures || []), ...(receipt.errors || [])].map((e) => html`<li><strong>${e.agent}</strong> ${e.stage || ""} ${e.error || ""}: ${e.message || e.summary || ""}</li>`)}</ul>`}
    ${(receipt.iocs || []).length > 0 && html`<h3>Indicators</h3><ul>${receipt.iocs.map((i) => html`<li><span class="tag">${i.type}</span> <span class="mono">${i.value}</span></li>`)}</ul>`}
    <${ChainCheck} receipt=${receipt} />
  </section>`;
}

function Approvals({ id, running, onCancelled }) {
  const [approvals, status, decide, errors, cancel, cancelled] = useApprovals(id);
  const [asking, setAsking] = useState(false);
  useEffect(() => {
    if (cancelled === id) onCancelled();
  }, [cancelled]);
  const all = Object.values(approvals);
  return html`<section aria-labelledby="approvals-title"><div class="toolbar"><h2 id="approvals-title">Approvals</h2><span class="spacer"></span>
      ${running && can("investigations:write") && html`<button type="button" class="danger small" onClick=${() => setAsking(true)}>Cancel investigation…</button>`}
      <${StreamStatus} status=${status} /></div>
    ${errors._ && html`<${ErrorBox} error=${errors._} />`}
    ${all.length === 0 && html`<p class="muted">No approval requested.</p>`}
    ${all.map((a) => html`<${ApprovalCard} key=${a.approval_id} approval=${a} decide=${decide} error=${errors[a.approval_id]} />`)}
    <${Dialog} title="Cancel this investigation?" open=${asking} onClose=${() => setAsking(false)}>
      <form onSubmit=${(e) => { e.preventDefault(); cancel(id, new FormData(e.currentTarget).get("reason")); setAsking(false); }}>
        <p>The agents stop; actions waiting for a decision are cancelled; what was done stays done.</p>
        <${Field} label="Reason"><input name="reason" maxlength="2000" /><//>
        <div class="toolbar"><button type="submit" class="danger">Cancel the investigation</button> <button type="button" onClick=${() => setAsking(false)}>Keep it running</button></div>
      </form>
    <//></section>`;
}

function Detail({ id, thoughts, thoughtStatus }) {
  const found = useLoad(() => api("GET", `/investigations/${encodeURIComponent(id)}`), [id]);
  useStream("/ws/investigation-receipts", { investigation_id: id }, {
    onMessage: (m) => m.type === "receipt" && found.reload(),
    onResume: () => found.reload(),
  }, id);
  const investigation = found.data;
  return html`<div>
    <div class="toolbar"><h1>Investigation <span class="mono">${id}</span></h1>
      ${investigation && html`<${Status} value=${investigation.status} />`}<span class="spacer"></span>
      <a href="#/investigations">All investigations</a></div>
    <${ErrorBox} error=${found.error} />
    ${investigation && html`<dl class="props panel">
      <dt>Subject</dt><dd>${investigation.alert_id ? html`alert <a href=${`#/alerts?focus=${encodeURIComponent(investigation.alert_id)}`}>${investigation.alert_id}</a> ` : ""}
        ${investigation.case_id ? html`case <a href=${`#/cases/${encodeURIComponent(investigation.case_id)}`}>${investigation.case_id}</a> ` : ""}
        ${!investigation.alert_id && !investigation.case_id ? html`<details><summary>given</summary><${Json} value=${investigation.subject} /></details>` : ""}</dd>
      <dt>Priority</dt><dd>${investigation.priority}</dd>
      <dt>Requested</dt><dd>${investigation.requested_by}, <${Time} value=${investigation.created_at} /></dd>
      <dt>Finished</dt><dd><${Time} value=${investigation.finished_at} /></dd>
      ${investigation.error && html`<dt>Error</dt><dd>${investigation.error}</dd>`}
    </dl>`}
    <div class="grid2">
      <div>
        ${investigation?.receipt ? html`<${Receipt} receipt=${investigation.receipt} />`
          : investigation && !FINISHED.has(investigation.status) ? html`<p class="panel muted" role="status">Working: the receipt appears here when the agents finish.</p>` : null}
      </div>
      <div>
        <${Approvals} id=${id} running=${investigation && !FINISHED.has(investigation.status)} onCancelled=${found.reload} />
        <${Thoughts} thoughts=${thoughts} status=${thoughtStatus} />
      </div>
    </div>
  </div>`;
}

export default function Investigations({ params, query }) {
  const id = params[0];
  // The thought stream stays open across dispatch and detail, so the thoughts of an
  // investigation dispatched here are all seen: they are kept by investigation id.
  const [byId, setById] = useState({});
  const [recent, setRecent] = useState([]);
  const [status] = useStream("/ws/agent-thoughts", {}, {
    onMessage(message) {
      if (message.type === "gap") {
        setById((all) => Object.fromEntries(Object.entries(all).map(([k, v]) => [k, [...v, message]])));
        setRecent((list) => [...list, message].slice(-RECENT_THOUGHTS));
        return;
      }
      if (message.type !== "thought" || !message.investigation_id) return;
      setById((all) => ({ ...all, [message.investigation_id]: [...(all[message.investigation_id] || []), message].slice(-MAX_THOUGHTS) }));
      setRecent((list) => [...list, message].slice(-RECENT_THOUGHTS));
    },
  });
  const wanted = useStore(pendingDispatch);
  const [dispatch, busy, error] = useAction(async (subject) => {
    const accepted = await api("POST", "/agents/investigate", { body: subject });
    location.replace(`#/investigations/${encodeURIComponent(accepted.id)}`);
  });
  useEffect(() => {
    if (id === "new" && wanted && status.state === "live" && !busy) {
      pendingDispatch.set(null);
      dispatch({ priority: "normal", ...wanted });
    }
  }, [id, wanted, status.state]);
  if (!id) {
    return html`<div><${List} query=${query} />
      <${Thoughts} thoughts=${recent} status=${status} all=${true} title="Every investigation's thoughts, live" /></div>`;
  }
  if (id === "new") {
    if (wanted || busy) return html`<div><h1>New investigation</h1><${Loading} what="Dispatching" /><${ErrorBox} error=${error} /></div>`;
    return html`<${DispatchForm} onDispatch=${dispatch} busy=${busy} error=${error} streamLive=${status.state === "live"} />`;
  }
  return html`<${Detail} id=${id} thoughts=${byId[id] || []} thoughtStatus=${status} />`;
}
