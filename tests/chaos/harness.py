"""The chaos suite's moving parts: a CLI run that can be SIGKILLed, the documented recovery, and the audit.

A run is started as CI starts a step: `pulumi up` / `pulumi destroy` in a process of its own, and the kill
is a SIGKILL of that one pid (what a cancelled or timed-out job does to the step's process), never of a
process group. Recovery is exactly docs/part-d.md "A killed run": `pulumi cancel` when the next command says
the backend still holds the stack's lock, then the same command again.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cipp_hardening.exclusion import GUEST_OBJECTS, SERVICE_PROVIDER, full_users
from emulators.graph import Fault, GraphEmulator, RequestRecord
from emulators.pulumi_project import Process, PulumiFailed, PulumiProject, descendants

POLICIES_PATH = "/v1.0/identity/conditionalAccess/policies"
# The file backend's answer while a killed run's lock file is left in .pulumi/locks (pkg/backend/diy/lock.go).
LOCKED = "the stack is currently locked"
AFTER_KILL_S = 0.5  # a write received later than this after the SIGKILL was sent by something that outlived the CLI
PROCESS_DEADLINE_S = 10.0  # the CLI's plugins die within ~30 ms (docs/engine.md); generous under load
HOLD_S = 0.6  # how long the emulator holds a PATCH it has received before applying it ("in flight" kills)
RUN_DEADLINE_S = 300.0
KINDS = ("after-patch", "in-flight", "timed")
EXCLUDE_LISTS = ("excludeUsers", "excludeGroups", "excludeRoles")
INCLUDE_LISTS = ("includeUsers", "includeGroups", "includeRoles")
VOLATILE = ("modifiedDateTime",)


def poll(condition: Callable[[], Any], deadline_s: float, step_s: float = 0.01) -> Any:
    """condition()'s first truthy answer within the deadline, else its last answer."""
    end = time.monotonic() + deadline_s
    while not (answer := condition()) and time.monotonic() < end:
        time.sleep(step_s)
    return answer


# -- the figures -------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the suite did and found; printed at the end of `make chaos` (tests/chaos/conftest.py)."""

    kills: int = 0
    mid_write_kills: int = 0  # right after a PATCH reached Graph (before the engine's record), or while one is held
    runs: int = 0  # `pulumi up` / `pulumi destroy` processes started (killed or not)
    cancels: int = 0  # locks a killed run left, removed by `pulumi cancel`
    sidecars: int = 0  # empty `.attrs` files of the file backend deleted (docs/part-d.md "A killed run")
    policies: int = 0  # policy audits after a destroy (each policy of the tenant, each cycle)
    left_behind: int = 0
    widened: int = 0
    narrowed: int = 0
    windows_s: list[float] = field(default_factory=list)  # GET→PATCH of the same policy, measured at the pacing below
    window_pacing_s: float = 0.0
    edits: int = 0  # portal edits made during up and destroy, every one checked afterwards
    edits_inside: int = 0  # of which Graph applied between our read of the policy and our write of it
    kinds: dict[str, int] = field(default_factory=dict)

    def summary(self) -> list[str]:
        lines = [
            f"{self.kills} kills ({self.mid_write_kills} mid-write: "
            + ", ".join(f"{kind} {count}" for kind, count in sorted(self.kinds.items()))
            + f"), {self.runs} runs, {self.cancels} `pulumi cancel`, {self.sidecars} empty .attrs deleted, "
            f"{self.policies} policies, "
            f"{self.left_behind} left behind, {self.widened} widened, {self.narrowed} narrowed"
        ]
        if self.windows_s:
            lines.append(
                f"concurrent-edit window (a policy's GET to its PATCH) at {self.window_pacing_s:g} s pacing: "
                f"median {statistics.median(self.windows_s):.3f} s, max {max(self.windows_s):.3f} s "
                f"over {len(self.windows_s)} writes; {self.edits} portal edits during up and destroy, "
                f"{self.edits_inside} of them inside that window, all kept"
            )
        return lines


# -- one CLI run ---------------------------------------------------------------------------------------------
@dataclass
class Kill:
    command: str
    kind: str
    at: float  # time.time() just after the SIGKILL was sent
    plugins: list[Process]  # what ran below the CLI at that instant
    mid_write: bool


class CliRun:
    """One `pulumi up`/`destroy` in a process of its own, output to files (a pipe nobody reads would block it)."""

    def __init__(self, project: PulumiProject, args: tuple[str, ...], log: Path) -> None:
        self.args = args
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [str(project.cli), *args, "--non-interactive"],
                cwd=project.workdir,
                env=project.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self, kind: str, mid_write: bool) -> Kill:
        plugins = descendants(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)
        killed_at = time.time()
        self.process.wait(timeout=60)
        return Kill(self.args[0], kind, killed_at, plugins, mid_write)

    def finish(self) -> int:
        return self.process.wait(timeout=RUN_DEADLINE_S)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Cleanup after a failed test: only this run's own processes."""
        if self.running():
            plugins = descendants(self.process.pid)
            self.process.kill()
            self.process.wait(timeout=60)
            _kill_survivors(plugins)


