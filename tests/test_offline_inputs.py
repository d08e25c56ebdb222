"""The example cannot break a real stack: snapshots tied to their stack, stale scenarios named, placeholders said."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening import offline_inputs
from cipp_hardening.commands import plan, snapshot
from cipp_hardening.inventory import CIPP_SNAPSHOT_ENV, SNAPSHOT_ENV
from cipp_hardening.offline_inputs import choose, placeholder_keys
from cipp_hardening.scenario_files import config_from_stack_file
from emulators.clients import graph_client_env
from emulators.graph import GraphEmulator
from service_clients import credentials
from tests.emulators.fixtures import use_env
from tests.helpers import MSP_TENANT, ROOT

REAL_GROUP = "5b7d3c10-8e2f-4f6a-9c1d-2a3b4c5d6e7f"  # what a user pastes from the Entra portal
CONTOSO_POLICIES = ROOT / "examples" / "client-contoso-policies"


@pytest.fixture(autouse=True)
def _no_snapshot_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SNAPSHOT_ENV, CIPP_SNAPSHOT_ENV):
        monkeypatch.delenv(name, raising=False)


def edited(tmp_path: Path, stack: str, edit: Any, name: str | None = None) -> Path:
    """Pulumi.<stack>.yaml as a user edits it in place (relative paths keep pointing into examples/)."""
    document: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    edit(document["config"])
    path = tmp_path / f"Pulumi.{name or stack}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = plan.main(list(args))
    return code, " ".join(capsys.readouterr().out.split())


def test_a_real_group_id_with_the_example_scenarios_names_the_file_and_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real technician group put into the example stack, its scenarios kept: the stale entry is named."""
    monkeypatch.chdir(ROOT)

    def real_group(config: dict[str, Any]) -> None:
        config["cipp-hardening:technicianAccess"]["includeGroupIds"] = [REAL_GROUP]

    code, out = run(capsys, "--stack-file", str(edited(tmp_path, "example", real_group)))
    assert code == 2
    assert "invalid scenario file" in out
    assert "examples/scenarios-example.yaml" in out
    assert "scenarios[0] ('technician working from home').signIn.groups: 00000000-0000-0000-0000-00000000b001" in out
    assert "remove cipp-hardening:scenariosFile" in out


def test_the_example_cipp_snapshot_is_refused_for_another_manager_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)

    def real_cipp(config: dict[str, Any]) -> None:
        config["cipp-hardening:cippApi"]["managerClientId"] = str(uuid.uuid4())
        config["cipp-hardening:cippApi"]["clients"] = []

    code, out = run(capsys, "--stack-file", str(edited(tmp_path, "example", real_cipp)))
    assert code == 2
    assert "examples/example-cipp-clients.json (stack key cipp-hardening:offlineSnapshot.cippClients)" in out
    assert "does not list this stack's manager client" in out


def test_no_snapshot_is_picked_up_by_the_stack_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/example-cipp-clients.json is read because Pulumi.example.yaml names it, never by the stack name."""

    def without_key(config: dict[str, Any]) -> None:
        del config["cipp-hardening:offlineSnapshot"]

    code, out = run(capsys, "--stack", "example", "--stack-file", str(edited(tmp_path, "example", without_key)))
    assert code == 0
    assert "offline input:" not in out
    assert "CIPP-API clients not read (no CIPP snapshot)" in out
    code, out = run(capsys, "--stack", "example")
    assert "offline input: CIPP-API clients from" in out
    assert "(stack key cipp-hardening:offlineSnapshot.cippClients)" in out


def test_a_fresh_clone_plans_prod_with_its_own_technician_group_and_break_glass_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh clone: edit prod's technician group and break-glass ids to your own, `make plan STACK=prod` plans
    them. Nothing of the example is wired into Pulumi.prod.yaml, so no example file can refuse the edit."""
    monkeypatch.chdir(ROOT)
    break_glass = [str(uuid.uuid4()), str(uuid.uuid4())]

    def own_ids(config: dict[str, Any]) -> None:
        config["cipp-hardening:technicianAccess"]["includeGroupIds"] = [REAL_GROUP]
        config["cipp-hardening:technicianAccess"]["breakGlassUserIds"] = break_glass

    code, out = run(capsys, "--stack", "prod", "--stack-file", str(edited(tmp_path, "prod", own_ids)), "--json", "-")
    assert code == 0, out
    part_a = [
        body
        for body in map(lambda r: r["graph"], json.loads(out)["resources"])
        if body and REAL_GROUP in body.get("conditions", {}).get("users", {}).get("includeGroups", [])
    ]
    assert len(part_a) == 1
    assert part_a[0]["conditions"]["users"]["excludeUsers"][: len(break_glass)] == break_glass
    assert "examples/" not in (ROOT / "Pulumi.prod.yaml").read_text(encoding="utf-8")


def test_make_plan_alone_shows_the_example_and_stack_picks_another() -> None:
    """The README's first screen: `make plan` plans Pulumi.example.yaml; `make plan STACK=prod` plans prod."""
    dry = ["make", "-n", "-s", "-C", str(ROOT), "plan"]
    assert '--stack "example"' in subprocess.run(dry, capture_output=True, text=True, check=True).stdout
    with_stack = subprocess.run([*dry, "STACK=prod"], capture_output=True, text=True, check=True).stdout
    assert '--stack "prod"' in with_stack


def test_the_example_client_policies_are_refused_for_another_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def real_tenant(config: dict[str, Any]) -> None:
        config["cipp-hardening:clientTenant"]["tenantId"] = str(uuid.uuid4())

    code, out = run(capsys, "--stack-file", str(edited(tmp_path, "client-contoso", real_tenant)))
    assert code == 2
    assert "holds the policies of tenant 00000000-0000-0000-0000-0000000c0001" in out
    assert "cipp-hardening snapshot --stack" in out


