"""Canonical IP ranges for the two places this project writes them.

Entra named locations (docs/graph-ca.md §2.1, §3) and CIPP-API allowed ranges (docs/cipp-api.md §4, §11)
accept different spellings of the same network. Each writer gets one canonical form so that the
text we send is accepted and the diff against what we read back stays stable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENTRA_MIN_PREFIX = 8  # docs/graph-ca.md §3: "Only CIDR masks greater than /8"; TF/Pulumi accept /8 itself.
ENTRA_MAX_RANGES = 2000  # docs/graph-ca.md §3: IP ranges per named location.


class RangeError(ValueError):
    """A range that cannot be written as given; the message says why and, if known, what was meant."""


@dataclass(frozen=True)
class ParsedRange:
    network: IPNetwork
    note: str | None = None  # a warning worth showing, e.g. a private or documentation range


def parse_network(text: str) -> IPNetwork:
    """Parse a CIDR or a bare address strictly: host bits set is an error that names the network meant."""
    if not isinstance(text, str) or not text.strip():
        raise RangeError(f"{text!r} is not an IP address or CIDR range")
    candidate = text.strip()
    try:
        network = ipaddress.ip_network(candidate, strict=False)
    except ValueError as exc:
        raise RangeError(f"{candidate!r} is not an IP address or CIDR range ({exc})") from exc
    if "/" in candidate and ipaddress.ip_address(candidate.split("/", 1)[0]) != network.network_address:
        raise RangeError(f"{candidate!r} has host bits set; did you mean {network}?")
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        raise RangeError(f"{candidate!r} is an IPv4-mapped IPv6 range; write the IPv4 range instead")
    return network


def non_public_note(network: IPNetwork) -> str | None:
    """Why a range will never match a sign-in's public egress address, if it will not."""
    kinds = [
        ("loopback", network.is_loopback),
        ("link-local", network.is_link_local),
        ("documentation", _is_documentation(network)),
        ("private", network.is_private),
        ("reserved", network.is_reserved),
    ]
    for kind, flagged in kinds:
        if flagged:
            return f"{network} is a {kind} range: sign-ins are evaluated from public egress addresses"
    return None


def _is_documentation(network: IPNetwork) -> bool:
    documentation = (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    return any(network.version == doc.version and network.subnet_of(doc) for doc in documentation)  # type: ignore[arg-type]


def entra_range(text: str) -> ParsedRange:
    """One named-location range: network/prefix, IPv6 compressed, /8 or longer, never /0."""
    network = parse_network(text)
    if network.prefixlen == 0:
        raise RangeError(f"{text!r} is /0 (everything): a trusted location must be specific")
    if network.prefixlen < ENTRA_MIN_PREFIX:
        raise RangeError(f"{text!r} is broader than /{ENTRA_MIN_PREFIX}, which Entra does not accept")
    return ParsedRange(network, non_public_note(network))


def cipp_range(text: str) -> str:
    """One CIPP-API allowed range in the only spelling CIPP's regex and matcher both handle.

    docs/cipp-api.md §11: IPv4 as network/prefix (bare for /32); IPv6 fully expanded, no '::' (CIPP rejects
    compressed IPv6 with a warning and drops it); /0 refused (the BigInteger sign quirk of §5.6 makes
    0.0.0.0/0 miss half the Internet; `[Any]` is the way to say every address).
    """
    network = parse_network(text)
    if network.prefixlen == 0:
        raise RangeError(f"{text!r} is /0: CIPP mismatches /0 (docs/cipp-api.md §5.6); [Any] means every address")
    if isinstance(network, ipaddress.IPv4Network):
        return str(network.network_address) if network.prefixlen == 32 else str(network)
    address = network.network_address.exploded
    return address if network.prefixlen == 128 else f"{address}/{network.prefixlen}"


# Prefixes shorter than these cover a sizeable share of the Internet (a /7 is 1/128 of all IPv4): an
# allow-list that broad is close to Any, which is almost never what was meant.
BROAD_IPV4_PREFIX = 8
BROAD_IPV6_PREFIX = 16


def broad_range_note(text: str) -> str | None:
    """A warning for a range so short that it means nearly everyone (e.g. /1, or IPv6 shorter than /16)."""
    network = parse_network(text)
    limit = BROAD_IPV4_PREFIX if isinstance(network, ipaddress.IPv4Network) else BROAD_IPV6_PREFIX
    if 0 < network.prefixlen < limit:
        share = f"1/{2**network.prefixlen}" if network.prefixlen > 1 else "half"
        return f"{network} is shorter than /{limit}: it allows {share} of all IPv{network.version} addresses"
    return None


def dedupe(items: list[str]) -> tuple[list[str], list[str]]:
    """Keep first occurrences in order; also return the repeated items."""
    seen: set[str] = set()
    kept: list[str] = []
    repeated: list[str] = []
    for item in items:
        if item in seen:
            repeated.append(item)
        else:
            seen.add(item)
            kept.append(item)
    return kept, repeated
