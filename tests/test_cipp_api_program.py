"""Part C in the program, offline: the cippApi config, the declared resources, the open-clients check, `make plan`."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
from rich.console import Console

from cipp_hardening.commands.plan import build_plan, main, print_plan
from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from cipp_hardening.inventory import CIPP_SNAPSHOT_ENV
from cipp_hardening.offline import OfflineRunError
from tests.helpers import ROOT, msp_raw, run_main

EXAMPLE_CLIENTS = ROOT / "examples" / "example-cipp-clients.json"
RANGES_TYPE = "pulumi-python:dynamic/cipp:CippApiClientRanges"
COMPONENT_TYPE = "cipp:hardening:CippApiAllowlists"
MANAGER = "00000000-0000-0000-0000-0000000e0001"
RMM = "00000000-0000-0000-0000-0000000e0002"
PSA = "00000000-0000-0000-0000-0000000e0003"
IPV6 = "2001:0db8:0000:0000:0000:0000:0000:0000/48"
SECRET = "manager-secret-8Q~do-not-leak"


@pytest.fixture(autouse=True)
def no_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CIPP_SNAPSHOT_ENV, raising=False)  # also undoes what plan.main sets


def with_cipp(**changes: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["cippApi"].update(changes)
    return raw


# -- config -----------------------------------------------------------------------------------------
def test_the_example_stack_manages_two_clients_in_cipp_spelling() -> None:
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    assert config.cipp_api is not None
    assert config.cipp_api.tenant_id == config.tenant_id  # defaults to azuread:tenantId
    assert [(c.client_id, c.allowed_ranges) for c in config.cipp_api.clients] == [
        (MANAGER, ("203.0.113.0/24",)),
        (RMM, ("203.0.113.0/24", IPV6)),
    ]


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"url": "https://cipp.azurestaticapps.net"}, "cippApi.url", "Static Web App"),
        ({"clients": [{"clientId": MANAGER, "allowedRanges": ["203.0.113.0/24"]}]}, "allowSelfUpdate", "must be true"),
        ({"clients": [{"clientId": RMM, "allowedRanges": ["0.0.0.0/0"]}]}, "allowedRanges[0]", "/0"),
        ({"clients": [{"clientId": RMM, "allowedRanges": ["203.0.113.7/24"]}]}, "allowedRanges[0]", "host bits"),
        ({"unrestrictedClients": "ignore"}, "cippApi.unrestrictedClients", "fail, warn"),
    ],
)
def test_bad_cipp_api_config(changes: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(with_cipp(**changes))
    assert any(key in p.key and fragment in p.message for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"clientId": RMM}, "is required"),
        ({"clientId": RMM, "allowedRanges": None}, "is required"),
        ({"clientId": RMM, "allowedRanges": []}, "is empty"),
        ({"clientId": RMM, "allowedRanges": ["Any", "203.0.113.0/24"]}, "stands alone"),
    ],
)
def test_a_client_is_never_open_by_omission(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(with_cipp(clients=[entry]))
    [problem] = caught.value.problems
    assert problem.key.endswith("cippApi.clients[0].allowedRanges")
    assert fragment in problem.message
    assert "[Any]" in problem.message


def test_any_is_one_explicit_statement_and_is_said_at_every_run() -> None:
    config = parse_stack_config(with_cipp(clients=[{"clientId": PSA, "allowedRanges": ["Any"]}]))
    assert isinstance(config, MspStack)
    assert config.cipp_api is not None
    assert config.cipp_api.clients[0].allowed_ranges == ()
    run = run_main(with_cipp(clients=[{"clientId": PSA, "allowedRanges": ["Any"]}]))
    [resource] = run.of_type(RANGES_TYPE)
    assert resource.inputs["allowedRanges"] == []  # the provider's Any, as in every existing state
    assert any(
        f"{PSA} is declared open to every address (cippApi.clients[0].allowedRanges: [Any])" in w
        for w in run.messages("warning")
    )


# -- the program ------------------------------------------------------------------------------------
def test_offline_without_a_snapshot_declares_the_clients_and_skips_the_check() -> None:
    run = run_main(msp_raw())
    [component] = run.of_type(COMPONENT_TYPE)
    ranges = {r.name: r for r in run.of_type(RANGES_TYPE)}
    assert set(ranges) == {f"cipp-api-{MANAGER}", f"cipp-api-{RMM}"}
    assert all(r.parent == component.urn for r in ranges.values())
    rmm = ranges[f"cipp-api-{RMM}"].inputs
    assert {k: v for k, v in rmm.items() if k != "__provider"} == {
        "url": "https://cipp-api-example.azurewebsites.net",
        "tenantId": "00000000-0000-0000-0000-00000000a001",
        "managerClientId": MANAGER,
        "clientId": RMM,
        "allowedRanges": ["203.0.113.0/24", IPV6],
        "allowSelfUpdate": False,
        "restoreOnDelete": True,
        "allowAnyOnDelete": False,
    }
    assert run.outputs["cippApiManagedClientIds"] == [MANAGER, RMM]
    assert run.outputs["unrestrictedApiClients"] is None
    assert any("unrestricted-clients check is skipped" in w for w in run.messages("warning"))


def test_the_example_snapshot_finds_the_open_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(EXAMPLE_CLIENTS))
    run = run_main(msp_raw())
    # e0001 is open but managed; e0004 is open but disabled.
    assert run.outputs["unrestrictedApiClients"] == [
        {"clientId": PSA, "appName": "PSA integration", "role": "readonly"}
    ]
    assert any(PSA in w and "accepts requests from any IP" in w for w in run.messages("warning"))


def test_widening_a_client_cipp_holds_restricted_is_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(EXAMPLE_CLIENTS))  # the RMM is held to 198.51.100.7 there
    run = run_main(msp_raw())
    assert run.outputs["widenedApiClients"] == [
        {
            "clientId": RMM,
            "appName": "RMM integration",
            "role": "readonly",
            "currentRanges": ["198.51.100.7"],
            "widenedBy": ["203.0.113.0/24", IPV6],
        }
    ]  # the manager is Any in CIPP today: restricting it widens nothing
    [warning] = [w for w in run.messages("warning") if "widens" in w]
    assert f"{RMM} (RMM integration, role readonly): this stack widens it" in warning
    assert "holds it to 198.51.100.7 today" in warning
    opened = with_cipp(
        clients=[
            {"clientId": MANAGER, "allowedRanges": ["203.0.113.0/24"], "allowSelfUpdate": True},
            {"clientId": RMM, "allowedRanges": ["Any"]},
        ]
    )
    run = run_main(opened)
    assert run.outputs["widenedApiClients"][0]["widenedBy"] == ["Any"]
    assert any(RMM in w and "also accepts every address (allowedRanges: [Any])" in w for w in run.messages("warning"))
    narrowed = with_cipp(
        clients=[
            {"clientId": MANAGER, "allowedRanges": ["203.0.113.0/24"], "allowSelfUpdate": True},
            {"clientId": RMM, "allowedRanges": ["198.51.100.7"]},
        ]
    )
    assert run_main(narrowed).outputs["widenedApiClients"] == []


def test_fail_mode_stops_before_part_c_registers_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(EXAMPLE_CLIENTS))
    with pytest.raises(OfflineRunError) as failed:
        run_main(with_cipp(unrestrictedClients="fail"))
    assert isinstance(failed.value.cause, pulumi.RunError)
    assert f"{PSA} (PSA integration, role readonly)" in str(failed.value.cause)
    types = {r.type for r in failed.value.run.resources}
    assert not types & {RANGES_TYPE, COMPONENT_TYPE}


def test_fail_mode_passes_when_nothing_is_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "no-clients.json"
    empty.write_text("")  # CIPP's List on an empty table (docs/cipp-api.md §2.1)
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(empty))
    run = run_main(with_cipp(unrestrictedClients="fail"))
    assert run.outputs["unrestrictedApiClients"] == []
    assert len(run.of_type(RANGES_TYPE)) == 2


def test_without_a_cipp_api_section_part_c_is_skipped() -> None:
    raw = msp_raw()
    del raw["cippApi"]
    run = run_main(raw)
    assert not {r.type for r in run.resources} & {RANGES_TYPE, COMPONENT_TYPE}
    assert "unrestrictedApiClients" not in run.outputs


# -- make plan --------------------------------------------------------------------------------------
def test_the_plan_shows_part_c_and_never_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIPP_API_MANAGER_SECRET", SECRET)
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(EXAMPLE_CLIENTS))
    document = build_plan("prod", overrides={"cippApiManagerSecret": SECRET})
    text = json.dumps(document.to_json())
    assert SECRET not in text
    assert sum(1 for r in document.resources if r["type"] == RANGES_TYPE) == 2
    assert [c["clientId"] for c in document.outputs["unrestrictedApiClients"]] == [PSA]


def test_plan_command_takes_a_cipp_clients_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "plan.json"
    assert main(["--stack", "prod", "--cipp-clients", str(EXAMPLE_CLIENTS), "--json", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"cipp-api-{RMM}" in out
    assert IPV6 in out
    document = json.loads(target.read_text())
    assert document["outputs"]["cippApiManagedClientIds"] == [MANAGER, RMM]
    assert any(PSA in w for w in document["warnings"])


@pytest.mark.parametrize("terminal", [True, False])
def test_the_printed_plan_shows_the_graph_bodies_on_a_terminal_and_in_a_log(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    """Highlighted on a terminal, plain in CI logs and files: the same JSON either way."""
    monkeypatch.setenv(CIPP_SNAPSHOT_ENV, str(EXAMPLE_CLIENTS))
    document = build_plan("prod")
    output = io.StringIO()
    print_plan(document, Console(file=output, force_terminal=terminal, width=200))
    text = re.sub(r"\x1b\[[0-9;]*m", "", output.getvalue())
    assert '"cidrAddress": "203.0.113.0/24"' in text
    assert '"includeLocations": [' in text
