// The one module that talks to the Taskline API (same origin: the app is served beside it).
//
// Tokens (docs/web.md says why): the access token lives only in this module's memory; the
// refresh token in sessionStorage, so a reload keeps the person signed in and closing the tab
// ends it. Refresh tokens rotate and work once: one refresh at a time (a shared promise), and
// a refresh the API refuses (reused, expired, revoked) signs the person out.

const REFRESH_KEY = "taskline.refresh";
const SIGNED_OUT_EVENT = "taskline:signed-out";

let accessToken = null;
let accessExpiresAt = 0;
let refreshing = null;

/** An API answer that is not a success, as a sentence a person can read. */
export class ApiError extends Error {
  constructor(status, sentence, { type = "", fields = {}, retryAfter = null, body = null } = {}) {
    super(sentence);
    this.status = status;
    this.type = type;
    this.fields = fields; // field name -> message, for the 422s
    this.retryAfter = retryAfter; // seconds, for 429 and 503
    this.body = body;
  }
}

/** The network failed (offline, connection reset): the request may or may not have arrived. */
export class NetworkError extends Error {
  constructor() {
    super("The connection to Taskline failed. Check your connection and try again.");
    this.status = 0;
    this.fields = {};
  }
}

const GENERIC = {
  400: "Taskline could not read that request.",
  401: "Your session has ended. Please sign in again.",
  403: "You are not allowed to do that.",
  404: "That no longer exists, or you no longer have access to it.",
  405: "That action is not available.",
  409: "That conflicts with what is already there.",
  410: "That link or invitation has expired.",
  412: "Someone changed this in the meantime.",
  413: "That is too large to save.",
  415: "Taskline could not read that request.",
  422: "Some of the values are not valid.",
  429: "Too many attempts.",
  500: "Something went wrong on Taskline's side. Please try again.",
  503: "Taskline is briefly unavailable. Please try again in a moment.",
};

const FIELD_LABELS = {
  email: "Email",
  password: "Password",
  current_password: "Current password",
  new_password: "New password",
  description: "Description",
  category: "Category",
  deadline: "Deadline",
  status: "Status",
  remind_before: "Remind before",
  due_soon_minutes: "Lead time",
  name: "Name",
  role: "Role",
  list_id: "List",
  assignee_id: "Assignee",
};

function waitSentence(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return ` Please wait ${seconds} second${seconds === 1 ? "" : "s"} and try again.`;
  const minutes = Math.ceil(seconds / 60);
  return ` Please wait ${minutes} minute${minutes === 1 ? "" : "s"} and try again.`;
}

function firstSentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return "";
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

async function toError(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const header = response.headers.get("Retry-After");
  const retryAfter = header && /^\d+$/.test(header) ? Number(header) : null;
  const status = response.status;
  const fields = {};
  let sentence = "";
  let type = "";
  if (body && typeof body === "object") {
    type = String(body.type || body.error || "");
    if (Array.isArray(body.errors)) {
      for (const item of body.errors) {
        const loc = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body") : [];
        const name = loc.length ? String(loc[loc.length - 1]) : "";
        if (name && !(name in fields)) fields[name] = firstSentence(item.msg);
      }
    }
    if (type.endsWith(":email-unverified")) {
      // The API's detail names its route; a person needs to know what to do.
      sentence = "Please confirm your email address first, with the link we emailed you (the banner above can send it again).";
    } else if (body.error === "invalid_grant") sentence = "The email or password is not right.";
    else if (body.error === "slow_down") sentence = "Too many sign-in attempts.";
    else sentence = firstSentence(body.detail || body.error_description || body.message);
  }
  if (!sentence) sentence = GENERIC[status] || `Taskline answered with an error (${status}).`;
  if (status === 422 && Object.keys(fields).length) {
    const unplaced = Object.entries(fields).map(([k, v]) => `${FIELD_LABELS[k] || k}: ${v}`);
    sentence = `Please correct the highlighted field${unplaced.length > 1 ? "s" : ""}. ${unplaced.join(" ")}`;
  }
  if (status === 429 || status === 503) sentence += waitSentence(retryAfter);
  return new ApiError(status, sentence, { type, fields, retryAfter, body });
}

async function send(method, path, { json, form, headers = {}, auth = true } = {}) {
  const sent = { Accept: "application/json, application/problem+json", ...headers };
  let body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  if (auth) sent.Authorization = `Bearer ${await currentAccessToken()}`;
  try {
    return await fetch(path, { method, headers: sent, body, cache: "no-store", credentials: "omit" });
  } catch {
    throw new NetworkError();
  }
}

