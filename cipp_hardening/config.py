"""The stack configuration as typed objects, validated before anything is registered.

`parse_stack_config` takes the stack's config (namespace-stripped keys, objects already decoded)
and returns an `MspStack` or a `ClientStack`, or raises `ConfigError` listing every problem, each
naming the exact key (`technicianAccess.breakGlassUserIds[1]`). Stdlib only: the plan tool, the
onboarding command and the program all share it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from cipp_hardening.cidr import (
    ENTRA_MAX_RANGES,
    RangeError,
    broad_range_note,
    cipp_range,
    dedupe,
    entra_range,
    parse_network,
)
from cipp_hardening.custom_roles import SUPERADMIN, accepted_by_cipp

PROJECT = "cipp-hardening"
# The one spelling that opens a CIPP-API client to every address: `allowedRanges: [Any]`, as CIPP's List
# shows such a client (docs/configuration.md). A missing or empty list is an error, never Any.
ANY_ADDRESS = "Any"

DEFAULT_LOCATION_NAME = "Trusted - MSP Office"
DEFAULT_TECHNICIAN_POLICY_NAME = "Block CIPP Access - Outside Trusted IPs"
DEFAULT_SERVICE_ACCOUNT_POLICY_NAME = "CIPP Service Account Conditional Access Policy"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com"

# Config spelling → Graph `state` (docs/graph-ca.md §2.2).
POLICY_STATES = {
    "reportOnly": "enabledForReportingButNotEnforced",
    "enabled": "enabled",
    "disabled": "disabled",
}
GRAPH_STATES = frozenset(POLICY_STATES.values())

# The one GUID pattern of the project (any case): config keys, CIPP client and tenant ids, the evaluator's
# placeholder test all use it.
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Hex digits and dashes only, GUID-long: a GUID with a typo, never a name worth looking up.
_GUID_LIKE = re.compile(r"^[0-9a-fA-F-]{30,40}$")
_UPN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The example stacks' ids: GUIDs no tenant hands out, replaced before going live.
PLACEHOLDER_PREFIX = "00000000-0000-0000-0000-"

SECRET_KEYS = frozenset({"cippApiManagerSecret", "cippApiRolesSecret", "graphClientSecret"})

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{PROJECT}:{self.key}: {self.message}" if ":" not in self.key else f"{self.key}: {self.message}"


class ConfigError(ValueError):
    """Every problem found in the stack configuration, each naming its key."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid stack configuration ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class TrustedLocation:
    display_name: str
    cidrs: tuple[str, ...]


@dataclass(frozen=True)
class TechnicianAccess:
    display_name: str
    include_group_ids: tuple[str, ...]
    include_user_ids: tuple[str, ...]
    break_glass_user_ids: tuple[str, ...]
    break_glass_group_ids: tuple[str, ...]
    target: Literal["allCloudApps", "cippApp"]
    cipp_app_id: str | None
    state: str  # Graph spelling
    operator_check_ip: str | None = None  # the public address operators use now (lockout guard)
    promoted_after: Mapping[str, Any] | None = None  # evidence recorded by `make promote` (_promotion_record)
    lockout_guard_override: str | None = None  # why the lockout guard is waived for this change

    @property
    def applications(self) -> tuple[str, ...]:
        return ("All",) if self.target == "allCloudApps" else (str(self.cipp_app_id),)


@dataclass(frozen=True)
class ServiceAccount:
    display_name: str
    user_id: str
    state: str  # Graph spelling


@dataclass(frozen=True)
class CippApiClient:
    client_id: str
    allowed_ranges: tuple[str, ...]  # CIPP canonical spelling; empty only for the explicit [Any]
    allow_self_update: bool = False
    restore_on_delete: bool = False
    allow_any_on_delete: bool = False
    mcp_allowed: bool | None = None  # stated MCPAllowed, for CIPP versions whose List omits it


DEFAULT_WORKLOAD_IDENTITY_PREFIX = "CIPP-API client"


@dataclass(frozen=True)
class WorkloadIdentityClient:
    """One managed CIPP-API client held to its ranges by Entra (docs/workload-identity.md)."""

    client_id: str  # the application (client) id; the policy needs its service principal's object id
    cidrs: tuple[str, ...]  # its allowedRanges in Entra's canonical named-location form
    config_key: str  # cippApi.clients[i], for messages


@dataclass(frozen=True)
class WorkloadIdentityPolicies:
    """cippApi.workloadIdentityPolicies: one named location and one CA policy per client with ranges."""

    state: str  # Graph spelling
    display_name_prefix: str
    clients: tuple[WorkloadIdentityClient, ...]
    operator_check_ip: str | None = None  # where `pulumi up` runs as the manager client (lockout guard)
    lockout_guard_override: str | None = None

    def location_name(self, client_id: str) -> str:
        return f"{self.display_name_prefix} {client_id} - allowed ranges"

    def policy_name(self, client_id: str) -> str:
        return f"{self.display_name_prefix} {client_id} - block outside allowed ranges"


@dataclass(frozen=True)
class CippCustomRole:
    """cippApi.customRoles[i]: one CIPP role held to IP ranges by CIPP itself (docs/custom-roles.md)."""

    name: str  # as CIPP stores it: lower case (ExecCustomRole lower-cases the RowKey)
    allowed_ranges: tuple[str, ...]  # CIPP canonical spelling, never empty
    held_by_operator: bool = False  # the operator signs in to CIPP with this role: the lockout guard applies
    restore_on_delete: bool = True  # destroy puts back the ranges found (never opens: allowOpenOnDelete)
    allow_open_on_delete: bool = False
    lockout_guard_override: str | None = None


@dataclass(frozen=True)
class CippApi:
    url: str
    tenant_id: str
    manager_client_id: str
    clients: tuple[CippApiClient, ...]
    unrestricted_clients: Literal["fail", "warn"] = "warn"
    workload_identity: WorkloadIdentityPolicies | None = None  # off when the section is absent
    custom_roles: tuple[CippCustomRole, ...] = ()
    roles_client_id: str | None = None  # the CIPP.SuperAdmin.ReadWrite client; None: the manager client

    @property
    def custom_roles_client_id(self) -> str:
        return self.roles_client_id or self.manager_client_id


