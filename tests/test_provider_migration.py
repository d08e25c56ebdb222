"""The providers as state written before the typed args and the service_clients move holds them (docs/pulumi.md §2.2).

pulumi.dynamic pickles each provider into the state's `__provider` (dill, by module and class name) and the
provider host unpickles that string for every Read and Delete: a stack deployed by an older version is refreshed
and destroyed by the provider named in its state, running today's code. The strings below are
`pulumi.dynamic.dynamic.serialize_provider(<Provider>())` as commit 9d141d9 wrote them (before the HTTP clients
moved out of dynamic_providers/ and before the args classes), produced in a detached worktree of that commit:

    from pulumi.dynamic.dynamic import serialize_provider
    from dynamic_providers.ca_exclusion import CaExclusionProvider
    print(serialize_provider(CaExclusionProvider()))  # and the same for the four others
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import dill
import pytest
from pulumi.dynamic import ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from dynamic_providers.ca_exclusion import (
    CaExclusionArgs,
    CaExclusionProvider,
    ExclusionJournalArgs,
    ExclusionJournalProvider,
)
from dynamic_providers.cipp_api_client_ranges import (
    SECRET_KEY,
    CippApiClientRanges,
    CippApiClientRangesArgs,
    CippApiClientRangesProvider,
)
from dynamic_providers.cipp_api_destroy_guard import CippApiDestroyGuardArgs, CippApiDestroyGuardProvider
from dynamic_providers.cipp_custom_roles import CippCustomRoleRangesArgs, CippCustomRoleRangesProvider
from dynamic_providers.props import decode, problems, to_props
from emulators.provider_host import PROVIDER_KEY, MiniEngine, ProviderHost, StateEntry, collect_dynamic_resources
from tests.emulators import cipp_fixtures
from tests.helpers import ROOT
from tests.test_cipp_api_provider import Cipp, cipp, cipp_env, host_env, stack_config

cipp_tls = cipp_fixtures.cipp_tls
cipp_emulator = cipp_fixtures.cipp_emulator
cipp_caller = cipp_fixtures.cipp_caller
__all__ = ["cipp", "cipp_env"]  # fixtures

PICKLED_BY_9D141D9 = {
    CaExclusionProvider: (
        "gASVPQAAAAAAAACMHmR5bmFtaWNfcHJvdmlkZXJzLmNhX2V4Y2x1c2lvbpSME0NhRXhjbHVzaW9uUHJvdmlkZXKUk5QpgZQu"
    ),
    ExclusionJournalProvider: (
        "gASVQgAAAAAAAACMHmR5bmFtaWNfcHJvdmlkZXJzLmNhX2V4Y2x1c2lvbpSMGEV4Y2x1c2lvbkpvdXJuYWxQcm92aWRlcpSTlCmBlC4="
    ),
    CippApiClientRangesProvider: (
        "gASVTwAAAAAAAACMKGR5bmFtaWNfcHJvdmlkZXJzLmNpcHBfYXBpX2NsaWVu"
        "dF9yYW5nZXOUjBtDaXBwQXBpQ2xpZW50UmFuZ2VzUHJvdmlkZXKUk5QpgZQu"
    ),
    CippCustomRoleRangesProvider: (
        "gASVSwAAAAAAAACMI2R5bmFtaWNfcHJvdmlkZXJzLmNpcHBfY3VzdG9tX3"
        "JvbGVzlIwcQ2lwcEN1c3RvbVJvbGVSYW5nZXNQcm92aWRlcpSTlCmBlC4="
    ),
    CippApiDestroyGuardProvider: (
        "gASVTwAAAAAAAACMKGR5bmFtaWNfcHJvdmlkZXJzLmNpcHBfYXBpX2Rlc3Ry"
        "b3lfZ3VhcmSUjBtDaXBwQXBpRGVzdHJveUd1YXJkUHJvdmlkZXKUk5QpgZQu"
    ),
}
TENANT = "00000000-0000-0000-0000-00000000e001"
MSP = "00000000-0000-0000-0000-00000000a001"
POLICY = "00000000-0000-0000-0000-00000000f001"
MANAGER = "00000000-0000-0000-0000-0000000e0001"
RANGES = CippApiClientRangesArgs("https://cipp.example.net", TENANT, MANAGER, POLICY, ("203.0.113.0/24",))


def unpickled(blob: str) -> ResourceProvider:
    """As the provider host does it (pulumi/dynamic/__main__.py, get_provider)."""
    provider: ResourceProvider = dill.loads(base64.b64decode(blob))  # noqa: S301 - the fixed strings above
    return provider


@pytest.mark.parametrize("cls", list(PICKLED_BY_9D141D9), ids=lambda cls: cls.__name__)
def test_a_provider_pickled_by_9d141d9_is_todays_class(cls: type[ResourceProvider]) -> None:
    assert type(unpickled(PICKLED_BY_9D141D9[cls])) is cls


def todays_props() -> list[tuple[type[ResourceProvider], dict[str, Any]]]:
    """What today's components declare (the args' props, as state records them), per provider."""
    return [
        (CaExclusionProvider, to_props(CaExclusionArgs(TENANT, "https://graph.microsoft.com", POLICY, "gdap", MSP))),
        (ExclusionJournalProvider, to_props(ExclusionJournalArgs(TENANT, {POLICY: {}}))),
        (
            CippCustomRoleRangesProvider,
            to_props(
                CippCustomRoleRangesArgs(
                    "https://cipp.example.net", TENANT, MANAGER, MANAGER, "techs", ("203.0.113.0/24",)
                )
            ),
        ),
        (CippApiDestroyGuardProvider, to_props(CippApiDestroyGuardArgs(({"clientId": MANAGER},)))),
    ]


@pytest.mark.parametrize(("cls", "props"), todays_props(), ids=["exclusion", "journal", "role", "guard"])
def test_the_old_pickles_check_todays_props(cls: type[ResourceProvider], props: dict[str, Any]) -> None:
    checked = unpickled(PICKLED_BY_9D141D9[cls]).check({}, props)
    assert (checked.inputs, checked.failures) == (props, [])


def with_provider(entry: StateEntry, blob: str) -> StateEntry:
    """The state entry with `blob` as its `__provider` (a secret on the wire, as the engine keeps it)."""

    def swapped(props: Mapping[str, Any]) -> dict[str, Any]:
        old = props[PROVIDER_KEY]
        return {**props, PROVIDER_KEY: {**old, "value": blob} if isinstance(old, dict) else blob}

    return replace(entry, inputs=swapped(entry.inputs), outputs=swapped(entry.outputs))


@pytest.mark.e2e
def test_state_written_today_is_refreshed_and_destroyed_by_the_provider_9d141d9_pickled(cipp: Cipp) -> None:
    """Part C: `pulumi up` today, then a refresh and a destroy through the provider host, with the provider string
    of the state replaced by what 9d141d9 wrote: the drift is seen and the adopted ranges are restored."""

    def program() -> None:
        CippApiClientRanges("rmm", cipp.args(restoreOnDelete=True))

    config = stack_config(cipp, [])
    declared = collect_dynamic_resources(program, config=config, secret_keys=[SECRET_KEY])
    with ProviderHost(ROOT, env=host_env(cipp)) as host:
        host.configure(config, secret_keys=[SECRET_KEY])
        today = MiniEngine(host)
        assert today.up(declared).counts == {"create": 1}
        written = dict(today.state)
    old_blob = PICKLED_BY_9D141D9[CippApiClientRangesProvider]
    state = {urn: with_provider(entry, old_blob) for urn, entry in written.items()}
    assert all(old_blob in str(entry.inputs[PROVIDER_KEY]) for entry in state.values())

    cipp.ui_edit(["198.51.100.0/24"])
    with ProviderHost(ROOT, env=host_env(cipp)) as host:  # a later run starts a host of its own
        host.configure(config, secret_keys=[SECRET_KEY])
        later = MiniEngine(host, state)
        [refreshed] = later.refresh().operations
        assert (refreshed.op, "currentRanges" in refreshed.changed) == ("update", True)
        assert later.destroy().counts == {"delete": 1}
    assert cipp.stored()["IPRange"] == '"198.51.100.7"'  # restoreOnDelete: the range found at adoption


# The props each component declared at 9d141d9 (components/*.py there): their names are the names in state.
PROPS_AT_9D141D9 = {
    CippApiClientRangesArgs: {
        "url",
        "tenantId",
        "managerClientId",
        "clientId",
        "allowedRanges",
        "allowSelfUpdate",
        "restoreOnDelete",
        "allowAnyOnDelete",
        "mcpAllowed",
    },
    CippCustomRoleRangesArgs: {
        "url",
        "tenantId",
        "managerClientId",
        "clientId",
        "name",
        "allowedRanges",
        "restoreOnDelete",
        "allowOpenOnDelete",
    },
    CaExclusionArgs: {
        "tenantId",
        "graphUrl",
        "policyId",
        "displayName",
        "accessMode",
        "mspTenantId",
        "serviceAccountUserId",
        "onConflict",
        "listed",
        "intended",
    },
    ExclusionJournalArgs: {"tenantId", "intents"},
    CippApiDestroyGuardArgs: {"clients", "roles"},
}


@pytest.mark.parametrize("cls", list(PROPS_AT_9D141D9), ids=lambda cls: cls.__name__)
def test_the_args_keep_the_prop_names_state_holds(cls: type[Any]) -> None:
    assert set(cls.PROPS.values()) == PROPS_AT_9D141D9[cls]
    assert list(cls.PROPS) == [field.name for field in dataclasses.fields(cls)]


def test_a_prop_absent_from_older_state_takes_the_args_default() -> None:
    old_state = {"tenantId": TENANT, "graphUrl": "https://graph.microsoft.com", "policyId": POLICY}
    args = decode(CaExclusionArgs, {**old_state, "accessMode": "gdap", "mspTenantId": MSP})
    assert (args.on_conflict, args.service_account_user_id, args.display_name) == ("report", None, "")
    ranges = decode(CippApiClientRangesArgs, {**to_props(RANGES), "allowAnyOnDelete": None})
    assert ranges.allow_any_on_delete is False


def test_state_that_does_not_fit_names_every_prop() -> None:
    bad = {**to_props(RANGES), "allowedRanges": "203.0.113.0/24", "clientId": ""}
    with pytest.raises(ValueError, match=r"clientId is required; allowedRanges must be a list of strings"):
        decode(CippApiClientRangesArgs, bad)
    assert problems(CaExclusionArgs, {"accessMode": "GDAP"})[3] == (
        "accessMode",
        "must be one of gdap, direct, got 'GDAP'",
    )


def test_values_unknown_at_preview_are_left_for_later() -> None:
    """The provider host passes Unknown objects (the CaExclusion's `intended` at preview), mocks the wire sentinel."""
    props = {**to_props(RANGES), "allowedRanges": Unknown(), "clientId": UNKNOWN}
    assert problems(CippApiClientRangesArgs, props) == []


def test_check_at_preview_lets_the_journal_entry_be_unknown() -> None:
    """At preview the ExclusionJournal's entries are not known yet: `intended` reaches check() as Unknown."""
    args = CaExclusionArgs(TENANT, "https://graph.microsoft.com", POLICY, "gdap", MSP, listed={"status": "write"})
    news = {**to_props(args), "intended": Unknown()}
    assert CaExclusionProvider().check({}, news).failures == []
