"""cipp_hardening/drift.py, table by table: what `verify` reports when the tenant differs from the plan.

The live objects get ids of their own (as the tenant gives them), never the plan's placeholders, so the
mapping from the plan's location id to the tenant's is exercised on every row.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cipp_hardening.commands.plan import build_plan
from cipp_hardening.config import MspStack
from cipp_hardening.drift import body_differences, location_problems, policy_drift
from cipp_hardening.scenario_files import config_from_stack_file
from tests.helpers import ROOT


def _msp_config() -> MspStack:
    config = config_from_stack_file(ROOT / "Pulumi.example.yaml")
    assert isinstance(config, MspStack)
    return config


CONFIG = _msp_config()
PLAN = build_plan("example")
PLANNED_POLICIES = PLAN.graph_objects("policy")
PLANNED_LOCATIONS = PLAN.graph_objects("namedLocation")
PART_A = CONFIG.technician_access.display_name
PART_B = CONFIG.service_account.display_name
TRUSTED = CONFIG.trusted_location.display_name
GROUP = "00000000-0000-0000-0000-0000000f00aa"


def deployed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What `pulumi up` leaves: the plan's bodies with ids of the tenant's own, references rewritten."""
    renamed = {str(loc["id"]).lower(): str(uuid.uuid4()) for loc in PLANNED_LOCATIONS}
    locations = [{**copy.deepcopy(loc), "id": renamed[str(loc["id"]).lower()]} for loc in PLANNED_LOCATIONS]
    policies = []
    for planned in PLANNED_POLICIES:
        live = {**copy.deepcopy(planned), "id": str(uuid.uuid4()), "modifiedDateTime": "2026-12-01T10:00:00Z"}
        where = live["conditions"].get("locations") or {}
        for key in ("includeLocations", "excludeLocations"):
            if isinstance(where.get(key), list):
                where[key] = [renamed.get(str(item).lower(), item) for item in where[key]]
        policies.append(live)
    return policies, locations


def named(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in objects if o.get("displayName") == name)


def drift_of(policies: list[dict[str, Any]], locations: list[dict[str, Any]]) -> list[str]:
    return location_problems(CONFIG, locations) + policy_drift(
        CONFIG, PLANNED_POLICIES, PLANNED_LOCATIONS, policies, locations
    )


def test_a_deployed_stack_with_the_tenants_own_ids_has_no_drift() -> None:
    assert drift_of(*deployed()) == []


Edit = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]


def _exclude_group_in_part_a(policies: list[dict[str, Any]], _: list[dict[str, Any]]) -> None:
    named(policies, PART_A)["conditions"]["users"]["excludeGroups"] = [GROUP]  # the classic portal bypass


def _part_a_enabled(policies: list[dict[str, Any]], _: list[dict[str, Any]]) -> None:
    named(policies, PART_A)["state"] = "disabled"


def _part_b_every_time_dropped(policies: list[dict[str, Any]], _: list[dict[str, Any]]) -> None:
    named(policies, PART_B)["sessionControls"] = None


def _a_second_part_a(policies: list[dict[str, Any]], _: list[dict[str, Any]]) -> None:
    policies.append({**copy.deepcopy(named(policies, PART_A)), "id": str(uuid.uuid4())})


def _two_trusted_locations(_: list[dict[str, Any]], locations: list[dict[str, Any]]) -> None:
    locations.append({**copy.deepcopy(named(locations, TRUSTED)), "id": str(uuid.uuid4())})


def _location_untrusted(_: list[dict[str, Any]], locations: list[dict[str, Any]]) -> None:
    named(locations, TRUSTED)["isTrusted"] = False


def _range_added(_: list[dict[str, Any]], locations: list[dict[str, Any]]) -> None:
    named(locations, TRUSTED)["ipRanges"].append(
        {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "0.0.0.0/1"}
    )


DRIFTS: dict[str, tuple[Edit, str]] = {
    "an excludeGroups only the tenant has": (
        _exclude_group_in_part_a,
        f"policy '{PART_A}' differs from the plan: "
        f"conditions.users.excludeGroups: the tenant has [{GROUP}], the plan nothing",
    ),
    "Part A's state changed": (
        _part_a_enabled,
        f"policy '{PART_A}' differs from the plan: state: the tenant has 'disabled'",
    ),
    "Part B's session controls removed": (
        _part_b_every_time_dropped,
        f"policy '{PART_B}' differs from the plan: sessionControls",
    ),
    "a second policy named like Part A": (
        _a_second_part_a,
        f"policy '{PART_A}': 2 policies in the tenant with that name",
    ),
    "two trusted locations of one name": (_two_trusted_locations, f"named location '{TRUSTED}': 2 in the tenant"),
    "the location untrusted": (_location_untrusted, f"named location '{TRUSTED}' is not marked trusted"),
    "a range added to the location": (_range_added, "holds ranges the stack does not declare: 0.0.0.0/1"),
}


@pytest.mark.parametrize("kind", sorted(DRIFTS))
def test_each_kind_of_drift_is_reported(kind: str) -> None:
    edit, expected = DRIFTS[kind]
    policies, locations = deployed()
    edit(policies, locations)
    found = drift_of(policies, locations)
    assert any(line.startswith(expected) or expected in line for line in found), found


@pytest.mark.parametrize(
    ("planned", "live"),
    [
        ({"a": None, "b": [], "c": ""}, {}),  # absent, null and empty alike
        ({"ids": ["AB", "cd"]}, {"ids": ["CD", "ab"]}),  # id lists as sets, case-insensitively
        ({"x": 1}, {"x": 1, "id": "server", "modifiedDateTime": "now", "@odata.context": "c"}),  # server-set
    ],
)
def test_what_is_not_a_difference(planned: dict[str, Any], live: dict[str, Any]) -> None:
    assert body_differences(planned, live) == []


def test_a_field_only_the_tenant_has_is_a_difference() -> None:
    assert body_differences({"users": {"include": ["a"]}}, {"users": {"include": ["a"], "exclude": ["b"]}}) == [
        "users.exclude: the tenant has [b], the plan nothing"
    ]
