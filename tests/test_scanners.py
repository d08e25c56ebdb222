"""`cipp-hardening scanners`: the files validate against the scanners' own formats, and the client report names
each policy whose verdict Part D changes (docs/scanners.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cipp_hardening.commands.scanners import main
from cipp_hardening.config import ClientStack, parse_stack_config
from cipp_hardening.scanners import CAP_EXCLUSION_POLICIES, client_findings, control_matches, maester_guest_mfa
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, ROOT, raw_config, stack_yaml

FIXTURES = Path(__file__).parent / "fixtures" / "scanners"
CONTOSO_POLICIES = ROOT / "examples" / "client-contoso-policies"
MFA_ALL_USERS = "11111111-0000-0000-0000-000000000001"
ACCOUNT = "00000000-0000-0000-0000-00000000d001"


def stack_document(stack: str) -> dict[str, Any]:
    return {"config": stack_yaml(stack)}


def scuba_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((FIXTURES / "ScubaConfigSchema.json").read_text())
    return jsonschema.Draft7Validator(schema)


def written(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 0
    return out


def scuba_document(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def test_the_validator_accepts_scubagears_own_example_and_refuses_a_misspelt_guest_type() -> None:
    validator = scuba_validator()
    # Its Aad section only: the example's SecuritySuite SensitiveUsers lack the schema's "Name;" prefix upstream.
    validator.validate({"Aad": scuba_document(FIXTURES / "scubagear-full_config.yaml")["Aad"]})
    wrong = {"Aad": {"MS.AAD.3.2v2": {"CapExclusions": {"GuestUserTypes": ["serviceprovider"]}}}}
    assert list(validator.iter_errors(wrong))


def test_msp_files_follow_the_scanners_formats(tmp_path: Path) -> None:
    out = written(tmp_path, "--stack", "example")
    scuba = scuba_document(out / "scubagear.yaml")
    scuba_validator().validate(scuba)
    assert set(scuba["Aad"]) == set(CAP_EXCLUSION_POLICIES)
    for entry in scuba["Aad"].values():
        assert entry == {"CapExclusions": {"Users": [BREAK_GLASS_1, BREAK_GLASS_2]}}
    maester = json.loads((out / "maester-config.json").read_text())
    template = json.loads((FIXTURES / "maester-config.template.json").read_text())
    assert set(maester) == set(template)
    assert set(maester["GlobalSettings"]) == set(template["GlobalSettings"])
    # Test-MtCaEmergencyAccessExists reads each entry's Id (or UserPrincipalName) and Type (user | group).
    assert maester["GlobalSettings"]["EmergencyAccessAccounts"] == [
        {"Id": BREAK_GLASS_1, "Type": "user"},
        {"Id": BREAK_GLASS_2, "Type": "user"},
    ]


def test_msp_break_glass_groups_are_named_as_groups(tmp_path: Path) -> None:
    document = stack_document("example")
    group = "00000000-0000-0000-0000-00000000c0c0"
    document["config"]["cipp-hardening:technicianAccess"]["breakGlassGroupIds"] = [group]
    stack_file = tmp_path / "Pulumi.grouped.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    out = written(tmp_path, "--stack", "grouped", "--stack-file", str(stack_file))
    accounts = json.loads((out / "maester-config.json").read_text())["GlobalSettings"]["EmergencyAccessAccounts"]
    assert {"Id": group, "Type": "group"} in accounts
    scuba = scuba_document(out / "scubagear.yaml")
    scuba_validator().validate(scuba)
    assert scuba["Aad"]["MS.AAD.3.2v2"]["CapExclusions"]["Groups"] == [group]


def test_client_report_names_the_policy_part_d_flips_and_the_allow_list_restores_scubagear(tmp_path: Path) -> None:
    out = written(tmp_path, "--stack", "client-contoso", "--policies", str(CONTOSO_POLICIES))
    scuba = scuba_document(out / "scubagear.yaml")
    scuba_validator().validate(scuba)
    assert scuba == {"Aad": {"MS.AAD.3.2v2": {"CapExclusions": {"GuestUserTypes": ["serviceProvider"]}}}}
    report = (out / "scanner-report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| Require MFA for all users")]
    assert len(rows) == 2
    assert "ScubaGear MS.AAD.3.2v2" in rows[0]
    assert rows[0].endswith("| yes |")
    assert "Maester MT.1016" in rows[1]
    assert rows[1].endswith("| no |")
    # Report-only, out of scope or already excluding guests: no verdict of theirs changes.
    for name in ("Block sign-ins from outside the office", "Guests: MFA", "Pilot", "workload identities"):
        assert name not in report


def direct_config() -> ClientStack:
    raw = raw_config(stack_yaml("client-contoso"))
    raw["clientTenant"].update(accessMode="direct", serviceAccountUserId=ACCOUNT)
    config = parse_stack_config(raw)
    assert isinstance(config, ClientStack)
    return config


def contoso_policies() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(CONTOSO_POLICIES.glob("*.json"))]


def test_direct_mode_allow_lists_the_account_and_leaves_guest_mfa_alone() -> None:
    findings = client_findings(direct_config(), contoso_policies())
    assert findings.allow_list == {"Aad": {"MS.AAD.3.2v2": {"CapExclusions": {"Users": [ACCOUNT]}}}}
    assert [(f.policy_id, f.scanner) for f in findings.flips] == [(MFA_ALL_USERS, "ScubaGear MS.AAD.3.2v2")]
    scuba_validator().validate(findings.allow_list)


def policy(**parts: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    for key, value in parts.items():
        if key in {"state", "grantControls"}:
            body[key] = value
        else:
            body["conditions"][key] = value
    return body


@pytest.mark.parametrize(
    ("body", "controls"),
    [
        (policy(clientAppTypes=["exchangeActiveSync", "other"]), ["MS.AAD.1.1v1"]),
        (policy(userRiskLevels=["high"]), ["MS.AAD.2.1v1"]),
        (policy(signInRiskLevels=["high", "medium"]), ["MS.AAD.2.3v1"]),
        (policy(authenticationFlows={"transferMethods": "deviceCodeFlow"}), ["MS.AAD.3.9v1"]),
        (policy(authenticationFlows={"transferMethods": "deviceCodeFlow"}, state="disabled"), []),
        (
            policy(grantControls={"operator": "OR", "authenticationStrength": {"allowedCombinations": ["fido2"]}}),
            ["MS.AAD.3.1v1"],
        ),
        (
            policy(grantControls={"operator": "OR", "builtInControls": ["compliantDevice", "domainJoinedDevice"]}),
            ["MS.AAD.3.7v1"],
        ),
        (policy(users={"includeUsers": ["All"], "excludeRoles": ["r"]}, userRiskLevels=["high"]), []),
    ],
    ids=["legacy", "user risk", "sign-in risk", "device code", "disabled", "phishing-resistant", "devices", "roles"],
)
def test_control_matches_restate_aadconfig_rego(body: dict[str, Any], controls: list[str]) -> None:
    assert control_matches(body) == controls


def test_maester_guest_mfa_counts_no_policy_with_a_guest_exclusion() -> None:
    mfa = policy(grantControls={"operator": "OR", "builtInControls": ["mfa"]})
    assert maester_guest_mfa(mfa)
    mfa["conditions"]["users"]["excludeGuestsOrExternalUsers"] = {"guestOrExternalUserTypes": "serviceProvider"}
    assert not maester_guest_mfa(mfa)


def test_a_broken_stack_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = stack_document("example")
    del document["config"]["cipp-hardening:technicianAccess"]["breakGlassUserIds"]
    stack_file = tmp_path / "Pulumi.broken.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    out = tmp_path / "out"
    assert main(["--stack", "broken", "--stack-file", str(stack_file), "--out", str(out)]) == 2
    assert "breakGlassUserIds" in capsys.readouterr().out
    assert not out.exists()
