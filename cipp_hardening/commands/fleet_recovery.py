"""After a killed run: what the fleet runner may undo, and when (docs/fleet.md, "After a killed run").

A `pulumi up` killed outright leaves its lock in the state backend (the diy backend's
`.pulumi/locks/<org>/<project>/<stack>/<id>.json`: pid, user, host, time, pkg/backend/diy/lock.go),
so every later run fails with "the stack is currently locked", and its unfinished resource operations
in the checkpoint's `pending_operations`. `pulumi cancel` deletes every lock of the stack
(diyBackend.CancelCurrentUpdate) without asking whose it is, so it must never meet a live run.

The rule here: a lock is cancelled only when its holder is provably gone, or on the operator's word.
- Provably gone: the lock was taken on this machine by a process that no longer exists, after our own
  previous fleet run started, for a stack that run left in flight (`.fleet/last-run.json` still says
  `running`), and that runner is gone too. Two records agree that the run was killed.
- `--recover`: the operator says no run of these stacks is alive elsewhere. Even then a lock held by a
  live process on this machine is never cancelled.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

RECOVERY_DOC = "docs/fleet.md#after-a-killed-run"
_LOCKED = "the stack is currently locked by"
# pkg/backend/diy/lock.go checkForLock: "\n  <url>: created by <user>@<host> (pid <pid>) at <RFC 3339 time>"
_HOLDER = re.compile(r"created by (?P<user>.+?)@(?P<host>\S+) \(pid (?P<pid>\d+)\) at (?P<at>\S+)")


class StackLockedError(RuntimeError):
    """The stack is locked and this run may not cancel the lock."""


@dataclass(frozen=True)
class LockHolder:
    user: str
    host: str
    pid: int
    at: datetime

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}) since {self.at.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def lock_holders(error_text: str) -> list[LockHolder] | None:
    """The holders a lock error names, or None when the error is not the backend's lock error."""
    if _LOCKED not in error_text:
        return None
    holders = []
    for match in _HOLDER.finditer(error_text):
        try:
            at = datetime.fromisoformat(match["at"].replace("Z", "+00:00"))
        except ValueError:
            return None  # a lock we cannot read is a lock we do not touch
        holders.append(LockHolder(match["user"], match["host"], int(match["pid"]), at))
    return holders or None


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one owned by another user counts).

    A zombie does not: it has exited and only waits to be reaped, which a container's first process
    may never do, so a killed run's pid can linger as one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False  # no /proc (not Linux): the signal test above is all there is
    return stat[stat.rindex(")") + 2 :].startswith("Z")  # the state follows the "(command)" field


@dataclass(frozen=True)
class PreviousRun:
    """The fleet run `.fleet/last-run.json` describes, when it never finished."""

    pid: int
    host: str
    started: datetime
    in_flight: frozenset[str]


def unfinished_run(record: Mapping[str, Any] | None) -> PreviousRun | None:
    """The previous run, if its record says it was still going (finished is null)."""
    if not record or record.get("finished") is not None:
        return None
    try:
        runner = record["runner"]
        started = datetime.fromisoformat(str(runner["started"]))
        running = frozenset(str(s) for s, r in record["stacks"].items() if r.get("result") == "running")
        return PreviousRun(int(runner["pid"]), str(runner["host"]), started, running)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class RecoveryPolicy:
    previous: PreviousRun | None = None
    recover: bool = False  # --recover: the operator vouches that no run of the selected stacks is alive
    hostname: str = field(default_factory=socket.gethostname)
    alive: Callable[[int], bool] = process_alive

    def previous_runner_alive(self) -> bool:
        return self.previous is not None and self.previous.host == self.hostname and self.alive(self.previous.pid)

    def may_cancel(self, stack: str, holders: list[LockHolder]) -> str:
        """Why these locks may be cancelled; raises StackLockedError when they may not."""
        described = "; ".join(h.describe() for h in holders)
        live = [h for h in holders if h.host == self.hostname and self.alive(h.pid)]
        if live:
            raise StackLockedError(f"{stack} is locked by a run that is still alive: {described}")
        if all(self._left_by_our_killed_run(stack, h) for h in holders):
            return f"the killed fleet run left its lock ({described})"
        if self.recover:
            return f"--recover: cancelled the lock of {described}"
        raise StackLockedError(
            f"{stack} is locked by {described}; if no run of it is alive, "
            f"run the fleet again with RECOVER=1 (see {RECOVERY_DOC})"
        )

    def _left_by_our_killed_run(self, stack: str, holder: LockHolder) -> bool:
        previous = self.previous
        return (
            previous is not None
            and not self.previous_runner_alive()
            and previous.host == self.hostname
            and stack in previous.in_flight
            and holder.host == self.hostname
            and not self.alive(holder.pid)
            and holder.at >= previous.started.replace(microsecond=0)
        )
