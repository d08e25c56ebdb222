"""Each policy of the pack, both ways, called with constructed args like the analyzer builds them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from cipp_hardening.config import PROJECT
from cipp_hardening.offline import OfflineRun
from policy import policies
from policy.policies import CA_POLICY, NAMED_LOCATION
from policy.tests.harness import Outcome, check, engine_config, policy_resource, resource_args, stack_args, urn
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT, msp_raw, run_main

PART_A = "technician-access-policy"
PART_B = "service-account-policy"
LOCATION = "trusted-location-named-location"
PART_A_ID = "4d283841-437b-54ab-9b93-eb9d4111d485"


@pytest.fixture(scope="module")
def example_run() -> OfflineRun:
    return run_main(msp_raw())


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The example stack's config handed to the pack as the engine does (PULUMI_CONFIG); edit, then `apply`."""
    raw = msp_raw()
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))
    return raw


def reapply(monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any]) -> None:
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))


def inputs(run: OfflineRun, name: str) -> dict[str, Any]:
    resource = next(r for r in run.resources if r.name == name)
    return copy.deepcopy({k: v for k, v in resource.inputs.items() if k != "objectId"})


def state(run: OfflineRun, name: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for r in run.resources if r.name == name).inputs)


def on_resource(policy: Any, props: dict[str, Any], name: str, type_: str = CA_POLICY) -> Outcome:
    return check(policy, resource_args(type_, props, name))


def on_stack(policy: Any, resources: list[PolicyResource], config: dict[str, Any] | None = None) -> Outcome:
    return check(policy, stack_args(resources, config))


def planned(run: OfflineRun, **replace: dict[str, Any]) -> list[PolicyResource]:
    """The example's custom resources as stack-policy resources, some props replaced."""
    return [
        policy_resource(r.type, replace.get(r.name, r.inputs), r.name, resource_urn=r.urn)
        for r in run.resources
        if r.custom
    ]


