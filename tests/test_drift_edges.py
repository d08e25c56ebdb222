"""drift.py's edges that the tables of tests/test_drift.py leave open (issue 25's surviving mutants):
a policy absent from the tenant, a trusted location the tenant lacks, a range spelled with host bits."""

from __future__ import annotations

import copy
from typing import Any

from cipp_hardening.drift import body_differences, location_problems, policy_drift
from tests.test_drift import CONFIG, PART_A, PART_B, PLANNED_LOCATIONS, PLANNED_POLICIES, TRUSTED, deployed, named


def test_a_policy_missing_from_the_tenant_is_left_to_the_missing_policy_check() -> None:
    policies, locations = deployed()
    only_b = [p for p in policies if p["displayName"] != PART_A]
    assert policy_drift(CONFIG, PLANNED_POLICIES, PLANNED_LOCATIONS, only_b, locations) == []


def test_a_trusted_location_the_tenant_lacks_still_lets_part_b_be_compared() -> None:
    policies, _ = deployed()
    named(policies, PART_B)["conditions"]["users"]["excludeUsers"] = ["00000000-0000-0000-0000-0000000bad01"]
    problems = policy_drift(CONFIG, PLANNED_POLICIES, PLANNED_LOCATIONS, policies, [])
    expected = f"policy '{PART_B}' differs from the plan: conditions.users.excludeUsers"
    assert any(p.startswith(expected) for p in problems)


def test_a_tenant_location_without_an_id_maps_nothing() -> None:
    policies, locations = deployed()
    for location in locations:
        location.pop("id")
    problems = policy_drift(CONFIG, PLANNED_POLICIES, PLANNED_LOCATIONS, policies, locations)
    # Part A's location reference is the tenant's id, which the plan's cannot be mapped to: reported as it is.
    planned_id = str(named(PLANNED_LOCATIONS, TRUSTED)["id"]).lower()
    [problem] = problems
    assert problem.startswith(f"policy '{PART_A}' differs from the plan: conditions.locations.excludeLocations")
    assert problem.endswith(f"the plan [{planned_id}]")


def test_a_live_range_spelled_with_host_bits_is_the_same_network() -> None:
    _, locations = deployed()
    trusted = named(locations, TRUSTED)
    first = str(trusted["ipRanges"][0]["cidrAddress"])
    network, prefix = first.split("/")
    assert network.endswith(".0"), "the example's first range is an IPv4 network"
    trusted["ipRanges"][0]["cidrAddress"] = f"{network[:-1]}5/{prefix}"
    assert location_problems(CONFIG, locations) == []


def test_lists_of_objects_keep_their_order_and_lists_of_strings_do_not() -> None:
    planned: dict[str, Any] = {"a": ["X", "y"], "b": [{"k": 1}, {"k": 2}]}
    live = copy.deepcopy(planned)
    live["a"] = ["Y", "x"]
    assert body_differences(planned, live) == []
    live["b"] = [{"k": 2}, {"k": 1}]
    assert body_differences(planned, live) == ["b: the tenant has [{'k': 2}, {'k': 1}], the plan [{'k': 1}, {'k': 2}]"]
