// 审核: the moderation log (filters; each finding with its evidence and the normalised text),
// judging a finding right or wrong (误判: the member is pardoned and the message taught back as
// ordinary), the blacklist with pardons, and the members trusted in their groups.

import { api, query, segment } from "../api.js";
import { h, fill, field, filterForm, table, notice } from "../dom.js";
import { time } from "../format.js";

const ACTIONS = { log: "记录", notify: "通知管理员", delete: "撤回", warn: "警告", remove: "移出" };
const VERDICTS = { wrong: "误判", right: "确认违规" };
const NOT_FINDINGS = new Set(["report", "appeal", "pardon", "approve", "unapprove", "blacklist", "raid"]);

function filtersOf(params) {
  const controls = {
    chat_id: h("input", { name: "chat_id", value: params.get("chat_id") || "", placeholder: "群 ID" }),
    user_id: h("input", { name: "user_id", value: params.get("user_id") || "", placeholder: "成员 ID" }),
    check: h("input", { name: "check", value: params.get("check") || "", placeholder: "如 ads、report" }),
    since: h("input", { name: "since", type: "date", value: params.get("since") || "" }),
  };
  const fields = [
    ["群", controls.chat_id],
    ["成员", controls.user_id],
    ["规则", controls.check],
    ["起始日期", controls.since],
  ];
  return filterForm("筛选审核记录", fields, (next) => (location.hash = "#/moderation" + query(next)));
}

function entryRow(entry, ctx, done) {
  const judge = async (verdict) => {
    try {
      const answer = await api(`/moderation/${entry.id}/review`, { method: "POST", body: { verdict } });
      const cleared = answer.pardon ? `；已为 ${entry.name || entry.user_id} 清除警告${answer.pardon.was_blacklisted ? "并移出黑名单" : ""}` : "";
      done(`已标记为「${VERDICTS[verdict]}」${cleared}。`);
    } catch (e) {
      done(null, "标记失败：" + e.message);
    }
  };
  const finding = !NOT_FINDINGS.has(entry.check);
  const review = entry.review
    ? h("span", { "data-review": entry.review.verdict }, `${VERDICTS[entry.review.verdict]}（${entry.review.by.replace(/^operator:/, "")}）`)
    : null;
  return h(
    "tr",
    { "data-entry": entry.id },
    h("td", {}, time(entry.at), entry.repeats ? h("div", { class: "muted" }, `另有 ${entry.repeats} 次`) : null),
    h("td", {}, h("a", { href: "#/groups/" + segment(entry.chat_id) }, entry.chat_id)),
    h(
      "td",
      {},
      entry.name || entry.user_id,
      h("div", { class: "muted" }, entry.user_id),
      // Newcomers meet stricter checks: an admin judging the finding should know.
      entry.probation ? h("div", { class: "muted", "data-probation": "" }, "新成员（从严检查）") : null,
    ),
    h("td", {}, entry.check, entry.reason ? h("div", { class: "muted" }, entry.reason) : null),
    h(
      "td",
      {},
      entry.text,
      entry.normalized && entry.normalized !== entry.text ? h("div", { class: "muted" }, "归一化：" + entry.normalized) : null,
      entry.evidence ? h("div", { class: "muted" }, "证据：" + entry.evidence) : null,
    ),
    h("td", {}, (ACTIONS[entry.action] || entry.action) + (entry.dry_run ? "（演练）" : ""), h("div", { class: "muted" }, entry.outcome.join("；"))),
    h(
      "td",
      {},
      review,
      finding && ctx.canChange && !entry.review
        ? h(
            "span",
            { class: "bar-actions" },
            h("button", { type: "button", class: "secondary", onclick: () => judge("wrong") }, "误判"),
            h("button", { type: "button", class: "secondary", onclick: () => judge("right") }, "确认"),
          )
        : null,
    ),
  );
}

