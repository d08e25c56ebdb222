"""The scenario matrix: the sign-ins that matter for a stack, and whether the policies treat them as the article says.

`derive_scenarios(config)` derives them from the stack config; `load_scenarios_file(path)` reads a user's
own (YAML, format below); `run_matrix(config, policies, named_locations, extra)` evaluates every scenario
with the what-if evaluator (cipp_hardening/evaluator.py) and judges it against its expectation.

Derived scenarios (all from an address outside the trusted ranges unless stated):

* MSP stacks: a technician (a synthetic user in the first technician group, or the first includeUserId)
  from one address inside each trusted range → `not_blocked_by_part_a`, and from outside →
  `blocked` (Part A enabled) or `would_be_blocked` (report-only, or disabled: then the row fails);
  each break-glass user, and a member of each break-glass group, from outside → `never_blocked`;
  the service account from an Azure address → `mfa_every_time`. Break-glass accounts and the service
  account are also put in the first technician group: the worst case, where only Part A's exclusion
  keeps them out of scope.
* Client stacks: an MSP service-provider user (GDAP) or the tenant's CIPP service account (Direct
  mode), from the Azure address → `never_blocked`. The policies to pass are the client's policies as
  they will be after `pulumi up`: see `policies_after_apply`.

Expectations, and the view of the policy states each is judged in (docs/graph-ca.md §5.3 "Report-only"):

    blocked                 a policy in force blocks it
    would_be_blocked        blocked once report-only policies are switched on (or already blocked)
    not_blocked_by_part_a   the Part A policy (by display name) does not apply to it
    never_blocked           no policy blocks it, enforced or report-only
    mfa_every_time          never blocked, and the policies in force require MFA with sign-in frequency everyTime
    not_blocked             no policy in force blocks it (report-only policies are not counted)

"Cannot tell": the evaluator says `cannot_tell` for a policy that depends on something the scenario
does not state (risk, device, country, MFA trusted IPs, an unresolved placeholder...). A row is
`ok` only when its expectation holds in every resolution of those unknowns, `fail` when it fails in
every resolution, and `uncertain` otherwise. `MatrixResult.failures` holds the definite failures
(exit 3). Guard rows — the derived rows that protect access: each break-glass account and group, the
CIPP service account, a client stack's MSP users or Direct-mode service account — are never merely
uncertain: undecided, they are `cannot_prove` (exit 5, docs/assurance.md), naming each undecided policy,
its conditions and the stated assumption (config `assumptions`) that would settle it, unless
`assumptions.cannotProveOverride` gives the reviewed reason to accept them. Other uncertain rows are
flagged but do not fail.

With a `DirectoryView` (`make verify`), the break-glass accounts, the service account and the technicians
sign in with the memberships the directory reports; real technician group members replace the synthetic one.

Scenario file (the stack's `scenariosFile`, a path relative to the project root)::

    scenarios:
      - name: technician working from home          # unique in the file
        expect: would_be_blocked                     # one of the expectations above
        signIn:
          userId: 5ce7a210-0000-4000-8000-000000000042   # required (any string; GUIDs match policies)
          groups: [00000000-0000-0000-0000-00000000b001]  # transitive group memberships
          roles: []                 # directory role template ids
          ip: 198.51.100.77         # the public egress address
          app: All                  # application id; omitted or All: not stated
          appGroups: [Office365]    # the app groups the app is in (omitted: unknown)
          clientApp: browser        # browser | mobileAppsAndDesktopClients | exchangeActiveSync | other
          platform: windows         # omitted: a platform Entra cannot identify
          country: NL
          external: {kind: serviceProvider, tenant: <home tenant GUID>}   # omitted: a member user
          userAction: registerSecurityInformation
          authenticationContext: c1
          signInRisk: none          # also userRisk, insiderRisk, authenticationFlow
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Generic, TypeVar

from cipp_hardening import managed_policies
from cipp_hardening.config import PROJECT, CippCustomRole, ClientStack, MspStack, StackConfig
from cipp_hardening.directory_facts import DirectoryView
from cipp_hardening.evaluator import (
    ENABLED,
    REPORT_ONLY,
    AnySignIn,
    CompiledPolicy,
    Evaluation,
    ExternalUser,
    Outcome,
    PolicyResult,
    PolicySet,
    ServicePrincipalSignIn,
    SignIn,
    Verdict,
)
from cipp_hardening.exclusion import exclude_cipp, select_policies


class Expectation(StrEnum):
    BLOCKED = "blocked"
    WOULD_BE_BLOCKED = "would_be_blocked"
    NOT_BLOCKED_BY_PART_A = "not_blocked_by_part_a"
    NEVER_BLOCKED = "never_blocked"
    MFA_EVERY_TIME = "mfa_every_time"
    NOT_BLOCKED = "not_blocked"


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    UNCERTAIN = "uncertain"
    CANNOT_PROVE = "cannot_prove"  # a guard row the evaluator cannot decide


EXIT_BROKEN: Final = 3  # an invariant is definitely broken
EXIT_CANNOT_PROVE: Final = 5  # a guard row cannot be decided (and no cannotProveOverride)


SignInT = TypeVar("SignInT", SignIn, ServicePrincipalSignIn)


@dataclass(frozen=True)
class Scenario(Generic[SignInT]):
    name: str
    sign_in: SignInT  # a user's SignIn, or a service principal's token request (workload_scenarios)
    expect: Expectation
    origin: str = "derived"  # or "<file>: scenarios[i]"
    policy: str | None = None  # the policy (display name) a block row is about, for its failure detail; else Part A
    guard: bool = False  # protects access: undecided is cannot_prove, not uncertain
    cipp: str | None = None  # technician rows: what CIPP's role IP ranges do with the request (cipp_layer)


# --- addresses ------------------------------------------------------------------------------------

# Documentation ranges first (RFC 5737 / RFC 3849), then well-known public resolvers.
_OUTSIDE_CANDIDATES: Final = ("198.51.100.23", "192.0.2.23", "8.8.8.8", "9.9.9.9", "2606:4700:4700::1111")
# 13.69.64.10 lies in 13.64.0.0/11, an Azure (AzureCloud service tag) prefix, where CIPP's Function App
# signs in from. It only has to be outside the trusted ranges: any other address would do.
_AZURE_CANDIDATES: Final = ("13.69.64.10", "20.50.2.10", *_OUTSIDE_CANDIDATES)
_SYNTHETIC_NS: Final = uuid.UUID("5ce7a210-0000-4000-8000-000000000000")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(cidrs: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def address_outside(cidrs: Iterable[str], candidates: Sequence[str] = _OUTSIDE_CANDIDATES) -> str:
    """The first candidate outside every range, else the first public x.0.0.1 address that is."""
    networks = _networks(cidrs)
    fallback = (f"{octet}.0.0.1" for octet in range(1, 224) if ipaddress.ip_address(f"{octet}.0.0.1").is_global)
    for text in itertools.chain(candidates, fallback):  # the fallback only when every candidate is inside
        if not any(ipaddress.ip_address(text) in n for n in networks):
            return text
    raise ValueError("every candidate address is inside a trusted range")


def address_inside(cidr: str) -> str:
    """A host address of the range (the range itself for /32 and /128)."""
    network = ipaddress.ip_network(cidr, strict=False)
    return str(network.network_address + (1 if network.num_addresses > 1 else 0))


def synthetic_user(label: str) -> str:
    """A stable, obviously made-up object id for a scenario user."""
    return str(uuid.uuid5(_SYNTHETIC_NS, label))


# --- derived scenarios ----------------------------------------------------------------------------


def derive_scenarios(config: StackConfig, directory: DirectoryView | None = None) -> list[Scenario]:
    """The scenarios the article's invariants are about, for this stack; with `directory`, real memberships."""
    if isinstance(config, MspStack):
        return _msp_scenarios(config, directory)
    return _client_scenarios(config, directory)


