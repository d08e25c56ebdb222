"""Access tokens from azure-identity, resolved per call; nothing here is ever pickled into state.

Which credential (first match):
1. an explicit client secret (a Pulumi secret handed to the provider host by `configure`, or an
   environment variable the caller names) → ClientSecretCredential;
2. AZURE_CLIENT_ID + AZURE_CLIENT_SECRET → ClientSecretCredential;
3. AZURE_CLIENT_ID + AZURE_FEDERATED_TOKEN_FILE (workload identity / GitHub OIDC) → WorkloadIdentityCredential;
4. the Azure CLI login.

Tokens are always requested for the *target* tenant (a client tenant for Part D), not the
credential's home tenant (usually the MSP's): the app must be consented in that tenant.
AZURE_AUTHORITY_HOST selects the cloud; off the public cloud instance discovery is disabled, since
sovereign clouds and the test emulators are not in Microsoft's public discovery list.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# azure.identity's AzureAuthorityHosts.AZURE_PUBLIC_CLOUD. azure-identity itself is imported only when a
# token is needed: the offline plan never loads it (BENCHMARKS.md §1).
PUBLIC_CLOUD = "login.microsoftonline.com"

_secrets: dict[str, str] = {}
_secrets_lock = threading.Lock()


class CredentialError(RuntimeError):
    """No usable credential, or the token request failed; the message never contains a secret."""


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


@functools.lru_cache(maxsize=64)
def _credential(tenant_id: str, client_id: str | None, secret_digest: str | None, authority: str) -> TokenCredential:
    # Cached per process so 195 policies do not mean 195 token requests; the secret itself is looked
    # up again (the cache key only carries its digest).
    from azure.identity import AzureCliCredential, ClientSecretCredential, WorkloadIdentityCredential

    options = _common_options(authority)
    if client_id and secret_digest:
        return ClientSecretCredential(tenant_id, client_id, _secret_by_digest(secret_digest), **options)
    env_client = os.environ.get("AZURE_CLIENT_ID")
    if env_client and os.environ.get("AZURE_CLIENT_SECRET"):
        return ClientSecretCredential(tenant_id, env_client, os.environ["AZURE_CLIENT_SECRET"], **options)
    if env_client and os.environ.get("AZURE_FEDERATED_TOKEN_FILE"):
        return WorkloadIdentityCredential(
            tenant_id=tenant_id,
            client_id=env_client,
            token_file_path=os.environ["AZURE_FEDERATED_TOKEN_FILE"],
            **options,
        )
    return AzureCliCredential(tenant_id=tenant_id, additionally_allowed_tenants=["*"])


_by_digest: dict[str, str] = {}


def _digest(value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()
    with _secrets_lock:
        _by_digest[digest] = value
    return digest


def _secret_by_digest(digest: str) -> str:
    with _secrets_lock:
        return _by_digest[digest]


def access_token(tenant_id: str, scope: str, *, client_id: str | None = None, client_secret: str | None = None) -> str:
    """A bearer token for `scope` in `tenant_id`. Raises CredentialError with a readable reason."""
    credential = _credential(
        tenant_id.lower(), client_id, _digest(client_secret) if client_secret else None, authority_host()
    )
    try:
        return credential.get_token(scope).token
    except Exception as exc:  # azure-identity raises several types; callers need one readable error
        raise CredentialError(
            f"could not get a token for {scope} in tenant {tenant_id} from {authority_host()}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def reset_cache() -> None:
    """Forget cached credentials (tests switch authorities and secrets between cases)."""
    _credential.cache_clear()
