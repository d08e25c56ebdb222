"""`make onboard-clients FROM=cipp`: CIPP's tenant list (the CIPP-API emulator over HTTPS) → client stack files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening import cli
from cipp_hardening.cipp_tenants import (
    FAILING,
    OFFBOARD,
    ONBOARDED,
    PENDING,
    SKIPPED,
    TenantListError,
    listing_error,
    name_candidates,
    pick_name,
    plan_onboarding,
    read_tenant_list,
)
from cipp_hardening.commands.onboard import SECRET_ENV, OnboardError, OnboardingReport, onboard_from_cipp, report_rows
from cipp_hardening.config import ClientStack, parse_stack_config
from emulators.cipp import CippEmulator
from emulators.clients import CIPP_TENANT_ID, CallerFactory, CippCaller
from emulators.tls import TestTLS
from service_clients import credentials
from tests.emulators import cipp_fixtures
from tests.helpers import ROOT, raw_config

cipp_tls = cipp_fixtures.cipp_tls
cipp_emulator = cipp_fixtures.cipp_emulator
cipp_caller = cipp_fixtures.cipp_caller

RUNNER_IP = "203.0.113.10"
CONTOSO = "00000000-0000-0000-0000-000000000001"  # the emulator's seeded tenant
FABRIKAM = "1b2c3d4e-0000-4000-8000-00000000f001"
FABRIKAM_UK = "1b2c3d4e-0000-4000-8000-00000000f002"
DIRECT_A = "1b2c3d4e-0000-4000-8000-00000000d00a"
DIRECT_B = "1b2c3d4e-0000-4000-8000-00000000d00b"
FAILING_T = "1b2c3d4e-0000-4000-8000-00000000e001"
LAB = "1b2c3d4e-0000-4000-8000-00000000ab01"
OLD = "1b2c3d4e-0000-4000-8000-0000000001d0"  # onboarded earlier under another name
GONE = "1b2c3d4e-0000-4000-8000-00000000900e"  # has a stack, CIPP no longer lists it
SERVICE_A = "1b2c3d4e-0000-4000-8000-00000000aaaa"


@dataclass
class Project:
    root: Path
    emulator: CippEmulator
    manager: CippCaller

    def stacks(self) -> dict[str, str]:
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(self.root.glob("Pulumi.client-*.yaml"))}

    def list_calls(self) -> int:
        return sum(r.path == "/api/ListTenants" for r in self.emulator.request_log)


def client_file(root: Path, stack: str, tenant: str) -> None:
    client = {"tenantId": tenant, "mspTenantId": CIPP_TENANT_ID, "accessMode": "gdap"}
    config = {"cipp-hardening:mode": "client", "cipp-hardening:clientTenant": client}
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}), encoding="utf-8")


def msp_file(root: Path, url: str, manager: str, tenant: str = CIPP_TENANT_ID) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8"))["config"]
    config["azuread:tenantId"] = tenant
    config["cipp-hardening:cippApi"] = {"url": url, "managerClientId": manager}
    config.pop("cipp-hardening:scenariosFile", None)
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}), encoding="utf-8")


@pytest.fixture
def project(
    tmp_path: Path,
    cipp_emulator: CippEmulator,
    cipp_caller: CallerFactory,
    cipp_tls: TestTLS,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Project]:
    """An MSP stack pointing at the emulator, whose manager client reads the tenant list from RUNNER_IP."""
    manager = cipp_caller(role="editor", ip_ranges=["203.0.113.0/24"])
    monkeypatch.setattr(cipp_emulator, "egress_ip", RUNNER_IP)
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", cipp_emulator.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cipp_tls.ca_bundle))
    monkeypatch.setenv(SECRET_ENV, manager.secret)
    credentials.reset_cache()
    msp_file(tmp_path, cipp_emulator.url, manager.client_id)
    yield Project(tmp_path, cipp_emulator, manager)
    credentials.reset_cache()


def seed_the_mix(project: Project) -> tuple[Path, Path]:
    """GDAP, direct (with and without a service account), failing, excluded, broken, partner, onboarded, gone."""
    cipp = project.emulator
    cipp.partner_tenant_listed = True
    cipp.add_tenant(FABRIKAM, "fabrikam.com", "Fabrikam")
    cipp.add_tenant(FABRIKAM_UK, "fabrikam.co.uk", "Fabrikam UK")
    cipp.add_tenant(DIRECT_A, "direct-a.com", "Direct A", direct=True)
    cipp.add_tenant(DIRECT_B, "direct-b.com", "Direct B", direct=True)
    cipp.add_tenant(FAILING_T, "failing.com", "Failing", graph_errors=57, last_error="AADSTS50020: user not found")
    cipp.add_tenant(LAB, "lab.onmicrosoft.com", "Lab")
    cipp.add_tenant(OLD, "oldname.com", "Old name")
    cipp.tenants.append({"customerId": "", "defaultDomainName": "broken.com", "displayName": "Broken"})
    client_file(project.root, "client-legacy", OLD)
    client_file(project.root, "client-gone", GONE)
    exclude = project.root / "exclude.txt"
    exclude.write_text("# never onboard the lab\nLAB.onmicrosoft.com  # by domain\n", encoding="utf-8")
    accounts = project.root / "service-accounts.yaml"
    accounts.write_text(f"direct-a.com: {SERVICE_A}\n", encoding="utf-8")
    return exclude, accounts


def run(project: Project, exclude: Path | None = None, accounts: Path | None = None, **kw: Any) -> OnboardingReport:
    return onboard_from_cipp(project.root, exclude_file=exclude, service_accounts_file=accounts, **kw)


def results(report: OnboardingReport) -> dict[str, tuple[str, str]]:
    return {row.tenant_id or row.tenant: (row.result, row.stack) for row in report_rows(report)}


def test_onboarding_writes_exactly_the_stacks_it_should_and_a_second_run_writes_nothing(project: Project) -> None:
    exclude, accounts = seed_the_mix(project)
    before = project.stacks()
    report = run(project, exclude, accounts)
    assert sorted(p.name for p in report.written) == [
        "Pulumi.client-contoso.yaml",
        "Pulumi.client-direct-a.yaml",
        "Pulumi.client-fabrikam-co-uk.yaml",  # fabrikam was taken by fabrikam.com
        "Pulumi.client-fabrikam.yaml",
    ]
    assert set(project.stacks()) - set(before) == {p.name for p in report.written}
    assert project.list_calls() == 1
    got = results(report)
    assert got[CONTOSO] == ("written", "client-contoso")
    assert got[FABRIKAM_UK] == ("written", "client-fabrikam-co-uk")
    assert got[DIRECT_A] == ("written", "client-direct-a")
    assert got[DIRECT_B][0] == PENDING
    assert got[FAILING_T][0] == FAILING
    assert got[LAB][0] == SKIPPED
    assert got[OLD] == (ONBOARDED, "client-legacy")
    assert got[CIPP_TENANT_ID][0] == SKIPPED, "the MSP's own tenant (CIPP's *Partner Tenant row)"
    assert got["broken.com"][0] == SKIPPED, "an entry without a tenant id"
    assert got[GONE] == (OFFBOARD, "client-gone")
    details = {row.tenant_id or row.tenant: row.detail for row in report_rows(report)}
    assert "SERVICE_ACCOUNTS" in details[DIRECT_B]
    assert "57 Graph errors" in details[FAILING_T]
    assert "AADSTS50020" in details[FAILING_T]
    assert "LAB.onmicrosoft.com" in details[LAB]
    assert "no tenant id" in details["broken.com"]

    direct = yaml.safe_load((project.root / "Pulumi.client-direct-a.yaml").read_text(encoding="utf-8"))["config"]
    stack = parse_stack_config(raw_config(direct))
    assert isinstance(stack, ClientStack)
    assert (stack.client_tenant.tenant_id, stack.client_tenant.access_mode) == (DIRECT_A, "direct")
    assert stack.client_tenant.service_account_user_id == SERVICE_A
    assert stack.client_tenant.msp_tenant_id == CIPP_TENANT_ID
    gdap = yaml.safe_load((project.root / "Pulumi.client-fabrikam.yaml").read_text(encoding="utf-8"))["config"]
    assert gdap["cipp-hardening:clientTenant"]["accessMode"] == "gdap"

    written = project.stacks()
    again = run(project, exclude, accounts)
    assert again.written == []
    assert project.stacks() == written, "a second run writes nothing"
    second = results(again)
    assert second[FABRIKAM] == (ONBOARDED, "client-fabrikam")
    assert second[DIRECT_A] == (ONBOARDED, "client-direct-a")
    assert second[DIRECT_B][0] == PENDING


def test_a_dry_run_reports_the_same_and_writes_nothing(project: Project) -> None:
    exclude, accounts = seed_the_mix(project)
    before = project.stacks()
    report = run(project, exclude, accounts, dry_run=True)
    assert report.written == []
    assert project.stacks() == before
    assert results(report)[FABRIKAM] == ("would write", "client-fabrikam")


def test_a_failed_listing_writes_nothing_and_offboards_nothing(project: Project) -> None:
    seed_the_mix(project)
    before = project.stacks()
    project.emulator.tenant_listing_failure = "The refresh token has expired"
    with pytest.raises(OnboardError, match="could not list its tenants: Failed to retrieve tenants: The refresh"):
        run(project)
    assert project.stacks() == before


def test_an_existing_stack_file_is_never_overwritten(project: Project) -> None:
    project.emulator.add_tenant(FABRIKAM, "fabrikam.com", "Fabrikam")
    mine = project.root / "Pulumi.client-fabrikam.yaml"
    mine.write_text("config: {}\n# mine\n", encoding="utf-8")
    report = run(project)
    assert results(report)[FABRIKAM] == ("written", "client-fabrikam-com"), "the taken name is left alone"
    assert mine.read_text(encoding="utf-8") == "config: {}\n# mine\n"


def test_a_client_stack_without_a_tenant_id_stops_onboarding(project: Project) -> None:
    project.emulator.add_tenant(FABRIKAM, "fabrikam.com", "Fabrikam")
    broken = {"cipp-hardening:mode": "client", "cipp-hardening:clientTenant": {"accessMode": "gdap"}}
    (project.root / "Pulumi.client-x.yaml").write_text(yaml.safe_dump({"config": broken}), encoding="utf-8")
    with pytest.raises(OnboardError, match=r"Pulumi.client-x.yaml: clientTenant.tenantId is missing"):
        run(project)  # that stack could be any listed tenant: refuse rather than onboard it twice
    assert sorted(project.stacks()) == ["Pulumi.client-x.yaml"]


def test_the_placeholder_msp_tenant_is_refused_before_any_call(project: Project) -> None:
    msp_file(project.root, project.emulator.url, project.manager.client_id, "00000000-0000-0000-0000-00000000a001")
    with pytest.raises(OnboardError, match=r"azuread:tenantId .* placeholder"):
        run(project)
    assert project.list_calls() == 0


def test_the_manager_secret_comes_from_the_environment(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(OnboardError, match=f"{SECRET_ENV} is not set.*{project.manager.client_id}"):
        run(project)
    assert project.list_calls() == 0


def test_a_denied_manager_is_one_readable_error(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project.emulator, "egress_ip", "198.51.100.9")
    with pytest.raises(OnboardError, match=r"ListTenants → HTTP 403.*allowed IP ranges exclude this machine"):
        run(project)


def test_the_command_prints_the_table_and_never_the_secret(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    exclude, accounts = seed_the_mix(project)
    argv = ["onboard", "--from", "cipp", "--project-dir", str(project.root), "--exclude", str(exclude)]
    assert cli.main([*argv, "--service-accounts", str(accounts)]) == 0
    out = capsys.readouterr().out
    assert "client-fabrikam-co-uk" in out
    assert "offboarding candidate" in out
    assert "wrote 4 stack files" in out
    assert project.manager.secret not in out
    assert cli.main(["onboard", "--from", "psa", "--project-dir", str(project.root)]) == 2
    assert "FROM (--from) must be cipp" in capsys.readouterr().err


# -- the rules, without HTTP ------------------------------------------------------------------------------
def test_listing_error_reads_cipps_error_entry_and_odd_bodies() -> None:
    failed = [{"Results": "Failed to retrieve tenants: boom", "customerId": "", "defaultDomainName": ""}]
    assert listing_error(failed) == "Failed to retrieve tenants: boom"
    assert listing_error({"Results": "Cache has been cleared"}) == "Cache has been cleared"
    assert listing_error("html") == "expected a JSON array of tenants, got str"
    assert listing_error([]) is None
    with pytest.raises(TenantListError):
        read_tenant_list(failed)


def test_read_tenant_list_dedupes_and_flags_direct_and_partner() -> None:
    payload = [
        {
            "customerId": FABRIKAM.upper(),
            "defaultDomainName": "Fabrikam.com",
            "delegatedPrivilegeStatus": "directTenant",
        },
        {"customerId": FABRIKAM, "defaultDomainName": "again.com"},
        {"customerId": CIPP_TENANT_ID, "defaultDomainName": "p.onmicrosoft.com", "domains": "PartnerTenant"},
        {"customerId": "AllTenants", "defaultDomainName": "AllTenants"},
        "junk",
    ]
    tenants, rows = read_tenant_list(payload)
    assert [(t.tenant_id, t.domain, t.direct, t.partner) for t in tenants] == [
        (FABRIKAM, "fabrikam.com", True, False),
        (CIPP_TENANT_ID, "p.onmicrosoft.com", False, True),
    ]
    assert [r.detail.split(" ")[0] for r in rows] == ["listed", "no", "not"]


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("contoso.onmicrosoft.com", ["contoso", "contoso-00000000"]),
        ("Fabrikam.co.uk", ["fabrikam", "fabrikam-co-uk", "fabrikam-00000000"]),
        ("client-eta.com", ["eta", "eta-com", "eta-00000000"]),
        ("xn--bcher-kva.example", ["xn--bcher-kva", "xn--bcher-kva-example", "xn--bcher-kva-00000000"]),
    ],
)
def test_stack_names_come_from_the_default_domain(domain: str, expected: list[str]) -> None:
    assert name_candidates(domain, "00000000-1111") == expected


def test_pick_name_avoids_taken_stacks_and_long_names_stay_valid() -> None:
    assert pick_name("contoso.com", FABRIKAM, {"client-contoso"}) == "contoso-com"
    assert pick_name("contoso.com", FABRIKAM, {"client-contoso", "client-contoso-com"}) == "contoso-1b2c3d4e"
    assert pick_name("...", FABRIKAM, set()) is None
    long = pick_name("a" * 80 + ".com", FABRIKAM, set())
    assert long is not None
    assert len(long) <= 63


def test_plan_matches_exclusions_and_service_accounts_by_id_or_domain() -> None:
    tenants, _ = read_tenant_list(
        [
            {"customerId": DIRECT_A, "defaultDomainName": "direct-a.com", "delegatedPrivilegeStatus": "directTenant"},
            {"customerId": DIRECT_B, "defaultDomainName": "direct-b.com", "delegatedPrivilegeStatus": "directTenant"},
            {"customerId": LAB, "defaultDomainName": "lab.com"},
        ]
    )
    plan = plan_onboarding(
        tenants, {}, CIPP_TENANT_ID, excluded=[LAB.upper()], service_accounts={DIRECT_A: SERVICE_A, DIRECT_B: "bob"}
    )
    assert [(w.stack, w.mode, w.service_account) for w in plan.writes] == [("client-direct-a", "direct", SERVICE_A)]
    assert [r.result for r in plan.rows] == ["write", PENDING, SKIPPED]
    assert "not a user object id" in plan.rows[1].detail