def _msp_scenarios(config: MspStack, directory: DirectoryView | None) -> list[Scenario]:
    access = config.technician_access
    trusted = config.trusted_location.cidrs
    outside, azure = address_outside(trusted), address_outside(trusted, _AZURE_CANDIDATES)
    tech_groups = frozenset(access.include_group_ids[:1])
    app = access.cipp_app_id

    def sign_in(user: str, ip: str, groups: frozenset[str] = tech_groups) -> SignIn:
        known = directory.membership(user) if directory else None
        if known is not None:  # the directory's memberships instead of the asserted worst case
            return SignIn(
                user_id=user,
                application_id=app,
                client_ip=ip,
                group_ids=known.group_ids,
                role_template_ids=known.role_template_ids,
            )
        return SignIn(user_id=user, application_id=app, client_ip=ip, group_ids=groups)

    outside_expectation = Expectation.BLOCKED if access.state == ENABLED else Expectation.WOULD_BE_BLOCKED
    technicians = _technicians(config, directory)
    first = technicians[0][0]
    roles = config.cipp_api.custom_roles if config.cipp_api is not None else ()
    scenarios = [
        Scenario(
            f"technician inside {cidr}",
            sign_in(first, address_inside(cidr)),
            Expectation.NOT_BLOCKED_BY_PART_A,
            cipp=cipp_layer(roles, address_inside(cidr)),
        )
        for cidr in trusted
    ]
    scenarios.append(
        Scenario(
            "technician outside the trusted ranges",
            sign_in(first, outside),
            outside_expectation,
            cipp=cipp_layer(roles, outside),
        )
    )
    scenarios += [
        Scenario(
            f"technician {label} outside the trusted ranges",
            sign_in(user, outside),
            outside_expectation,
            cipp=cipp_layer(roles, outside),
        )
        for user, label in technicians[1:]
    ]
    if roles:  # superadmin: CIPP never checks its ranges (docs/custom-roles.md), so Entra is all there is
        scenarios.append(
            Scenario(
                "technician holding CIPP superadmin outside the trusted ranges",
                sign_in(first, outside),
                outside_expectation,
                cipp=SUPERADMIN_LAYER,
            )
        )
    scenarios += [
        Scenario(f"break-glass {user} from outside", sign_in(user, outside), Expectation.NEVER_BLOCKED, guard=True)
        for user in access.break_glass_user_ids
    ]
    scenarios += [
        Scenario(
            f"member of break-glass group {group} from outside",
            sign_in(synthetic_user(f"break-glass {group}"), outside, tech_groups | {group}),
            Expectation.NEVER_BLOCKED,
            guard=True,
        )
        for group in access.break_glass_group_ids
    ]
    service_account = sign_in(config.service_account.user_id, azure)
    scenarios.append(
        Scenario("CIPP service account from Azure", service_account, Expectation.MFA_EVERY_TIME, guard=True)
    )
    return scenarios


