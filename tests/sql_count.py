"""Counting the SQL statements a piece of code runs, at the driver: both SQLAlchemy's statements and the message
path's ``HotStatement``s (``workbench/store/db.py``), which do not pass through SQLAlchemy's events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PING = ";"  # what SQLAlchemy's pool_pre_ping runs on psycopg


@contextmanager
def statements_run() -> Iterator[list[str]]:
    """The text of every statement psycopg runs meanwhile, in any thread, in order; an ``executemany`` counts once,
    and the pool's liveness ping (``;``, as a connection is taken from the pool) not at all."""
    seen: list[str] = []
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted(self, query, *args, **kwargs):
        if query != PING:
            seen.append(str(query))
        return execute(self, query, *args, **kwargs)

    def counted_many(self, query, *args, **kwargs):
        seen.append(str(query))
        return executemany(self, query, *args, **kwargs)

    psycopg.Cursor.execute, psycopg.Cursor.executemany = counted, counted_many
    try:
        yield seen
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany
