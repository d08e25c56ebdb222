"""A loopback emulator of CIPP-API: `/api/ExecApiClient` and the request pipeline in front of it.

It follows the CIPP-API research notes (docs/cipp-api.md, cited below as §n) over real HTTPS:

    EasyAuth (bearer token, allowed applications/audiences, tenant)      → 401
    New-CippCoreRequest (unknown endpoint)                               → 404 "Endpoint not found"
    Test-CIPPAccess (X-Forwarded-For vs the client's IPRange, then role)  → 403 text/plain
    the endpoint (ExecApiClient actions, ListTenants, me)                → 200, or 500 when it throws

State lives in memory, shaped like CIPP's `ApiClients` table (IPRange keeps its raw stored encoding),
plus the Entra side CIPP drives through Graph (app registrations and their secrets, mirrored into the
shared identity `Directory` so tokens stop working when CIPP deletes a secret).

`faithful=True` reproduces CIPP-API 10.8.2 exactly, bugs included; `faithful=False` applies the two
fixes the spec names: a stored "[]" reads back as Any (CyberDrain/CIPP#472) and /0 masks are unsigned.

Run standalone: `python -m emulators.cipp --port 8443 --client <guid>:editor:203.0.113.0/24:true`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import fnmatch
import ipaddress
import json
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from emulators.identity import Directory, InvalidToken, openid_configuration
from emulators.tls import TestTLS, make_test_tls

DEFAULT_TENANT_ID = "3f2a6c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
PARTITION_KEY = "ApiClients"

# -- exact texts (§5.5, §8, §9, §2) ---------------------------------------------------------------
API_CLIENT_DENIED = (
    "Access to this CIPP API endpoint is not allowed, the API Client does not have the required permission"
)
NO_ROLE_DENIED = "Access to this CIPP API endpoint is not allowed, the user does not have the required permission"
BASE_ROLE_DENIED = (
    "Access to this CIPP API endpoint is not allowed, the '{role}' base role does not have the required "
    "permission: {permission}"
)
CUSTOM_ROLE_DENIED = (
    "Access to this CIPP API endpoint is not allowed, you do not have the required permission: {permission}"
)
# Test-CIPPAccess.ps1: a custom role's BlockedEndpoints (block pass) and its tenant limits (allow pass).
BLOCKED_ENDPOINT_DENIED = (
    "Access to this CIPP API endpoint is not allowed, the custom role '{role}' has blocked this endpoint: {endpoint}"
)
TENANT_DENIED = "Access to this tenant is not allowed"
# Test-CIPPAccess.ps1, user branch: a signed-in user's address outside the IP ranges of all their roles.
_NOT_ALLOWED = "Access to this CIPP API endpoint is not allowed"
USER_IP_DENIED = _NOT_ALLOWED + ", your IP address ({ip}) is not in the allowed range for your role(s)"
USER_ME_IP_MESSAGE = "Your IP address ({ip}) is not in the allowed range for your role(s)"
USER_NO_ROLES_DENIED = "Access denied: unable to resolve roles for the authenticated principal"
ENDPOINT_NOT_FOUND = "Endpoint not found"
ESCALATION_DENIED = (
    "You do not have sufficient permissions to manage an API client with the '{role}' role; "
    "it grants permissions beyond your own."
)
ROLE_NOT_ASSIGNABLE = "The role '{role}' cannot be assigned to an API client."
ROLE_DOES_NOT_EXIST = "The role '{role}' does not exist."
GRAPH_FAILURE_PREFIX = "Could not modify App Registrations. Check the CIPP documentation for API requirements. Error: "
DEFAULT_GRAPH_FAILURE = "Failed to setup CIPP-API Access: Insufficient privileges to complete the operation."
INSUFFICIENT_GRAPH_PERMISSIONS = (
    "Insufficient permissions to create API App. This integration requires the following Application "
    "permissions in the partner tenant. Application.ReadWrite.All, Directory.ReadWrite.All"
)
MCP_CONFIGURED = (
    "MCP resource URIs, v2 tokens, and callbacks for known MCP clients (Claude, ChatGPT, VS Code, Copilot) "
    "configured on the app registration. Run Save to Azure to apply the changes."
)
SAVE_TO_AZURE_FAILED = (
    "Failed to save allowed API clients to Azure, ensure your function app has the appropriate rights to "
    "make changes to the Authentication settings."
)
GET_AZURE_CONFIGURATION_FAILED = (
    "Could not get API clients, ensure you have the appropriate rights to read the Authentication settings."
)
ARM_FORBIDDEN = (
    "The client does not have authorization to perform action 'Microsoft.Web/sites/config/list/action' "
    "over scope '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cipp/providers/"
    "Microsoft.Web/sites/cipp/config/authsettingsV2'."
)


def binding_error_empty(parameter: str) -> str:
    """PowerShell's message when a mandatory [string] parameter receives "" (or $null)."""
    return f"Cannot bind argument to parameter '{parameter}' because it is an empty string."


# docs/cipp-api.md §5.4 [I]: /api/me hands a built-in role's $null custom-role list to a mandatory parameter.
ME_BUILT_IN_ROLE_DENIED = "Cannot bind argument to parameter 'UserRoles' because it is null."


class PowerShellError(Exception):
    """An exception the endpoint does not catch: New-CippCoreRequest turns it into 500 text/plain (§9)."""


class AccessDenied(Exception):
    """A throw inside Test-CIPPAccess: New-CippCoreRequest turns it into 403 text/plain (§5.5)."""


# -- PowerShell value semantics over the parsed JSON body (§2) ------------------------------------
def ps_get(value: Any, name: str) -> Any:
    """`$value.Name`: case-insensitive member access; on arrays, member enumeration (§2.2 step 3)."""
    if isinstance(value, dict):
        return _member(value, name)
    if isinstance(value, list):
        found: list[Any] = []
        for item in value:
            if isinstance(item, dict) and _has_member(item, name):
                member = _member(item, name)
                found.extend(member if isinstance(member, list) else [member])
        if not found:
            return None
        return found[0] if len(found) == 1 else found
    return None  # strings, numbers and $null have no such property


def _has_member(obj: dict[str, Any], name: str) -> bool:
    return any(key.lower() == name.lower() for key in obj)


def _member(obj: dict[str, Any], name: str) -> Any:
    return next((v for k, v in obj.items() if k.lower() == name.lower()), None)


def coalesce(value: Any, fallback: Any) -> Any:
    """PowerShell's `??`: only $null falls through ("" and false do not)."""
    return fallback if value is None else value


def body_client_id(body: Any) -> Any:
    """`$Request.Body.ClientId.value ?? $Request.Body.ClientId`: a GUID string or the frontend's {value,…}."""
    client_id = ps_get(body, "ClientId")
    return coalesce(ps_get(client_id, "value"), client_id)


def ps_truthy(value: Any) -> bool:
    """PowerShell truthiness, also what `[bool]` does: "" and 0 are false, "0" and "false" are true."""
    if value is None:
        return False
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return len(value) > 1 or (len(value) == 1 and ps_truthy(value[0]))
    return True


def ps_string(value: Any) -> str:
    """`[string]$value` / `"$value"`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(ps_string(item) for item in value)
    if isinstance(value, dict):
        return "@{" + "; ".join(f"{k}={ps_string(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ps_equals_true(value: Any) -> bool:
    """`$value -eq $true`: the right side is converted to the left side's type."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, int | float):
        return value == 1
    return False


def ps_trim(value: Any) -> str:
    """`$value.Trim()`, which only strings have (§2.2 step 3: a number here is an HTTP 500)."""
    if isinstance(value, str):
        return value.strip()
    if value is None:
        raise PowerShellError("You cannot call a method on a null-valued expression.")
    raise PowerShellError(
        f"Method invocation failed because [{dotnet_type_name(value)}] does not contain a method named 'Trim'."
    )


def dotnet_type_name(value: Any) -> str:
    """The .NET type ConvertFrom-Json gives a JSON value."""
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, list):
        return "System.Object[]"
    return "System.Management.Automation.PSCustomObject"


def ps_int(text: str) -> int:
    """`[int]"text"`: blank is 0, surrounding whitespace is ignored, anything else non-numeric throws."""
    stripped = text.strip()
    if not stripped:
        return 0
    if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", stripped):
        number = int(stripped, 16)
    elif re.fullmatch(r"[+-]?[0-9]+", stripped):
        number = int(stripped)
    else:
        raise ValueError(f"cannot convert {text!r} to System.Int32")
    if not -(2**31) <= number < 2**31:
        raise ValueError(f"{text!r} overflows System.Int32")
    return number


def parse_request_body(content_type: str | None, raw: bytes) -> Any:
    """The Functions worker parses JSON only without a Content-Type or with application/json (§2).

    Otherwise the body stays a raw string, and every `Body.X` is $null: returned here as None.
    """
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