SUPERADMIN_LAYER: Final = "CIPP never refuses superadmin: held by Part A alone"


def cipp_layer(roles: Sequence[CippCustomRole], ip: str) -> str:
    """What CIPP does with a technician's request from `ip`, per role of cippApi.customRoles, once `pulumi up`
    has set the declared ranges (CIPP's current ranges are not read: `pulumi refresh` shows drift).

    CIPP checks the union of the ranges of all the user's roles (Get-CIPPRoleIPRanges.ps1), so a
    technician holding one of these roles is refused when the address is outside that role's ranges.
    """
    if not roles:
        return "not held by CIPP (no cippApi.customRoles)"
    address = ipaddress.ip_address(ip)
    refusing = [r.name for r in roles if not any(address in ipaddress.ip_network(n) for n in r.allowed_ranges)]
    serving = [r.name for r in roles if r.name not in refusing]
    parts = []
    if refusing:
        parts.append(f"CIPP refuses role {', '.join(refusing)}")
    if serving:
        parts.append(f"CIPP serves role {', '.join(serving)}")
    return "; ".join(parts) + " (declared ranges)"


def authentication_flow_scenarios(
    config: StackConfig, policies: Sequence[Mapping[str, Any]], directory: DirectoryView | None = None
) -> list[Scenario]:
    """CIPP's SAM setup wizard signs the service account in with the device code flow (docs/scenario-matrix.md):
    the row is there when some policy conditions on authentication flows (Microsoft's managed "Block device code
    flow"), the only ones that can tell it from the service account's own row."""
    if not isinstance(config, MspStack) or not any(_conditions_on_flows(p) for p in policies):
        return []
    account = next(s for s in _msp_scenarios(config, directory) if s.name == "CIPP service account from Azure")
    sam_wizard = dataclasses.replace(account.sign_in, authentication_flow="deviceCodeFlow")
    name = "CIPP SAM wizard: service account with device code"
    return [Scenario(name, sam_wizard, Expectation.MFA_EVERY_TIME, guard=True)]


def _conditions_on_flows(policy: Mapping[str, Any]) -> bool:
    flows = ((policy.get("conditions") or {}).get("authenticationFlows") or {}).get("transferMethods")
    return bool(flows) and flows != "none"


def workload_scenarios(
    config: StackConfig, service_principals: Mapping[str, str]
) -> list[Scenario[ServicePrincipalSignIn]]:
    """cippApi.workloadIdentityPolicies: each client's service principal asking for a token from inside each
    of its ranges → never_blocked, and from outside them → blocked (enabled) or would_be_blocked.

    `service_principals`: client (application) id → service principal object id; a client missing from it
    signs in as a placeholder, which the evaluator cannot match (the rows come out uncertain)."""
    cipp = config.cipp_api if isinstance(config, MspStack) else None
    workload = cipp.workload_identity if cipp is not None else None
    if workload is None:
        return []
    outside_expectation = Expectation.BLOCKED if workload.state == ENABLED else Expectation.WOULD_BE_BLOCKED
    by_client = {k.lower(): v for k, v in service_principals.items()}
    scenarios: list[Scenario[ServicePrincipalSignIn]] = []
    for client in workload.clients:
        label = f"CIPP-API client {client.client_id}"
        principal = by_client.get(client.client_id.lower()) or f"<service principal of {label}>"

        def token_request(ip: str, principal: str = principal, label: str = label) -> ServicePrincipalSignIn:
            return ServicePrincipalSignIn(service_principal_id=principal, client_ip=ip, label=label)

        policy = workload.policy_name(client.client_id)
        scenarios += [
            Scenario(
                f"{label} token from inside {cidr}", token_request(address_inside(cidr)), Expectation.NEVER_BLOCKED
            )
            for cidr in client.cidrs
        ]
        outside = token_request(address_outside(client.cidrs))
        scenarios.append(
            Scenario(f"{label} token from outside its ranges", outside, outside_expectation, policy=policy)
        )
    return scenarios


