"""Drift: the tenant's Step 1 location, Part A and Part B against the bodies the plan renders, field by field.

`make verify` reads the tenant; `make plan` renders what `pulumi up` sends (cipp_hardening/graph_render.py).
Anything a portal edit changed shows here: an exclusion added to Part A, a range added to the trusted
location, Part B's sign-in frequency relaxed. Values Graph fills in on GET (nulls, empty lists, server-set
ids and times) are not differences; id lists compare as sets, case-insensitively; the plan's placeholder
location id stands for the tenant's location of the same display name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cipp_hardening.config import MspStack

_SERVER_SET: Final = frozenset({"id", "createdDateTime", "modifiedDateTime", "deletedDateTime", "templateId"})


def _normalized(value: Any) -> Any:
    """Absent, null and empty alike; no OData annotations or server-set fields; lists of strings as sets."""
    if isinstance(value, Mapping):
        kept = {k: _normalized(v) for k, v in value.items() if k not in _SERVER_SET and not k.startswith("@odata.")}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [_normalized(v) for v in value]
        if all(isinstance(item, str) for item in items):
            return sorted({item.lower() for item in items})
        return items
    return value


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        found: dict[str, Any] = {}
        for key in sorted(value):
            found |= _leaves(value[key], f"{path}.{key}" if path else key)
        return found
    return {path: value}


def body_differences(planned: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Each field where the tenant differs from the plan: "path: tenant has X, the plan Y"."""
    mine, theirs = _leaves(_normalized(planned)), _leaves(_normalized(live))
    differences = []
    for path in sorted(set(mine) | set(theirs)):
        if mine.get(path) != theirs.get(path):
            differences.append(f"{path}: the tenant has {_show(theirs.get(path))}, the plan {_show(mine.get(path))}")
    return differences


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return repr(value)


def _by_name(objects: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o.get("displayName") == name]


def _cidrs(location: Mapping[str, Any]) -> set[str]:
    ranges = location.get("ipRanges") or []
    found = set()
    for item in ranges:
        try:
            found.add(str(ipaddress.ip_network(str(item.get("cidrAddress", "")), strict=False)))
        except ValueError:
            found.add(str(item.get("cidrAddress")))
    return found


def location_problems(config: MspStack, live_locations: Sequence[Mapping[str, Any]]) -> list[str]:
    """The trusted named location holds exactly trustedLocation.cidrs and is marked trusted."""
    name = config.trusted_location.display_name
    found = _by_name(live_locations, name)
    if len(found) != 1:
        return [f"named location '{name}': {len(found)} in the tenant with that name, expected exactly one"]
    location, problems = found[0], []
    if location.get("isTrusted") is not True:
        problems.append(f"named location '{name}' is not marked trusted (isTrusted)")
    wanted = {str(ipaddress.ip_network(c, strict=False)) for c in config.trusted_location.cidrs}
    extra, missing = sorted(_cidrs(location) - wanted), sorted(wanted - _cidrs(location))
    if extra:
        problems.append(f"named location '{name}' holds ranges the stack does not declare: {', '.join(extra)}")
    if missing:
        problems.append(f"named location '{name}' lacks the declared ranges: {', '.join(missing)}")
    return problems


def policy_drift(
    config: MspStack,
    planned_policies: Sequence[Mapping[str, Any]],
    planned_locations: Sequence[Mapping[str, Any]],
    live_policies: Sequence[Mapping[str, Any]],
    live_locations: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Part A and Part B in the tenant against the plan's bodies (only those present in both: a missing
    policy is reported elsewhere)."""
    ids = _location_ids(planned_locations, live_locations)
    problems = []
    for name in (config.technician_access.display_name, config.service_account.display_name):
        planned, live = _by_name(planned_policies, name), _by_name(live_policies, name)
        if len(live) > 1:
            problems.append(f"policy '{name}': {len(live)} policies in the tenant with that name, expected one")
        if len(planned) != 1 or len(live) != 1:
            continue
        body = _with_location_ids(planned[0], ids)
        problems += [f"policy '{name}' differs from the plan: {d}" for d in body_differences(body, live[0])]
    return problems


def _location_ids(planned: Sequence[Mapping[str, Any]], live: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The plan's (placeholder) location id → the tenant's id of the location with the same display name."""
    ids = {}
    for location in planned:
        same = _by_name(live, str(location.get("displayName")))
        if len(same) == 1 and location.get("id") and same[0].get("id"):
            ids[str(location["id"]).lower()] = str(same[0]["id"]).lower()
    return ids


def _with_location_ids(policy: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    body = dict(policy)
    conditions = dict(body.get("conditions") or {})
    locations = dict(conditions.get("locations") or {})
    for key in ("includeLocations", "excludeLocations"):
        if isinstance(locations.get(key), list):
            locations[key] = [ids.get(str(item).lower(), item) for item in locations[key]]
    if locations:
        conditions["locations"] = locations
        body["conditions"] = conditions
    return body
