// Runs list: filters in the URL, one page (cursor) of GET /runs at a time.

import {
  api,
  clear,
  empty,
  enc,
  errorBox,
  filterResult,
  fmtDuration,
  fmtInt,
  fmtRelative,
  fmtTime,
  h,
  hashUrl,
  fmtPct,
  loading,
  pager,
  preview,
  rowLink,
  shortId,
  statusBadge,
  plural,
} from "./lib.js";

export const STEP_TYPES = [
  "llm",
  "retrieval",
  "filter",
  "rank",
  "select",
  "transform",
  "classify",
  "generate",
  "evaluate",
  "custom",
];
export const STATUSES = ["running", "success", "error"];
const RANGES = [
  ["", "Any time"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];
const RANGE_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const FILTER_KEYS = [
  "pipeline",
  "status",
  "range",
  "since",
  "until",
  "meta",
  "step_type",
  "min_elim",
  "reason",
  "min_reason",
  "cols",
  "limit",
];
const PAGE_SIZES = ["25", "50", "100", "200"];

/** Page size from the URL, clamped to what the API accepts (1..500). */
export function pageSize(params, fallback = 50) {
  const n = Math.floor(Number(params.get("limit")));
  return Number.isFinite(n) && n >= 1 ? Math.min(n, 500) : fallback;
}

export function select(name, options, value, label) {
  return h(
    "select",
    { name, id: `f-${name}`, "aria-label": label },
    options.map(([v, text]) => h("option", { value: v, selected: v === value, text })),
  );
}

// The pipeline dropdown changes rarely; reuse it for a minute instead of asking again on
// every filter change.
let pipelineCache = null;

export async function pipelineOptions(signal) {
  if (pipelineCache && Date.now() - pipelineCache.at < 60_000) return pipelineCache.options;
  // One page is enough for a dropdown; a deployment with more than 500 pipeline names
  // can still put one in the URL.
  const page = await api("/pipelines", { limit: 500 }, signal);
  const options = page.items.map((p) => [p.pipeline, `${p.pipeline} (${fmtInt(p.run_count)})`]);
  pipelineCache = { at: Date.now(), options };
  return options;
}

function localInputValue(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function toIso(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** Translate the page's URL filters into GET /runs query parameters. */
export function runsQuery(params) {
  const q = {
    pipeline: params.get("pipeline"),
    status: params.get("status"),
    since: params.get("since"),
    until: params.get("until"),
    cursor: params.get("cursor"),
    limit: pageSize(params),
  };
  const range = params.get("range");
  if (range && RANGE_MS[range] && !q.since) q.since = new Date(Date.now() - RANGE_MS[range]).toISOString();
  // "key=value", or "key!=value" for "differs or is missing" (the API's metadata.key!=v).
  for (const m of params.getAll("meta")) {
    const i = m.indexOf("=");
    if (i > 0) q[`metadata.${m.slice(0, i).trim()}`] = m.slice(i + 1).trim();
  }
  const reason = params.get("reason");
  if (reason) {
    q.reason = reason;
    const share = params.get("min_reason");
    if (share !== null && share !== "") q.min_reason_rate = Number(share) / 100;
  }
  const stepType = params.get("step_type");
  const minElim = params.get("min_elim");
  if (stepType) {
    q.step_type = stepType;
    if (minElim !== null && minElim !== "") q.min_elimination_rate = Number(minElim) / 100;
  }
  return q;
}

export async function renderRuns(ctx) {
  const { root, params, signal } = ctx;
  document.title = "Runs · X-Ray";
  const query = runsQuery(params);
  const { cursor: _cursor, limit: _limit, ...filters } = query;
  const [pipelines, { page, error }, total] = await Promise.all([
    pipelineOptions(signal),
    filterResult(api("/runs", query, signal)),
    api("/runs/count", filters, signal).catch(() => null),
  ]);
  if (!ctx.isCurrent()) return;

  const form = filterForm(params, pipelines);
  const active = FILTER_KEYS.some((k) => k !== "limit" && params.get(k));
  const body = h("section", { class: "card" });
  if (error) {
    body.append(errorBox(error));
    clear(root).append(h("div", { class: "page-head" }, h("h1", { text: "Runs" })), form, body);
    return;
  }
  if (page.items.length === 0) {
    body.append(
      empty(
        active ? "No runs match these filters." : "No runs recorded yet.",
        active
          ? h("a", { href: "#/runs", text: "Clear all filters" })
          : "Instrument a pipeline with the X-Ray SDK (or run `xray demo`) and its runs appear here.",
      ),
    );
  } else {
    body.append(runsTable(page.items, metadataColumns(params, page.items)));
  }
  const base = Object.fromEntries(
    FILTER_KEYS.map((k) => [k, k === "meta" ? params.getAll(k) : params.get(k)]),
  );
  // The cursors of the pages before this one, so "Previous page" can go back one.
  const back = params.getAll("back");
  const pageNumber = back.length + (params.get("cursor") ? 2 : 1);
  const first = (pageNumber - 1) * pageSize(params) + 1;
  const last = first + page.items.length - 1;
  const of = total ? ` of ${total.exact ? fmtInt(total.total) : `more than ${fmtInt(total.total)}`}` : "";
  body.append(
    pager({
      count: page.items.length,
      nextCursor: page.next_cursor,
      hasPrev: Boolean(params.get("cursor")),
      label: page.items.length
        ? `Page ${fmtInt(pageNumber)} · runs ${fmtInt(first)}–${fmtInt(last)}${of}`
        : `No runs on this page${of}`,
      onFirst: () => (location.hash = hashUrl("/runs", base)),
      onPrev: () => {
        const cursor = params.get("cursor") ? back[back.length - 1] || "" : "";
        location.hash = hashUrl("/runs", { ...base, cursor, back: back.slice(0, -1) });
      },
      onNext: () =>
        (location.hash = hashUrl("/runs", {
          ...base,
          cursor: page.next_cursor,
          back: params.get("cursor") ? [...back, params.get("cursor")] : back,
        })),
    }),
  );
  const contrastBox = selectsRuns(params) ? h("section", { class: "card", id: "contrast" }, loading()) : null;
  clear(root).append(
    h(
      "div",
      { class: "page-head" },
      h("h1", { text: "Runs" }),
      h("p", { class: "muted", text: "Newest first. Open a run to see why it produced its output." }),
    ),
    form,
    ...(contrastBox ? [contrastBox] : []),
    body,
  );
  if (contrastBox) await fillContrast(contrastBox, params, filters, signal);
}

/** Whether the filters pick a subset of one pipeline's runs (worth contrasting). */
function selectsRuns(params) {
  return Boolean(
    params.get("pipeline") &&
      (params.getAll("meta").length || params.get("status") || params.get("reason") || params.get("step_type")),
  );
}

/** "What sets these runs apart": GET /contrast with the page's filters. */
async function fillContrast(box, params, filters, signal) {
  let body;
  try {
    body = await api("/contrast", { ...filters, limit: 6 }, signal);
  } catch (e) {
    if (e && e.name === "AbortError") return;
    clear(box).append(h("p", { class: "muted", text: `No contrast: ${e.message}` }));
    return;
  }
  const runsOf = (field, value) => {
    if (!field.startsWith("metadata.")) return null;
    return hashUrl("/runs", {
      pipeline: params.get("pipeline"),
      meta: [`${field.slice("metadata.".length)}=${value}`],
    });
  };
  clear(box).append(
    h(
      "div",
      { class: "section-head" },
      h("h2", { text: "What sets these runs apart" }),
      h("span", {
        class: "muted",
        text: `${fmtInt(body.inside)} selected vs ${fmtInt(body.outside)} other runs of ${params.get("pipeline")}${body.sampled ? " (newest runs)" : ""}`,
      }),
    ),
    body.items.length
      ? h(
          "table",
          { class: "grid compact fixed", id: "contrast-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { text: "Field" }),
              h("th", { text: "Value" }),
              h("th", { class: "num", text: "Selected" }),
              h("th", { class: "num", text: "Others" }),
              h("th", { text: "" }),
            ),
          ),
          h(
            "tbody",
            {},
            body.items.map((item) => {
              const value = typeof item.value === "string" ? item.value : JSON.stringify(item.value);
              const link = runsOf(item.field, value);
              return h(
                "tr",
                { dataset: { field: item.field } },
                h("td", { class: "mono cell-clip", title: item.field, text: item.field }),
                h(
                  "td",
                  { class: "mono cell-clip", title: value },
                  link ? h("a", { href: link, text: value }) : value,
                ),
                h("td", { class: "num", text: `${fmtInt(item.inside)}/${fmtInt(item.inside_total)}` }),
                h("td", { class: "num", text: `${fmtInt(item.outside)}/${fmtInt(item.outside_total)}` }),
                h("td", { class: "muted", text: item.note || "" }),
              );
            }),
          ),
        )
      : h("p", { class: "muted", text: "No field separates these runs from the others." }),
    body.reasons.length
      ? h(
          "p",
          { class: "reason-contrast", id: "contrast-reason" },
          h("span", { class: "muted", text: "Largest difference in rejections: " }),
          h("strong", { text: body.reasons[0].step }),
          ` rejects ${fmtPct(body.reasons[0].inside)} of its input for `,
          h("code", { text: body.reasons[0].reason }),
          ` here vs ${fmtPct(body.reasons[0].outside)} in the other runs.`,
        )
      : null,
  );
}

/** Metadata keys to show as columns: ?cols=locale,app_version. */
function metadataColumns(params, runs) {
  const chosen = (params.get("cols") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (chosen.length) return chosen.slice(0, 6);
  // Unasked, a pipeline's runs show their filterable metadata keys (up to three).
  if (!params.get("pipeline")) return [];
  const counts = new Map();
  for (const run of runs) for (const k of Object.keys(run.metadata || {})) counts.set(k, (counts.get(k) || 0) + 1);
  return [...counts].filter(([, n]) => n === runs.length).map(([k]) => k).slice(0, 3);
}

function filterForm(params, pipelines) {
  const metaInput = h("input", {
    name: "meta",
    id: "f-meta",
    type: "text",
    placeholder: "key=value, key2!=value2",
    value: params.getAll("meta").join(", "),
  });
  const minElim = h("input", {
    name: "min_elim",
    id: "f-min_elim",
    type: "number",
    min: 0,
    max: 100,
    step: "any",
    placeholder: "90",
    value: params.get("min_elim") || "",
    class: "num-input",
  });
  const since = h("input", {
    name: "since",
    id: "f-since",
    type: "datetime-local",
    value: localInputValue(params.get("since")),
  });
  const until = h("input", {
    name: "until",
    id: "f-until",
    type: "datetime-local",
    value: localInputValue(params.get("until")),
  });
  const form = h(
    "form",
    {
      class: "filters card",
      id: "runs-filters",
      on: {
        submit: (event) => {
          event.preventDefault();
          const data = new FormData(form);
          const meta = String(data.get("meta") || "")
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s.includes("="));
          location.hash = hashUrl("/runs", {
            pipeline: data.get("pipeline"),
            status: data.get("status"),
            range: data.get("range"),
            since: toIso(data.get("since")),
            until: toIso(data.get("until")),
            meta,
            step_type: data.get("step_type"),
            min_elim: data.get("step_type") ? data.get("min_elim") : "",
            reason: data.get("reason"),
            min_reason: data.get("reason") ? data.get("min_reason") : "",
            cols: data.get("cols"),
            limit: data.get("limit") === "50" ? "" : data.get("limit"),
          });
        },
      },
    },
    field(
      "Pipeline",
      select("pipeline", [["", "All pipelines"], ...pipelines], params.get("pipeline") || "", "Pipeline"),
    ),
    field(
      "Status",
      select(
        "status",
        [["", "Any status"], ...STATUSES.map((s) => [s, s])],
        params.get("status") || "",
        "Status",
      ),
    ),
    field("Started", select("range", RANGES, params.get("range") || "", "Started within")),
    field("From", since),
    field("To", until),
    field("Metadata", metaInput, "wide"),
    h(
      "div",
      { class: "field field-sentence" },
      h("label", { for: "f-step_type", text: "Has a step of type" }),
      h(
        "div",
        { class: "inline" },
        select(
          "step_type",
          [["", "any type"], ...STEP_TYPES.map((t) => [t, t])],
          params.get("step_type") || "",
          "Step type",
        ),
        h("span", { class: "muted", text: "eliminating more than" }),
        minElim,
        h("span", { class: "muted", text: "%" }),
      ),
    ),
    h(
      "div",
      { class: "field field-sentence" },
      h("label", { for: "f-reason", text: "Has a step rejecting for reason" }),
      h(
        "div",
        { class: "inline" },
        h("input", {
          name: "reason",
          id: "f-reason",
          type: "text",
          placeholder: "locale_mismatch",
          value: params.get("reason") || "",
        }),
        h("span", { class: "muted", text: "at least" }),
        h("input", {
          name: "min_reason",
          id: "f-min_reason",
          type: "number",
          min: 0,
          max: 100,
          step: "any",
          placeholder: "0",
          value: params.get("min_reason") || "",
          class: "num-input",
        }),
        h("span", { class: "muted", text: "% of its input" }),
      ),
    ),
    field(
      "Metadata columns",
      h("input", {
        name: "cols",
        id: "f-cols",
        type: "text",
        placeholder: "locale, app_version",
        value: params.get("cols") || "",
      }),
    ),
    field(
      "Per page",
      select(
        "limit",
        [...new Set([...PAGE_SIZES, String(pageSize(params))])].sort((a, b) => a - b).map((n) => [n, n]),
        String(pageSize(params)),
        "Runs per page",
      ),
      "narrow",
    ),
    h(
      "div",
      { class: "field actions" },
      h("button", { class: "btn btn-primary", type: "submit", text: "Apply filters" }),
      h("a", { class: "btn btn-quiet", href: "#/runs", text: "Reset" }),
    ),
  );
  return form;
}

export function field(label, control, extra = "") {
  return h("div", { class: `field ${extra}`.trim() }, h("label", { for: control.id, text: label }), control);
}

function metaText(value) {
  if (value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function runsTable(runs, columns = []) {
  return h(
    "table",
    { class: "grid fixed", id: "runs-table" },
    h(
      "colgroup",
      {},
      h("col", { class: "c-pipeline" }),
      h("col", { class: "c-status" }),
      h("col", { class: "c-time" }),
      h("col", { class: "c-num" }),
      h("col", { class: "c-num-s" }),
      columns.map(() => h("col", { class: "c-meta" })),
      h("col", { class: "c-output" }),
      h("col", { class: "c-run" }),
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { text: "Pipeline" }),
        h("th", { text: "Status" }),
        h("th", { text: "Started" }),
        h("th", { class: "num", text: "Duration" }),
        h("th", { class: "num", text: "Steps" }),
        columns.map((k) => h("th", { class: "cell-clip meta-col", title: `metadata.${k}`, text: k })),
        h("th", { text: "Output" }),
        h("th", { text: "Run" }),
      ),
    ),
    h(
      "tbody",
      {},
      runs.map((run) => {
        const href = `#/runs/${enc(run.id)}`;
        return rowLink(
          h(
            "tr",
            { class: run.status === "error" ? "row-error" : "", dataset: { runId: run.id } },
            h(
              "td",
              { class: "cell-clip", title: run.pipeline },
              h("a", { href, class: "strong", text: run.pipeline }),
            ),
            h("td", {}, statusBadge(run.status)),
            h("td", { class: "nowrap", title: fmtRelative(run.started_at) }, fmtTime(run.started_at)),
            h("td", { class: "num", text: fmtDuration(run.duration_ms) }),
            h("td", { class: "num", text: fmtInt(run.step_count) }),
            columns.map((k) => {
              const text = metaText((run.metadata || {})[k]);
              return h("td", { class: "cell-clip mono", title: text, text });
            }),
            h(
              "td",
              { class: "preview mono", title: preview(run.error ? run.error : run.output, 2000) },
              run.error
                ? h("span", {
                    class: "err-text",
                    text: `${run.error.type}: ${preview(run.error.message, 70)}`,
                  })
                : preview(run.output, 80),
            ),
            h("td", {}, h("a", { href, class: "mono muted-link", text: shortId(run.id) })),
          ),
          href,
        );
      }),
    ),
  );
}