def planned_service_principals(config: StackConfig, policies: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Client id → the service principal its workload-identity policy (by display name) includes: what the
    plan looked up. `make verify` reads them from the tenant instead."""
    cipp = config.cipp_api if isinstance(config, MspStack) else None
    workload = cipp.workload_identity if cipp is not None else None
    if workload is None:
        return {}
    by_name = {str(p.get("displayName")): p for p in policies}
    found: dict[str, str] = {}
    for client in workload.clients:
        policy = by_name.get(workload.policy_name(client.client_id)) or {}
        included = ((policy.get("conditions") or {}).get("clientApplications") or {}).get("includeServicePrincipals")
        if isinstance(included, list) and len(included) == 1 and isinstance(included[0], str):
            found[client.client_id] = included[0]
    return found


def _technicians(config: MspStack, directory: DirectoryView | None) -> list[tuple[str, str]]:
    """(user id, label) of the technicians to sign in: the sampled real ones, else the first includeUserId or
    a synthetic member of the first technician group."""
    access = config.technician_access
    # Part A excludes these (and they have rows of their own): never sampled as technicians, whatever the view says.
    never = {config.service_account.user_id.lower(), *(u.lower() for u in access.break_glass_user_ids)}
    real = directory.technicians if directory is not None else ()
    sampled = [(t.user_id, t.label) for t in real if t.user_id.lower() not in never]
    if sampled:
        return sampled
    user = access.include_user_ids[0] if access.include_user_ids else synthetic_user("technician")
    return [(user, user)]


def _client_scenarios(config: ClientStack, directory: DirectoryView | None) -> list[Scenario]:
    tenant = config.client_tenant
    azure = _AZURE_CANDIDATES[0]
    if tenant.access_mode == "direct":
        account = str(tenant.service_account_user_id)
        known = directory.membership(account) if directory else None
        groups, roles = (known.group_ids, known.role_template_ids) if known else (frozenset(), frozenset())
        sign_in = SignIn(user_id=account, client_ip=azure, group_ids=groups, role_template_ids=roles)
        name = "CIPP service account (Direct mode) from Azure"
        return [Scenario(name, sign_in, Expectation.NEVER_BLOCKED, guard=True)]
    msp_user = SignIn(
        user_id=synthetic_user(f"service provider {tenant.msp_tenant_id}"),
        client_ip=azure,
        external=ExternalUser("serviceProvider", tenant.msp_tenant_id),
    )
    name = f"MSP service-provider user (GDAP, tenant {tenant.msp_tenant_id}) from Azure"
    return [Scenario(name, msp_user, Expectation.NEVER_BLOCKED, guard=True)]


def policies_after_apply(config: ClientStack, policies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The client's policies as `pulumi up` leaves them: each policy in scope with the exclusion merged,
    conflicts (not written under onConflict report) and policies out of scope as they are."""
    tenant = config.client_tenant
    selected, _ = select_policies(policies, tenant.include_states, tenant.skip_policy_ids)
    in_scope = {id(p) for p in selected}
    after: list[dict[str, Any]] = []
    for policy in policies:
        updated = json.loads(json.dumps(policy))  # a deep copy that never shares state with the input
        if id(policy) in in_scope:
            users = (policy.get("conditions") or {}).get("users")
            merge = exclude_cipp(
                users, tenant.access_mode, tenant.msp_tenant_id, tenant.service_account_user_id, tenant.on_conflict
            )
            if merge.write:
                updated["conditions"]["users"] = merge.users
        after.append(updated)
    return after


# --- judging one scenario -------------------------------------------------------------------------

_ENFORCED: Final = frozenset({ENABLED})
_WITH_REPORT_ONLY: Final = frozenset({ENABLED, REPORT_ONLY})


# What each stated assumption (config `assumptions`, docs/assurance.md) tells the evaluator.
ASSUMPTIONS: Final = {
    "assumptions.legacyMfaTrustedIps": (
        "the tenant's legacy MFA trusted IPs, which AllTrusted includes and Graph v1.0 does not expose; "
        "[] when there are none, as Microsoft recommends"
    ),
}
OVERRIDE_KEY: Final = "assumptions.cannotProveOverride"
ROLES_UNREAD: Final = "directoryRoles"  # the condition of a role-targeted policy when the roles could not be read


@dataclass(frozen=True)
class Undecided:
    """A policy the evaluator cannot decide for a row, and the stated assumption that would settle it."""

    policy: str  # display name, else id
    key: str
    conditions: tuple[str, ...]  # named like Graph's analysisReasons (location, signInRisk, users...)
    settled_by: str | None = None  # a key of ASSUMPTIONS

    def describe(self) -> str:
        text = f"'{self.policy}' cannot be decided on {', '.join(self.conditions)}"
        if ROLES_UNREAD in self.conditions:
            return (
                f"{text}: the account's directory roles came back without their template ids; grant the "
                "verifying identity RoleManagement.Read.Directory (docs/assurance.md)"
            )
        if self.settled_by:
            return f"{text}; stating {PROJECT}:{self.settled_by} ({ASSUMPTIONS[self.settled_by]}) settles it"
        return (
            f"{text}; no stated assumption settles it: exclude the account from the policy, or accept it with a "
            f"reviewed reason in {PROJECT}:{OVERRIDE_KEY}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "id": self.key,
            "conditions": list(self.conditions),
            "settledBy": f"{PROJECT}:{self.settled_by}" if self.settled_by else None,
        }


@dataclass(frozen=True)
class MatrixRow:
    name: str
    sign_in: str  # a one-line summary of the simulated sign-in
    expected: str
    actual: str
    status: Status
    responsible: tuple[str, ...] = ()  # policies behind a failure, or the cannot-tell ones
    origin: str = "derived"
    undecided: tuple[Undecided, ...] = ()  # uncertain and cannot_prove rows: what the evaluator cannot decide
    cipp: str | None = None  # the CIPP layer (technician rows): whether CIPP's role ranges would refuse it

    @property
    def ok(self) -> bool:
        """True only when the expectation holds in every resolution of what the evaluator cannot tell."""
        return self.status is Status.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "signIn": self.sign_in,
            "expected": self.expected,
            "actual": self.actual,
            "status": str(self.status),
            "ok": self.ok,
            "responsible": list(self.responsible),
            "origin": self.origin,
            **({"cipp": self.cipp} if self.cipp is not None else {}),
        }


