"""CIPP's own allow-list for technicians: the IP ranges of a CIPP role, as pure functions over CIPP's JSON.

CIPP (10.0 and later) keeps, per role, a row of IP ranges in its `AccessIPRanges` table and checks a
signed-in user's address against the ranges of all the user's roles on every request (docs/custom-roles.md).
The only way to change them is `ExecCustomRole` `AddUpdate`, which also *replaces* the role's permissions,
tenant lists, blocked endpoints and Entra group from the same body: so a range change is read, merge,
write, and the read must be one this module understands completely. Nothing here does I/O; the shapes of
ExecCustomRole's answers are read by service_clients.cipp_client, which hands these functions plain roles.

Upstream (KelvinTegelaar/CIPP-API): `Invoke-ExecCustomRole.ps1` (AddUpdate, and the default action that
lists the roles in the shape AddUpdate takes), `Get-CIPPRoleIPRanges.ps1`, `Test-CIPPAccess.ps1`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SUPERADMIN = "superadmin"
# Config/cipp-roles.json: AddUpdate writes no CustomRoles row for these, only their IP ranges and group.
BUILT_IN_ROLES = ("readonly", "editor", "admin", "superadmin")

# Invoke-ExecCustomRole.ps1, AddUpdate: `$IP -match $regexPattern`, no trim; an entry that does not match
# is dropped without a word, and a body left with no range *removes* the role's ranges (opens it).
EXEC_CUSTOM_ROLE_RANGE = re.compile(
    r"^(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:/\d{1,2})?|(?:[0-9A-Fa-f]{1,4}:){1,7}[0-9A-Fa-f]{1,4}(?:/\d{1,3})?)$",
    re.IGNORECASE,
)

# The fields of a role in the default action's answer, and what each means to AddUpdate.
WRITTEN_FIELDS = ("Permissions", "AllowedTenants", "BlockedTenants", "BlockedEndpoints")  # replaced from the body
ENTRA_GROUP = "EntraGroup"  # {label, value}: absent from the body means "remove the group mapping"
RANGES = "IPRange"
ENTITY_FIELDS = ("PartitionKey", "RowKey", "Timestamp", "ETag")  # table metadata, never written from a body
KNOWN_FIELDS = frozenset({*WRITTEN_FIELDS, ENTRA_GROUP, RANGES, *ENTITY_FIELDS})

Role = dict[str, Any]


class UnknownRoleShape(ValueError):
    """The role as read holds something AddUpdate might not keep: writing it back could lose it, so no write."""


def accepted_by_cipp(entry: str) -> bool:
    """Whether ExecCustomRole keeps this range (its regex, untrimmed)."""
    return bool(EXEC_CUSTOM_ROLE_RANGE.match(entry)) and entry == entry.strip()


def find_role(roles: Iterable[Mapping[str, Any]], name: str) -> Role | None:
    """The role whose RowKey is `name`. Custom RowKeys are stored lower case; the caller passes lower case."""
    return next((dict(role) for role in roles if str(role.get("RowKey", "")).lower() == name.lower()), None)


def ranges_of(role: Mapping[str, Any]) -> list[str]:
    """The role's ranges as CIPP holds them; [] means none (CIPP then lets every address through)."""
    stored = role.get(RANGES)
    entries = stored if isinstance(stored, list) else [stored] if stored else []
    return [str(entry) for entry in entries if entry not in (None, "")]


def is_built_in(role: Mapping[str, Any]) -> bool:
    return str(role.get("RowKey", "")).lower() in BUILT_IN_ROLES


def entra_group(role: Mapping[str, Any]) -> dict[str, Any] | None:
    group = role.get(ENTRA_GROUP)
    return dict(group) if isinstance(group, Mapping) else None


# -- writing AddUpdate -------------------------------------------------------------------------------
def add_update_body(role: Mapping[str, Any], ranges: Sequence[str], *, open_role: bool = False) -> dict[str, Any]:
    """The complete AddUpdate body that changes only the ranges of `role` (an item of the default action).

    Every field AddUpdate replaces goes back exactly as read; a field the read lacks, holds in a shape
    the default action produces only when it could not parse what is stored, or a field this module does
    not know, is a refusal (UnknownRoleShape), never a guess. Ranges must all be in the spelling CIPP keeps:
    one dropped entry would narrow the list, all dropped would open the role. No ranges at all opens the
    role, so it needs `open_role` (a restore that allowOpenOnDelete states).
    """
    name = str(role.get("RowKey", ""))
    _check_shape(role, name)
    refused = [entry for entry in ranges if not accepted_by_cipp(entry)]
    if refused or not (ranges or open_role):
        raise UnknownRoleShape(
            f"role {name}: ranges {refused or '[]'} would be dropped by ExecCustomRole: nothing written"
        )
    body: dict[str, Any] = {"Action": "AddUpdate", "RoleName": name}
    body.update({field: role[field] for field in WRITTEN_FIELDS})
    if (group := entra_group(role)) is not None:
        body[ENTRA_GROUP] = group
    if ranges:  # no IpRange at all is how AddUpdate removes a role's ranges (open_role, a stated restore)
        body["IpRange"] = list(ranges)
    return body


