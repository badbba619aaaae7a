// Settings: the operating mode (switching to `active` is confirmed), the runtime knobs and their
// history, the signed-in user's API keys, and (for an admin) the users.
import { api, can } from "../api.js";
import { html, useState } from "../lib.js";
import {
  Badge, Dialog, Empty, ErrorBox, Field, Loading, Pager, Select, Tabs, Time, fromLocalInput,
  notify, num, useAction, useLoad,
} from "../ui.js";

const MODES = [
  {
    value: "dry_run",
    label: "Dry run",
    text: "Record only: every response action and playbook response step is recorded with what it would do; nothing is changed.",
  },
  {
    value: "monitor",
    label: "Monitor",
    text: "Propose: records are written and response actions are proposed for an analyst; none is executed.",
  },
  {
    value: "active",
    label: "Active",
    text: "Execute: response actions (isolating hosts, blocking addresses, domains and senders, account, process and file actions) are carried out for real, as the guardrail policy allows; high-impact and uncorroborated ones wait for a human.",
  },
];
/** The knobs of RuntimeConfigUpdate with the schema's bounds. */
const KNOBS = [
  {
    name: "approval_timeout_seconds",
    label: "Approval timeout (seconds)",
    min: 10,
    max: 86400,
    hint: "How long a high-impact action waits for a human before it is refused.",
  },
  {
    name: "max_concurrent_investigations",
    label: "Concurrent investigations",
    min: 1,
    max: 64,
    hint: "Investigations run at once.",
  },
  {
    name: "alert_dedup_window_seconds",
    label: "Alert dedup window (seconds)",
    min: 0,
    max: 604800,
    hint: "The window in which a repeated alert is a duplicate.",
  },
  {
    name: "chat_rate_limit_per_minute",
    label: "Chat rate limit (per user, per minute)",
    min: 1,
    max: 600,
    hint: "Chat requests each user may make a minute.",
  },
];
const ROLES = ["admin", "analyst", "responder", "hunter", "ml_engineer", "operator", "viewer", "service_agent", "service_responder"];
const CONFIRM_WORD = "ACTIVE";
const HISTORY_PAGE = 10;
const KEYS_PAGE = 20;
const USERS_PAGE = 25;

const modeLabel = (value) => MODES.find((m) => m.value === value)?.label || value;

