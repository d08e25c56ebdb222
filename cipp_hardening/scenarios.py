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

Expectations, and the view of the policy states each is judged in (graph-ca.md §5.3 "Report-only"):

    blocked                 a policy in force blocks it
    would_be_blocked        blocked once report-only policies are switched on (or already blocked)
    not_blocked_by_part_a   the Part A policy (by display name) does not apply to it
    never_blocked           no policy blocks it, enforced or report-only
    mfa_every_time          never blocked, and the policies in force require MFA with sign-in frequency everyTime
    not_blocked             no policy in force blocks it (report-only policies are not counted)

"Cannot tell": the evaluator says `cannot_tell` for a policy that depends on something the scenario
does not state (risk, device, country, MFA trusted IPs, an unresolved placeholder...). A row is
`ok` only when its expectation holds in every resolution of those unknowns, `fail` when it fails in
every resolution, and `uncertain` otherwise. `MatrixResult.failures` holds only the definite failures
(they fail `make plan`); uncertain rows are flagged but do not fail.

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

import difflib
import ipaddress
import itertools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import yaml

from cipp_hardening.config import PROJECT, ClientStack, MspStack, StackConfig, parse_stack_config
from cipp_hardening.evaluator import (
    ENABLED,
    REPORT_ONLY,
    Evaluation,
    ExternalUser,
    Outcome,
    PolicyResult,
    PolicySet,
    SignIn,
    Verdict,
)
from cipp_hardening.exclusion import exclude_cipp, select_policies
from cipp_hardening.yamlfile import read_yaml


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


@dataclass(frozen=True)
class Scenario:
    name: str
    sign_in: SignIn
    expect: Expectation
    origin: str = "derived"  # or "<file>: scenarios[i]"


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


def derive_scenarios(config: StackConfig) -> list[Scenario]:
    """The scenarios the article's invariants are about, for this stack."""
    if isinstance(config, MspStack):
        return _msp_scenarios(config)
    return _client_scenarios(config)


def _msp_scenarios(config: MspStack) -> list[Scenario]:
    access = config.technician_access
    trusted = config.trusted_location.cidrs
    outside, azure = address_outside(trusted), address_outside(trusted, _AZURE_CANDIDATES)
    tech_groups = frozenset(access.include_group_ids[:1])
    technician = access.include_user_ids[0] if access.include_user_ids else synthetic_user("technician")
    app = access.cipp_app_id

    def sign_in(user: str, ip: str, groups: frozenset[str] = tech_groups) -> SignIn:
        return SignIn(user_id=user, application_id=app, client_ip=ip, group_ids=groups)

    outside_expectation = Expectation.BLOCKED if access.state == ENABLED else Expectation.WOULD_BE_BLOCKED
    scenarios = [
        Scenario(
            f"technician inside {cidr}", sign_in(technician, address_inside(cidr)), Expectation.NOT_BLOCKED_BY_PART_A
        )
        for cidr in trusted
    ]
    scenarios.append(
        Scenario("technician outside the trusted ranges", sign_in(technician, outside), outside_expectation)
    )
    scenarios += [
        Scenario(f"break-glass {user} from outside", sign_in(user, outside), Expectation.NEVER_BLOCKED)
        for user in access.break_glass_user_ids
    ]
    scenarios += [
        Scenario(
            f"member of break-glass group {group} from outside",
            sign_in(synthetic_user(f"break-glass {group}"), outside, tech_groups | {group}),
            Expectation.NEVER_BLOCKED,
        )
        for group in access.break_glass_group_ids
    ]
    service_account = sign_in(config.service_account.user_id, azure)
    scenarios.append(Scenario("CIPP service account from Azure", service_account, Expectation.MFA_EVERY_TIME))
    return scenarios


def _client_scenarios(config: ClientStack) -> list[Scenario]:
    tenant = config.client_tenant
    azure = _AZURE_CANDIDATES[0]
    if tenant.access_mode == "direct":
        sign_in = SignIn(user_id=str(tenant.service_account_user_id), client_ip=azure)
        return [Scenario("CIPP service account (Direct mode) from Azure", sign_in, Expectation.NEVER_BLOCKED)]
    msp_user = SignIn(
        user_id=synthetic_user(f"service provider {tenant.msp_tenant_id}"),
        client_ip=azure,
        external=ExternalUser("serviceProvider", tenant.msp_tenant_id),
    )
    name = f"MSP service-provider user (GDAP, tenant {tenant.msp_tenant_id}) from Azure"
    return [Scenario(name, msp_user, Expectation.NEVER_BLOCKED)]


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


