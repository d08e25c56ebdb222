"""One group of tests per numbered decision in cipp_hardening/evaluator.py's docstring, so it reads as a checklist.

Each test is named after its decision (`test_decision_04_...`). The decisions are ours where the reference
(docs/graph-ca.md §5.3) is silent; a change to a decision must change its test and the docstring together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from cipp_hardening.evaluator import (
    Evaluation,
    ExternalUser,
    Outcome,
    PolicySet,
    ServicePrincipalSignIn,
    SignIn,
    evaluate,
)
from tests.test_evaluator import make_policy

USER = "aaaaaaaa-0000-0000-0000-000000000001"
BREAK_GLASS = "aaaaaaaa-0000-0000-0000-000000000002"
GROUP = "bbbbbbbb-0000-0000-0000-000000000001"
ROLE = "62e90394-69f5-4237-9190-012177145e10"
MSP_TENANT = "cccccccc-0000-0000-0000-000000000001"
OTHER_TENANT = "cccccccc-0000-0000-0000-000000000002"
APP = "dddddddd-0000-0000-0000-000000000001"
OTHER_APP = "dddddddd-0000-0000-0000-000000000002"
PRINCIPAL = "ffffffff-0000-0000-0000-000000000001"
OTHER_PRINCIPAL = "ffffffff-0000-0000-0000-000000000002"
OFFICE = "eeeeeeee-0000-0000-0000-000000000001"
HOST = "eeeeeeee-0000-0000-0000-000000000002"
COUNTRIES = "eeeeeeee-0000-0000-0000-000000000003"
COMPLIANT = "eeeeeeee-0000-0000-0000-000000000004"
BROKEN = "eeeeeeee-0000-0000-0000-000000000005"
OFFICE_IP = "198.51.100.10"
HOME_IP = "203.0.113.50"
STRENGTH = "00000000-0000-0000-0000-000000000004"

LOCATIONS: list[dict[str, Any]] = [
    {"id": OFFICE, "isTrusted": True, "ipRanges": [{"cidrAddress": "198.51.100.0/24"}]},
    {"id": HOST, "isTrusted": False, "ipRanges": [{"cidrAddress": "192.0.2.7/32"}]},
    {"id": COUNTRIES, "countriesAndRegions": ["BE", "NL"]},
    {"id": COMPLIANT, "@odata.type": "#microsoft.graph.compliantNetworkNamedLocation"},
    {
        "id": BROKEN,
        "isTrusted": True,
        "ipRanges": [{"cidrAddress": "192.0.2.0/28"}, {"cidrAddress": "not-a-range"}],
    },
]


policy = make_policy


def block(**kwargs: Any) -> dict[str, Any]:
    return policy(grant={"builtInControls": ["block"]}, **kwargs)


def run(
    policies: Iterable[Mapping[str, Any]],
    *,
    locations: Iterable[Mapping[str, Any]] = LOCATIONS,
    mfa_trusted_ips: Iterable[str] | None = (),
    **fields: Any,
) -> Evaluation:
    sign_in_fields: dict[str, Any] = {"user_id": USER, "application_id": APP, "client_ip": HOME_IP}
    sign_in_fields.update(fields)
    return evaluate(list(policies), list(locations), SignIn(**sign_in_fields), mfa_trusted_ips=mfa_trusted_ips)


def outcome(one: Mapping[str, Any], **fields: Any) -> tuple[Outcome, str]:
    result = run([one], **fields).results[0]
    return result.outcome, result.reason


def workload(one: Mapping[str, Any], **fields: Any) -> tuple[Outcome, str]:
    sign_in_fields: dict[str, Any] = {"service_principal_id": PRINCIPAL, "application_id": APP}
    sign_in_fields.update(fields)
    result = evaluate([one], LOCATIONS, ServicePrincipalSignIn(**sign_in_fields)).results[0]
    return result.outcome, result.reason


APPLIES = (Outcome.APPLIES, "notSet")


# --- 1. order of conditions ------------------------------------------------------------------------


def test_decision_01_a_definite_failure_decides_even_after_an_unknowable_condition() -> None:
    # users is unknowable (an unresolved group), the location definitely fails: does not apply, for the location.
    unknowable_then_failing = block(users={"includeGroups": ["<Admins>"]}, locations={"includeLocations": [HOST]})
    assert outcome(unknowable_then_failing) == (Outcome.DOES_NOT_APPLY, "location")


def test_decision_01_the_first_unknowable_condition_in_analysis_reasons_order_is_the_reason() -> None:
    both_unknown = block(users={"includeGroups": ["<Admins>"]}, locations={"includeLocations": [COMPLIANT]})
    result = run([both_unknown]).results[0]
    assert (result.outcome, result.reason) == (Outcome.CANNOT_TELL, "users")
    assert result.unknown_conditions == ("users", "location")


def test_decision_01_users_is_checked_before_the_application() -> None:
    failing_both = block(users={"includeUsers": [BREAK_GLASS]}, apps={"includeApplications": [OTHER_APP]})
    assert outcome(failing_both) == (Outcome.DOES_NOT_APPLY, "users")
    failing_app_then_location = block(apps={"includeApplications": [OTHER_APP]}, locations={"includeLocations": [HOST]})
    assert outcome(failing_app_then_location) == (Outcome.DOES_NOT_APPLY, "application")


# --- 2. users -----------------------------------------------------------------------------------------


def test_decision_02_ids_are_compared_case_insensitively() -> None:
    assert outcome(block(users={"includeUsers": [USER.upper()]})) == APPLIES
    assert outcome(block(users={"includeGroups": [GROUP.upper()]}), group_ids={GROUP})[0] is Outcome.APPLIES
    excluded = block(users={"includeUsers": ["All"], "excludeUsers": [USER.upper()]})
    assert outcome(excluded) == (Outcome.DOES_NOT_APPLY, "users")


def test_decision_02_an_unresolved_reference_matches_only_the_same_string_else_cannot_tell() -> None:
    by_name = block(users={"includeGroups": ["CIPP Technicians"]})
    assert outcome(by_name) == (Outcome.CANNOT_TELL, "users")
    assert outcome(by_name, group_ids={"cipp technicians"}) == APPLIES
    assert outcome(block(users={"includeGroups": [GROUP]})) == (Outcome.DOES_NOT_APPLY, "users")


def test_decision_02_nulls_and_blanks_in_a_list_are_no_reference() -> None:
    """Real exports carry them; neither is an unresolved placeholder that would make the users condition unknowable."""
    assert outcome(block(users={"includeUsers": ["All"], "excludeUsers": [None, " ", ""]})) == APPLIES
    assert outcome(block(users={"includeUsers": ["All"], "excludeGroups": "  ,"})) == APPLIES


def test_decision_02_a_member_user_is_never_a_guest_and_all_matches_every_external_kind() -> None:
    guests = block(users={"includeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "internalGuest"}})
    assert outcome(guests) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(guests, external=ExternalUser("internalGuest")) == APPLIES
    assert outcome(block(), external=ExternalUser("b2bDirectConnectUser", OTHER_TENANT)) == APPLIES


def test_decision_02_groups_never_hold_a_service_provider_only_a_service_provider_selection_does() -> None:
    technician = ExternalUser("serviceProvider", MSP_TENANT)
    by_group = block(users={"includeUsers": ["All"], "excludeGroups": [GROUP]})
    assert outcome(by_group, external=technician, group_ids={GROUP}) == APPLIES
    by_type = block(
        users={
            "includeUsers": ["All"],
            "excludeGuestsOrExternalUsers": {
                "guestOrExternalUserTypes": "serviceProvider",
                "externalTenants": {"membershipKind": "enumerated", "members": [MSP_TENANT]},
            },
        }
    )
    assert outcome(by_type, external=technician) == (Outcome.DOES_NOT_APPLY, "users")
    assert outcome(by_type, external=ExternalUser("serviceProvider", OTHER_TENANT)) == APPLIES
    assert outcome(by_type, external=ExternalUser("serviceProvider", None)) == (Outcome.CANNOT_TELL, "users")
    # A guest with a user object is held by its groups.
    assert outcome(by_group, external=ExternalUser("b2bCollaborationGuest", OTHER_TENANT), group_ids={GROUP}) == (
        Outcome.DOES_NOT_APPLY,
        "users",
    )


def test_decision_02_internal_guests_are_not_bound_to_an_external_tenant() -> None:
    local_guests = block(
        users={
            "includeGuestsOrExternalUsers": {
                "guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest",
                "externalTenants": {"membershipKind": "enumerated", "members": [MSP_TENANT]},
            }
        }
    )
    assert outcome(local_guests, external=ExternalUser("internalGuest", None)) == APPLIES
    assert outcome(local_guests, external=ExternalUser("b2bCollaborationGuest", OTHER_TENANT))[0] is (
        Outcome.DOES_NOT_APPLY
    )


# --- 3. applications ---------------------------------------------------------------------------------


def test_decision_03_an_unstated_application_decides_only_all_apps_without_exclusions() -> None:
    assert outcome(block(), application_id=None) == APPLIES
    narrower = block(apps={"includeApplications": [APP]})
    assert outcome(narrower, application_id=None) == (Outcome.CANNOT_TELL, "application")
    with_exclusion = block(apps={"includeApplications": ["All"], "excludeApplications": [OTHER_APP]})
    assert outcome(with_exclusion, application_id=None) == (Outcome.CANNOT_TELL, "application")
    assert outcome(with_exclusion) == APPLIES


def test_decision_03_app_groups_come_from_the_sign_in_else_cannot_tell() -> None:
    office = block(apps={"includeApplications": ["Office365"]})
    assert outcome(office) == (Outcome.CANNOT_TELL, "application")
    assert outcome(office, app_groups={"Office365"}) == APPLIES
    assert outcome(office, app_groups=set()) == (Outcome.DOES_NOT_APPLY, "application")


def test_decision_03_unknown_app_keywords_and_application_filters_are_cannot_tell() -> None:
    agents = block(apps={"includeApplications": ["AllAgentIdResources"]})
    assert outcome(agents, app_groups=set()) == (Outcome.CANNOT_TELL, "application")
    filtered = block(
        apps={
            "includeApplications": ["All"],
            "applicationFilter": {"mode": "exclude", "rule": 'CustomSecurityAttribute.x -eq "y"'},
        }
    )
    assert outcome(filtered) == (Outcome.CANNOT_TELL, "application")


def test_decision_03_a_user_action_is_not_an_application_sign_in() -> None:
    register = block(apps={"includeUserActions": ["urn:user:registersecurityinfo"]})
    assert outcome(block(), user_action="registerSecurityInformation") == (Outcome.DOES_NOT_APPLY, "application")
    assert outcome(register, user_action="registerSecurityInformation") == APPLIES
    assert outcome(register) == (Outcome.DOES_NOT_APPLY, "userActions")


def test_decision_03_an_authentication_context_policy_needs_the_context_named() -> None:
    context = block(apps={"includeAuthenticationContextClassReferences": ["c1"]})
    assert outcome(context) == (Outcome.CANNOT_TELL, "authenticationContext")
    assert outcome(context, authentication_context="C1") == APPLIES
    assert outcome(context, authentication_context="c2") == (Outcome.DOES_NOT_APPLY, "authenticationContext")


# --- 4. locations ------------------------------------------------------------------------------------


def test_decision_04_empty_include_with_exclusions_means_all() -> None:
    """A block with only excludeLocations holds everywhere but there (the article's Part A shape)."""
    only_exclusions = block(locations={"excludeLocations": [OFFICE]})
    assert outcome(only_exclusions) == APPLIES
    assert outcome(only_exclusions, client_ip=OFFICE_IP) == (Outcome.DOES_NOT_APPLY, "location")
    assert run([only_exclusions]).enforced.blocked


def test_decision_04_all_trusted_is_the_trusted_named_locations_plus_the_mfa_trusted_ips() -> None:
    outside_trusted = block(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})
    whole = [location for location in LOCATIONS if location["id"] != BROKEN]
    assert outcome(outside_trusted, locations=whole, client_ip=OFFICE_IP, mfa_trusted_ips=None) == (
        Outcome.DOES_NOT_APPLY,
        "location",
    )
    # The IP is in no trusted named location: unknown MFA trusted IPs matter, known ones decide.
    assert outcome(outside_trusted, locations=whole, mfa_trusted_ips=None) == (Outcome.CANNOT_TELL, "location")
    assert outcome(outside_trusted, locations=whole, mfa_trusted_ips=[]) == APPLIES
    assert outcome(outside_trusted, locations=whole, mfa_trusted_ips=["203.0.113.0/24"]) == (
        Outcome.DOES_NOT_APPLY,
        "location",
    )
    # An untrusted named location is not part of AllTrusted.
    assert outcome(outside_trusted, locations=whole, client_ip="192.0.2.7") == APPLIES


