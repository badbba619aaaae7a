// Approvals: response actions waiting for a human, live over /ws/approvals (the pending ones
// first, then each request and decision as it happens), decided on the same socket with a
// comment, with the time left before the request expires.
import { can } from "../api.js";
import { html, useState } from "../lib.js";
import { useStream } from "../stream.js";
import { Badge, Countdown, Empty, ErrorBox, StreamStatus, Time, notify } from "../ui.js";

/** Folds one message of the approvals stream into `{id: approval}`. */
export function applyApprovalMessage(approvals, message) {
  if (message.type === "pending") {
    return Object.fromEntries(message.approvals.map((a) => [a.approval_id, a]));
  }
  if (message.type === "approval_requested" || message.type === "approval_decided") {
    const { type, at, ...approval } = message;
    return { ...approvals, [approval.approval_id]: { ...approvals[approval.approval_id], ...approval } };
  }
  if (message.type === "decided" && message.approval) {
    return { ...approvals, [message.approval.approval_id]: message.approval };
  }
  return approvals;
}

/** A corroborating source: who saw the target where (a feed's listing, a log, a finding). */
function describeSource(source) {
  if (typeof source !== "object" || source === null) return String(source);
  const { agent, source: where, type, value, detail } = source;
  return [agent, where && `(${where})`, type && value ? `${type} ${value}` : value, detail && `: ${detail}`].filter(Boolean).join(" ");
}

/** One action awaiting a decision: what, on what, why, the guardrail's reasons, its
 * provenance, and the approve / deny buttons with a comment. */
export function ApprovalCard({ approval, decide, error }) {
  const [comment, setComment] = useState("");
  const pending = approval.status === "pending";
  const guardrail = approval.guardrail || {};
  const provenance = approval.provenance || {};
  const mayDecide = can("soar:write") || can("system:write"); // as the platform checks it
  return html`<article class="card approval" data-approval-id=${approval.approval_id} aria-label=${`Approval ${approval.approval_id}`}>
    <header>
      <strong>${approval.action}</strong> <span class="mono">${approval.target}</span>
      <${Badge} value=${approval.status} kind="status" />
      ${approval.impact && html`<${Badge} value=${`impact ${approval.impact}`} />`}
      <span class="spacer"></span>
      ${pending ? html`<${Countdown} until=${approval.expires_at} />` : html`<span class="muted">${approval.decided_by ? `by ${approval.decided_by} ` : ""}<${Time} value=${approval.decided_at} /></span>`}
    </header>
    ${approval.reason && html`<p>${approval.reason}</p>`}
    <dl class="props">
      <dt>Investigation</dt><dd><a href=${`#/investigations/${encodeURIComponent(approval.investigation_id)}`}>${approval.investigation_id}</a></dd>
      <dt>Requested</dt><dd><${Time} value=${approval.requested_at} /></dd>
      ${guardrail.decision && html`<dt>Guardrail</dt><dd>${guardrail.decision} (${guardrail.mode} mode)${guardrail.criticality ? `, target criticality ${guardrail.criticality}` : ""}${guardrail.blast_radius != null ? `, blast radius ${guardrail.blast_radius}` : ""}</dd>`}
      ${(guardrail.reasons || []).length > 0 && html`<dt>Why</dt><dd><ul>${guardrail.reasons.map((r) => html`<li>${r}</li>`)}</ul></dd>`}
      ${provenance.corroboration && html`<dt>Corroboration</dt><dd>${provenance.corroboration}${(provenance.corroborated_by || []).length > 0 && html`<ul>${provenance.corroborated_by.map((c) => html`<li>${describeSource(c)}</li>`)}</ul>`}</dd>`}
      ${approval.comment && html`<dt>Comment</dt><dd>${approval.comment}</dd>`}
    </dl>
    <${ErrorBox} error=${error} />
    ${pending && mayDecide && html`<form class="decide" onSubmit=${(e) => e.preventDefault()}>
      <label class="field"><span>Comment</span><textarea name="comment" maxlength="2000" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea></label>
      <div class="toolbar">
        <button type="button" class="good" onClick=${() => decide(approval.approval_id, "approve", comment)}>Approve</button>
        <button type="button" class="danger" onClick=${() => decide(approval.approval_id, "deny", comment)}>Deny</button>
      </div>
    </form>`}
    ${pending && !mayDecide && html`<p class="muted">Deciding needs soar:write or system:write (responders, operators).</p>`}
  </article>`;
}

/** The approvals stream (narrowed to one investigation when `investigationId` is given):
 * `[approvals, status, decide, errors]`. */
export function useApprovals(investigationId) {
  const [approvals, setApprovals] = useState({});
  const [errors, setErrors] = useState({});
  const [status, send] = useStream(
    "/ws/approvals",
    investigationId ? { investigation_id: investigationId } : {},
    {
      onMessage(message) {
        if (message.type === "error") {
          const target = message.approval_id || "_";
          setErrors((e) => ({ ...e, [target]: message.error }));
          return;
        }
        if (message.type === "cancelled") setCancelled(message.investigation_id);
        setApprovals((current) => applyApprovalMessage(current, message));
        if (message.type === "decided") {
          setErrors((e) => ({ ...e, [message.approval.approval_id]: null }));
          notify(`${message.approval.status === "approved" ? "Approved" : "Denied"}: ${message.approval.action} ${message.approval.target}`, "good");
        }
      },
    },
    investigationId || "",
  );
  const [cancelled, setCancelled] = useState(null);
  const cancel = (id, reason) => {
    setErrors((e) => ({ ...e, _: null }));
    if (!send({ type: "cancel", investigation_id: id, reason: reason || null })) {
      setErrors((e) => ({ ...e, _: { code: "CONSOLE", message: "The approvals stream is not connected; try again when it is live." } }));
    }
  };
  const decide = (approvalId, decision, comment) => {
    setErrors((e) => ({ ...e, [approvalId]: null, _: null }));
    const sent = send({ type: "decide", approval_id: approvalId, decision, comment: comment || null });
    if (!sent) setErrors((e) => ({ ...e, [approvalId]: { code: "CONSOLE", message: "The approvals stream is not connected; try again when it is live." } }));
  };
  return [approvals, status, decide, errors, cancel, cancelled];
}

export default function Approvals() {
  const [approvals, status, decide, errors] = useApprovals(null);
  const [showDecided, setShowDecided] = useState(true);
  const all = Object.values(approvals).sort((a, b) => String(a.expires_at).localeCompare(String(b.expires_at)));
  const pending = all.filter((a) => a.status === "pending");
  const decided = all.filter((a) => a.status !== "pending").reverse();
  return html`<div>
    <div class="toolbar"><h1>Approvals</h1><span class="spacer"></span><${StreamStatus} status=${status} /></div>
    <${ErrorBox} error=${errors._} />
    <h2>Waiting for a decision (${pending.length})</h2>
    ${pending.length === 0 && html`<${Empty}>Nothing is waiting for a human. New requests appear here as they are made.<//>`}
    ${pending.map((a) => html`<${ApprovalCard} key=${a.approval_id} approval=${a} decide=${decide} error=${errors[a.approval_id]} />`)}
    ${decided.length > 0 && html`<h2>Decided while this page was open (${decided.length})
      <button type="button" class="link small" aria-expanded=${showDecided} onClick=${() => setShowDecided(!showDecided)}>${showDecided ? "hide" : "show"}</button></h2>
      ${showDecided && decided.slice(0, 100).map((a) => html`<${ApprovalCard} key=${a.approval_id} approval=${a} decide=${decide} error=${errors[a.approval_id]} />`)}`}
  </div>`;
}
