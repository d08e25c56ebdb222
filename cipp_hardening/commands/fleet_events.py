"""A stack's `preview` and `up` for the fleet, with their results read from the engine's own events.

pulumi.automation's `Stack.up` runs the CLI three more times after every update: `pulumi stack output --json`
twice (masked, then `--show-secrets`, `LocalWorkspace.stack_outputs`) and `pulumi stack history --page-size 1`
(`Stack.info`), and the fleet read a preview's outputs with `stack output` twice again. Each of those CLI runs
loads and decrypts the stack's state; with the passphrase secrets provider each costs its key derivation. Under
the real CLI these runs were about a third of a converged client stack's CPU (BENCHMARKS.md §10).

The engine already says both things during the operation. With `--event-log` (the flag the Automation API itself
passes, shown only with `PULUMI_DEBUG_COMMANDS`, pulumi/pulumi pkg/cmd/pulumi/operations/up.go and preview.go) the
CLI writes every engine event as a JSON line (pkg/backend/display/display.go, `startEventLogger`):

* the `summaryEvent`'s `resourceChanges`: the operation counts `pulumi stack history` would repeat;
* the root stack's last `resOutputsEvent`: `metadata.new.outputs` is what an `up` leaves in the state, and
  `metadata.old.outputs` what the last `up` left (what a preview reports). Secret values arrive blinded
  (`ConvertEngineEvent(e, showSecrets=false)` with `config.BlindingCrypter`): no plaintext ever reaches us, and
  a secret output is left out of the report as before.

The log is a file written by the CLI and read once it has exited, so no event can be missed. The command runs
through the workspace's `PulumiCommand.run` (the Automation API's own runner: `--non-interactive`, the same error
types), with the flags `Stack.up`/`Stack.preview` pass (pulumi/automation/_stack.py).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_TYPE = "pulumi:pulumi:Stack"
# The signature key of a serialized secret (pulumi/pulumi sdk/go/common/resource/sig, `Secret`): a blinded
# output is {SECRET_SIG: SECRET_MARK, "ciphertext": "[secret]"}.
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 (a public marker, not a secret)
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105
EXEC_KIND = "auto.local"  # pulumi.automation's ExecKind.LOCAL: a program in a work directory


class EventLogError(RuntimeError):
    """The CLI succeeded but its event log lacks what every run writes (a summary)."""


@dataclass
class EventTally:
    """What the fleet needs from one operation's engine events."""

    changes: dict[str, int] | None = None
    stack_outputs_before: dict[str, Any] = field(default_factory=dict)
    stack_outputs_after: dict[str, Any] = field(default_factory=dict)

    def add(self, event: Mapping[str, Any]) -> None:
        summary = event.get("summaryEvent")
        if isinstance(summary, Mapping):
            self.changes = {str(op): int(n) for op, n in (summary.get("resourceChanges") or {}).items()}
        outputs = event.get("resOutputsEvent")
        metadata = outputs.get("metadata") if isinstance(outputs, Mapping) else None
        if isinstance(metadata, Mapping) and metadata.get("type") == STACK_TYPE:
            self.stack_outputs_before = _non_secret((metadata.get("old") or {}).get("outputs"))
            self.stack_outputs_after = _non_secret((metadata.get("new") or {}).get("outputs"))


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SECRET_SIG) == SECRET_MARK


def _non_secret(outputs: Any) -> dict[str, Any]:
    """Stack outputs without the secret ones (they arrive blinded, and are left out of every report)."""
    if not isinstance(outputs, Mapping):
        return {}
    return {str(key): value for key, value in outputs.items() if not _is_secret(value)}


def read_event_log(path: Path) -> EventTally:
    tally = EventTally()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                tally.add(json.loads(line))
    if tally.changes is None:
        raise EventLogError(f"the engine's event log has no summary event ({path.name})")
    return tally


def operation_arguments(
    action: str,
    stack: str,
    event_log: Path,
    *,
    policy_packs: Sequence[str] = (),
    refresh: bool = False,
    expect_no_changes: bool = False,
) -> list[str]:
    """The CLI arguments `Stack.up` / `Stack.preview` build for these options (pulumi/automation/_stack.py)."""
    args = ["up", "--yes", "--skip-preview"] if action == "up" else ["preview"]
    for pack in policy_packs:
        args += ["--policy-pack", pack]
    if refresh:
        args.append("--refresh")
    if expect_no_changes:
        args.append("--expect-no-changes")
    return [
        *args,
        "--color",
        "never",
        "--exec-kind",
        EXEC_KIND,
        "--event-log",
        str(event_log),
        "--stack",
        stack,
    ]


@dataclass(frozen=True)
class StackOf:
    """A stack by name in a `pulumi.automation` workspace: all an operation run with `--stack` needs."""

    name: str
    workspace: Any


def run_operation(
    target: StackOf,
    action: str,
    log: Callable[[str], None],
    *,
    policy_packs: Sequence[str] = (),
    refresh: bool = False,
    expect_no_changes: bool = False,
) -> EventTally:
    """`pulumi preview` or `pulumi up` of a stack; raises the Automation API's CommandError when the CLI fails
    (StackNotFoundError for a stack with no state), as `Stack.up` does."""
    workspace = target.workspace
    env = {"PULUMI_DEBUG_COMMANDS": "true"}  # shows --event-log, as Stack._run_pulumi_cmd_sync sets it
    if getattr(workspace, "pulumi_home", None):
        env["PULUMI_HOME"] = workspace.pulumi_home
    env.update(getattr(workspace, "env_vars", None) or {})
    with tempfile.TemporaryDirectory(prefix="fleet-events-") as folder:
        event_log = Path(folder) / f"{action}.jsonl"
        args = operation_arguments(
            action,
            target.name,
            event_log,
            policy_packs=policy_packs,
            refresh=refresh,
            expect_no_changes=expect_no_changes,
        )
        workspace.pulumi_command.run(args, workspace.work_dir, env, log)
        return read_event_log(event_log)
