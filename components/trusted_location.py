"""Step 1: the trusted IP named location in the MSP's tenant."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from cipp_hardening.config import TrustedLocation as TrustedLocationConfig


@dataclass(frozen=True)
class TrustedLocationArgs:
    location: TrustedLocationConfig
    # An existing object to take over (the stack file's `adopt` key; docs/adopt.md): its import id.
    import_id: str | None = None


class TrustedLocation(pulumi.ComponentResource):
    """An IP named location marked trusted, holding the canonical CIDRs of the MSP's offices."""

    object_id: pulumi.Output[str]

    def __init__(self, name: str, args: TrustedLocationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cipp:hardening:TrustedLocation", name, None, opts)
        self.named_location = azuread.NamedLocation(
            f"{name}-named-location",
            display_name=args.location.display_name,
            ip=azuread.NamedLocationIpArgs(ip_ranges=list(args.location.cidrs), trusted=True),
            opts=pulumi.ResourceOptions(parent=self, import_=args.import_id),
        )
        # The bare GUID, which is what policies reference; `id` is a /identity/... path (docs/graph-ca.md §4.1).
        self.object_id = self.named_location.object_id
        self.register_outputs({"objectId": self.object_id, "cidrs": list(args.location.cidrs)})
