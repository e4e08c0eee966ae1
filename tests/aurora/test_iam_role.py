"""The migration function provisions the API functions' login for IAM database authentication
(DB_APP_IAM_USER): no password (a token is the only way in), the data-only privileges, the
role defaults, and rds_iam where the server has it."""

from __future__ import annotations

import os

from sqlalchemy import Engine, text


def test_an_iam_role_has_no_password_and_the_app_roles_privileges(admin_engine: Engine) -> None:
    from taskline.migrate import provision_app_role

    role = f"taskline_iam_probe_{os.getpid()}"
    try:
        provision_app_role(admin_engine, role, None, 5000, 60)
        provision_app_role(admin_engine, role, None, 5000, 60)  # idempotent
        with admin_engine.connect() as connection:
            password = connection.execute(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
            ).scalar_one()
            can_write = connection.execute(
                text("SELECT has_table_privilege(:r, 'tasks', 'INSERT')"), {"r": role}
            ).scalar_one()
            can_migrate = connection.execute(
                text("SELECT has_table_privilege(:r, 'alembic_version', 'UPDATE')"), {"r": role}
            ).scalar_one()
            defaults = set(
                connection.execute(
                    text(
                        "SELECT unnest(setconfig) FROM pg_db_role_setting s "
                        "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = :r"
                    ),
                    {"r": role},
                ).scalars()
            )
        assert password is None
        assert can_write
        assert not can_migrate
        assert "idle_session_timeout=60000" in defaults
    finally:
        with admin_engine.begin() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')


def test_a_role_given_a_password_again_leaves_rds_iam(admin_engine: Engine) -> None:
    """A stack moved off starter: the role gets its password from AppDatabaseSecret again, and
    must leave rds_iam (a member of it logs in with a token only, so its password would be
    refused). rds_iam is created here, as RDS and Aurora have it."""
    from taskline.migrate import provision_app_role

    role = f"taskline_switch_probe_{os.getpid()}"
    with admin_engine.begin() as connection:
        if not connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'")
        ).scalar():
            connection.exec_driver_sql("CREATE ROLE rds_iam NOLOGIN")
    member = text("SELECT pg_has_role(:r, 'rds_iam', 'MEMBER')")
    try:
        provision_app_role(admin_engine, role, None, 5000, 60)  # starter
        with admin_engine.connect() as connection:
            assert connection.execute(member, {"r": role}).scalar_one() is True
        provision_app_role(admin_engine, role, "app-Password-0123456789", 5000, 60)  # standard
        with admin_engine.connect() as connection:
            assert connection.execute(member, {"r": role}).scalar_one() is False
    finally:
        with admin_engine.begin() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