@dataclass(frozen=True)
class MatrixResult:
    rows: tuple[MatrixRow, ...]
    waiver: str | None = None  # assumptions.cannotProveOverride: why cannot_prove rows are accepted

    @property
    def failures(self) -> tuple[MatrixRow, ...]:
        """Rows whose expectation definitely does not hold: a broken invariant."""
        return tuple(r for r in self.rows if r.status is Status.FAIL)

    @property
    def uncertain(self) -> tuple[MatrixRow, ...]:
        """Non-guard rows that hold or fail depending on what the evaluator cannot tell offline (flagged)."""
        return tuple(r for r in self.rows if r.status is Status.UNCERTAIN)

    @property
    def unproven(self) -> tuple[MatrixRow, ...]:
        """Guard rows the evaluator cannot decide: "cannot prove" fails unless waived."""
        return tuple(r for r in self.rows if r.status is Status.CANNOT_PROVE)

    @property
    def exit_code(self) -> int:
        if self.failures:
            return EXIT_BROKEN
        return EXIT_CANNOT_PROVE if self.unproven and not self.waiver else 0

    @property
    def ok(self) -> bool:
        """No invariant broken and every guard row proven (or the unproven ones accepted with a reason)."""
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exitCode": self.exit_code,
            "failures": len(self.failures),
            "uncertain": len(self.uncertain),
            "cannotProve": [
                {"row": row.name, **undecided.to_json()} for row in self.unproven for undecided in row.undecided
            ],
            "cannotProveOverride": self.waiver,
            "rows": [r.to_json() for r in self.rows],
        }


@dataclass(frozen=True)
class _Judgement:
    status: Status
    actual: str
    responsible: tuple[PolicyResult, ...] = ()


def _names(results: Iterable[PolicyResult]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.display_name or r.key for r in results))


def _quoted(results: Iterable[PolicyResult]) -> str:
    return ", ".join(f"'{n}'" for n in _names(results))


def _in_view(evaluation: Evaluation, states: frozenset[str], outcome: Outcome) -> list[PolicyResult]:
    return [r for r in evaluation.results if r.policy.state in states and r.outcome is outcome]


def _unknown_blockers(evaluation: Evaluation, states: frozenset[str]) -> list[PolicyResult]:
    return [r for r in _in_view(evaluation, states, Outcome.CANNOT_TELL) if r.policy.blocks]


def _cannot_tell(results: Sequence[PolicyResult]) -> str:
    details = (f"'{r.display_name or r.key}' ({', '.join(r.unknown_conditions)})" for r in results)
    return "cannot tell: " + "; ".join(details)


