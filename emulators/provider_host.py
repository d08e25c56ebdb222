"""Drive the real Python dynamic-provider host over gRPC the way the Pulumi engine does.

No Pulumi CLI/engine can run here, so this module plays the engine's part around the real
``python -u -m pulumi.dynamic`` process from the installed SDK:

* ``ProviderHost``: launches the host like ``provider_plugin.go NewProvider`` + ``plugin.go newPlugin``
  (argv = the engine address, cwd = the program directory, env = the CLI's env + ``PULUMI_PROJECT`` +
  ``PULUMI_RUNTIME_*``; port read from the first stdout line; SIGINT then kill on shutdown) and
  exposes the resource-provider RPCs with plain dicts in engine wire form: secrets are the sentinel
  ``{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": ...}``.
  Like the engine, it strips secrets before sending them to a provider that answered
  ``acceptSecrets: false`` (the Python host always does) and copies secretness back onto
  same-named outputs (``annotateSecrets``, docs/pulumi.md §2.3).
* ``collect_dynamic_resources``: runs a program under ``pulumi.runtime.set_mocks`` and records every
  ``pulumi-python:dynamic/...`` registration in wire form (incl. ``__provider``) plus the stack outputs.
* ``MiniEngine``: a tiny state-keeping engine with ``up`` / ``refresh`` / ``destroy`` semantics for
  dynamic resources on top of a ``ProviderHost``.

Example::

    declared = collect_dynamic_resources(program, config=cfg)
    with ProviderHost(ROOT) as host:
        host.configure(cfg)
        engine = MiniEngine(host)
        assert engine.up(declared).counts == {"create": 3}
        assert not engine.up(declared).changed
        drift = engine.refresh()
        engine.destroy()
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import runpy
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import grpc
import pulumi
import pulumi.runtime
from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime import config as runtime_config
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi.runtime.stack import massage

PROVIDER_KEY = "__provider"
DYNAMIC_TYPE_PREFIX = "pulumi-python:dynamic"
STACK_TYPE = "pulumi:pulumi:Stack"
DEFAULT_PROVIDER_TYPE = "pulumi:providers:pulumi-python"

# The Python host ignores its argv, but the engine always passes its own gRPC address as the one
# positional argument (provider_plugin.go NewProvider: `[]string{host.ServerAddr()}`).
PLACEHOLDER_ENGINE_ADDRESS = "127.0.0.1:0"


# --------------------------------------------------------------------------------------------------
# Wire-form helpers (plain dicts as the engine holds them; secrets as sentinel dicts)
# --------------------------------------------------------------------------------------------------


def secret(value: Any) -> dict[str, Any]:
    """Wrap ``value`` in the wire secret sentinel."""
    wrapped: dict[str, Any] = rpc.wrap_rpc_secret(value)
    return wrapped


def is_secret(value: Any) -> bool:
    return bool(rpc.is_rpc_secret(value))


def contains_secrets(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_secrets(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_secrets(v) for v in value)
    return False


def reveal(value: Any) -> Any:
    """Deeply unwrap every secret sentinel (for assertions on plain values)."""
    if is_secret(value):
        return reveal(value["value"])
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reveal(v) for v in value]
    return value


def annotate_secrets(outs: dict[str, Any], ins: Mapping[str, Any]) -> dict[str, Any]:
    """Port of ``annotateSecrets`` (sdk/go/common/resource/plugin/provider_plugin.go): copy the
    secretness of each input onto the same-named output, recursing when both are plain objects; a
    secret anywhere inside an input value makes the whole output value secret."""
    result = dict(outs)
    for key, in_value in ins.items():
        if key not in result:
            continue
        out_value = result[key]
        both_objects = (
            isinstance(out_value, Mapping)
            and isinstance(in_value, Mapping)
            and not is_secret(out_value)
            and not is_secret(in_value)
        )
        if both_objects:
            result[key] = annotate_secrets(dict(out_value), in_value)
        elif not is_secret(out_value) and contains_secrets(in_value):
            result[key] = secret(out_value)
    return result


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Plain dict (wire form) -> ``google.protobuf.Struct``; numbers become doubles as on the wire."""
    struct = struct_pb2.Struct()
    struct.update(_plain(props))
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """``google.protobuf.Struct`` -> plain dict, keeping secret sentinels and the unknown marker as
    they are on the wire. Integral doubles come back as ``int``."""
    return {k: _from_value(v) for k, v in struct.fields.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [_from_value(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _strip_secrets(value: Any) -> Any:
    # MarshalProperties(KeepSecrets: false): what the engine sends to a provider without acceptSecrets.
    return reveal(value)


def _without_nulls(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """Top-level keys whose wire values differ (null and missing are the same, as in the engine)."""
    a, b = _without_nulls(old), _without_nulls(new)
    return tuple(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))


def parse_urn(urn: str) -> tuple[str, str]:
    """``urn:pulumi:<stack>::<project>::<qualified type>::<name>`` -> (type, name)."""
    parts = urn.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    return parts[2].split("$")[-1], parts[3]


def make_urn(stack: str, project: str, type_: str, name: str, parent: str | None = None) -> str:
    """Engine URN: the parent's full qualified type chain is kept, the root Stack type is not."""
    qualified = type_
    if parent:
        parent_qualified = parent.split("::")[2]
        if parent_qualified != STACK_TYPE:
            qualified = f"{parent_qualified}${type_}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


# --------------------------------------------------------------------------------------------------
# ProviderHost
# --------------------------------------------------------------------------------------------------


class ProviderHostError(RuntimeError):
    """The host process could not be started or did not print its port."""


class ProviderError(Exception):
    """A provider RPC failed. ``details`` is the provider's message: for exceptions raised in
    check/diff/create/... the Python host aborts with the full traceback text (``_abort_with_traceback``
    in pulumi/dynamic/__main__.py), so the last line is ``ExceptionType: message``."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str, stderr: str = "") -> None:
        self.method = method
        self.code = code
        self.details = details
        self.stderr = stderr  # what the host had written by then, perhaps not all of it: for diagnostics only
        super().__init__(f"{method} failed ({getattr(code, 'name', code)}): {details}")

    @property
    def summary(self) -> str:
        """The last non-empty line of the provider's message (``ValueError: ...``)."""
        lines = [line for line in self.details.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


class EngineError(Exception):
    """Something the engine itself would reject (check failures, empty ids, protected deletes)."""


@dataclass(frozen=True)
class CheckOutcome:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]  # (property, reason)


@dataclass(frozen=True)
class DiffOutcome:
    changes: bool | None  # None = DIFF_UNKNOWN
    replaces: list[str]
    delete_before_replace: bool
    stables: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadOutcome:
    id: str | None  # None when the provider returned no id (its way of saying "gone")
    outs: dict[str, Any]
    inputs: dict[str, Any] | None


@dataclass(frozen=True)
class ConfigureOutcome:
    accept_secrets: bool
    supports_preview: bool
    accept_resources: bool


def _runtime_options(project_root: Path) -> dict[str, str]:
    """``runtime.options`` of Pulumi.yaml; the engine exports them as ``PULUMI_RUNTIME_<KEY>``."""
    path = project_root / "Pulumi.yaml"
    if not path.is_file():
        return {}
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dev dependency
        return {}
    runtime = (yaml.safe_load(path.read_text()) or {}).get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    return {str(k): str(v) for k, v in (options or {}).items()}


class ProviderHost:
    """The real ``python -u -m pulumi.dynamic`` process, started and spoken to like the engine does.

    ``env`` overrides the inherited environment (``None`` removes a variable). The Python host reads
    only ``PULUMI_PROJECT`` itself (for unqualified ``Config.get`` keys in ``configure()``); the engine
    does not set ``PULUMI_STACK`` for provider plugins, so neither does this class (``stack`` is used
    for the default-provider URN only).

    Note the host caches each unpickled provider per ``__provider`` string and calls its
    ``configure()`` once (notes §2.1): configure the host *before* the first resource call, and use a
    fresh host to test different config.
    """

    def __init__(
        self,
        project_root: Path,
        *,
        env: Mapping[str, str | None] | None = None,
        project: str = "cipp-hardening",
        stack: str = "test",
        engine_address: str = PLACEHOLDER_ENGINE_ADDRESS,
        python: str = sys.executable,
        startup_timeout: float = 30.0,
        shutdown_timeout: float = 5.0,
        rpc_timeout: float = 60.0,
    ) -> None:
        self.project_root = Path(project_root)
        self.project = project
        self.stack = stack
        self.engine_address = engine_address
        self.python = python
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.rpc_timeout = rpc_timeout
        self._env_overrides = dict(env or {})
        self.accept_secrets = False  # until Configure says otherwise
        self.plugin_version: str | None = None
        self.handshake_supported: bool | None = None
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: Any = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []
        self._output_whole = False  # set once the host has exited and its pipes were read to the end
        self._provider_id = str(uuid.uuid4())

    # -- lifecycle ---------------------------------------------------------------------------------

    def engine_env(self) -> dict[str, str]:
        """The environment the engine gives a provider plugin (provider_plugin.go NewProvider):
        the CLI's own env, ``PULUMI_RUNTIME_<OPTION>`` per Pulumi.yaml runtime option and
        ``PULUMI_PROJECT``. The ``pulumi-resource-pulumi-python`` shim then puts the virtualenv's
        ``bin`` first on PATH and unsets PYTHONHOME before running ``python -u -m pulumi.dynamic``."""
        env = dict(os.environ)
        for option, option_value in _runtime_options(self.project_root).items():
            env[f"PULUMI_RUNTIME_{option.upper()}"] = option_value
        env["PULUMI_PROJECT"] = self.project
        env["PATH"] = os.pathsep.join([str(Path(self.python).parent), env.get("PATH", "")])
        env.pop("PYTHONHOME", None)
        for key, value in self._env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(self) -> ProviderHost:
        if self._proc is not None:
            raise ProviderHostError("provider host already started")
        self._proc = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.dynamic", self.engine_address],
            cwd=self.project_root,
            env=self.engine_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # the engine starts plugins in their own process group (cmdutil.RegisterProcessGroup)
        )
        try:
            self.port = self._read_port()
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            grpc.channel_ready_future(self._channel).result(timeout=self.startup_timeout)
            self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
            self._handshake()
        except BaseException:
            self.close()
            raise
        return self

    def _read_port(self) -> int:
        # The engine reads stdout byte by byte up to the first newline: that line is the port; the
        # rest of stdout/stderr is streamed to the diagnostics (captured here).
        assert self._proc is not None
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        first_line: queue.Queue[str | None] = queue.Queue()

        def pump_stdout(stream: Any) -> None:
            first = True
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace")
                if first:
                    first_line.put(line)
                    first = False
                else:
                    self._stdout.append(line)
            if first:
                first_line.put(None)

        def pump_stderr(stream: Any) -> None:
            for raw in iter(stream.readline, b""):
                self._stderr.append(raw.decode(errors="replace"))

        for target, stream in ((pump_stdout, self._proc.stdout), (pump_stderr, self._proc.stderr)):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            line = first_line.get(timeout=self.startup_timeout)
        except queue.Empty:
            raise ProviderHostError(f"provider host printed no port within {self.startup_timeout}s") from None
        if line is None:
            self._proc.wait(timeout=self.shutdown_timeout)
            self._join_pumps()
            raise ProviderHostError(
                f"provider host exited ({self._proc.returncode}) before printing its port:\n{self._stderr_so_far()}"
            )
        try:
            return int(line.strip())
        except ValueError:
            raise ProviderHostError(f"provider host wrote an invalid port to stdout: {line!r}") from None

    def _handshake(self) -> None:
        # The engine first tries Handshake (the Python host does not implement it: UNIMPLEMENTED
        # means "fall back to the old protocol"), then asks for GetPluginInfo.
        request = provider_pb2.ProviderHandshakeRequest(
            engine_address=self.engine_address,
            root_directory=str(self.project_root),
            program_directory=str(self.project_root),
            configure_with_urn=True,
            supports_views=True,
            supports_refresh_before_update=True,
        )
        try:
            self.stub.Handshake(request, timeout=self.rpc_timeout)
            self.handshake_supported = True
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._error("Handshake", err) from err
            self.handshake_supported = False
        info = self._call("GetPluginInfo", empty_pb2.Empty())
        self.plugin_version = info.version

    def close(self) -> None:
        """Shut the host down like ``plugin.go`` Kill: SIGINT, wait, then SIGKILL."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stub = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=self.shutdown_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.shutdown_timeout)
        self._join_pumps()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def _join_pumps(self) -> None:
        """Called once the process has exited: the pumps end at the pipes' EOF."""
        for thread in self._threads:
            thread.join(timeout=self.shutdown_timeout)
        self._output_whole = not any(thread.is_alive() for thread in self._threads)
        self._threads = []

    def __enter__(self) -> ProviderHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def stderr(self) -> str:
        """Everything the host wrote to stderr: read it after ``close()`` (after the ``with`` block).

        While the host runs, a line it wrote before answering an RPC may still sit in the pipe, not yet
        read by the pump thread; an assertion on it (or on its absence) would depend on scheduling.
        """
        self._require_whole_output()
        return "".join(self._stderr)

    @property
    def stdout(self) -> str:
        """Everything the host printed after the port line (a provider's ``print()`` lands here);
        like ``stderr``, whole only after ``close()``."""
        self._require_whole_output()
        return "".join(self._stdout)

    def _require_whole_output(self) -> None:
        if not self._output_whole:
            raise ProviderHostError(
                "the provider host's output is whole only once it has exited: read it after close() "
                "(outside the `with ProviderHost(...)` block)"
            )

    def _stderr_so_far(self) -> str:
        """What the pump has read until now, for error messages (never for assertions)."""
        return "".join(self._stderr)

    @property
    def stub(self) -> provider_pb2_grpc.ResourceProviderStub:
        if self._stub is None:
            raise ProviderHostError("provider host is not running")
        return self._stub

    # -- RPC plumbing -------------------------------------------------------------------------------

    def _error(self, method: str, err: grpc.RpcError) -> ProviderError:
        return ProviderError(method, err.code(), err.details() or "", self._stderr_so_far())

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.rpc_timeout)
        except grpc.RpcError as err:
            raise self._error(method, err) from err

    def _wire(self, props: Mapping[str, Any]) -> struct_pb2.Struct:
        return to_struct(props if self.accept_secrets else _strip_secrets(props))

    @property
    def default_provider_urn(self) -> str:
        return make_urn(self.stack, self.project, DEFAULT_PROVIDER_TYPE, "default")

    # -- the engine's calls ---------------------------------------------------------------------------

    def configure(self, config: Mapping[str, str], secret_keys: Iterable[str] = ()) -> ConfigureOutcome:
        """Configure the default ``pulumi-python`` provider with the stack config.

        For dynamic providers the engine passes *all* stack config with namespaced keys
        (``deploy.Target.GetPackageConfig``: ``isDynamicProvider`` → ``result[k.String()]``), secure
        values as secrets. It first calls CheckConfig (UNIMPLEMENTED here → inputs used as-is), then
        Configure with ``variables`` (``pulumi-python:config:<key>`` → string) and ``args`` (the
        Struct the Python host actually reads, secrets unwrapped by the host)."""
        secret_set = set(secret_keys)
        unknown = secret_set - set(config)
        if unknown:
            raise ValueError(f"secret_keys not in config: {sorted(unknown)}")
        args = {k: secret(v) if k in secret_set else v for k, v in config.items()}
        urn = self.default_provider_urn
        try:
            self.stub.CheckConfig(
                provider_pb2.CheckRequest(
                    urn=urn, name="default", type=DEFAULT_PROVIDER_TYPE, olds=to_struct({}), news=to_struct(args)
                ),
                timeout=self.rpc_timeout,
            )
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._error("CheckConfig", err) from err
        response = self._call(
            "Configure",
            provider_pb2.ConfigureRequest(
                variables={f"pulumi-python:config:{k}": v for k, v in config.items()},
                args=to_struct(args),
                acceptSecrets=True,
                acceptResources=True,
                sends_old_inputs=True,
                sends_old_inputs_to_delete=True,
                urn=urn,
                name="default",
                type=DEFAULT_PROVIDER_TYPE,
                id=self._provider_id,
            ),
        )
        self.accept_secrets = bool(response.acceptSecrets)
        return ConfigureOutcome(
            accept_secrets=self.accept_secrets,
            supports_preview=bool(response.supportsPreview),
            accept_resources=bool(response.acceptResources),
        )

    def check(self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> CheckOutcome:
        type_, name = parse_urn(urn)
        response = self._call(
            "Check",
            provider_pb2.CheckRequest(
                urn=urn, name=name, type=type_, olds=self._wire(olds), news=self._wire(news), randomSeed=b""
            ),
        )
        inputs = from_struct(response.inputs)
        if not self.accept_secrets:
            inputs = annotate_secrets(inputs, news)
        return CheckOutcome(inputs, [(f.property, f.reason) for f in response.failures])

    def diff(
        self,
        urn: str,
        id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        old_inputs: Mapping[str, Any] | None = None,
        ignore_changes: Iterable[str] = (),
    ) -> DiffOutcome:
        """``olds`` are the prior *outputs* (what the Python host hands to ``provider.diff``)."""
        type_, name = parse_urn(urn)
        response = self._call(
            "Diff",
            provider_pb2.DiffRequest(
                id=id,
                urn=urn,
                name=name,
                type=type_,
                olds=self._wire(olds),
                news=self._wire(news),
                old_inputs=self._wire(old_inputs if old_inputs is not None else olds),
                ignoreChanges=list(ignore_changes),
            ),
        )
        changes: bool | None = {
            provider_pb2.DiffResponse.DIFF_SOME: True,
            provider_pb2.DiffResponse.DIFF_NONE: False,
        }.get(response.changes)
        return DiffOutcome(
            changes=changes,
            replaces=list(response.replaces),
            delete_before_replace=bool(response.deleteBeforeReplace),
            stables=list(response.stables),
            diffs=list(response.diffs),
        )

    def create(self, urn: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        type_, name = parse_urn(urn)
        response = self._call(
            "Create", provider_pb2.CreateRequest(urn=urn, name=name, type=type_, properties=self._wire(props))
        )
        if not response.id:
            raise EngineError(f"plugin for package 'pulumi-python' returned empty resource.ID from create '{urn}'")
        outs = from_struct(response.properties)
        if not self.accept_secrets:
            outs = annotate_secrets(outs, props)
        return response.id, outs

    def read(self, urn: str, id: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None) -> ReadOutcome:
        """``props`` are the prior outputs (refresh); pass only ``inputs`` for a ``Resource.get``."""
        type_, name = parse_urn(urn)
        request = provider_pb2.ReadRequest(id=id, urn=urn, name=name, type=type_, properties=self._wire(props))
        if inputs is not None:
            request.inputs.CopyFrom(self._wire(inputs))
        response = self._call("Read", request)
        outs = from_struct(response.properties)
        new_inputs = from_struct(response.inputs) if response.HasField("inputs") else None
        if not self.accept_secrets:
            outs = annotate_secrets(outs, props)
            if new_inputs is not None and inputs is not None:
                new_inputs = annotate_secrets(new_inputs, inputs)
        return ReadOutcome(response.id or None, outs, new_inputs)

    def update(
        self,
        urn: str,
        id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        old_inputs: Mapping[str, Any] | None = None,
        ignore_changes: Iterable[str] = (),
    ) -> dict[str, Any]:
        type_, name = parse_urn(urn)
        response = self._call(
            "Update",
            provider_pb2.UpdateRequest(
                id=id,
                urn=urn,
                name=name,
                type=type_,
                olds=self._wire(olds),
                news=self._wire(news),
                old_inputs=self._wire(old_inputs if old_inputs is not None else olds),
                ignoreChanges=list(ignore_changes),
            ),
        )
        outs = from_struct(response.properties)
        return annotate_secrets(outs, news) if not self.accept_secrets else outs

    def delete(
        self, urn: str, id: str, props: Mapping[str, Any], *, old_inputs: Mapping[str, Any] | None = None
    ) -> None:
        type_, name = parse_urn(urn)
        self._call(
            "Delete",
            provider_pb2.DeleteRequest(
                id=id,
                urn=urn,
                name=name,
                type=type_,
                properties=self._wire(props),
                old_inputs=self._wire(old_inputs if old_inputs is not None else props),
            ),
        )


# --------------------------------------------------------------------------------------------------
# collect_dynamic_resources: run a program under mocks and record what it declares
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredResource:
    """One ``RegisterResource`` call as the engine would receive it. ``inputs`` are the raw request
    object in wire form (secrets as sentinels, ``__provider`` included for dynamic resources)."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str | None
    custom: bool = True
    provider: str = ""
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool | None = None
    ignore_changes: tuple[str, ...] = ()
    additional_secret_outputs: tuple[str, ...] = ()

    @property
    def is_dynamic(self) -> bool:
        return self.type.startswith(DYNAMIC_TYPE_PREFIX)


class DeclaredResources(list[DeclaredResource]):
    """The dynamic resources a program declared (a list), plus ``outputs`` (the stack outputs in
    wire form) and ``registrations`` (every resource the program registered, dynamic or not)."""

    def __init__(
        self,
        dynamic: Iterable[DeclaredResource],
        *,
        outputs: dict[str, Any],
        registrations: list[DeclaredResource],
        stack_urn: str,
    ) -> None:
        super().__init__(dynamic)
        self.outputs = outputs
        self.registrations = registrations
        self.stack_urn = stack_urn

    def by_name(self, name: str) -> DeclaredResource:
        matches = [r for r in self if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} dynamic resources named {name!r}")
        return matches[0]


class EchoMocks(Mocks):
    """Default mocks: every resource echoes its inputs with id ``<name>_id``; invokes fail loudly."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        return f"{args.name}_id", dict(args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"unmocked invoke {args.token}; pass mocks= to collect_dynamic_resources")


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self._lock = threading.Lock()
        self.recorded: list[DeclaredResource] = []
        self.stack_urn = ""
        self.stack_outputs: dict[str, Any] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # MockMonitor keeps only the parent's last type segment and keeps the Stack type (notes
        # §1.3); use the engine's URN shape instead so URNs match what `pulumi up` would record.
        return make_urn(settings.get_stack(), settings.get_project(), type_, name, parent or None)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == STACK_TYPE:
            self.stack_urn = response.urn
            return response
        declared = DeclaredResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            inputs=from_struct(request.object),
            parent=request.parent or None,
            custom=bool(request.custom),
            provider=request.provider,
            dependencies=tuple(request.dependencies),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace) if request.deleteBeforeReplaceDefined else None,
            ignore_changes=tuple(request.ignoreChanges),
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
        )
        with self._lock:
            self.recorded.append(declared)
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn == self.stack_urn:
            with self._lock:
                self.stack_outputs = from_struct(request.outputs)
        return super().RegisterResourceOutputs(request)


@contextlib.contextmanager
def _program_dir(path: Path) -> Iterator[None]:
    # The language host runs __main__.py with cwd = the project directory and that directory on sys.path.
    directory = str(path.parent.resolve())
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        with contextlib.chdir(directory):
            yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def collect_dynamic_resources(
    program: Callable[[], object] | Path | str,
    *,
    config: Mapping[str, str],
    project: str = "cipp-hardening",
    stack: str = "test",
    secret_keys: Iterable[str] = (),
    mocks: Mocks | None = None,
) -> DeclaredResources:
    """Run ``program`` (a callable, or a ``__main__.py`` path run via runpy) under mocks and return
    its ``pulumi-python:dynamic/...`` registrations, plus ``.outputs`` (stack outputs).

    Each call starts from fresh runtime state: a new mock monitor, a new root Stack resource
    (``settings.ROOT`` is reset; ``set_mocks`` only creates one when none exists), fresh settings
    and config. Collection happens after the ``pulumi.runtime.test`` wrapper returned, i.e. after
    every RPC and output settled (notes §1.4)."""
    mocks = mocks if mocks is not None else EchoMocks()
    monitor = _RecordingMonitor(mocks)
    saved = (settings.ROOT.get(), runtime_config.CONFIG.get(), runtime_config._SECRET_KEYS.get())
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), secret_keys=list(secret_keys))

    def run() -> None:
        if isinstance(program, str | Path):
            with _program_dir(Path(program)):
                runpy.run_path(str(program), run_name="__main__")
        else:
            program()
        # What the language host does after the program (Stack._finish in pulumi/runtime/stack.py):
        # register the exported outputs on the root stack resource. set_mocks already finished its
        # Stack with no outputs, so register them again now that the program exported them.
        root = settings.get_root_resource()
        if isinstance(root, pulumi.ComponentResource):
            root.register_outputs(massage(getattr(root, "outputs", {}), []))

    try:
        pulumi.runtime.test(run)()
    finally:
        # Hand the root stack and config back as they were, so nothing leaks into later mock tests.
        settings.ROOT.set(saved[0])
        runtime_config.CONFIG.set(saved[1])
        runtime_config._SECRET_KEYS.set(saved[2])
    registrations = list(monitor.recorded)
    return DeclaredResources(
        (r for r in registrations if r.is_dynamic),
        outputs=dict(monitor.stack_outputs),
        registrations=registrations,
        stack_urn=monitor.stack_urn,
    )


