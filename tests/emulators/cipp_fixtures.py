"""pytest fixtures for the CIPP-API emulator (emulators/cipp.py).

Use them by importing the fixture functions into a test module, or from the root conftest with
`pytest_plugins = ["tests.emulators.cipp_fixtures"]`.

    def test_list(cipp_emulator, cipp_caller):
        manager = cipp_caller(role="editor", ip_ranges=["203.0.113.0/24"])
        response = manager.exec_api_client(action="List", xff="203.0.113.7:51234")
        assert response.json()["Results"][0]["ClientId"] == manager.client_id
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from emulators.cipp import CippEmulator
from emulators.clients import CIPP_TENANT_ID, CallerFactory, CippCaller
from emulators.tls import TestTLS, make_test_tls


@pytest.fixture(scope="session")
def cipp_tls(tmp_path_factory: pytest.TempPathFactory) -> TestTLS:
    return make_test_tls(tmp_path_factory.mktemp("cipp-ca"))


@pytest.fixture
def cipp_emulator(cipp_tls: TestTLS) -> Iterator[CippEmulator]:
    """A fresh, faithful CIPP-API emulator serving its own token endpoint."""
    with CippEmulator(cipp_tls, tenant_id=CIPP_TENANT_ID) as emulator:
        yield emulator


@pytest.fixture
def cipp_caller(cipp_emulator: CippEmulator, cipp_tls: TestTLS) -> Iterator[CallerFactory]:
    """Factory: seed an API client (row + app registration + secret), SaveToAzure, return its caller."""
    callers: list[CippCaller] = []

    def make(
        role: str = "editor",
        ip_ranges: Sequence[str] | str = (),
        *,
        enabled: Any = True,
        mcp_allowed: Any = False,
        app_name: str | None = None,
        client_id: str | None = None,
        in_table: bool = True,
        save: bool = True,
    ) -> CippCaller:
        client_id = client_id or str(uuid.uuid4())
        secret = f"test-secret-{uuid.uuid4().hex}"
        if in_table:
            name = app_name or f"{role or 'roleless'} client"
            cipp_emulator.add_client(client_id, name, role, ip_ranges, enabled, mcp_allowed, secret)
        else:  # an app EasyAuth knows but the ApiClients table does not (§5.4)
            cipp_emulator.directory.register_app(client_id, secret, cipp_emulator.tenant_id)
        if save:
            cipp_emulator.save_to_azure()
        if not in_table:
            cipp_emulator.easyauth_allowed = cipp_emulator.easyauth_allowed | {client_id}
        caller = CippCaller(cipp_emulator, cipp_tls.ca_bundle, client_id, secret)
        callers.append(caller)
        return caller

    yield make
    for caller in callers:
        caller.close()
