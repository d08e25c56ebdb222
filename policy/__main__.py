"""The policy pack process that `pulumi preview --policy-pack policy` starts; PolicyPack() serves forever."""

import sys
from pathlib import Path

# The engine runs the pack from policy/ (pulumi.policy runs this folder): the rules import the project.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.policies import ALL

PolicyPack(
    name="cipp-hardening-rollout",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=ALL,
    description="Rollout safety for cipp-hardening: break-glass, service account, Part A/B, named locations, "
    "evidence-gated promotion, scenario matrix",
)
