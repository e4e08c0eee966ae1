// The account: who is signed in, sign out (here or everywhere), password, deletion.
import * as api from "../api.js";
import { alertBox, announce, field, formatDate, h, showError, submitting } from "../dom.js";

export function render(view, _params, { session }) {
  const me = session.me;
  view.append(
    h("h1", {}, "Account"),
    h("p", {}, `Signed in as ${me.email}, member since ${formatDate(me.created_at)}.`),
  );
  if (me.email_verified === true) view.append(h("p", { class: "meta" }, "Your email address is confirmed."));

  const signOut = h("form", { class: "card", novalidate: true, "aria-labelledby": "signout-title" },
    h("h2", { id: "signout-title" }, "Sign out"),
    alertBox(),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Sign out"),
      h("button", { type: "button", class: "secondary", name: "everywhere" }, "Sign out everywhere")),
    h("p", { class: "hint" }, "Signing out everywhere ends every session of your account, on every device."));
  signOut.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(signOut, () => api.signOut());
  });
  signOut.elements.everywhere.addEventListener("click", () => submitting(signOut, () => api.signOutEverywhere()));

  const password = h("form", { class: "card", novalidate: true, "aria-labelledby": "password-title" },
    h("h2", { id: "password-title" }, "Change password"),
    alertBox(),
    field({ name: "current_password", label: "Current password", type: "password", autocomplete: "current-password", required: true }),
    field({ name: "new_password", label: "New password", type: "password", autocomplete: "new-password", required: true, hint: "At least 8 characters. Your other devices will be signed out." }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Change password")));
  password.addEventListener("submit", (event) => {
    event.preventDefault();
    const current = password.elements.current_password.value;
    const next = password.elements.new_password.value;
    if (next.length < 8) {
      showError(password, { message: "Please choose a longer password.", fields: { new_password: "Use at least 8 characters." } });
      return;
    }
    submitting(password, async () => {
      try {
        await api.changePassword(current, next);
      } catch (error) {
        if (error.status === 403) {
          error.fields = { current_password: "This is not your current password." };
          error.message = "Your current password is not right.";
        }
        throw error;
      }
      password.reset();
      announce("Password changed.");
      const box = password.querySelector(".alert");
      box.textContent = "Password changed. Your other devices are signed out.";
      box.hidden = false;
    });
  });

  const remove = h("form", { class: "card danger-zone", novalidate: true, "aria-labelledby": "delete-title" },
    h("h2", { id: "delete-title" }, "Delete account"),
    h("p", {}, "This deletes your account, your personal tasks and your sessions. Lists you own go to their longest-standing member."),
    alertBox(),
    field({ name: "password", label: "Your password, to confirm", type: "password", autocomplete: "current-password", required: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "danger" }, "Delete my account")));
  remove.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(remove, async () => {
      try {
        await api.deleteAccount(remove.elements.password.value);
      } catch (error) {
        if (error.status === 403) {
          error.fields = { password: "This is not your password." };
          error.message = "That password is not right; your account was not deleted.";
        }
        throw error;
      }
    });
  });

  view.append(signOut, password, remove);
}
