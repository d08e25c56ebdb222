"""cipp-hardening: read the stack config, compose the article's parts, export what operators need."""

from __future__ import annotations

from typing import Any

import pulumi

from cipp_hardening.config import BreakGlassAlerts, ClientStack, MspStack
from cipp_hardening.directory_names import program_resolve
from cipp_hardening.stack_config import load_stack_config, secret_value

# Each mode imports its own components inside its compose function: a client stack never loads
# pulumi-azuread, the MSP components or the tenant check, whose imports are most of a converged client
# stack's CPU over an empty program (BENCHMARKS.md §9).


def compose_msp(config: MspStack) -> None:
    from cipp_hardening.inventory import cipp_api_clients, cipp_custom_roles
    from cipp_hardening.tenant_check import check_tenant
    from components.cipp_api_allowlists import CippApiAllowlists, CippApiAllowlistsArgs
    from components.cipp_custom_roles import CippCustomRoles, CippCustomRolesArgs
    from components.service_account import ServiceAccountPolicy, ServiceAccountPolicyArgs
    from components.technician_access import TechnicianAccessPolicy, TechnicianAccessPolicyArgs
    from components.trusted_location import TrustedLocation, TrustedLocationArgs
    from components.workload_identity import CippApiWorkloadIdentityPolicies, CippApiWorkloadIdentityPoliciesArgs

    # Before any resource: no silent duplicate, the adopt key's imports, drift (docs/adopt.md).
    tenant = check_tenant(config)
    location = TrustedLocation(
        "trusted-location",
        TrustedLocationArgs(config.trusted_location, tenant.import_of("trusted-location-named-location")),
    )
    technicians = TechnicianAccessPolicy(
        "technician-access",
        TechnicianAccessPolicyArgs(
            config.technician_access,
            location.object_id,
            config.service_account.user_id,
            tenant.import_of("technician-access-policy"),
        ),
    )
    access = config.technician_access
    service_account = ServiceAccountPolicy(
        "service-account",
        ServiceAccountPolicyArgs(
            config.service_account,
            tenant.import_of("service-account-policy"),
            break_glass_user_ids=access.break_glass_user_ids,
            break_glass_group_ids=access.break_glass_group_ids,
        ),
    )
    pulumi.export("trustedLocationId", location.object_id)
    pulumi.export("technicianPolicyId", technicians.policy_id)
    pulumi.export("technicianPolicyState", config.technician_access.state)
    pulumi.export("serviceAccountPolicyId", service_account.policy_id)
    alerts = None
    if config.break_glass_alerts is not None:
        alerts = break_glass_alerts(config.break_glass_alerts, config.technician_access.break_glass_user_ids)
    if config.cipp_api is not None:
        clients_now = cipp_api_clients(config.cipp_api, secret_value("cippApiManagerSecret"))
        allowlists = CippApiAllowlists("cipp-api", CippApiAllowlistsArgs(config.cipp_api, clients_now))
        pulumi.export("cippApiManagedClientIds", allowlists.managed_client_ids)
        pulumi.export("unrestrictedApiClients", allowlists.unrestricted)
        pulumi.export("denyingApiClients", allowlists.denying)  # stored as "[]": refused from every address
        pulumi.export("pendingSaveApiClients", allowlists.pending_save)  # table and App Service disagree
        pulumi.export("widenedApiClients", allowlists.widened)  # declared wider than CIPP holds them today
        everything_else: list[pulumi.Resource] = [location, technicians, service_account, *filter(None, [alerts])]
        if config.cipp_api.workload_identity is not None:
            workload = CippApiWorkloadIdentityPolicies(
                "cipp-api-workload-identity",
                CippApiWorkloadIdentityPoliciesArgs(config.cipp_api.workload_identity, config.tenant_id),
            )
            everything_else.append(workload)
            pulumi.export("workloadIdentityServicePrincipals", workload.service_principal_ids)
            pulumi.export("workloadIdentityPolicyIds", workload.policy_ids)
        guarded_roles: list[dict[str, Any]] = []
        if config.cipp_api.custom_roles:
            roles_now = cipp_custom_roles(
                config.cipp_api, secret_value("cippApiRolesSecret"), secret_value("cippApiManagerSecret")
            )
            roles = CippCustomRoles("cipp-roles", CippCustomRolesArgs(config.cipp_api, roles_now))
            everything_else.append(roles)
            guarded_roles = roles.guard_entries()
            pulumi.export("cippManagedRoles", roles.managed_roles)
            pulumi.export("cippRolesHeldByPartAOnly", roles.part_a_only)  # superadmin: CIPP never restricts it
        # Last, depending on all of the above: a destroy that Part C would refuse stops before anything is deleted.
        allowlists.destroy_guard(everything_else, guarded_roles)


def break_glass_alerts(settings: BreakGlassAlerts, user_ids: tuple[str, ...]) -> pulumi.ComponentResource:
    # Imported here: pulumi-azure-native loads only for stacks that ask for the alert.
    try:
        from components.break_glass_alerts import BreakGlassSignInAlerts, BreakGlassSignInAlertsArgs
    except ModuleNotFoundError as error:
        raise RuntimeError(
            "breakGlassAlerts needs pulumi-azure-native: pip install -r requirements-alerts.txt "
            "(docs/break-glass-alerts.md)"
        ) from error
    alerts = BreakGlassSignInAlerts("break-glass-alerts", BreakGlassSignInAlertsArgs(settings, user_ids))
    pulumi.export("breakGlassAlertedUserIds", list(user_ids))
    return alerts


def compose_client(config: ClientStack) -> None:
    from cipp_hardening.inventory import client_policies
    from components.client_exclusions import ClientTenantExclusions, ClientTenantExclusionsArgs

    policies = client_policies(config, secret_value("graphClientSecret"))
    exclusions = ClientTenantExclusions("msp-exclusions", ClientTenantExclusionsArgs(config, policies))
    for skipped in exclusions.skipped:
        pulumi.log.info(f"skipped client policy {skipped['displayName']!r} ({skipped['id']}): {skipped['reason']}")
    for conflict in exclusions.conflicts:
        pulumi.log.warn(
            f"client policy {conflict['displayName']!r} ({conflict['id']}): {conflict['action']}: {conflict['detail']}"
        )
    pulumi.export("clientTenantId", config.client_tenant.tenant_id)
    pulumi.export("managedPolicyIds", sorted(exclusions.exclusions))
    pulumi.export("skippedPolicies", exclusions.skipped)
    pulumi.export("exclusionPlan", exclusions.planned)
    pulumi.export("exclusionConflicts", exclusions.conflicts)
    pulumi.export("exclusionStatuses", exclusions.statuses)


# Names in the config (a UPN, a group's display name) become object ids first, read-only.
config = program_resolve(load_stack_config(), secret_value("graphClientSecret"))
if isinstance(config, MspStack):
    compose_msp(config)
else:
    compose_client(config)
