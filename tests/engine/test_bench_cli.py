"""The real-CLI benchmarks of BENCHMARKS.md §9–10 on their smallest size, so the scripts cannot rot. No timing is
asserted: the figures come from running the scripts themselves."""

from __future__ import annotations

from pathlib import Path

from bench import bench_fleet_cli, bench_stack_cpu
from bench.emulated_tenants import Rate


def test_stack_cpu_bench_one_pair(pulumi_cli: Path) -> None:
    result = bench_stack_cpu.run(pairs=1, policies=1)
    [pair] = result["pairs"]
    assert pair["client"]["cpu_s"] > 0
    assert pair["empty"]["cpu_s"] > 0
    assert "ratio median" in bench_stack_cpu.describe(result)


def test_fleet_cli_bench_two_stacks(pulumi_cli: Path) -> None:
    rows = bench_fleet_cli.run(2, 2, 2, Rate.quick(), 0.5, seed=1)
    converged, drifted, _version = rows
    assert (converged["exit"], converged["succeeded"], converged["requests"], converged["writes"]) == (0, 2, 2, 0)
    assert drifted["exit"] == 0
    assert drifted["converged"]
    assert drifted["writes"] == drifted["drifted_policies"] >= 1
    assert "requests" in bench_fleet_cli.describe(converged)
