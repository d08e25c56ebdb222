"""The program's own cost: offline plan of the prod stack vs a bare `import pulumi_azuread`, and peak memory.

Run from the repository root:

    .venv-dev/bin/python bench/bench_plan.py             # 5 measured runs of each (after one warm-up)
    .venv-dev/bin/python bench/bench_plan.py --quick     # 1 run, no warm-up

Every figure is a fresh interpreter: wall time including start-up, and the child's peak RSS (ru_maxrss
from wait4). The commands are interleaved run by run so they share the machine's state; medians are
reported, and the ratio of the plan to the baseline measured in the same run.

* baseline: `python -c "import pulumi_azuread"` (what any program of this kind pays first);
* plan prod: `python -m cipp_hardening.commands.plan --stack prod` (the program under the recording mock runtime,
  the Graph bodies rendered, the plan printed to /dev/null);
* plan client, N policies: the same for a client stack whose snapshot holds N policies (195: Graph's cap);
* bootstrap: the state-backend program under mocks (pulumi-azure-native's storage and keyvault only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Only the standard library in this process: a child's ru_maxrss starts from its parent's size at fork.
from bench.machine_info import machine  # noqa: E402

PY = sys.executable
MSP = "00000000-0000-0000-0000-00000000a001"
BOOTSTRAP = """
from pathlib import Path
from cipp_hardening.offline import run_program, stack_file_config
config = stack_file_config(Path("bootstrap/Pulumi.state.yaml"), "cipp-hardening-state")
run_program(Path("bootstrap/__main__.py"), config, project="cipp-hardening-state", stack="state")
"""


def user_environment() -> dict[str, str]:
    """This process's environment as a user's shell has it: Python writes and reuses bytecode caches.

    Some machines (this workplace's among them) set PYTHONDONTWRITEBYTECODE=1; then every run compiles
    the project's own modules from source again (site-packages keep the .pyc files pip wrote), about a
    quarter of the plan's start-up, which no user pays after the first run."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def client_policy(number: int) -> dict[str, Any]:
    """A policy that needs the MSP exclusion (the shape of tests/part_d.py's `policy`)."""
    return {
        "id": str(uuid.uuid4()),
        "displayName": f"client policy {number:03d}",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"], "excludeUsers": ["00000000-0000-0000-0000-0000000000b1"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


def client_stack(folder: Path, size: int) -> list[str]:
    """A client stack file and a snapshot of `size` policies; the plan command for them."""
    policies = [client_policy(i + 1) for i in range(size)]
    (folder / "policies").mkdir()
    (folder / "policies" / "policies.json").write_text(json.dumps(policies), encoding="utf-8")
    stack_file = folder / "Pulumi.client-bench.yaml"
    tenant = {"tenantId": str(uuid.uuid4()), "mspTenantId": MSP, "accessMode": "gdap"}
    stack_file.write_text(
        json.dumps({"config": {"cipp-hardening:mode": "client", "cipp-hardening:clientTenant": tenant}}),
        encoding="utf-8",
    )
    return [
        PY,
        "-m",
        "cipp_hardening.commands.plan",
        "--stack",
        "client-bench",
        "--stack-file",
        str(stack_file),
        "--policies",
        str(folder / "policies"),
    ]


def commands(folder: Path, client_policies: int) -> dict[str, list[str]]:
    return {
        "python -c pass": [PY, "-c", "pass"],
        "import pulumi": [PY, "-c", "import pulumi"],
        "baseline: import pulumi_azuread": [PY, "-c", "import pulumi_azuread"],
        "plan prod": [
            PY,
            "-m",
            "cipp_hardening.commands.plan",
            "--stack",
            "prod",
            "--cipp-clients",
            "examples/example-cipp-clients.json",
        ],
        f"plan client, {client_policies} policies": client_stack(folder, client_policies),
        "bootstrap under mocks": [PY, "-c", BOOTSTRAP],
    }


def run(runs: int, warmup: bool, client_policies: int, bytecode_cache: bool = True) -> dict[str, Any]:
    env = user_environment() if bytecode_cache else None
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        cmds = commands(Path(tmp), client_policies)
        if warmup:
            for argv in cmds.values():
                measure(argv, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        for _ in range(runs):
            for name, argv in cmds.items():
                samples[name].append(measure(argv, env))
    rows = {
        name: {
            "wall_s": round(statistics.median(w for w, _ in values), 3),
            "wall_min_s": round(min(w for w, _ in values), 3),
            "wall_max_s": round(max(w for w, _ in values), 3),
            "peak_rss_mib": round(statistics.median(m for _, m in values), 1),
        }
        for name, values in samples.items()
    }
    baseline = rows["baseline: import pulumi_azuread"]
    prod = rows["plan prod"]
    return {
        "machine": machine(),
        "runs": runs,
        "bytecode_cache": bytecode_cache or "PYTHONDONTWRITEBYTECODE" not in os.environ,
        "rows": rows,
        "plan_vs_import_wall": round(prod["wall_s"] / baseline["wall_s"], 2),
        "plan_vs_import_rss": round(prod["peak_rss_mib"] / baseline["peak_rss_mib"], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, no warm-up")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--client-policies", type=int, default=195)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--as-this-environment",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE if set (default: measure with bytecode caches, as users run)",
    )
    args = parser.parse_args(argv)
    result = run(1 if args.quick else args.runs, not args.quick, args.client_policies, not args.as_this_environment)
    cache = "with bytecode caches" if result["bytecode_cache"] else "recompiling the project each run"
    print(f"plan bench: median of {result['runs']} fresh processes each, {cache}; {result['machine']}")
    for name, row in result["rows"].items():
        print(
            f"  {name:<34} {row['wall_s']:6.2f} s ({row['wall_min_s']:.2f}-{row['wall_max_s']:.2f})"
            f"  peak {row['peak_rss_mib']:6.1f} MiB"
        )
    print(
        f"  plan prod / import pulumi_azuread: ×{result['plan_vs_import_wall']} wall, "
        f"×{result['plan_vs_import_rss']} peak memory"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
