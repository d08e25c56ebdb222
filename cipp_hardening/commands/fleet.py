"""`make fleet ACTION=preview|up|refresh [STACKS='client-*'] [PARALLEL=8] [RESUME=1]`.

Runs one Pulumi action over many stacks of this project (one per client tenant) with bounded
concurrency, a live progress display, one log file per stack under `.fleet/logs/`, continue-on-error,
a final table and a non-zero exit when any stack failed. `--resume` skips the stacks that succeeded in
the last run of the same action (recorded in `.fleet/last-run.json`, which also says which stacks are in
flight while the run goes on: the next run recovers the stacks a killed run left locked, and `--recover`
cancels locks it cannot prove dead, docs/fleet.md "After a killed run"). Every run also writes a Markdown
summary to `.fleet/summary.md` (per stack: result, policies managed, conflicts, skipped policies,
duration; then the conflicts and the failures), and appends it to `--summary FILE` too: the workflows
pass `$GITHUB_STEP_SUMMARY` (docs/fleet.md).

The Pulumi engine does the work: each stack runs through the Automation API (`pulumi.automation`,
LocalWorkspace over this directory), which drives the Pulumi CLI; a preview or an up is one CLI run
whose results are read from the engine's event log (fleet_events.py). Everything else here (stack
discovery, filtering, scheduling, resume, reporting) is plain Python behind the `StackRunner`
interface, so it is tested with an in-process stand-in.

Concurrency: Conditional Access allows 1 request/s per tenant, so a client stack cannot go faster
by itself; parallelism across tenants is the lever. Each running stack costs a CLI, a language host,
the program and a dynamic-provider host: on a 2-core runner their CPU, not Graph, bounds a large
fleet (BENCHMARKS.md §10).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cipp_hardening.commands.fleet_events import StackOf, run_operation
from cipp_hardening.commands.fleet_recovery import (
    RECOVERY_DOC,
    RecoveryPolicy,
    lock_holders,
    unfinished_run,
)
from cipp_hardening.config import PROJECT
from cipp_hardening.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ("preview", "up", "refresh")
SUCCEEDED, FAILED, SKIPPED, RUNNING = "succeeded", "failed", "skipped", "running"
STATE_FILE = "last-run.json"
SUMMARY_FILE = "summary.md"
CLI_MISSING = (
    "the fleet runner drives the Pulumi CLI through the Automation API, and no `pulumi` executable was found "
    "on PATH. Install the Pulumi CLI (https://www.pulumi.com/docs/install/) and log in to the state backend "
    "(`pulumi login azblob://...`), then run again."
)

LogFn = Callable[[str], None]


class FleetSetupError(RuntimeError):
    """The fleet cannot start at all (no CLI, no matching stacks...): one clear message, exit 2."""


@dataclass(frozen=True)
class Outcome:
    """What one stack operation reported: resource operation counts, and the stack's (non-secret) outputs."""

    changes: Mapping[str, int] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    recovered: str = ""  # what was undone of a killed run before the action could run (docs/fleet.md)

    @property
    def changed(self) -> int:
        return sum(count for op, count in self.changes.items() if op != "same")


@dataclass(frozen=True)
class StackResult:
    stack: str
    result: str  # succeeded | failed | skipped
    changed: int | None = None
    duration_s: float = 0.0
    error: str = ""
    log_path: str = ""
    managed: int | None = None  # policies the stack manages (from its outputs; None when unknown)
    conflicts: tuple[str, ...] = ()  # "<policy id>: <why not written>" (client stacks, onConflict=report)
    skipped_policies: int | None = None  # client policies left out of scope (state, skipPolicyIds)
    recovered: str = ""  # the killed run's lock and pending operations this run cleared first


class StackRunner(Protocol):
    """Runs one action on one stack; raises on failure. `log` receives the engine's output lines."""

    def run(self, stack: str, action: str, log: LogFn) -> Outcome: ...


class FleetReporter(Protocol):
    def started(self, stack: str) -> None: ...

    def finished(self, result: StackResult) -> None: ...


