"""`make plan`: the offline plan of a stack — no Pulumi CLI, no credentials, no network.

Runs __main__.py against Pulumi.<stack>.yaml under a recording mock runtime and shows the resource
tree and, for each Conditional Access resource, the Graph v1.0 body pulumi-azuread will send.
`--json FILE` writes the same as a machine-readable document. The scenario matrix (cipp_hardening/scenarios.py)
shows what the policies do to the sign-ins that matter. The snapshots it reads (client policies, CIPP's API
clients, the directory for names) are chosen and checked by cipp_hardening/offline_inputs.py and listed first.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cipp_hardening import report_output
from cipp_hardening.arm_render import render_arm
from cipp_hardening.config import PROJECT, ConfigError, MspStack, StackConfig
from cipp_hardening.directory_names import describe, resolve_names
from cipp_hardening.graph_render import render, with_object_id
from cipp_hardening.inventory import snapshot_path
from cipp_hardening.offline import OfflineRun, OfflineRunError, redact_secrets, run_program, stack_file_config
from cipp_hardening.offline_inputs import OfflineInputError, OfflineInputs, choose, placeholder_notice
from cipp_hardening.policy_files import load_named_location_folder, load_policy_file, load_policy_folder
from cipp_hardening.report_output import print_matrix
from cipp_hardening.scenario_files import ScenarioFileError, config_from_stack_file, user_scenarios
from cipp_hardening.scenarios import MatrixResult, policies_after_apply, run_matrix
from cipp_hardening.yamlfile import YamlFileError, read_yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PlanDocument:
    stack: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    matrix: MatrixResult | None = None  # the scenario matrix over what the plan leaves in the tenant
    notices: list[str] = field(default_factory=list)  # said first: e.g. the example's placeholder ids
    inputs: list[str] = field(default_factory=list)  # the snapshot files read, and who named them

    def graph_objects(self, kind: str) -> list[dict[str, Any]]:
        """Rendered bodies with their (placeholder) ids: `policy` or `namedLocation`."""
        suffix = (
            "conditionalAccessPolicy:ConditionalAccessPolicy" if kind == "policy" else "namedLocation:NamedLocation"
        )
        return [r["graph"] for r in self.resources if r["type"].endswith(suffix) and r["graph"] is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "project": PROJECT,
            "stack": self.stack,
            "resources": self.resources,
            "outputs": self.outputs,
            "warnings": self.warnings,
            "notices": self.notices,
            "offlineInputs": self.inputs,
            **({"matrix": self.matrix.to_json()} if self.matrix is not None else {}),
        }


def build_plan(stack: str, stack_file: Path | None = None, overrides: dict[str, Any] | None = None) -> PlanDocument:
    """Run the program for `stack` offline and render every resource. Raises OfflineRunError."""
    config = stack_file_config(stack_file or ROOT / f"Pulumi.{stack}.yaml", PROJECT, overrides)
    run = run_program(ROOT / "__main__.py", config, project=PROJECT, stack=stack)
    return document_from_run(stack, run)


def plan_matrix(document: PlanDocument, stack_file: Path) -> MatrixResult | None:
    """The scenario matrix over the planned Graph bodies (MSP), or over the client's snapshot policies as
    `pulumi up` will leave them (client; None without a snapshot). Raises ConfigError, ScenarioFileError."""
    config = resolved_config(config_from_stack_file(stack_file), document.outputs)
    extra = user_scenarios(config, ROOT)
    if isinstance(config, MspStack):
        return run_matrix(config, document.graph_objects("policy"), document.graph_objects("namedLocation"), extra)
    snapshot = snapshot_path()
    if snapshot is None:
        return None
    policies = load_policy_folder(snapshot) if snapshot.is_dir() else load_policy_file(snapshot)
    locations = load_named_location_folder(snapshot) if snapshot.is_dir() else []
    return run_matrix(config, policies_after_apply(config, policies), locations, extra)


def resolved_config(config: StackConfig, outputs: dict[str, Any]) -> StackConfig:
    """The config with its names replaced by the ids the program resolved (the `resolvedNames` output)."""
    if not config.names:
        return config
    rows = outputs.get("resolvedNames") or []
    return resolve_names(config, {row["key"]: row["id"] for row in rows})


def document_from_run(stack: str, run: OfflineRun) -> PlanDocument:
    outputs = redact_secrets(run.outputs)
    document = PlanDocument(stack, outputs=dict(sorted(outputs.items())), warnings=run.messages("warning"))
    # Components register concurrently: sorted by URN, the plan (and its JSON) is the same run to run.
    for resource in sorted(run.resources, key=lambda r: r.urn):
        body = render(resource.type, resource.inputs)
        document.resources.append(
            {
                "urn": resource.urn,
                "type": resource.type,
                "name": resource.name,
                "parent": resource.parent,
                "custom": resource.custom,
                "inputs": redact_secrets({k: v for k, v in resource.inputs.items() if k != "__provider"}),
                "graph": with_object_id(body, resource.inputs.get("objectId")) if body is not None else None,
                "arm": render_arm(resource.type, resource.inputs),  # the ARM request (break-glass alerts)
            }
        )
    return document


def print_preamble(notices: Sequence[str], inputs: Sequence[str], console: Console) -> None:
    """What to know before reading the plan: notices, then the files it read besides the stack file."""
    for notice in notices:
        console.print(f"[bold yellow]notice:[/] {notice}", highlight=False)
    for line in inputs:
        console.print(f"[dim]offline input:[/] {line}", highlight=False)


def print_plan(document: PlanDocument, console: Console) -> None:
    console.print(_tree(document))
    for line in describe(document.outputs.get("resolvedNames") or []):
        console.print(f"[cyan]name resolved:[/] {line}", highlight=False)
    for resource in document.resources:
        if resource["graph"] is not None:
            body = {k: v for k, v in resource["graph"].items() if k != "id"}
            title = f"{resource['name']} → Microsoft Graph v1.0 body ({_short_type(resource['type'])})"
            console.print(Panel(_json_block(body, console), title=title))
        elif resource.get("arm") is not None:
            arm = resource["arm"]
            title = f"{resource['name']} → {arm['method']} {arm['path']}?api-version={arm['apiVersion']}"
            console.print(Panel(_json_block(arm["body"], console), title=title))
        elif resource["custom"] and not resource["type"].endswith(":CaExclusion"):
            title = f"{resource['name']} ({_short_type(resource['type'])}) inputs"
            console.print(Panel(_json_block(resource["inputs"], console), title=title))
    _print_client_tables(document.outputs, console)
    if document.matrix is not None:
        title = "scenario matrix: what the policies do to the sign-ins that matter, after `pulumi up`"
        print_matrix(document.matrix, console, title)
    if document.outputs:
        console.print(Panel(json.dumps(document.outputs, indent=2), title="stack outputs"))
    for warning in document.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(
        "[dim]Object ids are offline placeholders; Graph assigns the real ones on create. "
        "This shows what the program declares, not a diff against deployed state.[/]"
    )


def _json_block(value: Any, console: Console) -> RenderableType:
    """Highlighted JSON on a terminal; plain text elsewhere (CI logs, files), where colour is dropped
    anyway and highlighting (pygments) costs a fifth of the plan's run time."""
    text = json.dumps(value, indent=2)
    if not console.is_terminal:
        return Text(text)
    from rich.syntax import Syntax

    return Syntax(text, "json", word_wrap=True)


