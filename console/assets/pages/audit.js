// 审计: every change made through the console or the API — who, when, what, the answer, and a
// group's settings before → after — newest first, filtered by who made it.

import { api, query } from "../api.js";
import { h, fill, filterForm, table, notice } from "../dom.js";
import { time } from "../format.js";

const ACTOR_HINT = "如 operator:zhang 或 admin-token";

/** `admin-token` and `operator:NAME` as operators read them. */
function actorText(actor) {
  if (actor === "admin-token") return "API 令牌（自动化）";
  if (actor === "cli") return "命令行";
  return actor.replace(/^operator:/, "");
}

/** A value as the audit shows it: text as it is (a diff keeps its lines), the rest as JSON. */
function show(value) {
  if (value === undefined) return "—";
  return typeof value === "string" && value.includes("\n") ? "\n" + value : JSON.stringify(value);
}

/** Lines of a settings change: each field whose value differs, before → after. */
function changes(entry) {
  if (!entry.before && !entry.after) return null;
  const before = entry.before || {};
  const after = entry.after || {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const lines = keys
    .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k}: ${show(before[k])} → ${show(after[k])}`);
  return h("pre", { class: "diff" }, lines.join("\n"));
}

export async function render(container, ctx) {
  const actor = ctx.params.get("actor") || "";
  const action = ctx.params.get("action") || "";
  const cursor = ctx.params.get("cursor") || "";
  const page = await api("/audit" + query({ actor, action, cursor, limit: 50 }));
  const input = h("input", { name: "actor", type: "search", value: actor, placeholder: ACTOR_HINT });
  const what = h("input", { name: "action", type: "search", value: action, placeholder: "如 tags、scripts、operators" });
  const form = filterForm(
    "筛选审计记录",
    [
      ["操作人", input],
      ["操作包含", what],
    ],
    (next) => (location.hash = "#/audit" + query(next)),
  );
  fill(
    container,
    h("h1", {}, "审计"),
    form,
    page.entries.length
      ? table(
          ["时间", "操作人", "操作", "结果", "请求", "变更"],
          page.entries.map((e) => [
            time(e.at),
            actorText(e.actor),
            e.action,
            String(e.status),
            e.request ? h("pre", { class: "json" }, JSON.stringify(e.request)) : "—",
            changes(e) || "—",
          ]),
          { "aria-label": "审计记录" },
        )
      : notice("info", "没有审计记录。"),
    h(
      "div",
      { class: "pager" },
      cursor ? h("button", { type: "button", class: "secondary", onclick: () => history.back() }, "上一页") : null,
      page.next_cursor
        ? h("button", { type: "button", onclick: () => (location.hash = "#/audit" + query({ actor, action, cursor: page.next_cursor })) }, "下一页")
        : null,
    ),
  );
}
