"""The lockout guard: Part A enforced only with the operators' current address inside the trusted ranges."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from cipp_hardening.offline import OfflineRunError
from tests.helpers import msp_raw, run_main


def enabled(**technician: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["technicianAccess"].update(state="enabled", **technician)
    return raw


@pytest.mark.parametrize("address", ["203.0.113.10", "2001:db8::10", "203.0.113.255"])
def test_enabled_with_the_operators_inside_registers_the_block(address: str) -> None:
    config = parse_stack_config(enabled(operatorCheckIp=address))
    assert isinstance(config, MspStack)
    assert config.technician_access.state == "enabled"
    part_a = next(
        r for r in run_main(enabled(operatorCheckIp=address)).resources if r.name == "technician-access-policy"
    )
    assert part_a.inputs["state"] == "enabled"


def test_the_refusal_says_why_and_how_to_override() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(enabled(operatorCheckIp="198.51.100.7"))
    message = str(caught.value)
    assert "198.51.100.7 is outside trustedLocation.cidrs" in message
    assert "lock the operators out" in message
    assert "technicianAccess.lockoutGuardOverride" in message


def test_a_deliberate_change_overrides_with_a_reason_and_is_logged() -> None:
    reason = "moving to the new office on 2026-06-01; break-glass tested today"
    raw = enabled(operatorCheckIp="198.51.100.7", lockoutGuardOverride=reason)
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.technician_access.lockout_guard_override == reason
    assert any("lockout guard waived" in w and reason in w for w in config.warnings)
    run = run_main(raw)
    assert any(reason in message for message in run.messages("warning"))
    assert any(r.name == "technician-access-policy" for r in run.resources)


def test_the_override_never_waives_break_glass() -> None:
    raw = enabled(lockoutGuardOverride="deliberate")
    del raw["technicianAccess"]["breakGlassUserIds"]
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert [p.key for p in caught.value.problems] == ["technicianAccess.breakGlassUserIds"]
    with pytest.raises(OfflineRunError) as failed:
        run_main(raw)
    assert failed.value.run.resources == []


def test_report_only_warns_early_about_an_address_outside() -> None:
    raw = msp_raw()
    raw["technicianAccess"]["operatorCheckIp"] = "198.51.100.7"
    config = parse_stack_config(raw)
    assert any("setting the policy to enabled will be refused" in w for w in config.warnings)


def test_the_example_stack_stays_valid() -> None:
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    assert config.technician_access.state == "enabledForReportingButNotEnforced"
