"""cidr.py's edges that tests/test_cidr.py leaves open (issue 25's surviving mutants): which kind of
non-public range a note names, /0 against the /8 floor, the bare /128, the broad-range share, the range cap."""

from __future__ import annotations

import dataclasses

import pytest

from cipp_hardening.cidr import (
    ENTRA_MAX_RANGES,
    RangeError,
    broad_range_note,
    cipp_range,
    entra_range,
    non_public_note,
)
from cipp_hardening.config import ConfigError, parse_stack_config
from tests.helpers import msp_raw


@pytest.mark.parametrize(
    ("cidr", "kind"),
    [
        ("198.51.100.0/24", "documentation"),
        ("2001:db8:1::/48", "documentation"),
        ("10.0.0.0/8", "private"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
    ],
)
def test_the_note_names_the_kind_of_range(cidr: str, kind: str) -> None:
    note = entra_range(cidr).note
    assert note == f"{cidr} is a {kind} range: sign-ins are evaluated from public egress addresses"


def test_a_public_range_has_no_note() -> None:
    assert non_public_note(entra_range("8.8.8.0/24").network) is None


def test_host_bits_name_the_network_meant() -> None:
    with pytest.raises(RangeError, match=r"has host bits set; did you mean 203\.0\.113\.0/24\?"):
        entra_range("203.0.113.5/24")


@pytest.mark.parametrize(("cidr", "message"), [("0.0.0.0/0", "is /0"), ("::/0", "is /0"), ("8.0.0.0/7", "/8")])
def test_entra_refuses_zero_and_anything_broader_than_slash_8(cidr: str, message: str) -> None:
    with pytest.raises(RangeError, match=message):
        entra_range(cidr)
    assert entra_range("8.0.0.0/8").network.prefixlen == 8


def test_cipp_refuses_zero_naming_any() -> None:
    with pytest.raises(RangeError, match=r"\[Any\] means every address"):
        cipp_range("0.0.0.0/0")
    assert cipp_range("128.0.0.0/1") == "128.0.0.0/1"


def test_cipp_writes_a_single_ipv6_host_bare_and_networks_with_their_prefix() -> None:
    assert cipp_range("2001:db8::1/128") == "2001:0db8:0000:0000:0000:0000:0000:0001"
    assert cipp_range("2001:db8::/127") == "2001:0db8:0000:0000:0000:0000:0000:0000/127"
    assert cipp_range("203.0.113.7/32") == "203.0.113.7"


@pytest.mark.parametrize(
    ("cidr", "note"),
    [
        ("0.0.0.0/0", None),
        ("128.0.0.0/1", "128.0.0.0/1 is shorter than /8: it allows half of all IPv4 addresses"),
        ("64.0.0.0/2", "64.0.0.0/2 is shorter than /8: it allows 1/4 of all IPv4 addresses"),
        ("2.0.0.0/7", "2.0.0.0/7 is shorter than /8: it allows 1/128 of all IPv4 addresses"),
        ("8.0.0.0/8", None),
        ("2000::/3", "2000::/3 is shorter than /16: it allows 1/8 of all IPv6 addresses"),
        ("2001::/16", None),
    ],
)
def test_broad_range_notes(cidr: str, note: str | None) -> None:
    assert broad_range_note(cidr) == note


def test_a_parsed_range_is_frozen() -> None:
    parsed = entra_range("8.8.8.0/24")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.note = "changed"  # type: ignore[misc]


def _with_cidrs(count: int) -> dict[str, object]:
    raw = msp_raw()
    cidrs = [f"{8 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24" for i in range(count)]
    raw["trustedLocation"] = {**raw["trustedLocation"], "cidrs": cidrs}
    return raw


ENTRA_CAP = 2000  # docs/graph-ca.md §3: IP ranges per named location, written out so a changed constant fails


def test_a_named_location_holds_at_most_the_entra_cap() -> None:
    assert ENTRA_MAX_RANGES == ENTRA_CAP
    parse_stack_config(_with_cidrs(ENTRA_CAP))
    with pytest.raises(ConfigError, match=f"has {ENTRA_CAP + 1} ranges; a named location holds at most {ENTRA_CAP}"):
        parse_stack_config(_with_cidrs(ENTRA_CAP + 1))
