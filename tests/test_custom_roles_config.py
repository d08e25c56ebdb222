"""cippApi.customRoles: the spelling CIPP's ExecCustomRole keeps, superadmin refused, the lockout guard."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from cipp_hardening.custom_roles import EXEC_CUSTOM_ROLE_RANGE, accepted_by_cipp
from tests.helpers import msp_raw

OFFICE_IP = "203.0.113.10"  # inside Pulumi.example.yaml's trusted 203.0.113.0/24


def parsed(*roles: dict[str, Any], operator_ip: str | None = None, **cipp: Any) -> MspStack:
    raw = msp_raw()
    raw["cippApi"]["customRoles"] = list(roles)
    raw["cippApi"].update(cipp)
    if operator_ip is not None:
        raw["technicianAccess"]["operatorCheckIp"] = operator_ip
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    return config


def problems(*roles: dict[str, Any], operator_ip: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parsed(*roles, operator_ip=operator_ip)
    return [str(problem) for problem in error.value.problems]


def test_a_role_defaults_to_step_1s_trusted_ranges_in_cipps_spelling() -> None:
    [role] = parsed({"name": "Technicians"}).cipp_api.custom_roles  # type: ignore[union-attr]
    assert role.name == "technicians", "ExecCustomRole stores the RowKey lower case"
    # Entra's 2001:db8::/32 becomes the expanded form the regex accepts (it has no '::').
    assert role.allowed_ranges == ("203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/32")
    assert all(EXEC_CUSTOM_ROLE_RANGE.match(entry) for entry in role.allowed_ranges)
    assert role.restore_on_delete is True
    assert role.allow_open_on_delete is False


def test_superadmin_and_cipps_reserved_names_are_refused() -> None:
    found = problems({"name": "SuperAdmin"}, {"name": "anonymous"})
    assert any("customRoles[0].name" in p and "Part A alone" in p for p in found)
    assert any("customRoles[1].name" in p for p in found)


@pytest.mark.parametrize("entry", ["Any", "0.0.0.0/0", "203.0.113.7/24", "not-an-ip"])
def test_ranges_cipp_would_drop_or_that_open_everything_are_refused(entry: str) -> None:
    [problem] = problems({"name": "techs", "allowedRanges": [entry]})
    assert "cippApi.customRoles[0].allowedRanges[0]" in problem


def test_an_empty_range_list_is_refused_not_read_as_open() -> None:
    [problem] = problems({"name": "techs", "allowedRanges": []})
    assert "customRoles[0].allowedRanges" in problem


def test_the_regex_is_execcustomroles_untrimmed() -> None:
    assert accepted_by_cipp("203.0.113.0/24")
    assert not accepted_by_cipp(" 203.0.113.0/24"), "no trim in ExecCustomRole: a space is dropped"
    assert not accepted_by_cipp("2001:db8::/32"), "compressed IPv6 does not match"


def test_lockout_guard_refuses_ranges_that_exclude_the_operator_of_a_held_role() -> None:
    role = {"name": "techs", "allowedRanges": ["198.51.100.0/24"], "heldByOperator": True}
    [problem] = problems(role, operator_ip=OFFICE_IP)
    assert "cippApi.customRoles[0].allowedRanges" in problem
    assert OFFICE_IP in problem
    # Inside: accepted. Not held by the operator: no guard.
    parsed({**role, "allowedRanges": ["203.0.113.0/24"]}, operator_ip=OFFICE_IP)
    parsed({**role, "heldByOperator": False}, operator_ip=OFFICE_IP)


def test_lockout_guard_needs_the_operators_address_and_can_be_waived_with_a_reason() -> None:
    role = {"name": "techs", "allowedRanges": ["198.51.100.0/24"], "heldByOperator": True}
    [problem] = problems(role)
    assert "heldByOperator" in problem
    assert "operatorCheckIp is required" in problem
    config = parsed({**role, "lockoutGuardOverride": "moving to the new office"}, operator_ip=OFFICE_IP)
    assert any("lockout guard waived: moving to the new office" in w for w in config.warnings)


def test_roles_client_is_the_manager_unless_named() -> None:
    assert parsed({"name": "techs"}).cipp_api.custom_roles_client_id == "00000000-0000-0000-0000-0000000e0001"  # type: ignore[union-attr]
    other = "00000000-0000-0000-0000-0000000e0009"
    config = parsed({"name": "techs"}, rolesClientId=other)
    assert config.cipp_api.custom_roles_client_id == other  # type: ignore[union-attr]


def test_a_role_listed_twice_is_refused() -> None:
    [problem] = problems({"name": "techs"}, {"name": "Techs"})
    assert "lists role techs more than once" in problem


def test_a_configured_role_cipp_does_not_have_stops_the_run_naming_it() -> None:
    import pulumi

    from components.cipp_custom_roles import CippCustomRolesArgs, _check_roles_exist

    cipp = parsed({"name": "techs"}, {"name": "helpdesk"}).cipp_api
    assert cipp is not None
    listed = [{"RowKey": "readonly"}, {"RowKey": "techs"}]
    with pytest.raises(pulumi.RunError, match="CIPP has no role helpdesk") as stopped:
        _check_roles_exist(CippCustomRolesArgs(cipp, listed))
    assert "never the role itself" in str(stopped.value)
    _check_roles_exist(CippCustomRolesArgs(cipp, [*listed, {"RowKey": "helpdesk"}]))
    _check_roles_exist(CippCustomRolesArgs(cipp, None))  # offline: not read, nothing to check
