"""crud.py from the seed: the data access layer (Session.query, add/commit/refresh)."""

from sqlalchemy.orm import Session

from api import models, schemas


def get_task(db: Session, task_id: int, user_id: int) -> models.Task | None:
    return (
        db.query(models.Task)
        .filter(models.Task.id == task_id, models.Task.user_id == user_id)
        .first()
    )


def get_tasks(db: Session, user_id: int, skip: int = 0, limit: int = 50) -> list[models.Task]:
    return (
        db.query(models.Task)
        .filter(models.Task.user_id == user_id)
        .order_by(models.Task.deadline, models.Task.id)
        .offset(skip)
        .limit(limit)
        .all()
    )


def create_task(db: Session, task: schemas.TaskCreate, user_id: int) -> models.Task:
    db_task = models.Task(**task.model_dump(), user_id=user_id)
    db.add(db_task)
    db.commit()
    db.refresh(db_task)
    return db_task
