"""Part D: a dynamic resource that keeps the MSP excluded from one client-owned CA policy.

The client owns the policy; this resource only adds the MSP exclusion to it (GDAP: service-provider
users of the MSP tenant; direct tenant mode: the CIPP service account) and, on delete, removes exactly
what it added. Merge rules live in cipp_hardening.exclusion (pure); this module is the thin shell
that reads and writes Graph v1.0 through dynamic_providers.graph_client.

Cost (Conditional Access allows 1 request/s per tenant, docs/part-d.md): the program lists the tenant's
policies once per run and hands each resource the listing's verdict (`listed`). A policy the listing shows
covered or in conflict costs no request at all, at create and at update; one that needs the exclusion
costs a fresh GET (Graph has no ETags: the guard against overwriting the client's concurrent edit) and a
PATCH. The listing also carries drift: an exclusion removed in the portal makes `listed` say `write`, so
a plain `pulumi up` (no refresh) shows and repairs it. There is no confirming re-read after a PATCH: the
next run's listing and idempotent merge absorb Graph's replication lag.

The provider object holds no session, lock or token: it is pickled into state by module and class
name (docs/pulumi.md §2.2). Credentials are resolved per call (dynamic_providers.credentials).
"""

from __future__ import annotations

import logging
from typing import Any

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
    cipp_is_excluded,
    exclude_cipp,
    remove_addition,
)
from dynamic_providers import credentials
from dynamic_providers.graph_client import GraphClient, GraphError, pacer_for

log = logging.getLogger(__name__)

POLICIES = "identity/conditionalAccess/policies"
IDENTITY_INPUTS = ("tenantId", "policyId", "accessMode", "mspTenantId", "serviceAccountUserId")
ALL_INPUTS = (*IDENTITY_INPUTS, "graphUrl", "displayName", "onConflict")
SECRET_KEY = "cipp-hardening:graphClientSecret"  # noqa: S105 - a config key name
CLIENT_ID_KEY = "cipp-hardening:graphClientId"
RECORDED_AS = {"excluded": "covered", "already-excluded": "covered", "widened": "covered", "conflict": "conflict"}


class ExclusionError(RuntimeError):
    """A readable failure naming the client policy."""


def _client(props: dict[str, Any]) -> GraphClient:
    tenant, graph_url = props["tenantId"], props["graphUrl"]
    client_id = credentials.secret(CLIENT_ID_KEY)

    def token() -> str:
        secret = credentials.secret(SECRET_KEY) if client_id else None
        return credentials.access_token(tenant, f"{graph_url}/.default", client_id=client_id, client_secret=secret)

    return GraphClient(graph_url, tenant, token, pacer=pacer_for(graph_url, tenant, after_another_process=True))


def _policy_label(props: dict[str, Any]) -> str:
    return f"policy {props.get('displayName') or '?'!r} ({props['policyId']}) in tenant {props['tenantId']}"


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


def _read_users(graph: GraphClient, props: dict[str, Any]) -> dict[str, Any]:
    policy = graph.get(_path(props))
    users: dict[str, Any] = (policy.get("conditions") or {}).get("users") or {}
    return users


def _write_users(graph: GraphClient, props: dict[str, Any], users: dict[str, Any]) -> None:
    """PATCH the whole users object (docs/graph-ca.md §1.3); 204 means Graph took it."""
    graph.patch(_path(props), {"conditions": {"users": users}})


def _listed(props: dict[str, Any]) -> str | None:
    """The program's listing verdict: `write`, `covered` or `conflict`; None without one (older callers)."""
    listed = props.get("listed")
    return str(listed["status"]) if isinstance(listed, dict) and listed.get("status") else None


def _from_listing(props: dict[str, Any]) -> dict[str, Any] | None:
    """Outputs straight from the listing when it shows nothing to write (no request); None otherwise."""
    verdict = _listed(props)
    if verdict == "covered":
        return _outputs(props, "already-excluded", Addition(), "")
    if verdict == "conflict":
        detail = str(props["listed"].get("detail") or "")
        log.warning("%s: not written (onConflict=report): %s", _policy_label(props), detail)
        return _outputs(props, "conflict", Addition(), detail)
    return None


