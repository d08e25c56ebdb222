"""The fleet runner's scheduling, filtering, resume and reporting, with an in-process stand-in for the
Automation API (the Pulumi CLI it drives cannot be installed here)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi.automation import OpType
from rich.console import Console

from cipp_hardening.commands import fleet, fleet_events, fleet_recovery
from cipp_hardening.commands.fleet import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    AutomationApiRunner,
    LastRun,
    Outcome,
    StackResult,
    discover_stacks,
    exit_code,
    load_last_run,
    parse_patterns,
    run_fleet,
    run_record,
    select_stacks,
    short_error,
    stacks_to_skip,
    summary_rows,
)
from cipp_hardening.commands.fleet_events import STACK_TYPE
from cipp_hardening.commands.fleet_recovery import (
    LockHolder,
    PreviousRun,
    RecoveryPolicy,
    StackLockedError,
    lock_holders,
    unfinished_run,
)


class StandIn:
    """Plays `pulumi <action>` for each stack: logs, sleeps a little, returns or raises what it was told."""

    def __init__(self, outcomes: dict[str, Outcome | Exception] | None = None, delay: float = 0.02) -> None:
        self.outcomes = outcomes or {}
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def run(self, stack: str, action: str, log: fleet.LogFn) -> Outcome:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append((stack, action))
        try:
            log(f"Previewing {action} ({stack})")
            time.sleep(self.delay)
            outcome = self.outcomes.get(stack, Outcome({"same": 3}))
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        finally:
            with self._lock:
                self.active -= 1


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, stack: str) -> None:
        self.events.append(("started", stack))

    def finished(self, result: StackResult) -> None:
        self.events.append(("finished", result.stack))


def project(tmp_path: Path, *stacks: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: cipp-hardening\nruntime: python\n", encoding="utf-8")
    for stack in stacks:
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n", encoding="utf-8")
    return tmp_path


def test_discover_and_select_stacks(tmp_path: Path) -> None:
    root = project(tmp_path, "prod", "client-b", "client-a", "staging")
    (tmp_path / "Pulumi.yml").write_text("", encoding="utf-8")
    assert discover_stacks(root) == ["client-a", "client-b", "prod", "staging"]
    assert select_stacks(discover_stacks(root), ["client-*"]) == ["client-a", "client-b"]
    assert select_stacks(["a", "b", "a"], parse_patterns(" b, a  b ")) == ["a", "b"]
    assert select_stacks(["Client-A"], ["client-*"]) == [], "stack names match case-sensitively"
    assert parse_patterns("client-*,prod  staging") == ["client-*", "prod", "staging"]


def test_the_repository_stack_files_are_discovered() -> None:
    stacks = discover_stacks(fleet.ROOT)
    assert "prod" in stacks
    assert "client-contoso" in stacks


def test_concurrency_is_bounded_and_results_keep_the_stack_order(tmp_path: Path) -> None:
    stacks = [f"client-{i:02d}" for i in range(12)]
    runner = StandIn(delay=0.05)
    recorder = Recorder()
    results = run_fleet(stacks, "preview", runner, parallel=3, log_dir=tmp_path, reporter=recorder)
    assert [r.stack for r in results] == stacks
    assert runner.peak == 3
    assert sorted(s for s, _ in runner.calls) == stacks
    assert all(r.result == SUCCEEDED and r.changed == 0 for r in results)
    assert sorted(recorder.events) == sorted([("started", s) for s in stacks] + [("finished", s) for s in stacks])


def test_a_failure_does_not_stop_the_fleet_and_fails_the_exit_code(tmp_path: Path) -> None:
    runner = StandIn(
        {
            "client-b": RuntimeError("code: 255\nstdout: \nstderr: error: update failed\n  more detail"),
            "client-c": Outcome({"create": 2, "update": 1, "same": 4}),
        }
    )
    results = run_fleet(["client-a", "client-b", "client-c"], "up", runner, parallel=1, log_dir=tmp_path)
    assert [r.result for r in results] == [SUCCEEDED, FAILED, SUCCEEDED]
    assert results[1].error == "error: update failed"
    assert results[2].changed == 3
    assert exit_code(results) == 1
    assert exit_code([results[0], results[2]]) == 0
    log = (tmp_path / "client-b.log").read_text(encoding="utf-8")
    assert "Previewing up (client-b)" in log
    assert "FAILED: RuntimeError" in log
    assert "more detail" in log, "the whole error is in the stack's log"
    assert results[1].log_path == str(tmp_path / "client-b.log")


def test_run_fleet_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="action"):
        run_fleet(["a"], "destroy", StandIn(), parallel=1, log_dir=tmp_path)
    with pytest.raises(ValueError, match="parallel"):
        run_fleet(["a"], "up", StandIn(), parallel=0, log_dir=tmp_path)


def test_skipped_stacks_are_not_run(tmp_path: Path) -> None:
    runner = StandIn()
    results = run_fleet(["a", "b", "c"], "up", runner, parallel=2, log_dir=tmp_path, skip={"b"})
    assert [r.result for r in results] == [SUCCEEDED, SKIPPED, SUCCEEDED]
    assert sorted(s for s, _ in runner.calls) == ["a", "c"]
    assert not (tmp_path / "b.log").exists()


def test_resume_skips_only_successes_of_the_same_action(tmp_path: Path) -> None:
    results = [
        StackResult("a", SUCCEEDED, 1, 1.0),
        StackResult("b", FAILED, None, 2.0, "boom"),
    ]
    record = run_record("up", results, None)
    state = tmp_path / "last-run.json"
    state.write_text(json.dumps(record), encoding="utf-8")
    last = load_last_run(state)
    assert last == LastRun("up", {"a": SUCCEEDED, "b": FAILED})
    assert stacks_to_skip(last, "up", ["a", "b", "c"]) == {"a"}
    assert stacks_to_skip(last, "preview", ["a", "b"]) == set(), "a different action resumes nothing"
    assert stacks_to_skip(None, "up", ["a"]) == set()
    # Resuming: `a` is skipped now and must stay a success for the next resume.
    again = run_record("up", [StackResult("a", SKIPPED), StackResult("b", SUCCEEDED, 0, 1.0)], last)
    assert LastRun("up", {k: v["result"] for k, v in again["stacks"].items()}).succeeded() == {"a", "b"}


def test_a_corrupt_or_missing_state_file_means_no_resume(tmp_path: Path) -> None:
    assert load_last_run(tmp_path / "absent.json") is None
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert load_last_run(tmp_path / "bad.json") is None
    (tmp_path / "odd.json").write_text('{"action": "up", "stacks": []}', encoding="utf-8")
    assert load_last_run(tmp_path / "odd.json") is None


def test_summary_rows_and_short_errors() -> None:
    rows = summary_rows(
        [
            StackResult("a", SUCCEEDED, 2, 3.14159),
            StackResult("b", FAILED, None, 0.5, "error: boom"),
            StackResult("c", SKIPPED, error="succeeded in the last run"),
        ]
    )
    assert rows == [
        ("a", SUCCEEDED, "2", "3.1s", ""),
        ("b", FAILED, "-", "0.5s", "error: boom"),
        ("c", SKIPPED, "-", "-", "succeeded in the last run"),
    ]
    assert short_error("") == "failed"
    assert short_error("\n  last line  \n") == "last line"
    assert short_error("x\nError: first\nerror: second") == "Error: first"
    assert short_error(" code: 255\n stdout: \n stderr: warning: x\nerror: y") == "error: y"
    assert len(short_error("error: " + "x" * 500)) == 160


def run_main(tmp_path: Path, runner: StandIn, *args: str) -> tuple[int, str]:
    output = io.StringIO()
    console = Console(file=output, width=200, force_terminal=False)
    argv = ["--project-dir", str(tmp_path), "--fleet-dir", str(tmp_path / ".fleet"), *args]
    return fleet.main(argv, runner=runner, console=console), output.getvalue()


def test_main_runs_reports_and_resumes(tmp_path: Path) -> None:
    project(tmp_path, "prod", "client-a", "client-b", "client-c")
    failing = StandIn({"client-b": RuntimeError("error: 429 forever [bold]not markup[/bold]")})
    code, out = run_main(tmp_path, failing, "--action", "preview", "--parallel", "2")
    assert code == 1
    assert sorted(s for s, _ in failing.calls) == ["client-a", "client-b", "client-c"], "prod is not a client-*"
    assert "fleet preview: 2 succeeded, 1 failed" in out
    assert "error: 429 forever [bold]not markup[/bold]" in out, "engine text is shown as is, never as markup"
    assert (tmp_path / ".fleet" / "logs" / "client-a.log").is_file()

    fixed = StandIn()
    code, out = run_main(tmp_path, fixed, "--action", "preview", "--resume")
    assert code == 0
    assert fixed.calls == [("client-b", "preview")]
    assert "2 skipped" in out

    nothing_left = StandIn()
    code, _ = run_main(tmp_path, nothing_left, "--action", "preview", "--resume")
    assert code == 0
    assert nothing_left.calls == []

    other_action = StandIn()
    code, out = run_main(tmp_path, other_action, "--action", "up", "--resume", "--stacks", "client-a,prod")
    assert code == 0
    assert sorted(s for s, _ in other_action.calls) == ["client-a", "prod"]
    assert "nothing to resume" in out


def test_main_setup_errors_exit_2(tmp_path: Path) -> None:
    project(tmp_path, "prod")
    code, out = run_main(tmp_path, StandIn(), "--action", "up")
    assert code == 2
    assert "matches 'client-*'" in out
    code, out = run_main(tmp_path, StandIn(), "--action", "up", "--stacks", "prod", "--parallel", "0")
    assert code == 2
    code, out = run_main(tmp_path, StandIn(), "--action", "up", "--stacks", "prod", "--preview-only")
    assert code == 2
    assert "--preview-only goes with --action refresh" in out


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="a Pulumi CLI is installed here")
def test_without_the_cli_the_real_runner_says_so(tmp_path: Path) -> None:
    project(tmp_path, "client-a")
    output = io.StringIO()
    argv = ["--action", "preview", "--project-dir", str(tmp_path), "--fleet-dir", str(tmp_path / ".fleet")]
    code = fleet.main(argv, console=Console(file=output, width=200))
    assert code == 2
    assert "no `pulumi` executable was found" in " ".join(output.getvalue().split())


def stack_outputs_event(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """The root stack's `resOutputsEvent` as the CLI logs it (pkg/backend/display/events.go)."""
    old = None if before is None else {"type": STACK_TYPE, "outputs": before}
    return {
        "resOutputsEvent": {
            "metadata": {"type": STACK_TYPE, "op": "same", "old": old, "new": {"type": STACK_TYPE, "outputs": after}}
        }
    }


