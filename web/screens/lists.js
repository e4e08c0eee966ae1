// The person's lists (owned and shared with them), and creating one.
import * as api from "../api.js";
import { alertBox, announce, field, h, submitting } from "../dom.js";

const ROLE_NAMES = { owner: "Owner", editor: "Editor", viewer: "Viewer" };

export async function render(view, _params, { session, navigate, stale }) {
  const lists = await session.loadLists(true);
  if (stale()) return;
  view.append(h("h1", {}, "Lists"));
  if (lists === null) {
    view.append(h("p", { class: "notice" }, "This Taskline server does not offer shared lists yet."));
    return;
  }
  const form = h(
    "form",
    { class: "card inline-form", novalidate: true, "aria-label": "New list" },
    alertBox(),
    field({ name: "name", label: "New list name", required: true, maxlength: 200 }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create list")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, async () => {
      const created = await api.createList(form.elements.name.value);
      session.invalidateLists();
      announce(`List “${created.name}” created.`);
      navigate(`/lists/${created.id}`);
    });
  });
  const items = lists.map((list) =>
    h(
      "li",
      { class: "list-item", dataset: { listId: list.id } },
      h("a", { href: `#/lists/${list.id}` }, list.name),
      h(
        "span",
        { class: "meta" },
        `${ROLE_NAMES[list.role] || list.role} · ${list.member_count} member${list.member_count === 1 ? "" : "s"}`,
        list.role === "owner" ? "" : ` · owned by ${list.owner.email}`,
      ),
    ),
  );
  view.append(
    form,
    h("h2", { id: "your-lists" }, "Your lists"),
    items.length
      ? h("ul", { class: "lists", "aria-labelledby": "your-lists" }, items)
      : h("p", {}, "You have no lists yet. Create one to share tasks with other people."),
  );
}
