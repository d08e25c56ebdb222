"""The Azure Resource Manager request pulumi-azure-native sends for the break-glass alert resources
(docs/break-glass-alerts.md): method, path, api-version and body, from the SDK inputs `make plan` recorded.

ARM puts a resource's own fields (location, kind, tags) at the top of the body and the rest under
`properties`; the path parameters (resource group, name) are not in the body. The API versions are those
the pinned pulumi-azure-native 3.x SDK names for each type ("Uses Azure REST API version ...").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUBSCRIPTION = "{subscriptionId}"  # the azure-native provider's subscription, known at deploy time


@dataclass(frozen=True)
class ArmType:
    path: str  # with {field} for each path parameter, taken from the inputs
    api_version: str
    path_fields: tuple[str, ...]
    top_level: tuple[str, ...] = ("location", "tags")


ARM_TYPES = {
    "azure-native:aadiam:DiagnosticSetting": ArmType(
        "/providers/microsoft.aadiam/diagnosticSettings/{name}", "2017-04-01", ("name",), ()
    ),
    "azure-native:monitor:ActionGroup": ArmType(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        "/providers/Microsoft.Insights/actionGroups/{actionGroupName}",
        "2024-10-01-preview",
        ("resourceGroupName", "actionGroupName"),
    ),
    "azure-native:monitor:ScheduledQueryRule": ArmType(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        "/providers/Microsoft.Insights/scheduledQueryRules/{ruleName}",
        "2025-01-01-preview",
        ("resourceGroupName", "ruleName"),
        ("location", "tags", "kind", "identity"),
    ),
}


def resource_path(type_: str, inputs: dict[str, Any]) -> str | None:
    """The resource's ARM id (its PUT path without the api-version), or None for other types."""
    arm = ARM_TYPES.get(type_)
    if arm is None:
        return None
    values = {name: inputs.get(name, f"<{name}>") for name in arm.path_fields}
    return arm.path.format(subscriptionId=SUBSCRIPTION, **values)


def render_arm(type_: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """{"method", "path", "apiVersion", "body"} for an azure-native type we declare; None otherwise."""
    arm = ARM_TYPES.get(type_)
    path = resource_path(type_, inputs)
    if arm is None or path is None:
        return None
    fields = {k: v for k, v in inputs.items() if k not in arm.path_fields and not k.startswith("__")}
    body = {k: fields.pop(k) for k in arm.top_level if k in fields}
    body["properties"] = dict(sorted(fields.items()))
    return {"method": "PUT", "path": path, "apiVersion": arm.api_version, "body": body}
