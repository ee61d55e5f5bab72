// Two runs side by side, step by step: counts, params that differ, and candidates kept in
// one run but not the other (from each step's recorded accepted/selected decisions).

import {
  api,
  clear,
  enc,
  fmtDuration,
  fmtInt,
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
const MAX_COMPARED_STEPS = 40;

/** Pair the steps of two runs by name and occurrence (the 2nd "rerank" with the 2nd). */
export function alignSteps(a, b) {
  const keyed = (steps) => {
    const seen = new Map();
    return steps.map((s) => {
      const n = (seen.get(s.name) || 0) + 1;
      seen.set(s.name, n);
      return [`${s.name}#${n}`, s];
    });
  };
  const ka = keyed(a);
  const kb = new Map(keyed(b));
  const rows = ka.map(([k, s]) => {
    const other = kb.get(k) || null;
    kb.delete(k);
    return { key: k, a: s, b: other };
  });
  for (const [k, s] of kb) rows.push({ key: k, a: null, b: s });
  return rows;
}

export function paramDiff(pa, pb) {
  const keys = [...new Set([...Object.keys(pa || {}), ...Object.keys(pb || {})])].sort();
  const out = [];
  for (const k of keys) {
    const va = pa ? pa[k] : undefined;
    const vb = pb ? pb[k] : undefined;
    if (JSON.stringify(va) !== JSON.stringify(vb)) out.push([k, va, vb]);
  }
  return out;
}

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
  const [a, b] = await Promise.all([
    api(`/runs/${enc(aId)}`, null, signal),
    api(`/runs/${enc(bId)}`, null, signal),
  ]);
  if (!ctx.isCurrent()) return;
  const rows = alignSteps(a.steps, b.steps);
  const table = h(
    "table",
    { class: "grid compare", id: "compare-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { class: "c-step", text: "Step" }),
        h("th", { class: "num c-count", text: "A: in → out" }),
        h("th", { class: "num c-elim", text: "A elim." }),
        h("th", { class: "num c-count", text: "B: in → out" }),
        h("th", { class: "num c-elim", text: "B elim." }),
        h("th", { class: "c-params", text: "Params that differ" }),
        h("th", { class: "c-kept", text: "Kept only in A" }),
        h("th", { class: "c-kept", text: "Kept only in B" }),
      ),
    ),
  );
  const body = h("tbody");
  table.append(body);
  const keptCells = [];
  for (const row of rows) {
    const s = row.a || row.b;
    const diff = paramDiff(row.a && row.a.params, row.b && row.b.params);
    const countsDiffer =
      !row.a ||
      !row.b ||
      row.a.input_count !== row.b.input_count ||
      row.a.output_count !== row.b.output_count;
    const onlyA = h("td", { class: "kept-diff" });
    const onlyB = h("td", { class: "kept-diff" });
    keptCells.push({ row, onlyA, onlyB });
    body.append(
      h(
        "tr",
        { class: diff.length || countsDiffer ? "row-differs" : "", dataset: { stepName: s.name } },
        h("td", {}, h("span", { class: "strong", text: s.name }), " ", typeChip(s.type)),
        h("td", {
          class: "num",
          text: row.a ? `${fmtInt(row.a.input_count)} → ${fmtInt(row.a.output_count)}` : "missing",
        }),
        h("td", { class: "num", text: row.a ? fmtElimination(row.a) : "" }),
        h("td", {
          class: "num",
          text: row.b ? `${fmtInt(row.b.input_count)} → ${fmtInt(row.b.output_count)}` : "missing",
        }),
        h("td", { class: "num", text: row.b ? fmtElimination(row.b) : "" }),
        h(
          "td",
          { class: "param-diff" },
          diff.length
            ? diff.map(([k, va, vb]) => paramChange(k, va, vb))
            : h("span", { class: "muted", text: "same" }),
          reasoningDiffers(row) ? reasoningDiff(row) : null,
        ),
        onlyA,
        onlyB,
      ),
    );
  }
  const first = rows.find(
    (r) =>
      !r.a ||
      !r.b ||
      r.a.input_count !== r.b.input_count ||
      r.a.output_count !== r.b.output_count ||
      paramDiff(r.a.params, r.b.params).length,
  );
  const summary = first
    ? h(
        "p",
        { class: "divergence", id: "first-divergence" },
        "First difference at ",
        h("strong", { text: (first.a || first.b).name }),
        `: ${describe(first.a)} in A, ${describe(first.b)} in B.`,
      )
    : h("p", {
        class: "divergence same",
        id: "first-divergence",
        text: "Every step has the same counts and parameters in both runs.",
      });
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
    h("div", { class: "two-col" }, runCard("A", a), runCard("B", b)),
    summary,
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
  // Candidate differences need the decisions endpoint: fill them in as they arrive, for
  // a bounded number of steps (a run with hundreds of recorded steps would mean
  // hundreds of requests).
  let compared = 0;
  await Promise.all(
    keptCells.map(async ({ row, onlyA, onlyB }) => {
      const recorded = row.a && row.b && row.a.candidates_recorded && row.b.candidates_recorded;
      if (recorded && ++compared > MAX_COMPARED_STEPS) {
        onlyA.append(
          h("span", {
            class: "muted",
            text: "not compared",
            title: `Candidates are compared for the first ${MAX_COMPARED_STEPS} steps with recorded decisions`,
          }),
        );
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

function reasoningDiffers(row) {
  return Boolean(
    row.a && row.b && (row.a.reasoning || row.b.reasoning) && row.a.reasoning !== row.b.reasoning,
  );
}

// LLM steps often differ only in what the model said: show both texts on demand.
function reasoningDiff(row) {
  return h(
    "details",
    { class: "reasoning-diff" },
    h("summary", { text: "reasoning differs" }),
    h("p", {}, h("span", { class: "ab-mini", text: "A" }), row.a.reasoning || "(none)"),
    h("p", {}, h("span", { class: "ab-mini", text: "B" }), row.b.reasoning || "(none)"),
  );
}

function describe(step) {
  if (!step) return "missing";
  return `${fmtInt(step.input_count)} → ${fmtInt(step.output_count)}`;
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

function runCard(label, run) {
  return h(
    "section",
    { class: "card run-card" },
    h(
      "div",
      { class: "section-head" },
      h("span", { class: "ab-label", text: label }),
      h("h2", {}, runLink(run.id, `${run.pipeline} · ${run.id.slice(0, 8)}`)),
      statusBadge(run.status),
    ),
    h("p", {
      class: "muted",
      text: `${fmtTime(run.started_at)} · ${fmtDuration(run.duration_ms)} · ${run.steps.length} steps`,
    }),
    h(
      "div",
      { class: "output-line" },
      h("span", { class: "muted", text: "Output " }),
      h("code", { class: "mono", text: preview(run.output, 120) }),
    ),
  );
}