# -- addresses, ranges and their storage (§3, §4, §5.2, §5.3, §5.6) -------------------------------
# §5.2, quoted from Test-CIPPAccess.ps1; only the group syntax differs ((?<IP>…) in .NET).
XFF_ADDRESS = re.compile(
    r"^(?P<IP>(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]+))(?::\d+)?$", re.IGNORECASE
)
# §2.2 step 3, quoted from Invoke-ExecApiClient.ps1; `-match` is case-insensitive.
VALID_RANGE_ENTRY = re.compile(
    r"^(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:/\d{1,2})?|(?:[0-9A-Fa-f]{1,4}:){1,7}[0-9A-Fa-f]{1,4}(?:/\d{1,3})?)$",
    re.IGNORECASE,
)
IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip_from_xff(header: str | None) -> str:
    """§5.2: the first comma-separated X-Forwarded-For entry, untrimmed, minus :port and brackets."""
    first = (header or "").split(",", 1)[0]
    return XFF_ADDRESS.sub(r"\g<IP>", first).replace("[", "").replace("]", "")


def parse_dotnet_ip(text: str) -> IpAddress:
    """`[System.Net.IPAddress]::Parse`: IPv6 when the text has a colon, else the legacy IPv4 forms.

    docs/cipp-api.md §5.6 [I]: like inet_aton, 1–4 parts, 0x-hex and leading-zero octal ("010.1.1.1" is 8.1.1.1).
    """
    if ":" in text:
        bracketed = re.fullmatch(r"\[([^\]]+)\](?::\d+)?", text)
        host = bracketed.group(1) if bracketed else text
        return ipaddress.IPv6Address(host.split("%", 1)[0])
    return ipaddress.IPv4Address(_ipv4_number(text))


def _ipv4_number(text: str) -> int:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        raise ValueError(f"not an IPv4 address: {text!r}")
    *leading, last = [_ipv4_part(part) for part in parts]
    if any(number > 255 for number in leading) or last >= 256 ** (4 - len(leading)):
        raise ValueError(f"IPv4 part out of range: {text!r}")
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return value


def _ipv4_part(part: str) -> int:
    if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
        return int(part[2:] or "0", 16)
    if re.fullmatch(r"0[0-7]+", part):
        return int(part, 8)
    if re.fullmatch(r"[0-9]+", part):
        return int(part)
    raise ValueError(f"not an IPv4 part: {part!r}")


def _big_integer(address: IpAddress, *, signed: bool) -> int:
    # docs/cipp-api.md §5.6: BigInteger.Parse(hex, HexNumber) reads a leading byte >= 0x80 as negative.
    return int.from_bytes(address.packed, "big", signed=signed)


def ip_in_range(address: str, cidr: str, *, sign_quirk: bool = True) -> bool:
    """Test-IpInRange.ps1 (§5.3): any exception, family mismatch or prefix > max bits is False."""
    try:
        ip = parse_dotnet_ip(address)
        range_parts = re.split("/", cidr)
        network = parse_dotnet_ip(range_parts[0])
        max_bits = 128 if network.version == 6 else 32
        prefix = ps_int(range_parts[1]) if len(range_parts) > 1 else max_bits
    except ValueError:
        return False
    if network.version != ip.version:
        return False
    shift = max_bits - prefix
    if shift < 0:
        return False  # BigInteger.Pow(2, negative) throws
    inverted_mask = -1 ^ (2**shift - 1)
    # docs/cipp-api.md §5.6: with the sign quirk a /0 mask misses every address >= 128.0.0.0 (or >= 8000::).
    ip_masked = _big_integer(ip, signed=sign_quirk) & inverted_mask
    network_masked = _big_integer(network, signed=sign_quirk) & inverted_mask
    return ip_masked == network_masked


def ip_is_allowed(client_ip: str, ranges: Sequence[Any], *, sign_quirk: bool) -> bool:
    """The allow-list loop of Test-CIPPAccess (§5.3); raises AccessDenied for a parameter-binding error."""
    if any(ps_string(entry).lower() == "any" for entry in ranges):
        return True
    for entry in ranges:
        text = ps_string(entry)
        if client_ip.lower() == text.lower():  # `-eq` runs first and is case-insensitive (§5.6)
            return True
        # docs/cipp-api.md §5.4: no X-Forwarded-For means "" for a mandatory [string] parameter → 403.
        if not client_ip:
            raise AccessDenied(binding_error_empty("IPAddress"))
        if not text:
            raise AccessDenied(binding_error_empty("Range"))
        if ip_in_range(client_ip, text, sign_quirk=sign_quirk):
            return True
    return False


def encode_ip_range(entries: Sequence[str]) -> str:
    """`"$(@($IpRange) | ConvertTo-Json -Compress)"` (§3): "" for none, a JSON string for one, else an array."""
    if not entries:
        return ""
    if len(entries) == 1:
        return json.dumps(entries[0], ensure_ascii=False)
    return json.dumps(list(entries), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class StoredRanges:
    """IPRange as Get-CippApiClient reads it back (§3)."""

    ranges: list[Any]
    stray_any: bool = False  # faithful "[]" bug: List output gains a bare "Any" string before the client


def decode_ip_range(raw: Any, *, faithful: bool) -> StoredRanges:
    if not ps_truthy(raw):
        return StoredRanges(["Any"])
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return StoredRanges(["Any"])
    entries = parsed if isinstance(parsed, list) else [parsed]
    if entries:
        return StoredRanges(entries)
    # docs/cipp-api.md §3: 10.8.2 emits @('Any') into the output instead of assigning it → deny all.
    return StoredRanges([], stray_any=True) if faithful else StoredRanges(["Any"])


def parse_ip_range_field(body: Any) -> tuple[list[str], list[str]]:
    """§2.2 step 3: `IPRange[].value` / `IPRange.value`, trimmed and regex-checked; (accepted, warnings)."""
    values = ps_get(ps_get(body, "IpRange"), "value")
    if not ps_truthy(values):
        return [], []  # includes a plain string array: strings have no .value → cleared (§2.2 ⚠️)
    accepted: list[str] = []
    warnings: list[str] = []
    for value in values if isinstance(values, list) else [values]:
        entry = ps_trim(value)
        if VALID_RANGE_ENTRY.search(entry):
            accepted.append(entry)
        else:
            warnings.append(f"'{entry}' is not a valid IP address or CIDR range.")
    return accepted, warnings


# -- roles and permissions (§8) -------------------------------------------------------------------
PERMISSION_AREAS = (
    "CIPP.Core",
    "CIPP.Extension",
    "CIPP.AppSettings",
    "CIPP.Admin",
    "CIPP.SuperAdmin",
    "CIPP.Scheduler",
    "Tenant.Administration",
    "Tenant.Standards",
    "Tenant.ConditionalAccess",
    "Identity.User",
    "Exchange.Mailbox",
)
KNOWN_PERMISSIONS = tuple(f"{area}.{level}" for area in PERMISSION_AREAS for level in ("Read", "ReadWrite"))
DEFAULT_ROLE_NAMES = ("superadmin", "admin", "editor", "readonly")
FALLBACK_ROLE = "cipp-api"


@dataclass(frozen=True)
class BaseRole:
    """One entry of Config/cipp-roles.json."""

    name: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def allows(self, permission: str) -> bool:
        """Any include `-like` the permission, and no exclude does (case-insensitive wildcards)."""

        def like(pattern: str) -> bool:
            return fnmatch.fnmatchcase(permission.lower(), pattern.lower())

        return any(map(like, self.include)) and not any(map(like, self.exclude))


_CIPP_PRIVILEGED = ("CIPP.SuperAdmin.*", "CIPP.Admin.*", "CIPP.AppSettings.*")
BASE_ROLES = {
    role.name: role
    for role in (
        BaseRole("readonly", ("*.Read",), _CIPP_PRIVILEGED),
        BaseRole("editor", ("*.Read", "*.ReadWrite"), (*_CIPP_PRIVILEGED, "Tenant.Standards.ReadWrite")),
        BaseRole("admin", ("*",), ("CIPP.SuperAdmin.*",)),
        BaseRole("superadmin", ("*",)),
    )
}


def find_base_role(role: str | None) -> BaseRole | None:
    return BASE_ROLES.get((role or "").lower())


def unique_sorted_roles(roles: Iterable[str]) -> list[str]:
    """`… | Sort-Object -Unique` after mapping blank roles to the cipp-api fallback (case-insensitive)."""
    named = sorted((role.strip() or FALLBACK_ROLE for role in roles), key=str.lower)
    unique: list[str] = []
    for role in named:
        if not unique or unique[-1].lower() != role.lower():
            unique.append(role)
    return unique


# -- custom roles (Invoke-ExecCustomRole.ps1, Get-CIPPRoleIPRanges.ps1) ------------------------------
CONVERT_TO_JSON_DEPTH = 2  # ConvertTo-Json's default -Depth: deeper values become their string form


def convert_to_json_piped(value: Any) -> str:
    """`"$($value | ConvertTo-Json -Compress)"`: an array is enumerated into the pipeline, so one element is
    written bare and none writes "" (the stored text of a role's fields and of IPRanges)."""
    if isinstance(value, list):
        if not value:
            return ""
        if len(value) == 1:
            value = value[0]
    if value is None:
        return ""
    return json.dumps(_depth_limited(value, 0), separators=(",", ":"), ensure_ascii=False)


def _depth_limited(value: Any, level: int) -> Any:
    if isinstance(value, dict | list) and level > CONVERT_TO_JSON_DEPTH:
        return ps_string(value)
    if isinstance(value, dict):
        return {k: _depth_limited(v, level + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_depth_limited(v, level + 1) for v in value]
    return value


def _stored_list(text: Any) -> list[Any]:
    """`if ($Role.X) { @($Role.X | ConvertFrom-Json) } else { @() }`, a parse failure read as @()."""
    if not ps_truthy(text):
        return []
    try:
        parsed = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return []
    return parsed if isinstance(parsed, list) else [parsed]


def permissions_object(permissions: Sequence[str]) -> dict[str, str]:
    """A role's Permissions as the frontend sends them (CippRoleAddEdit.jsx): {"<cat><obj>": "<cat>.<obj>.<level>"}."""
    stored: dict[str, str] = {}
    for permission in permissions:
        key = re.sub(r"\.(ReadWrite|Read|None)$", "", permission).replace(".", "")
        stored[key if key not in stored else permission] = permission
    return stored


# -- state ----------------------------------------------------------------------------------------
@dataclass
class ClientRow:
    """One row of the ApiClients table, as stored (IPRange in its raw encoding, §3)."""

    client_id: str
    app_name: str
    role: str
    ip_range: str
    enabled: Any  # stored as sent: a JSON boolean, or e.g. the string "true" that SaveToAzure ignores
    mcp_allowed: Any

    def as_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION_KEY,
            "RowKey": self.client_id,
            "AppName": self.app_name,
            "Role": self.role,
            "IPRange": self.ip_range,
            "Enabled": self.enabled,
            "MCPAllowed": self.mcp_allowed,
        }


@dataclass
class EntraApp:
    """The Entra app registration behind a client, as New-CIPPAPIConfig sees it through Graph."""

    client_id: str
    display_name: str | None
    secrets: list[str] = field(default_factory=list)
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identifier_uri_ok: bool = True
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


@dataclass(frozen=True)
class SecretReset:
    """Every secret of a client deleted and one new secret added (§2.2 step 2)."""

    client_id: str
    trigger: str  # "ResetSecret" or "AddUpdate" (CIPPAPI.ResetSecret)
    deleted_secrets: int
    new_secret: str


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    body: str
    status: int
    client_id: str | None  # the caller EasyAuth let through; None for identity calls and 401s
    xff: str | None
    response_body: str
    received: float = 0.0  # time.perf_counter() when the request reached CIPP, and when its answer was ready:
    answered: float = 0.0  # instrumentation for measurements (bench/bench_part_c_window.py), not CIPP behaviour


@dataclass(frozen=True)
class GraphFailure:
    error: str
    retry: bool


@dataclass(frozen=True)
class ApiConfig:
    """What New-CIPPAPIConfig returns."""

    app_name: str | None
    application_id: str
    application_secret: str | None


@dataclass(frozen=True)
class RoleLimits:
    """A custom role's limits, as Get-CIPPRolePermissions returns them (AllowedTenants empty when unset)."""

    allowed_tenants: tuple[str, ...] = ()
    blocked_tenants: tuple[str, ...] = ()
    blocked_endpoints: tuple[str, ...] = ()


def _tenant_filter(call: Call | None) -> str:
    """Test-CIPPAccess: Query.tenantFilter ?? Body.tenantFilter.value ?? Body.tenantFilter ?? … tenantId."""
    if call is None:
        return ""
    body_filter = ps_get(call.body, "tenantFilter")
    body_tenant = ps_get(call.body, "tenantId")
    for value in (
        call.query_value("tenantFilter"),
        ps_get(body_filter, "value"),
        body_filter,
        call.query_value("tenantId"),
        ps_get(body_tenant, "value"),
        body_tenant,
    ):
        if value is not None:
            return ps_string(value)
    return ""


class GraphSetupError(PowerShellError):
    """New-CIPPAPIConfig threw; `app` is set when the app was found, which makes a retry possible."""

    def __init__(self, message: str, app: EntraApp | None) -> None:
        super().__init__(message)
        self.app = app

    def result_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"resultText": GRAPH_FAILURE_PREFIX + str(self), "state": "error"}
        if self.app is not None:
            entry["retryAvailable"] = True
            entry["retryPayload"] = {
                "RetrySetup": True,
                "ClientId": self.app.client_id,
                "CIPPAPI": {"ResetSecret": True},
                "ApplicationObjectID": self.app.object_id,
            }
        return entry