def describe_access(evaluation: Evaluation) -> str:
    """What happens to the sign-in, in a few words."""
    enforced, with_report_only = evaluation.enforced, evaluation.if_report_only_were_on
    if enforced.blocked:
        return f"blocked by {_quoted(enforced.blocking)}"
    if with_report_only.blocked:
        return f"would be blocked by report-only {_quoted(with_report_only.blocking)}"
    text = "not blocked"
    if enforced.requires_mfa:
        text += ", MFA every time" if enforced.reauth_every_time else ", MFA"
    elif with_report_only.requires_mfa:
        text += ", MFA once report-only policies are on"
    if enforced.requirements:
        text += f" (grant controls of {', '.join(_requirement_names(evaluation, enforced))})"
    return text


def _requirement_names(evaluation: Evaluation, verdict: Verdict) -> list[str]:
    keys = {r.policy for r in verdict.requirements}
    return [f"'{r.display_name or r.key}'" for r in evaluation.results if r.key in keys]


def _judge_block(evaluation: Evaluation, states: frozenset[str], part_a: Sequence[PolicyResult]) -> _Judgement:
    """blocked / would_be_blocked: a definite block is ok; only a cannot-tell blocker is uncertain."""
    verdict = evaluation.enforced if states == _ENFORCED else evaluation.if_report_only_were_on
    if verdict.blocked:
        return _Judgement(Status.OK, describe_access(evaluation))
    unknown = _unknown_blockers(evaluation, states)
    if unknown:
        return _Judgement(Status.UNCERTAIN, _cannot_tell(unknown), tuple(unknown))
    why = "; ".join(f"'{r.display_name}' does not apply ({r.reason})" for r in part_a) or "no policy blocks it"
    return _Judgement(Status.FAIL, f"{describe_access(evaluation)}: {why}", tuple(part_a))


def _judge_not_blocked(evaluation: Evaluation, states: frozenset[str]) -> _Judgement:
    verdict = evaluation.enforced if states == _ENFORCED else evaluation.if_report_only_were_on
    if verdict.blocked:
        return _Judgement(Status.FAIL, describe_access(evaluation), verdict.blocking)
    unknown = _unknown_blockers(evaluation, states)
    if unknown:
        return _Judgement(Status.UNCERTAIN, f"{describe_access(evaluation)}; {_cannot_tell(unknown)}", tuple(unknown))
    return _Judgement(Status.OK, describe_access(evaluation))


def _judge_mfa_every_time(evaluation: Evaluation, part_b: Sequence[PolicyResult]) -> _Judgement:
    never_blocked = _judge_not_blocked(evaluation, _WITH_REPORT_ONLY)
    if never_blocked.status is Status.FAIL:
        return never_blocked
    enforced = evaluation.enforced
    if enforced.requires_mfa and enforced.reauth_every_time:
        return never_blocked  # more applying policies only add requirements, never remove MFA
    unknown = _in_view(evaluation, _ENFORCED, Outcome.CANNOT_TELL)
    could_mfa = enforced.requires_mfa or any(r.policy.requirement and r.policy.requirement.forces_mfa for r in unknown)
    could_every_time = enforced.reauth_every_time or any(r.policy.session.every_time for r in unknown)
    if could_mfa and could_every_time and unknown:
        return _Judgement(Status.UNCERTAIN, f"{describe_access(evaluation)}; {_cannot_tell(unknown)}", tuple(unknown))
    why = "; ".join(f"'{r.display_name}': {_part_b_state(r)}" for r in part_b) or "no policy requires it"
    return _Judgement(Status.FAIL, f"{describe_access(evaluation)}: {why}", tuple(part_b))


def _part_b_state(result: PolicyResult) -> str:
    if result.outcome is Outcome.APPLIES and result.policy.state == REPORT_ONLY:
        return "report-only, not enforced"
    return f"{result.outcome.value.replace('_', ' ')} ({result.reason})"


def _judge_part_a(evaluation: Evaluation, part_a: Sequence[PolicyResult], part_a_name: str | None) -> _Judgement:
    if not part_a:
        return _Judgement(Status.OK, f"no policy named '{part_a_name}' in the set")
    applying = [r for r in part_a if r.outcome is Outcome.APPLIES]
    if applying:
        return _Judgement(Status.FAIL, f"Part A applies: {describe_access(evaluation)}", tuple(applying))
    unknown = [r for r in part_a if r.outcome is Outcome.CANNOT_TELL]
    if unknown:
        return _Judgement(Status.UNCERTAIN, _cannot_tell(unknown), tuple(unknown))
    reasons = ", ".join(dict.fromkeys(r.reason for r in part_a))
    return _Judgement(Status.OK, f"Part A does not apply ({reasons}); {describe_access(evaluation)}")


