// One candidate: its path through the steps of one run, and every run that decided on it.

import {
  api,
  clear,
  decisionBadge,
  empty,
  enc,
  fmtTime,
  h,
  hashUrl,
  pager,
  preview,
  runLink,
  shortId,
  typeChip,
  plural,
} from "./lib.js";
import { attributesText } from "./run.js";

const OUTCOME = {
  accepted: "kept",
  scored: "scored",
  selected: "selected",
  rejected: "rejected",
};

function reasonText(d) {
  return d.reason ? `${d.step_name}: ${d.reason}` : d.step_name;
}

/** One line a person can read: "kept, kept, rejected at price_filter: price_above_max". */
export function pathSentence(decisions) {
  return decisions
    .map((d) =>
      d.decision === "rejected" || d.decision === "selected"
        ? `${OUTCOME[d.decision]} at ${reasonText(d)}`
        : OUTCOME[d.decision] || d.decision,
    )
    .join(", ");
}

export async function renderCandidate(ctx) {
  const { root, params, signal, arg: key } = ctx;
  const runId = params.get("run");
  const cursor = params.get("cursor") || "";
  document.title = `${key} · X-Ray`;
  const [run, inRun, across] = await Promise.all([
    runId ? api(`/runs/${enc(runId)}`, null, signal) : null,
    runId ? api(`/candidates/${enc(key)}`, { run_id: runId, limit: 1000 }, signal) : null,
    api(`/candidates/${enc(key)}`, { cursor, limit: 200 }, signal),
  ]);
  if (!ctx.isCurrent()) return;
  const page = h(
    "div",
    { class: "candidate-page" },
    h(
      "section",
      { class: "page-head" },
      h(
        "nav",
        { class: "crumbs" },
        h("a", { href: "#/runs", text: "Runs" }),
        run
          ? [" / ", h("a", { href: `#/runs/${enc(run.id)}`, text: `${run.pipeline} ${shortId(run.id)}` })]
          : null,
        " / candidate",
      ),
      h(
        "div",
        { class: "title-row" },
        h("h1", { class: "mono", text: key }),
        h("span", { class: "muted", text: "Candidate" }),
      ),
    ),
  );
  if (run) page.append(runPath(run, inRun.items, key));
  page.append(acrossRuns(key, across, cursor, runId));
  clear(root).append(page);
}

function runPath(run, decisions, key) {
  const byStep = new Map();
  for (const d of decisions) byStep.set(d.step_id, d);
  const section = h(
    "section",
    { class: "card", id: "candidate-path" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { text: "Path through this run" }),
      h("a", {
        href: `#/runs/${enc(run.id)}`,
        class: "muted-link",
        text: `${run.pipeline} · ${fmtTime(run.started_at)} · ${shortId(run.id)}`,
      }),
    ),
  );
  if (!decisions.length) {
    section.append(
      empty(
        "No decision about this candidate was recorded in this run.",
        "Its steps may have run with detail: summary, which keeps counts and reasons but not individual candidates.",
      ),
    );
    return section;
  }
  const last = decisions[decisions.length - 1];
  section.append(
    h("p", {
      class: `path-sentence outcome-${last.decision}`,
      id: "path-sentence",
      text: pathSentence(decisions),
    }),
  );
  let dropped = false;
  const path = h("ol", { class: "path" });
  for (const step of run.steps) {
    const d = byStep.get(step.id);
    let state;
    if (d)
      state = h(
        "span",
        {},
        decisionBadge(d.decision),
        d.reason ? h("span", { class: "mono reason", text: d.reason }) : null,
      );
    else if (dropped) state = h("span", { class: "muted", text: "not reached" });
    else state = h("span", { class: "muted", text: "not recorded" });
    if (d && d.decision === "rejected") dropped = true;
    path.append(
      h(
        "li",
        { class: `path-node${d ? ` node-${d.decision}` : " node-none"}`, dataset: { stepName: step.name } },
        h("a", {
          href: hashUrl(`/runs/${enc(run.id)}`, { step: step.id, cand: key }),
          class: "strong",
          text: step.name,
        }),
        typeChip(step.type),
        state,
        d && (d.score !== null || Object.keys(d.attributes || {}).length)
          ? h("span", {
              class: "muted small",
              text: [
                d.score !== null && d.score !== undefined ? `score ${Number(d.score).toFixed(3)}` : "",
                attributesText(d.attributes),
              ]
                .filter(Boolean)
                .join(" · "),
            })
          : null,
      ),
    );
  }
  section.append(path);
  return section;
}

