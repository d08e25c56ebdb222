"""Part C pure rules (cipp_hardening.cipp_api): the AddUpdate body, open clients; and CIPP's answer shapes, which
service_clients.cipp_client reads (List bodies, AddUpdate answers, GetAzureConfiguration)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cipp_hardening.cipp_api import (
    DENY_ALL,
    AppServiceAuth,
    add_update_body,
    canonical_ranges,
    delete_plan,
    denying_clients,
    find_client,
    is_enabled,
    pending_saves,
    ranges_of,
    unrestricted_clients,
    unrestricted_message,
)
from emulators.cipp import VALID_RANGE_ENTRY, ip_in_range
from service_clients.cipp_client import (
    AzureConfiguration,
    CippResponseError,
    add_update_problems,
    mcp_warnings,
    parse_azure_configuration,
    parse_list_body,
)

MANAGER = "00000000-0000-0000-0000-0000000e0001"
RMM = "00000000-0000-0000-0000-0000000e0002"
PSA = "00000000-0000-0000-0000-0000000e0003"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def item(client_id: str, ranges: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """A List item as docs/cipp-api.md §3 shows it."""
    return {
        "ClientId": client_id,
        "AppName": fields.pop("AppName", "app"),
        "Role": fields.pop("Role", "readonly"),
        "IPRange": ranges or ["Any"],
        "Enabled": fields.pop("Enabled", True),
        "MCPAllowed": fields.pop("MCPAllowed", False),
        **fields,
    }


def inputs(**changes: Any) -> dict[str, Any]:
    base = {
        "url": "https://cipp-api-example.azurewebsites.net",
        "tenantId": "00000000-0000-0000-0000-00000000a001",
        "managerClientId": MANAGER,
        "clientId": RMM,
        "allowedRanges": ["203.0.113.0/24"],
        "allowSelfUpdate": False,
        "restoreOnDelete": False,
        "allowAnyOnDelete": False,
    }
    return {**base, **changes}


# -- List -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", ["", "  \n"])
def test_an_empty_list_body_means_no_clients(body: str) -> None:
    assert parse_list_body(body) == []


def test_list_keeps_only_client_objects() -> None:
    # docs/cipp-api.md §10.1: the pre-#472 bug puts a bare "Any" string next to a client stored as "[]".
    body = json.dumps({"Results": ["Any", item(RMM, ["198.51.100.7"]), {"no": "id"}]})
    assert [c["ClientId"] for c in parse_list_body(body)] == [RMM]


@pytest.mark.parametrize(
    "body", ['{"Results":"Invalid action"}', '["API client updated"]', "<html>login</html>", '{"value":[]}']
)
def test_other_list_shapes_are_errors(body: str) -> None:
    with pytest.raises(CippResponseError):
        parse_list_body(body)


def test_find_client_ignores_case() -> None:
    clients = [item(RMM.upper()), item(PSA)]
    assert find_client(clients, RMM) == clients[0]
    assert find_client(clients, MANAGER) is None


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (["Any"], []),
        (["any"], []),
        (["203.0.113.0/24", "Any"], []),  # "Any" beside real ranges: Test-CIPPAccess allows every address
        ([], [DENY_ALL]),  # stored "[]": 10.8.2 leaves the list empty and refuses every address
        (None, []),
        (["203.0.113.0/24", "198.51.100.7"], ["203.0.113.0/24", "198.51.100.7"]),
        ("198.51.100.7", ["198.51.100.7"]),
    ],
)
def test_ranges_of(stored: Any, expected: list[str]) -> None:
    assert ranges_of({"IPRange": stored}) == expected


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(True, True), (False, False), ("true", False), ("True", False), ("false", False), (None, False)],
)
def test_is_enabled(value: Any, enabled: bool) -> None:
    assert is_enabled({"Enabled": value}) is enabled


# -- AddUpdate --------------------------------------------------------------------------------------
def test_add_update_body_keeps_role_enabled_and_mcp_and_sends_value_objects() -> None:
    client = item(RMM, ["198.51.100.7"], Role="custom-rmm", Enabled=False, MCPAllowed=True, AppName="RMM")
    body = add_update_body(client, ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/48"])
    assert body == {
        "Action": "AddUpdate",
        "ClientId": RMM,
        "Role": {"value": "custom-rmm"},
        "IPRange": [
            {"label": "203.0.113.0/24", "value": "203.0.113.0/24"},
            {
                "label": "2001:0db8:0000:0000:0000:0000:0000:0000/48",
                "value": "2001:0db8:0000:0000:0000:0000:0000:0000/48",
            },
        ],
        "Enabled": False,
        "MCPAllowed": True,
    }
    assert "AppName" not in body
    assert "CIPPAPI" not in body


def test_add_update_body_for_a_roleless_client_and_no_ranges() -> None:
    body = add_update_body(item(RMM, Role=None), [])
    assert body["Role"] == {"value": ""}
    assert body["IPRange"] == []


def test_a_legacy_string_enabled_goes_back_verbatim() -> None:
    assert add_update_body(item(RMM, Enabled="true"), [])["Enabled"] == "true"


@pytest.mark.parametrize(
    "payload",
    [
        ["API client updated"],
        [
            "API client updated",
            "MCP resource URIs, v2 tokens, and callbacks for known MCP clients (Claude, ChatGPT, VS Code, Copilot) "
            "configured on the app registration. Run Save to Azure to apply the changes.",
        ],
        [{"resultText": "API Client created with the name 'x'.", "copyField": None, "state": "success"}],
    ],
)
def test_bare_arrays_without_errors_or_warnings_succeed(payload: Any) -> None:
    assert add_update_problems(payload) == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (
            ["API client updated", {"resultText": "'2001:db8::/32' is not a valid IP address", "state": "warning"}],
            "warning: '2001:db8::/32'",
        ),
        ([{"resultText": "You do not have sufficient permissions", "state": "error"}], "error: You do not have"),
        (
            {"Results": [{"resultText": "Could not modify App Registrations.", "state": "error"}]},
            "failure: Could not modify",
        ),
        ({"Results": []}, "nothing was saved"),
        ({"Results": "Invalid action"}, "failure: Invalid action"),
        ("API client updated", "unexpected AddUpdate answer"),
    ],
)
def test_failure_shapes(payload: Any, fragment: str) -> None:
    problems = add_update_problems(payload)
    assert problems
    assert any(fragment in p for p in problems), problems


# -- ranges -----------------------------------------------------------------------------------------
def test_canonical_ranges_expand_ipv6_drop_duplicates_and_keep_order() -> None:
    kept, problems = canonical_ranges(["2001:db8::/48", "203.0.113.0/24", "203.0.113.7/32", "2001:DB8:0::/48"])
    assert kept == ["2001:0db8:0000:0000:0000:0000:0000:0000/48", "203.0.113.0/24", "203.0.113.7"]
    assert problems == []


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "203.0.113.7/24", "Any", "1.2.3.4-1.2.3.9", "::ffff:1.2.3.4", 42])
def test_canonical_ranges_refuse_what_cipp_would_mishandle(entry: Any) -> None:
    kept, problems = canonical_ranges([entry])
    assert kept == []
    assert problems
    assert problems[0].startswith("allowedRanges[0]")


@pytest.mark.parametrize(
    ("entry", "inside", "outside"),
    [
        ("203.0.113.0/24", "203.0.113.200", "198.51.100.1"),
        ("198.51.100.7", "198.51.100.7", "198.51.100.8"),
        ("2001:db8::/48", "2001:db8:0:ffff::1", "2001:db8:1::1"),
        ("2001:db8::1", "2001:db8::1", "2001:db8::2"),
        ("128.0.0.0/1", "200.1.2.3", "10.1.2.3"),
    ],
)
def test_canonical_spelling_passes_cipps_regex_and_matches_like_cipp(entry: str, inside: str, outside: str) -> None:
    """The emulator ports CIPP's validation regex and Test-IpInRange (docs/cipp-api.md §2.2, §5.3)."""
    [canonical], _ = canonical_ranges([entry])
    assert VALID_RANGE_ENTRY.search(canonical)
    assert ip_in_range(inside, canonical)
    assert not ip_in_range(outside, canonical)


