// Building the page with DOM APIs only: text goes in through textContent, never parsed as HTML,
// so whatever a task or a list holds is shown as text (the XSS test checks it).

let uid = 0;

/** h("button", {class: "x", type: "button", onclick: fn}, "text", child, ...) */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      element.className = value;
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key === "value" || key === "checked" || key === "selected") {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field with a slot for its error: {name, label, type, value, options, ...}.
 * options: [[value, text], ...] makes a <select>; type "textarea" a <textarea>.
 */
export function field({ name, label, type = "text", value = "", options, hint, ...attrs }) {
  const inputId = nextId(name);
  const errorId = `${inputId}-error`;
  const hintId = hint ? `${inputId}-hint` : null;
  const described = [hintId, errorId].filter(Boolean).join(" ");
  let control;
  if (options) {
    control = h(
      "select",
      { id: inputId, name, "aria-describedby": described, ...attrs },
      options.map(([optionValue, text]) =>
        h("option", { value: optionValue, selected: String(optionValue) === String(value) }, text),
      ),
    );
  } else if (type === "textarea") {
    control = h("textarea", { id: inputId, name, "aria-describedby": described, ...attrs });
    control.value = value;
  } else if (type === "checkbox") {
    control = h("input", { id: inputId, name, type, checked: Boolean(value), "aria-describedby": described, ...attrs });
    return h(
      "div",
      { class: "field field-check" },
      control,
      h("label", { for: inputId }, label),
      hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
      h("p", { id: errorId, class: "field-error", dataset: { errorFor: name } }),
    );
  } else {
    control = h("input", { id: inputId, name, type, "aria-describedby": described, ...attrs });
    control.value = value;
  }
  return h(
    "div",
    { class: "field" },
    h("label", { for: inputId }, label),
    control,
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    h("p", { id: errorId, class: "field-error", dataset: { errorFor: name } }),
  );
}

/** The form's message area (role=alert: read out as soon as it changes). */
export function alertBox() {
  return h("div", { class: "alert", role: "alert", hidden: true });
}

/** Clear a form's errors (field messages and its alert). */
export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  const box = form.querySelector(".alert");
  if (box) {
    box.textContent = "";
    box.hidden = true;
  }
}

/** Show an error: each field's message next to its field, the sentence in the alert. */
export function showError(form, error) {
  clearErrors(form);
  let firstInvalid = null;
  for (const [name, message] of Object.entries(error.fields || {})) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    const control = form.elements.namedItem(name);
    if (slot && control) {
      slot.textContent = message;
      control.setAttribute("aria-invalid", "true");
      firstInvalid = firstInvalid || control;
    }
  }
  const box = form.querySelector(".alert");
  if (box) {
    box.textContent = error.message || String(error);
    box.hidden = false;
  }
  if (firstInvalid) firstInvalid.focus();
}

/** Run `work` with the form's submit buttons disabled; errors are shown on the form. */
export async function submitting(form, work) {
  const buttons = [...form.querySelectorAll("button")];
  for (const button of buttons) button.disabled = true;
  form.setAttribute("aria-busy", "true");
  clearErrors(form);
  try {
    return await work();
  } catch (error) {
    if (form.isConnected) showError(form, error);
    return undefined;
  } finally {
    form.removeAttribute("aria-busy");
    for (const button of buttons) button.disabled = false;
  }
}

/** A polite status line for the whole app (saved, deleted, ...). */
export function announce(message) {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = "";
  // A fresh text node makes screen readers read it even when the text is the same.
  setTimeout(() => {
    region.textContent = message;
  }, 30);
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

export function formatDate(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "";
}

/** RFC 3339 (UTC) from a datetime-local value, which is the person's local time. */
export function toApiTime(localValue) {
  if (!localValue) return null;
  return new Date(localValue).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A datetime-local value (local time, minutes) for an RFC 3339 instant. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
