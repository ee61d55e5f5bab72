// Shared helpers for the X-Ray dashboard: DOM building, formatting, the API client, URLs.
//
// Every piece of user data reaches the page through `h()` below, which only ever sets
// textContent and attributes, never innerHTML: run outputs, reasons and candidate keys
// come from arbitrary pipelines and must not be able to run script in the browser.

const KEY_STORAGE = "xray.apiKey";

// ---------------------------------------------------------------- DOM

/** Build an element. attrs: {class, text, on:{event:fn}, dataset, ...attributes}. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = String(value);
      else if (name === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      else if (name === "dataset") Object.assign(el.dataset, value);
      else if (name === "style") for (const [k, v] of Object.entries(value)) el.style.setProperty(k, v);
      else if (name === "href") el.setAttribute("href", safeHref(value));
      else if (value === true) el.setAttribute(name, "");
      else el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

// Links are only ever built by the dashboard itself, but keys in them come from users:
// refuse anything that is not an in-page hash route or a same-origin path.
function safeHref(value) {
  const s = String(value);
  return s.startsWith("#") || s.startsWith("/") ? s : "#";
}

/** Make a table row open `href` when clicked anywhere but on its own links. */
export function rowLink(tr, href) {
  tr.classList.add("row-link");
  tr.addEventListener("click", (event) => {
    if (event.target.closest("a, button, input, select") || window.getSelection().toString()) return;
    location.hash = href;
  });
  return tr;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// ---------------------------------------------------------------- formatting

const numberFormat = new Intl.NumberFormat("en-US");

export function fmtInt(n) {
  return n === null || n === undefined ? "—" : numberFormat.format(n);
}

/** "1 run", "2 runs", "1,204 decisions". */
export function plural(n, word) {
  return `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * A share as a percentage, precise enough never to round to 0% or 100% when it is not:
 * 0.775 → "77.5%", 1 → "100%", 1 − 1/12,345,678 → "99.99999%".
 */
export function fmtPct(rate, digits = 1) {
  if (rate === null || rate === undefined) return "—";
  if (rate === 0 || rate === 1) return `${rate * 100}%`;
  for (let d = digits; d < 10; d++) {
    const text = (rate * 100).toFixed(d);
    if (Number(text) !== 0 && Number(text) !== 100) return `${text}%`;
  }
  return `${(rate * 100).toExponential(2)}%`;
}

/** A count short enough for a narrow column: 12,345 stays, 12,345,678 → "12.3 M". */
export function fmtCount(n) {
  if (n === null || n === undefined) return "—";
  const abs = Math.abs(n);
  if (abs < 1e6) return fmtInt(n);
  if (abs < 1e9) return `${(n / 1e6).toFixed(abs < 1e7 ? 2 : 1)} M`;
  if (abs < 1e12) return `${(n / 1e9).toFixed(abs < 1e10 ? 2 : 1)} G`;
  return n.toExponential(2);
}

/** A duration in the units that suit it: "420 ms", "4.20 s", "2 min 5 s", "27 h 26 min". */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  const hours = Math.round(ms / 3_600_000);
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtRelative(iso) {
  if (!iso) return "";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 0) return "in the future";
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A one-line, length-bounded preview of any JSON value. */
export function preview(value, max = 90) {
  if (value === null || value === undefined) return "";
  let s;
  if (typeof value === "string") s = value;
  else if (typeof value === "object" && !Array.isArray(value)) {
    // A flat record reads better as "key: value · key: value" than as JSON.
    s = Object.entries(value)
      .map(([k, v]) => `${k}: ${briefValue(v)}`)
      .join(" · ");
  } else {
    try {
      s = JSON.stringify(value);
    } catch {
      s = String(value);
    }
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

// A nested record is named by its most human field when it has one ({title: ...}).
const NAME_FIELDS = ["title", "name", "label", "id", "key"];
function briefValue(v) {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const name = NAME_FIELDS.find((f) => typeof v[f] === "string" || typeof v[f] === "number");
    if (name) return String(v[name]);
  }
  if (Array.isArray(v)) return v.map((item) => briefValue(item)).join(", ");
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

export function pretty(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") {
    // A preview stored as JSON text (e.g. by an older SDK) reads better indented.
    const t = value.trim();
    if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
      try {
        return JSON.stringify(JSON.parse(t), null, 2);
      } catch {
        return value;
      }
    }
    return value;
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export function shortId(id) {
  return String(id || "").slice(0, 8);
}

// ---------------------------------------------------------------- small components

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, text: status });
}

export function typeChip(type) {
  return h("span", { class: "chip chip-type", text: type });
}

export function decisionBadge(decision) {
  return h("span", { class: `decision decision-${decision}`, text: decision });
}

export function loading(text = "Loading…") {
  return h("p", { class: "state state-loading", role: "status", text });
}

export function empty(title, hint) {
  return h(
    "div",
    { class: "state state-empty" },
    h("strong", { text: title }),
    hint ? h("p", {}, hint) : null,
  );
}

export function errorBox(err) {
  const title =
    err && err.status ? `${err.title} (HTTP ${err.status})` : (err && err.title) || "Something went wrong";
  const fields = (err && err.fields) || [];
  return h(
    "div",
    { class: "state state-error", role: "alert" },
    h("strong", { text: title }),
    h("p", { text: (err && err.message) || String(err) }),
    fields.length
      ? h(
          "ul",
          {},
          fields.map((f) => h("li", {}, h("code", { text: f.field }), " ", f.message)),
        )
      : null,
  );
}

export function codeBlock(value, cls = "") {
  return h("pre", { class: `code ${cls}`.trim(), text: pretty(value) });
}

// ---------------------------------------------------------------- API client

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
    this.title =
      status === 401
        ? "Not signed in"
        : status === 404
          ? "Not found"
          : status === 503
            ? "Database unavailable"
            : status >= 500
              ? "Server error"
              : status === 0
                ? "Cannot reach the X-Ray API"
                : "Request rejected";
  }
}

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** GET a JSON endpoint; params is an object (arrays repeat the key). Throws ApiError. */
export async function api(path, params, signal) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((item) => qs.append(k, item));
    else qs.append(k, String(v));
  }
  // Relative to the page, so the dashboard also works behind a proxy under a path prefix
  // (a page served at /xray/ calls /xray/runs).
  const relative = path.replace(/^\//, "");
  const url = qs.toString() ? `${relative}?${qs}` : relative;
  const headers = { Accept: "application/json" };
  const key = getKey();
  // The key travels in a header only: never in the URL, never in a cookie (no CSRF surface).
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(url, { headers, signal, credentials: "omit", cache: "no-store" });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", `The request to ${path} failed: is the server running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = (body && body.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, body && body.error, message, body && body.fields);
  }
  return body;
}

