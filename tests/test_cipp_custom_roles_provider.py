"""The custom-role provider against the CIPP emulator over real HTTPS (docs/custom-roles.md).

The provider calls ExecCustomRole as a superadmin CIPP-API client from this machine (RUNNER_IP); a
technician holds the role through an Entra group, as CIPP's user management assigns it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest, CreateResult, ReadResult, UpdateResult

from cipp_hardening.cidr import cipp_range
from cipp_hardening.custom_roles import UnknownRoleShape, add_update_body
from dynamic_providers.cipp_custom_roles import (
    MANAGER_SECRET_KEY,
    ROLES_SECRET_ENV,
    CippCustomRoleRangesArgs,
    CippCustomRoleRangesError,
    CippCustomRoleRangesProvider,
)
from dynamic_providers.props import to_props
from emulators.cipp import CippEmulator, RequestRecord
from emulators.clients import CallerFactory, CippCaller, technician_request
from emulators.tls import TestTLS as Tls
from service_clients import credentials
from tests.emulators import cipp_fixtures

cipp_tls = cipp_fixtures.cipp_tls
cipp_emulator = cipp_fixtures.cipp_emulator
cipp_caller = cipp_fixtures.cipp_caller

RUNNER_IP = "203.0.113.10"
OFFICE = "203.0.113.0/24"
OLD_OFFICE = "192.0.2.0/24"
HOME = "198.51.100.9"
GROUP = "5b1c0a6e-0000-4000-8000-00000000f001"
TECH = "tech@msp.example"
CONTOSO = "00000000-0000-0000-0000-000000000001"


def outs_of(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


@dataclass
class Roles:
    emulator: CippEmulator
    tls: Tls
    superadmin: CippCaller
    provider: CippCustomRoleRangesProvider

    def props(self, ranges: list[str] | None = None, **flags: bool) -> dict[str, Any]:
        """The props of the role's args as components/cipp_custom_roles.py builds them from validated config."""
        args = CippCustomRoleRangesArgs(
            url=self.emulator.url,
            tenant_id=self.emulator.tenant_id,
            manager_client_id=self.superadmin.client_id,
            client_id=self.superadmin.client_id,
            name="techs",
            allowed_ranges=tuple(cipp_range(entry) for entry in ([OFFICE] if ranges is None else ranges)),
            restore_on_delete=flags.pop("restoreOnDelete", True),
            allow_open_on_delete=flags.pop("allowOpenOnDelete", False),
        )
        return to_props(args)

    def writes(self) -> list[RequestRecord]:
        return [r for r in self.emulator.request_log if r.method == "POST" and "ExecCustomRole" in r.path]

    def technician(self, ip: str) -> int:
        return technician_request(self.emulator, self.tls.ca_bundle, TECH, xff=f"{ip}:50000").status_code


@pytest.fixture
def roles(
    cipp_emulator: CippEmulator, cipp_tls: Tls, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Roles]:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", cipp_emulator.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cipp_tls.ca_bundle))
    monkeypatch.setattr(credentials, "_secrets", {})
    monkeypatch.setattr(cipp_emulator, "egress_ip", RUNNER_IP)
    credentials.reset_cache()
    superadmin = cipp_caller(role="superadmin", ip_ranges=[OFFICE], app_name="Pulumi roles")
    cipp_emulator.add_custom_role(
        "techs", ["CIPP.Core.Read", "Identity.User.ReadWrite"], allowed_tenants=[CONTOSO], blocked_endpoints=["ExecX"]
    )
    cipp_emulator.assign_role_group("techs", GROUP, "CIPP Technicians")
    cipp_emulator.set_role_ip_ranges("techs", [OLD_OFFICE])
    cipp_emulator.user_groups[TECH] = {GROUP}
    provider = CippCustomRoleRangesProvider()
    provider.configure(ConfigureRequest(Config({MANAGER_SECRET_KEY: superadmin.secret}, "cipp-hardening")))
    yield Roles(cipp_emulator, cipp_tls, superadmin, provider)
    credentials.reset_cache()


def test_create_sets_the_ranges_and_keeps_every_other_field_byte_for_byte(roles: Roles) -> None:
    before = roles.emulator.custom_role_tables("techs")
    outs = outs_of(roles.provider.create(roles.props()))
    assert outs["name"] == "techs", "CIPP stores role names lower case; so does the check"
    assert (outs["adoptedRanges"], outs["currentRanges"]) == ([OLD_OFFICE], [OFFICE])
    assert (outs["builtIn"], outs["entraGroupId"]) == (False, GROUP)
    after = roles.emulator.custom_role_tables("techs")
    assert after["CustomRoles"] == before["CustomRoles"]
    assert after["AccessRoleGroups"] == before["AccessRoleGroups"]
    assert after["AccessIPRanges"] == json.dumps(OFFICE)
    [write] = roles.writes()
    assert json.loads(write.body) == {
        "Action": "AddUpdate",
        "RoleName": "techs",
        "Permissions": {"CIPPCore": "CIPP.Core.Read", "IdentityUser": "Identity.User.ReadWrite"},
        "AllowedTenants": [CONTOSO],
        "BlockedTenants": [],
        "BlockedEndpoints": ["ExecX"],
        "EntraGroup": {"label": "CIPP Technicians", "value": GROUP},
        "IpRange": [OFFICE],
    }


