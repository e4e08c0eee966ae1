"""Headless Chromium (Debian's chromium and chromium-driver, `make browser-install`) through
selenium, for the web app's journeys (tests/local/test_web_app.py) and `make screenshots`.

axe-core comes from npm, pinned, installed by `make web-tools` into web-tools/node_modules
(git-ignored): the tests inject it into the page to scan each screen.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localdev.template import ROOT

AXE_JS = ROOT / "web-tools" / "node_modules" / "axe-core" / "axe.min.js"


@contextmanager
def chromium(width: int = 1280, height: int = 900, network_log: bool = False) -> Iterator[Any]:
    """A fresh headless Chromium (its own profile: its own storage, a second person)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium")
    driver_binary = shutil.which("chromedriver")
    assert binary, "Chromium missing: `make browser-install` installs it"
    assert driver_binary, "chromedriver missing: `make browser-install` installs it"
    profile = tempfile.mkdtemp(prefix="taskline-web-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    # The browser's own log: console errors (CSP violations among them) and, when asked, every
    # request the page sent with its headers (the Idempotency-Key retry test reads them).
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if network_log else {})}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_binary))
    driver.set_page_load_timeout(60)
    if width < 500:
        # Headless windows keep a minimum width; emulate the phone's viewport exactly.
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True},
        )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Callable[[], Any], timeout: float = 20, message: str = "") -> Any:
    """Poll until `condition()` is truthy (exceptions count as not yet); its value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:
            last = error
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting: {message} (last error: {last!r})")


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2.1 A and AA, best practices)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(Path(AXE_JS).read_text())
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
          .then((r) => done(JSON.stringify(r.violations)))
          .catch((e) => done(JSON.stringify([{id: 'axe-error', description: String(e)}])));
        """
    )
    violations: list[dict[str, Any]] = json.loads(result)
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        targets = [node.get("target") for node in violation.get("nodes", [])][:3]
        lines.append(f"{violation['id']}: {violation.get('description', '')} at {targets}")
    return "\n".join(lines)


def console_errors(driver: Any) -> list[str]:
    """Severe console entries since the last call (script errors, CSP violations)."""
    return [
        entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"
    ]


def sent_requests(driver: Any) -> list[dict[str, Any]]:
    """Requests the page sent since the last call: {method, url, headers} (network_log=True)."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            request = message["params"]["request"]
            sent.append(
                {
                    "method": request["method"],
                    "url": request["url"],
                    "headers": {k.lower(): v for k, v in request.get("headers", {}).items()},
                }
            )
    return sent
