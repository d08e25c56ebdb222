"""The one HTTP client for Microsoft Graph: paging, pacing, retries and the error envelope.

Conditional Access allows 1 request per second per tenant for all apps together, and its 429s carry
no Retry-After (docs/graph-ca.md §1.5). So every request first waits its turn on a per-tenant pacer shared
by all threads of the process (the provider host applies resources concurrently); 429, 5xx (not 501),
timeouts and dropped connections are retried with exponential backoff and jitter, honouring
Retry-After when Graph sends one; other 4xx are never retried.

A client is created per provider call and closed after it: no session outlives the call.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

if TYPE_CHECKING:
    import requests

API_VERSION = "v1.0"  # writes through beta make a policy unreadable on v1.0 (docs/graph-ca.md §1.3)
# 1 request/s is the limit, not a target: requests spaced exactly 1.0 s apart arrive a few ms early
# often enough to draw 429s (BENCHMARKS.md: 20 policies took 91 requests at 1.00 s, 65 at 1.05 s).
DEFAULT_INTERVAL_S = 1.05
TIMEOUT = (10.0, 60.0)


class GraphError(RuntimeError):
    """Graph answered with an error; carries the envelope's code and message."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        code: str,
        message: str,
        request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.method, self.path, self.status, self.code = method, path, status, code
        self.graph_message, self.request_id, self.retry_after = message, request_id, retry_after
        suffix = f" (request-id {request_id})" if request_id else ""
        super().__init__(f"Graph {method} {path} → HTTP {status} {code}: {message}{suffix}")

    @property
    def retryable(self) -> bool:
        return self.status == 429 or (self.status >= 500 and self.status != 501)


class TenantPacer:
    """At most one request per `interval` seconds; callers queue in arrival order.

    `in_a_row()` gives one caller consecutive turns: a read and the write built from it then go out one
    interval apart even while other threads of the process (the engine's parallel steps in one provider host)
    wait for the same tenant, which keeps the window for a lost concurrent edit at its minimum
    (docs/part-d.md "Concurrent edits")."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._row = threading.RLock()  # held for a run of turns; every turn passes through it

    @contextlib.contextmanager
    def in_a_row(self) -> Iterator[None]:
        with self._row:
            yield

    def wait_from_now(self) -> None:
        """Count a request sent just now by someone else: the next turn comes one interval later."""
        with self._lock:
            self._next_slot = max(self._next_slot, time.monotonic() + self.interval)

    def wait_turn(self) -> None:
        with self._row, self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


_pacers: dict[tuple[str, str], TenantPacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(base_url: str, tenant_id: str, *, after_another_process: bool = False) -> TenantPacer:
    """This process's pacer for the tenant. `after_another_process`: another process has just sent a request
    to the tenant (the provider host runs right after the program listed the policies from the language
    host), so this process's first request waits one interval instead of drawing a 429 (docs/part-d.md)."""
    interval = float(os.environ.get("CIPP_HARDENING_GRAPH_INTERVAL", DEFAULT_INTERVAL_S))
    with _pacers_lock:
        key = (base_url, tenant_id.lower())
        if key not in _pacers or _pacers[key].interval != interval:
            _pacers[key] = TenantPacer(interval)
            if after_another_process:
                _pacers[key].wait_from_now()
        return _pacers[key]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, GraphError):
        return exc.retryable
    import requests  # only where a request is sent: the offline plan never loads it (BENCHMARKS.md §1)

    return isinstance(exc, requests.Timeout | requests.ConnectionError)


def _backoff_for(interval: float) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter in units of the pacing interval (1 s against real Graph)."""
    unit = max(interval, 0.01)
    backoff = wait_exponential_jitter(multiplier=unit, max=30 * unit, jitter=unit)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, GraphError) and exc.retry_after is not None:
            return exc.retry_after
        return float(backoff(state))

    return wait


class GraphClient:
    """Graph v1.0 for one tenant. Use as a context manager; `sent` counts HTTP requests made."""

    def __init__(
        self,
        base_url: str,
        tenant_id: str,
        token: Callable[[], str],
        *,
        max_attempts: int = 8,
        pacer: TenantPacer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant_id = tenant_id
        self._token = token
        self._max_attempts = max_attempts
        self._pacer = pacer or pacer_for(self.base_url, tenant_id)
        import requests  # only where a request is sent: the offline plan never loads it (BENCHMARKS.md §1)

        self._session = requests.Session()
        self.sent = 0

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._session.close()

    def in_a_row(self) -> contextlib.AbstractContextManager[None]:
        """Consecutive turns of the tenant's pacing for a read and the write built from it."""
        return self._pacer.in_a_row()

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base_url}/{API_VERSION}/{path.lstrip('/')}"

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> requests.Response:
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=_backoff_for(self._pacer.interval),
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )
        return retrying(self._attempt, method, path, body, params)

    def _attempt(self, method: str, path: str, body: Any, params: dict[str, str] | None) -> requests.Response:
        # The token first: fetching one can take a while, and the paced moment must be the request's own
        # (a request sent late after its turn leaves the next one less than an interval behind it: a 429).
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        self._pacer.wait_turn()
        self.sent += 1
        response = self._session.request(
            method, self.url(path), json=body, params=params, headers=headers, timeout=TIMEOUT
        )
        if response.status_code >= 400:
            raise _error_from(method, path, response)
        return response

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = self.request("GET", path, params=params).json()
        return payload

    def pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a collection, following @odata.nextLink (docs/graph-ca.md §1.4)."""
        page = self.get(path, params)
        yield page.get("value", [])
        while page.get("@odata.nextLink"):
            page = self.get(page["@odata.nextLink"])
            yield page.get("value", [])

    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [item for page in self.pages(path, params) for item in page]

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.request("PATCH", path, body)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", path, body)
        created: dict[str, Any] = response.json() if response.content else {}
        return created

    def delete(self, path: str) -> None:
        self.request("DELETE", path)


def _error_from(method: str, path: str, response: requests.Response) -> GraphError:
    retry_after = response.headers.get("Retry-After")
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    inner = error.get("innerError") or error.get("innererror") or {}
    message = error.get("message") or response.text[:200] or response.reason
    if inner.get("message") and inner["message"] not in message:
        message = f"{message} ({inner['message']})"
    return GraphError(
        method,
        path if not path.startswith("https://") else path.split("?", 1)[0],
        response.status_code,
        error.get("code") or response.reason or "Error",
        message,
        inner.get("request-id", ""),
        float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
    )
