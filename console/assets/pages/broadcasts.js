// 推送: the scheduled jobs with their next fire times; a preview of exactly what each group would
// get (and which are skipped, and why); a run now with live progress; the run history, each run's
// per-group receipts, and a resend of its failed and skipped groups; and, for WeCom customer
// groups, the mass-send tasks still waiting for their owners (who is lagging). All through the
// jobs, runs and mass-tasks endpoints of the admin API — the same ones `trumpet broadcast` uses.

import { api, query, segment, ApiError } from "../api.js";
import { h, fill, field, select, table, notice } from "../dom.js";
import { number, time, label, SEND_STATES } from "../format.js";

const TRIGGERS = { schedule: "定时", catch_up: "补发", missed: "错过", manual: "手动" };
/** Groups listed under each distinct message of a preview. */
const PREVIEW_GROUPS = 10;

/** What a message says, as text (a preview shows it as the group would read it). */
function messageText(message) {
  if (!message) return "";
  switch (message.msgtype) {
    case "text":
    case "markdown":
      return message.content;
    case "news":
      return message.articles.map((a) => `${a.title}\n${a.description}`).join("\n\n");
    case "image":
      return "（图片）";
    default:
      return JSON.stringify(message);
  }
}

function preview(result) {
  const byMessage = new Map();
  const skipped = new Map();
  for (const target of result.targets) {
    if (target.skip) {
      if (!skipped.has(target.skip)) skipped.set(target.skip, []);
      skipped.get(target.skip).push(target.group);
      continue;
    }
    const text = messageText(target.message);
    if (!byMessage.has(text)) byMessage.set(text, []);
    byMessage.get(text).push(target.group);
  }
  const groupList = (groups) =>
    h(
      "p",
      { class: "muted" },
      groups.slice(0, PREVIEW_GROUPS).join("、"),
      groups.length > PREVIEW_GROUPS ? ` 等 ${number(groups.length)} 个群` : "",
    );
  return h(
    "div",
    { "data-preview": result.job },
    h("h3", {}, `预览：${result.job}（共 ${number(result.planned)} 个群）`),
    result.refused ? notice("error", "现在发送会被拒绝：" + result.refused) : null,
    [...byMessage].map(([text, groups]) =>
      h("div", { class: "card" }, h("strong", {}, `${number(groups.length)} 个群将收到：`), h("pre", { class: "json" }, text), groupList(groups)),
    ),
    skipped.size
      ? h(
          "div",
          { class: "card" },
          h("strong", {}, "将跳过："),
          [...skipped].map(([reason, groups]) => h("div", {}, h("span", {}, `${reason}（${number(groups.length)} 个群）`), groupList(groups))),
        )
      : null,
  );
}

