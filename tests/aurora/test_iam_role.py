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
