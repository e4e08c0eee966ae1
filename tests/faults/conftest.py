"""Fixtures of the database fault and TLS tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine

from localdev import database


@pytest.fixture(scope="session")
def tls_server() -> Iterator[Any]:
    """A TLS-only PostgreSQL (a stand-in for RDS Proxy) with a migrated `taskline` database.

    Started on first use only: the tests of the AWS code paths need it, the rest do not.
    """
    from tests.support import tls_postgres

    server = tls_postgres.start(tls_postgres.CertificateAuthority.create("Taskline Test CA"))
    try:
        from taskline.db import sqlalchemy_url
        from taskline.migrate import upgrade

        database.ensure_database(server.superuser_url(), "taskline")
        engine = create_engine(sqlalchemy_url(server.superuser_url("taskline")))
        upgrade(engine)
        engine.dispose()
        yield server
    finally:
        server.stop()
