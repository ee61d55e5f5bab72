// One run: header, input/output, the steps as a funnel drawn to scale, and one opened
// step's params, reasoning, reason histogram, previews and (paginated) decisions.

import {
  api,
  candidateLink,
  clear,
  codeBlock,
  decisionBadge,
  empty,
  enc,
  errorBox,
  fmtDuration,
  fmtInt,
  fmtPct,
  fmtRelative,
  fmtTime,
  h,
  hashUrl,
  loading,
  pager,
  preview,
  shortId,
  statusBadge,
  typeChip,
  plural,
} from "./lib.js";

export const DECISIONS = ["accepted", "rejected", "selected", "scored"];

// A finished run never changes, so re-opening another step of the same run reuses it.
let cachedRun = null;

async function loadRun(id, signal) {
  if (cachedRun && cachedRun.id === id && cachedRun.data.status !== "running") return cachedRun.data;
  const data = await api(`/runs/${enc(id)}`, null, signal);
  cachedRun = { id, data };
  return data;
}

/** Depth of every step in the parent_id tree (a missing parent counts as the root). */
export function stepDepths(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map();
  const walk = (s, seen) => {
    if (depth.has(s.id)) return depth.get(s.id);
    const parent = s.parent_id && byId.get(s.parent_id);
    const d = parent && !seen.has(parent.id) ? walk(parent, seen.add(s.id)) + 1 : 0;
    depth.set(s.id, d);
    return d;
  };
  steps.forEach((s) => walk(s, new Set()));
  return depth;
}

export async function renderRun(ctx) {
  const { root, params, signal, arg: runId } = ctx;
  const run = await loadRun(runId, signal);
  if (!ctx.isCurrent()) return;
  document.title = `${run.pipeline} ${shortId(run.id)} · X-Ray`;
  const openStepId = params.get("step");
  const openStep = run.steps.find((s) => s.id === openStepId) || null;

  const page = h(
    "div",
    { class: "run-page" },
    runHeader(run),
    run.error ? errorPanel(run.error, "This run failed") : null,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { text: "Steps" }),
        h("span", {
          class: "muted",
          text: "Candidates in → out per step, drawn to scale. Click a step to see why.",
        }),
      ),
      run.steps.length
        ? funnel(run, openStep, params)
        : empty(
            "This run recorded no steps.",
            "Steps appear when the pipeline's decorated functions finish.",
          ),
    ),
    h("div", { class: "two-col" }, ioCard("Run input", run.input), ioCard("Run output", run.output)),
  );
  clear(root).append(page);
  fillComparePicker(run, signal);
  fillTraceLink(run, signal);
  const panel = openStep && document.getElementById(`step-panel-${openStep.id}`);
  await Promise.all([
    panel ? fillStepPanel(panel, run, openStep, params, ctx) : null,
    fillSelected(run, signal),
  ]);
}

// A link to the run's trace in the user's tracing UI, when the run was recorded inside an
// OpenTelemetry span (or came in over OTLP) and the server has `api.trace_url_template`.
let traceTemplate = null;
async function fillTraceLink(run, signal) {
  const traceId = (run.metadata || {})["otel.trace_id"];
  if (typeof traceId !== "string") return;
  try {
    traceTemplate = traceTemplate || (await api("/tracing", null, signal)).trace_url_template || "";
  } catch {
    return;
  }
  const spanId = String((run.metadata || {})["otel.span_id"] || "");
  const href = traceTemplate
    .replaceAll("{trace_id}", encodeURIComponent(traceId))
    .replaceAll("{span_id}", encodeURIComponent(spanId));
  const anchor = document.getElementById("compare-picker");
  if (!/^https?:\/\//i.test(href) || !anchor) return;
  const link = h("a", { class: "btn", id: "trace-link", target: "_blank", rel: "noopener noreferrer", text: "Open trace" });
  // h() only allows in-app links; this one is the server's configured http(s) URL (checked above).
  link.setAttribute("href", href);
  anchor.before(link);
}

// The shortest way to "why this output": the candidates the run's last selection step
// selected, each linking to its path through the run.
async function fillSelected(run, signal) {
  const box = document.getElementById("run-selected");
  const last = [...run.steps].reverse().find((s) => s.type === "select" && s.candidates_recorded > 0);
  if (!box || !last) return;
  let page;
  try {
    page = await api(`/steps/${enc(last.id)}/decisions`, { decision: "selected", limit: 5 }, signal);
  } catch {
    return; // a convenience; the step itself shows its decisions
  }
  if (!page.items.length) return;
  box.append(
    h("dt", { text: "Selected" }),
    h(
      "dd",
      {},
      h(
        "span",
        { class: "chips" },
        page.items.map((d) =>
          h("a", {
            class: "chip chip-selected mono",
            href: hashUrl(`/candidates/${enc(d.candidate_key)}`, { run: run.id }),
            title: "Its path through this run",
            text: d.candidate_key,
          }),
        ),
      ),
      h("span", { class: "muted small", text: ` at ${last.name} — follow it through the run` }),
    ),
  );
  box.hidden = false;
}

/** Label/value pairs that wrap as a line of facts; "wide" ones take a line of their own. */
function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows
      .filter(Boolean)
      .map(([k, v, cls]) =>
        k
          ? h("div", { class: cls || "" }, h("dt", { text: k }), h("dd", {}, v))
          : h("div", { class: cls, id: "run-selected", hidden: true }),
      ),
  );
}