/**
 * Await a list request, but hand back a rejected filter (400/422) as a value so the page
 * can still show its filter form next to the message. Anything else is thrown.
 */
export async function filterResult(promise) {
  try {
    return { page: await promise, error: null };
  } catch (e) {
    if (e instanceof ApiError && (e.status === 400 || e.status === 422)) return { page: null, error: e };
    throw e;
  }
}

export function enc(s) {
  return encodeURIComponent(String(s));
}

/** A hash URL: route + query object (empty values dropped, arrays repeated). */
export function hashUrl(route, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((item) => item !== "" && qs.append(k, item));
    else qs.append(k, String(v));
  }
  const s = qs.toString();
  return `#${route}${s ? `?${s}` : ""}`;
}

export function runLink(id, text) {
  return h("a", { href: `#/runs/${enc(id)}`, class: "mono", text: text ?? shortId(id) });
}

export function candidateLink(key, runId) {
  return h("a", {
    href: hashUrl(`/candidates/${enc(key)}`, { run: runId }),
    class: "mono candidate",
    text: key,
    title: `Follow ${key} across steps and runs`,
  });
}

/**
 * Cursor pagination both ways. Cursors are kept in the URL (so a page is shareable) and
 * the cursors of the pages before it too, so "Previous page" goes back one page.
 */
export function pager({ count, nextCursor, hasPrev, onFirst, onPrev, onNext, label }) {
  return h(
    "div",
    { class: "pager" },
    h("span", { class: "muted", id: "pager-label", text: label ?? `${fmtInt(count)} shown` }),
    h("span", { class: "spacer" }),
    h("button", {
      class: "btn",
      type: "button",
      disabled: !hasPrev,
      on: { click: onFirst },
      text: "« First page",
    }),
    onPrev
      ? h("button", {
          class: "btn",
          type: "button",
          id: "pager-prev",
          disabled: !hasPrev,
          on: { click: onPrev },
          text: "‹ Previous page",
        })
      : null,
    h("button", {
      class: "btn",
      type: "button",
      id: "pager-next",
      disabled: !nextCursor,
      on: { click: onNext },
      text: "Next page ›",
    }),
  );
}
