// Live streams over the public WebSocket routes: the credential in `?access_token=` (a browser
// cannot set headers on an upgrade), reconnection with jittered exponential backoff, and every
// gap made visible: events the server dropped for a slow client ({"type": "gap"}) and the
// time spent disconnected, after which a screen reloads what it shows.
import { session, signOut, url } from "./api.js";
import { useEffect, useRef, useState } from "./lib.js";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;

export function backoff(attempt) {
  const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** Open `path` (under /api/v1) and keep it open until `close()`.
 * `onMessage(message)` gets each JSON message; `onStatus(status)` each change of
 * `{state: "connecting"|"live"|"reconnecting"|"forbidden"|"ended", attempt, retryAt, dropped,
 * outages, error}`; `onResume()` is called when the stream is live again after an outage. */
export function openStream(path, query, { onMessage, onStatus, onResume }) {
  let socket = null;
  let stopped = false;
  let attempt = 0;
  let timer = null;
  let lastError = null;
  let wasLive = false;
  const status = { state: "connecting", attempt: 0, retryAt: null, dropped: 0, outages: 0, error: null };
  const report = (change) => {
    Object.assign(status, change);
    onStatus?.({ ...status });
  };

  function connect() {
    const current = session.get();
    if (!current || stopped) return;
    const target = url(path, { ...query, access_token: current.token });
    target.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    report({ state: attempt ? "reconnecting" : "connecting", retryAt: null });
    socket = new WebSocket(target);
    socket.onopen = () => {
      if (wasLive) onResume?.();
      wasLive = true;
      attempt = 0;
      lastError = null;
      report({ state: "live", attempt: 0, error: null });
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message?.type === "gap") report({ dropped: status.dropped + (Number(message.dropped) || 0) });
      if (message?.type === "error") lastError = message.error;
      onMessage?.(message);
    };
    socket.onclose = (event) => {
      socket = null;
      if (stopped) return;
      if (event.code === CLOSE_UNAUTHENTICATED) {
        report({ state: "ended", error: lastError });
        signOut(lastError ? `${lastError.code}: ${lastError.message}` : "Your session ended.");
        return;
      }
      if (event.code === CLOSE_FORBIDDEN) {
        report({ state: "forbidden", error: lastError || { code: "AURORA-4030", message: event.reason } });
        return;
      }
      const delay = backoff(attempt);
      attempt += 1;
      report({
        state: "reconnecting",
        attempt,
        retryAt: Date.now() + delay,
        outages: status.outages + (status.state === "live" ? 1 : 0),
      });
      timer = setTimeout(connect, delay);
    };
  }

  connect();
  return {
    send(message) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(message));
      return true;
    },
    close() {
      stopped = true;
      clearTimeout(timer);
      socket?.close(1000);
    },
  };
}

/** A stream held open while the component is mounted (reopened when `key` changes).
 * Returns `[status, send]`. The handlers may change between renders. */
export function useStream(path, query, { onMessage, onResume } = {}, key = "") {
  const [status, setStatus] = useState({ state: "connecting", dropped: 0, outages: 0 });
  const handlers = useRef({});
  handlers.current = { onMessage, onResume };
  const stream = useRef(null);
  useEffect(() => {
    const opened = openStream(path, query, {
      onMessage: (m) => handlers.current.onMessage?.(m),
      onResume: () => handlers.current.onResume?.(),
      onStatus: setStatus,
    });
    stream.current = opened;
    return () => opened.close();
  }, [path, key]);
  return [status, (message) => stream.current?.send(message) ?? false];
}

