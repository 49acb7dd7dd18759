"""The installation's health (``python -m workbench doctor`` and Configurações › *Saúde do sistema*).

Each check returns one line: ``ok``, ``warn`` (works, but look at it) or ``fail`` (something does not work).
Checks never raise: a server out of reach is itself a ``fail`` line, and the checks that need it say they were
skipped. Nothing here changes the installation (no key file is created, no migration applied).
"""

from __future__ import annotations

import os
import platform
import shutil
import stat
import time
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata

import redis as redis_lib
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet, InvalidToken
from rq import Worker
from rq.scheduler import RQScheduler
from sqlalchemy import create_engine, func, select, text

from connector.contracts import IN_FAILED_STREAM, STATUS_HASH, inbound_backlog
from workbench.base.clock import now
from workbench.services.auth import Actor
from workbench.store.config import get_settings
from workbench.store.db import normalize_url
from workbench.store.migrations import alembic_config
from workbench.store.models import AIProvider, Instance, Integration, Outbox, WorkspaceSecret

LIBRARIES = ("sqlalchemy", "psycopg", "alembic", "redis", "rq", "streamlit", "cryptography", "duckdb", "polars",
             "httpx", "neonize")
MIN_PYTHON = (3, 11)
FREE_DISK_WARN = 2 * 1024 ** 3
FREE_DISK_FAIL = 200 * 1024 ** 2
SECRETS_SAMPLED = 50
"""Stored secrets tried with the key per table (a wrong key fails on the first; a few are enough)."""
OUTBOX_LATE = timedelta(minutes=5)
QUEUES = ("inbound", "default")  # the workers' queues (workbench/launcher.py), whose scheduler locks we look at
STALE_HEARTBEAT_S = 15
INBOUND_BACKLOG_WARN = 1000
"""Inbound events waiting in one number's lanes above which the workers are said to fall behind."""
TIMEOUT_S = 3


@dataclass(frozen=True)
class Check:
    """One line of the report. ``detail`` is plain text (versions, counts, paths): show it literally."""

    name: str  # a stable id: python, libraries, postgresql, redis, migrations, data dir, free disk, secret key,
    # workers, scheduler, connector, failed events, connectors, outbox
    status: str  # "ok" | "warn" | "fail"
    detail: str
    subject: str = ""  # which number, for connector and failed events: "3 (Loja)"

    @property
    def label(self) -> str:
        """The name with its subject, as ``doctor`` prints it."""
        return f"{self.name} {self.subject}" if self.subject else self.name


def run_checks(database_url: str | None = None, redis_url: str | None = None) -> list[Check]:
    """Every check, in the order ``doctor`` prints them (URLs default to the configured ones)."""
    settings = get_settings()
    database_url = database_url or settings.database_url
    redis_url = redis_url or settings.redis_url
    checks = [_python(), *_libraries()]
    engine = None
    if database_url:
        engine = create_engine(normalize_url(database_url), pool_pre_ping=True,
                               connect_args={"connect_timeout": TIMEOUT_S})
    try:
        pg_ok = _postgres(engine, checks)
        client = redis_lib.Redis.from_url(redis_url, socket_timeout=TIMEOUT_S,
                                          socket_connect_timeout=TIMEOUT_S) if redis_url else None
        redis_ok = _redis(client, checks)
        if pg_ok:
            checks.extend(_guarded("migrations", lambda: [_migrations(engine, database_url)]))
        checks.extend(_data_dir())
        if pg_ok:
            checks.extend(_guarded("secret key", lambda: [_secret_key(engine)]))
        if redis_ok:
            checks.extend(_guarded("workers", lambda: _processes(client)))
        if pg_ok and redis_ok:
            checks.extend(_guarded("connectors", lambda: _connectors(engine, client)))
        if pg_ok:
            checks.extend(_guarded("outbox", lambda: [_outbox(engine)]))
    finally:
        if engine is not None:
            engine.dispose()
    return checks


