"""pytest fixtures for the CIPP-API emulator (tests/emulators/cipp.py).

Use them by importing the fixture functions into a test module, or from the root conftest with
`pytest_plugins = ["tests.emulators.cipp_fixtures"]`.

    def test_list(cipp_emulator, cipp_caller):
        manager = cipp_caller(role="editor", ip_ranges=["203.0.113.0/24"])
        response = manager.exec_api_client(action="List", xff="203.0.113.7:51234")
        assert response.json()["Results"][0]["ClientId"] == manager.client_id
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential

from tests.emulators.cipp import CippEmulator
from tests.emulators.tls import TestTLS, make_test_tls

CIPP_TENANT_ID = "7d4c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a09"
DEFAULT_CALLER_IP = "203.0.113.7"  # what callers send as X-Forwarded-For unless a test says otherwise
_DEFAULT = object()


def azure_identity_token(emulator: CippEmulator, ca_bundle: Path, client_id: str, secret: str) -> str:
    """A token for `api://<client_id>/.default`, fetched by azure-identity/MSAL from the emulator."""
    credential = ClientSecretCredential(
        emulator.tenant_id,
        client_id,
        secret,
        authority=emulator.url,
        disable_instance_discovery=True,
        connection_verify=str(ca_bundle),
    )
    with credential:
        return credential.get_token(f"api://{client_id}/.default").token


def client_credentials_response(
    authority: str, tenant: str, client_id: str, secret: str, ca_bundle: Path | str
) -> requests.Response:
    """A raw client-credentials POST for `api://<client_id>/.default` (for failure cases and the CLI)."""
    return requests.post(
        f"{authority}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"api://{client_id}/.default",
        },
        verify=str(ca_bundle),
        timeout=10,
    )


def token_endpoint_response(
    emulator: CippEmulator, ca_bundle: Path, client_id: str, secret: str, tenant: str | None = None
) -> requests.Response:
    return client_credentials_response(emulator.url, tenant or emulator.tenant_id, client_id, secret, ca_bundle)


class CippCaller:
    """One API client calling the emulator: its token (azure-identity, cached) and HTTPS requests."""

    def __init__(self, emulator: CippEmulator, ca_bundle: Path, client_id: str, secret: str) -> None:
        self.emulator = emulator
        self.ca_bundle = ca_bundle
        self.client_id = client_id
        self.secret = secret
        self._token: str | None = None
        self._session = requests.Session()

    def token(self) -> str:
        if self._token is None:
            self._token = azure_identity_token(self.emulator, self.ca_bundle, self.client_id, self.secret)
        return self._token

    def request(
        self, method: str, path: str, *, xff: str | None = DEFAULT_CALLER_IP, **kwargs: Any
    ) -> requests.Response:
        """`xff=None` sends no X-Forwarded-For header at all."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        if xff is not None:
            headers["X-Forwarded-For"] = xff
        # verify per request: REQUESTS_CA_BUNDLE in the environment would override Session.verify.
        return self._session.request(
            method, f"{self.emulator.url}{path}", headers=headers, verify=str(self.ca_bundle), timeout=10, **kwargs
        )

    def exec_api_client(
        self, body: Any = _DEFAULT, *, action: str | None = None, xff: str | None = DEFAULT_CALLER_IP, **kwargs: Any
    ) -> requests.Response:
        """GET ?Action=… without a body, POST JSON with one (the way the CIPP frontend calls it)."""
        params = {"Action": action} if action is not None else None
        if body is _DEFAULT:
            return self.request("GET", "/api/ExecApiClient", xff=xff, params=params, **kwargs)
        return self.request("POST", "/api/ExecApiClient", xff=xff, params=params, json=body, **kwargs)

    def close(self) -> None:
        self._session.close()


CallerFactory = Callable[..., CippCaller]


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
