"""Row factories and helpers shared by the tests (real database, no mocks)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

from rq import Queue, SimpleWorker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connector.contracts import (
    IN_STREAM,
    INBOUND_QUEUE,
    InboundMessage,
    drain_unit,
    inbound_lanes,
    lane_of,
    now_ms,
    publish_inbound,
)
from workbench.services.auth import Actor, create_user
from workbench.store import db
from workbench.store.bus import get_redis
from workbench.store.crypto import encrypt_secret
from workbench.store.db import session_scope
from workbench.store.models import AIProvider, Instance, Team, TeamMember, Workspace

_ids = itertools.count(1)


def fresh_database(server_url: str, prefix: str = "wb_test") -> tuple[str, Callable[[], None]]:
    """A new, empty database on ``server_url``'s server (tests, fault runs, benchmarks); returns its URL and a
    function that drops it (after disposing of the product's engines, which may hold connections to it)."""
    url = make_url(db.normalize_url(server_url))
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        db.dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop
PASSWORD = "senha-de-teste-123"


def make_workspace(name: str = "Loja") -> int:
    with session_scope() as s:
        ws = Workspace(name=name)
        s.add(ws)
        s.flush()
        return ws.id


def make_actor(workspace_id: int, role: str = "admin", email: str | None = None) -> Actor:
    email = email or f"user{next(_ids)}@example.com"
    with session_scope() as s:
        user = create_user(s, email, email.split("@")[0], PASSWORD, workspace_id, role)
        return Actor(user.id, workspace_id, role, user.name, user.email)


def make_team(workspace_id: int, name: str, *user_ids: int) -> int:
    with session_scope() as s:
        team = Team(workspace_id=workspace_id, name=name)
        s.add(team)
        s.flush()
        for uid in user_ids:
            s.add(TeamMember(team_id=team.id, user_id=uid))
        return team.id


def make_instance(workspace_id: int, name: str = "Comercial") -> int:
    with session_scope() as s:
        inst = Instance(workspace_id=workspace_id, name=name, transport="sandbox")
        s.add(inst)
        s.flush()
        return inst.id


def make_ai_provider(workspace_id: int, base_url: str, *, name: str = "Local", model: str = "fake-model",
                     api_key: str | None = "sk-test-secret-1234", default: bool = True, **columns) -> int:
    """An AI provider row (the key encrypted as the service stores it); ``columns``: tool_mode, timeout_s, ..."""
    with session_scope() as s:
        row = AIProvider(workspace_id=workspace_id, name=name, preset="custom", base_url=base_url, model=model,
                         api_key=encrypt_secret(api_key) if api_key else None,
                         key_last4=api_key[-4:] if api_key else None, is_default=default, **columns)
        s.add(row)
        s.flush()
        return row.id


def inbound(instance_id: int, phone: str = "5511999990001", text: str | None = "Olá", wa_id: str | None = None,
            **kw) -> InboundMessage:
    return InboundMessage(
        instance_id=instance_id, wa_id=wa_id or f"WA{next(_ids):08d}", chat_jid=f"{phone}@s.whatsapp.net",
        sender_jid=f"{phone}@s.whatsapp.net", phone=phone, push_name=kw.pop("push_name", "Maria"),
        timestamp_ms=kw.pop("timestamp_ms", now_ms()), type=kw.pop("type", "text"), text=text, **kw)


def publish(*events) -> None:
    for event in events:
        publish_inbound(get_redis(), event)


def lane_stream(instance_id: int, phone: str = "5511999990001") -> str:
    """The inbound stream the contact ``phone`` of the number lands in (its lane's, ``contracts.lane_of``)."""
    return IN_STREAM.format(drain_unit(instance_id, contact_lane(instance_id, phone)))


def contact_lane(instance_id: int, phone: str = "5511999990001") -> int:
    """The lane of the contact ``phone`` of the number."""
    return lane_of({"kind": "message", "phone": phone}, inbound_lanes(get_redis(), instance_id))


def run_jobs(*queues: str) -> None:
    """Run every queued job of ``queues`` (default: inbound) in this process until none is left."""
    client = get_redis()
    names = queues or (INBOUND_QUEUE,)
    SimpleWorker([Queue(n, connection=client) for n in names], connection=client).work(burst=True)


def inbox_with_one_conversation(role: str = "agent") -> tuple[int, Actor, int]:
    """A workspace whose number received one message: returns (instance id, actor, conversation id)."""
    from workbench.services import conversations

    inst = make_instance(make_workspace())
    with session_scope() as s:
        workspace_id = s.get(Instance, inst).workspace_id
    actor = make_actor(workspace_id, role)
    publish(inbound(inst))
    run_jobs()
    return inst, actor, conversations.list_conversations(actor)[0]["id"]