@dataclass(frozen=True)
class Assumptions:
    """What Graph v1.0 cannot tell, stated by the operator (docs/assurance.md "Stated assumptions")."""

    legacy_mfa_trusted_ips: tuple[str, ...] | None = None  # the tenant's legacy MFA trusted IPs; None: not stated
    cannot_prove_override: str | None = None  # why guard rows that cannot be proven are accepted anyway


@dataclass(frozen=True)
class DirectoryName:
    """A config value that is a name, not an object id: looked up read-only at plan/preview time.

    Users by user principal name, groups by display name (docs/commands.md "Names as well as ids").
    `tenant` says where: the MSP tenant, or (clientTenant.serviceAccountUserId) the client tenant.
    """

    key: str  # the config key, e.g. technicianAccess.includeGroupIds[0]
    kind: Literal["user", "group"]
    name: str  # a UPN (users) or a display name (groups)
    tenant: Literal["msp", "client"] = "msp"


@dataclass(frozen=True)
class BreakGlassAlerts:
    """breakGlassAlerts: Entra sign-in logs to a workspace and an alert on every break-glass sign-in
    (docs/break-glass-alerts.md). The accounts are technicianAccess.breakGlassUserIds."""

    workspace_resource_id: str  # an existing Log Analytics workspace
    resource_group_name: str  # where the alert rule and action group go; default the workspace's
    location: str  # the workspace's region: a log alert rule lives beside its scope
    emails: tuple[str, ...]
    action_group_short_name: str
    diagnostic_setting_name: str
    severity: int


@dataclass(frozen=True)
class MspStack:
    tenant_id: str
    trusted_location: TrustedLocation
    technician_access: TechnicianAccess
    service_account: ServiceAccount
    cipp_api: CippApi | None = None
    graph_url: str = DEFAULT_GRAPH_URL
    warnings: tuple[str, ...] = ()
    mode: Literal["msp"] = "msp"
    scenarios_file: str | None = None  # extra what-if scenarios (YAML), relative to the project
    assumptions: Assumptions = Assumptions()
    names: tuple[DirectoryName, ...] = ()  # values given as names, still to resolve (resolve_names)
    # Existing objects to take over (`cipp-hardening adopt`): trustedLocation/technicianAccess/serviceAccount → id.
    adopt: Mapping[str, str] = field(default_factory=dict)
    break_glass_alerts: BreakGlassAlerts | None = None


@dataclass(frozen=True)
class ClientTenant:
    tenant_id: str
    msp_tenant_id: str
    access_mode: Literal["gdap", "direct"]
    service_account_user_id: str | None
    include_states: tuple[str, ...]
    skip_policy_ids: tuple[str, ...]
    on_conflict: Literal["report", "widen"]


@dataclass(frozen=True)
class ClientStack:
    client_tenant: ClientTenant
    graph_url: str = DEFAULT_GRAPH_URL
    graph_client_id: str | None = None  # with the secret key graphClientSecret; else env / OIDC / CLI
    warnings: tuple[str, ...] = ()
    mode: Literal["client"] = "client"
    scenarios_file: str | None = None  # extra what-if scenarios (YAML), relative to the project
    assumptions: Assumptions = Assumptions()
    names: tuple[DirectoryName, ...] = ()  # values given as names, still to resolve (resolve_names)


StackConfig = MspStack | ClientStack

_MSP_KEYS = {
    "mode",
    "trustedLocation",
    "technicianAccess",
    "serviceAccount",
    "cippApi",
    "cippApiManagerSecret",
    "cippApiRolesSecret",
    "graphUrl",
    "scenariosFile",
    "assumptions",
    "offlineSnapshot",
    "adopt",
    "breakGlassAlerts",
}
_CLIENT_KEYS = {
    "mode",
    "clientTenant",
    "graphUrl",
    "graphClientId",
    "graphClientSecret",
    "scenariosFile",
    "assumptions",
    "offlineSnapshot",
}
# pulumi-azuread's own provider config (its sign-in at Configure); our code reads only azuread:tenantId.
_FOREIGN_ALLOWED = {
    "azuread:tenantId",
    "azuread:clientId",
    "azuread:clientSecret",
    "azuread:useOidc",
    "azuread:useCli",
    "azuread:environment",
}
# Provider config that holds a secret: never validated or shown, like SECRET_KEYS.
FOREIGN_SECRET_KEYS = frozenset({"azuread:clientSecret"})


