"""The one HTTP client for CIPP-API: `/api/ExecApiClient`, its answer shapes, its 403 texts, retries.

CIPP answers logical errors with HTTP 200 and a body (docs/cipp-api.md §2, §9), so every answer is read:
`List` is `{"Results": [...]}` or an empty body when there are no clients, `AddUpdate` succeeds with a
bare array and fails with `{"Results": [...]}`. Those shapes are read here, and only here (`parse_list_body`,
`add_update_problems`, `parse_azure_configuration`, `parse_roles_body`): the rules in cipp_hardening.cipp_api
and cipp_hardening.custom_roles get plain rows and never see an envelope. Framework
refusals are text/plain: 401 from App Service authentication (EasyAuth), 403 from CIPP's access check
(the *calling* client's IP allow-list, role, custom-role limits, or the instance itself; each has its own
text, `explain_denial`), 404 for an unknown endpoint.

CIPP has no rate limits (§9); 5xx, timeouts and dropped connections are retried with exponential
backoff and jitter, 4xx never. A client is created per provider call and closed after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

if TYPE_CHECKING:
    import requests

ENDPOINT = "api/ExecApiClient"
LIST_TENANTS_ENDPOINT = "api/ListTenants"
CUSTOM_ROLE_ENDPOINT = "api/ExecCustomRole"  # CIPP.SuperAdmin.ReadWrite (docs/custom-roles.md)
TIMEOUT = (10.0, 120.0)  # AddUpdate makes several Graph calls on CIPP's side and can take seconds (§13)


# -- the shapes of CIPP's answers (docs/cipp-api.md §2, §9; docs/custom-roles.md) ------------------------
MCP_SETUP_FAILED = "Client saved, but MCP app configuration failed"  # AddUpdate's warning after the row was saved
NO_CUSTOM_ROLES = "No custom roles found"  # ExecCustomRole's placeholder row when the table is empty


class CippResponseError(ValueError):
    """CIPP answered with a body this project cannot read as the documented shape."""


@dataclass(frozen=True)
class AzureConfiguration:
    """GetAzureConfiguration's answer (§6): the applications App Service lets through, and whether it is on."""

    client_ids: frozenset[str]  # lower-cased
    enabled: bool


def parse_list_body(text: str) -> list[dict[str, Any]]:
    """The clients in the body of `GET /api/ExecApiClient?Action=List`.

    §2.1: an empty table gives an *empty* body, not `{"Results": []}`. §10.1 (pre-#472 bug): a stored
    "[]" adds a bare "Any" string to Results, so only objects count as clients.
    """
    if not text.strip():
        return []
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        raise CippResponseError(f"List did not return JSON: {text[:120]!r}") from None
    results = payload.get("Results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise CippResponseError(f"List returned {_shape(payload)}, expected {{'Results': [...]}}")
    return [item for item in results if isinstance(item, dict) and item.get("ClientId")]


def add_update_problems(payload: Any) -> list[str]:
    """Why an HTTP 200 AddUpdate answer is a failure; [] when it succeeded.

    §2.2 step 7: success is a bare array, failure is `{"Results": [...]}`. Inside either, an entry with
    state error failed; a range warning means CIPP dropped an entry and saved the rest (§2.2 step 6),
    which for an allow-list is as bad as failing. The MCP warning is not a dropped entry: it comes after
    the row was saved (`mcp_warnings`), and the caller confirms what was stored through List.
    """
    if isinstance(payload, dict) and "Results" in payload:
        texts = _result_texts(payload["Results"]) or ["no result entries (nothing was saved)"]
        return [f"CIPP reported a failure: {text}" for text in texts]
    if not isinstance(payload, list):
        return [f"unexpected AddUpdate answer: {_shape(payload)}"]
    return [
        f"CIPP reported {entry['state']}: {entry.get('resultText', '')}"
        for entry in payload
        if isinstance(entry, dict) and _state(entry) in ("error", "warning") and not _is_mcp_warning(entry)
    ]


def mcp_warnings(payload: Any) -> list[str]:
    """AddUpdate's "Client saved, but MCP app configuration failed" texts (§2.2 step 5): saved, then warned."""
    entries = payload if isinstance(payload, list) else []
    return [str(entry.get("resultText", "")) for entry in entries if isinstance(entry, dict) and _is_mcp_warning(entry)]


def _state(entry: Mapping[str, Any]) -> str:
    return str(entry.get("state", "")).lower()


def _is_mcp_warning(entry: Mapping[str, Any]) -> bool:
    return _state(entry) == "warning" and str(entry.get("resultText", "")).startswith(MCP_SETUP_FAILED)


def _result_texts(results: Any) -> list[str]:
    entries = results if isinstance(results, list) else [results]
    return [str(e.get("resultText", e)) if isinstance(e, dict) else str(e) for e in entries if e not in (None, "")]


def _shape(payload: Any) -> str:
    text = json.dumps(payload)[:120] if not isinstance(payload, str) else repr(payload[:120])
    return f"{type(payload).__name__} {text}"


def parse_azure_configuration(payload: Any) -> AzureConfiguration:
    """The `Results` of GetAzureConfiguration; CippResponseError with CIPP's own text when it could not read."""
    results = payload.get("Results") if isinstance(payload, dict) else None
    if not isinstance(results, dict):
        raise CippResponseError(f"GetAzureConfiguration returned {_shape(payload)}, expected {{'Results': {{...}}}}")
    enabled = results.get("Enabled")
    if not isinstance(enabled, bool):  # on failure CIPP puts its error text in Enabled (§2.1)
        error = results.get("Error")
        detail = error.get("Message") if isinstance(error, dict) else error
        raise CippResponseError(f"{enabled}" + (f" ({detail})" if detail else ""))
    ids = results.get("ClientIDs")  # null when no client is allowed (authsettingsV2 validation is empty)
    entries = ids if isinstance(ids, list) else [ids] if ids else []
    return AzureConfiguration(frozenset(str(entry).lower() for entry in entries), enabled)


def parse_roles_body(text: str) -> list[dict[str, Any]]:
    """The roles in ExecCustomRole's default answer; [] when CIPP has no custom role (built-ins then unlisted)."""
    try:
        payload = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        raise CippResponseError(f"ExecCustomRole did not return JSON: {text[:120]!r}") from None
    items = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(item, dict) and isinstance(item.get("RowKey"), str) for item in items):
        raise CippResponseError(f"ExecCustomRole returned {json.dumps(payload)[:120]}, expected a list of roles")
    return [dict(item) for item in items if item["RowKey"] != NO_CUSTOM_ROLES]


