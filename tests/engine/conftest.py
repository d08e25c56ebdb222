"""The real-engine suite (`make e2e`): the Pulumi CLI built by `make engine`, never skipped.

Without a CLI every test fails with one message saying how to get one: a green `make e2e` always
means the engine ran.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from emulators.pulumi_project import NO_ENGINE, find_cli


def pytest_report_header(config: pytest.Config) -> str:
    cli = find_cli()
    if cli is None:
        return f"engine: none ({NO_ENGINE})"
    return f"engine: {cli} ({_version(cli)})"


def _version(cli: Path) -> str:
    result = subprocess.run([str(cli), "version"], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip() or result.stderr.strip()


@pytest.fixture(scope="session")
def pulumi_cli() -> Path:
    cli = find_cli()
    if cli is None:
        pytest.fail(NO_ENGINE, pytrace=False)
    return cli
