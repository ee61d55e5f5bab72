// Two runs side by side, step by step, from one GET /compare (the comparison `xray diff`
// prints): counts, rejections, params and reasons that differ, ranked differences, and
// candidates kept in one run but not the other for a bounded number of steps.

import {
  api,
  clear,
  enc,
  fmtCount,
  fmtDuration,
  fmtInt,
  fmtPct,
  fmtTime,
  h,
  hashUrl,
  preview,
  runLink,
  statusBadge,
  typeChip,
} from "./lib.js";
import { field } from "./runs.js";
import { fmtElimination } from "./run.js";

const KEPT = ["accepted", "selected"];
const KEPT_LIMIT = 1000; // one page per decision kind and step; the page says when it is partial
// Kept candidates cost 4 requests per step; compare them where they matter most.
const MAX_COMPARED_STEPS = 4;

async function keptKeys(step, signal) {
  if (!step || !step.candidates_recorded) return null;
  const keys = new Set();
  let partial = false;
  for (const decision of KEPT) {
    const page = await api(`/steps/${enc(step.id)}/decisions`, { decision, limit: KEPT_LIMIT }, signal);
    page.items.forEach((d) => keys.add(d.candidate_key));
    if (page.next_cursor) partial = true;
  }
  return { keys, partial };
}

function pickForm(params) {
  const a = h("input", {
    id: "cmp-a",
    name: "a",
    class: "mono",
    placeholder: "run id",
    value: params.get("a") || "",
    required: true,
  });
  const b = h("input", {
    id: "cmp-b",
    name: "b",
    class: "mono",
    placeholder: "run id",
    value: params.get("b") || "",
    required: true,
  });
  return h(
    "form",
    {
      class: "filters card",
      id: "compare-form",
      on: {
        submit: (e) => {
          e.preventDefault();
          location.hash = hashUrl("/compare", { a: a.value.trim(), b: b.value.trim() });
        },
      },
    },
    field("Run A", a, "wide"),
    field("Run B", b, "wide"),
    h(
      "div",
      { class: "field actions" },
      h("button", { class: "btn btn-primary", type: "submit", text: "Compare" }),
    ),
  );
}

