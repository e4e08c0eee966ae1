// Invitations addressed to the person: accept (joins the list) or decline.
import * as api from "../api.js";
import { alertBox, announce, formatDate, h, submitting } from "../dom.js";

export async function render(view, _params, { session, navigate, stale }) {
  view.append(h("h1", {}, "Invitations"));
  let invitations;
  try {
    invitations = await api.myInvitations();
  } catch (error) {
    if (error.status !== 403) throw error;
    // An unconfirmed address sees no invitation (not even who sent it): say what to do.
    view.append(h("p", { class: "notice" }, error.message));
    return;
  }
  if (stale()) return;
  if (invitations === null) {
    view.append(h("p", { class: "notice" }, "This Taskline server does not offer shared lists yet."));
    return;
  }
  if (!invitations.length) {
    view.append(h("p", {}, "No invitations waiting for you."));
    return;
  }
  const items = invitations.map((invitation) => {
    const form = h("form", { class: "invitation-actions", novalidate: true }, alertBox());
    const accept = h("button", { type: "submit", class: "primary" }, "Accept");
    const decline = h("button", { type: "button", class: "secondary" }, "Decline");
    form.append(accept, decline);
    const item = h(
      "li",
      { class: "card invitation", dataset: { invitationId: invitation.id } },
      h("h2", {}, invitation.list.name),
      h("p", {}, `${invitation.invited_by.email} invites you as ${invitation.role === "editor" ? "an editor" : "a viewer"}. `,
        `Expires ${formatDate(invitation.expires_at)}.`),
      form,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const list = await api.acceptInvitation(invitation.id);
        session.invalidateLists();
        announce(`You joined “${list.name}”.`);
        navigate(`/lists/${list.id}`);
      });
    });
    decline.addEventListener("click", () =>
      submitting(form, async () => {
        await api.declineInvitation(invitation.id);
        announce("Invitation declined.");
        const list = item.parentElement;
        item.remove();
        if (list && !list.children.length) list.replaceWith(h("p", {}, "No invitations waiting for you."));
        view.querySelector("h1").focus();
      }),
    );
    return item;
  });
  view.append(h("ul", { class: "invitations" }, items));
}
