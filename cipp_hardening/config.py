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

from cipp_hardening.cidr import ENTRA_MAX_RANGES, RangeError, cipp_range, dedupe, entra_range

PROJECT = "cipp-hardening"

DEFAULT_LOCATION_NAME = "Trusted - MSP Office"
DEFAULT_TECHNICIAN_POLICY_NAME = "Block CIPP Access - Outside Trusted IPs"
DEFAULT_SERVICE_ACCOUNT_POLICY_NAME = "CIPP Service Account Conditional Access Policy"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com"

# Config spelling → Graph `state` (graph-ca.md §2.2).
POLICY_STATES = {
    "reportOnly": "enabledForReportingButNotEnforced",
    "enabled": "enabled",
    "disabled": "disabled",
}
GRAPH_STATES = frozenset(POLICY_STATES.values())

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

SECRET_KEYS = frozenset({"cippApiManagerSecret", "graphClientSecret"})

Mode = Literal["msp", "client"]
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
    allowed_ranges: tuple[str, ...]  # CIPP canonical spelling; empty means Any
    allow_self_update: bool = False
    restore_on_delete: bool = False
    allow_any_on_delete: bool = False


@dataclass(frozen=True)
class CippApi:
    url: str
    tenant_id: str
    manager_client_id: str
    clients: tuple[CippApiClient, ...]
    unrestricted_clients: Literal["fail", "warn"] = "warn"


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


StackConfig = MspStack | ClientStack

_MSP_KEYS = {
    "mode",
    "trustedLocation",
    "technicianAccess",
    "serviceAccount",
    "cippApi",
    "cippApiManagerSecret",
    "graphUrl",
    "scenariosFile",
}
_CLIENT_KEYS = {"mode", "clientTenant", "graphUrl", "graphClientId", "graphClientSecret", "scenariosFile"}
_FOREIGN_ALLOWED = {"azuread:tenantId", "azuread:clientId", "azuread:useOidc", "azuread:useCli", "azuread:environment"}


