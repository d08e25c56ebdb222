"""`make verify STACK=<stack>`: the scenario matrix against what the tenant holds now, read-only.

Reads the tenant's Conditional Access policies and named locations and, read-only too, the directory
objects the stack names (cipp_hardening/directory_facts.py: Policy.Read.All, User.Read.All and
GroupMember.Read.All), evaluates the stack's scenario matrix against them with the memberships the
directory reports, compares the trusted location, Part A and Part B with the plan's bodies
(cipp_hardening/drift.py) and prints it all, the verdict last. For a client stack it also lists every
policy in scope that still lacks the MSP exclusion, and every Conditional Access policy someone other than the
deploying identity changed since the last deployment, where the audit log says so (cipp_hardening/audit_log.py;
reported, never a failure). Exit codes (docs/assurance.md): 0 all good; 3 broken
(a definite matrix failure, a named account missing or disabled, Part A / Part B / the location missing
or drifted); 5 cannot prove (a guard row undecided, no assumptions.cannotProveOverride); 4 the rest holds
but some client policy in scope lacks the exclusion; 2 configuration, scenario file, credential or Graph
error. Uncertain non-guard rows are flagged, never a failure.

Credentials: the same chain as the program (service_clients/credentials.py): AZURE_CLIENT_ID +
AZURE_CLIENT_SECRET, workload identity, or the Azure CLI login; a client stack's `graphClientId` is
used with the secret in CIPP_HARDENING_GRAPH_CLIENT_SECRET (Pulumi secrets cannot be decrypted here).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cipp_hardening import audit_log, report_output, stack_history
from cipp_hardening.audit_log import AuditResult
from cipp_hardening.commands.plan import build_plan
from cipp_hardening.config import ClientStack, ConfigError, MspStack, StackConfig
from cipp_hardening.directory_facts import DirectoryReport, read_directory
from cipp_hardening.directory_names import resolve_with_graph
from cipp_hardening.drift import location_problems, policy_drift
from cipp_hardening.evaluator import PolicySet
from cipp_hardening.exclusion import cipp_is_excluded, select_policies
from cipp_hardening.offline import OfflineRunError
from cipp_hardening.report_output import make_console, print_findings, print_matrix
from cipp_hardening.scenario_files import ScenarioFileError, config_from_stack_file, user_scenarios
from cipp_hardening.scenarios import (
    EXIT_BROKEN,
    EXIT_CANNOT_PROVE,
    MatrixResult,
    Scenario,
    authentication_flow_scenarios,
    derive_scenarios,
    run_matrix,
)
from cipp_hardening.whatif import EVALUATE, WhatIfResult
from cipp_hardening.whatif import check as what_if_check
from cipp_hardening.yamlfile import YamlFileError
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError, TenantPacer, pacer_for

ROOT = Path(__file__).resolve().parents[2]
POLICIES = "identity/conditionalAccess/policies"
NAMED_LOCATIONS = "identity/conditionalAccess/namedLocations"
SERVICE_PRINCIPALS = "servicePrincipals"
GRAPH_SECRET_ENV = "CIPP_HARDENING_GRAPH_CLIENT_SECRET"  # noqa: S105 - an environment variable name

EXIT_ERROR = 2
EXIT_MISSING_EXCLUSIONS = 4
__all__ = ["EXIT_BROKEN", "EXIT_CANNOT_PROVE", "EXIT_MISSING_EXCLUSIONS"]
# Directory reads are not Conditional Access reads: they do not share its 1 request/s/tenant limit.
DIRECTORY_INTERVAL_S = 0.1


@dataclass(frozen=True)
class LiveTenant:
    tenant_id: str
    policies: list[dict[str, Any]]
    named_locations: list[dict[str, Any]]
    # cippApi.workloadIdentityPolicies: client (application) id → its service principal's object id, as read
    service_principals: dict[str, str] = field(default_factory=dict)
    missing_service_principals: list[str] = field(default_factory=list)  # client ids without one


@dataclass(frozen=True)
class VerifyReport:
    stack: str
    tenant_id: str
    matrix: MatrixResult
    missing_exclusions: list[dict[str, str]] = field(default_factory=list)  # client stacks
    missing_policies: list[str] = field(default_factory=list)  # MSP stacks: Part A / Part B not found
    missing_service_principals: list[str] = field(default_factory=list)  # CIPP-API clients without one
    missing_cipp_app: str | None = None  # technicianAccess.cippAppId with no service principal in the tenant
    directory: DirectoryReport | None = None  # what the directory says about the objects the stack names
    drift: list[str] = field(default_factory=list)  # MSP stacks: the tenant against the plan's bodies
    drift_unchecked: str = ""  # MSP stacks: why Part A / Part B could not be compared with the plan
    warnings: tuple[str, ...] = ()  # the stack config's (an accepted cannotProveOverride among them)
    what_if: WhatIfResult | None = None  # Microsoft's What If against our evaluator (cipp_hardening/whatif.py)
    audit: AuditResult | None = None  # policy changes by others since the last deployment (cipp_hardening/audit_log.py)

    @property
    def broken(self) -> list[str]:
        """Why the report is broken (exit 3), one reason per kind."""
        reasons = [f"{len(self.matrix.failures)} broken scenario(s)"] if self.matrix.failures else []
        if self.directory is not None and self.directory.failures:
            reasons.append(f"{len(self.directory.failures)} directory failure(s)")
        if self.missing_policies:
            reasons.append(f"{len(self.missing_policies)} policy(ies) missing")
        if self.missing_service_principals:  # no workload-identity policy can hold such a client to its ranges
            reasons.append(f"{len(self.missing_service_principals)} CIPP-API client(s) without a service principal")
        if self.missing_cipp_app:  # Part A targets an application the tenant does not have: it holds no one
            reasons.append("technicianAccess.cippAppId is not an application in the tenant")
        if self.drift:
            reasons.append(f"{len(self.drift)} difference(s) from the plan")
        if self.what_if is not None and self.what_if.disagreements:
            reasons.append(f"{len(self.what_if.disagreements)} disagreement(s) with Microsoft's What If")
        return reasons

    @property
    def exit_code(self) -> int:
        if self.broken:
            return EXIT_BROKEN
        if self.drift_unchecked:
            return EXIT_ERROR  # an MSP stack is never verified without comparing Part A / Part B with the plan
        if self.directory is not None and self.directory.unknowns:
            return EXIT_CANNOT_PROVE  # a named account the directory would not show is not proven to exist
        if self.matrix.exit_code:
            return self.matrix.exit_code
        return EXIT_MISSING_EXCLUSIONS if self.missing_exclusions else 0

    @property
    def reasons(self) -> list[str]:
        unchecked = (
            [f"Part A / Part B not compared with the plan: {self.drift_unchecked}"] if self.drift_unchecked else []
        )
        reasons = self.broken + unchecked + [r for r in report_output.matrix_reasons(self.matrix) if "broken" not in r]
        if self.directory is not None and self.directory.unknowns:
            reasons.append(f"{len(self.directory.unknowns)} directory object(s) or field(s) it would not show")
        if self.missing_exclusions:
            reasons.append(f"{len(self.missing_exclusions)} client policy(ies) without the MSP exclusion")
        return reasons

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "tenantId": self.tenant_id,
            "matrix": self.matrix.to_json(),
            "missingExclusions": self.missing_exclusions,
            "missingPolicies": self.missing_policies,
            "missingServicePrincipals": self.missing_service_principals,
            "missingCippApp": self.missing_cipp_app,
            "directory": self.directory.to_json() if self.directory is not None else None,
            "drift": self.drift,
            "driftUnchecked": self.drift_unchecked or None,
            "warnings": list(self.warnings),
            "whatIf": self.what_if.to_json() if self.what_if is not None else None,
            "auditLog": self.audit.to_json() if self.audit is not None else None,
            "exitCode": self.exit_code,
        }


def tenant_of(config: StackConfig) -> str:
    return config.tenant_id if isinstance(config, MspStack) else config.client_tenant.tenant_id


def token_source(config: StackConfig) -> Callable[[], str]:
    tenant = tenant_of(config)
    client_id = config.graph_client_id if isinstance(config, ClientStack) else None
    secret = os.environ.get(GRAPH_SECRET_ENV) if client_id else None

    def token() -> str:
        return credentials.access_token(
            tenant, f"{config.graph_url}/.default", client_id=client_id if secret else None, client_secret=secret
        )

    return token


def read_tenant(graph_url: str, tenant_id: str, token: Callable[[], str], app_ids: Sequence[str] = ()) -> LiveTenant:
    """Every policy and named location of the tenant (all pages), and the service principals of `app_ids`
    (Application.Read.All), through GETs only."""
    with GraphClient(graph_url, tenant_id, token) as graph:
        principals: dict[str, str] = {}
        for app_id in app_ids:
            # The same lookup as the provider's get_service_principal(client_id=...).
            params = {"$filter": f"appId eq '{app_id}'", "$select": "id,appId"}
            found = graph.list_all(SERVICE_PRINCIPALS, params)
            if found:
                principals[app_id] = str(found[0]["id"])
        missing = [app_id for app_id in app_ids if app_id not in principals]
        return LiveTenant(tenant_id, graph.list_all(POLICIES), graph.list_all(NAMED_LOCATIONS), principals, missing)


def workload_app_ids(config: StackConfig) -> list[str]:
    """The CIPP-API clients held by cippApi.workloadIdentityPolicies (none without the section)."""
    cipp = config.cipp_api if isinstance(config, MspStack) else None
    workload = cipp.workload_identity if cipp is not None else None
    return [client.client_id for client in workload.clients] if workload is not None else []


def cipp_app_id(config: StackConfig) -> str | None:
    """technicianAccess.cippAppId when Part A targets CIPP's own app (CIPP-SSO, docs/custom-roles.md)."""
    if not isinstance(config, MspStack) or config.technician_access.target != "cippApp":
        return None
    return config.technician_access.cipp_app_id