# -- ListTenants (Invoke-ListTenants over Get-Tenants -IncludeErrors -SkipDomains) -------------------
LIST_TENANTS_FAILED = "Failed to retrieve tenants. Perform a permission check."
GDAP_STATUS = "granularDelegatedAdminPrivileges"
DIRECT_STATUS = "directTenant"  # set by ExecAddTenant when a tenant is added in Direct Tenant mode


def tenant_entity(
    customer_id: str,
    default_domain: str,
    display_name: str | None = None,
    *,
    direct: bool = False,
    graph_errors: int = 0,
    last_error: str = "",
    excluded: bool = False,
) -> dict[str, Any]:
    """One row of CIPP's Tenants table as Get-Tenants builds it from a GDAP relationship (or a direct add)."""
    return {
        "PartitionKey": "Tenants",
        "RowKey": customer_id,
        "customerId": customer_id,
        "displayName": display_name or default_domain,
        "relationshipEnd": "2027-01-01T00:00:00Z",
        "relationshipCount": 0 if direct else 1,
        "defaultDomainName": default_domain,
        "initialDomainName": default_domain,
        "hasAutoExtend": not direct,
        "delegatedPrivilegeStatus": DIRECT_STATUS if direct else GDAP_STATUS,
        "domains": "",
        "Excluded": excluded,
        "ExcludeUser": "",
        "ExcludeDate": "",
        "GraphErrorCount": graph_errors,
        "LastGraphError": last_error,
        "RequiresRefresh": False,
        "LastRefresh": "2026-09-01T04:00:00Z",
    }


def partner_tenant_entity(tenant_id: str, initial_domain: str) -> dict[str, Any]:
    """The MSP's own tenant, listed when CIPP's tenant mode is PartnerTenantAvailable."""
    return {
        "RowKey": tenant_id,
        "PartitionKey": "Tenants",
        "customerId": tenant_id,
        "defaultDomainName": initial_domain,
        "initialDomainName": initial_domain,
        "displayName": "*Partner Tenant",
        "domains": "PartnerTenant",
        "Excluded": False,
        "ExcludeUser": "",
        "ExcludeDate": "",
        "GraphErrorCount": 0,
        "LastGraphError": "",
        "RequiresRefresh": False,
        "LastRefresh": "2026-09-01T04:00:00Z",
    }


# -- HTTP shapes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]  # keys lower-cased: the request round-trip makes them case-insensitive (§2)
    headers: dict[str, str]  # keys lower-cased
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def text_response(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, text.encode())


def json_response(status: int, value: Any, *, indent: int | None = None) -> HttpResponse:
    separators = None if indent else (",", ":")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators)
    return HttpResponse(status, text.encode(), "application/json; charset=utf-8")


def body_response(body: Any, status: int = 200) -> HttpResponse:
    """How the PowerShell worker serializes a response body (§9)."""
    if body is None:
        return text_response(status, "")  # e.g. List on an empty table
    if isinstance(body, str):
        try:
            json.loads(body)
        except json.JSONDecodeError:
            return text_response(status, body)
        return HttpResponse(status, body.encode(), "application/json; charset=utf-8")
    return json_response(status, body)


@dataclass(frozen=True)
class Call:
    """One endpoint invocation: who calls, and the request as the endpoint sees it."""

    caller_id: str
    query: dict[str, str]
    body: Any  # parsed JSON, or None when the worker left the body a raw string

    def query_value(self, name: str) -> str | None:
        return self.query.get(name.lower())


API_PATH = re.compile(r"^/api/(?P<endpoint>.+)$", re.IGNORECASE)
TOKEN_PATH = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
OPENID_PATH = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")


