// Create an account, then sign in with it.
import * as api from "../api.js";
import { alertBox, field, h, showError, submitting } from "../dom.js";
import { navigate, setNotice, signedInAs } from "../main.js";

export function render(view) {
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, "aria-labelledby": "signup-title" },
    alertBox(),
    field({ name: "email", label: "Email", type: "email", autocomplete: "email", required: true }),
    field({
      name: "password",
      label: "Password",
      type: "password",
      autocomplete: "new-password",
      required: true,
      hint: "At least 8 characters.",
    }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create account")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    if (password.length < 8) {
      showError(form, {
        message: "Please choose a longer password.",
        fields: { password: "Use at least 8 characters." },
      });
      return;
    }
    submitting(form, async () => {
      await api.signUp(email, password);
      await api.signIn(email, password);
      await signedInAs();
      setNotice("Welcome to Taskline. Your account is ready.");
      navigate("/tasks");
    });
  });
  view.append(
    h("h1", { id: "signup-title" }, "Create your account"),
    form,
    h("p", { class: "aside" }, "Already have an account? ", h("a", { href: "#/signin" }, "Sign in")),
  );
}