@dataclass
class _Reader:
    """Walks one config object, remembering the key path and every problem found on the way."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    names: list[DirectoryName] = field(default_factory=list)

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def obj(self, value: Any, key: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object with keys {sorted(allowed)}, got {type(value).__name__}")
            return {}
        for unknown in sorted(set(value) - allowed):
            hint = _closest(unknown, allowed)
            self.fail(f"{key}.{unknown}", "unknown key" + (f" (did you mean {hint}?)" if hint else ""))
        return value

    def text(self, obj: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = obj.get(key, default)
        if value is None:
            self.fail(f"{path}.{key}", "is required")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{path}.{key}", "must be a non-empty string")
            return ""
        return value.strip()

    def flag(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        value = obj.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", f"must be true or false, got {value!r}")
            return False
        return value

    def choice(self, obj: Mapping[str, Any], key: str, path: str, options: Sequence[str], default: str) -> str:
        value = obj.get(key, default)
        if value not in options:
            self.fail(f"{path}.{key}", f"must be one of {', '.join(options)}; got {value!r}")
            return default
        return str(value)

    def guid(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not GUID.match(value.strip()):
            self.fail(key, f"must be a GUID like 00000000-0000-0000-0000-000000000000, got {value!r}")
            return ""
        return value.strip().lower()

    def guid_field(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> str | None:
        if obj.get(key) is None:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return None
        return self.guid(obj[key], f"{path}.{key}")

    def items(self, obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{path}.{key}", f"must be a list, got {type(value).__name__}")
            return []
        return value

    def guids(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        found = [self.guid(item, f"{path}.{key}[{i}]") for i, item in enumerate(self.items(obj, key, path))]
        kept, repeated = dedupe([g for g in found if g])
        for item in repeated:
            self.fail(f"{path}.{key}", f"lists {item} more than once")
        return tuple(kept)

    def ref(
        self, value: Any, key: str, kind: Literal["user", "group"], tenant: Literal["msp", "client"] = "msp"
    ) -> str:
        """A GUID (lower-cased) or a name: a user principal name for users, a display name for groups."""
        text = value.strip() if isinstance(value, str) else ""
        if GUID.match(text):
            return text.lower()
        what = "a user principal name (name@domain)" if kind == "user" else "a group display name"
        if not text or _GUID_LIKE.match(text) or (kind == "user" and not _UPN.match(text)):
            self.fail(key, f"must be a GUID like 00000000-0000-0000-0000-000000000000 or {what}, got {value!r}")
            return ""
        self.names.append(DirectoryName(key, kind, text, tenant))
        return text

    def ref_field(
        self, obj: Mapping[str, Any], key: str, path: str, kind: Literal["user", "group"], **options: Any
    ) -> str | None:
        required = options.pop("required", True)
        if obj.get(key) is None:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return None
        return self.ref(obj[key], f"{path}.{key}", kind, **options)

    def refs(self, obj: Mapping[str, Any], key: str, path: str, kind: Literal["user", "group"]) -> tuple[str, ...]:
        found = [self.ref(item, f"{path}.{key}[{i}]", kind) for i, item in enumerate(self.items(obj, key, path))]
        kept, repeated = dedupe([g for g in found if g])
        for item in repeated:
            self.fail(f"{path}.{key}", f"lists {item} more than once")
        return tuple(kept)

    def each(self, obj: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], T | None]) -> list[T]:
        parsed = (parse(item, f"{path}.{key}[{i}]") for i, item in enumerate(self.items(obj, key, path)))
        return [item for item in parsed if item is not None]


def _closest(word: str, options: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def raw_from_flat_config(flat: Mapping[str, Any], secret_keys: Iterable[str] = SECRET_KEYS) -> dict[str, Any]:
    """The engine's {"ns:key": text} config map → what parse_stack_config takes.

    Our namespace stripped, structured values decoded from JSON text (docs/pulumi.md §4.3), the
    azuread keys kept, and secret values replaced by a marker: they are never validated or shown.
    """
    secrets = set(secret_keys)
    raw: dict[str, Any] = {}
    for full_key, value in flat.items():
        namespace, _, key = full_key.partition(":")
        if namespace == PROJECT:
            raw[key] = "[secret]" if key in secrets else _decode_json_text(value)
        elif namespace == "azuread":
            raw[full_key] = "[secret]" if full_key in FOREIGN_SECRET_KEYS else value
    return raw


def _decode_json_text(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def parse_stack_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the whole stack config; raise ConfigError with every problem, or return typed config."""
    reader = _Reader()
    mode = raw.get("mode")
    if mode not in ("msp", "client"):
        reader.fail("mode", f"must be msp or client, got {mode!r}")
        raise ConfigError(reader.problems)
    allowed = _MSP_KEYS if mode == "msp" else _CLIENT_KEYS
    for key in sorted(k for k in raw if k not in allowed and k not in _FOREIGN_ALLOWED):
        other = "client" if mode == "msp" else "msp"
        where = f"a key of {other} stacks, not of {mode} stacks" if key in (_MSP_KEYS | _CLIENT_KEYS) else "unknown key"
        hint = _closest(key, allowed)
        reader.fail(key, where + (f" (did you mean {hint}?)" if hint and key not in _MSP_KEYS | _CLIENT_KEYS else ""))
    graph_url = _graph_url(reader, raw)
    stack: StackConfig = _msp_stack(reader, raw, graph_url) if mode == "msp" else _client_stack(reader, raw, graph_url)
    if reader.problems:
        raise ConfigError(reader.problems)
    return stack


def _graph_url(reader: _Reader, raw: Mapping[str, Any]) -> str:
    url = raw.get("graphUrl", DEFAULT_GRAPH_URL)
    if not isinstance(url, str) or not url.startswith("https://"):
        reader.fail("graphUrl", f"must be an https:// URL, got {url!r}")
        return DEFAULT_GRAPH_URL
    return url.rstrip("/")


def _msp_stack(reader: _Reader, raw: Mapping[str, Any], graph_url: str) -> MspStack:
    tenant_id = ""
    if "azuread:tenantId" in raw:
        tenant_id = reader.guid(raw["azuread:tenantId"], "azuread:tenantId")
    else:
        reader.fail("azuread:tenantId", "is required: the MSP tenant where CIPP is deployed")
    location = _trusted_location(reader, raw.get("trustedLocation"))
    service_account = _service_account(reader, raw.get("serviceAccount"))
    technicians = _technician_access(reader, raw.get("technicianAccess"), service_account.user_id)
    _check_lockout_guard(reader, technicians, location)
    cipp_api = None
    if raw.get("cippApi") is not None:
        cipp_api = _cipp_api(reader, raw["cippApi"], tenant_id, location, technicians.operator_check_ip)
    alerts = _break_glass_alerts(reader, raw.get("breakGlassAlerts"), technicians)
    assumptions = _assumptions(reader, raw)  # before the warnings are collected: the override adds one
    return MspStack(
        tenant_id,
        location,
        technicians,
        service_account,
        cipp_api,
        graph_url,
        tuple(reader.warnings),
        scenarios_file=_scenarios_file(reader, raw),
        assumptions=assumptions,
        names=tuple(reader.names),
        adopt=_adopt(reader, raw.get("adopt")),
        break_glass_alerts=alerts,
    )


