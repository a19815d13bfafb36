// 概览: the figures of all groups at a glance and what needs attention, from GET /api/v1/overview.

import { api, segment } from "../api.js";
import { h, fill, notice } from "../dom.js";
import { bars } from "../chart.js";
import { number, time, STAGES } from "../format.js";

/** The alert kinds as operators read them. */
const ALERTS = {
  dead_group: "沉寂的群",
  declining_group: "衰退的群",
  released_by_wecom: "被企业微信移出的群（93000）",
  failing_feed: "抓取失败的订阅源",
  failed_send: "发送失败（24 小时内）",
  timed_out_send: "发送超时未确认（24 小时内）",
  stuck_outbox: "发送队列停滞",
};

function figure(name, value, { bad = false, testid } = {}) {
  return h(
    "div",
    { class: bad ? "figure bad" : "figure", "data-figure": testid },
    h("div", { class: "value" }, number(value)),
    h("div", { class: "name" }, name),
  );
}

function alertList(alerts) {
  const raised = alerts.filter((a) => a.count > 0);
  if (raised.length === 0) return notice("ok", "一切正常：没有需要处理的事项。");
  return h(
    "ul",
    { class: "alerts" },
    raised.map((alert) =>
      h(
        "li",
        { "data-alert": alert.kind },
        h("strong", {}, `${ALERTS[alert.kind] || alert.kind}：${number(alert.count)}`),
        h(
          "ul",
          {},
          alert.items.map((item) =>
            h(
              "li",
              {},
              item.chat_id
                ? h("a", { href: "#/groups/" + segment(item.chat_id) }, item.name || item.chat_id)
                : item.name,
              " — ",
              item.detail,
              item.at ? h("span", { class: "muted" }, "（" + time(item.at) + "）") : null,
            ),
          ),
          alert.count > alert.items.length ? h("li", { class: "muted" }, `另有 ${alert.count - alert.items.length} 项`) : null,
        ),
      ),
    ),
  );
}

export async function render(container) {
  const o = await api("/overview");
  const sends = o.sends_24h;
  const sent = sends.delivered + sends.failed + sends.timed_out + sends.skipped + sends.pending;
  const days = o.messages_by_day.map((d) => [d.day.slice(5), d.messages]);
  const stages = [
    [STAGES.new, o.stages.new],
    [STAGES.steady, o.stages.steady],
    [STAGES.declining, o.stages.declining],
    [STAGES.dead, o.stages.dead],
    ["仅推送", o.stages.unmeasured],
  ];
  fill(
    container,
    h("h1", {}, "概览"),
    h(
      "section",
      { class: "figures", "aria-label": "主要数字" },
      figure("已接管的群", o.groups.adopted, { testid: "adopted" }),
      figure("群成员", o.members, { testid: "members" }),
      figure("今日消息", o.messages_today, { testid: "messages_today" }),
      figure("24 小时发送", sent, { testid: "sends" }),
      figure("发送失败", sends.failed + sends.timed_out, { bad: sends.failed + sends.timed_out > 0, testid: "send_failures" }),
      figure("待发送", o.pending.count, { testid: "pending" }),
    ),
    h(
      "div",
      { class: "panels" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "近 30 天消息"),
        bars(days, { title: "近 30 天每天的消息数", every: 5, unit: " 条" }),
        h("p", { class: "muted" }, `30 天合计 ${number(days.reduce((s, [, v]) => s + v, 0))} 条`),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "群健康阶段"),
        bars(stages, { title: "各健康阶段的群数", unit: " 个群" }),
        h("p", { class: "muted" }, stages.map(([name, n]) => `${name} ${number(n)}`).join(" · ")),
      ),
    ),
    h(
      "section",
      { class: "card", style: null },
      h("h2", {}, "需要关注"),
      alertList(o.alerts),
      h("p", { class: "muted" }, `健康数据计算于 ${time(o.health_computed_at)}；页面生成于 ${time(o.generated_at)}。`),
    ),
  );
}
