"""The CIPP emulator's custom roles: ExecCustomRole (Invoke-ExecCustomRole.ps1) and the user branch of
Test-CIPPAccess.ps1 with Get-CIPPRoleIPRanges.ps1 (docs/custom-roles.md cites each)."""

from __future__ import annotations

from typing import Any

import pytest

from emulators.cipp import NO_ROLE_DENIED, CippEmulator
from emulators.clients import CallerFactory, CippCaller, technician_request
from emulators.tls import TestTLS

GROUP = "5b1c0a6e-0000-4000-8000-00000000f001"
TECH = "tech@msp.example"
OFFICE, HOME = "203.0.113.50", "198.51.100.9"
CONTOSO = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def superadmin(cipp_caller: CallerFactory) -> CippCaller:
    return cipp_caller(role="superadmin")


@pytest.fixture
def techs(cipp_emulator: CippEmulator) -> CippEmulator:
    cipp_emulator.add_custom_role(
        "techs", ["CIPP.Core.Read", "Identity.User.ReadWrite"], allowed_tenants=[CONTOSO], blocked_endpoints=["ExecX"]
    )
    cipp_emulator.assign_role_group("techs", GROUP, "CIPP Technicians")
    cipp_emulator.user_groups[TECH] = {GROUP}
    return cipp_emulator


def roles(caller: CippCaller) -> list[dict[str, Any]]:
    response = caller.request("GET", "/api/ExecCustomRole")
    assert response.status_code == 200, response.text
    return list(response.json())


def role(caller: CippCaller, name: str) -> dict[str, Any]:
    return next(item for item in roles(caller) if item["RowKey"] == name)


