"""TEST-ONLY stand-in for the ``pulumi-resource-azuread`` provider plugin (pulumi-azuread 6.11.1).

Why it exists
    The real plugin is the Terraform bridge around hashicorp/terraform-provider-azuread. Its Go module
    (github.com/pulumi/pulumi-azuread/provider/v6) replaces the upstream Terraform provider with a
    patched git submodule (``replace github.com/hashicorp/terraform-provider-azuread/shim => ./shim``
    over ``upstream/``), so ``go install`` from the Go module proxy cannot build it, and there is no
    network access to download the released binary. The engine tests (tests/engine/) still need
    ``pulumi preview/up/refresh/destroy`` to run the program's ``azuread`` resources, so this module
    plays the plugin's part over the same gRPC ResourceProvider protocol, against the loopback Graph
    emulator (emulators/graph.py). Only the engine tests and `make demo` use it, never a real stack.

What it does
    * Serves exactly ``azuread:index/namedLocation:NamedLocation`` and
      ``azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy``, and the read-only functions
      the program calls (getServicePrincipal by clientId, getUser by userPrincipalName, getGroup by
      displayName; ``LOOKUPS``). Any other token is an error that names it. Each lookup sends the
      requests of terraform-provider-azuread v3.9's data source (get_user, get_group and
      get_service_principal cite the functions): users by ``$filter``, groups through beta with the
      name's quotes *not* doubled (so Graph refuses a name with an apostrophe), then members and owners,
      a user's manager, a service principal's samlMetadataUrl through beta. The ``id`` is upstream's
      (``/users/{id}``, ``/groups/{id}``, ``/servicePrincipals/{id}``); ``objectId`` is the bare GUID.
      A failed lookup answers upstream's texts in the bridge's format (``DataSourceError``), Graph's
      errors worded as go-azure-sdk words them (``sdk_error``).
    * Configure signs in, as upstream's providerConfigure does: a client secret is POSTed to the token
      endpoint (service_clients.credentials.client_secret_sign_in), any other credential goes through
      the credential chain; a refusal fails Configure with upstream's text (``configure_failure``), so a
      wrong secret stops ``pulumi preview``.
    * Start-up like every plugin: binds 127.0.0.1 on a free port, prints only the port and a newline
      on stdout, then serves until SIGINT or SIGTERM. argv (the engine address and any flags) is ignored.
    * Check validates the inputs against the 6.11.1 schema, which ``NAMED_LOCATION_FIELDS`` and
      ``POLICY_FIELDS`` mirror (tests/engine/test_standin_provider.py compares them with the pulumi_azuread
      SDK's input classes), with upstream's ValidateFuncs and cross-attribute rules
      (``NAMED_LOCATION_RULES``, ``POLICY_RULES``: StringInSlice enums, ip_ranges PrefixLengthAtLeast(8),
      StringIsNotEmpty, IntAtLeast, ExactlyOneOf, AtLeastOneOf, RequiredWith), in terraform-plugin-sdk
      v2's order (schemaMap.validate; a block holding an unknown value is skipped, as isWhollyKnown does).
      Each failure is worded as pulumi-terraform-bridge words it (check_failures.go, NewCheckFailure):
      "<summary>. <detail>. Examine values at '<name>.<path>'.", no Property, so a bad value fails at
      ``pulumi preview``. Check returns the inputs unchanged, unknowns included.
    * Diff follows terraform-plugin-sdk v2 semantics as the bridge reports them. Unset and
      zero values (null, "", false, 0, []) are equal. An unset Optional+Computed attribute keeps its
      prior value. A MaxItems=1 block counts as a list of one (``session_controls.#``): a block the
      program drops is a change even when it only holds provider-computed values, and one it adds is a
      change unless the field's DiffSuppressFunc hides it (sessionControls all at defaults). The detailed
      diff names list elements (``conditions.users.excludedUsers[1]``), as the bridge's
      pkg/tfbridge/detailed_diff.go does. conditionalAccessPolicyCustomizeDiff's two errors (an
      ineffective sessionControls without grantControls; everyTime with a frequency or period) fail
      Diff, Create and Update, previews included (``customize_diff``). Lists are ordered.
      Replacement happens only where upstream has ``ForceNew``: the ``ip`` and ``country`` blocks of
      azuread_named_location (internal/services/conditionalaccess/named_location_resource.go). Adding or removing one of
      those blocks replaces the resource. Changes inside a block are updated in place, as TF does
      for a nested attribute of a ForceNew list block (terraform-bridge cross-test
      TestBlockCollectionForceNew) and as the upstream Update function expects. Nothing in
      azuread_conditional_access_policy is ForceNew in v3.
    * Create/Update/Read/Delete call Microsoft Graph v1.0 at ``$AZUREAD_STANDIN_GRAPH_URL`` with the
      project's own renderer (``cipp_hardening.graph_render``) for the request bodies. They read the
      object back with GET and map it to outputs the way upstream's flatten functions do. They
      follow upstream's ordering and consistency waits (``Waiter``, ``WaitTiming``): five consecutive
      confirming reads at least 5 s apart, backing off to 10 s after a read that does not confirm, as
      terraform-plugin-sdk v2's StateChangeConf runs consistency.WaitForUpdate / WaitForDeletion
      (internal/helpers/consistency/consistency.go). A new IP named location is first read after 15 s
      (WaitForUpdateDelayStart) and its wait fails on any read error, a 404 included
      (ipNamedLocationWait); a new policy's wait takes a 404 as "not yet" (conditionalAccessPolicyResourceCreate).
      Update waits until the ranges and trust (location) or the display name and state (policy) read back
      as configured. Delete of an IP location first PATCHes ``isTrusted: false`` and waits for it, then
      DELETE and five consecutive 404s. ``$AZUREAD_STANDIN_WAIT_SCALE`` multiplies every interval (default
      1; the engine tests and the demo set it small); the timeouts stay upstream's (5 minutes, a policy
      update 15).
    * The resource id is upstream v3's path form, ``/identity/conditionalAccess/namedLocations/{guid}``
      or ``/identity/conditionalAccess/policies/{guid}``. ``objectId`` is the bare GUID.
    * In preview, Create and Update make no HTTP call. Create reports ``id``, ``objectId`` and each
      Optional+Computed property the program did not set as unknown. Update keeps the prior values
      of those properties, as a Terraform plan does, and reports unknown only where there is no
      prior value. Optional+Computed means ``conditions.insiderRiskLevels``,
      ``sessionControls.signInFrequencyAuthenticationType``, ``sessionControls.signInFrequencyInterval``
      and ``country.countryLookupMethod``.
    * Graph error envelopes become gRPC errors naming the Graph code and message and the resource
      type and name. Both creates set the id only after their consistency wait
      (namedLocationResourceCreate, conditionalAccessPolicyResourceCreate: ``d.SetId`` follows the wait),
      so an object whose wait fails is left in Graph and not in state. Only the Read after the wait
      failing carries ``ErrorResourceInitFailed`` with the id (SDK v2 keeps a create's state once the id
      is set). A Read that Graph answers with 404 returns an empty id.
    * Import (a Read with neither state nor inputs, what ``pulumi import`` and the ``import`` resource
      option send) requires upstream's path form, ``/identity/conditionalAccess/{namedLocations|policies}/{guid}``
      (ImporterValidatingResourceId), and answers inputs extracted from the object, as the bridge does.

What it does NOT do
    * No other azuread resources or functions, no GetSchema, no Parameterize. Outside an
      import, a bare GUID id is accepted as well as the path form.
    * No ValidatePolicyAuthenticationStrengthPolicyID, no schema defaults applied in Check, no state
      upgraders, no ``__meta``/timeouts in state.
    * Country named locations and the inputs ``graph_render`` refuses (devices, client applications,
      authentication strength...) cannot be created or updated: the renderer raises, and that becomes
      an INVALID_ARGUMENT error. They can still be read.
    * Configure does not look up the token holder's object id when the token lacks an ``oid`` claim
      (upstream's Client.build does), nor check ``metadata_host``/``environment``.
    * Credentials: client secret only (provider config clientId/clientSecret, then ARM_CLIENT_ID /
      ARM_CLIENT_SECRET, then whatever service_clients.credentials finds: AZURE_CLIENT_ID /
      AZURE_CLIENT_SECRET, workload identity or the Azure CLI). No certificates, no MSI, no
      ``environment`` switch. Tokens are requested for ``https://graph.microsoft.com/.default`` (what
      the real provider asks for; the emulator grants app roles only to that audience), overridable
      with ``$AZUREAD_STANDIN_GRAPH_SCOPE``. The authority is ``$AZUREAD_STANDIN_AUTHORITY``, else
      ``$AZURE_AUTHORITY_HOST``. TLS is verified
      with ``$REQUESTS_CA_BUNDLE``. Secrets and tokens are never logged.
    * ``$AZUREAD_STANDIN_GRAPH_URL`` has no default, on purpose: a test stand-in must never reach
      real Graph by accident.
"""

from __future__ import annotations

import collections
import contextlib
import http
import ipaddress
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, TypeAlias
from urllib.parse import quote

import grpc
from google.protobuf import any_pb2, empty_pb2  # type: ignore[import-untyped]
from google.rpc import status_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from cipp_hardening import graph_render
from emulators.provider_host import from_struct, to_struct
from service_clients import credentials
from service_clients.graph_client import GraphClient, GraphError

PLUGIN_VERSION: Final = "6.11.1"  # pulumi_azuread/pulumi-plugin.json; a test keeps the two equal

UNKNOWN: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-value sentinel
SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_REF_SIG: Final = "5cf8f73096256a8f31e491e813e4eb8e"

GRAPH_URL_ENV: Final = "AZUREAD_STANDIN_GRAPH_URL"
GRAPH_SCOPE_ENV: Final = "AZUREAD_STANDIN_GRAPH_SCOPE"
LOG_LEVEL_ENV: Final = "AZUREAD_STANDIN_LOG"
DEFAULT_GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
WAIT_SCALE_ENV: Final = "AZUREAD_STANDIN_WAIT_SCALE"
DEFAULT_TIMEOUT_S: Final = 300.0  # upstream's create/read/delete timeouts are 5 minutes
POLICY_UPDATE_TIMEOUT_S: Final = 900.0  # conditionalAccessPolicyResource: Update 15 minutes

log = logging.getLogger("azuread-standin")

# ---------------------------------------------------------------------------------------------------
# The 6.11.1 schema of the two resources (camelCase wire names), with upstream's Computed flags
# ---------------------------------------------------------------------------------------------------

Kind = Literal["string", "bool", "int", "strings", "block", "blocks"]


@dataclass(frozen=True)
class Prop:
    """One schema property. ``block`` is a MaxItems=1 TF block (an object on the wire), ``blocks`` a list of them.

    ``computed``: Optional+Computed (the server fills it when unset). ``output``: Computed only (never an input).
    """

    kind: Kind
    required: bool = False
    computed: bool = False
    output: bool = False
    fields: Mapping[str, Prop] = field(default_factory=dict)
    # A DiffSuppressFunc that hides the block's count going 0 -> 1 while every field in it is at its default
    # (conditionalAccessPolicyDiffSuppress on session_controls).
    suppress_empty_add: bool = False


def _string(*, required: bool = False, computed: bool = False, output: bool = False) -> Prop:
    return Prop("string", required=required, computed=computed, output=output)


def _strings(*, required: bool = False) -> Prop:
    return Prop("strings", required=required)


def _block(fields: Mapping[str, Prop], *, required: bool = False, suppress_empty_add: bool = False) -> Prop:
    return Prop("block", required=required, fields=fields, suppress_empty_add=suppress_empty_add)


def _blocks(fields: Mapping[str, Prop]) -> Prop:
    return Prop("blocks", fields=fields)


BOOL: Final = Prop("bool")
INT: Final = Prop("int")
_FILTER: Final = {"mode": _string(required=True), "rule": _string(required=True)}
_GUESTS: Final = {
    "externalTenants": _blocks({"members": _strings(), "membershipKind": _string(required=True)}),
    "guestOrExternalUserTypes": _strings(required=True),
}

