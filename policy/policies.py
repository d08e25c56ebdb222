"""The cipp-hardening CrossGuard policies. Importable, no side effects: policy/__main__.py builds the pack.

Run with `pulumi preview --stack <stack> --policy-pack policy` (README "Rolling out safely").

Where the stack config comes from, first match:
1. the policy config `stackFile` (a Pulumi.<stack>.yaml, relative to the project root): tests, runs
   outside the CLI;
2. the engine's ConfigureStack call: current CLIs hand an analyzer the stack's whole config there, the
   same {"ns:key": text} map the program gets, and no longer in the environment (docs/engine.md).
   pulumi-policy's servicer drops it, so policy/__main__.py passes it to `remember_stack_config`;
3. PULUMI_CONFIG: where older CLIs put the same map;
4. PULUMI_STACK (older CLIs too): the project's Pulumi.<stack>.yaml.
Secrets arrive decrypted and are masked here, never shown.
It is validated with the program's own parser (cipp_hardening/config.py), so the pack and the program
can never disagree about ids and names. Client stacks (Part D) declare no CA policy: not applicable.

What policies see (pulumi_policy/policy.py, `_PolicyAnalyzerServicer`): resource policies get a
resource's planned inputs, stack policies every resource's planned outputs, with camelCase names, in
proxies that raise UnknownValueError on values not known at preview; the engine turns that into an
advisory "can't run policy during preview". Nothing describes the state before the update: the
promotion policy reads it from a `pulumi stack export` file named by its config `priorStateFile`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from cipp_hardening.cidr import ENTRA_MAX_RANGES, RangeError, entra_range
from cipp_hardening.config import (
    PROJECT,
    SECRET_KEYS,
    ConfigError,
    MspStack,
    StackConfig,
    parse_stack_config,
    raw_from_flat_config,
)
from cipp_hardening.directory_names import resolve_names
from cipp_hardening.graph_render import UnsupportedInput, render, with_object_id
from cipp_hardening.offline import placeholder_guid, stack_file_config
from cipp_hardening.rollout import (
    PriorResource,
    describe_transition,
    parse_time,
    prior_policies,
)
from cipp_hardening.scenario_files import user_scenarios
from cipp_hardening.scenarios import run_matrix

ROOT = Path(__file__).resolve().parents[1]
NAMED_LOCATION = "azuread:index/namedLocation:NamedLocation"
CA_POLICY = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"
ROOT_STACK = "pulumi:pulumi:Stack"
DEFAULT_MAX_RECORD_AGE_DAYS = 30

_STACK_FILE = {"stackFile": {"type": "string", "description": "Pulumi.<stack>.yaml, relative to the project"}}
STACK_CONFIG_SCHEMA = PolicyConfigSchema(properties=dict(_STACK_FILE))
PROMOTION_CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        **_STACK_FILE,
        "priorStateFile": {"type": "string", "description": "`pulumi stack export` output, relative to the project"},
        "maxRecordAgeDays": {"type": "number", "description": "how old a promotion record may be when it is used"},
    }
)


# --- the stack config ------------------------------------------------------------------------------


class PackConfigError(ValueError):
    """The pack could not find or read the stack config."""


def project_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def load_stack_config(policy_config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> StackConfig:
    """The validated stack config (see the module docstring for where it comes from)."""
    return parse_stack_config(_raw_stack_config(policy_config, os.environ if environ is None else environ))


_engine_stack_config: dict[str, str] = {}


def remember_stack_config(config: Mapping[str, str]) -> None:
    """Keep the config the engine sent in ConfigureStack (called once, before any Analyze)."""
    _engine_stack_config.clear()
    _engine_stack_config.update(config)


def _raw_stack_config(policy_config: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    if policy_config.get("stackFile"):
        return raw_from_flat_config(stack_file_config(_existing(str(policy_config["stackFile"])), PROJECT))
    if _engine_stack_config:
        return raw_from_flat_config(dict(_engine_stack_config), SECRET_KEYS)
    if environ.get("PULUMI_CONFIG"):
        return raw_from_flat_config(json.loads(environ["PULUMI_CONFIG"]), SECRET_KEYS)
    stack = environ.get("PULUMI_STACK", "").rsplit("/", 1)[-1]
    if stack:
        return raw_from_flat_config(stack_file_config(_existing(f"Pulumi.{stack}.yaml"), PROJECT))
    raise PackConfigError(
        "no stack config: run the pack through `pulumi preview --policy-pack policy` (the engine passes the "
        "stack config to the pack) or set the policy config stackFile"
    )


def _existing(name: str) -> Path:
    path = project_path(name)
    if not path.is_file():
        raise PackConfigError(f"stack file {name} not found at {path}")
    return path


def _msp_config(
    get_config: Callable[[], Mapping[str, Any]], not_applicable: Callable[[str], None], report: ReportViolation
) -> MspStack | None:
    try:
        config = load_stack_config(get_config())
    except (PackConfigError, ConfigError, OSError, ValueError) as error:
        report(f"cannot check the stack: {error}", None)
        return None
    if isinstance(config, MspStack):
        return config
    not_applicable("a client stack (Part D) declares no Conditional Access policy of its own")
    return None


# --- reading props ---------------------------------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _ids(value: Any) -> list[str]:
    """A list of ids/keywords; touching an unknown element raises UnknownValueError (preview)."""
    if value is None or isinstance(value, str):
        return []
    return [str(item) for item in value]


def _lowered(value: Any) -> set[str]:
    return {item.lower() for item in _ids(value)}


def _label(props: Mapping[str, Any], resource_name: str) -> str:
    display = props.get("displayName")
    return f"{display!r} ({resource_name})" if isinstance(display, str) else resource_name


def _grant_controls(props: Mapping[str, Any]) -> list[str]:
    grant = props.get("grantControls") or {}
    controls = _ids(grant.get("builtInControls"))
    controls += [f"termsOfUse:{t}" for t in _ids(grant.get("termsOfUses"))]
    controls += [f"customFactor:{f}" for f in _ids(grant.get("customAuthenticationFactors"))]
    if grant.get("authenticationStrengthPolicyId"):
        controls.append("authenticationStrength")
    return controls


def _broad_population(users: Mapping[str, Any]) -> str | None:
    if "all" in _lowered(users.get("includedUsers")):
        return "All users"
    groups, roles = _ids(users.get("includedGroups")), _ids(users.get("includedRoles"))
    if groups or roles:
        return ", ".join([*(f"group {g}" for g in groups), *(f"role {r}" for r in roles)])
    return None


# --- resource policies -----------------------------------------------------------------------------


def break_glass_problems(props: Mapping[str, Any], config: MspStack, name: str) -> list[str]:
    """A policy that blocks or requires controls for All users or a group must exclude a break-glass id."""
    if props.get("state") == "disabled":
        return []
    users = _get(props, "conditions", "users") or {}
    population, controls = _broad_population(users), _grant_controls(props)
    if population is None or not controls:
        return []
    access = config.technician_access
    excluded_users = _lowered(users.get("excludedUsers")) & set(access.break_glass_user_ids)
    excluded_groups = _lowered(users.get("excludedGroups")) & set(access.break_glass_group_ids)
    if excluded_users or excluded_groups:
        return []
    declared = [*access.break_glass_user_ids, *access.break_glass_group_ids] or ["none declared"]
    return [
        f"CA policy {_label(props, name)} applies {'/'.join(controls)} to {population} but excludes none of "
        f"the stack's break-glass accounts ({', '.join(declared)}): one IP or MFA mistake would lock every "
        "administrator out. Fix: exclude a break-glass user in conditions.users.excludedUsers (or a group in "
        "excludedGroups), declared in technicianAccess.breakGlassUserIds / breakGlassGroupIds"
    ]


def applies_to_no_user(users: Mapping[str, Any]) -> bool:
    """Users `None` and nobody else: a policy for workload identities only (docs/workload-identity.md)."""
    nobody = _lowered(users.get("includedUsers")) == {"none"}
    others = users.get("includedGroups") or users.get("includedRoles") or users.get("includedGuestsOrExternalUsers")
    return nobody and not others


def service_account_problems(props: Mapping[str, Any], config: MspStack, name: str) -> list[str]:
    """Every policy other than Part B excludes the CIPP service account."""
    account = config.service_account
    if props.get("state") == "disabled" or props.get("displayName") == account.display_name:
        return []
    if applies_to_no_user(_get(props, "conditions", "users") or {}):
        return []
    if account.user_id in _lowered(_get(props, "conditions", "users", "excludedUsers")):
        return []
    return [
        f"CA policy {_label(props, name)} does not exclude the CIPP service account {account.user_id} "
        f"(serviceAccount.userId). Only Part B ({account.display_name!r}) may apply to it: CIPP signs in with it "
        "from Azure, and any other policy can cut CIPP off from every client tenant. "
        "Fix: add it to conditions.users.excludedUsers"
    ]


def service_account_policy_problems(props: Mapping[str, Any], config: MspStack, name: str) -> list[str]:
    """Part B: only the service account, no location condition, MFA, sign-in frequency every time."""
    account = config.service_account
    if props.get("displayName") != account.display_name:
        return []
    label, problems = _label(props, name), []
    users = _get(props, "conditions", "users") or {}
    others = [*_ids(users.get("includedGroups")), *_ids(users.get("includedRoles"))]
    if _lowered(users.get("includedUsers")) != {account.user_id} or others:
        problems.append(f"must include only the CIPP service account {account.user_id} (conditions.users)")
    problems += _part_b_exclusion_problems(users, config)
    locations = _get(props, "conditions", "locations") or {}
    if _ids(locations.get("includedLocations")) or _ids(locations.get("excludedLocations")):
        problems.append("has a location condition, which the article forbids (Part B step 7): remove it")
    if "mfa" not in _grant_controls(props) or "block" in _grant_controls(props):
        problems.append("must grant access with MFA: grantControls.builtInControls [mfa]")
    session = props.get("sessionControls") or {}
    if session.get("signInFrequencyInterval") != "everyTime" or session.get("signInFrequency"):
        problems.append("must re-authenticate at every sign-in: sessionControls.signInFrequencyInterval everyTime")
    return [f"Part B policy {label} {problem}" for problem in problems]


def _part_b_exclusion_problems(users: Mapping[str, Any], config: MspStack) -> list[str]:
    """Part B may exclude the declared break-glass accounts and groups (Maester MT.1005), nothing else: any other
    exclusion could hold the service account's own sign-ins (docs/scanners.md)."""
    account, access = config.service_account, config.technician_access
    excluded_users = _lowered(users.get("excludedUsers"))
    problems = []
    if account.user_id in excluded_users:
        problems.append(f"excludes the CIPP service account {account.user_id} itself: Part B would never apply")
    strangers = sorted(excluded_users - set(access.break_glass_user_ids) - {account.user_id})
    strangers += sorted(_lowered(users.get("excludedGroups")) - set(access.break_glass_group_ids))
    strangers += _ids(users.get("excludedRoles"))
    if strangers:
        problems.append(
            f"excludes {', '.join(strangers)}, which are not the stack's break-glass accounts or groups "
            "(technicianAccess.breakGlassUserIds / breakGlassGroupIds): only those may be excluded"
        )
    if users.get("excludedGuestsOrExternalUsers"):
        problems.append("excludes guests or external users: only the break-glass accounts may be excluded")
    return problems


