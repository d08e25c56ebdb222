"""A client stack under the real CLI while the tenant misbehaves: a technician editing the same policies in the
portal during `pulumi up` and `pulumi destroy`, replicas that lag behind the writes, and malformed answers
(docs/part-d.md "Nothing lost, nothing widened")."""

from __future__ import annotations

import copy
import random
import statistics
import subprocess
import threading
import time
import uuid
from typing import Any

import pytest

from emulators.clients import GRAPH_ROLES, GraphClient
from emulators.graph import RequestRecord
from emulators.pulumi_project import PulumiProject
from tests.chaos.conftest import PACING_S
from tests.chaos.harness import POLICIES_PATH, Tally, Tenant, audit, poll
from tests.chaos.test_killed_runs import DESTROY, UP, expected_after_up, written_by_up

pytestmark = pytest.mark.timeout(900)

PORTAL = "chaos-portal-technician"  # the technician's User-Agent, to tell its requests from the project's
KEEP = 12  # policies kept for the slower scenarios: enough for every shape, few enough for seconds-long runs


class Technician(threading.Thread):
    """Adds an id to `excludeUsers` of the policy the provider has just read, through Graph as a portal does."""

    def __init__(self, tenant: Tenant, rng: random.Random) -> None:
        super().__init__(name="technician", daemon=True)
        self.tenant, self.rng = tenant, rng
        self.edits: dict[str, list[str]] = {}
        self.stop = threading.Event()
        self.failures: list[str] = []
        app = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
        tenant.emulator.register_app(*app, tenant.tenant, graph_roles=GRAPH_ROLES)
        token = tenant.emulator.access_token(tenant.tenant, *app)
        self.graph = GraphClient(tenant.emulator.url, str(tenant.emulator.ca_bundle), token)
        self.graph.session.headers["User-Agent"] = PORTAL

    def run(self) -> None:
        seen = 0
        while not self.stop.is_set():
            reads = [r for r in project_requests(self.tenant, "GET") if r.path.count("/") > POLICIES_PATH.count("/")]
            if len(reads) > seen:
                seen = len(reads)
                self.edit(reads[-1].path.rsplit("/", 1)[-1])
            elif self.edits and self.rng.random() < 0.05:
                self.edit(self.rng.choice(sorted(self.edits)))
            time.sleep(0.002)

    def edit(self, policy_id: str) -> None:
        users = self.tenant.emulator.get_policy(self.tenant.tenant, policy_id)["conditions"]["users"]
        added = str(uuid.uuid4())
        body = {"conditions": {"users": {"excludeUsers": [*(users.get("excludeUsers") or []), added]}}}
        answer = self.graph.patch(f"{POLICIES_PATH}/{policy_id}", json=body)
        if answer.status_code != 204:
            self.failures.append(f"{policy_id}: {answer.status_code} {answer.text[:200]}")
            return
        self.edits.setdefault(policy_id, []).append(added)

    def __enter__(self) -> Technician:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.join(timeout=60)
        self.graph.close()


def project_requests(tenant: Tenant, method: str) -> list[RequestRecord]:
    return [
        r
        for r in tenant.emulator.requests(method, POLICIES_PATH, tenant=tenant.tenant)
        if r.headers.get("user-agent") != PORTAL
    ]


