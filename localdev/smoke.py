"""Post-deploy smoke test: the contract's main path against any running Taskline.

    make smoke API_URL=https://abc123.execute-api.eu-west-1.amazonaws.com [ORIGIN=https://app.example.com]
    make smoke API_URL=http://127.0.0.1:3000
    make smoke APP_URL=https://d111111abcdef8.cloudfront.net/app/   (the web app, WebApp=true)

It signs up a throwaway account, gets a token, creates, reads, updates (with If-Match), lists and
deletes a task, shares a list with a second throwaway account (which, its address unverified,
is refused the invitation), sends a CORS preflight from an allowed origin, then deletes the list
and both accounts. Each step is printed; the first failure stops the run with a non-zero exit,
and the accounts (with anything they created) are deleted whatever happened, so nothing is left
behind.

With APP_URL (the stack's WebAppUrl output, or make run's /app/), it also checks the web app
loads with its security headers and that signing in works on the app's own origin (the API
routed through the same CloudFront distribution); API_URL then defaults to the app's origin.

Only the standard library: it runs wherever Python 3.13 does, e.g. from a CI job after
`sam deploy`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

# What a browser on an allowed origin sends before a cross-origin write with the contract's
# request headers (DESIGN.md, Platform rules).
PREFLIGHT_HEADERS = ("authorization", "content-type", "if-match", "idempotency-key")
TIMEOUT_SECONDS = 30.0


class SmokeFailure(Exception):
    """A step got an answer the contract does not allow."""


class Skipped(Exception):
    """A step that an optional argument left out: noted, and the run goes on."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise SmokeFailure(f"not JSON: {self.body[:200]!r}") from error


