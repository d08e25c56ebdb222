"""The scenario matrix: derived scenarios, judging (ok / fail / uncertain), client after-state, the YAML file."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.commands.plan import build_plan
from cipp_hardening.config import Assumptions, ClientStack, MspStack, parse_stack_config
from cipp_hardening.directory_facts import DirectoryView, Membership, membership_of
from cipp_hardening.evaluator import SignIn
from cipp_hardening.exclusion import msp_is_excluded
from cipp_hardening.policy_files import load_policy_folder
from cipp_hardening.scenario_files import ScenarioFileError, config_from_stack_file, load_scenarios_file, user_scenarios
from cipp_hardening.scenarios import (
    EXIT_BROKEN,
    EXIT_CANNOT_PROVE,
    Expectation,
    MatrixResult,
    Scenario,
    Status,
    address_inside,
    address_outside,
    derive_scenarios,
    policies_after_apply,
    run_matrix,
)
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, MSP_TENANT, ROOT, SERVICE_ACCOUNT, TECH_GROUP, msp_raw

PART_A = "Block CIPP Access - Outside Trusted IPs"
PART_B = "CIPP Service Account Conditional Access Policy"
CONTOSO_POLICIES = ROOT / "examples" / "client-contoso-policies"
Policies = list[dict[str, Any]]


def msp_config(**technician: Any) -> MspStack:
    """The example MSP stack with technician_access fields replaced (no re-validation: the config rules
    are tested elsewhere, and the matrix must judge whatever it is given)."""
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    return dataclasses.replace(config, technician_access=dataclasses.replace(config.technician_access, **technician))


def client_config(**tenant: Any) -> ClientStack:
    config = config_from_stack_file(ROOT / "Pulumi.client-contoso.yaml")
    assert isinstance(config, ClientStack)
    return dataclasses.replace(config, client_tenant=dataclasses.replace(config.client_tenant, **tenant))


@pytest.fixture(scope="module")
def planned() -> tuple[Policies, Policies]:
    document = build_plan("example")
    return document.graph_objects("policy"), document.graph_objects("namedLocation")


def policies_of(planned: tuple[Policies, Policies]) -> dict[str, dict[str, Any]]:
    return {p["displayName"]: copy.deepcopy(p) for p in planned[0]}


def row(result: MatrixResult, name_start: str) -> Any:
    return next(r for r in result.rows if r.name.startswith(name_start))


def block_all(name: str, state: str = "enabled", **conditions: Any) -> dict[str, Any]:
    return {
        "id": f"99999999-0000-0000-0000-{abs(hash(name)) % 10**12:012d}",
        "displayName": name,
        "state": state,
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
            **conditions,
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


# -- addresses -------------------------------------------------------------------------------------


def test_the_outside_address_avoids_every_trusted_range() -> None:
    assert address_outside(["203.0.113.0/24"]) == "198.51.100.23"
    assert address_outside(["198.51.100.0/24", "192.0.2.0/24"]) == "8.8.8.8"
    assert address_outside(["198.51.100.0/24"], ["198.51.100.1"]) == "1.0.0.1"  # the fallback skips no candidate


def test_an_inside_address_is_a_host_of_the_range() -> None:
    assert address_inside("203.0.113.0/24") == "203.0.113.1"
    assert address_inside("203.0.113.10/32") == "203.0.113.10"
    assert address_inside("2001:db8::/32") == "2001:db8::1"


# -- derived scenarios -----------------------------------------------------------------------------


def test_msp_scenarios_cover_each_range_each_break_glass_and_the_service_account() -> None:
    config = msp_config()
    scenarios = {s.name: s for s in derive_scenarios(config)}
    expectations = {name: s.expect for name, s in scenarios.items()}
    assert expectations == {
        "technician inside 203.0.113.0/24": Expectation.NOT_BLOCKED_BY_PART_A,
        "technician inside 2001:db8::/32": Expectation.NOT_BLOCKED_BY_PART_A,
        "technician outside the trusted ranges": Expectation.WOULD_BE_BLOCKED,  # the stack is report-only
        f"break-glass {BREAK_GLASS_1} from outside": Expectation.NEVER_BLOCKED,
        f"break-glass {BREAK_GLASS_2} from outside": Expectation.NEVER_BLOCKED,
        "CIPP service account from Azure": Expectation.MFA_EVERY_TIME,
    }
    trusted = [ipaddress.ip_network(c) for c in config.trusted_location.cidrs]
    for scenario in scenarios.values():
        assert scenario.sign_in.group_ids == {TECH_GROUP}, "worst case: everyone is also a technician"
        inside = any(ipaddress.ip_address(str(scenario.sign_in.client_ip)) in n for n in trusted)
        assert inside == scenario.name.startswith("technician inside")
    assert scenarios["CIPP service account from Azure"].sign_in.user_id == SERVICE_ACCOUNT


def test_enabled_part_a_expects_a_block_and_cipp_app_targets_the_app() -> None:
    app = "00000000-0000-0000-0000-0000000ccccc"
    config = msp_config(state="enabled", target="cippApp", cipp_app_id=app)
    scenarios = derive_scenarios(config)
    assert next(s for s in scenarios if "outside the trusted" in s.name).expect is Expectation.BLOCKED
    assert {s.sign_in.application_id for s in scenarios} == {app}


def test_include_users_and_break_glass_groups() -> None:
    user, group = "00000000-0000-0000-0000-0000000000e1", "00000000-0000-0000-0000-0000000000e2"
    config = msp_config(include_user_ids=(user,), break_glass_group_ids=(group,))
    scenarios = derive_scenarios(config)
    assert next(s for s in scenarios if "outside the trusted" in s.name).sign_in.user_id == user
    member = next(s for s in scenarios if s.name.startswith("member of break-glass group"))
    assert member.sign_in.group_ids == {TECH_GROUP, group}
    assert member.expect is Expectation.NEVER_BLOCKED


def test_client_scenarios_gdap_and_direct() -> None:
    [gdap] = derive_scenarios(client_config())
    assert gdap.sign_in.external is not None
    assert (gdap.sign_in.external.kind, gdap.sign_in.external.home_tenant_id) == ("serviceProvider", MSP_TENANT)
    assert gdap.expect is Expectation.NEVER_BLOCKED
    [direct] = derive_scenarios(client_config(access_mode="direct", service_account_user_id=SERVICE_ACCOUNT))
    assert (direct.sign_in.user_id, direct.sign_in.external) == (SERVICE_ACCOUNT, None)


# -- the matrix over the planned MSP policies --------------------------------------------------------


def test_the_example_plan_holds_every_invariant(planned: tuple[Policies, Policies]) -> None:
    result = run_matrix(msp_config(), *planned)
    assert result.ok
    assert not result.uncertain
    assert all(r.ok and r.responsible == () for r in result.rows)
    outside = row(result, "technician outside")
    assert outside.actual == f"would be blocked by report-only '{PART_A}'"
    assert row(result, "CIPP service account").actual.startswith("not blocked, MFA every time")
    assert row(result, "technician inside 203").actual.startswith("Part A does not apply (location)")


def test_a_break_glass_account_another_policy_blocks_fails_naming_it(planned: tuple[Policies, Policies]) -> None:
    policies, locations = planned
    blocker = block_all("Block legacy clients for everyone", clientAppTypes=["all"])
    result = run_matrix(msp_config(), [*policies, blocker], locations)
    failing = row(result, f"break-glass {BREAK_GLASS_1}")
    assert failing.status is Status.FAIL
    assert not failing.ok
    assert failing.responsible == ("Block legacy clients for everyone",)
    assert failing in result.failures
    assert not result.ok


def test_a_service_account_part_a_would_block_fails(planned: tuple[Policies, Policies]) -> None:
    policies = policies_of(planned)
    policies[PART_A]["conditions"]["users"]["excludeUsers"].remove(SERVICE_ACCOUNT)
    result = run_matrix(msp_config(), list(policies.values()), planned[1])
    failing = row(result, "CIPP service account")
    assert failing.status is Status.FAIL
    assert failing.responsible == (PART_A,)
    assert "would be blocked by report-only" in failing.actual


def test_a_disabled_part_a_leaves_technicians_outside_unblocked(planned: tuple[Policies, Policies]) -> None:
    policies = policies_of(planned)
    policies[PART_A]["state"] = "disabled"
    failing = row(run_matrix(msp_config(), list(policies.values()), planned[1]), "technician outside")
    assert failing.status is Status.FAIL
    assert failing.responsible == (PART_A,)
    assert "does not apply (policyNotEnabled)" in failing.actual


def test_part_b_in_report_only_does_not_enforce_mfa(planned: tuple[Policies, Policies]) -> None:
    policies = policies_of(planned)
    policies[PART_B]["state"] = "enabledForReportingButNotEnforced"
    failing = row(run_matrix(msp_config(), list(policies.values()), planned[1]), "CIPP service account")
    assert failing.status is Status.FAIL
    assert failing.responsible == (PART_B,)
    assert "report-only, not enforced" in failing.actual


def test_a_part_a_that_excludes_the_wrong_location_blocks_the_office(planned: tuple[Policies, Policies]) -> None:
    policies = policies_of(planned)
    policies[PART_A]["conditions"]["locations"]["excludeLocations"] = ["00000000-0000-0000-0000-0000000000ff"]
    result = run_matrix(msp_config(), list(policies.values()), planned[1])
    failing = row(result, "technician inside 203")
    assert failing.status is Status.UNCERTAIN, "an unknown location id cannot be decided"
    policies[PART_A]["conditions"]["locations"]["excludeLocations"] = []
    failing = row(run_matrix(msp_config(), list(policies.values()), planned[1]), "technician inside 203")
    assert failing.status is Status.FAIL
    assert failing.responsible == (PART_A,)


# -- "cannot tell" ---------------------------------------------------------------------------------


def test_a_risk_policy_makes_break_glass_cannot_prove_with_no_assumption_to_settle_it(
    planned: tuple[Policies, Policies],
) -> None:
    policies, locations = planned
    risky = block_all("Block high-risk sign-ins", signInRiskLevels=["high"])
    result = run_matrix(msp_config(), [*policies, risky], locations)
    flagged = row(result, f"break-glass {BREAK_GLASS_1}")
    assert flagged.status is Status.CANNOT_PROVE
    assert not flagged.ok
    assert flagged.responsible == ("Block high-risk sign-ins",)
    assert flagged.actual.startswith("cannot prove never_blocked: 'Block high-risk sign-ins' cannot be decided on")
    assert "signInRisk; no stated assumption settles it" in flagged.actual
    assert "cipp-hardening:assumptions.cannotProveOverride" in flagged.actual
    assert [u.settled_by for u in flagged.undecided] == [None]
    assert flagged in result.unproven
    assert flagged not in result.failures
    assert flagged not in result.uncertain
    assert (result.ok, result.exit_code) == (False, EXIT_CANNOT_PROVE)
    stated = Scenario(
        "break-glass, no risk",
        SignIn(user_id=BREAK_GLASS_1, client_ip="198.51.100.9", sign_in_risk="none"),
        Expectation.NEVER_BLOCKED,
    )
    assert run_matrix(msp_config(), [*policies, risky], locations, [stated]).rows[-1].status is Status.OK


def test_a_non_guard_row_that_cannot_be_decided_stays_flag_only(planned: tuple[Policies, Policies]) -> None:
    policies, locations = planned
    risky = block_all("Block high-risk sign-ins", signInRiskLevels=["high"])
    risky["conditions"]["users"]["excludeUsers"] = [BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT]
    staff = Scenario("staff", SignIn(user_id="staff", client_ip="198.51.100.9"), Expectation.NEVER_BLOCKED)
    result = run_matrix(msp_config(), [*policies, risky], locations, [staff])
    assert result.rows[-1].status is Status.UNCERTAIN
    assert result.uncertain == (result.rows[-1],)
    assert (result.ok, result.exit_code, result.unproven) == (True, 0, ())


ALL_TRUSTED = {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}


def block_outside_all_trusted(*excluded: str) -> dict[str, Any]:
    """The portal policy of docs/assurance.md: everyone outside AllTrusted is blocked, some accounts excluded."""
    policy = block_all("Block everyone outside AllTrusted", locations=ALL_TRUSTED)
    policy["conditions"]["users"]["excludeUsers"] = list(excluded)
    return policy


def test_the_service_account_outside_all_trusted_cannot_be_proven_until_the_mfa_ips_are_stated(
    planned: tuple[Policies, Policies],
) -> None:
    policies, locations = planned
    portal = block_outside_all_trusted(BREAK_GLASS_1, BREAK_GLASS_2)
    result = run_matrix(unstated(msp_config()), [*policies, portal], locations)
    flagged = row(result, "CIPP service account")
    assert flagged.status is Status.CANNOT_PROVE
    [undecided] = flagged.undecided
    assert (undecided.policy, undecided.conditions) == ("Block everyone outside AllTrusted", ("location",))
    assert undecided.settled_by == "assumptions.legacyMfaTrustedIps"
    assert "stating cipp-hardening:assumptions.legacyMfaTrustedIps" in flagged.actual
    assert result.exit_code == EXIT_CANNOT_PROVE
    assert result.to_json()["cannotProve"] == [
        {
            "row": "CIPP service account from Azure",
            "policy": "Block everyone outside AllTrusted",
            "id": portal["id"],
            "conditions": ["location"],
            "settledBy": "cipp-hardening:assumptions.legacyMfaTrustedIps",
        }
    ]
    for user in (BREAK_GLASS_1, BREAK_GLASS_2):
        assert row(result, f"break-glass {user}").status is Status.OK

    stated = with_assumptions(msp_config(), legacyMfaTrustedIps=[])
    decided = run_matrix(stated, [*policies, portal], locations)
    assert row(decided, "CIPP service account").status is Status.FAIL
    assert decided.exit_code == EXIT_BROKEN
    inside = with_assumptions(msp_config(), legacyMfaTrustedIps=["13.64.0.0/11"])
    assert run_matrix(inside, [*policies, portal], locations).ok, "an Azure range among the MFA trusted IPs"
    portal["conditions"]["users"]["excludeUsers"].append(SERVICE_ACCOUNT)
    assert run_matrix(unstated(msp_config()), [*policies, portal], locations).ok


def unstated(config: Any) -> Any:
    """The config with no assumption stated (the example MSP stack states legacyMfaTrustedIps: [])."""
    return dataclasses.replace(config, assumptions=Assumptions())


def with_assumptions(config: Any, **assumptions: Any) -> Any:
    raw = {"mode": "msp"} if isinstance(config, MspStack) else {"mode": "client"}
    return dataclasses.replace(config, assumptions=_assumptions_of({**raw, "assumptions": assumptions}))


def _assumptions_of(raw: dict[str, Any]) -> Any:
    full = msp_raw() if raw["mode"] == "msp" else config_raw_client()
    full["assumptions"] = raw["assumptions"]
    return parse_stack_config(full).assumptions


def config_raw_client() -> dict[str, Any]:
    return {
        "mode": "client",
        "clientTenant": {"tenantId": "00000000-0000-0000-0000-0000000c0001", "mspTenantId": MSP_TENANT},
    }


def test_each_guard_row_cannot_be_proven_when_undecided(planned: tuple[Policies, Policies]) -> None:
    group = "00000000-0000-0000-0000-00000000e0e0"
    policies, locations = list(policies_of(planned).values()), planned[1]
    for policy in policies:
        policy["conditions"]["users"]["excludeGroups"] = [group]
    config = unstated(msp_config(break_glass_group_ids=(group,)))
    portal = block_outside_all_trusted()
    result = run_matrix(config, [*policies, portal], locations)
    unproven = {r.name for r in result.unproven}
    assert unproven == {
        f"break-glass {BREAK_GLASS_1} from outside",
        f"break-glass {BREAK_GLASS_2} from outside",
        "member of break-glass group 00000000-0000-0000-0000-00000000e0e0 from outside",
        "CIPP service account from Azure",
    }
    gdap = run_matrix(client_config(), [portal], [])
    assert [r.status for r in gdap.rows] == [Status.CANNOT_PROVE]
    direct = client_config(access_mode="direct", service_account_user_id=SERVICE_ACCOUNT)
    assert [r.status for r in run_matrix(direct, [portal], []).rows] == [Status.CANNOT_PROVE]
    assert run_matrix(with_assumptions(client_config(), legacyMfaTrustedIps=[]), [portal], []).exit_code == 3


def test_a_reviewed_override_accepts_what_cannot_be_proven_but_never_a_failure(
    planned: tuple[Policies, Policies],
) -> None:
    policies, locations = planned
    waived = with_assumptions(msp_config(), cannotProveOverride="risk policy reviewed with the security team")
    risky = block_all("Block high-risk sign-ins", signInRiskLevels=["high"])
    result = run_matrix(waived, [*policies, risky], locations)
    assert result.unproven
    assert (result.ok, result.exit_code) == (True, 0)
    assert result.to_json()["cannotProveOverride"] == "risk policy reviewed with the security team"
    assert run_matrix(waived, [*policies, block_all("Block everyone")], locations).exit_code == EXIT_BROKEN


def test_a_certain_block_is_not_hidden_by_an_unknown(planned: tuple[Policies, Policies]) -> None:
    policies, locations = planned
    extra = [block_all("Block high-risk sign-ins", signInRiskLevels=["high"]), block_all("Block everyone")]
    failing = row(run_matrix(msp_config(), [*policies, *extra], locations), f"break-glass {BREAK_GLASS_1}")
    assert failing.status is Status.FAIL
    assert failing.responsible == ("Block everyone",)


def test_mfa_every_time_from_an_unknowable_policy_cannot_be_proven(planned: tuple[Policies, Policies]) -> None:
    policies = policies_of(planned)
    policies[PART_B]["conditions"]["devices"] = {"deviceFilter": {"mode": "include", "rule": "device.isCompliant"}}
    flagged = row(run_matrix(msp_config(), list(policies.values()), planned[1]), "CIPP service account")
    assert flagged.status is Status.CANNOT_PROVE
    assert flagged.responsible == (PART_B,)
    assert f"'{PART_B}' cannot be decided on devices; no stated assumption settles it" in flagged.actual


def test_blocked_expectation_with_an_unknowable_block_is_uncertain(planned: tuple[Policies, Policies]) -> None:
    policies = policies_of(planned)
    policies[PART_A]["conditions"]["signInRiskLevels"] = ["medium"]
    flagged = row(run_matrix(msp_config(), list(policies.values()), planned[1]), "technician outside")
    assert flagged.status is Status.UNCERTAIN
    assert flagged.responsible == (PART_A,)


# -- client stacks: the after-state ----------------------------------------------------------------


def test_after_apply_merges_in_scope_policies_and_keeps_the_rest() -> None:
    config = client_config()
    before = load_policy_folder(CONTOSO_POLICIES)
    pristine = copy.deepcopy(before)
    after = {p["displayName"]: p for p in policies_after_apply(config, before)}
    assert before == pristine, "the input is not modified"
    users = {name: p["conditions"]["users"] for name, p in after.items()}
    assert msp_is_excluded(users["Require MFA for all users"], MSP_TENANT)
    assert msp_is_excluded(users["Block sign-ins from outside the office"], MSP_TENANT)
    assert not msp_is_excluded(users["Guests: MFA, internal guests exempt"], MSP_TENANT), "a conflict stays"
    unchanged = {p["displayName"]: p for p in pristine}
    for name in ("Pilot: compliant devices (disabled)", "Block workload identities outside Azure"):
        assert after[name] == unchanged[name]


def test_the_client_matrix_before_and_after() -> None:
    config = client_config()
    policies = load_policy_folder(CONTOSO_POLICIES)
    before = run_matrix(config, policies, [], mfa_trusted_ips=[])
    assert before.rows[0].status is Status.FAIL
    assert before.rows[0].responsible == ("Block sign-ins from outside the office",)
    assert "would be blocked by report-only" in before.rows[0].actual
    assert run_matrix(config, policies_after_apply(config, policies), []).ok


def test_a_conflict_policy_that_blocks_the_msp_fails_the_row_naming_it() -> None:
    guests = {"guestOrExternalUserTypes": "internalGuest", "externalTenants": {"membershipKind": "all"}}
    conflict = block_all("Block guests outside the office", locations={"includeLocations": ["All"]})
    conflict["conditions"]["users"]["excludeGuestsOrExternalUsers"] = guests
    plain = block_all("Block everyone from everywhere")
    config = client_config()
    result = run_matrix(config, policies_after_apply(config, [conflict, plain]), [])
    [msp_row] = result.rows
    assert msp_row.status is Status.FAIL
    assert msp_row.responsible == ("Block guests outside the office",)


def test_direct_mode_after_state_excludes_the_service_account() -> None:
    config = client_config(access_mode="direct", service_account_user_id=SERVICE_ACCOUNT)
    policies = [block_all("Block everyone from everywhere")]
    assert not run_matrix(config, policies, []).ok
    assert run_matrix(config, policies_after_apply(config, policies), []).ok


# -- the scenario file -----------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_sign_in_field_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
scenarios:
  - name: everything
    expect: not_blocked
    signIn:
      userId: u1
      groups: [g1]
      roles: [r1]
      ip: 2001:db8::5
      app: 00000000-0000-0000-0000-0000000000aa
      appGroups: [office365]
      clientApp: exchangeActiveSync
      platform: iOS
      country: NL
      external: {kind: serviceProvider, tenant: 00000000-0000-0000-0000-00000000A001}
      authenticationContext: c1
      signInRisk: low
      userRisk: none
      insiderRisk: minor
      authenticationFlow: deviceCodeFlow
  - name: an action, any app
    expect: blocked
    signIn: {userId: u2, app: All, userAction: registerSecurityInformation}
""",
    )
    first, second = load_scenarios_file(path)
    assert first.expect is Expectation.NOT_BLOCKED
    assert first.origin == "scenarios.yaml: scenarios[0]"
    sign_in = first.sign_in
    assert (sign_in.user_id, sign_in.group_ids, sign_in.role_template_ids) == ("u1", {"g1"}, {"r1"})
    assert (sign_in.client_ip, sign_in.app_groups, sign_in.client_app_type) == (
        "2001:db8::5",
        {"Office365"},
        "exchangeActiveSync",
    )
    assert sign_in.external is not None
    assert sign_in.external.home_tenant_id == MSP_TENANT
    assert (sign_in.device_platform, sign_in.country, sign_in.authentication_flow) == ("iOS", "NL", "deviceCodeFlow")
    assert second.sign_in.application_id is None
    assert second.sign_in.user_action == "registerSecurityInformation"


