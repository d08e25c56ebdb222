"""A loopback stand-in for the Microsoft identity platform (login.microsoftonline.com).

Shared by the Graph and CIPP-API emulators: the Graph emulator serves the token endpoint and the
OpenID configuration from it, and the CIPP-API emulator verifies the bearer tokens it issued, the
way EasyAuth validates tokens before CIPP's code runs (docs/cipp-api.md §1, §7).

Tokens are real JWTs (HS256, a key per Directory), so azure-identity/MSAL parse them as usual and
a forged or foreign token fails verification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

GRAPH_RESOURCE = "https://graph.microsoft.com"
TOKEN_LIFETIME_S = 3600


class InvalidToken(Exception):
    """The bearer token is missing, malformed, forged or expired."""


@dataclass
class AppRegistration:
    client_id: str
    secret: str
    home_tenant: str
    # Tenants where the (multi-tenant) app has been consented; the home tenant always is.
    consented_tenants: set[str] = field(default_factory=set)
    graph_roles: list[str] = field(default_factory=list)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Directory:
    """Tenants, app registrations and the key that signs every token they are issued."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._apps: dict[str, AppRegistration] = {}
        self._lock = threading.Lock()
        self.issued: list[dict[str, Any]] = []  # claims of every token issued, for assertions

    def register_app(
        self,
        client_id: str,
        secret: str,
        home_tenant: str,
        consented_tenants: tuple[str, ...] | list[str] = (),
        graph_roles: tuple[str, ...] | list[str] = (),
    ) -> AppRegistration:
        app = AppRegistration(
            client_id.lower(),
            secret,
            home_tenant.lower(),
            {home_tenant.lower(), *(t.lower() for t in consented_tenants)},
            list(graph_roles),
        )
        with self._lock:
            self._apps[app.client_id] = app
        return app

    def app(self, client_id: str) -> AppRegistration | None:
        return self._apps.get(client_id.lower())

    # -- tokens -------------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(mac)}"

    def verify(self, token: str, now: float | None = None) -> dict[str, Any]:
        try:
            header, payload, signature = token.split(".")
        except ValueError as exc:
            raise InvalidToken("not a JWT") from exc
        expected = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64url_decode(signature)):
            raise InvalidToken("signature does not verify")
        claims: dict[str, Any] = json.loads(_b64url_decode(payload))
        if claims.get("exp", 0) < (now if now is not None else time.time()):
            raise InvalidToken("token expired")
        return claims

    def verify_bearer(self, authorization: str | None) -> dict[str, Any]:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise InvalidToken("no bearer token")
        return self.verify(authorization.split(" ", 1)[1].strip())

    def token_response(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The body of POST /{tenant}/oauth2/v2.0/token (client credentials grant only)."""
        tenant = tenant.lower()
        if form.get("grant_type") != "client_credentials":
            return 400, _aad_error("unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        app = self.app(form.get("client_id", ""))
        if app is None:
            return 400, _aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.",
            )
        if not hmac.compare_digest(app.secret, form.get("client_secret", "")):
            return 401, _aad_error("invalid_client", 7000215, "Invalid client secret provided.")
        if tenant not in app.consented_tenants:
            return 400, _aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{app.client_id}' was not found in the directory '{tenant}'.",
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return 400, _aad_error("invalid_scope", 1002012, "The provided value for scope is not valid.")
        audience = scope[: -len("/.default")]
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "appid": app.client_id,
            "azp": app.client_id,
            "tid": tenant,
            "roles": app.graph_roles if audience == GRAPH_RESOURCE else [],
            "ver": "1.0",
        }
        with self._lock:
            self.issued.append(claims)
        return 200, {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "ext_expires_in": TOKEN_LIFETIME_S,
            "access_token": self.sign(claims),
        }


def _aad_error(error: str, code: int, text: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": secrets.token_hex(16),
        "correlation_id": secrets.token_hex(16),
    }


def openid_configuration(authority: str, tenant: str) -> dict[str, Any]:
    """What MSAL reads from {authority}/{tenant}/v2.0/.well-known/openid-configuration."""
    base = f"{authority.rstrip('/')}/{tenant}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "issuer": f"{authority.rstrip('/')}/{tenant}/v2.0",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "tenant_region_scope": "NA",
    }