function runHeader(run) {
  const meta = Object.entries(run.metadata || {});
  return h(
    "section",
    { class: "page-head run-head" },
    h(
      "nav",
      { class: "crumbs" },
      h("a", { href: "#/runs", text: "Runs" }),
      " / ",
      h("a", {
        href: hashUrl("/runs", { pipeline: run.pipeline }),
        class: "truncate crumb-name",
        title: run.pipeline,
        text: run.pipeline,
      }),
      " / ",
      h("span", { class: "mono", text: shortId(run.id) }),
    ),
    h(
      "div",
      { class: "title-row" },
      h("h1", { class: "truncate", title: run.pipeline, text: run.pipeline }),
      statusBadge(run.status),
      h("span", { class: "spacer" }),
      h("div", { class: "compare-picker", id: "compare-picker" }),
    ),
    facts([
      ["Run", h("span", { class: "mono selectable", text: run.id })],
      ["Started", h("span", { title: fmtRelative(run.started_at) }, fmtTime(run.started_at))],
      ["Duration", fmtDuration(run.duration_ms)],
      ["Steps", fmtInt(run.steps.length)],
      meta.length
        ? [
            "Metadata",
            h(
              "span",
              { class: "chips" },
              meta.map(([k, v]) =>
                h("a", {
                  class: "chip",
                  href: hashUrl("/runs", { meta: `${k}=${typeof v === "string" ? v : JSON.stringify(v)}` }),
                  title: "Runs with this metadata",
                  text: `${k}=${preview(v, 40)}`,
                }),
              ),
            ),
          ]
        : null,
      [
        "Output",
        run.error
          ? h("span", { class: "err-text", text: `${run.error.type}: ${preview(run.error.message, 160)}` })
          : h("span", {
              class: "mono output-preview",
              id: "run-output",
              title: preview(run.output, 2000),
              text: preview(run.output, 160) || "—",
            }),
        "wide",
      ],
      ["", null, "wide selected-fact"],
    ]),
  );
}

async function fillComparePicker(run, signal) {
  const box = document.getElementById("compare-picker");
  if (!box) return;
  try {
    const page = await api("/runs", { pipeline: run.pipeline, limit: 100 }, signal);
    const others = page.items.filter((r) => r.id !== run.id);
    if (!others.length) return;
    const label = (r) => {
      const meta = Object.entries(r.metadata || {})
        .slice(0, 4)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      return `${fmtTime(r.started_at)} · ${r.status} · ${meta} · ${preview(r.output, 40)}`;
    };
    // A text field with suggestions: typing a metadata value or a date narrows the list.
    const list = h(
      "datalist",
      { id: "compare-with-list" },
      others.map((r) => h("option", { value: label(r) })),
    );
    const input = h("input", {
      type: "search",
      id: "compare-with",
      list: "compare-with-list",
      class: "picker",
      placeholder: "Search by time, status, metadata, output…",
      "aria-label": "Compare with run",
      value: label(others[0]),
      title: label(others[0]),
    });
    const chosen = () => {
      const text = input.value.trim();
      const exact = others.find((r) => label(r) === text || r.id === text);
      if (exact) return exact.id;
      const match = others.find((r) => label(r).toLowerCase().includes(text.toLowerCase()));
      return (match || others[0]).id;
    };
    box.append(
      h("label", { for: "compare-with", class: "muted", text: "Compare with" }),
      input,
      list,
      h("button", {
        class: "btn",
        type: "button",
        id: "compare-go",
        text: "Compare",
        on: { click: () => (location.hash = hashUrl("/compare", { a: run.id, b: chosen() })) },
      }),
    );
  } catch {
    // The picker is a convenience; the compare page has its own form.
  }
}

