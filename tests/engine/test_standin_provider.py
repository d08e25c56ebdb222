"""The test-only azuread stand-in plugin, launched like the engine launches plugins and driven over gRPC.

It runs through its launcher script (tools/standin/pulumi-resource-azuread), against the
loopback Graph emulator, with the MSP stack's resources as the offline run renders them
(tests/helpers.py). No Pulumi CLI is needed: this suite checks the stand-in itself, which the CLI tests rely on.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import typing
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pulumi_azuread
import pytest
from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi_azuread import _inputs, conditional_access_policy, named_location

from emulators.clients import GRAPH_ROLES, GraphApp, graph_client_env
from emulators.graph import GraphEmulator
from emulators.provider_host import from_struct, secret, to_struct
from tests.helpers import msp_raw, run_main
from tools.standin import azuread_standin as standin

LAUNCHER = Path(standin.__file__).resolve().parent / "pulumi-resource-azuread"
UNKNOWN = standin.UNKNOWN
NL, CAP = standin.NAMED_LOCATION.token, standin.POLICY.token
LOCATION, TECHNICIANS, SERVICE_ACCOUNT = (
    "trusted-location-named-location",
    "technician-access-policy",
    "service-account-policy",
)
Kind = provider_pb2.PropertyDiff.Kind
STARTUP_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------------------------------
# The plugin process, as the engine runs it
# ---------------------------------------------------------------------------------------------------


class StandIn:
    """``pulumi-resource-azuread <engine address>``: port from the first stdout line, SIGINT to stop."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [str(LAUNCHER), "127.0.0.1:0", "--logtostderr"],  # the engine address, then an engine flag
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
        )
        self._first_line: queue.Queue[bytes] = queue.Queue()
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            line = self._first_line.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise AssertionError(f"the stand-in printed no port:\n{self.stderr}") from None
        self.first_line = line.decode()
        self.port = int(self.first_line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=STARTUP_TIMEOUT_S)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        first = True
        for raw in iter(self.proc.stdout.readline, b""):
            if first:
                self._first_line.put(raw)
                first = False
            else:
                self._stdout.append(raw)
        if first:
            self._first_line.put(b"")

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self._stderr.append(raw)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    @property
    def stdout_after_port(self) -> str:
        return b"".join(self._stdout).decode(errors="replace")

    def close(self) -> int:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    # -- RPCs in plain dicts --------------------------------------------------------------------------

    def configure(self, app: GraphApp) -> Any:
        return self.stub.Configure(
            provider_pb2.ConfigureRequest(
                variables={"azuread:config:tenantId": app.tenant, "azuread:config:clientId": app.client_id},
                args=to_struct({"tenantId": app.tenant, "clientId": app.client_id, "clientSecret": secret(app.secret)}),
                acceptSecrets=True,
                acceptResources=True,
            )
        )

    def check(self, type_: str, name: str, news: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        response = self.stub.Check(
            provider_pb2.CheckRequest(urn=urn(type_, name), type=type_, name=name, news=to_struct(news))
        )
        return from_struct(response.inputs), [(f.property, f.reason) for f in response.failures]

    def diff(self, type_: str, name: str, resource_id: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        return self.stub.Diff(
            provider_pb2.DiffRequest(
                id=resource_id, urn=urn(type_, name), type=type_, name=name, olds=to_struct(olds), news=to_struct(news)
            )
        )

    def create(
        self, type_: str, name: str, props: Mapping[str, Any], *, preview: bool = False
    ) -> tuple[str, dict[str, Any]]:
        response = self.stub.Create(
            provider_pb2.CreateRequest(
                urn=urn(type_, name), type=type_, name=name, properties=to_struct(props), preview=preview
            )
        )
        return response.id, from_struct(response.properties)

    def read(self, type_: str, name: str, resource_id: str, props: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        return self.stub.Read(
            provider_pb2.ReadRequest(
                id=resource_id,
                urn=urn(type_, name),
                type=type_,
                name=name,
                properties=to_struct(props),
                inputs=to_struct(inputs),
            )
        )

    def update(
        self,
        type_: str,
        name: str,
        resource_id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        preview: bool = False,
    ) -> dict[str, Any]:
        response = self.stub.Update(
            provider_pb2.UpdateRequest(
                id=resource_id,
                urn=urn(type_, name),
                type=type_,
                name=name,
                olds=to_struct(olds),
                news=to_struct(news),
                preview=preview,
            )
        )
        return from_struct(response.properties)

    def delete(self, type_: str, name: str, resource_id: str, props: Mapping[str, Any]) -> None:
        self.stub.Delete(
            provider_pb2.DeleteRequest(
                id=resource_id, urn=urn(type_, name), type=type_, name=name, properties=to_struct(props)
            )
        )


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:prod::cipp-hardening::{type_}::{name}"


@functools.cache
def _msp_inputs() -> dict[str, dict[str, Any]]:
    """The example MSP stack's azuread inputs as the engine sends them (``objectId`` is an output, never sent)."""
    run = run_main(msp_raw())
    return {
        r.name: {k: v for k, v in r.inputs.items() if k != "objectId"}
        for r in run.resources
        if r.type.startswith("azuread:")
    }


def msp_inputs(name: str, *, location_id: str | None = None) -> dict[str, Any]:
    inputs = copy.deepcopy(_msp_inputs()[name])
    if name == TECHNICIANS and location_id is not None:
        inputs["conditions"]["locations"]["excludedLocations"] = [location_id]
    return inputs


@pytest.fixture
def standin_env(graph_emulator: GraphEmulator, graph_app: GraphApp) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARM_", "AZURE_", "PULUMI_"))}
    env |= graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, graph_app.client_id, graph_app.secret)
    # Credentials come from the provider configuration, as `pulumi config set azuread:clientSecret --secret` gives them.
    del env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]
    env |= {"CIPP_STANDIN_PYTHON": sys.executable, standin.GRAPH_URL_ENV: graph_emulator.url}
    env[standin.WAIT_SCALE_ENV] = "0.001"  # upstream's 5 s between confirming reads, as 5 ms
    return env


@pytest.fixture
def plugin(standin_env: dict[str, str], graph_app: GraphApp) -> Iterator[StandIn]:
    host = StandIn(standin_env)
    try:
        yield host
    finally:
        host.close()
    assert graph_app.secret not in host.stderr + host.stdout_after_port, "the stand-in logged the client secret"


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------------
# The schema table and the plugin version against the installed SDK
# ---------------------------------------------------------------------------------------------------


def _sdk_fields(cls: type) -> dict[str, Any]:
    """{wire name: (kind, required, nested)} from an SDK *Args class's pulumi getters."""
    fields: dict[str, Any] = {}
    for _, member in inspect.getmembers(cls, lambda m: isinstance(m, property)):
        name = getattr(member.fget, "_pulumi_name", None)
        if name is None:
            continue
        options = typing.get_args(member.fget.__annotations__["return"])
        kind, nested = _sdk_kind(options[0])
        fields[name] = (kind, type(None) not in options, nested)
    return fields


def _sdk_kind(annotation: Any) -> tuple[str, Any]:
    if isinstance(annotation, typing.ForwardRef):
        return "block", _sdk_fields(getattr(_inputs, annotation.__forward_arg__))
    if typing.get_origin(annotation) is not None and typing.get_origin(annotation).__name__ == "Sequence":
        element = typing.get_args(typing.get_args(annotation)[0])[0]
        if isinstance(element, typing.ForwardRef):
            return "blocks", _sdk_fields(getattr(_inputs, element.__forward_arg__))
        return "strings", None
    return {str: "string", bool: "bool", int: "int"}[annotation], None


def _standin_fields(fields: Mapping[str, standin.Prop]) -> dict[str, Any]:
    return {
        name: (prop.kind, prop.required, _standin_fields(prop.fields) if prop.fields else None)
        for name, prop in fields.items()
        if not prop.output
    }


@pytest.mark.parametrize(
    ("kind", "args_class", "state_class"),
    [
        (standin.NAMED_LOCATION, pulumi_azuread.NamedLocationArgs, named_location._NamedLocationState),
        (
            standin.POLICY,
            pulumi_azuread.ConditionalAccessPolicyArgs,
            conditional_access_policy._ConditionalAccessPolicyState,
        ),
    ],
)
def test_schema_table_matches_the_installed_sdk(
    kind: standin.ResourceKind, args_class: type, state_class: type
) -> None:
    assert _standin_fields(kind.fields) == _sdk_fields(args_class)
    outputs_only = set(_sdk_fields(state_class)) - set(_sdk_fields(args_class))
    assert outputs_only == {name for name, prop in kind.fields.items() if prop.output} == {"objectId"}


def test_plugin_version_is_the_sdk_plugin_version() -> None:
    plugin_json = Path(pulumi_azuread.__file__).with_name("pulumi-plugin.json")
    assert json.loads(plugin_json.read_text())["version"] == standin.PLUGIN_VERSION


# ---------------------------------------------------------------------------------------------------
# The plugin protocol
# ---------------------------------------------------------------------------------------------------


def test_launcher_starts_a_plugin_that_prints_only_its_port(plugin: StandIn, graph_app: GraphApp) -> None:
    assert LAUNCHER.stat().st_mode & 0o111
    assert plugin.first_line == f"{plugin.port}\n"
    assert plugin.stub.GetPluginInfo(empty_pb2.Empty()).version == "6.11.1"
    handshake = plugin.stub.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address="127.0.0.1:0"))
    assert handshake.accept_secrets
    assert handshake.accept_resources

    news = to_struct({"tenantId": graph_app.tenant, "clientSecret": secret("not-logged")})
    assert from_struct(plugin.stub.CheckConfig(provider_pb2.CheckRequest(news=news)).inputs) == from_struct(news)
    assert plugin.stub.DiffConfig(provider_pb2.DiffRequest(news=news)).changes == provider_pb2.DiffResponse.DIFF_NONE
    configured = plugin.configure(graph_app)
    assert (configured.acceptSecrets, configured.supportsPreview, configured.acceptResources) == (True, True, True)

    assert plugin.close() == 0  # SIGINT: a clean stop
    assert plugin.stdout_after_port == ""


