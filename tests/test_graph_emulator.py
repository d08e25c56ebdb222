"""The Graph CA emulator behaves like Microsoft Graph v1.0 (docs/graph-ca.md), over real HTTPS on loopback."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential

from emulators import tls
from emulators.clients import CA_BASE, GraphApp, GraphClient
from emulators.graph import (
    ENUMS,
    POLICY_1007,
    TYPES,
    ExportRejected,
    GraphEmulator,
    is_workload_identity_policy,
    json_files,
    read_json_document,
)
from emulators.identity import Directory
from tests.emulators import fixtures

# tests/conftest.py may not list tests.emulators.fixtures in pytest_plugins, so bring the fixtures in here.
emulator_tls = fixtures.emulator_tls
graph_emulator_server = fixtures.graph_emulator_server
graph_emulator = fixtures.graph_emulator
graph_app = fixtures.graph_app
graph_client = fixtures.graph_client

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"
SCHEMA = SHARED / "reference" / "graph-ca-schema.v1.0.json"
POLICIES = f"{CA_BASE}/policies"
LOCATIONS = f"{CA_BASE}/namedLocations"
ENUMERATED = "#microsoft.graph.conditionalAccessEnumeratedExternalTenants"
IPV4 = "#microsoft.graph.iPv4CidrRange"


def policy_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": "Require MFA",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["All"], "excludeGroups": ["group-1"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    return body | overrides


def ip_location_body(*cidrs: str, trusted: bool = False, name: str = "Office") -> dict[str, Any]:
    ranges = [{"@odata.type": IPV4, "cidrAddress": cidr} for cidr in cidrs or ("203.0.113.0/24",)]
    return {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": name,
        "isTrusted": trusted,
        "ipRanges": ranges,
    }


def create(client: GraphClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_graph_error(response: requests.Response, status: int, code: str, message_start: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(message_start)
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}


def annotation_keys(value: Any) -> set[str]:
    if isinstance(value, list):
        return set().union(*map(annotation_keys, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    return {key for key in value if "@" in key or key.startswith("#")}.union(*map(annotation_keys, value.values()))


def with_users(body: dict[str, Any], users: dict[str, Any]) -> dict[str, Any]:
    return {**body, "conditions": {**body["conditions"], "users": users}}


# -- identity ------------------------------------------------------------------------------------------


def test_azure_identity_client_secret_credential_gets_a_graph_token(graph_emulator: GraphEmulator, graph_app: GraphApp):
    credential = ClientSecretCredential(
        graph_app.tenant,
        graph_app.client_id,
        graph_app.secret,
        authority=graph_emulator.url,
        disable_instance_discovery=True,
        connection_verify=str(graph_emulator.ca_bundle),
    )
    token = credential.get_token("https://graph.microsoft.com/.default")

    claims = graph_emulator.directory.verify(token.token)
    assert (claims["tid"], claims["aud"]) == (graph_app.tenant, "https://graph.microsoft.com")
    # With instance discovery disabled MSAL fetches only the tenant's OpenID configuration, then the token.
    fetched = [(record.method, record.path) for record in graph_emulator.requests()]
    assert fetched == [
        ("GET", f"/{graph_app.tenant}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{graph_app.tenant}/oauth2/v2.0/token"),
    ]
    assert graph_emulator.requests(method="POST")[0].body["client_secret"] == "<redacted>"
    client = GraphClient(graph_emulator.url, str(graph_emulator.ca_bundle), token.token)
    assert client.get(POLICIES).status_code == 200


def test_token_endpoint_refuses_a_wrong_secret(graph_emulator: GraphEmulator, graph_app: GraphApp):
    form = {"grant_type": "client_credentials", "client_id": graph_app.client_id, "client_secret": "nope"}
    form["scope"] = "https://graph.microsoft.com/.default"
    url = f"{graph_emulator.url}/{graph_app.tenant}/oauth2/v2.0/token"
    response = requests.post(url, data=form, verify=str(graph_emulator.ca_bundle), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_instance_discovery_endpoint_answers_for_msal(graph_emulator: GraphEmulator):
    url = f"{graph_emulator.url}/common/discovery/instance"
    params = {"api-version": "1.1", "authorization_endpoint": "https://x/tenant-a/oauth2/v2.0/authorize"}
    body = requests.get(url, params=params, verify=str(graph_emulator.ca_bundle), timeout=10).json()
    assert body["tenant_discovery_endpoint"] == f"{graph_emulator.url}/tenant-a/v2.0/.well-known/openid-configuration"


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-jwt", "Access token validation failure."),
        ("Basic dXNlcjpwYXNz", "Access token validation failure."),
    ],
)
def test_graph_requires_a_valid_bearer_token(graph_emulator: GraphEmulator, authorization: str | None, message: str):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(
        graph_emulator.url + POLICIES, headers=headers, verify=str(graph_emulator.ca_bundle), timeout=10
    )
    assert_graph_error(response, 401, "InvalidAuthenticationToken", message)
    assert "WWW-Authenticate" in response.headers


def test_graph_refuses_a_token_for_another_audience(graph_emulator: GraphEmulator, graph_app: GraphApp):
    token = graph_emulator.access_token(graph_app.tenant, graph_app.client_id, graph_app.secret, "api://cipp/.default")
    client = GraphClient(graph_emulator.url, str(graph_emulator.ca_bundle), token)
    assert_graph_error(client.get(POLICIES), 401, "InvalidAuthenticationToken", "Access token validation failure.")


def test_the_token_tenant_selects_the_tenant(graph_emulator: GraphEmulator, graph_app: GraphApp):
    other_tenant = str(uuid.uuid4())
    graph_emulator.register_app("multi-tenant-app", "s", graph_app.tenant, consented_tenants=[other_tenant])
    graph_emulator.put_policy(graph_app.tenant, policy_body(displayName="home"))
    graph_emulator.put_policy(other_tenant, policy_body(displayName="client"))
    for tenant, expected in ((graph_app.tenant, "home"), (other_tenant, "client")):
        token = graph_emulator.access_token(tenant, "multi-tenant-app", "s")
        client = GraphClient(graph_emulator.url, str(graph_emulator.ca_bundle), token)
        assert [p["displayName"] for p in client.get(POLICIES).json()["value"]] == [expected]
        assert graph_emulator.requests(path_contains="/policies")[-1].tenant == tenant


def test_missing_permissions_are_403_when_roles_are_enforced(graph_emulator: GraphEmulator, graph_app: GraphApp):
    graph_emulator.settings.enforce_roles = True
    graph_emulator.register_app("no-roles", "s", graph_app.tenant)
    token = graph_emulator.access_token(graph_app.tenant, "no-roles", "s")
    client = GraphClient(graph_emulator.url, str(graph_emulator.ca_bundle), token)
    assert_graph_error(client.get(POLICIES), 403, "AccessDenied")


# -- policies --------------------------------------------------------------------------------------------


def test_post_returns_201_with_the_created_entity(graph_client: GraphClient, graph_emulator: GraphEmulator):
    response = graph_client.post(POLICIES, json=policy_body())

    assert response.status_code == 201
    created = response.json()
    assert created["@odata.context"].endswith("/v1.0/$metadata#identity/conditionalAccess/policies/$entity")
    assert uuid.UUID(created["id"])
    assert created["createdDateTime"].endswith("Z")
    assert "modifiedDateTime" in created  # §2.7: null on create
    assert response.headers["Location"].endswith(f"/policies/{created['id']}")
    assert graph_client.get(f"{POLICIES}/{created['id']}").json()["displayName"] == "Require MFA"


def test_get_returns_the_canonical_shape(graph_client: GraphClient):
    created = create(graph_client, POLICIES, policy_body())
    policy = graph_client.get(f"{POLICIES}/{created['id']}").json()

    users = policy["conditions"]["users"]
    for collection in (
        "includeUsers",
        "excludeUsers",
        "includeGroups",
        "excludeGroups",
        "includeRoles",
        "excludeRoles",
    ):
        assert isinstance(users[collection], list)
    assert users["includeGuestsOrExternalUsers"] is None
    assert users["excludeGuestsOrExternalUsers"] is None
    applications = policy["conditions"]["applications"]
    assert (applications["excludeApplications"], applications["includeUserActions"]) == ([], [])
    for risk in ("signInRiskLevels", "userRiskLevels", "servicePrincipalRiskLevels"):
        assert policy["conditions"][risk] == []
    for unset in ("locations", "platforms", "devices", "clientApplications", "authenticationFlows"):
        assert policy["conditions"][unset] is None
    assert policy["sessionControls"] is None
    grant = policy["grantControls"]
    assert (grant["customAuthenticationFactors"], grant["termsOfUse"]) == ([], [])


def test_paging_follows_opaque_skiptokens(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    for index in range(25):
        graph_emulator.put_policy(graph_app.tenant, policy_body(displayName=f"policy {index:02}"))

    names: list[str] = []
    url = f"{POLICIES}?$top=10"
    page_sizes = []
    while url:
        page = graph_client.get(url).json()
        assert page["@odata.context"].endswith("#identity/conditionalAccess/policies")
        page_sizes.append(len(page["value"]))
        names += [policy["displayName"] for policy in page["value"]]
        url = page.get("@odata.nextLink")
        assert url is None or ("$skiptoken=" in url and "$top=10" in url)

    assert page_sizes == [10, 10, 5]
    assert names == [f"policy {index:02}" for index in range(25)]
    assert_graph_error(graph_client.get(f"{POLICIES}?$top=10&$skiptoken=10"), 400, "BadRequest")


def test_patch_merges_objects_replaces_arrays_and_null_clears(graph_client: GraphClient):
    body = policy_body(sessionControls={"signInFrequency": {"isEnabled": True, "type": "hours", "value": 4}})
    created = create(graph_client, POLICIES, body)
    url = f"{POLICIES}/{created['id']}"

    response = graph_client.patch(url, json={"conditions": {"users": {"excludeUsers": ["breakglass"]}}})
    assert (response.status_code, response.content) == (204, b"")
    users = graph_client.get(url).json()["conditions"]["users"]
    assert users["includeUsers"] == ["All"]  # sibling kept
    assert users["excludeGroups"] == ["group-1"]
    assert users["excludeUsers"] == ["breakglass"]
    graph_client.patch(url, json={"conditions": {"users": {"excludeUsers": ["someone-else"]}}})
    assert graph_client.get(url).json()["conditions"]["users"]["excludeUsers"] == ["someone-else"]  # replaced

    persistent = {"isEnabled": True, "mode": "never"}
    graph_client.patch(url, json={"sessionControls": {"persistentBrowser": persistent}})
    session = graph_client.get(url).json()["sessionControls"]
    assert session["signInFrequency"]["value"] == 4  # merged, not replaced
    assert session["persistentBrowser"] == persistent

    graph_client.patch(url, json={"sessionControls": None})
    policy = graph_client.get(url).json()
    assert policy["sessionControls"] is None
    assert policy["modifiedDateTime"] > policy["createdDateTime"]


def test_patch_of_guest_exclusion_merges_and_switches_tenant_kind(graph_client: GraphClient):
    created = create(graph_client, POLICIES, policy_body())
    url = f"{POLICIES}/{created['id']}"
    exclusion = {
        "guestOrExternalUserTypes": "serviceProvider,internalGuest",
        "externalTenants": {"@odata.type": ENUMERATED, "membershipKind": "enumerated", "members": ["msp-tenant"]},
    }
    graph_client.patch(url, json={"conditions": {"users": {"excludeGuestsOrExternalUsers": exclusion}}})
    stored = graph_client.get(url).json()["conditions"]["users"]["excludeGuestsOrExternalUsers"]
    assert stored["guestOrExternalUserTypes"] == "internalGuest,serviceProvider"  # flags come back in declaration order
    assert stored["externalTenants"]["members"] == ["msp-tenant"]

    all_tenants = {"externalTenants": {"membershipKind": "all"}}
    graph_client.patch(url, json={"conditions": {"users": {"excludeGuestsOrExternalUsers": all_tenants}}})
    stored = graph_client.get(url).json()["conditions"]["users"]["excludeGuestsOrExternalUsers"]
    assert stored["guestOrExternalUserTypes"] == "internalGuest,serviceProvider"
    assert stored["externalTenants"] == {
        "@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants",
        "membershipKind": "all",
    }

    graph_client.patch(url, json={"conditions": {"users": {"excludeGuestsOrExternalUsers": None}}})
    assert graph_client.get(url).json()["conditions"]["users"]["excludeGuestsOrExternalUsers"] is None


@pytest.mark.parametrize(
    "body",
    [
        policy_body(unknownProperty=True),
        policy_body(conditions={**policy_body()["conditions"], "deviceStates": None}),  # beta-only property
        with_users(policy_body(), {"includeUsers": ["All"], "includeGuests": []}),
        policy_body(state="on"),
        policy_body(grantControls={"operator": "OR", "builtInControls": ["mfa", "unknownFutureValue"]}),
        with_users(policy_body(), {"includeUsers": None}),
        policy_body(**{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#policies/$entity"}),
        with_users(
            policy_body(),
            {"includeUsers": ["All"], "excludeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "partner"}},
        ),
    ],
    ids=[
        "unknown",
        "beta-property",
        "nested-unknown",
        "enum",
        "sentinel-enum",
        "null-collection",
        "annotation",
        "flags",
    ],
)
def test_schema_mismatch_is_1007(graph_client: GraphClient, body: dict[str, Any]):
    assert_graph_error(graph_client.post(POLICIES, json=body), 400, "BadRequest", POLICY_1007)


def test_enumerated_external_tenants_need_odata_type(graph_client: GraphClient):
    guests = {"guestOrExternalUserTypes": "serviceProvider"}
    enumerated = {**guests, "externalTenants": {"membershipKind": "enumerated", "members": ["msp"]}}
    body = with_users(policy_body(), {"includeUsers": ["All"], "excludeGuestsOrExternalUsers": enumerated})
    assert_graph_error(graph_client.post(POLICIES, json=body), 400, "BadRequest", "1007:")

    all_kind = {**guests, "externalTenants": {"membershipKind": "all"}}
    created = create(
        graph_client,
        POLICIES,
        with_users(policy_body(), {"includeUsers": ["All"], "excludeGuestsOrExternalUsers": all_kind}),
    )
    tenants = created["conditions"]["users"]["excludeGuestsOrExternalUsers"]["externalTenants"]
    assert tenants["@odata.type"] == "#microsoft.graph.conditionalAccessAllExternalTenants"


def test_read_only_properties_are_ignored_but_ids_must_agree(graph_client: GraphClient):
    body = policy_body(id="client-chosen", createdDateTime=None, modifiedDateTime=None, templateId=None)
    created = create(graph_client, POLICIES, body)
    assert created["id"] != "client-chosen"
    url = f"{POLICIES}/{created['id']}"
    assert graph_client.patch(url, json={"id": created["id"], "state": "disabled"}).status_code == 204
    assert_graph_error(graph_client.patch(url, json={"id": str(uuid.uuid4()), "state": "enabled"}), 400, "BadRequest")


def test_unknown_named_location_is_1040(graph_client: GraphClient):
    missing = str(uuid.uuid4())
    body = policy_body(
        conditions={
            **policy_body()["conditions"],
            "locations": {"includeLocations": ["All"], "excludeLocations": [missing]},
        }
    )
    response = graph_client.post(POLICIES, json=body)
    assert_graph_error(
        response, 400, "BadRequest", f"1040: NamedLocation with id {missing} does not exist in the directory."
    )

    specials = {"includeLocations": ["All"], "excludeLocations": ["AllTrusted", "00000000-0000-0000-0000-000000000000"]}
    create(graph_client, POLICIES, policy_body(conditions={**policy_body()["conditions"], "locations": specials}))


def test_stale_location_references_only_fail_writes_that_send_them(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    stale = str(uuid.uuid4())
    conditions = {
        **policy_body()["conditions"],
        "locations": {"includeLocations": ["All"], "excludeLocations": [stale]},
    }
    policy_id = graph_emulator.put_policy(graph_app.tenant, policy_body(conditions=conditions))
    url = f"{POLICIES}/{policy_id}"

    assert graph_client.patch(url, json={"conditions": {"users": {"excludeUsers": ["u"]}}}).status_code == 204
    response = graph_client.patch(url, json={"conditions": {"locations": {"excludeLocations": [stale]}}})
    assert_graph_error(response, 400, "BadRequest", "1040:")


@pytest.mark.parametrize(
    ("session", "accepted"),
    [
        (
            {
                "signInFrequency": {
                    "isEnabled": True,
                    "frequencyInterval": "everyTime",
                    "authenticationType": "primaryAndSecondaryAuthentication",
                }
            },
            True,
        ),
        (
            {
                "signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"},
                "applicationEnforcedRestrictions": {"isEnabled": False},
            },
            False,
        ),
        (
            {
                "signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"},
                "disableResilienceDefaults": False,
            },
            False,
        ),
        (
            {
                "signInFrequency": {
                    "isEnabled": False,
                    "frequencyInterval": "timeBased",
                    "authenticationType": "primaryAndSecondaryAuthentication",
                }
            },
            False,
        ),
    ],
    ids=["everyTime", "everyTime+appEnforced", "everyTime+resilience", "all-default"],
)
def test_sign_in_frequency_rules(graph_client: GraphClient, session: dict[str, Any], accepted: bool):
    response = graph_client.post(POLICIES, json=policy_body(sessionControls=session))
    assert response.status_code == (201 if accepted else 400), response.text


def test_password_change_needs_its_documented_companions(graph_client: GraphClient):
    grant = {"operator": "OR", "builtInControls": ["passwordChange"]}
    response = graph_client.post(POLICIES, json=policy_body(grantControls=grant))
    assert_graph_error(response, 400, "BadRequest")
    assert response.json()["error"]["innerError"]["message"].startswith("1032:")
    conditions = {**policy_body()["conditions"], "userRiskLevels": ["high"]}
    grant = {"operator": "AND", "builtInControls": ["mfa", "passwordChange"]}
    create(graph_client, POLICIES, policy_body(conditions=conditions, grantControls=grant))


def test_missing_policy_is_404_resource_not_found(graph_client: GraphClient):
    missing = str(uuid.uuid4())
    response = graph_client.get(f"{POLICIES}/{missing}")
    assert_graph_error(response, 404, "ResourceNotFound")
    assert response.json()["error"]["message"].endswith(f"with id {missing} does not exist in the directory.")
    assert response.headers["request-id"] == response.json()["error"]["innerError"]["request-id"]


def test_policy_limit_is_195(graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp):
    for index in range(195):
        graph_emulator.put_policy(graph_app.tenant, policy_body(displayName=f"p{index}"))
    assert_graph_error(graph_client.post(POLICIES, json=policy_body()), 400, "BadRequest")


def test_delete_soft_deletes_and_restore_brings_the_policy_back(graph_client: GraphClient):
    created = create(graph_client, POLICIES, policy_body())
    assert graph_client.delete(f"{POLICIES}/{created['id']}").status_code == 204
    assert graph_client.get(f"{POLICIES}/{created['id']}").status_code == 404
    deleted = graph_client.get(f"{CA_BASE}/deletedItems/policies").json()["value"]
    assert [item["id"] for item in deleted] == [created["id"]]
    assert deleted[0]["deletedDateTime"]

    restored = graph_client.post(f"{CA_BASE}/deletedItems/policies/{created['id']}/restore")
    assert restored.status_code == 200
    assert graph_client.get(f"{POLICIES}/{created['id']}").json()["displayName"] == created["displayName"]


def test_filter_select_and_count(graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp):
    for name in ("alpha", "beta", "gamma"):
        graph_emulator.put_policy(graph_app.tenant, policy_body(displayName=name))
    page = graph_client.get(f"{POLICIES}?$filter=displayName eq 'beta'&$select=id,displayName&$count=true").json()
    assert page["@odata.count"] == 1
    assert [set(item) for item in page["value"]] == [{"id", "displayName"}]
    assert_graph_error(graph_client.get(f"{POLICIES}?$filter=displayName has 'x'"), 400, "BadRequest")


def test_concurrent_writes_are_all_applied(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = [policy_body(displayName=f"concurrent {index}") for index in range(16)]
        statuses = list(pool.map(lambda body: graph_client.post(POLICIES, json=body).status_code, bodies))
    assert statuses == [201] * 16
    assert len({policy["id"] for policy in graph_emulator.policies(graph_app.tenant)}) == 16


# -- named locations ---------------------------------------------------------------------------------------


def test_named_location_ranges_come_back_verbatim_and_in_order(graph_client: GraphClient):
    cidrs = ("12.34.221.11/22", "2001:0:9d38:90d6:0:0:0:0/63", "198.51.100.0/24")
    created = create(graph_client, LOCATIONS, ip_location_body(*cidrs))
    assert created["@odata.type"] == "#microsoft.graph.ipNamedLocation"
    assert created["modifiedDateTime"] == created["createdDateTime"]
    fetched = graph_client.get(f"{LOCATIONS}/{created['id']}").json()
    assert [item["cidrAddress"] for item in fetched["ipRanges"]] == list(cidrs)


@pytest.mark.parametrize(
    "body",
    [
        {key: value for key, value in ip_location_body().items() if key != "@odata.type"},
        {**ip_location_body(), "ipRanges": [{"cidrAddress": "203.0.113.0/24"}]},
        ip_location_body("203.0.113.7"),
        ip_location_body("10.0.0.0/7"),
        ip_location_body("300.1.2.3/24"),
        ip_location_body(*[f"10.{index // 256}.{index % 256}.0/24" for index in range(2001)]),
        {**ip_location_body(), "ipRanges": []},
    ],
    ids=["no-derived-type", "range-without-type", "bare-ip", "prefix-below-8", "bad-address", "2001-ranges", "empty"],
)
def test_named_location_validation(graph_client: GraphClient, body: dict[str, Any]):
    assert_graph_error(graph_client.post(LOCATIONS, json=body), 400, "BadRequest")


def test_named_location_patch_needs_the_derived_type(graph_client: GraphClient):
    created = create(graph_client, LOCATIONS, ip_location_body())
    url = f"{LOCATIONS}/{created['id']}"
    assert_graph_error(graph_client.patch(url, json={"displayName": "renamed"}), 400, "BadRequest")
    assert (
        graph_client.patch(
            url, json={"@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "renamed"}
        ).status_code
        == 204
    )
    assert graph_client.get(url).json()["displayName"] == "renamed"


def test_trusted_location_is_deletable_only_once_untrusted(graph_client: GraphClient):
    created = create(graph_client, LOCATIONS, ip_location_body(trusted=True))
    url = f"{LOCATIONS}/{created['id']}"
    assert_graph_error(graph_client.delete(url), 400, "BadRequest")
    untrust = {"@odata.type": "#microsoft.graph.ipNamedLocation", "isTrusted": False}
    assert graph_client.patch(url, json=untrust).status_code == 204
    assert graph_client.delete(url).status_code == 204


def test_referenced_location_is_not_deletable(graph_client: GraphClient):
    location = create(graph_client, LOCATIONS, ip_location_body())
    locations = {"includeLocations": ["All"], "excludeLocations": [location["id"]]}
    policy = create(
        graph_client, POLICIES, policy_body(conditions={**policy_body()["conditions"], "locations": locations})
    )
    assert_graph_error(graph_client.delete(f"{LOCATIONS}/{location['id']}"), 400, "BadRequest")
    graph_client.delete(f"{POLICIES}/{policy['id']}")
    assert graph_client.delete(f"{LOCATIONS}/{location['id']}").status_code == 204


def test_named_location_list_is_polymorphic(graph_client: GraphClient):
    create(graph_client, LOCATIONS, ip_location_body())
    country = {
        "@odata.type": "#microsoft.graph.countryNamedLocation",
        "displayName": "NL",
        "countriesAndRegions": ["NL"],
    }
    create(graph_client, LOCATIONS, country)
    everything = graph_client.get(LOCATIONS).json()["value"]
    assert {item["@odata.type"] for item in everything} == {
        "#microsoft.graph.ipNamedLocation",
        "#microsoft.graph.countryNamedLocation",
    }
    only_ip = graph_client.get(f"{LOCATIONS}?$filter=isof('microsoft.graph.ipNamedLocation')").json()["value"]
    assert [item["displayName"] for item in only_ip] == ["Office"]


# -- throttling, faults, lag -----------------------------------------------------------------------------------


class FakeClock:
    """The emulator's monotonic clock, moved only by the test: no sleeps, no margins under load."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    @classmethod
    def on(cls, emulator: GraphEmulator) -> FakeClock:
        clock = cls()
        emulator.clock = clock  # reset() (the fixture, after the test) puts the real clock back
        return clock

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_real_rate_of_one_request_per_second_per_tenant(graph_client: GraphClient, graph_emulator: GraphEmulator):
    clock = FakeClock.on(graph_emulator)
    graph_emulator.set_throttle(enabled=True, rate_per_s=1.0, burst=1)
    assert graph_client.get(POLICIES).status_code == 200
    throttled = graph_client.get(POLICIES)
    assert_graph_error(throttled, 429, "TooManyRequests")
    assert "Retry-After" not in throttled.headers  # §1.5
    assert graph_client.get("/v1.0/auditLogs/signIns").status_code == 200  # only CA routes are limited
    clock.advance(0.99)
    assert_graph_error(graph_client.get(POLICIES), 429, "TooManyRequests")  # not a whole token yet
    clock.advance(0.01)
    assert graph_client.get(POLICIES).status_code == 200


