"""The Graph emulator's read-only directory: users, groups, transitive memberships and group members."""

from __future__ import annotations

import uuid

import pytest
import requests

from emulators.clients import GraphApp, GraphClient
from emulators.graph import GraphEmulator
from tests.emulators import fixtures

emulator_tls = fixtures.emulator_tls
graph_emulator_server = fixtures.graph_emulator_server
graph_emulator = fixtures.graph_emulator
graph_app = fixtures.graph_app
graph_client = fixtures.graph_client

ALICE = "00000000-0000-0000-0000-0000000000a1"
TECHS, NESTED = "00000000-0000-0000-0000-0000000000b1", "00000000-0000-0000-0000-0000000000b2"
GLOBAL_ADMIN_TEMPLATE = "62e90394-69f5-4237-9190-012177145e10"
NOT_FOUND = "does not exist or one of its queried reference-property objects are not present."


def seed(emulator: GraphEmulator, tenant: str) -> None:
    emulator.add_user(
        tenant,
        {"id": ALICE, "displayName": "Alice", "userPrincipalName": "alice@msp.example", "onPremisesSyncEnabled": True},
    )
    emulator.add_group(tenant, {"id": NESTED, "displayName": "Tier 1", "isAssignableToRole": True}, [ALICE])
    emulator.add_group(tenant, {"id": TECHS, "displayName": "CIPP technicians"}, [NESTED])
    emulator.add_directory_role(
        tenant,
        {"id": str(uuid.uuid4()), "displayName": "Global Administrator", "roleTemplateId": GLOBAL_ADMIN_TEMPLATE},
        [NESTED],
    )