def test_the_effect_a_technician_is_served_inside_and_refused_outside(roles: Roles) -> None:
    assert roles.technician(HOME) == 403, "held to the old office range before"
    roles.provider.create(roles.props())
    assert roles.technician("203.0.113.50") == 200
    assert roles.technician(HOME) == 403
    assert roles.technician("192.0.2.5") == 403, "the old range no longer works"


def test_a_converged_role_costs_one_list_and_no_write(roles: Roles) -> None:
    outs = outs_of(roles.provider.create(roles.props(ranges=[OLD_OFFICE])))
    assert roles.writes() == []
    assert roles.provider.diff("techs", outs, roles.props(ranges=[OLD_OFFICE])).changes is False


def test_refresh_sees_a_ui_edit_and_update_repairs_it(roles: Roles) -> None:
    props = roles.props()
    outs = outs_of(roles.provider.create(props))
    roles.emulator.set_role_ip_ranges("techs", [OFFICE, "198.51.100.0/24"])
    refreshed = outs_of(roles.provider.read("techs", outs))
    assert refreshed["currentRanges"] == [OFFICE, "198.51.100.0/24"]
    assert roles.provider.diff("techs", refreshed, props).changes is True
    repaired = outs_of(roles.provider.update("techs", refreshed, props))
    assert repaired["currentRanges"] == [OFFICE]
    assert repaired["adoptedRanges"] == [OLD_OFFICE], "adoption is remembered across updates"


def test_delete_restores_the_role_as_found(roles: Roles) -> None:
    before = roles.emulator.custom_role_tables("techs")
    outs = outs_of(roles.provider.create(roles.props()))
    roles.provider.delete("techs", outs)
    assert roles.emulator.custom_role_tables("techs") == before


def test_delete_never_opens_a_role_by_omission(roles: Roles) -> None:
    roles.emulator.set_role_ip_ranges("techs", [])
    outs = outs_of(roles.provider.create(roles.props()))
    assert outs["adoptedRanges"] == []
    with pytest.raises(CippCustomRoleRangesError, match="refusing to open it"):
        roles.provider.delete("techs", outs)
    assert roles.technician(HOME) == 403, "still held"
    # Leaving the ranges is the other way out; stating allowOpenOnDelete restores "no ranges".
    roles.provider.delete("techs", {**outs, "restoreOnDelete": False})
    assert roles.technician(HOME) == 403
    roles.provider.delete("techs", {**outs, "allowOpenOnDelete": True})
    assert roles.technician(HOME) == 200
    assert roles.emulator.custom_role_tables("techs")["AccessRoleGroups"] is not None, "the group stays assigned"


def test_a_read_with_a_field_this_project_does_not_know_is_never_written_back(
    roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = roles.emulator._custom_role_view

    def with_new_field(row: dict[str, Any]) -> dict[str, Any]:
        return {**original(row), "AllowedGroups": ["g1"]}  # a field a newer CIPP might add

    monkeypatch.setattr(roles.emulator, "_custom_role_view", with_new_field)
    with pytest.raises(CippCustomRoleRangesError, match=r"role techs: .*AllowedGroups.*nothing written"):
        roles.provider.create(roles.props())
    assert roles.writes() == []


def test_unreadable_permissions_are_never_written_back() -> None:
    role = {"RowKey": "techs", "Permissions": [], "AllowedTenants": [], "BlockedTenants": [], "BlockedEndpoints": []}
    with pytest.raises(UnknownRoleShape, match=r"role techs: .*could empty the role"):
        add_update_body(role, [OFFICE])
    with pytest.raises(UnknownRoleShape, match="superadmin"):
        add_update_body({**role, "RowKey": "superadmin", "Permissions": {"x": "y"}}, [OFFICE])


def test_a_missing_role_is_named_and_never_created(roles: Roles) -> None:
    with pytest.raises(CippCustomRoleRangesError, match=r"CIPP role nosuchrole .* does not exist in CIPP"):
        roles.provider.create({**roles.props(), "name": "nosuchrole"})
    assert roles.writes() == []


def test_a_client_without_superadmin_is_told_what_it_needs(roles: Roles, cipp_caller: CallerFactory) -> None:
    admin = cipp_caller(role="admin", ip_ranges=[OFFICE])
    provider = CippCustomRoleRangesProvider()
    provider.configure(ConfigureRequest(Config({}, "cipp-hardening")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ROLES_SECRET_ENV, admin.secret)
        with pytest.raises(CippCustomRoleRangesError, match=r"needs the superadmin role \(CIPP.SuperAdmin.ReadWrite\)"):
            provider.create({**roles.props(), "clientId": admin.client_id})


def test_check_takes_the_args_as_config_built_them_and_names_a_prop_of_the_wrong_shape(roles: Roles) -> None:
    """Superadmin and ranges CIPP would drop are config's to refuse (tests/test_custom_roles_config.py)."""
    news = roles.props()
    checked = roles.provider.check({}, news)
    assert (checked.inputs, checked.failures) == (news, [])
    failures = roles.provider.check({}, {**news, "name": "", "allowOpenOnDelete": 1}).failures
    assert [f.property for f in failures] == ["name", "allowOpenOnDelete"]


def test_state_from_before_restore_on_delete_restores(roles: Roles) -> None:
    """A prop absent from state takes the args' default: restoreOnDelete is true for roles."""
    before = roles.emulator.custom_role_tables("techs")
    outs = outs_of(roles.provider.create(roles.props()))
    roles.provider.delete("techs", {k: v for k, v in outs.items() if k != "restoreOnDelete"})
    assert roles.emulator.custom_role_tables("techs") == before
