"""The catalogue of bad configurations: each fails with one clear message naming the key, and the
program registers nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from cipp_hardening.offline import OfflineRunError
from tests.helpers import BREAK_GLASS_1, SERVICE_ACCOUNT, TECH_GROUP, msp_raw, promotion_record, run_main

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = raw
        for part in parents:
            target = target[part]
        target[leaf] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = raw
        for part in parents:
            target = target[part]
        del target[leaf]

    return mutate


def _all(*mutations: Mutation) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(raw)

    return mutate


CIDRS = "trustedLocation.cidrs"
TECH = "technicianAccess"
PROMOTED = f"{TECH}.promotedAfter"
ENABLED = _set(f"{TECH}.state", "enabled")


# (id, mutation, key named in the error, fragment of the message)
CATALOGUE: list[tuple[str, Mutation, str, str]] = [
    ("no break-glass", _delete(f"{TECH}.breakGlassUserIds"), f"{TECH}.breakGlassUserIds", "is required while"),
    ("empty break-glass", _set(f"{TECH}.breakGlassUserIds", []), f"{TECH}.breakGlassUserIds", "locks every"),
    ("malformed cidr", _set(CIDRS, ["203.0.113.0/33"]), f"{CIDRS}[0]", "not an IP address or CIDR"),
    ("not an ip at all", _set(CIDRS, ["office"]), f"{CIDRS}[0]", "not an IP address or CIDR"),
    ("host bits set", _set(CIDRS, ["203.0.113.7/24"]), f"{CIDRS}[0]", "did you mean 203.0.113.0/24"),
    ("ipv6 host bits", _set(CIDRS, ["2001:db8::1/32"]), f"{CIDRS}[0]", "did you mean 2001:db8::/32"),
    ("ipv4 below /8", _set(CIDRS, ["64.0.0.0/7"]), f"{CIDRS}[0]", "broader than /8"),
    ("ipv6 below /8", _set(CIDRS, ["2000::/4"]), f"{CIDRS}[0]", "broader than /8"),
    ("slash zero", _set(CIDRS, ["0.0.0.0/0"]), f"{CIDRS}[0]", "/0"),
    ("ipv6 slash zero", _set(CIDRS, ["::/0"]), f"{CIDRS}[0]", "/0"),
    ("leading zeros", _set(CIDRS, ["203.000.113.0/24"]), f"{CIDRS}[0]", "not an IP address"),
    ("ipv4-mapped ipv6", _set(CIDRS, ["::ffff:203.0.113.0/120"]), f"{CIDRS}[0]", "IPv4-mapped"),
    ("too many ranges", _set(CIDRS, [f"198.{i // 256}.{i % 256}.0/24" for i in range(2001)]), CIDRS, "at most 2000"),
    ("duplicate ranges", _set(CIDRS, ["203.0.113.0/24", "203.0.113.0/24"]), CIDRS, "more than once"),
    ("duplicate after canon", _set(CIDRS, ["2001:db8::/32", "2001:0db8:0::/32"]), CIDRS, "after canonicalisation"),
    ("cidrs not a list", _set(CIDRS, "203.0.113.0/24"), CIDRS, "must be a list"),
    ("empty cidrs", _set(CIDRS, []), CIDRS, "at least one"),
    ("no trusted location", _delete("trustedLocation"), "trustedLocation", "is required"),
    (
        "mistyped group guid",
        _set(f"{TECH}.includeGroupIds", ["00000000-0000-0000-0000-00000000b0011"]),
        f"{TECH}.includeGroupIds[0]",
        "GUID",
    ),
    ("empty group name", _set(f"{TECH}.includeGroupIds", ["  "]), f"{TECH}.includeGroupIds[0]", "display name"),
    (
        "break-glass neither guid nor upn",
        _set(f"{TECH}.breakGlassUserIds", ["bg-account"]),
        f"{TECH}.breakGlassUserIds[0]",
        "user principal name",
    ),
    ("bad service account guid", _set("serviceAccount.userId", "cipp-sa"), "serviceAccount.userId", "GUID"),
    ("no service account", _delete("serviceAccount"), "serviceAccount", "is required"),
    ("bad tenant", _set("azuread:tenantId", "contoso.onmicrosoft.com"), "azuread:tenantId", "GUID"),
    ("no tenant", _delete("azuread:tenantId"), "azuread:tenantId", "is required"),
    (
        "service account is technician",
        _set(f"{TECH}.includeUserIds", [SERVICE_ACCOUNT]),
        f"{TECH}.includeUserIds",
        "service account",
    ),
    (
        "service account is break-glass",
        _set(f"{TECH}.breakGlassUserIds", [SERVICE_ACCOUNT]),
        f"{TECH}.breakGlassUserIds",
        "service account",
    ),
    ("cippApp without id", _set(f"{TECH}.target", "cippApp"), f"{TECH}.cippAppId", "is required"),
    ("unknown target", _set(f"{TECH}.target", "allApps"), f"{TECH}.target", "allCloudApps, cippApp"),
    ("unknown technician state", _set(f"{TECH}.state", "on"), f"{TECH}.state", "reportOnly, enabled, disabled"),
    (
        "graph spelling of state",
        _set(f"{TECH}.state", "enabledForReportingButNotEnforced"),
        f"{TECH}.state",
        "reportOnly",
    ),
    ("unknown service state", _set("serviceAccount.state", "report-only"), "serviceAccount.state", "must be one of"),
    (
        "typo in technician key",
        _set(f"{TECH}.breakGlassUserID", [BREAK_GLASS_1]),
        f"{TECH}.breakGlassUserID",
        "did you mean breakGlassUserIds",
    ),
    ("typo in top-level key", _set("trustedLocations", {}), "trustedLocations", "did you mean trustedLocation"),
    ("typo in location key", _set("trustedLocation.cidr", []), "trustedLocation.cidr", "did you mean cidrs"),
    ("unknown mode", _set("mode", "partner"), "mode", "msp or client"),
    ("client key in msp stack", _set("clientTenant", {}), "clientTenant", "a key of client stacks"),
    ("no technicians", _set(f"{TECH}.includeGroupIds", []), f"{TECH}.includeGroupIds", "at least one technician"),
    (
        "technician is break-glass",
        _set(f"{TECH}.includeUserIds", [BREAK_GLASS_1]),
        f"{TECH}.includeUserIds",
        "also a break-glass",
    ),
    (
        "duplicate group",
        _set(f"{TECH}.includeGroupIds", [TECH_GROUP, TECH_GROUP.upper()]),
        f"{TECH}.includeGroupIds",
        "more than once",
    ),
    (
        "display name not text",
        _set("trustedLocation.displayName", 42),
        "trustedLocation.displayName",
        "non-empty string",
    ),
    ("technicianAccess not an object", _set(TECH, ["x"]), TECH, "must be an object"),
    ("graphUrl not https", _set("graphUrl", "http://graph.microsoft.com"), "graphUrl", "https://"),
    (
        "operator ip not an ip",
        _set(f"{TECH}.operatorCheckIp", "203.0.113.0/24"),
        f"{TECH}.operatorCheckIp",
        "one IP address",
    ),
    ("promotedAfter not an object", _set(f"{TECH}.promotedAfter", "yes"), f"{TECH}.promotedAfter", "must be an object"),
    ("scenariosFile empty", _set("scenariosFile", ""), "scenariosFile", "YAML file"),
    # The lockout guard: Part A enforced needs the operators' current address inside the trusted ranges.
    ("enabled without operator ip", ENABLED, f"{TECH}.operatorCheckIp", "is required while the policy is enabled"),
    (
        "operator ip outside trusted",
        _all(ENABLED, _set(f"{TECH}.operatorCheckIp", "198.51.100.7")),
        f"{TECH}.operatorCheckIp",
        "outside trustedLocation.cidrs",
    ),
    ("empty guard override", _set(f"{TECH}.lockoutGuardOverride", " "), f"{TECH}.lockoutGuardOverride", "non-empty"),
    (
        "break-glass group is technician group",
        _set(f"{TECH}.breakGlassGroupIds", [TECH_GROUP]),
        f"{TECH}.includeGroupIds",
        "also a break-glass group",
    ),
    # technicianAccess.promotedAfter: the record `make promote` writes.
    (
        "promotion without policy id",
        _set(PROMOTED, promotion_record(policyId=None)),
        f"{PROMOTED}.policyId",
        "is required",
    ),
    (
        "promotion window backwards",
        _set(PROMOTED, promotion_record(window={"from": "2026-05-15T00:00:00Z", "to": "2026-05-01T00:00:00Z"})),
        f"{PROMOTED}.window",
        "from must be before to",
    ),
    (
        "promotion with unaccepted blocks",
        _set(PROMOTED, promotion_record(wouldBlock=3)),
        f"{PROMOTED}.accepted",
        "3 affected sign-in(s)",
    ),
    (
        "promotion without evidence",
        _set(PROMOTED, promotion_record(signInsEvaluated=0)),
        f"{PROMOTED}.accepted",
        "out of 0 evaluated",
    ),
    (
        "promotion time without zone",
        _set(PROMOTED, promotion_record(recordedAt="2026-05-15T00:00:00")),
        f"{PROMOTED}.recordedAt",
        "with a zone",
    ),
    ("promotion negative count", _set(PROMOTED, promotion_record(breakGlass=-1)), f"{PROMOTED}.breakGlass", "a count"),
    ("promotion unknown key", _set(PROMOTED, promotion_record(who="me")), f"{PROMOTED}.who", "unknown key"),
]


@pytest.mark.parametrize(("mutation", "key", "fragment"), [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_bad_config_is_named_and_nothing_is_registered(mutation: Mutation, key: str, fragment: str) -> None:
    raw = msp_raw()
    mutation(raw)
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    matching = [p for p in caught.value.problems if p.key == key]
    assert matching, f"no problem names {key}: {caught.value.problems}"
    assert any(fragment in p.message for p in matching), matching

    with pytest.raises(OfflineRunError) as failed:
        run_main(raw)
    assert failed.value.run.resources == [], "a bad config must register nothing"
    assert any(key in message and fragment in message for message in failed.value.run.messages("error"))


def test_catalogue_is_large_enough() -> None:
    assert len(CATALOGUE) >= 30


def test_every_problem_is_reported_at_once() -> None:
    raw = msp_raw()
    _delete(f"{TECH}.breakGlassUserIds")(raw)
    _set(CIDRS, ["203.0.113.7/24", "10.0.0.0/4"])(raw)
    _set("serviceAccount.userId", "nope")(raw)
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    keys = {p.key for p in caught.value.problems}
    assert keys >= {f"{TECH}.breakGlassUserIds", f"{CIDRS}[0]", f"{CIDRS}[1]", "serviceAccount.userId"}


def test_missing_break_glass_message_names_the_key() -> None:
    raw = msp_raw()
    _delete(f"{TECH}.breakGlassUserIds")(raw)
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert "cipp-hardening:technicianAccess.breakGlassUserIds: is required" in str(caught.value)


def test_disabled_policy_may_have_no_break_glass() -> None:
    raw = msp_raw()
    _delete(f"{TECH}.breakGlassUserIds")(raw)
    _set(f"{TECH}.state", "disabled")(raw)
    assert isinstance(parse_stack_config(raw), MspStack)


def test_break_glass_group_alone_is_enough() -> None:
    raw = msp_raw()
    _delete(f"{TECH}.breakGlassUserIds")(raw)
    _set(f"{TECH}.breakGlassGroupIds", ["00000000-0000-0000-0000-00000000c0c0"])(raw)
    assert isinstance(parse_stack_config(raw), MspStack)


def test_private_ranges_warn_but_pass() -> None:
    raw = msp_raw()
    _set(CIDRS, ["10.20.0.0/16", "198.51.100.7", "fe80::/64", "8.8.8.0/24"])(raw)
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.trusted_location.cidrs == ("10.20.0.0/16", "198.51.100.7/32", "fe80::/64", "8.8.8.0/24")
    assert [w.split(": ", 1)[0] for w in config.warnings] == [f"cipp-hardening:{CIDRS}[{i}]" for i in range(3)]
    assert "private" in config.warnings[0]
    assert "documentation" in config.warnings[1]
    assert "link-local" in config.warnings[2]


def test_defaults_are_the_articles() -> None:
    raw = msp_raw()
    del raw["trustedLocation"]["displayName"], raw[TECH]["displayName"], raw[TECH]["state"]
    del raw["serviceAccount"]["displayName"], raw["serviceAccount"]["state"]
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.trusted_location.display_name == "Trusted - MSP Office"
    assert config.technician_access.display_name == "Block CIPP Access - Outside Trusted IPs"
    assert config.technician_access.state == "enabledForReportingButNotEnforced"
    assert config.service_account.display_name == "CIPP Service Account Conditional Access Policy"
    assert config.service_account.state == "enabled"


def test_guids_are_lower_cased() -> None:
    raw = msp_raw()
    _set("serviceAccount.userId", SERVICE_ACCOUNT.upper().replace("D001", "DDDD"))(raw)
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.service_account.user_id == "00000000-0000-0000-0000-00000000dddd"
