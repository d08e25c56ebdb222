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
from cipp_hardening.directory_facts import CANNOT_TELL, DirectoryReport, read_directory
from tests.helpers import SERVICE_ACCOUNT, TECH_GROUP, msp_raw

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


def msp_config() -> MspStack:
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    return config


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
    return read_directory(directory, config or msp_config(), FakeGraphError, **options)


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
