"""The azuread stand-in's consistency waits, in-process, on a fake clock (tools/standin/azuread_standin.py).

Upstream (terraform-provider-azuread v3.9 over terraform-plugin-sdk v2's StateChangeConf) waits for five
consecutive confirming reads at least 5 s apart after each create, update and delete, 15 s before the first
read of a new named location; docs/engine.md. A fake Graph answers each GET from a script and records the
fake time it came at, so no test sleeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import provider_pb2

from emulators.provider_host import to_struct
from service_clients.graph_client import GraphError
from tools.standin import azuread_standin as standin

NL, CAP = standin.NAMED_LOCATION.token, standin.POLICY.token
LOCATION_ID, POLICY_ID = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
LOCATION_INPUTS = {"displayName": "Office", "ip": {"ipRanges": ["203.0.113.0/24"], "trusted": True}}
POLICY_INPUTS: dict[str, Any] = {
    "displayName": "Block outside",
    "state": "enabledForReportingButNotEnforced",
    "conditions": {
        "applications": {"includedApplications": ["All"]},
        "clientAppTypes": ["all"],
        "users": {"includedUsers": ["All"]},
    },
    "grantControls": {"builtInControls": ["block"], "operator": "OR"},
}
LOCATION_OBJ = {
    "@odata.type": "#microsoft.graph.ipNamedLocation",
    "id": LOCATION_ID,
    "displayName": "Office",
    "isTrusted": True,
    "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
}
POLICY_OBJ = {"id": POLICY_ID, "displayName": "Block outside", "state": "enabledForReportingButNotEnforced"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def graph_error(status: int, code: str = "Forbidden") -> GraphError:
    return GraphError("GET", "identity/conditionalAccess/x", status, code, "scripted")


class FakeGraph:
    """GETs answered from a script (an object, or a GraphError to raise), then ``settled``; each GET's fake time."""

    def __init__(self, clock: FakeClock, script: list[Any], settled: Any) -> None:
        self.clock, self.script, self.settled = clock, list(script), settled
        self.get_times: list[float] = []
        self.writes: list[tuple[str, str]] = []

    def get(self, path: str) -> dict[str, Any]:
        self.get_times.append(self.clock.now)
        answer = self.script.pop(0) if self.script else self.settled
        if isinstance(answer, GraphError):
            raise answer
        return dict(answer)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(("POST", path))
        return {"id": LOCATION_ID if "namedLocations" in path else POLICY_ID}

    def patch(self, path: str, body: Mapping[str, Any]) -> None:
        self.writes.append(("PATCH", path))

    def delete(self, path: str) -> None:
        self.writes.append(("DELETE", path))


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, metadata: Any = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.metadata = code, message, dict(metadata)


class FakeContext:
    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)

    def abort_with_status(self, status: Any) -> None:
        raise Aborted(status.code, status.details, status.trailing_metadata)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def provider(clock: FakeClock, graph: FakeGraph, scale: float = 1.0) -> standin.AzureADStandIn:
    waiter = standin.Waiter(standin.WaitTiming(scale=scale), clock=clock, sleep=clock.sleep)
    plugin = standin.AzureADStandIn(waiter)

    @contextlib.contextmanager
    def fake_graph() -> Iterator[FakeGraph]:
        yield graph

    plugin._graph = fake_graph  # type: ignore[assignment,method-assign]
    return plugin


def urn(token: str) -> str:
    return f"urn:pulumi:prod::cipp-hardening::{token}::res"


def create(plugin: standin.AzureADStandIn, token: str, inputs: Mapping[str, Any]) -> provider_pb2.CreateResponse:
    request = provider_pb2.CreateRequest(urn=urn(token), type=token, name="res", properties=to_struct(inputs))
    return plugin.Create(request, FakeContext())


def init_failed_of(aborted: Aborted) -> provider_pb2.ErrorResourceInitFailed | None:
    details = aborted.metadata.get("grpc-status-details-bin")
    if details is None:
        return None
    (detail,) = status_pb2.Status.FromString(details).details
    found = provider_pb2.ErrorResourceInitFailed()
    assert detail.Unpack(found)
    return found


# -- the schedule ----------------------------------------------------------------------------------------


def test_a_named_location_create_reads_after_15_s_then_five_times_5_s_apart(clock: FakeClock) -> None:
    graph = FakeGraph(clock, [], LOCATION_OBJ)
    created = create(provider(clock, graph), NL, LOCATION_INPUTS)
    assert created.id == f"/identity/conditionalAccess/namedLocations/{LOCATION_ID}"
    # WaitForUpdateDelayStart(15 s): five confirming reads 5 s apart, then the create's own Read.
    assert graph.get_times == [15.0, 20.0, 25.0, 30.0, 35.0, 35.0]


def test_a_read_that_does_not_confirm_starts_the_count_again_and_backs_off(clock: FakeClock) -> None:
    missing = graph_error(404, "Request_ResourceNotFound")
    graph = FakeGraph(clock, [missing, POLICY_OBJ, POLICY_OBJ, missing], POLICY_OBJ)
    create(provider(clock, graph), CAP, POLICY_INPUTS)
    # A policy not yet readable (404) is "not yet"; each such answer doubles the wait (5 s floor, 10 s cap),
    # a confirming one keeps it, and the five confirming reads must follow one another.
    assert graph.get_times == [0.0, 5.0, 10.0, 15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 65.0]