def _apply(props: dict[str, Any], previous: Addition | None = None) -> dict[str, Any]:
    """Fresh GET, merge, PATCH only when needed. Returns the resource outputs."""
    with _client(props) as graph:
        try:
            users = _read_users(graph, props)
            if previous:
                users, _ = remove_addition(users, previous)
            merge = _merge(users, props)
            if merge.write or previous:
                _write_users(graph, props, merge.users)
        except GraphError as error:
            raise ExclusionError(f"{_policy_label(props)}: {error}") from None
    if merge.status == "conflict":
        log.warning("%s: not written (onConflict=report): %s", _policy_label(props), merge.detail)
    if merge.status == "widened":
        log.warning("%s: written with onConflict=widen, which widened: %s", _policy_label(props), merge.detail)
    return _outputs(props, merge.status, merge.addition if merge.write else Addition(), merge.detail)


def _outputs(props: dict[str, Any], status: str, addition: Addition, detail: str) -> dict[str, Any]:
    return {
        **{k: props.get(k) for k in ALL_INPUTS},
        "status": status,
        "added": addition.to_json(),
        "detail": detail,
    }


def _observed_status(users: dict[str, Any], props: dict[str, Any]) -> str:
    """What refresh reports: the recorded status while it still holds, `missing` when the exclusion is gone."""
    recorded = props.get("status")
    if _covered(users, props):
        return recorded if recorded in ("excluded", "already-excluded", "widened") else "already-excluded"
    return "conflict" if recorded == "conflict" else "missing"


class CaExclusionProvider(ResourceProvider):
    """Create/update add the exclusion, read reports drift, delete takes out only what was added."""

    def configure(self, req: ConfigureRequest) -> None:
        credentials.remember_secret(SECRET_KEY, req.config.get(SECRET_KEY))
        credentials.remember_secret(CLIENT_ID_KEY, req.config.get(CLIENT_ID_KEY))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(key, f"{key} is required") for key in IDENTITY_INPUTS[:4] if not news.get(key)]
        if news.get("accessMode") not in ("gdap", "direct"):
            failures.append(CheckFailure("accessMode", "must be gdap or direct"))
        if news.get("accessMode") == "direct" and not news.get("serviceAccountUserId"):
            failures.append(CheckFailure("serviceAccountUserId", "is required in direct tenant mode"))
        if news.get("onConflict", "report") not in ("report", "widen"):
            failures.append(CheckFailure("onConflict", "must be report or widen"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ALL_INPUTS if olds.get(k) != news.get(k)]
        verdict = _listed(news)
        if verdict is None:
            drifted = olds.get("status") == "missing"
        else:  # the listing needs a write, or the recorded status no longer matches what it shows
            drifted = verdict == "write" or RECORDED_AS.get(str(olds.get("status"))) != verdict
        # A different policy or tenant is a different object: replace rather than edit in place.
        replaces: list[str] = [k for k in ("tenantId", "policyId") if k in changed]
        return DiffResult(changes=bool(changed) or drifted, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props["policyId"], _from_listing(props) or _apply(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        identity_changed = any(olds.get(k) != news.get(k) for k in IDENTITY_INPUTS)
        previous = Addition.from_json(olds.get("added")) if identity_changed else None
        outputs = (None if identity_changed else _from_listing(news)) or _apply(news, previous)
        if not identity_changed and olds.get("added") and outputs["status"] == "already-excluded":
            outputs["added"] = olds["added"]  # still ours to remove on delete
        return UpdateResult(outputs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as graph:
            try:
                users = _read_users(graph, props)
            except GraphError as error:
                if error.status == 404:
                    return ReadResult(None, {})  # the client deleted the policy
                raise ExclusionError(f"{_policy_label(props)}: {error}") from None
        return ReadResult(id_, {**props, "status": _observed_status(users, props)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        addition = Addition.from_json(props.get("added"))
        if not addition:
            return  # nothing of ours is in the policy
        with _client(props) as graph:
            try:
                users, changed = remove_addition(_read_users(graph, props), addition)
                if changed:
                    _write_users(graph, props, users)
            except GraphError as error:
                if error.status == 404:
                    return  # a policy that no longer exists: nothing to remove
                raise ExclusionError(f"{_policy_label(props)}: {error}") from None


class CaExclusion(Resource, module="cipp", name="CaExclusion"):
    """Keeps the MSP excluded from one client CA policy (Part D)."""

    status: pulumi.Output[str]
    added: pulumi.Output[dict[str, Any]]
    detail: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CaExclusionProvider(), name, {**props, "status": None, "added": None, "detail": None}, opts)
