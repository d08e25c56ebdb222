"""Run the Pulumi program with no engine: a recording mock runtime (the base of `make plan`).

Every RegisterResource is recorded (type, name, parent, resolved inputs); computed ids are
deterministic placeholders so the rendered Graph bodies can refer to each other. This is not a diff
against state: it shows what the program declares (docs/pulumi.md §1.5).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import runpy
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.settings
from pulumi.runtime.mocks import MockMonitor

from cipp_hardening import run_mode
from cipp_hardening.arm_render import resource_path
from cipp_hardening.directory_names import GET_GROUP, GET_USER, answer_invoke

# The wire sentinel of a Pulumi secret (docs/pulumi.md §1.3), not a credential.
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105
_PLACEHOLDER_NS = uuid.UUID("6f1c7f40-32d6-4b8e-9a59-7d0f8a3d6c10")

KNOWN_AFTER_APPLY = "(known after apply)"
NAMED_LOCATION = "azuread:index/namedLocation:NamedLocation"
CA_POLICY = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"
GET_SERVICE_PRINCIPAL = "azuread:index/getServicePrincipal:getServicePrincipal"


def placeholder_guid(key: str) -> str:
    """A stable stand-in for an object id Graph assigns at create time."""
    return str(uuid.uuid5(_PLACEHOLDER_NS, key))


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str | None
    dependencies: tuple[str, ...] = ()  # URNs it depends on (dependsOn and property dependencies)


@dataclass
class OfflineRun:
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    logs: list[tuple[str, str]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def messages(self, level: str) -> list[str]:
        return [message for lvl, message in self.logs if lvl == level]


class OfflineRunError(RuntimeError):
    """The program failed; `run` holds what it logged (config problems arrive as error logs)."""

    def __init__(self, run: OfflineRun, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.run = run
        self.cause = cause


class _Mocks(pulumi.runtime.Mocks):
    def __init__(
        self,
        outputs_for: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None,
        logs: list[tuple[str, str]] | None = None,
    ) -> None:
        self.outputs_for = outputs_for
        self.urns: dict[str, str] = {}
        self.logs = logs if logs is not None else []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        object_id = placeholder_guid(f"{args.typ}::{args.name}")
        state = dict(args.inputs)
        if args.typ == NAMED_LOCATION:
            state["objectId"] = object_id
            return f"/identity/conditionalAccess/namedLocations/{object_id}", state
        if args.typ == CA_POLICY:
            state["objectId"] = object_id
            return f"/identity/conditionalAccess/policies/{object_id}", state
        if self.outputs_for is not None:
            state.update(self.outputs_for(args.typ, args.name, state))
        # An azure-native resource's id is its ARM path: what another resource's body refers to.
        return resource_path(args.typ, state) or f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        if args.token == GET_SERVICE_PRINCIPAL:
            return self._service_principal(str(args.args.get("clientId") or ""))
        if args.token in (GET_USER, GET_GROUP):
            # Names in the config: answered from the directory snapshot, or a DirectoryLookupError that says
            # the name needs one (cipp_hardening/directory_names.py); never a made-up id.
            return answer_invoke(args.token, args.args), []
        raise NotImplementedError(f"the offline run has no answer for invoke {args.token}")

    def _service_principal(self, app_id: str) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        """The read-only lookup of a service principal by application id: from the snapshot, or a
        deterministic placeholder, and the plan says which (docs/workload-identity.md)."""
        from cipp_hardening.inventory import (
            SERVICE_PRINCIPAL_SNAPSHOT_ENV,
            load_service_principals,
            service_principal_snapshot_path,
        )

        snapshot = service_principal_snapshot_path()
        if snapshot is None:
            self.logs.append(
                (
                    "warning",
                    f"offline plan: the service principal of application {app_id} is a placeholder, not read "
                    f"from the tenant; set {SERVICE_PRINCIPAL_SNAPSHOT_ENV} to a saved GET /v1.0/servicePrincipals "
                    "body to use the real object ids. `pulumi preview`/`up` always look them up",
                )
            )
            object_id = placeholder_guid(f"servicePrincipal::{app_id.lower()}")
            return {"objectId": object_id, "id": f"/servicePrincipals/{object_id}", "clientId": app_id}, []
        found = load_service_principals(snapshot).get(app_id.lower())
        if found is None:
            # The provider's own reason (terraform-provider-azuread v3.9 servicePrincipalDataSourceRead: summary
            # and detail, which name nothing), then which application and which snapshot.
            reason = (
                f"No service principal found: no service principal found (application ID {app_id!r}, in {snapshot})"
            )
            return {}, [("clientId", reason)]
        self.logs.append(
            ("warning", f"offline plan: the service principal of {app_id} read from the snapshot {snapshot}")
        )
        return {
            "objectId": found["id"],
            "id": f"/servicePrincipals/{found['id']}",  # the provider's id (servicePrincipalDataSourceRead)
            "clientId": found["appId"],
            "displayName": found.get("displayName"),
            "applicationTenantId": found.get("appOwnerOrganizationId"),
        }, []


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.parents: dict[str, str | None] = {}
        self.custom: dict[str, bool] = {}
        self.dependencies: dict[str, tuple[str, ...]] = {}

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        self.parents[urn] = request.parent or None
        self.custom[urn] = bool(request.custom)
        self.dependencies[urn] = tuple(request.dependencies)
        return super().RegisterResource(request)


class _ListLogger(logging.Handler):
    def __init__(self, logs: list[tuple[str, str]]) -> None:
        super().__init__(level=logging.INFO)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append((record.levelname.lower(), record.getMessage()))


def stack_file_config(stack_file: Path, project: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Pulumi.<stack>.yaml → the {"ns:key": str} map the language host hands the program.

    Objects and lists become JSON text (what `Config.require_object` parses); `secure:` values cannot be
    decrypted without the CLI, so they are left out unless an override supplies them.
    """
    import json

    from cipp_hardening.yamlfile import read_yaml

    raw = (read_yaml(stack_file) or {}).get("config") or {}
    config: dict[str, str] = {}
    for key, value in {**raw, **(overrides or {})}.items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            continue
        full_key = key if ":" in key else f"{project}:{key}"
        config[full_key] = value if isinstance(value, str) else json.dumps(value)
    return config


