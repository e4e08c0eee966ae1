"""`make cost`: the monthly bill computed from the transformed template (localdev/cost.py).

Every billable resource type has a price; docs/deploy.md's table is the tool's output; and the
pricing of a scale-to-zero database (Aurora Serverless v2, 0 ACUs when paused, no proxy, no
interface endpoints, no SnapStart) is checked on the template as the starter profile will shape
it, before that profile lands in the template."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from localdev import cost


@cache
def transformed() -> dict[str, Any]:
    return cost.transformed_template()


def test_every_resource_type_in_the_template_is_priced_or_known_free() -> None:
    template = transformed()
    for profile in ("standard", "production"):
        stack = cost.Stack(template, cost.profile_parameters(template, profile)[0])
        assert cost.unpriced_types(stack) == set(), profile
    # A resource type nobody priced fails the tool, not just this test.
    broken = copy.deepcopy(template)
    broken["Resources"]["Unpriced"] = {"Type": "AWS::EKS::Cluster", "Properties": {}}
    with pytest.raises(SystemExit, match="AWS::EKS::Cluster"):
        cost.bill(broken, "standard")


def test_docs_deploy_cost_table_is_the_tools_output() -> None:
    documented = cost.documented_table(cost.DOCS.read_text())
    assert documented is not None, "docs/deploy.md lost its cost table markers"
    assert documented == cost.docs_table(transformed()), "run make cost-docs"


def test_fixed_lines_of_the_standard_profile() -> None:
    bill = cost.bill(transformed(), "standard")
    lines = {line.item: line for line in bill.lines}
    assert lines["DatabaseProxy: RDS Proxy"].usd["idle"] == pytest.approx(21.90)
    assert lines["Database: RDS db.t4g.micro"].usd["idle"] == pytest.approx(11.68)
    endpoints = [line for line in bill.lines if "interface endpoint" in line.item]
    assert sum(line.usd["idle"] for line in endpoints) == pytest.approx(29.20)
    assert bill.total("1M") > bill.total("idle")
    assert bill.total("10M") > bill.total("1M")


def scale_to_zero(template: dict[str, Any], *, gate: bool = True) -> dict[str, Any]:
    """The transformed template as the starter profile shapes it: an Aurora Serverless v2
    cluster with MinCapacity 0 in place of the instance, no proxy, no interface endpoints, no
    NAT, SnapStart off, functions logging in with IAM (no database secrets)."""
    shaped = copy.deepcopy(template)
    resources = shaped["Resources"]
    for name in ("DatabaseProxy", "DatabaseProxyTargetGroup", "AppDatabaseSecret"):
        resources.pop(name, None)
    for name in [n for n, r in resources.items() if r["Type"] == "AWS::EC2::VPCEndpoint"]:
        if resources[name]["Properties"].get("VpcEndpointType") == "Interface":
            resources.pop(name)
    resources["DatabaseCluster"] = {
        "Type": "AWS::RDS::DBCluster",
        "Properties": {
            "Engine": "aurora-postgresql",
            "ManageMasterUserPassword": True,
            "ServerlessV2ScalingConfiguration": {
                "MinCapacity": 0,
                "MaxCapacity": 4,
                "SecondsUntilAutoPause": 300,
            },
        },
    }
    resources["Database"] = {
        "Type": "AWS::RDS::DBInstance",
        "Properties": {
            "Engine": "aurora-postgresql",
            "DBInstanceClass": "db.serverless",
            "DBClusterIdentifier": {"Ref": "DatabaseCluster"},
        },
    }
    for resource in resources.values():
        if resource["Type"] == "AWS::Lambda::Function":
            resource["Properties"].pop("SnapStart", None)
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            if not gate:
                variables.pop("DEADLINE_GATE_TABLE", None)
    return shaped


def test_a_scale_to_zero_stack_costs_cents_at_idle_and_the_gate_keeps_it_so() -> None:
    shaped = scale_to_zero(transformed())
    bill = cost.bill(shaped, "standard")
    report = cost.text_report(bill)
    print(report)
    assert bill.total("idle") <= 3.00, report
    wakeups = next(line for line in bill.lines if "deadline check wake-ups" in line.item)
    assert wakeups.usd["idle"] == 0.0
    assert "deadline gate" in wakeups.basis
    assert not any("SnapStart" in line.item for line in bill.lines)
    ungated = cost.bill(scale_to_zero(transformed(), gate=False), "standard")
    every_run = next(line for line in ungated.lines if "deadline check wake-ups" in line.item)
    # 2,920 runs, each keeping a 0.5 ACU instance up for 5.5 minutes: about $16 a month.
    assert every_run.usd["idle"] == pytest.approx(2920 * 330 / 3600 * 0.5 * 0.12)
    assert ungated.total("idle") > bill.total("idle") + 15
