"""Microsoft-managed Conditional Access policies: recognised, labelled, and held to the date they turn on.

Microsoft creates these policies in a tenant in report-only and "enables these policies no less than 45 days
after they're introduced in your tenant if they're left in the Report-only state"; administrators "cannot
delete or rename" them (Microsoft Learn, entra/identity/conditional-access/managed-policies). Graph v1.0 has
no property that marks them, so they are recognised by their documented display names — which their owners
cannot change. A tenant's own policy that copies one of these names is labelled too: that only makes the
guard rows stricter, never looser (docs/scenario-matrix.md).

For the guard rows (the lockout guard), a report-only managed policy counts as enforced: "it will lock the
service account out in 45 days" is a failure now, with the earliest date Microsoft turns it on
(`createdDateTime` + 45 days) in the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from cipp_hardening.evaluator import ENABLED, REPORT_ONLY

# The managed policies Microsoft documents (managed-policies page, "Policies" list), compared case-insensitively.
MICROSOFT_MANAGED_NAMES = frozenset(
    name.lower()
    for name in (
        "Multifactor authentication for admins accessing Microsoft Admin Portals",
        "Multifactor authentication for per-user multifactor authentication users",
        "Multifactor authentication and reauthentication for risky sign-ins",
        "Block device code flow",
        "Block legacy authentication",
        "Block all high-risk agents",
    )
)
AUTO_ENABLE_AFTER = timedelta(days=45)


def is_microsoft_managed(policy: Mapping[str, Any]) -> bool:
    return str(policy.get("displayName", "")).strip().lower() in MICROSOFT_MANAGED_NAMES


def turns_on(policy: Mapping[str, Any]) -> date | None:
    """The earliest day Microsoft enables a report-only managed policy, from its createdDateTime; None unknown."""
    created = policy.get("createdDateTime")
    if not isinstance(created, str):
        return None
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment + AUTO_ENABLE_AFTER).date()


def label(policy: Mapping[str, Any]) -> str | None:
    """What the matrix says about a managed policy, or None for any other."""
    if not is_microsoft_managed(policy):
        return None
    if policy.get("state") != REPORT_ONLY:
        return "Microsoft-managed"
    day = turns_on(policy)
    when = f"no earlier than {day.isoformat()}" if day else "on a date Graph does not give (45 days after it appeared)"
    return f"Microsoft-managed, report-only: Microsoft turns it on {when}, unless it is set to Off"


def as_enforced(policies: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    """The policies with every report-only managed one counted as enabled; None when there is none."""
    if not any(is_microsoft_managed(p) and p.get("state") == REPORT_ONLY for p in policies):
        return None
    return [
        {**p, "state": ENABLED} if is_microsoft_managed(p) and p.get("state") == REPORT_ONLY else p for p in policies
    ]


def labels_for(names: Sequence[str], policies: Sequence[Mapping[str, Any]]) -> list[str]:
    """`'name': label` for each named policy (display name or id) that is Microsoft-managed."""
    found = []
    for name in names:
        policy = next((p for p in policies if name in (p.get("displayName"), p.get("id"))), None)
        text = label(policy) if policy is not None else None
        if text:
            found.append(f"'{name}' is {text}")
    return found