def summary_event(changes: dict[str, int]) -> dict[str, Any]:
    return {"summaryEvent": {"resourceChanges": changes, "result": "succeeded"}}


class FakeStack:
    """What `auto.select_stack` returns. `preview` and `up` run through its workspace's `PulumiCommand.run`, which
    writes the engine's event log as the CLI does; refresh, cancel and export are the Automation API's methods."""

    def __init__(self, name: str = "client-a") -> None:
        self.name = name
        self.preview_changes = {"create": 1, "same": 5}
        self.up_changes = {"update": 2, "same": 1}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.state_outputs: dict[str, Any] | None = None  # None: never deployed
        self.up_outputs: dict[str, Any] = {}
        command = SimpleNamespace(run=self._cli)
        self.workspace = SimpleNamespace(work_dir="/project", env_vars={}, pulumi_home=None, pulumi_command=command)

    def _cli(self, args: list[str], cwd: str, env: dict[str, str], on_output: Any = None, on_error: Any = None) -> Any:
        action = args[0]
        self.calls.append((action, {"args": args, "env": env}))
        events = self.preview(on_output) if action == "preview" else self.up(on_output)
        log = Path(args[args.index("--event-log") + 1])
        log.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
        return SimpleNamespace(stdout="", stderr="", code=0)

    def preview(self, on_output: Any) -> list[dict[str, Any]]:
        on_output("+ 1 to create")
        return [stack_outputs_event(self.state_outputs, self.state_outputs or {}), summary_event(self.preview_changes)]

    def up(self, on_output: Any) -> list[dict[str, Any]]:
        return [stack_outputs_event(self.state_outputs, self.up_outputs), summary_event(self.up_changes)]

    def refresh(self, **kwargs: Any) -> Any:
        self.calls.append(("refresh", kwargs))
        return SimpleNamespace(summary=SimpleNamespace(resource_changes=None))

    def outputs(self) -> Any:  # `pulumi stack output` twice (LocalWorkspace.stack_outputs)
        self.calls.append(("stack output", {}))
        return {}

    def info(self, show_secrets: bool = True) -> Any:  # `pulumi stack history --page-size 1`
        self.calls.append(("stack history", {}))
        return None

    def preview_refresh(self, **kwargs: Any) -> Any:
        self.calls.append(("preview_refresh", kwargs))
        return SimpleNamespace(change_summary={OpType.UPDATE: 1, OpType.SAME: 2})


