"""Part C: every managed CIPP-API client restricted to its allowed IP ranges, and no one else left open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cipp_hardening.cipp_api import unrestricted_clients, unrestricted_message
from cipp_hardening.config import CippApi
from dynamic_providers.cipp_api_client_ranges import CippApiClientRanges


@dataclass(frozen=True)
class CippApiAllowlistsArgs:
    cipp_api: CippApi
    clients_now: Sequence[Mapping[str, Any]] | None  # CIPP's List at program time; None: not read (offline)


class CippApiAllowlists(pulumi.ComponentResource):
    """One CippApiClientRanges per configured client, named by client id; the open-clients check first.

    With `unrestrictedClients: fail` an enabled, unmanaged client without ranges stops the run before
    this component registers anything.
    """

    unrestricted: list[dict[str, str]] | None  # None when the clients could not be read (offline plan)
    managed_client_ids: list[str]

    def __init__(self, name: str, args: CippApiAllowlistsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        self.unrestricted = _check_open_clients(args)
        super().__init__("cipp:hardening:CippApiAllowlists", name, None, opts)
        cipp = args.cipp_api
        self.ranges = {
            client.client_id: CippApiClientRanges(
                f"{name}-{client.client_id}",
                {
                    "url": cipp.url,
                    "tenantId": cipp.tenant_id,
                    "managerClientId": cipp.manager_client_id,
                    "clientId": client.client_id,
                    "allowedRanges": list(client.allowed_ranges),
                    "allowSelfUpdate": client.allow_self_update,
                    "restoreOnDelete": client.restore_on_delete,
                    "allowAnyOnDelete": client.allow_any_on_delete,
                },
                opts=pulumi.ResourceOptions(parent=self),
            )
            for client in cipp.clients
        }
        self.managed_client_ids = sorted(self.ranges)
        self.register_outputs({"managedClientIds": self.managed_client_ids, "unrestrictedClients": self.unrestricted})


def _check_open_clients(args: CippApiAllowlistsArgs) -> list[dict[str, str]] | None:
    if args.clients_now is None:
        return None
    managed = [client.client_id for client in args.cipp_api.clients]
    open_clients = unrestricted_clients(args.clients_now, managed)
    if open_clients and args.cipp_api.unrestricted_clients == "fail":
        raise pulumi.RunError(unrestricted_message(open_clients, "fail"))
    for client in open_clients:
        pulumi.log.warn(
            f"CIPP-API client {client.describe()} is enabled and accepts requests from any IP address; "
            "manage it in cippApi.clients or restrict it in CIPP > Integrations > CIPP-API"
        )
    return [client.to_json() for client in open_clients]
