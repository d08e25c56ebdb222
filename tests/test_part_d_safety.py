"""Part D: nothing lost, nothing widened, whatever happens mid-run (docs/part-d.md "Safety").

Each test plays one way a real run goes wrong: the engine killed between a write and its record, a
malformed answer, a portal edit between our read and our write, a lagging replica, and the two update
paths that once lost or widened. The provider runs against the Graph emulator over real HTTPS.
"""

from __future__ import annotations

import copy
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cipp_hardening.exclusion import (
    ENUMERATED_TENANTS,
    Addition,
    as_graph_returns,
    changed_parts,
    exclude_msp,
    full_users,
    listing_verdict,
    remove_addition,
)
from components.client_exclusions import PolicyNotUnderstood, check_understood
from dynamic_providers.ca_exclusion import CaExclusionProvider, ExclusionError, ExclusionJournalProvider
from emulators.graph import GraphEmulator
from service_clients.graph_client import GraphClient, GraphError, TenantPacer
from tests.part_d import MSP, ClientTenantSetup, client_tenant_setup, policy
from tests.part_d import outs_of as outs

SA = "00000000-0000-0000-0000-00000000d001"
SA2 = "00000000-0000-0000-0000-00000000d002"
GROUP = "00000000-0000-0000-0000-0000000f0001"
OTHER = "00000000-0000-0000-0000-0000000e0001"


@pytest.fixture
def setup(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> ClientTenantSetup:
    return client_tenant_setup(graph_emulator, monkeypatch)


def stable(policy_body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in policy_body.items() if k != "modifiedDateTime"}


def patches(setup: ClientTenantSetup) -> list[Any]:
    return [r.body for r in setup.emulator.requests(method="PATCH", tenant=setup.tenant)]


def as_the_program_declares(setup: ClientTenantSetup, pid: str, **overrides: Any) -> dict[str, Any]:
    """The props the component gives a CaExclusion: the listing's verdict and the journal's entry."""
    props = setup.props(pid, **overrides)
    listed = setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]
    from dynamic_providers.ca_exclusion import _merge

    merge = _merge(listed, props)
    intents = {pid: merge.addition.to_json()} if merge.write else {}
    return {**props, "listed": listing_verdict(merge), "intended": (intents.get(pid) or Addition().to_json())}


# -- 1. a run killed between the PATCH and the engine's record ------------------------------------------------


def test_a_write_whose_record_was_lost_is_recognised_as_ours_and_destroy_removes_it(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    original = setup.emulator.get_policy(setup.tenant, pid)
    provider = CaExclusionProvider()
    first = as_the_program_declares(setup, pid)
    provider.create(first)  # the CLI is killed now: the engine never records these outputs

    # The next run: the listing shows the exclusion, the journal still holds the killed run's intent.
    second = as_the_program_declares(setup, pid)
    assert second["listed"]["status"] == "covered"
    second["intended"] = first["intended"]
    recovered = outs(provider.create(second))
    assert Addition.from_json(recovered["added"]) == Addition.from_json(first["intended"])
    assert patches(setup) == [patches(setup)[0]], "recognised, not written again"

    provider.delete(pid, recovered)
    assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original)


def test_a_killed_update_shows_in_the_next_diff_and_the_update_takes_it_over(setup: ClientTenantSetup) -> None:
    covered = {"guestOrExternalUserTypes": "serviceProvider", "externalTenants": {"membershipKind": "all"}}
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA", excludeGuestsOrExternalUsers=covered))
    original = setup.emulator.get_policy(setup.tenant, pid)
    provider = CaExclusionProvider()
    recorded = outs(provider.create(as_the_program_declares(setup, pid)))  # the client's own exclusion
    assert recorded["status"] == "already-excluded"

    removed = copy.deepcopy(original)
    removed["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None  # removed in the portal
    setup.emulator.put_policy(setup.tenant, removed)
    repair = as_the_program_declares(setup, pid)
    provider.update(pid, recorded, repair)  # killed: the engine keeps `recorded`

    after_kill = as_the_program_declares(setup, pid)
    after_kill["intended"] = repair["intended"]  # the journal recorded it before the write
    assert after_kill["listed"]["status"] == "covered"
    assert provider.diff(pid, recorded, after_kill).changes is True
    taken = outs(provider.update(pid, recorded, after_kill))
    assert Addition.from_json(taken["added"]) == Addition.from_json(repair["intended"])
    assert provider.diff(pid, taken, after_kill).changes is False, "settled: converged from now on"

    provider.delete(pid, taken)
    assert setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]["excludeGuestsOrExternalUsers"] is None


