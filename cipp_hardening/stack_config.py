"""Read this stack's configuration from the Pulumi runtime and validate it (the program's only config entry)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi.runtime.config

from cipp_hardening.config import PROJECT, ConfigError, StackConfig, parse_stack_config

SECRET_KEYS = frozenset({"cippApiManagerSecret", "graphClientSecret"})
_FOREIGN_NAMESPACES = ("azuread:",)


def raw_stack_config() -> dict[str, Any]:
    """Every key of our namespace (namespace stripped, objects decoded) plus the azuread keys we read.

    Secret values never enter the result: only a marker that the key is set.
    """
    raw: dict[str, Any] = {}
    for full_key, value in pulumi.runtime.config.CONFIG.get().items():
        namespace, _, key = full_key.partition(":")
        if namespace == PROJECT:
            raw[key] = "[secret]" if key in SECRET_KEYS else _decode(value)
        elif full_key.startswith(_FOREIGN_NAMESPACES):
            raw[full_key] = value
    return raw


def secret_value(key: str) -> str | None:
    """The plain value of a secret config key, for acquiring a token in this process only.

    Never export it or pass it as a resource input: resources get credentials from the provider host.
    """
    value = pulumi.runtime.config.CONFIG.get().get(f"{PROJECT}:{key}")
    return value if isinstance(value, str) and value else None


def _decode(value: Any) -> Any:
    # Structured config reaches the program as JSON text (pulumi-python-notes.md §4.3).
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_stack_config() -> StackConfig:
    """Validated config, or every problem logged as an error and a clean RunError (nothing registered)."""
    try:
        config = parse_stack_config(raw_stack_config())
    except ConfigError as error:
        for problem in error.problems:
            pulumi.log.error(str(problem))
        raise pulumi.RunError(str(error)) from None
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config
