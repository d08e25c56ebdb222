"""Read-only directory objects for the Graph emulator: users, groups, directory roles and memberships.

Serves, for `emulators/graph.py` (which routes `/v1.0/users/...` and `/v1.0/groups/...` here):

* ``GET /v1.0/users/{id | userPrincipalName}``: the default property set without ``$select`` (accountEnabled
  and onPremisesSyncEnabled are *not* in it, as in Graph: a client must ``$select`` them); ``$select`` takes
  the user properties terraform-provider-azuread v3.9 asks for (user_data_source.go, userDataSourceRead);
* ``GET /v1.0/users?$filter=...`` and ``GET /v1.0/groups?$filter=...``: the collections, paged and filtered by
  the emulator's OData subset (emulators/graph.py, parse_filter: `eq` on userPrincipalName, mail,
  mailNickname, employeeId, displayName..., what the provider's data sources send), where a quote that is not
  doubled is Graph's 400 "Invalid filter clause: Syntax error ...";
* ``GET /v1.0/users/{id}/manager``: 404 ``Request_ResourceNotFound`` unless the user was stored with a
  ``manager`` id (userDataSourceRead reads it and takes 404 as "no manager");
* ``GET /v1.0/users/{id}/transitiveMemberOf``: groups (nested ones included) and directory roles, paged
  (default 100, at most 999 per page);
* ``GET /v1.0/groups/{id}`` (isAssignableToRole in the default set), ``GET /v1.0/groups/{id}/members``
  (direct members, paged like transitiveMemberOf) and ``GET /v1.0/groups/{id}/owners`` (likewise; what
  groupDataSourceRead lists after finding a group);
* the same reads under ``/beta`` (emulators/graph.py serves users, groups and servicePrincipals GETs there,
  since groupDataSourceRead goes through beta);
* ``GET /v1.0/users/{id}/authentication/methods`` (Microsoft Learn "List methods", authentication-list-methods:
  application permission UserAuthenticationMethod.Read.All or .ReadWrite.All): the user's
  ``authenticationMethods`` as a test stored them, else the password method every user has (its well-known
  id 28c10230-6103-485e-b985-444c60001490);
* 404 ``Request_ResourceNotFound`` "Resource '{id}' does not exist or one of its queried reference-property
  objects are not present." for an unknown id; 405 for anything but GET.

Permissions, when the emulator enforces roles (application permissions, as Graph's permission tables give
them): users need User.Read.All (or User.ReadWrite.All, Directory.Read.All, Directory.ReadWrite.All);
groups and group members GroupMember.Read.All (or Group.Read.All, Directory.Read.All, ...). In a
directoryObject collection, an object of a type the token may not read comes back with its id and
``@odata.type`` only (Graph's "limited information for inaccessible member objects"): a directory role's
roleTemplateId needs RoleManagement.Read.Directory or Directory.Read.All.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

JSONObject = dict[str, Any]

USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
# What userDataSourceRead $selects (terraform-provider-azuread v3.9, user_data_source.go), on top of the defaults.
USER_SELECTED_BY_AZUREAD = (
    "accountEnabled",
    "ageGroup",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "creationType",
    "department",
    "employeeHireDate",
    "employeeId",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "faxNumber",
    "imAddresses",
    "mailNickname",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "postalCode",
    "proxyAddresses",
    "showInAddressList",
    "state",
    "streetAddress",
    "usageLocation",
    "userType",
)
USER_PROPERTIES = frozenset({*USER_DEFAULT_PROPERTIES, *USER_SELECTED_BY_AZUREAD, "createdDateTime"})
GROUP_PROPERTIES = frozenset(
    {
        "id",
        "displayName",
        "description",
        "mail",
        "mailEnabled",
        "mailNickname",
        "securityEnabled",
        "groupTypes",
        "isAssignableToRole",
        "onPremisesSyncEnabled",
        "createdDateTime",
    }
)
ROLE_PROPERTIES = frozenset({"id", "displayName", "description", "roleTemplateId"})

USER_READERS = ({"User.Read.All"}, {"User.ReadWrite.All"}, {"Directory.Read.All"}, {"Directory.ReadWrite.All"})
GROUP_READERS = (
    {"GroupMember.Read.All"},
    {"Group.Read.All"},
    {"Group.ReadWrite.All"},
    {"Directory.Read.All"},
    {"Directory.ReadWrite.All"},
)
METHOD_READERS = ({"UserAuthenticationMethod.Read.All"}, {"UserAuthenticationMethod.ReadWrite.All"})
PASSWORD_METHOD = {
    "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
    "id": "28c10230-6103-485e-b985-444c60001490",
}
ROLE_READERS = ({"RoleManagement.Read.Directory"}, {"Directory.Read.All"}, {"Directory.ReadWrite.All"})

_TYPES = {"user": "#microsoft.graph.user", "group": "#microsoft.graph.group", "role": "#microsoft.graph.directoryRole"}


class DirectoryRequestError(Exception):
    """Turned into a Graph error response by the emulator."""

    def __init__(self, status: int, code: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason or message


def not_found(object_id: str) -> DirectoryRequestError:
    return DirectoryRequestError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


@dataclass
class DirectoryState:
    """One tenant's users, groups and activated directory roles; members are object ids."""

    users: dict[str, JSONObject] = field(default_factory=dict)
    groups: dict[str, JSONObject] = field(default_factory=dict)
    roles: dict[str, JSONObject] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)  # group or role id → member ids
    owners: dict[str, list[str]] = field(default_factory=dict)  # group id → owner ids

    def add_user(self, user: JSONObject) -> str:
        user_id = str(user["id"]).lower()
        stored = {"accountEnabled": True, "onPremisesSyncEnabled": None, **copy.deepcopy(user), "id": user_id}
        self.users[user_id] = stored
        return user_id

    def add_group(self, group: JSONObject, members: Iterable[str] = (), owners: Iterable[str] = ()) -> str:
        group_id = str(group["id"]).lower()
        defaults = {"securityEnabled": True, "mailEnabled": False, "groupTypes": [], "isAssignableToRole": None}
        self.groups[group_id] = {**defaults, **copy.deepcopy(group), "id": group_id}
        self.members[group_id] = [m.lower() for m in members]
        self.owners[group_id] = [o.lower() for o in owners]
        return group_id

    def add_role(self, role: JSONObject, members: Iterable[str] = ()) -> str:
        role_id = str(role["id"]).lower()
        self.roles[role_id] = {**copy.deepcopy(role), "id": role_id}
        self.members[role_id] = [m.lower() for m in members]
        return role_id

    def typed(self, object_id: str) -> JSONObject | None:
        for kind, table in (("user", self.users), ("group", self.groups), ("role", self.roles)):
            if object_id in table:
                return {"@odata.type": _TYPES[kind], **table[object_id]}
        return None

    def transitive_member_of(self, object_id: str) -> list[str]:
        """Groups and roles holding the object directly or through nested groups, in discovery order."""
        found: list[str] = []
        frontier = [object_id]
        while frontier:
            current = frontier.pop(0)
            for container, members in self.members.items():
                if current in members and container not in found:
                    found.append(container)
                    if container in self.groups:
                        frontier.append(container)
        return found


