"""Read this stack's configuration from the Pulumi runtime and validate it (the program's only config entry)."""

from __future__ import annotations

from typing import Any, NoReturn

import pulumi
import pulumi.runtime.config

from cipp_hardening import run_mode
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


# The exec shim's and the language host's "the program already showed the error" code (pulumi/pulumi:
# sdk/python/cmd/pulumi-language-python-exec, PYTHON_PROCESS_EXITED_AFTER_SHOWING_USER_ACTIONABLE_MESSAGE_CODE).
SHOWN_TO_USER_EXIT_CODE = 32


def stop_on_config_error(error: ConfigError) -> NoReturn:
    """One report of every problem, then stop (nothing registered; docs/configuration.md).

    A RunError would be logged a second time by the exec shim, which then exits 1, and the CLI adds
    "an unhandled error occurred"; exit code 32 makes the language host bail quietly instead. Under the
    offline mocks there is no host: each problem is logged and the RunError carries the report."""
    if run_mode.is_offline():
        for problem in error.problems:
            pulumi.log.error(str(problem))
        raise pulumi.RunError(str(error))
    pulumi.log.error(str(error))
    raise SystemExit(SHOWN_TO_USER_EXIT_CODE)


def load_stack_config() -> StackConfig:
    """Validated config, or one report of every problem and a stop (stop_on_config_error)."""
    try:
        config = parse_stack_config(raw_stack_config())
    except ConfigError as error:
        stop_on_config_error(error)
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config
