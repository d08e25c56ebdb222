"""Who the scenario matrix signs in as a technician (docs/scenario-matrix.md): never the service account or a
break-glass account, whatever sample of technician group members the directory view holds."""

from __future__ import annotations

from cipp_hardening.directory_facts import DirectoryView, Membership, Technician
from cipp_hardening.scenarios import derive_scenarios
from tests.helpers import SERVICE_ACCOUNT, TECH_GROUP, msp_raw, parsed_msp

BREAK_GLASS_1 = "00000000-0000-0000-0000-00000000c001"
TECHNICIAN = "00000000-0000-0000-0000-00000000e001"


def technician(user_id: str, label: str) -> Technician:
    return Technician(user_id, label, Membership(frozenset({TECH_GROUP})))


def technician_users(directory: DirectoryView | None) -> list[str]:
    """The users of the rows that expect a technician to be held by Part A."""
    return [
        s.sign_in.user_id for s in derive_scenarios(parsed_msp(msp_raw()), directory) if s.name.startswith("technician")
    ]


def test_the_service_account_and_break_glass_in_the_sample_are_not_signed_in_as_technicians() -> None:
    view = DirectoryView(
        technicians=(
            technician(SERVICE_ACCOUNT.upper(), "cipp-service@msp.example"),
            technician(BREAK_GLASS_1, "breakglass1@msp.example"),
            technician(TECHNICIAN, "tech@msp.example"),
        )
    )
    users = technician_users(view)
    assert users, "the technician rows are there"
    assert {u.lower() for u in users} == {TECHNICIAN}


def test_a_sample_of_only_excluded_accounts_falls_back_to_the_synthetic_technician() -> None:
    view = DirectoryView(technicians=(technician(SERVICE_ACCOUNT, "cipp-service@msp.example"),))
    assert technician_users(view) == technician_users(None)
    assert SERVICE_ACCOUNT not in technician_users(None)


def test_real_technicians_replace_the_synthetic_one() -> None:
    second = "00000000-0000-0000-0000-00000000e002"
    view = DirectoryView(technicians=(technician(TECHNICIAN, "a@msp.example"), technician(second, "b@msp.example")))
    users = technician_users(view)
    assert set(users) == {TECHNICIAN, second}
    assert not set(users) & set(technician_users(None))
