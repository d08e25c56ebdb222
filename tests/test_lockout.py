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


# -- stated assumptions and the "cannot prove" override (docs/assurance.md) ---------------------------


def with_assumptions(**assumptions: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["assumptions"] = assumptions
    return raw


def test_the_example_states_no_legacy_mfa_trusted_ips() -> None:
    config = parse_stack_config(msp_raw())
    assert config.assumptions.legacy_mfa_trusted_ips == ()
    assert config.assumptions.cannot_prove_override is None


def test_legacy_mfa_trusted_ips_are_validated_ranges() -> None:
    config = parse_stack_config(with_assumptions(legacyMfaTrustedIps=["192.0.2.0/24", "2001:db8::/48"]))
    assert config.assumptions.legacy_mfa_trusted_ips == ("192.0.2.0/24", "2001:db8::/48")
    assert parse_stack_config(with_assumptions()).assumptions.legacy_mfa_trusted_ips is None, "absent: not stated"
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(with_assumptions(legacyMfaTrustedIps=["192.0.2.7/24", "office"], mfaTrustedIps=[]))
    keys = [p.key for p in caught.value.problems]
    assert keys == [
        "assumptions.mfaTrustedIps",
        "assumptions.legacyMfaTrustedIps[0]",
        "assumptions.legacyMfaTrustedIps[1]",
    ]
    assert "did you mean legacyMfaTrustedIps?" in str(caught.value)
    with pytest.raises(ConfigError, match=r"assumptions\.legacyMfaTrustedIps: must be a list"):
        parse_stack_config(with_assumptions(legacyMfaTrustedIps="none"))


def test_the_cannot_prove_override_needs_a_reason_and_is_logged_at_every_run() -> None:
    reason = "Part B's device filter reviewed with the security team on 2026-05-01"
    raw = with_assumptions(cannotProveOverride=reason)
    config = parse_stack_config(raw)
    assert config.assumptions.cannot_prove_override == reason
    assert any("cannotProveOverride" in w and reason in w for w in config.warnings)
    assert any(reason in message for message in run_main(raw).messages("warning"))
    with pytest.raises(ConfigError, match=r"assumptions\.cannotProveOverride: must be a non-empty string"):
        parse_stack_config(with_assumptions(cannotProveOverride=" "))


def test_client_stacks_state_assumptions_too() -> None:
    raw = {
        "mode": "client",
        "clientTenant": {
            "tenantId": "00000000-0000-0000-0000-0000000c0001",
            "mspTenantId": "00000000-0000-0000-0000-00000000a001",
        },
        "assumptions": {"legacyMfaTrustedIps": [], "cannotProveOverride": "reviewed"},
    }
    config = parse_stack_config(raw)
    assert config.assumptions.legacy_mfa_trusted_ips == ()
    assert config.warnings
