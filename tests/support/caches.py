"""Forget what the layer caches per container, as a fresh Lambda container would start."""

from __future__ import annotations


def clear_caches() -> None:
    from taskline import deadline_gate, secret_store
    from taskline.db import get_engine, rds_client
    from taskline.security import passwords, tokens
    from taskline.settings import get_settings

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, rds_client):
        cached.cache_clear()
    tokens.reset_caches()
    passwords.reset_decoy_cache()
    secret_store.reset()
    deadline_gate.reset()
