"""Shared setup for Part D tests: an MSP app consented in a client tenant of the Graph emulator."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from bench.emulated_tenants import MSP, policy  # the sample the benchmarks use too
from emulators.clients import GRAPH_ROLES, graph_client_env
from emulators.graph import GraphEmulator
from tests.emulators.fixtures import use_env
from tests.helpers import to_runtime_config

__all__ = ["MSP", "ClientTenantSetup", "client_tenant_setup", "outs_of", "policy"]


@dataclass(frozen=True)
class ClientTenantSetup:
    emulator: GraphEmulator
    tenant: str
    client_id: str
    secret: str
    env: dict[str, str]  # what the provider host (and the program) need to reach the emulator

    def props(self, policy_id: str, **overrides: Any) -> dict[str, Any]:
        return {
            "tenantId": self.tenant,
            "graphUrl": self.emulator.url,
            "policyId": policy_id,
            "displayName": "",
            "accessMode": "gdap",
            "mspTenantId": MSP,
            "serviceAccountUserId": None,
            "onConflict": "report",
            **overrides,
        }

    def stack_config(self, **client_tenant: Any) -> dict[str, str]:
        raw = {
            "mode": "client",
            "graphUrl": self.emulator.url,
            "clientTenant": {"tenantId": self.tenant, "mspTenantId": MSP, "accessMode": "gdap", **client_tenant},
        }
        return to_runtime_config(raw)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {p["id"]: copy.deepcopy(p) for p in self.emulator.policies(self.tenant)}


def outs_of(result: CreateResult | ReadResult | UpdateResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def client_tenant_setup(emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> ClientTenantSetup:
    """A client tenant, an MSP-home app consented in it, and the environment pointing at the emulator."""
    tenant = str(uuid.uuid4())
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    emulator.register_app(client_id, secret, MSP, consented_tenants=[tenant], graph_roles=GRAPH_ROLES)
    env = graph_client_env(emulator.url, emulator.ca_bundle, client_id, secret)
    use_env(monkeypatch, env)
    return ClientTenantSetup(emulator, tenant, client_id, secret, env)
