"""`cipp-hardening snapshot --stack <stack>`: save, read-only, what an offline plan of the stack reads.

For a client stack: the tenant's Conditional Access policies and named locations (Graph v1.0 GETs,
Policy.Read.All). For any stack that names users or groups by name instead of id: the directory
entries of those names (User.Read.All and Group.Read.All, or Directory.Read.All). Files, in
snapshots/<stack>/ unless --out says otherwise:

    policies.json          {"value": [...]}: every policy, as Graph v1.0 lists it
    named-locations.json   {"value": [...]}: every named location
    directory.json         {"tenantId", "users": [{id, userPrincipalName}], "groups": [{id, displayName}]}
    snapshot.yaml          the tenant, the time and what was saved; written last, so a folder without it is
                           an interrupted save, and `cipp-hardening plan` refuses it for any other tenant

`cipp-hardening plan --stack <stack>` finds them there. Credentials: as `verify` (ARM_* or AZURE_*
variables, or the Azure CLI login; a client stack's graphClientId with CIPP_HARDENING_GRAPH_CLIENT_SECRET).
A snapshot holds the tenant's policy details: keep it where the stack files are reviewed, or out of git.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from cipp_hardening.commands.verify import NAMED_LOCATIONS, POLICIES, tenant_of, token_source
from cipp_hardening.config import ClientStack, ConfigError, DirectoryName, StackConfig
from cipp_hardening.directory_names import graph_lookup, resolve_with
from cipp_hardening.offline_inputs import MANIFEST, SNAPSHOTS_DIR
from cipp_hardening.scenario_files import config_from_stack_file
from cipp_hardening.yamlfile import YamlFileError
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError

ROOT = Path(__file__).resolve().parents[2]

EXIT_CODES = """exit codes:
  0  saved (or nothing to save: an MSP stack that names everything by id needs no snapshot)
  2  error: configuration, stack file, an unknown or ambiguous name, credentials, Graph; nothing written

docs/commands.md has what each file holds and where the plan looks for it."""


def directory_entries(graph: GraphClient, config: StackConfig) -> dict[str, list[dict[str, str]]]:
    """The users and groups behind the config's names (raises ConfigError naming unknown/ambiguous keys)."""
    users: dict[str, dict[str, str]] = {}
    groups: dict[str, dict[str, str]] = {}

    def lookup(name: DirectoryName) -> str:
        object_id = graph_lookup(graph, name)
        if name.kind == "user":
            users[object_id] = {"id": object_id, "userPrincipalName": name.name}
        else:
            groups[object_id] = {"id": object_id, "displayName": name.name}
        return object_id

    resolve_with(config, lookup)
    return {"users": list(users.values()), "groups": list(groups.values())}


def take_snapshot(config: StackConfig, out: Path, token: Callable[[], str], stack: str) -> list[str]:
    """Read what the offline plan needs and write it into `out`; the names of the files written."""
    tenant = tenant_of(config)
    documents: dict[str, Any] = {}
    with GraphClient(config.graph_url, tenant, token) as graph:
        if config.names:
            documents["directory.json"] = {"tenantId": tenant, **directory_entries(graph, config)}
        if isinstance(config, ClientStack):
            documents["policies.json"] = {"value": graph.list_all(POLICIES)}
            documents["named-locations.json"] = {"value": graph.list_all(NAMED_LOCATIONS)}
    if not documents:
        return []
    out.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (out / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    manifest = {
        "tenantId": tenant,
        "stack": stack,
        "graphUrl": config.graph_url,
        "savedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": sorted(documents),
        "source": "cipp-hardening snapshot (Graph v1.0, read-only)",
    }
    (out / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return [*sorted(documents), MANIFEST]


def _summary(out: Path, written: Sequence[str]) -> str:
    counts = []
    for name in written:
        if name.endswith(".json"):
            document = json.loads((out / name).read_text(encoding="utf-8"))
            items = document.get("value", [*document.get("users", []), *document.get("groups", [])])
            counts.append(f"{name} ({len(items)})")
    return ", ".join(counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening snapshot",
        description=(__doc__ or "").splitlines()[0],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--stack-file", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, help=f"folder to write (default {SNAPSHOTS_DIR}/<stack>/)")
    args = parser.parse_args(argv)
    console = Console()
    out = args.out or ROOT / SNAPSHOTS_DIR / args.stack
    import requests  # only when a snapshot is taken: the plan imports nothing that sends requests

    try:
        config = config_from_stack_file(args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml")
        written = take_snapshot(config, out, token_source(config), args.stack)
    except (ConfigError, YamlFileError, OSError) as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except (GraphError, credentials.CredentialError, requests.RequestException) as error:
        console.print(f"[red]could not read the tenant:[/] {error}", highlight=False)
        return 2
    if not written:
        console.print(
            f"nothing to save: stack {args.stack} names every user and group by id, so its offline plan "
            "reads no snapshot"
        )
        return 0
    console.print(f"saved into {out}: {_summary(out, written)}; `cipp-hardening plan --stack {args.stack}` reads it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
