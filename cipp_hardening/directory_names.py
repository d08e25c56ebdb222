"""Names as well as ids: users by user principal name, groups by display name, resolved read-only.

A config value is a GUID or a name (config.py records every name as a DirectoryName). Before anything
uses the config, each name becomes the object id it stands for:

* in the program, through pulumi-azuread's lookup functions (`get_user(user_principal_name=...)`,
  `get_group(display_name=...)`) against the MSP tenant, at preview and at up; the client tenant's
  service account (clientTenant.serviceAccountUserId) through Graph, like the client's policies;
* in the offline plan, the mocks (cipp_hardening/offline.py) answer those lookups from a directory
  snapshot (`cipp-hardening snapshot` writes one), or fail saying the name needs one;
* in the tools (verify, promote, snapshot), through Graph: GET /users/{upn}, and
  GET /groups?$filter=displayName eq '...' (User.Read.All / Group.Read.All, or Directory.Read.All).

Unknown or ambiguous names are errors naming the config key. Ids need no lookup and cannot change
meaning when someone renames a group: prefer them in CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cipp_hardening import run_mode
from cipp_hardening.config import (
    PROJECT,
    ClientStack,
    ConfigError,
    DirectoryName,
    MspStack,
    Problem,
    StackConfig,
    technician_overlaps,
)

if TYPE_CHECKING:
    from service_clients.graph_client import GraphClient

DIRECTORY_SNAPSHOT_ENV = "CIPP_HARDENING_DIRECTORY_SNAPSHOT"
GET_USER = "azuread:index/getUser:getUser"
GET_GROUP = "azuread:index/getGroup:getGroup"


class DirectoryLookupError(LookupError):
    """A name that no object has, or more than one: the message says which and where it was looked up."""


# --- the directory snapshot (offline plans) ---------------------------------------------------------


@dataclass(frozen=True)
class DirectorySnapshot:
    """Users and groups of one tenant, as saved by `cipp-hardening snapshot` (only those the stack names)."""

    tenant_id: str
    users: tuple[Mapping[str, Any], ...] = ()
    groups: tuple[Mapping[str, Any], ...] = ()
    source: str = ""

    def user(self, upn: str) -> str:
        found = [u for u in self.users if str(u.get("userPrincipalName", "")).lower() == upn.lower()]
        if not found:
            raise DirectoryLookupError(f"User not found with UPN: {upn!r} (directory snapshot {self.source})")
        return str(found[0]["id"]).lower()

    def group(self, display_name: str) -> str:
        # Graph compares displayName case-insensitively; so does the `eq` filter pulumi-azuread sends.
        found = [g for g in self.groups if str(g.get("displayName", "")).lower() == display_name.lower()]
        return _one_group(found, display_name, f"directory snapshot {self.source}")

    def to_json(self) -> dict[str, Any]:
        return {"tenantId": self.tenant_id, "users": list(self.users), "groups": list(self.groups)}


def load_directory_snapshot(path: Path) -> DirectorySnapshot:
    """Raises ValueError naming the file when it is not a directory snapshot."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable directory snapshot ({exc})") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("tenantId"), str):
        raise ValueError(f"{path}: a directory snapshot is an object with tenantId, users and groups")
    users, groups = document.get("users") or [], document.get("groups") or []
    if not all(isinstance(item, Mapping) and "id" in item for item in [*users, *groups]):
        raise ValueError(f"{path}: every user and group needs an id")
    return DirectorySnapshot(document["tenantId"].lower(), tuple(users), tuple(groups), str(path))


def _one_group(found: Sequence[Mapping[str, Any]], display_name: str, where: str) -> str:
    if not found:
        raise DirectoryLookupError(f"No group found with display name: {display_name!r} ({where})")
    if len(found) > 1:
        ids = ", ".join(str(g.get("id")) for g in found)
        raise DirectoryLookupError(
            f"More than one group found with display name: {display_name!r} ({where}: {ids}); use the group's id"
        )
    return str(found[0]["id"]).lower()


def snapshot_from_env() -> DirectorySnapshot | None:
    value = os.environ.get(DIRECTORY_SNAPSHOT_ENV)
    return load_directory_snapshot(Path(value)) if value else None


