"""Part C: a dynamic resource that holds one CIPP-API client's allowed IP ranges at the declared list.

The client itself (app registration, role, secret, enabled) belongs to CIPP; this resource changes only
its `IPRange`, through CIPP's own API as the configured *manager* client (docs/cipp-api.md §8, §13).
Each write lists the client immediately before AddUpdate and sends back only what that read showed
(Role, Enabled, MCPAllowed; a field it does not show is a refusal, cipp_hardening.cipp_api.add_update_body),
then re-reads and confirms every field, not only the ranges (docs/part-c.md "What a write sends back"). A client
already at its ranges gets no AddUpdate: for an MCP client every AddUpdate re-runs CIPP's MCP set-up
on its app registration. A client stored as "[]" refuses every address (docs/part-c.md): that is
recorded as ["None"], never as Any.
CIPP enforces the ranges on every request from its table, so no SaveToAzure is needed (§1, §6).

The provider object holds no session, lock or token: it is pickled into state by module and class
name (docs/pulumi.md §2.2). The manager's secret comes from `configure()` (stack secret
cippApiManagerSecret) or CIPP_API_MANAGER_SECRET, and the token is fetched per call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

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

from cipp_hardening.cipp_api import (
    INPUT_KEYS,
    Client,
    UnknownField,
    add_update_body,
    delete_plan,
    describe_ranges,
    find_client,
    is_self_update,
    ranges_of,
    self_update_refusal,
    unconfirmed_fields,
)
from dynamic_providers import props as typed
from service_clients import credentials
from service_clients.cipp_client import CippAccessDenied, CippClient, CippError

log = logging.getLogger(__name__)

SECRET_KEY = "cipp-hardening:cippApiManagerSecret"  # noqa: S105 - a config key name
SECRET_ENV = "CIPP_API_MANAGER_SECRET"  # noqa: S105 - an environment variable name
OUTPUT_KEYS = ("appName", "adoptedRanges", "currentRanges")
IDENTITY_KEYS = ("url", "clientId")  # another CIPP instance or another client is another object


class CippApiClientRangesError(RuntimeError):
    """A readable failure naming the CIPP-API client."""


@dataclass(frozen=True)
class CippApiClientRangesArgs:
    """The props of one CippApiClientRanges (dynamic_providers/props.py): components/cipp_api_allowlists.py builds
    them from validated config (ranges in CIPP's spelling, ids lower case, allowSelfUpdate already required for
    the manager itself); the provider reads them back from state."""

    url: str  # CIPP's Function App
    tenant_id: str  # the tenant of the manager client's app registration
    manager_client_id: str  # the client that calls ExecApiClient
    client_id: str  # the client whose ranges this resource holds
    allowed_ranges: tuple[str, ...]  # CIPP's spelling; () is Any
    allow_self_update: bool = False
    restore_on_delete: bool = False
    allow_any_on_delete: bool = False
    mcp_allowed: bool | None = None  # stated MCPAllowed, only where CIPP's List omits it

    PROPS: ClassVar[dict[str, str]] = {  # field → prop name in state (cipp_api.INPUT_KEYS)
        "url": "url",
        "tenant_id": "tenantId",
        "manager_client_id": "managerClientId",
        "client_id": "clientId",
        "allowed_ranges": "allowedRanges",
        "allow_self_update": "allowSelfUpdate",
        "restore_on_delete": "restoreOnDelete",
        "allow_any_on_delete": "allowAnyOnDelete",
        "mcp_allowed": "mcpAllowed",
    }


def _args(props: dict[str, Any]) -> CippApiClientRangesArgs:
    """The props as the engine hands them (from state, too), typed; a prop that does not fit is named."""
    try:
        return typed.decode(CippApiClientRangesArgs, props)
    except ValueError as error:
        raise CippApiClientRangesError(f"{_label(props)}: the resource's props do not fit: {error}") from None


def _client(props: dict[str, Any]) -> CippClient:
    args = _args(props)
    manager, tenant = args.manager_client_id, args.tenant_id

    def token() -> str:
        secret = credentials.secret(SECRET_KEY, SECRET_ENV)
        if not secret:
            raise CippApiClientRangesError(
                f"no secret for the CIPP-API manager client {manager}: set it with "
                "`pulumi config set --secret cippApiManagerSecret` or the CIPP_API_MANAGER_SECRET variable"
            )
        return credentials.access_token(tenant, f"api://{manager}/.default", client_id=manager, client_secret=secret)

    return CippClient(args.url, token, manager_client_id=manager)


def _label(props: dict[str, Any]) -> str:
    return f"CIPP-API client {props.get('clientId')} at {props.get('url')}"


def _require_client(cipp: CippClient, props: dict[str, Any]) -> Client:
    return _found(cipp.list_clients(), props)


def _found(clients: list[Client], props: dict[str, Any]) -> Client:
    client = find_client(clients, props["clientId"])
    if client is None:
        known = ", ".join(str(c["ClientId"]) for c in clients) or "none"
        raise CippApiClientRangesError(
            f"{_label(props)} does not exist in CIPP (Integrations > CIPP-API lists: {known}); "
            "check cippApi.clients[].clientId (the application id of the API client)"
        )
    return client


def _write_ranges(cipp: CippClient, props: dict[str, Any], ranges: list[str]) -> Client:
    """Read, AddUpdate at once with what that read showed, then re-read and confirm every field (§13)."""
    refusal = self_update_refusal(props)
    if refusal:
        raise CippApiClientRangesError(f"{_label(props)}: {refusal}")

    def body_for(clients: list[Client]) -> dict[str, Any]:
        try:
            return add_update_body(_found(clients, props), ranges, props.get("mcpAllowed"))
        except UnknownField as unknown:
            raise CippApiClientRangesError(f"{_label(props)}: {unknown}") from None

    sent, result = cipp.list_then_add_update(body_for)
    try:
        stored = _require_client(cipp, props)
    except CippAccessDenied as denied:
        if is_self_update(props):
            raise CippApiClientRangesError(
                f"{_label(props)}: the manager client's own ranges are now {describe_ranges(ranges)} and CIPP "
                f"refuses it from this machine: it locked itself out. Fix its ranges in the CIPP UI. ({denied})"
            ) from None
        raise
    if ranges_of(stored) != ranges:
        raise CippApiClientRangesError(
            f"{_label(props)}: CIPP accepted the change but shows {describe_ranges(ranges_of(stored))} "
            f"instead of {describe_ranges(ranges)}" + "".join(f"; {warning}" for warning in result.mcp_warnings)
        )
    if differing := unconfirmed_fields(sent, stored):
        raise CippApiClientRangesError(
            f"{_label(props)}: ranges saved and confirmed, but CIPP now shows {'; '.join(differing)}: someone "
            "changed the client right after this write, or CIPP did not keep what was sent. Check it in "
            'CIPP > Integrations > CIPP-API (docs/part-c.md "What a write sends back")'
        )
    for warning in result.mcp_warnings:
        # Saved and confirmed through List; only the MCP app set-up behind it failed (§2.2 step 5).
        log.warning(
            "%s: ranges saved and confirmed, but CIPP's MCP app set-up then failed (the client's MCP connectors "
            "may not work until it is repaired in CIPP): %s",
            _label(props),
            warning,
        )
    return stored


def _apply(props: dict[str, Any], adopted: list[str] | None) -> dict[str, Any]:
    """Read, write only when the ranges differ, confirm. Returns the full outputs."""
    wanted = list(_args(props).allowed_ranges)
    with _client(props) as cipp:
        try:
            client = _require_client(cipp, props)
            found = ranges_of(client)
            if found != wanted:
                client = _write_ranges(cipp, props, wanted)
        except CippError as error:
            raise CippApiClientRangesError(f"{_label(props)}: {error}") from None
    return _outputs(props, client, found if adopted is None else adopted)


def _outputs(props: dict[str, Any], client: Client, adopted: list[str]) -> dict[str, Any]:
    return {
        **{key: props.get(key) for key in INPUT_KEYS if key in props},
        "appName": str(client.get("AppName") or ""),
        "adoptedRanges": list(adopted),
        "currentRanges": ranges_of(client),
    }


def _observed_inputs(props: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as CIPP holds them now: what the CLI compares the declared inputs with when it shows an
    update, so a portal edit found by refresh shows as `~ allowedRanges` (docs/part-c.md). pulumi.dynamic's
    Diff passes no changed keys or detailed diff to the engine (pulumi/dynamic/__main__.py, Diff), so this
    is the only way to mark the field. Nothing writes these back: update applies the declared inputs."""
    return {**{key: props[key] for key in INPUT_KEYS if key in props}, "allowedRanges": outputs["currentRanges"]}