def test_decision_04_the_mfa_trusted_ips_pseudo_location_by_its_zero_id() -> None:
    zero = block(locations={"includeLocations": ["00000000-0000-0000-0000-000000000000"]})
    assert outcome(zero, mfa_trusted_ips=None) == (Outcome.CANNOT_TELL, "location")
    assert outcome(zero, mfa_trusted_ips=["203.0.113.0/24"]) == APPLIES
    assert outcome(zero, mfa_trusted_ips=["10.0.0.0/8"]) == (Outcome.DOES_NOT_APPLY, "location")


def test_decision_04_country_locations_use_the_stated_country_only() -> None:
    benelux = block(locations={"includeLocations": [COUNTRIES]})
    assert outcome(benelux) == (Outcome.CANNOT_TELL, "location")
    assert outcome(benelux, country="nl") == APPLIES
    assert outcome(benelux, country="FR") == (Outcome.DOES_NOT_APPLY, "location")


@pytest.mark.parametrize("location", [COMPLIANT, "eeeeeeee-0000-0000-0000-0000000000ff"])
def test_decision_04_compliant_network_and_unknown_locations_are_cannot_tell(location: str) -> None:
    assert outcome(block(locations={"includeLocations": [location]})) == (Outcome.CANNOT_TELL, "location")
    excluded = block(locations={"includeLocations": ["All"], "excludeLocations": [location]})
    assert outcome(excluded) == (Outcome.CANNOT_TELL, "location")


