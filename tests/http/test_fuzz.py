"""Property-based fuzzing of every operation in the OpenAPI document, with Schemathesis.

Requests are generated from shared/taskline/api/openapi.json (valid ones, invalid ones, boundary
values, undeclared methods, missing or broken credentials) and sent in process through the
local API Gateway to the real handlers, or over loopback to `make run`'s server when
FUZZ_BASE_URL is set (`make fuzz` does both). Every default check runs on every response: no
5xx, status code, content type, headers and body as documented, valid input accepted, invalid
input rejected, 405 with `Allow` for undeclared methods, 401 when credentials are left out or
broken. Where a check is narrowed, the reason is written next to it: in
tests/http/schemathesis.toml, and below for the rules the document states in prose (the
generators of valid values).

FUZZ_MAX_EXAMPLES (default 25) and FUZZ_SEED (default fixed) bound the run.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import schemathesis
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from localdev.gateway import LocalGateway
from localdev.template import ROOT, load
from localdev.wsgi import wsgi_app
from taskline.domain import MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS
from tests.support.api import ApiClient

OPENAPI = ROOT / "shared" / "taskline" / "api" / "openapi.json"
CONFIG = SchemathesisConfig.from_path(ROOT / "tests" / "http" / "schemathesis.toml")
BASE_URL = os.environ.get("FUZZ_BASE_URL") or None  # e.g. http://127.0.0.1:3105 for a live server
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
PASSWORD = "correct horse battery"
VALID_KEY = re.compile(r"[!-~](?:[ -~]*[!-~])?")

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # no timing in tests; speed is bench/'s business
    database=None,  # the same seed gives the same run, whatever ran before
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# The document says "at least 8 characters and at most 72 bytes in UTF-8"; JSON Schema can only
# count characters, so valid passwords are generated here with the byte limit applied too.
schemathesis.openapi.format(
    "password",
    st.text(min_size=MIN_PASSWORD_CHARS, max_size=MAX_PASSWORD_BYTES).filter(
        lambda text: len(text.encode("utf-8", "surrogatepass")) <= MAX_PASSWORD_BYTES
    ),
)

# Sign-up refuses special-use domains (.test, .local, ...), as the document says in prose; JSON
# Schema's `email` format allows them, so valid addresses come from Hypothesis' public-TLD ones.
schemathesis.openapi.format("email", st.emails())

# Timestamps must fall within the years 1-9999 in UTC (Python's range; everything is stored in
# UTC), which the document says in prose: 0001-01-01T00:19:01+22:04 is in the year 0 in UTC.
# JSON Schema's `date-time` format cannot say so, so valid timestamps are generated a day inside.
schemathesis.openapi.format(
    "date-time",
    st.builds(
        lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    ).map(lambda moment: moment.isoformat().replace("+00:00", "Z")),
)

GATEWAY = LocalGateway(load())
schema = schemathesis.openapi.from_path(OPENAPI, config=CONFIG)
if BASE_URL is None:
    schema.app = wsgi_app(GATEWAY)


# Setup (sign-up and login) comes from another source address than the generated requests.
# Those include failed logins and wrong passwords on the account routes, which login throttling
# counts per source address: past LOGIN_MAX_FAILURES_PER_IP they get 429 (documented on every
# route that can answer it, and checked like any other status), and the setup of the next
# example must not be locked out by them. On a live loopback server the setup binds to
# 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux); in process the event carries the address.
SETUP_SOURCE_IP = "192.0.2.10"  # TEST-NET-1 (RFC 5737)
SETUP_LOOPBACK_IP = "127.0.0.2"


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connections from a chosen local address."""

    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def _setup_session() -> requests.Session:
    session = requests.Session()
    host = urlsplit(BASE_URL or "").hostname or ""
    if host.startswith("127.") or host == "localhost":
        session.mount("http://", _FromAddress(SETUP_LOOPBACK_IP))
    return session


def fresh_token() -> str:
    """A bearer token of a brand-new account, so every generated request is judged on its own."""
    email = f"fuzz-{uuid.uuid4().hex}@example.com"
    if BASE_URL is None:
        client = ApiClient(GATEWAY)
        assert client.post("/users", json_body={"email": email, "password": PASSWORD}).status == 201
        issued = client.post(
            "/token",
            json_body={"email": email, "password": PASSWORD},
            source_ip=SETUP_SOURCE_IP,
        )
        assert issued.status == 200, issued.body
        access: str = issued.json()["access_token"]
        return access
    with _setup_session() as session:
        signed_up = session.post(
            f"{BASE_URL}/users", json={"email": email, "password": PASSWORD}, timeout=30
        )
        assert signed_up.status_code == 201, signed_up.text
        issued_live = session.post(
            f"{BASE_URL}/token", data={"username": email, "password": PASSWORD}, timeout=30
        )
    assert issued_live.status_code == 200, issued_live.text
    token: str = issued_live.json()["access_token"]
    return token


def call_kwargs(token: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    if BASE_URL is not None:
        kwargs["base_url"] = BASE_URL
    return kwargs


@schema.parametrize()
@seed(SEED)
@FUZZ_SETTINGS
def test_operation(case: schemathesis.Case[Any]) -> None:
    """Each operation on its own: examples, boundary values, then random valid and invalid input."""
    case.call_and_validate(**call_kwargs(fresh_token()))


@seed(SEED)
class TaskWorkflows(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences that follow the document's links (create a task, then read, change, delete it),
    so the checks also see existing tasks: a deleted one must be gone, a created one there."""

    def setup(self) -> None:
        self.kwargs = call_kwargs(fresh_token())

    def before_call(self, case: schemathesis.Case[Any]) -> None:
        # Hypothesis likes to repeat small values, so two creates in one sequence often share an
        # Idempotency-Key with different bodies, which must get 422 by design (that rule has its
        # own tests in test_idempotency.py). A valid key is made unique per request here, so
        # these sequences keep checking that valid creates succeed; invalid keys stay as they are.
        key = case.headers.get("idempotency-key")
        if isinstance(key, str) and VALID_KEY.fullmatch(key) and len(key) <= 255:
            case.headers["idempotency-key"] = uuid.uuid4().hex

    def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
        return dict(self.kwargs)

    def validate_response(
        self,
        response: schemathesis.Response,
        case: schemathesis.Case[Any],
        additional_checks: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # As call_and_validate does: the checks must know which headers were the credentials,
        # so that `ignored_auth` retries without them and with broken ones and expects 401.
        case.validate_response(
            response,
            additional_checks=additional_checks,
            headers=kwargs.get("headers"),
            transport_kwargs=kwargs,
            recorder=self.recorder,
        )


def test_workflows() -> None:
    TaskWorkflows.run(
        settings=settings(
            FUZZ_SETTINGS, max_examples=max(5, MAX_EXAMPLES // 2), stateful_step_count=6
        )
    )
