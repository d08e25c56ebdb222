"""Client stacks (Part D) under mocks: config, the declared exclusions, the provider's contract, onboarding."""

from __future__ import annotations

import base64
import pickletools
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening import cli
from cipp_hardening.commands.onboard import OnboardError, onboard
from cipp_hardening.commands.plan import build_plan
from cipp_hardening.config import ClientStack, ConfigError, parse_stack_config
from cipp_hardening.inventory import SNAPSHOT_ENV
from dynamic_providers.ca_exclusion import CaExclusionProvider
from tests.helpers import ROOT, raw_config, run_main, stack_yaml

EXAMPLE_POLICIES = ROOT / "examples" / "client-contoso-policies"
MSP = "00000000-0000-0000-0000-00000000a001"
CLIENT = "00000000-0000-0000-0000-0000000c0001"


def client_raw(**tenant: Any) -> dict[str, Any]:
    raw = raw_config(stack_yaml("client-contoso"))
    raw["clientTenant"].update(tenant)
    return raw


@pytest.fixture
def snapshot(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SNAPSHOT_ENV, str(EXAMPLE_POLICIES))
    return EXAMPLE_POLICIES


def test_example_client_stack_parses_with_defaults() -> None:
    config = parse_stack_config(client_raw())
    assert isinstance(config, ClientStack)
    assert config.client_tenant.include_states == ("enabled", "enabledForReportingButNotEnforced")
    assert config.client_tenant.on_conflict == "report"
    assert config.graph_url == "https://graph.microsoft.com"


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        ({"accessMode": "direct"}, "clientTenant.serviceAccountUserId", "is required"),
        (
            {"serviceAccountUserId": "00000000-0000-0000-0000-00000000d001"},
            "clientTenant.serviceAccountUserId",
            "only used with accessMode direct",
        ),
        ({"accessMode": "csp"}, "clientTenant.accessMode", "gdap, direct"),
        ({"tenantId": MSP}, "clientTenant.tenantId", "MSP tenant itself"),
        ({"mspTenantId": "contoso"}, "clientTenant.mspTenantId", "GUID"),
        ({"includeStates": ["on"]}, "clientTenant.includeStates[0]", "must be one of"),
        ({"includeStates": []}, "clientTenant.includeStates", "at least one"),
        ({"skipPolicyIds": ["x"]}, "clientTenant.skipPolicyIds[0]", "GUID"),
        ({"onConflict": "overwrite"}, "clientTenant.onConflict", "report, widen"),
        ({"tenantID": CLIENT}, "clientTenant.tenantID", "did you mean tenantId"),
    ],
)
def test_bad_client_config(change: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(client_raw(**change))
    assert any(p.key == key and fragment in p.message for p in caught.value.problems), caught.value.problems


def test_msp_keys_in_a_client_stack_are_refused() -> None:
    raw = client_raw()
    raw["trustedLocation"] = {"cidrs": ["203.0.113.0/24"]}
    with pytest.raises(ConfigError, match="trustedLocation: a key of msp stacks"):
        parse_stack_config(raw)


def test_program_declares_one_exclusion_per_policy_in_scope(snapshot: Path) -> None:
    run = run_main(client_raw(), stack="client-contoso")
    exclusions = run.of_type("pulumi-python:dynamic/cipp:CaExclusion")
    assert sorted(r.name for r in exclusions) == [
        f"msp-exclusions-11111111-0000-0000-0000-00000000000{i}" for i in (1, 2, 3)
    ]
    [component] = run.of_type("cipp:hardening:ClientTenantExclusions")
    assert all(r.parent == component.urn for r in exclusions)
    inputs = next(r.inputs for r in exclusions if r.name.endswith("0001"))
    assert {k: inputs[k] for k in ("tenantId", "policyId", "accessMode", "mspTenantId", "onConflict")} == {
        "tenantId": CLIENT,
        "policyId": "11111111-0000-0000-0000-000000000001",
        "accessMode": "gdap",
        "mspTenantId": MSP,
        "onConflict": "report",
    }
    assert {s["id"][-1] for s in run.outputs["skippedPolicies"]} == {"4", "5"}
    [conflict] = run.outputs["exclusionConflicts"]
    assert conflict["id"].endswith("0003")
    assert "service-provider users of every tenant" in conflict["detail"]
    assert any("not written" in w for w in run.messages("warning"))


def test_skip_policy_ids_and_states_narrow_the_scope(snapshot: Path) -> None:
    raw = client_raw(skipPolicyIds=["11111111-0000-0000-0000-000000000001"], includeStates=["enabled"])
    run = run_main(raw, stack="client-contoso")
    assert [r.name[-4:] for r in run.of_type("pulumi-python:dynamic/cipp:CaExclusion")] == ["0003"]


def test_direct_mode_plans_the_service_account(snapshot: Path) -> None:
    raw = client_raw(accessMode="direct", serviceAccountUserId="00000000-0000-0000-0000-00000000d001")
    run = run_main(raw, stack="client-contoso")
    actions = {p["id"][-1]: p["action"] for p in run.outputs["exclusionPlan"]}
    assert set(actions.values()) == {"add the CIPP service account to excludeUsers"}
    assert run.outputs["exclusionConflicts"] == []


def test_provider_is_pickled_by_reference_and_holds_nothing(snapshot: Path) -> None:
    run = run_main(client_raw(), stack="client-contoso")
    blob = run.of_type("pulumi-python:dynamic/cipp:CaExclusion")[0].inputs["__provider"]
    raw = base64.b64decode(blob["value"] if isinstance(blob, dict) else blob)
    listing = "\n".join(str(arg) for _, arg, _ in pickletools.genops(raw))
    assert "dynamic_providers.ca_exclusion" in listing
    assert "CaExclusionProvider" in listing
    assert b"Bearer" not in raw
    assert len(raw) < 300, "the provider must be referenced by module and class name, not pickled by value"
    assert CaExclusionProvider().__dict__ == {}


def test_plan_of_the_example_client_stack(snapshot: Path) -> None:
    document = build_plan("client-contoso")
    planned = {p["id"][-1]: p["action"] for p in document.outputs["exclusionPlan"]}
    assert planned == {
        "1": "add a service-provider exclusion for the MSP tenant",
        "2": "add the MSP tenant to the service-provider exclusion",
        "3": "conflict: not written (onConflict=report)",
    }


REAL_MSP = "5b1e7c2a-9d4f-4e3b-8a6c-2f1d0e9b8a7c"  # not the example's placeholder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose MSP stack names a real-looking MSP tenant."""
    text = (ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8").replace(MSP, REAL_MSP)
    (tmp_path / "Pulumi.prod.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_onboarding_writes_a_valid_stack(project: Path) -> None:
    path = onboard("fabrikam", "00000000-0000-0000-0000-0000000c0002", root=project)
    config = yaml.safe_load(path.read_text())["config"]
    assert config["cipp-hardening:clientTenant"]["mspTenantId"] == REAL_MSP
    stack = parse_stack_config(raw_config(config))
    assert isinstance(stack, ClientStack)
    with pytest.raises(OnboardError, match="refusing to overwrite"):
        onboard("fabrikam", "00000000-0000-0000-0000-0000000c0003", root=project)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"tenant": "not-a-guid"}, r"TENANT \(--tenant\): must be a GUID"),
        ({"mode": "direct"}, r"SERVICE_ACCOUNT \(--service-account\): is required"),
        ({"mode": "csp"}, r"MODE \(--mode\) must be gdap or direct"),
        ({"name": "Bad Name"}, r"NAME 'Bad Name': use lower-case"),
        ({"name": ""}, r"NAME \(--name\) is required"),
        ({"tenant": ""}, r"TENANT \(--tenant\) is required"),
        ({"tenant": REAL_MSP}, r"TENANT \(--tenant\): .*MSP tenant itself"),
        ({"name": "client-eta"}, r"leave out the client- prefix.*NAME=eta gives the stack client-eta"),
    ],
)
def test_onboarding_refuses_bad_input_naming_the_make_variable(
    project: Path, args: dict[str, str], message: str
) -> None:
    call = {"name": "eta", "tenant": "00000000-0000-0000-0000-0000000c0002", **args}
    with pytest.raises(OnboardError, match=message):
        onboard(call.pop("name"), call.pop("tenant"), root=project, **call)
    assert sorted(p.name for p in project.iterdir()) == ["Pulumi.prod.yaml"]