def named_location_problems(props: Mapping[str, Any], name: str) -> list[str]:
    """Only valid, canonical CIDRs within Entra's limits (docs/graph-ca.md §3)."""
    ip = props.get("ip")
    if not ip:
        return []
    label, ranges = _label(props, name), _ids(ip.get("ipRanges"))
    problems = [] if ranges else ["has no IP ranges"]
    if len(ranges) > ENTRA_MAX_RANGES:
        problems.append(f"has {len(ranges)} ranges; Entra holds at most {ENTRA_MAX_RANGES} per named location")
    seen: set[str] = set()
    for text in ranges:
        try:
            canonical = str(entra_range(text).network)
        except RangeError as error:
            problems.append(str(error))
            continue
        if canonical != text:
            problems.append(f"{text!r} is not canonical; write {canonical}")
        if canonical in seen:
            problems.append(f"lists {canonical} more than once")
        seen.add(canonical)
    fix = "Fix: trustedLocation.cidrs in the stack config"
    return [f"named location {label}: {problem}. {fix}" for problem in problems]


def _resource_policy(
    check: Callable[[Mapping[str, Any], MspStack, str], list[str]], resource_type: str = CA_POLICY
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type != resource_type:
            return
        config = _msp_config(args.get_config, args.not_applicable, report)
        if config is None:
            return
        if config.names:  # a resource policy cannot see the ids the program resolved: `named-accounts` checks
            args.not_applicable("the stack names accounts by name; the named-accounts stack policy checks this")
            return
        for problem in check(args.props, config, args.name):
            report(problem, None)

    return validate


def resolved_config(resources: Sequence[Planned], config: MspStack) -> MspStack | str:
    """The config with names replaced by the ids the program resolved (its `resolvedNames` output), or why not."""
    if not config.names:
        return config
    stacks = _of_type(resources, ROOT_STACK)
    rows = stacks[0].props.get("resolvedNames") if stacks else None
    if not isinstance(rows, list):
        keys = ", ".join(name.key for name in config.names)
        return (
            f"the stack names accounts or groups by name ({keys}) but the plan has no resolvedNames output to "
            "check them by id: the program resolves names at preview (docs/configuration.md)"
        )
    ids = {str(row["key"]): str(row["id"]).lower() for row in rows if isinstance(row, Mapping) and "id" in row}
    try:
        resolved = resolve_names(config, ids)
    except ConfigError as error:
        return f"cannot check the names the stack uses: {error}"
    assert isinstance(resolved, MspStack)
    return resolved


def named_account_problems(resources: Sequence[Planned], config: MspStack) -> list[Finding]:
    """The three resource checks, by id, for a stack whose accounts are named by name (they skip it)."""
    findings: list[Finding] = []
    for resource in _of_type(resources, CA_POLICY):
        checks = [break_glass_problems, service_account_problems, service_account_policy_problems]
        findings += [
            (problem, resource.urn) for check in checks for problem in check(resource.props, config, resource.name)
        ]
    return findings


def _validate_named_location(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == NAMED_LOCATION:
        for problem in named_location_problems(args.props, args.name):
            report(problem, None)


# --- stack policies: planned resources as plain data -----------------------------------------------


class _Unknown:
    def __repr__(self) -> str:
        return "(known after apply)"


UNKNOWN = _Unknown()


def plain(value: Any) -> Any:
    """Proxies → dicts and lists, each value unknown at preview replaced by UNKNOWN."""
    if isinstance(value, Mapping):
        return {key: _plain_item(value, key) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain_item(value, index) for index in range(len(value))]
    return value


def _plain_item(container: Any, key: Any) -> Any:
    try:
        return plain(container[key])
    except UnknownValueError:
        return UNKNOWN


@dataclass(frozen=True)
class Planned:
    urn: str
    type: str
    name: str
    props: dict[str, Any]
    depends_on: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # property → resource URNs


def planned_resources(args: StackValidationArgs) -> list[Planned]:
    return [
        Planned(
            r.urn,
            r.resource_type,
            r.name,
            plain(r.props),
            {key: tuple(d.urn for d in deps) for key, deps in (r.property_dependencies or {}).items()},
        )
        for r in args.resources
    ]


def _of_type(resources: Sequence[Planned], type_: str) -> list[Planned]:
    return [r for r in resources if r.type == type_]


def location_ids(resources: Sequence[Planned]) -> dict[str, str]:
    """Named location URN → object id; a stable placeholder while Graph has not assigned it yet."""
    ids = {}
    for location in _of_type(resources, NAMED_LOCATION):
        object_id = location.props.get("objectId")
        ids[location.urn] = object_id if isinstance(object_id, str) and object_id else placeholder_guid(location.urn)
    return ids


def resolve_locations(policy: Planned, ids: Mapping[str, str]) -> dict[str, Any]:
    """The policy's props with unknown location ids filled in from the one named location it depends on.

    On a first deployment the location's id is unknown at preview; the policy's `conditions` input then
    depends on that location (Pulumi records the dependency), which identifies it.
    """
    props = json.loads(json.dumps(policy.props, default=lambda _: UNKNOWN_STRING_VALUE))
    sources = [ids[urn] for urn in policy.depends_on.get("conditions", ()) if urn in ids]
    locations = _get(props, "conditions", "locations")
    if len(sources) != 1 or not isinstance(locations, dict):
        return props
    for key in ("includedLocations", "excludedLocations"):
        if isinstance(locations.get(key), list):
            locations[key] = [sources[0] if item == UNKNOWN_STRING_VALUE else item for item in locations[key]]
    return props


def _require_known(value: Any, where: str) -> None:
    """Raise the SDK's UnknownValueError (an advisory at preview) when something is still unknown."""
    text = json.dumps(value, default=lambda _: UNKNOWN_STRING_VALUE)
    if UNKNOWN_STRING_VALUE in text:
        raise UnknownValueError(UNKNOWN_STRING_VALUE, [where])


Finding = tuple[str, str | None]  # message, URN


def technician_policy_problems(resources: Sequence[Planned], config: MspStack) -> list[Finding]:
    """Part A: includes All locations, excludes the trusted named location, grants block."""
    access, trusted = config.technician_access, config.trusted_location
    part_a = [p for p in _of_type(resources, CA_POLICY) if p.props.get("displayName") == access.display_name]
    if not part_a:
        return [(f"Part A policy {access.display_name!r} (technicianAccess.displayName) is not in the plan", None)]
    locations = [r for r in _of_type(resources, NAMED_LOCATION) if r.props.get("displayName") == trusted.display_name]
    ids = location_ids(resources)
    findings: list[Finding] = []
    if not locations:
        findings.append((f"the trusted named location {trusted.display_name!r} of Step 1 is not in the plan", None))
    for location in locations:
        if _get(location.props, "ip", "trusted") is not True:
            findings.append(
                (f"named location {trusted.display_name!r} is not marked trusted (ip.trusted: true)", location.urn)
            )
    for policy in part_a:
        findings += [(m, policy.urn) for m in _part_a_problems(policy, resolve_locations(policy, ids), locations, ids)]
    return findings


def _part_a_problems(
    policy: Planned, props: Mapping[str, Any], locations: Sequence[Planned], ids: Mapping[str, str]
) -> list[str]:
    label, problems = _label(props, policy.name), []
    conditions_locations = _get(props, "conditions", "locations") or {}
    _require_known(conditions_locations, "conditions.locations")
    if "all" not in _lowered(conditions_locations.get("includedLocations")):
        problems.append("must include All locations (conditions.locations.includedLocations: [All])")
    excluded = _lowered(conditions_locations.get("excludedLocations"))
    if locations and not excluded & {ids[location.urn].lower() for location in locations}:
        problems.append(
            f"must exclude the trusted named location {locations[0].props.get('displayName')!r} "
            f"(conditions.locations.excludedLocations holds {sorted(excluded) or 'nothing'})"
        )
    if _grant_controls(props) != ["block"]:
        problems.append(f"must grant block only (grantControls.builtInControls [block]), not {_grant_controls(props)}")
    fix = "Fix: declare Part A through components/technician_access.py from the stack config, not by hand"
    return [f"Part A policy {label} {problem}. {fix}" for problem in problems]


def promotion_problems(
    resources: Sequence[Planned],
    config: MspStack,
    prior: Mapping[str, PriorResource] | None,
    *,
    now: datetime,
    max_age_days: float = DEFAULT_MAX_RECORD_AGE_DAYS,
) -> list[Finding]:
    """Part A may become enabled only with technicianAccess.promotedAfter recorded (make promote)."""
    access = config.technician_access
    findings: list[Finding] = []
    for policy in _of_type(resources, CA_POLICY):
        _require_known(policy.props.get("state"), "state")
        if policy.props.get("displayName") != access.display_name or policy.props.get("state") != "enabled":
            continue
        transition = describe_transition(prior, policy.urn)
        if transition is None:
            continue
        problem = _record_problem(access.promoted_after, access.display_name, prior, policy.urn, now, max_age_days)
        if problem:
            fix = (
                "Fix: run `make promote STACK=<stack>` (it reads the report-only sign-in results and records "
                "the evidence), or keep technicianAccess.state: reportOnly"
            )
            findings.append((f"Part A policy {access.display_name!r} {transition}, but {problem}. {fix}", policy.urn))
    return findings


def _record_problem(
    record: Mapping[str, Any] | None,
    display_name: str,
    prior: Mapping[str, PriorResource] | None,
    urn: str,
    now: datetime,
    max_age_days: float,
) -> str | None:
    if record is None:
        return "the stack config records no promotion (technicianAccess.promotedAfter)"
    if record.get("policyDisplayName") != display_name:
        return f"the recorded promotion is for the policy {record.get('policyDisplayName')!r}"
    before = (prior or {}).get(urn)
    if before is not None and before.object_id and str(record.get("policyId", "")).lower() != before.object_id.lower():
        return f"the recorded evidence was read from policy {record.get('policyId')}, not from {before.object_id}"
    if prior is not None:
        age = (now - parse_time(str(record.get("recordedAt")))).total_seconds() / 86400
        if age > max_age_days:
            return f"the promotion was recorded {age:.0f} days ago (more than {max_age_days:g})"
    return None


def matrix_problems(resources: Sequence[Planned], config: MspStack) -> list[Finding]:
    """The scenario matrix (cipp_hardening/scenarios.py) over the planned policies and locations."""
    ids = location_ids(resources)
    policies, locations = [], []
    findings: list[Finding] = []
    for resource in resources:
        if resource.type not in (CA_POLICY, NAMED_LOCATION):
            continue
        props = resolve_locations(resource, ids) if resource.type == CA_POLICY else dict(resource.props)
        body = _graph_body(resource, props, ids)
        if isinstance(body, str):
            findings.append((body, resource.urn))
        elif resource.type == CA_POLICY:
            policies.append(body)
        else:
            locations.append(body)
    try:
        extra = user_scenarios(config, ROOT)
    except (OSError, ValueError) as error:
        return [*findings, (f"cannot read the scenarios file (scenariosFile): {error}", None)]
    result = run_matrix(config, policies, locations, extra)
    # A guard row the evaluator cannot decide fails like a broken one, unless assumptions.cannotProveOverride
    # accepts it (the program logs that reason at every preview): docs/assurance.md.
    unproven = () if result.waiver else result.unproven
    for row in (*result.failures, *unproven):
        responsible = f"; responsible: {', '.join(row.responsible)}" if row.responsible else ""
        findings.append(
            (
                f"scenario {row.name!r} ({row.sign_in}): expected {row.expected}, got {row.actual}{responsible}. "
                "Fix: the policies or the stack config, until `make plan STACK=<stack>` shows the matrix green",
                None,
            )
        )
    return findings


# Optional+Computed attributes of the azuread provider: at preview the bridged provider reports each one
# the program did not set as unknown (docs/engine.md). This program only ever sets them to literals, so an
# unknown one was not set, and Graph keeps it unset: it is no condition and no control.
PROVIDER_COMPUTED = {
    CA_POLICY: (
        ("conditions", "insiderRiskLevels"),
        ("sessionControls", "signInFrequencyAuthenticationType"),
        ("sessionControls", "signInFrequencyInterval"),
    ),
    NAMED_LOCATION: (("country", "countryLookupMethod"),),
}


def _without_unset_computed(type_: str, props: dict[str, Any]) -> dict[str, Any]:
    kept = json.loads(json.dumps(props, default=lambda _: UNKNOWN_STRING_VALUE))
    for block, key in PROVIDER_COMPUTED.get(type_, ()):
        values = kept.get(block)
        if isinstance(values, dict) and values.get(key) == UNKNOWN_STRING_VALUE:
            del values[key]
    return kept


def _graph_body(resource: Planned, props: dict[str, Any], ids: Mapping[str, str]) -> dict[str, Any] | str:
    """The Graph body the resource becomes, or why it cannot be rendered."""
    props = _without_unset_computed(resource.type, props)
    inputs = _without_empty({k: v for k, v in props.items() if k not in ("id", "urn", "objectId")})
    _require_known(inputs, resource.name)
    try:
        body = render(resource.type, inputs)
    except UnsupportedInput as error:
        return f"{resource.name}: cannot evaluate the scenario matrix: {error}"
    object_id = ids.get(resource.urn) or props.get("objectId")
    known = isinstance(object_id, str) and object_id and object_id != UNKNOWN_STRING_VALUE
    return with_object_id(body or {}, str(object_id) if known else placeholder_guid(resource.urn))


def _without_empty(value: Any) -> Any:
    """Outputs carry unset fields as "", [] or null; graph_render treats absent and empty alike."""
    if isinstance(value, dict):
        kept = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


# --- the stack-policy wrappers ---------------------------------------------------------------------


def _stack_policy(
    check: Callable[[Sequence[Planned], MspStack, Mapping[str, Any]], list[Finding]],
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = _msp_config(args.get_config, args.not_applicable, report)
        if config is None:
            return
        resources = planned_resources(args)
        resolved = resolved_config(resources, config)
        if isinstance(resolved, str):
            report(resolved, None)
            return
        for message, urn in check(resources, resolved, args.get_config()):
            report(message, urn)

    return validate


def _check_technician_policy(resources: Sequence[Planned], config: MspStack, _: Mapping[str, Any]) -> list[Finding]:
    return technician_policy_problems(resources, config)


def _validate_named_accounts(args: StackValidationArgs, report: ReportViolation) -> None:
    config = _msp_config(args.get_config, args.not_applicable, report)
    if config is None:
        return
    if not config.names:  # every account and group is given by id: the resource policies check them
        return
    _stack_policy(lambda resources, resolved, _: named_account_problems(resources, resolved))(args, report)


def _check_matrix(resources: Sequence[Planned], config: MspStack, _: Mapping[str, Any]) -> list[Finding]:
    return matrix_problems(resources, config)


def _check_promotion(resources: Sequence[Planned], config: MspStack, policy_config: Mapping[str, Any]) -> list[Finding]:
    prior = None
    if policy_config.get("priorStateFile"):
        try:
            path = project_path(str(policy_config["priorStateFile"]))
            prior = prior_policies(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as error:
            return [(f"cannot read the prior state file {policy_config['priorStateFile']}: {error}", None)]
    max_age = float(policy_config.get("maxRecordAgeDays", DEFAULT_MAX_RECORD_AGE_DAYS))
    return promotion_problems(resources, config, prior, now=datetime.now(UTC), max_age_days=max_age)


# --- the policies ----------------------------------------------------------------------------------

break_glass_excluded = ResourceValidationPolicy(
    name="break-glass-excluded",
    description="A CA policy that blocks or requires controls for All users or a group excludes a break-glass account.",
    validate=_resource_policy(break_glass_problems),
    config_schema=STACK_CONFIG_SCHEMA,
)

service_account_excluded = ResourceValidationPolicy(
    name="service-account-excluded",
    description="Every CA policy other than Part B excludes the CIPP service account.",
    validate=_resource_policy(service_account_problems),
    config_schema=STACK_CONFIG_SCHEMA,
)

service_account_policy = ResourceValidationPolicy(
    name="service-account-policy",
    description="Part B: only the service account, no location condition, MFA, sign-in frequency every time.",
    validate=_resource_policy(service_account_policy_problems),
    config_schema=STACK_CONFIG_SCHEMA,
)

named_location_ranges = ResourceValidationPolicy(
    name="named-location-ranges",
    description="Named locations hold only valid, canonical CIDRs within Entra's limits.",
    validate=_validate_named_location,
)

technician_policy = StackValidationPolicy(
    name="technician-policy",
    description="Part A includes All locations, excludes the trusted named location and grants block.",
    validate=_stack_policy(_check_technician_policy),
    config_schema=STACK_CONFIG_SCHEMA,
)

named_accounts = StackValidationPolicy(
    name="named-accounts",
    description="break-glass-excluded, service-account-excluded and service-account-policy, by the ids the program "
    "resolved, when the stack names accounts or groups by name (the resource policies cannot see them).",
    validate=_validate_named_accounts,
    config_schema=STACK_CONFIG_SCHEMA,
)

promotion_recorded = StackValidationPolicy(
    name="promotion-recorded",
    description="Part A becomes enabled only when the stack config records a promotion (make promote).",
    validate=_stack_policy(_check_promotion),
    config_schema=PROMOTION_CONFIG_SCHEMA,
)

scenario_matrix = StackValidationPolicy(
    name="scenario-matrix",
    description="The scenario matrix (technicians, break-glass, service account) holds on the planned resources.",
    validate=_stack_policy(_check_matrix),
    config_schema=STACK_CONFIG_SCHEMA,
)

ALL = [
    break_glass_excluded,
    service_account_excluded,
    service_account_policy,
    named_location_ranges,
    technician_policy,
    named_accounts,
    promotion_recorded,
    scenario_matrix,
]
