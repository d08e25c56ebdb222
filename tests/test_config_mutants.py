"""config's edges the mutation check found untested (docs/mutation.md, docs/configuration.md).

Each test holds a rule a user relies on: what Part A targets, that a value may be given as a name, that a
required account is never left out silently, and that a wrong top-level key is named with a useful hint.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import config_problems, msp_raw, parsed_msp, promotion_record

parsed = parsed_msp
problems = config_problems


@pytest.mark.parametrize(
    ("target", "expected"),
    [("allCloudApps", ("All",)), ("cippApp", ("11111111-2222-3333-4444-555555555555",))],
)
def test_part_a_targets_every_app_or_only_cipps(target: str, expected: tuple[str, ...]) -> None:
    raw = msp_raw()
    raw["technicianAccess"].update(target=target, cippAppId="11111111-2222-3333-4444-555555555555")
    if target == "allCloudApps":
        del raw["technicianAccess"]["cippAppId"]
    assert parsed(raw).technician_access.applications == expected


def test_a_group_may_be_given_by_its_display_name() -> None:
    raw = msp_raw()
    raw["technicianAccess"]["includeGroupIds"] = ["CIPP Technicians"]
    config = parsed(raw)
    assert config.technician_access.include_group_ids == ("CIPP Technicians",)
    assert [(name.kind, name.name) for name in config.names] == [("group", "CIPP Technicians")]


def test_the_service_account_is_required() -> None:
    raw = msp_raw()
    del raw["serviceAccount"]["userId"]
    assert any("serviceAccount.userId" in problem and "is required" in problem for problem in problems(raw))


def test_an_unknown_key_with_no_close_name_gets_no_hint() -> None:
    raw = msp_raw()
    raw["zzzzqqqq"] = 1
    [problem] = problems(raw)
    assert "zzzzqqqq" in problem
    assert "did you mean" not in problem


def test_a_key_of_client_stacks_is_named_as_such_without_a_guess() -> None:
    raw = msp_raw()
    raw["clientTenant"] = {}
    [problem] = problems(raw)
    assert "a key of client stacks, not of msp stacks" in problem
    assert "did you mean" not in problem


# -- technicianAccess.promotedAfter: the record `make promote` writes (docs/commands.md) -------------------
def promoted(**record: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.1")
    ours = {"policyId": "11111111-2222-3333-4444-555555555555", "acceptedUsers": ["tech@msp.example"]}
    raw["technicianAccess"]["promotedAfter"] = promotion_record(**(ours | record))
    return raw


def test_a_clean_record_with_no_affected_sign_in_needs_no_acceptance() -> None:
    assert parsed(promoted()).technician_access.promoted_after is not None


def test_an_accepted_record_with_affected_sign_ins_is_taken() -> None:
    assert parsed(promoted(wouldBlock=2, breakGlass=1, accepted=True)).technician_access.promoted_after is not None


def test_every_affected_sign_in_counts_towards_the_acceptance() -> None:
    [problem] = problems(promoted(wouldBlock=1, breakGlass=2, serviceAccount=4))
    assert "promotedAfter.accepted" in problem
    assert "7 affected sign-in(s) out of 10" in problem


def test_a_window_that_ends_when_it_starts_is_refused() -> None:
    window = {"from": "2026-05-15T00:00:00Z", "to": "2026-05-15T00:00:00Z"}
    [problem] = problems(promoted(window=window))
    assert "promotedAfter.window" in problem
    assert "from must be before to" in problem


@pytest.mark.parametrize("count", [-1, True, "3"])
def test_a_count_must_be_zero_or_more(count: Any) -> None:
    assert any("promotedAfter.breakGlass" in problem for problem in problems(promoted(breakGlass=count)))


def test_accepted_users_must_all_be_names() -> None:
    [problem] = problems(promoted(acceptedUsers=["tech@msp.example", 3]))
    assert "promotedAfter.acceptedUsers" in problem
