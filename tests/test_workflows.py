"""The GitHub Actions workflows cannot run here: check their syntax (SchemaStore's workflow schema,
vendored by check-jsonschema), their job and step structure, and run their shell steps where they
can run (bash syntax, the matrix commands, the drift step against a stand-in `pulumi`, the deploy and
reconcile steps against a stand-in `cipp-hardening`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/upload-artifact@v4",
    "actions/github-script@v7",
    "azure/login@v2",
    "pulumi/actions@v6",
}
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def load(name: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return found


def step(workflow: dict[str, Any], job: str, *, uses: str | None = None, name: str | None = None) -> dict[str, Any]:
    matches = [
        s
        for s in steps(workflow, job)
        if (uses is None or s.get("uses") == uses) and (name is None or name in s.get("name", ""))
    ]
    assert matches, f"{job}: no step {uses or name}"
    return matches[-1]


def all_runs(workflow: dict[str, Any]) -> list[str]:
    return [s["run"] for job in workflow["jobs"] for s in steps(workflow, job) if "run" in s]


@pytest.fixture(scope="module", params=["checks.yml", "preview.yml", "drift.yml", "deploy.yml", "reconcile.yml"])
def workflow_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_every_workflow_validates_against_the_github_workflow_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 5
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_to_major_versions_and_no_secret_is_stored(workflow_name: str) -> None:
    text = (WORKFLOWS / workflow_name).read_text(encoding="utf-8")
    workflow = load(workflow_name)
    used = {s["uses"] for job in workflow["jobs"] for s in steps(workflow, job) if "uses" in s}
    assert used <= PINNED, used - PINNED
    assert "secrets." not in text, "OIDC and repository variables only: no stored secret"
    assert "client-secret" not in text
    assert "creds:" not in text


def test_shell_steps_are_valid_bash(workflow_name: str, tmp_path: Path) -> None:
    for number, script in enumerate(all_runs(load(workflow_name))):
        path = tmp_path / f"step{number}.sh"
        path.write_text(EXPRESSION.sub("placeholder", script), encoding="utf-8")
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{workflow_name} step {number}: {result.stderr}\n{script}"


def test_make_targets_used_by_the_workflows_exist(workflow_name: str) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = {m for line in makefile.splitlines() if (m := re.match(r"^([\w.$()/-]+):", line))}
    names = {t.group(1).replace("$(VENV)", ".venv") for t in targets}
    for script in all_runs(load(workflow_name)):
        for target in re.findall(r"\bmake ([\w./-]+)", script):
            assert target in names, f"{workflow_name}: make {target}"


def test_checks_runs_tests_and_plans_every_stack_file_without_secrets() -> None:
    workflow = load("checks.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    runs = " ".join(all_runs(workflow))
    assert "make test" in runs
    plan = step(workflow, "plan", name="every Pulumi")["run"]
    assert "for file in Pulumi.*.yaml" in plan
    assert "set -uo pipefail" in plan, "no -e: one failing stack must not hide the others"
    assert 'make plan STACK="$stack"' in plan
    assert "id-token" not in json.dumps(workflow)


def test_checks_plan_loop_plans_every_repository_stack(tmp_path: Path) -> None:
    """Run the plan step's loop over a copy of the stack files, with `make` replaced by a recorder."""
    script = step(load("checks.yml"), "plan", name="every Pulumi")["run"]
    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        (project / stack_file.name).write_text(stack_file.read_text(encoding="utf-8"), encoding="utf-8")
    for snapshot in ROOT.glob("examples/*-policies"):
        (project / "examples" / snapshot.name).mkdir()
    (project / "Pulumi.client-new.yaml").write_text("config: {}\n", encoding="utf-8")  # no snapshot
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "make.log"
    fake = f'#!/bin/sh\necho "$@" >> {record}\ncase "$*" in *STACK=prod*) exit 3;; esac\n'  # prod fails
    (bin_dir / "make").write_text(fake, encoding="utf-8")
    (bin_dir / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RUNNER_TEMP": str(tmp_path)}
    result = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1, "a failing stack fails the step"
    assert "::error title=make plan::the offline plan of prod failed" in result.stdout
    calls = record.read_text(encoding="utf-8").splitlines()
    stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project.glob("Pulumi.*.yaml"))
    assert "client-new" in stacks
    assert sorted(c.split()[1].removeprefix("STACK=") for c in calls) == stacks
    for call in calls:
        stack = call.split()[1].removeprefix("STACK=")
        has_snapshot = (project / "examples" / f"{stack}-policies").is_dir()
        expects_empty = stack.startswith("client-") and not has_snapshot
        assert ("POLICIES=" in call) == expects_empty, call


