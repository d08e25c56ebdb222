"""Who changed the Conditional Access policies since the last deployment, from Entra's audit log.

`verify` reads `GET /auditLogs/directoryAudits` (Graph v1.0; application permissions AuditLog.Read.All and
Directory.Read.All, optional) for the Conditional Access service since the last deployment, and reports each
policy added, updated or deleted by someone other than the deploying identity: which policy, who, when
(docs/assurance.md "Changes by others"). The audit log is evidence, not an invariant: a refusal (403) is said
as "cannot tell who changed the policies", never passed silently and never a failure of the lockout proof.

Facts relied on (docs/graph-ca.md §8): the directoryAudit resource (`activityDateTime`, `activityDisplayName`,
`loggedByService`, `result`, `initiatedBy.user` / `initiatedBy.app`, `targetResources[].id`); the Conditional
Access activities of "Microsoft Entra audit log categories and activities" (service "Conditional Access",
category "Policy", "Add/Update/Delete Conditional Access policy"), compared without case because tooling and
the docs spell them both ways; `$filter` on `activityDateTime` (ge) and `loggedByService` (eq).

Policies of the Conditional Access optimization agent: no policy property marks them, and with the agent in user
context the audit log names the user who enabled it; with its own agent identity, the entries name that
identity. So they are recognised only through identities the operator names (`--optimization-agent`): a
policy whose "Add" entry such an identity initiated is labelled as the agent's (docs/assurance.md).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

DIRECTORY_AUDITS = "auditLogs/directoryAudits"
SERVICE = "Conditional Access"
# Activity (lower case) → what it did to the policy.
POLICY_ACTIVITIES = {
    "add conditional access policy": "added",
    "update conditional access policy": "updated",
    "delete conditional access policy": "deleted",
}
ADDED = "added"
# Entra keeps audit entries 30 days (the troubleshooting page): agent-created policies are looked for that far back.
RETENTION = timedelta(days=30)
AGENT_LABEL = "created by the Conditional Access optimization agent"
CANNOT_TELL = "cannot tell who changed the policies since the last deployment"


class Reader(Protocol):
    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Identity:
    """Ids one actor may appear under in `initiatedBy`: application ids, service principal and user object ids."""

    ids: frozenset[str]
    described: str

    @classmethod
    def of(cls, ids: Iterable[str], described: str = "") -> Identity:
        cleaned = frozenset(i.strip().lower() for i in ids if i and i.strip())
        return cls(cleaned, described or ", ".join(sorted(cleaned)))

    def initiated(self, entry: Mapping[str, Any]) -> bool:
        return bool(self.ids & initiator_ids(entry))


def token_identity(token: str) -> Identity:
    """The caller of an access token: its `appid`/`azp` and `oid` claims (payload read, signature not checked:
    the token is our own, only who it names matters). An unreadable token names nobody."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return Identity(frozenset(), "an identity verify could not read from its token")
    if not isinstance(claims, dict):
        return Identity(frozenset(), "an identity verify could not read from its token")
    app = str(claims.get("appid") or claims.get("azp") or "")
    user = str(claims.get("upn") or claims.get("unique_name") or "")
    if user:  # a person signed in through a client (the Azure CLI): they are the identity, not the client app
        return Identity.of([str(claims.get("oid") or "")], f"user {user}")
    return Identity.of([app, str(claims.get("oid") or "")], f"application {app}")


def initiator_ids(entry: Mapping[str, Any]) -> frozenset[str]:
    initiated = entry.get("initiatedBy") or {}
    user = initiated.get("user") or {}
    app = initiated.get("app") or {}
    found = [user.get("id"), app.get("appId"), app.get("servicePrincipalId")]
    return frozenset(str(i).lower() for i in found if i)


def initiator_text(entry: Mapping[str, Any]) -> str:
    """'user alice@contoso.com' or 'application Name (app id)', as the entry names its initiator."""
    initiated = entry.get("initiatedBy") or {}
    user = initiated.get("user") or {}
    if user:
        return f"user {user.get('userPrincipalName') or user.get('displayName') or user.get('id')}"
    app = initiated.get("app") or {}
    if app:
        name = app.get("displayName") or app.get("servicePrincipalName")
        return f"application {name} ({app.get('appId')})" if name else f"application {app.get('appId')}"
    return "an initiator the audit log does not name"


@dataclass(frozen=True)
class PolicyChange:
    policy_id: str
    policy_name: str
    action: str  # added / updated / deleted
    who: str
    when: str
    by_agent: bool = False

    @property
    def message(self) -> str:
        agent = " (the Conditional Access optimization agent)" if self.by_agent else ""
        return f"'{self.policy_name}' ({self.policy_id}) {self.action} by {self.who}{agent} at {self.when}"