def rogue_policy(**users: Any) -> dict[str, Any]:
    return {
        "displayName": "Require MFA for everyone",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includedApplications": ["All"]},
            "users": {"includedUsers": ["All"], **users},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


# --- break-glass-excluded ---------------------------------------------------------------------------


def test_break_glass_policy_passes_part_a(engine: dict[str, Any], example_run: OfflineRun) -> None:
    assert on_resource(policies.break_glass_excluded, inputs(example_run, PART_A), PART_A).messages == []


def test_break_glass_policy_flags_a_broad_policy_without_exclusion(engine: dict[str, Any]) -> None:
    found = on_resource(policies.break_glass_excluded, rogue_policy(excludedUsers=[SERVICE_ACCOUNT]), "mfa-all")
    assert len(found.messages) == 1
    message = found.messages[0]
    assert "'Require MFA for everyone' (mfa-all)" in message
    assert "All users" in message
    assert BREAK_GLASS_1 in message
    assert "Fix: exclude a break-glass user in conditions.users.excludedUsers" in message


def test_break_glass_group_exclusion_counts(engine: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    group = "00000000-0000-0000-0000-00000000c0c0"
    engine["technicianAccess"]["breakGlassGroupIds"] = [group]
    reapply(monkeypatch, engine)
    found = on_resource(policies.break_glass_excluded, rogue_policy(excludedGroups=[group.upper()]), "mfa-all")
    assert found.messages == []


def test_break_glass_policy_ignores_narrow_and_disabled_policies(engine: dict[str, Any]) -> None:
    narrow = rogue_policy()
    narrow["conditions"]["users"] = {"includedUsers": [SERVICE_ACCOUNT]}
    disabled = {**rogue_policy(), "state": "disabled"}
    assert on_resource(policies.break_glass_excluded, narrow, "narrow").messages == []
    assert on_resource(policies.break_glass_excluded, disabled, "off").messages == []


def test_a_group_targeted_block_needs_break_glass_too(engine: dict[str, Any], example_run: OfflineRun) -> None:
    props = inputs(example_run, PART_A)
    props["conditions"]["users"]["excludedUsers"] = [SERVICE_ACCOUNT]
    found = on_resource(policies.break_glass_excluded, props, PART_A)
    assert len(found.messages) == 1
    assert "block to group 00000000-0000-0000-0000-00000000b001" in found.messages[0]


def test_unknown_exclusions_are_unknown_at_preview(engine: dict[str, Any]) -> None:
    with pytest.raises(UnknownValueError):
        on_resource(policies.break_glass_excluded, rogue_policy(excludedUsers=[UNKNOWN_STRING_VALUE]), "mfa-all")


# --- service-account-excluded -------------------------------------------------------------------------


def test_service_account_excluded_passes_part_a_and_exempts_part_b(
    engine: dict[str, Any], example_run: OfflineRun
) -> None:
    assert on_resource(policies.service_account_excluded, inputs(example_run, PART_A), PART_A).messages == []
    assert on_resource(policies.service_account_excluded, inputs(example_run, PART_B), PART_B).messages == []


def test_service_account_must_be_excluded_elsewhere(engine: dict[str, Any]) -> None:
    found = on_resource(policies.service_account_excluded, rogue_policy(excludedUsers=[BREAK_GLASS_1]), "mfa-all")
    assert len(found.messages) == 1
    assert SERVICE_ACCOUNT in found.messages[0]
    assert "(mfa-all)" in found.messages[0]
    assert "Fix: add it to conditions.users.excludedUsers" in found.messages[0]


def test_a_policy_for_workload_identities_only_needs_no_user_exclusion(engine: dict[str, Any]) -> None:
    workload = rogue_policy(includedUsers=["None"])
    workload["conditions"]["clientApplications"] = {"includedServicePrincipals": [BREAK_GLASS_1]}
    assert on_resource(policies.service_account_excluded, workload, "workload").messages == []
    workload["conditions"]["users"]["includedGroups"] = ["00000000-0000-0000-0000-00000000b001"]
    assert len(on_resource(policies.service_account_excluded, workload, "workload").messages) == 1


# --- service-account-policy (Part B) -----------------------------------------------------------------


def test_part_b_as_declared_passes(engine: dict[str, Any], example_run: OfflineRun) -> None:
    assert on_resource(policies.service_account_policy, inputs(example_run, PART_B), PART_B).messages == []


def test_part_b_may_exclude_the_break_glass_accounts_and_groups(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine["technicianAccess"]["breakGlassGroupIds"] = ["00000000-0000-0000-0000-00000000c0c0"]
    reapply(monkeypatch, engine)
    props = inputs(example_run, PART_B)
    assert props["conditions"]["users"]["excludedUsers"] == [BREAK_GLASS_1, BREAK_GLASS_2]
    props["conditions"]["users"]["excludedGroups"] = ["00000000-0000-0000-0000-00000000c0c0"]
    assert on_resource(policies.service_account_policy, props, PART_B).messages == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda p: p["conditions"].update(locations={"includedLocations": ["All"], "excludedLocations": ["x"]}),
            "has a location condition",
        ),
        (lambda p: p["grantControls"].update(builtInControls=["compliantDevice"]), "must grant access with MFA"),
        (
            lambda p: p.update(sessionControls={"signInFrequency": 4, "signInFrequencyPeriod": "hours"}),
            "every sign-in",
        ),
        (lambda p: p.pop("sessionControls"), "every sign-in"),
        (lambda p: p["conditions"]["users"].update(includedGroups=["g"]), "only the CIPP service account"),
        (
            lambda p: p["conditions"]["users"].update(excludedUsers=[BREAK_GLASS_1, SERVICE_ACCOUNT]),
            "excludes the CIPP service account",
        ),
        (lambda p: p["conditions"]["users"].update(excludedGroups=["some-group"]), "some-group, which are not"),
        (lambda p: p["conditions"]["users"].update(excludedRoles=["some-role"]), "some-role, which are not"),
        (
            lambda p: p["conditions"]["users"].update(
                excludedGuestsOrExternalUsers=[{"guestOrExternalUserTypes": ["internalGuest"]}]
            ),
            "excludes guests",
        ),
    ],
    ids=["location", "no mfa", "time based", "no session", "group", "self", "group excl", "role excl", "guest excl"],
)
def test_part_b_violations_name_the_policy(
    engine: dict[str, Any], example_run: OfflineRun, change: Any, fragment: str
) -> None:
    props = inputs(example_run, PART_B)
    change(props)
    found = on_resource(policies.service_account_policy, props, PART_B)
    assert len(found.messages) == 1
    assert found.messages[0].startswith(f"Part B policy 'CIPP Service Account Conditional Access Policy' ({PART_B})")
    assert fragment in found.messages[0]


