// The console's shell: sign-in, the navigation, the hash router that loads each screen's
// module on first use, and the session's user and mode.
import { api, can, logout, mode, session, signIn, signOut, signOutReason } from "./api.js";
import { html, render, useEffect, useRef, useState, useStore } from "./lib.js";
import { ErrorBox, Loading, Notices } from "./ui.js";

/** The screens: hash path, label, the permission that shows it, its module. */
export const SCREENS = [
  { path: "alerts", label: "Alerts", permission: "alerts:read", load: () => import("./screens/alerts.js") },
  { path: "cases", label: "Cases", permission: "cases:read", load: () => import("./screens/cases.js") },
  { path: "investigations", label: "Investigations", permission: "investigations:read", load: () => import("./screens/investigations.js") },
  { path: "approvals", label: "Approvals", permission: "investigations:read", load: () => import("./screens/approvals.js") },
  { path: "siem", label: "SIEM", permission: "siem:read", load: () => import("./screens/siem.js") },
  { path: "detections", label: "Detections", permission: "siem:read", load: () => import("./screens/detections.js") },
  { path: "soar", label: "SOAR", permission: "soar:read", load: () => import("./screens/soar.js") },
  { path: "edr", label: "EDR", permission: "edr:read", load: () => import("./screens/edr.js") },
  { path: "network", label: "Network", permission: "network:read", load: () => import("./screens/network.js") },
  { path: "fleet", label: "Fleet", permission: "agents:read", load: () => import("./screens/fleet.js") },
  { path: "chat", label: "Chat", permission: "chat:read", load: () => import("./screens/chat.js") },
  { path: "settings", label: "Settings", permission: "system:read", load: () => import("./screens/settings.js") },
];

/** `#/cases/CASE-1?tab=tasks` → `{screen: "cases", params: ["CASE-1"], query: {tab: "tasks"}}`. */
export function parseHash(hash) {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?");
  const [screen = "", ...params] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { screen, params, query: Object.fromEntries(new URLSearchParams(search)) };
}

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

/** An SSO sign-in hands the session over in the URL fragment (`#access_token=...`): take it
 * and remove it from the address bar and the history at once. */
function takeSsoSession() {
  if (!location.hash.startsWith("#access_token=")) return;
  const given = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", `${location.pathname}${location.search}#/alerts`);
  signIn({ access_token: given.get("access_token"), expires_in: given.get("expires_in") });
}

function Login() {
  const reason = useStore(signOutReason);
  const [providers, setProviders] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api("GET", "/auth/providers").then((p) => setProviders(p.providers), setError);
  }, []);
  const password = providers?.some((p) => p.type === "password");
  const sso = (providers || []).filter((p) => p.type !== "password");
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      signIn(
        await api("POST", "/auth/token", {
          body: { username: form.get("username"), password: form.get("password") },
        }),
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const back = `${location.pathname}`;
  return html`<main id="main" class="login">
    <h1>AuroraSOC</h1>
    ${reason && html`<p class="notice warn" role="status">${reason}</p>`}
    <${ErrorBox} error=${error} />
    ${providers === null && !error && html`<${Loading} what="Loading sign-in methods" />`}
    ${password &&
    html`<form id="login" onSubmit=${submit}>
      <label class="field"><span>Username</span>
        <input name="username" autocomplete="username" required autofocus maxlength="64" /></label>
      <label class="field"><span>Password</span>
        <input name="password" type="password" autocomplete="current-password" required maxlength="1024" /></label>
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
    </form>`}
    ${sso.length > 0 &&
    html`<div class="sso">
      <p class="muted">${password ? "Or sign in with" : "Sign in with"}</p>
      ${sso.map((p) => {
        const target = new URL(p.login_url, location.origin);
        target.searchParams.set("redirect_uri", back);
        return html`<a class="button" href=${target.pathname + target.search}>${p.name} (${p.type.toUpperCase()})</a>`;
      })}
    </div>`}
  </main>`;
}

