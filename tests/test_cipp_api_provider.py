"""Part C provider against the CIPP-API emulator over real HTTPS: methods called directly, then the real host.

The emulator runs in this process. The provider reaches it as CIPP would be reached: a token for
`api://<manager>/.default` from the emulator's token endpoint (azure-identity, AZURE_AUTHORITY_HOST),
TLS trusted through REQUESTS_CA_BUNDLE, and App Service's front end adding this machine's egress IP as
X-Forwarded-For (`egress_from`), which CIPP checks against the *manager's* own allow-list.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.dynamic import Config, ConfigureRequest, CreateResult, ReadResult, UpdateResult
from pulumi.dynamic.dynamic import serialize_provider
from tenacity import wait_none

from cipp_hardening.adoption import Decision
from cipp_hardening.cipp_api import DENY_ALL, add_update_body, canonical_ranges
from cipp_hardening.inventory import CIPP_SNAPSHOT_ENV
from cipp_hardening.offline import OfflineRun, OfflineRunError, run_program
from dynamic_providers.cipp_api_client_ranges import (
    SECRET_ENV,
    SECRET_KEY,
    CippApiClientRanges,
    CippApiClientRangesError,
    CippApiClientRangesProvider,
)
from dynamic_providers.cipp_api_client_ranges import (
    CippApiClientRangesArgs as Args,
)
from dynamic_providers.props import to_props
from emulators.cipp import API_CLIENT_DENIED, CippEmulator, HttpRequest, HttpResponse, RequestRecord
from emulators.clients import CallerFactory, CippCaller
from emulators.provider_host import MiniEngine, ProviderError, ProviderHost, collect_dynamic_resources
from emulators.tls import TestTLS as Tls
from service_clients import credentials
from service_clients.cipp_client import CippAccessDenied, CippClient, CippError, CippHttpError, explain_denial
from tests.emulators import cipp_fixtures
from tests.helpers import ROOT, msp_raw, to_runtime_config

cipp_tls = cipp_fixtures.cipp_tls
cipp_emulator = cipp_fixtures.cipp_emulator
cipp_caller = cipp_fixtures.cipp_caller

RUNNER_IP = "203.0.113.10"  # this machine's public egress address, as CIPP sees it
OFFICE = "203.0.113.0/24"
IPV6 = "2001:0db8:0000:0000:0000:0000:0000:0000/48"
RANGES_TYPE = "pulumi-python:dynamic/cipp:CippApiClientRanges"
GUARD_TYPE = "pulumi-python:dynamic/cipp:CippApiDestroyGuard"
ENV_VARS = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", SECRET_ENV)


def egress_from(emulator: CippEmulator, ip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Play a caller at `ip`: App Service sets X-Forwarded-For to it on every request (docs/cipp-api.md §5.2)."""
    monkeypatch.setattr(emulator, "egress_ip", ip)


@dataclass
class Cipp:
    emulator: CippEmulator
    tls: Tls
    manager: CippCaller
    rmm: CippCaller  # the client whose ranges the tests manage
    provider: CippApiClientRangesProvider

    def args(self, client: CippCaller | None = None, ranges: list[str] | None = None, **flags: bool) -> Args:
        """The resource's args as components/cipp_api_allowlists.py builds them from validated config."""
        return Args(
            url=self.emulator.url,
            tenant_id=self.emulator.tenant_id,
            manager_client_id=self.manager.client_id,
            client_id=(client or self.rmm).client_id,
            allowed_ranges=tuple(canonical_ranges([OFFICE, "2001:db8::/48"] if ranges is None else ranges)[0]),
            allow_self_update=flags.pop("allowSelfUpdate", False),
            restore_on_delete=flags.pop("restoreOnDelete", False),
            allow_any_on_delete=flags.pop("allowAnyOnDelete", False),
            mcp_allowed=flags.pop("mcpAllowed", None),
        )

    def props(self, client: CippCaller | None = None, ranges: list[str] | None = None, **flags: bool) -> dict[str, Any]:
        """Resource inputs as the engine hands them to create: the args' props."""
        return to_props(self.args(client, ranges, **flags))

    def add_updates(self) -> list[RequestRecord]:
        return [r for r in self.emulator.request_log if r.method == "POST" and '"AddUpdate"' in r.body]

    def stored(self, client: CippCaller | None = None) -> dict[str, Any]:
        row = self.emulator.client_row((client or self.rmm).client_id)
        assert row is not None
        return row

    def ui_edit(self, ranges: list[str]) -> None:
        """What CIPP > Integrations > CIPP-API > Edit sends (docs/cipp-api.md §2.2), by another administrator."""
        body = {
            "Action": "AddUpdate",
            "ClientId": self.rmm.client_id,
            "Role": {"label": "readonly", "value": "readonly"},
            "IPRange": [{"label": r, "value": r} for r in ranges],
            "Enabled": True,
            "MCPAllowed": True,
        }
        assert self.manager.exec_api_client(body, xff=RUNNER_IP).json() == ["API client updated", MCP_NOTE]


MCP_NOTE = (
    "MCP resource URIs, v2 tokens, and callbacks for known MCP clients (Claude, ChatGPT, VS Code, Copilot) "
    "configured on the app registration. Run Save to Azure to apply the changes."
)


