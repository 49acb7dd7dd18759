"""The login cookie: an ``HttpOnly`` cookie set and cleared by the panel's server, never by page JavaScript.

Streamlit pages cannot answer an HTTP request, so the panel (``panel.py``) serves two small routes next to the
app, and the login token goes from the Streamlit session to the cookie through a one-time handoff code:

1. After a login (or a password change), the session calls ``issue_handoff``: a random code whose SHA-256 keys
   the token, Fernet-encrypted (``workbench/store/crypto.py``), in Redis for ``HANDOFF_TTL_S`` seconds, bound to
   the client address the login came from.
2. The page's script POSTs the code to ``SET_PATH``. ``set_cookie`` redeems it (``redeem_handoff``: once, from
   that address, while the login is live) and answers with ``Set-Cookie: wb_session=<token>; HttpOnly;
   SameSite=Strict; Path=/`` (plus ``Secure`` over https). The token never reaches page JavaScript; the code alone
   is worthless after its first use or a minute.
3. *Sair* revokes the login in the session, then the page POSTs to ``CLEAR_PATH``: ``clear_cookie`` deletes the
   cookie when its login is no longer live (a newer login another tab stored in it stays).

Both routes refuse a request whose ``Origin`` is not the panel's own host, and accept only a JSON body, which a
cross-site form cannot send without a preflight; with ``SameSite=Strict`` that makes them CSRF-safe. A new
Streamlit session reads the cookie as before (``st.context.cookies``: the browser sends it with the WebSocket's
handshake).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from urllib.parse import urlsplit

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workbench.services import auth
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.crypto import decrypt_secret, encrypt_secret

COOKIE_NAME = "wb_session"
SET_PATH = "/wb/session"
CLEAR_PATH = "/wb/session/clear"
HANDOFF_TTL_S = 60
"""How long a handoff code can be redeemed (the page redeems it within a second)."""
HANDOFF_KEY = "wb:login-handoff:{}"
MAX_BODY = 1024
"""Largest request body the routes read (a code is 43 characters)."""
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def client_address(host: str | None) -> str | None:
    """A connection's address as the login throttle and the handoff see it: None for this machine.

    The same rule as Streamlit's ``st.context.ip_address``, so an address seen by the app and by these routes
    compares equal. Behind a trusted proxy uvicorn has already replaced ``host`` with ``X-Forwarded-For``.
    """
    return None if not host or host in LOOPBACK else host


def _key(code: str) -> str:
    return HANDOFF_KEY.format(hashlib.sha256(code.encode()).hexdigest())


def issue_handoff(token: str, address: str | None) -> str:
    """Keep ``token`` for one redemption by ``address`` within ``HANDOFF_TTL_S``; returns the code to redeem.

    Raises:
        redis.RedisError: Redis out of reach (the login still works in this tab, only the cookie is not set).
    """
    code = secrets.token_urlsafe(32)
    value = json.dumps({"token": encrypt_secret(token).decode(), "address": address})
    get_redis().set(_key(code), value, ex=HANDOFF_TTL_S)
    return code


def redeem_handoff(code: str, address: str | None) -> str | None:
    """The token behind ``code``, once: None when the code is unknown, used, expired, redeemed from another
    address, or its login is no longer live (the code is spent either way)."""
    if not code or len(code) > 100:
        return None
    raw = get_redis().getdel(_key(code))
    if raw is None:
        return None
    kept = json.loads(raw)
    if kept["address"] != address:
        return None
    token = decrypt_secret(kept["token"].encode())
    return token if auth.resume(token) is not None else None


def _cookie(request: Request, value: str, max_age: int) -> str:
    """The ``Set-Cookie`` value: never readable from JavaScript, never sent by another site, TLS-only over https
    (uvicorn takes the scheme from a trusted proxy's ``X-Forwarded-Proto``)."""
    cookie = f"{COOKIE_NAME}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
    return cookie + "; Secure" if request.url.scheme == "https" else cookie


def _same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from a page of this very host (browsers always send
    ``Origin`` with a POST made by ``fetch``)."""
    origin = request.headers.get("origin")
    return bool(origin) and urlsplit(origin).netloc == request.headers.get("host")


async def _body(request: Request) -> dict | None:
    """The request's JSON object, or None (wrong type, too large, not JSON)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def set_cookie(request: Request) -> Response:
    """``POST SET_PATH`` with ``{"code": ...}``: the login cookie for a redeemed handoff code (204), else 403."""
    data = await _body(request) if _same_origin(request) else None
    code = data.get("code") if data else None
    if not isinstance(code, str):
        return Response(status_code=403)
    address = client_address(request.client.host if request.client else None)
    try:
        token = await run_in_threadpool(redeem_handoff, code, address)
    except redis.RedisError:
        return Response(status_code=503)
    if token is None:
        return Response(status_code=403)
    max_age = get_settings().session_ttl_h * 3600
    return Response(status_code=204, headers={"set-cookie": _cookie(request, token, max_age),
                                              "cache-control": "no-store"})


async def clear_cookie(request: Request) -> Response:
    """``POST CLEAR_PATH``: delete the login cookie when its login is no longer live (204; 403 from elsewhere)."""
    if not _same_origin(request) or await _body(request) is None:
        return Response(status_code=403)
    token = request.cookies.get(COOKIE_NAME)
    if token and await run_in_threadpool(auth.resume, token) is not None:
        return Response(status_code=204)  # a live login, stored by another tab after this one's ended
    return Response(status_code=204, headers={"set-cookie": _cookie(request, "", 0), "cache-control": "no-store"})


def routes() -> list[Route]:
    """The panel's routes next to Streamlit's (``panel.py``)."""
    return [Route(SET_PATH, set_cookie, methods=["POST"]), Route(CLEAR_PATH, clear_cookie, methods=["POST"])]
