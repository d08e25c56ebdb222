"""The state-backend bootstrap project (bootstrap/) under mocks: what it declares, its config checks,
and that it touches only pulumi-azure-native's storage and keyvault modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from cipp_hardening.offline import OfflineRun, OfflineRunError, run_program, stack_file_config
from tests.helpers import ROOT

BOOTSTRAP = ROOT / "bootstrap"
PROJECT = "cipp-hardening-state"
STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
CONTAINER = "azure-native:storage:BlobContainer"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"


def example_config(**overrides: Any) -> dict[str, str]:
    return stack_file_config(BOOTSTRAP / "Pulumi.state.yaml", PROJECT, overrides)


def run(config: dict[str, str]) -> OfflineRun:
    return run_program(BOOTSTRAP / "__main__.py", config, project=PROJECT, stack="state")


@pytest.fixture(scope="module")
def declared() -> OfflineRun:
    return run(example_config())


def only(declared: OfflineRun, type_: str) -> dict[str, Any]:
    [resource] = declared.of_type(type_)
    return resource.inputs


def test_project_file_is_a_separate_python_project() -> None:
    project = yaml.safe_load((BOOTSTRAP / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["name"] == PROJECT
    assert project["runtime"]["name"] == "python"
    requirements = (BOOTSTRAP / "requirements.txt").read_text(encoding="utf-8")
    assert "pulumi-azure-native>=" in requirements
    assert "-r bootstrap/requirements.txt" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "azure-native" not in (ROOT / "requirements.txt").read_text(encoding="utf-8")


def test_storage_account_is_locked_down(declared: OfflineRun) -> None:
    account = only(declared, STORAGE_ACCOUNT)
    assert account["accountName"] == "cipphardeningstate01"
    assert account["resourceGroupName"] == "rg-cipp-hardening-state"
    assert account["kind"] == "StorageV2"
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False, "Entra ID only by default"
    assert account["allowCrossTenantReplication"] is False


def test_blob_versioning_and_soft_delete(declared: OfflineRun) -> None:
    service = only(declared, BLOB_SERVICE)
    assert service["blobServicesName"] == "default"
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": 30}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 30}


def test_private_state_container(declared: OfflineRun) -> None:
    container = only(declared, CONTAINER)
    assert container["containerName"] == "pulumi-state"
    assert container["publicAccess"] == "None"


def test_key_vault_and_key_for_the_secrets_provider(declared: OfflineRun) -> None:
    properties = only(declared, VAULT)["properties"]
    assert properties["tenantId"] == "00000000-0000-0000-0000-00000000a001"
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert properties["sku"] == {"family": "A", "name": "standard"}
    key = only(declared, KEY)
    assert key["keyName"] == "pulumi-secrets"
    assert key["properties"]["kty"] == "RSA"
    assert {"encrypt", "decrypt", "wrapKey", "unwrapKey"} <= set(key["properties"]["keyOps"])
    assert "rotationPolicy" not in key["properties"]


def test_every_resource_is_protected() -> None:
    from pulumi.runtime.mocks import MockMonitor

    protected: list[bool] = []
    original = MockMonitor.RegisterResource

    def spy(self: MockMonitor, request: Any) -> Any:
        if request.custom:
            protected.append(bool(request.protect))
        return original(self, request)

    MockMonitor.RegisterResource = spy  # type: ignore[method-assign]
    try:
        run(example_config())
    finally:
        MockMonitor.RegisterResource = original  # type: ignore[method-assign]
    assert protected == [True] * 5


def test_outputs_give_the_login_and_secrets_provider_urls(declared: OfflineRun) -> None:
    assert declared.outputs["backendUrl"] == "azblob://pulumi-state?storage_account=cipphardeningstate01"
    assert (
        declared.outputs["secretsProvider"]
        == "azurekeyvault://kv-cipp-hardening-01.vault.azure.net/keys/pulumi-secrets"
    )


def test_overrides_are_applied() -> None:
    declared = run(example_config(softDeleteDays=7, containerName="state", allowSharedKeyAccess=True))
    assert only(declared, BLOB_SERVICE)["deleteRetentionPolicy"]["days"] == 7
    assert only(declared, CONTAINER)["containerName"] == "state"
    assert only(declared, STORAGE_ACCOUNT)["allowSharedKeyAccess"] is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"storageAccountName": "Has-Caps"}, "storageAccountName: 'Has-Caps' is not 3-24 lowercase"),
        ({"keyVaultName": "9starts-with-digit"}, "keyVaultName"),
        ({"tenantId": "not-a-guid"}, "tenantId"),
        ({"softDeleteDays": 0}, "softDeleteDays"),
        ({"containerName": "a--b"}, "containerName"),
    ],
)
def test_invalid_config_fails_naming_the_key(override: dict[str, Any], message: str) -> None:
    with pytest.raises(OfflineRunError) as failure:
        run(example_config(**override))
    assert message in str(failure.value)


def test_required_keys_are_reported_together() -> None:
    config = {k: v for k, v in example_config().items() if not k.endswith(("resourceGroupName", "tenantId"))}
    with pytest.raises(OfflineRunError) as failure:
        run(config)
    assert "resourceGroupName is required" in str(failure.value)
    assert "tenantId is required" in str(failure.value)


def test_imports_only_the_storage_and_keyvault_modules() -> None:
    tree = ast.parse((BOOTSTRAP / "__main__.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imported if m.startswith("pulumi_azure_native")} == {
        "pulumi_azure_native.storage",
        "pulumi_azure_native.keyvault",
    }


def test_only_storage_and_keyvault_are_loaded_at_run_time() -> None:
    """In a fresh interpreter: which azure-native service modules the program actually loaded."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from cipp_hardening.offline import run_program, stack_file_config
config = stack_file_config(__import__("pathlib").Path({str(BOOTSTRAP / "Pulumi.state.yaml")!r}), {PROJECT!r})
run_program(__import__("pathlib").Path({str(BOOTSTRAP / "__main__.py")!r}), config, project={PROJECT!r}, stack="state")
loaded = sorted(
    name for name, module in sys.modules.items()
    if name.startswith("pulumi_azure_native.") and name.count(".") == 1 and type(module).__name__ != "_LazyModule"
)
print(json.dumps(loaded))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    services = loaded - {"pulumi_azure_native._utilities", "pulumi_azure_native.provider", "pulumi_azure_native.config"}
    assert services == {"pulumi_azure_native.storage", "pulumi_azure_native.keyvault"}


def test_the_main_program_imports_azure_native_only_in_the_alert_component() -> None:
    """The optional break-glass alert (docs/break-glass-alerts.md) is the one user; __main__ imports it lazily
    (tests/test_break_glass_alerts.py checks a stack without it never loads the package)."""
    alert_component = ROOT / "components" / "break_glass_alerts.py"
    assert "pulumi_azure_native" in alert_component.read_text(encoding="utf-8")
    for path in [ROOT / "__main__.py", *ROOT.glob("cipp_hardening/*.py"), *ROOT.glob("components/*.py")]:
        if path == alert_component:
            continue
        assert "pulumi_azure_native" not in path.read_text(encoding="utf-8"), path
    for path in ROOT.glob("dynamic_providers/*.py"):
        assert "pulumi_azure_native" not in path.read_text(encoding="utf-8"), path