def test_decision_04_an_unparseable_range_is_cannot_tell_unless_a_good_range_holds_the_ip() -> None:
    outside_broken = block(locations={"includeLocations": ["All"], "excludeLocations": [BROKEN]})
    assert outcome(outside_broken) == (Outcome.CANNOT_TELL, "location"), "the bad range may hold the IP"
    assert outcome(outside_broken, client_ip="192.0.2.3") == (Outcome.DOES_NOT_APPLY, "location")
    inside_broken = block(locations={"includeLocations": [BROKEN]})
    assert outcome(inside_broken) == (Outcome.CANNOT_TELL, "location")
    # Through AllTrusted too: a trusted location with a bad range never proves an IP outside it.
    outside_trusted = block(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})
    assert outcome(outside_trusted) == (Outcome.CANNOT_TELL, "location")
    assert run([outside_trusted]).enforced.uncertain


@pytest.mark.parametrize(
    "bad_range",
    [
        {"lowerAddress": "203.0.113.200", "upperAddress": "203.0.113.100"},  # upper below lower
        {"lowerAddress": "203.0.113.1", "upperAddress": "2001:db8::1"},  # two IP versions
        {"lowerAddress": "203.0.113.1"},  # no upper
        {"cidrAddress": "203.0.113.0/33"},
        "203.0.113.0/24",  # not an ipRange object
    ],
)
def test_decision_04_each_kind_of_unparseable_range_is_cannot_tell(bad_range: Any) -> None:
    location = {"id": BROKEN, "ipRanges": [{"cidrAddress": "192.0.2.0/28"}, bad_range]}
    outside = block(locations={"includeLocations": ["All"], "excludeLocations": [BROKEN]})
    assert outcome(outside, locations=[location]) == (Outcome.CANNOT_TELL, "location")


