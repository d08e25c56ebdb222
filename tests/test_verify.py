"""`make verify`: the scenario matrix against a live tenant (the Graph emulator), read-only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening.commands import verify
from cipp_hardening.commands.plan import build_plan
from cipp_hardening.commands.verify import (
    EXIT_BROKEN,
    EXIT_CANNOT_PROVE,
    EXIT_MISSING_EXCLUSIONS,
    GRAPH_SECRET_ENV,
    VerifyReport,
    main,
)
from cipp_hardening.offline import OfflineRun, OfflineRunError
from cipp_hardening.scenario_files import config_from_stack_file
from cipp_hardening.scenarios import Status, policies_after_apply
from emulators.clients import graph_client_env
from emulators.graph import GraphEmulator
from service_clients import credentials
from tests.emulators.fixtures import use_env
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, MSP_TENANT, ROOT, SERVICE_ACCOUNT, TECH_GROUP

CLIENT_TENANT = "00000000-0000-0000-0000-0000000c0001"
NO_MFA_IPS: dict[str, Any] = {"assumptions": {"legacyMfaTrustedIps": []}}
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
        for key, value in extra.items():  # None: the key is not stated at all
            document["config"].pop(f"cipp-hardening:{key}", None)
            if value is not None:
                document["config"][f"cipp-hardening:{key}"] = value
        path = tmp_path / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    def writes(self) -> list[Any]:
        """Every request that could change the tenant: not GETs, nor What If's POST, which only evaluates."""
        return [
            r
            for r in self.emulator.requests()
            if r.method != "GET" and "/v1.0/" in r.path and not r.path.endswith("/conditionalAccess/evaluate")
        ]


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


TECHNICIANS = {
    "00000000-0000-0000-0000-0000000f0001": "tech.one@msp.example",
    "00000000-0000-0000-0000-0000000f0002": "tech.two@msp.example",
}
UPNS = {
    BREAK_GLASS_1: "breakglass1@msp.example",
    BREAK_GLASS_2: "breakglass2@msp.example",
    SERVICE_ACCOUNT: "cipp-service@msp.example",
    **TECHNICIANS,
}


def seed_directory(emulator: GraphEmulator, users: dict[str, dict[str, Any]] | None = None) -> None:
    """The accounts and the technician group the example MSP stack names, enabled and cloud-only; `users`
    overrides properties by user id."""
    tenant = MSP_TENANT
    for user_id, upn in UPNS.items():
        emulator.add_user(tenant, {"id": user_id, "userPrincipalName": upn, **(users or {}).get(user_id, {})})
    emulator.add_group(
        tenant, {"id": TECH_GROUP, "displayName": "CIPP technicians", "isAssignableToRole": True}, list(TECHNICIANS)
    )


def deploy_prod_plan(emulator: GraphEmulator) -> None:
    """What `pulumi up` of the example MSP stack leaves in the tenant (ids kept from the plan), and the
    directory objects the stack names."""
    document = build_plan("example")
    for location in document.graph_objects("namedLocation"):
        emulator.add_named_location(MSP_TENANT, location)
    for policy in document.graph_objects("policy"):
        emulator.put_policy(MSP_TENANT, policy)
    seed_directory(emulator)


def verify_stack(tmp_path: Path, reader: Reader, stack: str) -> VerifyReport:
    return verify.verify_stack(stack, reader.stack_file(tmp_path, stack))


