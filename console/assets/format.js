// How figures, times and the service's terms read in the console (Chinese, as operators speak).

const numberFormat = new Intl.NumberFormat("zh-CN");

export function number(n) {
  return n === null || n === undefined ? "—" : numberFormat.format(n);
}

/** A time as `2026-12-06 08:30` in the browser's time zone. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** How long ago: `3 小时前`. */
export function ago(iso) {
  if (!iso) return "从未";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (seconds < 60) return "刚刚";
  if (seconds < 3600) return Math.floor(seconds / 60) + " 分钟前";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " 小时前";
  return Math.floor(seconds / 86400) + " 天前";
}

export const STAGES = { new: "新群", steady: "稳定", declining: "衰退", dead: "沉寂" };
export const STATUSES = { adopted: "已接管", released: "已退出" };
export const CHANNELS = { "wecom-robot": "企业微信群机器人", "wecom-aibot": "企业微信智能机器人", "wecom-app": "企业微信客户群", onebot12: "机器人账号", "push-only": "仅推送" };
export const ROLES = { admin: "管理员", operator: "运营", viewer: "只读" };
export const SEND_STATES = {
  pending: "待发送",
  delivered: "已送达",
  failed: "失败",
  skipped: "已跳过",
  timed_out: "超时未确认",
  awaiting_confirmation: "待群主确认发送",
};

export function label(table, key) {
  return table[key] || key || "—";
}
