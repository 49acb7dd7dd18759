"""What running one SQL statement costs this process's CPU: through SQLAlchemy, as a ``HotStatement``, and on a
bare psycopg cursor (the floor), in one run on the same connection.

The worker runs two to seven statements per message, so the client's own CPU per statement is a visible share of
the product's CPU per message on a small machine; this is why the message path's statements are
``workbench.store.db.HotStatement``s. The statement is an insert of a row with a ``jsonb`` value that returns its id,
the shape of the message path's statements (in a temporary table). CPU time of this process only (the server's is
the same for all).

    python bench/sql_overhead.py                  # a fresh database on embedded servers in a temp dir
    DATABASE_URL=postgresql+psycopg://... python bench/sql_overhead.py
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import servers  # noqa: E402
from bench.redis_client import ROUNDS, cpu_us, print_against_floor  # noqa: E402

STATEMENTS = 3000


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

        counter = itertools.count()

        def params() -> dict:
            k = next(counter)
            return {"n": k, "label": "mensagem", "data": {"run": k, "node": "boas-vindas"}}

        def bare() -> None:
            values = params()
            cursor.execute(hot.sql, {**values, "data": Jsonb(values["data"])})
            cursor.fetchall()

        rows = [("bare psycopg cursor (floor)", cpu_us(bare, STATEMENTS)),
                ("HotStatement (message path)", cpu_us(lambda: hot.execute(session, params()), STATEMENTS)),
                ("SQLAlchemy Connection.execute(text)",
                 cpu_us(lambda: connection.execute(statement, params()).all(), STATEMENTS))]
        connection.rollback()
    engine.dispose()
    print(f"CPU µs of this process per statement, median of {ROUNDS} rounds of {STATEMENTS}")
    print_against_floor(rows)


def main() -> None:
    database_url, _, stops = servers(Path(tempfile.mkdtemp(prefix="wbsql-")))  # DATABASE_URL's server, else embedded
    try:
        run(database_url)
    finally:
        for stop in stops:
            stop()


if __name__ == "__main__":
    main()