def looked_up_app_ids(config: StackConfig) -> list[str]:
    """Every application id verify looks up as a service principal (Application.Read.All)."""
    app = cipp_app_id(config)
    return [*workload_app_ids(config), *([app] if app else [])]


def missing_exclusions(config: ClientStack, policies: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Policies Part D manages that do not (yet) exclude the MSP (or the Direct-mode service account)."""
    tenant = config.client_tenant
    selected, _ = select_policies(policies, tenant.include_states, tenant.skip_policy_ids)
    missing = []
    for policy in selected:
        users = (policy.get("conditions") or {}).get("users")
        if not cipp_is_excluded(users, tenant.access_mode, tenant.msp_tenant_id, tenant.service_account_user_id):
            missing.append(
                {
                    "id": str(policy.get("id", "")),
                    "displayName": str(policy.get("displayName", "")),
                    "state": str(policy.get("state", "")),
                }
            )
    return missing


class WhatIfUnavailable(RuntimeError):
    """The tenant does not answer What If (no Policy.Read.ConditionalAccess, no licence): said, not failed."""


# Graph's answers that mean "not for this caller or tenant", not "our request is wrong".
_WHAT_IF_UNAVAILABLE = (403, 404, 501)


def what_if_asker(graph_url: str, tenant_id: str, token: Callable[[], str]) -> Callable[[dict[str, Any]], list[Any]]:
    """POST /identity/conditionalAccess/evaluate (Policy.Read.ConditionalAccess; docs/graph-ca.md §5)."""

    def ask(body: dict[str, Any]) -> list[Any]:
        with GraphClient(graph_url, tenant_id, token) as graph:
            try:
                return list(graph.post(EVALUATE, body).get("value") or [])
            except GraphError as error:
                if error.status in _WHAT_IF_UNAVAILABLE:
                    # Without the request id: the same tenant gives the same report run to run.
                    message = f"Graph POST {EVALUATE} → HTTP {error.status} {error.code}: {error.graph_message}"
                    raise WhatIfUnavailable(message) from error
                raise

    return ask


def compare_with_what_if(
    config: StackConfig,
    live: LiveTenant,
    extra: Sequence[Scenario],
    ask: Callable[[dict[str, Any]], list[Any]],
    directory: DirectoryReport | None = None,
) -> WhatIfResult:
    """Every user scenario row asked of Microsoft's What If and compared with our evaluator."""
    view = directory.view if directory is not None else None
    flows = authentication_flow_scenarios(config, live.policies, view)
    scenarios = [*derive_scenarios(config, view), *flows, *extra]
    trusted_ips = config.assumptions.legacy_mfa_trusted_ips
    policy_set = PolicySet.compile(live.policies, live.named_locations, mfa_trusted_ips=trusted_ips)
    rows = [(scenario.name, scenario.sign_in) for scenario in scenarios]
    return what_if_check(rows, policy_set, live.policies, ask, WhatIfUnavailable)


def verify(
    stack: str,
    config: StackConfig,
    live: LiveTenant,
    extra: Sequence[Scenario] = (),
    *,
    mfa_trusted_ips: Iterable[str] | None = None,
    directory: DirectoryReport | None = None,
    planned: PlannedBodies | str | None = None,
    what_if: WhatIfResult | None = None,
    audit: AuditResult | None = None,
) -> VerifyReport:
    """The matrix over the live policies (with the directory's memberships when read), what the tenant
    lacks for this stack and, for an MSP stack, how it differs from the plan's bodies (`planned`; a string says
    why there are none, and the report then cannot pass). `audit`: what the audit log says, its agent-created
    policies labelled in the matrix."""
    matrix = run_matrix(
        config,
        live.policies,
        live.named_locations,
        extra,
        mfa_trusted_ips=mfa_trusted_ips,
        service_principals=live.service_principals,
        directory=directory.view if directory is not None else None,
    )
    if audit is not None and audit.agent_policies:
        matrix = dataclasses.replace(matrix, rows=tuple(audit_log.label_agent_rows(matrix.rows, audit.agent_policies)))
    if isinstance(config, ClientStack):
        missing = missing_exclusions(config, live.policies)
        return VerifyReport(
            stack,
            live.tenant_id,
            matrix,
            missing_exclusions=missing,
            directory=directory,
            warnings=config.warnings,
            what_if=what_if,
            audit=audit,
        )
    drift = location_problems(config, live.named_locations)
    unchecked = planned if isinstance(planned, str) else "" if planned is not None else "no plan was given"
    if isinstance(planned, PlannedBodies):
        drift += policy_drift(config, planned.policies, planned.locations, live.policies, live.named_locations)
    names = {str(p.get("displayName")) for p in live.policies}
    expected = [config.technician_access.display_name, config.service_account.display_name]
    workload = config.cipp_api.workload_identity if config.cipp_api is not None else None
    if workload is not None:
        expected += [workload.policy_name(client.client_id) for client in workload.clients]
    app = cipp_app_id(config)
    missing_app = app if app and app in live.missing_service_principals else None
    return VerifyReport(
        stack,
        live.tenant_id,
        matrix,
        missing_policies=[n for n in expected if n not in names],
        missing_service_principals=[a for a in live.missing_service_principals if a != app],
        missing_cipp_app=missing_app,
        directory=directory,
        drift=drift,
        drift_unchecked=unchecked,
        warnings=config.warnings,
        what_if=what_if,
        audit=audit,
    )


@dataclass(frozen=True)
class PlannedBodies:
    """The Graph bodies `make plan` renders for the stack: what the tenant should hold."""

    policies: list[dict[str, Any]]
    locations: list[dict[str, Any]]


def planned_bodies(stack: str, stack_file: Path) -> PlannedBodies:
    """Raises OfflineRunError when the program fails offline."""
    document = build_plan(stack, stack_file)
    return PlannedBodies(document.graph_objects("policy"), document.graph_objects("namedLocation"))


def read_stack_directory(config: StackConfig) -> DirectoryReport:
    """The directory objects the stack names (GETs only: User.Read.All, GroupMember.Read.All)."""
    tenant = tenant_of(config)
    interval = min(DIRECTORY_INTERVAL_S, pacer_for(config.graph_url, tenant).interval)
    with GraphClient(config.graph_url, tenant, token_source(config), pacer=TenantPacer(interval)) as graph:
        return read_directory(graph, config, GraphError)


@dataclass(frozen=True)
class AuditOptions:
    """What `verify` asks of the audit log (docs/assurance.md "Changes by others")."""

    since: datetime | None = None  # the last deployment; None: the stack's history (cipp_hardening/stack_history.py)
    deployers: tuple[str, ...] = ()  # ids of the deploying identity; none: the identity verify signs in as
    agents: tuple[str, ...] = ()  # ids the Conditional Access optimization agent writes under


def _audit_refused(error: Exception) -> str | None:
    """Any answer of Graph's to the audit-log read is said, never an error of verify: the log is evidence, not an
    invariant (docs/assurance.md "Changes by others")."""
    if not isinstance(error, GraphError):
        return None
    hint = " (AuditLog.Read.All and Directory.Read.All, optional: docs/assurance.md)" if error.status == 403 else ""
    return f"Graph GET {audit_log.DIRECTORY_AUDITS} → HTTP {error.status} {error.code}: {error.graph_message}{hint}"


def read_audit(config: StackConfig, stack: str, stack_file: Path, options: AuditOptions) -> AuditResult:
    """The Conditional Access entries of the audit log since the last deployment (GETs only)."""
    since = options.since or stack_history.last_deployment(stack, stack_file)
    token = token_source(config)
    given = audit_log.Identity.of(options.deployers)
    deployer = given if options.deployers else audit_log.token_identity(token())
    agents = audit_log.Identity.of(options.agents)
    tenant = tenant_of(config)
    with GraphClient(config.graph_url, tenant, token, pacer=TenantPacer(DIRECTORY_INTERVAL_S)) as graph:
        return audit_log.read(graph, since, deployer, agents, _audit_refused, datetime.now(UTC))


def verify_stack(
    stack: str, stack_file: Path, root: Path = ROOT, audit_options: AuditOptions | None = None
) -> VerifyReport:
    """Config, user scenarios and the live tenant → the report. Raises ConfigError, ScenarioFileError,
    OSError, GraphError, CredentialError, requests.RequestException."""
    config = config_from_stack_file(stack_file)
    # Names (a UPN, a group's display name) become ids first, through Graph GETs (User/Group.Read.All).
    config = resolve_with_graph(config, config.graph_url, tenant_of(config), token_source(config))
    extra = user_scenarios(config, root)
    live = read_tenant(config.graph_url, tenant_of(config), token_source(config), looked_up_app_ids(config))
    directory = read_stack_directory(config)
    planned: PlannedBodies | str | None = None
    if isinstance(config, MspStack):
        try:
            planned = planned_bodies(stack, stack_file)
        except OfflineRunError as error:
            planned = f"the offline plan of the stack failed ({error}); `make plan STACK={stack}` shows why"
    ask = what_if_asker(config.graph_url, tenant_of(config), token_source(config))
    what_if = compare_with_what_if(config, live, extra, ask, directory)
    audit = read_audit(config, stack, stack_file, audit_options or AuditOptions())
    return verify(stack, config, live, extra, directory=directory, planned=planned, what_if=what_if, audit=audit)


# --- output ---------------------------------------------------------------------------------------


def print_report(report: VerifyReport, console: Console) -> None:
    """Everything but the verdict (`print_verdict`, the last line)."""
    print_matrix(report.matrix, console, f"scenario matrix: stack {report.stack}, live tenant {report.tenant_id}")
    print_findings(console, "stack configuration", [f"warning: {w}" for w in report.warnings], "yellow")
    if report.directory is not None:
        directory = report.directory
        print_findings(console, "directory: failures", [f.message for f in directory.failures], "red")
        print_findings(console, "directory: warnings", [f.message for f in directory.warnings], "yellow")
        print_findings(console, "directory: cannot tell", [f.message for f in directory.unknowns], "yellow")
    print_findings(console, "the tenant differs from the plan (drift)", report.drift, "red")
    if report.drift_unchecked:
        console.print(f"[red]✗[/] drift not checked: {report.drift_unchecked}", soft_wrap=True)
    for name in report.missing_policies:
        console.print(
            f"[red]✗[/] no policy named '{name}' in the tenant: has `pulumi up` run for this stack?", soft_wrap=True
        )
    for client_id in report.missing_service_principals:
        console.print(
            f"[red]✗[/] CIPP-API client {client_id} has no service principal in the tenant: "
            "cippApi.workloadIdentityPolicies cannot hold it to its ranges (its rows are uncertain)",
            soft_wrap=True,
        )
    if report.missing_cipp_app:
        console.print(
            f"[red]✗[/] technicianAccess.cippAppId {report.missing_cipp_app} has no service principal in the tenant: "
            "Part A targets an application nobody signs in to, so it holds no one. Use the application id of "
            "CIPP's CIPP-SSO app registration (docs/custom-roles.md \"Part A's target on current CIPP\")",
            soft_wrap=True,
        )
    if report.what_if is not None:
        print_what_if(report.what_if, console)
    if report.audit is not None:
        print_audit(report.audit, console)
    if report.missing_exclusions:
        heading = "client policies in scope still without the MSP exclusion"
        lines = [f"{row['displayName']} ({row['id']}, {row['state']})" for row in report.missing_exclusions]
        if console.is_terminal:
            table = Table(title=heading)
            for column in ("policy", "id", "state"):
                table.add_column(column)
            for row in report.missing_exclusions:
                table.add_row(row["displayName"], row["id"], row["state"], style="yellow")
            console.print(table)
        else:
            print_findings(console, heading, lines, "yellow")


def print_what_if(what_if: WhatIfResult, console: Console) -> None:
    print_findings(console, "Microsoft's What If disagrees", [d.message for d in what_if.disagreements], "red")
    if what_if.unavailable:
        console.print(f"[yellow]![/] {escape(what_if.unavailable)} (only our evaluator was used)", soft_wrap=True)
    elif what_if.asked:
        console.print(f"Microsoft's What If asked about {what_if.asked} scenario row(s)", soft_wrap=True)


def print_audit(audit: AuditResult, console: Console) -> None:
    agent = [f"'{name}' ({policy_id}) is {audit_log.AGENT_LABEL}" for policy_id, name in audit.agent_policies.items()]
    print_findings(console, "policies of the Conditional Access optimization agent", agent, "yellow")
    if audit.cannot_tell:
        console.print(f"[yellow]![/] {escape(audit.cannot_tell)}", soft_wrap=True)
        return
    heading = f"policies changed since the last deployment ({audit.since}) by others than {audit.deployer}"
    print_findings(console, heading, [c.message for c in audit.changes], "yellow")
    if not audit.changes:
        console.print(
            f"no policy changed since the last deployment ({audit.since}) by others than {escape(audit.deployer)}",
            soft_wrap=True,
        )


def print_verdict(report: VerifyReport, console: Console) -> None:
    console.print(report_output.verdict_line(report.exit_code, report.reasons), soft_wrap=True)


EXIT_CODES = """exit codes (they reach the caller; `make verify` turns every failure into 2):
  0  every invariant holds in the live tenant, and every client policy in scope excludes the MSP
  2  error: configuration, stack or scenario file, an unknown or ambiguous name, credentials, Graph, or
     an MSP stack whose offline plan failed, so Part A / Part B could not be compared with it
  3  broken: a definite failure of the scenario matrix, a named account or group missing or disabled in
     the directory, Part A / Part B / the trusted location missing or drifted from the plan, or
     Microsoft's What If (POST identity/conditionalAccess/evaluate) disagreeing with our evaluator on a row
  4  the matrix holds, but a client policy in scope still lacks the MSP exclusion
  5  an invariant cannot be proven (a guard row stays uncertain and assumptions.cannotProveOverride
     is not set), or the directory would not show a named account or group (HTTP 403, or no
     accountEnabled): the finding names the permission to grant

Credentials: ARM_* (as pulumi-azuread reads them) or AZURE_* variables, or `az login` (docs/commands.md)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening verify",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="prod", help="stack name: reads Pulumi.<stack>.yaml (default prod)")
    parser.add_argument("--stack-file", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument(
        "--since",
        type=_moment,
        help="the last deployment (ISO 8601, e.g. 2026-05-01T09:00:00Z); default: the start of the stack's last "
        "`pulumi up` in `pulumi stack history`",
    )
    parser.add_argument(
        "--deployer",
        action="append",
        default=[],
        metavar="ID",
        help="an application id or object id the stack is deployed with (repeatable); default: the identity "
        "verify signs in as",
    )
    parser.add_argument(
        "--optimization-agent",
        action="append",
        default=[],
        metavar="ID",
        help="the application id or object id the Conditional Access optimization agent writes under (repeatable)",
    )
    args = parser.parse_args(argv)
    options = AuditOptions(args.since, tuple(args.deployer), tuple(args.optimization_agent))
    console = make_console()
    import requests  # here, not at the top: `make plan` imports this module and never sends a request

    try:
        report = verify_stack(args.stack, args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml", audit_options=options)
    except (ConfigError, ScenarioFileError, YamlFileError, OSError) as error:
        return _error(console, "error:", error)
    except GraphError as error:
        hint = f" ({_PERMISSIONS_HINT})" if error.status == 403 else ""
        return _error(console, "could not read the tenant:", error, hint)
    except (credentials.CredentialError, requests.RequestException) as error:
        return _error(console, "could not read the tenant:", error)
    print_report(report, console)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    print_verdict(report, console)
    return report.exit_code


def _moment(text: str) -> datetime:
    moment = audit_log.parse_time(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"--since {text!r} is not an ISO 8601 date and time")
    return moment


_PERMISSIONS_HINT = (
    "verify reads with Policy.Read.All, User.Read.All and GroupMember.Read.All, application permissions "
    "granted with admin consent: docs/assurance.md"
)


def _error(console: Console, what: str, error: Exception, hint: str = "") -> int:
    console.print(f"[red]{what}[/] {escape(str(error))}{escape(hint)}", highlight=False, soft_wrap=True)
    console.print(report_output.verdict_line(2, []), soft_wrap=True)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
