"""Part A: block CIPP technicians signing in from outside the trusted IPs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from cipp_hardening.config import TechnicianAccess


@dataclass(frozen=True)
class TechnicianAccessPolicyArgs:
    access: TechnicianAccess
    trusted_location_id: pulumi.Input[str]
    # Excluded too: the service account signs in from Azure, not the office (blocking it breaks CIPP).
    service_account_user_id: str
    # An existing object to take over (the stack file's `adopt` key; docs/adopt.md): its import id.
    import_id: str | None = None


class TechnicianAccessPolicy(pulumi.ComponentResource):
    """Any location except the trusted one → block, for the technicians; break-glass and service account out."""

    policy_id: pulumi.Output[str]

    def __init__(self, name: str, args: TechnicianAccessPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cipp:hardening:TechnicianAccessPolicy", name, None, opts)
        access = args.access
        self.policy = azuread.ConditionalAccessPolicy(
            f"{name}-policy",
            display_name=access.display_name,
            state=access.state,
            conditions=azuread.ConditionalAccessPolicyConditionsArgs(
                client_app_types=["all"],
                applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(
                    included_applications=list(access.applications),
                ),
                users=azuread.ConditionalAccessPolicyConditionsUsersArgs(
                    included_groups=list(access.include_group_ids),
                    included_users=list(access.include_user_ids),
                    excluded_users=[*access.break_glass_user_ids, args.service_account_user_id],
                    excluded_groups=list(access.break_glass_group_ids),
                ),
                locations=azuread.ConditionalAccessPolicyConditionsLocationsArgs(
                    included_locations=["All"],
                    excluded_locations=[args.trusted_location_id],
                ),
            ),
            grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["block"]),
            opts=pulumi.ResourceOptions(parent=self, import_=args.import_id),
        )
        self.policy_id = self.policy.object_id
        self.register_outputs({"policyId": self.policy_id, "state": access.state})