function ioCard(title, value) {
  return h(
    "section",
    { class: "card io" },
    h("h2", { text: title }),
    value === null || value === undefined
      ? h("p", { class: "muted", text: "Not recorded." })
      : codeBlock(value, "scroll"),
  );
}

export function errorPanel(error, title) {
  return h(
    "section",
    { class: "card error-panel", role: "alert" },
    h("h2", { text: title }),
    h("p", {}, h("strong", { class: "mono", text: error.type }), ": ", error.message || ""),
    error.traceback
      ? h(
          "details",
          {},
          h("summary", { text: "Traceback" }),
          h("pre", { class: "code scroll", text: error.traceback }),
        )
      : null,
  );
}

// A run with thousands of steps (a step per item in a loop) would make a page of
// thousands of rows; show the first ones and let the user ask for the rest.
const FUNNEL_ROWS = 300;

function funnel(run, openStep, params) {
  const depths = stepDepths(run.steps);
  const scale = run.steps.reduce((m, s) => Math.max(m, s.input_count || 0, s.output_count || 0), 1);
  const showAll = params.get("all") === "1" || run.steps.length <= FUNNEL_ROWS;
  const shown = showAll
    ? run.steps
    : run.steps.filter((s, i) => i < FUNNEL_ROWS || (openStep && s.id === openStep.id));
  const list = h("ol", { class: "funnel", id: "funnel" });
  list.append(
    h(
      "li",
      { class: "funnel-head", "aria-hidden": "true" },
      h("span", { text: "#" }),
      h("span", { text: "Step" }),
      h("span", { text: "Candidates (to scale)" }),
      h("span", { class: "num", text: "In → out" }),
      h("span", { class: "num", text: "Eliminated" }),
      h("span", { class: "num", text: "Time" }),
    ),
  );
  const positions = new Map(run.steps.map((s, i) => [s.id, i + 1]));
  for (const step of shown) {
    const isOpen = openStep && openStep.id === step.id;
    const width = (n) => (n ? `max(2px, ${((100 * n) / scale).toFixed(3)}%)` : "0");
    const row = h(
      "a",
      {
        class: `funnel-row${step.status === "error" ? " is-error" : ""}${isOpen ? " is-open" : ""}`,
        href: hashUrl(`/runs/${enc(run.id)}`, isOpen ? {} : { step: step.id }),
        "aria-expanded": isOpen ? "true" : "false",
        dataset: { stepName: step.name, stepId: step.id },
      },
      h("span", { class: "seq num", text: positions.get(step.id) }),
      h(
        "span",
        { class: "step-name", style: { "padding-left": `${depths.get(step.id) * 20}px` } },
        depths.get(step.id) ? h("span", { class: "tree", text: "└ " }) : null,
        h("span", { class: "strong truncate", title: step.name, text: step.name }),
        typeChip(step.type),
        step.status === "error" ? statusBadge("error") : null,
      ),
      h(
        "span",
        { class: "bar", title: `${fmtInt(step.input_count)} in → ${fmtInt(step.output_count)} out` },
        h("span", { class: "bar-in", style: { width: width(step.input_count) } }),
        h("span", { class: "bar-out", style: { width: width(step.output_count) } }),
      ),
      h("span", { class: "num counts", text: `${fmtInt(step.input_count)} → ${fmtInt(step.output_count)}` }),
      h("span", { class: `num elim ${elimClass(step.elimination_rate)}`, text: fmtElimination(step) }),
      h("span", { class: "num muted", text: fmtDuration(step.duration_ms) }),
      reasonLine(step),
    );
    const item = h("li", { class: "funnel-item" }, row);
    if (isOpen) item.append(h("div", { class: "step-panel", id: `step-panel-${step.id}` }, loading()));
    list.append(item);
  }
  if (!showAll) {
    const more = hashUrl(`/runs/${enc(run.id)}`, { ...Object.fromEntries(params), all: "1" });
    list.append(
      h(
        "li",
        { class: "funnel-more" },
        `Showing ${fmtInt(shown.length)} of ${fmtInt(run.steps.length)} steps. `,
        h("a", { href: more, text: "Show all steps" }),
      ),
    );
  }
  return list;
}

