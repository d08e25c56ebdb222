"""Read this stack's configuration from the Pulumi runtime and validate it (the program's only config entry)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.runtime.config

from cipp_hardening.config import (
    PROJECT,
    ConfigError,
    StackConfig,
    parse_stack_config,
    raw_from_flat_config,
)


def raw_stack_config() -> dict[str, Any]:
    """Every key of our namespace (namespace stripped, objects decoded) plus the azuread keys we read.

    Secret values never enter the result: only a marker that the key is set.
    """
    return raw_from_flat_config(pulumi.runtime.config.CONFIG.get())


def secret_value(key: str) -> str | None:
    """The plain value of a secret config key, for acquiring a token in this process only.

    Never export it or pass it as a resource input: resources get credentials from the provider host.
    """
    value = pulumi.runtime.config.CONFIG.get().get(f"{PROJECT}:{key}")
    return value if isinstance(value, str) and value else None


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