def _kill_survivors(plugins: Iterable[Process]) -> None:
    for process in plugins:
        if process.alive():
            os.kill(process.pid, signal.SIGKILL)


# -- the tenant as the suite sees it ---------------------------------------------------------------------------
@dataclass
class Tenant:
    emulator: GraphEmulator
    tenant: str

    def writes(self, since: float = 0.0) -> list[RequestRecord]:
        """Every request but a GET to the tenant's Graph API received after `since` (time.time())."""
        return [
            r
            for r in self.emulator.requests(path_contains="/v1.0/", tenant=self.tenant)
            if r.method != "GET" and r.received > since
        ]

    def patches(self) -> int:
        return len(self.emulator.requests("PATCH", POLICIES_PATH, tenant=self.tenant))

    def policies(self) -> dict[str, dict[str, Any]]:
        return {p["id"]: copy.deepcopy(p) for p in self.emulator.policies(self.tenant)}


# -- killing -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KillPlan:
    """When to kill a run: right after its nth PATCH reached Graph, while its nth PATCH is held, at a delay, or
    not at all (`none`)."""

    kind: str
    nth: int = 1
    delay_s: float = 0.0

    @classmethod
    def draw(cls, rng: random.Random, writes_due: int, typical_s: float) -> KillPlan:
        kind = rng.choice(KINDS) if writes_due else "timed"
        if kind == "timed":
            return cls(kind, delay_s=rng.uniform(0.2, typical_s))
        return cls(kind, nth=rng.randint(1, writes_due))


def run_and_maybe_kill(
    project: PulumiProject, tenant: Tenant, args: tuple[str, ...], plan: KillPlan, log: Path
) -> tuple[CliRun, Kill | None]:
    """Start the run and kill it as planned; None when the run ended first (it completed, or failed)."""
    before = tenant.patches()
    run = CliRun(project, args, log)
    try:
        return run, _execute(plan, run, tenant, before)
    except BaseException:
        run.stop()
        raise


def _execute(plan: KillPlan, run: CliRun, tenant: Tenant, before: int) -> Kill | None:
    if plan.kind == "none":
        return None
    if plan.kind == "timed":
        end = time.monotonic() + plan.delay_s
        poll(lambda: not run.running() or time.monotonic() >= end, RUN_DEADLINE_S)
        return run.kill(plan.kind, False) if run.running() else None  # an instant nobody chose: not counted mid-write
    if plan.kind == "after-patch":
        reached = poll(lambda: not run.running() or tenant.patches() >= before + plan.nth, RUN_DEADLINE_S)
        return run.kill(plan.kind, True) if reached and run.running() else None
    poll(lambda: not run.running() or tenant.patches() >= before + plan.nth - 1, RUN_DEADLINE_S)
    held = tenant.emulator.inject("PATCH", POLICIES_PATH, tenant=tenant.tenant, delay_s=HOLD_S, times=1)
    try:
        poll(lambda: not run.running() or held.hits > 0, RUN_DEADLINE_S)
        return run.kill(plan.kind, True) if held.hits and run.running() else None
    finally:
        _disarm(held)


def _disarm(fault: Fault) -> None:
    fault.times = fault.hits


def assert_nothing_after(kill: Kill, tenant: Tenant) -> None:
    """The CLI's language host, program and provider host die with it, and no write reaches Graph afterwards."""
    gone = poll(lambda: not any(p.alive() for p in kill.plugins), PROCESS_DEADLINE_S, 0.05)
    survivors = [p for p in kill.plugins if p.alive()]
    _kill_survivors(survivors)
    assert gone, f"still running {PROCESS_DEADLINE_S:g} s after the CLI was killed: {survivors}"
    late = tenant.writes(since=kill.at + AFTER_KILL_S)
    assert not late, f"{len(late)} writes reached Graph after the killed `pulumi {kill.command}`: " + ", ".join(
        f"{r.method} {r.path} at +{r.received - kill.at:.2f} s" for r in late
    )


def recover(project: PulumiProject, stack: str, tally: Tally) -> None:
    """docs/fleet.md "After a killed run", by hand, once the run is known dead (assert_nothing_after): `pulumi
    cancel` (the lock the kill left, if any), `pulumi refresh --clear-pending-creates`; the caller then runs the
    same command again."""
    if locks(project):
        tally.cancels += 1
    backend_run(project, tally, "cancel", "--yes", "--stack", stack)
    backend_run(project, tally, "refresh", "--clear-pending-creates", "--yes", "--skip-preview", "--stack", stack)


def backend_run(project: PulumiProject, tally: Tally, *args: str) -> subprocess.CompletedProcess[str]:
    """A command, once more after deleting the empty checkpoint sidecar a kill can leave in a file backend.

    The file backend (gocloud.dev/blob/fileblob) writes a blob's `.attrs` sidecar by create-then-write (attrs.go,
    setAttrs): a kill in between leaves it empty, and every command then fails to load the checkpoint with EOF
    until that empty file is deleted (docs/fleet.md "After a killed run")."""
    result = project.run(*args, check=False)
    empty = [path for path in state_dir(project).rglob("*.attrs") if path.stat().st_size == 0]
    if result.returncode != 0 and "EOF" in result.stdout + result.stderr and empty:
        for path in empty:
            path.unlink()
        tally.sidecars += len(empty)
        result = project.run(*args, check=False)
    if result.returncode != 0:
        raise PulumiFailed(args, result)
    return result


