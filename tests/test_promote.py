"""`make promote` against the Graph emulator: evidence read, printed, and the stack file promoted or left alone."""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from cipp_hardening.commands.promote import Request, config_of, main, promote
from cipp_hardening.config import MspStack, parse_stack_config
from emulators.clients import GRAPH_ROLES, graph_client_env
from emulators.graph import GraphEmulator
from service_clients import credentials
from service_clients.graph_client import GraphError
from tests.emulators.fixtures import use_env
from tests.helpers import BREAK_GLASS_1, MSP_TENANT, ROOT, SERVICE_ACCOUNT, raw_config, run_main

PART_A_NAME = "Block CIPP Access - Outside Trusted IPs"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
ALICE = "00000000-0000-0000-0000-0000000a11ce"


@dataclass
class Tenant:
    emulator: GraphEmulator
    stack_file: Path
    part_a_id: str
    console: Console

    def run(self, *, days: int = 14, accept: bool = False, policy_id: str | None = None) -> int:
        request = Request("prod", self.stack_file, days, accept, policy_id, NOW)
        return promote(request, self.console)

    def output(self) -> str:
        return self.console.export_text()

    def sign_ins(self, *records: dict[str, Any]) -> None:
        self.emulator.add_sign_ins(MSP_TENANT, records)


def stack_text(emulator_url: str, *, operator_ip: bool = True) -> str:
    text = (ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  cipp-hardening:mode: msp\n", f"  cipp-hardening:mode: msp\n  cipp-hardening:graphUrl: {emulator_url}\n"
    )
    if operator_ip:
        text = text.replace(
            "    target: allCloudApps\n", "    target: allCloudApps\n    operatorCheckIp: 203.0.113.10\n"
        )
    return text