def test_decision_04_a_lower_upper_range_is_parsed_inclusively() -> None:
    location = {"id": HOST, "ipRanges": [{"lowerAddress": "203.0.113.40", "upperAddress": "203.0.113.50"}]}
    inside = block(locations={"includeLocations": [HOST]})
    assert outcome(inside, locations=[location]) == APPLIES
    assert outcome(inside, locations=[location], client_ip="203.0.113.40") == APPLIES
    assert outcome(inside, locations=[location], client_ip="203.0.113.51") == (Outcome.DOES_NOT_APPLY, "location")


def test_decision_04_a_single_address_lower_upper_range_and_a_cidr_with_host_bits() -> None:
    location = {
        "id": HOST,
        "ipRanges": [
            {"lowerAddress": "203.0.113.50", "upperAddress": "203.0.113.50"},
            {"cidrAddress": "198.51.100.10/24"},  # read as its network, 198.51.100.0/24
        ],
    }
    inside = block(locations={"includeLocations": [HOST]})
    assert outcome(inside, locations=[location]) == APPLIES
    assert outcome(inside, locations=[location], client_ip="198.51.100.200") == APPLIES
    assert outcome(inside, locations=[location], client_ip="203.0.113.51") == (Outcome.DOES_NOT_APPLY, "location")


# --- 5. platforms ------------------------------------------------------------------------------------


