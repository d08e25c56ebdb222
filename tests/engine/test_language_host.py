"""Our Python language host against upstream's, where a user can tell (docs/engine.md, "Why the Python
language host is ours"): each test runs a minimal program of its own through the real CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

from emulators.pulumi_project import ROOT, PulumiProject

PROGRAM = """\
import os

import pulumi

# Config().get reads the whole stack config first: a PULUMI_CONFIG of "null" fails right here.
pulumi.export("unset_key", pulumi.Config().get("anything") or "absent")
pulumi.export("config_variable_set", "PULUMI_CONFIG" in os.environ)
"""


def _minimal_project(cli: Path, tmp_path: Path, program: str) -> PulumiProject:
    project = PulumiProject.create(cli, tmp_path, {})
    for entry in project.workdir.iterdir():
        entry.unlink()  # not the repository's program: a project of this test's own
    (project.workdir / "Pulumi.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: no-config
            runtime:
              name: python
              options:
                toolchain: pip
                virtualenv: {ROOT / ".venv"}
            """
        )
    )
    (project.workdir / "__main__.py").write_text(program)
    return project


def test_a_stack_with_no_config_runs_and_sees_no_config_variable(pulumi_cli: Path, tmp_path: Path) -> None:
    project = _minimal_project(pulumi_cli, tmp_path, PROGRAM)
    project.stack_init("bare")
    stack_file = project.workdir / "Pulumi.bare.yaml"  # only the passphrase's salt
    assert "config:" not in stack_file.read_text(), "the stack must have no config at all"

    project.run("up", "--yes", "--skip-preview", "--stack", "bare")

    # upstream's constructConfig returns "" for a nil config, and Run then leaves PULUMI_CONFIG unset
    assert project.outputs("bare") == {"unset_key": "absent", "config_variable_set": False}


def test_a_program_warning_reaches_the_engine_once(pulumi_cli: Path, tmp_path: Path) -> None:
    """One diagnostic event per `pulumi.log.warn`: neither the language host (which passes the program's
    stdout/stderr through, where the CLI shows them as messages of the stack) nor the program repeats it. What
    the CLI's display then does with it is upstream's (docs/engine.md, "What the CLI prints")."""
    project = _minimal_project(pulumi_cli, tmp_path, "import pulumi\n\npulumi.log.warn('the one warning')\n")
    project.stack_init("warns")

    diagnostics = project.preview_json("warns").get("diagnostics") or []

    warnings = [d for d in diagnostics if "the one warning" in d.get("message", "")]
    assert [d["severity"] for d in warnings] == ["warning"], diagnostics
