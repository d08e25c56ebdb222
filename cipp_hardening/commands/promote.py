"""`make promote STACK=prod [DAYS=14] [ACCEPT=1] [POLICY_ID=<guid>]`: Part A from report-only to On, on evidence.

1. Finds the Part A policy in the MSP tenant: by its display name from the stack config (Graph list of
   policies), or `--policy-id` when the name is ambiguous. It must be report-only there.
2. Reads the tenant's sign-in logs for the window (Graph v1.0 auditLogs/signIns, filtered on
   createdDateTime, all pages) and keeps Part A's result on each (appliedConditionalAccessPolicies);
   cipp_hardening/rollout.py says which results count.
3. Prints who would have been blocked (user, IP, application, count, first and last seen), and the
   break-glass and service-account sign-ins the policy would have affected.
4. With none of those (and at least one sign-in evaluated), or with `--accept` after a human read them:
   sets technicianAccess.state to enabled and records technicianAccess.promotedAfter in the stack's YAML
   (comments and order kept), so the change goes through review as a diff; then prints the preview
   command. Otherwise it changes nothing.

Permissions (the identity of service_clients/credentials.py: ARM_* or AZURE_* variables, a federated token,
or the Azure CLI): Policy.Read.All and AuditLog.Read.All in the MSP tenant; User.Read.All and Group.Read.All
too when the config names users or groups by name. Exit 0 promoted, 1 affected sign-ins without
--accept (nothing changed), 2 any other error (nothing changed).
"""

from __future__ import annotations

import argparse
import copy
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from cipp_hardening.config import PROJECT, ConfigError, MspStack, parse_stack_config
from cipp_hardening.directory_names import graph_lookup, resolve_with
from cipp_hardening.rollout import (
    REPORT_ONLY_STATE,
    AffectedGroup,
    Evidence,
    Kind,
    analyse_sign_ins,
    iso,
    promotion_record,
)
from cipp_hardening.yamlfile import YamlFileError, load_yaml
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError

ROOT = Path(__file__).resolve().parents[2]
POLICIES = "identity/conditionalAccess/policies"
SIGN_INS = "auditLogs/signIns"
MAX_DAYS = 30  # Entra keeps sign-in logs for 30 days (P1/P2)
TECHNICIAN_KEY = f"{PROJECT}:technicianAccess"


class PromoteError(RuntimeError):
    """A reason to stop before changing anything."""


_STOPS = (ConfigError, PromoteError, GraphError, credentials.CredentialError, requests.RequestException, OSError)


# --- the stack file ---------------------------------------------------------------------------------


def _yaml(mapping: int = 2, offset: int = 2) -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _dump(yaml: YAML, document: Any) -> str:
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def _round_trip_yaml(text: str) -> tuple[YAML, Any]:
    """The indentation that writes this file back unchanged (so the diff shows only the promotion)."""
    for mapping, offset in ((2, 2), (2, 0), (4, 2), (4, 0), (4, 4)):
        yaml = _yaml(mapping, offset)
        document = yaml.load(text)
        if _dump(yaml, document) == text:
            return yaml, document
    yaml = _yaml()
    return yaml, yaml.load(text)


def _last_comment_slot(node: Any) -> tuple[list[Any], int] | None:
    """Where ruamel keeps the comment after the node's last line: the text up to the next key lives there."""
    if isinstance(node, CommentedMap) and node:
        key = list(node)[-1]
        deeper = _last_comment_slot(node[key])
        return deeper or (node.ca.items.setdefault(key, [None, None, None, None]), 2)
    if isinstance(node, CommentedSeq) and node:
        deeper = _last_comment_slot(node[-1])
        return deeper or (node.ca.items.setdefault(len(node) - 1, [None, None, None, None]), 0)
    return None


def _set_keeping_trailing_comment(mapping: CommentedMap, key: str, value: Any) -> None:
    """Set mapping[key]; a comment that heads the *next* key stays before that key, not before ours."""
    moved = None
    slot = _last_comment_slot(mapping)
    if slot is not None and slot[0][slot[1]] is not None:
        token = slot[0][slot[1]]
        head, _, rest = token.value.partition("\n")
        if rest:
            token.value = head + "\n"
            moved = copy.copy(token)
            moved.value = "\n" + rest
    mapping[key] = value
    target = _last_comment_slot(mapping)
    if moved is not None and target is not None:
        target[0][target[1]] = moved


