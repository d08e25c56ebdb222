"""`make verify STACK=<stack>`: the scenario matrix against what the tenant holds now, read-only.

Reads the tenant's Conditional Access policies and named locations through Graph v1.0 (GET only: the
identity needs Policy.Read.All and nothing more), evaluates the stack's scenario matrix against them
and prints it. For a client stack it also lists every policy in scope that still lacks the MSP
exclusion. Exit codes: 0 all good; 3 an invariant is broken (a definite matrix failure); 4 the matrix
holds but some client policy in scope lacks the exclusion; 2 configuration, scenario file, credential
or Graph error. Uncertain rows are flagged, never a failure.

Credentials: the same chain as the program (dynamic_providers/credentials.py): AZURE_CLIENT_ID +
AZURE_CLIENT_SECRET, workload identity, or the Azure CLI login; a client stack's `graphClientId` is
used with the secret in CIPP_HARDENING_GRAPH_CLIENT_SECRET (Pulumi secrets cannot be decrypted here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cipp_hardening.config import ClientStack, ConfigError, MspStack, StackConfig
from cipp_hardening.exclusion import cipp_is_excluded, select_policies
from cipp_hardening.scenarios import (
    MatrixResult,
    Scenario,
    ScenarioFileError,
    Status,
    config_from_stack_file,
    run_matrix,
    user_scenarios,
)
from dynamic_providers import credentials
from dynamic_providers.graph_client import GraphClient, GraphError

ROOT = Path(__file__).resolve().parents[2]
POLICIES = "identity/conditionalAccess/policies"
NAMED_LOCATIONS = "identity/conditionalAccess/namedLocations"
GRAPH_SECRET_ENV = "CIPP_HARDENING_GRAPH_CLIENT_SECRET"  # noqa: S105 - an environment variable name

EXIT_BROKEN = 3
EXIT_MISSING_EXCLUSIONS = 4


@dataclass(frozen=True)
class LiveTenant:
    tenant_id: str
    policies: list[dict[str, Any]]
    named_locations: list[dict[str, Any]]


@dataclass(frozen=True)
class VerifyReport:
    stack: str
    tenant_id: str
    matrix: MatrixResult
    missing_exclusions: list[dict[str, str]] = field(default_factory=list)  # client stacks
    missing_policies: list[str] = field(default_factory=list)  # MSP stacks: Part A / Part B not found

    @property
    def exit_code(self) -> int:
        if self.matrix.failures:
            return EXIT_BROKEN
        return EXIT_MISSING_EXCLUSIONS if self.missing_exclusions else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "tenantId": self.tenant_id,
            "matrix": self.matrix.to_json(),
            "missingExclusions": self.missing_exclusions,
            "missingPolicies": self.missing_policies,
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


def read_tenant(graph_url: str, tenant_id: str, token: Callable[[], str]) -> LiveTenant:
    """Every policy and named location of the tenant (all pages), through GETs only."""
    with GraphClient(graph_url, tenant_id, token) as graph:
        return LiveTenant(tenant_id, graph.list_all(POLICIES), graph.list_all(NAMED_LOCATIONS))


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


def verify(
    stack: str,
    config: StackConfig,
    live: LiveTenant,
    extra: Sequence[Scenario] = (),
    *,
    mfa_trusted_ips: Iterable[str] | None = None,
) -> VerifyReport:
    """The matrix over the live policies, and what the tenant lacks for this stack."""
    matrix = run_matrix(config, live.policies, live.named_locations, extra, mfa_trusted_ips=mfa_trusted_ips)
    if isinstance(config, ClientStack):
        return VerifyReport(stack, live.tenant_id, matrix, missing_exclusions=missing_exclusions(config, live.policies))
    names = {str(p.get("displayName")) for p in live.policies}
    expected = (config.technician_access.display_name, config.service_account.display_name)
    return VerifyReport(stack, live.tenant_id, matrix, missing_policies=[n for n in expected if n not in names])


def verify_stack(stack: str, stack_file: Path, root: Path = ROOT) -> VerifyReport:
    """Config, user scenarios and the live tenant → the report. Raises ConfigError, ScenarioFileError,
    OSError, GraphError, CredentialError, requests.RequestException."""
    config = config_from_stack_file(stack_file)
    extra = user_scenarios(config, root)
    live = read_tenant(config.graph_url, tenant_of(config), token_source(config))
    return verify(stack, config, live, extra)


# --- output ---------------------------------------------------------------------------------------

_STYLES = {Status.OK: ("✓", "green"), Status.FAIL: ("✗", "red"), Status.UNCERTAIN: ("?", "yellow")}


def matrix_table(result: MatrixResult, title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for column in ("", "scenario", "sign-in", "expected", "actual", "responsible"):
        table.add_column(column, overflow="fold")
    for row in result.rows:
        mark, style = _STYLES[row.status]
        table.add_row(
            f"[{style}]{mark}[/]",
            row.name,
            row.sign_in.replace("; ", "\n"),
            row.expected,
            f"[{style}]{row.actual}[/]",
            "\n".join(row.responsible),
        )
    return table


def print_matrix(result: MatrixResult, console: Console, title: str) -> None:
    console.print(matrix_table(result, title))
    summary = f"{len(result.rows)} scenario(s): {len(result.rows) - len(result.failures) - len(result.uncertain)} ok"
    if result.failures:
        summary += f", [red]{len(result.failures)} broken[/]"
    if result.uncertain:
        summary += (
            f", [yellow]{len(result.uncertain)} uncertain[/] (they depend on conditions that cannot be "
            "evaluated offline: flagged, not failed)"
        )
    console.print(summary)


def print_report(report: VerifyReport, console: Console) -> None:
    print_matrix(report.matrix, console, f"scenario matrix: stack {report.stack}, live tenant {report.tenant_id}")
    for name in report.missing_policies:
        console.print(f"[red]✗[/] no policy named '{name}' in the tenant: has `pulumi up` run for this stack?")
    if report.missing_exclusions:
        table = Table(title="client policies in scope still without the MSP exclusion")
        for column in ("policy", "id", "state"):
            table.add_column(column)
        for row in report.missing_exclusions:
            table.add_row(row["displayName"], row["id"], row["state"], style="yellow")
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening verify", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--stack", default="prod", help="stack name: reads Pulumi.<stack>.yaml (default prod)")
    parser.add_argument("--stack-file", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    args = parser.parse_args(argv)
    console = Console()
    import requests  # here, not at the top: `make plan` imports this module and never sends a request

    try:
        report = verify_stack(args.stack, args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml")
    except (ConfigError, ScenarioFileError, OSError) as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except (GraphError, credentials.CredentialError, requests.RequestException) as error:
        console.print(f"[red]could not read the tenant's policies:[/] {error}", highlight=False)
        return 2
    print_report(report, console)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
