"""Part D merge rules: exclude the MSP from one client policy without touching anyone else's setting.

Pure functions over Graph v1.0 `conditions.users` objects. The provider reads a policy, asks these
functions for the complete new users object, and PATCHes the keys that changed (docs/graph-ca.md §1.3:
collections are replaced, so a changed list is sent whole). What was added is recorded as an `Addition`,
so that removing the exclusion later takes out exactly that and nothing else.

GDAP: the exclusion is `excludeGuestsOrExternalUsers = {serviceProvider, enumerated [MSP tenant]}`.
One such object carries *one* tenant scope for *all* of its guest types (docs/graph-ca.md §2.4), so when the
client already uses it for other guest types, adding ours would also widen theirs: that is a conflict,
reported by default and written only with `onConflict: widen`.
Direct tenant mode: the CIPP service account is added to `excludeUsers`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SERVICE_PROVIDER = "serviceProvider"
ENUMERATED_TENANTS = "#microsoft.graph.conditionalAccessEnumeratedExternalTenants"
USER_LISTS = ("includeUsers", "excludeUsers", "includeGroups", "excludeGroups", "includeRoles", "excludeRoles")
GUEST_OBJECTS = ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers")

Users = dict[str, Any]
Status = Literal["excluded", "already-excluded", "conflict", "widened"]


@dataclass(frozen=True)
class Addition:
    """Exactly what this project added to one policy's users object."""

    guest_types: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    exclude_users: tuple[str, ...] = ()
    created_object: bool = False  # the whole exclusion object was ours (it was null before)

    def to_json(self) -> dict[str, Any]:
        return {
            "guestTypes": list(self.guest_types),
            "tenants": list(self.tenants),
            "excludeUsers": list(self.exclude_users),
            "createdObject": self.created_object,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Addition:
        value = value or {}
        return cls(
            tuple(value.get("guestTypes") or ()),
            tuple(value.get("tenants") or ()),
            tuple(value.get("excludeUsers") or ()),
            bool(value.get("createdObject")),
        )

    def __bool__(self) -> bool:
        return bool(self.guest_types or self.tenants or self.exclude_users)

    def union(self, other: Addition) -> Addition:
        return Addition(
            _merged(self.guest_types, other.guest_types),
            _merged(self.tenants, other.tenants),
            _merged(self.exclude_users, other.exclude_users),
            self.created_object or other.created_object,
        )

    def covers(self, other: Addition) -> bool:
        """Whether every part of `other` is part of this addition (GUIDs compared case-insensitively)."""
        return (
            all(_has(self.guest_types, t) for t in other.guest_types)
            and all(_has(self.tenants, t) for t in other.tenants)
            and all(_has(self.exclude_users, u) for u in other.exclude_users)
            and (self.created_object or not other.created_object)
        )

    def present_in(self, users: Mapping[str, Any] | None) -> Addition:
        """The parts of this addition that the users object holds now."""
        complete = full_users(users)
        guests = complete["excludeGuestsOrExternalUsers"] or {}
        types = guest_types(guests)
        _, members = _tenant_scope(guests) if guests else ("all", [])
        kept_types = tuple(t for t in self.guest_types if t in types)
        return Addition(
            kept_types,
            tuple(t for t in self.tenants if _has(members, t)),
            tuple(u for u in self.exclude_users if _has(complete["excludeUsers"], u)),
            self.created_object and bool(kept_types),
        )


def _merged(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return (*first, *(value for value in second if not _has(first, value)))


@dataclass(frozen=True)
class Merge:
    users: Users  # the complete users object to send
    status: Status
    addition: Addition = field(default_factory=Addition)
    detail: str = ""  # for conflicts and widened writes: exactly what is (or would be) widened

    @property
    def write(self) -> bool:
        return self.status in ("excluded", "widened")


def full_users(users: Mapping[str, Any] | None) -> Users:
    """The users object with every collection present, as Graph returns it (docs/graph-ca.md §2.7).

    Keys this project does not know are kept as they are: what we send back is built from this."""
    complete: Users = copy.deepcopy(dict(users or {}))
    for name in USER_LISTS:
        complete[name] = list(complete.get(name) or [])
    for name in GUEST_OBJECTS:
        complete[name] = complete.get(name)
    return complete


def as_graph_returns(policy: Mapping[str, Any]) -> dict[str, Any]:
    """An exported policy file with the users defaults Graph fills on GET (docs/graph-ca.md §2.7): templates
    leave out empty collections, Graph never does. A users object that is not an object stays as it is."""
    shaped = dict(policy)
    conditions = shaped.get("conditions")
    if isinstance(conditions, Mapping) and isinstance(conditions.get("users"), Mapping):
        users = dict(conditions["users"])
        for name in USER_LISTS:
            users.setdefault(name, [])
        for name in GUEST_OBJECTS:
            users.setdefault(name, None)
        shaped["conditions"] = {**conditions, "users": users}
    return shaped


class UsersNotUnderstood(ValueError):
    """A policy whose users object this project cannot read with certainty: nothing is merged or written."""


def understood_users(policy: Mapping[str, Any]) -> Users:
    """The policy's `conditions.users`, checked against the shape Graph always returns (docs/graph-ca.md §2.7).

    A missing or null `conditions` or `users`, a collection that is not a list of strings, or a guest object
    of the wrong shape raises UsersNotUnderstood naming the field: merging into it would write back a
    users object that drops the client's targeting."""
    conditions = policy.get("conditions")
    if not isinstance(conditions, Mapping):
        raise UsersNotUnderstood(f"conditions is {_described(conditions)}, not an object")
    users = conditions.get("users")
    if not isinstance(users, Mapping):
        raise UsersNotUnderstood(f"conditions.users is {_described(users)}, not an object")
    for name in USER_LISTS:
        value = users.get(name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise UsersNotUnderstood(f"conditions.users.{name} is {_described(value)}, not a list of ids")
    for name in GUEST_OBJECTS:
        if name not in users:
            raise UsersNotUnderstood(f"conditions.users.{name} is missing (Graph returns null when unset)")
        _check_guest_object(users[name], f"conditions.users.{name}")
    return copy.deepcopy(dict(users))


def _check_guest_object(guests: Any, where: str) -> None:
    if guests is None:
        return
    if not isinstance(guests, Mapping):
        raise UsersNotUnderstood(f"{where} is {_described(guests)}, not an object or null")
    if not isinstance(guests.get("guestOrExternalUserTypes"), str):
        raise UsersNotUnderstood(
            f"{where}.guestOrExternalUserTypes is {_described(guests.get('guestOrExternalUserTypes'))}"
        )
    tenants = guests.get("externalTenants")
    if tenants is None:
        return
    if not isinstance(tenants, Mapping) or not isinstance(tenants.get("membershipKind", "all"), str):
        raise UsersNotUnderstood(
            f"{where}.externalTenants is {_described(tenants)}, not an object with a membershipKind"
        )
    members = tenants.get("members", [])
    if not isinstance(members, list) or not all(isinstance(member, str) for member in members):
        raise UsersNotUnderstood(f"{where}.externalTenants.members is {_described(members)}, not a list of tenant ids")


def _described(value: Any) -> str:
    if value is None:
        return "missing or null"
    return f"{type(value).__name__} {json.dumps(value)[:60]}"


def changed_parts(before: Mapping[str, Any], after: Mapping[str, Any]) -> Users:
    """The keys of the users object whose value a merge changed: all a PATCH needs to send.

    Graph merges complex values and replaces collections (docs/graph-ca.md §1.3), so sending only these keys
    leaves every other key as the tenant holds it at the moment of the write, even if it was edited after our read."""
    return {key: copy.deepcopy(value) for key, value in after.items() if before.get(key) != value}


def guest_types(guests: Mapping[str, Any] | None) -> list[str]:
    """The flags enum as a list: one comma-separated string on the wire (docs/graph-ca.md §2.4)."""
    raw = (guests or {}).get("guestOrExternalUserTypes") or ""
    return [t.strip() for t in str(raw).split(",") if t.strip() and t.strip() != "none"]


def _tenant_scope(guests: Mapping[str, Any]) -> tuple[str, list[str]]:
    tenants = guests.get("externalTenants")
    if not tenants:
        return "all", []  # no tenant scope given: the types apply to every tenant
    return str(tenants.get("membershipKind") or "all"), list(tenants.get("members") or [])


def _has(ids: Sequence[str], wanted: str) -> bool:
    return wanted.lower() in (i.lower() for i in ids)


def msp_is_excluded(users: Mapping[str, Any] | None, msp_tenant_id: str) -> bool:
    """Whether the MSP's service-provider users are out of this policy's scope."""
    complete = full_users(users)
    # The legacy catch-all value excludes every guest and external user, service providers included.
    if _has(complete["excludeUsers"], "GuestsOrExternalUsers"):
        return True
    guests = complete["excludeGuestsOrExternalUsers"]
    if not guests or SERVICE_PROVIDER not in guest_types(guests):
        return False
    kind, members = _tenant_scope(guests)
    return kind == "all" or (kind == "enumerated" and _has(members, msp_tenant_id))


def user_is_excluded(users: Mapping[str, Any] | None, user_id: str) -> bool:
    return _has(full_users(users)["excludeUsers"], user_id)


def exclude_msp(users: Mapping[str, Any] | None, msp_tenant_id: str, on_conflict: str = "report") -> Merge:
    """GDAP: the users object that also excludes the MSP's service-provider users."""
    complete = full_users(users)
    if msp_is_excluded(complete, msp_tenant_id):
        return Merge(complete, "already-excluded")
    guests = complete["excludeGuestsOrExternalUsers"]
    if not guests or not guest_types(guests):
        complete["excludeGuestsOrExternalUsers"] = {
            "guestOrExternalUserTypes": SERVICE_PROVIDER,
            "externalTenants": {
                "@odata.type": ENUMERATED_TENANTS,
                "membershipKind": "enumerated",
                "members": [msp_tenant_id],
            },
        }
        return Merge(complete, "excluded", Addition((SERVICE_PROVIDER,), (msp_tenant_id,), created_object=True))
    types = guest_types(guests)
    kind, members = _tenant_scope(guests)
    if types == [SERVICE_PROVIDER] and kind == "enumerated":
        complete["excludeGuestsOrExternalUsers"] = _with_scope(guests, types, [*members, msp_tenant_id])
        return Merge(complete, "excluded", Addition((), (msp_tenant_id,)))
    detail = _widening(types, kind, members)
    if on_conflict != "widen" or kind not in ("all", "enumerated"):
        return Merge(complete, "conflict", detail=detail)
    added_types = () if SERVICE_PROVIDER in types else (SERVICE_PROVIDER,)
    # The MSP may already be in the scope for the client's other types: then it is theirs, not an addition.
    added_tenants = (msp_tenant_id,) if kind == "enumerated" and not _has(members, msp_tenant_id) else ()
    complete["excludeGuestsOrExternalUsers"] = _with_scope(guests, [*types, *added_types], [*members, *added_tenants])
    return Merge(complete, "widened", Addition(added_types, added_tenants), detail)


def _with_scope(guests: Mapping[str, Any], types: Sequence[str], members: Sequence[str]) -> dict[str, Any]:
    kind, _ = _tenant_scope(guests)
    updated = dict(guests)
    updated["guestOrExternalUserTypes"] = ",".join(types)
    if kind == "enumerated":
        # Always with @odata.type: Graph rejects the enumerated form without it (docs/graph-ca.md §2.4). Keys
        # we do not know are kept as read.
        updated["externalTenants"] = {
            **dict(guests.get("externalTenants") or {}),
            "@odata.type": ENUMERATED_TENANTS,
            "membershipKind": "enumerated",
            "members": list(members),
        }
    return updated


def _widening(types: Sequence[str], kind: str, members: Sequence[str]) -> str:
    others = [t for t in types if t != SERVICE_PROVIDER]
    scope = "every tenant" if kind == "all" else f"tenants {', '.join(members) or '(none)'}"
    if kind not in ("all", "enumerated"):
        return f"the exclusion object has an external-tenant scope this project does not understand ({kind!r})"
    parts = []
    if SERVICE_PROVIDER not in types:
        parts.append(f"it would also exclude the service-provider users of {scope}")
    if kind == "enumerated" and others:
        parts.append(f"it would also exclude {', '.join(others)} users of the MSP tenant")
    return (
        "the policy's guest/external exclusion already serves "
        f"{', '.join(types)} for {scope}, and one object has one tenant scope for all its types: "
        + "; ".join(parts or ["it would change a scope the client chose"])
    )


def exclude_user(users: Mapping[str, Any] | None, user_id: str) -> Merge:
    """Direct tenant mode: the users object that also excludes the CIPP service account."""
    complete = full_users(users)
    if user_is_excluded(complete, user_id):
        return Merge(complete, "already-excluded")
    complete["excludeUsers"] = [*complete["excludeUsers"], user_id]
    return Merge(complete, "excluded", Addition(exclude_users=(user_id,)))


def direct_account(service_account_user_id: str | None) -> str:
    """The CIPP service account Direct tenant mode excludes; never a guessed or empty id (docs/part-d.md)."""
    if not service_account_user_id:
        raise ValueError("Direct tenant mode needs the CIPP service account's object id, and none was given")
    return service_account_user_id


def exclude_cipp(
    users: Mapping[str, Any] | None,
    access_mode: str,
    msp_tenant_id: str,
    service_account_user_id: str | None,
    on_conflict: str = "report",
) -> Merge:
    """The merge for the tenant's access mode: the MSP's service providers (GDAP) or the CIPP account (direct)."""
    if access_mode == "direct":
        return exclude_user(users, direct_account(service_account_user_id))
    return exclude_msp(users, msp_tenant_id, on_conflict)


def listing_verdict(merge: Merge) -> dict[str, str]:
    """What the tenant's listing says one policy needs: `write` the exclusion, or nothing (`covered`, `conflict`)."""
    status = "write" if merge.write else "conflict" if merge.status == "conflict" else "covered"
    return {"status": status, "detail": merge.detail}


def cipp_is_excluded(
    users: Mapping[str, Any] | None, access_mode: str, msp_tenant_id: str, service_account_user_id: str | None
) -> bool:
    """Whether CIPP is out of this policy's scope in the tenant's access mode."""
    if access_mode == "direct":
        return user_is_excluded(users, direct_account(service_account_user_id))
    return msp_is_excluded(users, msp_tenant_id)


def remove_addition(users: Mapping[str, Any] | None, addition: Addition) -> tuple[Users, bool]:
    """The users object without what `addition` added; everything else is kept as it is now."""
    complete = full_users(users)
    before = copy.deepcopy(complete)
    complete["excludeUsers"] = [u for u in complete["excludeUsers"] if not _has(addition.exclude_users, u)]
    guests = complete["excludeGuestsOrExternalUsers"]
    if guests and (addition.guest_types or addition.tenants):
        complete["excludeGuestsOrExternalUsers"] = _without_ours(guests, addition)
    return complete, complete != before


def _without_ours(guests: Mapping[str, Any], addition: Addition) -> dict[str, Any] | None:
    """The guest/external exclusion minus our type and tenant; None when nothing of anyone's is left."""
    kind, members = _tenant_scope(guests)
    all_types = guest_types(guests)
    others_tenants = [m for m in members if not _has(addition.tenants, m)]
    theirs = [t for t in all_types if t not in addition.guest_types]
    if addition.created_object and kind == "enumerated" and others_tenants:
        # Others have since scoped our object to their tenants too: our type serves them now, so it stays.
        return _with_scope(guests, all_types, others_tenants)
    if addition.created_object and kind == "enumerated" and theirs:
        # Others added their own type to our object, scoped to our tenant alone: dropping the tenant would
        # drop their exclusion, and "all tenants" would widen it. Only our type goes.
        return _with_scope(guests, theirs, members)
    if not theirs or (kind == "enumerated" and not others_tenants):
        return None  # nothing left to exclude: clear (never widens access)
    return _with_scope(guests, theirs, others_tenants)


def targets_no_users(policy: Mapping[str, Any]) -> bool:
    """Workload-identity policies (`includeUsers: ["None"]` with client applications) have no user scope."""
    users = full_users((policy.get("conditions") or {}).get("users"))
    named = [u for u in users["includeUsers"] if u != "None"]
    return not (named or users["includeGroups"] or users["includeRoles"] or users["includeGuestsOrExternalUsers"])


@dataclass(frozen=True)
class Skipped:
    policy_id: str
    display_name: str
    reason: str


def select_policies(
    policies: Sequence[Mapping[str, Any]], include_states: Sequence[str], skip_policy_ids: Sequence[str]
) -> tuple[list[Mapping[str, Any]], list[Skipped]]:
    """The client policies Part D manages, and why each other one is left alone."""
    selected: list[Mapping[str, Any]] = []
    skipped: list[Skipped] = []
    for policy in policies:
        policy_id, name = str(policy.get("id", "")), str(policy.get("displayName", ""))
        if _has(skip_policy_ids, policy_id):
            skipped.append(Skipped(policy_id, name, "listed in clientTenant.skipPolicyIds"))
        elif policy.get("state") not in include_states:
            skipped.append(
                Skipped(policy_id, name, f"state {policy.get('state')} is not in clientTenant.includeStates")
            )
        elif targets_no_users(policy):
            skipped.append(Skipped(policy_id, name, "targets no users (workload identities only)"))
        else:
            selected.append(policy)
    return selected, skipped