_BREAK_GLASS_ALERT_KEYS = {
    "workspaceResourceId",
    "resourceGroupName",
    "location",
    "actionGroup",
    "diagnosticSettingName",
    "severity",
}
_WORKSPACE_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/([^/]+)/providers/Microsoft\.OperationalInsights/workspaces/[^/]+$",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _break_glass_alerts(reader: _Reader, value: Any, access: TechnicianAccess) -> BreakGlassAlerts | None:
    """breakGlassAlerts, optional (docs/break-glass-alerts.md). The alert query matches SigninLogs.UserId,
    so it needs the accounts' user ids: group members are not in a sign-in row."""
    if value is None:
        return None
    path = "breakGlassAlerts"
    obj = reader.obj(value, path, _BREAK_GLASS_ALERT_KEYS)
    workspace = reader.text(obj, "workspaceResourceId", path)
    match = _WORKSPACE_ID.match(workspace)
    if workspace and not match:
        reader.fail(
            f"{path}.workspaceResourceId",
            "must be a Log Analytics workspace resource id: /subscriptions/<id>/resourceGroups/<group>"
            f"/providers/Microsoft.OperationalInsights/workspaces/<name>, got {workspace!r}",
        )
    group = reader.text(obj, "resourceGroupName", path, match.group(1) if match else "-")
    group_obj = reader.obj(obj.get("actionGroup"), f"{path}.actionGroup", {"shortName", "emails"})
    emails = tuple(str(e) for e in reader.items(group_obj, "emails", f"{path}.actionGroup"))
    for i, email in enumerate(emails):
        if not _EMAIL.match(email):
            reader.fail(f"{path}.actionGroup.emails[{i}]", f"must be an email address, got {email!r}")
    if not emails:
        reader.fail(f"{path}.actionGroup.emails", "lists no address: an alert nobody receives")
    short_name = reader.text(group_obj, "shortName", f"{path}.actionGroup", "BreakGlass")
    if len(short_name) > 12:  # Azure Monitor's limit on groupShortName
        reader.fail(f"{path}.actionGroup.shortName", f"must be at most 12 characters, got {short_name!r}")
    severity = obj.get("severity", 0)
    if not isinstance(severity, int) or isinstance(severity, bool) or not 0 <= severity <= 4:
        reader.fail(f"{path}.severity", f"must be an integer 0 (critical) to 4, got {severity!r}")
    if not access.break_glass_user_ids:
        reader.fail(path, "needs technicianAccess.breakGlassUserIds: the alert matches each sign-in's user id")
    if access.break_glass_group_ids:
        reader.warnings.append(
            "breakGlassAlerts: members of technicianAccess.breakGlassGroupIds are not alerted on; "
            "list the accounts in breakGlassUserIds (docs/break-glass-alerts.md)"
        )
    return BreakGlassAlerts(
        workspace_resource_id=workspace,
        resource_group_name=group,
        location=reader.text(obj, "location", path),
        emails=emails,
        action_group_short_name=short_name,
        diagnostic_setting_name=reader.text(obj, "diagnosticSettingName", path, "cipp-hardening-sign-in-logs"),
        severity=severity if isinstance(severity, int) else 0,
    )


def _adopt(reader: _Reader, value: Any) -> dict[str, str]:
    """adopt: the ids `cipp-hardening adopt` found, taken over by the next `pulumi up` (docs/adopt.md)."""
    if value is None:
        return {}
    keys = {"trustedLocation", "technicianAccess", "serviceAccount"}
    obj = reader.obj(value, "adopt", keys)
    return {key: reader.guid(obj[key], f"adopt.{key}") for key in sorted(keys) if obj.get(key) is not None}


def _trusted_location(reader: _Reader, value: Any) -> TrustedLocation:
    path = "trustedLocation"
    if value is None:
        reader.fail(path, "is required: the trusted IP ranges of Step 1")
        return TrustedLocation(DEFAULT_LOCATION_NAME, ())
    obj = reader.obj(value, path, {"displayName", "cidrs"})
    name = reader.text(obj, "displayName", path, DEFAULT_LOCATION_NAME)
    entries = reader.items(obj, "cidrs", path)
    if not entries and "cidrs" not in obj:
        reader.fail(f"{path}.cidrs", "is required: at least one public IP range of the MSP office")
    elif not entries:
        reader.fail(f"{path}.cidrs", "must list at least one IP range")
    if len(entries) > ENTRA_MAX_RANGES:
        reader.fail(f"{path}.cidrs", f"has {len(entries)} ranges; a named location holds at most {ENTRA_MAX_RANGES}")
    canonical: list[str] = []
    for i, entry in enumerate(entries):
        try:
            parsed = entra_range(entry)
        except RangeError as exc:
            reader.fail(f"{path}.cidrs[{i}]", str(exc))
            continue
        canonical.append(str(parsed.network))
        if parsed.note:
            reader.warnings.append(f"{PROJECT}:{path}.cidrs[{i}]: {parsed.note}")
    kept, repeated = dedupe(canonical)
    for item in repeated:
        reader.fail(f"{path}.cidrs", f"lists {item} more than once (after canonicalisation)")
    return TrustedLocation(name, tuple(kept))


def _state(reader: _Reader, obj: Mapping[str, Any], path: str, default: str) -> str:
    return POLICY_STATES[reader.choice(obj, "state", path, list(POLICY_STATES), default)]


def _service_account(reader: _Reader, value: Any) -> ServiceAccount:
    path = "serviceAccount"
    if value is None:
        reader.fail(path, "is required: the CIPP service account of Part B")
        return ServiceAccount(DEFAULT_SERVICE_ACCOUNT_POLICY_NAME, "", "enabled")
    obj = reader.obj(value, path, {"displayName", "userId", "state"})
    return ServiceAccount(
        reader.text(obj, "displayName", path, DEFAULT_SERVICE_ACCOUNT_POLICY_NAME),
        reader.ref_field(obj, "userId", path, "user") or "",
        _state(reader, obj, path, "enabled"),
    )


_TECHNICIAN_KEYS = {
    "displayName",
    "includeGroupIds",
    "includeUserIds",
    "breakGlassUserIds",
    "breakGlassGroupIds",
    "target",
    "cippAppId",
    "state",
    "operatorCheckIp",
    "promotedAfter",
    "lockoutGuardOverride",
}


def _technician_access(reader: _Reader, value: Any, service_account_id: str) -> TechnicianAccess:
    path = "technicianAccess"
    if value is None:
        reader.fail(path, "is required: who the Part A IP restriction applies to")
        value = {}
    obj = reader.obj(value, path, _TECHNICIAN_KEYS)
    target = reader.choice(obj, "target", path, ["allCloudApps", "cippApp"], "allCloudApps")
    access = TechnicianAccess(
        display_name=reader.text(obj, "displayName", path, DEFAULT_TECHNICIAN_POLICY_NAME),
        include_group_ids=reader.refs(obj, "includeGroupIds", path, "group"),
        include_user_ids=reader.refs(obj, "includeUserIds", path, "user"),
        break_glass_user_ids=reader.refs(obj, "breakGlassUserIds", path, "user"),
        break_glass_group_ids=reader.refs(obj, "breakGlassGroupIds", path, "group"),
        target=target,  # type: ignore[arg-type]
        cipp_app_id=reader.guid_field(obj, "cippAppId", path, required=target == "cippApp"),
        state=_state(reader, obj, path, "reportOnly"),
        operator_check_ip=_ip_address(reader, obj, "operatorCheckIp", path),
        promoted_after=_promotion_record(reader, obj, path),
        lockout_guard_override=_override_reason(reader, obj, path),
    )
    _check_technician_rules(reader, access, service_account_id)
    return access


