"""Accounts, logins and roles.

Passwords are hashed with Argon2id (memory-hard). A login returns an opaque token; the browser keeps it
and we store only its SHA-256, so a leaked database does not leak live sessions.

Failed logins are throttled per e-mail and client address (``LoginThrottle``): after ``login_max_failures``
attempts without success, further attempts of that e-mail from that address wait a time that doubles with each
one (while waiting, no password is checked: even the right one is refused). Every attempt is counted before the
password is checked, under the row's lock, so racing attempts cannot exceed the count; a success clears it.
Someone guessing a known e-mail therefore slows down only their own address: the right password from another
address still works. A second count per address alone (``login_address_max_failures``) stops one address from
trying a password against many e-mails; a success only takes its own attempt back from it, so logging in to
one's own account does not reset it. This machine (no address) and private or shared networks
(``SHARED_NETWORKS``: a LAN, or every browser when a proxy is not trusted) have no such count, so they cannot all
be locked out at once. Unknown e-mails are counted, checked (against a dummy hash) and refused exactly like known
ones, so neither the messages nor the timing tell which accounts exist.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import AuthError, InvalidInput, LoginThrottled, PermissionDenied
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import ROLES, AuthSession, LoginThrottle, User, WorkspaceMember

# Each verification holds 64 MiB: a flood of logins queues here instead of exhausting the panel's memory.
_VERIFY_SLOTS = threading.BoundedSemaphore(2)
MIN_PASSWORD = 10
FAILURES_FORGOTTEN_AFTER = timedelta(days=1)
"""An e-mail and address with no attempt for this long start again from zero (and their row is deleted)."""
MAX_DOUBLINGS = 10
"""The longest wait is ``login_lockout_s`` times 2**10 (about 17 hours with the default minute)."""
SLIDE_EVERY = timedelta(minutes=1)
"""A login in use moves its expiry forward at most this often (``resume`` runs on every interaction)."""


@dataclass(frozen=True)
class Actor:
    """The acting user inside one workspace: every service call takes one."""

    user_id: int
    workspace_id: int
    role: str
    name: str
    email: str

    def require(self, *roles: str) -> None:
        """Raise PermissionDenied unless the actor has one of ``roles``."""
        if self.role not in roles:
            raise PermissionDenied(f"role {self.role} cannot do this", role=self.role)

    @property
    def is_manager(self) -> bool:
        """Admins and supervisors see and manage everything in the workspace."""
        return self.role in ("admin", "supervisor")


@cache
def _argon2() -> tuple[Any, str]:
    """The password hasher — argon2id, 64 MiB, t=3: the library's RFC 9106 "low memory" profile — and a hash of
    no real password, which unknown e-mails are checked against, so timing does not reveal which accounts exist.

    Made at the first login, not at import: the workers import this module (for ``Actor``) and never hash, and
    the dummy hash costs a fifth of a second of CPU and 64 MiB for that moment."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    return hasher, hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """Argon2id hash of a password that meets the minimum length."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password too short", key="error.password_short", min=MIN_PASSWORD)
    return _argon2()[0].hash(password)


def generate_password() -> str:
    """A random password for accounts created by the system (printed once, never stored in clear)."""
    return secrets.token_urlsafe(12)


