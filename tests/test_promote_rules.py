"""The pure part of the rollout: report-only results, the promotion record, prior state, the YAML edit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cipp_hardening.commands.promote import PromoteError, promoted_stack_text
from cipp_hardening.config import ConfigError, MspStack, parse_stack_config, raw_from_flat_config
from cipp_hardening.rollout import (
    analyse_sign_ins,
    describe_transition,
    prior_policies,
    promotion_record,
)
from tests.helpers import BREAK_GLASS_1, SERVICE_ACCOUNT, msp_raw

POLICY = "00000000-0000-0000-0000-0000000000a1"
NOW = datetime(2026, 5, 15, tzinfo=UTC)


def config() -> MspStack:
    parsed = parse_stack_config(msp_raw())
    assert isinstance(parsed, MspStack)
    return parsed


def record(result: str | None, user: str = "u1", ip: str = "198.51.100.1", hours: int = 1) -> dict[str, Any]:
    applied = [{"id": "other", "result": "reportOnlyFailure"}]
    if result is not None:
        applied.append({"id": POLICY.upper(), "result": result})
    created = (NOW - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "createdDateTime": created,
        "userId": user,
        "ipAddress": ip,
        "appId": "a",
        "appDisplayName": "CIPP",
        "userPrincipalName": f"{user}@msp.example",
        "appliedConditionalAccessPolicies": applied,
    }


@pytest.mark.parametrize(
    ("result", "evaluated", "affected"),
    [
        ("reportOnlyFailure", 1, 1),
        ("reportOnlyInterrupted", 1, 1),
        ("failure", 1, 1),
        ("reportOnlySuccess", 1, 0),
        ("reportOnlyNotApplied", 1, 0),
        ("success", 1, 0),
        ("notApplied", 1, 0),
        ("notEnabled", 0, 0),
        ("unknownFutureValue", 0, 0),
        (None, 0, 0),
    ],
)
def test_each_result_value(result: str | None, evaluated: int, affected: int) -> None:
    evidence = analyse_sign_ins([record(result)], POLICY, config())
    assert (evidence.evaluated, evidence.affected) == (evaluated, affected)


def test_groups_by_user_ip_and_app_with_first_and_last_seen() -> None:
    sign_ins = [
        record("reportOnlyFailure", hours=5),
        record("reportOnlyFailure", hours=1),
        record("reportOnlyFailure", hours=3),
        record("reportOnlyFailure", ip="192.0.2.1"),
        record("reportOnlyFailure", user=BREAK_GLASS_1),
        record("reportOnlyFailure", user=SERVICE_ACCOUNT),
    ]
    evidence = analyse_sign_ins(sign_ins, POLICY, config())
    assert [(g.kind, g.count) for g in evidence.groups] == [
        ("breakGlass", 1),
        ("serviceAccount", 1),
        ("technician", 3),
        ("technician", 1),
    ]
    busiest = evidence.of_kind("technician")[0]
    assert (busiest.first_seen, busiest.last_seen) == ("2026-05-14T19:00:00Z", "2026-05-14T23:00:00Z")


def test_the_record_is_what_config_validates() -> None:
    evidence = analyse_sign_ins([record("reportOnlyFailure"), record("reportOnlySuccess")], POLICY, config())
    raw = msp_raw()
    raw["technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.1")
    for accepted, valid in ((False, False), (True, True)):
        raw["technicianAccess"]["promotedAfter"] = promotion_record(
            evidence,
            policy_id=POLICY,
            policy_name="x",
            start=NOW - timedelta(days=14),
            end=NOW,
            accepted=accepted,
            now=NOW,
        )
        if valid:
            assert isinstance(parse_stack_config(raw), MspStack)
        else:
            with pytest.raises(ConfigError, match="must be true"):
                parse_stack_config(raw)
    assert raw["technicianAccess"]["promotedAfter"]["acceptedUsers"] == ["u1@msp.example"]


def test_prior_state_and_transitions() -> None:
    urn = "urn:pulumi:prod::cipp-hardening::x::technician-access-policy"
    export = {
        "version": 3,
        "deployment": {
            "resources": [
                {
                    "urn": urn,
                    "type": "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
                    "inputs": {"state": "enabled"},
                    "outputs": {"state": "enabledForReportingButNotEnforced", "objectId": "id1"},
                },
                {"urn": "urn:other", "type": "azuread:index/namedLocation:NamedLocation", "outputs": {}},
            ]
        },
    }
    prior = prior_policies(export)
    assert list(prior) == [urn]
    assert (prior[urn].state, prior[urn].object_id) == ("enabledForReportingButNotEnforced", "id1")
    assert describe_transition(prior, urn) == "moves from report-only to enabled in this update"
    assert describe_transition(prior, "urn:new") == "would be created enabled, skipping the report-only phase"
    assert "no prior state was given" in str(describe_transition(None, urn))
    assert (
        describe_transition(
            prior_policies(
                {
                    "deployment": {
                        "resources": [
                            {
                                "urn": urn,
                                "type": "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
                                "outputs": {"state": "enabled"},
                            }
                        ]
                    }
                }
            ),
            urn,
        )
        is None
    )


def test_engine_config_is_decoded_and_secrets_masked() -> None:
    flat = {
        "cipp-hardening:mode": "msp",
        "cipp-hardening:technicianAccess": json.dumps({"state": "reportOnly"}),
        "cipp-hardening:cippApiManagerSecret": "s3cr3t",
        "azuread:tenantId": "t",
        "azuread:clientSecret": "provider-s3cr3t",
        "aws:region": "x",
    }
    raw = raw_from_flat_config(flat, {"cippApiManagerSecret"})
    assert raw == {
        "mode": "msp",
        "technicianAccess": {"state": "reportOnly"},
        "cippApiManagerSecret": "[secret]",
        "azuread:tenantId": "t",
        "azuread:clientSecret": "[secret]",  # pulumi-azuread's own secret: accepted, never shown
    }
    assert isinstance(parse_stack_config({**msp_raw(), "azuread:clientSecret": "[secret]"}), MspStack)


STACK = """\
# header
config:
  cipp-hardening:mode: msp
  cipp-hardening:technicianAccess:
    displayName: Part A  # the name in the portal
    breakGlassUserIds:
    - 00000000-0000-0000-0000-00000000c001   # bg1
  # Part B follows
  cipp-hardening:serviceAccount:
    userId: 00000000-0000-0000-0000-00000000d001
"""


def test_yaml_edit_keeps_comments_order_and_indentation() -> None:
    promoted = promoted_stack_text(STACK, {"policyId": POLICY, "recordedAt": "2026-05-15T00:00:00Z"})
    assert promoted == STACK.replace(
        "    - 00000000-0000-0000-0000-00000000c001   # bg1\n",
        "    - 00000000-0000-0000-0000-00000000c001   # bg1\n"
        "    state: enabled\n"
        "    promotedAfter:\n"
        f"      policyId: {POLICY}\n"
        "      recordedAt: '2026-05-15T00:00:00Z'\n",
    )
    again = promoted_stack_text(promoted, {"policyId": POLICY, "recordedAt": "2026-05-16T00:00:00Z"})
    assert again == promoted.replace("2026-05-15T00:00:00Z", "2026-05-16T00:00:00Z")


def test_yaml_edit_needs_a_technician_section() -> None:
    with pytest.raises(PromoteError, match="no cipp-hardening:technicianAccess object"):
        promoted_stack_text("config:\n  cipp-hardening:mode: client\n", {})
