// Building the page without HTML strings: every value is set as text or as an attribute, so a
// group name or a message can never become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function put(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: `h("a", {href: "#/"}, "概览")`. */
export function h(tag, attrs, ...children) {
  return put(document.createElement(tag), attrs, children);
}

/** An SVG element, for charts. */
export function svg(tag, attrs, ...children) {
  return put(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces what `el` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control: the label's `for` names the control. */
export function field(label, control) {
  if (!control.id) control.id = "f-" + Math.random().toString(36).slice(2, 9);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

/**
 * A search form of `[label, control]` pairs (each control has a `name`) and a 筛选 button; on
 * submit `go` gets every control's trimmed value by its name.
 */
export function filterForm(label, fields, go) {
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": label },
    fields.map(([text, control]) => field(text, control)),
    h("button", { type: "submit" }, "筛选"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(Object.fromEntries(fields.map(([, control]) => [control.name, control.value.trim()])));
  });
  return form;
}

/** A `<select>` of `[value, text]` pairs with `selected` chosen. */
export function select(attrs, options, selected) {
  return h(
    "select",
    attrs,
    options.map(([value, text]) =>
      h("option", { value, selected: String(value) === String(selected ?? "") }, text),
    ),
  );
}

/** A table with a header row; `rows` are arrays of cells (nodes or text). */
export function table(headers, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.map((cells) => (cells instanceof Node ? cells : h("tr", {}, cells.map((c) => h("td", {}, c)))))),
    ),
  );
}

/** A message in the page: `kind` is "error", "ok" or "info". */
export function notice(kind, text) {
  return h("p", { class: "notice " + kind, role: kind === "error" ? "alert" : "status" }, text);
}
