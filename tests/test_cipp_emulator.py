"""The CIPP-API emulator against docs/cipp-api.md (§n below), through real HTTPS and real azure-identity tokens."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from emulators.cipp import (
    API_CLIENT_DENIED,
    ENDPOINT_NOT_FOUND,
    MCP_CONFIGURED,
    NO_ROLE_DENIED,
    CippEmulator,
    client_ip_from_xff,
)
from emulators.clients import (
    CIPP_TENANT_ID,
    CallerFactory,
    CippCaller,
    client_credentials_response,
    token_endpoint_response,
)
from tests.emulators import cipp_fixtures

# The fixtures, bound here by name (an import would make every test argument "shadow" it for ruff).
cipp_tls = cipp_fixtures.cipp_tls
cipp_emulator = cipp_fixtures.cipp_emulator
cipp_caller = cipp_fixtures.cipp_caller

READONLY_DENIED = (
    "Access to this CIPP API endpoint is not allowed, the 'readonly' base role does not have the required "
    "permission: CIPP.Extension.ReadWrite"
)
MISSING_XFF_DENIED = "Cannot bind argument to parameter 'IPAddress' because it is an empty string."


def entries(*ranges: str) -> list[dict[str, str]]:
    """IPRange the way the frontend's autocomplete sends it."""
    return [{"label": entry, "value": entry} for entry in ranges]


def add_update(caller: CippCaller, client_id: str, **fields: Any) -> requests.Response:
    return caller.exec_api_client({"Action": "AddUpdate", "ClientId": client_id, **fields})


def listed(caller: CippCaller, client_id: str) -> dict[str, Any]:
    results = caller.exec_api_client(action="List").json()["Results"]
    return next(item for item in results if isinstance(item, dict) and item["ClientId"] == client_id)


def new_id() -> str:
    return str(uuid.uuid4())


def is_text_plain(response: requests.Response) -> bool:
    return response.headers["Content-Type"].startswith("text/plain")


# -- identity and EasyAuth (§1, §7) ------------------------------------------------------------------
def test_azure_identity_gets_a_token_through_discovery_then_the_token_endpoint(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    caller = cipp_caller(role="readonly")
    claims = cipp_emulator.directory.verify(caller.token())
    assert claims["aud"] == f"api://{caller.client_id}"
    assert claims["appid"] == caller.client_id
    assert claims["tid"] == CIPP_TENANT_ID
    msal_calls = [(record.method, record.path) for record in cipp_emulator.request_log]
    assert msal_calls == [
        ("GET", f"/{CIPP_TENANT_ID}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{CIPP_TENANT_ID}/oauth2/v2.0/token"),
    ]


def test_easyauth_rejects_missing_foreign_and_unlisted_tokens(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    caller = cipp_caller(role="editor")
    url = f"{cipp_emulator.url}/api/ExecApiClient?Action=List"
    verify = str(caller.ca_bundle)
    assert requests.get(url, verify=verify, timeout=10).status_code == 401
    other_tenant = "0b0b0b0b-1111-2222-3333-444444444444"
    cipp_emulator.directory.register_app(caller.client_id, caller.secret, CIPP_TENANT_ID, [other_tenant])
    foreign = token_endpoint_response(cipp_emulator, caller.ca_bundle, caller.client_id, caller.secret, other_tenant)
    headers = {"Authorization": f"Bearer {foreign.json()['access_token']}", "X-Forwarded-For": "203.0.113.7"}
    assert requests.get(url, headers=headers, verify=verify, timeout=10).status_code == 401
    cipp_emulator.easyauth_allowed = set()
    response = caller.exec_api_client(action="List")
    assert response.status_code == 401
    assert cipp_emulator.request_log[-1].client_id is None


def test_identity_can_be_left_to_another_emulator(cipp_tls: Any) -> None:
    with CippEmulator(cipp_tls, serve_identity=False) as emulator:
        response = requests.get(
            f"{emulator.url}/{emulator.tenant_id}/v2.0/.well-known/openid-configuration",
            verify=str(cipp_tls.ca_bundle),
            timeout=10,
        )
    assert response.status_code == 404


# -- the caller's IP (§5.2, §5.3, §5.6, §14 vectors) ----------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("a, b", "a"),
        ("203.0.113.7, 10.0.0.1", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),  # no regex match: used as is
        (" 203.0.113.7", " 203.0.113.7"),  # not trimmed
        (None, ""),
    ],
)
def test_xff_parsing_vectors(header: str | None, expected: str) -> None:
    assert client_ip_from_xff(header) == expected


