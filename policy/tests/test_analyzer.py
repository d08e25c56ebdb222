"""The pack inside pulumi_policy's own analyzer servicer: the gRPC messages the engine sends, minus the socket.

This is the code path of `pulumi preview --policy-pack policy` after the process starts: GetAnalyzerInfo,
ConfigureStack (the stack config, as current CLIs send it) or the env vars of older CLIs, Configure (the
--policy-pack-config), Analyze per resource and AnalyzeStack. tests/engine runs it under the real CLI.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Iterator
from typing import Any

import pulumi.runtime.config
import pytest
from google.protobuf import struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policy import policies
from policy.tests.harness import engine_config
from tests.helpers import ROOT, SERVICE_ACCOUNT, msp_raw, run_main, to_runtime_config

PACK = "cipp-hardening-rollout"


@pytest.fixture(autouse=True)
def _keep_runtime_config() -> Iterator[None]:
    """The servicer copies PULUMI_CONFIG into the process-wide runtime config; put it back afterwards."""
    config = pulumi.runtime.config.CONFIG.get()
    saved = dict(config)
    yield
    config.clear()
    config.update(saved)


def servicer() -> Any:
    return _PolicyAnalyzerServicer(PACK, "0.1.0", policies.ALL, EnforcementLevel.MANDATORY)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(json.loads(json.dumps(value)))
    return message


def test_policy_main_builds_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, Any] = {}
    monkeypatch.setattr("pulumi_policy.PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert built["name"] == PACK
    assert built["enforcement_level"] is EnforcementLevel.MANDATORY
    assert built["policies"] is policies.ALL


ROGUE_POLICY = {
    "displayName": "Require MFA for everyone",
    "state": "enabled",
    "conditions": {"users": {"includedUsers": ["All"]}, "applications": {"includedApplications": ["All"]}},
    "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
}


def test_the_stack_config_comes_from_configure_stack_as_current_clis_send_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI 3.274 sends the config only in ConfigureStack (no PULUMI_CONFIG): policy/__main__.py keeps it."""
    monkeypatch.setattr("pulumi_policy.PolicyPack", lambda **kwargs: None)
    monkeypatch.setattr(_PolicyAnalyzerServicer, "ConfigureStack", _PolicyAnalyzerServicer.ConfigureStack)
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    analyzer = servicer()
    try:
        config = to_runtime_config(msp_raw())
        analyzer.ConfigureStack(proto.AnalyzerStackConfigureRequest(stack="prod", config=config), None)
        analyzer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={}), None)
        response = analyzer.Analyze(
            proto.AnalyzeRequest(type=policies.CA_POLICY, properties=struct(ROGUE_POLICY), urn="urn:x", name="m"), None
        )
    finally:
        policies.remember_stack_config({})
    assert not [d.message for d in response.diagnostics if "cannot check the stack" in d.message]
    assert sorted(d.policyName for d in response.diagnostics) == ["break-glass-excluded", "service-account-excluded"]


def test_analyzer_info_lists_every_policy_with_its_config_schema() -> None:
    info = servicer().GetAnalyzerInfo(None, None)
    by_name = {p.name: p for p in info.policies}
    assert sorted(by_name) == sorted(p.name for p in policies.ALL)
    assert all(p.enforcementLevel == proto.MANDATORY for p in info.policies)
    assert "priorStateFile" in by_name["promotion-recorded"].configSchema.properties
    assert info.supportsConfig


def test_analyze_and_analyze_stack_like_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = msp_raw()
    run = run_main(raw)
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(raw))
    monkeypatch.setenv("PULUMI_STACK", "prod")
    analyzer = servicer()
    analyzer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={}), None)
    response = analyzer.Analyze(
        proto.AnalyzeRequest(type=policies.CA_POLICY, properties=struct(ROGUE_POLICY), urn="urn:x", name="mfa-all"),
        None,
    )
    names = sorted(d.policyName for d in response.diagnostics)
    assert names == ["break-glass-excluded", "service-account-excluded"]
    assert all(d.enforcementLevel == proto.MANDATORY for d in response.diagnostics)
    assert SERVICE_ACCOUNT in next(d.message for d in response.diagnostics if d.policyName.startswith("service"))

    resources = [
        proto.AnalyzerResource(type=r.type, properties=struct(r.inputs), urn=r.urn, name=r.name)
        for r in run.resources
        if r.custom
    ]
    stack = analyzer.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None)
    assert [d.message for d in stack.diagnostics] == []
    assert list(stack.not_applicable) == []


def test_an_unknown_value_is_an_advisory_not_a_pass_or_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG", engine_config(msp_raw()))
    unknown = {
        "displayName": "Require MFA for everyone",
        "state": "enabled",
        "conditions": {"users": {"includedUsers": ["All"], "excludedUsers": [UNKNOWN_STRING_VALUE]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    response = servicer().Analyze(
        proto.AnalyzeRequest(type=policies.CA_POLICY, properties=struct(unknown), urn="urn:x", name="mfa-all"), None
    )
    assert {d.enforcementLevel for d in response.diagnostics} == {proto.ADVISORY}
    assert all("can't run policy" in d.message for d in response.diagnostics)
