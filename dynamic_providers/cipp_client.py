"""The one HTTP client for CIPP-API: `/api/ExecApiClient`, its answer shapes, its 403 texts, retries.

CIPP answers logical errors with HTTP 200 and a body (cipp-api.md §2, §9), so every answer is read:
`List` is `{"Results": [...]}` or an empty body when there are no clients, `AddUpdate` succeeds with a
bare array and fails with `{"Results": [...]}` (the rules live in cipp_hardening.cipp_api). Framework
refusals are text/plain: 401 from App Service authentication (EasyAuth), 403 from CIPP's access check
(role or IP allow-list of the *calling* client, §5.5, §8), 404 for an unknown endpoint.

CIPP has no rate limits (§9); 5xx, timeouts and dropped connections are retried with exponential
backoff and jitter, 4xx never. A client is created per provider call and closed after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from cipp_hardening.cipp_api import CippResponseError, Client, add_update_problems, parse_list_body

if TYPE_CHECKING:
    import requests

ENDPOINT = "api/ExecApiClient"
TIMEOUT = (10.0, 120.0)  # AddUpdate makes several Graph calls on CIPP's side and can take seconds (§13)


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
    """HTTP 403 from CIPP's access check: the manager client's role or its own IP allow-list."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, CippHttpError):
        return exc.retryable
    import requests  # only where a request is sent: the offline plan never loads it (BENCHMARKS.md §1)

    return isinstance(exc, requests.Timeout | requests.ConnectionError)


def explain_denial(manager_client_id: str) -> str:
    # §5.5: the IP denial and a missing permission can share one text, so both causes are named.
    return (
        f"CIPP refused the manager client {manager_client_id or '(unknown)'}: either its role lacks "
        "CIPP.Extension.ReadWrite (give it the editor role or higher, and at least the role of every client "
        "it manages), or its own allowed IP ranges exclude this machine's public IP (add this machine's "
        "egress IP to the manager client in CIPP > Integrations > CIPP-API)"
    )


def _hint(status: int, manager_client_id: str) -> str:
    if status == 401:
        return (
            "App Service authentication rejected the manager client's token: check cippApi.tenantId and "
            "managerClientId, and that the client is enabled in CIPP and 'Save Azure Configuration' ran since"
        )
    if status == 403:
        return explain_denial(manager_client_id)
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

    def request(self, action: str, method: str, body: dict[str, Any] | None = None) -> requests.Response:
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )
        return retrying(self._attempt, action, method, body)

    def _attempt(self, action: str, method: str, body: dict[str, Any] | None) -> requests.Response:
        self.sent += 1
        response = self._session.request(
            method,
            f"{self.base_url}/{ENDPOINT}",
            params={"Action": action} if body is None else None,
            json=body,
            headers={"Authorization": f"Bearer {self._token()}", "Accept": "application/json"},
            timeout=TIMEOUT,
        )
        if response.status_code != 200:
            error = CippAccessDenied if response.status_code == 403 else CippHttpError
            raise error(
                action, response.status_code, response.text.strip(), _hint(response.status_code, self.manager_client_id)
            )
        return response

    def list_clients(self) -> list[Client]:
        """Every API client (`GET ?Action=List`); [] when CIPP has none."""
        response = self.request("List", "GET")
        try:
            return parse_list_body(response.text)
        except CippResponseError as exc:
            raise CippError(f"CIPP-API List at {self.base_url}: {exc}") from None

    def add_update(self, body: dict[str, Any]) -> list[Any]:
        """POST an AddUpdate body; raise CippError unless CIPP saved it cleanly. Returns the result entries."""
        response = self.request("AddUpdate", "POST", body)
        try:
            payload = response.json()
        except ValueError:
            raise CippError(f"CIPP-API AddUpdate answered with non-JSON: {response.text[:200]!r}") from None
        problems = add_update_problems(payload)
        if problems:
            raise CippError(f"CIPP-API AddUpdate for client {body.get('ClientId')}: " + "; ".join(problems))
        results: list[Any] = payload
        return results
