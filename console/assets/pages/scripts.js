// 话术: the bot-scripts files, viewed and edited in the browser. A save is checked like
// `trumpet check`: an invalid edit is refused with file:line:column, shown beside the line it
// points at, and nothing changes; a valid one is in force at once and kept in the history with
// who made it and the diff.

import { api, query, segment, ApiError } from "../api.js";
import { h, fill, table, notice } from "../dom.js";
import { time } from "../format.js";

const DESCRIPTIONS = {
  "messages.toml": "接管问候、帮助、兜底回复",
  "keywords.toml": "关键词自动回复",
  "commands.toml": "群内命令",
  "welcome.toml": "新人欢迎语",
  "moderation.toml": "审核规则",
  "red_envelope.toml": "红包测试",
  "health.toml": "群健康与周报",
  "schedules.toml": "定时推送",
  "content/calendar.toml": "日历与每日专栏",
  "content/queue.toml": "内容队列",
  "content/feeds.toml": "订阅源",
};

/** The refused edit's place in the text: the line, with a caret under the column. */
function errorBeside(name, text, error) {
  const lines = text.split("\n");
  const line = error.line > 0 ? lines[error.line - 1] : null;
  return h(
    "div",
    { class: "notice error", role: "alert", "data-script-error": `${error.line}:${error.column}` },
    h("strong", {}, `没有保存：${error.file.endsWith(name) ? name : error.file} 第 ${error.line} 行第 ${error.column} 列`),
    h("div", {}, error.reason),
    line === null
      ? null
      : h("pre", { class: "diff" }, `${error.line} | ${line}\n${" ".repeat(String(error.line).length)} | ${" ".repeat(Math.max(0, error.column - 1))}^`),
  );
}

/** Selects line `line` of the editor and scrolls to it. */
function jumpTo(editor, line) {
  const lines = editor.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
  const lineHeight = editor.scrollHeight / Math.max(1, lines.length);
  editor.scrollTop = Math.max(0, (line - 5) * lineHeight);
}

async function historyOf(name) {
  const { edits } = await api("/scripts/history" + query({ file: name, limit: 20 }));
  if (edits.length === 0) return h("p", { class: "muted" }, "这个文件还没有在控制台里改过（直接改文件的不在这里）。");
  return table(
    ["时间", "修改人", "变更", "差异"],
    edits.map((e) => [
      time(e.at),
      e.by.replace(/^operator:/, ""),
      `+${e.lines_added} −${e.lines_removed}`,
      h("details", {}, h("summary", {}, "查看"), h("pre", { class: "diff" }, e.diff)),
    ]),
    { "aria-label": "修改记录" },
  );
}

async function editor(container, ctx, name) {
  const [file, status] = await Promise.all([api("/scripts/files/" + name.split("/").map(segment).join("/")), api("/scripts/status")]);
  const text = h("textarea", {
    name: "script",
    class: "script",
    spellcheck: "false",
    rows: 28,
    readonly: !ctx.isAdmin,
    "aria-label": `${name} 的内容`,
  });
  text.value = file.content;
  let base = file.sha;
  const message = h("div", { role: "status" });
  const save = async () => {
    fill(message, h("p", { class: "muted" }, "检查中…"));
    try {
      const saved = await api("/scripts/files/" + name.split("/").map(segment).join("/"), {
        method: "PUT",
        body: { content: text.value, base_sha: base },
      });
      base = saved.sha;
      fill(message, notice("ok", `已保存并生效（第 ${saved.version} 版，+${saved.lines_added} −${saved.lines_removed} 行）。`));
      fill(history, await historyOf(name));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422 && e.body) {
        fill(message, errorBeside(name, text.value, e.body));
        if (e.body.line > 0) jumpTo(text, e.body.line);
        message.scrollIntoView({ block: "nearest" });
      } else if (e instanceof ApiError && e.status === 409) {
        fill(message, notice("error", "文件在你编辑期间被别人改过了：请复制你的修改，刷新页面后重新编辑。"));
      } else {
        fill(message, notice("error", "保存失败：" + e.message));
      }
    }
  };
  const history = h("div", {}, await historyOf(name));
  fill(
    container,
    h("p", {}, h("a", { href: "#/scripts" }, "← 话术")),
    h("h1", {}, `${name}（${DESCRIPTIONS[name] || ""}）`),
    h("p", { class: "muted" }, file.from_dir ? `来自 ${status.dir}` : "内置版本：保存后会写入话术目录，并从此以目录中的为准。", ` 当前生效：第 ${status.version} 版，${time(status.loaded_at)} 载入。`),
    status.error ? notice("error", `最近一次直接修改文件未生效：${status.error.file}:${status.error.line}:${status.error.column} ${status.error.reason}`) : null,
    text,
    message,
    ctx.isAdmin ? h("div", { class: "bar-actions" }, h("button", { type: "button", onclick: save }, "保存并生效")) : h("p", { class: "muted" }, "只有管理员可以修改话术。"),
    h("h2", {}, "修改记录"),
    history,
  );
}

export async function render(container, ctx) {
  const name = ctx.params.get("file");
  if (name) return editor(container, ctx, name);
  const [{ files }, status] = await Promise.all([api("/scripts/files"), api("/scripts/status")]);
  fill(
    container,
    h("h1", {}, "话术"),
    h("p", { class: "muted" }, `话术目录：${status.dir}；当前第 ${status.version} 版，${time(status.loaded_at)} 载入。改动保存前会按 trumpet check 的规则检查，有错不会生效。`),
    status.error ? notice("error", `最近一次直接修改文件未生效：${status.error.file}:${status.error.line}:${status.error.column} ${status.error.reason}`) : null,
    table(
      ["文件", "内容", "来源", "大小"],
      files.map((f) => [
        h("a", { href: "#/scripts?file=" + encodeURIComponent(f.name) }, f.name),
        DESCRIPTIONS[f.name] || "",
        f.from_dir ? "话术目录" : "内置",
        `${(f.bytes / 1024).toFixed(1)} KB`,
      ]),
      { "aria-label": "话术文件" },
    ),
  );
}
