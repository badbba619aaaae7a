// The REST client: every screen talks to the public API through `api()`, with the session's
// bearer token held in memory only (never in localStorage or a readable cookie).
import { store } from "./lib.js";

export const BASE = "/api/v1";

/** `{token, expiresAt, user}` while signed in, else null. */
export const session = store(null);
/** Why the last session ended (shown on the sign-in page), or null. */
export const signOutReason = store(null);
/** The platform's operating mode, as the last response's X-AuroraSOC-Mode header said. */
export const mode = store(null);

let expiryTimer = null;

/** An AURORA error envelope (or a network failure, code "NETWORK"), thrown by `api()`. */
export class ApiError extends Error {
  constructor(status, error, requestId) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || (status ? `HTTP ${status}` : "NETWORK");
    this.detail = error?.detail ?? null;
    this.requestId = requestId || error?.request_id || null;
  }
}

export function signIn({ access_token, expires_in }) {
  const expiresAt = Date.now() + Number(expires_in || 0) * 1000;
  session.set({ token: access_token, expiresAt, user: null });
  signOutReason.set(null);
  clearTimeout(expiryTimer);
  if (expires_in) {
    expiryTimer = setTimeout(
      () => signOut("Your session expired: sign in again."),
      Math.min(expiresAt - Date.now(), 2 ** 31 - 1),
    );
  }
}

export function signOut(reason = null) {
  clearTimeout(expiryTimer);
  session.set(null);
  signOutReason.set(reason);
}

/** Sign out on the server too (the token is revoked), then forget it here. */
export async function logout() {
  try {
    await api("POST", "/auth/logout");
  } catch {
    // Already expired or revoked: there is nothing left to invalidate.
  }
  signOut(null);
}

export function url(path, query) {
  const target = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) for (const item of value) target.searchParams.append(key, item);
    else target.searchParams.set(key, String(value));
  }
  return target;
}

/** `api("GET", "/alerts", {query: {limit: 50}})`: the parsed JSON answer (null for 204).
 * `body` is sent as JSON, `text` as-is with `contentType`, `form` (a FormData) as
 * multipart/form-data. Throws ApiError. */
export async function api(method, path, { query, body, text, contentType, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  const current = session.get();
  if (current) headers.Authorization = `Bearer ${current.token}`;
  const init = { method, headers, credentials: "omit", cache: "no-store", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (form !== undefined) {
    init.body = form; // the browser writes the multipart boundary
  } else if (text !== undefined) {
    headers["Content-Type"] = contentType || "text/plain";
    init.body = text;
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError(0, { code: "NETWORK", message: "The gateway cannot be reached." });
  }
  const reported = response.headers.get("X-AuroraSOC-Mode");
  if (reported && reported !== mode.get()) mode.set(reported);
  const requestId = response.headers.get("X-Request-ID");
  let data = null;
  if (response.status !== 204) {
    const raw = await response.text();
    if (raw && (response.headers.get("Content-Type") || "").includes("json")) {
      try {
        data = JSON.parse(raw);
      } catch {
        data = null;
      }
    } else {
      data = raw || null;
    }
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : null;
    const failure = new ApiError(response.status, error, requestId);
    if (response.status === 401 && current && path !== "/auth/token") {
      signOut(`${failure.code}: ${failure.message}`);
    }
    throw failure;
  }
  return data;
}

/** Whether the signed-in user holds `permission` ("alerts:write"). */
export function can(permission) {
  const user = session.get()?.user;
  return Boolean(user && (user.permissions || []).includes(permission));
}
