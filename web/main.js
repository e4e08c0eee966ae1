// The app's shell: the session, the navigation and the router (hash routes, so moving between
// screens loads nothing: every module is loaded once, at start).
import * as api from "./api.js";
import { announce, h } from "./dom.js";
import * as account from "./screens/account.js";
import * as invitations from "./screens/invitations.js";
import * as list from "./screens/list.js";
import * as lists from "./screens/lists.js";
import * as reminders from "./screens/reminders.js";
import * as signin from "./screens/signin.js";
import * as signup from "./screens/signup.js";
import * as task from "./screens/task.js";
import * as tasks from "./screens/tasks.js";

const ROUTES = [
  [/^\/signin$/, signin, false],
  [/^\/signup$/, signup, false],
  [/^\/tasks$/, tasks, true],
  [/^\/tasks\/new$/, task, true],
  [/^\/tasks\/(\d+)$/, task, true],
  [/^\/lists$/, lists, true],
  [/^\/lists\/(\d+)$/, list, true],
  [/^\/invitations$/, invitations, true],
  [/^\/reminders$/, reminders, true],
  [/^\/account$/, account, true],
];

const NAV = [
  ["#/tasks", "Tasks"],
  ["#/lists", "Lists"],
  ["#/invitations", "Invitations"],
  ["#/reminders", "Reminders"],
  ["#/account", "Account"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const banner = document.getElementById("banner");
let signedIn = false;
let notice = ""; // shown once on the next screen (why the person was signed out, ...)
let renderCount = 0;

/** Shared with the screens: who is signed in, and a few cached answers. */
export const session = {
  me: null,
  lists: undefined, // undefined: not loaded; null: this API has no shared lists
  async loadLists(force = false) {
    if (force || this.lists === undefined) this.lists = await api.allLists();
    return this.lists;
  },
  invalidateLists() {
    this.lists = undefined;
  },
  taskLists: undefined, // whether tasks can be put in lists and assigned (once known)
  async tasksHaveLists() {
    if (this.taskLists === undefined) this.taskLists = await api.tasksHaveLists();
    return this.taskLists;
  },
};

export function navigate(path) {
  if (location.hash === `#${path}`) route();
  else location.hash = `#${path}`;
}

export function setNotice(message) {
  notice = message;
}

function renderNav() {
  nav.replaceChildren();
  if (!signedIn) return;
  const current = location.hash.split("/").slice(0, 2).join("/");
  const items = NAV.map(([href, text]) =>
    h("li", {}, h("a", { href, "aria-current": href === current ? "page" : null }, text)),
  );
  nav.append(h("ul", {}, items));
}

function renderBanner() {
  banner.replaceChildren();
  const me = session.me;
  if (!signedIn || !me || me.email_verified !== false) {
    banner.hidden = true;
    return;
  }
  const result = h("span", { class: "banner-result", role: "status" });
  const resend = h(
    "button",
    {
      type: "button",
      class: "link-button",
      onclick: async () => {
        resend.disabled = true;
        try {
          await api.resendVerification();
          result.textContent = `We sent a new link to ${me.email}.`;
        } catch (error) {
          result.textContent = error.message;
        } finally {
          resend.disabled = false;
        }
      },
    },
    "Send the link again",
  );
  banner.append(
    h("p", {}, `Please confirm your email address (${me.email}) with the link we sent you; `,
      "until then invitations and reminder emails cannot reach you. ", resend, " ", result),
  );
  banner.hidden = false;
}

async function route() {
  const path = location.hash.replace(/^#/, "") || "/";
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  if (!found) {
    location.replace(signedIn ? "#/tasks" : "#/signin");
    return;
  }
  const [pattern, screen, protectedRoute] = found;
  if (protectedRoute && !signedIn) {
    location.replace("#/signin");
    return;
  }
  if (!protectedRoute && signedIn) {
    location.replace("#/tasks");
    return;
  }
  renderNav();
  renderBanner();
  const count = ++renderCount;
  const view = h("div", { class: "screen" });
  main.replaceChildren(view);
  if (notice) {
    view.append(h("p", { class: "notice", role: "status" }, notice));
    notice = "";
  }
  const params = path.match(pattern).slice(1);
  const context = { session, navigate, setNotice, stale: () => count !== renderCount };
  try {
    await screen.render(view, params, context);
  } catch (error) {
    if (count !== renderCount) return;
    if (!view.querySelector("h1")) view.prepend(h("h1", {}, "This page could not be shown"));
    view.append(h("div", { class: "alert", role: "alert" }, error.message || String(error)));
  }
  if (count !== renderCount) return;
  // Move focus to the new screen's heading, as a page load would (keyboard and screen readers).
  const heading = view.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
    document.title = `${heading.textContent} · Taskline`;
  }
}

export async function signedInAs() {
  signedIn = true;
  session.me = await api.me();
  session.invalidateLists();
}

api.onSignedOut((reason) => {
  signedIn = false;
  session.me = null;
  session.invalidateLists();
  if (reason) notice = reason;
  if (location.hash === "#/signin") route();
  else location.replace("#/signin");
});

async function start() {
  // The skip link moves focus without touching the hash (the hash is the router's).
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  try {
    if (await api.resume()) await signedInAs();
  } catch (error) {
    notice = error.message;
  }
  window.addEventListener("hashchange", route);
  document.body.classList.remove("loading");
  await route();
  announce("");
}

start();