def test_the_journal_keeps_every_intent_while_the_policy_is_in_scope() -> None:
    journal = ExclusionJournalProvider()
    intent = Addition(exclude_users=(SA,)).to_json()
    nothing = Addition().to_json()
    first = outs(journal.create({"tenantId": "t", "intents": {"p": intent, "q": nothing}}))
    later = {"tenantId": "t", "intents": {"p": nothing, "q": nothing}}  # the write landed: nothing to write now
    assert journal.diff("t", first, later).changes is False
    assert outs(journal.update("t", first, later))["entries"] == {"p": intent}
    gone = {"tenantId": "t", "intents": {"q": nothing}}  # the policy left the scope
    assert journal.diff("t", first, gone).changes is True
    assert outs(journal.update("t", first, gone))["entries"] == {}


def test_a_write_the_journal_did_not_record_is_refused(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    props = {**as_the_program_declares(setup, pid), "intended": Addition().to_json()}
    with pytest.raises(ExclusionError, match="changed between this run's listing and its write"):
        CaExclusionProvider().create(props)
    assert patches(setup) == []


# -- 2. never write from a read we do not understand --------------------------------------------------------


MALFORMED: dict[str, Any] = {
    "users null": lambda p: p["conditions"].update(users=None),
    "no users": lambda p: p["conditions"].pop("users"),
    "no conditions": lambda p: p.pop("conditions"),
    "users {}": lambda p: p["conditions"].update(users={}),
    "excludeUsers a string": lambda p: p["conditions"]["users"].update(excludeUsers=SA),
    "guest object a list": lambda p: p["conditions"]["users"].update(excludeGuestsOrExternalUsers=["x"]),
}


@pytest.mark.parametrize("damage", sorted(MALFORMED))
@pytest.mark.parametrize("mode", ["gdap", "direct"])
def test_a_malformed_answer_is_an_error_naming_the_policy_and_nothing_is_written(
    setup: ClientTenantSetup, damage: str, mode: str
) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("Finance MFA", includeGroups=[GROUP]))
    before = setup.emulator.get_policy(setup.tenant, pid)
    answer = copy.deepcopy(before)
    MALFORMED[damage](answer)
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=answer, times=None)
    props = {**setup.props(pid, displayName="Finance MFA"), "accessMode": mode, "serviceAccountUserId": SA}
    with pytest.raises(ExclusionError) as caught:
        CaExclusionProvider().create(props)
    assert "'Finance MFA'" in str(caught.value)
    assert pid in str(caught.value)
    assert "nothing was written" in str(caught.value)
    assert patches(setup) == []
    assert setup.emulator.get_policy(setup.tenant, pid) == before


def test_a_malformed_answer_on_destroy_removes_nothing(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA", includeGroups=[GROUP]))
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    answer = setup.emulator.get_policy(setup.tenant, pid)
    answer["conditions"]["users"] = None
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=answer, times=None)
    setup.emulator.clear_log()
    with pytest.raises(ExclusionError):
        provider.delete(pid, created)
    assert patches(setup) == []
    assert setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]["includeGroups"] == [GROUP]


def test_unknown_keys_of_the_users_object_and_of_external_tenants_are_kept() -> None:
    users = full_users(
        {
            "includeUsers": ["All"],
            "excludeGuestsOrExternalUsers": {
                "guestOrExternalUserTypes": "serviceProvider",
                "externalTenants": {
                    "@odata.type": ENUMERATED_TENANTS,
                    "membershipKind": "enumerated",
                    "members": [OTHER],
                    "someFutureSetting": True,
                },
            },
            "aFutureUsersKey": {"kept": 1},
        }
    )
    merge = exclude_msp(users, MSP)
    assert merge.users["aFutureUsersKey"] == {"kept": 1}
    sent = changed_parts(users, merge.users)
    assert list(sent) == ["excludeGuestsOrExternalUsers"]
    assert sent["excludeGuestsOrExternalUsers"]["externalTenants"]["someFutureSetting"] is True
    restored, _ = remove_addition(merge.users, merge.addition)
    assert restored == users


# -- 3. concurrent edits ----------------------------------------------------------------------------------


