"""Each benchmark of BENCHMARKS.md on its smallest size, so the scripts cannot rot. No timing is asserted:
the figures themselves come from `make bench` (see BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from bench import bench_evaluator, bench_fleet, bench_part_c_window, bench_part_d, bench_plan, bench_reconcile
from bench.emulated_tenants import Rate

pytestmark = pytest.mark.e2e

# The emulator's limit well above the client's pacing: no rate-limit 429 can slow the smoke run down.
FAST = Rate(interval_s=0.02, rate_per_s=200.0)


def test_part_d_bench_one_policy() -> None:
    [row] = bench_part_d.run([1], FAST, throttle_probability=0.0, seed=1)
    assert row["converged"] is True
    assert row["minimum"] == 4, "one paged list + a fresh GET, a PATCH and a confirming GET"
    assert row["requests"] >= row["minimum"]
    assert row["writes"] == 1
    assert row["max_requests_per_policy"] <= 3
    assert row["converged_up"]["writes"] == 0
    assert row["converged_up"]["requests"] == 1, "a converged tenant: one paged list, nothing else"
    assert "policies:" in bench_part_d.format_row(row)


def test_fleet_bench_two_tenants() -> None:
    row = bench_fleet.fleet_run(2, 1, 2, FAST, 0.0, 1)
    assert row["succeeded"] == 2
    assert row["converged"] is True
    assert row["requests"] >= row["minimum"] > 0
    assert "2 tenants" in bench_fleet.describe(row)
    assert bench_fleet.tenant_sizes(5, 3) == [1, 2, 3, 1, 2]


def test_plan_bench_one_run() -> None:
    result = bench_plan.run(runs=1, warmup=False, client_policies=1)
    assert set(result["rows"]) >= {"baseline: import pulumi_azuread", "plan prod", "plan client, 1 policies"}
    assert result["plan_vs_import_wall"] > 0
    assert all(row["peak_rss_mib"] > 0 for row in result["rows"].values())


def test_evaluator_bench_short_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench_evaluator, "RUN_SECONDS", 0.05)
    monkeypatch.setattr(bench_evaluator, "RUNS", 1)
    assert bench_evaluator.main() == 0
    assert "evals/s" in capsys.readouterr().out


def test_reconcile_bench_three_tenants() -> None:
    row = bench_reconcile.reconcile(3, 2, FAST, 0.2, 1)
    _adopted, converged, drifted = row["passes"]
    assert all(p["converged"] and p["succeeded"] == 3 for p in row["passes"])
    assert (converged["requests"], converged["writes"], converged["changes"]) == (3, 0, {})
    assert drifted["writes"] == row["drifted"] >= 1
    assert drifted["requests"] >= 3 + 3 * row["drifted"]
    assert "tenants" in bench_reconcile.describe(row)


def test_part_c_window_bench_few_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_AUTHORITY_HOST", "REQUESTS_CA_BUNDLE", "CIPP_API_MANAGER_SECRET"):
        monkeypatch.setenv(name, "")  # the bench sets them for its emulator; monkeypatch puts them back
    result = bench_part_c_window.measure(4)
    assert result["writes"] == 4, "every write comes right after its own List"
    assert result["gap"]["min"] >= 0
