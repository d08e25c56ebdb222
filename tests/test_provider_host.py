"""Tests for the provider-host harness (emulators/provider_host.py) using the toy provider."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pytest

from emulators.provider_host import (
    PROVIDER_KEY,
    DeclaredResources,
    EngineError,
    MiniEngine,
    ProviderError,
    ProviderHost,
    ProviderHostError,
    collect_dynamic_resources,
    is_secret,
    parse_urn,
    reveal,
    secret,
)
from tests.toy_dynamic_provider import STATE_DIR_KEY, ToyRecord, ToyRecordNoDiff

ROOT = Path(__file__).resolve().parents[1]
TOKEN_KEY = "cipp-hardening:apiToken"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toy-state")


@pytest.fixture(scope="module")
def config(state_dir: Path) -> dict[str, str]:
    return {STATE_DIR_KEY: str(state_dir), TOKEN_KEY: "tok-123"}


@pytest.fixture(scope="module")
def host(config: dict[str, str]) -> Iterator[ProviderHost]:
    with ProviderHost(ROOT) as h:
        h.configure(config, secret_keys=[TOKEN_KEY])
        pid = h.pid
        yield h
    assert not h.running
    assert pid is not None
    assert not pid_alive(pid)  # SIGINT on close: the host stopped and was reaped


def declare(config: dict[str, str], *resources: tuple[str, Any]) -> DeclaredResources:
    """Collect a program declaring ToyRecord(name, value) for each pair."""

    def program() -> None:
        for name, value in resources:
            ToyRecord(name, value)

    return collect_dynamic_resources(program, config=config)


def record(state_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((state_dir / f"{name}.json").read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- ProviderHost ----------------------------------------------------------------------------------


def test_host_is_launched_like_the_engine_does(host: ProviderHost, tmp_path: Path) -> None:
    assert host.running
    assert host.port
    assert host.plugin_version == "0.1.0"  # GetPluginInfo
    assert host.handshake_supported is False  # Handshake is UNIMPLEMENTED in the Python host
    assert host.accept_secrets is False  # Configure answered acceptSecrets: false

    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime:\n  name: python\n  options:\n    toolchain: pip\n")
    env = ProviderHost(tmp_path, project="x", env={"FOO": "bar", "PYTHONHOME": "/nope"}).engine_env()
    assert env["PULUMI_PROJECT"] == "x"
    assert env["PULUMI_RUNTIME_TOOLCHAIN"] == "pip"
    assert env["FOO"] == "bar"  # overrides win over the inherited environment


def test_the_hosts_output_is_read_whole_after_it_exits(config: dict[str, str]) -> None:
    """A line the host wrote before answering may still sit in the pipe while it runs: reading its
    stderr then is refused, and after close() every line is there (the quick suite's old flake)."""
    with ProviderHost(ROOT) as h:
        h.configure(config, secret_keys=[TOKEN_KEY])
        MiniEngine(h).up(declare(config, ("whole-output", "v")))
        with pytest.raises(ProviderHostError, match="whole only once it has exited"):
            _ = h.stderr
    assert "toy: created whole-output" in h.stderr


def test_host_that_dies_before_printing_a_port_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProviderHostError, match="before printing its port"):
        ProviderHost(tmp_path, python="/bin/false").start()


