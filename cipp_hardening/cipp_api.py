"""Part C rules: the allowed IP ranges of CIPP-API clients, as pure functions over CIPP's JSON.

CIPP keeps one row per API client (docs/cipp-api.md §3) and changes it only through
`POST /api/ExecApiClient` `AddUpdate`, which replaces Role, IPRange, Enabled and MCPAllowed together
(§2.2 step 4). So a range change is always read → merge → write: these functions find the client among
List's rows, build the complete AddUpdate body that keeps everything but the ranges, and pick out the
clients that accept requests from anywhere. The provider and the program call them; nothing here does
I/O, and the shapes of CIPP's answers (`{"Results": ...}` or a bare array) are read by
service_clients.cipp_client, which hands these functions plain rows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cipp_hardening.cidr import RangeError, cipp_range, dedupe

ANY = "Any"  # what List shows for a client without ranges (§3): requests from every IP are allowed
# What we record for a client whose stored IPRange is "[]": Get-CippApiClient leaves its list empty and
# Test-CIPPAccess then matches no address, so every request is refused (docs/part-c.md). Never a valid range.
DENY_ALL = "None"

Client = dict[str, Any]


@dataclass(frozen=True)
class ClientSummary:
    """A client as the stack outputs and warnings show it (never its secret: List has none)."""

    client_id: str
    app_name: str
    role: str

    def to_json(self) -> dict[str, str]:
        return {"clientId": self.client_id, "appName": self.app_name, "role": self.role}

    def describe(self) -> str:
        return f"{self.client_id} ({self.app_name or 'no name'}, role {self.role or 'none'})"


# -- reading List -----------------------------------------------------------------------------------
def find_client(clients: Iterable[Mapping[str, Any]], client_id: str) -> Client | None:
    """The client whose ClientId (the app id, a GUID) is `client_id`, compared case-insensitively."""
    wanted = client_id.lower()
    return next((dict(c) for c in clients if str(c.get("ClientId", "")).lower() == wanted), None)


def ranges_of(client: Mapping[str, Any]) -> list[str]:
    """The client's ranges as CIPP enforces them: [] means Any, [DENY_ALL] means no address at all.

    List shows ["Any"] for no ranges (§3), and "Any" anywhere in the list allows every address
    (Test-CIPPAccess: `-notcontains 'Any'`). An *empty* list is what Get-CippApiClient 10.8.2 leaves for
    a row stored as "[]": no address matches, so the client is refused everywhere (§10.1).
    """
    stored = client.get("IPRange")
    if isinstance(stored, list) and not stored:
        return [DENY_ALL]
    entries = stored if isinstance(stored, list) else [stored] if stored else []
    texts = [str(entry) for entry in entries if entry is not None and str(entry) != ""]
    return [] if any(text.lower() == ANY.lower() for text in texts) else texts


def denies_all(ranges: Sequence[str]) -> bool:
    return list(ranges) == [DENY_ALL]


def is_enabled(client: Mapping[str, Any]) -> bool:
    """Enabled as SaveToAzure selects it: `Enabled eq true` matches a JSON boolean only, never "true" (§2.2)."""
    return client.get("Enabled") is True


def summary(client: Mapping[str, Any]) -> ClientSummary:
    return ClientSummary(
        str(client.get("ClientId", "")), str(client.get("AppName") or ""), str(client.get("Role") or "")
    )


# -- ranges -----------------------------------------------------------------------------------------
def canonical_ranges(entries: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(canonical ranges in order without duplicates, problems). Uses the same rule as the config."""
    canonical: list[str] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        try:
            canonical.append(cipp_range(entry))
        except RangeError as exc:
            problems.append(f"allowedRanges[{index}]: {exc}")
    kept, _ = dedupe(canonical)
    return kept, problems


def describe_ranges(ranges: Sequence[str]) -> str:
    if denies_all(ranges):
        return 'no address at all (stored as "[]": CIPP refuses the client from every IP)'
    return ", ".join(ranges) if ranges else f"{ANY} (no restriction)"


# -- writing AddUpdate ------------------------------------------------------------------------------
class UnknownField(ValueError):
    """List did not show a field that AddUpdate replaces: writing would change what CIPP holds, so no write."""


class UnknownMcpFlag(UnknownField):
    """List did not say whether the client is MCP-enabled, and AddUpdate would reset the flag."""


