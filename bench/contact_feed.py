"""Visão 360 feed benchmark: one page of a contact's activity feed on a long history.

Builds one contact whose conversation holds ``--messages`` messages (default 200,000), plus ``--events`` activity
events, 500 notes and 200 funnel runs of 10 steps, with other contacts' rows around them, then times
``workbench.services.contact_feed.feed`` (median of 20 calls): the newest page, a page deep in the history (by its
cursor), and the tags-only filter. Measured in the same run: the floor (a session that runs ``SELECT 1``) and the
baseline, the inbox's own read of the newest 30 messages of the conversation (``ORDER BY id DESC LIMIT 30``).
The feed is measured again with migration 0006's indexes replaced by the ones before it (messages by conversation
and id; activity by subject only) to show what they buy.

    python bench/contact_feed.py                     # embedded PostgreSQL in a temp dir
    python bench/contact_feed.py --messages 50000
    DATABASE_URL=postgresql+psycopg://... python bench/contact_feed.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.pipeline import median_ms  # noqa: E402

RUNS = 20
timed = partial(median_ms, runs=RUNS)  # median ms of RUNS calls


def _database(tmp: Path) -> tuple[str, Callable[[], None]]:
    """A database of our own (embedded PostgreSQL unless ``DATABASE_URL``), and how to drop it."""
    from tests.factories import fresh_database
    from workbench.store.embedded import EmbeddedPostgres

    server = os.environ.get("DATABASE_URL")
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if not server:
        pg = EmbeddedPostgres(tmp)
        server, stop = pg.start(), pg.stop
    url, drop_database = fresh_database(server, "wb_bench")

    def drop() -> None:
        drop_database()
        stop()

    return url, drop


def _fill(messages: int, events: int) -> tuple[object, int, int]:
    """The workspace's admin, the contact and its conversation, with the history described above."""
    from workbench.services.auth import Actor, create_user
    from workbench.store.db import session_scope
    from workbench.store.models import Instance, Workspace

    with session_scope() as s:
        ws = Workspace(name="Bench")
        s.add(ws)
        s.flush()
        user = create_user(s, "bench@example.com", "Bench", "senha-de-bench-123", ws.id, "admin")
        inst = Instance(workspace_id=ws.id, name="Comercial", transport="sandbox")
        s.add(inst)
        s.flush()
        ws_id, inst_id, user_id = ws.id, inst.id, user.id
    params = {"ws": ws_id, "inst": inst_id, "user": user_id, "n": messages, "events": events}
    statements = [
        # the contact, and 50 others whose rows interleave with its own
        "INSERT INTO contacts (workspace_id, instance_id, phone, push_name)"
        " SELECT :ws, :inst, '55119' || lpad(g::text, 8, '0'), 'Lead ' || g FROM generate_series(0, 50) g",
        "INSERT INTO conversations (workspace_id, instance_id, contact_id) SELECT :ws, :inst, id FROM contacts",
        "INSERT INTO messages (workspace_id, instance_id, conversation_id, wa_id, direction, type, text, status,"
        " created_at) SELECT :ws, :inst, c.id, 'W' || c.id || '-' || g,"
        " CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END, 'text', 'mensagem ' || g, 'received',"
        " now() - make_interval(secs => (:n - g) * 60)"
        " FROM conversations c, generate_series(1, CASE WHEN c.contact_id = (SELECT min(id) FROM contacts) THEN :n"
        " ELSE :n / 50 END) g ORDER BY g, c.id",  # ids interleave across conversations, as they arrive
        "INSERT INTO activity_events (workspace_id, actor_user_id, kind, subject_type, subject_id, data, created_at)"
        " SELECT :ws, :user, CASE WHEN g % 3 = 0 THEN 'tag_added' WHEN g % 3 = 1 THEN 'field_changed' ELSE 'assigned'"
        " END, 'contact', c.id, jsonb_build_object('tag', 'tag ' || g, 'key', 'campo', 'new', g),"
        " now() - make_interval(secs => g * 600) FROM contacts c, generate_series(1, :events) g",
        "INSERT INTO notes (workspace_id, contact_id, author_id, body, created_at)"
        " SELECT :ws, (SELECT min(id) FROM contacts), :user, 'nota ' || g, now() - make_interval(secs => g * 3600)"
        " FROM generate_series(1, 500) g",
        "INSERT INTO funnels (workspace_id, name) VALUES (:ws, 'Funil')",
        "INSERT INTO funnel_versions (funnel_id, version, definition) SELECT id, 1, '{}' FROM funnels",
        "INSERT INTO funnel_runs (workspace_id, funnel_id, version_id, conversation_id, contact_id, status, started_at)"
        " SELECT :ws, f.id, v.id, c.id, c.contact_id, 'completed', now() - make_interval(secs => g * 7200)"
        " FROM funnels f JOIN funnel_versions v ON v.funnel_id = f.id,"
        " (SELECT * FROM conversations ORDER BY contact_id LIMIT 1) c, generate_series(1, 200) g",
        "INSERT INTO funnel_events (workspace_id, run_id, funnel_id, version_id, node_id, node_type, status)"
        " SELECT :ws, r.id, r.funnel_id, r.version_id, 'n' || g, 'send_message', 'ok'"
        " FROM funnel_runs r, generate_series(1, 10) g",
        "ANALYZE",
    ]
    with session_scope() as s:
        for statement in statements:
            s.execute(text(statement), params)
        contact_id = s.scalar(text("SELECT min(id) FROM contacts"))
        conversation_id = s.scalar(text("SELECT id FROM conversations WHERE contact_id = :c"), {"c": contact_id})
    return Actor(user_id, ws_id, "admin", "Bench", "bench@example.com"), contact_id, conversation_id