class Api:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SystemExit(f"API_URL must be an http(s) URL, not {base_url!r}")
        self.scheme, self.netloc, self.prefix = parts.scheme, parts.netloc, parts.path
        self.token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
    ) -> Answer:
        sent = {"Accept": "application/json", **(headers or {})}
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if authenticated and self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        connection: http.client.HTTPConnection
        if self.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                self.netloc, timeout=TIMEOUT_SECONDS, context=context
            )
        else:
            connection = http.client.HTTPConnection(self.netloc, timeout=TIMEOUT_SECONDS)
        try:
            connection.request(method, self.prefix + path, body=body, headers=sent)
            response = connection.getresponse()
            answer = Answer(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        except OSError as error:
            raise SmokeFailure(f"{method} {path}: {error}") from error
        finally:
            connection.close()
        return answer


def expect(answer: Answer, status: int, what: str) -> Answer:
    if answer.status != status:
        raise SmokeFailure(f"{what}: expected {status}, got {answer.status}: {answer.body[:300]!r}")
    return answer


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def header_list(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


class Smoke:
    def __init__(self, api: Api, origin: str | None, app_url: str | None = None) -> None:
        self.api = api
        self.origin = origin
        self.app_url = app_url
        self.email = f"smoke-{secrets.token_hex(6)}@example.com"
        self.password = secrets.token_urlsafe(18)
        self.signed_up = False
        self.task: dict[str, Any] = {}
        self.etag = ""
        # The second throwaway account, the addressee of the shared list's invitation.
        self.guest = Api(api.scheme + "://" + api.netloc + api.prefix)
        self.guest_email = f"smoke-{secrets.token_hex(6)}@example.com"
        self.guest_signed_up = False
        self.list: dict[str, Any] = {}
        self.invitation: dict[str, Any] = {}

    def steps(self) -> list[tuple[str, Any]]:
        app: list[tuple[str, Any]] = []
        if self.app_url:
            app = [
                ("the web app loads with its security headers", self.app_loads),
                ("sign in on the app's origin", self.app_signs_in),
            ]
        return [
            ("sign up a throwaway account", self.sign_up),
            *app,
            ("get a token (password grant)", self.get_token),
            ("read the account", self.read_account),
            ("create a task", self.create_task),
            ("read the task", self.read_task),
            ("update it with If-Match (and refuse a stale one)", self.update_task),
            ("list tasks", self.list_tasks),
            ("delete the task", self.delete_task),
            ("share a list: invite a second throwaway account", self.share_list),
            ("the unverified addressee is refused, the list stays hidden", self.refuse_guest),
            ("delete the list (and its invitation)", self.delete_list),
            ("delete the second account", self.delete_guest),
            ("CORS preflight from an allowed origin", self.preflight),
            ("delete the account", self.delete_account),
        ]

    def sign_up(self) -> str:
        answer = self.api.request(
            "POST", "/users", json_body={"email": self.email, "password": self.password}
        )
        expect(answer, 201, "POST /users")
        self.signed_up = True
        check(answer.json().get("email") == self.email, "the account has another email")
        return self.email

    def app_loads(self) -> str:
        assert self.app_url
        app = Api(self.app_url)
        page = app.request("GET", "/", authenticated=False)
        expect(page, 200, f"GET {self.app_url}")
        check(page.headers.get("content-type", "").startswith("text/html"), "the app is not HTML")
        check(b'type="module"' in page.body, "the page loads no module")
        policy = page.headers.get("content-security-policy", "")
        check("frame-ancestors 'none'" in policy, f"Content-Security-Policy {policy!r}")
        check("unsafe-inline" not in policy, "the CSP allows inline scripts or styles")
        script = app.request("GET", "/main.js", authenticated=False)
        expect(script, 200, "GET main.js")
        check("javascript" in script.headers.get("content-type", ""), "main.js is not JavaScript")
        return f"{len(page.body)} B page, CSP {len(policy)} characters"

    def app_signs_in(self) -> str:
        assert self.app_url
        parts = urlsplit(self.app_url)
        origin = Api(f"{parts.scheme}://{parts.netloc}")
        answer = origin.request(
            "POST",
            "/token",
            form={"grant_type": "password", "username": self.email, "password": self.password},
            authenticated=False,
        )
        body = expect(answer, 200, "POST /token on the app's origin").json()
        origin.token = body["access_token"]
        me = expect(origin.request("GET", "/users/me"), 200, "GET /users/me on the app's origin")
        check(me.json().get("email") == self.email, "GET /users/me names someone else")
        return f"{parts.netloc} answers the API (refresh token issued: {'refresh_token' in body})"

    def get_token(self) -> str:
        answer = self.api.request(
            "POST",
            "/token",
            form={"grant_type": "password", "username": self.email, "password": self.password},
            authenticated=False,
        )
        body = expect(answer, 200, "POST /token").json()
        check(body.get("token_type") == "bearer", f"token_type {body.get('token_type')!r}")
        check("no-store" in answer.headers.get("cache-control", ""), "token without no-store")
        self.api.token = body["access_token"]
        return f"expires in {body.get('expires_in')} s"

    def read_account(self) -> str:
        body = expect(self.api.request("GET", "/users/me"), 200, "GET /users/me").json()
        check(body.get("email") == self.email, "GET /users/me names someone else")
        return f"user {body.get('id')}"

    def create_task(self) -> str:
        answer = self.api.request(
            "POST",
            "/tasks",
            json_body={
                "description": "Taskline smoke test",
                "category": "smoke",
                "deadline": "2035-01-01T09:00:00Z",
            },
            headers={"Idempotency-Key": f"smoke-{secrets.token_hex(8)}"},
        )
        self.task = expect(answer, 201, "POST /tasks").json()
        location = answer.headers.get("location", "")
        check(location.endswith(f"/tasks/{self.task['id']}"), f"Location {location!r}")
        check(self.task.get("status") == "To Do", f"status {self.task.get('status')!r}")
        check(self.task.get("deadline") == "2035-01-01T09:00:00Z", "deadline not UTC with Z")
        return f"task {self.task['id']}"

    def read_task(self) -> str:
        answer = self.api.request("GET", f"/tasks/{self.task['id']}")
        check(expect(answer, 200, "GET /tasks/{id}").json() == self.task, "task read back differs")
        self.etag = answer.headers.get("etag", "")
        check(bool(self.etag), "no ETag on GET /tasks/{id}")
        return f"ETag {self.etag}"

    def update_task(self) -> str:
        path = f"/tasks/{self.task['id']}"
        answer = self.api.request(
            "PATCH", path, json_body={"status": "In Progress"}, headers={"If-Match": self.etag}
        )
        updated = expect(answer, 200, "PATCH with If-Match").json()
        check(updated.get("status") == "In Progress", "the update did not apply")
        stale = self.api.request(
            "PATCH", path, json_body={"status": "Done"}, headers={"If-Match": self.etag}
        )
        expect(stale, 412, "PATCH with a stale If-Match")
        self.task = updated
        return "In Progress; stale If-Match refused with 412"

    def list_tasks(self) -> str:
        body = expect(self.api.request("GET", "/tasks?limit=10"), 200, "GET /tasks").json()
        check(isinstance(body, list), "GET /tasks is not a list")
        check([task["id"] for task in body] == [self.task["id"]], "the list is not just our task")
        return "1 task"

    def delete_task(self) -> str:
        path = f"/tasks/{self.task['id']}"
        expect(self.api.request("DELETE", path), 204, "DELETE /tasks/{id}")
        expect(self.api.request("GET", path), 404, "GET of the deleted task")
        return "204, then 404"

    def share_list(self) -> str:
        answer = self.guest.request(
            "POST", "/users", json_body={"email": self.guest_email, "password": self.password}
        )
        expect(answer, 201, "POST /users (second account)")
        self.guest_signed_up = True
        self.guest.token = expect(
            self.guest.request(
                "POST",
                "/token",
                form={"username": self.guest_email, "password": self.password},
                authenticated=False,
            ),
            200,
            "POST /token (second account)",
        ).json()["access_token"]
        answer = self.api.request("POST", "/lists", json_body={"name": "  Smoke test list "})
        self.list = expect(answer, 201, "POST /lists").json()
        check(self.list.get("name") == "Smoke test list", "the name was not trimmed")
        check(self.list.get("role") == "owner", f"role {self.list.get('role')!r}")
        location = answer.headers.get("location", "")
        check(location.endswith(f"/lists/{self.list['id']}"), f"Location {location!r}")
        path = f"/lists/{self.list['id']}/invitations"
        invitation = {"email": self.guest_email.upper(), "role": "editor"}
        first = expect(self.api.request("POST", path, json_body=invitation), 201, "invite").json()
        again = expect(self.api.request("POST", path, json_body=invitation), 201, "re-invite")
        check(again.json().get("id") == first.get("id"), "a second invitation was not a renewal")
        pending = expect(self.api.request("GET", path), 200, "GET the list's invitations").json()
        check([item["id"] for item in pending] == [first["id"]], "not just our invitation")
        self.invitation = first
        return f"list {self.list['id']}, invitation {first['id']}"

    def refuse_guest(self) -> str:
        accept = self.guest.request("POST", f"/invitations/{self.invitation['id']}/accept")
        body = expect(accept, 403, "accept by an unverified addressee").json()
        check(body.get("type") == "urn:taskline:problem:email-unverified", f"type {body}")
        expect(self.guest.request("GET", f"/lists/{self.list['id']}"), 404, "GET the list")
        rename = self.guest.request(
            "PATCH", f"/lists/{self.list['id']}", json_body={"name": "taken over"}
        )
        expect(rename, 404, "PATCH the list as a non-member")
        return "403 email-unverified; the list is 404 to them"

    def delete_list(self) -> str:
        path = f"/lists/{self.list['id']}"
        expect(self.api.request("DELETE", path), 204, "DELETE /lists/{id}")
        expect(self.api.request("GET", path), 404, "GET of the deleted list")
        accept = self.guest.request("POST", f"/invitations/{self.invitation['id']}/accept")
        expect(accept, 404, "the deleted list's invitation")
        self.list = {}
        return "204, then 404; its invitation went with it"

    def delete_guest(self) -> str:
        answer = self.guest.request("DELETE", "/users/me", json_body={"password": self.password})
        expect(answer, 204, "DELETE /users/me (second account)")
        self.guest_signed_up = False
        return "deleted"

    def preflight(self) -> str:
        """API Gateway answers preflights itself when the HTTP API has a CORS configuration, with
        the allowed origin echoed and the configured methods and headers, never reaching a
        function; the actual response then carries the origin too.
        https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html"""
        if not self.origin:
            raise Skipped("no ORIGIN given; to test CORS, pass ORIGIN= one of CorsAllowedOrigins")
        answer = self.api.request(
            "OPTIONS",
            "/tasks",
            headers={
                "Origin": self.origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": ", ".join(PREFLIGHT_HEADERS),
            },
            authenticated=False,
        )
        check(answer.status in (200, 204), f"preflight answered {answer.status}")
        allowed_origin = answer.headers.get("access-control-allow-origin")
        check(allowed_origin == self.origin, f"Access-Control-Allow-Origin {allowed_origin!r}")
        methods = header_list(answer.headers.get("access-control-allow-methods"))
        check("post" in methods or "*" in methods, f"Access-Control-Allow-Methods {methods}")
        allowed = header_list(answer.headers.get("access-control-allow-headers"))
        missing = [name for name in PREFLIGHT_HEADERS if name not in allowed and "*" not in allowed]
        check(not missing, f"headers a browser may not send: {missing}")
        actual = self.api.request("GET", "/tasks", headers={"Origin": self.origin})
        expect(actual, 200, "GET /tasks from the origin")
        echoed = actual.headers.get("access-control-allow-origin")
        check(echoed == self.origin, f"actual response's Access-Control-Allow-Origin {echoed!r}")
        return f"{self.origin} may send {', '.join(PREFLIGHT_HEADERS)}"

    def delete_account(self) -> str:
        answer = self.api.request("DELETE", "/users/me", json_body={"password": self.password})
        expect(answer, 204, "DELETE /users/me")
        self.signed_up = False
        gone = self.api.request(
            "POST",
            "/token",
            form={"grant_type": "password", "username": self.email, "password": self.password},
            authenticated=False,
        )
        expect(gone, 400, "POST /token for the deleted account")
        return "deleted; its login no longer works"

    def clean_up(self) -> None:
        """After a failure: delete the list, then the throwaway accounts (and their tasks)."""
        if self.list and self.api.token:
            self.api.request("DELETE", f"/lists/{self.list['id']}")
        if self.guest_signed_up and self.guest.token:
            answer = self.guest.request(
                "DELETE", "/users/me", json_body={"password": self.password}
            )
            if answer.status == 204:
                print(f"  clean-up: deleted the second throwaway account {self.guest_email}")
            else:
                print(f"  clean-up FAILED ({answer.status}): delete {self.guest_email} by hand")
        elif self.guest_signed_up:
            print(f"  clean-up: delete {self.guest_email} by hand (it never got a token)")
        if not self.signed_up:
            return
        if self.api.token is None:
            answer = self.api.request(
                "POST",
                "/token",
                form={"grant_type": "password", "username": self.email, "password": self.password},
                authenticated=False,
            )
            if answer.status != 200:
                print(f"  clean-up: could not log in ({answer.status}); delete {self.email}")
                return
            self.api.token = answer.json()["access_token"]
        answer = self.api.request("DELETE", "/users/me", json_body={"password": self.password})
        if answer.status == 204:
            print(f"  clean-up: deleted the throwaway account {self.email}")
        else:
            print(f"  clean-up FAILED ({answer.status}): delete {self.email} by hand")


def run(api_url: str, origin: str | None, app_url: str | None = None) -> int:
    smoke = Smoke(Api(api_url), origin, app_url)
    print(f"Smoke test of {api_url}")
    try:
        for number, (title, step) in enumerate(smoke.steps(), start=1):
            started = time.monotonic()
            try:
                detail = step()
            except Skipped as skipped:
                print(f"{number:2}. {title}: skipped ({skipped})")
                continue
            except SmokeFailure as failure:
                print(f"{number:2}. {title}: FAILED: {failure}")
                return 1
            elapsed = (time.monotonic() - started) * 1000
            print(f"{number:2}. {title}: ok ({detail}; {elapsed:.0f} ms)")
    finally:
        try:
            smoke.clean_up()
        except SmokeFailure as failure:
            print(f"  clean-up FAILED: {failure}; delete {smoke.email} by hand")
    print("Smoke test passed")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localdev.smoke", description=__doc__)
    parser.add_argument("api_url", nargs="?", default=os.environ.get("API_URL"))
    parser.add_argument(
        "--origin",
        default=os.environ.get("ORIGIN") or None,
        help="an origin in the stack's CorsAllowedOrigins (default: $ORIGIN)",
    )
    parser.add_argument(
        "--app-url",
        default=os.environ.get("APP_URL") or None,
        help="the web app's URL (the WebAppUrl output), to check it too (default: $APP_URL)",
    )
    args = parser.parse_args(argv)
    if not args.api_url and args.app_url:
        parts = urlsplit(args.app_url)
        args.api_url = f"{parts.scheme}://{parts.netloc}"  # the API on the app's origin
    if not args.api_url:
        parser.error("give the API's URL: make smoke API_URL=https://...")
    sys.exit(run(args.api_url, args.origin, args.app_url))


if __name__ == "__main__":
    main()