# --- named-location-ranges ----------------------------------------------------------------------------


def test_named_location_of_the_example_passes(example_run: OfflineRun) -> None:
    found = on_resource(policies.named_location_ranges, inputs(example_run, LOCATION), LOCATION, NAMED_LOCATION)
    assert found.messages == []


@pytest.mark.parametrize(
    ("ranges", "fragment"),
    [
        (["203.0.113.7/24"], "did you mean 203.0.113.0/24"),
        (["64.0.0.0/4"], "broader than /8"),
        (["0.0.0.0/0"], "/0"),
        (["2001:0db8::/32"], "write 2001:db8::/32"),
        (["203.0.113.0/24", "203.0.113.0/24"], "more than once"),
        ([f"198.{i // 256}.{i % 256}.0/24" for i in range(2001)], "at most 2000"),
        ([], "has no IP ranges"),
        (["office"], "not an IP address"),
    ],
    ids=["host bits", "below /8", "slash zero", "not canonical", "duplicate", "too many", "empty", "not an ip"],
)
def test_named_location_violations(ranges: list[str], fragment: str) -> None:
    props = {"displayName": "Trusted - MSP Office", "ip": {"ipRanges": ranges, "trusted": True}}
    found = on_resource(policies.named_location_ranges, props, LOCATION, NAMED_LOCATION)
    assert any(fragment in m for m in found.messages), found.messages
    assert all(m.startswith(f"named location 'Trusted - MSP Office' ({LOCATION}):") for m in found.messages)
    assert all(m.endswith("Fix: trustedLocation.cidrs in the stack config") for m in found.messages)


# --- technician-policy (Part A, stack) ---------------------------------------------------------------


def test_part_a_as_declared_passes(engine: dict[str, Any], example_run: OfflineRun) -> None:
    assert on_stack(policies.technician_policy, planned(example_run)).messages == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda p: p["grantControls"].update(builtInControls=["mfa"]), "must grant block only"),
        (lambda p: p["conditions"]["locations"].update(excludedLocations=[]), "must exclude the trusted named"),
        (lambda p: p["conditions"]["locations"].update(includedLocations=["AllTrusted"]), "must include All"),
    ],
    ids=["mfa", "no exclusion", "all trusted"],
)
def test_part_a_violations(engine: dict[str, Any], example_run: OfflineRun, change: Any, fragment: str) -> None:
    props = state(example_run, PART_A)
    change(props)
    found = on_stack(policies.technician_policy, planned(example_run, **{PART_A: props}))
    assert len(found.messages) == 1
    assert fragment in found.messages[0]
    assert "'Block CIPP Access - Outside Trusted IPs' (technician-access-policy)" in found.messages[0]
    assert found.urns[0] is not None
    assert found.urns[0].endswith(f"::{PART_A}")


def test_part_a_missing_or_location_untrusted(engine: dict[str, Any], example_run: OfflineRun) -> None:
    without_part_a = [r for r in planned(example_run) if r.name != PART_A]
    assert "is not in the plan" in on_stack(policies.technician_policy, without_part_a).messages[0]
    location = state(example_run, LOCATION)
    location["ip"]["trusted"] = False
    found = on_stack(policies.technician_policy, planned(example_run, **{LOCATION: location}))
    assert found.messages == ["named location 'Trusted - MSP Office' is not marked trusted (ip.trusted: true)"]


