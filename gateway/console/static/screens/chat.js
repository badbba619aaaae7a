// Chat: the analyst's assistant. Conversations (new, open, delete, pages), a conversation's
// messages with the tools they called, their sources and the reports written, and a turn sent
// through POST /chat/stream: the Server-Sent Events are read from the body as they arrive and
// the text grows as plain text (never HTML); tool calls, confirmations and the report events are
// shown as they come. A rate limit (AURORA-4290) says how long to wait and holds the Send
// button until then; when the stream cannot be opened the turn is asked through
// POST /chat/completions instead.
import { ApiError, api, can, session, signOut, url } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import {
  Countdown, Dialog, Empty, ErrorBox, Field, Json, Loading, Pager, Time, clip, fullTime, go,
  notify, num, useAction, useLoad,
} from "../ui.js";

const LIMIT = 20;
const SHOWN = 40;
const enc = encodeURIComponent;
const chatHref = (id) => `#/chat/${enc(id)}`;

/** Where a citation leads in the console (null: nowhere to go). */
function citationHref(c) {
  switch (c.kind) {
    case "alert": return `#/alerts?focus=${enc(c.id)}`;
    case "case": return `#/cases/${enc(c.id)}`;
    case "investigation": return `#/investigations/${enc(c.id)}`;
    default: return null;
  }
}

/** `{alert_ids: [...], case_ids: [...]}` (a session's or a report's subjects) as citations. */
const subjectsOf = (subjects) => Object.entries(subjects || {})
  .flatMap(([kind, ids]) => (Array.isArray(ids) ? ids : []).map((id) => ({ kind: kind.replace(/_ids$|s$/, ""), id })));

/** The stream could not be used at all (nothing of the turn was read): the caller may ask the
 * same turn without streaming. */
class StreamUnavailable extends Error {}

/** An error envelope's ApiError, with the wait a 429 names (`retryAfter`, seconds). */
async function failureOf(response) {
  let error = null;
  try {
    error = (await response.json())?.error || null;
  } catch {
    // not an envelope
  }
  const failure = new ApiError(response.status, error, response.headers.get("X-Request-ID"));
  const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  if (response.status === 429) {
    failure.retryAfter = Number.isFinite(wait) && wait > 0 ? wait : 1;
    failure.message = `${failure.message}: try again in ${failure.retryAfter} s`;
  }
  return failure;
}

/** A Server-Sent Events parser: `feed(text)` as it arrives, `end()` at the end; `onEvent(name,
 * data)` for each event (its `data:` lines joined), the last one even without a blank line. */
function eventParser(onEvent) {
  let buffer = "";
  let name = "message";
  let data = [];
  const line = (text) => {
    if (text === "") {
      if (data.length) onEvent(name, data.join("\n"));
      name = "message";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // a comment (keep-alive)
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value || "message";
    else if (field === "data") data.push(value);
  };
  const lines = (final) => {
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A "\r" that ends the buffer may be the first half of "\r\n": wait for what follows.
      if (!final && buffer[end] === "\r" && end === buffer.length - 1) return;
      const size = buffer.startsWith("\r\n", end) ? 2 : 1;
      line(buffer.slice(0, end));
      buffer = buffer.slice(end + size);
    }
  };
  return {
    feed(text) {
      buffer += text;
      lines(false);
    },
    end() {
      lines(true);
      if (buffer) line(buffer);
      buffer = "";
      line("");
    },
  };
}

/** Read a Server-Sent Events body as it arrives (bytes decoded as UTF-8 across chunks). */
async function readEvents(body, onEvent) {
  const parser = eventParser(onEvent);
  const reader = body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  parser.feed(decoder.decode());
  parser.end();
}

/** One turn over POST /chat/stream. `onEvent(name, data)` gets each event (its data parsed);
 * resolves with the `message` event's answer. Throws ApiError for an error answer or an `error`
 * event, StreamUnavailable when nothing of the stream could be read. */