def cli_args(call: tuple[str, dict[str, Any]]) -> list[str]:
    return call[1]["args"]


def fake_automation(monkeypatch: pytest.MonkeyPatch, select: Any) -> tuple[list[Any], list[Any]]:
    """select_stack → `select(name, work_dir, opts)`; a LocalWorkspace is the selected stack's workspace; a
    PulumiCommand is made without a CLI. Returns the commands made and those each workspace was given."""
    from pulumi import automation as auto

    made: list[Any] = []

    def pulumi_command() -> Any:
        made.append(SimpleNamespace())
        return made[-1]

    def local_workspace(work_dir: str, pulumi_command: Any, secrets_provider: str | None) -> Any:
        given.append(pulumi_command)
        return select("(workspace)", work_dir, SimpleNamespace(secrets_provider=secrets_provider)).workspace

    given: list[Any] = []
    monkeypatch.setattr(auto, "PulumiCommand", pulumi_command)
    monkeypatch.setattr(auto, "LocalWorkspace", local_workspace)
    monkeypatch.setattr(auto, "select_stack", lambda name, work_dir, opts: select(name, work_dir, opts))
    return made, given


def test_the_automation_api_adapter_maps_actions_and_results(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stack = FakeStack()
    selected: list[tuple[str, str]] = []
    commands_used: list[Any] = []

    def select_stack(name: str, work_dir: str, opts: Any) -> FakeStack:
        selected.append((name, work_dir))
        commands_used.append(getattr(opts, "pulumi_command", "(workspace)"))
        return stack

    made, given = fake_automation(monkeypatch, select_stack)
    runner = AutomationApiRunner(tmp_path, policy_packs=["policy"], expect_no_changes=True)
    lines: list[str] = []
    assert runner.run("client-a", "preview", lines.append) == Outcome({"create": 1, "same": 5})
    assert runner.run("client-a", "up", lines.append).changed == 2
    assert runner.run("client-a", "refresh", lines.append) == Outcome({})
    assert selected == [("(workspace)", str(tmp_path))] * 2 + [("client-a", str(tmp_path))], (
        "a preview and an up name the stack with --stack; only the refresh selects it"
    )
    assert len(made) == 1, "one PulumiCommand (one `pulumi version`) for the fleet"
    assert given == made * 2
    assert commands_used == ["(workspace)", "(workspace)", made[0]]
    assert lines == ["+ 1 to create"]
    preview_args, up_args = cli_args(stack.calls[0]), cli_args(stack.calls[1])
    assert preview_args[0] == "preview"
    assert up_args[:3] == ["up", "--yes", "--skip-preview"]
    for args in (preview_args, up_args):
        assert args[args.index("--policy-pack") + 1] == "policy"
        assert "--expect-no-changes" in args
        assert args[args.index("--stack") + 1] == "client-a"
        assert args[args.index("--exec-kind") + 1] == "auto.local"
    assert stack.calls[0][1]["env"]["PULUMI_DEBUG_COMMANDS"] == "true", "the CLI shows --event-log only then"
    assert "policy_packs" not in stack.calls[2][1], "refresh takes no policy packs"
    drift = AutomationApiRunner(tmp_path, expect_no_changes=True, preview_only=True)
    assert drift.run("client-a", "refresh", lines.append) == Outcome({"update": 1, "same": 2})
    assert stack.calls[-2][0] == "preview_refresh", "refresh --preview-only never writes the state"
    assert stack.calls[-2][1]["expect_no_changes"] is True
    assert stack.calls[-1][0] == "stack output", "a refresh reports the outputs in the state"


def test_a_preview_and_an_up_are_one_cli_run_each(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Stack.up's `stack output` ×2 and `stack history` after each update, and a preview's outputs read with
    `stack output` ×2, were four CLI runs per stack that load and decrypt the state (BENCHMARKS.md §10): the
    results come from the run's own event log instead."""
    stack = FakeStack()
    stack.state_outputs = {"managedPolicyIds": ["p1"]}
    stack.up_outputs = {"managedPolicyIds": ["p1"]}
    fake_automation(monkeypatch, lambda name, work_dir, opts: stack)
    runner = AutomationApiRunner(tmp_path)
    for action in ("preview", "up", "preview", "up"):
        assert runner.run("client-a", action, lambda _: None).outputs == {"managedPolicyIds": ["p1"]}
    assert [name for name, _ in stack.calls] == ["preview", "up", "preview", "up"]


def test_the_msp_stack_previews_and_ups_with_refresh_and_client_stacks_without(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    stack = FakeStack()
    fake_automation(monkeypatch, lambda name, work_dir, opts: stack)
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  cipp-hardening:mode: msp\n", encoding="utf-8")
    (tmp_path / "Pulumi.client-a.yaml").write_text("config:\n  cipp-hardening:mode: client\n", encoding="utf-8")
    runner = AutomationApiRunner(tmp_path)
    for name in ("prod", "client-a"):
        runner.run(name, "preview", lambda _: None)
        runner.run(name, "up", lambda _: None)
    assert ["--refresh" in cli_args(call) for call in stack.calls] == [True, True, False, False]


def test_missing_stacks_are_created_only_with_a_secrets_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pulumi import automation as auto

    class NoState(FakeStack):
        created = False

        def _cli(
            self, args: list[str], cwd: str, env: dict[str, str], on_output: Any = None, on_error: Any = None
        ) -> Any:
            if not self.created:  # what `pulumi up --stack X` answers for a stack with no state (exit code 6)
                raise auto.StackNotFoundError(auto.CommandResult("", "error: no stack named 'X' found", 6))
            return super()._cli(args, cwd, env, on_output, on_error)

    stack = NoState()
    created: list[Any] = []

    def create_or_select_stack(name: str, work_dir: str, opts: Any) -> FakeStack:
        created.append((name, opts.secrets_provider))
        stack.created = True
        return stack

    fake_automation(monkeypatch, lambda name, work_dir, opts: stack)
    monkeypatch.setattr(auto, "create_or_select_stack", create_or_select_stack)
    url = "azurekeyvault://vault.vault.azure.net/keys/pulumi"
    assert AutomationApiRunner(tmp_path, secrets_provider=url).run("client-new", "up", print).changed == 2
    assert created == [("client-new", url)]
    assert [name for name, _ in stack.calls] == ["up"]
    stack.created = False
    with pytest.raises(auto.StackNotFoundError):
        AutomationApiRunner(tmp_path).run("client-new", "up", print)
    assert len(created) == 1, "never created without a secrets provider"


# -- the Markdown summary (the workflows' job summary) ---------------------------------------------------
CLIENT_OUTPUTS = {
    "managedPolicyIds": ["p1", "p2", "p3"],
    "skippedPolicies": [{"id": "p4"}, {"id": "p5"}],
    "exclusionConflicts": [{"id": "p3", "detail": "excludes the service-provider users of every | tenant"}],
}
PROD_OUTPUTS = {"technicianPolicyId": "a", "serviceAccountPolicyId": "b", "trustedLocationId": "c"}


def test_stack_facts_read_client_and_msp_outputs() -> None:
    managed, conflicts, skipped = fleet.stack_facts(CLIENT_OUTPUTS)
    assert (managed, skipped) == (3, 2)
    assert conflicts == ("p3: excludes the service-provider users of every | tenant",)
    assert fleet.stack_facts(PROD_OUTPUTS) == (2, (), None)
    assert fleet.stack_facts({**PROD_OUTPUTS, "workloadIdentityPolicyIds": ["w1"]})[0] == 3
    assert fleet.stack_facts({}) == (None, (), None)


def test_markdown_summary_has_a_row_per_stack_then_conflicts_and_failures() -> None:
    results = [
        StackResult("client-a", SUCCEEDED, 1, 2.04, managed=3, conflicts=("p3: why | not",), skipped_policies=2),
        StackResult("client-b", FAILED, None, 0.5, "error: boom", "/logs/client-b.log"),
        StackResult("client-c", SKIPPED, error="succeeded in the last run"),
        StackResult("prod", SUCCEEDED, 0, 9.0, managed=2),
    ]
    text = fleet.markdown_summary("up", results)
    lines = text.splitlines()
    assert lines[0] == "### fleet up: 2 succeeded, 1 failed, 1 skipped"
    assert "| `client-a` | ✅ succeeded | 3 | 1 | 2 | 1 | 2.0s |" in lines
    assert "| `client-b` | ❌ failed | - | - | - | - | 0.5s |" in lines
    assert "| `client-c` | ⏭️ skipped | - | - | - | - | - |" in lines
    assert "| `prod` | ✅ succeeded | 2 | 0 | - | 0 | 9.0s |" in lines
    assert "- `client-a`: p3: why \\| not" in lines, "pipes escaped inside the Markdown table's page"
    assert "- `client-b`: error: boom (log: `/logs/client-b.log`)" in lines


def test_main_writes_the_summary_and_appends_it_to_the_job_summary(tmp_path: Path) -> None:
    project(tmp_path, "client-a", "client-b")
    job_summary = tmp_path / "step-summary.md"
    job_summary.write_text("earlier step\n", encoding="utf-8")
    runner = StandIn({"client-a": Outcome({"update": 1}, CLIENT_OUTPUTS), "client-b": RuntimeError("error: nope")})
    code, _ = run_main(tmp_path, runner, "--action", "up", "--summary", str(job_summary))
    assert code == 1
    own = (tmp_path / ".fleet" / "summary.md").read_text(encoding="utf-8")
    assert own.startswith("### fleet up: 1 succeeded, 1 failed")
    assert "| `client-a` | ✅ succeeded | 3 | 1 | 2 | 1 |" in own
    assert job_summary.read_text(encoding="utf-8") == "earlier step\n" + own + "\n"


def test_the_adapter_passes_non_secret_outputs_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An up reports what it leaves in the state, a preview what the last up left; a secret arrives blinded
    (`{sig: secret, ciphertext: "[secret]"}`, pkg/backend/display/events.go) and is left out."""
    blinded = {fleet_events.SECRET_SIG: fleet_events.SECRET_MARK, "ciphertext": "[secret]"}
    stack = FakeStack()
    stack.state_outputs = {"managedPolicyIds": ["p1", "p2"], "graphClientSecret": blinded}
    stack.up_outputs = {"managedPolicyIds": ["p1"], "graphClientSecret": blinded}
    fake_automation(monkeypatch, lambda name, work_dir, opts: stack)
    runner = AutomationApiRunner(tmp_path)
    assert runner.run("client-a", "up", print).outputs == {"managedPolicyIds": ["p1"]}, "secrets never reported"
    assert runner.run("client-a", "preview", print).outputs == {"managedPolicyIds": ["p1", "p2"]}, "from the state"
    stack.state_outputs = None
    assert runner.run("client-a", "preview", print).outputs == {}, "a stack never deployed has no outputs"


def test_an_event_log_without_a_summary_fails_the_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every run the CLI finishes logs a summary event; without one nothing is reported as converged."""

    class NoSummary(FakeStack):
        def up(self, on_output: Any) -> list[dict[str, Any]]:
            return [stack_outputs_event({}, {})]

    fake_automation(monkeypatch, lambda name, work_dir, opts: NoSummary())
    result = fleet.run_one("client-a", "up", AutomationApiRunner(tmp_path), tmp_path)
    assert result.result == FAILED
    assert "no summary event" in result.error


def test_unreadable_outputs_are_logged_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A refresh that succeeded keeps its result; why its outputs are unknown goes to the stack's log."""
    from pulumi import automation as auto

    class WrongPassphrase(FakeStack):
        def outputs(self) -> Any:
            raise auto.CommandError(auto.CommandResult("", "error: incorrect passphrase", 255))

    fake_automation(monkeypatch, lambda name, work_dir, opts: WrongPassphrase())
    lines: list[str] = []
    outcome = AutomationApiRunner(tmp_path, preview_only=True).run("client-a", "refresh", lines.append)
    assert outcome == Outcome({"update": 1, "same": 2})
    assert lines[-1] == "# outputs not read, the summary shows '-': CommandError: error: incorrect passphrase"


def test_make_fleet_passes_the_secrets_provider() -> None:
    url = "azurekeyvault://vault.vault.azure.net/keys/pulumi"
    dry = ["make", "-n", "-s", "-C", str(fleet.ROOT), "fleet", f"SECRETS_PROVIDER={url}"]
    assert f'--secrets-provider "{url}"' in subprocess.run(dry, capture_output=True, text=True, check=True).stdout
    plain = subprocess.run(dry[:-1], capture_output=True, text=True, check=True).stdout
    assert "--secrets-provider" not in plain


# -- after a killed run (docs/fleet.md "After a killed run") ---------------------------------------------
# What `pulumi up` prints for a stack a SIGKILLed `pulumi up` left locked (file backend, CLI 3.274.1).
LOCK_ERROR = (
    "code: 255\n stdout: \n stderr: error: the stack is currently locked by 1 lock(s). Either wait for the other "
    "process(es) to end or delete the lock file with `pulumi cancel`.\n"
    "  file:///srv/pulumi-state/.pulumi/locks/organization/cipp-hardening/client-e2e/6f1c4ed8.json?no_tmp_dir=true: "
    "created by root@vm (pid 21645) at 2026-12-07T22:18:54Z\n"
)
HOLDER = LockHolder("root", "vm", 21645, datetime(2026, 12, 7, 22, 18, 54, tzinfo=UTC))
KILLED_RUN = PreviousRun(4242, "vm", datetime(2026, 12, 7, 22, 18, 50, tzinfo=UTC), frozenset({"client-e2e"}))


def policy(
    previous: PreviousRun | None = KILLED_RUN, *, recover: bool = False, alive: frozenset[int] = frozenset()
) -> RecoveryPolicy:
    return RecoveryPolicy(previous, recover, "vm", lambda pid: pid in alive)


def test_the_backends_lock_error_names_its_holders() -> None:
    assert lock_holders(LOCK_ERROR) == [HOLDER]
    assert lock_holders("error: 429 Too Many Requests") is None
    assert lock_holders(LOCK_ERROR.replace("2026-12-07T22:18:54Z", "yesterday")) is None, "an unread lock is kept"


def test_a_lock_our_killed_run_left_is_cancelled_without_asking() -> None:
    assert "the killed fleet run left its lock" in policy().may_cancel("client-e2e", [HOLDER])


@pytest.mark.parametrize(
    ("case", "chosen"),
    [
        ("the lock's process is alive", policy(alive=frozenset({21645}))),
        ("the previous runner is alive", policy(alive=frozenset({4242}))),
        ("the stack was not in flight", policy(PreviousRun(4242, "vm", KILLED_RUN.started, frozenset()))),
        (
            "the lock is older than the run",
            policy(PreviousRun(4242, "vm", HOLDER.at + timedelta(seconds=5), frozenset({"client-e2e"}))),
        ),
        ("no record of a killed run", policy(None)),
        ("another machine's lock", RecoveryPolicy(KILLED_RUN, False, "other-host", lambda pid: False)),
    ],
)
def test_any_doubt_leaves_the_lock_alone(case: str, chosen: RecoveryPolicy) -> None:
    with pytest.raises(StackLockedError, match="client-e2e is locked by"):
        chosen.may_cancel("client-e2e", [HOLDER])


def test_recover_vouches_for_other_machines_but_never_for_a_live_process_here() -> None:
    elsewhere = RecoveryPolicy(None, True, "ci-runner-7", lambda pid: True)
    assert "--recover" in elsewhere.may_cancel("client-e2e", [HOLDER])
    with pytest.raises(StackLockedError, match="still alive"):
        policy(None, recover=True, alive=frozenset({21645})).may_cancel("client-e2e", [HOLDER])


class LockedStack(FakeStack):
    """A stack a killed `pulumi up` left locked, with one create pending."""

    def __init__(self, pending: int = 1) -> None:
        super().__init__()
        self.locked = True
        self.pending = pending

    def _cli(self, args: list[str], cwd: str, env: dict[str, str], on_output: Any = None, on_error: Any = None) -> Any:
        self._refuse_while_locked(args[0])
        return super()._cli(args, cwd, env, on_output, on_error)

    def _refuse_while_locked(self, action: str) -> None:
        if self.locked:
            self.calls.append((f"{action} refused", {}))
            raise RuntimeError(LOCK_ERROR)

    def cancel(self) -> None:
        self.calls.append(("cancel", {}))
        self.locked = False

    def export_stack(self) -> Any:
        pending = [{"resource": {"urn": f"urn:{i}"}, "type": "creating"} for i in range(self.pending)]
        return SimpleNamespace(deployment={"resources": [], "pending_operations": pending})

    def refresh(self, **kwargs: Any) -> Any:
        if kwargs.get("clear_pending_creates"):
            self.pending = 0
        return super().refresh(**kwargs)


def adapter_over(stack: FakeStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chosen: RecoveryPolicy) -> Any:

    fake_automation(monkeypatch, lambda name, work_dir, opts: stack)
    return AutomationApiRunner(tmp_path, recovery=chosen)


def test_the_adapter_cancels_clears_pending_creates_then_runs_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = LockedStack(pending=2)
    outcome = adapter_over(stack, monkeypatch, tmp_path, policy()).run("client-e2e", "up", print)
    assert [name for name, _ in stack.calls] == ["up refused", "cancel", "refresh", "up"]
    assert stack.calls[2][1]["clear_pending_creates"] is True
    assert outcome.changed == 2
    assert "the killed fleet run left its lock" in outcome.recovered
    assert "cleared 2 pending operations" in outcome.recovered


def test_a_preview_only_removes_the_dead_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stack = LockedStack()
    outcome = adapter_over(stack, monkeypatch, tmp_path, policy()).run("client-e2e", "preview", lambda _: None)
    assert [name for name, _ in stack.calls] == ["preview refused", "cancel", "preview"], "no refresh: no state write"
    assert "1 pending operations left for the next up" in outcome.recovered


def test_a_lock_it_may_not_cancel_fails_the_stack_untouched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stack = LockedStack()
    runner = adapter_over(stack, monkeypatch, tmp_path, policy(alive=frozenset({21645})))
    result = fleet.run_one("client-e2e", "up", runner, tmp_path)
    assert result.result == FAILED
    assert "locked by a run that is still alive" in result.error
    assert [name for name, _ in stack.calls] == ["up refused"], "never cancelled"


def test_last_run_json_shows_the_stacks_in_flight_while_the_run_goes_on(tmp_path: Path) -> None:
    project(tmp_path, "client-a", "client-b")
    seen: list[dict[str, Any]] = []

    class Peeking(StandIn):
        def run(self, stack: str, action: str, log: fleet.LogFn) -> Outcome:
            seen.append(json.loads((tmp_path / ".fleet" / fleet.STATE_FILE).read_text()))
            return super().run(stack, action, log)

    code, _ = run_main(tmp_path, Peeking(), "--action", "up", "--parallel", "1")
    assert code == 0
    first = seen[0]
    assert first["finished"] is None
    assert first["runner"]["pid"] == os.getpid()
    assert first["stacks"]["client-a"] == {"result": "running"}
    assert unfinished_run(first) is not None
    assert unfinished_run(first).in_flight == {"client-a"}  # type: ignore[union-attr]
    final = json.loads((tmp_path / ".fleet" / fleet.STATE_FILE).read_text())
    assert final["finished"] is not None
    assert unfinished_run(final) is None


def test_a_fleet_run_still_alive_in_the_same_folder_blocks_a_second_one(tmp_path: Path) -> None:
    project(tmp_path, "client-a")
    record = {
        "action": "up",
        "finished": None,
        "runner": {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-07T22:18:50+00:00"},
        "stacks": {"client-a": {"result": "running"}},
    }
    (tmp_path / ".fleet").mkdir()
    (tmp_path / ".fleet" / fleet.STATE_FILE).write_text(json.dumps(record))
    runner = StandIn()
    code, out = run_main(tmp_path, runner, "--action", "up")
    assert code == 2
    assert "is still running" in out
    assert runner.calls == []


def test_the_summary_lists_what_was_recovered() -> None:
    results = [StackResult("client-a", SUCCEEDED, 1, 2.0, recovered="the killed fleet run left its lock")]
    summary = fleet.markdown_summary("up", results)
    assert "#### Recovered after a killed run" in summary
    assert "- `client-a`: the killed fleet run left its lock" in summary


def test_a_zombie_is_not_a_live_process() -> None:
    exited = subprocess.Popen(["true"])
    deadline = time.monotonic() + 60
    while fleet_recovery._zombie(exited.pid) is False and time.monotonic() < deadline:
        time.sleep(0.01)  # not reaped yet: `true` becomes a zombie once it exits
    assert fleet_recovery.process_alive(os.getpid())
    assert not fleet_recovery.process_alive(exited.pid), "an exited, unreaped process holds no lock"
    exited.wait()
    assert not fleet_recovery.process_alive(exited.pid)
