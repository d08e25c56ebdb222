"""`verify` and the audit log: policy changes by others since the last deployment, and the optimization agent's
policies (cipp_hardening/audit_log.py, cipp_hardening/stack_history.py, the Graph emulator's directoryAudits)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from cipp_hardening import audit_log, stack_history
from cipp_hardening.commands import verify
from cipp_hardening.commands.verify import EXIT_BROKEN, AuditOptions
from cipp_hardening.scenarios import config_from_stack_file
from emulators.clients import graph_client_env
from emulators.graph import GraphEmulator
from service_clients import credentials
from service_clients.graph_client import GraphClient
from tests.emulators.fixtures import use_env
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, MSP_TENANT
from tests.test_verify import CLIENT_TENANT, Reader, deploy_prod_plan

PART_B_NAME = "CIPP Service Account Conditional Access Policy"
PORTAL_USER = {
    "id": "6f1c1a52-9a43-4f7e-8a51-2f3c0b9d4e11",
    "displayName": "Mallory Admin",
    "userPrincipalName": "mallory@msp.example",
    "ipAddress": "198.51.100.20",
}
AGENT_APP = "3a0b2c1d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
AGENT_SP = "c0ffee00-1111-4222-8333-944455566677"
AGENT = {"app": {"appId": AGENT_APP, "displayName": "CA Optimization Agent", "servicePrincipalId": AGENT_SP}}


@pytest.fixture
def reader(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    """The reader app of tests/test_verify.py (Policy.Read.All), which also deploys here."""
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(
        client_id, secret, MSP_TENANT, consented_tenants=[CLIENT_TENANT], graph_roles=["Policy.Read.All"]
    )
    monkeypatch.delenv(verify.GRAPH_SECRET_ENV, raising=False)
    use_env(monkeypatch, graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret))
    yield Reader(graph_emulator, client_id, secret)
    credentials.reset_cache()


def guest_policy(state: str = "disabled") -> dict[str, Any]:
    """A tenant policy of nobody's stack; disabled, so it changes no scenario row."""
    return {
        "displayName": "Require MFA for guests",
        "state": state,
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["GuestsOrExternalUsers"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


def as_deployer(reader: Reader) -> GraphClient:
    """Graph as the deploying identity calls it: the reader app's token from the credential chain."""
    url = reader.emulator.url
    return GraphClient(url, MSP_TENANT, lambda: credentials.access_token(MSP_TENANT, f"{url}/.default"))


def policy_id_named(emulator: GraphEmulator, name: str) -> str:
    return next(str(p["id"]) for p in emulator.policies(MSP_TENANT) if p["displayName"] == name)


def run_main(tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = verify.main(["--stack", "example", "--stack-file", str(reader.stack_file(tmp_path, "example")), *args])
    return code, " ".join(capsys.readouterr().out.split())


def an_hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the emulator's audit log -------------------------------------------------------------------------------


def test_the_emulator_logs_each_policy_write_with_the_callers_app_and_pages_the_route(reader: Reader) -> None:
    emulator = reader.emulator
    emulator.settings.audit_page_size = 1
    with as_deployer(reader) as graph:
        created = graph.post("identity/conditionalAccess/policies", guest_policy())
        graph.patch(
            f"identity/conditionalAccess/policies/{created['id']}", {"state": "enabledForReportingButNotEnforced"}
        )
        graph.delete(f"identity/conditionalAccess/policies/{created['id']}")
        entries = graph.list_all(audit_log.DIRECTORY_AUDITS, audit_log.query(datetime.now(UTC) - timedelta(minutes=5)))
    pages = emulator.requests(method="GET", path_contains="/auditLogs/directoryAudits")
    assert len(pages) == 3, "one entry a page: the reader followed @odata.nextLink"
    assert sorted(e["activityDisplayName"] for e in entries) == [
        "Add Conditional Access policy",
        "Delete Conditional Access policy",
        "Update Conditional Access policy",
    ]
    for entry in entries:
        assert entry["loggedByService"] == "Conditional Access"
        assert entry["category"] == "Policy"
        assert entry["initiatedBy"] == {
            "app": {
                "appId": reader.client_id,
                "displayName": None,
                "servicePrincipalId": None,
                "servicePrincipalName": None,
            },
            "user": None,
        }
        assert entry["targetResources"][0]["id"] == created["id"]
    update = next(e for e in entries if e["operationType"] == "Update")
    change = update["targetResources"][0]["modifiedProperties"][0]
    assert json.loads(change["oldValue"])["state"] == "disabled"
    assert json.loads(change["newValue"])["state"] == "enabledForReportingButNotEnforced"
    assert emulator.directory_audits(MSP_TENANT)[0]["operationType"] == "Add", "the emulator keeps them oldest first"


def test_the_emulator_filters_on_time_and_service(reader: Reader) -> None:
    emulator = reader.emulator
    emulator.put_policy(MSP_TENANT, guest_policy(), initiated_by={"user": PORTAL_USER})
    old = dict(emulator.directory_audits(MSP_TENANT)[0], id="old", activityDateTime="2020-01-01T00:00:00Z")
    other = dict(old, id="other", activityDateTime=datetime.now(UTC).isoformat(), loggedByService="Core Directory")
    emulator.add_directory_audits(MSP_TENANT, [old, other])
    with as_deployer(reader) as graph:
        entries = graph.list_all(audit_log.DIRECTORY_AUDITS, audit_log.query(datetime.now(UTC) - timedelta(days=1)))
    assert [e["initiatedBy"]["user"]["userPrincipalName"] for e in entries] == ["mallory@msp.example"]
    assert {e["id"] for e in entries}.isdisjoint({"old", "other"})


def test_the_emulator_refuses_the_audit_log_without_its_permissions(reader: Reader) -> None:
    emulator = reader.emulator
    emulator.settings.enforce_roles = True
    app, secret = str(uuid.uuid4()), "s"
    emulator.register_app(app, secret, MSP_TENANT, graph_roles=["Policy.Read.All", "AuditLog.Read.All"])
    token = emulator.access_token(MSP_TENANT, app, secret)  # graph.microsoft.com audience: the roles are in it
    url = f"{emulator.url}/v1.0/{audit_log.DIRECTORY_AUDITS}"
    refused = requests.get(
        url, headers={"Authorization": f"Bearer {token}"}, verify=str(emulator.ca_bundle), timeout=10
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AccessDenied"
    emulator.register_app(app, secret, MSP_TENANT, graph_roles=["AuditLog.Read.All", "Directory.Read.All"])
    token = emulator.access_token(MSP_TENANT, app, secret)
    allowed = requests.get(
        url, headers={"Authorization": f"Bearer {token}"}, verify=str(emulator.ca_bundle), timeout=10
    )
    assert allowed.status_code == 200


# --- verify: who changed the policies since the last deployment ------------------------------------------------


def test_a_portal_edit_by_someone_else_is_reported_and_our_own_deployment_is_not(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = reader.emulator
    deploy_prod_plan(emulator)
    guests = emulator.put_policy(MSP_TENANT, guest_policy())  # there before; the setup leaves no audit entry
    part_b = policy_id_named(emulator, PART_B_NAME)
    with as_deployer(reader) as graph:  # our own `pulumi up` writes Part B
        graph.patch(f"identity/conditionalAccess/policies/{part_b}", {"displayName": PART_B_NAME})
    # Someone edits the guests' policy in the portal.
    emulator.put_policy(
        MSP_TENANT, {**guest_policy(), "id": guests, "displayName": "Guests: MFA"}, initiated_by={"user": PORTAL_USER}
    )
    log = emulator.directory_audits(MSP_TENANT)
    assert [e["targetResources"][0]["id"] for e in log] == [part_b, guests], "both writes are in the log"
    when = log[-1]["activityDateTime"]
    code, out = run_main(tmp_path, reader, capsys, "--since", an_hour_ago())
    assert code == 0, "a report, not a failure"
    expected_when = audit_log.odata_time(audit_log.parse_time(when) or datetime.now(UTC))
    assert f"'Guests: MFA' ({guests}) updated by user mallory@msp.example at {expected_when}" in out
    assert PART_B_NAME not in out.split("by others than")[-1], "our own deployment's write is not reported"
    assert f"by others than application {reader.client_id}" in out


def test_a_write_before_the_last_deployment_is_not_reported(tmp_path: Path, reader: Reader) -> None:
    emulator = reader.emulator
    deploy_prod_plan(emulator)
    emulator.put_policy(MSP_TENANT, guest_policy(), initiated_by={"user": PORTAL_USER})
    later = datetime.now(UTC) + timedelta(minutes=1)
    report = verify.verify_stack(
        "example", reader.stack_file(tmp_path, "example"), audit_options=AuditOptions(since=later)
    )
    assert report.audit is not None
    assert report.audit.changes == ()
    assert report.audit.cannot_tell == ""


def test_a_named_deployer_replaces_the_identity_verify_signs_in_as(tmp_path: Path, reader: Reader) -> None:
    emulator = reader.emulator
    deploy_prod_plan(emulator)
    emulator.put_policy(MSP_TENANT, guest_policy(), initiated_by={"user": PORTAL_USER})
    options = AuditOptions(since=datetime.now(UTC) - timedelta(hours=1), deployers=(PORTAL_USER["id"],))
    report = verify.verify_stack("example", reader.stack_file(tmp_path, "example"), audit_options=options)
    assert report.audit is not None
    assert report.audit.changes == ()


def test_without_the_audit_permission_verify_cannot_tell_and_the_proof_stands(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = reader.emulator
    deploy_prod_plan(emulator)
    config = config_from_stack_file(reader.stack_file(tmp_path, "example"))
    emulator.settings.enforce_roles = True  # the reader app holds no AuditLog.Read.All
    since = datetime.now(UTC) - timedelta(hours=1)
    result = verify.read_audit(config, "example", tmp_path / "Pulumi.example.yaml", AuditOptions(since=since))
    assert result.cannot_tell.startswith("cannot tell who changed the policies since the last deployment: ")
    assert "HTTP 403 AccessDenied" in result.cannot_tell
    emulator.settings.enforce_roles = False
    emulator.inject(method="GET", path_contains="/auditLogs/directoryAudits", status=403)
    code, out = run_main(tmp_path, reader, capsys, "--since", an_hour_ago())
    assert code == 0
    refused = "Graph GET auditLogs/directoryAudits → HTTP 403"
    assert f"! cannot tell who changed the policies since the last deployment: {refused}" in out
    assert "no policy changed" not in out


def test_without_a_deployment_time_verify_says_why(tmp_path: Path, reader: Reader) -> None:
    deploy_prod_plan(reader.emulator)
    report = verify.verify_stack("example", reader.stack_file(tmp_path, "example"))
    assert report.audit is not None
    assert "no Pulumi project beside Pulumi.example.yaml" in report.audit.cannot_tell
    assert reader.emulator.requests(path_contains="/auditLogs/directoryAudits") == []


# --- the Conditional Access optimization agent --------------------------------------------------------------


def agent_block_on_service_account() -> dict[str, Any]:
    return {
        "displayName": "Agent suggestion: block all users",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"], "excludeUsers": [BREAK_GLASS_1, BREAK_GLASS_2]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


def test_a_policy_the_optimization_agent_created_is_labelled_in_the_matrix_and_listed(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = reader.emulator
    deploy_prod_plan(emulator)
    created = emulator.put_policy(MSP_TENANT, agent_block_on_service_account(), initiated_by=AGENT)
    code, out = run_main(tmp_path, reader, capsys, "--since", an_hour_ago(), "--optimization-agent", AGENT_SP)
    assert code == EXIT_BROKEN, "it blocks the service account: a broken invariant, whoever made it"
    name = agent_block_on_service_account()["displayName"]
    assert f"'{name}' is created by the Conditional Access optimization agent" in out
    assert f"'{name}' ({created}) is created by the Conditional Access optimization agent" in out
    who = f"application CA Optimization Agent ({AGENT_APP}) (the Conditional Access optimization agent)"
    assert f"'{name}' ({created}) added by {who}" in out


def test_without_the_agent_named_its_policy_is_only_a_change_by_someone_else(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.put_policy(MSP_TENANT, agent_block_on_service_account(), initiated_by=AGENT)
    code, out = run_main(tmp_path, reader, capsys, "--since", an_hour_ago())
    assert code == EXIT_BROKEN
    assert "optimization agent" not in out, "no marker in the policy itself: nothing is guessed"
    assert f"added by application CA Optimization Agent ({AGENT_APP})" in out


# --- pure parts ----------------------------------------------------------------------------------------------


def jwt(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{payload}.sig"


def test_the_deploying_identity_comes_from_the_tokens_app_and_object_ids() -> None:
    app = audit_log.token_identity(jwt({"appid": "AAA", "oid": "BBB", "idtyp": "app"}))
    assert app.ids == frozenset({"aaa", "bbb"})
    assert app.described == "application AAA"
    user = audit_log.token_identity(jwt({"appid": "cli", "oid": "U1", "upn": "ops@msp.example"}))
    assert user.initiated({"initiatedBy": {"user": {"id": "u1"}}})
    someone_through_the_cli = {"initiatedBy": {"user": {"id": "u2"}, "app": {"appId": "cli"}}}
    assert not user.initiated(someone_through_the_cli), "the client app a person used is not the deployer"
    assert user.described == "user ops@msp.example"
    assert audit_log.token_identity("not a token").ids == frozenset()


def test_only_successful_conditional_access_policy_writes_count() -> None:
    base = {
        "activityDateTime": "2026-05-01T10:00:00Z",
        "loggedByService": "Conditional Access",
        "result": "success",
        "initiatedBy": {"user": PORTAL_USER},
        "targetResources": [{"id": "p1", "displayName": "P1", "type": "Policy"}],
    }
    entries = [
        {**base, "activityDisplayName": "update conditional access policy"},  # the spelling tools report
        {**base, "activityDisplayName": "Update Conditional Access policy", "result": "failure"},
        {**base, "activityDisplayName": "Update named location"},
    ]
    nobody = audit_log.Identity.of([])
    since = datetime(2026, 5, 1, tzinfo=UTC)
    changes = audit_log.changes_by_others(entries, since, nobody, nobody)
    assert [c.message for c in changes] == ["'P1' (p1) updated by user mallory@msp.example at 2026-05-01T10:00:00Z"]


def test_the_last_deployment_is_the_newest_updates_start() -> None:
    start = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    history = [
        SimpleNamespace(kind="refresh", start_time=start + timedelta(days=2)),
        SimpleNamespace(kind="update", start_time=start + timedelta(days=1)),
        SimpleNamespace(kind="update", start_time=start),
        SimpleNamespace(kind="preview", start_time=start + timedelta(days=3)),
    ]
    assert stack_history.newest_deployment(history) == start + timedelta(days=1)
    assert stack_history.newest_deployment([SimpleNamespace(kind="preview", start_time=start)]) is None


def test_a_stack_file_without_a_project_beside_it_has_no_history(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text("config: {}\n")
    why = stack_history.last_deployment("prod", stack_file)
    assert isinstance(why, str)
    assert "give --since" in why


def test_the_agents_policies_are_labelled_even_when_the_last_deployment_is_unknown(
    tmp_path: Path, reader: Reader
) -> None:
    deploy_prod_plan(reader.emulator)
    created = reader.emulator.put_policy(MSP_TENANT, agent_block_on_service_account(), initiated_by=AGENT)
    options = AuditOptions(agents=(AGENT_APP,))
    report = verify.verify_stack("example", reader.stack_file(tmp_path, "example"), audit_options=options)
    assert report.audit is not None
    assert report.audit.agent_policies == {created.lower(): "Agent suggestion: block all users"}
    assert report.audit.changes == ()
    assert "no Pulumi project beside" in report.audit.cannot_tell


def test_any_error_of_the_audit_log_is_said_and_verify_still_answers(
    tmp_path: Path, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_prod_plan(reader.emulator)
    reader.emulator.inject(method="GET", path_contains="/auditLogs/directoryAudits", status=400)
    code, out = run_main(tmp_path, reader, capsys, "--since", an_hour_ago())
    assert code == 0
    refused = "Graph GET auditLogs/directoryAudits → HTTP 400"
    assert f"! cannot tell who changed the policies since the last deployment: {refused}" in out


def test_a_policy_deleted_in_the_portal_is_reported_by_its_name(tmp_path: Path, reader: Reader) -> None:
    emulator = reader.emulator
    deploy_prod_plan(emulator)
    guests = emulator.put_policy(MSP_TENANT, guest_policy())
    emulator.delete_policy(MSP_TENANT, guests, initiated_by={"user": PORTAL_USER})
    options = AuditOptions(since=datetime.now(UTC) - timedelta(hours=1))
    report = verify.verify_stack("example", reader.stack_file(tmp_path, "example"), audit_options=options)
    assert report.audit is not None
    assert [(c.policy_name, c.policy_id, c.action, c.who) for c in report.audit.changes] == [
        ("Require MFA for guests", guests, "deleted", "user mallory@msp.example")
    ]
