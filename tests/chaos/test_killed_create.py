"""A `pulumi up` of the MSP stack killed inside pulumi-azuread's create wait, recovered as docs/fleet.md says.

The real provider records a new policy only once its consistency wait has ended (five confirming reads at least
5 s apart, docs/engine.md, "The stand-in's resources"): a kill inside that wait leaves the policy in the tenant and
nothing in the state. The next `up` refuses to create a second one and names `cipp-hardening adopt`
(docs/adopt.md); adopting it and running `up` again converges with exactly one policy of each name. The random
kills of test_part_c.py reach this path only by chance; here the wait is stretched (AZUREAD_STANDIN_WAIT_SCALE)
so that the kill lands in it every time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.commands.demo import DemoWorld
from emulators.pulumi_project import PulumiProject
from tests.chaos.harness import PROCESS_DEADLINE_S, CliRun, Tally, poll, recover
from tests.engine.test_adopt import run_adopt
from tests.engine.test_msp_stack import STACK, project, world

__all__ = ["project", "world"]  # the MSP stack's fixtures, in place of the client stack's
pytestmark = pytest.mark.timeout(900)

UP = ("up", "--yes", "--skip-preview", "--stack", STACK)
WAIT_SCALE = "0.2"  # the create wait's five reads 1 s apart (upstream: 5 s), the window the kill aims at


def policies(world: DemoWorld) -> list[dict[str, Any]]:
    return world.graph.policies(world.msp_tenant)


def test_a_kill_in_the_create_wait_is_recovered_by_adopting_the_orphan(
    project: PulumiProject, world: DemoWorld, tally: Tally, tmp_path: Path
) -> None:
    before = {policy["id"] for policy in policies(world)}
    fast_scale = project.env.get("AZUREAD_STANDIN_WAIT_SCALE")
    project.env["AZUREAD_STANDIN_WAIT_SCALE"] = WAIT_SCALE
    tally.runs += 1
    run = CliRun(project, UP, tmp_path / "up.log")
    try:
        created = poll(lambda: [p for p in policies(world) if p["id"] not in before] or not run.running(), 300, 0.005)
        assert run.running(), f"the up ended before a policy was created:\n{run.output()[-3000:]}"
        kill = run.kill("in-create-wait", True)
    finally:
        run.stop()
        project.env.pop("AZUREAD_STANDIN_WAIT_SCALE")
        if fast_scale is not None:
            project.env["AZUREAD_STANDIN_WAIT_SCALE"] = fast_scale
    tally.kills += 1
    tally.mid_write_kills += 1
    tally.kinds[kill.kind] = tally.kinds.get(kill.kind, 0) + 1
    assert poll(lambda: not any(p.alive() for p in kill.plugins), PROCESS_DEADLINE_S, 0.05), kill.plugins
    orphan = created[0]
    state = {r.get("id") for r in project.export(STACK)["deployment"]["resources"]}
    assert not any(orphan["id"] in str(resource_id) for resource_id in state), "the kill came after the wait ended"

    recover(project, STACK, tally)
    tally.runs += 1
    refused = project.run(*UP, check=False)
    assert refused.returncode != 0, "a second policy was created beside the orphan"
    assert "cipp-hardening adopt" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert orphan["displayName"] in refused.stdout + refused.stderr, "the refusal names the orphaned policy"

    adopted = run_adopt(project, world)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    tally.runs += 1
    project.run(*UP)
    names = Counter(policy["displayName"] for policy in policies(world) if policy["id"] not in before)
    assert names[orphan["displayName"]] == 1, names
    assert all(count == 1 for count in names.values()), f"duplicates: {names}"
    project.run("preview", "--expect-no-changes", "--stack", STACK)