@dataclass(frozen=True)
class PolicyRoles:
    """Which policies are the article's Part A and Part B, by display name (MSP stacks only)."""

    part_a: str | None = None
    part_b: str | None = None

    @classmethod
    def of(cls, config: StackConfig) -> PolicyRoles:
        if isinstance(config, MspStack):
            return cls(config.technician_access.display_name, config.service_account.display_name)
        return cls()

    def find(self, evaluation: Evaluation, name: str | None) -> list[PolicyResult]:
        return [r for r in evaluation.results if name is not None and r.display_name == name]


def judge(scenario: Scenario[Any], evaluation: Evaluation, roles: PolicyRoles | None = None) -> MatrixRow:
    """One matrix row: the scenario's expectation against the evaluation of its sign-in."""
    roles = roles or PolicyRoles()
    part_a = roles.find(evaluation, scenario.policy or roles.part_a)
    expect = scenario.expect
    if expect is Expectation.BLOCKED:
        judgement = _judge_block(evaluation, _ENFORCED, part_a)
    elif expect is Expectation.WOULD_BE_BLOCKED:
        judgement = _judge_block(evaluation, _WITH_REPORT_ONLY, part_a)
    elif expect is Expectation.NOT_BLOCKED_BY_PART_A:
        judgement = _judge_part_a(evaluation, part_a, roles.part_a)
    elif expect is Expectation.NEVER_BLOCKED:
        judgement = _judge_not_blocked(evaluation, _WITH_REPORT_ONLY)
    elif expect is Expectation.NOT_BLOCKED:
        judgement = _judge_not_blocked(evaluation, _ENFORCED)
    else:
        judgement = _judge_mfa_every_time(evaluation, roles.find(evaluation, roles.part_b))
    status = judgement.status
    if status is Status.UNCERTAIN and scenario.guard:
        status = Status.CANNOT_PROVE
    undecided: tuple[Undecided, ...] = ()
    if status in (Status.UNCERTAIN, Status.CANNOT_PROVE):
        undecided = tuple(
            Undecided(r.display_name or r.key, r.key, r.unknown_conditions)
            for r in judgement.responsible
            if r.outcome is Outcome.CANNOT_TELL
        )
    return MatrixRow(
        name=scenario.name,
        sign_in=summarize(scenario.sign_in),
        expected=str(expect),
        actual=judgement.actual,
        status=status,
        responsible=_names(judgement.responsible) if status is not Status.OK else (),
        origin=scenario.origin,
        undecided=undecided,
        cipp=scenario.cipp,
    )


def _labelled(row: MatrixRow, policies: Sequence[Mapping[str, Any]]) -> MatrixRow:
    """A row that names a Microsoft-managed policy says so, with the date a report-only one turns on."""
    labels = managed_policies.labels_for(row.responsible, policies) if row.status is not Status.OK else []
    return dataclasses.replace(row, actual=f"{row.actual} ({'; '.join(labels)})") if labels else row


def _targets_roles(policy: CompiledPolicy) -> bool:
    users = ((policy.source.get("conditions") or {}).get("users")) or {}
    return policy.active and policy.has_effect and bool(users.get("includeRoles") or users.get("excludeRoles"))


def _roles_unread(
    row: MatrixRow, scenario: Scenario, directory: DirectoryView | None, role_targeted: Sequence[CompiledPolicy]
) -> MatrixRow:
    """A guard row whose account's directory roles could not be read is not proven while a policy targets roles:
    the sign-in was evaluated as holding none, which may be wrong (a break-glass account is often a Global
    Administrator)."""
    user_id = getattr(scenario.sign_in, "user_id", "")
    membership = directory.membership(user_id) if directory is not None and user_id else None
    if not scenario.guard or membership is None or membership.roles_read or row.status is Status.FAIL:
        return row
    if not role_targeted:
        return row
    undecided = row.undecided + tuple(Undecided(p.display_name or p.key, p.key, (ROLES_UNREAD,)) for p in role_targeted)
    actual = f"cannot prove {row.expected}: " + "; ".join(item.describe() for item in undecided)
    responsible = tuple(dict.fromkeys([*row.responsible, *(u.policy for u in undecided)]))
    return dataclasses.replace(
        row, status=Status.CANNOT_PROVE, undecided=undecided, actual=actual, responsible=responsible
    )


def _settle(row: MatrixRow, sign_in: AnySignIn, probes: Sequence[tuple[str, PolicySet]]) -> MatrixRow:
    """Name, for each undecided policy, the first stated assumption under which the evaluator decides it."""
    if not row.undecided:
        return row
    evaluations = [(key, policy_set.evaluate(sign_in)) for key, policy_set in probes]
    undecided = tuple(
        dataclasses.replace(
            item,
            settled_by=next(
                (key for key, e in evaluations if e.result(item.key).outcome is not Outcome.CANNOT_TELL), None
            ),
        )
        for item in row.undecided
    )
    actual = row.actual
    if row.status is Status.CANNOT_PROVE:
        actual = f"cannot prove {row.expected}: " + "; ".join(item.describe() for item in undecided)
    return dataclasses.replace(row, undecided=undecided, actual=actual)


