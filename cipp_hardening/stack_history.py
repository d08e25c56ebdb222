"""When the stack was last deployed: the start of its newest `update` in `pulumi stack history`.

The history is the engine's own record of every `pulumi up` (kind "update", with start and end times), kept by
the backend whatever the program does; an output the program wrote could only say when the program ran, not
when the engine finished writing. The start is taken, not the end: every write of that run comes after it, so
a change by someone else during the run is not missed (docs/assurance.md "Changes by others").

Read through the Automation API with secrets hidden (`show_secrets=False`), and only where a Pulumi project
sits beside the stack file; otherwise, or when the CLI, the backend login or the stack is missing, the reason
is returned instead of a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEPLOYMENT_KINDS = frozenset({"update"})
PAGE = 50


def newest_deployment(summaries: Iterable[Any]) -> datetime | None:
    """The start of the newest update among UpdateSummary-like objects (`kind`, `start_time`)."""
    starts = [s.start_time for s in summaries if getattr(s, "kind", None) in DEPLOYMENT_KINDS and s.start_time]
    if not starts:
        return None
    newest: datetime = max(starts)
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)


def last_deployment(stack: str, stack_file: Path) -> datetime | str:
    """The start of the stack's last `pulumi up`, or why it cannot be told."""
    project = stack_file.resolve().parent
    if not (project / "Pulumi.yaml").is_file():
        return f"no Pulumi project beside {stack_file.name}, so no stack history to read (give --since)"
    from pulumi import automation as auto

    try:
        history = auto.select_stack(stack, work_dir=str(project)).history(page_size=PAGE, show_secrets=False)
    except FileNotFoundError:
        return "the Pulumi CLI is not installed, so the stack's history cannot be read (give --since)"
    except auto.errors.CommandError as error:
        lines = (line.split("error:", 1)[1].strip() for line in str(error).splitlines() if "error:" in line)
        first = next(lines, "")
        return f"`pulumi stack history` failed for stack {stack}{': ' + first if first else ''} (give --since)"
    newest = newest_deployment(history)
    if newest is None:
        return f"stack {stack} has never been deployed (no `pulumi up` in its history)"
    return newest
