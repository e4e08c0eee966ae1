// One list: rename, members and their roles, invitations, leave, delete. What the person's
// role does not allow is not offered; a 403 (the role changed meanwhile) is shown and the
// screen redrawn with what they may do now.
import * as api from "../api.js";
import { alertBox, announce, field, formatDate, h, submitting } from "../dom.js";
import { filterByList } from "./tasks.js";

const ROLES = [["editor", "Editor"], ["viewer", "Viewer"]];
const ROLE_NAMES = { owner: "Owner", editor: "Editor", viewer: "Viewer" };

export async function render(view, params, context) {
  const { session, navigate, stale } = context;
  const listId = Number(params[0]);
  const list = await api.getList(listId);
  const people = await api.members(listId);
  const invitations = list.role === "owner" ? await api.listInvitations(listId) : [];
  const tasksInLists = await session.tasksHaveLists();
  if (stale()) return;
  const me = session.me;
  const isOwner = list.role === "owner";
  const canEdit = isOwner || list.role === "editor";

  // A 403 means the person's role changed since the screen was drawn: redraw it.
  async function act(form, work) {
    await submitting(form, async () => {
      try {
        await work();
      } catch (error) {
        if (error.status === 403 || error.status === 404) session.invalidateLists();
        throw error;
      }
    });
  }
  const redraw = () => navigate(`/lists/${listId}`);

  view.append(
    h("div", { class: "screen-head" }, h("h1", {}, list.name), h("a", { href: "#/lists" }, "All lists")),
    h("p", { class: "meta", dataset: { role: list.role } },
      `Your role: ${ROLE_NAMES[list.role]} · owner ${list.owner.email} · ${list.member_count} member${list.member_count === 1 ? "" : "s"}`),
  );
  if (tasksInLists) {
    view.append(h("p", {}, h("a", { href: "#/tasks", onclick: () => filterByList(listId) }, "See this list's tasks"),
      canEdit ? [" · ", h("a", { href: "#/tasks/new" }, "New task")] : null));
  }

  if (canEdit) {
    const rename = h(
      "form",
      { class: "card inline-form", novalidate: true, "aria-label": "Rename list" },
      alertBox(),
      field({ name: "name", label: "List name", value: list.name, required: true, maxlength: 200 }),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Rename")),
    );
    rename.addEventListener("submit", (event) => {
      event.preventDefault();
      act(rename, async () => {
        const renamed = await api.renameList(listId, rename.elements.name.value);
        session.invalidateLists();
        announce(`Renamed to “${renamed.name}”.`);
        redraw();
      });
    });
    view.append(rename);
  }

  // Members
  const rows = people.map((member) => {
    const self = member.user_id === me.id;
    const cells = [
      h("td", {}, member.email, self ? " (you)" : ""),
      h("td", { dataset: { role: member.role } }, ROLE_NAMES[member.role] || member.role),
      h("td", {}, formatDate(member.joined_at)),
    ];
    const actions = h("td", { class: "row-actions" });
    if (isOwner && !self) {
      const form = h("form", { class: "role-form", novalidate: true }, alertBox());
      const roleField = field({
        name: "role",
        label: `Role of ${member.email}`,
        value: member.role,
        options: [...ROLES, ["owner", "Owner (hand over)"]],
      });
      // The row says whose role it is; the label is for screen readers.
      roleField.querySelector("label").classList.add("visually-hidden");
      form.append(
        roleField,
        h("button", { type: "submit" }, "Change role"),
        h("button", { type: "button", class: "danger", onclick: () => act(form, async () => {
          await api.removeMember(listId, member.user_id);
          announce(`${member.email} was removed.`);
          redraw();
        }) }, "Remove"),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        act(form, async () => {
          await api.changeRole(listId, member.user_id, form.elements.role.value);
          session.invalidateLists();
          announce(`${member.email} is now ${form.elements.role.value}.`);
          redraw();
        });
      });
      actions.append(form);
    } else if (self && !isOwner) {
      const form = h("form", { class: "leave-form", novalidate: true }, alertBox(),
        h("button", { type: "submit", class: "danger" }, "Leave list"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        act(form, async () => {
          await api.removeMember(listId, me.id);
          session.invalidateLists();
          announce(`You left “${list.name}”.`);
          navigate("/lists");
        });
      });
      actions.append(form);
    }
    cells.push(actions);
    return h("tr", { dataset: { userId: member.user_id } }, cells);
  });
  view.append(
    h("h2", { id: "members-title" }, "Members"),
    h("div", { class: "table-wrap" }, h("table", { class: "members", "aria-labelledby": "members-title" },
      h("thead", {}, h("tr", {}, ["Member", "Role", "Joined", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows))),
  );

  if (isOwner) {
    const inviteForm = h(
      "form",
      { class: "card", novalidate: true, "aria-labelledby": "invite-title" },
      h("h2", { id: "invite-title" }, "Invite someone"),
      alertBox(),
      field({ name: "email", label: "Their email", type: "email", autocomplete: "off", required: true }),
      field({ name: "role", label: "Role", value: "editor", options: ROLES }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Send invitation")),
    );
    inviteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      act(inviteForm, async () => {
        const email = inviteForm.elements.email.value.trim();
        await api.invite(listId, email, inviteForm.elements.role.value);
        announce(`Invitation sent to ${email}.`);
        redraw();
      });
    });
    view.append(inviteForm);

    view.append(h("h2", { id: "pending-title" }, "Pending invitations"));
    if (!invitations.length) view.append(h("p", {}, "None."));
    else {
      view.append(h("ul", { class: "pending", "aria-labelledby": "pending-title" }, invitations.map((inv) => {
        const form = h("form", { class: "inline", novalidate: true }, alertBox(),
          h("button", { type: "submit", class: "secondary", "aria-label": `Revoke the invitation to ${inv.email}` }, "Revoke"));
        form.addEventListener("submit", (event) => {
          event.preventDefault();
          act(form, async () => {
            await api.revokeInvitation(listId, inv.id);
            announce(`Invitation to ${inv.email} revoked.`);
            redraw();
          });
        });
        return h("li", {}, `${inv.email} as ${ROLE_NAMES[inv.role]}, until ${formatDate(inv.expires_at)} `, form);
      })));
    }

    const confirmBox = h("div", { class: "confirm", hidden: true },
      h("p", {}, "Delete this list, its tasks, members and invitations for good?"),
      h("button", { type: "submit", class: "danger" }, "Yes, delete the list"),
      h("button", { type: "button", class: "secondary", onclick: () => { confirmBox.hidden = true; } }, "Keep it"));
    const deleteForm = h("form", { class: "danger-zone", novalidate: true }, alertBox(),
      h("button", { type: "button", class: "danger", onclick: () => {
        confirmBox.hidden = false;
        confirmBox.querySelector("button").focus();
      } }, "Delete list"), confirmBox);
    deleteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      act(deleteForm, async () => {
        await api.deleteList(listId);
        session.invalidateLists();
        announce(`List “${list.name}” deleted.`);
        navigate("/lists");
      });
    });
    view.append(deleteForm);
  }
}