/** The step's top rejection reasons under its row, and a refill after rejecting. */
function reasonLine(step) {
  const reasons = Object.entries(step.reason_counts || {}).sort((a, b) => b[1] - a[1]);
  if (!reasons.length) return null;
  const denom = step.input_count || reasons.reduce((a, [, n]) => a + n, 0) || 1;
  const top = reasons.slice(0, 3).map(([r, n]) => `${r} ${fmtInt(n)} (${fmtPct(n / denom)})`);
  const more = reasons.length > 3 ? ` · +${reasons.length - 3} more` : "";
  const text = `${top.join(" · ")}${more}`;
  return h(
    "span",
    { class: "reason-line muted", title: text },
    step.readmitted
      ? h("span", {
          class: "chip chip-warn",
          title: "This step rejected candidates and then kept more than it had left (a fallback refilled it)",
          text: `rejected ${fmtPct(step.rejected_rate)} · refilled`,
        })
      : null,
    h("span", { class: "truncate", text }),
  );
}

/** Elimination for display; a step that returns more than it got (retrieval) "grew". */
export function fmtElimination(step) {
  const rate = step.elimination_rate;
  if (rate === null || rate === undefined) return "—";
  if (rate < 0 && step.input_count)
    return `grew ×${fmtInt(Math.round((step.output_count / step.input_count) * 10) / 10)}`;
  return fmtPct(rate);
}

export function elimClass(rate) {
  if (rate === null || rate === undefined || rate < 0) return "";
  if (rate >= 0.9) return "elim-high";
  if (rate >= 0.5) return "elim-mid";
  return "elim-low";
}

/** "30 of 5,000 decisions recorded (sampled)", honestly, for any detail level. */
export function recordedText(step) {
  const total = step.candidates_total;
  const rec = step.candidates_recorded || 0;
  if (rec === 0 && step.detail === "summary") {
    return total !== null && total !== undefined
      ? `No per-candidate decisions recorded (detail: summary). The counts and reasons above cover all ${fmtInt(total)} candidates.`
      : "No per-candidate decisions recorded (detail: summary).";
  }
  if (total === null || total === undefined) return `${fmtInt(rec)} decisions recorded (${step.detail})`;
  const note = rec < total ? `${step.detail}; ${fmtInt(total - rec)} not recorded` : step.detail;
  return `${fmtInt(rec)} of ${fmtInt(total)} decisions recorded (${note})`;
}

function stepSummary(step) {
  const known = (v) => v !== null && v !== undefined;
  const parts = [];
  if (known(step.input_count)) parts.push(`${fmtInt(step.input_count)} in`);
  if (known(step.output_count)) parts.push(`${fmtInt(step.output_count)} out`);
  if (known(step.elimination_rate))
    parts.push(
      step.elimination_rate < 0 ? fmtElimination(step) : `${fmtPct(step.elimination_rate)} eliminated`,
    );
  if (known(step.duration_ms)) parts.push(fmtDuration(step.duration_ms));
  parts.push(`detail: ${step.detail}`);
  return parts.join(" · ");
}