def role_add_update_problems(payload: Any, name: str) -> list[str]:
    """Why an HTTP 200 ExecCustomRole AddUpdate answer is a failure: success is `{"Results": [texts]}`, failure
    a string."""
    results = payload.get("Results") if isinstance(payload, dict) else None
    if isinstance(results, list):
        return []
    if isinstance(results, str):
        return [f"CIPP reported a failure: {results}"]
    return [f"unexpected AddUpdate answer for role {name}: {json.dumps(payload)[:120]}"]


@dataclass(frozen=True)
class AddUpdateResult:
    entries: list[Any]
    mcp_warnings: list[str]  # the row was saved, then CIPP's MCP app set-up failed (§2.2 step 5)


class CippError(RuntimeError):
    """CIPP refused or failed a call; the message says which and what to check. Never holds a token."""


class CippHttpError(CippError):
    """A non-200 answer."""

    def __init__(self, action: str, status: int, text: str, hint: str = "") -> None:
        self.action, self.status, self.text = action, status, text
        detail = f": {text[:300]}" if text else ""
        super().__init__(f"CIPP-API {action} → HTTP {status}{detail}" + (f". {hint}" if hint else ""))

    @property
    def retryable(self) -> bool:
        return self.status >= 500


class CippAccessDenied(CippHttpError):
    """HTTP 403 from CIPP's access check or the instance; `explain_denial` names which."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, CippHttpError):
        return exc.retryable
    import requests  # only where a request is sent: the offline plan never loads it (BENCHMARKS.md §1)

    return isinstance(exc, requests.Timeout | requests.ConnectionError)


# The texts CIPP throws, in Test-CIPPAccess.ps1 and the HTTP entry point (docs/cipp-api.md §5.5, §9). For an
# API client the IP text is thrown only when its ranges miss the caller's address; the permission
# denials read differently, so each cause can be named.
_DENIALS: tuple[tuple[str, str], ...] = (
    (
        "the API Client does not have the required permission",
        "its own allowed IP ranges exclude this machine's public IP: add this machine's egress IP to the "
        "manager client in CIPP > Integrations > CIPP-API",
    ),
    (
        "Cannot bind argument to parameter 'IPAddress'",
        "CIPP saw no caller IP (no X-Forwarded-For): call the Function App through App Service, not around it",
    ),
    (
        "base role does not have the required permission",
        "its role lacks CIPP.Extension.ReadWrite: give it the editor role or higher, and at least the role of "
        "every client it manages",
    ),
    (
        "has blocked this endpoint",
        "its custom role blocks this endpoint: remove ExecApiClient from the role's blocked endpoints",
    ),
    (
        "you do not have the required permission",
        "its custom role lacks the endpoint's permission (CIPP.Extension.ReadWrite for ExecApiClient)",
    ),
    (
        "the user does not have the required permission",
        "it has no role CIPP can find (no role, or a custom role that does not exist): give it a role",
    ),
    ("Access to this tenant is not allowed", "its custom role's tenant limits exclude the tenant of this call"),
    (
        "Your CIPP subscription has ended",
        "this CIPP instance's subscription has ended: no client can call it until it is renewed",
    ),
    (
        "API calls are not accepted on this function app",
        "cippApi.url is CIPP's offloaded processor Function App, which refuses API calls: use the main one",
    ),
)


def explain_denial(manager_client_id: str, text: str = "") -> str:
    """The cause of a 403, named from CIPP's text; an unknown text is shown as it is."""
    who = f"CIPP refused the manager client {manager_client_id or '(unknown)'}"
    cause = next((reason for marker, reason in _DENIALS if marker.lower() in text.lower()), None)
    if cause is None:
        return f"{who} with a text this project does not know; CIPP's text above says why"
    return f"{who}: {cause}"


