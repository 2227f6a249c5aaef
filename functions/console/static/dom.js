// Building the page: elements with properties and children, where any string becomes a text node.
// Nothing here parses markup, so a value from Intercom or Referral Factory can only ever be text.

let counter = 0;

/** A new id, unique in the page: `prefix-N`. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

// Set as properties, after the children: a <select>'s value needs its options first.
const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "hidden", "open", "required", "multiple"]);

/**
 * `h("button", {type: "button", onclick: f}, "Save")`. Attributes are set as text; `on*` are listeners;
 * `class`, `text` and the boolean properties are handled as their names say.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  const late = [];
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (PROPERTIES.has(key)) late.push([key, value]);
    else if (value !== false) el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  for (const [key, value] of late) el[key] = value;
  return el;
}

/** Append children: nodes as they are, strings and numbers as text, null/false/undefined skipped. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace everything inside `parent` with `children`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A labelled control with a place for its error: `{wrap, control, error}`. */
export function field(label, control, { hint, inline = false } = {}) {
  if (!control.id) control.id = uid("f");
  const error = h("p", { class: "field-error", id: uid("err"), hidden: true });
  const hintEl = hint ? h("p", { class: "hint", id: uid("hint") }, hint) : null;
  const described = [hintEl?.id].filter(Boolean).join(" ");
  if (described) control.setAttribute("aria-describedby", described);
  const labelEl = h("label", { for: control.id }, label);
  const wrap = h("div", { class: inline ? "field inline" : "field" },
    inline ? [control, labelEl] : [labelEl, control], hintEl, error);
  return { wrap, control, error, hint: hintEl };
}

/** Show `message` as the error of a `field(...)`, or clear it with null. */
export function setFieldError(f, message) {
  f.error.textContent = message || "";
  f.error.hidden = !message;
  const ids = [f.hint?.id, message ? f.error.id : null].filter(Boolean).join(" ");
  if (ids) f.control.setAttribute("aria-describedby", ids);
  else f.control.removeAttribute("aria-describedby");
  if (message) f.control.setAttribute("aria-invalid", "true");
  else f.control.removeAttribute("aria-invalid");
}

/** A <select> of `[value, text]` pairs, `value` chosen. */
export function select(options, value, props = {}) {
  const el = h("select", props, options.map(([v, text]) => h("option", { value: v }, text)));
  if (value !== undefined && value !== null) el.value = String(value);
  return el;
}

/** A date-time as the person's locale writes it, or a dash. */
export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** A table of `columns` (header texts) and `rows` (arrays of cells), scrollable on a narrow screen. */
export function table(caption, columns, rows) {
  const t = h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows));
  return h("div", { class: "table-wrap", tabindex: "0", role: "group", "aria-label": caption || columns.join(", ") }, t);
}
