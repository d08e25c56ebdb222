"""Part C rules: the allowed IP ranges of CIPP-API clients, as pure functions over CIPP's JSON.

CIPP keeps one row per API client (cipp-api.md §3) and changes it only through
`POST /api/ExecApiClient` `AddUpdate`, which replaces Role, IPRange, Enabled and MCPAllowed together
(§2.2 step 4). So a range change is always read → merge → write: these functions find the client in a
`List` body, build the complete AddUpdate body that keeps everything but the ranges, judge CIPP's
answer, and pick out the clients that accept requests from anywhere. The provider and the program
call them; nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cipp_hardening.cidr import RangeError, cipp_range, dedupe

ANY = "Any"  # what List shows for a client without ranges (§3): requests from every IP are allowed
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

Client = dict[str, Any]


class CippResponseError(ValueError):
    """CIPP answered with a body this project cannot read as the documented shape."""


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
def parse_list_body(text: str) -> list[Client]:
    """The clients in the body of `GET /api/ExecApiClient?Action=List`.

    §2.1: an empty table gives an *empty* body, not `{"Results": []}`. §10.1 (pre-#472 bug): a stored
    "[]" adds a bare "Any" string to Results, so only objects count as clients.
    """
    if not text.strip():
        return []
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        raise CippResponseError(f"List did not return JSON: {text[:120]!r}") from None
    results = payload.get("Results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise CippResponseError(f"List returned {_shape(payload)}, expected {{'Results': [...]}}")
    return [item for item in results if isinstance(item, dict) and item.get("ClientId")]


def find_client(clients: Iterable[Mapping[str, Any]], client_id: str) -> Client | None:
    """The client whose ClientId (the app id, a GUID) is `client_id`, compared case-insensitively."""
    wanted = client_id.lower()
    return next((dict(c) for c in clients if str(c.get("ClientId", "")).lower() == wanted), None)


def ranges_of(client: Mapping[str, Any]) -> list[str]:
    """The client's ranges as CIPP enforces them; [] means Any (§3: List shows ["Any"] for none)."""
    stored = client.get("IPRange")
    entries = stored if isinstance(stored, list) else [stored] if stored else []
    texts = [str(entry) for entry in entries if entry is not None and str(entry) != ""]
    return [] if any(text.lower() == ANY.lower() for text in texts) else texts


def is_enabled(client: Mapping[str, Any]) -> bool:
    """Enabled as SaveToAzure reads it; a string "true" is possible in old rows (§2.2) and counts too."""
    value = client.get("Enabled")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


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
    return ", ".join(ranges) if ranges else f"{ANY} (no restriction)"


# -- writing AddUpdate ------------------------------------------------------------------------------
def add_update_body(client: Mapping[str, Any], ranges: Sequence[str]) -> dict[str, Any]:
    """The complete AddUpdate body that changes only the ranges of `client` (a List item).

    §2.2: AddUpdate resets every omitted field (Role → "", Enabled → false, MCPAllowed → false), reads
    the role from `Role.value` and the ranges from `IPRange[].value`; a plain string array would clear
    the list. `AppName` is never sent (it would create a new app registration) and neither is
    `CIPPAPI.ResetSecret` (it deletes every secret of the client).
    """
    return {
        "Action": "AddUpdate",
        "ClientId": str(client["ClientId"]),
        "Role": {"value": str(client.get("Role") or "")},
        "IPRange": [{"label": r, "value": r} for r in ranges],
        "Enabled": _kept_flag(client.get("Enabled")),
        "MCPAllowed": _kept_flag(client.get("MCPAllowed")),
    }


def _kept_flag(value: Any) -> bool | str:
    # A JSON boolean goes back as one. A legacy string ("true") goes back verbatim: converting it would
    # change what SaveToAzure's `Enabled eq true` selects (§2.2), which is not ours to change.
    if isinstance(value, bool | str):
        return value
    return bool(value)


def add_update_problems(payload: Any) -> list[str]:
    """Why an HTTP 200 AddUpdate answer is a failure; [] when it succeeded.

    §2.2 step 7: success is a bare array, failure is `{"Results": [...]}`. Inside either, an entry with
    state error failed; state warning means CIPP dropped an entry and saved the rest (§2.2 step 6),
    which for an allow-list is as bad as failing.
    """
    if isinstance(payload, dict) and "Results" in payload:
        texts = _result_texts(payload["Results"]) or ["no result entries (nothing was saved)"]
        return [f"CIPP reported a failure: {text}" for text in texts]
    if not isinstance(payload, list):
        return [f"unexpected AddUpdate answer: {_shape(payload)}"]
    return [
        f"CIPP reported {entry['state']}: {entry.get('resultText', '')}"
        for entry in payload
        if isinstance(entry, dict) and str(entry.get("state", "")).lower() in ("error", "warning")
    ]


def _result_texts(results: Any) -> list[str]:
    entries = results if isinstance(results, list) else [results]
    return [str(e.get("resultText", e)) if isinstance(e, dict) else str(e) for e in entries if e not in (None, "")]


def _shape(payload: Any) -> str:
    text = json.dumps(payload)[:120] if not isinstance(payload, str) else repr(payload[:120])
    return f"{type(payload).__name__} {text}"


# -- who is open to the world -----------------------------------------------------------------------
def unrestricted_clients(clients: Iterable[Mapping[str, Any]], managed_ids: Iterable[str]) -> list[ClientSummary]:
    """Enabled clients with no ranges (Any) that this stack does not manage, in List order."""
    managed = {client_id.lower() for client_id in managed_ids}
    return [
        summary(client)
        for client in clients
        if is_enabled(client) and not ranges_of(client) and str(client.get("ClientId", "")).lower() not in managed
    ]


def unrestricted_message(open_clients: Sequence[ClientSummary], mode: Literal["fail", "warn"]) -> str:
    listing = "; ".join(c.describe() for c in open_clients)
    consequence = "refusing to run (cippApi.unrestrictedClients: fail)" if mode == "fail" else "warning only"
    return (
        f"{len(open_clients)} enabled CIPP-API client(s) accept requests from any IP address and are not "
        f"managed by this stack: {listing}. Add them to cippApi.clients with allowedRanges, or restrict them "
        f"in CIPP > Integrations > CIPP-API ({consequence})"
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
)
FLAG_KEYS = ("allowSelfUpdate", "restoreOnDelete", "allowAnyOnDelete")
REQUIRED_KEYS = INPUT_KEYS[:5]


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


def validate_inputs(news: Mapping[str, Any], unknown: object = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Canonical inputs and (property, reason) failures; values equal to `unknown` (preview) are left alone."""
    failures = [(key, "is required") for key in REQUIRED_KEYS if news.get(key) is None]
    known = {k: v for k, v in news.items() if v is not None and (unknown is None or v != unknown)}
    failures.extend(_input_failures(known))
    inputs = {**news, **_canonical(known, {key for key, _ in failures})}
    if "clientId" in known and "managerClientId" in known and (refusal := self_update_refusal(inputs)):
        failures.append(("allowSelfUpdate", refusal))
    return inputs, failures


def _canonical(known: Mapping[str, Any], failed: set[str]) -> dict[str, Any]:
    canonical: dict[str, Any] = {}
    if "url" in known and "url" not in failed:
        canonical["url"] = known["url"].rstrip("/")
    for key in ("tenantId", "managerClientId", "clientId"):
        if key in known and key not in failed:
            canonical[key] = known[key].lower()
    if "allowedRanges" in known and "allowedRanges" not in failed:
        canonical["allowedRanges"] = canonical_ranges(known["allowedRanges"])[0]
    return canonical


def _input_failures(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    failures: list[tuple[str, str]] = []
    if "url" in inputs and not (isinstance(inputs["url"], str) and inputs["url"].startswith("https://")):
        failures.append(("url", f"must be the https:// URL of CIPP's Function App, got {inputs['url']!r}"))
    for key in ("tenantId", "managerClientId", "clientId"):
        if key in inputs and not (isinstance(inputs[key], str) and _GUID.match(inputs[key])):
            failures.append((key, f"must be a GUID, got {inputs[key]!r}"))
    if "allowedRanges" in inputs:
        ranges = inputs["allowedRanges"]
        if not isinstance(ranges, list):
            failures.append(("allowedRanges", f"must be a list of IP ranges, got {type(ranges).__name__}"))
        else:
            failures.extend(("allowedRanges", problem) for problem in canonical_ranges(ranges)[1])
    for key in FLAG_KEYS:
        if not isinstance(inputs.get(key, False), bool):
            failures.append((key, f"must be true or false, got {inputs.get(key)!r}"))
    return failures