def test_a_portal_edit_between_our_read_and_our_write_survives_and_is_reported(
    setup: ClientTenantSetup, caplog: pytest.LogCaptureFixture
) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    as_we_read_it = setup.emulator.get_policy(setup.tenant, pid)
    edited = copy.deepcopy(as_we_read_it)
    edited["conditions"]["users"]["includeGroups"] = [GROUP]  # a technician's edit lands after our GET
    setup.emulator.put_policy(setup.tenant, edited)
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=as_we_read_it, times=1)

    with caplog.at_level(logging.WARNING):
        CaExclusionProvider().create(setup.props(pid))

    users = setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]
    assert users["includeGroups"] == [GROUP], "their edit is not overwritten"
    assert users["excludeGuestsOrExternalUsers"]["externalTenants"]["members"] == [MSP]
    assert f"({pid})" in caplog.text
    assert "conditions.users.includeGroups was changed by someone else" in caplog.text


def test_a_portal_edit_during_destroy_survives(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    as_we_read_it = setup.emulator.get_policy(setup.tenant, pid)
    edited = copy.deepcopy(as_we_read_it)
    edited["conditions"]["users"]["excludeRoles"] = ["62e90394-69f5-4237-9190-012177145e10"]
    setup.emulator.put_policy(setup.tenant, edited)
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=as_we_read_it, times=1)
    provider.delete(pid, created)
    users = setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]
    assert users["excludeRoles"] == ["62e90394-69f5-4237-9190-012177145e10"]
    assert users["excludeGuestsOrExternalUsers"] is None


# -- 4. deletes that lag cannot fool ----------------------------------------------------------------------


def test_destroy_right_after_create_under_replication_lag_removes_the_exclusion(
    setup: ClientTenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIPP_HARDENING_GRAPH_INTERVAL", "0.2")  # five reads span at least 0.8 s
    setup.emulator.settings.read_lag_ms = 400
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    original = setup.emulator.get_policy(setup.tenant, pid)
    wait_until_replicated(setup, pid)
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    provider.delete(pid, created)
    assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original)


def wait_until_replicated(setup: ClientTenantSetup, pid: str) -> None:
    """Poll (bounded, generous) until a lagging read finds the new policy, as a client would."""
    graph = GraphClient(setup.emulator.url, setup.tenant, lambda: token_for(setup), pacer=TenantPacer(0.05))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            graph.get(f"identity/conditionalAccess/policies/{pid}")
            return
        except GraphError as error:
            if error.status != 404:
                raise
    raise AssertionError("the policy never replicated")


def token_for(setup: ClientTenantSetup) -> str:
    return setup.emulator.access_token(setup.tenant, setup.client_id, setup.secret)


def test_destroy_reads_again_while_the_replica_predates_our_write(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    original = setup.emulator.get_policy(setup.tenant, pid)
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    assert created["writtenAt"], "the confirming read's modifiedDateTime"
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=original, times=2)  # a stale replica
    provider.delete(pid, created)
    assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original)


def test_destroy_refuses_to_forget_while_every_read_predates_our_write(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    original = setup.emulator.get_policy(setup.tenant, pid)
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=original, times=None)
    with pytest.raises(ExclusionError, match="replication lag"):
        provider.delete(pid, created)


def test_a_write_no_read_confirmed_is_not_taken_for_removed_by_a_destroy_under_the_same_lag(
    setup: ClientTenantSetup,
) -> None:
    """A lag longer than the confirming reads: the write is recorded, but its writtenAt must still mark every
    pre-write read as stale, or destroy takes the lagging replica's answer for a removal and forgets ours."""
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    original = setup.emulator.get_policy(setup.tenant, pid)
    stale = setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=original, times=None)
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    assert created["status"] == "excluded"
    assert patches(setup), "written, though no read showed it"
    with pytest.raises(ExclusionError, match="replication lag"):
        provider.delete(pid, created)  # every read still predates the write: the resource must stay in the state
    stale.times = stale.hits  # the replica catches up; the next destroy removes the exclusion
    provider.delete(pid, created)
    assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original)


def test_a_write_no_read_confirmed_on_a_never_modified_policy_is_not_forgotten_either(
    setup: ClientTenantSetup,
) -> None:
    """Graph returns modifiedDateTime null for a policy never modified since its creation."""
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    original = {**setup.emulator.get_policy(setup.tenant, pid), "modifiedDateTime": None}
    setup.emulator.inject("GET", f"/policies/{pid}", status=200, body=original, times=None)
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid)))
    with pytest.raises(ExclusionError, match="replication lag"):
        provider.delete(pid, created)