def outs_of(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def configured(secret: str | None) -> CippApiClientRangesProvider:
    provider = CippApiClientRangesProvider()
    provider.configure(ConfigureRequest(Config({SECRET_KEY: secret} if secret else {}, "cipp-hardening")))
    return provider


@pytest.fixture
def cipp_env(cipp_emulator: CippEmulator, cipp_tls: Tls, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", cipp_emulator.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cipp_tls.ca_bundle))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(credentials, "_secrets", {})
    egress_from(cipp_emulator, RUNNER_IP, monkeypatch)
    credentials.reset_cache()
    yield
    credentials.reset_cache()


@pytest.fixture
def cipp(cipp_env: None, cipp_emulator: CippEmulator, cipp_tls: Tls, cipp_caller: CallerFactory) -> Cipp:
    manager = cipp_caller(role="editor", ip_ranges=[OFFICE], app_name="Pulumi manager")
    rmm = cipp_caller(role="readonly", ip_ranges=["198.51.100.7"], mcp_allowed=True, app_name="RMM")
    return Cipp(cipp_emulator, cipp_tls, manager, rmm, configured(manager.secret))


# -- create / update / read -------------------------------------------------------------------------
def test_create_sets_the_ranges_and_keeps_everything_else(cipp: Cipp) -> None:
    props = cipp.props()
    result = cipp.provider.create(props)
    assert result.id == cipp.rmm.client_id
    assert result.outs == {
        **props,
        "appName": "RMM",
        "adoptedRanges": ["198.51.100.7"],
        "currentRanges": [OFFICE, IPV6],
    }
    row = cipp.stored()
    assert row["IPRange"] == json.dumps([OFFICE, IPV6], separators=(",", ":"))
    assert (row["Role"], row["Enabled"], row["MCPAllowed"], row["AppName"]) == ("readonly", True, True, "RMM")
    assert cipp.emulator.secrets_reset_count(cipp.rmm.client_id) == 0
    [write] = cipp.add_updates()
    assert json.loads(write.body) == {
        "Action": "AddUpdate",
        "ClientId": cipp.rmm.client_id,
        "Role": {"value": "readonly"},
        "IPRange": [{"label": OFFICE, "value": OFFICE}, {"label": IPV6, "value": IPV6}],
        "Enabled": True,
        "MCPAllowed": True,
    }


def test_the_effect_a_caller_inside_the_range_gets_in_and_one_outside_gets_the_403(cipp: Cipp) -> None:
    cipp.provider.create(cipp.props())
    assert cipp.rmm.request("GET", "/api/ListTenants", xff="203.0.113.77:40000").status_code == 200
    assert cipp.rmm.request("GET", "/api/ListTenants", xff="[2001:db8:0:1::5]:443").status_code == 200
    outside = cipp.rmm.request("GET", "/api/ListTenants", xff="198.51.100.7")  # the old range no longer works
    assert (outside.status_code, outside.text) == (403, API_CLIENT_DENIED)


def test_a_converged_client_costs_one_list_and_no_write(cipp: Cipp) -> None:
    props = cipp.props()
    outs = outs_of(cipp.provider.create(props))
    assert cipp.provider.diff(cipp.rmm.client_id, outs, props).changes is False
    again = outs_of(cipp.provider.update(cipp.rmm.client_id, outs, props))
    assert again == outs  # adoptedRanges are those of the first adoption
    assert len(cipp.add_updates()) == 1
    assert outs_of(cipp.provider.read(cipp.rmm.client_id, outs)) == outs


def test_create_on_a_client_already_at_the_ranges_writes_nothing(cipp: Cipp) -> None:
    outs = outs_of(cipp.provider.create(cipp.props(ranges=["198.51.100.7"])))
    assert outs["adoptedRanges"] == outs["currentRanges"] == ["198.51.100.7"]
    assert cipp.add_updates() == []


def test_refresh_sees_an_edit_in_the_cipp_ui_and_update_repairs_it(cipp: Cipp) -> None:
    props = cipp.props()
    outs = outs_of(cipp.provider.create(props))
    cipp.ui_edit(["198.51.100.0/24"])
    refreshed = cipp.provider.read(cipp.rmm.client_id, outs)
    assert refreshed.id == cipp.rmm.client_id
    assert outs_of(refreshed)["currentRanges"] == ["198.51.100.0/24"]
    diff = cipp.provider.diff(cipp.rmm.client_id, outs_of(refreshed), props)
    assert (diff.changes, diff.replaces) == (True, [])
    repaired = outs_of(cipp.provider.update(cipp.rmm.client_id, outs_of(refreshed), props))
    assert repaired["currentRanges"] == [OFFICE, IPV6]
    assert repaired["adoptedRanges"] == ["198.51.100.7"]
    assert json.loads(cipp.stored()["IPRange"]) == [OFFICE, IPV6]


def test_changing_the_declared_ranges_updates_and_another_client_replaces(cipp: Cipp) -> None:
    props = cipp.props()
    outs = outs_of(cipp.provider.create(props))
    narrower = cipp.props(ranges=["203.0.113.10"])
    assert cipp.provider.diff(cipp.rmm.client_id, outs, narrower).changes is True
    assert outs_of(cipp.provider.update(cipp.rmm.client_id, outs, narrower))["currentRanges"] == ["203.0.113.10"]
    assert cipp.stored()["IPRange"] == '"203.0.113.10"'  # one entry is stored as a JSON string (§3)
    other = cipp.props(cipp.manager, allowSelfUpdate=True)
    diff = cipp.provider.diff(cipp.rmm.client_id, outs, other)
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, ["clientId"], True)


def test_read_reports_a_client_deleted_in_cipp_as_gone(cipp: Cipp) -> None:
    outs = outs_of(cipp.provider.create(cipp.props()))
    assert cipp.manager.exec_api_client({"Action": "Delete", "ClientId": cipp.rmm.client_id}, xff=RUNNER_IP).ok
    gone = cipp.provider.read(cipp.rmm.client_id, outs)
    assert (gone.id, gone.outs) == (None, {})


def test_check_takes_the_args_as_config_built_them_and_names_a_prop_of_the_wrong_shape(cipp: Cipp) -> None:
    news = cipp.props()
    checked = cipp.provider.check({}, news)
    assert (checked.inputs, checked.failures) == (news, [])
    wrong = {**news, "allowedRanges": OFFICE, "restoreOnDelete": "yes", "clientId": None}
    failures = cipp.provider.check({}, wrong).failures
    assert [(f.property, f.reason.split(",")[0]) for f in failures] == [
        ("clientId", "is required"),
        ("allowedRanges", "must be a list of strings"),
        ("restoreOnDelete", "must be true or false"),
    ]


def test_state_whose_props_do_not_fit_is_refused_naming_the_prop(cipp: Cipp) -> None:
    state = {**outs_of(cipp.provider.create(cipp.props())), "allowedRanges": "203.0.113.0/24"}
    writes = len(cipp.add_updates())
    with pytest.raises(CippApiClientRangesError, match=r"allowedRanges must be a list of strings"):
        cipp.provider.update(cipp.rmm.client_id, state, state)
    assert len(cipp.add_updates()) == writes


# -- delete -----------------------------------------------------------------------------------------
def test_delete_leaves_the_ranges_by_default_and_says_so(cipp: Cipp, caplog: pytest.LogCaptureFixture) -> None:
    outs = outs_of(cipp.provider.create(cipp.props()))
    writes = len(cipp.add_updates())
    with caplog.at_level(logging.INFO):
        cipp.provider.delete(cipp.rmm.client_id, outs)
    assert json.loads(cipp.stored()["IPRange"]) == [OFFICE, IPV6]
    assert len(cipp.add_updates()) == writes
    assert "no longer managed; its ranges stay as they are" in caplog.text


def test_restore_on_delete_puts_back_the_adopted_ranges(cipp: Cipp) -> None:
    outs = outs_of(cipp.provider.create(cipp.props(restoreOnDelete=True)))
    cipp.provider.delete(cipp.rmm.client_id, outs)
    row = cipp.stored()
    assert (row["IPRange"], row["Role"], row["MCPAllowed"]) == ('"198.51.100.7"', "readonly", True)


def test_restore_refuses_to_reopen_a_client_that_was_any(cipp: Cipp, cipp_caller: CallerFactory) -> None:
    open_client = cipp_caller(role="readonly", app_name="PSA")
    outs = outs_of(cipp.provider.create(cipp.props(open_client, restoreOnDelete=True)))
    assert outs["adoptedRanges"] == []
    with pytest.raises(CippApiClientRangesError, match="allowAnyOnDelete: true"):
        cipp.provider.delete(open_client.client_id, outs)
    assert json.loads(cipp.stored(open_client)["IPRange"]) == [OFFICE, IPV6]
    cipp.provider.delete(open_client.client_id, {**outs, "allowAnyOnDelete": True})
    assert cipp.stored(open_client)["IPRange"] == ""  # no ranges: Any again, as found


# -- what a write sends back (docs/part-c.md "What a write sends back") ----------------------------------
# Fault injection around the emulator, not CIPP behaviour: an administrator's edit in the CIPP UI landing at a
# chosen moment of our write, App Service's front end answering 503 once (the Function App restarting), and
# List items without a field. Upstream Get-CippApiClient always selects Role and Enabled (Select-Object shows a
# missing column as null), so a List without them is an answer from something else: another build, a proxy.
def admin_edit(cipp: Cipp, **fields: Any) -> None:
    """Another administrator's Edit in the CIPP UI (docs/cipp-api.md §2.2): the whole row as the UI sends it."""
    row = cipp.stored()
    ranges = json.loads(row["IPRange"]) if row["IPRange"].startswith("[") else [json.loads(row["IPRange"])]
    body = {
        "Action": "AddUpdate",
        "ClientId": cipp.rmm.client_id,
        "Role": {"label": fields.get("Role", row["Role"]), "value": fields.get("Role", row["Role"])},
        "IPRange": [{"label": r, "value": r} for r in ranges],
        "Enabled": fields.get("Enabled", row["Enabled"]),
        "MCPAllowed": fields.get("MCPAllowed", row["MCPAllowed"]),
    }
    assert cipp.manager.exec_api_client(body, xff=RUNNER_IP).ok


def is_action(request: HttpRequest, action: str) -> bool:
    query = request.query.get("action", "").lower() == action.lower()
    return query or f'"Action": "{action}"'.encode() in request.body or f'"Action":"{action}"'.encode() in request.body


def around_first(
    cipp: Cipp,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    before: Callable[[], None] = lambda: None,
    answer: HttpResponse | None = None,
    after: Callable[[], None] = lambda: None,
) -> None:
    """On the first `action` request: run `before`, answer `answer` instead of CIPP (or let CIPP answer), `after`."""
    handle = cipp.emulator.handle
    fired: list[HttpRequest] = []

    def faulty(request: HttpRequest) -> HttpResponse:
        if fired or not is_action(request, action):
            return handle(request)
        fired.append(request)
        before()
        response = answer if answer is not None else handle(request)
        after()
        return response

    monkeypatch.setattr(cipp.emulator, "handle", faulty)


def list_without(cipp: Cipp, monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    """List answers the managed client's item without `field`."""
    handle = cipp.emulator.handle

    def faulty(request: HttpRequest) -> HttpResponse:
        response = handle(request)
        if not is_action(request, "List") or not response.body:
            return response
        payload = json.loads(response.body)
        for item in payload["Results"]:
            if isinstance(item, dict) and item["ClientId"] == cipp.rmm.client_id:
                item.pop(field)
        return HttpResponse(response.status, json.dumps(payload).encode(), response.content_type)

    monkeypatch.setattr(cipp.emulator, "handle", faulty)


@pytest.mark.parametrize(("field", "said"), [("Role", "Role"), ("Enabled", "enabled")])
def test_a_list_without_role_or_enabled_gets_no_write(
    cipp: Cipp, monkeypatch: pytest.MonkeyPatch, field: str, said: str
) -> None:
    list_without(cipp, monkeypatch, field)
    with pytest.raises(CippApiClientRangesError, match=f"did not show .*{said}.*nothing written"):
        cipp.provider.create(cipp.props())
    assert cipp.add_updates() == []
    row = cipp.stored()
    assert (row["Role"], row["Enabled"], row["IPRange"]) == ("readonly", True, '"198.51.100.7"')


def test_a_list_with_enabled_null_gets_no_write(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    handle = cipp.emulator.handle

    def null_enabled(request: HttpRequest) -> HttpResponse:
        response = handle(request)
        if is_action(request, "List") and response.body:
            text = response.body.decode().replace('"Enabled":true', '"Enabled":null')
            return HttpResponse(response.status, text.encode(), response.content_type)
        return response

    monkeypatch.setattr(cipp.emulator, "handle", null_enabled)
    with pytest.raises(CippApiClientRangesError, match="did not show whether this client is enabled"):
        cipp.provider.create(cipp.props())
    assert cipp.add_updates() == []


def test_a_retried_write_reads_again_and_keeps_an_admins_change(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    # The write meets a 503 and, while it waits to retry, an administrator disables the client in the UI.
    unavailable = HttpResponse(503, b"The service is unavailable.")
    around_first(cipp, monkeypatch, "AddUpdate", before=lambda: admin_edit(cipp, Enabled=False), answer=unavailable)
    outs = outs_of(cipp.provider.create(cipp.props()))
    assert outs["currentRanges"] == [OFFICE, IPV6]
    row = cipp.stored()
    assert row["Enabled"] is False, "the administrator's change was reverted by a body built before it"
    assert (row["Role"], row["MCPAllowed"]) == ("readonly", True)
    log = cipp.emulator.request_log
    [write] = [
        i for i, r in enumerate(log) if is_action_record(r, "AddUpdate") and OFFICE in r.body and r.status == 200
    ]
    assert is_action_record(log[write - 1], "List"), "the read right before the write is the one merged"


def is_action_record(record: RequestRecord, action: str) -> bool:
    return record.query.get("action", "").lower() == action.lower() or f'"Action": "{action}"' in record.body


def test_a_field_changed_right_after_the_write_is_named(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    around_first(cipp, monkeypatch, "AddUpdate", after=lambda: admin_edit(cipp, Enabled=False))
    with pytest.raises(CippApiClientRangesError) as named:
        cipp.provider.create(cipp.props())
    message = str(named.value)
    assert f"CIPP-API client {cipp.rmm.client_id}" in message
    assert "ranges saved and confirmed, but CIPP now shows Enabled False (sent True)" in message
    assert "Role" not in message.split("shows", 1)[1].split(":", 1)[0]


# -- the manager client -----------------------------------------------------------------------------
def test_the_manager_client_is_refused_without_allow_self_update(cipp: Cipp) -> None:
    news = cipp.props(cipp.manager, ranges=[OFFICE, "198.51.100.0/24"], allowSelfUpdate=True)
    news["allowSelfUpdate"] = False  # config refuses it (tests/test_cipp_api_program.py); state could still hold it
    with pytest.raises(CippApiClientRangesError, match="Set allowSelfUpdate: true"):
        cipp.provider.create(news)
    assert cipp.add_updates() == []


def test_the_manager_may_change_its_own_ranges_when_allowed(cipp: Cipp) -> None:
    props = cipp.props(cipp.manager, ranges=[OFFICE, "198.51.100.0/24"], allowSelfUpdate=True)
    assert outs_of(cipp.provider.create(props))["currentRanges"] == [OFFICE, "198.51.100.0/24"]


def test_a_manager_locking_itself_out_is_named(cipp: Cipp) -> None:
    props = cipp.props(cipp.manager, ranges=["198.51.100.0/24"], allowSelfUpdate=True)
    with pytest.raises(CippApiClientRangesError, match="locked itself out"):
        cipp.provider.create(props)


# -- errors -----------------------------------------------------------------------------------------
def test_an_unknown_client_is_named(cipp: Cipp) -> None:
    missing = str(uuid.uuid4())
    props = {**cipp.props(), "clientId": missing}
    with pytest.raises(CippApiClientRangesError, match=f"CIPP-API client {missing} at .* does not exist in CIPP"):
        cipp.provider.create(props)


def test_a_403_names_the_cause_from_cipps_text(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    egress_from(cipp.emulator, "192.0.2.55", monkeypatch)  # run from outside the manager's office range
    with pytest.raises(CippApiClientRangesError) as outside:
        cipp.provider.create(cipp.props())
    message = str(outside.value)
    assert "HTTP 403: " + API_CLIENT_DENIED in message
    assert "exclude this machine's public IP" in message
    assert "lacks" not in message  # Test-CIPPAccess throws this text only for the IP check
    egress_from(cipp.emulator, RUNNER_IP, monkeypatch)
    readonly = cipp_caller(role="readonly", app_name="read-only manager")
    with pytest.raises(CippApiClientRangesError, match=r"'readonly' base role .* lacks CIPP\.Extension\.ReadWrite"):
        configured(readonly.secret).create({**cipp.props(), "managerClientId": readonly.client_id})


@pytest.mark.parametrize(
    ("permissions", "blocked", "tenants", "cause"),
    [
        (["CIPP.Core.Read"], (), ("AllTenants",), "custom role lacks the endpoint's permission"),
        (["CIPP.Extension.ReadWrite"], ("ExecApiClient",), ("AllTenants",), "custom role blocks this endpoint"),
    ],
)
def test_a_custom_role_denial_is_named(
    cipp: Cipp,
    cipp_caller: CallerFactory,
    permissions: list[str],
    blocked: tuple[str, ...],
    tenants: tuple[str, ...],
    cause: str,
) -> None:
    cipp.emulator.add_custom_role("integrations", permissions, allowed_tenants=tenants, blocked_endpoints=blocked)
    custom = cipp_caller(role="integrations", ip_ranges=[OFFICE], app_name="custom manager")
    with pytest.raises(CippApiClientRangesError) as denied:
        configured(custom.secret).create({**cipp.props(), "managerClientId": custom.client_id})
    assert cause in str(denied.value)
    assert "exclude this machine's public IP" not in str(denied.value)


def test_a_401_points_at_save_azure_configuration(cipp: Cipp, cipp_caller: CallerFactory) -> None:
    unsaved = cipp_caller(role="editor", ip_ranges=[OFFICE], save=False)  # enabled, but EasyAuth not told
    with pytest.raises(CippApiClientRangesError, match=r"HTTP 401.*'Save Azure Configuration'"):
        configured(unsaved.secret).create({**cipp.props(), "managerClientId": unsaved.client_id})


def test_the_mcp_warning_after_the_save_is_reported_not_failed(cipp: Cipp, caplog: pytest.LogCaptureFixture) -> None:
    cipp.emulator.mcp_failure_next("Graph said no")  # AddUpdate saves, then warns (§2.2 step 5)
    with caplog.at_level(logging.WARNING):
        outs = outs_of(cipp.provider.create(cipp.props()))
    assert outs["currentRanges"] == [OFFICE, IPV6]  # confirmed through List
    assert json.loads(cipp.stored()["IPRange"]) == [OFFICE, IPV6]
    assert "ranges saved and confirmed, but CIPP's MCP app set-up then failed" in caplog.text
    assert "Graph said no" in caplog.text


def test_a_dropped_range_warning_is_still_a_failure(cipp: Cipp) -> None:
    body = {
        **add_update_body(
            {"ClientId": cipp.rmm.client_id, "Role": "readonly", "Enabled": True, "MCPAllowed": False}, []
        ),
        "IPRange": [{"value": OFFICE}, {"value": "2001:db8::/48"}],
    }
    expected = r"warning: '2001:db8::/48' is not a valid IP address"
    with (
        CippClient(cipp.emulator.url, lambda: token_for(cipp), wait=wait_none()) as client,
        pytest.raises(CippError, match=expected),
    ):
        client.add_update(body)


def test_an_mcp_client_already_at_its_ranges_gets_no_add_update(cipp: Cipp) -> None:
    # Every AddUpdate of an MCPAllowed client re-runs CIPP's MCP set-up on its app registration.
    outs = outs_of(cipp.provider.create(cipp.props(ranges=["198.51.100.7"])))
    outs_of(cipp.provider.update(cipp.rmm.client_id, outs, cipp.props(ranges=["198.51.100.7"])))
    cipp.provider.delete(cipp.rmm.client_id, {**outs, "restoreOnDelete": True})
    assert cipp.add_updates() == []


def test_a_cipp_that_hides_mcp_allowed_gets_no_write_until_the_flag_is_stated(cipp: Cipp) -> None:
    # AddUpdate writes [bool](Body.MCPAllowed ?? $false): a guess of false would switch the RMM's MCP off.
    cipp.emulator.list_shows_mcp_allowed = False
    with pytest.raises(CippApiClientRangesError, match=r"cippApi.clients\[\].mcpAllowed"):
        cipp.provider.create(cipp.props())
    assert cipp.add_updates() == []
    outs = outs_of(cipp.provider.create(cipp.props(mcpAllowed=True)))
    assert outs["currentRanges"] == [OFFICE, IPV6]
    assert cipp.stored()["MCPAllowed"] is True


def test_a_stated_mcp_flag_that_contradicts_cipp_is_refused(cipp: Cipp) -> None:
    with pytest.raises(CippApiClientRangesError, match="mcpAllowed says false but CIPP lists MCPAllowed True"):
        cipp.provider.create(cipp.props(mcpAllowed=False))
    assert cipp.add_updates() == []


def test_the_results_wrapper_is_a_failure(cipp: Cipp) -> None:
    cipp.emulator.graph_failure_next_addupdate()
    with pytest.raises(CippApiClientRangesError, match="failure: Could not modify App Registrations"):
        cipp.provider.create(cipp.props())
    assert cipp.stored()["IPRange"] == '"198.51.100.7"'


def test_a_client_above_the_managers_role_is_refused_by_cipp(cipp: Cipp, cipp_caller: CallerFactory) -> None:
    admin = cipp_caller(role="admin", app_name="admin integration")
    with pytest.raises(CippApiClientRangesError, match="error: You do not have sufficient permissions"):
        cipp.provider.create(cipp.props(admin))


def test_no_secret_is_a_clear_error(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials, "_secrets", {})
    with pytest.raises(CippApiClientRangesError, match="cippApiManagerSecret` or the CIPP_API_MANAGER_SECRET"):
        configured(None).create(cipp.props())


def test_the_secret_may_come_from_the_environment(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials, "_secrets", {})
    monkeypatch.setenv(SECRET_ENV, cipp.manager.secret)
    assert outs_of(configured(None).create(cipp.props()))["currentRanges"] == [OFFICE, IPV6]


def test_the_provider_pickles_by_reference_without_secrets(cipp: Cipp) -> None:
    blob = base64.b64decode(serialize_provider(cipp.provider))
    assert b"dynamic_providers.cipp_api_client_ranges" in blob
    assert cipp.manager.secret.encode() not in blob
    assert b"Bearer" not in blob


# -- the HTTP client --------------------------------------------------------------------------------
def token_for(cipp: Cipp) -> str:
    return credentials.access_token(
        cipp.emulator.tenant_id,
        f"api://{cipp.manager.client_id}/.default",
        client_id=cipp.manager.client_id,
        client_secret=cipp.manager.secret,
    )


def test_the_client_retries_5xx_but_never_4xx(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    # A number where CIPP calls .Trim() throws: HTTP 500 text/plain (§2.2 step 3).
    body = {"Action": "AddUpdate", "ClientId": cipp.rmm.client_id, "IPRange": [{"value": 5}]}
    with CippClient(cipp.emulator.url, lambda: token_for(cipp), max_attempts=3, wait=wait_none()) as client:
        with pytest.raises(CippHttpError, match="HTTP 500"):
            client.add_update(body)
        assert client.sent == 3
    egress_from(cipp.emulator, "192.0.2.55", monkeypatch)
    with CippClient(cipp.emulator.url, lambda: token_for(cipp), max_attempts=3, wait=wait_none()) as client:
        with pytest.raises(CippAccessDenied):
            client.list_clients()
        assert client.sent == 1


def test_an_empty_table_is_an_empty_list(
    cipp_env: None, cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    # A manager known to EasyAuth but not in the table gets the fallback role cipp-api (§5.4).
    cipp_emulator.add_custom_role("cipp-api", ["CIPP.Extension.ReadWrite"])
    outsider = cipp_caller(in_table=False)

    def token() -> str:
        scope = f"api://{outsider.client_id}/.default"
        return credentials.access_token(
            cipp_emulator.tenant_id, scope, client_id=outsider.client_id, client_secret=outsider.secret
        )

    with CippClient(cipp_emulator.url, token) as client:
        assert client.list_clients() == []
    assert cipp_emulator.request_log[-1].response_body == ""


# -- end to end through the real provider host ------------------------------------------------------
def stack_config(cipp: Cipp, clients: list[dict[str, Any]]) -> dict[str, str]:
    raw = msp_raw()
    raw["cippApi"] = {
        "url": cipp.emulator.url,
        "tenantId": cipp.emulator.tenant_id,
        "managerClientId": cipp.manager.client_id,
        "unrestrictedClients": "warn",
        "clients": clients,
    }
    return {**to_runtime_config(raw), SECRET_KEY: cipp.manager.secret}


def host_env(cipp: Cipp) -> dict[str, str | None]:
    return {
        "AZURE_AUTHORITY_HOST": cipp.emulator.url,
        "REQUESTS_CA_BUNDLE": str(cipp.tls.ca_bundle),
        **dict.fromkeys(ENV_VARS),
    }


@pytest.mark.e2e
def test_the_program_through_the_provider_host(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_client = cipp_caller(role="readonly", app_name="PSA")
    cipp_caller(role="readonly", enabled=False, app_name="old script")
    list_cipp_live(monkeypatch)  # list the emulator like `up` would
    config = stack_config(
        cipp,
        [
            {"clientId": cipp.manager.client_id, "allowedRanges": [OFFICE], "allowSelfUpdate": True},
            {"clientId": cipp.rmm.client_id, "allowedRanges": [OFFICE, "2001:db8::/48"], "restoreOnDelete": True},
        ],
    )
    declared = collect_dynamic_resources(ROOT / "__main__.py", config=config, secret_keys=[SECRET_KEY])
    assert {r.type for r in declared} == {RANGES_TYPE, GUARD_TYPE}
    # The guard's inputs are Part C's outputs, which only the real engine resolves (tests/engine/test_msp_stack.py).
    declared_ranges = [r for r in declared if r.type == RANGES_TYPE]
    assert declared.outputs["unrestrictedApiClients"] == [
        {"clientId": open_client.client_id, "appName": "PSA", "role": "readonly"}
    ]
    assert sorted(declared.outputs["cippApiManagedClientIds"]) == sorted([cipp.manager.client_id, cipp.rmm.client_id])
    rmm_name = f"cipp-api-{cipp.rmm.client_id}"

    with ProviderHost(ROOT, env=host_env(cipp)) as host:
        host.configure(config, secret_keys=[SECRET_KEY])
        engine = MiniEngine(host)
        assert engine.up(declared_ranges).counts == {"create": 2}
        assert json.loads(cipp.stored()["IPRange"]) == [OFFICE, IPV6]
        assert cipp.rmm.request("GET", "/api/ListTenants", xff="203.0.113.200").status_code == 200
        assert cipp.rmm.request("GET", "/api/ListTenants", xff="198.51.100.7").text == API_CLIENT_DENIED
        writes = len(cipp.add_updates())
        assert writes == 1  # the manager was already at its ranges

        assert engine.up(declared_ranges).counts == {}
        assert len(cipp.add_updates()) == writes

        cipp.ui_edit(["198.51.100.0/24"])
        refreshed = engine.refresh()
        assert refreshed[rmm_name].op == "update"
        assert "currentRanges" in refreshed[rmm_name].changed
        assert engine.up(declared_ranges).counts == {"update": 1}
        assert json.loads(cipp.stored()["IPRange"]) == [OFFICE, IPV6]

        state = engine.dump_state()
        blobs = [base64.b64decode(_plain(e.inputs["__provider"])) for e in engine.state.values()]
        assert engine.destroy().counts == {"delete": 2}

    stderr = host.stderr  # whole only now that the host has exited
    assert cipp.stored()["IPRange"] == '"198.51.100.7"'  # restoreOnDelete
    assert cipp.stored(cipp.manager)["IPRange"] == f'"{OFFICE}"'  # default: left as it was
    assert "no longer managed" in stderr
    secret = cipp.manager.secret
    assert secret not in state
    assert secret not in json.dumps([r.inputs for r in declared.registrations]) + json.dumps(declared.outputs)
    assert all(secret.encode() not in blob for blob in blobs)
    assert secret not in stderr
    assert "eyJ" not in state  # no bearer token (a JWT) either


def _plain(value: Any) -> str:
    return str(value["value"] if isinstance(value, dict) else value)


@pytest.mark.e2e
def test_errors_reach_the_engine_readably(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(uuid.uuid4())

    def program() -> None:
        CippApiClientRanges("missing", dataclasses.replace(cipp.args(), client_id=missing))
        CippApiClientRanges("rmm", cipp.args())

    config = stack_config(cipp, [])
    declared = collect_dynamic_resources(program, config=config, secret_keys=[SECRET_KEY])
    with ProviderHost(ROOT, env=host_env(cipp)) as host:
        host.configure(config, secret_keys=[SECRET_KEY])
        engine = MiniEngine(host)
        with pytest.raises(ProviderError) as unknown:
            engine.up([declared.by_name("missing")])
        assert f"CIPP-API client {missing}" in unknown.value.summary
        assert "does not exist in CIPP" in unknown.value.summary
        egress_from(cipp.emulator, "192.0.2.55", monkeypatch)
        with pytest.raises(ProviderError) as denied:
            engine.up([declared.by_name("rmm")])
        assert "exclude this machine's public IP" in denied.value.summary
    assert cipp.manager.secret not in host.stderr + denied.value.details


# -- the program's open-clients check, listing the emulator as a real `pulumi up` does ---------------
def list_cipp_live(monkeypatch: pytest.MonkeyPatch) -> None:
    """The program lists CIPP as under `up`; no MSP tenant is there to check for duplicates (docs/adopt.md,
    covered by tests/test_adoption.py)."""
    monkeypatch.setattr("cipp_hardening.run_mode.is_offline", lambda: False)
    monkeypatch.setattr("cipp_hardening.tenant_check.check_tenant", lambda _config: Decision())


def run_live(cipp: Cipp, monkeypatch: pytest.MonkeyPatch, mode: str = "warn", **secret: str) -> OfflineRun:
    list_cipp_live(monkeypatch)
    config = stack_config(cipp, [{"clientId": cipp.rmm.client_id, "allowedRanges": [OFFICE]}])
    config["cipp-hardening:cippApi"] = config["cipp-hardening:cippApi"].replace('"warn"', f'"{mode}"')
    config.update(secret)
    return run_program(ROOT / "__main__.py", config, secret_keys=tuple(k for k in (SECRET_KEY,) if k in config))


def test_the_program_warns_about_open_clients_it_does_not_manage(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_client = cipp_caller(role="readonly", app_name="PSA")
    run = run_live(cipp, monkeypatch)
    # The manager is restricted, RMM is managed (and still Any-free), PSA is open.
    assert run.outputs["unrestrictedApiClients"] == [
        {"clientId": open_client.client_id, "appName": "PSA", "role": "readonly"}
    ]
    [warning] = [w for w in run.messages("warning") if "accepts requests from any IP" in w]
    assert open_client.client_id in warning
    assert len(run.of_type(RANGES_TYPE)) == 1


def test_the_program_fails_on_open_clients_when_told_to(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_client = cipp_caller(role="readonly", app_name="PSA")
    with pytest.raises(OfflineRunError) as failed:
        run_live(cipp, monkeypatch, mode="fail")
    assert isinstance(failed.value.cause, pulumi.RunError)
    assert f"{open_client.client_id} (PSA, role readonly)" in str(failed.value.cause)
    types = {r.type for r in failed.value.run.resources}
    assert RANGES_TYPE not in types
    assert "cipp:hardening:CippApiAllowlists" not in types


def test_a_real_run_ignores_the_snapshot_and_needs_the_secret(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    snapshot = tmp_path / "clients.json"
    snapshot.write_text('{"Results": []}')
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(snapshot))
    cipp_caller(role="readonly", app_name="PSA")
    run = run_live(cipp, monkeypatch)
    assert len(run.outputs["unrestrictedApiClients"]) == 1  # read from CIPP, not from the empty snapshot
    assert any("ignored outside offline plans" in w for w in run.messages("warning"))
    config_without_secret = stack_config(cipp, [])
    del config_without_secret[SECRET_KEY]
    with pytest.raises(OfflineRunError, match="no secret for the manager client"):
        run_program(ROOT / "__main__.py", config_without_secret)


def test_a_real_run_that_cannot_list_fails_readably(cipp: Cipp, monkeypatch: pytest.MonkeyPatch) -> None:
    egress_from(cipp.emulator, "192.0.2.55", monkeypatch)
    with pytest.raises(OfflineRunError) as failed:
        run_live(cipp, monkeypatch)
    message = str(failed.value.cause)
    assert message.startswith(f"cippApi: could not list the CIPP-API clients at {cipp.emulator.url}")
    assert "exclude this machine's public IP" in message
    assert RANGES_TYPE not in {r.type for r in failed.value.run.resources}


# -- a stored "[]", App Service's allowed list, the 403 texts -----------------------------
def test_a_client_stored_as_an_empty_array_is_adopted_as_refused_and_opened_when_any_is_wanted(
    cipp: Cipp, cipp_caller: CallerFactory
) -> None:
    locked = cipp_caller(role="readonly", ip_ranges="[]", app_name="locked")  # raw row: "[]"
    assert locked.request("GET", "/api/ListTenants", xff="203.0.113.5").text == API_CLIENT_DENIED
    outs = outs_of(cipp.provider.create(cipp.props(locked, ranges=[], restoreOnDelete=True)))
    assert outs["adoptedRanges"] == [DENY_ALL]
    assert outs["currentRanges"] == []  # Any, as wanted: the AddUpdate was sent
    assert cipp.stored(locked)["IPRange"] == ""
    assert locked.request("GET", "/api/ListTenants", xff="203.0.113.5").status_code == 200
    cipp.provider.delete(locked.client_id, outs)  # "[]" cannot be written back: left, never Any by accident
    assert cipp.stored(locked)["IPRange"] == ""
    assert len(cipp.add_updates()) == 1


def test_the_program_reports_a_refused_client_as_refused_not_open(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = cipp_caller(role="readonly", ip_ranges="[]", app_name="locked")
    run = run_live(cipp, monkeypatch, mode="fail")  # fail mode: a refused client is not an open one
    assert run.outputs["unrestrictedApiClients"] == []
    [warning] = [w for w in run.messages("warning") if locked.client_id in w]
    assert "refuses it from every IP address (not open, locked)" in warning
    assert [c["clientId"] for c in run.outputs["denyingApiClients"]] == [locked.client_id]


def test_the_program_judges_open_clients_by_app_services_allowed_list(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    disabled = cipp_caller(role="readonly", app_name="disabled, still allowed")
    unsaved = cipp_caller(role="readonly", app_name="unsaved", save=False)  # enabled, App Service not told
    cipp.emulator.add_client(disabled.client_id, "disabled, still allowed", "readonly", enabled=False)  # no save
    run = run_live(cipp, monkeypatch)
    assert [c["clientId"] for c in run.outputs["unrestrictedApiClients"]] == [disabled.client_id]
    pending = [w for w in run.messages("warning") if "until 'Save Azure Configuration' runs" in w]
    assert len(pending) == 2
    assert any(unsaved.client_id in w and "gets 401 from App Service" in w for w in pending)
    assert any(disabled.client_id in w and "is disabled in CIPP's table but can call CIPP" in w for w in pending)
    pending_ids = {c["clientId"] for c in run.outputs["pendingSaveApiClients"]}
    assert pending_ids == {unsaved.client_id, disabled.client_id}


def test_without_arm_rights_the_table_flag_decides_and_says_so(
    cipp: Cipp, cipp_caller: CallerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsaved = cipp_caller(role="readonly", app_name="unsaved", save=False)
    cipp.emulator.managed_identity_has_arm_rights = False
    run = run_live(cipp, monkeypatch)
    assert [c["clientId"] for c in run.outputs["unrestrictedApiClients"]] == [unsaved.client_id]
    assert any(
        "judged from the Enabled flag" in w and "Could not get API clients" in w for w in run.messages("warning")
    )


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (API_CLIENT_DENIED, "exclude this machine's public IP"),
        ("Cannot bind argument to parameter 'IPAddress' because it is an empty string.", "no caller IP"),
        (
            "Access to this CIPP API endpoint is not allowed, the 'readonly' base role does not have the required "
            "permission: CIPP.Extension.ReadWrite",
            "role lacks CIPP.Extension.ReadWrite",
        ),
        (
            "Access to this CIPP API endpoint is not allowed, you do not have the required permission: "
            "CIPP.Extension.ReadWrite",
            "custom role lacks",
        ),
        ("Access to this CIPP API endpoint is not allowed, the user does not have the required permission", "no role"),
        (
            "Access to this CIPP API endpoint is not allowed, the custom role 'x' has blocked this endpoint: "
            "ExecApiClient",
            "blocks this endpoint",
        ),
        ("Access to this tenant is not allowed", "tenant limits"),
        ("Your CIPP subscription has ended. Access to this instance is no longer available.", "subscription has ended"),
        ("API calls are not accepted on this function app", "offloaded processor"),
        ("Something new", "a text this project does not know"),
    ],
)
def test_each_403_text_names_its_cause(text: str, cause: str) -> None:
    explained = explain_denial(MANAGER_ID, text)
    assert cause in explained
    assert ("public IP" in explained) == (text == API_CLIENT_DENIED)  # one cause, not "role or IP"


MANAGER_ID = "00000000-0000-0000-0000-0000000e0001"
