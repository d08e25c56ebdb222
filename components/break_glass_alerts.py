"""An alert on every break-glass sign-in (docs/break-glass-alerts.md), optional, MSP stack only.

Entra's sign-in logs go to an existing Log Analytics workspace through a tenant diagnostic setting;
a log alert rule counts the rows of the break-glass accounts every five minutes and an action group
mails the addresses in config. pulumi-azure-native is imported here only, so stacks without
`breakGlassAlerts` never load it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import aadiam, monitor

from cipp_hardening.config import BreakGlassAlerts

# Microsoft Entra diagnostic settings: the interactive sign-ins' category (docs/break-glass-alerts.md).
SIGN_IN_CATEGORY = "SignInLogs"
ACTION_GROUP_NAME = "cipp-hardening-break-glass"
RULE_NAME = "cipp-hardening-break-glass-sign-in"
# Microsoft's emergency-access guidance: evaluate every 5 minutes over the last 5 minutes, alert on any row.
EVALUATION_FREQUENCY = "PT5M"
WINDOW_SIZE = "PT5M"


def sign_in_query(user_ids: tuple[str, ...]) -> str:
    """KQL over the SigninLogs table: the sign-ins whose UserId (the user's object id) is a break-glass account."""
    ids = ", ".join(f'"{user_id}"' for user_id in user_ids)
    return (
        f"SigninLogs\n| where UserId in~ ({ids})\n"
        "| project TimeGenerated, UserId, UserPrincipalName, IPAddress, AppDisplayName, ResultType"
    )


@dataclass(frozen=True)
class BreakGlassSignInAlertsArgs:
    config: BreakGlassAlerts
    break_glass_user_ids: tuple[str, ...]


class BreakGlassSignInAlerts(pulumi.ComponentResource):
    def __init__(self, name: str, args: BreakGlassSignInAlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cipp:hardening:BreakGlassSignInAlerts", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.diagnostic_setting = aadiam.DiagnosticSetting(
            f"{name}-sign-in-logs",
            name=config.diagnostic_setting_name,
            workspace_id=config.workspace_resource_id,
            logs=[aadiam.LogSettingsArgs(category=SIGN_IN_CATEGORY, enabled=True)],
            opts=child,
        )
        self.action_group = monitor.ActionGroup(
            f"{name}-action-group",
            resource_group_name=config.resource_group_name,
            action_group_name=ACTION_GROUP_NAME,
            group_short_name=config.action_group_short_name,
            enabled=True,
            location="Global",
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    name=f"break-glass-{i + 1}", email_address=email, use_common_alert_schema=True
                )
                for i, email in enumerate(config.emails)
            ],
            opts=child,
        )
        self.rule = monitor.ScheduledQueryRule(
            f"{name}-rule",
            resource_group_name=config.resource_group_name,
            rule_name=RULE_NAME,
            location=config.location,
            kind="LogAlert",
            display_name="Break-glass account sign-in (cipp-hardening)",
            description="A break-glass account signed in: check who and why (docs/break-glass-alerts.md).",
            severity=config.severity,
            enabled=True,
            evaluation_frequency=EVALUATION_FREQUENCY,
            window_size=WINDOW_SIZE,
            scopes=[config.workspace_resource_id],
            criteria=monitor.ScheduledQueryRuleCriteriaArgs(
                all_of=[
                    monitor.ConditionArgs(
                        query=sign_in_query(args.break_glass_user_ids),
                        time_aggregation="Count",
                        operator="GreaterThan",
                        threshold=0,
                        failing_periods=monitor.ConditionFailingPeriodsArgs(
                            number_of_evaluation_periods=1, min_failing_periods_to_alert=1
                        ),
                    )
                ]
            ),
            actions=monitor.ActionsArgs(action_groups=[self.action_group.id]),
            auto_mitigate=False,
            # SigninLogs exists in the workspace only after its first rows: ARM would refuse the query before.
            skip_query_validation=True,
            # The workspace receives SigninLogs only once the diagnostic setting exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.diagnostic_setting]),
        )
        self.register_outputs({"ruleId": self.rule.id})
