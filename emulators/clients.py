"""Clients that reach the loopback emulators as tests, the demo and the benchmarks do.

* :class:`GraphClient`: plain ``requests`` against the Graph emulator with a bearer token and the test CA;
* :func:`graph_client_env`: the environment the project's own clients need to reach the Graph emulator;
* :class:`CippCaller`: a CIPP-API client application calling the CIPP-API emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.identity import ClientSecretCredential

from emulators.cipp import CippEmulator, encode_principal

CA_BASE = "/v1.0/identity/conditionalAccess"
GRAPH_ROLES = ("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "AuditLog.Read.All")


@dataclass(frozen=True)
class GraphApp:
    tenant: str
    client_id: str
    secret: str


class GraphClient:
    """``requests`` against the emulator with a bearer token and the test CA.

    ``verify`` is passed on every call: with ``REQUESTS_CA_BUNDLE`` set in the environment, requests
    would otherwise prefer it over ``Session.verify``.
    """

    def __init__(self, base_url: str, ca_bundle: str, token: str) -> None:
        self.base_url = base_url
        self.ca_bundle = ca_bundle
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or CA bundles from the environment for loopback calls
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else self.base_url + path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url(path), verify=self.ca_bundle, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()


def graph_client_env(
    graph_url: str, ca_bundle: Path, client_id: str, secret: str, interval: str = "0"
) -> dict[str, str]:
    """What the project's own clients (azure-identity, the Graph client) need to reach the emulator as an app."""
    return {
        "AZURE_AUTHORITY_HOST": graph_url,
        "AZURE_CLIENT_ID": client_id,
        "AZURE_CLIENT_SECRET": secret,
        "REQUESTS_CA_BUNDLE": str(ca_bundle),
        "CIPP_HARDENING_GRAPH_INTERVAL": interval,  # pacing between requests; "0" when the emulator does not throttle
    }


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


def technician_request(
    emulator: CippEmulator,
    ca_bundle: Path | str,
    user_principal_name: str,
    path: str = "/api/ListTenants",
    *,
    xff: str | None = DEFAULT_CALLER_IP,
    roles: Sequence[str] = ("anonymous", "authenticated"),
) -> requests.Response:
    """A signed-in technician's request as the Static Web App hands it on (x-ms-client-principal)."""
    headers = {"x-ms-client-principal": encode_principal(user_principal_name, roles)}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    return requests.get(f"{emulator.url}{path}", headers=headers, verify=str(ca_bundle), timeout=10)