export async function renderCompare(ctx) {
  const { root, params, signal } = ctx;
  document.title = "Compare · X-Ray";
  const head = h(
    "div",
    { class: "page-head" },
    h("h1", { text: "Compare runs" }),
    h("p", { class: "muted", text: "Two runs side by side, step by step: where did they start to differ?" }),
  );
  const aId = params.get("a");
  const bId = params.get("b");
  if (params.get("pipeline") && aId) {
    await renderCohorts(ctx, head);
    return;
  }
  if (!aId || !bId) {
    clear(root).append(
      head,
      pickForm(params),
      h(
        "div",
        { class: "state state-empty" },
        h("strong", { text: "Pick two runs to compare." }),
        h("p", { text: "Paste two run ids above, or open a run and use “Compare with”." }),
      ),
    );
    return;
  }
  const cmp = await api("/compare", { a: aId, b: bId }, signal);
  if (!ctx.isCurrent()) return;
  const a = cmp.a;
  const b = cmp.b;
  const table = h(
    "table",
    { class: "grid compare fixed", id: "compare-table" },
    h(
      "colgroup",
      {},
      h("col", { class: "c-pos" }),
      h("col", { class: "c-step" }),
      h("col", { class: "c-count" }),
      h("col", { class: "c-elim" }),
      h("col", { class: "c-count" }),
      h("col", { class: "c-elim" }),
      h("col", { class: "c-params" }),
      h("col", { class: "c-kept" }),
      h("col", { class: "c-kept" }),
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { class: "num", text: "#" }),
        h("th", { text: "Step" }),
        h("th", { class: "num", text: "A: in → out" }),
        h("th", { class: "num", text: "A elim. / rejected" }),
        h("th", { class: "num", text: "B: in → out" }),
        h("th", { class: "num", text: "B elim. / rejected" }),
        h("th", { text: "What differs" }),
        h("th", { text: "Kept only in A" }),
        h("th", { text: "Kept only in B" }),
      ),
    ),
  );
  const body = h("tbody");
  table.append(body);
  const keptCells = [];
  for (const row of cmp.steps) {
    const onlyA = h("td", { class: "kept-diff" });
    const onlyB = h("td", { class: "kept-diff" });
    keptCells.push({ row, onlyA, onlyB });
    const reasons = row.reason_counts.filter((r) => r.a !== r.b);
    body.append(
      h(
        "tr",
        { class: row.changed.length ? "row-differs" : "", dataset: { stepName: row.name } },
        h("td", { class: "num muted", text: row.position }),
        h(
          "td",
          { class: "cell-clip" },
          h("span", { class: "strong truncate", title: row.name, text: row.name }),
          " ",
          typeChip(row.type),
        ),
        countCell(row.a),
        rateCell(row.a),
        countCell(row.b),
        rateCell(row.b),
        h(
          "td",
          { class: "param-diff" },
          row.params.map((p) => paramChange(p.key, p.a, p.b)),
          reasons.map((r) =>
            h(
              "div",
              { class: "reason-diff", title: r.reason },
              h("span", { class: "mono truncate", text: r.reason }),
              ": ",
              h("span", { class: "val-a mono", text: fmtInt(r.a) }),
              " → ",
              h("span", { class: "val-b mono", text: fmtInt(r.b) }),
            ),
          ),
          row.reasoning ? reasoningDiff(row.reasoning) : null,
          !row.params.length && !reasons.length && !row.reasoning
            ? h("span", { class: "muted", text: row.changed.length ? row.changed.join(", ") : "same" })
            : null,
        ),
        onlyA,
        onlyB,
      ),
    );
  }
  const first = cmp.first_difference;
  const summary = first
    ? h(
        "p",
        { class: "divergence", id: "first-divergence" },
        "First difference",
        first.step ? " at " : "",
        first.step ? h("strong", { text: first.step }) : null,
        `: ${first.text}.`,
        cmp.differences.length > 1
          ? h("span", { class: "muted", text: ` (${cmp.differences.length - 1} more below)` })
          : null,
      )
    : h("p", {
        class: "divergence same",
        id: "first-divergence",
        text: "Every step has the same counts, rejections and parameters in both runs.",
      });
  const others = cmp.differences.slice(1, 8);
  const list = others.length
    ? h(
        "ol",
        { class: "differences", id: "differences" },
        others.map((d) => h("li", { class: `diff-${d.kind}`, text: d.text })),
      )
    : null;
  head.append(
    h(
      "p",
      { class: "head-actions" },
      h("a", {
        class: "btn",
        id: "compare-swap",
        href: hashUrl("/compare", { a: b.id, b: a.id }),
        text: "⇄ Swap A and B",
      }),
    ),
  );
  clear(root).append(
    head,
    h("div", { class: "two-col" }, runCard("A", a, cmp), runCard("B", b, cmp)),
    summary,
    list,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { text: "Step by step" }),
        h("span", {
          class: "muted",
          text: "Rows that differ are highlighted. “Kept” means accepted or selected in that run's recorded decisions.",
        }),
      ),
      table,
    ),
  );
  // Kept candidates need the decisions endpoint (two requests per side): fill them in
  // for the few steps where they say most, the last differing steps with decisions.
  const candidates = keptCells
    .filter(({ row }) => row.a && row.b && row.changed.length)
    .slice(-MAX_COMPARED_STEPS);
  await Promise.all(
    keptCells.map(async ({ row, onlyA, onlyB }) => {
      if (!candidates.some((c) => c.row === row)) {
        onlyA.append(h("span", { class: "muted", text: row.changed.length ? "not compared" : "—" }));
        return;
      }
      let ka, kb;
      try {
        [ka, kb] = await Promise.all([keptKeys(row.a, signal), keptKeys(row.b, signal)]);
      } catch (e) {
        if (e && e.name === "AbortError") return;
        onlyA.append(h("span", { class: "err-text", text: e.message }));
        return;
      }
      if (!ka || !kb) {
        const why = h("span", {
          class: "muted",
          text: "not recorded",
          title: "At least one side recorded no decisions for this step (detail: summary).",
        });
        onlyA.append(why);
        onlyB.append(why.cloneNode(true));
        return;
      }
      fillKept(
        onlyA,
        [...ka.keys].filter((k) => !kb.keys.has(k)),
        a.id,
        ka.partial || kb.partial,
      );
      fillKept(
        onlyB,
        [...kb.keys].filter((k) => !ka.keys.has(k)),
        b.id,
        ka.partial || kb.partial,
      );
    }),
  );
}

