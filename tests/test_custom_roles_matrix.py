"""The scenario matrix's CIPP layer: each technician row says whether CIPP's role ranges would refuse it,
so "report-only in Entra, but held by CIPP" shows before promotion (docs/custom-roles.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening.commands.plan import main
from cipp_hardening.config import MspStack, parse_stack_config
from cipp_hardening.scenarios import SUPERADMIN_LAYER, cipp_layer, derive_scenarios
from tests.helpers import ROOT, msp_raw


def with_roles(*roles: dict[str, Any]) -> MspStack:
    raw = msp_raw()
    raw["cippApi"]["customRoles"] = list(roles)
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    return config


def test_technician_rows_say_what_cipp_does() -> None:
    config = with_roles({"name": "techs"}, {"name": "helpdesk", "allowedRanges": ["198.51.100.0/24"]})
    by_name = {s.name: s for s in derive_scenarios(config)}
    inside = by_name["technician inside 203.0.113.0/24"]
    assert inside.cipp == "CIPP refuses role helpdesk; CIPP serves role techs (declared ranges)"
    outside = by_name["technician outside the trusted ranges"]
    assert outside.sign_in.client_ip == "198.51.100.23"
    assert outside.cipp == "CIPP refuses role techs; CIPP serves role helpdesk (declared ranges)"
    superadmin = by_name["technician holding CIPP superadmin outside the trusted ranges"]
    assert superadmin.cipp == SUPERADMIN_LAYER
    assert superadmin.expect == outside.expect, "Entra's expectation is the same: only the CIPP layer differs"


def test_without_custom_roles_the_row_says_cipp_does_not_hold_it() -> None:
    assert cipp_layer((), "198.51.100.23") == "not held by CIPP (no cippApi.customRoles)"
    names = [s.name for s in derive_scenarios(with_roles())]
    assert not any("superadmin" in name for name in names)


def test_the_plan_prints_the_cipp_layer_report_only_in_entra_but_held_by_cipp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load((ROOT / "Pulumi.example.yaml").read_text())
    document["config"]["cipp-hardening:cippApi"]["customRoles"] = [{"name": "techs"}]
    stack_file = tmp_path / "Pulumi.prod-roles.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    target = tmp_path / "plan.json"
    assert main(["--stack", "prod", "--stack-file", str(stack_file), "--json", str(target)]) == 0
    out = capsys.readouterr().out
    assert "CIPP: CIPP refuses role techs" in out
    rows = {row["name"]: row for row in json.loads(target.read_text())["matrix"]["rows"]}
    outside = rows["technician outside the trusted ranges"]
    assert outside["expected"] == "would_be_blocked", "Part A is report-only in the example"
    assert outside["cipp"] == "CIPP refuses role techs (declared ranges)"
    assert rows["technician holding CIPP superadmin outside the trusted ranges"]["cipp"] == SUPERADMIN_LAYER