def add_update_body(
    client: Mapping[str, Any], ranges: Sequence[str], stated_mcp_allowed: bool | None = None
) -> dict[str, Any]:
    """The complete AddUpdate body that changes only the ranges of `client` (a List item).

    §2.2: AddUpdate resets every omitted field (Role → "", Enabled → false, MCPAllowed → false), reads
    the role from `Role.value` and the ranges from `IPRange[].value`; a plain string array would clear
    the list. So only what the List item shows is sent back, and a field it does not show is a refusal
    (UnknownField), never a guess. `AppName` is not needed: with a ClientId, New-CIPPAPIConfig looks the
    existing app up and keeps it, and the row keeps its AppName. `CIPPAPI.ResetSecret` is never sent
    (it deletes every secret of the client).
    """
    return {
        "Action": "AddUpdate",
        "ClientId": str(client["ClientId"]),
        "Role": {"value": _kept_role(client)},
        "IPRange": [{"label": r, "value": r} for r in ranges],
        "Enabled": _kept_enabled(client),
        "MCPAllowed": _mcp_flag(client, stated_mcp_allowed),
    }


def _kept_role(client: Mapping[str, Any]) -> str:
    # Get-CippApiClient selects Role on every row and shows an empty one as null (§3): null is "no role".
    if "Role" not in client:
        raise UnknownField(
            "CIPP's List did not show this client's Role, and AddUpdate would reset it to no role: nothing written "
            '(docs/part-c.md "What a write sends back")'
        )
    role = client["Role"]
    if role is not None and not isinstance(role, str):
        raise UnknownField(f"CIPP's List shows Role {role!r}, which is not a role name: nothing written")
    return role or ""


def _kept_enabled(client: Mapping[str, Any]) -> bool | str:
    enabled = client.get("Enabled")
    if enabled is None:  # absent, or null (a row without the column): AddUpdate would store false
        raise UnknownField(
            "CIPP's List did not show whether this client is enabled, and AddUpdate would reset it to disabled: "
            "nothing written; set Enabled on the client in CIPP > Integrations > CIPP-API "
            '(docs/part-c.md "What a write sends back")'
        )
    if not isinstance(enabled, bool | str):
        raise UnknownField(f"CIPP's List shows Enabled {enabled!r}, which is neither true nor false: nothing written")
    return _kept_flag(enabled)