def _ip_address(reader: _Reader, obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        reader.fail(f"{path}.{key}", f"must be one IP address (IPv4 or IPv6), got {value!r}")
        return None


def _optional_object(reader: _Reader, obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, Mapping):
        reader.fail(f"{path}.{key}", f"must be an object, got {type(value).__name__}")
        return None
    return value


def _scenarios_file(reader: _Reader, raw: Mapping[str, Any]) -> str | None:
    value = raw.get("scenariosFile")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        reader.fail("scenariosFile", "must be the path of a YAML file of scenarios")
        return None
    return value


_ASSUMPTION_KEYS = {"legacyMfaTrustedIps", "cannotProveOverride"}


def _assumptions(reader: _Reader, raw: Mapping[str, Any]) -> Assumptions:
    """The stated assumptions (docs/assurance.md): each one makes a condition Graph v1.0 hides decidable."""
    path = "assumptions"
    if raw.get(path) is None:
        return Assumptions()
    obj = reader.obj(raw[path], path, _ASSUMPTION_KEYS)
    trusted_ips = None
    if obj.get("legacyMfaTrustedIps") is not None:
        trusted_ips = tuple(
            _networks(reader, reader.items(obj, "legacyMfaTrustedIps", path), f"{path}.legacyMfaTrustedIps")
        )
    override = None
    if obj.get("cannotProveOverride") is not None:
        override = reader.text(obj, "cannotProveOverride", path) or None
    if override:
        reader.warnings.append(
            f"{PROJECT}:{path}.cannotProveOverride: guard rows that cannot be proven are accepted: {override}"
        )
    return Assumptions(trusted_ips, override)


def _networks(reader: _Reader, entries: list[Any], key: str) -> list[str]:
    networks: list[str] = []
    for i, entry in enumerate(entries):
        try:
            networks.append(str(ipaddress.ip_network(str(entry).strip(), strict=True)))
        except ValueError as exc:
            reader.fail(f"{key}[{i}]", f"must be an IP range in CIDR notation like 192.0.2.0/24 ({exc})")
    return networks


def _check_technician_rules(reader: _Reader, access: TechnicianAccess, service_account_id: str) -> None:
    path = "technicianAccess"
    if not (access.include_group_ids or access.include_user_ids):
        reader.fail(f"{path}.includeGroupIds", "name at least one technician group (or includeUserIds)")
    if access.state != "disabled" and not (access.break_glass_user_ids or access.break_glass_group_ids):
        reader.fail(
            f"{path}.breakGlassUserIds",
            "is required while the policy is enabled or report-only: without an excluded break-glass "
            "account an IP mistake locks every administrator out of the MSP tenant",
        )
    reader.problems.extend(technician_overlaps(access, service_account_id))


def technician_overlaps(access: TechnicianAccess, service_account_id: str) -> list[Problem]:
    """One object in two roles (technician, break-glass, service account); checked again once names are ids."""
    path, problems = "technicianAccess", []
    if service_account_id and service_account_id in access.include_user_ids:
        problems.append(
            Problem(f"{path}.includeUserIds", "lists the CIPP service account; Part A must never apply to it")
        )
    if service_account_id and service_account_id in access.break_glass_user_ids:
        problems.append(
            Problem(f"{path}.breakGlassUserIds", "lists the CIPP service account; it is not a break-glass account")
        )
    for user in sorted(set(access.include_user_ids) & set(access.break_glass_user_ids)):
        problems.append(Problem(f"{path}.includeUserIds", f"{user} is also a break-glass account"))
    for group in sorted(set(access.include_group_ids) & set(access.break_glass_group_ids)):
        problems.append(Problem(f"{path}.includeGroupIds", f"{group} is also a break-glass group"))
    return problems


_GUARD_OVERRIDE_HINT = (
    "for a deliberate change (moving offices, a new egress address) set technicianAccess.lockoutGuardOverride "
    "to the reason, reviewed like any change"
)


def _check_lockout_guard(reader: _Reader, access: TechnicianAccess, location: TrustedLocation) -> None:
    """Part A enforced: the operators' current public address must be trusted (README "Rolling out safely")."""
    guard = _EgressGuard(
        path="technicianAccess",
        cidrs_key="trustedLocation.cidrs",
        address="the public address the operators use now",
        locks_out="locks them out of the MSP tenant",
        locks_out_now="would lock the operators out from where they sign in now",
        hint=_GUARD_OVERRIDE_HINT,
    )
    _check_egress_guard(
        reader, guard, access.state, access.operator_check_ip, access.lockout_guard_override, location.cidrs
    )
    if access.state == "enabled" and access.promoted_after is None:
        reader.warnings.append(
            f"{PROJECT}:technicianAccess.promotedAfter: Part A is enabled with no promotion record: nobody has "
            "read the sign-in logs for whom it blocks; set state back to reportOnly and run "
            "`cipp-hardening promote --stack <stack>` (docs/commands.md), which enables it on that evidence"
        )


@dataclass(frozen=True)
class _EgressGuard:
    """A lockout guard: enforcing a block outside `cidrs_key` needs `path`.operatorCheckIp inside them."""

    path: str  # the config object with state, operatorCheckIp and lockoutGuardOverride
    cidrs_key: str
    address: str  # whose address operatorCheckIp is
    locks_out: str  # what enforcing does when that address is outside
    locks_out_now: str
    hint: str  # how to waive the guard on purpose


def _check_egress_guard(
    reader: _Reader,
    guard: _EgressGuard,
    state: str,
    check_ip: str | None,
    override: str | None,
    cidrs: Sequence[str],
) -> None:
    path = guard.path
    inside = check_ip is not None and _address_in(check_ip, cidrs)
    if state != "enabled":
        if check_ip is not None and cidrs and not inside:
            reader.warnings.append(
                f"{PROJECT}:{path}.operatorCheckIp: {check_ip} is outside {guard.cidrs_key}; "
                "setting the policy to enabled will be refused"
            )
        return
    if override is not None:
        reader.warnings.append(f"{PROJECT}:{path}.lockoutGuardOverride: lockout guard waived: {override}")
        return
    if check_ip is None:
        reader.fail(
            f"{path}.operatorCheckIp",
            f"is required while the policy is enabled: {guard.address} "
            f"(e.g. from `curl -s https://ifconfig.me`) must be inside {guard.cidrs_key}, or enforcing "
            f"the block {guard.locks_out}; {guard.hint}",
        )
    elif not inside and cidrs:
        reader.fail(
            f"{path}.operatorCheckIp",
            f"{check_ip} is outside {guard.cidrs_key}: enforcing the block {guard.locks_out_now}; "
            f"add their range or {guard.hint}",
        )


def _address_in(address: str, cidrs: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(cidr) for cidr in cidrs)


def _override_reason(reader: _Reader, obj: Mapping[str, Any], path: str) -> str | None:
    if obj.get("lockoutGuardOverride") is None:
        return None
    reason = reader.text(obj, "lockoutGuardOverride", path)
    return reason or None


# promotedAfter, written by `make promote` (cipp_hardening/commands/promote.py): the evidence Part A was enabled on.
_PROMOTION_KEYS = {
    "policyId",
    "policyDisplayName",
    "window",
    "signInsEvaluated",
    "wouldBlock",
    "breakGlass",
    "serviceAccount",
    "accepted",
    "acceptedUsers",
    "recordedAt",
}
_PROMOTION_COUNTS = ("signInsEvaluated", "wouldBlock", "breakGlass", "serviceAccount")


def _promotion_record(reader: _Reader, obj: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    value = _optional_object(reader, obj, "promotedAfter", path)
    if value is None:
        return None
    key = f"{path}.promotedAfter"
    record = reader.obj(value, key, _PROMOTION_KEYS)
    reader.guid_field(record, "policyId", key)
    reader.text(record, "policyDisplayName", key)
    _timestamp(reader, record, "recordedAt", key)
    window = reader.obj(record.get("window"), f"{key}.window", {"from", "to"})
    start, end = _timestamp(reader, window, "from", f"{key}.window"), _timestamp(reader, window, "to", f"{key}.window")
    if start and end and start >= end:
        reader.fail(f"{key}.window", "from must be before to")
    counts = {name: _count(reader, record, name, key) for name in _PROMOTION_COUNTS}
    accepted = reader.flag(record, "accepted", key)
    affected = counts["wouldBlock"] + counts["breakGlass"] + counts["serviceAccount"]
    if not accepted and (affected or not counts["signInsEvaluated"]):
        reader.fail(
            f"{key}.accepted",
            f"must be true: the record shows {affected} affected sign-in(s) out of {counts['signInsEvaluated']} "
            "evaluated, so a human must have read them (`make promote ... ACCEPT=1`)",
        )
    if not all(isinstance(user, str) for user in reader.items(record, "acceptedUsers", key)):
        reader.fail(f"{key}.acceptedUsers", "must be a list of user principal names")
    return value


def _timestamp(reader: _Reader, obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    text = reader.text(obj, key, path)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        moment = None
    if text and (moment is None or moment.tzinfo is None):
        reader.fail(f"{path}.{key}", f"must be an ISO 8601 time with a zone, like 2026-05-01T00:00:00Z; got {text!r}")
        return None
    return moment


def _count(reader: _Reader, obj: Mapping[str, Any], key: str, path: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        reader.fail(f"{path}.{key}", f"must be a count (0 or more), got {value!r}")
        return 0
    return value


_CIPP_API_KEYS = {
    "url",
    "tenantId",
    "managerClientId",
    "clients",
    "unrestrictedClients",
    "workloadIdentityPolicies",
    "customRoles",
    "rolesClientId",
}


def _cipp_api(
    reader: _Reader, value: Any, default_tenant: str, location: TrustedLocation, operator_ip: str | None
) -> CippApi:
    path = "cippApi"
    obj = reader.obj(value, path, _CIPP_API_KEYS)
    url = reader.text(obj, "url", path)
    if url and not url.startswith("https://"):
        reader.fail(f"{path}.url", f"must be the https:// URL of CIPP's Function App, got {url!r}")
    if ".azurestaticapps.net" in url:
        reader.fail(f"{path}.url", "is the Static Web App; use the Function App URL (docs/cipp-api.md §7)")
    tenant = reader.guid_field(obj, "tenantId", path, required=False) or default_tenant
    manager = reader.guid_field(obj, "managerClientId", path) or ""
    clients = reader.each(obj, "clients", path, lambda item, key: _cipp_client(reader, item, key, manager))
    _, repeated = dedupe([c.client_id for c in clients])
    for item in repeated:
        reader.fail(f"{path}.clients", f"lists client {item} more than once")
    mode = reader.choice(obj, "unrestrictedClients", path, ["fail", "warn"], "warn")
    workload = None
    if obj.get("workloadIdentityPolicies") is not None:
        workload = _workload_identity(reader, obj["workloadIdentityPolicies"], clients, manager)
        if tenant and default_tenant and tenant != default_tenant:
            reader.fail(
                f"{path}.workloadIdentityPolicies",
                f"the CIPP-API clients live in cippApi.tenantId {tenant}, but the policies would be created in "
                f"azuread:tenantId {default_tenant}, where they cannot apply to them",
            )
    roles = reader.each(obj, "customRoles", path, lambda item, key: _custom_role(reader, item, key, location))
    _, repeated_roles = dedupe([role.name for role in roles])
    for name in repeated_roles:
        reader.fail(f"{path}.customRoles", f"lists role {name} more than once")
    for index, role in enumerate(roles):
        _check_role_lockout(reader, role, f"{path}.customRoles[{index}]", operator_ip)
    roles_client = reader.guid_field(obj, "rolesClientId", path, required=False)
    return CippApi(
        url.rstrip("/"),
        tenant,
        manager,
        tuple(clients),
        mode,  # type: ignore[arg-type]
        workload,
        tuple(roles),
        roles_client,
    )


_CUSTOM_ROLE_KEYS = {
    "name",
    "allowedRanges",
    "heldByOperator",
    "restoreOnDelete",
    "allowOpenOnDelete",
    "lockoutGuardOverride",
}
# ExecCustomRole refuses these names outright; superadmin it saves without ranges (docs/custom-roles.md).
_BLOCKED_ROLE_NAMES = ("anonymous", "authenticated")


def _custom_role(reader: _Reader, value: Any, path: str, location: TrustedLocation) -> CippCustomRole | None:
    obj = reader.obj(value, path, _CUSTOM_ROLE_KEYS)
    name = reader.text(obj, "name", path).lower()
    if name == SUPERADMIN:
        reader.fail(
            f"{path}.name",
            "superadmin cannot be restricted: CIPP never checks its IP ranges (to prevent lockout), so "
            "technicians holding it are held by Part A alone (docs/custom-roles.md)",
        )
    elif name in _BLOCKED_ROLE_NAMES:
        reader.fail(f"{path}.name", f"{name} is not a role CIPP lets anyone edit (ExecCustomRole refuses it)")
    if "allowedRanges" in obj:
        ranges = _role_ranges(reader, obj, path)
    else:  # Step 1's trusted ranges, in the spelling CIPP accepts
        ranges = tuple(cipp_range(cidr) for cidr in location.cidrs)
    restore = obj.get("restoreOnDelete", True)
    if not isinstance(restore, bool):
        reader.fail(f"{path}.restoreOnDelete", f"must be true or false, got {restore!r}")
        restore = True
    return CippCustomRole(
        name,
        ranges,
        reader.flag(obj, "heldByOperator", path),
        restore,
        reader.flag(obj, "allowOpenOnDelete", path),
        _override_reason(reader, obj, path),
    )


def _role_ranges(reader: _Reader, obj: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """A role's ranges in the spelling ExecCustomRole keeps; what it would silently drop is refused here.

    There is no [Any] for a role: a role without ranges is simply not listed in cippApi.customRoles.
    """
    key = f"{path}.allowedRanges"
    entries = obj.get("allowedRanges")
    if not isinstance(entries, list) or not entries:
        reader.fail(key, "must list at least one IP range (leave the key out for Step 1's trusted ranges)")
        return ()
    ranges: list[str] = []
    for i, entry in enumerate(entries):
        if _is_any(entry):
            reader.fail(f"{key}[{i}]", "a role is opened by leaving it out of cippApi.customRoles, not by Any")
            continue
        try:
            spelled = cipp_range(entry)
        except RangeError as exc:
            reader.fail(f"{key}[{i}]", str(exc))
            continue
        if not accepted_by_cipp(spelled):  # ExecCustomRole would drop it without a word
            reader.fail(f"{key}[{i}]", f"{spelled!r} is not a spelling CIPP's ExecCustomRole keeps")
            continue
        ranges.append(spelled)
        if note := broad_range_note(entry):
            reader.warnings.append(f"{PROJECT}:{key}[{i}]: {note}")
    kept, repeated = dedupe(ranges)
    for item in repeated:
        reader.warnings.append(f"{PROJECT}:{key}: {item} listed twice; sent once")
    return tuple(kept)


def _check_role_lockout(reader: _Reader, role: CippCustomRole, path: str, operator_ip: str | None) -> None:
    """A role the operator holds must keep the operator's address (technicianAccess.operatorCheckIp).

    CIPP applies a role's ranges to the next request, with no report-only stage, so the guard holds always.
    """
    if not role.held_by_operator or not role.allowed_ranges:
        return
    if role.lockout_guard_override is not None:
        reader.warnings.append(
            f"{PROJECT}:{path}.lockoutGuardOverride: lockout guard waived: {role.lockout_guard_override}"
        )
        return
    hint = f"for a deliberate change set {path}.lockoutGuardOverride to the reason, reviewed like any change"
    if operator_ip is None:
        reader.fail(
            f"{path}.heldByOperator",
            "technicianAccess.operatorCheckIp is required: the address you sign in to CIPP from must be inside "
            f"this role's allowedRanges, or CIPP refuses you at once; {hint}",
        )
    elif not _address_in(operator_ip, [str(parse_network(r)) for r in role.allowed_ranges]):
        reader.fail(
            f"{path}.allowedRanges",
            f"excludes technicianAccess.operatorCheckIp {operator_ip}, and you hold role {role.name}: CIPP would "
            f'refuse you from where you sign in now (docs/custom-roles.md "Lockout guard"); add your range or {hint}',
        )


_WORKLOAD_IDENTITY_KEYS = {"state", "displayNamePrefix", "operatorCheckIp", "lockoutGuardOverride"}


def _workload_identity(
    reader: _Reader, value: Any, clients: Sequence[CippApiClient], manager_id: str
) -> WorkloadIdentityPolicies:
    path = "cippApi.workloadIdentityPolicies"
    obj = reader.obj(value, path, _WORKLOAD_IDENTITY_KEYS)
    held = [_held_client(reader, client, f"cippApi.clients[{i}]") for i, client in enumerate(clients)]
    policies = WorkloadIdentityPolicies(
        state=_state(reader, obj, path, "reportOnly"),
        display_name_prefix=reader.text(obj, "displayNamePrefix", path, DEFAULT_WORKLOAD_IDENTITY_PREFIX),
        clients=tuple(client for client in held if client is not None),
        operator_check_ip=_ip_address(reader, obj, "operatorCheckIp", path),
        lockout_guard_override=_override_reason(reader, obj, path),
    )
    manager = next((c for c in policies.clients if c.client_id == manager_id), None)
    if manager is not None:
        guard = _EgressGuard(
            path=path,
            cidrs_key=f"{manager.config_key}.allowedRanges",
            address="the public address `pulumi up` runs from (the manager client's egress)",
            locks_out="refuses the manager client its tokens, and with them every later run of Part C",
            locks_out_now="would refuse the manager client its tokens where this stack runs now",
            hint=f"for a deliberate change (a new runner, a new egress address) set {path}.lockoutGuardOverride "
            "to the reason, reviewed like any change",
        )
        _check_egress_guard(
            reader, guard, policies.state, policies.operator_check_ip, policies.lockout_guard_override, manager.cidrs
        )
    return policies


def _held_client(reader: _Reader, client: CippApiClient, key: str) -> WorkloadIdentityClient | None:
    """The client's allowedRanges as one Entra named location, or None when it has none (any address)."""
    if not client.client_id:
        return None
    if not client.allowed_ranges:
        reader.warnings.append(
            f"{PROJECT}:{key}.allowedRanges: [{ANY_ADDRESS}] (every address), so "
            f"cippApi.workloadIdentityPolicies declares no policy for client {client.client_id}"
        )
        return None
    cidrs: list[str] = []
    for cipp_text in client.allowed_ranges:
        try:
            cidrs.append(str(entra_range(cipp_text).network))
        except RangeError as exc:
            reader.fail(
                f"{key}.allowedRanges",
                f"{exc}; cippApi.workloadIdentityPolicies needs every range in an Entra named location",
            )
    if len(cidrs) > ENTRA_MAX_RANGES:
        reader.fail(
            f"{key}.allowedRanges",
            f"has {len(cidrs)} ranges; the named location of cippApi.workloadIdentityPolicies holds at most "
            f"{ENTRA_MAX_RANGES}",
        )
    return WorkloadIdentityClient(client.client_id, tuple(cidrs), key)


_CIPP_CLIENT_KEYS = {
    "clientId",
    "allowedRanges",
    "allowSelfUpdate",
    "restoreOnDelete",
    "allowAnyOnDelete",
    "mcpAllowed",
}


def _cipp_client(reader: _Reader, value: Any, path: str, manager_id: str) -> CippApiClient | None:
    obj = reader.obj(value, path, _CIPP_CLIENT_KEYS)
    client_id = reader.guid_field(obj, "clientId", path) or ""
    client = CippApiClient(
        client_id,
        _allowed_ranges(reader, obj, path),
        reader.flag(obj, "allowSelfUpdate", path),
        reader.flag(obj, "restoreOnDelete", path),
        reader.flag(obj, "allowAnyOnDelete", path),
        reader.flag(obj, "mcpAllowed", path) if "mcpAllowed" in obj else None,
    )
    if client_id and client_id == manager_id and not client.allow_self_update:
        reader.fail(
            f"{path}.allowSelfUpdate",
            "must be true to manage the manager client's own ranges: a wrong range locks this stack out of CIPP",
        )
    return client


def _allowed_ranges(reader: _Reader, obj: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """The client's ranges in CIPP spelling; () only for the explicit `[Any]` (docs/configuration.md).

    A missing key or an empty list is an error, never Any: for an allow-list, leaving something out must
    not open a client to every address (and CIPP 10.8.2 reads a stored "[]" as *no* address, docs/part-c.md).
    """
    key = f"{path}.allowedRanges"
    entries = obj.get("allowedRanges")
    if entries is None or entries == []:
        what = "is required" if entries is None else "is empty"
        reader.fail(
            key,
            f"{what}: list the ranges this client may call from, or write [{ANY_ADDRESS}] to open it to every address",
        )
        return ()
    if not isinstance(entries, list):
        reader.fail(key, f"must be a list, got {type(entries).__name__}")
        return ()
    if any(_is_any(entry) for entry in entries):
        if len(entries) > 1:
            reader.fail(key, f"[{ANY_ADDRESS}] opens the client to every address: it stands alone, without ranges")
        return ()
    ranges: list[str] = []
    for i, entry in enumerate(entries):
        try:
            ranges.append(cipp_range(entry))
        except RangeError as exc:
            reader.fail(f"{path}.allowedRanges[{i}]", str(exc))
            continue
        if note := broad_range_note(entry):
            reader.warnings.append(f"{PROJECT}:{path}.allowedRanges[{i}]: {note}")
    kept, repeated = dedupe(ranges)
    for item in repeated:
        reader.warnings.append(f"{PROJECT}:{path}.allowedRanges: {item} listed twice; sent once")
    return tuple(kept)


def _is_any(entry: Any) -> bool:
    return isinstance(entry, str) and entry.strip().lower() == ANY_ADDRESS.lower()


def _client_stack(reader: _Reader, raw: Mapping[str, Any], graph_url: str) -> ClientStack:
    tenant = _client_tenant(reader, raw.get("clientTenant"))
    client_id = reader.guid(raw["graphClientId"], "graphClientId") if "graphClientId" in raw else None
    if bool(client_id) != ("graphClientSecret" in raw):
        reader.fail("graphClientSecret", "graphClientId and the secret graphClientSecret go together")
    scenarios_file, assumptions = _scenarios_file(reader, raw), _assumptions(reader, raw)
    return ClientStack(
        tenant,
        graph_url,
        client_id,
        tuple(reader.warnings),
        scenarios_file=scenarios_file,
        assumptions=assumptions,
        names=tuple(reader.names),
    )


_CLIENT_TENANT_KEYS = {
    "tenantId",
    "mspTenantId",
    "accessMode",
    "serviceAccountUserId",
    "includeStates",
    "skipPolicyIds",
    "onConflict",
}


def _client_tenant(reader: _Reader, value: Any) -> ClientTenant:
    path = "clientTenant"
    if value is None:
        reader.fail(path, "is required in a client stack")
        value = {}
    obj = reader.obj(value, path, _CLIENT_TENANT_KEYS)
    access_mode = reader.choice(obj, "accessMode", path, ["gdap", "direct"], "gdap")
    service_account = reader.ref_field(
        obj, "serviceAccountUserId", path, "user", required=access_mode == "direct", tenant="client"
    )
    if access_mode == "gdap" and service_account:
        reader.fail(f"{path}.serviceAccountUserId", "is only used with accessMode direct")
    tenant = reader.guid_field(obj, "tenantId", path) or ""
    msp = reader.guid_field(obj, "mspTenantId", path) or ""
    if tenant and tenant == msp:
        reader.fail(f"{path}.tenantId", "is the MSP tenant itself; a client stack manages a client tenant")
    return ClientTenant(
        tenant,
        msp,
        access_mode,  # type: ignore[arg-type]
        service_account,
        _include_states(reader, obj, path),
        reader.guids(obj, "skipPolicyIds", path),
        reader.choice(obj, "onConflict", path, ["report", "widen"], "report"),  # type: ignore[arg-type]
    )


def _include_states(reader: _Reader, obj: Mapping[str, Any], path: str) -> tuple[str, ...]:
    if "includeStates" not in obj:
        return ("enabled", "enabledForReportingButNotEnforced")
    states = reader.items(obj, "includeStates", path)
    for i, state in enumerate(states):
        if state not in GRAPH_STATES:
            reader.fail(
                f"{path}.includeStates[{i}]", f"must be one of {', '.join(sorted(GRAPH_STATES))}; got {state!r}"
            )
    if not states:
        reader.fail(f"{path}.includeStates", "must list at least one policy state")
    return tuple(s for s in states if s in GRAPH_STATES)
