"""cipp_hardening/whatif.py: what is asked of Microsoft's What If, and how answers are compared (docs/assurance.md)."""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.evaluator import ExternalUser, PolicySet, ServicePrincipalSignIn, SignIn
from cipp_hardening.scenarios import synthetic_user
from cipp_hardening.whatif import STAND_IN_APP, as_asked, askable, check, compare, request_body

USER = "4f2a9c1e-0d3b-4e8a-9b7c-2d1e0f3a4b5c"
BLOCK_ID = "aaaaaaaa-0000-0000-0000-000000000001"


def block_device_code() -> dict[str, Any]:
    return {
        "id": BLOCK_ID,
        "displayName": "Block device code flow",
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
            "authenticationFlows": {"transferMethods": "deviceCodeFlow"},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


@pytest.mark.parametrize(
    ("sign_in", "why"),
    [
        (SignIn(user_id=synthetic_user("technician")), "synthetic"),
        (SignIn(user_id=USER, external=ExternalUser("serviceProvider", "t")), "serviceProvider user"),
        (ServicePrincipalSignIn(service_principal_id=USER), "workload identity"),
        (SignIn(user_id="<AdminGroup member>"), "not an object id"),
    ],
)
def test_what_what_if_cannot_be_asked(sign_in: Any, why: str) -> None:
    assert why in str(askable(sign_in))


def test_the_request_states_what_the_scenario_states() -> None:
    sign_in = as_asked(SignIn(user_id=USER, client_ip="13.69.64.10", authentication_flow="deviceCodeFlow"))
    assert askable(sign_in) is None
    body = request_body(sign_in)
    assert body["signInIdentity"] == {"@odata.type": "#microsoft.graph.userSignIn", "userId": USER}
    assert body["signInContext"]["includeApplications"] == [STAND_IN_APP]
    assert body["signInConditions"] == {
        "clientAppType": "browser",
        "ipAddress": "13.69.64.10",
        "authenticationFlow": {"transferMethod": "deviceCodeFlow"},
    }
    action = request_body(SignIn(user_id=USER, user_action="urn:user:registersecurityinfo"))
    assert action["signInContext"] == {
        "@odata.type": "#microsoft.graph.userActionContext",
        "userAction": "registerSecurityInformation",
    }


def test_a_definite_difference_disagrees_and_not_enough_information_does_not() -> None:
    policies = [block_device_code()]
    policy_set = PolicySet.compile(policies, [])
    by_id = {BLOCK_ID: policies[0]}
    device_code = as_asked(SignIn(user_id=USER, authentication_flow="deviceCodeFlow"))
    says_no = [{"id": BLOCK_ID, "policyApplies": False, "analysisReasons": "authenticationFlow"}]
    found = compare("row", device_code, policy_set, says_no, by_id)
    assert found is not None
    assert found.policies == ("'Block device code flow'",)
    assert found.ours.startswith("blocked")
    assert found.microsoft.startswith("granted")
    no_info = [{"id": BLOCK_ID, "policyApplies": False, "analysisReasons": "notEnoughInformation"}]
    assert compare("row", device_code, policy_set, no_info, by_id) is None
    unstated = as_asked(SignIn(user_id=USER))  # ours: cannot tell the flow
    says_yes = [{"id": BLOCK_ID, "policyApplies": True, "analysisReasons": "notSet"}]
    assert compare("row", unstated, policy_set, says_yes, by_id) is None


def test_unavailable_stops_asking_and_is_said() -> None:
    class Refused(Exception):
        pass

    def ask(body: dict[str, Any]) -> list[dict[str, Any]]:
        raise Refused("HTTP 403")

    policies = [block_device_code()]
    result = check([("row", SignIn(user_id=USER))], PolicySet.compile(policies, []), policies, ask, Refused)
    assert result.asked == 0
    assert result.unavailable == "What If is not available: HTTP 403"
    assert result.disagreements == ()
