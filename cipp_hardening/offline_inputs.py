"""What an offline plan reads besides the stack file, and proof that it belongs to this stack.

The plan of a client stack needs the tenant's policies; an MSP stack with `cippApi` is checked against
CIPP's list of API clients; names in the config need a directory snapshot. Each comes from, first match:

1. a command-line option (`--policies`, `--cipp-clients`, `--directory`);
2. its environment variable (CIPP_HARDENING_POLICY_SNAPSHOT, _CIPP_SNAPSHOT, _DIRECTORY_SNAPSHOT);
3. the stack file's `cipp-hardening:offlineSnapshot` key (`policies`, `cippClients`, `directory`): how the
   example stacks name their sample data, so nothing is picked up by stack name alone;
4. `snapshots/<stack>/`, where `cipp-hardening snapshot --stack <stack>` saves them.

Every file is checked against the stack before use: a policy snapshot's `snapshot.yaml` names its tenant,
a directory snapshot its tenant, and a CIPP client list must list the stack's manager client. A mismatch
is an error naming the file and where it was named; the plan prints what it used.

Also here: the example's placeholder ids (`placeholder_keys`) and scenarios naming ids the stack no
longer has (`stale_scenario_ids`): both signs of an example half-edited into a real stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cipp_hardening.config import PLACEHOLDER_PREFIX, PROJECT, ClientStack, MspStack, StackConfig
from cipp_hardening.directory_names import DIRECTORY_SNAPSHOT_ENV, load_directory_snapshot
from cipp_hardening.inventory import CIPP_SNAPSHOT_ENV, SNAPSHOT_ENV
from cipp_hardening.yamlfile import read_yaml

SNAPSHOTS_DIR = "snapshots"
MANIFEST = "snapshot.yaml"  # YAML, not JSON: policy folders are read as *.json
OFFLINE_KEY = "offlineSnapshot"
_KINDS = {  # key of offlineSnapshot → (environment variable, option, file or folder under snapshots/<stack>/)
    "policies": (SNAPSHOT_ENV, "--policies", "."),
    "cippClients": (CIPP_SNAPSHOT_ENV, "--cipp-clients", "cipp-clients.json"),
    "directory": (DIRECTORY_SNAPSHOT_ENV, "--directory", "directory.json"),
}


class OfflineInputError(ValueError):
    """A snapshot that does not belong to this stack, or an offlineSnapshot key that is wrong."""


@dataclass
class OfflineInputs:
    """The files chosen, and one line per file saying what it is and who named it."""

    paths: dict[str, Path] = field(default_factory=dict)  # kind → path
    used: list[str] = field(default_factory=list)

    @contextmanager
    def environment(self) -> Iterator[None]:
        """The program reads the chosen files through environment variables; set for the run, then restored."""
        values = {env: str(self.paths[kind]) if kind in self.paths else None for kind, (env, _, _) in _KINDS.items()}
        saved = {key: os.environ.get(key) for key in values}
        _apply(values)
        try:
            yield
        finally:
            _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def choose(
    stack: str, config: StackConfig, raw: Mapping[str, Any], options: Mapping[str, Path | None], root: Path
) -> OfflineInputs:
    """The offline inputs of this stack (see the module doc); raises OfflineInputError."""
    declared = _declared(raw)
    inputs = OfflineInputs()
    for kind, (env, option, default) in _KINDS.items():
        found = _find(kind, options.get(kind), env, option, declared, root / SNAPSHOTS_DIR / stack / default)
        if found is None or not _wanted(kind, config):
            continue
        path, origin = found
        inputs.paths[kind] = path
        inputs.used.append(_check(kind, path, origin, config))
    return inputs


def _declared(raw: Mapping[str, Any]) -> dict[str, str]:
    value = raw.get(OFFLINE_KEY)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or any(k not in _KINDS or not isinstance(v, str) for k, v in value.items()):
        raise OfflineInputError(
            f"{PROJECT}:{OFFLINE_KEY}: must be an object whose keys are {', '.join(_KINDS)} and whose values are "
            f"paths relative to the project; got {value!r}"
        )
    return dict(value)


def _find(
    kind: str, option: Path | None, env: str, flag: str, declared: Mapping[str, str], default: Path
) -> tuple[Path, str] | None:
    if option is not None:
        return option.resolve(), f"option {flag}"
    if os.environ.get(env):
        return Path(os.environ[env]), f"environment variable {env}"
    if kind in declared:
        return Path(declared[kind]).resolve(), f"stack key {PROJECT}:{OFFLINE_KEY}.{kind}"
    marker = default / MANIFEST if kind == "policies" else default
    if marker.exists():
        return default.resolve(), "saved by `cipp-hardening snapshot`"
    return None


def _wanted(kind: str, config: StackConfig) -> bool:
    if kind == "policies":
        return isinstance(config, ClientStack)
    if kind == "cippClients":
        return isinstance(config, MspStack) and config.cipp_api is not None
    return bool(config.names)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _check(kind: str, path: Path, origin: str, config: StackConfig) -> str:
    where = f"{_display(path)} ({origin})"
    if not path.exists():
        raise OfflineInputError(f"{where}: no such file or folder")
    if kind == "policies" and isinstance(config, ClientStack):
        return _check_policies(path, where, config.client_tenant.tenant_id)
    if kind == "cippClients" and isinstance(config, MspStack) and config.cipp_api is not None:
        return _check_cipp_clients(path, where, config.cipp_api.manager_client_id)
    tenant = config.tenant_id if isinstance(config, MspStack) else config.client_tenant.tenant_id
    snapshot = _directory(path, where)
    if snapshot.tenant_id != tenant:
        raise OfflineInputError(
            f"{where}: a directory snapshot of tenant {snapshot.tenant_id}, not of this stack's tenant {tenant}: "
            f"save this stack's with `cipp-hardening snapshot`"
        )
    return f"names resolved from the directory snapshot {where}"


def _directory(path: Path, where: str) -> Any:
    try:
        return load_directory_snapshot(path)
    except ValueError as error:
        raise OfflineInputError(f"{where}: {error}") from None


def _check_policies(path: Path, where: str, tenant: str) -> str:
    manifest = (path if path.is_dir() else path.parent) / MANIFEST
    if not manifest.exists():
        return f"client policies from {where} (no {MANIFEST}: not checked against tenant {tenant})"
    data = read_yaml(manifest) or {}
    saved_tenant = str(data.get("tenantId", "")).lower()
    if saved_tenant != tenant:
        raise OfflineInputError(
            f"{where}: holds the policies of tenant {saved_tenant or '(none named)'} ({_display(manifest)}), "
            f"not of this stack's clientTenant.tenantId {tenant}: save this tenant's with "
            "`cipp-hardening snapshot --stack <stack>`, or remove the key/option that names it"
        )
    saved = f", saved {data['savedAt']}" if data.get("savedAt") else ""
    return f"client policies of tenant {tenant} from {where}{saved}"


def _check_cipp_clients(path: Path, where: str, manager: str) -> str:
    from service_clients.cipp_client import parse_list_body

    try:
        clients = parse_list_body(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise OfflineInputError(f"{where}: not a saved CIPP-API List body ({error})") from None
    listed = {str(client.get("ClientId", "")).lower() for client in clients}
    if manager not in listed:
        raise OfflineInputError(
            f"{where}: does not list this stack's manager client {manager} (cippApi.managerClientId), so it is "
            "not a list of this CIPP's API clients: save the List body of your CIPP, or remove the key/option "
            "that names it (without one the unrestricted-clients check is skipped offline)"
        )
    return f"CIPP-API clients from {where}"


# --- the example, half edited -----------------------------------------------------------------------


def placeholder_keys(value: Any, path: str = "") -> list[str]:
    """Every key whose value is (or lists) one of the example's placeholder GUIDs."""
    if isinstance(value, Mapping):
        return [k for key, item in value.items() for k in placeholder_keys(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [k for i, item in enumerate(value) for k in placeholder_keys(item, f"{path}[{i}]")]
    return [path] if isinstance(value, str) and value.lower().startswith(PLACEHOLDER_PREFIX) else []


def placeholder_notice(stack_file: Path, raw: Mapping[str, Any]) -> str | None:
    keys = placeholder_keys(dict(raw))
    if not keys:
        return None
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return (
        f"{stack_file.name} still holds the example's placeholder ids ({PLACEHOLDER_PREFIX}…) in {shown}: "
        "fine for trying the tool; put your tenant's ids (or user principal names and group names) in "
        "before `pulumi up` (docs/commands.md)"
    )


def known_ids(config: StackConfig) -> tuple[set[str], set[str], set[str]]:
    """The users, groups and tenants this (id-only) stack names."""
    if isinstance(config, MspStack):
        access = config.technician_access
        users = {*access.include_user_ids, *access.break_glass_user_ids, config.service_account.user_id}
        return users, {*access.include_group_ids, *access.break_glass_group_ids}, {config.tenant_id}
    tenant = config.client_tenant
    users = {tenant.service_account_user_id} if tenant.service_account_user_id else set()
    return users, set(), {tenant.tenant_id, tenant.msp_tenant_id}


def stale_scenario_ids(config: StackConfig, scenarios: Sequence[Any]) -> list[str]:
    """Problems for the scenario file: a group the stack does not name, or a placeholder id it no longer has.

    A scenario about a group the stack never mentions tests nothing the policies could match; one naming
    an example placeholder was written for the example's ids. Each problem names the entry.
    """
    users, groups, tenants = known_ids(config)
    problems: list[str] = []
    for scenario in scenarios:
        entry = str(scenario.origin).split(": ", 1)[-1] + f" ({scenario.name!r})"
        sign_in = scenario.sign_in
        for group in sorted(g for g in sign_in.group_ids if g.lower() not in groups):
            problems.append(
                f"{entry}.signIn.groups: {group} is not a group this stack names (technicianAccess."
                "includeGroupIds / breakGlassGroupIds): the scenario was written for other ids; update it, "
                f"or remove {PROJECT}:scenariosFile from the stack file"
            )
        user = str(sign_in.user_id).lower()
        if user.startswith(PLACEHOLDER_PREFIX) and user not in users:
            problems.append(f"{entry}.signIn.userId: {user} is an example placeholder this stack no longer names")
        external = sign_in.external.home_tenant_id if sign_in.external is not None else None
        if external and external.startswith(PLACEHOLDER_PREFIX) and external not in tenants:
            problems.append(
                f"{entry}.signIn.external.tenant: {external} is an example placeholder this stack no longer names"
            )
    return problems
