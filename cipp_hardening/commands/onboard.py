"""Client stacks (Part D), one at a time or every tenant CIPP manages.

    make onboard-client NAME=contoso TENANT=<guid> [MODE=direct SERVICE_ACCOUNT=<guid>]
    make onboard-clients FROM=cipp [STACK=prod] [DRY_RUN=1] [EXCLUDE=file] [SERVICE_ACCOUNTS=file]

Both write validated `Pulumi.client-<name>.yaml` files taking the MSP tenant id from the MSP stack file,
and never overwrite one. `onboard-clients` reads CIPP's tenant list (`GET /api/ListTenants`, read-only) as
the manager client of the MSP stack's `cippApi` section, its secret from CIPP_API_MANAGER_SECRET, and
prints what it wrote, what it skipped and why, and the client stacks whose tenant CIPP no longer lists
(docs/fleet.md). Exit codes: 0 done (skipped and pending tenants are reported, not errors), 2 refused
or failed (nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cipp_hardening.cipp_tenants import (
    GUID,
    WRITE,
    NewStack,
    OnboardingPlan,
    Row,
    TenantListError,
    is_placeholder,
    plan_onboarding,
    read_tenant_list,
)
from cipp_hardening.config import PROJECT, CippApi, ConfigError, MspStack, parse_stack_config, raw_from_flat_config
from cipp_hardening.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET_ENV = "CIPP_API_MANAGER_SECRET"  # noqa: S105 - an environment variable name
NAME_RULE = "lower-case letters, digits and dashes, at most 63"
# The make variable (and option) behind each client-stack key, so a refusal names what to set.
MAKE_VARIABLES = {
    "clientTenant.tenantId": "TENANT (--tenant)",
    "clientTenant.accessMode": "MODE (--mode)",
    "clientTenant.serviceAccountUserId": "SERVICE_ACCOUNT (--service-account)",
}
TenantFetcher = Callable[[CippApi, str], Any]


class OnboardError(ValueError):
    pass


# -- the MSP stack and the client stacks already there -------------------------------------------------
def _stack_config(stack_file: Path, what: str) -> dict[str, Any]:
    try:
        document = read_yaml(stack_file)
    except FileNotFoundError:
        raise OnboardError(f"{stack_file.name} not found: {what}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise OnboardError(f"{stack_file.name}: {exc}") from None
    config = (document or {}).get("config") if isinstance(document, dict) else None
    return config if isinstance(config, dict) else {}


def msp_tenant_id(msp_stack_file: Path) -> str:
    config = _stack_config(msp_stack_file, "the MSP tenant id is read from the MSP stack (STACK=...)")
    tenant = str(config.get("azuread:tenantId") or "").strip()
    if not tenant:
        raise OnboardError(f"{msp_stack_file.name} has no azuread:tenantId (the MSP tenant)")
    if is_placeholder(tenant):
        raise OnboardError(
            f"{msp_stack_file.name}: azuread:tenantId {tenant} is still the example's placeholder; put your MSP "
            "tenant id there first (every client stack copies it as mspTenantId)"
        )
    return tenant.lower()


def msp_cipp_api(msp_stack_file: Path) -> tuple[str, CippApi]:
    """The MSP tenant id and the validated `cippApi` section of the MSP stack."""
    tenant = msp_tenant_id(msp_stack_file)
    flat = {k if ":" in k else f"{PROJECT}:{k}": v for k, v in _stack_config(msp_stack_file, "").items()}
    flat = {k: v for k, v in flat.items() if not (isinstance(v, dict) and set(v) == {"secure"})}
    try:
        stack = parse_stack_config(raw_from_flat_config(flat))
    except ConfigError as exc:
        raise OnboardError(f"{msp_stack_file.name}: " + "; ".join(str(p) for p in exc.problems)) from None
    if not isinstance(stack, MspStack):
        raise OnboardError(f"{msp_stack_file.name} is not an MSP stack (mode: msp); set STACK= to the MSP stack")
    if stack.cipp_api is None:
        raise OnboardError(
            f"{msp_stack_file.name} has no {PROJECT}:cippApi section (url, managerClientId): onboarding from "
            "CIPP reads its tenant list as that manager client"
        )
    return tenant, stack.cipp_api


def client_stacks(root: Path) -> dict[str, str]:
    """Client stack → its tenant id (lower-case), from every Pulumi.<stack>.yaml with mode client."""
    found: dict[str, str] = {}
    for path in sorted(root.glob("Pulumi.*.yaml")):
        stack = path.name[len("Pulumi.") : -len(".yaml")]
        config = _stack_config(path, "")
        if config.get(f"{PROJECT}:mode") != "client":
            continue
        client = config.get(f"{PROJECT}:clientTenant")
        tenant = client.get("tenantId") if isinstance(client, dict) else None
        if not isinstance(tenant, str) or not GUID.match(tenant.strip()):
            raise OnboardError(f"{path.name}: clientTenant.tenantId is missing or not a GUID; fix it first")
        found[stack] = tenant.strip().lower()
    return found


def all_stacks(root: Path) -> set[str]:
    return {p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml")}


# -- writing one client stack --------------------------------------------------------------------------
def client_stack_config(tenant: str, msp_tenant: str, mode: str, service_account: str | None) -> dict[str, Any]:
    client: dict[str, Any] = {"tenantId": tenant, "mspTenantId": msp_tenant, "accessMode": mode}
    if service_account:
        client["serviceAccountUserId"] = service_account
    client["onConflict"] = "report"
    return {f"{PROJECT}:mode": "client", f"{PROJECT}:clientTenant": client}


def _validated(config: dict[str, Any]) -> None:
    """parse_stack_config on the new file; its problems re-worded with the make variable to set."""
    try:
        parse_stack_config({k.removeprefix(f"{PROJECT}:"): v for k, v in config.items()})
    except ConfigError as exc:
        messages = [f"{MAKE_VARIABLES.get(p.key, p.key)}: {p.message}" for p in exc.problems]
        raise OnboardError("; ".join(messages)) from None


def write_stack_file(target: Path, config: dict[str, Any], header: str) -> None:
    """Create the file; FileExistsError if it is there (mode "x": never overwrites, even in a race)."""
    with target.open("x", encoding="utf-8") as handle:
        handle.write(header + yaml.safe_dump({"config": config}, sort_keys=False))


def check_name(name: str) -> None:
    if not name:
        raise OnboardError("NAME (--name) is required: `make onboard-client NAME=contoso TENANT=<guid>`")
    if name.startswith("client-"):
        raise OnboardError(
            f"NAME {name!r}: leave out the client- prefix, the stack is client-NAME "
            f"(NAME={name.removeprefix('client-')} gives the stack {name})"
        )
    if len(name) > 63 or not all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in name):
        raise OnboardError(f"NAME {name!r}: use {NAME_RULE} characters (it becomes the stack client-NAME)")
    if name.startswith("-"):
        raise OnboardError(f"NAME {name!r}: start with a letter or digit")


def onboard(
    name: str,
    tenant: str,
    mode: str = "gdap",
    service_account: str | None = None,
    root: Path = ROOT,
    msp_stack: str = "prod",
) -> Path:
    """Validate and write Pulumi.client-<name>.yaml; return its path. Raises OnboardError, writes nothing then."""
    check_name(name)
    if not tenant:
        raise OnboardError("TENANT (--tenant) is required: the client tenant id (GUID)")
    if mode not in ("gdap", "direct"):
        raise OnboardError(f"MODE (--mode) must be gdap or direct, got {mode!r}")
    target = root / f"Pulumi.client-{name}.yaml"
    if target.exists():
        raise OnboardError(f"{target.name} already exists; refusing to overwrite it (choose another NAME)")
    msp_tenant = msp_tenant_id(root / f"Pulumi.{msp_stack}.yaml")
    config = client_stack_config(tenant.strip(), msp_tenant, mode, service_account or None)
    _validated(config)
    for stack, other in client_stacks(root).items():
        if other == tenant.strip().lower():
            raise OnboardError(
                f"TENANT (--tenant) {tenant} is already onboarded as stack {stack} (Pulumi.{stack}.yaml); "
                "one stack per tenant: two would fight over the same exclusions"
            )
    header = f"# Client stack for {name} (Part D): generated by `make onboard-client`; review before `pulumi up`.\n"
    try:
        write_stack_file(target, config, header)
    except FileExistsError:
        raise OnboardError(f"{target.name} already exists; refusing to overwrite it (choose another NAME)") from None
    return target


def next_steps(name: str) -> str:
    stack = f"client-{name}"
    return "\n".join(
        [
            f"  pulumi stack init {stack}",
            f"  pulumi preview --stack {stack}     # lists the client's policies and what will change",
            f"  pulumi up --stack {stack}",
            f"  make verify STACK={stack}          # read-only check that no policy still blocks the MSP",
        ]
    )


# -- every tenant CIPP manages ----------------------------------------------------------------------------
def fetch_tenant_list(cipp_api: CippApi, secret: str) -> Any:
    """`GET /api/ListTenants` as the manager client (a token for api://<manager>/.default via azure-identity)."""
    from service_clients import credentials
    from service_clients.cipp_client import CippClient

    manager = cipp_api.manager_client_id

    def token() -> str:
        return credentials.access_token(
            cipp_api.tenant_id, f"api://{manager}/.default", client_id=manager, client_secret=secret
        )

    with CippClient(cipp_api.url, token, manager_client_id=manager) as client:
        return client.list_tenants()


def read_list_file(path: Path | None) -> list[str]:
    """The exclusion list: one tenant id or default domain a line; `#` starts a comment."""
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OnboardError(f"EXCLUDE (--exclude) {path}: {exc.strerror or exc}") from None
    return [entry for line in lines if (entry := line.split("#", 1)[0].strip())]


def read_service_accounts(path: Path | None) -> dict[str, str]:
    """SERVICE_ACCOUNTS: a YAML mapping `<tenant id or default domain>: <CIPP service account user id>`."""
    if path is None:
        return {}
    try:
        document = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise OnboardError(f"SERVICE_ACCOUNTS (--service-accounts) {path}: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise OnboardError(f"SERVICE_ACCOUNTS (--service-accounts) {path}: expected a mapping tenant → user id")
    return {str(k).strip(): str(v).strip() for k, v in document.items()}


@dataclass(frozen=True)
class OnboardingReport:
    plan: OnboardingPlan
    written: list[Path]
    dry_run: bool


def _header(new: NewStack) -> str:
    return (
        f"# Client stack for {new.tenant} (Part D): generated by `make onboard-clients FROM=cipp` from CIPP's "
        "tenant list; review before `pulumi up`.\n"
    )


def onboard_from_cipp(
    root: Path = ROOT,
    msp_stack: str = "prod",
    *,
    dry_run: bool = False,
    exclude_file: Path | None = None,
    service_accounts_file: Path | None = None,
    fetch: TenantFetcher = fetch_tenant_list,
    environ: Mapping[str, str] = os.environ,
) -> OnboardingReport:
    """Read CIPP's tenant list and write one client stack per tenant not yet onboarded (none when dry_run)."""
    msp_tenant, cipp_api = msp_cipp_api(root / f"Pulumi.{msp_stack}.yaml")
    excluded = read_list_file(exclude_file)
    accounts = read_service_accounts(service_accounts_file)
    existing = client_stacks(root)
    secret = environ.get(SECRET_ENV, "")
    if not secret:
        raise OnboardError(
            f"{SECRET_ENV} is not set: the secret of the CIPP-API manager client {cipp_api.manager_client_id} "
            f"(cippApi.managerClientId of Pulumi.{msp_stack}.yaml)"
        )
    payload = _fetch(fetch, cipp_api, secret)
    try:
        tenants, unusable = read_tenant_list(payload)
    except TenantListError as exc:
        raise OnboardError(f"CIPP at {cipp_api.url} could not list its tenants: {exc}; nothing written") from None
    plan = plan_onboarding(
        tenants, existing, msp_tenant, excluded=excluded, service_accounts=accounts, all_stacks=all_stacks(root)
    )
    plan.rows[:0] = unusable
    written = [] if dry_run else _write_all(root, plan, msp_tenant)
    return OnboardingReport(plan, written, dry_run)


def _fetch(fetch: TenantFetcher, cipp_api: CippApi, secret: str) -> Any:
    try:
        return fetch(cipp_api, secret)
    except OnboardError:
        raise
    except Exception as exc:  # CippError, CredentialError, requests errors: one readable line, no traceback
        raise OnboardError(f"CIPP-API ListTenants at {cipp_api.url}: {exc}") from None


def _write_all(root: Path, plan: OnboardingPlan, msp_tenant: str) -> list[Path]:
    """Every planned stack, each validated first; an existing file is never touched (mode "x")."""
    ready = []
    for new in plan.writes:
        config = client_stack_config(new.tenant_id, msp_tenant, new.mode, new.service_account)
        _validated(config)
        ready.append((root / f"Pulumi.{new.stack}.yaml", config, _header(new)))
    written = []
    for target, config, header in ready:
        try:
            write_stack_file(target, config, header)
        except FileExistsError:
            continue  # created since the plan was made: left as it is (reported as not written)
        written.append(target)
    return written


# -- output ---------------------------------------------------------------------------------------------
def report_rows(report: OnboardingReport) -> list[Row]:
    written = {p.name[len("Pulumi.") : -len(".yaml")] for p in report.written}
    rows = []
    for row in report.plan.rows:
        if row.result == WRITE:
            result = "would write" if report.dry_run else ("written" if row.stack in written else "not written")
            detail = row.detail or ("" if result != "not written" else "the file appeared meanwhile; left as it is")
            row = Row(row.tenant, row.tenant_id, result, row.stack, row.mode, detail)
        rows.append(row)
    return rows + report.plan.offboarding


def print_report(report: OnboardingReport) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    rows = report_rows(report)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.result] = counts.get(row.result, 0) + 1
    title = "onboard from CIPP" + (" (dry run: nothing written)" if report.dry_run else "")
    table = Table(title=title + ": " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    for column in ("tenant", "tenant id", "result", "stack", "mode", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(Text(cell) for cell in (row.tenant, row.tenant_id, row.result, row.stack, row.mode, row.detail))
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # CI logs: no folded stack names
    if report.written:
        print(f"wrote {len(report.written)} stack files. Next: review them, commit, and `make fleet ACTION=preview`.")


# -- command line ---------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cipp-hardening onboard",
        description="Write validated client stack files: one (--name, --tenant) or every tenant CIPP manages "
        "(--from cipp). Exit 0 done, 2 refused or failed (nothing written).",
    )
    parser.add_argument("--name", default="", help="NAME: the stack becomes client-NAME")
    parser.add_argument("--tenant", default="", help="TENANT: the client tenant id (GUID)")
    parser.add_argument("--mode", default="gdap", help="MODE: gdap (default) or direct")
    parser.add_argument("--service-account", help="SERVICE_ACCOUNT: direct mode, the CIPP service account's user id")
    parser.add_argument("--msp-stack", default="prod", help="STACK: the MSP stack (its azuread:tenantId, cippApi)")
    parser.add_argument("--from", dest="source", help="FROM: cipp, every tenant in CIPP's tenant list")
    parser.add_argument("--dry-run", action="store_true", help="DRY_RUN: report, write nothing")
    parser.add_argument("--exclude", type=Path, help="EXCLUDE: file of tenant ids or domains never onboarded")
    parser.add_argument("--service-accounts", type=Path, help="SERVICE_ACCOUNTS: YAML tenant → service account id")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    return parser


def main(argv: Sequence[str] | None = None, fetch: TenantFetcher = fetch_tenant_list) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.source is not None:
            if args.source != "cipp":
                raise OnboardError(f"FROM (--from) must be cipp, the one tenant source so far; got {args.source!r}")
            if args.name or args.tenant:
                raise OnboardError("FROM=cipp names every stack itself: leave out NAME and TENANT")
            report = onboard_from_cipp(
                args.project_dir,
                args.msp_stack,
                dry_run=args.dry_run,
                exclude_file=args.exclude,
                service_accounts_file=args.service_accounts,
                fetch=fetch,
            )
            print_report(report)
            return 0
        path = onboard(
            args.name, args.tenant, args.mode, args.service_account, root=args.project_dir, msp_stack=args.msp_stack
        )
    except OnboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path.name}. Next:\n{next_steps(args.name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