/** A call to a protected route: refreshes the access token once when it was refused. */
async function call(method, path, options = {}) {
  let response = await send(method, path, options);
  if (response.status === 401 && options.auth !== false) {
    accessToken = null;
    await refresh();
    response = await send(method, path, options);
    if (response.status === 401) {
      endSession("Your session has ended. Please sign in again.");
    }
  }
  if (!response.ok) throw await toError(response);
  return response;
}

async function json(response) {
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// --- the session -------------------------------------------------------------------------

function storeTokens(body) {
  accessToken = body.access_token;
  // Refresh a little before the API would refuse it (clock skew, a slow request).
  accessExpiresAt = Date.now() + Math.max(10, Number(body.expires_in || 60) - 30) * 1000;
  if (body.refresh_token) sessionStorage.setItem(REFRESH_KEY, body.refresh_token);
}

function endSession(reason) {
  accessToken = null;
  accessExpiresAt = 0;
  sessionStorage.removeItem(REFRESH_KEY);
  window.dispatchEvent(new CustomEvent(SIGNED_OUT_EVENT, { detail: { reason } }));
}

export function onSignedOut(listener) {
  window.addEventListener(SIGNED_OUT_EVENT, (event) => listener(event.detail.reason));
}

export function hasSession() {
  return Boolean(accessToken || sessionStorage.getItem(REFRESH_KEY));
}

/** Exchange the refresh token for a new pair; one exchange at a time (each token works once). */
function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = sessionStorage.getItem(REFRESH_KEY);
      if (!token) {
        endSession("");
        throw new ApiError(401, GENERIC[401]);
      }
      const response = await send("POST", "/token", {
        form: { grant_type: "refresh_token", refresh_token: token },
        auth: false,
      });
      if (response.ok) {
        storeTokens(await json(response));
        return;
      }
      const error = await toError(response);
      if (response.status === 400 || response.status === 401) {
        endSession("Your session has ended. Please sign in again.");
        throw new ApiError(401, "Your session has ended. Please sign in again.");
      }
      throw error;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function currentAccessToken() {
  if (!accessToken || Date.now() >= accessExpiresAt) await refresh();
  return accessToken;
}

/** Resume the session kept in this tab (a reload); false when there is none. */
export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return false;
  try {
    await currentAccessToken();
    return true;
  } catch (error) {
    if (error instanceof NetworkError) throw error;
    return false;
  }
}

export async function signIn(email, password) {
  const response = await send("POST", "/token", {
    form: { grant_type: "password", username: email, password },
    auth: false,
  });
  if (!response.ok) throw await toError(response);
  storeTokens(await json(response));
}

export async function signUp(email, password) {
  const response = await send("POST", "/users", { json: { email, password }, auth: false });
  if (!response.ok) throw await toError(response);
  return json(response);
}

/** Sign out: revoke this session's refresh token (RFC 7009), then forget the tokens. */
export async function signOut() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  try {
    if (token) await send("POST", "/token/revoke", { form: { token }, auth: false });
  } finally {
    endSession("You are signed out.");
  }
}

export async function signOutEverywhere() {
  await call("POST", "/users/me/logout-all");
  endSession("You are signed out on every device.");
}

export async function changePassword(currentPassword, newPassword) {
  await call("PUT", "/users/me/password", {
    json: { current_password: currentPassword, new_password: newPassword },
  });
}

export async function deleteAccount(password) {
  await call("DELETE", "/users/me", { json: { password } });
  endSession("Your account was deleted.");
}

export async function me() {
  return json(await call("GET", "/users/me"));
}

export async function resendVerification() {
  await call("POST", "/users/me/email-verification");
}

// --- tasks -------------------------------------------------------------------------------

function nextLink(response) {
  const header = response.headers.get("Link") || "";
  for (const part of header.split(",")) {
    const match = part.match(/<([^>]*)>\s*;\s*rel="?next"?/);
    if (match) {
      // Follow the API's own URL, on this origin (the API names its own host).
      const url = new URL(match[1], location.href);
      return url.pathname + url.search;
    }
  }
  return null;
}

