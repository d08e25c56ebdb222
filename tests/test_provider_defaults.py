"""The dynamic providers fed state written before a property existed: a key absent from old state never opens
anything, never drops a check, and a different tenant is still a different object.

Pulumi hands a provider the recorded outputs of the last run as `olds`/`props` (docs/pulumi.md §2.2), so a
stack deployed by an older version carries dicts without the newer keys. These tests build such dicts by hand
and call the providers' methods directly; none of the paths under test may send a request (the props carry no
URL to send one to).
"""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.cipp_api import delete_plan, predicted_delete_refusal, self_update_refusal
from cipp_hardening.custom_roles import delete_plan as role_delete_plan
from cipp_hardening.exclusion import cipp_is_excluded, exclude_cipp
from dynamic_providers.ca_exclusion import CaExclusionProvider, ExclusionJournalProvider
from dynamic_providers.cipp_api_client_ranges import CippApiClientRangesError, CippApiClientRangesProvider
from dynamic_providers.cipp_custom_roles import CippCustomRoleRangesError, CippCustomRoleRangesProvider

MANAGER = "00000000-0000-0000-0000-0000000e0001"
CLIENT = "00000000-0000-0000-0000-0000000e0002"
TENANT = "00000000-0000-0000-0000-0000000c0001"
OTHER_TENANT = "00000000-0000-0000-0000-0000000c0002"
MSP_TENANT = "00000000-0000-0000-0000-00000000a001"
POLICY = "00000000-0000-0000-0000-0000000f0001"
ACCOUNT = "00000000-0000-0000-0000-0000000c0d01"


# --- Part C: a CIPP-API client's ranges ------------------------------------------------------------------


def client_state(**props: Any) -> dict[str, Any]:
    """A client's recorded props from before allowAnyOnDelete / allowSelfUpdate existed (no url: no request)."""
    return {"clientId": CLIENT, "managerClientId": MANAGER, "allowedRanges": ["203.0.113.0/24"], **props}


def test_restore_on_delete_without_allow_any_on_delete_refuses_to_open_the_client() -> None:
    props = client_state(restoreOnDelete=True, adoptedRanges=[])
    assert delete_plan(props).action == "refuse"
    assert "allowAnyOnDelete" in str(predicted_delete_refusal(props))
    with pytest.raises(CippApiClientRangesError, match="allowAnyOnDelete"):
        CippApiClientRangesProvider().delete(CLIENT, props)


def test_allow_any_on_delete_stated_true_is_what_lets_it_restore_any() -> None:
    assert delete_plan(client_state(restoreOnDelete=True, adoptedRanges=[], allowAnyOnDelete=True)).action == (
        "restore"
    )
    assert delete_plan(client_state(restoreOnDelete=True, adoptedRanges=[], allowAnyOnDelete=False)).action == (
        "refuse"
    )


def test_without_restore_on_delete_the_ranges_are_left_as_they_are() -> None:
    props = client_state(adoptedRanges=[])
    assert delete_plan(props).action == "leave"
    CippApiClientRangesProvider().delete(CLIENT, props)  # no url in props: a request would fail here


def test_the_manager_changing_its_own_ranges_without_allow_self_update_is_refused() -> None:
    manager = client_state(clientId=MANAGER.upper())
    assert self_update_refusal(manager) is not None
    assert self_update_refusal({**manager, "allowSelfUpdate": "true"}) is not None, "only a real true opts in"
    assert self_update_refusal({**manager, "allowSelfUpdate": True}) is None
    assert self_update_refusal(client_state()) is None, "another client is no self update"


def test_a_restore_of_the_manager_without_allow_self_update_is_refused_from_the_state_alone() -> None:
    props = client_state(clientId=MANAGER, restoreOnDelete=True, adoptedRanges=["198.51.100.0/24"])
    refusal = predicted_delete_refusal(props)
    assert refusal is not None
    assert "allowSelfUpdate" in refusal
    assert predicted_delete_refusal({**props, "allowSelfUpdate": True}) is None


