"""CIPP's own allow-list for technicians: each role of cippApi.customRoles held to its IP ranges by CIPP.

A second layer behind Part A (docs/custom-roles.md): a technician whose Entra sign-in got through is still
refused by CIPP from outside the role's ranges. superadmin is never restricted by CIPP, so whoever holds
it is held by Part A alone: read from CIPP's role list at program time (the Entra group that grants it)
and said at every preview and up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cipp_hardening.config import CippApi
from cipp_hardening.custom_roles import GUARD_KEYS, find_role, part_a_only, part_a_only_message
from dynamic_providers.cipp_custom_roles import CippCustomRoleRanges, CippCustomRoleRangesArgs
from dynamic_providers.props import to_props


@dataclass(frozen=True)
class CippCustomRolesArgs:
    cipp_api: CippApi
    roles_now: Sequence[Mapping[str, Any]] | None  # ExecCustomRole's list at program time; None: not read


class CippCustomRoles(pulumi.ComponentResource):
    """One CippCustomRoleRanges per configured role, named by role."""

    part_a_only: list[dict[str, Any]] | None  # superadmin and the group granting it; None when not read
    managed_roles: list[str]

    def __init__(self, name: str, args: CippCustomRolesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_roles_exist(args)
        self.part_a_only = _report_part_a_only(args.roles_now)
        super().__init__("cipp:hardening:CippCustomRoles", name, None, opts)
        cipp = args.cipp_api
        self._inputs = {
            role.name: CippCustomRoleRangesArgs(
                url=cipp.url,
                tenant_id=cipp.tenant_id,
                manager_client_id=cipp.manager_client_id,
                client_id=cipp.custom_roles_client_id,
                name=role.name,
                allowed_ranges=role.allowed_ranges,
                restore_on_delete=role.restore_on_delete,
                allow_open_on_delete=role.allow_open_on_delete,
            )
            for role in cipp.custom_roles
        }
        self.ranges = {
            role: CippCustomRoleRanges(f"{name}-{role}", args, opts=pulumi.ResourceOptions(parent=self))
            for role, args in self._inputs.items()
        }
        self.managed_roles = sorted(self.ranges)
        self.register_outputs({"managedRoles": self.managed_roles, "partAOnly": self.part_a_only})

    def guard_entries(self) -> list[dict[str, Any]]:
        """What the destroy guard needs to refuse up front what a role's delete would (docs/part-c.md "Destroy")."""
        return [
            {**{key: to_props(args)[key] for key in GUARD_KEYS}, "adoptedRanges": self.ranges[role].adoptedRanges}
            for role, args in self._inputs.items()
        ]


def _check_roles_exist(args: CippCustomRolesArgs) -> None:
    """A configured role CIPP does not have stops the run before anything is registered."""
    if args.roles_now is None:
        return
    missing = [role.name for role in args.cipp_api.custom_roles if find_role(args.roles_now, role.name) is None]
    if missing:
        known = ", ".join(str(r.get("RowKey")) for r in args.roles_now) or "no custom role"
        raise pulumi.RunError(
            f"cippApi.customRoles: CIPP has no role {', '.join(missing)} (it lists {known}); create the role in "
            "CIPP > Settings > User Roles first: this project holds a role's IP ranges, never the role itself"
        )


def _report_part_a_only(roles: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if roles is None:
        return None
    found = part_a_only(roles)
    if not found:  # ExecCustomRole lists the built-in roles only beside at least one custom role
        found = [{"role": "superadmin", "entraGroupId": None, "entraGroupName": None}]
    for entry in found:
        pulumi.log.warn(part_a_only_message(entry))
    return found