def _print_client_tables(outputs: dict[str, Any], console: Console) -> None:
    _policy_table(
        console,
        outputs.get("exclusionPlan"),
        "Part D: what apply will do to each client policy (from its current content)",
        "action",
        warn=lambda row: row["action"].startswith(("conflict", "widen")),
    )
    _policy_table(console, outputs.get("skippedPolicies"), "client policies left alone", "reason")


def _policy_table(
    console: Console, rows: Any, title: str, last: str, warn: Callable[[dict[str, str]], bool] = lambda _: False
) -> None:
    if not isinstance(rows, list) or not rows:
        return
    table = Table(title=title)
    for column in ("policy", "id", last):
        table.add_column(column)
    for row in rows:
        table.add_row(row["displayName"], row["id"], row[last], style="yellow" if warn(row) else None)
    console.print(table)


def _short_type(type_: str) -> str:
    return type_.split(":")[-1] if type_.startswith("azuread:") else type_


def _tree(document: PlanDocument) -> Tree:
    tree = Tree(f"[bold]{PROJECT}[/] stack [bold]{document.stack}[/]")
    nodes: dict[str | None, Tree] = {}
    by_urn = {r["urn"]: r for r in document.resources}
    for resource in document.resources:
        _attach(resource, by_urn, nodes, tree)
    return tree


