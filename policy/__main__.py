"""The policy pack process that `pulumi preview --policy-pack policy` starts; PolicyPack() serves forever."""

import sys
from pathlib import Path

# The engine runs the pack from policy/ (pulumi.policy runs this folder): the rules import the project.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, PolicyPack
from pulumi_policy.policy import _PolicyAnalyzerServicer

from policy.policies import ALL, remember_stack_config

_configure_stack = _PolicyAnalyzerServicer.ConfigureStack


def _configure_stack_keeping_config(self, request, context):  # type: ignore[no-untyped-def]
    """The engine sends the stack config only here; pulumi-policy 1.21 keeps just the tags (docs/engine.md)."""
    remember_stack_config(dict(request.config))
    return _configure_stack(self, request, context)


_PolicyAnalyzerServicer.ConfigureStack = _configure_stack_keeping_config  # type: ignore[method-assign]

PolicyPack(
    name="cipp-hardening-rollout",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=ALL,
    description="Rollout safety for cipp-hardening: break-glass, service account, Part A/B, named locations, "
    "evidence-gated promotion, scenario matrix",
)
