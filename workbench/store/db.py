"""The one owner of the database connection: an engine per URL and ``session_scope()``.

Nothing connects at import time. Streamlit caches the engine with ``st.cache_resource`` through
``get_engine``; each job opens its own session.

Database errors must not carry what was being written (message text, phones) into logs or the failed streams:
the engine hides bound parameters from its exception texts, and ``safe_error_text`` describes an error by its
kind and the names involved, never by PostgreSQL's message (which quotes values: "Key (phone)=(...)").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, TextClause, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
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
        event.listen(engine, "checkout", _refresh_plans)
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


# How long a connection keeps the plans PostgreSQL cached for it (PLAN_TTL_S; see _refresh_plans).
PLAN_TTL_S = 5.0
_PLANS_AT = "workbench.plans_at"


def _refresh_plans(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Have PostgreSQL plan this connection's statements again if its plans are older than ``PLAN_TTL_S``.

    A pooled connection keeps the plans of its prepared statements (psycopg prepares a statement run five times)
    and of the foreign-key checks its writes fire, and PostgreSQL makes them again only when a table is analyzed,
    which autovacuum does at most once a minute. A plan made while a table was nearly empty, as a new
    installation's tables are, scans it on every run, and a burst grows it to thousands of rows within that
    minute. ``DISCARD PLANS`` keeps the statements prepared and lets each be planned again, with the tables' sizes
    as they are now, the next time it runs: a few milliseconds every ``PLAN_TTL_S`` for a busy connection.
    """
    now = time.monotonic()
    planned_at = record.info.setdefault(_PLANS_AT, now)
    if now - planned_at < PLAN_TTL_S:
        return
    try:
        dbapi_connection.execute("DISCARD PLANS")
        dbapi_connection.rollback()
    except psycopg.Error:
        # Broken since the pool's ping: the caller's first statement meets it and raises as SQLAlchemy does (a
        # raw psycopg error from here would slip past every handler of an outage). The next checkout tries again.
        with contextlib.suppress(psycopg.Error):
            dbapi_connection.rollback()
        return
    record.info[_PLANS_AT] = now


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


_PSYCOPG = psycopg_dialect()
_CURSOR = "workbench.hot_cursor"
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


class HotStatement:
    """A statement of the message path, compiled once by SQLAlchemy and run on the session's psycopg connection.

    SQLAlchemy's execution of a statement (cache lookup, parameter processing, result set-up) costs about 100 µs of
    CPU on a 2-core machine, more than psycopg's own work for it (about 60 µs; ``bench/sql_overhead.py``), and a
    message's way through the worker runs two to seven statements. The statements that run for every message or
    batch use this instead; everything else goes through the session as usual.

    The SQL is SQLAlchemy's own rendering of the clause for psycopg (named parameters with their casts), run in the
    session's transaction. A ``dict`` parameter, or a list of them (rows for ``jsonb_to_recordset``), is sent as
    ``jsonb``; other lists go as arrays. An error is raised as
    SQLAlchemy raises it (``OperationalError`` for PostgreSQL out of reach, ``IntegrityError`` …), its parameters
    hidden, so callers handle it as any other.
    """

    def __init__(self, clause: TextClause) -> None:
        self.sql = str(clause.compile(dialect=_PSYCOPG))

    def execute(self, session: Session, params: dict[str, Any]) -> list[tuple]:
        """Run the statement in ``session``'s transaction; the rows it returns (none for a plain write)."""
        pooled = session.connection().connection
        params = {name: Jsonb(value) if _is_document(value) else value for name, value in params.items()}
        try:
            # One cursor per connection, kept in the pool's record of it (it lives and goes with the connection; one
            # thread uses a connection at a time): a new cursor per statement cost a fifth of a HotStatement's CPU.
            cursor, driver = pooled.info.get(_CURSOR), pooled.driver_connection
            if cursor is None or cursor.closed or cursor.connection is not driver:  # a new connection, same record
                cursor = pooled.info[_CURSOR] = driver.cursor()
            cursor.execute(self.sql, params)  # prepared by psycopg from its fifth run (see _refresh_plans)
            result = cursor.pgresult
            return cursor.fetchall() if result is not None and result.status == _TUPLES_OK else []
        except psycopg.Error as exc:
            raise sa_exc.DBAPIError.instance(self.sql, params, exc, psycopg.Error, hide_parameters=True) from exc

    def first(self, session: Session, params: dict[str, Any]) -> tuple | None:
        """Run the statement; its first row, or None."""
        rows = self.execute(session, params)
        return rows[0] if rows else None


