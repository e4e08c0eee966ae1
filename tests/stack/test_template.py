"""The production template's promises, read from template.yaml itself (CloudFormation tags kept
as {"Ref": ...} / {"Fn::GetAtt": ...} by the local loader) and from samconfig.toml."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localdev.template import ROOT, TEMPLATE
from localdev.template import _CloudFormationLoader as CloudFormationLoader

PROFILES = ("starter", "standard", "production")
HTTP_API_MAX_TIMEOUT_SECONDS = 29  # what the contract allows API Gateway (hard limit 30 s)
API_FUNCTIONS = (
    "AuthFunction",
    "TasksFunction",
    "MetaFunction",
    "NotificationsFunction",
    "ListsFunction",
)
DATABASE_FUNCTIONS = ("AuthFunction", "TasksFunction", "NotificationsFunction", "ListsFunction")
# Functions with no HTTP route that use the database as the API functions do.
SCHEDULED_FUNCTIONS = ("DeadlineCheckFunction",)
EVENT_FUNCTIONS = ("EmailFeedbackFunction",)  # invoked by SNS
# Memory of the RDS classes a Taskline stack is likely to use (GiB).
INSTANCE_MEMORY_GIB = {
    "db.t4g.micro": 1,
    "db.t4g.small": 2,
    "db.t4g.medium": 4,
    "db.t4g.large": 8,
    "db.m7g.large": 8,
    "db.r7g.large": 16,
}
# Connections the deploy-time migration may hold (it runs once per deploy).
MIGRATION_CLIENTS = 1
# Every function that opens database connections, and the parameter reserving its concurrency.
RESERVED_CONCURRENCY = {
    "AuthFunction": "AuthReservedConcurrency",
    "TasksFunction": "TasksReservedConcurrency",
    "ListsFunction": "ListsReservedConcurrency",
    "NotificationsFunction": "NotificationsReservedConcurrency",
    "DeadlineCheckFunction": "DeadlineCheckReservedConcurrency",
    "EmailFeedbackFunction": "EmailFeedbackReservedConcurrency",
}
# How long a new proxy's target may take to become available after CloudFormation reported the
# target group created (minutes on a first deploy); the migration waits for it.
PROXY_TARGET_REGISTRATION_SECONDS = 300


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    return document


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def default(template: dict[str, Any], name: str) -> Any:
    return template["Parameters"][name]["Default"]


def value(template: dict[str, Any], node: Any, overrides: dict[str, str] | None = None) -> Any:
    """A literal, the value of the parameter a {"Ref": ...} names (its default unless
    overridden), or a Profile* lookup: a parameter left at "profile" takes the profile's value
    (Fn::FindInMap with AWS::LanguageExtensions' DefaultValue)."""
    overrides = overrides or {}
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in template["Parameters"]:
        return overrides.get(node["Ref"], default(template, node["Ref"]))
    if isinstance(node, dict) and set(node) == {"Fn::FindInMap"}:
        mapping, top, second, *fallback = node["Fn::FindInMap"]
        top, second = value(template, top, overrides), value(template, second, overrides)
        found = template["Mappings"][mapping].get(str(top), {}).get(str(second))
        if found is None and fallback:
            return value(template, fallback[0]["DefaultValue"], overrides)
        return found
    return node


def profile_lookup(name: str) -> dict[str, Any]:
    """How the template reads a parameter that a profile may set."""
    return {
        "Fn::FindInMap": [
            f"Profile{name}",
            {"Ref": name},
            {"Ref": "Profile"},
            {"DefaultValue": {"Ref": name}},
        ]
    }


def getatt(node: Any) -> tuple[str, str] | None:
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        parts = target.split(".", 1) if isinstance(target, str) else target
        return parts[0], parts[1]
    return None


def function_setting(template: dict[str, Any], function: str, key: str) -> Any:
    properties = template["Resources"][function]["Properties"]
    if key in properties:
        return properties[key]
    return template["Globals"]["Function"][key]


def not_starter(node: Any) -> Any:
    """The branch of {"Fn::If": [IsStarter, ...]} the standard and production profiles take."""
    if isinstance(node, dict) and set(node) == {"Fn::If"} and node["Fn::If"][0] == "IsStarter":
        return node["Fn::If"][2]
    return node


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][function]["Properties"].get("Environment", {})
    variables.update(own.get("Variables", {}))
    return variables


