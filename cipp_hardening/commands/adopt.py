"""`make adopt STACK=prod`: take over the named location and policies the article made by hand (docs/adopt.md).

Read-only against Graph (one listing of the named locations, one of the policies): for Step 1, Part A
and Part B it finds the existing object, by display name first, else by content (a location holding
exactly the trusted ranges; a block policy on the technician group excluding that location; an MFA
policy on the service account alone), prints what the next `pulumi up` will change on it, and writes
the ids into the stack file under `cipp-hardening:adopt` (comments and order kept). The next
`pulumi up` takes each over with Pulumi's `import` resource option and updates it in place: same id,
no second object. Ambiguous matches and differences the import cannot reconcile are reported and
nothing is written.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from ruamel.yaml.comments import CommentedMap

from cipp_hardening import adoption
from cipp_hardening.commands.promote import _dump, _round_trip_yaml, _set_keeping_trailing_comment
from cipp_hardening.config import PROJECT, ConfigError, MspStack, parse_stack_config
from cipp_hardening.directory_names import resolve_with_graph
from cipp_hardening.tenant_check import NAMED_LOCATIONS, POLICIES
from cipp_hardening.yamlfile import YamlFileError, load_yaml
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError

ROOT = Path(__file__).resolve().parents[2]
ADOPT_STACK_KEY = f"{PROJECT}:{adoption.ADOPT_KEY}"
EXIT_REFUSED = 1

EXIT_CODES = f"""exit codes (they reach the caller; `make adopt` turns every failure into 2):
  0  the ids were written under {ADOPT_STACK_KEY}, or the --import-file (or nothing to adopt, or --dry-run)
  1  refused, nothing written: an ambiguous match (several objects fit) or a difference the import cannot
     reconcile (e.g. a country location where an IP location is declared)
  2  error, nothing written: configuration, stack file, credentials or Graph

Permissions: Policy.Read.All in the MSP tenant (User.Read.All and Group.Read.All too when the config names
users or groups by name). Credentials: ARM_* or AZURE_* variables, or `az login` (docs/commands.md)."""


class AdoptError(RuntimeError):
    pass


def stack_config(text: str, source: str) -> MspStack:
    loaded = load_yaml(text, source) or {}
    raw = {}
    for key, value in (loaded.get("config") or {}).items():
        secure = isinstance(value, dict) and set(value) == {"secure"}
        raw[key.removeprefix(f"{PROJECT}:")] = "[secret]" if secure else value
    config = parse_stack_config(raw)
    if not isinstance(config, MspStack):
        raise AdoptError("adopt is for the MSP stack (Step 1, Parts A and B); this is a client stack")
    return config


def read_tenant(config: MspStack) -> tuple[MspStack, adoption.Tenant]:
    def token() -> str:
        return credentials.access_token(config.tenant_id, f"{config.graph_url}/.default")

    resolved = resolve_with_graph(config, config.graph_url, config.tenant_id, token) if config.names else config
    assert isinstance(resolved, MspStack)  # resolve_with_graph keeps the kind of stack
    with GraphClient(config.graph_url, config.tenant_id, token) as graph:
        return resolved, adoption.Tenant(graph.list_all(NAMED_LOCATIONS), graph.list_all(POLICIES))


def adopted_stack_text(text: str, ids: dict[str, str]) -> str:
    """The stack file with cipp-hardening:adopt set to `ids`, everything else as it was."""
    yaml, document = _round_trip_yaml(text)
    config = document.get("config")
    if not isinstance(config, CommentedMap):
        raise AdoptError("the stack file has no config mapping")
    _set_keeping_trailing_comment(config, ADOPT_STACK_KEY, CommentedMap(sorted(ids.items())))
    return _dump(yaml, document)


# The components that parent each declaration (components/*.py, __main__.py): `pulumi import` must recreate
# the same URNs, so the import file declares them as components and the azuread resources under them.
COMPONENTS = {
    "trustedLocation": ("cipp:hardening:TrustedLocation", "trusted-location"),
    "technicianAccess": ("cipp:hardening:TechnicianAccessPolicy", "technician-access"),
    "serviceAccount": ("cipp:hardening:ServiceAccountPolicy", "service-account"),
}
RESOURCE_TYPES = {
    "namedLocation": "azuread:index/namedLocation:NamedLocation",
    "policy": "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
}


def import_file(matches: Sequence[adoption.Match]) -> dict[str, Any]:
    """A `pulumi import --file` document for the matched objects, under the program's own components."""
    resources: list[dict[str, Any]] = []
    for found in matches:
        if found.object_id is None:
            continue
        component_type, component = COMPONENTS[found.key]
        resources.append({"type": component_type, "name": component, "component": True})
        resources.append(
            {
                "type": RESOURCE_TYPES[found.declared.kind],
                "name": found.declared.resource_name,
                "id": adoption.import_id(found.declared.kind, found.object_id),
                "parent": component,
            }
        )
    return {"resources": resources}


