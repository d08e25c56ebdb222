"""The scenario matrix's details a reader relies on (docs/scenario-matrix.md, docs/assurance.md), each one found
missing by `make mutants` (docs/mutation.md): who signs in from where, what a row says, and its exit code."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.config import parse_stack_config
from cipp_hardening.directory_facts import DirectoryView, membership_of
from cipp_hardening.evaluator import ExternalUser, SignIn
from cipp_hardening.scenarios import (
    Expectation,
    MatrixResult,
    MatrixRow,
    Scenario,
    Status,
    address_inside,
    address_outside,
    derive_scenarios,
    planned_service_principals,
    run_matrix,
    summarize,
)
from tests.helpers import BREAK_GLASS_1, TECH_GROUP
from tests.test_scenarios import PART_B, Policies, block_all, client_config, msp_config, planned, policies_of, row
from tests.test_workload_identity import MANAGER, with_section, workload_config

__all__ = ["planned"]  # the module-scoped fixture of the example plan

ADMINS_TEMPLATE = "62e90394-69f5-4237-9190-012177145e10"
ROLE_WITHOUT_TEMPLATE = [
    {"@odata.type": "#microsoft.graph.directoryRole", "id": "9c1e7a0b-0000-0000-0000-000000000001"}
]


def nameless(policy: dict[str, Any]) -> dict[str, Any]:
    """An exported policy without a displayName: rows name it by id."""
    return {k: v for k, v in policy.items() if k != "displayName"}


# -- addresses -------------------------------------------------------------------------------------


def test_no_public_address_left_outside_the_ranges_is_an_error_not_a_multicast_address() -> None:
    """Ranges covering every candidate and every unicast x.0.0.1: the fallback stops at 223, below 224/4."""
    everything = ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "2606:4700::/32"]
    with pytest.raises(ValueError, match="every candidate address is inside a trusted range"):
        address_outside(everything)


def test_the_inside_address_is_the_range_itself_only_for_a_single_address() -> None:
    """address_inside: a host of the range, the range itself for /32 and /128 only (a /31 has two hosts)."""
    assert address_inside("203.0.113.10/31") == "203.0.113.11"
    assert address_inside("2001:db8::10/127") == "2001:db8::11"
    assert address_inside("2001:db8::10/128") == "2001:db8::10"


# -- derived scenarios -----------------------------------------------------------------------------


def test_the_worst_case_technician_is_a_member_of_the_first_technician_group_only() -> None:
    """docs/scenario-matrix.md: "a synthetic member of the first technician group"."""
    second = "00000000-0000-0000-0000-00000000b002"
    scenarios = derive_scenarios(msp_config(include_group_ids=(TECH_GROUP, second)))
    technicians = [s for s in scenarios if s.name.startswith("technician")]
    assert technicians
    assert all(s.sign_in.group_ids == {TECH_GROUP} for s in technicians)


def test_client_rows_sign_in_from_the_documented_azure_address() -> None:
    """docs/scenario-matrix.md: the client rows come from "the Azure address (13.69.64.10)"."""
    [gdap] = derive_scenarios(client_config())
    assert gdap.sign_in.client_ip == "13.69.64.10"


def test_a_workload_policy_not_yet_planned_leaves_its_client_unresolved() -> None:
    """planned_service_principals: no policy (or not exactly one service principal) → no id, a placeholder row."""
    config = parse_stack_config(with_section())
    workload = workload_config(with_section())
    assert planned_service_principals(config, []) == {}
    name = workload.policy_name(MANAGER)
    two = {"displayName": name, "conditions": {"clientApplications": {"includeServicePrincipals": ["a", "b"]}}}
    one = {"displayName": name, "conditions": {"clientApplications": {"includeServicePrincipals": ["a"]}}}
    assert planned_service_principals(config, [two]) == {}
    assert planned_service_principals(config, [one]) == {MANAGER: "a"}


# -- what a row says -------------------------------------------------------------------------------


def test_the_service_account_row_names_only_the_policies_whose_grant_controls_apply(
    planned: tuple[Policies, Policies],
) -> None:
    result = run_matrix(msp_config(), *planned)
    assert row(result, "CIPP service account").actual == f"not blocked, MFA every time (grant controls of '{PART_B}')"


def test_an_undecided_policy_without_a_display_name_is_named_by_its_id(planned: tuple[Policies, Policies]) -> None:
    policies, locations = planned
    risky = nameless(block_all("risky", signInRiskLevels=["high"]))
    someone = Scenario("someone", SignIn(user_id="u1", client_ip="198.51.100.9"), Expectation.NOT_BLOCKED)
    flagged = row(run_matrix(msp_config(), [*policies, risky], locations, [someone]), "someone")
    assert flagged.status is Status.UNCERTAIN
    assert f"cannot tell: '{risky['id']}' (signInRisk)" in flagged.actual


def part_b_every(planned: tuple[Policies, Policies], frequency: dict[str, Any]) -> MatrixRow:
    policies = policies_of(planned)
    policies[PART_B]["sessionControls"]["signInFrequency"] = frequency
    return row(run_matrix(msp_config(), list(policies.values()), planned[1]), "CIPP service account")


def test_part_b_enforced_without_every_time_fails_the_service_account_row(planned: tuple[Policies, Policies]) -> None:
    """docs/scenario-matrix.md: mfa_every_time needs MFA *with sign-in frequency every time* in force."""
    hourly = {"isEnabled": True, "type": "hours", "value": 4, "frequencyInterval": "timeBased"}
    failing = part_b_every(planned, hourly)
    assert failing.status is Status.FAIL
    assert failing.responsible == (PART_B,)
    assert f"'{PART_B}': applies" in failing.actual
    assert "report-only" not in failing.actual


def unknowable(name: str, controls: list[str], every_time: bool) -> dict[str, Any]:
    policy = block_all(name, signInRiskLevels=["high"])
    policy["grantControls"] = {"operator": "OR", "builtInControls": controls}
    if every_time:
        policy["sessionControls"] = {
            "signInFrequency": {
                "isEnabled": True,
                "frequencyInterval": "everyTime",
                "authenticationType": "primaryAndSecondaryAuthentication",
            }
        }
    return policy


def service_account_without_part_b(planned: tuple[Policies, Policies], *extra: dict[str, Any]) -> MatrixRow:
    policies = policies_of(planned)
    policies[PART_B]["state"] = "disabled"
    return row(run_matrix(msp_config(), [*policies.values(), *extra], planned[1]), "CIPP service account")


def test_mfa_every_time_is_undecided_when_some_unknowable_policy_could_give_it(
    planned: tuple[Policies, Policies],
) -> None:
    """One of two undecidable policies requires MFA every time: the row cannot be proven, nor shown to fail."""
    undecided = service_account_without_part_b(
        planned,
        unknowable("risky MFA", ["mfa"], every_time=True),
        unknowable("risky device", ["compliantDevice"], False),
    )
    assert undecided.status is Status.CANNOT_PROVE


def test_mfa_every_time_fails_when_no_unknowable_policy_could_require_mfa(planned: tuple[Policies, Policies]) -> None:
    """A compliant-device grant, however it turns out, never asks for MFA: the row definitely fails."""
    failing = service_account_without_part_b(planned, unknowable("risky device", ["compliantDevice"], every_time=True))
    assert failing.status is Status.FAIL


def role_admins(name: str = "Block admins outside the office") -> dict[str, Any]:
    policy = block_all(name, locations={"includeLocations": ["All"]})
    policy["conditions"]["users"] = {"includeRoles": [ADMINS_TEMPLATE]}
    return policy


def test_unread_roles_prove_nothing_only_while_a_policy_targets_roles(planned: tuple[Policies, Policies]) -> None:
    """docs/assurance.md: a guard row whose roles came back unread is not proven *while a policy targets roles*."""
    policies, locations = planned
    view = DirectoryView({BREAK_GLASS_1: membership_of(ROLE_WITHOUT_TEMPLATE)})
    assert row(run_matrix(msp_config(), policies, locations, directory=view), f"break-glass {BREAK_GLASS_1}").ok
    nameless_admins = nameless(role_admins())
    flagged = row(
        run_matrix(msp_config(), [*policies, nameless_admins], locations, directory=view),
        f"break-glass {BREAK_GLASS_1}",
    )
    assert flagged.status is Status.CANNOT_PROVE
    assert flagged.responsible == (nameless_admins["id"],)


def test_a_service_provider_of_an_unstated_tenant_is_summarized_as_unknown() -> None:
    external = SignIn(user_id="x", client_ip="13.69.64.10", external=ExternalUser("serviceProvider"))
    assert summarize(external).startswith("serviceProvider of tenant (unknown); from 13.69.64.10")


def test_an_unproven_guard_row_exits_5() -> None:
    """docs/assurance.md's exit codes: 5 "cannot prove", 3 "broken", 3 first when both."""
    unproven = MatrixRow("guard", "user x", "never_blocked", "cannot prove", Status.CANNOT_PROVE)
    broken = MatrixRow("broken", "user y", "never_blocked", "blocked", Status.FAIL)
    assert MatrixResult((unproven,)).exit_code == 5
    assert MatrixResult((unproven, broken)).exit_code == 3
    assert MatrixResult((unproven,), waiver="reviewed").exit_code == 0
