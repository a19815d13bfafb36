// 群组详情: one group — its settings (name, time zone, tags), roles, rule switches, health with
// 30 days of activity, members (who speaks, who is silent), sends with their receipts and its
// red-envelope tests. Each section reads its own endpoint of the admin API.

import { api, query, segment, ApiError } from "../api.js";
import { h, fill, field, select, table, notice } from "../dom.js";
import { bars } from "../chart.js";
import { number, time, ago, label, STATUSES, CHANNELS, SEND_STATES } from "../format.js";

const ROLE_NAMES = { owner: "群主", admin: "大当家", helper: "小当家", member: "成员" };

function settingsForm(g, path, ctx, done) {
  const name = h("input", { name: "name", value: g.name, maxlength: 64 });
  const timezone = h("input", { name: "timezone", value: g.timezone || "", placeholder: "如 Asia/Shanghai，留空则用任务的时区" });
  const tags = h("input", { name: "tags", value: g.tags.join("，"), placeholder: "用逗号分隔" });
  const status = h("div", { role: "status" });
  const disabled = !ctx.canChange;
  for (const control of [name, timezone, tags]) control.disabled = disabled;
  const form = h(
    "form",
    { class: "filters", "aria-label": "群设置" },
    field("群名称", name),
    field("时区", timezone),
    field("标签", tags),
    ctx.canChange ? h("button", { type: "submit" }, "保存设置") : null,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const profile = {};
      if (name.value.trim() !== g.name) profile.name = name.value.trim();
      if (timezone.value.trim() !== (g.timezone || "")) profile.timezone = timezone.value.trim();
      if (Object.keys(profile).length) await api(path, { method: "PATCH", body: profile });
      const list = tags.value.split(/[,，\s]+/).map((t) => t.trim()).filter(Boolean);
      await api(path + "/tags", { method: "PUT", body: { tags: list } });
      done("设置已保存。");
    } catch (e) {
      fill(status, notice("error", "保存失败：" + e.message));
    }
  });
  return form;
}

/** Gives a member a role in the group (群主, 大当家, 小当家) or takes it away. */
function roleForm(path, ctx, done) {
  if (!ctx.canChange) return null;
  const user = h("input", { name: "role-user", required: true, placeholder: "成员 ID" });
  const name = h("input", { name: "role-name", placeholder: "昵称（可不填）" });
  const role = h(
    "select",
    { name: "role" },
    Object.entries(ROLE_NAMES).map(([value, text]) => h("option", { value }, value === "member" ? "成员（取消角色）" : text)),
  );
  const form = h("form", { class: "filters", "aria-label": "设置角色" }, field("成员 ID", user), field("昵称", name), field("角色", role), h("button", { type: "submit" }, "设置角色"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`${path}/roles/${segment(user.value.trim())}`, { method: "PUT", body: { role: role.value, name: name.value.trim() } });
      done(`已将 ${name.value.trim() || user.value.trim()} 设为${ROLE_NAMES[role.value]}。`);
    } catch (e) {
      done(null, "设置失败：" + e.message);
    }
  });
  return form;
}

async function ruleSwitches(g, path, ctx, done) {
  const rules = (await api("/rules")).filter((r) => r.kind === "keyword" || r.kind === "welcome");
  if (rules.length === 0) return h("p", { class: "muted" }, "没有可按群开关的规则。");
  const off = new Set(g.disabled_rules);
  return table(
    ["规则", "类型", "关键词", "本群启用"],
    rules.map((r) => {
      const box = h("input", {
        type: "checkbox",
        checked: !off.has(r.id),
        disabled: !ctx.canChange,
        "aria-label": `本群启用规则 ${r.id}`,
      });
      box.addEventListener("change", async () => {
        try {
          await api(`${path}/rules/${segment(r.id)}`, { method: "PUT", body: { enabled: box.checked } });
          done(`规则 ${r.id} 已${box.checked ? "启用" : "停用"}。`);
        } catch (e) {
          box.checked = !box.checked;
          done(null, "切换失败：" + e.message);
        }
      });
      return [r.id, r.kind === "keyword" ? "关键词" : "欢迎语", r.patterns.slice(0, 5).join("、"), box];
    }),
  );
}

async function healthSection(path) {
  const [health, activity] = await Promise.all([api(path + "/health"), api(path + "/activity?days=30")]);
  const days = activity.days;
  if (!health.measured) {
    return h("p", { class: "muted", "data-health-score": "unmeasured" }, "仅推送的群：机器人收不到成员的消息，无法衡量健康。");
  }
  return [
    h(
      "dl",
      { class: "kv" },
      h("dt", {}, "健康分"),
      h("dd", { "data-health-score": health.score }, `${health.score} · ${health.stage_text}`),
      h("dt", {}, "建议"),
      h("dd", {}, health.action),
      h("dt", {}, "原因"),
      h("dd", {}, health.reasons.join("；") || "—"),
    ),
    h("h3", {}, "健康分（每天记录一次）"),
    bars(
      days.map((d) => [d.day.slice(5), d.health_score]),
      { title: "近 30 天每天的健康分", every: 5, unit: " 分" },
    ),
    h("h3", {}, "消息"),
    bars(
      days.map((d) => [d.day.slice(5), d.messages]),
      { title: "近 30 天每天的消息数", every: 5, unit: " 条" },
    ),
    h(
      "p",
      { class: "muted" },
      `近 30 天：消息 ${number(days.reduce((s, d) => s + d.messages, 0))} 条，` +
        `入群 ${number(days.reduce((s, d) => s + d.joins, 0))} 人，退群 ${number(days.reduce((s, d) => s + d.leaves, 0))} 人`,
    ),
  ];
}