def report(console: Console, config: MspStack, matches: Sequence[adoption.Match]) -> None:
    location_id = next((m.object_id for m in matches if m.key == "trustedLocation"), None)
    for found in matches:
        what = f"{found.key} ({adoption.KIND_WORDS[found.declared.kind]} {found.declared.display_name!r})"
        if found.blocking is not None:
            console.print(f"✗ {what}: {found.blocking}", highlight=False)
            continue
        if found.object is None:
            console.print(f"- {what}: {found.how}", highlight=False)
            continue
        console.print(f"✓ {what}: {found.object_id}, found by {found.how}", highlight=False)
        changes = adoption.differences(config, found.key, found.object, location_id)
        for change in changes:
            console.print(f"    `pulumi up` changes in place: {change}", highlight=False)
        if not changes:
            console.print("    already as declared", highlight=False)


def adopt(
    stack: str, stack_file: Path, console: Console, *, dry_run: bool = False, import_path: Path | None = None
) -> int:
    text = stack_file.read_text(encoding="utf-8")
    config, tenant = read_tenant(stack_config(text, str(stack_file)))
    matches = adoption.match(config, tenant)
    report(console, config, matches)
    if any(m.blocking for m in matches):
        console.print("Nothing written: resolve the objects marked ✗ in the portal, then run adopt again.")
        return EXIT_REFUSED
    ids = {m.key: str(m.object_id) for m in matches if m.object_id is not None}
    if not ids:
        console.print("Nothing to adopt: `pulumi up` creates everything.")
        return 0
    if dry_run:
        console.print(f"--dry-run: {stack_file.name} not changed.", highlight=False)
        return 0
    if import_path is not None:
        import_path.write_text(json.dumps(import_file(matches), indent=2) + "\n", encoding="utf-8")
        console.print(
            f"Written {import_path} ({stack_file.name} not changed). Next: `pulumi import --file {import_path} "
            f"--stack {stack} --generate-code=false --protect=false --yes`, then `pulumi up --stack {stack}`.",
            highlight=False,
        )
        return 0
    stack_file.write_text(adopted_stack_text(text, ids), encoding="utf-8")
    console.print(
        f"Written to {stack_file.name} under {ADOPT_STACK_KEY}. Next: `pulumi preview --stack {stack}` shows each "
        f"as an import followed by an update in place; `pulumi up --stack {stack}` takes them over.",
        highlight=False,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening adopt",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="prod", help="stack name: edits Pulumi.<stack>.yaml (default prod)")
    parser.add_argument("--stack-file", type=Path, help="edit this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--dry-run", action="store_true", help="show what would be adopted, write nothing")
    parser.add_argument(
        "--import-file",
        type=Path,
        help="write a `pulumi import --file` document here instead of the adopt key (docs/adopt.md, path 2)",
    )
    args = parser.parse_args(argv)
    console = Console(width=200)
    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        return adopt(args.stack, stack_file, console, dry_run=args.dry_run, import_path=args.import_file)
    except (
        AdoptError,
        ConfigError,
        YamlFileError,
        GraphError,
        credentials.CredentialError,
        requests.RequestException,
        OSError,
    ) as error:
        console.print(f"Nothing written: {error}", highlight=False)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
