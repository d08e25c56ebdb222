"""Part D: a dynamic resource that keeps the MSP excluded from one client-owned CA policy.

The client owns the policy; this resource only adds the MSP exclusion to it (GDAP: service-provider
users of the MSP tenant; direct tenant mode: the CIPP service account) and, on delete, removes exactly
what it added. Merge rules live in cipp_hardening.exclusion (pure); this module is the thin shell
that reads and writes Graph v1.0 through service_clients.graph_client.

Cost (Conditional Access allows 1 request/s per tenant, docs/part-d.md): the program lists the tenant's
policies once per run and hands each resource the listing's verdict (`listed`). A policy the listing shows
covered or in conflict costs no request at all, at create and at update; one that needs the exclusion
costs a fresh GET (Graph has no ETags: the guard against overwriting the client's concurrent edit), a
PATCH of the changed key alone, and a confirming GET. The listing also carries drift: an exclusion removed
in the portal makes `listed` say `write`, so a plain `pulumi up` (no refresh) shows and repairs it.

Safety (docs/part-d.md "Nothing lost, nothing widened"): the stack's ExclusionJournal records each intent
before any write, so a write whose record a killed run lost is recognised as ours; a read we do not
understand is never written back; destroy re-reads while a replica predates our write.

The provider object holds no session, lock or token: it is pickled into state by module and class
name (docs/pulumi.md §2.2). Credentials are resolved per call (service_clients.credentials).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from cipp_hardening.exclusion import (
    Addition,
    Merge,
    UsersNotUnderstood,
    changed_parts,
    cipp_is_excluded,
    exclude_cipp,
    guest_types,
    remove_addition,
    understood_users,
)
from dynamic_providers import props as typed
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError, pacer_for

log = logging.getLogger(__name__)

POLICIES = "identity/conditionalAccess/policies"
IDENTITY_INPUTS = ("tenantId", "policyId", "accessMode", "mspTenantId", "serviceAccountUserId")
ALL_INPUTS = (*IDENTITY_INPUTS, "graphUrl", "displayName", "onConflict")
SECRET_KEY = "cipp-hardening:graphClientSecret"  # noqa: S105 - a config key name
CLIENT_ID_KEY = "cipp-hardening:graphClientId"
CONFIRM_READS = 5  # reads after a write before calling it unconfirmed: terraform-provider-azuread's count (§1.5)
RECORDED_AS = {"excluded": "covered", "already-excluded": "covered", "widened": "covered", "conflict": "conflict"}


class ExclusionError(RuntimeError):
    """A readable failure naming the client policy."""


@dataclass(frozen=True)
class CaExclusionArgs:
    """The props of one CaExclusion (dynamic_providers/props.py): components/client_exclusions.py builds them from
    validated config (a Direct-mode tenant always names its service account) and this run's listing; the provider
    reads them back from state."""

    tenant_id: str  # the client tenant
    graph_url: str
    policy_id: str
    access_mode: Literal["gdap", "direct"]
    msp_tenant_id: str
    display_name: str = ""
    service_account_user_id: str | None = None  # Direct mode: the CIPP service account in the client tenant
    on_conflict: Literal["report", "widen"] = "report"
    listed: dict[str, Any] | None = None  # this run's listing verdict (exclusion.listing_verdict)
    # The journal's entry for this policy: an output of the ExclusionJournal when declared, a dict in state.
    intended: pulumi.Input[dict[str, Any]] | None = None

    PROPS: ClassVar[dict[str, str]] = {  # field → prop name in state
        "tenant_id": "tenantId",
        "graph_url": "graphUrl",
        "policy_id": "policyId",
        "access_mode": "accessMode",
        "msp_tenant_id": "mspTenantId",
        "display_name": "displayName",
        "service_account_user_id": "serviceAccountUserId",
        "on_conflict": "onConflict",
        "listed": "listed",
        "intended": "intended",
    }


@dataclass(frozen=True)
class ExclusionJournalArgs:
    """The props of the stack's ExclusionJournal: the client tenant, and this run's intent for each policy in scope
    ({policy id: Addition.to_json()})."""

    tenant_id: str
    intents: dict[str, Any]

    PROPS: ClassVar[dict[str, str]] = {"tenant_id": "tenantId", "intents": "intents"}


@dataclass(frozen=True)
class Seen:
    """One read of the policy: its users object (checked) and Graph's modifiedDateTime."""

    users: dict[str, Any]
    modified: datetime | None