def test_throttling_is_per_tenant(graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp):
    clock = FakeClock.on(graph_emulator)
    graph_emulator.set_throttle(enabled=True, rate_per_s=5.0, burst=2)
    other = str(uuid.uuid4())
    graph_emulator.register_app("other-app", "s", other)
    other_client = GraphClient(
        graph_emulator.url, str(graph_emulator.ca_bundle), graph_emulator.access_token(other, "other-app", "s")
    )
    assert [graph_client.get(POLICIES).status_code for _ in range(3)] == [200, 200, 429]
    assert other_client.get(POLICIES).status_code == 200
    clock.advance(0.2)
    assert graph_client.get(POLICIES).status_code == 200


def test_injected_status_fault_fires_once(graph_client: GraphClient, graph_emulator: GraphEmulator):
    created = create(graph_client, POLICIES, policy_body())
    fault = graph_emulator.inject(method="PATCH", path_contains="/policies/", status=503, times=1)
    url = f"{POLICIES}/{created['id']}"
    assert_graph_error(graph_client.patch(url, json={"state": "disabled"}), 503, "ServiceUnavailable")
    assert graph_client.patch(url, json={"state": "disabled"}).status_code == 204
    assert fault.hits == 1
    assert graph_emulator.requests(method="PATCH", status=503)[0].fault