def _warn_about_delete(outputs: dict[str, Any]) -> None:
    plan = delete_plan(outputs)
    if plan.action == "refuse":
        log.warning("%s: the ranges found at adoption were Any; destroy will refuse to restore them", _label(outputs))


class CippApiClientRangesProvider(ResourceProvider):
    """Create/update set the ranges, read reports drift, delete leaves or restores (never widens by default)."""

    def configure(self, req: ConfigureRequest) -> None:
        credentials.remember_secret(SECRET_KEY, req.config.get(SECRET_KEY))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # The program's inputs are CippApiClientRangesArgs built from validated config: only their shape is checked
        # here. A write still refuses the manager's own ranges without allowSelfUpdate (_write_ranges).
        failures = typed.problems(CippApiClientRangesArgs, news)
        return CheckResult(news, [CheckFailure(key, reason) for key, reason in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in INPUT_KEYS if olds.get(key) != news.get(key)]
        # Local only: refresh stored what CIPP shows in currentRanges; a UI edit shows up here.
        drifted = "currentRanges" in olds and olds["currentRanges"] != olds.get("allowedRanges")
        replaces = [key for key in IDENTITY_KEYS if key in changed]
        return DiffResult(changes=bool(changed) or drifted, replaces=replaces, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outputs = _apply(props, adopted=None)
        _warn_about_delete(outputs)
        return CreateResult(props["clientId"], outputs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        adopted = olds.get("adoptedRanges")
        outputs = _apply(news, adopted=list(adopted) if isinstance(adopted, list) else None)
        _warn_about_delete(outputs)
        return UpdateResult(outputs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as cipp:
            try:
                client = find_client(cipp.list_clients(), props["clientId"])
            except CippError as error:
                raise CippApiClientRangesError(f"{_label(props)}: {error}") from None
        if client is None:
            return ReadResult(None, {})  # the client was deleted in CIPP
        adopted = props.get("adoptedRanges")
        outputs = _outputs(props, client, list(adopted) if isinstance(adopted, list) else [])
        return ReadResult(id_, outputs, _observed_inputs(props, outputs))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        plan = delete_plan(props)
        if plan.action == "refuse":
            raise CippApiClientRangesError(plan.reason)
        if plan.action == "leave":
            log.warning("%s", plan.reason)
            return
        with _client(props) as cipp:
            try:
                client = find_client(cipp.list_clients(), props["clientId"])
                if client is None:
                    log.warning("%s: gone from CIPP; nothing to restore", _label(props))
                    return
                if ranges_of(client) != list(plan.ranges):
                    _write_ranges(cipp, props, list(plan.ranges))
            except CippError as error:
                raise CippApiClientRangesError(f"{_label(props)}: {error}") from None
        log.warning("%s", plan.reason)


class CippApiClientRanges(Resource, module="cipp", name="CippApiClientRanges"):
    """Holds one CIPP-API client's allowed IP ranges (Part C)."""

    appName: pulumi.Output[str]
    adoptedRanges: pulumi.Output[list[str]]
    currentRanges: pulumi.Output[list[str]]

    def __init__(self, name: str, args: CippApiClientRangesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        outputs: dict[str, Any] = dict.fromkeys(OUTPUT_KEYS)
        super().__init__(CippApiClientRangesProvider(), name, {**typed.to_props(args), **outputs}, opts)
