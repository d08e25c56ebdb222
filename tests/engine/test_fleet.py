"""`make fleet` through the real Automation API: three client stacks, one of them unreachable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from cipp_hardening.exclusion import msp_is_excluded
from emulators.clients import GRAPH_ROLES, graph_client_env
from emulators.graph import GraphEmulator
from emulators.pulumi_project import PulumiProject
from tests.helpers import ROOT

MSP = "00000000-0000-0000-0000-00000000a001"
SAMPLES = ROOT / "examples" / "client-contoso-policies"


def closed_loopback_url() -> str:
    """An https URL on loopback where nothing listens: a tenant that cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def make_fleet(project: PulumiProject, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), "fleet", f"PROJECT_DIR={project.workdir}", "PARALLEL=3", *args],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_fleet_up_preview_and_resume(pulumi_cli: Path, tmp_path: Path, graph_emulator: GraphEmulator) -> None:
    tenants = {name: str(uuid.uuid4()) for name in ("client-alpha", "client-beta", "client-gamma")}
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(
        client_id, secret, MSP, consented_tenants=list(tenants.values()), graph_roles=GRAPH_ROLES
    )
    for tenant in tenants.values():
        graph_emulator.load_policies(tenant, SAMPLES)
    env = graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret)
    project = PulumiProject.create(pulumi_cli, tmp_path, env)
    unreachable = "client-gamma"
    for stack, tenant in tenants.items():
        project.stack_init(stack)
        project.config_set(stack, "mode", "client")
        project.config_set(stack, "graphUrl", closed_loopback_url() if stack == unreachable else graph_emulator.url)
        project.config_set_object(stack, "clientTenant", {"tenantId": tenant, "mspTenantId": MSP, "accessMode": "gdap"})

    up = make_fleet(project, "ACTION=up")
    assert up.returncode != 0, "a failed stack fails the fleet run"
    assert unreachable in up.stdout
    last = json.loads((project.workdir / ".fleet" / "last-run.json").read_text())
    outcomes = {stack: record["result"] for stack, record in last["stacks"].items()}
    assert outcomes == {"client-alpha": "succeeded", "client-beta": "succeeded", unreachable: "failed"}, last
    for stack in ("client-alpha", "client-beta"):
        statuses = project.outputs(stack)["exclusionStatuses"]
        excluded = [pid for pid, status in statuses.items() if status == "excluded"]
        assert excluded
        for pid in excluded:
            assert msp_is_excluded(graph_emulator.get_policy(tenants[stack], pid)["conditions"]["users"], MSP)
    # The summary's facts come from each run's engine events (the root stack's outputs), not a second CLI run.
    managed = {stack: len(project.outputs(stack)["managedPolicyIds"]) for stack in ("client-alpha", "client-beta")}
    assert all(managed.values()), managed
    for stack, count in managed.items():
        assert summary_row(project, stack)[2] == str(count), summary_row(project, stack)

    resumed = make_fleet(project, "ACTION=up", "RESUME=1")
    assert resumed.returncode != 0
    assert "1 stacks, 2 skipped" in resumed.stdout, resumed.stdout

    preview = make_fleet(project, "ACTION=preview", "STACKS=client-alpha,client-beta")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    for stack, count in managed.items():  # a preview reports what the last up left in the state
        assert summary_row(project, stack)[1:3] == ["✅ succeeded", str(count)], summary_row(project, stack)


def summary_row(project: PulumiProject, stack: str) -> list[str]:
    """`.fleet/summary.md`'s row of a stack: stack, result, policies managed, conflicts, skipped, changed, duration."""
    for line in (project.workdir / ".fleet" / "summary.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == f"`{stack}`":
            return cells
    raise AssertionError(f"no summary row for {stack}")


# -- after a killed run (docs/fleet.md "After a killed run") ---------------------------------------------
def one_client(pulumi_cli: Path, tmp_path: Path, graph_emulator: GraphEmulator) -> tuple[PulumiProject, str]:
    tenant, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(client_id, secret, MSP, consented_tenants=[tenant], graph_roles=GRAPH_ROLES)
    graph_emulator.load_policies(tenant, SAMPLES)
    env = graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret)
    project = PulumiProject.create(pulumi_cli, tmp_path, env)
    project.stack_init("client-alpha")
    project.config_set("client-alpha", "mode", "client")
    project.config_set("client-alpha", "graphUrl", graph_emulator.url)
    project.config_set_object(
        "client-alpha", "clientTenant", {"tenantId": tenant, "mspTenantId": MSP, "accessMode": "gdap"}
    )
    return project, tenant


