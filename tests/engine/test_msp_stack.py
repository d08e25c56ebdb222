"""Step 1 and Parts A-C under the real engine, with the real policy pack.

The MSP tenant is the Graph emulator, CIPP is the CIPP-API emulator (the demo's world: both seeded,
one TLS CA). The azuread resources go through the test stand-in plugin (docs/engine.md says why);
Part C's dynamic resources through the real dynamic-provider host, with the manager secret set by
`pulumi config set --secret`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cipp_hardening.commands.demo import (
    OFFICE_CALLER,
    OUTSIDE_CALLER,
    RMM,
    RUNNER_IP,
    DemoWorld,
    demo_world,
)
from emulators.clients import GraphClient
from emulators.pulumi_project import PulumiFailed, PulumiProject, state_reveals, steps_of
from tests.engine.msp_project import MANAGER, STACK, msp_project
from tests.helpers import ROOT

NAMED_LOCATION = "azuread:index/namedLocation:NamedLocation"
CA_POLICY = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"
CIPP_RANGES = "pulumi-python:dynamic/cipp:CippApiClientRanges"


@pytest.fixture
def world() -> Iterator[DemoWorld]:
    with demo_world(corpus=None) as seeded:
        yield seeded


@pytest.fixture
def project(pulumi_cli: Path, tmp_path: Path, world: DemoWorld) -> PulumiProject:
    return msp_project(pulumi_cli, tmp_path, world)


def make_verify(project: PulumiProject, world: DemoWorld) -> subprocess.CompletedProcess[str]:
    stack_file = project.workdir / f"Pulumi.{STACK}.yaml"
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), "verify", f"STACK={STACK}", f"STACK_FILE={stack_file}"],
        env={**project.env, **{k: v for k, v in world.graph_env().items() if v is not None}},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def rmm_status(world: DemoWorld, caller_ip: str) -> int:
    rmm = world.caller(RMM)
    try:
        return rmm.request("GET", "/api/ListTenants", xff=f"{caller_ip}:40000").status_code
    finally:
        rmm.close()


def resources_in(project: PulumiProject) -> list[str]:
    """Every resource URN in the stack's state, in state order."""
    return [r["urn"] for r in project.export(STACK)["deployment"]["resources"]]


def test_msp_stack_with_the_policy_pack(project: PulumiProject, world: DemoWorld) -> None:
    msp = world.msp_tenant
    assert rmm_status(world, OUTSIDE_CALLER) == 200, "before: the RMM client is open to any address"

    preview = project.preview_json(STACK, "--policy-pack", "policy")
    assert len(steps_of(preview, "create", NAMED_LOCATION)) == 1
    assert len(steps_of(preview, "create", CA_POLICY)) == 2
    assert len(steps_of(preview, "create", CIPP_RANGES)) == 2
    assert world.graph.named_locations(msp) == [], "a preview never writes"
    # Every rule of the pack runs on the first preview, ids and provider-computed values still unknown.
    first = project.run("preview", "--policy-pack", "policy", "--stack", STACK)
    assert "can't run policy" not in first.stdout, first.stdout

    project.run("up", "--yes", "--policy-pack", "policy", "--stack", STACK)
    [location] = world.graph.named_locations(msp)
    assert location["isTrusted"] is True
    assert sorted(r["cidrAddress"] for r in location["ipRanges"]) == ["2001:db8::/32", "203.0.113.0/24"]
    policies = {p["displayName"]: p for p in world.graph.policies(msp)}
    part_a = policies["Block CIPP Access - Outside Trusted IPs"]
    assert part_a["state"] == "enabledForReportingButNotEnforced"
    assert part_a["conditions"]["locations"]["excludeLocations"] == [location["id"]]
    assert policies["CIPP Service Account Conditional Access Policy"]["state"] == "enabled"
    assert rmm_status(world, OFFICE_CALLER) == 200
    assert rmm_status(world, OUTSIDE_CALLER) == 403, "Part C: the RMM client is held to the office range"

    project.run("preview", "--expect-no-changes", "--policy-pack", "policy", "--stack", STACK)
    assert not state_reveals(project.export(STACK), world.cipp_secrets[MANAGER]), "the manager secret is in the state"

    verify = make_verify(project, world)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Part A planned `enabled` without the evidence `make promote` records: the real analyzer stops it.
    project.config_set(STACK, "technicianAccess.state", "enabled", path=True)
    project.config_set(STACK, "technicianAccess.operatorCheckIp", RUNNER_IP, path=True)  # the lockout guard passes
    with pytest.raises(PulumiFailed) as stopped:
        project.run("preview", "--policy-pack", "policy", "--stack", STACK)
    assert "promotion-recorded" in stopped.value.result.stdout