def test_dropped_connections(graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp):
    graph_emulator.inject(method="POST", path_contains="/policies", drop=True)
    with pytest.raises(requests.ConnectionError):
        graph_client.post(POLICIES, json=policy_body())
    assert graph_emulator.policies(graph_app.tenant) == []

    graph_emulator.inject(method="POST", path_contains="/policies", drop_after=True)
    with pytest.raises(requests.ConnectionError):
        graph_client.post(POLICIES, json=policy_body())
    assert len(graph_emulator.policies(graph_app.tenant)) == 1  # the write happened, its answer was lost


def test_delay_fault(graph_client: GraphClient, graph_emulator: GraphEmulator):
    graph_emulator.inject(method="GET", path_contains="/policies", delay_s=0.2)
    started = time.monotonic()
    assert graph_client.get(POLICIES).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_random_throttling_is_reproducible_with_a_seed(graph_client: GraphClient, graph_emulator: GraphEmulator):
    def run() -> list[int]:
        graph_emulator.clear_faults()
        graph_emulator.inject_random_throttling(0.4, seed=7)
        return [graph_client.get(POLICIES).status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert set(first) == {200, 429}
    assert all("Retry-After" not in r.headers for r in [graph_client.get(POLICIES) for _ in range(3)])


def test_new_named_location_is_missing_during_replication_lag(graph_client: GraphClient, graph_emulator: GraphEmulator):
    clock = FakeClock.on(graph_emulator)
    graph_emulator.settings.location_replication_lag_ms = 300
    location = create(graph_client, LOCATIONS, ip_location_body())
    locations = {"includeLocations": ["All"], "excludeLocations": [location["id"]]}
    body = policy_body(conditions={**policy_body()["conditions"], "locations": locations})
    assert_graph_error(graph_client.post(POLICIES, json=body), 400, "BadRequest", "1040:")
    clock.advance(0.25)
    assert_graph_error(graph_client.post(POLICIES, json=body), 400, "BadRequest", "1040:")
    clock.advance(0.1)
    create(graph_client, POLICIES, body)


def test_reads_can_lag_behind_writes(graph_client: GraphClient, graph_emulator: GraphEmulator):
    clock = FakeClock.on(graph_emulator)
    graph_emulator.settings.read_lag_ms = 200
    created = create(graph_client, POLICIES, policy_body())
    url = f"{POLICIES}/{created['id']}"
    assert graph_client.get(url).status_code == 404
    clock.advance(0.2)
    graph_client.patch(url, json={"displayName": "renamed"})
    assert graph_client.get(url).json()["displayName"] == "Require MFA"
    clock.advance(0.2)
    assert graph_client.get(url).json()["displayName"] == "renamed"


def test_request_log(graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp):
    created = create(graph_client, POLICIES, policy_body())
    graph_client.patch(f"{POLICIES}/{created['id']}", json={"state": "disabled"}, headers={"client-request-id": "abc"})
    graph_client.get(f"{POLICIES}?$top=5")

    (patch,) = graph_emulator.requests(method="PATCH")
    assert (patch.tenant, patch.status, patch.body) == (graph_app.tenant, 204, {"state": "disabled"})
    assert patch.headers["client-request-id"] == "abc"
    assert patch.headers["authorization"] == "<redacted>"
    assert graph_emulator.requests(method="GET", path_contains="/policies")[0].query == {"$top": "5"}
    graph_client.post(POLICIES, json=policy_body(bogus=1))
    assert "bogus" in graph_emulator.requests(status=400)[0].reason
    graph_emulator.clear_log()
    assert graph_emulator.requests() == []


# -- sign-in logs -------------------------------------------------------------------------------------------


def test_sign_ins_filter_and_paging(graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    applied = [{"id": "p1", "displayName": "MFA", "result": "reportOnlyFailure", "enforcedGrantControls": ["Mfa"]}]
    records = [
        {
            "createdDateTime": start + timedelta(minutes=i),
            "userId": f"user-{i}",
            "appliedConditionalAccessPolicies": applied,
        }
        for i in range(25)
    ]
    graph_emulator.add_sign_ins(graph_app.tenant, records)

    lower = (start + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    upper = (start + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = f"/v1.0/auditLogs/signIns?$filter=createdDateTime ge {lower} and createdDateTime le {upper}&$top=5"
    seen: list[dict[str, Any]] = []
    while url:
        page = graph_client.get(url).json()
        seen += page["value"]
        url = page.get("@odata.nextLink")

    assert [record["userId"] for record in seen] == [f"user-{i}" for i in range(20, 4, -1)]  # newest first
    first = seen[0]
    assert first["appliedConditionalAccessPolicies"][0] == {**applied[0], "enforcedSessionControls": []}
    assert {"id", "createdDateTime", "userPrincipalName", "appId", "appDisplayName", "ipAddress"} <= set(first)
    assert first["conditionalAccessStatus"] == "notApplied"


def test_sign_in_loader_rejects_values_graph_does_not_have(graph_emulator: GraphEmulator):
    with pytest.raises(ValueError, match="result"):
        graph_emulator.add_sign_ins(
            "t", [{"createdDateTime": "2026-01-01T00:00:00Z", "appliedConditionalAccessPolicies": [{"result": "ok"}]}]
        )


# -- loading exports -----------------------------------------------------------------------------------------

CORPUS_FILES = json_files(CORPUS) if CORPUS.is_dir() else []
CORPUS_PARAMS = [pytest.param(path, id=str(path.relative_to(CORPUS))) for path in CORPUS_FILES] or [
    pytest.param(None, marks=pytest.mark.skip(reason=f"corpus absent: {CORPUS}"))
]


@pytest.mark.corpus
@pytest.mark.parametrize("path", CORPUS_PARAMS)
def test_every_corpus_file_loads(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp, path: Path
):
    document = read_json_document(path)
    expected = len(document) if isinstance(document, list) else 1
    policy_ids = graph_emulator.load_policies(graph_app.tenant, path)
    loaded = len(policy_ids) + len(graph_emulator.named_locations(graph_app.tenant))
    assert loaded == expected

    for policy_id in policy_ids:
        policy = graph_client.get(f"{POLICIES}/{policy_id}").json()
        assert isinstance(policy["conditions"]["users"]["excludeUsers"], list)
        assert annotation_keys(policy) <= {"@odata.context", "@odata.type"}
        # A users-only PATCH never trips over stale location ids or beta leftovers in the stored policy; a
        # workload-identity policy takes no users (and no write at all without the licence), so it is refused.
        patch = {"conditions": {"users": {"excludeUsers": ["breakglass"]}}}
        expected = 400 if is_workload_identity_policy(policy) else 204
        assert graph_client.patch(f"{POLICIES}/{policy_id}", json=patch).status_code == expected


def test_loader_reads_every_encoding_and_container(tmp_path: Path, graph_emulator: GraphEmulator):
    policy = {
        "@odata.context": "x",
        "id": "p-1",
        "displayName": "Exported",
        "state": "enabled",
        **policy_body(displayName="Exported"),
    }
    (tmp_path / "utf16be.json").write_bytes(codecs.BOM_UTF16_BE + json.dumps(policy).encode("utf-16-be"))
    (tmp_path / "utf8bom.json").write_bytes(codecs.BOM_UTF8 + json.dumps([policy]).encode())
    (tmp_path / "value.json").write_text(json.dumps({"value": [policy, policy]}))
    ids = graph_emulator.load_policies("tenant-a", tmp_path)
    assert len(ids) == 4
    assert "p-1" in ids  # exported ids are kept unless they collide
    assert all(p["displayName"] == "Exported" for p in graph_emulator.policies("tenant-a"))


def test_strict_loading_rejects_what_graph_would(graph_emulator: GraphEmulator):
    stale = {"includeLocations": ["All"], "excludeLocations": [str(uuid.uuid4())]}
    body = policy_body(conditions={**policy_body()["conditions"], "locations": stale})
    assert graph_emulator.put_policy("tenant-b", body)  # lenient: a tenant can hold stale references
    with pytest.raises(ExportRejected, match="1040"):
        graph_emulator.put_policy("tenant-b", body, lenient=False)


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"schema reference absent: {SCHEMA}")
def test_embedded_schema_matches_the_reference_extract():
    schemas = json.loads(SCHEMA.read_text())["components"]["schemas"]

    def short(ref: str) -> str:
        return ref.rsplit("/", 1)[-1].removeprefix("microsoft.graph.")

    def spec(prop: dict[str, Any]) -> str:
        if prop.get("x-ms-navigationProperty"):
            return "nav:" + prop["x-target-type"].removeprefix("microsoft.graph.")
        if "anyOf" in prop:
            return "?" + spec(prop["anyOf"][0])
        if "$ref" in prop:
            name = short(prop["$ref"])
            return ("enum:" if "enum" in schemas["microsoft.graph." + name] else "obj:") + name
        if prop["type"] == "array":
            return "[" + spec(prop["items"]) + "]"
        kind = (
            "datetime"
            if prop.get("format") == "date-time"
            else {"string": "str", "boolean": "bool", "number": "int"}[prop["type"]]
        )
        return ("?" if prop.get("nullable") else "") + kind

    for name, (base, abstract, properties) in TYPES.items():
        component = schemas["microsoft.graph." + name]
        parts = component.get("allOf", [component])
        body = parts[-1]
        assert (short(parts[0]["$ref"]) if len(parts) > 1 else None) == base, name
        assert bool(body.get("x-abstract")) == abstract, name
        reference = {key: spec(value) for key, value in body["properties"].items() if key != "@odata.type"}
        assert reference == properties, name
    for name, (is_flags, members) in ENUMS.items():
        component = schemas["microsoft.graph." + name]
        assert (bool(component.get("x-ms-enum-flags")), tuple(component["enum"])) == (is_flags, members), name


# -- lifecycle and CLI ---------------------------------------------------------------------------------------


def test_stop_ends_keep_alive_connections_and_threads(emulator_tls: tls.TestTLS):
    threads_before = threading.active_count()
    emulator = GraphEmulator(tls=emulator_tls, directory=Directory()).start()
    url = emulator.url
    session = requests.Session()
    assert session.get(f"{url}/t/v2.0/.well-known/openid-configuration", verify=str(emulator.ca_bundle), timeout=5).ok

    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 2
    assert threading.active_count() <= threads_before
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/t/v2.0/.well-known/openid-configuration", verify=str(emulator.ca_bundle), timeout=2)
    session.close()


@pytest.fixture
def cli_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "one.json").write_text(json.dumps(policy_body(displayName="from disk")))
    tenant = str(uuid.uuid4())
    command = [sys.executable, "-m", "emulators.graph", "--port", "0", "--tenant", tenant]
    command += ["--policies", str(policies), "--ca-bundle-out", str(tmp_path / "ca.pem")]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    try:
        assert process.stdout is not None
        settings = dict(process.stdout.readline().strip().split("=", 1) for _ in range(5))
        yield process, settings | {"TENANT": tenant}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_entry_point_serves_graph(cli_process: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path):
    _, settings = cli_process
    assert settings["CA_BUNDLE"] == str(tmp_path / "ca.pem")
    verify = settings["CA_BUNDLE"]
    base, tenant = settings["GRAPH_URL"], settings["TENANT"]
    config = requests.get(f"{base}/{tenant}/v2.0/.well-known/openid-configuration", verify=verify, timeout=10).json()
    assert config["token_endpoint"] == f"{base}/{tenant}/oauth2/v2.0/token"

    form = {
        "grant_type": "client_credentials",
        "client_id": settings["CLIENT_ID"],
        "client_secret": settings["CLIENT_SECRET"],
    }
    form["scope"] = "https://graph.microsoft.com/.default"
    token = requests.post(config["token_endpoint"], data=form, verify=verify, timeout=10).json()["access_token"]
    policies = GraphClient(base, verify, token).get(POLICIES).json()["value"]
    assert [policy["displayName"] for policy in policies] == ["from disk"]


# -- workload identities: service principals and policies for them (docs/workload-identity.md) ----------

CIPP_APP = "00000000-0000-0000-0000-0000000e0002"


def workload_policy(principal: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": "CIPP-API client outside its ranges",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["None"]},
            "clientApplications": {"includeServicePrincipals": [principal], "excludeServicePrincipals": []},
            "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    return body | overrides


def test_service_principal_by_app_id_and_by_filter(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    object_id = graph_emulator.add_service_principal(graph_app.tenant, CIPP_APP, "RMM integration")
    graph_emulator.add_service_principal(graph_app.tenant, str(uuid.uuid4()), "another app")

    direct = graph_client.get(f"/v1.0/servicePrincipals(appId='{CIPP_APP}')")
    assert direct.status_code == 200, direct.text
    assert (direct.json()["id"], direct.json()["appId"]) == (object_id, CIPP_APP)
    assert direct.json()["appOwnerOrganizationId"] == graph_app.tenant
    listed = graph_client.get("/v1.0/servicePrincipals", params={"$filter": f"appId eq '{CIPP_APP}'"}).json()
    assert [sp["id"] for sp in listed["value"]] == [object_id]
    assert graph_client.get(f"/v1.0/servicePrincipals/{object_id}").json()["displayName"] == "RMM integration"
    selected = graph_client.get(f"/v1.0/servicePrincipals(appId='{CIPP_APP}')", params={"$select": "id"}).json()
    assert set(selected) == {"@odata.context", "id"}


def test_missing_service_principal_is_404_and_an_empty_filter(graph_client: GraphClient):
    missing = graph_client.get(f"/v1.0/servicePrincipals(appId='{CIPP_APP}')")
    assert_graph_error(missing, 404, "Request_ResourceNotFound", f"Resource '{CIPP_APP}' does not exist")
    assert graph_client.get(f"/v1.0/servicePrincipals/{uuid.uuid4()}").status_code == 404
    listed = graph_client.get("/v1.0/servicePrincipals", params={"$filter": f"appId eq '{CIPP_APP}'"})
    assert listed.json()["value"] == []
    assert graph_client.post("/v1.0/servicePrincipals", json={"appId": CIPP_APP}).status_code == 405


def test_service_principals_need_an_application_read_permission(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    graph_emulator.add_service_principal(graph_app.tenant, CIPP_APP)
    graph_emulator.settings.enforce_roles = True
    assert graph_client.get(f"/v1.0/servicePrincipals(appId='{CIPP_APP}')").status_code == 403


def test_workload_identity_policy_without_the_licence_is_refused_with_1150(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    principal = graph_emulator.add_service_principal(graph_app.tenant, CIPP_APP)
    refused = graph_client.post(POLICIES, json=workload_policy(principal))
    assert_graph_error(refused, 400, "BadRequest", "1150: Cannot create or update policies with workload identity")
    assert graph_emulator.policies(graph_app.tenant) == []

    graph_emulator.set_licences(graph_app.tenant, workload_identities_premium=True)
    created = create(graph_client, POLICIES, workload_policy(principal))
    assert created["conditions"]["clientApplications"]["includeServicePrincipals"] == [principal]
    assert created["conditions"]["users"]["includeUsers"] == ["None"]

    graph_emulator.set_licences(graph_app.tenant, workload_identities_premium=False)
    state_change = graph_client.patch(f"{POLICIES}/{created['id']}", json={"state": "enabled"})
    assert_graph_error(state_change, 400, "BadRequest", "1150:")
    assert graph_client.post(POLICIES, json=policy_body()).status_code == 201  # user policies need no such licence


@pytest.mark.parametrize(
    "users",
    [
        pytest.param({"includeUsers": ["All"]}, id="targets users"),
        pytest.param({"includeUsers": ["None"], "excludeGroups": [str(uuid.uuid4())]}, id="lists a group"),
    ],
)
def test_workload_identity_policy_must_not_target_users(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp, users: dict[str, Any]
):
    graph_emulator.set_licences(graph_app.tenant, workload_identities_premium=True)
    body = workload_policy(str(uuid.uuid4()))
    body["conditions"]["users"] = users
    assert_graph_error(graph_client.post(POLICIES, json=body), 400, "BadRequest")
    assert graph_emulator.policies(graph_app.tenant) == []


def test_workload_identity_policy_grants_only_block(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    graph_emulator.set_licences(graph_app.tenant, workload_identities_premium=True)
    mfa = workload_policy(str(uuid.uuid4()), grantControls={"operator": "OR", "builtInControls": ["mfa"]})
    assert_graph_error(graph_client.post(POLICIES, json=mfa), 400, "BadRequest")
    created = create(graph_client, POLICIES, workload_policy(str(uuid.uuid4())))
    to_mfa = graph_client.patch(f"{POLICIES}/{created['id']}", json={"grantControls": mfa["grantControls"]})
    assert_graph_error(to_mfa, 400, "BadRequest")


# -- What If (docs/graph-ca.md §5, §6.7) ---------------------------------------------------------------

EVALUATE = f"{CA_BASE}/evaluate"
WHAT_IF_BODY = {
    "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": "00000000-0000-0000-0000-0000000000a1"},
    "signInContext": {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": ["All"]},
    "signInConditions": {"clientAppType": "browser"},
}


def test_what_if_answers_every_enabled_and_report_only_policy_as_the_test_sets_it(
    graph_client: GraphClient, graph_emulator: GraphEmulator, graph_app: GraphApp
):
    for state in ("enabled", "enabledForReportingButNotEnforced", "disabled"):
        graph_client.post(POLICIES, json=policy_body(displayName=state, state=state))
    assert_graph_error(graph_client.post(EVALUATE, json=WHAT_IF_BODY), 501, "NotImplemented")
    graph_emulator.set_what_if(graph_app.tenant, lambda body, policy: (policy["state"] == "enabled", "users"))
    answer = graph_client.post(EVALUATE, json=WHAT_IF_BODY).json()["value"]
    assert {(r["displayName"], r["policyApplies"]) for r in answer} == {
        ("enabled", True),
        ("enabledForReportingButNotEnforced", False),
    }
    only = graph_client.post(EVALUATE, json={**WHAT_IF_BODY, "appliedPoliciesOnly": True}).json()["value"]
    assert [r["displayName"] for r in only] == ["enabled"]
    without = {k: v for k, v in WHAT_IF_BODY.items() if k != "signInConditions"}
    assert_graph_error(graph_client.post(EVALUATE, json=without), 400, "BadRequest")


def test_what_if_needs_a_conditional_access_read_permission(graph_emulator: GraphEmulator, graph_app: GraphApp):
    graph_emulator.settings.enforce_roles = True
    graph_emulator.set_what_if(graph_app.tenant, lambda body, policy: (False, "users"))
    graph_emulator.register_app("ca-reader", "s", graph_app.tenant, graph_roles=["Policy.Read.ConditionalAccess"])
    graph_emulator.register_app("no-roles", "s", graph_app.tenant)
    for app, status in (("ca-reader", 200), ("no-roles", 403)):
        token = graph_emulator.access_token(graph_app.tenant, app, "s")
        client = GraphClient(graph_emulator.url, str(graph_emulator.ca_bundle), token)
        assert client.post(EVALUATE, json=WHAT_IF_BODY).status_code == status
