"""CPU of one `pulumi preview` of a converged client stack against an empty Python program, same CLI and venv.

Run from the repository root, after `make engine` (or with a Pulumi CLI on PATH):

    .venv-dev/bin/python bench/bench_stack_cpu.py              # 7 interleaved pairs, 20 policies
    .venv-dev/bin/python bench/bench_stack_cpu.py --pairs 9 --policies 50

Both projects run through the real CLI with a local file backend and the repository's `.venv`:

* **client**: the repository's program, a client stack (Part D) against the loopback Graph emulator, converged
  by one `pulumi up` before measuring (every policy already excludes the MSP, so a preview plans no change);
* **empty**: a `__main__.py` that only imports pulumi, its own stack with one secret config value.

Both stacks use the passphrase secrets provider, whose key derivation costs about 0.2 s of CPU in every CLI run
that decrypts anything: the client stack always does (its state holds the dynamic providers as secrets), so the
empty stack gets a secret too and both pay it (`--empty-without-secret` measures without; a real fleet's
azurekeyvault provider costs a network call instead).

CPU = user + system time of the CLI and every process below it that it waited for (the language host, the
program, the dynamic-provider host, the plugin-package listing), from `os.wait4` on the CLI's process. The runs
alternate (client, empty, then empty, client, ...) so that load from other work on the machine falls on both
sides alike; the figure is the median of the per-pair ratios, with the medians of each side. The Graph emulator
runs in this process, on the same cores: its CPU is not counted (it is not part of the user's machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.emulated_tenants import MSP, MSP_EXCLUDED, machine, policy  # noqa: E402
from emulators.clients import GRAPH_ROLES  # noqa: E402
from emulators.graph import GraphEmulator  # noqa: E402
from emulators.pulumi_project import NO_ENGINE, PulumiProject, find_cli  # noqa: E402

STACK = "client-bench"
EMPTY_STACK = "empty"
EMPTY_PROGRAM = "import pulumi  # noqa: F401  (the floor: the SDK loaded, nothing declared)\n"


@dataclass(frozen=True)
class Run:
    cpu_s: float
    wall_s: float


def measured(project: PulumiProject, *args: str) -> Run:
    """One CLI run; CPU of the CLI and its waited-for descendants (os.wait4's rusage)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(project.cli), *args],
        cwd=project.workdir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"`pulumi {' '.join(args)}` exited {process.returncode}:\n{output.decode()[-4000:]}")
    return Run(usage.ru_utime + usage.ru_stime, wall)


def client_project(cli: Path, tmp: Path, graph: GraphEmulator, policies: int) -> PulumiProject:
    tenant, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph.register_app(client_id, secret, MSP, consented_tenants=[tenant], graph_roles=GRAPH_ROLES)
    for i in range(policies):
        graph.put_policy(tenant, policy(f"client policy {i + 1:03d}", excludeGuestsOrExternalUsers=MSP_EXCLUDED))
    env = {
        "AZURE_AUTHORITY_HOST": graph.url,
        "REQUESTS_CA_BUNDLE": str(graph.ca_bundle),
        "CIPP_HARDENING_GRAPH_INTERVAL": "0",  # the emulator does not throttle here: CPU, not pacing, is measured
    }
    project = PulumiProject.create(cli, tmp / "client", env)
    project.stack_init(STACK)
    project.config_set(STACK, "mode", "client")
    project.config_set(STACK, "graphUrl", graph.url)
    project.config_set_object(STACK, "clientTenant", {"tenantId": tenant, "mspTenantId": MSP, "accessMode": "gdap"})
    project.config_set(STACK, "graphClientId", client_id)
    project.config_set(STACK, "graphClientSecret", secret, secret=True)
    return project


def empty_project(cli: Path, tmp: Path, *, with_secret: bool = True) -> PulumiProject:
    project = PulumiProject.create(cli, tmp / "empty", {})
    for entry in project.workdir.iterdir():
        entry.unlink()  # a project of its own, not the repository's program
    (project.workdir / "Pulumi.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: empty
            runtime:
              name: python
              options:
                toolchain: pip
                virtualenv: {ROOT / ".venv"}
            """
        )
    )
    (project.workdir / "__main__.py").write_text(EMPTY_PROGRAM)
    project.stack_init(EMPTY_STACK)
    if with_secret:
        project.config_set(EMPTY_STACK, "unused", "not-a-secret", secret=True)
    return project


def preview(stack: str) -> tuple[str, ...]:
    return ("preview", "--stack", stack, "--non-interactive", "--expect-no-changes")


def run(pairs: int, policies: int, *, empty_secret: bool = True) -> dict[str, Any]:
    cli = find_cli()
    if cli is None:
        raise SystemExit(NO_ENGINE)
    with GraphEmulator(seed=7) as graph, tempfile.TemporaryDirectory() as tmp:
        client = client_project(cli, Path(tmp), graph, policies)
        empty = empty_project(cli, Path(tmp), with_secret=empty_secret)
        client.run("up", "--yes", "--stack", STACK)  # adopt: every policy is recorded, nothing written
        empty.run("up", "--yes", "--stack", EMPTY_STACK)
        measured(client, *preview(STACK))  # warm-up: bytecode caches, page cache
        measured(empty, *preview(EMPTY_STACK))
        pairs_run: list[tuple[Run, Run, float]] = []
        for i in range(pairs):
            load = os.getloadavg()[0]
            if i % 2 == 0:
                c, e = measured(client, *preview(STACK)), measured(empty, *preview(EMPTY_STACK))
            else:
                e, c = measured(empty, *preview(EMPTY_STACK)), measured(client, *preview(STACK))
            pairs_run.append((c, e, load))
            print(
                f"pair {i + 1}: client {c.cpu_s:.2f} s CPU ({c.wall_s:.2f} s wall), empty {e.cpu_s:.2f} s CPU "
                f"({e.wall_s:.2f} s wall), ×{c.cpu_s / e.cpu_s:.2f}; load {load:.2f}",
                flush=True,
            )
        version = client.run("version").stdout.strip()
    ratios = [c.cpu_s / e.cpu_s for c, e, _ in pairs_run]
    return {
        "cli": version,
        "policies": policies,
        "empty_stack_has_a_secret": empty_secret,
        "pairs": [
            {"client": c.__dict__, "empty": e.__dict__, "ratio": c.cpu_s / e.cpu_s, "load1": load}
            for c, e, load in pairs_run
        ],
        "client_cpu_median_s": statistics.median(c.cpu_s for c, _, _ in pairs_run),
        "empty_cpu_median_s": statistics.median(e.cpu_s for _, e, _ in pairs_run),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "load1_median": statistics.median(load for _, _, load in pairs_run),
    }


def describe(result: dict[str, Any]) -> str:
    return (
        f"pulumi {result['cli']}, client stack of {result['policies']} policies, {len(result['pairs'])} pairs: "
        f"client {result['client_cpu_median_s']:.2f} s CPU, empty {result['empty_cpu_median_s']:.2f} s CPU "
        f"(medians); ratio median ×{result['ratio_median']:.2f} (×{result['ratio_min']:.2f}–"
        f"×{result['ratio_max']:.2f}); load average (1 min) median {result['load1_median']:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7, help="interleaved client/empty pairs (at least 5)")
    parser.add_argument("--policies", type=int, default=20, help="policies in the client tenant")
    parser.add_argument("--empty-without-secret", action="store_true", help="no secret in the empty stack")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"stack CPU bench: {machine()}", flush=True)
    result = run(args.pairs, args.policies, empty_secret=not args.empty_without_secret)
    print(describe(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