def test_destroy_reports_an_exclusion_someone_else_removed(
    setup: ClientTenantSetup, caplog: pytest.LogCaptureFixture
) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    provider = CaExclusionProvider()
    created = outs(provider.create(setup.props(pid, displayName="MFA")))
    edited = setup.emulator.get_policy(setup.tenant, pid)
    edited["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None
    setup.emulator.put_policy(setup.tenant, edited)
    with caplog.at_level(logging.WARNING):
        provider.delete(pid, created)
    assert f"'MFA' ({pid})" in caplog.text
    assert "no longer in the policy" in caplog.text


# -- 7. the two update paths that lost or widened ----------------------------------------------------------


def test_widen_where_the_msp_already_scopes_other_guest_types_round_trips_exactly(setup: ClientTenantSetup) -> None:
    guests = {
        "guestOrExternalUserTypes": "b2bCollaborationGuest",
        "externalTenants": {"@odata.type": ENUMERATED_TENANTS, "membershipKind": "enumerated", "members": [MSP, OTHER]},
    }
    pid = setup.emulator.put_policy(setup.tenant, policy("b2b", excludeGuestsOrExternalUsers=guests))
    original = setup.emulator.get_policy(setup.tenant, pid)
    provider = CaExclusionProvider()
    widened = outs(provider.create(setup.props(pid, onConflict="widen")))
    members = setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]["excludeGuestsOrExternalUsers"]
    assert members["externalTenants"]["members"] == [MSP, OTHER], "the MSP once, as the client had it"
    provider.delete(pid, widened)
    assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original)


def test_a_new_service_account_the_policy_already_excludes_frees_the_old_one(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA", excludeUsers=[SA2]))  # the client's own
    provider = CaExclusionProvider()
    direct = {"accessMode": "direct"}
    first = outs(provider.create(as_the_program_declares(setup, pid, **direct, serviceAccountUserId=SA)))
    assert setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]["excludeUsers"] == [SA2, SA]

    news = as_the_program_declares(setup, pid, **direct, serviceAccountUserId=SA2)
    assert provider.diff(pid, first, news).changes is True
    updated = outs(provider.update(pid, first, news))
    assert setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]["excludeUsers"] == [SA2]
    assert updated["added"]["excludeUsers"] == [], "the client's account stays theirs"
    assert (
        provider.diff(pid, updated, as_the_program_declares(setup, pid, **direct, serviceAccountUserId=SA2)).changes
        is False
    )
    provider.delete(pid, updated)
    assert setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"]["excludeUsers"] == [SA2]


def test_a_malformed_listing_stops_the_program_naming_the_policy() -> None:
    broken = {**policy("Finance MFA"), "id": "p-1"}
    broken["conditions"]["users"] = None
    fine = as_graph_returns({**policy("MFA"), "id": "p-2"})
    with pytest.raises(PolicyNotUnderstood) as caught:
        check_understood([fine, broken], skip_policy_ids=())
    assert "'Finance MFA' (p-1): conditions.users is missing or null" in str(caught.value)
    assert "clientTenant.skipPolicyIds" in str(caught.value)
    check_understood([fine, broken], skip_policy_ids=("P-1",))  # skipped: the operator's explicit choice


def test_concurrent_writes_to_one_tenant_keep_each_read_and_its_write_in_consecutive_turns(
    setup: ClientTenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine runs several CaExclusion steps at once in one provider host; each policy's GET and PATCH
    still go out back to back, so a portal edit can be lost only within one pacing interval."""
    monkeypatch.setenv("CIPP_HARDENING_GRAPH_INTERVAL", "0.02")
    ids = [setup.emulator.put_policy(setup.tenant, policy(f"MFA {i}")) for i in range(6)]
    setup.emulator.clear_log()
    provider = CaExclusionProvider()
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda pid: provider.create(setup.props(pid)), ids))
    order = [(r.method, r.path.rsplit("/", 1)[-1]) for r in setup.emulator.requests(tenant=setup.tenant)]
    for pid in ids:
        get = order.index(("GET", pid))
        assert order[get + 1] == ("PATCH", pid), order
