"""What `make verify` reads from the tenant's directory, read-only (docs/assurance.md "What verify reads").

For an MSP stack: every user and group id the stack names (`GET /v1.0/users/{id}`, `GET /v1.0/groups/{id}`),
the transitive memberships of the break-glass accounts, the service account and a sample of real technicians
(`GET /v1.0/users/{id}/transitiveMemberOf`, all pages; the technicians from `GET /v1.0/groups/{id}/members`).
For a Direct-mode client stack: the client tenant's CIPP service account. The identity needs User.Read.All
and GroupMember.Read.All (application permissions) besides Policy.Read.All.

`read_directory(graph, config, error_type)` returns a `DirectoryReport`: the memberships the scenario matrix
uses instead of asserted ones (`DirectoryView`), failures (a named object missing, a break-glass or service
account disabled) and warnings, as assessment tools raise them (a synced break-glass account, fewer than two
break-glass accounts, a group that is not role-assignable, a break-glass account inside a technician group, a
break-glass account with no phishing-resistant method: `GET /v1.0/users/{id}/authentication/methods`, with the
optional UserAuthenticationMethod.Read.All; without it the warning says it cannot tell). What the directory
will not say is neither a pass nor a failure: a named object it refuses to read (HTTP 403) and an account
without `accountEnabled` in the answer are `cannot_tell` findings naming the permission, and verify cannot
prove the stack (exit 5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cipp_hardening.config import MspStack, StackConfig

USER_FIELDS: Final = "id,displayName,userPrincipalName,accountEnabled,onPremisesSyncEnabled"
GROUP_FIELDS: Final = "id,displayName,isAssignableToRole"
TECHNICIAN_SAMPLE: Final = 5  # real technicians per technician group whose sign-ins the matrix checks
NOT_FOUND_CODES: Final = frozenset({"request_resourcenotfound", "resourcenotfound"})
CANNOT_TELL: Final = "cannot_tell"  # a Finding severity: the directory would not say (a 403, a field it left out)
USER_PERMISSION: Final = "User.Read.All"
GROUP_PERMISSION: Final = "GroupMember.Read.All (or Group.Read.All)"
_USER_TYPE: Final = "#microsoft.graph.user"
_GROUP_TYPE: Final = "#microsoft.graph.group"
_ROLE_TYPE: Final = "#microsoft.graph.directoryrole"
# Graph authenticationMethod types that are phishing-resistant (lower-case @odata.type).
PHISHING_RESISTANT_METHODS: Final = frozenset(
    {
        "#microsoft.graph.fido2authenticationmethod",
        "#microsoft.graph.windowshelloforbusinessauthenticationmethod",
        "#microsoft.graph.platformcredentialauthenticationmethod",
    }
)


class GraphReader(Protocol):
    """The GETs this module needs (service_clients/graph_client.GraphClient provides them)."""

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]: ...

    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Membership:
    """A user's transitive memberships as the directory reports them."""

    group_ids: frozenset[str] = frozenset()
    role_template_ids: frozenset[str] = frozenset()
    # False when a directory role came back without its roleTemplateId (the identity lacks
    # RoleManagement.Read.Directory): role-targeted policies cannot be judged for this user.
    roles_read: bool = True


@dataclass(frozen=True)
class Technician:
    user_id: str
    label: str  # the user principal name
    membership: Membership


@dataclass(frozen=True)
class DirectoryView:
    """What the scenario matrix takes from the directory instead of asserting it."""

    memberships: Mapping[str, Membership] = field(default_factory=dict)  # lower-case user id → memberships
    technicians: tuple[Technician, ...] = ()  # a sample of real technician group members

    def membership(self, user_id: str) -> Membership | None:
        return self.memberships.get(user_id.lower())


@dataclass(frozen=True)
class Finding:
    """One directory problem: `fail` breaks verify (exit 3), `warn` is reported."""

    severity: str  # "fail" | "warn" | "cannot_tell" (verify cannot prove the stack: exit 5)
    subject: str  # the object id
    message: str

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity, "id": self.subject, "message": self.message}


@dataclass(frozen=True)
class DirectoryReport:
    view: DirectoryView
    findings: tuple[Finding, ...] = ()

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "fail")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warn")

    @property
    def unknowns(self) -> tuple[Finding, ...]:
        """What the directory would not tell (a refused read, a missing field): neither a pass nor a failure."""
        return tuple(f for f in self.findings if f.severity == CANNOT_TELL)

    def to_json(self) -> dict[str, Any]:
        return {
            "findings": [f.to_json() for f in self.findings],
            "technicians": [t.user_id for t in self.view.technicians],
        }


def is_not_found(error: Exception) -> bool:
    """Graph's 404 for a directory object (`Request_ResourceNotFound`)."""
    return getattr(error, "status", None) == 404 and str(getattr(error, "code", "")).lower() in NOT_FOUND_CODES


def is_refused(error: Exception) -> bool:
    """Graph's 403 (`Authorization_RequestDenied`): the identity lacks the permission, the object may exist."""
    return getattr(error, "status", None) == 403


