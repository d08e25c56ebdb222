"""The Graph bodies pulumi-azuread sends, checked against hand-written expected JSON (docs/graph-ca.md §4.3)."""

from __future__ import annotations

import pytest

from cipp_hardening.graph_render import (
    RejectedInput,
    UnsupportedInput,
    render_named_location,
    render_policy,
)

USERS_EMPTY: dict[str, object] = {
    "includeUsers": [],
    "excludeUsers": [],
    "includeGroups": [],
    "excludeGroups": [],
    "includeRoles": [],
    "excludeRoles": [],
    "includeGuestsOrExternalUsers": None,
    "excludeGuestsOrExternalUsers": None,
}


def test_named_location_body() -> None:
    inputs = {
        "displayName": "Trusted - MSP Office",
        "ip": {"ipRanges": ["203.0.113.0/24", "2001:db8::/32"], "trusted": True},
    }
    assert render_named_location(inputs) == {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": "Trusted - MSP Office",
        "isTrusted": True,
        "ipRanges": [
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"},
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "2001:db8::/32"},
        ],
    }


def test_country_location_is_refused_not_guessed() -> None:
    with pytest.raises(UnsupportedInput, match="country"):
        render_named_location({"displayName": "x", "country": {"countriesAndRegions": ["NL"]}})


