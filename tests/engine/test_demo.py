"""`make demo` with the real CLI: every stack applied by `pulumi up`, the same invariants after."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console

from cipp_hardening.commands.demo import CIPP_CLIENTS, RMM, run_demo

MANAGER, PSA = CIPP_CLIENTS[0][0], CIPP_CLIENTS[2][0]


def test_the_demo_through_the_real_cli(pulumi_cli: Path) -> None:
    before_env = dict(os.environ)
    output = io.StringIO()
    outcome = run_demo(Console(file=output, width=200), corpus=None, cli=pulumi_cli)
    text = output.getvalue()

    assert f"the Pulumi CLI {pulumi_cli}" in text
    assert "demo stand-in for the azuread provider" not in text
    assert all(report.matrix.ok and not report.matrix.uncertain for report in outcome.after.values())
    # prod: the stack, 4 components, the named location, 2 CA policies, 2 CIPP-API clients, the destroy guard,
    # and cippApi.workloadIdentityPolicies: its component, a named location and a policy per managed client,
    # each service principal looked up through the stand-in's getServicePrincipal; and cippApi.customRoles: its
    # component and the role techs.
    assert outcome.applied["prod"] == {"create": 18}
    workload = [r for r in outcome.after["prod"].matrix.rows if r.name.startswith("CIPP-API client ")]
    assert {r.name.rsplit(" token from ", 1)[1] for r in workload} >= {"outside its ranges", "inside 203.0.113.0/24"}
    assert all(r.status.value == "ok" for r in workload)
    assert outcome.applied["client-contoso"]["create"] >= 4  # the stack, the component, its policies
    assert outcome.cipp_after is not None
    assert (outcome.cipp_after.office_status, outcome.cipp_after.outside_status) == (200, 403)
    assert (outcome.cipp_after.technician_office, outcome.cipp_after.technician_home) == (200, 403)
    assert outcome.cipp_after.ranges[MANAGER] == ["203.0.113.0/24"]
    assert outcome.cipp_after.ranges[RMM] == ["203.0.113.0/24", "2001:0db8:0000:0000:0000:0000:0000:0000/48"]
    assert outcome.cipp_after.ranges[PSA] == ["Any"]
    assert outcome.ok
    assert dict(os.environ) == before_env, "the demo leaves the environment as it found it"
