"""The web app (web/) as people use it: headless Chromium against `make run`'s server.

The first tests need no browser: how `make run` serves the app (same origin, security headers,
`/` redirect), the bundle budget, and the safety rules of the source (no innerHTML, one module
that talks to the API). The journeys need Chromium (`make browser-test`, TASKLINE_BROWSER_TESTS=1)
and axe-core (`make web-tools`).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
import yaml
from sqlalchemy import Engine

from localdev.template import ROOT, TEMPLATE
from localdev.web_app import CONTENT_SECURITY_POLICY, WEB_DIR
from tests.support.live_server import LiveServer, live_server

BROWSER = os.environ.get("TASKLINE_BROWSER_TESTS") == "1"
needs_browser = pytest.mark.skipif(
    not BROWSER, reason="real-browser tests: run them with `make browser-test` (installs Chromium)"
)
PASSWORD = "correct horse battery"
SCREENSHOTS = ROOT / "docs" / "screenshots"


# --- helpers: the API over HTTP, as a second client beside the browser ----------------------


class Http:
    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        sent = dict(headers or {})
        data: bytes | None = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        got = {k.lower(): v for k, v in response.getheaders()}
        connection.close()
        try:
            return response.status, got, json.loads(raw) if raw else None
        except ValueError:
            return response.status, got, raw

    def account(self, email: str | None = None) -> tuple[str, str]:
        """A new account: (email, access token)."""
        email = email or f"web-{uuid.uuid4().hex[:10]}@example.com"
        status, _, _ = self.call("POST", "/users", {"email": email, "password": PASSWORD})
        assert status == 201
        return email, self.token(email)

    def token(self, email: str) -> str:
        status, _, body = self.call(
            "POST", "/token", form={"username": email, "password": PASSWORD}
        )
        assert status == 200, body
        return str(body["access_token"])

    def task(self, token: str, **fields: Any) -> dict[str, Any]:
        body = {"description": "a task", "category": "web", "deadline": "2031-01-01T09:00:00Z"}
        body.update(fields)
        status, _, created = self.call("POST", "/tasks", body, token)
        assert status == 201, created
        return dict(created)

    def tasks(self, token: str) -> list[dict[str, Any]]:
        status, _, body = self.call("GET", "/tasks?limit=100", token=token)
        assert status == 200
        return list(body)

    def has_lists(self) -> bool:
        status, _, _ = self.call("GET", "/lists")
        return status == 401  # the route exists (it wants a token); 404 when it does not


def iso(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


# --- no browser needed ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server() as running:
        yield running


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Http:
    return Http(server)


def test_make_run_serves_the_app_on_the_api_origin_with_the_security_headers(api: Http) -> None:
    status, headers, _ = api.call("GET", "/")
    assert (status, headers["location"]) == (302, "/app/")
    status, headers, body = api.call("GET", "/app/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b'<script type="module" src="main.js">' in body
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["strict-transport-security"].startswith("max-age=")
    status, headers, _ = api.call("GET", "/app/main.js")
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    cached = api.call("GET", "/app/main.js", headers={"If-None-Match": headers["etag"]})
    assert cached[0] == 304
    # Nothing outside web/, and the API is still the API.
    assert api.call("GET", "/app/../Makefile")[0] == 404
    assert api.call("GET", "/app/%2e%2e/Makefile")[0] == 404
    assert api.call("GET", "/tasks")[0] == 401


def test_the_deployed_headers_policy_is_the_local_one() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load(TEMPLATE.read_text(), Loader=Loader)
    policy = template["Resources"]["WebAppHeadersPolicy"]["Properties"][
        "ResponseHeadersPolicyConfig"
    ]
    security = policy["SecurityHeadersConfig"]
    assert security["ContentSecurityPolicy"]["ContentSecurityPolicy"] == CONTENT_SECURITY_POLICY
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert security["FrameOptions"]["FrameOption"] == "DENY"


def test_first_load_is_within_the_budget() -> None:
    from bench.web_size import BUDGET_BYTES, first_load

    sizes = first_load()
    total = sum(compressed for _, _, compressed in sizes)
    assert total <= BUDGET_BYTES, sizes


def test_no_data_goes_through_html_parsing_and_one_module_talks_to_the_api() -> None:
    sources = {
        path.relative_to(WEB_DIR).as_posix(): path.read_text() for path in WEB_DIR.rglob("*.js")
    }
    for name, text in sources.items():
        for forbidden in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ):
            assert forbidden not in text, f"{name} uses {forbidden}"
        if name != "api.js":
            assert "fetch(" not in text, name
            assert "XMLHttpRequest" not in text, name
    for text in [*sources.values(), (WEB_DIR / "index.html").read_text()]:
        assert "localStorage" not in text  # the refresh token lives in sessionStorage only
    assert "<style" not in (WEB_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", (WEB_DIR / "index.html").read_text())


# --- in the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not BROWSER:
        pytest.skip("real-browser tests: run them with `make browser-test` (installs Chromium)")
    from tests.support.browser import AXE_JS, chromium

    assert AXE_JS.exists(), "axe-core missing: `make web-tools` installs it"
    with chromium(network_log=True) as driver:
        yield driver


class App:
    """The page, as a person drives it: by labels, buttons and links."""

    def __init__(self, driver: Any, server: LiveServer) -> None:
        self.driver = driver
        self.base = f"{server.url}/app/"

    def by(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def wait(self, condition: Any, message: str = "", timeout: float = 20) -> Any:
        from tests.support.browser import wait_for

        return wait_for(condition, timeout, message)

    def heading(self) -> str:
        return str(self.by("main h1").text)

    def at(self, heading: str) -> None:
        self.wait(
            lambda: self.heading() == heading,
            f"the screen {heading!r} (now {self.page_text()[:300]!r})",
        )

    def page_text(self) -> str:
        try:
            return str(self.by("main").text)
        except Exception:
            return ""

    def open(self, route: str = "") -> None:
        self.driver.get(self.base + route)

    def go(self, route: str) -> None:
        """A warm navigation, as a click on a link of the app does."""
        self.driver.execute_script("location.hash = arguments[0]", route)

    def field(self, name: str, form: str = "main") -> Any:
        return self.by(f"{form} [name='{name}']")

    def fill(self, values: dict[str, str], form: str = "main") -> None:
        from selenium.webdriver.support.ui import Select

        for name, value in values.items():
            element = self.field(name, form)
            if element.tag_name == "select":
                Select(element).select_by_value(value)
            elif element.get_attribute("type") == "datetime-local":
                self.driver.execute_script(
                    "arguments[0].value = arguments[1];"
                    " arguments[0].dispatchEvent(new Event('change'))",
                    element,
                    value,
                )
            else:
                element.clear()
                element.send_keys(value)

    def button(self, text: str) -> Any:
        from selenium.webdriver.common.by import By

        found = [
            b
            for b in self.driver.find_elements(
                By.XPATH, f"//main//button[normalize-space()='{text}']"
            )
            if b.is_displayed()
        ]
        assert found, f"no button {text!r} on {self.page_text()[:400]!r}"
        return found[0]

    def click(self, text: str) -> None:
        self.button(text).click()

    def link(self, text: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.LINK_TEXT, text)

    def alert_text(self) -> str:
        return " ".join(
            a.text for a in self.all("main .alert, main [role=alert]") if a.is_displayed()
        )

    def sign_up(self, email: str) -> None:
        self.open("#/signup")
        self.at("Create your account")
        self.fill({"email": email, "password": PASSWORD})
        self.click("Create account")
        self.at("Tasks")

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.open("#/signin")
        self.at("Sign in")
        self.fill({"email": email, "password": password})
        self.click("Sign in")

    def sign_out(self) -> None:
        self.go("#/account")
        self.at("Account")
        self.click("Sign out")
        self.at("Sign in")

    def refresh_token(self) -> str | None:
        value = self.driver.execute_script("return sessionStorage.getItem('taskline.refresh')")
        return str(value) if value else None

    def task_row(self, description: str) -> Any:
        return self.wait(
            lambda: next(
                (
                    row
                    for row in self.all("li.task")
                    if row.find_element("css selector", ".task-link").text == description
                ),
                None,
            ),
            f"the task {description!r} in the list",
        )


@pytest.fixture
def app(browser: Any, server: LiveServer) -> Iterator[App]:
    from tests.support.browser import console_errors

    # A new tab: a new sessionStorage, so nobody is signed in (the old tab is closed).
    old = browser.current_window_handle
    browser.switch_to.new_window("tab")
    new = browser.current_window_handle
    browser.switch_to.window(old)
    browser.close()
    browser.switch_to.window(new)
    page = App(browser, server)
    page.open("#/signin")
    page.at("Sign in")
    console_errors(browser)
    yield page
    # No script error and no CSP violation on any screen the test went through (the API's own
    # 4xx answers are logged as failed resources: those are expected).
    errors = [e for e in console_errors(browser) if "Failed to load resource" not in e]
    assert not errors, errors


def email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


@needs_browser
def test_sign_up_stay_signed_in_across_reloads_and_sign_out(app: App, api: Http) -> None:
    address = email()
    app.sign_up(address)
    assert "Your account is ready" in app.page_text()
    assert app.refresh_token()
    assert "token" not in app.driver.current_url.lower()
    app.driver.refresh()
    app.at("Tasks")  # the refresh token in sessionStorage resumed the session
    app.go("#/account")
    app.at("Account")
    assert address in app.page_text()
    app.click("Sign out")
    app.at("Sign in")
    assert "signed out" in app.page_text()
    assert app.refresh_token() is None
    app.driver.refresh()
    app.at("Sign in")
    app.sign_in(address)
    app.at("Tasks")


@needs_browser
def test_rotating_refresh_tokens_are_silent_and_a_reused_one_signs_out(app: App, api: Http) -> None:
    address = email()
    app.sign_up(address)
    first = app.refresh_token()
    app.driver.refresh()
    app.at("Tasks")
    second = app.refresh_token()
    assert second
    assert second != first
    # Someone else exchanges the token the app holds: the app's next refresh is a reuse.
    status, _, _ = api.call(
        "POST", "/token", form={"grant_type": "refresh_token", "refresh_token": second}
    )
    assert status == 200
    app.driver.refresh()
    app.at("Sign in")
    assert app.refresh_token() is None


@needs_browser
def test_wrong_password_throttling_and_duplicate_sign_up_are_sentences(app: App, api: Http) -> None:
    address, _ = api.account()
    app.sign_in(address, "not the password")
    app.wait(
        lambda: "The email or password is not right." in app.alert_text(), "invalid_grant sentence"
    )
    for _ in range(5):
        # A click clears the form's alert at once; its answer fills it again.
        app.click("Sign in")
        app.wait(lambda: app.alert_text() and app.button("Sign in").is_enabled(), "answered")
    app.wait(
        lambda: "Too many sign-in attempts. Please wait" in app.alert_text(), "429 with its wait"
    )
    app.open("#/signup")
    app.at("Create your account")
    app.fill({"email": address.upper(), "password": PASSWORD})
    app.click("Create account")
    app.wait(lambda: "already" in app.alert_text().lower(), "409 detail")
    app.fill({"email": "not-an-email", "password": PASSWORD})
    app.click("Create account")
    app.wait(lambda: app.by("[data-error-for=email]").text, "the email field's own error")
    assert app.field("email").get_attribute("aria-invalid") == "true"
    assert not re.search(r"\b(422|409|429)\b", app.page_text())


@needs_browser
def test_tasks_are_ordered_marked_filtered_and_paged(app: App, api: Http) -> None:
    address, token = api.account()
    api.task(token, description="overdue one", deadline=iso(-3600))
    api.task(token, description="due soon one", deadline=iso(3 * 3600))
    api.task(token, description="finished one", deadline=iso(-7200), status="Done")
    for n in range(22):
        api.task(
            token, description=f"later {n:02}", category="bulk", deadline=iso(86400 * (10 + n))
        )
    app.sign_in(address)
    app.at("Tasks")
    app.wait(lambda: len(app.all("li.task")) == 20, "the first page (20)")
    names = [row.find_element("css selector", ".task-link").text for row in app.all("li.task")]
    assert names[:3] == ["finished one", "overdue one", "due soon one"]  # by deadline
    assert "overdue" in app.task_row("overdue one").get_attribute("class")
    assert "Overdue" in app.task_row("overdue one").text
    assert "Due soon" in app.task_row("due soon one").text
    assert "Overdue" not in app.task_row("finished one").text  # done is never overdue
    app.click("Show more tasks")
    app.wait(lambda: len(app.all("li.task")) == 25, "the second page, followed by Link")
    assert app.all("li.task")[-1].text.startswith("later 21")

    app.by("summary").click()
    app.fill({"status": "Done"})
    app.click("Apply filters")
    app.wait(
        lambda: (
            [r.find_element("css selector", ".task-link").text for r in app.all("li.task")]
            == ["finished one"]
        ),
        "status filter",
    )
    app.click("Clear filters")
    app.fill(
        {
            "category": "bulk",
            "due_before": time.strftime(
                "%Y-%m-%dT%H:%M", time.localtime(time.time() + 86400 * 11.5)
            ),
        }
    )
    app.click("Apply filters")

    def shown() -> list[str]:
        return [r.find_element("css selector", ".task-link").text for r in app.all("li.task")]

    app.wait(lambda: shown() == ["later 00", "later 01"], "category and due range")


@needs_browser
def test_create_edit_and_delete_a_task(app: App, api: Http) -> None:
    address, token = api.account()
    app.sign_in(address)
    app.at("Tasks")
    app.link("New task").click()
    app.at("New task")
    app.click("Create task")
    app.wait(lambda: app.by("[data-error-for=description]").text, "a required field's message")
    app.fill(
        {
            "description": "Write the report",
            "category": "work",
            "deadline": "2031-03-01T10:00",
            "remind_before": "0",
        }
    )
    app.click("Create task")
    app.wait(
        lambda: app.by("[data-error-for=remind_before]").text, "the API's 422 next to its field"
    )
    app.fill({"remind_before": "90"})
    app.click("Create task")
    app.at("Edit task")
    [created] = api.tasks(token)
    assert (created["description"], created["remind_before"]) == ("Write the report", 90)
    app.fill({"status": "In Progress", "category": "office"})
    app.click("Save changes")
    app.wait(lambda: "Changes saved." in app.alert_text())
    [saved] = api.tasks(token)
    assert (saved["status"], saved["category"]) == ("In Progress", "office")
    app.click("Delete task")
    app.click("Yes, delete it")
    app.at("Tasks")
    assert api.tasks(token) == []


@needs_browser
def test_a_create_retried_after_a_network_error_sends_the_same_idempotency_key(
    app: App, api: Http
) -> None:
    from tests.support.browser import sent_requests

    address, token = api.account()
    app.sign_in(address)
    app.at("Tasks")
    app.link("New task").click()
    app.at("New task")
    app.fill({"description": "Only once", "category": "net", "deadline": "2031-03-01T10:00"})
    driver = app.driver
    driver.execute_cdp_cmd("Network.enable", {})
    sent_requests(driver)
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    try:
        app.click("Create task")
        app.wait(
            lambda: "connection to Taskline failed" in app.alert_text(),
            "the network error sentence",
        )
    finally:
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
    app.click("Create task")
    app.at("Edit task")
    posts = [
        r for r in sent_requests(driver) if r["method"] == "POST" and r["url"].endswith("/tasks")
    ]
    keys = {r["headers"].get("idempotency-key") for r in posts}
    assert len(posts) == 2, posts
    assert len(keys) == 1, posts
    assert None not in keys, posts
    assert [t["description"] for t in api.tasks(token)] == ["Only once"]
    # The same key sent again (a retry whose answer was lost) gives the same task back.
    status, headers, _ = api.call(
        "POST",
        "/tasks",
        {
            "description": "Only once",
            "category": "net",
            "deadline": api.tasks(token)[0]["deadline"],
        },
        token,
        headers={"Idempotency-Key": keys.pop() or ""},
    )
    assert status == 201
    assert headers.get("idempotent-replayed") == "true"


@needs_browser
def test_a_stale_edit_shows_the_newer_version_and_lets_the_person_choose(
    app: App, api: Http
) -> None:
    address, token = api.account()
    task = api.task(token, description="Plan the trip", category="travel")
    app.sign_in(address)
    app.at("Tasks")
    app.go(f"#/tasks/{task['id']}")
    app.at("Edit task")
    # Someone (another device) changes it meanwhile.
    assert api.call("PATCH", f"/tasks/{task['id']}", {"category": "holidays"}, token)[0] == 200
    app.fill({"description": "Plan the trip to Lisbon"})
    app.click("Save changes")
    app.wait(lambda: app.by(".conflict").is_displayed(), "the 412 panel")
    conflict = app.by(".conflict").text
    assert "holidays" in conflict
    assert "Plan the trip to Lisbon" in conflict
    assert api.tasks(token)[0]["description"] == "Plan the trip"  # nothing overwritten
    app.click("Take their version")
    assert app.field("category").get_attribute("value") == "holidays"
    assert app.field("description").get_attribute("value") == "Plan the trip"
    # Again, and this time keep mine.
    assert api.call("PATCH", f"/tasks/{task['id']}", {"status": "In Progress"}, token)[0] == 200
    app.fill({"description": "Plan the trip to Porto"})
    app.click("Save changes")
    app.wait(lambda: app.by(".conflict").is_displayed(), "the 412 panel again")
    app.click("Keep my version")
    app.wait(lambda: api.tasks(token)[0]["description"] == "Plan the trip to Porto", "mine saved")
    saved = api.tasks(token)[0]
    assert (saved["category"], saved["status"]) == (
        "holidays",
        "In Progress",
    )  # theirs kept where I had not changed


@needs_browser
def test_a_description_full_of_html_is_shown_as_text(app: App, api: Http) -> None:
    address, token = api.account()
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    api.task(token, description=payload, category="<b>bold</b>")
    app.sign_in(address)
    app.at("Tasks")
    row = app.task_row(payload)
    assert "<b>bold</b>" in row.text
    assert app.all("main img, main script, main b") == []
    row.find_element("css selector", "a").click()
    app.at("Edit task")
    assert app.field("description").get_attribute("value") == payload
    assert app.driver.execute_script("return window.pwned === undefined")


@needs_browser
def test_reminder_preferences_and_the_calendar_feed(app: App, api: Http) -> None:
    address, token = api.account()
    app.sign_in(address)
    app.at("Tasks")
    app.go("#/reminders")
    app.at("Reminders")
    app.fill({"due_soon_minutes": "0"})
    app.click("Save preferences")
    app.wait(
        lambda: app.by("[data-error-for=due_soon_minutes]").text, "the 422 next to the lead time"
    )
    app.fill({"due_soon_minutes": "60"})
    app.field("overdue_enabled").click()
    app.click("Save preferences")
    app.wait(lambda: "Preferences saved." in app.alert_text())
    prefs = api.call("GET", "/users/me/notifications", token=token)[2]
    assert (prefs["due_soon_minutes"], prefs["overdue_enabled"]) == (60, False)

    app.click("Issue a calendar link")
    link = app.wait(lambda: app.by("#webcal-url").get_attribute("value"), "the webcal link")
    assert link.startswith("webcal://")
    assert "webcal" not in app.driver.current_url
    feed_path = "/calendar/" + link.rsplit("/calendar/", 1)[1]
    assert api.call("GET", feed_path)[0] == 200
    app.click("Revoke the calendar link")
    app.wait(lambda: "revoked" in app.page_text())
    assert api.call("GET", feed_path)[0] == 404
    app.click("Revoke the calendar link")
    app.wait(lambda: "no calendar link to revoke" in app.alert_text())


@needs_browser
def test_change_password_sign_out_everywhere_and_delete_the_account(app: App, api: Http) -> None:
    address, token = api.account()
    app.sign_in(address)
    app.at("Tasks")
    app.go("#/account")
    app.at("Account")
    app.fill({"current_password": "wrong password", "new_password": "a new long password"})
    app.click("Change password")
    app.wait(
        lambda: app.by("[data-error-for=current_password]").text,
        "wrong current password, next to it",
    )
    app.fill({"current_password": PASSWORD, "new_password": "a new long password"})
    app.click("Change password")
    app.wait(lambda: "Password changed." in app.alert_text())
    assert api.call("GET", "/users/me", token=token)[0] == 401  # the other session ended
    app.click("Sign out everywhere")
    app.at("Sign in")
    assert "every device" in app.page_text()
    app.sign_in(address, "a new long password")
    app.at("Tasks")
    app.go("#/account")
    app.at("Account")
    app.fill({"password": "a new long password"}, form="form.danger-zone")
    app.click("Delete my account")
    app.at("Sign in")
    assert "deleted" in app.page_text()
    assert (
        api.call("POST", "/token", form={"username": address, "password": "a new long password"})[0]
        == 400
    )


@needs_browser
def test_keyboard_only_sign_in_create_and_open_a_task(app: App, api: Http) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    address, token = api.account()
    keys = ActionChains(app.driver)

    def tab_to(predicate: Any, limit: int = 40) -> Any:
        for _ in range(limit):
            ActionChains(app.driver).send_keys(Keys.TAB).perform()
            active = app.driver.switch_to.active_element
            if predicate(active):
                return active
        raise AssertionError("not reachable with Tab")

    app.at("Sign in")
    tab_to(lambda e: e.get_attribute("name") == "email").send_keys(address)
    keys.send_keys(Keys.TAB, PASSWORD, Keys.ENTER).perform()
    app.at("Tasks")
    tab_to(lambda e: e.text == "New task").send_keys(Keys.ENTER)
    app.at("New task")
    tab_to(lambda e: e.get_attribute("name") == "description").send_keys("Typed with keys")
    ActionChains(app.driver).send_keys(Keys.TAB, "keys", Keys.TAB).perform()
    app.driver.switch_to.active_element.send_keys("03012031", Keys.ARROW_RIGHT, "1000AM")
    tab_to(lambda e: e.text == "Create task").send_keys(Keys.ENTER)
    app.at("Edit task")
    assert [t["description"] for t in api.tasks(token)] == ["Typed with keys"]
    tab_to(lambda e: e.text == "Back to tasks").send_keys(Keys.ENTER)
    app.at("Tasks")
    row = tab_to(lambda e: e.text == "Typed with keys")
    row.send_keys(Keys.ENTER)
    app.at("Edit task")


@needs_browser
def test_a_warm_navigation_requests_nothing_but_the_api(app: App, api: Http) -> None:
    from tests.support.browser import sent_requests

    address, token = api.account()
    api.task(token)
    app.sign_in(address)
    app.at("Tasks")
    app.driver.execute_cdp_cmd("Network.enable", {})
    sent_requests(app.driver)
    for link, heading in [
        ("Reminders", "Reminders"),
        ("Account", "Account"),
        ("Lists", "Lists"),
        ("Invitations", "Invitations"),
        ("Tasks", "Tasks"),
    ]:
        app.by(f"#nav a[href='#/{link.lower()}']").click()
        app.at(heading)
    app.task_row("a task").find_element("css selector", "a").click()
    app.at("Edit task")
    time.sleep(0.5)
    paths = [urllib.parse.urlparse(r["url"]).path for r in sent_requests(app.driver)]
    assert paths, "the screens load their data from the API"
    assert not [p for p in paths if p.startswith("/app")], paths


# --- every screen: axe-core, 375 px, screenshots -------------------------------------------


def _screens(app: App, api: Http, shoot: Any, verify: Any = None) -> None:
    """Visit every screen with content in it, calling shoot(name) on each. `verify(email)`
    confirms an address (then the Invitations screen shows one)."""
    shoot("signin")
    app.open("#/signup")
    app.at("Create your account")
    shoot("signup")
    address, token = api.account()
    api.task(token, description="Send the invoices", category="work", deadline=iso(-5400))
    api.task(token, description="Book the dentist", category="health", deadline=iso(5 * 3600))
    task = api.task(
        token,
        description="Renew the passport",
        category="admin",
        deadline=iso(86400 * 20),
        remind_before=1440,
    )
    api.task(
        token,
        description="Water the plants",
        category="home",
        deadline=iso(86400 * 2),
        status="In Progress",
    )
    lists = api.has_lists()
    list_id = None
    if lists:
        status, _, created = api.call("POST", "/lists", {"name": "Household"}, token)
        assert status == 201, created
        list_id = created["id"]
        if "list_id" in task:  # tasks can be in lists on this API
            api.task(
                token,
                description="Fix the tap",
                category="home",
                deadline=iso(86400 * 3),
                list_id=list_id,
            )
        api.call(
            "POST",
            f"/lists/{list_id}/invitations",
            {"email": "friend@example.com", "role": "editor"},
            token,
        )
    if lists and verify:
        verify(address)
        _, friend = api.account()
        _, _, club = api.call("POST", "/lists", {"name": "Book club"}, friend)
        invitation = {"email": address, "role": "viewer"}
        assert api.call("POST", f"/lists/{club['id']}/invitations", invitation, friend)[0] == 201
    app.sign_in(address)
    app.at("Tasks")
    app.task_row("Send the invoices")
    shoot("tasks")
    app.by("summary").click()
    shoot("tasks-filters")
    app.go("#/tasks/new")
    app.at("New task")
    shoot("task-new")
    app.go(f"#/tasks/{task['id']}")
    app.at("Edit task")
    api.call("PATCH", f"/tasks/{task['id']}", {"category": "papers"}, token)
    app.fill({"description": "Renew the passport before June"})
    app.click("Save changes")
    app.wait(lambda: app.by(".conflict").is_displayed())
    shoot("task-conflict")
    app.go("#/lists")
    app.at("Lists")
    shoot("lists")
    if list_id:
        app.go(f"#/lists/{list_id}")
        app.at("Household")
        shoot("list")
    app.go("#/invitations")
    app.at("Invitations")
    shoot("invitations")
    app.go("#/reminders")
    app.at("Reminders")
    app.click("Issue a calendar link")
    app.wait(lambda: app.by("#webcal-url").get_attribute("value"))
    shoot("reminders")
    app.go("#/account")
    app.at("Account")
    shoot("account")


@needs_browser
def test_axe_core_finds_no_violation_on_any_screen(
    app: App, api: Http, server: LiveServer, admin_engine: Engine
) -> None:
    from tests.support.browser import axe_violations, describe

    found: dict[str, str] = {}
    scanned: list[str] = []

    def scan(name: str) -> None:
        time.sleep(0.2)
        violations = axe_violations(app.driver)
        scanned.append(name)
        # No value leaked into the page as JavaScript's text for nothing.
        assert not re.search(r"\b(null|undefined|NaN)\b|\[object ", app.page_text()), name
        if violations:
            found[name] = describe(violations)

    _screens(app, api, scan, lambda address: _verify_email(server, api, address, admin_engine))
    assert not found, json.dumps(found, indent=1)
    assert len(scanned) >= (11 if api.has_lists() else 10), scanned


@needs_browser
def test_every_screen_fits_375_px(server: LiveServer, api: Http, admin_engine: Engine) -> None:
    from tests.support.browser import chromium

    with chromium(375, 812) as driver:
        app = App(driver, server)
        app.open("#/signin")
        app.at("Sign in")
        overflowing: dict[str, int] = {}

        def check(name: str) -> None:
            width = driver.execute_script("return document.documentElement.scrollWidth")
            if width > 375:
                overflowing[name] = width
            assert app.by("main h1").is_displayed()

        _screens(app, api, check, lambda a: _verify_email(server, api, a, admin_engine))
        assert not overflowing, overflowing


@pytest.mark.skipif(os.environ.get("TASKLINE_SCREENSHOTS") != "1", reason="make screenshots")
@needs_browser
def test_render_the_screenshots(server: LiveServer, api: Http, admin_engine: Engine) -> None:
    from tests.support.browser import chromium

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, suffix in ((1100, ""), (375, "-375")):
        with chromium(width, 860) as driver:
            app = App(driver, server)
            app.open("#/signin")
            app.at("Sign in")
            wanted = (
                {"signin", "tasks", "task-conflict", "list", "invitations", "reminders"}
                if not suffix
                else {"tasks"}
            )

            def shoot(name: str, wanted: set[str] = wanted, suffix: str = suffix) -> None:
                if name in wanted:
                    time.sleep(0.3)
                    driver.execute_script("document.activeElement && document.activeElement.blur()")
                    driver.save_screenshot(str(SCREENSHOTS / f"{name}{suffix}.png"))

            _screens(app, api, shoot, lambda a: _verify_email(server, api, a, admin_engine))


# --- two people sharing a list ----------------------------------------------------------------


def _verify_email(server: LiveServer, api: Http, address: str, admin_engine: Engine) -> None:
    """The person confirms their address: by the link `make run` logged for it (no sender
    configured: every email is written to the log, with its links), or, on an API without
    the verification routes yet, as that link would (the account's email_verified_at)."""
    _, _, probe = api.call("POST", "/verify-email/x")
    if isinstance(probe, dict) and str(probe.get("type", "")).endswith("route-not-found"):
        with admin_engine.begin() as connection:
            done = connection.execute(
                sqlalchemy.text(
                    "UPDATE users SET email_verified_at = now() WHERE lower(email) = :e"
                ),
                {"e": address.lower()},
            )
            assert done.rowcount == 1
        return
    found = None
    for _ in range(50):
        lines = [
            line
            for line in server.text().splitlines()
            if address in line and "/verify-email/" in line
        ]
        if lines:
            found = re.findall(r"/verify-email/([A-Za-z0-9._~%-]+)", lines[-1])
            if found:
                break
        time.sleep(0.2)
    assert found, f"no verification link for {address} in the log"
    status, _, body = api.call("POST", f"/verify-email/{found[-1]}")
    assert status in (200, 204), body


def _member_row(app: App, address: str) -> Any:
    return next(r for r in app.all("tr[data-user-id]") if address in r.text)


@needs_browser
def test_two_people_share_a_list(
    app: App, api: Http, server: LiveServer, admin_engine: Engine
) -> None:
    from selenium.webdriver.support.ui import Select

    from tests.support.browser import chromium

    if not api.has_lists():
        pytest.skip("this API has no shared lists yet (GET /lists is an unknown route)")
    a_email, a_token = api.account()
    tasks_in_lists = "list_id" in api.task(a_token, description="personal one")
    b_email = email()
    app.sign_in(a_email)
    app.at("Tasks")
    # A creates a list and invites B.
    app.go("#/lists")
    app.at("Lists")
    app.fill({"name": "Family"})
    app.click("Create list")
    app.at("Family")
    app.fill({"email": b_email, "role": "editor"})
    app.click("Send invitation")
    app.wait(lambda: "Pending invitations" in app.page_text(), "the invitations section")
    app.wait(lambda: b_email in app.page_text(), "the pending invitation")
    task_url = None
    if tasks_in_lists:  # A creates a task in the list
        app.go("#/tasks/new")
        app.at("New task")
        app.fill(
            {"description": "Buy the present", "category": "family", "deadline": "2031-05-01T18:00"}
        )
        Select(app.field("list_id")).select_by_visible_text("Family")
        app.click("Create task")
        app.at("Edit task")
        task_url = app.driver.current_url

    with chromium() as other:
        b = App(other, server)
        b.sign_up(b_email)
        _verify_email(server, api, b_email, admin_engine)
        b.go("#/invitations")
        b.at("Invitations")
        b.wait(lambda: "Family" in b.page_text(), "A's invitation")
        assert a_email in b.page_text()
        b.click("Accept")
        b.at("Family")
        assert "Your role: Editor" in b.page_text()
        # B, an editor, renames the list; A sees it.
        b.fill({"name": "Family plans"})
        b.click("Rename")
        b.at("Family plans")
        app.go("#/lists")
        app.at("Lists")
        app.wait(lambda: "Family plans" in app.page_text(), "A sees B's rename")
        assert "2 members" in app.page_text()

        if task_url:  # B sees and edits A's task; A sees the change
            b.go("#/tasks")
            b.at("Tasks")
            b.task_row("Buy the present").find_element("css selector", "a").click()
            b.at("Edit task")
            b.fill({"description": "Buy the present and a card"})
            b.click("Save changes")
            b.wait(lambda: "Changes saved." in b.alert_text(), "B's edit saved")
            app.driver.get(task_url)
            app.driver.refresh()
            app.at("Edit task")
            app.wait(
                lambda: (
                    app.field("description").get_attribute("value") == "Buy the present and a card"
                ),
                "A sees B's change",
            )
            b.fill({"description": "Buy only a card"})
        else:  # B keeps the rename form open
            b.fill({"name": "Our family"})

        # A makes B a viewer while B's form is open: B's save is refused, in a sentence.
        app.go("#/lists")
        app.at("Lists")
        app.link("Family plans").click()
        app.at("Family plans")
        Select(_member_row(app, b_email).find_element("css selector", "select")).select_by_value(
            "viewer"
        )
        _member_row(app, b_email).find_element(
            "xpath", ".//button[normalize-space()='Change role']"
        ).click()
        app.wait(lambda: "Viewer" in _member_row(app, b_email).text, "B is a viewer")
        b.click("Save changes" if task_url else "Rename")
        b.wait(lambda: b.alert_text() and "Changes saved." not in b.alert_text(), "the 403")
        assert not re.search(r"\b403\b", b.alert_text())
        # Opened again, nothing is editable for B.
        other.refresh()
        if task_url:
            b.at("Task")
            assert "viewer" in b.page_text()
            assert b.all("main form, main textarea, main button") == []
        else:
            b.at("Family plans")
            assert "Your role: Viewer" in b.page_text()
            assert b.all("main input[name=name]") == []
            assert [x.text for x in b.all("main button")] == ["Leave list"]
        # B leaves; A sees one member again.
        if not task_url:
            b.click("Leave list")
            b.at("Lists")
            assert "Family plans" not in b.page_text()
            app.driver.refresh()
            app.at("Family plans")
            assert b_email not in app.page_text()


@needs_browser
def test_an_unverified_address_is_asked_to_confirm_and_can_resend(
    app: App, api: Http, server: LiveServer, admin_engine: Engine
) -> None:
    address, token = api.account()
    me = api.call("GET", "/users/me", token=token)[2]
    if "email_verified" not in me:
        pytest.skip("this API has no email verification yet")
    app.sign_in(address)
    app.at("Tasks")
    banner = app.wait(lambda: app.by("#banner"), "the banner")
    assert banner.is_displayed()
    assert "confirm your email address" in banner.text
    banner.find_element("xpath", ".//button[normalize-space()='Send the link again']").click()
    app.wait(lambda: app.by("#banner [role=status]").text, "what the resend did")
    assert not re.search(r"\b(2\d\d|4\d\d)\b", app.by("#banner [role=status]").text)
    _verify_email(server, api, address, admin_engine)
    app.driver.refresh()
    app.at("Tasks")
    assert not app.by("#banner").is_displayed()
