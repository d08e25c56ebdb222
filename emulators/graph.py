"""A loopback Microsoft Graph (v1.0) Conditional Access emulator with real HTTPS.

It serves, on one ``https://127.0.0.1:PORT`` origin:

* the identity platform endpoints MSAL/azure-identity fetch (OpenID configuration, token endpoint),
  backed by :class:`emulators.identity.Directory`;
* ``/v1.0/identity/conditionalAccess/{policies,namedLocations,deletedItems/...}`` with Graph's
  validation, PATCH merge semantics, canonical GET shapes, paging and error envelope;
* ``/v1.0/auditLogs/signIns`` with ``$filter`` on ``createdDateTime`` and paging;
* ``/v1.0/auditLogs/directoryAudits`` with ``$filter`` and paging: every policy write over HTTP leaves the entry
  Entra's audit log holds for it, initiated by the caller of the token (``GraphEmulator._audit_policy_write``;
  docs/graph-ca.md §6.8, §8);
* ``/v1.0/servicePrincipals`` (read-only: ``?$filter=appId eq '…'``, ``/{id}``, ``(appId='…')``), and
  workload-identity policies (``conditions.clientApplications``) checked as Graph does, with the 1150
  refusal in a tenant without Workload Identities Premium (``set_licences``; docs/workload-identity.md);
* the read-only directory (``/v1.0/users``, ``/v1.0/groups``: emulators/graph_directory.py), and those
  directory and service-principal GETs under ``/beta`` too, where pulumi-azuread's lookups read
  (everything else on beta is refused, §1.3). ``$filter`` is lexed as OData does (``parse_filter``).

Tests steer it from Python: tenants and state (``load_policies``, ``put_policy``...), throttling
(docs/graph-ca.md §1.5), fault injection, replication lag and a request log. Section numbers in comments
refer to the Graph research notes (docs/graph-ca.md).

Usage::

    with GraphEmulator(seed=1) as graph:                      # or the fixtures in tests/emulators/fixtures.py
        graph.register_app(client_id, secret, tenant_id)       # consented in tenant_id; tokens via MSAL
        graph.load_policies(tenant_id, "exported-policies/")  # a folder of exported policy JSON
        graph.set_throttle(enabled=True)                       # 1 request/s/tenant, 429 without Retry-After
        graph.inject(method="PATCH", path_contains="/policies/", status=503, times=1)
        ClientSecretCredential(tenant_id, client_id, secret, authority=graph.url,
                               disable_instance_discovery=True, connection_verify=str(graph.ca_bundle))

CLI: ``python -m emulators.graph --port N --tenant <guid> --policies <folder> [--ca-bundle-out path]``
prints GRAPH_URL=, CA_BUNDLE=, TENANTS=, CLIENT_ID= and CLIENT_SECRET= lines and serves until interrupted.

Decisions where the reference is silent:

* Body validation follows the v1.0 schema extract, embedded below as ``TYPES``/``ENUMS`` (a test
  checks the table against graph-ca-schema.v1.0.json). Every unknown property, wrong JSON type,
  null for a non-nullable property or unknown enum member is 400 ``1007`` (§1.6).
* Read-only properties (``id``, ``createdDateTime``, ``modifiedDateTime``, ``deletedDateTime``,
  ``templateId``) are accepted in POST/PATCH bodies and ignored, as OData services ignore computed
  properties (the AlexFilipin corpus templates POST ``"createdDateTime": null``). A PATCH whose
  ``id`` differs from the id in the URL is rejected.
* Property type annotations (``"includeUsers@odata.type"``) are accepted and ignored; any other
  annotation (``@odata.context``, ``#microsoft.graph.restore``...) in a request body is 1007.
* 1040 is checked only for the location ids a write *sends*: a PATCH that leaves
  ``conditions.locations`` alone never fails on stale references already stored (the corpus is
  full of them), which matches "the emulator only enforces 1040 on writes that change locations".
* The Python-side state API (``load_policies``, ``put_policy``, ``add_named_location``) is lenient by
  default: it stores what a real tenant could hold (beta-only properties are dropped, because a v1.0
  GET never shows them; stale references and odd values are kept). ``lenient=False`` validates
  exactly like a POST.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import contextlib
import copy
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import secrets
import shutil
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from emulators import graph_directory
from emulators.graph_directory import DirectoryRequestError, DirectoryState
from emulators.identity import GRAPH_RESOURCE, AppRegistration, Directory, InvalidToken, openid_configuration
from emulators.tls import TestTLS, make_test_tls

log = logging.getLogger(__name__)

JSONObject = dict[str, Any]
# A test's What If answer for one policy: (policyApplies, analysisReasons) — GraphEmulator.set_what_if.
WhatIfAnswer = Callable[[JSONObject, JSONObject], tuple[bool, str]]

GRAPH_DEFAULT_SCOPE = f"{GRAPH_RESOURCE}/.default"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_AUDIENCES = {GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID}
MAX_POLICIES = 195  # §3
MAX_NAMED_LOCATIONS = 195  # §3
MAX_IP_RANGES = 2000  # §3
MIN_IPV4_PREFIX = 8  # §3: TF/Pulumi accept /8; whether Graph does is unverified
SPECIAL_LOCATION_IDS = {"all", "alltrusted", "00000000-0000-0000-0000-000000000000"}  # §2.8
READ_ONLY_PROPERTIES = ("id", "createdDateTime", "modifiedDateTime", "deletedDateTime", "templateId")
ODATA_PREFIX = "#microsoft.graph."
JSON_CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

SIGN_IN_RESULTS = (
    "success",
    "failure",
    "notApplied",
    "notEnabled",
    "unknown",
    "unknownFutureValue",
    "reportOnlySuccess",
    "reportOnlyFailure",
    "reportOnlyNotApplied",
    "reportOnlyInterrupted",
)
SIGN_IN_CA_STATUSES = ("success", "failure", "notApplied", "unknownFutureValue")

# -------------------------------------------------------------------------------------------------
# The v1.0 schema extract (graph-ca-schema.v1.0.json), as a compact table.
# Property kinds: str, bool, int, datetime, enum:<E>, obj:<T>, nav:<T>; "?" = nullable, "[...]" = collection.
# -------------------------------------------------------------------------------------------------

TYPES: dict[str, tuple[str | None, bool, dict[str, str]]] = {  # name -> (base, abstract, properties)
    "policyDeletableItem": (None, True, {"deletedDateTime": "?datetime"}),
    "conditionalAccessPolicy": (
        "policyDeletableItem",
        False,
        {
            "conditions": "obj:conditionalAccessConditionSet",
            "createdDateTime": "?datetime",
            "description": "?str",
            "displayName": "str",
            "grantControls": "?obj:conditionalAccessGrantControls",
            "id": "str",
            "modifiedDateTime": "?datetime",
            "sessionControls": "?obj:conditionalAccessSessionControls",
            "state": "enum:conditionalAccessPolicyState",
            "templateId": "?str",
        },
    ),
    "namedLocation": (
        "policyDeletableItem",
        False,
        {"createdDateTime": "?datetime", "displayName": "str", "id": "str", "modifiedDateTime": "?datetime"},
    ),
    "ipNamedLocation": ("namedLocation", False, {"ipRanges": "[obj:ipRange]", "isTrusted": "bool"}),
    "countryNamedLocation": (
        "namedLocation",
        False,
        {
            "countriesAndRegions": "[str]",
            "countryLookupMethod": "?enum:countryLookupMethodType",
            "includeUnknownCountriesAndRegions": "bool",
        },
    ),
    "ipRange": (None, True, {}),
    "iPv4CidrRange": ("ipRange", False, {"cidrAddress": "str"}),
    "iPv6CidrRange": ("ipRange", False, {"cidrAddress": "str"}),
    "iPv4Range": ("ipRange", False, {"lowerAddress": "str", "upperAddress": "str"}),
    "iPv6Range": ("ipRange", False, {"lowerAddress": "str", "upperAddress": "str"}),
    "conditionalAccessConditionSet": (
        None,
        False,
        {
            "applications": "?obj:conditionalAccessApplications",
            "authenticationFlows": "?obj:conditionalAccessAuthenticationFlows",
            "clientApplications": "?obj:conditionalAccessClientApplications",
            "clientAppTypes": "[enum:conditionalAccessClientApp]",
            "devices": "?obj:conditionalAccessDevices",
            "insiderRiskLevels": "?enum:conditionalAccessInsiderRiskLevels",
            "locations": "?obj:conditionalAccessLocations",
            "platforms": "?obj:conditionalAccessPlatforms",
            "servicePrincipalRiskLevels": "[enum:riskLevel]",
            "signInRiskLevels": "[enum:riskLevel]",
            "userRiskLevels": "[enum:riskLevel]",
            "users": "?obj:conditionalAccessUsers",
        },
    ),
    "conditionalAccessApplications": (
        None,
        False,
        {
            "applicationFilter": "?obj:conditionalAccessFilter",
            "excludeApplications": "[str]",
            "includeApplications": "[str]",
            "includeAuthenticationContextClassReferences": "[str]",
            "includeUserActions": "[str]",
        },
    ),
    "conditionalAccessAuthenticationFlows": (None, False, {"transferMethods": "enum:conditionalAccessTransferMethods"}),
    "conditionalAccessClientApplications": (
        None,
        False,
        {
            "excludeServicePrincipals": "[str]",
            "includeServicePrincipals": "[str]",
            "servicePrincipalFilter": "?obj:conditionalAccessFilter",
        },
    ),
    "conditionalAccessDevices": (None, False, {"deviceFilter": "?obj:conditionalAccessFilter"}),
    "conditionalAccessFilter": (None, False, {"mode": "enum:filterMode", "rule": "str"}),
    "conditionalAccessLocations": (None, False, {"excludeLocations": "[str]", "includeLocations": "[str]"}),
    "conditionalAccessPlatforms": (
        None,
        False,
        {
            "excludePlatforms": "[enum:conditionalAccessDevicePlatform]",
            "includePlatforms": "[enum:conditionalAccessDevicePlatform]",
        },
    ),
    "conditionalAccessUsers": (
        None,
        False,
        {
            "excludeGroups": "[str]",
            "excludeGuestsOrExternalUsers": "?obj:conditionalAccessGuestsOrExternalUsers",
            "excludeRoles": "[str]",
            "excludeUsers": "[str]",
            "includeGroups": "[str]",
            "includeGuestsOrExternalUsers": "?obj:conditionalAccessGuestsOrExternalUsers",
            "includeRoles": "[str]",
            "includeUsers": "[str]",
        },
    ),
    "conditionalAccessGuestsOrExternalUsers": (
        None,
        False,
        {
            "externalTenants": "?obj:conditionalAccessExternalTenants",
            "guestOrExternalUserTypes": "enum:conditionalAccessGuestOrExternalUserTypes",
        },
    ),
    "conditionalAccessExternalTenants": (
        None,
        True,
        {"membershipKind": "?enum:conditionalAccessExternalTenantsMembershipKind"},
    ),
    "conditionalAccessAllExternalTenants": ("conditionalAccessExternalTenants", False, {}),
    "conditionalAccessEnumeratedExternalTenants": ("conditionalAccessExternalTenants", False, {"members": "[str]"}),
    "conditionalAccessGrantControls": (
        None,
        False,
        {
            "builtInControls": "[enum:conditionalAccessGrantControl]",
            "customAuthenticationFactors": "[str]",
            "operator": "?str",
            "termsOfUse": "[str]",
            "authenticationStrength": "nav:authenticationStrengthPolicy",
        },
    ),
    "conditionalAccessSessionControls": (
        None,
        False,
        {
            "applicationEnforcedRestrictions": "?obj:applicationEnforcedRestrictionsSessionControl",
            "cloudAppSecurity": "?obj:cloudAppSecuritySessionControl",
            "disableResilienceDefaults": "?bool",
            "persistentBrowser": "?obj:persistentBrowserSessionControl",
            "secureSignInSession": "?obj:secureSignInSessionControl",
            "signInFrequency": "?obj:signInFrequencySessionControl",
        },
    ),
    "conditionalAccessSessionControl": (None, True, {"isEnabled": "?bool"}),
    "applicationEnforcedRestrictionsSessionControl": ("conditionalAccessSessionControl", False, {}),
    "cloudAppSecuritySessionControl": (
        "conditionalAccessSessionControl",
        False,
        {"cloudAppSecurityType": "?enum:cloudAppSecuritySessionControlType"},
    ),
    "persistentBrowserSessionControl": (
        "conditionalAccessSessionControl",
        False,
        {"mode": "?enum:persistentBrowserSessionMode"},
    ),
    "secureSignInSessionControl": ("conditionalAccessSessionControl", False, {}),
    "signInFrequencySessionControl": (
        "conditionalAccessSessionControl",
        False,
        {
            "authenticationType": "?enum:signInFrequencyAuthenticationType",
            "frequencyInterval": "?enum:signInFrequencyInterval",
            "type": "?enum:signinFrequencyType",
            "value": "?int",
        },
    ),
}

ENUM_TABLE: dict[str, tuple[bool, str]] = {  # name -> (is flags, members in declaration order)
    "conditionalAccessPolicyState": (False, "enabled disabled enabledForReportingButNotEnforced"),
    "countryLookupMethodType": (False, "clientIpAddress authenticatorAppGps unknownFutureValue"),
    "conditionalAccessGuestOrExternalUserTypes": (
        True,
        "none internalGuest b2bCollaborationGuest b2bCollaborationMember b2bDirectConnectUser otherExternalUser "
        "serviceProvider unknownFutureValue",
    ),
    "conditionalAccessClientApp": (
        False,
        "all browser mobileAppsAndDesktopClients exchangeActiveSync easSupported other unknownFutureValue",
    ),
    "conditionalAccessDevicePlatform": (False, "android iOS windows windowsPhone macOS all unknownFutureValue linux"),
    "conditionalAccessInsiderRiskLevels": (True, "minor moderate elevated unknownFutureValue"),
    "riskLevel": (False, "low medium high hidden none unknownFutureValue"),
    "conditionalAccessTransferMethods": (True, "none deviceCodeFlow authenticationTransfer unknownFutureValue"),
    "conditionalAccessGrantControl": (
        False,
        "block mfa compliantDevice domainJoinedDevice approvedApplication compliantApplication passwordChange "
        "unknownFutureValue riskRemediation",
    ),
    "cloudAppSecuritySessionControlType": (False, "mcasConfigured monitorOnly blockDownloads unknownFutureValue"),
    "persistentBrowserSessionMode": (False, "always never"),
    "signInFrequencyAuthenticationType": (
        False,
        "primaryAndSecondaryAuthentication secondaryAuthentication unknownFutureValue",
    ),
    "signInFrequencyInterval": (False, "timeBased everyTime unknownFutureValue"),
    "signinFrequencyType": (False, "days hours"),
    "filterMode": (False, "include exclude"),
    "conditionalAccessExternalTenantsMembershipKind": (False, "all enumerated unknownFutureValue"),
}
ENUMS: dict[str, tuple[bool, tuple[str, ...]]] = {
    name: (is_flags, tuple(members.split())) for name, (is_flags, members) in ENUM_TABLE.items()
}

# Non-nullable scalars that Graph fills with a documented default on GET (§2.1, §2.6).
GET_DEFAULTS: dict[tuple[str, str], Any] = {
    ("ipNamedLocation", "isTrusted"): False,
    ("countryNamedLocation", "includeUnknownCountriesAndRegions"): False,
    ("countryNamedLocation", "countryLookupMethod"): "clientIpAddress",
    # §4.4 (TF #1235): the service fills these, which is why TF showed perpetual diffs.
    ("signInFrequencySessionControl", "authenticationType"): "primaryAndSecondaryAuthentication",
    ("signInFrequencySessionControl", "frequencyInterval"): "timeBased",
    ("conditionalAccessGrantControls", "authenticationStrength"): None,
}
NOT_FILLED_ON_GET = {("conditionalAccessPolicy", "description"), ("conditionalAccessPolicy", "deletedDateTime")}
NOT_FILLED_ON_GET |= {("namedLocation", "deletedDateTime")}


@dataclass(frozen=True)
class PropSpec:
    kind: str  # str | bool | int | datetime | enum | obj | nav
    target: str = ""
    nullable: bool = False
    collection: bool = False


def parse_prop_spec(text: str) -> PropSpec:
    nullable = text.startswith("?")
    text = text.removeprefix("?")
    collection = text.startswith("[")
    kind, _, target = text.strip("[]").partition(":")
    return PropSpec(kind, target, nullable, collection)


def properties_of(type_name: str) -> dict[str, PropSpec]:
    """Every property of a type, its base types' first (as OData inheritance declares them)."""
    base, _, own = TYPES[type_name]
    inherited = properties_of(base) if base else {}
    return inherited | {name: parse_prop_spec(spec) for name, spec in own.items()}