def test_technician_block_policy_body() -> None:
    inputs = {
        "displayName": "Block CIPP Access - Outside Trusted IPs",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includedApplications": ["All"]},
            "users": {
                "includedGroups": ["g1"],
                "excludedUsers": ["bg1", "sa"],
                "excludedGroups": [],
                "includedUsers": [],
            },
            "locations": {"includedLocations": ["All"], "excludedLocations": ["loc-guid"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    assert render_policy(inputs) == {
        "@odata.type": "#microsoft.graph.conditionalAccessPolicy",
        "displayName": "Block CIPP Access - Outside Trusted IPs",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": []},
            "clientAppTypes": ["all"],
            "signInRiskLevels": [],
            "userRiskLevels": [],
            "servicePrincipalRiskLevels": [],
            "users": {**USERS_EMPTY, "includeGroups": ["g1"], "excludeUsers": ["bg1", "sa"]},
            "locations": {"includeLocations": ["All"], "excludeLocations": ["loc-guid"]},
            "platforms": None,
            "devices": None,
            "authenticationFlows": None,
        },
        "grantControls": {
            "builtInControls": ["block"],
            "customAuthenticationFactors": [],
            "operator": "OR",
            "termsOfUse": [],
        },
        "sessionControls": None,
    }


def test_service_account_every_time_body_omits_fields_graph_rejects() -> None:
    inputs = {
        "displayName": "CIPP Service Account Conditional Access Policy",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includedApplications": ["All"]},
            "users": {"includedUsers": ["sa"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        "sessionControls": {
            "signInFrequencyInterval": "everyTime",
            "signInFrequencyAuthenticationType": "primaryAndSecondaryAuthentication",
        },
    }
    body = render_policy(inputs)
    assert body["conditions"]["locations"] is None
    assert body["sessionControls"] == {
        "cloudAppSecurity": None,
        "signInFrequency": {
            "@odata.type": "#microsoft.graph.signInFrequencySessionControl",
            "isEnabled": True,
            "frequencyInterval": "everyTime",
            "authenticationType": "primaryAndSecondaryAuthentication",
        },
    }


def test_time_based_frequency_sends_restrictions_and_resilience() -> None:
    body = render_policy(
        {
            "displayName": "x",
            "state": "enabled",
            "conditions": {
                "clientAppTypes": ["all"],
                "applications": {"includedApplications": ["All"]},
                "users": {"includedUsers": ["All"]},
            },
            "sessionControls": {"signInFrequency": 4, "signInFrequencyPeriod": "hours"},
        }
    )
    assert body["grantControls"] is None
    assert body["sessionControls"] == {
        "cloudAppSecurity": None,
        "signInFrequency": {
            "@odata.type": "#microsoft.graph.signInFrequencySessionControl",
            "isEnabled": True,
            "type": "hours",
            "value": 4,
            "frequencyInterval": "timeBased",
            "authenticationType": "primaryAndSecondaryAuthentication",
        },
        "applicationEnforcedRestrictions": {
            "@odata.type": "#microsoft.graph.applicationEnforcedRestrictionsSessionControl",
            "isEnabled": False,
        },
        "disableResilienceDefaults": False,
    }


def test_all_off_session_controls_are_null() -> None:
    body = render_policy(
        {
            "displayName": "x",
            "state": "enabled",
            "conditions": {
                "clientAppTypes": ["all"],
                "applications": {"includedApplications": ["All"]},
                "users": {"includedUsers": ["All"]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
            "sessionControls": {"applicationEnforcedRestrictionsEnabled": False},
        }
    )
    assert body["sessionControls"] is None


def test_service_provider_exclusion_is_enumerated_with_odata_type() -> None:
    body = render_policy(
        {
            "displayName": "x",
            "state": "enabled",
            "conditions": {
                "clientAppTypes": ["browser", "mobileAppsAndDesktopClients"],
                "applications": {"includedApplications": ["All"]},
                "users": {
                    "includedUsers": ["All"],
                    "excludedGuestsOrExternalUsers": [
                        {
                            "guestOrExternalUserTypes": ["serviceProvider", "internalGuest"],
                            "externalTenants": [{"membershipKind": "enumerated", "members": ["msp"]}],
                        }
                    ],
                    "includedGuestsOrExternalUsers": [
                        {
                            "guestOrExternalUserTypes": ["b2bCollaborationGuest"],
                            "externalTenants": [{"membershipKind": "all"}],
                        }
                    ],
                },
            },
            "grantControls": {"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]},
        }
    )
    users = body["conditions"]["users"]
    assert users["excludeGuestsOrExternalUsers"] == {
        "guestOrExternalUserTypes": "serviceProvider,internalGuest",
        "externalTenants": {
            "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
            "membershipKind": "enumerated",
            "members": ["msp"],
        },
    }
    assert users["includeGuestsOrExternalUsers"] == {
        "guestOrExternalUserTypes": "b2bCollaborationGuest",
        "externalTenants": {"membershipKind": "all"},
    }


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("conditions", {"devices": {"filter": {"mode": "exclude", "rule": "x"}}}),
        ("conditions.users", {"includedRolesX": ["r"]}),
        ("grantControls", {"authenticationStrengthPolicyId": "/policies/authenticationStrengthPolicies/x"}),
        ("sessionControls", {"cloudAppSecurityPolicy": "blockDownloads"}),
    ],
)
def test_unknown_inputs_are_refused(path: str, extra: dict[str, object]) -> None:
    inputs: dict[str, object] = {
        "displayName": "x",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includedApplications": ["All"]},
            "users": {"includedUsers": ["All"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        "sessionControls": {"signInFrequencyInterval": "everyTime"},
    }
    target: dict[str, object] = inputs
    for part in path.split("."):
        target = target[part]  # type: ignore[assignment]
    target.update(extra)
    with pytest.raises(UnsupportedInput):
        render_policy(inputs)


# -- what terraform-provider-azuread's expand functions send (internal/services/conditionalaccess) ----
def minimal_policy(session: dict[str, object]) -> dict[str, object]:
    return {
        "displayName": "p",
        "state": "enabled",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includedApplications": ["All"]},
            "users": {"includedUsers": ["All"]},
        },
        "sessionControls": session,
    }


def test_an_authentication_type_alone_is_sent_as_the_provider_sends_it() -> None:
    """expandConditionalAccessSessionControls keeps a non-default authenticationType with nothing else set."""
    body = render_policy(minimal_policy({"signInFrequencyAuthenticationType": "secondaryAuthentication"}))
    assert body["sessionControls"] == {
        "cloudAppSecurity": None,
        "signInFrequency": {
            "@odata.type": "#microsoft.graph.signInFrequencySessionControl",
            "authenticationType": "secondaryAuthentication",
        },
        "applicationEnforcedRestrictions": {
            "@odata.type": "#microsoft.graph.applicationEnforcedRestrictionsSessionControl",
            "isEnabled": False,
        },
        "disableResilienceDefaults": False,
    }
    default_only = minimal_policy({"signInFrequencyAuthenticationType": "primaryAndSecondaryAuthentication"})
    assert render_policy(default_only)["sessionControls"] is None  # all-default: not sent


def test_persistent_browser_carries_its_odata_type() -> None:
    body = render_policy(minimal_policy({"persistentBrowserMode": "never"}))
    assert body["sessionControls"]["persistentBrowser"] == {
        "@odata.type": "#microsoft.graph.persistentBrowserSessionControl",
        "isEnabled": True,
        "mode": "never",
    }


@pytest.mark.parametrize(
    "session",
    [
        {"signInFrequencyInterval": "everyTime", "signInFrequency": 4, "signInFrequencyPeriod": "hours"},
        {"signInFrequencyInterval": "everyTime", "signInFrequencyPeriod": "days"},
    ],
)
def test_every_time_with_a_period_or_value_is_rejected_like_the_provider_does(session: dict[str, object]) -> None:
    with pytest.raises(RejectedInput, match="everyTime cannot be combined"):
        render_policy(minimal_policy(session))
