"""The one owner of the database connection: an engine per URL and ``session_scope()``.

Nothing connects at import time. Streamlit caches the engine with ``st.cache_resource`` through
``get_engine``; each job opens its own session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
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


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured DATABASE_URL), created on first use."""
    url = normalize_url(url or get_settings().database_url or "")
    if not url:
        raise RuntimeError("DATABASE_URL is not set; start the product with `python -m workbench up`.")
    engine = _engines.get(url)
    if engine is None:
        # hide_parameters: an error's text (logged by RQ, stored with a failed job) would otherwise quote the
        # statement's values, which are message bodies, names and phones
        engine = _engines[url] = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                                               hide_parameters=True)
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
    """Close every pooled connection and forget the engines (after a fork, or at shutdown)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _makers.clear()