def test_first_deployment_resolves_the_location_through_the_dependency(
    engine: dict[str, Any], example_run: OfflineRun
) -> None:
    location = state(example_run, LOCATION)
    location["objectId"] = UNKNOWN_STRING_VALUE
    part_a = state(example_run, PART_A)
    part_a["conditions"]["locations"]["excludedLocations"] = [UNKNOWN_STRING_VALUE]
    location_resource = policy_resource(NAMED_LOCATION, location, LOCATION)
    part_a_resource = policy_resource(CA_POLICY, part_a, PART_A, {"conditions": [location_resource]})
    others = [r for r in planned(example_run) if r.name not in (LOCATION, PART_A)]
    resources = [location_resource, part_a_resource, *others]
    assert on_stack(policies.technician_policy, resources).messages == []
    assert on_stack(policies.scenario_matrix, resources).messages == []
    undetermined = policy_resource(CA_POLICY, part_a, PART_A)  # no recorded dependency: cannot tell
    with pytest.raises(UnknownValueError):
        on_stack(policies.technician_policy, [location_resource, undetermined, *others])


def test_computed_outputs_the_program_did_not_set_do_not_stop_the_matrix_at_preview(
    engine: dict[str, Any], example_run: OfflineRun
) -> None:
    """The bridged provider plans Optional+Computed attributes it was not given as unknown (seen under the
    real engine): they are no condition, and the first preview must still run the scenario matrix."""
    replaced = {}
    for resource in (r for r in example_run.resources if r.type == CA_POLICY):
        props = state(example_run, resource.name)
        props["conditions"]["insiderRiskLevels"] = UNKNOWN_STRING_VALUE
        if props.get("sessionControls"):
            props["sessionControls"].setdefault("signInFrequencyAuthenticationType", UNKNOWN_STRING_VALUE)
        replaced[resource.name] = props
    assert on_stack(policies.scenario_matrix, planned(example_run, **replaced)).messages == []
    replaced[PART_A]["grantControls"]["builtInControls"] = [UNKNOWN_STRING_VALUE]  # one the program does set
    with pytest.raises(UnknownValueError):
        on_stack(policies.scenario_matrix, planned(example_run, **replaced))


# --- promotion-recorded ---------------------------------------------------------------------------------


def promoted(raw: dict[str, Any], *, recorded: datetime | None = None, policy_id: str = PART_A_ID) -> None:
    moment = recorded or datetime.now(UTC)
    access = raw["technicianAccess"]
    access["state"] = "enabled"
    access["operatorCheckIp"] = "203.0.113.10"
    access["promotedAfter"] = {
        "policyId": policy_id,
        "policyDisplayName": access["displayName"],
        "window": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-15T00:00:00Z"},
        "signInsEvaluated": 12,
        "wouldBlock": 0,
        "breakGlass": 0,
        "serviceAccount": 0,
        "accepted": False,
        "recordedAt": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def enabled_plan(run: OfflineRun) -> list[PolicyResource]:
    part_a = state(run, PART_A)
    part_a["state"] = "enabled"
    return planned(run, **{PART_A: part_a})


def prior_file(tmp_path: Path, run: OfflineRun, part_a_state: str | None) -> dict[str, str]:
    resources = []
    if part_a_state is not None:
        resource = next(r for r in run.resources if r.name == PART_A)
        outputs = {**resource.inputs, "state": part_a_state, "objectId": PART_A_ID}
        resources.append({"urn": resource.urn, "type": CA_POLICY, "inputs": resource.inputs, "outputs": outputs})
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"version": 3, "deployment": {"resources": resources}}), encoding="utf-8")
    return {"priorStateFile": str(path)}


def test_report_only_needs_no_record(engine: dict[str, Any], example_run: OfflineRun) -> None:
    assert on_stack(policies.promotion_recorded, planned(example_run)).messages == []


