"""Part D on emulated client tenants, the way a real `pulumi up` of a client stack runs it.

Shared by bench_part_d.py and bench_fleet.py (and their smoke test). For each tenant:

1. the program (__main__.py) runs under mocks and lists the tenant's policies from the loopback Graph
   emulator (the one paged list of a real run) to declare one CaExclusion per policy;
2. the real dynamic-provider host (`python -m pulumi.dynamic`, started like the engine does) applies
   them over gRPC, driven by MiniEngine: a fresh GET and a PATCH per policy the listing shows uncovered;
3. the emulator's request log says what was sent: requests, 429s, writes, per-policy counts.

The emulator enforces the Conditional Access limit (a per-tenant token bucket, 429 without
Retry-After) and can answer random 429s on top; the Graph client paces each tenant itself
(CIPP_HARDENING_GRAPH_INTERVAL). `Rate.quick()` scales both by 10 (same ratios, a tenth of the time).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine_info import machine  # noqa: E402, F401  (re-exported for the benches)
from cipp_hardening.commands.demo import runtime_config as to_runtime_config  # noqa: E402
from cipp_hardening.exclusion import msp_is_excluded  # noqa: E402
from emulators.clients import GRAPH_ROLES, graph_client_env  # noqa: E402
from emulators.graph import GraphEmulator, RequestRecord  # noqa: E402
from emulators.provider_host import MiniEngine, ProviderHost, StateEntry, collect_dynamic_resources  # noqa: E402
from service_clients import credentials  # noqa: E402

MSP = "00000000-0000-0000-0000-00000000a001"  # the example MSP tenant (Pulumi.example.yaml)

CA_PATH = "/identity/conditionalAccess/"
MSP_EXCLUDED = {  # the MSP's service-provider users excluded, as Part D writes it
    "guestOrExternalUserTypes": "serviceProvider",
    "externalTenants": {
        "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
        "membershipKind": "enumerated",
        "members": [MSP],
    },
}
_declare_lock = threading.Lock()


def policy(display_name: str, **users: Any) -> dict[str, Any]:
    """A minimal valid v1.0 policy (docs/graph-ca.md) whose users object carries `users` on top of includeUsers All."""
    return {
        "displayName": display_name,
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"], "excludeUsers": ["00000000-0000-0000-0000-0000000000b1"], **users},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


@dataclass(frozen=True)
class Rate:
    interval_s: float  # the client's pacing per tenant
    rate_per_s: float  # the emulator's limit per tenant

    @classmethod
    def real(cls) -> Rate:
        return cls(1.05, 1.0)  # graph_client.DEFAULT_INTERVAL_S against the real limit

    @classmethod
    def quick(cls) -> Rate:
        return cls(0.105, 10.0)


@dataclass
class TenantRun:
    tenant: str
    policies: int
    wall_s: float = 0.0  # program + provider host start + apply
    graph_s: float = 0.0  # first to last Conditional Access request
    requests: int = 0  # Conditional Access requests sent, 429s included
    injected_429: int = 0
    throttled_429: int = 0  # the emulator's rate limit answered 429
    list_pages: int = 0
    writes: int = 0  # PATCHes that succeeded
    changed: int = 0  # policies that needed the exclusion
    max_per_policy: int = 0  # successful requests to one policy's URL, at most
    converged: bool = False
    ops: dict[str, int] = field(default_factory=dict)
    host_peak_rss_mib: float = 0.0
    host_start_s: float = 0.0  # provider host start-up (what the engine pays per stack operation)
    declare_wait_s: float = 0.0  # waiting for another tenant's program run (this harness only)
    declare_s: float = 0.0  # the program itself, its paged list included

    @property
    def minimum(self) -> int:
        """One paged list, then a fresh GET, a PATCH and a confirming GET for each policy that needs the exclusion."""
        return max(self.list_pages, 1) + 3 * self.changed  # GET, PATCH, confirming GET (docs/part-d.md)

    def bound_s(self, rate: Rate) -> float:
        """The issue's throttle bound: every request (429s included) × 1 / the tenant's limit (1 s at 1 req/s)."""
        return self.requests / rate.rate_per_s


@dataclass
class HostSession:
    engine: MiniEngine
    start_s: float = 0.0
    peak_rss_mib: float = 0.0
    declare_wait_s: float = 0.0
    declare_s: float = 0.0


class Lab:
    """A Graph emulator with a rate limit, tenants, and one MSP app consented in all of them."""

    def __init__(self, rate: Rate, *, throttle_probability: float = 0.0, seed: int = 7) -> None:
        self.rate = rate
        self.throttle_probability = throttle_probability
        self.seed = seed
        self.emulator = GraphEmulator(seed=seed)
        self.client_id = str(uuid.uuid4())
        self.secret = f"secret-{uuid.uuid4().hex}"
        self.env: dict[str, str] = {}
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> Lab:
        self.emulator.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.emulator.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        credentials.reset_cache()

    def open_tenants(self, sizes: Sequence[int], *, covered: bool = False) -> list[str]:
        """Tenants with `sizes[i]` policies each, none excluding the MSP yet (`covered`: all of them already
        do, a converged fleet); the app consented in all."""
        tenants = [str(uuid.uuid4()) for _ in sizes]
        self.emulator.register_app(self.client_id, self.secret, MSP, consented_tenants=tenants, graph_roles=GRAPH_ROLES)
        extra = {"excludeGuestsOrExternalUsers": MSP_EXCLUDED} if covered else {}
        for tenant, size in zip(tenants, sizes, strict=True):
            for i in range(size):
                self.emulator.put_policy(tenant, policy(f"client policy {i + 1:03d}", **extra))
        self.env = graph_client_env(
            self.emulator.url, self.emulator.ca_bundle, self.client_id, self.secret, str(self.rate.interval_s)
        )
        for key, value in self.env.items():  # the program runs in this process and reads them too
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        credentials.reset_cache()
        self.emulator.set_throttle(True, rate_per_s=self.rate.rate_per_s, burst=1.0)
        if self.throttle_probability:
            self.emulator.inject_random_throttling(self.throttle_probability, seed=self.seed)
        return tenants

    def stack_config(self, tenant: str) -> dict[str, str]:
        raw = {
            "mode": "client",
            "graphUrl": self.emulator.url,
            "clientTenant": {"tenantId": tenant, "mspTenantId": MSP, "accessMode": "gdap"},
        }
        return to_runtime_config(raw)

    @contextmanager
    def session(self, tenant: str, state: Mapping[str, StateEntry] | None = None) -> Iterator[HostSession]:
        """A provider host for the tenant's stack (as the engine starts one per `pulumi up`), on `state`."""
        started = time.monotonic()
        with ProviderHost(ROOT, env=self.env, stack=f"client-{tenant[:8]}") as host:
            host.configure(self.stack_config(tenant))
            session = HostSession(MiniEngine(host, state), start_s=time.monotonic() - started)
            try:
                yield session
            finally:
                session.peak_rss_mib = _peak_rss_mib(host.pid)

    def up(self, session: HostSession, tenant: str) -> dict[str, int]:
        """One `pulumi up` of the tenant's stack: run the program (declare), then apply."""
        waiting = time.monotonic()
        with _declare_lock:  # the program runs in-process under mocks: one at a time (see bench_fleet.py)
            running = time.monotonic()
            _ensure_event_loop()  # the mock runtime wants one, and fleet worker threads have none
            declared = collect_dynamic_resources(
                ROOT / "__main__.py", config=self.stack_config(tenant), stack=f"client-{tenant[:8]}"
            )
        session.declare_wait_s += running - waiting
        session.declare_s += time.monotonic() - running
        return session.engine.up(declared).counts

    def apply(self, tenant: str, size: int, *, again: bool = False) -> tuple[TenantRun, TenantRun | None]:
        """A first `pulumi up` of a tenant whose policies all need the exclusion, measured; with
        `again`, a second `up` of the converged tenant on the same state, measured too."""
        since, started = time.time(), time.monotonic()
        with self.session(tenant) as session:
            ops = self.up(session, tenant)
            first = self.measure(tenant, size, since)
            first.wall_s, first.ops = time.monotonic() - started, ops
            first.declare_wait_s, first.declare_s = session.declare_wait_s, session.declare_s
            second = None
            if again:  # a later `pulumi up`: let the tenant's rate-limit window pass first
                time.sleep(self.rate.interval_s)
                since, started = time.time(), time.monotonic()
                ops = self.up(session, tenant)
                second = self.measure(tenant, size, since)
                second.wall_s, second.ops, second.changed = time.monotonic() - started, ops, 0
        first.host_peak_rss_mib, first.host_start_s = session.peak_rss_mib, session.start_s
        return first, second

    def measure(self, tenant: str, size: int, since: float) -> TenantRun:
        records = [r for r in self.emulator.requests(path_contains=CA_PATH, tenant=tenant) if r.time >= since]
        run = TenantRun(tenant, size)
        count_requests(run, records)
        run.changed = size
        run.converged = all(msp_is_excluded(p["conditions"]["users"], MSP) for p in self.emulator.policies(tenant))
        return run


def _ensure_event_loop() -> None:
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def count_requests(run: TenantRun, records: Sequence[RequestRecord]) -> None:
    run.requests = len(records)
    run.injected_429 = sum(r.status == 429 and r.fault for r in records)
    run.throttled_429 = sum(r.status == 429 and not r.fault for r in records)
    ok = [r for r in records if r.status < 400]
    run.list_pages = sum(r.method == "GET" and r.path.rstrip("/").endswith("/policies") for r in ok)
    run.writes = sum(r.method == "PATCH" for r in ok)
    per_policy = Counter(r.path for r in ok if not r.path.rstrip("/").endswith("/policies"))
    run.max_per_policy = max(per_policy.values(), default=0)
    if records:
        run.graph_s = records[-1].time - records[0].time


def _peak_rss_mib(pid: int | None) -> float:
    """VmHWM of a running process (Linux), in MiB; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "")
    return int(line.split()[1]) / 1024 if line else 0.0