def test_errors_name_the_file_and_the_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
scenarios:
  - name: typo
    expect: blockd
    signIn: {userId: u1, ipp: 198.51.100.1}
  - name: bad values
    expect: blocked
    signIn: {userId: u1, ip: 198.51.100.300, groups: g1, clientApp: fax}
  - name: typo
    expect: blocked
    signIn: {userId: u1, external: {kind: partner}}
  - expect: blocked
    signIn: {}
  - just a string
""",
    )
    with pytest.raises(ScenarioFileError) as error:
        load_scenarios_file(path)
    message = str(error.value)
    assert all(line.strip().startswith(f"- {path}:") for line in message.splitlines()[1:])
    for fragment in (
        "scenarios[0] ('typo').expect: must be one of blocked, would_be_blocked",
        "scenarios[0] ('typo').signIn.ipp: unknown key (did you mean ip?)",
        "scenarios[1] ('bad values').signIn.groups: must be a list of strings",
        "scenarios[1] ('bad values').signIn.ip: '198.51.100.300' is not an IPv4 or IPv6 address",
        "scenarios[2] ('typo').signIn.external.kind: unknown external user kind 'partner'",
        "scenarios[3].name: is required",
        "scenarios[3].signIn.userId: is required",
        "scenarios[4]: must be a mapping with name, expect and signIn",
    ):
        assert fragment in message, fragment


def test_vocabulary_errors_of_the_evaluator_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "scenarios:\n  - {name: x, expect: blocked, signIn: {userId: u, clientApp: fax}}\n")
    with pytest.raises(ScenarioFileError, match=r"scenarios\[0\] \('x'\)\.signIn: unknown client app type 'fax'"):
        load_scenarios_file(path)


def test_duplicate_names_and_the_file_shape(tmp_path: Path) -> None:
    twice = "scenarios:\n" + "  - {name: x, expect: blocked, signIn: {userId: u}}\n" * 2
    with pytest.raises(ScenarioFileError, match="'x' is used twice"):
        load_scenarios_file(write(tmp_path, twice))
    with pytest.raises(ScenarioFileError, match="must be a mapping with a `scenarios:` list"):
        load_scenarios_file(write(tmp_path, "- name: x\n"))
    with pytest.raises(ScenarioFileError, match="is not YAML"):
        load_scenarios_file(write(tmp_path, "scenarios: [\n"))
    with pytest.raises(ScenarioFileError, match="cannot be read"):
        load_scenarios_file(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioFileError, match=r"\(top level\)\.extra: unknown key"):
        load_scenarios_file(write(tmp_path, "scenarios: []\nextra: 1\n"))


def test_the_example_files_load_and_are_referenced_from_the_example_stacks() -> None:
    prod, contoso = msp_config(), client_config()
    assert next(s.name for s in user_scenarios(prod, ROOT)) == "technician working from home"
    assert len(user_scenarios(contoso, ROOT)) == 2
    assert user_scenarios(dataclasses.replace(prod, scenarios_file=None), ROOT) == []


def test_the_stack_file_reader_counts_secure_values_as_set(tmp_path: Path) -> None:
    stack = (ROOT / "Pulumi.client-contoso.yaml").read_text() + (
        "  cipp-hardening:graphClientId: 00000000-0000-0000-0000-0000000000f1\n"
        "  cipp-hardening:graphClientSecret:\n    secure: AAABAxyz\n"
    )
    path = tmp_path / "Pulumi.client-x.yaml"
    path.write_text(stack)
    config = config_from_stack_file(path)
    assert isinstance(config, ClientStack)
    assert config.graph_client_id == "00000000-0000-0000-0000-0000000000f1"


# -- memberships from the directory (make verify) ---------------------------------------------------


def test_directory_memberships_replace_asserted_ones_and_unread_roles_cannot_prove_a_guard(
    planned: tuple[Policies, Policies],
) -> None:
    policies, locations = planned
    admins_template = "62e90394-69f5-4237-9190-012177145e10"
    block_admins = block_all("Block admins outside the office", locations={"includeLocations": ["All"]})
    block_admins["conditions"]["users"] = {"includeRoles": [admins_template]}
    limited = [{"@odata.type": "#microsoft.graph.directoryRole", "id": "9c1e7a0b-0000-0000-0000-000000000001"}]
    unread = membership_of(limited)
    assert not unread.roles_read
    view = DirectoryView({BREAK_GLASS_1: unread, BREAK_GLASS_2: Membership(role_template_ids=frozenset())})
    result = run_matrix(msp_config(), [*policies, block_admins], locations, directory=view)
    flagged = row(result, f"break-glass {BREAK_GLASS_1}")
    assert flagged.status is Status.CANNOT_PROVE
    assert "RoleManagement.Read.Directory" in flagged.actual
    assert row(result, f"break-glass {BREAK_GLASS_2}").status is Status.OK, "its roles were read: none"

    read = membership_of([{**limited[0], "roleTemplateId": admins_template}])
    failing = row(
        run_matrix(msp_config(), [*policies, block_admins], locations, directory=DirectoryView({BREAK_GLASS_1: read})),
        f"break-glass {BREAK_GLASS_1}",
    )
    assert failing.status is Status.FAIL
    assert failing.responsible == ("Block admins outside the office",)
