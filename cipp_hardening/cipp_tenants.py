"""CIPP's tenant list → which client stacks to write, and why each other tenant gets none.

Rules only (no HTTP, no files): `cipp_hardening.commands.onboard` fetches the list and writes the files.

What CIPP sends for `GET /api/ListTenants` (docs/fleet.md "What CIPP's tenant list looks like"): HTTP 200
and a JSON array of rows of its Tenants table: `customerId` (the tenant id), `defaultDomainName`,
`displayName`, `delegatedPrivilegeStatus` (`granularDelegatedAdminPrivileges`, or `directTenant` for a
tenant added in Direct Tenant mode), `GraphErrorCount` / `LastGraphError`, and, when CIPP lists the
partner tenant itself, a row with `domains: PartnerTenant`. A failed listing is *also* HTTP 200: one row
whose `Results` says "Failed to retrieve tenants: ..." and whose `customerId` is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cipp_hardening.config import GUID

PLACEHOLDER_PREFIX = "00000000-0000-0000-0000-"  # the example stacks' obviously fake ids
DIRECT_STATUS = "directTenant"
PARTNER_MARKER = "PartnerTenant"
# CIPP's own cut: its everyday tenant list leaves out tenants with 50 Graph errors or more (Get-Tenants).
GRAPH_ERROR_LIMIT = 50
MAX_NAME = 63  # `client-<name>` stays a short, valid Pulumi stack name

WRITE, ONBOARDED, SKIPPED, FAILING, PENDING, OFFBOARD = (
    "write",
    "onboarded",
    "skipped",
    "failing",
    "pending",
    "offboarding candidate",
)


class TenantListError(ValueError):
    """CIPP's answer is its error entry, or not a tenant list at all: nothing can be decided from it."""


def is_placeholder(guid: str) -> bool:
    return guid.strip().lower().startswith(PLACEHOLDER_PREFIX)


@dataclass(frozen=True)
class ListedTenant:
    tenant_id: str  # customerId, lower-case
    domain: str  # defaultDomainName
    display_name: str
    direct: bool
    partner: bool
    graph_errors: int
    last_error: str

    @property
    def label(self) -> str:
        return self.domain or self.display_name or self.tenant_id


@dataclass(frozen=True)
class Row:
    """One line of the onboarding report."""

    tenant: str  # default domain (or display name)
    tenant_id: str
    result: str  # WRITE | ONBOARDED | SKIPPED | FAILING | PENDING | OFFBOARD
    stack: str = ""
    mode: str = ""
    detail: str = ""


@dataclass(frozen=True)
class NewStack:
    stack: str  # client-<name>
    tenant_id: str
    mode: str  # gdap | direct
    service_account: str | None
    tenant: str  # default domain, for the file's header


@dataclass
class OnboardingPlan:
    writes: list[NewStack] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # every listed entry, in CIPP's order
    offboarding: list[Row] = field(default_factory=list)  # client stacks whose tenant CIPP no longer lists

    def count(self, result: str) -> int:
        return sum(row.result == result for row in self.rows)


# -- reading CIPP's answer ----------------------------------------------------------------------------
def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    return value.strip() if isinstance(value, str) else ""


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def listing_error(payload: Any) -> str | None:
    """CIPP's "Failed to retrieve tenants" entry (HTTP 200), or a body that is no tenant list; else None."""
    entries = payload if isinstance(payload, list) else [payload]
    for entry in entries:
        if isinstance(entry, Mapping) and not _text(entry, "customerId") and _text(entry, "Results"):
            return _text(entry, "Results")
    if not isinstance(payload, list):
        return f"expected a JSON array of tenants, got {type(payload).__name__}"
    return None


def read_tenant_list(payload: Any) -> tuple[list[ListedTenant], list[Row]]:
    """The entries that carry a tenant id, and a report row for each one that does not.

    Raises TenantListError for a failed listing: then no tenant may be onboarded *or* offboarded.
    """
    error = listing_error(payload)
    if error is not None:
        raise TenantListError(error)
    tenants: list[ListedTenant] = []
    rows: list[Row] = []
    seen: set[str] = set()
    for entry in payload:
        if not isinstance(entry, Mapping):
            rows.append(Row(repr(entry)[:60], "", SKIPPED, detail="not a tenant entry"))
            continue
        tenant_id = _text(entry, "customerId").lower()
        label = _text(entry, "defaultDomainName") or _text(entry, "displayName") or "(unnamed)"
        if not GUID.match(tenant_id):
            rows.append(Row(label, tenant_id, SKIPPED, detail="no tenant id (customerId) in CIPP's entry"))
            continue
        if tenant_id in seen:
            rows.append(Row(label, tenant_id, SKIPPED, detail="listed twice by CIPP; the first entry counts"))
            continue
        seen.add(tenant_id)
        tenants.append(
            ListedTenant(
                tenant_id=tenant_id,
                domain=_text(entry, "defaultDomainName").lower(),
                display_name=_text(entry, "displayName"),
                direct=_text(entry, "delegatedPrivilegeStatus") == DIRECT_STATUS,
                partner=_text(entry, "domains") == PARTNER_MARKER,
                graph_errors=_count(entry.get("GraphErrorCount")),
                last_error=_text(entry, "LastGraphError"),
            )
        )
    return tenants, rows


