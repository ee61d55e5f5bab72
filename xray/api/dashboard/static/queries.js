// Queries: the cross-pipeline step search (GET /steps), one page at a time.

import {
  api,
  clear,
  empty,
  enc,
  errorBox,
  filterResult,
  fmtDuration,
  fmtInt,
  fmtTime,
  h,
  hashUrl,
  pager,
  shortId,
  statusBadge,
  typeChip,
  plural,
  rowLink,
} from "./lib.js";
import { elimClass, fmtElimination } from "./run.js";
import { STATUSES, STEP_TYPES, field, pipelineOptions, select } from "./runs.js";

const KEYS = ["type", "name", "pipeline", "status", "min_elim", "max_elim", "min_input"];
const EXAMPLES = [
  ["Filters that eliminated more than 90%", { type: "filter", min_elim: "90" }],
  ["LLM steps that failed", { type: "llm", status: "error" }],
  ["Selections from more than 3 candidates", { type: "select", min_input: "4" }],
];

function pct(v) {
  return v === null || v === "" || v === undefined ? undefined : Number(v) / 100;
}

export async function renderQueries(ctx) {
  const { root, params, signal } = ctx;
  document.title = "Queries · X-Ray";
  const cursor = params.get("cursor") || "";
  const base = Object.fromEntries(KEYS.map((k) => [k, params.get(k)]));
  const [pipelines, { page, error }] = await Promise.all([
    pipelineOptions(signal),
    filterResult(
      api(
        "/steps",
        {
          type: base.type,
          name: base.name,
          pipeline: base.pipeline,
          status: base.status,
          min_elimination_rate: pct(base.min_elim),
          max_elimination_rate: pct(base.max_elim),
          min_input_count: base.min_input,
          cursor,
          limit: 50,
        },
        signal,
      ),
    ),
  ]);
  if (!ctx.isCurrent()) return;
  const num = (name, placeholder, attrs = {}) =>
    h("input", {
      name,
      id: `q-${name}`,
      type: "number",
      min: 0,
      step: "any",
      class: "num-input",
      placeholder,
      value: params.get(name) || "",
      ...attrs,
    });
  const form = h(
    "form",
    {
      class: "filters card",
      id: "steps-filters",
      on: {
        submit: (e) => {
          e.preventDefault();
          const data = new FormData(form);
          location.hash = hashUrl(
            "/steps",
            Object.fromEntries(KEYS.map((k) => [k, String(data.get(k) || "").trim()])),
          );
        },
      },
    },
    field(
      "Step type",
      select("type", [["", "Any type"], ...STEP_TYPES.map((t) => [t, t])], base.type || "", "Step type"),
    ),
    field(
      "Pipeline",
      select("pipeline", [["", "All pipelines"], ...pipelines], base.pipeline || "", "Pipeline"),
    ),
    field(
      "Step name",
      h("input", {
        name: "name",
        id: "q-name",
        type: "text",
        placeholder: "e.g. price_filter",
        value: base.name || "",
      }),
    ),
    field(
      "Status",
      select("status", [["", "Any status"], ...STATUSES.map((s) => [s, s])], base.status || "", "Status"),
    ),
    field("Eliminated ≥ %", num("min_elim", "0", { max: 100 })),
    field("Eliminated ≤ %", num("max_elim", "100", { max: 100 })),
    field("Input ≥", num("min_input", "0", { step: 1 })),
    h(
      "div",
      { class: "field actions" },
      h("button", { class: "btn btn-primary", type: "submit", text: "Search steps" }),
      h("a", { class: "btn btn-quiet", href: "#/steps", text: "Reset" }),
    ),
  );
  const examples = h(
    "p",
    { class: "examples" },
    h("span", { class: "muted", text: "Try: " }),
    EXAMPLES.map(([label, q]) => h("a", { class: "chip", href: hashUrl("/steps", q), text: label })),
  );
  const body = h("section", { class: "card" });
  if (error) {
    body.append(errorBox(error));
    clear(root).append(h("div", { class: "page-head" }, h("h1", { text: "Queries" })), form, body);
    return;
  }
  if (!page.items.length) {
    body.append(empty("No steps match this query.", h("a", { href: "#/steps", text: "Clear the query" })));
  } else {
    body.append(stepsTable(page.items));
  }
  body.append(
    pager({
      count: page.items.length,
      nextCursor: page.next_cursor,
      hasPrev: Boolean(cursor),
      label: `${plural(page.items.length, "step")} on this page${page.next_cursor ? "; more on the next page" : ""}`,
      onFirst: () => (location.hash = hashUrl("/steps", base)),
      onNext: () => (location.hash = hashUrl("/steps", { ...base, cursor: page.next_cursor })),
    }),
  );
  clear(root).append(
    h(
      "div",
      { class: "page-head" },
      h("h1", { text: "Queries" }),
      h("p", {
        class: "muted",
        text: "Search steps across every pipeline by type, elimination rate and size. Each result links to its run.",
      }),
    ),
    form,
    examples,
    body,
  );
}

function stepsTable(steps) {
  return h(
    "table",
    { class: "grid", id: "steps-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { text: "Pipeline" }),
        h("th", { text: "Step" }),
        h("th", { text: "Status" }),
        h("th", { class: "num", text: "In → out" }),
        h("th", { class: "num", text: "Eliminated" }),
        h("th", { class: "num", text: "Duration" }),
        h("th", { text: "Started" }),
        h("th", { text: "Run" }),
      ),
    ),
    h(
      "tbody",
      {},
      steps.map((s) =>
        rowLink(
          h(
            "tr",
            { class: s.status === "error" ? "row-error" : "", dataset: { stepId: s.id } },
            h("td", { text: s.pipeline }),
            h(
              "td",
              {},
              h("a", {
                class: "strong",
                href: hashUrl(`/runs/${enc(s.run_id)}`, { step: s.id }),
                text: s.name,
              }),
              " ",
              typeChip(s.type),
            ),
            h("td", {}, statusBadge(s.status)),
            h("td", { class: "num", text: `${fmtInt(s.input_count)} → ${fmtInt(s.output_count)}` }),
            h("td", { class: `num elim ${elimClass(s.elimination_rate)}`, text: fmtElimination(s) }),
            h("td", { class: "num", text: fmtDuration(s.duration_ms) }),
            h("td", { class: "nowrap", text: fmtTime(s.started_at) }),
            h(
              "td",
              {},
              h("a", { class: "mono muted-link", href: `#/runs/${enc(s.run_id)}`, text: shortId(s.run_id) }),
            ),
          ),
          hashUrl(`/runs/${enc(s.run_id)}`, { step: s.id }),
        ),
      ),
    ),
  );
}
