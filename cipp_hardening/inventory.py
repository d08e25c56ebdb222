"""What a client tenant holds now: its CA policies, read at program time to declare one resource each.

Live: Graph v1.0 through the shared client (paging followed). Offline (`make plan` of a client stack,
never a real deployment): CIPP_HARDENING_POLICY_SNAPSHOT names a folder or file of exported policies.

Part C (MSP stack): every CIPP-API client, listed through CIPP's API to find clients open to any IP;
offline from CIPP_HARDENING_CIPP_SNAPSHOT (a saved List body), or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi

from cipp_hardening import run_mode
from cipp_hardening.cipp_api import AppServiceAuth, ClientList
from cipp_hardening.config import CippApi, ClientStack
from cipp_hardening.exclusion import as_graph_returns
from cipp_hardening.policy_files import load_policy_file, load_policy_folder
from service_clients import credentials
from service_clients.cipp_client import CippClient, CippError, parse_list_body
from service_clients.graph_client import GraphClient, GraphError

SNAPSHOT_ENV = "CIPP_HARDENING_POLICY_SNAPSHOT"
POLICIES = "identity/conditionalAccess/policies"


def snapshot_path() -> Path | None:
    value = os.environ.get(SNAPSHOT_ENV)
    return Path(value) if value else None


def client_tenant_graph(stack: ClientStack, client_secret: str | None = None) -> GraphClient:
    """Graph in the client tenant as the stack's identity (graphClientId, or the environment's credentials)."""
    tenant = stack.client_tenant.tenant_id

    def token() -> str:
        return credentials.access_token(
            tenant, f"{stack.graph_url}/.default", client_id=stack.graph_client_id, client_secret=client_secret
        )

    return GraphClient(stack.graph_url, tenant, token)


def client_policies(stack: ClientStack, client_secret: str | None = None) -> list[dict[str, Any]]:
    snapshot = snapshot_path()
    if snapshot is not None and run_mode.is_offline():
        pulumi.log.warn(f"offline plan: policies read from the snapshot {snapshot}, not the live tenant")
        exported = load_policy_folder(snapshot) if snapshot.is_dir() else load_policy_file(snapshot)
        return [as_graph_returns(policy) for policy in exported]
    if snapshot is not None:
        pulumi.log.warn(f"{SNAPSHOT_ENV} is ignored outside offline plans: listing the policies from Graph")
    import requests  # only for a live listing: the offline plan never loads it (BENCHMARKS.md §1)

    try:
        with client_tenant_graph(stack, client_secret) as graph:
            return graph.list_all(POLICIES)
    except (GraphError, credentials.CredentialError, requests.RequestException) as error:
        hint = _snapshot_hint(pulumi.get_stack()) if run_mode.is_offline() else ""
        raise pulumi.RunError(
            f"clientTenant: could not list the Conditional Access policies of tenant {stack.client_tenant.tenant_id} "
            f"at {stack.graph_url}: {error}{hint}"
        ) from None


def _snapshot_hint(stack: str) -> str:
    """What an offline plan of a client stack needs when it has neither a snapshot nor a credential."""
    return (
        f"\n  the offline plan of {stack} has no snapshot of the tenant's policies to read instead: save one with "
        f"`cipp-hardening snapshot --stack {stack}` (`make snapshot STACK={stack}`) where a credential with "
        "Policy.Read.All in that tenant is available, or pass --policies DIR of exported policies"
    )


# -- Part C: every CIPP-API client, for the unrestricted-clients check ------------------------------
CIPP_SNAPSHOT_ENV = "CIPP_HARDENING_CIPP_SNAPSHOT"
CIPP_SECRET_ENV = "CIPP_API_MANAGER_SECRET"  # noqa: S105 - an environment variable name


def cipp_snapshot_path() -> Path | None:
    value = os.environ.get(CIPP_SNAPSHOT_ENV)
    return Path(value) if value else None


def cipp_api_clients(cipp: CippApi, client_secret: str | None = None) -> list[dict[str, Any]] | None:
    """CIPP's List of API clients now, for the unrestricted-clients check.

    Offline runs read CIPP_HARDENING_CIPP_SNAPSHOT (a saved List body) or, without one, return None:
    the check is skipped with a warning. A real preview or up always asks CIPP (a snapshot is ignored)
    and fails the run when it cannot.
    """
    snapshot = cipp_snapshot_path()
    if run_mode.is_offline() and snapshot is not None:
        pulumi.log.warn(f"offline plan: CIPP-API clients read from the snapshot {snapshot}, not from CIPP")
        return parse_list_body(snapshot.read_text(encoding="utf-8"))
    if run_mode.is_offline():
        pulumi.log.warn(
            "offline plan: CIPP-API clients not read (no CIPP snapshot), so the unrestricted-clients check is "
            f"skipped; pass --cipp-clients FILE or set {CIPP_SNAPSHOT_ENV}. `pulumi preview`/`up` always check"
        )
        return None
    if snapshot is not None:
        pulumi.log.warn(f"{CIPP_SNAPSHOT_ENV} is ignored outside offline plans: reading the clients from CIPP")
    secret = client_secret or os.environ.get(CIPP_SECRET_ENV)
    if not secret:
        raise pulumi.RunError(
            f"cippApi: no secret for the manager client {cipp.manager_client_id}; set it with "
            f"`pulumi config set --secret cippApiManagerSecret` or the {CIPP_SECRET_ENV} variable"
        )

    def token() -> str:
        scope = f"api://{cipp.manager_client_id}/.default"
        return credentials.access_token(cipp.tenant_id, scope, client_id=cipp.manager_client_id, client_secret=secret)

    try:
        with CippClient(cipp.url, token, manager_client_id=cipp.manager_client_id) as client:
            return _with_app_service(client)
    except (CippError, credentials.CredentialError) as error:
        raise pulumi.RunError(f"cippApi: could not list the CIPP-API clients at {cipp.url}: {error}") from None


def _with_app_service(client: CippClient) -> ClientList:
    """List, plus App Service's allowed clients (GetAzureConfiguration); a failure to read the latter is recorded,
    not raised."""
    clients = client.list_clients()
    try:
        configuration = client.azure_configuration()
    except CippError as error:
        return ClientList(clients, app_service_error=str(error))
    return ClientList(clients, AppServiceAuth(configuration.client_ids, configuration.enabled))


# -- CIPP roles (docs/custom-roles.md): the role list, for superadmin and the roles that must exist ------
CIPP_ROLES_SECRET_ENV = "CIPP_API_ROLES_SECRET"  # noqa: S105 - an environment variable name


def cipp_custom_roles(
    cipp: CippApi, roles_secret: str | None, manager_secret: str | None
) -> list[dict[str, Any]] | None:
    """ExecCustomRole's list of roles now, as the roles client (cippApi.rolesClientId, else the manager).

    Offline runs do not read it (None, with a warning); a real preview or up fails when it cannot.
    """
    if run_mode.is_offline():
        pulumi.log.warn(
            "offline plan: CIPP's roles not read, so who holds superadmin (held by Part A alone) is not shown; "
            "`pulumi preview`/`up` read them"
        )
        return None
    own = cipp.roles_client_id is not None and cipp.roles_client_id != cipp.manager_client_id
    env, key = (CIPP_ROLES_SECRET_ENV, "cippApiRolesSecret") if own else (CIPP_SECRET_ENV, "cippApiManagerSecret")
    secret = (roles_secret if own else manager_secret) or os.environ.get(env)
    client_id = cipp.custom_roles_client_id
    if not secret:
        raise pulumi.RunError(
            f"cippApi.customRoles: no secret for the CIPP-API client {client_id}; set it with "
            f"`pulumi config set --secret {key}` or the {env} variable"
        )

    def token() -> str:
        return credentials.access_token(
            cipp.tenant_id, f"api://{client_id}/.default", client_id=client_id, client_secret=secret
        )

    try:
        with CippClient(cipp.url, token, manager_client_id=client_id) as client:
            return client.list_roles()
    except (CippError, credentials.CredentialError) as error:
        raise pulumi.RunError(
            f"cippApi.customRoles: could not list CIPP's roles at {cipp.url} as client {client_id} (it needs "
            f"superadmin, CIPP.SuperAdmin.ReadWrite): {error}"
        ) from None


# -- Part C by Entra: service principals for an offline plan -----------------------------------------
SERVICE_PRINCIPAL_SNAPSHOT_ENV = "CIPP_HARDENING_SERVICE_PRINCIPAL_SNAPSHOT"


def service_principal_snapshot_path() -> Path | None:
    value = os.environ.get(SERVICE_PRINCIPAL_SNAPSHOT_ENV)
    return Path(value) if value else None


def load_service_principals(path: Path) -> dict[str, dict[str, Any]]:
    """A saved `GET /v1.0/servicePrincipals` body (or a JSON list of them) → {appId (lower case): object}."""
    import json

    document = json.loads(path.read_text(encoding="utf-8"))
    items = document.get("value") if isinstance(document, dict) else document
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{path}: expected a servicePrincipals list body ({{'value': [...]}}) or a JSON list")
    found: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        if not item.get("appId") or not item.get("id"):
            raise ValueError(f"{path}: item {index} has no appId or id")
        found[str(item["appId"]).lower()] = item
    return found
