"""A toy dynamic provider used only by the provider-host harness tests (tests/test_provider_host.py).

Each ToyRecord is one JSON file ``<state dir>/<name>.json``. The state directory comes from the stack
config key ``cipp-hardening:toyStateDir`` (read in ``configure()``, docs/pulumi.md §2.1) or,
failing that, the ``TOY_STATE_DIR`` environment variable. The module must stay import-side-effect
free: the provider host imports it by reference when it unpickles ``__provider`` (notes §2.2).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

STATE_DIR_KEY = "cipp-hardening:toyStateDir"
STATE_DIR_ENV = "TOY_STATE_DIR"
BOOM = "boom"  # a `value` the provider refuses, to exercise error propagation
_FIELDS = ("name", "value", "secret")


class ToyProvider(ResourceProvider):
    # Set per host process by configure(); a class attribute so nothing lands in the pickled blob.
    state_dir: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self.state_dir = req.config.get(STATE_DIR_KEY) or os.environ.get(STATE_DIR_ENV)

    def _path(self, name: str) -> Path:
        if not self.state_dir:
            raise RuntimeError(f"toy provider: no state dir (set {STATE_DIR_KEY} or {STATE_DIR_ENV})")
        return Path(self.state_dir) / f"{name}.json"

    def _write(self, props: dict[str, Any], version: int) -> dict[str, Any]:
        if props.get("value") == BOOM:
            raise ValueError(f"toy provider refuses to write value {BOOM!r} for {props['name']!r}")
        record = {k: props[k] for k in _FIELDS if k in props}
        record["version"] = version
        path = self._path(props["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, sort_keys=True))
        return {**record, "path": str(path)}

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        name = news.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            failures.append(CheckFailure("name", "name must be a non-empty string without '/'"))
        return CheckResult(dict(news), failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _FIELDS if olds.get(k) != news.get(k)]
        if "name" in changed:
            # The id is the file name: the old record must go before the new one is written.
            return DiffResult(changes=True, replaces=["name"], delete_before_replace=True)
        return DiffResult(changes=bool(changed), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        print(f"toy: created {props['name']}", file=sys.stderr)  # what the harness's stderr tests look for
        return CreateResult(props["name"], self._write(props, 1))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = self._path(id_)
        if not path.exists():
            return ReadResult(None, {})  # gone
        return ReadResult(id_, {**json.loads(path.read_text()), "path": str(path)})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._write(news, int(olds.get("version") or 0) + 1))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        self._path(id_).unlink(missing_ok=True)


class ToyNoDiffProvider(ToyProvider):
    """Same CRUD, but no diff(): the host answers DIFF_UNKNOWN and the engine compares inputs itself."""

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        return DiffResult()


def _props(name: str, value: pulumi.Input[Any], secret: pulumi.Input[str] | None) -> dict[str, Any]:
    # Output-only slots are declared as None so the Python object gets the attributes (notes §1.3).
    return {"name": name, "value": value, "secret": secret, "version": None, "path": None}


class ToyRecord(Resource, module="toy", name="ToyRecord"):
    value: pulumi.Output[Any]
    version: pulumi.Output[int]
    path: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        value: pulumi.Input[Any],
        *,
        secret: pulumi.Input[str] | None = None,
        record_name: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(ToyProvider(), resource_name, _props(record_name or resource_name, value, secret), opts)


class ToyRecordNoDiff(Resource, module="toy", name="ToyRecordNoDiff"):
    value: pulumi.Output[Any]
    version: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        value: pulumi.Input[Any],
        *,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(ToyNoDiffProvider(), resource_name, _props(resource_name, value, None), opts)
