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
import ipaddress
import itertools
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
    "new VPC, emails sent": {
        "NotificationEmailSender": "reminders@example.com",
        "SesVpcEndpoint": "api",
    },
    "production profile": {"Profile": "production"},
    "starter profile, new VPC": {"Profile": "starter"},
    "starter profile, emails sent": {
        "Profile": "starter",
        "NotificationEmailSender": "reminders@example.com",
        "SesVpcEndpoint": "api",
    },
    "starter profile, existing VPC": {
        "Profile": "starter",
        "ExistingVpcId": "vpc-0123456789abcdef0",
        "ExistingPrivateSubnetIds": "subnet-0a,subnet-0b",
        "ExistingPrivateRouteTableIds": "rtb-0a",
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
        if function == "Fn::FindInMap":
            # With AWS::LanguageExtensions' DefaultValue, a missing key yields the default.
            mapping, top, second = (str(self.evaluate(part)) for part in argument[:3])
            found = self.template["Mappings"][mapping].get(top, {}).get(second)
            if found is None and len(argument) > 3:
                return self.evaluate(argument[3]["DefaultValue"])
            return found
        if function == "Fn::Cidr":
            block, count, bits = (self.evaluate(part) for part in argument)
            return cidr(str(block), int(count), int(bits))
        if function == "Fn::GetAZs":
            return ["us-east-1a", "us-east-1b", "us-east-1c"]
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
            items = [self.resolve(item) for item in node]
            return [item for item in items if not _is_no_value(item)]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Fn::If"}:
            name, if_true, if_false = node["Fn::If"]
            return self.resolve(if_true if self.condition(name) else if_false)
        fields = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in fields.items() if not _is_no_value(value)}

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


def cidr(block: str, count: int, bits: int) -> list[str]:
    """Fn::Cidr: the first `count` subnets with `bits` host bits of `block`; CloudFormation fails
    the deploy when the block is too small for them (as this does).
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-cidr.html"""
    network = ipaddress.ip_network(block, strict=False)
    prefix = network.max_prefixlen - bits
    if prefix < network.prefixlen:
        raise ValueError(f"{block} cannot hold subnets of /{prefix}")
    subnets = list(itertools.islice(network.subnets(new_prefix=prefix), count))
    if len(subnets) < count:
        raise ValueError(f"{block} holds fewer than {count} subnets of /{prefix}")
    return [str(subnet) for subnet in subnets]


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
        if parameters.get("Profile") == "starter":
            database = {"DatabaseCluster", "DatabaseClusterInstance"}
        else:
            database = {"Database", "DatabaseProxyTargetGroup"}
        assert {*database, "MigrationFunction"} <= stack.dependencies("DatabaseMigrations")


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
    # https://docs.aws.amazon.com/ses/latest/APIReference/API_ConfigurationSet.html
    ("AWS::SES::ConfigurationSet", "Name"): (64, re.compile(r"[a-zA-Z0-9_-]+")),
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
    ("policy", "expected"), [("Snapshot", "RetainExceptOnCreate"), ("Delete", "Delete")]
)
def test_secrets_queues_and_logs_follow_the_data_on_delete(
    template: dict[str, Any], policy: str, expected: str
) -> None:
    """Deleting the stack keeps the secrets, dead letters and logs whenever the database's final
    snapshot is kept, but not after a failed create (RetainExceptOnCreate: nothing to keep
    then); replacing one of them never drops its contents.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html"""
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
    backups = stack.resources["Database"]["Properties"]["DeleteAutomatedBackups"]
    assert backups is (policy == "Delete")  # automated backups go with the data, or stay


def deletion_policies(template: dict[str, Any]) -> list[str]:
    return [str(v) for v in template["Parameters"]["DatabaseDeletionPolicy"]["AllowedValues"]]