def _args(props: dict[str, Any]) -> CaExclusionArgs:
    """The props as the engine hands them (from state, too), typed; a prop that does not fit is named."""
    try:
        return typed.decode(CaExclusionArgs, props)
    except ValueError as error:
        raise ExclusionError(f"{_policy_label(props)}: the resource's props do not fit: {error}") from None


def _client(props: dict[str, Any]) -> GraphClient:
    args = _args(props)
    tenant, graph_url = args.tenant_id, args.graph_url
    client_id = credentials.secret(CLIENT_ID_KEY)

    def token() -> str:
        secret = credentials.secret(SECRET_KEY) if client_id else None
        return credentials.access_token(tenant, f"{graph_url}/.default", client_id=client_id, client_secret=secret)

    return GraphClient(graph_url, tenant, token, pacer=pacer_for(graph_url, tenant, after_another_process=True))


def _policy_label(props: dict[str, Any]) -> str:
    return f"policy {props.get('displayName') or '?'!r} ({props.get('policyId')}) in tenant {props.get('tenantId')}"


def _merge(users: dict[str, Any] | None, props: dict[str, Any]) -> Merge:
    return exclude_cipp(
        users,
        props["accessMode"],
        props["mspTenantId"],
        props.get("serviceAccountUserId"),
        props.get("onConflict", "report"),
    )


def _covered(users: dict[str, Any] | None, props: dict[str, Any]) -> bool:
    return cipp_is_excluded(users, props["accessMode"], props["mspTenantId"], props.get("serviceAccountUserId"))


def _path(props: dict[str, Any]) -> str:
    return f"{POLICIES}/{props['policyId']}"


def _read(graph: GraphClient, props: dict[str, Any]) -> Seen:
    """A fresh GET; a users object we do not understand stops everything (docs/part-d.md "What is never written")."""
    policy = graph.get(_path(props))
    try:
        users = understood_users(policy)
    except UsersNotUnderstood as error:
        raise ExclusionError(
            f"{_policy_label(props)}: Graph returned a policy this project does not understand ({error}); "
            "nothing was written (docs/part-d.md)"
        ) from None
    return Seen(users, _moment(policy.get("modifiedDateTime")))


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _write(graph: GraphClient, props: dict[str, Any], parts: dict[str, Any]) -> None:
    """PATCH only the users keys we changed (docs/graph-ca.md §1.3): every other key stays as the tenant holds it."""
    graph.patch(_path(props), {"conditions": {"users": parts}})


def _stale(seen: Seen, since: datetime | None) -> bool:
    """Whether this read comes from a replica that has not yet seen a write Graph stamped `since`."""
    return since is not None and (seen.modified is None or seen.modified < since)


def _confirm(graph: GraphClient, props: dict[str, Any], before: Seen, sent: dict[str, Any]) -> Seen:
    """Re-read until the write shows (bounded: replication lag, docs/graph-ca.md §1.5); report others' edits."""
    seen = before
    for _ in range(CONFIRM_READS):
        seen = _read(graph, props)
        if _shows(seen.users, sent):
            break
    else:
        log.warning(
            "%s: the write is not visible after %d reads (replication lag, or someone changed %s since); "
            "the next run reads it again",
            _policy_label(props),
            CONFIRM_READS,
            ", ".join(sorted(sent)),
        )
    for key in sorted(set(before.users) | set(seen.users)):
        if key not in sent and _canonical(before.users.get(key)) != _canonical(seen.users.get(key)):
            log.warning(
                "%s: conditions.users.%s was changed by someone else while this run wrote; kept as they set it",
                _policy_label(props),
                key,
            )
    return seen


def _shows(users: dict[str, Any], sent: dict[str, Any]) -> bool:
    return all(_canonical(users.get(key)) == _canonical(value) for key, value in sent.items())


