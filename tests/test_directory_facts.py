"""directory_facts read straight: what a 404, a 403 and a missing `accountEnabled` become, and who is sampled.

The Graph side is a small in-memory reader with the two GETs the module uses. The shapes follow Graph v1.0
(docs/assurance.md "What verify reads"): a 404 `Request_ResourceNotFound` for an object that does not exist,
a 403 `Authorization_RequestDenied` when the identity lacks the permission (the object may well exist), and
only the `$select`ed properties in a user's answer, so a property Graph leaves out is absent, not false.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cipp_hardening.config import ClientStack, MspStack, parse_stack_config
from cipp_hardening.directory_facts import CANNOT_TELL, DirectoryReport, Membership, membership_of, read_directory
from tests.helpers import SERVICE_ACCOUNT, TECH_GROUP, msp_raw, parsed_msp

BREAK_GLASS_1 = "00000000-0000-0000-0000-00000000c001"
BREAK_GLASS_2 = "00000000-0000-0000-0000-00000000c002"
TECHNICIANS = [f"00000000-0000-0000-0000-00000000e{n:03d}" for n in range(1, 8)]
CLIENT_TENANT = "00000000-0000-0000-0000-0000000c0001"
CLIENT_ACCOUNT = "00000000-0000-0000-0000-0000000c0d01"


class FakeGraphError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"HTTP {status} {code}")
        self.status, self.code = status, code


NOT_FOUND = FakeGraphError(404, "Request_ResourceNotFound")
REFUSED = FakeGraphError(403, "Authorization_RequestDenied")


def user(user_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.user",
        "id": user_id,
        "userPrincipalName": f"{user_id[-4:]}@msp.example",
        "accountEnabled": True,
        "onPremisesSyncEnabled": None,
        **fields,
    }


class Directory:
    """users/{id}, groups/{id}, groups/{id}/members, users/{id}/transitiveMemberOf and the methods, as dicts."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any] | Exception] = {}
        self.members: dict[str, list[dict[str, Any]]] = {}
        self.member_of: dict[str, list[dict[str, Any]]] = {}
        for user_id in (BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT, CLIENT_ACCOUNT, *TECHNICIANS):
            self.objects[f"users/{user_id}"] = user(user_id)
        self.objects[f"groups/{TECH_GROUP}"] = {"id": TECH_GROUP, "displayName": "Techs", "isAssignableToRole": True}
        self.members[TECH_GROUP] = [user(t) for t in TECHNICIANS]

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        if path.endswith("/members"):
            group = path.split("/")[1]
            return {"value": self.members.get(group, [])[: int((params or {}).get("$top", "100"))]}
        found = self.objects.get(path, NOT_FOUND)
        if isinstance(found, Exception):
            raise found
        return copy.deepcopy(found)

    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        if path.endswith("/authentication/methods"):
            return [{"@odata.type": "#microsoft.graph.fido2AuthenticationMethod"}]
        return self.member_of.get(path.split("/")[1], [])


def client_config(account: str | None = CLIENT_ACCOUNT) -> ClientStack:
    tenant: dict[str, Any] = {
        "tenantId": CLIENT_TENANT,
        "mspTenantId": "00000000-0000-0000-0000-00000000a001",
        "accessMode": "direct",
        "onConflict": "report",
    }
    if account:
        tenant["serviceAccountUserId"] = account
    config = parse_stack_config({"mode": "client", "clientTenant": tenant})
    assert isinstance(config, ClientStack)
    return config


def read(directory: Directory, config: MspStack | ClientStack | None = None, **options: Any) -> DirectoryReport:
    return read_directory(directory, config or parsed_msp(msp_raw()), FakeGraphError, **options)


def messages(report: DirectoryReport, severity: str) -> list[str]:
    return [f.message for f in report.findings if f.severity == severity]


def test_a_whole_directory_gives_no_finding() -> None:
    report = read(Directory())
    assert report.findings == ()
    assert report.unknowns == ()


def test_a_404_is_does_not_exist_and_fails_naming_the_key() -> None:
    directory = Directory()
    directory.objects[f"users/{BREAK_GLASS_1}"] = NOT_FOUND
    report = read(directory)
    assert messages(report, "fail") == [
        f"break-glass account {BREAK_GLASS_1} (technicianAccess.breakGlassUserIds) does not exist in the directory"
    ]
    assert report.unknowns == ()


@pytest.mark.parametrize(
    ("path", "subject", "permission"),
    [
        (f"users/{BREAK_GLASS_1}", BREAK_GLASS_1, "User.Read.All"),
        (f"users/{SERVICE_ACCOUNT}", SERVICE_ACCOUNT, "User.Read.All"),
        (f"groups/{TECH_GROUP}", TECH_GROUP, "GroupMember.Read.All"),
    ],
)
def test_a_403_is_cannot_tell_naming_the_permission_never_does_not_exist(
    path: str, subject: str, permission: str
) -> None:
    directory = Directory()
    directory.objects[path] = REFUSED
    report = read(directory)
    assert report.failures == (), "a refused read says nothing about whether the object exists"
    [unknown] = report.unknowns
    assert unknown.subject == subject
    assert unknown.severity == CANNOT_TELL
    assert "cannot tell whether" in unknown.message
    assert "does not exist" not in unknown.message
    assert permission in unknown.message
    assert "HTTP 403" in unknown.message