@dataclass(frozen=True)
class DirectoryResult:
    """An entity (`entity`) or a directoryObject collection to page (`items`), with its OData context path."""

    context: str
    entity: JSONObject | None = None
    items: list[JSONObject] | None = None


def handle(
    state: DirectoryState,
    method: str,
    lowered: list[str],
    roles: set[str] | None,
    select: list[str] | None,
    keep: Callable[[JSONObject], bool] | None = None,
) -> DirectoryResult:
    """A directory GET (`lowered`: the path after /v1.0, lower-cased); raises DirectoryRequestError.

    `roles`: the token's application permissions, None when the emulator does not enforce them. `keep`: the
    collection's $filter, applied to the stored objects (every property, not only the default set)."""
    if method != "GET":
        raise DirectoryRequestError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request.")
    kind, rest = lowered[0], lowered[1:]
    methods = kind == "users" and rest[1:] == ["authentication", "methods"]
    _require(roles, METHOD_READERS if methods else USER_READERS if kind == "users" else GROUP_READERS)
    table = state.users if kind == "users" else state.groups
    if not rest:
        # GET /groups, GET /users: the collection, which the caller pages and filters (`displayName eq '...'`,
        # `userPrincipalName eq '...'`).
        check_select(kind, select)
        found = [item for item in table.values() if keep is None or keep(item)]
        return DirectoryResult(kind, items=[shape(kind, item, select) for item in found])
    if rest and kind == "users" and rest[0] not in table:
        # A user's key is its id or its userPrincipalName (GET /users/{id | userPrincipalName}).
        rest = [_id_of_upn(state, rest[0]), *rest[1:]]
    if not rest or rest[0] not in table:
        raise not_found(rest[0] if rest else "")
    object_id = rest[0]
    if len(rest) == 1:
        check_select(kind, select)
        return DirectoryResult(f"{kind}/$entity", entity=shape(kind, table[object_id], select))
    if rest[1:] == ["transitivememberof"] and kind == "users":
        items = _visible(state, state.transitive_member_of(object_id), roles)
        return DirectoryResult("directoryObjects", items=items)
    if methods:
        methods_now = table[object_id].get("authenticationMethods") or [PASSWORD_METHOD]
        return DirectoryResult(f"users('{object_id}')/authentication/methods", items=copy.deepcopy(methods_now))
    if rest[1:] == ["members"] and kind == "groups":
        return DirectoryResult("directoryObjects", items=_visible(state, state.members.get(object_id, []), roles))
    if rest[1:] == ["owners"] and kind == "groups":
        return DirectoryResult("directoryObjects", items=_visible(state, state.owners.get(object_id, []), roles))
    if rest[1:] == ["manager"] and kind == "users":
        manager = str(table[object_id].get("manager") or "").lower()
        manager_object = state.typed(manager) if manager else None
        if manager_object is None:
            raise not_found("manager")
        return DirectoryResult("directoryObjects/$entity", entity=manager_object)
    raise DirectoryRequestError(400, "BadRequest", f"Resource not found for the segment '{rest[1]}'.")


