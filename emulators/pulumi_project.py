"""The real Pulumi CLI, driven as a user drives it, in a sandbox of its own.

Each `PulumiProject` is a temporary project directory that links the repository's program (so the
stack files `pulumi config set` writes never land in the repository) with a local file backend,
passphrase secrets and a private PULUMI_HOME. Automatic plugin download is off: every plugin the engine
runs comes from .tools/bin (built by `make engine`) or, for azuread, from the test stand-in.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENGINE_BIN = ROOT / ".tools" / "bin"
STANDIN_BIN = ROOT / "tools" / "standin"
PASSPHRASE = "e2e-passphrase-not-a-secret"
# What the program needs from the repository: the program, its packages, the policy pack, the examples
# and the virtualenv (Pulumi.yaml and PulumiPolicy.yaml name it relative to themselves).
PROJECT_ENTRIES = (
    "Pulumi.yaml",
    "__main__.py",
    "components",
    "dynamic_providers",
    "service_clients",
    "cipp_hardening",
    "policy",
    "examples",
    "requirements.txt",
    ".venv",
)
NO_ENGINE = (
    "no Pulumi CLI: run `make engine` (builds it into .tools/bin from the Go module proxy; needs Go 1.26+) "
    "or put a Pulumi CLI on PATH"
)


def find_cli() -> Path | None:
    """.tools/bin/pulumi when `make engine` built it, else a `pulumi` on PATH, else None."""
    built = ENGINE_BIN / "pulumi"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("pulumi")
    return Path(found) if found else None


class PulumiFailed(AssertionError):
    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"`pulumi {' '.join(args)}` exited {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
        self.result = result


@dataclass
class PulumiProject:
    cli: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, cli: Path, tmp: Path, env: Mapping[str, str], *, standin_azuread: bool = False) -> PulumiProject:
        project, home, state = tmp / "project", tmp / "pulumi-home", tmp / "state"
        for folder in (project, home, state):
            folder.mkdir(parents=True, exist_ok=True)
        for entry in PROJECT_ENTRIES:
            (project / entry).symlink_to(ROOT / entry)
        path = [str(cli.parent), os.environ.get("PATH", "/usr/bin:/bin")]
        full_env = {
            **_base_environment(),
            "PATH": os.pathsep.join(path),
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "NO_COLOR": "1",
            "CIPP_STANDIN_PYTHON": str(ROOT / ".venv" / "bin" / "python"),
            **env,
        }
        created = cls(cli, project, full_env)
        if standin_azuread:
            created.install_standin_azuread(tmp / "standin-azuread")
        return created

    def install_standin_azuread(self, folder: Path) -> None:
        """The test-only azuread stand-in, in this sandbox's plugin cache under the version the installed
        pulumi-azuread SDK names: where `pulumi plugin install` puts the real plugin. Found on PATH instead,
        the CLI warns "using pulumi-resource-azuread from $PATH" on every lookup of it, in every stack of a
        project whose virtualenv holds pulumi-azuread (docs/engine.md, "What the CLI prints")."""
        folder.mkdir(parents=True, exist_ok=True)
        launcher = folder / "pulumi-resource-azuread"
        # exec keeps the pid: the stand-in's die-with-parent still sees the CLI as its parent
        launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(str(STANDIN_BIN / launcher.name))} "$@"\n')
        launcher.chmod(0o755)
        self.run("plugin", "install", "resource", "azuread", azuread_plugin_version(), "--file", str(launcher))

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.cli), *args, "--non-interactive"] if _takes_non_interactive(args) else [str(self.cli), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        if check and result.returncode != 0:
            raise PulumiFailed(args, result)
        return result

    def stack_init(self, stack: str) -> None:
        self.run("stack", "init", stack)

    def config_set(self, stack: str, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        flags = [*(["--secret"] if secret else []), *(["--path"] if path else [])]
        # The value goes through stdin, as a user pastes a secret: never on a command line.
        self.run("config", "set", key, *flags, "--stack", stack, input_text=value)

    def config_set_object(self, stack: str, key: str, value: Any) -> None:
        """An object or list value, the way `pulumi config set --path` builds it, leaf by leaf."""
        for leaf_path, leaf in _leaves(key, value):
            self.run("config", "set", "--path", leaf_path, _scalar(leaf), "--stack", stack)

    def outputs(self, stack: str) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "output", "--json", "--show-secrets", "--stack", stack).stdout))

    def export(self, stack: str) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "export", "--stack", stack).stdout))

    def preview_json(self, stack: str, *extra: str) -> dict[str, Any]:
        result = self.run("preview", "--json", "--stack", stack, *extra)
        return dict(json.loads(result.stdout))


def azuread_plugin_version() -> str:
    """The provider version the installed pulumi-azuread SDK asks the engine for (its pulumi-plugin.json)."""
    spec = importlib.util.find_spec("pulumi_azuread")
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        raise RuntimeError("pulumi-azuread is not installed in this environment (requirements.txt)")
    return str(json.loads((Path(folders[0]) / "pulumi-plugin.json").read_text())["version"])


def _takes_non_interactive(args: Sequence[str]) -> bool:
    return bool(args) and args[0] in {"preview", "up", "refresh", "destroy"}


def _base_environment() -> dict[str, str]:
    """The caller's environment minus anything that would point the CLI or Azure clients elsewhere."""
    dropped_prefixes = ("PULUMI_", "ARM_", "AZURE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped_prefixes)}


def _leaves(key: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [leaf for k, v in value.items() for leaf in _leaves(f"{key}.{k}", v)]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(f"{key}[{i}]", v)]
    return [(key, value)]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def operation_counts(preview: Mapping[str, Any]) -> dict[str, int]:
    """`pulumi preview --json`'s changeSummary: {"create": n, "same": m, ...}."""
    return {str(k): int(v) for k, v in (preview.get("changeSummary") or {}).items()}


def steps_of(preview: Mapping[str, Any], op: str, type_token: str | None = None) -> list[Mapping[str, Any]]:
    return [
        step
        for step in preview.get("steps") or []
        if step.get("op") == op
        and (type_token is None or step.get("newState", step.get("oldState", {})).get("type") == type_token)
    ]


def state_reveals(exported: Mapping[str, Any], secret: str) -> bool:
    """Whether `pulumi stack export` holds `secret` in clear text, also inside the pickled dynamic providers."""
    text = json.dumps(exported)
    if secret in text:
        return True
    for resource in exported.get("deployment", {}).get("resources", []):
        for props in (resource.get("inputs") or {}, resource.get("outputs") or {}):
            blob = props.get("__provider")
            if isinstance(blob, str):
                try:
                    if secret.encode() in base64.b64decode(blob):
                        return True
                except (binascii.Error, ValueError):
                    continue
    return False


@dataclass(frozen=True)
class Process:
    """A process seen in /proc: its start time tells it from a later process that reuses the pid."""

    pid: int
    started: int
    command: str

    def alive(self) -> bool:
        """Running (a zombie has exited: it only waits for its new parent to reap it)."""
        stat = _proc_stat(self.pid)
        return stat is not None and stat[2] == self.started and stat[1] != "Z"


def descendants(pid: int) -> list[Process]:
    """Every process below `pid` in the process tree, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
    found: list[Process] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        stat = _proc_stat(child)
        if stat is None:
            continue
        found.append(Process(child, stat[2], _cmdline(child)))
        todo.extend(children.get(child, []))
    return found


def _proc_stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) from /proc/PID/stat, or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name in parentheses may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