def test_check_diff_create_read_update_delete_through_grpc(host: ProviderHost, config, state_dir) -> None:
    res = declare(config, ("crud", "v1")).by_name("crud")

    checked = host.check(res.urn, {}, res.inputs)
    assert checked.failures == []
    assert reveal(checked.inputs) == reveal(res.inputs)

    id_, outs = host.create(res.urn, checked.inputs)
    assert id_ == "crud"
    assert outs["version"] == 1
    assert outs["value"] == "v1"
    assert record(state_dir, "crud") == {"name": "crud", "value": "v1", "version": 1}

    assert host.diff(res.urn, id_, outs, checked.inputs).changes is False
    changed = host.diff(res.urn, id_, outs, {**checked.inputs, "value": "v2"})
    assert (changed.changes, changed.replaces) == (True, [])
    renamed = host.diff(res.urn, id_, outs, {**checked.inputs, "name": "crud2"})
    assert renamed.replaces == ["name"]

    read = host.read(res.urn, id_, outs, inputs=checked.inputs)
    assert (read.id, read.outs, read.inputs) == (id_, outs, None)

    outs2 = host.update(res.urn, id_, outs, {**checked.inputs, "value": "v2"})
    assert (outs2["value"], outs2["version"]) == ("v2", 2)
    assert record(state_dir, "crud")["value"] == "v2"

    host.delete(res.urn, id_, outs2)
    assert not (state_dir / "crud.json").exists()
    gone = host.read(res.urn, id_, outs2)
    assert gone.id is None
    assert set(gone.outs) == {PROVIDER_KEY}  # the host always echoes __provider back


def test_check_failures_are_returned(host: ProviderHost, config) -> None:
    res = declare(config, ("bad", 1)).by_name("bad")
    outcome = host.check(res.urn, {}, {**res.inputs, "name": "a/b"})
    assert outcome.failures == [("name", "name must be a non-empty string without '/'")]


def test_secret_input_stays_secret_in_outputs(host: ProviderHost, config, state_dir) -> None:
    def program() -> None:
        ToyRecord("sec", "plain", secret=pulumi.Output.secret("s3cr3t"))

    res = collect_dynamic_resources(program, config=config).by_name("sec")
    assert res.inputs["secret"] == secret("s3cr3t")  # wire form from the program
    assert is_secret(res.inputs[PROVIDER_KEY])  # serialize_as_secret_always (notes §2.3)

    checked = host.check(res.urn, {}, res.inputs)
    assert checked.inputs["secret"] == secret("s3cr3t")
    _, outs = host.create(res.urn, checked.inputs)
    assert outs["secret"] == secret("s3cr3t")  # engine annotateSecrets: same-named output
    assert is_secret(outs[PROVIDER_KEY])
    assert not is_secret(outs["value"])
    assert not is_secret(outs["path"])
    # The provider itself got plaintext: acceptSecrets=false makes the engine strip the sentinel.
    assert record(state_dir, "sec")["secret"] == "s3cr3t"

    read = host.read(res.urn, "sec", outs)
    assert read.outs["secret"] == secret("s3cr3t")
    outs2 = host.update(res.urn, "sec", outs, {**checked.inputs, "value": "changed"})
    assert outs2["secret"] == secret("s3cr3t")
    host.delete(res.urn, "sec", outs2)


def test_provider_exception_surfaces_as_provider_error(host: ProviderHost, config) -> None:
    res = declare(config, ("explodes", "boom")).by_name("explodes")
    with pytest.raises(ProviderError) as excinfo:
        host.create(res.urn, host.check(res.urn, {}, res.inputs).inputs)
    err = excinfo.value
    assert err.method == "Create"
    assert err.code == grpc.StatusCode.UNKNOWN
    assert err.summary == "ValueError: toy provider refuses to write value 'boom' for 'explodes'"
    assert "Traceback" in err.details
    assert "toy_dynamic_provider.py" in err.details


def test_host_outside_the_project_cannot_import_the_provider_module(config, tmp_path: Path) -> None:
    # The blob references tests.toy_dynamic_provider by name (notes §2.2): a host whose cwd is not the
    # project root (the directory of __main__.py) cannot unpickle it.
    res = declare(config, ("elsewhere", 1)).by_name("elsewhere")
    with ProviderHost(tmp_path, env={"PYTHONPATH": None}) as h:
        h.configure(config)
        with pytest.raises(ProviderError) as excinfo:
            h.check(res.urn, {}, res.inputs)
        pid = h.pid
    assert "ModuleNotFoundError: No module named 'tests" in excinfo.value.details
    assert excinfo.value.summary.startswith("ModuleNotFoundError")
    assert pid is not None
    assert not pid_alive(pid)


# -- collect_dynamic_resources --------------------------------------------------------------------


