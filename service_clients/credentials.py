"""Access tokens from azure-identity, resolved per call; nothing here is ever pickled into state.

One credential story for the program, the dynamic providers and every command: the variables
pulumi-azuread reads (ARM_*) work everywhere, and so do azure-identity's own (AZURE_*). The first
source that is configured is used (never silently another identity after it fails):

1. an explicit client secret (a Pulumi secret handed to the provider host by `configure`, or an
   environment variable the caller names) → ClientSecretCredential;
2. a client secret in the environment: AZURE_CLIENT_ID or ARM_CLIENT_ID with AZURE_CLIENT_SECRET or
   ARM_CLIENT_SECRET → ClientSecretCredential;
3. a federated (OIDC) token: AZURE_FEDERATED_TOKEN_FILE (workload identity) → WorkloadIdentityCredential;
   ARM_USE_OIDC=true with ARM_OIDC_TOKEN_FILE_PATH or ARM_OIDC_TOKEN (as pulumi-azuread reads them) →
   ClientAssertionCredential; the client id from AZURE_CLIENT_ID or ARM_CLIENT_ID;
4. the Azure CLI login.

When no token comes, CredentialError lists every source with why it was not used, or why it failed.

Tokens are always requested for the *target* tenant (a client tenant for Part D), not the
credential's home tenant (usually the MSP's): the app must be consented in that tenant. So
ARM_TENANT_ID / AZURE_TENANT_ID name no tenant here; they are reported in the failure for reference.
AZURE_AUTHORITY_HOST selects the cloud; off the public cloud instance discovery is disabled, since
sovereign clouds and the test emulators are not in Microsoft's public discovery list.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# azure.identity's AzureAuthorityHosts.AZURE_PUBLIC_CLOUD. azure-identity itself is imported only when a
# token is needed: the offline plan never loads it (BENCHMARKS.md §1).
PUBLIC_CLOUD = "login.microsoftonline.com"

# Every variable that selects a credential; the cache of credentials is keyed on their values.
CLIENT_ID_VARS = ("AZURE_CLIENT_ID", "ARM_CLIENT_ID")
CLIENT_SECRET_VARS = ("AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET")
TENANT_VARS = ("AZURE_TENANT_ID", "ARM_TENANT_ID")
ENV_VARS = (
    *CLIENT_ID_VARS,
    *CLIENT_SECRET_VARS,
    *TENANT_VARS,
    "AZURE_FEDERATED_TOKEN_FILE",
    "ARM_USE_OIDC",
    "ARM_OIDC_TOKEN",
    "ARM_OIDC_TOKEN_FILE_PATH",
)
_TRUE = {"1", "true", "yes"}

_secrets: dict[str, str] = {}
_secrets_lock = threading.Lock()


class CredentialError(RuntimeError):
    """No usable credential, or the token request failed; the message never contains a secret.

    ``token_status``/``token_response``: when the token endpoint answered with an error, its HTTP status and
    body (an Entra error document: codes and descriptions, never a secret), for callers that report it as
    another client would (tools/standin/azuread_standin.py, as the real azuread provider words it)."""

    def __init__(self, message: str, *, token_status: int | None = None, token_response: str = "") -> None:
        super().__init__(message)
        self.token_status, self.token_response = token_status, token_response


def remember_secret(name: str, value: str | None) -> None:
    """Keep a secret the provider host received in `configure` (process memory only, never state)."""
    if value:
        with _secrets_lock:
            _secrets[name] = value


def secret(name: str, env_var: str | None = None) -> str | None:
    with _secrets_lock:
        value = _secrets.get(name)
    return value or (os.environ.get(env_var) if env_var else None)


def authority_host() -> str:
    return os.environ.get("AZURE_AUTHORITY_HOST", PUBLIC_CLOUD).rstrip("/")


def _is_public_cloud(authority: str) -> bool:
    host = authority.removeprefix("https://").removeprefix("http://").rstrip("/")
    return host == PUBLIC_CLOUD


def _common_options(authority: str) -> dict[str, Any]:
    return {
        "authority": authority,
        "disable_instance_discovery": not _is_public_cloud(authority),
        "additionally_allowed_tenants": ["*"],
    }


# --- which source -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One way to get a token: `build` when it is configured, else `skipped` says why not."""

    name: str
    build: Callable[[], TokenCredential] | None = None
    skipped: str = ""


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    return next(((name, env[name]) for name in names if env.get(name)), None)


