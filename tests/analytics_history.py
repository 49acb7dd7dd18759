"""Hand-built histories for the analytics tests: rows written straight into PostgreSQL at chosen instants.

The services stamp rows with ``now()``; metric tests need a Friday evening or a reopen the next morning, so this
writes the same rows the services write (messages, ``activity_events`` of conversations, runs and their events)
with explicit times. Times are given in the workspace's zone.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.factories import make_actor, make_instance, make_team, make_workspace
from workbench.services.auth import Actor
from workbench.store.db import session_scope

_phones = itertools.count(5511900000000)


class History:
    """One workspace with a number, an admin and two agents (``a`` and ``b``) in team ``vendas``."""

    def __init__(self, name: str = "Loja", zone: str = "America/Sao_Paulo") -> None:
        self.workspace_id = make_workspace(name)
        self.zone = ZoneInfo(zone)
        with session_scope() as s:
            s.execute(text("UPDATE workspaces SET timezone = :z WHERE id = :w"), {"z": zone, "w": self.workspace_id})
        self.instance_id = make_instance(self.workspace_id)
        self.admin: Actor = make_actor(self.workspace_id, "admin")
        self.a: Actor = make_actor(self.workspace_id, "agent")
        self.b: Actor = make_actor(self.workspace_id, "agent")
        self.team_id = make_team(self.workspace_id, "Vendas", self.a.user_id, self.b.user_id)

    def instance_name(self) -> str:
        with session_scope() as s:
            return s.execute(text("SELECT name FROM instances WHERE id = :i"), {"i": self.instance_id}).scalar_one()

    def at(self, when: str) -> datetime:
        """A local "YYYY-MM-DD HH:MM" of the workspace's zone as an aware instant."""
        return datetime.fromisoformat(when).replace(tzinfo=self.zone)

    def _insert(self, sql: str, **values) -> int:
        with session_scope() as s:
            return s.execute(text(sql + " RETURNING id"), values).scalar_one()

    def contact(self, created: str) -> int:
        return self._insert("INSERT INTO contacts (workspace_id, instance_id, phone, name, created_at) "
                            "VALUES (:w, :i, :p, 'Cliente', :c)", w=self.workspace_id, i=self.instance_id,
                            p=str(next(_phones)), c=self.at(created))

    def conversation(self, created: str, status: str = "open", agent: Actor | None = None,
                     team: bool = False) -> int:
        """A conversation (with its contact) created at ``created`` and its first inbound message then."""
        contact = self.contact(created)
        conv = self._insert(
            "INSERT INTO conversations (workspace_id, instance_id, contact_id, status, agent_id, team_id, created_at)"
            " VALUES (:w, :i, :k, :s, :a, :t, :c)", w=self.workspace_id, i=self.instance_id, k=contact, s=status,
            a=agent.user_id if agent else None, t=self.team_id if team else None, c=self.at(created))
        self.message(conv, created)
        return conv

    def message(self, conv: int, when: str, direction: str = "in", user: Actor | None = None) -> int:
        return self._insert(
            "INSERT INTO messages (workspace_id, instance_id, conversation_id, direction, type, status, "
            "sent_by_user_id, created_at) VALUES (:w, :i, :c, :d, 'text', :s, :u, :at)", w=self.workspace_id,
            i=self.instance_id, c=conv, d=direction, s="received" if direction == "in" else "sent",
            u=user.user_id if user else None, at=self.at(when))

    def reply(self, conv: int, when: str, user: Actor | None) -> int:
        """An outbound message: a person's reply, or the bot's with ``user`` None."""
        return self.message(conv, when, "out", user)

    def event(self, conv: int, when: str, kind: str, actor: Actor | None = None, **data) -> int:
        import json

        return self._insert(
            "INSERT INTO activity_events (workspace_id, actor_user_id, kind, subject_type, subject_id, data, "
            "created_at) VALUES (:w, :u, :k, 'conversation', :c, CAST(:d AS jsonb), :at)", w=self.workspace_id,
            u=actor.user_id if actor else None, k=kind, c=conv, d=json.dumps(data), at=self.at(when))

    def assign(self, conv: int, when: str, agent: Actor | None, by: Actor | None = None) -> int:
        return self.event(conv, when, "assigned", by or self.admin, agent_id=agent.user_id if agent else None,
                          team_id=None)

    def close(self, conv: int, when: str, by: Actor | None = None) -> int:
        return self.event(conv, when, "status_closed", by or self.admin)

    def funnel(self, name: str = "Boas-vindas") -> tuple[int, int]:
        funnel = self._insert("INSERT INTO funnels (workspace_id, name) VALUES (:w, :n)", w=self.workspace_id,
                              n=name)
        version = self._insert("INSERT INTO funnel_versions (funnel_id, version, definition) "
                               "VALUES (:f, 1, '{}'::jsonb)", f=funnel)
        return funnel, version

    def run(self, funnel: tuple[int, int], started: str, status: str, steps: list[tuple], conv: int | None = None
            ) -> int:
        """A run over ``steps`` — (node id, local time, event status[, node type, output, data]) — ending in
        ``status``, in a new conversation unless ``conv`` is given."""
        import json

        conv = conv or self.conversation(started)
        with session_scope() as s:
            contact = s.execute(text("SELECT contact_id FROM conversations WHERE id = :c"), {"c": conv}).scalar()
        run = self._insert(
            "INSERT INTO funnel_runs (workspace_id, funnel_id, version_id, conversation_id, contact_id, status, "
            "started_at) VALUES (:w, :f, :v, :c, :k, :s, :at)", w=self.workspace_id, f=funnel[0], v=funnel[1],
            c=conv, k=contact, s=status, at=self.at(started))
        for node, when, state, *more in steps:
            kind, output, data = (*more, None, None, None)[:3]
            self._insert(
                "INSERT INTO funnel_events (workspace_id, run_id, funnel_id, version_id, node_id, node_type, status,"
                " output, data, created_at) VALUES (:w, :r, :f, :v, :n, :k, :s, :o, CAST(:d AS jsonb), :at)",
                w=self.workspace_id, r=run, f=funnel[0], v=funnel[1], n=node, k=kind or "send_message", s=state,
                o=output, d=json.dumps(data or {}), at=self.at(when))
        return run

    def tag(self, conv: int, name: str, when: str) -> None:
        with session_scope() as s:
            tag = s.execute(text("INSERT INTO tags (workspace_id, name) VALUES (:w, :n) ON CONFLICT DO NOTHING "
                                 "RETURNING id"), {"w": self.workspace_id, "n": name}).scalar()
            if tag is None:
                tag = s.execute(text("SELECT id FROM tags WHERE workspace_id = :w AND lower(name) = lower(:n)"),
                                {"w": self.workspace_id, "n": name}).scalar()
            s.execute(text("INSERT INTO contact_tags (contact_id, tag_id, created_at) SELECT contact_id, :t, :at "
                           "FROM conversations WHERE id = :c"), {"t": tag, "at": self.at(when), "c": conv})
