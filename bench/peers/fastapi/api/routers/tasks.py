"""routers/tasks.py from the seed: the controller template, filled in."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from api import crud, schemas
from api.database import get_db
from api.dependencies import get_current_user_id

router = APIRouter()

Db = Annotated[Session, Depends(get_db)]
UserId = Annotated[int, Depends(get_current_user_id)]


@router.get("/tasks", response_model=list[schemas.Task])
def read_tasks(
    db: Db,
    user_id: UserId,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
):
    return crud.get_tasks(db, user_id, skip=skip, limit=limit)


@router.get("/tasks/{task_id}", response_model=schemas.Task)
def read_task(task_id: int, db: Db, user_id: UserId):
    task = crud.get_task(db, task_id, user_id)
    if task is None:
        raise HTTPException(status_code=404, detail="Task not found")
    return task


@router.post("/tasks", response_model=schemas.Task, status_code=201)
def create_task(task: schemas.TaskCreate, db: Db, user_id: UserId):
    return crud.create_task(db, task, user_id)
