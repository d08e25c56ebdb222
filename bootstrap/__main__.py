"""State backend of cipp-hardening: where the stacks keep their state and encrypt their secrets.

Creates, in an existing resource group:

* a StorageV2 account: HTTPS and TLS 1.2 only, no public blob access, Entra ID (no shared keys) by
  default, blob versioning and soft delete for blobs and containers;
* a private container for the state (`pulumi login azblob://<container>?storage_account=<account>`);
* a Key Vault (RBAC, soft delete, purge protection) and an RSA key for
  `--secrets-provider azurekeyvault://<vault>.vault.azure.net/keys/<key>`.

All of it is protected: losing it loses every stack's state. Role assignments are left to the README
(granting them needs the authorization module, which this program does not import). Only the storage
and keyvault modules of pulumi-azure-native are imported: touching more costs seconds and memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.keyvault as keyvault
import pulumi_azure_native.storage as storage

_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_VAULT = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9]|-(?!-)){1,22}[a-zA-Z0-9]$")
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$")
_KEY = re.compile(r"^[a-zA-Z0-9-]{1,127}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_REQUIRED = ("resourceGroupName", "storageAccountName", "keyVaultName", "tenantId")
_OPTIONAL = ("containerName", "keyName", "storageSku", "vaultDnsSuffix", "location")
DEFAULTS: dict[str, Any] = {
    "containerName": "pulumi-state",
    "keyName": "pulumi-secrets",
    "storageSku": "Standard_GRS",
    "softDeleteDays": 30,
    "allowSharedKeyAccess": False,
    "vaultDnsSuffix": "vault.azure.net",
}


@dataclass(frozen=True)
class Settings:
    resource_group_name: str
    storage_account_name: str
    key_vault_name: str
    tenant_id: str
    container_name: str
    key_name: str
    storage_sku: str
    soft_delete_days: int
    allow_shared_key_access: bool
    vault_dns_suffix: str
    location: str | None = None

    @property
    def backend_url(self) -> str:
        return f"azblob://{self.container_name}?storage_account={self.storage_account_name}"

    @property
    def secrets_provider(self) -> str:
        return f"azurekeyvault://{self.key_vault_name}.{self.vault_dns_suffix}/keys/{self.key_name}"


def parse_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate the stack config (keys without namespace); one ValueError listing every problem."""
    values = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    problems = [f"cipp-hardening-state:{k} is required" for k in _REQUIRED if not values.get(k)]
    checks = {
        "storageAccountName": (_ACCOUNT, "3-24 lowercase letters and digits"),
        "keyVaultName": (_VAULT, "3-24 letters, digits and single hyphens, starting with a letter"),
        "containerName": (_CONTAINER, "3-63 lowercase letters, digits and single hyphens"),
        "keyName": (_KEY, "letters, digits and hyphens"),
        "tenantId": (_GUID, "a GUID (the tenant of the identities that use the key)"),
    }
    for key, (pattern, meaning) in checks.items():
        if values.get(key) and not pattern.match(str(values[key])):
            problems.append(f"cipp-hardening-state:{key}: {values[key]!r} is not {meaning}")
    days = values["softDeleteDays"]
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        problems.append(f"cipp-hardening-state:softDeleteDays: {days!r} must be a whole number of days, 1-365")
    if problems:
        raise ValueError("; ".join(problems))
    return Settings(
        resource_group_name=str(values["resourceGroupName"]),
        storage_account_name=str(values["storageAccountName"]),
        key_vault_name=str(values["keyVaultName"]),
        tenant_id=str(values["tenantId"]),
        container_name=str(values["containerName"]),
        key_name=str(values["keyName"]),
        storage_sku=str(values["storageSku"]),
        soft_delete_days=int(days),
        allow_shared_key_access=bool(values["allowSharedKeyAccess"]),
        vault_dns_suffix=str(values["vaultDnsSuffix"]),
        location=str(values["location"]) if values.get("location") else None,
    )


def read_settings() -> Settings:
    config = pulumi.Config()
    raw: dict[str, Any] = {key: config.get(key) for key in (*_REQUIRED, *_OPTIONAL)}
    raw["softDeleteDays"] = config.get_int("softDeleteDays")
    raw["allowSharedKeyAccess"] = config.get_bool("allowSharedKeyAccess")
    return parse_settings(raw)


def state_storage(s: Settings, protect: pulumi.ResourceOptions) -> tuple[storage.StorageAccount, storage.BlobContainer]:
    account = storage.StorageAccount(
        "state",
        account_name=s.storage_account_name,
        resource_group_name=s.resource_group_name,
        location=s.location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=s.storage_sku),
        access_tier=storage.AccessTier.HOT,
        enable_https_traffic_only=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        allow_blob_public_access=False,
        allow_shared_key_access=s.allow_shared_key_access,
        default_to_o_auth_authentication=True,
        allow_cross_tenant_replication=False,
        opts=protect,
    )
    retention = storage.DeleteRetentionPolicyArgs(enabled=True, days=s.soft_delete_days)
    storage.BlobServiceProperties(
        "state",
        account_name=account.name,
        resource_group_name=s.resource_group_name,
        blob_services_name="default",
        is_versioning_enabled=True,
        delete_retention_policy=retention,
        container_delete_retention_policy=retention,
        opts=protect,
    )
    container = storage.BlobContainer(
        "state",
        container_name=s.container_name,
        account_name=account.name,
        resource_group_name=s.resource_group_name,
        public_access=storage.PublicAccess.NONE,
        opts=protect,
    )
    return account, container


def secrets_key(s: Settings, protect: pulumi.ResourceOptions) -> tuple[keyvault.Vault, keyvault.Key]:
    vault = keyvault.Vault(
        "secrets",
        vault_name=s.key_vault_name,
        resource_group_name=s.resource_group_name,
        location=s.location,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=s.tenant_id,
            sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=90,
            enable_purge_protection=True,
        ),
        opts=protect,
    )
    # Pulumi's azurekeyvault secrets provider wraps each stack's data key with this key (RSA-OAEP).
    # No rotation policy: a stack's encrypted data key names no key version.
    key = keyvault.Key(
        "secrets",
        key_name=s.key_name,
        vault_name=vault.name,
        resource_group_name=s.resource_group_name,
        properties=keyvault.KeyPropertiesArgs(
            kty=keyvault.JsonWebKeyType.RSA,
            key_size=3072,
            key_ops=["encrypt", "decrypt", "wrapKey", "unwrapKey"],
        ),
        opts=protect,
    )
    return vault, key


def main() -> None:
    try:
        settings = read_settings()
    except ValueError as exc:
        raise pulumi.RunError(str(exc)) from None
    protect = pulumi.ResourceOptions(protect=True)
    account, container = state_storage(settings, protect)
    vault, key = secrets_key(settings, protect)
    pulumi.export("storageAccountName", account.name)
    pulumi.export("containerName", container.name)
    pulumi.export("keyVaultName", vault.name)
    pulumi.export("keyName", key.name)
    pulumi.export("backendUrl", settings.backend_url)
    pulumi.export("secretsProvider", settings.secrets_provider)


main()
