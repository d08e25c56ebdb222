"""The azuread stand-in's Diff as the bridged provider computes it (tools/standin/azuread_standin.py).

terraform-plugin-sdk v2 diffs a MaxItems=1 block by its count (`session_controls.#`), and the bridge's detailed
diff names list elements (`conditions.users.excludedUsers[1]`): pulumi-terraform-bridge
pkg/tfbridge/detailed_diff.go. docs/engine.md.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi.runtime.proto import provider_pb2

from tools.standin import azuread_standin as standin

Kind = provider_pb2.PropertyDiff.Kind
USERS = ["u1", "u2", "u3"]
INPUTS: dict[str, Any] = {
    "displayName": "Block outside",
    "state": "enabled",
    "conditions": {
        "applications": {"includedApplications": ["All"]},
        "clientAppTypes": ["all"],
        "users": {"includedGroups": ["g1"], "excludedUsers": USERS},
    },
    "grantControls": {"builtInControls": ["block"], "operator": "OR"},
}
GRAPH_POLICY: dict[str, Any] = {
    "id": "22222222-2222-2222-2222-222222222222",
    "displayName": "Block outside",
    "state": "enabled",
    "conditions": {
        "applications": {"includeApplications": ["All"]},
        "clientAppTypes": ["all"],
        "users": {"includeGroups": ["g1"], "excludeUsers": USERS},
    },
    "grantControls": {"builtInControls": ["block"], "operator": "OR"},
    "sessionControls": None,
}


def state(**graph: Any) -> dict[str, Any]:
    return standin.outputs_of(standin.POLICY, {**GRAPH_POLICY, **graph})


def detailed(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, int]:
    return dict(standin.diff_resource(standin.POLICY, olds, news).detailed)


def test_a_converged_policy_has_no_diff() -> None:
    assert detailed(state(), INPUTS) == {}


def test_a_portal_added_session_block_of_computed_values_only_is_a_change() -> None:
    # Sign-in frequency "every time", added in the portal: flattenConditionalAccessSessionControls gives a block
    # whose only non-zero values are the two Optional+Computed ones; SDK v2 sees session_controls.# go 1 -> 0.
    every_time = {
        "signInFrequency": {
            "isEnabled": True,
            "frequencyInterval": "everyTime",
            "authenticationType": "primaryAndSecondaryAuthentication",
        }
    }
    drifted = state(sessionControls=every_time)
    assert drifted["sessionControls"]["signInFrequencyInterval"] == "everyTime"
    assert drifted["sessionControls"]["signInFrequency"] == 0
    assert detailed(drifted, INPUTS) == {"sessionControls": Kind.DELETE}


def test_a_session_block_set_to_defaults_is_suppressed_only_while_it_is_all_defaults() -> None:
    # conditionalAccessPolicyDiffSuppress: session_controls.# 0 -> 1 is hidden when every field is at its default.
    defaults = {**INPUTS, "sessionControls": {"applicationEnforcedRestrictionsEnabled": False, "signInFrequency": 0}}
    assert detailed(state(), defaults) == {}
    every_time = {**INPUTS, "sessionControls": {"signInFrequencyInterval": "everyTime"}}
    assert detailed(state(), every_time) == {"sessionControls": Kind.ADD}


@pytest.mark.parametrize(
    ("excluded", "expected"),
    [
        (["u1", "u2", "u3", "u4"], {"conditions.users.excludedUsers[3]": Kind.ADD}),
        (["u1", "u3"], {"conditions.users.excludedUsers[1]": Kind.DELETE}),
        (["u1", "x", "u3"], {"conditions.users.excludedUsers[1]": Kind.UPDATE}),
        (["u1", "u2", standin.UNKNOWN], {"conditions.users.excludedUsers[2]": Kind.UPDATE}),
        ([], {f"conditions.users.excludedUsers[{i}]": Kind.DELETE for i in range(3)}),
    ],
)
def test_list_changes_are_reported_per_element(excluded: list[str], expected: dict[str, int]) -> None:
    news = copy.deepcopy(INPUTS)
    news["conditions"]["users"]["excludedUsers"] = excluded
    assert detailed(state(), news) == expected


def test_blocks_in_a_list_are_compared_index_by_index() -> None:
    guests = {"guestOrExternalUserTypes": "b2bCollaborationGuest,internalGuest"}
    users = {**GRAPH_POLICY["conditions"]["users"], "excludeGuestsOrExternalUsers": guests}
    olds = state(conditions={**GRAPH_POLICY["conditions"], "users": users})
    news = copy.deepcopy(INPUTS)
    news["conditions"]["users"]["excludedGuestsOrExternalUsers"] = [
        {"guestOrExternalUserTypes": ["internalGuest"]},
        {"guestOrExternalUserTypes": ["serviceProvider"]},
    ]
    assert detailed(olds, news) == {
        "conditions.users.excludedGuestsOrExternalUsers[0].guestOrExternalUserTypes[0]": Kind.DELETE,
        "conditions.users.excludedGuestsOrExternalUsers[1]": Kind.ADD,
    }


def test_upstreams_customize_diff_refuses_ineffective_or_contradictory_session_controls() -> None:
    # conditionalAccessPolicyCustomizeDiff runs on every plan, preview included.
    session_only = {**INPUTS, "grantControls": None}
    ineffective = {
        "signInFrequencyAuthenticationType": "primaryAndSecondaryAuthentication",
        "signInFrequencyInterval": "timeBased",
    }
    problem = standin.customize_diff(standin.POLICY, {}, {**session_only, "sessionControls": ineffective})
    assert problem.startswith("when specifying `session_controls` but not `grant_controls`")
    effective = {**ineffective, "persistentBrowserMode": "never"}
    assert standin.customize_diff(standin.POLICY, {}, {**session_only, "sessionControls": effective}) == ""
    assert standin.customize_diff(standin.POLICY, {}, {**INPUTS, "sessionControls": ineffective}) == ""

    every_time = {"signInFrequencyInterval": "everyTime", "signInFrequencyPeriod": "hours", "signInFrequency": 4}
    assert standin.customize_diff(standin.POLICY, {}, {**INPUTS, "sessionControls": every_time}) == (
        "when `session_controls.sign_in_frequency_interval` is set to `everyTime`, `sign_in_frequency` and "
        "`sign_in_frequency_period` are not valid"
    )
    # An unset Optional+Computed interval is planned from the prior state.
    prior = state(sessionControls={"signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"}})
    period_only = {**INPUTS, "sessionControls": {"signInFrequencyPeriod": "days"}}
    assert standin.customize_diff(standin.POLICY, prior, period_only).startswith("when `session_controls.sign_in")