@dataclass
class _Reader:
    """Walks one config object, remembering the key path and every problem found on the way."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
        if not isinstance(value, str) or not _GUID.match(value.strip()):
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

    def each(self, obj: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], T | None]) -> list[T]:
        parsed = (parse(item, f"{path}.{key}[{i}]") for i, item in enumerate(self.items(obj, key, path)))
        return [item for item in parsed if item is not None]


def _closest(word: str, options: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def raw_from_flat_config(flat: Mapping[str, Any], secret_keys: Iterable[str] = SECRET_KEYS) -> dict[str, Any]:
    """The engine's {"ns:key": text} config map → what parse_stack_config takes.

    Our namespace stripped, structured values decoded from JSON text (pulumi-python-notes.md §4.3), the
    azuread keys kept, and secret values replaced by a marker: they are never validated or shown.
    """
    secrets = set(secret_keys)
    raw: dict[str, Any] = {}
    for full_key, value in flat.items():
        namespace, _, key = full_key.partition(":")
        if namespace == PROJECT:
            raw[key] = "[secret]" if key in secrets else _decode_json_text(value)
        elif namespace == "azuread":
            raw[full_key] = value
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
    cipp_api = _cipp_api(reader, raw["cippApi"], tenant_id) if raw.get("cippApi") is not None else None
    return MspStack(
        tenant_id,
        location,
        technicians,
        service_account,
        cipp_api,
        graph_url,
        tuple(reader.warnings),
        scenarios_file=_scenarios_file(reader, raw),
    )


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
        reader.guid_field(obj, "userId", path) or "",
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
        include_group_ids=reader.guids(obj, "includeGroupIds", path),
        include_user_ids=reader.guids(obj, "includeUserIds", path),
        break_glass_user_ids=reader.guids(obj, "breakGlassUserIds", path),
        break_glass_group_ids=reader.guids(obj, "breakGlassGroupIds", path),
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
    if service_account_id and service_account_id in access.include_user_ids:
        reader.fail(f"{path}.includeUserIds", "lists the CIPP service account; Part A must never apply to it")
    if service_account_id and service_account_id in access.break_glass_user_ids:
        reader.fail(f"{path}.breakGlassUserIds", "lists the CIPP service account; it is not a break-glass account")
    for user in sorted(set(access.include_user_ids) & set(access.break_glass_user_ids)):
        reader.fail(f"{path}.includeUserIds", f"{user} is also a break-glass account")
    for group in sorted(set(access.include_group_ids) & set(access.break_glass_group_ids)):
        reader.fail(f"{path}.includeGroupIds", f"{group} is also a break-glass group")


_GUARD_OVERRIDE_HINT = (
    "for a deliberate change (moving offices, a new egress address) set technicianAccess.lockoutGuardOverride "
    "to the reason, reviewed like any change"
)


def _check_lockout_guard(reader: _Reader, access: TechnicianAccess, location: TrustedLocation) -> None:
    """Part A enforced: the operators' current public address must be trusted (README "Rolling out safely")."""
    path = "technicianAccess"
    inside = access.operator_check_ip is not None and _address_in(access.operator_check_ip, location.cidrs)
    if access.state != "enabled":
        if access.operator_check_ip is not None and location.cidrs and not inside:
            reader.warnings.append(
                f"{PROJECT}:{path}.operatorCheckIp: {access.operator_check_ip} is outside trustedLocation.cidrs; "
                "setting the policy to enabled will be refused"
            )
        return
    if access.lockout_guard_override is not None:
        reader.warnings.append(
            f"{PROJECT}:{path}.lockoutGuardOverride: lockout guard waived: {access.lockout_guard_override}"
        )
        return
    if access.operator_check_ip is None:
        reader.fail(
            f"{path}.operatorCheckIp",
            "is required while the policy is enabled: the public address the operators use now "
            "(e.g. from `curl -s https://ifconfig.me`) must be inside trustedLocation.cidrs, or enforcing "
            f"the block locks them out of the MSP tenant; {_GUARD_OVERRIDE_HINT}",
        )
    elif not inside and location.cidrs:
        reader.fail(
            f"{path}.operatorCheckIp",
            f"{access.operator_check_ip} is outside trustedLocation.cidrs: enforcing the block would lock "
            f"the operators out from where they sign in now; add their range or {_GUARD_OVERRIDE_HINT}",
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


def _cipp_api(reader: _Reader, value: Any, default_tenant: str) -> CippApi:
    path = "cippApi"
    obj = reader.obj(value, path, {"url", "tenantId", "managerClientId", "clients", "unrestrictedClients"})
    url = reader.text(obj, "url", path)
    if url and not url.startswith("https://"):
        reader.fail(f"{path}.url", f"must be the https:// URL of CIPP's Function App, got {url!r}")
    if ".azurestaticapps.net" in url:
        reader.fail(f"{path}.url", "is the Static Web App; use the Function App URL (cipp-api.md §7)")
    tenant = reader.guid_field(obj, "tenantId", path, required=False) or default_tenant
    manager = reader.guid_field(obj, "managerClientId", path) or ""
    clients = reader.each(obj, "clients", path, lambda item, key: _cipp_client(reader, item, key, manager))
    _, repeated = dedupe([c.client_id for c in clients])
    for item in repeated:
        reader.fail(f"{path}.clients", f"lists client {item} more than once")
    mode = reader.choice(obj, "unrestrictedClients", path, ["fail", "warn"], "warn")
    return CippApi(url.rstrip("/"), tenant, manager, tuple(clients), mode)  # type: ignore[arg-type]


_CIPP_CLIENT_KEYS = {"clientId", "allowedRanges", "allowSelfUpdate", "restoreOnDelete", "allowAnyOnDelete"}


def _cipp_client(reader: _Reader, value: Any, path: str, manager_id: str) -> CippApiClient | None:
    obj = reader.obj(value, path, _CIPP_CLIENT_KEYS)
    client_id = reader.guid_field(obj, "clientId", path) or ""
    ranges: list[str] = []
    for i, entry in enumerate(reader.items(obj, "allowedRanges", path)):
        try:
            ranges.append(cipp_range(entry))
        except RangeError as exc:
            reader.fail(f"{path}.allowedRanges[{i}]", str(exc))
    kept, repeated = dedupe(ranges)
    for item in repeated:
        reader.warnings.append(f"{PROJECT}:{path}.allowedRanges: {item} listed twice; sent once")
    client = CippApiClient(
        client_id,
        tuple(kept),
        reader.flag(obj, "allowSelfUpdate", path),
        reader.flag(obj, "restoreOnDelete", path),
        reader.flag(obj, "allowAnyOnDelete", path),
    )
    if client_id and client_id == manager_id and not client.allow_self_update:
        reader.fail(
            f"{path}.allowSelfUpdate",
            "must be true to manage the manager client's own ranges: a wrong range locks this stack out of CIPP",
        )
    return client


def _client_stack(reader: _Reader, raw: Mapping[str, Any], graph_url: str) -> ClientStack:
    tenant = _client_tenant(reader, raw.get("clientTenant"))
    client_id = reader.guid(raw["graphClientId"], "graphClientId") if "graphClientId" in raw else None
    if bool(client_id) != ("graphClientSecret" in raw):
        reader.fail("graphClientSecret", "graphClientId and the secret graphClientSecret go together")
    return ClientStack(
        tenant, graph_url, client_id, tuple(reader.warnings), scenarios_file=_scenarios_file(reader, raw)
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
    service_account = reader.guid_field(obj, "serviceAccountUserId", path, required=access_mode == "direct")
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