def summarize(sign_in: AnySignIn) -> str:
    """The sign-in in one line, parts separated by "; " (what the scenario states; the rest is unknown)."""
    if isinstance(sign_in, ServicePrincipalSignIn):
        return _summarize_workload(sign_in)
    if sign_in.external is not None:
        parts = [f"{sign_in.external.kind} of tenant {sign_in.external.home_tenant_id or '(unknown)'}"]
    else:
        parts = [f"user {sign_in.user_id}"]
    if sign_in.group_ids:
        parts.append(f"in group {', '.join(sorted(sign_in.group_ids))}")
    parts.append(f"from {sign_in.client_ip}" if sign_in.client_ip else "from an unstated address")
    app = f"app {sign_in.application_id}" if sign_in.application_id else "any app"
    parts.append(f"{app} ({sign_in.client_app_type})")
    stated = {
        "platform": sign_in.device_platform,
        "country": sign_in.country,
        "sign-in risk": sign_in.sign_in_risk,
        "user risk": sign_in.user_risk,
        "user action": sign_in.user_action,
        "authentication flow": sign_in.authentication_flow,
    }
    parts += [f"{label} {value}" for label, value in stated.items() if value]
    return "; ".join(parts)


def _summarize_workload(sign_in: ServicePrincipalSignIn) -> str:
    parts = [f"service principal {sign_in.service_principal_id}"]
    if sign_in.label:
        parts[0] += f" ({sign_in.label})"
    parts.append(f"from {sign_in.client_ip}" if sign_in.client_ip else "from an unstated address")
    parts.append(f"token for {sign_in.application_id}" if sign_in.application_id else "token for any resource")
    if sign_in.service_principal_risk:
        parts.append(f"service principal risk {sign_in.service_principal_risk}")
    return "; ".join(parts)


def run_matrix(
    config: StackConfig,
    policies: list[dict[str, Any]],
    named_locations: list[dict[str, Any]],
    extra: Sequence[Scenario] = (),
    *,
    mfa_trusted_ips: Iterable[str] | None = None,
    directory: DirectoryView | None = None,
    service_principals: Mapping[str, str] | None = None,
) -> MatrixResult:
    """Evaluate the derived scenarios and `extra` against these policies (Graph v1.0 JSON).

    `mfa_trusted_ips`: the tenant's legacy MFA trusted IPs (Graph v1.0 does not expose them); None takes
    the stack's `assumptions.legacyMfaTrustedIps`, and when that is not stated either, `AllTrusted`
    locations stay undecidable for addresses in no trusted named location. `directory`: the memberships
    `make verify` read, used instead of asserted ones. `service_principals`: client id → service principal
    object id of cippApi.workloadIdentityPolicies as read from the tenant; None takes them from the planned
    policies (`planned_service_principals`).
    """
    if mfa_trusted_ips is None:
        mfa_trusted_ips = config.assumptions.legacy_mfa_trusted_ips
    policy_set = PolicySet.compile(policies, named_locations, mfa_trusted_ips=mfa_trusted_ips)
    probes: list[tuple[str, PolicySet]] = []
    if mfa_trusted_ips is None:  # what stating the assumption (any value: [] is the common one) would decide
        probes.append(
            ("assumptions.legacyMfaTrustedIps", PolicySet.compile(policies, named_locations, mfa_trusted_ips=[]))
        )
    roles = PolicyRoles.of(config)
    role_targeted = [p for p in policy_set.policies if _targets_roles(p)]
    rows = []
    if service_principals is None:
        service_principals = planned_service_principals(config, policies)
    workload = workload_scenarios(config, service_principals)
    flows = authentication_flow_scenarios(config, policies, directory)
    scenarios: list[Scenario[Any]] = [*derive_scenarios(config, directory), *flows, *workload, *extra]
    # Guard rows count a report-only Microsoft-managed policy as enforced (cipp_hardening/managed_policies.py).
    managed = managed_policies.as_enforced(policies)
    guard_set = (
        policy_set if managed is None else PolicySet.compile(managed, named_locations, mfa_trusted_ips=mfa_trusted_ips)
    )
    for scenario in scenarios:
        chosen = guard_set if scenario.guard else policy_set
        row = _settle(judge(scenario, chosen.evaluate(scenario.sign_in), roles), scenario.sign_in, probes)
        rows.append(_labelled(_roles_unread(row, scenario, directory, role_targeted), policies))
    return MatrixResult(tuple(rows), config.assumptions.cannot_prove_override)