def test_check_passes_the_program_inputs_through_and_names_bad_properties(plugin: StandIn) -> None:
    for type_, name in ((NL, LOCATION), (CAP, TECHNICIANS), (CAP, SERVICE_ACCOUNT)):
        inputs = msp_inputs(name, location_id=UNKNOWN)  # a first preview: the location's id is not known yet
        checked, failures = plugin.check(type_, name, inputs)
        assert failures == []
        assert checked == inputs

    # SDK v2 skips a block holding an unknown value (isWhollyKnown): a known location id, so conditions is judged.
    technicians = msp_inputs(TECHNICIANS, location_id=str(uuid.uuid4()))
    technicians["conditions"]["users"]["includedUserz"] = ["x"]
    technicians["objectId"] = "set-by-hand"
    del technicians["state"]
    technicians["conditions"]["clientAppTypes"] = ["all", "legacy"]
    _, failures = plugin.check(CAP, TECHNICIANS, technicians)
    # SDK v2's diagnostics as the bridge words them (no property: the path is in the reason).
    where = "Examine values at 'technician-access-policy"
    assert failures == [
        (
            "",
            'expected conditions.0.client_app_types.1 to be one of ["all" "browser" "easSupported" '
            '"exchangeActiveSync" "mobileAppsAndDesktopClients" "other"], got legacy. '
            f"{where}.conditions.clientAppTypes[1]'.",
        ),
        ("", f"Invalid or unknown key. {where}.conditions.users.includedUserz'."),
        (
            "",
            'Value for unconfigurable attribute. Can\'t configure a value for "object_id": its value will be decided '
            f"automatically based on the result of applying this configuration.. {where}.objectId'.",
        ),
        (
            "",
            'Missing required argument. The argument "state" is required, but no definition was found.. '
            f"{where}.state'.",
        ),
    ]

    _, failures = plugin.check(NL, LOCATION, {"displayName": "no block"})
    assert failures == [
        (
            "",
            f'Invalid combination of arguments. "{block}": one of `country,ip` must be specified. '
            f"Examine values at '{LOCATION}.{block}'.",
        )
        for block in ("country", "ip")
    ]

    error = rpc_error(plugin.check, "azuread:index/user:User", "someone", {"displayName": "x"})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "azuread:index/user:User" in error.details()


