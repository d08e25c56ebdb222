"""The Conditional Access what-if evaluator: documented semantics, edge cases, and the real corpus.

Semantics under test are docs/graph-ca.md §5.3 (and §2.3–2.6); the decisions where the reference is silent
are listed in the docstring of cipp_hardening/evaluator.py.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.evaluator import (
    MFA_TRUSTED_IPS_LOCATION,
    Evaluation,
    ExternalUser,
    Outcome,
    PolicySet,
    SignIn,
    evaluate,
)
from cipp_hardening.policy_files import (
    PolicyFileError,
    load_named_location_folder,
    load_policy_file,
    load_policy_folder,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

USER = "aaaaaaaa-0000-0000-0000-000000000001"
BREAK_GLASS = "aaaaaaaa-0000-0000-0000-000000000002"
ADMINS_GROUP = "bbbbbbbb-0000-0000-0000-000000000001"
EXCLUDED_GROUP = "bbbbbbbb-0000-0000-0000-000000000002"
GLOBAL_ADMIN_ROLE = "62e90394-69f5-4237-9190-012177145e10"
MSP_TENANT = "cccccccc-0000-0000-0000-000000000001"
OTHER_TENANT = "cccccccc-0000-0000-0000-000000000002"
APP = "dddddddd-0000-0000-0000-000000000001"
OTHER_APP = "dddddddd-0000-0000-0000-000000000002"
OFFICE_LOCATION = "eeeeeeee-0000-0000-0000-000000000001"
UNTRUSTED_LOCATION = "eeeeeeee-0000-0000-0000-000000000002"
COUNTRY_LOCATION = "eeeeeeee-0000-0000-0000-000000000003"
OFFICE_IP = "198.51.100.10"
HOME_IP = "203.0.113.50"

NAMED_LOCATIONS: list[dict[str, Any]] = [
    {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "id": OFFICE_LOCATION,
        "displayName": "Office",
        "isTrusted": True,
        "ipRanges": [
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"},
            {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8:abcd::/48"},
        ],
    },
    {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "id": UNTRUSTED_LOCATION,
        "displayName": "One host",
        "isTrusted": False,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "192.0.2.7/32"}],
    },
    {
        "@odata.type": "#microsoft.graph.countryNamedLocation",
        "id": COUNTRY_LOCATION,
        "displayName": "Benelux",
        "countriesAndRegions": ["BE", "NL", "LU"],
        "includeUnknownCountriesAndRegions": False,
    },
]


def make_policy(
    *,
    state: str | None = "enabled",
    users: Mapping[str, Any] | None = None,
    apps: Mapping[str, Any] | None = None,
    grant: Mapping[str, Any] | None = None,
    session: Mapping[str, Any] | None = None,
    name: str = "policy",
    **conditions: Any,
) -> dict[str, Any]:
    """A v1.0-shaped policy: all users, all apps, all client apps, require MFA, unless overridden."""
    return {
        "id": name,
        "displayName": name,
        "state": state,
        "conditions": {
            "users": dict(users) if users is not None else {"includeUsers": ["All"]},
            "applications": dict(apps) if apps is not None else {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
            **conditions,
        },
        "grantControls": dict(grant) if grant is not None else {"operator": "OR", "builtInControls": ["mfa"]},
        "sessionControls": dict(session) if session is not None else None,
    }


def block(**kwargs: Any) -> dict[str, Any]:
    return make_policy(grant={"operator": "OR", "builtInControls": ["block"]}, **kwargs)


def sign_in(**overrides: Any) -> SignIn:
    fields: dict[str, Any] = {"user_id": USER, "application_id": APP, "client_ip": HOME_IP, "app_groups": frozenset()}
    fields.update(overrides)
    return SignIn(**fields)


def run(policies: Iterable[Mapping[str, Any]], **sign_in_fields: Any) -> Evaluation:
    return evaluate(list(policies), NAMED_LOCATIONS, sign_in(**sign_in_fields), mfa_trusted_ips=[])


def outcome(policy: Mapping[str, Any], **sign_in_fields: Any) -> tuple[Outcome, str]:
    result = run([policy], **sign_in_fields).results[0]
    return result.outcome, result.reason


def external(kind: str, tenant: str | None = MSP_TENANT) -> ExternalUser:
    return ExternalUser(kind, tenant)


# --- documented semantics (docs/graph-ca.md §5.3) ----------------------------------------------------


def test_no_policy_means_access_is_granted_without_controls() -> None:
    verdict = run([]).enforced
    assert (verdict.access, verdict.blocked, verdict.requirements, verdict.is_certain) == ("granted", False, (), True)


def test_exclude_beats_include() -> None:
    policy = block(users={"includeUsers": [USER], "excludeGroups": [EXCLUDED_GROUP]})
    assert outcome(policy, group_ids=frozenset({EXCLUDED_GROUP})) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(policy) == (Outcome.APPLIES, "notSet")


def test_ids_are_compared_case_insensitively() -> None:
    policy = block(users={"includeGroups": [ADMINS_GROUP.upper()]})
    assert outcome(policy, group_ids=frozenset({ADMINS_GROUP}))[0] is Outcome.APPLIES


def test_roles_match_by_template_id() -> None:
    policy = make_policy(users={"includeRoles": [GLOBAL_ADMIN_ROLE]})
    assert outcome(policy, role_template_ids=frozenset({GLOBAL_ADMIN_ROLE}))[0] is Outcome.APPLIES
    assert outcome(policy) == (Outcome.DOES_NOT_APPLY, "users")


@pytest.mark.parametrize(
    "kind",
    [
        "internalGuest",
        "b2bCollaborationGuest",
        "b2bCollaborationMember",
        "b2bDirectConnectUser",
        "otherExternalUser",
        "serviceProvider",
    ],
)
def test_all_users_includes_every_guest_and_external_kind(kind: str) -> None:
    assert outcome(block(), external=external(kind))[0] is Outcome.APPLIES


def test_none_users_includes_nobody() -> None:
    assert outcome(block(users={"includeUsers": ["None"]})) == (Outcome.DOES_NOT_APPLY, "users")


def test_conditions_are_anded() -> None:
    policy = block(clientAppTypes=["exchangeActiveSync", "other"])
    assert outcome(policy, client_app_type="browser") == (Outcome.DOES_NOT_APPLY, "clientApps")
    assert outcome(policy, client_app_type="other")[0] is Outcome.APPLIES


def test_all_trusted_covers_trusted_named_locations() -> None:
    policy = block(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})
    assert outcome(policy, client_ip=OFFICE_IP) == (Outcome.DOES_NOT_APPLY, "location")
    assert outcome(policy, client_ip=HOME_IP)[0] is Outcome.APPLIES
    assert outcome(policy, client_ip="192.0.2.7")[0] is Outcome.APPLIES  # a named but untrusted location


def test_all_trusted_is_cannot_tell_only_when_unknown_mfa_trusted_ips_matter() -> None:
    policy_set = PolicySet.compile(
        [block(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})], NAMED_LOCATIONS
    )
    inside = policy_set.evaluate(sign_in(client_ip=OFFICE_IP)).results[0]
    outside = policy_set.evaluate(sign_in(client_ip=HOME_IP)).results[0]
    assert (inside.outcome, inside.reason) == (Outcome.DOES_NOT_APPLY, "location")
    assert (outside.outcome, outside.reason) == (Outcome.CANNOT_TELL, "location")


def test_mfa_trusted_ips_pseudo_location_when_known() -> None:
    policy = block(locations={"includeLocations": [MFA_TRUSTED_IPS_LOCATION]})
    policy_set = PolicySet.compile([policy], NAMED_LOCATIONS, mfa_trusted_ips=["203.0.113.0/24"])
    assert policy_set.evaluate(sign_in(client_ip=HOME_IP)).results[0].outcome is Outcome.APPLIES
    assert policy_set.evaluate(sign_in(client_ip=OFFICE_IP)).results[0].outcome is Outcome.DOES_NOT_APPLY


def test_selected_locations_match_any_of_them() -> None:
    policy = block(locations={"includeLocations": [UNTRUSTED_LOCATION, OFFICE_LOCATION]})
    assert outcome(policy, client_ip=OFFICE_IP)[0] is Outcome.APPLIES
    assert outcome(policy, client_ip="192.0.2.7")[0] is Outcome.APPLIES
    assert outcome(policy, client_ip=HOME_IP) == (Outcome.DOES_NOT_APPLY, "location")


def test_report_only_is_evaluated_but_not_enforced() -> None:
    evaluation = run([block(state="enabledForReportingButNotEnforced")])
    assert evaluation.results[0].outcome is Outcome.APPLIES
    assert not evaluation.enforced.blocked
    assert evaluation.if_report_only_were_on.blocked


def test_disabled_policies_are_ignored() -> None:
    evaluation = run([block(state="disabled")])
    assert (evaluation.results[0].outcome, evaluation.results[0].reason) == (Outcome.DOES_NOT_APPLY, "policyNotEnabled")
    assert not evaluation.enforced.blocked
    assert not evaluation.if_report_only_were_on.blocked


def test_block_wins_over_grant_controls() -> None:
    verdict = run([make_policy(name="mfa"), block(name="block")]).enforced
    assert verdict.blocked
    assert verdict.access == "blocked"
    assert [r.key for r in verdict.blocking] == ["block"]
    assert not verdict.satisfied_by({"mfa", "compliantDevice"})


def test_or_means_any_of_and_and_means_all_of() -> None:
    either = run([make_policy(grant={"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]})]).enforced
    both = run([make_policy(grant={"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]})]).enforced
    assert either.satisfied_by({"compliantDevice"})
    assert not either.requires_mfa
    assert not both.satisfied_by({"compliantDevice"})
    assert both.satisfied_by({"mfa", "compliantDevice"})
    assert both.requires_mfa


def test_every_applying_policy_must_be_satisfied() -> None:
    verdict = run(
        [
            make_policy(name="mfa"),
            make_policy(name="device", grant={"operator": "OR", "builtInControls": ["compliantDevice"]}),
        ]
    ).enforced
    assert [r.policy for r in verdict.requirements] == ["mfa", "device"]
    assert not verdict.satisfied_by({"mfa"})
    assert verdict.satisfied_by({"mfa", "compliantDevice"})


def test_missing_operator_is_read_as_and() -> None:
    verdict = run([make_policy(grant={"builtInControls": ["mfa", "compliantDevice"]})]).enforced
    assert verdict.requirements[0].operator == "AND"


def test_authentication_strength_and_terms_of_use_are_requirements() -> None:
    grant = {
        "operator": "AND",
        "builtInControls": [],
        "termsOfUse": ["tou-1"],
        "authenticationStrength": {"id": "00000000-0000-0000-0000-000000000004"},
    }
    verdict = run([make_policy(grant=grant)]).enforced
    assert set(verdict.requirements[0].controls) == {
        "termsOfUse:tou-1",
        "authenticationStrength:00000000-0000-0000-0000-000000000004",
    }
    assert verdict.requires_mfa
    assert not verdict.satisfied_by({"mfa"})


# --- session controls ---------------------------------------------------------------------------


def test_sign_in_frequency_every_time_and_strictest_period() -> None:
    every_time = {"signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"}}
    hours = {"signInFrequency": {"isEnabled": True, "frequencyInterval": "timeBased", "type": "hours", "value": 12}}
    days = {"signInFrequency": {"isEnabled": True, "frequencyInterval": "timeBased", "type": "days", "value": 1}}
    assert run([make_policy(session=every_time)]).enforced.reauth_every_time
    merged = run([make_policy(name="a", session=hours), make_policy(name="b", session=days)]).enforced
    assert (merged.reauth_every_time, merged.session.frequency_hours) == (False, 12.0)


def test_other_session_controls_are_listed() -> None:
    session = {"cloudAppSecurity": {"isEnabled": True, "cloudAppSecurityType": "blockDownloads"}}
    verdict = run([make_policy(grant={}, session=session)]).enforced
    assert verdict.session.controls == {"cloudAppSecurity:blockDownloads"}
    assert verdict.access == "granted"


# --- uncertainty --------------------------------------------------------------------------------


def test_definite_failure_beats_an_earlier_unknown() -> None:
    policy = block(users={"includeUsers": ["All"], "excludeGroups": ["<Exclusions>"]}, clientAppTypes=["other"])
    assert outcome(policy, client_app_type="browser") == (Outcome.DOES_NOT_APPLY, "clientApps")
    result = run([policy], client_app_type="other").results[0]
    assert (result.outcome, result.reason, result.unknown_conditions) == (Outcome.CANNOT_TELL, "users", ("users",))


def test_cannot_tell_block_makes_not_blocked_uncertain() -> None:
    verdict = run([make_policy(name="mfa"), block(name="risky", signInRiskLevels=["high"])]).enforced
    assert not verdict.blocked
    assert [r.key for r in verdict.uncertain] == ["risky"]
    assert not verdict.is_certain


def test_cannot_tell_policy_already_implied_is_not_uncertain() -> None:
    verdict = run([make_policy(name="mfa"), make_policy(name="risky-mfa", signInRiskLevels=["high"])]).enforced
    assert verdict.is_certain


def test_nothing_is_uncertain_once_definitely_blocked() -> None:
    verdict = run([block(name="all"), block(name="risky", userRiskLevels=["high"])]).enforced
    assert verdict.blocked
    assert verdict.is_certain


@pytest.mark.parametrize(
    ("condition", "value", "reason", "stated"),
    [
        ("signInRiskLevels", ["high", "medium"], "signInRisk", {"sign_in_risk": "medium"}),
        ("userRiskLevels", ["high"], "userRisk", {"user_risk": "high"}),
        ("insiderRiskLevels", "elevated", "insiderRisk", {"insider_risk": "elevated"}),
        (
            "authenticationFlows",
            {"transferMethods": "deviceCodeFlow"},
            "authenticationFlow",
            {"authentication_flow": "deviceCodeFlow"},
        ),
    ],
)
def test_risk_and_flow_conditions_are_cannot_tell_unless_stated(
    condition: str, value: Any, reason: str, stated: dict[str, str]
) -> None:
    policy = block(**{condition: value})
    assert outcome(policy) == (Outcome.CANNOT_TELL, reason)
    assert outcome(policy, **stated)[0] is Outcome.APPLIES


@pytest.mark.parametrize(
    ("condition", "value", "reason"),
    [
        ("servicePrincipalRiskLevels", ["high"], "workloadIdentities"),
        ("clientApplications", {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]}, "workloadIdentities"),
        ("devices", {"deviceFilter": {"mode": "exclude", "rule": 'device.trustType -eq "ServerAD"'}}, "devices"),
        ("times", {"included": {"timezone": "UTC"}}, "time"),
    ],
)
def test_conditions_a_user_sign_in_cannot_decide_are_cannot_tell(condition: str, value: Any, reason: str) -> None:
    assert outcome(block(**{condition: value})) == (Outcome.CANNOT_TELL, reason)


def test_workload_identity_policy_does_not_apply_to_users() -> None:
    policy = block(
        users={"includeUsers": ["None"]},
        clientApplications={"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
    )
    assert outcome(policy) == (Outcome.DOES_NOT_APPLY, "users")


def test_unknown_location_id_is_cannot_tell() -> None:
    policy = block(
        locations={"includeLocations": ["All"], "excludeLocations": ["ffffffff-0000-0000-0000-000000000000"]}
    )
    assert outcome(policy) == (Outcome.CANNOT_TELL, "location")


def test_unresolved_placeholder_ids_are_cannot_tell_unless_listed() -> None:
    policy = block(users={"includeGroups": ["<AdministratorGroup>"]})
    assert outcome(policy) == (Outcome.CANNOT_TELL, "users")
    assert outcome(policy, group_ids=frozenset({"<AdministratorGroup>"}))[0] is Outcome.APPLIES


def test_policy_without_conditions_is_cannot_tell() -> None:
    assert outcome({"displayName": "broken", "state": "enabled", "conditions": None}) == (
        Outcome.CANNOT_TELL,
        "invalidPolicy",
    )


# --- locations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("2001:db8:abcd:12::1", Outcome.APPLIES),
        ("2001:db8:abce::1", Outcome.DOES_NOT_APPLY),
        ("198.51.100.255", Outcome.APPLIES),
        ("198.51.101.0", Outcome.DOES_NOT_APPLY),
        ("::ffff:198.51.100.9", Outcome.APPLIES),
    ],
)
def test_ip_containment_ipv4_and_ipv6(ip: str, expected: Outcome) -> None:
    assert outcome(block(locations={"includeLocations": [OFFICE_LOCATION]}), client_ip=ip)[0] is expected


@pytest.mark.parametrize(("ip", "expected"), [("192.0.2.7", True), ("192.0.2.6", False), ("192.0.2.8", False)])
def test_slash_32_matches_one_host(ip: str, expected: bool) -> None:
    result = outcome(block(locations={"includeLocations": [UNTRUSTED_LOCATION]}), client_ip=ip)[0]
    assert (result is Outcome.APPLIES) is expected


def test_host_in_excluded_location_is_out_of_scope() -> None:
    policy = block(locations={"includeLocations": ["All"], "excludeLocations": [UNTRUSTED_LOCATION]})
    assert outcome(policy, client_ip="192.0.2.7") == (Outcome.DOES_NOT_APPLY, "location")


def test_ranges_are_parsed_from_the_address_not_the_odata_type() -> None:
    # pulumi-azuread labels IPv6 ranges iPv4CidrRange (docs/graph-ca.md §4.1); ranges also come as lower/upper.
    locations = [
        {
            "id": "ffffffff-0000-0000-0000-000000000001",
            "ipRanges": [
                {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "2001:db8::/32"},
                {"@odata.type": "#microsoft.graph.iPv4Range", "lowerAddress": "10.0.0.5", "upperAddress": "10.0.0.9"},
            ],
        }
    ]
    policy_set = PolicySet.compile([block(locations={"includeLocations": [locations[0]["id"]]})], locations)
    for ip, expected in [
        ("2001:db8::5", Outcome.APPLIES),
        ("10.0.0.9", Outcome.APPLIES),
        ("10.0.0.10", Outcome.DOES_NOT_APPLY),
    ]:
        assert policy_set.evaluate(sign_in(client_ip=ip)).results[0].outcome is expected


def test_country_location_uses_the_stated_country() -> None:
    policy = block(locations={"includeLocations": ["All"], "excludeLocations": [COUNTRY_LOCATION]})
    assert outcome(policy) == (Outcome.CANNOT_TELL, "location")
    assert outcome(policy, country="nl") == (Outcome.DOES_NOT_APPLY, "location")
    assert outcome(policy, country="US")[0] is Outcome.APPLIES


# --- guests, external users, service providers (docs/graph-ca.md §2.4) --------------------------------


def msp_exclusion(types: str = "serviceProvider", members: Iterable[str] = (MSP_TENANT,)) -> dict[str, Any]:
    return {
        "includeUsers": ["All"],
        "excludeUsers": [BREAK_GLASS],
        "excludeGuestsOrExternalUsers": {
            "guestOrExternalUserTypes": types,
            "externalTenants": {
                "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
                "membershipKind": "enumerated",
                "members": list(members),
            },
        },
    }


def test_service_provider_from_excluded_msp_tenant_is_out_of_scope() -> None:
    policy = block(users=msp_exclusion())
    assert outcome(policy, external=external("serviceProvider", MSP_TENANT)) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(policy, external=external("serviceProvider", OTHER_TENANT))[0] is Outcome.APPLIES
    assert outcome(policy, external=external("serviceProvider", None)) == (Outcome.CANNOT_TELL, "users")
    assert outcome(policy, external=external("b2bCollaborationGuest", MSP_TENANT))[0] is Outcome.APPLIES


def test_service_provider_is_not_matched_by_ids_groups_or_roles() -> None:
    technician = external("serviceProvider")
    include = block(
        users={"includeUsers": [USER], "includeGroups": [ADMINS_GROUP], "includeRoles": [GLOBAL_ADMIN_ROLE]}
    )
    exclude = block(users={"includeUsers": ["All"], "excludeGroups": [ADMINS_GROUP, "<Exclusions>"]})
    memberships = {"group_ids": frozenset({ADMINS_GROUP}), "role_template_ids": frozenset({GLOBAL_ADMIN_ROLE})}
    assert outcome(include, external=technician, **memberships) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(exclude, external=technician, **memberships)[0] is Outcome.APPLIES


def test_guest_types_are_a_comma_string_with_spaces_tolerated() -> None:
    policy = block(
        users={
            "includeGuestsOrExternalUsers": {
                "guestOrExternalUserTypes": "internalGuest, b2bCollaborationGuest ,serviceProvider",
                "externalTenants": {"membershipKind": "all"},
            }
        }
    )
    assert outcome(policy, external=external("b2bCollaborationGuest"))[0] is Outcome.APPLIES
    assert outcome(policy, external=external("serviceProvider"))[0] is Outcome.APPLIES
    assert outcome(policy, external=external("b2bDirectConnectUser")) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(policy) == (Outcome.DOES_NOT_APPLY, "users")  # a member user is never a guest


def test_legacy_guests_or_external_users_value() -> None:
    policy = block(users={"includeUsers": ["All"], "excludeUsers": ["GuestsOrExternalUsers"]})
    assert outcome(policy, external=external("serviceProvider")) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(policy)[0] is Outcome.APPLIES


def test_local_guests_are_not_scoped_by_external_tenant() -> None:
    policy = block(users=msp_exclusion(types="internalGuest,serviceProvider"))
    assert outcome(policy, external=external("internalGuest", None)) == (Outcome.DOES_NOT_APPLY, "users")


def test_break_glass_excluded_by_id_even_from_all_users() -> None:
    verdict = run([block(users=msp_exclusion())], user_id=BREAK_GLASS).enforced
    assert verdict.access == "granted"


# --- applications, user actions, authentication context -----------------------------------------


def test_included_and_excluded_applications() -> None:
    policy = block(apps={"includeApplications": ["All"], "excludeApplications": [OTHER_APP]})
    assert outcome(policy)[0] is Outcome.APPLIES
    assert outcome(policy, application_id=OTHER_APP) == (Outcome.DOES_NOT_APPLY, "application")
    assert outcome(block(apps={"includeApplications": ["None"]})) == (Outcome.DOES_NOT_APPLY, "application")


def test_app_groups_are_cannot_tell_unless_the_sign_in_states_membership() -> None:
    policy = block(apps={"includeApplications": ["Office365"]})
    assert outcome(policy, app_groups=None) == (Outcome.CANNOT_TELL, "application")
    assert outcome(policy, app_groups=frozenset({"Office365"}))[0] is Outcome.APPLIES
    assert outcome(policy, app_groups=frozenset()) == (Outcome.DOES_NOT_APPLY, "application")
    excluded = block(apps={"includeApplications": ["All"], "excludeApplications": ["MicrosoftAdminPortals"]})
    assert outcome(excluded, app_groups=None) == (Outcome.CANNOT_TELL, "application")
    assert outcome(excluded, app_groups=frozenset({"MicrosoftAdminPortals"}))[0] is Outcome.DOES_NOT_APPLY


def test_an_unstated_application_only_decides_all_apps_policies() -> None:
    assert outcome(block(), application_id=None)[0] is Outcome.APPLIES
    assert outcome(block(apps={"includeApplications": [APP]}), application_id="All") == (
        Outcome.CANNOT_TELL,
        "application",
    )


def test_user_action_policies_apply_only_to_that_action() -> None:
    registration = make_policy(apps={"includeUserActions": ["urn:user:registersecurityinfo"]})
    assert outcome(registration) == (Outcome.DOES_NOT_APPLY, "userActions")
    assert outcome(registration, user_action="urn:user:registersecurityinfo")[0] is Outcome.APPLIES
    assert outcome(registration, user_action="registerSecurityInformation")[0] is Outcome.APPLIES
    assert outcome(registration, user_action="urn:user:registerdevice") == (Outcome.DOES_NOT_APPLY, "userActions")
    assert outcome(block(), user_action="urn:user:registersecurityinfo") == (Outcome.DOES_NOT_APPLY, "application")


def test_authentication_context_is_cannot_tell_unless_named() -> None:
    policy = block(apps={"includeAuthenticationContextClassReferences": ["c1"]})
    assert outcome(policy) == (Outcome.CANNOT_TELL, "authenticationContext")
    assert outcome(policy, authentication_context="c1")[0] is Outcome.APPLIES
    assert outcome(policy, authentication_context="c2") == (Outcome.DOES_NOT_APPLY, "authenticationContext")


# --- platforms and client apps ------------------------------------------------------------------


def test_platforms_include_all_exclude_one_and_unknown_platform() -> None:
    policy = block(platforms={"includePlatforms": ["all"], "excludePlatforms": ["macOS"]})
    assert outcome(policy, device_platform="windows")[0] is Outcome.APPLIES
    assert outcome(policy, device_platform="macOS") == (Outcome.DOES_NOT_APPLY, "devicePlatform")
    assert outcome(policy, device_platform=None)[0] is Outcome.APPLIES
    assert outcome(block(platforms={"includePlatforms": ["iOS"]}), device_platform=None)[0] is Outcome.DOES_NOT_APPLY


def test_client_app_types_are_case_insensitive_and_eas_supported_means_eas() -> None:
    assert outcome(block(clientAppTypes=["All"]), client_app_type="other")[0] is Outcome.APPLIES
    assert outcome(block(clientAppTypes=["easSupported"]), client_app_type="exchangeActiveSync")[0] is Outcome.APPLIES


# --- API ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"client_app_type": "desktop"}, "client app type"),
        ({"device_platform": "beos"}, "device platform"),
        ({"client_ip": "300.1.1.1"}, "does not appear to be an IPv4 or IPv6 address"),
        ({"sign_in_risk": "extreme"}, "sign in risk"),
        ({"app_groups": frozenset({"Office 365"})}, "app group"),
    ],
)
def test_sign_in_rejects_unknown_values(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign_in(**bad)


def test_external_user_kind_is_validated_and_canonicalised() -> None:
    assert ExternalUser("SERVICEPROVIDER").kind == "serviceProvider"
    with pytest.raises(ValueError, match="external user kind"):
        ExternalUser("partner")


def test_result_lookup_by_id_or_name() -> None:
    evaluation = run([block(name="Block legacy")])
    assert evaluation.result("block legacy").display_name == "Block legacy"
    assert evaluation.with_outcome(Outcome.APPLIES)[0].key == "Block legacy"
    with pytest.raises(KeyError):
        evaluation.result("missing")


# --- policy files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        lambda text: text.encode("utf-16-le"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-8"),
    ],
)
def test_policy_file_encodings(tmp_path: Path, encode: Any) -> None:
    path = tmp_path / "policy.json"
    path.write_bytes(encode(json.dumps(make_policy(name="ä"))))
    assert [p["displayName"] for p in load_policy_file(path)] == ["ä"]


def test_policy_file_shapes(tmp_path: Path) -> None:
    (tmp_path / "array.json").write_text(json.dumps([make_policy(name="a"), make_policy(name="b")]))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "envelope.json").write_text(json.dumps({"value": [make_policy(name="c")]}))
    (tmp_path / "sub" / "location.json").write_text(json.dumps(NAMED_LOCATIONS[0]))
    assert [p["displayName"] for p in load_policy_folder(tmp_path)] == ["a", "b", "c"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(PolicyFileError, match=r"bad\.json"):
        load_policy_file(tmp_path / "bad.json")


# --- the real corpus (../shared/corpus) ---------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not CORPUS.is_dir():
        pytest.skip(f"needs the shared policy corpus at {CORPUS} (../shared/corpus), which is absent here")
    return load_policy_folder(CORPUS), load_named_location_folder(CORPUS)


def corpus_policy(corpus: tuple[list[dict[str, Any]], list[dict[str, Any]]], name: str) -> dict[str, Any]:
    (policy,) = [p for p in corpus[0] if str(p.get("displayName", "")).startswith(name)]
    return policy


def corpus_outcome(corpus: Any, name: str, **sign_in_fields: Any) -> tuple[Outcome, str]:
    result = evaluate([corpus_policy(corpus, name)], corpus[1], sign_in(**sign_in_fields)).results[0]
    return result.outcome, result.reason


VIEW_ALL = {"enabled", "enabledForReportingButNotEnforced"}
SCENARIOS = [
    sign_in(),
    sign_in(client_app_type="exchangeActiveSync", country="NL", device_platform="iOS"),
    sign_in(role_template_ids=frozenset({GLOBAL_ADMIN_ROLE}), client_ip="87.92.49.122", country="FI"),
    sign_in(external=external("serviceProvider"), app_groups=None, client_ip="2001:db8::1"),
    sign_in(external=external("b2bCollaborationGuest", None), application_id=None, device_platform="macOS"),
    sign_in(user_action="urn:user:registerdevice", sign_in_risk="high", user_risk="low", authentication_flow="none"),
]


@pytest.mark.corpus
def test_corpus_loads_every_file(corpus: Any) -> None:
    policies, locations = corpus
    assert len(policies) >= 80
    assert all(isinstance(p.get("conditions"), dict) for p in policies)
    assert {loc["displayName"] for loc in locations} >= {"ALLOWED COUNTRIES", "finland"}
    assert len(load_policy_file(CORPUS / "jsa2__caOptics" / "testMapping.json")) == 9


@pytest.mark.corpus
def test_every_corpus_policy_evaluates_the_same_compiled_or_one_shot(corpus: Any) -> None:
    policies, locations = corpus
    policy_set = PolicySet.compile(policies, locations)
    for scenario in SCENARIOS:
        compiled = policy_set.evaluate(scenario)
        assert len(compiled.results) == len(policies)
        for policy, result in zip(policies, compiled.results, strict=True):
            single = evaluate([policy], locations, scenario).results[0]
            assert (single.outcome, single.reason) == (result.outcome, result.reason)
        for verdict, states in ((compiled.enforced, {"enabled"}), (compiled.if_report_only_were_on, VIEW_ALL)):
            applying = [r for r in compiled.results if r.outcome is Outcome.APPLIES and r.policy.state in states]
            assert verdict.blocked == any(r.policy.blocks for r in applying)
            assert len(verdict.requirements) == sum(r.policy.requirement is not None for r in applying)


@pytest.mark.corpus
def test_corpus_legacy_authentication_block(corpus: Any) -> None:
    name = "CA002-Global-IdentityProtection-AnyApp-AnyPlatform-Block-LegacyAuthentication"
    assert corpus_outcome(corpus, name, client_app_type="exchangeActiveSync")[0] is Outcome.APPLIES
    assert corpus_outcome(corpus, name, client_app_type="other")[0] is Outcome.APPLIES
    assert corpus_outcome(corpus, name, client_app_type="browser") == (Outcome.DOES_NOT_APPLY, "clientApps")


@pytest.mark.corpus
def test_corpus_country_whitelist_block(corpus: Any) -> None:
    name = "CA001-Global-AttackSurfaceReduction-AnyApp-AnyPlatform-BLOCK-CountryWhitelist"
    assert corpus_outcome(corpus, name) == (Outcome.CANNOT_TELL, "location")
    assert corpus_outcome(corpus, name, country="NL") == (Outcome.DOES_NOT_APPLY, "location")
    assert corpus_outcome(corpus, name, country="US")[0] is Outcome.APPLIES


@pytest.mark.corpus
def test_corpus_guest_mfa_policy(corpus: Any) -> None:
    name = "CA400-GuestUsers-IdentityProtection-AnyApp-AnyPlatform-MFA"
    assert corpus_outcome(corpus, name, external=external("b2bCollaborationGuest"))[0] is Outcome.APPLIES
    assert corpus_outcome(corpus, name) == (Outcome.DOES_NOT_APPLY, "users")


@pytest.mark.corpus
def test_corpus_guest_block_spares_service_providers_but_admin_portal_block_does_not(corpus: Any) -> None:
    non_guest_apps = "CA401-GuestUsers-AttackSurfaceReduction-AllApps-AnyPlatform-BlockNonGuestAppAccess"
    admin_portals = "CA404-GuestUsers-AttackSurfaceReduction-SelectedApps-AnyPlatform-BLOCK"
    technician = external("serviceProvider")
    assert corpus_outcome(corpus, non_guest_apps, external=technician) == (Outcome.DOES_NOT_APPLY, "users")
    guest = external("b2bCollaborationGuest")
    assert corpus_outcome(corpus, non_guest_apps, external=guest)[0] is Outcome.APPLIES
    assert corpus_outcome(corpus, non_guest_apps, external=guest, app_groups=None) == (
        Outcome.CANNOT_TELL,
        "application",
    )
    portal = {"external": technician, "app_groups": frozenset({"MicrosoftAdminPortals"})}
    assert corpus_outcome(corpus, admin_portals, **portal)[0] is Outcome.APPLIES


@pytest.mark.corpus
def test_corpus_workload_and_agent_policies_skip_users(corpus: Any) -> None:
    for name in ("700 - <RING> - Workload Protection", "CA502-Agents", "CA505-Agents"):
        assert corpus_outcome(corpus, name) == (Outcome.DOES_NOT_APPLY, "users")


@pytest.mark.corpus
def test_corpus_authentication_flows_and_user_risk(corpus: Any) -> None:
    flows = "CA004-Global-IdentityProtection-AnyApp-AnyPlatform-AuthenticationFlows"
    assert corpus_outcome(corpus, flows) == (Outcome.CANNOT_TELL, "authenticationFlow")
    assert corpus_outcome(corpus, flows, authentication_flow="deviceCodeFlow")[0] is Outcome.APPLIES
    assert corpus_outcome(corpus, flows, authentication_flow="none") == (Outcome.DOES_NOT_APPLY, "authenticationFlow")
    risky = "CA201-Internals-IdentityProtection-AnyApp-AnyPlatform-BLOCK-HighRiskUser"
    internals = frozenset({"ceeac9b8-ddf5-48cb-afcb-e2ab8bfd1a57"})
    assert corpus_outcome(corpus, risky, group_ids=internals) == (Outcome.CANNOT_TELL, "userRisk")
    assert corpus_outcome(corpus, risky, group_ids=internals, user_risk="high")[0] is Outcome.APPLIES


@pytest.mark.corpus
def test_corpus_register_device_user_action(corpus: Any) -> None:
    name = "CA003-Global-BaseProtection-RegisterOrJoin-AnyPlatform-MFA"
    assert corpus_outcome(corpus, name, user_action="urn:user:registerdevice")[0] is Outcome.APPLIES
    assert corpus_outcome(corpus, name) == (Outcome.DOES_NOT_APPLY, "userActions")


@pytest.mark.corpus
def test_corpus_placeholders_and_report_only_uncertainty(corpus: Any) -> None:
    insider = corpus_policy(corpus, "601 - <RING> - Compliance")
    evaluation = evaluate([insider], corpus[1], sign_in())
    result = evaluation.results[0]
    assert (result.outcome, result.unknown_conditions) == (Outcome.CANNOT_TELL, ("users", "insiderRisk"))
    assert evaluation.enforced.is_certain
    assert [r.key for r in evaluation.if_report_only_were_on.uncertain] == [result.key]


@pytest.mark.corpus
def test_corpus_admin_sign_in_frequency(corpus: Any) -> None:
    policy = corpus_policy(corpus, "CA102-Admins-IdentityProtection-AllApps-AnyPlatform-SigninFrequency")
    verdict = evaluate([policy], corpus[1], sign_in(role_template_ids=frozenset({GLOBAL_ADMIN_ROLE}))).enforced
    assert (verdict.session.frequency_hours, verdict.reauth_every_time, verdict.access) == (12.0, False, "granted")
