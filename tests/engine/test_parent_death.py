"""die-with-parent, the helper our launchers exec through (docs/engine.md, "When the CLI is killed")."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from emulators.pulumi_project import ENGINE_BIN, Process, descendants


@pytest.fixture
def helper(pulumi_cli: Path) -> Path:
    found = pulumi_cli.parent / "die-with-parent"
    if not found.is_file():
        found = ENGINE_BIN / "die-with-parent"
    assert found.is_file(), f"no die-with-parent beside {pulumi_cli}: run `make engine`"
    return found


def _gone(process: Process, deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while process.alive() and time.monotonic() < end:
        time.sleep(0.05)
    return not process.alive()


def test_the_program_runs_in_place_of_the_helper(helper: Path) -> None:
    result = subprocess.run(
        [str(helper), str(os.getpid()), "sh", "-c", 'echo "$PPID"'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(os.getpid()), "exec keeps the process: its parent is still us"


def test_a_parent_that_is_already_gone_runs_nothing(helper: Path, tmp_path: Path) -> None:
    witness = tmp_path / "ran"
    not_our_parent = os.getppid()  # a live process, but not the helper's parent: as if ours had died
    result = subprocess.run(
        [str(helper), str(not_our_parent), "touch", str(witness)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "has already exited" in result.stderr
    assert not witness.exists()


def test_the_program_dies_when_its_parent_is_killed(helper: Path) -> None:
    # A shell stands in for the CLI: it starts the helper in the background, as the CLI starts a launcher.
    parent = subprocess.Popen(
        ["sh", "-c", f'"{helper}" "$$" sleep 600 & wait'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    children: list[Process] = []
    try:
        end = time.monotonic() + 60
        while not (children := [p for p in descendants(parent.pid) if p.command.startswith("sleep")]):
            assert time.monotonic() < end, "the helper never started sleep"
            assert parent.poll() is None, parent.stderr.read() if parent.stderr else ""
            time.sleep(0.05)
        parent.kill()
        parent.wait(timeout=60)
        assert _gone(children[0], 10), "sleep outlived the process that started it"
    finally:
        parent.kill()
        for process in children:
            if process.alive():
                os.kill(process.pid, signal.SIGKILL)
