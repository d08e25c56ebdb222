"""breakGlassAlerts (docs/break-glass-alerts.md): the component's exact ARM requests under the mocks, the
config checks, and that stacks without the alert never load pulumi-azure-native.

Sources for what is pinned: the diagnostic-setting category `SignInLogs` (Microsoft Entra, "What are the
identity logs you can stream to an endpoint?", learn.microsoft.com/entra/identity/monitoring-health/
concept-diagnostic-settings-logs-options; also pulumi-azure-native's aadiam `Category` enum); the KQL
columns of the `SigninLogs` table (Azure Monitor Logs reference, learn.microsoft.com/azure/azure-monitor/
reference/tables/signinlogs; source MicrosoftDocs/azure-reference-other azure-monitor-ref/tables/signinlogs.md,
which lists TimeGenerated, UserId, UserPrincipalName, IPAddress, AppDisplayName and ResultType); paths and
api-versions: the pinned SDK's resource docstrings ("Uses Azure REST API version ...").
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from cipp_hardening.commands.plan import document_from_run
from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from tests.helpers import BREAK_GLASS_1, BREAK_GLASS_2, ROOT, msp_raw, run_main

WORKSPACE = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-monitor"
    "/providers/Microsoft.OperationalInsights/workspaces/law-msp"
)
ACTION_GROUP_ID = (
    "/subscriptions/{subscriptionId}/resourceGroups/rg-monitor"
    "/providers/Microsoft.Insights/actionGroups/cipp-hardening-break-glass"
)


def alerts_raw(**overrides: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["breakGlassAlerts"] = {
        "workspaceResourceId": WORKSPACE,
        "location": "westeurope",
        "actionGroup": {"emails": ["soc@example.com", "oncall@example.com"]},
        **overrides,
    }
    return raw


def arm_requests(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    document = document_from_run("prod", run_main(raw))
    return {r["type"]: r["arm"] for r in document.resources if r["arm"] is not None}


def test_the_plan_shows_the_three_exact_arm_requests() -> None:
    requests = arm_requests(alerts_raw())
    assert requests["azure-native:aadiam:DiagnosticSetting"] == {
        "method": "PUT",
        "path": "/providers/microsoft.aadiam/diagnosticSettings/cipp-hardening-sign-in-logs",
        "apiVersion": "2017-04-01",
        "body": {"properties": {"logs": [{"category": "SignInLogs", "enabled": True}], "workspaceId": WORKSPACE}},
    }
    assert requests["azure-native:monitor:ActionGroup"] == {
        "method": "PUT",
        "path": ACTION_GROUP_ID,
        "apiVersion": "2024-10-01-preview",
        "body": {
            "location": "Global",
            "properties": {
                "emailReceivers": [
                    {"emailAddress": "soc@example.com", "name": "break-glass-1", "useCommonAlertSchema": True},
                    {"emailAddress": "oncall@example.com", "name": "break-glass-2", "useCommonAlertSchema": True},
                ],
                "enabled": True,
                "groupShortName": "BreakGlass",
            },
        },
    }
    query = (
        f'SigninLogs\n| where UserId in~ ("{BREAK_GLASS_1}", "{BREAK_GLASS_2}")\n'
        "| project TimeGenerated, UserId, UserPrincipalName, IPAddress, AppDisplayName, ResultType"
    )
    assert requests["azure-native:monitor:ScheduledQueryRule"] == {
        "method": "PUT",
        "path": "/subscriptions/{subscriptionId}/resourceGroups/rg-monitor"
        "/providers/Microsoft.Insights/scheduledQueryRules/cipp-hardening-break-glass-sign-in",
        "apiVersion": "2025-01-01-preview",
        "body": {
            "location": "westeurope",
            "kind": "LogAlert",
            "properties": {
                "actions": {"actionGroups": [ACTION_GROUP_ID]},
                "autoMitigate": False,
                "criteria": {
                    "allOf": [
                        {
                            "failingPeriods": {"minFailingPeriodsToAlert": 1, "numberOfEvaluationPeriods": 1},
                            "operator": "GreaterThan",
                            "query": query,
                            "threshold": 0,
                            "timeAggregation": "Count",
                        }
                    ]
                },
                "description": "A break-glass account signed in: check who and why (docs/break-glass-alerts.md).",
                "displayName": "Break-glass account sign-in (cipp-hardening)",
                "enabled": True,
                "evaluationFrequency": "PT5M",
                "scopes": [WORKSPACE],
                "severity": 0,
                "skipQueryValidation": True,
                "windowSize": "PT5M",
            },
        },
    }


def test_the_component_parents_the_three_resources_and_waits_for_the_logs() -> None:
    run = run_main(alerts_raw())
    component = [r for r in run.resources if r.type == "cipp:hardening:BreakGlassSignInAlerts"]
    assert len(component) == 1
    children = [r for r in run.resources if r.parent == component[0].urn]
    assert sorted(r.type for r in children) == [
        "azure-native:aadiam:DiagnosticSetting",
        "azure-native:monitor:ActionGroup",
        "azure-native:monitor:ScheduledQueryRule",
    ]
    rule = next(r for r in children if r.type.endswith("ScheduledQueryRule"))
    setting = next(r for r in children if r.type.endswith("DiagnosticSetting"))
    assert setting.urn in rule.dependencies
    assert run.outputs["breakGlassAlertedUserIds"] == [BREAK_GLASS_1, BREAK_GLASS_2]


def test_the_plan_prints_the_arm_request_line(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from cipp_hardening.commands.plan import print_plan

    print_plan(document_from_run("prod", run_main(alerts_raw())), Console(width=250))
    out = capsys.readouterr().out
    path = "/providers/microsoft.aadiam/diagnosticSettings/cipp-hardening-sign-in-logs"
    assert f"PUT {path}?api-version=2017-04-01" in out
    assert '"category": "SignInLogs"' in out


def test_a_stack_without_alerts_declares_no_azure_resource_and_never_imports_azure_native() -> None:
    code = (
        "import sys\n"
        "from cipp_hardening.commands.plan import build_plan\n"
        "document = build_plan('prod')\n"
        "assert not [r for r in document.resources if r['type'].startswith('azure-native:')], document.resources\n"
        "print('pulumi_azure_native' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_defaults_and_overrides_parse() -> None:
    config = parse_stack_config(
        alerts_raw(resourceGroupName="rg-alerts", severity=1, actionGroup={"emails": ["a@x.io"], "shortName": "BG"})
    )
    assert isinstance(config, MspStack)
    assert config.break_glass_alerts is not None
    alerts = config.break_glass_alerts
    assert (alerts.resource_group_name, alerts.severity, alerts.action_group_short_name) == ("rg-alerts", 1, "BG")
    assert parse_stack_config(alerts_raw()).break_glass_alerts.resource_group_name == "rg-monitor"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"workspaceResourceId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/a/b"},
            "breakGlassAlerts.workspaceResourceId",
        ),
        ({"workspaceResourceId": None}, "breakGlassAlerts.workspaceResourceId"),
        ({"location": None}, "breakGlassAlerts.location"),
        ({"actionGroup": {"emails": []}}, "breakGlassAlerts.actionGroup.emails"),
        ({"actionGroup": {"emails": ["not-an-address"]}}, "breakGlassAlerts.actionGroup.emails[0]"),
        (
            {"actionGroup": {"emails": ["a@example.com"], "shortName": "ThirteenChars"}},
            "breakGlassAlerts.actionGroup.shortName",
        ),
        ({"severity": 5}, "breakGlassAlerts.severity"),
        ({"workspaceId": WORKSPACE}, "breakGlassAlerts.workspaceId"),
    ],
)
def test_bad_alert_config_names_the_key_and_registers_nothing(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_stack_config(alerts_raw(**overrides))
    assert [p.key for p in error.value.problems] == [key]


def test_the_alert_needs_break_glass_user_ids_not_only_groups() -> None:
    raw = alerts_raw()
    raw["technicianAccess"]["breakGlassGroupIds"] = raw["technicianAccess"].pop("breakGlassUserIds")
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw)
    assert [p.key for p in error.value.problems] == ["breakGlassAlerts"]


def test_break_glass_groups_beside_users_are_a_warning() -> None:
    raw = alerts_raw()
    raw["technicianAccess"]["breakGlassGroupIds"] = ["00000000-0000-0000-0000-00000000c0a1"]
    config = parse_stack_config(raw)
    assert any("breakGlassGroupIds are not alerted on" in w for w in config.warnings)


def test_without_azure_native_installed_the_alert_stack_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cipp_hardening.offline import OfflineRunError

    monkeypatch.setitem(sys.modules, "pulumi_azure_native", None)  # what an absent package looks like to import
    monkeypatch.delitem(sys.modules, "components.break_glass_alerts", raising=False)
    with pytest.raises(OfflineRunError) as error:
        run_main(alerts_raw())
    assert "pip install -r requirements-alerts.txt" in str(error.value)


def test_the_alerts_requirements_pin_the_same_range_as_the_bootstrap() -> None:
    alerts = (ROOT / "requirements-alerts.txt").read_text(encoding="utf-8")
    bootstrap = (ROOT / "bootstrap" / "requirements.txt").read_text(encoding="utf-8")
    assert "pulumi-azure-native>=3.29.0,<4" in alerts
    assert "pulumi-azure-native>=3.29.0,<4" in bootstrap


def test_the_destroy_guard_waits_on_the_alert_too() -> None:
    """A destroy that Part C would refuse stops before anything is deleted, the alert included (docs/part-c.md)."""
    run = run_main(alerts_raw())
    [component] = [r for r in run.resources if r.type == "cipp:hardening:BreakGlassSignInAlerts"]
    children = {r.urn for r in run.resources if r.parent == component.urn}
    [guard] = run.of_type("pulumi-python:dynamic/cipp:CippApiDestroyGuard")
    assert len(children) == 3
    assert children <= set(guard.dependencies), "a component stands for its children in depends_on"
