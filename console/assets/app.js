// The console's frame: sign-in, the menu, and the router that draws a page for `#/path?query`.
// Pages are modules with `render(container, context)`; the context says who is signed in and
// what they may do, though the API checks every change again.

import { api, setCsrfToken, whenSignedOut, ApiError } from "./api.js";
import { h, fill, notice } from "./dom.js";
import { ROLES } from "./format.js";
import * as overview from "./pages/overview.js";
import * as groups from "./pages/groups.js";
import * as group from "./pages/group.js";
import * as broadcasts from "./pages/broadcasts.js";
import * as envelopes from "./pages/envelopes.js";
import * as moderation from "./pages/moderation.js";
import * as scripts from "./pages/scripts.js";
import * as accounts from "./pages/accounts.js";
import * as audit from "./pages/audit.js";

/** The pages: `path` as in `#/path`, the menu's text, and who sees it in the menu. */
const PAGES = [
  { path: "", title: "概览", page: overview },
  { path: "groups", title: "群组", page: groups },
  { path: "groups/", title: "群组详情", page: group, hidden: true },
  { path: "broadcasts", title: "推送", page: broadcasts },
  { path: "moderation", title: "审核", page: moderation },
  { path: "envelopes", title: "红包测试", page: envelopes },
  { path: "scripts", title: "话术", page: scripts },
  { path: "accounts", title: "账号", page: accounts, adminOnly: true },
  { path: "audit", title: "审计", page: audit },
];

const $ = (id) => document.getElementById(id);
let me = null;

function showSignIn(message) {
  me = null;
  setCsrfToken(null);
  $("shell").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("username").focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const session = await api("/session", {
      method: "POST",
      body: { username: form.username.value.trim(), password: form.password.value },
    });
    form.password.value = "";
    start(session);
  } catch (e) {
    const message =
      e instanceof ApiError && e.status === 401
        ? "用户名或密码错误。"
        : e instanceof ApiError && e.status === 429
          ? "失败次数过多，该账号已暂时锁定，请 15 分钟后再试。"
          : "登录失败：" + e.message;
    showSignIn(message);
    form.password.value = "";
    form.password.focus();
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try {
    await api("/session", { method: "DELETE" });
  } finally {
    location.hash = "#/";
    showSignIn("已退出登录。");
  }
}

/** The context a page draws with. */
function context() {
  return {
    me,
    canChange: me.role !== "viewer",
    isAdmin: me.role === "admin",
  };
}

function start(session) {
  me = session;
  setCsrfToken(session.csrf_token);
  $("sign-in").hidden = true;
  $("shell").hidden = false;
  fill($("who"), `${session.name}（${ROLES[session.role] || session.role}）`);
  route();
}

/** The page for the current `#/…`, and its query. */
function current() {
  const hash = decodeURI(location.hash.replace(/^#\/?/, ""));
  const [path, search = ""] = hash.split("?");
  const params = new URLSearchParams(search);
  const exact = PAGES.find((p) => p.path === path && !p.path.endsWith("/"));
  if (exact) return { entry: exact, params, rest: "" };
  const prefixed = PAGES.find((p) => p.path.endsWith("/") && path.startsWith(p.path));
  if (prefixed) return { entry: prefixed, params, rest: path.slice(prefixed.path.length) };
  return { entry: null, params, rest: path };
}

function drawMenu(active) {
  const ctx = context();
  fill(
    $("nav"),
    h(
      "ul",
      {},
      PAGES.filter((p) => !p.hidden && (!p.adminOnly || ctx.isAdmin)).map((p) =>
        h(
          "li",
          {},
          h(
            "a",
            {
              href: "#/" + p.path,
              "aria-current": active && (active.path === p.path || active.path === p.path + "/") ? "page" : false,
            },
            p.title,
          ),
        ),
      ),
    ),
  );
}

async function route() {
  if (!me) return;
  const { entry, params, rest } = current();
  drawMenu(entry);
  closeMenu();
  const content = $("content");
  if (!entry) {
    fill(content, h("h1", {}, "找不到页面"), h("p", {}, h("a", { href: "#/" }, "回到概览")));
    return;
  }
  document.title = `${entry.title} · 会计小喇叭`;
  fill(content, h("p", { class: "muted", role: "status" }, "加载中…"));
  try {
    await entry.page.render(content, { ...context(), params, id: decodeURIComponent(rest) });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    fill(content, h("h1", {}, entry.title), notice("error", "加载失败：" + e.message));
  }
}

function closeMenu() {
  $("nav").classList.remove("open");
  $("menu-toggle").setAttribute("aria-expanded", "false");
}

function toggleMenu() {
  const open = $("nav").classList.toggle("open");
  $("menu-toggle").setAttribute("aria-expanded", String(open));
}

async function boot() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("menu-toggle").addEventListener("click", toggleMenu);
  window.addEventListener("hashchange", route);
  whenSignedOut(() => showSignIn("登录已失效，请重新登录。"));
  try {
    start(await api("/session"));
  } catch (e) {
    showSignIn(e instanceof ApiError && e.status === 401 ? "" : "无法读取登录状态：" + e.message);
  }
}

boot();
