"""A real browser (Debian's headless Chromium, through chromedriver and selenium) against
`make run`'s server: the sample web client (examples/web/) from another origin, and Swagger UI.

`make browser-test` installs Chromium and runs these (TASKLINE_BROWSER_TESTS=1); CI runs it.
In a plain `make test` they are skipped, with that reason.
"""

from __future__ import annotations

import functools
import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from localdev.template import ROOT, TEMPLATE
from tests.support.browser import chromium
from tests.support.live_server import LiveServer, in_thread, live_server

pytestmark = pytest.mark.skipif(
    os.environ.get("TASKLINE_BROWSER_TESTS") != "1",
    reason="real-browser tests: run them with `make browser-test` (installs Chromium)",
)

PAGE_DIR = ROOT / "examples" / "web"
# The CORS lists template.yaml had before the cross-origin contract was declared in one place.
OLD_CORS_LISTS = (
    "AllowHeaders: [authorization, content-type]\n",
    "ExposeHeaders: [location, link, retry-after, www-authenticate]\n",
)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """examples/web/ served from its own origin (another port than the API's)."""
    handler = functools.partial(_QuietFiles, directory=str(PAGE_DIR))
    with in_thread(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(1280, 2000) as driver:
        yield driver


@pytest.fixture(scope="module")
def api(database_url: str, page_origin: str) -> Iterator[LiveServer]:
    with live_server(CORS_ALLOWED_ORIGINS=page_origin) as server:
        yield server


def run_page(browser: Any, page_origin: str, api_url: str) -> tuple[str, list[dict[str, str]]]:
    """Load the page, let it run every step, and return its status line and its steps."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    query = urllib.parse.urlencode({"api": api_url, "run": "1"})
    browser.get(f"{page_origin}/index.html?{query}")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda _: status.text not in ("not run", "running"))
    steps = [
        {"step": li.get_attribute("data-step"), "ok": li.get_attribute("data-ok"), "text": li.text}
        for li in browser.find_elements(By.CSS_SELECTOR, "#steps li")
    ]
    return status.text, steps


def test_a_page_on_another_origin_uses_every_feature_of_the_contract(
    browser: Any, page_origin: str, api: LiveServer
) -> None:
    status, steps = run_page(browser, page_origin, api.url)
    assert status == "passed", json.dumps(steps, indent=1)
    assert [s["step"] for s in steps] == [
        "sign-up",
        "token",
        "401 challenge",
        "create",
        "idempotent retry",
        "read ETag",
        "conditional update",
        "stale tag",
        "second task",
        "page 1",
        "page 2",
        "delete",
        "gone",
    ]
    assert all(s["ok"] == "true" for s in steps)


def test_the_same_page_fails_on_the_old_cors_lists(
    browser: Any, page_origin: str, database_url: str, tmp_path: Path
) -> None:
    text = TEMPLATE.read_text()
    start = text.index("AllowHeaders:")
    end = text.index("MaxAge:")
    old = tmp_path / "template.yaml"
    old.write_text(
        text[:start] + "".join(f"{line}          " for line in OLD_CORS_LISTS) + text[end:]
    )
    with live_server(TASKLINE_TEMPLATE=str(old), CORS_ALLOWED_ORIGINS=page_origin) as server:
        status, steps = run_page(browser, page_origin, server.url)
    assert status.startswith("failed"), json.dumps(steps, indent=1)
    passed = [s["step"] for s in steps if s["ok"] == "true"]
    assert passed == ["sign-up", "token", "401 challenge"], json.dumps(steps, indent=1)
    # Idempotency-Key is not an allowed header there: the browser refuses to send the request.
    assert steps[-1]["ok"] == "false"
    assert "Failed to fetch" in steps[-1]["text"], steps[-1]


def test_swagger_ui_authorizes_with_the_password_flow_and_lists_tasks(
    browser: Any, api: LiveServer
) -> None:
    import http.client

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    email, password = "swagger@example.com", "correct horse battery"
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    body = json.dumps({"email": email, "password": password})
    connection.request("POST", "/users", body=body, headers={"Content-Type": "application/json"})
    assert connection.getresponse().status == 201
    connection.close()

    wait = WebDriverWait(browser, 30)
    browser.get(f"{api.url}/docs")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
    wait.until(ec.visibility_of_element_located((By.ID, "oauth_username"))).send_keys(email)
    browser.find_element(By.ID, "oauth_password").send_keys(password)
    oauth = browser.find_element(
        By.XPATH, "//input[@id='oauth_username']/ancestor::div[contains(@class,'auth-container')]"
    )
    oauth.find_element(By.CSS_SELECTOR, "button.authorize").click()
    wait.until(
        lambda driver: oauth.find_elements(By.XPATH, ".//button[normalize-space()='Logout']")
    )
    oauth.find_element(By.CSS_SELECTOR, "button.btn-done").click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))

    summary = wait.until(
        ec.element_to_be_clickable(
            (
                By.XPATH,
                "//div[contains(@class,'opblock-get')][.//*[@data-path='/tasks']]"
                "//*[contains(@class,'opblock-summary-control')"
                " or contains(@class,'opblock-summary')]",
            )
        )
    )
    summary.click()
    operation = browser.find_element(
        By.XPATH, "//div[contains(@class,'opblock-get')][.//*[@data-path='/tasks']]"
    )
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, "button.try-out__btn"))
    operation.find_element(By.CSS_SELECTOR, "button.try-out__btn").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, "button.execute"))
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait.until(
        lambda _: operation.find_elements(
            By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"
        )
    )
    assert status[0].text.strip().startswith("200"), operation.text
    shown = operation.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
    assert json.loads(shown) == []
    access_log = api.text()
    assert '"POST /token HTTP/1.1" 200' in access_log
    assert re.search(r'"GET /tasks(\?\S*)? HTTP/1.1" 200', access_log)  # with the bearer token