def _check_shape(role: Mapping[str, Any], name: str) -> None:
    if name.lower() == SUPERADMIN:
        raise UnknownRoleShape("role superadmin: CIPP never restricts it by IP (Get-CIPPRoleIPRanges): nothing written")
    unknown = sorted(set(role) - KNOWN_FIELDS)
    if unknown:
        raise UnknownRoleShape(
            f"role {name}: CIPP lists fields this project does not know ({', '.join(unknown)}), and AddUpdate "
            'might not keep them: nothing written (docs/custom-roles.md "What a write sends back")'
        )
    missing = [field for field in WRITTEN_FIELDS if field not in role]
    if missing:
        raise UnknownRoleShape(
            f"role {name}: CIPP's list does not show {', '.join(missing)}, which AddUpdate would reset: nothing written"
        )
    permissions = role["Permissions"]
    if not is_built_in(role) and (not isinstance(permissions, Mapping) or not permissions):
        # The default action shows an unreadable stored Permissions as @(): writing that back would wipe it.
        raise UnknownRoleShape(
            f"role {name}: CIPP shows its permissions as {json.dumps(permissions)[:80]}, not as the object of "
            "permissions it stores; writing that back could empty the role: nothing written"
        )
    for field in WRITTEN_FIELDS[1:]:
        if not isinstance(role[field], list):
            raise UnknownRoleShape(f"role {name}: CIPP shows {field} as {json.dumps(role[field])[:80]}, not a list")
    group = role.get(ENTRA_GROUP)
    if group is not None and not (
        isinstance(group, Mapping) and set(group) <= {"label", "value"} and group.get("value")
    ):
        raise UnknownRoleShape(f"role {name}: CIPP shows its Entra group as {json.dumps(group)[:80]}: nothing written")


def canonical(value: Any) -> str:
    """A field as compared before and after a write: objects by key (CIPP's request parsing need not keep
    key order, docs/custom-roles.md), lists in order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def unconfirmed_fields(sent: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """Fields other than the ranges that the role, read again, shows differently from the AddUpdate body."""
    found = [
        f"{field} {canonical(stored.get(field))[:120]} (sent {canonical(sent[field])[:120]})"
        for field in WRITTEN_FIELDS
        if canonical(stored.get(field)) != canonical(sent[field])
    ]
    if canonical(entra_group(stored)) != canonical(sent.get(ENTRA_GROUP)):
        found.append(f"{ENTRA_GROUP} {canonical(entra_group(stored))} (sent {canonical(sent.get(ENTRA_GROUP))})")
    return found


# -- what delete does ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeletePlan:
    action: Literal["leave", "restore", "refuse"]
    ranges: tuple[str, ...] = ()
    reason: str = ""


def delete_plan(props: Mapping[str, Any]) -> DeletePlan:
    """Put back the ranges found at adoption, unless told to leave them; never open a role by omission."""
    name = props.get("name", "?")
    if props.get("restoreOnDelete") is False:
        return DeletePlan("leave", reason=f"CIPP role {name}: no longer managed; its ranges stay as they are")
    adopted = tuple(props.get("adoptedRanges") or ())
    if not adopted and not props.get("allowOpenOnDelete"):
        return DeletePlan(
            "refuse",
            reason=(
                f"CIPP role {name}: restoring the ranges found at adoption would remove them all, and CIPP would "
                "then let the role in from every address; refusing to open it. Set allowOpenOnDelete: true on this "
                "role (or restoreOnDelete: false to leave its ranges), run `pulumi up`, then remove it again"
            ),
        )
    what = ", ".join(adopted) if adopted else "none (every address)"
    return DeletePlan("restore", adopted, f"CIPP role {name}: restoring the ranges found at adoption: {what}")


def predicted_delete_refusal(props: Mapping[str, Any]) -> str | None:
    plan = delete_plan(props)
    return plan.reason if plan.action == "refuse" else None


GUARD_KEYS = ("name", "restoreOnDelete", "allowOpenOnDelete")


# -- who stays with Part A alone ------------------------------------------------------------------------
def part_a_only(roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Roles whose holders CIPP never restricts by IP: superadmin, with the Entra group that grants it."""
    found = []
    for role in roles:
        if str(role.get("RowKey", "")).lower() == SUPERADMIN:
            group = entra_group(role)
            found.append(
                {
                    "role": SUPERADMIN,
                    "entraGroupId": group.get("value") if group else None,
                    "entraGroupName": group.get("label") if group else None,
                }
            )
    return found


def part_a_only_message(entry: Mapping[str, Any]) -> str:
    group = entry.get("entraGroupName") or entry.get("entraGroupId")
    who = f"members of Entra group {group}" if group else "users given superadmin in CIPP's user management"
    return (
        f"CIPP role superadmin: {who} are never restricted by CIPP's role IP ranges; only Part A (Entra) holds "
        'them to the trusted IPs (docs/custom-roles.md "superadmin")'
    )
