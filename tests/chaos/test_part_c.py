"""Part C under the real CLI when things go wrong (docs/part-c.md): the MSP stack's `pulumi up` SIGKILLed right
after CIPP received an AddUpdate and recovered as docs/fleet.md says, and a List that does not show MCPAllowed.

The MSP stack is the engine suite's (tests/engine/test_msp_stack.py): Graph and CIPP-API emulators seeded as the
demo's world, azuread through the stand-in, Part C through the real dynamic-provider host.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.commands.demo import CIPP_CLIENTS, OFFICE_CALLER, OUTSIDE_CALLER, DemoWorld
from emulators.pulumi_project import PulumiProject
from tests.chaos.harness import AFTER_KILL_S, PROCESS_DEADLINE_S, CliRun, Tally, poll, recover
from tests.engine.test_adopt import run_adopt
from tests.engine.test_msp_stack import STACK, project, rmm_status, world

__all__ = ["project", "world"]  # the MSP stack's fixtures, in place of the client stack's
pytestmark = pytest.mark.timeout(900)

UP = ("up", "--yes", "--skip-preview", "--stack", STACK)
MANAGED = [client_id for client_id, *_ in CIPP_CLIENTS[:2]]  # the clients Pulumi.example.yaml lists


def writes(world: DemoWorld) -> list[Any]:
    return [r for r in world.cipp.request_log if r.method == "POST" and "ExecApiClient" in r.path]


def rows(world: DemoWorld) -> dict[str, dict[str, Any]]:
    return {client_id: world.cipp.client_row(client_id) or {} for client_id, *_ in CIPP_CLIENTS}


def test_a_killed_up_after_an_add_update_recovers_with_every_client_as_configured(
    project: PulumiProject, world: DemoWorld, tally: Tally, tmp_path: Path
) -> None:
    before = rows(world)
    tally.runs += 1
    run = CliRun(project, UP, tmp_path / "up.log")
    try:
        assert poll(lambda: writes(world) or not run.running(), 300, 0.005), "no AddUpdate"
        assert run.running(), f"the up ended before Part C wrote:\n{run.output()[-3000:]}"
        kill = run.kill("after-add-update", True)
        killed_at = time.perf_counter()
    finally:
        run.stop()
    tally.kills += 1
    tally.mid_write_kills += 1
    tally.kinds[kill.kind] = tally.kinds.get(kill.kind, 0) + 1
    assert poll(lambda: not any(p.alive() for p in kill.plugins), PROCESS_DEADLINE_S, 0.05), kill.plugins
    late = [r for r in writes(world) if r.received > killed_at + AFTER_KILL_S]
    assert not late, f"{len(late)} AddUpdates reached CIPP after the CLI was killed"

    recover(project, STACK, tally)
    tally.runs += 1
    again = project.run(*UP, check=False)
    if again.returncode != 0:
        # The kill can land in pulumi-azuread's create wait: the policy or location is in the tenant, and the
        # provider records nothing until its wait ends (docs/adopt.md). The up refuses to create a second one
        # and says to adopt it, as docs/fleet.md "After a killed run" step 4 says.
        assert "cipp-hardening adopt" in again.stdout + again.stderr, again.stdout + again.stderr
        adopted = run_adopt(project, world)
        assert adopted.returncode == 0, adopted.stdout + adopted.stderr
        tally.runs += 1
        project.run(*UP)
    after = rows(world)
    for client_id in MANAGED:
        for field in ("Role", "Enabled", "MCPAllowed"):
            assert after[client_id].get(field) == before[client_id].get(field), f"{client_id} {field}"
    assert after[CIPP_CLIENTS[2][0]] == before[CIPP_CLIENTS[2][0]], "a client the stack does not list was written"
    assert rmm_status(world, OFFICE_CALLER) == 200
    assert rmm_status(world, OUTSIDE_CALLER) == 403, "the RMM client is held to its ranges after the recovery"
    assert not world.cipp.secret_resets, "a kill or its recovery reset a client's secret"
    project.run("preview", "--expect-no-changes", "--stack", STACK)


def test_a_list_without_mcp_allowed_writes_nothing_and_names_the_key(
    project: PulumiProject, world: DemoWorld, tally: Tally
) -> None:
    world.cipp.list_shows_mcp_allowed = False  # a Get-CippApiClient version that selects no MCPAllowed
    tally.runs += 1
    result = project.run(*UP, check=False)
    assert result.returncode != 0
    assert "mcpAllowed" in result.stdout + result.stderr
    assert writes(world) == [], "an AddUpdate from a List that did not show MCPAllowed"
    assert rmm_status(world, OUTSIDE_CALLER) == 200, "nothing changed: the RMM client is as open as before"
