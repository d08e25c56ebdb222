"""`cipp-hardening scanners --stack STACK --out DIR`: the files Maester and ScubaGear need after `pulumi up`.

Offline like `plan` (the same inputs: the stack file, its snapshots, the directory snapshot for names).
For the MSP stack: DIR/maester-config.json (GlobalSettings.EmergencyAccessAccounts) and DIR/scubagear.yaml
(CapExclusions naming the break-glass accounts). For a client stack: DIR/scubagear.yaml allow-listing Part D's
exclusion for the ScubaGear controls of the policies it touches, and DIR/scanner-report.md naming each client
policy whose Maester/ScubaGear verdict Part D changes, with the reason (docs/scanners.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from cipp_hardening import report_output
from cipp_hardening.commands.plan import ROOT, build_plan, prepare, resolved_config
from cipp_hardening.config import ConfigError, MspStack
from cipp_hardening.inventory import snapshot_path
from cipp_hardening.offline import OfflineRunError
from cipp_hardening.offline_inputs import OfflineInputError
from cipp_hardening.policy_files import PolicyFileError, load_policy_file, load_policy_folder
from cipp_hardening.scanners import client_findings, client_report, maester_config, msp_scubagear
from cipp_hardening.scenario_files import config_from_stack_file
from cipp_hardening.yamlfile import YamlFileError

EXIT_CODES = """exit codes:
  0  the files were written
  2  error: invalid stack config, unreadable snapshot, the program failed, or DIR cannot be written;
     nothing is written

docs/scanners.md says what each file is for and which scanner source defines its format."""

SCUBAGEAR_HEADER = (
    "# ScubaGear configuration fragment written by `cipp-hardening scanners` (docs/scanners.md).\n"
    "# Merge the Aad entries into your ScubaGear config: they allow-list only what this project adds.\n"
)


class ScannersError(RuntimeError):
    """A reason to write nothing."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening scanners",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="prod", help="stack name: reads Pulumi.<stack>.yaml (default prod)")
    parser.add_argument("--stack-file", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--policies", type=Path, help="client stacks: the tenant's exported policies (folder/file)")
    parser.add_argument("--directory", type=Path, help="resolve the config's names from this directory snapshot")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write the files into")
    args = parser.parse_args(argv)
    console = report_output.make_console()
    try:
        files = build_files(args.stack, args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml", args)
        write_files(args.out, files)
    except (ScannersError, ConfigError, OfflineInputError, YamlFileError, PolicyFileError, OSError) as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 2
    for name in files:
        console.print(f"wrote {args.out / name}", highlight=False)
    return 0


def build_files(stack: str, stack_file: Path, args: argparse.Namespace) -> dict[str, str]:
    """File name → text; raises before anything is written."""
    options = {"policies": args.policies, "cippClients": None, "directory": args.directory}
    _, inputs = prepare(stack, stack_file, options)
    with inputs.environment():
        try:
            document = build_plan(stack, stack_file)
        except OfflineRunError as error:
            messages = error.run.messages("error") or [str(error.cause)]
            raise ScannersError(f"the program failed for stack {stack}: " + "; ".join(messages)) from error
        config = resolved_config(config_from_stack_file(stack_file), document.outputs)
        if isinstance(config, MspStack):
            return {
                "maester-config.json": json.dumps(maester_config(config), indent=2) + "\n",
                "scubagear.yaml": SCUBAGEAR_HEADER + yaml.safe_dump(msp_scubagear(config), sort_keys=False),
            }
        snapshot = snapshot_path()
        if snapshot is None:
            raise ScannersError(
                f"stack {stack}: no snapshot of the client's policies to read; run `cipp-hardening snapshot "
                f"--stack {stack}` first or pass --policies (docs/commands.md)"
            )
        policies = load_policy_folder(snapshot) if snapshot.is_dir() else load_policy_file(snapshot)
    findings = client_findings(config, policies)
    return {
        "scubagear.yaml": SCUBAGEAR_HEADER + yaml.safe_dump(findings.allow_list, sort_keys=False),
        "scanner-report.md": client_report(config, findings),
    }


def write_files(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
