"""What a user reads from the real CLI: each thing said once (docs/configuration.md)."""

from __future__ import annotations

import uuid
from pathlib import Path

from emulators.clients import GRAPH_ROLES, graph_client_env
from emulators.graph import GraphEmulator
from emulators.pulumi_project import PulumiProject
from tests.helpers import ROOT

STACK = "bad-config"
MSP = "00000000-0000-0000-0000-00000000a001"


def test_a_bad_config_fails_with_one_report_naming_each_key(pulumi_cli: Path, tmp_path: Path) -> None:
    project = PulumiProject.create(pulumi_cli, tmp_path, {})
    project.stack_init(STACK)
    project.config_set(STACK, "mode", "client")
    project.config_set(STACK, "graphUrl", "not-a-url")

    result = project.run("preview", "--stack", STACK, check=False)

    assert result.returncode != 0
    diagnostics = result.stdout.split("Diagnostics:", 1)[1]
    assert diagnostics.count("error:") == 1, diagnostics  # no per-key copies, no "unhandled error"
    assert "an unhandled error occurred" not in result.stdout + result.stderr
    assert "error: invalid stack configuration (4 problem(s)):" in diagnostics
    for line in (
        "- cipp-hardening:graphUrl: must be an https:// URL, got 'not-a-url'",
        "- cipp-hardening:clientTenant: is required in a client stack",
        "- cipp-hardening:clientTenant.tenantId: is required",
        "- cipp-hardening:clientTenant.mspTenantId: is required",
    ):
        assert diagnostics.count(line) == 1, line


def test_a_client_stack_prints_no_plugin_notice_where_the_azuread_plugin_is_installed(
    pulumi_cli: Path, tmp_path: Path, graph_emulator: GraphEmulator
) -> None:
    """The engine looks up every plugin the language host reports (upstream's host reports each installed
    package with a pulumi-plugin.json, pulumi-azuread included, used or not); found in the plugin cache, as
    `pulumi plugin install` puts it, it says nothing, where a plugin on PATH is announced on each lookup."""
    tenant, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}"
    graph_emulator.register_app(client_id, secret, MSP, consented_tenants=[tenant], graph_roles=GRAPH_ROLES)
    graph_emulator.load_policies(tenant, ROOT / "examples" / "client-contoso-policies")
    env = graph_client_env(graph_emulator.url, graph_emulator.ca_bundle, client_id, secret)
    project = PulumiProject.create(pulumi_cli, tmp_path, env, standin_azuread=True)
    project.stack_init("client-quiet")
    project.config_set("client-quiet", "mode", "client")
    project.config_set("client-quiet", "graphUrl", graph_emulator.url)
    project.config_set_object(
        "client-quiet", "clientTenant", {"tenantId": tenant, "mspTenantId": MSP, "accessMode": "gdap"}
    )

    result = project.run("preview", "--stack", "client-quiet")

    assert "pulumi-resource-azuread" not in result.stdout + result.stderr
