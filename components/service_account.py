"""Part B: the CIPP service account must complete MFA at every sign-in, wherever it signs in from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from cipp_hardening.config import ServiceAccount


@dataclass(frozen=True)
class ServiceAccountPolicyArgs:
    service_account: ServiceAccount
    # An existing object to take over (the stack file's `adopt` key; docs/adopt.md): its import id.
    import_id: str | None = None
    # Excluded although they are never the service account: a no-op for sign-ins that lets every policy the
    # project writes pass Maester MT.1005 "excludes the emergency-access accounts" (docs/scanners.md).
    break_glass_user_ids: tuple[str, ...] = ()
    break_glass_group_ids: tuple[str, ...] = ()


class ServiceAccountPolicy(pulumi.ComponentResource):
    """All cloud apps, MFA, sign-in frequency every time, and deliberately no location condition."""

    policy_id: pulumi.Output[str]

    def __init__(self, name: str, args: ServiceAccountPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cipp:hardening:ServiceAccountPolicy", name, None, opts)
        account = args.service_account
        self.policy = azuread.ConditionalAccessPolicy(
            f"{name}-policy",
            display_name=account.display_name,
            state=account.state,
            conditions=azuread.ConditionalAccessPolicyConditionsArgs(
                client_app_types=["all"],
                applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(included_applications=["All"]),
                users=azuread.ConditionalAccessPolicyConditionsUsersArgs(
                    included_users=[account.user_id],
                    excluded_users=list(args.break_glass_user_ids) or None,
                    excluded_groups=list(args.break_glass_group_ids) or None,
                ),
            ),
            grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["mfa"]),
            # everyTime alone: no period/value; the provider then omits applicationEnforcedRestrictions and
            # disableResilienceDefaults, which Graph rejects together with everyTime (docs/graph-ca.md §2.6, §4.3).
            session_controls=azuread.ConditionalAccessPolicySessionControlsArgs(
                sign_in_frequency_interval="everyTime",
                sign_in_frequency_authentication_type="primaryAndSecondaryAuthentication",
            ),
            opts=pulumi.ResourceOptions(parent=self, import_=args.import_id),
        )
        self.policy_id = self.policy.object_id
        self.register_outputs({"policyId": self.policy_id, "state": account.state})
