"""cipp-hardening: read the stack config, compose the article's parts, export what operators need."""

from __future__ import annotations

import pulumi

from cipp_hardening.config import ClientStack, MspStack
from cipp_hardening.stack_config import load_stack_config
from components.service_account import ServiceAccountPolicy, ServiceAccountPolicyArgs
from components.technician_access import TechnicianAccessPolicy, TechnicianAccessPolicyArgs
from components.trusted_location import TrustedLocation, TrustedLocationArgs


def compose_msp(config: MspStack) -> None:
    location = TrustedLocation("trusted-location", TrustedLocationArgs(config.trusted_location))
    technicians = TechnicianAccessPolicy(
        "technician-access",
        TechnicianAccessPolicyArgs(config.technician_access, location.object_id, config.service_account.user_id),
    )
    service_account = ServiceAccountPolicy("service-account", ServiceAccountPolicyArgs(config.service_account))
    pulumi.export("trustedLocationId", location.object_id)
    pulumi.export("technicianPolicyId", technicians.policy_id)
    pulumi.export("technicianPolicyState", config.technician_access.state)
    pulumi.export("serviceAccountPolicyId", service_account.policy_id)


def compose_client(config: ClientStack) -> None:
    raise NotImplementedError("client stacks (Part D) are not implemented yet")


config = load_stack_config()
if isinstance(config, MspStack):
    compose_msp(config)
else:
    compose_client(config)