def _attach(resource: dict[str, Any], by_urn: dict[str, Any], nodes: dict[str | None, Tree], root: Tree) -> Tree:
    if resource["urn"] in nodes:
        return nodes[resource["urn"]]
    parent = by_urn.get(resource["parent"])
    parent_node = _attach(parent, by_urn, nodes, root) if parent else root
    node = parent_node.add(f"{resource['name']}  [dim]{resource['type']}[/]")
    nodes[resource["urn"]] = node
    return node


EXIT_CODES = """exit codes (they reach the caller; `make plan` turns every failure into 2):
  0  planned; every invariant of the scenario matrix holds (uncertain rows are flagged, not failed)
  2  error: configuration, stack file (YAML with file:line), scenario file, snapshot not of this stack,
     a name that is unknown or ambiguous or needs a directory snapshot; nothing planned
  3  the scenario matrix finds a broken invariant
  5  an invariant cannot be proven offline (a guard row stays uncertain and assumptions.cannotProveOverride
     is not set)

docs/commands.md has every option and what the plan reads."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening plan",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="prod", help="stack name: reads Pulumi.<stack>.yaml (default prod)")
    parser.add_argument("--stack-file", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument(
        "--policies",
        type=Path,
        help="client stacks: read the tenant's policies from this folder/file of exports instead of Graph",
    )
    parser.add_argument(
        "--cipp-clients",
        type=Path,
        help="MSP stacks: read CIPP's API clients from this saved List body (JSON) for the unrestricted-clients check",
    )
    parser.add_argument(
        "--directory",
        type=Path,
        help="resolve the user principal names and group names of the config from this directory snapshot (JSON)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the plan as JSON to FILE ('-' for stdout only)")
    args = parser.parse_args(argv)
    console = report_output.make_console(stderr=args.json == "-")
    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    options = {"policies": args.policies, "cippClients": args.cipp_clients, "directory": args.directory}
    try:
        notices, inputs = prepare(args.stack, stack_file, options)
    except (OSError, YamlFileError, OfflineInputError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    print_preamble(notices, inputs.used, console)
    with inputs.environment():
        return _plan(args, stack_file, console, notices, inputs)


def prepare(stack: str, stack_file: Path, options: dict[str, Path | None]) -> tuple[list[str], OfflineInputs]:
    """Before the program runs: the notices to give first, and the offline inputs of the stack."""
    document = read_yaml(stack_file) or {}
    raw = {str(k).removeprefix(f"{PROJECT}:"): v for k, v in (document.get("config") or {}).items()}
    notice = placeholder_notice(stack_file, raw)
    notices = [notice] if notice else []
    try:
        config = config_from_stack_file(stack_file)
    except ConfigError:  # the program's run reports every problem, each naming its key
        return notices, OfflineInputs()
    return notices, choose(stack, config, raw, options, ROOT)


def _plan(
    args: argparse.Namespace, stack_file: Path, console: Console, notices: list[str], inputs: OfflineInputs
) -> int:
    try:
        document = build_plan(args.stack, stack_file)
    except OfflineRunError as exc:
        errors = exc.run.messages("error") or [str(exc.cause)]
        console.print(f"[red]The program failed for stack {args.stack}:[/]")
        for message in errors:
            console.print(f"  [red]✗[/] {message}", highlight=False)
        return 2
    document.notices, document.inputs = notices, inputs.used
    try:
        document.matrix = plan_matrix(document, stack_file)
    except (ConfigError, ScenarioFileError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    # Exit 3: an invariant of the scenario matrix is broken; 5: a guard row cannot be proven (docs/assurance.md).
    status = document.matrix.exit_code if document.matrix is not None else 0
    reasons = report_output.matrix_reasons(document.matrix) if document.matrix is not None else []
    if args.json == "-":
        json.dump(document.to_json(), sys.stdout, indent=2)
        console.print(report_output.verdict_line(status, reasons), soft_wrap=True)  # stderr here
        return status
    print_plan(document, console)
    if args.json:
        Path(args.json).write_text(json.dumps(document.to_json(), indent=2), encoding="utf-8")
        console.print(f"plan written to {args.json}")
    console.print(report_output.verdict_line(status, reasons), soft_wrap=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