def wait_for_a_patch(graph_emulator: GraphEmulator, tenant: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 240
    while not graph_emulator.requests(method="PATCH", tenant=tenant):
        assert process.poll() is None, "the run ended before its first write"
        assert time.monotonic() < deadline, "no write within 240 s"
        time.sleep(0.1)


def backend(project: PulumiProject) -> Path:
    return Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://")) / ".pulumi"


def pending_operations(project: PulumiProject) -> list[Any]:
    return list(project.export("client-alpha")["deployment"].get("pending_operations") or [])


def test_the_next_fleet_run_recovers_a_stack_its_killed_run_left_locked(
    pulumi_cli: Path, tmp_path: Path, graph_emulator: GraphEmulator
) -> None:
    project, tenant = one_client(pulumi_cli, tmp_path, graph_emulator)
    paced = {**project.env, "CIPP_HARDENING_GRAPH_INTERVAL": "1"}  # one request a second: the run lasts
    killed = subprocess.Popen(
        ["make", "-s", "-C", str(ROOT), "fleet", f"PROJECT_DIR={project.workdir}", "ACTION=up"],
        env=paced,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killed whole, as a cancelled CI job is
    )
    try:
        wait_for_a_patch(graph_emulator, tenant, killed)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=60)
    assert list((backend(project) / "locks").rglob("*.json")), "the killed run left no lock: nothing to recover"
    last = json.loads((project.workdir / ".fleet" / "last-run.json").read_text())
    assert last["finished"] is None
    assert last["stacks"]["client-alpha"] == {"result": "running"}

    locked = project.run("up", "--yes", "--stack", "client-alpha", check=False)
    assert "the stack is currently locked" in locked.stderr, "a plain up is refused until the lock is cancelled"

    recovered = make_fleet(project, "ACTION=up")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    summary = (project.workdir / ".fleet" / "summary.md").read_text()
    assert "Recovered after a killed run" in summary
    assert "the killed fleet run left its lock" in summary
    assert not list((backend(project) / "locks").rglob("*.json"))
    assert pending_operations(project) == []
    statuses = project.outputs("client-alpha")["exclusionStatuses"]
    for pid, status in statuses.items():
        if status in ("excluded", "already-excluded"):
            assert msp_is_excluded(graph_emulator.get_policy(tenant, pid)["conditions"]["users"], MSP)
    project.run("preview", "--expect-no-changes", "--stack", "client-alpha")


def test_a_live_runs_lock_is_never_cancelled_even_with_recover(
    pulumi_cli: Path, tmp_path: Path, graph_emulator: GraphEmulator
) -> None:
    project, tenant = one_client(pulumi_cli, tmp_path, graph_emulator)
    live = subprocess.Popen(
        [str(project.cli), "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "client-alpha"],
        cwd=project.workdir,
        env={**project.env, "CIPP_HARDENING_GRAPH_INTERVAL": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_a_patch(graph_emulator, tenant, live)
        # Graph holds the live run's next write for 30 s: it keeps the lock while the fleet looks at it.
        graph_emulator.inject("PATCH", tenant=tenant, delay_s=30)
        refused = make_fleet(project, "ACTION=up", "RECOVER=1")
        assert live.poll() is None, "the live run ended before the fleet ran: the test proves nothing"
    finally:
        out, err = live.communicate(timeout=600)
    assert refused.returncode != 0
    assert "locked by a run that is still alive" in refused.stdout, refused.stdout
    assert live.returncode == 0, out[-3000:] + err[-3000:]
    assert pending_operations(project) == []
