"""The whole pack over what a mocked program registers: the stand-in for `pulumi preview --policy-pack policy`."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi_azuread as azuread
import pytest

from cipp_hardening.config import PROJECT
from cipp_hardening.directory_names import DIRECTORY_SNAPSHOT_ENV
from cipp_hardening.offline import OfflineRun, run_program
from policy.tests.harness import engine_config, run_pack, violations
from tests.helpers import (
    BREAK_GLASS_1,
    BREAK_GLASS_2,
    MSP_TENANT,
    ROOT,
    SERVICE_ACCOUNT,
    msp_raw,
    run_main,
    to_runtime_config,
)


def preview(
    monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any], extra: Callable[[], None] | None = None
) -> OfflineRun:
    """Run the program (plus `extra` resources) under mocks, then hand the pack the config like the engine."""
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        if extra is not None:
            extra()

    run = run_main(raw) if extra is None else run_program(program, to_runtime_config(raw), project=PROJECT)
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))
    return run


def test_the_example_stack_passes_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = run_pack(preview(monkeypatch, msp_raw()))
    assert violations(outcomes) == {}
    assert all(outcome.not_applicable is None for outcome in outcomes.values())


def test_enabling_part_a_without_promotion_is_the_only_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = msp_raw()
    raw["technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.10")
    found = violations(run_pack(preview(monkeypatch, raw)))
    assert list(found) == ["promotion-recorded"]
    assert "records no promotion" in found["promotion-recorded"][0]


def test_promoted_stack_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = msp_raw()
    raw["technicianAccess"].update(
        state="enabled",
        operatorCheckIp="203.0.113.10",
        promotedAfter={
            "policyId": "4d283841-437b-54ab-9b93-eb9d4111d485",
            "policyDisplayName": "Block CIPP Access - Outside Trusted IPs",
            "window": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-15T00:00:00Z"},
            "signInsEvaluated": 40,
            "wouldBlock": 0,
            "breakGlass": 0,
            "serviceAccount": 0,
            "accepted": False,
            "recordedAt": "2026-01-15T00:00:00Z",
        },
    )
    assert violations(run_pack(preview(monkeypatch, raw))) == {}


def rogue_resources() -> None:
    azuread.ConditionalAccessPolicy(
        "rogue-mfa-all",
        display_name="Require MFA for everyone",
        state="enabled",
        conditions=azuread.ConditionalAccessPolicyConditionsArgs(
            client_app_types=["all"],
            applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(included_applications=["All"]),
            users=azuread.ConditionalAccessPolicyConditionsUsersArgs(included_users=["All"]),
        ),
        grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["mfa"]),
    )
    azuread.NamedLocation(
        "rogue-location",
        display_name="Branch office",
        ip=azuread.NamedLocationIpArgs(ip_ranges=["198.51.100.7/24"], trusted=True),
    )


def test_rogue_resources_are_caught_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    found = violations(run_pack(preview(monkeypatch, msp_raw(), rogue_resources)))
    assert sorted(found) == ["break-glass-excluded", "named-location-ranges", "service-account-excluded"]
    assert "'Require MFA for everyone' (rogue-mfa-all)" in found["break-glass-excluded"][0]
    assert SERVICE_ACCOUNT in found["service-account-excluded"][0]
    assert "'Branch office' (rogue-location)" in found["named-location-ranges"][0]
    assert "did you mean 198.51.100.0/24" in found["named-location-ranges"][0]


def part_b_with_a_location() -> None:
    azuread.ConditionalAccessPolicy(
        "hand-made-part-b",
        display_name="CIPP Service Account Conditional Access Policy",
        state="enabled",
        conditions=azuread.ConditionalAccessPolicyConditionsArgs(
            client_app_types=["all"],
            applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(included_applications=["All"]),
            users=azuread.ConditionalAccessPolicyConditionsUsersArgs(included_users=[SERVICE_ACCOUNT]),
            locations=azuread.ConditionalAccessPolicyConditionsLocationsArgs(
                included_locations=["All"], excluded_locations=["AllTrusted"]
            ),
        ),
        grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["mfa"]),
        session_controls=azuread.ConditionalAccessPolicySessionControlsArgs(sign_in_frequency_interval="everyTime"),
    )


def test_a_hand_made_part_b_with_a_trusted_exclusion_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    found = violations(run_pack(preview(monkeypatch, msp_raw(), part_b_with_a_location)))
    assert "service-account-policy" in found
    assert "(hand-made-part-b) has a location condition" in found["service-account-policy"][0]


# --- a stack that names accounts and groups by name ----------------------------------------------------

BREAK_GLASS_UPN = "breakglass1@msp.example"


def named_raw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The example with the first break-glass account and the service account given by UPN, resolved from a
    directory snapshot as `make plan` resolves them (the real program uses pulumi-azuread's lookups)."""
    raw = msp_raw()
    raw["technicianAccess"]["breakGlassUserIds"] = [BREAK_GLASS_UPN, BREAK_GLASS_2]
    raw["serviceAccount"]["userId"] = "cipp-sa@msp.example"
    users = [
        {"id": BREAK_GLASS_1, "userPrincipalName": BREAK_GLASS_UPN},
        {"id": SERVICE_ACCOUNT, "userPrincipalName": "cipp-sa@msp.example"},
    ]
    snapshot = tmp_path / "directory.json"
    snapshot.write_text(json.dumps({"tenantId": MSP_TENANT, "users": users, "groups": []}))
    monkeypatch.setenv(DIRECTORY_SNAPSHOT_ENV, str(snapshot))
    return raw


def test_a_stack_with_names_is_checked_by_the_resolved_ids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    outcomes = run_pack(preview(monkeypatch, named_raw(monkeypatch, tmp_path)))
    assert violations(outcomes) == {}
    assert outcomes["break-glass-excluded"].not_applicable is not None  # by name: the stack policy checks it


def test_a_rogue_policy_is_caught_by_the_resolved_ids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = violations(run_pack(preview(monkeypatch, named_raw(monkeypatch, tmp_path), rogue_resources)))
    assert "named-accounts" in found
    messages = " ".join(found["named-accounts"])
    assert "'Require MFA for everyone' (rogue-mfa-all)" in messages
    assert SERVICE_ACCOUNT in messages


def test_names_without_the_programs_resolution_fail_the_stack_policies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = preview(monkeypatch, named_raw(monkeypatch, tmp_path))
    run.outputs.pop("resolvedNames")
    found = violations(run_pack(run))
    assert "no resolvedNames output" in found["named-accounts"][0]
    assert "scenario-matrix" in found
