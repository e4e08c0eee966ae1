"""`make cost`: the monthly bill computed from the transformed template (localdev/cost.py).

For each of the three profiles (the template's `Profile` parameter, with the samconfig.toml
environment that deploys it): every billable resource type has a price, docs/deploy.md's table
and README.md's profile table are the tool's output, and the figures meet the targets: starter
costs cents at idle, standard and production no more than before the profiles existed."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from localdev import cost

PROFILES = ("starter", "standard", "production")


@cache
def transformed() -> dict[str, Any]:
    return cost.transformed_template()


@cache
def bill(profile: str) -> cost.Bill:
    return cost.bill(transformed(), profile)


def lines(profile: str) -> dict[str, cost.Line]:
    return {line.item: line for line in bill(profile).lines}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_resource_type_of_the_profile_is_priced_or_known_free(profile: str) -> None:
    template = transformed()
    stack = cost.Stack(template, cost.profile_parameters(template, profile)[0])
    assert cost.unpriced_types(stack) == set()
    # A resource type nobody priced fails the tool, not just this test.
    broken = copy.deepcopy(template)
    broken["Resources"]["Unpriced"] = {"Type": "AWS::EKS::Cluster", "Properties": {}}
    with pytest.raises(SystemExit, match="AWS::EKS::Cluster"):
        cost.bill(broken, profile)


def test_a_profile_only_resource_without_a_price_fails_its_profile() -> None:
    """A starter-only resource (here: a second egress-only gateway type nobody priced) fails
    the starter bill, the one profile that has it."""
    broken = copy.deepcopy(transformed())
    broken["Resources"]["StarterOnly"] = {
        "Type": "AWS::EC2::TransitGateway",
        "Condition": "IsStarter",
        "Properties": {},
    }
    with pytest.raises(SystemExit, match="AWS::EC2::TransitGateway"):
        cost.bill(broken, "starter")
    cost.bill(broken, "standard")  # not in this profile: nothing to price


def test_profiles_come_from_the_template_and_samconfig() -> None:
    template = transformed()
    for profile, environment in (
        ("starter", "starter"),
        ("standard", "default"),
        ("production", "prod"),
    ):
        parameters, note = cost.profile_parameters(template, profile)
        assert parameters["Profile"] == profile
        assert note is not None, profile
        assert f"[{environment}]" in note, (profile, note)
    with pytest.raises(SystemExit, match="no 'huge' profile"):
        cost.profile_parameters(template, "huge")


def test_every_price_has_a_source_and_the_date_it_was_read() -> None:
    for key, price in cost.load_prices()["prices"].items():
        assert str(price["source"]).startswith("https://aws.amazon.com/"), key
        assert len(str(price["read"])) == 10, key
        assert price["kind"] in ("hourly", "monthly", "usage"), key


def test_generated_tables_are_the_tools_output() -> None:
    """docs/deploy.md's itemised table and README.md's profile table (`make cost-docs`)."""
    for block, expected in cost.generated_blocks(transformed()).items():
        assert block.current() is not None, f"{block.path.name} lost its generated-block markers"
        assert block.current() == expected, f"{block.path.name}: run make cost-docs"


def test_the_readme_opens_with_the_profiles_and_their_cost() -> None:
    text = cost.README_TABLE.path.read_text()
    first_section = text.index("\n## ")
    assert text.index(cost.README_TABLE.begin) < text.index("\n## ", first_section + 1)
    for profile in PROFILES:
        assert f"| `{profile}` |" in cost.README_TABLE.current(), profile  # type: ignore[operator]


def test_starter_costs_cents_at_idle_with_nothing_billed_by_the_hour() -> None:
    starter = bill("starter")
    report = cost.text_report(starter)
    assert starter.total("idle") <= 3.00, report
    assert not [line for line in starter.lines if line.kind == "hourly" and line.usd["idle"]], (
        report
    )
    # What is left at idle (a cent or more): alarms, the two secrets (JWT keys, RDS's master
    # login), storage; the 2,920 gated deadline-check runs cost a fraction of a cent.
    billed = {line.item for line in starter.lines if line.usd["idle"] >= 0.005}
    assert billed == {
        "CloudWatch alarms: 16",
        "Secrets Manager secrets: 1",
        "DatabaseCluster: master secret (RDS-managed)",
        "DatabaseCluster: Aurora storage and I/O",
    }, report
    assert not any("SnapStart" in item for item in lines("starter"))
    assert not any("RDS Proxy" in item or "interface endpoint" in item for item in lines("starter"))
    gateway = next(line for item, line in lines("starter").items() if "Egress-only" in item)
    assert gateway.usd["idle"] == 0.0


def test_the_deadline_gate_keeps_a_paused_database_asleep() -> None:
    """The check runs 2,920 times a month; with the gate it wakes Aurora only when a reminder
    can be due (prices.toml [workload] deadline_wakeups); without it, every run would."""
    wakeups = next(line for item, line in lines("starter").items() if "wake-ups" in item)
    assert "deadline gate" in wakeups.basis
    assert wakeups.usd["idle"] == 0.0
    assert 0 < wakeups.usd["1M"] < 1.0
    ungated = copy.deepcopy(transformed())
    ungated["Conditions"]["UseDeadlineGate"] = {"Fn::Equals": ["on", "off"]}
    every_run = next(
        line for line in cost.bill(ungated, "starter").lines if "wake-ups" in line.item
    )
    # 2,920 runs, each keeping a 0.5 ACU instance up for 5.5 minutes: about $16 a month.
    assert every_run.usd["idle"] == pytest.approx(2920 * 330 / 3600 * 0.5 * 0.12)


def test_the_gate_and_snapstart_are_billed_only_where_they_exist() -> None:
    for profile in ("standard", "production"):
        items = lines(profile)
        assert not any("DynamoDB" in item for item in items), profile
        assert not any("wake-ups" in item for item in items), profile
        snapstart = next(line for item, line in items.items() if item.startswith("SnapStart cache"))
        assert snapstart.usd["idle"] > 0, profile
    assert any("DynamoDB" in item for item in lines("starter"))


def test_standard_and_production_fixed_lines() -> None:
    standard, production = lines("standard"), lines("production")
    assert standard["DatabaseProxy: RDS Proxy"].usd["idle"] == pytest.approx(21.90)
    assert standard["Database: RDS db.t4g.micro"].usd["idle"] == pytest.approx(11.68)
    assert production["Database: RDS db.t4g.small Multi-AZ"].usd["idle"] == pytest.approx(46.72)
    endpoints = [line for item, line in standard.items() if "interface endpoint" in item]
    assert sum(line.usd["idle"] for line in endpoints) == pytest.approx(29.20)
    for profile in PROFILES:
        assert bill(profile).total("1M") > bill(profile).total("idle"), profile
        assert bill(profile).total("10M") > bill(profile).total("1M"), profile
