"""Part D under the real engine: a client stack's whole life through the Pulumi CLI.

The client tenant is the Graph emulator holding the shared corpus (the example client's sample
policies when the corpus is absent); the MSP's app reaches it with a client secret set through
`pulumi config set --secret`.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.exclusion import msp_is_excluded, select_policies
from emulators.clients import GRAPH_ROLES
from emulators.graph import GraphEmulator
from emulators.pulumi_project import (
    Process,
    PulumiFailed,
    PulumiProject,
    descendants,
    operation_counts,
    state_reveals,
    steps_of,
)
from tests.conftest import CORPUS
from tests.helpers import ROOT
from tests.part_d import policy

MSP = "00000000-0000-0000-0000-00000000a001"
IN_SCOPE = ("enabled", "enabledForReportingButNotEnforced")
SAMPLES = ROOT / "examples" / "client-contoso-policies"
EXCLUSION = "pulumi-python:dynamic/cipp:CaExclusion"
VOLATILE = ("modifiedDateTime",)
STACK = "client-e2e"


@dataclass
class ClientTenant:
    emulator: GraphEmulator
    tenant: str
    client_id: str
    secret: str
    source: Path

    def policies(self) -> dict[str, dict[str, Any]]:
        return {p["id"]: copy.deepcopy(p) for p in self.emulator.policies(self.tenant)}

    def writes(self) -> list[Any]:
        return [r for r in self.emulator.requests(path_contains="/v1.0/", tenant=self.tenant) if r.method != "GET"]


@pytest.fixture
def client_tenant(graph_emulator: GraphEmulator) -> ClientTenant:
    tenant = str(uuid.uuid4())
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(client_id, secret, MSP, consented_tenants=[tenant], graph_roles=GRAPH_ROLES)
    source = CORPUS if CORPUS.is_dir() else SAMPLES
    graph_emulator.load_policies(tenant, source)
    setup = ClientTenant(graph_emulator, tenant, client_id, secret, source)
    if source == CORPUS:
        _derive_a_conflict(setup)  # the samples carry one of their own
    return setup


@pytest.fixture
def project(pulumi_cli: Path, tmp_path: Path, client_tenant: ClientTenant) -> PulumiProject:
    env = {
        "AZURE_AUTHORITY_HOST": client_tenant.emulator.url,
        "REQUESTS_CA_BUNDLE": str(client_tenant.emulator.ca_bundle),
        "CIPP_HARDENING_GRAPH_INTERVAL": "0",
    }
    pulumi = PulumiProject.create(pulumi_cli, tmp_path, env)
    pulumi.stack_init(STACK)
    pulumi.config_set(STACK, "mode", "client")
    pulumi.config_set(STACK, "graphUrl", client_tenant.emulator.url)
    pulumi.config_set_object(
        STACK, "clientTenant", {"tenantId": client_tenant.tenant, "mspTenantId": MSP, "accessMode": "gdap"}
    )
    pulumi.config_set(STACK, "graphClientId", client_tenant.client_id)
    pulumi.config_set(STACK, "graphClientSecret", client_tenant.secret, secret=True)
    return pulumi


def _derive_a_conflict(setup: ClientTenant) -> None:
    """No corpus policy excludes guest types: give one in-scope policy a real guest selection without
    service providers (taken from another corpus policy) as its exclusion, which Part D cannot widen."""
    policies = setup.emulator.policies(setup.tenant)
    selection = next(
        s
        for p in policies
        if (s := p["conditions"]["users"].get("includeGuestsOrExternalUsers"))
        and "serviceProvider" not in s["guestOrExternalUserTypes"]
    )
    target = next(
        p
        for p in policies
        if p["state"] in IN_SCOPE and not p["conditions"]["users"].get("excludeGuestsOrExternalUsers")
    )
    target["conditions"]["users"]["excludeGuestsOrExternalUsers"] = copy.deepcopy(selection)
    setup.emulator.put_policy(setup.tenant, target)


def stable(policy: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in policy.items() if k not in VOLATILE}


def selected_ids(policies: dict[str, dict[str, Any]]) -> set[str]:
    selected, _ = select_policies(list(policies.values()), IN_SCOPE, ())
    return {str(p["id"]) for p in selected}


def test_preview_up_converge_and_destroy_restore_every_policy(
    project: PulumiProject, client_tenant: ClientTenant
) -> None:
    originals = client_tenant.policies()
    in_scope = selected_ids(originals)
    assert in_scope, f"no policy in scope in {client_tenant.source}"

    preview = project.preview_json(STACK)
    creates = steps_of(preview, "create", EXCLUSION)
    assert {s["urn"].split("::")[-1].removeprefix("msp-exclusions-") for s in creates} == in_scope
    assert client_tenant.writes() == [], "a preview never writes"

    update = project.run("up", "--yes", "--stack", STACK)
    outputs = project.outputs(STACK)
    conflicts = outputs["exclusionConflicts"]
    assert len(conflicts) == 1, conflicts
    assert f"client policy {conflicts[0]['displayName']!r}" in update.stdout, "the update names the conflict"
    statuses = outputs["exclusionStatuses"]
    assert set(statuses) == in_scope
    assert [pid for pid, status in statuses.items() if status == "conflict"] == [conflicts[0]["id"]]
    after = client_tenant.policies()
    for pid in in_scope - {conflicts[0]["id"]}:
        assert msp_is_excluded(after[pid]["conditions"]["users"], MSP), after[pid]["displayName"]
    for pid in set(originals) - in_scope | {conflicts[0]["id"]}:
        assert stable(after[pid]) == stable(originals[pid]), "a policy out of scope or in conflict is never written"

    written = len(client_tenant.writes())
    project.run("preview", "--expect-no-changes", "--stack", STACK)
    project.run("up", "--yes", "--expect-no-changes", "--stack", STACK)
    assert len(client_tenant.writes()) == written, "a converged tenant costs no write"

    assert not state_reveals(project.export(STACK), client_tenant.secret), "the client secret is in the state"
    assert client_tenant.secret not in update.stdout + update.stderr

    project.run("destroy", "--yes", "--stack", STACK)
    restored = client_tenant.policies()
    for pid, original in originals.items():
        assert stable(restored[pid]) == stable(original), original["displayName"]


def test_portal_drift_is_seen_by_refresh_and_repaired(project: PulumiProject, client_tenant: ClientTenant) -> None:
    project.run("up", "--yes", "--stack", STACK)
    statuses = project.outputs(STACK)["exclusionStatuses"]
    victim_id = next(pid for pid, status in statuses.items() if status == "excluded")
    victim = client_tenant.emulator.get_policy(client_tenant.tenant, victim_id)
    before = copy.deepcopy(victim["conditions"]["users"])
    victim["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None  # removed in the portal
    client_tenant.emulator.put_policy(client_tenant.tenant, victim)
    assert not msp_is_excluded(
        client_tenant.emulator.get_policy(client_tenant.tenant, victim_id)["conditions"]["users"], MSP
    )

    with pytest.raises(PulumiFailed):
        project.run("refresh", "--preview-only", "--expect-no-changes", "--yes", "--stack", STACK)

    project.run("refresh", "--yes", "--stack", STACK)
    project.run("up", "--yes", "--stack", STACK)
    repaired = client_tenant.emulator.get_policy(client_tenant.tenant, victim_id)["conditions"]["users"]
    assert msp_is_excluded(repaired, MSP)
    assert repaired == before
    project.run("preview", "--expect-no-changes", "--stack", STACK)


def test_a_policy_the_client_adds_later_is_covered_by_the_next_up(
    project: PulumiProject, client_tenant: ClientTenant
) -> None:
    project.run("up", "--yes", "--stack", STACK)
    new_id = client_tenant.emulator.put_policy(client_tenant.tenant, policy("Added by the client after onboarding"))
    preview = project.preview_json(STACK)
    assert [s["urn"].split("::")[-1] for s in steps_of(preview, "create", EXCLUSION)] == [f"msp-exclusions-{new_id}"]
    assert operation_counts(preview).get("create") == 1
    project.run("up", "--yes", "--stack", STACK)
    users = client_tenant.emulator.get_policy(client_tenant.tenant, new_id)["conditions"]["users"]
    assert msp_is_excluded(users, MSP)


def test_policies_the_client_deletes_leave_the_stack_cleanly(
    project: PulumiProject, client_tenant: ClientTenant
) -> None:
    project.run("up", "--yes", "--stack", STACK)
    statuses = project.outputs(STACK)["exclusionStatuses"]
    first, second = [pid for pid, status in statuses.items() if status == "excluded"][:2]

    client_tenant.emulator.delete_policy(client_tenant.tenant, first)
    preview = project.preview_json(STACK)
    assert [s["urn"].split("::")[-1] for s in steps_of(preview, "delete", EXCLUSION)] == [f"msp-exclusions-{first}"]
    project.run("up", "--yes", "--stack", STACK)  # the provider's delete finds the policy gone: nothing to undo
    assert first not in project.outputs(STACK)["exclusionStatuses"]

    # A blank id from Read is a delete to the engine's refresh: the resource leaves the state.
    client_tenant.emulator.delete_policy(client_tenant.tenant, second)
    project.run("refresh", "--yes", "--stack", STACK)
    in_state = [r["urn"] for r in project.export(STACK)["deployment"]["resources"] if r["type"] == EXCLUSION]
    assert not [urn for urn in in_state if second in urn]
    # The journal forgets the deleted policy's intent: bookkeeping, no request (docs/part-d.md "A killed run").
    preview = project.preview_json(STACK)
    assert [s["urn"].split("::")[-1] for s in preview["steps"] if s["op"] != "same"] == ["msp-exclusions-journal"]
    project.run("up", "--yes", "--stack", STACK)
    project.run("preview", "--expect-no-changes", "--stack", STACK)


def test_portal_drift_is_repaired_from_the_listing_without_refresh(
    project: PulumiProject, client_tenant: ClientTenant
) -> None:
    """Part D's cost on a fleet: a converged tenant costs its listing, a drifted policy one GET and one PATCH."""
    project.run("up", "--yes", "--skip-preview", "--stack", STACK)
    statuses = project.outputs(STACK)["exclusionStatuses"]
    victim_id = next(pid for pid, status in statuses.items() if status == "excluded")

    client_tenant.emulator.clear_log()
    project.run("up", "--yes", "--skip-preview", "--expect-no-changes", "--stack", STACK)
    converged = client_tenant.emulator.requests(path_contains="/v1.0/", tenant=client_tenant.tenant)
    assert [r.method for r in converged] == ["GET"], "a converged tenant costs one listing"

    victim = client_tenant.emulator.get_policy(client_tenant.tenant, victim_id)
    victim["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None  # removed in the portal
    client_tenant.emulator.put_policy(client_tenant.tenant, victim)
    preview = project.preview_json(STACK)
    updates = [s["urn"].split("::")[-1] for s in steps_of(preview, "update", EXCLUSION)]
    assert updates == [f"msp-exclusions-{victim_id}"], "the preview shows exactly the drifted policy"

    client_tenant.emulator.clear_log()
    project.run("up", "--yes", "--skip-preview", "--stack", STACK)
    sent = client_tenant.emulator.requests(path_contains="/v1.0/", tenant=client_tenant.tenant)
    assert sorted(r.method for r in sent) == ["GET", "GET", "GET", "PATCH"], "listing, GET, PATCH, confirming GET"
    assert msp_is_excluded(
        client_tenant.emulator.get_policy(client_tenant.tenant, victim_id)["conditions"]["users"], MSP
    )
    project.run("preview", "--expect-no-changes", "--stack", STACK)


# What runs below a `pulumi up` of this program (docs/engine.md, "When the CLI is killed").
PLUGIN_PROCESSES = {
    "language host": "pulumi-language-python ",
    "Python program": "pulumi-language-python-exec",
    "dynamic-provider host": "pulumi.dynamic",
}


def _poll(condition: Callable[[], Any], deadline_s: float, step_s: float = 0.05) -> Any:
    """condition()'s first truthy answer within the deadline, else its last answer."""
    end = time.monotonic() + deadline_s
    while not (answer := condition()) and time.monotonic() < end:
        time.sleep(step_s)
    return answer


def test_a_killed_cli_takes_its_plugins_with_it_and_nothing_writes_afterwards(
    project: PulumiProject, client_tenant: ClientTenant
) -> None:
    # Paced writes (one request every half second) make the update last as long as the tenant has policies in scope.
    project.env["CIPP_HARDENING_GRAPH_INTERVAL"] = "0.5"
    cli = subprocess.Popen(
        [str(project.cli), "up", "--yes", "--skip-preview", "--non-interactive", "--stack", STACK],
        cwd=project.workdir,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    plugins: list[Process] = []
    try:
        first_write = _poll(lambda: [r for r in client_tenant.writes() if r.method == "PATCH"], 240, 0.1)
        assert first_write, "the update never wrote: nothing to interrupt"
        plugins = descendants(cli.pid)
        for role, marker in PLUGIN_PROCESSES.items():
            assert any(marker in p.command for p in plugins), f"no {role} below the CLI: {plugins}"
        cli.kill()
        killed_at = time.time()
        cli.wait(timeout=60)

        _poll(lambda: not any(p.alive() for p in plugins), 5)
        survivors = [p for p in plugins if p.alive()]
        late = [r for r in client_tenant.writes() if r.received > killed_at + 0.5]
        assert survivors == [], f"still running 5 s after the CLI was killed: {survivors}"
        assert late == [], f"{len(late)} writes arrived after the engine was gone: {[r.path for r in late]}"
    finally:
        cli.kill()
        for process in plugins:
            if process.alive():
                os.kill(process.pid, signal.SIGKILL)
