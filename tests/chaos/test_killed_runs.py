"""`pulumi up` and `pulumi destroy` of a client stack SIGKILLed at seeded random instants, then recovered as
docs/part-d.md "A killed run" says: every in-scope policy excluded exactly once after the up, every policy
back to its original after the destroy, and no write after any kill.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.exclusion import exclude_cipp, msp_is_excluded, select_policies
from emulators.pulumi_project import PulumiProject
from tests.chaos.conftest import PACING_S
from tests.chaos.harness import (
    LOCKED,
    KillPlan,
    Tally,
    Tenant,
    assert_nothing_after,
    audit,
    backend_run,
    locks,
    msp_count,
    recover,
    run_and_maybe_kill,
    state_dir,
)
from tests.engine.test_client_stack import EXCLUSION, IN_SCOPE, MSP, STACK

pytestmark = pytest.mark.timeout(900)

MIN_KILLS = int(os.environ.get("CHAOS_KILLS", "12"))
MAX_CYCLES = 8
MAX_KILLS_PER_PHASE = 3
CHAIN = 0.5  # how likely the recovery run is killed too
UP = ("up", "--yes", "--skip-preview", "--stack", STACK)
DESTROY = ("destroy", "--yes", "--skip-preview", "--stack", STACK)


def expected_after_up(originals: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each policy as it must be after a converged up: the exclusion merged into the in-scope ones that lack it."""
    selected, _ = select_policies(list(originals.values()), IN_SCOPE, ())
    expected = {pid: policy for pid, policy in originals.items()}
    for policy in selected:
        merge = exclude_cipp(policy["conditions"]["users"], "gdap", MSP, None)
        if merge.write:
            expected[policy["id"]] = {**policy, "conditions": {**policy["conditions"], "users": merge.users}}
    return expected


def written_by_up(originals: dict[str, dict[str, Any]]) -> set[str]:
    """The policies a converged up adds the exclusion to (the others it leaves exactly as they are)."""
    expected = expected_after_up(originals)
    return {pid for pid, policy in originals.items() if expected[pid] is not policy}


def writes_due(tenant: Tenant, command: str, originals: dict[str, dict[str, Any]]) -> int:
    """How many PATCHes the command still has to send, from the tenant as it is now."""
    now = tenant.policies()
    if command == "up":
        selected, _ = select_policies(list(now.values()), IN_SCOPE, ())
        return sum(exclude_cipp(p["conditions"]["users"], "gdap", MSP, None).write for p in selected)
    return sum(
        msp_is_excluded(p["conditions"]["users"], MSP)
        and not msp_is_excluded(originals[pid]["conditions"]["users"], MSP)
        for pid, p in now.items()
    )


def phase(
    project: PulumiProject,
    tenant: Tenant,
    args: tuple[str, ...],
    rng: random.Random,
    tally: Tally,
    logs: Path,
    originals: dict[str, dict[str, Any]],
) -> None:
    """Runs of one command, each killed as drawn and recovered as documented, until one completes."""
    for attempt in range(MAX_KILLS_PER_PHASE + 1):
        due = writes_due(tenant, args[0], originals)
        plan = KillPlan.draw(rng, due, typical_s=2.0 + 3 * due * PACING_S * 1.5)
        if attempt == MAX_KILLS_PER_PHASE or (attempt and rng.random() >= CHAIN):
            plan = KillPlan("none")
        tally.runs += 1
        run, kill = run_and_maybe_kill(project, tenant, args, plan, logs / f"{tally.runs}-{args[0]}.log")
        if kill is None:  # it completed before the planned instant
            assert run.finish() == 0, f"`pulumi {args[0]}` failed:\n{run.output()[-4000:]}"
            return
        tally.kills += 1
        tally.mid_write_kills += kill.mid_write
        tally.kinds[kill.kind] = tally.kinds.get(kill.kind, 0) + 1
        assert_nothing_after(kill, tenant)
        recover(project, STACK, tally)


def check_up(project: PulumiProject, tenant: Tenant, expected: dict[str, dict[str, Any]], written: set[str]) -> None:
    now = tenant.policies()
    problems = [
        audit(now[pid], want).describe(want["displayName"]) for pid, want in expected.items() if audit(now[pid], want)
    ]
    assert not problems, "after the recovered up:\n" + "\n".join(problems)
    twice = [now[pid]["displayName"] for pid in written if msp_count(now[pid], MSP) != 1]
    assert not twice, f"not excluded exactly once: {twice}"
    project.run("preview", "--expect-no-changes", "--stack", STACK)  # the recovery settled every killed write


