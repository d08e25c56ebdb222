"""custom_roles' edges the mutation check found untested (docs/mutation.md, docs/custom-roles.md).

Each test holds a rule a user relies on: an AddUpdate body is refused rather than guessed ("What a write
sends back"), a refusal names what it refuses in a message of bounded size, a delete never opens a role by
omission ("Destroy"), and superadmin's holders are reported as held by Part A alone ("superadmin").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cipp_hardening.custom_roles import (
    UnknownRoleShape,
    add_update_body,
    canonical,
    part_a_only,
    part_a_only_message,
    predicted_delete_refusal,
    unconfirmed_fields,
)

GROUP = {"label": "CIPP technicians", "value": "6f1c3a52-0d2e-4b7a-9c1e-2f5d8a7b4c30"}


def custom_role(**fields: Any) -> dict[str, Any]:
    """A custom role as ExecCustomRole's default action lists it."""
    role: dict[str, Any] = {
        "RowKey": "technicians",
        "Permissions": {"CIPP.Core": "CIPP.Core.ReadWrite"},
        "AllowedTenants": ["AllTenants"],
        "BlockedTenants": [],
        "BlockedEndpoints": [],
        "EntraGroup": dict(GROUP),
        "IPRange": ["203.0.113.0/24"],
    }
    role.update(fields)
    return role


def refusal(role: dict[str, Any], ranges: list[str] | None = None) -> str:
    with pytest.raises(UnknownRoleShape) as error:
        add_update_body(role, ["203.0.113.0/24"] if ranges is None else ranges)
    return str(error.value)


# -- What a write sends back ---------------------------------------------------------------------------
def test_no_ranges_is_refused_unless_the_open_is_stated() -> None:
    """A body without IpRange opens the role: only a stated restore (open_role) may send one."""
    assert "ranges [] would be dropped" in refusal(custom_role(), ranges=[])
    assert "IpRange" not in add_update_body(custom_role(), [], open_role=True)


def test_one_range_cipp_would_drop_refuses_the_write_and_is_named() -> None:
    """One silently dropped entry narrows the list: the write is refused, naming the entry."""
    message = refusal(custom_role(), ranges=["203.0.113.0/24", " 198.51.100.0/24"])
    assert "[' 198.51.100.0/24'] would be dropped" in message


def test_a_custom_role_whose_permissions_show_as_an_empty_object_is_not_written_back() -> None:
    assert "permissions" in refusal(custom_role(Permissions={}))


def test_a_built_in_role_is_written_without_permissions_of_its_own() -> None:
    body = add_update_body(custom_role(RowKey="editor", Permissions=[]), ["203.0.113.0/24"])
    assert body["Permissions"] == []


def test_the_allowed_tenants_must_show_as_a_list() -> None:
    message = refusal(custom_role(AllowedTenants="AllTenants"))
    assert 'CIPP shows AllowedTenants as "AllTenants", not a list' in message


def test_a_role_without_an_entra_group_is_written_without_one() -> None:
    role = custom_role()
    del role["EntraGroup"]
    body = add_update_body(role, ["203.0.113.0/24"])
    assert "EntraGroup" not in body
    assert body["IpRange"] == ["203.0.113.0/24"]


@pytest.mark.parametrize(
    "group",
    [{"label": "CIPP technicians", "value": ""}, {**GROUP, "members": []}],
    ids=["no value", "unknown key"],
)
def test_an_entra_group_not_label_and_value_is_refused(group: dict[str, Any]) -> None:
    assert "Entra group" in refusal(custom_role(EntraGroup=group))


# Refusals quote the value CIPP showed, cut to a bounded prefix so one huge role cannot flood the log.
LONG = {f"CIPP.Permission{index:03}": "ReadWrite" for index in range(40)}


def test_a_refusal_quotes_at_most_80_characters_of_the_permissions() -> None:
    shown = ["x" * 200]
    assert f"as {json.dumps(shown)[:80]}, not as" in refusal(custom_role(Permissions=shown))


def test_a_refusal_quotes_at_most_80_characters_of_a_list() -> None:
    shown = "t" * 200
    assert refusal(custom_role(BlockedTenants=shown)).endswith(f"as {json.dumps(shown)[:80]}, not a list")


def test_a_refusal_quotes_at_most_80_characters_of_the_group() -> None:
    shown = {"label": "g" * 200, "value": ""}
    assert f"as {json.dumps(shown)[:80]}: nothing written" in refusal(custom_role(EntraGroup=shown))


def test_a_field_read_back_differently_is_quoted_to_120_characters() -> None:
    sent = add_update_body(custom_role(Permissions=LONG), ["203.0.113.0/24"])
    stored = custom_role(Permissions={**LONG, "CIPP.Permission000": "Read"})
    assert unconfirmed_fields(sent, stored) == [
        f"Permissions {canonical(stored['Permissions'])[:120]} (sent {canonical(LONG)[:120]})"
    ]


def test_objects_read_back_in_another_key_order_are_confirmed() -> None:
    """The PowerShell worker keeps no key order: the same permissions in another order are no difference."""
    sent = add_update_body(custom_role(Permissions={"a": "Read", "b": "ReadWrite"}), ["203.0.113.0/24"])
    stored = custom_role(Permissions={"b": "ReadWrite", "a": "Read"})
    assert unconfirmed_fields(sent, stored) == []


# -- Destroy ---------------------------------------------------------------------------------------------
def test_the_refusal_predicted_for_delete_is_only_the_refusing_plan() -> None:
    refused = predicted_delete_refusal({"name": "technicians", "adoptedRanges": []})
    assert refused is not None
    assert "allowOpenOnDelete" in refused
    assert predicted_delete_refusal({"name": "technicians", "adoptedRanges": ["203.0.113.0/24"]}) is None
    assert predicted_delete_refusal({"name": "technicians", "restoreOnDelete": False}) is None


# -- superadmin -----------------------------------------------------------------------------------------
def test_only_superadmin_is_held_by_part_a_alone() -> None:
    roles = [custom_role(), custom_role(RowKey="editor"), custom_role(RowKey="SuperAdmin")]
    held = {"role": "superadmin", "entraGroupId": GROUP["value"], "entraGroupName": GROUP["label"]}
    assert part_a_only(roles) == [held]


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"entraGroupName": "CIPP admins", "entraGroupId": None}, "members of Entra group CIPP admins"),
        ({"entraGroupName": None, "entraGroupId": GROUP["value"]}, f"members of Entra group {GROUP['value']}"),
        ({"entraGroupName": None, "entraGroupId": None}, "users given superadmin in CIPP's user management"),
    ],
    ids=["name", "id only", "no group"],
)
def test_the_part_a_warning_names_the_group_by_what_cipp_shows(entry: dict[str, Any], named: str) -> None:
    assert named in part_a_only_message(entry)
