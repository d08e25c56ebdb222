"""More of config's edges the mutation check found untested (docs/mutation.md, docs/configuration.md).

Each test holds a rule a user relies on: a CIPP-API client without ranges is refused, never opened, and
`Any` opens one only alone (docs/part-c.md); the stated cippApi tenant is the one used; a client may hold
as many ranges as an Entra named location; stack-file values, adopt and the trusted ranges are read as
written; and breakGlassAlerts keeps to Azure Monitor's limits (docs/break-glass-alerts.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from cipp_hardening.config import raw_from_flat_config
from tests.helpers import config_problems, msp_raw, parsed_msp

parsed = parsed_msp
problems = config_problems


# -- cippApi.clients[i]: allowedRanges and mcpAllowed (docs/configuration.md, docs/part-c.md) ------------
def with_rmm_client(**fields: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["cippApi"]["clients"][1] = {"clientId": "00000000-0000-0000-0000-0000000e0002"} | fields
    return raw


def rmm_client(**fields: Any) -> Any:
    cipp = parsed(with_rmm_client(**fields)).cipp_api
    assert cipp is not None
    return cipp.clients[1]


def test_mcp_allowed_is_kept_only_when_stated() -> None:
    assert rmm_client(allowedRanges=["203.0.113.0/24"]).mcp_allowed is None
    assert rmm_client(allowedRanges=["203.0.113.0/24"], mcpAllowed=True).mcp_allowed is True


@pytest.mark.parametrize(("ranges", "what"), [(None, "is required"), ([], "is empty")])
def test_a_client_without_ranges_is_refused_never_opened(ranges: Any, what: str) -> None:
    raw = with_rmm_client() if ranges is None else with_rmm_client(allowedRanges=ranges)
    [problem] = problems(raw)
    assert "cippApi.clients[1].allowedRanges" in problem
    assert what in problem


def test_any_alone_opens_a_client_on_purpose() -> None:
    assert rmm_client(allowedRanges=["Any"]).allowed_ranges == ()


def test_any_beside_a_range_is_refused() -> None:
    [problem] = problems(with_rmm_client(allowedRanges=["203.0.113.0/24", "Any"]))
    assert "stands alone" in problem


def test_the_cipp_api_tenant_stated_is_the_one_used() -> None:
    """cippApi.tenantId names the tenant of the CIPP-API clients when it is not the MSP tenant."""
    raw = msp_raw()
    raw["cippApi"].pop("workloadIdentityPolicies", None)
    raw["cippApi"]["tenantId"] = "99999999-8888-7777-6666-555555555555"
    cipp = parsed(raw).cipp_api
    assert cipp is not None
    assert cipp.tenant_id == "99999999-8888-7777-6666-555555555555"


def test_a_client_may_hold_as_many_ranges_as_an_entra_named_location() -> None:
    """docs/graph-ca.md §3: a named location holds at most 2000 ranges; 2000 is allowed, 2001 is not."""
    for count, refused in ((2000, False), (2001, True)):
        ranges = [f"10.{i // 256}.{i % 256}.0/24" for i in range(count)]
        raw = with_rmm_client(allowedRanges=ranges)
        raw["cippApi"]["workloadIdentityPolicies"] = {"state": "reportOnly"}
        if refused:
            assert any("at most 2000" in problem for problem in problems(raw))
        else:
            assert len(rmm_client_of(raw).allowed_ranges) == count


def rmm_client_of(raw: dict[str, Any]) -> Any:
    cipp = parsed(raw).cipp_api
    assert cipp is not None
    return cipp.clients[1]


# -- the stack file's values, adopt, trustedLocation (docs/pulumi.md §4.3, docs/adopt.md) ----------------
def test_structured_values_from_a_stack_file_are_taken_as_they_are() -> None:
    """A YAML stack file gives objects and lists, not JSON text: they pass through undecoded."""
    flat = {"cipp-hardening:technicianAccess": {"state": "enabled"}, "cipp-hardening:adopt": ["x"]}
    assert raw_from_flat_config(flat) == {"technicianAccess": {"state": "enabled"}, "adopt": ["x"]}


def test_adopt_takes_over_only_the_objects_it_names() -> None:
    raw = msp_raw()
    raw["adopt"] = {"trustedLocation": "AAAAAAAA-2222-3333-4444-555555555555", "serviceAccount": None}
    assert parsed(raw).adopt == {"trustedLocation": "aaaaaaaa-2222-3333-4444-555555555555"}


@pytest.mark.parametrize(("cidrs", "what"), [(None, "is required"), ([], "must list at least one IP range")])
def test_the_trusted_location_needs_a_range(cidrs: Any, what: str) -> None:
    raw = msp_raw()
    if cidrs is None:
        del raw["trustedLocation"]["cidrs"]
    else:
        raw["trustedLocation"]["cidrs"] = cidrs
    found = [problem for problem in problems(raw) if "trustedLocation.cidrs" in problem]
    assert len(found) == 1
    assert what in found[0]


# -- breakGlassAlerts: Azure Monitor's limits (docs/break-glass-alerts.md) ---------------------------------
WORKSPACE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-monitor"
    "/providers/Microsoft.OperationalInsights/workspaces/law-msp"
)


def with_alerts(short_name: str = "BreakGlass", severity: Any = 0) -> dict[str, Any]:
    raw = msp_raw()
    raw["breakGlassAlerts"] = {
        "workspaceResourceId": WORKSPACE,
        "location": "westeurope",
        "actionGroup": {"emails": ["soc@example.com"], "shortName": short_name},
        "severity": severity,
    }
    return raw


def test_the_action_group_short_name_may_use_all_12_characters() -> None:
    alerts = parsed(with_alerts(short_name="BreakGlass12")).break_glass_alerts
    assert alerts is not None
    assert alerts.action_group_short_name == "BreakGlass12"


def test_severity_4_the_lowest_is_allowed() -> None:
    alerts = parsed(with_alerts(severity=4)).break_glass_alerts
    assert alerts is not None
    assert alerts.severity == 4


@pytest.mark.parametrize("severity", [True, 5, -1, "0"])
def test_a_severity_outside_0_to_4_is_refused(severity: Any) -> None:
    assert any("breakGlassAlerts.severity" in problem for problem in problems(with_alerts(severity=severity)))
