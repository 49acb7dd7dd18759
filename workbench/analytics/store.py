"""The DuckDB copy of PostgreSQL that dashboards, notebooks and benchmarks read.

Why a copy (docs/architecture.md, "Analytics"): DuckDB's postgres extension cannot be downloaded where the
product runs, so rows travel through psycopg's ``COPY ... TO STDOUT`` (CSV) into polars and from there, as Arrow,
into a DuckDB file in the data dir. Only the columns the metrics need are copied: no message text, no field
values.

**Generations.** DuckDB lets one process write a file, and a file open for writing cannot be opened by another
process at all. So the writer never touches the file readers use: ``refresh`` copies the current generation to
a new file (``snapshot-<n>.duckdb``), brings it up to date, checkpoints and closes it, then points
``current`` at it with an atomic rename. Readers open generations read-only (any number of processes may) and
switch to the newest on their next query; a reader still on an older generation keeps its open file (unlinking
an open file is safe on POSIX) and the previous generation is kept anyway. One writer at a time per data dir:
an ``flock`` on ``writer.lock``.

**Increments.** Append-only tables (messages, funnel events, conversation events) are copied by id above a
watermark. A row whose transaction commits after a later id was copied would be skipped by a plain ``id >
last``, so each refresh re-reads the ids above the watermark of a refresh at least ``LATE_COMMIT_S`` older and
replaces them (in the first minute after a build, the last ``LATE_COMMIT_IDS`` ids below it). Rows that change
(conversations, contacts, runs, tags, names) are copied whole each time: they are one row per conversation or
contact, not per message. A full rebuild runs when there is no generation, the layout changed (``LAYOUT``), or
the last one is older than ``REBUILD_S`` (catches what increments cannot see: a contact merge moving messages
between conversations, a transaction that stayed open for minutes).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from workbench.analytics import metrics
from workbench.store.config import get_settings
from workbench.store.db import get_engine

log = logging.getLogger(__name__)

LAYOUT = 3
"""Bumped when the copied tables or columns change: the next refresh rebuilds from scratch."""
LATE_COMMIT_S = 60
"""How long a transaction may stay open after taking its ids and still be counted by the next refreshes."""
LATE_COMMIT_IDS = 10_000
"""Until a refresh is ``LATE_COMMIT_S`` old, how many ids below it the next refreshes read again."""
REBUILD_S = 6 * 3600
"""Age after which a refresh rebuilds the whole copy instead of adding to it."""
OPEN_RETRIES = 5


@dataclass(frozen=True)
class Source:
    """One copied table: its name in DuckDB, the PostgreSQL query, and its columns as ``(name, kind)``.

    ``kind`` is ``int``, ``float``, ``str`` or ``ts`` (timestamptz, carried as epoch microseconds so no text parsing is
    involved). ``append`` tables are copied by ``id`` above a watermark; others are copied whole.
    """

    name: str
    query: str
    columns: tuple[tuple[str, str], ...]
    append: bool = False


def _ts(column: str) -> str:
    return f"(extract(epoch from {column}) * 1000000)::bigint"


SOURCES: tuple[Source, ...] = (
    Source("workspaces", "SELECT id, timezone FROM workspaces", (("id", "int"), ("timezone", "str"))),
    Source("users", "SELECT id, name FROM users", (("id", "int"), ("name", "str"))),
    Source("members", "SELECT workspace_id, user_id, role FROM workspace_members",
           (("workspace_id", "int"), ("user_id", "int"), ("role", "str"))),
    Source("teams", "SELECT id, workspace_id, name FROM teams", (("id", "int"), ("workspace_id", "int"),
                                                                 ("name", "str"))),
    Source("team_members", "SELECT team_id, user_id FROM team_members", (("team_id", "int"), ("user_id", "int"))),
    Source("instances", "SELECT id, workspace_id, name, phone FROM instances",
           (("id", "int"), ("workspace_id", "int"), ("name", "str"), ("phone", "str"))),
    Source("tags", "SELECT id, workspace_id, name FROM tags", (("id", "int"), ("workspace_id", "int"),
                                                               ("name", "str"))),
    Source("contact_tags", f"SELECT contact_id, tag_id, {_ts('created_at')} FROM contact_tags",
           (("contact_id", "int"), ("tag_id", "int"), ("created_at", "ts"))),
    # source: the "origem" field when a contact has one (imports, forms), else the number it wrote to
    Source("contacts", "SELECT id, workspace_id, instance_id, phone, coalesce(name, push_name, phone), "
                       f"left(coalesce(custom_data->>'origem', custom_data->>'source'), 80), {_ts('created_at')} "
                       "FROM contacts",
           (("id", "int"), ("workspace_id", "int"), ("instance_id", "int"), ("phone", "str"), ("name", "str"),
            ("source", "str"), ("created_at", "ts"))),
    Source("conversations", "SELECT id, workspace_id, instance_id, contact_id, status, team_id, agent_id, "
                            f"{_ts('assigned_at')}, {_ts('created_at')}, {_ts('closed_at')} FROM conversations",
           (("id", "int"), ("workspace_id", "int"), ("instance_id", "int"), ("contact_id", "int"),
            ("status", "str"), ("team_id", "int"), ("agent_id", "int"), ("assigned_at", "ts"),
            ("created_at", "ts"), ("closed_at", "ts"))),
    Source("funnels", "SELECT id, workspace_id, name FROM funnels", (("id", "int"), ("workspace_id", "int"),
                                                                     ("name", "str"))),
    Source("funnel_versions", f"SELECT id, funnel_id, version, definition::text, {_ts('published_at')} "
                              "FROM funnel_versions",
           (("id", "int"), ("funnel_id", "int"), ("version", "int"), ("definition", "str"),
            ("published_at", "ts"))),
    Source("funnel_runs", "SELECT id, workspace_id, funnel_id, version_id, conversation_id, contact_id, status, "
                          f"current_node, {_ts('started_at')}, {_ts('ended_at')} FROM funnel_runs",
           (("id", "int"), ("workspace_id", "int"), ("funnel_id", "int"), ("version_id", "int"),
            ("conversation_id", "int"), ("contact_id", "int"), ("status", "str"), ("current_node", "str"),
            ("started_at", "ts"), ("ended_at", "ts"))),
    # node_type 'odoo' with output 'sucesso' is a lead sent to the CRM; an 'ai_reply' step's event carries the
    # model's figures (total_tokens, cost_estimate) and {"ai": {"outcome", "missing"}}: copied as columns when
    # present (numbers only), so those reports show up by themselves once such steps run
    Source("funnel_events", "SELECT id, workspace_id, run_id, funnel_id, version_id, node_id, node_type, status, "
                            "output, CASE WHEN jsonb_typeof(data->'total_tokens') = 'number' "
                            "THEN (data->>'total_tokens')::numeric::bigint END, "
                            "CASE WHEN jsonb_typeof(data->'cost_estimate') = 'number' "
                            "THEN (data->>'cost_estimate')::float8 END, left(data->'ai'->>'outcome', 32), "
                            f"{_ts('created_at')} FROM funnel_events",
           (("id", "int"), ("workspace_id", "int"), ("run_id", "int"), ("funnel_id", "int"), ("version_id", "int"),
            ("node_id", "str"), ("node_type", "str"), ("status", "str"), ("output", "str"), ("tokens", "int"),
            ("cost", "float"), ("ai_outcome", "str"), ("created_at", "ts")), append=True),
    Source("messages", "SELECT id, workspace_id, instance_id, conversation_id, direction, sent_by_user_id, "
                       f"sent_by_funnel_id, {_ts('created_at')} FROM messages",
           (("id", "int"), ("workspace_id", "int"), ("instance_id", "int"), ("conversation_id", "int"),
            ("direction", "str"), ("sent_by_user_id", "int"), ("sent_by_funnel_id", "int"), ("created_at", "ts")),
           append=True),
    # what happened to a conversation (workbench/services/conversations.py and runs.py record these)
    Source("conversation_events",
           "SELECT id, workspace_id, subject_id, kind, actor_user_id, (data->>'agent_id')::bigint, "
           "(data->>'team_id')::bigint, left(coalesce(data->>'reason', data->>'source'), 32), "
           f"{_ts('created_at')} FROM activity_events WHERE subject_type = 'conversation' "
           "AND kind IN ('assigned', 'bot_paused', 'status_open', 'status_pending', 'status_closed')",
           (("id", "int"), ("workspace_id", "int"), ("conversation_id", "int"), ("kind", "str"),
            ("actor_id", "int"), ("agent_id", "int"), ("team_id", "int"), ("reason", "str"), ("created_at", "ts")),
           append=True),
)

CRM_COLUMNS = ("odoo_lead_id", "crm_lead_id")
"""A contact's lead id in a CRM, when the CRM integration exists (its migration adds one of these): contacts with
one are "sent to CRM". Without such a column, the table is empty and the reports hide the figure."""

_KINDS = {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "ts": pl.Int64}


def _crm_source(cursor: Any) -> tuple[Source, bool]:
    """The ``crm_leads`` table: contacts with a CRM lead id, or none when the column does not exist (yet)."""
    found = cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                           " AND table_name = 'contacts' AND column_name = ANY(%s) ORDER BY column_name",
                           (list(CRM_COLUMNS),)).fetchall()
    where = f"{found[0][0]} IS NOT NULL" if found else "false"
    return Source("crm_leads", f"SELECT id FROM contacts WHERE {where}", (("contact_id", "int"),)), bool(found)


def directory() -> Path:
    """Where the generations live: ``<data dir>/analytics``."""
    path = get_settings().data_dir / "analytics"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _current_name(folder: Path) -> str | None:
    try:
        name = (folder / "current").read_text().strip()
    except FileNotFoundError:
        return None
    return name if name and (folder / name).exists() else None


# -- writing ------------------------------------------------------------------------------------------------------

@contextmanager
def _writer_lock(folder: Path, wait: bool) -> Iterator[bool]:
    with open(folder / "writer.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pull(cursor: Any, source: Source, where: str = "") -> pl.DataFrame:
    """One query's rows as a polars frame, through COPY (CSV: no per-row Python work)."""
    buffer = io.BytesIO()
    query = f"SELECT * FROM ({source.query}) AS s {where}" if where else source.query
    with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    schema = {name: _KINDS[kind] for name, kind in source.columns}
    if buffer.tell() == 0:
        frame = pl.DataFrame(schema=schema)
    else:
        buffer.seek(0)
        frame = pl.read_csv(buffer, has_header=False, new_columns=list(schema), schema=schema)
    timestamps = [pl.from_epoch(pl.col(name), time_unit="us").dt.replace_time_zone("UTC")
                  for name, kind in source.columns if kind == "ts"]
    return frame.with_columns(timestamps) if timestamps else frame


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    try:
        rows = con.execute("SELECT key, value FROM meta").fetchall()
    except duckdb.CatalogException:
        return {}
    return {key: json.loads(value) for key, value in rows}