def check_destroy(project: PulumiProject, tenant: Tenant, originals: dict[str, dict[str, Any]], tally: Tally) -> None:
    now = tenant.policies()
    findings = {pid: audit(now[pid], original) for pid, original in originals.items()}
    tally.policies += len(originals)
    tally.left_behind += sum(
        msp_is_excluded(now[pid]["conditions"]["users"], MSP) and not msp_is_excluded(o["conditions"]["users"], MSP)
        for pid, o in originals.items()
    )
    tally.widened += sum(bool(f.widened) for f in findings.values())
    tally.narrowed += sum(bool(f.narrowed) for f in findings.values())
    problems = [f.describe(originals[pid]["displayName"]) for pid, f in findings.items() if f]
    assert not problems, "after the recovered destroy:\n" + "\n".join(problems)
    left = [r["urn"] for r in project.export(STACK)["deployment"].get("resources") or [] if r["type"] == EXCLUSION]
    assert not left, f"destroy left resources in the state: {left}"


def test_killed_up_and_destroy_recover_to_exactly_the_original(
    chaos_project: PulumiProject, tenant: Tenant, rng: random.Random, tally: Tally, tmp_path: Path
) -> None:
    originals = tenant.policies()
    expected, written = expected_after_up(originals), written_by_up(originals)
    start = tally.kills
    for _cycle in range(MAX_CYCLES):
        phase(chaos_project, tenant, UP, rng, tally, tmp_path, originals)
        check_up(chaos_project, tenant, expected, written)
        phase(chaos_project, tenant, DESTROY, rng, tally, tmp_path, originals)
        check_destroy(chaos_project, tenant, originals, tally)
        if tally.kills - start >= MIN_KILLS:
            break
    assert tally.kills - start >= MIN_KILLS, f"only {tally.kills - start} kills landed in {MAX_CYCLES} cycles"


def test_a_killed_run_leaves_its_lock_and_pending_creates_which_the_documented_steps_clear(
    chaos_project: PulumiProject, tenant: Tenant, tally: Tally, tmp_path: Path
) -> None:
    """What the file backend keeps after a SIGKILL (docs/fleet.md "After a killed run"): the lock, which the next
    command names, and the pending creates; `pulumi cancel` and `pulumi refresh --clear-pending-creates` clear
    both, and the same `pulumi up` then converges."""
    originals = tenant.policies()
    tally.runs += 1
    run, kill = run_and_maybe_kill(chaos_project, tenant, UP, KillPlan("after-patch", nth=3), tmp_path / "up.log")
    assert kill is not None, run.output()
    tally.kills += 1
    tally.mid_write_kills += 1
    tally.kinds["after-patch"] = tally.kinds.get("after-patch", 0) + 1
    assert_nothing_after(kill, tenant)
    assert locks(chaos_project), "the killed run left no lock file"
    refused = chaos_project.run(*UP, check=False)
    assert refused.returncode != 0
    assert LOCKED in refused.stdout + refused.stderr
    assert "pulumi cancel" in refused.stdout + refused.stderr
    assert pending_creates(chaos_project), "the killed run left no pending create"

    recover(chaos_project, STACK, tally)
    assert not locks(chaos_project)
    assert not pending_creates(chaos_project)
    tally.runs += 1
    chaos_project.run(*UP)
    check_up(chaos_project, tenant, expected_after_up(originals), written_by_up(originals))


def test_an_empty_checkpoint_sidecar_is_deleted_and_the_stack_loads_again(
    chaos_project: PulumiProject, tenant: Tenant, tally: Tally
) -> None:
    """A kill between the file backend's create and write of a checkpoint's `.attrs` (seen in this suite) leaves
    it empty: every command fails to load the checkpoint with EOF; deleting the empty file is the repair."""
    originals = tenant.policies()
    tally.runs += 1
    chaos_project.run(*UP)
    sidecar = state_dir(chaos_project) / ".pulumi" / "stacks" / "cipp-hardening" / f"{STACK}.json.attrs"
    sidecar.write_bytes(b"")  # as the kill left it
    broken = chaos_project.run(*DESTROY, check=False)
    assert broken.returncode != 0
    assert "failed to load checkpoint: EOF" in broken.stdout + broken.stderr
    tally.runs += 1
    backend_run(chaos_project, tally, *DESTROY)
    assert not sidecar.exists() or sidecar.stat().st_size
    now = tenant.policies()
    assert not [o["displayName"] for pid, o in originals.items() if audit(now[pid], o)]


def pending_creates(project: PulumiProject) -> list[str]:
    deployment = project.export(STACK)["deployment"]
    return [op["resource"]["urn"] for op in deployment.get("pending_operations") or [] if op["type"] == "creating"]