def promoted_stack_text(text: str, record: dict[str, Any]) -> str:
    """The stack file with technicianAccess.state: enabled and promotedAfter: record, all else as it was."""
    yaml, document = _round_trip_yaml(text)
    access = (document.get("config") or {}).get(TECHNICIAN_KEY)
    if not isinstance(access, CommentedMap):
        raise PromoteError(f"the stack file has no {TECHNICIAN_KEY} object")
    if "state" in access:
        access["state"] = "enabled"
    else:
        _set_keeping_trailing_comment(access, "state", "enabled")
    _set_keeping_trailing_comment(access, "promotedAfter", _commented(record))
    return _dump(yaml, document)


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def config_of(text: str) -> MspStack:
    """Validate a stack file's text like the program would (secure values count as set)."""
    loaded = YAML(typ="safe").load(text) or {}
    raw: dict[str, Any] = {}
    for key, value in (loaded.get("config") or {}).items():
        secure = isinstance(value, dict) and set(value) == {"secure"}
        raw[key.removeprefix(f"{PROJECT}:")] = "[secret]" if secure else value
    config = parse_stack_config(raw)
    if not isinstance(config, MspStack):
        raise PromoteError("promotion is for MSP stacks (Part A); this is a client stack")
    return config


# --- Graph ----------------------------------------------------------------------------------------


def find_part_a(graph: GraphClient, display_name: str, policy_id: str | None) -> dict[str, Any]:
    if policy_id:
        return graph.get(f"{POLICIES}/{policy_id}")
    matches = [p for p in graph.list_all(POLICIES) if p.get("displayName") == display_name]
    if not matches:
        raise PromoteError(
            f"no policy named {display_name!r} in the tenant: deploy it first (`pulumi up` with state reportOnly), "
            "or pass --policy-id"
        )
    if len(matches) > 1:
        ids = ", ".join(p["id"] for p in matches)
        raise PromoteError(f"{len(matches)} policies are named {display_name!r} ({ids}): pass --policy-id")
    return matches[0]