@pytest.mark.parametrize(
    ("xff", "stored", "faithful", "status"),
    [
        ("203.0.113.7", ["203.0.113.0/24"], True, 200),
        ("203.0.113.7", ["203.0.113.99/24"], True, 200),  # host bits ignored
        ("198.51.100.1", ["203.0.113.0/24"], True, 403),
        ("10.1.2.3", ["0.0.0.0/0"], True, 200),
        ("200.1.2.3", ["0.0.0.0/0"], True, 403),  # BigInteger sign quirk
        ("200.1.2.3", ["0.0.0.0/0"], False, 200),  # fixed mode
        ("200.1.2.3", ["128.0.0.0/1"], True, 200),
        ("[2001:db8::1]:443", ["2001:db8:0:0:0:0:0:0/32"], True, 200),
        ("2001:db8::1", ["2001:db8:0:0:0:0:0:1"], True, 200),  # no prefix: /128
        ("203.0.113.7:51234", ["203.0.113.7"], True, 200),
        ("10.0.0.1, 203.0.113.7", ["203.0.113.7"], True, 403),  # only the first entry counts
        ("::ffff:203.0.113.7", ["203.0.113.0/24"], True, 403),  # family mismatch
        ("1.2.3.4", ["1.2.3.4/33"], True, 403),  # prefix > 32 throws → no match
        ("1.1.1.1", ["999.1.1.1"], True, 403),  # unparseable range
        ("999.1.1.1", ["999.1.1.1"], True, 200),  # exact string equality runs before the CIDR test
        ("8.1.1.1", ["010.1.1.1"], True, 200),  # .NET reads a leading zero as octal [I]
        ("198.51.100.1", [], True, 200),  # empty list is Any
    ],
)
def test_ip_allow_list_vectors(cipp_tls: Any, xff: str, stored: list[str], faithful: bool, status: int) -> None:
    with CippEmulator(cipp_tls, tenant_id=CIPP_TENANT_ID, faithful=faithful) as emulator:
        client_id, secret = new_id(), "vector-secret"
        emulator.add_client(client_id, "vector", "readonly", stored, secret=secret)
        emulator.save_to_azure()
        caller = CippCaller(emulator, cipp_tls.ca_bundle, client_id, secret)
        response = caller.request("GET", "/api/ListTenants", xff=xff)
        caller.close()
    assert response.status_code == status
    if status == 403:
        assert response.text == API_CLIENT_DENIED
        assert is_text_plain(response)


def test_ip_denial_is_the_exact_text_plain_403_and_inside_the_range_gets_200(cipp_caller: CallerFactory) -> None:
    caller = cipp_caller(role="readonly", ip_ranges=["203.0.113.0/24"])
    inside = caller.request("GET", "/api/ListTenants", xff="203.0.113.200:40000")
    outside = caller.request("GET", "/api/ListTenants", xff="198.51.100.1")
    assert inside.status_code == 200
    assert isinstance(inside.json(), list)
    assert outside.status_code == 403
    assert outside.text == API_CLIENT_DENIED
    assert outside.headers["Content-Type"].startswith("text/plain")
    logged = caller.emulator.request_log[-1]
    assert (logged.method, logged.path, logged.status) == ("GET", "/api/ListTenants", 403)
    assert (logged.client_id, logged.xff, logged.response_body) == (caller.client_id, "198.51.100.1", API_CLIENT_DENIED)


def test_missing_xff_is_403_when_restricted_and_fine_when_any(cipp_caller: CallerFactory) -> None:
    restricted = cipp_caller(role="editor", ip_ranges=["203.0.113.0/24"])
    unrestricted = cipp_caller(role="editor")
    denied = restricted.exec_api_client(action="List", xff=None)
    assert (denied.status_code, denied.text) == (403, MISSING_XFF_DENIED)
    assert unrestricted.exec_api_client(action="List", xff=None).status_code == 200


# -- roles and the framework (§5.4, §8, §9) ------------------------------------------------------------
def test_readonly_caller_gets_the_base_role_403(cipp_caller: CallerFactory) -> None:
    response = cipp_caller(role="readonly").exec_api_client(action="List")
    assert (response.status_code, response.text) == (403, READONLY_DENIED)
    assert is_text_plain(response)


def test_roleless_caller_and_unknown_client_get_the_user_permission_403(cipp_caller: CallerFactory) -> None:
    for caller in (cipp_caller(role=""), cipp_caller(in_table=False)):
        response = caller.exec_api_client(action="List")
        assert (response.status_code, response.text) == (403, NO_ROLE_DENIED)


def test_unknown_endpoint_is_404_before_the_ip_check(cipp_caller: CallerFactory) -> None:
    caller = cipp_caller(role="editor", ip_ranges=["203.0.113.0/24"])
    response = caller.request("GET", "/api/ListNothing", xff="198.51.100.1")
    assert (response.status_code, response.text) == (404, ENDPOINT_NOT_FOUND)
    assert caller.exec_api_client(action="List").status_code == 200
    assert caller.request("GET", "/api/execapiclient?action=list").status_code == 200  # routes are case-insensitive