def create_user(session: Session, email: str, name: str, password: str, workspace_id: int, role: str) -> User:
    """Create an account and its membership (no permission check: bootstrap and admin services call it)."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role}", key="error.role")
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput("invalid e-mail", key="error.email")
    user = User(email=email, name=name.strip() or email, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    session.add(WorkspaceMember(workspace_id=workspace_id, user_id=user.id, role=role))
    session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor_for(session: Session, user: User, workspace_id: int | None = None) -> Actor:
    query = select(WorkspaceMember).where(WorkspaceMember.user_id == user.id)
    if workspace_id is not None:
        query = query.where(WorkspaceMember.workspace_id == workspace_id)
    member = session.scalars(query.order_by(WorkspaceMember.created_at)).first()
    if member is None:
        raise AuthError("no workspace", key="error.no_workspace")
    return Actor(user.id, member.workspace_id, member.role, user.name, user.email)


def login(email: str, password: str, address: str | None = None) -> tuple[Actor, str]:
    """Check credentials and open a login. Returns the actor and the token the browser keeps.

    Args:
        email: as typed (trimmed and case-folded here).
        password: as typed.
        address: the client's address, as the panel's server saw it (None: this machine, or unknown).

    Raises:
        LoginThrottled: too many recent failures of this e-mail from this address (even with the right password).
        AuthError: wrong e-mail or password (one message for both).
    """
    email = email.strip().lower()
    settings = get_settings()
    key = _throttle_key(email, address)
    address_key = (_address_key(address) if address and settings.login_address_max_failures
                   and not _shared_address(address) else None)
    # both counts take this attempt, so a refusal by one still counts in the other
    retry_after_s = max(_count_attempt(key, settings.login_max_failures),
                        _count_attempt(address_key, settings.login_address_max_failures) if address_key else 0)
    if retry_after_s:
        raise LoginThrottled(retry_after_s)
    with session_scope() as session:
        found = session.execute(select(User.id, User.password_hash).where(User.email == email,
                                                                          User.is_active.is_(True))).first()
    # Checked with no database connection held (a check may wait for a slot). Unknown and inactive accounts cost
    # one check too, so timing does not tell them apart.
    if not _verify(found.password_hash if found else _argon2()[1], password) or found is None:
        raise AuthError("bad credentials", key="error.bad_credentials")
    with session_scope() as session:
        user = session.get(User, found.id)
        hasher = _argon2()[0]
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
        user.last_login_at = now()
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
        if address_key:
            session.execute(update(LoginThrottle).where(LoginThrottle.key == address_key, LoginThrottle.failures > 0)
                            .values(failures=LoginThrottle.failures - 1))
        actor = _actor_for(session, user)
        token = open_session(session, actor)
    return actor, token


def open_session(session: Session, actor: Actor) -> str:
    """Open a login for ``actor`` (no password check: ``login`` and tests call it); returns its token."""
    token = secrets.token_urlsafe(32)
    session.add(AuthSession(token_hash=_token_hash(token), user_id=actor.user_id, workspace_id=actor.workspace_id,
                            expires_at=now() + timedelta(hours=get_settings().session_ttl_h)))
    return token


def _throttle_key(email: str, address: str | None) -> str:
    return hashlib.sha256(f"{email}\n{address or ''}".encode()).hexdigest()


SHARED_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
    "fc00::/7", "fe80::/10", "::1/128"))
"""Private, carrier-grade NAT, link-local and loopback networks: many people may share one of their addresses
(a LAN, a proxy or Docker's gateway when the panel does not trust the proxy), so they get no count of their own."""


def _shared_address(address: str) -> bool:
    """Whether ``address`` may stand for many people (``SHARED_NETWORKS``; anything unparsable too)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return any(ip in net for net in SHARED_NETWORKS if net.version == ip.version)


def _address_key(address: str) -> str:
    """The throttle row of an address alone (no trimmed e-mail starts with a line break, so no e-mail's row)."""
    return hashlib.sha256(f"\n\n{address}".encode()).hexdigest()


def _count_attempt(key: str, max_failures: int) -> int:
    """Count one attempt as a failure (a success takes it back later); returns the seconds left to wait, or 0.

    Runs and commits before the password check, holding the row's lock, so every racing attempt is counted and
    only ``max_failures`` of them reach the check before the wait begins.
    """
    settings = get_settings()
    at = now()
    with session_scope() as session:
        session.execute(pg_insert(LoginThrottle).values(key=key, failures=0, last_attempt_at=at)
                        .on_conflict_do_nothing())
        row = session.scalars(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()).one()
        if row.blocked_until is not None and row.blocked_until > at:
            return int((row.blocked_until - at).total_seconds()) + 1
        if row.last_attempt_at < at - FAILURES_FORGOTTEN_AFTER:
            row.failures = 0
        row.failures += 1
        row.last_attempt_at = at
        over = row.failures - max_failures
        row.blocked_until = (at + timedelta(seconds=settings.login_lockout_s * 2 ** min(over, MAX_DOUBLINGS))
                             if over >= 0 else None)
        _forget_old_attempts(session, at)
    return 0


def _forget_old_attempts(session: Session, at: datetime) -> None:
    """Delete a few rows of e-mails and addresses quiet for a day (rows another login holds are left for later)."""
    stale = select(LoginThrottle.key).where(
        LoginThrottle.last_attempt_at < at - FAILURES_FORGOTTEN_AFTER,
        or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < at),
    ).limit(100).with_for_update(skip_locked=True)
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(stale)))


