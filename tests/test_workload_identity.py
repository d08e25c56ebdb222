"""cippApi.workloadIdentityPolicies: Part C enforced by Entra (docs/workload-identity.md).

Config and lockout guard, the program's resources and Graph bodies under the offline run, the service
principal lookup (snapshot, placeholder, missing), the evaluator and matrix rows for workload-identity
sign-ins, and `make verify` / the licence error against the Graph emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cipp_hardening.commands.demo import DemoStack, DemoWorld, apply_graph_bodies, demo_world, msp_stack
from cipp_hardening.commands.verify import read_tenant, token_source, verify, workload_app_ids
from cipp_hardening.config import ConfigError, MspStack, parse_stack_config
from cipp_hardening.evaluator import Outcome, PolicySet, ServicePrincipalSignIn, SignIn
from cipp_hardening.graph_render import UnsupportedInput, render_policy
from cipp_hardening.inventory import SERVICE_PRINCIPAL_SNAPSHOT_ENV
from cipp_hardening.offline import CA_POLICY, NAMED_LOCATION, OfflineRun, OfflineRunError, placeholder_guid
from cipp_hardening.scenarios import Status, run_matrix
from cipp_hardening.workload_identity import licence_error
from emulators.graph import WORKLOAD_IDENTITY_LICENCE_1150
from tests.helpers import msp_raw, run_main

SECTION = "cippApi.workloadIdentityPolicies"
MANAGER, RMM = "00000000-0000-0000-0000-0000000e0001", "00000000-0000-0000-0000-0000000e0002"
TENANT = "00000000-0000-0000-0000-00000000a001"


def with_section(**section: Any) -> dict[str, Any]:
    raw = msp_raw()
    raw["cippApi"]["workloadIdentityPolicies"] = section
    return raw


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    return {p.key: p.message for p in caught.value.problems}


def workload_config(raw: dict[str, Any]) -> Any:
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.cipp_api is not None
    return config.cipp_api.workload_identity


# --- config --------------------------------------------------------------------------------------


def test_off_when_absent_and_report_only_by_default() -> None:
    config = parse_stack_config(msp_raw())
    assert isinstance(config, MspStack)
    assert config.cipp_api is not None
    assert config.cipp_api.workload_identity is None
    workload = workload_config(with_section())
    assert workload.state == "enabledForReportingButNotEnforced"
    assert workload.display_name_prefix == "CIPP-API client"
    # CIPP's exploded IPv6 spelling becomes Entra's canonical (compressed) form.
    assert [(c.client_id, c.cidrs) for c in workload.clients] == [
        (MANAGER, ("203.0.113.0/24",)),
        (RMM, ("203.0.113.0/24", "2001:db8::/48")),
    ]


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        ({"state": "on"}, f"{SECTION}.state", "must be one of reportOnly, enabled, disabled"),
        ({"displayNamePrefix": ""}, f"{SECTION}.displayNamePrefix", "non-empty string"),
        ({"operatorCheckIp": "203.0.113.0/24"}, f"{SECTION}.operatorCheckIp", "one IP address"),
        ({"stat": "enabled"}, f"{SECTION}.stat", "did you mean state"),
    ],
)
def test_bad_values_name_their_key(section: dict[str, Any], key: str, words: str) -> None:
    assert words in problems(with_section(**section))[key]


def test_a_range_entra_cannot_hold_is_an_error_naming_the_client() -> None:
    raw = with_section()
    raw["cippApi"]["clients"][1]["allowedRanges"] = ["10.0.0.0/7"]
    assert "cippApi.workloadIdentityPolicies needs every range" in problems(raw)["cippApi.clients[1].allowedRanges"]


def test_a_client_open_to_any_address_gets_no_policy_and_a_warning() -> None:
    raw = with_section()
    raw["cippApi"]["clients"][1]["allowedRanges"] = ["Any"]
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    assert config.cipp_api
    assert config.cipp_api.workload_identity
    assert [c.client_id for c in config.cipp_api.workload_identity.clients] == [MANAGER]
    assert any("cippApi.clients[1].allowedRanges: [Any]" in w for w in config.warnings)


def test_clients_in_another_tenant_cannot_be_held() -> None:
    raw = with_section()
    raw["cippApi"]["tenantId"] = "00000000-0000-0000-0000-00000000f001"
    assert "where they cannot apply to them" in problems(raw)[f"cippApi.{SECTION.split('.')[1]}"]


# --- the lockout guard: enabling it for the manager client -----------------------------------------


def test_enabled_needs_the_runner_inside_the_managers_ranges() -> None:
    message = problems(with_section(state="enabled"))[f"{SECTION}.operatorCheckIp"]
    assert "is required while the policy is enabled" in message
    assert "cippApi.clients[0].allowedRanges" in message
    outside = problems(with_section(state="enabled", operatorCheckIp="198.51.100.7"))[f"{SECTION}.operatorCheckIp"]
    assert "198.51.100.7 is outside cippApi.clients[0].allowedRanges" in outside
    assert f"{SECTION}.lockoutGuardOverride" in outside
    assert workload_config(with_section(state="enabled", operatorCheckIp="203.0.113.10")).state == "enabled"


def test_the_guard_is_waived_only_with_a_reason_and_warns_before_enabling() -> None:
    raw = with_section(state="enabled", operatorCheckIp="198.51.100.7", lockoutGuardOverride="new runner on Monday")
    config = parse_stack_config(raw)
    assert any("lockout guard waived: new runner on Monday" in w for w in config.warnings)
    report_only = parse_stack_config(with_section(operatorCheckIp="198.51.100.7"))
    assert any(f"{SECTION}.operatorCheckIp: 198.51.100.7 is outside" in w for w in report_only.warnings)


def test_no_guard_when_the_manager_is_not_held() -> None:
    raw = with_section(state="enabled")
    raw["cippApi"]["clients"] = raw["cippApi"]["clients"][1:]  # only the RMM client
    raw["cippApi"]["clients"][0]["allowedRanges"] = ["198.51.100.0/24"]
    assert workload_config(raw).state == "enabled"


# --- the program: resources and Graph bodies -------------------------------------------------------


def resources(run: OfflineRun, type_: str) -> dict[str, Any]:
    return {r.inputs["displayName"]: r for r in run.of_type(type_) if "workload-identity" in r.name}


def test_one_named_location_and_one_policy_per_client() -> None:
    run = run_main(with_section())
    locations = resources(run, NAMED_LOCATION)
    policies = resources(run, CA_POLICY)
    assert sorted(locations) == [f"CIPP-API client {c} - allowed ranges" for c in (MANAGER, RMM)]
    assert sorted(policies) == [f"CIPP-API client {c} - block outside allowed ranges" for c in (MANAGER, RMM)]
    rmm_location = locations[f"CIPP-API client {RMM} - allowed ranges"]
    assert rmm_location.inputs["ip"] == {"ipRanges": ["203.0.113.0/24", "2001:db8::/48"], "trusted": False}
    component = next(r for r in run.resources if r.type == "cipp:hardening:CippApiWorkloadIdentityPolicies")
    assert {r.parent for r in [*locations.values(), *policies.values()]} == {component.urn}

    body = render_policy(policies[f"CIPP-API client {RMM} - block outside allowed ranges"].inputs)
    conditions = body["conditions"]
    assert body["state"] == "enabledForReportingButNotEnforced"
    assert conditions["clientApplications"] == {
        "includeServicePrincipals": [placeholder_guid(f"servicePrincipal::{RMM}")],
        "excludeServicePrincipals": [],
    }
    assert conditions["users"]["includeUsers"] == ["None"]
    assert conditions["applications"]["includeApplications"] == ["All"]
    assert conditions["locations"] == {
        "includeLocations": ["All"],
        "excludeLocations": [rmm_location.inputs["objectId"]],
    }
    assert body["grantControls"]["builtInControls"] == ["block"]
    assert any("service principal of application" in m and "placeholder" in m for m in run.messages("warning"))


def test_state_from_config_and_no_resources_without_the_section() -> None:
    enabled = run_main(with_section(state="enabled", operatorCheckIp="203.0.113.10"))
    assert {r.inputs["state"] for r in resources(enabled, CA_POLICY).values()} == {"enabled"}
    assert resources(run_main(msp_raw()), CA_POLICY) == {}


@pytest.fixture
def snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "service-principals.json"
    monkeypatch.setenv(SERVICE_PRINCIPAL_SNAPSHOT_ENV, str(path))
    return path


def sp(app_id: str, object_id: str, owner: str = TENANT) -> dict[str, str]:
    return {"id": object_id, "appId": app_id, "displayName": app_id, "appOwnerOrganizationId": owner}


def test_the_lookup_reads_the_service_principals_object_id_from_a_snapshot(snapshot: Path) -> None:
    real = {MANAGER: "6e1c0000-0000-4000-8000-000000000001", RMM: "6e1c0000-0000-4000-8000-000000000002"}
    snapshot.write_text(json.dumps({"value": [sp(app, object_id) for app, object_id in real.items()]}))
    run = run_main(with_section())
    assert run.outputs["workloadIdentityServicePrincipals"] == real
    included = {
        name: r.inputs["conditions"]["clientApplications"]["includedServicePrincipals"]
        for name, r in resources(run, CA_POLICY).items()
    }
    assert included[f"CIPP-API client {RMM} - block outside allowed ranges"] == [real[RMM]]


def test_a_missing_service_principal_names_the_client_and_the_key(snapshot: Path) -> None:
    snapshot.write_text(json.dumps({"value": [sp(MANAGER, "6e1c0000-0000-4000-8000-000000000001")]}))
    with pytest.raises(OfflineRunError) as failed:
        run_main(with_section())
    message = str(failed.value)
    assert f"{SECTION}: no service principal for CIPP-API client {RMM} (cippApi.clients[1].clientId)" in message
    assert f"No service principal found: no service principal found (application ID '{RMM}'" in message


def test_a_service_principal_of_another_tenants_app_is_refused(snapshot: Path) -> None:
    other = "00000000-0000-0000-0000-00000000f00d"
    snapshot.write_text(
        json.dumps(
            [sp(MANAGER, "6e1c0000-0000-4000-8000-000000000001"), sp(RMM, "6e1c0000-0000-4000-8000-0002", other)]
        )
    )
    with pytest.raises(OfflineRunError) as failed:
        run_main(with_section())
    assert f"belongs to an application of tenant {other}" in str(failed.value)


def test_render_refuses_a_service_principal_filter() -> None:
    inputs = run_main(with_section()).of_type(CA_POLICY)[-1].inputs
    conditions = {**inputs["conditions"], "clientApplications": {"filter": {"mode": "include", "rule": "x"}}}
    with pytest.raises(UnsupportedInput, match="clientApplications"):
        render_policy({**inputs, "conditions": conditions})


# --- the evaluator: workload-identity sign-ins -----------------------------------------------------

SP_A, SP_B = "5a000000-0000-4000-8000-00000000000a", "5a000000-0000-4000-8000-00000000000b"
LOCATION = {
    "id": "10c00000-0000-4000-8000-000000000001",
    "@odata.type": "#microsoft.graph.ipNamedLocation",
    "displayName": "RMM ranges",
    "isTrusted": False,
    "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
}


def block_outside(principals: list[str], state: str = "enabled", **client_apps: Any) -> dict[str, Any]:
    return {
        "id": "b0000000-0000-4000-8000-000000000001",
        "displayName": "RMM outside its ranges",
        "state": state,
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": {"includeUsers": ["None"]},
            "clientApplications": {"includeServicePrincipals": principals, **client_apps},
            "locations": {"includeLocations": ["All"], "excludeLocations": [LOCATION["id"]]},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }


USER_BLOCK = {
    "displayName": "block everyone outside",
    "state": "enabled",
    "conditions": {
        "clientAppTypes": ["all"],
        "applications": {"includeApplications": ["All"]},
        "users": {"includeUsers": ["All"]},
        "locations": {"includeLocations": ["All"], "excludeLocations": [LOCATION["id"]]},
    },
    "grantControls": {"operator": "OR", "builtInControls": ["block"]},
}


def token(principal: str, ip: str, **fields: Any) -> ServicePrincipalSignIn:
    return ServicePrincipalSignIn(service_principal_id=principal, client_ip=ip, **fields)


def test_the_policy_blocks_its_service_principal_outside_only() -> None:
    policies = PolicySet.compile([block_outside([SP_A])], [LOCATION])
    assert policies.evaluate(token(SP_A, "198.51.100.7")).enforced.blocked
    inside = policies.evaluate(token(SP_A, "203.0.113.9"))
    assert not inside.enforced.blocked
    assert inside.results[0].reason == "location"
    other = policies.evaluate(token(SP_B, "198.51.100.7"))
    assert (other.results[0].outcome, other.results[0].reason) == (Outcome.DOES_NOT_APPLY, "workloadIdentities")


def test_report_only_blocks_only_in_the_report_only_view() -> None:
    evaluation = PolicySet.compile([block_outside([SP_A], "enabledForReportingButNotEnforced")], [LOCATION]).evaluate(
        token(SP_A, "198.51.100.7")
    )
    assert not evaluation.enforced.blocked
    assert evaluation.if_report_only_were_on.blocked


def test_user_policies_never_apply_to_a_service_principal_and_workload_policies_never_to_users() -> None:
    policies = PolicySet.compile([USER_BLOCK, block_outside(["ServicePrincipalsInMyTenant"])], [LOCATION])
    workload = policies.evaluate(token(SP_A, "198.51.100.7"))
    assert [(r.outcome, r.reason) for r in workload.results] == [
        (Outcome.DOES_NOT_APPLY, "users"),
        (Outcome.APPLIES, "notSet"),
    ]
    user = policies.evaluate(SignIn(user_id="u1", client_ip="198.51.100.7"))
    assert [(r.outcome, r.reason) for r in user.results] == [
        (Outcome.APPLIES, "notSet"),
        (Outcome.DOES_NOT_APPLY, "users"),
    ]


@pytest.mark.parametrize(
    ("sign_in", "outcome"),
    [
        (token(SP_A, "198.51.100.7"), Outcome.APPLIES),
        (token(SP_A, "198.51.100.7", single_tenant=False), Outcome.DOES_NOT_APPLY),  # outside CA's scope
        (token("<service principal of RMM>", "198.51.100.7"), Outcome.CANNOT_TELL),  # unresolved placeholder
    ],
)
def test_scope_and_placeholders(sign_in: ServicePrincipalSignIn, outcome: Outcome) -> None:
    assert PolicySet.compile([block_outside([SP_A])], [LOCATION]).evaluate(sign_in).results[0].outcome is outcome


@pytest.mark.parametrize(
    ("risk", "outcome"), [("high", Outcome.APPLIES), ("low", Outcome.DOES_NOT_APPLY), (None, Outcome.CANNOT_TELL)]
)
def test_service_principal_risk(risk: str | None, outcome: Outcome) -> None:
    policy = block_outside([SP_A])
    policy["conditions"]["servicePrincipalRiskLevels"] = ["high"]
    sign_in = token(SP_A, "198.51.100.7", service_principal_risk=risk)
    assert PolicySet.compile([policy], [LOCATION]).evaluate(sign_in).results[0].outcome is outcome


def test_excluded_service_principals_and_filters() -> None:
    excluded = block_outside(["ServicePrincipalsInMyTenant"], excludeServicePrincipals=[SP_A])
    assert not PolicySet.compile([excluded], [LOCATION]).evaluate(token(SP_A, "198.51.100.7")).enforced.blocked
    filtered = block_outside([SP_A], servicePrincipalFilter={"mode": "exclude", "rule": "CustomSecurityAttribute"})
    result = PolicySet.compile([filtered], [LOCATION]).evaluate(token(SP_A, "198.51.100.7")).results[0]
    assert result.outcome is Outcome.CANNOT_TELL


# --- the scenario matrix ---------------------------------------------------------------------------


def planned(raw: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    from cipp_hardening.commands.plan import document_from_run

    document = document_from_run("prod", run_main(raw))
    return parse_stack_config(raw), document.graph_objects("policy"), document.graph_objects("namedLocation")


def workload_rows(result: Any) -> dict[str, Any]:
    return {row.name: row for row in result.rows if row.name.startswith("CIPP-API client")}


def test_the_matrix_proves_each_client_inside_and_outside() -> None:
    rows = workload_rows(run_matrix(*planned(with_section())))
    assert {name: (row.expected, row.status) for name, row in rows.items()} == {
        f"CIPP-API client {MANAGER} token from inside 203.0.113.0/24": ("never_blocked", Status.OK),
        f"CIPP-API client {MANAGER} token from outside its ranges": ("would_be_blocked", Status.OK),
        f"CIPP-API client {RMM} token from inside 203.0.113.0/24": ("never_blocked", Status.OK),
        f"CIPP-API client {RMM} token from inside 2001:db8::/48": ("never_blocked", Status.OK),
        f"CIPP-API client {RMM} token from outside its ranges": ("would_be_blocked", Status.OK),
    }
    enabled = workload_rows(run_matrix(*planned(with_section(state="enabled", operatorCheckIp="203.0.113.10"))))
    outside = enabled[f"CIPP-API client {RMM} token from outside its ranges"]
    assert (outside.expected, outside.status) == ("blocked", Status.OK)
    assert f"blocked by 'CIPP-API client {RMM} - block outside allowed ranges'" in outside.actual


def test_the_matrix_fails_when_a_policy_is_missing_or_holds_another_principal() -> None:
    config, policies, locations = planned(with_section())
    rmm_policy = f"CIPP-API client {RMM} - block outside allowed ranges"
    without = [p for p in policies if p["displayName"] != rmm_policy]
    rows = workload_rows(run_matrix(config, without, locations, service_principals={RMM: SP_A, MANAGER: SP_B}))
    failed = rows[f"CIPP-API client {RMM} token from outside its ranges"]
    assert failed.status is Status.FAIL
    assert "no policy blocks it" in failed.actual
    # The live service principal differs from the one the policy holds: the policy does not hold the client.
    rows = workload_rows(run_matrix(config, policies, locations, service_principals={RMM: SP_A, MANAGER: SP_B}))
    assert rows[f"CIPP-API client {RMM} token from outside its ranges"].status is Status.FAIL
    # Not found in the tenant: the client signs in as a placeholder, and the row cannot be decided.
    rows = workload_rows(run_matrix(config, policies, locations, service_principals={}))
    assert rows[f"CIPP-API client {RMM} token from outside its ranges"].status is Status.UNCERTAIN


# --- `make verify`, the demo's writes and the licence error, against the Graph emulator ----------------


@pytest.fixture(scope="module")
def world() -> Iterator[DemoWorld]:
    with demo_world(corpus=None) as running:
        yield running


def test_verify_reads_the_service_principals_live(world: DemoWorld) -> None:
    from cipp_hardening.commands.demo import environment

    stack = msp_stack(world)
    assert workload_app_ids(stack.config) == [MANAGER, RMM]
    apply_graph_bodies(world, stack)
    with environment(world.graph_env()):
        live = read_tenant(stack.config.graph_url, world.msp_tenant, token_source(stack.config), [MANAGER, RMM])
    object_ids = {sp["appId"]: sp["id"] for sp in world.graph.service_principals(world.msp_tenant)}
    assert live.service_principals == {MANAGER: object_ids[MANAGER], RMM: object_ids[RMM]}
    report = verify("prod", stack.config, live, mfa_trusted_ips=[])
    rows = workload_rows(report.matrix)
    assert len(rows) == 5
    assert all(row.status is Status.OK for row in rows.values())
    assert not [n for n in report.missing_policies if n.startswith("CIPP-API client")]

    with environment(world.graph_env()):
        gone = read_tenant(stack.config.graph_url, world.msp_tenant, token_source(stack.config), [MANAGER, PSA_GONE])
    assert gone.missing_service_principals == [PSA_GONE]
    broken = verify("prod", stack.config, gone, mfa_trusted_ips=[])
    assert broken.exit_code == 3
    assert "1 CIPP-API client(s) without a service principal" in broken.broken


PSA_GONE = "00000000-0000-0000-0000-0000000e0099"


def test_graph_refusing_without_the_licence_is_one_error_naming_the_section(world: DemoWorld) -> None:
    stack: DemoStack = msp_stack(world)
    world.graph.set_licences(world.msp_tenant, workload_identities_premium=False)
    try:
        with pytest.raises(RuntimeError) as refused:
            apply_graph_bodies(world, stack)
    finally:
        world.graph.set_licences(world.msp_tenant, workload_identities_premium=True)
    message = str(refused.value)
    assert message.startswith(f"{SECTION}: the tenant has no Microsoft Entra Workload ID Premium licence")
    assert "1150: Cannot create or update policies with workload identity premium features" in message


def test_licence_error_recognises_only_the_licence_refusal() -> None:
    assert licence_error(WORKLOAD_IDENTITY_LICENCE_1150) is not None
    assert licence_error("1040: NamedLocation with id x does not exist in the directory.") is None


def test_a_missing_service_principal_keeps_the_providers_reason_on_one_line() -> None:
    from cipp_hardening.config import WorkloadIdentityClient
    from components.workload_identity import _missing_message

    token = "azuread:index/getServicePrincipal:getServicePrincipal"
    # The bridge's error list around terraform-provider-azuread's text (servicePrincipalDataSourceRead)
    failure = Exception(
        f"invoke of {token} failed: invoking {token}: 1 error occurred:\n"
        "\t* No service principal found: no service principal found\n\n"
    )
    message = _missing_message(WorkloadIdentityClient(RMM, ("203.0.113.0/24",), "cippApi.clients[1]"), failure)
    assert "\n" not in message
    assert "in this tenant: No service principal found: no service principal found. The policy" in message
