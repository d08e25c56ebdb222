"""Part C: a local resource whose delete refuses, before anything else is deleted, what Part C would refuse.

`pulumi destroy` deletes dependents first and runs the deletes in rounds: a resource is deleted only after
every resource that depends on it, and when a delete fails the engine skips everything that resource
depends on (pulumi/pulumi pkg/resource/deploy: `stepGenerator.ScheduleDeletes`,
`deploymentExecutor.performPostSteps`). This guard depends on every other resource of the MSP stack, so
its delete runs first and alone. It holds, per managed CIPP-API client, what that client's own delete
reads from the state (restoreOnDelete, allowAnyOnDelete, adoptedRanges, ...), and refuses exactly when a
client's delete would (cipp_hardening.cipp_api.predicted_delete_refusal); the same for each CIPP role of
cippApi.customRoles (cipp_hardening.custom_roles.predicted_delete_refusal, docs/custom-roles.md): destroy
then stops with Step 1, Parts A and B and every client still in place, instead of halfway (docs/part-c.md
"Destroy").

It calls nothing: no CIPP, no Graph. The provider is pickled into state by module and class name
(docs/pulumi.md §2.2); keep both names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from cipp_hardening.cipp_api import predicted_delete_refusal
from cipp_hardening.custom_roles import predicted_delete_refusal as predicted_role_refusal
from dynamic_providers import props as typed

GUARD_ID = "cipp-api-destroy-guard"


class CippApiDestroyGuardError(RuntimeError):
    """Destroy would stop halfway: names every client that refuses and how to let it go."""


@dataclass(frozen=True)
class CippApiDestroyGuardArgs:
    """The props of the guard (dynamic_providers/props.py): per managed client and per CIPP role, what its own delete
    reads from state (components/cipp_api_allowlists.py, components/cipp_custom_roles.py build the entries)."""

    clients: tuple[dict[str, Any], ...]
    roles: tuple[dict[str, Any], ...] | None = None  # only when cippApi.customRoles lists some (older states lack it)

    PROPS: ClassVar[dict[str, str]] = {"clients": "clients", "roles": "roles"}


def refusals(clients: Sequence[Mapping[str, Any]], roles: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """What the clients' deletes (Part C) and the CIPP roles' deletes (docs/custom-roles.md) would refuse."""
    return [reason for client in clients if (reason := predicted_delete_refusal(client))] + [
        reason for role in roles if (reason := predicted_role_refusal(role))
    ]


class CippApiDestroyGuardProvider(ResourceProvider):
    """Create/update record the clients; delete refuses when any recorded client's delete would."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = typed.problems(CippApiDestroyGuardArgs, news)
        return CheckResult(news, [CheckFailure(key, reason) for key, reason in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = any(olds.get(key) != news.get(key) for key in RECORDED_KEYS)
        return DiffResult(changes=changed, replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(GUARD_ID, _recorded(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(_recorded(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        found = refusals(props.get("clients") or [], props.get("roles") or [])
        if found:
            raise CippApiDestroyGuardError(
                "nothing deleted: Part C would refuse to delete "
                + ("these" if len(found) > 1 else "this")
                + " part way through, after Step 1 and Parts A and B were gone, so this check stops the "
                'whole delete first (docs/part-c.md "Destroy"). ' + " | ".join(found)
            )


RECORDED_KEYS = ("clients", "roles")  # "roles" only when cippApi.customRoles lists some (older states lack it)


def _recorded(props: dict[str, Any]) -> dict[str, Any]:
    return {key: props[key] for key in RECORDED_KEYS if key in props}


class CippApiDestroyGuard(Resource, module="cipp", name="CippApiDestroyGuard"):
    """Refuses a delete of the MSP stack up front when a Part C client would refuse its own."""

    clients: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, args: CippApiDestroyGuardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CippApiDestroyGuardProvider(), name, typed.to_props(args), opts)
