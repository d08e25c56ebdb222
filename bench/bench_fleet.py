"""Part D across 50 emulated client tenants at once: fleet wall time vs the slowest tenant's bound.

Run from the repository root:

    .venv-dev/bin/python bench/bench_fleet.py             # real rate, 1 request/s per tenant (~5 min)
    .venv-dev/bin/python bench/bench_fleet.py --quick     # 10 requests/s and 0.105 s pacing: same ratios, ~10x faster

The scheduler is the fleet runner's own (`cipp_hardening.commands.fleet.run_fleet`: bounded threads, per-stack
logs, continue-on-error); only the per-stack runner is a stand-in for the Automation API: for each
"stack" it runs a first `pulumi up` of one emulated tenant the way bench/emulated_tenants.py does (the program,
then a fresh real provider host per tenant, as the engine starts one per stack operation).

Honest caveats: every tenant's provider host is a separate process, as in a real fleet, but the
program of each tenant runs inside this process under mocks, one at a time (the Pulumi runtime's
`runpy`/`chdir` are process-wide), where a real fleet runs one language host per stack; that wait
is reported. One Graph emulator serves every tenant, with a per-tenant rate limit like Graph's.

Bound: each tenant needs at least (its requests, 429s included) × interval; a fleet run with enough
parallelism cannot beat the slowest tenant's bound, and with P workers not sum(bounds) / P either.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.emulated_tenants import Lab, Rate, TenantRun, machine  # noqa: E402
from cipp_hardening.commands.fleet import Outcome, run_fleet  # noqa: E402


def tenant_sizes(count: int, largest: int) -> list[int]:
    """A deterministic spread of 1..largest policies per tenant."""
    return [1 + (i * 7) % largest for i in range(count)]


class PartDStandIn:
    """The fleet runner's `StackRunner`, applying one emulated tenant per stack."""

    def __init__(self, lab: Lab, tenants: dict[str, tuple[str, int]]) -> None:
        self.lab = lab
        self.tenants = tenants
        self.runs: dict[str, TenantRun] = {}

    def run(self, stack: str, action: str, log: Any) -> Outcome:
        tenant, size = self.tenants[stack]
        run, _ = self.lab.apply(tenant, size)
        self.runs[stack] = run
        log(f"{action} {stack}: {run.requests} requests, {run.writes} writes, {run.wall_s:.1f} s")
        if not run.converged:
            raise RuntimeError(f"{stack}: not every policy excludes the MSP")
        return Outcome(run.ops)


def fleet_run(
    count: int, largest: int, parallel: int, rate: Rate, throttle_probability: float, seed: int
) -> dict[str, Any]:
    sizes = tenant_sizes(count, largest)
    with Lab(rate, throttle_probability=throttle_probability, seed=seed) as lab, tempfile.TemporaryDirectory() as logs:
        tenant_ids = lab.open_tenants(sizes)
        stacks = {f"client-{i:03d}": (t, s) for i, (t, s) in enumerate(zip(tenant_ids, sizes, strict=True))}
        runner = PartDStandIn(lab, stacks)
        started = time.monotonic()
        results = run_fleet(list(stacks), "up", runner, parallel=parallel, log_dir=Path(logs))
        wall = time.monotonic() - started
    runs = list(runner.runs.values())
    bounds = [r.bound_s(rate) for r in runs]
    slowest = max(bounds)
    lower = max(slowest, sum(bounds) / parallel)
    return {
        "tenants": count,
        "policies": sum(sizes),
        "parallel": parallel,
        "succeeded": sum(r.result == "succeeded" for r in results),
        "converged": all(r.converged for r in runs),
        "wall_s": round(wall, 1),
        "slowest_tenant_bound_s": round(slowest, 1),
        "wall_vs_slowest_bound": round(wall / slowest, 2),
        "lower_bound_s": round(lower, 1),
        "wall_vs_lower_bound": round(wall / lower, 2),
        "serial_bound_s": round(sum(bounds), 1),
        "requests": sum(r.requests for r in runs),
        "minimum": sum(r.minimum for r in runs),
        "injected_429": sum(r.injected_429 for r in runs),
        "throttled_429": sum(r.throttled_429 for r in runs),
        "slowest_tenant_wall_s": round(max(r.wall_s for r in runs), 1),
        "host_start_median_s": round(statistics.median(r.host_start_s for r in runs), 2),
        "host_start_max_s": round(max(r.host_start_s for r in runs), 2),
        "program_total_s": round(sum(r.declare_s for r in runs), 1),
        "program_wait_max_s": round(max(r.declare_wait_s for r in runs), 1),
        "host_peak_rss_mib_median": round(statistics.median(r.host_peak_rss_mib for r in runs), 1),
    }


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['tenants']} tenants ({r['policies']} policies), parallel {r['parallel']}: wall {r['wall_s']} s vs "
        f"slowest tenant's bound {r['slowest_tenant_bound_s']} s (×{r['wall_vs_slowest_bound']}); "
        f"vs max(slowest, Σbounds/P) {r['lower_bound_s']} s (×{r['wall_vs_lower_bound']}); serial bound "
        f"{r['serial_bound_s']} s; {r['succeeded']}/{r['tenants']} succeeded, converged={r['converged']}; "
        f"{r['requests']} requests vs minimum {r['minimum']} (429s: {r['injected_429']} injected, "
        f"{r['throttled_429']} rate-limited); host start median {r['host_start_median_s']} s "
        f"(max {r['host_start_max_s']} s); programs {r['program_total_s']} s in all, longest wait "
        f"{r['program_wait_max_s']} s; host peak RSS median {r['host_peak_rss_mib_median']} MiB"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 requests/s, 0.1 s pacing")
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--largest", type=int, default=15, help="policies in the largest tenant")
    parser.add_argument("--parallel", default="50,8", help="fleet parallelism values to run, comma separated")
    parser.add_argument("--throttle-probability", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rate = Rate.quick() if args.quick else Rate.real()
    print(
        f"fleet bench: interval {rate.interval_s} s, emulator {rate.rate_per_s} req/s/tenant, "
        f"random 429 p={args.throttle_probability}; {machine()}",
        flush=True,
    )
    rows = []
    for parallel in (int(p) for p in args.parallel.split(",") if p.strip()):
        rows.append(fleet_run(args.tenants, args.largest, parallel, rate, args.throttle_probability, args.seed))
        print(describe(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rate": rate.__dict__, "rows": rows}, indent=2))
    return 0 if all(r["converged"] and r["succeeded"] == r["tenants"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