/** One page of tasks: {items, next} (next: the path of the following page, or null). */
export async function listTasks(filters = {}, next = null) {
  let path = next;
  if (!path) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, value);
    }
    path = `/tasks${query.size ? `?${query}` : ""}`;
  }
  const response = await call("GET", path);
  return { items: await json(response), next: nextLink(response) };
}

export async function getTask(id) {
  const response = await call("GET", `/tasks/${encodeURIComponent(id)}`);
  return { task: await json(response), etag: response.headers.get("ETag") };
}

/** Create; `key` is the Idempotency-Key, the same on every retry of this one creation. */
export async function createTask(fields, key) {
  const response = await call("POST", "/tasks", { json: fields, headers: { "Idempotency-Key": key } });
  return { task: await json(response), etag: response.headers.get("ETag") };
}

/** Change some fields, only if the task is still `etag` (else ApiError 412). */
export async function updateTask(id, fields, etag) {
  const headers = etag ? { "If-Match": etag } : {};
  const response = await call("PATCH", `/tasks/${encodeURIComponent(id)}`, { json: fields, headers });
  return { task: await json(response), etag: response.headers.get("ETag") };
}

export async function deleteTask(id, etag) {
  const headers = etag ? { "If-Match": etag } : {};
  await call("DELETE", `/tasks/${encodeURIComponent(id)}`, { headers });
}

/** Whether tasks take `list_id` and `assignee_id` (shared lists' second part) on this API:
 * read from a task when there is one, else from the API's OpenAPI document. */
export async function tasksHaveLists() {
  const page = await listTasks({ limit: 1 });
  if (page.items.length) return "list_id" in page.items[0];
  try {
    const response = await send("GET", "/openapi.json", { auth: false });
    const document = await json(response);
    return Boolean(document.components.schemas.TaskCreate.properties.list_id);
  } catch {
    return false;
  }
}

// --- lists, members, invitations ---------------------------------------------------------

/** Every list of the caller (following Link); null when this API has no shared lists. */
export async function allLists() {
  const lists = [];
  let path = "/lists?limit=100";
  while (path) {
    let response;
    try {
      response = await call("GET", path);
    } catch (error) {
      if (error.status === 404 && error.type.endsWith("route-not-found")) return null;
      throw error;
    }
    lists.push(...(await json(response)));
    path = nextLink(response);
  }
  return lists;
}

const id = (value) => encodeURIComponent(value);

export async function createList(name) {
  return json(await call("POST", "/lists", { json: { name } }));
}
export async function getList(listId) {
  return json(await call("GET", `/lists/${id(listId)}`));
}
export async function renameList(listId, name) {
  return json(await call("PATCH", `/lists/${id(listId)}`, { json: { name } }));
}
export async function deleteList(listId) {
  await call("DELETE", `/lists/${id(listId)}`);
}
export async function members(listId) {
  return json(await call("GET", `/lists/${id(listId)}/members`));
}
export async function changeRole(listId, userId, role) {
  return json(await call("PATCH", `/lists/${id(listId)}/members/${id(userId)}`, { json: { role } }));
}
export async function removeMember(listId, userId) {
  await call("DELETE", `/lists/${id(listId)}/members/${id(userId)}`);
}
export async function invite(listId, email, role) {
  return json(await call("POST", `/lists/${id(listId)}/invitations`, { json: { email, role } }));
}
export async function listInvitations(listId) {
  return json(await call("GET", `/lists/${id(listId)}/invitations`));
}
export async function revokeInvitation(listId, invitationId) {
  await call("DELETE", `/lists/${id(listId)}/invitations/${id(invitationId)}`);
}
/** Invitations addressed to me; null when this API has no shared lists. */
export async function myInvitations() {
  try {
    return json(await call("GET", "/invitations"));
  } catch (error) {
    if (error.status === 404 && error.type.endsWith("route-not-found")) return null;
    throw error;
  }
}
export async function acceptInvitation(invitationId) {
  return json(await call("POST", `/invitations/${id(invitationId)}/accept`));
}
export async function declineInvitation(invitationId) {
  await call("DELETE", `/invitations/${id(invitationId)}`);
}

// --- reminders ---------------------------------------------------------------------------

export async function preferences() {
  return json(await call("GET", "/users/me/notifications"));
}
export async function savePreferences(fields) {
  return json(await call("PATCH", "/users/me/notifications", { json: fields }));
}
export async function issueCalendar() {
  return json(await call("POST", "/users/me/calendar"));
}
export async function revokeCalendar() {
  await call("DELETE", "/users/me/calendar");
}