NAMED_LOCATION_FIELDS: Final[Mapping[str, Prop]] = {
    "country": _block(
        {
            "countriesAndRegions": _strings(required=True),
            # Optional with a server-side value ("clientIpAddress") that upstream's flatten always fills.
            "countryLookupMethod": _string(computed=True),
            "includeUnknownCountriesAndRegions": BOOL,
        }
    ),
    "displayName": _string(required=True),
    "ip": _block({"ipRanges": _strings(required=True), "trusted": BOOL}),
    "objectId": _string(output=True),
}

POLICY_FIELDS: Final[Mapping[str, Prop]] = {
    "conditions": _block(
        {
            "applications": _block(
                {
                    "excludedApplications": _strings(),
                    "filter": _block(_FILTER),
                    "includedApplications": _strings(),
                    "includedUserActions": _strings(),
                },
                required=True,
            ),
            "authenticationFlowTransferMethods": _strings(),
            "clientAppTypes": _strings(required=True),
            "clientApplications": _block(
                {
                    "excludedServicePrincipals": _strings(),
                    "filter": _block(_FILTER),
                    "includedServicePrincipals": _strings(),
                }
            ),
            "devices": _block({"filter": _block(_FILTER)}),
            "insiderRiskLevels": _string(computed=True),
            "locations": _block({"excludedLocations": _strings(), "includedLocations": _strings(required=True)}),
            "platforms": _block({"excludedPlatforms": _strings(), "includedPlatforms": _strings(required=True)}),
            "servicePrincipalRiskLevels": _strings(),
            "signInRiskLevels": _strings(),
            "userRiskLevels": _strings(),
            "users": _block(
                {
                    "excludedGroups": _strings(),
                    "excludedGuestsOrExternalUsers": _blocks(_GUESTS),
                    "excludedRoles": _strings(),
                    "excludedUsers": _strings(),
                    "includedGroups": _strings(),
                    "includedGuestsOrExternalUsers": _blocks(_GUESTS),
                    "includedRoles": _strings(),
                    "includedUsers": _strings(),
                },
                required=True,
            ),
        },
        required=True,
    ),
    "displayName": _string(required=True),
    "grantControls": _block(
        {
            "authenticationStrengthPolicyId": _string(),
            "builtInControls": _strings(),
            "customAuthenticationFactors": _strings(),
            "operator": _string(required=True),
            "termsOfUses": _strings(),
        }
    ),
    "objectId": _string(output=True),
    "sessionControls": _block(
        {
            "applicationEnforcedRestrictionsEnabled": BOOL,
            "cloudAppSecurityPolicy": _string(),
            "disableResilienceDefaults": BOOL,
            "persistentBrowserMode": _string(),
            "signInFrequency": INT,
            "signInFrequencyAuthenticationType": _string(computed=True),
            "signInFrequencyInterval": _string(computed=True),
            "signInFrequencyPeriod": _string(),
        },
        suppress_empty_add=True,
    ),
    "state": _string(required=True),
}


@dataclass(frozen=True)
class ResourceKind:
    token: str
    fields: Mapping[str, Prop]
    collection: str  # under /identity/conditionalAccess
    force_new_blocks: tuple[str, ...]  # upstream ForceNew (replace when the block is added or removed)
    flatten: Callable[[Mapping[str, Any]], dict[str, Any]]
    wait_texts: Mapping[str, str]  # upstream's ErrorDiagF summary of each failed wait, "{id}" the resource id
    update_timeout_s: float = DEFAULT_TIMEOUT_S
    rules: Mapping[str, Rule] = field(default_factory=dict)  # Check's validation, by property path without indices

    def wait_failed(self, operation: str, resource_id: str, exc: WaitFailed) -> StandInError:
        summary = self.wait_texts[operation].format(id=resource_id, quoted=json.dumps(resource_id))  # Go's %q
        return StandInError(grpc.StatusCode.UNKNOWN, f"{summary}: {exc}")

    @property
    def graph_path(self) -> str:
        return f"identity/conditionalAccess/{self.collection}"

    @property
    def id_prefix(self) -> str:
        return f"/identity/conditionalAccess/{self.collection}/"

    def path_id(self, object_id: str) -> str:
        """Upstream v3's resource id: ``stable.NewIdentityConditionalAccess...ID(guid).ID()``."""
        return self.id_prefix + object_id

    def check_import_id(self, resource_id: str) -> None:
        """Upstream's importer accepts the path form only (stable.ValidateIdentityConditionalAccess...ID in
        named_location_resource.go / conditional_access_policy_resource.go, ImporterValidatingResourceId)."""
        object_id = resource_id.removeprefix(self.id_prefix)
        if not resource_id.startswith(self.id_prefix) or not object_id or "/" in object_id:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"importing {resource_id!r}: the id must be {self.id_prefix}<object id> (upstream's import format)",
            )

    def object_id(self, resource_id: str) -> str:
        """The Graph object id of a resource id (path form, or a bare GUID as a lenient extra)."""
        object_id = resource_id.removeprefix(self.id_prefix)
        if not object_id or "/" in object_id:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{resource_id!r} is not a {self.token} id (expected {self.id_prefix}<object id>)",
            )
        return object_id


