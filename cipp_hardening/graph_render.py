"""The Microsoft Graph v1.0 JSON body pulumi-azuread sends for a resource's inputs.

pulumi-azuread bridges terraform-provider-azuread; its "expand" functions decide the body. The
mapping rules are docs/graph-ca.md §4.3 (policies) and §4.1 (named locations). Inputs are the engine's
wire (camelCase) names, as the offline run records them. Any input this module does not know raises
`UnsupportedInput`: a silently dropped condition would make every later evaluation wrong.

The bodies are the base of the what-if evaluation, so they also carry `id` when asked (the object id
the mock run assigned) — Graph itself assigns ids on create and never receives them in a body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NAMED_LOCATION_TYPE = "azuread:index/namedLocation:NamedLocation"
CA_POLICY_TYPE = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"

Body = dict[str, Any]


class UnsupportedInput(ValueError):
    """An input whose Graph rendering is not implemented; refusing beats rendering it wrong."""


class RejectedInput(UnsupportedInput):
    """Inputs the provider itself refuses at plan time, so no body would ever be sent."""


DEFAULT_AUTHENTICATION_TYPE = "primaryAndSecondaryAuthentication"


def _known(inputs: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(k for k, v in inputs.items() if k not in allowed and v is not None)
    if unknown:
        raise UnsupportedInput(f"{where}: no Graph rendering for input(s) {', '.join(unknown)}")


def render_named_location(inputs: Mapping[str, Any]) -> Body:
    _known(inputs, {"displayName", "ip", "objectId"}, "namedLocation")
    ip = inputs.get("ip")
    if not ip:
        raise UnsupportedInput("namedLocation: only IP named locations are rendered (country locations are not)")
    _known(ip, {"ipRanges", "trusted"}, "namedLocation.ip")
    return {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": inputs["displayName"],
        "isTrusted": bool(ip.get("trusted", False)),
        # docs/graph-ca.md §4.1: the provider labels every range iPv4CidrRange, IPv6 included; Graph tolerates it.
        "ipRanges": [
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": cidr} for cidr in ip.get("ipRanges", [])
        ],
    }


def render_policy(inputs: Mapping[str, Any]) -> Body:
    _known(inputs, {"displayName", "state", "conditions", "grantControls", "sessionControls", "objectId"}, "policy")
    return {
        "@odata.type": "#microsoft.graph.conditionalAccessPolicy",
        "displayName": inputs["displayName"],
        "state": inputs["state"],
        "conditions": _conditions(inputs["conditions"]),
        "grantControls": _grant_controls(inputs.get("grantControls")),
        "sessionControls": _session_controls(inputs.get("sessionControls")),
    }


def _conditions(c: Mapping[str, Any]) -> Body:
    _known(
        c,
        {
            "applications",
            "clientAppTypes",
            "users",
            "locations",
            "platforms",
            "signInRiskLevels",
            "userRiskLevels",
            "servicePrincipalRiskLevels",
            "insiderRiskLevels",
            "clientApplications",
        },
        "conditions",
    )
    body: Body = {
        "applications": _applications(c["applications"]),
        "clientAppTypes": list(c.get("clientAppTypes") or []),
        "signInRiskLevels": list(c.get("signInRiskLevels") or []),
        "userRiskLevels": list(c.get("userRiskLevels") or []),
        "servicePrincipalRiskLevels": list(c.get("servicePrincipalRiskLevels") or []),
        "users": _users(c["users"]),
        "locations": _include_exclude(c.get("locations"), "Locations"),
        "platforms": _include_exclude(c.get("platforms"), "Platforms"),
        "devices": None,
        "authenticationFlows": None,
    }
    if c.get("insiderRiskLevels"):
        body["insiderRiskLevels"] = c["insiderRiskLevels"]
    if c.get("clientApplications"):
        body["clientApplications"] = _client_applications(c["clientApplications"])
    return body


def _client_applications(a: Mapping[str, Any]) -> Body:
    """Workload identities (docs/workload-identity.md): the provider's expandConditionalAccessClientApplications
    sends both lists, `[]` when empty; the whole block is omitted when unset (docs/graph-ca.md §4.3)."""
    _known(a, {"includedServicePrincipals", "excludedServicePrincipals"}, "conditions.clientApplications")
    return {
        "includeServicePrincipals": list(a.get("includedServicePrincipals") or []),
        "excludeServicePrincipals": list(a.get("excludedServicePrincipals") or []),
    }


def _applications(a: Mapping[str, Any]) -> Body:
    _known(a, {"includedApplications", "excludedApplications", "includedUserActions"}, "conditions.applications")
    return {
        "includeApplications": list(a.get("includedApplications") or []),
        "excludeApplications": list(a.get("excludedApplications") or []),
        "includeUserActions": list(a.get("includedUserActions") or []),
    }


_USER_LISTS = {
    "includeUsers": "includedUsers",
    "excludeUsers": "excludedUsers",
    "includeGroups": "includedGroups",
    "excludeGroups": "excludedGroups",
    "includeRoles": "includedRoles",
    "excludeRoles": "excludedRoles",
}


def _users(u: Mapping[str, Any]) -> Body:
    _known(
        u,
        {*_USER_LISTS.values(), "includedGuestsOrExternalUsers", "excludedGuestsOrExternalUsers"},
        "conditions.users",
    )
    body: Body = {graph: list(u.get(wire) or []) for graph, wire in _USER_LISTS.items()}
    body["includeGuestsOrExternalUsers"] = _guests(u.get("includedGuestsOrExternalUsers"))
    body["excludeGuestsOrExternalUsers"] = _guests(u.get("excludedGuestsOrExternalUsers"))
    return body


def _guests(blocks: Any) -> Body | None:
    # A list of blocks in the SDK, of which only the first is used (docs/graph-ca.md §4.2).
    if not blocks:
        return None
    block = blocks[0]
    _known(block, {"guestOrExternalUserTypes", "externalTenants"}, "guestsOrExternalUsers")
    tenants = (block.get("externalTenants") or [None])[0]
    return {
        # A flags enum: one comma-separated string (docs/graph-ca.md §2.4).
        "guestOrExternalUserTypes": ",".join(block["guestOrExternalUserTypes"]),
        "externalTenants": _external_tenants(tenants),
    }


def _external_tenants(tenants: Mapping[str, Any] | None) -> Body | None:
    if tenants is None:
        return None
    if tenants.get("membershipKind") == "enumerated":
        # Graph rejects the enumerated form without @odata.type (docs/graph-ca.md §2.4, TF #1555/#1601).
        return {
            "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
            "membershipKind": "enumerated",
            "members": list(tenants.get("members") or []),
        }
    return {"membershipKind": tenants.get("membershipKind")}


def _include_exclude(value: Mapping[str, Any] | None, noun: str) -> Body | None:
    if not value:
        return None
    _known(value, {f"included{noun}", f"excluded{noun}"}, noun.lower())
    return {
        f"include{noun}": list(value.get(f"included{noun}") or []),
        f"exclude{noun}": list(value.get(f"excluded{noun}") or []),
    }


def _grant_controls(g: Mapping[str, Any] | None) -> Body | None:
    if not g:
        return None
    _known(g, {"operator", "builtInControls", "customAuthenticationFactors", "termsOfUses"}, "grantControls")
    return {
        "builtInControls": list(g.get("builtInControls") or []),
        "customAuthenticationFactors": list(g.get("customAuthenticationFactors") or []),
        "operator": g["operator"],
        "termsOfUse": list(g.get("termsOfUses") or []),
    }


def _session_controls(s: Mapping[str, Any] | None) -> Body | None:
    if not s:
        return None
    _known(
        s,
        {
            "signInFrequency",
            "signInFrequencyPeriod",
            "signInFrequencyInterval",
            "signInFrequencyAuthenticationType",
            "applicationEnforcedRestrictionsEnabled",
            "disableResilienceDefaults",
            "persistentBrowserMode",
        },
        "sessionControls",
    )
    _refuse_every_time_with_a_period(s)
    frequency = _sign_in_frequency(s)
    every_time = frequency is not None and frequency.get("frequencyInterval") == "everyTime"
    effective = bool(frequency or s.get("applicationEnforcedRestrictionsEnabled") or s.get("persistentBrowserMode"))
    if not effective and not s.get("disableResilienceDefaults"):
        return None  # docs/graph-ca.md §2.6 rule 5: an all-off sessionControls is sent as null
    body: Body = {"cloudAppSecurity": None}
    if frequency:
        body["signInFrequency"] = frequency
    if not every_time:
        # docs/graph-ca.md §2.6 rule 1 / §4.3: sent always, except with everyTime, where Graph rejects them.
        body["applicationEnforcedRestrictions"] = {
            "@odata.type": "#microsoft.graph.applicationEnforcedRestrictionsSessionControl",
            "isEnabled": bool(s.get("applicationEnforcedRestrictionsEnabled")),
        }
        body["disableResilienceDefaults"] = bool(s.get("disableResilienceDefaults"))
    if s.get("persistentBrowserMode"):
        body["persistentBrowser"] = {
            "@odata.type": "#microsoft.graph.persistentBrowserSessionControl",
            "isEnabled": True,
            "mode": s["persistentBrowserMode"],
        }
    return body


def _refuse_every_time_with_a_period(s: Mapping[str, Any]) -> None:
    if s.get("signInFrequencyInterval") == "everyTime" and (s.get("signInFrequency") or s.get("signInFrequencyPeriod")):
        raise RejectedInput(
            "sessionControls: signInFrequencyInterval everyTime cannot be combined with signInFrequency or "
            "signInFrequencyPeriod; the provider rejects it at plan time (docs/graph-ca.md §4.3)"
        )


def _sign_in_frequency(s: Mapping[str, Any]) -> Body | None:
    """expandConditionalAccessSessionControls: sent unless every field is at its default (docs/graph-ca.md §4.3)."""
    frequency: Body = {"@odata.type": "#microsoft.graph.signInFrequencySessionControl"}
    authentication_type = s.get("signInFrequencyAuthenticationType")
    if s.get("signInFrequency"):
        frequency.update(
            isEnabled=True,
            type=s["signInFrequencyPeriod"],
            value=s["signInFrequency"],
            frequencyInterval="timeBased",
        )
    elif s.get("signInFrequencyInterval"):
        frequency.update(isEnabled=True, frequencyInterval=s["signInFrequencyInterval"])
    elif not authentication_type or authentication_type == DEFAULT_AUTHENTICATION_TYPE:
        return None
    frequency["authenticationType"] = authentication_type or DEFAULT_AUTHENTICATION_TYPE
    return frequency


RENDERERS: dict[str, Callable[[Mapping[str, Any]], Body]] = {
    NAMED_LOCATION_TYPE: render_named_location,
    CA_POLICY_TYPE: render_policy,
}


def render(resource_type: str, inputs: Mapping[str, Any]) -> Body | None:
    """The Graph body for a resource type we render, else None (components, dynamic resources)."""
    renderer = RENDERERS.get(resource_type)
    return renderer(inputs) if renderer else None


def with_object_id(body: Body, object_id: str | None) -> Body:
    """The body as Graph would return it: with its id (used to evaluate the plan)."""
    return {"id": object_id, **body} if object_id else dict(body)
