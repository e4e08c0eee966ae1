"""Shared lists made straight in the database, the way the lists' routes leave them (a list, its
owner's member row, members), for tests of tasks in lists that do not go through those routes."""

from __future__ import annotations

from sqlalchemy import Engine, text


class Lists:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, owner_id: int, name: str = "Household") -> int:
        with self.engine.begin() as connection:
            list_id = int(
                connection.execute(
                    text("INSERT INTO lists (name, owner_id) VALUES (:n, :o) RETURNING id"),
                    {"n": name, "o": owner_id},
                ).scalar_one()
            )
            connection.execute(
                text("INSERT INTO list_members (list_id, user_id, role) VALUES (:l, :u, 'owner')"),
                {"l": list_id, "u": owner_id},
            )
        return list_id

    def add(self, list_id: int, user_id: int, role: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO list_members (list_id, user_id, role) VALUES (:l, :u, :r)"),
                {"l": list_id, "u": user_id, "r": role},
            )
        self._refresh(list_id)

    def remove(self, list_id: int, user_id: int) -> None:
        """As the lists' service removes a member: the row goes (the database clears their
        assignments), and the list's recipients are brought up to date."""
        with self.engine.begin() as connection:
            connection.execute(
                text("DELETE FROM list_members WHERE list_id = :l AND user_id = :u"),
                {"l": list_id, "u": user_id},
            )
        self._refresh(list_id)

    def delete(self, list_id: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(text("DELETE FROM lists WHERE id = :l"), {"l": list_id})

    def _refresh(self, list_id: int) -> None:
        from sqlalchemy.orm import Session

        from taskline.repositories import task_repository
        from taskline.settings import get_settings

        with Session(self.engine) as session, session.begin():
            task_repository.refresh_recipients(
                session, [list_id], get_settings().deadline_due_soon_minutes
            )