def _client_secret_source(tenant_id: str, env: Mapping[str, str], options: dict[str, Any]) -> Source:
    name = "client secret from the environment (AZURE_CLIENT_ID/ARM_CLIENT_ID + AZURE_CLIENT_SECRET/ARM_CLIENT_SECRET)"
    client, secret_var = _first(env, CLIENT_ID_VARS), _first(env, CLIENT_SECRET_VARS)
    if client is None or secret_var is None:
        missing = " and ".join(
            label for label, found in (("no client id", client), ("no client secret", secret_var)) if found is None
        )
        return Source(name, skipped=f"not set: {missing}")

    def build() -> TokenCredential:
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(tenant_id, client[1], secret_var[1], **options)

    return Source(f"client secret of {client[1]} ({client[0]} + {secret_var[0]})", build)


def _oidc_source(tenant_id: str, env: Mapping[str, str], options: dict[str, Any]) -> Source:
    name = "federated token (AZURE_FEDERATED_TOKEN_FILE, or ARM_USE_OIDC with ARM_OIDC_TOKEN_FILE_PATH/ARM_OIDC_TOKEN)"
    client = _first(env, CLIENT_ID_VARS)
    token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
    use_oidc = env.get("ARM_USE_OIDC", "").strip().lower() in _TRUE
    arm_file, arm_token = env.get("ARM_OIDC_TOKEN_FILE_PATH"), env.get("ARM_OIDC_TOKEN")
    if not (token_file or arm_file or arm_token):
        return Source(name, skipped="not set: no token file or token")
    if client is None:
        return Source(name, skipped="a token is set but no client id (AZURE_CLIENT_ID or ARM_CLIENT_ID)")
    if token_file:
        file_path = token_file

        def workload() -> TokenCredential:
            from azure.identity import WorkloadIdentityCredential

            return WorkloadIdentityCredential(
                tenant_id=tenant_id, client_id=client[1], token_file_path=file_path, **options
            )

        return Source(f"workload identity of {client[1]} (AZURE_FEDERATED_TOKEN_FILE {token_file})", workload)
    if not use_oidc:
        which = "ARM_OIDC_TOKEN_FILE_PATH" if arm_file else "ARM_OIDC_TOKEN"
        return Source(name, skipped=f"{which} is set but ARM_USE_OIDC is not true (pulumi-azuread needs it too)")
    assertion = _file_reader(arm_file) if arm_file else _constant(str(arm_token))
    origin = f"ARM_OIDC_TOKEN_FILE_PATH {arm_file}" if arm_file else "ARM_OIDC_TOKEN"

    def federated() -> TokenCredential:
        from azure.identity import ClientAssertionCredential

        return ClientAssertionCredential(tenant_id, client[1], assertion, **options)

    return Source(f"federated token of {client[1]} ({origin})", federated)


def _file_reader(path: str) -> Callable[[], str]:
    def read() -> str:  # read on every token request: CI systems rotate the file
        return Path(path).read_text(encoding="utf-8").strip()

    return read


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


def _cli_source(tenant_id: str) -> Source:
    def build() -> TokenCredential:
        from azure.identity import AzureCliCredential

        return AzureCliCredential(tenant_id=tenant_id, additionally_allowed_tenants=["*"])

    return Source("Azure CLI login (`az login`)", build)


def sources(tenant_id: str, env: Mapping[str, str], authority: str, explicit: tuple[str, str] | None) -> list[Source]:
    """Every source in order of preference, each configured (build) or not (skipped, with why)."""
    options = _common_options(authority)
    found: list[Source] = []
    if explicit is not None:
        client_id, secret_value = explicit

        def build() -> TokenCredential:
            from azure.identity import ClientSecretCredential

            return ClientSecretCredential(tenant_id, client_id, secret_value, **options)

        found.append(Source(f"client secret of {client_id} (from the stack)", build))
    found += [_client_secret_source(tenant_id, env, options), _oidc_source(tenant_id, env, options)]
    found.append(_cli_source(tenant_id))
    return found


# --- tokens -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chosen:
    credential: TokenCredential | None
    name: str
    report: tuple[str, ...]  # one line per source: used, or why not