def test_decision_05_an_unknown_platform_is_matched_by_all_only() -> None:
    every = block(platforms={"includePlatforms": ["all"]})
    assert outcome(every) == APPLIES
    windows = block(platforms={"includePlatforms": ["windows"]})
    assert outcome(windows) == (Outcome.DOES_NOT_APPLY, "devicePlatform")
    assert outcome(windows, device_platform="Windows") == APPLIES
    assert outcome(windows, device_platform="linux") == (Outcome.DOES_NOT_APPLY, "devicePlatform")
    all_but_windows = block(platforms={"includePlatforms": ["all"], "excludePlatforms": ["windows"]})
    assert outcome(all_but_windows) == APPLIES
    assert outcome(all_but_windows, device_platform="windows") == (Outcome.DOES_NOT_APPLY, "devicePlatform")


# --- 6. risk, authentication flows, conditions a user sign-in cannot decide -----------------------------


def test_decision_06_the_device_code_flow_condition_is_matched_exactly_when_stated() -> None:
    device_code = block(authenticationFlows={"transferMethods": "deviceCodeFlow"})
    assert outcome(device_code) == (Outcome.CANNOT_TELL, "authenticationFlow")
    assert outcome(device_code, authentication_flow="deviceCodeFlow") == APPLIES
    assert outcome(device_code, authentication_flow="authenticationTransfer") == (
        Outcome.DOES_NOT_APPLY,
        "authenticationFlow",
    )
    assert outcome(device_code, authentication_flow="none") == (Outcome.DOES_NOT_APPLY, "authenticationFlow")
    both = block(authenticationFlows={"transferMethods": "deviceCodeFlow,authenticationTransfer"})
    assert outcome(both, authentication_flow="authenticationTransfer") == APPLIES


def test_decision_06_transfer_methods_none_is_no_condition() -> None:
    assert outcome(block(authenticationFlows={"transferMethods": "none"})) == APPLIES


@pytest.mark.parametrize(
    ("condition", "value", "field", "level", "other"),
    [
        ("signInRiskLevels", ["high"], "sign_in_risk", "high", "low"),
        ("userRiskLevels", ["medium"], "user_risk", "medium", "none"),
        ("insiderRiskLevels", ["elevated"], "insider_risk", "elevated", "minor"),
    ],
)
def test_decision_06_risk_is_matched_exactly_when_stated(
    condition: str, value: list[str], field: str, level: str, other: str
) -> None:
    risky = block(**{condition: value})
    assert outcome(risky)[0] is Outcome.CANNOT_TELL
    assert outcome(risky, **{field: level}) == APPLIES
    assert outcome(risky, **{field: other})[0] is Outcome.DOES_NOT_APPLY


@pytest.mark.parametrize(
    ("condition", "value", "reason"),
    [
        ("devices", {"deviceFilter": {"mode": "include", "rule": 'device.isCompliant -eq "True"'}}, "devices"),
        ("deviceStates", {"includeStates": ["All"]}, "devices"),
        ("agents", {"includeAgents": ["All"]}, "notEnoughInformation"),
        ("servicePrincipalRiskLevels", ["high"], "workloadIdentities"),
    ],
)
def test_decision_06_conditions_a_user_sign_in_cannot_decide_are_cannot_tell(
    condition: str, value: Any, reason: str
) -> None:
    assert outcome(block(**{condition: value})) == (Outcome.CANNOT_TELL, reason)


def test_decision_06_an_empty_unknown_condition_is_no_condition() -> None:
    assert outcome(block(times=None, agents={"includeAgents": []})) == APPLIES
    assert outcome(block(agents={"includeAgents": None, "isEnabled": False, "@odata.type": "#x"})) == APPLIES
    assert outcome(block(agents={"isEnabled": True})) == (Outcome.CANNOT_TELL, "notEnoughInformation")
    assert outcome(block(agents={"count": 0})) == (Outcome.CANNOT_TELL, "notEnoughInformation")


def test_decision_06_a_workload_identity_policy_fails_users_first() -> None:
    workload_policy = block(
        users={"includeUsers": ["None"]}, clientApplications={"includeServicePrincipals": [PRINCIPAL]}
    )
    assert outcome(workload_policy) == (Outcome.DOES_NOT_APPLY, "users")


# --- 7. grant operator and control names -----------------------------------------------------------------


def test_decision_07_a_missing_or_unknown_operator_is_and() -> None:
    for grant in (
        {"builtInControls": ["mfa", "compliantDevice"]},
        {"operator": "XOR", "builtInControls": ["mfa", "compliantDevice"]},
        {"operator": None, "builtInControls": ["mfa", "compliantDevice"]},
    ):
        verdict = run([policy(grant=grant)]).enforced
        assert not verdict.satisfied_by({"mfa"})
        assert verdict.satisfied_by({"mfa", "compliantDevice"})
    either = run([policy(grant={"operator": "or", "builtInControls": ["mfa", "compliantDevice"]})]).enforced
    assert either.satisfied_by({"compliantDevice"})


