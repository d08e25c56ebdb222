"""The scenario file and the stack file, read from disk: the part of the scenario matrix that is not pure.

`scenarios.py` holds the rules (scenarios, the evaluator's verdicts, the matrix) and imports only the
standard library and the other rule modules; this module reads YAML and turns it into those rules' objects,
every problem naming the file and the entry (docs/scenario-matrix.md).
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from cipp_hardening.config import PROJECT, StackConfig, parse_stack_config
from cipp_hardening.evaluator import ExternalUser, SignIn
from cipp_hardening.scenarios import Expectation, Scenario
from cipp_hardening.yamlfile import read_yaml

# --- the scenario file ----------------------------------------------------------------------------


class ScenarioFileError(ValueError):
    """Every problem found in a scenario file, each naming the file and the entry."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {path}: {p}" for p in self.problems)
        super().__init__(f"invalid scenario file {path} ({len(self.problems)} problem(s)):\n{lines}")


# YAML key → SignIn field; values are strings unless listed in _LIST_KEYS.
_SIGN_IN_FIELDS: Final = {
    "userId": "user_id",
    "groups": "group_ids",
    "roles": "role_template_ids",
    "ip": "client_ip",
    "app": "application_id",
    "appGroups": "app_groups",
    "clientApp": "client_app_type",
    "platform": "device_platform",
    "country": "country",
    "userAction": "user_action",
    "authenticationContext": "authentication_context",
    "signInRisk": "sign_in_risk",
    "userRisk": "user_risk",
    "insiderRisk": "insider_risk",
    "authenticationFlow": "authentication_flow",
}
_LIST_KEYS: Final = frozenset({"groups", "roles", "appGroups"})
_SCENARIO_KEYS: Final = frozenset({"name", "expect", "signIn"})


def _unknown_keys(obj: Mapping[str, Any], allowed: Iterable[str], where: str) -> list[str]:
    allowed = sorted(allowed)
    problems = []
    for key in sorted(set(obj) - set(allowed), key=str):
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        problems.append(f"{where}.{key}: unknown key" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return problems


def load_scenarios_file(path: str | Path) -> list[Scenario]:
    """The scenarios of a YAML file; raises ScenarioFileError listing every problem."""
    path = Path(path)
    try:
        document = read_yaml(path)
    except OSError as exc:
        raise ScenarioFileError(path, [f"cannot be read ({exc.strerror or exc})"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioFileError(path, [f"is not YAML ({exc})".replace("\n", " ")]) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("scenarios"), list):
        raise ScenarioFileError(path, ["must be a mapping with a `scenarios:` list"])
    problems = _unknown_keys(document, {"scenarios"}, "(top level)")
    scenarios: list[Scenario] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["scenarios"]):
        label = f"scenarios[{index}]"
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']!r})"
        scenario, entry_problems = _parse_entry(entry, label, f"{path.name}: scenarios[{index}]")
        problems += entry_problems
        if scenario is not None and scenario.name in seen:
            problems.append(f"{label}.name: {scenario.name!r} is used twice")
        elif scenario is not None:
            seen.add(scenario.name)
            scenarios.append(scenario)
    if problems:
        raise ScenarioFileError(path, problems)
    return scenarios


def _parse_entry(entry: Any, label: str, origin: str) -> tuple[Scenario | None, list[str]]:
    if not isinstance(entry, Mapping):
        return None, [f"{label}: must be a mapping with name, expect and signIn"]
    problems = _unknown_keys(entry, _SCENARIO_KEYS, label)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}.name: is required (a non-empty string)")
    expect = entry.get("expect")
    if expect not in {e.value for e in Expectation}:
        options = ", ".join(e.value for e in Expectation)
        problems.append(f"{label}.expect: must be one of {options}; got {expect!r}")
    sign_in, sign_in_problems = _parse_sign_in(entry.get("signIn"), f"{label}.signIn")
    problems += sign_in_problems
    if problems or sign_in is None:
        return None, problems
    return Scenario(str(name).strip(), sign_in, Expectation(str(expect)), origin), []


def _parse_sign_in(value: Any, where: str) -> tuple[SignIn | None, list[str]]:
    if not isinstance(value, Mapping):
        return None, [f"{where}: is required (a mapping with at least userId)"]
    problems = _unknown_keys(value, [*_SIGN_IN_FIELDS, "external"], where)
    fields: dict[str, Any] = {}
    for key, field_name in _SIGN_IN_FIELDS.items():
        if key not in value or value[key] is None:
            continue
        parsed = _strings(value[key]) if key in _LIST_KEYS else _string(value[key])
        if parsed is None:
            kind = "a list of strings" if key in _LIST_KEYS else "a string"
            problems.append(f"{where}.{key}: must be {kind}, got {value[key]!r}")
        else:
            fields[field_name] = parsed
    if not fields.get("user_id"):
        problems.append(f"{where}.userId: is required")
    if "client_ip" in fields and not _is_ip(fields["client_ip"]):
        problems.append(f"{where}.ip: {fields['client_ip']!r} is not an IPv4 or IPv6 address")
    if fields.get("application_id", "").lower() == "all":
        fields["application_id"] = None
    external, external_problems = _parse_external(value.get("external"), f"{where}.external")
    problems += external_problems
    if problems:
        return None, problems
    try:
        return SignIn(external=external, **fields), []
    except ValueError as exc:  # the evaluator's vocabulary checks (client app type, platform, risk...)
        return None, [f"{where}: {exc}"]


def _parse_external(value: Any, where: str) -> tuple[ExternalUser | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, Mapping) or not isinstance(value.get("kind"), str):
        return None, [f"{where}: must be a mapping with kind (e.g. serviceProvider) and tenant"]
    problems = _unknown_keys(value, {"kind", "tenant"}, where)
    tenant = value.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        problems.append(f"{where}.tenant: must be a tenant GUID string")
    if problems:
        return None, problems
    try:
        return ExternalUser(value["kind"], tenant.lower() if tenant else None), []
    except ValueError as exc:
        return None, [f"{where}.kind: {exc}"]


def _string(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return [v.strip() for v in value]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def user_scenarios(config: StackConfig, root: Path) -> list[Scenario]:
    """The scenarios of the stack's `scenariosFile` (relative to `root`), or none. Raises ScenarioFileError
    when one names ids the stack does not (an example's scenarios left on an edited stack)."""
    if not config.scenarios_file:
        return []
    path = root / config.scenarios_file
    scenarios = load_scenarios_file(path)
    if not config.names:  # with names still unresolved, the ids the stack names are not known yet
        from cipp_hardening.offline_inputs import stale_scenario_ids

        problems = stale_scenario_ids(config, scenarios)
        if problems:
            raise ScenarioFileError(path, problems)
    return scenarios


# --- the stack file -------------------------------------------------------------------------------


def config_from_stack_file(stack_file: Path) -> StackConfig:
    """Pulumi.<stack>.yaml → validated config (raises ConfigError). Secure values count as set."""
    loaded = read_yaml(stack_file) or {}
    raw: dict[str, Any] = {}
    for key, value in (loaded.get("config") or {}).items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            value = "[secret]"
        raw[key.removeprefix(f"{PROJECT}:")] = value
    return parse_stack_config(raw)