async function membersSection(path, params) {
  const q = params.get("member") || "";
  const cursor = params.get("members_from") || "";
  const order = params.get("member_sort") || "messages";
  const list = await api(path + "/members" + query({ q, limit: 100, cursor, sort: order }));
  const pageTo = (from) => {
    const next = new URLSearchParams(params);
    if (from) next.set("members_from", from);
    else next.delete("members_from");
    location.hash = location.hash.split("?")[0] + "?" + next.toString();
  };
  const search = h("input", { type: "search", name: "member", value: q, placeholder: "昵称或 ID" });
  const sort = select({ name: "member_sort" }, [["messages", "发言最多的在前"], ["user_id", "按 ID"]], order);
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "搜索成员" },
    field("搜索成员", search),
    field("排序", sort),
    h("button", { type: "submit" }, "搜索"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams(params);
    if (search.value.trim()) next.set("member", search.value.trim());
    else next.delete("member");
    next.set("member_sort", sort.value);
    next.delete("members_from");
    location.hash = location.hash.split("?")[0] + "?" + next.toString();
  });
  const silent = list.members.filter((m) => m.messages === 0).length;
  return [
    form,
    h("p", {}, `共 ${number(list.total)} 人，本页 ${list.members.length} 人中 ${silent} 人从未发言`),
    table(
      ["成员", "消息", "最近发言", "在群"],
      list.members.map((m) => [
        h("span", {}, m.name || m.user_id, h("div", { class: "muted" }, m.user_id)),
        m.messages ? number(m.messages) : h("span", { class: "muted" }, "未发言"),
        ago(m.last_seen),
        m.in_group === null ? "—" : m.in_group ? "是" : "已离开",
      ]),
      { "aria-label": "成员列表" },
    ),
    h(
      "div",
      { class: "pager" },
      cursor ? h("button", { type: "button", class: "secondary", onclick: () => pageTo("") }, "第一页") : null,
      list.next_cursor ? h("button", { type: "button", onclick: () => pageTo(list.next_cursor) }, "下一页") : null,
    ),
  ];
}

async function sendsSection(path) {
  const { sends } = await api(path + "/sends?limit=20");
  if (sends.length === 0) return h("p", { class: "muted" }, "还没有发往这个群的消息。");
  return table(
    ["时间", "用途", "状态", "尝试", "说明"],
    sends.map((s) => [
      time(s.created_at),
      s.run ? h("a", { href: "#/broadcasts?run=" + encodeURIComponent(s.run) }, s.purpose) : s.purpose,
      label(SEND_STATES, s.state),
      String(s.attempts),
      s.last_error || (s.via === "private" ? "私聊 " + s.recipient : ""),
    ]),
    { "aria-label": "发送记录" },
  );
}

async function envelopeSection(path) {
  const { tests } = await api(path + "/red-envelope-tests?limit=20");
  if (tests.length === 0) return h("p", { class: "muted" }, "这个群还没有做过红包测试。");
  return table(
    ["开始", "状态", "口令", "结论"],
    tests.map((t) => [time(t.started_at), t.state, t.claim_phrase, (t.results && t.results.verdict) || "—"]),
    { "aria-label": "红包测试" },
  );
}

export async function render(container, ctx) {
  const chat = ctx.id;
  const path = "/groups/" + segment(chat);
  let g;
  try {
    g = await api(path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      fill(container, h("h1", {}, "群组详情"), notice("error", `没有这个群：${chat}`), h("a", { href: "#/groups" }, "回到群组列表"));
      return;
    }
    throw e;
  }
  const message = h("div", { role: "status" });
  const done = async (ok, error) => {
    if (error) return fill(message, notice("error", error));
    g = await api(path);
    await draw();
    fill(message, notice("ok", ok));
  };
  const section = (title, body) => h("section", { class: "card" }, h("h2", {}, title), body);
  const later = async (make) => {
    try {
      return await make();
    } catch (e) {
      return notice("error", "加载失败：" + e.message);
    }
  };
  const draw = async () => {
    const adopted = g.status === "adopted";
    const [rules, health, members, sends, envelopes] = await Promise.all([
      later(() => ruleSwitches(g, path, ctx, done)),
      adopted ? later(() => healthSection(path)) : h("p", { class: "muted" }, "已退出的群不计算健康。"),
      later(() => membersSection(path, ctx.params)),
      later(() => sendsSection(path)),
      later(() => envelopeSection(path)),
    ]);
    fill(
      container,
      h("p", {}, h("a", { href: "#/groups" }, "← 群组列表")),
      h("h1", {}, g.name || g.chat_id),
      message,
      h(
        "dl",
        { class: "kv card" },
        h("dt", {}, "群 ID"),
        h("dd", {}, g.chat_id),
        h("dt", {}, "状态"),
        h("dd", {}, label(STATUSES, g.status), g.release_reason ? `（${g.release_reason}）` : ""),
        h("dt", {}, "渠道"),
        h("dd", {}, label(CHANNELS, g.channel), g.account ? `（${g.account}）` : ""),
        h("dt", {}, "接管"),
        h("dd", {}, `${time(g.adopted_at)} ${g.adopter_name || g.adopter || ""}`),
        h("dt", {}, "群主与管理"),
        h("dd", {}, g.roles.length ? g.roles.map((r) => `${r.name || r.user_id}（${ROLE_NAMES[r.role] || r.role}）`).join("、") : "—"),
      ),
      section("设置", [settingsForm(g, path, ctx, done), roleForm(path, ctx, done)]),
      section("健康", health),
      section("成员", members),
      section("规则开关", rules),
      section("发送记录", sends),
      section("红包测试", envelopes),
    );
  };
  await draw();
}