# -- stack names ----------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")
    return slug[:MAX_NAME].rstrip("-")


def name_candidates(domain: str, tenant_id: str) -> list[str]:
    """`contoso.onmicrosoft.com` → contoso; `fabrikam.co.uk` → fabrikam, then fabrikam-co-uk, then with the id."""
    host = domain.lower().strip().rstrip(".")
    first = _slug(host.split(".")[0]).removeprefix("client-")  # never client-client-x
    whole = _slug(re.sub(r"\.onmicrosoft\.(com|us|de)$|\.partner\.onmschina\.cn$", "", host)).removeprefix("client-")
    with_id = f"{first[: MAX_NAME - 9]}-{tenant_id[:8]}".strip("-")
    return [name for name in dict.fromkeys([first, whole, with_id]) if name]


def pick_name(domain: str, tenant_id: str, taken: set[str]) -> str | None:
    """The first candidate whose stack `client-<name>` is not taken; None when the domain gives no name."""
    if not _slug(domain):
        return None
    for name in name_candidates(domain, tenant_id):
        if f"client-{name}" not in taken:
            return name
    return None


# -- the plan ---------------------------------------------------------------------------------------------
def _matches(tenant: ListedTenant, keys: Iterable[str]) -> str | None:
    for key in keys:
        if key.lower() in (tenant.tenant_id, tenant.domain):
            return key
    return None


def _service_account(tenant: ListedTenant, accounts: Mapping[str, str]) -> str | None:
    key = _matches(tenant, accounts)
    return str(accounts[key]).strip() if key is not None else None


def plan_onboarding(
    tenants: Sequence[ListedTenant],
    existing: Mapping[str, str],
    msp_tenant_id: str,
    *,
    excluded: Iterable[str] = (),
    service_accounts: Mapping[str, str] | None = None,
    all_stacks: Iterable[str] = (),
) -> OnboardingPlan:
    """Decide for each listed tenant. `existing`: client stack → tenant id; `all_stacks`: every stack name."""
    accounts = dict(service_accounts or {})
    exclusions = [e.strip() for e in excluded if e.strip()]
    onboarded = {tenant_id.lower(): stack for stack, tenant_id in existing.items()}
    taken = {*all_stacks, *existing}
    plan = OnboardingPlan()
    for tenant in tenants:
        row = _decide(tenant, onboarded, msp_tenant_id.lower(), exclusions, accounts, taken)
        if row.result == WRITE:
            taken.add(row.stack)
            account = _service_account(tenant, accounts) if row.mode == "direct" else None
            plan.writes.append(NewStack(row.stack, tenant.tenant_id, row.mode, account, tenant.label))
        plan.rows.append(row)
    listed = {tenant.tenant_id for tenant in tenants}
    for stack, tenant_id in sorted(existing.items()):
        if tenant_id.lower() not in listed:
            detail = "CIPP no longer lists this tenant: review, then `pulumi destroy` the stack and remove its file"
            plan.offboarding.append(Row("", tenant_id, OFFBOARD, stack=stack, detail=detail))
    return plan


def _decide(
    tenant: ListedTenant,
    onboarded: Mapping[str, str],
    msp_tenant_id: str,
    exclusions: Sequence[str],
    accounts: Mapping[str, str],
    taken: set[str],
) -> Row:
    def row(result: str, detail: str = "", stack: str = "", mode: str = "") -> Row:
        return Row(tenant.label, tenant.tenant_id, result, stack, mode, detail)

    if tenant.partner or tenant.tenant_id == msp_tenant_id:
        return row(SKIPPED, "the MSP's own tenant (Parts A-C cover it, in the MSP stack)")
    if tenant.tenant_id in onboarded:
        return row(ONBOARDED, stack=onboarded[tenant.tenant_id])
    if (key := _matches(tenant, exclusions)) is not None:
        return row(SKIPPED, f"in the exclusion list ({key})")
    if tenant.graph_errors >= GRAPH_ERROR_LIMIT:
        last = f"; last: {tenant.last_error[:120]}" if tenant.last_error else ""
        return row(FAILING, f"CIPP cannot reach it ({tenant.graph_errors} Graph errors{last}); onboarded once it can")
    name = pick_name(tenant.domain, tenant.tenant_id, taken)
    if name is None:
        return row(SKIPPED, "no usable default domain to name its stack from")
    stack = f"client-{name}"
    if not tenant.direct:
        return row(WRITE, stack=stack, mode="gdap")
    account = _service_account(tenant, accounts)
    if account is None:
        detail = "Direct Tenant mode: add the CIPP service account's user id in this tenant to SERVICE_ACCOUNTS"
        return row(PENDING, detail, stack, "direct")
    if not GUID.match(account.strip()):
        return row(PENDING, f"SERVICE_ACCOUNTS gives {account!r} for it, not a user object id (GUID)", stack, "direct")
    return row(WRITE, stack=stack, mode="direct")
