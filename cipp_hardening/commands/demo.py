"""`make demo`: the whole article end to end on loopback emulators, no Azure; the real Pulumi CLI when there is one.

1. Starts the Graph emulator (the MSP tenant and two client tenants holding real policies from
   a policy corpus given with --corpus, self-written samples otherwise) and the CIPP-API emulator (three
   API clients open to any address), all over HTTPS with a throw-away CA.
2. Shows the scenario matrix of each stack against what the tenants hold: before.
3. Applies the stacks. With a Pulumi CLI (`make engine` builds one into .tools/bin, or one on PATH):
   `pulumi up` of every stack, the MSP stack with the policy pack, in a throw-away project with a local
   state backend; the azuread resources go through the test stand-in plugin (docs/engine.md). Without
   one (or with --no-engine): Step 1, Part A and Part B are the plan's rendered Graph JSON POSTed to the
   emulator, and Parts C and D the program's dynamic resources applied through the real
   dynamic-provider host. The demo says which path it took.
4. Shows the matrices after, read back from the tenants the way `make verify` reads them, and the
   CIPP-API check: the managed client answers 200 from the office and 403 from elsewhere, and so does a
   technician of the CIPP role `techs` (cippApi.customRoles, docs/custom-roles.md) while Part A is still
   report-only: CIPP refuses what Entra would have let through.

The MSP stack runs with cippApi.workloadIdentityPolicies (Pulumi.example.yaml's section, or report-only
when it has none): the MSP tenant holds a service principal per CIPP-API client and the Workload
Identities Premium licence, and the matrices show each client's token requests inside and outside its
ranges (docs/workload-identity.md). With a Pulumi CLI the program looks each service principal up
through the azuread stand-in plugin's getServicePrincipal, as it would through pulumi-azuread.

The emulators are the package emulators/ (shipped in the repository). `make demo` installs only what the
demo runs: requirements-demo.txt (the runtime requirements and trustme, for the throw-away CA). Its last
line says, for every stack it applied, what `make verify` would: invariants, policies still without the
MSP exclusion (a conflict reported, not written, stays one), and the CIPP-API check.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from cipp_hardening.commands.plan import build_plan
from cipp_hardening.commands.verify import (
    NAMED_LOCATIONS,
    POLICIES,
    VerifyReport,
    looked_up_app_ids,
    print_report,
    read_stack_directory,
    read_tenant,
    token_source,
    verify,
)
from cipp_hardening.config import PROJECT, MspStack, StackConfig, parse_stack_config
from cipp_hardening.inventory import SERVICE_PRINCIPAL_SNAPSHOT_ENV
from cipp_hardening.offline import running_offline
from cipp_hardening.scenario_files import user_scenarios
from cipp_hardening.workload_identity import licence_error
from cipp_hardening.yamlfile import read_yaml
from dynamic_providers.cipp_api_client_ranges import SECRET_KEY as CIPP_SECRET_KEY
from dynamic_providers.cipp_custom_roles import ROLES_SECRET_KEY
from emulators.cipp import CippEmulator
from emulators.clients import CippCaller, graph_client_env, technician_request
from emulators.graph import GraphEmulator
from emulators.provider_host import MiniEngine, ProviderHost, collect_dynamic_resources
from emulators.pulumi_project import PulumiProject, find_cli
from emulators.tls import TestTLS, make_test_tls
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_STACK = "example"  # the demo runs the example MSP stack (Pulumi.example.yaml), named prod in its project
# --corpus DIR: a folder holding these two public baselines (exported policy JSON), one per sample client.
CORPUS_FOLDERS = {"contoso": "j0eyv__ConditionalAccessBaseline", "fabrikam": "AlexFilipin__ConditionalAccess"}
SAMPLES = ROOT / "examples" / "client-contoso-policies"
GRAPH_ROLES = ("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess")
RUNNER_IP = "203.0.113.10"  # this machine's egress address as CIPP sees it: inside the office range of the stack
OFFICE_CALLER, OUTSIDE_CALLER = "203.0.113.77", "198.51.100.7"
CIPP_CLIENTS = (  # client id (as in Pulumi.example.yaml), name, role; all open to any address at first
    ("00000000-0000-0000-0000-0000000e0001", "CIPP-API manager (Pulumi)", "editor"),
    ("00000000-0000-0000-0000-0000000e0002", "RMM integration", "readonly"),
    ("00000000-0000-0000-0000-0000000e0003", "PSA integration (not managed by the stack)", "readonly"),
)
RMM = CIPP_CLIENTS[1][0]
# cippApi.customRoles (docs/custom-roles.md): a separate superadmin client calls ExecCustomRole, and the CIPP role
# `techs` is granted through Part A's technician group; a technician of it signs in to CIPP.
ROLES_CLIENT = ("00000000-0000-0000-0000-0000000e0004", "CIPP roles (Pulumi)", "superadmin")
TECH_ROLE, TECHNICIAN = "techs", "tech@msp.example"
CONTOSO, FABRIKAM = "00000000-0000-0000-0000-0000000c0001", "00000000-0000-0000-0000-0000000c0002"


@dataclass(frozen=True)
class ClientTenantSpec:
    name: str
    tenant_id: str
    source: str  # where its policies came from


@dataclass
class DemoWorld:
    tls: TestTLS
    graph: GraphEmulator
    cipp: CippEmulator
    msp_tenant: str
    deployer: tuple[str, str]  # client id, secret: the MSP's app, consented in the client tenants
    cipp_secrets: dict[str, str]
    clients: list[ClientTenantSpec] = field(default_factory=list)

    def graph_env(self) -> dict[str, str | None]:
        """What the program and the provider host need to reach the Graph emulator as the deployer."""
        return {**graph_client_env(self.graph.url, self.tls.ca_bundle, *self.deployer)}

    def cipp_env(self) -> dict[str, str | None]:
        """The CIPP-API provider gets tokens from CIPP's tenant, with the manager secret from `configure`."""
        return {
            "AZURE_AUTHORITY_HOST": self.cipp.url,
            "REQUESTS_CA_BUNDLE": str(self.tls.ca_bundle),
            "AZURE_CLIENT_ID": None,
            "AZURE_CLIENT_SECRET": None,
            "CIPP_API_MANAGER_SECRET": None,
        }

    def caller(self, client_id: str) -> CippCaller:
        return CippCaller(self.cipp, self.tls.ca_bundle, client_id, self.cipp_secrets[client_id])


