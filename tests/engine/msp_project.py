"""The example MSP stack as a real-CLI project against the demo's emulators (shared by the engine tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cipp_hardening.commands.demo import CIPP_CLIENTS, DemoWorld, engine_env, msp_stack
from emulators.pulumi_project import PulumiProject
from tests.helpers import ROOT

STACK = "example"
MANAGER = CIPP_CLIENTS[0][0]


def msp_project(pulumi_cli: Path, tmp_path: Path, world: DemoWorld) -> PulumiProject:
    """Pulumi.example.yaml initialised in a fresh project: Part C's tokens from CIPP's tenant, azuread's own
    ARM_* credentials against the Graph emulator, the manager client's secret set as a Pulumi secret."""
    pulumi = PulumiProject.create(pulumi_cli, tmp_path, engine_env(world, msp_stack(world)), standin_azuread=True)
    shutil.copy(ROOT / f"Pulumi.{STACK}.yaml", pulumi.workdir / f"Pulumi.{STACK}.yaml")
    pulumi.stack_init(STACK)
    pulumi.config_set(STACK, "graphUrl", world.graph.url)
    pulumi.config_set(STACK, "cippApi.url", world.cipp.url, path=True)
    pulumi.config_set(STACK, "cippApi.tenantId", world.cipp.tenant_id, path=True)
    pulumi.config_set(STACK, "cippApiManagerSecret", world.cipp_secrets[MANAGER], secret=True)
    return pulumi
