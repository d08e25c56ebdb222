"""Part C's destroy guard: it refuses exactly what a client's own delete would, and it is deleted first.

The real engine's order (dependents first, and nothing a failed delete depends on) is checked with the real
CLI in tests/engine/test_msp_stack.py; here, the rules and the dependencies the program declares.
"""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.cipp_api import predicted_delete_refusal
from dynamic_providers.cipp_api_destroy_guard import CippApiDestroyGuardError, CippApiDestroyGuardProvider
from tests.helpers import msp_raw, run_main

GUARD_TYPE = "pulumi-python:dynamic/cipp:CippApiDestroyGuard"
MANAGER = "00000000-0000-0000-0000-0000000e0001"
RMM = "00000000-0000-0000-0000-0000000e0002"
PSA = "00000000-0000-0000-0000-0000000e0003"


def recorded(client_id: str = RMM, **changes: Any) -> dict[str, Any]:
    """One client as the guard records it: the delete-relevant inputs and the adopted ranges."""
    return {
        "clientId": client_id,
        "managerClientId": MANAGER,
        "allowSelfUpdate": client_id == MANAGER,
        "restoreOnDelete": True,
        "allowAnyOnDelete": False,
        "adoptedRanges": ["198.51.100.7"],
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "refuses"),
    [
        ({}, False),  # restore real ranges
        ({"restoreOnDelete": False, "adoptedRanges": []}, False),  # leave the ranges
        ({"adoptedRanges": ["None"]}, False),  # "[]" cannot be written back: left, said so
        ({"adoptedRanges": []}, True),  # restore Any: refused
        ({"adoptedRanges": [], "allowAnyOnDelete": True}, False),
    ],
)
def test_the_guard_predicts_the_clients_own_refusal(changes: dict[str, Any], refuses: bool) -> None:
    reason = predicted_delete_refusal(recorded(**changes))
    assert (reason is not None) == refuses
    if refuses:
        assert reason is not None
        assert "refusing to open the client" in reason


def test_restoring_the_managers_own_ranges_without_allow_self_update_is_predicted() -> None:
    reason = predicted_delete_refusal(recorded(MANAGER, allowSelfUpdate=False))
    assert reason is not None
    assert "Set allowSelfUpdate: true" in reason


def test_the_guard_delete_names_every_refusing_client_and_passes_otherwise() -> None:
    provider = CippApiDestroyGuardProvider()
    fine = [recorded(MANAGER, restoreOnDelete=False), recorded()]
    provider.delete("cipp-api-destroy-guard", {"clients": fine})
    refusing = [
        *fine,
        recorded(PSA, adoptedRanges=[]),
        recorded("00000000-0000-0000-0000-0000000e0009", adoptedRanges=[]),
    ]
    with pytest.raises(CippApiDestroyGuardError) as stopped:
        provider.delete("cipp-api-destroy-guard", {"clients": refusing})
    message = str(stopped.value)
    assert message.startswith("nothing deleted")
    assert PSA in message
    assert "00000000-0000-0000-0000-0000000e0009" in message
    assert RMM not in message


def test_the_program_makes_the_guard_depend_on_every_other_resource() -> None:
    run = run_main(msp_raw())
    [guard] = run.of_type(GUARD_TYPE)
    others = {r.urn for r in run.resources if r.custom and r.urn != guard.urn}
    assert others, "the stack has other resources"
    assert others <= set(guard.dependencies), "a resource the guard does not depend on could be deleted before it"
    assert guard.parent is None or guard.parent.endswith("cipp-hardening-prod")  # not inside a component it needs
    clients = guard.inputs["clients"]
    assert [c["clientId"] for c in clients] == [MANAGER, RMM]
    assert clients[1]["restoreOnDelete"] is True
    assert clients[1]["adoptedRanges"] == "(known after apply)"  # the Part C resource's output, from its state


def test_with_workload_identity_policies_the_guard_depends_on_them_too() -> None:
    raw = msp_raw()
    raw["cippApi"]["workloadIdentityPolicies"] = {"state": "reportOnly"}
    run = run_main(raw)
    [guard] = run.of_type(GUARD_TYPE)
    workload = [r.urn for r in run.resources if r.custom and "workload" in r.urn]
    assert workload
    assert set(workload) <= set(guard.dependencies)


def test_cipp_roles_take_part_and_a_role_that_would_open_stops_the_whole_destroy() -> None:
    provider = CippApiDestroyGuardProvider()
    role = {"name": "techs", "restoreOnDelete": True, "allowOpenOnDelete": False, "adoptedRanges": ["192.0.2.0/24"]}
    provider.delete("cipp-api-destroy-guard", {"clients": [recorded()], "roles": [role]})
    with pytest.raises(CippApiDestroyGuardError) as stopped:
        provider.delete("cipp-api-destroy-guard", {"clients": [recorded()], "roles": [{**role, "adoptedRanges": []}]})
    assert "CIPP role techs" in str(stopped.value)
    assert "refusing to open it" in str(stopped.value)
    # Stated either way, it passes: leave the ranges, or open the role on purpose.
    provider.delete(
        "cipp-api-destroy-guard", {"clients": [], "roles": [{**role, "adoptedRanges": [], "restoreOnDelete": False}]}
    )
    provider.delete(
        "cipp-api-destroy-guard", {"clients": [], "roles": [{**role, "adoptedRanges": [], "allowOpenOnDelete": True}]}
    )


def test_the_program_declares_one_resource_per_role_and_guards_it() -> None:
    raw = msp_raw()
    raw["cippApi"]["customRoles"] = [{"name": "Techs"}, {"name": "helpdesk", "restoreOnDelete": False}]
    run = run_main(raw)
    # Registrations arrive in whatever order their inputs resolve: compare by name.
    roles = sorted(
        run.of_type("pulumi-python:dynamic/cipp:CippCustomRoleRanges"), key=lambda r: r.inputs["name"] != "techs"
    )
    assert [r.inputs["name"] for r in roles] == ["techs", "helpdesk"]
    assert roles[0].inputs["allowedRanges"] == ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/32"]
    assert roles[0].inputs["clientId"] == MANAGER, "without rolesClientId the manager client calls ExecCustomRole"
    [guard] = run.of_type(GUARD_TYPE)
    assert {r.urn for r in roles} <= set(guard.dependencies)
    assert [(r["name"], r["restoreOnDelete"]) for r in guard.inputs["roles"]] == [("techs", True), ("helpdesk", False)]


def test_without_custom_roles_the_guard_records_no_roles_key() -> None:
    [guard] = run_main(msp_raw()).of_type(GUARD_TYPE)
    assert "roles" not in guard.inputs, "stacks from before custom roles see no change to their guard"