def test_a_deployed_msp_stack_holds_every_invariant_read_only(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    report = verify_stack(tmp_path, reader, "example")
    assert report.exit_code == 0
    assert all(r.ok for r in report.matrix.rows)
    assert report.missing_policies == []
    assert reader.writes() == []
    reads = reader.emulator.requests(method="GET", path_contains="/v1.0/identity/conditionalAccess/")
    assert {r.path.split("?")[0].rsplit("/", 1)[-1] for r in reads} == {"policies", "namedLocations"}
    assert report.directory is not None
    assert report.directory.failures == ()
    assert report.drift == []
    technicians = [r.sign_in for r in report.matrix.rows if r.name.startswith("technician") and "outside" in r.name]
    assert [t.split(";")[0] for t in technicians] == [f"user {t}" for t in TECHNICIANS], "real members, not made up"


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
    report = verify_stack(tmp_path, reader, "example")
    assert report.exit_code == EXIT_BROKEN
    broken = next(r for r in report.matrix.failures if BREAK_GLASS_1 in r.name)
    assert broken.responsible == ("Block everyone outside the EU",)


def test_an_msp_tenant_without_the_policies_says_so(tmp_path: Path, reader: Reader) -> None:
    reader.emulator.add_tenant(MSP_TENANT)
    seed_directory(reader.emulator)
    report = verify_stack(tmp_path, reader, "example")
    assert report.exit_code == EXIT_BROKEN
    assert report.missing_policies == [
        "Block CIPP Access - Outside Trusted IPs",
        "CIPP Service Account Conditional Access Policy",
    ]
    failing = {r.name for r in report.matrix.failures}
    assert failing == {
        "technician outside the trusted ranges",
        "technician tech.two@msp.example outside the trusted ranges",
        "CIPP service account from Azure",
        "technician working from home",
    }
    assert report.drift == [
        "named location 'Trusted - MSP Office': 0 in the tenant with that name, expected exactly one"
    ]


def test_a_client_tenant_before_and_after_up(tmp_path: Path, reader: Reader) -> None:
    reader.emulator.load_policies(CLIENT_TENANT, CONTOSO_POLICIES)
    before = verify_stack(tmp_path, reader, "client-contoso")
    assert before.exit_code == EXIT_CANNOT_PROVE, "a guard row undecided outranks the missing exclusions"
    assert {p["displayName"] for p in before.missing_exclusions} == {
        "Require MFA for all users",
        "Block sign-ins from outside the office",
        "Guests: MFA, internal guests exempt",
    }
    msp_row = before.matrix.rows[0]
    assert msp_row.status is Status.CANNOT_PROVE, "the office policy's AllTrusted needs the MFA trusted IPs"
    assert before.exit_code == EXIT_CANNOT_PROVE
    assert "stating cipp-hardening:assumptions.legacyMfaTrustedIps" in msp_row.actual
    stated = verify.verify_stack("client-contoso", reader.stack_file(tmp_path, "client-contoso", **NO_MFA_IPS))
    assert stated.exit_code == EXIT_BROKEN, "with none stated, the report-only office policy would block the MSP"

    config = config_from_stack_file(ROOT / "Pulumi.client-contoso.yaml")
    for policy in policies_after_apply(config, reader.emulator.policies(CLIENT_TENANT)):  # type: ignore[arg-type]
        reader.emulator.put_policy(CLIENT_TENANT, policy)
    after = verify_stack(tmp_path, reader, "client-contoso")
    assert after.matrix.rows[0].status is Status.OK
    assert after.directory is not None
    assert after.directory.findings == (), "a GDAP client stack names no directory object"
    assert [p["displayName"] for p in after.missing_exclusions] == ["Guests: MFA, internal guests exempt"]
    assert after.exit_code == EXIT_MISSING_EXCLUSIONS, "a conflict left alone is still a policy without the exclusion"


def test_the_command(tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_prod_plan(reader.emulator)
    report_file = tmp_path / "report.json"
    assert main(["--stack-file", str(reader.stack_file(tmp_path, "example")), "--json", str(report_file)]) == 0
    out = capsys.readouterr().out
    assert "live tenant 00000000-0000-0000-0000-00000000a001" in out
    assert "10 scenario(s): 10 ok" in out
    assert '"missingPolicies": []' in report_file.read_text()
    assert out.rstrip().splitlines()[-1] == "verdict: ok (exit 0)"


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
    assert main(["--stack-file", str(stack_file)]) == EXIT_CANNOT_PROVE  # read with the stack's own app


def test_graph_and_config_errors_exit_2(
    tmp_path: Path, reader: Reader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong")
    credentials.reset_cache()
    assert main(["--stack-file", str(reader.stack_file(tmp_path, "example"))]) == 2
    out = capsys.readouterr().out
    assert "could not read the tenant" in out
    assert out.rstrip().splitlines()[-1] == "verdict: error (exit 2)"
    assert main(["--stack", "does-not-exist"]) == 2


# -- the directory, drift and "cannot prove" (docs/assurance.md) ------------------------------------

PORTAL_POLICY = "Block everyone outside AllTrusted (portal, 2019)"


def portal_block(*excluded: str) -> dict[str, Any]:
    """A policy made in the portal years ago: all users blocked outside AllTrusted, some accounts excluded."""
    return {
        "id": "00000000-0000-0000-0000-0000000a1100",
        "displayName": PORTAL_POLICY,
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"], "excludeUsers": list(excluded)},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
            "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


def run_verify(tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str], **config: Any) -> tuple[int, str]:
    stack_file = reader.stack_file(tmp_path, "example", scenariosFile=None, **config)
    code = main(["--stack-file", str(stack_file)])
    return code, capsys.readouterr().out


def test_done_when_a_portal_policy_that_forgets_the_service_account_and_then_a_disabled_break_glass(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.put_policy(MSP_TENANT, portal_block(BREAK_GLASS_1, BREAK_GLASS_2))

    code, out = run_verify(tmp_path, reader, capsys, assumptions=None)
    assert code == EXIT_CANNOT_PROVE
    assert f"'{PORTAL_POLICY}' cannot be decided on location" in out
    assert "stating cipp-hardening:assumptions.legacyMfaTrustedIps" in out
    assert out.rstrip().splitlines()[-1] == "verdict: cannot prove (exit 5): 1 guard row(s) cannot be proven"

    code, out = run_verify(tmp_path, reader, capsys)  # Pulumi.example.yaml states legacyMfaTrustedIps: []
    assert code == EXIT_BROKEN
    assert "✗ FAIL CIPP service account from Azure" in out
    assert f"responsible: {PORTAL_POLICY}" in out

    reader.emulator.put_policy(MSP_TENANT, portal_block(BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT))
    seed_directory(reader.emulator, {BREAK_GLASS_1: {"accountEnabled": False}})
    code, out = run_verify(tmp_path, reader, capsys)
    assert code == EXIT_BROKEN
    assert (
        f"break-glass account {BREAK_GLASS_1} (breakglass1@msp.example, technicianAccess.breakGlassUserIds) "
        "is disabled (accountEnabled false)"
    ) in out
    assert out.rstrip().splitlines()[-1] == "verdict: broken (exit 3): 1 directory failure(s)"

    seed_directory(reader.emulator)
    code, out = run_verify(tmp_path, reader, capsys)
    assert code == 0, out
    assert out.rstrip().splitlines()[-1] == "verdict: ok (exit 0)"


def test_a_missing_break_glass_account_group_or_service_account_fails_naming_it(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.reset()
    seed = reader.emulator
    for policy in build_plan("example").graph_objects("policy"):
        seed.put_policy(MSP_TENANT, policy)
    for location in build_plan("example").graph_objects("namedLocation"):
        seed.add_named_location(MSP_TENANT, location)
    seed.add_user(MSP_TENANT, {"id": BREAK_GLASS_1, "userPrincipalName": UPNS[BREAK_GLASS_1]})
    seed.add_user(
        MSP_TENANT, {"id": SERVICE_ACCOUNT, "userPrincipalName": UPNS[SERVICE_ACCOUNT], "accountEnabled": False}
    )
    report = verify_stack(tmp_path, reader, "example")
    assert report.exit_code == EXIT_BROKEN
    assert report.directory is not None
    assert [f.message for f in report.directory.failures] == [
        f"break-glass account {BREAK_GLASS_2} (technicianAccess.breakGlassUserIds) does not exist in the directory",
        f"CIPP service account {SERVICE_ACCOUNT} (cipp-service@msp.example, serviceAccount.userId) is disabled "
        "(accountEnabled false)",
        f"technician group {TECH_GROUP} (technicianAccess.includeGroupIds) does not exist in the directory",
    ]


def test_warnings_as_assessment_tools_raise_them(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    seed_directory(reader.emulator, {BREAK_GLASS_2: {"onPremisesSyncEnabled": True}})
    reader.emulator.add_group(
        MSP_TENANT, {"id": TECH_GROUP, "displayName": "CIPP technicians"}, [*TECHNICIANS, BREAK_GLASS_1]
    )
    report = verify_stack(tmp_path, reader, "example")
    assert report.directory is not None
    warnings = [f.message for f in report.directory.warnings]
    assert any(f"{BREAK_GLASS_2} (breakglass2@msp.example) is synced from on-premises" in w for w in warnings)
    assert any(
        f"{BREAK_GLASS_1} (breakglass1@msp.example) is a member of technician group {TECH_GROUP}" in w for w in warnings
    )
    assert any(f"technician group {TECH_GROUP} (CIPP technicians) is not role-assignable" in w for w in warnings)
    assert report.exit_code == 0, "warnings are reported, not failed"
    [row] = [r for r in report.matrix.rows if r.name == f"break-glass {BREAK_GLASS_1} from outside"]
    assert TECH_GROUP in row.sign_in, "the directory's membership, not an asserted one"

    one = reader.stack_file(
        tmp_path,
        "example",
        technicianAccess={
            **yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text())["config"]["cipp-hardening:technicianAccess"],
            "breakGlassUserIds": [BREAK_GLASS_1],
        },
    )
    single = verify.verify_stack("example", one)
    assert single.directory is not None
    assert any(
        "1 break-glass account(s): Microsoft recommends at least two" in f.message for f in single.directory.warnings
    )


def test_transitive_memberships_come_from_the_directory(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    admins, nested = "00000000-0000-0000-0000-0000000ad001", "00000000-0000-0000-0000-0000000ad002"
    reader.emulator.add_group(MSP_TENANT, {"id": nested, "displayName": "nested"}, [BREAK_GLASS_2])
    reader.emulator.add_group(MSP_TENANT, {"id": admins, "displayName": "admins"}, [nested])
    blocker = portal_block()
    blocker["conditions"]["users"] = {"includeGroups": [admins]}
    blocker["displayName"] = "Block the admins group everywhere"
    blocker["conditions"]["locations"] = {"includeLocations": ["All"]}
    reader.emulator.put_policy(MSP_TENANT, blocker)
    report = verify_stack(tmp_path, reader, "example")
    assert {r.name for r in report.matrix.failures} == {f"break-glass {BREAK_GLASS_2} from outside"}
    transitive = reader.emulator.requests(method="GET", path_contains="/transitiveMemberOf")
    assert {r.path.split("/")[3] for r in transitive} >= {BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT, *TECHNICIANS}


def test_transitive_memberships_are_read_across_pages(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.settings.directory_page_size = 2
    groups = [f"00000000-0000-0000-0000-0000000ab{i:03d}" for i in range(5)]
    for group in groups:
        reader.emulator.add_group(MSP_TENANT, {"id": group, "displayName": group}, [BREAK_GLASS_1])
    report = verify_stack(tmp_path, reader, "example")
    assert report.directory is not None
    membership = report.directory.view.membership(BREAK_GLASS_1)
    assert membership is not None
    assert membership.group_ids == frozenset(groups)


def test_drift_shows_a_portal_exclusion_and_a_widened_location(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    part_a = next(p for p in reader.emulator.policies(MSP_TENANT) if p["displayName"].startswith("Block CIPP"))
    part_a["conditions"]["users"]["excludeUsers"].append("00000000-0000-0000-0000-0000000bad01")
    reader.emulator.put_policy(MSP_TENANT, part_a)
    location = reader.emulator.named_locations(MSP_TENANT)[0]
    location["ipRanges"].append({"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"})
    reader.emulator.add_named_location(MSP_TENANT, location)
    report = verify_stack(tmp_path, reader, "example")
    assert report.exit_code == EXIT_BROKEN
    assert report.drift == [
        "named location 'Trusted - MSP Office' holds ranges the stack does not declare: 198.51.100.0/24",
        "policy 'Block CIPP Access - Outside Trusted IPs' differs from the plan: conditions.users.excludeUsers: "
        f"the tenant has [{BREAK_GLASS_1}, {BREAK_GLASS_2}, {SERVICE_ACCOUNT}, 00000000-0000-0000-0000-0000000bad01], "
        f"the plan [{BREAK_GLASS_1}, {BREAK_GLASS_2}, {SERVICE_ACCOUNT}]",
    ]


def test_a_verifier_without_directory_permissions_is_told_which(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.inject(method="GET", path_contains="/v1.0/users/", status=403, times=None)
    assert main(["--stack-file", str(reader.stack_file(tmp_path, "example"))]) == 2
    out = capsys.readouterr().out
    assert "User.Read.All and GroupMember.Read.All" in out
    assert out.rstrip().splitlines()[-1] == "verdict: error (exit 2)"


def test_ci_output_keeps_guids_whole_and_is_the_same_run_to_run(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.put_policy(MSP_TENANT, portal_block(BREAK_GLASS_1, BREAK_GLASS_2))
    first = run_verify(tmp_path, reader, capsys)
    second = run_verify(tmp_path, reader, capsys)
    assert first == second
    lines = first[1].splitlines()
    assert any(f"user {SERVICE_ACCOUNT}; from 13.69.64.10" in line for line in lines), "a GUID is never folded"
    assert lines[-1].startswith("verdict: broken (exit 3)")


def test_verify_never_passes_an_msp_stack_whose_drift_it_could_not_check(
    tmp_path: Path, reader: Reader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)

    def plan_fails(_stack: str, _stack_file: Path) -> verify.PlannedBodies:
        raise OfflineRunError(OfflineRun(), RuntimeError("the program failed offline"))

    monkeypatch.setattr(verify, "planned_bodies", plan_fails)
    report = verify_stack(tmp_path, reader, "example")
    assert report.exit_code == 2
    assert "the program failed offline" in report.drift_unchecked
    assert any(reason.startswith("Part A / Part B not compared with the plan") for reason in report.reasons)
    assert verify.main(["--stack", "example", "--stack-file", str(reader.stack_file(tmp_path, "example"))]) == 2
    assert "drift not checked" in capsys.readouterr().out


# --- Microsoft's What If (cipp_hardening/whatif.py) ---------------------------------------------------------

PART_B_NAME = "CIPP Service Account Conditional Access Policy"


def test_what_if_disagreeing_with_our_evaluator_fails_naming_the_scenario_both_verdicts_and_the_policies(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    # Microsoft (as this test sets it) says Part B applies to nobody; ours says it applies to the service account.
    reader.emulator.set_what_if(MSP_TENANT, lambda body, policy: (False, "users"))
    code, out = run_verify(tmp_path, reader, capsys)
    assert code == EXIT_BROKEN
    text = " ".join(out.split())
    assert "'CIPP service account from Azure': Microsoft's What If disagrees on" in text
    assert f"'{PART_B_NAME}'" in text
    assert "Ours: granted with mfa (applying:" in text
    assert "Microsoft: granted (applying: none)" in text
    asked = reader.emulator.requests(method="POST", path_contains="/conditionalAccess/evaluate")
    identities = [r.body["signInIdentity"] for r in asked]
    assert {"@odata.type": "#microsoft.graph.userSignIn", "userId": SERVICE_ACCOUNT} in identities
    assert reader.writes() == []


def test_what_if_that_lacks_information_is_no_disagreement(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.set_what_if(MSP_TENANT, lambda body, policy: (False, "notEnoughInformation"))
    report = verify_stack(tmp_path, reader, "example")
    assert report.what_if is not None
    assert report.what_if.asked > 0
    assert report.what_if.disagreements == ()
    assert report.exit_code == 0


def test_what_if_agreeing_on_the_service_account_passes(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)

    def answer(body: dict[str, Any], policy: dict[str, Any]) -> tuple[bool, str]:
        # Only Part B's own row is answered for certain; the rest is "not enough information".
        if policy["displayName"] == PART_B_NAME:
            applies = body["signInIdentity"]["userId"] == SERVICE_ACCOUNT
            return applies, "notSet" if applies else "users"
        return False, "notEnoughInformation"

    reader.emulator.set_what_if(MSP_TENANT, answer)
    report = verify_stack(tmp_path, reader, "example")
    assert report.what_if is not None
    assert report.what_if.disagreements == ()
    assert report.exit_code == 0


def test_a_tenant_without_what_if_is_said_and_changes_nothing(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)  # no answer set: the emulator's route says 501, as a tenant may say 403
    code, out = run_verify(tmp_path, reader, capsys)
    assert code == 0
    assert "What If is not available" in out


# --- Microsoft-managed policies (cipp_hardening/managed_policies.py) -----------------------------------------


def block_device_code_flow(state: str = "enabledForReportingButNotEnforced", *excluded: str) -> dict[str, Any]:
    """Microsoft's managed "Block device code flow" as it appears in a tenant: All users, report-only."""
    return {
        "displayName": "Block device code flow",
        "state": state,
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"], "excludeUsers": list(excluded)},
            "authenticationFlows": {"transferMethods": "deviceCodeFlow"},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


def test_done_when_a_report_only_managed_device_code_block_on_the_service_account_is_broken_with_its_date(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    policy_id = reader.emulator.put_policy(
        MSP_TENANT, block_device_code_flow("enabledForReportingButNotEnforced", BREAK_GLASS_1, BREAK_GLASS_2)
    )
    created = next(p for p in reader.emulator.policies(MSP_TENANT) if p["id"] == policy_id)["createdDateTime"]
    turns_on = (datetime.fromisoformat(created.replace("Z", "+00:00")) + timedelta(days=45)).date().isoformat()
    code, out = run_verify(tmp_path, reader, capsys, **NO_MFA_IPS)
    assert code == EXIT_BROKEN
    text = " ".join(out.split())
    assert "✗ FAIL CIPP SAM wizard: service account with device code" in text
    assert "blocked by 'Block device code flow'" in text
    assert f"Microsoft-managed, report-only: Microsoft turns it on no earlier than {turns_on}" in text


def test_a_managed_device_code_block_that_excludes_the_service_account_holds(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    excluded = (BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT)
    reader.emulator.put_policy(MSP_TENANT, block_device_code_flow("enabledForReportingButNotEnforced", *excluded))
    report = verify.verify_stack("example", reader.stack_file(tmp_path, "example", **NO_MFA_IPS))
    rows = {row.name: row for row in report.matrix.rows}
    assert rows["CIPP SAM wizard: service account with device code"].ok
    assert report.exit_code == 0


# --- break-glass credentials (Microsoft's emergency-access guidance) ----------------------------------------

FIDO2 = {"@odata.type": "#microsoft.graph.fido2AuthenticationMethod", "id": "fido2-1", "displayName": "YubiKey"}


def test_a_break_glass_account_without_a_phishing_resistant_method_is_warned(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    seed_directory(reader.emulator, {BREAK_GLASS_1: {"authenticationMethods": [FIDO2]}})
    report = verify_stack(tmp_path, reader, "example")
    assert report.directory is not None
    warnings = [f.message for f in report.directory.warnings]
    assert any(f"{BREAK_GLASS_2} (breakglass2@msp.example) has no phishing-resistant method" in w for w in warnings)
    assert not any(f"{BREAK_GLASS_1} (breakglass1@msp.example) has no phishing-resistant" in w for w in warnings)
    assert report.exit_code == 0, "a warning, not a failure"


class _Refused(Exception):
    status = 403


class _NoMethodsGraph:
    """The directory as the emulator serves it, but authentication methods refused (no permission)."""

    def __init__(self, emulator: GraphEmulator) -> None:
        self.state = emulator._tenant(MSP_TENANT).directory

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        from emulators.graph_directory import handle

        select = (params or {}).get("$select")
        result = handle(self.state, "GET", path.lower().split("/"), None, select.split(",") if select else None)
        return result.entity if result.entity is not None else {"value": result.items}

    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        if path.endswith("/authentication/methods"):
            raise _Refused("Authorization_RequestDenied")
        return list(self.get(path)["value"])


def test_without_the_permission_verify_says_it_cannot_tell(reader: Reader) -> None:
    from cipp_hardening.config import MspStack, parse_stack_config
    from cipp_hardening.directory_facts import read_directory
    from tests.helpers import msp_raw

    seed_directory(reader.emulator)
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    report = read_directory(_NoMethodsGraph(reader.emulator), config, _Refused)
    warnings = [f.message for f in report.warnings]
    assert any(f"cannot tell whether break-glass account {BREAK_GLASS_1}" in w for w in warnings)
    assert not any("has no phishing-resistant method" in w for w in warnings), "cannot tell is not a pass or a fail"
    assert report.failures == ()


CIPP_SSO_APP = "00000000-0000-0000-0000-0000000cc550"


def test_part_a_targeting_cipp_sso_is_checked_against_the_tenants_applications(tmp_path: Path, reader: Reader) -> None:
    technician_access = {
        **yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text())["config"]["cipp-hardening:technicianAccess"],
        "target": "cippApp",
        "cippAppId": CIPP_SSO_APP,
    }
    stack_file = reader.stack_file(tmp_path, "example", technicianAccess=technician_access)
    document = build_plan("example", stack_file)
    for location in document.graph_objects("namedLocation"):
        reader.emulator.add_named_location(MSP_TENANT, location)
    for policy in document.graph_objects("policy"):
        reader.emulator.put_policy(MSP_TENANT, policy)
    seed_directory(reader.emulator)

    missing = verify.verify_stack("example", stack_file)
    assert missing.missing_cipp_app == CIPP_SSO_APP
    assert missing.exit_code == 3
    assert "technicianAccess.cippAppId is not an application in the tenant" in missing.reasons
    assert missing.missing_service_principals == [], "the app is not reported as a CIPP-API client"

    reader.emulator.add_service_principal(MSP_TENANT, CIPP_SSO_APP, "CIPP-SSO")
    found = verify.verify_stack("example", stack_file)
    assert found.missing_cipp_app is None
    assert found.exit_code == 0, found.reasons
