// DOM helpers. Pages are built from elements and text nodes only: no HTML
// strings anywhere (the CSP's Trusted Types rule would refuse them), so no
// value from the API can ever become markup.

/// `h("p", {class: "x"}, "text", child)`: an element. `on` maps events to
/// handlers; `null`/`false` children and attributes are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === "value") {
      el.value = value;
    } else if (name === "checked") {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/// Replaces `el`'s children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
const uid = (name) => `f-${name}-${++ids}`;

/// A labelled input with a slot for its error. `name` is the API's field
/// name, so a problem's `errors[].field` finds it.
export function field(name, label, attrs = {}) {
  const id = uid(name);
  const error = h("p", { class: "error", id: `${id}-error` });
  const { hint, options, ...rest } = attrs;
  const common = { id, name, "aria-describedby": `${id}-error${hint ? ` ${id}-hint` : ""}`, ...rest };
  const input = options
    ? h("select", common, options.map(([value, text]) => h("option", { value }, text)))
    : h("input", { type: "text", ...common });
  if (options && rest.value !== undefined) input.value = rest.value;
  const wrap = h(
    "div",
    { class: "field", "data-field": name },
    h("label", { for: id }, label),
    input,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    error,
  );
  return wrap;
}

/// A form: fields, a submit button and a status line. `submit(values, form)`
/// may throw an ApiError; its field errors are shown next to their fields,
/// the rest in the status line. The button is disabled while it runs.
export function form(label, fields, submit, { submitText = "Save", className = "" } = {}) {
  const status = h("p", { class: "status", role: "status" });
  const button = h("button", { type: "submit" }, submitText);
  const el = h("form", { class: `form ${className}`, "aria-label": label, novalidate: true }, fields, h("div", { class: "actions" }, button), status);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(el);
    const values = {};
    for (const input of el.querySelectorAll("input, select, textarea")) {
      if (input.name) values[input.name] = input.type === "checkbox" ? input.checked : input.value.trim();
    }
    await busy(button, status, async () => {
      try {
        await submit(values, el);
      } catch (err) {
        showProblem(el, status, err);
      }
    });
  });
  return el;
}

export function clearErrors(el) {
  for (const slot of el.querySelectorAll(".error")) slot.textContent = "";
  for (const input of el.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const status = el.querySelector(".status");
  if (status) status.textContent = "";
}

/// Puts each of a problem's field errors under its field; what no field
/// claims goes to `status`.
export function showProblem(el, status, err) {
  const errors = err.errors || [];
  let unclaimed = [];
  let first = null;
  for (const e of errors) {
    const top = String(e.field).split(/[.[]/)[0];
    const wrap = el.querySelector(`[data-field="${CSS.escape(top)}"]`);
    if (!wrap) {
      unclaimed.push(`${e.field}: ${e.message}`);
      continue;
    }
    wrap.querySelector(".error").textContent = e.message;
    const input = wrap.querySelector("input, select, textarea");
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
  if (!errors.length || unclaimed.length) {
    status.textContent = [err.message, ...unclaimed].join(" — ");
    status.classList.add("bad");
  } else {
    status.textContent = "Please correct the fields marked above.";
    status.classList.add("bad");
  }
}

/// Runs `work` with `button` disabled and "Working…" in `status`.
export async function busy(button, status, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (status) {
    status.classList.remove("bad");
    status.textContent = "Working…";
  }
  try {
    await work();
    if (status && status.textContent === "Working…") status.textContent = "";
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/// A button that runs `work` and reports failures in a toast.
export function action(text, work, { className = "secondary", label } = {}) {
  const button = h("button", { type: "button", class: className, "aria-label": label || null }, text);
  button.addEventListener("click", () =>
    busy(button, null, async () => {
      try {
        await work();
      } catch (err) {
        toast(err.message, true);
      }
    }),
  );
  return button;
}

/// A table, or `empty` when there are no rows.
export function table(caption, columns, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      // Each cell carries its column's name: narrow screens show the rows
      // as cards, labelled from it by the style sheet.
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { "data-label": columns[i] || null }, c))))),
    ),
  );
}

/// Copies `text`; says so.
export function copyButton(text, label = "Copy") {
  return action(label, async () => {
    await navigator.clipboard.writeText(text);
    toast("Copied.");
  });
}

let toastTimer = null;
export function toast(message, bad = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.toggle("bad", bad);
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 4000);
}

/// Asks in a modal dialog (keyboard: Escape cancels); resolves to a boolean.
export function confirm(message, okText = "Delete") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = message;
  document.getElementById("confirm-ok").textContent = okText;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

/// A link inside the console.
export function link(hash, text) {
  return h("a", { href: `#/${hash}` }, text);
}

export function section(title, ...children) {
  return h("section", { class: "panel", "aria-label": title }, h("h2", {}, title), ...children);
}