class StandInError(Exception):
    """An error to return over gRPC with this status code and message."""

    def __init__(
        self, code: grpc.StatusCode, message: str, init_failed: provider_pb2.ErrorResourceInitFailed | None = None
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.init_failed = init_failed


# ---------------------------------------------------------------------------------------------------
# Check-time validation: upstream's ValidateFuncs and cross-attribute rules
# ---------------------------------------------------------------------------------------------------

Validator = Callable[[Any, str], list[str]]


def _go_strings(values: Sequence[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def in_slice(*valid: str) -> Validator:
    """validation.StringInSlice(valid, false): terraform-plugin-sdk v2 helper/validation/strings.go."""

    def check(value: Any, key: str) -> list[str]:
        if not isinstance(value, str):
            return [f"expected type of {key} to be string"]
        return [] if value in valid else [f"expected {key} to be one of {_go_strings(valid)}, got {value}"]

    return check


def not_empty(value: Any, key: str) -> list[str]:
    """validation.StringIsNotEmpty (helper/validation/strings.go)."""
    if not isinstance(value, str):
        return [f"expected type of {json.dumps(key)} to be string"]
    return [] if value else [f"expected {json.dumps(key)} to not be an empty string, got "]


def prefix_length_at_least(minimum: int) -> Validator:
    """validation.PrefixLengthAtLeast (terraform-provider-azuread internal/helpers/tf/validation/net.go):
    not empty, netip.ParsePrefix (address/bits, no zone, no leading zeros), then the prefix length."""

    def check(value: Any, key: str) -> list[str]:
        if errors := not_empty(value, key):
            return errors
        address, _, bits = str(value).rpartition("/")
        try:
            if not address or "%" in address or not re.fullmatch(r"0|[1-9][0-9]*", bits):
                raise ValueError(value)
            network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
        except ValueError:
            return [f"expected {json.dumps(key)} to be a valid IPv4 or IPv6 prefix"]
        if network.prefixlen < minimum:
            return [f"expected {json.dumps(key)} to have a prefix length at least {minimum}, got {network.prefixlen}"]
        return []

    return check


def int_at_least(minimum: int) -> Validator:
    """validation.IntAtLeast (helper/validation/int.go)."""

    def check(value: Any, key: str) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            return [f"expected type of {key} to be integer"]
        return [] if value >= minimum else [f"expected {key} to be at least ({minimum}), got {int(value)}"]

    return check


@dataclass(frozen=True)
class Rule:
    """One attribute's validation in upstream's schema: ``validate`` on the value (on each element of a list),
    and the cross-attribute constraints, with the keys exactly as upstream writes them."""

    validate: Validator | None = None
    exactly_one_of: tuple[str, ...] = ()
    at_least_one_of: tuple[str, ...] = ()
    required_with: tuple[str, ...] = ()


# stable.PossibleValuesFor... (go-azure-sdk microsoft-graph common-types, vendored by terraform-provider-azuread v3.9)
_RISK_LEVELS: Final = ("hidden", "high", "low", "medium", "none")
_PLATFORMS: Final = ("all", "android", "iOS", "linux", "macOS", "windows", "windowsPhone")
_GUEST_TYPES: Final = (
    "b2bCollaborationGuest",
    "b2bCollaborationMember",
    "b2bDirectConnectUser",
    "internalGuest",
    "none",
    "otherExternalUser",
    "serviceProvider",
)
_FILTER_RULES: Final = {"mode": Rule(in_slice("exclude", "include")), "rule": Rule(not_empty)}
_GUEST_RULES: Final = {
    "guestOrExternalUserTypes": Rule(in_slice(*_GUEST_TYPES)),
    "externalTenants.membershipKind": Rule(in_slice("all", "enumerated")),
    "externalTenants.members": Rule(not_empty),
}
_APPS: Final = (
    "conditions.0.applications.0.included_applications",
    "conditions.0.applications.0.included_user_actions",
)
_USERS_INCLUDED: Final = tuple(
    f"conditions.0.users.0.included_{noun}" for noun in ("groups", "roles", "users", "guests_or_external_users")
)
_GRANTS: Final = (
    "grant_controls.0.built_in_controls",
    "grant_controls.0.authentication_strength_policy_id",
    "grant_controls.0.terms_of_use",
)


def _nested(prefix: str, rules: Mapping[str, Rule]) -> dict[str, Rule]:
    return {f"{prefix}.{path}": rule for path, rule in rules.items()}


NAMED_LOCATION_RULES: Final[Mapping[str, Rule]] = {  # namedLocationResource
    "displayName": Rule(not_empty),
    "ip": Rule(exactly_one_of=("ip", "country")),
    "ip.ipRanges": Rule(prefix_length_at_least(8)),
    "country": Rule(exactly_one_of=("ip", "country")),
    "country.countriesAndRegions": Rule(not_empty),
    "country.countryLookupMethod": Rule(in_slice("authenticatorAppGps", "clientIpAddress")),
}

POLICY_RULES: Final[Mapping[str, Rule]] = {  # conditionalAccessPolicyResource, schemaConditionalAccessFilter
    "displayName": Rule(not_empty),
    "state": Rule(in_slice("disabled", "enabled", "enabledForReportingButNotEnforced")),
    "conditions.applications.includedApplications": Rule(not_empty, exactly_one_of=_APPS),
    "conditions.applications.excludedApplications": Rule(not_empty),
    "conditions.applications.includedUserActions": Rule(not_empty, exactly_one_of=_APPS),
    **_nested("conditions.applications.filter", _FILTER_RULES),
    "conditions.authenticationFlowTransferMethods": Rule(in_slice("authenticationTransfer", "deviceCodeFlow")),
    "conditions.clientApplications.includedServicePrincipals": Rule(not_empty),
    "conditions.clientApplications.excludedServicePrincipals": Rule(not_empty),
    **_nested("conditions.clientApplications.filter", _FILTER_RULES),
    **{
        f"conditions.users.{side}{noun}": Rule(not_empty, at_least_one_of=_USERS_INCLUDED if side == "included" else ())
        for side in ("included", "excluded")
        for noun in ("Users", "Groups", "Roles")
    },
    "conditions.users.includedGuestsOrExternalUsers": Rule(at_least_one_of=_USERS_INCLUDED),
    **_nested("conditions.users.includedGuestsOrExternalUsers", _GUEST_RULES),
    **_nested("conditions.users.excludedGuestsOrExternalUsers", _GUEST_RULES),
    "conditions.clientAppTypes": Rule(
        in_slice("all", "browser", "easSupported", "exchangeActiveSync", "mobileAppsAndDesktopClients", "other")
    ),
    **_nested("conditions.devices.filter", _FILTER_RULES),
    "conditions.locations.includedLocations": Rule(not_empty),
    "conditions.locations.excludedLocations": Rule(not_empty),
    "conditions.platforms.includedPlatforms": Rule(in_slice(*_PLATFORMS)),
    "conditions.platforms.excludedPlatforms": Rule(in_slice(*_PLATFORMS)),
    "conditions.servicePrincipalRiskLevels": Rule(in_slice(*_RISK_LEVELS)),
    "conditions.signInRiskLevels": Rule(in_slice(*_RISK_LEVELS)),
    "conditions.userRiskLevels": Rule(in_slice(*_RISK_LEVELS)),
    "conditions.insiderRiskLevels": Rule(in_slice("elevated", "minor", "moderate")),
    "grantControls": Rule(at_least_one_of=("grant_controls", "session_controls")),
    "grantControls.operator": Rule(in_slice("AND", "OR")),
    "grantControls.builtInControls": Rule(
        in_slice(
            "approvedApplication",
            "block",
            "compliantApplication",
            "compliantDevice",
            "domainJoinedDevice",
            "mfa",
            "passwordChange",
        ),
        at_least_one_of=_GRANTS,
    ),
    "grantControls.authenticationStrengthPolicyId": Rule(at_least_one_of=_GRANTS),
    "grantControls.customAuthenticationFactors": Rule(not_empty),
    "grantControls.termsOfUses": Rule(not_empty, at_least_one_of=_GRANTS),
    "sessionControls": Rule(at_least_one_of=("grant_controls", "session_controls")),
    "sessionControls.cloudAppSecurityPolicy": Rule(in_slice("blockDownloads", "mcasConfigured", "monitorOnly")),
    "sessionControls.persistentBrowserMode": Rule(in_slice("always", "never")),
    "sessionControls.signInFrequency": Rule(
        int_at_least(0), required_with=("session_controls.0.sign_in_frequency_period",)
    ),
    "sessionControls.signInFrequencyAuthenticationType": Rule(
        in_slice("primaryAndSecondaryAuthentication", "secondaryAuthentication")
    ),
    "sessionControls.signInFrequencyInterval": Rule(in_slice("everyTime", "timeBased")),
    "sessionControls.signInFrequencyPeriod": Rule(
        in_slice("days", "hours"), required_with=("session_controls.0.sign_in_frequency",)
    ),
}


def tf_name(name: str) -> str:
    """The Terraform attribute of a Pulumi property (the bridge's camelCase mapping, and its one plural)."""
    return "terms_of_use" if name == "termsOfUses" else re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# ---------------------------------------------------------------------------------------------------
# Consistency waits: terraform-plugin-sdk v2's StateChangeConf as terraform-provider-azuread v3.9 sets it up
# ---------------------------------------------------------------------------------------------------

DONE: Final = "Done"  # the Target of WaitForUpdate and of the policy Update's own wait
DELETED: Final = "Deleted"  # the Target of WaitForDeletion
WAITING: Final = "Waiting"


class WaitFailed(Exception):
    """A wait that ended without its target: a refresh error (upstream stops at the first one) or the timeout."""


def _go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for the timeouts upstream prints ("5m0s", "15m0s", "1.5s")."""
    if seconds >= 60 and float(seconds).is_integer():
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes // 60}h{minutes % 60}m{rest}s" if minutes >= 60 else f"{minutes}m{rest}s"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class WaitTiming:
    """StateChangeConf's timing as upstream configures it, every interval multiplied by ``scale``.

    terraform-provider-azuread v3.9, internal/helpers/consistency/consistency.go (WaitForUpdate,
    WaitForUpdateWithTimeoutDelayStart, WaitForDeletion) and the policy's own wait in
    conditional_access_policy_resource.go (conditionalAccessPolicyResourceUpdate): MinTimeout 5 s,
    ContinuousTargetOccurence 5. The schedule is terraform-plugin-sdk v2, helper/retry/state.go
    (WaitForStateContext): the first refresh right after ``Delay``, then a wait of 100 ms doubled after every
    non-target answer (not after a target one), never below MinTimeout and never above 10 s.

    ``scale`` comes from ``$AZUREAD_STANDIN_WAIT_SCALE`` (default 1: upstream's real 5 s spacing); the engine
    tests and the demo set it small so five confirming reads take milliseconds (docs/engine.md).
    """

    scale: float = 1.0
    min_timeout_s: float = 5.0
    max_wait_s: float = 10.0
    first_wait_s: float = 0.1
    occurrences: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WaitTiming:
        raw = (os.environ if environ is None else environ).get(WAIT_SCALE_ENV, "").strip()
        if not raw:
            return cls()
        try:
            scale = float(raw)
        except ValueError:
            scale = math.nan
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(
                f"${WAIT_SCALE_ENV} must be a number >= 0 (a factor on upstream's 5 s consistency-wait "
                f"intervals), not {raw!r}"
            )
        return cls(scale=scale)


Refresh = Callable[[], tuple[Any, str]]


@dataclass
class Waiter:
    """Upstream's waits, with the clock and the sleep injected (unit tests advance a fake clock)."""

    timing: WaitTiming = field(default_factory=WaitTiming)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def deadline(self, timeout_s: float, default_s: float = DEFAULT_TIMEOUT_S) -> float:
        """The operation's deadline: the engine's custom timeout, else upstream's default for it."""
        return self.clock() + (timeout_s if timeout_s and timeout_s > 0 else default_s)

    def wait_for(self, refresh: Refresh, *, deadline: float, target: str = DONE, delay_s: float = 0.0) -> Any:
        """StateChangeConf{Pending: [Waiting], Target: [target]}.WaitForStateContext: ``refresh`` answers
        (result, state) or raises WaitFailed, which ends the wait at once, as a Refresh error does upstream.
        Returns the result of the ``occurrences``-th consecutive target answer."""
        t = self.timing
        timeout_s = max(deadline - self.clock(), 0.0)
        last_state = ""
        self._sleep(delay_s * t.scale, deadline, target, last_state, timeout_s)
        wait, occurrences = 0.0, 0
        while True:
            if wait:
                self._sleep(wait, deadline, target, last_state, timeout_s)
            else:
                wait = t.first_wait_s * t.scale  # "first round had no wait"
            result, last_state = refresh()
            if last_state == target:
                occurrences += 1
                if occurrences >= t.occurrences:
                    return result
            else:
                occurrences = 0
                wait *= 2
            wait = min(max(wait, t.min_timeout_s * t.scale), t.max_wait_s * t.scale)

    def _sleep(self, seconds: float, deadline: float, target: str, last_state: str, timeout_s: float) -> None:
        if self.clock() + seconds > deadline:
            self.sleep(max(deadline - self.clock(), 0.0))
            extra = f"last state: '{last_state}', " if last_state else ""
            raise WaitFailed(
                f"timeout while waiting for state to become '{target}' ({extra}timeout: {_go_duration(timeout_s)})"
            )
        if seconds > 0:
            self.sleep(seconds)


# ---------------------------------------------------------------------------------------------------
# Graph object -> outputs (upstream's flatten functions, conditionalaccess.go)
# ---------------------------------------------------------------------------------------------------

_CIDR_TYPES: Final = {"#microsoft.graph.iPv4CidrRange", "#microsoft.graph.iPv6CidrRange", None}


def _strs(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _obj(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def flatten_named_location(obj: Mapping[str, Any]) -> dict[str, Any]:
    ip: dict[str, Any] | None = None
    country: dict[str, Any] | None = None
    odata_type = obj.get("@odata.type")
    if odata_type == "#microsoft.graph.ipNamedLocation":
        ranges = [item for item in obj.get("ipRanges") or [] if isinstance(item, Mapping)]
        ip = {
            # Only CIDR ranges, as upstream's flattenIPNamedLocationIPRange (lower/upper ranges are dropped).
            "ipRanges": [
                str(r["cidrAddress"]) for r in ranges if r.get("@odata.type") in _CIDR_TYPES and r.get("cidrAddress")
            ],
            "trusted": bool(obj.get("isTrusted")),
        }
    elif odata_type == "#microsoft.graph.countryNamedLocation":
        country = {
            "countriesAndRegions": _strs(obj.get("countriesAndRegions")),
            "countryLookupMethod": obj.get("countryLookupMethod") or "clientIpAddress",
            "includeUnknownCountriesAndRegions": bool(obj.get("includeUnknownCountriesAndRegions")),
        }
    return {"country": country, "displayName": obj.get("displayName") or "", "ip": ip}


def _flatten_filter(value: Any) -> dict[str, Any] | None:
    f = _obj(value)
    return None if f is None else {"mode": f.get("mode") or "", "rule": f.get("rule") or ""}


def _flatten_guests(value: Any) -> list[dict[str, Any]]:
    g = _obj(value)
    if g is None:
        return []
    tenants = _obj(g.get("externalTenants"))
    return [
        {
            "externalTenants": []
            if tenants is None
            else [{"members": _strs(tenants.get("members")), "membershipKind": tenants.get("membershipKind") or ""}],
            # A flags enum on the wire: "a,b" -> ["a", "b"] in the server's order, as upstream splits it.
            "guestOrExternalUserTypes": [
                part.strip() for part in str(g.get("guestOrExternalUserTypes") or "").split(",")
            ],
        }
    ]


def _included_excluded(block: Mapping[str, Any] | None, *nouns: str) -> dict[str, Any] | None:
    """Graph's include<Noun>/exclude<Noun> lists as the provider's included<Noun>/excluded<Noun>."""
    if block is None:
        return None
    return {f"{side}d{noun}": _strs(block.get(f"{side}{noun}")) for noun in nouns for side in ("exclude", "include")}


def _flatten_conditions(value: Any) -> dict[str, Any] | None:
    c = _obj(value)
    if c is None:
        return None
    apps = _obj(c.get("applications")) or {}
    flows = _obj(c.get("authenticationFlows"))
    client_apps = _obj(c.get("clientApplications"))
    devices = _obj(c.get("devices"))
    locations = _obj(c.get("locations"))
    platforms = _obj(c.get("platforms"))
    users = _obj(c.get("users"))
    transfer = str(flows.get("transferMethods") or "") if flows else ""
    return {
        "applications": {
            "excludedApplications": _strs(apps.get("excludeApplications")),
            "filter": _flatten_filter(apps.get("applicationFilter")),
            "includedApplications": _strs(apps.get("includeApplications")),
            "includedUserActions": _strs(apps.get("includeUserActions")),
        },
        "authenticationFlowTransferMethods": [
            p.strip() for p in transfer.split(",") if p.strip() and p.strip() != "none"
        ],
        "clientAppTypes": _strs(c.get("clientAppTypes")),
        "clientApplications": None
        if client_apps is None
        else {
            "excludedServicePrincipals": _strs(client_apps.get("excludeServicePrincipals")),
            "filter": _flatten_filter(client_apps.get("servicePrincipalFilter")),
            "includedServicePrincipals": _strs(client_apps.get("includeServicePrincipals")),
        },
        "devices": None if devices is None else {"filter": _flatten_filter(devices.get("deviceFilter"))},
        "insiderRiskLevels": c.get("insiderRiskLevels") or "",
        "locations": _included_excluded(locations, "Locations"),
        "platforms": _included_excluded(platforms, "Platforms"),
        "servicePrincipalRiskLevels": _strs(c.get("servicePrincipalRiskLevels")),
        "signInRiskLevels": _strs(c.get("signInRiskLevels")),
        "userRiskLevels": _strs(c.get("userRiskLevels")),
        "users": None
        if users is None
        else {
            **(_included_excluded(users, "Groups", "Roles", "Users") or {}),
            "excludedGuestsOrExternalUsers": _flatten_guests(users.get("excludeGuestsOrExternalUsers")),
            "includedGuestsOrExternalUsers": _flatten_guests(users.get("includeGuestsOrExternalUsers")),
        },
    }


def _flatten_grant_controls(value: Any) -> dict[str, Any] | None:
    g = _obj(value)
    if g is None:
        return None
    strength = _obj(g.get("authenticationStrength"))
    strength_id = strength.get("id") if strength else None
    return {
        "authenticationStrengthPolicyId": f"/policies/authenticationStrengthPolicies/{strength_id}"
        if strength_id
        else "",
        "builtInControls": _strs(g.get("builtInControls")),
        "customAuthenticationFactors": _strs(g.get("customAuthenticationFactors")),
        "operator": g.get("operator") or "",
        "termsOfUses": _strs(g.get("termsOfUse")),
    }


def _flatten_session_controls(value: Any) -> dict[str, Any] | None:
    s = _obj(value)
    if s is None:
        return None
    restrictions = _obj(s.get("applicationEnforcedRestrictions"))
    cloud_app_security = _obj(s.get("cloudAppSecurity"))
    persistent_browser = _obj(s.get("persistentBrowser"))
    frequency = _obj(s.get("signInFrequency"))
    sign_in_frequency, period, auth_type, interval = 0, "", "", ""
    if frequency is not None:
        if frequency.get("value") is not None and frequency.get("type"):
            sign_in_frequency, period = int(frequency["value"]), str(frequency["type"])
        auth_type = str(frequency.get("authenticationType") or "")
        interval = str(frequency.get("frequencyInterval") or "")
    return {
        "applicationEnforcedRestrictionsEnabled": bool(restrictions and restrictions.get("isEnabled")),
        "cloudAppSecurityPolicy": str(cloud_app_security.get("cloudAppSecurityType") or "")
        if cloud_app_security
        else "",
        "disableResilienceDefaults": bool(s.get("disableResilienceDefaults")),
        "persistentBrowserMode": str(persistent_browser.get("mode") or "") if persistent_browser else "",
        "signInFrequency": sign_in_frequency,
        "signInFrequencyAuthenticationType": auth_type,
        "signInFrequencyInterval": interval,
        "signInFrequencyPeriod": period,
    }


def flatten_policy(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "conditions": _flatten_conditions(obj.get("conditions")),
        "displayName": obj.get("displayName") or "",
        "grantControls": _flatten_grant_controls(obj.get("grantControls")),
        "sessionControls": _flatten_session_controls(obj.get("sessionControls")),
        "state": obj.get("state") or "",
    }


NAMED_LOCATION: Final = ResourceKind(
    graph_render.NAMED_LOCATION_TYPE,
    NAMED_LOCATION_FIELDS,
    "namedLocations",
    ("ip", "country"),
    flatten_named_location,
    {  # named_location_resource.go
        "create": "waiting for creation of {id}",
        "update": "waiting for update of {id}",
        "delete": "waiting for deletion of {id}",
    },
    rules=NAMED_LOCATION_RULES,
)
POLICY: Final = ResourceKind(
    graph_render.CA_POLICY_TYPE,
    POLICY_FIELDS,
    "policies",
    (),
    flatten_policy,
    {  # conditional_access_policy_resource.go
        "create": "Waiting for creation of {id}",
        "update": "waiting for update of conditional access policy with ID {quoted}",
        "delete": "Waiting for deletion of {id}",
    },
    update_timeout_s=POLICY_UPDATE_TIMEOUT_S,
    rules=POLICY_RULES,
)
# namedLocationResourceCreate: WaitForUpdateDelayStart(ctx, time.Second*15, ...)
NAMED_LOCATION_FIRST_WAIT_S: Final = 15.0
KINDS: Final[Mapping[str, ResourceKind]] = {kind.token: kind for kind in (NAMED_LOCATION, POLICY)}


def outputs_of(kind: ResourceKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """Every output property of the type, from a Graph GET: ``id`` (path form), the flattened inputs, ``objectId``."""
    object_id = str(obj["id"])
    flat = kind.flatten(obj)
    return {
        "id": kind.path_id(object_id),
        **{name: flat.get(name) for name in kind.fields if name != "objectId"},
        "objectId": object_id,
    }


# ---------------------------------------------------------------------------------------------------
# Wire values: Struct <-> plain Python, secrets, resource references, unknowns
# ---------------------------------------------------------------------------------------------------


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value == UNKNOWN


def contains_unknown(value: Any) -> bool:
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_unknown(item) for item in value)
    return False


def reveal(value: Any) -> Any:
    """Plain values: secrets unwrapped, resource references replaced by their id (or URN), as the bridge does."""
    if isinstance(value, Mapping):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            return reveal(value.get("value"))
        if sig == RESOURCE_REF_SIG:
            return value.get("id") or value.get("urn")
        return {key: reveal(item) for key, item in value.items() if not str(key).startswith("__")}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------
# Check, Diff and the planned (preview) outputs
# ---------------------------------------------------------------------------------------------------


def check_failures(kind: ResourceKind, news: Mapping[str, Any], name: str = "") -> list[tuple[str, str]]:
    """(property, reason) of each input the 6.11.1 schema refuses, as the bridge reports them at Check.

    terraform-plugin-sdk v2 validates the configuration (helper/schema/schema.go, schemaMap.validate:
    ExactlyOneOf, AtLeastOneOf, Required, computed-only, RequiredWith, then each ValidateFunc on known values,
    and "Invalid or unknown key"), with the rules of named_location_resource.go and
    conditional_access_policy_resource.go (``ResourceKind.rules``). pulumi-terraform-bridge turns each diagnostic into a
    CheckFailure (pkg/tfbridge/adapt_check_failures.go, parseCheckError: "summary. detail"; check_failures.go,
    NewCheckFailure: "<reason>. Examine values at '<resource name>.<property path>'.", with no Property set),
    the path in Pulumi names with MaxItems=1 blocks flattened (CheckFailurePath: ``conditions.clientAppTypes[1]``).
    Unknown values are not judged."""
    failures: list[tuple[str, str]] = []
    walk = _Validation(kind, news, name or "<unnamed>", failures)
    walk.object(kind.fields, news, tf_prefix="", value_prefix="")
    return failures


@dataclass
class _Validation:
    kind: ResourceKind
    news: Mapping[str, Any]
    name: str
    failures: list[tuple[str, str]]

    def fail(self, value_path: str, summary: str, detail: str = "") -> None:
        reason = f"{summary}. {detail}" if detail else summary
        self.failures.append(("", f"{reason}. Examine values at '{self.name}.{value_path}'."))

    def object(self, fields: Mapping[str, Prop], value: Mapping[str, Any], tf_prefix: str, value_prefix: str) -> None:
        for field_name, prop in sorted(fields.items(), key=lambda item: tf_name(item[0])):
            self.attribute(field_name, prop, value.get(field_name), tf_prefix, value_prefix)
        for key in value:
            if str(key).startswith("__") or key in fields:
                continue
            self.fail(value_prefix + str(key), "Invalid or unknown key")

    def attribute(self, field_name: str, prop: Prop, item: Any, tf_prefix: str, value_prefix: str) -> None:
        key, value_path = tf_prefix + tf_name(field_name), value_prefix + field_name
        rule = self.kind.rules.get(re.sub(r"\[\d+\]", "", value_path), Rule())
        if rule.exactly_one_of and (problem := self._exactly_one(key, rule.exactly_one_of)):
            self.fail(value_path, "Invalid combination of arguments", problem)
            return
        if rule.at_least_one_of and not any(self._given(k)[0] for k in {*rule.at_least_one_of, key}):
            keys = ",".join(sorted({*rule.at_least_one_of, key}))
            self.fail(value_path, "Missing required argument", f"{json.dumps(key)}: one of `{keys}` must be specified")
            return
        if item is None:
            if prop.required:
                detail = f"The argument {json.dumps(key)} is required, but no definition was found."
                self.fail(value_path, "Missing required argument", detail)
            return
        if prop.output:
            detail = (
                f"Can't configure a value for {json.dumps(key)}: its value will be decided automatically based on "
                "the result of applying this configuration."
            )
            self.fail(value_path, "Value for unconfigurable attribute", detail)
            return
        if rule.required_with and not all(self._given(k)[0] for k in {*rule.required_with, key}):
            keys = ",".join(sorted({*rule.required_with, key}))
            self.fail(value_path, "Missing required argument", f"{json.dumps(key)}: all of `{keys}` must be specified")
            return
        if contains_unknown(item):
            return
        self.value(prop, rule, item, key, value_path)

    def value(self, prop: Prop, rule: Rule, item: Any, key: str, value_path: str) -> None:
        if prop.kind == "block" and isinstance(item, Mapping):
            self.object(prop.fields, item, f"{key}.0.", f"{value_path}.")
        elif prop.kind == "blocks" and isinstance(item, list):
            for index, element in enumerate(item):
                if isinstance(element, Mapping):
                    self.object(prop.fields, element, f"{key}.{index}.", f"{value_path}[{index}].")
        elif prop.kind == "strings" and isinstance(item, list):
            for index, element in enumerate(item):
                for error in rule.validate(element, f"{key}.{index}") if rule.validate else []:
                    self.fail(f"{value_path}[{index}]", error)
        elif rule.validate:
            for error in rule.validate(item, key):
                self.fail(value_path, error)

    def _exactly_one(self, key: str, others: tuple[str, ...]) -> str:
        """validateExactlyOneAttribute's error for ``key``, or "" (an unknown value counts as neither)."""
        keys = sorted({*others, key})
        given = [self._given(k) for k in keys]
        specified = [k for k, (present, unknown) in zip(keys, given, strict=True) if present and not unknown]
        if not specified and not any(unknown for _, unknown in given):
            return f"{json.dumps(key)}: one of `{','.join(keys)}` must be specified"
        if len(specified) > 1:
            return (
                f"{json.dumps(key)}: only one of `{','.join(keys)}` can be specified, "
                f"but `{','.join(specified)}` were specified."
            )
        return ""

    def _given(self, key: str) -> tuple[bool, bool]:
        """(set, unknown) for a Terraform key such as ``conditions.0.users.0.included_groups``
        (ResourceConfig.Get / IsComputed): MaxItems=1 blocks are objects here, so their ``.0`` is skipped."""
        fields: Mapping[str, Prop] = self.kind.fields
        value: Any = self.news
        for part in key.split("."):
            if part.isdigit():
                continue
            if is_unknown(value):
                return True, True
            by_tf = {tf_name(name): name for name in fields}
            name = by_tf.get(part)
            if name is None or not isinstance(value, Mapping):
                return False, False
            value, fields = value.get(name), fields[name].fields
        return value is not None, is_unknown(value)


def _empty(prop: Prop, value: Any, *, count_computed: bool = False) -> bool:
    """terraform-plugin-sdk v2's zero value: unset, null, "", false, 0, [], or a block of such.

    Inside blocks, Optional+Computed fields only count with ``count_computed`` (a value the program set);
    otherwise they are values the server filled in, which an unset input never contradicts.
    """
    if value is None:
        return True
    if is_unknown(value):
        return False
    if prop.kind == "block":
        if not isinstance(value, Mapping):
            return False
        return all(
            _empty(sub, value.get(name), count_computed=count_computed)
            for name, sub in prop.fields.items()
            if not sub.output and (count_computed or not sub.computed)
        )
    if prop.kind in ("strings", "blocks"):
        return isinstance(value, list) and not value
    if prop.kind == "bool":
        return value is False
    if prop.kind == "int":
        return value == 0 and not isinstance(value, bool)
    return value == ""


DiffKind = provider_pb2.PropertyDiff.Kind
if TYPE_CHECKING:
    DiffKindValue: TypeAlias = (
        provider_pb2.PropertyDiff.Kind.ValueType
    )  # the stubs' enum value type (not a runtime attribute)


def _diff_value(prop: Prop, old: Any, new: Any, path: str, out: dict[str, DiffKindValue]) -> None:
    """One property of prior state against the plan, as the bridge's detailed diff reports it
    (pulumi-terraform-bridge pkg/tfbridge/detailed_diff.go, makePropDiff): blocks field by field, lists
    element by element (``a.b[1]``), scalars whole; unset and zero values are equal (SDK v2)."""
    if is_unknown(new):
        out[path] = DiffKind.ADD if _empty(prop, old) else DiffKind.UPDATE
        return
    if prop.kind == "block":
        _diff_block(prop, old, new, path, out)
        return
    old_empty, new_empty = _empty(prop, old), _empty(prop, new)
    if old_empty and new_empty:
        return
    if prop.kind in ("strings", "blocks") and isinstance(old, list) and isinstance(new, list):
        _diff_list(prop, old, new, path, out)
    elif old_empty or new_empty:
        out[path] = DiffKind.ADD if old_empty else DiffKind.DELETE  # makeShortCircuitDiff
    elif old != new:
        out[path] = DiffKind.UPDATE


def _diff_block(prop: Prop, old: Any, new: Any, path: str, out: dict[str, DiffKindValue]) -> None:
    """A MaxItems=1 block. terraform-plugin-sdk v2 diffs its count (``session_controls.#``, schemaMap.diffList
    in helper/schema/schema.go): a block the plan drops is a change even when it only holds values the
    server computed (flattenConditionalAccessSessionControls fills signInFrequencyInterval and
    signInFrequencyAuthenticationType from whatever Graph holds), and a block it adds is one unless the
    field's DiffSuppressFunc hides it (``suppress_empty_add``)."""
    old_map = old if isinstance(old, Mapping) else None
    new_map = new if isinstance(new, Mapping) else None
    if new_map is None:
        if old_map is not None:
            out[path] = DiffKind.DELETE
    elif old_map is None:
        if not (prop.suppress_empty_add and _empty(prop, new_map, count_computed=True)):
            out[path] = DiffKind.ADD
    else:
        _diff_fields(prop.fields, old_map, new_map, f"{path}.", out)


def _diff_list(prop: Prop, old: list[Any], new: list[Any], path: str, out: dict[str, DiffKindValue]) -> None:
    """makeListDiff: a list of strings through makeListAttributeDiff (an edit script: an element removed is
    DELETE at its old index, one inserted ADD at its new index, both at one index UPDATE; an unknown element
    equals nothing); a list of blocks index by index."""
    if prop.kind == "strings":
        for change, index in _edit_script(old, new):
            key = f"{path}[{index}]"
            out[key] = DiffKind.UPDATE if key in out else change
        return
    element = Prop("block", fields=prop.fields)
    for index in range(max(len(old), len(new))):
        old_item = old[index] if index < len(old) else None
        new_item = new[index] if index < len(new) else None
        _diff_block(element, old_item, new_item, f"{path}[{index}]", out)


def _edit_script(old: Sequence[Any], new: Sequence[Any]) -> list[tuple[DiffKindValue, int]]:
    """The removals (old index) and insertions (new index) of a shortest edit script: a longest common
    subsequence, unknown values matching nothing."""

    def same(a: Any, b: Any) -> bool:
        return not is_unknown(b) and a == b

    lcs = [[0] * (len(new) + 1) for _ in range(len(old) + 1)]
    for i in range(len(old) - 1, -1, -1):
        for j in range(len(new) - 1, -1, -1):
            lcs[i][j] = lcs[i + 1][j + 1] + 1 if same(old[i], new[j]) else max(lcs[i + 1][j], lcs[i][j + 1])
    edits: list[tuple[DiffKindValue, int]] = []
    i = j = 0
    while i < len(old) or j < len(new):
        if i < len(old) and j < len(new) and same(old[i], new[j]):
            i, j = i + 1, j + 1
        elif j < len(new) and (i == len(old) or lcs[i][j + 1] >= lcs[i + 1][j]):
            edits.append((DiffKind.ADD, j))
            j += 1
        else:
            edits.append((DiffKind.DELETE, i))
            i += 1
    return edits


def _diff_fields(fields: Mapping[str, Prop], old: Any, new: Any, prefix: str, out: dict[str, DiffKindValue]) -> None:
    old_map = old if isinstance(old, Mapping) else {}
    new_map = new if isinstance(new, Mapping) else {}
    for name, prop in fields.items():
        if prop.output:
            continue
        new_value = new_map.get(name)
        if prop.computed and new_value is None:
            continue  # Optional+Computed and unset: the plan keeps the prior value
        _diff_value(prop, old_map.get(name), new_value, prefix + name, out)


_REPLACE_KIND: Final[dict[DiffKindValue, DiffKindValue]] = {
    DiffKind.ADD: DiffKind.ADD_REPLACE,
    DiffKind.DELETE: DiffKind.DELETE_REPLACE,
    DiffKind.UPDATE: DiffKind.UPDATE_REPLACE,
}


@dataclass(frozen=True)
class Diff:
    detailed: dict[str, DiffKindValue]  # property path -> PropertyDiff.Kind
    replaces: list[str]

    @property
    def diffs(self) -> list[str]:
        return sorted({path.split(".")[0].split("[")[0] for path in self.detailed})


def diff_resource(
    kind: ResourceKind, olds: Mapping[str, Any], news: Mapping[str, Any], ignore: Sequence[str] = ()
) -> Diff:
    """Prior state (outputs) vs checked inputs, with the bridge's top-level ``replaces``."""
    detailed: dict[str, DiffKindValue] = {}
    _diff_fields(kind.fields, olds, news, "", detailed)
    for path in list(detailed):
        if any(path == ign or path.startswith((f"{ign}.", f"{ign}[")) for ign in ignore):
            del detailed[path]
    # ForceNew on a TF list block fires when the block count changes (0 <-> 1), not on changes inside it.
    replaces = [name for name in kind.force_new_blocks if (olds.get(name) is None) != (news.get(name) is None)]
    for path, change in detailed.items():
        if path.split(".")[0] in replaces:
            detailed[path] = _REPLACE_KIND.get(change, change)
    return Diff(detailed, replaces)


def customize_diff(kind: ResourceKind, olds: Mapping[str, Any], news: Mapping[str, Any]) -> str:
    """conditionalAccessPolicyCustomizeDiff (conditional_access_policy_resource.go), run on every plan: the
    error it returns, or "". Values are the plan's (``diff.Get``): the program's, an unset Optional+Computed
    field its prior value, else its zero value."""
    session = news.get("sessionControls")
    if kind is not POLICY or not isinstance(session, Mapping):
        return ""
    prior = olds.get("sessionControls") if isinstance(olds.get("sessionControls"), Mapping) else {}

    def planned(name: str, zero: Any) -> Any:
        value = session.get(name)
        if value is None and POLICY_FIELDS["sessionControls"].fields[name].computed:
            value = prior.get(name) if isinstance(prior, Mapping) else None
        return zero if value is None or is_unknown(value) else value

    ineffective = (
        not planned("applicationEnforcedRestrictionsEnabled", False)
        and planned("cloudAppSecurityPolicy", "") == ""
        and not planned("disableResilienceDefaults", False)
        and planned("persistentBrowserMode", "") == ""
        and planned("signInFrequency", 0) == 0
        and planned("signInFrequencyAuthenticationType", "") == "primaryAndSecondaryAuthentication"
        and planned("signInFrequencyInterval", "") == "timeBased"
    )
    if news.get("grantControls") is None and ineffective:
        return (
            "when specifying `session_controls` but not `grant_controls`, one of the properties in the "
            "`session_controls` block must be set to an effective value in order for session controls to work"
        )
    if planned("signInFrequencyInterval", "") == "everyTime" and (
        planned("signInFrequency", 0) != 0 or planned("signInFrequencyPeriod", "") != ""
    ):
        return (
            "when `session_controls.sign_in_frequency_interval` is set to `everyTime`, `sign_in_frequency` and "
            "`sign_in_frequency_period` are not valid"
        )
    return ""


def planned_outputs(fields: Mapping[str, Prop], inputs: Any, prior: Any) -> dict[str, Any]:
    """The outputs a Terraform plan shows: inputs as given, computed values prior or unknown, unset values null."""
    given = inputs if isinstance(inputs, Mapping) else {}
    before = prior if isinstance(prior, Mapping) else {}
    out: dict[str, Any] = {}
    for name, prop in fields.items():
        value, old = given.get(name), before.get(name)
        if prop.output:
            out[name] = old if old is not None else UNKNOWN
        elif is_unknown(value):
            out[name] = UNKNOWN
        elif value is None:
            out[name] = (old if old is not None else UNKNOWN) if prop.computed else None
        elif prop.kind == "block" and isinstance(value, Mapping):
            out[name] = planned_outputs(prop.fields, value, old)
        elif prop.kind == "blocks" and isinstance(value, list):
            olds = old if isinstance(old, list) else []
            out[name] = [
                planned_outputs(prop.fields, item, olds[index] if index < len(olds) else None)
                if isinstance(item, Mapping)
                else item
                for index, item in enumerate(value)
            ]
        else:
            out[name] = value
    return out


def extract_inputs(fields: Mapping[str, Prop], outputs: Any, old_inputs: Any) -> dict[str, Any]:
    """Inputs for Read's answer: the new outputs' input properties, shaped like the old inputs where they were empty."""
    outs = outputs if isinstance(outputs, Mapping) else {}
    olds = old_inputs if isinstance(old_inputs, Mapping) else None
    result: dict[str, Any] = {}
    for name, prop in fields.items():
        if prop.output:
            continue
        value = outs.get(name)
        had_old = olds is not None and name in olds
        old = olds.get(name) if olds is not None else None
        if _empty(prop, value, count_computed=True):
            if had_old:
                result[name] = old if _empty(prop, old) else value
        elif prop.computed and olds is not None and not had_old:
            continue  # a value the server filled in, not one the program set
        elif prop.kind == "block":
            result[name] = extract_inputs(prop.fields, value, old)
        elif prop.kind == "blocks" and isinstance(value, list):
            old_items = old if isinstance(old, list) else []
            result[name] = [
                extract_inputs(prop.fields, item, old_items[index] if index < len(old_items) else None)
                for index, item in enumerate(value)
            ]
        else:
            result[name] = value
    return result


# ---------------------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------------------


@dataclass
class ProviderConfig:
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SignIn:
    """Whom the provider signs in as: the tenant, and a client secret or (both None) the credential chain."""

    tenant: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    scope: str

    def token(self) -> str:
        return credentials.access_token(
            self.tenant, self.scope, client_id=self.client_id, client_secret=self.client_secret
        )

    def sign_in(self) -> None:
        """What Configure does (``configure_failure``): a client secret is sent to the token endpoint as
        go-azure-sdk's ClientSecretAuthorizer.Token sends it (sdk/auth/client_secret_authorizer.go: one form
        POST, client_credentials grant); any other credential goes through service_clients.credentials."""
        if self.client_id and self.client_secret:
            credentials.client_secret_sign_in(self.tenant, self.scope, self.client_id, self.client_secret)
        else:
            self.token()


def sign_in_of(config: ProviderConfig) -> SignIn:
    """Provider config first, then ARM_* (as upstream's getTenantId/getClientId/getClientSecret read them),
    then service_clients.credentials' chain (AZURE_*, workload identity, the Azure CLI)."""
    tenant = config.tenant_id or os.environ.get("ARM_TENANT_ID") or os.environ.get("AZURE_TENANT_ID")
    if not tenant:
        raise StandInError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "no tenant: set azuread:tenantId (provider config), ARM_TENANT_ID or AZURE_TENANT_ID",
        )
    client_id = config.client_id or os.environ.get("ARM_CLIENT_ID")
    client_secret = config.client_secret or os.environ.get("ARM_CLIENT_SECRET")
    if not (client_id and client_secret):
        client_id = client_secret = None  # service_clients.credentials falls back to AZURE_* / workload identity / CLI
    return SignIn(tenant, client_id, client_secret, os.environ.get(GRAPH_SCOPE_ENV) or DEFAULT_GRAPH_SCOPE)


def configure_failure(exc: credentials.CredentialError) -> str:
    """What the real provider's Configure answers when it cannot get a token, in the bridge's format.

    terraform-provider-azuread v3.9.0 signs in at Configure: internal/provider/provider.go, providerConfigure
    → buildClient → internal/clients/builder.go, ClientBuilder.Build ("building client: %+v") →
    internal/clients/client.go, Client.build, which acquires a token upfront ("unable to obtain access token:
    %v"). For a client secret the token request is go-azure-sdk's sdk/auth/client_credentials.go,
    clientCredentialsToken: "clientCredentialsToken: received HTTP status %d with response: %s". The
    diagnostic goes through pulumi-terraform-bridge pkg/tfshim/sdk-v2/diagnostics.go, errors() (go-multierror's
    "1 error occurred:" list). Another credential (workload identity, the CLI) fails with
    service_clients.credentials' own account of the chain after the same prefix."""
    if exc.token_status is not None:
        reason = f"clientCredentialsToken: received HTTP status {exc.token_status} with response: {exc.token_response}"
    else:
        reason = str(exc)
    return DataSourceError(f"building client: unable to obtain access token: {reason}").bridged()


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    """A gRPC status with rich details (what grpcio-status's ``rpc_status.to_status`` builds)."""


def _name_of(request: Any) -> str:
    name = getattr(request, "name", "")
    urn = getattr(request, "urn", "")
    return name or (urn.rsplit("::", 1)[-1] if urn else "<unnamed>")


def _type_of(request: Any) -> str:
    token = getattr(request, "type", "")
    urn = getattr(request, "urn", "")
    if not token and urn.count("::") >= 3:
        token = urn.split("::")[2].split("$")[-1]
    return str(token)


# -- the data sources the program reads (pulumi-azuread functions), read-only ---------------------------


class DataSourceError(LookupError):
    """One error diagnostic of a data source read, as upstream builds it (internal/helpers/tf/errors.go,
    ErrorDiagF and ErrorDiagPathF of terraform-provider-azuread v3.9.0): a summary, the error that caused
    it as detail, and the attribute path it is about."""

    def __init__(self, summary: str, *, detail: str = "", attribute: str = "") -> None:
        super().__init__(summary)
        self.summary, self.detail, self.attribute = summary, detail, attribute

    def bridged(self) -> str:
        """The text the bridge sends for it (pulumi-terraform-bridge: pkg/tfshim/sdk-v2/diagnostics.go,
        errors(), collects error diagnostics with go-multierror, whose ListFormatFunc writes
        "1 error occurred:\n\t* %s\n\n"; pkg/tfshim/diagnostics/error.go, ValidationError.Error(),
        writes "[path] summary: detail")."""
        text = f"{self.summary}: {self.detail}" if self.detail else self.summary
        if self.attribute:
            text = f"[{self.attribute}] {text}"
        return f"1 error occurred:\n\t* {text}\n\n"


def _go_quote(value: str) -> str:
    """Go's %q for the names we look up (printable text): double quotes, backslash escapes."""
    return json.dumps(value, ensure_ascii=False)


def _odata_quote(value: str) -> str:
    """go-azure-sdk's odata.EscapeSingleQuote (sdk/odata/query.go): each ' doubled."""
    return value.replace("'", "''")


def sdk_error(exc: GraphError) -> str:
    """The error go-azure-sdk's client returns for a Graph error answer (sdk/client/client.go, Execute:
    "unexpected status %s with %s", the status as "400 (400 Bad Request)", then "error: " and the OData
    error, sdk/odata/errors.go Error.String(): code and message joined by ": ")."""
    try:
        phrase = http.HTTPStatus(exc.status).phrase
    except ValueError:
        phrase = ""
    status = f"{exc.status} ({exc.status} {phrase})" if phrase else str(exc.status)
    odata = ": ".join(part for part in (exc.code, exc.graph_message) if part)
    return f"unexpected status {status} with error: {odata}" if odata else f"unexpected status {status}"


def _go_id(kind: str, object_id: str) -> str:
    """A go-azure-sdk msgraph resource id printed with %s (common-types/stable/id_*.go, String())."""
    return f'{kind} ({kind}: "{object_id}")'


def _beta(graph: GraphClient, path: str) -> str:
    """The beta URL of a path (GraphClient speaks v1.0; the data sources read some things through beta)."""
    return f"{graph.base_url}/beta/{path.lstrip('/')}"


def _ids(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(item.get("id")) for item in objects]


def get_service_principal(graph: GraphClient, args: Mapping[str, Any]) -> dict[str, Any]:
    """data.azuread_service_principal (terraform-provider-azuread v3.9.0,
    internal/services/serviceprincipals/service_principal_data_source.go, servicePrincipalDataSourceRead):
    by object_id, GET /servicePrincipals/{id}; by display_name or client_id, GET /servicePrincipals with
    `$filter=displayName eq '...'` / `appId eq '...'` (quotes doubled, odata.EscapeSingleQuote), then the first
    whose appId matches case-insensitively; then GET beta /servicePrincipals/{id}?$select=samlMetadataUrl.
    The id is `stable.NewServicePrincipalID(id).ID()`, ``/servicePrincipals/{id}``."""
    object_id, display_name = str(args.get("objectId") or ""), str(args.get("displayName") or "")
    client_id = str(args.get("clientId") or "")
    sp: Mapping[str, Any] | None = None
    if object_id:
        try:
            sp = graph.get(f"/servicePrincipals/{quote(object_id)}")
        except GraphError as exc:
            what = _go_id("Service Principal", object_id)
            if exc.status == 404:
                raise DataSourceError(f"{what} was not found", attribute="object_id") from None
            raise DataSourceError(f"Retrieving {what}", detail=sdk_error(exc), attribute="object_id") from None
    else:
        by, wanted = ("displayName", display_name) if display_name else ("appId", client_id)
        found_filter = f"{by} eq '{_odata_quote(wanted)}'"
        try:
            found = graph.list_all("/servicePrincipals", {"$filter": found_filter})
        except GraphError as exc:
            raise DataSourceError(
                f"Listing service principals for filter {_go_quote(found_filter)}", detail=sdk_error(exc)
            ) from None
        if display_name and not found:
            detail = f"no service principals found matching filter: {_go_quote(found_filter)}"
            raise DataSourceError("Service principal not found", detail=detail)
        if display_name and len(found) > 1:
            detail = f"found multiple service principals matching filter: {_go_quote(found_filter)}"
            raise DataSourceError("Multiple service principals found", detail=detail)
        sp = next((item for item in found if str(item.get(by, "")).lower() == wanted.lower()), None)
    if sp is None:
        raise DataSourceError("No service principal found", detail="no service principal found")
    sp_id = str(sp["id"])
    try:
        beta = graph.get(_beta(graph, f"/servicePrincipals/{sp_id}"), {"$select": "samlMetadataUrl"})
    except GraphError as exc:
        what = _go_id("Service Principal", sp_id)
        raise DataSourceError(f"Retrieving {what} (beta API)", detail=sdk_error(exc)) from None
    return {
        "id": f"/servicePrincipals/{sp_id}",
        "objectId": sp_id,
        "clientId": sp.get("appId") or "",
        "displayName": sp.get("displayName") or "",
        "applicationTenantId": sp.get("appOwnerOrganizationId") or "",
        "accountEnabled": bool(sp.get("accountEnabled")),
        "samlMetadataUrl": beta.get("samlMetadataUrl") or "",
        "type": sp.get("servicePrincipalType") or "",
    }


# userDataSourceRead's $select (user_data_source.go), in its order.
USER_SELECT: Final = (
    "accountEnabled,ageGroup,businessPhones,city,companyName,consentProvidedForMinor,country,creationType,"
    "department,displayName,employeeHireDate,employeeId,employeeOrgData,employeeType,externalUserState,"
    "faxNumber,givenName,id,imAddresses,jobTitle,mail,mailNickname,mobilePhone,officeLocation,"
    "onPremisesDistinguishedName,onPremisesDomainName,onPremisesImmutableId,onPremisesSamAccountName,"
    "onPremisesSecurityIdentifier,onPremisesSyncEnabled,onPremisesUserPrincipalName,otherMails,postalCode,"
    "preferredLanguage,proxyAddresses,showInAddressList,state,streetAddress,surname,usageLocation,"
    "userPrincipalName,userType"
)


def get_user(graph: GraphClient, args: Mapping[str, Any]) -> dict[str, Any]:
    """data.azuread_user by user_principal_name (terraform-provider-azuread v3.9.0,
    internal/services/users/user_data_source.go, userDataSourceRead): GET /users with
    `$filter=userPrincipalName eq '...'` (quotes doubled, odata.EscapeSingleQuote); one match or upstream's
    errors; then GET /users/{id} with upstream's $select (``USER_SELECT``) and GET /users/{id}/manager
    (404: no manager). By object_id: GET /users/{id} alone first. The id is `stable.NewUserID(id).ID()`,
    ``/users/{id}``; ``objectId`` is the bare GUID."""
    upn, object_id = str(args.get("userPrincipalName") or ""), str(args.get("objectId") or "")
    if upn:
        try:
            found = graph.list_all("/users", {"$filter": f"userPrincipalName eq '{_odata_quote(upn)}'"})
        except GraphError as exc:
            raise DataSourceError(f"Finding user with UPN: {_go_quote(upn)}", detail=sdk_error(exc)) from None
        if len(found) > 1:
            summary = f"More than one user found with UPN: {_go_quote(upn)}"
            raise DataSourceError(summary, attribute="user_principal_name")
        if not found:
            raise DataSourceError(f"User with UPN {_go_quote(upn)} was not found", attribute="user_principal_name")
        object_id = str(found[0]["id"])
    elif object_id:
        try:
            object_id = str(graph.get(f"/users/{quote(object_id)}")["id"])
        except GraphError as exc:
            if exc.status == 404:
                raise DataSourceError(
                    f"User not found with object ID: {_go_quote(object_id)}", attribute="object_id"
                ) from None
            raise DataSourceError(
                f"Retrieving user with object ID: {_go_quote(object_id)}", detail=sdk_error(exc)
            ) from None
    else:
        raise DataSourceError(
            "One of `object_id`, `user_principal_name`, `mail_nickname` or `employee_id` must be supplied"
        )
    what = _go_id("User", object_id)
    try:
        user = graph.get(f"/users/{object_id}", {"$select": USER_SELECT})
    except GraphError as exc:
        raise DataSourceError(f"Retrieving {what}", detail=sdk_error(exc)) from None
    try:
        manager_id = str(graph.get(f"/users/{object_id}/manager").get("id") or "")
    except GraphError as exc:
        if exc.status != 404:
            raise DataSourceError(f"Could not retrieve manager for {what}", detail=sdk_error(exc)) from None
        manager_id = ""
    return {
        "id": f"/users/{object_id}",
        "objectId": object_id,
        "userPrincipalName": user.get("userPrincipalName") or "",
        "displayName": user.get("displayName") or "",
        "accountEnabled": bool(user.get("accountEnabled")),
        "mail": user.get("mail") or "",
        "mailNickname": user.get("mailNickname") or "",
        "onpremisesSyncEnabled": bool(user.get("onPremisesSyncEnabled")),
        "userType": user.get("userType") or "",
        "managerId": manager_id,
    }


def get_group(graph: GraphClient, args: Mapping[str, Any]) -> dict[str, Any]:
    """data.azuread_group by display_name (terraform-provider-azuread v3.9.0,
    internal/services/groups/group_data_source.go, groupDataSourceRead), through beta (GroupClientBeta):
    GET beta /groups with `$filter=displayName eq '%s'` built with fmt.Sprintf and *no* quote escaping, so a
    name with an apostrophe is a malformed filter that Graph refuses (emulators/graph.py,
    filter_syntax_error); one match or upstream's errors; for a Microsoft 365 group the extra fields
    (groups.go, groupGetAdditional; 404 ignored); then the members (or transitiveMembers with
    include_transitive_members) and the owners listed. The id is `stable.NewGroupID(id).ID()`,
    ``/groups/{id}``, and upstream's later messages quote it (d.Id()) as the "object ID"."""
    name = str(args.get("displayName") or "")
    group_filter = f"displayName eq '{name}'"
    for flag, wire in (("mailEnabled", "mailEnabled"), ("securityEnabled", "securityEnabled")):
        if isinstance(args.get(flag), bool):
            group_filter += f" and {wire} eq {str(args[flag]).lower()}"
    try:
        found = graph.list_all(_beta(graph, "/groups"), {"$filter": group_filter})
    except GraphError as exc:
        which = "No group found matching specified filter" if exc.status == 404 else "Retrieving groups for filter"
        raise DataSourceError(f"{which} ({group_filter})", detail=sdk_error(exc)) from None
    if len(found) != 1:
        which = "More than one group found" if found else "No group found"
        raise DataSourceError(f"{which} matching specified filter ({group_filter})", attribute="display_name")
    group = found[0]
    group_id = str(group["id"])
    resource_id = f"/groups/{group_id}"
    extra: Mapping[str, Any] = {}
    if "Unified" in (group.get("groupTypes") or []):
        select = "allowExternalSenders,autoSubscribeNewMembers,hideFromAddressLists,hideFromOutlookClients"
        try:
            extra = graph.get(_beta(graph, f"/groups/{group_id}"), {"$select": select})
        except GraphError as exc:
            if exc.status != 404:
                raise DataSourceError(
                    f"Could not retrieve group with object ID {_go_quote(resource_id)}",
                    detail=f"retrieving additional fields: {sdk_error(exc)}",
                ) from None
    members_path = "transitiveMembers" if args.get("includeTransitiveMembers") else "members"
    members_what = "transitive group members" if members_path == "transitiveMembers" else "group members"
    try:
        members = graph.list_all(_beta(graph, f"/groups/{group_id}/{members_path}"))
    except GraphError as exc:
        raise DataSourceError(
            f"Could not retrieve {members_what} for group with object ID: {_go_quote(resource_id)}",
            detail=sdk_error(exc),
        ) from None
    try:
        owners = graph.list_all(_beta(graph, f"/groups/{group_id}/owners"))
    except GraphError as exc:
        raise DataSourceError(
            f"Could not retrieve group owners for group with object ID: {_go_quote(resource_id)}",
            detail=sdk_error(exc),
        ) from None
    return {
        "id": resource_id,
        "objectId": group_id,
        "displayName": group.get("displayName") or "",
        "description": group.get("description") or "",
        "securityEnabled": bool(group.get("securityEnabled")),
        "mailEnabled": bool(group.get("mailEnabled")),
        "assignableToRole": bool(group.get("isAssignableToRole")),
        "types": list(group.get("groupTypes") or []),
        "members": _ids(members),
        "owners": _ids(owners),
        "externalSendersAllowed": bool(extra.get("allowExternalSenders")),
        "autoSubscribeNewMembers": bool(extra.get("autoSubscribeNewMembers")),
        "hideFromAddressLists": bool(extra.get("hideFromAddressLists")),
        "hideFromOutlookClients": bool(extra.get("hideFromOutlookClients")),
    }


LOOKUPS: Final[Mapping[str, Callable[[GraphClient, Mapping[str, Any]], dict[str, Any]]]] = {
    "azuread:index/getServicePrincipal:getServicePrincipal": get_service_principal,
    "azuread:index/getUser:getUser": get_user,
    "azuread:index/getGroup:getGroup": get_group,
}


class AzureADStandIn(provider_pb2_grpc.ResourceProviderServicer):
    """The ResourceProvider service; see the module docstring for what it does and does not do."""

    def __init__(self, waiter: Waiter | None = None) -> None:
        self.config = ProviderConfig()
        self._lock = threading.Lock()
        self.waiter = waiter or Waiter(WaitTiming.from_env())

    # -- plugin and provider configuration --------------------------------------------------------

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=PLUGIN_VERSION)

    def Handshake(
        self, request: provider_pb2.ProviderHandshakeRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ProviderHandshakeResponse:
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def CheckConfig(
        self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> provider_pb2.CheckResponse:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(
        self, request: provider_pb2.ConfigureRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ConfigureResponse:
        args = reveal(from_struct(request.args)) if request.HasField("args") else {}
        variables = dict(request.variables)

        def pick(key: str) -> str | None:
            value = args.get(key)
            if value is None or value == "" or is_unknown(value):
                value = variables.get(f"azuread:config:{key}") or variables.get(f"azuread:{key}")
            return str(value) if value not in (None, "") and not is_unknown(value) else None

        config = ProviderConfig(pick("tenantId"), pick("clientId"), pick("clientSecret"))
        with self._lock:
            self.config = config
        log.debug(
            "configured: tenant=%s client=%s secret=%s",
            config.tenant_id,
            config.client_id,
            "set" if config.client_secret else "unset",
        )
        try:
            sign_in_of(config).sign_in()
        except StandInError as exc:
            self._abort(context, exc.code, exc.message)
        except credentials.CredentialError as exc:
            self._abort(context, grpc.StatusCode.UNKNOWN, configure_failure(exc))
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    def Invoke(self, request: provider_pb2.InvokeRequest, context: grpc.ServicerContext) -> provider_pb2.InvokeResponse:
        lookup = LOOKUPS.get(request.tok)
        if lookup is None:
            served = ", ".join(LOOKUPS)
            self._abort(
                context,
                grpc.StatusCode.UNIMPLEMENTED,
                f"the azuread stand-in implements only the functions {served} (asked for {request.tok})",
            )
        args = reveal(from_struct(request.args)) if request.HasField("args") else {}
        try:
            with self._graph() as graph:
                result = lookup(graph, args)
        except (StandInError, GraphError, LookupError, credentials.CredentialError) as exc:
            message = exc.message if isinstance(exc, StandInError) else str(exc)
            if isinstance(exc, DataSourceError):
                message = exc.bridged()
            # pkg/tfbridge/provider.go, Invoke: errors.Wrapf(err, "invoking %s", tok)
            self._abort(context, grpc.StatusCode.UNKNOWN, f"invoking {request.tok}: {message}")
        return provider_pb2.InvokeResponse(**{"return": to_struct(result)})

    # -- resources ----------------------------------------------------------------------------------

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> provider_pb2.CheckResponse:
        with self._rpc(context, "checking", request) as kind:
            failures = check_failures(kind, reveal(from_struct(request.news)), _name_of(request))
            return provider_pb2.CheckResponse(
                inputs=request.news,
                failures=[provider_pb2.CheckFailure(property=path, reason=reason) for path, reason in failures],
            )

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        with self._rpc(context, "diffing", request) as kind:
            olds, news = reveal(from_struct(request.olds)), reveal(from_struct(request.news))
            self._customize_diff(kind, olds, news)
            diff = diff_resource(kind, olds, news, list(request.ignoreChanges))
            return provider_pb2.DiffResponse(
                changes=provider_pb2.DiffResponse.DIFF_SOME if diff.detailed else provider_pb2.DiffResponse.DIFF_NONE,
                diffs=diff.diffs,
                replaces=diff.replaces,
                detailedDiff={path: provider_pb2.PropertyDiff(kind=change) for path, change in diff.detailed.items()},
                hasDetailedDiff=True,
                deleteBeforeReplace=False,
            )

    def Create(self, request: provider_pb2.CreateRequest, context: grpc.ServicerContext) -> provider_pb2.CreateResponse:
        """namedLocationResourceCreate (IP) / conditionalAccessPolicyResourceCreate: POST, the consistency wait,
        then ``d.SetId`` and a Read. Both set the id only after the wait: a wait that fails records nothing
        (the object is orphaned in Graph); a Read that fails after it leaves a partial resource with the id."""
        with self._rpc(context, "creating", request) as kind:
            inputs = reveal(from_struct(request.properties))
            self._customize_diff(kind, {}, inputs)  # the bridge's Create plans first
            if request.preview:
                return provider_pb2.CreateResponse(
                    id="", properties=to_struct({"id": UNKNOWN, **planned_outputs(kind.fields, inputs, None)})
                )
            self._require_known(inputs, "create")
            body = self._render(kind, inputs)
            deadline = self.waiter.deadline(request.timeout)
            with self._graph() as graph:
                created = graph.post(kind.graph_path, body)
                object_id = str(created.get("id") or "")
                if not object_id:
                    raise StandInError(grpc.StatusCode.UNKNOWN, "Graph answered the create without an object id")
                path_id = kind.path_id(object_id)
                try:
                    if kind is NAMED_LOCATION:
                        # WaitForUpdateDelayStart(ctx, 15 s, ipNamedLocationWait(...)): any read error fails it.
                        refresh = ip_location_matches(graph, kind, object_id, inputs.get("ip"))
                        self.waiter.wait_for(refresh, deadline=deadline, delay_s=NAMED_LOCATION_FIRST_WAIT_S)
                    else:
                        self.waiter.wait_for(policy_exists(graph, kind, object_id), deadline=deadline)
                except WaitFailed as exc:
                    # d.SetId comes after the wait: no id, so the engine records nothing.
                    raise kind.wait_failed("create", path_id, exc) from None
                obj = self._read_after_create(graph, kind, object_id, inputs, request.properties)
            outputs = outputs_of(kind, obj)
            return provider_pb2.CreateResponse(id=outputs["id"], properties=to_struct(outputs))

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> provider_pb2.ReadResponse:
        with self._rpc(context, "reading", request) as kind:
            if not request.HasField("inputs") and not from_struct(request.properties):
                # An import (the engine sends an empty state and no inputs): upstream's ImporterValidatingResourceId.
                kind.check_import_id(request.id)
            object_id = kind.object_id(request.id)
            with self._graph() as graph:
                obj = self._get(graph, kind, object_id)
            if obj is None:
                return provider_pb2.ReadResponse(id="")  # gone: the engine drops it from state
            outputs = outputs_of(kind, obj)
            old_inputs = reveal(from_struct(request.inputs)) if request.HasField("inputs") else None
            return provider_pb2.ReadResponse(
                id=outputs["id"],
                properties=to_struct(outputs),
                inputs=to_struct(extract_inputs(kind.fields, outputs, old_inputs or None)),
            )

    def Update(self, request: provider_pb2.UpdateRequest, context: grpc.ServicerContext) -> provider_pb2.UpdateResponse:
        """namedLocationResourceUpdate: PATCH, then WaitForUpdate(ipNamedLocationWait).
        conditionalAccessPolicyResourceUpdate: PATCH of the whole policy, then five consecutive reads showing
        its display name and state."""
        with self._rpc(context, "updating", request) as kind:
            olds, news = reveal(from_struct(request.olds)), reveal(from_struct(request.news))
            self._customize_diff(kind, olds, news)  # the bridge's Update plans first
            if request.preview:
                planned = {"id": olds.get("id") or request.id, **planned_outputs(kind.fields, news, olds)}
                return provider_pb2.UpdateResponse(properties=to_struct(planned))
            self._require_known(news, "update")
            object_id = kind.object_id(request.id)
            body = self._render(kind, news)
            if kind is NAMED_LOCATION and olds.get("displayName") == news.get("displayName"):
                body.pop("displayName", None)  # upstream sends display_name only when it changed
            deadline = self.waiter.deadline(request.timeout, kind.update_timeout_s)
            with self._graph() as graph:
                graph.patch(f"{kind.graph_path}/{object_id}", body)
                if kind is NAMED_LOCATION:
                    refresh = ip_location_matches(graph, kind, object_id, news.get("ip"))
                else:
                    refresh = policy_shows(graph, kind, object_id, news)
                try:
                    obj = self.waiter.wait_for(refresh, deadline=deadline)
                except WaitFailed as exc:
                    raise kind.wait_failed("update", request.id, exc) from None
            return provider_pb2.UpdateResponse(properties=to_struct(outputs_of(kind, obj)))

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        """namedLocationResourceDelete: an IP location is first PATCHed untrusted and awaited (Graph refuses to
        delete a trusted one), then DELETE. conditionalAccessPolicyResourceDelete: GET (404: done), DELETE.
        Both then WaitForDeletion: five consecutive 404s."""
        with self._rpc(context, "deleting", request) as kind:
            olds = reveal(from_struct(request.properties))
            object_id = kind.object_id(request.id)
            path = f"{kind.graph_path}/{object_id}"
            deadline = self.waiter.deadline(request.timeout)
            with self._graph() as graph:
                ip = olds.get("ip")
                if kind is NAMED_LOCATION and isinstance(ip, Mapping):
                    if not self._untrust(graph, kind, object_id, olds, ip, deadline):
                        return empty_pb2.Empty()
                elif kind is POLICY and self._get(graph, kind, object_id) is None:
                    return empty_pb2.Empty()
                try:
                    graph.delete(path)
                except GraphError as exc:
                    if exc.status == 404:
                        return empty_pb2.Empty()
                    raise
                try:
                    self._await_gone(graph, kind, object_id, deadline)
                except WaitFailed as exc:
                    raise kind.wait_failed("delete", request.id, exc) from None
            return empty_pb2.Empty()

    # -- helpers ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _rpc(self, context: grpc.ServicerContext, action: str, request: Any) -> Iterator[ResourceKind]:
        token, name = _type_of(request), _name_of(request)
        kind = KINDS.get(token)
        if kind is None:
            served = " and ".join(KINDS)
            self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the azuread stand-in does not serve resource type {token!r} (only {served})",
            )
        assert kind is not None
        try:
            yield kind
        except StandInError as exc:
            self._abort(context, exc.code, f"{action} {token} {name!r}: {exc.message}", exc.init_failed)
        except GraphError as exc:
            self._abort(context, grpc.StatusCode.UNKNOWN, f"{action} {token} {name!r}: {_graph_error_text(exc)}")
        except graph_render.UnsupportedInput as exc:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{action} {token} {name!r}: {exc}")
        except credentials.CredentialError as exc:
            self._abort(context, grpc.StatusCode.UNAUTHENTICATED, f"{action} {token} {name!r}: {exc}")
        except TimeoutError as exc:
            self._abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"{action} {token} {name!r}: {exc}")
        except Exception as exc:  # the engine shows the message; the stand-in keeps serving
            # (No body calls context.abort, whose bare Exception() would otherwise land here.)
            log.exception("unexpected error while %s %s %r", action, token, name)
            self._abort(context, grpc.StatusCode.INTERNAL, f"{action} {token} {name!r}: {type(exc).__name__}: {exc}")

    @staticmethod
    def _abort(
        context: grpc.ServicerContext,
        code: grpc.StatusCode,
        message: str,
        init_failed: provider_pb2.ErrorResourceInitFailed | None = None,
    ) -> NoReturn:
        if init_failed is None:
            context.abort(code, message)
        else:
            detail = any_pb2.Any()
            detail.Pack(init_failed)
            status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
            context.abort_with_status(
                _Status(code, message, (("grpc-status-details-bin", status.SerializeToString()),))
            )
        raise AssertionError("unreachable: context.abort raises")

    @staticmethod
    def _customize_diff(kind: ResourceKind, olds: Mapping[str, Any], news: Mapping[str, Any]) -> None:
        """A CustomizeDiff error fails the plan (pulumi-terraform-bridge Diff: "diffing <urn>: <error>")."""
        if problem := customize_diff(kind, olds, news):
            raise StandInError(grpc.StatusCode.UNKNOWN, problem)

    @staticmethod
    def _require_known(inputs: Mapping[str, Any], operation: str) -> None:
        if contains_unknown(inputs):
            raise StandInError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown input values in a non-preview {operation}")

    @staticmethod
    def _render(kind: ResourceKind, inputs: Mapping[str, Any]) -> dict[str, Any]:
        body = graph_render.render(kind.token, inputs)
        if body is None:  # pragma: no cover - KINDS and graph_render.RENDERERS name the same types
            raise StandInError(grpc.StatusCode.INTERNAL, f"graph_render has no renderer for {kind.token}")
        return body

    @contextlib.contextmanager
    def _graph(self) -> Iterator[GraphClient]:
        base_url = os.environ.get(GRAPH_URL_ENV, "").rstrip("/")
        if not base_url:
            raise StandInError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"${GRAPH_URL_ENV} is not set: the test stand-in only talks to a Graph emulator it is pointed at",
            )
        with self._lock:
            config = self.config
        sign_in = sign_in_of(config)
        with GraphClient(base_url, sign_in.tenant, sign_in.token) as graph:
            yield graph

    @staticmethod
    def _get(graph: GraphClient, kind: ResourceKind, object_id: str) -> dict[str, Any] | None:
        try:
            return graph.get(f"{kind.graph_path}/{object_id}")
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise

    def _read_after_create(
        self, graph: GraphClient, kind: ResourceKind, object_id: str, inputs: Mapping[str, Any], sent: Any
    ) -> dict[str, Any]:
        """The Read that ends a create, after ``d.SetId``: if it fails, the resource is recorded with its id
        and the inputs (SDK v2 keeps the state of a create that set an id and then returned an error)."""
        path_id = kind.path_id(object_id)
        try:
            obj = self._get(graph, kind, object_id)
        except GraphError as exc:
            reason = f"retrieving {path_id}: {_graph_error_text(exc)}"
            raise StandInError(
                grpc.StatusCode.UNKNOWN,
                reason,
                provider_pb2.ErrorResourceInitFailed(
                    id=path_id,
                    properties=to_struct({"id": path_id, **inputs, "objectId": object_id}),
                    reasons=[reason],
                    inputs=sent,
                ),
            ) from None
        if obj is None:  # the Read finds nothing and clears the id: nothing is recorded
            raise StandInError(grpc.StatusCode.UNKNOWN, f"{path_id} was not found after its create")
        return obj

    def _untrust(
        self,
        graph: GraphClient,
        kind: ResourceKind,
        object_id: str,
        olds: Mapping[str, Any],
        ip: Mapping[str, Any],
        deadline: float,
    ) -> bool:
        """namedLocationResourceDelete's first step: PATCH the ranges with isTrusted false, then
        WaitForUpdate(ipNamedLocationTrustedDeleteWait). False when Graph says the location is already gone."""
        ranges = ip.get("ipRanges") or []
        untrust = graph_render.render_named_location(
            {"displayName": olds.get("displayName") or "", "ip": {"ipRanges": ranges, "trusted": False}}
        )
        untrust.pop("displayName")
        path = f"{kind.graph_path}/{object_id}"
        try:
            graph.patch(path, untrust)
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        try:
            self.waiter.wait_for(ip_location_untrusted(graph, kind, object_id), deadline=deadline)
        except WaitFailed as exc:
            message = f"waiting for removal of trusted status on {kind.path_id(object_id)}: {exc}"
            raise StandInError(grpc.StatusCode.UNKNOWN, message) from None
        return True

    def _await_gone(self, graph: GraphClient, kind: ResourceKind, object_id: str, deadline: float) -> None:
        """consistency.WaitForDeletion: five consecutive 404s; any other read error fails the wait."""
        self.waiter.wait_for(object_deleted(graph, kind, object_id), deadline=deadline, target=DELETED)


def _graph_error_text(exc: GraphError) -> str:
    return f"Graph error {exc.code}: {exc.graph_message} (HTTP {exc.status} on {exc.method} {exc.path})"


def _read(graph: GraphClient, kind: ResourceKind, object_id: str) -> dict[str, Any]:
    """One GET inside a wait; upstream's ChangeFuncs wrap a failure as ``retrieving resource: <error>``."""
    try:
        return graph.get(f"{kind.graph_path}/{object_id}")
    except GraphError as exc:
        raise WaitFailed(f"retrieving resource: {_graph_error_text(exc)}") from None


def ip_location_matches(graph: GraphClient, kind: ResourceKind, object_id: str, ip: Any) -> Refresh:
    """ipNamedLocationWait (named_location_resource.go): every read error fails the wait, a 404 included;
    done when the flattened ``ip_ranges`` equal the configured ones (reflect.DeepEqual: same order) and
    ``trusted`` matches."""
    wanted = ip if isinstance(ip, Mapping) else {}

    def refresh() -> tuple[Any, str]:
        obj = _read(graph, kind, object_id)
        if obj.get("@odata.type") != "#microsoft.graph.ipNamedLocation":
            raise WaitFailed("retrieving resource: returned model was not an IPNamedLocation")
        seen = flatten_named_location(obj)["ip"] or {}
        same = seen.get("ipRanges") == list(wanted.get("ipRanges") or []) and bool(seen.get("trusted")) == bool(
            wanted.get("trusted")
        )
        return obj, DONE if same else WAITING

    return refresh


def ip_location_untrusted(graph: GraphClient, kind: ResourceKind, object_id: str) -> Refresh:
    """ipNamedLocationTrustedDeleteWait: done when the location reads as not trusted; read errors fail."""

    def refresh() -> tuple[Any, str]:
        obj = _read(graph, kind, object_id)
        return obj, WAITING if obj.get("isTrusted") else DONE

    return refresh


def policy_exists(graph: GraphClient, kind: ResourceKind, object_id: str) -> Refresh:
    """conditionalAccessPolicyResourceCreate's check: a 404 is "not yet", any other error fails the wait."""

    def refresh() -> tuple[Any, str]:
        try:
            obj = graph.get(f"{kind.graph_path}/{object_id}")
        except GraphError as exc:
            if exc.status == 404:
                return None, WAITING
            raise WaitFailed(f"retrieving resource: {_graph_error_text(exc)}") from None
        return obj, DONE

    return refresh


def policy_shows(graph: GraphClient, kind: ResourceKind, object_id: str, news: Mapping[str, Any]) -> Refresh:
    """conditionalAccessPolicyResourceUpdate's Refresh: any read error fails (returned as is); done when the
    display name and the state read back as configured ("We don't check every property")."""

    def refresh() -> tuple[Any, str]:
        try:
            obj = graph.get(f"{kind.graph_path}/{object_id}")
        except GraphError as exc:
            raise WaitFailed(_graph_error_text(exc)) from None
        same = obj.get("displayName") == news.get("displayName") and obj.get("state") == news.get("state")
        return obj, DONE if same else "Pending"

    return refresh


def object_deleted(graph: GraphClient, kind: ResourceKind, object_id: str) -> Refresh:
    """consistency.WaitForDeletion's ChangeFunc: a 404 is deleted, an object found is waiting, errors fail."""

    def refresh() -> tuple[Any, str]:
        try:
            graph.get(f"{kind.graph_path}/{object_id}")
        except GraphError as exc:
            if exc.status == 404:
                return "stub", DELETED
            raise WaitFailed(f"retrieving resource: {_graph_error_text(exc)}") from None
        return "stub", WAITING

    return refresh


# ---------------------------------------------------------------------------------------------------
# Entry point: python -m tools.standin.azuread_standin [engine address and flags, ignored]
# ---------------------------------------------------------------------------------------------------


AUTHORITY_ENV = "AZUREAD_STANDIN_AUTHORITY"


def serve() -> tuple[grpc.Server, int]:
    try:
        waiter = Waiter(WaitTiming.from_env())
    except ValueError as exc:
        raise SystemExit(f"azuread stand-in: {exc}") from None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="azuread-standin"))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(AzureADStandIn(waiter), server)
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        raise SystemExit("azuread stand-in: could not bind a port on 127.0.0.1")
    server.start()
    return server, port


def main(argv: Sequence[str] | None = None) -> None:
    del argv  # the engine address and any engine flags: nothing to do with them
    # The real provider finds its login endpoint from its own settings (ARM_*, metadata host), apart from
    # the AZURE_* ones the program's Part C client uses: an MSP stack under test has two emulated
    # authorities (Graph's and CIPP's), so the stand-in may be given its own.
    if os.environ.get(AUTHORITY_ENV):
        os.environ["AZURE_AUTHORITY_HOST"] = os.environ[AUTHORITY_ENV]
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get(LOG_LEVEL_ENV, "WARNING").upper(),
        format="azuread-standin: %(levelname)s %(message)s",
    )
    server, port = serve()
    sys.stdout.write(f"{port}\n")  # the only line on stdout: the engine reads the port from it
    sys.stdout.flush()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main(sys.argv[1:])
