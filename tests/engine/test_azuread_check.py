"""A value upstream's schema refuses fails at `pulumi preview`, through the real CLI and the azuread stand-in.

The product never sends such values (its config checks come first), so this runs a small program of its own:
the stand-in's Check answers as terraform-provider-azuread v3.9's validation through pulumi-terraform-bridge
does (docs/engine.md, "The stand-in's resources, as upstream does them").
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from emulators.clients import GraphApp
from emulators.graph import GraphEmulator
from emulators.pulumi_project import PulumiFailed, PulumiProject
from tests.helpers import ROOT

LOCATION = """\
import pulumi_azuread as azuread

azuread.NamedLocation(
    "office",
    display_name="Office",
    ip=azuread.NamedLocationIpArgs(ip_ranges=["203.0.113.0/24", "10.0.0.0/4"], trusted=True),
)
"""
POLICY = """\
import pulumi_azuread as azuread

azuread.ConditionalAccessPolicy(
    "block",
    display_name="Block outside",
    state="on",
    conditions=azuread.ConditionalAccessPolicyConditionsArgs(
        applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(included_applications=["All"]),
        client_app_types=["all"],
        users=azuread.ConditionalAccessPolicyConditionsUsersArgs(included_users=["All"]),
    ),
    grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["block"]),
)
"""


def test_bad_values_fail_the_preview_with_the_bridges_check_failures(
    pulumi_cli: Path, tmp_path: Path, graph_emulator: GraphEmulator, graph_app: GraphApp
) -> None:
    # Configure signs in, as upstream's does: the stand-in gets the Graph emulator and an app of it.
    env = {
        "ARM_TENANT_ID": graph_app.tenant,
        "ARM_CLIENT_ID": graph_app.client_id,
        "ARM_CLIENT_SECRET": graph_app.secret,
        "AZUREAD_STANDIN_GRAPH_URL": graph_emulator.url,
        "AZUREAD_STANDIN_AUTHORITY": graph_emulator.url,
        "REQUESTS_CA_BUNDLE": str(graph_emulator.ca_bundle),
    }
    project = PulumiProject.create(pulumi_cli, tmp_path, env, standin_azuread=True)
    for entry in project.workdir.iterdir():
        entry.unlink()  # a project of this test's own, not the repository's program
    (project.workdir / "Pulumi.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: azuread-check
            runtime:
              name: python
              options:
                toolchain: pip
                virtualenv: {ROOT / ".venv"}
            """
        )
    )
    project.stack_init("check")
    # One resource per preview: the engine stops at the first failed Check.
    for program, expected in (
        (
            LOCATION,
            'expected "ip.0.ip_ranges.1" to have a prefix length at least 8, got 4. '
            "Examine values at 'office.ip.ipRanges[1]'.",
        ),
        (
            POLICY,
            'expected state to be one of ["disabled" "enabled" "enabledForReportingButNotEnforced"], got on. '
            "Examine values at 'block.state'.",
        ),
    ):
        (project.workdir / "__main__.py").write_text(program)
        with pytest.raises(PulumiFailed) as failed:
            project.run("preview", "--stack", "check")
        output = failed.value.result.stdout
        assert f"has a problem: {expected}" in output, output