@dataclass(frozen=True)
class MatrixRow:
    name: str
    sign_in: str  # a one-line summary of the simulated sign-in
    expected: str
    actual: str
    status: Status
    responsible: tuple[str, ...] = ()  # policies behind a failure, or the cannot-tell ones
    origin: str = "derived"

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
        }


@dataclass(frozen=True)
class MatrixResult:
    rows: tuple[MatrixRow, ...]

    @property
    def failures(self) -> tuple[MatrixRow, ...]:
        """Rows whose expectation definitely does not hold: a broken invariant."""
        return tuple(r for r in self.rows if r.status is Status.FAIL)

    @property
    def uncertain(self) -> tuple[MatrixRow, ...]:
        """Rows that hold or fail depending on what the evaluator cannot tell offline."""
        return tuple(r for r in self.rows if r.status is Status.UNCERTAIN)

    @property
    def ok(self) -> bool:
        """No invariant definitely broken (uncertain rows are flagged, not failed)."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failures": len(self.failures),
            "uncertain": len(self.uncertain),
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


def judge(scenario: Scenario, evaluation: Evaluation, roles: PolicyRoles | None = None) -> MatrixRow:
    """One matrix row: the scenario's expectation against the evaluation of its sign-in."""
    roles = roles or PolicyRoles()
    part_a = roles.find(evaluation, roles.part_a)
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
    return MatrixRow(
        name=scenario.name,
        sign_in=summarize(scenario.sign_in),
        expected=str(expect),
        actual=judgement.actual,
        status=judgement.status,
        responsible=_names(judgement.responsible) if judgement.status is not Status.OK else (),
        origin=scenario.origin,
    )


def summarize(sign_in: SignIn) -> str:
    """The sign-in in one line, parts separated by "; " (what the scenario states; the rest is unknown)."""
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
    }
    parts += [f"{label} {value}" for label, value in stated.items() if value]
    return "; ".join(parts)


def run_matrix(
    config: StackConfig,
    policies: list[dict[str, Any]],
    named_locations: list[dict[str, Any]],
    extra: Sequence[Scenario] = (),
    *,
    mfa_trusted_ips: Iterable[str] | None = None,
) -> MatrixResult:
    """Evaluate the derived scenarios and `extra` against these policies (Graph v1.0 JSON).

    `mfa_trusted_ips`: the tenant's legacy MFA trusted IPs when known (Graph v1.0 does not expose them);
    None leaves `AllTrusted` locations undecidable for addresses in no trusted named location.
    """
    policy_set = PolicySet.compile(policies, named_locations, mfa_trusted_ips=mfa_trusted_ips)
    roles = PolicyRoles.of(config)
    scenarios = [*derive_scenarios(config), *extra]
    return MatrixResult(tuple(judge(s, policy_set.evaluate(s.sign_in), roles) for s in scenarios))


# --- the scenario file ----------------------------------------------------------------------------


