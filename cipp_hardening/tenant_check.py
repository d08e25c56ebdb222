"""In the program of an MSP stack: the duplicate check, adoption and drift, before any resource exists.

Three reads, all before the first resource is registered, so a refusal stops `pulumi preview`/`up`
before anything is created (docs/adopt.md):

1. what the stack's state manages: `pulumi stack export` of this very stack (the backend, not Graph);
2. the MSP tenant's named locations and Conditional Access policies: one listing of each (GET, all pages);
3. the stack file's `adopt` key (already parsed into the config).

Offline (`make plan`, the mock runtime) none of this runs: the plan says so in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import pulumi

from cipp_hardening import adoption, run_mode
from cipp_hardening.config import MspStack
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError

POLICIES = "identity/conditionalAccess/policies"
NAMED_LOCATIONS = "identity/conditionalAccess/namedLocations"
# The authority for this read when it is not AZURE_AUTHORITY_HOST's (docs/configuration.md#credentials).
AUTHORITY_ENV = "CIPP_HARDENING_GRAPH_AUTHORITY"
AZUREAD_TYPES = {
    "azuread:index/namedLocation:NamedLocation": "namedLocation",
    "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy": "policy",
}
OFFLINE_LINE = (
    "offline plan: the tenant is not read, so the duplicate check (an existing object of the same name) and "
    "the drift report are skipped; `pulumi preview` runs both (docs/adopt.md)"
)


class StateUnreadable(RuntimeError):
    pass


def _managed(exported: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = {}
    for resource in (exported.get("deployment") or {}).get("resources") or []:
        if resource.get("type") in AZUREAD_TYPES and not resource.get("delete") and resource.get("id"):
            found[str(resource.get("urn", "")).rsplit("::", 1)[-1]] = resource
    return found


def managed_ids(exported: Mapping[str, Any]) -> dict[str, str]:
    """`pulumi stack export` → {resource name: object id} for the azuread resources in the state."""
    return {name: adoption.object_id_of(str(r["id"])) for name, r in _managed(exported).items()}


def managed_outputs(exported: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """`pulumi stack export` → {resource name: its outputs in the state}."""
    return {name: r.get("outputs") or {} for name, r in _managed(exported).items()}


def export_state(stack: str) -> dict[str, Any]:
    """This stack's last checkpoint, read through the same CLI and backend that run this program."""
    cli = shutil.which("pulumi")
    if cli is None:
        raise StateUnreadable("no `pulumi` on PATH to read the stack's state with `pulumi stack export`")
    result = subprocess.run(  # noqa: S603 - the CLI that runs this program, with fixed arguments
        [cli, "stack", "export", "--stack", stack],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise StateUnreadable(f"`pulumi stack export --stack {stack}` failed: {result.stderr.strip()[-500:]}")
    return dict(json.loads(result.stdout))


def list_tenant(config: MspStack) -> adoption.Tenant:
    authority = os.environ.get(AUTHORITY_ENV)

    def token() -> str:
        return credentials.access_token(config.tenant_id, f"{config.graph_url}/.default", authority=authority)

    with GraphClient(config.graph_url, config.tenant_id, token) as graph:
        return adoption.Tenant(graph.list_all(NAMED_LOCATIONS), graph.list_all(POLICIES))


def check_tenant(config: MspStack) -> adoption.Decision:
    """The decision for this run; raises pulumi.RunError (nothing registered yet) when a create would
    duplicate an existing object, or the adopt key cannot be honoured."""
    if run_mode.is_offline():
        pulumi.log.warn(OFFLINE_LINE)
        return adoption.Decision()
    import requests  # a live read only

    stack = pulumi.get_stack()
    try:
        exported = export_state(stack)
        managed = managed_ids(exported)
        tenant = list_tenant(config)
    except (StateUnreadable, GraphError, credentials.CredentialError, requests.RequestException, ValueError) as error:
        raise pulumi.RunError(
            f"could not check the MSP tenant {config.tenant_id} for existing objects before creating any: {error} "
            "(docs/adopt.md)"
        ) from None
    declared = adoption.declared_objects(config)
    decision = adoption.decide(stack, declared, tenant, managed, config.adopt)
    if decision.refusals:
        lines = "\n  - ".join(decision.refusals)
        raise pulumi.RunError(f"nothing was created: the tenant already holds what this stack declares:\n  - {lines}")
    for warning in decision.warnings:
        pulumi.log.warn(warning)
    report_drift(stack, config, tenant, exported)
    return decision


def report_drift(stack: str, config: MspStack, tenant: adoption.Tenant, exported: Mapping[str, Any]) -> None:
    """Step 1/A/B objects the state manages that differ in the tenant, and whether this run repairs them."""
    declared = adoption.declared_objects(config)[:3]
    managed, outputs = managed_ids(exported), managed_outputs(exported)
    owned = {d.key: managed[d.resource_name] for d in declared if d.resource_name in managed}
    state = {d.key: outputs[d.resource_name] for d in declared if d.resource_name in outputs}
    for found in adoption.drift(config, tenant, owned, state):
        if found.in_state:
            pulumi.log.warn(f"drift: {found.line}; the state shows it too, so this plan repairs it (docs/adopt.md)")
            continue
        # The program cannot tell whether this run refreshes: the engine refreshes alongside it (docs/adopt.md).
        pulumi.log.warn(
            f"drift: {found.line}. Only a run with --refresh sees it: `pulumi preview --refresh --stack {stack}` "
            f"shows the repair, `pulumi up --refresh --stack {stack}` makes it; without --refresh this run leaves "
            "it as it is (docs/adopt.md#drift)"
        )