def answer_invoke(token: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """What the offline mocks return for pulumi-azuread's getUser/getGroup: from the directory snapshot, with
    the provider's ids (`id` the path `/users/{id}` or `/groups/{id}`, `objectId` the GUID), and the
    provider's refusal of a group name with an apostrophe (``with_advice``)."""
    name = args.get("userPrincipalName") if token == GET_USER else args.get("displayName")
    snapshot = snapshot_from_env()
    if snapshot is None:
        raise DirectoryLookupError(
            f"{name!r} needs a live lookup or a directory snapshot: run `cipp-hardening snapshot --stack <stack>` "
            "where credentials are (it saves the names the stack uses), or give the id instead of the name"
        )
    if token == GET_USER:
        object_id = snapshot.user(str(name))
        return {"objectId": object_id, "id": f"/users/{object_id}", "userPrincipalName": name}
    if "'" in str(name):
        # As the provider fails (with_advice says why): the offline plan must not pass where preview cannot.
        raise DirectoryLookupError(
            f"{_GROUP_LISTING_REFUSED} (displayName eq '{name}'): Graph refuses a filter whose quote is not doubled"
        )
    object_id = snapshot.group(str(name))
    return {"objectId": object_id, "id": f"/groups/{object_id}", "displayName": name}


# --- Graph (the tools, and the client tenant in the program) ----------------------------------------


def graph_lookup(graph: GraphClient, name: DirectoryName) -> str:
    """The object id of a user (by UPN) or group (by display name), through GETs only."""
    from service_clients.graph_client import GraphError

    if name.kind == "user":
        try:
            # A UPN is a key of /users; '#' (guest UPNs) and '/' must be escaped in the path.
            return str(graph.get(f"users/{quote(name.name, safe='@')}", {"$select": "id"})["id"]).lower()
        except GraphError as error:
            if error.status == 404:
                raise DirectoryLookupError(f"User not found with UPN: {name.name!r}") from None
            raise
    literal = name.name.replace("'", "''")  # OData string literal quoting
    found = graph.list_all("groups", {"$filter": f"displayName eq '{literal}'", "$select": "id,displayName"})
    return _one_group(found, name.name, "Graph")


def resolve_with(config: StackConfig, lookup: Callable[[DirectoryName], str]) -> tuple[StackConfig, dict[str, str]]:
    """Every name of the config looked up; the id-only config and {config key: id}. Raises ConfigError
    naming each key whose name is unknown or ambiguous (all of them at once)."""
    ids: dict[str, str] = {}
    problems: list[Problem] = []
    for name in config.names:
        try:
            ids[name.key] = lookup(name)
        except DirectoryLookupError as error:
            problems.append(Problem(name.key, str(error)))
    if problems:
        raise ConfigError(problems)
    return resolve_names(config, ids), ids


# --- the id-only config -----------------------------------------------------------------------------


def resolve_names(config: StackConfig, ids: Mapping[str, str]) -> StackConfig:
    """The config with each name replaced by its id ({config key: id}); names then left are an error."""
    by_value: dict[tuple[str, str, str], str] = {
        (n.kind, n.tenant, n.name): ids[n.key] for n in config.names if n.key in ids
    }
    missing = [n for n in config.names if n.key not in ids]
    if missing:
        raise ConfigError([Problem(n.key, f"the name {n.name!r} was not resolved") for n in missing])
    if isinstance(config, ClientStack):
        tenant = config.client_tenant
        account = tenant.service_account_user_id
        resolved_account = by_value.get(("user", "client", account or ""), account)
        client_tenant = dataclasses.replace(tenant, service_account_user_id=resolved_account)
        return dataclasses.replace(config, client_tenant=client_tenant, names=())
    return _resolve_msp(config, by_value)


def _resolve_msp(config: MspStack, by_value: Mapping[tuple[str, str, str], str]) -> MspStack:
    def one(kind: str, value: str) -> str:
        return by_value.get((kind, "msp", value), value)

    def many(kind: str, values: Sequence[str], key: str) -> tuple[str, ...]:
        resolved = [one(kind, v) for v in values]
        for repeated in sorted({v for v in resolved if resolved.count(v) > 1}):
            problems.append(Problem(key, f"names {repeated} twice (a name and an id, or two names, of one object)"))
        return tuple(dict.fromkeys(resolved))

    problems: list[Problem] = []
    access = config.technician_access
    account = dataclasses.replace(config.service_account, user_id=one("user", config.service_account.user_id))
    access = dataclasses.replace(
        access,
        include_group_ids=many("group", access.include_group_ids, "technicianAccess.includeGroupIds"),
        include_user_ids=many("user", access.include_user_ids, "technicianAccess.includeUserIds"),
        break_glass_user_ids=many("user", access.break_glass_user_ids, "technicianAccess.breakGlassUserIds"),
        break_glass_group_ids=many("group", access.break_glass_group_ids, "technicianAccess.breakGlassGroupIds"),
    )
    problems += technician_overlaps(access, account.user_id)
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(config, technician_access=access, service_account=account, names=())


@dataclass
class Resolution:
    """What the plan shows: each name, its key and the id it resolved to, and where that came from."""

    rows: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, names: Sequence[DirectoryName], ids: Mapping[str, str], source: str) -> Resolution:
        return cls([{"key": n.key, "name": n.name, "id": ids[n.key], "source": source} for n in names])


def program_resolve(config: StackConfig, client_secret: str | None = None) -> StackConfig:
    """In the Pulumi program: names → ids (pulumi-azuread lookups for the MSP tenant, Graph for a client
    tenant), exported as `resolvedNames`; an unknown or ambiguous name fails the run naming its key."""
    if not config.names:
        return config
    import pulumi

    from cipp_hardening.stack_config import stop_on_config_error

    lookup = _azuread_lookup if isinstance(config, MspStack) else _client_lookup(config, client_secret)
    try:
        resolved, ids = resolve_with(config, lookup)
    except ConfigError as error:
        stack = pulumi.get_stack()
        stop_on_config_error(ConfigError([Problem(p.key, p.message.replace("<stack>", stack)) for p in error.problems]))
    source = "directory snapshot" if os.environ.get(DIRECTORY_SNAPSHOT_ENV) and run_mode.is_offline() else "live lookup"
    pulumi.export("resolvedNames", Resolution.of(config.names, ids, source).rows)
    return resolved


