"""What the MSP tenant already holds, against what the stack declares (docs/adopt.md).

Pure functions over three inputs: the stack's declarations, the tenant's named locations and policies
(one listing each), and the object ids the stack's state manages. The program refuses a create when an
object of the same display name exists that the stack does not manage (no silent duplicate), passes the
ids under the stack's `adopt` key to Pulumi's `import` resource option, and reports drift;
`cipp-hardening adopt` uses the same matching to find the objects a hand-made setup holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cipp_hardening.config import MspStack

Kind = Literal["namedLocation", "policy"]
COLLECTIONS: dict[Kind, str] = {"namedLocation": "namedLocations", "policy": "policies"}
KIND_WORDS: dict[Kind, str] = {"namedLocation": "named location", "policy": "Conditional Access policy"}
# The stack-file keys `cipp-hardening adopt` writes under `cipp-hardening:adopt` (docs/adopt.md).
ADOPT_KEY = "adopt"
ADOPTABLE = ("trustedLocation", "technicianAccess", "serviceAccount")


@dataclass(frozen=True)
class Declared:
    key: str  # the config section: trustedLocation, technicianAccess, serviceAccount, or a Part C name
    kind: Kind
    resource_name: str  # the Pulumi resource's name (the last part of its URN)
    display_name: str


def import_id(kind: Kind, object_id: str) -> str:
    """The id upstream's importer accepts: /identity/conditionalAccess/{namedLocations|policies}/{id}
    (terraform-provider-azuread v3, ImporterValidatingResourceId with stable.ValidateIdentityConditional...ID)."""
    return f"/identity/conditionalAccess/{COLLECTIONS[kind]}/{object_id}"


def object_id_of(resource_id: str) -> str:
    """A resource id (path form) or a bare GUID → the bare GUID, lower case."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1].lower()


def declared_objects(config: MspStack) -> list[Declared]:
    """Step 1, Parts A and B, and the workload-identity locations and policies of Part C, as the
    components name their resources (components/*.py)."""
    found = [
        Declared(
            "trustedLocation", "namedLocation", "trusted-location-named-location", config.trusted_location.display_name
        ),
        Declared("technicianAccess", "policy", "technician-access-policy", config.technician_access.display_name),
        Declared("serviceAccount", "policy", "service-account-policy", config.service_account.display_name),
    ]
    workload = config.cipp_api.workload_identity if config.cipp_api is not None else None
    if workload is not None:
        prefix = "cipp-api-workload-identity"
        for client in workload.clients:
            key = f"cippApi.workloadIdentityPolicies[{client.client_id}]"
            found.append(
                Declared(
                    key,
                    "namedLocation",
                    f"{prefix}-{client.client_id}-location",
                    workload.location_name(client.client_id),
                )
            )
            found.append(
                Declared(key, "policy", f"{prefix}-{client.client_id}-policy", workload.policy_name(client.client_id))
            )
    return found


@dataclass(frozen=True)
class Tenant:
    """One listing of each collection (GET /identity/conditionalAccess/namedLocations and /policies)."""

    locations: Sequence[Mapping[str, Any]]
    policies: Sequence[Mapping[str, Any]]

    def of(self, kind: Kind) -> Sequence[Mapping[str, Any]]:
        return self.locations if kind == "namedLocation" else self.policies

    def by_id(self, kind: Kind, object_id: str) -> Mapping[str, Any] | None:
        return next((o for o in self.of(kind) if str(o.get("id", "")).lower() == object_id), None)

    def named(self, kind: Kind, name: str) -> list[Mapping[str, Any]]:
        return [o for o in self.of(kind) if o.get("displayName") == name]


@dataclass
class Decision:
    imports: dict[str, str] = field(default_factory=dict)  # resource name → import id for ResourceOptions.import_
    refusals: list[str] = field(default_factory=list)  # the run stops before registering anything
    warnings: list[str] = field(default_factory=list)

    def import_of(self, resource_name: str) -> str | None:
        return self.imports.get(resource_name)


def _describe(kind: Kind, name: str) -> str:
    return f"{KIND_WORDS[kind]} {name!r}"


