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

import pytest

from emulators.clients import GRAPH_ROLES, GraphApp, GraphClient
from emulators.graph import GraphEmulator
from emulators.identity import Directory
from emulators.tls import TestTLS, make_test_tls


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Set `env` for this test (the program runs in-process) and forget credentials cached for another one."""
    from service_clients import credentials

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
