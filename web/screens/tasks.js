// Every task the person can see (personal and shared), filtered, ordered by deadline as the
// API orders them, one page at a time (the API's Link header), overdue and due-soon marked.
import * as api from "../api.js";
import { alertBox, field, formatDate, h, submitting, toApiTime, toLocalInput } from "../dom.js";

const DUE_SOON_MS = 24 * 60 * 60 * 1000;
const PAGE_SIZE = 20;
// The filters stay while the app is open (going to a task and back keeps them).
let filters = {};

export function urgency(task, now = Date.now()) {
  if (!task.deadline || task.status === "Done") return "";
  const due = Date.parse(task.deadline);
  if (due < now) return "overdue";
  if (due - now <= DUE_SOON_MS) return "due-soon";
  return "";
}

export function taskItem(task, { lists, me }) {
  const state = urgency(task);
  const list = task.list_id && lists ? lists.find((l) => l.id === task.list_id) : null;
  const meta = [
    h("span", { class: "category" }, task.category),
    h("span", { class: `status status-${task.status.replace(/\s+/g, "-").toLowerCase()}` }, task.status),
    list ? h("span", { class: "list-name" }, `List: ${list.name}`) : h("span", { class: "list-name" }, "Personal"),
  ];
  if (task.assignee_id != null && me) {
    meta.push(h("span", { class: "assignee" }, task.assignee_id === me.id ? "Assigned to you" : "Assigned"));
  }
  return h(
    "li",
    { class: `task ${state}`, dataset: { taskId: task.id } },
    h(
      "div",
      { class: "task-main" },
      h("a", { href: `#/tasks/${task.id}`, class: "task-link" }, task.description),
      h("div", { class: "meta" }, meta),
    ),
    h(
      "div",
      { class: "due" },
      state === "overdue" ? h("span", { class: "badge badge-overdue" }, "Overdue") : null,
      state === "due-soon" ? h("span", { class: "badge badge-soon" }, "Due soon") : null,
      h("time", { datetime: task.deadline }, formatDate(task.deadline)),
    ),
  );
}

function filterForm(lists, onApply) {
  const listOptions = [["", "All lists"], ["personal", "Personal"]];
  for (const list of lists || []) listOptions.push([String(list.id), list.name]);
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter tasks", novalidate: true },
    alertBox(),
    h(
      "div",
      { class: "filter-grid" },
      field({
        name: "status",
        label: "Status",
        value: filters.status || "",
        options: [["", "Any status"], ["To Do", "To Do"], ["In Progress", "In Progress"], ["Done", "Done"]],
      }),
      field({ name: "category", label: "Category", value: filters.category || "" }),
      lists
        ? field({ name: "list_id", label: "List", value: filters.list_id || "", options: listOptions })
        : null,
      lists
        ? field({
            name: "assignee",
            label: "Assignee",
            value: filters.assignee || "",
            options: [["", "Anyone"], ["me", "Me"], ["none", "Nobody"]],
          })
        : null,
      field({ name: "due_after", label: "Due from", type: "datetime-local", value: toLocalInput(filters.due_after) }),
      field({ name: "due_before", label: "Due before", type: "datetime-local", value: toLocalInput(filters.due_before) }),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            filters = {};
            onApply(true);
          },
        },
        "Clear filters",
      ),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = (name) => (form.elements.namedItem(name) ? form.elements.namedItem(name).value.trim() : "");
    filters = {
      status: value("status"),
      category: value("category"),
      list_id: value("list_id"),
      assignee: value("assignee"),
      due_after: toApiTime(value("due_after")),
      due_before: toApiTime(value("due_before")),
    };
    onApply(false, form);
  });
  return form;
}

export async function render(view, _params, { session, stale }) {
  const lists = await session.loadLists().catch(() => null);
  // The list and assignee filters, once tasks can be in lists on this API.
  const filterLists = lists && (await session.tasksHaveLists()) ? lists : null;
  if (stale()) return;
  const results = h("ul", { class: "task-list", "aria-labelledby": "tasks-title" });
  const summary = h("p", { class: "summary", role: "status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Show more tasks");
  let next = null;

  async function loadPage(first, form) {
    const filtersNow = { ...filters };
    const load = async () => {
      const page = await api.listTasks({ ...filtersNow, limit: PAGE_SIZE }, first ? null : next);
      if (stale()) return;
      if (first) results.replaceChildren();
      for (const task of page.items) results.append(taskItem(task, { lists, me: session.me }));
      next = page.next;
      more.hidden = !next;
      const shown = results.children.length;
      summary.textContent =
        shown === 0
          ? Object.values(filters).some(Boolean)
            ? "No tasks match these filters."
            : "No tasks yet. Create your first one."
          : `${shown} task${shown === 1 ? "" : "s"} shown${next ? ", more available" : ""}.`;
    };
    const errorsIn = form || view.querySelector("form.filters");
    await submitting(errorsIn, load);
    // The error is shown in the filters' form: open the panel so it can be seen.
    const panel = view.querySelector("details.filter-panel");
    if (panel && !errorsIn.querySelector(".alert").hidden) panel.open = true;
  }

  // The clear button rebuilds the form empty; keep one handler for both.
  function onApply(cleared, form) {
    if (cleared) {
      const fresh = filterForm(filterLists, onApply);
      view.querySelector("form.filters").replaceWith(fresh);
      fresh.elements.status.focus();
    }
    loadPage(true, form || view.querySelector("form.filters"));
  }
  const filterPanel = filterForm(filterLists, onApply);

  more.addEventListener("click", async () => {
    more.disabled = true;
    const before = results.children.length;
    try {
      await loadPage(false);
    } finally {
      more.disabled = false;
    }
    // Keyboard users continue from the first new task.
    const firstNew = results.children[before];
    if (firstNew) firstNew.querySelector("a").focus();
  });

  view.append(
    h(
      "div",
      { class: "screen-head" },
      h("h1", { id: "tasks-title" }, "Tasks"),
      h("a", { href: "#/tasks/new", class: "button primary" }, "New task"),
    ),
    h("details", { class: "filter-panel", open: Object.values(filters).some(Boolean) },
      h("summary", {}, "Filters"), filterPanel),
    summary,
    results,
    more,
  );
  await loadPage(true, filterPanel);
}

/** Open the task list filtered to one list (from a list's screen). */
export function filterByList(listId) {
  filters = { list_id: String(listId) };
}