/** A button that runs `act` and reports what it answers, or why it failed, through `done`. */
function acting(label, done, act) {
  const run = async () => {
    try {
      done(await act());
    } catch (err) {
      done(null, `${label}失败：${err.message}`);
    }
  };
  return h("button", { type: "button", class: "secondary", onclick: run }, label);
}

async function blacklist(ctx, done) {
  const entries = await api("/moderation/blacklist");
  if (entries.length === 0) return h("p", { class: "muted" }, "黑名单是空的。");
  return table(
    ["成员", "移出自", "原因", "时间", ""],
    entries.map((e) => [
      `${e.name || e.user_id}（${e.user_id}）`,
      e.chat_id,
      e.reason || e.check,
      time(e.at),
      ctx.canChange
        ? acting("解除", done, async () => {
            await api(`/moderation/blacklist/${segment(e.user_id)}`, { method: "DELETE" });
            return `已解除 ${e.name || e.user_id} 的黑名单。`;
          })
        : "",
    ]),
    { "aria-label": "黑名单" },
  );
}

function trustForm(ctx, done) {
  if (!ctx.canChange) return null;
  const chat = h("input", { name: "trust-chat", required: true, placeholder: "群 ID" });
  const user = h("input", { name: "trust-user", required: true, placeholder: "成员 ID" });
  const form = h("form", { class: "filters", "aria-label": "信任成员" }, field("群", chat), field("成员", user), h("button", { type: "submit" }, "信任"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`/groups/${segment(chat.value.trim())}/approved/${segment(user.value.trim())}`, { method: "PUT", body: { approved: true } });
      done(`已信任 ${user.value.trim()}：在该群不再做内容审核。`);
    } catch (err) {
      done(null, "操作失败：" + err.message);
    }
  });
  return form;
}

async function approved(ctx, done) {
  const members = await api("/moderation/approved");
  if (members.length === 0) return [h("p", { class: "muted" }, "还没有受信任的成员（受信任的成员不做内容审核，仍检查刷屏）。"), trustForm(ctx, done)];
  return [trustForm(ctx, done), table(
    ["群", "成员", ""],
    members.map((m) => [
      m.chat_id,
      m.user_id,
      ctx.canChange
        ? acting("取消信任", done, async () => {
            await api(`/groups/${segment(m.chat_id)}/approved/${segment(m.user_id)}`, { method: "PUT", body: { approved: false } });
            return `已取消对 ${m.user_id} 的信任。`;
          })
        : "",
    ]),
    { "aria-label": "受信任的成员" },
  )];
}

export async function render(container, ctx) {
  const params = ctx.params;
  const message = h("div", { role: "status" });
  const draw = async (ok, error) => {
    const since = params.get("since");
    const asked = { chat_id: params.get("chat_id"), user_id: params.get("user_id"), check: params.get("check"), cursor: params.get("cursor"), limit: 50 };
    if (since) asked.since = new Date(since + "T00:00:00").toISOString();
    const [log, black, trusted] = await Promise.all([api("/moderation" + query(asked)), blacklist(ctx, draw), approved(ctx, draw)]);
    fill(
      container,
      h("h1", {}, "审核"),
      message,
      h(
        "section",
        { class: "card" },
        h("h2", {}, "审核记录"),
        filtersOf(params),
        log.entries.length
          ? table(["时间", "群", "成员", "规则", "消息", "处理", "判定"], log.entries.map((e) => entryRow(e, ctx, draw)), { "aria-label": "审核记录" })
          : notice("info", "没有符合条件的记录。"),
        log.next_cursor
          ? h("button", { type: "button", class: "secondary", onclick: () => (location.hash = "#/moderation" + query({ ...Object.fromEntries(params), cursor: log.next_cursor })) }, "更早的记录")
          : null,
      ),
      h("section", { class: "card" }, h("h2", {}, "黑名单"), black),
      h("section", { class: "card" }, h("h2", {}, "受信任的成员"), trusted),
    );
    if (ok || error) fill(message, notice(error ? "error" : "ok", error || ok));
  };
  await draw();
}