def test_a_new_cipp_instance_or_client_replaces_a_new_tenant_id_edits() -> None:
    olds = client_state(url="https://cipp.example", tenantId=TENANT)
    provider = CippApiClientRangesProvider()
    assert provider.diff(CLIENT, olds, {**olds, "url": "https://other.example"}).replaces == ["url"]
    assert provider.diff(CLIENT, olds, {**olds, "clientId": MANAGER}).replaces == ["clientId"]
    token_tenant = provider.diff(CLIENT, olds, {**olds, "tenantId": OTHER_TENANT})
    assert token_tenant.changes
    assert token_tenant.replaces == []


# --- CIPP's role ranges -------------------------------------------------------------------------------


def role_state(**props: Any) -> dict[str, Any]:
    return {"name": "technicians", "clientId": MANAGER, "allowedRanges": ["203.0.113.0/24"], **props}


def test_a_role_without_restore_on_delete_in_state_restores_and_never_opens_by_omission() -> None:
    assert role_delete_plan(role_state(adoptedRanges=["198.51.100.0/24"])).action == "restore"
    props = role_state(adoptedRanges=[])
    assert role_delete_plan(props).action == "refuse"
    with pytest.raises(CippCustomRoleRangesError, match="allowOpenOnDelete"):
        CippCustomRoleRangesProvider().delete("technicians", props)
    assert role_delete_plan({**props, "allowOpenOnDelete": True}).action == "restore"
    assert role_delete_plan(role_state(restoreOnDelete=False)).action == "leave"


# --- Part D: a client policy's exclusion ----------------------------------------------------------------


def exclusion_state(**props: Any) -> dict[str, Any]:
    """Recorded props from before onConflict existed."""
    return {
        "tenantId": TENANT,
        "policyId": POLICY,
        "accessMode": "gdap",
        "mspTenantId": MSP_TENANT,
        "graphUrl": "https://graph.microsoft.com",
        "displayName": "Require MFA",
        "status": "excluded",
        **props,
    }


def test_direct_mode_without_a_service_account_is_refused() -> None:
    news = exclusion_state(accessMode="direct")
    failures = CaExclusionProvider().check({}, news).failures
    assert [f.property for f in failures] == ["serviceAccountUserId"]
    assert CaExclusionProvider().check({}, {**news, "serviceAccountUserId": ACCOUNT}).failures == []


def test_a_missing_on_conflict_is_report_never_widen() -> None:
    assert CaExclusionProvider().check({}, exclusion_state()).failures == []
    assert [f.property for f in CaExclusionProvider().check({}, exclusion_state(onConflict="open")).failures] == [
        "onConflict"
    ]


@pytest.mark.parametrize("key", ["tenantId", "policyId"])
def test_another_tenant_or_policy_replaces_even_from_old_state(key: str) -> None:
    olds = exclusion_state()
    news = {**olds, "onConflict": "report", key: OTHER_TENANT}
    diff = CaExclusionProvider().diff(POLICY, olds, news)
    assert diff.changes
    assert diff.replaces == [key]


def test_other_changes_edit_in_place() -> None:
    olds = exclusion_state()
    diff = CaExclusionProvider().diff(POLICY, olds, {**olds, "displayName": "Require MFA for all"})
    assert diff.changes
    assert diff.replaces == []


def test_the_journal_of_another_tenant_is_another_journal() -> None:
    provider = ExclusionJournalProvider()
    olds = {"tenantId": TENANT}  # from before entries were recorded
    assert provider.diff(TENANT, olds, {"tenantId": OTHER_TENANT, "intents": {}}).replaces == ["tenantId"]
    same = provider.diff(TENANT, olds, {"tenantId": TENANT, "intents": {}})
    assert same.replaces == []
    assert not same.changes
    assert [f.property for f in provider.check({}, {"intents": {}}).failures] == ["tenantId"]


def test_the_merge_never_excludes_an_account_it_was_not_given() -> None:
    # Before, str(None) made the Direct-mode merge write the user id "None" into excludeUsers.
    for merge in (exclude_cipp, cipp_is_excluded):
        with pytest.raises(ValueError, match="service account"):
            merge(None, "direct", MSP_TENANT, None)
