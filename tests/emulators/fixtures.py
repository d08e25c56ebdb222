"""Pytest fixtures for the loopback Graph emulator (registered by tests/conftest.py as a plugin).

* ``emulator_tls`` (session): the trustme CA and its PEM bundle.
* ``graph_emulator_server`` (session): one running :class:`GraphEmulator`.
* ``graph_emulator`` (function): the same server with its state reset before and after each test.
* ``graph_app`` (function): a fresh tenant with a consented app (client id, secret).
* ``graph_client`` (function): an authenticated HTTPS client for ``graph_app``'s tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulators.graph import GraphEmulator
from tests.emulators.identity import Directory
from tests.emulators.tls import TestTLS, make_test_tls

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


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Set `env` for this test (the program runs in-process) and forget credentials cached for another one."""
    from dynamic_providers import credentials

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    credentials.reset_cache()


@pytest.fixture(scope="session")
def emulator_tls(tmp_path_factory: pytest.TempPathFactory) -> TestTLS:
    return make_test_tls(tmp_path_factory.mktemp("emulator-tls"))


@pytest.fixture(scope="session")
def graph_emulator_server(emulator_tls: TestTLS) -> Iterator[GraphEmulator]:
    with GraphEmulator(tls=emulator_tls, directory=Directory(), seed=1234) as emulator:
        yield emulator


@pytest.fixture
def graph_emulator(graph_emulator_server: GraphEmulator) -> Iterator[GraphEmulator]:
    graph_emulator_server.reset()
    yield graph_emulator_server
    graph_emulator_server.reset()


@pytest.fixture
def graph_app(graph_emulator: GraphEmulator) -> GraphApp:
    app = GraphApp(str(uuid.uuid4()), str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}")
    graph_emulator.register_app(app.client_id, app.secret, app.tenant, graph_roles=GRAPH_ROLES)
    return app


@pytest.fixture
def graph_client(graph_emulator: GraphEmulator, graph_app: GraphApp) -> Iterator[GraphClient]:
    token = graph_emulator.access_token(graph_app.tenant, graph_app.client_id, graph_app.secret)
    client = GraphClient(graph_emulator.url, str(graph_emulator.ca_bundle), token)
    yield client
    client.close()
