// Groups: a pipeline's runs grouped by a metadata key, output field, status or step
// parameter (GET /groups), with the group that differs most from the rest highlighted
// and the step and reason that make the difference. Every cell links to its runs.

import { api, clear, empty, fmtInt, fmtPct, fmtTime, h, hashUrl, loading, preview } from "./lib.js";
import { field, pipelineOptions, select } from "./runs.js";

// Groups shown side by side in the per-step table; the rest are one click away.
const STEP_COLUMNS = 8;

function valueText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The Runs page showing one group's runs (and, with a reason, those rejecting for it). */
function groupRuns(pipeline, by, item, reason) {
  const query = { pipeline };
  if (by.startsWith("metadata.") && !item.missing) query.meta = [`${by.slice(9)}=${valueText(item.value)}`];
  else if (by === "status") query.status = item.value;
  if (reason) query.reason = reason;
  return hashUrl("/runs", query);
}

/** The "Group by" choices: status, and the keys the pipeline's runs carry. */
async function byOptions(pipeline, signal) {
  if (!pipeline) return { options: [["status", "status"]], suggested: "status" };
  let keys;
  try {
    keys = await api(`/pipelines/${encodeURIComponent(pipeline)}/keys`, { sample: 500 }, signal);
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    return { options: [["status", "status"]], suggested: "status" };
  }
  const entry = (k) => [k.key, `${k.key} (${fmtInt(k.distinct)} values)`];
  const options = [
    ["status", "status"],
    ...keys.metadata.map(entry),
    ...keys.outputs.map(entry),
    ...keys.params.map(entry),
  ];
  // A key with a few values is what a question about "which users" is usually about.
  const few = keys.metadata.find((k) => k.distinct > 1 && k.distinct <= 20 && k.distinct < keys.runs);
  return { options, suggested: few ? few.key : "status" };
}

export async function renderGroups(ctx) {
  const { root, params, signal } = ctx;
  document.title = "Groups · X-Ray";
  const pipeline = params.get("pipeline") || "";
  const [pipelines, choices] = await Promise.all([pipelineOptions(signal), byOptions(pipeline, signal)]);
  if (!ctx.isCurrent()) return;
  const by = params.get("by") || choices.suggested;
  const options = choices.options.some(([k]) => k === by) ? choices.options : [[by, by], ...choices.options];
  const form = h(
    "form",
    {
      class: "filters card",
      id: "groups-form",
      on: {
        submit: (event) => {
          event.preventDefault();
          const data = new FormData(event.target);
          const next = String(data.get("pipeline") || "");
          // A new pipeline has other keys: let the page suggest one.
          location.hash = hashUrl("/groups", { pipeline: next, by: next === pipeline ? data.get("by") : "" });
        },
      },
    },
    field("Pipeline", select("pipeline", [["", "Pick a pipeline"], ...pipelines], pipeline, "Pipeline")),
    field("Group by", select("by", options, by, "Group by"), "wide"),
    h(
      "div",
      { class: "field actions" },
      h("button", { class: "btn btn-primary", type: "submit", text: "Group" }),
    ),
  );
  for (const sel of form.querySelectorAll("select")) sel.addEventListener("change", () => form.requestSubmit());
  const head = h(
    "div",
    { class: "page-head" },
    h("h1", { text: "Groups" }),
    h("p", {
      class: "muted",
      text: "Which group of runs behaves differently, and at which step? Runs grouped by a key, with each step's rejections per group.",
    }),
  );
  if (!pipeline) {
    clear(root).append(head, form, empty("Pick a pipeline to group its runs.", "Then a key such as metadata.locale."));
    return;
  }
  const body = await api("/groups", { pipeline, by, limit: 100 }, signal);
  if (!ctx.isCurrent()) return;
  const trendBox = h("section", { class: "card", id: "trends" }, loading());
  clear(root).append(head, form, ...groupsView(body, pipeline, by), trendBox);
  await fillTrends(trendBox, pipeline, body, params, signal);
}

const BUCKETS = [
  ["1h", "per hour, last 2 days"],
  ["1d", "per day, last 48 days"],
  ["15m", "per 15 min, last 12 hours"],
];

