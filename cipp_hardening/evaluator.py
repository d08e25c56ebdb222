"""Offline Conditional Access "what if" evaluation over Microsoft Graph v1.0 policy JSON.

Answers, for one sign-in, which policies apply and what the combined effect is, following the
documented semantics in the Graph research notes (docs/graph-ca.md §5.3) (assignments ANDed, exclude beats
include, all applying policies must be satisfied, block wins, report-only not enforced, disabled
ignored). Stdlib only, no I/O.

Per policy the answer is three-valued: `applies`, `does_not_apply` or `cannot_tell`. The evaluator
never guesses: where the policy depends on something the sign-in does not state (risk, device filter,
country, an app group, an unresolved placeholder id, MFA trusted IPs...) it says `cannot_tell` and the
verdict lists the policy as `uncertain` when it could change the outcome.

Usage::

    policy_set = PolicySet.compile(policies, named_locations)   # once: sets, networks, checks
    evaluation = policy_set.evaluate(SignIn(user_id=..., application_id=..., client_ip="203.0.113.7"))
    evaluation.enforced.blocked, evaluation.enforced.uncertain, evaluation.result(policy_id).reason

Decisions where the reference is silent (all [I], inferred, in docs/graph-ca.md's terms):

1. Order of conditions (the `reason`): Graph's analysisReasons enum order — users, workloadIdentities,
   application | userActions | authenticationContext, devicePlatform, devices, clientApps, location,
   signInRisk, userRisk, insiderRisk, authenticationFlow, then unknown/beta conditions. The first
   condition that definitely fails decides `does_not_apply` even when an earlier one was unknowable: a
   policy that cannot apply for a certain reason does not apply whatever the unknown turns out to be.
   Otherwise the first unknowable condition is the reason of `cannot_tell`.
2. Users. Ids are compared case-insensitively. A reference that is not a GUID and not a Graph keyword
   (e.g. "<EmergencyAccessAccountsGroup>", a display name) is *unresolved*: it matches a sign-in that
   lists the same string, else it makes the user condition unknowable (not silently "not a member").
   A member user of the tenant (`external=None`) is never a guest or external user. `All` matches every
   kind of user, external ones included. Ids, groups and roles only match external kinds that have a user
   object in the resource tenant (internalGuest, b2bCollaborationGuest, b2bCollaborationMember,
   otherExternalUser); b2bDirectConnectUser and serviceProvider (GDAP technicians) are matched only by
   `All`, `GuestsOrExternalUsers` and guest/external-type selections — so excludeGroups never protects
   an MSP technician, only a serviceProvider exclusion does (§2.4, §5.3 "Service provider exclusion").
   externalTenants `enumerated` scopes the tenant-bound kinds (b2b*, serviceProvider) by
   `home_tenant_id` (unknown tenant → cannot tell); internalGuest and otherExternalUser are not bound
   to a tenant and match by type alone.
3. Applications. `application_id=None` (or "All") means "which app is not stated": `All` with no
   exclusions applies, anything narrower is cannot tell. App groups `Office365` and
   `MicrosoftAdminPortals`: the What If tool reports no match (§5.2), which is unsafe for a safety
   check, so membership comes from `SignIn.app_groups` (the groups the scenario asserts the app is in);
   `app_groups=None` means unknown → cannot tell. Unknown non-GUID app keywords (e.g. beta
   "AllAgentIdResources", display names) are unresolved → cannot tell. applicationFilter → cannot tell.
   A sign-in that is a user action (What If `userActionContext`, §5.1) is not an application sign-in:
   app-targeted policies do not apply to it; user-action policies apply only to that action. An
   authentication-context policy is cannot tell unless the sign-in names a context.
4. Locations. `AllTrusted` = every named location with isTrusted plus the MFA trusted IPs pseudo
   location 00000000-0000-0000-0000-000000000000. The MFA trusted IPs are not visible offline:
   pass `mfa_trusted_ips` (a list of CIDRs, possibly empty) to know them; with `None` the zero id
   matches nothing known, and the answer is cannot tell only when it matters (the IP is in no trusted
   named location). Country locations use `SignIn.country` (None → cannot tell, whatever
   countryLookupMethod says); compliant-network and other location kinds, unknown location ids and
   unparseable ranges (a bad CIDR, a lower/upper pair of two IP versions or upside down, an entry that is not
   an ipRange object) → cannot tell, unless another range of the location holds the IP.
   `includeLocations` empty with exclusions means `All`.
5. Platforms: `device_platform=None` is Entra's "unknown platform": matched by `all` only.
6. Risk (sign-in, user, insider), authenticationFlows: matched exactly when the sign-in states the
   level/flow, else cannot tell. servicePrincipalRiskLevels, clientApplications (workload identities),
   devices (device filter) and unknown non-empty conditions (beta `times`, `deviceStates`, `agents`…)
   are cannot tell for user sign-ins. A workload-identity policy (`includeUsers: ["None"]`) fails the
   users condition first, so it does not apply.
7. Grant: a missing/unknown `operator` is treated as AND (the stricter reading, and the portal default
   for several controls). Controls are named `mfa`, `compliantDevice`, … as in Graph, plus
   `authenticationStrength:<id>`, `termsOfUse:<id>`, `customAuthenticationFactor:<id>`.
8. States other than enabled / enabledForReportingButNotEnforced are treated as disabled.
9. Verdict: `uncertain` lists the cannot-tell policies whose applying would change it — any block, a
   grant requirement not implied by one already in force, a stricter session control; nothing is
   uncertain once a block definitely applies. `requires_mfa`: some applying requirement cannot be met
   without `mfa` or an authentication strength. Controls are compared literally (`satisfied_by({"mfa"})`
   does not meet an authentication strength).
10. Placeholders can only be asserted positively: a scenario can list "<AdminGroup>" in `group_ids`,
   but not state that the user is outside it, so an exclusion by placeholder stays cannot tell.
11. Workload identities (`ServicePrincipalSignIn`, What If's servicePrincipalSignIn; docs/workload-identity.md):
   a policy without `clientApplications` targets users and never applies to a service principal (reason
   `users`); a policy with it skips the users condition and matches `include/excludeServicePrincipals`
   (ids, or `ServicePrincipalsInMyTenant`). Only single-tenant service principals registered in the
   tenant are covered (`single_tenant=False`: no workload policy applies). A sign-in whose service
   principal is a placeholder (not a GUID) matches only that same string, and is cannot tell against
   lists of ids; `servicePrincipalFilter` is cannot tell; `servicePrincipalRiskLevels` is matched
   against `service_principal_risk` (None: cannot tell). Client app types other than `all` are cannot
   tell for a service principal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cipp_hardening.config import GUID

# --- three-valued logic -------------------------------------------------------------------------

MATCH: Final = 1
NO_MATCH: Final = 0
UNKNOWN: Final = 2
Tri = int


def _any_of(*values: Tri) -> Tri:
    """Three-valued OR: one MATCH suffices; otherwise any UNKNOWN makes it unknown."""
    if MATCH in values:
        return MATCH
    return UNKNOWN if UNKNOWN in values else NO_MATCH


def _filtered(included: Tri, excluded: Tri, filter_mode: str) -> Tri:
    """An attribute filter we cannot evaluate may add to the side it filters (include or exclude)."""
    if filter_mode == "include":
        included = _any_of(included, UNKNOWN)
    elif filter_mode == "exclude":
        excluded = _any_of(excluded, UNKNOWN)
    return _included_not_excluded(included, excluded)


def _included_not_excluded(included: Tri, excluded: Tri) -> Tri:
    """Exclude beats include (docs/graph-ca.md §5.3)."""
    if excluded == MATCH or included == NO_MATCH:
        return NO_MATCH
    if included == MATCH and excluded == NO_MATCH:
        return MATCH
    return UNKNOWN


# --- Graph vocabulary ---------------------------------------------------------------------------

ENABLED: Final = "enabled"
REPORT_ONLY: Final = "enabledForReportingButNotEnforced"
DISABLED: Final = "disabled"
APPLIES_REASON: Final = "notSet"
MFA_TRUSTED_IPS_LOCATION: Final = "00000000-0000-0000-0000-000000000000"

EXTERNAL_KINDS: Final = frozenset(
    {
        "internalGuest",
        "b2bCollaborationGuest",
        "b2bCollaborationMember",
        "b2bDirectConnectUser",
        "otherExternalUser",
        "serviceProvider",
    }
)
_KINDS_WITH_USER_OBJECT: Final = frozenset(
    {"internalguest", "b2bcollaborationguest", "b2bcollaborationmember", "otherexternaluser"}
)
_TENANT_BOUND_KINDS: Final = frozenset(
    {"b2bcollaborationguest", "b2bcollaborationmember", "b2bdirectconnectuser", "serviceprovider"}
)
CLIENT_APP_TYPES: Final = frozenset({"browser", "mobileAppsAndDesktopClients", "exchangeActiveSync", "other"})
DEVICE_PLATFORMS: Final = frozenset({"android", "iOS", "windows", "macOS", "linux", "windowsPhone"})
RISK_LEVELS: Final = frozenset({"low", "medium", "high", "hidden", "none"})
INSIDER_RISK_LEVELS: Final = frozenset({"minor", "moderate", "elevated", "none"})
AUTHENTICATION_FLOWS: Final = frozenset({"none", "deviceCodeFlow", "authenticationTransfer"})
APP_GROUPS: Final = frozenset({"Office365", "MicrosoftAdminPortals"})
_USER_ACTION_ALIASES: Final = {
    "registersecurityinformation": "urn:user:registersecurityinfo",
    "registerorjoindevices": "urn:user:registerdevice",
}
_UNSTATED_APP: Final = "all"

_KNOWN_CONDITIONS: Final = frozenset(
    {
        "users",
        "applications",
        "clientApplications",
        "clientAppTypes",
        "locations",
        "platforms",
        "devices",
        "signInRiskLevels",
        "userRiskLevels",
        "servicePrincipalRiskLevels",
        "insiderRiskLevels",
        "authenticationFlows",
    }
)
_UNKNOWN_CONDITION_REASONS: Final = {"times": "time", "deviceStates": "devices"}


def _canonical(value: str, allowed: Iterable[str], what: str) -> str:
    for candidate in allowed:
        if candidate.lower() == value.lower():
            return candidate
    raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(sorted(allowed))}")


# --- the sign-in --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalUser:
    """A guest or external user as the resource tenant sees it (docs/graph-ca.md §2.4)."""

    kind: str
    home_tenant_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _canonical(self.kind, EXTERNAL_KINDS, "external user kind"))


@dataclass(frozen=True, kw_only=True)
class SignIn:
    """One simulated sign-in (the What If request of docs/graph-ca.md §5.1, plus what a scenario knows)."""

    user_id: str
    application_id: str | None = None  # None / "All": the app is not stated
    client_ip: str | None = None
    group_ids: AbstractSet[str] = frozenset()  # transitive memberships
    role_template_ids: AbstractSet[str] = frozenset()
    external: ExternalUser | None = None  # None: a member user of the tenant
    client_app_type: str = "browser"
    device_platform: str | None = None  # None: a platform Entra cannot identify
    country: str | None = None
    user_action: str | None = None
    authentication_context: str | None = None
    app_groups: AbstractSet[str] | None = None  # None: unknown whether the app is in Office365 etc.
    sign_in_risk: str | None = None
    user_risk: str | None = None
    insider_risk: str | None = None
    authentication_flow: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "group_ids", frozenset(self.group_ids))
        set_(self, "role_template_ids", frozenset(self.role_template_ids))
        if self.app_groups is not None:
            set_(self, "app_groups", frozenset(_canonical(g, APP_GROUPS, "app group") for g in self.app_groups))
        set_(self, "client_app_type", _canonical(self.client_app_type, CLIENT_APP_TYPES, "client app type"))
        if self.device_platform is not None:
            set_(self, "device_platform", _canonical(self.device_platform, DEVICE_PLATFORMS, "device platform"))
        for name, allowed in (
            ("sign_in_risk", RISK_LEVELS),
            ("user_risk", RISK_LEVELS),
            ("insider_risk", INSIDER_RISK_LEVELS),
            ("authentication_flow", AUTHENTICATION_FLOWS),
        ):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _canonical(value, allowed, name.replace("_", " ")))
        if self.client_ip is not None:
            _parse_address(self.client_ip)


@dataclass(frozen=True, kw_only=True)
class ServicePrincipalSignIn:
    """A workload identity asking Entra for a token (the What If servicePrincipalSignIn, docs/graph-ca.md §5.1)."""

    service_principal_id: str  # the service principal's object id; a non-GUID is an unresolved placeholder
    application_id: str | None = None  # the resource the token is for; None / "All": not stated
    client_ip: str | None = None
    country: str | None = None
    service_principal_risk: str | None = None
    single_tenant: bool = True  # an app registered in this tenant: the only kind decision 11 covers
    label: str | None = None  # what the principal is, for summaries (e.g. "CIPP-API client <id>")

    def __post_init__(self) -> None:
        if self.service_principal_risk is not None:
            risk = _canonical(self.service_principal_risk, RISK_LEVELS, "service principal risk")
            object.__setattr__(self, "service_principal_risk", risk)
        if self.client_ip is not None:
            _parse_address(self.client_ip)


AnySignIn = SignIn | ServicePrincipalSignIn


@dataclass(frozen=True, slots=True)
class _Workload:
    """The service principal side of a workload-identity sign-in, normalised."""

    principal: str
    resolved: bool  # a GUID, not a placeholder
    in_scope: bool
    risk: str | None


def _parse_address(text: str) -> tuple[int, int]:
    """(IP version, integer value); IPv4-mapped IPv6 addresses count as IPv4."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version, int(address)