def is_derived_from(type_name: str, ancestor: str) -> bool:
    current: str | None = type_name
    while current is not None:
        if current == ancestor:
            return True
        current = TYPES[current][0]
    return False


def has_derived_types(type_name: str) -> bool:
    return any(base == type_name for base, _, _ in TYPES.values())


def odata_type_name(value: str) -> str:
    return value.removeprefix("#").removeprefix("microsoft.graph.")


# -------------------------------------------------------------------------------------------------
# Errors
# -------------------------------------------------------------------------------------------------

POLICY_1007 = (
    "1007: Incoming ConditionalAccessPolicy object is null or does not match the schema of ConditionalAccessPolicy "
    "type. For examples, please see API documentation at "
    "https://docs.microsoft.com/en-us/graph/api/conditionalaccessroot-post-policies?view=graph-rest-1.0."
)
# [I] The named-location variant of 1007 is not in any stored source; it follows the policy wording.
LOCATION_1007 = (
    "1007: Incoming NamedLocation object is null or does not match the schema of NamedLocation type. For examples, "
    "please see API documentation at "
    "https://docs.microsoft.com/en-us/graph/api/conditionalaccessroot-post-namedlocations?view=graph-rest-1.0."
)
MALFORMED = "The server could not process the request because it is malformed or incorrect."
# Writing a workload-identity policy (conditions.clientApplications) in a tenant without Workload Identities
# Premium. The text is the one quoted in MicrosoftDocs/azure-docs issue #101310 (2022-11) and in Microsoft's
# support troubleshooting notes ("Error 1150"); the 400 BadRequest envelope around it is [I], as for 1040.
WORKLOAD_IDENTITY_LICENCE_1150 = (
    "1150: Cannot create or update policies with workload identity premium features. Upgrade to a workload "
    "identity premium P1 or P2 license and try again"
)
SERVICE_PRINCIPAL_BY_APP_ID = re.compile(r"^servicePrincipals\(appId='(?P<app_id>[^']*)'\)$", re.IGNORECASE)


