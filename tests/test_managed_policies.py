"""Microsoft-managed policies in the scenario matrix (cipp_hardening/managed_policies.py, docs/scenario-matrix.md)."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.managed_policies import as_enforced, is_microsoft_managed, label, turns_on
from cipp_hardening.scenarios import Status, run_matrix
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT
from tests.test_scenarios import Policies, block_all, msp_config, planned, row

__all__ = ["planned"]  # the module fixture, used here by name
SAM_ROW = "CIPP SAM wizard"
REPORT_ONLY = "enabledForReportingButNotEnforced"


def device_code_block(state: str = REPORT_ONLY, *excluded: str, created: str | None = "2026-11-20T09:30:00Z") -> dict:
    policy = block_all(
        "Block device code flow",
        state,
        users={"includeUsers": ["All"], "excludeUsers": list(excluded)},
        authenticationFlows={"transferMethods": "deviceCodeFlow"},
    )
    if created:
        policy["createdDateTime"] = created
    return policy


def test_recognised_by_microsofts_documented_names_whatever_the_case() -> None:
    assert is_microsoft_managed({"displayName": "block DEVICE code flow"})
    assert is_microsoft_managed(
        {"displayName": "Multifactor authentication for admins accessing Microsoft Admin Portals"}
    )
    assert not is_microsoft_managed({"displayName": "Block device code flow (copy)"})


def test_the_date_is_45_days_after_graph_says_it_was_created() -> None:
    assert turns_on(device_code_block()).isoformat() == "2027-01-04"  # type: ignore[union-attr]
    assert turns_on(device_code_block(created=None)) is None
    assert "no earlier than 2027-01-04" in str(label(device_code_block()))
    assert "a date Graph does not give" in str(label(device_code_block(created=None)))
    assert label(device_code_block("enabled")) == "Microsoft-managed"
    assert label(block_all("Block everyone")) is None


def test_only_report_only_managed_policies_are_counted_as_enforced() -> None:
    mine = block_all("Mine", REPORT_ONLY)
    assert as_enforced([mine, device_code_block("enabled")]) is None
    counted = as_enforced([mine, device_code_block()])
    assert counted is not None
    assert [p["state"] for p in counted] == [REPORT_ONLY, "enabled"]


@pytest.mark.parametrize(
    ("excluded", "status"),
    [((BREAK_GLASS_1, BREAK_GLASS_2), Status.FAIL), ((BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT), Status.OK)],
    ids=["covers the service account", "excludes it"],
)
def test_the_sam_wizard_row_is_decided_on_the_device_code_flow(
    planned: tuple[Policies, Policies], excluded: tuple[str, ...], status: Status
) -> None:
    policies, locations = planned
    result = run_matrix(msp_config(), [*policies, device_code_block(REPORT_ONLY, *excluded)], locations)
    sam = row(result, SAM_ROW)
    assert sam.status is status
    if status is Status.FAIL:
        assert "blocked by 'Block device code flow'" in sam.actual
        assert "Microsoft-managed, report-only: Microsoft turns it on no earlier than 2027-01-04" in sam.actual
        assert result.exit_code == 3


def test_without_a_policy_on_authentication_flows_there_is_no_sam_row(planned: tuple[Policies, Policies]) -> None:
    policies, locations = planned
    assert not any(r.name.startswith(SAM_ROW) for r in run_matrix(msp_config(), policies, locations).rows)


def test_a_tenants_own_report_only_policy_is_not_counted_as_enforced(planned: tuple[Policies, Policies]) -> None:
    policies, locations = planned
    own: dict[str, Any] = device_code_block(REPORT_ONLY, BREAK_GLASS_1, BREAK_GLASS_2)
    own["displayName"] = "Our own device code block"
    sam = row(run_matrix(msp_config(), [*policies, own], locations), SAM_ROW)
    assert sam.status is Status.FAIL  # report-only blocks already fail a guard row
    assert "would be blocked by report-only 'Our own device code block'" in sam.actual
    assert "Microsoft-managed" not in sam.actual
