"""`make verify`: the scenario matrix against a live tenant (the Graph emulator), read-only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening.commands import verify
from cipp_hardening.commands.plan import build_plan
from cipp_hardening.commands.verify import EXIT_BROKEN, EXIT_MISSING_EXCLUSIONS, GRAPH_SECRET_ENV, VerifyReport, main
from cipp_hardening.scenarios import Status, config_from_stack_file, policies_after_apply
from dynamic_providers import credentials
from emulators.clients import graph_client_env
from emulators.graph import GraphEmulator
from tests.emulators.fixtures import use_env
from tests.helpers import BREAK_GLASS_1, MSP_TENANT, ROOT

CLIENT_TENANT = "00000000-0000-0000-0000-0000000c0001"
CONTOSO_POLICIES = ROOT / "examples" / "client-contoso-policies"


@dataclass(frozen=True)
class Reader:
    """An app of the MSP with Policy.Read.All only, consented in the client tenant. (The emulator puts app
    roles only in tokens for https://graph.microsoft.com, not for its own URL, so role enforcement cannot be
    switched on here: the request log proves the reads instead.)"""

    emulator: GraphEmulator
    client_id: str
    secret: str

    def stack_file(self, tmp_path: Path, stack: str, **extra: Any) -> Path:
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        document["config"]["cipp-hardening:graphUrl"] = self.emulator.url
        document["config"].update({f"cipp-hardening:{k}": v for k, v in extra.items()})
        path = tmp_path / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    def writes(self) -> list[Any]:
        return [r for r in self.emulator.requests() if r.method != "GET" and "/v1.0/" in r.path]


@pytest.fixture
def reader(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(
        client_id, secret, MSP_TENANT, consented_tenants=[CLIENT_TENANT], graph_roles=["Policy.Read.All"]
    )
    monkeypatch.delenv(GRAPH_SECRET_ENV, raising=False)
    use_env(monkeypatch, graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret))
    yield Reader(graph_emulator, client_id, secret)
    credentials.reset_cache()


def deploy_prod_plan(emulator: GraphEmulator) -> None:
    """What `pulumi up` of the example MSP stack leaves in the tenant (ids kept from the plan)."""
    document = build_plan("prod")
    for location in document.graph_objects("namedLocation"):
        emulator.add_named_location(MSP_TENANT, location)
    for policy in document.graph_objects("policy"):
        emulator.put_policy(MSP_TENANT, policy)


def verify_stack(tmp_path: Path, reader: Reader, stack: str) -> VerifyReport:
    return verify.verify_stack(stack, reader.stack_file(tmp_path, stack))


def test_a_deployed_msp_stack_holds_every_invariant_read_only(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    report = verify_stack(tmp_path, reader, "prod")
    assert report.exit_code == 0
    assert all(r.ok for r in report.matrix.rows)
    assert report.missing_policies == []
    assert reader.writes() == []
    reads = reader.emulator.requests(method="GET", path_contains="/v1.0/identity/conditionalAccess/")
    assert {r.path.split("?")[0].rsplit("/", 1)[-1] for r in reads} == {"policies", "namedLocations"}


def test_a_tenant_policy_that_blocks_break_glass_breaks_the_invariant(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.put_policy(
        MSP_TENANT,
        {
            "displayName": "Block everyone outside the EU",
            "state": "enabled",
            "conditions": {
                "users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
                "clientAppTypes": ["all"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
    )
    report = verify_stack(tmp_path, reader, "prod")
    assert report.exit_code == EXIT_BROKEN
    broken = next(r for r in report.matrix.failures if BREAK_GLASS_1 in r.name)
    assert broken.responsible == ("Block everyone outside the EU",)


def test_an_msp_tenant_without_the_policies_says_so(tmp_path: Path, reader: Reader) -> None:
    reader.emulator.add_tenant(MSP_TENANT)
    report = verify_stack(tmp_path, reader, "prod")
    assert report.exit_code == EXIT_BROKEN
    assert report.missing_policies == [
        "Block CIPP Access - Outside Trusted IPs",
        "CIPP Service Account Conditional Access Policy",
    ]
    failing = {r.name for r in report.matrix.failures}
    assert failing == {
        "technician outside the trusted ranges",
        "CIPP service account from Azure",
        "technician working from home",
    }


def test_a_client_tenant_before_and_after_up(tmp_path: Path, reader: Reader) -> None:
    reader.emulator.load_policies(CLIENT_TENANT, CONTOSO_POLICIES)
    before = verify_stack(tmp_path, reader, "client-contoso")
    assert before.exit_code == EXIT_MISSING_EXCLUSIONS
    assert {p["displayName"] for p in before.missing_exclusions} == {
        "Require MFA for all users",
        "Block sign-ins from outside the office",
        "Guests: MFA, internal guests exempt",
    }
    msp_row = before.matrix.rows[0]
    assert msp_row.status is Status.UNCERTAIN, "the office policy's AllTrusted needs the MFA trusted IPs"

    config = config_from_stack_file(ROOT / "Pulumi.client-contoso.yaml")
    for policy in policies_after_apply(config, reader.emulator.policies(CLIENT_TENANT)):  # type: ignore[arg-type]
        reader.emulator.put_policy(CLIENT_TENANT, policy)
    after = verify_stack(tmp_path, reader, "client-contoso")
    assert after.matrix.rows[0].status is Status.OK
    assert [p["displayName"] for p in after.missing_exclusions] == ["Guests: MFA, internal guests exempt"]
    assert after.exit_code == EXIT_MISSING_EXCLUSIONS, "a conflict left alone is still a policy without the exclusion"


def test_the_command(tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_prod_plan(reader.emulator)
    report_file = tmp_path / "report.json"
    assert main(["--stack-file", str(reader.stack_file(tmp_path, "prod")), "--json", str(report_file)]) == 0
    out = capsys.readouterr().out
    assert "live tenant 00000000-0000-0000-0000-00000000a001" in out
    assert "9 scenario(s): 9 ok" in out
    assert '"missingPolicies": []' in report_file.read_text()


def test_an_explicit_client_app_takes_its_secret_from_the_environment(
    tmp_path: Path, reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader.emulator.load_policies(CLIENT_TENANT, CONTOSO_POLICIES)
    stack_file = reader.stack_file(
        tmp_path, "client-contoso", graphClientId=reader.client_id, graphClientSecret={"secure": "AAAB"}
    )
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-this-one")
    monkeypatch.setenv(GRAPH_SECRET_ENV, reader.secret)
    credentials.reset_cache()
    assert main(["--stack-file", str(stack_file)]) == EXIT_MISSING_EXCLUSIONS


def test_graph_and_config_errors_exit_2(
    tmp_path: Path, reader: Reader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong")
    credentials.reset_cache()
    assert main(["--stack-file", str(reader.stack_file(tmp_path, "prod"))]) == 2
    assert "could not read the tenant's policies" in capsys.readouterr().out
    assert main(["--stack", "does-not-exist"]) == 2
