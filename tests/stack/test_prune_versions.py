"""`make prune-versions`: old SnapStart versions go, what an alias points at (and one rollback
target) stays; functions of other stacks are not touched. Lambda is moto's."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from localdev.prune_versions import plan_for, prune


@pytest.fixture
def aws_lambda() -> Iterator[Any]:
    import boto3

    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(
            RoleName="taskline-fn",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        client = boto3.client("lambda", region_name="us-east-1")
        client.role_arn = role
        yield client


def deployed(client: Any, name: str, stack: str, deploys: int, live: int) -> None:
    """A function of `stack` after `deploys` deploys, its `live` alias on version `live`."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    client.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=client.role_arn,
        Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Tags={"aws:cloudformation:stack-name": stack},
    )
    for deploy in range(deploys):
        client.update_function_configuration(FunctionName=name, Description=f"deploy {deploy}")
        client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion=str(live))


def versions(client: Any, name: str) -> list[str]:
    listed = client.list_versions_by_function(FunctionName=name)["Versions"]
    return [version["Version"] for version in listed]


def test_old_versions_are_deleted_keeping_live_and_one_before(aws_lambda: Any) -> None:
    deployed(aws_lambda, "taskline-Tasks", "taskline", deploys=6, live=6)
    deployed(aws_lambda, "other-Tasks", "other", deploys=3, live=3)
    (plan,) = prune(aws_lambda, "taskline", keep_previous=1, dry_run=False)
    assert (plan.keep, plan.delete) == ([5, 6], [1, 2, 3, 4])
    assert versions(aws_lambda, "taskline-Tasks") == ["$LATEST", "5", "6"]
    assert versions(aws_lambda, "other-Tasks") == ["$LATEST", "1", "2", "3"]  # another stack's


def test_a_dry_run_deletes_nothing(aws_lambda: Any) -> None:
    deployed(aws_lambda, "taskline-Auth", "taskline", deploys=3, live=3)
    (plan,) = prune(aws_lambda, "taskline", keep_previous=0, dry_run=True)
    assert plan.delete == [1, 2]
    assert versions(aws_lambda, "taskline-Auth") == ["$LATEST", "1", "2", "3"]


def test_versions_an_alias_points_at_are_never_deleted() -> None:
    # live rolled back to 3 by hand; 4 and 5 were published after it (a deploy in progress).
    assert plan_for([1, 2, 3, 4, 5], {3}, keep_previous=1) == ([2, 3, 4, 5], [1])
    assert plan_for([1, 2, 3], {1, 3}, keep_previous=0) == ([1, 3], [2])
    assert plan_for([], set(), keep_previous=1) == ([], [])