def _guarded(name: str, check) -> list[Check]:
    """Run one check; an error (a table missing in an unmigrated database) is its failure line, not a crash."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - whatever stops the check is what the operator must see
        return [Check(name, "fail", f"could not check ({type(exc).__name__})")]


def failed(checks: list[Check]) -> bool:
    """Whether any check failed (``doctor`` exits non-zero then)."""
    return any(c.status == "fail" for c in checks)


def system_health(actor: Actor) -> list[Check]:
    """Admins only: the same checks for Configurações › *Saúde do sistema*."""
    actor.require("admin")
    return run_checks()


def _python() -> Check:
    version = platform.python_version()
    ok = tuple(int(p) for p in version.split(".")[:2]) >= MIN_PYTHON
    return Check("python", "ok" if ok else "fail", version if ok else f"{version} (needs 3.11 or later)")


def _libraries() -> list[Check]:
    found, missing = [], []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    lines = [Check("libraries", "ok", ", ".join(found))]
    if missing:
        lines.append(Check("libraries missing", "fail", ", ".join(missing)))
    return lines


def _postgres(engine, checks: list[Check]) -> bool:
    if engine is None:
        checks.append(Check("postgresql", "fail", "DATABASE_URL is not set"))
        return False
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
    except Exception as exc:  # noqa: BLE001 - any reason it cannot be reached is the finding
        checks.append(Check("postgresql", "fail", f"not reachable ({type(exc).__name__})"))
        return False
    checks.append(Check("postgresql", "ok", f"PostgreSQL {version}"))
    return True


def _redis(client, checks: list[Check]) -> bool:
    if client is None:
        checks.append(Check("redis", "fail", "REDIS_URL is not set"))
        return False
    try:
        version = client.info("server").get("redis_version")
    except redis_lib.RedisError as exc:
        checks.append(Check("redis", "fail", f"not reachable ({type(exc).__name__})"))
        return False
    checks.append(Check("redis", "ok", f"Redis {version}"))
    return True


def _migrations(engine, database_url: str) -> Check:
    heads = set(ScriptDirectory.from_config(alembic_config(normalize_url(database_url))).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == heads:
        return Check("migrations", "ok", f"at {', '.join(sorted(heads))}")
    return Check("migrations", "fail", f"database at {', '.join(sorted(current)) or 'nothing'}, code at "
                                       f"{', '.join(sorted(heads))}: run `python -m workbench migrate`")


def _data_dir() -> list[Check]:
    path = get_settings().data_dir.resolve()
    if not path.is_dir():
        return [Check("data dir", "fail", f"{path} does not exist")]
    mode = stat.S_IMODE(path.stat().st_mode)
    opened = [p.name for p in (path, path / "secret.key") if p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077]
    if not os.access(path, os.W_OK):
        lines = [Check("data dir", "fail", f"{path} is not writable")]
    elif opened:
        lines = [Check("data dir", "fail", f"{path} ({oct(mode)}): {', '.join(opened)} open to other users; "
                                           f"run `chmod -R go-rwx {path}`")]
    else:
        lines = [Check("data dir", "ok", f"{path} ({oct(mode)})")]
    free = shutil.disk_usage(path).free
    status = "fail" if free < FREE_DISK_FAIL else "warn" if free < FREE_DISK_WARN else "ok"
    lines.append(Check("free disk", status, f"{free / 1024 ** 3:.1f} GiB free"))
    return lines


def _fernet() -> Fernet | None:
    """The configured key, without creating a key file (``store.crypto`` would make one)."""
    settings = get_settings()
    if settings.secret_key:
        return Fernet(settings.secret_key.encode())
    key_file = settings.data_dir / "secret.key"
    return Fernet(key_file.read_bytes().strip()) if key_file.exists() else None


def _secret_key(engine) -> Check:
    with engine.connect() as conn:
        stored = [token for column in (Integration.secret, WorkspaceSecret.value, AIProvider.api_key)
                  for token in conn.scalars(select(column).where(column.is_not(None)).limit(SECRETS_SAMPLED))]
    try:
        fernet = _fernet()
    except ValueError:
        return Check("secret key", "fail", "the key is not a valid Fernet key")
    if fernet is None:
        if stored:
            return Check("secret key", "fail", f"no key, {len(stored)} stored secret(s) cannot be read")
        return Check("secret key", "warn", "no key yet (made when the first secret is stored)")
    wrong = 0
    for token in stored:
        try:
            fernet.decrypt(bytes(token))
        except InvalidToken:
            wrong += 1
    if wrong:
        return Check("secret key", "fail", f"{wrong} of {len(stored)} stored secret(s) do not decrypt: wrong key")
    return Check("secret key", "ok", f"present; {len(stored)} stored secret(s) decrypt")


def _processes(client) -> list[Check]:
    workers = [w for w in Worker.all(connection=client) if set(w.queue_names()) & set(QUEUES)]
    lines = [Check("workers", "ok" if workers else "fail", f"{len(workers)} alive" if workers else
                   "none alive: start `python -m workbench up` (or `workers`)")]
    held = [q for q in QUEUES if client.exists(RQScheduler.get_locking_key(q))]
    lines.append(Check("scheduler", "ok" if len(held) == len(QUEUES) else "fail",
                       "alive" if len(held) == len(QUEUES) else "not running: delayed steps would not fire"))
    return lines


def _connectors(engine, client) -> list[Check]:
    with engine.connect() as conn:
        rows = conn.execute(select(Instance.id, Instance.name, Instance.desired_state)
                            .where(Instance.removed_at.is_(None)).order_by(Instance.id)).all()
    lines = []
    now_ms = int(time.time() * 1000)
    for instance_id, name, desired in rows:
        label = f"{instance_id} ({name})"
        beat = int(client.hget(STATUS_HASH.format(instance_id), "heartbeat") or 0)
        if desired == "stopped":
            lines.append(Check("connector", "ok", "stopped on purpose", label))
        elif not beat or now_ms - beat > STALE_HEARTBEAT_S * 1000:
            age = f"last heartbeat {round((now_ms - beat) / 1000)} s ago" if beat else "no heartbeat"
            lines.append(Check("connector", "fail", age, label))
        else:
            lines.append(Check("connector", "ok", f"heartbeat {round((now_ms - beat) / 1000, 1)} s ago", label))
        backlog = inbound_backlog(client, instance_id)
        if backlog >= INBOUND_BACKLOG_WARN:
            lines.append(Check("inbound backlog", "warn", f"{backlog} inbound event(s) waiting for the workers: "
                               "start more workers (`python -m workbench workers`)", label))
        waiting = client.xlen(IN_FAILED_STREAM.format(instance_id))
        if waiting:
            lines.append(Check("failed events", "warn", f"{waiting} inbound event(s) set aside (Connections page)",
                               label))
    if not rows:
        lines.append(Check("connectors", "ok", "no numbers yet"))
    return lines


def _outbox(engine) -> Check:
    with engine.connect() as conn:
        late = conn.scalar(select(func.count()).select_from(Outbox).where(
            Outbox.status == "pending", Outbox.created_at < now() - OUTBOX_LATE))
    if late:
        return Check("outbox", "warn", f"{late} message(s) pending for over {OUTBOX_LATE.seconds // 60} minutes")
    return Check("outbox", "ok", "nothing pending for long")