def decide(
    stack: str,
    declared: Sequence[Declared],
    tenant: Tenant,
    managed: Mapping[str, str],
    adopted: Mapping[str, str],
) -> Decision:
    """managed: resource name → object id in the stack's state; adopted: the stack file's `adopt` key."""
    decision = Decision()
    for item in declared:
        managed_id = managed.get(item.resource_name)
        if managed_id is not None and tenant.by_id(item.kind, managed_id) is None:
            # Deleted in the portal: a refreshing run creates it again, so a same-named object is a duplicate.
            managed_id = None
        adopt_id = adopted.get(item.key) if item.key in ADOPTABLE else None
        ours = {i for i in (managed_id, adopt_id) if i}
        others = [str(o.get("id", "")).lower() for o in tenant.named(item.kind, item.display_name)]
        others = [i for i in others if i not in ours]
        what = _describe(item.kind, item.display_name)
        if adopt_id is not None:
            _decide_adopted(decision, item, tenant, managed_id, adopt_id)
        if others and not ours:
            decision.refusals.append(
                f"{what} already exists in the tenant as {', '.join(others)}, and this stack does not manage it: "
                f"`pulumi up` would create a second one. {_adopt_hint(stack, item)}"
            )
        elif others:
            decision.warnings.append(
                f"{what}: the tenant also holds {', '.join(others)} of the same name, which this stack does not "
                "manage; a portal edit may go to either copy (delete or rename the other one, docs/adopt.md)"
            )
    return decision


def _decide_adopted(decision: Decision, item: Declared, tenant: Tenant, managed_id: str | None, adopt_id: str) -> None:
    key = f"{ADOPT_KEY}.{item.key}"
    if managed_id is not None and managed_id != adopt_id:
        decision.refusals.append(
            f"{key} names {adopt_id}, but this stack already manages {managed_id} as "
            f"{_describe(item.kind, item.display_name)}: "
            f"importing {adopt_id} would replace (delete) {managed_id}. Remove {key} from the stack file, or "
            "`pulumi state delete` the managed one first (docs/adopt.md)"
        )
        return
    if tenant.by_id(item.kind, adopt_id) is None:
        decision.refusals.append(
            f"{key}: the tenant holds no {KIND_WORDS[item.kind]} {adopt_id} (deleted since it was adopted?). "
            f"Remove {key} from the stack file to create a new one, or run `cipp-hardening adopt` again"
        )
        return
    # Harmless once imported: the engine imports only while the state holds no resource of that id.
    decision.imports[item.resource_name] = import_id(item.kind, adopt_id)


def _adopt_hint(stack: str, item: Declared) -> str:
    if item.key in ADOPTABLE:
        return (
            f"Take it over with `cipp-hardening adopt --stack {stack}` (then `pulumi up`), or rename or delete it "
            "(docs/adopt.md)"
        )
    return f"Rename or delete it ({item.key} is not adoptable; docs/adopt.md)"


# --- drift: the live objects the stack manages against the declaration ------------------------------


def _ids(values: Any) -> set[str]:
    return {str(v).lower() for v in values or []}


