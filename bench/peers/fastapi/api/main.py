"""main.py from the seed, behind Mangum: the Lambda handler is `api.main.handler`."""

from fastapi import FastAPI
from mangum import Mangum

from api.routers import tasks

app = FastAPI(title="Tasks (FastAPI peer)")
app.include_router(tasks.router)

# The app has no startup/shutdown hooks; lifespan="auto" would run an (empty) lifespan cycle
# on every invocation, so the peer gets the cheaper setting.
handler = Mangum(app, lifespan="off")
