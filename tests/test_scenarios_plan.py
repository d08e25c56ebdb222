"""`make plan` with the scenario matrix: printed, in the JSON, and exit 3 on a broken invariant."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening.commands.plan import PlanDocument, main, plan_matrix
from cipp_hardening.inventory import SNAPSHOT_ENV
from tests.helpers import ROOT

CONTOSO_POLICIES = ROOT / "examples" / "client-contoso-policies"


# A technician at home "never blocked": Part A says otherwise, so the matrix has one broken row.
BROKEN_SCENARIO = """
scenarios:
  - name: a technician at home is let in
    expect: never_blocked
    signIn: {userId: u1, groups: [00000000-0000-0000-0000-00000000b001], ip: 198.51.100.77}
"""


def stack_with(tmp_path: Path, stack: str, scenarios: str | None) -> Path:
    document: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    if scenarios is not None:
        scenario_file = tmp_path / "scenarios.yaml"
        scenario_file.write_text(scenarios)
        document["config"]["cipp-hardening:scenariosFile"] = str(scenario_file)  # absolute: wins over the root
    path = tmp_path / f"Pulumi.{stack}-test.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_prod_plan_prints_the_matrix_and_writes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "plan.json"
    assert main(["--stack", "example", "--json", str(target)]) == 0
    out = capsys.readouterr().out
    assert "scenario matrix" in out
    assert "9 scenario(s): 9 ok" in out
    matrix = json.loads(target.read_text())["matrix"]
    assert (matrix["ok"], matrix["failures"], matrix["uncertain"]) == (True, 0, 0)
    assert matrix["rows"][0]["name"] == "technician inside 203.0.113.0/24"
    assert {"name", "signIn", "expected", "actual", "status", "ok", "responsible", "origin", "cipp"} == set(
        matrix["rows"][0]
    )
    assert matrix["rows"][0]["cipp"] == "not held by CIPP (no cippApi.customRoles)"


def test_a_broken_invariant_exits_3_and_names_the_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack_file = stack_with(tmp_path, "example", BROKEN_SCENARIO)
    assert main(["--stack", "example", "--stack-file", str(stack_file)]) == 3
    out = capsys.readouterr().out
    assert "1 broken" in out
    assert "Block CIPP Access - Outside Trusted IPs" in out
    assert main(["--stack", "example", "--stack-file", str(stack_file), "--json", "-"]) == 3
    document = json.loads(capsys.readouterr().out)
    [broken] = [r for r in document["matrix"]["rows"] if not r["ok"]]
    assert broken["responsible"] == ["Block CIPP Access - Outside Trusted IPs"]


def test_a_bad_scenario_file_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack_file = stack_with(tmp_path, "example", "scenarios:\n  - {name: x, expect: maybe, signIn: {userId: u}}\n")
    assert main(["--stack", "example", "--stack-file", str(stack_file)]) == 2
    out = capsys.readouterr().out
    assert "scenarios.yaml" in out
    assert "scenarios[0] ('x').expect" in out


def test_the_client_plan_evaluates_the_policies_after_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "")  # main sets it; monkeypatch puts it back afterwards
    target = tmp_path / "plan.json"
    args = ["--stack", "client-contoso", "--policies", str(CONTOSO_POLICIES), "--json", str(target)]
    assert main(args) == 0
    rows = {r["name"]: r for r in json.loads(target.read_text())["matrix"]["rows"]}
    msp = rows["MSP service-provider user (GDAP, tenant 00000000-0000-0000-0000-00000000a001) from Azure"]
    assert msp["status"] == "ok"
    assert rows["Contoso employee from a hotel, once the office policy is switched on"]["status"] == "uncertain"
    assert "1 uncertain" in capsys.readouterr().out


def test_a_client_plan_without_a_snapshot_has_no_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    assert plan_matrix(PlanDocument("client-contoso"), ROOT / "Pulumi.client-contoso.yaml") is None


CONSOLE_SCRIPT = ROOT / ".venv" / "bin" / "cipp-hardening"


@pytest.mark.skipif(not CONSOLE_SCRIPT.is_file(), reason="needs the console script `make` installs into .venv")
def test_the_exit_code_reaches_the_caller_and_json_stdout_is_json_only(tmp_path: Path) -> None:
    stack_file = stack_with(tmp_path, "example", BROKEN_SCENARIO)
    broken = subprocess.run(
        [str(CONSOLE_SCRIPT), "plan", "--stack-file", str(stack_file), "--json", "-"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert broken.returncode == 3, broken.stderr
    assert json.loads(broken.stdout)["matrix"]["exitCode"] == 3  # stdout holds the JSON document and nothing else
    # make echoes no command before it: `make plan JSON=-` is as parseable as the script itself.
    through_make = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "plan", "JSON=-"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert through_make.returncode == 0, through_make.stderr
    assert json.loads(through_make.stdout)["stack"] == "example"