def _canonical(value: Any) -> Any:
    """Graph's spelling aside: ids compare case-insensitively, a flags enum as a set (docs/graph-ca.md §2.4)."""
    if isinstance(value, dict):
        return {
            key: sorted(guest_types(value)) if key == "guestOrExternalUserTypes" else _canonical(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return sorted(str(item).lower() for item in value)
    return value


def _listed(props: dict[str, Any]) -> str | None:
    """The program's listing verdict: `write`, `covered` or `conflict`; None without one (older callers)."""
    listed = props.get("listed")
    return str(listed["status"]) if isinstance(listed, dict) and listed.get("status") else None


def _intended(props: dict[str, Any]) -> Addition | None:
    """What the stack's journal says this project set out to add (None while the engine has not computed it)."""
    intended = props.get("intended")
    if intended is None:
        return Addition()
    return Addition.from_json(intended) if isinstance(intended, dict) else None


def _unsettled(props: dict[str, Any], olds: dict[str, Any] | None = None) -> Addition:
    """The journal's intents this resource has not yet accounted for: a run killed after its write left them."""
    intended = _intended(props) or Addition()
    settled = Addition.from_json((olds or {}).get("settled"))
    return Addition(
        tuple(t for t in intended.guest_types if t not in settled.guest_types),
        tuple(t for t in intended.tenants if not settled.covers(Addition(tenants=(t,)))),
        tuple(u for u in intended.exclude_users if not settled.covers(Addition(exclude_users=(u,)))),
        intended.created_object and not settled.created_object,
    )


def _from_listing(props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Outputs straight from the listing when it shows nothing to write and nothing is unsettled (no request)."""
    if _unsettled(props, olds):
        return None
    verdict = _listed(props)
    settled = _settled(props, olds)
    if verdict == "covered":
        return _outputs(props, "already-excluded", Addition(), "", settled)
    if verdict == "conflict":
        detail = str(props["listed"].get("detail") or "")
        log.warning("%s: not written (onConflict=report): %s", _policy_label(props), detail)
        return _outputs(props, "conflict", Addition(), detail, settled)
    return None


def _settled(props: dict[str, Any], olds: dict[str, Any] | None) -> Addition:
    return Addition.from_json((olds or {}).get("settled")).union(_intended(props) or Addition())


def _apply(
    props: dict[str, Any], olds: dict[str, Any] | None = None, previous: Addition | None = None
) -> dict[str, Any]:
    """Fresh GET, merge, PATCH only the changed keys, confirm. Returns the resource outputs.

    `olds`: the resource's recorded outputs (an update); `previous`: what to take out first (its identity changed)."""
    kept = Addition() if previous is not None or olds is None else Addition.from_json(olds.get("added"))
    unsettled = _unsettled(props, olds)
    with _client(props) as graph:
        try:
            with graph.in_a_row():  # the GET and the PATCH in consecutive turns (docs/part-d.md "Concurrent edits")
                seen = _read(graph, props)
                users = remove_addition(seen.users, previous)[0] if previous else seen.users
                merge = _merge(users, props)
                _refuse_unjournaled(props, merge)
                parts = changed_parts(seen.users, merge.users)
                if parts:
                    _write(graph, props, parts)
            after = _confirm(graph, props, seen, parts) if parts else seen
        except GraphError as error:
            raise ExclusionError(f"{_policy_label(props)}: {error}") from None
    added = kept.present_in(after.users).union(merge.addition if merge.write else Addition())
    claimed = unsettled.present_in(after.users)
    if claimed and not added.covers(claimed):
        log.warning("%s: recorded as ours what an interrupted run added: %s", _policy_label(props), claimed.to_json())
    added = added.union(claimed)
    status = "excluded" if merge.status == "already-excluded" and added else merge.status
    if merge.status == "conflict":
        log.warning("%s: not written (onConflict=report): %s", _policy_label(props), merge.detail)
    if merge.status == "widened":
        log.warning("%s: written with onConflict=widen, which widened: %s", _policy_label(props), merge.detail)
    written_at = _written_at(seen, after, parts) if parts else _moment((olds or {}).get("writtenAt"))
    return _outputs(props, status, added, merge.detail, _settled(props, olds), written_at)


def _written_at(before: Seen, after: Seen, sent: dict[str, Any]) -> datetime | None:
    """Graph's stamp of our write. When no confirming read showed it (a lag longer than those reads), the instant
    just after the pre-write read's stamp: destroy must still take every pre-write replica for stale
    (docs/part-d.md "Deletes and lag"), never for someone else's removal."""
    if _shows(after.users, sent):
        return after.modified
    return before.modified + timedelta(microseconds=1) if before.modified else datetime.min.replace(tzinfo=UTC)


def _refuse_unjournaled(props: dict[str, Any], merge: Merge) -> None:
    """Write only what the journal recorded before this step: else a killed run could not tell it was ours."""
    intended = _intended(props)
    if merge.write and intended is not None and "intended" in props and not intended.covers(merge.addition):
        raise ExclusionError(
            f"{_policy_label(props)}: the policy changed between this run's listing and its write "
            f"(it now needs {merge.addition.to_json()}); nothing was written, the next run lists it again"
        )


def _outputs(
    props: dict[str, Any],
    status: str,
    addition: Addition,
    detail: str,
    settled: Addition,
    written_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        **{k: props.get(k) for k in ALL_INPUTS},
        "status": status,
        "added": addition.to_json(),
        "detail": detail,
        "settled": settled.to_json(),
        "writtenAt": written_at.isoformat() if written_at else None,
    }


def _observed_status(users: dict[str, Any], props: dict[str, Any]) -> str:
    """What refresh reports: the recorded status while it still holds, `missing` when the exclusion is gone."""
    recorded = props.get("status")
    if _covered(users, props):
        return recorded if recorded in ("excluded", "already-excluded", "widened") else "already-excluded"
    return "conflict" if recorded == "conflict" else "missing"


def _remove(graph: GraphClient, props: dict[str, Any], addition: Addition) -> None:
    """Take out exactly `addition`, from a read that has caught up with our write (bounded re-reads)."""
    with graph.in_a_row():  # the read the removal is built from and the PATCH in consecutive turns
        parts = _removal_written(graph, props, addition)
    if parts:
        after = _confirm(graph, props, parts.before, parts.sent)
        if addition.present_in(after.users) and not _shows(after.users, parts.sent):
            raise ExclusionError(
                f"{_policy_label(props)}: the removal of {addition.to_json()} does not show after "
                f"{CONFIRM_READS} reads; run destroy again"
            )


@dataclass(frozen=True)
class Removal:
    before: Seen  # the read the removal was built from
    sent: dict[str, Any]  # the keys PATCHed


def _removal_written(graph: GraphClient, props: dict[str, Any], addition: Addition) -> Removal | None:
    """Read until the read has caught up with our write, then PATCH the removal; None when nothing to remove."""
    written_at = _moment(props.get("writtenAt"))
    seen = _read(graph, props)
    for _ in range(CONFIRM_READS - 1):
        if addition.present_in(seen.users) or not (_stale(seen, written_at) or written_at is None):
            break
        seen = _read(graph, props)
    present = addition.present_in(seen.users)
    if not present:
        if _stale(seen, written_at):
            raise ExclusionError(
                f"{_policy_label(props)}: after {CONFIRM_READS} reads Graph still shows the policy as it was before "
                "this project's write (replication lag); nothing was removed, run destroy again"
            )
        log.warning(
            "%s: the exclusion this project added (%s) is no longer in the policy (removed by someone else, or by "
            "an interrupted destroy): nothing to remove",
            _policy_label(props),
            addition.to_json(),
        )
        return None
    users, changed = remove_addition(seen.users, addition)
    if not changed:
        return None
    parts = changed_parts(seen.users, users)
    _write(graph, props, parts)
    return Removal(seen, parts)


class CaExclusionProvider(ResourceProvider):
    """Create/update add the exclusion, read reports drift, delete takes out only what was added."""

    def configure(self, req: ConfigureRequest) -> None:
        credentials.remember_secret(SECRET_KEY, req.config.get(SECRET_KEY))
        credentials.remember_secret(CLIENT_ID_KEY, req.config.get(CLIENT_ID_KEY))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # The program's inputs are CaExclusionArgs built from validated config: only their shape is checked here.
        failures = typed.problems(CaExclusionArgs, news)
        account = news.get("serviceAccountUserId")
        if news.get("accessMode") == "direct" and not account and not typed.is_unknown(account):
            failures.append(("serviceAccountUserId", "is required in Direct tenant mode (docs/part-d.md)"))
        return CheckResult(news, [CheckFailure(key, reason) for key, reason in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ALL_INPUTS if olds.get(k) != news.get(k)]
        verdict = _listed(news)
        if verdict is None:
            drifted = olds.get("status") == "missing"
        else:  # the listing needs a write, or the recorded status no longer matches what it shows
            drifted = verdict == "write" or RECORDED_AS.get(str(olds.get("status"))) != verdict
        intended = _intended(news)
        drifted = drifted or (intended is not None and bool(_unsettled(news, olds)))  # a killed run's write
        # A different policy or tenant is a different object: replace rather than edit in place.
        replaces: list[str] = [k for k in ("tenantId", "policyId") if k in changed]
        return DiffResult(changes=bool(changed) or drifted, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props["policyId"], _from_listing(props) or _apply(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        identity_changed = any(olds.get(k) != news.get(k) for k in IDENTITY_INPUTS)
        if identity_changed:
            return UpdateResult(_apply(news, olds, Addition.from_json(olds.get("added"))))
        outputs = _from_listing(news, olds)
        if outputs is None:
            return UpdateResult(_apply(news, olds))
        outputs["added"] = olds.get("added") or outputs["added"]  # still ours to remove on delete
        outputs["writtenAt"] = olds.get("writtenAt")
        return UpdateResult(outputs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as graph:
            try:
                seen = _read(graph, props)
            except GraphError as error:
                if error.status == 404:
                    return ReadResult(None, {})  # the client deleted the policy
                raise ExclusionError(f"{_policy_label(props)}: {error}") from None
        return ReadResult(id_, {**props, "status": _observed_status(seen.users, props)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        addition = Addition.from_json(props.get("added"))
        if not addition:
            return  # nothing of ours is in the policy
        with _client(props) as graph:
            try:
                _remove(graph, props, addition)
            except GraphError as error:
                if error.status == 404:
                    return  # a policy that no longer exists: nothing to remove
                raise ExclusionError(f"{_policy_label(props)}: {error}") from None


class CaExclusion(Resource, module="cipp", name="CaExclusion"):
    """Keeps the MSP excluded from one client CA policy (Part D)."""

    status: pulumi.Output[str]
    added: pulumi.Output[dict[str, Any]]
    detail: pulumi.Output[str]

    def __init__(self, name: str, args: CaExclusionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        outputs = {"status": None, "added": None, "detail": None, "settled": None, "writtenAt": None}
        super().__init__(CaExclusionProvider(), name, {**typed.to_props(args), **outputs}, opts)


class ExclusionJournalProvider(ResourceProvider):
    """No request at all: the engine records this resource's outputs before any CaExclusion writes.

    `intents` (this run's listing: every policy in scope, with what it needs added, often nothing) is merged into
    `entries`, which keeps every intent of a policy while the policy is in scope. A run killed between a PATCH and the
    engine's record of it leaves the intent here, so the next run recognises that exclusion as ours
    (docs/part-d.md "A killed run")."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = typed.problems(ExclusionJournalArgs, news)
        return CheckResult(news, [CheckFailure(key, reason) for key, reason in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["tenantId"] if olds.get("tenantId") != news.get("tenantId") else []
        changed = bool(replaces) or journal_entries(olds.get("entries"), news) != (olds.get("entries") or {})
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(str(props["tenantId"]), {**props, "entries": journal_entries(None, props)})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**news, "entries": journal_entries(olds.get("entries"), news)})


def journal_entries(recorded: Any, props: dict[str, Any]) -> dict[str, Any]:
    """Every recorded intent of a policy still in scope, with this run's intents added."""
    recorded = recorded if isinstance(recorded, dict) else {}
    entries: dict[str, Any] = {}
    for policy_id, intent in (props.get("intents") or {}).items():
        kept = Addition.from_json(recorded.get(policy_id)).union(Addition.from_json(intent))
        if kept:
            entries[policy_id] = kept.to_json()
    return entries


class ExclusionJournal(Resource, module="cipp", name="ExclusionJournal"):
    """What this stack set out to add to each client policy, recorded before any write (Part D)."""

    entries: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: ExclusionJournalArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ExclusionJournalProvider(), name, {**typed.to_props(args), "entries": None}, opts)