# -- open clients -----------------------------------------------------------------------------------
def test_unrestricted_clients_are_enabled_any_and_unmanaged() -> None:
    clients = [
        item(MANAGER),  # Any, enabled, but managed
        item(RMM, ["198.51.100.7"]),  # restricted
        item(PSA, AppName="PSA"),  # open
        item("00000000-0000-0000-0000-0000000e0004", Enabled=False),  # disabled
        item("00000000-0000-0000-0000-0000000e0005", Enabled="true", Role=None),  # a string: SaveToAzure skips it
        item("00000000-0000-0000-0000-0000000e0006", Role=None),  # open, roleless
    ]
    found = unrestricted_clients(clients, [MANAGER.upper()])
    assert [c.to_json() for c in found] == [
        {"clientId": PSA, "appName": "PSA", "role": "readonly"},
        {"clientId": "00000000-0000-0000-0000-0000000e0006", "appName": "app", "role": ""},
    ]
    message = unrestricted_message(found, "fail")
    assert message.startswith("2 CIPP-API client(s) that can call CIPP accept requests from any IP address")
    assert f"{PSA} (PSA, role readonly)" in message
    assert "role none" in message
    assert "unrestrictedClients: fail" in message
    assert "warning only" in unrestricted_message(found, "warn")


# -- delete -----------------------------------------------------------------------------------------
def test_delete_leaves_the_ranges_by_default() -> None:
    plan = delete_plan({**inputs(), "adoptedRanges": []})
    assert plan.action == "leave"
    assert "no longer managed" in plan.reason


