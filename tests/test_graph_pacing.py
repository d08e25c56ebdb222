"""The Graph client's per-tenant pacing (Conditional Access allows about 1 request/s per tenant)."""

from __future__ import annotations

import time

import pytest

from service_clients.graph_client import TenantPacer, pacer_for


def test_turns_are_one_interval_apart() -> None:
    pacer = TenantPacer(0.05)
    started = time.monotonic()
    for _ in range(3):
        pacer.wait_turn()
    assert time.monotonic() - started >= 0.1  # the first turn is free, the next two wait


def test_a_request_another_process_just_sent_delays_the_first_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider host starts right after the program listed the tenant from the language host."""
    monkeypatch.setenv("CIPP_HARDENING_GRAPH_INTERVAL", "0.2")
    fresh = pacer_for("https://graph.example", "tenant-after-program", after_another_process=True)
    started = time.monotonic()
    fresh.wait_turn()
    assert time.monotonic() - started >= 0.19
    again = pacer_for("https://graph.example", "tenant-after-program", after_another_process=True)
    assert again is fresh, "one pacer per tenant and process: only the first turn of the process waits"
    alone = pacer_for("https://graph.example", "tenant-first-in-line")
    started = time.monotonic()
    alone.wait_turn()
    assert time.monotonic() - started < 0.1
