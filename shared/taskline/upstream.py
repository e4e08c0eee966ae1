"""The library versions Taskline's private hooks were verified against, checked at import.

Two modules reach past a library's public API, because what that buys is measured or is part
of the contract: `taskline.pgwire` (pg8000's and SQLAlchemy's internals: one round trip per
statement) and `taskline.api.resolver` (Powertools' internals: the contract's checks before
validation). Each names the versions it was verified against (`VERIFIED_VERSIONS`, equal to
the pins in shared/requirements.txt: tests/layer/test_pgwire_upstream.py fails when they differ) and
checks the installed ones when it is imported, so an upgrade fails loudly and early instead of
misbehaving quietly: pgwire falls back to stock pg8000 with a warning, the resolver refuses to
start.

Installed versions are read from each package's `__version__`: pg8000 sets its own from
`importlib.metadata` when it is imported, SQLAlchemy and Powertools ship it as a constant of
the same release. Reading it costs nothing; the two `importlib.metadata` look-ups it saves
measured 1.3 ms on a path holding only the layer's 23 distributions (each look-up scans every
`sys.path` entry, and Lambda's include the runtime's own packages), 5 to 15 ms in the dev venv.
"""

from __future__ import annotations

from collections.abc import Mapping


class UnverifiedVersionError(RuntimeError):
    """A library is installed at a version a private hook was not verified against."""


def unverified(verified: Mapping[str, str], installed: Mapping[str, str | None]) -> list[str]:
    """`pg8000 1.32.0 (verified against 1.31.6)` for each library whose installed version is not
    the verified one; empty when every one matches. `None` means the version could not be read."""
    return [
        f"{name} {installed.get(name) or 'of unknown version'} (verified against {version})"
        for name, version in verified.items()
        if installed.get(name) != version
    ]