/** A small confirmation dialog for a destructive action. */
function Confirm({ title, open, onClose, onConfirm, busy, error, children, action = "Confirm" }) {
  return html`<${Dialog} title=${title} open=${open} onClose=${onClose}>
    <form onSubmit=${(e) => { e.preventDefault(); onConfirm(); }}>
      ${children}
      <${ErrorBox} error=${error} />
      <div class="toolbar">
        <button type="submit" class="danger" disabled=${busy}>${busy ? "Working…" : action}</button>
        <button type="button" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

export default function Settings({ params, user }) {
  const tab = params[0] || "runtime";
  const tabs = [
    { id: "runtime", label: "Runtime", href: "#/settings" },
    { id: "api-keys", label: "API keys", href: "#/settings/api-keys" },
    ...(can("admin") ? [{ id: "users", label: "Users", href: "#/settings/users" }] : []),
  ];
  let body;
  if (tab === "api-keys") body = html`<${ApiKeys} user=${user} />`;
  else if (tab === "users") {
    body = can("admin")
      ? html`<${Users} user=${user} />`
      : html`<${ErrorBox} error=${{ code: "AURORA-4030", message: "Insufficient permissions: the users list needs admin" }} />`;
  } else body = html`<${Runtime} />`;
  return html`<h1>Settings</h1>
    <${Tabs} current=${tab} items=${tabs} label="Settings views" />
    ${body}`;
}

// -- runtime ------------------------------------------------------------------------------------

function Runtime() {
  const runtime = useLoad(() => api("GET", "/settings/runtime"), []);
  const writer = can("system:write");
  const data = runtime.data;
  return html`${!writer &&
    html`<p class="notice" role="note">You can see the runtime settings; changing them needs the <code>system:write</code> permission.</p>`}
    <${ErrorBox} error=${runtime.error} />
    ${runtime.loading && !data && html`<${Loading} what="Loading the runtime settings" />`}
    ${data &&
    html`<p class="muted">Last changed ${data.updated_at ? html`<${Time} value=${data.updated_at} /> by ${data.updated_by || "—"}` : "never (the defaults)"}.</p>
      <div class="grid2">
        <${ModeSwitch} key=${`mode-${data.settings.mode}`} current=${data.settings.mode} writer=${writer} onSaved=${runtime.setData} />
        <${Knobs} key=${KNOBS.map((k) => data.settings[k.name]).join("|")} settings=${data.settings} writer=${writer} onSaved=${runtime.setData} />
      </div>
      <${History} history=${data.history} />`}`;
}

function ModeSwitch({ current, writer, onSaved }) {
  const [chosen, setChosen] = useState(current);
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState("");
  const [save, busy, error, clear] = useAction(async (mode) => {
    const saved = await api("PATCH", "/settings/runtime", { body: { mode } });
    setConfirming(false);
    notify(`The platform is now in ${modeLabel(saved.settings.mode)} mode.`, saved.settings.mode === "active" ? "warn" : "good");
    onSaved(saved);
  });
  const apply = (e) => {
    e.preventDefault();
    if (chosen === current) return;
    if (chosen === "active") {
      clear();
      setTyped("");
      setConfirming(true);
    } else save(chosen);
  };
  const active = MODES.find((m) => m.value === "active");
  return html`<div><form class="panel" aria-labelledby="settings-mode" onSubmit=${apply}>
    <h2 id="settings-mode">Operating mode <span class=${`mode mode-${current}`}>${modeLabel(current)}</span></h2>
    <fieldset disabled=${!writer}>
      <legend>What agents and playbooks may do</legend>
      ${MODES.map(
        (m) => html`<p>
          <label><input type="radio" name="mode" value=${m.value} checked=${chosen === m.value}
            onChange=${() => setChosen(m.value)} aria-describedby=${`mode-${m.value}-text`} />
            <strong> ${m.label}</strong> <code class="muted">${m.value}</code>${m.value === current ? " (current)" : ""}</label><br />
          <small id=${`mode-${m.value}-text`} class="muted">${m.text}</small>
        </p>`,
      )}
    </fieldset>
    ${!confirming && html`<${ErrorBox} error=${error} />`}
    ${writer &&
    html`<button type="submit" class=${chosen === "active" ? "danger" : "primary"} disabled=${busy || chosen === current}>
      ${busy ? "Switching…" : chosen === current ? "No change" : `Switch to ${modeLabel(chosen)}${chosen === "active" ? "…" : ""}`}</button>`}
    </form>
    <${Dialog} title="Switch to active mode?" open=${confirming} onClose=${() => setConfirming(false)}>
      <form onSubmit=${(e) => { e.preventDefault(); if (typed === CONFIRM_WORD) save("active"); }}>
        <div class="notice warn" role="alert">
          <p><strong>In active mode response actions are executed for real.</strong></p>
          <p>${active.text}</p>
          <p>Playbooks' response steps run too. Switch back to monitor or dry run to stop new actions; what was executed is not undone.</p>
        </div>
        <${Field} label=${`Type ${CONFIRM_WORD} to confirm`}>
          <input value=${typed} onInput=${(e) => setTyped(e.currentTarget.value)} autocomplete="off" spellcheck="false" required
            aria-describedby="confirm-active-hint" />
        <//>
        <small id="confirm-active-hint" class="muted">In capitals, as shown.</small>
        <${ErrorBox} error=${error} />
        <div class="toolbar">
          <button type="submit" class="danger" disabled=${busy || typed !== CONFIRM_WORD}>${busy ? "Switching…" : "Switch to active"}</button>
          <button type="button" onClick=${() => setConfirming(false)}>Cancel</button>
        </div>
      </form>
    <//>
  </div>`;
}

function Knobs({ settings, writer, onSaved }) {
  const initial = Object.fromEntries(KNOBS.map((k) => [k.name, String(settings[k.name])]));
  const [values, setValues] = useState(initial);
  const changed = KNOBS.filter((k) => values[k.name] !== initial[k.name]);
  const [save, busy, error] = useAction(async () => {
    const body = Object.fromEntries(changed.map((k) => [k.name, Number(values[k.name])]));
    const saved = await api("PATCH", "/settings/runtime", { body });
    notify(`Saved: ${changed.map((k) => k.label.replace(/ \(.*\)$/, "").toLowerCase()).join(", ")}.`, "good");
    onSaved(saved);
  });
  const submit = (e) => {
    e.preventDefault();
    if (changed.length) save();
  };
  return html`<form class="panel" aria-labelledby="settings-knobs" onSubmit=${submit}>
    <h2 id="settings-knobs">Runtime knobs</h2>
    <fieldset disabled=${!writer}>
      <legend class="muted">Whole numbers within the bounds shown</legend>
      ${KNOBS.map(
        (k) => html`<${Field} label=${k.label} hint=${`${k.hint} ${num(k.min)} to ${num(k.max)}.`}>
          <input type="number" name=${k.name} min=${k.min} max=${k.max} step="1" required inputmode="numeric"
            value=${values[k.name]} onInput=${(e) => { const v = e.currentTarget.value; setValues((s) => ({ ...s, [k.name]: v })); }} />
        <//>`,
      )}
    </fieldset>
    <${ErrorBox} error=${error} />
    ${writer &&
    html`<div class="toolbar">
      <button type="submit" class="primary" disabled=${busy || !changed.length}>${busy ? "Saving…" : changed.length ? `Save ${changed.length} change${changed.length > 1 ? "s" : ""}` : "No changes"}</button>
      <button type="button" disabled=${busy || !changed.length} onClick=${() => setValues(initial)}>Undo</button>
    </div>`}
  </form>`;
}

function History({ history }) {
  const [offset, setOffset] = useState(0);
  return html`<section aria-labelledby="settings-history">
    <h2 id="settings-history">History <span class="count">(the newest ${history.length} changes)</span></h2>
    ${!history.length && html`<${Empty}>No change has been made: the defaults are in force.<//>`}
    ${history.length > 0 &&
    html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">When</th><th scope="col">By</th><th scope="col">Changes</th></tr></thead>
        <tbody>
          ${history.slice(offset, offset + HISTORY_PAGE).map(
            (h) => html`<tr key=${h.id}>
              <td><${Time} value=${h.changed_at} /></td>
              <td>${h.changed_by}</td>
              <td>${Object.entries(h.changes).map(
                ([key, change]) => html`<div><code>${key}</code>: ${change && typeof change === "object" && "new" in change
                  ? html`<span class="muted">${String(change.old)}</span> → <strong>${String(change.new)}</strong>`
                  : JSON.stringify(change)}</div>`,
              )}</td>
            </tr>`,
          )}
        </tbody>
      </table></div>
      <${Pager} total=${history.length} limit=${HISTORY_PAGE} offset=${offset} onChange=${setOffset} />`}
  </section>`;
}

// -- API keys -----------------------------------------------------------------------------------

function keyState(key) {
  if (key.revoked_at) return "revoked";
  if (key.expires_at && new Date(key.expires_at).getTime() <= Date.now()) return "expired";
  return "active";
}

function ApiKeys({ user }) {
  const [offset, setOffset] = useState(0);
  const [nonce, setNonce] = useState(0);
  const keys = useLoad(() => api("GET", "/auth/api-keys", { query: { limit: KEYS_PAGE, offset } }), [offset, nonce]);
  const [created, setCreated] = useState(null);
  const [revoking, setRevoking] = useState(null);
  const [revoke, busy, error, clear] = useAction(async (key) => {
    await api("DELETE", `/auth/api-keys/${encodeURIComponent(key.id)}`);
    setRevoking(null);
    notify(`API key “${key.name}” revoked.`, "good");
    keys.reload();
  });
  const items = keys.data?.items || [];
  return html`<div class="grid2">
    <section aria-labelledby="settings-keys">
      <div class="toolbar">
        <h2 id="settings-keys">Your API keys</h2>
        <span class="count">${user.username}</span>
        <span class="spacer"></span>
        <button type="button" onClick=${keys.reload} disabled=${keys.loading}>Refresh</button>
      </div>
      ${created && html`<${NewKey} created=${created} onDismiss=${() => setCreated(null)} />`}
      <${ErrorBox} error=${keys.error} />
      ${keys.loading && !keys.data && html`<${Loading} />`}
      ${keys.data && !items.length && html`<${Empty}>You have no API keys.<//>`}
      ${items.length > 0 &&
      html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Permissions</th><th scope="col">State</th>
          <th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col">Revoke</th></tr></thead>
        <tbody>
          ${items.map((k) => {
            const state = keyState(k);
            return html`<tr key=${k.id}>
              <td>${k.name}</td>
              <td class="mono">${k.prefix}…</td>
              <td><details><summary>${k.permissions.length} permission${k.permissions.length === 1 ? "" : "s"}</summary>
                ${k.permissions.map((p) => html`<span class="tag">${p}</span>`)}</details></td>
              <td><${Badge} value=${state} kind="status" /></td>
              <td><${Time} value=${k.created_at} /></td>
              <td>${k.expires_at ? html`<${Time} value=${k.expires_at} />` : html`<span class="muted">never</span>`}</td>
              <td>${k.last_used_at ? html`<${Time} value=${k.last_used_at} />` : html`<span class="muted">never</span>`}</td>
              <td class="actions">${state === "revoked"
                ? html`<span class="muted">—</span>`
                : html`<button type="button" class="small danger" aria-label=${`Revoke the API key ${k.name}`}
                    onClick=${() => { clear(); setRevoking(k); }}>Revoke</button>`}</td>
            </tr>`;
          })}
        </tbody>
      </table></div>`}
      <${Pager} total=${keys.data?.total} limit=${KEYS_PAGE} offset=${offset} onChange=${setOffset} />
    </section>
    <${KeyForm} user=${user} onCreated=${(key) => {
      setCreated(key);
      setOffset(0);
      setNonce((n) => n + 1);
    }} />
    <${Confirm} title="Revoke the API key?" open=${revoking != null} onClose=${() => setRevoking(null)}
      onConfirm=${() => revoke(revoking)} busy=${busy} error=${error} action="Revoke">
      <p>The key <strong>${revoking?.name}</strong> (<code>${revoking?.prefix}…</code>) stops working at once. This cannot be undone.</p>
    <//>
  </div>`;
}

/** A key's secret, shown this once. */
function NewKey({ created, onDismiss }) {
  const [copied, setCopied] = useState(false);
  const copy = async (e) => {
    const input = e.currentTarget.closest(".notice")?.querySelector("input");
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied(true);
    } catch {
      input?.select();
      notify("Copying was refused here: the key is selected, copy it with Ctrl+C (⌘C).", "warn");
    }
  };
  return html`<div class="notice good" role="status" aria-labelledby="new-key-title">
    <p id="new-key-title"><strong>API key “${created.name}” created.</strong> Copy its secret now: it is shown this once and cannot be read again.</p>
    <label class="field"><span>Secret</span>
      <input name="new-api-key" class="mono" readonly value=${created.key} size="64" onFocus=${(e) => e.currentTarget.select()} /></label>
    <div class="toolbar">
      <button type="button" class="primary" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
      <button type="button" onClick=${onDismiss}>I have stored it</button>
    </div>
    <small class="muted">Send it as <code>Authorization: Bearer …</code>. Revoke it here when it is no longer needed.</small>
  </div>`;
}

function KeyForm({ user, onCreated }) {
  const own = [...(user.permissions || [])].sort();
  const [name, setName] = useState("");
  const [expires, setExpires] = useState("");
  const [all, setAll] = useState(true);
  const [chosen, setChosen] = useState(() => new Set(own.filter((p) => p.endsWith(":read"))));
  const [create, busy, error] = useAction(async () => {
    const body = { name: name.trim() };
    if (!all) body.permissions = [...chosen];
    const at = fromLocalInput(expires);
    if (at) body.expires_at = at;
    const key = await api("POST", "/auth/api-keys", { body });
    setName("");
    setExpires("");
    onCreated(key);
  });
  const toggle = (p) =>
    setChosen((set) => {
      const next = new Set(set);
      if (next.has(p)) next.delete(p);
      else next.add(p);
      return next;
    });
  const submit = (e) => {
    e.preventDefault();
    create();
  };
  return html`<form class="panel" aria-labelledby="settings-key-new" onSubmit=${submit}>
    <h2 id="settings-key-new">New API key</h2>
    <${Field} label="Name"><input value=${name} onInput=${(e) => setName(e.currentTarget.value)} required maxlength="100" /><//>
    <${Field} label="Expires (optional)" hint="Empty: it does not expire.">
      <input type="datetime-local" value=${expires} onInput=${(e) => setExpires(e.currentTarget.value)} />
    <//>
    <fieldset>
      <legend>Permissions</legend>
      <label><input type="checkbox" checked=${all} onChange=${(e) => setAll(e.currentTarget.checked)} /> All of mine (${own.length})</label>
      ${!all &&
      html`<div>${own.map(
        (p) => html`<label class="tag"><input type="checkbox" checked=${chosen.has(p)} onChange=${() => toggle(p)} /> ${p}</label> `,
      )}</div>`}
    </fieldset>
    <${ErrorBox} error=${error} />
    <button type="submit" class="primary" disabled=${busy || (!all && !chosen.size)}>${busy ? "Creating…" : "Create key"}</button>
  </form>`;
}

// -- users (admin) ------------------------------------------------------------------------------

function Users({ user }) {
  const [offset, setOffset] = useState(0);
  const [role, setRole] = useState(null);
  const [nonce, setNonce] = useState(0);
  const users = useLoad(() => api("GET", "/users", { query: { limit: USERS_PAGE, offset, role } }), [offset, role, nonce]);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState(null);
  const [remove, busy, error, clear] = useAction(async (target) => {
    await api("DELETE", `/users/${encodeURIComponent(target.username)}`);
    setDeleting(null);
    notify(`User ${target.username} deleted, with their API keys.`, "good");
    users.reload();
  });
  const items = users.data?.items || [];
  return html`<section aria-labelledby="settings-users">
    <div class="toolbar">
      <h2 id="settings-users">Users</h2>
      ${users.data && html`<span class="count">${num(users.data.total)}</span>`}
      <label class="field"><span>Role</span>
        <${Select} name="role" label="Role" value=${role} options=${ROLES} onChange=${(v) => { setOffset(0); setRole(v); }} /></label>
      <span class="spacer"></span>
      <button type="button" onClick=${users.reload} disabled=${users.loading}>Refresh</button>
      <button type="button" class="primary" onClick=${() => setCreating(true)}>New user…</button>
    </div>
    <${ErrorBox} error=${users.error} />
    ${users.loading && !users.data && html`<${Loading} />`}
    ${users.data && !items.length && html`<${Empty}>No users${role ? ` with the role ${role}` : ""}.<//>`}
    ${items.length > 0 &&
    html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">E-mail</th><th scope="col">Role</th>
        <th scope="col">State</th><th scope="col">Created</th><th scope="col">Last sign-in</th><th scope="col">Delete</th></tr></thead>
      <tbody>
        ${items.map(
          (u) => html`<tr key=${u.id}>
            <td class="mono">${u.username}${u.username === user.username ? html` <small class="muted">(you)</small>` : ""}</td>
            <td>${u.full_name || html`<span class="muted">—</span>`}</td>
            <td>${u.email || html`<span class="muted">—</span>`}</td>
            <td><${Badge} value=${u.role} /></td>
            <td><${Badge} value=${u.is_active ? "active" : "disabled"} kind="status" /></td>
            <td><${Time} value=${u.created_at} /></td>
            <td>${u.last_login_at ? html`<${Time} value=${u.last_login_at} />` : html`<span class="muted">never</span>`}</td>
            <td class="actions">${u.username === user.username
              ? html`<span class="muted" title="You cannot delete yourself">—</span>`
              : html`<button type="button" class="small danger" aria-label=${`Delete the user ${u.username}`}
                  onClick=${() => { clear(); setDeleting(u); }}>Delete</button>`}</td>
          </tr>`,
        )}
      </tbody>
    </table></div>`}
    <${Pager} total=${users.data?.total} limit=${USERS_PAGE} offset=${offset} onChange=${setOffset} />
    <${Dialog} title="New user" open=${creating} onClose=${() => setCreating(false)}>
      <${UserForm} onCancel=${() => setCreating(false)} onCreated=${(created) => {
        setCreating(false);
        notify(`User ${created.username} created (${created.role}).`, "good");
        setOffset(0);
        setNonce((n) => n + 1);
      }} />
    <//>
    <${Confirm} title="Delete the user?" open=${deleting != null} onClose=${() => setDeleting(null)}
      onConfirm=${() => remove(deleting)} busy=${busy} error=${error} action="Delete">
      <p>The user <strong>${deleting?.username}</strong> and all their API keys are deleted; their sessions end. This cannot be undone.</p>
    <//>
  </section>`;
}

function UserForm({ onCreated, onCancel }) {
  const [form, setForm] = useState({ username: "", password: "", role: "analyst", email: "", full_name: "" });
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [name]: value }));
  };
  const [create, busy, error] = useAction(async () => {
    const body = { username: form.username.trim(), password: form.password, role: form.role };
    if (form.email.trim()) body.email = form.email.trim();
    if (form.full_name.trim()) body.full_name = form.full_name.trim();
    onCreated(await api("POST", "/users", { body }));
  });
  const submit = (e) => {
    e.preventDefault();
    create();
  };
  return html`<form onSubmit=${submit}>
    <${Field} label="Username" hint="2 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.">
      <input value=${form.username} onInput=${set("username")} required pattern="[a-z0-9][a-z0-9._\\-]{1,63}" maxlength="64" autocomplete="off" />
    <//>
    <${Field} label="Password" hint="At least 12 characters.">
      <input type="password" value=${form.password} onInput=${set("password")} required minlength="12" maxlength="1024" autocomplete="new-password" />
    <//>
    <${Field} label="Role">
      <${Select} name="role" label="Role" value=${form.role} options=${ROLES} blank=${null} onChange=${(v) => setForm((f) => ({ ...f, role: v || "analyst" }))} />
    <//>
    <${Field} label="E-mail (optional)"><input type="email" value=${form.email} onInput=${set("email")} /><//>
    <${Field} label="Full name (optional)"><input value=${form.full_name} onInput=${set("full_name")} maxlength="200" /><//>
    <${ErrorBox} error=${error} />
    <div class="toolbar">
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Creating…" : "Create user"}</button>
      <button type="button" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}
