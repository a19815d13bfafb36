// 账号: the operators' accounts (admins only) — add one with a role and a password, set a new
// password, remove one. The same endpoints as `trumpet operator …` while the service runs.

import { api, segment } from "../api.js";
import { h, fill, field, select, table, notice } from "../dom.js";
import { time, label, ROLES } from "../format.js";

const ROLE_HELP = "只读：只能查看；运营：管理群组、推送、审核、红包测试；管理员：另可编辑话术和账号。";

function addForm(done) {
  const name = h("input", { name: "new-name", required: true, autocomplete: "off", placeholder: "字母、数字、-、_" });
  const role = select({ name: "new-role" }, Object.entries(ROLES), "operator");
  const password = h("input", { name: "new-password", type: "password", required: true, autocomplete: "new-password", minlength: 10 });
  const form = h(
    "form",
    { class: "filters", "aria-label": "添加账号" },
    field("用户名", name),
    field("角色", role),
    field("初始密码（至少 10 位）", password),
    h("button", { type: "submit" }, "添加账号"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/operators", { method: "POST", body: { name: name.value.trim(), role: role.value, password: password.value } });
      done(`已添加账号 ${name.value.trim()}。`);
    } catch (e) {
      done(null, "添加失败：" + e.message);
    }
  });
  return form;
}

function actions(account, ctx, done) {
  const setPassword = async () => {
    const password = prompt(`为 ${account.name} 设置新密码（至少 10 位）：`);
    if (!password) return;
    try {
      await api(`/operators/${segment(account.name)}/password`, { method: "PUT", body: { password } });
      done(`已为 ${account.name} 设置新密码，该账号需重新登录。`);
    } catch (e) {
      done(null, "设置失败：" + e.message);
    }
  };
  const remove = async () => {
    if (!confirm(`确定删除账号 ${account.name}？`)) return;
    try {
      await api(`/operators/${segment(account.name)}`, { method: "DELETE" });
      done(`已删除账号 ${account.name}。`);
    } catch (e) {
      done(null, "删除失败：" + e.message);
    }
  };
  return h(
    "span",
    { class: "bar-actions" },
    h("button", { type: "button", class: "secondary", onclick: setPassword }, "重设密码"),
    account.name === ctx.me.name ? null : h("button", { type: "button", class: "danger", onclick: remove }, "删除"),
  );
}

export async function render(container, ctx) {
  if (!ctx.isAdmin) {
    fill(container, h("h1", {}, "账号"), notice("error", "只有管理员可以管理账号。"));
    return;
  }
  const message = h("div", { role: "status" });
  const done = async (ok, error) => {
    if (error) return fill(message, notice("error", error));
    await draw();
    fill(message, notice("ok", ok));
  };
  const draw = async () => {
    const { operators } = await api("/operators");
    fill(
      container,
      h("h1", {}, "账号"),
      message,
      h("p", { class: "muted" }, ROLE_HELP),
      table(
        ["用户名", "角色", "创建于", "更新于", "操作"],
        operators.map((a) => [a.name, label(ROLES, a.role), time(a.created_at), time(a.updated_at), actions(a, ctx, done)]),
        { "aria-label": "账号列表" },
      ),
      h("h2", {}, "添加账号"),
      addForm(done),
    );
  };
  await draw();
}