async function streamTurn(body, { onEvent, signal }) {
  let response;
  try {
    response = await fetch(url("/chat/stream"), {
      method: "POST",
      headers: {
        Accept: "text/event-stream",
        "Content-Type": "application/json",
        Authorization: `Bearer ${session.get()?.token}`,
      },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new StreamUnavailable(`the stream could not be opened (${err?.message || err})`);
  }
  if (!response.ok) {
    const failure = await failureOf(response);
    if (response.status === 401) signOut(`${failure.code}: ${failure.message}`);
    throw failure;
  }
  let answer = null;
  let failed = null;
  let started = false;
  const handle = (name, raw) => {
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    started = true;
    if (name === "message") answer = data;
    else if (name === "error") failed = Object.assign(new ApiError(500, data?.error, data?.error?.request_id), { interrupted: true });
    onEvent(name, data);
  };
  try {
    if (response.body && typeof response.body.getReader === "function") await readEvents(response.body, handle);
    else {
      const parser = eventParser(handle); // a browser without readable streams: all at once
      parser.feed(await response.text());
      parser.end();
    }
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    if (!started) throw new StreamUnavailable(`the stream broke before it began (${err?.message || err})`);
    throw Object.assign(new ApiError(0, { code: "NETWORK", message: "The stream was interrupted; the answer is stored when the turn ends." }), { interrupted: true });
  }
  if (failed) throw failed;
  if (!answer) {
    if (!started) throw new StreamUnavailable("the stream ended empty");
    throw Object.assign(new ApiError(0, { code: "NETWORK", message: "The stream ended before the answer; the answer is stored when the turn ends." }), { interrupted: true });
  }
  return answer;
}

/** Save `text` as a file the browser downloads. */
function download(name, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function showReport(id) {
  const target = document.getElementById(`report-${id}`);
  if (!target) return;
  target.open = true;
  target.querySelector("summary")?.focus();
  target.scrollIntoView({ block: "nearest" });
}

function Citations({ citations }) {
  if (!citations?.length) return null;
  return html`<p class="muted">Sources: ${citations.map((c) => {
    const target = citationHref(c);
    if (c.kind === "report") return html`<button type="button" class="link small" onClick=${() => showReport(c.id)}>report ${c.id}</button> `;
    return target ? html`<a class="tag" href=${target}>${c.kind} ${c.id}</a>` : html`<span class="tag">${c.kind} ${c.id}</span>`;
  })}</p>`;
}

function ToolCalls({ calls }) {
  if (!calls?.length) return null;
  return html`<details><summary>${calls.length} tool call${calls.length === 1 ? "" : "s"}: ${calls.map((c) => c.name).join(", ")}</summary>
    <ul class="plain">${calls.map((c) => html`<li key=${c.id}>
      <strong class="mono">${c.name}</strong> <span class="badge">${(c.status || "").replaceAll("_", " ")}</span>
      <span class="muted">${c.provenance ? ` arguments from ${c.provenance}` : ""}</span>
      ${c.summary && html`<div>${c.summary}</div>`}
      ${c.reason && html`<div class="muted">${c.reason}</div>`}
      ${c.arguments && Object.keys(c.arguments).length > 0 && html`<${Json} value=${c.arguments} />`}
    </li>`)}</ul>
  </details>`;
}

function Message({ message }) {
  const mine = message.role === "user";
  const flagged = message.injection?.flagged;
  return html`<article class=${`card chat-${message.role}`}>
    <header>
      <strong>${mine ? "You" : "Assistant"}</strong> <${Time} value=${message.created_at} />
      ${message.model && html`<span class="muted">${message.backend} · ${message.model}</span>`}
      ${!mine && message.backend === "builtin" && html`<span class="muted">built-in commands</span>`}
      ${(message.neutralised || []).length > 0 && html`<span class="badge">input neutralised: ${message.neutralised.join(", ")}</span>`}
      ${flagged && html`<span class="badge verdict-suspicious">possible prompt injection in the data</span>`}
      ${(message.redactions || []).length > 0 && html`<span class="badge">${message.redactions.length} redaction(s)</span>`}
    </header>
    <pre class="chat-text">${message.content}</pre>
    ${(message.context || []).length > 0 && html`<details><summary>Pasted data (${message.context.length}), given to the model as untrusted</summary>
      ${message.context.map((c) => html`<div><strong>${c.name || "pasted"}</strong><pre class="chat-text">${clip(c.content, 4000)}</pre></div>`)}</details>`}
    <${ToolCalls} calls=${message.tool_calls} />
    <${Citations} citations=${message.citations} />
    ${message.report_id && html`<p><button type="button" class="link" onClick=${() => showReport(message.report_id)}>Report ${message.report_id}</button></p>`}
    ${!mine && message.usage?.total_tokens > 0 && html`<p class="muted">${num(message.usage.total_tokens)} tokens (${num(message.usage.prompt_tokens)} in, ${num(message.usage.completion_tokens)} out)</p>`}
  </article>`;
}

/** The turn being answered: the question, the text so far, the tools, the report events. */
function LiveTurn({ turn }) {
  return html`<article class="card chat-user"><header><strong>You</strong> <span class="muted">now</span></header>
      <pre class="chat-text">${turn.question}</pre></article>
    <article class="card chat-assistant" aria-busy=${turn.done ? "false" : "true"}>
      <header><strong>Assistant</strong> <span class="muted" role="status">${turn.done ? "answered" : turn.text ? "answering…" : "thinking…"}</span></header>
      <pre class="chat-text">${turn.text}</pre>
      ${turn.tools.length > 0 && html`<ul class="plain" aria-label="Tool calls">${turn.tools.map((t) => html`<li key=${t.id}>
        <span class="mono">${t.name}</span> ${t.status === "confirmation_required"
          ? html`<span class="badge verdict-suspicious">needs your confirmation</span> <span class="muted">${t.reason || ""}</span>`
          : t.result == null ? html`<span class="muted">running…</span>`
          : t.result.ok ? html`<span class="chain-ok">✔</span> ${t.result.summary || ""}` : html`<span class="chain-bad">✘ ${t.result.error || "failed"}</span>`}</li>`)}</ul>`}
    </article>`;
}

function Report({ report }) {
  const subjects = subjectsOf(report.subjects);
  return html`<details class="card" id=${`report-${report.id}`}>
    <summary><strong>${report.title}</strong> <span class="mono muted">${report.id}</span> <span class="muted">by ${report.created_by}, <${Time} value=${report.created_at} /></span></summary>
    <p class="muted">SHA-256 <span class="mono">${report.sha256}</span></p>
    ${subjects.length > 0 && html`<${Citations} citations=${subjects} />`}
    <div class="toolbar"><button type="button" class="small" onClick=${() => download(`${report.id}.md`, report.markdown, "text/markdown")}>Download Markdown</button></div>
    <pre class="chat-text">${report.markdown}</pre>
  </details>`;
}

/** The last turn's report events, kept in sight after the turn ends. */
function ReportEvent({ event }) {
  if (!event) return null;
  if (event.error != null) return html`<p class="notice warn" role="status"><strong>report_error</strong>: no report was written: ${event.error}</p>`;
  return html`<p class="notice good" role="status"><strong>report_generated</strong>: “${event.title}”
    <span class="mono muted">${event.report_id}</span> <button type="button" class="link" onClick=${() => showReport(event.report_id)}>read it</button></p>`;
}

function Conversation({ id, onChanged }) {
  const found = useLoad(() => (id ? api("GET", `/chat/sessions/${enc(id)}`) : Promise.resolve(null)), [id]);
  const [turn, setTurn] = useState(null);
  const [report, setReport] = useState(null);
  const [retryAt, setRetryAt] = useState(null);
  const [shown, setShown] = useState(SHOWN);
  const [note, setNote] = useState(null);
  const [text, setText] = useState("");
  const [pasted, setPasted] = useState({ name: "", content: "" });
  const [allowed, setAllowed] = useState([]);
  const log = useRef(null);
  const stick = useRef(true);
  const abort = useRef(null);
  useEffect(() => () => abort.current?.abort(), []);
  useEffect(() => {
    if (!retryAt) return undefined;
    const timer = setTimeout(() => setRetryAt(null), Math.max(0, retryAt - Date.now()));
    return () => clearTimeout(timer);
  }, [retryAt]);
  useEffect(() => {
    // The stored messages are in: the live copy of the turn goes.
    setTurn((t) => (t?.done ? null : t));
  }, [found.data]);
  useEffect(() => {
    const box = log.current;
    if (box && stick.current) box.scrollTop = box.scrollHeight;
  }, [found.data, turn?.text, turn?.tools.length]);

  const [send, busy, error, clear] = useAction(async (event) => {
    event?.preventDefault();
    const message = text.trim();
    if (!message) return;
    const body = { message };
    if (id) body.session_id = id;
    if (allowed.length) body.confirm_tool_calls = allowed;
    if (pasted.content.trim()) body.context = [{ name: pasted.name.trim() || "pasted", content: pasted.content }];
    setReport(null);
    setNote(null);
    setTurn({ question: message, text: "", tools: [], done: false });
    stick.current = true;
    const controller = new AbortController();
    abort.current = controller;
    let sessionId = id;
    let answered = false;
    try {
      await streamTurn(body, {
        signal: controller.signal,
        onEvent(name, data) {
          if (name === "session") sessionId = data.session_id || sessionId;
          else if (name === "token") setTurn((t) => t && { ...t, text: t.text + (data.text || "") });
          else if (name === "tool_call" || name === "confirmation_required") {
            setTurn((t) => t && { ...t, tools: [...t.tools.filter((x) => x.id !== data.id), { ...data, result: name === "tool_call" ? null : undefined }] });
          } else if (name === "tool_result") {
            setTurn((t) => t && { ...t, tools: t.tools.map((x) => (x.id === data.id ? { ...x, result: data } : x)) });
          } else if (name === "report_generated") setReport({ ...data, title: data.title || data.report_id });
          else if (name === "report_error") setReport({ error: data.reason || "the request for a report was malformed" });
          else if (name === "message") sessionId = data.session_id || sessionId;
        },
      });
      answered = true;
    } catch (err) {
      if (err?.name === "AbortError") {
        setNote("You stopped reading the answer; the assistant finishes it and stores it in the conversation.");
        setTimeout(found.reload, 4000);
        answered = true;
      } else if (err instanceof StreamUnavailable) {
        // Ask the same turn once more, answered whole.
        const answer = await api("POST", "/chat/completions", { body });
        sessionId = answer.session_id;
        if (answer.report) setReport({ report_id: answer.report.id, title: answer.report.title });
        else if (answer.report_error) setReport({ error: answer.report_error });
        setNote(`Streaming was not available (${err.message}): the answer came whole.`);
        answered = true;
      } else {
        if (err.retryAfter) setRetryAt(Date.now() + err.retryAfter * 1000);
        if (err.interrupted) {
          answered = true; // the question is stored; what the turn got to is reloaded
          setTimeout(found.reload, 4000);
        }
        throw err;
      }
    } finally {
      abort.current = null;
      setTurn((t) => t && { ...t, done: true });
      if (answered) {
        setText("");
        setPasted({ name: "", content: "" });
        setAllowed([]);
      }
      onChanged();
      if (sessionId && sessionId !== id) go(chatHref(sessionId));
      else if (id) found.reload();
      else setTurn(null);
    }
  });

  if (id && found.error && !found.data) return html`<${ErrorBox} error=${found.error} />`;
  if (id && !found.data) return html`<${Loading} what="Loading the conversation" />`;
  const detail = found.data;
  const messages = detail?.messages || [];
  const hidden = Math.max(0, messages.length - shown);
  const pending = detail?.pending || [];
  const waiting = retryAt && retryAt > Date.now();
  return html`<section aria-labelledby="chat-title">
    <div class="toolbar">
      <h2 id="chat-title">${detail?.title || "New conversation"}</h2>
      ${detail && html`<span class="muted">${num(detail.message_count)} message(s), started ${fullTime(detail.created_at)}</span>`}
    </div>
    <div class="chat-log" ref=${log} role="log" aria-label="Transcript"
      onScroll=${(e) => { const b = e.currentTarget; stick.current = b.scrollHeight - b.scrollTop - b.clientHeight < 40; }}>
      ${hidden > 0 && html`<p><button type="button" onClick=${() => setShown((n) => n + SHOWN)}>Show ${Math.min(SHOWN, hidden)} earlier message(s)</button>
        <span class="muted"> ${num(hidden)} not shown</span></p>`}
      ${messages.length === 0 && !turn && html`<${Empty}>Ask about alerts, cases, investigations or logs; “help” lists what the assistant can do without a model.<//>`}
      ${messages.slice(hidden).map((m) => html`<${Message} key=${m.seq} message=${m} />`)}
      ${turn && html`<${LiveTurn} turn=${turn} />`}
    </div>
    <${ReportEvent} event=${report} />
    ${note && html`<p class="notice" role="status">${note} <button type="button" class="link" onClick=${() => setNote(null)}>dismiss</button></p>`}
    <form onSubmit=${send} aria-label="Ask the assistant">
      ${pending.length > 0 && html`<fieldset><legend>The assistant waits for your confirmation before these calls</legend>
        <p class="muted">Tick the ones to allow, then send your next message; the others are declined.</p>
        ${pending.map((p) => html`<label class="field" key=${p.id}><span><input type="checkbox" checked=${allowed.includes(p.id)}
            onChange=${(e) => setAllowed((list) => (e.currentTarget.checked ? [...list, p.id] : list.filter((x) => x !== p.id)))} />
          ${" "}Allow <span class="mono">${p.name}</span>${p.reason ? `: ${p.reason}` : ""}</span>
          <${Json} value=${p.arguments || {}} /></label>`)}
      </fieldset>`}
      <label class="field"><span>Message</span><textarea name="message" required maxlength="32000" rows="3" value=${text}
        onInput=${(e) => setText(e.currentTarget.value)}
        onKeyDown=${(e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.currentTarget.form.requestSubmit(); } }}></textarea></label>
      <details><summary>Paste data beside the question (a log excerpt, an e-mail…): the model sees it fenced, as data, never as instructions</summary>
        <${Field} label="Name"><input maxlength="200" value=${pasted.name} placeholder="pasted" onInput=${(e) => setPasted((p) => ({ ...p, name: e.currentTarget.value }))} /><//>
        <${Field} label="Data"><textarea rows="5" maxlength="200000" class="mono" spellcheck="false" value=${pasted.content}
          onInput=${(e) => setPasted((p) => ({ ...p, content: e.currentTarget.value }))}></textarea><//>
      </details>
      <${ErrorBox} error=${error} onDismiss=${clear} />
      ${waiting && html`<p class="notice warn" role="status">Rate limited: sending is held until the limit allows it again: <${Countdown} until=${retryAt} />.</p>`}
      <div class="toolbar">
        <button type="submit" class="primary" disabled=${busy || waiting}>${busy ? "Answering…" : "Send"}</button>
        ${busy && html`<button type="button" onClick=${() => abort.current?.abort()}>Stop reading</button>`}
        <span class="muted">Ctrl+Enter sends.</span>
      </div>
    </form>
    ${(detail?.reports || []).length > 0 && html`<section aria-labelledby="chat-reports">
      <h3 id="chat-reports">Reports (${detail.reports.length})</h3>
      ${detail.reports.map((r) => html`<${Report} key=${r.id} report=${r} />`)}
    </section>`}
  </section>`;
}

function Sessions({ id, list, setOffset, onDelete, busy }) {
  const items = list.data?.items || [];
  return html`<nav aria-label="Conversations">
    <h2>Conversations ${list.data && html`<span class="count">${num(list.data.total)}</span>`}</h2>
    <${ErrorBox} error=${list.error} />
    ${list.loading && !list.data && html`<${Loading} what="Loading conversations" />`}
    ${list.data && items.length === 0 && html`<${Empty}>No conversations yet.<//>`}
    <ul class="plain">${items.map((s) => {
      const subjects = subjectsOf(s.subjects);
      return html`<li key=${s.id} class=${s.id === id ? "selected" : ""}>
        <a href=${chatHref(s.id)} id=${`session-${s.id}`} aria-current=${s.id === id ? "page" : undefined}>${s.title}</a>
        <div class="muted">${num(s.message_count)} message(s), <${Time} value=${s.updated_at} />
          ${can("chat:write") && html` · <button type="button" class="link small" disabled=${busy} onClick=${() => onDelete(s)} aria-describedby=${`session-${s.id}`}>delete</button>`}</div>
        ${subjects.length > 0 && html`<div>${subjects.slice(0, 6).map((c) => {
          const target = citationHref(c);
          return target ? html`<a class="tag" href=${target}>${c.id}</a>` : html`<span class="tag">${c.id}</span>`;
        })}${subjects.length > 6 ? html`<span class="muted"> +${subjects.length - 6}</span>` : ""}</div>`}
      </li>`;
    })}</ul>
    <${Pager} page=${list.data} onChange=${setOffset} />
  </nav>`;
}

export default function Chat({ params }) {
  const id = params[0] || null;
  const [offset, setOffset] = useState(0);
  const [deleting, setDeleting] = useState(null);
  const list = useLoad(() => api("GET", "/chat/sessions", { query: { limit: LIMIT, offset } }), [offset]);
  const [create, creating, createError, clearCreate] = useAction(async () => {
    const created = await api("POST", "/chat/sessions", { body: {} });
    list.reload();
    go(chatHref(created.id));
  });
  const [remove, removing, removeError, clearRemove] = useAction(async (target) => {
    await api("DELETE", `/chat/sessions/${enc(target.id)}`);
    notify(`Conversation “${clip(target.title, 60)}” deleted`, "good");
    setDeleting(null);
    list.reload();
    if (target.id === id) go("#/chat");
  });
  return html`<div>
    <div class="toolbar">
      <h1>Chat</h1>
      <span class="spacer"></span>
      ${can("chat:write") && html`<button type="button" class="primary" disabled=${creating} onClick=${() => create()}>New conversation</button>`}
    </div>
    <${ErrorBox} error=${createError} onDismiss=${clearCreate} />
    <div class="grid2">
      <div><${Conversation} key=${id || "new"} id=${id} onChanged=${list.reload} /></div>
      <${Sessions} id=${id} list=${list} setOffset=${setOffset} busy=${removing}
        onDelete=${(s) => { clearRemove(); setDeleting(s); }} />
    </div>
    <${Dialog} title="Delete the conversation?" open=${Boolean(deleting)} onClose=${() => setDeleting(null)}>
      ${deleting && html`<div>
        <p>Delete “${deleting.title}” and its ${num(deleting.message_count)} message(s)?</p>
        <${ErrorBox} error=${removeError} />
        <div class="toolbar"><button type="button" class="danger" disabled=${removing} onClick=${() => remove(deleting)}>Delete</button>
          <button type="button" onClick=${() => setDeleting(null)}>Cancel</button></div>
      </div>`}
    <//>
  </div>`;
}