def test_enabled_without_a_record_is_refused(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine["technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.10")
    reapply(monkeypatch, engine)
    found = on_stack(policies.promotion_recorded, enabled_plan(example_run))
    assert len(found.messages) == 1
    assert "'Block CIPP Access - Outside Trusted IPs' is planned enabled" in found.messages[0]
    assert "records no promotion (technicianAccess.promotedAfter)" in found.messages[0]
    assert "Fix: run `make promote STACK=<stack>`" in found.messages[0]


def test_enabled_with_a_record_passes(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    promoted(engine)
    reapply(monkeypatch, engine)
    assert on_stack(policies.promotion_recorded, enabled_plan(example_run)).messages == []


def test_transition_is_read_from_the_prior_state(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine["technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.10")
    reapply(monkeypatch, engine)
    was_enabled = on_stack(
        policies.promotion_recorded, enabled_plan(example_run), prior_file(tmp_path, example_run, "enabled")
    )
    assert was_enabled.messages == []  # already enabled before this update: not a transition
    moving = prior_file(tmp_path, example_run, "enabledForReportingButNotEnforced")
    found = on_stack(policies.promotion_recorded, enabled_plan(example_run), moving)
    assert len(found.messages) == 1
    assert "moves from report-only to enabled in this update" in found.messages[0]
    created = on_stack(policies.promotion_recorded, enabled_plan(example_run), prior_file(tmp_path, example_run, None))
    assert "would be created enabled, skipping the report-only phase" in created.messages[0]


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"policy_id": "00000000-0000-0000-0000-0000000000ff"}, "evidence was read from policy"),
        ({"recorded": datetime.now(UTC) - timedelta(days=90)}, "recorded 90 days ago"),
    ],
    ids=["another policy", "stale"],
)
def test_a_record_must_match_the_transition(
    engine: dict[str, Any],
    example_run: OfflineRun,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    record: dict[str, Any],
    fragment: str,
) -> None:
    promoted(engine, **record)
    reapply(monkeypatch, engine)
    moving = prior_file(tmp_path, example_run, "enabledForReportingButNotEnforced")
    found = on_stack(policies.promotion_recorded, enabled_plan(example_run), moving)
    assert len(found.messages) == 1
    assert fragment in found.messages[0]