def test_preview_create_reports_unknowns_and_sends_nothing_to_graph(
    plugin: StandIn, graph_app: GraphApp, graph_emulator: GraphEmulator
) -> None:
    plugin.configure(graph_app)
    graph_emulator.clear_log()

    location_id, location = plugin.create(NL, LOCATION, msp_inputs(LOCATION), preview=True)
    assert location_id == ""
    assert location == {
        "id": UNKNOWN,
        "country": None,
        "displayName": "Trusted - MSP Office",
        "ip": {"ipRanges": ["203.0.113.0/24", "2001:db8::/32"], "trusted": True},
        "objectId": UNKNOWN,
    }

    _, technicians = plugin.create(CAP, TECHNICIANS, msp_inputs(TECHNICIANS, location_id=UNKNOWN), preview=True)
    assert technicians["id"] == technicians["objectId"] == UNKNOWN
    conditions = technicians["conditions"]
    assert conditions["insiderRiskLevels"] == UNKNOWN  # Optional+Computed and unset
    assert conditions["servicePrincipalRiskLevels"] is None  # Optional only: no value, not unknown
    assert conditions["locations"] == {"excludedLocations": [UNKNOWN], "includedLocations": ["All"]}
    assert technicians["sessionControls"] is None

    _, service_account = plugin.create(CAP, SERVICE_ACCOUNT, msp_inputs(SERVICE_ACCOUNT), preview=True)
    assert service_account["sessionControls"]["signInFrequencyInterval"] == "everyTime"  # set: known
    time_based = msp_inputs(SERVICE_ACCOUNT)
    time_based["sessionControls"] = {"signInFrequency": 4, "signInFrequencyPeriod": "hours"}
    _, planned = plugin.create(CAP, SERVICE_ACCOUNT, time_based, preview=True)
    assert planned["sessionControls"]["signInFrequencyInterval"] == UNKNOWN
    assert planned["sessionControls"]["signInFrequencyAuthenticationType"] == UNKNOWN
    assert planned["sessionControls"]["signInFrequency"] == 4

    assert graph_emulator.requests() == []  # not even a token request


