"""Plain helpers shared by tests: example configs and running the program offline."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cipp_hardening.config import PROJECT, ConfigError, MspStack, parse_stack_config
from cipp_hardening.offline import OfflineRun, run_program

ROOT = Path(__file__).resolve().parents[1]

MSP_TENANT = "00000000-0000-0000-0000-00000000a001"
TECH_GROUP = "00000000-0000-0000-0000-00000000b001"
BREAK_GLASS_1 = "00000000-0000-0000-0000-00000000c001"
BREAK_GLASS_2 = "00000000-0000-0000-0000-00000000c002"
SERVICE_ACCOUNT = "00000000-0000-0000-0000-00000000d001"


def stack_yaml(stack: str) -> dict[str, Any]:
    """The raw `config:` map of Pulumi.<stack>.yaml, keys as written."""
    loaded = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    return dict(loaded["config"])


def raw_config(stack_config: dict[str, Any]) -> dict[str, Any]:
    """Stack-file keys → what parse_stack_config receives (our namespace stripped)."""
    prefix = f"{PROJECT}:"
    return {k.removeprefix(prefix): copy.deepcopy(v) for k, v in stack_config.items()}


def msp_raw() -> dict[str, Any]:
    return raw_config(stack_yaml("example"))


def to_runtime_config(raw: dict[str, Any]) -> dict[str, str]:
    """Namespace-stripped raw config → the {"ns:key": str} map the language host hands the program."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        out[full] = value if isinstance(value, str) else json.dumps(value)
    return out


def run_main(raw: dict[str, Any], stack: str = "prod") -> OfflineRun:
    return run_program(ROOT / "__main__.py", to_runtime_config(raw), project=PROJECT, stack=stack)


def parsed_msp(raw: dict[str, Any]) -> MspStack:
    """An MSP stack's config, parsed; the test fails if it is another mode."""
    config = parse_stack_config(raw)
    assert isinstance(config, MspStack)
    return config


def promotion_record(**changes: Any) -> dict[str, Any]:
    """A valid `technicianAccess.promotedAfter` record (as `make promote` writes it), with changes; None removes a
    key."""
    record: dict[str, Any] = {
        "policyId": "00000000-0000-0000-0000-0000000000a1",
        "policyDisplayName": "Block CIPP Access - Outside Trusted IPs",
        "window": {"from": "2026-05-01T00:00:00Z", "to": "2026-05-15T00:00:00Z"},
        "signInsEvaluated": 10,
        "wouldBlock": 0,
        "breakGlass": 0,
        "serviceAccount": 0,
        "accepted": False,
        "recordedAt": "2026-05-15T00:00:00Z",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None}


def config_problems(raw: dict[str, Any]) -> list[str]:
    """Every problem the config parser reports for `raw` (it must refuse it)."""
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw)
    return [str(problem) for problem in error.value.problems]