def part_a_policy(state: str = "enabledForReportingButNotEnforced") -> dict[str, Any]:
    return {
        "displayName": PART_A_NAME,
        "state": state,
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeGroups": ["00000000-0000-0000-0000-00000000b001"]},
            "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


@pytest.fixture
def tenant(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Tenant:
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(client_id, secret, MSP_TENANT, graph_roles=GRAPH_ROLES)
    use_env(monkeypatch, graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret))
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(stack_text(graph_emulator.url), encoding="utf-8")
    part_a_id = graph_emulator.put_policy(MSP_TENANT, part_a_policy())
    graph_emulator.put_policy(MSP_TENANT, {**part_a_policy("enabled"), "displayName": "Some other policy"})
    return Tenant(graph_emulator, stack_file, part_a_id, Console(record=True, width=240))


def sign_in(
    tenant: Tenant,
    result: str,
    *,
    user: str = ALICE,
    upn: str | None = "alice@msp.example",
    ip: str = "198.51.100.23",
    app: str = "CIPP",
    hours_ago: float = 1,
) -> dict[str, Any]:
    return {
        "createdDateTime": NOW - timedelta(hours=hours_ago),
        "userId": user,
        "userPrincipalName": upn,
        "ipAddress": ip,
        "appDisplayName": app,
        "appId": "00000000-0000-0000-0000-0000000ac1ff",
        "appliedConditionalAccessPolicies": [
            {"id": str(uuid.uuid4()), "displayName": "Some other policy", "result": "success"},
            {"id": tenant.part_a_id, "displayName": PART_A_NAME, "result": result},
        ],
    }


def promoted_record(stack_file: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    access = loaded["config"]["cipp-hardening:technicianAccess"]
    assert access["state"] == "enabled"
    return dict(access["promotedAfter"])


def test_clean_evidence_promotes_with_a_minimal_diff(tenant: Tenant) -> None:
    before = tenant.stack_file.read_text(encoding="utf-8")
    tenant.sign_ins(
        sign_in(tenant, "reportOnlyNotApplied", ip="203.0.113.40"),
        sign_in(tenant, "reportOnlySuccess", hours_ago=30),
        sign_in(tenant, "reportOnlyNotApplied", user=BREAK_GLASS_1, upn="bg1@msp.example"),
    )
    assert tenant.run() == 0
    after = tenant.stack_file.read_text(encoding="utf-8")
    diff = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]
    assert diff[:2] == ["-     state: reportOnly", "+     state: enabled"]
    assert diff[2] == "+     promotedAfter:"
    assert all(line.startswith("+       ") for line in diff[3:])
    assert "# Extra what-if scenarios" in after
    assert after.startswith("# The example MSP stack")
    record = promoted_record(tenant.stack_file)
    assert record == {
        "policyId": tenant.part_a_id,
        "policyDisplayName": PART_A_NAME,
        "window": {"from": "2026-05-01T12:00:00Z", "to": "2026-05-15T12:00:00Z"},
        "signInsEvaluated": 3,
        "wouldBlock": 0,
        "breakGlass": 0,
        "serviceAccount": 0,
        "accepted": False,
        "recordedAt": "2026-05-15T12:00:00Z",
    }
    assert "pulumi preview --stack prod --policy-pack policy" in tenant.output()
    config = config_of(after)
    assert config.technician_access.state == "enabled"
    assert config.technician_access.promoted_after == record


def test_would_be_blocked_sign_ins_are_listed_and_nothing_changes(tenant: Tenant) -> None:
    before = tenant.stack_file.read_text(encoding="utf-8")
    tenant.sign_ins(
        sign_in(tenant, "reportOnlyFailure", hours_ago=50),
        sign_in(tenant, "reportOnlyFailure", hours_ago=2),
        sign_in(tenant, "reportOnlyInterrupted", user=str(uuid.uuid4()), upn="bob@msp.example", ip="192.0.2.9"),
        sign_in(tenant, "reportOnlyNotApplied", ip="203.0.113.40"),
    )
    assert tenant.run() == 1
    assert tenant.stack_file.read_text(encoding="utf-8") == before
    output = tenant.output()
    alice = next(line for line in output.splitlines() if "alice@msp.example" in line)
    for cell in ("198.51.100.23", "CIPP", " 2 ", "2026-05-13T10:00:00Z", "2026-05-15T10:00:00Z"):
        assert cell in alice
    assert "bob@msp.example" in output
    assert "192.0.2.9" in output
    assert "4 evaluated, 3 would have been affected" in output
    assert "Not promoted, nothing changed: 3 sign-in(s) would have been blocked" in output
    assert "make promote STACK=prod ACCEPT=1" in output


def test_accept_promotes_after_a_human_read_the_list(tenant: Tenant) -> None:
    tenant.sign_ins(sign_in(tenant, "reportOnlyFailure"), sign_in(tenant, "reportOnlyNotApplied"))
    assert tenant.run(accept=True) == 0
    record = promoted_record(tenant.stack_file)
    assert record["accepted"] is True
    assert record["acceptedUsers"] == ["alice@msp.example"]
    assert (record["signInsEvaluated"], record["wouldBlock"]) == (2, 1)


def test_break_glass_and_service_account_sign_ins_are_called_out(tenant: Tenant) -> None:
    tenant.sign_ins(
        sign_in(tenant, "reportOnlyFailure", user=BREAK_GLASS_1, upn="bg1@msp.example"),
        sign_in(tenant, "reportOnlyFailure", user=SERVICE_ACCOUNT, upn="cipp-sa@msp.example", ip="13.69.64.10"),
    )
    assert tenant.run() == 1
    output = tenant.output()
    assert "Break-glass accounts the policy would have affected" in output
    assert "bg1@msp.example" in output
    assert "cipp-sa@msp.example" in output
    assert "CIPP service account sign-ins the policy would have affected" in output
    assert "Would have been blocked: none" in output
    assert tenant.run(accept=True) == 0
    record = promoted_record(tenant.stack_file)
    assert (record["breakGlass"], record["serviceAccount"], record["wouldBlock"]) == (1, 1, 0)


def test_every_page_of_the_window_is_read(tenant: Tenant) -> None:
    tenant.emulator.settings.sign_in_page_size = 5
    tenant.sign_ins(*(sign_in(tenant, "reportOnlyNotApplied", hours_ago=i + 1) for i in range(23)))
    tenant.sign_ins(sign_in(tenant, "reportOnlyFailure", hours_ago=24 * 20))  # before the 14-day window
    assert tenant.run() == 0
    assert promoted_record(tenant.stack_file)["signInsEvaluated"] == 23
    pages = tenant.emulator.requests("GET", "/auditLogs/signIns")
    assert len(pages) == 5
    assert all(page.query["$filter"].startswith("createdDateTime ge 2026-05-01T12:00:00Z") for page in pages)


def test_a_window_without_any_evaluated_sign_in_is_no_evidence(tenant: Tenant) -> None:
    assert tenant.run() == 1
    assert "the policy evaluated no sign-in in the window" in tenant.output()


def cli(tenant: Tenant, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--stack", "prod", "--stack-file", str(tenant.stack_file), *args])
    return code, capsys.readouterr().out


def test_the_lockout_guard_stops_before_reading_any_log(tenant: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    tenant.stack_file.write_text(stack_text(tenant.emulator.url, operator_ip=False), encoding="utf-8")
    before = tenant.stack_file.read_text(encoding="utf-8")
    code, output = cli(tenant, capsys)
    assert code == 2
    assert "Not promoted, nothing changed" in output
    assert "technicianAccess.operatorCheckIp: is required while the policy is enabled" in output
    assert tenant.emulator.requests("GET", "/auditLogs/signIns") == []
    assert tenant.stack_file.read_text(encoding="utf-8") == before


def test_the_policy_is_found_by_name_or_by_id(tenant: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    tenant.emulator.put_policy(MSP_TENANT, part_a_policy())
    code, output = cli(tenant, capsys)
    assert code == 2
    assert "2 policies are named" in output
    assert "pass --policy-id" in output
    tenant.sign_ins(sign_in(tenant, "reportOnlyNotApplied"))
    assert tenant.run(policy_id=tenant.part_a_id) == 0


def test_a_policy_missing_or_not_report_only_cannot_be_promoted(
    tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    other = next(p["id"] for p in tenant.emulator.policies(MSP_TENANT) if p["id"] != tenant.part_a_id)
    code, output = cli(tenant, capsys, "--policy-id", other)
    assert code == 2
    assert "is 'enabled' in the tenant, not report-only" in output
    tenant.stack_file.write_text(
        tenant.stack_file.read_text(encoding="utf-8").replace(PART_A_NAME, "Renamed"), encoding="utf-8"
    )
    code, output = cli(tenant, capsys)
    assert code == 2
    assert "no policy named 'Renamed' in the tenant" in output
    assert cli(tenant, capsys, "--days", "31")[0] == 2


def test_missing_audit_log_permission_is_reported(
    tenant: Tenant, graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = str(uuid.uuid4()), "secret-without-audit-log"
    graph_emulator.register_app(client_id, secret, MSP_TENANT, graph_roles=("Policy.Read.All",))
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret)
    credentials.reset_cache()
    graph_emulator.settings.enforce_roles = True
    with pytest.raises(GraphError, match="HTTP 403"):
        tenant.run()


def test_the_promoted_stack_deploys_and_passes_the_pack(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from policy.tests.harness import engine_config, run_pack, violations

    tenant.sign_ins(sign_in(tenant, "reportOnlyNotApplied"))
    assert tenant.run() == 0
    raw = raw_config(yaml.safe_load(tenant.stack_file.read_text(encoding="utf-8"))["config"])
    assert isinstance(parse_stack_config(raw), MspStack)
    run = run_main(raw)
    part_a = next(r for r in run.resources if r.name == "technician-access-policy")
    assert part_a.inputs["state"] == "enabled"
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))
    assert violations(run_pack(run)) == {}