class GraphError(Exception):
    """A Graph error response; ``reason`` is an emulator-side diagnostic kept in the request log only."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_message: str | None = None,
        reason: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message} {reason}".strip())
        self.status = status
        self.code = code
        self.message = message
        self.inner_message = inner_message
        self.reason = reason or message
        self.headers = headers or {}


def bad_request(message: str, *, inner_message: str | None = None, reason: str = "") -> GraphError:
    return GraphError(400, "BadRequest", message, inner_message=inner_message, reason=reason)


def not_found(entity: str, entity_id: str) -> GraphError:
    # §1.6: "NamedLocation with id … does not exist in the directory."; the policy wording is [I].
    return GraphError(404, "ResourceNotFound", f"{entity} with id {entity_id} does not exist in the directory.")


class SchemaMismatch(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ExportRejected(ValueError):
    """``load_policies(..., lenient=False)`` met an item the real Graph would refuse."""


# -------------------------------------------------------------------------------------------------
# Validation against the schema table
# -------------------------------------------------------------------------------------------------

DATETIME_PATTERN = re.compile(
    r"^[0-9]{4,}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"([.][0-9]{1,12})?(Z|[+-][0-9][0-9]:[0-9][0-9])$"
)


def resolve_type(value: JSONObject, declared: str, path: str) -> str:
    """The concrete type of an object: its @odata.type (which must derive from the declared type)."""
    annotated = value.get("@odata.type")
    if annotated is None:
        return infer_untyped(value, declared, path)
    if not isinstance(annotated, str):
        raise SchemaMismatch(path, "@odata.type must be a string")
    name = odata_type_name(annotated)
    if name not in TYPES or not is_derived_from(name, declared) or TYPES[name][1]:
        raise SchemaMismatch(path, f"@odata.type {annotated!r} is not a concrete {declared}")
    if name.endswith("ExternalTenants") and value.get("membershipKind") not in (None, external_kind_of(name)):
        raise SchemaMismatch(path, f"membershipKind {value.get('membershipKind')!r} contradicts {annotated}")
    return name


def external_kind_of(type_name: str) -> str:
    return "all" if type_name == "conditionalAccessAllExternalTenants" else "enumerated"


def infer_untyped(value: JSONObject, declared: str, path: str) -> str:
    if declared == "conditionalAccessExternalTenants":
        # §2.4: TF sends {"membershipKind":"all"} untyped and Graph accepts it; the enumerated form
        # without @odata.type is a schema-validation 400 (TF #1555, fixed by #1601).
        kind = value.get("membershipKind")
        if kind == "all":
            return "conditionalAccessAllExternalTenants"
        if kind == "enumerated":
            raise SchemaMismatch(path, "enumerated externalTenants need @odata.type")
    return declared


def validate_object(value: Any, declared: str, path: str) -> str:
    if not isinstance(value, dict):
        raise SchemaMismatch(path, f"expected a {declared} object")
    resolved = resolve_type(value, declared, path)
    props = properties_of(resolved)
    for key, item in value.items():
        if key == "@odata.type":
            continue
        if "@" in key:
            # OData JSON lets a property carry its own type annotation ("includeUsers@odata.type").
            name, _, annotation = key.partition("@")
            if name in props and annotation == "odata.type":
                continue
            raise SchemaMismatch(f"{path}.{key}", "unsupported annotation")
        spec = props.get(key)
        if spec is None:
            raise SchemaMismatch(f"{path}.{key}", f"{resolved} has no property {key!r}")
        validate_value(item, spec, f"{path}.{key}")
    return resolved


def validate_value(item: Any, spec: PropSpec, path: str) -> None:
    if item is None:
        if (spec.nullable or spec.kind == "nav") and not spec.collection:
            return
        raise SchemaMismatch(path, "null is not allowed here")
    if not spec.collection:
        validate_scalar(item, spec, path)
        return
    if not isinstance(item, list):
        raise SchemaMismatch(path, "expected a JSON array")
    for index, element in enumerate(item):
        if element is None:
            raise SchemaMismatch(f"{path}[{index}]", "null collection element")
        validate_scalar(element, spec, f"{path}[{index}]")


def validate_scalar(item: Any, spec: PropSpec, path: str) -> None:
    if spec.kind == "obj":
        validate_object(item, spec.target, path)
    elif spec.kind == "nav":
        validate_navigation(item, spec.target, path)
    elif spec.kind == "enum":
        validate_enum(item, spec.target, path)
    elif spec.kind == "bool" and not isinstance(item, bool):
        raise SchemaMismatch(path, "expected a boolean")
    elif spec.kind == "int" and (isinstance(item, bool) or not isinstance(item, int) or abs(item) > 2**31):
        raise SchemaMismatch(path, "expected an Int32")
    elif spec.kind in ("str", "datetime") and not isinstance(item, str):
        raise SchemaMismatch(path, "expected a string")
    elif spec.kind == "datetime" and not DATETIME_PATTERN.match(item):
        raise SchemaMismatch(path, "expected an ISO 8601 DateTimeOffset")


def validate_enum(item: Any, enum_name: str, path: str) -> None:
    is_flags, members = ENUMS[enum_name]
    if not isinstance(item, str):
        raise SchemaMismatch(path, f"expected a {enum_name} string")
    values = [part.strip() for part in item.split(",")] if is_flags else [item]
    for member in values:
        # TF #730 [S]: sending the sentinel unknownFutureValue is a 1007.
        if member not in members or member == "unknownFutureValue":
            raise SchemaMismatch(path, f"{member!r} is not a {enum_name} member")


def validate_navigation(item: Any, target: str, path: str) -> None:
    # §2.5: clients reference the strength policy as {"@odata.type": ..., "id": ...}; it is not expanded.
    if item is None:
        return
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise SchemaMismatch(path, f"expected a {target} reference with an id")
    extra = set(item) - {"id", "@odata.type"}
    if extra or item.get("@odata.type", ODATA_PREFIX + target) != ODATA_PREFIX + target:
        raise SchemaMismatch(path, f"unexpected {target} reference properties {sorted(extra)}")


# -------------------------------------------------------------------------------------------------
# Normalisation (what is stored) and the canonical GET shape (§2.7)
# -------------------------------------------------------------------------------------------------


def normalize_object(value: JSONObject, declared: str, *, lenient: bool, dropped: list[str], path: str) -> JSONObject:
    """Strip annotations, keep @odata.type only where the declared type is polymorphic, and (lenient) drop
    properties that are not in v1.0; values of known properties are kept as sent."""
    resolved, annotated = lenient_resolve(value, declared) if lenient else (resolve_type(value, declared, path), None)
    props = properties_of(resolved)
    result: JSONObject = {}
    if has_derived_types(declared):
        result["@odata.type"] = annotated or ODATA_PREFIX + resolved
    for key, item in value.items():
        if key.startswith("@") or "@" in key or key.startswith("#"):
            continue
        spec = props.get(key)
        if spec is None:
            dropped.append(f"{path}.{key}")
            continue
        result[key] = normalize_value(item, spec, lenient=lenient, dropped=dropped, path=f"{path}.{key}")
    return result


def lenient_resolve(value: JSONObject, declared: str) -> tuple[str, str | None]:
    """Like resolve_type but keeps types this v1.0 table does not know (e.g. beta compliantNetworkNamedLocation)."""
    try:
        return resolve_type(value, declared, ""), None
    except SchemaMismatch:
        annotated = value.get("@odata.type")
        if declared == "conditionalAccessExternalTenants":
            return "conditionalAccessEnumeratedExternalTenants", None
        return declared, annotated if isinstance(annotated, str) else None


def normalize_value(item: Any, spec: PropSpec, *, lenient: bool, dropped: list[str], path: str) -> Any:
    if item is None:
        return None
    if spec.collection and isinstance(item, list):
        return [normalize_scalar(element, spec, lenient=lenient, dropped=dropped, path=path) for element in item]
    return normalize_scalar(item, spec, lenient=lenient, dropped=dropped, path=path)


def normalize_scalar(item: Any, spec: PropSpec, *, lenient: bool, dropped: list[str], path: str) -> Any:
    if spec.kind == "obj" and isinstance(item, dict):
        return normalize_object(item, spec.target, lenient=lenient, dropped=dropped, path=path)
    if spec.kind == "nav":
        return {"id": item["id"]} if isinstance(item, dict) and isinstance(item.get("id"), str) else None
    if spec.kind == "enum" and ENUMS[spec.target][0] and isinstance(item, str):
        return normalize_flags(item, spec.target)
    return copy.deepcopy(item)


def normalize_flags(value: str, enum_name: str) -> str:
    """OData stores a flags enum as a bit set, so Graph echoes members in declaration order (§2.4 [I])."""
    members = ENUMS[enum_name][1]
    sent = {part.strip() for part in value.split(",")}
    if not sent <= set(members):
        return value  # lenient load of an unknown member: keep it verbatim
    return ",".join(member for member in members if member in sent)


def with_get_defaults(value: Any, declared: str) -> Any:
    """The canonical GET shape: collections [] and nullable properties null when unset (§2.7)."""
    if not isinstance(value, dict):
        return value
    resolved, _ = lenient_resolve(value, declared)
    result = dict(value)
    for name, spec in properties_of(resolved).items():
        if name in result:
            result[name] = defaults_inside(result[name], spec)
        elif spec.collection:
            result[name] = []
        elif (resolved, name) in GET_DEFAULTS:
            result[name] = GET_DEFAULTS[(resolved, name)]
        elif spec.nullable and not any((base, name) in NOT_FILLED_ON_GET for base in type_chain(resolved)):
            result[name] = None
    return result


def defaults_inside(item: Any, spec: PropSpec) -> Any:
    if spec.kind != "obj" or item is None:
        return item
    if spec.collection and isinstance(item, list):
        return [with_get_defaults(element, spec.target) for element in item]
    return with_get_defaults(item, spec.target)


def type_chain(type_name: str) -> list[str]:
    chain: list[str] = []
    current: str | None = type_name
    while current is not None:
        chain.append(current)
        current = TYPES[current][0]
    return chain


def merge_patch(stored: JSONObject, patch: JSONObject) -> JSONObject:
    """§1.3/§6.3: complex values merge recursively, collections are replaced, null clears.

    A polymorphic value whose @odata.type changes (e.g. all → enumerated externalTenants) is replaced.
    """
    result = copy.deepcopy(stored)
    for key, value in patch.items():
        current = result.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and same_odata_type(current, value):
            result[key] = merge_patch(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def same_odata_type(current: JSONObject, patch: JSONObject) -> bool:
    return patch.get("@odata.type") in (None, current.get("@odata.type"))


# -------------------------------------------------------------------------------------------------
# Policy and named-location rules beyond the schema
# -------------------------------------------------------------------------------------------------


def location_ids_sent(body: JSONObject) -> list[str]:
    locations = (body.get("conditions") or {}).get("locations") or {}
    if not isinstance(locations, dict):
        return []
    return [*(locations.get("includeLocations") or []), *(locations.get("excludeLocations") or [])]


def check_required_policy_fields(policy: JSONObject) -> None:
    """Docs: a valid policy needs a user rule, an application rule and a grant or session control."""
    conditions = policy.get("conditions") or {}
    missing = [name for name in ("displayName", "state", "conditions") if not policy.get(name)]
    if not conditions.get("applications"):
        missing.append("conditions.applications")
    # clientAppTypes is "Required" in the docs, yet Microsoft's own samples POST it empty (Azure-Samples corpus).
    if not conditions.get("users") and not conditions.get("clientApplications"):
        missing.append("conditions.users")
    if missing:
        raise bad_request(MALFORMED, reason=f"missing {', '.join(missing)}")


def check_grant_or_session(policy: JSONObject) -> None:
    grant = policy.get("grantControls") or {}
    effective_grant = any(grant.get(key) for key in ("builtInControls", "authenticationStrength", "termsOfUse"))
    effective_grant = effective_grant or bool(grant.get("customAuthenticationFactors"))
    if not effective_grant and not policy.get("sessionControls"):
        # §2.5 [S]: grantControls null without an effective session control is refused.
        raise bad_request(MALFORMED, reason="a policy needs a grant control or an effective session control")


def check_guest_scopes(users: JSONObject | None) -> None:
    for key in ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers"):
        guests = (users or {}).get(key)
        if isinstance(guests, dict) and guests.get("externalTenants") and not guests.get("guestOrExternalUserTypes"):
            # §2.4 docs: externalTenants "can be specified only when guestOrExternalUserTypes isn't null or empty".
            raise bad_request(MALFORMED, reason=f"{key}.externalTenants without guestOrExternalUserTypes")


def check_sign_in_frequency(sent: JSONObject | None, merged: JSONObject | None) -> None:
    frequency = (sent or {}).get("signInFrequency")
    if isinstance(frequency, dict) and is_all_default_frequency(frequency):
        # §2.6 item 4: "API returns 400 error if signInFrequency is set with all default/zero values".
        raise bad_request(MALFORMED, reason="signInFrequency with all default values")
    session = merged or {}
    interval = (session.get("signInFrequency") or {}).get("frequencyInterval")
    conflicting = session.get("applicationEnforcedRestrictions") is not None
    conflicting = conflicting or session.get("disableResilienceDefaults") is not None
    if interval == "everyTime" and conflicting:
        # §2.6 item 1: even `false` values of these two are refused next to everyTime.
        raise bad_request(MALFORMED, reason="everyTime with applicationEnforcedRestrictions/disableResilienceDefaults")


def is_all_default_frequency(frequency: JSONObject) -> bool:
    return (
        not frequency.get("isEnabled")
        and frequency.get("frequencyInterval") in (None, "timeBased")
        and frequency.get("authenticationType") in (None, "primaryAndSecondaryAuthentication")
        and frequency.get("type") is None
        and not frequency.get("value")
    )


def condense_session_controls(session: JSONObject | None) -> JSONObject | None:
    """§2.6 item 5: an all-off sessionControls object reads back as null."""
    if not session:
        return None
    enabled = any(isinstance(v, dict) and v.get("isEnabled") for v in session.values())
    return session if enabled or session.get("disableResilienceDefaults") else None


def check_password_change(policy: JSONObject) -> None:
    """§2.5: passwordChange needs mfa with AND, userRiskLevels, all apps and no other controls or conditions."""
    grant = policy.get("grantControls") or {}
    controls = set(grant.get("builtInControls") or [])
    if "passwordChange" not in controls:
        return
    conditions = policy.get("conditions") or {}
    valid = (
        controls == {"mfa", "passwordChange"}
        and grant.get("operator") == "AND"
        and bool(conditions.get("userRiskLevels"))
        and ((conditions.get("applications") or {}).get("includeApplications") == ["All"])
        and not any(conditions.get(key) for key in ("signInRiskLevels", "locations", "platforms", "devices"))
        and (conditions.get("clientAppTypes") or ["all"]) == ["all"]
    )
    if not valid:
        raise bad_request(
            MALFORMED,
            inner_message="1032: ConditionalActionPolicy validation failed due to InvalidPasswordResetControl.",
        )


def is_workload_identity_policy(policy: JSONObject) -> bool:
    """A policy for service principals: conditions.clientApplications holds something."""
    client_apps = (policy.get("conditions") or {}).get("clientApplications") or {}
    keys = ("includeServicePrincipals", "excludeServicePrincipals", "servicePrincipalFilter")
    return isinstance(client_apps, dict) and any(client_apps.get(key) for key in keys)


def check_workload_identity_policy(policy: JSONObject) -> None:
    """Conditional Access for workload identities (docs/workload-identity.md): no users, block only.

    Microsoft's docs: the policy is scoped to service principals instead of users ("None" users, as the
    What If example 4 of docs/graph-ca.md §5.2 shows) and "Block" is the only grant control. The wording of
    Graph's refusal is not documented, so the generic 400 is answered [I]."""
    if not is_workload_identity_policy(policy):
        return
    users = (policy.get("conditions") or {}).get("users")
    if isinstance(users, dict):
        lists = ("excludeUsers", "includeGroups", "excludeGroups", "includeRoles", "excludeRoles")
        guests = ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers")
        if (users.get("includeUsers") or ["None"]) != ["None"] or any(users.get(k) for k in (*lists, *guests)):
            raise bad_request(MALFORMED, reason="a workload-identity policy must not target users (includeUsers None)")
    grant = policy.get("grantControls") or {}
    extras = any(grant.get(key) for key in ("authenticationStrength", "termsOfUse", "customAuthenticationFactors"))
    if grant.get("builtInControls") != ["block"] or extras:
        raise bad_request(MALFORMED, reason="a workload-identity policy supports only the block grant control")
    if policy.get("sessionControls"):
        raise bad_request(MALFORMED, reason="a workload-identity policy has no session controls")


def check_cidr(cidr: Any, path: str) -> None:
    if not isinstance(cidr, str) or "/" not in cidr:
        # XSOAR pack [S]: bare addresses without a prefix are rejected.
        raise bad_request(MALFORMED, reason=f"{path}: {cidr!r} is not in CIDR notation")
    try:
        network = ipaddress.ip_network(cidr, strict=False)  # §2.1: host bits are kept, not normalised
    except ValueError as exc:
        raise bad_request(MALFORMED, reason=f"{path}: {cidr!r} is not a valid CIDR") from exc
    if network.version == 4 and network.prefixlen < MIN_IPV4_PREFIX:
        raise bad_request(MALFORMED, reason=f"{path}: IPv4 prefix /{network.prefixlen} is shorter than /8")


def check_ip_ranges(ranges: list[JSONObject]) -> None:
    if not ranges:
        raise bad_request(MALFORMED, reason="an IP named location needs at least one range")
    if len(ranges) > MAX_IP_RANGES:
        raise bad_request(MALFORMED, reason=f"{len(ranges)} ranges exceed the {MAX_IP_RANGES} limit")
    for index, item in enumerate(ranges):
        kind = odata_type_name(item.get("@odata.type", ""))
        if kind.endswith("CidrRange"):
            # §4.1: TF sends IPv6 CIDRs typed iPv4CidrRange and Graph tolerates it, so the family is not checked.
            check_cidr(item.get("cidrAddress"), f"ipRanges[{index}]")
        else:
            check_address_range(item, f"ipRanges[{index}]")


def check_address_range(item: JSONObject, path: str) -> None:
    try:
        lower = ipaddress.ip_address(item.get("lowerAddress", ""))
        upper = ipaddress.ip_address(item.get("upperAddress", ""))
    except ValueError as exc:
        raise bad_request(MALFORMED, reason=f"{path}: invalid address range") from exc
    if lower.version != upper.version or int(lower) > int(upper):
        raise bad_request(MALFORMED, reason=f"{path}: lowerAddress must not exceed upperAddress")


# -------------------------------------------------------------------------------------------------
# Query options: $filter, $select, $orderby, paging
# -------------------------------------------------------------------------------------------------

FILTER_CLAUSE = re.compile(
    r"^\s*(?:(?P<field>[A-Za-z][\w/]*)\s+(?P<op>eq|ne|ge|gt|le|lt)\s+(?P<literal>'(?:[^']|'')*'|[^\s]+)"
    r"|startswith\(\s*(?P<sw_field>[A-Za-z][\w/]*)\s*,\s*'(?P<sw_value>(?:[^']|'')*)'\s*\)"
    r"|isof\(\s*'(?P<isof>[\w.]+)'\s*\))\s*$"
)
# The clauses parse_clause serves, as token kinds: w(ord), s(tring literal), or the punctuation itself.
_CLAUSE_SHAPES = (("w", "w", "s"), ("w", "w", "w"), ("w", "(", "w", ",", "s", ")"), ("w", "(", "s", ")"))


@dataclass(frozen=True)
class FilterToken:
    kind: str  # "w", "s" or one of "(),"
    text: str
    start: int
    end: int  # the lexer's position after the token: what Graph's syntax errors report
    terminated: bool = True


def filter_tokens(text: str) -> list[FilterToken]:
    """OData's lexing of a $filter: a string literal runs to the next single quote (two quotes are one
    quote inside it), so an undoubled quote in a name ends the literal early."""
    tokens: list[FilterToken] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "'":
            close = index + 1
            while (close := text.find("'", close)) >= 0 and text[close + 1 : close + 2] == "'":
                close += 2
            if close < 0:
                tokens.append(FilterToken("s", text[index:], index, length, terminated=False))
                return tokens
            tokens.append(FilterToken("s", text[index : close + 1], index, close + 1))
            index = close + 1
        elif char in "(),":
            tokens.append(FilterToken(char, char, index, index + 1))
            index += 1
        else:
            end = index
            while end < length and not text[end].isspace() and text[end] not in "(),'":
                end += 1
            tokens.append(FilterToken("w", text[index:end], index, end))
            index = end
    return tokens


def filter_syntax_error(message: str) -> GraphError:
    """Graph's answer to a $filter its OData parser cannot read: 400 BadRequest "Invalid filter clause: "
    and the parser's message. Observed for names whose quote was not doubled: "Invalid filter clause: Syntax
    error at position 32 in 'DisplayName eq 'Fraser's Group''." (GET /groups; Microsoft365DSC/Microsoft365DSC
    issue 4358), "... ')' or ',' expected at position 23 in 'contains(subject, 'who's the best?')'."
    (O365/python-o365 issue 1133), "... Syntax error at position 17 in 'jobtitle ge '!' , accountenabled eq
    true'." (GET /users; microsoftgraph/microsoft-graph-devx-api issue 2091). The rule: Microsoft Learn, "Use
    query parameters", Escaping single quotes. The position is the end of the first token the grammar cannot
    take (as in the last two; Graph's directory answers are not always consistent about it, so nothing here
    may depend on the number)."""
    return bad_request(f"Invalid filter clause: {message}", reason="malformed $filter")