def _choose(tenant_id: str, env: Mapping[str, str], authority: str, explicit: tuple[str, str] | None) -> _Chosen:
    report: list[str] = []
    for source in sources(tenant_id, env, authority, explicit):
        if source.build is None:
            report.append(f"{source.name}: {source.skipped}")
            continue
        try:
            return _Chosen(source.build(), source.name, tuple(report))
        except Exception as exc:  # a misconfigured source (bad file path...): say so, never fall through
            report.append(f"{source.name}: could not be set up: {type(exc).__name__}: {_first_line(exc)}")
            return _Chosen(None, source.name, tuple(report))
    return _Chosen(None, "", tuple(report))


@functools.lru_cache(maxsize=64)
def _credential(
    tenant_id: str, client_id: str | None, secret_digest: str | None, authority: str, env_key: str
) -> _Chosen:
    # Cached per process so 195 policies do not mean 195 token requests; the secrets themselves are looked
    # up again (the cache key only carries digests).
    explicit = (client_id, _secret_by_digest(secret_digest)) if client_id and secret_digest else None
    return _choose(tenant_id, _credential_env(), authority, explicit)


def _credential_env() -> dict[str, str]:
    return {name: os.environ[name] for name in ENV_VARS if os.environ.get(name)}


_by_digest: dict[str, str] = {}


def _digest(value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()
    with _secrets_lock:
        _by_digest[digest] = value
    return digest


def _secret_by_digest(digest: str) -> str:
    with _secrets_lock:
        return _by_digest[digest]


def access_token(
    tenant_id: str,
    scope: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    authority: str | None = None,
) -> str:
    """A bearer token for `scope` in `tenant_id` from `authority` (default AZURE_AUTHORITY_HOST).
    Raises CredentialError listing every credential tried."""
    host = (authority or authority_host()).rstrip("/")
    env_key = _digest(repr(sorted(_credential_env().items())))
    chosen = _credential(tenant_id.lower(), client_id, _digest(client_secret) if client_secret else None, host, env_key)
    if chosen.credential is None:
        raise CredentialError(_failure(tenant_id, scope, chosen.report, host))
    try:
        return chosen.credential.get_token(scope).token
    except Exception as exc:  # azure-identity raises several types; callers need one readable error
        failed = f"{chosen.name}: tried, failed: {type(exc).__name__}: {_first_line(exc)}"
        raise CredentialError(_failure(tenant_id, scope, (*chosen.report, failed), host)) from None


def client_secret_sign_in(
    tenant_id: str, scope: str, client_id: str, client_secret: str, *, authority: str | None = None
) -> str:
    """A token by the OAuth 2.0 client-credentials grant with a secret: one form POST to the tenant's v2.0
    token endpoint (Microsoft Learn, "Microsoft identity platform and the OAuth 2.0 client credentials
    flow"), as a client without azure-identity sends it. Raises CredentialError carrying the endpoint's
    status and body when it refuses (the body is Entra's error document, never the secret)."""
    import requests

    host = (authority or authority_host()).rstrip("/")
    if not host.startswith(("https://", "http://")):
        host = f"https://{host}"
    url = f"{host}/{tenant_id}/oauth2/v2.0/token"
    form = {"client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials", "scope": scope}
    try:
        response = requests.post(url, data=form, headers={"Accept": "application/json"}, timeout=30)
    except requests.RequestException as exc:
        raise CredentialError(f"could not reach the token endpoint {url}: {type(exc).__name__}") from None
    if not 200 <= response.status_code <= 299:
        raise CredentialError(
            f"the token endpoint {url} refused client {client_id}: HTTP {response.status_code}",
            token_status=response.status_code,
            token_response=response.text,
        )
    return str(response.json()["access_token"])


def _failure(tenant_id: str, scope: str, report: tuple[str, ...], host: str) -> str:
    lines = "\n".join(f"    - {line}" for line in report)
    tenants = ", ".join(f"{name}={value}" for name in TENANT_VARS if (value := os.environ.get(name)))
    note = f"\n    ({tenants} noted: tokens are always requested for the stack's tenant)" if tenants else ""
    return (
        f"could not get a token for {scope} in tenant {tenant_id} from {host}; "
        f"credentials, in the order tried:\n{lines}{note}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def reset_cache() -> None:
    """Forget cached credentials (tests switch authorities and secrets between cases)."""
    _credential.cache_clear()
