"""The two virtualenvs (docs/engine.md, "What the CLI prints", `pulumi about`): `.venv`, the program's, holds what a
user's holds; `.venv-dev`, layered on it, adds the dev tools and the bootstrap's pulumi-azure-native."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

# What may go into the program's .venv: the program, the demo's trustme, the policy pack, breakGlassAlerts' azure-native
PROGRAM_REQUIREMENTS = {
    "requirements.txt",
    "requirements-demo.txt",
    "policy/requirements.txt",
    "requirements-alerts.txt",
}
DEV_TARGETS = ("test", "lint", "typecheck", "e2e", "chaos", "bench", "mutants")


def recipes() -> dict[str, tuple[str, list[str]]]:
    """Each Makefile rule: target -> (prerequisites, recipe lines)."""
    rules: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if rule := re.match(r"^([\w.$()/-]+):(?!=)(.*)$", line):
            current = []
            rules[rule.group(1)] = (rule.group(2), current)
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif not line.startswith("\t"):
            current = None
    return rules


def test_the_programs_venv_gets_only_the_programs_requirements() -> None:
    installed_by: dict[str, set[str]] = {"$(BIN)": set(), "$(DEVBIN)": set()}
    for _, lines in recipes().values():
        for line in lines:
            if found := re.match(r"(\$\((?:DEV)?BIN\))/(?:pip|python -m pip) install .*?-r (\S+)", line):
                installed_by[found.group(1)].add(found.group(2))
    assert installed_by["$(BIN)"] <= PROGRAM_REQUIREMENTS, installed_by["$(BIN)"] - PROGRAM_REQUIREMENTS
    assert installed_by["$(DEVBIN)"] == {"requirements-dev.txt"}
    assert "-r bootstrap/requirements.txt" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("target", DEV_TARGETS)
def test_the_developer_targets_run_in_the_dev_venv(target: str) -> None:
    prerequisites, lines = recipes()[target]
    assert prerequisites.split() == ["$(DEV)/.dev"]
    assert any("$(DEVBIN)/" in line for line in lines), lines
    assert not [line for line in lines if "$(BIN)/" in line]


@pytest.mark.skipif(
    Path(sys.prefix) != ROOT / ".venv-dev", reason="the layout `make` builds: this suite run by .venv-dev's python"
)
def test_the_programs_venv_lacks_what_only_the_developers_need() -> None:
    """What `pulumi about` lists in a stack is what Pulumi.yaml's `.venv` holds."""
    dev_only = ("pulumi_azure_native", "pytest", "mypy")
    code = f"import importlib.util as u; print(*[m for m in {dev_only!r} if u.find_spec(m)])"
    program_python = ROOT / ".venv" / "bin" / "python"
    result = subprocess.run([str(program_python), "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.split() == [], f".venv holds {result.stdout.split()}: it predates .venv-dev, `make clean` once"
    assert all(importlib.util.find_spec(module) for module in dev_only), ".venv-dev lacks them"
