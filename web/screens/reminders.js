// Notification preferences and the calendar feed (issue, copy the webcal:// link, revoke).
import * as api from "../api.js";
import { alertBox, announce, field, formatDate, h, submitting } from "../dom.js";

export async function render(view, _params, { stale }) {
  const prefs = await api.preferences();
  if (stale()) return;
  view.append(h("h1", {}, "Reminders"));

  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "prefs-title" },
    h("h2", { id: "prefs-title" }, "Notifications"),
    alertBox(),
    field({ name: "email_enabled", label: "Email me reminders", type: "checkbox", value: prefs.email_enabled }),
    field({ name: "due_soon_enabled", label: "Remind me before a deadline", type: "checkbox", value: prefs.due_soon_enabled }),
    field({ name: "overdue_enabled", label: "Tell me when a task is overdue", type: "checkbox", value: prefs.overdue_enabled }),
    field({
      name: "due_soon_minutes",
      label: "Lead time (minutes before the deadline)",
      type: "number",
      min: 1,
      max: 10080,
      step: 1,
      inputmode: "numeric",
      value: prefs.due_soon_minutes,
      hint: "1 to 10080 (7 days). A task's own reminder overrides it.",
    }),
    prefs.email_deliverable === false
      ? h("p", { class: "notice" }, "Emails to your address bounced or were reported as spam. Saving with email on lets Taskline try again.")
      : null,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save preferences")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const minutes = form.elements.due_soon_minutes.value;
      await api.savePreferences({
        email_enabled: form.elements.email_enabled.checked,
        due_soon_enabled: form.elements.due_soon_enabled.checked,
        overdue_enabled: form.elements.overdue_enabled.checked,
        due_soon_minutes: /^\d+$/.test(minutes) ? Number(minutes) : minutes,
      });
      announce("Preferences saved.");
      const box = form.querySelector(".alert");
      box.textContent = "Preferences saved.";
      box.hidden = false;
    });
  });

  const feed = h("div", { class: "feed" });
  const calendar = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "calendar-title" },
    h("h2", { id: "calendar-title" }, "Calendar feed"),
    h("p", {}, "Subscribe to your open tasks from a calendar app. The link is secret: anyone with it can see your tasks' deadlines. "
      + "Taskline shows it once; issuing a new one stops the old one."),
    alertBox(),
    feed,
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Issue a calendar link"),
      h("button", { type: "button", class: "secondary", name: "revoke" }, "Revoke the calendar link")),
  );
  calendar.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(calendar, async () => {
      const issued = await api.issueCalendar();
      const input = h("input", { id: "webcal-url", type: "text", readonly: true, value: issued.webcal_url, class: "copy-field" });
      const copied = h("span", { role: "status", class: "copied" });
      feed.replaceChildren(
        h("label", { for: "webcal-url" }, `Your calendar link (issued ${formatDate(issued.created_at)})`),
        h("div", { class: "copy-row" }, input,
          h("button", { type: "button", onclick: async () => {
            input.select();
            try {
              await navigator.clipboard.writeText(issued.webcal_url);
              copied.textContent = "Copied.";
            } catch {
              copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
            }
          } }, "Copy link"), copied),
        h("p", {}, h("a", { href: issued.webcal_url }, "Open in your calendar app")),
      );
      announce("A new calendar link was issued.");
      input.focus();
      input.select();
    });
  });
  calendar.elements.revoke.addEventListener("click", () =>
    submitting(calendar, async () => {
      try {
        await api.revokeCalendar();
      } catch (error) {
        if (error.status === 404) throw new api.ApiError(404, "There is no calendar link to revoke.");
        throw error;
      }
      feed.replaceChildren(h("p", {}, "The calendar link was revoked: calendars using it stop updating."));
      announce("Calendar link revoked.");
    }),
  );

  view.append(form, calendar);
}
