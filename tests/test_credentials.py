"""One credential story: ARM_* (as pulumi-azuread reads them) and AZURE_*, and a failure that lists every source."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.graph import GraphEmulator
from service_clients import credentials
from service_clients.credentials import ENV_VARS, CredentialError, access_token
from tests.helpers import MSP_TENANT


@pytest.fixture
def clean_env(
    graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[GraphEmulator, str, str]]:
    """No credential variable set, no Azure CLI on PATH; an app registered in the emulator."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", graph_emulator.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(graph_emulator.ca_bundle))
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(client_id, secret, MSP_TENANT, graph_roles=["Policy.Read.All"])
    credentials.reset_cache()
    yield graph_emulator, client_id, secret
    credentials.reset_cache()


def scope(emulator: GraphEmulator) -> str:
    return f"{emulator.url}/.default"


def test_the_arm_variables_of_pulumi_azuread_work(
    clean_env: tuple[GraphEmulator, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, client_id, secret = clean_env
    monkeypatch.setenv("ARM_CLIENT_ID", client_id)
    monkeypatch.setenv("ARM_CLIENT_SECRET", secret)
    monkeypatch.setenv("ARM_TENANT_ID", MSP_TENANT)
    assert access_token(MSP_TENANT, scope(emulator))
    assert emulator.directory.issued[-1]["appid"] == client_id


def test_with_nothing_set_every_source_is_listed_with_its_reason(clean_env: tuple[GraphEmulator, str, str]) -> None:
    emulator, _, _ = clean_env
    with pytest.raises(CredentialError) as failed:
        access_token(MSP_TENANT, scope(emulator))
    message = str(failed.value)
    assert "client secret from the environment" in message
    assert "not set: no client id and no client secret" in message
    assert "federated token" in message
    assert "not set: no token file or token" in message
    assert "Azure CLI login (`az login`): tried, failed" in message


def test_an_oidc_token_file_needs_arm_use_oidc_as_in_pulumi_azuread(
    clean_env: tuple[GraphEmulator, str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emulator, client_id, _ = clean_env
    token_file = tmp_path / "oidc-token"
    token_file.write_text("header.payload.signature\n")
    monkeypatch.setenv("ARM_CLIENT_ID", client_id)
    monkeypatch.setenv("ARM_OIDC_TOKEN_FILE_PATH", str(token_file))
    with pytest.raises(CredentialError) as failed:
        access_token(MSP_TENANT, scope(emulator))
    assert "ARM_OIDC_TOKEN_FILE_PATH is set but ARM_USE_OIDC is not true" in str(failed.value)
    assert "Azure CLI login (`az login`): tried, failed" in str(failed.value)

    monkeypatch.setenv("ARM_USE_OIDC", "true")
    credentials.reset_cache()
    emulator.clear_log()
    with pytest.raises(CredentialError) as failed:
        access_token(MSP_TENANT, scope(emulator))
    message = str(failed.value)
    # The assertion went to the token endpoint (the emulator trusts no federation: it refuses it there).
    assert f"federated token of {client_id} (ARM_OIDC_TOKEN_FILE_PATH {token_file}): tried, failed" in message
    assert "Azure CLI" not in message, "a configured source that fails is reported, never replaced by another"
    [token_request] = [r for r in emulator.requests() if r.path.endswith("/oauth2/v2.0/token")]
    assert token_request.body["client_id"] == client_id
    assert "client_assertion" in token_request.body
    assert "client_secret" not in token_request.body


def test_a_wrong_secret_is_named_and_never_shown(
    clean_env: tuple[GraphEmulator, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, client_id, _ = clean_env
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    monkeypatch.setenv("ARM_CLIENT_SECRET", "wrong-secret-value")
    with pytest.raises(CredentialError) as failed:
        access_token(MSP_TENANT, scope(emulator))
    message = str(failed.value)
    assert f"client secret of {client_id} (AZURE_CLIENT_ID + ARM_CLIENT_SECRET): tried, failed" in message
    assert "wrong-secret-value" not in message


def test_an_explicit_secret_comes_first(
    clean_env: tuple[GraphEmulator, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, client_id, secret = clean_env
    monkeypatch.setenv("ARM_CLIENT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("ARM_CLIENT_SECRET", "not-this-one")
    assert access_token(MSP_TENANT, scope(emulator), client_id=client_id, client_secret=secret)
    assert emulator.directory.issued[-1]["appid"] == client_id