class _Facts:
    """The sign-in normalised once (lower-case ids, resolved locations) for all policies."""

    __slots__ = (
        "app_groups",
        "app_id",
        "auth_context",
        "auth_flow",
        "client_app",
        "external_kind",
        "group_ids",
        "has_user_object",
        "home_tenant",
        "insider_risk",
        "locations",
        "platform",
        "role_ids",
        "sign_in_risk",
        "user_action",
        "user_ids",
        "user_risk",
        "workload",
    )

    def __init__(self, sign_in: AnySignIn, locations: Mapping[str, Tri]) -> None:
        if isinstance(sign_in, ServicePrincipalSignIn):
            self._of_workload(sign_in, locations)
            return
        self.workload: _Workload | None = None
        external = sign_in.external
        self.user_ids = frozenset({sign_in.user_id.lower()})
        self.group_ids = frozenset(g.lower() for g in sign_in.group_ids)
        self.role_ids = frozenset(r.lower() for r in sign_in.role_template_ids)
        self.external_kind = external.kind.lower() if external else None
        self.home_tenant = external.home_tenant_id.lower() if external and external.home_tenant_id else None
        self.has_user_object = external is None or self.external_kind in _KINDS_WITH_USER_OBJECT
        app_id = (sign_in.application_id or _UNSTATED_APP).lower()
        self.app_id = None if app_id == _UNSTATED_APP else app_id
        self.app_groups = None if sign_in.app_groups is None else frozenset(g.lower() for g in sign_in.app_groups)
        self.user_action = _user_action_key(sign_in.user_action) if sign_in.user_action else None
        self.auth_context = sign_in.authentication_context.lower() if sign_in.authentication_context else None
        self.client_app: str | None = sign_in.client_app_type.lower()
        self.platform = sign_in.device_platform.lower() if sign_in.device_platform else None
        self.sign_in_risk = _lower_or_none(sign_in.sign_in_risk)
        self.user_risk = _lower_or_none(sign_in.user_risk)
        self.insider_risk = _lower_or_none(sign_in.insider_risk)
        self.auth_flow = _lower_or_none(sign_in.authentication_flow)
        self.locations = locations

    def _of_workload(self, sign_in: ServicePrincipalSignIn, locations: Mapping[str, Tri]) -> None:
        principal = sign_in.service_principal_id.strip().lower()
        self.workload = _Workload(
            principal,
            bool(GUID.match(principal)),
            sign_in.single_tenant,
            _lower_or_none(sign_in.service_principal_risk),
        )
        self.user_ids = self.group_ids = self.role_ids = frozenset()
        self.external_kind = self.home_tenant = None
        self.has_user_object = False
        app_id = (sign_in.application_id or _UNSTATED_APP).lower()
        self.app_id = None if app_id == _UNSTATED_APP else app_id
        self.app_groups = None
        self.user_action = self.auth_context = self.client_app = self.platform = None
        self.sign_in_risk = self.user_risk = self.insider_risk = self.auth_flow = None
        self.locations = locations


