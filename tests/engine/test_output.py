"""What a user reads from the real CLI: each thing said once (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from emulators.pulumi_project import PulumiProject

STACK = "bad-config"


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