def error_of(response: requests.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    return error


def test_a_user_has_the_default_properties_unless_selected(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    seed(graph_emulator, graph_app.tenant)
    plain = graph_client.get(f"/v1.0/users/{ALICE}").json()
    assert plain["userPrincipalName"] == "alice@msp.example"
    assert "accountEnabled" not in plain, "not in Graph's default property set: it must be $select-ed"
    selected = graph_client.get(f"/v1.0/users/{ALICE}", params={"$select": "id,accountEnabled,onPremisesSyncEnabled"})
    body = selected.json()
    assert {k: v for k, v in body.items() if not k.startswith("@")} == {
        "id": ALICE,
        "accountEnabled": True,
        "onPremisesSyncEnabled": True,
    }
    assert body["@odata.context"].endswith("$metadata#users/$entity")
    error = error_of(graph_client.get(f"/v1.0/users/{ALICE}", params={"$select": "nope"}), 400)
    assert error["message"] == "Could not find a property named 'nope' on type 'microsoft.graph.user'."


def test_unknown_ids_are_request_resource_not_found(graph_client: GraphClient, graph_app: GraphApp) -> None:
    missing = "00000000-0000-0000-0000-0000000000ff"
    for path in (f"/v1.0/users/{missing}", f"/v1.0/groups/{missing}", f"/v1.0/users/{missing}/transitiveMemberOf"):
        error = error_of(graph_client.get(path), 404)
        assert error["code"] == "Request_ResourceNotFound"
        assert error["message"] == f"Resource '{missing}' {NOT_FOUND}"
        assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


def test_groups_show_is_assignable_to_role_and_their_direct_members(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    seed(graph_emulator, graph_app.tenant)
    assert graph_client.get(f"/v1.0/groups/{TECHS}").json()["isAssignableToRole"] is None
    assert graph_client.get(f"/v1.0/groups/{NESTED}").json()["isAssignableToRole"] is True
    members = graph_client.get(f"/v1.0/groups/{TECHS}/members").json()["value"]
    assert [(m["@odata.type"], m["id"]) for m in members] == [("#microsoft.graph.group", NESTED)]
    assert graph_client.post(f"/v1.0/groups/{TECHS}/members", json={}).status_code == 405


def test_transitive_member_of_follows_nesting_and_roles_and_pages(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    seed(graph_emulator, graph_app.tenant)
    extra = [str(uuid.UUID(int=i)) for i in range(1, 4)]
    for group in extra:
        graph_emulator.add_group(graph_app.tenant, {"id": group, "displayName": group}, [ALICE])
    graph_emulator.settings.directory_page_size = 2
    seen, url = [], f"/v1.0/users/{ALICE}/transitiveMemberOf"
    while url:
        page = graph_client.get(url).json()
        assert len(page["value"]) <= 2
        seen += page["value"]
        url = page.get("@odata.nextLink", "")
    kinds = {item["id"]: item["@odata.type"] for item in seen}
    assert {k for k, v in kinds.items() if v == "#microsoft.graph.group"} == {NESTED, TECHS, *extra}
    [role] = [item for item in seen if item["@odata.type"] == "#microsoft.graph.directoryRole"]
    assert role["roleTemplateId"] == GLOBAL_ADMIN_TEMPLATE
    assert graph_client.get(f"/v1.0/users/{ALICE}/transitiveMemberOf", params={"$top": "1000"}).status_code == 400


def token_with(emulator: GraphEmulator, tenant: str, roles: list[str]) -> GraphClient:
    client_id, secret = str(uuid.uuid4()), "s"
    emulator.register_app(client_id, secret, tenant, graph_roles=roles)
    return GraphClient(emulator.url, str(emulator.ca_bundle), emulator.access_token(tenant, client_id, secret))


def test_permissions_user_read_all_and_group_member_read_all(
    graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    tenant = graph_app.tenant
    seed(graph_emulator, tenant)
    graph_emulator.settings.enforce_roles = True
    policy_only = token_with(graph_emulator, tenant, ["Policy.Read.All"])
    assert error_of(policy_only.get(f"/v1.0/users/{ALICE}"), 403)["code"] == "Authorization_RequestDenied"
    assert policy_only.get(f"/v1.0/groups/{TECHS}").status_code == 403

    verifier = token_with(graph_emulator, tenant, ["Policy.Read.All", "User.Read.All", "GroupMember.Read.All"])
    assert verifier.get(f"/v1.0/users/{ALICE}").status_code == 200
    assert verifier.get(f"/v1.0/groups/{TECHS}/members").status_code == 200
    items = verifier.get(f"/v1.0/users/{ALICE}/transitiveMemberOf").json()["value"]
    [role] = [item for item in items if item["@odata.type"] == "#microsoft.graph.directoryRole"]
    assert role.get("roleTemplateId") is None, "a type the token may not read comes back with its id only"
    assert next(i for i in items if i["id"] == NESTED)["displayName"] == "Tier 1"

    users_only = token_with(graph_emulator, tenant, ["User.Read.All"])
    groups = [i for i in users_only.get(f"/v1.0/users/{ALICE}/transitiveMemberOf").json()["value"]]
    assert all(set(g) == {"@odata.type", "id"} for g in groups)
    roles_too = token_with(graph_emulator, tenant, ["User.Read.All", "RoleManagement.Read.Directory"])
    items = roles_too.get(f"/v1.0/users/{ALICE}/transitiveMemberOf").json()["value"]
    assert any(i.get("roleTemplateId") == GLOBAL_ADMIN_TEMPLATE for i in items)


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_the_directory_is_read_only(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp, method: str
) -> None:
    seed(graph_emulator, graph_app.tenant)
    assert graph_client.request(method, f"/v1.0/users/{ALICE}", json={"accountEnabled": False}).status_code == 405
    assert graph_emulator.requests(method=method)[-1].status == 405


def test_authentication_methods_need_their_own_permission_and_default_to_the_password(
    graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    tenant = graph_app.tenant
    seed(graph_emulator, tenant)
    fido2 = {"@odata.type": "#microsoft.graph.fido2AuthenticationMethod", "id": "k1", "displayName": "Key"}
    graph_emulator.add_user(
        tenant, {"id": NESTED[:-2] + "c1", "userPrincipalName": "bg@msp.example", "authenticationMethods": [fido2]}
    )
    graph_emulator.settings.enforce_roles = True
    verifier = token_with(graph_emulator, tenant, ["User.Read.All", "GroupMember.Read.All"])
    assert (
        error_of(verifier.get(f"/v1.0/users/{ALICE}/authentication/methods"), 403)["code"]
        == "Authorization_RequestDenied"
    )
    methods = token_with(graph_emulator, tenant, ["UserAuthenticationMethod.Read.All"])
    [password] = methods.get(f"/v1.0/users/{ALICE}/authentication/methods").json()["value"]
    assert password["@odata.type"] == "#microsoft.graph.passwordAuthenticationMethod"
    [key] = methods.get("/v1.0/users/bg@msp.example/authentication/methods").json()["value"]
    assert key == fido2


def values(response: requests.Response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    page: list[dict[str, object]] = response.json()["value"]
    return page


def test_users_and_groups_by_filter_with_odatas_quote_rules_on_v1_and_beta(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    """What pulumi-azuread's lookups send (terraform-provider-azuread v3.9 userDataSourceRead, groupDataSourceRead)."""
    seed(graph_emulator, graph_app.tenant)
    oneil, sales = "00000000-0000-0000-0000-0000000000a2", "00000000-0000-0000-0000-0000000000b3"
    graph_emulator.add_user(graph_app.tenant, {"id": oneil, "userPrincipalName": "o'neil@msp.example"})
    graph_emulator.add_group(graph_app.tenant, {"id": sales, "displayName": "Sales and CIPP"}, [oneil], owners=[ALICE])

    by_upn = {"$filter": "userPrincipalName eq 'O''Neil@msp.example'"}  # a quote doubled: one quote in the text
    assert [u["id"] for u in values(graph_client.get("/v1.0/users", params=by_upn))] == [oneil]
    by_mail_nickname = {"$filter": "mailNickname eq 'nobody'"}  # outside the default set, still filterable
    assert values(graph_client.get("/v1.0/users", params=by_mail_nickname)) == []
    by_name = {"$filter": "displayName eq 'Sales and CIPP'"}  # `and` inside a literal is text
    assert [g["id"] for g in values(graph_client.get("/beta/groups", params=by_name))] == [sales]
    assert [m["id"] for m in values(graph_client.get(f"/beta/groups/{sales}/members"))] == [oneil]
    assert [o["id"] for o in values(graph_client.get(f"/beta/groups/{sales}/owners"))] == [ALICE]
    manager = error_of(graph_client.get(f"/v1.0/users/{oneil}/manager"), 404)
    assert (manager["code"], manager["message"]) == ("Request_ResourceNotFound", f"Resource 'manager' {NOT_FOUND}")
    selected = graph_client.get(f"/v1.0/users/{oneil}", params={"$select": "id,ageGroup,employeeOrgData,userType"})
    assert selected.status_code == 200, "the properties the provider $selects are known"

    # A quote that is not doubled ends the literal: the rest is Graph's syntax error (emulators/graph.py cites it).
    unescaped = {"$filter": "displayName eq 'O'Brien'"}
    error = error_of(graph_client.get("/beta/groups", params=unescaped), 400)
    assert (error["code"], error["message"]) == (
        "BadRequest",
        "Invalid filter clause: Syntax error at position 23 in 'displayName eq 'O'Brien''.",
    )
    unterminated = error_of(graph_client.get("/v1.0/users", params={"$filter": "userPrincipalName eq 'x"}), 400)
    assert unterminated["message"] == (
        "Invalid filter clause: There is an unterminated string literal at position 23 in 'userPrincipalName eq 'x'."
    )
    assert graph_client.post("/beta/groups", json={"displayName": "x"}).status_code == 400, "beta stays read-only"


def test_a_filtered_listing_keeps_its_filter_across_pages(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    for index in range(3):
        graph_emulator.add_group(graph_app.tenant, {"id": str(uuid.UUID(int=index + 1)), "displayName": "Twin"})
    graph_emulator.add_group(graph_app.tenant, {"id": str(uuid.UUID(int=9)), "displayName": "Other"})
    seen, url, params = [], "/v1.0/groups", {"$filter": "displayName eq 'twin'", "$top": "1"}
    while url:
        page = graph_client.get(url, params=params).json()
        seen += [g["id"] for g in page["value"]]
        url, params = page.get("@odata.nextLink", ""), {}
    assert seen == [str(uuid.UUID(int=i)) for i in (1, 2, 3)]