# --- Database -------------------------------------------------------------------------------


def test_database_is_postgresql_17_encrypted_private_and_managed_by_rds(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    database = resources["Database"]  # standard and production; starter: test_starter_*
    properties = database["Properties"]
    assert properties["Engine"] == "postgres"
    assert str(value(template, properties["EngineVersion"])).split(".")[0] == "17"
    assert properties["StorageEncrypted"] is True
    assert properties["PubliclyAccessible"] is False
    assert properties["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in properties
    # Protection is switched on after the create (DatabaseProtection), never at create time.
    assert "DeletionProtection" not in properties
    protection = template["Resources"]["DatabaseProtection"]["Properties"]
    assert value(template, protection["DeletionProtection"]) == "true"
    assert value(template, database["DeletionPolicy"]) == "Snapshot"
    assert value(template, properties["BackupRetentionPeriod"]) >= 7
    assert properties["MultiAZ"] == profile_lookup("DatabaseMultiAz")
    assert properties["DBInstanceClass"] == profile_lookup("DatabaseInstanceClass")
    assert value(template, properties["MultiAZ"]) == "false"  # the standard profile
    assert value(template, properties["MultiAZ"], {"Profile": "production"}) == "true"
    # An explicit value overrides the profile's.
    overridden = {"Profile": "production", "DatabaseInstanceClass": "db.r7g.large"}
    assert value(template, properties["DBInstanceClass"], overridden) == "db.r7g.large"
    assert properties["DBSubnetGroupName"] == {"Ref": "DatabaseSubnetGroup"}


def test_database_requires_tls(resources: dict[str, Any]) -> None:
    database = resources["Database"]["Properties"]
    group = resources[database["DBParameterGroupName"]["Ref"]]["Properties"]
    assert group["Family"] == "postgres17"
    assert group["Parameters"]["rds.force_ssl"] == "1"
    assert group["Parameters"]["ssl_min_protocol_version"] == "TLSv1.2"


def test_functions_reach_the_database_only_through_a_tls_only_proxy(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    [(proxy_name, proxy)] = of_type(resources, "AWS::RDS::DBProxy").items()
    assert proxy["Properties"]["RequireTLS"] is True
    assert proxy["Properties"]["EngineFamily"] == "POSTGRESQL"
    assert {auth["AuthScheme"] for auth in proxy["Properties"]["Auth"]} == {"SECRETS"}
    for function in (*DATABASE_FUNCTIONS, *SCHEDULED_FUNCTIONS, "MigrationFunction"):
        env = environment(template, function)
        # starter: the Aurora cluster (no proxy: it would keep the cluster from pausing).
        condition, starter_host, proxy_host = env["DB_HOST"]["Fn::If"]
        assert condition == "IsStarter", function
        assert getatt(proxy_host) == (proxy_name, "Endpoint"), function
        assert getatt(starter_host) == ("DatabaseCluster", "Endpoint.Address"), function
        assert env["DB_SSL_MODE"] == "verify-full", function
        assert "DATABASE_URL" not in env, function


def test_only_the_proxy_may_reach_the_database_and_only_functions_the_proxy(
    resources: dict[str, Any],
) -> None:
    ingress = of_type(resources, "AWS::EC2::SecurityGroupIngress")
    into: dict[str, set[str]] = {}
    for rule in ingress.values():
        properties = rule["Properties"]
        assert "CidrIp" not in properties
        assert "CidrIpv6" not in properties
        target = properties["GroupId"]["Ref"]
        into.setdefault(target, set()).add(properties["SourceSecurityGroupId"]["Ref"])
    for group in of_type(resources, "AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in group["Properties"]
    database_group = resources["Database"]["Properties"]["VPCSecurityGroups"][0]["Ref"]
    cluster_groups = resources["DatabaseCluster"]["Properties"]["VpcSecurityGroupIds"]
    assert cluster_groups == [{"Ref": database_group}]
    proxy_group = resources["DatabaseProxy"]["Properties"]["VpcSecurityGroupIds"][0]["Ref"]
    assert into[database_group] == {proxy_group, "FunctionSecurityGroup", "MigrationSecurityGroup"}
    assert into[proxy_group] == {"FunctionSecurityGroup", "MigrationSecurityGroup"}
    # The functions reach the database directly only in starter, where there is no proxy.
    for rule in ingress.values():
        properties = rule["Properties"]
        if properties["GroupId"] == {"Ref": database_group}:
            direct = properties["SourceSecurityGroupId"]["Ref"] != proxy_group
            assert rule["Condition"] == ("IsStarter" if direct else "UseProxy")


# Characters EC2 accepts in security group and rule descriptions (up to 255 of them):
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html
EC2_DESCRIPTION = re.compile(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}")


def security_group_descriptions(resources: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            yield name, properties["GroupDescription"]
            for rule in (
                *properties.get("SecurityGroupEgress", []),
                *properties.get("SecurityGroupIngress", []),
            ):
                yield name, rule.get("Description", "")
        elif resource["Type"] in (
            "AWS::EC2::SecurityGroupEgress",
            "AWS::EC2::SecurityGroupIngress",
        ):
            yield name, properties.get("Description", "")


def test_every_security_group_description_uses_only_characters_ec2_accepts(
    resources: dict[str, Any],
) -> None:
    """EC2 rejects the whole rule (and CloudFormation the deploy) for one apostrophe."""
    checked = 0
    for name, description in security_group_descriptions(resources):
        assert isinstance(description, str), name  # literal, so it can be checked here
        assert EC2_DESCRIPTION.fullmatch(description), (name, description)
        checked += 1
    assert checked >= 20
    assert not EC2_DESCRIPTION.fullmatch("the VPC's own endpoints")


def test_functions_using_data_run_in_the_private_subnets(resources: dict[str, Any]) -> None:
    private = {
        "Fn::If": [
            "CreateVpc",
            [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}],
            {"Fn::Split": [",", {"Ref": "ExistingPrivateSubnetIds"}]},
        ]
    }
    for name in (*DATABASE_FUNCTIONS, *SCHEDULED_FUNCTIONS, "MigrationFunction"):
        vpc = resources[name]["Properties"]["VpcConfig"]
        assert vpc["SubnetIds"] == private, name
        group = "MigrationSecurityGroup" if name == "MigrationFunction" else "FunctionSecurityGroup"
        assert vpc["SecurityGroupIds"] == [{"Ref": group}], name


def test_no_nat_gateway_and_no_internet_gateway(resources: dict[str, Any]) -> None:
    kinds = {r["Type"] for r in resources.values()}
    assert "AWS::EC2::NatGateway" not in kinds
    assert "AWS::EC2::InternetGateway" not in kinds
    endpoints = of_type(resources, "AWS::EC2::VPCEndpoint")
    services = {
        str(e["Properties"]["ServiceName"].get("Fn::Sub", "")).rsplit(".", 1)[-1]
        for e in endpoints.values()
        if isinstance(e["Properties"]["ServiceName"], dict)
        and "Fn::Sub" in e["Properties"]["ServiceName"]
    }
    assert {"secretsmanager", "sns", "s3"} <= services
    assert "SesEndpoint" in endpoints


def test_private_subnets_span_two_availability_zones(resources: dict[str, Any]) -> None:
    subnets = of_type(resources, "AWS::EC2::Subnet")
    zones = sorted(s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values())
    assert zones == [0, 1]
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())


# --- Secrets ---------------------------------------------------------------------------------


def test_no_secret_travels_in_parameters_or_environment_variables(
    template: dict[str, Any],
) -> None:
    assert not any(p.get("NoEcho") for p in template["Parameters"].values())
    for function in of_type(template["Resources"], "AWS::Serverless::Function"):
        for name, setting in environment(template, function).items():
            if name in {"SECRETS_MAX_AGE_SECONDS", "IDEMPOTENCY_KEY_TTL_SECONDS"}:
                continue  # durations that merely have SECRET or KEY in their names
            if any(word in name for word in ("SECRET", "PASSWORD", "DATABASE_URL", "KEY")):
                assert name.endswith("_ARN"), f"{function}: {name}"
                assert isinstance(setting, dict), f"{function}: {name} must reference a secret"


def test_the_jwt_key_is_generated_by_cloudformation(resources: dict[str, Any]) -> None:
    generated = resources["JwtSigningSecret"]["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "current"
    assert generated["PasswordLength"] >= 32


def test_functions_may_read_only_the_secrets_they_use(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    def readable(function: str) -> set[str]:
        found = set()
        for policy in resources[function]["Properties"].get("Policies", []):
            if "Fn::If" in policy:  # by profile or option: either branch may apply
                policy = next((b for b in policy["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}), {})
            if "AWSSecretsManagerGetSecretValuePolicy" not in policy:
                continue  # other services' policies (SNS, SES, rds-db:connect)
            arn = policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
            arns = arn["Fn::If"][1:] if "Fn::If" in arn else [arn]
            for one in arns:
                found.add(one.get("Ref") or ".".join(getatt(one) or ()))
        return found

    assert readable("AuthFunction") == {"JwtSigningSecret", "AppDatabaseSecret"}
    assert readable("TasksFunction") == {"JwtSigningSecret", "AppDatabaseSecret"}
    assert readable("MigrationFunction") == {
        "Database.MasterUserSecret.SecretArn",
        "DatabaseCluster.MasterUserSecret.SecretArn",
        "AppDatabaseSecret",
    }
    assert readable("MetaFunction") == set()
    # It signs the unsubscribe links of its emails (with the JWT keys, another audience).
    assert readable("DeadlineCheckFunction") == {"AppDatabaseSecret", "JwtSigningSecret"}
    assert readable("NotificationsFunction") == {"JwtSigningSecret", "AppDatabaseSecret"}
    assert readable("EmailFeedbackFunction") == {"AppDatabaseSecret"}
    assert readable("ListsFunction") == {"JwtSigningSecret", "AppDatabaseSecret"}


# --- Functions ---------------------------------------------------------------------------------


def test_functions_run_python_3_13_on_arm64_with_tracing_and_kept_logs(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["Tracing"] == "Active"
    for name, function in of_type(resources, "AWS::Serverless::Function").items():
        properties = function["Properties"]
        assert "Runtime" not in properties, name
        assert "Architectures" not in properties, name
        group = resources[properties["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group["Properties"]["RetentionInDays"] == profile_lookup("LogRetentionDays"), name


def client_socket_timeout(env: dict[str, Any]) -> float:
    """pg8000's socket timeout in a function with this environment (taskline.db)."""
    from taskline.db import socket_timeout_seconds
    from taskline.settings import Settings

    settings = Settings(
        db_connect_timeout_seconds=float(env["DB_CONNECT_TIMEOUT_SECONDS"]),
        db_statement_timeout_ms=int(env["DB_STATEMENT_TIMEOUT_MS"]),
    )
    return socket_timeout_seconds(settings)


def test_timeouts_are_ordered_statement_then_lambda_then_api_gateway(
    template: dict[str, Any],
) -> None:
    borrow = template["Resources"]["DatabaseProxyTargetGroup"]["Properties"][
        "ConnectionPoolConfigurationInfo"
    ]["ConnectionBorrowTimeout"]
    for function in (*API_FUNCTIONS, *SCHEDULED_FUNCTIONS, *EVENT_FUNCTIONS):
        if function == "MetaFunction":
            continue  # no database
        # The default profile (standard); starter's longer waits for a resuming Aurora are
        # checked on the transformed template (test_template_lifecycle.py).
        env = {k: not_starter(v) for k, v in environment(template, function).items()}
        statement = int(env["DB_STATEMENT_TIMEOUT_MS"]) / 1000
        connect = float(env["DB_CONNECT_TIMEOUT_SECONDS"])
        lambda_timeout = not_starter(function_setting(template, function, "Timeout"))
        assert statement + connect < lambda_timeout, function
        # A statement may first wait for a pooled connection in RDS Proxy, then run: both must
        # end before the client's socket gives up, or a saturated proxy is a client timeout.
        assert borrow + statement < client_socket_timeout(env), function
        assert client_socket_timeout(env) < lambda_timeout, function
        if function not in API_FUNCTIONS:
            continue
        for event in template["Resources"][function]["Properties"]["Events"].values():
            integration = event["Properties"]["TimeoutInMillis"] / 1000
            assert lambda_timeout < integration <= HTTP_API_MAX_TIMEOUT_SECONDS, function


def test_migrations_time_out_before_the_function_and_the_function_before_cloudformation(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    from functions.migrate import app as migrate_app

    env = environment(template, "MigrationFunction")
    function_timeout = function_setting(template, "MigrationFunction", "Timeout")
    statements = int(env["MIGRATION_STATEMENT_TIMEOUT_MS"]) / 1000
    socket = float(env["MIGRATION_SOCKET_TIMEOUT_SECONDS"])
    assert statements + migrate_app.MIGRATION_MARGIN_SECONDS <= function_timeout
    # Its own socket timeout outlasts a migration step (the API functions' would be 8 s) ...
    assert statements < socket
    assert socket + migrate_app.MIGRATION_MARGIN_SECONDS <= function_timeout
    # ... and on a first deploy it can wait for RDS Proxy's target to become available
    # (registering > unavailable > available) and still have the whole statement budget.
    assert function_timeout - statements - migrate_app.MIGRATION_MARGIN_SECONDS >= (
        PROXY_TARGET_REGISTRATION_SECONDS
    )
    assert function_timeout < resources["DatabaseMigrations"]["Properties"]["ServiceTimeout"]
    protection = resources["DatabaseProtection"]["Properties"]["ServiceTimeout"]
    assert function_setting(template, "DatabaseProtectionFunction", "Timeout") < protection


def test_snapstart_on_published_versions_for_the_api_functions(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """On in standard and production, off in starter (its cache is billed per version)."""
    switch = template["Conditions"]["SnapStartOn"]
    assert switch == {"Fn::Equals": [profile_lookup("SnapStart"), "true"]}
    on = {p: value(template, profile_lookup("SnapStart"), {"Profile": p}) for p in PROFILES}
    assert on == {"starter": "false", "standard": "true", "production": "true"}
    for name in API_FUNCTIONS:
        properties = resources[name]["Properties"]
        # ListsFunction: never (rarely called; not worth a cache billed per version).
        applied = (
            "None"
            if name == "ListsFunction"
            else {"Fn::If": ["SnapStartOn", "PublishedVersions", "None"]}
        )
        assert properties["SnapStart"] == {"ApplyOn": applied}, name
        assert properties["AutoPublishAlias"] == "live", name
        # Each function registers its hooks when imported (tests/layer/test_snapstart.py runs
        # them): itself, or through the HTTP functions' one setup, `http_function()`.
        source = (ROOT / properties["CodeUri"] / "app.py").read_text()
        assert "snapstart.register_hooks(" in source or "= http_function()" in source, name
    setup = (ROOT / "shared" / "taskline" / "api" / "function.py").read_text()
    assert "snapstart.register_hooks()" in setup


@pytest.mark.parametrize("environment_name", ["default", "prod"])
def test_reserved_concurrency_fits_the_proxy_connection_budget(
    template: dict[str, Any], environment_name: str
) -> None:
    """sum(reserved concurrency) x DB_POOL_SIZE stays under what RDS Proxy may open, so even
    fully pinned sessions never queue. max_connections on RDS PostgreSQL is
    LEAST(DBInstanceClassMemory / 9531392, 5000); DBInstanceClassMemory is taken as 80% of the
    class's memory (the rest is reserved by RDS)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides: dict[str, str] = {}
    section = config[environment_name].get("deploy", {}).get("parameters", {})
    for item in section.get("parameter_overrides", []):
        key, _, setting = item.partition("=")
        overrides[key] = setting
    for key in overrides:
        assert key in template["Parameters"], f"{environment_name}: unknown parameter {key}"

    def parameter(name: str) -> Any:
        if f"Profile{name}" in template["Mappings"]:
            return value(template, profile_lookup(name), overrides)
        return value(template, {"Ref": name}, overrides)

    memory = INSTANCE_MEMORY_GIB[parameter("DatabaseInstanceClass")] * 2**30
    max_connections = min(math.floor(memory * 0.8 / 9531392), 5000)
    budget = math.floor(max_connections * int(parameter("ProxyMaxConnectionsPercent")) / 100)
    pool_size = int(environment(template, "AuthFunction")["DB_POOL_SIZE"])
    resources = template["Resources"]
    # Every function that connects is listed, and wired to its parameter.
    for function, resource in of_type(resources, "AWS::Serverless::Function").items():
        uses_database = "DB_HOST" in environment(template, function)
        vpc = "VpcConfig" in resource["Properties"]
        if function in ("MigrationFunction",) or not (uses_database and vpc):
            continue
        assert function in RESERVED_CONCURRENCY, function
        reserved_setting = resource["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
        assert reserved_setting[1] == profile_lookup(RESERVED_CONCURRENCY[function]), function
    reserved = {f: int(parameter(p)) for f, p in RESERVED_CONCURRENCY.items()}
    if not any(reserved.values()):
        # Nothing reserved (the default, which new accounts need): the account's concurrency
        # bounds the functions instead; RDS Proxy queues what exceeds its budget.
        assert environment_name == "default"
        return
    # One unreserved function is bounded only by the account: no budget holds then.
    assert all(reserved.values()), f"{environment_name}: reserve every function or none"
    assert (sum(reserved.values()) + MIGRATION_CLIENTS) * pool_size <= budget


def test_api_functions_wait_for_the_migrations(resources: dict[str, Any]) -> None:
    from taskline.migrate import code_head

    migrations = resources["DatabaseMigrations"]
    assert migrations["Type"].startswith("Custom::")
    properties = migrations["Properties"]
    assert getatt(properties["ServiceToken"]) == ("MigrationFunction", "Arn")
    assert properties["MigrationHead"] == code_head()  # bump it with every new migration
    assert properties["LayerVersion"] == {"Ref": "TasklineLayer"}
    for name in (*DATABASE_FUNCTIONS, *SCHEDULED_FUNCTIONS):
        assert "DatabaseMigrations" in resources[name]["DependsOn"], name


# --- Deadline checks ---------------------------------------------------------------------------


def test_deadline_checks_run_on_a_schedule_with_retries_and_a_dead_letter_queue(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    function = resources["DeadlineCheckFunction"]["Properties"]
    [event] = function["Events"].values()
    assert event["Type"] == "ScheduleV2"
    schedule = event["Properties"]
    assert value(template, schedule["ScheduleExpression"]) == "rate(15 minutes)"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    dead_letters = ("DeadlineCheckDeadLetterQueue", "Arn")
    assert getatt(schedule["DeadLetterConfig"]["Arn"]) == dead_letters
    invoke = function["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] >= 1
    assert getatt(invoke["DestinationConfig"]["OnFailure"]["Destination"]) == dead_letters
    queue = resources["DeadlineCheckDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    topic = resources["DeadlineNotificationsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"  # messages carry owners' emails
    env = environment(template, "DeadlineCheckFunction")
    assert env["NOTIFICATIONS_TOPIC_ARN"] == {"Ref": "DeadlineNotificationsTopic"}
    # Batches stop DEADLINE_RESERVE_SECONDS before the function's timeout.
    assert int(env["DEADLINE_RESERVE_SECONDS"]) < function["Timeout"]


# The functions that send email: deadline reminders, and sign-up's verification links.
EMAIL_SENDING_FUNCTIONS = ["DeadlineCheckFunction", "AuthFunction"]


@pytest.mark.parametrize("sender", EMAIL_SENDING_FUNCTIONS)
def test_emails_only_from_the_configured_sender_through_an_ses_endpoint(
    template: dict[str, Any], resources: dict[str, Any], sender: str
) -> None:
    [conditional] = [
        p
        for p in resources[sender]["Properties"]["Policies"]
        if "Fn::If" in p and p["Fn::If"][0] == "HasEmailSender"
    ]
    condition, policy, otherwise = conditional["Fn::If"]
    assert condition == "HasEmailSender"
    assert otherwise == {"Ref": "AWS::NoValue"}
    [statement] = policy["Statement"]
    # SendRawEmail carries the RFC 8058 List-Unsubscribe headers; only on our identity and set.
    assert statement["Action"] == "ses:SendRawEmail"
    assert len(statement["Resource"]) == 2
    assert "configuration-set/${EmailConfigurationSet}" in statement["Resource"][1]["Fn::Sub"]
    assert statement["Condition"] == {
        "StringEquals": {"ses:FromAddress": {"Ref": "NotificationEmailSender"}}
    }
    assert default(template, "NotificationEmailSender") == ""
    rule = template["Rules"]["EmailSenderNeedsSesApiEndpoint"]
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "SesVpcEndpoint"}, "api"]}


def test_bounces_and_complaints_reach_the_feedback_function_only_from_ses(
    resources: dict[str, Any],
) -> None:
    """SES configuration set -> event destination (bounce, complaint) -> SNS topic that only
    SES may publish to, for this set -> EmailFeedbackFunction, with a dead-letter queue."""
    for name in (
        "EmailConfigurationSet",
        "EmailFeedbackTopic",
        "EmailFeedbackTopicPolicy",
        "EmailFeedbackEventDestination",
        "EmailFeedbackFunction",
        "EmailFeedbackDeadLetterQueue",
    ):
        assert resources[name]["Condition"] == "HasEmailSender", name
    destination = resources["EmailFeedbackEventDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    event_destination = destination["EventDestination"]
    assert sorted(event_destination["MatchingEventTypes"]) == ["bounce", "complaint"]
    assert event_destination["SnsDestination"]["TopicARN"] == {"Ref": "EmailFeedbackTopic"}
    [statement] = resources["EmailFeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"]["StringEquals"] == {
        "AWS:SourceAccount": {"Ref": "AWS::AccountId"}
    }
    function = resources["EmailFeedbackFunction"]["Properties"]
    [event] = function["Events"].values()
    assert event == {"Type": "SNS", "Properties": {"Topic": {"Ref": "EmailFeedbackTopic"}}}
    assert getatt(function["DeadLetterQueue"]["TargetArn"]) == (
        "EmailFeedbackDeadLetterQueue",
        "Arn",
    )
    assert "DatabaseMigrations" in resources["EmailFeedbackFunction"]["DependsOn"]
    for sender in EMAIL_SENDING_FUNCTIONS:
        sender_env = environment_of(resources, sender)
        assert sender_env["EMAIL_CONFIGURATION_SET"]["Fn::If"][0] == "HasEmailSender"
        assert sender_env["NOTIFICATION_EMAIL_SENDER"] == {"Ref": "NotificationEmailSender"}
        assert "PUBLIC_API_URL" in sender_env


def environment_of(resources: dict[str, Any], function: str) -> dict[str, Any]:
    variables: dict[str, Any] = resources[function]["Properties"]["Environment"]["Variables"]
    return variables


# --- API ---------------------------------------------------------------------------------------


def test_cors_allows_no_origin_unless_configured_and_never_a_wildcard(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert default(template, "CorsAllowedOrigins") == ""
    cors = resources["HttpApi"]["Properties"]["CorsConfiguration"]["Fn::If"]
    assert cors[0] == "HasCors"
    assert cors[2] == {"Ref": "AWS::NoValue"}
    assert cors[1]["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert "*" not in str(cors[1])
    assert template["Conditions"]["HasCors"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CorsAllowedOrigins"}]}, ""]}]
    }


def test_api_throttles_and_logs_every_request(resources: dict[str, Any]) -> None:
    api = resources["HttpApi"]["Properties"]
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": profile_lookup("ApiThrottlingRateLimit"),
        "ThrottlingBurstLimit": profile_lookup("ApiThrottlingBurstLimit"),
    }
    assert getatt(api["AccessLogSettings"]["DestinationArn"]) == ("ApiAccessLogGroup", "Arn")
    for name in ("ApiDomainName", "ApiDomainMapping"):
        assert resources[name]["Condition"] == "HasCustomDomain"


# --- Alarms and outputs --------------------------------------------------------------------------


def test_alarms_cover_the_api_functions_database_and_queues(
    resources: dict[str, Any],
) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    watched = {
        (
            a["Properties"]["Namespace"],
            a["Properties"]["MetricName"],
            str(a["Properties"]["Dimensions"][0]["Value"]),
        )
        for a in alarms.values()
    }
    api = str({"Ref": "HttpApi"})
    database = str({"Ref": "Database"})
    assert ("AWS/ApiGateway", "5xx", api) in watched
    assert ("AWS/ApiGateway", "Latency", api) in watched
    for function in (*API_FUNCTIONS, *SCHEDULED_FUNCTIONS):
        for metric in ("Errors", "Throttles"):
            assert ("AWS/Lambda", metric, str({"Ref": function})) in watched, (function, metric)
    for metric in ("CPUUtilization", "FreeStorageSpace", "DatabaseConnections"):
        assert ("AWS/RDS", metric, database) in watched, metric
    # Publishes that keep failing are retried run after run without failing the invocation.
    assert ("Taskline", "NotificationsFailed", "taskline") in watched
    # Every dead-letter queue (the deadline schedule's) has a depth alarm.
    for queue in of_type(resources, "AWS::SQS::Queue"):
        if "DeadLetter" in queue:
            depth = ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
            dimension = str({"Fn::GetAtt": f"{queue}.QueueName"})
            assert (*depth, dimension) in watched, queue


def test_outputs_name_the_api_and_the_topics(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert "ApiUrl" in outputs
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert getatt(outputs["DatabaseRevision"]["Value"]) == ("DatabaseMigrations", "Revision")


def test_samconfig_has_default_and_prod_environments() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for environment_name in ("default", "prod"):
        deploy = config[environment_name]["deploy"]["parameters"]
        assert "CAPABILITY_AUTO_EXPAND" in deploy["capabilities"]  # LanguageExtensions
        assert config[environment_name]["global"]["parameters"]["stack_name"]
    assert config["prod"]["global"]["parameters"]["stack_name"] != "taskline"


def test_the_bcrypt_routes_have_their_own_lower_throttles(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """HTTP APIs cannot take AWS WAF: per-route limits keep sign-up and login from taking the
    whole API's budget (and the functions' bcrypt CPU) in a burst."""
    routes = resources["HttpApi"]["Properties"]["RouteSettings"]
    declared = {
        f"{event['Properties']['Method']} {event['Properties']['Path']}"
        for resource in of_type(resources, "AWS::Serverless::Function").values()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    assert set(routes) == {"POST /users", "POST /token"}
    assert set(routes) <= declared  # route keys of real routes, or API Gateway rejects them
    for key, prefix in (("POST /users", "SignUp"), ("POST /token", "Token")):
        rate = routes[key]["ThrottlingRateLimit"]["Ref"]
        burst = routes[key]["ThrottlingBurstLimit"]["Ref"]
        assert (rate, burst) == (f"{prefix}ThrottlingRateLimit", f"{prefix}ThrottlingBurstLimit")
        for profile in template["Parameters"]["Profile"]["AllowedValues"]:
            chosen = {"Profile": profile}
            api_rate = value(template, profile_lookup("ApiThrottlingRateLimit"), chosen)
            api_burst = value(template, profile_lookup("ApiThrottlingBurstLimit"), chosen)
            assert int(default(template, rate)) < int(api_rate), profile
            assert int(default(template, burst)) < int(api_burst), profile


def test_make_run_serves_the_default_profile_not_starters_settings() -> None:
    """`make run` reads the functions' environment from the template: a value that only the
    starter profile takes (an !If on IsStarter or UseDeadlineGate) comes out as the default
    profile's, not empty (an empty DB_CONNECT_TIMEOUT_SECONDS would not even parse)."""
    from localdev.template import load

    functions = load().functions
    tasks = functions["TasksFunction"]
    assert tasks.environment["DB_CONNECT_TIMEOUT_SECONDS"] == "3"
    assert tasks.environment["DB_CONNECT_RETRY_AFTER_SECONDS"] == "2"
    assert tasks.environment["DEADLINE_GATE_TABLE"] == ""
    assert tasks.environment["DB_IAM_AUTH"] == "false"
    assert tasks.timeout == 15
