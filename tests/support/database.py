"""Database settings the tests change for a while and put back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from tests.support.caches import clear_caches
from tests.support.environment import DEFAULT_STATEMENT_TIMEOUT_MS, TEST_APP_ROLE


@contextmanager
def login_statement_timeout(admin_engine: Engine, milliseconds: int) -> Iterator[None]:
    """Give the functions' login another statement timeout as its role default (where the
    migration function sets it in AWS), for connections opened inside the block."""
    from taskline.migrate import set_session_defaults

    set_session_defaults(admin_engine, TEST_APP_ROLE, milliseconds)
    clear_caches()
    try:
        yield
    finally:
        set_session_defaults(admin_engine, TEST_APP_ROLE, DEFAULT_STATEMENT_TIMEOUT_MS)
        clear_caches()