class SilentReporter:
    def started(self, stack: str) -> None:
        pass

    def finished(self, result: StackResult) -> None:
        pass


# -- stacks and filters ------------------------------------------------------------------------------
def discover_stacks(project_dir: Path) -> list[str]:
    """Stack names from the `Pulumi.<stack>.yaml` files next to Pulumi.yaml, sorted."""
    names = {p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml")}
    return sorted(n for n in names if n)


def parse_patterns(text: str) -> list[str]:
    """`'client-*, prod'` → ['client-*', 'prod'] (commas and/or whitespace separate patterns)."""
    return [p for p in re.split(r"[\s,]+", text.strip()) if p]


def select_stacks(stacks: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """Stacks matching any shell-style pattern, in the given order, each once."""
    return [s for s in dict.fromkeys(stacks) if any(fnmatch.fnmatchcase(s, p) for p in patterns)]


# -- resume ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LastRun:
    action: str
    results: Mapping[str, str]  # stack -> succeeded | failed

    def succeeded(self) -> set[str]:
        return {stack for stack, result in self.results.items() if result == SUCCEEDED}


def load_last_run(path: Path) -> LastRun | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LastRun(str(raw["action"]), {str(k): str(v["result"]) for k, v in raw["stacks"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def stacks_to_skip(last: LastRun | None, action: str, stacks: Sequence[str]) -> set[str]:
    """With --resume: the stacks that succeeded in the last run, if that run was the same action."""
    if last is None or last.action != action:
        return set()
    return last.succeeded() & set(stacks)


def run_record(
    action: str,
    results: Sequence[StackResult],
    carried: LastRun | None,
    *,
    running: Iterable[str] = (),
    runner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state `--resume` reads next time. Stacks skipped now keep their earlier success.

    While the run goes on (`running` given), `finished` is null and those stacks say `running`: a runner
    killed mid-run leaves exactly that behind, which the next run reads (docs/fleet.md, "After a killed run")."""
    stacks: dict[str, dict[str, Any]] = {}
    if carried is not None and carried.action == action:
        stacks = {s: {"result": r} for s, r in carried.results.items()}
    for result in results:
        if result.result == SKIPPED:
            stacks[result.stack] = {"result": SUCCEEDED, "carried": True}
        else:
            stacks[result.stack] = {k: v for k, v in asdict(result).items() if k != "stack"}
    in_flight = list(running)
    stacks.update({stack: {"result": RUNNING} for stack in in_flight})
    finished = None if in_flight or runner is not None else datetime.now(UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {"action": action, "finished": finished, "stacks": stacks}
    if runner is not None:
        record["runner"] = dict(runner)
    return record


class RunJournal:
    """Keeps `.fleet/last-run.json` current during a run: a stack is `running` from its start to its end.

    A reporter wrapper, so run_fleet needs no knowledge of it. Each write replaces the file whole."""

    def __init__(self, path: Path, action: str, carried: LastRun | None, inner: FleetReporter) -> None:
        self.path, self.action, self.carried, self.inner = path, action, carried, inner
        self.runner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._running: list[str] = []
        self._results: list[StackResult] = []
        self._lock = threading.Lock()

    def started(self, stack: str) -> None:
        with self._lock:
            self._running.append(stack)
            self._write(run_record(self.action, self._results, self.carried, running=self._running, runner=self.runner))
        self.inner.started(stack)

    def finished(self, result: StackResult) -> None:
        with self._lock:
            self._running.remove(result.stack)
            self._results.append(result)
            self._write(run_record(self.action, self._results, self.carried, running=self._running, runner=self.runner))
        self.inner.finished(result)

    def close(self, results: Sequence[StackResult]) -> None:
        self._write(run_record(self.action, results, self.carried))

    def open(self) -> None:
        self._write(run_record(self.action, [], self.carried, runner=self.runner))

    def _write(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(record, indent=2), encoding="utf-8")
        partial.replace(self.path)


# -- scheduling --------------------------------------------------------------------------------------
def short_error(text: str, limit: int = 160) -> str:
    """The part of an engine error worth a table cell: from the first `error:` on, else the last line.

    Automation API errors read `code: 255 / stdout: ... / stderr: error: ...`; the CLI's own message
    starts at `error:`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "failed"
    marked = next((line for line in lines if "error:" in line.lower()), None)
    chosen = marked[marked.lower().index("error:") :] if marked else lines[-1]
    return chosen if len(chosen) <= limit else chosen[: limit - 1] + "…"


def run_one(
    stack: str, action: str, runner: StackRunner, log_dir: Path, clock: Callable[[], float] = time.monotonic
) -> StackResult:
    """Run one stack, logging to `log_dir/<stack>.log`; any exception becomes a failed result."""
    log_path = log_dir / f"{stack}.log"
    started = clock()
    with log_path.open("w", encoding="utf-8") as log_file:
        lock = threading.Lock()

        def log(line: str) -> None:
            with lock:
                log_file.write(line if line.endswith("\n") else line + "\n")
                log_file.flush()

        log(f"# {action} {stack} started {datetime.now(UTC).isoformat(timespec='seconds')}")
        try:
            outcome = runner.run(stack, action, log)
        except Exception as exc:  # continue-on-error: one stack's failure never stops the fleet
            log(f"# FAILED: {type(exc).__name__}: {exc}")
            return StackResult(stack, FAILED, None, clock() - started, short_error(str(exc)), str(log_path))
        log(f"# succeeded: {dict(outcome.changes)}")
    managed, conflicts, skipped = stack_facts(outcome.outputs)
    duration = clock() - started
    return StackResult(
        stack, SUCCEEDED, outcome.changed, duration, "", str(log_path), managed, conflicts, skipped, outcome.recovered
    )


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list | tuple | Mapping) else None


def stack_facts(outputs: Mapping[str, Any]) -> tuple[int | None, tuple[str, ...], int | None]:
    """(policies managed, conflicts, skipped policies) from a stack's outputs (__main__.py exports).

    A client stack manages `managedPolicyIds`; the MSP stack its Part A and B policies (and the workload
    identity policies when it has them)."""
    if not outputs:
        return None, (), None
    managed = _count(outputs.get("managedPolicyIds"))
    if managed is None:
        singles = [outputs.get(key) for key in ("technicianPolicyId", "serviceAccountPolicyId")]
        found = [value for value in singles if isinstance(value, str) and value]
        managed = len(found) + (_count(outputs.get("workloadIdentityPolicyIds")) or 0) if found else None
    conflicts = tuple(
        f"{entry.get('id', '?')}: {entry.get('detail', '')}".strip()
        for entry in outputs.get("exclusionConflicts") or []
        if isinstance(entry, Mapping)
    )
    return managed, conflicts, _count(outputs.get("skippedPolicies"))


def run_fleet(
    stacks: Sequence[str],
    action: str,
    runner: StackRunner,
    *,
    parallel: int,
    log_dir: Path,
    skip: Iterable[str] = (),
    reporter: FleetReporter | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[StackResult]:
    """Run `action` over `stacks`, at most `parallel` at a time. Results in the order of `stacks`."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    reporter = reporter or SilentReporter()
    log_dir.mkdir(parents=True, exist_ok=True)
    skipped = set(skip)
    results: dict[str, StackResult] = {
        s: StackResult(s, SKIPPED, error="succeeded in the last run") for s in stacks if s in skipped
    }

    def task(stack: str) -> StackResult:
        reporter.started(stack)
        result = run_one(stack, action, runner, log_dir, clock)
        reporter.finished(result)
        return result

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="fleet") as pool:
        futures: dict[Future[StackResult], str] = {pool.submit(task, s): s for s in stacks if s not in skipped}
        try:
            wait(futures)
        except KeyboardInterrupt:  # stop scheduling; stacks already running finish (the CLI gets the signal too)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    for future, stack in futures.items():
        results[stack] = future.result()
    return [results[s] for s in stacks]


def exit_code(results: Sequence[StackResult]) -> int:
    return 1 if any(r.result == FAILED for r in results) else 0


# -- reporting ---------------------------------------------------------------------------------------
def summary_rows(results: Sequence[StackResult]) -> list[tuple[str, str, str, str, str]]:
    """(stack, result, resources changed, duration, error) per stack, as the final table shows them."""
    return [
        (
            r.stack,
            r.result,
            "-" if r.changed is None else str(r.changed),
            "-" if r.result == SKIPPED else f"{r.duration_s:.1f}s",
            r.error,
        )
        for r in results
    ]


def summary_table(action: str, results: Sequence[StackResult]) -> Table:
    counts = {kind: sum(r.result == kind for r in results) for kind in (SUCCEEDED, FAILED, SKIPPED)}
    title = f"fleet {action}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    table = Table(title=title)
    for column in ("stack", "result", "changed", "duration", "error"):
        table.add_column(column, overflow="fold")
    styles = {SUCCEEDED: "green", FAILED: "red", SKIPPED: "dim"}
    for row, result in zip(summary_rows(results), results, strict=True):
        table.add_row(*(Text(cell) for cell in row), style=styles[result.result])  # no markup in errors
    return table


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def markdown_summary(action: str, results: Sequence[StackResult]) -> str:
    """The run as Markdown for a job summary: one row per stack, then every conflict and failure."""
    counts = {kind: sum(r.result == kind for r in results) for kind in (SUCCEEDED, FAILED, SKIPPED)}
    icons = {SUCCEEDED: "✅", FAILED: "❌", SKIPPED: "⏭️"}
    lines = [
        f"### fleet {action}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n),
        "",
        "| stack | result | policies managed | conflicts | skipped | changed | duration |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        duration = "-" if r.result == SKIPPED else f"{r.duration_s:.1f}s"
        conflicts = str(len(r.conflicts)) if r.result == SUCCEEDED and r.managed is not None else "-"
        lines.append(
            f"| `{_md(r.stack)}` | {icons[r.result]} {r.result} | {_number(r.managed)} | {conflicts} | "
            f"{_number(r.skipped_policies)} | {_number(r.changed)} | {duration} |"
        )
    conflicted = [(r.stack, c) for r in results for c in r.conflicts]
    if conflicted:
        lines += ["", "#### Conflicts (not written: review each policy, or set onConflict: widen)", ""]
        lines += [f"- `{_md(stack)}`: {_md(conflict)}" for stack, conflict in conflicted]
    recovered = [r for r in results if r.recovered]
    if recovered:
        lines += ["", f"#### Recovered after a killed run ({RECOVERY_DOC})", ""]
        lines += [f"- `{_md(r.stack)}`: {_md(r.recovered)}" for r in recovered]
    failed = [r for r in results if r.result == FAILED]
    if failed:
        lines += ["", "#### Failures", ""]
        lines += [f"- `{_md(r.stack)}`: {_md(r.error)} (log: `{_md(r.log_path)}`)" for r in failed]
    return "\n".join(lines) + "\n"


def write_summaries(markdown: str, fleet_dir: Path, extra: Path | None) -> None:
    """`<fleet dir>/summary.md` (this run only), and appended to `extra` (a job summary collects steps)."""
    (fleet_dir / SUMMARY_FILE).write_text(markdown, encoding="utf-8")
    if extra is not None:
        with extra.open("a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")


class RichReporter:
    """Live progress: an overall bar, a spinner per running stack, one line per finished stack."""

    def __init__(self, console: Console, action: str, total: int) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall = self.progress.add_task(f"[bold]{action}[/]", total=total)
        self._running: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def started(self, stack: str) -> None:
        with self._lock:
            self._running[stack] = self.progress.add_task(f"  {stack}", total=None)

    def finished(self, result: StackResult) -> None:
        with self._lock:
            task = self._running.pop(result.stack, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.overall)
        if result.result == SUCCEEDED:
            recovered = f" (recovered: {escape(result.recovered)})" if result.recovered else ""
            self.progress.console.print(
                f"[green]✓[/] {escape(result.stack)}: {result.changed} changed, {result.duration_s:.1f}s{recovered}",
                highlight=False,
            )
        else:
            self.progress.console.print(
                f"[red]✗[/] {escape(result.stack)}: {escape(result.error)} (log: {escape(result.log_path)})",
                highlight=False,
            )


# -- the Automation API adapter (needs the Pulumi CLI; run for real by tests/engine/test_fleet.py) -----
def _op_counts(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {str(getattr(op, "value", op)): int(n) for op, n in (summary or {}).items()}


def _output_values(outputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """pulumi.automation OutputValue map → plain values; secret outputs are left out of every report."""
    return {key: getattr(v, "value", v) for key, v in (outputs or {}).items() if not getattr(v, "secret", False)}


def _state_outputs(stack: Any, log: LogFn) -> dict[str, Any]:
    """The outputs in the stack's state (after a preview or refresh: what the last `up` left).

    A stack never deployed answers with no outputs; a failure to read them (a wrong secrets passphrase, an
    unreachable backend) still leaves the summary at "-", and the stack's log says why."""
    read = getattr(stack, "outputs", None)
    if not callable(read):
        return {}
    try:
        return _output_values(read())
    except Exception as exc:  # the action itself succeeded: its result stands, the facts are unknown
        log(f"# outputs not read, the summary shows '-': {type(exc).__name__}: {short_error(str(exc))}")
        return {}


def _pending_operations(selected: Any) -> list[Any]:
    """The checkpoint's `pending_operations` (`pulumi stack export`): what a killed run left unfinished."""
    exported = selected.export_stack()
    deployment = getattr(exported, "deployment", None) or {}
    return list(deployment.get("pending_operations") or [])


def refreshes(project_dir: Path, stack: str) -> bool:
    """Whether `preview`/`up` of the stack runs with --refresh: the MSP stack (mode msp) does."""
    try:
        document = read_yaml(project_dir / f"Pulumi.{stack}.yaml") or {}
    except (OSError, ValueError):
        return False  # the program reports an unreadable stack file itself
    config = document.get("config") if isinstance(document, dict) else None
    return isinstance(config, dict) and config.get(f"{PROJECT}:mode") == "msp"


class AutomationApiRunner:
    """The real runner: `pulumi.automation` over this project directory (a local program)."""

    def __init__(
        self,
        work_dir: Path,
        *,
        policy_packs: Sequence[str] = (),
        expect_no_changes: bool = False,
        preview_only: bool = False,
        secrets_provider: str | None = None,
        recovery: RecoveryPolicy | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.policy_packs = list(policy_packs)
        self.expect_no_changes = expect_no_changes
        self.preview_only = preview_only
        self.secrets_provider = secrets_provider
        self.recovery = recovery or RecoveryPolicy()
        self._pulumi_command: Any = None
        self._command_lock = threading.Lock()

    def check(self) -> None:
        """Fail once, clearly, when the CLI is missing (PulumiCommand raises FileNotFoundError)."""
        self._command()

    def _command(self) -> Any:
        """One `PulumiCommand` for the whole fleet: it runs `pulumi version` when it is made, and a workspace
        made without one makes its own, so each stack paid a CLI run for the same answer."""
        from pulumi import automation as auto

        with self._command_lock:
            if self._pulumi_command is None:
                try:
                    self._pulumi_command = auto.PulumiCommand()
                except FileNotFoundError as exc:
                    raise FleetSetupError(CLI_MISSING) from exc
            return self._pulumi_command

    def run(self, stack: str, action: str, log: LogFn) -> Outcome:
        try:
            return self._act(stack, action, log)
        except Exception as exc:
            holders = lock_holders(str(exc))
            if holders is None:
                raise
            reason = self.recovery.may_cancel(stack, holders)  # raises StackLockedError when it may not
        recovered = self._recover(self._select(stack), stack, action, reason, log)
        return replace(self._act(stack, action, log), recovered=recovered)

    def _select(self, stack: str) -> Any:
        """The Automation API's Stack (`pulumi stack select`), for refresh, cancel and export; missing stacks are
        created with the given secrets provider, and only with one."""
        from pulumi import automation as auto

        opts = auto.LocalWorkspaceOptions(secrets_provider=self.secrets_provider, pulumi_command=self._command())
        if self.secrets_provider:
            return auto.create_or_select_stack(stack, work_dir=str(self.work_dir), opts=opts)
        return auto.select_stack(stack, work_dir=str(self.work_dir), opts=opts)

    def _recover(self, selected: Any, stack: str, action: str, reason: str, log: LogFn) -> str:
        """`pulumi cancel`, then `pulumi refresh --clear-pending-creates` when the killed run left
        operations pending and this action may write the state (docs/fleet.md, "After a killed run")."""
        log(f"# {stack}: {reason}: pulumi cancel")
        selected.cancel()
        done = [reason]
        pending = _pending_operations(selected)
        if pending and (action == "up" or (action == "refresh" and not self.preview_only)):
            log(f"# {stack}: {len(pending)} pending operations: pulumi refresh --clear-pending-creates")
            selected.refresh(clear_pending_creates=True, on_output=log, color="never")
            done.append(f"refreshed and cleared {len(pending)} pending operations")
        elif pending:
            done.append(f"{len(pending)} pending operations left for the next up (a preview writes no state)")
        return "; ".join(done)

    def _act(self, stack: str, action: str, log: LogFn) -> Outcome:
        if action in ("preview", "up"):
            return self._operate(stack, action, log)
        selected = self._select(stack)
        common: dict[str, Any] = {"on_output": log, "color": "never", "expect_no_changes": self.expect_no_changes}
        if self.preview_only:  # `pulumi refresh --preview-only`: drift is reported, the state is not written
            drift = selected.preview_refresh(**common)
            return Outcome(_op_counts(drift.change_summary), _state_outputs(selected, log))
        refresh = selected.refresh(**common)
        return Outcome(_op_counts(refresh.summary.resource_changes), _state_outputs(selected, log))

    def _operate(self, stack: str, action: str, log: LogFn) -> Outcome:
        """`pulumi preview` / `pulumi up` with `--stack`: no `pulumi stack select` first (it names the stack, and
        writes the workspace's current stack, shared by every stack this fleet runs at once)."""
        from pulumi import automation as auto

        workspace = auto.LocalWorkspace(
            work_dir=str(self.work_dir), pulumi_command=self._command(), secrets_provider=self.secrets_provider
        )
        target = StackOf(stack, workspace)
        options: dict[str, Any] = {
            "policy_packs": self.policy_packs,
            # The MSP stack refreshes on preview and up: its drift is seen and repaired (docs/adopt.md#drift);
            # client stacks see theirs without refresh (Part D reads the tenant) and keep that cost.
            "refresh": refreshes(self.work_dir, stack),
            "expect_no_changes": self.expect_no_changes,
        }
        try:
            events = run_operation(target, action, log, **options)
        except auto.StackNotFoundError:
            if not self.secrets_provider:
                raise
            self._select(stack)  # creates it
            events = run_operation(target, action, log, **options)
        # A preview reports what the last `up` left in the state; an `up`, what it leaves there.
        outputs = events.stack_outputs_after if action == "up" else events.stack_outputs_before
        return Outcome(events.changes or {}, outputs)


# -- command line ------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening fleet",
        description=(__doc__ or "").splitlines()[0],
        epilog="exit codes:\n  0  every selected stack succeeded (or was skipped by --resume)\n"
        "  1  at least one stack failed (its log is in the fleet folder's logs/)\n"
        "  2  error before any stack ran: no Pulumi CLI, no stack matched, bad options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--action", choices=ACTIONS, required=True)
    parser.add_argument("--stacks", default="client-*", help="shell patterns, comma/space separated (default client-*)")
    parser.add_argument("--parallel", type=int, default=8, help="stacks at a time (default 8)")
    parser.add_argument("--resume", action="store_true", help="skip stacks that succeeded in the last run")
    parser.add_argument(
        "--recover",
        action="store_true",
        help="cancel the locks of killed runs held elsewhere too: only when no run of these stacks is alive "
        f"({RECOVERY_DOC})",
    )
    parser.add_argument("--expect-no-changes", action="store_true", help="fail a stack that would change (drift)")
    parser.add_argument("--preview-only", action="store_true", help="refresh: report drift, do not write the state")
    parser.add_argument("--policy-pack", action="append", default=[], help="policy pack folder (repeatable)")
    parser.add_argument("--secrets-provider", help="create missing stacks with this secrets provider")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    parser.add_argument("--fleet-dir", type=Path, help="logs and resume state (default <project>/.fleet)")
    parser.add_argument("--summary", type=Path, help="also append the Markdown summary here ($GITHUB_STEP_SUMMARY)")
    return parser


def plan_run(args: argparse.Namespace, state: Path) -> tuple[list[str], set[str], LastRun | None]:
    """Stacks to run, stacks to skip and the previous run, from the command line and the state file."""
    stacks = select_stacks(discover_stacks(args.project_dir), parse_patterns(args.stacks))
    if not stacks:
        raise FleetSetupError(f"no stack file Pulumi.<stack>.yaml in {args.project_dir} matches {args.stacks!r}")
    last = load_last_run(state) if args.resume else None
    return stacks, stacks_to_skip(last, args.action, stacks), last


def recovery_policy(state: Path, recover: bool) -> RecoveryPolicy:
    """What the previous run left in `state`; refuses to start while that runner is still alive."""
    try:
        raw = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = None
    policy = RecoveryPolicy(unfinished_run(raw if isinstance(raw, dict) else None), recover)
    if policy.previous is not None and policy.previous_runner_alive():
        raise FleetSetupError(
            f"another fleet run (pid {policy.previous.pid}, started {policy.previous.started:%Y-%m-%dT%H:%M:%SZ}) "
            f"is still running in {state.parent}: wait for it to end"
        )
    return policy


def main(argv: Sequence[str] | None = None, runner: StackRunner | None = None, console: Console | None = None) -> int:
    args = _parser().parse_args(argv)
    console = console or Console()
    fleet_dir = args.fleet_dir or args.project_dir / ".fleet"
    state = fleet_dir / STATE_FILE
    try:
        if args.parallel < 1:
            raise FleetSetupError("--parallel must be at least 1")
        if args.preview_only and args.action != "refresh":
            raise FleetSetupError("--preview-only goes with --action refresh (`pulumi refresh --preview-only`)")
        stacks, skip, last = plan_run(args, state)
        recovery = recovery_policy(state, args.recover)
        if runner is None:
            real = AutomationApiRunner(
                args.project_dir,
                policy_packs=args.policy_pack,
                expect_no_changes=args.expect_no_changes,
                preview_only=args.preview_only,
                secrets_provider=args.secrets_provider,
                recovery=recovery,
            )
            real.check()
            runner = real
    except FleetSetupError as exc:
        console.print(f"[red]fleet:[/] {exc}", highlight=False)
        return 2
    if args.resume and last is not None and last.action != args.action:
        console.print(f"[yellow]the last run was `{last.action}`: nothing to resume for `{args.action}`[/]")
    console.print(
        f"fleet {args.action}: {len(stacks) - len(skip)} stacks, {len(skip)} skipped, parallel {args.parallel}"
    )
    with RichReporter(console, args.action, len(stacks) - len(skip)) as reporter:
        journal = RunJournal(state, args.action, last, reporter)
        journal.open()
        results = run_fleet(
            stacks,
            args.action,
            runner,
            parallel=args.parallel,
            log_dir=fleet_dir / "logs",
            skip=skip,
            reporter=journal,
        )
    journal.close(results)
    write_summaries(markdown_summary(args.action, results), fleet_dir, args.summary)
    console.print(summary_table(args.action, results))
    return exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
