"""Who may use the browser view.

Bound to a loopback address (the default, 127.0.0.1) it needs no token, and only
loopback ``Host`` headers are answered: a web page elsewhere cannot reach it through
DNS rebinding (a name of the attacker's resolving to 127.0.0.1). Bound to any other
address it refuses to start without a token (``--token``, ``--token-file`` or
``FACELANDMARKS_TOKEN``), and every request then carries it: ``Authorization: Bearer
T``, or the HttpOnly cookie that a ``?token=T`` in any URL sets (for the page, and for
image URLs given to other tools). Writes and WebSockets whose ``Origin`` is another site
are refused (cross-site request forgery).
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

TOKEN_ENV = "FACELANDMARKS_TOKEN"
COOKIE = "facelandmarks_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_TOKEN_LENGTH = 16


class AccessError(ValueError):
    """A serving setup that would expose the gallery (no token on a public address)."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The token from ``--token``, else ``--token-file``, else ``$FACELANDMARKS_TOKEN``."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise AccessError(f"cannot read --token-file {token_file}: "
                              f"{exc.strerror or exc}") from exc
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    if token is not None and len(token.strip()) < MIN_TOKEN_LENGTH:
        raise AccessError(f"the token must be at least {MIN_TOKEN_LENGTH} characters (make "
                          f"one with: python3 -c 'import secrets; print(secrets.token_urlsafe())')")
    return token.strip() if token else None


@dataclass(frozen=True)
class AccessPolicy:
    token: str | None
    allowed_hosts: frozenset[str] | None   # None: any Host header (a token guards it)

    @classmethod
    def for_bind(cls, host: str, token: str | None) -> "AccessPolicy":
        if not is_loopback(host) and not token:
            raise AccessError(
                f"--host {host} lets other machines connect, so a token is required: "
                f"--token T, --token-file FILE or {TOKEN_ENV}=T (make one with: python3 -c "
                f"'import secrets; print(secrets.token_urlsafe())'); or keep the default "
                f"--host 127.0.0.1 and reach it through an SSH tunnel")
        if is_loopback(host):
            return cls(token, LOOPBACK_NAMES)
        if host in ("0.0.0.0", "::", ""):
            return cls(token, None)
        return cls(token, LOOPBACK_NAMES | {host.lower()})


def host_name(host_header: str) -> str:
    """``Host`` without its port: "[::1]:8000" -> "::1", "a.b:80" -> "a.b"."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AccessMiddleware:
    """ASGI middleware applying an :class:`AccessPolicy` to HTTP and WebSocket requests."""

    def __init__(self, app, policy: AccessPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        problem = self._refusal(scope, headers)
        if problem is not None:
            return await _refuse(scope, receive, send, *problem)
        if self.policy.token and self._query_token(scope):
            send = _setting_cookie(send, self.policy.token)
        return await self.app(scope, receive, send)

    def _refusal(self, scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        allowed = self.policy.allowed_hosts
        if allowed is not None and host_name(host) not in allowed:
            return 421, (f"Host {host!r} is not this server's name (DNS rebinding?); "
                         f"use http://127.0.0.1:PORT/")
        if scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() != host.lower():
                return 403, f"cross-site request from {origin} refused"
        if self.policy.token and not self._authorised(scope, headers):
            return 401, ("this server needs its token: send Authorization: Bearer TOKEN, "
                         "or open /?token=TOKEN once in the browser")
        return None

    def _authorised(self, scope, headers: Headers) -> bool:
        token = self.policy.token
        auth = headers.get("authorization", "")
        given = [auth[7:].strip()] if auth.lower().startswith("bearer ") else []
        given += _cookies(headers).get(COOKIE, [])
        given += self._query_tokens(scope)
        return any(hmac.compare_digest(g.encode(), token.encode()) for g in given)

    def _query_tokens(self, scope) -> list[str]:
        return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])

    def _query_token(self, scope) -> bool:
        return any(hmac.compare_digest(t.encode(), self.policy.token.encode())
                   for t in self._query_tokens(scope))


def _cookies(headers: Headers) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            found.setdefault(key, []).append(value)
    return found


def _setting_cookie(send, token: str):
    """``send`` that adds the token cookie to the response (a valid ``?token=`` came)."""
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"set-cookie", cookie)]}
        await send(message)
    return sending


async def _refuse(scope, receive, send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(
        scope, receive, send)
