"""Accounts and logins: Argon2id hashes, one error for bad credentials, throttling, resume and logout."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy import event as sa_event

from tests.factories import PASSWORD, make_actor, make_workspace
from workbench.base import clock
from workbench.base.errors import AuthError, InvalidInput, LoginThrottled
from workbench.base.i18n import error_text, format_duration
from workbench.services import auth
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import AuthSession, LoginThrottle, User, WorkspaceMember


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


def _throttle() -> LoginThrottle:
    with session_scope() as s:
        return s.scalars(select(LoginThrottle)).one()


def _unblock() -> None:
    """Let the current wait pass (as if its time had gone by)."""
    with session_scope() as s:
        s.execute(update(LoginThrottle).values(blocked_until=clock.now() - timedelta(seconds=1)))


def test_throttle_after_max_failures_doubles(engine):
    settings = get_settings()
    actor = make_actor(make_workspace())
    for _ in range(settings.login_max_failures - 1):
        with pytest.raises(AuthError):
            auth.login(actor.email, "senha-errada-123")
    assert _throttle().blocked_until is None
    with pytest.raises(AuthError):
        auth.login(actor.email, "senha-errada-123")  # the Nth failure makes the next try wait
    assert _throttle().blocked_until is not None
    # Waiting: even the right password is refused, and the message says how long to wait.
    with pytest.raises(LoginThrottled) as throttled:
        auth.login(actor.email, PASSWORD)
    assert 0 < throttled.value.retry_after_s <= settings.login_lockout_s + 1
    wait = format_duration(throttled.value.retry_after_s)  # counted from the failed attempt: about a minute
    assert error_text(throttled.value) == f"Muitas tentativas sem sucesso. Aguarde {wait} e tente de novo."

    # The wait ends; one more failure makes the next wait twice as long.
    _unblock()
    with pytest.raises(AuthError):
        auth.login(actor.email, "senha-errada-123")
    wait = (_throttle().blocked_until - clock.now()).total_seconds()
    assert settings.login_lockout_s * 2 - 5 < wait <= settings.login_lockout_s * 2

    # After the wait, the right password works and clears the count.
    _unblock()
    auth.login(actor.email, PASSWORD)
    with session_scope() as s:
        assert s.scalars(select(LoginThrottle)).all() == []


def test_failures_from_one_address_do_not_lock_the_account_elsewhere(engine):
    """Someone guessing the (well-known) admin e-mail slows down only their own address."""
    actor = make_actor(make_workspace())
    for _ in range(get_settings().login_max_failures):
        with pytest.raises(AuthError):
            auth.login(actor.email, "senha-errada-123", address="203.0.113.9")
    with pytest.raises(LoginThrottled):
        auth.login(actor.email, PASSWORD, address="203.0.113.9")
    logged, _ = auth.login(actor.email, PASSWORD, address="198.51.100.7")
    assert logged == actor
    assert auth.login(actor.email, PASSWORD)[0] == actor  # this machine (no address) is another address too


def test_unknown_and_known_emails_fail_alike(engine):
    """Same errors in the same order whether the account exists: nothing tells which e-mails are real.
    A password typed in the e-mail field is not stored either: the throttle keeps only a hash."""
    actor = make_actor(make_workspace())

    def failures(email: str) -> list[tuple[type, str]]:
        seen = []
        for _ in range(get_settings().login_max_failures + 2):
            with pytest.raises(AuthError) as info:
                auth.login(email, "senha-errada-123")
            seen.append((type(info.value), error_text(info.value)))
        return seen

    known, unknown = failures(actor.email), failures("minha-senha-secreta")
    assert known == unknown
    assert [kind for kind, _ in known][-2:] == [LoginThrottled, LoginThrottled]
    with session_scope() as s:
        keys = s.scalars(select(LoginThrottle.key)).all()
    assert len(keys) == 2 and not any("senha" in key or "@" in key for key in keys)


def test_concurrent_failures_are_counted_once_each(engine):
    """Attempts racing each other: each one is counted, and no more than the allowed number is checked."""
    actor = make_actor(make_workspace())
    tries = get_settings().login_max_failures + 3
    start = threading.Barrier(tries)

    def attempt(_: int) -> type:
        start.wait()
        try:
            auth.login(actor.email, "senha-errada-123")
        except AuthError as exc:
            return type(exc)
        return type(None)

    with ThreadPoolExecutor(tries) as pool:
        outcomes = list(pool.map(attempt, range(tries)))
    assert outcomes.count(AuthError) == get_settings().login_max_failures
    assert outcomes.count(LoginThrottled) == 3
    assert _throttle().failures == get_settings().login_max_failures


def test_attempts_are_forgotten_after_a_quiet_day(engine):
    """The throttle table does not grow forever: a day without attempts starts again from zero."""
    actor = make_actor(make_workspace())
    long_ago = clock.now() - auth.FAILURES_FORGOTTEN_AFTER - timedelta(minutes=1)
    with session_scope() as s:
        s.add(LoginThrottle(key="0" * 64, failures=9, last_attempt_at=long_ago, blocked_until=long_ago))
    for _ in range(get_settings().login_max_failures):
        with pytest.raises(AuthError):
            auth.login(actor.email, "senha-errada-123")
    with pytest.raises(LoginThrottled):
        auth.login(actor.email, PASSWORD)
    with session_scope() as s:
        s.execute(update(LoginThrottle).values(last_attempt_at=long_ago, blocked_until=long_ago))
    assert auth.login(actor.email, PASSWORD)[0] == actor  # counted from zero again
    with session_scope() as s:
        assert s.scalars(select(LoginThrottle)).all() == [], "the stranger's old row went too"


def test_password_checks_run_at_most_two_at_a_time(engine, monkeypatch):
    """Each check takes 64 MiB: a flood of logins queues instead of exhausting the server's memory."""
    inside, most, lock = 0, 0, threading.Lock()
    three_at_once = threading.Barrier(3, timeout=1)

    class WatchedHasher:
        """The real hasher, counting how many verifications run at the same moment."""

        def __getattr__(self, name: str):
            return getattr(real, name)

        def verify(self, password_hash: str, password: str) -> bool:
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
            try:
                three_at_once.wait()  # passes only if three checks run together
            except threading.BrokenBarrierError:
                pass
            with lock:
                inside -= 1
            return real.verify(password_hash, password)

    real, dummy = auth._argon2()
    monkeypatch.setattr(auth, "_argon2", lambda: (WatchedHasher(), dummy))

    def attempt(n: int) -> None:
        with pytest.raises(AuthError):
            auth.login(f"ninguem{n}@example.com", "senha-errada-123")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(attempt, range(4)))
    assert most == 2


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