def _id(item: Mapping[str, Any]) -> str:
    return str(item.get("id", "")).lower()


def _user_label(user: Mapping[str, Any]) -> str:
    return str(user.get("userPrincipalName") or user.get("displayName") or user.get("id"))


def membership_of(items: Iterable[Mapping[str, Any]]) -> Membership:
    """transitiveMemberOf items → groups and (activated) directory roles by template id."""
    groups: set[str] = set()
    roles: set[str] = set()
    roles_read = True
    for item in items:
        kind = str(item.get("@odata.type", "")).lower()
        if kind == _GROUP_TYPE and item.get("id"):
            groups.add(_id(item))
        elif kind == _ROLE_TYPE and item.get("roleTemplateId"):
            roles.add(str(item["roleTemplateId"]).lower())
        elif kind == _ROLE_TYPE:
            roles_read = False
    return Membership(frozenset(groups), frozenset(roles), roles_read)


class _Reader:
    """One pass over the directory for one stack; findings accumulate in call order."""

    def __init__(self, graph: GraphReader, error_type: type[Exception]) -> None:
        self.graph = graph
        self.error_type = error_type
        self.findings: list[Finding] = []
        self.memberships: dict[str, Membership] = {}

    def fail(self, subject: str, message: str) -> None:
        self.findings.append(Finding("fail", subject, message))

    def warn(self, subject: str, message: str) -> None:
        self.findings.append(Finding("warn", subject, message))

    def cannot_tell(self, subject: str, message: str) -> None:
        self.findings.append(Finding(CANNOT_TELL, subject, message))

    def _object(self, path: str, select: str, subject: str, what: str, permission: str) -> dict[str, Any] | None:
        """The object, or None with a finding: a 404 fails (it does not exist), a 403 cannot tell."""
        try:
            return self.graph.get(path, {"$select": select})
        except self.error_type as error:
            if is_refused(error):
                self.cannot_tell(
                    subject,
                    f"cannot tell whether {what} exists: the directory refused the read (HTTP 403); grant the "
                    f"verifying identity {permission} (docs/assurance.md)",
                )
                return None
            if not is_not_found(error):
                raise
        self.fail(subject, f"{what} does not exist in the directory")
        return None

    def user(self, user_id: str, role: str, key: str) -> dict[str, Any] | None:
        return self._object(f"users/{user_id}", USER_FIELDS, user_id, f"{role} {user_id} ({key})", USER_PERMISSION)

    def group(self, group_id: str, role: str, key: str) -> dict[str, Any] | None:
        what = f"{role} {group_id} ({key})"
        return self._object(f"groups/{group_id}", GROUP_FIELDS, group_id, what, GROUP_PERMISSION)

    def enabled_user(self, user_id: str, role: str, key: str) -> dict[str, Any] | None:
        """A user that must be able to sign in: missing or disabled fails; no `accountEnabled` cannot tell."""
        user = self.user(user_id, role, key)
        if user is None:
            return None
        enabled = user.get("accountEnabled")
        who = f"{role} {user_id} ({_user_label(user)}, {key})"
        if enabled is False:
            self.fail(user_id, f"{who} is disabled (accountEnabled false)")
        elif enabled is not True:
            self.cannot_tell(
                user_id,
                f"cannot tell whether {who} can sign in: the directory returned no accountEnabled for it "
                f"(the verifying identity needs {USER_PERMISSION}; docs/assurance.md)",
            )
        return user

    def read_membership(self, user_id: str) -> Membership:
        membership = membership_of(self.graph.list_all(f"users/{user_id}/transitiveMemberOf"))
        self.memberships[user_id.lower()] = membership
        return membership

    def user_members(self, group_id: str, top: int) -> list[dict[str, Any]]:
        """The user members on the first page of the group's direct members (a sample, not the whole group)."""
        page = self.graph.get(f"groups/{group_id}/members", {"$top": str(top)})
        users = [m for m in page.get("value", []) if str(m.get("@odata.type", "")).lower() == _USER_TYPE]
        return sorted(users, key=_id)


def read_directory(
    graph: GraphReader, config: StackConfig, error_type: type[Exception], *, sample: int = TECHNICIAN_SAMPLE
) -> DirectoryReport:
    """Read what the stack names from the directory. `error_type`: the client's error (a 404 or a 403 on a
    named object becomes a finding, failing or cannot-tell; any other error propagates)."""
    reader = _Reader(graph, error_type)
    technicians: tuple[Technician, ...] = ()
    if isinstance(config, MspStack):
        technicians = _read_msp(reader, config, sample)
    else:
        account = config.client_tenant.service_account_user_id
        key = "clientTenant.serviceAccountUserId"
        direct = config.client_tenant.access_mode == "direct" and account is not None
        if direct and account is not None and reader.enabled_user(account, "CIPP service account", key) is not None:
            reader.read_membership(account)
    return DirectoryReport(DirectoryView(dict(reader.memberships), technicians), tuple(reader.findings))


