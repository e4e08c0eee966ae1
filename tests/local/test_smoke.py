"""`make smoke` as its help line writes it: API_URL required, ORIGIN optional."""

from __future__ import annotations

import pytest

from localdev.gateway import LocalGateway
from localdev.smoke import run
from tests.support.live_server import serving


def test_smoke_without_origin_skips_the_cors_step_with_a_note_and_passes(
    gateway: LocalGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(gateway) as url:
        status = run(url, None)
    output = capsys.readouterr().out
    assert status == 0, output
    assert "CORS preflight from an allowed origin: skipped" in output
    assert "ORIGIN=" in output  # how to run it
    assert "Smoke test passed" in output
    assert "delete the account: ok" in output


def test_smoke_with_an_allowed_origin_checks_cors(
    gateway: LocalGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gateway.cors is not None
    with serving(gateway) as url:
        status = run(url, gateway.cors.origins[0])
    output = capsys.readouterr().out
    assert status == 0, output
    assert "CORS preflight from an allowed origin: ok" in output
