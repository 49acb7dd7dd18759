"""The one owner of the database connection: an engine per URL and ``session_scope()``.

Nothing connects at import time. Streamlit caches the engine with ``st.cache_resource`` through
``get_engine``; each job opens its own session.

Database errors must not carry what was being written (message text, phones) into logs or the failed streams:
the engine hides bound parameters from its exception texts, and ``safe_error_text`` describes an error by its
kind and the names involved, never by PostgreSQL's message (which quotes values: "Key (phone)=(...)").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from workbench.store.config import get_settings


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://"):
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    if url.startswith("postgres://"):
        return url.replace("postgres://", "postgresql+psycopg://", 1)
    return url


_engines: dict[str, Engine] = {}
_makers: dict[Engine, sessionmaker[Session]] = {}
_extra_connections = 0


def reserve_connections(count: int) -> None:
    """Let this process's engines open ``count`` more connections than the default 10 (call before first use).

    The calls pool (``engine/worker/calls.py``) runs that many calls at once in threads, each needing a connection
    for its short reads and writes before and after it waits on the network; with the default pool those threads
    would queue for ten connections.
    """
    global _extra_connections
    _extra_connections = max(_extra_connections, count)


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured DATABASE_URL), created on first use."""
    url = normalize_url(url or get_settings().database_url or "")
    if not url:
        raise RuntimeError("DATABASE_URL is not set; start the product with `python -m workbench up`.")
    engine = _engines.get(url)
    if engine is None:
        # hide_parameters: an error's text (logged by RQ, stored with a failed job) would otherwise quote the
        # statement's values, which are message bodies, names and phones
        engine = _engines[url] = create_engine(url, pool_pre_ping=True, pool_size=5,
                                               max_overflow=5 + _extra_connections, hide_parameters=True)
        _makers[engine] = sessionmaker(engine, expire_on_commit=False)
    return engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    engine = engine or get_engine()
    session = _makers[engine]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (at shutdown)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _makers.clear()


def safe_error_text(exc: BaseException) -> str:
    """A description of ``exc`` for logs and failure records that quotes no data.

    A database error gives its kind, SQLSTATE and the constraint, table and column it names (for example
    ``IntegrityError/UniqueViolation sqlstate=23505 constraint=uq_contacts_instance_id``): PostgreSQL's own
    message and its DETAIL line quote the values. Any other exception gives only its type, since its message
    may hold the text being handled.
    """
    if not isinstance(exc, sa_exc.DBAPIError) or exc.orig is None:
        return type(exc).__name__
    orig = exc.orig
    parts = [f"{type(exc).__name__}/{type(orig).__name__}"]
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        parts.append(f"sqlstate={sqlstate}")
    diag = getattr(orig, "diag", None)
    for name in ("constraint_name", "table_name", "column_name"):
        value = getattr(diag, name, None) if diag is not None else None
        if value:
            parts.append(f"{name.removesuffix('_name')}={value}")
    return " ".join(parts)