def parse_filter(text: str) -> Callable[[JSONObject], bool]:
    """A small OData $filter subset: clauses joined by `and` (eq/ne/ge/gt/le/lt, startswith, isof).

    Lexed as OData does (``filter_tokens``): `and` inside a string literal is text, and an undoubled quote
    ends a literal early, which makes the rest a syntax error (``filter_syntax_error``)."""
    clauses: list[list[FilterToken]] = [[]]
    depth = 0
    for token in filter_tokens(text):
        depth += {"(": 1, ")": -1}.get(token.kind, 0)
        if token.kind == "w" and token.text.lower() == "and" and depth == 0 and clauses[-1]:
            clauses.append([])
        else:
            clauses[-1].append(token)
    predicates = []
    for clause in clauses:
        _check_clause_syntax(text, clause)
        predicates.append(parse_clause(text[clause[0].start : clause[-1].end] if clause else ""))
    return lambda record: all(predicate(record) for predicate in predicates)


def _check_clause_syntax(text: str, clause: list[FilterToken]) -> None:
    kinds = tuple(token.kind for token in clause)
    for shape in _CLAUSE_SHAPES:
        if kinds[: len(shape)] != shape:
            continue
        if any(not token.terminated for token in clause[: len(shape)]):
            break
        if len(kinds) > len(shape):
            raise filter_syntax_error(f"Syntax error at position {clause[len(shape)].end} in '{text}'.")
    if clause and not clause[-1].terminated:
        raise filter_syntax_error(f"There is an unterminated string literal at position {len(text)} in '{text}'.")


def parse_clause(text: str) -> Callable[[JSONObject], bool]:
    match = FILTER_CLAUSE.match(text)
    if not match:
        raise bad_request("Invalid filter clause", reason=f"unsupported $filter clause {text!r}")
    if match["isof"]:
        wanted = "#" + match["isof"]
        return lambda record: record.get("@odata.type") == wanted
    if match["sw_field"]:
        field_path, prefix = match["sw_field"], match["sw_value"].replace("''", "'")
        return lambda record: str(field_value(record, field_path) or "").lower().startswith(prefix.lower())
    literal = parse_literal(match["literal"])
    return comparison(match["field"], match["op"], literal)


def parse_literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[lowered]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if parse_datetime(text) is not None:
        return text
    raise bad_request("Invalid filter clause", reason=f"unsupported literal {text!r}")


def comparison(field_path: str, op: str, literal: Any) -> Callable[[JSONObject], bool]:
    literal_time = parse_datetime(literal) if isinstance(literal, str) else None

    def matches(record: JSONObject) -> bool:
        actual = field_value(record, field_path)
        left, right = actual, literal
        if literal_time is not None and isinstance(actual, str):
            left, right = parse_datetime(actual), literal_time
        elif isinstance(actual, str) and isinstance(literal, str):
            left, right = actual.lower(), literal.lower()
        if op in ("eq", "ne"):
            return (left == right) == (op == "eq")
        if left is None or right is None:
            return False
        return bool({"ge": left >= right, "gt": left > right, "le": left <= right, "lt": left < right}[op])

    return matches