def state_dir(project: PulumiProject) -> Path:
    return Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))


def locks(project: PulumiProject) -> list[Path]:
    """The lock files the file backend holds (pkg/backend/diy/lock.go: .pulumi/locks/<org>/<project>/<stack>/)."""
    return list((state_dir(project) / ".pulumi" / "locks").rglob("*.json"))


# -- the audit -----------------------------------------------------------------------------------------------
@dataclass
class Findings:
    """How a policy differs from what it should be: who it lets through that it should not (widened), who it
    now applies to that it should not (narrowed), anything else changed, and entries held twice."""

    widened: list[str] = field(default_factory=list)
    narrowed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.widened or self.narrowed or self.changed or self.doubled)

    def describe(self, label: str) -> str:
        parts = [f"{name}: {values}" for name, values in vars(self).items() if values]
        return f"{label}: " + "; ".join(parts)


def stable(policy: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in policy.items() if k not in VOLATILE}


def audit(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> Findings:
    """Compare one policy with what it should be, entry by entry of its users object, the rest as a whole."""
    found = Findings()
    got, want = _users(actual), _users(expected)
    for key in EXCLUDE_LISTS:
        _compare(found, key, _ids(got[key]), _ids(want[key]), more_is_wider=True)
    for key in INCLUDE_LISTS:
        _compare(found, key, _ids(got[key]), _ids(want[key]), more_is_wider=False)
    for key in GUEST_OBJECTS:
        _compare(found, key, _guest_pairs(got[key]), _guest_pairs(want[key]), key.startswith("exclude"))
        found.doubled += [f"{key} {entry}" for entry in _doubled(got[key])]
    known = {*EXCLUDE_LISTS, *INCLUDE_LISTS, *GUEST_OBJECTS}
    found.changed += [
        f"conditions.users.{k}" for k in set(got) | set(want) if k not in known and got.get(k) != want.get(k)
    ]
    found.changed += _changed_outside_users(actual, expected)
    return found


def _users(policy: Mapping[str, Any]) -> dict[str, Any]:
    return full_users(((policy.get("conditions") or {}).get("users")) or {})


def _ids(values: Any) -> list[str]:
    return [str(v).lower() for v in values or []]


def _guest_pairs(guests: Mapping[str, Any] | None) -> list[str]:
    """The object as (guest type, tenant) pairs, `*` for every tenant: what it actually covers."""
    if not guests:
        return []
    types = [
        t.strip() for t in str(guests.get("guestOrExternalUserTypes") or "").split(",") if t.strip() not in ("", "none")
    ]
    scope = guests.get("externalTenants") or {}
    members = _ids(scope.get("members")) if scope.get("membershipKind") == "enumerated" else ["*"]
    return [f"{t}@{m}" for t in types for m in members]


def _types(guests: Mapping[str, Any]) -> list[str]:
    return [t.strip() for t in str(guests.get("guestOrExternalUserTypes") or "").split(",")]


def _doubled(guests: Mapping[str, Any] | None) -> list[str]:
    if not guests:
        return []
    types = _types(guests)
    members = _ids((guests.get("externalTenants") or {}).get("members"))
    return sorted({v for v in types if types.count(v) > 1} | {v for v in members if members.count(v) > 1})


def _compare(found: Findings, key: str, got: list[str], want: list[str], more_is_wider: bool) -> None:
    extra = [f"{key} +{v}" for v in sorted(set(got) - set(want))]
    missing = [f"{key} -{v}" for v in sorted(set(want) - set(got))]
    (found.widened if more_is_wider else found.narrowed).extend(extra)
    (found.narrowed if more_is_wider else found.widened).extend(missing)
    if sorted(set(got)) == sorted(set(want)) and len(got) > len(set(got)) and key.startswith("exclude"):
        found.doubled.append(key)


def _changed_outside_users(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    def without_users(policy: Mapping[str, Any]) -> dict[str, Any]:
        trimmed = stable(copy.deepcopy(dict(policy)))
        (trimmed.get("conditions") or {}).pop("users", None)
        return trimmed

    a, e = without_users(actual), without_users(expected)
    return [k for k in sorted(set(a) | set(e)) if a.get(k) != e.get(k)]


def msp_count(policy: Mapping[str, Any], msp: str) -> int:
    """How many times the policy's guest exclusion names the MSP's service providers (exactly once when covered)."""
    guests = _users(policy)["excludeGuestsOrExternalUsers"] or {}
    types = _types(guests)
    scope = guests.get("externalTenants") or {}
    if scope.get("membershipKind") != "enumerated":
        return types.count(SERVICE_PROVIDER)  # every tenant's service providers, the MSP's among them
    return min(types.count(SERVICE_PROVIDER), _ids(scope.get("members")).count(msp.lower()))