def _id_of_upn(state: DirectoryState, key: str) -> str:
    """The id of the user whose userPrincipalName is `key` (case-insensitive), or `key` itself."""
    matches = (uid for uid, user in state.users.items() if str(user.get("userPrincipalName", "")).lower() == key)
    return next(matches, key)


def _require(roles: set[str] | None, options: Iterable[set[str]]) -> None:
    if roles is not None and not any(option <= roles for option in options):
        raise DirectoryRequestError(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
            reason=f"roles {sorted(roles)} lack one of {[sorted(o) for o in options]}",
        )


def _visible(state: DirectoryState, object_ids: Iterable[str], roles: set[str] | None) -> list[JSONObject]:
    """directoryObjects with full properties where the token may read the type, else id and type only."""
    readers = {_TYPES["user"]: USER_READERS, _TYPES["group"]: GROUP_READERS, _TYPES["role"]: ROLE_READERS}
    items = []
    for object_id in object_ids:
        item = state.typed(object_id)
        if item is None:
            continue
        readable = roles is None or any(option <= roles for option in readers[item["@odata.type"]])
        items.append(item if readable else {"@odata.type": item["@odata.type"], "id": item["id"]})
    return items


def shape(kind: str, item: JSONObject, select: list[str] | None) -> JSONObject:
    """An object as GET returns it: the default property set, or exactly the selected properties."""
    default = USER_DEFAULT_PROPERTIES if kind == "users" else tuple(sorted(GROUP_PROPERTIES))
    return {name: copy.deepcopy(item.get(name)) for name in (select or default)}


def check_select(kind: str, select: list[str] | None) -> None:
    known = USER_PROPERTIES if kind == "users" else GROUP_PROPERTIES
    for name in select or []:
        if name not in known:
            type_name = "user" if kind == "users" else "group"
            raise DirectoryRequestError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