def _cidrs(location: Mapping[str, Any]) -> set[str]:
    found = set()
    for item in location.get("ipRanges") or []:
        text = str(item.get("cidrAddress", ""))
        try:
            found.add(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            found.add(text)
    return found


def location_differences(config: MspStack, live: Mapping[str, Any]) -> list[str]:
    wanted = {str(ipaddress.ip_network(c, strict=False)) for c in config.trusted_location.cidrs}
    found = []
    if live.get("@odata.type", "#microsoft.graph.ipNamedLocation") != "#microsoft.graph.ipNamedLocation":
        found.append(f"is a {live.get('@odata.type')}, not an IP named location")
    if live.get("displayName") != config.trusted_location.display_name:
        found.append(f"displayName is {live.get('displayName')!r}, declared {config.trusted_location.display_name!r}")
    if live.get("isTrusted") is not True:
        found.append("is not marked trusted")
    if extra := sorted(_cidrs(live) - wanted):
        found.append(f"holds ranges the stack does not declare: {', '.join(extra)}")
    if missing := sorted(wanted - _cidrs(live)):
        found.append(f"lacks the declared ranges: {', '.join(missing)}")
    return found


def _users(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return (policy.get("conditions") or {}).get("users") or {}


def _locations(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return (policy.get("conditions") or {}).get("locations") or {}


def _controls(policy: Mapping[str, Any]) -> set[str]:
    return {str(c) for c in (policy.get("grantControls") or {}).get("builtInControls") or []}


def _compare(found: list[str], what: str, live: Any, declared: Any) -> None:
    if live != declared:
        shown_live = sorted(live) if isinstance(live, set) else live
        shown_declared = sorted(declared) if isinstance(declared, set) else declared
        found.append(f"{what} is {shown_live!r}, declared {shown_declared!r}")


def technician_differences(config: MspStack, live: Mapping[str, Any], location_id: str | None) -> list[str]:
    access, found = config.technician_access, list[str]()
    users, locations = _users(live), _locations(live)
    _compare(found, "displayName", live.get("displayName"), access.display_name)
    _compare(found, "state", live.get("state"), access.state)
    _compare(found, "includeGroups", _ids(users.get("includeGroups")), _ids(access.include_group_ids))
    _compare(found, "includeUsers", _ids(users.get("includeUsers")), _ids(access.include_user_ids))
    excluded = _ids([*access.break_glass_user_ids, config.service_account.user_id])
    _compare(found, "excludeUsers", _ids(users.get("excludeUsers")), excluded)
    _compare(found, "excludeGroups", _ids(users.get("excludeGroups")), _ids(access.break_glass_group_ids))
    _compare(found, "includeLocations", _ids(locations.get("includeLocations")), {"all"})
    if location_id is not None:
        _compare(found, "excludeLocations", _ids(locations.get("excludeLocations")), {location_id})
    _compare(found, "grant controls", _controls(live), {"block"})
    return found


def service_account_differences(config: MspStack, live: Mapping[str, Any]) -> list[str]:
    account, found = config.service_account, list[str]()
    users = _users(live)
    _compare(found, "displayName", live.get("displayName"), account.display_name)
    _compare(found, "state", live.get("state"), account.state)
    _compare(found, "includeUsers", _ids(users.get("includeUsers")), {account.user_id.lower()})
    # Part B excludes the break-glass accounts and groups, and nothing else (docs/scanners.md).
    access = config.technician_access
    _compare(found, "excludeUsers", _ids(users.get("excludeUsers")), _ids(access.break_glass_user_ids))
    _compare(found, "excludeGroups", _ids(users.get("excludeGroups")), _ids(access.break_glass_group_ids))
    _compare(found, "excludeLocations", _ids(_locations(live).get("excludeLocations")), set())
    _compare(found, "grant controls", _controls(live), {"mfa"})
    frequency = (live.get("sessionControls") or {}).get("signInFrequency") or {}
    _compare(found, "sign-in frequency", frequency.get("frequencyInterval"), "everyTime")
    return found


def differences(config: MspStack, key: str, live: Mapping[str, Any], location_id: str | None) -> list[str]:
    if key == "trustedLocation":
        return location_differences(config, live)
    if key == "technicianAccess":
        return technician_differences(config, live, location_id)
    return service_account_differences(config, live)


@dataclass(frozen=True)
class Drift:
    key: str
    line: str
    in_state: bool  # the state already shows it (a refreshed run): the engine plans the repair itself


def drift(
    config: MspStack, tenant: Tenant, owned: Mapping[str, str], outputs: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Drift]:
    """owned: Step 1/A/B key → the object id the stack manages; outputs: key → that resource's outputs in
    the state. One entry per object that differs from the declaration in the tenant."""
    found = []
    location_id = owned.get("trustedLocation")
    for item in declared_objects(config)[:3]:
        object_id = owned.get(item.key)
        if object_id is None:
            continue
        live = tenant.by_id(item.kind, object_id)
        what = f"{item.key} ({_describe(item.kind, item.display_name)}, {object_id})"
        state = (outputs or {}).get(item.key)
        if live is None:
            found.append(Drift(item.key, f"{what} was deleted from the tenant", False))
        elif changed := differences(config, item.key, live, location_id):
            shown = state is not None and state_shows(item.kind, state, live)
            found.append(Drift(item.key, f"{what} differs from the stack: {'; '.join(changed)}", shown))
    return found


def _path(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def state_shows(kind: Kind, outputs: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether the state's outputs (pulumi-azuread's shape) hold what the tenant holds, for the fields
    drift is about: then the engine diffs against the live values without --refresh telling it."""
    if kind == "namedLocation":
        ranges = {str(ipaddress.ip_network(str(r), strict=False)) for r in _path(outputs, "ip", "ipRanges") or []}
        return bool(_path(outputs, "ip", "trusted")) == bool(live.get("isTrusted")) and ranges == _cidrs(live)
    users, locations = _users(live), _locations(live)
    pairs = [
        (_path(outputs, "conditions", "users", "includedUsers"), users.get("includeUsers")),
        (_path(outputs, "conditions", "users", "excludedUsers"), users.get("excludeUsers")),
        (_path(outputs, "conditions", "users", "includedGroups"), users.get("includeGroups")),
        (_path(outputs, "conditions", "users", "excludedGroups"), users.get("excludeGroups")),
        (_path(outputs, "conditions", "locations", "excludedLocations"), locations.get("excludeLocations")),
    ]
    return outputs.get("state") == live.get("state") and all(_ids(a) == _ids(b) for a, b in pairs)


# --- `cipp-hardening adopt`: which existing object corresponds to each declaration -------------------


@dataclass(frozen=True)
class Match:
    key: str
    declared: Declared
    object: Mapping[str, Any] | None
    how: str  # "display name", "content", or why nothing was chosen
    blocking: str | None = None  # a difference the import cannot reconcile, or an ambiguity

    @property
    def object_id(self) -> str | None:
        return str(self.object["id"]).lower() if self.object is not None else None


def _location_by_content(config: MspStack, location: Mapping[str, Any]) -> bool:
    wanted = {str(ipaddress.ip_network(c, strict=False)) for c in config.trusted_location.cidrs}
    return location.get("@odata.type") in (None, "#microsoft.graph.ipNamedLocation") and _cidrs(location) == wanted


def _technicians_by_content(config: MspStack, policy: Mapping[str, Any], location_id: str | None) -> bool:
    users, locations = _users(policy), _locations(policy)
    groups = _ids(config.technician_access.include_group_ids)
    excludes_location = location_id is not None and location_id in _ids(locations.get("excludeLocations"))
    return (
        _controls(policy) == {"block"}
        and bool(groups)
        and _ids(users.get("includeGroups")) == groups
        and excludes_location
    )


def _service_account_by_content(config: MspStack, policy: Mapping[str, Any]) -> bool:
    users = _users(policy)
    return "mfa" in _controls(policy) and _ids(users.get("includeUsers")) == {config.service_account.user_id.lower()}


def _unreconcilable(item: Declared, live: Mapping[str, Any]) -> str | None:
    """What an import followed by an in-place update cannot fix: upstream's `ip` block is ForceNew, so a
    country location would be replaced (a new id), not updated."""
    if item.kind == "namedLocation" and live.get("@odata.type", "#microsoft.graph.ipNamedLocation") != (
        "#microsoft.graph.ipNamedLocation"
    ):
        return f"{live.get('id')} is a {live.get('@odata.type')}; the declared IP location would replace it (new id)"
    return None


def match(config: MspStack, tenant: Tenant) -> list[Match]:
    """For Step 1, Part A and Part B: the existing object by display name, else by content."""
    found: list[Match] = []
    location_id: str | None = None
    for item in declared_objects(config)[:3]:
        named = tenant.named(item.kind, item.display_name)
        if len(named) > 1:
            ids = ", ".join(str(o.get("id")) for o in named)
            found.append(
                Match(
                    item.key, item, None, "display name", f"{len(named)} objects are named {item.display_name!r}: {ids}"
                )
            )
            continue
        if named:
            chosen, how = named[0], "display name"
        else:
            candidates = [o for o in tenant.of(item.kind) if _content_matches(config, item.key, o, location_id)]
            if len(candidates) > 1:
                ids = ", ".join(str(o.get("id")) for o in candidates)
                found.append(
                    Match(item.key, item, None, "content", f"{len(candidates)} objects match by content: {ids}")
                )
                continue
            if not candidates:
                found.append(Match(item.key, item, None, "nothing found: `pulumi up` creates it"))
                continue
            chosen, how = candidates[0], "content"
        result = Match(item.key, item, chosen, how, _unreconcilable(item, chosen))
        if item.key == "trustedLocation":
            location_id = result.object_id
        found.append(result)
    return found


def _content_matches(config: MspStack, key: str, obj: Mapping[str, Any], location_id: str | None) -> bool:
    if key == "trustedLocation":
        return _location_by_content(config, obj)
    if key == "technicianAccess":
        return _technicians_by_content(config, obj, location_id)
    return _service_account_by_content(config, obj)
