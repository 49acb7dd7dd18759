"""Accounts, logins and roles.

Passwords are hashed with Argon2id (memory-hard). A login returns an opaque token; the browser keeps it
and we store only its SHA-256, so a leaked database does not leak live sessions. Repeated failures lock
the account for a time that doubles with each further failure.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workbench.base.clock import now
from workbench.base.errors import AuthError, InvalidInput, LoginThrottled, PermissionDenied
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import ROLES, AuthSession, User, WorkspaceMember

_hasher = PasswordHasher()  # argon2id, 64 MiB, t=3: the library's RFC 9106 "low memory" profile
# Unknown e-mails still cost one verification, so timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD = 10


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


def hash_password(password: str) -> str:
    """Argon2id hash of a password that meets the minimum length."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password too short", key="error.password_short", min=MIN_PASSWORD)
    return _hasher.hash(password)


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


def login(email: str, password: str) -> tuple[Actor, str]:
    """Check credentials and open a login. Returns the actor and the token the browser keeps.

    Raises:
        LoginThrottled: the account is locked after repeated failures (even with the right password).
        AuthError: wrong e-mail or password (one message for both).
    """
    settings = get_settings()
    with session_scope() as session:
        user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
        if user is None or not user.is_active:
            _verify(_DUMMY_HASH, password)
            raise AuthError("bad credentials", key="error.bad_credentials")
        if user.locked_until and user.locked_until > now():
            raise LoginThrottled(int((user.locked_until - now()).total_seconds()) + 1)
        if not _verify(user.password_hash, password):
            user.failed_logins += 1
            over = user.failed_logins - settings.login_max_failures
            if over >= 0:
                user.locked_until = now() + timedelta(seconds=settings.login_lockout_s * 2 ** min(over, 10))
            session.commit()
            raise AuthError("bad credentials", key="error.bad_credentials")
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now()
        actor = _actor_for(session, user)
        token = secrets.token_urlsafe(32)
        session.add(AuthSession(token_hash=_token_hash(token), user_id=user.id, workspace_id=actor.workspace_id,
                                expires_at=now() + timedelta(hours=settings.session_ttl_h)))
    return actor, token


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def resume(token: str | None) -> Actor | None:
    """The actor of a live login token (a browser refresh), or None. Slides the expiry forward."""
    if not token:
        return None
    settings = get_settings()
    with session_scope() as session:
        row = session.scalars(select(AuthSession).where(AuthSession.token_hash == _token_hash(token))).first()
        if row is None or row.revoked_at is not None or row.expires_at <= now():
            return None
        user = session.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
        try:
            actor = _actor_for(session, user, row.workspace_id)
        except AuthError:
            return None
        row.expires_at = now() + timedelta(hours=settings.session_ttl_h)
    return actor


def logout(token: str | None) -> None:
    """Revoke a login token (idempotent)."""
    if not token:
        return
    with session_scope() as session:
        session.execute(update(AuthSession).where(AuthSession.token_hash == _token_hash(token))
                        .values(revoked_at=now()))