async function fillStepPanel(panel, run, step, params, ctx) {
  const stepUrl = (extra) => hashUrl(`/runs/${enc(run.id)}`, { step: step.id, ...extra });
  const reasons = Object.entries(step.reason_counts || {}).sort((a, b) => b[1] - a[1]);
  const paramEntries = Object.entries(step.params || {});
  const head = h(
    "div",
    { class: "panel-summary" },
    h("strong", { class: "truncate", title: step.name, text: step.name }),
    typeChip(step.type),
    statusBadge(step.status),
    h("span", { class: "muted", text: stepSummary(step) }),
    h("span", { class: "spacer" }),
    h("a", {
      class: "btn btn-quiet",
      href: hashUrl("/steps", { type: step.type, name: step.name, pipeline: step.pipeline }),
      text: "Similar steps in other runs",
    }),
  );
  const paramsBlock = h(
    "div",
    { class: "panel-block" },
    h("h3", { text: "Parameters" }),
    paramEntries.length
      ? h(
          "table",
          { class: "params" },
          h(
            "tbody",
            {},
            paramEntries.map(([k, v]) =>
              h(
                "tr",
                {},
                h("th", { class: "mono", text: k }),
                h("td", { class: "mono", text: preview(v, 300) }),
              ),
            ),
          ),
        )
      : h("p", { class: "muted", text: "No parameters recorded." }),
  );
  const reasoningBlock = h(
    "div",
    { class: "panel-block" },
    h("h3", { text: "Reasoning" }),
    step.reasoning
      ? h("p", { class: "reasoning", text: step.reasoning })
      : h("p", { class: "muted", text: "No reasoning recorded." }),
  );
  const histo = h("div", { class: "panel-block" }, h("h3", { text: "Reasons" }));
  if (reasons.length) {
    const max = reasons[0][1] || 1;
    const denom = step.input_count || reasons.reduce((a, [, n]) => a + n, 0) || 1;
    histo.append(
      h(
        "table",
        { class: "histogram", id: "reason-histogram" },
        h(
          "tbody",
          {},
          reasons.map(([reason, n]) =>
            h(
              "tr",
              {},
              h(
                "th",
                {},
                h("a", {
                  href: stepUrl({ reason, decision: params.get("decision") }),
                  class: "mono",
                  title: `Show these decisions: ${reason}`,
                  text: reason,
                }),
              ),
              h("td", { class: "hbar" }, h("span", { style: { width: `${((100 * n) / max).toFixed(2)}%` } })),
              h("td", { class: "num", text: fmtInt(n) }),
              h("td", { class: "num muted", text: fmtPct(n / denom) }),
            ),
          ),
        ),
      ),
    );
  } else {
    histo.append(h("p", { class: "muted", text: "No reasons recorded." }));
  }
  const io = h(
    "div",
    { class: "two-col" },
    h(
      "div",
      { class: "panel-block" },
      h("h3", { text: "Input preview" }),
      step.input == null
        ? h("p", { class: "muted", text: "Not recorded." })
        : codeBlock(step.input, "scroll"),
    ),
    h(
      "div",
      { class: "panel-block" },
      h("h3", { text: "Output preview" }),
      step.output == null
        ? h("p", { class: "muted", text: "Not recorded." })
        : codeBlock(step.output, "scroll"),
    ),
  );
  const decisionsBox = h("div", { class: "panel-block decisions", id: "decisions" });
  clear(panel).append(
    ...[
      head,
      step.error ? errorPanel(step.error, "This step failed") : null,
      h("div", { class: "two-col" }, paramsBlock, reasoningBlock),
      histo,
      decisionsBox,
      io,
    ].filter(Boolean),
  );
  await fillDecisions(decisionsBox, run, step, params, reasons, stepUrl, ctx);
}

