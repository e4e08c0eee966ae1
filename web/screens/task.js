// Create a task, or see, edit and delete one.
// Create: one Idempotency-Key per creation, reused when the person retries after a network
// failure, so a retry never makes a second task. Edit: If-Match with the ETag the form was
// filled from; a 412 shows the newer version and lets the person keep theirs or take it.
import * as api from "../api.js";
import { alertBox, announce, field, formatDate, h, showError, submitting, toApiTime, toLocalInput } from "../dom.js";
import { urgency } from "./tasks.js";

const STATUSES = [["To Do", "To Do"], ["In Progress", "In Progress"], ["Done", "Done"]];
const EDITABLE = ["description", "category", "deadline", "status", "remind_before", "list_id", "assignee_id"];

function writableLists(lists) {
  return (lists || []).filter((list) => list.role === "owner" || list.role === "editor");
}

/** Members who can be assigned a task of `listId` (null: a personal task, only its owner). */
async function assignees(listId, me) {
  if (!listId) return [[String(me.id), `Me (${me.email})`]];
  const people = await api.members(listId);
  return people.map((m) => [String(m.user_id), m.user_id === me.id ? `Me (${m.email})` : m.email]);
}

function readValues(form, sharing) {
  const value = (name) => form.elements.namedItem(name).value;
  const values = {
    description: value("description").trim(),
    category: value("category").trim(),
    deadline: toApiTime(value("deadline")),
    status: value("status"),
    remind_before: value("remind_before") === "" ? null : Number(value("remind_before")),
  };
  if (sharing) {
    values.list_id = value("list_id") === "" ? null : Number(value("list_id"));
    values.assignee_id = value("assignee_id") === "" ? null : Number(value("assignee_id"));
  }
  return values;
}

/** Fields in `mine` that differ from `task` (what a PATCH needs to send). */
function changes(mine, task) {
  const changed = {};
  for (const name of EDITABLE) {
    if (!(name in mine)) continue;
    const theirs = task[name] ?? null;
    const same =
      // The form edits deadlines to the minute: seconds the API holds are not a change.
      name === "deadline"
        ? Math.floor(Date.parse(mine[name]) / 60000) === Math.floor(Date.parse(theirs) / 60000)
        : mine[name] === theirs;
    if (!same) changed[name] = mine[name];
  }
  return changed;
}

function describe(name, value, lists) {
  if (value === null || value === undefined || value === "") {
    if (name === "remind_before") return "Account default";
    if (name === "list_id") return "Personal";
    if (name === "assignee_id") return "Nobody";
    return "(empty)";
  }
  if (name === "deadline") return formatDate(value);
  if (name === "remind_before") return `${value} minutes before`;
  if (name === "list_id") {
    const list = (lists || []).find((l) => l.id === value);
    return list ? list.name : `List ${value}`;
  }
  return String(value);
}

const LABELS = {
  description: "Description",
  category: "Category",
  deadline: "Deadline",
  status: "Status",
  remind_before: "Reminder",
  list_id: "List",
  assignee_id: "Assignee",
};

function readOnlyView(task, lists) {
  return h(
    "dl",
    { class: "card details" },
    ["description", "category", "deadline", "status", "remind_before", "list_id"].map((name) => [
      h("dt", {}, LABELS[name]),
      h("dd", {}, describe(name, task[name], lists)),
    ]),
  );
}

