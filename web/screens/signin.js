// Sign in with email and password (the OAuth2 password grant).
import * as api from "../api.js";
import { alertBox, field, h, submitting } from "../dom.js";
import { navigate, signedInAs } from "../main.js";

export function render(view) {
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, "aria-labelledby": "signin-title" },
    alertBox(),
    field({ name: "email", label: "Email", type: "email", autocomplete: "username", required: true }),
    field({ name: "password", label: "Password", type: "password", autocomplete: "current-password", required: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      await api.signIn(form.elements.email.value.trim(), form.elements.password.value);
      await signedInAs();
      navigate("/tasks");
    });
  });
  view.append(
    h("h1", { id: "signin-title" }, "Sign in"),
    form,
    h("p", { class: "aside" }, "New to Taskline? ", h("a", { href: "#/signup" }, "Create an account")),
  );
}