class ScenarioFileError(ValueError):
    """Every problem found in a scenario file, each naming the file and the entry."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {path}: {p}" for p in self.problems)
        super().__init__(f"invalid scenario file {path} ({len(self.problems)} problem(s)):\n{lines}")


# YAML key → SignIn field; values are strings unless listed in _LIST_KEYS.
_SIGN_IN_FIELDS: Final = {
    "userId": "user_id",
    "groups": "group_ids",
    "roles": "role_template_ids",
    "ip": "client_ip",
    "app": "application_id",
    "appGroups": "app_groups",
    "clientApp": "client_app_type",
    "platform": "device_platform",
    "country": "country",
    "userAction": "user_action",
    "authenticationContext": "authentication_context",
    "signInRisk": "sign_in_risk",
    "userRisk": "user_risk",
    "insiderRisk": "insider_risk",
    "authenticationFlow": "authentication_flow",
}
_LIST_KEYS: Final = frozenset({"groups", "roles", "appGroups"})
_SCENARIO_KEYS: Final = frozenset({"name", "expect", "signIn"})


def _unknown_keys(obj: Mapping[str, Any], allowed: Iterable[str], where: str) -> list[str]:
    allowed = sorted(allowed)
    problems = []
    for key in sorted(set(obj) - set(allowed), key=str):
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        problems.append(f"{where}.{key}: unknown key" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return problems


def load_scenarios_file(path: str | Path) -> list[Scenario]:
    """The scenarios of a YAML file; raises ScenarioFileError listing every problem."""
    path = Path(path)
    try:
        document = read_yaml(path)
    except OSError as exc:
        raise ScenarioFileError(path, [f"cannot be read ({exc.strerror or exc})"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioFileError(path, [f"is not YAML ({exc})".replace("\n", " ")]) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("scenarios"), list):
        raise ScenarioFileError(path, ["must be a mapping with a `scenarios:` list"])
    problems = _unknown_keys(document, {"scenarios"}, "(top level)")
    scenarios: list[Scenario] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["scenarios"]):
        label = f"scenarios[{index}]"
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']!r})"
        scenario, entry_problems = _parse_entry(entry, label, f"{path.name}: scenarios[{index}]")
        problems += entry_problems
        if scenario is not None and scenario.name in seen:
            problems.append(f"{label}.name: {scenario.name!r} is used twice")
        elif scenario is not None:
            seen.add(scenario.name)
            scenarios.append(scenario)
    if problems:
        raise ScenarioFileError(path, problems)
    return scenarios


def _parse_entry(entry: Any, label: str, origin: str) -> tuple[Scenario | None, list[str]]:
    if not isinstance(entry, Mapping):
        return None, [f"{label}: must be a mapping with name, expect and signIn"]
    problems = _unknown_keys(entry, _SCENARIO_KEYS, label)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}.name: is required (a non-empty string)")
    expect = entry.get("expect")
    if expect not in {e.value for e in Expectation}:
        options = ", ".join(e.value for e in Expectation)
        problems.append(f"{label}.expect: must be one of {options}; got {expect!r}")
    sign_in, sign_in_problems = _parse_sign_in(entry.get("signIn"), f"{label}.signIn")
    problems += sign_in_problems
    if problems or sign_in is None:
        return None, problems
    return Scenario(str(name).strip(), sign_in, Expectation(str(expect)), origin), []


def _parse_sign_in(value: Any, where: str) -> tuple[SignIn | None, list[str]]:
    if not isinstance(value, Mapping):
        return None, [f"{where}: is required (a mapping with at least userId)"]
    problems = _unknown_keys(value, [*_SIGN_IN_FIELDS, "external"], where)
    fields: dict[str, Any] = {}
    for key, field_name in _SIGN_IN_FIELDS.items():
        if key not in value or value[key] is None:
            continue
        parsed = _strings(value[key]) if key in _LIST_KEYS else _string(value[key])
        if parsed is None:
            kind = "a list of strings" if key in _LIST_KEYS else "a string"
            problems.append(f"{where}.{key}: must be {kind}, got {value[key]!r}")
        else:
            fields[field_name] = parsed
    if not fields.get("user_id"):
        problems.append(f"{where}.userId: is required")
    if "client_ip" in fields and not _is_ip(fields["client_ip"]):
        problems.append(f"{where}.ip: {fields['client_ip']!r} is not an IPv4 or IPv6 address")
    if fields.get("application_id", "").lower() == "all":
        fields["application_id"] = None
    external, external_problems = _parse_external(value.get("external"), f"{where}.external")
    problems += external_problems
    if problems:
        return None, problems
    try:
        return SignIn(external=external, **fields), []
    except ValueError as exc:  # the evaluator's vocabulary checks (client app type, platform, risk...)
        return None, [f"{where}: {exc}"]


def _parse_external(value: Any, where: str) -> tuple[ExternalUser | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, Mapping) or not isinstance(value.get("kind"), str):
        return None, [f"{where}: must be a mapping with kind (e.g. serviceProvider) and tenant"]
    problems = _unknown_keys(value, {"kind", "tenant"}, where)
    tenant = value.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        problems.append(f"{where}.tenant: must be a tenant GUID string")
    if problems:
        return None, problems
    try:
        return ExternalUser(value["kind"], tenant.lower() if tenant else None), []
    except ValueError as exc:
        return None, [f"{where}.kind: {exc}"]


def _string(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return [v.strip() for v in value]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def user_scenarios(config: StackConfig, root: Path) -> list[Scenario]:
    """The scenarios of the stack's `scenariosFile` (relative to `root`), or none."""
    return load_scenarios_file(root / config.scenarios_file) if config.scenarios_file else []


# --- the stack file -------------------------------------------------------------------------------


def config_from_stack_file(stack_file: Path) -> StackConfig:
    """Pulumi.<stack>.yaml → validated config (raises ConfigError). Secure values count as set."""
    loaded = read_yaml(stack_file) or {}
    raw: dict[str, Any] = {}
    for key, value in (loaded.get("config") or {}).items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            value = "[secret]"
        raw[key.removeprefix(f"{PROJECT}:")] = value
    return parse_stack_config(raw)
