"""Run the pack's policies without the CLI, the way the analyzer does (pulumi_policy/policy.py).

Props are wrapped in `unknown_checking_proxy` like the engine's; resource policies get inputs (no
`objectId`: the engine sends only what the program set), stack policies every resource's state as the
mocked program recorded it (inputs plus the ids the mocks assign), standing in for planned outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import unknown_checking_proxy

from cipp_hardening.offline import OfflineRun
from policy import policies
from tests.helpers import to_runtime_config

OPTS = PolicyResourceOptions(
    protect=False,
    ignore_changes=[],
    delete_before_replace=None,
    aliases=[],
    custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
    additional_secret_outputs=[],
)


@dataclass
class Outcome:
    messages: list[str] = field(default_factory=list)
    urns: list[str | None] = field(default_factory=list)
    not_applicable: str | None = None

    def report(self, message: str, urn: str | None = None) -> None:
        self.messages.append(message)
        self.urns.append(urn)


def engine_config(raw: Mapping[str, Any]) -> str:
    """What the engine puts in PULUMI_CONFIG for a stack with this (namespace-stripped) config."""
    return json.dumps(to_runtime_config(dict(raw)))


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:prod::cipp-hardening::{type_}::{name}"


def resource_args(
    type_: str, props: Mapping[str, Any], name: str = "r", config: Mapping[str, Any] | None = None
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type=type_,
        props=unknown_checking_proxy(json.loads(json.dumps(props))),
        urn=urn(type_, name),
        name=name,
        opts=OPTS,
        provider=None,
        config=dict(config or {}),
    )


def policy_resource(
    type_: str,
    props: Mapping[str, Any],
    name: str,
    depends_on: Mapping[str, list[PolicyResource]] | None = None,
    resource_urn: str | None = None,
) -> PolicyResource:
    return PolicyResource(
        type_,
        unknown_checking_proxy(json.loads(json.dumps(props))),
        resource_urn or urn(type_, name),
        name,
        OPTS,
        None,
        None,
        [],
        dict(depends_on or {}),
    )


def stack_args(resources: Iterable[PolicyResource], config: Mapping[str, Any] | None = None) -> StackValidationArgs:
    return StackValidationArgs(list(resources), dict(config or {}))


def check(policy: Policy, args: ResourceValidationArgs | StackValidationArgs) -> Outcome:
    """One policy over one args bag: its violations, or why it is not applicable."""
    outcome = Outcome()
    try:
        result = _validate(policy, args, outcome)
    except _NotApplicableError as error:
        outcome.not_applicable = error.reason or "not applicable"
        return outcome
    assert result is None, "the pack's validators are synchronous"
    return outcome


def _validate(policy: Policy, args: ResourceValidationArgs | StackValidationArgs, outcome: Outcome) -> object:
    if isinstance(policy, ResourceValidationPolicy) and isinstance(args, ResourceValidationArgs):
        return policy.validate(args, outcome.report)
    if isinstance(policy, StackValidationPolicy) and isinstance(args, StackValidationArgs):
        return policy.validate(args, outcome.report)
    raise TypeError(f"{policy.name} does not take {type(args).__name__}")


def _engine_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k != "objectId" and not k.startswith("__")}


def run_pack(run: OfflineRun, config: Mapping[str, Any] | None = None) -> dict[str, Outcome]:
    """Every policy of the pack over what a mocked program registered, as `pulumi preview` would."""
    custom = [r for r in run.resources if r.custom]
    outcomes: dict[str, Outcome] = {}
    for policy in policies.ALL:
        total = Outcome()
        if isinstance(policy, ResourceValidationPolicy):
            for resource in custom:
                args = resource_args(resource.type, _engine_inputs(resource.inputs), resource.name, config)
                found = check(policy, args)
                total.messages += found.messages
                total.not_applicable = total.not_applicable or found.not_applicable
        else:
            # The engine hands AnalyzeStack every resource of the deployment, the root stack with its outputs too.
            root = policy_resource("pulumi:pulumi:Stack", run.outputs, "cipp-hardening-stack")
            stack = [root, *(policy_resource(r.type, r.inputs, r.name, resource_urn=r.urn) for r in custom)]
            total = check(policy, stack_args(stack, config))
        outcomes[policy.name] = total
    return outcomes


def violations(outcomes: Mapping[str, Outcome]) -> dict[str, list[str]]:
    return {name: outcome.messages for name, outcome in outcomes.items() if outcome.messages}