def test_onboarding_refuses_the_placeholder_msp_tenant(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.prod.yaml").write_text((ROOT / "Pulumi.example.yaml").read_text())
    with pytest.raises(OnboardError, match=f"Pulumi.prod.yaml: azuread:tenantId {MSP} is still the example's"):
        onboard("fabrikam", "00000000-0000-0000-0000-0000000c0002", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.prod.yaml"]


def test_onboarding_refuses_a_tenant_already_onboarded_under_another_name(project: Path) -> None:
    onboard("fabrikam", "00000000-0000-0000-0000-0000000C0002", root=project)
    with pytest.raises(OnboardError, match="already onboarded as stack client-fabrikam"):
        onboard("fabrikam-again", "00000000-0000-0000-0000-0000000c0002", root=project)
    assert not (project / "Pulumi.client-fabrikam-again.yaml").exists()


def test_onboard_command_exit_codes_and_messages(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["onboard", "--project-dir", str(project), "--tenant", "00000000-0000-0000-0000-0000000c0002"]
    assert cli.main([*base, "--name", "client-eta"]) == 2
    assert "NAME=eta" in capsys.readouterr().err
    assert cli.main([*base, "--name", "eta"]) == 0
    assert "pulumi stack init client-eta" in capsys.readouterr().out
    assert (project / "Pulumi.client-eta.yaml").exists()
