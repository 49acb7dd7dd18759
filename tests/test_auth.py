"""Accounts and logins: Argon2id hashes, one error for bad credentials, throttling, resume and logout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.factories import PASSWORD, make_actor, make_workspace
from workbench.base import clock
from workbench.base.errors import AuthError, InvalidInput, LoginThrottled
from workbench.base.i18n import error_text
from workbench.services import auth
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import AuthSession, User


def _user(email: str) -> User:
    with session_scope() as s:
        return s.scalars(select(User).where(User.email == email)).one()


def test_password_is_stored_as_argon2id(engine):
    actor = make_actor(make_workspace())
    stored = _user(actor.email).password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_short_password_is_refused(engine):
    with pytest.raises(InvalidInput) as info:
        auth.hash_password("curta")
    assert "10" in error_text(info.value)


def test_login_returns_actor_and_token(engine):
    ws = make_workspace()
    actor = make_actor(ws, role="supervisor")
    logged, token = auth.login(f"  {actor.email.upper()} ", PASSWORD)  # e-mail is trimmed and case-folded
    assert logged == actor
    assert len(token) >= 32
    with session_scope() as s:
        row = s.scalars(select(AuthSession)).one()
        assert row.token_hash != token  # only the hash is stored


def test_wrong_password_and_unknown_email_give_the_same_error(engine):
    actor = make_actor(make_workspace())
    with pytest.raises(AuthError) as wrong:
        auth.login(actor.email, "senha-errada-123")
    with pytest.raises(AuthError) as unknown:
        auth.login("ninguem@example.com", PASSWORD)
    assert type(wrong.value) is type(unknown.value) is AuthError
    assert error_text(wrong.value) == error_text(unknown.value) == "E-mail ou senha incorretos."


def test_throttle_after_max_failures_doubles(engine):
    settings = get_settings()
    actor = make_actor(make_workspace())
    for _ in range(settings.login_max_failures - 1):
        with pytest.raises(AuthError):
            auth.login(actor.email, "senha-errada-123")
    assert _user(actor.email).locked_until is None
    with pytest.raises(AuthError):
        auth.login(actor.email, "senha-errada-123")  # the Nth failure locks the account
    first = _user(actor.email).locked_until
    assert first is not None
    # Locked: even the right password is refused, and the message says how long to wait.
    with pytest.raises(LoginThrottled) as throttled:
        auth.login(actor.email, PASSWORD)
    assert 0 < throttled.value.retry_after_s <= settings.login_lockout_s + 1
    assert "Aguarde" in error_text(throttled.value) and "min" in error_text(throttled.value)

    # The lock expires; one more failure locks for twice as long.
    with session_scope() as s:
        s.execute(update(User).where(User.email == actor.email).values(locked_until=clock.now() - timedelta(1)))
    with pytest.raises(AuthError):
        auth.login(actor.email, "senha-errada-123")
    second = _user(actor.email).locked_until
    wait = (second - clock.now()).total_seconds()
    assert settings.login_lockout_s * 2 - 5 < wait <= settings.login_lockout_s * 2

    # After the lock, the right password works and clears the counter.
    with session_scope() as s:
        s.execute(update(User).where(User.email == actor.email).values(locked_until=clock.now() - timedelta(1)))
    auth.login(actor.email, PASSWORD)
    user = _user(actor.email)
    assert (user.failed_logins, user.locked_until) == (0, None)


def test_resume_and_logout(engine):
    actor = make_actor(make_workspace(), role="agent")
    _, token = auth.login(actor.email, PASSWORD)
    assert auth.resume(token) == actor
    assert auth.resume(None) is None
    assert auth.resume("not-a-token") is None
    auth.logout(token)
    assert auth.resume(token) is None
    auth.logout(token)  # idempotent
    auth.logout(None)


def test_expired_login_does_not_resume_and_resume_slides_expiry(engine):
    actor = make_actor(make_workspace())
    _, token = auth.login(actor.email, PASSWORD)
    with session_scope() as s:
        s.execute(update(AuthSession).values(expires_at=clock.now() + timedelta(minutes=1)))
    assert auth.resume(token) == actor
    with session_scope() as s:
        assert s.scalar(select(AuthSession.expires_at)) > clock.now() + timedelta(hours=1)
        s.execute(update(AuthSession).values(expires_at=clock.now() - timedelta(seconds=1)))
    assert auth.resume(token) is None


def test_inactive_user_cannot_login_or_resume(engine):
    actor = make_actor(make_workspace())
    _, token = auth.login(actor.email, PASSWORD)
    with session_scope() as s:
        s.execute(update(User).where(User.id == actor.user_id).values(is_active=False))
    assert auth.resume(token) is None
    with pytest.raises(AuthError):
        auth.login(actor.email, PASSWORD)