def _hint(status: int, manager_client_id: str, text: str = "") -> str:
    if status == 401:
        return (
            "App Service authentication rejected the manager client's token: check cippApi.tenantId and "
            "managerClientId, and that the client is enabled in CIPP and 'Save Azure Configuration' ran since"
        )
    if status == 403:
        return explain_denial(manager_client_id, text)
    if status == 404:
        return "Is cippApi.url the Function App (https://<name>.azurewebsites.net), not the Static Web App?"
    return ""


class CippClient:
    """ExecApiClient on one CIPP instance. Use as a context manager; `sent` counts HTTP requests made."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        *,
        manager_client_id: str = "",
        max_attempts: int = 5,
        wait: wait_base | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.manager_client_id = manager_client_id
        self._token = token
        self._max_attempts = max_attempts
        self._wait = wait or wait_exponential_jitter(initial=1, max=20, jitter=1)
        import requests  # only where a request is sent: the offline plan never loads it (BENCHMARKS.md §1)

        self._session = requests.Session()
        self.sent = 0

    def __enter__(self) -> CippClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._session.close()

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )

    def request(self, action: str, method: str, body: dict[str, Any] | None = None) -> requests.Response:
        return self._retrying()(self._attempt, action, method, body)

    def _attempt(self, action: str, method: str, body: dict[str, Any] | None) -> requests.Response:
        return self._send(action, method, body, f"Bearer {self._token()}")

    def _send(
        self,
        action: str,
        method: str,
        body: dict[str, Any] | None,
        authorization: str,
        endpoint: str = ENDPOINT,
    ) -> requests.Response:
        self.sent += 1
        response = self._session.request(
            method,
            f"{self.base_url}/{endpoint}",
            params={"Action": action} if body is None else None,
            json=body,
            headers={"Authorization": authorization, "Accept": "application/json"},
            timeout=TIMEOUT,
        )
        if response.status_code != 200:
            error = CippAccessDenied if response.status_code == 403 else CippHttpError
            text = response.text.strip()
            raise error(action, response.status_code, text, _hint(response.status_code, self.manager_client_id, text))
        return response

    def list_clients(self) -> list[dict[str, Any]]:
        """Every API client (`GET ?Action=List`); [] when CIPP has none."""
        return self._clients_of(self.request("List", "GET"))

    def _clients_of(self, response: requests.Response) -> list[dict[str, Any]]:
        try:
            return parse_list_body(response.text)
        except CippResponseError as exc:
            raise CippError(f"CIPP-API List at {self.base_url}: {exc}") from None

    def list_then_add_update(
        self, body_for: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> tuple[dict[str, Any], AddUpdateResult]:
        """List, then AddUpdate at once with the body `body_for` builds from that List; (body, result).

        AddUpdate replaces every field and CIPP keeps no version to check (last writer wins, docs/part-c.md
        "The remaining window"), so the read it merges must be the last thing before the write: one token
        for both, fetched first, and nothing but `body_for` in between. A retryable failure of either call
        repeats the pair, so a retried AddUpdate never resends a body built from an older read.
        """
        return self._retrying()(self._list_then_add_update, body_for)

    def _list_then_add_update(
        self, body_for: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> tuple[dict[str, Any], AddUpdateResult]:
        authorization = f"Bearer {self._token()}"
        body = body_for(self._clients_of(self._send("List", "GET", None, authorization)))
        return body, self._add_update_result(body, self._send("AddUpdate", "POST", body, authorization))

    def azure_configuration(self) -> AzureConfiguration:
        """App Service's allowed applications now (`GET ?Action=GetAzureConfiguration`, read-only, §6)."""
        response = self.request("GetAzureConfiguration", "GET")
        try:
            return parse_azure_configuration(response.json())
        except (ValueError, CippResponseError) as exc:
            raise CippError(f"CIPP-API GetAzureConfiguration at {self.base_url}: {exc}") from None

    def add_update(self, body: dict[str, Any]) -> AddUpdateResult:
        """POST an AddUpdate body; raise CippError unless CIPP saved it. The MCP warning comes back, not raised."""
        return self._add_update_result(body, self.request("AddUpdate", "POST", body))

    def _add_update_result(self, body: dict[str, Any], response: requests.Response) -> AddUpdateResult:
        try:
            payload = response.json()
        except ValueError:
            raise CippError(f"CIPP-API AddUpdate answered with non-JSON: {response.text[:200]!r}") from None
        problems = add_update_problems(payload)
        if problems:
            raise CippError(f"CIPP-API AddUpdate for client {body.get('ClientId')}: " + "; ".join(problems))
        return AddUpdateResult(list(payload), mcp_warnings(payload))

    # -- custom roles (ExecCustomRole, docs/custom-roles.md) ---------------------------------------------
    def list_roles(self) -> list[dict[str, Any]]:
        """Every role as ExecCustomRole's default action shows it (the shape AddUpdate takes)."""
        return self._retrying()(self._list_roles, f"Bearer {self._token()}")

    def _list_roles(self, authorization: str) -> list[dict[str, Any]]:
        response = self._send("List", "GET", None, authorization, CUSTOM_ROLE_ENDPOINT)
        try:
            return parse_roles_body(response.text)
        except CippResponseError as exc:
            raise CippError(f"CIPP-API ExecCustomRole at {self.base_url}: {exc}") from None

    def list_then_add_update_role(
        self, body_for: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> tuple[dict[str, Any], Any]:
        """List the roles, then AddUpdate at once with the body `body_for` builds from that list; (body, answer).

        As for API clients (`list_then_add_update`): AddUpdate replaces the role's fields and CIPP keeps no
        version, so the read it merges is the last thing before the write, and a retry repeats the pair.
        """
        return self._retrying()(self._list_then_add_update_role, body_for)

    def _list_then_add_update_role(
        self, body_for: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> tuple[dict[str, Any], Any]:
        authorization = f"Bearer {self._token()}"
        body = body_for(self._list_roles(authorization))
        response = self._send("AddUpdate", "POST", body, authorization, CUSTOM_ROLE_ENDPOINT)
        try:
            payload = response.json()
        except ValueError:
            raise CippError(
                f"CIPP-API ExecCustomRole AddUpdate answered with non-JSON: {response.text[:200]!r}"
            ) from None
        problems = role_add_update_problems(payload, str(body.get("RoleName")))
        if problems:
            raise CippError(
                f"CIPP-API ExecCustomRole AddUpdate for role {body.get('RoleName')}: " + "; ".join(problems)
            )
        return body, payload

    def list_tenants(self) -> Any:
        """The tenants CIPP manages, as CIPP sends them (`GET /api/ListTenants`, read-only, CIPP.Core.Read).

        A failed listing is still HTTP 200, with an error entry in place of the tenants: the caller reads
        the body (cipp_hardening.cipp_tenants). Retried like every other call; a 4xx raises CippHttpError.
        """
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )
        response = retrying(self._get_list_tenants)
        if not response.text.strip():  # an empty list may come back as an empty body, as List's does (§9)
            return []
        try:
            return response.json()
        except ValueError:
            raise CippError(f"CIPP-API ListTenants answered with non-JSON: {response.text[:200]!r}") from None

    def _get_list_tenants(self) -> requests.Response:
        self.sent += 1
        response = self._session.get(
            f"{self.base_url}/{LIST_TENANTS_ENDPOINT}",
            headers={"Authorization": f"Bearer {self._token()}", "Accept": "application/json"},
            timeout=TIMEOUT,
        )
        if response.status_code != 200:
            denied = response.status_code == 403
            hint = _list_tenants_denial(self.manager_client_id) if denied else _hint(response.status_code, "")
            error = CippAccessDenied if denied else CippHttpError
            raise error("ListTenants", response.status_code, response.text.strip(), hint)
        return response


def _list_tenants_denial(manager_client_id: str) -> str:
    # ListTenants needs CIPP.Core.Read, which every built-in role has; the IP allow-list is the likelier cause.
    return (
        f"CIPP refused the manager client {manager_client_id or '(unknown)'}: either its own allowed IP ranges "
        "exclude this machine's public IP (add it to the manager client in CIPP > Integrations > CIPP-API), "
        "or its custom role lacks CIPP.Core.Read"
    )