def unconfirmed_fields(sent: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """The fields other than the ranges that List shows differently from the AddUpdate body `sent`.

    The comparison reads each field as CIPP does: an empty role lists as null, MCPAllowed is cast to bool
    (§3). A List without MCPAllowed cannot confirm it, so it is not compared.
    """
    found = []
    role, sent_role = stored.get("Role") or "", sent["Role"]["value"]
    if role != sent_role:
        found.append(f"Role {stored.get('Role')!r} (sent {sent_role!r})")
    if stored.get("Enabled") != sent["Enabled"]:
        found.append(f"Enabled {stored.get('Enabled')!r} (sent {sent['Enabled']!r})")
    if "MCPAllowed" in stored and ps_bool(stored["MCPAllowed"]) != ps_bool(sent["MCPAllowed"]):
        found.append(f"MCPAllowed {stored['MCPAllowed']!r} (sent {sent['MCPAllowed']!r})")
    return found


def _mcp_flag(client: Mapping[str, Any], stated: bool | None) -> bool | str:
    """What AddUpdate must send as MCPAllowed so that the client keeps it (docs/part-c.md "MCPAllowed").

    Some Get-CippApiClient versions leave MCPAllowed out of List while AddUpdate still writes
    `[bool](Body.MCPAllowed ?? $false)`: guessing false would switch an MCP client's connectors off.
    """
    if "MCPAllowed" in client:
        listed = _kept_flag(client["MCPAllowed"])
        if stated is not None and stated != ps_bool(listed):
            raise UnknownMcpFlag(
                f"cippApi.clients[].mcpAllowed says {str(stated).lower()} but CIPP lists MCPAllowed "
                f"{listed!r}: Part C keeps what CIPP holds; remove mcpAllowed or change it in CIPP"
            )
        return listed
    if stated is None:
        raise UnknownMcpFlag(
            "CIPP's List does not show whether this client is MCP-enabled (this CIPP version omits MCPAllowed), "
            "and AddUpdate would reset it to false: state it as cippApi.clients[].mcpAllowed (true or false, "
            "as Integrations > CIPP-API shows it)"
        )
    return stated


def ps_bool(value: Any) -> bool:
    """PowerShell's [bool] of a JSON value: a non-empty string is true, even "false" (docs/cipp-api.md §2.2)."""
    return bool(value)


def _kept_flag(value: Any) -> bool | str:
    # A JSON boolean goes back as one. A legacy string ("true") goes back verbatim: converting it would
    # change what SaveToAzure's `Enabled eq true` selects (§2.2), which is not ours to change.
    if isinstance(value, bool | str):
        return value
    return bool(value)


# -- who is open to the world -----------------------------------------------------------------------
@dataclass(frozen=True)
class AppServiceAuth:
    """What App Service authentication lets through, from `GetAzureConfiguration` (§6), read-only.

    `ClientIDs` is the allowed-applications list written by the last Save Azure Configuration: a client
    outside it gets 401 before CIPP looks at its ranges, whatever its table flag says.
    """

    client_ids: frozenset[str]  # lower-cased
    enabled: bool

    def allows(self, client_id: str) -> bool:
        return self.enabled and client_id.lower() in self.client_ids


class ClientList(list[Client]):
    """List's clients, plus App Service's allowed applications when GetAzureConfiguration could be read."""

    def __init__(
        self, clients: Iterable[Client] = (), app_service: AppServiceAuth | None = None, app_service_error: str = ""
    ) -> None:
        super().__init__(clients)
        self.app_service = app_service
        self.app_service_error = app_service_error


def can_call(client: Mapping[str, Any], app_service: AppServiceAuth | None) -> bool:
    """Whether App Service lets the client through; without its list, the table flag SaveToAzure reads."""
    if app_service is None:
        return is_enabled(client)
    return app_service.allows(str(client.get("ClientId", "")))


def unrestricted_clients(
    clients: Iterable[Mapping[str, Any]], managed_ids: Iterable[str], app_service: AppServiceAuth | None = None
) -> list[ClientSummary]:
    """Clients that can call and accept every IP (Any), that this stack does not manage, in List order."""
    managed = {client_id.lower() for client_id in managed_ids}
    return [
        summary(client)
        for client in clients
        if can_call(client, app_service)
        and not ranges_of(client)
        and str(client.get("ClientId", "")).lower() not in managed
    ]


def widened_ranges(declared: Sequence[str], current: Sequence[str]) -> list[str]:
    """The declared ranges that allow addresses CIPP refuses the client today; [ANY] when declared is Any.

    `current` is as `ranges_of` reads it ([] Any, [DENY_ALL] no address). A range counts as new unless it
    lies inside one CIPP holds now; an entry CIPP holds but cannot parse matches nothing (Test-IpInRange
    answers "no match" on any exception, docs/cipp-api.md §5.3), so it covers nothing here either.
    """
    if not current:
        return []  # Any today: nothing can be wider
    if not declared:
        return [ANY]
    held = [] if denies_all(current) else [network for entry in current if (network := _network(entry))]
    return [entry for entry in declared if not _inside_any(entry, held)]


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


def _inside_any(entry: str, held: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    network = _network(entry)
    return network is not None and any(
        network.version == other.version and network.subnet_of(other)  # type: ignore[arg-type]
        for other in held
    )


def widening_message(client: ClientSummary, current: Sequence[str], widened: Sequence[str]) -> str:
    what = "every address (allowedRanges: [Any])" if list(widened) == [ANY] else ", ".join(widened)
    return (
        f"CIPP-API client {client.describe()}: this stack widens it. CIPP holds it to {describe_ranges(current)} "
        f"today; after `pulumi up` it also accepts {what}"
    )


def denying_clients(clients: Iterable[Mapping[str, Any]]) -> list[ClientSummary]:
    """Clients CIPP refuses from every address (stored "[]"): locked out, not open."""
    return [summary(client) for client in clients if denies_all(ranges_of(client))]


@dataclass(frozen=True)
class PendingSave:
    """A client whose table flag and App Service's allowed list disagree: Save Azure Configuration is pending."""

    client: ClientSummary
    table_enabled: bool
    app_service_allows: bool

    def describe(self) -> str:
        table = "enabled" if self.table_enabled else "disabled"
        now = "can call CIPP" if self.app_service_allows else "gets 401 from App Service"
        return f"{self.client.describe()} is {table} in CIPP's table but {now} until 'Save Azure Configuration' runs"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.client.to_json(),
            "tableEnabled": self.table_enabled,
            "appServiceAllows": self.app_service_allows,
        }


def pending_saves(clients: Iterable[Mapping[str, Any]], app_service: AppServiceAuth) -> list[PendingSave]:
    """Clients whose `Enabled` (as SaveToAzure selects it) differs from App Service's allowed list now."""
    found = []
    for client in clients:
        table, allowed = is_enabled(client), app_service.allows(str(client.get("ClientId", "")))
        if table != allowed:
            found.append(PendingSave(summary(client), table, allowed))
    return found


def unrestricted_message(open_clients: Sequence[ClientSummary], mode: Literal["fail", "warn"]) -> str:
    listing = "; ".join(c.describe() for c in open_clients)
    consequence = "refusing to run (cippApi.unrestrictedClients: fail)" if mode == "fail" else "warning only"
    return (
        f"{len(open_clients)} CIPP-API client(s) that can call CIPP accept requests from any IP address and are "
        f"not managed by this stack: {listing}. Add them to cippApi.clients with allowedRanges, or restrict them "
        f"in CIPP > Integrations > CIPP-API ({consequence})"
    )


def denying_message(client: ClientSummary) -> str:
    return (
        f'CIPP-API client {client.describe()} has its ranges stored as "[]": CIPP refuses it from every IP '
        "address (not open, locked). Set its ranges in CIPP > Integrations > CIPP-API, or manage it in cippApi.clients"
    )


# -- what delete does -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeletePlan:
    action: Literal["leave", "restore", "refuse"]
    ranges: tuple[str, ...] = ()
    reason: str = ""


def delete_plan(props: Mapping[str, Any]) -> DeletePlan:
    """Delete never widens access unless told to: leave the ranges, or put back those found at adoption."""
    client = props.get("clientId", "?")
    if not props.get("restoreOnDelete"):
        return DeletePlan("leave", reason=f"CIPP-API client {client}: no longer managed; its ranges stay as they are")
    adopted = tuple(props.get("adoptedRanges") or ())
    if denies_all(adopted):
        return DeletePlan(
            "leave",
            reason=(
                f'CIPP-API client {client}: no longer managed; the ranges found at adoption ("[]", every address '
                "refused) cannot be written back through AddUpdate, which stores no ranges as Any, so its ranges "
                "stay as they are"
            ),
        )
    if not adopted and not props.get("allowAnyOnDelete"):
        return DeletePlan(
            "refuse",
            reason=(
                f"CIPP-API client {client}: restoreOnDelete would put back the ranges found at adoption, which "
                "were Any (every IP); refusing to open the client. Set allowAnyOnDelete: true on this client (or "
                "restoreOnDelete: false to leave the ranges), run `pulumi up`, then remove it again"
            ),
        )
    restoring = f"CIPP-API client {client}: restoring the ranges found at adoption: {describe_ranges(adopted)}"
    return DeletePlan("restore", adopted, restoring)


def predicted_delete_refusal(props: Mapping[str, Any]) -> str | None:
    """Why the delete of a client with these recorded properties would refuse, known from the state alone.

    The same rules the delete applies: a restore to Any without allowAnyOnDelete, or a restore that would
    change the manager client's own ranges without allowSelfUpdate.
    """
    plan = delete_plan(props)
    if plan.action == "refuse":
        return plan.reason
    if plan.action == "restore" and (refusal := self_update_refusal(props)):
        return f"CIPP-API client {props.get('clientId', '?')}: restoreOnDelete would change its ranges, but {refusal}"
    return None


GUARD_KEYS = ("clientId", "managerClientId", "allowSelfUpdate", "restoreOnDelete", "allowAnyOnDelete")


# -- resource inputs --------------------------------------------------------------------------------
INPUT_KEYS = (
    "url",
    "tenantId",
    "managerClientId",
    "clientId",
    "allowedRanges",
    "allowSelfUpdate",
    "restoreOnDelete",
    "allowAnyOnDelete",
    "mcpAllowed",  # optional: only where CIPP's List omits MCPAllowed (_mcp_flag)
)


def is_self_update(props: Mapping[str, Any]) -> bool:
    return str(props.get("clientId", "")).lower() == str(props.get("managerClientId", "")).lower()


def self_update_refusal(props: Mapping[str, Any]) -> str | None:
    """The manager client changing its own ranges can lock this stack out of CIPP (§8): opt-in only."""
    if is_self_update(props) and props.get("allowSelfUpdate") is not True:
        return (
            f"clientId {props.get('clientId')} is the manager client itself; changing its own ranges can lock "
            "this stack out of CIPP. Set allowSelfUpdate: true on this client to allow it"
        )
    return None
