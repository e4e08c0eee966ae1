// A small browser client of the Taskline API, run from another origin than the API's.
// Each step checks what a real client depends on: headers it sends (Authorization,
// Content-Type, Idempotency-Key, If-Match) and headers it reads (ETag, Location, Link,
// Idempotent-Replayed, WWW-Authenticate). A header CORS does not expose reads as null.
"use strict";

const params = new URLSearchParams(location.search);
const apiInput = document.getElementById("api");
apiInput.value = params.get("api") || "http://127.0.0.1:3000";
const stepList = document.getElementById("steps");
const statusLine = document.getElementById("status");

function record(name, ok, detail) {
  const item = document.createElement("li");
  item.dataset.step = name;
  item.dataset.ok = String(ok);
  item.textContent = `${name}: ${detail}`;
  stepList.append(item);
}

function expect(name, condition, detail) {
  record(name, Boolean(condition), detail);
  if (!condition) throw new Error(`${name}: ${detail}`);
}

async function call(api, method, path, { token, json, form, headers = {} } = {}) {
  const sent = { ...headers };
  let body;
  if (json !== undefined) { sent["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) { body = new URLSearchParams(form); }
  if (token) sent.Authorization = `Bearer ${token}`;
  const url = path.startsWith("http") ? path : api + path;
  const response = await fetch(url, { method, headers: sent, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

async function run() {
  const api = apiInput.value.replace(/\/$/, "");
  stepList.replaceChildren();
  statusLine.textContent = "running";
  const email = `browser-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const password = "correct horse battery staple";
  try {
    const signup = await call(api, "POST", "/users", { json: { email, password } });
    expect("sign-up", signup.status === 201, `POST /users -> ${signup.status}`);

    const issued = await call(api, "POST", "/token", { form: { username: email, password } });
    expect("token", issued.status === 200 && issued.body.access_token, `POST /token -> ${issued.status}`);
    const token = issued.body.access_token;

    const refused = await call(api, "GET", "/tasks");
    const challenge = refused.headers.get("WWW-Authenticate");
    expect("401 challenge", refused.status === 401 && challenge && challenge.startsWith("Bearer"),
      `GET /tasks without a token -> ${refused.status}, WWW-Authenticate ${challenge}`);

    const key = crypto.randomUUID();
    const task = { description: "Written from a browser", category: "web", deadline: "2030-01-01T09:00:00Z" };
    const created = await call(api, "POST", "/tasks", { token, json: task, headers: { "Idempotency-Key": key } });
    const etag = created.headers.get("ETag");
    const location = created.headers.get("Location");
    expect("create", created.status === 201 && etag && location === `/tasks/${created.body.id}`,
      `POST /tasks -> ${created.status}, ETag ${etag}, Location ${location}`);
    const id = created.body.id;

    const replay = await call(api, "POST", "/tasks", { token, json: task, headers: { "Idempotency-Key": key } });
    const replayed = replay.headers.get("Idempotent-Replayed");
    expect("idempotent retry", replay.status === 201 && replay.body.id === id && replayed === "true",
      `same Idempotency-Key -> ${replay.status}, task ${replay.body && replay.body.id}, Idempotent-Replayed ${replayed}`);

    const read = await call(api, "GET", `/tasks/${id}`, { token });
    expect("read ETag", read.status === 200 && read.headers.get("ETag") === etag,
      `GET /tasks/${id} -> ${read.status}, ETag ${read.headers.get("ETag")}`);

    const updated = await call(api, "PATCH", `/tasks/${id}`, { token, json: { status: "In Progress" }, headers: { "If-Match": etag } });
    const newTag = updated.headers.get("ETag");
    expect("conditional update", updated.status === 200 && newTag && newTag !== etag,
      `PATCH with If-Match -> ${updated.status}, new ETag ${newTag}`);

    const stale = await call(api, "PATCH", `/tasks/${id}`, { token, json: { status: "Done" }, headers: { "If-Match": etag } });
    expect("stale tag", stale.status === 412, `PATCH with the old ETag -> ${stale.status}`);

    const second = await call(api, "POST", "/tasks", { token, json: { ...task, deadline: "2030-02-01T09:00:00Z" } });
    expect("second task", second.status === 201, `POST /tasks -> ${second.status}`);

    const first = await call(api, "GET", "/tasks?limit=1", { token });
    const link = first.headers.get("Link");
    const next = link && link.match(/^<([^>]+)>; rel="next"$/);
    expect("page 1", first.status === 200 && first.body.length === 1 && first.body[0].id === id && next,
      `GET /tasks?limit=1 -> ${first.status}, ${first.body && first.body.length} task, Link ${link}`);

    const page2 = await call(api, "GET", next[1], { token });
    expect("page 2", page2.status === 200 && page2.body.length === 1 && page2.body[0].id === second.body.id,
      `GET (Link) -> ${page2.status}, task ${page2.body && page2.body[0] && page2.body[0].id}`);

    const removed = await call(api, "DELETE", `/tasks/${id}`, { token, headers: { "If-Match": newTag } });
    expect("delete", removed.status === 204, `DELETE with If-Match -> ${removed.status}`);
    const gone = await call(api, "GET", `/tasks/${id}`, { token });
    expect("gone", gone.status === 404, `GET /tasks/${id} -> ${gone.status}`);

    statusLine.textContent = "passed";
  } catch (error) {
    // A request the browser refused to send (CORS) rejects with a TypeError: no step recorded it.
    if (!stepList.querySelector('[data-ok="false"]')) record("error", false, String(error));
    statusLine.textContent = `failed: ${error.message}`;
  }
}

document.getElementById("run").addEventListener("click", run);
if (params.get("run") === "1") run();