def test_create_read_diff_update_delete_against_the_emulator(
    plugin: StandIn, graph_app: GraphApp, graph_emulator: GraphEmulator
) -> None:
    plugin.configure(graph_app)
    tenant = graph_app.tenant

    # -- create: the location, then the two policies (the technicians' one excludes the location) ---------
    location_inputs = msp_inputs(LOCATION)
    location_id, location = plugin.create(NL, LOCATION, location_inputs)
    object_id = location["objectId"]
    assert location_id == location["id"] == f"/identity/conditionalAccess/namedLocations/{object_id}"
    assert location == {
        "id": location_id,
        "country": None,
        "displayName": "Trusted - MSP Office",
        "ip": {"ipRanges": ["203.0.113.0/24", "2001:db8::/32"], "trusted": True},
        "objectId": object_id,
    }
    assert graph_emulator.get_named_location(tenant, object_id)["isTrusted"] is True

    created: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for name in (TECHNICIANS, SERVICE_ACCOUNT):
        inputs = msp_inputs(name, location_id=object_id)
        assert plugin.check(CAP, name, inputs)[1] == []
        resource_id, outputs = plugin.create(CAP, name, inputs)
        assert resource_id == f"/identity/conditionalAccess/policies/{outputs['objectId']}"
        assert set(outputs) == {
            "id",
            "conditions",
            "displayName",
            "grantControls",
            "objectId",
            "sessionControls",
            "state",
        }
        created[name] = (resource_id, inputs, outputs)
    technicians_id, technicians_in, technicians_out = created[TECHNICIANS]
    assert technicians_out["conditions"]["locations"] == {
        "excludedLocations": [object_id],
        "includedLocations": ["All"],
    }
    assert technicians_out["conditions"]["insiderRiskLevels"] == ""  # filled from Graph
    assert technicians_out["sessionControls"] is None
    assert created[SERVICE_ACCOUNT][2]["sessionControls"]["signInFrequencyInterval"] == "everyTime"
    assert (
        created[SERVICE_ACCOUNT][2]["sessionControls"]["signInFrequencyAuthenticationType"]
        == "primaryAndSecondaryAuthentication"
    )
    policy = graph_emulator.get_policy(tenant, technicians_out["objectId"])
    assert policy["conditions"]["users"]["excludeUsers"] == technicians_in["conditions"]["users"]["excludedUsers"]

    # -- read and diff: what was created is what the program declares --------------------------------
    for type_, name, resource_id, inputs, outputs in (
        (NL, LOCATION, location_id, location_inputs, location),
        *((CAP, name, rid, ins, outs) for name, (rid, ins, outs) in created.items()),
    ):
        read = plugin.read(type_, name, resource_id, outputs, inputs)
        assert read.id == resource_id
        assert from_struct(read.properties) == outputs
        assert from_struct(read.inputs) == inputs
        diff = plugin.diff(type_, name, resource_id, outputs, inputs)
        assert diff.changes == provider_pb2.DiffResponse.DIFF_NONE, dict(diff.detailedDiff)
        assert list(diff.diffs) == list(diff.replaces) == []

    more_excluded = copy.deepcopy(technicians_in)
    more_excluded["conditions"]["users"]["excludedUsers"].append(str(uuid.uuid4()))
    diff = plugin.diff(CAP, TECHNICIANS, technicians_id, technicians_out, more_excluded)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(diff.diffs) == ["conditions"]
    # The bridge's detailed diff is per element (detailed_diff.go, makeListAttributeDiff): one user added at [3].
    assert {k: v.kind for k, v in diff.detailedDiff.items()} == {"conditions.users.excludedUsers[3]": Kind.ADD}
    assert list(diff.replaces) == []

    new_ranges = copy.deepcopy(location_inputs)
    new_ranges["ip"]["ipRanges"].append("198.51.100.0/24")
    diff = plugin.diff(NL, LOCATION, location_id, location, new_ranges)
    assert {k: v.kind for k, v in diff.detailedDiff.items()} == {"ip.ipRanges[2]": Kind.ADD}
    assert list(diff.replaces) == []  # ForceNew on the `ip` block fires only when the block comes or goes
    to_country = {"displayName": "Trusted - MSP Office", "country": {"countriesAndRegions": ["NL"]}}
    diff = plugin.diff(NL, LOCATION, location_id, location, to_country)
    assert list(diff.replaces) == ["ip", "country"]
    assert {k: v.kind for k, v in diff.detailedDiff.items()} == {"ip": Kind.DELETE_REPLACE, "country": Kind.ADD_REPLACE}

    # An unknown deep inside is reported where it is; an Optional+Computed value the program sets is compared.
    diff = plugin.diff(CAP, TECHNICIANS, technicians_id, technicians_out, msp_inputs(TECHNICIANS, location_id=UNKNOWN))
    assert {k: v.kind for k, v in diff.detailedDiff.items()} == {
        "conditions.locations.excludedLocations[0]": Kind.UPDATE
    }
    service_id, service_in, service_out = created[SERVICE_ACCOUNT]
    secondary = copy.deepcopy(service_in)
    secondary["sessionControls"]["signInFrequencyAuthenticationType"] = "secondaryAuthentication"
    diff = plugin.diff(CAP, SERVICE_ACCOUNT, service_id, service_out, secondary)
    assert {k: v.kind for k, v in diff.detailedDiff.items()} == {
        "sessionControls.signInFrequencyAuthenticationType": Kind.UPDATE
    }
    # A read without prior inputs (an import) recovers exactly what the program declares.
    assert from_struct(plugin.read(CAP, SERVICE_ACCOUNT, service_id, {}, {}).inputs) == service_in
    spelled_out_empties = copy.deepcopy(technicians_in)  # an import cannot know the program wrote `[]` for these
    assert spelled_out_empties["conditions"]["users"].pop("excludedGroups") == []
    assert spelled_out_empties["conditions"]["users"].pop("includedUsers") == []
    assert from_struct(plugin.read(CAP, TECHNICIANS, technicians_id, {}, {}).inputs) == spelled_out_empties

    # -- update: preview (no HTTP, computed values keep their prior value), then for real -------------
    graph_emulator.clear_log()
    planned = plugin.update(CAP, TECHNICIANS, technicians_id, technicians_out, more_excluded, preview=True)
    assert graph_emulator.requests() == []
    assert planned["id"] == technicians_id
    assert planned["objectId"] == technicians_out["objectId"]
    assert planned["conditions"]["insiderRiskLevels"] == ""
    assert planned["conditions"]["users"]["excludedUsers"] == more_excluded["conditions"]["users"]["excludedUsers"]

    updated = plugin.update(CAP, TECHNICIANS, technicians_id, technicians_out, more_excluded)
    assert updated["conditions"]["users"]["excludedUsers"] == more_excluded["conditions"]["users"]["excludedUsers"]
    stored = graph_emulator.get_policy(tenant, technicians_out["objectId"])
    assert stored["conditions"]["users"]["excludeUsers"] == more_excluded["conditions"]["users"]["excludedUsers"]
    # conditionalAccessPolicyResourceUpdate: five consecutive reads showing the name and state
    assert [r.method for r in graph_emulator.requests(path_contains="/v1.0/")] == ["PATCH"] + ["GET"] * 5

    graph_emulator.clear_log()
    moved = plugin.update(NL, LOCATION, location_id, location, new_ranges)
    assert moved["ip"]["ipRanges"] == new_ranges["ip"]["ipRanges"]
    (patch,) = graph_emulator.requests(method="PATCH")
    assert "displayName" not in patch.body  # upstream sends display_name only when it changed
    assert plugin.diff(NL, LOCATION, location_id, moved, new_ranges).changes == provider_pb2.DiffResponse.DIFF_NONE

    # -- delete: the policies, then the location (untrusted first), then a read finds nothing ---------
    for name, (resource_id, _, outputs) in created.items():
        plugin.delete(CAP, name, resource_id, updated if name == TECHNICIANS else outputs)
    graph_emulator.clear_log()
    plugin.delete(NL, LOCATION, location_id, moved)
    writes = [(r.method, r.body) for r in graph_emulator.requests() if r.method in ("PATCH", "DELETE")]
    assert writes[0] == (
        "PATCH",
        {"@odata.type": "#microsoft.graph.ipNamedLocation", "isTrusted": False, "ipRanges": patch.body["ipRanges"]},
    )
    assert writes[-1][0] == "DELETE"
    assert graph_emulator.policies(tenant) == []
    assert graph_emulator.named_locations(tenant) == []

    gone = plugin.read(NL, LOCATION, location_id, moved, location_inputs)
    assert gone.id == ""
    plugin.delete(NL, LOCATION, location_id, moved)  # already gone: not an error