def test_placeholders_are_said_first_and_only_for_placeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = plan.main(["--stack", "prod"])
    first = capsys.readouterr().out.lstrip().splitlines()[0]
    assert code == 0
    assert first.startswith("notice: Pulumi.prod.yaml still holds the example's placeholder ids")
    code = plan.main(["--stack", "prod", "--json", "-"])
    notices = json.loads(capsys.readouterr().out)["notices"]
    assert len(notices) == 1
    assert "azuread:tenantId" in notices[0]
    assert placeholder_keys({"clientTenant": {"tenantId": str(uuid.uuid4()), "skipPolicyIds": []}}) == []


def test_the_placeholder_keys_are_named() -> None:
    config = yaml.safe_load((ROOT / "Pulumi.client-contoso.yaml").read_text())["config"]
    assert placeholder_keys(config) == [
        "cipp-hardening:clientTenant.tenantId",
        "cipp-hardening:clientTenant.mspTenantId",
    ]


def test_a_saved_snapshot_is_found_under_snapshots(tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())

    def real_tenant(config: dict[str, Any]) -> None:
        config["cipp-hardening:clientTenant"]["tenantId"] = tenant
        del config["cipp-hardening:offlineSnapshot"]

    stack_file = edited(tmp_path, "client-contoso", real_tenant, "client-acme")
    config = config_from_stack_file(stack_file)
    assert choose("client-acme", config, {}, {}, tmp_path).paths == {}
    folder = tmp_path / "snapshots" / "client-acme"
    folder.mkdir(parents=True)
    (folder / "policies.json").write_text('{"value": []}')
    assert choose("client-acme", config, {}, {}, tmp_path).paths == {}, "no snapshot.yaml: an interrupted save"
    (folder / "snapshot.yaml").write_text(f"tenantId: {tenant}\nsavedAt: '2026-05-01T00:00:00Z'\n")
    inputs = choose("client-acme", config, {}, {}, tmp_path)
    assert inputs.paths == {"policies": folder.resolve()}
    assert inputs.used[0].endswith("(saved by `cipp-hardening snapshot`), saved 2026-05-01T00:00:00Z")


# --- the client plan without a snapshot, and the snapshot command -----------------------------------


@pytest.fixture
def client_tenant(graph_emulator: GraphEmulator) -> Iterator[str]:
    """A client tenant holding the sample policies; credentials.reset_cache() afterwards."""
    tenant = str(uuid.uuid4())
    graph_emulator.load_policies(tenant, CONTOSO_POLICIES)
    yield tenant
    credentials.reset_cache()


def acme_stack(tmp_path: Path, tenant: str, graph_url: str) -> Path:
    def acme(config: dict[str, Any]) -> None:
        config["cipp-hardening:clientTenant"]["tenantId"] = tenant
        config["cipp-hardening:graphUrl"] = graph_url
        del config["cipp-hardening:offlineSnapshot"]
        del config["cipp-hardening:scenariosFile"]

    return edited(tmp_path, "client-contoso", acme, "client-acme")


def test_a_client_plan_without_snapshot_or_credentials_says_how_to_get_one(
    tmp_path: Path,
    graph_emulator: GraphEmulator,
    client_tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = client_tenant
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", graph_emulator.url)
    monkeypatch.setenv("PATH", str(tmp_path))  # no Azure CLI either
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "ARM_CLIENT_ID", "ARM_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    credentials.reset_cache()
    stack_file = acme_stack(tmp_path, tenant, graph_emulator.url)
    code, out = run(capsys, "--stack", "client-acme", "--stack-file", str(stack_file))
    assert code == 2
    assert "has no snapshot of the tenant's policies" in out
    assert "`cipp-hardening snapshot --stack client-acme` (`make snapshot STACK=client-acme`)" in out


def test_snapshot_then_plan_offline(
    tmp_path: Path,
    graph_emulator: GraphEmulator,
    client_tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant = client_tenant
    stack_file = acme_stack(tmp_path, tenant, graph_emulator.url)
    out_dir = tmp_path / "snapshots" / "client-acme"
    app_id, app_secret = _register_reader(graph_emulator, tenant)
    use_env(monkeypatch, graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, app_id, app_secret))
    assert snapshot.main(["--stack", "client-acme", "--stack-file", str(stack_file), "--out", str(out_dir)]) == 0
    assert "saved into" in capsys.readouterr().out
    assert {p.name for p in out_dir.iterdir()} == {"policies.json", "named-locations.json", "snapshot.yaml"}
    assert yaml.safe_load((out_dir / "snapshot.yaml").read_text())["tenantId"] == tenant
    assert all(r.method == "GET" for r in graph_emulator.requests() if "/v1.0/" in r.path)

    # Offline now: no credential, no network needed; the plan finds the folder by itself.
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    credentials.reset_cache()
    graph_emulator.clear_log()
    monkeypatch.setattr(offline_inputs, "SNAPSHOTS_DIR", str(tmp_path / "snapshots"))  # where `snapshot` saved
    code, out = run(capsys, "--stack", "client-acme", "--stack-file", str(stack_file))
    assert code == 0, out
    assert f"offline input: client policies of tenant {tenant} from" in out
    assert "(saved by `cipp-hardening snapshot`)" in out
    assert "Part D: what apply will do to each client policy" in out
    assert [r for r in graph_emulator.requests() if "/v1.0/" in r.path] == []


def _register_reader(emulator: GraphEmulator, tenant: str) -> tuple[str, str]:
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    emulator.register_app(client_id, secret, MSP_TENANT, consented_tenants=[tenant], graph_roles=["Policy.Read.All"])
    return client_id, secret