function ModeBadge() {
  const current = useStore(mode);
  if (!current) return null;
  return html`<a href="#/settings" class=${`mode mode-${current}`} title="The platform's operating mode">mode: ${current.replace("_", " ")}</a>`;
}

/** Screen modules already loaded, by path: shown at once, without waiting for an effect. */
const loadedScreens = new Map();

function loadScreen(entry) {
  return entry.load().then((module) => {
    loadedScreens.set(entry.path, module.default);
    return module;
  });
}

function Screen({ route, user }) {
  const entry = SCREENS.find((s) => s.path === route.screen);
  const known = entry && loadedScreens.get(entry.path);
  const [loaded, setLoaded] = useState(known ? { path: entry.path, View: known } : null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let live = true;
    if (loadedScreens.has(entry?.path)) {
      setLoaded({ path: entry.path, View: loadedScreens.get(entry.path) });
      return undefined;
    }
    setLoaded(null);
    setError(null);
    entry && loadScreen(entry).then(
      (module) => live && setLoaded({ path: entry.path, View: module.default }),
      (err) => live && setError({ code: "CONSOLE", message: `This screen failed to load: ${err.message}` }),
    );
    return () => {
      live = false;
    };
  }, [entry]);
  if (!entry) return html`<${ErrorBox} error=${{ code: "AURORA-4040", message: `No screen '${route.screen}'` }} />`;
  if (!can(entry.permission)) {
    return html`<${ErrorBox} error=${{ code: "AURORA-4030", message: `Insufficient permissions: ${entry.label} needs ${entry.permission}` }} />`;
  }
  if (error) return html`<${ErrorBox} error=${error} />`;
  const View = loaded?.path === entry.path ? loaded.View : known;
  if (!View) return html`<${Loading} />`;
  return html`<${View} params=${route.params} query=${route.query} user=${user} />`;
}

function Shell({ user }) {
  const hash = useHash();
  const route = parseHash(hash || "#/alerts");
  if (!route.screen) route.screen = SCREENS.find((s) => can(s.permission))?.path || "alerts";
  const main = useRef(null);
  const first = useRef(true);
  useEffect(() => {
    // A new screen: move focus to it so keyboard and screen-reader users start there (not on
    // the first one, where the first Tab reaches "Skip to content").
    if (!first.current) main.current?.focus({ preventScroll: true });
    first.current = false;
  }, [route.screen]);
  return html`<a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/alerts">AuroraSOC</a>
      <nav aria-label="Screens">
        ${SCREENS.filter((s) => can(s.permission)).map(
          (s) => html`<a href=${`#/${s.path}`} aria-current=${route.screen === s.path ? "page" : undefined}>${s.label}</a>`,
        )}
      </nav>
      <${ModeBadge} />
      <span class="user" title=${`role: ${user.role}`}>${user.username}</span>
      <button type="button" class="link" onClick=${logout}>Sign out</button>
    </header>
    <main id="main" ref=${main} tabindex="-1"><${Screen} route=${route} user=${user} /></main>`;
}

function App() {
  const current = useStore(session);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!current || current.user) return;
    setError(null);
    // Fetch the screen's code while the profile loads, not after.
    loadScreen(SCREENS.find((s) => s.path === parseHash(location.hash).screen) || SCREENS[0]).catch(() => {});
    api("GET", "/users/me").then(
      (user) => session.set((s) => (s && s.token === current.token ? { ...s, user } : s)),
      (err) => {
        setError(err);
        if (err.status === 401) signOut(`${err.code}: ${err.message}`);
      },
    );
  }, [current?.token]);
  let body;
  if (!current) body = html`<${Login} />`;
  else if (!current.user) body = error ? html`<main id="main"><${ErrorBox} error=${error} /></main>` : html`<main id="main"><${Loading} what="Signing in" /></main>`;
  else body = html`<${Shell} user=${current.user} />`;
  return html`${body}<${Notices} />`;
}

takeSsoSession();
render(html`<${App} />`, document.getElementById("app"));