class Pair(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Pair", name)
        self.left = ToyRecord(f"{name}-left", 1, opts=pulumi.ResourceOptions(parent=self))
        self.right = ToyRecordNoDiff(f"{name}-right", [1, 2], opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def test_collect_dynamic_resources_records_wire_inputs_and_stack_outputs(config) -> None:
    def program() -> None:
        pair = Pair("p")
        ToyRecord("solo", {"a": "b"}, opts=pulumi.ResourceOptions(additional_secret_outputs=["path"]))
        pulumi.export("skipped", ["one", "two"])
        pulumi.export("leftValue", pair.left.value)
        pulumi.export("token", pulumi.Config().require_secret("apiToken"))

    declared = collect_dynamic_resources(program, config=config, secret_keys=[TOKEN_KEY])

    # Registration order is the order the RPCs reached the monitor (children wait for their parent).
    assert sorted(r.name for r in declared) == ["p-left", "p-right", "solo"]
    assert sorted(r.name for r in declared.registrations) == ["p", "p-left", "p-right", "solo"]
    stack = "urn:pulumi:test::cipp-hardening::pulumi:pulumi:Stack::cipp-hardening-test"
    assert declared.stack_urn == stack
    left, right, solo = (declared.by_name(n) for n in ("p-left", "p-right", "solo"))
    # Engine URN shape: the parent's type chain without the Stack type.
    assert left.urn == "urn:pulumi:test::cipp-hardening::test:index:Pair$pulumi-python:dynamic/toy:ToyRecord::p-left"
    assert left.parent == "urn:pulumi:test::cipp-hardening::test:index:Pair::p"
    assert right.type == "pulumi-python:dynamic/toy:ToyRecordNoDiff"
    assert solo.parent == stack
    assert solo.additional_secret_outputs == ("path",)
    assert reveal(right.inputs) | {PROVIDER_KEY: None} == {"name": "p-right", "value": [1, 2], PROVIDER_KEY: None}
    assert all(is_secret(r.inputs[PROVIDER_KEY]) for r in declared)
    assert declared.outputs == {"skipped": ["one", "two"], "leftValue": 1, "token": secret("tok-123")}

    # A second run starts from scratch: no resources, outputs or config carried over.
    again = collect_dynamic_resources(lambda: ToyRecord("only", 0), config={}, project="other", stack="s2")
    assert [r.urn for r in again] == ["urn:pulumi:s2::other::pulumi-python:dynamic/toy:ToyRecord::only"]
    assert again.outputs == {}


def test_collect_runs_a_main_py_path(config, tmp_path: Path) -> None:
    main = tmp_path / "__main__.py"
    main.write_text(
        textwrap.dedent(
            """
            import pulumi
            from tests.toy_dynamic_provider import ToyRecord

            cfg = pulumi.Config()
            ToyRecord("from-file", cfg.require("greeting"))
            pulumi.export("greeting", cfg.require("greeting"))
            pulumi.export("cwd", __import__("os").getcwd())
            """
        )
    )
    declared = collect_dynamic_resources(main, config={"cipp-hardening:greeting": "hi"})
    assert [reveal(r.inputs)["value"] for r in declared] == ["hi"]
    assert declared.outputs == {"greeting": "hi", "cwd": str(tmp_path)}


# -- MiniEngine ------------------------------------------------------------------------------------


def test_mini_engine_up_refresh_up_remove_destroy(host: ProviderHost, config, state_dir) -> None:
    def program(names: tuple[str, ...]) -> DeclaredResources:
        def run() -> None:
            for name in names:
                secret_path = pulumi.ResourceOptions(additional_secret_outputs=["path"] if name == "a" else [])
                ToyRecord(f"life-{name}", f"value-{name}", opts=secret_path)

        return collect_dynamic_resources(run, config=config)

    engine = MiniEngine(host)
    first = engine.up(program(("a", "b", "c")))
    assert first.counts == {"create": 3}
    assert {p.name for p in state_dir.glob("life-*.json")} == {"life-a.json", "life-b.json", "life-c.json"}
    outputs = {parse_urn(urn)[1]: entry.outputs for urn, entry in engine.state.items()}
    assert is_secret(outputs["life-a"]["path"])  # additionalSecretOutputs is applied by the engine
    assert not is_secret(outputs["life-b"]["path"])

    second = engine.up(program(("a", "b", "c")))  # a fresh program run, as on the next `pulumi up`
    assert second.counts == {}, engine.dump_state()
    assert not second.changed

    path_b = state_dir / "life-b.json"
    path_b.write_text(json.dumps({**record(state_dir, "life-b"), "value": "tampered"}))
    drift = engine.refresh()
    assert drift.counts == {"update": 1}
    assert drift["life-b"].changed == ("value",)
    assert engine.state[drift["life-b"].urn].outputs["value"] == "tampered"

    repair = engine.up(program(("a", "b", "c")))
    assert repair.counts == {"update": 1}
    assert repair["life-b"].op == "update"
    assert record(state_dir, "life-b") == {"name": "life-b", "value": "value-b", "version": 2}
    assert engine.refresh().counts == {}

    shrink = engine.up(program(("a", "b")))
    assert shrink.counts == {"delete": 1}
    assert shrink.names("delete") == ["life-c"]
    assert not (state_dir / "life-c.json").exists()

    gone = engine.destroy()
    # Reverse creation order; among independent siblings that order itself is not deterministic
    # (the SDK registers resources concurrently), just as the engine deletes them in parallel.
    assert sorted(gone.names("delete")) == ["life-a", "life-b"]
    assert dict(engine.state) == {}
    assert list(state_dir.glob("life-*.json")) == []


def test_diff_unknown_falls_back_to_comparing_inputs(host: ProviderHost, config, state_dir) -> None:
    def program(value: Any) -> DeclaredResources:
        return collect_dynamic_resources(lambda: ToyRecordNoDiff("nodiff", value), config=config)

    engine = MiniEngine(host)
    assert engine.up(program(1)).counts == {"create": 1}
    assert engine.up(program(1)).counts == {}  # DIFF_UNKNOWN + equal inputs (incl. __provider)
    changed = engine.up(program(2))
    assert changed.counts == {"update": 1}
    assert changed["nodiff"].changed == ("value",)

    # Without a provider diff the engine compares inputs only, so drift of outputs is not repaired.
    (state_dir / "nodiff.json").write_text(json.dumps({"name": "nodiff", "value": 99, "version": 2}))
    assert engine.refresh().counts == {"update": 1}
    assert engine.up(program(2)).counts == {}
    assert record(state_dir, "nodiff")["value"] == 99
    engine.destroy()


def test_replace_on_name_change_and_check_failures(host: ProviderHost, config, state_dir) -> None:
    def program(record_name: str) -> DeclaredResources:
        return collect_dynamic_resources(lambda: ToyRecord("renamed", 1, record_name=record_name), config=config)

    engine = MiniEngine(host)
    engine.up(program("old-name"))
    report = engine.up(program("new-name"))
    assert report.counts == {"replace": 1}
    assert report["renamed"].changed == ("name",)
    assert (state_dir / "new-name.json").exists()
    assert not (state_dir / "old-name.json").exists()
    with pytest.raises(EngineError, match="check failed: name"):
        engine.up(program("bad/name"))
    engine.destroy()


def test_refresh_of_a_resource_deleted_out_of_band(host: ProviderHost, config, state_dir) -> None:
    """The engine's RefreshStep treats a blank id as a delete, although the Python host echoes __provider
    back (tests/engine/test_client_stack.py sees the real CLI drop it): the next `up` creates it again."""
    name = "vanish"
    declared = declare(config, (name, "v"))
    engine = MiniEngine(host)
    engine.up(declared)
    (state_dir / f"{name}.json").unlink()

    report = engine.refresh()
    assert report[name].gone
    assert report.counts == {"delete": 1}
    assert dict(engine.state) == {}
    assert engine.up(declared).counts == {"create": 1}
    assert record(state_dir, name)["value"] == "v"
    engine.destroy()