def field_value(record: JSONObject, field_path: str) -> Any:
    value: Any = record
    for part in field_path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def parse_datetime(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def graph_timestamp(moment: datetime | None = None) -> str:
    """Graph's DateTimeOffset: UTC with 7 fractional digits, e.g. 2024-05-24T09:28:08.0239156Z."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class PageRequest:
    top: int | None
    offset: int
    count: bool
    select: list[str] | None
    filter_text: str | None
    orderby: str | None


# -------------------------------------------------------------------------------------------------
# State
# -------------------------------------------------------------------------------------------------


@dataclass
class EntitySet:
    """Policies or named locations of one tenant, with soft-deleted items and a version history for read lag."""

    items: dict[str, JSONObject] = field(default_factory=dict)
    deleted: dict[str, JSONObject] = field(default_factory=dict)
    created_at: dict[str, float] = field(default_factory=dict)  # monotonic time of creation (1040 lag)
    versions: dict[str, list[tuple[float, JSONObject | None]]] = field(default_factory=dict)

    def find(self, entity_id: str) -> str | None:
        lowered = entity_id.lower()
        return next((key for key in self.items if key.lower() == lowered), None)

    def record_version(self, entity_id: str, now: float, value: JSONObject | None, keep_s: float) -> None:
        history = self.versions.setdefault(entity_id, [])
        history.append((now, copy.deepcopy(value)))
        while len(history) > 1 and history[1][0] <= now - keep_s:
            history.pop(0)

    def visible(self, now: float, lag_s: float) -> dict[str, JSONObject]:
        """The items as a lagging replica sees them: the newest version older than the lag."""
        if lag_s <= 0:
            return self.items
        view: dict[str, JSONObject] = {}
        for entity_id in dict.fromkeys([*self.versions, *self.items]):
            history = self.versions.get(entity_id)
            if not history:
                view[entity_id] = self.items[entity_id]
                continue
            settled = [value for moment, value in history if moment <= now - lag_s]
            if settled and settled[-1] is not None:
                view[entity_id] = settled[-1]
        return view


@dataclass
class TenantState:
    tenant_id: str
    policies: EntitySet = field(default_factory=EntitySet)
    named_locations: EntitySet = field(default_factory=EntitySet)
    sign_ins: list[JSONObject] = field(default_factory=list)
    directory_audits: list[JSONObject] = field(default_factory=list)  # auditLogs/directoryAudits, oldest first
    service_principals: dict[str, JSONObject] = field(default_factory=dict)  # object id → servicePrincipal
    workload_identities_premium: bool = False  # the licence workload-identity policies need (1150 without)
    directory: DirectoryState = field(default_factory=DirectoryState)  # users, groups (emulators/graph_directory.py)
    throttle_tokens: float = 0.0
    throttle_checked: float = 0.0


@dataclass
class EmulatorSettings:
    throttle_enabled: bool = False
    throttle_rate_per_s: float = 1.0  # §1.5: 1 request per second per tenant
    throttle_burst: float = 1.0
    read_lag_ms: float = 0.0  # GETs see the state as it was this long ago (§1.5, §6.5)
    location_replication_lag_ms: float = 0.0  # a named location younger than this is "missing" for 1040
    enforce_roles: bool = False  # 403 when the token lacks the application permissions of §1.2
    default_page_size: int | None = None  # CA lists come back in one page unless $top is given
    sign_in_page_size: int = 1000
    # directoryAudits: Graph documents $top and $skiptoken paging but no default page size; a small one here makes
    # every reader follow @odata.nextLink.
    audit_page_size: int = 50
    directory_page_size: int = 100  # transitiveMemberOf and members: Graph's default page (at most 999)
    max_policies: int = MAX_POLICIES
    max_named_locations: int = MAX_NAMED_LOCATIONS


@dataclass
class Fault:
    """A scripted misbehaviour for requests that match method, path substring and tenant."""

    method: str | None = None
    path_contains: str | None = None
    tenant: str | None = None
    status: int | None = None
    body: JSONObject | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without a response, before the request is processed
    drop_after: bool = False  # process the request (the write happens), then close without a response
    times: int | None = 1  # None = every matching request
    probability: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str, tenant: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (
            (self.method is None or self.method.upper() == method)
            and (self.path_contains is None or self.path_contains.lower() in path.lower())
            and (self.tenant is None or (tenant or "").lower() == self.tenant.lower())
        )


@dataclass
class RequestRecord:
    time: float
    tenant: str | None
    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any
    response: Any
    headers: dict[str, str]
    request_id: str
    reason: str = ""  # why the emulator answered with an error, for assertions and debugging
    fault: bool = False
    received: float = 0.0  # time.time() when the request had arrived whole (`time` is when it was answered)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: float = field(default_factory=time.time)

    @property
    def client_request_id(self) -> str:
        return self.headers.get("client-request-id", self.request_id)

    def json_body(self) -> Any:
        try:
            return json.loads(self.raw_body.decode("utf-8-sig")) if self.raw_body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_CONTENT_TYPE
    drop: bool = False
    reason: str = ""
    fault: bool = False


# -------------------------------------------------------------------------------------------------
# Export loading
# -------------------------------------------------------------------------------------------------


def read_json_document(path: Path) -> Any:
    """Parse a policy export: UTF-16 LE/BE or UTF-8, with or without a BOM."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = raw.decode("utf-16")
    elif raw.startswith(codecs.BOM_UTF8):
        text = raw[len(codecs.BOM_UTF8) :].decode("utf-8")
    elif len(raw) > 1 and raw[1:2] == b"\x00":
        text = raw.decode("utf-16-le")
    elif raw[:1] == b"\x00":
        text = raw.decode("utf-16-be")
    else:
        text = raw.decode("utf-8")
    return json.loads(text)


def exported_items(document: Any) -> list[JSONObject]:
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        document = document["value"]
    items = document if isinstance(document, list) else [document]
    return [item for item in items if isinstance(item, dict)]


def json_files(source: str | Path | Iterable[str | Path]) -> list[Path]:
    sources = [source] if isinstance(source, str | Path) else list(source)
    files: list[Path] = []
    for entry in map(Path, sources):
        files.extend(sorted(entry.rglob("*.json")) if entry.is_dir() else [entry])
    return files


def is_named_location(item: JSONObject) -> bool:
    annotated = str(item.get("@odata.type", "")).lower()
    return annotated.endswith("namedlocation") or any(
        key in item for key in ("ipRanges", "countriesAndRegions", "compliantNetworkType")
    )


# -------------------------------------------------------------------------------------------------
# The emulator
# -------------------------------------------------------------------------------------------------


class _Entity:
    """How one entity set differs: names, schema root and its write rules."""

    def __init__(self, segment: str, label: str, root: str, schema_error: str) -> None:
        self.segment = segment  # URL segment: policies / namedLocations
        self.label = label  # entity name in messages: ConditionalAccessPolicy / NamedLocation
        self.root = root  # schema type of the entity
        self.schema_error = schema_error


POLICIES = _Entity("policies", "ConditionalAccessPolicy", "conditionalAccessPolicy", POLICY_1007)
NAMED_LOCATIONS = _Entity("namedLocations", "NamedLocation", "namedLocation", LOCATION_1007)


class GraphEmulator:
    """Microsoft Graph CA + identity platform on https://127.0.0.1:PORT (see the module docstring)."""

    def __init__(
        self,
        tls: TestTLS | None = None,
        directory: Directory | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        settings: EmulatorSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tls = tls or make_test_tls()
        # Seconds, monotonic: what throttling and the read / replication lags measure; tests inject a fake one.
        self.clock = clock
        self._initial_clock = clock
        self.directory = directory or Directory()
        self.settings = settings or EmulatorSettings()
        self._initial_settings = copy.deepcopy(self.settings)
        self._address = (host, port)
        self._lock = threading.RLock()
        self._tenants: dict[str, TenantState] = {}
        self._faults: list[Fault] = []
        self._what_if: dict[str, WhatIfAnswer] = {}  # tenant → the test's answer per policy (§6.7)
        self._log: list[RequestRecord] = []
        self._rng = random.Random(seed)
        self._page_key = secrets.token_bytes(16)
        self._request_local = threading.local()  # the token claims of the request this thread serves
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> GraphEmulator:
        if self._server is not None:
            return self
        self._server = _TLSServer(self._address, self.tls.server_context(), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"https://{self._address[0]}:{self._server.server_address[1]}"

    @property
    def ca_bundle(self) -> Path:
        return self.tls.ca_bundle

    def reset(self) -> None:
        """Forget tenants, faults, the request log and settings (apps stay registered in the Directory)."""
        with self._lock:
            self._tenants.clear()
            self._faults.clear()
            self._what_if.clear()
            self._log.clear()
            self.settings = copy.deepcopy(self._initial_settings)
            self.clock = self._initial_clock

    def set_what_if(self, tenant_id: str, answer: WhatIfAnswer | None) -> None:
        """What `POST identity/conditionalAccess/evaluate` answers in the tenant: for each enabled or report-only
        policy (docs/graph-ca.md §5.2), `answer(request body, policy)` gives (policyApplies, analysisReasons).
        None: the route answers 501, as the emulator makes no What If evaluation of its own."""
        with self._lock:
            if answer is None:
                self._what_if.pop(tenant_id.lower(), None)
            else:
                self._what_if[tenant_id.lower()] = answer

    # -- tenants, apps and tokens ------------------------------------------------------------------
    def add_tenant(self, tenant_id: str) -> str:
        with self._lock:
            self._tenant(tenant_id)
        return tenant_id.lower()

    def tenants(self) -> list[str]:
        with self._lock:
            return list(self._tenants)

    def register_app(
        self,
        client_id: str,
        secret: str,
        home_tenant: str,
        consented_tenants: tuple[str, ...] | list[str] = (),
        graph_roles: tuple[str, ...] | list[str] = (),
    ) -> AppRegistration:
        for tenant in (home_tenant, *consented_tenants):
            self.add_tenant(tenant)
        return self.directory.register_app(client_id, secret, home_tenant, consented_tenants, graph_roles)

    def access_token(self, tenant: str, client_id: str, secret: str, scope: str = GRAPH_DEFAULT_SCOPE) -> str:
        """A token straight from the Directory, for tests that do not exercise the token endpoint."""
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
        status, body = self.directory.token_response(tenant, form)
        if status != 200:
            raise InvalidToken(body.get("error_description", "token request refused"))
        return str(body["access_token"])

    # -- settings ------------------------------------------------------------------------------------
    def set_throttle(self, enabled: bool = True, rate_per_s: float = 1.0, burst: float = 1.0) -> None:
        """§1.5: per-tenant token bucket on /identity/conditionalAccess, 429 without Retry-After."""
        with self._lock:
            self.settings.throttle_enabled = enabled
            self.settings.throttle_rate_per_s = rate_per_s
            self.settings.throttle_burst = burst
            for state in self._tenants.values():
                state.throttle_tokens, state.throttle_checked = burst, self.clock()

    # -- faults --------------------------------------------------------------------------------------
    def inject(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        tenant: str | None = None,
        status: int | None = None,
        body: JSONObject | None = None,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        drop: bool = False,
        drop_after: bool = False,
        times: int | None = 1,
        probability: float = 1.0,
    ) -> Fault:
        fault = Fault(
            method,
            path_contains,
            tenant,
            status,
            body,
            dict(headers or {}),
            delay_s,
            drop,
            drop_after,
            times,
            probability,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def inject_random_throttling(
        self, probability: float, *, seed: int | None = None, times: int | None = None
    ) -> Fault:
        """Random 429s (no Retry-After, §1.5) on CA routes, reproducible with a seed."""
        if seed is not None:
            with self._lock:
                self._rng.seed(seed)
        return self.inject(
            path_contains="/identity/conditionalAccess/", status=429, probability=probability, times=times
        )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- request log ---------------------------------------------------------------------------------
    def requests(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        tenant: str | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        with self._lock:
            records = list(self._log)
        return [
            record
            for record in records
            if (method is None or record.method == method.upper())
            and (path_contains is None or path_contains.lower() in record.path.lower())
            and (tenant is None or record.tenant == tenant.lower())
            and (status is None or record.status == status)
        ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- Python-side state ---------------------------------------------------------------------------
    def load_policies(
        self, tenant_id: str, source: str | Path | Iterable[str | Path], *, lenient: bool = True
    ) -> list[str]:
        """Load exported policies (and any named locations among the files); returns the policy ids."""
        items = [(path, item) for path in json_files(source) for item in exported_items(read_json_document(path))]
        for path, item in items:
            if is_named_location(item):
                self._import(tenant_id, NAMED_LOCATIONS, item, lenient=lenient, origin=str(path), replace=False)
        return [
            self._import(tenant_id, POLICIES, item, lenient=lenient, origin=str(path), replace=False)
            for path, item in items
            if not is_named_location(item)
        ]

    def put_policy(
        self, tenant_id: str, policy: JSONObject, *, lenient: bool = True, initiated_by: JSONObject | None = None
    ) -> str:
        """Store a policy (replacing one with the same id). `initiated_by` (an auditActivityInitiator: {"user": …}
        or {"app": …}) makes it a write someone made, a portal edit say: the audit log gets its entry."""
        with self._lock:
            known = policy.get("id") and self._tenant(tenant_id).policies.find(str(policy["id"]))
            before = canonical(POLICIES, self._tenant(tenant_id).policies.items[known]) if known else None
            policy_id = self._import(tenant_id, POLICIES, policy, lenient=lenient, origin="put_policy")
            if initiated_by is not None:
                after = canonical(POLICIES, self._tenant(tenant_id).policies.items[policy_id])
                entry = policy_audit_entry("Update" if before else "Add", before, after, initiated_by)
                self._tenant(tenant_id).directory_audits.append(entry)
        return policy_id

    def delete_policy(self, tenant_id: str, policy_id: str, *, initiated_by: JSONObject | None = None) -> None:
        """What deleting the policy in the portal does: it leaves the tenant for the deleted items (and, with
        `initiated_by`, the audit log records who deleted it)."""
        with self._lock:
            before = self.get_policy(tenant_id, policy_id) if initiated_by is not None else None
            self._delete(tenant_id, POLICIES, policy_id)
            if initiated_by is not None:
                self._tenant(tenant_id).directory_audits.append(
                    policy_audit_entry("Delete", before, None, initiated_by)
                )

    def add_directory_audits(self, tenant_id: str, records: Iterable[JSONObject]) -> None:
        """Audit entries as a test writes them (directoryAudit resources), after those already there."""
        with self._lock:
            self._tenant(tenant_id).directory_audits.extend(copy.deepcopy(list(records)))

    def directory_audits(self, tenant_id: str) -> list[JSONObject]:
        with self._lock:
            return copy.deepcopy(self._tenant(tenant_id).directory_audits)

    def add_named_location(self, tenant_id: str, location: JSONObject, *, lenient: bool = True) -> str:
        return self._import(tenant_id, NAMED_LOCATIONS, location, lenient=lenient, origin="add_named_location")

    def get_policy(self, tenant_id: str, policy_id: str) -> JSONObject:
        return self._get_canonical(tenant_id, POLICIES, policy_id)

    def policies(self, tenant_id: str) -> list[JSONObject]:
        with self._lock:
            return [canonical(POLICIES, item) for item in self._tenant(tenant_id).policies.items.values()]

    def get_named_location(self, tenant_id: str, location_id: str) -> JSONObject:
        return self._get_canonical(tenant_id, NAMED_LOCATIONS, location_id)

    def named_locations(self, tenant_id: str) -> list[JSONObject]:
        with self._lock:
            return [canonical(NAMED_LOCATIONS, item) for item in self._tenant(tenant_id).named_locations.items.values()]

    def deleted_policies(self, tenant_id: str) -> list[JSONObject]:
        with self._lock:
            return [canonical(POLICIES, item) for item in self._tenant(tenant_id).policies.deleted.values()]

    def add_sign_ins(self, tenant_id: str, records: Iterable[JSONObject]) -> list[str]:
        built = [sign_in_record(record) for record in records]
        with self._lock:
            self._tenant(tenant_id).sign_ins.extend(built)
        return [record["id"] for record in built]

    def add_user(self, tenant_id: str, user: JSONObject) -> str:
        """A user (id required; accountEnabled defaults to true); replaces one with the same id."""
        with self._lock:
            return self._tenant(tenant_id).directory.add_user(user)

    def add_group(
        self, tenant_id: str, group: JSONObject, members: Iterable[str] = (), owners: Iterable[str] = ()
    ) -> str:
        """A group (id required) with its direct members and its owners (user or group ids)."""
        with self._lock:
            return self._tenant(tenant_id).directory.add_group(group, members, owners)

    def add_directory_role(self, tenant_id: str, role: JSONObject, members: Iterable[str] = ()) -> str:
        """An activated directory role (id, roleTemplateId, displayName) and its members."""
        with self._lock:
            return self._tenant(tenant_id).directory.add_role(role, members)

    def sign_ins(self, tenant_id: str) -> list[JSONObject]:
        with self._lock:
            return copy.deepcopy(self._tenant(tenant_id).sign_ins)

    def add_service_principal(
        self,
        tenant_id: str,
        app_id: str,
        display_name: str = "",
        *,
        object_id: str | None = None,
        app_owner_tenant_id: str | None = None,
    ) -> str:
        """A service principal (enterprise application) of `app_id` in the tenant; returns its object id.
        By default the app is registered in the same tenant (a single-tenant app, as CIPP's API clients are)."""
        object_id = object_id or str(uuid.uuid4())
        record = {
            "id": object_id,
            "appId": app_id,
            "displayName": display_name or app_id,
            "appOwnerOrganizationId": (app_owner_tenant_id or tenant_id).lower(),
            "accountEnabled": True,
            "servicePrincipalType": "Application",
            "signInAudience": "AzureADMyOrg" if app_owner_tenant_id in (None, tenant_id) else "AzureADMultipleOrgs",
            "servicePrincipalNames": [app_id],
        }
        with self._lock:
            principals = self._tenant(tenant_id).service_principals
            if any(sp["appId"].lower() == app_id.lower() for sp in principals.values()):
                raise ValueError(f"tenant {tenant_id} already has a service principal for application {app_id}")
            principals[object_id] = record
        return object_id

    def service_principals(self, tenant_id: str) -> list[JSONObject]:
        with self._lock:
            return copy.deepcopy(list(self._tenant(tenant_id).service_principals.values()))

    def set_licences(self, tenant_id: str, *, workload_identities_premium: bool) -> None:
        """Whether the tenant holds Workload Identities Premium (without it, workload-identity policy writes fail)."""
        with self._lock:
            self._tenant(tenant_id).workload_identities_premium = workload_identities_premium

    # -- internals: state --------------------------------------------------------------------------
    def _tenant(self, tenant_id: str) -> TenantState:
        key = tenant_id.lower()
        if key not in self._tenants:
            self._tenants[key] = TenantState(key, throttle_tokens=self.settings.throttle_burst)
            self._tenants[key].throttle_checked = self.clock()
        return self._tenants[key]

    def _entity_set(self, tenant_id: str, entity: _Entity) -> EntitySet:
        state = self._tenant(tenant_id)
        return state.policies if entity is POLICIES else state.named_locations

    def _get_canonical(self, tenant_id: str, entity: _Entity, entity_id: str) -> JSONObject:
        with self._lock:
            entities = self._entity_set(tenant_id, entity)
            key = entities.find(entity_id)
            if key is None:
                raise KeyError(f"{entity.label} {entity_id} not in tenant {tenant_id}")
            return canonical(entity, entities.items[key])

    def _import(
        self, tenant_id: str, entity: _Entity, item: JSONObject, *, lenient: bool, origin: str, replace: bool = True
    ) -> str:
        """Store an exported/hand-written entity; lenient keeps what a tenant could hold, strict validates like POST."""
        body = strip_read_only(strip_annotations(item))
        with self._lock:
            stored = self._import_body(tenant_id, entity, body, lenient=lenient, origin=origin)
            entities = self._entity_set(tenant_id, entity)
            entity_id, is_new = choose_id(entities, item.get("id"), replace=replace)
            created = item.get("createdDateTime") if parse_datetime(str(item.get("createdDateTime"))) else None
            created = created or graph_timestamp()
            modified = item.get("modifiedDateTime") if parse_datetime(str(item.get("modifiedDateTime"))) else None
            stamps = {"id": entity_id, "createdDateTime": created, "modifiedDateTime": modified or created}
            if entity is POLICIES:
                stamps["templateId"] = item.get("templateId")
            self._store(tenant_id, entity, entity_id, {**stamps, **stored}, created=is_new)
            return entity_id

    def _import_body(
        self, tenant_id: str, entity: _Entity, body: JSONObject, *, lenient: bool, origin: str
    ) -> JSONObject:
        if lenient:
            dropped: list[str] = []
            stored = normalize_object(body, entity.root, lenient=True, dropped=dropped, path=entity.label)
            if dropped:
                log.debug("%s: dropped properties v1.0 does not have: %s", origin, ", ".join(dropped))
            return stored
        try:
            if entity is POLICIES:
                return self._check_policy_write(tenant_id, body, None)
            return self._check_location_write(tenant_id, body, None)
        except GraphError as exc:
            raise ExportRejected(f"{origin}: {exc.message} {exc.inner_message or ''} ({exc.reason})") from exc

    def _store(self, tenant_id: str, entity: _Entity, entity_id: str, value: JSONObject, *, created: bool) -> None:
        entities = self._entity_set(tenant_id, entity)
        now = self.clock()
        entities.items[entity_id] = value
        if created:
            entities.created_at[entity_id] = now
        entities.record_version(entity_id, now, value, self.settings.read_lag_ms / 1000)

    # -- internals: request handling ---------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Entry point of the HTTP handler: faults, routing, error envelope and the request log."""
        tenant_hint = self._tenant_hint(request)
        fault = self._take_fault(request, tenant_hint)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and (fault.drop or fault.status is not None):
            response = self._fault_response(request, fault)
        else:
            response = self._route_safely(request)
            response.drop = bool(fault and fault.drop_after)
            response.fault = fault is not None
        self._record(request, tenant_hint, response)
        return response

    def _tenant_hint(self, request: Request) -> str | None:
        segments = path_segments(request.path)
        if segments and segments[0].lower() in ("v1.0", "beta"):
            try:
                return str(self.directory.verify_bearer(request.headers.get("authorization"))["tid"]).lower()
            except (InvalidToken, KeyError, ValueError):
                return None
        return segments[0].lower() if segments else None

    def _take_fault(self, request: Request, tenant: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(request.method, request.path, tenant) and self._rng.random() < fault.probability:
                    fault.hits += 1
                    return fault
        return None

    def _fault_response(self, request: Request, fault: Fault) -> Response:
        if fault.drop:
            return Response(0, drop=True, reason="fault: connection dropped", fault=True)
        status = fault.status or 500
        body = fault.body if fault.body is not None else self._error_body(request, fault_error(status))
        return Response(status, body, dict(fault.headers), reason=f"fault: injected {status}", fault=True)

    def _route_safely(self, request: Request) -> Response:
        try:
            return self._route(request)
        except GraphError as error:
            return Response(
                error.status,
                self._error_body(request, error),
                {**error.headers, **www_authenticate(error)},
                reason=error.reason,
            )

    def _error_body(self, request: Request, error: GraphError) -> JSONObject:
        inner: JSONObject = {"message": error.inner_message} if error.inner_message else {}
        inner |= {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request.request_id,
            "client-request-id": request.client_request_id,
        }
        return {"error": {"code": error.code, "message": error.message, "innerError": inner}}

    def _record(self, request: Request, tenant: str | None, response: Response) -> None:
        body: Any = request.json_body()
        if body is None and request.raw_body:
            form = parse_form(request.raw_body)
            body = {
                key: ("<redacted>" if "secret" in key or "assertion" in key else value) for key, value in form.items()
            }
        headers = {key: ("<redacted>" if key == "authorization" else value) for key, value in request.headers.items()}
        record = RequestRecord(
            time.time(),
            tenant,
            request.method,
            request.path,
            dict(request.query),
            response.status,
            body,
            copy.deepcopy(response.body),
            headers,
            request.request_id,
            response.reason,
            response.fault,
            request.received,
        )
        with self._lock:
            self._log.append(record)

    def _route(self, request: Request) -> Response:
        segments = path_segments(request.path)
        lowered = [segment.lower() for segment in segments]
        if lowered[:1] == ["v1.0"]:
            return self._graph(request, segments[1:])
        if lowered[:1] == ["beta"] and request.method == "GET" and lowered[1:2] in BETA_READS:
            # pulumi-azuread's data sources read groups (and a service principal's samlMetadataUrl) through
            # beta (terraform-provider-azuread v3.9 groupDataSourceRead, servicePrincipalDataSourceRead):
            # read-only directory routes are served there, with v1.0's shapes.
            return self._graph(request, segments[1:])
        if lowered[:1] == ["beta"]:
            # §1.3: the project writes through v1.0 only; beta writes irrevocably mutate policies.
            raise bad_request("This emulator serves Microsoft Graph v1.0 only.", reason="beta endpoint called")
        return self._identity(request, segments, lowered)

    # -- identity platform ---------------------------------------------------------------------------
    def _identity(self, request: Request, segments: list[str], lowered: list[str]) -> Response:
        route = (request.method, *lowered[1:])
        if route == ("GET", "v2.0", ".well-known", "openid-configuration"):
            return Response(
                200, openid_configuration(self.url, segments[0]), content_type="application/json; charset=utf-8"
            )
        if route == ("POST", "oauth2", "v2.0", "token"):
            return self._token(request, segments[0])
        if route == ("GET", "discovery", "v2.0", "keys"):
            return Response(200, {"keys": []}, content_type="application/json; charset=utf-8")
        if (request.method, *lowered) == ("GET", "common", "discovery", "instance"):
            return Response(200, self._instance_discovery(request), content_type="application/json; charset=utf-8")
        return Response(
            404, {"error": "not_found", "error_description": f"No route for {request.path}"}, reason="no route"
        )

    def _token(self, request: Request, tenant: str) -> Response:
        form = parse_form(request.raw_body)
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):  # client_secret_basic
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", unquote(client_id))
            form.setdefault("client_secret", unquote(secret))
        status, body = self.directory.token_response(tenant, form)
        if status == 200:
            self.add_tenant(tenant)
        return Response(status, body, {"Cache-Control": "no-store"}, content_type="application/json; charset=utf-8")

    def _instance_discovery(self, request: Request) -> JSONObject:
        """What MSAL reads when instance discovery is pointed here (it is off with disable_instance_discovery)."""
        endpoint = urlsplit(request.query.get("authorization_endpoint", ""))
        tenant = (path_segments(endpoint.path) or ["common"])[0]
        host = urlsplit(self.url).netloc
        return {
            "tenant_discovery_endpoint": f"{self.url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    # -- Graph ---------------------------------------------------------------------------------------
    def _graph(self, request: Request, segments: list[str]) -> Response:
        claims = self._authenticate(request)
        tenant = str(claims["tid"]).lower()
        lowered = [segment.lower() for segment in segments]
        if lowered[:3] == ["identity", "conditionalaccess", "evaluate"] and len(lowered) == 3:
            self._authorize(claims, request.method, "whatif")
            self._throttle(tenant)
            return self._evaluate(request, tenant)
        if lowered[:2] == ["identity", "conditionalaccess"]:
            self._authorize(claims, request.method, "ca")
            self._throttle(tenant)
            with self._caller(claims):
                return self._conditional_access(request, tenant, segments[2:], lowered[2:])
        if lowered[:2] == ["auditlogs", "directoryaudits"]:
            self._authorize(claims, request.method, "audits")
            return self._directory_audits(request, tenant, segments[2:])
        if lowered[:2] == ["auditlogs", "signins"]:
            self._authorize(claims, request.method, "signins")
            return self._sign_ins(request, tenant, segments[2:])
        if lowered[:1] in (["users"], ["groups"]):
            return self._directory(request, claims, tenant, lowered)
        if lowered[:1] and lowered[0].split("(", 1)[0] == "serviceprincipals":
            self._authorize(claims, request.method, "applications")
            return self._service_principals(request, tenant, segments)
        first = segments[0] if segments else ""
        raise bad_request(f"Resource not found for the segment '{first}'.", reason="unknown Graph route")

    def _authenticate(self, request: Request) -> JSONObject:
        authorization = request.headers.get("authorization")
        if not authorization:
            raise invalid_token("Access token is empty.")
        try:
            claims = self.directory.verify_bearer(authorization)
        except (InvalidToken, ValueError) as exc:
            raise invalid_token("Access token validation failure.", reason=str(exc)) from exc
        # A resource accepts tokens issued for its own URI: clients derive the scope from the Graph base URL
        # they are given (graph.microsoft.us/.default in a sovereign cloud; this emulator's URL here).
        if claims.get("aud") not in {*GRAPH_AUDIENCES, self.url, self.url + "/"}:
            raise invalid_token("Access token validation failure. Invalid audience.", reason=f"aud {claims.get('aud')}")
        if not claims.get("tid"):
            raise invalid_token("Access token validation failure.", reason="no tid claim")
        with self._lock:
            self._tenant(str(claims["tid"]))
        return claims

    def _authorize(self, claims: JSONObject, method: str, area: str) -> None:
        if not self.settings.enforce_roles:
            return
        roles = set(claims.get("roles") or [])
        if area == "signins":
            needed = [{"AuditLog.Read.All"}]
        elif area == "audits":  # List directoryAudits (Microsoft Learn): AuditLog.Read.All and Directory.Read.All
            needed = [{"AuditLog.Read.All", "Directory.Read.All"}]
        elif area == "applications":
            needed = [{"Application.Read.All"}, {"Directory.Read.All"}]
        elif area == "whatif":  # conditionalaccessroot-evaluate: least privileged first (docs/graph-ca.md §5)
            needed = [{"Policy.Read.ConditionalAccess"}, {"Policy.Read.All"}, {"Policy.ReadWrite.ConditionalAccess"}]
        elif method == "GET":
            needed = [{"Policy.Read.All"}, {"Policy.ReadWrite.ConditionalAccess"}]
        else:
            # §1.2 known issue: POST/PATCH also need Policy.Read.All.
            needed = [{"Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"}]
        if not any(option <= roles for option in needed):
            raise GraphError(
                403,
                "AccessDenied",
                "You cannot perform the requested operation, required scopes are missing in the token.",
                reason=f"roles {sorted(roles)} lack {needed}",
            )

    def _throttle(self, tenant: str) -> None:
        settings = self.settings
        if not settings.throttle_enabled:
            return
        with self._lock:
            state = self._tenant(tenant)
            now = self.clock()
            elapsed = now - state.throttle_checked
            state.throttle_tokens = min(
                settings.throttle_burst, state.throttle_tokens + elapsed * settings.throttle_rate_per_s
            )
            state.throttle_checked = now
            if state.throttle_tokens >= 1:
                state.throttle_tokens -= 1
                return
        # §1.5: CA and named-location resources "don't return a Retry-After header" on 429.
        raise GraphError(429, "TooManyRequests", "Too many requests.", reason="throttled: 1 request/second/tenant")

    def _conditional_access(self, request: Request, tenant: str, segments: list[str], lowered: list[str]) -> Response:
        by_segment = {"policies": POLICIES, "namedlocations": NAMED_LOCATIONS}
        if lowered[:1] == ["deleteditems"] and len(lowered) >= 2 and lowered[1] in by_segment:
            return self._deleted_items(request, tenant, by_segment[lowered[1]], segments[2:])
        if not lowered or lowered[0] not in by_segment:
            raise bad_request(
                f"Resource not found for the segment '{segments[0] if segments else ''}'.", reason="unknown CA route"
            )
        entity = by_segment[lowered[0]]
        if len(segments) == 1:
            return self._collection(request, tenant, entity)
        if len(segments) == 2:
            return self._item(request, tenant, entity, segments[1])
        raise bad_request(f"Resource not found for the segment '{segments[2]}'.", reason="unknown CA route")

    def _collection(self, request: Request, tenant: str, entity: _Entity) -> Response:
        if request.method == "GET":
            with self._lock:
                visible = self._entity_set(tenant, entity).visible(self.clock(), self.settings.read_lag_ms / 1000)
                items = [canonical(entity, item) for item in visible.values()]
            return self._page(request, f"identity/conditionalAccess/{entity.segment}", items, entity.root)
        if request.method == "POST":
            return self._create(request, tenant, entity)
        raise method_not_allowed()

    def _item(self, request: Request, tenant: str, entity: _Entity, entity_id: str) -> Response:
        if request.method == "GET":
            with self._lock:
                visible = self._entity_set(tenant, entity).visible(self.clock(), self.settings.read_lag_ms / 1000)
                match = next((value for key, value in visible.items() if key.lower() == entity_id.lower()), None)
                if match is None:
                    raise not_found(entity.label, entity_id)
                body = canonical(entity, match)
            return Response(
                200, {"@odata.context": self._context(f"identity/conditionalAccess/{entity.segment}/$entity"), **body}
            )
        if request.method == "PATCH":
            return self._update(request, tenant, entity, entity_id)
        if request.method == "DELETE":
            return self._delete(tenant, entity, entity_id)
        raise method_not_allowed()

    def _create(self, request: Request, tenant: str, entity: _Entity) -> Response:
        body = json_object_body(request)
        with self._lock:
            if entity is POLICIES:
                stored = self._check_policy_write(tenant, body, None)
            else:
                stored = self._check_location_write(tenant, body, None)
            entity_id = str(uuid.uuid4())
            now = graph_timestamp()
            # §2.7: a new policy's modifiedDateTime can be null; the named-location docs example repeats it.
            stamps = {"id": entity_id, "createdDateTime": now, "modifiedDateTime": None if entity is POLICIES else now}
            if entity is POLICIES:
                stamps["templateId"] = None
            self._store(tenant, entity, entity_id, {**stamps, **stored}, created=True)
            result = canonical(entity, self._entity_set(tenant, entity).items[entity_id])
            if entity is POLICIES:
                self._audit_policy_write(tenant, "Add", None, result)
        location = f"{self.url}/v1.0/identity/conditionalAccess/{entity.segment}/{entity_id}"
        context = self._context(f"identity/conditionalAccess/{entity.segment}/$entity")
        return Response(201, {"@odata.context": context, **result}, {"Location": location})

    def _update(self, request: Request, tenant: str, entity: _Entity, entity_id: str) -> Response:
        body = json_object_body(request)
        with self._lock:
            entities = self._entity_set(tenant, entity)
            key = entities.find(entity_id)
            if key is None:
                raise not_found(entity.label, entity_id)
            if "id" in body and str(body["id"]).lower() != key.lower():
                raise bad_request(MALFORMED, reason="the id in the body differs from the id in the URL")
            current = entities.items[key]
            if entity is POLICIES:
                merged = self._check_policy_write(tenant, body, current)
            else:
                merged = self._check_location_write(tenant, body, current)
            self._store(tenant, entity, key, {**merged, "modifiedDateTime": graph_timestamp()}, created=False)
            if entity is POLICIES:
                self._audit_policy_write(tenant, "Update", canonical(entity, current), canonical(entity, merged))
        return Response(204)

    def _delete(self, tenant: str, entity: _Entity, entity_id: str) -> Response:
        with self._lock:
            entities = self._entity_set(tenant, entity)
            key = entities.find(entity_id)
            if key is None:
                raise not_found(entity.label, entity_id)
            if entity is NAMED_LOCATIONS:
                self._check_location_deletable(tenant, entities.items[key])
            removed = entities.items.pop(key)
            entities.deleted[key] = {**removed, "deletedDateTime": graph_timestamp()}
            entities.record_version(key, self.clock(), None, self.settings.read_lag_ms / 1000)
            if entity is POLICIES:
                self._audit_policy_write(tenant, "Delete", canonical(entity, removed), None)
        return Response(204)

    @contextlib.contextmanager
    def _caller(self, claims: JSONObject) -> Iterator[None]:
        """Who the Conditional Access writes of this request are made by, for their audit entries."""
        self._request_local.claims = claims
        try:
            yield
        finally:
            self._request_local.claims = None

    def _audit_policy_write(
        self, tenant: str, operation: str, before: JSONObject | None, after: JSONObject | None
    ) -> None:
        """The audit entry Entra writes for a policy written over HTTP, initiated by the token's app; a write
        through the Python-side state API (a test's setup) leaves none unless it names an initiator."""
        claims = getattr(self._request_local, "claims", None)
        if claims is None:
            return
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        principal = next(
            (sp for sp in self._tenant(tenant).service_principals.values() if sp["appId"].lower() == app_id.lower()),
            None,
        )
        initiator = {
            "app": {
                "appId": app_id,
                "displayName": principal["displayName"] if principal else None,
                "servicePrincipalId": principal["id"] if principal else None,
                "servicePrincipalName": None,
            },
            "user": None,
        }
        self._tenant(tenant).directory_audits.append(policy_audit_entry(operation, before, after, initiator))

    def _directory_audits(self, request: Request, tenant: str, segments: list[str]) -> Response:
        """GET auditLogs/directoryAudits[/{id}] (List/Get directoryAudits, Microsoft Learn): $filter, $top,
        $orderby and $skiptoken; newest first unless $orderby says otherwise (an order Graph does not promise)."""
        if request.method != "GET":
            raise method_not_allowed()
        with self._lock:
            records = copy.deepcopy(self._tenant(tenant).directory_audits)
        if segments:
            match = next((record for record in records if record["id"] == segments[0]), None)
            if match is None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{segments[0]}' does not exist.")
            return Response(200, {"@odata.context": self._context("auditLogs/directoryAudits/$entity"), **match})
        if "$orderby" not in request.query:
            records.reverse()
        return self._page(
            request, "auditLogs/directoryAudits", records, None, default_top=self.settings.audit_page_size
        )

    def _check_location_deletable(self, tenant: str, location: JSONObject) -> None:
        if location.get("isTrusted"):
            # §4.1 docs: "Locations marked as trusted can't be deleted without first removing the trusted designation".
            raise bad_request(MALFORMED, reason="a trusted named location cannot be deleted")
        lowered = location["id"].lower()
        for policy in self._tenant(tenant).policies.items.values():
            if lowered in (ref.lower() for ref in location_ids_sent(policy) if isinstance(ref, str)):
                # §2.8 [S/I]: a referenced location is not deletable.
                raise bad_request(MALFORMED, reason=f"named location is referenced by policy {policy['id']}")

    def _deleted_items(self, request: Request, tenant: str, entity: _Entity, segments: list[str]) -> Response:
        with self._lock:
            entities = self._entity_set(tenant, entity)
            if not segments and request.method == "GET":
                items = [canonical(entity, item) for item in entities.deleted.values()]
                return self._page(
                    request, f"identity/conditionalAccess/deletedItems/{entity.segment}", items, entity.root
                )
            if not segments:
                raise method_not_allowed()
            key = next((k for k in entities.deleted if k.lower() == segments[0].lower()), None)
            if key is None:
                raise not_found(entity.label, segments[0])
            action = (request.method, *(s.lower() for s in segments[1:]))
            if action == ("GET",):
                return Response(200, canonical(entity, entities.deleted[key]))
            if action == ("DELETE",):
                entities.deleted.pop(key)
                return Response(204)
            if action == ("POST", "restore"):
                restored = {k: v for k, v in entities.deleted.pop(key).items() if k != "deletedDateTime"}
                self._store(tenant, entity, key, restored, created=False)
                return Response(200, canonical(entity, restored))
        raise method_not_allowed()

    # -- write validation --------------------------------------------------------------------------
    def _check_policy_write(self, tenant: str, body: JSONObject, current: JSONObject | None) -> JSONObject:
        """Validate a POST (current None) or PATCH body and return the entity to store."""
        schema_check(body, POLICIES)
        sent = normalize_object(strip_read_only(body), POLICIES.root, lenient=False, dropped=[], path="policy")
        merged = merge_patch(current or {}, sent)
        if "sessionControls" in sent:
            check_sign_in_frequency(sent.get("sessionControls"), merged.get("sessionControls"))
            merged["sessionControls"] = condense_session_controls(merged.get("sessionControls"))
        touched_conditions = set(sent.get("conditions") or {})
        if current is None:
            check_required_policy_fields(merged)
        elif any(key in sent and not sent[key] for key in ("displayName", "state")):
            raise bad_request(MALFORMED, reason="displayName/state cannot be cleared")
        if current is None or {"grantControls", "sessionControls"} & set(sent):
            check_grant_or_session(merged)
        if current is None or "users" in touched_conditions:
            check_guest_scopes((merged.get("conditions") or {}).get("users"))
        if current is None or "grantControls" in sent or touched_conditions - {"users"}:
            check_password_change(merged)
        if current is None or {"grantControls", "sessionControls"} & set(sent) or touched_conditions:
            check_workload_identity_policy(merged)
        if is_workload_identity_policy(merged) and not self._tenant(tenant).workload_identities_premium:
            raise bad_request(WORKLOAD_IDENTITY_LICENCE_1150, reason="the tenant has no Workload Identities Premium")
        self._check_location_references(tenant, location_ids_sent(sent))
        if current is None and len(self._tenant(tenant).policies.items) >= self.settings.max_policies:
            raise bad_request(MALFORMED, reason=f"the tenant already has {self.settings.max_policies} policies (§3)")
        return merged

    def _check_location_references(self, tenant: str, ids: list[Any]) -> None:
        entities = self._tenant(tenant).named_locations
        lag_s = self.settings.location_replication_lag_ms / 1000
        for location_id in ids:
            text = str(location_id)
            if text.lower() in SPECIAL_LOCATION_IDS:
                continue
            key = entities.find(text)
            replicated = key is not None and self.clock() - entities.created_at.get(key, 0.0) >= lag_s
            if not replicated:
                # §1.5/§1.6 [S]: CIPP #4194/#4655, also for a location created moments ago.
                raise bad_request(f"1040: NamedLocation with id {text} does not exist in the directory.")

    def _check_location_write(self, tenant: str, body: JSONObject, current: JSONObject | None) -> JSONObject:
        annotated = odata_type_name(str(body.get("@odata.type", "")))
        if annotated not in ("ipNamedLocation", "countryNamedLocation"):
            # §1.1: "You must specify the @odata.type of the derived type" on POST and PATCH.
            raise bad_request(LOCATION_1007, reason="named location body without a derived @odata.type")
        if current is not None and ODATA_PREFIX + annotated != current.get("@odata.type"):
            raise bad_request(MALFORMED, reason="a named location cannot change its type")
        schema_check(body, NAMED_LOCATIONS)
        sent = normalize_object(strip_read_only(body), NAMED_LOCATIONS.root, lenient=False, dropped=[], path="location")
        merged = merge_patch(current or {}, sent)
        if not merged.get("displayName"):
            raise bad_request(MALFORMED, reason="displayName is required")
        if annotated == "ipNamedLocation" and (current is None or "ipRanges" in sent):
            check_ip_ranges(merged.get("ipRanges") or [])
        if annotated == "countryNamedLocation" and not merged.get("countriesAndRegions"):
            raise bad_request(MALFORMED, reason="countriesAndRegions is required")
        if current is None and len(self._tenant(tenant).named_locations.items) >= self.settings.max_named_locations:
            raise bad_request(
                MALFORMED, reason=f"the tenant already has {self.settings.max_named_locations} named locations (§3)"
            )
        return merged

    # -- listing and paging --------------------------------------------------------------------------
    def _page(
        self,
        request: Request,
        context_path: str,
        items: list[JSONObject],
        root: str | None,
        *,
        default_top: int | None = None,
        filtered: bool = False,
    ) -> Response:
        page = self._page_request(request, root, default_top)
        if page.filter_text and not filtered:
            predicate = parse_filter(page.filter_text)
            items = [item for item in items if predicate(item)]
        if page.orderby:
            items = order_by(items, page.orderby)
        size = page.top if page.top is not None else len(items) or 1
        selected = [select_properties(item, page.select) for item in items[page.offset : page.offset + size]]
        context = self._context(context_path + (f"({','.join(page.select)})" if page.select else ""))
        body: JSONObject = {"@odata.context": context}
        if page.count:
            body["@odata.count"] = len(items)
        if page.offset + size < len(items):
            body["@odata.nextLink"] = self._next_link(request, page.offset + size)
        body["value"] = selected
        return Response(200, body)

    def _page_request(self, request: Request, root: str | None, default_top: int | None = None) -> PageRequest:
        query = request.query
        unknown = [key for key in query if key.startswith("$") and key not in QUERY_OPTIONS]
        if unknown:
            raise bad_request(f"Query option '{unknown[0]}' is not supported.", reason="unsupported query option")
        maximum = default_top or 999
        top = parse_top(query["$top"], maximum) if "$top" in query else default_top or self.settings.default_page_size
        offset = (
            self._decode_skiptoken(query["$skiptoken"])
            if "$skiptoken" in query
            else parse_int(query.get("$skip", "0"), "$skip")
        )
        select = [name.strip() for name in query["$select"].split(",") if name.strip()] if "$select" in query else None
        if select and root:
            unknown_props = [name for name in select if name not in all_properties_of_family(root)]
            if unknown_props:
                raise bad_request(
                    f"Could not find a property named '{unknown_props[0]}' on type 'microsoft.graph.{root}'."
                )
        count = query.get("$count", "false").lower() == "true"
        return PageRequest(top, offset, count, select, query.get("$filter"), query.get("$orderby"))

    def _next_link(self, request: Request, offset: int) -> str:
        query = {key: value for key, value in request.query.items() if key not in ("$skiptoken", "$skip")}
        query["$skiptoken"] = self._encode_skiptoken(offset)
        return f"{self.url}{request.path}?{urlencode(query, quote_via=quote, safe='$')}"

    def _encode_skiptoken(self, offset: int) -> str:
        payload = str(offset).encode()
        mac = hmac.new(self._page_key, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(payload + b"." + mac).decode().rstrip("=")

    def _decode_skiptoken(self, token: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, mac = raw.split(b".", 1)
            valid = hmac.compare_digest(mac, hmac.new(self._page_key, payload, hashlib.sha256).digest()[:12])
            if valid:
                return int(payload)
        except ValueError:
            pass
        raise bad_request("Invalid $skiptoken.", reason="the $skiptoken was not issued by this emulator")

    def _evaluate(self, request: Request, tenant: str) -> Response:
        """What If (docs/graph-ca.md §5.1, §5.2, §6.7): the three sign-in objects are required; every enabled and
        report-only policy is answered, the applying ones only with appliedPoliciesOnly."""
        if request.method != "POST":
            raise method_not_allowed()
        body = request.json_body()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.", reason="evaluate without a body")
        for required in ("signInIdentity", "signInContext", "signInConditions"):
            if not isinstance(body.get(required), dict):
                raise bad_request(f"The parameter '{required}' is required.", reason=f"evaluate without {required}")
        with self._lock:
            answer = self._what_if.get(tenant)
            visible = self._entity_set(tenant, POLICIES).visible(self.clock(), self.settings.read_lag_ms / 1000)
            policies = [canonical(POLICIES, item) for item in visible.values()]
        if answer is None:
            raise GraphError(501, "NotImplemented", "What If is not emulated here.", reason="no What If answer set")
        results = []
        for policy in policies:
            if policy.get("state") not in ("enabled", "enabledForReportingButNotEnforced"):
                continue
            applies, reasons = answer(body, policy)
            if applies or not body.get("appliedPoliciesOnly"):
                results.append({**policy, "policyApplies": applies, "analysisReasons": reasons})
        return Response(
            200, {"@odata.context": self._context("Collection(microsoft.graph.whatIfAnalysisResult)"), "value": results}
        )

    def _context(self, path: str) -> str:
        return f"{self.url}/v1.0/$metadata#{path}"

    # -- service principals (read-only) -------------------------------------------------------------
    def _service_principals(self, request: Request, tenant: str, segments: list[str]) -> Response:
        """GET servicePrincipals[?$filter=appId eq '…'], servicePrincipals/{id}, servicePrincipals(appId='…')."""
        if request.method != "GET":
            raise method_not_allowed()
        with self._lock:
            principals = copy.deepcopy(list(self._tenant(tenant).service_principals.values()))
        by_app_id = SERVICE_PRINCIPAL_BY_APP_ID.match(segments[0])
        if by_app_id is None and segments[0].lower() != "serviceprincipals":
            raise bad_request(f"Resource not found for the segment '{segments[0]}'.", reason="unknown route")
        if by_app_id is None and len(segments) == 1:
            return self._page(request, "servicePrincipals", principals, None)
        if len(segments) > (1 if by_app_id else 2):
            raise bad_request(f"Resource not found for the segment '{segments[-1]}'.", reason="unknown route")
        wanted, field_name = (by_app_id["app_id"], "appId") if by_app_id else (segments[1], "id")
        match = next((sp for sp in principals if str(sp[field_name]).lower() == wanted.lower()), None)
        if match is None:
            # What Graph answers for a directory object that is not there (also CIPP's "Resource '…' does not
            # exist" when an API client's app is gone, docs/cipp-api.md).
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{wanted}' does not exist or one of its queried reference-property objects are not present.",
            )
        select = [name.strip() for name in request.query["$select"].split(",")] if "$select" in request.query else None
        body = select_properties(match, select) if select else match
        return Response(200, {"@odata.context": self._context("servicePrincipals/$entity"), **body})

    # -- directory objects (read-only) -------------------------------------------------------------
    def _directory(self, request: Request, claims: JSONObject, tenant: str, lowered: list[str]) -> Response:
        roles = set(claims.get("roles") or []) if self.settings.enforce_roles else None
        query = request.query
        select = [n.strip() for n in query["$select"].split(",") if n.strip()] if "$select" in query else None
        collection = len(lowered) == 1
        keep = parse_filter(query["$filter"]) if collection and "$filter" in query else None
        try:
            with self._lock:
                directory = self._tenant(tenant).directory
                result = graph_directory.handle(directory, request.method, lowered, roles, select, keep)
        except DirectoryRequestError as error:
            raise GraphError(error.status, error.code, error.message, reason=error.reason) from None
        if result.entity is not None:
            return Response(200, {"@odata.context": self._context(result.context), **result.entity})
        if "$top" not in query:
            request = dataclasses.replace(request, query={**query, "$top": str(self.settings.directory_page_size)})
        # A collection was filtered above, on every stored property; the pager keeps $filter for its nextLink.
        return self._page(request, result.context, result.items or [], None, filtered=keep is not None)

    # -- sign-in logs --------------------------------------------------------------------------------
    def _sign_ins(self, request: Request, tenant: str, segments: list[str]) -> Response:
        if request.method != "GET":
            raise method_not_allowed()
        with self._lock:
            records = copy.deepcopy(self._tenant(tenant).sign_ins)
        if segments:
            match = next((record for record in records if record["id"] == segments[0]), None)
            if match is None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{segments[0]}' does not exist.")
            return Response(200, {"@odata.context": self._context("auditLogs/signIns/$entity"), **match})
        if "$orderby" not in request.query:
            # Sign-in logs come newest first.
            records.sort(key=lambda record: parse_datetime(record["createdDateTime"]) or datetime.min, reverse=True)
        return self._page(request, "auditLogs/signIns", records, None, default_top=self.settings.sign_in_page_size)


QUERY_OPTIONS = {"$top", "$skip", "$skiptoken", "$filter", "$select", "$count", "$orderby"}
# The beta routes served (GET only): the directory reads of pulumi-azuread's data sources.
BETA_READS = (["users"], ["groups"], ["serviceprincipals"])


def choose_id(entities: EntitySet, wanted: Any, *, replace: bool) -> tuple[str, bool]:
    """Keep an exported id unless it collides (then a fresh one, or the same entity when replacing)."""
    if isinstance(wanted, str) and wanted and "/" not in wanted:
        existing = entities.find(wanted)
        if existing is None:
            return wanted, True
        if replace:
            return existing, False
    return str(uuid.uuid4()), True


def canonical(entity: _Entity, stored: JSONObject) -> JSONObject:
    result = with_get_defaults(copy.deepcopy(stored), entity.root)
    if entity is POLICIES:
        order = ("id", "templateId", "displayName", "createdDateTime", "modifiedDateTime", "deletedDateTime", "state")
        result = {key: result[key] for key in order if key in result} | result
    else:
        result = {key: result[key] for key in ("@odata.type", "id", "displayName") if key in result} | result
    return result


def all_properties_of_family(root: str) -> set[str]:
    names = {name for type_name in TYPES if is_derived_from(type_name, root) for name in properties_of(type_name)}
    return names | {"@odata.type"}


def select_properties(item: JSONObject, select: list[str] | None) -> JSONObject:
    if not select:
        return item
    return {key: value for key, value in item.items() if key in select or key == "@odata.type"}


def order_by(items: list[JSONObject], orderby: str) -> list[JSONObject]:
    field_path, _, direction = orderby.strip().partition(" ")

    def sort_key(item: JSONObject) -> str:
        return str(field_value(item, field_path) or "").lower()

    return sorted(items, key=sort_key, reverse=direction.strip().lower() == "desc")


def parse_int(value: str, name: str) -> int:
    if not re.fullmatch(r"\d+", value or ""):
        raise bad_request(f"Invalid value '{value}' for query option '{name}'.")
    return int(value)


def parse_top(value: str | None, maximum: int = 999) -> int:
    top = parse_int(value or "", "$top")
    if not 1 <= top <= maximum:
        raise bad_request(f"Invalid page size specified: '{value}'. Must be between 1 and {maximum} inclusive.")
    return top


def schema_check(body: JSONObject, entity: _Entity) -> None:
    try:
        validate_object(body, entity.root, entity.label)
    except SchemaMismatch as mismatch:
        raise bad_request(entity.schema_error, reason=str(mismatch)) from mismatch


def strip_read_only(body: JSONObject) -> JSONObject:
    return {key: value for key, value in body.items() if key not in READ_ONLY_PROPERTIES}


def strip_annotations(value: Any) -> Any:
    """Remove export-only annotations but keep @odata.type values (they carry meaning in requests)."""
    if isinstance(value, list):
        return [strip_annotations(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: strip_annotations(item)
        for key, item in value.items()
        if not key.startswith("#") and ("@" not in key or key == "@odata.type")
    }


def json_object_body(request: Request) -> JSONObject:
    content_type = request.headers.get("content-type", "")
    body = request.json_body()
    if "json" not in content_type.lower() or not isinstance(body, dict):
        raise bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid "
            "JSON format.",
            reason="the body is not a JSON object",
        )
    return body


def invalid_token(message: str, *, reason: str = "") -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, reason=reason or message)


def www_authenticate(error: GraphError) -> dict[str, str]:
    if error.status != 401:
        return {}
    value = 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    return {"WWW-Authenticate": value + f'client_id="{GRAPH_APP_ID}"'}


def method_not_allowed() -> GraphError:
    return GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")


def fault_error(status: int) -> GraphError:
    codes = {
        429: ("TooManyRequests", "Too many requests."),
        500: ("InternalServerError", "An internal server error occurred."),
        502: ("BadGateway", "Bad gateway."),
        503: ("ServiceUnavailable", "Service is unavailable."),
        504: ("GatewayTimeout", "Gateway timeout."),
    }
    code, message = codes.get(status, ("UnknownError", "An error occurred."))
    return GraphError(status, code, message)


def parse_form(raw: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: values[0] for key, values in parsed.items()}


def path_segments(path: str) -> list[str]:
    return [unquote(segment) for segment in path.split("/") if segment]


# Conditional Access in "Microsoft Entra audit log categories and activities" (Microsoft Learn,
# identity/monitoring-health/reference-audit-activities): service "Conditional Access", category "Policy".
POLICY_ACTIVITIES = {
    "Add": "Add Conditional Access policy",
    "Update": "Update Conditional Access policy",
    "Delete": "Delete Conditional Access policy",
}


def policy_audit_entry(
    operation: str,
    before: JSONObject | None,
    after: JSONObject | None,
    initiated_by: JSONObject,
    when: datetime | None = None,
) -> JSONObject:
    """A directoryAudit resource (Microsoft Learn, directoryAudit resource type) for one policy write. The
    policy's old and new JSON travel in one modified property named "ConditionalAccessPolicy", as the
    troubleshooting page (identity/conditional-access/troubleshoot-policy-changes-audit-log) shows them."""
    policy = after or before or {}
    return {
        "id": str(uuid.uuid4()),
        "category": "Policy",
        "correlationId": str(uuid.uuid4()),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": POLICY_ACTIVITIES[operation],
        "activityDateTime": graph_timestamp(when),
        "loggedByService": "Conditional Access",
        "operationType": operation,
        "initiatedBy": {"app": None, "user": None, **copy.deepcopy(initiated_by)},
        "targetResources": [
            {
                "id": policy.get("id"),
                "displayName": policy.get("displayName"),
                "type": "Policy",
                "userPrincipalName": None,
                "groupType": None,
                "modifiedProperties": [
                    {
                        "displayName": "ConditionalAccessPolicy",
                        "oldValue": json.dumps(before) if before is not None else None,
                        "newValue": json.dumps(after) if after is not None else None,
                    }
                ],
            }
        ],
        "additionalDetails": [],
    }


def sign_in_record(raw: JSONObject) -> JSONObject:
    """A v1.0 signIn resource with the fields the project reads; given values win over defaults."""
    created = raw.get("createdDateTime")
    if isinstance(created, datetime):
        created = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if created is None or parse_datetime(str(created)) is None:
        raise ValueError(f"sign-in record needs an ISO createdDateTime, got {created!r}")
    record: JSONObject = {
        "id": str(uuid.uuid4()),
        "userDisplayName": None,
        "userPrincipalName": None,
        "userId": None,
        "appId": None,
        "appDisplayName": None,
        "ipAddress": None,
        "clientAppUsed": "Browser",
        "correlationId": str(uuid.uuid4()),
        "conditionalAccessStatus": "notApplied",
        "isInteractive": True,
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": GRAPH_APP_ID,
        "status": {"errorCode": 0, "failureReason": "Other.", "additionalDetails": None},
        **{key: copy.deepcopy(value) for key, value in raw.items()},
        "createdDateTime": created,
    }
    if record["conditionalAccessStatus"] not in SIGN_IN_CA_STATUSES:
        raise ValueError(f"conditionalAccessStatus {record['conditionalAccessStatus']!r} is not a Graph value")
    record["appliedConditionalAccessPolicies"] = [
        applied_policy(item) for item in raw.get("appliedConditionalAccessPolicies", [])
    ]
    return record


def applied_policy(raw: JSONObject) -> JSONObject:
    applied: JSONObject = {
        "id": None,
        "displayName": None,
        "enforcedGrantControls": [],
        "enforcedSessionControls": [],
        "result": "notApplied",
    }
    applied |= copy.deepcopy(raw)
    if applied["result"] not in SIGN_IN_RESULTS:
        raise ValueError(f"appliedConditionalAccessPolicies result {applied['result']!r} is not a Graph value")
    return applied


# -------------------------------------------------------------------------------------------------
# HTTPS server
# -------------------------------------------------------------------------------------------------


class _TLSServer(ThreadingHTTPServer):
    """Wraps each accepted socket in TLS inside its handler thread, and tracks those threads so stop() can end
    idle keep-alive connections and join every thread (ThreadingMixIn does not join daemon threads)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, emulator: GraphEmulator) -> None:
        super().__init__(address, _Handler)
        self.ssl_context = context
        self.emulator = emulator
        self._active: dict[threading.Thread, socket.socket] = {}
        self._active_lock = threading.Lock()
        self._closing = False

    def finish_request(self, request: Any, client_address: Any) -> None:
        me = threading.current_thread()
        connection: ssl.SSLSocket | None = None
        try:
            self._register(me, request)
            request.settimeout(10)
            # Headers and body leave in separate TLS records; without NODELAY, Nagle + delayed ACK add ~40 ms each.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = self.ssl_context.wrap_socket(request, server_side=True)
            self._register(me, connection)
            _Handler(connection, client_address, self)
        except (OSError, ssl.SSLError):
            log.debug("graph emulator: connection from %s ended", client_address, exc_info=True)
        finally:
            with self._active_lock:
                self._active.pop(me, None)
            if connection is not None:
                connection.close()

    def _register(self, thread: threading.Thread, connection: socket.socket) -> None:
        with self._active_lock:
            if self._closing:
                raise OSError("the emulator is stopping")
            self._active[thread] = connection

    def close_open_connections(self, timeout_s: float = 5.0) -> None:
        with self._active_lock:
            self._closing = True
            active = list(self._active.items())
        for _, connection in active:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout_s
        for thread, _ in active:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("graph emulator: connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: _TLSServer
    timeout = 60  # idle keep-alive connections; stop() closes them sooner

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command,
            parts.path,
            {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()},
            {key.lower(): value for key, value in self.headers.items()},
            self.rfile.read(length) if length else b"",
        )
        response = self.server.emulator.handle(request)
        if response.drop:
            self._drop()
            return
        self._send(request, response)

    def _send(self, request: Request, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        headers = {"request-id": request.request_id, "client-request-id": request.client_request_id}
        headers |= {"x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "Loopback", "Slice": "E"}})}
        headers |= {"Cache-Control": "no-cache", "Strict-Transport-Security": "max-age=31536000"}
        if payload:
            headers |= {"Content-Type": response.content_type, "OData-Version": "4.0"}
        for name, value in (headers | response.headers).items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("graph emulator: " + format, *args)


# -------------------------------------------------------------------------------------------------
# CLI: python -m emulators.graph --port N --tenant <guid> --policies <folder>
# -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Loopback Microsoft Graph Conditional Access emulator (HTTPS).")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = ephemeral)")
    parser.add_argument("--tenant", action="append", default=[], help="tenant id (repeatable)")
    parser.add_argument("--policies", type=Path, help="folder or file of exported policies, loaded into every tenant")
    parser.add_argument("--ca-bundle-out", type=Path, help="copy the test CA bundle (PEM) here")
    parser.add_argument("--client-id", default=None, help="register this app (consented in every tenant)")
    parser.add_argument("--client-secret", default=None, help="secret of --client-id")
    parser.add_argument("--throttle", action="store_true", help="enable the 1 request/second/tenant limit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    emulator = GraphEmulator(port=args.port)
    emulator.set_throttle(args.throttle)
    tenants = args.tenant or [str(uuid.uuid4())]
    for tenant in tenants:
        emulator.add_tenant(tenant)
        if args.policies:
            emulator.load_policies(tenant, args.policies)
    client_id = args.client_id or str(uuid.uuid4())
    secret = args.client_secret or secrets.token_urlsafe(24)
    emulator.register_app(client_id, secret, tenants[0], tenants[1:])
    bundle = emulator.ca_bundle
    if args.ca_bundle_out:
        shutil.copyfile(bundle, args.ca_bundle_out)
        bundle = args.ca_bundle_out
    with emulator:
        print(f"GRAPH_URL={emulator.url}", flush=True)
        print(f"CA_BUNDLE={bundle}", flush=True)
        print(f"TENANTS={','.join(tenants)}", flush=True)
        print(f"CLIENT_ID={client_id}", flush=True)
        print(f"CLIENT_SECRET={secret}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