export async function render(view, params, { session, navigate, stale }) {
  const me = session.me;
  const lists = await session.loadLists().catch(() => null);
  const sharing = lists !== null && lists !== undefined && (await session.tasksHaveLists());
  const taskId = params[0] || null;
  let task = null;
  let etag = null;
  if (taskId) {
    ({ task, etag } = await api.getTask(taskId));
  }
  if (stale()) return;

  const list = task && task.list_id && sharing ? lists.find((l) => l.id === task.list_id) : null;
  const canWrite = !task || !list || list.role !== "viewer";
  const heading = taskId ? (canWrite ? "Edit task" : "Task") : "New task";
  view.append(h("div", { class: "screen-head" }, h("h1", {}, heading), h("a", { href: "#/tasks" }, "Back to tasks")));

  if (task) {
    const state = urgency(task);
    if (state) {
      view.append(h("p", { class: `badge badge-${state === "overdue" ? "overdue" : "soon"}` },
        state === "overdue" ? "Overdue" : "Due soon"));
    }
  }
  if (!canWrite) {
    view.append(
      h("p", { class: "notice" }, `You are a viewer of the list “${list.name}”: you can see this task but not change it.`),
      readOnlyView(task, lists),
    );
    return;
  }

  const listChoices = [["", "Personal"]];
  for (const l of writableLists(lists)) listChoices.push([String(l.id), l.name]);
  const current = task || { status: "To Do", list_id: null, assignee_id: null, remind_before: null };
  const assigneeField = sharing
    ? field({ name: "assignee_id", label: "Assignee", value: current.assignee_id ?? "", options: [["", "Nobody"]] })
    : null;

  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-label": heading },
    alertBox(),
    field({ name: "description", label: "Description", type: "textarea", value: current.description || "", required: true, maxlength: 4000, rows: 3 }),
    field({ name: "category", label: "Category", value: current.category || "", required: true, maxlength: 255 }),
    field({ name: "deadline", label: "Deadline", type: "datetime-local", value: toLocalInput(current.deadline), required: true }),
    field({ name: "status", label: "Status", value: current.status, options: STATUSES }),
    field({
      name: "remind_before",
      label: "Remind me (minutes before the deadline)",
      type: "number",
      min: 1,
      max: 10080,
      step: 1,
      inputmode: "numeric",
      value: current.remind_before ?? "",
      hint: "Leave empty to use your account's lead time (Reminders).",
    }),
    sharing ? field({ name: "list_id", label: "List", value: current.list_id ?? "", options: listChoices }) : null,
    assigneeField,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, taskId ? "Save changes" : "Create task"),
      h("a", { href: "#/tasks", class: "button secondary" }, "Cancel"),
    ),
  );
  const conflict = h("section", { class: "card conflict", hidden: true, "aria-labelledby": "conflict-title" });

  async function fillAssignees() {
    if (!sharing) return;
    const select = form.elements.namedItem("assignee_id");
    const chosen = select.value || String(current.assignee_id ?? "");
    const listValue = form.elements.namedItem("list_id").value;
    let people = [];
    try {
      people = await assignees(listValue ? Number(listValue) : null, me);
    } catch (error) {
      showError(form, error);
    }
    select.replaceChildren(
      h("option", { value: "" }, "Nobody"),
      ...people.map(([value, text]) => h("option", { value, selected: value === chosen }, text)),
    );
  }
  if (sharing) {
    form.elements.namedItem("list_id").addEventListener("change", fillAssignees);
    await fillAssignees();
  }

  // Create: the key belongs to this body; a changed body is a new creation with a new key.
  let idempotency = null;

  async function save(values) {
    if (!taskId) {
      const body = { ...values };
      for (const name of ["remind_before", "list_id", "assignee_id"]) if (body[name] === null) delete body[name];
      const fingerprint = JSON.stringify(body);
      if (!idempotency || idempotency.fingerprint !== fingerprint) {
        idempotency = { fingerprint, key: crypto.randomUUID() };
      }
      form.dataset.idempotencyKey = idempotency.key;
      const created = await api.createTask(body, idempotency.key);
      idempotency = null;
      session.lastCreated = created.task.id;
      announce("Task created.");
      navigate(`/tasks/${created.task.id}`);
      return;
    }
    // My edits: what differs from the version the form was filled from.
    const changed = changes(values, task);
    if (!Object.keys(changed).length) {
      announce("Nothing to save.");
      return;
    }
    await patch(changed);
  }

  async function patch(changed) {
    try {
      ({ task, etag } = await api.updateTask(taskId, changed, etag));
      announce("Changes saved.");
      const box = form.querySelector(".alert");
      box.setAttribute("role", "status");
      box.textContent = "Changes saved.";
      box.hidden = false;
    } catch (error) {
      if (error.status === 412) {
        await showConflict(changed);
        return;
      }
      if (error.status === 403) {
        // The person's role changed (demoted to viewer, say): what they may do is redrawn.
        session.invalidateLists();
        error.message = `${error.message} Your role in this list may have changed; reload the task to see what you can do.`;
      }
      throw error;
    }
  }

  function fill(values) {
    form.elements.description.value = values.description;
    form.elements.category.value = values.category;
    form.elements.deadline.value = toLocalInput(values.deadline);
    form.elements.status.value = values.status;
    form.elements.remind_before.value = values.remind_before ?? "";
    if (sharing) {
      form.elements.namedItem("list_id").value = values.list_id ?? "";
      current.assignee_id = values.assignee_id;
      form.elements.namedItem("assignee_id").value = values.assignee_id ?? "";
      fillAssignees();
    }
  }

  async function showConflict(mine) {
    const base = task;
    const latest = await api.getTask(taskId);
    const theirs = latest.task;
    // Every field someone changed: by them (since the form was filled) or by me.
    const touched = EDITABLE.filter((name) => name in mine || name in changes({ [name]: theirs[name] ?? null }, base));
    const rows = touched.map((name) =>
      h(
        "tr",
        { class: name in mine ? "differs" : "" },
        h("th", { scope: "row" }, LABELS[name]),
        h("td", {}, describe(name, theirs[name], lists)),
        h("td", {}, name in mine ? describe(name, mine[name], lists) : "(not changed)"),
      ),
    );
    const keep = h("button", { type: "button", class: "primary" }, "Keep my version");
    const take = h("button", { type: "button", class: "secondary" }, "Take their version");
    keep.addEventListener("click", () =>
      submitting(form, async () => {
        task = theirs;
        etag = latest.etag;
        conflict.hidden = true;
        fill({ ...theirs, ...mine });
        await patch(mine);
        form.elements.description.focus();
      }),
    );
    take.addEventListener("click", () => {
      task = theirs;
      etag = latest.etag;
      conflict.hidden = true;
      fill(theirs);
      announce("Their version is in the form.");
      form.elements.description.focus();
    });
    conflict.replaceChildren(
      h("h2", { id: "conflict-title" }, "This task changed while you were editing it"),
      h("p", {}, `Someone saved a newer version (${formatDate(theirs.updated_at)}). Nothing of yours was saved yet. `
        + "Keep your changes (on top of theirs) or take their version."),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("caption", { class: "visually-hidden" }, "The newer version and your changes"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Newer version"), h("th", { scope: "col" }, "Your change"))),
          h("tbody", {}, rows),
        ),
      ),
      h("div", { class: "actions" }, keep, take),
    );
    conflict.hidden = false;
    conflict.querySelector("h2").setAttribute("tabindex", "-1");
    conflict.querySelector("h2").focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = readValues(form, sharing);
    const missing = {};
    if (!values.description) missing.description = "Please write what the task is.";
    if (!values.category) missing.category = "Please give a category.";
    if (!values.deadline) missing.deadline = "Please choose a deadline.";
    if (Object.keys(missing).length) {
      showError(form, { message: "Please fill in the highlighted fields.", fields: missing });
      return;
    }
    submitting(form, () => save(values));
  });

  view.append(conflict, form);

  if (taskId) {
    const confirmBox = h("div", { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm deletion" });
    const deleteForm = h("form", { class: "danger-zone", novalidate: true }, alertBox(),
      h("button", { type: "button", class: "danger", onclick: () => {
        confirmBox.hidden = false;
        confirmBox.querySelector("button").focus();
      } }, "Delete task"), confirmBox);
    confirmBox.append(
      h("p", {}, "Delete this task for good?"),
      h("button", { type: "submit", class: "danger" }, "Yes, delete it"),
      h("button", { type: "button", class: "secondary", onclick: () => {
        confirmBox.hidden = true;
      } }, "Keep it"),
    );
    deleteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(deleteForm, async () => {
        try {
          await api.deleteTask(taskId, etag);
        } catch (error) {
          if (error.status === 412) {
            throw new api.ApiError(412, "Someone changed this task since you opened it. Reload it to see the change before deleting it.");
          }
          throw error;
        }
        announce("Task deleted.");
        navigate("/tasks");
      });
    });
    view.append(h("p", { class: "meta" }, `Created ${formatDate(task.created_at)} · last changed ${formatDate(task.updated_at)}`), deleteForm);
  }
}
