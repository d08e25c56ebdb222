"""Part C: every managed CIPP-API client restricted to its allowed IP ranges, and no one else left open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cipp_hardening.cipp_api import (
    GUARD_KEYS,
    ClientList,
    denying_clients,
    denying_message,
    find_client,
    pending_saves,
    ranges_of,
    summary,
    unrestricted_clients,
    unrestricted_message,
    widened_ranges,
    widening_message,
)
from cipp_hardening.config import CippApi
from dynamic_providers.cipp_api_client_ranges import CippApiClientRanges, CippApiClientRangesArgs
from dynamic_providers.cipp_api_destroy_guard import CippApiDestroyGuard, CippApiDestroyGuardArgs
from dynamic_providers.props import to_props


@dataclass(frozen=True)
class CippApiAllowlistsArgs:
    cipp_api: CippApi
    # CIPP's List at program time (a ClientList also carries App Service's allowed list); None: not read (offline)
    clients_now: Sequence[Mapping[str, Any]] | None


class CippApiAllowlists(pulumi.ComponentResource):
    """One CippApiClientRanges per configured client, named by client id; the open-clients check first.

    "Can call" is App Service's allowed list from the last Save Azure Configuration when CIPP could
    report it (GetAzureConfiguration), else the table's Enabled flag as SaveToAzure selects it. With
    `unrestrictedClients: fail` such a client without ranges, not managed here, stops the run before this
    component registers anything. Clients stored as "[]" (refused everywhere) and clients whose flag and
    App Service disagree (a save is pending) are reported as what they are.
    """

    unrestricted: list[dict[str, str]] | None  # None when the clients could not be read (offline plan)
    denying: list[dict[str, str]] | None
    pending_save: list[dict[str, Any]] | None  # None when App Service's list was not read
    widened: list[dict[str, Any]] | None  # managed clients this stack opens wider than CIPP holds them now
    managed_client_ids: list[str]

    def __init__(self, name: str, args: CippApiAllowlistsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        self.unrestricted = _check_open_clients(args)
        _report_open_by_statement(args.cipp_api)
        self.widened = _report_widening(args)
        self.denying = _report_denying(args.clients_now)
        self.pending_save = _report_pending(args.clients_now)
        super().__init__("cipp:hardening:CippApiAllowlists", name, None, opts)
        self._name = name
        cipp = args.cipp_api
        self._inputs = {
            client.client_id: CippApiClientRangesArgs(
                url=cipp.url,
                tenant_id=cipp.tenant_id,
                manager_client_id=cipp.manager_client_id,
                client_id=client.client_id,
                allowed_ranges=client.allowed_ranges,
                allow_self_update=client.allow_self_update,
                restore_on_delete=client.restore_on_delete,
                allow_any_on_delete=client.allow_any_on_delete,
                mcp_allowed=client.mcp_allowed,
            )
            for client in cipp.clients
        }
        self.ranges = {
            client_id: CippApiClientRanges(f"{name}-{client_id}", args, opts=pulumi.ResourceOptions(parent=self))
            for client_id, args in self._inputs.items()
        }
        self.managed_client_ids = sorted(self.ranges)
        self.register_outputs(
            {
                "managedClientIds": self.managed_client_ids,
                "unrestrictedClients": self.unrestricted,
                "denyingClients": self.denying,
                "pendingSaveClients": self.pending_save,
                "widenedClients": self.widened,
            }
        )

    def destroy_guard(
        self, everything_else: Sequence[pulumi.Resource], roles: Sequence[Mapping[str, Any]] = ()
    ) -> CippApiDestroyGuard:
        """The guard that makes a destroy of the stack all or nothing (docs/part-c.md "Destroy").

        It must depend on every other resource of the stack (`everything_else`, components included: a
        component stands for all its children), so that its delete is the first and only one of the first round.
        `roles` are the CIPP roles of cippApi.customRoles (components.cipp_custom_roles.guard_entries).
        """
        clients = [
            {**{key: to_props(args)[key] for key in GUARD_KEYS}, "adoptedRanges": self.ranges[client_id].adoptedRanges}
            for client_id, args in self._inputs.items()
        ]
        depends_on = [self, *everything_else]
        return CippApiDestroyGuard(
            f"{self._name}-destroy-guard",
            CippApiDestroyGuardArgs(tuple(clients), tuple(dict(role) for role in roles) or None),
            pulumi.ResourceOptions(depends_on=depends_on),
        )


def _check_open_clients(args: CippApiAllowlistsArgs) -> list[dict[str, str]] | None:
    if args.clients_now is None:
        return None
    managed = [client.client_id for client in args.cipp_api.clients]
    clients = args.clients_now
    app_service = clients.app_service if isinstance(clients, ClientList) else None
    if isinstance(clients, ClientList) and app_service is None:
        pulumi.log.warn(
            "cippApi: App Service's allowed clients could not be read, so 'can call' is judged from the "
            f"Enabled flag in CIPP's table: {clients.app_service_error}"
        )
    open_clients = unrestricted_clients(clients, managed, app_service)
    if open_clients and args.cipp_api.unrestricted_clients == "fail":
        raise pulumi.RunError(unrestricted_message(open_clients, "fail"))
    for client in open_clients:
        pulumi.log.warn(
            f"CIPP-API client {client.describe()} can call CIPP and accepts requests from any IP address; "
            "manage it in cippApi.clients or restrict it in CIPP > Integrations > CIPP-API"
        )
    return [client.to_json() for client in open_clients]


def _report_open_by_statement(cipp: CippApi) -> None:
    """Every managed client declared open to every address is said at every plan, preview and up."""
    for index, client in enumerate(cipp.clients):
        if not client.allowed_ranges:
            pulumi.log.warn(
                f"CIPP-API client {client.client_id} is declared open to every address "
                f"(cippApi.clients[{index}].allowedRanges: [Any])"
            )


def _report_widening(args: CippApiAllowlistsArgs) -> list[dict[str, Any]] | None:
    """Managed clients whose declared ranges allow addresses CIPP refuses them today (docs/part-c.md)."""
    if args.clients_now is None:
        return None
    found = []
    for client in args.cipp_api.clients:
        now = find_client(args.clients_now, client.client_id)
        if now is None:
            continue  # the resource names the missing client
        current = ranges_of(now)
        widened = widened_ranges(client.allowed_ranges, current)
        if widened:
            pulumi.log.warn(widening_message(summary(now), current, widened))
            found.append({**summary(now).to_json(), "currentRanges": current, "widenedBy": widened})
    return found


def _report_denying(clients: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]] | None:
    if clients is None:
        return None
    found = denying_clients(clients)
    for client in found:
        pulumi.log.warn(denying_message(client))
    return [client.to_json() for client in found]


def _report_pending(clients: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not isinstance(clients, ClientList) or clients.app_service is None:
        return None
    pending = pending_saves(clients, clients.app_service)
    for entry in pending:
        pulumi.log.warn(f"CIPP-API client {entry.describe()} (CIPP > Integrations > CIPP-API)")
    return [entry.to_json() for entry in pending]
