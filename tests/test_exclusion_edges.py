"""exclusion.py's edges that tests/test_exclusion_rules.py leaves open (issue 25's surviving mutants): the
users-object shapes Part D refuses, the Addition it records, what removal leaves, the conflict detail.

Shapes are Graph v1.0's (docs/graph-ca.md §2.4, §2.7); the merge rules are docs/part-d.md's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cipp_hardening.exclusion import (
    ENUMERATED_TENANTS,
    SERVICE_PROVIDER,
    Addition,
    UsersNotUnderstood,
    as_graph_returns,
    cipp_is_excluded,
    exclude_cipp,
    exclude_msp,
    guest_types,
    remove_addition,
    understood_users,
)

MSP = "00000000-0000-0000-0000-00000000a001"
OTHER = "00000000-0000-0000-0000-00000000a002"
ACCOUNT = "00000000-0000-0000-0000-0000000c0d01"


def users(guests: Any = None, **lists: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "includeUsers": ["All"],
        "excludeUsers": [],
        "includeGroups": [],
        "excludeGroups": [],
        "includeRoles": [],
        "excludeRoles": [],
        "includeGuestsOrExternalUsers": None,
        "excludeGuestsOrExternalUsers": guests,
    }
    return {**base, **lists}


def enumerated(types: str, *tenants: str) -> dict[str, Any]:
    return {
        "guestOrExternalUserTypes": types,
        "externalTenants": {
            "@odata.type": ENUMERATED_TENANTS,
            "membershipKind": "enumerated",
            "members": list(tenants),
        },
    }


def policy_with(guests: Any) -> dict[str, Any]:
    return {"conditions": {"users": users(guests)}}


@pytest.mark.parametrize(
    "guests",
    [
        None,
        {"guestOrExternalUserTypes": "serviceProvider"},  # no tenant scope: every tenant
        enumerated("serviceProvider", MSP),
    ],
)
def test_guest_objects_graph_returns_are_understood(guests: Any) -> None:
    assert understood_users(policy_with(guests))["excludeGuestsOrExternalUsers"] == guests


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        ([], "externalTenants is list [], not an object with a membershipKind"),
        ({"membershipKind": 5}, "not an object with a membershipKind"),
        ({"membershipKind": "enumerated", "members": [MSP, 5]}, "externalTenants.members is list"),
        ({"membershipKind": "enumerated", "members": "abc"}, 'externalTenants.members is str "abc"'),
        (
            {"membershipKind": "enumerated", "members": "m" * 100},
            f"externalTenants.members is str {json.dumps('m' * 100)[:60]}, not",
        ),
    ],
)
def test_guest_objects_of_another_shape_are_refused(tenants: Any, message: str) -> None:
    guests = {"guestOrExternalUserTypes": "serviceProvider", "externalTenants": tenants}
    with pytest.raises(UsersNotUnderstood, match=message.replace("[", r"\[").replace("]", r"\]")):
        understood_users(policy_with(guests))


@pytest.mark.parametrize("policy", [{"conditions": {}}, {"conditions": None}, {}, {"conditions": {"users": None}}])
def test_as_graph_returns_leaves_a_policy_without_a_users_object_as_it_is(policy: dict[str, Any]) -> None:
    assert as_graph_returns(policy) == policy


def test_guest_types_drop_blanks_and_none() -> None:
    assert guest_types({"guestOrExternalUserTypes": "serviceProvider, ,none,internalGuest"}) == [
        SERVICE_PROVIDER,
        "internalGuest",
    ]


def test_a_guest_object_that_excludes_no_type_is_replaced_by_ours() -> None:
    merge = exclude_msp(users({"guestOrExternalUserTypes": "none"}), MSP)
    assert merge.status == "excluded"
    assert merge.addition == Addition((SERVICE_PROVIDER,), (MSP,), created_object=True)


def test_the_conflict_detail_of_an_all_tenant_scope_names_only_the_service_providers() -> None:
    merge = exclude_msp(users({"guestOrExternalUserTypes": "b2bCollaborationGuest"}), MSP)
    assert merge.status == "conflict"
    assert merge.detail.endswith("it would also exclude the service-provider users of every tenant")


def test_exclude_cipp_follows_the_access_mode() -> None:
    direct = exclude_cipp(users(), "direct", MSP, ACCOUNT)
    assert direct.addition == Addition(exclude_users=(ACCOUNT,))
    assert direct.users["excludeGuestsOrExternalUsers"] is None
    gdap = exclude_cipp(users(), "gdap", MSP, ACCOUNT)
    assert gdap.addition == Addition((SERVICE_PROVIDER,), (MSP,), created_object=True)
    assert gdap.users["excludeUsers"] == []


def test_what_is_present_of_an_addition_keeps_created_object_only_with_its_type() -> None:
    holding = users(enumerated(SERVICE_PROVIDER, MSP))
    not_created = Addition((SERVICE_PROVIDER,), (MSP,), created_object=False)
    assert not_created.present_in(holding) == not_created
    created = Addition((SERVICE_PROVIDER,), (MSP,), created_object=True)
    assert created.present_in(holding) == created
    gone = created.present_in(users(enumerated("internalGuest", MSP)))
    assert gone == Addition((), (MSP,), created_object=False)


def test_removing_guest_parts_from_a_policy_without_a_guest_object_changes_nothing() -> None:
    before = users(excludeUsers=[OTHER])
    after, changed = remove_addition(before, Addition((SERVICE_PROVIDER,), (MSP,), created_object=True))
    assert not changed
    assert after == before


def test_removing_our_only_type_from_an_all_tenant_object_clears_it() -> None:
    after, changed = remove_addition(
        users({"guestOrExternalUserTypes": SERVICE_PROVIDER}), Addition((SERVICE_PROVIDER,), ())
    )
    assert changed
    assert after["excludeGuestsOrExternalUsers"] is None


def test_cipp_is_excluded_follows_the_access_mode() -> None:
    by_account = users(excludeUsers=[ACCOUNT.upper()])
    by_provider = users(enumerated(SERVICE_PROVIDER, MSP))
    assert cipp_is_excluded(by_account, "direct", MSP, ACCOUNT)
    assert not cipp_is_excluded(by_provider, "direct", MSP, ACCOUNT)
    assert cipp_is_excluded(by_provider, "gdap", MSP, ACCOUNT)
    assert not cipp_is_excluded(by_account, "gdap", MSP, ACCOUNT)