def add_update(caller: CippCaller, body: dict[str, Any]) -> Any:
    response = caller.request("POST", "/api/ExecCustomRole", params={"Action": "AddUpdate"}, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def body_from(read: dict[str, Any], **changes: Any) -> dict[str, Any]:
    fields = ("Permissions", "AllowedTenants", "BlockedTenants", "BlockedEndpoints", "EntraGroup")
    return {"RoleName": read["RowKey"], **{f: read[f] for f in fields if f in read}, **changes}


def test_the_list_shows_each_field_in_the_shape_addupdate_takes(techs: CippEmulator, superadmin: CippCaller) -> None:
    read = role(superadmin, "techs")
    assert read["Permissions"] == {"CIPPCore": "CIPP.Core.Read", "IdentityUser": "Identity.User.ReadWrite"}
    assert read["AllowedTenants"] == [CONTOSO], "one tenant is stored bare and read back as a list"
    assert (read["BlockedTenants"], read["BlockedEndpoints"], read["IPRange"]) == ([], ["ExecX"], [])
    assert read["EntraGroup"] == {"label": "CIPP Technicians", "value": GROUP}
    assert [item["RowKey"] for item in roles(superadmin)][:4] == ["readonly", "editor", "admin", "superadmin"]


def test_addupdate_with_the_read_fields_keeps_the_stored_row_byte_for_byte(
    techs: CippEmulator, superadmin: CippCaller
) -> None:
    before = techs.custom_role_tables("techs")
    answer = add_update(superadmin, body_from(role(superadmin, "techs"), IpRange=["203.0.113.0/24"]))
    assert answer == {
        "Results": [
            "Custom role techs saved",
            "IP ranges configured for 'techs' role.",
            "Security group 'CIPP Technicians' assigned to the 'techs' role.",
        ]
    }
    after = techs.custom_role_tables("techs")
    assert after["CustomRoles"] == before["CustomRoles"]
    assert after["AccessRoleGroups"] == before["AccessRoleGroups"]
    assert after["AccessIPRanges"] == '"203.0.113.0/24"', "one range is stored bare (ConvertTo-Json of a pipeline)"


def test_addupdate_drops_what_its_regex_refuses_and_opens_the_role_when_nothing_is_left(
    techs: CippEmulator, superadmin: CippCaller
) -> None:
    add_update(superadmin, body_from(role(superadmin, "techs"), IpRange=["203.0.113.0/24", "2001:db8::/32"]))
    assert role(superadmin, "techs")["IPRange"] == ["203.0.113.0/24"], "compressed IPv6 dropped without a word"
    answer = add_update(superadmin, body_from(role(superadmin, "techs"), IpRange=[" 198.51.100.0/24"]))
    assert "IP ranges removed from 'techs' role." in answer["Results"]
    assert role(superadmin, "techs")["IPRange"] == []


def test_a_body_without_the_group_or_the_tenants_resets_them(techs: CippEmulator, superadmin: CippCaller) -> None:
    answer = add_update(superadmin, {"RoleName": "techs", "Permissions": {"CIPPCore": "CIPP.Core.Read"}})
    assert "Security group 'CIPP Technicians' removed from the 'techs' role." in answer["Results"]
    read = role(superadmin, "techs")
    assert "EntraGroup" not in read
    assert read["AllowedTenants"] == []
    assert read["BlockedEndpoints"] == []


def test_superadmin_ranges_are_never_stored(techs: CippEmulator, superadmin: CippCaller) -> None:
    answer = add_update(superadmin, {"RoleName": "superadmin", "IpRange": ["203.0.113.0/24"]})
    assert answer["Results"] == [
        "Note: IP restrictions are not allowed on the superadmin role to prevent lockout issues."
    ]
    assert role(superadmin, "superadmin")["IPRange"] == []


def test_execcustomrole_needs_superadmin(techs: CippEmulator, cipp_caller: CallerFactory) -> None:
    response = cipp_caller(role="admin").request("GET", "/api/ExecCustomRole")
    assert response.status_code == 403
    assert "'admin' base role does not have the required permission: CIPP.SuperAdmin.ReadWrite" in response.text


def test_a_technician_is_held_to_the_roles_ranges_by_the_first_forwarded_hop(
    techs: CippEmulator, cipp_tls: TestTLS
) -> None:
    techs.set_role_ip_ranges("techs", ["203.0.113.0/24"])
    ca = cipp_tls.ca_bundle
    assert technician_request(techs, ca, TECH, xff=f"{OFFICE}:50000").status_code == 200
    refused = technician_request(techs, ca, TECH, xff=f"{HOME}:50000, {OFFICE}")
    assert refused.status_code == 403
    assert refused.text == (
        f"Access to this CIPP API endpoint is not allowed, your IP address ({HOME}) is not in the allowed range "
        "for your role(s)"
    )
    # Test-CIPPAccess checks only when it found an address: no X-Forwarded-For is let through.
    assert technician_request(techs, ca, TECH, xff=None).status_code == 200
    me = technician_request(techs, ca, TECH, "/api/me", xff=HOME)
    assert me.status_code == 200
    assert me.json()["clientPrincipal"] is None
    assert me.json()["message"] == f"Your IP address ({HOME}) is not in the allowed range for your role(s)"


def test_superadmin_is_never_restricted_and_a_role_without_ranges_adds_none(
    techs: CippEmulator, cipp_tls: TestTLS
) -> None:
    techs.set_role_ip_ranges("techs", ["203.0.113.0/24"])
    techs.set_role_ip_ranges("superadmin", ["203.0.113.0/24"])  # as an older CIPP might have stored it
    ca = cipp_tls.ca_bundle
    assert technician_request(techs, ca, "boss@msp.example", xff=HOME, roles=["superadmin"]).status_code == 200
    # Get-CIPPRoleIPRanges: the union of the roles that have ranges; editor (none) does not open techs.
    assert technician_request(techs, ca, TECH, xff=HOME, roles=["techs", "editor"]).status_code == 403


def test_a_user_without_a_role_is_refused(techs: CippEmulator, cipp_tls: TestTLS) -> None:
    response = technician_request(techs, cipp_tls.ca_bundle, "stranger@msp.example", xff=OFFICE)
    assert response.status_code == 403
    assert response.text == NO_ROLE_DENIED
