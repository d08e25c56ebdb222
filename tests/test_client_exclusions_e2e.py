"""Part D end to end, the way the engine drives it: the client program under mocks declares the
resources, the real dynamic-provider host (`python -m pulumi.dynamic`) applies them over gRPC, and
the Graph emulator plays the client tenant."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from cipp_hardening.exclusion import exclude_msp, msp_is_excluded, select_policies
from emulators.graph import GraphEmulator
from emulators.provider_host import DeclaredResources, MiniEngine, ProviderHost, collect_dynamic_resources
from tests.conftest import CORPUS, require_corpus
from tests.helpers import ROOT
from tests.part_d import MSP, ClientTenantSetup, client_tenant_setup, policy

pytestmark = pytest.mark.e2e

IN_SCOPE = ("enabled", "enabledForReportingButNotEnforced")
VOLATILE = ("modifiedDateTime",)


@pytest.fixture
def setup(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> ClientTenantSetup:
    return client_tenant_setup(graph_emulator, monkeypatch)


@pytest.fixture
def engine(setup: ClientTenantSetup) -> Iterator[MiniEngine]:
    with ProviderHost(ROOT, env=setup.env) as host:
        host.configure(setup.stack_config())
        yield MiniEngine(host)


def declare(setup: ClientTenantSetup, **client_tenant: Any) -> DeclaredResources:
    return collect_dynamic_resources(
        ROOT / "__main__.py", config=setup.stack_config(**client_tenant), stack="client-e2e"
    )


def stable(p: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k not in VOLATILE}


def graph_writes(setup: ClientTenantSetup) -> list[Any]:
    return [r for r in setup.emulator.requests(path_contains="/v1.0/", tenant=setup.tenant) if r.method != "GET"]


def load_sample_tenant(setup: ClientTenantSetup) -> dict[str, str]:
    partner = {
        "guestOrExternalUserTypes": "serviceProvider",
        "externalTenants": {
            "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
            "membershipKind": "enumerated",
            "members": ["00000000-0000-0000-0000-0000000e0001"],
        },
    }
    guests = {"guestOrExternalUserTypes": "internalGuest", "externalTenants": {"membershipKind": "all"}}
    disabled = {**policy("disabled pilot"), "state": "disabled"}
    workload = policy("workload identities")
    workload["conditions"]["users"] = {"includeUsers": ["None"]}
    workload["conditions"]["clientApplications"] = {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]}
    put = setup.emulator.put_policy
    return {
        "plain": put(setup.tenant, policy("MFA for everyone")),
        "partner": put(setup.tenant, policy("block outside office", excludeGuestsOrExternalUsers=partner)),
        "conflict": put(setup.tenant, policy("guests MFA", excludeGuestsOrExternalUsers=guests)),
        "disabled": put(setup.tenant, disabled),
        "workload": put(setup.tenant, workload),
    }


def test_create_then_no_op_then_drift_repaired_then_destroy_restores(
    setup: ClientTenantSetup, engine: MiniEngine
) -> None:
    ids = load_sample_tenant(setup)
    originals = setup.snapshot()

    first = engine.up(declare(setup))
    assert first.counts == {"create": 3 + 1}  # and the journal
    users = {name: setup.emulator.get_policy(setup.tenant, pid)["conditions"]["users"] for name, pid in ids.items()}
    assert msp_is_excluded(users["plain"], MSP)
    assert msp_is_excluded(users["partner"], MSP)
    assert not msp_is_excluded(users["conflict"], MSP), "a conflict is reported, never written"
    assert stable(setup.emulator.get_policy(setup.tenant, ids["conflict"])) == stable(originals[ids["conflict"]])
    for untouched in ("disabled", "workload"):
        assert setup.emulator.get_policy(setup.tenant, ids[untouched]) == originals[ids[untouched]]

    setup.emulator.clear_log()
    second = engine.up(declare(setup))
    assert second.counts == {}
    assert graph_writes(setup) == [], "a converged tenant costs no writes"
    listing = [r for r in setup.emulator.requests(method="GET", path_contains="/v1.0/", tenant=setup.tenant)]
    assert len(listing) == 1, "…and one paged list"

    edited = setup.emulator.get_policy(setup.tenant, ids["plain"])
    edited["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None  # someone removes it in the portal
    setup.emulator.put_policy(setup.tenant, edited)
    drift = engine.refresh()
    drifted = [op.name for op in drift.operations if op.changed]
    assert drifted == [f"msp-exclusions-{ids['plain']}"]
    setup.emulator.clear_log()
    repair = engine.up(declare(setup))
    assert repair.counts == {"update": 1}
    assert len(graph_writes(setup)) == 1
    assert msp_is_excluded(setup.emulator.get_policy(setup.tenant, ids["plain"])["conditions"]["users"], MSP)

    engine.destroy()
    for pid, original in originals.items():
        assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original), pid


def test_a_policy_created_later_is_picked_up_and_a_deleted_one_forgotten(
    setup: ClientTenantSetup, engine: MiniEngine
) -> None:
    ids = load_sample_tenant(setup)
    engine.up(declare(setup))
    new_id = setup.emulator.put_policy(setup.tenant, policy("new client policy"))
    report = engine.up(declare(setup))
    assert report.counts == {"create": 1, "update": 1}
    assert report.names("create") == [f"msp-exclusions-{new_id}"]
    assert report.names("update") == ["msp-exclusions-journal"], "its intent recorded before the write"
    assert msp_is_excluded(setup.emulator.get_policy(setup.tenant, new_id)["conditions"]["users"], MSP)
    assert ids["plain"] != new_id


def test_direct_mode_end_to_end(setup: ClientTenantSetup, engine: MiniEngine) -> None:
    service_account = "00000000-0000-0000-0000-00000000d001"
    ids = load_sample_tenant(setup)
    originals = setup.snapshot()
    report = engine.up(declare(setup, accessMode="direct", serviceAccountUserId=service_account))
    assert report.counts == {"create": 3 + 1}
    for name in ("plain", "partner", "conflict"):
        assert (
            service_account in setup.emulator.get_policy(setup.tenant, ids[name])["conditions"]["users"]["excludeUsers"]
        )
    engine.destroy()
    for pid, original in originals.items():
        assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original)


@pytest.mark.corpus
def test_real_policies_from_the_corpus(setup: ClientTenantSetup, engine: MiniEngine) -> None:
    require_corpus()
    setup.emulator.load_policies(setup.tenant, CORPUS)
    _derive_a_conflict(setup)
    originals = setup.snapshot()
    selected, _ = select_policies(list(originals.values()), IN_SCOPE, ())
    assert len(selected) > 40

    report = engine.up(declare(setup))
    assert report.counts == {"create": len(selected) + 1}

    conflicts = 0
    for original in selected:
        after = setup.emulator.get_policy(setup.tenant, original["id"])
        merge = exclude_msp(original["conditions"]["users"], MSP, "report")
        expected = copy.deepcopy(original)
        if merge.status == "conflict":
            conflicts += 1
        else:
            expected["conditions"]["users"] = merge.users
            assert msp_is_excluded(after["conditions"]["users"], MSP), original["displayName"]
        # Deep comparison: nothing but the users object's exclusion changed.
        assert stable(after) == stable(expected), original["displayName"]
    assert conflicts == 1, "the derived conflict is reported, not written"
    declared = {r.name for r in report.operations} - {"msp-exclusions-journal"}
    for pid, original in originals.items():
        if all(p["id"] != pid for p in selected):
            assert setup.emulator.get_policy(setup.tenant, pid) == original
            assert f"msp-exclusions-{pid}" not in declared

    engine.destroy()
    for pid, original in originals.items():
        assert stable(setup.emulator.get_policy(setup.tenant, pid)) == stable(original), original["displayName"]


def _derive_a_conflict(setup: ClientTenantSetup) -> None:
    """No corpus policy excludes guest types; reuse a real guest selection without service providers
    (CA401's: every other guest type, all tenants) as another policy's exclusion."""
    policies = setup.emulator.policies(setup.tenant)
    guest_selection = next(
        selection
        for p in policies
        if (selection := p["conditions"]["users"].get("includeGuestsOrExternalUsers"))
        and "serviceProvider" not in selection["guestOrExternalUserTypes"]
    )
    target = next(
        p for p in policies if p["state"] in IN_SCOPE and not p["conditions"]["users"]["excludeGuestsOrExternalUsers"]
    )
    target["conditions"]["users"]["excludeGuestsOrExternalUsers"] = copy.deepcopy(guest_selection)
    setup.emulator.put_policy(setup.tenant, target)


def test_request_counts_on_a_tenant_of_fifteen_policies(setup: ClientTenantSetup, engine: MiniEngine) -> None:
    """Part D's cost is its request count (1 request/s per tenant): the listing, then a fresh GET, a PATCH
    and a confirming GET only for the policies the listing shows without the exclusion. No refresh anywhere."""
    setup.emulator.settings.default_page_size = 3
    covered = {"guestOrExternalUserTypes": "serviceProvider", "externalTenants": {"membershipKind": "all"}}
    guests = {"guestOrExternalUserTypes": "internalGuest", "externalTenants": {"membershipKind": "all"}}
    needing = [setup.emulator.put_policy(setup.tenant, policy(f"needs {i}")) for i in range(8)]
    for i in range(4):
        setup.emulator.put_policy(setup.tenant, policy(f"covered {i}", excludeGuestsOrExternalUsers=covered))
    setup.emulator.put_policy(setup.tenant, policy("conflict", excludeGuestsOrExternalUsers=guests))
    for i in range(2):
        setup.emulator.put_policy(setup.tenant, {**policy(f"disabled {i}"), "state": "disabled"})
    pages = 5  # 15 policies, 3 a page

    def requests_of(run: Any) -> tuple[Any, list[str]]:
        setup.emulator.clear_log()
        report = run()
        return report, [r.method for r in setup.emulator.requests(path_contains="/v1.0/", tenant=setup.tenant)]

    first, sent = requests_of(lambda: engine.up(declare(setup)))
    assert first.counts == {"create": 13 + 1}
    assert len(sent) == pages + 3 * len(needing)
    assert sent.count("PATCH") == len(needing)

    converged, sent = requests_of(lambda: engine.up(declare(setup)))
    assert (converged.counts, sent) == ({}, ["GET"] * pages), "a converged tenant costs the listing alone"

    drifted = setup.emulator.get_policy(setup.tenant, needing[3])
    drifted["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None  # removed in the portal
    setup.emulator.put_policy(setup.tenant, drifted)
    repair, sent = requests_of(lambda: engine.up(declare(setup)))
    assert repair.counts == {"update": 1}
    assert repair.names("update") == [f"msp-exclusions-{needing[3]}"]
    assert sent == ["GET"] * pages + ["GET", "PATCH", "GET"]
    assert msp_is_excluded(setup.emulator.get_policy(setup.tenant, needing[3])["conditions"]["users"], MSP)