def _lower_or_none(value: str | None) -> str | None:
    return value.lower() if value else None


def _user_action_key(action: str) -> str:
    key = action.strip().lower()
    return _USER_ACTION_ALIASES.get(key, key)


# --- JSON helpers (real exports carry nulls, missing keys and OData annotations) -----------------


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    """A Graph collection or flags string ("a, b") as a list of trimmed, non-empty strings."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def _lowered(value: Any) -> frozenset[str]:
    return frozenset(item.lower() for item in _strings(value))


def _is_configured(value: Any) -> bool:
    """Whether a condition object holds anything but nulls, empty collections and annotations."""
    if isinstance(value, Mapping):
        return any(_is_configured(v) for k, v in value.items() if "@odata" not in k)
    if isinstance(value, list | tuple | str):
        return bool(value)
    return value is not None and value is not False


# --- compiled reference lists -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Refs:
    """A list of object ids; non-GUID entries are unresolved placeholders (decision 2)."""

    ids: frozenset[str]
    has_unresolved: bool

    @classmethod
    def of(cls, values: Iterable[str], keywords: AbstractSet[str] = frozenset()) -> _Refs:
        ids = frozenset(v for v in values if v not in keywords)
        return cls(ids, any(not GUID.match(v) for v in ids))

    def match(self, values: frozenset[str]) -> Tri:
        if not self.ids.isdisjoint(values):
            return MATCH
        return UNKNOWN if self.has_unresolved else NO_MATCH


@dataclass(frozen=True, slots=True)
class _GuestSelection:
    """includeGuestsOrExternalUsers / excludeGuestsOrExternalUsers (docs/graph-ca.md §2.4)."""

    kinds: frozenset[str]
    tenants: frozenset[str] | None  # None: all external tenants

    @classmethod
    def of(cls, spec: Any) -> _GuestSelection | None:
        kinds = _lowered(_dict(spec).get("guestOrExternalUserTypes")) - {"none", "unknownfuturevalue"}
        if not kinds:
            return None
        tenants = _dict(_dict(spec).get("externalTenants"))
        enumerated = str(tenants.get("membershipKind", "all")).lower() == "enumerated"
        return cls(kinds, _lowered(tenants.get("members")) if enumerated else None)

    def match(self, facts: _Facts) -> Tri:
        kind = facts.external_kind
        if kind is None or kind not in self.kinds:
            return NO_MATCH
        if self.tenants is None or kind not in _TENANT_BOUND_KINDS:
            return MATCH
        if facts.home_tenant is None:
            return UNKNOWN
        return MATCH if facts.home_tenant in self.tenants else NO_MATCH


@dataclass(frozen=True, slots=True)
class _UserSelection:
    """One side (include or exclude) of the users condition."""

    everyone: bool
    all_external: bool  # legacy "GuestsOrExternalUsers"
    users: _Refs
    groups: _Refs
    roles: _Refs
    guests: _GuestSelection | None

    @classmethod
    def of(cls, users: Mapping[str, Any], side: str) -> _UserSelection:
        user_values = _lowered(users.get(f"{side}Users"))
        return cls(
            everyone="all" in user_values,
            all_external="guestsorexternalusers" in user_values,
            users=_Refs.of(user_values, frozenset({"all", "none", "guestsorexternalusers"})),
            groups=_Refs.of(_lowered(users.get(f"{side}Groups"))),
            roles=_Refs.of(_lowered(users.get(f"{side}Roles"))),
            guests=_GuestSelection.of(users.get(f"{side}GuestsOrExternalUsers")),
        )

    def match(self, facts: _Facts) -> Tri:
        if self.everyone:
            return MATCH
        by_object = NO_MATCH
        if facts.has_user_object:
            by_object = _any_of(
                self.users.match(facts.user_ids),
                self.groups.match(facts.group_ids),
                self.roles.match(facts.role_ids),
            )
        if facts.external_kind is None or by_object == MATCH:
            return by_object
        by_type = MATCH if self.all_external else NO_MATCH
        if self.guests is not None and by_type != MATCH:
            by_type = self.guests.match(facts)
        return _any_of(by_object, by_type)


# --- conditions: each compiles to (reason, check) or None when not configured -------------------

Check = Callable[[_Facts], Tri]
Condition = tuple[str, Check]


def _users_condition(users: Mapping[str, Any], *, workload_policy: bool) -> Condition:
    include = _UserSelection.of(users, "include")
    exclude = _UserSelection.of(users, "exclude")

    def check(facts: _Facts) -> Tri:
        if facts.workload is not None:
            # Decision 11: a service principal is held only by policies with clientApplications.
            return MATCH if workload_policy else NO_MATCH
        return _included_not_excluded(include.match(facts), exclude.match(facts))

    return "users", check


@dataclass(frozen=True, slots=True)
class _PrincipalRefs:
    """includeServicePrincipals / excludeServicePrincipals (decision 11)."""

    everyone: bool  # ServicePrincipalsInMyTenant
    ids: frozenset[str]
    has_unresolved: bool

    @classmethod
    def of(cls, values: Any) -> _PrincipalRefs:
        lowered = _lowered(values)
        ids = lowered - {"serviceprincipalsinmytenant", "none"}
        return cls("serviceprincipalsinmytenant" in lowered, ids, any(not GUID.match(i) for i in ids))

    @property
    def empty(self) -> bool:
        return not (self.everyone or self.ids)

    def match(self, workload: _Workload) -> Tri:
        if self.everyone or workload.principal in self.ids:
            return MATCH
        if self.has_unresolved or (self.ids and not workload.resolved):
            return UNKNOWN
        return NO_MATCH


def _client_applications_condition(value: Any) -> Condition | None:
    if not _is_configured(value):
        return None
    client_apps = _dict(value)
    include = _PrincipalRefs.of(client_apps.get("includeServicePrincipals"))
    exclude = _PrincipalRefs.of(client_apps.get("excludeServicePrincipals"))
    sp_filter = _dict(client_apps.get("servicePrincipalFilter"))
    filter_mode = str(sp_filter.get("mode", "")).lower() if sp_filter.get("rule") else ""

    def check(facts: _Facts) -> Tri:
        workload = facts.workload
        if workload is None:
            return UNKNOWN  # decision 6: user sign-ins fail the users condition of such a policy first
        if not workload.in_scope:
            return NO_MATCH
        excluded = NO_MATCH if exclude.empty else exclude.match(workload)
        return _filtered(include.match(workload), excluded, filter_mode)

    return "workloadIdentities", check


def _service_principal_risk_condition(value: Any) -> Condition | None:
    levels = _lowered(value)
    if not levels:
        return None

    def check(facts: _Facts) -> Tri:
        workload = facts.workload
        if workload is None or workload.risk is None:
            return UNKNOWN
        return MATCH if workload.risk in levels else NO_MATCH

    return "workloadIdentities", check


@dataclass(frozen=True, slots=True)
class _AppRefs:
    everything: bool
    ids: frozenset[str]
    groups: frozenset[str]
    has_unresolved: bool

    @classmethod
    def of(cls, values: Any) -> _AppRefs:
        apps = _lowered(values)
        groups = apps & {g.lower() for g in APP_GROUPS}
        ids = apps - groups - {"all", "none"}
        return cls("all" in apps, ids, groups, any(not GUID.match(i) for i in ids))

    @property
    def empty(self) -> bool:
        return not (self.everything or self.ids or self.groups)

    def match(self, facts: _Facts) -> Tri:
        if self.everything:
            return MATCH
        if self.empty:
            return NO_MATCH
        if facts.app_id is None:
            return UNKNOWN
        if facts.app_id in self.ids:
            return MATCH
        by_group = NO_MATCH
        if self.groups:
            known = facts.app_groups
            by_group = UNKNOWN if known is None else (MATCH if not self.groups.isdisjoint(known) else NO_MATCH)
        return _any_of(by_group, UNKNOWN if self.has_unresolved else NO_MATCH)


def _applications_condition(apps: Mapping[str, Any]) -> Condition:
    actions = frozenset(_user_action_key(a) for a in _strings(apps.get("includeUserActions")))
    if actions:
        return "userActions", lambda facts: MATCH if facts.user_action in actions else NO_MATCH
    contexts = _lowered(apps.get("includeAuthenticationContextClassReferences"))
    if contexts:
        return "authenticationContext", _auth_context_check(contexts)
    return "application", _app_check(apps)


def _auth_context_check(contexts: frozenset[str]) -> Check:
    def check(facts: _Facts) -> Tri:
        if facts.user_action is not None:
            return NO_MATCH
        if facts.auth_context is None:
            return UNKNOWN
        return MATCH if facts.auth_context in contexts else NO_MATCH

    return check


def _app_check(apps: Mapping[str, Any]) -> Check:
    include = _AppRefs.of(apps.get("includeApplications"))
    exclude = _AppRefs.of(apps.get("excludeApplications"))
    app_filter = _dict(apps.get("applicationFilter"))
    filter_mode = str(app_filter.get("mode", "")).lower() if app_filter.get("rule") else ""

    def check(facts: _Facts) -> Tri:
        if facts.user_action is not None:
            return NO_MATCH  # a user action is not an application sign-in (decision 3)
        excluded = NO_MATCH if exclude.empty else exclude.match(facts)
        return _filtered(include.match(facts), excluded, filter_mode)

    return check


def _client_apps_condition(value: Any) -> Condition | None:
    types = _lowered(value)
    if not types or "all" in types:
        return None
    if "eassupported" in types:
        types |= {"exchangeactivesync"}
    return (
        "clientApps",
        lambda facts: UNKNOWN if facts.client_app is None else MATCH if facts.client_app in types else NO_MATCH,
    )


def _platforms_condition(value: Any) -> Condition | None:
    platforms = _dict(value)
    include, exclude = _lowered(platforms.get("includePlatforms")), _lowered(platforms.get("excludePlatforms"))
    if not include and not exclude:
        return None

    def check(facts: _Facts) -> Tri:
        platform = facts.platform
        included = "all" in include or not include or (platform is not None and platform in include)
        excluded = "all" in exclude or (platform is not None and platform in exclude)
        return MATCH if included and not excluded else NO_MATCH

    return "devicePlatform", check


def _locations_condition(value: Any) -> Condition | None:
    locations = _dict(value)
    include = _lowered(locations.get("includeLocations"))
    exclude = tuple(_lowered(locations.get("excludeLocations")))
    if not include and not exclude:
        return None
    include_everywhere = not include or "all" in include
    include_refs = tuple(include)

    def membership(facts: _Facts, refs: tuple[str, ...]) -> Tri:
        table = facts.locations
        return _any_of(*(table.get(ref, UNKNOWN) for ref in refs)) if refs else NO_MATCH

    def check(facts: _Facts) -> Tri:
        included = MATCH if include_everywhere else membership(facts, include_refs)
        return _included_not_excluded(included, membership(facts, exclude))

    return "location", check


def _level_condition(reason: str, value: Any, attribute: str) -> Condition | None:
    levels = _lowered(value)
    if not levels:
        return None

    def check(facts: _Facts) -> Tri:
        stated = getattr(facts, attribute)
        if stated is None:
            return UNKNOWN
        return MATCH if stated in levels else NO_MATCH

    return reason, check


def _unknowable(reason: str) -> Condition:
    return reason, lambda facts: UNKNOWN


def _compile_conditions(conditions: Mapping[str, Any]) -> tuple[Condition, ...]:
    """The configured conditions in analysisReasons order (decision 1)."""
    users = conditions.get("users")
    if not isinstance(users, Mapping):
        return (_unknowable("invalidPolicy"),)
    flows = _lowered(_dict(conditions.get("authenticationFlows")).get("transferMethods")) - {"none"}
    candidates: list[Condition | None] = [
        _users_condition(users, workload_policy=_is_configured(conditions.get("clientApplications"))),
        _client_applications_condition(conditions.get("clientApplications")),
        _service_principal_risk_condition(conditions.get("servicePrincipalRiskLevels")),
        _applications_condition(_dict(conditions.get("applications"))),
        _platforms_condition(conditions.get("platforms")),
        _unknowable("devices") if _is_configured(conditions.get("devices")) else None,
        _client_apps_condition(conditions.get("clientAppTypes")),
        _locations_condition(conditions.get("locations")),
        _level_condition("signInRisk", conditions.get("signInRiskLevels"), "sign_in_risk"),
        _level_condition("userRisk", conditions.get("userRiskLevels"), "user_risk"),
        _level_condition("insiderRisk", conditions.get("insiderRiskLevels"), "insider_risk"),
        _level_condition("authenticationFlow", sorted(flows), "auth_flow"),
        *_unknown_conditions(conditions),
    ]
    return tuple(c for c in candidates if c is not None)


def _unknown_conditions(conditions: Mapping[str, Any]) -> list[Condition]:
    """Beta or future conditions this evaluator does not model: configured → cannot tell."""
    return [
        _unknowable(_UNKNOWN_CONDITION_REASONS.get(key, "notEnoughInformation"))
        for key, value in conditions.items()
        if key not in _KNOWN_CONDITIONS and "@odata" not in key and _is_configured(value)
    ]


# --- named locations ----------------------------------------------------------------------------

_Range = tuple[int, int, int]  # (IP version, first, last)


def _parse_range(entry: Any) -> _Range | None:
    """An ipRange (cidrAddress, or lowerAddress/upperAddress); the @odata.type is not trusted."""
    entry = _dict(entry)
    try:
        if entry.get("cidrAddress"):
            network = ipaddress.ip_network(str(entry["cidrAddress"]).strip(), strict=False)
            return network.version, int(network.network_address), int(network.broadcast_address)
        lower, upper = _parse_address(str(entry["lowerAddress"])), _parse_address(str(entry["upperAddress"]))
    except (KeyError, ValueError):
        return None
    if lower[0] != upper[0] or lower[1] > upper[1]:
        return None  # two IP versions, or upper below lower: no range we could say was meant
    return lower[0], lower[1], upper[1]


def _ranges_of(values: Iterable[Any]) -> tuple[tuple[_Range, ...], bool]:
    """Parsed ranges and whether any entry was unparseable."""
    parsed = [_parse_range(v) for v in values]
    return tuple(r for r in parsed if r is not None), any(r is None for r in parsed)


def _in_ranges(address: tuple[int, int], ranges: Iterable[_Range]) -> bool:
    version, value = address
    return any(v == version and first <= value <= last for v, first, last in ranges)


@dataclass(frozen=True, slots=True)
class _IpLocation:
    ranges: tuple[_Range, ...]
    has_bad_range: bool

    def match(self, address: tuple[int, int] | None, country: str | None) -> Tri:
        if address is None:
            return UNKNOWN
        if _in_ranges(address, self.ranges):
            return MATCH
        return UNKNOWN if self.has_bad_range else NO_MATCH


@dataclass(frozen=True, slots=True)
class _CountryLocation:
    countries: frozenset[str]

    def match(self, address: tuple[int, int] | None, country: str | None) -> Tri:
        if country is None:
            return UNKNOWN
        return MATCH if country in self.countries else NO_MATCH


@dataclass(frozen=True, slots=True)
class _OpaqueLocation:
    """Compliant-network and other location kinds that no sign-in field can decide."""

    def match(self, address: tuple[int, int] | None, country: str | None) -> Tri:
        return UNKNOWN


_Location = _IpLocation | _CountryLocation | _OpaqueLocation


def _compile_location(location: Mapping[str, Any]) -> _Location:
    if "ipRanges" in location:
        return _IpLocation(*_ranges_of(_list(location.get("ipRanges"))))
    if "countriesAndRegions" in location:
        return _CountryLocation(_lowered(location.get("countriesAndRegions")))
    return _OpaqueLocation()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _LocationIndex:
    """Named locations precompiled once; per sign-in, a table location id → Tri (cached by IP/country)."""

    _CACHE_LIMIT: Final = 4096

    def __init__(self, named_locations: Iterable[Mapping[str, Any]], mfa_trusted_ips: Iterable[str] | None) -> None:
        self._locations: dict[str, _Location] = {}
        trusted: list[str] = []
        for location in named_locations:
            location_id = str(location.get("id") or "").lower()
            if location_id:
                self._locations[location_id] = _compile_location(location)
                if location.get("isTrusted") is True:
                    trusted.append(location_id)
        self._trusted = tuple(trusted)
        self._mfa_trusted: _IpLocation | None = None
        if mfa_trusted_ips is not None:
            self._mfa_trusted = _IpLocation(*_ranges_of({"cidrAddress": c} for c in mfa_trusted_ips))
        self._cache: dict[tuple[str | None, str | None], Mapping[str, Tri]] = {}

    def table(self, client_ip: str | None, country: str | None) -> Mapping[str, Tri]:
        key = (client_ip, country)
        table = self._cache.get(key)
        if table is None:
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            table = self._cache[key] = self._build_table(client_ip, country.lower() if country else None)
        return table

    def _build_table(self, client_ip: str | None, country: str | None) -> dict[str, Tri]:
        address = _parse_address(client_ip) if client_ip else None
        table = {lid: location.match(address, country) for lid, location in self._locations.items()}
        mfa_ips = self._mfa_trusted.match(address, country) if self._mfa_trusted else UNKNOWN
        table[MFA_TRUSTED_IPS_LOCATION] = mfa_ips
        table["alltrusted"] = _any_of(mfa_ips, *(table[lid] for lid in self._trusted))
        table["all"] = MATCH
        return table


# --- grant and session controls -----------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """What one applying policy demands: any-of (OR) or all-of (AND) `controls`."""

    policy: str
    operator: str
    controls: tuple[str, ...]

    @property
    def alternatives(self) -> tuple[frozenset[str], ...]:
        """Each alternative is a set of controls that together satisfy the requirement."""
        if self.operator == "OR":
            return tuple(frozenset({c}) for c in self.controls)
        return (frozenset(self.controls),)

    def satisfied_by(self, presented: AbstractSet[str]) -> bool:
        return any(alternative <= presented for alternative in self.alternatives)

    def implies(self, other: Requirement) -> bool:
        """Whether satisfying this requirement always satisfies `other`."""
        return all(any(theirs <= mine for theirs in other.alternatives) for mine in self.alternatives)

    @property
    def forces_mfa(self) -> bool:
        """No way to satisfy it without MFA or an authentication strength."""
        return all(any(_is_mfa_like(c) for c in alternative) for alternative in self.alternatives)


def _is_mfa_like(control: str) -> bool:
    return control == "mfa" or control.startswith("authenticationStrength:")


def _compile_grant(policy_key: str, grant: Mapping[str, Any]) -> tuple[bool, Requirement | None]:
    """(blocks, requirement) from grantControls (docs/graph-ca.md §2.5)."""
    built_in = _strings(grant.get("builtInControls"))
    blocks = any(c.lower() == "block" for c in built_in)
    controls = [c for c in built_in if c.lower() != "block"]
    strength = _dict(grant.get("authenticationStrength")).get("id")
    if strength:
        controls.append(f"authenticationStrength:{str(strength).lower()}")
    controls += [f"termsOfUse:{t}" for t in _strings(grant.get("termsOfUse"))]
    controls += [f"customAuthenticationFactor:{c}" for c in _strings(grant.get("customAuthenticationFactors"))]
    operator = "OR" if str(grant.get("operator") or "").upper() == "OR" else "AND"  # decision 7
    return blocks, Requirement(policy_key, operator, tuple(controls)) if controls else None


@dataclass(frozen=True)
class SessionEffect:
    """Session controls in force (docs/graph-ca.md §2.6); merged over policies, the strictest wins."""

    every_time: bool = False
    frequency_hours: float | None = None
    controls: frozenset[str] = frozenset()

    def merge(self, other: SessionEffect) -> SessionEffect:
        hours = [h for h in (self.frequency_hours, other.frequency_hours) if h is not None]
        return SessionEffect(
            self.every_time or other.every_time, min(hours) if hours else None, self.controls | other.controls
        )

    def implies(self, other: SessionEffect) -> bool:
        """Whether `other` would add nothing to this effect."""
        stricter_frequency = (
            other.frequency_hours is None
            or self.every_time
            or (self.frequency_hours is not None and self.frequency_hours <= other.frequency_hours)
        )
        return (self.every_time or not other.every_time) and stricter_frequency and other.controls <= self.controls

    @property
    def empty(self) -> bool:
        return not (self.every_time or self.frequency_hours is not None or self.controls)


_NO_SESSION = SessionEffect()


def _compile_session(session: Mapping[str, Any]) -> SessionEffect:
    frequency = _dict(session.get("signInFrequency"))
    every_time, hours = False, None
    if frequency.get("isEnabled"):
        every_time = str(frequency.get("frequencyInterval", "")).lower() == "everytime"
        value = frequency.get("value")
        if not every_time and isinstance(value, int | float):
            hours = float(value) * (24 if str(frequency.get("type", "")).lower() == "days" else 1)
    return SessionEffect(every_time, hours, frozenset(_other_session_controls(session)))


def _other_session_controls(session: Mapping[str, Any]) -> Iterable[str]:
    for name, value in session.items():
        if name == "signInFrequency" or "@odata" in name:
            continue
        if value is True:
            yield name  # e.g. disableResilienceDefaults
        elif isinstance(value, Mapping) and value.get("isEnabled"):
            detail = value.get("cloudAppSecurityType") or value.get("mode")
            yield f"{name}:{detail}" if detail else name


# --- compiled policies and results --------------------------------------------------------------


class Outcome(StrEnum):
    APPLIES = "applies"
    DOES_NOT_APPLY = "does_not_apply"
    CANNOT_TELL = "cannot_tell"


@dataclass(frozen=True, eq=False)
class CompiledPolicy:
    """A policy reduced to its configured conditions and its effect."""

    key: str  # id, else displayName, else its position
    display_name: str
    state: str
    conditions: tuple[Condition, ...]
    blocks: bool
    requirement: Requirement | None
    session: SessionEffect
    source: Mapping[str, Any] = field(repr=False)

    @property
    def active(self) -> bool:
        return self.state in (ENABLED, REPORT_ONLY)

    @property
    def has_effect(self) -> bool:
        return self.blocks or self.requirement is not None or not self.session.empty

    @classmethod
    def compile(cls, policy: Mapping[str, Any], position: int) -> CompiledPolicy:
        name = str(policy.get("displayName") or "")
        key = str(policy.get("id") or name or f"policy[{position}]")
        blocks, requirement = _compile_grant(key, _dict(policy.get("grantControls")))
        conditions = policy.get("conditions")
        return cls(
            key=key,
            display_name=name,
            state=_policy_state(policy.get("state")),
            conditions=_compile_conditions(conditions) if isinstance(conditions, Mapping) else (),
            blocks=blocks,
            requirement=requirement,
            session=_compile_session(_dict(policy.get("sessionControls"))),
            source=policy,
        )


def _policy_state(value: Any) -> str:
    text = str(value or "").lower()
    return {ENABLED.lower(): ENABLED, REPORT_ONLY.lower(): REPORT_ONLY}.get(text, DISABLED)


@dataclass(frozen=True, eq=False)
class PolicyResult:
    """One policy's what-if result; `reason` is named like Graph's analysisReasons."""

    policy: CompiledPolicy
    outcome: Outcome
    reason: str
    unknown_conditions: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.policy.key

    @property
    def display_name(self) -> str:
        return self.policy.display_name


def _evaluate_policy(policy: CompiledPolicy, facts: _Facts) -> PolicyResult:
    if not policy.active:
        return PolicyResult(policy, Outcome.DOES_NOT_APPLY, "policyNotEnabled")
    if not policy.conditions:
        return PolicyResult(policy, Outcome.CANNOT_TELL, "invalidPolicy", ("invalidPolicy",))
    unknown: list[str] = []
    for reason, check in policy.conditions:
        result = check(facts)
        if result == NO_MATCH:
            return PolicyResult(policy, Outcome.DOES_NOT_APPLY, reason)
        if result == UNKNOWN:
            unknown.append(reason)
    if unknown:
        return PolicyResult(policy, Outcome.CANNOT_TELL, unknown[0], tuple(unknown))
    return PolicyResult(policy, Outcome.APPLIES, APPLIES_REASON)


# --- verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The combined effect of the policies in one view (docs/graph-ca.md §5.3 "Multiple policies")."""

    blocked: bool
    blocking: tuple[PolicyResult, ...]
    requirements: tuple[Requirement, ...]  # every one must be satisfied
    session: SessionEffect
    uncertain: tuple[PolicyResult, ...]  # cannot_tell policies that could change this verdict

    @property
    def is_certain(self) -> bool:
        return not self.uncertain

    @property
    def access(self) -> str:
        if self.blocked:
            return "blocked"
        return "granted_with_controls" if self.requirements else "granted"

    @property
    def requires_mfa(self) -> bool:
        """MFA (or an authentication strength) is unavoidable for some applying policy."""
        return not self.blocked and any(r.forces_mfa for r in self.requirements)

    @property
    def reauth_every_time(self) -> bool:
        return self.session.every_time

    def satisfied_by(self, presented: Iterable[str]) -> bool:
        """Whether presenting these controls (e.g. {"mfa"}) gets a token."""
        controls = frozenset(presented)
        return not self.blocked and all(r.satisfied_by(controls) for r in self.requirements)