def sign_ins(graph: GraphClient, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """Every sign-in of the window. Part A's results are picked client-side: Graph filters on the time."""
    window = f"createdDateTime ge {iso(start)} and createdDateTime lt {iso(end)}"
    for page in graph.pages(SIGN_INS, {"$filter": window}):
        yield from page


# --- the command ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    stack: str
    stack_file: Path
    days: int
    accept: bool
    policy_id: str | None
    now: datetime


def promote(request: Request, console: Console) -> int:
    """Read the evidence, print it, and promote or not (exit code)."""
    text = request.stack_file.read_text(encoding="utf-8")
    load_yaml(text, str(request.stack_file))  # a syntax error names the file and line (YamlFileError)
    config = config_of(text)
    _check_promotable(config, text)
    start, end = request.now - timedelta(days=request.days), request.now
    with _graph_for(config) as client:
        # Names (UPNs, group names) become ids first: the evidence sorts sign-ins by user id.
        config = _with_ids(config, client)
        policy = find_part_a(client, config.technician_access.display_name, request.policy_id)
        if policy.get("state") != REPORT_ONLY_STATE:
            raise PromoteError(
                f"policy {policy.get('displayName')!r} ({policy['id']}) is {policy.get('state')!r} in the tenant, "
                "not report-only: there are no report-only results to judge it by"
            )
        evidence = analyse_sign_ins(sign_ins(client, start, end), policy["id"], config)
    _print_evidence(console, evidence, policy, start, end)
    if evidence.needs_acceptance and not request.accept:
        console.print(_refusal(evidence, request.stack), highlight=False)
        return 1
    record = promotion_record(
        evidence,
        policy_id=policy["id"],
        policy_name=config.technician_access.display_name,
        start=start,
        end=end,
        accepted=request.accept,
        now=request.now,
    )
    promoted = promoted_stack_text(text, record)
    config_of(promoted)  # the lockout guard and the record's own rules, before anything is written
    request.stack_file.write_text(promoted, encoding="utf-8")
    console.print(_next_steps(request), highlight=False)
    return 0


def _check_promotable(config: MspStack, text: str) -> None:
    """Fail before reading any log when the promoted config could never pass (e.g. the lockout guard)."""
    if config.technician_access.state == "enabled":
        raise PromoteError("technicianAccess.state is already enabled in this stack file")
    probe = {
        "policyId": "00000000-0000-0000-0000-000000000000",
        "policyDisplayName": config.technician_access.display_name,
        "window": {"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"},
        "signInsEvaluated": 1,
        "wouldBlock": 0,
        "breakGlass": 0,
        "serviceAccount": 0,
        "accepted": False,
        "recordedAt": "2000-01-02T00:00:00Z",
    }
    config_of(promoted_stack_text(text, probe))


def _with_ids(config: MspStack, graph: GraphClient) -> MspStack:
    resolved, _ = resolve_with(config, lambda name: graph_lookup(graph, name))
    if not isinstance(resolved, MspStack):  # resolve_with keeps the kind of stack
        raise PromoteError("promotion is for MSP stacks (Part A); this is a client stack")
    return resolved


def _graph_for(config: MspStack) -> GraphClient:
    def token() -> str:
        return credentials.access_token(config.tenant_id, f"{config.graph_url}/.default")

    return GraphClient(config.graph_url, config.tenant_id, token)


def _table(title: str, groups: Sequence[AffectedGroup]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("user", "IP", "application", "count", "first seen", "last seen"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for g in groups:
        table.add_row(g.user, g.ip, g.application, str(g.count), g.first_seen, g.last_seen)
    return table


def _print_evidence(
    console: Console, evidence: Evidence, policy: dict[str, Any], start: datetime, end: datetime
) -> None:
    console.print(
        f"Part A {policy.get('displayName')!r} ({policy['id']}), sign-ins {iso(start)} → {iso(end)}: "
        f"{evidence.evaluated} evaluated, {evidence.affected} would have been affected",
        highlight=False,
    )
    sections: tuple[tuple[Kind, str], ...] = (
        ("technician", "Would have been blocked"),
        ("breakGlass", "Break-glass accounts the policy would have affected (their exclusion is not working!)"),
        ("serviceAccount", "CIPP service account sign-ins the policy would have affected (CIPP would break!)"),
    )
    for kind, title in sections:
        groups = evidence.of_kind(kind)
        if groups:
            console.print(_table(title, groups))
        else:
            console.print(f"{title}: none", highlight=False)


def _refusal(evidence: Evidence, stack: str) -> str:
    if not evidence.evaluated:
        reason = "the policy evaluated no sign-in in the window: there is no evidence either way"
    else:
        reason = f"{evidence.affected} sign-in(s) would have been blocked or interrupted"
    return (
        f"Not promoted, nothing changed: {reason}. Fix the trusted ranges or the exclusions and wait for clean "
        f"results, or, having read the list above, run `make promote STACK={stack} ACCEPT=1`."
    )


def _next_steps(request: Request) -> str:
    name = request.stack_file.name
    return "\n".join(
        [
            f"Promoted: {name} now sets technicianAccess.state: enabled and records technicianAccess.promotedAfter.",
            "Review the diff, open a pull request, and let CI run:",
            f"  pulumi preview --stack {request.stack} --policy-pack policy",
            f"then, once merged: pulumi up --stack {request.stack} --policy-pack policy",
        ]
    )


EXIT_CODES = """exit codes (they reach the caller; `make promote` turns every failure into 2):
  0  promoted: technicianAccess.state set to enabled and promotedAfter recorded in the stack file
  1  refused: sign-ins would have been affected; read them, then run again with --accept (nothing changed)
  2  error: configuration, stack file (YAML with file:line), an unknown or ambiguous name, credentials,
     Graph, or the policy is not report-only in the tenant (nothing changed)

Credentials: ARM_* (as pulumi-azuread reads them) or AZURE_* variables, or `az login` (docs/commands.md)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening promote",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="prod", help="stack name: edits Pulumi.<stack>.yaml (default prod)")
    parser.add_argument("--stack-file", type=Path, help="edit this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--days", type=int, default=14, help=f"sign-in window in days, 1..{MAX_DAYS} (default 14)")
    parser.add_argument("--accept", action="store_true", help="promote although sign-ins would have been affected")
    parser.add_argument("--policy-id", help="the Part A policy's object id, when its display name is ambiguous")
    args = parser.parse_args(argv)
    console = Console(width=200)
    if not 1 <= args.days <= MAX_DAYS:
        console.print(f"error: --days must be 1..{MAX_DAYS} (sign-in logs are kept {MAX_DAYS} days)")
        return 2
    request = Request(
        args.stack,
        args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml",
        args.days,
        args.accept,
        args.policy_id,
        datetime.now(UTC).replace(microsecond=0),
    )
    try:
        return promote(request, console)
    except (
        ConfigError,
        YamlFileError,
        PromoteError,
        GraphError,
        credentials.CredentialError,
        requests.RequestException,
        OSError,
    ) as error:
        console.print(f"Not promoted, nothing changed: {error}", highlight=False)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
