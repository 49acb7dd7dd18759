"""Contatos benchmark: the list, search and export at 100 000 contacts and 1 000 000 messages.

A seeded generator (Faker's pt_BR names, Brazilian mobile numbers, e-mails, companies, typed custom fields, tags,
conversations with agents and teams, funnel runs) fills a fresh database with COPY, then prints:

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
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from faker import Faker  # noqa: E402

from bench.pipeline import servers  # noqa: E402

SEED = 20261202
TAGS = ["vip", "lead", "cliente", "inativo", "black-friday", "newsletter", "sp", "rj", "mg", "indicação",
        "orçamento", "pós-venda", "atacado", "varejo", "retorno", "reclamação", "parceiro", "evento", "whatsapp",
        "instagram"]
FIELDS = [("cidade", "Cidade", "text"), ("idade", "Idade", "number"), ("nascimento", "Nascimento", "date"),
          ("plano", "Plano", "choice"), ("cliente", "Cliente", "boolean")]
PLANS = ["bronze", "prata", "ouro", "diamante"]
SMALL = 20_000


def _copy(conn, table: str, columns: tuple[str, ...], rows: Iterator[tuple]) -> int:
    """COPY ``rows`` into ``table`` (psycopg 3's binary-free text COPY); returns how many."""
    count = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def generate(contacts: int, messages: int, name: str) -> dict:
    """One workspace with ``contacts`` contacts and about ``messages`` messages; returns its ids."""
    import json

    from sqlalchemy import text

    from workbench.services.auth import Actor, create_user
    from workbench.store.db import get_engine, session_scope
    from workbench.store.models import ContactField, Funnel, FunnelVersion, Instance, Team, TeamMember, Workspace

    fake = Faker("pt_BR")
    fake.seed_instance(SEED + contacts)
    rng = random.Random(SEED + contacts)
    with session_scope() as s:
        ws = Workspace(name=name)
        s.add(ws)
        s.flush()
        admin = create_user(s, f"admin-{ws.id}@bench.local", "Admin", "senha-do-benchmark", ws.id, "admin")
        agents = [create_user(s, f"agente{i}-{ws.id}@bench.local", fake.name(), "senha-do-benchmark", ws.id, "agent")
                  for i in range(10)]
        teams = [Team(workspace_id=ws.id, name=n) for n in ("Vendas", "Suporte", "Financeiro")]
        s.add_all(teams)
        instances = [Instance(workspace_id=ws.id, name=n, transport="sandbox")
                     for n in ("Comercial", "Suporte", "Loja")]
        s.add_all(instances)
        s.flush()
        for i, agent in enumerate(agents):
            s.add(TeamMember(team_id=teams[i % 3].id, user_id=agent.id))
        s.add_all(ContactField(workspace_id=ws.id, key=k, label=label, type=kind, position=i)
                  for i, (k, label, kind) in enumerate(FIELDS))
        funnels = [Funnel(workspace_id=ws.id, name=n) for n in ("Boas-vindas", "Agendamento", "Recuperação")]
        s.add_all(funnels)
        s.flush()
        versions = [FunnelVersion(funnel_id=f.id, version=1, definition={}) for f in funnels]
        s.add_all(versions)
        s.flush()
        ids = {"workspace": ws.id, "admin": Actor(admin.id, ws.id, "admin", admin.name, admin.email),
               "agent": Actor(agents[0].id, ws.id, "agent", agents[0].name, agents[0].email),
               "instances": [i.id for i in instances], "agents": [a.id for a in agents], "teams": [t.id for t in teams],
               "funnels": [(f.id, v.id) for f, v in zip(funnels, versions, strict=True)]}
        tag_ids = []
        for tag in TAGS:
            tag_ids.append(s.execute(text("INSERT INTO tags (workspace_id, name) VALUES (:w, :n) RETURNING id"),
                                     {"w": ws.id, "n": tag}).scalar_one())
    first = [fake.first_name() for _ in range(3000)]
    last = [fake.last_name() for _ in range(3000)]
    companies = [fake.company() for _ in range(2000)]
    cities = [fake.city() for _ in range(500)]
    now = datetime.now(UTC)
    engine = get_engine()
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM contacts")
            base = cur.fetchone()[0]
        phones = rng.sample(range(10_000_000, 100_000_000), contacts)

        def contact_rows() -> Iterator[tuple]:
            for n in range(contacts):
                person = f"{rng.choice(first)} {rng.choice(last)}"
                custom = {"cidade": rng.choice(cities), "idade": str(rng.randint(18, 80)),
                          "nascimento": f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
                          "plano": rng.choice(PLANS), "cliente": rng.choice(["sim", "não"])}
                if rng.random() < 0.1:
                    custom["origem"] = rng.choice(["site", "feira", "indicação"])
                yield (ids["workspace"], rng.choice(ids["instances"]), f"55{rng.randint(11, 99)}9{phones[n]}",
                       person if rng.random() < 0.8 else None, person.split()[0],
                       f"{person.split()[0].lower()}.{n}@exemplo.com.br" if rng.random() < 0.6 else None,
                       rng.choice(companies) if rng.random() < 0.3 else None, json.dumps(custom),
                       now - timedelta(days=rng.randint(0, 900), seconds=rng.randint(0, 86400)))

        _copy(conn, "contacts", ("workspace_id", "instance_id", "phone", "name", "push_name", "email", "company",
                                 "custom_data", "created_at"), contact_rows())
        with conn.cursor() as cur:
            cur.execute("SELECT id, instance_id FROM contacts WHERE workspace_id = %s AND id > %s ORDER BY id",
                        (ids["workspace"], base))
            contact_list = cur.fetchall()

        def conversation_rows() -> Iterator[tuple]:
            for contact_id, instance_id in contact_list:
                if rng.random() < 0.05:
                    continue  # imported, never talked
                assigned = rng.random()
                agent = rng.choice(ids["agents"]) if assigned < 0.4 else None
                team = rng.choice(ids["teams"]) if 0.4 <= assigned < 0.7 else None
                status = rng.choice(["open", "pending", "closed"])
                yield (ids["workspace"], instance_id, contact_id, status, agent, team,
                       now - timedelta(minutes=rng.randint(0, 600_000)))

        _copy(conn, "conversations", ("workspace_id", "instance_id", "contact_id", "status", "agent_id", "team_id",
                                      "last_message_at"), conversation_rows())
        _copy(conn, "contact_tags", ("contact_id", "tag_id"),
              ((cid, tag) for cid, _ in contact_list for tag in rng.sample(tag_ids, rng.choice([0, 1, 1, 2, 2, 3]))))
        with conn.cursor() as cur:
            cur.execute("SELECT id, contact_id, instance_id FROM conversations WHERE workspace_id = %s ORDER BY id",
                        (ids["workspace"],))
            convs = cur.fetchall()

        def run_rows() -> Iterator[tuple]:
            for conv_id, contact_id, _ in convs:
                if rng.random() < 0.25:
                    funnel, version = rng.choice(ids["funnels"])
                    yield (ids["workspace"], funnel, version, conv_id, contact_id,
                           rng.choice(["waiting", "completed", "completed", "stopped"]))

        _copy(conn, "funnel_runs", ("workspace_id", "funnel_id", "version_id", "conversation_id", "contact_id",
                                    "status"), run_rows())
        per = max(1, messages // max(1, len(convs)))
        words = [fake.word() for _ in range(500)]

        def message_rows() -> Iterator[tuple]:
            sent = 0
            for conv_id, _, instance_id in convs:
                for k in range(per):
                    if sent >= messages:
                        return
                    sent += 1
                    yield (ids["workspace"], instance_id, conv_id, "in" if k % 2 == 0 else "out", "text",
                           " ".join(rng.choices(words, k=6)), "received" if k % 2 == 0 else "read")

        _copy(conn, "messages", ("workspace_id", "instance_id", "conversation_id", "direction", "type", "text",
                                 "status"), message_rows())
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
        conn.commit()
    finally:
        raw.close()
    return ids


def median_ms(call: Callable[[], object], runs: int = 7) -> float:
    call()  # warm the plan cache and the pages
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


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
