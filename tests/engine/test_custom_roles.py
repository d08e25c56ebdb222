"""CIPP's own allow-list for technicians under the real engine (docs/custom-roles.md, issue #24's "Done when").

The demo's world (Graph and CIPP emulators), plus: a separate superadmin CIPP-API client for ExecCustomRole
(cippApi.rolesClientId, as the README recommends), a custom role `techs` granted through Part A's technician
group and held today to an old office range, and a superadmin technician. `pulumi up` gives the role
Step 1's trusted ranges; destroy puts the role back as it was found.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.commands.demo import OFFICE_CALLER, RUNNER_IP, DemoWorld, demo_world
from emulators.clients import CippCaller, technician_request
from emulators.pulumi_project import PulumiProject, state_reveals, steps_of
from tests.engine.msp_project import STACK, msp_project

ROLES_CLIENT = "00000000-0000-0000-0000-0000000e0004"
TECH_GROUP = "00000000-0000-0000-0000-00000000b001"  # Pulumi.example.yaml's technicianAccess.includeGroupIds[0]
SUPERADMIN_GROUP = "00000000-0000-0000-0000-00000000b099"
TECH, BOSS = "tech@msp.example", "boss@msp.example"
OLD_OFFICE, HOME = "192.0.2.0/24", "198.51.100.9"
CONTOSO = "00000000-0000-0000-0000-0000000c0001"
ROLE_TYPE = "pulumi-python:dynamic/cipp:CippCustomRoleRanges"
ROLES_SECRET = "demo-roles-secret"


@pytest.fixture
def world() -> Iterator[DemoWorld]:
    with demo_world(corpus=None) as seeded:
        cipp = seeded.cipp
        office = ["203.0.113.0/24"]
        cipp.add_client(ROLES_CLIENT, "CIPP roles (Pulumi)", "superadmin", office, True, False, ROLES_SECRET)
        cipp.save_to_azure()
        cipp.add_custom_role(
            "techs",
            ["CIPP.Core.Read", "Identity.User.ReadWrite", "Tenant.Administration.Read"],
            allowed_tenants=[CONTOSO],
            blocked_endpoints=["ExecOffboardUser"],
        )
        cipp.assign_role_group("techs", TECH_GROUP, "CIPP Technicians")
        cipp.set_role_ip_ranges("techs", [OLD_OFFICE])
        cipp.assign_role_group("superadmin", SUPERADMIN_GROUP, "CIPP Super Admins")
        cipp.user_groups.update({TECH: {TECH_GROUP}, BOSS: {SUPERADMIN_GROUP}})
        yield seeded


@pytest.fixture
def project(pulumi_cli: Path, tmp_path: Path, world: DemoWorld) -> PulumiProject:
    pulumi = msp_project(pulumi_cli, tmp_path, world)
    pulumi.config_set(STACK, "cippApi.rolesClientId", ROLES_CLIENT, path=True)
    pulumi.config_set(STACK, "cippApiRolesSecret", ROLES_SECRET, secret=True)
    pulumi.config_set(STACK, "cippApi.customRoles[0].name", "techs", path=True)
    pulumi.config_set(STACK, "cippApi.clients[1].restoreOnDelete", "false", path=True)  # RMM: destroy leaves it
    return pulumi


def technician(world: DemoWorld, user: str, ip: str) -> int:
    return technician_request(world.cipp, world.tls.ca_bundle, user, xff=f"{ip}:50000").status_code


def role_as_listed(world: DemoWorld) -> dict[str, Any]:
    """The role as CIPP's ExecCustomRole lists it, read as the superadmin roles client."""
    caller = CippCaller(world.cipp, world.tls.ca_bundle, ROLES_CLIENT, ROLES_SECRET)
    try:
        roles = caller.request("GET", "/api/ExecCustomRole", xff=f"{RUNNER_IP}:40000").json()
    finally:
        caller.close()
    return next(role for role in roles if role["RowKey"] == "techs")


def kept_fields(role: dict[str, Any]) -> str:
    fields = ("Permissions", "AllowedTenants", "BlockedTenants", "BlockedEndpoints", "EntraGroup")
    return json.dumps({field: role.get(field) for field in fields})


def test_a_custom_role_gets_the_trusted_ranges_and_destroy_restores_it(
    project: PulumiProject, world: DemoWorld
) -> None:
    tables_before, listed_before = world.cipp.custom_role_tables("techs"), role_as_listed(world)
    assert technician(world, TECH, OFFICE_CALLER) == 403, "before: the role is held to the old office only"

    preview = project.preview_json(STACK, "--policy-pack", "policy")
    assert len(steps_of(preview, "create", ROLE_TYPE)) == 1
    assert world.cipp.custom_role_tables("techs") == tables_before, "a preview never writes"

    project.run("up", "--yes", "--policy-pack", "policy", "--stack", STACK)
    tables_after, listed_after = world.cipp.custom_role_tables("techs"), role_as_listed(world)
    # Permissions, tenant lists, blocked endpoints and the Entra group: byte-identical, stored and as listed.
    assert tables_after["CustomRoles"] == tables_before["CustomRoles"]
    assert tables_after["AccessRoleGroups"] == tables_before["AccessRoleGroups"]
    assert kept_fields(listed_after) == kept_fields(listed_before)
    assert listed_after["IPRange"] == ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/32"]

    assert technician(world, TECH, OFFICE_CALLER) == 200, "served from inside the trusted ranges"
    assert technician(world, TECH, HOME) == 403, "refused by CIPP from outside, whatever Entra let through"
    assert technician(world, BOSS, HOME) == 200, "superadmin: CIPP never restricts it"
    outputs = project.outputs(STACK)
    assert outputs["cippManagedRoles"] == ["techs"]
    assert outputs["cippRolesHeldByPartAOnly"] == [
        {"role": "superadmin", "entraGroupId": SUPERADMIN_GROUP, "entraGroupName": "CIPP Super Admins"}
    ]
    project.run("preview", "--expect-no-changes", "--stack", STACK)
    assert not state_reveals(project.export(STACK), ROLES_SECRET), "the roles client's secret is in the state"

    project.run("destroy", "--yes", "--stack", STACK)
    assert world.cipp.custom_role_tables("techs") == tables_before, "destroy restores the role as found"
    assert kept_fields(role_as_listed(world)) == kept_fields(listed_before)
    assert technician(world, TECH, "192.0.2.5") == 200
    assert technician(world, TECH, HOME) == 403, "destroy never opened the role"
