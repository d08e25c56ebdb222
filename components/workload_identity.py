"""Part C enforced by Entra: each CIPP-API client's token requests blocked outside its allowed ranges.

CIPP checks a client's "Allowed IP Ranges" against the first X-Forwarded-For entry, which a caller
holding a leaked secret can choose. A Conditional Access policy for workload identities checks the
address Entra sees when the service principal asks for a token (docs/workload-identity.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azuread as azuread

from cipp_hardening.config import WorkloadIdentityClient, WorkloadIdentityPolicies
from cipp_hardening.directory_names import invoke_failure_reason
from cipp_hardening.workload_identity import SECTION


@dataclass(frozen=True)
class CippApiWorkloadIdentityPoliciesArgs:
    policies: WorkloadIdentityPolicies
    tenant_id: str  # the MSP tenant: the policies apply only to service principals of its own apps


class CippApiWorkloadIdentityPolicies(pulumi.ComponentResource):
    """Per client with ranges: an IP named location of exactly those ranges, and a block policy for its
    service principal from anywhere but that location. One policy per client: each is held to its own."""

    service_principal_ids: pulumi.Output[dict[str, str]]  # client (application) id → service principal object id
    policy_ids: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: CippApiWorkloadIdentityPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cipp:hardening:CippApiWorkloadIdentityPolicies", name, None, opts)
        policies = args.policies
        principals: dict[str, pulumi.Output[str]] = {}
        self.locations: dict[str, azuread.NamedLocation] = {}
        self.policies: dict[str, azuread.ConditionalAccessPolicy] = {}
        for client in policies.clients:
            principal = self._service_principal(client, args.tenant_id)
            location = azuread.NamedLocation(
                f"{name}-{client.client_id}-location",
                display_name=policies.location_name(client.client_id),
                # Not trusted: it must not widen AllTrusted in anyone's user policies.
                ip=azuread.NamedLocationIpArgs(ip_ranges=list(client.cidrs), trusted=False),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.locations[client.client_id] = location
            self.policies[client.client_id] = _block_outside(
                f"{name}-{client.client_id}-policy", policies, client, principal, location, self
            )
            principals[client.client_id] = principal
        self.service_principal_ids = pulumi.Output.all(**principals).apply(dict)
        self.policy_ids = pulumi.Output.all(**{k: p.object_id for k, p in self.policies.items()}).apply(dict)
        self.register_outputs(
            {
                "servicePrincipalIds": self.service_principal_ids,
                "policyIds": self.policy_ids,
                "state": policies.state,
            }
        )

    def _service_principal(self, client: WorkloadIdentityClient, tenant_id: str) -> pulumi.Output[str]:
        """The object id of the client's service principal, looked up read-only by its application id.

        The plain invoke, not get_service_principal_output: a failed lookup then stops the program once,
        here, with the message below, instead of surfacing in every output that depends on it."""
        try:
            found = azuread.get_service_principal(client_id=client.client_id, opts=pulumi.InvokeOptions(parent=self))
        except Exception as error:  # the provider's "No service principal found", in the bridge's error list
            raise pulumi.RunError(_missing_message(client, error)) from None
        _check_own_tenant(client, found, tenant_id)
        return pulumi.Output.from_input(found.object_id)


def _missing_message(client: WorkloadIdentityClient, error: BaseException) -> str:
    reason = invoke_failure_reason(str(error)) or repr(error)
    return (
        f"{SECTION}: no service principal for CIPP-API client {client.client_id} ({client.config_key}.clientId) "
        f"in this tenant: {reason}. The policy needs the service principal's object id; check the client id, "
        "or remove the client from cippApi.clients"
    )


def _check_own_tenant(client: WorkloadIdentityClient, result: Any, tenant_id: str) -> None:
    owner = getattr(result, "application_tenant_id", None)
    if owner and tenant_id and str(owner).lower() != tenant_id.lower():
        # Conditional Access for workload identities covers only single-tenant apps registered in the tenant.
        raise pulumi.RunError(
            f"{SECTION}: the service principal of CIPP-API client {client.client_id} ({client.config_key}.clientId) "
            f"belongs to an application of tenant {owner}, not {tenant_id}: a workload-identity policy would "
            "never apply to it (docs/workload-identity.md)"
        )


def _block_outside(
    name: str,
    policies: WorkloadIdentityPolicies,
    client: WorkloadIdentityClient,
    principal: pulumi.Output[str],
    location: azuread.NamedLocation,
    parent: pulumi.Resource,
) -> azuread.ConditionalAccessPolicy:
    return azuread.ConditionalAccessPolicy(
        name,
        display_name=policies.policy_name(client.client_id),
        state=policies.state,
        conditions=azuread.ConditionalAccessPolicyConditionsArgs(
            client_app_types=["all"],
            applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(included_applications=["All"]),
            # A workload-identity policy names no users: Graph requires includeUsers ["None"] next to
            # clientApplications (docs/workload-identity.md).
            users=azuread.ConditionalAccessPolicyConditionsUsersArgs(included_users=["None"]),
            client_applications=azuread.ConditionalAccessPolicyConditionsClientApplicationsArgs(
                included_service_principals=[principal],
            ),
            locations=azuread.ConditionalAccessPolicyConditionsLocationsArgs(
                included_locations=["All"],
                excluded_locations=[location.object_id],
            ),
        ),
        grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["block"]),
        opts=pulumi.ResourceOptions(parent=parent),
    )
