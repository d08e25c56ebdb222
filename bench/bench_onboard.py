"""Onboarding a whole CIPP tenant list, and the stack matrix of the workflows past GitHub's 256-job cap.

Run from the repository root:

    .venv-dev/bin/python bench/bench_onboard.py                 # 500 tenants; matrices of 100 … 5,000 stacks
    .venv-dev/bin/python bench/bench_onboard.py --tenants 2000

Onboarding: the CIPP-API emulator (real HTTPS, a real azure-identity token for the manager client) lists
N tenants in CIPP's shape: mostly GDAP, every 10th a direct tenant (two thirds of them with a service
account in the SERVICE_ACCOUNTS file), every 25th failing (60 Graph errors), one without a tenant id, the
partner tenant. `onboard_from_cipp` runs three times over a fresh project: a dry run, the first run
(writes a stack file per onboardable tenant) and a second run (writes nothing). Wall time per run is the
whole command: reading the stack files already there, the token, the listing, the plan, the writes.

Matrix: `cipp-hardening fleet-ci matrix --stacks 'client-*'` as the workflows run it (a new process, so
Python's start is included) over N stack files on disk: jobs, stacks per job, the JSON's size (a job
output may hold 1 MB), and its wall time. Then the fleet runner's own scheduling over one batch with a
stand-in runner that does nothing, to show what it costs per stack apart from `pulumi` itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.machine_info import machine  # noqa: E402
from cipp_hardening.commands.fleet import Outcome, run_fleet  # noqa: E402
from cipp_hardening.commands.onboard import SECRET_ENV, onboard_from_cipp, report_rows  # noqa: E402
from emulators.cipp import CippEmulator  # noqa: E402
from emulators.tls import make_test_tls  # noqa: E402
from service_clients import credentials  # noqa: E402

CIPP_TENANT = "7d4c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a09"
RUNNER_IP = "203.0.113.10"
MATRIX_SIZES = (100, 256, 257, 500, 1000, 5000)


def tenant_id(i: int) -> str:
    return str(uuid.UUID(int=(0x1B2C3D4E << 96) + i))


def seed(emulator: CippEmulator, count: int) -> dict[str, str]:
    """N tenants in CIPP's shape; returns the SERVICE_ACCOUNTS mapping for two thirds of the direct ones."""
    emulator.tenants.clear()
    emulator.partner_tenant_listed = True
    accounts: dict[str, str] = {}
    for i in range(count):
        domain = f"client{i:05d}.onmicrosoft.com"
        direct = i % 10 == 5
        failing = i % 25 == 24
        emulator.add_tenant(
            tenant_id(i),
            domain,
            f"Client {i:05d}",
            direct=direct,
            graph_errors=60 if failing else 0,
            last_error="AADSTS700016: application not found" if failing else "",
        )
        if direct and i % 30 != 5:
            accounts[domain] = str(uuid.UUID(int=(0xACC << 116) + i))
    emulator.tenants.append({"customerId": "", "defaultDomainName": "broken.example", "displayName": "Broken"})
    return accounts


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def onboarding(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-onboard-") as tmp:
        work = Path(tmp)
        tls = make_test_tls(work)
        with CippEmulator(tls, tenant_id=CIPP_TENANT) as emulator:
            manager, secret = str(uuid.uuid4()), f"bench-{uuid.uuid4().hex}"
            emulator.add_client(manager, "Manager", "editor", ["203.0.113.0/24"], secret=secret)
            emulator.save_to_azure()
            emulator.egress_ip = RUNNER_IP
            accounts = seed(emulator, count)
            project = work / "project"
            project.mkdir()
            write_msp_stack(project, emulator.url, manager)
            accounts_file = project / "service-accounts.yaml"
            accounts_file.write_text(yaml.safe_dump(accounts), encoding="utf-8")
            env = {
                "AZURE_AUTHORITY_HOST": emulator.url,
                "REQUESTS_CA_BUNDLE": str(tls.ca_bundle),
                SECRET_ENV: secret,
            }
            with environment(env):
                runs = {}
                for name, dry in (("dry run", True), ("first run", False), ("second run", False)):
                    credentials.reset_cache()  # every run fetches its token, as a new process would
                    started = time.perf_counter()
                    report = onboard_from_cipp(project, service_accounts_file=accounts_file, dry_run=dry)
                    wall = time.perf_counter() - started
                    counts: dict[str, int] = {}
                    for row in report_rows(report):
                        counts[row.result] = counts.get(row.result, 0) + 1
                    runs[name] = {"wall_s": round(wall, 3), "written": len(report.written), "results": counts}
            listing = [r for r in emulator.request_log if r.path == "/api/ListTenants"]
    return {
        "tenants": count,
        "runs": runs,
        "listing_bytes": len(listing[-1].response_body),
        "listing_requests": len(listing),
    }


def write_msp_stack(project: Path, url: str, manager: str) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text(encoding="utf-8"))["config"]
    config["azuread:tenantId"] = CIPP_TENANT
    config["cipp-hardening:cippApi"] = {"url": url, "managerClientId": manager}
    config.pop("cipp-hardening:scenariosFile", None)
    (project / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}), encoding="utf-8")


