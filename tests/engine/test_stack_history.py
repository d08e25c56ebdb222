"""`verify`'s "last deployment" (cipp_hardening/stack_history.py) read from the real CLI's `pulumi stack history`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cipp_hardening import stack_history
from tests.engine.test_language_host import _minimal_project

PROGRAM = "import pulumi\n\npulumi.export('deployed', True)\n"


def test_the_last_deployment_is_the_start_of_the_newest_up_not_a_refresh(
    pulumi_cli: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _minimal_project(pulumi_cli, tmp_path, PROGRAM)
    project.stack_init("history")
    for key, value in project.env.items():  # the Automation API runs the CLI with this process's environment
        monkeypatch.setenv(key, value)
    stack_file = project.workdir / "Pulumi.history.yaml"
    never = stack_history.last_deployment("history", stack_file)
    assert isinstance(never, str)
    assert "has never been deployed" in never

    before = datetime.now(UTC) - timedelta(seconds=1)  # the history keeps whole seconds
    project.run("up", "--yes", "--skip-preview", "--stack", "history")
    after = datetime.now(UTC)
    project.run("refresh", "--yes", "--skip-preview", "--stack", "history")

    deployed = stack_history.last_deployment("history", stack_file)
    assert isinstance(deployed, datetime)
    assert before <= deployed <= after, "the up's start, not the later refresh"


def test_a_stack_that_does_not_exist_says_why(
    pulumi_cli: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _minimal_project(pulumi_cli, tmp_path, PROGRAM)
    for key, value in project.env.items():
        monkeypatch.setenv(key, value)
    why = stack_history.last_deployment("nowhere", project.workdir / "Pulumi.nowhere.yaml")
    assert isinstance(why, str)
    assert why == "`pulumi stack history` failed for stack nowhere: no stack named 'nowhere' found (give --since)"
