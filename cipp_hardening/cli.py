"""`cipp-hardening <command> [options]`: the console entry point (pyproject `[project.scripts]`).

The Makefile targets call it; scripts and CI should call it directly, because make turns every failing
exit code into 2 while each command documents its own (docs/commands.md).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

# name → (module under cipp_hardening.commands, one line for the overview)
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("plan", "offline plan of a stack: resources, Graph bodies, scenario matrix (no CLI, no credentials)"),
    "verify": ("verify", "read-only check of a deployed stack against the tenant's live policies"),
    "promote": ("promote", "Part A from report-only to On, on the evidence of the sign-in logs"),
    "onboard": ("onboard", "write client stack files (Part D): one, or every tenant CIPP lists (--from cipp)"),
    "fleet": ("fleet", "run preview/up/refresh over many stacks through the Automation API"),
    "fleet-ci": ("fleet_ci", "CI helpers: the workflows' stack matrix and the plan's PR comment"),
    "demo": ("demo", "the whole article end to end on loopback emulators, no Azure"),
    "snapshot": ("snapshot", "save a tenant's policies and the config's names, read-only, for offline plans"),
    "adopt": ("adopt", "take over the named location and policies the article made by hand (read-only on Graph)"),
    "scanners": ("scanners", "the Maester and ScubaGear config files for a stack, and what Part D changes in them"),
}

EXIT_USAGE = 2


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return (
        "usage: cipp-hardening <command> [options]\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\n`cipp-hardening <command> --help` for a command's options and exit codes (docs/commands.md)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0 if args else EXIT_USAGE
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"cipp-hardening: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return EXIT_USAGE
    # azure-identity logs each credential that fails; the commands report them all in one message instead.
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    module = importlib.import_module(f"cipp_hardening.commands.{COMMANDS[name][0]}")
    try:
        return int(module.main(rest))
    except BrokenPipeError:  # `cipp-hardening plan --json - | head`: the reader left, not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