# --- the world ------------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block; credentials are re-resolved."""
    saved = {key: os.environ.get(key) for key in values}
    _apply_env(values)
    credentials.reset_cache()
    try:
        yield
    finally:
        _apply_env(saved)
        credentials.reset_cache()


def _apply_env(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def fabrikam_samples() -> list[dict[str, Any]]:
    """Self-written policies of the second client when the corpus is absent: an office IP block and MFA."""
    office = "5a3e0000-0000-4000-8000-000000000001"
    return [
        {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "id": office,
            "displayName": "Fabrikam office",
            "isTrusted": True,
            "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "192.0.2.0/24"}],
        },
        {
            "displayName": "Block access outside the Fabrikam office",
            "state": "enabled",
            "conditions": {
                "clientAppTypes": ["all"],
                "applications": {"includeApplications": ["All"]},
                "users": {"includeUsers": ["All"], "excludeUsers": ["5a3e0000-0000-4000-8000-0000000000b1"]},
                "locations": {"includeLocations": ["All"], "excludeLocations": [office]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
        {
            "displayName": "MFA for everyone",
            "state": "enabled",
            "conditions": {
                "clientAppTypes": ["all"],
                "applications": {"includeApplications": ["All"]},
                "users": {"includeUsers": ["All"]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        },
    ]


def seed_client(graph: GraphEmulator, name: str, tenant: str, corpus_folder: Path | None) -> ClientTenantSpec:
    if corpus_folder is not None and corpus_folder.is_dir():
        graph.load_policies(tenant, corpus_folder)
        return ClientTenantSpec(name, tenant, f"corpus: {corpus_folder.name}")
    if name == "contoso":
        graph.load_policies(tenant, SAMPLES)
        return ClientTenantSpec(name, tenant, f"samples: {SAMPLES.relative_to(ROOT)}")
    for item in fabrikam_samples():
        put = graph.add_named_location if "ipRanges" in item else graph.put_policy
        put(tenant, item)
    return ClientTenantSpec(name, tenant, "samples: cipp_hardening/commands/demo.py")


@contextlib.contextmanager
def demo_world(corpus: Path | None = None) -> Iterator[DemoWorld]:
    """Both emulators running, seeded; stopped on exit."""
    tls = make_test_tls()
    msp = str(stack_file_raw(EXAMPLE_STACK)["azuread:tenantId"])
    # CIPP runs in the MSP tenant, where the workload-identity policies hold its API clients' service principals.
    with GraphEmulator(tls=tls, seed=1) as graph, CippEmulator(tls, tenant_id=msp) as cipp:
        deployer = (str(uuid.uuid4()), f"demo-{uuid.uuid4().hex}")
        tenants = {"contoso": CONTOSO, "fabrikam": FABRIKAM}
        graph.register_app(*deployer, msp, consented_tenants=list(tenants.values()), graph_roles=GRAPH_ROLES)
        clients = [
            seed_client(graph, name, tenant, corpus / CORPUS_FOLDERS[name] if corpus else None)
            for name, tenant in tenants.items()
        ]
        cipp_secrets = {client_id: f"demo-{uuid.uuid4().hex}" for client_id, _, _ in CIPP_CLIENTS}
        for client_id, app_name, role in CIPP_CLIENTS:
            cipp.add_client(client_id, app_name, role, (), True, False, cipp_secrets[client_id])
            graph.add_service_principal(msp, client_id, app_name)  # CIPP creates one per API client
        seed_custom_role(cipp, cipp_secrets, stack_file_raw(EXAMPLE_STACK))
        graph.set_licences(msp, workload_identities_premium=True)
        seed_msp_directory(graph, msp, stack_file_raw(EXAMPLE_STACK))
        cipp.save_to_azure()
        cipp.egress_ip = RUNNER_IP  # App Service would set X-Forwarded-For to the runner's address
        yield DemoWorld(tls, graph, cipp, msp, deployer, cipp_secrets, clients)


def seed_custom_role(cipp: CippEmulator, cipp_secrets: dict[str, str], raw: Mapping[str, Any]) -> None:
    """The roles client (restricted to the office), the CIPP role `techs` open to every address as CIPP ships
    roles, given to Part A's first technician group, and one technician in that group."""
    client_id, app_name, role = ROLES_CLIENT
    cipp_secrets[client_id] = f"demo-{uuid.uuid4().hex}"
    office = [cidr for cidr in raw["trustedLocation"]["cidrs"] if ":" not in cidr]
    cipp.add_client(client_id, app_name, role, office, True, False, cipp_secrets[client_id])
    cipp.add_custom_role(TECH_ROLE, ["CIPP.Core.Read", "Identity.User.ReadWrite", "Tenant.Administration.Read"])
    group = str(raw["technicianAccess"]["includeGroupIds"][0])
    cipp.assign_role_group(TECH_ROLE, group, "CIPP technicians")
    cipp.user_groups[TECHNICIAN] = {group}


def seed_msp_directory(graph: GraphEmulator, msp: str, raw: Mapping[str, Any]) -> None:
    """The users and groups Pulumi.example.yaml names, as `make verify` expects to find them: enabled
    cloud-only accounts and role-assignable groups, one technician in the technician group."""
    access, account = raw["technicianAccess"], raw["serviceAccount"]
    for number, user_id in enumerate(access.get("breakGlassUserIds", []), start=1):
        graph.add_user(msp, {"id": user_id, "userPrincipalName": f"breakglass{number}@msp.example"})
    graph.add_user(msp, {"id": account["userId"], "userPrincipalName": "cipp-service@msp.example"})
    graph.add_user(msp, {"id": DEMO_TECHNICIAN, "userPrincipalName": "technician@msp.example"})
    for number, group_id in enumerate(access.get("includeGroupIds", []), start=1):
        group = {"id": group_id, "displayName": f"CIPP Technicians {number}", "isAssignableToRole": True}
        graph.add_group(msp, group, members=[DEMO_TECHNICIAN])


DEMO_TECHNICIAN = "5ce7a210-0000-4000-8000-000000000101"  # the technician of examples/scenarios-example.yaml


# --- stack configs --------------------------------------------------------------------------------


def stack_file_raw(stack: str) -> dict[str, Any]:
    """The `config:` map of Pulumi.<stack>.yaml, our namespace stripped."""
    loaded = read_yaml(ROOT / f"Pulumi.{stack}.yaml") or {}
    return {k.removeprefix(f"{PROJECT}:"): v for k, v in (loaded.get("config") or {}).items()}


def runtime_config(raw: Mapping[str, Any]) -> dict[str, str]:
    """Namespace-stripped config → the {"ns:key": str} map the language host hands the program."""
    return {
        (key if ":" in key else f"{PROJECT}:{key}"): value if isinstance(value, str) else json.dumps(value)
        for key, value in raw.items()
    }


@dataclass(frozen=True)
class DemoStack:
    name: str
    raw: dict[str, Any]
    config: StackConfig
    secrets: dict[str, str] = field(default_factory=dict)  # runtime key → value

    @property
    def runtime(self) -> dict[str, str]:
        return {**runtime_config(self.raw), **self.secrets}


def msp_stack(world: DemoWorld) -> DemoStack:
    """Pulumi.example.yaml pointed at the emulators, with cippApi.workloadIdentityPolicies (report-only unless set)."""
    raw = stack_file_raw(EXAMPLE_STACK)
    raw["graphUrl"] = world.graph.url
    raw["cippApi"] = {**raw["cippApi"], "url": world.cipp.url, "tenantId": world.cipp.tenant_id}
    raw["cippApi"].setdefault("workloadIdentityPolicies", {"state": "reportOnly"})
    raw["cippApi"].setdefault("customRoles", [{"name": TECH_ROLE}])
    raw["cippApi"].setdefault("rolesClientId", ROLES_CLIENT[0])
    manager = raw["cippApi"]["managerClientId"]
    secrets = {CIPP_SECRET_KEY: world.cipp_secrets[manager], ROLES_SECRET_KEY: world.cipp_secrets[ROLES_CLIENT[0]]}
    return DemoStack("prod", raw, parse_stack_config(raw), secrets)


def client_stack(world: DemoWorld, client: ClientTenantSpec) -> DemoStack:
    raw = {
        "mode": "client",
        "graphUrl": world.graph.url,
        "clientTenant": {"tenantId": client.tenant_id, "mspTenantId": world.msp_tenant, "accessMode": "gdap"},
        "assumptions": {"legacyMfaTrustedIps": []},  # the emulated tenants have none (docs/assurance.md)
    }
    return DemoStack(f"client-{client.name}", raw, parse_stack_config(raw))


# --- the steps ------------------------------------------------------------------------------------


def matrix_report(world: DemoWorld, stack: DemoStack) -> VerifyReport:
    """What `make verify` reports for the stack against the emulated tenant."""
    config = stack.config
    tenant = config.tenant_id if isinstance(config, MspStack) else config.client_tenant.tenant_id
    with environment(world.graph_env()):
        live = read_tenant(config.graph_url, tenant, token_source(config), looked_up_app_ids(config))
        directory = read_stack_directory(config)  # the accounts and groups the stack names, as verify reads them
    # The stacks state the tenants' legacy MFA trusted IPs (assumptions, docs/assurance.md): Graph v1.0 hides them.
    return verify(stack.name, config, live, user_scenarios(config, ROOT), directory=directory)


def apply_graph_bodies(world: DemoWorld, stack: DemoStack) -> list[str]:
    """Demo stand-in for the azuread provider: POST the plan's Graph bodies (locations first, then the
    policies with the placeholder location ids replaced by the ones Graph assigned). Returns the names."""
    overrides = {k: v for k, v in stack.raw.items() if k in ("graphUrl", "cippApi")}
    with service_principal_snapshot(world) as snapshot, environment({SERVICE_PRINCIPAL_SNAPSHOT_ENV: str(snapshot)}):
        document = build_plan(stack.name, overrides=overrides)
    wanted = [r for r in document.resources if r["graph"] is not None]
    created: list[str] = []
    token = token_source(stack.config)
    with environment(world.graph_env()), GraphClient(world.graph.url, world.msp_tenant, token) as graph:
        real_ids: dict[str, str] = {}
        for location in (r["graph"] for r in wanted if r["type"].endswith(":NamedLocation")):
            body = {k: v for k, v in location.items() if k != "id"}
            real_ids[location["id"]] = graph.post(NAMED_LOCATIONS, body)["id"]
            created.append(body["displayName"])
        for policy in (r["graph"] for r in wanted if r["type"].endswith(":ConditionalAccessPolicy")):
            body = json.loads(_replace_ids(json.dumps({k: v for k, v in policy.items() if k != "id"}), real_ids))
            try:
                graph.post(POLICIES, body)
            except GraphError as error:
                raise RuntimeError(licence_error(error.graph_message) or str(error)) from None
            created.append(body["displayName"])
    return created


@contextlib.contextmanager
def service_principal_snapshot(world: DemoWorld) -> Iterator[Path]:
    """The MSP tenant's service principals as a saved list body: the offline plan's answer to the lookup."""
    with tempfile.TemporaryDirectory(prefix="cipp-hardening-demo-sp-") as folder:
        path = Path(folder) / "service-principals.json"
        path.write_text(json.dumps({"value": world.graph.service_principals(world.msp_tenant)}), encoding="utf-8")
        yield path


def without_workload_identity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The stack config without cippApi.workloadIdentityPolicies, for what cannot look up service principals
    (the Part C dynamic resources declared under mocks)."""
    stripped = dict(raw)
    if isinstance(stripped.get("cippApi"), Mapping):
        stripped["cippApi"] = {k: v for k, v in stripped["cippApi"].items() if k != "workloadIdentityPolicies"}
    return stripped


def _replace_ids(text: str, ids: Mapping[str, str]) -> str:
    for placeholder, real in ids.items():
        text = text.replace(placeholder, real)
    return text


def apply_dynamic_resources(stack: DemoStack, env: Mapping[str, str | None]) -> dict[str, int]:
    """The program's dynamic resources, declared under mocks and applied through the real provider host."""
    runtime = {**runtime_config(without_workload_identity(stack.raw)), **stack.secrets}
    # Declared as `make plan` runs the program: offline, so no state to export and no tenant check (the emulators
    # are the live side only for the provider host that applies them).
    with environment(env), _quiet_program_logs(), running_offline():
        declared = collect_dynamic_resources(
            ROOT / "__main__.py", config=runtime, stack=stack.name, secret_keys=list(stack.secrets)
        )
    with ProviderHost(ROOT, env=env, stack=stack.name) as host:
        host.configure(runtime, secret_keys=list(stack.secrets))
        return MiniEngine(host).up(declared).counts


@contextlib.contextmanager
def _quiet_program_logs() -> Iterator[None]:
    """The program's warnings under mocks (documentation ranges, the offline CIPP check) are `make plan`'s
    business; the demo shows outcomes."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def engine_env(world: DemoWorld, stack: DemoStack) -> dict[str, str]:
    """What `pulumi up` of the stack needs: Part C's and Part D's clients, and azuread's own ARM_* settings."""
    values = world.cipp_env() if isinstance(stack.config, MspStack) else world.graph_env()
    client_id, secret = world.deployer
    azuread = {
        "ARM_CLIENT_ID": client_id,
        "ARM_CLIENT_SECRET": secret,
        "AZUREAD_STANDIN_GRAPH_URL": world.graph.url,
        "AZUREAD_STANDIN_AUTHORITY": world.graph.url,
        # upstream's consistency waits (five reads 5 s apart, 15 s first for a location) in milliseconds
        "AZUREAD_STANDIN_WAIT_SCALE": "0.002",
        # The program's own read of the MSP tenant (duplicate check, docs/adopt.md) as the azuread deployer:
        # here the Graph emulator issues those tokens, while AZURE_AUTHORITY_HOST is CIPP's for Part C.
        "CIPP_HARDENING_GRAPH_AUTHORITY": world.graph.url,
    }
    return {**{k: v for k, v in values.items() if v is not None}, "CIPP_HARDENING_GRAPH_INTERVAL": "0", **azuread}


def apply_with_engine(world: DemoWorld, stack: DemoStack, cli: Path, workdir: Path) -> dict[str, int]:
    """`pulumi up` of one stack through the real CLI (the MSP stack with the policy pack); the change counts."""
    msp = isinstance(stack.config, MspStack)
    project = PulumiProject.create(cli, workdir / stack.name, engine_env(world, stack), standin_azuread=msp)
    config = {(key if ":" in key else f"{PROJECT}:{key}"): value for key, value in stack.raw.items()}
    (project.workdir / f"Pulumi.{stack.name}.yaml").write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
    project.stack_init(stack.name)
    for key, value in stack.secrets.items():
        project.config_set(stack.name, key, value, secret=True)
    project.run("up", "--yes", "--stack", stack.name, *(["--policy-pack", "policy"] if msp else []))
    [latest, *_] = json.loads(project.run("stack", "history", "--json", "--stack", stack.name).stdout)
    return {op: n for op, n in latest["resourceChanges"].items() if op != "same"}


@dataclass(frozen=True)
class CippCheck:
    ranges: dict[str, list[str]]  # client id → allowed ranges as CIPP lists them
    office_status: int  # the RMM client calling from the office
    outside_status: int  # … and from elsewhere
    technician_office: int = 0  # a technician of the CIPP role `techs`, signed in to CIPP, from the office
    technician_home: int = 0  # … and from home (docs/custom-roles.md)


def cipp_check(world: DemoWorld) -> CippCheck:
    manager, rmm = world.caller(CIPP_CLIENTS[0][0]), world.caller(RMM)
    try:
        listing = manager.exec_api_client(action="List", xff=RUNNER_IP).json()["Results"]
        office = rmm.request("GET", "/api/ListTenants", xff=f"{OFFICE_CALLER}:40000").status_code
        outside = rmm.request("GET", "/api/ListTenants", xff=f"{OUTSIDE_CALLER}:40000").status_code
    finally:
        manager.close()
        rmm.close()
    ranges = {c["ClientId"]: list(c["IPRange"]) for c in listing}
    technician = [
        technician_request(world.cipp, world.tls.ca_bundle, TECHNICIAN, xff=f"{ip}:50000").status_code
        for ip in (OFFICE_CALLER, OUTSIDE_CALLER)
    ]
    return CippCheck(ranges, office, outside, *technician)


# --- output ---------------------------------------------------------------------------------------


def print_cipp(check: CippCheck, console: Console, title: str) -> None:
    table = Table(title=title)
    table.add_column("API client", no_wrap=True)
    table.add_column("allowed ranges", overflow="fold")  # one range per line, never cut short
    for client_id, name, _ in CIPP_CLIENTS:
        ranges = check.ranges.get(client_id, [])
        style = "yellow" if ranges == ["Any"] else "green"
        table.add_row(f"{name}\n{client_id}", f"[{style}]{chr(10).join(ranges)}[/]")
    console.print(table)
    expected_outside = "[green]403[/]" if check.outside_status == 403 else f"[yellow]{check.outside_status}[/]"
    console.print(
        f"RMM integration calling /api/ListTenants: from the office {OFFICE_CALLER} → {check.office_status}, "
        f"from {OUTSIDE_CALLER} → {expected_outside}"
    )
    home = "[green]403[/]" if check.technician_home == 403 else f"[yellow]{check.technician_home}[/]"
    console.print(
        f"technician {TECHNICIAN} (CIPP role {TECH_ROLE}) signed in to CIPP, /api/ListTenants: from the office → "
        f"{check.technician_office}, from home {OUTSIDE_CALLER} → {home}"
        + (
            " — Part A is report-only, so Entra would have let this sign-in through: CIPP refuses it"
            if check.technician_home == 403
            else ""
        )
    )


@dataclass
class DemoOutcome:
    before: dict[str, VerifyReport] = field(default_factory=dict)
    after: dict[str, VerifyReport] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    cipp_before: CippCheck | None = None
    cipp_after: CippCheck | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        cipp = self.cipp_after
        matrices = all(report.matrix.ok for report in self.after.values())
        return matrices and cipp is not None and cipp_holds(cipp)


def cipp_holds(check: CippCheck) -> bool:
    """The managed API client and the technician role: served from the office, refused from outside."""
    return (check.office_status, check.outside_status, check.technician_office, check.technician_home) == (
        200,
        403,
        200,
        403,
    )


def show_matrices(world: DemoWorld, stacks: list[DemoStack], console: Console, when: str) -> dict[str, VerifyReport]:
    reports = {}
    for stack in stacks:
        report = matrix_report(world, stack)
        console.print()
        print_report(dataclasses.replace(report, stack=f"{stack.name} ({when})"), console)
        reports[stack.name] = report
    return reports


def run_demo(console: Console, corpus: Path | None = None, cli: Path | None = None) -> DemoOutcome:
    """The demo; with `cli`, every stack is applied by `pulumi up` through that Pulumi CLI."""
    started = time.monotonic()
    outcome = DemoOutcome()
    engine = f"the Pulumi CLI {cli}" if cli else "no Pulumi CLI (the in-process path)"
    console.rule(f"[bold]cipp-hardening demo: loopback Graph and CIPP-API emulators, no Azure, {engine}")
    with demo_world(corpus) as world:
        stacks = [msp_stack(world), *(client_stack(world, c) for c in world.clients)]
        console.print(f"MSP tenant {world.msp_tenant}; Graph emulator {world.graph.url}; CIPP-API {world.cipp.url}")
        for client in world.clients:
            count = len(world.graph.policies(client.tenant_id))
            console.print(f"client {client.name} {client.tenant_id}: {count} policies ({client.source})")

        console.rule("[bold]Before: the scenario matrices against what the tenants hold now")
        outcome.before = show_matrices(world, stacks, console, "before")
        outcome.cipp_before = cipp_check(world)
        print_cipp(outcome.cipp_before, console, "CIPP-API clients before")

        console.rule("[bold]Applying the stacks")
        if cli is not None:
            apply_all_with_engine(world, stacks, cli, outcome, console)
        else:
            apply_all_in_process(world, stacks, outcome, console)

        console.rule("[bold]After: the same matrices, read back from the tenants (what `make verify` does)")
        outcome.after = show_matrices(world, stacks, console, "after")
        outcome.cipp_after = cipp_check(world)
        print_cipp(outcome.cipp_after, console, "CIPP-API clients after")
    outcome.seconds = time.monotonic() - started
    console.rule()
    console.print(f"{final_line(outcome)} — {outcome.seconds:.1f}s", highlight=False)
    return outcome


def stack_verdict(name: str, report: VerifyReport) -> str:
    """What `make verify` would say of the stack after the demo applied it, in one clause."""
    matrix = report.matrix
    if matrix.failures:
        return f"[red]{name}: {len(matrix.failures)} invariant(s) broken[/]"
    clauses = ["invariants hold"]
    if matrix.uncertain:
        clauses.append(f"{len(matrix.uncertain)} not proven")
    if report.missing_policies:
        clauses.append(f"missing {', '.join(repr(n) for n in report.missing_policies)}")
    if report.missing_exclusions:
        names = ", ".join(repr(p["displayName"]) for p in report.missing_exclusions)
        clauses.append(f"{len(report.missing_exclusions)} policy(ies) still without the MSP exclusion ({names})")
    colour = "green" if report.exit_code == 0 else "yellow"
    return f"[{colour}]{name}: {', '.join(clauses)}[/]"


def final_line(outcome: DemoOutcome) -> str:
    """The demo's last line: every applied stack as verify sees it, then the CIPP-API check."""
    parts = [stack_verdict(name, report) for name, report in outcome.after.items()]
    cipp = outcome.cipp_after
    if cipp is not None and cipp_holds(cipp):
        parts.append("[green]CIPP-API: the managed client and the technician role are refused from outside (403)[/]")
    else:
        status = (
            "not checked"
            if cipp is None
            else f"{cipp.office_status} from the office, {cipp.outside_status} outside; technician "
            f"{cipp.technician_office} from the office, {cipp.technician_home} from home"
        )
        parts.append(f"[red]CIPP-API: {status}[/]")
    return "; ".join(parts)


def apply_all_with_engine(
    world: DemoWorld, stacks: list[DemoStack], cli: Path, outcome: DemoOutcome, console: Console
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cipp-hardening-demo-"))
    try:
        for stack in stacks:
            parts = "Step 1 / Parts A-C, with the policy pack" if stack is stacks[0] else "Part D"
            outcome.applied[stack.name] = apply_with_engine(world, stack, cli, workdir)
            console.print(f"[bold]{stack.name}, {parts}[/]: `pulumi up` → {outcome.applied[stack.name]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    console.print("  (azuread resources through the test stand-in plugin, tools/standin: docs/engine.md)")


def apply_all_in_process(world: DemoWorld, stacks: list[DemoStack], outcome: DemoOutcome, console: Console) -> None:
    msp = stacks[0]
    console.print(
        "[bold]prod, Step 1 / Part A / Part B / Part C by Entra[/]: [magenta]demo stand-in for the azuread "
        "provider[/] — the plan's rendered Graph v1.0 bodies POSTed to the emulator"
    )
    outcome.applied["prod graph"] = apply_graph_bodies(world, msp)
    console.print("  created: " + "; ".join(outcome.applied["prod graph"]))
    outcome.applied["prod"] = apply_dynamic_resources(msp, world.cipp_env())
    console.print(f"[bold]prod, Part C[/] through the real provider host: {outcome.applied['prod']}")
    for stack in stacks[1:]:
        outcome.applied[stack.name] = apply_dynamic_resources(stack, world.graph_env())
        console.print(f"[bold]{stack.name}, Part D[/] through the real provider host: {outcome.applied[stack.name]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening demo",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="exit codes:\n  0  after the stacks were applied, every invariant holds and CIPP refuses the managed "
        "client from outside\n  1  something does not hold (the last line says which stack)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        help="a folder holding the exported baselines " + " and ".join(CORPUS_FOLDERS.values()) + " to seed the two "
        "client tenants with (default: the bundled sample policies)",
    )
    parser.add_argument("--no-engine", action="store_true", help="apply in process even when a Pulumi CLI is available")
    args = parser.parse_args(argv)
    if args.corpus is not None and (missing := [f for f in CORPUS_FOLDERS.values() if not (args.corpus / f).is_dir()]):
        parser.error(f"--corpus {args.corpus}: no folder {', '.join(missing)} in it")
    outcome = run_demo(Console(), args.corpus, None if args.no_engine else find_cli())
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