def test_the_scale_setting_shrinks_every_interval(clock: FakeClock) -> None:
    graph = FakeGraph(clock, [], LOCATION_OBJ)
    create(provider(clock, graph, scale=0.01), NL, LOCATION_INPUTS)
    assert graph.get_times == pytest.approx([0.15, 0.2, 0.25, 0.3, 0.35, 0.35])


def test_the_scale_comes_from_one_environment_variable() -> None:
    assert standin.WaitTiming.from_env({}) == standin.WaitTiming(scale=1.0)
    assert standin.WaitTiming.from_env({standin.WAIT_SCALE_ENV: "0.002"}).scale == 0.002
    for bad in ("fast", "-1", "nan"):
        with pytest.raises(ValueError, match=standin.WAIT_SCALE_ENV):
            standin.WaitTiming.from_env({standin.WAIT_SCALE_ENV: bad})


# -- what a failed wait leaves behind -----------------------------------------------------------------------


def test_a_named_location_wait_fails_on_any_read_error_and_the_create_records_nothing(clock: FakeClock) -> None:
    # ipNamedLocationWait returns every GET error, a 404 included: the wait stops at once, before d.SetId.
    graph = FakeGraph(clock, [LOCATION_OBJ, graph_error(404, "Request_ResourceNotFound")], LOCATION_OBJ)
    with pytest.raises(Aborted) as aborted:
        create(provider(clock, graph), NL, LOCATION_INPUTS)
    assert graph.get_times == [15.0, 20.0]
    assert f"waiting for creation of /identity/conditionalAccess/namedLocations/{LOCATION_ID}: " in (
        aborted.value.message
    )
    assert "retrieving resource: Graph error Request_ResourceNotFound" in aborted.value.message
    assert init_failed_of(aborted.value) is None, "upstream records no id: the location is orphaned"


def test_a_policy_wait_that_fails_records_nothing_but_a_failed_read_after_it_keeps_the_id(clock: FakeClock) -> None:
    graph = FakeGraph(clock, [graph_error(403)], POLICY_OBJ)
    with pytest.raises(Aborted) as aborted:
        create(provider(clock, graph), CAP, POLICY_INPUTS)
    assert aborted.value.message.endswith("scripted (HTTP 403 on GET identity/conditionalAccess/x)")
    assert f"Waiting for creation of /identity/conditionalAccess/policies/{POLICY_ID}: " in aborted.value.message
    assert init_failed_of(aborted.value) is None

    # Five confirming reads, d.SetId, then conditionalAccessPolicyResourceRead fails: a partial resource.
    graph = FakeGraph(clock, [POLICY_OBJ] * 5 + [graph_error(403)], POLICY_OBJ)
    with pytest.raises(Aborted) as aborted:
        create(provider(clock, graph), CAP, POLICY_INPUTS)
    init_failed = init_failed_of(aborted.value)
    assert init_failed is not None
    assert init_failed.id == f"/identity/conditionalAccess/policies/{POLICY_ID}"


def test_a_policy_update_waits_for_its_name_and_state_until_upstreams_15_minutes(clock: FakeClock) -> None:
    stale = {**POLICY_OBJ, "state": "disabled"}
    graph = FakeGraph(clock, [], stale)
    plugin = provider(clock, graph)
    request = provider_pb2.UpdateRequest(
        id=f"/identity/conditionalAccess/policies/{POLICY_ID}",
        urn=urn(CAP),
        type=CAP,
        name="res",
        olds=to_struct({**POLICY_INPUTS, "state": "disabled"}),
        news=to_struct(POLICY_INPUTS),
    )
    with pytest.raises(Aborted) as aborted:
        plugin.Update(request, FakeContext())
    assert clock.now == 900.0
    assert (
        f'waiting for update of conditional access policy with ID "/identity/conditionalAccess/policies/{POLICY_ID}"'
        ": timeout while waiting for state to become 'Done' (last state: 'Pending', timeout: 15m0s)"
    ) in aborted.value.message
    assert graph.writes == [("PATCH", f"identity/conditionalAccess/policies/{POLICY_ID}")]


def test_a_named_location_delete_awaits_untrusted_then_five_404s(clock: FakeClock) -> None:
    untrusted = {**LOCATION_OBJ, "isTrusted": False}
    gone = graph_error(404, "Request_ResourceNotFound")
    graph = FakeGraph(clock, [LOCATION_OBJ, *[untrusted] * 5, untrusted], gone)
    plugin = provider(clock, graph)
    request = provider_pb2.DeleteRequest(
        id=f"/identity/conditionalAccess/namedLocations/{LOCATION_ID}",
        urn=urn(NL),
        type=NL,
        name="res",
        properties=to_struct({**LOCATION_INPUTS, "objectId": LOCATION_ID}),
    )
    plugin.Delete(request, FakeContext())
    path = f"identity/conditionalAccess/namedLocations/{LOCATION_ID}"
    assert graph.writes == [("PATCH", path), ("DELETE", path)]
    # trusted once (not yet), five untrusted reads; after the DELETE one stale read, then five 404s.
    assert len(graph.get_times) == 1 + 5 + 1 + 5