class CippEmulator:
    """CIPP-API on https://127.0.0.1:<port>, with a state API for tests (see the module docstring)."""

    def __init__(
        self,
        tls: TestTLS,
        directory: Directory | None = None,
        tenant_id: str = DEFAULT_TENANT_ID,
        serve_identity: bool = True,
        faithful: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.tls = tls
        self.directory = directory if directory is not None else Directory()
        self.tenant_id = tenant_id.lower()
        self.serve_identity = serve_identity
        self.faithful = faithful
        self.easyauth_denied_status = 401  # §14: "configurable to 403"
        self.sam_has_graph_permissions = True  # False: New-CIPPAPIConfig throws the permissions error
        self.managed_identity_has_arm_rights = True  # False: SaveToAzure/GetAzureConfiguration fail (§6)
        # Get-CippApiClient versions that select only ClientId, AppName, Role, IPRange and Enabled leave MCPAllowed
        # out of List while AddUpdate still resets it (docs/part-c.md "MCPAllowed"); False plays such a version.
        self.list_shows_mcp_allowed = True
        # In front of a real CIPP, App Service always sets X-Forwarded-For to the caller's address:port; set this to
        # play that caller. None (the default) leaves requests without the header, which CIPP denies (§5.4).
        self.egress_ip: str | None = None
        # ListTenants: rows of CIPP's Tenants table (`tenant_entity`), plus the partner tenant itself when
        # CIPP's tenant mode lists it; `tenant_listing_failure` makes Get-Tenants throw that message.
        self.tenants: list[dict[str, Any]] = [
            tenant_entity(str(uuid.UUID(int=1)), "contoso.onmicrosoft.com", "Contoso"),
        ]
        self.partner_tenant_listed = False
        self.tenant_listing_failure: str | None = None
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._clients: dict[str, ClientRow] = {}
        self._apps: dict[str, EntraApp] = {}
        self._custom_roles: dict[str, tuple[str, ...]] = {}
        self._role_limits: dict[str, RoleLimits] = {}
        # Invoke-ExecCustomRole.ps1's three tables, by RowKey: CustomRoles (entities with JSON-text fields),
        # AccessIPRanges (IPRanges JSON text) and AccessRoleGroups ((GroupId, GroupName)).
        self._role_rows: dict[str, dict[str, Any]] = {}
        self._access_ip_ranges: dict[str, str] = {}
        self._access_role_groups: dict[str, tuple[str, str]] = {}
        # Graph's transitiveMemberOf for signed-in users (Test-CIPPAccessUserRole): user principal name → group ids.
        self.user_groups: dict[str, set[str]] = {}
        # Users reach the Function App through the Static Web App, which hands it x-ms-client-principal [I].
        self.accept_user_principals = True
        self._easyauth_allowed: set[str] = set()
        self._easyauth_mcp: set[str] = set()  # MCP clients at the last SaveToAzure: their extra audiences
        self._graph_failures: deque[GraphFailure] = deque()
        self._mcp_failures: deque[str] = deque()
        self._secret_resets: list[SecretReset] = []
        self._requests: list[RequestRecord] = []
        self._server: _TlsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._actions: dict[str, Callable[[Call], Any]] = {
            "list": self._action_list,
            "listavailable": self._action_list_available,
            "addupdate": self._action_add_update,
            "getazureconfiguration": self._action_get_azure_configuration,
            "savetoazure": self._action_save_to_azure,
            "resetsecret": self._action_reset_secret,
            "repairuri": self._action_repair_uri,
            "delete": self._action_delete,
        }

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"https://{host}:{self._server.server_address[1]}"

    def start(self) -> CippEmulator:
        server = _TlsHttpServer((self._host, self._port), self, self.tls.server_context())
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> CippEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- state API for tests ---------------------------------------------------------------------
    def add_client(
        self,
        client_id: str,
        app_name: str = "",
        role: str = "",
        ip_ranges: Sequence[str] | str = (),
        enabled: Any = True,
        mcp_allowed: Any = False,
        secret: str | None = None,
    ) -> ClientRow:
        """Seed a table row (and its app registration). A str `ip_ranges` is stored raw, verbatim."""
        raw = ip_ranges if isinstance(ip_ranges, str) else encode_ip_range(list(ip_ranges))
        row = ClientRow(client_id, app_name, role, raw, enabled, mcp_allowed)
        with self._lock:
            self._clients[client_id] = row
            app = self._find_app(client_id) or self._apps.setdefault(client_id, EntraApp(client_id, None))
            app.display_name = app_name or app.display_name
            if secret is not None:
                app.secrets = [secret]
                self._sync_directory_secret(app, secret)
        return replace(row)

    def add_custom_role(
        self,
        name: str,
        permissions: Sequence[str],
        *,
        allowed_tenants: Sequence[str] = ("AllTenants",),
        blocked_tenants: Sequence[str] = (),
        blocked_endpoints: Sequence[str] = (),
    ) -> None:
        """A custom role (table RowKey, matched case-sensitively, §8) with its tenant and endpoint limits.

        Tenants are customer ids or "AllTenants"; endpoints are names as routed ("ExecApiClient").
        """
        with self._lock:
            self._role_rows[name] = {
                "PartitionKey": "CustomRoles",
                "RowKey": name,
                "Permissions": convert_to_json_piped(permissions_object(permissions)),
                "AllowedTenants": convert_to_json_piped(list(allowed_tenants)),
                "BlockedTenants": convert_to_json_piped(list(blocked_tenants)),
                "BlockedEndpoints": convert_to_json_piped(list(blocked_endpoints)),
            }
            self._load_role(name)

    def set_role_ip_ranges(self, role: str, ranges: Sequence[str]) -> None:
        """Seed the AccessIPRanges row of a role (any role, built-in ones too), as ExecCustomRole stores it."""
        with self._lock:
            if ranges:
                self._access_ip_ranges[role.lower()] = convert_to_json_piped(list(ranges))
            else:
                self._access_ip_ranges.pop(role.lower(), None)

    def assign_role_group(self, role: str, group_id: str, group_name: str) -> None:
        """An Entra security group whose members hold `role` (AccessRoleGroups, Test-CIPPAccessUserRole)."""
        with self._lock:
            self._access_role_groups[role.lower()] = (group_id, group_name)

    def custom_role_tables(self, role: str) -> dict[str, Any]:
        """The stored rows of one role in the three tables (None where it has none), verbatim."""
        with self._lock:
            key = role.lower()
            group = self._access_role_groups.get(key)
            return {
                "CustomRoles": dict(self._role_rows[key]) if key in self._role_rows else None,
                "AccessIPRanges": self._access_ip_ranges.get(key),
                "AccessRoleGroups": {"GroupId": group[0], "GroupName": group[1]} if group else None,
            }

    def _load_role(self, row_key: str) -> None:
        """Get-CIPPRolePermissions.ps1 over the stored row: what the access check uses."""
        row = self._role_rows[row_key]
        try:
            stored = json.loads(row.get("Permissions") or "{}")
        except json.JSONDecodeError:
            stored = {}
        values = list(stored.values()) if isinstance(stored, dict) else []
        self._custom_roles[row_key] = tuple(ps_string(value) for value in values)
        self._role_limits[row_key] = RoleLimits(
            *(tuple(_stored_list(row.get(field))) for field in ("AllowedTenants", "BlockedTenants", "BlockedEndpoints"))
        )

    def client_row(self, client_id: str) -> dict[str, Any] | None:
        """The raw stored entity, IPRange in its stored encoding; None when there is no row."""
        with self._lock:
            row = self._clients.get(client_id)
            return row.as_entity() if row else None

    def current_secret(self, client_id: str) -> str | None:
        with self._lock:
            app = self._apps.get(client_id)
            return app.secrets[-1] if app and app.secrets else None

    def break_identifier_uri(self, client_id: str) -> None:
        """Make RepairUri find the identifier URI missing."""
        with self._lock:
            self._app_for(client_id).identifier_uri_ok = False

    def save_to_azure(self) -> None:
        """What SaveToAzure does to EasyAuth (§6, §14): allow exactly the rows with Enabled = true.

        Set-CippApiAuth.ps1: audiences are api://<id> per allowed client; when any of them is MCPAllowed,
        also https://<host>, https://<host>/api/ExecMcp and each MCP client's bare application id.
        """
        with self._lock:
            # OData `Enabled eq true` only matches a boolean true (the string "true" does not, §2.2).
            self._easyauth_allowed = {cid for cid, row in self._clients.items() if row.enabled is True}
            # Invoke-ExecApiClient compares "$($_.MCPAllowed)" -eq 'True' (a string, case-insensitive).
            self._easyauth_mcp = {
                cid for cid in self._easyauth_allowed if ps_string(self._clients[cid].mcp_allowed).lower() == "true"
            }

    @property
    def easyauth_allowed(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._easyauth_allowed)

    @easyauth_allowed.setter
    def easyauth_allowed(self, client_ids: Iterable[str]) -> None:
        with self._lock:
            self._easyauth_allowed = set(client_ids)
            self._easyauth_mcp &= self._easyauth_allowed

    def easyauth_audiences(self) -> frozenset[str]:
        """allowedAudiences as the last SaveToAzure wrote them (lower-cased)."""
        with self._lock:
            audiences = {f"api://{client_id}" for client_id in self._easyauth_allowed}
            if self._easyauth_mcp and self._server is not None:
                audiences |= {self.url, f"{self.url}/api/ExecMcp", *self._easyauth_mcp}
            return frozenset(audience.lower() for audience in audiences)

    def graph_failure_next_addupdate(self, error: str = DEFAULT_GRAPH_FAILURE, retry: bool = True) -> None:
        """Make the next AddUpdate's Graph step throw `error` after finding/creating the app."""
        with self._lock:
            self._graph_failures.append(GraphFailure(error, retry))

    def mcp_failure_next(self, error: str) -> None:
        """Make the next Set-CIPPMCPClientApp throw `error` (AddUpdate then warns, §2.2 step 5)."""
        with self._lock:
            self._mcp_failures.append(error)

    def add_tenant(self, customer_id: str, default_domain: str, display_name: str | None = None, **kw: Any) -> None:
        """A tenant CIPP manages (keywords of `tenant_entity`: direct, graph_errors, last_error, excluded)."""
        with self._lock:
            self.tenants.append(tenant_entity(customer_id, default_domain, display_name, **kw))

    def secrets_reset_count(self, client_id: str) -> int:
        with self._lock:
            return sum(1 for reset in self._secret_resets if reset.client_id == client_id)

    @property
    def secret_resets(self) -> list[SecretReset]:
        with self._lock:
            return list(self._secret_resets)

    @property
    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    # -- the request pipeline --------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        received = time.perf_counter()
        if self.egress_ip and "x-forwarded-for" not in request.headers:
            headers = {**request.headers, "x-forwarded-for": f"{self.egress_ip}:50123"}
            request = dataclasses.replace(request, headers=headers)
        try:
            response, caller = self._route(request)
        except Exception as bug:  # an emulator bug: say so instead of dropping the connection
            traceback.print_exc()
            response, caller = text_response(500, f"CIPP emulator error: {bug!r}"), None
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=request.body.decode("utf-8", "replace"),
            status=response.status,
            client_id=caller,
            xff=request.headers.get("x-forwarded-for"),
            response_body=response.body.decode("utf-8", "replace"),
            received=received,
            answered=time.perf_counter(),
        )
        with self._lock:
            self._requests.append(record)
        return response

    def _route(self, request: HttpRequest) -> tuple[HttpResponse, str | None]:
        if self.serve_identity and (identity := self._identity_response(request)) is not None:
            return identity, None
        match = API_PATH.match(request.path)
        if match is None:
            return HttpResponse(404), None
        principal = request.headers.get("x-ms-client-principal")
        if principal and self.accept_user_principals and "authorization" not in request.headers:
            return self._user_request(match.group("endpoint"), request, principal), None
        caller = self._easyauth_caller(request.headers.get("authorization"))
        if caller is None:
            return HttpResponse(self.easyauth_denied_status, headers=(("WWW-Authenticate", "Bearer"),)), None
        return self._core_request(match.group("endpoint"), request, caller), caller

    def _identity_response(self, request: HttpRequest) -> HttpResponse | None:
        if request.method == "POST" and (token := TOKEN_PATH.match(request.path)):
            form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
            status, payload = self.directory.token_response(token.group("tenant"), form)
            return json_response(status, payload)
        if request.method == "GET" and (discovery := OPENID_PATH.match(request.path)):
            return json_response(200, openid_configuration(self.url, discovery.group("tenant")))
        return None

    def _easyauth_caller(self, authorization: str | None) -> str | None:
        """EasyAuth (§1, §6, §7): allowedApplications, allowedAudiences and the allowed tenant."""
        try:
            claims = self.directory.verify_bearer(authorization)
        except InvalidToken:
            return None
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        with self._lock:
            allowed = {client_id.lower() for client_id in self._easyauth_allowed}
        # allowedAudiences is one list for every allowed application (authsettingsV2), not one per caller.
        audience_ok = str(claims.get("aud", "")).lower() in self.easyauth_audiences()
        tenant_ok = str(claims.get("tid", "")).lower() == self.tenant_id
        return app_id if app_id.lower() in allowed and audience_ok and tenant_ok else None

    def _core_request(self, endpoint_name: str, request: HttpRequest, caller: str) -> HttpResponse:
        """New-CippCoreRequest (§9): 404 before the access check, 403/500 from exceptions."""
        endpoint = endpoint_name.lower()  # Get-Command is case-insensitive
        if endpoint not in ("execapiclient", "listtenants", "me", "execcustomrole"):
            return text_response(404, ENDPOINT_NOT_FOUND)
        body = parse_request_body(request.headers.get("content-type"), request.body)
        call = Call(caller, request.query, body)
        xff = request.headers.get("x-forwarded-for")
        with self._lock:
            try:
                if endpoint == "me":
                    return self._me(caller, xff)
                if endpoint == "listtenants":
                    self._test_access(caller, xff, "CIPP.Core.Read", endpoint_name, call)
                    return body_response(self._list_tenants())
                if endpoint == "execcustomrole":
                    self._test_access(caller, xff, "CIPP.SuperAdmin.ReadWrite", endpoint_name, call)
                    return body_response(self._exec_custom_role(call))
                self._test_access(caller, xff, "CIPP.Extension.ReadWrite", endpoint_name, call)
                return body_response(self._exec_api_client(call))
            except AccessDenied as denial:
                return text_response(403, str(denial))
            except PowerShellError as error:
                return text_response(500, str(error))

    # -- Test-CIPPAccess (§5, §8) -----------------------------------------------------------------
    def _caller_role(self, caller: str, xff: str | None) -> str | None:
        """The IP check, then the caller's role; None means the cipp-api fallback (no row, or no role)."""
        row = self._clients.get(caller)
        if row is None:
            return None  # §5.4: a client missing from the table skips the IP check entirely
        stored = decode_ip_range(row.ip_range, faithful=self.faithful)
        if not ip_is_allowed(client_ip_from_xff(xff), stored.ranges, sign_quirk=self.faithful):
            raise AccessDenied(API_CLIENT_DENIED)
        return row.role if ps_truthy(row.role) else None

    def _test_access(
        self, caller: str, xff: str | None, permission: str, endpoint: str = "", call: Call | None = None
    ) -> None:
        role = self._caller_role(caller, xff)
        base_role = find_base_role(role)
        if base_role is not None:
            if not base_role.allows(permission):
                raise AccessDenied(BASE_ROLE_DENIED.format(role=base_role.name, permission=permission))
            return
        self._test_custom_role(role or FALLBACK_ROLE, permission, endpoint, call)

    def _test_custom_role(self, custom_role: str, permission: str, endpoint: str, call: Call | None) -> None:
        custom_permissions = self._custom_roles.get(custom_role)
        if custom_permissions is None:
            raise AccessDenied(NO_ROLE_DENIED)  # §14 step 3: roleless (or unknown role) client
        # Test-CIPPAccess matches with `$Perm -match $APIRole`: the endpoint permission is a regex.
        grants = any(re.search(permission, granted, re.IGNORECASE) for granted in custom_permissions)
        limits = self._role_limits.get(custom_role, RoleLimits())
        tenant_filter = _tenant_filter(call)
        # Block pass first: deny wins when the blocking role grants the permission and covers the target.
        blocked = any(endpoint.lower() == name.lower() for name in limits.blocked_endpoints)
        if grants and blocked and self._tenant_in_scope(limits, tenant_filter, permission, unresolved_in_scope=True):
            raise AccessDenied(BLOCKED_ENDPOINT_DENIED.format(role=custom_role, endpoint=endpoint))
        if not grants:
            raise AccessDenied(CUSTOM_ROLE_DENIED.format(permission=permission))
        if not self._tenant_in_scope(limits, tenant_filter, permission):
            raise AccessDenied(TENANT_DENIED)

    def _tenant_in_scope(
        self, limits: RoleLimits, tenant_filter: str, permission: str, *, unresolved_in_scope: bool = False
    ) -> bool:
        """Test-CippRoleTenantScope.ps1 without tenant groups: does the role cover the request's tenant?"""
        if not limits.blocked_tenants and "alltenants" in (t.lower() for t in limits.allowed_tenants):
            return True
        if tenant_filter.lower() == "alltenants" and re.search("Write$", permission, re.IGNORECASE):
            return False
        if tenant_filter.lower() == "alltenants" and re.search("Read$", permission, re.IGNORECASE):
            return True
        known = [str(t.get("customerId") or "") for t in self.tenants]
        tenant = next(
            (
                str(t.get("customerId"))
                for t in self.tenants
                if tenant_filter
                and tenant_filter.lower() in (str(t.get("customerId")).lower(), str(t.get("defaultDomainName")).lower())
            ),
            None,
        )
        allowed = known if "alltenants" in (t.lower() for t in limits.allowed_tenants) else list(limits.allowed_tenants)
        if tenant:
            lowered = tenant.lower()
            return lowered in (a.lower() for a in allowed) and lowered not in (
                b.lower() for b in limits.blocked_tenants
            )
        if not tenant_filter.strip() or tenant_filter.lower() == "alltenants":
            return True  # not scoped to one tenant: the role is in scope
        return unresolved_in_scope

    # -- Test-CIPPAccess, user branch (a technician signed in to CIPP) ---------------------------------
    def _user_request(self, endpoint_name: str, request: HttpRequest, principal: str) -> HttpResponse:
        """Test-CIPPAccess.ps1 for a user: roles, then the roles' IP ranges (first X-Forwarded-For hop), then
        the base or custom role's permission. Endpoints: ListTenants (CIPP.Core.Read) and me."""
        endpoint = endpoint_name.lower()
        if endpoint not in ("listtenants", "me"):
            return text_response(404, ENDPOINT_NOT_FOUND)
        call = Call("", request.query, parse_request_body(request.headers.get("content-type"), request.body))
        with self._lock:
            try:
                user = _decode_principal(principal)
                roles = self._user_roles(user)
                if not roles:
                    raise AccessDenied(USER_NO_ROLES_DENIED)
                ip = client_ip_from_xff(request.headers.get("x-forwarded-for"))
                allowed = self._ip_allowed_for_roles(roles, ip)
                if endpoint == "me":
                    return self._user_me(user, roles, allowed, ip)
                if not allowed:
                    raise AccessDenied(USER_IP_DENIED.format(ip=ip))
                self._test_user_permission(roles, "CIPP.Core.Read", endpoint_name, call)
                return body_response(self._list_tenants())
            except AccessDenied as denial:
                return text_response(403, str(denial))
            except PowerShellError as error:
                return text_response(500, str(error))

    def _user_roles(self, user: dict[str, Any]) -> list[str]:
        """Test-CIPPAccessUserRole.ps1: with only the two SWA roles, the roles of the user's Entra groups."""
        roles = [ps_string(role) for role in user.get("userRoles") or []]
        if sorted(role.lower() for role in roles) != ["anonymous", "authenticated"]:
            return roles
        memberships = self.user_groups.get(ps_string(user.get("userDetails")), set())
        custom = {key.lower() for key in self._role_rows}
        from_groups = [
            row_key
            for row_key, (group_id, _) in self._access_role_groups.items()
            if group_id in memberships and (row_key in custom or row_key in DEFAULT_ROLE_NAMES)
        ]
        return from_groups + roles

    def _ip_allowed_for_roles(self, roles: Sequence[str], ip: str) -> bool:
        """Get-CIPPRoleIPRanges.ps1, then Test-CIPPAccess's loop: superadmin, or no role with ranges, is Any;
        an empty address (no X-Forwarded-For) is let through."""
        if any(role.lower() == "superadmin" for role in roles):
            return True
        ranges: list[str] = []
        for role in roles:
            for entry in _stored_list(self._access_ip_ranges.get(role.lower())):
                if ps_truthy(entry) and ps_string(entry) not in ranges:
                    ranges.append(ps_string(entry))
        if not ranges or not ip:
            return True
        return any(ip.lower() == entry.lower() or ip_in_range(ip, entry, sign_quirk=self.faithful) for entry in ranges)

    def _user_me(self, user: dict[str, Any], roles: list[str], allowed: bool, ip: str) -> HttpResponse:
        if not allowed:
            me: dict[str, Any] = {
                "clientPrincipal": None,
                "permissions": [],
                "message": USER_ME_IP_MESSAGE.format(ip=ip),
            }
        else:
            permissions = sorted(set().union(*(self._role_permissions(role) for role in roles)))
            me = {"clientPrincipal": {**user, "userRoles": roles}, "permissions": permissions}
        return body_response(json.dumps(me, indent=2))

    def _test_user_permission(self, roles: list[str], permission: str, endpoint: str, call: Call) -> None:
        """The base-role check (the last role of cipp-roles.json the user holds), then the custom roles'."""
        custom = [role for role in roles if role.lower() not in (*DEFAULT_ROLE_NAMES, "anonymous", "authenticated")]
        held = {role.lower() for role in roles}
        held = {"superadmin"} if "superadmin" in held else {"admin"} if "admin" in held else held
        base = next((BASE_ROLES[name] for name in reversed(BASE_ROLES) if name in held), None)
        if base is not None and not base.allows(permission):
            raise AccessDenied(BASE_ROLE_DENIED.format(role=base.name, permission=permission))
        if base is not None and (base.name in ("admin", "superadmin") or not custom):
            return
        if not custom:
            raise AccessDenied(NO_ROLE_DENIED)
        # One custom role is exact; with several, the first that allows wins and else the first denial is
        # raised (Test-CIPPAccess's loop over several roles has order effects not modelled here).
        denials = []
        for role in custom:
            try:
                self._test_custom_role(role, permission, endpoint, call)
                return
            except AccessDenied as denial:
                denials.append(denial)
        raise denials[0]

    def _me(self, caller: str, xff: str | None) -> HttpResponse:
        """GET /api/me for an API client (§5.4): after the IP check, custom roles only."""
        role = self._caller_role(caller, xff)
        if find_base_role(role) is not None:
            raise AccessDenied(ME_BUILT_IN_ROLE_DENIED)
        custom_role = role or FALLBACK_ROLE
        me = {
            "clientPrincipal": {"appId": caller, "appRole": [custom_role]},
            "permissions": sorted(self._custom_roles.get(custom_role, ())),
        }
        return body_response(json.dumps(me, indent=2))  # a JSON *string* body (ConvertTo-Json)

    def _list_tenants(self) -> list[dict[str, Any]]:
        """Invoke-ListTenants without a filter: `@($Body)`, always HTTP 200; on a throw, one error entry."""
        if self.tenant_listing_failure is not None:
            return [
                {
                    "Results": f"Failed to retrieve tenants: {self.tenant_listing_failure}",
                    "defaultDomainName": "",
                    "displayName": LIST_TENANTS_FAILED,
                    "customerId": "",
                }
            ]
        rows = [dict(row) for row in self.tenants if row.get("Excluded") is not True]  # -IncludeErrors keeps errors
        if self.partner_tenant_listed:
            rows.append(partner_tenant_entity(self.tenant_id, "partner.onmicrosoft.com"))
        # Get-Tenants drops rows without a default domain (or a 'Domain Error' one) and sorts by display name.
        kept = [r for r in rows if r.get("defaultDomainName") is not None and not _domain_error(r)]
        return sorted(kept, key=lambda row: str(row.get("displayName") or "").lower())

    def _role_permissions(self, role: str) -> frozenset[str]:
        """Get-CippAllowedPermissions for one role, over the known permissions plus custom ones."""
        base_role = find_base_role(role)
        if base_role is None:
            return frozenset(self._custom_roles.get(role, ()))
        universe = {*KNOWN_PERMISSIONS, *(p for perms in self._custom_roles.values() for p in perms)}
        return frozenset(p for p in universe if base_role.allows(p))

    def _role_grant_denial(self, caller: str, target_roles: Sequence[str]) -> str | None:
        """Test-CippApiClientRoleGrant (§8): the target's permissions must be a subset of the caller's."""
        caller_row = self._clients.get(caller)
        caller_role = caller_row.role if caller_row is not None and ps_truthy(caller_row.role) else FALLBACK_ROLE
        if caller_role.lower() == "superadmin":
            return None
        caller_permissions = self._role_permissions(caller_role)
        for target in unique_sorted_roles(target_roles):
            lowered = target.lower()
            if lowered in ("anonymous", "authenticated"):
                return ROLE_NOT_ASSIGNABLE.format(role=target)
            if lowered not in (*DEFAULT_ROLE_NAMES, FALLBACK_ROLE) and target not in self._custom_roles:
                return ROLE_DOES_NOT_EXIST.format(role=target)
            if self._role_permissions(target) - caller_permissions:
                return ESCALATION_DENIED.format(role=target)
        return None

    # -- ExecApiClient (§2) -----------------------------------------------------------------------
    # -- ExecCustomRole (Invoke-ExecCustomRole.ps1) -----------------------------------------------------
    def _exec_custom_role(self, call: Call) -> Any:
        role_name = ps_get(call.body, "RoleName")
        if ps_string(role_name).lower() in ("anonymous", "authenticated"):
            raise PowerShellError(f"Role name {ps_string(role_name)} cannot be used")
        action = ps_string(coalesce(call.query_value("Action"), ps_get(call.body, "Action"))).lower()
        if action == "addupdate":
            try:
                return {"Results": self._custom_role_add_update(call.body, role_name)}
            except PowerShellError:
                return {"Results": f"Failed to save custom role {ps_string(role_name)}"}
        if action in ("clone", "delete", "listentragroups"):
            raise PowerShellError(f"ExecCustomRole {action} is not modelled by the emulator")
        return self._custom_role_list()

    def _custom_role_add_update(self, body: Any, role_name: Any) -> list[str]:
        if not isinstance(role_name, str):
            raise PowerShellError("You cannot call a method on a null-valued expression.")  # .ToLower() on $null
        name, key = role_name, role_name.lower()
        is_superadmin = key == "superadmin"  # PowerShell's -ne / -eq: case-insensitive
        results: list[str] = []
        ranges: list[str] = []
        requested = ps_get(body, "IpRange")
        if ps_truthy(requested) and not is_superadmin:
            entries = requested if isinstance(requested, list) else [requested]
            ranges = [ps_string(entry) for entry in entries if VALID_RANGE_ENTRY.search(ps_string(entry))]
        if key not in DEFAULT_ROLE_NAMES:
            self._role_rows[key] = {
                "PartitionKey": "CustomRoles",
                "RowKey": key,
                **{
                    field: convert_to_json_piped(ps_get(body, field))
                    for field in ("Permissions", "AllowedTenants", "BlockedTenants", "BlockedEndpoints")
                },
            }
            self._load_role(key)
            results.append(f"Custom role {name} saved")
        if is_superadmin and ps_truthy(requested):
            results.append("Note: IP restrictions are not allowed on the superadmin role to prevent lockout issues.")
        if ranges and not is_superadmin:
            self._access_ip_ranges[key] = convert_to_json_piped(ranges)
            results.append(f"IP ranges configured for '{name}' role.")
        elif self._access_ip_ranges.pop(key, None) is not None and not is_superadmin:
            results.append(f"IP ranges removed from '{name}' role.")
        group = ps_get(body, "EntraGroup")
        if ps_truthy(group):
            self._access_role_groups[key] = (ps_string(ps_get(group, "value")), ps_string(ps_get(group, "label")))
            results.append(f"Security group '{ps_string(ps_get(group, 'label'))}' assigned to the '{name}' role.")
        elif name in self._access_role_groups:  # the filter here is "RowKey eq '$RoleName'": not lower-cased
            removed = self._access_role_groups.pop(name)
            results.append(f"Security group '{removed[1]}' removed from the '{name}' role.")
        return results

    def _custom_role_list(self) -> list[dict[str, Any]]:
        """The default action: custom roles (fields parsed) sorted by RowKey, after the built-in ones."""
        if not self._role_rows:
            return [{"RowKey": "No custom roles found"}]
        custom = [self._custom_role_view(self._role_rows[key]) for key in sorted(self._role_rows)]
        built_in = [self._built_in_role_view(name) for name in BASE_ROLES]
        return built_in + custom

    def _custom_role_view(self, row: dict[str, Any]) -> dict[str, Any]:
        view = {**row, "Timestamp": "2026-09-01T04:00:00.0000000Z"}
        try:
            view["Permissions"] = json.loads(row.get("Permissions") or "")
        except json.JSONDecodeError:
            view["Permissions"] = []
        for name in ("AllowedTenants", "BlockedTenants", "BlockedEndpoints"):
            view[name] = _stored_list(row.get(name))
        return self._with_group_and_ranges(view, str(row["RowKey"]))

    def _built_in_role_view(self, name: str) -> dict[str, Any]:
        base = BASE_ROLES[name]
        view = {
            "RowKey": name,
            "Permissions": {"include": list(base.include), "exclude": list(base.exclude)},
            "AllowedTenants": ["AllTenants"],
            "BlockedTenants": [],
            "BlockedEndpoints": [],
        }
        return self._with_group_and_ranges(view, name)

    def _with_group_and_ranges(self, view: dict[str, Any], row_key: str) -> dict[str, Any]:
        # `Where-Object -Property RowKey -EQ`: case-insensitive.
        group = next((g for key, g in self._access_role_groups.items() if key.lower() == row_key.lower()), None)
        if group is not None:
            view["EntraGroup"] = {"label": group[1], "value": group[0]}
        stored = next((r for key, r in self._access_ip_ranges.items() if key.lower() == row_key.lower()), None)
        view["IPRange"] = _stored_list(stored) if stored is not None else []
        return view

    def _exec_api_client(self, call: Call) -> Any:
        action = coalesce(call.query_value("Action"), ps_get(call.body, "Action"))
        handler = self._actions.get(ps_string(action).lower())
        return handler(call) if handler is not None else {"Results": "Invalid action"}

    def _action_list(self, call: Call) -> Any:
        if not self._clients:
            return None  # $Body never set → 200 with an empty text/plain body
        results: list[Any] = []
        for client_id in sorted(self._clients):  # Table Storage returns rows in RowKey order
            view, stray_any = self._client_view(self._clients[client_id])
            results.extend(["Any", view] if stray_any else [view])
        return {"Results": results}

    def _client_view(self, row: ClientRow) -> tuple[dict[str, Any], bool]:
        """Get-CippApiClient's shape of one row (§3), and whether the faithful "[]" bug fires."""
        stored = decode_ip_range(row.ip_range, faithful=self.faithful)
        view = {
            "ClientId": row.client_id,
            "AppName": row.app_name,
            "Role": row.role if ps_truthy(row.role) else None,
            "IPRange": stored.ranges,
            "Enabled": row.enabled,
        }
        if self.list_shows_mcp_allowed:
            view["MCPAllowed"] = ps_truthy(row.mcp_allowed)
        return view, stored.stray_any

    def _action_list_available(self, call: Call) -> Any:
        return {"Results": [self._graph_application(app) for app in self._apps.values()]}

    def _graph_application(self, app: EntraApp) -> dict[str, Any]:
        host = self.url.removeprefix("https://")
        return {
            "appId": app.client_id,
            "displayName": app.display_name,
            "createdDateTime": app.created,
            "api": {"requestedAccessTokenVersion": None, "oauth2PermissionScopes": []},
            "web": {"redirectUris": [f"https://{host}/.auth/login/aad/callback"]},
            "passwordCredentials": [
                {
                    "displayName": "Generated by API Setup",
                    "hint": secret[:3],
                    "keyId": str(uuid.uuid5(uuid.NAMESPACE_OID, secret)),
                }
                for secret in app.secrets
            ],
        }

    def _action_add_update(self, call: Call) -> Any:
        """§2.2, in execution order."""
        body = call.body
        denial = self._role_grant_denial(call.caller_id, self._roles_to_authorize(body))
        if denial is not None:
            return [{"resultText": denial, "state": "error"}]
        results: list[Any] = []
        config: ApiConfig | None = None
        if ps_truthy(ps_get(body, "ClientId")) or ps_truthy(ps_get(body, "AppName")):
            try:
                config = self._new_api_config_for_add_update(body)
            except GraphSetupError as failure:
                results.append(failure.result_entry())
        ip_ranges, warnings = parse_ip_range_field(body)  # may throw → 500 after the Graph side effects
        if config is not None:
            results.append(self._upsert_client(config, body, ip_ranges))
            results.extend(self._configure_mcp(body))
        results.extend({"resultText": warning, "state": "warning"} for warning in warnings)
        return results if config is not None else {"Results": results}

    def _roles_to_authorize(self, body: Any) -> list[str]:
        roles = [ps_string(ps_get(ps_get(body, "Role"), "value"))]  # a plain string Role is "" (§2.2 step 1)
        auth_client_id = body_client_id(body)
        existing = self._clients.get(ps_string(auth_client_id)) if ps_truthy(auth_client_id) else None
        if existing is not None:
            roles.append(ps_string(existing.role))
        return roles

    def _new_api_config_for_add_update(self, body: Any) -> ApiConfig:
        client_id = body_client_id(body)
        if ps_truthy(client_id):
            reset = ps_truthy(ps_get(ps_get(body, "CIPPAPI"), "ResetSecret"))
            return self._new_api_config(app_id=ps_string(client_id), reset_secret=reset, trigger="AddUpdate")
        return self._new_api_config(app_name=ps_string(ps_get(body, "AppName")), trigger="AddUpdate")

    def _new_api_config(
        self, *, trigger: str, app_id: str = "", app_name: str = "", reset_secret: bool = False
    ) -> ApiConfig:
        """New-CIPPAPIConfig: find (or create) the app, maybe reset its secrets; throws GraphSetupError."""
        if not self.sam_has_graph_permissions:
            raise GraphSetupError(INSUFFICIENT_GRAPH_PERMISSIONS, None)
        failure = self._graph_failures.popleft() if trigger == "AddUpdate" and self._graph_failures else None
        new_secret: str | None = None
        if app_id:
            app = self._find_app(app_id)
            if app is None:
                raise GraphSetupError(
                    f"Failed to setup CIPP-API Access: Resource '{app_id}' does not exist or one of its queried "
                    "reference-property objects are not present.",
                    None,
                )
        else:
            app, new_secret = self._create_app(app_name)
        if failure is not None:
            raise GraphSetupError(failure.error, app if failure.retry else None)
        if reset_secret and app_id:
            new_secret = self._reset_secrets(app, trigger)
        return ApiConfig(app.display_name, app.client_id, new_secret)

    def _find_app(self, app_id: str) -> EntraApp | None:
        """Graph `applications(appid='…')`: case-insensitive; apps only the Directory knows count too."""
        key = next((cid for cid in self._apps if cid.lower() == app_id.lower()), None)
        if key is not None:
            return self._apps[key]
        registration = self.directory.app(app_id)
        if registration is None:
            return None
        return self._apps.setdefault(
            registration.client_id, EntraApp(registration.client_id, None, [registration.secret])
        )

    def _app_for(self, client_id: str) -> EntraApp:
        app = self._find_app(client_id)
        if app is None:
            raise KeyError(f"no app registration for {client_id}")
        return app

    def _create_app(self, app_name: str) -> tuple[EntraApp, str]:
        secret = _new_secret()
        app = EntraApp(str(uuid.uuid4()), app_name, [secret])
        self._apps[app.client_id] = app
        self._sync_directory_secret(app, secret)
        return app, secret

    def _reset_secrets(self, app: EntraApp, trigger: str) -> str:
        """Delete every password of the app and add one (§2.2 step 2): the old secret stops working."""
        secret = _new_secret()
        self._secret_resets.append(SecretReset(app.client_id, trigger, len(app.secrets), secret))
        app.secrets = [secret]
        self._sync_directory_secret(app, secret)
        return secret

    def _sync_directory_secret(self, app: EntraApp, secret: str) -> None:
        existing = self.directory.app(app.client_id)
        self.directory.register_app(
            app.client_id,
            secret,
            existing.home_tenant if existing else self.tenant_id,
            consented_tenants=sorted(existing.consented_tenants) if existing else (),
            graph_roles=existing.graph_roles if existing else (),
        )

    def _upsert_client(self, config: ApiConfig, body: Any, ip_ranges: list[str]) -> Any:
        """§2.2 step 4: a full replacement of Role, IPRange, Enabled and MCPAllowed; AppName is kept."""
        role = ps_string(ps_get(ps_get(body, "Role"), "value"))
        enabled = coalesce(ps_get(body, "Enabled"), False)
        mcp_allowed = ps_truthy(coalesce(ps_get(body, "MCPAllowed"), False))
        existing = self._clients.get(config.application_id)
        if existing is not None:
            self._clients[config.application_id] = replace(
                existing, role=role, ip_range=encode_ip_range(ip_ranges), enabled=enabled, mcp_allowed=mcp_allowed
            )
            if not config.application_secret:
                return "API client updated"
            return {
                "resultText": f"API client updated and application secret reset for '{existing.app_name}'. "
                "Use the Copy to Clipboard button to retrieve the new secret.",
                "copyField": config.application_secret,
                "state": "success",
            }
        added_name = ps_get(ps_get(ps_get(body, "ClientId"), "addedFields"), "displayName")
        app_name = ps_string(coalesce(config.app_name, added_name))
        self._clients[config.application_id] = ClientRow(
            config.application_id, app_name, role, encode_ip_range(ip_ranges), enabled, mcp_allowed
        )
        return {
            "resultText": f"API Client created with the name '{app_name}'. "
            "Use the Copy to Clipboard button to retrieve the secret.",
            "copyField": config.application_secret,
            "state": "success",
        }

    def _configure_mcp(self, body: Any) -> list[Any]:
        if not ps_truthy(coalesce(ps_get(body, "MCPAllowed"), False)):
            return []
        if self._mcp_failures:
            error = self._mcp_failures.popleft()
            return [{"resultText": f"Client saved, but MCP app configuration failed: {error}", "state": "warning"}]
        return [MCP_CONFIGURED]

    def _action_get_azure_configuration(self, call: Call) -> Any:
        if not self.managed_identity_has_arm_rights:
            return {"Results": {"Enabled": GET_AZURE_CONFIGURATION_FAILED, "Error": _cipp_exception(ARM_FORBIDDEN)}}
        return {
            "Results": {
                "ApiUrl": self.url,
                "TenantID": self.tenant_id,
                # Get-CippApiAuth reads allowedApplications: absent (null) when no client is allowed.
                "ClientIDs": sorted(self._easyauth_allowed) or None,
                "Enabled": bool(self._easyauth_allowed),
            }
        }

    def _action_save_to_azure(self, call: Call) -> Any:
        if not self.managed_identity_has_arm_rights:
            return {"Results": SAVE_TO_AZURE_FAILED, "Error": _cipp_exception(ARM_FORBIDDEN)}
        self.save_to_azure()
        return {"Results": "API clients saved to Azure"}

    def _action_reset_secret(self, call: Call) -> Any:
        client_id = ps_string(ps_get(call.body, "ClientId"))  # a plain string here; `.value` is not read
        row = self._clients.get(client_id)
        if row is None:
            return [{"resultText": "API client not found", "state": "error"}]
        denial = self._role_grant_denial(call.caller_id, [ps_string(row.role)])
        if denial is not None:
            return [{"resultText": denial, "state": "error"}]
        config = self._new_api_config(app_id=client_id, reset_secret=True, trigger="ResetSecret")
        if not config.application_secret:
            return [{"resultText": f"Failed to reset secret for {row.app_name}", "state": "error"}]
        return [
            {
                "resultText": f"API secret reset for {row.app_name}. "
                "Use the Copy to Clipboard button to retrieve the new secret.",
                "copyField": config.application_secret,
                "state": "success",
            }
        ]

    def _action_repair_uri(self, call: Call) -> Any:
        client_id = ps_string(ps_get(call.body, "ClientId"))
        row = self._clients.get(client_id)
        if row is None:
            return [{"resultText": "API client not found", "state": "error"}]
        app = self._find_app(client_id)
        uri = f"api://{client_id}"
        if app is None:
            text = f"Failed to repair identifier URI for {row.app_name} Application with AppId '{client_id}' not found"
            return [{"resultText": text, "state": "error"}]
        if app.identifier_uri_ok:
            text = (
                f"Identifier URI already correct for {row.app_name}. "
                f"Identifier URI '{uri}' already correctly configured"
            )
            return [{"resultText": text, "state": "info"}]
        app.identifier_uri_ok = True
        text = f"Identifier URI fixed for {row.app_name}. Identifier URI successfully set to '{uri}'"
        return [{"resultText": text, "state": "success"}]

    def _action_delete(self, call: Call) -> Any:
        raw_client_id = ps_get(call.body, "ClientId")
        if not ps_truthy(raw_client_id):
            return {"Results": "API client  not found or not a valid CIPP-API application"}  # sic: two spaces
        client_id = ps_string(body_client_id(call.body))
        row = self._clients.get(client_id)
        if row is not None and (denial := self._role_grant_denial(call.caller_id, [ps_string(row.role)])):
            return {"Results": denial}
        if ps_equals_true(ps_get(call.body, "RemoveAppReg")):
            self._delete_app_registration(client_id)
        if row is None:
            return None  # Remove-CIPPAzDataTableEntity on $null throws, the catch leaves $Body unset (§2.1 [I])
        del self._clients[client_id]
        return {"Results": f"API client {client_id} deleted"}

    def _delete_app_registration(self, client_id: str) -> None:
        app = self._apps.pop(client_id, None)
        if app is not None and self.directory.app(client_id) is not None:
            # The Directory cannot forget an app; an unknowable secret is the closest to deletion.
            self._sync_directory_secret(app, _new_secret())


