"""Delete a Taskline stack's old Lambda versions, so SnapStart's cache is billed for a bounded few.

    make prune-versions STACK=taskline [KEEP_PREVIOUS=1] [DRY_RUN=1]

SAM's AutoPublishAlias publishes a new version on every deploy that changes a function and keeps
the old ones (they leave the template but are retained, not deleted). With SnapStart, each
published version keeps a cached snapshot that is billed for as long as the version exists:
https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html (pricing: "cache" per GB-second of
every published version, https://aws.amazon.com/lambda/pricing/). Run this after `sam deploy`:
for every function of the stack (found by the `aws:cloudformation:stack-name` tag CloudFormation
puts on them) it keeps every version an alias points at (`live`), plus the KEEP_PREVIOUS newest
versions before it (a rollback by `aws lambda update-alias` needs one), and deletes the rest.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

STACK_TAG = "aws:cloudformation:stack-name"


@dataclass(frozen=True)
class Plan:
    function: str
    keep: list[int]
    delete: list[int]


def plan_for(
    versions: list[int], alias_targets: set[int], keep_previous: int
) -> tuple[list[int], list[int]]:
    """Which published versions stay and which go: alias targets always stay, and the
    `keep_previous` newest versions older than the newest alias target."""
    newest_live = max(alias_targets, default=max(versions, default=0))
    older = sorted(
        (v for v in versions if v < newest_live and v not in alias_targets), reverse=True
    )
    keep = (
        set(alias_targets) | set(older[:keep_previous]) | {v for v in versions if v > newest_live}
    )
    return sorted(v for v in versions if v in keep), sorted(v for v in versions if v not in keep)


def stack_functions(client: Any, stack: str) -> list[str]:
    names: list[str] = []
    for page in client.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            tags = client.list_tags(Resource=function["FunctionArn"]).get("Tags", {})
            if tags.get(STACK_TAG) == stack:
                names.append(function["FunctionName"])
    return sorted(names)


def plans(client: Any, stack: str, keep_previous: int) -> list[Plan]:
    found: list[Plan] = []
    for name in stack_functions(client, stack):
        versions = [
            int(version["Version"])
            for page in client.get_paginator("list_versions_by_function").paginate(
                FunctionName=name
            )
            for version in page["Versions"]
            if version["Version"] != "$LATEST"
        ]
        aliases = [
            alias
            for page in client.get_paginator("list_aliases").paginate(FunctionName=name)
            for alias in page["Aliases"]
        ]
        targets = {int(a["FunctionVersion"]) for a in aliases if a["FunctionVersion"] != "$LATEST"}
        for alias in aliases:  # weighted aliases (gradual deploys) point at a second version
            weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
            targets |= {int(version) for version in weights}
        keep, delete = plan_for(versions, targets, keep_previous)
        found.append(Plan(name, keep, delete))
    return found


def prune(client: Any, stack: str, keep_previous: int, dry_run: bool) -> list[Plan]:
    done = plans(client, stack, keep_previous)
    for plan in done:
        print(f"{plan.function}: keep {plan.keep or 'none'}; delete {plan.delete or 'none'}")
        if dry_run:
            continue
        for version in plan.delete:
            client.delete_function(FunctionName=plan.function, Qualifier=str(version))
    if not done:
        print(f"no function is tagged {STACK_TAG}={stack}")
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localdev.prune_versions", description=__doc__)
    parser.add_argument("--stack", default=os.environ.get("STACK") or "taskline")
    parser.add_argument(
        "--keep-previous", type=int, default=int(os.environ.get("KEEP_PREVIOUS") or 1)
    )
    parser.add_argument("--dry-run", action="store_true", default=bool(os.environ.get("DRY_RUN")))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"))
    args = parser.parse_args(argv)
    if args.keep_previous < 0:
        parser.error("--keep-previous cannot be negative")
    import boto3

    prune(
        boto3.client("lambda", region_name=args.region),
        args.stack,
        args.keep_previous,
        args.dry_run,
    )


if __name__ == "__main__":
    main()
