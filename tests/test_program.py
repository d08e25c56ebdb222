"""The whole program with the example stacks, each component, and the offline plan command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cipp_hardening.commands.plan import build_plan, main
from cipp_hardening.config import MspStack, parse_stack_config
from cipp_hardening.offline import run_program
from components.service_account import ServiceAccountPolicy, ServiceAccountPolicyArgs
from components.technician_access import TechnicianAccessPolicy, TechnicianAccessPolicyArgs
from components.trusted_location import TrustedLocation, TrustedLocationArgs
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, ROOT, SERVICE_ACCOUNT, TECH_GROUP, msp_raw, run_main

POLICY = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"
LOCATION = "azuread:index/namedLocation:NamedLocation"
CIPP_RANGES = "pulumi-python:dynamic/cipp:CippApiClientRanges"


def msp_config() -> MspStack:
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    return config


def test_trusted_location_component() -> None:
    config = msp_config()
    run = run_program(lambda: TrustedLocation("loc", TrustedLocationArgs(config.trusted_location)), {})
    [component] = run.of_type("cipp:hardening:TrustedLocation")
    [location] = run.of_type(LOCATION)
    assert location.parent == component.urn
    assert location.inputs["ip"] == {"ipRanges": ["203.0.113.0/24", "2001:db8::/32"], "trusted": True}
    assert location.inputs["displayName"] == "Trusted - MSP Office"


def test_technician_component_excludes_location_break_glass_and_service_account() -> None:
    config = msp_config()
    args = TechnicianAccessPolicyArgs(config.technician_access, "loc-object-id", SERVICE_ACCOUNT)
    run = run_program(lambda: TechnicianAccessPolicy("tech", args), {})
    [component] = run.of_type("cipp:hardening:TechnicianAccessPolicy")
    [policy] = run.of_type(POLICY)
    assert policy.parent == component.urn
    conditions = policy.inputs["conditions"]
    assert conditions["users"]["includedGroups"] == [TECH_GROUP]
    assert conditions["users"]["excludedUsers"] == [BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT]
    assert conditions["locations"] == {"includedLocations": ["All"], "excludedLocations": ["loc-object-id"]}
    assert conditions["applications"] == {"includedApplications": ["All"]}
    assert policy.inputs["grantControls"] == {"operator": "OR", "builtInControls": ["block"]}
    assert policy.inputs["state"] == "enabledForReportingButNotEnforced"


def test_technician_component_can_target_the_cipp_app() -> None:
    raw = msp_raw()
    raw["technicianAccess"].update(target="cippApp", cippAppId="00000000-0000-0000-0000-0000000ccccc")
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    args = TechnicianAccessPolicyArgs(config.technician_access, "loc", SERVICE_ACCOUNT)
    run = run_program(lambda: TechnicianAccessPolicy("tech", args), {})
    [policy] = run.of_type(POLICY)
    assert policy.inputs["conditions"]["applications"] == {
        "includedApplications": ["00000000-0000-0000-0000-0000000ccccc"]
    }


def test_service_account_component_has_no_location_condition() -> None:
    config = msp_config()
    run = run_program(lambda: ServiceAccountPolicy("sa", ServiceAccountPolicyArgs(config.service_account)), {})
    [policy] = run.of_type(POLICY)
    assert "locations" not in policy.inputs["conditions"]
    assert policy.inputs["conditions"]["users"] == {"includedUsers": [SERVICE_ACCOUNT]}
    assert policy.inputs["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    assert policy.inputs["sessionControls"] == {
        "signInFrequencyInterval": "everyTime",
        "signInFrequencyAuthenticationType": "primaryAndSecondaryAuthentication",
    }


def test_service_account_component_excludes_the_break_glass_accounts_and_groups() -> None:
    config = msp_config()
    args = ServiceAccountPolicyArgs(
        config.service_account, break_glass_user_ids=(BREAK_GLASS_1, BREAK_GLASS_2), break_glass_group_ids=("bg-group",)
    )
    run = run_program(lambda: ServiceAccountPolicy("sa", args), {})
    [policy] = run.of_type(POLICY)
    assert policy.inputs["conditions"]["users"] == {
        "includedUsers": [SERVICE_ACCOUNT],
        "excludedUsers": [BREAK_GLASS_1, BREAK_GLASS_2],
        "excludedGroups": ["bg-group"],
    }


def test_plan_of_prod_shows_part_b_excluding_the_break_glass_accounts() -> None:
    document = build_plan("prod")
    policies = {p["displayName"]: p for p in document.graph_objects("policy")}
    users = policies["CIPP Service Account Conditional Access Policy"]["conditions"]["users"]
    assert users["includeUsers"] == [SERVICE_ACCOUNT]
    assert users["excludeUsers"] == [BREAK_GLASS_1, BREAK_GLASS_2]
    assert users["excludeGroups"] == []


def test_whole_program_with_the_prod_stack() -> None:
    run = run_main(msp_raw())
    types = sorted(r.type for r in run.resources)
    assert types == sorted(
        [
            "cipp:hardening:TrustedLocation",
            "cipp:hardening:TechnicianAccessPolicy",
            "cipp:hardening:ServiceAccountPolicy",
            "cipp:hardening:CippApiAllowlists",
            LOCATION,
            POLICY,
            POLICY,
            CIPP_RANGES,
            CIPP_RANGES,
            "pulumi-python:dynamic/cipp:CippApiDestroyGuard",
        ]
    )
    [location] = run.of_type(LOCATION)
    technician = next(r for r in run.of_type(POLICY) if r.name == "technician-access-policy")
    # The policy refers to the location by its bare object id, not the /identity/... resource id.
    assert technician.inputs["conditions"]["locations"]["excludedLocations"] == [location.inputs["objectId"]]
    assert run.outputs["trustedLocationId"] == location.inputs["objectId"]
    assert run.outputs["technicianPolicyState"] == "enabledForReportingButNotEnforced"
    assert any("documentation range" in w for w in run.messages("warning"))


def test_example_stack_uses_only_documentation_ranges_and_fake_guids() -> None:
    text = (Path(__file__).resolve().parents[1] / "Pulumi.example.yaml").read_text()
    config = msp_config()
    assert set(config.trusted_location.cidrs) <= {"203.0.113.0/24", "2001:db8::/32"}
    guids = {g for g in yaml.safe_load(text)["config"]["cipp-hardening:technicianAccess"]["breakGlassUserIds"]}
    assert all(
        g.startswith("00000000-0000-0000-0000-") for g in guids | {config.tenant_id, config.service_account.user_id}
    )


def test_plan_document_renders_three_graph_bodies() -> None:
    document = build_plan("prod")
    [location] = document.graph_objects("namedLocation")
    policies = {p["displayName"]: p for p in document.graph_objects("policy")}
    assert set(policies) == {
        "Block CIPP Access - Outside Trusted IPs",
        "CIPP Service Account Conditional Access Policy",
    }
    technician = policies["Block CIPP Access - Outside Trusted IPs"]
    assert technician["conditions"]["locations"]["excludeLocations"] == [location["id"]]
    assert location["isTrusted"] is True


def test_plan_command_prints_tree_and_bodies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prod"]) == 0
    out = capsys.readouterr().out
    for expected in ("trusted-location-named-location", "technician-access-policy", "service-account-policy"):
        assert expected in out
    assert '"frequencyInterval": "everyTime"' in out
    assert '"#microsoft.graph.ipNamedLocation"' in out


def test_plan_command_writes_json(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    assert main(["--stack", "prod", "--json", str(target)]) == 0
    document = json.loads(target.read_text())
    assert document["stack"] == "prod"
    assert sum(1 for r in document["resources"] if r["graph"]) == 3


def test_plan_command_fails_on_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = yaml.safe_load((Path(__file__).resolve().parents[1] / "Pulumi.example.yaml").read_text())
    del stack["config"]["cipp-hardening:technicianAccess"]["breakGlassUserIds"]
    stack_file = tmp_path / "Pulumi.broken.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    assert main(["--stack", "broken", "--stack-file", str(stack_file)]) == 2
    assert "technicianAccess.breakGlassUserIds" in capsys.readouterr().out


def test_a_client_stack_loads_neither_pulumi_azuread_nor_the_msp_parts() -> None:
    """A client stack's CPU per run is mostly imports (BENCHMARKS.md §9): it must not pay for the MSP's."""
    code = (
        "import sys\n"
        "from cipp_hardening.commands.plan import build_plan\n"
        "document = build_plan('client-contoso')\n"
        "assert any(r['type'] == 'pulumi-python:dynamic/cipp:CaExclusion' for r in document.resources)\n"
        "msp = ('pulumi_azuread', 'components.trusted_location', 'components.technician_access',\n"
        "       'components.service_account', 'components.cipp_api_allowlists', 'cipp_hardening.tenant_check')\n"
        "print(sorted(m for m in msp if m in sys.modules))\n"
    )
    env = {**os.environ, "CIPP_HARDENING_POLICY_SNAPSHOT": str(ROOT / "examples" / "client-contoso-policies")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
