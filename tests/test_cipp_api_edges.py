"""cipp_api.py's edges, and the CIPP client's reading of its answers, that tests/test_cipp_api_rules.py leaves
List's ranges, Role, Enabled and MCPAllowed read as, and which declared ranges widen a client.

Shapes are CIPP's, as docs/cipp-api.md records them (§2.2 AddUpdate, §3 List, §5.3 the range check).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cipp_hardening.cipp_api import (
    ANY,
    DENY_ALL,
    UnknownMcpFlag,
    add_update_body,
    ranges_of,
    summary,
    unconfirmed_fields,
    widened_ranges,
    widening_message,
)
from service_clients.cipp_client import CippResponseError, add_update_problems, parse_list_body

CLIENT = "00000000-0000-0000-0000-0000000e0002"


def item(**fields: Any) -> dict[str, Any]:
    return {"ClientId": CLIENT, "Role": "readonly", "Enabled": True, "MCPAllowed": False, **fields}


def test_nulls_and_blanks_in_a_listed_range_are_no_range() -> None:
    assert ranges_of(item(IPRange=[None, "", "203.0.113.0/24"])) == ["203.0.113.0/24"]
    assert ranges_of(item(IPRange=[None, ""])) == []
    assert ranges_of(item(IPRange=[])) == [DENY_ALL]
    assert ranges_of(item(IPRange=["203.0.113.0/24", "any"])) == []


def sent(**fields: Any) -> dict[str, Any]:
    return add_update_body(item(**fields), ["203.0.113.0/24"])


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (item(), []),
        (item(Role=None), ["Role None (sent 'readonly')"]),
        (item(Role="editor"), ["Role 'editor' (sent 'readonly')"]),
        (item(Enabled=False), ["Enabled False (sent True)"]),
        (item(MCPAllowed=True), ["MCPAllowed True (sent False)"]),
        (item(MCPAllowed="false"), ["MCPAllowed 'false' (sent False)"]),  # PowerShell's [bool]"false" is true
        ({k: v for k, v in item().items() if k != "MCPAllowed"}, []),  # List without MCPAllowed cannot confirm
    ],
)
def test_unconfirmed_fields_read_each_field_as_cipp_does(stored: dict[str, Any], expected: list[str]) -> None:
    assert unconfirmed_fields(sent(), stored) == expected


def test_an_empty_role_lists_as_null_and_confirms() -> None:
    assert unconfirmed_fields(sent(Role=""), item(Role=None)) == []


def test_mcp_allowed_goes_back_as_listed_and_a_contradiction_refuses() -> None:
    assert add_update_body(item(MCPAllowed=True), [])["MCPAllowed"] is True
    assert add_update_body(item(MCPAllowed="true"), [])["MCPAllowed"] == "true", "a legacy string verbatim"
    assert add_update_body(item(MCPAllowed=1), [])["MCPAllowed"] is True
    assert add_update_body(item(MCPAllowed=True), [], stated_mcp_allowed=True)["MCPAllowed"] is True
    with pytest.raises(UnknownMcpFlag, match="mcpAllowed says false but CIPP lists MCPAllowed True"):
        add_update_body(item(MCPAllowed=True), [], stated_mcp_allowed=False)
    without = {k: v for k, v in item().items() if k != "MCPAllowed"}
    assert add_update_body(without, [], stated_mcp_allowed=False)["MCPAllowed"] is False
    with pytest.raises(UnknownMcpFlag):
        add_update_body(without, [])


@pytest.mark.parametrize(
    ("declared", "current", "widened"),
    [
        (["203.0.113.0/24"], [], []),  # Any today
        ([], ["203.0.113.0/24"], [ANY]),  # declared Any
        (["203.0.113.0/25"], ["203.0.113.0/24"], []),  # inside what CIPP holds
        (["203.0.113.0/24"], ["203.0.113.0/25"], ["203.0.113.0/24"]),  # wider
        (["203.0.113.0/24"], [DENY_ALL], ["203.0.113.0/24"]),  # locked today
        (["203.0.113.0/24"], ["not a range"], ["203.0.113.0/24"]),  # unparseable holds nothing
        (["2001:db8::/48"], ["203.0.113.0/24"], ["2001:db8::/48"]),  # another IP version
        (["garbage"], ["203.0.113.0/24"], ["garbage"]),
        (["203.0.113.0/25"], ["203.0.113.99/24"], []),  # CIPP ignores host bits (docs/cipp-api.md §5)
    ],
)
def test_widened_ranges(declared: list[str], current: list[str], widened: list[str]) -> None:
    assert widened_ranges(declared, current) == widened


@pytest.mark.parametrize(
    ("payload", "problems"),
    [
        ([{"state": "success", "resultText": "saved"}], []),
        ({"Results": []}, ["CIPP reported a failure: no result entries (nothing was saved)"]),
        ({"unexpected": 1}, ['unexpected AddUpdate answer: dict {"unexpected": 1}']),
        ("x" * 200, [f"unexpected AddUpdate answer: str {'x' * 120!r}"]),
    ],
)
def test_add_update_answers(payload: Any, problems: list[str]) -> None:
    assert add_update_problems(payload) == problems


def test_the_widening_message_names_any_or_the_new_ranges() -> None:
    client = summary(item(AppName="RMM"))
    assert widening_message(client, ["203.0.113.0/25"], [ANY]).endswith(
        "after `pulumi up` it also accepts every address (allowedRanges: [Any])"
    )
    assert widening_message(client, ["203.0.113.0/25"], ["203.0.113.0/24", "2001:db8::/48"]).endswith(
        "after `pulumi up` it also accepts 203.0.113.0/24, 2001:db8::/48"
    )


def test_messages_quote_at_most_120_characters_of_what_cipp_answered() -> None:
    with pytest.raises(CippResponseError) as raised:
        parse_list_body("<" * 200)
    assert str(raised.value) == f"List did not return JSON: {'<' * 120!r}"
    [problem] = add_update_problems({"x": "y" * 200})
    assert problem == f"unexpected AddUpdate answer: dict {json.dumps({'x': 'y' * 200})[:120]}"