async function fillDecisions(box, run, step, params, reasons, stepUrl, ctx) {
  const decision = params.get("decision") || "";
  const reason = params.get("reason") || "";
  const cand = params.get("cand") || "";
  const cursor = params.get("dcursor") || "";
  box.append(
    h(
      "div",
      { class: "section-head" },
      h("h3", { text: "Decisions" }),
      h("span", { class: "recorded", id: "recorded-note", text: recordedText(step) }),
    ),
  );
  if (!step.candidates_recorded) return;
  const decisionSel = h(
    "select",
    { name: "decision", id: "d-decision", "aria-label": "Decision" },
    [["", "All decisions"], ...DECISIONS.map((d) => [d, d])].map(([v, t]) =>
      h("option", { value: v, selected: v === decision, text: t }),
    ),
  );
  // Free text with suggestions: reason_counts lists the counted (usually rejection)
  // reasons, but accepted decisions carry reasons too ("keyword_match").
  const reasonList = h(
    "datalist",
    { id: "d-reason-list" },
    reasons.map(([r]) => h("option", { value: r })),
  );
  const reasonSel = h("input", {
    name: "reason",
    id: "d-reason",
    type: "search",
    list: "d-reason-list",
    placeholder: "any reason",
    "aria-label": "Reason",
    value: reason,
  });
  const candInput = h("input", {
    name: "cand",
    id: "d-cand",
    type: "search",
    placeholder: "candidate key",
    value: cand,
  });
  const form = h(
    "form",
    {
      class: "filters inline-filters",
      id: "decision-filters",
      on: {
        submit: (e) => {
          e.preventDefault();
          location.hash = stepUrl({
            decision: decisionSel.value,
            reason: reasonSel.value,
            cand: candInput.value.trim(),
          });
        },
      },
    },
    decisionSel,
    reasonSel,
    reasonList,
    candInput,
    h("button", { class: "btn", type: "submit", text: "Filter" }),
    decision || reason || cand ? h("a", { class: "btn btn-quiet", href: stepUrl({}), text: "Clear" }) : null,
  );
  // Submitting on change keeps the filters one click away without a separate button press.
  decisionSel.addEventListener("change", () => form.requestSubmit());
  reasonSel.addEventListener("change", () => form.requestSubmit());
  candInput.addEventListener("change", () => form.requestSubmit());
  box.append(form);
  const tableBox = h("div", {}, loading("Loading decisions…"));
  box.append(tableBox);
  let page;
  try {
    page = await api(
      `/steps/${enc(step.id)}/decisions`,
      { decision, reason, candidate_key: cand, cursor, limit: 100 },
      ctx.signal,
    );
  } catch (e) {
    if (e && e.name === "AbortError") return;
    clear(tableBox).append(errorBox(e));
    return;
  }
  if (!ctx.isCurrent()) return;
  clear(tableBox);
  if (!page.items.length) {
    tableBox.append(
      empty(
        "No recorded decisions match these filters.",
        h("a", { href: stepUrl({}), text: "Show all decisions of this step" }),
      ),
    );
  } else {
    tableBox.append(decisionsTable(page.items, run.id));
  }
  tableBox.append(
    pager({
      count: page.items.length,
      nextCursor: page.next_cursor,
      hasPrev: Boolean(cursor),
      label: `${plural(page.items.length, "decision")} on this page${page.next_cursor ? "; more on the next page" : ""}`,
      onFirst: () => (location.hash = stepUrl({ decision, reason, cand })),
      onNext: () => (location.hash = stepUrl({ decision, reason, cand, dcursor: page.next_cursor })),
    }),
  );
}

export function attributesText(attrs) {
  const entries = Object.entries(attrs || {});
  return entries.map(([k, v]) => `${k}: ${preview(v, 40)}`).join(" · ");
}

function decisionsTable(items, runId) {
  return h(
    "table",
    { class: "grid compact", id: "decisions-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { text: "Candidate" }),
        h("th", { text: "Decision" }),
        h("th", { text: "Reason" }),
        h("th", { class: "num", text: "Score" }),
        h("th", { class: "num", text: "Rank" }),
        h("th", { text: "Attributes" }),
      ),
    ),
    h(
      "tbody",
      {},
      items.map((d) =>
        h(
          "tr",
          { dataset: { candidate: d.candidate_key, decision: d.decision } },
          h("td", {}, candidateLink(d.candidate_key, runId)),
          h("td", {}, decisionBadge(d.decision)),
          h("td", { class: "mono cell-clip", title: d.reason || "", text: d.reason || "" }),
          h("td", {
            class: "num",
            text: d.score === null || d.score === undefined ? "" : Number(d.score).toFixed(3),
          }),
          h("td", { class: "num", text: d.rank ?? "" }),
          h("td", {
            class: "attrs",
            title: attributesText(d.attributes),
            text: attributesText(d.attributes),
          }),
        ),
      ),
    ),
  );
}
