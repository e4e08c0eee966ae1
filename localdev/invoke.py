"""Docker-free `sam local invoke`: run one function of template.yaml with an event file.

    python -m localdev.invoke TasksFunction --event events/tasks-list.json

Uses the same environment as `make run` (embedded PostgreSQL unless DATABASE_URL is set) and
prints the function's result as JSON. Events for HTTP routes may carry a `{{token}}` placeholder
in their Authorization header; --user EMAIL signs a token for that existing account.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from localdev import loader
from localdev.gateway import LambdaContext
from localdev.server import configure_environment, migrate
from localdev.template import load


def _fill_token(
    event: dict[str, Any],
    email: str | None,
    function: str = "FUNCTION",
    path: Path | str = "EVENT",
) -> None:
    headers = event.get("headers") or {}
    if "{{token}}" not in headers.get("authorization", ""):
        return
    if email is None:
        # Said as `make invoke` takes it (its ARGS), the way most people run this.
        raise SystemExit(
            f"{path} needs a token for an existing account; give its email:\n"
            f'  make invoke FUNCTION={function} EVENT={path} ARGS="--user EMAIL"'
        )
    from taskline.errors import InvalidCredentials
    from taskline.services.sign_in_service import sign_in_trusted

    # A real session, found and started as a password grant would, so account routes accept
    # the token too and any spelling that signs in works here.
    try:
        token = sign_in_trusted(email).access_token
    except InvalidCredentials:
        raise SystemExit(f"no account {email}; sign up first (POST /users)") from None
    headers["authorization"] = headers["authorization"].replace("{{token}}", token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("function", help="logical id in template.yaml, e.g. TasksFunction")
    parser.add_argument("--event", "-e", type=Path, required=True, help="event JSON file")
    parser.add_argument("--user", help="email of the account whose token fills {{token}}")
    args = parser.parse_args(argv)

    template = load()
    function = template.functions.get(args.function)
    if function is None:
        names = ", ".join(sorted(template.functions))
        parser.error(f"unknown function {args.function!r}; template.yaml has {names}")
    loader.add_layers(template)
    configure_environment()
    migrate()
    event = json.loads(args.event.read_text())
    _fill_token(event, args.user, args.function, args.event)
    context = LambdaContext(function.logical_id, function.timeout)
    # The function's log lines (Powertools writes them to stdout, bound when its logger is
    # built) go to stderr, as with `sam local invoke`: stdout is the result alone, for jq.
    with contextlib.redirect_stdout(sys.stderr):
        result = loader.load_handler(function)(event, context)
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
