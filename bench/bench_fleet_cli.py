"""A fleet of client stacks through `make fleet` and the real Pulumi CLI, converged and with 1 % drift.

Run from the repository root, after `make engine` (or with a Pulumi CLI on PATH):

    .venv-dev/bin/python bench/bench_fleet_cli.py                  # 50 stacks, PARALLEL=8, real rate (~10 min)
    .venv-dev/bin/python bench/bench_fleet_cli.py --stacks 5 --quick

Unlike bench_fleet.py / bench_reconcile.py (the program under mocks in this process), every stack here is a
`pulumi up` of the repository's program through the Automation API, as `make fleet ACTION=up` runs it: the CLI,
the language host, the program, the dynamic-provider host. The client tenants are one loopback Graph emulator
with Graph's Conditional Access limit (1 request/s per tenant, 429 without Retry-After); the Graph client paces
each tenant at 1.05 s (BENCHMARKS.md §3). The stack files are written as `onboard-clients` writes them and the
fleet creates the stacks (SECRETS_PROVIDER=passphrase, a local file backend).

Passes: adoption (the first `up`; every policy already excludes the MSP, so nothing is written), converged (the
same again), then 1 % of the policies (at least one) lose the MSP exclusion in the "portal" and a third pass
repairs them. Each pass reports its wall time, the Conditional Access requests and 429s the emulator saw, the
writes, the CPU of `make fleet` and everything below it (os.wait4), and the load average around it.

Bound: each tenant needs (its requests, 429s included) × 1 s at 1 request/s; with P stacks at a time the fleet
cannot beat max(slowest tenant's bound, Σ bounds / P). On a 2-core machine the CPU of the per-stack processes is
the other floor: CPU seconds / 2.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.emulated_tenants import CA_PATH, MSP, MSP_EXCLUDED, Rate, machine, policy  # noqa: E402
from cipp_hardening.exclusion import msp_is_excluded  # noqa: E402
from emulators.clients import GRAPH_ROLES  # noqa: E402
from emulators.graph import GraphEmulator  # noqa: E402
from emulators.pulumi_project import NO_ENGINE, PulumiProject, find_cli  # noqa: E402


def tenant_sizes(count: int, largest: int) -> list[int]:
    """The spread of bench_fleet.py: 1..largest policies per tenant."""
    return [1 + (i * 7) % largest for i in range(count)]


def stack_file(graph_url: str, tenant: str) -> str:
    """A client stack file as `onboard-clients` writes it (no secret: the app's secret is in the environment)."""
    return (
        "config:\n"
        "  cipp-hardening:mode: client\n"
        f"  cipp-hardening:graphUrl: {graph_url}\n"
        "  cipp-hardening:clientTenant:\n"
        f"    tenantId: {tenant}\n"
        f"    mspTenantId: {MSP}\n"
        "    accessMode: gdap\n"
    )


def make_fleet(project: PulumiProject, parallel: int, *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`make fleet ACTION=up` over every client stack; returns the result and the CPU of it and its children."""
    process = subprocess.Popen(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "fleet",
            "ACTION=up",
            f"PROJECT_DIR={project.workdir}",
            f"PARALLEL={parallel}",
            *extra,
        ],
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess(process.args, returncode, output, ""), usage.ru_utime + usage.ru_stime


def drift(graph: GraphEmulator, tenants: Sequence[str], fraction: float, seed: int) -> list[tuple[str, str]]:
    """Remove the MSP exclusion from `fraction` of all policies (at least one), as a portal edit would."""
    every = [(t, p["id"]) for t in tenants for p in graph.policies(t)]
    chosen = random.Random(seed).sample(every, max(1, round(len(every) * fraction)))
    for tenant, policy_id in chosen:
        edited = graph.get_policy(tenant, policy_id)
        edited["conditions"]["users"].pop("excludeGuestsOrExternalUsers", None)
        graph.put_policy(tenant, edited)
    return chosen


def measure_pass(
    name: str, graph: GraphEmulator, project: PulumiProject, tenants: Sequence[str], parallel: int, rate: Rate
) -> dict[str, Any]:
    since, load_before, started = time.time(), os.getloadavg()[0], time.monotonic()
    result, cpu = make_fleet(project, parallel)
    wall = time.monotonic() - started
    records = [r for r in graph.requests(path_contains=CA_PATH) if r.received >= since or r.time >= since]
    per_tenant = Counter(r.tenant for r in records)
    bounds = [per_tenant.get(t, 0) / rate.rate_per_s for t in tenants]
    last = json.loads((project.workdir / ".fleet" / "last-run.json").read_text())
    outcomes = Counter(record["result"] for record in last["stacks"].values())
    converged = all(msp_is_excluded(p["conditions"]["users"], MSP) for t in tenants for p in graph.policies(t))
    row = {
        "pass": name,
        "stacks": len(tenants),
        "parallel": parallel,
        "exit": result.returncode,
        "succeeded": outcomes.get("succeeded", 0),
        "converged": converged,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cpu_per_stack_s": round(cpu / len(tenants), 2),
        "requests": len(records),
        "writes": sum(r.method == "PATCH" and r.status < 400 for r in records),
        "throttled_429": sum(r.status == 429 and not r.fault for r in records),
        "slowest_tenant_bound_s": round(max(bounds), 1),
        "request_bound_s": round(max(max(bounds), sum(bounds) / parallel), 1),
        "cpu_bound_s": round(cpu / (os.cpu_count() or 1), 1),
        "load1_before": round(load_before, 2),
        "load1_after": round(os.getloadavg()[0], 2),
    }
    if result.returncode != 0:
        row["output_tail"] = result.stdout[-3000:]
    return row


def run(stacks: int, largest: int, parallel: int, rate: Rate, drift_fraction: float, seed: int) -> list[dict[str, Any]]:
    cli = find_cli()
    if cli is None:
        raise SystemExit(NO_ENGINE)
    sizes = tenant_sizes(stacks, largest)
    with GraphEmulator(seed=seed) as graph, tempfile.TemporaryDirectory() as tmp:
        tenants = [str(uuid.uuid4()) for _ in sizes]
        client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
        graph.register_app(client_id, secret, MSP, consented_tenants=tenants, graph_roles=GRAPH_ROLES)
        for tenant, size in zip(tenants, sizes, strict=True):
            for i in range(size):
                graph.put_policy(
                    tenant, policy(f"client policy {i + 1:03d}", excludeGuestsOrExternalUsers=MSP_EXCLUDED)
                )
        graph.set_throttle(True, rate_per_s=rate.rate_per_s, burst=1.0)
        env = {
            "AZURE_AUTHORITY_HOST": graph.url,
            "AZURE_CLIENT_ID": client_id,
            "AZURE_CLIENT_SECRET": secret,
            "REQUESTS_CA_BUNDLE": str(graph.ca_bundle),
            "CIPP_HARDENING_GRAPH_INTERVAL": str(rate.interval_s),
        }
        project = PulumiProject.create(cli, Path(tmp), env)
        for i, tenant in enumerate(tenants):
            (project.workdir / f"Pulumi.client-{i:03d}.yaml").write_text(stack_file(graph.url, tenant))
        rows = []
        # The first run creates the stacks (as after `make onboard-clients`), then adopts every policy.
        started = time.monotonic()
        created, cpu = make_fleet(project, parallel, "SECRETS_PROVIDER=passphrase")
        print(f"adoption: exit {created.returncode}, {time.monotonic() - started:.1f} s, {cpu:.1f} s CPU", flush=True)
        if created.returncode != 0:
            raise SystemExit(created.stdout[-4000:])
        for name in ("converged", "drifted"):
            if name == "drifted":
                changed = drift(graph, tenants, drift_fraction, seed)
                print(f"drift: {len(changed)} policies lost the MSP exclusion", flush=True)
            time.sleep(rate.interval_s)  # the tenants' rate-limit windows pass, as between nightly runs
            rows.append(measure_pass(name, graph, project, tenants, parallel, rate))
            rows[-1]["policies"] = sum(sizes)
            if name == "drifted":
                rows[-1]["drifted_policies"] = len(changed)
            print(describe(rows[-1]), flush=True)
        rows.append({"version": project.run("version").stdout.strip()})
    return rows


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['pass']}: {r['stacks']} stacks ({r.get('policies', '?')} policies), PARALLEL={r['parallel']}: "
        f"exit {r['exit']}, {r['succeeded']}/{r['stacks']} succeeded, converged={r['converged']}; "
        f"wall {r['wall_s']} s; "
        f"{r['requests']} requests ({r['throttled_429']} rate-limited 429s), {r['writes']} writes; request bound "
        f"{r['request_bound_s']} s (slowest tenant {r['slowest_tenant_bound_s']} s); CPU {r['cpu_s']} s "
        f"({r['cpu_per_stack_s']} s per stack, CPU bound {r['cpu_bound_s']} s); load {r['load1_before']} → "
        f"{r['load1_after']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stacks", type=int, default=50)
    parser.add_argument("--largest", type=int, default=15, help="policies in the largest tenant")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--drift", type=float, default=0.01, help="fraction of policies drifted before the last pass")
    parser.add_argument("--quick", action="store_true", help="10 requests/s and 0.105 s pacing")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rate = Rate.quick() if args.quick else Rate.real()
    print(f"fleet CLI bench: {machine()}; interval {rate.interval_s} s, {rate.rate_per_s} req/s/tenant", flush=True)
    rows = run(args.stacks, args.largest, args.parallel, rate, args.drift, args.seed)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rate": rate.__dict__, "rows": rows}, indent=2))
    return 0 if all(r.get("exit", 0) == 0 and r.get("converged", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
