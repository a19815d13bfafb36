// 群组: every group in one table — search, filters, sort, pages, and bulk tagging — from
// GET /api/v1/groups (the filters are the API's own query, kept in the address so that a view
// can be bookmarked and the back button works).

import { api, query, segment } from "../api.js";
import { h, fill, field, filterForm, select, table, notice } from "../dom.js";
import { number, ago, label, STAGES, STATUSES, CHANNELS } from "../format.js";

const FILTERS = ["q", "status", "tag", "channel", "stage", "sort"];
const PAGE_SIZE = 50;

const SORTS = [
  ["chat_id", "群 ID"],
  ["name", "群名称"],
  ["health", "健康分（低到高）"],
  ["members", "成员（多到少）"],
  ["messages", "消息（多到少）"],
  ["last_message", "最近消息（新到旧）"],
];

function go(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const text = search.toString();
  location.hash = "#/groups" + (text ? "?" + text : "");
}

function filtersOf(params) {
  const value = (name) => params.get(name) || "";
  const controls = {
    q: h("input", { name: "q", type: "search", value: value("q"), placeholder: "群名称或群 ID" }),
    status: select({ name: "status" }, [["", "全部"], ...Object.entries(STATUSES)], value("status")),
    tag: h("input", { name: "tag", value: value("tag"), placeholder: "如 会计" }),
    channel: select({ name: "channel" }, [["", "全部"], ...Object.entries(CHANNELS)], value("channel")),
    stage: select({ name: "stage" }, [["", "全部"], ...Object.entries(STAGES)], value("stage")),
    sort: select({ name: "sort" }, SORTS, value("sort") || "chat_id"),
  };
  const fields = [
    ["搜索", controls.q],
    ["状态", controls.status],
    ["标签", controls.tag],
    ["渠道", controls.channel],
    ["健康阶段", controls.stage],
    ["排序", controls.sort],
  ];
  return filterForm("筛选群组", fields, (next) => go({ ...next, sort: next.sort === "chat_id" ? "" : next.sort }));
}

function healthCell(g) {
  if (!g.health) return "—";
  if (!g.health.measured) return h("span", { class: "muted" }, "仅推送");
  return h("span", { class: "stage stage-" + g.health.stage }, `${g.health.score} · ${g.health.stage_text}`);
}

function row(g, selectable) {
  const members = g.health && g.health.members !== null ? g.health.members : g.members_seen;
  const name = g.name || g.chat_id;
  return h(
    "tr",
    { "data-chat": g.chat_id },
    selectable
      ? h("td", {}, h("input", { type: "checkbox", class: "pick", value: g.chat_id, "aria-label": "选择 " + name }))
      : null,
    h("td", {}, h("a", { href: "#/groups/" + segment(g.chat_id) }, name), h("div", { class: "muted" }, g.chat_id)),
    h("td", {}, label(STATUSES, g.status)),
    h("td", {}, label(CHANNELS, g.channel)),
    h("td", {}, g.tags.map((t) => h("span", { class: "tag" }, t))),
    h("td", { class: "num" }, number(members)),
    h("td", { class: "num" }, number(g.messages)),
    h("td", {}, ago(g.last_message_at)),
    h("td", {}, healthCell(g)),
  );
}

function bulkBar(container, reload) {
  const tagInput = h("input", { name: "bulk-tag", placeholder: "标签" });
  const status = h("span", { role: "status", class: "muted" });
  const apply = async (kind) => {
    const chatIds = [...container.querySelectorAll("input.pick:checked")].map((c) => c.value);
    const tag = tagInput.value.trim();
    if (chatIds.length === 0 || !tag) {
      fill(status, "请先勾选群，并填写标签。");
      return;
    }
    try {
      await api("/bulk/tags", { method: "POST", body: { chat_ids: chatIds, [kind]: [tag] } });
      await reload(`已为 ${chatIds.length} 个群${kind === "add" ? "添加" : "移除"}标签「${tag}」。`);
    } catch (e) {
      fill(status, "操作失败：" + e.message);
    }
  };
  return h(
    "div",
    { class: "bar-actions", "aria-label": "批量设置标签" },
    field("为勾选的群", tagInput),
    h("button", { type: "button", onclick: () => apply("add") }, "添加标签"),
    h("button", { type: "button", class: "secondary", onclick: () => apply("remove") }, "移除标签"),
    status,
  );
}

export async function render(container, ctx) {
  const params = ctx.params;
  const asked = { limit: PAGE_SIZE, cursor: params.get("cursor") };
  for (const name of FILTERS) asked[name] = params.get(name);
  const list = await api("/groups" + query(asked));
  const draw = (message) => {
    const pickAll = h("input", {
      type: "checkbox",
      "aria-label": "全选本页",
      onchange: (e) => container.querySelectorAll("input.pick").forEach((c) => (c.checked = e.target.checked)),
    });
    const headers = ["群", "状态", "渠道", "标签", "成员", "消息", "最近消息", "健康"];
    const rows = list.groups.map((g) => row(g, ctx.canChange));
    const next = () => go({ ...Object.fromEntries(FILTERS.map((n) => [n, params.get(n)])), cursor: list.next_cursor });
    fill(
      container,
      h("h1", {}, "群组"),
      filtersOf(params),
      message ? notice("ok", message) : null,
      h("p", { "data-total": list.total }, `共 ${number(list.total)} 个群`),
      ctx.canChange ? bulkBar(container, reload) : null,
      list.groups.length
        ? table(ctx.canChange ? [pickAll, ...headers] : headers, rows, { "aria-label": "群组列表" })
        : notice("info", "没有符合条件的群。"),
      h(
        "div",
        { class: "pager" },
        params.get("cursor") ? h("button", { type: "button", class: "secondary", onclick: () => history.back() }, "上一页") : null,
        list.next_cursor ? h("button", { type: "button", onclick: next }, "下一页") : null,
      ),
    );
  };
  const reload = async (message) => {
    Object.assign(list, await api("/groups" + query(asked)));
    draw(message);
  };
  draw();
}