function countCell(step) {
  return h("td", {
    class: "num",
    title: step ? `${fmtInt(step.input_count)} in → ${fmtInt(step.output_count)} out` : "absent",
    text: step ? `${fmtCount(step.input_count)} → ${fmtCount(step.output_count)}` : "absent",
  });
}

function rateCell(step) {
  if (!step) return h("td", {});
  const rejected = step.rejected_rate === null || step.rejected_rate === undefined ? "" : fmtPct(step.rejected_rate);
  return h(
    "td",
    { class: "num" },
    h("div", { text: fmtElimination(step) }),
    rejected
      ? h("div", {
          class: step.readmitted ? "muted refill" : "muted",
          title: "Rejected / input, from the reasons recorded",
          text: step.readmitted ? `${rejected} rej. · refilled` : `${rejected} rej.`,
        })
      : null,
  );
}

/** One differing parameter; lists show what B added and dropped rather than two blobs. */
function paramChange(key, va, vb) {
  const name = h("span", { class: "mono", text: key });
  if (Array.isArray(va) && Array.isArray(vb)) {
    const sa = new Set(va.map((v) => JSON.stringify(v)));
    const sb = new Set(vb.map((v) => JSON.stringify(v)));
    const added = vb.filter((v) => !sa.has(JSON.stringify(v)));
    const dropped = va.filter((v) => !sb.has(JSON.stringify(v)));
    if (!added.length && !dropped.length)
      return h("div", {}, name, h("span", { class: "muted", text: ": same items, different order" }));
    return h(
      "div",
      {},
      name,
      ": ",
      added.map((v) => h("span", { class: "val-added mono", text: `+ ${preview(v, 60)}` })),
      dropped.map((v) => h("span", { class: "val-dropped mono", text: `− ${preview(v, 60)}` })),
    );
  }
  return h(
    "div",
    {},
    name,
    ": ",
    h("span", { class: "val-a mono", text: va === undefined ? "∅" : preview(va, 120) }),
    " → ",
    h("span", { class: "val-b mono", text: vb === undefined ? "∅" : preview(vb, 120) }),
  );
}

// LLM steps often differ only in what the model said: show both texts on demand.
function reasoningDiff(reasoning) {
  return h(
    "details",
    { class: "reasoning-diff" },
    h("summary", { text: "reasoning differs" }),
    h("p", {}, h("span", { class: "ab-mini", text: "A" }), reasoning.a || "(none)"),
    h("p", {}, h("span", { class: "ab-mini", text: "B" }), reasoning.b || "(none)"),
  );
}

function fillKept(cell, keys, runId, partial) {
  if (!keys.length) {
    cell.append(h("span", { class: "muted", text: "none" }));
    return;
  }
  const shown = keys.slice(0, 6);
  cell.append(
    h(
      "span",
      { class: "chips" },
      shown.map((k) =>
        h("a", {
          class: "chip chip-kept mono",
          href: hashUrl(`/candidates/${enc(k)}`, { run: runId }),
          text: k,
        }),
      ),
      keys.length > shown.length
        ? h("span", { class: "muted", text: `+${keys.length - shown.length} more` })
        : null,
      partial
        ? h("span", {
            class: "muted",
            title: `Compared the first ${KEPT_LIMIT} kept decisions per step`,
            text: "(partial)",
          })
        : null,
    ),
  );
}

function runCard(label, run, cmp) {
  const differing = new Map(cmp.metadata.map((m) => [m.key, label === "A" ? m.a : m.b]));
  return h(
    "section",
    { class: "card run-card" },
    h(
      "div",
      { class: "section-head" },
      h("span", { class: "ab-label", text: label }),
      h("h2", { class: "cell-clip" }, runLink(run.id, `${run.pipeline} · ${run.id.slice(0, 8)}`)),
      statusBadge(run.status),
    ),
    h("p", {
      class: "muted",
      text: `${fmtTime(run.started_at)} · ${fmtDuration(run.duration_ms)} · ${cmp.steps.filter((s) => s[label.toLowerCase()]).length} steps`,
    }),
    differing.size
      ? h(
          "p",
          { class: "meta-diff" },
          h("span", { class: "muted", text: "Metadata that differs " }),
          [...differing].map(([k, v]) =>
            h("code", { class: "chip mono", text: `${k}=${v === undefined || v === null ? "∅" : preview(v, 40)}` }),
          ),
        )
      : null,
    h(
      "div",
      { class: "output-line" },
      h("span", { class: "muted", text: "Output " }),
      h("code", { class: "mono", title: preview(run.output, 2000), text: preview(run.output, 120) }),
    ),
  );
}

