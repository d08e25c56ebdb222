"""The workflows' stack matrix (changed stacks, batching past GitHub's 256-job cap) and the PR comment."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from cipp_hardening.commands import fleet_ci
from cipp_hardening.commands.fleet_ci import (
    GITHUB_MATRIX_LIMIT,
    batches,
    changed_stacks,
    matrix,
    matrix_stacks,
    plan_comment,
    render_matrix,
    stack_of,
)
from cipp_hardening.commands.plan import build_plan
from tests.helpers import ROOT


def test_stack_of_reads_only_root_stack_files() -> None:
    assert stack_of("Pulumi.client-x.yaml") == "client-x"
    assert stack_of("Pulumi.prod.yaml\n") == "prod"
    assert stack_of("Pulumi.yaml") is None
    assert stack_of("bootstrap/Pulumi.state.yaml") is None, "another project's stack"
    assert stack_of("README.md") is None


def test_changed_stacks_keep_existing_ones_only() -> None:
    paths = ["Pulumi.client-a.yaml", "README.md", "Pulumi.client-gone.yaml", "Pulumi.prod.yaml"]
    assert changed_stacks(paths, ["client-a", "client-b", "prod"]) == ["client-a", "prod"]


@pytest.mark.parametrize("count", [0, 1, 255, 256, 257, 300, 511, 513, 600, 5000])
def test_batches_never_exceed_the_matrix_cap_and_keep_every_stack_once(count: int) -> None:
    stacks = [f"client-{i:05d}" for i in range(count)]
    groups = batches(stacks)
    assert len(groups) <= GITHUB_MATRIX_LIMIT
    assert [s for g in groups for s in g] == stacks
    if count <= GITHUB_MATRIX_LIMIT:
        assert all(len(g) == 1 for g in groups)
    else:
        assert len({len(g) for g in groups[:-1]}) == 1, "equal batches, the last one possibly smaller"


def test_batches_reject_a_zero_cap() -> None:
    with pytest.raises(ValueError, match="max_jobs"):
        batches(["a"], 0)


def test_matrix_names_single_stacks_and_batches() -> None:
    assert matrix(["client-a"]) == {"include": [{"name": "client-a", "stacks": "client-a"}]}
    batched = matrix(["a", "b", "c", "d", "e"], max_jobs=2)
    assert batched["include"] == [
        {"name": "batch 001 (a … c)", "stacks": "a b c"},
        {"name": "batch 002 (d … e)", "stacks": "d e"},
    ]


def test_matrix_stacks_from_the_repository() -> None:
    assert "client-contoso" in matrix_stacks(ROOT, ["client-*"], None, [])
    assert matrix_stacks(ROOT, ["client-*"], ["README.md"], ["prod"]) == ["prod"]
    assert matrix_stacks(ROOT, ["client-*"], ["Pulumi.client-contoso.yaml"], ["prod"]) == ["client-contoso", "prod"]


def test_matrix_command_prints_compact_json(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.client-a.yaml").write_text("config: {}\n", encoding="utf-8")
    (tmp_path / "Pulumi.prod.yaml").write_text("config: {}\n", encoding="utf-8")
    changed = tmp_path / "changed.txt"
    changed.write_text("Pulumi.client-a.yaml\n", encoding="utf-8")
    out = io.StringIO()
    with redirect_stdout(out):
        argv = ["matrix", "--project-dir", str(tmp_path), "--changed-files", str(changed), "--always", "prod"]
        assert fleet_ci.main(argv) == 0
    assert json.loads(out.getvalue()) == {
        "include": [{"name": "client-a", "stacks": "client-a"}, {"name": "prod", "stacks": "prod"}]
    }
    assert "\n" not in out.getvalue().strip(), "one line, for $GITHUB_OUTPUT"


def test_render_matrix_shapes() -> None:
    records = [
        {"scenario": "technician, office IP", "Part A": "allow"},
        {"scenario": "technician, home", "Part A": "block"},
    ]
    assert render_matrix(records).splitlines()[:3] == [
        "| scenario | Part A |",
        "|---|---|",
        "| technician, office IP | allow |",
    ]
    table = render_matrix({"columns": ["s", "v"], "rows": [["a", "b|c"], {"s": "d", "v": ["x", "y"]}]})
    assert "| a | b\\|c |" in table
    assert "| d | x, y |" in table
    nested = render_matrix({"home": {"A": "block", "B": "mfa"}, "office": {"A": "allow"}})
    assert nested.splitlines()[0] == "| scenario | A | B |"
    assert "| office | allow |  |" in nested
    assert render_matrix({"scenarios": records}) == render_matrix(records)
    assert render_matrix("odd").startswith("```json")
    long = render_matrix([{"n": i} for i in range(100)])
    assert "40 more rows" in long


def test_plan_comment_of_the_example_client_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIPP_HARDENING_POLICY_SNAPSHOT", str(ROOT / "examples" / "client-contoso-policies"))
    document = json.loads(json.dumps(build_plan("client-contoso").to_json()))
    comment = plan_comment(document)
    assert comment.startswith("<!-- cipp-hardening-plan:client-contoso -->")
    assert "× CaExclusion" in comment
    assert "Part D: what apply will do" in comment
    assert "Scenario matrix" in comment
    if document.get("matrix") is None:
        assert "carries no scenario matrix" in comment


def test_render_the_scenario_matrix_of_make_plan() -> None:
    matrix = {
        "ok": False,
        "failures": 1,
        "uncertain": 0,
        "rows": [
            {
                "name": "technician from home",
                "signIn": {"userId": "x"},
                "expected": "block",
                "actual": "allow",
                "status": "fail",
                "ok": False,
                "responsible": ["Part A"],
                "origin": "built-in",
            }
        ],
    }
    text = render_matrix(matrix)
    assert text.startswith("❌ a broken invariant: 1 failing, 0 uncertain, 1 rows")
    assert "| technician from home | block | allow | fail | Part A |" in text
    assert render_matrix({**matrix, "ok": True, "failures": 0}).startswith("✅ every invariant holds")


def test_plan_comment_renders_a_matrix_when_present() -> None:
    plan = {"stack": "prod", "resources": [], "warnings": ["w"], "matrix": [{"scenario": "s", "verdict": "block"}]}
    comment = plan_comment(plan)
    assert "| s | block |" in comment
    assert "- w" in comment
    assert "no resources" in comment


def test_code_changes_select_every_stack_for_deploy(tmp_path: Path) -> None:
    for stack in ("prod", "client-a", "client-b"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n", encoding="utf-8")
    assert fleet_ci.code_changed(["components/client_exclusions.py"])
    assert fleet_ci.code_changed(["requirements.txt\n"])
    assert not fleet_ci.code_changed(["README.md", "docs/fleet.md", "tests/test_x.py", ".github/workflows/deploy.yml"])
    assert not fleet_ci.code_changed(["components.md"]), "a folder matches by its path, not a prefix of a name"
    only_a = ["Pulumi.client-a.yaml", "docs/fleet.md"]
    assert matrix_stacks(tmp_path, ["client-*"], only_a, [], all_on_code_change=True) == ["client-a"]
    code = ["Pulumi.client-a.yaml", "dynamic_providers/ca_exclusion.py"]
    assert matrix_stacks(tmp_path, ["client-*"], code, [], all_on_code_change=True) == ["client-a", "client-b"]
    assert matrix_stacks(tmp_path, ["client-*"], code, []) == ["client-a"], "preview.yml keeps changed files only"
    assert matrix_stacks(tmp_path, ["prod"], ["policy/policies.py"], [], all_on_code_change=True) == ["prod"]
    assert matrix_stacks(tmp_path, ["prod"], ["Pulumi.client-a.yaml"], [], all_on_code_change=True) == []