KEPT = {"Retain", "RetainExceptOnCreate"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_failed_first_deploy_rolls_back_completely(
    template: dict[str, Any], scenario: str
) -> None:
    """The rollback of a failed create deletes everything it created: no resource is kept by a
    plain Retain (RetainExceptOnCreate deletes what the failed create made), and the database
    is created without deletion protection, which CloudFormation's RDS delete handler never
    clears (the rollback would end in ROLLBACK_FAILED); DatabaseProtection switches it on after
    the first migration succeeded, and off again only for the rollback of a failed create."""
    for policy in deletion_policies(template):
        stack = Stack(template, {**SCENARIOS[scenario], "DatabaseDeletionPolicy": policy})
        for name, resource in stack.resources.items():
            if resource["Type"] == "AWS::Lambda::Version":
                continue  # SAM keeps old versions on update; they go with their function
            kept = stack.value(resource.get("DeletionPolicy", "Delete"))
            assert kept != "Retain", (policy, name)
        starter = SCENARIOS[scenario].get("Profile") == "starter"
        name, kind, field = (
            ("DatabaseCluster", "cluster", "DBClusterIdentifier")
            if starter
            else ("Database", "db", "DBInstanceIdentifier")
        )
        database = stack.resources[name]["Properties"]
        assert database.get("DeletionProtection") in (None, False, "false")
        protection = stack.resources["DatabaseProtection"]
        assert {name, "DatabaseMigrations"} <= stack.dependencies("DatabaseProtection")
        assert protection["Properties"]["DeletionProtection"] == {
            "Ref": "DatabaseDeletionProtection"
        }
        (function,) = _ids(protection["Properties"]["ServiceToken"])
        # Outside the VPC: it reaches the RDS API with no endpoint, and nothing it needs to
        # answer can be deleted before it (delete_needs finds nothing).
        assert "VpcConfig" not in stack.resources[function]["Properties"]
        assert protection["Properties"][field] == {"Ref": name}
        # Its role may modify exactly that database (the ARN is built from its identifier).
        identifier = stack.value(database["DBClusterIdentifier" if starter else field])
        role = stack.resources[f"{function}Role"]["Properties"]
        granted = {
            stack.value(statement["Resource"])
            for policy in role["Policies"]
            for statement in policy["PolicyDocument"]["Statement"]
            if {"rds:ModifyDBInstance", "rds:ModifyDBCluster"} & set(statement["Action"])
        }
        assert f"arn:aws:rds:us-east-1:123456789012:{kind}:{identifier}" in granted


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_what_a_stack_deletion_keeps_uses_nothing_it_deletes(
    template: dict[str, Any], scenario: str
) -> None:
    """A resource kept on delete must not use one the stack deletes: EC2 and RDS refuse to
    delete a subnet group, security group, parameter group or subnet still in use, and the
    stack's deletion fails (DatabaseDeletionPolicy=Retain did this to the database)."""
    for policy in deletion_policies(template):
        stack = Stack(template, {**SCENARIOS[scenario], "DatabaseDeletionPolicy": policy})
        kept = {
            name
            for name, resource in stack.resources.items()
            if stack.value(resource.get("DeletionPolicy", "Delete")) in KEPT
            and resource["Type"] != "AWS::Lambda::Version"  # deleted with its function
        }
        for name in kept:
            used = set(_referenced(stack.resources[name].get("Properties", {})))
            deleted = (used & set(stack.resources)) - kept
            assert not deleted, f"{scenario}, {policy}: kept {name} uses deleted {deleted}"


def test_the_check_sees_a_kept_database_using_what_is_deleted(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    broken["Parameters"]["DatabaseDeletionPolicy"]["AllowedValues"].append("Retain")
    with pytest.raises(AssertionError, match="kept Database uses deleted"):
        test_what_a_stack_deletion_keeps_uses_nothing_it_deletes(broken, "new VPC (the default)")


def allowed_vpc_prefixes(template: dict[str, Any]) -> list[int]:
    pattern = re.compile(template["Parameters"]["VpcCidr"]["AllowedPattern"])
    return [p for p in range(8, 29) if pattern.fullmatch(f"10.42.0.0/{p}")]


@pytest.mark.parametrize("prefix", range(16, 25))
def test_every_allowed_vpc_size_yields_its_subnets(template: dict[str, Any], prefix: int) -> None:
    """Each VpcCidr size the parameter accepts gives two private subnets inside the VPC, apart
    (Fn::Cidr fails the deploy when the block is too small for the subnets it asks for)."""
    assert allowed_vpc_prefixes(template) == list(range(16, 25))
    stack = Stack(template, {"VpcCidr": f"10.42.0.0/{prefix}"})
    vpc = ipaddress.IPv4Network(f"10.42.0.0/{prefix}")
    subnets = [
        ipaddress.IPv4Network(stack.value(stack.resources[name]["Properties"]["CidrBlock"]))
        for name in ("PrivateSubnetA", "PrivateSubnetB")
    ]
    assert all(subnet.subnet_of(vpc) for subnet in subnets)
    assert not subnets[0].overlaps(subnets[1])
    # At least a /26 each: 59 addresses once AWS has taken its five.
    assert all(subnet.prefixlen <= 26 for subnet in subnets)


# --- profiles ----------------------------------------------------------------------------------

# What bills by the hour whether or not anyone uses Taskline.
HOURLY = {
    "AWS::EC2::NatGateway",
    "AWS::EC2::InternetGateway",  # (with public addresses, $0.005/h each)
    "AWS::RDS::DBProxy",
    "AWS::RDS::DBInstance",  # unless db.serverless in a cluster that pauses (below)
}


def test_starter_has_nothing_billed_by_the_hour(template: dict[str, Any]) -> None:
    """No NAT gateway, no internet gateway, no interface endpoint, no RDS Proxy, no provisioned
    instance: an Aurora Serverless v2 instance that pauses at 0 ACU."""
    stack = Stack(template, {"Profile": "starter"})
    kinds = {resource["Type"] for resource in stack.resources.values()}
    for name, resource in stack.resources.items():
        if resource["Type"] == "AWS::EC2::VPCEndpoint":
            assert resource["Properties"]["VpcEndpointType"] == "Gateway", name  # free
        if resource["Type"] == "AWS::RDS::DBInstance":
            assert resource["Properties"]["DBInstanceClass"] == "db.serverless", name
        else:
            assert resource["Type"] not in HOURLY, name
    assert "AWS::RDS::DBCluster" in kinds
    cluster = stack.resources["DatabaseCluster"]["Properties"]
    scaling = cluster["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == 0
    assert scaling["SecondsUntilAutoPause"] == {"Ref": "DatabaseSecondsUntilAutoPause"}
    assert int(stack.parameters["DatabaseSecondsUntilAutoPause"]) >= 300
    # 0 ACU needs Aurora PostgreSQL 16.3 or later (the auto-pause page's versions).
    major, minor = (
        int(part) for part in stack.parameters["DatabaseAuroraEngineVersion"].split(".")
    )
    assert (major, minor) >= (16, 3)
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["StorageEncrypted"] is True
    assert stack.resources["DatabaseClusterInstance"]["Properties"]["PubliclyAccessible"] is False


def test_starter_functions_sign_iam_tokens_and_read_no_database_secret(
    template: dict[str, Any],
) -> None:
    stack = Stack(template, {"Profile": "starter"})
    env = stack.resources["AuthFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DB_IAM_AUTH"] == "true"
    assert env["DB_USER"] == "taskline_app"
    assert _ids(env["DB_HOST"]) == {"DatabaseCluster"}
    assert "DB_SECRET_ARN" not in env
    for function in ("AuthFunction", "TasksFunction", "NotificationsFunction"):
        role = stack.resources[f"{function}Role"]["Properties"]
        text = json.dumps(role)
        assert "rds-db:connect" in text, function
        assert "AppDatabaseSecret" not in text, function  # IAM tokens, no password
    # The migration keeps the master login (off the request path) and creates the functions'
    # login as a role with no password (IAM tokens only, rds_iam): the same name they sign for.
    migration = stack.resources["MigrationFunction"]["Properties"]["Environment"]["Variables"]
    assert migration["DB_IAM_AUTH"] == "false"
    assert migration["DB_APP_IAM_USER"] == env["DB_USER"]
    assert "DB_APP_USER_SECRET_ARN" not in migration
    assert "AppDatabaseSecret" not in stack.resources  # no password to keep


def test_the_functions_login_is_a_password_or_an_iam_role_never_both(
    template: dict[str, Any],
) -> None:
    """One mechanism per profile: standard/production keep the app role's password in
    AppDatabaseSecret (RDS Proxy logs in with it); starter has no such secret."""
    for profile in ("standard", "production"):
        stack = Stack(template, {"Profile": profile})
        migration = stack.resources["MigrationFunction"]["Properties"]["Environment"]["Variables"]
        assert "DB_APP_IAM_USER" not in migration, profile
        assert _ids(migration["DB_APP_USER_SECRET_ARN"]) == {"AppDatabaseSecret"}, profile
        env = stack.resources["TasksFunction"]["Properties"]["Environment"]["Variables"]
        assert env["DB_IAM_AUTH"] == "false", profile
        assert "DB_USER" not in env, profile


API_FUNCTIONS = ("AuthFunction", "TasksFunction", "ListsFunction", "NotificationsFunction")


def test_starter_waits_for_a_resuming_database_then_answers_503_within_the_gateway_limit(
    template: dict[str, Any],
) -> None:
    """Aurora resumes a paused instance in about 15 s (longer after a long pause): starter's
    functions wait 20 s for a connection, then answer 503 with Retry-After 15; connect +
    statement < the function's timeout < the HTTP API's integration timeout (29 s).
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html"""
    for profile, connect, retry_after, timeout in (
        ("starter", "20", "15", 28),
        ("standard", "3", "2", 15),
        ("production", "3", "2", 15),
    ):
        stack = Stack(template, {"Profile": profile})
        for function in API_FUNCTIONS:
            properties = stack.resources[function]["Properties"]
            env = properties["Environment"]["Variables"]
            assert env["DB_CONNECT_TIMEOUT_SECONDS"] == connect, (profile, function)
            assert env["DB_CONNECT_RETRY_AFTER_SECONDS"] == retry_after, (profile, function)
            assert properties["Timeout"] == timeout, (profile, function)
            statement = int(env["DB_STATEMENT_TIMEOUT_MS"]) / 1000
            assert float(connect) + statement < timeout, (profile, function)
        # SAM writes each route's integration into the HTTP API's OpenAPI body.
        body = json.dumps(stack.resources["HttpApi"]["Properties"]["Body"])
        integrations = [int(ms) / 1000 for ms in re.findall(r'"timeoutInMillis": (\d+)', body)]
        assert integrations, profile
        assert all(timeout < limit <= 30 for limit in integrations), profile


def test_the_deadline_gate_exists_only_where_the_database_pauses(
    template: dict[str, Any],
) -> None:
    """starter: the gate's table, its free gateway endpoint, its policy, DEADLINE_GATE_TABLE on
    the functions that read or lower it. standard/production (the instance never pauses): none
    of them, and an empty DEADLINE_GATE_TABLE (every run queries the database)."""
    gate = ("DeadlineGateTable", "DynamoDbGatewayEndpoint", "DeadlineGatePolicy")
    starter = Stack(template, {"Profile": "starter"})
    for name in gate:
        assert name in starter.resources, name
    for function in ("TasksFunction", "NotificationsFunction", "DeadlineCheckFunction"):
        env = starter.resources[function]["Properties"]["Environment"]["Variables"]
        assert _ids(env["DEADLINE_GATE_TABLE"]) == {"DeadlineGateTable"}, function
    for profile in ("standard", "production"):
        stack = Stack(template, {"Profile": profile})
        for name in gate:
            assert name not in stack.resources, (profile, name)
        for name, resource in stack.resources.items():
            if resource["Type"] == "AWS::Lambda::Function":
                env = resource["Properties"].get("Environment", {}).get("Variables", {})
                assert env.get("DEADLINE_GATE_TABLE", "") == "", (profile, name)


def test_snapstart_is_off_in_starter_and_on_otherwise(template: dict[str, Any]) -> None:
    for profile, expected in (
        ("starter", "None"),
        ("standard", "PublishedVersions"),
        ("production", "PublishedVersions"),
    ):
        stack = Stack(template, {"Profile": profile})
        for function in ("AuthFunction", "TasksFunction", "NotificationsFunction", "MetaFunction"):
            applied = stack.resources[function]["Properties"]["SnapStart"]["ApplyOn"]
            assert applied == expected, (profile, function)
        # Overridable like every profile setting.
        stack = Stack(template, {"Profile": profile, "SnapStart": "false"})
        applied = stack.resources["AuthFunction"]["Properties"]["SnapStart"]["ApplyOn"]
        assert applied == "None"


def test_starter_reaches_aws_apis_only_outbound_over_ipv6(template: dict[str, Any]) -> None:
    """The calls off the request path (Secrets Manager, SNS) leave through an egress-only
    internet gateway; nothing can connect in, and the database accepts the functions only."""
    stack = Stack(template, {"Profile": "starter"})
    [route] = [r for r in stack.resources.values() if r["Type"] == "AWS::EC2::Route"]
    assert route["Properties"]["DestinationIpv6CidrBlock"] == "::/0"
    assert _ids(route["Properties"]["EgressOnlyInternetGatewayId"]) == {"EgressOnlyInternetGateway"}
    for name, resource in stack.resources.items():
        if resource["Type"] == "AWS::EC2::SecurityGroupIngress":
            assert "CidrIp" not in resource["Properties"], name
            assert "CidrIpv6" not in resource["Properties"], name
    for function in ("AuthFunction", "MigrationFunction", "DeadlineCheckFunction"):
        vpc = stack.resources[function]["Properties"]["VpcConfig"]
        assert vpc["Ipv6AllowedForDualStack"] is True, function
    standard = Stack(template, {})
    assert (
        standard.resources["AuthFunction"]["Properties"]["VpcConfig"]["Ipv6AllowedForDualStack"]
        is False
    )


# Aurora Serverless v2's max_connections follows the memory of its maximum capacity (about
# 2 GiB per ACU), with the instance formula LEAST(memory / 9531392, 5000); 80% of it is taken,
# as for the RDS classes (tests/stack/test_template.py).
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.setting-capacity.html
STARTER_RECOMMENDED_RESERVATIONS = {
    # docs/deploy.md: once the account's concurrency quota allows reserving (>= 100 + these).
    "AuthReservedConcurrency": "35",
    "TasksReservedConcurrency": "80",
    "ListsReservedConcurrency": "5",
    "NotificationsReservedConcurrency": "20",
    "DeadlineCheckReservedConcurrency": "1",
    "EmailFeedbackReservedConcurrency": "2",
}


@pytest.mark.parametrize("max_capacity", ["1", "2"])
def test_starter_connection_budget_at_its_maximum_capacity(
    template: dict[str, Any], max_capacity: str
) -> None:
    """Without a proxy each function container holds its own connection: with every function
    reserved, the sum (+1 for the migration) stays under max_connections at MaxCapacity. With
    none reserved (starter's default: a new account's quota of 10 cannot reserve), the account's
    concurrency is the bound: 10 connections on a new account."""
    max_connections = min(int(int(max_capacity) * 2 * 2**30 * 0.8 / 9531392), 5000)
    stack = Stack(template, {"Profile": "starter", "DatabaseMaxCapacity": max_capacity})
    assert all(stack.parameters[p] == "profile" for p in STARTER_RECOMMENDED_RESERVATIONS)
    reserved = Stack(
        template,
        {
            "Profile": "starter",
            "DatabaseMaxCapacity": max_capacity,
            "NotificationEmailSender": "reminders@example.com",
            "SesVpcEndpoint": "api",
            **STARTER_RECOMMENDED_RESERVATIONS,
        },
    )
    total = 1
    for function in ("Auth", "Tasks", "Lists", "Notifications", "DeadlineCheck", "EmailFeedback"):
        setting = reserved.resources[f"{function}Function"]["Properties"][
            "ReservedConcurrentExecutions"
        ]
        total += int(reserved.value(setting))
    assert total == 144
    assert max_connections == {"1": 180, "2": 360}[max_capacity]
    assert total <= max_connections


# Properties whose change makes CloudFormation replace an RDS instance (a new, empty database):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-rds-dbinstance.html
DB_INSTANCE_REPLACED_BY = (
    "DBInstanceIdentifier",
    "Engine",
    "DBName",
    "MasterUsername",
    "StorageEncrypted",
    "KmsKeyId",
    "DBClusterIdentifier",
)


def test_switching_profiles_keeps_or_snapshots_the_data(template: dict[str, Any]) -> None:
    """standard <-> production changes the instance in place (class, Multi-AZ, storage: none
    of them replaces it). starter <-> the others swaps the database itself (an Aurora cluster
    for an RDS instance): CloudFormation creates the new, empty one and deletes the old one
    under its DeletionPolicy, Snapshot by default, so the data is left in a final snapshot
    (docs/deploy.md: move it with pg_dump / pg_restore before switching)."""
    standard, production = Stack(template, {}), Stack(template, {"Profile": "production"})
    for field in DB_INSTANCE_REPLACED_BY:
        before = standard.resources["Database"]["Properties"].get(field)
        after = production.resources["Database"]["Properties"].get(field)
        assert before == after, field
    assert standard.value(standard.resources["Database"]["Properties"]["DBInstanceClass"]) != (
        production.value(production.resources["Database"]["Properties"]["DBInstanceClass"])
    )
    starter = Stack(template, {"Profile": "starter"})
    assert "Database" not in starter.resources
    assert "DatabaseCluster" not in standard.resources
    for stack, data in ((starter, "DatabaseCluster"), (standard, "Database")):
        resource = stack.resources[data]
        assert stack.value(resource["DeletionPolicy"]) == "Snapshot", data
        assert resource["UpdateReplacePolicy"] == "Snapshot", data
    # The signing keys are the same resource in every profile: kept, so issued tokens survive.
    assert "JwtSigningSecret" in starter.resources
    assert "JwtSigningSecret" in standard.resources
    # The app role's password exists only where the functions log in with it (RDS Proxy):
    # leaving starter creates it and the migration sets it; entering starter leaves it behind
    # under its DeletionPolicy (Retain, with the data) and the role loses its password.
    assert "AppDatabaseSecret" not in starter.resources
    secret = standard.resources["AppDatabaseSecret"]
    assert standard.value(secret["DeletionPolicy"]) in ("RetainExceptOnCreate", "Delete")


def test_dual_stack_functions_wait_for_their_subnets_ipv6_blocks(template: dict[str, Any]) -> None:
    """Lambda refuses Ipv6AllowedForDualStack on subnets without IPv6: in starter every such
    function is created after the subnets' IPv6 blocks. The other profiles' subnets are never
    touched (a changed subnet under a running database would be a risky update)."""
    stack = Stack(template, {"Profile": "starter"})
    checked = 0
    for name, resource in stack.resources.items():
        vpc = resource.get("Properties", {}).get("VpcConfig", {})
        if resource["Type"] == "AWS::Lambda::Function" and vpc.get("Ipv6AllowedForDualStack"):
            assert {"PrivateSubnetAIpv6", "PrivateSubnetBIpv6"} <= stack.dependencies(name), name
            checked += 1
    assert checked >= 5
    for profile in ("standard", "production"):
        other = Stack(template, {"Profile": profile})
        kinds = {resource["Type"] for resource in other.resources.values()}
        assert not kinds & {"AWS::EC2::SubnetCidrBlock", "AWS::EC2::VPCCidrBlock"}, profile
        subnet = other.resources["PrivateSubnetA"]["Properties"]
        assert "Ipv6CidrBlock" not in subnet, profile