def refresh(full: bool = False, wait: bool = True) -> dict[str, Any]:
    """Bring the copy up to date with PostgreSQL and publish it as the new current generation.

    Args:
        full: rebuild from scratch even when an increment would do.
        wait: wait for another refresh in progress (else return at once with ``skipped``).

    Returns:
        what was done: ``generation``, ``full``, ``rows`` copied per table, ``seconds``, or ``{"skipped": True}``.
    """
    folder = directory()
    with _writer_lock(folder, wait) as locked:
        if not locked:
            return {"skipped": True}
        return _refresh(folder, full)


def _refresh(folder: Path, full: bool) -> dict[str, Any]:
    started = time.perf_counter()
    current = _current_name(folder)
    number = int(current.split("-")[1].split(".")[0]) + 1 if current else 1
    name = f"snapshot-{number}.duckdb"
    target = folder / name
    target.unlink(missing_ok=True)
    meta: dict[str, Any] = {}
    full = full or current is None
    if not full:
        with duckdb.connect(str(folder / str(current)), read_only=True) as old:
            meta = _meta(old)
        full = meta.get("layout") != LAYOUT or time.time() - meta.get("built_at", 0) > REBUILD_S
        if not full:
            shutil.copyfile(folder / current, target)
    rows: dict[str, int] = {}
    # one consistent view of every table; SQLAlchemy puts the pooled connection's isolation level back afterwards
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with get_engine().connect().execution_options(**options) as conn:
        with conn.connection.driver_connection.cursor() as cursor:
            pg_now = cursor.execute("SELECT extract(epoch from now())::float8").fetchone()[0]
            with duckdb.connect(str(target)) as con:
                touched: set[int] = set()
                touched_runs: set[int] = set()
                crm, meta["crm"] = _crm_source(cursor)
                for source in (*SOURCES, crm):
                    frame = _copy(con, cursor, source, meta, pg_now, full)
                    rows[source.name] = frame.height
                    if source.append and "conversation_id" in frame.columns:
                        touched.update(frame["conversation_id"].drop_nulls().to_list())
                    if source.name == "funnel_events":
                        touched_runs.update(frame["run_id"].drop_nulls().to_list())
                metrics.derive(con, None if full else sorted(touched))
                metrics.derive_steps(con, None if full else sorted(touched_runs))
                meta.update({"layout": LAYOUT, "refreshed_at": pg_now})
                if full:
                    meta["built_at"] = time.time()
                con.execute("CREATE OR REPLACE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
                con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
                con.execute("CHECKPOINT")
        conn.rollback()
    _publish(folder, name)
    return {"generation": number, "full": full, "rows": rows, "seconds": time.perf_counter() - started}


def _copy(con: duckdb.DuckDBPyConnection, cursor: Any, source: Source, meta: dict[str, Any], pg_now: float,
          full: bool) -> pl.DataFrame:
    """Copy one table into ``con``: whole, or (append tables) the ids above the late-commit watermark."""
    if not source.append or full:
        frame = _pull(cursor, source)
        con.register("incoming", frame.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {source.name} AS SELECT * FROM incoming")
        con.unregister("incoming")
        low = None
    else:
        low = _low_watermark(meta.get(f"ids:{source.name}", []), pg_now)
        frame = _pull(cursor, source, f"WHERE id > {int(low)}")
        con.register("incoming", frame.to_arrow())
        con.execute(f"DELETE FROM {source.name} WHERE id > {int(low)}")
        con.execute(f"INSERT INTO {source.name} SELECT * FROM incoming")
        con.unregister("incoming")
    if source.append:
        top = con.execute(f"SELECT coalesce(max(id), 0) FROM {source.name}").fetchall()[0][0]
        history = [entry for entry in meta.get(f"ids:{source.name}", []) if not full]
        history.append([pg_now, int(top)])
        meta[f"ids:{source.name}"] = _trim(history, pg_now)
    return frame


def _low_watermark(history: list[list[float]], pg_now: float) -> int:
    """The highest id copied by a refresh at least ``LATE_COMMIT_S`` ago; when none is that old (just after a
    build), the oldest refresh's highest id less ``LATE_COMMIT_IDS``, so a refresh right after a build does not
    read every row again."""
    old = [top for at, top in history if at <= pg_now - LATE_COMMIT_S]
    if old:
        return int(max(old))
    return max(0, int(min(top for _, top in history)) - LATE_COMMIT_IDS) if history else 0


def _trim(history: list[list[float]], pg_now: float) -> list[list[float]]:
    """Keep the entries younger than ``LATE_COMMIT_S`` plus the newest older one (all the watermark needs)."""
    older = [entry for entry in history if entry[0] <= pg_now - LATE_COMMIT_S]
    younger = [entry for entry in history if entry[0] > pg_now - LATE_COMMIT_S]
    return ([max(older)] if older else []) + younger


def _publish(folder: Path, name: str) -> None:
    """Point ``current`` at ``name`` (atomic rename) and remove generations older than the previous one."""
    previous = _current_name(folder)
    pointer = folder / "current.tmp"
    pointer.write_text(name)
    os.replace(pointer, folder / "current")
    keep = {name, previous}
    for path in folder.glob("snapshot-*.duckdb*"):
        if path.name.split(".duckdb")[0] + ".duckdb" not in keep:
            path.unlink(missing_ok=True)


# -- reading ------------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_open: dict[str, tuple[str, duckdb.DuckDBPyConnection]] = {}


def _connection() -> duckdb.DuckDBPyConnection:
    """A read-only connection to the current generation (this process keeps one, switching when it moves).

    With no generation yet (a fresh install whose worker has not run), one is built here first.
    """
    folder = directory()
    for attempt in range(OPEN_RETRIES):
        name = _current_name(folder)
        if name is None:
            refresh(wait=True)
            continue
        with _lock:
            held = _open.get(str(folder))
            if held and held[0] == name:
                return held[1]
            try:
                con = duckdb.connect(str(folder / name), read_only=True)
            except duckdb.IOException:
                # removed or replaced between reading the pointer and opening it: read the pointer again
                time.sleep(0.05 * (attempt + 1))
                continue
            _open[str(folder)] = (name, con)
            if held:
                held[1].close()
            return con
    raise RuntimeError("analytics copy could not be opened")


def query(sql: str, params: list[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
    """Run one read-only statement on the current generation and return a polars frame.

    Thread-safe: each call uses its own cursor (Streamlit runs sessions in threads).
    """
    con = _connection()
    cursor = con.cursor()
    try:
        return cursor.sql(sql, params=params or None).pl()
    finally:
        cursor.close()


def refreshed_at() -> datetime | None:
    """When PostgreSQL was read for the current generation (None when there is none)."""
    folder = directory()
    if _current_name(folder) is None:
        return None
    value = query("SELECT value FROM meta WHERE key = 'refreshed_at'")
    return datetime.fromtimestamp(json.loads(value.item()), UTC) if value.height else None


def has(feature: str) -> bool:
    """Whether the current generation found an optional source (``crm``: a CRM lead column on contacts)."""
    if _current_name(directory()) is None:
        return False
    value = query("SELECT value FROM meta WHERE key = $key", {"key": feature})
    return bool(value.height and json.loads(value.item()))


def close() -> None:
    """Close this process's reader (tests that switch data dirs)."""
    with _lock:
        for _, con in _open.values():
            con.close()
        _open.clear()