/** Small charts of the pipeline over time: runs, and one step's rejection shares. */
async function fillTrends(box, pipeline, groups, params, signal) {
  const first = groups.items[0] && groups.items[0].steps.find((s) => Object.keys(s.reason_rates).length);
  const step = params.get("trend_step") || (groups.outlier ? groups.outlier.step : first && first.name);
  const bucket = params.get("bucket") || "1h";
  let body;
  try {
    body = await api("/trends", { pipeline, step, bucket }, signal);
  } catch (e) {
    if (e && e.name === "AbortError") return;
    clear(box).append(h("p", { class: "muted", text: `No trends: ${e.message}` }));
    return;
  }
  const reasons = [];
  for (const item of body.items) for (const r of Object.keys(item.reason_rates)) if (!reasons.includes(r)) reasons.push(r);
  const link = (extra) => hashUrl("/groups", { ...Object.fromEntries(params), ...extra });
  clear(box).append(
    h(
      "div",
      { class: "section-head" },
      h("h2", { text: "Over time" }),
      h(
        "span",
        { class: "muted" },
        BUCKETS.map(([b, text]) =>
          b === bucket ? h("strong", { class: "bucket", text }) : h("a", { class: "bucket", href: link({ bucket: b }), text }),
        ),
      ),
    ),
    body.items.length
      ? h(
          "div",
          { class: "trend-charts" },
          chart("Runs", body.items, (i) => i.runs, (v) => fmtInt(v)),
          step
            ? chart(`${step}: rejected`, body.items, (i) => i.rejected_rate, (v) => fmtPct(v), 1)
            : null,
          ...reasons
            .slice(0, 3)
            .map((r) => chart(`${step}: ${r}`, body.items, (i) => i.reason_rates[r] ?? 0, (v) => fmtPct(v), 1)),
        )
      : h("p", { class: "muted", text: "No runs in this time range." }),
  );
}

/** One small bar chart; each bar's exact value and time on hover. */
function chart(title, items, value, format, max) {
  const values = items.map(value);
  const top = max ?? Math.max(1, ...values.filter((v) => v !== null && v !== undefined));
  return h(
    "figure",
    { class: "trend", dataset: { title } },
    h("figcaption", { class: "cell-clip", title, text: title }),
    h(
      "div",
      { class: "trend-bars" },
      items.map((item, i) => {
        const v = values[i];
        const height = v === null || v === undefined ? 0 : Math.max(2, (100 * v) / top);
        return h("span", {
          class: "trend-bar",
          title: `${fmtTime(item.start)}: ${v === null || v === undefined ? "—" : format(v)}`,
          style: { height: `${height}%` },
        });
      }),
    ),
  );
}