def _decode_principal(header: str) -> dict[str, Any]:
    """x-ms-client-principal: base64 JSON {identityProvider, userId, userDetails, userRoles} (Test-CIPPAccess)."""
    try:
        user = json.loads(base64.b64decode(header).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise PowerShellError("Invalid JSON primitive: x-ms-client-principal") from None
    if not isinstance(user, dict):
        raise PowerShellError("x-ms-client-principal is not an object")
    return user


def encode_principal(user_details: str, user_roles: Sequence[str] = ("anonymous", "authenticated")) -> str:
    """The header a signed-in technician's requests carry; by default the two roles SWA gives everyone."""
    user = {
        "identityProvider": "aad",
        "userId": str(uuid.uuid4()),
        "userDetails": user_details,
        "userRoles": list(user_roles),
    }
    return base64.b64encode(json.dumps(user).encode()).decode()


def _domain_error(row: dict[str, Any]) -> bool:
    return "domain error" in str(row.get("defaultDomainName") or "").lower()  # `-notmatch 'Domain Error'`


def _new_secret() -> str:
    return f"{secrets.token_urlsafe(3)}8Q~{secrets.token_urlsafe(27)}"


def _cipp_exception(message: str) -> dict[str, Any]:
    """The part of Get-CippException's object a caller can rely on."""
    return {"Message": message, "NormalizedError": message}


# -- HTTPS plumbing -------------------------------------------------------------------------------
class _TlsHttpServer(ThreadingHTTPServer):
    """One thread per connection; the TLS handshake happens in that thread, not in the accept loop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: CippEmulator, context: ssl.SSLContext) -> None:
        self.emulator = emulator
        self._context = context
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        # Headers and body go out as separate writes: without this, Nagle + delayed ACK add ~40 ms a call.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = self._context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            connection.do_handshake()
        except OSError:  # includes ssl.SSLError: a client that gave up on the handshake
            connection.close()
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            super().finish_request(connection, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            connection.close()

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections reset by clients are routine here; anything else still prints."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15  # idle keep-alive connections end on their own

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            path=unquote(url.path),
            query={key.lower(): value for key, value in reversed(parse_qsl(url.query, keep_blank_values=True))},
            headers=self._header_map(),
            body=raw_body,
        )
        response = cast(_TlsHttpServer, self.server).emulator.handle(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _header_map(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name in {key.lower() for key in self.headers}:
            headers[name] = ", ".join(self.headers.get_all(name) or [])
        return headers

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator keeps its own request log."""


# -- command line ---------------------------------------------------------------------------------
def seed_client_from_cli(emulator: CippEmulator, spec: str) -> tuple[str, str]:
    """`id:role:ranges:enabled`; ranges are comma-separated (IPv6 colons are fine). Returns (id, secret)."""
    parts = spec.split(":")
    if len(parts) < 4:
        raise argparse.ArgumentTypeError(f"--client wants id:role:ranges:enabled, got {spec!r}")
    client_id, role, enabled = parts[0], parts[1], parts[-1].lower() in ("true", "1", "yes")
    ranges = [entry for entry in ":".join(parts[2:-1]).split(",") if entry]
    secret = _new_secret()
    emulator.add_client(
        client_id, app_name=f"CLI client {client_id[:8]}", role=role, ip_ranges=ranges, enabled=enabled, secret=secret
    )
    return client_id, secret


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.cipp", description="Loopback CIPP-API emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tenant", default=DEFAULT_TENANT_ID)
    parser.add_argument("--client", action="append", default=[], metavar="ID:ROLE:RANGES:ENABLED")
    parser.add_argument("--fixed", action="store_true", help="apply the upstream fixes ([] is Any, unsigned /0)")
    args = parser.parse_args(argv)

    tls = make_test_tls()
    emulator = CippEmulator(tls, tenant_id=args.tenant, faithful=not args.fixed, host=args.host, port=args.port)
    credentials = [seed_client_from_cli(emulator, spec) for spec in args.client]
    emulator.save_to_azure()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with emulator:
        print(f"CIPP_API_URL={emulator.url}", flush=True)
        print(f"CIPP_CA_BUNDLE={tls.ca_bundle}", flush=True)
        print(f"CIPP_TENANT_ID={emulator.tenant_id}", flush=True)
        for client_id, secret in credentials:
            print(f"CIPP_CLIENT={client_id} {secret}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