def test_decision_07_control_names() -> None:
    grant = {
        "operator": "AND",
        "builtInControls": [],
        "authenticationStrength": {"id": STRENGTH.upper()},
        "termsOfUse": ["tou-1"],
        "customAuthenticationFactors": ["duo"],
    }
    [requirement] = run([policy(grant=grant)]).enforced.requirements
    assert requirement.controls == (
        f"authenticationStrength:{STRENGTH}",
        "termsOfUse:tou-1",
        "customAuthenticationFactor:duo",
    )


# --- 8. states --------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["disabled", "", None, "enabledButUnknown", "reportOnly"])
def test_decision_08_other_states_are_disabled(state: str | None) -> None:
    one = block(state=state)
    evaluation = run([one])
    assert (evaluation.results[0].outcome, evaluation.results[0].reason) == (Outcome.DOES_NOT_APPLY, "policyNotEnabled")
    assert not evaluation.if_report_only_were_on.blocked


def test_decision_08_states_are_read_case_insensitively_and_report_only_is_not_enforced() -> None:
    assert run([block(state="ENABLED")]).enforced.blocked
    report_only = run([block(state="enabledforreportingbutnotenforced")])
    assert not report_only.enforced.blocked
    assert report_only.if_report_only_were_on.blocked


# --- 9. verdicts --------------------------------------------------------------------------------------


def test_decision_09_a_cannot_tell_block_is_uncertain_unless_a_block_definitely_applies() -> None:
    maybe = block(name="maybe", users={"includeGroups": ["<Admins>"]})
    assert [r.key for r in run([maybe]).enforced.uncertain] == ["maybe"]
    assert run([maybe, block(name="sure")]).enforced.uncertain == ()


def test_decision_09_a_cannot_tell_grant_is_uncertain_only_when_not_implied() -> None:
    maybe_mfa = policy(name="maybe mfa", users={"includeGroups": ["<Admins>"]})
    assert [r.key for r in run([maybe_mfa]).enforced.uncertain] == ["maybe mfa"]
    assert run([maybe_mfa, policy(name="sure mfa")]).enforced.uncertain == ()
    maybe_device = policy(
        name="maybe device", users={"includeGroups": ["<Admins>"]}, grant={"builtInControls": ["compliantDevice"]}
    )
    assert [r.key for r in run([maybe_device, policy(name="sure mfa")]).enforced.uncertain] == ["maybe device"]