function groupsView(body, pipeline, by) {
  if (!body.items.length) return [empty("No runs of this pipeline.", null)];
  const outlier = body.outlier;
  const summary = h(
    "p",
    { class: outlier ? "divergence" : "divergence same", id: "groups-outlier" },
    outlier
      ? [
          h("strong", { text: `${by} = ${valueText(outlier.value)}` }),
          " differs most: ",
          h("strong", { text: outlier.step }),
          " rejects ",
          h("strong", { text: fmtPct(outlier.rate) }),
          " of its input for ",
          h("code", { text: outlier.reason }),
          `, against ${fmtPct(outlier.rest_rate)} in the other runs.`,
        ]
      : "No group's rejections differ from the others'.",
    h("span", {
      class: "muted",
      text: ` ${fmtInt(body.runs)} runs in ${fmtInt(body.groups)} groups${body.sampled ? " (the newest runs only)" : ""}.`,
    }),
  );
  const groups = h(
    "section",
    { class: "card" },
    h("div", { class: "section-head" }, h("h2", { text: `Runs by ${by}` })),
    h(
      "table",
      { class: "grid fixed", id: "groups-table" },
      h("colgroup", {}, h("col", { class: "c-value" }), h("col", { class: "c-num" }), h("col", { class: "c-status-wide" }), h("col", {})),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { text: "Value" }),
          h("th", { class: "num", text: "Runs" }),
          h("th", { text: "Status" }),
          h("th", { text: "Most common outputs" }),
        ),
      ),
      h(
        "tbody",
        {},
        body.items.map((item) => {
          const text = item.missing ? "(no value)" : valueText(item.value);
          const href = groupRuns(pipeline, by, item);
          return h(
            "tr",
            { class: item.outlier ? "is-outlier" : "", dataset: { value: text } },
            h(
              "td",
              { class: "cell-clip", title: text },
              h("a", { class: "strong", href, text }),
              item.outlier ? h("span", { class: "chip chip-warn", text: "outlier" }) : null,
              item.missing
                ? null
                : h("a", {
                    class: "chip cohort-link",
                    href: hashUrl("/compare", { pipeline, a: `${by}:${text}`, b: "rest" }),
                    title: "This group and every other run, step by step",
                    text: "vs rest",
                  }),
            ),
            h("td", { class: "num" }, h("a", { href, text: fmtInt(item.runs) })),
            h(
              "td",
              { class: "cell-clip" },
              Object.entries(item.statuses).map(([s, n]) => h("span", { class: `status status-${s}`, text: `${s} ${fmtInt(n)}` })),
            ),
            h(
              "td",
              { class: "cell-clip" },
              item.outputs.map((o) =>
                h("div", { class: "truncate mono", title: valueText(o.value), text: `${fmtInt(o.runs)} × ${preview(o.value, 90)}` }),
              ),
            ),
          );
        }),
      ),
    ),
  );
  const shown = body.items.slice(0, STEP_COLUMNS);
  const names = [];
  for (const item of shown) for (const s of item.steps) if (!names.includes(s.name)) names.push(s.name);
  const steps = h(
    "section",
    { class: "card" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { text: "Per step" }),
      h("span", {
        class: "muted",
        text: "Share of the step's input rejected, and its top reason's share (summed over the group's runs). Median in → out underneath.",
      }),
    ),
    h(
      "div",
      {},
      h(
        "table",
        { class: "grid fixed", id: "groups-steps" },
        h("colgroup", {}, h("col", { class: "c-pos" }), h("col", { class: "c-step" }), shown.map(() => h("col", {}))),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { class: "num", text: "#" }),
            h("th", { text: "Step" }),
            shown.map((item) => {
              const text = item.missing ? "(no value)" : valueText(item.value);
              return h("th", { class: `cell-clip${item.outlier ? " is-outlier" : ""}`, title: text, text });
            }),
          ),
        ),
        h(
          "tbody",
          {},
          names.map((name, i) =>
            h(
              "tr",
              { dataset: { stepName: name } },
              h("td", { class: "num muted", text: i + 1 }),
              h("td", { class: "cell-clip", title: name }, h("span", { class: "strong", text: name })),
              shown.map((item) => stepCell(pipeline, by, item, name, outlier)),
            ),
          ),
        ),
      ),
    ),
  );
  return [summary, groups, steps];
}

function stepCell(pipeline, by, item, name, outlier) {
  const step = item.steps.find((s) => s.name === name);
  if (!step) return h("td", { class: "muted", text: "—" });
  const reasons = Object.entries(step.reason_rates);
  const top = reasons[0];
  const marked = item.outlier && outlier && outlier.step === name;
  const flow = `${fmtInt(step.median_input)} → ${fmtInt(step.median_output)}`;
  const params = Object.entries(step.params)
    .map(([k, v]) => `${k}=${valueText(v)}`)
    .join(", ");
  return h(
    "td",
    {
      class: `group-cell${marked ? " is-outlier" : ""}`,
      title: [reasons.map(([r, v]) => `${r} ${fmtPct(v)}`).join("\n"), params && `params: ${params}`]
        .filter(Boolean)
        .join("\n"),
    },
    top
      ? h(
          "a",
          { href: groupRuns(pipeline, by, item, top[0]), class: "truncate" },
          h("strong", { text: fmtPct(step.rejected_rate) }),
          ` ${top[0]} ${fmtPct(top[1])}`,
        )
      : h("span", { class: "muted", text: "no rejections" }),
    step.readmitted_runs ? h("span", { class: "chip chip-warn", text: "refilled" }) : null,
    h("div", { class: "muted small", text: flow }),
  );
}