def test_other_errors_propagate() -> None:
    directory = Directory()
    directory.objects[f"users/{BREAK_GLASS_1}"] = FakeGraphError(500, "InternalServerError")
    with pytest.raises(FakeGraphError):
        read(directory)


def test_a_404_with_another_code_is_not_taken_for_a_missing_object() -> None:
    directory = Directory()
    directory.objects[f"users/{BREAK_GLASS_1}"] = FakeGraphError(404, "UnknownError")
    with pytest.raises(FakeGraphError):
        read(directory)


def test_a_disabled_account_fails_saying_disabled() -> None:
    directory = Directory()
    directory.objects[f"users/{SERVICE_ACCOUNT}"] = user(SERVICE_ACCOUNT, accountEnabled=False)
    report = read(directory)
    [failure] = report.failures
    assert failure.subject == SERVICE_ACCOUNT
    assert "is disabled (accountEnabled false)" in failure.message
    assert report.unknowns == ()


@pytest.mark.parametrize("account", [BREAK_GLASS_2, SERVICE_ACCOUNT])
def test_a_missing_account_enabled_is_cannot_tell_not_enabled_and_not_disabled(account: str) -> None:
    directory = Directory()
    without = user(account)
    del without["accountEnabled"]
    directory.objects[f"users/{account}"] = without
    report = read(directory)
    assert report.failures == ()
    [unknown] = report.unknowns
    assert unknown.subject == account
    assert "disabled" not in unknown.message
    assert "no accountEnabled" in unknown.message
    assert "User.Read.All" in unknown.message


def test_a_null_account_enabled_is_cannot_tell_as_well() -> None:
    directory = Directory()
    directory.objects[f"users/{BREAK_GLASS_1}"] = user(BREAK_GLASS_1, accountEnabled=None)
    assert [f.subject for f in read(directory).unknowns] == [BREAK_GLASS_1]


def test_the_service_account_and_break_glass_are_never_sampled_as_technicians() -> None:
    directory = Directory()
    # Both in the technician group, listed first, in upper case as Graph may echo them.
    directory.members[TECH_GROUP] = [user(SERVICE_ACCOUNT.upper()), user(BREAK_GLASS_1.upper())] + [
        user(t) for t in TECHNICIANS
    ]
    report = read(directory, sample=3)
    sampled = [t.user_id for t in report.view.technicians]
    assert sampled == TECHNICIANS[:3]


def test_the_sample_takes_at_most_sample_technicians_per_group() -> None:
    report = read(Directory(), sample=2)
    assert [t.user_id for t in report.view.technicians] == TECHNICIANS[:2]


def test_a_direct_mode_client_account_is_checked_and_its_memberships_read() -> None:
    directory = Directory()
    group = "00000000-0000-0000-0000-0000000c0b01"
    directory.member_of[CLIENT_ACCOUNT] = [{"@odata.type": "#microsoft.graph.group", "id": group}]
    report = read(directory, client_config())
    assert report.findings == ()
    membership = report.view.membership(CLIENT_ACCOUNT)
    assert membership is not None
    assert membership.group_ids == frozenset({group})


def test_a_direct_mode_client_account_refused_is_cannot_tell() -> None:
    directory = Directory()
    directory.objects[f"users/{CLIENT_ACCOUNT}"] = REFUSED
    report = read(directory, client_config())
    assert [f.subject for f in report.unknowns] == [CLIENT_ACCOUNT]
    assert report.view.membership(CLIENT_ACCOUNT) is None


def test_memberships_are_groups_and_roles_by_template_id() -> None:
    role = "62e90394-69f5-4237-9190-012177145e10"
    group = "00000000-0000-0000-0000-0000000f0b01"
    membership = membership_of(
        [
            {"@odata.type": "#microsoft.graph.group", "id": group.upper()},
            {"@odata.type": "#microsoft.graph.group"},  # no id: nothing to match
            {"@odata.type": "#microsoft.graph.directoryRole", "id": "x", "roleTemplateId": role},
            {"@odata.type": "#microsoft.graph.administrativeUnit", "id": "y", "roleTemplateId": "z"},
        ]
    )
    assert membership == Membership(frozenset({group}), frozenset({role}), roles_read=True)
    unread = membership_of([{"@odata.type": "#microsoft.graph.directoryRole", "id": "x"}])
    assert unread == Membership(frozenset(), frozenset(), roles_read=False)


def test_the_memberships_read_are_those_of_break_glass_service_account_and_technicians() -> None:
    directory = Directory()
    directory.member_of[SERVICE_ACCOUNT] = [{"@odata.type": "#microsoft.graph.group", "id": TECH_GROUP}]
    report = read(directory, sample=1)
    assert set(report.view.memberships) == {BREAK_GLASS_1, BREAK_GLASS_2, SERVICE_ACCOUNT, TECHNICIANS[0]}
    assert report.warnings[0].message == (
        f"the CIPP service account is a member of technician group {TECH_GROUP}: only Part A's exclusion keeps it "
        "out of the IP restriction; take it out of the group"
    )


