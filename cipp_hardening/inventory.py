"""What a client tenant holds now: its CA policies, read at program time to declare one resource each.

Live: Graph v1.0 through the shared client (paging followed). Offline (`make plan` of a client stack,
never a real deployment): CIPP_HARDENING_POLICY_SNAPSHOT names a folder or file of exported policies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cipp_hardening.config import ClientStack
from cipp_hardening.policy_files import load_policy_file, load_policy_folder
from dynamic_providers import credentials
from dynamic_providers.graph_client import GraphClient

SNAPSHOT_ENV = "CIPP_HARDENING_POLICY_SNAPSHOT"
POLICIES = "identity/conditionalAccess/policies"


def snapshot_path() -> Path | None:
    value = os.environ.get(SNAPSHOT_ENV)
    return Path(value) if value else None


def client_policies(stack: ClientStack, client_secret: str | None = None) -> list[dict[str, Any]]:
    snapshot = snapshot_path()
    if snapshot is not None:
        return load_policy_folder(snapshot) if snapshot.is_dir() else load_policy_file(snapshot)
    tenant = stack.client_tenant.tenant_id

    def token() -> str:
        return credentials.access_token(
            tenant, f"{stack.graph_url}/.default", client_id=stack.graph_client_id, client_secret=client_secret
        )

    with GraphClient(stack.graph_url, tenant, token) as graph:
        return graph.list_all(POLICIES)