def test_a_record_for_a_renamed_policy_does_not_count(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    promoted(engine)
    engine["technicianAccess"]["promotedAfter"]["policyDisplayName"] = "Old name"
    reapply(monkeypatch, engine)
    found = on_stack(policies.promotion_recorded, enabled_plan(example_run))
    assert "the recorded promotion is for the policy 'Old name'" in found.messages[0]


def test_unreadable_prior_state_is_a_violation(engine: dict[str, Any], example_run: OfflineRun) -> None:
    found = on_stack(policies.promotion_recorded, planned(example_run), {"priorStateFile": "/nonexistent/prior.json"})
    assert "cannot read the prior state file /nonexistent/prior.json" in found.messages[0]


# --- scenario-matrix -----------------------------------------------------------------------------------


def test_matrix_holds_on_the_example(engine: dict[str, Any], example_run: OfflineRun) -> None:
    assert on_stack(policies.scenario_matrix, planned(example_run)).messages == []


def test_matrix_catches_a_break_glass_lockout(engine: dict[str, Any], example_run: OfflineRun) -> None:
    part_a = state(example_run, PART_A)
    part_a["conditions"]["users"]["excludedUsers"] = [SERVICE_ACCOUNT, BREAK_GLASS_2]
    found = on_stack(policies.scenario_matrix, planned(example_run, **{PART_A: part_a}))
    assert len(found.messages) == 1
    assert f"scenario 'break-glass {BREAK_GLASS_1} from outside'" in found.messages[0]
    assert "responsible: Block CIPP Access - Outside Trusted IPs" in found.messages[0]


def test_matrix_catches_a_service_account_without_mfa(engine: dict[str, Any], example_run: OfflineRun) -> None:
    part_b = state(example_run, PART_B)
    part_b.pop("sessionControls")
    found = on_stack(policies.scenario_matrix, planned(example_run, **{PART_B: part_b}))
    assert any("'CIPP service account from Azure'" in m for m in found.messages), found.messages


# --- where the stack config comes from ----------------------------------------------------------------


def test_stack_file_policy_config(example_run: OfflineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    raw = msp_raw()
    raw["technicianAccess"]["breakGlassUserIds"] = ["00000000-0000-0000-0000-00000000c0ff"]
    stack_file = tmp_path / "Pulumi.other.yaml"
    keyed = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in raw.items()}
    stack_file.write_text(yaml.safe_dump({"config": keyed}), encoding="utf-8")
    args = resource_args(CA_POLICY, inputs(example_run, PART_A), PART_A, {"stackFile": str(stack_file)})
    found = check(policies.break_glass_excluded, args)
    assert len(found.messages) == 1
    assert "00000000-0000-0000-0000-00000000c0ff" in found.messages[0]


def test_pulumi_stack_names_the_stack_file(example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.setenv("PULUMI_STACK", "prod")
    assert on_resource(policies.break_glass_excluded, inputs(example_run, PART_A), PART_A).messages == []


def test_no_config_is_a_violation_not_a_pass(example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    found = on_resource(policies.break_glass_excluded, inputs(example_run, PART_A), PART_A)
    assert found.messages == [
        "cannot check the stack: no stack config: run the pack through `pulumi preview --policy-pack policy` "
        "(the engine passes the stack config to the pack) or set the policy config stackFile"
    ]


def test_secrets_from_the_engine_never_reach_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = msp_raw()
    raw["cippApiManagerSecret"] = "s3cr3t-value"
    raw["technicianAccess"]["breakGlassUserIds"] = ["not-a-guid"]
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))
    found = on_resource(policies.break_glass_excluded, rogue_policy(), "mfa-all")
    assert found.messages
    assert "breakGlassUserIds[0]" in found.messages[0]
    assert all("s3cr3t" not in m for m in found.messages)


def test_client_stacks_are_not_applicable(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {
        "mode": "client",
        "clientTenant": {
            "tenantId": "00000000-0000-0000-0000-0000000000c1",
            "mspTenantId": "00000000-0000-0000-0000-00000000a001",
        },
    }
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))
    found = on_resource(policies.break_glass_excluded, rogue_policy(), "mfa-all")
    assert found.messages == []
    assert found.not_applicable is not None
    assert "client stack" in found.not_applicable
    assert on_stack(policies.scenario_matrix, []).not_applicable is not None


def test_urn_helper_is_stable() -> None:
    assert urn(CA_POLICY, "x") == f"urn:pulumi:prod::cipp-hardening::{CA_POLICY}::x"


def test_a_broken_scenarios_file_is_a_violation(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "scenarios.yaml"
    broken.write_text("scenarios:\n  - name: x\n    expect: sometimes\n", encoding="utf-8")
    engine["scenariosFile"] = str(broken)
    reapply(monkeypatch, engine)
    found = on_stack(policies.scenario_matrix, planned(example_run))
    assert len(found.messages) == 1
    assert found.messages[0].startswith("cannot read the scenarios file (scenariosFile):")


def test_matrix_fails_a_guard_row_it_cannot_prove_unless_a_reviewed_override_accepts_it(
    engine: dict[str, Any], example_run: OfflineRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    part_b = state(example_run, PART_B)
    part_b["conditions"]["signInRiskLevels"] = ["high"]
    found = on_stack(policies.scenario_matrix, planned(example_run, **{PART_B: part_b}))
    [message] = found.messages
    assert "scenario 'CIPP service account from Azure'" in message
    assert (
        "cannot prove mfa_every_time: 'CIPP Service Account Conditional Access Policy' cannot be decided on signInRisk"
        in message
    )

    engine["assumptions"] = {"cannotProveOverride": "Part B risk condition reviewed on 2026-05-01"}
    reapply(monkeypatch, engine)
    assert on_stack(policies.scenario_matrix, planned(example_run, **{PART_B: part_b})).messages == []
