"""Names as well as ids: UPNs and group names in the config, resolved read-only (offline, Graph, snapshot)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cipp_hardening.commands import plan, snapshot, verify
from cipp_hardening.config import DirectoryName, MspStack, parse_stack_config
from cipp_hardening.directory_names import DIRECTORY_SNAPSHOT_ENV
from emulators.clients import graph_client_env
from emulators.graph import GraphEmulator
from service_clients import credentials
from tests.emulators.fixtures import use_env
from tests.helpers import BREAK_GLASS_2, MSP_TENANT, ROOT, msp_raw

TECHNICIANS = "CIPP Technicians"
TECH_GROUP_ID = "7e1c0a52-4b1d-4c1e-9a11-0000000000a1"
BREAK_GLASS_UPN = "breakglass1@msp.example"
BREAK_GLASS_ID = "7e1c0a52-4b1d-4c1e-9a11-0000000000b1"


def named_stack(tmp_path: Path, **technician: Any) -> Path:
    """Pulumi.prod.yaml with the technician group and the first break-glass account given by name."""
    document: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text())
    access = document["config"]["cipp-hardening:technicianAccess"]
    access["includeGroupIds"] = [TECHNICIANS]
    access["breakGlassUserIds"] = [BREAK_GLASS_UPN, BREAK_GLASS_2]
    access.update(technician)
    document["config"].pop("cipp-hardening:scenariosFile")  # its scenarios name the example's group id
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def directory_file(tmp_path: Path, groups: list[dict[str, str]] | None = None, tenant: str = MSP_TENANT) -> Path:
    document = {
        "tenantId": tenant,
        "users": [{"id": BREAK_GLASS_ID, "userPrincipalName": BREAK_GLASS_UPN}],
        "groups": groups if groups is not None else [{"id": TECH_GROUP_ID, "displayName": TECHNICIANS}],
    }
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(document))
    return path


def test_the_config_records_which_values_are_names() -> None:
    raw = msp_raw()
    raw["technicianAccess"]["includeGroupIds"] = [TECHNICIANS, "00000000-0000-0000-0000-00000000B001"]
    raw["serviceAccount"]["userId"] = "cipp-sa@msp.example"
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.technician_access.include_group_ids == (TECHNICIANS, "00000000-0000-0000-0000-00000000b001")
    assert config.names == (
        DirectoryName("serviceAccount.userId", "user", "cipp-sa@msp.example"),
        DirectoryName("technicianAccess.includeGroupIds[0]", "group", TECHNICIANS),
    )


@pytest.fixture(autouse=True)
def _no_directory_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIRECTORY_SNAPSHOT_ENV, raising=False)


def test_an_offline_plan_with_names_and_no_snapshot_says_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan.main(["--stack-file", str(named_stack(tmp_path))]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "technicianAccess.includeGroupIds[0]: 'CIPP Technicians' needs a live lookup or a directory snapshot" in out
    assert "technicianAccess.breakGlassUserIds[0]: 'breakglass1@msp.example' needs a live lookup" in out
    assert "cipp-hardening snapshot --stack prod" in out


def test_an_offline_plan_resolves_names_from_a_directory_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "plan.json"
    args = ["--stack-file", str(named_stack(tmp_path)), "--directory", str(directory_file(tmp_path))]
    assert plan.main([*args, "--json", str(target)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (
        f"name resolved: cipp-hardening:technicianAccess.includeGroupIds[0]: 'CIPP Technicians' → {TECH_GROUP_ID}"
        in out
    )
    assert "names resolved from the directory snapshot" in out
    document = json.loads(target.read_text())
    [part_a] = [r for r in document["resources"] if r["name"] == "technician-access-policy"]
    users = part_a["graph"]["conditions"]["users"]
    assert users["includeGroups"] == [TECH_GROUP_ID]
    assert users["excludeUsers"][:2] == [BREAK_GLASS_ID, BREAK_GLASS_2]
    # The matrix judges the resolved ids: the break-glass row is about the account the policy excludes.
    rows = {row["name"]: row for row in document["matrix"]["rows"]}
    assert rows[f"break-glass {BREAK_GLASS_ID} from outside"]["status"] == "ok"
    assert document["matrix"]["failures"] == 0


def test_unknown_and_ambiguous_names_are_errors_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twins = [
        {"id": "7e1c0a52-4b1d-4c1e-9a11-0000000000a2", "displayName": "Helpdesk"},
        {"id": "7e1c0a52-4b1d-4c1e-9a11-0000000000a3", "displayName": "helpdesk"},
    ]
    stack_file = named_stack(tmp_path, includeGroupIds=["Helpdesk", "Nobody"])
    args = ["--stack-file", str(stack_file), "--directory", str(directory_file(tmp_path, twins))]
    assert plan.main(args) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "technicianAccess.includeGroupIds[0]: More than one group found with display name: 'Helpdesk'" in out
    assert "technicianAccess.includeGroupIds[1]: No group found with display name: 'Nobody'" in out


def test_a_directory_snapshot_of_another_tenant_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = directory_file(tmp_path, tenant=str(uuid.uuid4()))
    assert plan.main(["--stack-file", str(named_stack(tmp_path)), "--directory", str(other)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "directory.json (option --directory): a directory snapshot of tenant" in out
    assert f"not of this stack's tenant {MSP_TENANT}" in out


def test_a_name_that_hides_a_clash_is_caught_after_resolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = named_stack(tmp_path, includeUserIds=[BREAK_GLASS_ID])
    assert plan.main(["--stack-file", str(stack_file), "--directory", str(directory_file(tmp_path))]) == 2
    assert f"{BREAK_GLASS_ID} is also a break-glass account" in capsys.readouterr().out


# --- live: Graph (verify, snapshot) -----------------------------------------------------------------


@pytest.fixture
def directory_reader(graph_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    client_id, secret = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    roles = ["Policy.Read.All", "User.Read.All", "Group.Read.All"]
    graph_emulator.register_app(client_id, secret, MSP_TENANT, graph_roles=roles)
    use_env(monkeypatch, graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret))
    graph_emulator.add_user(MSP_TENANT, {"id": BREAK_GLASS_ID, "userPrincipalName": BREAK_GLASS_UPN})
    graph_emulator.add_group(MSP_TENANT, {"id": TECH_GROUP_ID, "displayName": TECHNICIANS})
    yield graph_emulator
    credentials.reset_cache()


def with_graph_url(stack_file: Path, url: str) -> Path:
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["cipp-hardening:graphUrl"] = url
    stack_file.write_text(yaml.safe_dump(document))
    return stack_file


def test_the_emulator_finds_users_by_upn_and_groups_by_display_name(directory_reader: GraphEmulator) -> None:
    token = directory_reader.access_token(MSP_TENANT, os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"])
    session = requests.Session()
    session.verify = str(directory_reader.ca_bundle)
    session.headers["Authorization"] = f"Bearer {token}"
    base = f"{directory_reader.url}/v1.0"
    assert session.get(f"{base}/users/BreakGlass1@msp.example", params={"$select": "id"}).json()["id"] == BREAK_GLASS_ID
    missing = session.get(f"{base}/users/nobody@msp.example")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "Request_ResourceNotFound")
    found = session.get(f"{base}/groups", params={"$filter": "displayName eq 'cipp technicians'", "$select": "id"})
    assert found.json()["value"] == [{"id": TECH_GROUP_ID}]


def test_verify_resolves_names_through_graph(
    tmp_path: Path, directory_reader: GraphEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = with_graph_url(named_stack(tmp_path), directory_reader.url)
    config = verify.config_from_stack_file(stack_file)
    resolved = verify.resolve_with_graph(config, directory_reader.url, MSP_TENANT, verify.token_source(config))
    assert isinstance(resolved, MspStack)
    assert resolved.technician_access.include_group_ids == (TECH_GROUP_ID,)
    assert resolved.technician_access.break_glass_user_ids == (BREAK_GLASS_ID, BREAK_GLASS_2)
    assert resolved.names == ()
    methods = {(r.method, r.path.split("?")[0]) for r in directory_reader.requests() if "/v1.0/" in r.path}
    assert methods == {("GET", "/v1.0/users/breakglass1@msp.example"), ("GET", "/v1.0/groups")}


def test_verify_names_an_unknown_name_and_exits_2(
    tmp_path: Path, directory_reader: GraphEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = with_graph_url(named_stack(tmp_path, includeGroupIds=["Tech Team"]), directory_reader.url)
    assert verify.main(["--stack-file", str(stack_file)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "technicianAccess.includeGroupIds[0]: No group found with display name: 'Tech Team' (Graph)" in out


def test_snapshot_saves_the_names_and_the_plan_reads_them(
    tmp_path: Path, directory_reader: GraphEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = with_graph_url(named_stack(tmp_path), directory_reader.url)
    out = tmp_path / "snap"
    assert snapshot.main(["--stack", "prod", "--stack-file", str(stack_file), "--out", str(out)]) == 0
    saved = json.loads((out / "directory.json").read_text())
    assert saved == {
        "tenantId": MSP_TENANT,
        "users": [{"id": BREAK_GLASS_ID, "userPrincipalName": BREAK_GLASS_UPN}],
        "groups": [{"id": TECH_GROUP_ID, "displayName": TECHNICIANS}],
    }
    assert not (out / "policies.json").exists(), "an MSP stack's plan reads no policies"
    assert all(r.method == "GET" for r in directory_reader.requests() if "/v1.0/" in r.path)
    capsys.readouterr()
    assert plan.main(["--stack-file", str(stack_file), "--directory", str(out / "directory.json")]) == 0
    assert TECH_GROUP_ID in capsys.readouterr().out


def test_a_failed_azuread_lookup_keeps_the_reason_and_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_azuread

    from cipp_hardening.config import ConfigError
    from cipp_hardening.directory_names import _azuread_lookup, resolve_with

    token = "azuread:index/getUser:getUser"
    # What the Python SDK raises for the bridge's error (pulumi/runtime/invoke.py; the bridge's text is
    # pulumi-terraform-bridge's multierror list, the reason terraform-provider-azuread's userDataSourceRead's)
    failure = (
        f"invoke of {token} failed: invoking {token}: 1 error occurred:\n"
        '\t* [user_principal_name] User with UPN "gone@msp.example" was not found\n\n'
    )

    def get_user(**_: Any) -> Any:
        raise Exception(failure)

    monkeypatch.setattr(pulumi_azuread, "get_user", get_user)
    raw = msp_raw()
    raw["serviceAccount"]["userId"] = "gone@msp.example"
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    with pytest.raises(ConfigError) as raised:
        resolve_with(config, _azuread_lookup)
    assert [(p.key, p.message) for p in raised.value.problems] == [
        ("serviceAccount.userId", 'User with UPN "gone@msp.example" was not found')
    ]


def test_the_offline_lookups_answer_the_providers_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cipp_hardening.directory_names import GET_GROUP, GET_USER, answer_invoke

    monkeypatch.setenv(DIRECTORY_SNAPSHOT_ENV, str(directory_file(tmp_path)))
    # terraform-provider-azuread v3.9's data sources set the id to the path (d.SetId(stable.NewUserID(id).ID()),
    # likewise for groups); object_id is the GUID, which is what the program puts into a policy.
    user = answer_invoke(GET_USER, {"userPrincipalName": BREAK_GLASS_UPN})
    assert (user["id"], user["objectId"]) == (f"/users/{BREAK_GLASS_ID}", BREAK_GLASS_ID)
    group = answer_invoke(GET_GROUP, {"displayName": TECHNICIANS})
    assert (group["id"], group["objectId"]) == (f"/groups/{TECH_GROUP_ID}", TECH_GROUP_ID)


# What the bridge sends when Graph refuses the filter pulumi-azuread's getGroup builds for a name with an
# apostrophe (tools/standin/azuread_standin.py, get_group; tests/engine/test_standin_provider.py pins it).
APOSTROPHE_GROUP = "O'Brien's techs"
REFUSED_FILTER = (
    "invoke of azuread:index/getGroup:getGroup failed: invoking azuread:index/getGroup:getGroup: 1 error occurred:\n"
    f"\t* Retrieving groups for filter (displayName eq '{APOSTROPHE_GROUP}'): unexpected status 400 (400 Bad Request) "
    "with error: BadRequest: Invalid filter clause: Syntax error at position 23 in "
    f"'displayName eq '{APOSTROPHE_GROUP}''.\n\n"
)


def test_a_group_name_with_an_apostrophe_is_an_error_naming_the_key_and_asking_for_the_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pulumi_azuread

    from cipp_hardening.config import ConfigError
    from cipp_hardening.directory_names import _azuread_lookup, resolve_with

    def get_group(**_: Any) -> Any:
        raise Exception(REFUSED_FILTER)

    monkeypatch.setattr(pulumi_azuread, "get_group", get_group)
    raw = msp_raw()
    raw["technicianAccess"]["includeGroupIds"] = [APOSTROPHE_GROUP]
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    with pytest.raises(ConfigError) as raised:
        resolve_with(config, _azuread_lookup)
    [(key, message)] = [(p.key, p.message) for p in raised.value.problems]
    assert key == "technicianAccess.includeGroupIds[0]"
    assert message.startswith(f"the group {APOSTROPHE_GROUP!r} cannot be looked up by name: its apostrophe breaks")
    assert "give the group's object id instead" in message
    assert message.endswith(
        f"Invalid filter clause: Syntax error at position 23 in 'displayName eq '{APOSTROPHE_GROUP}''."
    ), "the provider's reason is kept"


def test_an_offline_plan_refuses_a_group_name_with_an_apostrophe_as_the_provider_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = [{"id": TECH_GROUP_ID, "displayName": APOSTROPHE_GROUP}]
    stack_file = named_stack(tmp_path, includeGroupIds=[APOSTROPHE_GROUP])
    args = ["--stack-file", str(stack_file), "--directory", str(directory_file(tmp_path, groups))]
    assert plan.main(args) == 2, "the snapshot holds the group, but `pulumi preview` could not look it up"
    out = " ".join(capsys.readouterr().out.split())
    assert f"technicianAccess.includeGroupIds[0]: the group {APOSTROPHE_GROUP!r} cannot be looked up by name" in out
    assert "give the group's object id instead" in out