def _verdict(results: Sequence[PolicyResult], states: AbstractSet[str]) -> Verdict:
    in_view = [r for r in results if r.policy.state in states]
    applying = [r for r in in_view if r.outcome is Outcome.APPLIES]
    blocking = tuple(r for r in applying if r.policy.blocks)
    requirements = tuple(r.policy.requirement for r in applying if r.policy.requirement is not None)
    session = _NO_SESSION
    for result in applying:
        session = session.merge(result.policy.session)
    uncertain: tuple[PolicyResult, ...] = ()
    if not blocking:
        uncertain = tuple(
            r for r in in_view if r.outcome is Outcome.CANNOT_TELL and _could_change(r.policy, requirements, session)
        )
    return Verdict(bool(blocking), blocking, requirements, session, uncertain)


def _could_change(policy: CompiledPolicy, requirements: Sequence[Requirement], session: SessionEffect) -> bool:
    """Whether applying `policy` would change a non-blocked verdict."""
    if policy.blocks:
        return True
    new_requirement = policy.requirement
    if new_requirement is not None and not any(r.implies(new_requirement) for r in requirements):
        return True
    return not session.implies(policy.session)


_ENFORCED_STATES: Final = frozenset({ENABLED})
_REPORT_ONLY_VIEW_STATES: Final = frozenset({ENABLED, REPORT_ONLY})


