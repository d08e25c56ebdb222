"""CPU of one `pulumi preview` of a converged client stack against an empty Python program and the dynamic-provider
floor, same CLI and venv.

Run from the repository root, after `make engine` (or with a Pulumi CLI on PATH):

    .venv-dev/bin/python bench/bench_stack_cpu.py              # 7 rounds, 20 policies
    .venv-dev/bin/python bench/bench_stack_cpu.py --pairs 9 --policies 50

All three projects run through the real CLI with a local file backend and the repository's `.venv`:

* **client**: the repository's program, a client stack (Part D) against the loopback Graph emulator, converged
  by one `pulumi up` before measuring (every policy already excludes the MSP, so a preview plans no change);
* **empty**: a `__main__.py` that only imports pulumi, its own stack with one secret config value;
* **floor**: what any program pays that keeps its resources in a Python dynamic provider: the same number of
  dynamic resources as the client stack (one per policy, and the journal), served by a provider that reads
  nothing and changes nothing. The engine starts the dynamic-provider host (`python -m pulumi.dynamic`, which
  imports the whole SDK) for their Check and Diff whatever the provider does.

The stacks use the passphrase secrets provider, whose key derivation costs about 0.2 s of CPU in every CLI run
that decrypts anything: the client stack always does (its state holds the dynamic providers as secrets), so the
floor and empty stacks get a secret too and all pay it (`--empty-without-secret` measures the empty one without; a
real fleet's azurekeyvault provider costs a network call instead).

CPU = user + system time of the CLI and every process below it that it waited for (the language host, the
program, the dynamic-provider host, the plugin-package listing), from `os.wait4` on the CLI's process. Each round
runs the three previews back to back in a rotating order, so that load from other work on the machine falls on
all alike; the figures are the medians of the per-round ratios, with the medians of each program. The Graph emulator
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
FLOOR_STACK = "floor"
EMPTY_PROGRAM = "import pulumi  # noqa: F401  (the SDK loaded, nothing declared)\n"
FLOOR_PROVIDER = """\
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, Resource, ResourceProvider


class NoopProvider(ResourceProvider):
    def check(self, olds, news):
        return CheckResult(news, [])

    def diff(self, id, olds, news):
        return DiffResult(changes=olds.get("n") != news.get("n"))

    def create(self, props):
        return CreateResult(f"noop-{props['n']}", props)


class Noop(Resource):
    def __init__(self, name, n):
        super().__init__(NoopProvider(), name, {"n": n})
"""
FLOOR_PROGRAM = """\
import pulumi

from floor_provider import Noop  # a module, not __main__: pickled by reference, as ours are

for n in range(int(pulumi.Config().require("resources"))):
    Noop(f"noop-{n}", n)
"""


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


def own_project(cli: Path, tmp: Path, name: str, files: dict[str, str]) -> PulumiProject:
    """A project of its own (not the repository's program) in the repository's `.venv`."""
    project = PulumiProject.create(cli, tmp / name, {})
    for entry in project.workdir.iterdir():
        entry.unlink()
    (project.workdir / "Pulumi.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            runtime:
              name: python
              options:
                toolchain: pip
                virtualenv: {ROOT / ".venv"}
            """
        )
    )
    for file_name, text in files.items():
        (project.workdir / file_name).write_text(text)
    return project


def empty_project(cli: Path, tmp: Path, *, with_secret: bool = True) -> PulumiProject:
    project = own_project(cli, tmp, "empty", {"__main__.py": EMPTY_PROGRAM})
    project.stack_init(EMPTY_STACK)
    if with_secret:
        project.config_set(EMPTY_STACK, "unused", "not-a-secret", secret=True)
    return project


def floor_project(cli: Path, tmp: Path, resources: int) -> PulumiProject:
    project = own_project(cli, tmp, "floor", {"__main__.py": FLOOR_PROGRAM, "floor_provider.py": FLOOR_PROVIDER})
    project.stack_init(FLOOR_STACK)
    project.config_set(FLOOR_STACK, "resources", str(resources))
    project.config_set(FLOOR_STACK, "unused", "not-a-secret", secret=True)
    return project