_HELD = "workbench.held_rows"


class HeldRows:
    """Rows for multi-row ``HotStatement``s held back within a transaction and written together: one statement of
    each kind for a whole batch of inbound events instead of one per message (see ``hold_rows``).

    Rows are held under a key (the contact's phone): whoever is about to read or write what a key's rows would
    change writes them first (``write_for``), so within the transaction nothing sees the difference but the
    statement count.
    """

    def __init__(self) -> None:
        self._parts: dict[HotStatement, list[tuple[list[dict[str, Any]], Callable[[list[tuple]], None] | None]]] = {}
        self._keys: set[str] = set()
        self._ids: dict[HotStatement, tuple[list[int], int]] = {}

    def add(self, statement: HotStatement, rows: list[dict[str, Any]], key: str,
            written: Callable[[list[tuple]], None] | None = None, first: bool = False) -> None:
        """Hold ``rows`` for ``statement``; ``written`` gets the rows the statement returned for them once written.
        ``first``: other held rows may refer to these (a new row's id), so this statement is written before the
        others, whenever its rows were added."""
        if first and statement not in self._parts:
            self._parts = {statement: [], **self._parts}
        self._parts.setdefault(statement, []).append((rows, written))
        self._keys.add(key)

    def new_id(self, session: Session, reserve: HotStatement) -> int | None:
        """An id for a new row to hold, from ``reserve`` (``:n`` ids of the table's sequence), or None for the first
        such row of the transaction: written at once with its id returned, it costs one round trip, where a
        reservation and a held write cost two, and a batch of one message (a paced flow) has no other. Later ids
        are reserved in blocks that double (2, 4 … 64): a few round trips for a burst's hundreds of rows. Ids
        reserved and not used are skipped, as a sequence skips those of a rolled-back transaction."""
        if reserve not in self._ids:
            self._ids[reserve] = ([], 1)
            return None
        ids, block = self._ids[reserve]
        if not ids:
            block = min(block * 2, 64)
            ids = [row[0] for row in reserve.execute(session, {"n": block})]
        self._ids[reserve] = (ids[1:], block)
        return ids[0]

    def write_for(self, session: Session, key: str) -> None:
        """Write everything held if anything is held under ``key``."""
        if key in self._keys:
            self.write(session)

    def write(self, session: Session) -> None:
        """Run each statement once with all its held rows, in the order they were added.

        A statement that returns rows must return one per row it was given, in an order ``sorted`` restores (the
        outbox's message ids come from a sequence in the rows' order): each ``written`` gets its own slice.
        """
        parts, self._parts, self._keys = self._parts, {}, set()
        for statement, added in parts.items():
            result = sorted(statement.execute(session, {"rows": [row for rows, _ in added for row in rows]}))
            start = 0
            for rows, written in added:
                if written is not None:
                    written(result[start:start + len(rows)])
                start += len(rows)


@contextmanager
def hold_rows(session: Session) -> Iterator[HeldRows]:
    """Hold the rows ``write_rows`` gets in ``session`` until the block ends (written then, unless it raises) or
    until ``HeldRows.write``; the drain's batches use it (``engine/worker/inbound.py``)."""
    held = session.info[_HELD] = HeldRows()
    try:
        yield held
        held.write(session)
    finally:
        session.info.pop(_HELD, None)


def write_rows(session: Session, statement: HotStatement, rows: list[dict[str, Any]], key: str | None,
               written: Callable[[list[tuple]], None] | None = None) -> None:
    """Run a multi-row ``statement`` (``:rows``, a jsonb array) now, or hold the rows under ``key`` when the session
    holds rows (``hold_rows``) and a key is given; ``written`` gets the statement's rows for them, sorted, once
    written."""
    held: HeldRows | None = session.info.get(_HELD)
    if held is not None and key is not None:
        held.add(statement, rows, key, written)
        return
    result = sorted(statement.execute(session, {"rows": rows}))
    if written is not None:
        written(result)


def held_rows(session: Session) -> HeldRows | None:
    """The rows ``session`` holds (``hold_rows``), or None when it writes them at once."""
    return session.info.get(_HELD)


def write_held(session: Session) -> None:
    """Write the rows ``session`` holds (``hold_rows``) now, if it holds any."""
    held: HeldRows | None = session.info.get(_HELD)
    if held is not None:
        held.write(session)


def _is_document(value: Any) -> bool:
    """A parameter HotStatement sends as jsonb: a dict, or a non-empty list of dicts."""
    return isinstance(value, dict) or (isinstance(value, list) and bool(value) and isinstance(value[0], dict))