def test_destroy_that_would_widen_a_client_deletes_nothing(project: PulumiProject, world: DemoWorld) -> None:
    # The RMM client asks for restoreOnDelete, and its ranges at adoption were Any: destroy refuses to widen,
    # and refuses before anything is deleted (docs/part-c.md "Destroy"): all or nothing.
    msp = world.msp_tenant
    project.run("up", "--yes", "--skip-preview", "--stack", STACK)
    assert rmm_status(world, OUTSIDE_CALLER) == 403
    before = resources_in(project)
    graph_before = (world.graph.named_locations(msp), world.graph.policies(msp))
    with pytest.raises(PulumiFailed) as refused:
        project.run("destroy", "--yes", "--stack", STACK)
    assert resources_in(project) == before, "destroy stopped halfway: some resources left the state"
    assert (world.graph.named_locations(msp), world.graph.policies(msp)) == graph_before
    assert "refusing to open the client" in refused.value.result.stdout
    assert "nothing deleted" in refused.value.result.stdout
    assert rmm_status(world, OUTSIDE_CALLER) == 403
    project.config_set(STACK, "cippApi.clients[1].restoreOnDelete", "false", path=True)
    project.run("up", "--yes", "--stack", STACK)
    project.run("destroy", "--yes", "--stack", STACK)
    assert world.graph.named_locations(msp) == []
    assert world.graph.policies(msp) == []
    assert rmm_status(world, OUTSIDE_CALLER) == 403, "destroy never widens a client's access"


def test_names_resolve_through_the_provider_and_the_pack_checks_the_ids(
    project: PulumiProject, world: DemoWorld
) -> None:
    break_glass = "00000000-0000-0000-0000-00000000c001"  # Pulumi.example.yaml's first break-glass id
    world.graph.add_user(world.msp_tenant, {"id": break_glass, "userPrincipalName": "breakglass1@msp.example"})
    project.config_set(STACK, "technicianAccess.breakGlassUserIds[0]", "breakglass1@msp.example", path=True)

    # The real analyzer gets the root stack's resolvedNames in AnalyzeStack: named-accounts checks by id.
    preview = project.run("preview", "--policy-pack", "policy", "--stack", STACK)
    assert "named-accounts" not in preview.stdout, preview.stdout
    project.run("up", "--yes", "--policy-pack", "policy", "--stack", STACK)
    [row] = project.outputs(STACK)["resolvedNames"]
    assert (row["key"], row["id"]) == ("technicianAccess.breakGlassUserIds[0]", break_glass)
    part_a = next(p for p in world.graph.policies(world.msp_tenant) if p["displayName"].startswith("Block CIPP"))
    assert break_glass in part_a["conditions"]["users"]["excludeUsers"]

    project.config_set(STACK, "technicianAccess.breakGlassUserIds[0]", "nobody@msp.example", path=True)
    with pytest.raises(PulumiFailed) as unknown:
        project.run("preview", "--policy-pack", "policy", "--stack", STACK)
    output = unknown.value.result.stdout + unknown.value.result.stderr
    assert "technicianAccess.breakGlassUserIds[0]" in output
    assert "nobody@msp.example" in output


def test_a_group_name_with_an_apostrophe_fails_preview_naming_the_key_and_asking_for_the_id(
    project: PulumiProject, world: DemoWorld
) -> None:
    # The group exists, but pulumi-azuread's getGroup sends its name unescaped in a Graph filter, which
    # Graph refuses (terraform-provider-azuread groupDataSourceRead): only the object id can name it.
    name = "O'Brien's techs"
    world.graph.add_group(world.msp_tenant, {"id": "00000000-0000-0000-0000-00000000d001", "displayName": name})
    project.config_set(STACK, "technicianAccess.includeGroupIds[0]", name, path=True)
    with pytest.raises(PulumiFailed) as refused:
        project.run("preview", "--stack", STACK)
    output = " ".join((refused.value.result.stdout + refused.value.result.stderr).split())
    assert f"technicianAccess.includeGroupIds[0]: the group {name!r} cannot be looked up by name" in output
    assert "give the group's object id instead" in output
    assert "Invalid filter clause" in output, "the provider's reason is kept"


