// The receipt's tool-call chain, recomputed in the browser: each link is SHA-256 over the
// previous link (64 zeros first) and the record's canonical JSON, as the platform writes it
// (Python's json.dumps with sorted keys: ", " and ": " separators, non-ASCII as \uXXXX).

function pyString(text) {
  return JSON.stringify(text).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

/** `json.dumps(value, sort_keys=True)` of a JSON value. Floats are written as JavaScript
 * writes them, which matches Python for every value but integral floats (1.0): the records
 * chained hold strings only. */
export function canonical(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "NaN";
  if (typeof value === "string") return pyString(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(", ")}]`;
  const keys = Object.keys(value).sort(byCodePoint);
  return `{${keys.map((k) => `${pyString(k)}: ${canonical(value[k])}`).join(", ")}}`;
}

async function sha256(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether this page can hash (WebCrypto needs a secure context: HTTPS or localhost). */
export const canVerify = () => Boolean(globalThis.crypto?.subtle);

/** Recompute `receipt.tool_calls`' chain: `{ok, links: [{index, expected, recorded, ok}],
 * last, recorded}`; the first link that differs is where the record was changed. */
export async function verifyChain(receipt) {
  const calls = receipt?.tool_calls || [];
  let link = "0".repeat(64);
  const links = [];
  for (const [index, call] of calls.entries()) {
    const { chain, ...record } = call;
    link = await sha256(link + canonical(record));
    links.push({ index, expected: link, recorded: chain, ok: link === chain });
  }
  const recorded = receipt?.tool_call_chain ?? null;
  return { ok: links.every((l) => l.ok) && link === recorded, links, last: link, recorded };
}