# -- the workflows' matrix and the fleet runner past 256 stacks -------------------------------------------
def matrix_row(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-matrix-") as tmp:
        project = Path(tmp)
        for i in range(count):
            (project / f"Pulumi.client-{i:05d}.yaml").write_text("config: {}\n", encoding="utf-8")
        command = [sys.executable, "-m", "cipp_hardening.cli", "fleet-ci", "matrix", "--stacks", "client-*"]
        started = time.perf_counter()
        out = subprocess.run(
            [*command, "--project-dir", str(project)], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        wall = time.perf_counter() - started
    include = json.loads(out)["include"]
    sizes = [len(job["stacks"].split()) for job in include]
    assert sum(sizes) == count
    return {
        "stacks": count,
        "jobs": len(include),
        "per_job": f"{min(sizes)}-{max(sizes)}" if min(sizes) != max(sizes) else str(sizes[0]),
        "json_kib": round(len(out.encode()) / 1024, 1),
        "wall_s": round(wall, 3),
    }


class NoOp:
    def run(self, stack: str, action: str, log: Any) -> Outcome:
        log(f"{action} {stack}")
        return Outcome({"same": 1}, {"managedPolicyIds": ["p"]})


def fleet_overhead(count: int, parallel: int = 8) -> dict[str, Any]:
    """run_fleet over `count` stacks with a runner that does nothing: the scheduler's own cost."""
    stacks = [f"client-{i:05d}" for i in range(count)]
    walls = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for attempt in range(3):
            started = time.perf_counter()
            results = run_fleet(stacks, "up", NoOp(), parallel=parallel, log_dir=Path(tmp) / f"logs{attempt}")
            walls.append(time.perf_counter() - started)
    assert all(r.result == "succeeded" for r in results)
    best = min(walls)
    return {
        "stacks": count,
        "parallel": parallel,
        "wall_s": round(best, 3),
        "per_stack_ms": round(best / count * 1e3, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(MATRIX_SIZES))
    args = parser.parse_args(argv)
    on = onboarding(args.tenants)
    rows = [matrix_row(n) for n in args.sizes]
    fleet = fleet_overhead(max(args.sizes))
    print(f"machine: {machine()}")
    print(f"onboarding {on['tenants']} tenants (ListTenants: {on['listing_bytes'] / 1024:.0f} KiB):")
    for name, run in on["runs"].items():
        print(f"  {name:10s} {run['wall_s']:6.2f} s  written {run['written']:4d}  {run['results']}")
    print("matrix (fleet-ci matrix, a new process):")
    for row in rows:
        print(
            f"  {row['stacks']:5d} stacks → {row['jobs']:3d} jobs × {row['per_job']:>5s} stacks, "
            f"{row['json_kib']:7.1f} KiB, {row['wall_s']:.2f} s"
        )
    print(
        f"fleet runner, no-op stacks: {fleet['stacks']} stacks in {fleet['wall_s']:.2f} s "
        f"({fleet['per_stack_ms']} ms/stack, parallel {fleet['parallel']})"
    )
    print(json.dumps({"onboarding": on, "matrix": rows, "fleet": fleet}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