def test_a_wrong_client_secret_fails_preview_naming_the_sign_in(project: PulumiProject, world: DemoWorld) -> None:
    # The real provider signs in at Configure (terraform-provider-azuread providerConfigure → buildClient):
    # a refused secret stops `pulumi preview`, before any lookup or plan of the azuread resources.
    wrong = "not-the-client-secret"
    # pulumi-azuread's own config, which the program's own reads do not use (docs/configuration.md, Credentials)
    project.config_set(STACK, "azuread:clientSecret", wrong, secret=True)
    with pytest.raises(PulumiFailed) as refused:
        project.run("preview", "--stack", STACK)
    output = refused.value.result.stdout + refused.value.result.stderr
    assert "building client: unable to obtain access token" in output, output
    assert "AADSTS7000215: Invalid client secret provided." in output
    assert wrong not in output
    assert world.graph.policies(world.msp_tenant) == []


def test_part_c_drift_marks_the_changed_field_and_up_repairs_it(project: PulumiProject, world: DemoWorld) -> None:
    project.run("up", "--yes", "--skip-preview", "--stack", STACK)
    row = world.cipp.client_row(RMM)
    assert row is not None
    world.cipp.add_client(RMM, row["AppName"], row["Role"], ["198.51.100.0/24"])  # a portal edit

    shown = project.run("preview", "--refresh", "--diff", "--stack", STACK).stdout
    # the update names the field, from what CIPP holds now to what the stack declares
    update = shown.split("pulumi-python:dynamic/cipp:CippApiClientRanges: (update)", 1)[1]
    assert "~ allowedRanges" in update, shown
    assert '~ [0]: "198.51.100.0/24" => "203.0.113.0/24"' in update, shown

    project.run("up", "--yes", "--refresh", "--skip-preview", "--stack", STACK)
    repaired = world.cipp.client_row(RMM)
    assert repaired is not None
    assert json.loads(repaired["IPRange"]) == ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/48"]
    project.run("preview", "--refresh", "--expect-no-changes", "--stack", STACK)


def portal_edit(world: DemoWorld, policy_id: str, body: dict[str, object]) -> None:
    """A PATCH through Graph, as the Entra portal saves a policy (as the deploying app here)."""
    token = world.graph.access_token(world.msp_tenant, *world.deployer)
    graph = GraphClient(world.graph.url, str(world.tls.ca_bundle), token)
    try:
        answer = graph.patch(f"/v1.0/identity/conditionalAccess/policies/{policy_id}", json=body)
        assert answer.status_code == 204, answer.text
    finally:
        graph.close()


def test_a_portal_added_session_control_is_shown_and_up_removes_it(project: PulumiProject, world: DemoWorld) -> None:
    project.run("up", "--yes", "--skip-preview", "--stack", STACK)
    part_a = next(p for p in world.graph.policies(world.msp_tenant) if p["displayName"].startswith("Block CIPP"))
    assert part_a.get("sessionControls") is None
    # Sign-in frequency "every time" added to Part A in the portal. Its flattened block holds only the two
    # provider-computed fields, but SDK v2 diffs the block count: the real provider shows it and removes it.
    every_time = {
        "isEnabled": True,
        "frequencyInterval": "everyTime",
        "authenticationType": "primaryAndSecondaryAuthentication",
    }
    portal_edit(world, part_a["id"], {"sessionControls": {"signInFrequency": every_time}})
    assert world.graph.get_policy(world.msp_tenant, part_a["id"])["sessionControls"]["signInFrequency"]["isEnabled"]

    with pytest.raises(PulumiFailed) as drift:
        project.run("preview", "--refresh", "--expect-no-changes", "--diff", "--stack", STACK)
    shown = drift.value.result.stdout
    update = shown.split(f"{CA_POLICY}: (update)", 1)[1]
    assert "- sessionControls" in update, shown

    project.run("up", "--yes", "--refresh", "--skip-preview", "--stack", STACK)
    assert world.graph.get_policy(world.msp_tenant, part_a["id"]).get("sessionControls") is None
    project.run("preview", "--refresh", "--expect-no-changes", "--stack", STACK)
