// 红包测试: start a test in a group, watch the claims arrive, read the results and the verdict,
// download the payout ledger (CSV), cancel a running test. Through the red-envelope endpoints of
// the admin API.

import { api, query, segment } from "../api.js";
import { h, fill, field, select, table, notice } from "../dom.js";
import { number, time } from "../format.js";

const STATES = { running: "进行中", finished: "已结束", cancelled: "已取消" };
const VERDICTS = { alive: "活跃", sluggish: "迟缓", dead: "沉寂" };
/** How often a running test's claims are read again. */
const POLL_MS = 2000;

const yuan = (fen) => (fen / 100).toFixed(2);
const seconds = (s) => (s === null || s === undefined ? "—" : s < 60 ? `${s} 秒` : `${Math.round(s / 60)} 分钟`);

function startForm(ctx, done) {
  const search = h("input", { type: "search", name: "group-search", placeholder: "群名称或 ID" });
  const group = select({ name: "group", required: true }, [["", "先查找群"]], "");
  const total = h("input", { name: "total-yuan", type: "number", min: "0.01", step: "0.01", placeholder: "默认" });
  const shares = h("input", { name: "shares", type: "number", min: "1", max: "1000", placeholder: "默认" });
  const minutes = h("input", { name: "window-minutes", type: "number", min: "1", max: "1440", placeholder: "默认" });
  const find = async () => {
    const { groups } = await api("/groups" + query({ q: search.value.trim(), status: "adopted", limit: 20 }));
    fill(group, groups.length ? groups.map((g) => h("option", { value: g.chat_id }, `${g.name || g.chat_id}（${g.chat_id}）`)) : h("option", { value: "" }, "没有找到"));
  };
  const form = h(
    "form",
    { class: "filters", "aria-label": "发起红包测试" },
    field("查找群", search),
    h("button", { type: "button", class: "secondary", onclick: find }, "查找"),
    field("群", group),
    field("总金额（元）", total),
    field("份数", shares),
    field("时长（分钟）", minutes),
    h("button", { type: "submit" }, "发起测试"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!group.value) return done(null, "请先查找并选择一个群。");
    const body = {};
    if (total.value) body.total_fen = Math.round(Number(total.value) * 100);
    if (shares.value) body.shares = Number(shares.value);
    if (minutes.value) body.window_secs = Number(minutes.value) * 60;
    try {
      const test = await api(`/groups/${segment(group.value)}/red-envelope-tests`, { method: "POST", body });
      location.hash = "#/envelopes?id=" + encodeURIComponent(test.id);
    } catch (e) {
      done(null, "发起失败：" + e.message);
    }
  });
  return ctx.canChange ? form : h("p", { class: "muted" }, "只读账号不能发起测试。");
}

async function detail(container, ctx, id) {
  const message = h("div", { role: "status" });
  const draw = async () => {
    const test = await api(`/red-envelope-tests/${segment(id)}`);
    const r = test.results;
    const cancel = async () => {
      if (!confirm("取消这个红包测试？已领取的记录会保留。")) return;
      try {
        await api(`/red-envelope-tests/${segment(id)}/cancel`, { method: "POST" });
        await draw();
        fill(message, notice("ok", "测试已取消。"));
      } catch (e) {
        fill(message, notice("error", "取消失败：" + e.message));
      }
    };
    fill(
      container,
      h("p", {}, h("a", { href: "#/envelopes" }, "← 红包测试")),
      h("h1", {}, `红包测试 ${test.id}`),
      message,
      h(
        "dl",
        { class: "kv card" },
        h("dt", {}, "群"),
        h("dd", {}, h("a", { href: "#/groups/" + segment(test.chat_id) }, test.chat_id)),
        h("dt", {}, "口令"),
        h("dd", {}, test.claim_phrase),
        h("dt", {}, "金额"),
        h("dd", {}, `${yuan(test.total_fen)} 元 / ${test.shares} 份，已领 ${yuan(test.claimed_fen)} 元`),
        h("dt", {}, "时间"),
        h("dd", {}, `${time(test.started_at)} — ${time(test.ends_at)}`),
        h("dt", {}, "状态"),
        h("dd", { "data-test-state": test.state }, STATES[test.state] || test.state, test.posted_at ? `（${time(test.posted_at)} 发到群里）` : "（红包尚未发到群里）"),
        h("dt", {}, "结论"),
        h("dd", { "data-verdict": test.verdict || "" }, test.verdict ? VERDICTS[test.verdict] || test.verdict : "—"),
      ),
      r
        ? h(
            "section",
            { class: "card" },
            h("h2", {}, "结果"),
            h(
              "p",
              {},
              `第一份 ${seconds(r.first_claim_secs)}，领完一半 ${seconds(r.half_claimed_secs)}，全部领完 ${seconds(r.all_claimed_secs)}；` +
                `${r.claims} 人领取${r.claimer_ratio === null ? "" : `（占成员 ${(r.claimer_ratio * 100).toFixed(1)}%）`}，其中 ${r.silent_claimers} 人平时不发言。`,
            ),
          )
        : null,
      h(
        "div",
        { class: "bar-actions" },
        h("a", { class: "button", href: `/api/v1/red-envelope-tests/${segment(id)}/claims.csv`, download: `${id}.csv` }, "下载领取明细（CSV）"),
        ctx.canChange && test.state === "running" ? h("button", { type: "button", class: "danger", onclick: cancel }, "取消测试") : null,
      ),
      h("h2", {}, `领取记录（${test.claims.length}）`),
      test.claims.length
        ? table(
            ["份", "成员", "金额（元）", "时间", "方式", "平时发言"],
            test.claims.map((c) => [
              String(c.share + 1),
              c.name || c.user_id,
              yuan(c.amount_fen),
              time(c.at),
              c.via === "wechat_envelope" ? "微信红包" : "口令",
              c.spoke_before ? "是" : "否",
            ]),
            { "aria-label": "领取记录" },
          )
        : h("p", { class: "muted" }, "还没有人领取。"),
    );
    return test;
  };
  let test = await draw();
  while (test.state === "running" && container.isConnected && location.hash.includes(encodeURIComponent(id))) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!location.hash.includes(encodeURIComponent(id))) return;
    test = await draw();
  }
}

export async function render(container, ctx) {
  const id = ctx.params.get("id");
  if (id) return detail(container, ctx, id);
  const { tests } = await api("/red-envelope-tests?limit=50");
  const message = h("div", { role: "status" });
  const done = (ok, error) => fill(message, notice(error ? "error" : "ok", error || ok));
  fill(
    container,
    h("h1", {}, "红包测试"),
    message,
    h("section", { class: "card" }, h("h2", {}, "发起测试"), startForm(ctx, done), h("p", { class: "muted" }, "留空的项使用 red_envelope.toml 的默认值。群里有人发出口令即算领取；测试结束后给出结论：活跃、迟缓或沉寂。")),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "最近的测试"),
      tests.length
        ? table(
            ["开始", "群", "状态", "领取", "结论"],
            tests.map((t) => [
              h("a", { href: "#/envelopes?id=" + encodeURIComponent(t.id) }, time(t.started_at)),
              t.group_name || t.chat_id,
              STATES[t.state] || t.state,
              t.results ? `${t.results.claims} / ${t.shares}` : "—",
              t.results ? VERDICTS[t.results.verdict] || t.results.verdict : "—",
            ]),
            { "aria-label": "最近的测试" },
          )
        : h("p", { class: "muted" }, "还没有红包测试。"),
    ),
  );
}
