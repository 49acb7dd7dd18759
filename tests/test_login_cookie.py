"""The HttpOnly login cookie (workbench/services/login_cookie.py): one-time handoff codes, and the two routes
that set and clear the cookie, served here by Starlette's test client (the panel serves them the same way)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.factories import make_actor, make_workspace
from workbench.services import auth, login_cookie
from workbench.store.db import session_scope

CLIENT = "testclient"
"""The client address Starlette's test client connects from."""


@pytest.fixture
def token(engine, r) -> str:
    """A live login."""
    actor = make_actor(make_workspace())
    with session_scope() as s:
        return auth.open_session(s, actor)


def client(base: str = "http://panel.example") -> TestClient:
    return TestClient(Starlette(routes=login_cookie.routes()), base_url=base)


def post(http: TestClient, path: str, body: dict | None = None, origin: str | None = "http://panel.example",
         **headers: str):
    if origin is not None:
        headers["origin"] = origin
    return http.post(path, json=body if body is not None else {}, headers=headers)


def test_a_code_gives_its_token_once_to_its_address_while_the_login_lives(token, r):
    assert r.ttl(login_cookie._key(code := login_cookie.issue_handoff(token, "203.0.113.9"))) <= 60
    assert token.encode() not in b"".join(r.get(key) for key in r.keys("wb:login-handoff:*")), "kept encrypted"
    assert login_cookie.redeem_handoff(code, "203.0.113.9") == token
    assert login_cookie.redeem_handoff(code, "203.0.113.9") is None, "single use"
    stolen = login_cookie.issue_handoff(token, "203.0.113.9")
    assert login_cookie.redeem_handoff(stolen, "198.51.100.7") is None, "another address"
    assert login_cookie.redeem_handoff(stolen, "203.0.113.9") is None, "and spent by that try"
    late = login_cookie.issue_handoff(token, None)
    auth.logout(token)
    assert login_cookie.redeem_handoff(late, None) is None, "the login ended"
    assert login_cookie.redeem_handoff("", None) is None
    assert login_cookie.redeem_handoff("x" * 5000, None) is None


def test_the_route_sets_an_httponly_strict_cookie_for_a_code(token):
    http = client()
    code = login_cookie.issue_handoff(token, CLIENT)
    response = post(http, login_cookie.SET_PATH, {"code": code})
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert cookie == f"wb_session={token}; Max-Age=259200; Path=/; HttpOnly; SameSite=Strict"
    assert response.headers["cache-control"] == "no-store"
    assert post(http, login_cookie.SET_PATH, {"code": code}).status_code == 403, "used"


def test_over_https_the_cookie_is_secure(token):
    code = login_cookie.issue_handoff(token, CLIENT)
    response = post(client("https://panel.example"), login_cookie.SET_PATH, {"code": code},
                    origin="https://panel.example")
    assert response.status_code == 204
    assert response.headers["set-cookie"].endswith("; HttpOnly; SameSite=Strict; Secure")


@pytest.mark.parametrize("case", ["no origin", "other site", "form post", "not json", "too large", "no code",
                                  "unknown code"])
def test_the_route_refuses_requests_from_elsewhere_or_malformed(token, case):
    http = client()
    code = login_cookie.issue_handoff(token, CLIENT)
    path = login_cookie.SET_PATH
    if case == "no origin":
        response = post(http, path, {"code": code}, origin=None)
    elif case == "other site":
        response = post(http, path, {"code": code}, origin="https://evil.example")
    elif case == "form post":
        response = http.post(path, data={"code": code}, headers={"origin": "http://panel.example"})
    elif case == "not json":
        response = http.post(path, content=b"{code", headers={"origin": "http://panel.example",
                                                               "content-type": "application/json"})
    elif case == "too large":
        response = post(http, path, {"code": code, "pad": "x" * 5000})
    elif case == "no code":
        response = post(http, path, {"code": 7})
    else:
        response = post(http, path, {"code": "nao-existe"})
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert http.get(path).status_code == 405
    assert login_cookie.redeem_handoff(code, CLIENT) == token, "a refused request spends nothing"


def test_clearing_deletes_a_dead_login_and_keeps_a_live_one(token):
    http = client()
    http.cookies.set("wb_session", token)
    kept = post(http, login_cookie.CLEAR_PATH)
    assert kept.status_code == 204 and "set-cookie" not in kept.headers, "another tab's newer login stays"
    auth.logout(token)  # Sair in this tab revoked it
    cleared = post(http, login_cookie.CLEAR_PATH)
    assert cleared.status_code == 204
    assert cleared.headers["set-cookie"] == "wb_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
    assert post(http, login_cookie.CLEAR_PATH, origin="https://evil.example").status_code == 403


def test_loopback_is_this_machine_like_streamlit_says():
    assert login_cookie.client_address("127.0.0.1") is None
    assert login_cookie.client_address("::1") is None
    assert login_cookie.client_address(None) is None
    assert login_cookie.client_address("203.0.113.9") == "203.0.113.9"