def test_graph_errors_become_grpc_errors_naming_the_resource(
    plugin: StandIn, graph_app: GraphApp, graph_emulator: GraphEmulator
) -> None:
    plugin.configure(graph_app)
    inputs = msp_inputs(TECHNICIANS, location_id="All")
    envelope = {"error": {"code": "BadRequest", "message": "1007: the conditions are not valid"}}
    graph_emulator.inject(method="POST", path_contains="/conditionalAccess/policies", status=400, body=envelope)
    error = rpc_error(plugin.create, CAP, TECHNICIANS, inputs)
    assert error.code() == grpc.StatusCode.UNKNOWN
    for part in ("BadRequest", "1007: the conditions are not valid", CAP, TECHNICIANS):
        assert part in error.details()

    # Created, then unreadable: upstream's create wait fails before d.SetId, so nothing is recorded and the
    # policy is left in Graph (tests/test_standin_waits.py: a Read failing after the wait records the id).
    graph_emulator.inject(method="GET", path_contains="/conditionalAccess/policies/", status=403, times=None)
    error = rpc_error(plugin.create, CAP, TECHNICIANS, inputs)
    (policy,) = graph_emulator.policies(graph_app.tenant)
    assert f"Waiting for creation of /identity/conditionalAccess/policies/{policy['id']}: " in error.details()
    assert "retrieving resource: Graph error UnknownError" in error.details()
    assert "grpc-status-details-bin" not in dict(error.trailing_metadata())
    graph_emulator.clear_faults()

    error = rpc_error(plugin.create, NL, "country", {"displayName": "NL", "country": {"countriesAndRegions": ["NL"]}})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "country" in error.details()