/** Polls a run until nothing of it is pending, drawing its progress into `box`. */
async function follow(runId, box) {
  for (;;) {
    const run = await api(`/runs/${segment(runId)}?limit=1`);
    const finished = run.planned - run.pending;
    fill(
      box,
      h("p", {}, `${run.run_id}：已完成 ${number(finished)} / ${number(run.planned)}`),
      h("progress", { max: Math.max(1, run.planned), value: finished, "aria-label": "发送进度" }),
      h("p", { class: "muted" }, `送达 ${run.delivered} · 失败 ${run.failed} · 超时 ${run.timed_out} · 跳过 ${run.skipped} · 待发送 ${run.pending}`),
      run.state === "done" ? h("a", { href: "#/broadcasts?run=" + encodeURIComponent(run.run_id) }, "查看回执") : null,
    );
    if (run.state === "done" || !box.isConnected) return run;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function jobsTable(jobs, ctx, out) {
  const act = async (job, mode, override = false) => {
    fill(out, h("p", { class: "muted", role: "status" }, "处理中…"));
    try {
      if (mode === "preview") {
        fill(out, preview(await api(`/jobs/${segment(job.name)}/run?dry_run=true`, { method: "POST" })));
        return;
      }
      if (!override && !confirm(`立即向「${job.name}」的所有目标群发送？`)) return fill(out);
      const started = await api(`/jobs/${segment(job.name)}/run` + query({ override_quiet_hours: override ? "true" : "" }), { method: "POST" });
      const box = h("div", { role: "status", "data-run": started.run_id });
      fill(out, notice("ok", `已安排 ${started.queued} 条发送。`), box);
      await follow(started.run_id, box);
    } catch (e) {
      const quiet = e instanceof ApiError && e.status === 409 && /quiet/.test(e.message);
      fill(
        out,
        notice("error", quiet ? "现在是该任务的免打扰时段，没有安排任何发送。" : "操作失败：" + e.message),
        quiet ? h("p", { class: "muted" }, e.message) : null,
        quiet && ctx.canChange ? h("button", { type: "button", class: "danger", onclick: () => act(job, "run", true) }, "仍然发送（忽略免打扰时段）") : null,
      );
    }
  };
  return table(
    ["任务", "时间表", "目标", "接下来", "状态", "操作"],
    jobs.map((job) => [
      h("strong", {}, job.name),
      `${job.cron}（${job.timezone}）`,
      job.targets.join("、"),
      job.next.map((t) => h("div", {}, time(t))),
      job.enabled ? "启用" : "停用",
      h(
        "span",
        { class: "bar-actions" },
        h("button", { type: "button", class: "secondary", onclick: () => act(job, "preview") }, "预览"),
        ctx.canChange ? h("button", { type: "button", onclick: () => act(job, "run") }, "立即发送") : null,
      ),
    ]),
    { "aria-label": "计划任务" },
  );
}

async function history() {
  const { runs } = await api("/runs?limit=20");
  if (runs.length === 0) return h("p", { class: "muted" }, "还没有发送记录。");
  const counts = await Promise.all(runs.map((r) => api(`/runs/${segment(r.run_id)}?limit=1`).catch(() => null)));
  return table(
    ["批次", "触发", "计划于", "送达", "失败", "超时", "跳过", "待发送"],
    runs.map((r, i) => {
      const c = counts[i] || {};
      return [
        h("a", { href: "#/broadcasts?run=" + encodeURIComponent(r.run_id) }, r.run_id),
        label(TRIGGERS, r.trigger),
        time(r.planned_at),
        number(c.delivered),
        number(c.failed),
        number(c.timed_out),
        number(c.skipped),
        number(c.pending),
      ];
    }),
    { "aria-label": "发送记录" },
  );
}

async function runDetail(container, ctx, runId) {
  const state = ctx.params.get("state") || "";
  const run = await api(`/runs/${segment(runId)}` + query({ state, limit: 500 }));
  const message = h("div", { role: "status" });
  const filter = select({ name: "state" }, [["", "全部"], ...Object.entries(SEND_STATES)], state);
  filter.addEventListener("change", () => {
    location.hash = "#/broadcasts" + query({ run: runId, state: filter.value });
  });
  const resend = async () => {
    if (!confirm("向失败、跳过和超时的群重新发送这一批？")) return;
    try {
      const again = await api(`/runs/${segment(runId)}/resend`, { method: "POST" });
      fill(message, notice("ok", `已重新安排 ${again.queued} 个群。`));
    } catch (e) {
      fill(message, notice("error", "重发失败：" + e.message));
    }
  };
  fill(
    container,
    h("p", {}, h("a", { href: "#/broadcasts" }, "← 推送")),
    h("h1", {}, `批次 ${run.run_id}`),
    message,
    h(
      "dl",
      { class: "kv card" },
      h("dt", {}, "任务"),
      h("dd", {}, run.job),
      h("dt", {}, "时段"),
      h("dd", {}, time(run.slot)),
      h("dt", {}, "触发"),
      h("dd", {}, label(TRIGGERS, run.trigger)),
      h("dt", {}, "结果"),
      h(
        "dd",
        { "data-run-counts": "" },
        `计划 ${run.planned} · 送达 ${run.delivered} · 失败 ${run.failed} · 超时 ${run.timed_out} · 跳过 ${run.skipped} · 待发送 ${run.pending}` +
          // Customer groups: sent only once each owner taps 发送 in WeCom.
          (run.awaiting_confirmation ? ` · 待群主确认 ${run.awaiting_confirmation}` : ""),
      ),
    ),
    ctx.canChange && run.failed + run.skipped + run.timed_out > 0
      ? h("button", { type: "button", onclick: resend }, "重发失败和跳过的群")
      : null,
    h("div", { class: "filters" }, field("只看", filter)),
    table(
      ["群", "状态", "尝试", "原因", "计划于"],
      run.receipts.map((r) => [
        r.group ? h("a", { href: "#/groups/" + segment(r.group) }, r.group) : "—",
        label(SEND_STATES, r.state),
        String(r.attempts),
        r.last_error || "",
        time(r.created_at),
      ]),
      { "aria-label": "回执" },
    ),
    run.receipts_next ? h("p", { class: "muted" }, "只显示前 500 条回执。") : null,
  );
}

/** Customer groups' mass-send tasks their owners have not sent yet, longest waiting first;
 * nothing when there are none (no customer groups, or every owner has sent). */
async function lagging() {
  const { tasks } = await api("/mass-tasks?open=true");
  if (tasks.length === 0) return null;
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "待群主确认的群发"),
    h("p", { class: "muted" }, "客户群的推送要群主在企业微信里点「发送」才会发出；超过设定时间未发送会自动提醒。"),
    table(
      ["群主", "群数", "待确认", "已等待", "提醒", "批次"],
      tasks.map((t) => [
        t.owner_name ? `${t.owner_name}（${t.owner}）` : t.owner,
        number(t.groups),
        number((t.sends || {}).awaiting_confirmation || 0),
        t.waiting_minutes == null ? "—" : `${number(t.waiting_minutes)} 分钟`,
        `${t.reminders.length} 次`,
        t.run ? h("a", { href: "#/broadcasts?run=" + encodeURIComponent(t.run) }, t.run) : "—",
      ]),
      { "aria-label": "待群主确认" },
    ),
  );
}

export async function render(container, ctx) {
  const runId = ctx.params.get("run");
  if (runId) return runDetail(container, ctx, runId);
  const jobs = await api("/jobs");
  const out = h("div", { "aria-live": "polite" });
  fill(
    container,
    h("h1", {}, "推送"),
    await lagging(),
    h("section", { class: "card" }, h("h2", {}, "计划任务"), jobsTable(jobs, ctx, out), out),
    h("section", { class: "card" }, h("h2", {}, "最近的批次"), await history()),
  );
}
