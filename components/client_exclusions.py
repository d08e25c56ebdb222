"""Part D: in one client tenant, every in-scope CA policy excludes the MSP (one stack per client)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cipp_hardening.config import ClientStack
from cipp_hardening.exclusion import (
    Addition,
    Merge,
    UsersNotUnderstood,
    exclude_cipp,
    listing_verdict,
    select_policies,
    understood_users,
)
from dynamic_providers.ca_exclusion import CaExclusion, CaExclusionArgs, ExclusionJournal, ExclusionJournalArgs


class PolicyNotUnderstood(pulumi.RunError):
    """A listed client policy whose users object cannot be read with certainty: the run stops before any write."""


@dataclass(frozen=True)
class ClientTenantExclusionsArgs:
    stack: ClientStack
    policies: Sequence[Mapping[str, Any]]  # the tenant's policies as Graph v1.0 lists them now


class ClientTenantExclusions(pulumi.ComponentResource):
    """One CaExclusion per policy in scope, named by policy id so names survive renames and reorders."""

    skipped: list[dict[str, str]]
    planned: list[dict[str, str]]
    conflicts: list[dict[str, str]]

    def __init__(self, name: str, args: ClientTenantExclusionsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cipp:hardening:ClientTenantExclusions", name, None, opts)
        tenant = args.stack.client_tenant
        check_understood(args.policies, tenant.skip_policy_ids)
        selected, skipped = select_policies(args.policies, tenant.include_states, tenant.skip_policy_ids)
        self.skipped = [{"id": s.policy_id, "displayName": s.display_name, "reason": s.reason} for s in skipped]
        merges = {str(policy["id"]): _merge_now(args.stack, policy) for policy in selected}
        self.planned = [_planned(policy, merges[str(policy["id"])]) for policy in selected]
        self.conflicts = [p for p in self.planned if p["action"].startswith(("conflict", "widen"))]
        intents = {pid: (merge.addition if merge.write else Addition()).to_json() for pid, merge in merges.items()}
        # Recorded by the engine before any CaExclusion may write: a killed run's writes stay recognisable.
        self.journal = ExclusionJournal(
            f"{name}-journal",
            ExclusionJournalArgs(tenant.tenant_id, intents),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.exclusions = {
            str(policy["id"]): CaExclusion(
                f"{name}-{policy['id']}",
                CaExclusionArgs(
                    tenant_id=tenant.tenant_id,
                    graph_url=args.stack.graph_url,
                    policy_id=str(policy["id"]),
                    display_name=str(policy.get("displayName", "")),
                    access_mode=tenant.access_mode,
                    msp_tenant_id=tenant.msp_tenant_id,
                    service_account_user_id=tenant.service_account_user_id,
                    on_conflict=tenant.on_conflict,
                    # The listing this run made: the provider writes (and reads) only where it says `write`.
                    listed=listing_verdict(merges[str(policy["id"])]),
                    intended=self.journal.entries.apply(_journaled(str(policy["id"]), intents)),
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for policy in selected
        }
        self.statuses = pulumi.Output.all(
            **{policy_id: resource.status for policy_id, resource in self.exclusions.items()}
        )
        self.register_outputs(
            {
                "managedPolicyIds": sorted(self.exclusions),
                "skippedPolicies": self.skipped,
                "exclusionPlan": self.planned,
            }
        )


def check_understood(policies: Sequence[Mapping[str, Any]], skip_policy_ids: Sequence[str]) -> None:
    """Every listed policy's users object as Graph always returns it, or nothing is planned (docs/part-d.md)."""
    skipped = {policy_id.lower() for policy_id in skip_policy_ids}
    problems = []
    for policy in policies:
        if str(policy.get("id", "")).lower() in skipped:
            continue
        try:
            understood_users(policy)
        except UsersNotUnderstood as error:
            problems.append(f"policy {policy.get('displayName')!r} ({policy.get('id')}): {error}")
    if problems:
        raise PolicyNotUnderstood(
            "the tenant's listing holds policies this project does not understand; nothing is written "
            "(fix them in the portal, or list their ids in clientTenant.skipPolicyIds):\n  " + "\n  ".join(problems)
        )


def _journaled(policy_id: str, intents: Mapping[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """The journal's entry for one policy, with this run's intent (the same, once the engine recorded it)."""

    def entry(entries: Any) -> dict[str, Any]:
        recorded = entries.get(policy_id) if isinstance(entries, Mapping) else None
        return Addition.from_json(recorded).union(Addition.from_json(intents.get(policy_id))).to_json()

    return entry


def _merge_now(stack: ClientStack, policy: Mapping[str, Any]) -> Merge:
    """The merge on the policy as the tenant listed it this run; the provider merges again on a fresh read."""
    tenant = stack.client_tenant
    users = (policy.get("conditions") or {}).get("users")
    return exclude_cipp(
        users, tenant.access_mode, tenant.msp_tenant_id, tenant.service_account_user_id, tenant.on_conflict
    )


def _planned(policy: Mapping[str, Any], merge: Merge) -> dict[str, str]:
    return {
        "id": str(policy["id"]),
        "displayName": str(policy.get("displayName", "")),
        "action": _ACTIONS[merge.status](merge),
        "detail": merge.detail,
    }


def _describe_exclusion(merge: Merge) -> str:
    if merge.addition.exclude_users:
        return "add the CIPP service account to excludeUsers"
    if merge.addition.guest_types:
        return "add a service-provider exclusion for the MSP tenant"
    return "add the MSP tenant to the service-provider exclusion"


_ACTIONS: dict[str, Callable[[Merge], str]] = {
    "excluded": _describe_exclusion,
    "already-excluded": lambda _: "none: the MSP is already excluded",
    "conflict": lambda _: "conflict: not written (onConflict=report)",
    "widened": lambda _: "widen: written (onConflict=widen)",
}
