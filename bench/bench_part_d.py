"""Part D on one client tenant: 1, 20 and 195 policies at the Conditional Access limit, random 429s.

Run from the repository root:

    .venv-dev/bin/python bench/bench_part_d.py             # real rate, 1 request/s per tenant (~12 min)
    .venv-dev/bin/python bench/bench_part_d.py --quick     # 10 requests/s and 0.1 s pacing, 1 and 20 policies

Each size is a fresh tenant whose policies all need the MSP exclusion, applied like a first `pulumi up`
(program + real provider host, see bench/emulated_tenants.py), then applied again once converged. Reported:
requests made vs the minimum (one paged list + a fresh GET, a PATCH and a confirming GET per policy), 429s, the
most requests one policy took, wall time vs the throttle bound (requests × 1 s at 1 request/s), convergence,
and the converged tenant's cost (requests, writes).

--quick scales the pacing and the emulator's limit by 10, not the Graph client's retry backoff (1 s plus
jitter, then doubling): request counts and requests-vs-minimum compare with the real rate, wall time
ratios do not (every 429 costs ten slots instead of one or two).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.emulated_tenants import Lab, Rate, TenantRun, machine  # noqa: E402

DEFAULT_SIZES = (1, 20, 195)
QUICK_SIZES = (1, 20, 195)  # the backoff scales with the pacing interval, so quick mode keeps every ratio


def run(sizes: Sequence[int], rate: Rate, throttle_probability: float, seed: int) -> list[dict[str, Any]]:
    rows = []
    with Lab(rate, throttle_probability=throttle_probability, seed=seed) as lab:
        tenants = lab.open_tenants(sizes)
        for tenant, size in zip(tenants, sizes, strict=True):
            first, again = lab.apply(tenant, size, again=True)
            assert again is not None
            rows.append(row(first, again, rate))
            print(format_row(rows[-1]), flush=True)
    return rows


def row(first: TenantRun, again: TenantRun, rate: Rate) -> dict[str, Any]:
    bound = first.bound_s(rate)
    return {
        "policies": first.policies,
        "requests": first.requests,
        "minimum": first.minimum,
        "requests_vs_minimum": round(first.requests / first.minimum, 3),
        "injected_429": first.injected_429,
        "throttled_429": first.throttled_429,
        "writes": first.writes,
        "max_requests_per_policy": first.max_per_policy,
        "wall_s": round(first.wall_s, 2),
        "graph_s": round(first.graph_s, 2),
        "bound_s": round(bound, 2),
        "wall_vs_bound": round(first.wall_s / bound, 3) if bound else None,
        "converged": first.converged,
        "ops": first.ops,
        "host_peak_rss_mib": round(first.host_peak_rss_mib, 1),
        "converged_up": {"requests": again.requests, "writes": again.writes, "ops": again.ops},
    }


def format_row(r: dict[str, Any]) -> str:
    again = r["converged_up"]
    return (
        f"{r['policies']:>4} policies: {r['requests']} requests vs minimum {r['minimum']} "
        f"(×{r['requests_vs_minimum']}; 429s: {r['injected_429']} injected, {r['throttled_429']} rate-limited), "
        f"{r['writes']} writes, ≤{r['max_requests_per_policy']} requests/policy, "
        f"wall {r['wall_s']} s vs bound {r['bound_s']} s (×{r['wall_vs_bound']}), converged={r['converged']}; "
        f"host peak {r['host_peak_rss_mib']} MiB | converged tenant: {again['requests']} requests, "
        f"{again['writes']} writes"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 requests/s, 0.1 s pacing (same ratios)")
    parser.add_argument("--sizes", help="policy counts, comma separated (default 1,20,195; --quick: 1,20)")
    parser.add_argument("--throttle-probability", type=float, default=0.05, help="random 429s (default 0.05)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--interval", type=float, help="client pacing in seconds (default: the rate's own)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    rate = Rate.quick() if args.quick else Rate.real()
    if args.interval is not None:
        rate = Rate(args.interval, rate.rate_per_s)
    default = QUICK_SIZES if args.quick else DEFAULT_SIZES
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] if args.sizes else list(default)
    print(
        f"Part D bench: interval {rate.interval_s} s, emulator {rate.rate_per_s} req/s/tenant, "
        f"random 429 p={args.throttle_probability} seed={args.seed}; {machine()}",
        flush=True,
    )
    rows = run(sizes, rate, args.throttle_probability, args.seed)
    if args.json:
        document = {"machine": machine(), "rate": rate.__dict__, "p429": args.throttle_probability, "rows": rows}
        args.json.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 0 if all(r["converged"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