def _measure(actor, contact_id: int, conversation_id: int) -> list[tuple[str, float]]:
    from workbench.services import contact_feed
    from workbench.store.db import session_scope

    def floor() -> None:
        with session_scope() as s:
            s.execute(text("SELECT 1")).all()

    def baseline() -> None:
        with session_scope() as s:
            s.execute(text("SELECT id, text FROM messages WHERE conversation_id = :c ORDER BY id DESC LIMIT 30"),
                      {"c": conversation_id}).all()

    cursor = None
    for _ in range(100):  # 100 pages down: a cursor deep in the history
        cursor = contact_feed.feed(actor, contact_id, before=cursor)["next"]
    return [
        ("floor: a session running SELECT 1", timed(floor)),
        ("baseline: inbox's newest 30 messages", timed(baseline)),
        ("feed, newest page (30 items)", timed(lambda: contact_feed.feed(actor, contact_id))),
        ("feed, page 101", timed(lambda: contact_feed.feed(actor, contact_id, before=cursor))),
        ("feed, tags only", timed(lambda: contact_feed.feed(actor, contact_id, kinds=["tag"]))),
        ("feed, messages only", timed(lambda: contact_feed.feed(actor, contact_id, kinds=["message"]))),
    ]


def main() -> None:
    """Fill, measure with and without the index, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=2_000, help="activity events per contact")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-feed-") as tmp:
        url, drop = _database(Path(tmp))
        try:
            os.environ["DATABASE_URL"] = url
            from workbench.store.config import get_settings
            from workbench.store.db import session_scope
            from workbench.store.migrations import upgrade_database

            get_settings.cache_clear()
            upgrade_database(url)
            started = time.perf_counter()
            actor, contact_id, conversation_id = _fill(args.messages, args.events)
            print(f"filled in {time.perf_counter() - started:.0f} s: {args.messages} messages and {args.events} "
                  f"activity events on the contact, 500 notes, 200 runs of 10 steps")
            rows = _measure(actor, contact_id, conversation_id)
            with session_scope() as s:
                s.execute(text("DROP INDEX ix_messages_conversation_time"))
                s.execute(text("CREATE INDEX ix_activity_subject ON activity_events"
                               " (workspace_id, subject_type, subject_id)"))
                s.execute(text("DROP INDEX ix_activity_subject_time"))
            rows += [(f"{name} (without 0006's indexes)", ms)
                     for name, ms in _measure(actor, contact_id, conversation_id)[2:]]
            for name, ms in rows:
                print(f"{name:<58} {ms:>8.2f} ms")
        finally:
            drop()


if __name__ == "__main__":
    main()
