"""`pulumi about` in a client stack: what the program's virtualenv (the one `Pulumi.yaml` names) holds, and no
more (docs/engine.md, "What the CLI prints"). The bootstrap's pulumi-azure-native and the dev tools live in the
developers' `.venv-dev`, layered on `.venv`, never in it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from emulators.pulumi_project import PulumiProject

STACK = "client-about"
MSP = "00000000-0000-0000-0000-00000000a001"
# What `make test` needs beyond the program (requirements-dev.txt, bootstrap/requirements.txt): never the program's.
DEV_ONLY = {"pulumi-azure-native", "pytest", "pytest-timeout", "mypy", "ruff", "check-jsonschema"}


def test_about_a_client_stack_lists_the_programs_packages_only(pulumi_cli: Path, tmp_path: Path) -> None:
    """Upstream's language host reports every installed package whose pulumi-plugin.json says `resource: true`
    (`GetRequiredPackages` → `listPulumiPackageInfos`, sdk/python/cmd/pulumi-language-python/main.go) and the
    venv's packages (`GetProgramDependencies`): so azuread is listed, and azure-native only where installed."""
    project = PulumiProject.create(pulumi_cli, tmp_path, {}, standin_azuread=True)
    project.stack_init(STACK)
    project.config_set(STACK, "mode", "client")
    project.config_set_object(STACK, "clientTenant", {"tenantId": str(uuid.uuid4()), "mspTenantId": MSP})

    about = json.loads(project.run("about", "--json", "--stack", STACK).stdout)

    assert about["runtime"]["executable"] == str(project.workdir / ".venv" / "bin" / "python"), about["runtime"]
    resource_plugins = {p["name"] for p in about["plugins"] if p["kind"] == "resource"}
    assert resource_plugins == {"azuread"}, about["plugins"]
    dependencies = {d["name"].lower() for d in about["dependencies"]}
    assert "cipp-hardening" in dependencies, dependencies  # the program's own editable install: the list is real
    assert not dependencies & DEV_ONLY, dependencies & DEV_ONLY