def test_a_refused_service_account_or_technician_reads_no_membership() -> None:
    directory = Directory()
    directory.objects[f"users/{SERVICE_ACCOUNT}"] = REFUSED
    assert SERVICE_ACCOUNT not in read(directory).view.memberships


def test_break_glass_warnings_name_the_account_by_its_principal_name() -> None:
    directory = Directory()
    directory.objects[f"users/{BREAK_GLASS_1}"] = user(BREAK_GLASS_1, onPremisesSyncEnabled=True)
    directory.objects[f"users/{BREAK_GLASS_2}"] = user(BREAK_GLASS_2, userPrincipalName=None, displayName="BG two")
    directory.list_all = lambda path, params=None: []  # type: ignore[method-assign]
    warnings = messages(read(directory), "warn")
    assert warnings[0].startswith(f"break-glass account {BREAK_GLASS_1} (c001@msp.example) is synced from on-prem")
    assert f"break-glass account {BREAK_GLASS_2} (BG two) has no phishing-resistant method registered" in warnings[-1]
    assert len(warnings) == 3


def test_a_phishing_resistant_method_among_others_is_enough() -> None:
    directory = Directory()
    methods = [
        {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod"},
        {"@odata.type": "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod"},
    ]
    directory.list_all = lambda path, params=None: methods  # type: ignore[method-assign]
    assert read(directory).findings == ()


def test_fewer_than_two_break_glass_accounts_are_warned_counting_group_members() -> None:
    raw = msp_raw()
    group = "00000000-0000-0000-0000-0000000f0b02"
    raw["technicianAccess"] = {
        **raw["technicianAccess"],
        "breakGlassUserIds": [BREAK_GLASS_1],
        "breakGlassGroupIds": [group],
    }
    config = parsed_msp(raw)
    directory = Directory()
    directory.objects[f"groups/{group}"] = {"id": group, "displayName": "BG", "isAssignableToRole": True}
    directory.members[group] = [user(BREAK_GLASS_2)]
    assert read(directory, config).warnings == ()
    directory.members[group] = [user(BREAK_GLASS_1)]
    [warning] = read(directory, config).warnings
    assert warning.subject == BREAK_GLASS_1
    assert warning.message.startswith("1 break-glass account(s): Microsoft recommends at least two")


def test_the_break_glass_group_sample_reads_at_least_two_members() -> None:
    raw = msp_raw()
    group = "00000000-0000-0000-0000-0000000f0b02"
    raw["technicianAccess"] = {**raw["technicianAccess"], "breakGlassUserIds": [], "breakGlassGroupIds": [group]}
    config = parsed_msp(raw)
    directory = Directory()
    directory.objects[f"groups/{group}"] = {"id": group, "isAssignableToRole": False}
    directory.members[group] = [user(BREAK_GLASS_1), user(BREAK_GLASS_2)]
    report = read(directory, config, sample=1)
    assert not any("break-glass account(s)" in w.message for w in report.warnings)
    assert any(
        w.message.startswith(f"break-glass group {group} (no name) is not role-assignable") for w in report.warnings
    )


def test_five_technicians_per_group_by_default() -> None:
    """docs/assurance.md: up to 5 users per technician group."""
    assert [t.user_id for t in read(Directory()).view.technicians] == TECHNICIANS[:5]


def test_an_include_user_is_checked_and_its_memberships_read() -> None:
    raw = msp_raw()
    raw["technicianAccess"] = {**raw["technicianAccess"], "includeUserIds": [TECHNICIANS[6]]}
    config = parsed_msp(raw)
    directory = Directory()
    assert TECHNICIANS[6] in read(directory, config, sample=1).view.memberships
    directory.objects[f"users/{TECHNICIANS[6]}"] = NOT_FOUND
    report = read(directory, config, sample=1)
    assert TECHNICIANS[6] not in report.view.memberships
    assert [f.subject for f in report.failures] == [TECHNICIANS[6]]


def failing_methods(error: FakeGraphError) -> Any:
    """A list_all whose authentication-methods read fails with `error`; memberships read as empty."""

    def list_all(path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        if path.endswith("/authentication/methods"):
            raise error
        return []

    return list_all


def test_the_methods_read_refused_is_cannot_tell_and_other_errors_propagate() -> None:
    directory = Directory()
    directory.list_all = failing_methods(FakeGraphError(500, "InternalServerError"))  # type: ignore[method-assign]
    with pytest.raises(FakeGraphError, match="500"):
        read(directory)
    directory.list_all = failing_methods(REFUSED)  # type: ignore[method-assign]
    warnings = messages(read(directory), "warn")
    assert len(warnings) == 2
    assert all(w.startswith("cannot tell whether break-glass account") for w in warnings)
