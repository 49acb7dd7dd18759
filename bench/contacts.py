"""Contatos benchmark: the list, search and export at 100 000 contacts and 1 000 000 messages.

The product's demo generator (``workbench/analytics/demo.py``: Faker's pt_BR names, Brazilian mobile numbers,
e-mails, typed custom fields, tags, conversations with agents and teams, funnel runs) fills a fresh database with
COPY, then prints:

- the server time of the Contatos list (``workbench.services.contact_list.list_contacts``, count included, the
  median of 7 calls): first page, a filtered page, searches by name and by a formatted phone, a page deep in the
  list (after 99 950 rows), an agent's first page, the last-message sort;
- export rows/s for CSV and XLSX, with the memory the export took (peak RSS growth while it ran) at two sizes,
  20 000 and 100 000 contacts: flat memory means the same growth at both;
- import rows/s next to a bare COPY of the same rows, when the import exists (``bench/contacts_import.py``).

    python bench/contacts.py                         # embedded servers in a temp dir, 100k contacts / 1M messages
    python bench/contacts.py --contacts 20000 --messages 100000
    DATABASE_URL=... REDIS_URL=... python bench/contacts.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.pipeline import median_ms, servers  # noqa: E402

SMALL = 20_000


def generate(contacts: int, messages: int, name: str) -> dict:
    """One workspace with ``contacts`` contacts and about ``messages`` messages; returns its ids.

    The product's one generator (``workbench.analytics.demo``, also behind ``python -m workbench demo-data`` and
    ``bench/analytics.py``), with contacts spread over 900 days.
    """
    from workbench.analytics import demo

    return demo.generate(demo.Sizes(contacts=contacts, days=900, messages=messages or None, agents=10,
                                    seed=20261202 + contacts), None, name)


class PeakRss(threading.Thread):
    """Samples this process's RSS every 5 ms; ``growth_mb`` is the peak over the RSS when it started."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.start_rss = self.proc.memory_info().rss
        self.peak = self.start_rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def stop(self) -> float:
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return (self.peak - self.start_rss) / 2**20


def measure_export(actor, kind: str) -> tuple[int, float, float]:
    """(rows, rows/s, RSS growth MB) of one full export written to a temporary file."""
    from workbench.services import contact_export

    watch = PeakRss()
    watch.start()
    started = time.perf_counter()
    size = 0
    chunks = contact_export.export_xlsx(actor) if kind == "xlsx" else contact_export.export_csv(actor, delimiter=";")
    with tempfile.TemporaryFile() as out:
        for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
    seconds = time.perf_counter() - started
    growth = watch.stop()
    rows = _last_export_rows()
    return rows, rows / seconds, growth


def _last_export_rows() -> int:
    from sqlalchemy import select

    from workbench.store.db import session_scope
    from workbench.store.models import ActivityEvent

    with session_scope() as s:
        event = s.scalars(select(ActivityEvent).where(ActivityEvent.kind == "contacts_exported")
                          .order_by(ActivityEvent.id.desc()).limit(1)).one()
        return event.data["rows"]


def list_figures(ids: dict, contacts: int) -> None:
    from sqlalchemy import text

    from workbench.services.contact_list import list_contacts
    from workbench.store.db import session_scope

    admin, agent = ids["admin"], ids["agent"]
    with session_scope() as s:
        phone, = s.execute(text("SELECT phone FROM contacts WHERE workspace_id = :w ORDER BY id LIMIT 1 OFFSET 777"),
                           {"w": ids["workspace"]}).one()
        deep = max(0, contacts - 50)
        cursor = tuple(s.execute(text(
            "SELECT lower(coalesce(name, push_name, phone)), id FROM contacts WHERE workspace_id = :w "
            "ORDER BY 1, 2 OFFSET :o LIMIT 1"), {"w": ids["workspace"], "o": deep - 1}).one())
    formatted = f"+{phone[:2]} ({phone[2:4]}) {phone[4:9]}-{phone[9:]}"
    filtered = {"tags_any": ["vip", "cliente"], "tags_none": ["inativo"], "instance_id": ids["instances"][0],
                "fields": [{"key": "idade", "op": "gt", "value": "30"}], "funnel_id": ids["funnels"][1][0],
                "funnel_state": "completed"}
    cases = [
        ("first page (name, count)", lambda: list_contacts(admin, with_count=True)),
        ("filtered page (tags, number, idade > 30, funnel)", lambda: list_contacts(admin, filtered, with_count=True)),
        ("search by name 'silva'", lambda: list_contacts(admin, {"search": "silva"}, with_count=True)),
        (f"search by phone '{formatted}'", lambda: list_contacts(admin, {"search": formatted}, with_count=True)),
        ("search by field value 'diamante'", lambda: list_contacts(admin, {"search": "diamante"}, with_count=True)),
        (f"deep page (after row {deep:,})", lambda: list_contacts(admin, after=cursor, with_count=True)),
        ("agent's first page (visibility)", lambda: list_contacts(agent, with_count=True)),
        ("last-message sort, newest first", lambda: list_contacts(admin, sort="last_message", descending=True,
                                                                   with_count=True)),
    ]
    for label, call in cases:
        print(f"  list {label:<52} {median_ms(call):>7.1f} ms")


def import_figures(url: str, contacts: int) -> None:
    helper = ROOT / "bench" / "contacts_import.py"
    if importlib.util.find_spec("workbench.services.contact_import") is None or not helper.exists():
        print("  import: not built")
        return
    spec = importlib.util.spec_from_file_location("contacts_import", helper)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.measure(database_url=url, rows=contacts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wbbench-contacts-"))
    database_url, redis_url, stops = servers(tmp)
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "WORKBENCH_DATA_DIR": str(tmp)})
    from workbench.store.config import get_settings

    get_settings.cache_clear()
    try:
        from workbench.store.migrations import upgrade_database

        upgrade_database(database_url)
        started = time.perf_counter()
        small = generate(min(SMALL, args.contacts), 0, "Pequena")
        big = generate(args.contacts, args.messages, "Grande")
        print(f"generated {args.contacts:,} + {min(SMALL, args.contacts):,} contacts, {args.messages:,} messages "
              f"in {time.perf_counter() - started:.0f} s (Faker pt_BR, COPY)")
        print(f"Contatos list at {args.contacts:,} contacts (median of 7, server time):")
        list_figures(big, args.contacts)
        print("export (whole workspace, to a file):")
        for kind in ("csv", "xlsx"):
            for ids in (small, big):
                rows, rate, growth = measure_export(ids["admin"], kind)
                print(f"  export {kind:<4} {rows:>7,} rows  {rate:>8,.0f} rows/s  RSS growth {growth:>6.1f} MB")
        import_figures(database_url, args.contacts)
        print(f"peak RSS of this process: {psutil.Process().memory_info().rss / 2**20:.0f} MB now; "
              f"max {_max_rss_mb():.0f} MB")
    finally:
        for stop in stops:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the embedded server's data: hundreds of MB at full size


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