@dataclass(frozen=True)
class Evaluation:
    """Per-policy results and the two verdicts: what is enforced, and what report-only would add."""

    sign_in: AnySignIn
    results: tuple[PolicyResult, ...]
    enforced: Verdict
    if_report_only_were_on: Verdict

    def result(self, key_or_name: str) -> PolicyResult:
        """The result for a policy id (case-insensitive) or display name."""
        wanted = key_or_name.lower()
        for result in self.results:
            if result.key.lower() == wanted or result.display_name == key_or_name:
                return result
        raise KeyError(key_or_name)

    def with_outcome(self, outcome: Outcome) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.results if r.outcome is outcome)


class PolicySet:
    """Policies and named locations compiled once, evaluated against many sign-ins."""

    def __init__(self, policies: Sequence[CompiledPolicy], locations: _LocationIndex) -> None:
        self.policies = tuple(policies)
        self._locations = locations
        # Disabled policies have one result whatever the sign-in (reason policyNotEnabled).
        self._fixed_results = tuple(
            None if p.active else PolicyResult(p, Outcome.DOES_NOT_APPLY, "policyNotEnabled") for p in self.policies
        )

    @classmethod
    def compile(
        cls,
        policies: Iterable[Mapping[str, Any]],
        named_locations: Iterable[Mapping[str, Any]] = (),
        *,
        mfa_trusted_ips: Iterable[str] | None = None,
    ) -> PolicySet:
        """`mfa_trusted_ips`: the tenant's MFA trusted IPs as CIDRs if known; None = unknown (decision 4)."""
        compiled = [CompiledPolicy.compile(p, i) for i, p in enumerate(policies)]
        return cls(compiled, _LocationIndex(named_locations, mfa_trusted_ips))

    def evaluate(self, sign_in: AnySignIn) -> Evaluation:
        facts = _Facts(sign_in, self._locations.table(sign_in.client_ip, sign_in.country))
        results = tuple(
            fixed or _evaluate_policy(policy, facts)
            for policy, fixed in zip(self.policies, self._fixed_results, strict=True)
        )
        return Evaluation(
            sign_in=sign_in,
            results=results,
            enforced=_verdict(results, _ENFORCED_STATES),
            if_report_only_were_on=_verdict(results, _REPORT_ONLY_VIEW_STATES),
        )


def evaluate(
    policies: Iterable[Mapping[str, Any]],
    named_locations: Iterable[Mapping[str, Any]],
    sign_in: AnySignIn,
    *,
    mfa_trusted_ips: Iterable[str] | None = None,
) -> Evaluation:
    """One-shot convenience over `PolicySet.compile(...).evaluate(sign_in)`."""
    return PolicySet.compile(policies, named_locations, mfa_trusted_ips=mfa_trusted_ips).evaluate(sign_in)
