"""Part D merge rules: exclude the MSP from one client policy without touching anyone else's setting.

Pure functions over Graph v1.0 `conditions.users` objects. The provider reads a policy, asks these
functions for the complete new users object, and PATCHes it whole (docs/graph-ca.md §1.3: collections are
replaced, so the union must be sent). What was added is recorded as an `Addition`, so that removing
the exclusion later takes out exactly that and nothing else.

GDAP: the exclusion is `excludeGuestsOrExternalUsers = {serviceProvider, enumerated [MSP tenant]}`.
One such object carries *one* tenant scope for *all* of its guest types (docs/graph-ca.md §2.4), so when the
client already uses it for other guest types, adding ours would also widen theirs: that is a conflict,
reported by default and written only with `onConflict: widen`.
Direct tenant mode: the CIPP service account is added to `excludeUsers`.
"""

from __future__ import annotations

import copy
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
    """The users object with every collection present, as Graph returns it (docs/graph-ca.md §2.7)."""
    source = copy.deepcopy(dict(users or {}))
    complete: Users = {name: list(source.get(name) or []) for name in USER_LISTS}
    for name in GUEST_OBJECTS:
        complete[name] = source.get(name)
    return complete


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
    added_tenants = (msp_tenant_id,) if kind == "enumerated" else ()
    complete["excludeGuestsOrExternalUsers"] = _with_scope(guests, [*types, *added_types], [*members, *added_tenants])
    return Merge(complete, "widened", Addition(added_types, added_tenants), detail)


def _with_scope(guests: Mapping[str, Any], types: Sequence[str], members: Sequence[str]) -> dict[str, Any]:
    kind, _ = _tenant_scope(guests)
    updated = dict(guests)
    updated["guestOrExternalUserTypes"] = ",".join(types)
    if kind == "enumerated":
        # Always with @odata.type: Graph rejects the enumerated form without it (docs/graph-ca.md §2.4).
        updated["externalTenants"] = {
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


def exclude_cipp(
    users: Mapping[str, Any] | None,
    access_mode: str,
    msp_tenant_id: str,
    service_account_user_id: str | None,
    on_conflict: str = "report",
) -> Merge:
    """The merge for the tenant's access mode: the MSP's service providers (GDAP) or the CIPP account (direct)."""
    if access_mode == "direct":
        return exclude_user(users, str(service_account_user_id))
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
        return user_is_excluded(users, str(service_account_user_id))
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
