"""The window in which a portal edit of the key Part D writes can be lost (docs/part-d.md "Concurrent edits").

Graph has no ETag (docs/graph-ca.md §1.1), so between the provider's fresh GET and its PATCH an edit to the
same key of `conditions.users` is overwritten. This measures that window as the Graph emulator sees it: the
time from answering the GET to receiving the PATCH, for policies written by `--parallel` threads at once (the
engine runs 8 steps at once in one provider host by default) at the real pacing (1.05 s a request per tenant,
CIPP_HARDENING_GRAPH_INTERVAL to change it).

    .venv-dev/bin/python bench/bench_write_window.py [--policies 10] [--parallel 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_plan import client_policy
from dynamic_providers.ca_exclusion import CaExclusionProvider
from emulators.clients import GRAPH_ROLES, graph_client_env
from emulators.graph import GraphEmulator
from service_clients.graph_client import DEFAULT_INTERVAL_S

MSP = "00000000-0000-0000-0000-00000000a001"


def measure(policies: int, interval: float, parallel: int = 1) -> dict[str, float]:
    tenant, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
    with GraphEmulator() as graph:
        graph.register_app(client_id, secret, MSP, consented_tenants=[tenant], graph_roles=GRAPH_ROLES)
        os.environ.update(graph_client_env(graph.url, graph.ca_bundle, client_id, secret, str(interval)))
        ids = [graph.put_policy(tenant, client_policy(i)) for i in range(policies)]
        graph.clear_log()
        provider = CaExclusionProvider()

        def write(pid: str) -> None:
            provider.create(
                {
                    "tenantId": tenant,
                    "graphUrl": graph.url,
                    "policyId": pid,
                    "accessMode": "gdap",
                    "mspTenantId": MSP,
                    "displayName": pid,
                    "onConflict": "report",
                }
            )

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(write, ids))
        windows = []
        for pid in ids:
            log = [r for r in graph.requests(tenant=tenant) if r.path.endswith(pid)]
            get_time = next(r.time for r in log if r.method == "GET")
            patch_time = next(r.time for r in log if r.method == "PATCH")
            windows.append(patch_time - get_time)
    return {
        "policies": policies,
        "parallel": parallel,
        "interval_s": interval,
        "window_median_s": round(statistics.median(windows), 3),
        "window_max_s": round(max(windows), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=8, help="writes at once (the engine's default: 8)")
    args = parser.parse_args()
    interval = float(os.environ.get("CIPP_HARDENING_GRAPH_INTERVAL", DEFAULT_INTERVAL_S))
    print(json.dumps(measure(args.policies, interval, args.parallel)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