def test_preview_uses_oidc_the_policy_pack_and_comments_the_matrix() -> None:
    workflow = load("preview.yml")
    assert list(workflow["on"]) == ["pull_request"]
    assert workflow["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    assert "head.repo.full_name == github.repository" in workflow["jobs"]["stacks"]["if"], "no OIDC for forks"
    matrix_step = step(workflow, "stacks", name="changed")["run"]
    assert "git diff --name-only --diff-filter=d" in matrix_step
    assert "fleet-ci matrix --stacks 'client-*'" in matrix_step
    assert "--always prod" in matrix_step
    preview = workflow["jobs"]["preview"]
    assert preview["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    assert preview["strategy"]["fail-fast"] is False
    login = step(workflow, "preview", uses="azure/login@v2")["with"]
    assert set(login) == {"client-id", "tenant-id", "subscription-id", "allow-no-subscriptions"}
    assert workflow["env"]["ARM_USE_OIDC"] == "true"
    pulumi = step(workflow, "preview", name="pulumi preview (one stack)")
    assert pulumi["uses"] == "pulumi/actions@v6"
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    batch = step(workflow, "preview", name="batch")["run"]
    assert "cipp-hardening fleet --action preview" in batch
    plan = step(workflow, "preview", name="scenario matrix")["run"]
    assert 'make plan STACK="$stack" JSON=' in plan
    assert "fleet-ci plan-comment" in plan
    comment = step(workflow, "preview", uses="actions/github-script@v7")["with"]["script"]
    assert "plan-comments" in comment
    assert "updateComment" in comment


def test_drift_runs_nightly_over_all_client_stacks_in_a_matrix() -> None:
    workflow = load("drift.yml")
    assert "schedule" in workflow["on"]
    assert "workflow_dispatch" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert "fleet-ci matrix --stacks 'client-*' --always prod" in step(workflow, "stacks", name="Matrix")["run"]
    job = workflow["jobs"]["drift"]
    assert job["if"] == "needs.stacks.outputs.count != '0'"
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    detect = step(workflow, "drift", name="Detect drift")["run"]
    assert "pulumi refresh" in detect
    assert "--preview-only --expect-no-changes" in detect
    assert "pulumi preview" in detect
    assert "--expect-no-changes" in detect.split("pulumi preview", 1)[1]


@pytest.mark.parametrize(("drifting", "expected"), [("", 0), ("client-b", 1)])
def test_the_drift_step_fails_on_drift(tmp_path: Path, drifting: str, expected: int) -> None:
    """The step's script, with a stand-in `pulumi` that reports changes for one stack."""
    script = step(load("drift.yml"), "drift", name="Detect drift")["run"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    fake = f'#!/bin/sh\necho "$@" >> {calls}\ncase "$*" in *"--stack {drifting or "-none-"} "*) exit 255;; esac\n'
    (bin_dir / "pulumi").write_text(fake, encoding="utf-8")
    (bin_dir / "pulumi").chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STACKS": "client-a client-b",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == expected, result.stdout + result.stderr
    lines = calls.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4, "refresh and preview for every stack, drift or not"
    assert lines[0].startswith("refresh --stack client-a --preview-only --expect-no-changes")
    assert lines[1].startswith("preview --stack client-a --expect-no-changes")
    if drifting:
        assert "::error title=drift::client-b (refresh)" in result.stdout
        assert "- client-b (preview)" in summary.read_text(encoding="utf-8")


def test_the_matrix_commands_run_against_the_repository() -> None:
    command = [sys.executable, "-m", "cipp_hardening.commands.fleet_ci", "matrix", "--stacks", "client-*"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    include = json.loads(out)["include"]
    assert {"name": "client-contoso", "stacks": "client-contoso"} in include


# -- deploy.yml, reconcile.yml, and prod in drift.yml (issue: operate the fleet) -----------------------------
def stand_in(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / name).write_text("#!/bin/sh\n" + body, encoding="utf-8")
    (bin_dir / name).chmod(0o755)


def real_cli(project: Path) -> None:
    """`.venv/bin/cipp-hardening` in `project`: the real command, reading that project's stack files."""
    body = f'cd {ROOT} && exec {sys.executable} -m cipp_hardening.cli "$@" --project-dir "{project}"\n'
    stand_in(project / ".venv" / "bin", "cipp-hardening", body)


def github_outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())


def git(project: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with three stack files and some code, one commit."""
    project = tmp_path / "repo"
    (project / "components").mkdir(parents=True)
    (project / "docs").mkdir()
    for stack in ("prod", "client-a", "client-b"):
        (project / f"Pulumi.{stack}.yaml").write_text("config: {}\n", encoding="utf-8")
    (project / "components" / "part_d.py").write_text("x = 1\n", encoding="utf-8")
    (project / "docs" / "fleet.md").write_text("# fleet\n", encoding="utf-8")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "first")
    real_cli(project)
    return project


def run_deploy_matrix(repo: Path, tmp_path: Path, before: str) -> dict[str, str]:
    script = step(load("deploy.yml"), "stacks", name="Changed stacks")["run"]
    outputs = tmp_path / "github-output"
    outputs.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "BEFORE": before,
        "AFTER": git(repo, "rev-parse", "HEAD"),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(outputs),
    }
    result = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return github_outputs(outputs)


def clients_of(outputs: dict[str, str]) -> list[str]:
    return [job["stacks"] for job in json.loads(outputs["matrix"])["include"]]


@pytest.mark.parametrize(
    ("change", "prod", "clients"),
    [
        ("Pulumi.client-a.yaml", "false", ["client-a"]),
        ("Pulumi.prod.yaml", "true", []),
        ("components/part_d.py", "true", ["client-a", "client-b"]),
        ("docs/fleet.md", "false", []),
    ],
)
def test_deploy_picks_changed_stacks_or_all_on_code_change(
    repo: Path, tmp_path: Path, change: str, prod: str, clients: list[str]
) -> None:
    before = git(repo, "rev-parse", "HEAD")
    (repo / change).write_text((repo / change).read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    git(repo, "commit", "-q", "-am", "change")
    outputs = run_deploy_matrix(repo, tmp_path, before)
    assert outputs["prod"] == prod
    assert clients_of(outputs) == clients
    assert outputs["count"] == str(len(clients))


def test_deploy_without_a_base_commit_deploys_every_stack(repo: Path, tmp_path: Path) -> None:
    for before in ("0000000000000000000000000000000000000000", "", "deadbeef"):  # new branch, manual run, force push
        outputs = run_deploy_matrix(repo, tmp_path, before)
        assert outputs["prod"] == "true"
        assert clients_of(outputs) == ["client-a", "client-b"]


def test_deploy_applies_prod_after_approval_with_the_policy_pack_and_clients_unattended() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert workflow["concurrency"]["cancel-in-progress"] is False, "never cancel an up half-way"
    prod, clients = workflow["jobs"]["prod"], workflow["jobs"]["clients"]
    assert prod["environment"] == "production", "the protected environment holds the approval"
    assert prod["if"] == "needs.stacks.outputs.prod == 'true'"
    up_prod = step(workflow, "prod", name="pulumi up prod")["run"]
    assert "--stacks prod" in up_prod
    assert "--policy-pack policy" in up_prod
    assert "environment" not in clients, "client stacks run unattended"
    assert clients["needs"] == "stacks", "clients never wait for prod's approval"
    assert clients["strategy"]["matrix"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    up_clients = step(workflow, "clients", name="pulumi up")["run"]
    assert "--policy-pack" not in up_clients
    for script in (up_prod, up_clients):
        assert "fleet --action up" in script
        assert '--summary "$GITHUB_STEP_SUMMARY"' in script
        assert '--secrets-provider "$PULUMI_SECRETS_PROVIDER"' in script, "missing stacks are created"


@pytest.mark.parametrize(("workflow_name", "job"), [("deploy.yml", "clients"), ("reconcile.yml", "reconcile")])
@pytest.mark.parametrize(("provider", "exit_status"), [("azurekeyvault://v.vault.azure.net/keys/k", 0), ("", 1)])
def test_the_up_steps_run_the_fleet_with_the_summary_and_fail_with_it(
    tmp_path: Path, workflow_name: str, job: str, provider: str, exit_status: int
) -> None:
    """The step's script against a stand-in `cipp-hardening` that records its arguments and exits as told."""
    script = step(load(workflow_name), job, name="pulumi up")["run"]
    calls = tmp_path / "calls"
    stand_in(
        tmp_path / ".venv" / "bin",
        "cipp-hardening",
        f'for a in "$@"; do echo "$a"; done > {calls}\nexit {exit_status}\n',
    )
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "STACKS": "client-a client-b",
        "PULUMI_SECRETS_PROVIDER": provider,
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == exit_status, "a failed stack (fleet exit 1) fails the job"
    args = calls.read_text(encoding="utf-8").splitlines()
    assert args[:5] == ["fleet", "--action", "up", "--stacks", "client-a client-b"]
    assert args[args.index("--summary") + 1] == str(summary)
    assert ("--secrets-provider" in args) == bool(provider)
    if provider:
        assert args[args.index("--secrets-provider") + 1] == provider


def test_reconcile_applies_every_client_stack_nightly_and_never_prod(repo: Path, tmp_path: Path) -> None:
    workflow = load("reconcile.yml")
    assert "schedule" in workflow["on"]
    assert "workflow_dispatch" in workflow["on"]
    assert workflow["concurrency"] == {"group": "reconcile", "cancel-in-progress": False}
    script = step(workflow, "stacks", name="Matrix")["run"]
    assert "--always" not in script
    outputs = tmp_path / "github-output"
    env = {**os.environ, "GITHUB_OUTPUT": str(outputs)}
    subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert clients_of(github_outputs(outputs)) == ["client-a", "client-b"]
    assert "environment" not in workflow["jobs"]["reconcile"]


def test_drift_covers_prod_but_never_applies_anything(repo: Path, tmp_path: Path) -> None:
    workflow = load("drift.yml")
    script = step(workflow, "stacks", name="Matrix")["run"]
    outputs = tmp_path / "github-output"
    env = {**os.environ, "GITHUB_OUTPUT": str(outputs)}
    subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert clients_of(github_outputs(outputs)) == ["client-a", "client-b", "prod"]
    runs = "\n".join(all_runs(workflow))
    assert "pulumi up" not in runs
    assert "--action up" not in runs
    assert re.search(r"pulumi refresh(?![^\n]*--preview-only)", runs) is None, "refresh never writes the state"


def test_no_scheduled_workflow_applies_prod() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = load(path.name)
        if "schedule" not in workflow["on"]:
            continue
        applying = [s for s in all_runs(workflow) if "--action up" in s or "pulumi up" in s]
        assert all("prod" not in s for s in applying), path.name
        matrices = [s for s in all_runs(workflow) if "fleet-ci matrix" in s]
        if applying:
            assert all("--always prod" not in s and "--stacks prod" not in s for s in matrices), path.name