def test_delete_restores_the_adopted_ranges() -> None:
    plan = delete_plan({**inputs(restoreOnDelete=True), "adoptedRanges": ["198.51.100.7"]})
    assert (plan.action, plan.ranges) == ("restore", ("198.51.100.7",))


def test_delete_refuses_to_restore_any_unless_allowed() -> None:
    refused = delete_plan({**inputs(restoreOnDelete=True), "adoptedRanges": []})
    assert refused.action == "refuse"
    assert "allowAnyOnDelete: true" in refused.reason
    allowed = delete_plan({**inputs(restoreOnDelete=True, allowAnyOnDelete=True), "adoptedRanges": []})
    assert (allowed.action, allowed.ranges) == ("restore", ())
    assert "Any (no restriction)" in allowed.reason


# -- what CIPP's source says ---------------------------------------------------------------
E4, E5 = "00000000-0000-0000-0000-0000000e0004", "00000000-0000-0000-0000-0000000e0005"


def test_a_client_stored_as_an_empty_array_is_refused_everywhere_not_open() -> None:
    """Get-CippApiClient 10.8.2 leaves "[]" as an empty list (plus a stray "Any"): Test-CIPPAccess matches nothing."""
    body = json.dumps({"Results": ["Any", item(PSA, AppName="locked")]})
    [locked] = parse_list_body(body)
    locked["IPRange"] = []
    assert ranges_of(locked) == [DENY_ALL]
    assert unrestricted_clients([locked], []) == []
    assert [c.client_id for c in denying_clients([locked, item(RMM)])] == [PSA]
    assert "every address refused" in delete_plan({**inputs(restoreOnDelete=True), "adoptedRanges": [DENY_ALL]}).reason


def test_restoring_a_deny_all_adoption_leaves_the_ranges() -> None:
    # AddUpdate stores no ranges as "" (Any): "[]" cannot be written back, and Any would open the client.
    plan = delete_plan({**inputs(restoreOnDelete=True, allowAnyOnDelete=True), "adoptedRanges": [DENY_ALL]})
    assert (plan.action, plan.ranges) == ("leave", ())
    assert "cannot be written back" in plan.reason


def test_a_missing_restore_on_delete_means_leave() -> None:
    props = {k: v for k, v in inputs().items() if k != "restoreOnDelete"}
    assert delete_plan({**props, "adoptedRanges": ["198.51.100.7"]}).action == "leave"


def test_open_is_judged_by_app_services_allowed_list_when_known() -> None:
    clients = [item(PSA), item(E4, Enabled=False), item(E5, Enabled="true")]
    app_service = AppServiceAuth(frozenset({E4, E5}), True)  # the last save ran while E4/E5 were enabled
    assert [c.client_id for c in unrestricted_clients(clients, [], app_service)] == [E4, E5]
    assert [c.client_id for c in unrestricted_clients(clients, [])] == [PSA]  # table flag: booleans only
    pending = pending_saves(clients, app_service)
    assert [(p.client.client_id, p.table_enabled, p.app_service_allows) for p in pending] == [
        (PSA, True, False),
        (E4, False, True),
        (E5, False, True),
    ]
    assert "until 'Save Azure Configuration' runs" in pending[0].describe()
    assert unrestricted_clients(clients, [], AppServiceAuth(frozenset({PSA}), False)) == []  # EasyAuth off


def test_get_azure_configuration_bodies() -> None:
    saved = {"Results": {"ApiUrl": "https://x", "TenantID": "t", "ClientIDs": [PSA.upper()], "Enabled": True}}
    assert parse_azure_configuration(saved) == AzureConfiguration(frozenset({PSA}), True)
    none = {"Results": {"ApiUrl": "https://x", "TenantID": "", "ClientIDs": None, "Enabled": False}}
    assert parse_azure_configuration(none) == AzureConfiguration(frozenset(), False)
    failed = {"Results": {"Enabled": "Could not get API clients, ensure ...", "Error": {"Message": "403 ARM"}}}
    with pytest.raises(CippResponseError, match=r"Could not get API clients.*403 ARM"):
        parse_azure_configuration(failed)


def test_the_mcp_warning_is_not_a_dropped_entry() -> None:
    mcp = {"resultText": "Client saved, but MCP app configuration failed: Graph said no", "state": "warning"}
    assert add_update_problems(["API client updated", mcp]) == []
    assert mcp_warnings(["API client updated", mcp]) == [mcp["resultText"]]
    dropped = {"resultText": "'x' is not a valid IP address or CIDR range.", "state": "warning"}
    assert add_update_problems(["API client updated", mcp, dropped]) == [
        f"CIPP reported warning: {dropped['resultText']}"
    ]
