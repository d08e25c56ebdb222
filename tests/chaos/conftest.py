"""The chaos suite (`make chaos`): the real Pulumi CLI, SIGKILLed at seeded random instants, against the emulators.

It reuses the engine suite's fixtures (the CLI, the client tenant holding the shared corpus, its project) and adds
a pacing that makes a run last several seconds, a seeded generator per test (CHAOS_SEED, default 20) and the
figures printed at the end. Not part of `make test` nor `make e2e` (docs/part-d.md "Nothing lost, nothing widened").
"""

from __future__ import annotations

import copy
import os
import random
import time
from typing import Any

import pytest

from cipp_hardening.exclusion import ENUMERATED_TENANTS, SERVICE_PROVIDER
from emulators.pulumi_project import PulumiProject
from tests.chaos.harness import Tally, Tenant
from tests.engine.conftest import pulumi_cli
from tests.engine.test_client_stack import MSP, ClientTenant, client_tenant, project, selected_ids

__all__ = ["client_tenant", "project", "pulumi_cli"]  # the engine suite's fixtures, used here as they are

SEED = int(os.environ.get("CHAOS_SEED", "20"))
# Seconds between two requests to the tenant (CIPP_HARDENING_GRAPH_INTERVAL): small, so that a run of the corpus
# lasts several seconds and kills land between and inside writes, but not zero. CHAOS_PACING=1.05 measures the
# portal-edit window at the production pacing (the portal test then keeps a few policies only).
PACING_S = float(os.environ.get("CHAOS_PACING", "0.03"))
OTHER_PROVIDER = "00000000-0000-0000-0000-00000000a0ff"  # another MSP the client already excludes
TALLY = Tally()
STARTED = time.monotonic()


def pytest_report_header() -> str:
    return f"chaos: CHAOS_SEED={SEED}, pacing {PACING_S:g} s"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("chaos figures")
    for line in TALLY.summary():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"wall time {time.monotonic() - STARTED:.0f} s (seed {SEED})")


@pytest.fixture
def tally() -> Tally:
    return TALLY


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """One generator per test, from the seed and the test's name: a test replays alone as in the whole suite."""
    return random.Random(f"{SEED}:{request.node.name}")


@pytest.fixture
def chaos_project(project: PulumiProject) -> PulumiProject:
    project.env["CIPP_HARDENING_GRAPH_INTERVAL"] = str(PACING_S)
    return project


@pytest.fixture
def tenant(client_tenant: ClientTenant) -> Tenant:
    """The corpus tenant with two more shapes Part D meets: a guest exclusion of another MSP that ours joins, and
    a policy the client already excludes the MSP from (covered: never ours to remove)."""
    policies = client_tenant.policies()
    candidates = sorted(
        pid
        for pid in selected_ids(policies)
        if not policies[pid]["conditions"]["users"].get("excludeGuestsOrExternalUsers")
    )
    _exclude_providers(client_tenant, policies[candidates[0]], [OTHER_PROVIDER])
    _exclude_providers(client_tenant, policies[candidates[1]], [MSP])
    return Tenant(client_tenant.emulator, client_tenant.tenant)


def _exclude_providers(client_tenant: ClientTenant, policy: dict[str, Any], tenants: list[str]) -> None:
    changed = copy.deepcopy(policy)
    changed["conditions"]["users"]["excludeGuestsOrExternalUsers"] = {
        "guestOrExternalUserTypes": SERVICE_PROVIDER,
        "externalTenants": {"@odata.type": ENUMERATED_TENANTS, "membershipKind": "enumerated", "members": tenants},
    }
    client_tenant.emulator.put_policy(client_tenant.tenant, changed)