@contextlib.contextmanager
def running_offline() -> Iterator[None]:
    """The program runs offline inside this block (cipp_hardening/run_mode.py): `run_program` enters it, and so
    do the runs under mocks this module does not make itself (the demo's, the benchmarks', the tests')."""
    with run_mode.marked_offline():
        yield


def run_program(
    program: Path | Callable[[], object],
    config: Mapping[str, str],
    *,
    project: str = "cipp-hardening",
    stack: str = "prod",
    secret_keys: tuple[str, ...] = (),
    preview: bool = True,
    outputs_for: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
) -> OfflineRun:
    """Run the program under recording mocks; on failure raise OfflineRunError carrying the logs."""
    run = OfflineRun()
    logger = logging.getLogger(f"cipp-hardening.offline.{id(run)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(_ListLogger(run.logs))
    mocks = _Mocks(outputs_for, run.logs)
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.settings.ROOT.set(None)  # a fresh root stack per run, even in one process
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, logger=logger, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), secret_keys=list(secret_keys))
    exported: dict[str, Any] = {}

    def body() -> Any:
        if callable(program):
            program()
        else:
            runpy.run_path(str(program), run_name="__main__")
        root = pulumi.runtime.settings.get_root_resource()
        outputs: dict[str, Any] = getattr(root, "outputs", None) or {}
        # One apply per export: an unknown one (computed at apply time) must not hide the others.
        resolved = [
            pulumi.Output.from_input(v).apply(functools.partial(exported.__setitem__, k)) for k, v in outputs.items()
        ]
        return pulumi.Output.all(*resolved) if resolved else None

    try:
        with running_offline():
            pulumi.runtime.test(body)()
    except Exception as exc:
        raise OfflineRunError(run, exc) from exc
    exports = getattr(pulumi.runtime.settings.get_root_resource(), "outputs", None) or {}
    run.outputs = {k: exported.get(k, KNOWN_AFTER_APPLY) for k in exports}
    for urn, registration in monitor.get_registered_resources().items():
        type_, name = urn.split("::")[-2].split("$")[-1], urn.split("::")[-1]
        run.resources.append(
            PlannedResource(
                urn=urn,
                type=type_,
                name=name,
                parent=monitor.parents.get(urn),
                custom=monitor.custom.get(urn, True),
                inputs=_shown(dict(registration.state)),
                outputs=_shown(dict(registration.state)),
                id=registration.id,
                dependencies=monitor.dependencies.get(urn, ()),
            )
        )
    return run


def _shown(value: Any) -> Any:
    """Values computed at apply time, also inside lists and objects (another resource's output), as the plan
    prints them."""
    if isinstance(value, pulumi.output.Unknown):
        return KNOWN_AFTER_APPLY
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def redact_secrets(value: Any) -> Any:
    """Replace every Pulumi secret (wire sentinel) with "[secret]", recursively."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return "[secret]"
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_secrets(v) for v in value]
    return value