def _azuread_lookup(name: DirectoryName) -> str:
    """The object id through pulumi-azuread's lookup: `object_id`, the bare GUID. (The lookups' `id` is
    upstream's path, `/users/{id}` or `/groups/{id}` (d.SetId in terraform-provider-azuread's
    userDataSourceRead and groupDataSourceRead), which no Conditional Access policy takes.)"""
    import pulumi_azuread as azuread

    try:
        if name.kind == "user":
            return str(azuread.get_user(user_principal_name=name.name).object_id).lower()
        return str(azuread.get_group(display_name=name.name).object_id).lower()
    except DirectoryLookupError as error:
        raise DirectoryLookupError(with_advice(name, str(error))) from None
    except Exception as error:  # an invoke failure: the provider's message says unknown / ambiguous / denied
        raise DirectoryLookupError(with_advice(name, invoke_failure_reason(str(error)) or repr(error))) from None


# What terraform-provider-azuread's groupDataSourceRead says when Graph refuses its group listing.
_GROUP_LISTING_REFUSED = "Retrieving groups for filter"


def with_advice(name: DirectoryName, reason: str) -> str:
    """The lookup's reason, and what to do when the name itself is why it cannot work.

    pulumi-azuread's getGroup builds its Graph filter as `displayName eq '<name>'` without doubling the
    name's quotes (terraform-provider-azuread v3.9, group_data_source.go, groupDataSourceRead), so Graph
    refuses the filter of any group name with an apostrophe and no retry can help: the group must be
    given by its object id (docs/configuration.md, Names as well as ids)."""
    if name.kind == "group" and "'" in name.name and _GROUP_LISTING_REFUSED in reason:
        return (
            f"the group {name.name!r} cannot be looked up by name: its apostrophe breaks the Graph filter "
            f"pulumi-azuread's getGroup sends (the provider does not escape it), so give the group's object id "
            f"instead (Entra admin center > Groups > {name.name} > Object ID). The provider said: {reason}"
        )
    return reason


# One reason of the bridge's go-multierror list ("\t* [attribute] summary: detail"), path prefix aside.
_REASON = re.compile(r"^\s*\* (?:\[[^\]]*\] )?(?P<reason>.+)$")


def invoke_failure_reason(message: str) -> str:
    """What a failed pulumi-azuread lookup says, for one line of a config error (docs/names.md).

    The bridge sends a data source's errors as "invoking <token>: 1 error occurred:" followed by one
    "\t* [attribute] <reason>" line each: the reasons are what matter (they hold the name), the first
    line says nothing. Anything else keeps its first line."""
    reasons = [m["reason"].strip() for line in message.splitlines() if (m := _REASON.match(line))]
    if reasons:
        return "; ".join(reasons)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _client_lookup(config: ClientStack, client_secret: str | None) -> Callable[[DirectoryName], str]:
    def lookup(name: DirectoryName) -> str:
        if run_mode.is_offline():
            snapshot = snapshot_from_env()
            if snapshot is None:
                return answer_invoke(GET_USER, {"userPrincipalName": name.name})["objectId"]  # raises: says how
            if snapshot.tenant_id != config.client_tenant.tenant_id:
                raise DirectoryLookupError(
                    f"the directory snapshot {snapshot.source} is of tenant {snapshot.tenant_id}, "
                    f"not of the client tenant {config.client_tenant.tenant_id}"
                )
            return snapshot.user(name.name)
        return _live_client_lookup(config, client_secret, name)

    return lookup


def _live_client_lookup(config: ClientStack, client_secret: str | None, name: DirectoryName) -> str:
    """The same identity as the listing of the client's policies (cipp_hardening/inventory.py)."""
    from cipp_hardening.inventory import client_tenant_graph
    from service_clients import credentials
    from service_clients.graph_client import GraphError

    tenant = config.client_tenant.tenant_id
    try:
        with client_tenant_graph(config, client_secret) as graph:
            return graph_lookup(graph, name)
    except (GraphError, credentials.CredentialError) as error:
        raise DirectoryLookupError(f"could not look {name.name!r} up in tenant {tenant}: {error}") from None


def describe(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """One line per resolved name, for the plan's output."""
    return [f"{PROJECT}:{r['key']}: {r['name']!r} → {r['id']} ({r['source']})" for r in rows]


def resolve_with_graph(config: StackConfig, graph_url: str, tenant_id: str, token: Callable[[], str]) -> StackConfig:
    """The tools' way (verify, promote, snapshot): every name looked up through Graph GETs; ConfigError
    names each key whose name is unknown or ambiguous."""
    if not config.names:
        return config
    from service_clients.graph_client import GraphClient

    with GraphClient(graph_url, tenant_id, token) as graph:
        resolved, _ = resolve_with(config, lambda name: graph_lookup(graph, name))
    return resolved
