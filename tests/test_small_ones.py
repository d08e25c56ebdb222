"""The small ones: exit codes in every --help, YAML errors with file and line, enabled without a promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening import cli
from cipp_hardening.commands import plan, promote, verify
from cipp_hardening.config import parse_stack_config
from cipp_hardening.yamlfile import YamlFileError, load_yaml
from tests.helpers import ROOT, msp_raw

EXPECTED_CODES = {
    "plan": ["  0  planned", "  2  error", "  3  the scenario matrix finds a broken invariant", "  5  an invariant"],
    "verify": ["  3  broken: a definite failure", "  4  the matrix holds, but a client policy", "  5  an invariant"],
    "promote": ["  0  promoted", "  1  refused", "  2  error"],
    "adopt": ["  0  the ids were written", "  1  refused, nothing written", "  2  error, nothing written"],
    "fleet": ["  0  every selected stack succeeded", "  1  at least one stack failed", "  2  error"],
    "snapshot": ["  0  saved", "  2  error"],
    "scanners": ["  0  the files were written", "  2  error"],
    "demo": ["  0  after the stacks were applied", "  1  something does not hold"],
    "fleet-ci": ["  0  the matrix or the comment was printed"],
    "onboard": ["Exit 0", "2 refused or failed"],
}


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_lists_its_exit_codes_in_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split("\n"))
    assert "exit" in text.lower()
    for line in EXPECTED_CODES[command]:
        assert " ".join(line.split()) in " ".join(text.split()), f"{command} --help lacks {line!r}"


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "Pulumi.prod.yaml"
    broken.write_text("config:\n  cipp-hardening:mode: msp\n  cipp-hardening:trustedLocation: [203.0.113.0/24\n")
    assert plan.main(["--stack-file", str(broken)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"{broken}:4:1: not valid YAML" in out
    assert "<unicode string>" not in out
    assert verify.main(["--stack-file", str(broken)]) == 2
    assert f"{broken}:4:1: not valid YAML" in " ".join(capsys.readouterr().out.split())
    assert promote.main(["--stack-file", str(broken)]) == 2
    assert f"{broken}:4:1" in " ".join(capsys.readouterr().out.split())


def test_a_yaml_error_in_a_scenario_file_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text("scenarios:\n  - name: x\n    expect: blocked\n   signIn: {}\n")
    document: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text())
    document["config"]["cipp-hardening:scenariosFile"] = str(scenarios)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    assert plan.main(["--stack-file", str(stack_file)]) == 2
    assert f"{scenarios}:4:" in " ".join(capsys.readouterr().out.split())


def test_yaml_errors_are_yaml_errors_and_value_errors() -> None:
    with pytest.raises(YamlFileError) as failed:
        load_yaml("a: [1\n", "x.yaml")
    assert isinstance(failed.value, yaml.YAMLError)
    assert isinstance(failed.value, ValueError)
    assert (failed.value.source, failed.value.line) == ("x.yaml", 2)


def enabled_raw(**extra: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.9", **extra)
    return raw


def test_enabled_without_a_promotion_record_warns_in_config_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_stack_config(enabled_raw())
    [warning] = [w for w in config.warnings if "promotedAfter" in w]
    assert "Part A is enabled with no promotion record" in warning
    assert "cipp-hardening promote" in warning

    document: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text())
    document["config"]["cipp-hardening:technicianAccess"].update(state="enabled", operatorCheckIp="203.0.113.9")
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    plan.main(["--stack-file", str(stack_file)])
    out = " ".join(capsys.readouterr().out.split())
    assert "technicianAccess.promotedAfter: Part A is enabled with no promotion record" in out


def test_no_promotion_warning_for_report_only() -> None:
    assert not [w for w in parse_stack_config(msp_raw()).warnings if "promotedAfter" in w]