def test_decision_09_a_requirement_implies_another_only_when_every_way_to_meet_it_does() -> None:
    maybe_mfa = policy(name="maybe mfa", users={"includeGroups": ["<Admins>"]})
    mfa_or_device = policy(name="sure either", grant={"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]})
    assert [r.key for r in run([mfa_or_device, maybe_mfa]).enforced.uncertain] == ["maybe mfa"]
    maybe_either = policy(
        name="maybe either",
        users={"includeGroups": ["<Admins>"]},
        grant={"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]},
    )
    assert run([policy(name="sure mfa"), maybe_either]).enforced.uncertain == ()
    both = policy(name="sure both", grant={"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]})
    assert run([both, maybe_mfa]).enforced.uncertain == ()


def test_decision_09_a_cannot_tell_stricter_session_is_uncertain() -> None:
    every_time = {"signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"}}
    eight_hours = {
        "signInFrequency": {"isEnabled": True, "type": "hours", "value": 8, "frequencyInterval": "timeBased"}
    }
    one_day = {"signInFrequency": {"isEnabled": True, "type": "days", "value": 1, "frequencyInterval": "timeBased"}}
    maybe_every_time = policy(name="maybe", users={"includeGroups": ["<Admins>"]}, session=every_time)
    assert [r.key for r in run([maybe_every_time, policy(name="sure", session=eight_hours)]).enforced.uncertain] == [
        "maybe"
    ]
    maybe_day = policy(name="maybe", users={"includeGroups": ["<Admins>"]}, session=one_day)
    assert run([maybe_day, policy(name="sure", session=eight_hours)]).enforced.uncertain == ()
    maybe_eight = policy(name="maybe", users={"includeGroups": ["<Admins>"]}, session=eight_hours)
    assert [r.key for r in run([maybe_eight, policy(name="sure", session=one_day)]).enforced.uncertain] == ["maybe"]


def test_decision_09_an_equal_or_looser_frequency_adds_nothing() -> None:
    eight_hours = {
        "signInFrequency": {"isEnabled": True, "type": "hours", "value": 8, "frequencyInterval": "timeBased"}
    }
    maybe_eight = policy(name="maybe", users={"includeGroups": ["<Admins>"]}, session=eight_hours)
    assert run([maybe_eight, policy(name="sure", session=eight_hours)]).enforced.uncertain == ()


def test_decision_09_session_controls_as_compiled() -> None:
    def session_of(controls: Mapping[str, Any] | None) -> tuple[bool, float | None, frozenset[str]]:
        verdict = run([policy(session=controls)]).enforced
        return verdict.reauth_every_time, verdict.session.frequency_hours, verdict.session.controls

    assert session_of(None) == (False, None, frozenset())
    day = {"signInFrequency": {"isEnabled": True, "type": "days", "value": 1, "frequencyInterval": "timeBased"}}
    assert session_of(day) == (False, 24.0, frozenset())
    off = {"signInFrequency": {"isEnabled": False, "type": "hours", "value": 1}}
    assert session_of(off) == (False, None, frozenset())
    every_time = {"signInFrequency": {"isEnabled": True, "value": 1, "frequencyInterval": "everyTime"}}
    assert session_of(every_time) == (True, None, frozenset())
    others = {
        "disableResilienceDefaults": True,
        "continuousAccessEvaluation": False,
        "@odata.type": "#microsoft.graph.conditionalAccessSessionControls",
        "cloudAppSecurity": {"isEnabled": True, "cloudAppSecurityType": "monitorOnly"},
        "persistentBrowser": {"isEnabled": True, "mode": "never"},
        "applicationEnforcedRestrictions": {"isEnabled": True},
        "secureSignInSession": {"isEnabled": False},
    }
    assert session_of(others)[2] == frozenset(
        {
            "disableResilienceDefaults",
            "cloudAppSecurity:monitorOnly",
            "persistentBrowser:never",
            "applicationEnforcedRestrictions",
        }
    )


def test_decision_09_a_policy_has_an_effect_through_a_block_a_grant_or_a_session_control() -> None:
    def has_effect(one: Mapping[str, Any]) -> bool:
        return PolicySet.compile([one]).policies[0].has_effect

    assert has_effect(block())
    assert has_effect(policy())
    assert has_effect(policy(grant={}, session={"disableResilienceDefaults": True}))
    every_time = {"signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"}}
    assert has_effect(policy(grant={}, session=every_time))
    hourly = {"signInFrequency": {"isEnabled": True, "type": "hours", "value": 1, "frequencyInterval": "timeBased"}}
    assert has_effect(policy(grant={}, session=hourly))
    assert not has_effect(policy(grant={}, session={}))


def test_decision_09_requires_mfa_only_when_it_cannot_be_avoided() -> None:
    assert run([policy()]).enforced.requires_mfa
    either = policy(grant={"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]})
    assert not run([either]).enforced.requires_mfa
    strength = policy(grant={"authenticationStrength": {"id": STRENGTH}})
    verdict = run([strength]).enforced
    assert verdict.requires_mfa
    assert not verdict.satisfied_by({"mfa"}), "controls are compared literally"
    assert verdict.satisfied_by({f"authenticationStrength:{STRENGTH}"})
    assert not run([block(), policy()]).enforced.requires_mfa, "a blocked sign-in requires nothing"
    device = policy(name="device", grant={"builtInControls": ["compliantDevice"]})
    assert run([device, policy(name="mfa")]).enforced.requires_mfa, "one unavoidable MFA is enough"


# --- 10. placeholders are positive only -------------------------------------------------------------


def test_decision_10_a_placeholder_can_be_asserted_but_not_denied() -> None:
    include = block(users={"includeGroups": ["<AdminGroup>"]})
    assert outcome(include, group_ids={"<AdminGroup>"}) == APPLIES
    assert outcome(include) == (Outcome.CANNOT_TELL, "users")
    exclude = block(users={"includeUsers": ["All"], "excludeGroups": ["<EmergencyAccessAccountsGroup>"]})
    assert outcome(exclude) == (Outcome.CANNOT_TELL, "users")
    assert outcome(exclude, group_ids={"<EmergencyAccessAccountsGroup>"}) == (Outcome.DOES_NOT_APPLY, "users")


# --- 11. workload identities ---------------------------------------------------------------------------


def test_decision_11_a_user_policy_never_applies_to_a_service_principal() -> None:
    assert workload(block()) == (Outcome.DOES_NOT_APPLY, "users")


def workload_block(client_applications: Mapping[str, Any], **conditions: Any) -> dict[str, Any]:
    return block(users={"includeUsers": ["None"]}, clientApplications=dict(client_applications), **conditions)


def test_decision_11_service_principals_by_id_or_in_my_tenant() -> None:
    by_id = workload_block({"includeServicePrincipals": [PRINCIPAL.upper()]})
    assert workload(by_id) == APPLIES
    assert workload(by_id, service_principal_id=OTHER_PRINCIPAL) == (Outcome.DOES_NOT_APPLY, "workloadIdentities")
    mine = workload_block(
        {"includeServicePrincipals": ["ServicePrincipalsInMyTenant"], "excludeServicePrincipals": [OTHER_PRINCIPAL]}
    )
    assert workload(mine) == APPLIES
    assert workload(mine, service_principal_id=OTHER_PRINCIPAL) == (Outcome.DOES_NOT_APPLY, "workloadIdentities")


def test_decision_11_the_resource_a_principal_asks_a_token_for_is_its_application() -> None:
    for_app = workload_block({"includeServicePrincipals": [PRINCIPAL]}, applications={"includeApplications": [APP]})
    assert workload(for_app) == APPLIES
    assert workload(for_app, application_id=OTHER_APP) == (Outcome.DOES_NOT_APPLY, "application")
    assert workload(for_app, application_id=None) == (Outcome.CANNOT_TELL, "application")


def test_decision_11_a_placeholder_among_principal_ids_leaves_others_cannot_tell() -> None:
    mixed = workload_block({"includeServicePrincipals": [PRINCIPAL, "<CIPP-API client>"]})
    assert workload(mixed) == APPLIES
    assert workload(mixed, service_principal_id=OTHER_PRINCIPAL) == (Outcome.CANNOT_TELL, "workloadIdentities")


def test_decision_11_only_single_tenant_principals_are_covered() -> None:
    mine = workload_block({"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]})
    assert workload(mine, single_tenant=False) == (Outcome.DOES_NOT_APPLY, "workloadIdentities")


def test_decision_11_a_placeholder_principal_matches_only_itself() -> None:
    by_id = workload_block({"includeServicePrincipals": [PRINCIPAL]})
    assert workload(by_id, service_principal_id="<CIPP-API client>") == (Outcome.CANNOT_TELL, "workloadIdentities")
    by_placeholder = workload_block({"includeServicePrincipals": ["<CIPP-API client>"]})
    assert workload(by_placeholder, service_principal_id="<CIPP-API client>") == APPLIES
    assert workload(by_placeholder) == (Outcome.CANNOT_TELL, "workloadIdentities")


def test_decision_11_filter_risk_and_client_app_types() -> None:
    filtered = workload_block(
        {
            "includeServicePrincipals": ["ServicePrincipalsInMyTenant"],
            "servicePrincipalFilter": {"mode": "exclude", "rule": 'CustomSecurityAttribute.x -eq "y"'},
        }
    )
    assert workload(filtered) == (Outcome.CANNOT_TELL, "workloadIdentities")
    risky = workload_block({"includeServicePrincipals": [PRINCIPAL]}, servicePrincipalRiskLevels=["high"])
    assert workload(risky) == (Outcome.CANNOT_TELL, "workloadIdentities")
    assert workload(risky, service_principal_risk="high") == APPLIES
    assert workload(risky, service_principal_risk="low") == (Outcome.DOES_NOT_APPLY, "workloadIdentities")
    browser_only = workload_block({"includeServicePrincipals": [PRINCIPAL]})
    browser_only["conditions"]["clientAppTypes"] = ["browser"]
    assert workload(browser_only) == (Outcome.CANNOT_TELL, "clientApps")


def test_decision_11_a_workload_location_condition_uses_the_principal_ip() -> None:
    outside = workload_block(
        {"includeServicePrincipals": [PRINCIPAL]},
        locations={"includeLocations": ["All"], "excludeLocations": [OFFICE]},
    )
    policies = PolicySet.compile([outside], LOCATIONS, mfa_trusted_ips=[])
    home = policies.evaluate(ServicePrincipalSignIn(service_principal_id=PRINCIPAL, client_ip=HOME_IP))
    office = policies.evaluate(ServicePrincipalSignIn(service_principal_id=PRINCIPAL, client_ip=OFFICE_IP))
    assert home.enforced.blocked
    assert not office.enforced.blocked
