"""Inbox benchmark: the inbox's server time with many open conversations and a long thread.

Builds a workspace with ``--conversations`` open conversations (default 10,000) holding ``--messages`` messages in
all (default 1,000,000): one thread of ``--thread`` messages (default 5,000), the rest spread evenly. Thirty agents
in three teams (one distributing automatically, its ten members available) hold most conversations. Then times
(median of 20 calls, server side, no Streamlit): the inbox list as an admin and as an agent (200 rows, newest
first, with the visibility rule), opening the long thread (the conversation, its newest 200 messages and its private
notes: what the page reads), sending a reply (message, outbox and bot pause in one transaction, published to Redis),
and routing one conversation to the distributing team (least-loaded available member over all conversations).
Measured in the same run: the floor (a session that runs ``SELECT 1``) and the baseline, a bare read of the thread's
newest 200 messages (``ORDER BY id DESC LIMIT 200``). Target: 300 ms each.

    python bench/inbox.py                            # embedded PostgreSQL and Redis in a temp dir
    python bench/inbox.py --messages 200000
    DATABASE_URL=postgresql+psycopg://... REDIS_URL=redis://.../15 python bench/inbox.py
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
AGENTS = 30
TARGET_MS = 300


def _servers(tmp: Path) -> tuple[str, str, Callable[[], None]]:
    """A database of our own and a Redis (embedded unless ``DATABASE_URL`` / ``REDIS_URL``), and how to stop."""
    from tests.factories import fresh_database
    from workbench.store.embedded import EmbeddedPostgres, EmbeddedRedis

    stops: list[Callable[[], None]] = []
    server = os.environ.get("DATABASE_URL")
    if not server:
        pg = EmbeddedPostgres(tmp / "pg")
        server = pg.start()
        stops.append(pg.stop)
    url, drop_database = fresh_database(server, "wb_bench")
    stops.insert(0, drop_database)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        rs = EmbeddedRedis(tmp / "redis")
        redis_url = rs.start()
        stops.insert(0, rs.stop)

    def stop() -> None:
        for step in stops:
            step()

    return url, redis_url, stop


def _fill(conversations: int, messages: int, thread: int) -> dict:
    """The workspace, its people and teams, the conversations and messages described above."""
    from workbench.services.auth import Actor, create_user
    from workbench.store.db import session_scope
    from workbench.store.models import Instance, Team, TeamMember, Workspace

    with session_scope() as s:
        ws = Workspace(name="Bench")
        s.add(ws)
        s.flush()
        admin = create_user(s, "bench@example.com", "Bench", "senha-de-bench-123", ws.id, "admin")
        agents = [create_user(s, f"agente{i}@example.com", f"Agente {i}", "senha-de-bench-123", ws.id, "agent")
                  for i in range(AGENTS)]
        teams = [Team(workspace_id=ws.id, name=f"Equipe {i}", auto_assign=i == 0) for i in range(3)]
        s.add_all(teams)
        inst = Instance(workspace_id=ws.id, name="Comercial", transport="sandbox")
        s.add(inst)
        s.flush()
        for i, agent in enumerate(agents):
            s.add(TeamMember(team_id=teams[i % 3].id, user_id=agent.id))
        s.flush()
        s.execute(text("UPDATE workspace_members SET availability = 'available', last_seen_at = now()"
                       " WHERE workspace_id = :ws"), {"ws": ws.id})
        ids = {"ws": ws.id, "inst": inst.id, "admin": admin.id, "agent": agents[1].id,
               "team": teams[0].id, "teams": [t.id for t in teams], "agents": [a.id for a in agents]}
    params = {"ws": ids["ws"], "inst": ids["inst"], "n": conversations, "thread": thread,
              "each": max(0, (messages - thread) // max(1, conversations - 1)),
              "agents": ids["agents"], "teams": ids["teams"]}
    statements = [
        "INSERT INTO contacts (workspace_id, instance_id, phone, push_name)"
        " SELECT :ws, :inst, '55119' || lpad(g::text, 8, '0'), 'Lead ' || g FROM generate_series(1, :n) g",
        # most conversations with an agent and a team, some in a team's queue, some in nobody's
        "INSERT INTO conversations (workspace_id, instance_id, contact_id, status, agent_id, team_id,"
        " last_message_at, last_message_preview, last_message_direction, last_message_type, last_inbound_at)"
        " SELECT :ws, :inst, id, 'open',"
        " CASE WHEN id % 10 < 7 THEN (CAST(:agents AS bigint[]))[1 + id % 30] END,"
        " CASE WHEN id % 10 < 9 THEN (CAST(:teams AS bigint[]))[1 + id % 3] END,"
        " now() - make_interval(secs => id), 'mensagem', 'in', 'text', now() - make_interval(secs => id)"
        " FROM contacts",
        "INSERT INTO messages (workspace_id, instance_id, conversation_id, wa_id, direction, type, text, status,"
        " created_at) SELECT :ws, :inst, c.id, 'W' || c.id || '-' || g,"
        " CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END, 'text', 'mensagem ' || g, 'received',"
        " now() - make_interval(secs => g * 60)"
        " FROM conversations c, generate_series(1, CASE WHEN c.id = (SELECT min(id) FROM conversations)"
        " THEN :thread ELSE :each END) g",
        "INSERT INTO notes (workspace_id, contact_id, conversation_id, body, kind, created_at)"
        " SELECT :ws, c.contact_id, c.id, 'nota ' || g, 'thread', now() - make_interval(secs => g * 3600)"
        " FROM (SELECT * FROM conversations ORDER BY id LIMIT 1) c, generate_series(1, 50) g",
        "ANALYZE",
    ]
    with session_scope() as s:
        for statement in statements:
            s.execute(text(statement), params)
        ids["thread_id"] = s.scalar(text("SELECT min(id) FROM conversations"))
        ids["total"] = s.scalar(text("SELECT count(*) FROM messages"))
    ids["admin_actor"] = Actor(ids["admin"], ids["ws"], "admin", "Bench", "bench@example.com")
    ids["agent_actor"] = Actor(ids["agent"], ids["ws"], "agent", "Agente 1", "agente1@example.com")
    return ids


def _measure(ids: dict) -> list[tuple[str, float]]:
    from workbench.services import conversations, routing, thread_notes
    from workbench.store.db import session_scope

    admin, agent, thread_id = ids["admin_actor"], ids["agent_actor"], ids["thread_id"]

    def floor() -> None:
        with session_scope() as s:
            s.execute(text("SELECT 1")).all()

    def baseline() -> None:
        with session_scope() as s:
            s.execute(text("SELECT id, text FROM messages WHERE conversation_id = :c ORDER BY id DESC LIMIT 200"),
                      {"c": thread_id}).all()

    def open_thread() -> None:
        conversations.get_conversation(admin, thread_id)
        conversations.list_messages(admin, thread_id)
        thread_notes.list_notes(admin, thread_id)

    def route() -> None:
        with session_scope() as s:
            routing.route_to_team(s, ids["ws"], thread_id, ids["team"], None, "manual")

    return [
        ("floor: a session running SELECT 1", timed(floor)),
        ("baseline: the thread's newest 200 messages, bare", timed(baseline)),
        ("inbox list, admin (200 of the open)", timed(lambda: conversations.list_conversations(admin))),
        ("inbox list, agent (visibility rule)", timed(lambda: conversations.list_conversations(agent))),
        ("open the long thread (conversation, 200 messages, notes)", timed(open_thread)),
        ("send a reply (message, outbox, publish)",
         timed(lambda: conversations.send_text(admin, thread_id, "Resposta de bench"))),
        ("route to a distributing team (least loaded of 10)", timed(route)),
    ]


def main() -> None:
    """Fill, measure, print against the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--thread", type=int, default=5_000, help="messages in the long thread")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-inbox-") as tmp:
        url, redis_url, stop = _servers(Path(tmp))
        try:
            os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = url, redis_url
            os.environ.setdefault("WORKBENCH_DATA_DIR", str(Path(tmp) / "data"))
            from workbench.store.config import get_settings
            from workbench.store.migrations import upgrade_database

            get_settings.cache_clear()
            upgrade_database(url)
            started = time.perf_counter()
            ids = _fill(args.conversations, args.messages, args.thread)
            print(f"filled in {time.perf_counter() - started:.0f} s: {args.conversations} open conversations, "
                  f"{ids['total']} messages, a thread of {args.thread}, {AGENTS} agents in 3 teams")
            for name, ms in _measure(ids):
                verdict = "" if name.startswith(("floor", "baseline")) else (
                    "  ok" if ms <= TARGET_MS else f"  over {TARGET_MS} ms")
                print(f"{name:<58} {ms:>8.2f} ms{verdict}")
        finally:
            from workbench.store import bus, db

            db.dispose_engines()
            bus.reset_clients()
            stop()


if __name__ == "__main__":
    main()
