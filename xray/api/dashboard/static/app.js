// X-Ray dashboard entry point: hash router, session (API key) and the login form.
//
// Routes (every view is a stable, shareable URL; filters live in the hash query):
//   #/runs?pipeline=&status=&range=&since=&until=&meta=k=v&step_type=&min_elim=&cursor=
//   #/runs/<id>?step=<step id>&decision=&reason=&dcursor=
//   #/candidates/<key>?run=<run id>
//   #/compare?a=<run id>&b=<run id>
//   #/steps?type=&pipeline=&name=&status=&min_elim=&max_elim=&min_input=&cursor=
//   #/groups?pipeline=&by=

import { ApiError, api, clear, errorBox, getKey, h, loading, setKey } from "./lib.js";
import { renderRuns } from "./runs.js";
import { renderRun } from "./run.js";
import { renderCandidate } from "./candidate.js";
import { renderCompare } from "./compare.js";
import { renderQueries } from "./queries.js";
import { renderGroups } from "./groups.js";

const root = document.getElementById("app");
const sessionBox = document.getElementById("session");
let current = null; // {controller} of the view being rendered; replaced on every navigation
let lastPath = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const q = raw.indexOf("?");
  const path = q === -1 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q === -1 ? "" : raw.slice(q + 1));
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  return { path, parts, params };
}

function matchRoute(parts) {
  const [first, second] = parts;
  if (first === "runs" && parts.length === 1) return { nav: "runs", view: renderRuns };
  if (first === "runs" && parts.length === 2) return { nav: "runs", view: renderRun, arg: second };
  if (first === "candidates" && parts.length >= 2)
    return { nav: "runs", view: renderCandidate, arg: parts.slice(1).join("/") };
  if (first === "compare") return { nav: "compare", view: renderCompare };
  if (first === "groups") return { nav: "groups", view: renderGroups };
  if (first === "steps" || first === "queries") return { nav: "steps", view: renderQueries };
  return null;
}

function recoveryLinks() {
  return h(
    "p",
    { class: "recovery" },
    h("button", { class: "btn", type: "button", text: "← Back", on: { click: () => history.back() } }),
    h("a", { class: "btn", href: "#/runs", text: "All runs" }),
    h("button", { class: "btn btn-quiet", type: "button", text: "Retry", on: { click: () => route() } }),
  );
}

function renderSession() {
  clear(sessionBox);
  const key = getKey();
  if (!key) return;
  sessionBox.append(
    h("span", { class: "muted", title: "Sent as the X-API-Key header", text: `API key …${key.slice(-4)}` }),
    h("button", {
      class: "btn btn-quiet",
      type: "button",
      id: "sign-out",
      text: "Sign out",
      on: {
        click: () => {
          setKey("");
          route();
        },
      },
    }),
  );
}

function renderLogin(message) {
  document.title = "Sign in · X-Ray";
  const input = h("input", {
    type: "password",
    id: "api-key",
    name: "api-key",
    autocomplete: "current-password",
    placeholder: "xray_…",
    required: true,
  });
  const note = h("p", { class: "form-error", role: "alert", text: message || "" });
  const form = h(
    "form",
    {
      class: "login card",
      id: "login-form",
      on: {
        submit: async (event) => {
          event.preventDefault();
          const key = input.value.trim();
          if (!key) return;
          setKey(key);
          try {
            await api("/pipelines", { limit: 1 });
            route();
          } catch (e) {
            if (e instanceof ApiError && e.status === 401) {
              setKey("");
              note.textContent = "That key was not accepted. Check it and try again.";
            } else {
              note.textContent = e.message;
            }
          }
        },
      },
    },
    h("h1", { text: "Sign in to X-Ray" }),
    h("p", {
      class: "muted",
      text: "This server requires an API key. It is kept in this browser's local storage and sent as the X-API-Key header; it never appears in a URL.",
    }),
    h("label", { for: "api-key", text: "API key" }),
    input,
    note,
    h("button", { class: "btn btn-primary", type: "submit", text: "Sign in" }),
  );
  clear(root).append(form);
  input.focus();
}

async function route() {
  if (current) current.controller.abort();
  const controller = new AbortController();
  const me = { controller };
  current = me;
  renderSession();
  const { path, parts, params } = parseHash();
  if (parts.length === 0) {
    location.replace("#/runs");
    return;
  }
  const match = matchRoute(parts);
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", Boolean(match) && a.dataset.nav === match.nav);
  }
  if (!match) {
    clear(root).append(
      errorBox({ title: "Page not found", message: `There is no page at #${parts.join("/")}.` }),
      recoveryLinks(),
    );
    lastPath = path;
    root.dataset.ready = location.hash;
    return;
  }
  // Re-rendering the same page (a filter, a step opened) keeps the old content visible,
  // dimmed, until the new one is ready, so the scroll position does not jump.
  delete root.dataset.ready;
  if (path !== lastPath) {
    clear(root).append(loading());
    window.scrollTo(0, 0);
  } else root.setAttribute("aria-busy", "true");
  lastPath = path;
  const ctx = {
    root,
    params,
    arg: match.arg,
    signal: controller.signal,
    isCurrent: () => current === me,
  };
  try {
    await match.view(ctx);
  } catch (e) {
    if (!ctx.isCurrent() || (e && e.name === "AbortError")) return;
    if (e instanceof ApiError && e.status === 401) {
      renderLogin(getKey() ? "The stored API key was not accepted. Sign in again." : "");
      return;
    }
    if (!(e instanceof ApiError)) console.error(e);
    clear(root).append(
      errorBox(e instanceof ApiError ? e : { title: "The page failed to render", message: String(e) }),
      recoveryLinks(),
    );
  } finally {
    if (ctx.isCurrent()) {
      root.removeAttribute("aria-busy");
      // Which URL the page now shows in full (tests and scripts wait on this).
      root.dataset.ready = location.hash;
    }
  }
}

window.addEventListener("hashchange", route);
route();