def preview(stack: str) -> tuple[str, ...]:
    return ("preview", "--stack", stack, "--non-interactive", "--expect-no-changes")


def run(pairs: int, policies: int, *, empty_secret: bool = True) -> dict[str, Any]:
    cli = find_cli()
    if cli is None:
        raise SystemExit(NO_ENGINE)
    with GraphEmulator(seed=7) as graph, tempfile.TemporaryDirectory() as tmp:
        projects = {
            "client": (client_project(cli, Path(tmp), graph, policies), STACK),
            "floor": (floor_project(cli, Path(tmp), policies + 1), FLOOR_STACK),  # the policies and the journal
            "empty": (empty_project(cli, Path(tmp), with_secret=empty_secret), EMPTY_STACK),
        }
        for project, stack in projects.values():
            project.run("up", "--yes", "--stack", stack)  # the client adopts: every policy recorded, none written
            measured(project, *preview(stack))  # warm-up: bytecode caches, page cache
        order = list(projects)
        rounds: list[dict[str, Any]] = []
        for i in range(pairs):
            load = os.getloadavg()[0]
            rotated = order[i % 3 :] + order[: i % 3]
            runs = {name: measured(projects[name][0], *preview(projects[name][1])) for name in rotated}
            rounds.append({**runs, "load1": load})
            print(
                f"round {i + 1}: "
                + ", ".join(f"{name} {runs[name].cpu_s:.2f} s CPU ({runs[name].wall_s:.2f} s wall)" for name in order)
                + f"; client ×{runs['client'].cpu_s / runs['empty'].cpu_s:.2f}, floor "
                f"×{runs['floor'].cpu_s / runs['empty'].cpu_s:.2f} of empty; load {load:.2f}",
                flush=True,
            )
        version = projects["client"][0].run("version").stdout.strip()
    ratios = [r["client"].cpu_s / r["empty"].cpu_s for r in rounds]
    floor_ratios = [r["floor"].cpu_s / r["empty"].cpu_s for r in rounds]
    over_floor = [r["client"].cpu_s / r["floor"].cpu_s for r in rounds]
    return {
        "cli": version,
        "policies": policies,
        "empty_stack_has_a_secret": empty_secret,
        "pairs": [
            {
                **{name: r[name].__dict__ for name in order},
                "ratio": r["client"].cpu_s / r["empty"].cpu_s,
                "load1": r["load1"],
            }
            for r in rounds
        ],
        "client_cpu_median_s": statistics.median(r["client"].cpu_s for r in rounds),
        "floor_cpu_median_s": statistics.median(r["floor"].cpu_s for r in rounds),
        "empty_cpu_median_s": statistics.median(r["empty"].cpu_s for r in rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "floor_ratio_median": statistics.median(floor_ratios),
        "client_over_floor_median": statistics.median(over_floor),
        "load1_median": statistics.median(r["load1"] for r in rounds),
    }


def describe(result: dict[str, Any]) -> str:
    return (
        f"pulumi {result['cli']}, client stack of {result['policies']} policies, {len(result['pairs'])} rounds: "
        f"client {result['client_cpu_median_s']:.2f} s CPU, floor {result['floor_cpu_median_s']:.2f} s, empty "
        f"{result['empty_cpu_median_s']:.2f} s (medians); ratio median ×{result['ratio_median']:.2f} "
        f"(×{result['ratio_min']:.2f}–×{result['ratio_max']:.2f}); the floor ×{result['floor_ratio_median']:.2f} of "
        f"empty, the client ×{result['client_over_floor_median']:.2f} of the floor; load average (1 min) median "
        f"{result['load1_median']:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7, help="rounds of client, floor, empty (at least 5)")
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