def test_resume_reads_the_current_role_and_membership_in_one_query(engine):
    """Re-checked on every interaction: the actor is rebuilt as it stands now, cheaply."""
    actor = make_actor(make_workspace(), role="admin")
    _, token = auth.login(actor.email, PASSWORD)
    with session_scope() as s:
        s.execute(update(WorkspaceMember).where(WorkspaceMember.user_id == actor.user_id).values(role="agent"))
    statements: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:
        statements.append(statement)

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        assert auth.resume(token) == replace(actor, role="agent")
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1, statements
    with session_scope() as s:
        s.execute(delete(WorkspaceMember).where(WorkspaceMember.user_id == actor.user_id))
    assert auth.resume(token) is None


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


def test_a_password_change_ends_every_login_and_opens_one_for_the_caller(engine):
    """The old password may have leaked, and with it a login: all of them end, the caller's own token included;
    the caller goes on with a new login."""
    actor = make_actor(make_workspace())
    _, here = auth.login(actor.email, PASSWORD)
    _, elsewhere = auth.login(actor.email, PASSWORD)
    new = auth.change_own_password(actor, PASSWORD, "outra-senha-boa")
    assert auth.resume(here) is None and auth.resume(elsewhere) is None
    assert auth.resume(new) == actor and new not in (here, elsewhere)
    with pytest.raises(AuthError):
        auth.change_own_password(actor, PASSWORD, "mais-uma-senha")  # the old one no longer works
    assert auth.resume(new) == actor, "a refused change ends nothing"


def test_one_address_trying_many_emails_is_throttled_as_a_whole(engine, monkeypatch):
    """One password tried against many accounts: each e-mail fails once, yet the address soon waits for all of
    them, while other addresses and this machine are not slowed. Logging in to one's own account from there takes
    back only that attempt."""
    monkeypatch.setenv("WORKBENCH_LOGIN_ADDRESS_MAX_FAILURES", "4")
    get_settings.cache_clear()
    try:
        actor = make_actor(make_workspace())
        sprayer = "203.0.113.9"
        auth.login(actor.email, PASSWORD, address=sprayer)  # a success first: it adds nothing to the count
        for n in range(4):
            with pytest.raises(AuthError) as info:
                auth.login(f"pessoa{n}@example.com", "Senha123!", address=sprayer)
            assert type(info.value) is AuthError
        with pytest.raises(LoginThrottled):
            auth.login("pessoa9@example.com", "Senha123!", address=sprayer)
        with pytest.raises(LoginThrottled):
            auth.login(actor.email, PASSWORD, address=sprayer)  # even the right password of a real account
        assert auth.login(actor.email, PASSWORD, address="198.51.100.7")[0] == actor
        for address in (None, "10.0.0.7", "172.18.0.1", "fd00::1"):  # this machine, a LAN, Docker's gateway:
            for n in range(6):                                     # many people behind one address, no such count
                with pytest.raises(AuthError) as info:
                    auth.login(f"outra{n}@example.com", "Senha123!", address=address)
                assert type(info.value) is AuthError
            assert auth.login(actor.email, PASSWORD, address=address)[0] == actor
    finally:
        get_settings.cache_clear()