@dataclass(frozen=True)
class AuditResult:
    since: str = ""  # the last deployment, ISO 8601
    changes: tuple[PolicyChange, ...] = ()  # by others than the deploying identity
    agent_policies: Mapping[str, str] = dataclasses.field(default_factory=dict)  # policy id → name
    cannot_tell: str = ""  # why the log could not answer: said, never a failure
    deployer: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since or None,
            "deployingIdentity": self.deployer or None,
            "changesByOthers": [dataclasses.asdict(c) for c in self.changes],
            "agentPolicies": dict(self.agent_policies),
            "cannotTell": self.cannot_tell or None,
        }


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def odata_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def query(since: datetime) -> dict[str, str]:
    """The list request's parameters: Conditional Access entries from `since` on (filtered on the server)."""
    return {"$filter": f"activityDateTime ge {odata_time(since)} and loggedByService eq '{SERVICE}'"}


def policy_entries(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Successful policy writes of Conditional Access, oldest first (Graph promises no order)."""
    found = [
        e
        for e in entries
        if str(e.get("activityDisplayName", "")).lower() in POLICY_ACTIVITIES
        and str(e.get("result", "success")).lower() == "success"
        and str(e.get("loggedByService", SERVICE)).lower() == SERVICE.lower()
    ]
    return sorted(found, key=_moment_of)


def _moment_of(entry: Mapping[str, Any]) -> datetime:
    return parse_time(str(entry.get("activityDateTime", ""))) or datetime.min.replace(tzinfo=UTC)


def _target(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    targets = entry.get("targetResources") or [{}]
    return next((t for t in targets if str(t.get("type", "")).lower() == "policy"), targets[0])


def agent_created(entries: Iterable[Mapping[str, Any]], agents: Identity) -> dict[str, str]:
    """Policy id → name for each policy whose "Add" entry one of the agent's identities initiated."""
    created = {}
    for entry in policy_entries(entries):
        if POLICY_ACTIVITIES[str(entry["activityDisplayName"]).lower()] == ADDED and agents.initiated(entry):
            target = _target(entry)
            created[str(target.get("id", "")).lower()] = str(target.get("displayName") or target.get("id"))
    return created


def changes_by_others(
    entries: Iterable[Mapping[str, Any]], since: datetime, deployer: Identity, agents: Identity
) -> list[PolicyChange]:
    """Every policy write from `since` on that the deploying identity did not make."""
    changes = []
    for entry in policy_entries(entries):
        when = parse_time(str(entry.get("activityDateTime", "")))
        if when is None or when < since or deployer.initiated(entry):
            continue
        target = _target(entry)
        changes.append(
            PolicyChange(
                policy_id=str(target.get("id", "")),
                policy_name=str(target.get("displayName") or target.get("id", "")),
                action=POLICY_ACTIVITIES[str(entry["activityDisplayName"]).lower()],
                who=initiator_text(entry),
                when=odata_time(when),
                by_agent=agents.initiated(entry),
            )
        )
    return changes


def read(
    graph: Reader,
    since: datetime | str,
    deployer: Identity,
    agents: Identity,
    refused: Callable[[Exception], str | None],
    now: datetime,
) -> AuditResult:
    """The audit log's answer. `since` is the last deployment, or why it is unknown (then only the agent's
    policies are looked for, over the log's retention); `refused(error)` says why an error means "this caller
    may not read the log" (None: the error is re-raised)."""
    shown = odata_time(since) if isinstance(since, datetime) else ""
    if not isinstance(since, datetime) and not agents.ids:
        return AuditResult(cannot_tell=f"{CANNOT_TELL}: {since}", deployer=deployer.described)
    oldest = now - RETENTION
    start = oldest if not isinstance(since, datetime) else min(since, oldest) if agents.ids else since
    try:
        entries = graph.list_all(DIRECTORY_AUDITS, query(start))
    except Exception as error:
        why = refused(error)
        if why is None:
            raise
        return AuditResult(shown, cannot_tell=f"{CANNOT_TELL}: {why}", deployer=deployer.described)
    agent_policies = agent_created(entries, agents)
    if not isinstance(since, datetime):
        return AuditResult(
            agent_policies=agent_policies, cannot_tell=f"{CANNOT_TELL}: {since}", deployer=deployer.described
        )
    return AuditResult(
        since=shown,
        changes=tuple(changes_by_others(entries, since, deployer, agents)),
        agent_policies=agent_policies,
        deployer=deployer.described,
    )


def label_agent_rows(rows: Sequence[Any], agent_policies: Mapping[str, str]) -> list[Any]:
    """Matrix rows (scenarios.MatrixRow) that name an agent-created policy say so, as managed ones do."""
    if not agent_policies:
        return list(rows)
    names = {name for name in agent_policies.values()} | set(agent_policies)
    labelled = []
    for row in rows:
        named = [n for n in row.responsible if n in names or str(n).lower() in agent_policies]
        if named:
            text = "; ".join(f"'{n}' is {AGENT_LABEL}" for n in named)
            row = dataclasses.replace(row, actual=f"{row.actual} ({text})")
        labelled.append(row)
    return labelled
