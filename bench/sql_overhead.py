"""What running one SQL statement costs this process's CPU: through SQLAlchemy, as a ``HotStatement``, and on a
bare psycopg cursor (the floor), in one run on the same connection.

The worker runs two to seven statements per message, so the client's own CPU per statement is a visible share of
the product's CPU per message on a small machine; this is why the message path's statements are
``workbench.store.db.HotStatement``s. The statement is an insert of a row with a ``jsonb`` value that returns its id,
the shape of the message path's statements (in a temporary table). CPU time of this process only (the server's is
the same for all).

    python bench/sql_overhead.py                  # embedded PostgreSQL in a temp dir
    DATABASE_URL=postgresql+psycopg://... python bench/sql_overhead.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATEMENTS = 3000
ROUNDS = 5


def _cpu_us(call, n: int) -> float:
    """Median over ROUNDS of this process's CPU µs per call."""
    samples = []
    for _ in range(ROUNDS):
        began = time.process_time()
        for k in range(n):
            call(k)
        samples.append((time.process_time() - began) / n * 1e6)
    return statistics.median(samples)


def run(url: str) -> None:
    """Print the CPU per statement of each way and its multiple of the bare cursor's."""
    from psycopg.types.json import Jsonb
    from sqlalchemy import bindparam, create_engine, text
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.orm import Session

    from workbench.store.db import HotStatement, normalize_url

    engine = create_engine(normalize_url(url), hide_parameters=True)
    statement = text("INSERT INTO bench_rows (n, label, data) VALUES (:n, :label, :data) RETURNING id").bindparams(
        bindparam("data", type_=JSONB))
    hot = HotStatement(statement)
    with engine.connect() as connection, Session(bind=connection) as session:
        connection.execute(text("CREATE TEMPORARY TABLE bench_rows (id bigserial PRIMARY KEY, n int, label text, "
                                "data jsonb)"))
        cursor = connection.connection.driver_connection.cursor()

        def params(k: int) -> dict:
            return {"n": k, "label": "mensagem", "data": {"run": k, "node": "boas-vindas"}}

        def bare(k: int) -> None:
            cursor.execute(hot.sql, {**params(k), "data": Jsonb(params(k)["data"])})
            cursor.fetchall()

        floor = _cpu_us(bare, STATEMENTS)
        rows = [("bare psycopg cursor (floor)", floor),
                ("HotStatement (message path)", _cpu_us(lambda k: hot.execute(session, params(k)), STATEMENTS)),
                ("SQLAlchemy Connection.execute(text)",
                 _cpu_us(lambda k: connection.execute(statement, params(k)).all(), STATEMENTS))]
        connection.rollback()
    engine.dispose()
    print(f"CPU µs of this process per statement, median of {ROUNDS} rounds of {STATEMENTS}")
    for name, us in rows:
        print(f"{name:<38} {us:7.1f} µs   {us / floor:4.1f}x floor")


def main() -> None:
    url = os.environ.get("DATABASE_URL")
    if url:
        run(url)
        return
    from workbench.store.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="wbsql-")))
    try:
        run(server.start())
    finally:
        server.stop()


if __name__ == "__main__":
    main()