def _read_msp(reader: _Reader, config: MspStack, sample: int) -> tuple[Technician, ...]:
    access, account = config.technician_access, config.service_account.user_id
    key = "technicianAccess"
    break_glass = list(access.break_glass_user_ids)
    for user_id in break_glass:
        user = reader.enabled_user(user_id, "break-glass account", f"{key}.breakGlassUserIds")
        if user is not None:
            _check_break_glass_user(reader, user_id, user, access.include_group_ids)
    if reader.enabled_user(account, "CIPP service account", "serviceAccount.userId") is not None:
        _check_not_technician(reader, account, "the CIPP service account", access.include_group_ids)
    for user_id in access.include_user_ids:
        if reader.user(user_id, "technician", f"{key}.includeUserIds") is not None:
            reader.read_membership(user_id)
    break_glass_members = _read_break_glass_groups(reader, access.break_glass_group_ids, sample)
    accounts = {*break_glass, *break_glass_members}
    if len(accounts) < 2:
        reader.warn(
            ",".join(break_glass) or "-",
            f"{len(accounts)} break-glass account(s): Microsoft recommends at least two emergency access "
            f"accounts ({key}.breakGlassUserIds / breakGlassGroupIds)",
        )
    excluded = {*accounts, account}
    technicians: list[Technician] = []
    for group_id in access.include_group_ids:
        group = reader.group(group_id, "technician group", f"{key}.includeGroupIds")
        if group is None:
            continue
        _check_role_assignable(reader, group, "technician group", "remove themselves and step outside Part A")
        taken = excluded | {t.user_id for t in technicians}
        members = [m for m in reader.user_members(group_id, sample + len(taken)) if _id(m) not in taken]
        technicians += [Technician(_id(m), _user_label(m), reader.read_membership(_id(m))) for m in members[:sample]]
    return tuple(technicians)


def _check_break_glass_user(reader: _Reader, user_id: str, user: Mapping[str, Any], tech_groups: Iterable[str]) -> None:
    label = _user_label(user)
    if user.get("onPremisesSyncEnabled") is True:
        reader.warn(
            user_id,
            f"break-glass account {user_id} ({label}) is synced from on-premises (onPremisesSyncEnabled): "
            "an emergency access account should be cloud-only, so an on-premises outage cannot take it away",
        )
    _check_not_technician(reader, user_id, f"break-glass account {user_id} ({label})", tech_groups)
    _check_phishing_resistant(reader, user_id, label)


def _check_phishing_resistant(reader: _Reader, user_id: str, label: str) -> None:
    """Microsoft's emergency-access guidance: phishing-resistant credentials (docs/assurance.md). The permission
    (UserAuthenticationMethod.Read.All) is optional: without it the warning says it cannot tell."""
    who = f"break-glass account {user_id} ({label})"
    try:
        methods = reader.graph.list_all(f"users/{user_id}/authentication/methods")
    except reader.error_type as error:
        if not is_refused(error):
            raise
        reader.warn(
            user_id,
            f"cannot tell whether {who} has a phishing-resistant method registered: grant the verifying identity "
            "UserAuthenticationMethod.Read.All to check (docs/assurance.md)",
        )
        return
    if not any(str(m.get("@odata.type", "")).lower() in PHISHING_RESISTANT_METHODS for m in methods):
        reader.warn(
            user_id,
            f"{who} has no phishing-resistant method registered (passkey/FIDO2, Windows Hello for Business or a "
            "platform credential; a certificate for certificate-based authentication is not listed there): "
            "Microsoft's emergency-access guidance asks for one",
        )


def _check_not_technician(reader: _Reader, user_id: str, who: str, tech_groups: Iterable[str]) -> None:
    membership = reader.read_membership(user_id)
    for group in sorted(set(tech_groups) & membership.group_ids):
        reader.warn(
            user_id,
            f"{who} is a member of technician group {group}: only Part A's exclusion keeps it out of the "
            "IP restriction; take it out of the group",
        )


def _read_break_glass_groups(reader: _Reader, group_ids: Iterable[str], sample: int) -> set[str]:
    members: set[str] = set()
    for group_id in group_ids:
        group = reader.group(group_id, "break-glass group", "technicianAccess.breakGlassGroupIds")
        if group is None:
            continue
        _check_role_assignable(reader, group, "break-glass group", "add themselves and step outside Part A")
        members |= {_id(m) for m in reader.user_members(group_id, max(sample, 2))}
    return members


def _check_role_assignable(reader: _Reader, group: Mapping[str, Any], role: str, consequence: str) -> None:
    if group.get("isAssignableToRole") is True:
        return
    group_id = _id(group)
    reader.warn(
        group_id,
        f"{role} {group_id} ({group.get('displayName') or 'no name'}) is not role-assignable "
        f"(isAssignableToRole false): a Groups Administrator or a group owner can {consequence}; "
        "use a role-assignable group (set at creation only)",
    )
