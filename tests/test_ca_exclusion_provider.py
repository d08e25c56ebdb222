"""The Part D provider's methods, called directly, against the Graph emulator over real HTTPS."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from cipp_hardening.exclusion import ENUMERATED_TENANTS, msp_is_excluded
from dynamic_providers.ca_exclusion import CaExclusionProvider, ExclusionError
from emulators.graph import GraphEmulator
from tests.part_d import MSP, ClientTenantSetup, client_tenant_setup, outs_of, policy

OTHER = "00000000-0000-0000-0000-0000000e0001"
SA = "00000000-0000-0000-0000-00000000d001"


@pytest.fixture
def setup(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> ClientTenantSetup:
    return client_tenant_setup(graph_emulator, monkeypatch)


def patches(setup: ClientTenantSetup) -> list[Any]:
    return [r.body for r in setup.emulator.requests(method="PATCH", tenant=setup.tenant)]


def users_of(setup: ClientTenantSetup, policy_id: str) -> Any:
    return setup.emulator.get_policy(setup.tenant, policy_id)["conditions"]["users"]


def test_create_patches_only_the_exclusion_and_confirms_it(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    before = setup.emulator.get_policy(setup.tenant, pid)
    setup.emulator.clear_log()

    result = CaExclusionProvider().create(setup.props(pid))

    assert result.id == pid
    assert outs_of(result)["status"] == "excluded"
    assert [(r.method, r.status) for r in setup.emulator.requests(path_contains="/v1.0/", tenant=setup.tenant)] == [
        ("GET", 200),
        ("PATCH", 204),
        ("GET", 200),  # the write confirmed (docs/part-d.md)
    ]
    [body] = patches(setup)
    assert list(body) == ["conditions"]
    assert list(body["conditions"]) == ["users"]
    assert list(body["conditions"]["users"]) == ["excludeGuestsOrExternalUsers"], "only the key we change"
    after = setup.emulator.get_policy(setup.tenant, pid)
    assert after["conditions"]["users"]["excludeGuestsOrExternalUsers"]["externalTenants"] == {
        "@odata.type": ENUMERATED_TENANTS,
        "membershipKind": "enumerated",
        "members": [MSP],
    }
    # Nothing else changed.
    for part in (after, before):
        part["conditions"]["users"].pop("excludeGuestsOrExternalUsers")
        part.pop("modifiedDateTime")
    assert after == before


def graph_calls(setup: ClientTenantSetup) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in setup.emulator.requests(path_contains="/v1.0/", tenant=setup.tenant)]


def test_the_listing_verdict_spares_every_request_where_it_shows_nothing_to_write(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    setup.emulator.clear_log()
    provider = CaExclusionProvider()
    covered = outs_of(provider.create(setup.props(pid, listed={"status": "covered", "detail": ""})))
    conflict = outs_of(provider.create(setup.props(pid, listed={"status": "conflict", "detail": "would widen"})))
    assert (covered["status"], conflict["status"], conflict["detail"]) == (
        "already-excluded",
        "conflict",
        "would widen",
    )
    assert graph_calls(setup) == [], "covered and conflict cost no request"

    written = outs_of(provider.create(setup.props(pid, listed={"status": "write", "detail": ""})))
    assert written["status"] == "excluded"
    assert [method for method, _ in graph_calls(setup)] == ["GET", "PATCH", "GET"]


def test_diff_follows_the_listing_without_reading(setup: ClientTenantSetup) -> None:
    provider = CaExclusionProvider()
    olds = {**setup.props("p"), "status": "excluded", "added": {"guestTypes": ["serviceProvider"]}}

    def changes(status: str, recorded: str = "excluded") -> bool | None:
        news = setup.props("p", listed={"status": status, "detail": ""})
        return provider.diff("p", {**olds, "status": recorded}, news).changes

    assert changes("covered") is False, "converged: no update in the preview"
    assert changes("write") is True, "removed in the portal: the listing shows the drift"
    assert changes("conflict", recorded="conflict") is False
    assert changes("covered", recorded="missing") is True, "refresh recorded drift someone has since fixed"
    assert setup.emulator.requests(tenant=setup.tenant) == []


def test_update_from_a_covered_listing_keeps_what_was_added(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    provider = CaExclusionProvider()
    created = outs_of(provider.create(setup.props(pid, listed={"status": "write", "detail": ""})))
    setup.emulator.clear_log()
    news = setup.props(pid, displayName="renamed by the client", listed={"status": "covered", "detail": ""})
    updated = provider.update(pid, created, news).outs
    assert updated is not None
    assert (updated["status"], updated["added"], updated["displayName"]) == (
        "already-excluded",
        created["added"],
        "renamed by the client",
    )
    assert graph_calls(setup) == []


def test_already_excluded_policy_is_not_written(setup: ClientTenantSetup) -> None:
    covered = {"guestOrExternalUserTypes": "serviceProvider", "externalTenants": {"membershipKind": "all"}}
    pid = setup.emulator.put_policy(setup.tenant, policy("covered", excludeGuestsOrExternalUsers=covered))
    setup.emulator.clear_log()
    outs = outs_of(CaExclusionProvider().create(setup.props(pid)))
    assert outs["status"] == "already-excluded"
    assert outs["added"] == {"guestTypes": [], "tenants": [], "excludeUsers": [], "createdObject": False}
    assert patches(setup) == []


def test_conflict_is_reported_and_not_written(setup: ClientTenantSetup) -> None:
    guests = {"guestOrExternalUserTypes": "internalGuest", "externalTenants": {"membershipKind": "all"}}
    pid = setup.emulator.put_policy(setup.tenant, policy("guests", excludeGuestsOrExternalUsers=guests))
    outs = outs_of(CaExclusionProvider().create(setup.props(pid)))
    assert outs["status"] == "conflict"
    assert "service-provider users of every tenant" in outs["detail"]
    assert patches(setup) == []


def test_widen_writes_and_delete_restores(setup: ClientTenantSetup) -> None:
    guests = {
        "guestOrExternalUserTypes": "b2bCollaborationGuest",
        "externalTenants": {"@odata.type": ENUMERATED_TENANTS, "membershipKind": "enumerated", "members": [OTHER]},
    }
    pid = setup.emulator.put_policy(setup.tenant, policy("b2b", excludeGuestsOrExternalUsers=guests))
    original = users_of(setup, pid)
    provider = CaExclusionProvider()
    outs = outs_of(provider.create(setup.props(pid, onConflict="widen")))
    assert outs["status"] == "widened"
    assert msp_is_excluded(users_of(setup, pid), MSP)
    provider.delete(pid, outs)
    assert users_of(setup, pid) == original


def test_direct_mode_excludes_the_service_account(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    outs = outs_of(CaExclusionProvider().create(setup.props(pid, accessMode="direct", serviceAccountUserId=SA)))
    assert outs["added"]["excludeUsers"] == [SA]
    assert SA in users_of(setup, pid)["excludeUsers"]
    assert users_of(setup, pid)["excludeGuestsOrExternalUsers"] is None


def test_delete_removes_exactly_what_was_added(setup: ClientTenantSetup) -> None:
    guests = {
        "guestOrExternalUserTypes": "serviceProvider",
        "externalTenants": {"@odata.type": ENUMERATED_TENANTS, "membershipKind": "enumerated", "members": [OTHER]},
    }
    pid = setup.emulator.put_policy(setup.tenant, policy("partner", excludeGuestsOrExternalUsers=guests))
    original = users_of(setup, pid)
    provider = CaExclusionProvider()
    outs = outs_of(provider.create(setup.props(pid)))
    assert users_of(setup, pid)["excludeGuestsOrExternalUsers"]["externalTenants"]["members"] == [OTHER, MSP]
    provider.delete(pid, outs)
    assert users_of(setup, pid) == original


def test_delete_of_a_vanished_policy_succeeds(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    provider = CaExclusionProvider()
    outs = outs_of(provider.create(setup.props(pid)))
    # The client deletes the policy in the portal.
    token = setup.emulator.access_token(setup.tenant, setup.client_id, setup.secret)
    response = requests.delete(
        f"{setup.emulator.url}/v1.0/identity/conditionalAccess/policies/{pid}",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(setup.emulator.ca_bundle),
        timeout=10,
    )
    assert response.status_code == 204
    provider.delete(pid, outs)  # no exception
    assert outs_of(provider.read(pid, outs)) == {}


def test_read_reports_an_exclusion_removed_in_the_portal(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    provider = CaExclusionProvider()
    outs = outs_of(provider.create(setup.props(pid)))
    assert outs_of(provider.read(pid, outs))["status"] == "excluded"
    edited = setup.emulator.get_policy(setup.tenant, pid)
    edited["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None
    setup.emulator.put_policy(setup.tenant, edited)
    drifted = outs_of(provider.read(pid, outs))
    assert drifted["status"] == "missing"
    assert provider.diff(pid, drifted, setup.props(pid)).changes is True
    assert provider.diff(pid, outs, setup.props(pid)).changes is False


def test_transient_failures_are_retried(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    setup.emulator.inject("PATCH", "/policies/", status=503, times=1)
    setup.emulator.inject("GET", "/policies/", status=429, times=1)
    setup.emulator.inject("GET", "/policies/", drop=True, times=1)
    outs = outs_of(CaExclusionProvider().create(setup.props(pid)))
    assert outs["status"] == "excluded"
    assert len(patches(setup)) == 2


def test_client_errors_are_not_retried_and_name_the_policy(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("Finance MFA"))
    setup.emulator.inject(
        "PATCH", "/policies/", status=400, body={"error": {"code": "BadRequest", "message": "1007: schema"}}, times=None
    )
    with pytest.raises(ExclusionError) as caught:
        CaExclusionProvider().create(setup.props(pid, displayName="Finance MFA"))
    message = str(caught.value)
    assert "'Finance MFA'" in message
    assert pid in message
    assert "HTTP 400 BadRequest: 1007: schema" in message
    assert len(patches(setup)) == 1


def test_no_token_or_secret_in_outputs(setup: ClientTenantSetup) -> None:
    pid = setup.emulator.put_policy(setup.tenant, policy("MFA"))
    outs = outs_of(CaExclusionProvider().create(setup.props(pid)))
    text = json.dumps(outs)
    assert setup.secret not in text
    assert "eyJ" not in text  # no JWT
