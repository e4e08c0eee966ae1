"""Lambda SnapStart runtime hooks: warm up before the snapshot, repair state after a restore.

With SnapStart, Lambda runs a function's init once when a version is published, snapshots the
memory, and starts later execution environments from that snapshot. Whatever init created is
shared by every restored environment and may be hours old, so after a restore:
- pooled database connections are dead: they are dropped (the engine and its one SSL context
  are kept, they hold no connection state);
- pseudo-random state would repeat across environments: `random` is reseeded from the OS and
  fresh kernel entropy is mixed into OpenSSL's generator (uuid4, `secrets` and bcrypt salts
  already read os.urandom, which Lambda keeps unique per restore);
- the Secrets Manager client and cached secrets are dropped, so credentials and values are
  fetched fresh by the restored environment.

Before the snapshot, `warm_up` does the expensive one-off work a first request would do
lazily, so it is paid once at publish time instead of on every cold start: import the
database driver and, in AWS, boto3 and Powertools Parameters; build the engine and its SSL
context (loading the CA bundle); configure the ORM's mappers and build every schema's
validator. It opens no connection and reads no secret.

`snapshot_restore_py` is provided by the Lambda Python runtime (never ship it in the layer: a
second copy would hold a registry the runtime never reads). Where it is missing the import
fails and nothing is registered; where it is installed outside Lambda (the dev environment,
so tests can call the hooks) the hooks are registered but nothing ever runs them.
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Callable
from typing import Any

_registered: set[str] = set()


def _runtime_registry() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # not running in Lambda
        return None
    return register_before_snapshot, register_after_restore


def warm_up() -> None:
    """Before the snapshot: load what the first request would, without connecting anywhere."""
    from taskline import db
    from taskline.settings import get_settings

    settings = get_settings()
    db.get_engine()  # imports the pg8000 dialect, builds the URL and the shared SSL context
    _build_lazy_parts()
    if settings.jwt_secret_arn or settings.db_secret_arn:
        import boto3  # noqa: F401 - the import itself is the cost being moved
        from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: F401


def _build_lazy_parts() -> None:
    """What a cold start leaves to first use, built into the snapshot instead: the ORM's
    mapper configuration and the schemas' validators (built on first use, `defer_build`)."""
    from pydantic import BaseModel
    from sqlalchemy.orm import configure_mappers

    from taskline import schemas

    configure_mappers()
    for value in vars(schemas).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            value.model_rebuild()


def after_restore() -> None:
    """After a restore: drop dead connections, reseed randomness, forget the secrets client."""
    from taskline import db, secret_store

    random.seed(os.urandom(32))
    ssl.RAND_add(os.urandom(32), 32.0)
    db.close_connections()
    secret_store.reset()


def reseed() -> None:
    """After a restore, for functions without a database: reseed randomness only."""
    random.seed(os.urandom(32))
    ssl.RAND_add(os.urandom(32), 32.0)


def register_hooks(*, database: bool = True) -> bool:
    """Register the hooks with the Lambda runtime (once per process); False outside Lambda.

    `database=False` is for functions that touch neither the database nor secrets.
    """
    registry = _runtime_registry()
    if registry is None:
        return False
    register_before_snapshot, register_after_restore = registry
    if database and "database" not in _registered:
        register_before_snapshot(warm_up)
        register_after_restore(after_restore)
        _registered.add("database")
    elif not database and "reseed" not in _registered:
        register_after_restore(reseed)
        _registered.add("reseed")
    return True
