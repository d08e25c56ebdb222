"""bench/bench_onboard.py on its smallest sizes, so the script cannot rot (no timing asserted)."""

from __future__ import annotations

from bench import bench_onboard


def test_onboarding_bench_counts_add_up() -> None:
    result = bench_onboard.onboarding(30)
    first, second = result["runs"]["first run"], result["runs"]["second run"]
    assert first["written"] == first["results"]["written"] > 0
    assert second["written"] == 0
    assert second["results"]["onboarded"] == first["written"], "the second run finds every stack it wrote"
    assert result["runs"]["dry run"]["written"] == 0
    assert result["listing_requests"] == 3


def test_matrix_bench_batches_past_256() -> None:
    row = bench_onboard.matrix_row(300)
    assert (row["stacks"], row["jobs"], row["per_job"]) == (300, 150, "2")
    assert bench_onboard.fleet_overhead(20)["stacks"] == 20
