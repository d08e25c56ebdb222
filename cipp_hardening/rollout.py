"""Rollout safety, the pure part: evidence from report-only sign-ins, the promotion record, prior state.

Used by `make promote` (cipp_hardening/commands/promote.py) and the CrossGuard pack (policy/policies.py).
No I/O here: callers hand in Graph JSON, a `pulumi stack export` document or the engine's config map.

Report-only results (Graph signIn.appliedConditionalAccessPolicies[].result): for a block policy,
`reportOnlyFailure` is "would have been blocked" and `reportOnlyInterrupted` "would have stopped the
sign-in for a user action"; both count as affected. `reportOnlySuccess` / `reportOnlyNotApplied` do
not. Enforced results in the window (`failure`, `success`, `notApplied`) mean the policy was switched on
for a while: a `failure` is a real block and counts as affected too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cipp_hardening.config import POLICY_STATES, MspStack

AFFECTED_RESULTS = frozenset({"reportOnlyFailure", "reportOnlyInterrupted", "failure"})
UNAFFECTED_RESULTS = frozenset({"reportOnlySuccess", "reportOnlyNotApplied", "success", "notApplied"})
CA_POLICY_TYPE = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"
REPORT_ONLY_STATE = POLICY_STATES["reportOnly"]

Kind = Literal["technician", "breakGlass", "serviceAccount"]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- evidence from the sign-in logs ------------------------------------------------------------------


@dataclass
class AffectedGroup:
    """Sign-ins the policy would have affected, grouped by who, from where, into what."""

    kind: Kind
    user: str  # user principal name, else the object id
    user_id: str
    ip: str
    application: str
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""

    def add(self, created: str) -> None:
        self.count += 1
        if not self.first_seen or parse_time(created) < parse_time(self.first_seen):
            self.first_seen = created
        if not self.last_seen or parse_time(created) > parse_time(self.last_seen):
            self.last_seen = created


@dataclass
class Evidence:
    """What the policy's report-only results say about one window."""

    evaluated: int = 0  # sign-ins on which the policy has a result (report-only or enforced)
    groups: list[AffectedGroup] = field(default_factory=list)

    def of_kind(self, kind: Kind) -> list[AffectedGroup]:
        return [g for g in self.groups if g.kind == kind]

    def count(self, kind: Kind) -> int:
        return sum(g.count for g in self.of_kind(kind))

    @property
    def affected(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def needs_acceptance(self) -> bool:
        """Affected sign-ins, or no sign-in evaluated at all (no evidence is not evidence)."""
        return bool(self.affected) or not self.evaluated


def policy_result(sign_in: Mapping[str, Any], policy_id: str) -> str | None:
    """The policy's result on this sign-in, or None when the sign-in does not list it."""
    for applied in sign_in.get("appliedConditionalAccessPolicies") or []:
        if str(applied.get("id") or "").lower() == policy_id.lower():
            return str(applied.get("result") or "")
    return None


def _kind(user_id: str, config: MspStack) -> Kind:
    if user_id == config.service_account.user_id:
        return "serviceAccount"
    if user_id in config.technician_access.break_glass_user_ids:
        return "breakGlass"
    return "technician"


def analyse_sign_ins(sign_ins: Iterable[Mapping[str, Any]], policy_id: str, config: MspStack) -> Evidence:
    """Group the sign-ins the policy would have affected; count the ones it evaluated."""
    evidence = Evidence()
    index: dict[tuple[str, str, str], AffectedGroup] = {}
    for sign_in in sign_ins:
        result = policy_result(sign_in, policy_id)
        if result in UNAFFECTED_RESULTS:
            evidence.evaluated += 1
        if result not in AFFECTED_RESULTS:
            continue
        evidence.evaluated += 1
        user_id = str(sign_in.get("userId") or "").lower()
        key = (user_id, str(sign_in.get("ipAddress") or ""), str(sign_in.get("appId") or ""))
        if key not in index:
            index[key] = AffectedGroup(
                kind=_kind(user_id, config),
                user=str(sign_in.get("userPrincipalName") or user_id or "(unknown user)"),
                user_id=user_id,
                ip=key[1] or "(unknown)",
                application=str(sign_in.get("appDisplayName") or key[2] or "(unknown)"),
            )
            evidence.groups.append(index[key])
        index[key].add(str(sign_in["createdDateTime"]))
    evidence.groups.sort(key=lambda g: (g.kind != "breakGlass", g.kind != "serviceAccount", -g.count, g.user))
    return evidence


def promotion_record(
    evidence: Evidence,
    *,
    policy_id: str,
    policy_name: str,
    start: datetime,
    end: datetime,
    accepted: bool,
    now: datetime,
) -> dict[str, Any]:
    """technicianAccess.promotedAfter: the window and the evidence summary (validated by config.py)."""
    record: dict[str, Any] = {
        "policyId": policy_id,
        "policyDisplayName": policy_name,
        "window": {"from": iso(start), "to": iso(end)},
        "signInsEvaluated": evidence.evaluated,
        "wouldBlock": evidence.count("technician"),
        "breakGlass": evidence.count("breakGlass"),
        "serviceAccount": evidence.count("serviceAccount"),
        "accepted": accepted and evidence.needs_acceptance,
    }
    if record["accepted"] and evidence.groups:
        record["acceptedUsers"] = sorted({g.user for g in evidence.groups})
    record["recordedAt"] = iso(now)
    return record


# --- what the policy pack reads --------------------------------------------------------------------


@dataclass(frozen=True)
class PriorResource:
    urn: str
    state: str | None  # Graph spelling
    object_id: str | None


def prior_policies(export: Mapping[str, Any]) -> dict[str, PriorResource]:
    """CA policies of a `pulumi stack export` document (version 3), by URN."""
    resources = (export.get("deployment") or {}).get("resources") or []
    prior: dict[str, PriorResource] = {}
    for resource in resources:
        if resource.get("type") != CA_POLICY_TYPE:
            continue
        outputs = resource.get("outputs") or {}
        state = outputs.get("state") or (resource.get("inputs") or {}).get("state")
        object_id = outputs.get("objectId")
        prior[resource["urn"]] = PriorResource(
            resource["urn"],
            state if isinstance(state, str) else None,
            object_id if isinstance(object_id, str) else None,
        )
    return prior


def describe_transition(prior: Mapping[str, PriorResource] | None, urn: str) -> str | None:
    """Why an enabled plan of this policy needs a promotion record, or None when it does not."""
    if prior is None:
        return "is planned enabled (no prior state was given, so every enabled plan needs the record)"
    before = prior.get(urn)
    if before is None:
        return "would be created enabled, skipping the report-only phase"
    if before.state == "enabled":
        return None
    if before.state == REPORT_ONLY_STATE:
        return "moves from report-only to enabled in this update"
    return f"moves from {before.state or 'an unknown state'} to enabled in this update"
