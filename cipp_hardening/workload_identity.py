"""cippApi.workloadIdentityPolicies: what Graph's refusals mean for the section (docs/workload-identity.md).

Every writer of the section's policies (pulumi-azuread, the demo, the engine tests' azuread stand-in) sees
Graph's own error; `licence_error` turns the missing-licence one into one message that names the section.
"""

from __future__ import annotations

SECTION = "cippApi.workloadIdentityPolicies"
# Graph's code for a workload-identity policy written without Workload Identities Premium (emulators/graph.py).
LICENCE_ERROR_CODE = "1150"


def licence_error(graph_message: str) -> str | None:
    """The section's error for Graph's 1150 refusal, or None when `graph_message` is another error."""
    text = " ".join(graph_message.split())
    if f"{LICENCE_ERROR_CODE}:" not in text or "workload identity premium" not in text.lower():
        return None
    return (
        f"{SECTION}: the tenant has no Microsoft Entra Workload ID Premium licence, which Conditional Access "
        "policies for workload identities need; Graph refused the policy with "
        f"{text[text.index(LICENCE_ERROR_CODE + ':') :]!r}. Buy the licence (or start its trial) in the Entra "
        f"admin center, or remove {SECTION} from the stack (docs/workload-identity.md)"
    )
