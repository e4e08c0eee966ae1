"""`make smoke` (localdev/smoke.py) through a local server: every step but the CORS preflight
(which needs an allowed origin), the shared list with its second throwaway account included,
and nothing left behind."""

from __future__ import annotations

from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from localdev.smoke import Api, Smoke
from tests.support.live_server import serving


def test_the_smoke_steps_pass_and_leave_nothing_behind(
    gateway: LocalGateway, admin_engine: Engine
) -> None:
    with serving(gateway) as base_url:
        smoke = Smoke(Api(base_url), origin=None)
        for title, step in smoke.steps():
            if step == smoke.preflight:
                continue
            step()  # raises SmokeFailure with the reason
            assert title
    with admin_engine.begin() as connection:
        for table in ("users", "lists", "list_members", "list_invitations", "tasks"):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