def _verify(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    with _VERIFY_SLOTS:
        try:
            return _argon2()[0].verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def resume(token: str | None) -> Actor | None:
    """The actor of a live login token as it stands now, or None when the login ended.

    The panel calls it on every interaction (``app.py``), so it is one indexed query: a login revoked (logged
    out in another tab), expired, of a deactivated account or of someone no longer in the workspace ends at
    once, and a changed role or name shows at once. Each use slides the expiry forward, writing at most once
    every ``SLIDE_EVERY``.
    """
    if not token:
        return None
    at = now()
    with session_scope() as session:
        row = session.execute(
            select(AuthSession.id, AuthSession.expires_at, User.id, User.name, User.email,
                   WorkspaceMember.workspace_id, WorkspaceMember.role)
            .join(User, User.id == AuthSession.user_id)
            .join(WorkspaceMember, (WorkspaceMember.user_id == AuthSession.user_id)
                  & (WorkspaceMember.workspace_id == AuthSession.workspace_id))
            .where(AuthSession.token_hash == _token_hash(token), AuthSession.revoked_at.is_(None),
                   AuthSession.expires_at > at, User.is_active.is_(True))
        ).first()
        if row is None:
            return None
        session_id, expires_at, user_id, name, email, workspace_id, role = row
        slid = at + timedelta(hours=get_settings().session_ttl_h)
        if expires_at < slid - SLIDE_EVERY:
            session.execute(update(AuthSession).where(AuthSession.id == session_id).values(expires_at=slid))
    return Actor(user_id, workspace_id, role, name, email)


def logout(token: str | None) -> None:
    """Revoke a login token (idempotent)."""
    if not token:
        return
    with session_scope() as session:
        session.execute(update(AuthSession).where(AuthSession.token_hash == _token_hash(token))
                        .values(revoked_at=now()))


def revoke_logins(session: Session, user_id: int) -> None:
    """End every open login of an account (each of its tabs ends at its next interaction)."""
    session.execute(update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                    .values(revoked_at=now()))


def change_own_password(actor: Actor, current: str, new: str) -> str:
    """*Minha conta*: change one's own password, proving the current one first.

    Every open login of the account ends with the old password — other tabs and browsers, and the caller's own
    token, which may be what leaked — and the caller gets a new login in the same transaction.

    Returns:
        The new login's token (the panel keeps it, and puts it in the browser's cookie).

    Raises:
        AuthError: the current password is wrong. InvalidInput: the new one is too short.
    """
    new_hash = hash_password(new or "")
    with session_scope() as session:
        stored = session.scalar(select(User.password_hash).where(User.id == actor.user_id))
    if stored is None or not _verify(stored, current or ""):
        raise AuthError("wrong current password", key="error.current_password")
    with session_scope() as session:
        session.execute(update(User).where(User.id == actor.user_id).values(password_hash=new_hash))
        revoke_logins(session, actor.user_id)
        return open_session(session, actor)