def with_edits(policies: dict[str, dict[str, Any]], edits: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    edited = copy.deepcopy(policies)
    for pid, added in edits.items():
        users = edited[pid]["conditions"]["users"]
        users["excludeUsers"] = [*(users.get("excludeUsers") or []), *added]
    return edited


def windows(tenant: Tenant, since: float) -> list[tuple[str, float, float]]:
    """Each project PATCH with the project's last GET of the same policy before it: (policy, read, write)."""
    reads = [r for r in project_requests(tenant, "GET") if r.time > since]
    found = []
    for write in (r for r in project_requests(tenant, "PATCH") if r.time > since):
        before = [r.time for r in reads if r.path == write.path and r.time < write.received]
        if before:
            found.append((write.path.rsplit("/", 1)[-1], before[-1], write.time))
    return found


def edits_inside(tenant: Tenant, spans: list[tuple[str, float, float]]) -> int:
    """Technician writes that Graph applied between one of our reads of a policy and our write of it."""
    every = tenant.emulator.requests("PATCH", POLICIES_PATH, tenant=tenant.tenant)
    portal = [r for r in every if r.headers.get("user-agent") == PORTAL]
    return sum(any(r.path.endswith(pid) and read < r.time < write for pid, read, write in spans) for r in portal)


def assert_as_expected(tenant: Tenant, expected: dict[str, dict[str, Any]], when: str) -> None:
    now = tenant.policies()
    problems = [f.describe(expected[pid]["displayName"]) for pid in expected if (f := audit(now[pid], expected[pid]))]
    assert not problems, f"{when}:\n" + "\n".join(problems)


def test_portal_edits_during_up_and_destroy_survive(
    chaos_project: PulumiProject, tenant: Tenant, rng: random.Random, tally: Tally
) -> None:
    if PACING_S >= 0.5:  # production pacing: a few policies keep the runs to a minute
        keep_a_few(tenant)
    originals = tenant.policies()
    started = time.time()
    with Technician(tenant, rng) as technician:
        tally.runs += 1
        chaos_project.run(*UP)
    up_spans = windows(tenant, started)
    assert not technician.failures, technician.failures
    assert_as_expected(tenant, with_edits(expected_after_up(originals), technician.edits), "after up")
    during_up = dict(technician.edits)

    started = time.time()
    with Technician(tenant, rng) as technician:
        tally.runs += 1
        chaos_project.run(*DESTROY)
    destroy_spans = windows(tenant, started)
    assert not technician.failures, technician.failures
    edits = {pid: [*during_up.get(pid, []), *technician.edits.get(pid, [])] for pid in {*during_up, *technician.edits}}
    assert_as_expected(tenant, with_edits(originals, edits), "after destroy")

    inside = edits_inside(tenant, up_spans + destroy_spans)
    assert inside, "no technician edit landed between a read of ours and our write: the test proved nothing"
    spans = [write - read for _, read, write in up_spans + destroy_spans]
    assert len(up_spans) == len(written_by_up(originals))
    tally.windows_s += spans
    tally.window_pacing_s = PACING_S
    tally.edits_inside += inside
    tally.edits += sum(len(v) for v in edits.values())
    # The engine runs up to 8 steps at once in one provider host; a policy's GET and PATCH still take consecutive
    # turns of the tenant's pacing (docs/part-d.md "Concurrent edits"): one slot, plus room for a loaded machine.
    assert statistics.median(spans) < 2 * PACING_S + 0.1, spans


@pytest.fixture
def small_tenant(tenant: Tenant) -> Tenant:
    keep_a_few(tenant)
    return tenant


def keep_a_few(tenant: Tenant) -> None:
    """Only a few of the policies the up writes, and every other shape (the conflict, the covered, out of scope)."""
    policies = tenant.policies()
    keep = set(sorted(written_by_up(policies))[:KEEP]) | {p for p in policies if p not in written_by_up(policies)}
    for pid in set(policies) - keep:
        tenant.emulator.delete_policy(tenant.tenant, pid)


def lagging_listing_sees(tenant: Tenant, count: int, graph: GraphClient) -> bool:
    answer = graph.get(POLICIES_PATH)
    return answer.status_code == 200 and len(answer.json()["value"]) == count


def test_a_destroy_right_after_up_under_a_lag_longer_than_the_confirming_reads_leaves_nothing(
    chaos_project: PulumiProject, small_tenant: Tenant, tally: Tally
) -> None:
    tenant = small_tenant
    originals = tenant.policies()
    lag_s = 12.0  # far longer than five confirming reads at this pacing, than the up, and than a loaded CLI start
    tenant.emulator.settings.read_lag_ms = lag_s * 1000
    reader = portal_reader(tenant)
    assert poll(lambda: lagging_listing_sees(tenant, len(originals), reader), 60, 0.2), "the replica never caught up"
    tally.runs += 1
    chaos_project.run(*UP)
    results: list[subprocess.CompletedProcess[str]] = []
    for _ in range(6):  # docs/part-d.md "Deletes and lag": run destroy again, once the replica has caught up
        quiet = lambda: all(time.time() - w.time > lag_s for w in tenant.writes())  # noqa: E731
        if results:
            assert poll(quiet, 60, 0.2)
        tally.runs += 1
        results.append(chaos_project.run(*DESTROY, check=False))
        if results[-1].returncode == 0:
            break
        assert "replication lag" in results[-1].stdout or "does not show" in results[-1].stdout, results[-1].stdout
    assert results[-1].returncode == 0, results[-1].stdout[-3000:]
    reader.close()
    assert_as_expected(tenant, originals, "after destroy under lag")
    tally.policies += len(originals)
    assert len(results) > 1, "no destroy met the lag: the test proved nothing"


def portal_reader(tenant: Tenant) -> GraphClient:
    app = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    tenant.emulator.register_app(*app, tenant.tenant, graph_roles=GRAPH_ROLES)
    token = tenant.emulator.access_token(tenant.tenant, *app)
    return GraphClient(tenant.emulator.url, str(tenant.emulator.ca_bundle), token)


def malformed(policy: dict[str, Any], shape: str) -> dict[str, Any]:
    broken = copy.deepcopy(policy)
    if shape == "users null":
        broken["conditions"]["users"] = None
    elif shape == "no conditions":
        del broken["conditions"]
    else:  # an excludeUsers that is a string
        broken["conditions"]["users"]["excludeUsers"] = "GuestsOrExternalUsers"
    return broken


def test_a_malformed_listing_stops_the_run_before_any_write(
    chaos_project: PulumiProject, small_tenant: Tenant, tally: Tally
) -> None:
    tenant = small_tenant
    reader = portal_reader(tenant)
    listing = reader.get(POLICIES_PATH).json()
    reader.close()
    victim = listing["value"][3]
    listing["value"][3] = malformed(victim, "no conditions")
    tenant.emulator.inject("GET", POLICIES_PATH, tenant=tenant.tenant, status=200, body=listing, times=None)
    tally.runs += 1
    result = chaos_project.run(*UP, check=False)
    assert result.returncode != 0
    assert victim["id"] in result.stdout + result.stderr
    assert tenant.writes() == [], "a write from a listing the project does not understand"


@pytest.mark.parametrize("command", ["up", "destroy"])
def test_a_malformed_read_of_one_policy_fails_naming_it_and_writes_nothing_to_it(
    chaos_project: PulumiProject, small_tenant: Tenant, tally: Tally, command: str
) -> None:
    tenant = small_tenant
    originals = tenant.policies()
    victim = sorted(written_by_up(originals))[0]
    if command == "destroy":
        tally.runs += 1
        chaos_project.run(*UP)
    reader = portal_reader(tenant)
    answer = reader.get(f"{POLICIES_PATH}/{victim}").json()
    reader.close()
    shape = "users null" if command == "up" else "excludeUsers a string"
    bad = tenant.emulator.inject(
        "GET", f"policies/{victim}", tenant=tenant.tenant, status=200, body=malformed(answer, shape), times=None
    )
    before = tenant.policies()[victim]
    started = time.time()
    tally.runs += 1
    result = chaos_project.run(*(UP if command == "up" else DESTROY), check=False)
    assert result.returncode != 0
    assert victim in result.stdout + result.stderr
    assert "does not understand" in result.stdout + result.stderr
    assert not [w for w in tenant.writes(since=started) if victim in w.path], f"{shape}: written anyway"
    assert tenant.policies()[victim] == before

    bad.times = bad.hits  # the answers are whole again: the same command completes
    tally.runs += 2
    if command == "up":
        chaos_project.run(*UP)
        assert_as_expected(tenant, expected_after_up(originals), "after up")
    chaos_project.run(*DESTROY)
    assert_as_expected(tenant, originals, "after destroy")
    tally.policies += len(originals)