// Two groups of one pipeline's runs (?pipeline=P&a=metadata.locale:de-DE&b=rest), step by
// step: median counts, rejection shares, top reasons and the params constant in each.
async function renderCohorts(ctx, head) {
  const { root, params, signal } = ctx;
  const cmp = await api(
    "/compare",
    { pipeline: params.get("pipeline"), a: params.get("a"), b: params.get("b") || "rest" },
    signal,
  );
  if (!ctx.isCurrent()) return;
  head.querySelector("h1").textContent = "Compare groups of runs";
  head.querySelector("p").textContent =
    "Two groups of a pipeline's runs side by side, step by step: where do their rejections part?";
  const first = cmp.first_divergence;
  const side = (s) => {
    if (!s) return [h("td", { class: "muted", text: "absent" }), h("td", {})];
    const reasons = Object.entries(s.reason_rates);
    return [
      h("td", { class: "num", text: `${fmtInt(s.median_input)} → ${fmtInt(s.median_output)}` }),
      h(
        "td",
        { title: reasons.map(([r, v]) => `${r} ${fmtPct(v)}`).join("\n") },
        reasons.length
          ? h(
              "div",
              { class: "cell-clip" },
              h("strong", { text: fmtPct(s.rejected_rate) }),
              ` ${reasons[0][0]} ${fmtPct(reasons[0][1])}`,
            )
          : h("span", { class: "muted", text: "no rejections" }),
        s.readmitted_runs ? h("span", { class: "chip chip-warn", text: "refilled" }) : null,
      ),
    ];
  };
  clear(root).append(
    head,
    h(
      "div",
      { class: "two-col" },
      [cmp.a, cmp.b].map((g, i) =>
        h(
          "section",
          { class: "card run-card" },
          h(
            "div",
            { class: "section-head" },
            h("span", { class: "ab-label", text: i ? "B" : "A" }),
            h("h2", { class: "cell-clip", title: g.label, text: g.label }),
          ),
          h("p", { class: "muted", text: `${fmtInt(g.runs)} runs` }),
          g.outputs.map((o) =>
            h("div", { class: "truncate mono", title: preview(o.value, 2000), text: `${fmtInt(o.runs)} × ${preview(o.value, 100)}` }),
          ),
        ),
      ),
    ),
    h(
      "p",
      { class: first ? "divergence" : "divergence same", id: "first-divergence" },
      first
        ? [
            "First divergence at ",
            h("strong", { text: first.step }),
            `: ${first.reason} ${fmtPct(first.rate)} of its input in A vs ${fmtPct(first.rest_rate)} in B.`,
          ]
        : "The two groups' rejections do not differ.",
    ),
    h(
      "section",
      { class: "card" },
      h("div", { class: "section-head" }, h("h2", { text: "Step by step" })),
      h(
        "table",
        { class: "grid fixed", id: "cohort-table" },
        h(
          "colgroup",
          {},
          h("col", { class: "c-pos" }),
          h("col", { class: "c-step" }),
          h("col", { class: "c-count" }),
          h("col", {}),
          h("col", { class: "c-count" }),
          h("col", {}),
        ),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { class: "num", text: "#" }),
            h("th", { text: "Step" }),
            h("th", { class: "num", text: "A: median in → out" }),
            h("th", { text: "A: rejected, top reason" }),
            h("th", { class: "num", text: "B: median in → out" }),
            h("th", { text: "B: rejected, top reason" }),
          ),
        ),
        h(
          "tbody",
          {},
          cmp.steps.map((s) =>
            h(
              "tr",
              { class: first && first.step === s.name ? "row-differs" : "", dataset: { stepName: s.name } },
              h("td", { class: "num muted", text: s.position }),
              h("td", { class: "cell-clip", title: s.name }, h("span", { class: "strong", text: s.name })),
              ...side(s.a),
              ...side(s.b),
            ),
          ),
        ),
      ),
    ),
  );
}
