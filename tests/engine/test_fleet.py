"""`make fleet` through the real Automation API: three client stacks, one of them unreachable."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from pathlib import Path

from cipp_hardening.exclusion import msp_is_excluded
from emulators.clients import GRAPH_ROLES
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
    env = {
        "AZURE_AUTHORITY_HOST": graph_emulator.url,
        "AZURE_CLIENT_ID": client_id,
        "AZURE_CLIENT_SECRET": secret,
        "REQUESTS_CA_BUNDLE": str(graph_emulator.ca_bundle),
        "CIPP_HARDENING_GRAPH_INTERVAL": "0",
    }
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

    resumed = make_fleet(project, "ACTION=up", "RESUME=1")
    assert resumed.returncode != 0
    assert "1 stacks, 2 skipped" in resumed.stdout, resumed.stdout

    preview = make_fleet(project, "ACTION=preview", "STACKS=client-alpha,client-beta")
    assert preview.returncode == 0, preview.stdout + preview.stderr
