"""Part D merge rules, one test per rule of the issue, plus removal and scope selection."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.exclusion import (
    ENUMERATED_TENANTS,
    Addition,
    exclude_msp,
    exclude_user,
    full_users,
    msp_is_excluded,
    remove_addition,
    select_policies,
)

MSP = "00000000-0000-0000-0000-00000000a001"
OTHER = "00000000-0000-0000-0000-0000000e0001"
SA = "00000000-0000-0000-0000-00000000d001"


def users(**overrides: Any) -> dict[str, Any]:
    return {**full_users({"includeUsers": ["All"], "excludeUsers": ["bg"]}), **overrides}


def guests(types: str, kind: str = "enumerated", members: list[str] | None = None) -> dict[str, Any]:
    tenants: dict[str, Any] = {"membershipKind": kind}
    if kind == "enumerated":
        tenants = {"@odata.type": ENUMERATED_TENANTS, "membershipKind": kind, "members": members or []}
    return {"guestOrExternalUserTypes": types, "externalTenants": tenants}


def test_no_exclusion_object_gets_the_service_provider_exclusion() -> None:
    merge = exclude_msp(users(), MSP)
    assert merge.status == "excluded"
    assert merge.users["excludeGuestsOrExternalUsers"] == {
        "guestOrExternalUserTypes": "serviceProvider",
        "externalTenants": {"@odata.type": ENUMERATED_TENANTS, "membershipKind": "enumerated", "members": [MSP]},
    }
    assert merge.addition == Addition(("serviceProvider",), (MSP,), created_object=True)
    assert merge.users["includeUsers"] == ["All"]
    assert merge.users["excludeUsers"] == ["bg"]


@pytest.mark.parametrize(
    "existing",
    [
        guests("serviceProvider", "all"),
        guests("serviceProvider", "enumerated", [OTHER, MSP.upper()]),
        guests("internalGuest,serviceProvider", "all"),
        guests("serviceProvider, b2bCollaborationGuest", "enumerated", [MSP]),
    ],
)
def test_already_covered_means_no_write(existing: dict[str, Any]) -> None:
    merge = exclude_msp(users(excludeGuestsOrExternalUsers=existing), MSP)
    assert merge.status == "already-excluded"
    assert not merge.write
    assert merge.users["excludeGuestsOrExternalUsers"] == existing


def test_legacy_guests_or_external_users_value_already_covers() -> None:
    assert exclude_msp(users(excludeUsers=["GuestsOrExternalUsers"]), MSP).status == "already-excluded"


def test_service_provider_only_with_other_tenants_adds_the_msp() -> None:
    merge = exclude_msp(users(excludeGuestsOrExternalUsers=guests("serviceProvider", "enumerated", [OTHER])), MSP)
    assert merge.status == "excluded"
    assert merge.users["excludeGuestsOrExternalUsers"]["externalTenants"]["members"] == [OTHER, MSP]
    assert merge.addition == Addition((), (MSP,))


@pytest.mark.parametrize(
    ("existing", "widening"),
    [
        (guests("internalGuest", "all"), "service-provider users of every tenant"),
        (guests("b2bCollaborationGuest", "enumerated", [OTHER]), f"service-provider users of tenants {OTHER}"),
        (guests("serviceProvider,internalGuest", "enumerated", [OTHER]), "internalGuest users of the MSP tenant"),
    ],
)
def test_other_guest_types_are_a_reported_conflict(existing: dict[str, Any], widening: str) -> None:
    merge = exclude_msp(users(excludeGuestsOrExternalUsers=existing), MSP, "report")
    assert merge.status == "conflict"
    assert not merge.write
    assert widening in merge.detail
    assert merge.users["excludeGuestsOrExternalUsers"] == existing


def test_widen_writes_and_records_exactly_what_it_added() -> None:
    merge = exclude_msp(
        users(excludeGuestsOrExternalUsers=guests("b2bCollaborationGuest", "enumerated", [OTHER])), MSP, "widen"
    )
    assert merge.status == "widened"
    assert merge.write
    assert merge.users["excludeGuestsOrExternalUsers"] == guests(
        "b2bCollaborationGuest,serviceProvider", "enumerated", [OTHER, MSP]
    )
    assert merge.addition == Addition(("serviceProvider",), (MSP,))
    assert msp_is_excluded(merge.users, MSP)


def test_widen_on_all_tenants_adds_only_the_type() -> None:
    merge = exclude_msp(users(excludeGuestsOrExternalUsers=guests("internalGuest", "all")), MSP, "widen")
    assert merge.users["excludeGuestsOrExternalUsers"] == guests("internalGuest,serviceProvider", "all")
    assert merge.addition == Addition(("serviceProvider",), ())


def test_direct_mode_adds_the_service_account_once() -> None:
    merge = exclude_user(users(), SA)
    assert merge.users["excludeUsers"] == ["bg", SA]
    assert merge.addition == Addition(exclude_users=(SA,))
    assert exclude_user(merge.users, SA.upper()).status == "already-excluded"


@pytest.mark.parametrize(
    "before",
    [
        users(),
        users(excludeGuestsOrExternalUsers=guests("serviceProvider", "enumerated", [OTHER])),
        users(excludeGuestsOrExternalUsers=guests("b2bCollaborationGuest", "enumerated", [OTHER])),
        users(excludeGuestsOrExternalUsers=guests("internalGuest", "all")),
    ],
)
def test_removal_restores_the_original_exactly(before: dict[str, Any]) -> None:
    merge = exclude_msp(before, MSP, "widen")
    after, changed = remove_addition(merge.users, merge.addition)
    assert changed
    assert after == before


def test_removal_keeps_what_others_added_since() -> None:
    merge = exclude_msp(users(), MSP)
    edited = merge.users
    edited["excludeGuestsOrExternalUsers"]["externalTenants"]["members"].append(OTHER)
    edited["excludeUsers"].append("someone-else")
    after, _ = remove_addition(edited, merge.addition)
    # The object was ours, but someone has since scoped it to OTHER too: only the MSP tenant goes.
    assert after["excludeUsers"] == ["bg", "someone-else"]
    assert after["excludeGuestsOrExternalUsers"] == guests("serviceProvider", "enumerated", [OTHER])


def test_removal_of_nothing_changes_nothing() -> None:
    before = users(excludeGuestsOrExternalUsers=guests("serviceProvider", "all"))
    after, changed = remove_addition(before, Addition())
    assert not changed
    assert after == before


def policy(
    pid: str, state: str = "enabled", include_users: list[str] | None = None, **users_extra: Any
) -> dict[str, Any]:
    return {
        "id": pid,
        "displayName": f"p{pid}",
        "state": state,
        "conditions": {
            "users": {"includeUsers": include_users if include_users is not None else ["All"], **users_extra}
        },
    }


def test_selection_skips_by_state_id_and_workload_identity_policies() -> None:
    policies = [
        policy("1"),
        policy("2", state="disabled"),
        policy("3", include_users=["None"]),
        policy("4"),
        policy("5", state="enabledForReportingButNotEnforced", include_users=[], includeGroups=["g"]),
    ]
    selected, skipped = select_policies(policies, ("enabled", "enabledForReportingButNotEnforced"), ("4",))
    assert [p["id"] for p in selected] == ["1", "5"]
    assert {s.policy_id: s.reason for s in skipped} == {
        "2": "state disabled is not in clientTenant.includeStates",
        "3": "targets no users (workload identities only)",
        "4": "listed in clientTenant.skipPolicyIds",
    }


# -- destroy keeps what the client added since; widening an unknown scope is refused ----------
def test_removal_keeps_a_guest_type_the_client_added_to_our_object() -> None:
    merge = exclude_msp(users(), MSP)
    edited = merge.users
    edited["excludeGuestsOrExternalUsers"]["guestOrExternalUserTypes"] = "serviceProvider,b2bCollaborationGuest"
    after, changed = remove_addition(edited, merge.addition)
    assert changed
    # Their b2b exclusion stays exactly as they scoped it (to the MSP tenant); only our type goes.
    assert after["excludeGuestsOrExternalUsers"] == guests("b2bCollaborationGuest", "enumerated", [MSP])


def test_removal_keeps_a_type_and_tenant_the_client_added_to_our_object() -> None:
    merge = exclude_msp(users(), MSP)
    edited = merge.users
    edited["excludeGuestsOrExternalUsers"] = guests("serviceProvider,internalGuest", "enumerated", [MSP, OTHER])
    after, _ = remove_addition(edited, merge.addition)
    # The object now serves OTHER: every type stays for OTHER, and the MSP tenant (ours) goes.
    assert after["excludeGuestsOrExternalUsers"] == guests("serviceProvider,internalGuest", "enumerated", [OTHER])


def test_removal_of_our_untouched_object_clears_it() -> None:
    merge = exclude_msp(users(), MSP)
    after, changed = remove_addition(merge.users, merge.addition)
    assert changed
    assert after["excludeGuestsOrExternalUsers"] is None


@pytest.mark.parametrize("kind", ["unknownFutureValue", "somethingNew"])
def test_widening_an_unknown_membership_kind_is_refused_not_guessed(kind: str) -> None:
    existing = {"guestOrExternalUserTypes": "internalGuest", "externalTenants": {"membershipKind": kind}}
    merge = exclude_msp(users(excludeGuestsOrExternalUsers=existing), MSP, "widen")
    assert merge.status == "conflict"
    assert not merge.write
    assert f"scope this project does not understand ({kind!r})" in merge.detail
    assert merge.users["excludeGuestsOrExternalUsers"] == existing
