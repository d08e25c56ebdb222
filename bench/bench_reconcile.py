"""A nightly reconcile of a converged fleet: 500 client tenants, then 1 % of their policies drifted.

Run from the repository root:

    .venv-dev/bin/python bench/bench_reconcile.py             # 500 tenants at the real rate (~15 min)
    .venv-dev/bin/python bench/bench_reconcile.py --tenants 20 --quick

Every tenant starts converged (each policy already excludes the MSP) and its stack is adopted by a first
`up` (from the listing: no per-policy request). Then two measured passes of `up` over the whole fleet
through the fleet runner (`cipp_hardening.commands.fleet.run_fleet`, PARALLEL=8), each tenant with a fresh
provider host on the state the last pass left, as a nightly `make fleet ACTION=up` runs them:

1. converged: nothing changed anywhere;
2. drifted: the MSP exclusion removed in the portal from 1 % of all policies, spread at random.

Reported per pass: Conditional Access requests (429s included), writes, wall time, and the bound
requests × 1 s / PARALLEL (at 1 request/s per tenant, P tenants at a time cannot do better); with the
slowest tenant's own bound, since one tenant's requests cannot be spread over workers.

Tenant sizes: a deterministic log-normal mix (median about 20 policies, a long tail up to Graph's
cap of 195). The caveats of bench_fleet.py hold: the programs run in this process, one at a time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.emulated_tenants import CA_PATH, MSP, Lab, Rate, machine  # noqa: E402
from cipp_hardening.commands.fleet import Outcome, run_fleet  # noqa: E402
from cipp_hardening.exclusion import msp_is_excluded  # noqa: E402
from emulators.provider_host import StateEntry  # noqa: E402

MAX_POLICIES = 195


def tenant_sizes(count: int, seed: int) -> list[int]:
    chooser = random.Random(seed)
    return [min(MAX_POLICIES, max(1, round(chooser.lognormvariate(3.0, 1.0)))) for _ in range(count)]


class Reconciler:
    """The fleet runner's `StackRunner`: one `up` of one emulated tenant, its state kept between passes."""

    def __init__(self, lab: Lab, tenants: dict[str, str]) -> None:
        self.lab = lab
        self.tenants = tenants
        self.states: dict[str, dict[str, StateEntry]] = {}
        self.last_ops: dict[str, dict[str, int]] = {}

    def run(self, stack: str, action: str, log: Any) -> Outcome:
        tenant = self.tenants[stack]
        with self.lab.session(tenant, self.states.get(stack)) as session:
            ops = self.lab.up(session, tenant)
            self.states[stack] = dict(session.engine.state)
        self.last_ops[stack] = ops
        log(f"{action} {stack}: {ops}")
        return Outcome(ops)


def drift(lab: Lab, tenants: Sequence[str], share: float, seed: int) -> int:
    """Remove the MSP exclusion from `share` of all policies, as someone editing in the portal would."""
    everything = [(t, p) for t in tenants for p in lab.emulator.policies(t)]
    chosen = random.Random(seed).sample(everything, max(1, round(share * len(everything))))
    for tenant, policy in chosen:
        policy["conditions"]["users"]["excludeGuestsOrExternalUsers"] = None
        lab.emulator.put_policy(tenant, policy)
    return len(chosen)


def measured_pass(lab: Lab, runner: Reconciler, parallel: int, label: str) -> dict[str, Any]:
    stacks = list(runner.tenants)
    since, started = time.time(), time.monotonic()
    with tempfile.TemporaryDirectory() as logs:
        results = run_fleet(stacks, "up", runner, parallel=parallel, log_dir=Path(logs))
    wall = time.monotonic() - started
    records = [r for r in lab.emulator.requests(path_contains=CA_PATH) if r.time >= since]
    per_tenant: dict[str | None, int] = {}
    for record in records:
        per_tenant[record.tenant] = per_tenant.get(record.tenant, 0) + 1
    bound = len(records) * (1.0 / lab.rate.rate_per_s) / parallel
    slowest = max(per_tenant.values(), default=0) * lab.rate.interval_s
    converged = all(
        msp_is_excluded(p["conditions"]["users"], MSP)
        for t in runner.tenants.values()
        for p in lab.emulator.policies(t)
    )
    changes: dict[str, int] = {}
    for ops in runner.last_ops.values():
        for op, count in ops.items():
            changes[op] = changes.get(op, 0) + count
    return {
        "pass": label,
        "succeeded": sum(r.result == "succeeded" for r in results),
        "requests": len(records),
        "writes": sum(r.method == "PATCH" and r.status < 400 for r in records),
        "throttled_429": sum(r.status == 429 for r in records),
        "changes": changes,
        "wall_s": round(wall, 1),
        "bound_s": round(bound, 1),
        "wall_vs_bound": round(wall / bound, 2) if bound else None,
        "slowest_tenant_bound_s": round(slowest, 1),
        "converged": converged,
    }


def reconcile(count: int, parallel: int, rate: Rate, share: float, seed: int) -> dict[str, Any]:
    sizes = tenant_sizes(count, seed)
    with Lab(rate, seed=seed) as lab:
        tenant_ids = lab.open_tenants(sizes, covered=True)
        runner = Reconciler(lab, {f"client-{i:03d}": t for i, t in enumerate(tenant_ids)})
        adopted = measured_pass(lab, runner, parallel, "adoption (first up of a converged fleet)")
        converged = measured_pass(lab, runner, parallel, "converged")
        drifted = drift(lab, tenant_ids, share, seed)
        repaired = measured_pass(lab, runner, parallel, f"{drifted} policies drifted")
    return {
        "tenants": count,
        "policies": sum(sizes),
        "largest": max(sizes),
        "median": sorted(sizes)[len(sizes) // 2],
        "parallel": parallel,
        "drifted": drifted,
        "passes": [adopted, converged, repaired],
    }


def describe(row: dict[str, Any]) -> str:
    head = (
        f"{row['tenants']} tenants, {row['policies']} policies (median {row['median']}, largest {row['largest']}), "
        f"PARALLEL={row['parallel']}"
    )
    lines = [head]
    for p in row["passes"]:
        lines.append(
            f"  {p['pass']}: {p['requests']} requests, {p['writes']} writes, {p['throttled_429']} 429s, "
            f"changes {p['changes']}; wall {p['wall_s']} s vs bound {p['bound_s']} s (×{p['wall_vs_bound']}), "
            f"slowest tenant {p['slowest_tenant_bound_s']} s; {p['succeeded']}/{row['tenants']} succeeded, "
            f"converged={p['converged']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 requests/s, 0.105 s pacing")
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--drift", type=float, default=0.01, help="share of all policies drifted (default 1 %%)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rate = Rate.quick() if args.quick else Rate.real()
    print(f"reconcile bench: interval {rate.interval_s} s, emulator {rate.rate_per_s} req/s/tenant; {machine()}")
    row = reconcile(args.tenants, args.parallel, rate, args.drift, args.seed)
    print(describe(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rate": rate.__dict__, "row": row}, indent=2))
    ok = all(p["converged"] and p["succeeded"] == args.tenants for p in row["passes"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
