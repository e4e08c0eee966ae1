"""Forget what the layer caches per container, as a fresh Lambda container would start."""

from __future__ import annotations


def clear_caches() -> None:
    from taskline import secret_store
    from taskline.db import get_engine
    from taskline.security.passwords import _decoy_hash
    from taskline.security.tokens import _keyring, _verified
    from taskline.settings import get_settings

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, _keyring, _verified, _decoy_hash):
        cached.cache_clear()
    secret_store.reset()