function acrossRuns(key, page, cursor, runId) {
  const section = h(
    "section",
    { class: "card", id: "candidate-runs" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { text: "Across runs" }),
      h("span", { class: "muted", text: "Every recorded decision about this candidate, newest run first." }),
    ),
  );
  if (!page.items.length) {
    section.append(
      empty(
        "No decisions about this candidate were recorded.",
        "Check the key, or record the steps that judge it with detail: sampled or full.",
      ),
    );
    return section;
  }
  const groups = [];
  for (const d of page.items) {
    const g = groups[groups.length - 1];
    if (g && g.runId === d.run_id) g.items.push(d);
    else groups.push({ runId: d.run_id, items: [d] });
  }
  // How its runs ended for it, by the last recorded decision in each.
  const outcomes = new Map();
  for (const g of groups) {
    const last = g.items[g.items.length - 1].decision;
    outcomes.set(last, (outcomes.get(last) || 0) + 1);
  }
  const order = ["selected", "rejected", "accepted", "scored"];
  section.append(
    h(
      "p",
      { class: "outcome-summary", id: "outcome-summary" },
      `In ${plural(groups.length, "run")}${page.next_cursor ? " on this page" : ""}: `,
      order
        .filter((d) => outcomes.has(d))
        .map((d, i) => [
          i ? ", " : "",
          h("span", { class: `outcome outcome-${d}`, text: `${OUTCOME[d]} ${outcomes.get(d)}×` }),
        ]),
    ),
  );
  section.append(
    h(
      "table",
      { class: "grid" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { text: "Run" }),
          h("th", { text: "Pipeline" }),
          h("th", { text: "Started" }),
          h("th", { text: "Path" }),
          h("th", { text: "Outcome" }),
        ),
      ),
      h(
        "tbody",
        {},
        groups.map((g) => {
          const last = g.items[g.items.length - 1];
          return h(
            "tr",
            { class: g.runId === runId ? "row-current" : "", dataset: { runId: g.runId } },
            h("td", {}, runLink(g.runId)),
            h("td", { text: last.pipeline }),
            h("td", { class: "nowrap", text: fmtTime(last.started_at) }),
            h(
              "td",
              {},
              h(
                "span",
                { class: "steps-inline" },
                g.items.map((d) =>
                  h("span", {
                    class: `mini mini-${d.decision}`,
                    title: `${d.step_name}: ${d.decision}${d.reason ? ` (${d.reason})` : ""}`,
                    text: d.step_name,
                  }),
                ),
              ),
            ),
            h(
              "td",
              {},
              h("a", {
                href: hashUrl(`/candidates/${enc(key)}`, { run: g.runId }),
                class: `outcome outcome-${last.decision}`,
                text: preview(pathSentence([last]), 60),
              }),
            ),
          );
        }),
      ),
    ),
  );
  section.append(
    pager({
      count: page.items.length,
      nextCursor: page.next_cursor,
      hasPrev: Boolean(cursor),
      label: `${plural(groups.length, "run")} on this page${page.next_cursor ? "; more on the next page" : ""}`,
      onFirst: () => (location.hash = hashUrl(`/candidates/${enc(key)}`, { run: runId })),
      onNext: () =>
        (location.hash = hashUrl(`/candidates/${enc(key)}`, { run: runId, cursor: page.next_cursor })),
    }),
  );
  return section;
}
