"""The stack's create/update/delete lifecycle, read from the template as CloudFormation gets it:
transformed offline by aws-sam-translator (the SAM transform `sam deploy` runs), with the
template's conditions evaluated for each way of deploying it.

CloudFormation deletes resources in the reverse order of their dependencies (Ref, Fn::GetAtt,
Fn::Sub, DependsOn), and a custom resource is answered by its function over the network: on
Delete (and on the rollback of a failed create) the function must still reach the pre-signed S3
response URL. Whatever gives it that path, and that nothing else depends on, CloudFormation may
delete first; the answer then never arrives and the stack waits out ServiceTimeout.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-delete.html
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from localdev.template import ROOT, TEMPLATE

STACK_UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
LONGEST_STACK_NAME = "T" + "a-" * 63 + "x"  # 128 characters, the longest CloudFormation accepts
PSEUDO = {
    "AWS::StackName": LONGEST_STACK_NAME,
    "AWS::StackId": (
        f"arn:aws:cloudformation:us-east-1:123456789012:stack/{LONGEST_STACK_NAME}/{STACK_UUID}"
    ),
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
SCENARIOS: dict[str, dict[str, str]] = {
    "new VPC (the default)": {},
    "existing VPC with Taskline's endpoints": {
        "ExistingVpcId": "vpc-0123456789abcdef0",
        "ExistingPrivateSubnetIds": "subnet-0a,subnet-0b",
        "ExistingPrivateRouteTableIds": "rtb-0a",
        "CreateVpcEndpoints": "true",
    },
    "existing VPC with its own endpoints or NAT": {
        "ExistingVpcId": "vpc-0123456789abcdef0",
        "ExistingPrivateSubnetIds": "subnet-0a,subnet-0b",
        "CreateVpcEndpoints": "false",
    },
}


def transform(template_path: Path) -> dict[str, Any]:
    """The template after the SAM transform, as `sam deploy` hands it to CloudFormation: run by
    aws-sam-translator in .venv-cfn (`make test` builds it; it pins an older pydantic)."""
    python = ROOT / ".venv-cfn" / "bin" / "python"
    assert python.exists(), "run `make test` (it builds .venv-cfn, with aws-sam-translator)"
    done = subprocess.run(
        [str(python), str(ROOT / "localdev" / "sam_transform.py"), str(template_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    transformed: dict[str, Any] = json.loads(done.stdout)
    return transformed


@cache
def transformed_template() -> dict[str, Any]:
    return transform(TEMPLATE)


class Stack:
    """One deployment of a transformed template: parameters chosen, conditions evaluated,
    Fn::If resolved, resources of false conditions gone."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
        }
        self.parameters.update(parameters)
        self._conditions: dict[str, bool] = {}
        self.resources = {
            name: self.resolve(copy.deepcopy(resource))
            for name, resource in template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.evaluate(self.template["Conditions"][name]))
        return self._conditions[name]

    def evaluate(self, node: Any) -> Any:
        """The value of a condition expression or of a value built from parameters."""
        if isinstance(node, list):
            return [self.evaluate(item) for item in node]
        if not isinstance(node, dict):
            return node
        ((function, argument),) = node.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Ref":
            if argument in PSEUDO:
                return PSEUDO[argument]
            value = self.parameters[argument]
            if self.template["Parameters"][argument]["Type"].startswith(("List<", "Comma")):
                return value.split(",")
            return value
        if function == "Fn::Equals":
            left, right = (self.evaluate(side) for side in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.evaluate(argument[0])
        if function == "Fn::And":
            return all(self.evaluate(item) for item in argument)
        if function == "Fn::Or":
            return any(self.evaluate(item) for item in argument)
        if function == "Fn::Join":
            separator, items = argument
            values = self.evaluate(items)
            return separator.join(str(value) for value in values)
        if function == "Fn::Split":
            separator, text = argument
            return str(self.evaluate(text)).split(separator)
        if function == "Fn::Select":
            index, items = argument
            return self.evaluate(items)[int(index)]
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            values = {key: self.evaluate(value) for key, value in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                key = match.group(1)
                if key in values:
                    return str(values[key])
                if key in PSEUDO:
                    return str(PSEUDO[key])
                return str(self.parameters[key])

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        raise ValueError(f"cannot evaluate {function}")

    def resolve(self, node: Any) -> Any:
        """`node` with every Fn::If replaced by the branch this deployment takes."""
        if isinstance(node, list):
            return [self.resolve(item) for item in node if not _is_no_value(item)]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Fn::If"}:
            name, if_true, if_false = node["Fn::If"]
            return self.resolve(if_true if self.condition(name) else if_false)
        return {key: self.resolve(value) for key, value in node.items() if not _is_no_value(value)}

    def references(self, name: str) -> set[str]:
        """The resources `name` depends on directly."""
        resource = self.resources[name]
        depends = resource.get("DependsOn", [])
        found = set([depends] if isinstance(depends, str) else depends)
        found |= set(_referenced(resource.get("Properties", {})))
        return found & set(self.resources)

    def dependencies(self, name: str) -> set[str]:
        """Everything `name` depends on, transitively: all of it is deleted after `name`."""
        seen: set[str] = set()
        pending = [name]
        while pending:
            for reference in self.references(pending.pop()):
                if reference not in seen:
                    seen.add(reference)
                    pending.append(reference)
        return seen

    def value(self, node: Any) -> Any:
        return self.evaluate(node)


def _is_no_value(node: Any) -> bool:
    return bool(node == {"Ref": "AWS::NoValue"})


def _referenced(node: Any) -> Iterator[str]:
    """Logical ids named by Ref, Fn::GetAtt and Fn::Sub anywhere in `node`."""
    if isinstance(node, list):
        for item in node:
            yield from _referenced(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield (value.split(".")[0] if isinstance(value, str) else value[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                for match in re.finditer(r"\$\{([^}!.]+)[^}]*\}", text):
                    if match.group(1) not in variables:
                        yield match.group(1)
                yield from _referenced(variables)
            else:
                yield from _referenced(value)


def _ids(node: Any) -> set[str]:
    return set(_referenced(node))


def delete_needs(stack: Stack, function: str) -> set[str]:
    """What a custom resource's function needs to answer CloudFormation that does not already
    hang off the function itself: the rules of its security groups, the route table
    associations of its subnets (and the routes and gateway endpoints of those tables), and the
    policies attached to its role."""
    properties = stack.resources[function]["Properties"]
    vpc = properties.get("VpcConfig", {})
    groups = _ids(vpc.get("SecurityGroupIds", []))
    subnets = _ids(vpc.get("SubnetIds", []))
    role = _ids(properties.get("Role"))
    needs: set[str] = set()
    route_tables: set[str] = set()
    for name, resource in stack.resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind in ("AWS::EC2::SecurityGroupEgress", "AWS::EC2::SecurityGroupIngress"):
            ends = _ids(
                [
                    props.get("GroupId"),
                    props.get("SourceSecurityGroupId"),
                    props.get("DestinationSecurityGroupId"),
                ]
            )
            if ends & groups:
                needs.add(name)
        elif kind == "AWS::EC2::SubnetRouteTableAssociation" and _ids(props["SubnetId"]) & subnets:
            needs.add(name)
            route_tables |= _ids(props["RouteTableId"])
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy") and (
            _ids(props.get("Roles", props.get("RoleName"))) & role
        ):
            needs.add(name)
    for name, resource in stack.resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::EC2::Route" and _ids(props["RouteTableId"]) & route_tables:
            needs.add(name)
        elif (
            kind == "AWS::EC2::VPCEndpoint"
            and props.get("VpcEndpointType") == "Gateway"
            and ".s3" in json.dumps(props.get("ServiceName"))
        ):
            # The S3 gateway endpoint is the answer's only way out of private subnets (the
            # DynamoDB one serves the deadline gate, not CloudFormation's answer).
            needs.add(name)
    return needs


def custom_resources(stack: Stack) -> dict[str, str]:
    """Custom resources and the function that serves each (its ServiceToken)."""
    found: dict[str, str] = {}
    for name, resource in stack.resources.items():
        kind = resource["Type"]
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            token = resource["Properties"]["ServiceToken"]
            (function,) = _ids(token)
            found[name] = function
    return found


def delete_order_problems(template: dict[str, Any]) -> list[str]:
    """Every way a custom resource could outlive what its function needs to answer, in every
    deployment scenario (empty when CloudFormation's delete order is safe)."""
    problems: list[str] = []
    for scenario, parameters in SCENARIOS.items():
        stack = Stack(template, parameters)
        for custom, function in custom_resources(stack).items():
            dependencies = stack.dependencies(custom)
            assert function in dependencies
            for missing in sorted(delete_needs(stack, function) - dependencies):
                problems.append(f"{scenario}: {custom} does not depend on {missing}")
    return problems


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return transformed_template()


def test_custom_resources_outlive_what_their_functions_need_on_delete(
    template: dict[str, Any],
) -> None:
    assert delete_order_problems(template) == []


def test_the_check_sees_what_a_function_needs(template: dict[str, Any]) -> None:
    """The walk is not vacuous: it finds the migration function's network path, and a rule left
    without dependents is reported."""
    stack = Stack(template, {})
    needs = delete_needs(stack, "MigrationFunction")
    assert {
        "MigrationToS3Egress",
        "PrivateSubnetARouteTable",
        "PrivateSubnetBRouteTable",
        "S3GatewayEndpoint",
    } <= needs
    broken = copy.deepcopy(template)
    migrations = broken["Resources"]["DatabaseMigrations"]
    migrations["DependsOn"] = [d for d in migrations["DependsOn"] if d != "MigrationToS3Egress"]
    assert "new VPC (the default): DatabaseMigrations does not depend on MigrationToS3Egress" in (
        delete_order_problems(broken)
    )


def test_the_custom_resource_is_created_after_the_database_it_migrates(
    template: dict[str, Any],
) -> None:
    for parameters in SCENARIOS.values():
        stack = Stack(template, parameters)
        assert {"Database", "DatabaseProxyTargetGroup", "MigrationFunction"} <= stack.dependencies(
            "DatabaseMigrations"
        )


def test_the_app_roles_statement_timeout_is_the_functions_own(template: dict[str, Any]) -> None:
    """The migration sets DB_STATEMENT_TIMEOUT_MS as the app role's default (no startup option);
    the custom resource carries the value so that changing it runs the migration again."""
    resources = template["Resources"]
    migration = resources["MigrationFunction"]["Properties"]["Environment"]["Variables"]
    carried = resources["DatabaseMigrations"]["Properties"]["AppStatementTimeoutMs"]
    for function in ("AuthFunction", "TasksFunction", "DeadlineCheckFunction"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["DB_STATEMENT_TIMEOUT_MS"] == migration["DB_STATEMENT_TIMEOUT_MS"]
    assert carried == migration["DB_STATEMENT_TIMEOUT_MS"]


# --- values AWS refuses, refused by the template before anything is created ------------------


def test_proxy_max_connections_cannot_go_below_the_idle_share(template: dict[str, Any]) -> None:
    """RDS requires MaxIdleConnectionsPercent <= MaxConnectionsPercent."""
    pool = template["Resources"]["DatabaseProxyTargetGroup"]["Properties"][
        "ConnectionPoolConfigurationInfo"
    ]
    assert pool["MaxConnectionsPercent"] == {"Ref": "ProxyMaxConnectionsPercent"}
    parameter = template["Parameters"]["ProxyMaxConnectionsPercent"]
    assert int(parameter["MinValue"]) >= int(pool["MaxIdleConnectionsPercent"])
    assert int(parameter["MinValue"]) <= int(parameter["Default"]) <= int(parameter["MaxValue"])


# AWS's limits on the names the stack builds (RDS identifiers: a letter first, no double hyphen).
_RDS_IDENTIFIER = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-))*(?<!-)")
NAME_RULES: dict[tuple[str, str], tuple[int, re.Pattern[str]]] = {
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBProxy.html (the
    # naming rules; 64 characters in the AWS::RDS::DBProxy resource schema)
    ("AWS::RDS::DBProxy", "DBProxyName"): (64, _RDS_IDENTIFIER),
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html
    ("AWS::RDS::DBInstance", "DBInstanceIdentifier"): (63, _RDS_IDENTIFIER),
    # https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html
    ("AWS::Scheduler::Schedule", "Name"): (64, re.compile(r"[0-9a-zA-Z\-_.]+")),
    # https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html
    ("AWS::Logs::LogGroup", "LogGroupName"): (512, re.compile(r"[\.\-_/#A-Za-z0-9]+")),
    # https://docs.aws.amazon.com/lambda/latest/api/API_PublishLayerVersion.html
    ("AWS::Lambda::LayerVersion", "LayerName"): (140, re.compile(r"[a-zA-Z0-9\-_]+")),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_names_fit_aws_limits_for_the_longest_stack_name(
    template: dict[str, Any], scenario: str
) -> None:
    stack = Stack(template, SCENARIOS[scenario])
    checked = 0
    for name, resource in stack.resources.items():
        for (kind, field), (limit, pattern) in NAME_RULES.items():
            if resource["Type"] != kind or field not in resource.get("Properties", {}):
                continue
            built = stack.value(resource["Properties"][field])
            assert len(built) <= limit, (name, built)
            assert pattern.fullmatch(built), (name, built)
            checked += 1
    assert checked >= 10  # proxy, instance, schedule, layer, the log groups


def test_rds_logs_go_to_managed_groups_with_retention(template: dict[str, Any]) -> None:
    stack = Stack(template, {})
    database = stack.resources["Database"]
    identifier = stack.value(database["Properties"]["DBInstanceIdentifier"])
    groups = {
        stack.value(resource["Properties"]["LogGroupName"]): name
        for name, resource in stack.resources.items()
        if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]
    }
    for log in database["Properties"]["EnableCloudwatchLogsExports"]:
        group = groups[f"/aws/rds/instance/{identifier}/{log}"]
        assert "RetentionInDays" in stack.resources[group]["Properties"]
        assert group in stack.dependencies("Database")  # exists before exports begin


def test_bind_values_never_reach_the_database_log(template: dict[str, Any]) -> None:
    parameters = template["Resources"]["DatabaseParameterGroup"]["Properties"]["Parameters"]
    assert parameters["log_parameter_max_length"] == "0"
    assert parameters["log_parameter_max_length_on_error"] == "0"


@pytest.mark.parametrize(
    ("policy", "expected"), [("Snapshot", "Retain"), ("Retain", "Retain"), ("Delete", "Delete")]
)
def test_secrets_queues_and_logs_follow_the_data_on_delete(
    template: dict[str, Any], policy: str, expected: str
) -> None:
    """Deleting the stack keeps the secrets, dead letters and logs whenever the database (or its
    final snapshot) is kept; replacing one of them never drops its contents."""
    stack = Stack(template, {"DatabaseDeletionPolicy": policy})
    kept = {"AWS::SecretsManager::Secret", "AWS::SQS::Queue", "AWS::Logs::LogGroup"}
    checked = 0
    for name, resource in template["Resources"].items():
        if resource["Type"] not in kept:
            continue
        checked += 1
        assert stack.resolve(resource.get("DeletionPolicy")) == expected, name
        assert resource.get("UpdateReplacePolicy") == "Retain", name
    assert checked >= 10
