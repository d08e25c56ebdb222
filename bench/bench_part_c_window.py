"""Part C: how long an administrator's edit can be lost to a range write (docs/part-c.md "The remaining window").

Run from the repository root:

    .venv-dev/bin/python bench/bench_part_c_window.py              # 200 writes
    .venv-dev/bin/python bench/bench_part_c_window.py --writes 20

AddUpdate replaces Role, Enabled and MCPAllowed with what Part C read just before, and CIPP keeps no
version to check: an edit that lands between that read and the write is overwritten. The provider
(dynamic_providers/cipp_api_client_ranges.py, its `create`) runs against the CIPP-API emulator over real
HTTPS with a real azure-identity token, alternating two range sets so that every call writes. The
emulator stamps each request when it arrives and when its answer is ready (RequestRecord.received and
.answered), so the window measured is the one CIPP sees: from the moment List's answer was ready to the
moment the AddUpdate that merged it arrived. It excludes CIPP's own time inside AddUpdate before the row
is written (New-CIPPAPIConfig's Graph calls, seconds on a real CIPP, none in the emulator): that part is
reported as "AddUpdate in CIPP" for the emulator only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine_info import machine  # noqa: E402
from dynamic_providers.cipp_api_client_ranges import SECRET_ENV, CippApiClientRangesProvider  # noqa: E402
from emulators.cipp import CippEmulator, RequestRecord  # noqa: E402
from emulators.tls import make_test_tls  # noqa: E402
from service_clients import credentials  # noqa: E402

CIPP_TENANT = "00000000-0000-0000-0000-00000000a001"
RUNNER_IP = "203.0.113.10"
RANGE_SETS = (["203.0.113.0/24"], ["203.0.113.0/24", "198.51.100.0/24"])


def is_action(record: RequestRecord, action: str) -> bool:
    return record.query.get("action", "").lower() == action.lower() or f'"Action": "{action}"' in record.body


def windows(log: Sequence[RequestRecord]) -> list[tuple[float, float]]:
    """(List answered → AddUpdate arrived, AddUpdate in CIPP) in ms, for every AddUpdate right after a List."""
    found = []
    for before, write in itertools.pairwise(log):
        if is_action(write, "AddUpdate") and is_action(before, "List"):
            found.append(((write.received - before.answered) * 1000, (write.answered - write.received) * 1000))
    return found


def measure(writes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        tls = make_test_tls(Path(work))
        with CippEmulator(tls, tenant_id=CIPP_TENANT) as emulator:
            manager, rmm, secret = str(uuid.uuid4()), str(uuid.uuid4()), f"bench-{uuid.uuid4().hex}"
            emulator.add_client(manager, "Manager", "editor", ["203.0.113.0/24"], secret=secret)
            emulator.add_client(rmm, "RMM", "readonly", ["192.0.2.7"], mcp_allowed=False)
            emulator.save_to_azure()
            emulator.egress_ip = RUNNER_IP
            os.environ.update(
                {"AZURE_AUTHORITY_HOST": emulator.url, "REQUESTS_CA_BUNDLE": str(tls.ca_bundle), SECRET_ENV: secret}
            )
            credentials.reset_cache()
            provider = CippApiClientRangesProvider()
            base = {
                "url": emulator.url,
                "tenantId": CIPP_TENANT,
                "managerClientId": manager,
                "clientId": rmm,
                "allowSelfUpdate": False,
                "restoreOnDelete": False,
                "allowAnyOnDelete": False,
            }
            for index in range(writes):
                provider.create({**base, "allowedRanges": RANGE_SETS[index % 2]})
            measured = windows(emulator.request_log)
    gaps, inside = [gap for gap, _ in measured], [cost for _, cost in measured]
    return {"writes": len(measured), "gap": summary(gaps), "inside": summary(inside)}


def summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
        "min": ordered[0],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args(argv)
    print(machine())
    result = measure(args.writes)
    gap, inside = result["gap"], result["inside"]
    print(f"{result['writes']} range writes through the provider against the CIPP-API emulator")
    print(
        f"List answered → AddUpdate arrived: median {gap['median']:.2f} ms, p95 {gap['p95']:.2f} ms, "
        f"max {gap['max']:.2f} ms (min {gap['min']:.2f} ms)"
    )
    print(
        f"AddUpdate in CIPP (emulator, no Graph latency): median {inside['median']:.2f} ms, max {inside['max']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
