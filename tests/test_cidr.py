"""Range rules at their edges (issue 10, point 8): /0 in both families, very short prefixes, Entra's /8."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.cidr import RangeError, broad_range_note, cipp_range, entra_range
from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from tests.helpers import msp_raw

RMM = "00000000-0000-0000-0000-0000000e0002"


@pytest.mark.parametrize("everything", ["0.0.0.0/0", "::/0"])
def test_part_c_refuses_slash_zero_in_both_families(everything: str) -> None:
    # CIPP's BigInteger sign quirk makes /0 miss the upper half of either family (docs/cipp-api.md §5.6).
    with pytest.raises(RangeError, match="/0"):
        cipp_range(everything)


@pytest.mark.parametrize(
    ("entry", "warned"),
    [
        ("128.0.0.0/1", True),
        ("10.0.0.0/7", True),
        ("10.0.0.0/8", False),
        ("2000::/3", True),
        ("2000::/15", True),
        ("2001::/16", False),
        ("203.0.113.0/24", False),
    ],
)
def test_very_short_prefixes_are_warned_about(entry: str, warned: bool) -> None:
    note = broad_range_note(entry)
    assert (note is not None) is warned
    if note:
        assert "of all IPv" in note


def test_entras_slash_eight_boundary_on_both_sides() -> None:
    assert str(entra_range("10.0.0.0/8").network) == "10.0.0.0/8"
    with pytest.raises(RangeError, match="broader than /8"):
        entra_range("10.0.0.0/7")


def with_client(**client: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["cippApi"]["clients"] = [{"clientId": RMM, **client}]
    return raw


def test_the_config_refuses_ipv6_slash_zero_and_warns_on_a_slash_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(with_client(allowedRanges=["::/0"]))
    assert any("allowedRanges[0]" in p.key and "/0" in p.message for p in caught.value.problems)
    config = parse_stack_config(with_client(allowedRanges=["203.0.113.0/24", "128.0.0.0/1"]))
    assert any("allowedRanges[1]" in w and "half of all IPv4" in w for w in config.warnings)


def test_a_missing_restore_on_delete_means_leave_in_the_config() -> None:
    config = parse_stack_config(with_client(allowedRanges=["203.0.113.0/24"]))
    assert isinstance(config, MspStack)
    assert config.cipp_api is not None
    [client] = config.cipp_api.clients
    assert client.restore_on_delete is False
    assert client.allow_any_on_delete is False