def test_a_named_location_unreadable_after_its_create_is_left_out_of_state(
    plugin: StandIn, graph_app: GraphApp, graph_emulator: GraphEmulator
) -> None:
    # Upstream's namedLocationResourceCreate sets the id only after its consistency wait: no partial resource.
    plugin.configure(graph_app)
    graph_emulator.inject(method="GET", path_contains="/conditionalAccess/namedLocations/", status=403, times=None)
    error = rpc_error(plugin.create, NL, LOCATION, msp_inputs(LOCATION))
    assert "waiting for creation of /identity/conditionalAccess/namedLocations/" in error.details()
    assert "retrieving resource: Graph error" in error.details()
    assert "grpc-status-details-bin" not in dict(error.trailing_metadata())
    assert len(graph_emulator.named_locations(graph_app.tenant)) == 1, "the object exists in Graph, orphaned"


def test_an_import_read_takes_upstreams_path_form_and_answers_inputs(
    plugin: StandIn, graph_app: GraphApp, graph_emulator: GraphEmulator
) -> None:
    plugin.configure(graph_app)
    hand_made = {
        "displayName": "Office",
        "isTrusted": True,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
    }
    location_id = graph_emulator.add_named_location(
        graph_app.tenant, {"@odata.type": "#microsoft.graph.ipNamedLocation", **hand_made}
    )
    # The engine's ImportStep sends an empty state and no inputs (provider_plugin.go Read).
    error = rpc_error(
        plugin.stub.Read,
        provider_pb2.ReadRequest(
            id=location_id, urn=urn(NL, LOCATION), type=NL, name=LOCATION, properties=to_struct({})
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/identity/conditionalAccess/namedLocations/<object id>" in error.details()
    path = f"/identity/conditionalAccess/namedLocations/{location_id}"
    read = plugin.stub.Read(
        provider_pb2.ReadRequest(id=path, urn=urn(NL, LOCATION), type=NL, name=LOCATION, properties=to_struct({}))
    )
    assert read.id == path
    assert from_struct(read.inputs) == {
        "displayName": "Office",
        "ip": {"ipRanges": ["203.0.113.0/24"], "trusted": True},
    }


def test_arm_credentials_from_the_environment_and_a_read_of_a_missing_object(
    standin_env: dict[str, str], graph_app: GraphApp, graph_emulator: GraphEmulator
) -> None:
    env = standin_env | {"ARM_CLIENT_ID": graph_app.client_id, "ARM_CLIENT_SECRET": graph_app.secret}
    host = StandIn(env)
    try:
        host.stub.Configure(provider_pb2.ConfigureRequest(variables={"azuread:config:tenantId": graph_app.tenant}))
        missing = f"/identity/conditionalAccess/policies/{uuid.uuid4()}"
        read = host.read(CAP, "missing", missing, {}, {})
        assert read.id == ""
        (get,) = graph_emulator.requests(method="GET", path_contains="/v1.0/")
        assert get.status == 404
        assert get.tenant == graph_app.tenant.lower()
    finally:
        host.close()
    assert graph_app.secret not in host.stderr


# ---------------------------------------------------------------------------------------------------
# The functions the program calls (names, workload-identity service principals), read-only
# ---------------------------------------------------------------------------------------------------


def invoke(plugin: StandIn, token: str, args: Mapping[str, Any]) -> dict[str, Any]:
    response = plugin.stub.Invoke(provider_pb2.InvokeRequest(tok=token, args=to_struct(args)))
    return dict(from_struct(getattr(response, "return")))


SP_TOKEN, USER_TOKEN, GROUP_TOKEN = (f"azuread:index/{f}:{f}" for f in ("getServicePrincipal", "getUser", "getGroup"))


@pytest.fixture
def directory_reader(plugin: StandIn, graph_emulator: GraphEmulator, graph_app: GraphApp) -> StandIn:
    readers = (*GRAPH_ROLES, "Application.Read.All", "User.Read.All", "Group.Read.All")
    graph_emulator.register_app(graph_app.client_id, graph_app.secret, graph_app.tenant, graph_roles=readers)
    plugin.configure(graph_app)
    return plugin


def graph_reads(graph_emulator: GraphEmulator) -> list[tuple[str, dict[str, str], int]]:
    """(path, query, status) of every Graph GET the stand-in sent, in order (sign-in requests left out)."""
    graph = ("/v1.0/", "/beta/")
    return [(r.path, r.query, r.status) for r in graph_emulator.requests(method="GET") if r.path.startswith(graph)]


def test_the_lookups_send_upstreams_requests_and_answer_upstreams_ids(
    directory_reader: StandIn, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    app_id, user_id, group_id, owner_id = (str(uuid.uuid4()) for _ in range(4))
    sp_id = graph_emulator.add_service_principal(graph_app.tenant, app_id, "RMM integration")
    graph_emulator.add_user(graph_app.tenant, {"id": user_id, "userPrincipalName": "o'neil@msp.example"})
    graph_emulator.add_user(graph_app.tenant, {"id": owner_id, "userPrincipalName": "owner@msp.example"})
    graph_emulator.add_group(
        graph_app.tenant, {"id": group_id, "displayName": "Sales and CIPP"}, members=[user_id], owners=[owner_id]
    )
    before = len(graph_reads(graph_emulator))

    sp = invoke(directory_reader, SP_TOKEN, {"clientId": app_id})
    assert (sp["id"], sp["objectId"], sp["clientId"]) == (f"/servicePrincipals/{sp_id}", sp_id, app_id)
    assert sp["applicationTenantId"] == graph_app.tenant
    user = invoke(directory_reader, USER_TOKEN, {"userPrincipalName": "O'Neil@msp.example"})
    assert (user["id"], user["objectId"], user["managerId"]) == (f"/users/{user_id}", user_id, "")
    group = invoke(directory_reader, GROUP_TOKEN, {"displayName": "Sales and CIPP"})
    assert (group["id"], group["objectId"]) == (f"/groups/{group_id}", group_id)
    assert (group["members"], group["owners"]) == ([user_id], [owner_id])

    # terraform-provider-azuread v3.9.0's data sources: users by $filter (the quote doubled), then the user with
    # its $select and its manager (404: none); groups through beta (the name as given), members, owners; the
    # service principal by appId, then its samlMetadataUrl through beta.
    assert graph_reads(graph_emulator)[before:] == [
        ("/v1.0/servicePrincipals", {"$filter": f"appId eq '{app_id}'"}, 200),
        (f"/beta/servicePrincipals/{sp_id}", {"$select": "samlMetadataUrl"}, 200),
        ("/v1.0/users", {"$filter": "userPrincipalName eq 'O''Neil@msp.example'"}, 200),
        (f"/v1.0/users/{user_id}", {"$select": standin.USER_SELECT}, 200),
        (f"/v1.0/users/{user_id}/manager", {}, 404),
        ("/beta/groups", {"$filter": "displayName eq 'Sales and CIPP'"}, 200),
        (f"/beta/groups/{group_id}/members", {}, 200),
        (f"/beta/groups/{group_id}/owners", {}, 200),
    ]


def test_failed_lookups_answer_upstreams_texts_in_the_bridges_format(
    directory_reader: StandIn, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    graph_emulator.add_group(graph_app.tenant, {"id": str(uuid.uuid4()), "displayName": "O'Brien's team"})
    missing = rpc_error(invoke, directory_reader, SP_TOKEN, {"clientId": "x"})
    assert missing.details() == (
        f"invoking {SP_TOKEN}: 1 error occurred:\n\t* No service principal found: no service principal found\n\n"
    )
    nobody = rpc_error(invoke, directory_reader, USER_TOKEN, {"userPrincipalName": "x@msp.example"})
    assert nobody.details() == (
        f"invoking {USER_TOKEN}: 1 error occurred:\n"
        '\t* [user_principal_name] User with UPN "x@msp.example" was not found\n\n'
    )
    unknown = rpc_error(invoke, directory_reader, GROUP_TOKEN, {"displayName": "Nobody"})
    assert unknown.details() == (
        f"invoking {GROUP_TOKEN}: 1 error occurred:\n"
        "\t* [display_name] No group found matching specified filter (displayName eq 'Nobody')\n\n"
    )
    # groupDataSourceRead puts the name into its filter unescaped: Graph refuses the filter, even though the
    # group exists, and the provider reports Graph's error through go-azure-sdk's wording.
    apostrophe = rpc_error(invoke, directory_reader, GROUP_TOKEN, {"displayName": "O'Brien's team"})
    assert apostrophe.details() == (
        f"invoking {GROUP_TOKEN}: 1 error occurred:\n"
        "\t* Retrieving groups for filter (displayName eq 'O'Brien's team'): unexpected status 400 "
        "(400 Bad Request) with error: BadRequest: Invalid filter clause: Syntax error at position 23 in "
        "'displayName eq 'O'Brien's team''.\n\n"
    )
    (refused,) = graph_emulator.requests(method="GET", path_contains="/beta/groups", status=400)
    assert refused.query == {"$filter": "displayName eq 'O'Brien's team'"}
    other = rpc_error(invoke, directory_reader, "azuread:index/getDomains:getDomains", {})
    assert other.code() == grpc.StatusCode.UNIMPLEMENTED


# ---------------------------------------------------------------------------------------------------
# Configure signs in, as the real provider's does
# ---------------------------------------------------------------------------------------------------


def test_configure_signs_in_and_a_wrong_secret_fails_with_upstreams_text(
    standin_env: dict[str, str], graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    host = StandIn(standin_env)
    try:
        host.configure(graph_app)
        (signed_in,) = graph_emulator.requests(method="POST", path_contains="/oauth2/v2.0/token")
        assert signed_in.status == 200
        wrong = dataclasses.replace(graph_app, secret="not-the-secret")
        failure = rpc_error(host.configure, wrong)
    finally:
        host.close()
    assert failure.code() == grpc.StatusCode.UNKNOWN
    first, reason, *_ = failure.details().split("\n")
    assert first == "1 error occurred:"
    assert reason.startswith(
        "\t* building client: unable to obtain access token: clientCredentialsToken: received HTTP status 401 "
        "with response: {"
    ), reason
    assert "invalid_client" in reason
    assert "AADSTS7000215: Invalid client secret provided." in reason
    assert "not-the-secret" not in failure.details() + host.stderr
    assert [r.status for r in graph_emulator.requests(path_contains="/v1.0/")] == [], "Configure never calls Graph"
