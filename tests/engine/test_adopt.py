"""The article done by hand, an interrupted create, and drift of prod, through the real CLI (docs/adopt.md).

The MSP tenant is the Graph emulator; the azuread resources go through the test stand-in plugin, whose
import and create behaviour follows upstream (tools/standin/azuread_standin.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.commands.demo import DemoWorld, demo_world
from cipp_hardening.yamlfile import read_yaml
from emulators.pulumi_project import PulumiFailed, PulumiProject, steps_of
from tests.engine.msp_project import STACK, msp_project
from tests.helpers import ROOT

NAMED_LOCATION = "azuread:index/namedLocation:NamedLocation"
CA_POLICY = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"
# Pulumi.example.yaml's names and ids.
LOCATION_NAME = "Trusted - MSP Office"
PART_A = "Block CIPP Access - Outside Trusted IPs"
PART_B = "CIPP Service Account Conditional Access Policy"
TECHNICIANS = "00000000-0000-0000-0000-00000000b001"
BREAK_GLASS = ("00000000-0000-0000-0000-00000000c001", "00000000-0000-0000-0000-00000000c002")
SERVICE_ACCOUNT = "00000000-0000-0000-0000-00000000d001"
ADOPT = str(ROOT / ".venv" / "bin" / "cipp-hardening")


@pytest.fixture
def world() -> Iterator[DemoWorld]:
    with demo_world(corpus=None) as seeded:
        yield seeded


@pytest.fixture
def project(pulumi_cli: Path, tmp_path: Path, world: DemoWorld) -> PulumiProject:
    return msp_project(pulumi_cli, tmp_path, world)


def hand_made(world: DemoWorld) -> dict[str, str]:
    """What an MSP following the KB article in the portal made: close to the stack, not the same."""
    msp = world.msp_tenant
    location = world.graph.add_named_location(
        msp,
        {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "displayName": LOCATION_NAME,
            "isTrusted": True,
            "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
        },
    )
    common = {"clientAppTypes": ["all"], "applications": {"includeApplications": ["All"]}}
    part_a = world.graph.put_policy(
        msp,
        {
            "displayName": PART_A,
            "state": "enabledForReportingButNotEnforced",
            "conditions": {
                **common,
                "users": {"includeGroups": [TECHNICIANS], "excludeUsers": [BREAK_GLASS[0]]},
                "locations": {"includeLocations": ["All"], "excludeLocations": [location]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
    )
    part_b = world.graph.put_policy(
        msp,
        {
            "displayName": PART_B,
            "state": "enabled",
            "conditions": {**common, "users": {"includeUsers": [SERVICE_ACCOUNT]}},
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        },
    )
    return {"trustedLocation": location, "technicianAccess": part_a, "serviceAccount": part_b}


def run_adopt(project: PulumiProject, world: DemoWorld, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**project.env, **{k: v for k, v in world.graph_env().items() if v is not None}}
    return subprocess.run(
        [ADOPT, "adopt", "--stack", STACK, "--stack-file", str(project.workdir / f"Pulumi.{STACK}.yaml"), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def failed_output(project: PulumiProject, *args: str) -> str:
    with pytest.raises(PulumiFailed) as failed:
        project.run(*args)
    return failed.value.result.stdout + failed.value.result.stderr


def by_name(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["displayName"] == name]


def assert_declared(world: DemoWorld, ids: Mapping[str, str] | None = None) -> None:
    """Exactly one object of each name, in the declared state (and with the given ids)."""
    msp = world.msp_tenant
    [location] = by_name(world.graph.named_locations(msp), LOCATION_NAME)
    assert sorted(r["cidrAddress"] for r in location["ipRanges"]) == ["2001:db8::/32", "203.0.113.0/24"]
    assert location["isTrusted"] is True
    policies = world.graph.policies(msp)
    [part_a], [part_b] = by_name(policies, PART_A), by_name(policies, PART_B)
    assert part_a["state"] == "enabledForReportingButNotEnforced"
    assert sorted(part_a["conditions"]["users"]["excludeUsers"]) == sorted([*BREAK_GLASS, SERVICE_ACCOUNT])
    assert part_a["conditions"]["locations"]["excludeLocations"] == [location["id"]]
    assert part_b["state"] == "enabled"
    assert part_b["sessionControls"]["signInFrequency"]["frequencyInterval"] == "everyTime"
    if ids is not None:
        assert (location["id"], part_a["id"], part_b["id"]) == (
            ids["trustedLocation"],
            ids["technicianAccess"],
            ids["serviceAccount"],
        )


def test_the_article_done_by_hand_is_refused_then_adopted_in_place(project: PulumiProject, world: DemoWorld) -> None:
    ids = hand_made(world)
    msp = world.msp_tenant

    refused = failed_output(project, "up", "--yes", "--stack", STACK)
    for object_id in ids.values():
        assert object_id in refused, refused
    assert f"cipp-hardening adopt --stack {STACK}" in refused
    assert len(world.graph.named_locations(msp)) == 1, "nothing created"
    assert len(world.graph.policies(msp)) == 2, "nothing created"
    assert world.graph.requests(method="POST", path_contains="/conditionalAccess/") == []

    adopted = run_adopt(project, world)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert "changes in place" in adopted.stdout
    stack_file = read_yaml(project.workdir / f"Pulumi.{STACK}.yaml")
    assert stack_file["config"]["cipp-hardening:adopt"] == ids

    preview = project.preview_json(STACK)
    assert len(steps_of(preview, "import")) == 3, "each hand-made object is imported"
    assert steps_of(preview, "create", NAMED_LOCATION) == []
    assert steps_of(preview, "create", CA_POLICY) == []

    project.run("up", "--yes", "--stack", STACK)
    assert_declared(world, ids)
    project.run("preview", "--expect-no-changes", "--stack", STACK)
    # The adopt key stays: once imported, the engine compares it with the state's id and imports nothing.
    project.run("up", "--yes", "--expect-no-changes", "--stack", STACK)


def test_the_pulumi_import_path_with_the_file_adopt_writes(project: PulumiProject, world: DemoWorld) -> None:
    ids = hand_made(world)
    stack_file = (project.workdir / f"Pulumi.{STACK}.yaml").read_text(encoding="utf-8")
    written = run_adopt(project, world, "--import-file", str(project.workdir / "import.json"))
    assert written.returncode == 0, written.stdout + written.stderr
    assert (project.workdir / f"Pulumi.{STACK}.yaml").read_text(encoding="utf-8") == stack_file
    # docs/adopt.md path 2, flags as written there: no program generation, not protected.
    project.run(
        "import", "--file", "import.json", "--stack", STACK, "--generate-code=false", "--protect=false", "--yes"
    )
    project.run("up", "--yes", "--stack", STACK)
    assert_declared(world, ids)
    project.run("preview", "--expect-no-changes", "--stack", STACK)


def test_an_interrupted_create_is_refused_never_duplicated(project: PulumiProject, world: DemoWorld) -> None:
    msp = world.msp_tenant
    # Graph creates the location, then every read of it fails: upstream records no id (no state entry).
    world.graph.inject(method="GET", path_contains="/conditionalAccess/namedLocations/", status=403, times=None)
    failed_output(project, "up", "--yes", "--stack", STACK)
    world.graph.clear_faults()
    [orphan] = world.graph.named_locations(msp)

    refused = failed_output(project, "up", "--yes", "--stack", STACK)
    assert orphan["id"] in refused
    assert "cipp-hardening adopt" in refused
    assert len(world.graph.named_locations(msp)) == 1, "no second location"

    adopted = run_adopt(project, world)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    project.run("up", "--yes", "--stack", STACK)
    [location] = world.graph.named_locations(msp)
    assert location["id"] == orphan["id"]
    assert_declared(world)
    project.run("preview", "--expect-no-changes", "--stack", STACK)


def test_drift_of_prod_shows_in_the_refreshing_preview_and_up_repairs_it(
    project: PulumiProject, world: DemoWorld
) -> None:
    msp = world.msp_tenant
    project.run("up", "--yes", "--stack", STACK)
    policies = world.graph.policies(msp)
    [part_a], [part_b] = by_name(policies, PART_A), by_name(policies, PART_B)
    # In the portal: Part A switched on and a break-glass exclusion removed; Part B deleted.
    part_a["state"] = "enabled"
    part_a["conditions"]["users"]["excludeUsers"] = [BREAK_GLASS[1], SERVICE_ACCOUNT]
    world.graph.put_policy(msp, part_a)
    world.graph.delete_policy(msp, part_b["id"])

    plain = project.run("preview", "--stack", STACK)
    assert "drift:" in plain.stdout, plain.stdout
    assert "without --refresh this run leaves it as it is" in plain.stdout
    assert "pulumi up --refresh --stack example" in plain.stdout

    preview = project.preview_json(STACK, "--refresh")
    assert [s["urn"].rsplit("::", 1)[-1] for s in steps_of(preview, "update", CA_POLICY)] == [
        "technician-access-policy"
    ]
    assert [s["urn"].rsplit("::", 1)[-1] for s in steps_of(preview, "create", CA_POLICY)] == ["service-account-policy"]

    project.run("up", "--yes", "--refresh", "--stack", STACK)
    assert_declared(world)
    assert by_name(world.graph.policies(msp), PART_A)[0]["id"] == part_a["id"], "repaired in place"

    # The cost (docs/adopt.md#cost): each program run lists each collection once; --refresh reads each object.
    world.graph.clear_log()
    project.run("preview", "--expect-no-changes", "--stack", STACK)
    assert ca_gets(world) == (2, 0)
    world.graph.clear_log()
    project.run("preview", "--refresh", "--expect-no-changes", "--stack", STACK)
    assert ca_gets(world) == (2, 3)


def ca_gets(world: DemoWorld) -> tuple[int, int]:
    """(listings, single-object reads) of Conditional Access objects in the Graph log."""
    paths = [
        r.path.split("?")[0].rstrip("/")
        for r in world.graph.requests(method="GET", path_contains="/conditionalAccess/")
    ]
    listings = [p for p in paths if p.endswith(("/policies", "/namedLocations"))]
    return len(listings), len(paths) - len(listings)


def test_a_disabled_location_and_policy_are_repaired(project: PulumiProject, world: DemoWorld) -> None:
    msp = world.msp_tenant
    project.run("up", "--yes", "--stack", STACK)
    [location] = world.graph.named_locations(msp)
    location["isTrusted"] = False
    world.graph.add_named_location(msp, location)
    [part_b] = by_name(world.graph.policies(msp), PART_B)
    part_b["state"] = "disabled"
    world.graph.put_policy(msp, part_b)

    preview = project.preview_json(STACK, "--refresh")
    assert {s["urn"].rsplit("::", 1)[-1] for s in steps_of(preview, "update")} == {
        "trusted-location-named-location",
        "service-account-policy",
    }
    project.run("up", "--yes", "--refresh", "--stack", STACK)
    assert_declared(world)