# --------------------------------------------------------------------------------------------------
# MiniEngine
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateEntry:
    urn: str
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None = None
    protect: bool = False
    retain_on_delete: bool = False


@dataclass(frozen=True)
class Operation:
    urn: str
    op: str  # create | update | replace | same | delete
    changed: tuple[str, ...] = ()  # keys that differed (diff keys on up, drifted outputs on refresh)
    gone: bool = False  # refresh: the provider reported the resource missing (a blank id)

    @property
    def name(self) -> str:
        return parse_urn(self.urn)[1]


@dataclass
class RunReport:
    kind: str  # up | refresh | destroy
    operations: list[Operation] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Operations per kind, ``same`` excluded: ``{}`` means nothing changed."""
        return dict(Counter(o.op for o in self.operations if o.op != "same"))

    @property
    def changed(self) -> bool:
        return bool(self.counts)

    def names(self, op: str) -> list[str]:
        return [o.name for o in self.operations if o.op == op]

    def __getitem__(self, name_or_urn: str) -> Operation:
        for o in self.operations:
            if name_or_urn in (o.urn, o.name):
                return o
        raise KeyError(name_or_urn)


class MiniEngine:
    """``pulumi up`` / ``refresh`` / ``destroy`` for dynamic resources over a ``ProviderHost``.

    Follows the step generator: Check(olds = prior inputs) → Diff(olds = prior outputs) →
    Create/Update/Replace; ``DIFF_UNKNOWN`` falls back to comparing prior and new inputs (which
    include ``__provider``); resources in state but no longer declared are deleted in reverse order.

    Refresh follows the engine's ``RefreshStep``: a Read that returns a blank id is a delete, whatever
    outputs come with it (the Python host always echoes ``__provider``), so ``ReadResult(None, {})``
    drops the resource and the next ``up`` creates it again. tests/engine/test_client_stack.py shows the
    real CLI doing exactly this (docs/engine.md).
    """

    def __init__(self, host: ProviderHost, state: Mapping[str, StateEntry] | None = None) -> None:
        """`state`: what an earlier run left (the engine's state backend), for a later run's fresh host."""
        self.host = host
        self._state: dict[str, StateEntry] = dict(state or {})

    @property
    def state(self) -> Mapping[str, StateEntry]:
        return MappingProxyType(self._state)

    def up(self, resources: Iterable[DeclaredResource]) -> RunReport:
        report = RunReport("up")
        declared = [r for r in resources if r.is_dynamic]
        seen: set[str] = set()
        for res in declared:
            if res.urn in seen:
                raise EngineError(f"Duplicate resource URN '{res.urn}'")
            seen.add(res.urn)
            report.operations.append(self._step(res))
        for urn in reversed(list(self._state)):
            if urn not in seen:
                self._delete(self._state[urn])
                report.operations.append(Operation(urn, "delete"))
        return report

    def _step(self, res: DeclaredResource) -> Operation:
        old = self._state.get(res.urn)
        news = dict(res.inputs)
        if old is not None:
            # ignoreChanges is applied to the program's inputs before Check (top-level keys only here).
            for key in res.ignore_changes:
                if key in old.inputs:
                    news[key] = old.inputs[key]
                else:
                    news.pop(key, None)
        checked = self.host.check(res.urn, old.inputs if old else {}, news)
        if checked.failures:
            reasons = "; ".join(f"{prop}: {reason}" for prop, reason in checked.failures)
            raise EngineError(f"{res.urn}: check failed: {reasons}")
        inputs = checked.inputs
        if old is None:
            self._create(res, inputs)
            return Operation(res.urn, "create")

        diff = self.host.diff(res.urn, old.id, old.outputs, inputs, old_inputs=old.inputs)
        changes, keys = diff.changes, tuple(diff.diffs)
        if changes is None:
            keys = changed_keys(old.inputs, inputs)
            changes = bool(keys)
        if not changes:
            # SameStep: the new inputs are recorded, the outputs kept.
            self._state[res.urn] = replace(old, inputs=inputs, protect=res.protect)
            return Operation(res.urn, "same")
        if diff.replaces:
            if old.protect:
                raise EngineError(f"unable to replace protected resource '{res.urn}'")
            if diff.delete_before_replace or res.delete_before_replace:
                self._delete(old)
                self._create(res, inputs)
            else:
                del self._state[res.urn]
                self._create(res, inputs)
                self._delete(old, keep_state=True)
            return Operation(res.urn, "replace", tuple(diff.replaces))
        outs = self.host.update(res.urn, old.id, old.outputs, inputs, old_inputs=old.inputs)
        self._state[res.urn] = replace(old, inputs=inputs, outputs=self._secret_outputs(outs, res), protect=res.protect)
        return Operation(res.urn, "update", keys)

    @staticmethod
    def _secret_outputs(outs: dict[str, Any], res: DeclaredResource) -> dict[str, Any]:
        # additionalSecretOutputs is applied by the engine after Create/Update (mocks ignore it).
        return {k: secret(v) if k in res.additional_secret_outputs and not is_secret(v) else v for k, v in outs.items()}

    def _create(self, res: DeclaredResource, inputs: dict[str, Any]) -> None:
        id_, outs = self.host.create(res.urn, inputs)
        self._state[res.urn] = StateEntry(
            urn=res.urn,
            type=res.type,
            id=id_,
            inputs=inputs,
            outputs=self._secret_outputs(outs, res),
            parent=res.parent,
            protect=res.protect,
            retain_on_delete=res.retain_on_delete,
        )

    def _delete(self, entry: StateEntry, *, keep_state: bool = False) -> None:
        if entry.protect:
            raise EngineError(f"resource '{entry.urn}' cannot be deleted because it is protected")
        if not entry.retain_on_delete:
            self.host.delete(entry.urn, entry.id, entry.outputs, old_inputs=entry.inputs)
        if not keep_state:
            self._state.pop(entry.urn, None)

    def refresh(self) -> RunReport:
        report = RunReport("refresh")
        for urn, entry in list(self._state.items()):
            read = self.host.read(urn, entry.id, entry.outputs, inputs=entry.inputs)
            if not read.id:
                del self._state[urn]
                report.operations.append(Operation(urn, "delete", gone=True))
                continue
            new_inputs = read.inputs if read.inputs is not None else entry.inputs
            drift = changed_keys(entry.outputs, read.outs)
            self._state[urn] = replace(entry, id=read.id or entry.id, inputs=new_inputs, outputs=read.outs)
            op = (
                "update"
                if drift or changed_keys(entry.inputs, new_inputs) or read.id not in (None, entry.id)
                else "same"
            )
            report.operations.append(Operation(urn, op, drift))
        return report

    def destroy(self) -> RunReport:
        report = RunReport("destroy")
        for urn in reversed(list(self._state)):
            self._delete(self._state[urn])
            report.operations.append(Operation(urn, "delete"))
        return report

    def dump_state(self) -> str:
        """The state as JSON (secrets shown as sentinels), handy in assertion messages."""
        return json.dumps({u: e.__dict__ for u, e in self._state.items()}, indent=2, sort_keys=True, default=str)
