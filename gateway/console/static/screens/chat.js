// Chat: the analyst's assistant. Sessions (new, open, delete), a session's messages, and a turn
// streamed from POST /chat/stream (Server-Sent Events read as they arrive: the text shows as it
// comes, always as text, never as HTML), with the tools it called, what waits for the user's
// confirmation, and the report it wrote. Rate limits are said with the time to wait.
import { api, ApiError, session, url } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { Empty, ErrorBox, Json, Loading, Pager, Time, useAction, useLoad } from "../ui.js";

const LIMIT = 25;

/** Parse a Server-Sent Events body as it arrives: `onEvent(name, data)` per event. */
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let name = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

/** One turn, streamed; resolves with the stored answer (`message` event's data). */
async function streamTurn(body, onEvent) {
  const response = await fetch(url("/chat/stream"), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${session.get()?.token}` },
    body: JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) {
    let error = null;
    try {
      error = (await response.json()).error;
    } catch {
      // not an envelope
    }
    const failure = new ApiError(response.status, error, response.headers.get("X-Request-ID"));
    const wait = response.headers.get("Retry-After");
    if (response.status === 429 && wait) failure.message = `${failure.message}: try again in ${wait} s`;
    throw failure;
  }
  let final = null;
  let failed = null;
  await readEvents(response, (name, raw) => {
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    if (name === "message") final = data;
    else if (name === "error") failed = new ApiError(500, data.error, data.error?.request_id);
    onEvent(name, data);
  });
  if (failed) throw failed;
  return final;
}

function Message({ message }) {
  return html`<article class=${`card chat-${message.role}`} aria-label=${`${message.role} message`}>
    <header><strong>${message.role === "user" ? "You" : "Assistant"}</strong> <${Time} value=${message.created_at} />
      ${message.model && html`<span class="muted">${message.backend} ${message.model}</span>`}
      ${(message.neutralised || []).length > 0 && html`<span class="badge" title=${`Neutralised before the model saw it: ${message.neutralised.join(", ")}`}>input neutralised</span>`}</header>
    <pre class="chat-text">${message.content}</pre>
    ${(message.tool_calls || []).length > 0 && html`<details><summary>${message.tool_calls.length} tool call(s)</summary><${Json} value=${message.tool_calls} /></details>`}
    ${(message.citations || []).length > 0 && html`<p class="muted">Sources: ${message.citations.map((c) => html`<span class="tag">${c.id || c.ref || JSON.stringify(c)}</span>`)}</p>`}
    ${message.report_id && html`<p>Report <span class="mono">${message.report_id}</span></p>`}
  </article>`;
}

function Conversation({ id, onChanged }) {
  const found = useLoad(() => api("GET", `/chat/sessions/${encodeURIComponent(id)}`), [id]);
  const [live, setLive] = useState(null);
  const box = useRef(null);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [found.data, live?.text]);
  const [send, busy, error] = useAction(async (event) => {
    event.preventDefault();
    const target = event.currentTarget;
    const message = new FormData(target).get("message");
    const confirm = [...new FormData(target).getAll("confirm")];
    setLive({ question: message, text: "", tools: [], report: null, pending: [] });
    try {
      await streamTurn({ message, session_id: id, confirm_tool_calls: confirm }, (name, data) => {
        setLive((turn) => {
          if (!turn) return turn;
          if (name === "token") return { ...turn, text: turn.text + (data.text || "") };
          if (name === "tool_call" || name === "tool_result") return { ...turn, tools: [...turn.tools, { name, ...data }] };
          if (name === "confirmation_required") return { ...turn, pending: [...turn.pending, data] };
          if (name === "report_generated") return { ...turn, report: data };
          if (name === "report_error") return { ...turn, report: { error: data.reason } };
          return turn;
        });
      });
    } catch (err) {
      if (err.status === 0 || err instanceof TypeError) {
        // The stream could not be read (a proxy that buffers): ask once, without streaming.
        await api("POST", "/chat/completions", { body: { message, session_id: id, confirm_tool_calls: confirm } });
      } else {
        throw err;
      }
    } finally {
      setLive(null);
      target.reset();
      found.reload();
      onChanged();
    }
  });
  if (found.error && !found.data) return html`<${ErrorBox} error=${found.error} />`;
  if (!found.data) return html`<${Loading} />`;
  const detail = found.data;
  return html`<section aria-label=${detail.title}>
    <h2>${detail.title}</h2>
    <div class="chat-log" ref=${box} role="log" aria-live="polite">
      ${detail.messages.length === 0 && !live && html`<${Empty}>Ask about alerts, cases, investigations or logs; try "help".<//>`}
      ${detail.messages.map((m) => html`<${Message} key=${m.seq} message=${m} />`)}
      ${live && html`<article class="card chat-user"><header><strong>You</strong></header><pre class="chat-text">${live.question}</pre></article>
        <article class="card chat-assistant" aria-busy="true"><header><strong>Assistant</strong> <span class="muted">answering…</span></header>
          <pre class="chat-text">${live.text}</pre>
          ${live.tools.map((t) => html`<div class="muted">${t.name === "tool_call" ? "calls" : "result of"} ${t.tool || t.name}</div>`)}
          ${live.report && html`<p class=${live.report.error ? "notice warn" : "notice good"}>${live.report.error ? `No report: ${live.report.error}` : `Report written: ${live.report.title || live.report.id}`}</p>`}</article>`}
    </div>
    ${(detail.pending || []).length > 0 && html`<p class="notice warn">The assistant waits for your confirmation before acting: tick what to allow and send again.</p>`}
    <form onSubmit=${send} aria-label="Ask the assistant">
      ${(detail.pending || []).map((p) => html`<label><input type="checkbox" name="confirm" value=${p.id} /> ${p.tool || p.name}: ${p.summary || JSON.stringify(p.arguments || {})}</label>`)}
      <label class="field"><span>Message</span><textarea name="message" required maxlength="20000" rows="3"
        onKeyDown=${(e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form.requestSubmit(); }}></textarea></label>
      <${ErrorBox} error=${error} />
      <div class="toolbar"><button type="submit" class="primary" disabled=${busy}>${busy ? "Answering…" : "Send"}</button><span class="muted">Ctrl+Enter sends.</span></div>
    </form>
  </section>`;
}

export default function Chat({ params }) {
  const [offset, setOffset] = useState(0);
  const list = useLoad(() => api("GET", "/chat/sessions", { query: { limit: LIMIT, offset } }), [offset]);
  const id = params[0];
  const [act, busy, error] = useAction(async (kind, target) => {
    if (kind === "new") {
      const created = await api("POST", "/chat/sessions", { body: {} });
      location.hash = `#/chat/${encodeURIComponent(created.id)}`;
    } else if (kind === "delete" && confirm(`Delete the conversation "${target.title}"?`)) {
      await api("DELETE", `/chat/sessions/${encodeURIComponent(target.id)}`);
      if (target.id === id) location.hash = "#/chat";
    }
    list.reload();
  });
  return html`<div>
    <div class="toolbar"><h1>Chat</h1><span class="spacer"></span><button type="button" class="primary" disabled=${busy} onClick=${() => act("new")}>New conversation</button></div>
    <${ErrorBox} error=${error || list.error} />
    <div class="grid2 chat">
      <div>${id ? html`<${Conversation} key=${id} id=${id} onChanged=${list.reload} />` : html`<p class="panel muted">Open a conversation or start a new one.</p>`}</div>
      <nav aria-label="Conversations">
        ${list.data?.items.length === 0 && html`<${Empty}>No conversations yet.<//>`}
        <ul class="plain">${(list.data?.items || []).map((s) => html`<li key=${s.id} class=${s.id === id ? "selected" : ""}>
          <a href=${`#/chat/${encodeURIComponent(s.id)}`} aria-current=${s.id === id ? "page" : undefined}>${s.title}</a>
          <span class="muted"> ${s.message_count} message(s), <${Time} value=${s.updated_at} /></span>
          <button type="button" class="link small" disabled=${busy} onClick=${() => act("delete", s)} aria-label=${`Delete ${s.title}`}>delete</button></li>`)}</ul>
        <${Pager} page=${list.data} onChange=${setOffset} />
      </nav>
    </div>
  </div>`;
}
