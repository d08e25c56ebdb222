"""CIPP's own allow-list for technicians: a dynamic resource holding one CIPP role's IP ranges.

The role itself (permissions, allowed and blocked tenants, blocked endpoints, Entra group) belongs to CIPP;
this resource changes only its ranges, through `ExecCustomRole` as a CIPP-API client with
CIPP.SuperAdmin.ReadWrite (docs/custom-roles.md). AddUpdate replaces every field of the role from its
body, so each write lists the roles immediately before AddUpdate and sends back exactly what that read
showed (cipp_hardening.custom_roles.add_update_body refuses a read it does not understand, naming the
role), then reads again and confirms every field. A role already at its ranges gets no write.

Delete puts back the ranges found at adoption (restoreOnDelete, the default), or leaves them
(restoreOnDelete: false); it never removes every range of a role unless allowOpenOnDelete says so.

The provider object holds no session, lock or token: it is pickled into state by module and class
name (docs/pulumi.md §2.2); keep both names.
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

from cipp_hardening.custom_roles import (
    Role,
    UnknownRoleShape,
    add_update_body,
    delete_plan,
    entra_group,
    find_role,
    is_built_in,
    ranges_of,
    unconfirmed_fields,
)
from dynamic_providers import props as typed
from service_clients import credentials
from service_clients.cipp_client import CippAccessDenied, CippClient, CippError

log = logging.getLogger(__name__)

MANAGER_SECRET_KEY = "cipp-hardening:cippApiManagerSecret"  # noqa: S105 - a config key name
MANAGER_SECRET_ENV = "CIPP_API_MANAGER_SECRET"  # noqa: S105 - an environment variable name
ROLES_SECRET_KEY = "cipp-hardening:cippApiRolesSecret"  # noqa: S105 - a config key name
ROLES_SECRET_ENV = "CIPP_API_ROLES_SECRET"  # noqa: S105 - an environment variable name

INPUT_KEYS = (
    "url",
    "tenantId",
    "managerClientId",
    "clientId",  # the client that calls ExecCustomRole: cippApi.rolesClientId, or the manager
    "name",
    "allowedRanges",
    "restoreOnDelete",
    "allowOpenOnDelete",
)
OUTPUT_KEYS = ("adoptedRanges", "currentRanges", "builtIn", "entraGroupId")
IDENTITY_KEYS = ("url", "name")  # another CIPP instance or another role is another object


class CippCustomRoleRangesError(RuntimeError):
    """A readable failure naming the CIPP role."""


@dataclass(frozen=True)
class CippCustomRoleRangesArgs:
    """The props of one CippCustomRoleRanges (dynamic_providers/props.py): components/cipp_custom_roles.py builds
    them from validated config (the name lower case and never superadmin, the ranges in a spelling ExecCustomRole
    keeps); the provider reads them back from state."""

    url: str  # CIPP's Function App
    tenant_id: str  # the tenant of the calling client's app registration
    manager_client_id: str
    client_id: str  # the client that calls ExecCustomRole: cippApi.rolesClientId, or the manager
    name: str  # the role, as CIPP stores it (lower case)
    allowed_ranges: tuple[str, ...]
    restore_on_delete: bool = True
    allow_open_on_delete: bool = False

    PROPS: ClassVar[dict[str, str]] = {  # field → prop name in state (INPUT_KEYS)
        "url": "url",
        "tenant_id": "tenantId",
        "manager_client_id": "managerClientId",
        "client_id": "clientId",
        "name": "name",
        "allowed_ranges": "allowedRanges",
        "restore_on_delete": "restoreOnDelete",
        "allow_open_on_delete": "allowOpenOnDelete",
    }


def _args(props: dict[str, Any]) -> CippCustomRoleRangesArgs:
    """The props as the engine hands them (from state, too), typed; a prop that does not fit is named."""
    try:
        return typed.decode(CippCustomRoleRangesArgs, props)
    except ValueError as error:
        raise CippCustomRoleRangesError(f"{_label(props)}: the resource's props do not fit: {error}") from None


def _label(props: dict[str, Any]) -> str:
    return f"CIPP role {props.get('name')} at {props.get('url')}"


def _secret_source(props: dict[str, Any]) -> tuple[str, str, str]:
    if str(props["clientId"]).lower() == str(props["managerClientId"]).lower():
        return MANAGER_SECRET_KEY, MANAGER_SECRET_ENV, "cippApiManagerSecret"
    return ROLES_SECRET_KEY, ROLES_SECRET_ENV, "cippApiRolesSecret"


def _client(props: dict[str, Any]) -> CippClient:
    args = _args(props)
    client_id, tenant = args.client_id, args.tenant_id
    key, env, config_key = _secret_source(props)

    def token() -> str:
        secret = credentials.secret(key, env)
        if not secret:
            raise CippCustomRoleRangesError(
                f"no secret for the CIPP-API client {client_id} that manages CIPP's roles: set it with "
                f"`pulumi config set --secret {config_key}` or the {env} variable"
            )
        return credentials.access_token(
            tenant, f"api://{client_id}/.default", client_id=client_id, client_secret=secret
        )

    return CippClient(args.url, token, manager_client_id=client_id)


def _found(roles: list[Role], props: dict[str, Any]) -> Role:
    role = find_role(roles, props["name"])
    if role is None:
        known = ", ".join(str(r.get("RowKey")) for r in roles) or "none (CIPP lists no custom role)"
        raise CippCustomRoleRangesError(
            f"{_label(props)} does not exist in CIPP (Settings > User Roles lists: {known}); create it in CIPP "
            "first: this project holds a role's IP ranges, never the role itself"
        )
    return role


def _denied(props: dict[str, Any], denied: CippAccessDenied) -> CippCustomRoleRangesError:
    return CippCustomRoleRangesError(
        f"{_label(props)}: CIPP refused the CIPP-API client {props.get('clientId')}: ExecCustomRole needs the "
        "superadmin role (CIPP.SuperAdmin.ReadWrite), and the client's own allowed IP ranges must include this "
        f"machine (docs/custom-roles.md). CIPP said: {denied.text[:200]}"
    )


def _write_ranges(cipp: CippClient, props: dict[str, Any], ranges: list[str]) -> Role:
    """Read, AddUpdate at once with what that read showed, then read again and confirm every field."""

    def body_for(roles: list[Role]) -> dict[str, Any]:
        try:
            return add_update_body(_found(roles, props), ranges, open_role=props.get("allowOpenOnDelete") is True)
        except UnknownRoleShape as unknown:
            raise CippCustomRoleRangesError(f"{_label(props)}: {unknown}") from None

    sent, _ = cipp.list_then_add_update_role(body_for)
    stored = _found(cipp.list_roles(), props)
    if ranges_of(stored) != ranges:
        raise CippCustomRoleRangesError(
            f"{_label(props)}: CIPP accepted the change but shows ranges {ranges_of(stored) or 'none'} instead of "
            f"{ranges}"
        )
    if differing := unconfirmed_fields(sent, stored):
        raise CippCustomRoleRangesError(
            f"{_label(props)}: ranges saved and confirmed, but CIPP now shows {'; '.join(differing)}: someone "
            "changed the role right after this write, or CIPP did not keep what was sent. Check it in CIPP > "
            'Settings > User Roles (docs/custom-roles.md "What a write sends back")'
        )
    return stored


def _apply(props: dict[str, Any], adopted: list[str] | None) -> dict[str, Any]:
    wanted = list(_args(props).allowed_ranges)
    with _client(props) as cipp:
        try:
            role = _found(cipp.list_roles(), props)
            found = ranges_of(role)
            if found != wanted:
                role = _write_ranges(cipp, props, wanted)
        except CippAccessDenied as denied:
            raise _denied(props, denied) from None
        except CippError as error:
            raise CippCustomRoleRangesError(f"{_label(props)}: {error}") from None
    return _outputs(props, role, found if adopted is None else adopted)


def _outputs(props: dict[str, Any], role: Role, adopted: list[str]) -> dict[str, Any]:
    group = entra_group(role)
    return {
        **{key: props.get(key) for key in INPUT_KEYS if key in props},
        "adoptedRanges": list(adopted),
        "currentRanges": ranges_of(role),
        "builtIn": is_built_in(role),
        "entraGroupId": str(group.get("value")) if group else None,
    }


class CippCustomRoleRangesProvider(ResourceProvider):
    """Create/update set the role's ranges, read reports drift, delete restores or leaves (never opens)."""

    def configure(self, req: ConfigureRequest) -> None:
        credentials.remember_secret(MANAGER_SECRET_KEY, req.config.get(MANAGER_SECRET_KEY))
        credentials.remember_secret(ROLES_SECRET_KEY, req.config.get(ROLES_SECRET_KEY))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # The program's inputs are CippCustomRoleRangesArgs built from validated config: only their shape is checked.
        failures = typed.problems(CippCustomRoleRangesArgs, news)
        return CheckResult(news, [CheckFailure(key, reason) for key, reason in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in INPUT_KEYS if olds.get(key) != news.get(key)]
        drifted = "currentRanges" in olds and olds["currentRanges"] != olds.get("allowedRanges")
        replaces = [key for key in IDENTITY_KEYS if key in changed]
        return DiffResult(changes=bool(changed) or drifted, replaces=replaces, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outputs = _apply(props, adopted=None)
        _warn_about_delete(outputs)
        return CreateResult(props["name"], outputs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        adopted = olds.get("adoptedRanges")
        outputs = _apply(news, adopted=list(adopted) if isinstance(adopted, list) else None)
        _warn_about_delete(outputs)
        return UpdateResult(outputs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _client(props) as cipp:
            try:
                role = find_role(cipp.list_roles(), props["name"])
            except CippError as error:
                raise CippCustomRoleRangesError(f"{_label(props)}: {error}") from None
        if role is None:
            return ReadResult(None, {})  # the role was deleted in CIPP
        adopted = props.get("adoptedRanges")
        return ReadResult(id_, _outputs(props, role, list(adopted) if isinstance(adopted, list) else []))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        plan = delete_plan(props)
        if plan.action == "refuse":
            raise CippCustomRoleRangesError(plan.reason)
        if plan.action == "leave":
            log.warning("%s", plan.reason)
            return
        with _client(props) as cipp:
            try:
                role = find_role(cipp.list_roles(), props["name"])
                if role is None:
                    log.warning("%s: gone from CIPP; nothing to restore", _label(props))
                    return
                if ranges_of(role) != list(plan.ranges):
                    _write_ranges(cipp, props, list(plan.ranges))
            except CippAccessDenied as denied:
                raise _denied(props, denied) from None
            except CippError as error:
                raise CippCustomRoleRangesError(f"{_label(props)}: {error}") from None
        log.warning("%s", plan.reason)


def _warn_about_delete(outputs: dict[str, Any]) -> None:
    if delete_plan(outputs).action == "refuse":
        log.warning("%s: it had no ranges when adopted; destroy will refuse to remove them all", _label(outputs))


class CippCustomRoleRanges(Resource, module="cipp", name="CippCustomRoleRanges"):
    """Holds one CIPP role's IP ranges (docs/custom-roles.md)."""

    adoptedRanges: pulumi.Output[list[str]]
    currentRanges: pulumi.Output[list[str]]
    builtIn: pulumi.Output[bool]
    entraGroupId: pulumi.Output[str | None]

    def __init__(self, name: str, args: CippCustomRoleRangesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        outputs: dict[str, Any] = dict.fromkeys(OUTPUT_KEYS)
        super().__init__(CippCustomRoleRangesProvider(), name, {**typed.to_props(args), **outputs}, opts)