def test_empty_list_is_200_with_an_empty_text_plain_body(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    # Only a caller outside the table can see an empty table: give the cipp-api fallback role rights.
    cipp_emulator.add_custom_role("cipp-api", ["CIPP.Extension.ReadWrite"])
    response = cipp_caller(in_table=False).exec_api_client(action="List")
    assert (response.status_code, response.text) == (200, "")
    assert is_text_plain(response)


def test_me_for_custom_and_built_in_roles(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    cipp_emulator.add_custom_role("integrations", ["CIPP.Core.Read"])
    custom = cipp_caller(role="integrations").request("GET", "/api/me")
    assert custom.status_code == 200
    assert custom.json()["clientPrincipal"]["appRole"] == ["integrations"]
    assert custom.json()["permissions"] == ["CIPP.Core.Read"]
    built_in = cipp_caller(role="admin").request("GET", "/api/me")
    assert built_in.status_code == 403
    restricted = cipp_caller(role="integrations", ip_ranges=["203.0.113.0/24"]).request("GET", "/api/me", xff="1.1.1.1")
    assert (restricted.status_code, restricted.text) == (403, API_CLIENT_DENIED)


# -- AddUpdate (§2.2) and storage (§3) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("sent", "stored", "read_back"),
    [
        ([], "", ["Any"]),
        (["203.0.113.7"], '"203.0.113.7"', ["203.0.113.7"]),
        (
            ["203.0.113.0/24", "198.51.100.7"],
            '["203.0.113.0/24","198.51.100.7"]',
            ["203.0.113.0/24", "198.51.100.7"],
        ),
        ([" 1.2.3.4 "], '"1.2.3.4"', ["1.2.3.4"]),
        (["999.1.1.1"], '"999.1.1.1"', ["999.1.1.1"]),  # passes the regex; never matches a real address
        (["203.0.113.99/24", "203.0.113.99/24"], '["203.0.113.99/24","203.0.113.99/24"]', ["203.0.113.99/24"] * 2),
    ],
)
def test_storage_encoding_of_ip_range(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory, sent: list[str], stored: str, read_back: list[str]
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly")
    response = add_update(manager, target, Role={"value": "readonly"}, IPRange=entries(*sent), Enabled=True)
    assert response.json() == ["API client updated"]
    row = cipp_emulator.client_row(target)
    assert row is not None
    assert row["IPRange"] == stored
    assert listed(manager, target)["IPRange"] == read_back


def test_compressed_ipv6_is_rejected_with_a_warning_and_the_list_becomes_any(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly", ["203.0.113.0/24"])
    response = add_update(manager, target, Role={"value": "readonly"}, IPRange=entries("2001:db8::/32"))
    assert response.json() == [
        "API client updated",
        {"resultText": "'2001:db8::/32' is not a valid IP address or CIDR range.", "state": "warning"},
    ]
    assert cipp_emulator.client_row(target)["IPRange"] == ""  # type: ignore[index]
    assert listed(manager, target)["IPRange"] == ["Any"]


def test_expanded_ipv6_is_accepted_and_matches_a_compressed_caller(cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    ipv6 = cipp_caller(role="readonly")
    add_update(manager, ipv6.client_id, Role={"value": "readonly"}, IPRange=entries("2001:db8:0:0:0:0:0:0/32"))
    assert listed(manager, ipv6.client_id)["IPRange"] == ["2001:db8:0:0:0:0:0:0/32"]
    assert ipv6.request("GET", "/api/ListTenants", xff="[2001:db8::42]:443").status_code == 200
    assert ipv6.request("GET", "/api/ListTenants", xff="[2001:db9::42]:443").status_code == 403


def test_only_invalid_entries_leave_the_client_unrestricted(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly", ["203.0.113.0/24"])
    response = add_update(manager, target, Role={"value": "readonly"}, IPRange=entries("Any", "1.2.3.4-1.2.3.9"))
    assert [item["resultText"] for item in response.json()[1:]] == [
        "'Any' is not a valid IP address or CIDR range.",
        "'1.2.3.4-1.2.3.9' is not a valid IP address or CIDR range.",
    ]
    assert cipp_emulator.client_row(target)["IPRange"] == ""  # type: ignore[index]


def test_a_plain_string_array_clears_the_list_without_a_warning(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly", ["203.0.113.0/24"])
    response = add_update(manager, target, Role={"value": "readonly"}, IPRange=["198.51.100.7"])
    assert response.json() == ["API client updated"]
    assert cipp_emulator.client_row(target)["IPRange"] == ""  # type: ignore[index]


def test_value_object_shape_is_accepted(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly")
    add_update(manager, target, Role={"value": "readonly"}, IPRange={"value": ["203.0.113.0/24", "198.51.100.7"]})
    assert cipp_emulator.client_row(target)["IPRange"] == '["203.0.113.0/24","198.51.100.7"]'  # type: ignore[index]


def test_add_update_is_a_full_replacement(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "Kept name", "readonly", ["203.0.113.0/24"], enabled=True, mcp_allowed=True)
    add_update(manager, target, IPRange=entries("198.51.100.7"))
    assert cipp_emulator.client_row(target) == {
        "PartitionKey": "ApiClients",
        "RowKey": target,
        "AppName": "Kept name",
        "Role": "",
        "IPRange": '"198.51.100.7"',
        "Enabled": False,
        "MCPAllowed": False,
    }
    assert listed(manager, target)["Role"] is None


def test_plain_string_role_means_no_role(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly")
    add_update(manager, target, Role="readonly", Enabled=True)
    assert cipp_emulator.client_row(target)["Role"] == ""  # type: ignore[index]


def test_role_escalation_is_denied_before_any_side_effect(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    editor = cipp_caller(role="editor")
    superadmin_client = new_id()
    cipp_emulator.add_client(superadmin_client, "root", "superadmin", ["203.0.113.0/24"], secret="root-secret")
    before = cipp_emulator.client_row(superadmin_client)
    upgrade = add_update(editor, editor.client_id, Role={"value": "admin"}, CIPPAPI={"ResetSecret": True})
    downgrade = add_update(editor, superadmin_client, Role={"value": "readonly"}, CIPPAPI={"ResetSecret": True})
    message = "You do not have sufficient permissions to manage an API client with the '{}' role; "
    message += "it grants permissions beyond your own."
    assert upgrade.json() == [{"resultText": message.format("admin"), "state": "error"}]
    assert downgrade.json() == [{"resultText": message.format("superadmin"), "state": "error"}]
    assert cipp_emulator.client_row(superadmin_client) == before
    assert cipp_emulator.secret_resets == []


@pytest.mark.parametrize(
    ("caller_role", "target_role", "denial"),
    [
        ("admin", "editor", None),
        ("editor", "editor", None),
        ("editor", "", None),  # the cipp-api fallback has no permissions
        ("admin", "superadmin", "beyond your own"),
        ("superadmin", "anonymous", None),  # superadmin callers skip every target check
        ("admin", "anonymous", "The role 'anonymous' cannot be assigned to an API client."),
        ("admin", "Ghost", "The role 'Ghost' does not exist."),
    ],
)
def test_role_grant_matrix(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory, caller_role: str, target_role: str, denial: str | None
) -> None:
    caller = cipp_caller(role=caller_role)
    target = new_id()
    cipp_emulator.add_client(target, "target", "")
    body = add_update(caller, target, Role={"value": target_role}).json()
    if denial is None:
        assert body == ["API client updated"]
    else:
        assert body[0]["state"] == "error"
        assert denial in body[0]["resultText"]


def test_graph_failure_returns_the_results_wrapper_and_leaves_the_row(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly", ["203.0.113.0/24"])
    cipp_emulator.graph_failure_next_addupdate()
    body = add_update(manager, target, Role={"value": "readonly"}, IPRange=entries("198.51.100.7", "bad")).json()
    failure = body["Results"][0]
    assert failure["resultText"].startswith("Could not modify App Registrations. Check the CIPP documentation")
    assert failure["retryAvailable"] is True
    assert failure["retryPayload"]["ClientId"] == target
    assert failure["retryPayload"]["CIPPAPI"] == {"ResetSecret": True}
    assert body["Results"][1] == {"resultText": "'bad' is not a valid IP address or CIDR range.", "state": "warning"}
    assert cipp_emulator.client_row(target)["IPRange"] == '"203.0.113.0/24"'  # type: ignore[index]
    unknown = add_update(manager, new_id(), Role={"value": "readonly"}).json()
    assert "does not exist" in unknown["Results"][0]["resultText"]
    assert "retryAvailable" not in unknown["Results"][0]


def test_concurrent_updates_all_land(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    targets = [new_id() for _ in range(16)]
    for target in targets:
        cipp_emulator.add_client(target, "target", "readonly")

    manager.token()  # fetched once, before the threads share it

    def update(target: str) -> Any:
        return add_update(manager, target, Role={"value": "readonly"}, IPRange=entries("10.0.0.0/8")).json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(update, targets)) == [["API client updated"]] * len(targets)
    assert {cipp_emulator.client_row(target)["IPRange"] for target in targets} == {'"10.0.0.0/8"'}  # type: ignore[index]


def test_without_client_id_or_app_name_nothing_is_saved(cipp_caller: CallerFactory) -> None:
    body = cipp_caller(role="editor").exec_api_client({"Action": "AddUpdate", "IPRange": entries("x")}).json()
    assert body == {"Results": [{"resultText": "'x' is not a valid IP address or CIDR range.", "state": "warning"}]}


def test_app_name_creates_a_client_whose_secret_works(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    body = manager.exec_api_client({"Action": "AddUpdate", "AppName": "PSA", "Role": {"value": "readonly"}}).json()
    created = body[0]
    assert created["resultText"] == (
        "API Client created with the name 'PSA'. Use the Copy to Clipboard button to retrieve the secret."
    )
    listed_ids = [item["ClientId"] for item in manager.exec_api_client(action="List").json()["Results"]]
    new_client = next(client_id for client_id in listed_ids if client_id != manager.client_id)
    token = token_endpoint_response(cipp_emulator, manager.ca_bundle, new_client, created["copyField"])
    assert token.status_code == 200
    assert cipp_emulator.client_row(new_client)["Enabled"] is False  # type: ignore[index]


def test_reset_secret_flag_deletes_every_secret(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = cipp_caller(role="readonly", app_name="RMM")
    add_update(manager, target.client_id, Role={"value": "readonly"}, Enabled=True)
    assert cipp_emulator.secrets_reset_count(target.client_id) == 0
    body = add_update(manager, target.client_id, Role={"value": "readonly"}, CIPPAPI={"ResetSecret": True}).json()
    assert body[0]["resultText"].startswith("API client updated and application secret reset for 'RMM'.")
    assert cipp_emulator.secrets_reset_count(target.client_id) == 1
    reset = cipp_emulator.secret_resets[0]
    assert (reset.trigger, reset.deleted_secrets, reset.new_secret) == ("AddUpdate", 1, body[0]["copyField"])
    old = token_endpoint_response(cipp_emulator, target.ca_bundle, target.client_id, target.secret)
    new = token_endpoint_response(cipp_emulator, target.ca_bundle, target.client_id, reset.new_secret)
    assert (old.status_code, new.status_code) == (401, 200)


def test_non_string_ip_range_is_a_500_after_the_graph_side_effects(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly", ["203.0.113.0/24"], secret="target-secret")
    response = add_update(
        manager, target, Role={"value": "readonly"}, IPRange=[{"value": 42}], CIPPAPI={"ResetSecret": True}
    )
    assert response.status_code == 500
    assert response.text == "Method invocation failed because [System.Int64] does not contain a method named 'Trim'."
    assert is_text_plain(response)
    assert cipp_emulator.secrets_reset_count(target) == 1
    assert cipp_emulator.client_row(target)["IPRange"] == '"203.0.113.0/24"'  # type: ignore[index]


def test_mcp_success_and_failure_messages(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly")
    assert add_update(manager, target, Role={"value": "readonly"}, MCPAllowed=True).json()[1] == MCP_CONFIGURED
    cipp_emulator.mcp_failure_next("boom")
    warning = add_update(manager, target, Role={"value": "readonly"}, MCPAllowed=True).json()[1]
    assert warning == {"resultText": "Client saved, but MCP app configuration failed: boom", "state": "warning"}


# -- request parsing (§2) -------------------------------------------------------------------------------
def test_action_and_properties_are_case_insensitive_and_the_query_wins(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "target", "readonly")
    body = {"action": "List", "clientid": target, "ROLE": {"VALUE": "readonly"}, "ipRange": entries("203.0.113.9")}
    assert manager.exec_api_client(body, action="addupdate").json() == ["API client updated"]
    assert cipp_emulator.client_row(target)["IPRange"] == '"203.0.113.9"'  # type: ignore[index]
    assert "Results" in manager.exec_api_client({"Action": "LIST"}).json()


def test_a_non_json_content_type_leaves_every_body_field_null(cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    text_body = '{"Action":"AddUpdate","ClientId":"x"}'
    headers = {"Content-Type": "text/plain"}
    assert manager.request("POST", "/api/ExecApiClient", data=text_body, headers=headers).json() == {
        "Results": "Invalid action"
    }
    with_query = manager.request("POST", "/api/ExecApiClient?Action=AddUpdate", data=text_body, headers=headers)
    assert with_query.json() == {"Results": []}


def test_invalid_action(cipp_caller: CallerFactory) -> None:
    response = cipp_caller(role="editor").exec_api_client(action="Frobnicate")
    assert (response.status_code, response.json()) == (200, {"Results": "Invalid action"})


# -- read-back rules (§3) -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("faithful", "status", "stray_any"),
    [(True, 403, True), (False, 200, False)],
)
def test_a_stored_empty_array(cipp_tls: Any, faithful: bool, status: int, stray_any: bool) -> None:
    with CippEmulator(cipp_tls, tenant_id=CIPP_TENANT_ID, faithful=faithful) as emulator:
        legacy, manager = new_id(), new_id()
        emulator.add_client(legacy, "legacy", "editor", "[]", secret="legacy-secret")
        emulator.add_client(manager, "manager", "editor", secret="manager-secret")
        emulator.save_to_azure()
        legacy_caller = CippCaller(emulator, cipp_tls.ca_bundle, legacy, "legacy-secret")
        manager_caller = CippCaller(emulator, cipp_tls.ca_bundle, manager, "manager-secret")
        assert legacy_caller.exec_api_client(action="List").status_code == status
        results = manager_caller.exec_api_client(action="List").json()["Results"]
        legacy_caller.close()
        manager_caller.close()
    assert ("Any" in results) is stray_any
    legacy_view = next(item for item in results if isinstance(item, dict) and item["ClientId"] == legacy)
    assert legacy_view["IPRange"] == ([] if faithful else ["Any"])


@pytest.mark.parametrize(
    ("raw", "read_back"),
    [('"203.0.113.7"', ["203.0.113.7"]), ("203.0.113.7", ["Any"]), ("", ["Any"]), ('["a","b"]', ["a", "b"])],
)
def test_raw_rows_read_back(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory, raw: str, read_back: list[str]
) -> None:
    manager = cipp_caller(role="editor")
    target = new_id()
    cipp_emulator.add_client(target, "raw", "readonly", raw)
    assert cipp_emulator.client_row(target)["IPRange"] == raw  # type: ignore[index]
    assert listed(manager, target)["IPRange"] == read_back


def test_list_is_in_row_key_order_with_the_spec_shape(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor", client_id="88888888-0000-0000-0000-000000000000")
    cipp_emulator.add_client("11111111-0000-0000-0000-000000000000", "first", "", mcp_allowed=True)
    results = manager.exec_api_client(action="List").json()["Results"]
    assert [item["ClientId"] for item in results] == [
        "11111111-0000-0000-0000-000000000000",
        "88888888-0000-0000-0000-000000000000",
    ]
    assert results[0] == {
        "ClientId": "11111111-0000-0000-0000-000000000000",
        "AppName": "first",
        "Role": None,
        "IPRange": ["Any"],
        "Enabled": True,
        "MCPAllowed": True,
    }


# -- SaveToAzure, GetAzureConfiguration, Enabled (§5.4, §6) -------------------------------------------
def test_save_to_azure_allows_exactly_the_enabled_rows(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    enabled, disabled, stringly = new_id(), new_id(), new_id()
    cipp_emulator.add_client(enabled, "on", "readonly", enabled=True)
    cipp_emulator.add_client(disabled, "off", "readonly", enabled=False)
    cipp_emulator.add_client(stringly, "string", "readonly", enabled="true")  # not matched by `Enabled eq true`
    assert manager.exec_api_client({}, action="SaveToAzure").json() == {"Results": "API clients saved to Azure"}
    assert cipp_emulator.easyauth_allowed == {manager.client_id, enabled}
    configuration = manager.exec_api_client(action="GetAzureConfiguration").json()["Results"]
    assert configuration == {
        "ApiUrl": cipp_emulator.url,
        "TenantID": CIPP_TENANT_ID,
        "ClientIDs": sorted([manager.client_id, enabled]),
        "Enabled": True,
    }


def test_a_disabled_client_works_until_save_to_azure(cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    worker = cipp_caller(role="readonly")
    add_update(manager, worker.client_id, Role={"value": "readonly"}, Enabled=False)
    assert worker.request("GET", "/api/ListTenants").status_code == 200
    manager.exec_api_client({}, action="SaveToAzure")
    assert worker.request("GET", "/api/ListTenants").status_code == 401


def test_missing_arm_rights(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    cipp_emulator.managed_identity_has_arm_rights = False
    saved = manager.exec_api_client({}, action="SaveToAzure").json()
    assert saved["Results"].startswith("Failed to save allowed API clients to Azure")
    configuration = manager.exec_api_client(action="GetAzureConfiguration").json()["Results"]
    assert configuration["Enabled"].startswith("Could not get API clients")


# -- ResetSecret, RepairUri, Delete, ListAvailable (§2.1) -----------------------------------------------
def test_reset_secret_action(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = cipp_caller(role="readonly", app_name="RMM")
    body = manager.exec_api_client({"Action": "ResetSecret", "ClientId": target.client_id}).json()
    assert body[0]["resultText"] == (
        "API secret reset for RMM. Use the Copy to Clipboard button to retrieve the new secret."
    )
    assert body[0]["copyField"] == cipp_emulator.current_secret(target.client_id)
    assert cipp_emulator.secret_resets[-1].trigger == "ResetSecret"
    missing = manager.exec_api_client({"Action": "ResetSecret", "ClientId": new_id()}).json()
    assert missing == [{"resultText": "API client not found", "state": "error"}]
    admin = cipp_caller(role="admin")
    denied = manager.exec_api_client({"Action": "ResetSecret", "ClientId": admin.client_id}).json()
    assert denied[0]["state"] == "error"
    assert cipp_emulator.secrets_reset_count(admin.client_id) == 0


def test_repair_uri(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = cipp_caller(role="readonly", app_name="RMM")
    assert manager.exec_api_client({"Action": "RepairUri", "ClientId": target.client_id}).json()[0]["state"] == "info"
    cipp_emulator.break_identifier_uri(target.client_id)
    fixed = manager.exec_api_client({"Action": "RepairUri", "ClientId": target.client_id}).json()
    assert fixed[0]["state"] == "success"
    assert fixed[0]["resultText"].startswith("Identifier URI fixed for RMM.")


def test_delete(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    target = cipp_caller(role="readonly")
    gone = manager.exec_api_client({"Action": "Delete", "ClientId": {"value": target.client_id}, "RemoveAppReg": True})
    assert gone.json() == {"Results": f"API client {target.client_id} deleted"}
    assert cipp_emulator.client_row(target.client_id) is None
    assert token_endpoint_response(cipp_emulator, target.ca_bundle, target.client_id, target.secret).status_code == 401
    unknown = manager.exec_api_client({"Action": "Delete", "ClientId": new_id()})
    assert (unknown.status_code, unknown.text) == (200, "")
    nothing = manager.exec_api_client({"Action": "Delete"}).json()
    assert nothing == {"Results": "API client  not found or not a valid CIPP-API application"}
    superadmin = cipp_caller(role="superadmin")
    denied = manager.exec_api_client({"Action": "Delete", "ClientId": superadmin.client_id}).json()
    assert "beyond your own" in denied["Results"]
    assert cipp_emulator.client_row(superadmin.client_id) is not None


def test_list_available(cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor", app_name="Manager")
    apps = manager.exec_api_client(action="ListAvailable").json()["Results"]
    assert [(app["appId"], app["displayName"]) for app in apps] == [(manager.client_id, "Manager")]
    assert apps[0]["web"]["redirectUris"][0].endswith("/.auth/login/aad/callback")


# -- command line ---------------------------------------------------------------------------------------
def test_cli_starts_serves_and_stops() -> None:
    client_id = "abcdef01-2345-6789-abcd-ef0123456789"
    command = ["-m", "emulators.cipp", "--port", "0", "--client", f"{client_id}:editor:127.0.0.0/8:true"]
    with subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            lines = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
            url, ca_bundle, tenant = lines["CIPP_API_URL"], lines["CIPP_CA_BUNDLE"], lines["CIPP_TENANT_ID"]
            secret = lines["CIPP_CLIENT"].split(" ", 1)[1]
            token = client_credentials_response(url, tenant, client_id, secret, ca_bundle).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "127.0.0.1:5000"}
            response = requests.get(
                f"{url}/api/ExecApiClient?Action=List", headers=headers, verify=ca_bundle, timeout=10
            )
            assert response.json()["Results"][0]["ClientId"] == client_id
        finally:
            process.terminate()
        assert process.wait(timeout=10) == 0


# -- ListTenants (Invoke-ListTenants over Get-Tenants -IncludeErrors -SkipDomains) --------------------------
def test_list_tenants_answers_in_cipps_shape_sorted_by_display_name(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    cipp_emulator.tenants.clear()
    cipp_emulator.add_tenant("00000000-0000-0000-0000-0000000000b2", "beta.com", "Beta")
    cipp_emulator.add_tenant("00000000-0000-0000-0000-0000000000a1", "alpha.onmicrosoft.com", "alpha", direct=True)
    cipp_emulator.add_tenant("00000000-0000-0000-0000-0000000000c3", "gamma.com", "Gamma", graph_errors=60)
    cipp_emulator.add_tenant("00000000-0000-0000-0000-0000000000d4", "delta.com", "Delta", excluded=True)
    cipp_emulator.partner_tenant_listed = True
    response = cipp_caller(role="readonly").request("GET", "/api/ListTenants")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert [t["displayName"] for t in body] == ["*Partner Tenant", "alpha", "Beta", "Gamma"], "Excluded left out"
    partner, alpha, beta, gamma = body
    assert (partner["customerId"], partner["domains"]) == (CIPP_TENANT_ID, "PartnerTenant")
    assert "delegatedPrivilegeStatus" not in partner
    assert alpha["delegatedPrivilegeStatus"] == "directTenant"
    assert beta["delegatedPrivilegeStatus"] == "granularDelegatedAdminPrivileges"
    assert (gamma["GraphErrorCount"], gamma["Excluded"]) == (60, False), "-IncludeErrors keeps failing tenants"
    assert set(beta) >= {"customerId", "defaultDomainName", "initialDomainName", "RowKey", "LastGraphError"}


def test_a_failed_tenant_listing_is_http_200_with_an_error_entry(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    cipp_emulator.tenant_listing_failure = "Could not get a token for the partner tenant"
    response = cipp_caller(role="readonly").request("GET", "/api/ListTenants")
    assert response.status_code == 200
    assert response.json() == [
        {
            "Results": "Failed to retrieve tenants: Could not get a token for the partner tenant",
            "defaultDomainName": "",
            "displayName": "Failed to retrieve tenants. Perform a permission check.",
            "customerId": "",
        }
    ]


def test_list_tenants_needs_core_read_and_drops_domain_errors(
    cipp_emulator: CippEmulator, cipp_caller: CallerFactory
) -> None:
    cipp_emulator.add_custom_role("no-core", ["CIPP.Extension.ReadWrite"])
    denied = cipp_caller(role="no-core").request("GET", "/api/ListTenants")
    assert denied.status_code == 403
    assert "CIPP.Core.Read" in denied.text
    cipp_emulator.tenants.clear()
    cipp_emulator.add_tenant("00000000-0000-0000-0000-0000000000e5", "Domain Error", "Broken")
    assert cipp_caller(role="readonly").request("GET", "/api/ListTenants").json() == []


# -- audiences and custom-role limits (Set-CippApiAuth.ps1, Test-CIPPAccess.ps1) -------------
def token_with_audience(emulator: CippEmulator, caller: CippCaller, audience: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": caller.client_id,
        "client_secret": caller.secret,
        "scope": f"{audience}/.default",
    }
    response = requests.post(
        f"{emulator.url}/{emulator.tenant_id}/oauth2/v2.0/token", data=form, verify=str(caller.ca_bundle), timeout=10
    )
    return str(response.json()["access_token"])


def list_with(emulator: CippEmulator, caller: CippCaller, audience: str) -> int:
    headers = {
        "Authorization": f"Bearer {token_with_audience(emulator, caller, audience)}",
        "X-Forwarded-For": "1.1.1.1",
    }
    url = f"{emulator.url}/api/ExecApiClient?Action=List"
    return requests.get(url, headers=headers, verify=str(caller.ca_bundle), timeout=10).status_code


def test_audiences_are_those_save_to_azure_writes(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    manager = cipp_caller(role="editor")
    assert list_with(cipp_emulator, manager, f"api://{manager.client_id}") == 200
    for audience in (manager.client_id, cipp_emulator.url, f"{cipp_emulator.url}/api/ExecMcp"):
        assert list_with(cipp_emulator, manager, audience) == 401  # no MCP client saved: api:// only
    mcp = cipp_caller(role="editor", mcp_allowed=True)  # saves again, now with an MCP client
    assert cipp_emulator.easyauth_audiences() >= {mcp.client_id, f"{cipp_emulator.url}/api/execmcp"}
    for audience in (mcp.client_id, cipp_emulator.url, f"{cipp_emulator.url}/api/ExecMcp", f"api://{mcp.client_id}"):
        assert list_with(cipp_emulator, mcp, audience) == 200
    assert list_with(cipp_emulator, manager, manager.client_id) == 401  # bare ids only for MCP clients
    assert list_with(cipp_emulator, manager, mcp.client_id) == 200  # one audience list for every caller


def test_a_custom_roles_blocked_endpoint(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    cipp_emulator.add_custom_role("no-api-admin", ["CIPP.Extension.ReadWrite"], blocked_endpoints=["ExecApiClient"])
    response = cipp_caller(role="no-api-admin").exec_api_client(action="List")
    assert (response.status_code, response.text) == (
        403,
        "Access to this CIPP API endpoint is not allowed, the custom role 'no-api-admin' has blocked this endpoint: "
        "ExecApiClient",
    )
    assert cipp_caller(role="no-api-admin").request("GET", "/api/ListTenants").status_code == 403  # no Core.Read


def listed_for(caller: CippCaller, tenant_filter: str) -> requests.Response:
    return caller.request("GET", "/api/ExecApiClient", params={"Action": "List", "tenantFilter": tenant_filter})


def test_a_custom_roles_tenant_limits(cipp_emulator: CippEmulator, cipp_caller: CallerFactory) -> None:
    contoso = str(uuid.UUID(int=1))
    fabrikam = "00000000-0000-0000-0000-0000000000f2"
    cipp_emulator.add_tenant(fabrikam, "fabrikam.onmicrosoft.com", "Fabrikam")
    cipp_emulator.add_custom_role("contoso-only", ["CIPP.Extension.ReadWrite"], allowed_tenants=[contoso])
    caller = cipp_caller(role="contoso-only")
    assert caller.exec_api_client(action="List").status_code == 200  # no tenantFilter: not tenant-scoped
    assert listed_for(caller, contoso).status_code == 200
    by_domain = caller.exec_api_client({"Action": "List", "tenantFilter": {"value": "contoso.onmicrosoft.com"}})
    assert by_domain.status_code == 200
    for target in (fabrikam, "unknown.example", "AllTenants"):  # AllTenants with a Write permission: denied
        denied = listed_for(caller, target)
        assert (denied.status_code, denied.text) == (403, "Access to this tenant is not allowed")
    cipp_emulator.add_custom_role(
        "blocks-in-fabrikam",
        ["CIPP.Extension.ReadWrite"],
        allowed_tenants=[fabrikam],
        blocked_endpoints=["execapiclient"],
    )
    scoped = cipp_caller(role="blocks-in-fabrikam")
    assert "has blocked this endpoint" in listed_for(scoped, fabrikam).text
    assert listed_for(scoped, contoso).text == "Access to this tenant is not allowed"
