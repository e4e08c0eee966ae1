"""schemas.py from the seed: pydantic models for requests and responses."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["To Do", "In Progress", "Done"]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=4000)
    category: str = Field(min_length=1, max_length=255)
    deadline: datetime
    status: Status = "To Do"


class Task(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    description: str
    category: str
    deadline: datetime
    status: Status
    created_at: datetime
    updated_at: datetime
