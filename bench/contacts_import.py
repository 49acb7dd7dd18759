"""Contact import benchmark: rows/s of the import job next to a bare COPY of the same rows, and peak memory.

A synthetic CSV (name, phone, e-mail, company, a tag column and one custom field) goes through the product's
path in this process: ``read_upload`` (sniff, decode, count), ``validate`` (every row checked), then the job
``run_job`` (batches of ``BATCH_ROWS``: contacts, conversations, tags, activity, the cursor). Next to it, in the
same run, the floor: the very same rows, already parsed, COPY'd into ``contacts`` of another number in one
statement — no checks, no conversations, tags or activity. Each size runs in a fresh process, so its peak RSS
is its own; a flat memory shows as the same peak at both sizes.

    python bench/contacts_import.py                       # 10,000 and 100,000 rows, embedded servers
    python bench/contacts_import.py --rows 20000 50000
    DATABASE_URL=... REDIS_URL=... python bench/contacts_import.py
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

FIRST = ("Ana", "Bruno", "Carla", "Diego", "Eduarda", "Fábio", "Gabriela", "Heitor", "Íris", "João")
DDDS = (11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 41, 47, 48, 51, 61, 62, 71, 81, 85, 91)
LAST = ("Silva", "Souza", "Oliveira", "Santos", "Conceição", "Araújo", "Pereira", "Lima")


def _rows(count: int) -> list[list[str]]:
    """Distinct, valid Brazilian mobiles, written as people do ("(11) 9xxxx-xxxx")."""
    rows = [["Nome", "Telefone", "E-mail", "Empresa", "Tags", "Cargo"]]
    for i in range(count):
        ddd = DDDS[i % len(DDDS)]
        number = f"9{8000_0000 + i:08d}"
        rows.append([f"{FIRST[i % 10]} {LAST[i % 8]} {i}", f"({ddd}) {number[:5]}-{number[5:]}",
                     f"pessoa{i}@example.com", f"Empresa {i % 500}", "feira; lead" if i % 3 else "",
                     ("Gerente", "Analista", "Diretora")[i % 3]])
    return rows


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(database_url: str, rows: int) -> dict:
    """Import ``rows`` synthetic contacts into a fresh workspace of ``database_url`` (migrated here) and COPY the
    same rows; returns and prints rows/s of both and this process's peak RSS (MB). The workspace is deleted
    afterwards. Needs ``REDIS_URL`` (the import is queued there; this process runs the job itself)."""
    from workbench.store.config import get_settings

    data_dir = tempfile.mkdtemp(prefix="wbimp-")
    os.environ.update({"DATABASE_URL": database_url, "WORKBENCH_DATA_DIR": data_dir})
    get_settings.cache_clear()
    from workbench.services import contact_import
    from workbench.services.auth import Actor, create_user
    from workbench.store.db import get_engine, session_scope
    from workbench.store.migrations import upgrade_database
    from workbench.store.models import Instance, Workspace

    upgrade_database(database_url)
    with session_scope() as s:
        ws = Workspace(name=f"bench {uuid.uuid4().hex[:6]}")
        s.add(ws)
        s.flush()
        user = create_user(s, f"bench-{uuid.uuid4().hex[:8]}@example.com", "Bench", "senha-de-bench-123", ws.id,
                           "admin")
        numbers = [Instance(workspace_id=ws.id, name=name, transport="sandbox") for name in ("import", "copy")]
        s.add_all(numbers)
        s.flush()
        actor = Actor(user.id, ws.id, "admin", user.name, user.email)
        import_number, copy_number = numbers[0].id, numbers[1].id
    table = _rows(rows)
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(table)
    data = out.getvalue().encode("cp1252")  # as Excel in Brazil saves it
    del out
    rss_before = _rss_mb()
    try:
        started = time.perf_counter()
        upload = contact_import.read_upload(actor, "bench.csv", data)
        read_s = time.perf_counter() - started
        mapping = [*upload.mapping[:5], "new"]
        options = {"instance_id": import_number, "country": "55", "on_existing": "update", "tags": ["bench"]}
        started = time.perf_counter()
        check = contact_import.validate(actor, upload.token, mapping, options)
        validate_s = time.perf_counter() - started
        assert check["valid"] == rows, check["errors"][:3]
        job_id = contact_import.start_import(actor, upload.token, mapping, options)
        started = time.perf_counter()
        counts = contact_import.run_job(job_id)
        import_s = time.perf_counter() - started
        assert counts["created"] == rows, counts
        peak = _rss_mb()
        # The floor: the same rows, parsed already, in one COPY.
        raw = get_engine().raw_connection()
        try:
            started = time.perf_counter()
            with raw.cursor() as cur, cur.copy("COPY contacts (workspace_id, instance_id, phone, name, email, "
                                               "company, custom_data) FROM STDIN") as copy:
                for i, row in enumerate(table[1:]):
                    copy.write_row((ws.id, copy_number, f"55{i:011d}", row[0], row[2], row[3],
                                    json.dumps({"cargo": row[5]})))
            raw.commit()
            copy_s = time.perf_counter() - started
        finally:
            raw.close()
    finally:
        with session_scope() as s:
            s.execute(text("DELETE FROM workspaces WHERE id = :id"), {"id": ws.id})
    result = {"rows": rows, "import_rows_s": rows / import_s, "copy_rows_s": rows / copy_s,
              "read_rows_s": rows / read_s, "validate_rows_s": rows / validate_s,
              "rss_before_mb": rss_before, "peak_rss_mb": peak, "file_mb": len(data) / 1024 / 1024}
    print(f"{rows:>7} rows ({result['file_mb']:.1f} MB CSV): import job {result['import_rows_s']:>7.0f} rows/s "
          f"(bare COPY {result['copy_rows_s']:>7.0f} rows/s, {result['import_rows_s'] / result['copy_rows_s']:.2f}x); "
          f"read {result['read_rows_s']:>7.0f} rows/s, check {result['validate_rows_s']:>7.0f} rows/s; "
          f"peak RSS {peak:.0f} MB ({rss_before:.0f} MB before reading)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one size, this process
    args = parser.parse_args()
    if args.one:
        measure(os.environ["DATABASE_URL"], args.rows[0])
        return
    from bench.pipeline import servers

    database_url, redis_url, stops = servers(Path(tempfile.mkdtemp(prefix="wbimp-pg-")))
    try:
        for rows in args.rows:
            env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
            subprocess.run([sys.executable, __file__, "--one", "--rows", str(rows)], env=env, check=True)
    finally:
        for stop in stops:
            stop()


if __name__ == "__main__":
    main()
